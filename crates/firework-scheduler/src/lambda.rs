//! AWS Lambda mode: a plan request as JSON in, the plan report as JSON out.
//!
//! The handler accepts a direct invocation whose payload is a [`LambdaRequest`], or an API
//! Gateway HTTP API v2 request whose body is one. It reads the registry with
//! [`read_registry`] and schedules with [`plan_records`], the same code the command line
//! runs. Only the runtime loop ([`run_lambda`]) needs the `lambda` feature.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use firework_model::node::parse_node_config_with;
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::{info, warn};

use crate::input::{InputError, PLACEMENT_RULES};
use crate::plan::{PlanError, PlanReport, plan_records};
use crate::registry::{DEFAULT_NODE_TTL, RegistryError};
use crate::request::{DEFAULT_VM_OVERHEAD_MB, ExistingPlacement, ScheduleOptions, ServiceRequest};
use crate::source::{ObjectOptions, RegistrySource, read_registry};

/// The payload of an invocation.
///
/// ```json
/// {"registry": "s3://bucket/fleet",
///  "services": [{"name": "web", "image": "/img/web.ext4", "kernel": "/img/vmlinux",
///                "vcpus": 1, "memory_mb": 256, "node_type": "general"}],
///  "existing": {"n1": ["web"]},
///  "ttl_seconds": 45, "vm_overhead_mb": 32, "spread": false, "now": "2026-12-04T20:00:00Z"}
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LambdaRequest {
    /// `s3://bucket/prefix`, `gs://bucket/prefix` or a directory.
    pub registry: String,
    /// Services in the node config format, validated by the node config parser.
    pub services: Vec<Value>,
    /// Previous placement: node name to the services it ran, each a name or a service
    /// object with a `name`.
    #[serde(default)]
    pub existing: BTreeMap<String, Vec<Value>>,
    /// Heartbeat age in seconds after which a node is not live (default 45).
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
    /// Memory in MiB counted per VM on top of `memory_mb` (default 32).
    #[serde(default)]
    pub vm_overhead_mb: Option<u64>,
    /// Worst fit instead of best fit for new placements.
    #[serde(default)]
    pub spread: bool,
    /// Judge liveness at this RFC 3339 time instead of the clock.
    #[serde(default)]
    pub now: Option<String>,
}

/// An invocation failure.
#[derive(Debug, thiserror::Error)]
pub enum LambdaError {
    /// The event is neither a plan request nor an API Gateway v2 request.
    #[error("unsupported event: expected a plan request or an API Gateway v2 request")]
    Unsupported,
    /// The request is malformed.
    #[error("invalid plan request: {reason}")]
    BadRequest {
        /// The reason the request is invalid.
        reason: String,
    },
    /// Reading the registry or scheduling failed.
    #[error("plan failed")]
    Plan(#[source] PlanError),
}

impl LambdaError {
    /// Returns the HTTP status an API Gateway caller receives for this error.
    pub fn status(&self) -> u16 {
        match self {
            LambdaError::Plan(PlanError::Registry(RegistryError::InvalidLocation { .. })) => 400,
            LambdaError::Plan(PlanError::Registry(_)) => 502,
            _ => 400,
        }
    }
}

/// The function's settings, fixed when the function starts rather than taken from the
/// caller, so a caller cannot point the function at another endpoint.
#[derive(Debug, Clone, Default)]
pub struct Handler {
    /// Endpoint, region and credentials for bucket registries.
    pub object: ObjectOptions,
}

impl Handler {
    /// Handles one event. A direct invocation returns the plan report. An API Gateway v2
    /// request gets a response whose body is the report (200) or the error (400 for a bad
    /// request, 502 when the registry cannot be read).
    pub async fn handle(&self, event: Value) -> Result<Value, LambdaError> {
        if event.get("registry").is_some() {
            let request = serde_json::from_value(event).map_err(|e| LambdaError::BadRequest {
                reason: e.to_string(),
            })?;
            let report = self.plan(request).await?;
            return Ok(report_json(&report));
        }
        if event.get("version").and_then(Value::as_str) == Some("2.0") {
            return Ok(self.http(&event).await);
        }
        Err(LambdaError::Unsupported)
    }

    async fn http(&self, event: &Value) -> Value {
        let outcome = async {
            let body = http_body(event)?;
            let request = serde_json::from_slice(&body).map_err(|e| LambdaError::BadRequest {
                reason: e.to_string(),
            })?;
            self.plan(request).await
        }
        .await;
        match outcome {
            Ok(report) => response(200, &report_json(&report)),
            Err(error) => {
                let text = firework_store::error_chain(&error);
                warn!(error = %text, "plan request failed");
                response(error.status(), &json!({ "error": text }))
            }
        }
    }

