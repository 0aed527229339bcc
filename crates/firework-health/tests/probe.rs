//! Single probes against real loopback servers.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use firework_health::probe::probe_once;
use firework_health::{NetProber, ProbeError, ProbeTarget, Prober, resolve_target};
use firework_model::service::HealthCheckType;
use support::{Behaviour, check, http_check, http_guest, refused_port, tcp_guest};

fn http_target(port: u16, path: &str) -> ProbeTarget {
    ProbeTarget::Http {
        host: "127.0.0.1".to_string(),
        port,
        path: path.to_string(),
    }
}

#[tokio::test]
async fn http_200_healthy() {
    let guest = http_guest(Behaviour::Status(200)).await;
    let check = http_check(guest.port);
    let target = resolve_target(&check, None).unwrap();
    NetProber.probe(&check, &target).await.unwrap();
    assert_eq!(guest.requests.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn http_503_unhealthy() {
    let guest = http_guest(Behaviour::Status(503)).await;
    let error = probe_once(
        &http_target(guest.port, "/health"),
        Duration::from_secs(5),
        None,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(error, ProbeError::Status { status: 503, .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!(
            "http://127.0.0.1:{}/health returned HTTP status 503, expected 2xx or 3xx",
            guest.port
        )
    );
}

#[tokio::test]
async fn http_redirect_healthy_not_followed() {
    let guest = http_guest(Behaviour::Redirect).await;
    probe_once(&http_target(guest.port, "/"), Duration::from_secs(5), None)
        .await
        .unwrap();
    assert_eq!(guest.requests.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn expected_status_is_exact() {
    let teapot = http_guest(Behaviour::Status(418)).await;
    let ok = http_guest(Behaviour::Status(200)).await;
    let timeout = Duration::from_secs(5);

    probe_once(&http_target(teapot.port, "/"), timeout, Some(418))
        .await
        .unwrap();
    let error = probe_once(&http_target(ok.port, "/"), timeout, Some(418))
        .await
        .unwrap_err();
    assert!(
        matches!(error, ProbeError::Status { status: 200, .. }),
        "{error:?}"
    );
    assert!(error.to_string().ends_with("expected 418"), "{error}");
}

#[tokio::test]
async fn slow_answer_times_out() {
    let guest = http_guest(Behaviour::Slow(Duration::from_secs(30))).await;
    let error = probe_once(
        &http_target(guest.port, "/"),
        Duration::from_millis(300),
        None,
    )
    .await
    .unwrap_err();
    assert!(matches!(error, ProbeError::TimedOut { .. }), "{error:?}");
}

#[tokio::test]
async fn hang_after_connect_times_out() {
    let guest = http_guest(Behaviour::Hang).await;
    let error = probe_once(
        &http_target(guest.port, "/"),
        Duration::from_millis(300),
        None,
    )
    .await
    .unwrap_err();
    assert!(matches!(error, ProbeError::TimedOut { .. }), "{error:?}");
    assert!(
        error.to_string().contains("timed out after 300ms"),
        "{error}"
    );
}

#[tokio::test]
async fn http_refused_unhealthy() {
    let port = refused_port().await;
    let error = probe_once(&http_target(port, "/"), Duration::from_secs(1), None)
        .await
        .unwrap_err();
    let ProbeError::Connect { source, .. } = &error else {
        panic!("expected a connect error, got {error:?}");
    };
    assert_eq!(source.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[tokio::test]
async fn flapping_alternates() {
    let guest = http_guest(Behaviour::Flapping).await;
    let target = http_target(guest.port, "/");
    let mut outcomes = Vec::new();
    for _ in 0..4 {
        outcomes.push(
            probe_once(&target, Duration::from_secs(5), None)
                .await
                .is_ok(),
        );
    }
    assert_eq!(outcomes, [true, false, true, false]);
}

#[tokio::test]
async fn tcp_connect_healthy() {
    let guest = tcp_guest().await;
    let mut check = check(HealthCheckType::Tcp);
    check.port = Some(guest.port);
    let target = resolve_target(&check, Some("127.0.0.1/8")).unwrap();
    NetProber.probe(&check, &target).await.unwrap();
}

#[tokio::test]
async fn tcp_refused_unhealthy() {
    let port = refused_port().await;
    let target = ProbeTarget::Tcp {
        host: "127.0.0.1".to_string(),
        port,
    };
    let error = probe_once(&target, Duration::from_secs(1), None)
        .await
        .unwrap_err();
    assert!(matches!(error, ProbeError::Connect { .. }), "{error:?}");
}

#[tokio::test]
async fn garbage_answer_is_invalid() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let (mut stream, _) = listener.accept().await.unwrap();
        stream.write_all(b"SSH-2.0-OpenSSH_9.6\r\n").await.unwrap();
    });
    let error = probe_once(&http_target(port, "/"), Duration::from_secs(5), None)
        .await
        .unwrap_err();
    assert!(
        matches!(error, ProbeError::InvalidResponse { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("SSH-2.0"), "{error}");
}
