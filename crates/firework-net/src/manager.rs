//! Applying a [`NetworkPlan`]: records first, then bridge, TAP devices, ruleset and
//! the removal of what the plan no longer contains.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use tokio::sync::Mutex;
use tracing::{Instrument, info, info_span, instrument, warn};

use crate::addressing::assign_addresses;
use crate::backend::{LinkKind, NetworkBackend, has_address};
use crate::error::NetError;
use crate::kernel_args::ip_arg;
use crate::names::{TAP_PREFIX, derive_tap_name};
use crate::nft::{build_ruleset, teardown_ruleset};
use crate::plan::NetworkPlan;
use crate::state::{NetworkState, ServiceRecord};

/// Number of hash variants tried for a derived TAP name before giving up.
const TAP_NAME_ATTEMPTS: u32 = 16;

/// Network identity of one service after an apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceNetworkState {
    /// Host TAP device the VMM opens as `host_dev_name`.
    pub tap: String,
    /// Guest IPv4 address.
    pub address: Ipv4Addr,
    /// Guest MAC address.
    pub mac: String,
    /// Kernel argument `ip=<guest>::<gateway>:<netmask>::eth0:off`.
    pub kernel_ip_arg: String,
}

/// Result of [`NetworkManager::apply`] and [`NetworkManager::assign`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedNetwork {
    /// Guest subnet with host bits cleared.
    pub subnet: Ipv4Net,
    /// Guest default gateway.
    pub gateway: Ipv4Addr,
    /// Per-service network identity, by service name.
    pub services: BTreeMap<String, ServiceNetworkState>,
}

/// Outcome of [`NetworkManager::collect_garbage`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GarbageReport {
    /// Services whose records, TAP devices and rules were removed.
    pub removed_services: Vec<String>,
    /// TAP devices with Firework's prefix but no record; they are left alone because
    /// nothing proves Firework created them.
    pub unrecorded_taps: Vec<String>,
}

/// Applies network plans through a [`NetworkBackend`] and keeps the records in a
/// state directory.
#[derive(Debug)]
pub struct NetworkManager<B> {
    backend: B,
    state_dir: PathBuf,
    /// Serializes operations, because each one reads, changes and writes the state file.
    lock: Mutex<()>,
}

impl<B: NetworkBackend> NetworkManager<B> {
    /// Creates a manager that keeps its records in `state_dir`.
    pub fn new(backend: B, state_dir: impl Into<PathBuf>) -> Self {
        Self {
            backend,
            state_dir: state_dir.into(),
            lock: Mutex::new(()),
        }
    }

    /// Returns the backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Returns the state directory.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Assigns TAP names and guest addresses for `plan` and records them, without
    /// touching devices or rules.
    ///
    /// This is what a node with network setup turned off still needs for kernel
    /// arguments, links and health checks.
    #[instrument(skip_all, fields(services = plan.services.len()))]
    pub async fn assign(&self, plan: &NetworkPlan) -> Result<AppliedNetwork, NetError> {
        let _guard = self.lock.lock().await;
        plan.validate()?;
        let mut state = NetworkState::load(&self.state_dir)?;
        let applied = self.assign_into(plan, &mut state).await?;
        state.save(&self.state_dir)?;
        Ok(applied)
    }

    /// Makes the host match `plan`: bridge, one TAP per service, the nftables tables,
    /// and removal of TAPs and rules of services no longer in the plan.
    ///
    /// Applying the same plan again changes nothing and produces the same ruleset.
    pub async fn apply(&self, plan: &NetworkPlan) -> Result<AppliedNetwork, NetError> {
        let span =
            info_span!("network_apply", bridge = %plan.bridge, services = plan.services.len());
        async {
            let _guard = self.lock.lock().await;
            plan.validate()?;
            let mut state = NetworkState::load(&self.state_dir)?;
            let applied = self.assign_into(plan, &mut state).await?;
            // Records are written before any device is created, so a crash leaves a
            // record that the next apply or garbage collection finishes.
            state.save(&self.state_dir)?;

            self.ensure_bridge(plan, &mut state).await?;
            for (service, network) in &applied.services {
                self.ensure_tap(plan, service, &network.tap).await?;
            }

            let bindings = bindings(&applied);
            self.backend
                .apply_ruleset(&build_ruleset(plan, &bindings))
                .await?;
            state.last_plan = Some(plan.clone());
            state.save(&self.state_dir)?;

            let stale: Vec<String> = state
                .services
                .keys()
                .filter(|name| !applied.services.contains_key(*name))
                .cloned()
                .collect();
            let result = self.remove_records(&mut state, &stale).await;
            state.save(&self.state_dir)?;
            result?;
            Ok(applied)
        }
        .instrument(span)
        .await
    }

