//! The health state of a service and the snapshot the API and metrics show.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use tokio::time::Instant;

/// The longest stored probe error, in bytes; longer messages are cut at a character
/// boundary and end with `…`.
pub const MAX_ERROR_LEN: usize = 256;

/// The health state of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthState {
    /// Started and not yet healthy: within the start period, or fewer successes than
    /// `success_threshold` so far, and no counted failure since the start. Probed at the
    /// startup cadence as well as at `interval`.
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
    /// Failed probes in a row that counted: regular probes after the start period.
    pub consecutive_failures: u32,
    /// Successful probes in a row.
    pub consecutive_successes: u32,
    /// Probes run since registration, startup probes included.
    pub probes: u64,
    /// Failed probes since registration, including those in the start period and failed
    /// startup probes.
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

/// The serializable form of [`ServiceHealth`] for the agent's API; times are Unix
/// milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthReport {
    /// The service name.
    pub service: String,
    /// The state name, as [`HealthState::name`].
    pub state: &'static str,
    /// The reason the service is not probed or is failing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The last probe or restart error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the last probe finished.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_probe_unix_ms: Option<u64>,
    /// When the scheduled restart runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_unix_ms: Option<u64>,
    /// Failed probes in a row that counted.
    pub consecutive_failures: u32,
    /// Successful probes in a row.
    pub consecutive_successes: u32,
    /// Probes since registration.
    pub probes: u64,
    /// Failed probes since registration.
    pub probe_failures: u64,
    /// Restarts since registration.
    pub restarts: u32,
}

impl ServiceHealth {
    /// Builds the serializable report of this snapshot.
    pub fn report(&self) -> HealthReport {
        HealthReport {
            service: self.service.clone(),
            state: self.state.name(),
            reason: self.reason.clone(),
            last_error: self.last_error.clone(),
            last_probe_unix_ms: self.last_probe.and_then(unix_ms),
            next_attempt_unix_ms: self.next_attempt_at.and_then(unix_ms),
            consecutive_failures: self.consecutive_failures,
            consecutive_successes: self.consecutive_successes,
            probes: self.probes,
            probe_failures: self.probe_failures,
            restarts: self.restarts,
        }
    }
}

fn unix_ms(time: SystemTime) -> Option<u64> {
    let since = time.duration_since(UNIX_EPOCH).ok()?;
    u64::try_from(since.as_millis()).ok()
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
    fn report_serializes_state_and_times() {
        let mut health = ServiceHealth::new("web", HealthState::Failing, Instant::now());
        health.reason = Some("5 restarts within 900s".to_string());
        health.last_probe = Some(UNIX_EPOCH + std::time::Duration::from_millis(1_500));
        health.restarts = 5;
        let json = serde_json::to_value(health.report()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "service": "web",
                "state": "failing",
                "reason": "5 restarts within 900s",
                "last_probe_unix_ms": 1500,
                "consecutive_failures": 0,
                "consecutive_successes": 0,
                "probes": 0,
                "probe_failures": 0,
                "restarts": 5,
            })
        );
    }

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
