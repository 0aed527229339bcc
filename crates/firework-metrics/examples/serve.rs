//! Serves the agent metrics on `/metrics` the way the agent's API does.
//!
//! Run `cargo run -p firework-metrics --example serve -- 127.0.0.1:9464`, then
//! `curl -s http://127.0.0.1:9464/metrics`. Without an argument it listens on a free
//! loopback port and prints the address.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use firework_metrics::{AgentMetrics, CONTENT_TYPE, TickResult};

async fn serve_metrics(State(metrics): State<Arc<AgentMetrics>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], metrics.encode())
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".to_owned());

    let metrics = Arc::new(AgentMetrics::new(env!("CARGO_PKG_VERSION")));
    metrics.record_tick(TickResult::NoChange, Duration::from_millis(3));

    let app = Router::new()
        .route("/metrics", get(serve_metrics))
        .with_state(metrics);
    let listener = tokio::net::TcpListener::bind(&address).await?;
    println!("serving http://{}/metrics", listener.local_addr()?);
    axum::serve(listener, app).await
}
