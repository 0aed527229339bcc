//! The rollout gate on paused tokio time, and once against a real server.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use firework_health::{
    CancelToken, GateError, HealthMonitor, HealthState, Registration, RestartPolicyConfig,
    ServiceLocks,
};
use firework_model::GoDuration;
use support::fakes::{RecordingRestarter, SwitchProber};
use support::{Behaviour, http_check, http_guest, http_guest_on, refused_port};
use tokio::time::{Instant, sleep};

const MINUTE: Duration = Duration::from_secs(60);

fn monitor(healthy: bool) -> (HealthMonitor, Arc<SwitchProber>) {
    let prober = SwitchProber::new(healthy);
    let policy = RestartPolicyConfig {
        jitter: 0.0,
        ..RestartPolicyConfig::default()
    };
    let monitor = HealthMonitor::with_parts(
        RecordingRestarter::new(),
        ServiceLocks::new(),
        prober.clone(),
        policy,
    );
    (monitor, prober)
}

#[tokio::test(start_paused = true)]
async fn gate_passes_when_healthy() {
    let (monitor, _) = monitor(true);
    let start = Instant::now();
    monitor.register(Registration::new("web", Some(http_check(1)), None));

    monitor
        .wait_healthy("web", MINUTE, Duration::ZERO, &CancelToken::new())
        .await
        .unwrap();
    assert_eq!(start.elapsed(), firework_health::STARTUP_PROBE_DELAY);
}

#[tokio::test(start_paused = true)]
async fn gate_times_out_with_last_error() {
    let (monitor, _) = monitor(false);
    let mut check = http_check(1);
    check.start_period = GoDuration::from_secs(300);
    monitor.register(Registration::new("web", Some(check), None));

    let error = monitor
        .wait_healthy("web", MINUTE, Duration::ZERO, &CancelToken::new())
        .await
        .unwrap_err();
    let GateError::TimedOut {
        service,
        deadline,
        state,
        last_error,
    } = &error
    else {
        panic!("expected a timeout, got {error:?}");
    };
    assert_eq!(service, "web");
    assert_eq!(*deadline, MINUTE);
    assert_eq!(state, "starting");
    assert!(last_error.as_deref().unwrap().contains("HTTP status 503"));
    assert!(
        error
            .to_string()
            .starts_with("service \"web\" not healthy within the progress deadline of 60s (state starting, last error: "),
        "{error}"
    );
}

#[tokio::test(start_paused = true)]
async fn gate_fails_fast_on_restart() {
    let (monitor, _) = monitor(false);
    let start = Instant::now();
    monitor.register(Registration::new("web", Some(http_check(1)), None));

    let error = monitor
        .wait_healthy(
            "web",
            Duration::from_secs(600),
            Duration::ZERO,
            &CancelToken::new(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&error, GateError::Unhealthy { state, .. } if state == "restarting"),
        "{error:?}"
    );
    assert_eq!(start.elapsed(), Duration::from_secs(30));
}

#[tokio::test(start_paused = true)]
async fn gate_preempted_by_cancel() {
    let (monitor, _) = monitor(false);
    let mut check = http_check(1);
    check.start_period = GoDuration::from_secs(300);
    monitor.register(Registration::new("web", Some(check), None));
    let cancel = CancelToken::new();
    let canceller = cancel.clone();
    tokio::spawn(async move {
        sleep(Duration::from_secs(5)).await;
        canceller.cancel();
    });

    let start = Instant::now();
    let error = monitor
        .wait_healthy("web", MINUTE, Duration::ZERO, &cancel)
        .await
        .unwrap_err();
    assert_eq!(
        error,
        GateError::Preempted {
            service: "web".to_string()
        }
    );
    assert_eq!(start.elapsed(), Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn gate_without_check_waits_min_ready() {
    let (monitor, _) = monitor(true);
    let start = Instant::now();
    monitor.register(Registration::new("batch", None, None));

    monitor
        .wait_healthy(
            "batch",
            MINUTE,
            Duration::from_secs(15),
            &CancelToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(15));

    let error = monitor
        .wait_healthy(
            "batch",
            MINUTE,
            Duration::from_secs(3600),
            &CancelToken::new(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&error, GateError::TimedOut { state, .. } if state == "not_probed"),
        "{error:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn gate_unknown_service_rejected() {
    let (monitor, _) = monitor(true);
    let error = monitor
        .wait_healthy("ghost", MINUTE, Duration::ZERO, &CancelToken::new())
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "service \"ghost\" is not registered with the health monitor"
    );
}

#[tokio::test(start_paused = true)]
async fn gate_sees_deregister() {
    let (monitor, _) = monitor(false);
    let mut check = http_check(1);
    check.start_period = GoDuration::from_secs(300);
    monitor.register(Registration::new("web", Some(check), None));
    let monitor = Arc::new(monitor);
    let remover = monitor.clone();
    tokio::spawn(async move {
        sleep(Duration::from_secs(5)).await;
        remover.deregister("web");
    });

    let error = monitor
        .wait_healthy("web", MINUTE, Duration::ZERO, &CancelToken::new())
        .await
        .unwrap_err();
    assert_eq!(
        error,
        GateError::Deregistered {
            service: "web".to_string()
        }
    );
}

#[tokio::test]
async fn gate_passes_against_real_server() {
    let guest = http_guest(Behaviour::Status(204)).await;
    let restarter = RecordingRestarter::new();
    let monitor = HealthMonitor::new(restarter.clone(), ServiceLocks::new());
    let mut check = http_check(guest.port);
    check.interval = GoDuration::from_millis(50);
    check.timeout = GoDuration::from_millis(50);
    monitor.register(Registration::new("web", Some(check), None));

    monitor
        .wait_healthy(
            "web",
            Duration::from_secs(30),
            Duration::ZERO,
            &CancelToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(monitor.health("web").unwrap().state, HealthState::Healthy);
    assert!(restarter.times().is_empty());
}

#[tokio::test]
async fn gate_passes_soon_after_late_server() {
    // The guest starts to respond 1.5 s after the VM start, well before the first regular
    // probe at 10 s. So only the startup probes can see it healthy within the 8 s deadline.
    let port = refused_port().await;
    let restarter = RecordingRestarter::new();
    let monitor = HealthMonitor::new(restarter.clone(), ServiceLocks::new());
    monitor.register(Registration::new("web", Some(http_check(port)), None));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let guest = http_guest_on(port, Behaviour::Status(200)).await;

    monitor
        .wait_healthy(
            "web",
            Duration::from_secs(8),
            Duration::ZERO,
            &CancelToken::new(),
        )
        .await
        .unwrap();
    let health = monitor.health("web").unwrap();
    assert_eq!(health.state, HealthState::Healthy);
    assert!(health.probe_failures >= 1, "{health:?}");
    assert_eq!(guest.requests.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert!(restarter.times().is_empty());
}
