//! AWS Lambda events: API Gateway HTTP API v2 requests carrying GitHub webhooks, and
//! EventBridge scheduled events. The handler shares [`WebhookCore`] and [`run`] with the
//! HTTP server; only the runtime loop needs the `lambda` feature.
//!
//! Unlike the server, a Lambda function runs the render inside the invocation (it may be
//! frozen after replying), so the reply to a push is sent once it is published. Direct invocations
//! with a bare push payload are refused: they would bypass the signature check.

use base64::Engine as _;
use serde_json::{Value, json};
use tracing::{error, info};

use crate::run::{RunConfig, run};
use crate::serve::error_chain;
use crate::serve::webhook::{WebhookCore, WebhookHeaders};

/// The kind of a Lambda event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// EventBridge scheduled event (`source` is `aws.events`).
    Scheduled,
    /// API Gateway HTTP API v2 request.
    ApiGateway,
    /// Anything else; refused.
    Unknown,
}

/// Classifies a raw event.
pub fn classify(event: &Value) -> EventKind {
    if event.get("source").and_then(Value::as_str) == Some("aws.events") {
        EventKind::Scheduled
    } else if event.get("version").is_some() && event.get("headers").is_some_and(Value::is_object) {
        EventKind::ApiGateway
    } else {
        EventKind::Unknown
    }
}

/// An invocation failure returned to Lambda.
#[derive(Debug, thiserror::Error)]
pub enum LambdaError {
    /// The event is neither a scheduled event nor an API Gateway request.
    #[error(
        "unsupported event: expected an API Gateway v2 request or an EventBridge scheduled event"
    )]
    Unsupported,
    /// A scheduled run failed.
    #[error("scheduled run failed: {0}")]
    Run(String),
}

/// The function's state: the webhook core, the run configuration and the body limit.
#[derive(Debug)]
pub struct Handler {
    /// Webhook decisions.
    pub core: WebhookCore,
    /// The run configuration.
    pub config: RunConfig,
    /// Largest accepted body.
    pub max_body_bytes: usize,
}

fn response(status: u16, body: &Value) -> Value {
    json!({
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": body.to_string(),
    })
}

impl Handler {
    /// Handles one event.
    pub async fn handle(&self, event: Value) -> Result<Value, LambdaError> {
        match classify(&event) {
            EventKind::Scheduled => {
                info!("scheduled render");
                match run(&self.config).await {
                    Ok(outcome) => Ok(json!({
                        "published": outcome.commit,
                        "written": outcome.report.written.len(),
                        "deleted": outcome.report.deleted.len(),
                    })),
                    Err(err) => Err(LambdaError::Run(error_chain(&err))),
                }
            }
            EventKind::ApiGateway => Ok(self.http(&event).await),
            EventKind::Unknown => Err(LambdaError::Unsupported),
        }
    }

    async fn http(&self, event: &Value) -> Value {
        let raw = event.get("body").and_then(Value::as_str).unwrap_or("");
        let encoded = event
            .get("isBase64Encoded")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let body = if encoded {
            match base64::engine::general_purpose::STANDARD.decode(raw) {
                Ok(bytes) => bytes,
                Err(_) => {
                    return response(400, &json!({"error": "body is not valid base64"}));
                }
            }
        } else {
            raw.as_bytes().to_vec()
        };
        if body.len() > self.max_body_bytes {
            return response(
                413,
                &json!({"error": format!("request body larger than {} bytes", self.max_body_bytes)}),
            );
        }
        let header = |name: &str| -> Option<String> {
            event
                .get("headers")
                .and_then(Value::as_object)?
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .and_then(|(_, value)| value.as_str())
                .map(str::to_string)
        };
        let headers = WebhookHeaders {
            signature: header(crate::serve::webhook::SIGNATURE_HEADER),
            event: header(crate::serve::webhook::EVENT_HEADER),
            delivery: header(crate::serve::webhook::DELIVERY_HEADER),
        };
        let decision = self.core.handle(&headers, &body);
        let Some(after) = decision.render else {
            return response(decision.status, &decision.body);
        };
        info!(revision = %after, "push render");
        match run(&self.config).await {
            Ok(outcome) => response(
                200,
                &json!({
                    "published": outcome.commit,
                    "written": outcome.report.written.len(),
                    "deleted": outcome.report.deleted.len(),
                }),
            ),
            Err(err) => {
                let text = error_chain(&err);
                error!(error = %text, "push render failed");
                response(500, &json!({"error": text}))
            }
        }
    }
}

/// Runs the Lambda runtime loop with `config`.
#[cfg(feature = "lambda")]
pub async fn run_lambda(
    config: &crate::serve::ServeConfig,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let handler = std::sync::Arc::new(Handler {
        core: WebhookCore::new(config.secret()?, config.branch.clone()),
        config: config.run_config(),
        max_body_bytes: config.max_body_bytes,
    });
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<Value>| {
            let handler = handler.clone();
            async move {
                handler
                    .handle(event.payload)
                    .await
                    .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
            }
        },
    ))
    .await
}
