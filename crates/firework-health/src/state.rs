//! The health state of a service and the snapshot the API and metrics show.

use std::fmt;
use std::time::SystemTime;

use tokio::time::Instant;

/// The longest stored probe error, in bytes; longer messages are cut at a character
/// boundary and end with `…`.
pub const MAX_ERROR_LEN: usize = 256;

/// The health state of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthState {
    /// Started and not yet healthy: within the start period, or fewer successes than
    /// `success_threshold` so far.
    Starting,
    /// The last `success_threshold` probes succeeded.
    Healthy,
    /// Probes fail, fewer than `retries` times in a row.
    Unhealthy,
    /// A restart is scheduled.
    Restarting {
        /// When the restart runs.
        next_attempt: Instant,
    },
    /// Too many restarts within the window; left alone until its spec changes or an
    /// operator resets it.
    Failing,
    /// Stopped on purpose; not probed and not restarted.
    Stopped,
    /// No health check, or a check without a reachable target: not probed. A VM exit still
    /// restarts it.
    NotProbed,
}

impl HealthState {
    /// Returns the lowercase name used in the API and in metric labels.
    pub fn name(&self) -> &'static str {
        match self {
            HealthState::Starting => "starting",
            HealthState::Healthy => "healthy",
            HealthState::Unhealthy => "unhealthy",
            HealthState::Restarting { .. } => "restarting",
            HealthState::Failing => "failing",
            HealthState::Stopped => "stopped",
            HealthState::NotProbed => "not_probed",
        }
    }
}

impl fmt::Display for HealthState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A point-in-time view of one service's health.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceHealth {
    /// The service name.
    pub service: String,
    /// The current state.
    pub state: HealthState,
    /// The reason the service is not probed or is failing.
    pub reason: Option<String>,
    /// The last probe or restart error, at most [`MAX_ERROR_LEN`] bytes; cleared by a
    /// successful probe.
    pub last_error: Option<String>,
    /// When the last probe finished.
    pub last_probe: Option<SystemTime>,
    /// When the VM was started or last restarted (monotonic clock).
    pub started_at: Instant,
    /// The scheduled restart time in wall-clock time, while restarting.
    pub next_attempt_at: Option<SystemTime>,
    /// Failed probes in a row that counted (those after the start period).
    pub consecutive_failures: u32,
    /// Successful probes in a row.
    pub consecutive_successes: u32,
    /// Probes run since registration.
    pub probes: u64,
    /// Failed probes since registration, including those in the start period.
    pub probe_failures: u64,
    /// Restarts done since registration.
    pub restarts: u32,
}

impl ServiceHealth {
    pub(crate) fn new(service: &str, state: HealthState, started_at: Instant) -> Self {
        ServiceHealth {
            service: service.to_string(),
            state,
            reason: None,
            last_error: None,
            last_probe: None,
            started_at,
            next_attempt_at: None,
            consecutive_failures: 0,
            consecutive_successes: 0,
            probes: 0,
            probe_failures: 0,
            restarts: 0,
        }
    }
}

/// Cuts `message` to at most [`MAX_ERROR_LEN`] bytes at a character boundary.
pub fn bound_error(message: &str) -> String {
    if message.len() <= MAX_ERROR_LEN {
        return message.to_string();
    }
    let ellipsis = '…';
    let mut end = MAX_ERROR_LEN - ellipsis.len_utf8();
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let mut bounded = message[..end].to_string();
    bounded.push(ellipsis);
    bounded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_error_kept() {
        assert_eq!(bound_error("refused"), "refused");
    }

    #[test]
    fn long_error_cut_at_char_boundary() {
        let message = "é".repeat(300);
        let bounded = bound_error(&message);
        assert!(bounded.len() <= MAX_ERROR_LEN, "{} bytes", bounded.len());
        assert!(bounded.ends_with('…'));
        assert!(bounded.starts_with("éé"));
    }
}
