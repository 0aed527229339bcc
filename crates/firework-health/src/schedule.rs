//! When a service task probes next: the regular cadence at the check's `interval`, and the
//! startup cadence of a service in the `starting` state.
//!
//! Regular probes decide failures and restarts. Startup probes exist so that a freshly
//! started VM is seen healthy soon after its service responds, rather than one `interval`
//! later, because a rolling update waits for that. A startup probe never moves a regular
//! probe, so failures count at the same times with or without them.

use std::time::Duration;

use tokio::time::Instant;

/// The delay from a VM's start, or restart, to its first startup probe. The guest needs
/// some time to boot before anything responds, so a probe at once would almost surely be
/// refused, while 200 ms adds little to a rollout.
pub const STARTUP_PROBE_DELAY: Duration = Duration::from_millis(200);

/// The time from the end of one startup probe to the start of the next, when the check's
/// `interval` is longer. It bounds how long a rollout waits after the service responds to
/// about one second. The cost is one probe per second for each starting service, and a
/// loopback probe takes well under a millisecond (docs/health.md, Measurements).
pub const STARTUP_PROBE_PERIOD: Duration = Duration::from_secs(1);

/// The kind of a probe, which decides what its failure counts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProbeKind {
    /// A probe at the check's `interval`. Its failures after the start period count
    /// towards `retries`.
    Regular,
    /// An extra probe while the service is `starting`. Its success counts like a regular
    /// one, and its failure counts towards nothing.
    Startup,
}

impl ProbeKind {
    /// Returns the lowercase name used in logs.
    pub(crate) fn name(self) -> &'static str {
        match self {
            ProbeKind::Regular => "regular",
            ProbeKind::Startup => "startup",
        }
    }
}

/// The due times of the next regular and the next startup probe of one service.
#[derive(Debug, Clone)]
pub(crate) struct ProbeSchedule {
    interval: Duration,
    startup_period: Duration,
    regular_at: Instant,
    startup_at: Instant,
}

impl ProbeSchedule {
    /// Creates the schedule of a VM started at `now`: the first regular probe after one
    /// `interval` and the first startup probe after [`STARTUP_PROBE_DELAY`].
    pub(crate) fn new(interval: Duration, now: Instant) -> Self {
        ProbeSchedule {
            interval,
            startup_period: interval.min(STARTUP_PROBE_PERIOD),
            regular_at: now + interval,
            startup_at: now + STARTUP_PROBE_DELAY,
        }
    }

    /// Returns when the next probe is due and its kind. Startup probes run only when
    /// `starting` is set, and only when the regular probe is at least one startup period
    /// away. Probe starts are thus never closer than that period, and with an `interval`
    /// under twice the period, the startup cadence adds at most one probe after each start.
    pub(crate) fn next(&self, starting: bool) -> (Instant, ProbeKind) {
        if starting && self.startup_at + self.startup_period <= self.regular_at {
            (self.startup_at, ProbeKind::Startup)
        } else {
            (self.regular_at, ProbeKind::Regular)
        }
    }

    /// Returns when the next regular probe is due. A startup probe still running then is
    /// cancelled, so that it does not delay the regular one.
    pub(crate) fn regular_at(&self) -> Instant {
        self.regular_at
    }

    /// Records that a probe of `kind` ended at `now`, finished or cancelled. The next probe
    /// of either kind waits from here: a regular one for `interval` when this one was
    /// regular, and a startup one for the startup period.
    pub(crate) fn probed(&mut self, kind: ProbeKind, now: Instant) {
        self.startup_at = now + self.startup_period;
        if kind == ProbeKind::Regular {
            self.regular_at = now + self.interval;
        }
    }

    /// Starts both cadences again for a VM (re)started at `now`.
    pub(crate) fn restart(&mut self, now: Instant) {
        *self = ProbeSchedule::new(self.interval, now);
    }