    /// Removes the TAP device, rules and record of `service`, leaving every other
    /// service as the last applied plan had it.
    #[instrument(skip(self))]
    pub async fn remove_service(&self, service: &str) -> Result<(), NetError> {
        let _guard = self.lock.lock().await;
        let mut state = NetworkState::load(&self.state_dir)?;
        if let Some(plan) = state.last_plan.as_mut() {
            plan.services.retain(|s| s.name != service);
        }
        self.reapply_recorded(&state).await?;
        let result = self.remove_records(&mut state, &[service.to_owned()]).await;
        state.save(&self.state_dir)?;
        result
    }

    /// Removes every recorded service not in `keep`, with its TAP device and rules,
    /// and deletes orphaned TAPs. Meant for agent start, with `keep` the services in the
    /// agent's records.
    #[instrument(skip_all, fields(keep = keep.len()))]
    pub async fn collect_garbage(
        &self,
        keep: &BTreeSet<String>,
    ) -> Result<GarbageReport, NetError> {
        let _guard = self.lock.lock().await;
        let mut state = NetworkState::load(&self.state_dir)?;
        let removed: Vec<String> = state
            .services
            .keys()
            .filter(|name| !keep.contains(*name))
            .cloned()
            .collect();
        if let Some(plan) = state.last_plan.as_mut() {
            plan.services.retain(|s| keep.contains(&s.name));
        }
        self.reapply_recorded(&state).await?;
        let result = self.remove_records(&mut state, &removed).await;
        state.save(&self.state_dir)?;
        result?;

        let recorded: BTreeSet<&str> = state.services.values().map(|r| r.tap.as_str()).collect();
        let unrecorded_taps: Vec<String> = self
            .backend
            .links()
            .await?
            .into_iter()
            .filter(|link| {
                link.kind == LinkKind::Tun
                    && link.name.starts_with(TAP_PREFIX)
                    && !recorded.contains(link.name.as_str())
            })
            .map(|link| link.name)
            .collect();
        for tap in &unrecorded_taps {
            warn!(interface = %tap, "TAP device has Firework's prefix but no record; leaving it alone");
        }
        Ok(GarbageReport {
            removed_services: removed,
            unrecorded_taps,
        })
    }

    /// Removes everything Firework created: TAP devices, both nftables tables, the
    /// bridge when Firework created it, and the records.
    #[instrument(skip_all)]
    pub async fn teardown(&self) -> Result<(), NetError> {
        let _guard = self.lock.lock().await;
        let mut state = NetworkState::load(&self.state_dir)?;
        self.backend.apply_ruleset(&teardown_ruleset()).await?;
        state.last_plan = None;
        let all: Vec<String> = state.services.keys().cloned().collect();
        let result = self.remove_records(&mut state, &all).await;
        if result.is_ok()
            && let Some(bridge) = state.created_bridge.clone()
        {
            self.backend.delete_link(&bridge).await?;
            state.created_bridge = None;
        }
        state.save(&self.state_dir)?;
        result
    }

    /// Rebuilds the ruleset from the last plan in `state`, with the recorded
    /// addresses, or removes it when no plan was applied.
    async fn reapply_recorded(&self, state: &NetworkState) -> Result<(), NetError> {
        let ruleset = match &state.last_plan {
            Some(plan) => {
                let bindings: BTreeMap<String, (String, Ipv4Addr)> = state
                    .services
                    .iter()
                    .map(|(name, record)| (name.clone(), (record.tap.clone(), record.address)))
                    .collect();
                build_ruleset(plan, &bindings)
            }
            None => teardown_ruleset(),
        };
        self.backend.apply_ruleset(&ruleset).await
    }

