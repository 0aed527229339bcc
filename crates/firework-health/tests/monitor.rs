//! The monitor's timing on paused tokio time: probe schedule, start period, success
//! threshold, backoff, the failing state, locks and resets.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use firework_health::{
    HealthEvent, HealthMonitor, HealthState, MonitorError, Registration, RestartPolicyConfig,
    ServiceLocks,
};
use firework_model::GoDuration;
use firework_model::service::HealthCheck;
use support::fakes::{RecordingRestarter, SwitchProber};
use support::http_check;
use tokio::time::{Instant, sleep, sleep_until};

fn exact_policy() -> RestartPolicyConfig {
    RestartPolicyConfig {
        jitter: 0.0,
        ..RestartPolicyConfig::default()
    }
}

struct Setup {
    monitor: HealthMonitor,
    prober: Arc<SwitchProber>,
    restarter: Arc<RecordingRestarter>,
    locks: ServiceLocks,
}

fn setup(healthy: bool, policy: RestartPolicyConfig) -> Setup {
    let prober = SwitchProber::new(healthy);
    let restarter = RecordingRestarter::new();
    let locks = ServiceLocks::new();
    let monitor =
        HealthMonitor::with_parts(restarter.clone(), locks.clone(), prober.clone(), policy);
    Setup {
        monitor,
        prober,
        restarter,
        locks,
    }
}

fn checked(service: &str, check: HealthCheck) -> Registration {
    Registration::new(service, Some(check), None)
}

fn secs_since(start: Instant, times: &[Instant]) -> Vec<u64> {
    times.iter().map(|t| (*t - start).as_secs()).collect()
}

fn state(monitor: &HealthMonitor, service: &str) -> HealthState {
    monitor.health(service).unwrap().state
}

#[tokio::test(start_paused = true)]
async fn probes_every_interval() {
    let s = setup(true, exact_policy());
    let start = Instant::now();
    s.monitor.register(checked("web", http_check(1)));
    sleep(Duration::from_secs(45)).await;

    // One startup probe finds it healthy at 0.2 s; after that only the regular cadence.
    let calls = s.prober.calls_since(start);
    let expected: Vec<Duration> = [200, 10_000, 20_000, 30_000, 40_000]
        .into_iter()
        .map(Duration::from_millis)
        .collect();
    assert_eq!(calls, expected);
    assert_eq!(state(&s.monitor, "web"), HealthState::Healthy);
    assert!(s.restarter.times().is_empty());
}

#[tokio::test(start_paused = true)]
async fn never_healthy_backs_off_then_fails() {
    let s = setup(false, exact_policy());
    let mut events = s.monitor.subscribe();
    let start = Instant::now();
    s.monitor.register(checked("web", http_check(1)));

    // Restart decisions at 30, 70, 120, 190 and 300 s, after three failed probes each;
    // the delays double from 10 s. The sixth decision, at 490 s, finds 5 restarts within
    // 15 minutes and marks the service failing.
    sleep(Duration::from_secs(489)).await;
    assert_eq!(
        secs_since(start, &s.restarter.times()),
        [40, 90, 160, 270, 460]
    );
    sleep(Duration::from_secs(2)).await;
    let health = s.monitor.health("web").unwrap();
    assert_eq!(health.state, HealthState::Failing);
    assert_eq!(health.restarts, 5);
    let reason = health.reason.unwrap();
    assert!(
        reason.starts_with("5 restarts within 900s; last failure: "),
        "{reason}"
    );
    assert!(reason.contains("503"), "{reason}");

    // Failing is left alone: no probes and no restarts.
    let probes = s.prober.call_count();
    sleep(Duration::from_secs(3600)).await;
    assert_eq!(s.prober.call_count(), probes);
    assert_eq!(s.restarter.times().len(), 5);

    let mut scheduled = Vec::new();
    let mut failing = 0;
    while let Ok(event) = events.try_recv() {
        match event {
            HealthEvent::RestartScheduled { delay, attempt, .. } => {
                scheduled.push((delay.as_secs(), attempt));
            }
            HealthEvent::Failing { .. } => failing += 1,
            _ => {}
        }
    }
    assert_eq!(scheduled, [(10, 1), (20, 2), (40, 3), (80, 4), (160, 5)]);
    assert_eq!(failing, 1);
}

