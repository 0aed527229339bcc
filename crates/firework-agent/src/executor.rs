//! Applies a plan: deletes, then creates, with bounded parallelism, then updates by the
//! configured strategy. One failed service never stops the others.

use std::collections::BTreeMap;
use std::time::Duration;

use firework_model::agent::UpdateStrategy;
use futures::StreamExt;
use serde::Serialize;
use tokio::sync::watch;
use tracing::{error, info};

use crate::driver::VmDriver;
use crate::error::{BoxError, error_chain};
use crate::health::HealthParts;
use crate::hooks::HealthGate;
use crate::intent::IntentStore;
use crate::plan::{Action, ActionKind, Plan};
use crate::spec::{DesiredVm, Intent};
use crate::status::RolloutStatus;
use firework_health::Registration;
use firework_model::service::HealthCheck;
use firework_vmm::layout::StateLayout;
use firework_vmm::{VmRecord, VmSpec};

/// Returns the default number of VM operations run at once: four per core.
pub fn default_parallelism() -> usize {
    std::thread::available_parallelism().map_or(4, |n| n.get() * 4)
}

/// How the executor applies a plan.
#[derive(Debug, Clone, Copy)]
pub struct ExecutorSettings {
    /// Creates and deletes (and all-at-once updates) run at most this many at a time.
    pub parallelism: usize,
    /// How updates are applied.
    pub strategy: UpdateStrategy,
    /// The pause between two rolling updates.
    pub update_delay: Duration,
}

/// The result of one action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    /// The service.
    pub service: String,
    /// What was done.
    pub kind: ActionKind,
    /// The error chain when the action failed.
    pub error: Option<String>,
}

/// The result of [`Executor::apply`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ApplyReport {
    /// One outcome per action that ran.
    pub outcomes: Vec<Outcome>,
    /// Services whose action did not start because the agent is shutting down.
    pub skipped: Vec<String>,
    /// Pauses taken between rolling updates.
    pub pauses: usize,
    /// Each service's part in a rolling update, when the plan had one.
    pub rollout: BTreeMap<String, RolloutStatus>,
}

impl ApplyReport {
    /// Returns the failed outcomes.
    pub fn failures(&self) -> impl Iterator<Item = &Outcome> {
        self.outcomes
            .iter()
            .filter(|outcome| outcome.error.is_some())
    }
}

/// What a service ran before a rolling update replaced it.
#[derive(Debug)]
struct Previous {
    intent: Intent,
    spec: VmSpec,
    check: Option<HealthCheck>,
}

/// Drives a [`VmDriver`] through a plan.
#[derive(Debug)]
pub struct Executor<'a> {
    /// The VM runtime.
    pub vms: &'a dyn VmDriver,
    /// Where the agent records how it started each VM.
    pub intents: &'a IntentStore,
    /// The readiness gate between rolling updates.
    pub gate: &'a dyn HealthGate,
    /// Parallelism and strategy.
    pub settings: ExecutorSettings,
    /// Turns true when the agent shuts down: no new action starts after that.
    pub shutdown: watch::Receiver<bool>,
    /// The health monitor: VM actions take its service lock, and started VMs are
    /// registered with it.
    pub health: Option<&'a HealthParts>,
    /// The VM runtime's records, where a rolling update finds the spec to restore.
    pub records: Option<&'a StateLayout>,
}

