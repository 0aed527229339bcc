//! Polling with a deadline.

use std::time::{Duration, Instant};

/// Polls `check` every 100 ms until it returns `Some` or `timeout` passes.
///
/// Returns the value, or an error naming `what` and the timeout.
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Result<T, String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            return Err(format!("timed out after {timeout:?} waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
