//! The restart policy: exponential backoff with jitter, and the `failing` state after too
//! many restarts in a window.

use std::collections::VecDeque;
use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

use tokio::time::Instant;

/// The numbers of the restart policy.
#[derive(Debug, Clone, PartialEq)]
pub struct RestartPolicyConfig {
    /// Delay before the first restart of a series.
    pub initial_backoff: Duration,
    /// Maximum delay. The delay doubles per restart up to this value.
    pub max_backoff: Duration,
    /// Healthy (or, without probes, running) time after which the delay starts again at
    /// `initial_backoff`.
    pub reset_after: Duration,
    /// Restarts allowed within `window`; one more failure marks the service failing.
    pub max_restarts: u32,
    /// The sliding window that `max_restarts` counts in.
    pub window: Duration,
    /// Share of the delay that jitter may take off, from 0.0 (none) to 1.0.
    pub jitter: f64,
}

impl Default for RestartPolicyConfig {
    /// 10 s doubling to 5 min, reset after 10 min healthy, at most 5 restarts in 15 min,
    /// up to 20 % jitter.
    fn default() -> Self {
        RestartPolicyConfig {
            initial_backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(300),
            reset_after: Duration::from_secs(600),
            max_restarts: 5,
            window: Duration::from_secs(900),
            jitter: 0.2,
        }
    }
}

/// The policy's decision after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Restart the VM at this time.
    RestartAt(Instant),
    /// Too many restarts within the window: leave the service alone until its spec changes
    /// or an operator resets it.
    MarkFailing,
}

/// The restart state of one service.
#[derive(Debug, Clone)]
pub struct RestartPolicy {
    config: RestartPolicyConfig,
    /// Restarts since the last reset of the backoff; the next delay is
    /// `initial_backoff * 2^attempt`.
    attempt: u32,
    /// Times of the restarts decided within the window.
    recent: VecDeque<Instant>,
    rng: SplitMix64,
}

impl RestartPolicy {
    /// Creates a policy with a random jitter seed.
    pub fn new(config: RestartPolicyConfig) -> Self {
        let seed = RandomState::new().hash_one(0_u64);
        Self::with_seed(config, seed)
    }

    /// Creates a policy whose jitter is the sequence of `seed`.
    pub fn with_seed(config: RestartPolicyConfig, seed: u64) -> Self {
        RestartPolicy {
            config,
            attempt: 0,
            recent: VecDeque::new(),
            rng: SplitMix64(seed),
        }
    }

    /// Returns the configuration.
    pub fn config(&self) -> &RestartPolicyConfig {
        &self.config
    }

    /// Decides what follows a failure at `now`: retries exhausted or the VM exited.
    pub fn on_failure(&mut self, now: Instant) -> Decision {
        while let Some(first) = self.recent.front() {
            if now.saturating_duration_since(*first) >= self.config.window {
                self.recent.pop_front();
            } else {
                break;
            }
        }
        if self.recent.len() >= self.config.max_restarts as usize {
            return Decision::MarkFailing;
        }
        let delay = self.jittered(self.nominal_delay());
        self.attempt = self.attempt.saturating_add(1);
        self.recent.push_back(now);
        Decision::RestartAt(now + delay)
    }

    /// Reports that the service has been healthy for `healthy_for`; from `reset_after` on,
    /// the next restart waits `initial_backoff` again.
    pub fn on_healthy_for(&mut self, healthy_for: Duration) {
        if healthy_for >= self.config.reset_after {
            self.attempt = 0;
        }
    }

    /// Forgets all restarts: for a new spec or an operator's reset.
    pub fn reset(&mut self) {
        self.attempt = 0;
        self.recent.clear();
    }

    /// Returns the delay before the next restart without jitter.
    pub fn nominal_delay(&self) -> Duration {
        let factor = 2_u32.saturating_pow(self.attempt.min(31));
        self.config
            .initial_backoff
            .saturating_mul(factor)
            .min(self.config.max_backoff)
    }

    /// Returns the number of restarts counted in the current window (as of the last
    /// failure).
    pub fn restarts_in_window(&self) -> usize {
        self.recent.len()
    }

