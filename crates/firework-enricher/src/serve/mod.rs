//! `firework-enricher serve`: an HTTP server for GitHub push webhooks, a timer for scheduled
//! renders, `/healthz` and `/metrics`.

pub mod config;
pub mod metrics;
pub mod runner;
pub mod webhook;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tokio::net::TcpListener;
use tracing::{info, warn};

pub use config::{ServeConfig, ServeConfigError};
use metrics::{Metrics, StatusLabel};
pub use runner::{Runner, Trigger};
use webhook::{WebhookCore, WebhookHeaders};

/// Paths the webhook is accepted on.
pub const WEBHOOK_PATHS: [&str; 2] = ["/webhook", "/v1/events/github"];

/// Shared state of the server.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Webhook decisions.
    pub core: Arc<WebhookCore>,
    /// The run queue.
    pub runner: Arc<Runner>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Largest accepted body.
    pub max_body_bytes: usize,
}

/// Formats an error with its sources, once each.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let inner_text = inner.to_string();
        if !text.contains(&inner_text) {
            text.push_str(": ");
            text.push_str(&inner_text);
        }
        source = inner.source();
    }
    text
}

/// The router.
pub fn router(state: AppState) -> Router {
    let mut router = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text));
    for path in WEBHOOK_PATHS {
        router = router.route(path, post(webhook));
    }
    router.with_state(state)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn metrics_text(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn json_response(status: u16, body: serde_json::Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(body)).into_response()
}

async fn webhook(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let too_large = || {
        json_response(
            413,
            json!({"error": format!("request body larger than {} bytes", state.max_body_bytes)}),
        )
    };
    let declared = header_text(&headers, header::CONTENT_LENGTH.as_str())
        .and_then(|v| v.parse::<usize>().ok());
    let response = if declared.is_some_and(|len| len > state.max_body_bytes) {
        too_large()
    } else {
        match axum::body::to_bytes(body, state.max_body_bytes).await {
            Err(_) => too_large(),
            Ok(bytes) => {
                let headers = WebhookHeaders {
                    signature: header_text(&headers, webhook::SIGNATURE_HEADER),
                    event: header_text(&headers, webhook::EVENT_HEADER),
                    delivery: header_text(&headers, webhook::DELIVERY_HEADER),
                };
                let decision = state.core.handle(&headers, &bytes);
                if decision.status == 401 {
                    warn!(delivery = ?headers.delivery, "webhook signature rejected");
                } else if decision.render.is_none() {
                    info!(
                        delivery = ?headers.delivery,
                        event = ?headers.event,
                        status = decision.status,
                        reply = %decision.body,
                        "webhook delivery not rendered"
                    );
                }
                if let Some(after) = decision.render {
                    info!(revision = %after, delivery = ?headers.delivery, "push queued");
                    state.runner.submit(Trigger::Push { after });
                }
                json_response(decision.status, decision.body)
            }
        }
    };
    state
        .metrics
        .webhooks
        .get_or_create(&StatusLabel {
            status: response.status().as_u16(),
        })
        .inc();
    response
}

/// Builds the state for `config`.
pub fn state(config: &ServeConfig) -> Result<AppState, ServeConfigError> {
    let secret = config.secret()?;
    let metrics = Arc::new(Metrics::default());
    Ok(AppState {
        core: Arc::new(WebhookCore::new(secret, config.branch.clone())),
        runner: Runner::new(config.run_config(), metrics.clone()),
        metrics,
        max_body_bytes: config.max_body_bytes,
    })
}

/// Starts a task that queues a scheduled run at once and then every `period`. A run that
/// is still going when the timer fires absorbs the trigger (see [`Runner`]).
pub fn spawn_timer(
    runner: Arc<Runner>,
    period: std::time::Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            info!("scheduled render");
            runner.submit(Trigger::Scheduled);
        }
    })
}

/// Starts the run worker and the timer, and serves on `listener` until the future is
/// dropped or the server fails.
pub async fn serve_on(
    listener: TcpListener,
    state: AppState,
    interval: Option<std::time::Duration>,
) -> std::io::Result<()> {
    let worker = tokio::spawn(state.runner.clone().work());
    let timer = interval.map(|period| spawn_timer(state.runner.clone(), period));
    info!(address = ?listener.local_addr().ok(), "serving webhooks");
    let result = axum::serve(listener, router(state)).await;
    worker.abort();
    if let Some(timer) = timer {
        timer.abort();
    }
    result
}
