//! Retries with jittered exponential backoff.

use std::future::Future;
use std::time::Duration;

use rand::Rng;
use tracing::warn;

use crate::error::{StoreError, StoreErrorKind};

/// How often and how far apart a failed operation is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Total attempts, the first one included; at least 1.
    pub attempts: u32,
    /// The delay before the first retry; each retry doubles it.
    pub initial: Duration,
    /// The upper bound of a delay.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            attempts: 3,
            initial: Duration::from_millis(500),
            max: Duration::from_secs(10),
        }
    }
}

impl Backoff {
    /// Computes the delay before retry number `retry` (0 for the first retry). The delay is
    /// jittered: a uniform random value between half and all of the exponential delay.
    pub fn delay(&self, retry: u32) -> Duration {
        let exponential = self
            .initial
            .saturating_mul(2u32.saturating_pow(retry))
            .min(self.max);
        let half = exponential / 2;
        let jitter_nanos =
            rand::rng().random_range(0..=half.as_nanos().min(u128::from(u64::MAX)) as u64);
        half + Duration::from_nanos(jitter_nanos)
    }

    /// Runs `operation` until it succeeds, fails with an error other than
    /// [`StoreErrorKind::Unreachable`], or runs out of attempts.
    pub(crate) async fn run<T, F, Fut>(
        &self,
        operation_name: &str,
        mut operation: F,
    ) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let attempts = self.attempts.max(1);
        let mut attempt = 1;
        loop {
            match operation().await {
                Ok(value) => return Ok(value),
                Err(error) if error.kind == StoreErrorKind::Unreachable && attempt < attempts => {
                    let delay = self.delay(attempt - 1);
                    warn!(
                        operation = operation_name,
                        attempt,
                        attempts,
                        delay_ms = delay.as_millis() as u64,
                        error = %crate::error_chain(&error),
                        "retrying after failure"
                    );
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::error::{Backend, MessageError, Subject};

    fn failure(kind: StoreErrorKind) -> StoreError {
        StoreError::new(
            kind,
            Backend::Git,
            Subject::Store,
            MessageError("boom".to_owned()),
        )
    }

    #[test]
    fn delay_stays_within_jitter_bounds() {
        let backoff = Backoff {
            attempts: 5,
            initial: Duration::from_millis(100),
            max: Duration::from_millis(300),
        };
        for _ in 0..100 {
            let first = backoff.delay(0);
            assert!(first >= Duration::from_millis(50), "{first:?}");
            assert!(first <= Duration::from_millis(100), "{first:?}");
            let capped = backoff.delay(10);
            assert!(capped >= Duration::from_millis(150), "{capped:?}");
            assert!(capped <= Duration::from_millis(300), "{capped:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_unreachable_until_attempts_run_out() {
        let calls = AtomicU32::new(0);
        let backoff = Backoff::default();
        let result: Result<(), _> = backoff
            .run("test", || {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err(failure(StoreErrorKind::Unreachable)) }
            })
            .await;
        assert_eq!(result.unwrap_err().kind, StoreErrorKind::Unreachable);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn does_not_retry_denied() {
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = Backoff::default()
            .run("test", || {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err(failure(StoreErrorKind::Denied)) }
            })
            .await;
        assert_eq!(result.unwrap_err().kind, StoreErrorKind::Denied);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn succeeds_after_transient_failure() {
        let calls = AtomicU32::new(0);
        let result = Backoff::default()
            .run("test", || {
                let call = calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    if call == 0 {
                        Err(failure(StoreErrorKind::Unreachable))
                    } else {
                        Ok(call)
                    }
                }
            })
            .await;
        assert_eq!(result.unwrap(), 1);
    }
}
