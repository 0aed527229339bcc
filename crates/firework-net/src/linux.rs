//! [`NetworkBackend`] for the running kernel: rtnetlink for links and addresses,
//! the TUN ioctls of `firework-sys` for TAP devices and `nft -j` for the ruleset.
//!
//! Link and address operations act in the network namespace of the thread that
//! created the backend's netlink socket. TAP ioctls, sysctls and the `nft` child
//! process act in the namespace of the calling thread. A caller that switches
//! namespaces therefore keeps the backend on one thread.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use futures::TryStreamExt;
use ipnet::Ipv4Net;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::link::{InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use rtnetlink::{Handle, LinkBridge, LinkUnspec};
use tracing::{debug, info};

use crate::backend::{LinkKind, LinkState, NetworkBackend};
use crate::error::NetError;
use crate::nft::Ruleset;

/// Kernel backend over rtnetlink, TUN ioctls and `nft`.
#[derive(Debug, Clone)]
pub struct LinuxBackend {
    handle: Handle,
}

impl LinuxBackend {
    /// Opens an rtnetlink socket in the calling thread's network namespace and spawns
    /// its connection task on the current tokio runtime.
    pub fn new() -> Result<Self, NetError> {
        let (connection, handle, _) =
            rtnetlink::new_connection().map_err(NetError::NetlinkSocket)?;
        tokio::spawn(connection);
        Ok(Self { handle })
    }

    async fn index(&self, name: &str) -> Result<Option<u32>, NetError> {
        Ok(self.get_link_message(name).await?.map(|m| m.header.index))
    }

    async fn get_link_message(&self, name: &str) -> Result<Option<LinkMessage>, NetError> {
        let mut stream = self
            .handle
            .link()
            .get()
            .match_name(name.to_owned())
            .execute();
        match stream.try_next().await {
            Ok(message) => Ok(message),
            Err(rtnetlink::Error::NetlinkError(err)) if err.raw_code() == -libc::ENODEV => Ok(None),
            Err(source) => Err(netlink_error("get link", name, source)),
        }
    }

    async fn addresses(&self, index: Option<u32>) -> Result<BTreeMap<u32, Vec<Ipv4Net>>, NetError> {
        let mut request = self.handle.address().get();
        if let Some(index) = index {
            request = request.set_link_index_filter(index);
        }
        let messages: Vec<AddressMessage> = request
            .execute()
            .try_collect()
            .await
            .map_err(|source| netlink_error("get addresses", "(all)", source))?;
        let mut by_index: BTreeMap<u32, Vec<Ipv4Net>> = BTreeMap::new();
        for message in messages {
            let prefix_len = message.header.prefix_len;
            for attribute in &message.attributes {
                if let AddressAttribute::Local(IpAddr::V4(address)) = attribute
                    && let Ok(net) = Ipv4Net::new(*address, prefix_len)
                {
                    by_index.entry(message.header.index).or_default().push(net);
                }
            }
        }
        Ok(by_index)
    }

    /// Returns the name of the interface with `index`, or `None` when it is gone.
    async fn name_of(&self, index: u32) -> Result<Option<String>, NetError> {
        let mut stream = self.handle.link().get().match_index(index).execute();
        match stream.try_next().await {
            Ok(message) => Ok(message.as_ref().and_then(link_name)),
            Err(rtnetlink::Error::NetlinkError(err)) if err.raw_code() == -libc::ENODEV => Ok(None),
            Err(source) => Err(netlink_error("get link", &index.to_string(), source)),
        }
    }
}

fn netlink_error(operation: &'static str, interface: &str, source: rtnetlink::Error) -> NetError {
    NetError::Netlink {
        operation,
        interface: interface.to_owned(),
        source,
    }
}

fn link_name(message: &LinkMessage) -> Option<String> {
    message
        .attributes
        .iter()
        .find_map(|attribute| match attribute {
            LinkAttribute::IfName(name) => Some(name.clone()),
            _ => None,
        })
}

fn link_state(
    message: &LinkMessage,
    names: &BTreeMap<u32, String>,
    addresses: &BTreeMap<u32, Vec<Ipv4Net>>,
) -> Option<LinkState> {
    let name = link_name(message)?;
    let mut kind = LinkKind::Other(None);
    let mut controller = None;
    let mut mtu = 0;
    for attribute in &message.attributes {
        match attribute {
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    if let LinkInfo::Kind(info_kind) = info {
                        kind = match info_kind {
                            InfoKind::Bridge => LinkKind::Bridge,
                            InfoKind::Tun => LinkKind::Tun,
                            other => LinkKind::Other(Some(other.to_string())),
                        };
                    }
                }
            }
            LinkAttribute::Controller(index) => controller = names.get(index).cloned(),
            LinkAttribute::Mtu(value) => mtu = *value,
            _ => {}
        }
    }
    Some(LinkState {
        name,
        kind,
        controller,
        up: message.header.flags.contains(LinkFlags::Up),
        mtu,
        addresses: addresses
            .get(&message.header.index)
            .cloned()
            .unwrap_or_default(),
    })
}

