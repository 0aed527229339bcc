//! Shared pieces of the agent tests: a recording VM driver, a local store in a temporary
//! directory, and agents wired to them.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use firework_agent::capacity::CapacitySource;
use firework_agent::driver::{NetDriver, VmDriver};
use firework_agent::error::BoxError;
use firework_agent::{Agent, AgentParts, AgentSettings};
use firework_model::agent::UpdateStrategy;
use firework_model::registry::Resources;
use firework_net::{
    AppliedNetwork, NetworkPlan, ServiceNetworkState, assign_addresses, derive_tap_name, ip_arg,
};
use firework_store::LocalStore;
use firework_vmm::{RecordState, VmSpec, VmStatus};
use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::watch;

/// A VM driver that keeps VMs in a map and records every call.
#[derive(Debug, Default)]
pub struct FakeVms {
    pub vms: Mutex<BTreeMap<String, (VmStatus, VmSpec)>>,
    pub calls: Mutex<Vec<String>>,
    pub failing: Mutex<BTreeSet<String>>,
    /// Services whose delete fails, leaving the VM as it is.
    pub failing_deletes: Mutex<BTreeSet<String>>,
    pub start_delay: Mutex<Duration>,
    pub in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
    next_pid: AtomicUsize,
}

impl FakeVms {
    pub fn take_calls(&self) -> Vec<String> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }

    pub fn running(&self) -> Vec<String> {
        self.vms
            .lock()
            .unwrap()
            .values()
            .filter(|(status, _)| status.state == RecordState::Running)
            .map(|(status, _)| status.service.clone())
            .collect()
    }

    pub fn spec(&self, service: &str) -> VmSpec {
        self.vms.lock().unwrap()[service].1.clone()
    }

    pub fn pid(&self, service: &str) -> Option<i32> {
        self.vms.lock().unwrap()[service].0.pid
    }

    /// Marks a VM as exited, as a crash would.
    pub fn crash(&self, service: &str) {
        let mut vms = self.vms.lock().unwrap();
        let entry = vms.get_mut(service).unwrap();
        entry.0.state = RecordState::Exited;
    }

    pub fn fail(&self, service: &str, failing: bool) {
        let mut set = self.failing.lock().unwrap();
        if failing {
            set.insert(service.to_owned());
        } else {
            set.remove(service);
        }
    }
}

impl VmDriver for FakeVms {
    fn list(&self) -> BoxFuture<'_, Vec<VmStatus>> {
        let list = self
            .vms
            .lock()
            .unwrap()
            .values()
            .map(|(status, _)| status.clone())
            .collect();
        async move { list }.boxed()
    }

    fn start(&self, spec: VmSpec) -> BoxFuture<'_, Result<VmStatus, BoxError>> {
        async move {
            self.calls
                .lock()
                .unwrap()
                .push(format!("start {}", spec.service));
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_in_flight.fetch_max(now, Ordering::SeqCst);
            let delay = *self.start_delay.lock().unwrap();
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            if self.failing.lock().unwrap().contains(&spec.service) {
                return Err(BoxError::from(format!(
                    "injected start failure of {}",
                    spec.service
                )));
            }
            let pid = 1000 + self.next_pid.fetch_add(1, Ordering::SeqCst) as i32;
            let status = VmStatus {
                service: spec.service.clone(),
                vm_id: spec.vm_id.clone(),
                generation: 1,
                state: RecordState::Running,
                pid: Some(pid),
                spec_hash: spec.hash(),
                socket_path: PathBuf::from("/nonexistent.sock"),
                log_path: PathBuf::from("/nonexistent.log"),
            };
            self.vms
                .lock()
                .unwrap()
                .insert(spec.service.clone(), (status.clone(), spec));
            Ok(status)
        }
        .boxed()
    }

    fn stop<'a>(&'a self, service: &'a str) -> BoxFuture<'a, Result<(), BoxError>> {
        async move {
            self.calls.lock().unwrap().push(format!("stop {service}"));
            if let Some(entry) = self.vms.lock().unwrap().get_mut(service) {
                entry.0.state = RecordState::Stopped;
            }
            Ok(())
        }
        .boxed()
    }

    fn delete<'a>(&'a self, service: &'a str) -> BoxFuture<'a, Result<(), BoxError>> {
        async move {
            self.calls.lock().unwrap().push(format!("delete {service}"));
            if self.failing_deletes.lock().unwrap().contains(service) {
                return Err(BoxError::from(format!(
                    "injected delete failure of {service}"
                )));
            }
            self.vms.lock().unwrap().remove(service);
            Ok(())
        }
        .boxed()
    }
}

/// A network driver that keeps a TAP device and an address record for each service of
/// the last plan it applied, as `NetworkManager::apply` does, and records every plan.
#[derive(Debug, Default)]
pub struct FakeNet {
    /// The TAP devices that exist, by service.
    pub taps: Mutex<BTreeMap<String, String>>,
    /// The recorded guest addresses, by service.
    pub addresses: Mutex<BTreeMap<String, std::net::Ipv4Addr>>,
    /// The service names of each plan passed to `reconcile`, in call order.
    pub plans: Mutex<Vec<Vec<String>>>,
    /// Calls to `reconcile` from this one (0-based) on fail and change nothing.
    pub fail_from_call: Mutex<Option<usize>>,
}

impl FakeNet {
    pub fn taps(&self) -> Vec<String> {
        self.taps.lock().unwrap().keys().cloned().collect()
    }

    pub fn take_plans(&self) -> Vec<Vec<String>> {
        std::mem::take(&mut *self.plans.lock().unwrap())
    }

