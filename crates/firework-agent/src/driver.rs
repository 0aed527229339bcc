//! The traits the executor drives, with their implementations over the real VM runtime and
//! host network. Unit tests use recording fakes instead.

use std::fmt::Debug;

use firework_net::{AppliedNetwork, LinuxBackend, NetworkManager, NetworkPlan};
use firework_vmm::{VmRuntime, VmSpec, VmStatus};
use futures::FutureExt;
use futures::future::BoxFuture;

use crate::error::BoxError;

/// Starts, stops and lists VMs.
pub trait VmDriver: Send + Sync + Debug + 'static {
    /// Returns every VM the runtime has a record of.
    fn list(&self) -> BoxFuture<'_, Vec<VmStatus>>;
    /// Starts a VM and returns once it runs.
    fn start(&self, spec: VmSpec) -> BoxFuture<'_, Result<VmStatus, BoxError>>;
    /// Stops a service's VM, keeping its record.
    fn stop<'a>(&'a self, service: &'a str) -> BoxFuture<'a, Result<(), BoxError>>;
    /// Stops a service's VM and removes its record and logs.
    fn delete<'a>(&'a self, service: &'a str) -> BoxFuture<'a, Result<(), BoxError>>;
}

impl VmDriver for VmRuntime {
    fn list(&self) -> BoxFuture<'_, Vec<VmStatus>> {
        VmRuntime::list(self).boxed()
    }

    fn start(&self, spec: VmSpec) -> BoxFuture<'_, Result<VmStatus, BoxError>> {
        async move { VmRuntime::start(self, spec).await.map_err(BoxError::from) }.boxed()
    }

    fn stop<'a>(&'a self, service: &'a str) -> BoxFuture<'a, Result<(), BoxError>> {
        async move {
            VmRuntime::stop(self, service)
                .await
                .map(|_| ())
                .map_err(BoxError::from)
        }
        .boxed()
    }

    fn delete<'a>(&'a self, service: &'a str) -> BoxFuture<'a, Result<(), BoxError>> {
        async move {
            VmRuntime::delete(self, service)
                .await
                .map_err(BoxError::from)
        }
        .boxed()
    }
}

/// Assigns guest addresses and, when network setup is on, makes the host network match.
pub trait NetDriver: Send + Sync + Debug + 'static {
    /// Assigns addresses for `plan` and applies it to the host when the driver sets up
    /// networking.
    fn reconcile<'a>(
        &'a self,
        plan: &'a NetworkPlan,
    ) -> BoxFuture<'a, Result<AppliedNetwork, BoxError>>;
}

/// The host network through rtnetlink and nftables.
#[derive(Debug)]
pub struct HostNetwork {
    manager: NetworkManager<LinuxBackend>,
    setup: bool,
}

impl HostNetwork {
    /// A driver keeping its records in `state_dir`. With `setup` false it only assigns
    /// addresses, and the operator provides bridge, TAP devices and rules.
    pub fn new(state_dir: impl Into<std::path::PathBuf>, setup: bool) -> Result<Self, BoxError> {
        Ok(HostNetwork {
            manager: NetworkManager::new(LinuxBackend::new()?, state_dir),
            setup,
        })
    }
}

impl NetDriver for HostNetwork {
    fn reconcile<'a>(
        &'a self,
        plan: &'a NetworkPlan,
    ) -> BoxFuture<'a, Result<AppliedNetwork, BoxError>> {
        async move {
            let result = if self.setup {
                self.manager.apply(plan).await
            } else {
                self.manager.assign(plan).await
            };
            result.map_err(BoxError::from)
        }
        .boxed()
    }
}

/// A read-only view of the VM runtime's records for `--dry-run`: it lists VMs without
/// adopting or cleaning anything, and refuses every change.
#[derive(Debug, Clone)]
pub struct RecordsView {
    layout: firework_vmm::layout::StateLayout,
}

impl RecordsView {
    /// A view of the records under `<state_dir>/vms/`.
    pub fn new(state_dir: impl Into<std::path::PathBuf>) -> RecordsView {
        RecordsView {
            layout: firework_vmm::layout::StateLayout::new(state_dir),
        }
    }

    fn read_all(&self) -> Vec<VmStatus> {
        let Ok(entries) = std::fs::read_dir(self.layout.vms_dir()) else {
            return Vec::new();
        };
        let mut statuses = Vec::new();
        for entry in entries.flatten() {
            let Some(service) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let path = self.layout.record_path(&service);
            let Ok(record) = firework_vmm::VmRecord::read(&service, &path) else {
                continue;
            };
            let mut status = VmStatus::from(&record);
            let alive = record.process.is_some_and(|identity| {
                identity
                    .check(&record.cmdline_socket, &record.vm_id)
                    .is_ours()
            });
            if !alive && status.state == firework_vmm::RecordState::Running {
                status.state = firework_vmm::RecordState::Exited;
            }
            statuses.push(status);
        }
        statuses.sort_by(|a, b| a.service.cmp(&b.service));
        statuses
    }
}

fn read_only() -> BoxError {
    BoxError::from("a dry run changes no vm")
}

impl VmDriver for RecordsView {
    fn list(&self) -> BoxFuture<'_, Vec<VmStatus>> {
        let statuses = self.read_all();
        async move { statuses }.boxed()
    }

    fn start(&self, _spec: VmSpec) -> BoxFuture<'_, Result<VmStatus, BoxError>> {
        async { Err(read_only()) }.boxed()
    }

    fn stop<'a>(&'a self, _service: &'a str) -> BoxFuture<'a, Result<(), BoxError>> {
        async { Err(read_only()) }.boxed()
    }

    fn delete<'a>(&'a self, _service: &'a str) -> BoxFuture<'a, Result<(), BoxError>> {
        async { Err(read_only()) }.boxed()
    }
}