    /// Reads the registry and schedules the request's services.
    pub async fn plan(&self, request: LambdaRequest) -> Result<PlanReport, LambdaError> {
        let bad = |reason: String| LambdaError::BadRequest { reason };
        let now = match &request.now {
            Some(text) => text
                .parse::<Timestamp>()
                .map_err(|e| bad(format!("invalid now {text:?}: {e}")))?,
            None => Timestamp::now(),
        };
        let source = RegistrySource::parse(&request.registry, &self.object)
            .map_err(|e| LambdaError::Plan(PlanError::Registry(e)))?;
        let services = parse_services(&request.services)?;
        let existing = parse_existing(&request.existing)?;
        let options = ScheduleOptions {
            vm_overhead_mb: request.vm_overhead_mb.unwrap_or(DEFAULT_VM_OVERHEAD_MB),
            spread: request.spread,
        };
        let ttl = request
            .ttl_seconds
            .map_or(DEFAULT_NODE_TTL, Duration::from_secs);
        info!(registry = %source.display(), services = services.len(), "plan request");
        let records = read_registry(&source)
            .await
            .map_err(|e| LambdaError::Plan(PlanError::Registry(e)))?;
        plan_records(records, &services, &existing, now, ttl, &options).map_err(LambdaError::Plan)
    }
}

fn report_json(report: &PlanReport) -> Value {
    // The report holds only strings, numbers and lists, which always serialize.
    serde_json::to_value(report).unwrap_or(Value::Null)
}

fn response(status: u16, body: &Value) -> Value {
    json!({
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": body.to_string(),
    })
}

fn http_body(event: &Value) -> Result<Vec<u8>, LambdaError> {
    let raw = event.get("body").and_then(Value::as_str).unwrap_or("");
    let encoded = event
        .get("isBase64Encoded")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if encoded {
        base64::engine::general_purpose::STANDARD
            .decode(raw)
            .map_err(|_| LambdaError::BadRequest {
                reason: "body is not valid base64".to_owned(),
            })
    } else {
        Ok(raw.as_bytes().to_vec())
    }
}

/// File name that findings about the request's services carry.
const SERVICES_FILE: &str = "request services";

/// Validates the services with the node config parser under the same rules as the files
/// of the command line ([`PLACEMENT_RULES`]), and logs the parser's warnings.
fn parse_services(services: &[Value]) -> Result<Vec<ServiceRequest>, LambdaError> {
    let parsed =
        parse_node_config_with(&services_document(services), SERVICES_FILE, PLACEMENT_RULES)
            .map_err(|error| LambdaError::Plan(PlanError::Input(InputError::Invalid(error))))?;
    for warning in &parsed.warnings {
        warn!("{warning}");
    }
    Ok(parsed
        .value
        .services
        .iter()
        .map(ServiceRequest::from)
        .collect())
}

fn services_document(services: &[Value]) -> Vec<u8> {
    json!({ "services": services }).to_string().into_bytes()
}

fn parse_existing(
    existing: &BTreeMap<String, Vec<Value>>,
) -> Result<Vec<ExistingPlacement>, LambdaError> {
    let mut placements = Vec::new();
    for (node, services) in existing {
        for service in services {
            let name = service
                .as_str()
                .or_else(|| service.get("name").and_then(Value::as_str))
                .ok_or_else(|| LambdaError::BadRequest {
                    reason: format!(
                        "existing.{node}: expected a service name or an object with a name, got {service}"
                    ),
                })?;
            placements.push(ExistingPlacement::new(name, node));
        }
    }
    Ok(placements)
}

/// The environment variables the Lambda runtime sets and `lambda_runtime` 1.5 requires.
/// That crate panics when one is missing, so [`run_lambda`] checks them first.
pub const RUNTIME_VARIABLES: [&str; 4] = [
    "AWS_LAMBDA_RUNTIME_API",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
];

/// Runs the Lambda runtime loop with `handler`. Outside Lambda, where the runtime variables
/// are missing, it returns an error naming them instead of starting.
#[cfg(feature = "lambda")]
pub async fn run_lambda(handler: Handler) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let missing: Vec<&str> = RUNTIME_VARIABLES
        .into_iter()
        .filter(|name| std::env::var_os(name).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "not running inside AWS Lambda: {} not set; use the plan command outside Lambda",
            missing.join(", ")
        )
        .into());
    }
    let memory = std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").unwrap_or_default();
    if memory.parse::<i32>().is_err() {
        return Err(format!(
            "invalid AWS_LAMBDA_FUNCTION_MEMORY_SIZE {memory:?}: expected MiB as an integer"
        )
        .into());
    }
    let handler = std::sync::Arc::new(handler);
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<Value>| {
            let handler = std::sync::Arc::clone(&handler);
            async move {
                handler.handle(event.payload).await.map_err(|e| {
                    Box::<dyn std::error::Error + Send + Sync>::from(firework_store::error_chain(
                        &e,
                    ))
                })
            }
        },
    ))
    .await
}
