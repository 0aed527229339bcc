//! Events the monitor sends to subscribers.

use std::time::Duration;

use crate::state::HealthState;

/// Something that happened to a service's health.
#[derive(Debug, Clone, PartialEq)]
pub enum HealthEvent {
    /// The state changed.
    StateChanged {
        /// The service.
        service: String,
        /// The previous state.
        from: HealthState,
        /// The new state.
        to: HealthState,
    },
    /// The probes failed `retries` times in a row, or the VM exited.
    Unhealthy {
        /// The service.
        service: String,
        /// The last probe error, or the exit.
        reason: String,
    },
    /// A restart is scheduled.
    RestartScheduled {
        /// The service.
        service: String,
        /// Time until the restart.
        delay: Duration,
        /// Restarts in the current window including this one.
        attempt: u32,
    },
    /// The restarter restarted the VM.
    Restarted {
        /// The service.
        service: String,
    },
    /// The restarter failed; the policy schedules the next attempt.
    RestartFailed {
        /// The service.
        service: String,
        /// The restarter's error.
        error: String,
    },
    /// Too many restarts within the window.
    Failing {
        /// The service.
        service: String,
        /// The last failure.
        reason: String,
    },
}
