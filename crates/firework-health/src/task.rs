//! The task that probes and restarts one service.

use std::error::Error;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use firework_model::service::HealthCheck;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::{Instant, sleep_until};

use crate::event::HealthEvent;
use crate::locks::ServiceLocks;
use crate::monitor::Restarter;
use crate::policy::{Decision, RestartPolicy};
use crate::probe::{ProbeError, Prober};
use crate::schedule::{ProbeKind, ProbeSchedule};
use crate::state::{HealthState, ServiceHealth, bound_error};
use crate::target::ProbeTarget;

/// A request from the monitor handle to a service task.
#[derive(Debug)]
pub(crate) enum Command {
    VmExited(String),
    Reset,
    Stop,
}

/// The outcome of waiting for a scheduled restart.
enum Wait {
    Elapsed,
    RestartNow,
    Stop,
    Closed,
}

pub(crate) struct ServiceTask {
    pub(crate) service: String,
    /// The check and its target; `None` when the service is not probed.
    pub(crate) probed: Option<(HealthCheck, ProbeTarget)>,
    pub(crate) prober: Arc<dyn Prober>,
    pub(crate) restarter: Arc<dyn Restarter>,
    pub(crate) locks: ServiceLocks,
    pub(crate) policy: RestartPolicy,
    pub(crate) events: broadcast::Sender<HealthEvent>,
    pub(crate) health: watch::Sender<ServiceHealth>,
    pub(crate) commands: mpsc::UnboundedReceiver<Command>,
    /// Start of the current healthy streak.
    pub(crate) healthy_since: Option<Instant>,
    /// The reason the service is not probed, when it is not.
    pub(crate) not_probed_reason: Option<String>,
}

impl ServiceTask {
    pub(crate) async fn run(mut self) {
        let mut schedule = self.probed.as_ref().map(|(check, _)| {
            let interval = Duration::from(check.interval).max(Duration::from_millis(1));
            ProbeSchedule::new(interval, Instant::now())
        });

        loop {
            let state = self.state();
            let probing = schedule.is_some()
                && matches!(
                    state,
                    HealthState::Starting | HealthState::Healthy | HealthState::Unhealthy
                );
            let (wake, kind) = schedule.as_ref().map_or_else(
                || (Instant::now(), ProbeKind::Regular),
                |schedule| schedule.next(state == HealthState::Starting),
            );
            tokio::select! {
                () = sleep_until(wake), if probing => {
                    let Some(schedule) = schedule.as_mut() else { continue };
                    let Some(exhausted) = self.probe(kind, schedule).await else {
                        continue;
                    };
                    if !self.restart_cycle(&exhausted).await {
                        return;
                    }
                    schedule.restart(Instant::now());
                }
                command = self.commands.recv() => {
                    let restarts = self.health.borrow().restarts;
                    let keep_running = match command {
                        None => false,
                        Some(Command::VmExited(reason)) => self.on_exit(&reason).await,
                        Some(Command::Reset) => self.on_reset().await,
                        Some(Command::Stop) => {
                            self.set_state(HealthState::Stopped, None);
                            true
                        }
                    };
                    if !keep_running {
                        return;
                    }
                    if let Some(schedule) = schedule.as_mut() {
                        let now = Instant::now();
                        if self.health.borrow().restarts == restarts {
                            schedule.postpone_regular(now);
                        } else {
                            schedule.restart(now);
                        }
                    }
                }
            }
        }
    }

    fn state(&self) -> HealthState {
        self.health.borrow().state
    }

    fn initial_state(&self) -> HealthState {
        if self.probed.is_some() {
            HealthState::Starting
        } else {
            HealthState::NotProbed
        }
    }

    /// Runs one probe of `kind` and records it in the schedule and the snapshot. Returns the
    /// reason when the counted failures reached `retries`.
    ///
    /// A startup probe still running when the regular probe is due is cancelled and not
    /// recorded in the snapshot, and the regular probe follows at once.
    async fn probe(&mut self, kind: ProbeKind, schedule: &mut ProbeSchedule) -> Option<String> {
        let (check, target) = self.probed.as_ref()?;
        let probe = probe_with_timeout(self.prober.as_ref(), check, target);
        let result = match kind {
            ProbeKind::Regular => Some(probe.await),
            ProbeKind::Startup => tokio::select! {
                result = probe => Some(result),
                () = sleep_until(schedule.regular_at()) => None,
            },
        };
        schedule.probed(kind, Instant::now());
        match result {
            Some(result) => self.record(kind, result),
            None => {
                tracing::debug!(service = %self.service, "startup probe cancelled because the regular probe is due");
                None
            }
        }
    }

