//! The local HTTP API: `GET /healthz`, `GET /health`, `GET /status`, `GET /metrics` and
//! `POST /v1/reconcile`. See `docs/api.md` and `docs/agent-api.yaml`.
//!
//! With a bearer token configured every route except `/healthz` requires
//! `Authorization: Bearer <token>`; the comparison runs in constant time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use firework_metrics::{AgentMetrics, CONTENT_TYPE};
use serde::Serialize;
use subtle::ConstantTimeEq;

use crate::status::SharedStatus;
use crate::trigger::Trigger;

/// `/healthz` reports a stalled loop when the last tick finished longer ago than this many
/// poll intervals plus [`STALL_GRACE`].
pub const STALL_POLL_INTERVALS: u32 = 3;
/// Added to the stall limit, so a long rolling update does not count as a stall at once.
pub const STALL_GRACE: Duration = Duration::from_secs(30);

/// The state shared by the handlers.
#[derive(Debug, Clone)]
pub struct ApiState {
    /// The agent status.
    pub status: SharedStatus,
    /// The reconcile trigger.
    pub trigger: Trigger,
    /// The agent's metrics.
    pub metrics: Arc<AgentMetrics>,
    /// The tick loop's poll interval, which sets the `/healthz` stall limit.
    pub poll_interval: Duration,
    /// The bearer token every route but `/healthz` requires, when set.
    pub token: Option<Arc<str>>,
}

impl ApiState {
    /// Returns the age of the last finished tick beyond which `/healthz` reports a stall.
    pub fn stall_limit(&self) -> Duration {
        self.poll_interval.saturating_mul(STALL_POLL_INTERVALS) + STALL_GRACE
    }
}

/// Builds the router; other components add routes to the returned router.
pub fn router(state: ApiState) -> Router {
    let protected = Router::new()
        .route("/health", get(health))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/v1/reconcile", post(reconcile))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/healthz", get(healthz))
        .merge(protected)
        .with_state(state)
}

/// Returns whether `header` carries exactly `Bearer <token>`, compared in constant time.
pub fn token_matches(header: Option<&[u8]>, token: &str) -> bool {
    let Some(value) = header.and_then(|value| value.strip_prefix(b"Bearer ")) else {
        return false;
    };
    bool::from(value.ct_eq(token.as_bytes()))
}

#[derive(Debug, Serialize)]
struct ErrorBody {
    error: String,
}

async fn require_token(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    if let Some(token) = &state.token {
        let header = request
            .headers()
            .get(header::AUTHORIZATION)
            .map(|value| value.as_bytes());
        if !token_matches(header, token) {
            tracing::warn!(path = %request.uri().path(), "api request without a valid bearer token");
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                Json(ErrorBody {
                    error: "missing or invalid bearer token".to_owned(),
                }),
            )
                .into_response();
        }
    }
    next.run(request).await
}

async fn healthz(State(state): State<ApiState>) -> impl IntoResponse {
    let status = state
        .status
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let limit = state.stall_limit();
    let reason = match status.finished_at {
        None => Some("no tick has completed yet".to_owned()),
        Some(finished) => {
            let age = Instant::now().saturating_duration_since(finished);
            (age > limit).then(|| {
                format!(
                    "the last tick finished {} s ago, more than the limit of {} s",
                    age.as_secs(),
                    limit.as_secs()
                )
            })
        }
    };
    match reason {
        None => (StatusCode::OK, "ok\n".to_owned()),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("unhealthy: {reason}\n"),
        ),
    }
}

#[derive(Debug, Serialize)]
struct HealthEntry {
    name: String,
    health: String,
    restarts: u32,
    last_probe_error: Option<String>,
}

#[derive(Debug, Serialize)]
struct HealthResponse {
    services: Vec<HealthEntry>,
}

async fn health(State(state): State<ApiState>) -> impl IntoResponse {
    let status = state
        .status
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    Json(HealthResponse {
        services: status
            .services
            .iter()
            .map(|service| HealthEntry {
                name: service.name.clone(),
                health: service.health.clone(),
                restarts: service.restarts,
                last_probe_error: service.last_probe_error.clone(),
            })
            .collect(),
    })
}

async fn status(State(state): State<ApiState>) -> impl IntoResponse {
    let status = state
        .status
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone();
    Json(status)
}

async fn metrics(State(state): State<ApiState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        state.metrics.encode(),
    )
}

#[derive(Debug, Serialize)]
struct ReconcileResponse {
    /// False when a tick was already queued and this request coalesced into it.
    queued: bool,
}

async fn reconcile(State(state): State<ApiState>) -> impl IntoResponse {
    let queued = state.trigger.fire("api");
    tracing::info!(queued, "reconcile requested through the api");
    (StatusCode::ACCEPTED, Json(ReconcileResponse { queued }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(finished_ago: Option<Duration>) -> ApiState {
        let status = crate::status::Status::new("n1", &["web".to_owned()]);
        let status = Arc::new(std::sync::RwLock::new(status));
        if let Some(ago) = finished_ago {
            let mut status = status.write().unwrap_or_else(|p| p.into_inner());
            status.finished_at = Instant::now().checked_sub(ago);
        }
        ApiState {
            status,
            trigger: Trigger::new().0,
            metrics: Arc::new(AgentMetrics::new("test")),
            poll_interval: Duration::from_secs(10),
            token: None,
        }
    }

    async fn healthz_code(state: ApiState) -> StatusCode {
        healthz(State(state)).await.into_response().status()
    }

    #[tokio::test]
    async fn healthz_follows_the_progress_of_the_loop() {
        // Limit: 3 poll intervals of 10 s plus 30 s of grace = 60 s.
        assert_eq!(state(None).stall_limit(), Duration::from_secs(60));
        assert_eq!(
            healthz_code(state(None)).await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            healthz_code(state(Some(Duration::from_secs(5)))).await,
            StatusCode::OK
        );
        assert_eq!(
            healthz_code(state(Some(Duration::from_secs(61)))).await,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[test]
    fn token_must_match_exactly() {
        assert!(token_matches(Some(b"Bearer s3cret"), "s3cret"));
        assert!(!token_matches(Some(b"Bearer s3cre"), "s3cret"));
        assert!(!token_matches(Some(b"Bearer s3cret "), "s3cret"));
        assert!(!token_matches(Some(b"bearer s3cret"), "s3cret"));
        assert!(!token_matches(Some(b"s3cret"), "s3cret"));
        assert!(!token_matches(None, "s3cret"));
    }
}
