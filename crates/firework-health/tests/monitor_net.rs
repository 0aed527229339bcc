//! The monitor with real sockets: a silent guest does not stall the others.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use firework_health::{HealthMonitor, HealthState, Registration, ServiceHealth, ServiceLocks};
use firework_model::GoDuration;
use firework_model::service::HealthCheckType;
use support::fakes::RecordingRestarter;
use support::{Behaviour, check, http_check, http_guest, refused_port, tcp_guest};

/// Polls until `done` holds for the service, or fails after 20 s.
async fn wait_for(
    monitor: &HealthMonitor,
    service: &str,
    done: impl Fn(&ServiceHealth) -> bool,
) -> ServiceHealth {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let health = monitor.health(service).unwrap();
        if done(&health) {
            return health;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached for {service}: {health:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn hanging_guest_does_not_stall_others() {
    let hanging = http_guest(Behaviour::Hang).await;
    let healthy = http_guest(Behaviour::Status(200)).await;
    let tcp = tcp_guest().await;
    let refused = refused_port().await;
    let restarter = RecordingRestarter::new();
    let monitor = HealthMonitor::new(restarter.clone(), ServiceLocks::new());

    let fast = |mut check: firework_model::service::HealthCheck| {
        check.interval = GoDuration::from_millis(100);
        check.timeout = GoDuration::from_millis(100);
        // No restart within the test: only the probes are under test here.
        check.retries = 1000;
        check
    };
    monitor.register(Registration::new(
        "hang",
        Some(fast(http_check(hanging.port))),
        None,
    ));
    monitor.register(Registration::new(
        "ok",
        Some(fast(http_check(healthy.port))),
        None,
    ));
    let mut tcp_check = check(HealthCheckType::Tcp);
    tcp_check.port = Some(tcp.port);
    monitor.register(Registration::new(
        "db",
        Some(fast(tcp_check)),
        Some("127.0.0.1/8"),
    ));
    monitor.register(Registration::new(
        "down",
        Some(fast(http_check(refused))),
        None,
    ));

    let ok = wait_for(&monitor, "ok", |h| h.state == HealthState::Healthy).await;
    assert_eq!(ok.last_error, None);
    wait_for(&monitor, "db", |h| h.state == HealthState::Healthy).await;
    let hang = wait_for(&monitor, "hang", |h| h.consecutive_failures >= 2).await;
    assert!(
        hang.last_error
            .as_deref()
            .unwrap()
            .contains("timed out after 100ms"),
        "{hang:?}"
    );
    let down = wait_for(&monitor, "down", |h| h.consecutive_failures >= 2).await;
    assert!(
        down.last_error
            .as_deref()
            .unwrap()
            .contains("Connection refused"),
        "{down:?}"
    );
    assert_eq!(hang.state, HealthState::Unhealthy);
    assert!(restarter.times().is_empty());
}

#[tokio::test]
async fn refused_guest_gets_restarted() {
    let refused = refused_port().await;
    let restarter = RecordingRestarter::new();
    let policy = firework_health::RestartPolicyConfig {
        initial_backoff: Duration::from_millis(10),
        ..Default::default()
    };
    let monitor = HealthMonitor::with_parts(
        restarter.clone(),
        ServiceLocks::new(),
        std::sync::Arc::new(firework_health::NetProber),
        policy,
    );
    let mut check = http_check(refused);
    check.interval = GoDuration::from_millis(20);
    check.timeout = GoDuration::from_millis(20);
    monitor.register(Registration::new("down", Some(check), None));

    let health = wait_for(&monitor, "down", |h| h.restarts >= 1).await;
    assert_eq!(restarter.restarts.lock().unwrap()[0].0, "down");
    assert!(health.probe_failures >= 3, "{health:?}");
}
