//! Recording fake of [`NetworkBackend`] for unit tests.

use std::collections::BTreeMap;
use std::sync::Mutex;

use ipnet::Ipv4Net;

use crate::backend::{LinkKind, LinkState, NetworkBackend};
use crate::error::NetError;
use crate::nft::Ruleset;

/// Keeps links in memory and records every call.
#[derive(Debug, Default)]
pub(crate) struct FakeBackend {
    pub links: Mutex<BTreeMap<String, LinkState>>,
    pub calls: Mutex<Vec<String>>,
    pub rulesets: Mutex<Vec<Ruleset>>,
}

impl FakeBackend {
    pub fn add_link(&self, name: &str, kind: LinkKind) {
        self.links.lock().unwrap().insert(
            name.to_owned(),
            LinkState {
                name: name.to_owned(),
                kind,
                controller: None,
                up: false,
                mtu: 1500,
                addresses: Vec::new(),
            },
        );
    }

    pub fn take_calls(&self) -> Vec<String> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }

    pub fn last_ruleset(&self) -> Ruleset {
        self.rulesets.lock().unwrap().last().cloned().unwrap()
    }

    fn record(&self, call: String) {
        self.calls.lock().unwrap().push(call);
    }
}

impl NetworkBackend for FakeBackend {
    async fn link(&self, name: &str) -> Result<Option<LinkState>, NetError> {
        Ok(self.links.lock().unwrap().get(name).cloned())
    }

    async fn links(&self) -> Result<Vec<LinkState>, NetError> {
        Ok(self.links.lock().unwrap().values().cloned().collect())
    }

    async fn create_bridge(&self, name: &str) -> Result<(), NetError> {
        self.record(format!("create_bridge {name}"));
        self.add_link(name, LinkKind::Bridge);
        Ok(())
    }

    async fn add_address(&self, name: &str, address: Ipv4Net) -> Result<(), NetError> {
        self.record(format!("add_address {name} {address}"));
        if let Some(link) = self.links.lock().unwrap().get_mut(name)
            && !link.addresses.contains(&address)
        {
            link.addresses.push(address);
        }
        Ok(())
    }

    async fn create_tap(&self, name: &str, owner_uid: Option<u32>) -> Result<(), NetError> {
        self.record(format!("create_tap {name} {owner_uid:?}"));
        self.add_link(name, LinkKind::Tun);
        Ok(())
    }

    async fn configure_link(
        &self,
        name: &str,
        bridge: Option<&str>,
        mtu: Option<u32>,
    ) -> Result<(), NetError> {
        self.record(format!("configure_link {name} {bridge:?} {mtu:?}"));
        if let Some(link) = self.links.lock().unwrap().get_mut(name) {
            link.controller = bridge.map(str::to_owned);
            link.up = true;
            if let Some(mtu) = mtu {
                link.mtu = mtu;
            }
        }
        Ok(())
    }

    async fn delete_link(&self, name: &str) -> Result<(), NetError> {
        self.record(format!("delete_link {name}"));
        self.links.lock().unwrap().remove(name);
        Ok(())
    }

    async fn allow_route_localnet(&self, name: &str) -> Result<(), NetError> {
        self.record(format!("allow_route_localnet {name}"));
        Ok(())
    }

    async fn apply_ruleset(&self, ruleset: &Ruleset) -> Result<(), NetError> {
        // The real backend validates against the nftables schema first, so the fake does too.
        ruleset.to_nftables()?;
        self.record("apply_ruleset".to_owned());
        self.rulesets.lock().unwrap().push(ruleset.clone());
        Ok(())
    }
}
