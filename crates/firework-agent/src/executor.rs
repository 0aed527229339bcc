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
use crate::hooks::HealthGate;
use crate::intent::IntentStore;
use crate::plan::{Action, ActionKind, Plan};
use crate::spec::{DesiredVm, Intent};

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
}

impl ApplyReport {
    /// Returns the failed outcomes.
    pub fn failures(&self) -> impl Iterator<Item = &Outcome> {
        self.outcomes
            .iter()
            .filter(|outcome| outcome.error.is_some())
    }
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
            let mut outcome = self.run(action, desired).await;
            if outcome.error.is_none()
                && let Some(vm) = desired.get(action.service.as_str())
                && let Err(error) = self.gate.wait_ready(vm).await
            {
                let message = error_chain(error.as_ref());
                error!(service = %action.service, error = %message, "updated vm did not become ready; stopping the rolling update");
                outcome.error = Some(format!("not ready after update: {message}"));
                report.outcomes.push(outcome);
                report
                    .skipped
                    .extend(actions[index + 1..].iter().map(|a| a.service.clone()));
                return;
            }
            report.outcomes.push(outcome);
        }
    }

    async fn run(&self, action: &Action, desired: &BTreeMap<&str, &DesiredVm>) -> Outcome {
        let service = action.service.as_str();
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
        self.vms.delete(service).await?;
        self.intents.remove(service)?;
        Ok(())
    }

    async fn replace(&self, vm: &DesiredVm, running: bool) -> Result<(), BoxError> {
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
        Ok(())
    }
}
