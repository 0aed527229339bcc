//! The health gate of rolling updates.

use std::time::Duration;

use tokio::time::{Instant, sleep_until};

use crate::cancel::CancelToken;
use crate::monitor::HealthMonitor;
use crate::state::HealthState;

/// The reason an updated service did not pass the gate. The agent then restores the previous
/// spec, stops the rollout and reports it rolled back with this reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GateError {
    /// The service was not healthy within the progress deadline.
    #[error(
        "service {service:?} not healthy within the progress deadline of {deadline:?} (state {state}{})",
        last_error.as_deref().map(|e| format!(", last error: {e}")).unwrap_or_default()
    )]
    TimedOut {
        /// The service.
        service: String,
        /// The progress deadline.
        deadline: Duration,
        /// The state at the deadline.
        state: String,
        /// The last probe error, if any.
        last_error: Option<String>,
    },
    /// The probes failed `retries` times (a restart is scheduled), or the service is
    /// failing or stopped.
    #[error("service {service:?} became {state} during the rollout: {reason}")]
    Unhealthy {
        /// The service.
        service: String,
        /// `restarting`, `failing` or `stopped`.
        state: String,
        /// The last error.
        reason: String,
    },
    /// A newer desired revision cancelled the rollout.
    #[error("rollout of service {service:?} preempted by a newer revision")]
    Preempted {
        /// The service.
        service: String,
    },
    /// The service is not registered with the monitor.
    #[error("service {service:?} is not registered with the health monitor")]
    NotRegistered {
        /// The service.
        service: String,
    },
    /// The service was deregistered or registered again while the gate waited.
    #[error("service {service:?} was deregistered while the rollout waited for it")]
    Deregistered {
        /// The service.
        service: String,
    },
}

impl HealthMonitor {
    /// Waits until `service` is healthy, for at most `progress_deadline`. A service that
    /// is not probed (no health check, or no reachable target) passes once it has run for
    /// `min_ready` since its start. Returns early with an error when its probes fail
    /// `retries` times, when it is failing or stopped, or when `cancel` fires.
    pub async fn wait_healthy(
        &self,
        service: &str,
        progress_deadline: Duration,
        min_ready: Duration,
        cancel: &CancelToken,
    ) -> Result<(), GateError> {
        let mut health = self
            .watch(service)
            .ok_or_else(|| GateError::NotRegistered {
                service: service.to_string(),
            })?;
        let deadline = Instant::now() + progress_deadline;

        loop {
            let snapshot = health.borrow_and_update().clone();
            let mut ready_at = None;
            match snapshot.state {
                HealthState::Healthy => return Ok(()),
                HealthState::NotProbed => {
                    let at = snapshot.started_at + min_ready;
                    if Instant::now() >= at {
                        return Ok(());
                    }
                    ready_at = Some(at);
                }
                HealthState::Restarting { .. } | HealthState::Failing | HealthState::Stopped => {
                    let reason = snapshot
                        .last_error
                        .or(snapshot.reason)
                        .unwrap_or_else(|| "no error recorded".to_string());
                    return Err(GateError::Unhealthy {
                        service: service.to_string(),
                        state: snapshot.state.to_string(),
                        reason,
                    });
                }
                HealthState::Starting | HealthState::Unhealthy => {}
            }

            tokio::select! {
                biased;
                () = cancel.cancelled() => {
                    return Err(GateError::Preempted { service: service.to_string() });
                }
                changed = health.changed() => {
                    if changed.is_err() {
                        return Err(GateError::Deregistered { service: service.to_string() });
                    }
                }
                () = sleep_until(ready_at.unwrap_or(deadline)), if ready_at.is_some_and(|at| at < deadline) => {}
                () = sleep_until(deadline) => {
                    let last = health.borrow().clone();
                    return Err(GateError::TimedOut {
                        service: service.to_string(),
                        deadline: progress_deadline,
                        state: last.state.to_string(),
                        last_error: last.last_error,
                    });
                }
            }
        }
    }
}