    fn apply(&self, plan: &NetworkPlan) -> Result<AppliedNetwork, BoxError> {
        let call = {
            let mut plans = self.plans.lock().unwrap();
            plans.push(plan.services.iter().map(|s| s.name.clone()).collect());
            plans.len() - 1
        };
        if self
            .fail_from_call
            .lock()
            .unwrap()
            .is_some_and(|first| call >= first)
        {
            return Err(BoxError::from("injected network failure"));
        }
        let mut addresses = self.addresses.lock().unwrap();
        let assigned = assign_addresses(
            plan.subnet,
            plan.gateway,
            plan.services.iter().map(|s| s.name.as_str()),
            &addresses,
        )?;
        let mut services = BTreeMap::new();
        for service in &plan.services {
            let guest = &assigned[&service.name];
            let tap = service
                .tap_name
                .clone()
                .unwrap_or_else(|| derive_tap_name(&service.name, 0));
            services.insert(
                service.name.clone(),
                ServiceNetworkState {
                    tap,
                    address: guest.address,
                    mac: guest.mac.clone(),
                    kernel_ip_arg: ip_arg(guest.address, plan.gateway, plan.network()),
                },
            );
        }
        *addresses = services
            .iter()
            .map(|(name, network)| (name.clone(), network.address))
            .collect();
        *self.taps.lock().unwrap() = services
            .iter()
            .map(|(name, network)| (name.clone(), network.tap.clone()))
            .collect();
        Ok(AppliedNetwork {
            subnet: plan.network(),
            gateway: plan.gateway,
            services,
        })
    }
}

impl NetDriver for FakeNet {
    fn reconcile<'a>(
        &'a self,
        plan: &'a NetworkPlan,
    ) -> BoxFuture<'a, Result<AppliedNetwork, BoxError>> {
        let result = self.apply(plan);
        async move { result }.boxed()
    }
}

/// Guest network settings on 172.30.0.0/24 with isolation.
pub fn network_settings(bridge: &str) -> firework_net::NetworkPlan {
    firework_net::NetworkPlan {
        bridge: bridge.to_owned(),
        subnet: "172.30.0.0/24".parse().unwrap(),
        gateway: std::net::Ipv4Addr::new(172, 30, 0, 1),
        out_interface: None,
        isolation: true,
        agent_api_port: Some(8080),
        mtu: None,
        tap_owner_uid: None,
        services: Vec::new(),
    }
}

/// A scripted host capacity that counts its reads.
#[derive(Debug)]
pub struct FixedCapacity {
    pub resources: Mutex<Option<Resources>>,
    pub reads: Arc<AtomicUsize>,
}

impl CapacitySource for FixedCapacity {
    fn read(&self) -> std::io::Result<Resources> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.resources
            .lock()
            .unwrap()
            .ok_or_else(|| std::io::Error::other("scripted capacity read failure"))
    }
}

/// A store directory with kernel and image files.
pub struct World {
    pub dir: tempfile::TempDir,
    pub vms: Arc<FakeVms>,
}

impl World {
    pub fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("store/nodes")).unwrap();
        std::fs::create_dir_all(dir.path().join("images")).unwrap();
        std::fs::write(dir.path().join("images/vmlinux"), b"\x7fELF kernel").unwrap();
        for image in ["a.ext4", "b.ext4", "c.ext4"] {
            std::fs::write(dir.path().join("images").join(image), b"image").unwrap();
        }
        World {
            dir,
            vms: Arc::new(FakeVms::default()),
        }
    }

    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    pub fn images(&self) -> PathBuf {
        self.dir.path().join("images")
    }

    pub fn write_label(&self, label: &str, yaml: &str) {
        std::fs::write(
            self.store_dir().join("nodes").join(format!("{label}.yaml")),
            yaml,
        )
        .unwrap();
    }

    /// A service block with the fixture kernel and image.
    pub fn service(&self, name: &str, image: &str, extra: &str) -> String {
        format!(
            "  - name: {name}\n    image: {}\n    kernel: {}\n    vcpus: 1\n    memory_mb: 128\n{extra}",
            self.images().join(image).display(),
            self.images().join("vmlinux").display()
        )
    }

    pub fn settings(&self, labels: &[&str]) -> AgentSettings {
        AgentSettings {
            node: "node-1".to_owned(),
            labels: labels.iter().map(|l| (*l).to_owned()).collect(),
            node_types: Vec::new(),
            host_ip: None,
            network: None,
            capacity_check: false,
            reserved: Resources::default(),
            capacity_override: Default::default(),
            executor: firework_agent::executor::ExecutorSettings {
                parallelism: 4,
                strategy: UpdateStrategy::AllAtOnce,
                update_delay: Duration::ZERO,
            },
            max_delete_share: 1.0,
            state_dir: self.dir.path().join("state"),
            gate: firework_agent::health::GateSettings::default(),
        }
    }

    pub fn agent(&self, settings: AgentSettings) -> (Agent, watch::Sender<bool>) {
        self.agent_with(settings, |_| {})
    }

    pub fn agent_with(
        &self,
        settings: AgentSettings,
        adjust: impl FnOnce(&mut AgentParts),
    ) -> (Agent, watch::Sender<bool>) {
        let store = Arc::new(LocalStore::new(self.store_dir()));
        let vms: Arc<dyn VmDriver> = self.vms.clone();
        let mut parts = AgentParts::new(store, None, vms, None);
        adjust(&mut parts);
        let (tx, rx) = watch::channel(false);
        (Agent::new(settings, parts, rx).unwrap(), tx)
    }
}

pub fn path_str(path: &Path) -> String {
    path.display().to_string()
}
pub mod process;
