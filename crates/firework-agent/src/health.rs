//! Health checks through `firework-health`: the restarter the monitor calls, the rollout
//! gate, and the settings of both.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use firework_health::{CancelToken, GateError, HealthMonitor, Registration, Restarter};
use firework_metrics::AgentMetrics;
use firework_model::service::HealthCheck;
use firework_vmm::VmRecord;
use firework_vmm::layout::StateLayout;
use futures::FutureExt;
use futures::future::BoxFuture;
use tracing::{error, info};

use crate::driver::VmDriver;
use crate::error::BoxError;
use crate::hooks::HealthGate;
use crate::spec::DesiredVm;

/// How long an updated service may take to become healthy before the rollout rolls it
/// back.
pub const DEFAULT_PROGRESS_DEADLINE: Duration = firework_model::agent::DEFAULT_PROGRESS_DEADLINE.0;
/// How long an updated service without a probe must run before the rollout moves on.
pub const DEFAULT_MIN_READY: Duration = firework_model::agent::DEFAULT_MIN_READY.0;
/// The maximum time a restart by the monitor may take, stop and start together.
pub const RESTART_TIMEOUT: Duration = Duration::from_secs(120);
/// How often a rollout that waits on the gate checks the store for a newer revision.
pub const PREEMPT_POLL: Duration = Duration::from_secs(2);

/// Settings of the rolling-update gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateSettings {
    /// The maximum wait for an updated service to become healthy.
    pub progress_deadline: Duration,
    /// The time an unprobed service must run to count as ready.
    pub min_ready: Duration,
}

impl Default for GateSettings {
    fn default() -> Self {
        GateSettings {
            progress_deadline: DEFAULT_PROGRESS_DEADLINE,
            min_ready: DEFAULT_MIN_READY,
        }
    }
}

/// The health monitor and the token that preempts the rollout in progress.
#[derive(Debug, Clone)]
pub struct HealthParts {
    /// The monitor.
    pub monitor: Arc<HealthMonitor>,
    /// Cancelled when a newer revision preempts the running rollout; replaced every tick.
    pub cancel: Arc<Mutex<CancelToken>>,
    /// The health check each registered service was registered with.
    pub checks: Arc<Mutex<BTreeMap<String, Option<HealthCheck>>>>,
}

impl HealthParts {
    /// Bundles `monitor` with a fresh preemption token.
    pub fn new(monitor: Arc<HealthMonitor>) -> HealthParts {
        HealthParts {
            monitor,
            cancel: Arc::new(Mutex::new(CancelToken::new())),
            checks: Arc::new(Mutex::new(BTreeMap::new())),
        }
    }

    /// Registers a started VM with the monitor and remembers its check.
    pub fn register(&self, registration: Registration) {
        self.checks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(registration.service.clone(), registration.check.clone());
        self.monitor.register(registration);
    }

    /// Returns the check `service` was last registered with.
    pub fn check(&self, service: &str) -> Option<HealthCheck> {
        self.checks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(service)
            .cloned()
            .flatten()
    }

    /// Returns a fresh token for a new rollout and installs it for the gate.
    pub fn new_rollout(&self) -> CancelToken {
        let token = CancelToken::new();
        *self
            .cancel
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = token.clone();
        token
    }
}

/// Restarts a VM with the spec in its runtime record: stop, then start.
#[derive(Debug)]
pub struct VmRestarter {
    /// The VM runtime.
    pub vms: Arc<dyn VmDriver>,
    /// The layout of the VM records.
    pub layout: StateLayout,
    /// The metrics that count restarts and failures.
    pub metrics: Arc<AgentMetrics>,
}

impl Restarter for VmRestarter {
    fn restart<'a>(&'a self, service: &'a str) -> BoxFuture<'a, Result<(), BoxError>> {
        async move {
            let result = tokio::time::timeout(RESTART_TIMEOUT, async {
                let record = VmRecord::read(service, &self.layout.record_path(service))?;
                self.vms.stop(service).await?;
                let status = self.vms.start(record.spec).await?;
                info!(service, pid = ?status.pid, vm_id = %status.vm_id, "vm restarted by the health monitor");
                Ok::<(), BoxError>(())
            })
            .await
            .unwrap_or_else(|_| {
                Err(format!("restart of `{service}` timed out after {} s", RESTART_TIMEOUT.as_secs()).into())
            });
            match &result {
                Ok(()) => self.metrics.record_vm_restart(service),
                Err(error) => {
                    self.metrics.record_vm_failure(service);
                    error!(service, error = %crate::error::error_chain(error.as_ref()), "restart failed");
                }
            }
            result
        }
        .boxed()
    }
}

/// The rollout gate: waits until the updated service is healthy.
#[derive(Debug)]
pub struct MonitorGate {
    /// The monitor and the preemption token.
    pub health: HealthParts,
    /// Deadline and minimum ready time.
    pub settings: GateSettings,
}

impl HealthGate for MonitorGate {
    fn wait_ready<'a>(&'a self, vm: &'a DesiredVm) -> BoxFuture<'a, Result<(), BoxError>> {
        async move {
            let cancel = self
                .health
                .cancel
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .clone();
            self.health
                .monitor
                .wait_healthy(
                    &vm.service,
                    self.settings.progress_deadline,
                    self.settings.min_ready,
                    &cancel,
                )
                .await
                .map_err(|error| -> BoxError { Box::new(error) })
        }
        .boxed()
    }
}

/// Returns whether a gate error means a newer revision preempted the rollout.
pub fn is_preempted(error: &BoxError) -> bool {
    matches!(
        error.downcast_ref::<GateError>(),
        Some(GateError::Preempted { .. })
    )
}