    fn jittered(&mut self, delay: Duration) -> Duration {
        let jitter = self.config.jitter.clamp(0.0, 1.0);
        if jitter == 0.0 {
            return delay;
        }
        // A uniform value in [0, 1) from the top 53 bits.
        let unit = (self.rng.next() >> 11) as f64 / (1_u64 << 53) as f64;
        delay.mul_f64(1.0 - jitter * unit)
    }
}

/// A small deterministic generator for jitter; no cryptographic use.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_jitter() -> RestartPolicyConfig {
        RestartPolicyConfig {
            jitter: 0.0,
            max_restarts: 100,
            ..RestartPolicyConfig::default()
        }
    }

    fn delay_of(decision: Decision, now: Instant) -> Duration {
        match decision {
            Decision::RestartAt(at) => at - now,
            Decision::MarkFailing => panic!("expected a restart, got MarkFailing"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_doubles_to_cap() {
        let mut policy = RestartPolicy::with_seed(no_jitter(), 1);
        let mut now = Instant::now();
        let mut delays = Vec::new();
        for _ in 0..8 {
            delays.push(delay_of(policy.on_failure(now), now).as_secs());
            now += Duration::from_secs(3600);
        }
        assert_eq!(delays, [10, 20, 40, 80, 160, 300, 300, 300]);
    }

    #[tokio::test(start_paused = true)]
    async fn jitter_stays_in_bounds() {
        let config = RestartPolicyConfig {
            max_restarts: 1000,
            ..RestartPolicyConfig::default()
        };
        let mut policy = RestartPolicy::with_seed(config, 7);
        let mut now = Instant::now();
        let mut distinct = std::collections::BTreeSet::new();
        for _ in 0..50 {
            let nominal = policy.nominal_delay();
            let delay = delay_of(policy.on_failure(now), now);
            assert!(delay <= nominal, "{delay:?} > {nominal:?}");
            assert!(
                delay >= nominal.mul_f64(0.8),
                "{delay:?} < 80% of {nominal:?}"
            );
            distinct.insert(delay);
            now += Duration::from_secs(3600);
        }
        assert!(distinct.len() > 2, "jitter produced {distinct:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn healthy_period_resets_backoff() {
        let mut policy = RestartPolicy::with_seed(no_jitter(), 1);
        let now = Instant::now();
        policy.on_failure(now);
        policy.on_failure(now);
        assert_eq!(policy.nominal_delay(), Duration::from_secs(40));

        policy.on_healthy_for(Duration::from_secs(599));
        assert_eq!(policy.nominal_delay(), Duration::from_secs(40));

        policy.on_healthy_for(Duration::from_secs(600));
        assert_eq!(policy.nominal_delay(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn sixth_failure_in_window_marks_failing() {
        let mut policy = RestartPolicy::with_seed(
            RestartPolicyConfig {
                jitter: 0.0,
                ..RestartPolicyConfig::default()
            },
            1,
        );
        let start = Instant::now();
        for minute in 0..5 {
            let now = start + Duration::from_secs(60 * minute);
            assert!(matches!(policy.on_failure(now), Decision::RestartAt(_)));
        }
        let now = start + Duration::from_secs(60 * 5);
        assert_eq!(policy.on_failure(now), Decision::MarkFailing);
        assert_eq!(policy.restarts_in_window(), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn window_slides() {
        let mut policy = RestartPolicy::with_seed(
            RestartPolicyConfig {
                jitter: 0.0,
                ..RestartPolicyConfig::default()
            },
            1,
        );
        let start = Instant::now();
        for minute in 0..5 {
            policy.on_failure(start + Duration::from_secs(60 * minute));
        }
        // The first restart (minute 0) leaves the 15-minute window at minute 15.
        let later = start + Duration::from_secs(15 * 60);
        assert!(matches!(policy.on_failure(later), Decision::RestartAt(_)));
        assert_eq!(policy.restarts_in_window(), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn reset_forgets_restarts() {
        let mut policy = RestartPolicy::with_seed(
            RestartPolicyConfig {
                jitter: 0.0,
                max_restarts: 1,
                ..RestartPolicyConfig::default()
            },
            1,
        );
        let now = Instant::now();
        assert!(matches!(policy.on_failure(now), Decision::RestartAt(_)));
        assert_eq!(policy.on_failure(now), Decision::MarkFailing);

        policy.reset();
        assert_eq!(
            delay_of(policy.on_failure(now), now),
            Duration::from_secs(10)
        );
    }
}