    /// Moves the next regular probe to one `interval` after `now`, as after a command from
    /// the monitor handle. The startup cadence keeps its time.
    pub(crate) fn postpone_regular(&mut self, now: Instant) {
        self.regular_at = now + self.interval;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEN_SECONDS: Duration = Duration::from_secs(10);

    fn ms(start: Instant, at: Instant) -> u128 {
        at.duration_since(start).as_millis()
    }

    /// Runs instant probes from `start` until `until`, always in the starting state, and
    /// returns their times in milliseconds with their kinds.
    fn run_starting(interval: Duration, until: Duration) -> Vec<(u128, ProbeKind)> {
        let start = Instant::now();
        let mut schedule = ProbeSchedule::new(interval, start);
        let mut probes = Vec::new();
        loop {
            let (at, kind) = schedule.next(true);
            if at > start + until {
                return probes;
            }
            probes.push((ms(start, at), kind));
            schedule.probed(kind, at);
        }
    }

    #[test]
    fn starting_probes_every_period_around_regular() {
        let probes = run_starting(TEN_SECONDS, Duration::from_millis(20_500));
        let startup: Vec<u128> = (0..9).map(|i| 200 + i * 1000).collect();
        let later: Vec<u128> = (11..20).map(|s| s * 1000).collect();
        let mut expected: Vec<(u128, ProbeKind)> = startup
            .into_iter()
            .map(|at| (at, ProbeKind::Startup))
            .collect();
        expected.push((10_000, ProbeKind::Regular));
        expected.extend(later.into_iter().map(|at| (at, ProbeKind::Startup)));
        expected.push((20_000, ProbeKind::Regular));
        assert_eq!(probes, expected);
    }

    #[test]
    fn not_starting_probes_only_regular() {
        let start = Instant::now();
        let schedule = ProbeSchedule::new(TEN_SECONDS, start);
        assert_eq!(
            schedule.next(false),
            (start + TEN_SECONDS, ProbeKind::Regular)
        );
    }

    #[test]
    fn short_interval_adds_one_startup_probe() {
        let probes = run_starting(Duration::from_millis(1500), Duration::from_secs(5));
        assert_eq!(
            probes,
            [
                (200, ProbeKind::Startup),
                (1500, ProbeKind::Regular),
                (3000, ProbeKind::Regular),
                (4500, ProbeKind::Regular),
            ]
        );
    }

    #[test]
    fn interval_under_period_has_no_startup_probe() {
        let probes = run_starting(Duration::from_millis(100), Duration::from_millis(350));
        assert_eq!(
            probes,
            [
                (100, ProbeKind::Regular),
                (200, ProbeKind::Regular),
                (300, ProbeKind::Regular),
            ]
        );
    }

    #[test]
    fn slow_probe_delays_next_startup_probe() {
        let start = Instant::now();
        let mut schedule = ProbeSchedule::new(TEN_SECONDS, start);
        // The first startup probe runs from 0.2 s to 3.2 s.
        schedule.probed(ProbeKind::Startup, start + Duration::from_millis(3200));
        assert_eq!(
            schedule.next(true),
            (start + Duration::from_millis(4200), ProbeKind::Startup)
        );
    }

    #[test]
    fn restart_begins_startup_cadence_again() {
        let start = Instant::now();
        let mut schedule = ProbeSchedule::new(TEN_SECONDS, start);
        schedule.probed(ProbeKind::Regular, start + TEN_SECONDS);
        let restarted = start + Duration::from_secs(40);
        schedule.restart(restarted);
        assert_eq!(
            schedule.next(true),
            (restarted + STARTUP_PROBE_DELAY, ProbeKind::Startup)
        );
        assert_eq!(schedule.regular_at(), restarted + TEN_SECONDS);
    }

    #[test]
    fn postpone_keeps_startup_time() {
        let start = Instant::now();
        let mut schedule = ProbeSchedule::new(TEN_SECONDS, start);
        schedule.postpone_regular(start + Duration::from_secs(5));
        assert_eq!(schedule.regular_at(), start + Duration::from_secs(15));
        assert_eq!(
            schedule.next(true),
            (start + STARTUP_PROBE_DELAY, ProbeKind::Startup)
        );
    }
}