impl NetworkBackend for LinuxBackend {
    async fn link(&self, name: &str) -> Result<Option<LinkState>, NetError> {
        let Some(message) = self.get_link_message(name).await? else {
            return Ok(None);
        };
        let mut names = BTreeMap::new();
        let controller = message
            .attributes
            .iter()
            .find_map(|attribute| match attribute {
                LinkAttribute::Controller(index) => Some(*index),
                _ => None,
            });
        if let Some(index) = controller
            && let Some(controller_name) = self.name_of(index).await?
        {
            names.insert(index, controller_name);
        }
        let addresses = self.addresses(Some(message.header.index)).await?;
        Ok(link_state(&message, &names, &addresses))
    }

    async fn links(&self) -> Result<Vec<LinkState>, NetError> {
        let messages: Vec<LinkMessage> = self
            .handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(|source| netlink_error("list links", "(all)", source))?;
        let names: BTreeMap<u32, String> = messages
            .iter()
            .filter_map(|m| Some((m.header.index, link_name(m)?)))
            .collect();
        let addresses = self.addresses(None).await?;
        Ok(messages
            .iter()
            .filter_map(|m| link_state(m, &names, &addresses))
            .collect())
    }

    async fn create_bridge(&self, name: &str) -> Result<(), NetError> {
        info!(bridge = name, "creating bridge");
        self.handle
            .link()
            .add(LinkBridge::new(name).build())
            .execute()
            .await
            .map_err(|source| netlink_error("create bridge", name, source))
    }

    async fn add_address(&self, name: &str, address: Ipv4Net) -> Result<(), NetError> {
        let Some(index) = self.index(name).await? else {
            return Err(NetError::LinkNotFound {
                name: name.to_owned(),
            });
        };
        let result = self
            .handle
            .address()
            .add(index, IpAddr::V4(address.addr()), address.prefix_len())
            .execute()
            .await;
        match result {
            Ok(()) => Ok(()),
            Err(rtnetlink::Error::NetlinkError(err)) if err.raw_code() == -libc::EEXIST => Ok(()),
            Err(source) => Err(netlink_error("add address", name, source)),
        }
    }

    async fn create_tap(&self, name: &str, owner_uid: Option<u32>) -> Result<(), NetError> {
        info!(interface = name, "creating TAP device");
        firework_sys::tun::create_persistent_tap(name, owner_uid).map_err(|source| NetError::Tap {
            interface: name.to_owned(),
            source,
        })
    }

    async fn configure_link(
        &self,
        name: &str,
        bridge: Option<&str>,
        mtu: Option<u32>,
    ) -> Result<(), NetError> {
        let Some(index) = self.index(name).await? else {
            return Err(NetError::LinkNotFound {
                name: name.to_owned(),
            });
        };
        let mut builder = LinkUnspec::new_with_index(index).up();
        if let Some(bridge) = bridge {
            let Some(bridge_index) = self.index(bridge).await? else {
                return Err(NetError::LinkNotFound {
                    name: bridge.to_owned(),
                });
            };
            builder = builder.controller(bridge_index);
        }
        if let Some(mtu) = mtu {
            builder = builder.mtu(mtu);
        }
        debug!(interface = name, ?bridge, ?mtu, "configuring link");
        self.handle
            .link()
            .set(builder.build())
            .execute()
            .await
            .map_err(|source| netlink_error("set link", name, source))
    }

    async fn delete_link(&self, name: &str) -> Result<(), NetError> {
        let Some(index) = self.index(name).await? else {
            return Ok(());
        };
        info!(interface = name, "deleting link");
        self.handle
            .link()
            .del(index)
            .execute()
            .await
            .map_err(|source| netlink_error("delete link", name, source))
    }

    async fn allow_route_localnet(&self, name: &str) -> Result<(), NetError> {
        // /proc/sys/net resolves against the network namespace of the calling thread.
        let path = PathBuf::from(format!("/proc/sys/net/ipv4/conf/{name}/route_localnet"));
        std::fs::write(&path, "1").map_err(|source| NetError::Sysctl { path, source })
    }

    async fn apply_ruleset(&self, ruleset: &Ruleset) -> Result<(), NetError> {
        let nftables = ruleset.to_nftables()?;
        // NOTE: the nftables crate (0.6) leaves nft's stderr attached to ours, so the
        // reason for a rejected transaction appears on the agent's stderr and not in
        // the returned error.
        nftables::helper::apply_ruleset_async(&nftables)
            .await
            .map_err(|source| NetError::Nftables {
                operation: "apply",
                source,
            })
    }
}
