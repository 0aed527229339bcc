//! The health vectors of the Go firework, read in place. Restart timing differs on
//! purpose: the Go firework restarts after `retries` failures at once and forever, this
//! crate backs off and ends in the failing state (see `monitor.rs` for those tests).

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use firework_health::probe::probe_once;
use firework_health::{HealthMonitor, HealthState, Registration, ServiceLocks, resolve_target};
use firework_model::GoDuration;
use firework_model::service::{HealthCheck, HealthCheckType};
use serde::Deserialize;
use support::fakes::RecordingRestarter;
use support::{Behaviour, http_guest, refused_port};

fn vectors_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/go-firework");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "skipping health conformance vectors: {} is absent",
            dir.display()
        );
        None
    }
}

fn health_vectors(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with(prefix))
        })
        .collect();
    found.sort();
    found
}

fn read<T: for<'de> Deserialize<'de>>(path: &Path) -> T {
    let text = std::fs::read_to_string(path).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A `health_check` block as the vectors write it.
#[derive(Debug, Deserialize)]
struct CheckYaml {
    #[serde(rename = "type")]
    kind: String,
    target: Option<String>,
    port: Option<u16>,
    path: Option<String>,
    interval: Option<String>,
    timeout: Option<String>,
    retries: Option<u32>,
}

impl CheckYaml {
    fn to_check(&self) -> HealthCheck {
        let duration = |text: &Option<String>, default: u64| {
            text.as_deref()
                .map_or(GoDuration::from_secs(default), |t| t.parse().unwrap())
        };
        HealthCheck {
            kind: match self.kind.as_str() {
                "http" => HealthCheckType::Http,
                "tcp" => HealthCheckType::Tcp,
                other => panic!("unexpected check type {other}"),
            },
            target: self.target.clone(),
            port: self.port,
            path: self.path.clone(),
            interval: duration(&self.interval, 10),
            timeout: duration(&self.timeout, 5),
            retries: self.retries.unwrap_or(3),
            start_period: GoDuration::from_secs(0),
            success_threshold: 1,
            expected_status: None,
        }
    }
}

#[derive(Debug, Deserialize)]
struct TargetCase {
    health_check: CheckYaml,
    guest_ip: String,
}

#[derive(Debug, Deserialize)]
struct TargetExpected {
    target: String,
}

#[test]
fn target_vectors() {
    let Some(dir) = vectors_dir() else { return };
    let vectors = health_vectors(&dir, "health-target-");
    assert_eq!(vectors.len(), 4, "{vectors:?}");
    for vector in vectors {
        let case: TargetCase = read(&vector.join("input/case.yaml"));
        let expected: TargetExpected = read(&vector.join("expected.yaml"));
        let check = case.health_check.to_check();
        let got = resolve_target(&check, Some(&case.guest_ip))
            .map(|target| target.to_string())
            .unwrap_or_default();
        assert_eq!(got, expected.target, "{}", vector.display());
    }
}

#[derive(Debug, Deserialize)]
struct ProbeCase {
    #[serde(flatten)]
    check: CheckYaml,
    peer: String,
}

#[derive(Debug, Deserialize)]
struct ProbeExpected {
    result: String,
}

#[tokio::test]
async fn probe_vectors() {
    let Some(dir) = vectors_dir() else { return };
    let vectors = health_vectors(&dir, "health-probe-");
    assert_eq!(vectors.len(), 4, "{vectors:?}");
    for vector in vectors {
        let case: ProbeCase = read(&vector.join("input/probe.yaml"));
        let expected: ProbeExpected = read(&vector.join("expected.yaml"));
        let mut check = case.check.to_check();

        // The peer is described in words; start the matching local server.
        let guest = if case.peer.contains("status 200") {
            Some(http_guest(Behaviour::Status(200)).await)
        } else if case.peer.contains("status 503") {
            Some(http_guest(Behaviour::Status(503)).await)
        } else if case.peer.contains("nothing listens") {
            None
        } else {
            panic!("{}: unknown peer {:?}", vector.display(), case.peer);
        };
        match (&guest, check.kind) {
            (Some(guest), _) => {
                check.target = Some(format!(
                    "http://127.0.0.1:{}{}",
                    guest.port,
                    check.path.as_deref().unwrap_or("/")
                ));
            }
            // Probe a port known to be closed rather than trusting that port 1 is.
            (None, HealthCheckType::Http) => {
                check.target = Some(format!("http://127.0.0.1:{}", refused_port().await));
            }
            (None, HealthCheckType::Tcp) => {
                check.target = Some(format!("127.0.0.1:{}", refused_port().await));
            }
        }

        let target = resolve_target(&check, None).unwrap();
        let result = probe_once(&target, check.timeout.into(), check.expected_status).await;
        let got = if result.is_ok() {
            "healthy"
        } else {
            "unhealthy"
        };
        assert_eq!(got, expected.result, "{}: {result:?}", vector.display());
    }
}

#[derive(Debug, Deserialize)]
struct ServiceYaml {
    name: String,
    health_check: Option<CheckYaml>,
}

fn monitor() -> (HealthMonitor, std::sync::Arc<RecordingRestarter>) {
    let restarter = RecordingRestarter::new();
    (
        HealthMonitor::new(restarter.clone(), ServiceLocks::new()),
        restarter,
    )
}

#[tokio::test]
async fn monitor_deregister_removes_result() {
    let Some(dir) = vectors_dir() else { return };
    let vector = dir.join("health-monitor-deregister-removes-result");
    let service: ServiceYaml = read(&vector.join("input/service.yaml"));
    let steps: Vec<BTreeMap<String, String>> = read(&vector.join("input/steps.yaml"));
    let (monitor, _) = monitor();

    for step in steps {
        if let Some(name) = step.get("register") {
            assert_eq!(name, &service.name);
            let check = service.health_check.as_ref().map(CheckYaml::to_check);
            monitor.register(Registration::new(name, check, None));
            // The result exists right after registration, before any probe.
            let health = monitor.health(name).unwrap();
            assert_eq!(health.state, HealthState::Starting);
            assert_eq!(health.probes, 0);
        } else if let Some(name) = step.get("deregister") {
            assert!(monitor.deregister(name));
            assert!(monitor.health(name).is_none());
        } else {
            panic!("unknown step {step:?}");
        }
    }
}

#[tokio::test]
async fn monitor_healthy_no_restart() {
    let Some(dir) = vectors_dir() else { return };
    let vector = dir.join("health-monitor-healthy-no-restart");
    let service: ServiceYaml = read(&vector.join("input/service.yaml"));
    let guest = http_guest(Behaviour::Status(200)).await;
    let mut check = service.health_check.as_ref().unwrap().to_check();
    check.target = Some(format!("http://127.0.0.1:{}/health", guest.port));
    let (monitor, restarter) = monitor();
    monitor.register(Registration::new(&service.name, Some(check), None));

    // The vector observes after 400 ms. The first probe here comes after one interval
    // (100 ms), but the wait is a polled condition with a wide deadline, so a loaded
    // machine does not fail it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let health = monitor.health(&service.name).unwrap();
        if health.state == HealthState::Healthy {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{health:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(restarter.times().is_empty());
}

#[tokio::test(start_paused = true)]
async fn monitor_no_check_no_result() {
    let Some(dir) = vectors_dir() else { return };
    let vector = dir.join("health-monitor-no-check-no-result");
    let service: ServiceYaml = read(&vector.join("input/service.yaml"));
    assert!(service.health_check.is_none());
    let (monitor, _) = monitor();
    monitor.register(Registration::new(&service.name, None, None));
    tokio::time::sleep(Duration::from_secs(3600)).await;

    // The service stays tracked so that a VM exit restarts it, but it has no probe
    // result: never probed and in the not-probed state.
    let health = monitor.health(&service.name).unwrap();
    assert_eq!(health.state, HealthState::NotProbed);
    assert_eq!(health.probes, 0);
    assert_eq!(health.last_probe, None);
}