#[tokio::test(start_paused = true)]
async fn backoff_jitter_within_bounds() {
    let s = setup(false, RestartPolicyConfig::default());
    let mut events = s.monitor.subscribe();
    s.monitor.register(checked("web", http_check(1)));
    sleep(Duration::from_secs(3600)).await;

    let mut delays = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let HealthEvent::RestartScheduled { delay, .. } = event {
            delays.push(delay);
        }
    }
    assert_eq!(delays.len(), 5);
    for (delay, nominal) in delays.iter().zip([10, 20, 40, 80, 160]) {
        let nominal = Duration::from_secs(nominal);
        assert!(*delay <= nominal, "{delay:?} > {nominal:?}");
        assert!(
            *delay >= nominal.mul_f64(0.8),
            "{delay:?} < 80% of {nominal:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn start_period_failures_not_counted() {
    let s = setup(false, exact_policy());
    let mut check = http_check(1);
    check.start_period = GoDuration::from_secs(60);
    let start = Instant::now();
    s.monitor.register(checked("slow", check));

    // Within the start period the service stays starting, so startup probes run every
    // second between the regular ones. By 54.5 s that makes 49 startup probes (0.2 to
    // 8.2 s, 11 to 19 s, 21 to 29 s and so on) and regular probes at 10, 20, 30, 40, 50 s.
    sleep_until(start + Duration::from_millis(54_500)).await;
    let health = s.monitor.health("slow").unwrap();
    assert_eq!(health.state, HealthState::Starting);
    assert_eq!(health.probe_failures, 49 + 5);
    assert_eq!(health.consecutive_failures, 0);
    assert!(health.last_error.unwrap().contains("503"));

    // Probes at 60, 70 and 80 s count; the restart follows 10 s later.
    sleep_until(start + Duration::from_secs(95)).await;
    assert_eq!(secs_since(start, &s.restarter.times()), [90]);
}

#[tokio::test(start_paused = true)]
async fn success_threshold_needs_streak() {
    let s = setup(true, exact_policy());
    let mut check = http_check(1);
    check.success_threshold = 3;
    let start = Instant::now();
    s.monitor.register(checked("web", check));

    // Startup probes at 0.2, 1.2 and 2.2 s make the streak.
    sleep_until(start + Duration::from_secs(2)).await;
    let health = s.monitor.health("web").unwrap();
    assert_eq!(health.state, HealthState::Starting);
    assert_eq!(health.consecutive_successes, 2);

    sleep_until(start + Duration::from_millis(2500)).await;
    assert_eq!(state(&s.monitor, "web"), HealthState::Healthy);
}

#[tokio::test(start_paused = true)]
async fn flapping_never_healthy_nor_restarted() {
    let s = setup(true, exact_policy());
    s.prober
        .flapping
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let mut check = http_check(1);
    check.success_threshold = 2;
    s.monitor.register(checked("flappy", check));
    sleep(Duration::from_secs(605)).await;

    // Nine startup probes (ok, fail, ..., ok) run before the regular probe at 10 s. That
    // one fails and counts, so the service leaves the starting state. Then 60 regular
    // probes follow, every other one failing.
    let health = s.monitor.health("flappy").unwrap();
    assert_eq!(health.probes, 9 + 60);
    assert_eq!(health.probe_failures, 4 + 30);
    assert_eq!(health.state, HealthState::Unhealthy);
    assert!(s.restarter.times().is_empty());
}

#[tokio::test(start_paused = true)]
async fn recovery_after_failures_clears_error() {
    let s = setup(false, exact_policy());
    let start = Instant::now();
    s.monitor.register(checked("web", http_check(1)));
    sleep_until(start + Duration::from_secs(25)).await;
    let health = s.monitor.health("web").unwrap();
    assert_eq!(health.state, HealthState::Unhealthy);
    assert_eq!(health.consecutive_failures, 2);

    s.prober.set(true);
    sleep_until(start + Duration::from_secs(35)).await;
    let health = s.monitor.health("web").unwrap();
    assert_eq!(health.state, HealthState::Healthy);
    assert_eq!(health.consecutive_failures, 0);
    assert_eq!(health.last_error, None);
    assert!(s.restarter.times().is_empty());
}

#[tokio::test(start_paused = true)]
async fn no_target_is_not_probed() {
    let s = setup(false, exact_policy());
    let mut check = http_check(1);
    check.target = None;
    check.port = Some(8080);
    s.monitor
        .register(Registration::new("isolated", Some(check), None));
    sleep(Duration::from_secs(3600)).await;

    let health = s.monitor.health("isolated").unwrap();
    assert_eq!(health.state, HealthState::NotProbed);
    assert_eq!(
        health.reason.as_deref(),
        Some("no probe target: the check has no `target`, and the service has no guest address")
    );
    assert_eq!(s.prober.call_count(), 0);
    assert!(s.restarter.times().is_empty());
}

#[tokio::test(start_paused = true)]
async fn vm_exit_restarts_with_backoff() {
    let s = setup(true, exact_policy());
    let start = Instant::now();
    s.monitor.register(Registration::new("batch", None, None));

    s.monitor.vm_exited("batch", "exit status 1").unwrap();
    sleep_until(start + Duration::from_secs(11)).await;
    s.monitor.vm_exited("batch", "exit status 1").unwrap();
    sleep_until(start + Duration::from_secs(40)).await;
    assert_eq!(secs_since(start, &s.restarter.times()), [10, 31]);
    let health = s.monitor.health("batch").unwrap();
    assert_eq!(health.state, HealthState::NotProbed);
    assert_eq!(health.restarts, 2);

    // Ten minutes of running resets the backoff to 10 s.
    sleep_until(start + Duration::from_secs(31 + 600)).await;
    s.monitor.vm_exited("batch", "exit status 1").unwrap();
    sleep_until(start + Duration::from_secs(31 + 600 + 11)).await;
    assert_eq!(secs_since(start, &s.restarter.times()), [10, 31, 641]);
}

#[tokio::test(start_paused = true)]
async fn failed_restart_retried_later() {
    let s = setup(true, exact_policy());
    s.restarter
        .fail
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let mut events = s.monitor.subscribe();
    let start = Instant::now();
    s.monitor.register(Registration::new("web", None, None));
    s.monitor.vm_exited("web", "killed").unwrap();
    sleep_until(start + Duration::from_secs(35)).await;

    assert_eq!(secs_since(start, &s.restarter.times()), [10, 30]);
    let health = s.monitor.health("web").unwrap();
    assert!(matches!(health.state, HealthState::Restarting { .. }));
    assert_eq!(
        health.last_error.as_deref(),
        Some("restart failed: firecracker did not start")
    );
    let failures = std::iter::from_fn(|| events.try_recv().ok())
        .filter(|e| matches!(e, HealthEvent::RestartFailed { .. }))
        .count();
    assert_eq!(failures, 2);
}

#[tokio::test(start_paused = true)]
async fn restart_waits_for_service_lock() {
    let s = setup(true, exact_policy());
    s.monitor.register(Registration::new("web", None, None));
    let guard = s.locks.lock("web").await;
    s.monitor.vm_exited("web", "killed").unwrap();
    sleep(Duration::from_secs(60)).await;
    assert!(s.restarter.times().is_empty());
    assert!(matches!(
        state(&s.monitor, "web"),
        HealthState::Restarting { .. }
    ));

    let released = Instant::now();
    drop(guard);
    sleep(Duration::from_millis(1)).await;
    assert_eq!(s.restarter.times(), [released]);
}

#[tokio::test(start_paused = true)]
async fn reset_revives_failing_service() {
    let policy = RestartPolicyConfig {
        max_restarts: 1,
        ..exact_policy()
    };
    let s = setup(true, policy);
    s.monitor.register(Registration::new("web", None, None));
    s.monitor.vm_exited("web", "killed").unwrap();
    sleep(Duration::from_secs(11)).await;
    s.monitor.vm_exited("web", "killed").unwrap();
    sleep(Duration::from_secs(1)).await;
    assert_eq!(state(&s.monitor, "web"), HealthState::Failing);

    // Exits while failing are ignored.
    s.monitor.vm_exited("web", "killed").unwrap();
    sleep(Duration::from_secs(3600)).await;
    assert_eq!(s.restarter.times().len(), 1);

    s.monitor.reset("web").unwrap();
    sleep(Duration::from_millis(1)).await;
    assert_eq!(s.restarter.times().len(), 2);
    let health = s.monitor.health("web").unwrap();
    assert_eq!(health.state, HealthState::NotProbed);
    assert_eq!(health.reason.as_deref(), Some("no health check"));
}

#[tokio::test(start_paused = true)]
async fn stopped_service_not_restarted() {
    let s = setup(false, exact_policy());
    s.monitor.register(checked("web", http_check(1)));
    s.monitor.mark_stopped("web").unwrap();
    sleep(Duration::from_millis(1)).await;
    s.monitor.vm_exited("web", "stopped by the agent").unwrap();
    sleep(Duration::from_secs(3600)).await;

    assert_eq!(state(&s.monitor, "web"), HealthState::Stopped);
    assert_eq!(s.prober.call_count(), 0);
    assert!(s.restarter.times().is_empty());
}

#[tokio::test(start_paused = true)]
async fn deregister_stops_probes() {
    let s = setup(false, exact_policy());
    s.monitor.register(checked("web", http_check(1)));
    sleep(Duration::from_secs(15)).await;
    assert!(s.monitor.deregister("web"));
    assert!(!s.monitor.deregister("web"));
    let probes = s.prober.call_count();
    sleep(Duration::from_secs(3600)).await;

    // Nine startup probes, then the regular one at 10 s counts and ends the starting state.
    assert_eq!(probes, 10);
    assert_eq!(s.prober.call_count(), 10);
    assert!(s.monitor.health("web").is_none());
    assert_eq!(
        s.monitor.vm_exited("web", "gone").unwrap_err().to_string(),
        "service \"web\" is not registered with the health monitor"
    );
    assert_eq!(
        s.monitor.reset("web"),
        Err(MonitorError::NotRegistered {
            service: "web".to_string()
        })
    );
    assert_eq!(
        s.monitor.mark_stopped("web"),
        Err(MonitorError::NotRegistered {
            service: "web".to_string()
        })
    );
    assert!(s.monitor.services().is_empty());
    assert!(s.restarter.times().is_empty());
}

#[tokio::test(start_paused = true)]
async fn register_again_resets_counts() {
    let s = setup(false, exact_policy());
    s.monitor.register(checked("web", http_check(1)));
    sleep(Duration::from_secs(25)).await;
    // Nine startup probes and the regular ones at 10 and 20 s.
    assert_eq!(s.monitor.health("web").unwrap().probe_failures, 11);

    s.monitor.register(checked("web", http_check(1)));
    let health = s.monitor.health("web").unwrap();
    assert_eq!(health.state, HealthState::Starting);
    assert_eq!(health.probe_failures, 0);
    assert_eq!(s.monitor.services(), ["web"]);
}

#[tokio::test(start_paused = true)]
async fn long_healthy_streak_resets_backoff() {
    let s = setup(false, exact_policy());
    let mut events = s.monitor.subscribe();
    let start = Instant::now();
    s.monitor.register(checked("web", http_check(1)));

    // Three failures, a restart after 10 s, then healthy from the probe at 50 s.
    sleep_until(start + Duration::from_secs(45)).await;
    s.prober.set(true);
    sleep_until(start + Duration::from_secs(55)).await;
    assert_eq!(state(&s.monitor, "web"), HealthState::Healthy);

    // Healthy for more than 10 minutes, then failing again: the delay is 10 s, not 20 s.
    sleep_until(start + Duration::from_secs(55 + 660)).await;
    s.prober.set(false);
    sleep_until(start + Duration::from_secs(55 + 660 + 60)).await;

    let delays: Vec<u64> = std::iter::from_fn(|| events.try_recv().ok())
        .filter_map(|event| match event {
            HealthEvent::RestartScheduled { delay, .. } => Some(delay.as_secs()),
            _ => None,
        })
        .collect();
    assert_eq!(delays, [10, 10]);
}

#[tokio::test(start_paused = true)]
async fn short_healthy_streak_keeps_backoff() {
    let s = setup(false, exact_policy());
    let mut events = s.monitor.subscribe();
    let start = Instant::now();
    s.monitor.register(checked("web", http_check(1)));

    sleep_until(start + Duration::from_secs(45)).await;
    s.prober.set(true);
    sleep_until(start + Duration::from_secs(125)).await;
    s.prober.set(false);
    sleep_until(start + Duration::from_secs(200)).await;

    let delays: Vec<u64> = std::iter::from_fn(|| events.try_recv().ok())
        .filter_map(|event| match event {
            HealthEvent::RestartScheduled { delay, .. } => Some(delay.as_secs()),
            _ => None,
        })
        .collect();
    assert_eq!(delays, [10, 20]);
}

#[tokio::test(start_paused = true)]
async fn startup_probe_failures_never_restart() {
    let s = setup(false, exact_policy());
    let mut check = http_check(1);
    check.retries = 1;
    let start = Instant::now();
    s.monitor.register(checked("web", check));

    // Nine failed startup probes by 9.5 s: none counts, the service is still starting.
    sleep_until(start + Duration::from_millis(9500)).await;
    let health = s.monitor.health("web").unwrap();
    assert_eq!(health.state, HealthState::Starting);
    assert_eq!(health.probe_failures, 9);
    assert_eq!(health.consecutive_failures, 0);
    assert!(s.restarter.times().is_empty());

    // The regular probe at 10 s is the one failure that `retries: 1` allows; the restart
    // follows after the first 10 s backoff.
    sleep_until(start + Duration::from_secs(25)).await;
    assert_eq!(secs_since(start, &s.restarter.times()), [20]);
}

#[tokio::test(start_paused = true)]
async fn restart_begins_startup_probes_again() {
    let s = setup(false, exact_policy());
    let start = Instant::now();
    s.monitor.register(checked("web", http_check(1)));

    // Counted failures at 10, 20 and 30 s, the restart at 40 s; the guest responds after it.
    sleep_until(start + Duration::from_secs(35)).await;
    s.prober.set(true);
    sleep_until(start + Duration::from_secs(45)).await;
    assert_eq!(secs_since(start, &s.restarter.times()), [40]);
    assert_eq!(state(&s.monitor, "web"), HealthState::Healthy);
    let last = *s.prober.calls_since(start).last().unwrap();
    assert_eq!(last, Duration::from_millis(40_200));
}

#[tokio::test(start_paused = true)]
async fn slow_startup_probe_gives_way_to_regular() {
    let s = setup(false, exact_policy());
    s.prober.set_delay(Duration::from_secs(3));
    let start = Instant::now();
    s.monitor.register(checked("web", http_check(1)));

    // Startup probes run from 0.2 to 3.2 s and from 4.2 to 7.2 s. The one from 8.2 s is
    // still running at 10 s: it is dropped unrecorded, and the regular probe starts then.
    sleep_until(start + Duration::from_millis(12_000)).await;
    let health = s.monitor.health("web").unwrap();
    assert_eq!(health.probes, 2);
    assert_eq!(health.state, HealthState::Starting);
    let calls = s.prober.calls_since(start);
    let expected: Vec<Duration> = [200, 4200, 8200, 10_000]
        .into_iter()
        .map(Duration::from_millis)
        .collect();
    assert_eq!(calls, expected);
    assert_eq!(
        s.prober
            .max_in_flight
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );

    // The regular probe ends at 13 s and counts.
    sleep_until(start + Duration::from_millis(13_500)).await;
    let health = s.monitor.health("web").unwrap();
    assert_eq!(health.probes, 3);
    assert_eq!(health.state, HealthState::Unhealthy);
    assert_eq!(health.consecutive_failures, 1);
}