impl Executor<'_> {
    /// Applies `plan`; `desired` supplies the spec of every create and update.
    pub async fn apply(&self, plan: &Plan, desired: &BTreeMap<&str, &DesiredVm>) -> ApplyReport {
        let mut report = ApplyReport::default();
        let parallelism = self.settings.parallelism.max(1);

        let deletes: Vec<&Action> = plan.of_kind(ActionKind::Delete).collect();
        self.run_parallel(&deletes, desired, parallelism, &mut report)
            .await;
        let creates: Vec<&Action> = plan.of_kind(ActionKind::Create).collect();
        self.run_parallel(&creates, desired, parallelism, &mut report)
            .await;

        let updates: Vec<&Action> = plan.of_kind(ActionKind::Update).collect();
        match self.settings.strategy {
            UpdateStrategy::AllAtOnce => {
                self.run_parallel(&updates, desired, parallelism, &mut report)
                    .await;
            }
            UpdateStrategy::Rolling => self.run_rolling(&updates, desired, &mut report).await,
        }
        report
    }

    fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    async fn run_parallel(
        &self,
        actions: &[&Action],
        desired: &BTreeMap<&str, &DesiredVm>,
        parallelism: usize,
        report: &mut ApplyReport,
    ) {
        let results: Vec<Option<Outcome>> = futures::stream::iter(actions.iter().copied())
            .map(|action| async move {
                if self.stopping() {
                    return None;
                }
                Some(self.run(action, desired).await)
            })
            .buffer_unordered(parallelism)
            .collect()
            .await;
        for (action, result) in actions.iter().zip(results) {
            match result {
                Some(outcome) => report.outcomes.push(outcome),
                None => report.skipped.push(action.service.clone()),
            }
        }
        report.outcomes.sort_by(|a, b| a.service.cmp(&b.service));
        report.skipped.sort();
    }

    async fn run_rolling(
        &self,
        actions: &[&Action],
        desired: &BTreeMap<&str, &DesiredVm>,
        report: &mut ApplyReport,
    ) {
        for (index, action) in actions.iter().enumerate() {
            if self.stopping() {
                report
                    .skipped
                    .extend(actions[index..].iter().map(|a| a.service.clone()));
                return;
            }
            if index > 0 && !self.settings.update_delay.is_zero() {
                report.pauses += 1;
                let mut shutdown = self.shutdown.clone();
                let interrupted = tokio::select! {
                    _ = tokio::time::sleep(self.settings.update_delay) => false,
                    _ = shutdown.wait_for(|stop| *stop) => true,
                };
                if interrupted {
                    info!(
                        remaining = actions.len() - index,
                        "rolling update interrupted by shutdown"
                    );
                    report
                        .skipped
                        .extend(actions[index..].iter().map(|a| a.service.clone()));
                    return;
                }
            }
            let service = action.service.as_str();
            let revision = desired
                .get(service)
                .map(|vm| vm.revision.clone())
                .unwrap_or_default();
            let previous = self.previous(service);
            let mut outcome = self.run(action, desired).await;
            let rollout = |state: &str, reason: Option<String>| RolloutStatus {
                state: state.to_owned(),
                revision: revision.clone(),
                reason,
            };
            if let Some(error) = &outcome.error {
                report
                    .rollout
                    .insert(service.to_owned(), rollout("failed", Some(error.clone())));
            } else if let Some(vm) = desired.get(service)
                && let Err(error) = self.gate.wait_ready(vm).await
            {
                let message = error_chain(error.as_ref());
                let remaining = &actions[index + 1..];
                if crate::health::is_preempted(&error) {
                    info!(service, %revision, "a newer revision preempts the rolling update");
                    outcome.error = Some(format!("rollout preempted: {message}"));
                    report.rollout.insert(
                        service.to_owned(),
                        rollout("skipped", Some("preempted by a newer revision".to_owned())),
                    );
                } else {
                    error!(service, %revision, error = %message, "updated vm did not become ready; rolling back and stopping the rolling update");
                    let reason = match self.restore(service, previous).await {
                        Ok(()) => {
                            info!(service, %revision, reason = %message, "rolled back");
                            message.clone()
                        }
                        Err(restore) => {
                            let restore = error_chain(restore.as_ref());
                            error!(service, %revision, error = %restore, "cannot restore the previous spec");
                            format!("{message}; restoring the previous spec failed: {restore}")
                        }
                    };
                    outcome.error = Some(format!("rolled back revision {revision}: {reason}"));
                    report
                        .rollout
                        .insert(service.to_owned(), rollout("rolled back", Some(reason)));
                }
                report.outcomes.push(outcome);
                for skipped in remaining {
                    report.skipped.push(skipped.service.clone());
                    let revision = desired
                        .get(skipped.service.as_str())
                        .map(|vm| vm.revision.clone())
                        .unwrap_or_default();
                    report.rollout.insert(
                        skipped.service.clone(),
                        RolloutStatus {
                            state: "skipped".to_owned(),
                            revision,
                            reason: Some(format!("the rolling update stopped at `{service}`")),
                        },
                    );
                }
                return;
            } else {
                report
                    .rollout
                    .insert(service.to_owned(), rollout("updated", None));
            }
            report.outcomes.push(outcome);
        }
    }

    /// Reads what a service runs now: its intent record and its VM spec.
    fn previous(&self, service: &str) -> Option<Previous> {
        let records = self.records?;
        let intent = self.intents.load_all().remove(service)?;
        let record = VmRecord::read(service, &records.record_path(service)).ok()?;
        let check = self.health.and_then(|health| health.check(service));
        Some(Previous {
            intent,
            spec: record.spec,
            check,
        })
    }

    /// Replaces the updated VM of `service` by the spec it ran before the update.
    async fn restore(&self, service: &str, previous: Option<Previous>) -> Result<(), BoxError> {
        let Previous {
            intent,
            spec,
            check,
        } = previous.ok_or_else(|| format!("no earlier spec of `{service}` is recorded"))?;
        let _guard = match self.health {
            Some(health) => Some(health.monitor.locks().lock(service).await),
            None => None,
        };
        if let Some(health) = self.health {
            health.monitor.deregister(service);
        }
        self.vms.stop(service).await?;
        self.intents.write(service, &intent)?;
        self.vms.start(spec).await?;
        if let Some(health) = self.health {
            let guest_ip = intent
                .fingerprint
                .network
                .as_ref()
                .map(|network| network.guest_ip.to_string());
            health.register(Registration::new(service, check, guest_ip.as_deref()));
        }
        Ok(())
    }

    async fn run(&self, action: &Action, desired: &BTreeMap<&str, &DesiredVm>) -> Outcome {
        let service = action.service.as_str();
        let _guard = match self.health {
            Some(health) => Some(health.monitor.locks().lock(service).await),
            None => None,
        };
        let vm = desired.get(service).copied();
        let revision = vm.map(|vm| vm.revision.as_str()).unwrap_or("");
        let result = match action.kind {
            ActionKind::Delete => {
                info!(service, action = "delete", reason = %action.reason, "deleting vm");
                self.delete(service).await
            }
            ActionKind::Create | ActionKind::Update => match vm {
                Some(vm) => {
                    info!(service, revision, action = ?action.kind, reason = %action.reason, changed = ?action.changed, "starting vm");
                    self.replace(vm, action.kind == ActionKind::Update).await
                }
                None => Err(BoxError::from(format!(
                    "no desired spec for service `{service}`"
                ))),
            },
            ActionKind::Unchanged => Ok(()),
        };
        let error = match result {
            Ok(()) => {
                info!(service, revision, action = ?action.kind, "vm action done");
                None
            }
            Err(error) => {
                let message = error_chain(error.as_ref());
                error!(service, revision, action = ?action.kind, error = %message, "vm action failed");
                Some(message)
            }
        };
        Outcome {
            service: service.to_owned(),
            kind: action.kind,
            error,
        }
    }

    async fn delete(&self, service: &str) -> Result<(), BoxError> {
        if let Some(health) = self.health {
            health.monitor.deregister(service);
        }
        self.vms.delete(service).await?;
        self.intents.remove(service)?;
        if let Some(health) = self.health {
            health.monitor.locks().remove(service);
        }
        Ok(())
    }

    async fn replace(&self, vm: &DesiredVm, running: bool) -> Result<(), BoxError> {
        if let Some(health) = self.health {
            health.monitor.deregister(&vm.service);
        }
        if running {
            self.vms.stop(&vm.service).await?;
        }
        self.intents.write(
            &vm.service,
            &Intent {
                label: vm.label.clone(),
                revision: vm.revision.clone(),
                hash: vm.hash.clone(),
                fingerprint: vm.fingerprint.clone(),
            },
        )?;
        let status = self.vms.start(vm.vm.clone()).await?;
        info!(service = %vm.service, revision = %vm.revision, pid = ?status.pid, vm_id = %status.vm_id, "vm started");
        if let Some(health) = self.health {
            let guest_ip = vm
                .fingerprint
                .network
                .as_ref()
                .map(|network| network.guest_ip.to_string());
            health.register(Registration::new(
                &vm.service,
                vm.health_check.clone(),
                guest_ip.as_deref(),
            ));
        }
        Ok(())
    }
}
