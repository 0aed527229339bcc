//! Test guests: HTTP and TCP servers on loopback ephemeral ports, and checks to probe them.

#![allow(dead_code)]

pub mod fakes;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use firework_model::GoDuration;
use firework_model::service::{HealthCheck, HealthCheckType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How a test HTTP server answers.
#[derive(Debug, Clone, Copy)]
pub enum Behaviour {
    /// Answers every request with this status.
    Status(u16),
    /// Answers with 200 after this delay.
    Slow(Duration),
    /// Accepts and reads the request, never answers.
    Hang,
    /// 200, 503, 200, 503, ...
    Flapping,
    /// 302 with a Location header.
    Redirect,
}

/// A running test server.
#[derive(Debug)]
pub struct Guest {
    pub port: u16,
    pub requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Guest {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts an HTTP server on 127.0.0.1 with `behaviour`.
pub async fn http_guest(behaviour: Behaviour) -> Guest {
    http_guest_on(0, behaviour).await
}

/// Starts an HTTP server on 127.0.0.1 at `port` (0 picks a free one) with `behaviour`.
pub async fn http_guest_on(port: u16, behaviour: Behaviour) -> Guest {
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let number = counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(answer(stream, behaviour, number));
        }
    });
    Guest {
        port,
        requests,
        task,
    }
}

async fn answer(mut stream: TcpStream, behaviour: Behaviour, number: usize) {
    let mut buffer = Vec::new();
    let mut chunk = [0_u8; 1024];
    while !buffer.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(read) => buffer.extend_from_slice(&chunk[..read]),
        }
    }
    let head = match behaviour {
        Behaviour::Status(status) => format!("HTTP/1.1 {status} Status\r\n"),
        Behaviour::Slow(delay) => {
            tokio::time::sleep(delay).await;
            "HTTP/1.1 200 OK\r\n".to_string()
        }
        Behaviour::Hang => {
            std::future::pending::<()>().await;
            return;
        }
        Behaviour::Flapping if number.is_multiple_of(2) => "HTTP/1.1 200 OK\r\n".to_string(),
        Behaviour::Flapping => "HTTP/1.1 503 Service Unavailable\r\n".to_string(),
        Behaviour::Redirect => "HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\n".to_string(),
    };
    let response = format!("{head}Content-Length: 2\r\nConnection: close\r\n\r\nok");
    let _ = stream.write_all(response.as_bytes()).await;
}

/// Starts a TCP server that accepts and holds connections.
pub async fn tcp_guest() -> Guest {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            held.push(stream);
        }
    });
    Guest {
        port,
        requests,
        task,
    }
}

/// Returns a loopback port where nothing listens.
pub async fn refused_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

/// A check with the model's defaults.
pub fn check(kind: HealthCheckType) -> HealthCheck {
    HealthCheck {
        kind,
        target: None,
        port: None,
        path: None,
        interval: GoDuration::from_secs(10),
        timeout: GoDuration::from_secs(5),
        retries: 3,
        start_period: GoDuration::from_secs(0),
        success_threshold: 1,
        expected_status: None,
    }
}

/// An HTTP check of `/health` on a loopback port.
pub fn http_check(port: u16) -> HealthCheck {
    let mut check = check(HealthCheckType::Http);
    check.target = Some(format!("http://127.0.0.1:{port}/health"));
    check
}
