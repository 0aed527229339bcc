//! Probes across a veth pair into a network namespace, as the agent reaches a guest:
//! a server inside answers, an address nobody owns stays silent until the timeout.
//! Needs root; prints a skip reason otherwise.

#![allow(clippy::unwrap_used)]

mod support;

use std::os::fd::AsFd;
use std::process::Command;
use std::time::Duration;

use firework_health::{HealthMonitor, HealthState, Registration, ServiceHealth, ServiceLocks};
use firework_model::GoDuration;
use firework_model::service::HealthCheckType;
use support::check;
use support::fakes::RecordingRestarter;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A network namespace joined to the host by a veth pair; deleted on drop.
struct Namespace {
    name: String,
}

impl Namespace {
    fn create(name: &str, subnet: &str) -> Namespace {
        let namespace = Namespace {
            name: name.to_string(),
        };
        let host = format!("{name}h");
        let guest = format!("{name}g");
        let steps: Vec<Vec<String>> = vec![
            vec!["netns".into(), "add".into(), name.into()],
            vec![
                "link".into(),
                "add".into(),
                host.clone(),
                "type".into(),
                "veth".into(),
                "peer".into(),
                "name".into(),
                guest.clone(),
            ],
            vec![
                "link".into(),
                "set".into(),
                guest.clone(),
                "netns".into(),
                name.into(),
            ],
            vec![
                "addr".into(),
                "add".into(),
                format!("{subnet}.1/24"),
                "dev".into(),
                host.clone(),
            ],
            vec!["link".into(), "set".into(), host, "up".into()],
            vec![
                "-n".into(),
                name.into(),
                "addr".into(),
                "add".into(),
                format!("{subnet}.2/24"),
                "dev".into(),
                guest.clone(),
            ],
            vec![
                "-n".into(),
                name.into(),
                "link".into(),
                "set".into(),
                guest,
                "up".into(),
            ],
            vec![
                "-n".into(),
                name.into(),
                "link".into(),
                "set".into(),
                "lo".into(),
                "up".into(),
            ],
        ];
        for args in steps {
            let status = Command::new("ip").args(&args).status().unwrap();
            assert!(status.success(), "ip {args:?} failed: {status}");
        }
        namespace
    }

    /// Binds a listener inside the namespace from a thread that joins it.
    fn listen(&self, address: &str) -> std::net::TcpListener {
        let path = format!("/run/netns/{}", self.name);
        let address = address.to_string();
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).unwrap();
            nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let listener = std::net::TcpListener::bind(&address).unwrap();
            listener.set_nonblocking(true).unwrap();
            listener
        })
        .join()
        .unwrap()
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        // Deleting the namespace also deletes the veth pair.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

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
async fn probe_guest_in_namespace() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipping probe_guest_in_namespace: needs root to create a network namespace");
        return;
    }
    let pid = std::process::id();
    let subnet = format!("10.213.{}", pid % 250);
    let namespace = Namespace::create(&format!("fwh{pid}"), &subnet);
    let listener =
        tokio::net::TcpListener::from_std(namespace.listen(&format!("{subnet}.2:8080"))).unwrap();
    let server = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = [0_u8; 1024];
                let _ = stream.read(&mut buffer).await;
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .await;
            });
        }
    });

    let restarter = RecordingRestarter::new();
    let monitor = HealthMonitor::new(restarter.clone(), ServiceLocks::new());
    let mut http = check(HealthCheckType::Http);
    http.port = Some(8080);
    http.path = Some("/health".to_string());
    http.interval = GoDuration::from_millis(100);
    http.timeout = GoDuration::from_millis(300);
    let mut silent = http.clone();
    silent.retries = 1000;
    monitor.register(Registration::new(
        "web",
        Some(http),
        Some(&format!("{subnet}.2/24")),
    ));
    // Nobody owns .3, so the connect gets no answer at all and must time out.
    monitor.register(Registration::new(
        "silent",
        Some(silent),
        Some(&format!("{subnet}.3/24")),
    ));

    wait_for(&monitor, "web", |h| h.state == HealthState::Healthy).await;
    let silent = wait_for(&monitor, "silent", |h| h.probe_failures >= 1).await;
    let error = silent.last_error.unwrap();
    assert!(error.contains("timed out after 300ms"), "{error}");
    assert!(restarter.times().is_empty());

    server.abort();
    drop(namespace);
}
