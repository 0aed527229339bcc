//! The local HTTP API: `GET /healthz`, `GET /status` and `POST /v1/reconcile`.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json};
use axum::routing::{get, post};
use serde::Serialize;

use crate::status::SharedStatus;
use crate::trigger::Trigger;

/// The state shared by the handlers.
#[derive(Debug, Clone)]
pub struct ApiState {
    /// The agent status.
    pub status: SharedStatus,
    /// The reconcile trigger.
    pub trigger: Trigger,
}

/// Builds the router; other components add routes to the returned router.
// NOTE: `api_token_file` is not enforced yet; every route is open to whoever can connect.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/status", get(status))
        .route("/v1/reconcile", post(reconcile))
        .with_state(state)
}

async fn healthz(State(state): State<ApiState>) -> impl IntoResponse {
    let status = state
        .status
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if status.is_healthy() {
        (StatusCode::OK, "ok\n".to_owned())
    } else {
        let reason = match (&status.last_tick, &status.last_error) {
            (None, _) => "no tick has completed yet".to_owned(),
            (Some(_), Some(error)) => error.clone(),
            (Some(_), None) => "unknown".to_owned(),
        };
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("unhealthy: {reason}\n"),
        )
    }
}

async fn status(State(state): State<ApiState>) -> impl IntoResponse {
    let status = state
        .status
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone();
    Json(status)
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