    /// Records the result of a probe of `kind`. A failure counts towards `retries` only for
    /// a regular probe after the start period. Returns the reason when the counted failures
    /// reached `retries`.
    fn record(&mut self, kind: ProbeKind, result: Result<(), ProbeError>) -> Option<String> {
        let (check, _) = self.probed.as_ref()?;
        let now = Instant::now();
        let in_start_period = now < self.health.borrow().started_at + check.start_period.0;
        let counted = kind == ProbeKind::Regular && !in_start_period;
        let (retries, threshold) = (check.retries.max(1), check.success_threshold.max(1));

        let mut exhausted = None;
        let mut became_healthy = false;
        let mut became_unhealthy = false;
        self.update(|health| {
            health.probes += 1;
            health.last_probe = Some(SystemTime::now());
            match &result {
                Ok(()) => {
                    health.consecutive_failures = 0;
                    health.consecutive_successes = health.consecutive_successes.saturating_add(1);
                    health.last_error = None;
                    if health.consecutive_successes >= threshold
                        && health.state != HealthState::Healthy
                    {
                        health.state = HealthState::Healthy;
                        became_healthy = true;
                    }
                }
                Err(error) => {
                    health.probe_failures += 1;
                    health.consecutive_successes = 0;
                    let message = bound_error(&error_chain(error));
                    health.last_error = Some(message.clone());
                    if counted {
                        health.consecutive_failures = health.consecutive_failures.saturating_add(1);
                        became_unhealthy = health.state == HealthState::Healthy;
                        health.state = HealthState::Unhealthy;
                        if health.consecutive_failures >= retries {
                            exhausted = Some(message);
                        }
                    }
                }
            }
        });

        if became_healthy {
            self.healthy_since = Some(now);
            tracing::info!(service = %self.service, "service healthy");
        }
        if became_unhealthy && let Some(since) = self.healthy_since.take() {
            self.policy
                .on_healthy_for(now.saturating_duration_since(since));
        }
        if let Err(error) = &result {
            tracing::debug!(service = %self.service, error = %error_chain(error), kind = kind.name(), counted, "probe failed");
        }
        if let Some(reason) = &exhausted {
            tracing::warn!(service = %self.service, retries, reason = %reason, "health check failed; restarting");
            self.emit(HealthEvent::Unhealthy {
                service: self.service.clone(),
                reason: reason.clone(),
            });
        }
        exhausted
    }

    async fn on_exit(&mut self, reason: &str) -> bool {
        if matches!(self.state(), HealthState::Stopped | HealthState::Failing) {
            tracing::info!(service = %self.service, reason, state = %self.state(), "VM exited; not restarted in this state");
            return true;
        }
        let now = Instant::now();
        let running_for = if self.probed.is_some() {
            self.healthy_since
                .take()
                .map(|since| now.saturating_duration_since(since))
        } else {
            Some(now.saturating_duration_since(self.health.borrow().started_at))
        };
        if let Some(running_for) = running_for {
            self.policy.on_healthy_for(running_for);
        }
        let reason = format!("VM exited: {reason}");
        tracing::warn!(service = %self.service, reason = %reason, "VM exited; restarting");
        self.update(|health| health.last_error = Some(bound_error(&reason)));
        self.emit(HealthEvent::Unhealthy {
            service: self.service.clone(),
            reason: reason.clone(),
        });
        self.restart_cycle(&reason).await
    }

    async fn on_reset(&mut self) -> bool {
        self.policy.reset();
        tracing::info!(service = %self.service, state = %self.state(), "restart history reset");
        if self.state() != HealthState::Failing {
            return true;
        }
        match self.restart_now().await {
            Ok(()) => true,
            Err(error) => self.restart_cycle(&error).await,
        }
    }

