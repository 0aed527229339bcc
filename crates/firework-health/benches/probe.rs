//! Cost of one probe against a loopback server: HTTP GET and TCP connect.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use firework_health::ProbeTarget;
use firework_health::probe::probe_once;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Starts a server that answers every request with 200 and returns its port.
async fn server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
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
    port
}

fn probes(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let port = runtime.block_on(server());
    let http = ProbeTarget::Http {
        host: "127.0.0.1".to_string(),
        port,
        path: "/health".to_string(),
    };
    let tcp = ProbeTarget::Tcp {
        host: "127.0.0.1".to_string(),
        port,
    };
    let timeout = Duration::from_secs(5);

    c.bench_function("probe_http_loopback", |b| {
        b.iter(|| runtime.block_on(probe_once(&http, timeout, None)).unwrap());
    });
    c.bench_function("probe_tcp_loopback", |b| {
        b.iter(|| runtime.block_on(probe_once(&tcp, timeout, None)).unwrap());
    });
}

criterion_group!(benches, probes);
criterion_main!(benches);