    /// Deletes the TAPs of `services` and of orphaned TAP records, dropping each
    /// record once its device is gone. Failures are logged, the other deletions go on,
    /// and the first failure is returned.
    async fn remove_records(
        &self,
        state: &mut NetworkState,
        services: &[String],
    ) -> Result<(), NetError> {
        let mut first_error = None;
        for service in services {
            let Some(record) = state.services.get(service) else {
                continue;
            };
            // A service of the current plan may have taken over this TAP by name.
            let in_use = state
                .services
                .iter()
                .any(|(other, other_record)| other != service && other_record.tap == record.tap);
            if in_use {
                state.services.remove(service);
                continue;
            }
            match self.delete_tap(&record.tap).await {
                Ok(()) => {
                    info!(service = %service, interface = %record.tap, "removed service network");
                    state.services.remove(service);
                }
                Err(err) => {
                    warn!(service = %service, error = %err, "failed to remove TAP device");
                    first_error.get_or_insert(err);
                }
            }
        }
        let orphans = std::mem::take(&mut state.orphan_taps);
        for tap in orphans {
            if state.services.values().any(|record| record.tap == tap) {
                continue;
            }
            if let Err(err) = self.delete_tap(&tap).await {
                warn!(interface = %tap, error = %err, "failed to remove orphaned TAP device");
                state.orphan_taps.push(tap);
                first_error.get_or_insert(err);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Deletes a recorded TAP device if it still exists and is still a TUN device.
    async fn delete_tap(&self, tap: &str) -> Result<(), NetError> {
        match self.backend.link(tap).await? {
            None => Ok(()),
            Some(link) if link.kind == LinkKind::Tun => self.backend.delete_link(tap).await,
            Some(_) => Err(NetError::NotATap {
                name: tap.to_owned(),
            }),
        }
    }

    /// Chooses TAP names and addresses for `plan` and updates the records in `state`.
    async fn assign_into(
        &self,
        plan: &NetworkPlan,
        state: &mut NetworkState,
    ) -> Result<AppliedNetwork, NetError> {
        let recorded_taps: BTreeSet<String> = state
            .services
            .values()
            .map(|r| r.tap.clone())
            .chain(state.orphan_taps.iter().cloned())
            .collect();
        let existing: BTreeSet<String> = self
            .backend
            .links()
            .await?
            .into_iter()
            .map(|link| link.name)
            .collect();
        let is_foreign = |name: &str| existing.contains(name) && !recorded_taps.contains(name);

        let mut services: Vec<_> = plan.services.iter().collect();
        services.sort_by(|a, b| a.name.cmp(&b.name));

        // Requested names first, so a derived name never takes one a user asked for.
        let mut taps: BTreeMap<String, String> = BTreeMap::new();
        let mut used: BTreeMap<String, String> = BTreeMap::new();
        for service in &services {
            let Some(requested) = &service.tap_name else {
                continue;
            };
            if is_foreign(requested) {
                return Err(NetError::ForeignInterface {
                    service: service.name.clone(),
                    interface: requested.clone(),
                });
            }
            if let Some(first) = used.insert(requested.clone(), service.name.clone()) {
                return Err(NetError::DuplicateTapName {
                    first,
                    second: service.name.clone(),
                    interface: requested.clone(),
                });
            }
            taps.insert(service.name.clone(), requested.clone());
        }
        // Recorded services keep their TAP unless a requested name replaced it.
        let mut other_records: BTreeMap<&str, &str> = BTreeMap::new();
        for (name, record) in &state.services {
            other_records.insert(record.tap.as_str(), name.as_str());
        }
        for service in &services {
            if taps.contains_key(&service.name) {
                continue;
            }
            let recorded = state
                .services
                .get(&service.name)
                .map(|r| r.tap.clone())
                .filter(|tap| !used.contains_key(tap));
            let tap = match recorded {
                Some(tap) => tap,
                None => (0..TAP_NAME_ATTEMPTS)
                    .map(|attempt| derive_tap_name(&service.name, attempt))
                    .find(|name| {
                        !used.contains_key(name)
                            && !is_foreign(name)
                            && other_records
                                .get(name.as_str())
                                .is_none_or(|owner| *owner == service.name)
                            && *name != plan.bridge
                    })
                    .ok_or_else(|| {
                        NetError::InvalidPlan(format!(
                            "no free TAP name for service {:?} after {TAP_NAME_ATTEMPTS} attempts",
                            service.name
                        ))
                    })?,
            };
            used.insert(tap.clone(), service.name.clone());
            taps.insert(service.name.clone(), tap);
        }

        let previous: BTreeMap<String, Ipv4Addr> = state
            .services
            .iter()
            .map(|(name, record)| (name.clone(), record.address))
            .collect();
        let addresses = assign_addresses(
            plan.subnet,
            plan.gateway,
            services.iter().map(|s| s.name.as_str()),
            &previous,
        )?;

        let subnet = plan.network();
        let mut applied = BTreeMap::new();
        for service in &services {
            let tap = taps[&service.name].clone();
            let guest = &addresses[&service.name];
            if let Some(old) = state.services.get(&service.name)
                && old.tap != tap
                && !used.contains_key(&old.tap)
            {
                state.orphan_taps.push(old.tap.clone());
            }
            state.services.insert(
                service.name.clone(),
                ServiceRecord {
                    tap: tap.clone(),
                    address: guest.address,
                    mac: guest.mac.clone(),
                },
            );
            applied.insert(
                service.name.clone(),
                ServiceNetworkState {
                    tap,
                    address: guest.address,
                    mac: guest.mac.clone(),
                    kernel_ip_arg: ip_arg(guest.address, plan.gateway, subnet),
                },
            );
        }
        Ok(AppliedNetwork {
            subnet,
            gateway: plan.gateway,
            services: applied,
        })
    }

    /// Creates or adopts the bridge. Firework changes only a bridge it created.
    async fn ensure_bridge(
        &self,
        plan: &NetworkPlan,
        state: &mut NetworkState,
    ) -> Result<(), NetError> {
        let bridge = plan.bridge.as_str();
        let gateway = Ipv4Net::new(plan.gateway, plan.subnet.prefix_len())
            .map_err(|err| NetError::InvalidPlan(err.to_string()))?;
        // A bridge Firework created under an earlier name goes first, which releases
        // its TAPs, and they are attached to the new bridge afterwards.
        if let Some(previous) = state.created_bridge.clone()
            && previous != bridge
        {
            if let Some(link) = self.backend.link(&previous).await?
                && link.kind == LinkKind::Bridge
            {
                self.backend.delete_link(&previous).await?;
            }
            state.created_bridge = None;
            state.save(&self.state_dir)?;
        }
        let owned = state.created_bridge.as_deref() == Some(bridge);
        match self.backend.link(bridge).await? {
            None => {
                state.created_bridge = Some(bridge.to_owned());
                state.save(&self.state_dir)?;
                self.backend.create_bridge(bridge).await?;
            }
            Some(link) if link.kind != LinkKind::Bridge => {
                return Err(NetError::NotABridge {
                    name: bridge.to_owned(),
                });
            }
            Some(link) if !owned => {
                if !has_address(&link, plan.gateway) {
                    return Err(NetError::AdoptedBridgeWithoutGateway {
                        bridge: bridge.to_owned(),
                        gateway: plan.gateway,
                        prefix_len: plan.subnet.prefix_len(),
                    });
                }
                return Ok(());
            }
            Some(_) => {}
        }
        self.backend.add_address(bridge, gateway).await?;
        self.backend.allow_route_localnet(bridge).await?;
        self.backend.configure_link(bridge, None, plan.mtu).await
    }

    async fn ensure_tap(
        &self,
        plan: &NetworkPlan,
        service: &str,
        tap: &str,
    ) -> Result<(), NetError> {
        match self.backend.link(tap).await? {
            None => self.backend.create_tap(tap, plan.tap_owner_uid).await?,
            Some(link) if link.kind == LinkKind::Tun => {}
            Some(_) => {
                return Err(NetError::NotATap {
                    name: tap.to_owned(),
                });
            }
        }
        info!(service, interface = tap, "TAP device ready");
        self.backend
            .configure_link(tap, Some(&plan.bridge), plan.mtu)
            .await
    }
}

fn bindings(applied: &AppliedNetwork) -> BTreeMap<String, (String, Ipv4Addr)> {
    applied
        .services
        .iter()
        .map(|(name, network)| (name.clone(), (network.tap.clone(), network.address)))
        .collect()
}