    /// Restarts the VM per the policy until a restart succeeds or the policy gives up.
    /// Returns false when the task must end (the monitor dropped the service).
    async fn restart_cycle(&mut self, reason: &str) -> bool {
        let mut reason = reason.to_string();
        loop {
            self.healthy_since = None;
            let now = Instant::now();
            let at = match self.policy.on_failure(now) {
                Decision::MarkFailing => {
                    let config = self.policy.config();
                    let why = format!(
                        "{} restarts within {:?}; last failure: {reason}",
                        config.max_restarts, config.window
                    );
                    tracing::error!(service = %self.service, reason = %why, "service marked failing; reset it or change its spec");
                    self.set_state(HealthState::Failing, Some(bound_error(&why)));
                    self.emit(HealthEvent::Failing {
                        service: self.service.clone(),
                        reason: reason.clone(),
                    });
                    return true;
                }
                Decision::RestartAt(at) => at,
            };

            let delay = at.saturating_duration_since(now);
            let attempt = u32::try_from(self.policy.restarts_in_window()).unwrap_or(u32::MAX);
            tracing::info!(service = %self.service, ?delay, attempt, "restart scheduled");
            self.update(|health| {
                health.next_attempt_at = Some(SystemTime::now() + delay);
            });
            self.set_state(HealthState::Restarting { next_attempt: at }, None);
            self.emit(HealthEvent::RestartScheduled {
                service: self.service.clone(),
                delay,
                attempt,
            });

            match self.wait_for_restart(at).await {
                Wait::Elapsed | Wait::RestartNow => {}
                Wait::Stop => {
                    self.update(|health| health.next_attempt_at = None);
                    self.set_state(HealthState::Stopped, None);
                    return true;
                }
                Wait::Closed => return false,
            }

            match self.restart_now().await {
                Ok(()) => return true,
                Err(error) => reason = error,
            }
        }
    }

    async fn wait_for_restart(&mut self, at: Instant) -> Wait {
        loop {
            tokio::select! {
                () = sleep_until(at) => return Wait::Elapsed,
                command = self.commands.recv() => match command {
                    None => return Wait::Closed,
                    Some(Command::Stop) => return Wait::Stop,
                    Some(Command::Reset) => {
                        self.policy.reset();
                        return Wait::RestartNow;
                    }
                    // Already restarting.
                    Some(Command::VmExited(_)) => {}
                },
            }
        }
    }

    /// Restarts the VM under the service's lock. Returns the restarter's error text.
    async fn restart_now(&mut self) -> Result<(), String> {
        let guard = self.locks.lock(&self.service).await;
        tracing::info!(service = %self.service, "restarting VM");
        let result = self.restarter.restart(&self.service).await;
        drop(guard);

        match result {
            Ok(()) => {
                let initial = self.initial_state();
                self.update(|health| {
                    health.started_at = Instant::now();
                    health.next_attempt_at = None;
                    health.consecutive_failures = 0;
                    health.consecutive_successes = 0;
                    health.restarts = health.restarts.saturating_add(1);
                });
                self.set_state(initial, self.not_probed_reason.clone());
                tracing::info!(service = %self.service, "VM restarted");
                self.emit(HealthEvent::Restarted {
                    service: self.service.clone(),
                });
                Ok(())
            }
            Err(error) => {
                let message = format!("restart failed: {}", error_chain(error.as_ref()));
                tracing::error!(service = %self.service, error = %message, "VM restart failed");
                self.update(|health| health.last_error = Some(bound_error(&message)));
                self.emit(HealthEvent::RestartFailed {
                    service: self.service.clone(),
                    error: message.clone(),
                });
                Err(message)
            }
        }
    }

    fn set_state(&mut self, state: HealthState, reason: Option<String>) {
        self.update(|health| {
            health.state = state;
            health.reason = reason;
        });
    }

    /// Changes the snapshot and emits a state change when the state differs.
    fn update(&mut self, change: impl FnOnce(&mut ServiceHealth)) {
        let mut from = None;
        let mut to = None;
        self.health.send_modify(|health| {
            let before = health.state;
            change(health);
            if health.state != before {
                from = Some(before);
                to = Some(health.state);
            }
        });
        if let (Some(from), Some(to)) = (from, to) {
            tracing::debug!(service = %self.service, %from, %to, "health state changed");
            self.emit(HealthEvent::StateChanged {
                service: self.service.clone(),
                from,
                to,
            });
        }
    }

    fn emit(&self, event: HealthEvent) {
        // No subscriber is fine, because the snapshot contains the same facts.
        let _ = self.events.send(event);
    }
}

/// Runs one probe, failing with [`ProbeError::TimedOut`] after the check's timeout.
async fn probe_with_timeout(
    prober: &dyn Prober,
    check: &HealthCheck,
    target: &ProbeTarget,
) -> Result<(), ProbeError> {
    let timeout = Duration::from(check.timeout);
    match tokio::time::timeout(timeout, prober.probe(check, target)).await {
        Ok(result) => result,
        Err(_) => Err(ProbeError::TimedOut {
            target: target.to_string(),
            timeout,
        }),
    }
}

/// Joins an error and its sources with `: `.
fn error_chain(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}
