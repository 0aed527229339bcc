//! The Lambda handler on recorded event shapes, compared with the command line on the same
//! records, services and previous placement.

#![allow(
    clippy::unwrap_used,
    reason = "helpers of tests: a panic is a test failure"
)]

mod support;

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use firework_scheduler::lambda::{Handler, LambdaError};
use firework_scheduler::source::ObjectOptions;
use firework_store::Secret;
use serde_json::{Value, json};
use support::{
    Garage, NOW, SERVICES_YAML, write_bucket_registry, write_dir_registry, write_existing,
};

const DIRECT: &str = include_str!("events/direct.json");
const API_GATEWAY: &str = include_str!("events/apigw-v2.json");
const SCHEDULED: &str = include_str!("events/eventbridge-scheduled.json");

fn direct_event(registry: &str) -> Value {
    serde_json::from_str(&DIRECT.replace("{{REGISTRY}}", registry)).unwrap()
}

fn api_gateway_event(body: &str, base64: bool) -> Value {
    let mut event: Value = serde_json::from_str(API_GATEWAY).unwrap();
    event["body"] = if base64 {
        Value::from(base64::engine::general_purpose::STANDARD.encode(body))
    } else {
        Value::from(body)
    };
    event["isBase64Encoded"] = Value::from(base64);
    event
}

/// Runs `firework-scheduler plan --format json` on a directory registry with the same
/// services and previous placement as `events/direct.json` and returns its report.
fn cli_report(registry: &Path) -> Value {
    let inputs = tempfile::tempdir().unwrap();
    std::fs::write(inputs.path().join("services.yaml"), SERVICES_YAML).unwrap();
    write_existing(&inputs.path().join("existing"));
    let output = Command::new(env!("CARGO_BIN_EXE_firework-scheduler"))
        .args(["plan", "--now", NOW, "--format", "json", "--registry"])
        .arg(registry)
        .arg("--input")
        .arg(inputs.path().join("services.yaml"))
        .arg("--existing")
        .arg(inputs.path().join("existing"))
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test]
async fn direct_invocation_matches_command_line() {
    let root = tempfile::tempdir().unwrap();
    write_dir_registry(root.path()).await;
    let report = Handler::default()
        .handle(direct_event(root.path().to_str().unwrap()))
        .await
        .unwrap();
    assert_eq!(report, cli_report(root.path()));
    assert_eq!(report["live_nodes"], json!(["n1", "n2"]));
    assert_eq!(report["placement"]["moves"][0]["service"], "db");
    assert_eq!(report["placement"]["unplaced"], json!([]));
    assert_eq!(report["rejected"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn api_gateway_request_plain_and_base64() {
    let root = tempfile::tempdir().unwrap();
    write_dir_registry(root.path()).await;
    let expected = cli_report(root.path());
    let body = direct_event(root.path().to_str().unwrap()).to_string();
    for base64 in [false, true] {
        let response = Handler::default()
            .handle(api_gateway_event(&body, base64))
            .await
            .unwrap();
        assert_eq!(response["statusCode"], 200, "base64 {base64}: {response}");
        assert_eq!(response["headers"]["content-type"], "application/json");
        let report: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
        assert_eq!(report, expected, "base64 {base64}");
    }
}

#[tokio::test]
async fn api_gateway_bad_requests_get_400() {
    let root = tempfile::tempdir().unwrap();
    write_dir_registry(root.path()).await;
    let registry = root.path().to_str().unwrap();

    let mut event = api_gateway_event("", true);
    event["body"] = Value::from("not base64!");
    let response = Handler::default().handle(event).await.unwrap();
    assert_eq!(response["statusCode"], 400);
    assert_eq!(
        response["body"],
        r#"{"error":"invalid plan request: body is not valid base64"}"#
    );

    let mut request = direct_event(registry);
    request["region"] = Value::from("eu-west-1");
    let response = Handler::default()
        .handle(api_gateway_event(&request.to_string(), false))
        .await
        .unwrap();
    assert_eq!(response["statusCode"], 400);
    let body: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    let error = body["error"].as_str().unwrap();
    assert!(
        error.starts_with("invalid plan request: unknown field `region`, expected one of "),
        "{error}"
    );
}

#[tokio::test]
async fn scheduled_and_unknown_events_are_refused() {
    let handler = Handler::default();
    let error = handler
        .handle(serde_json::from_str(SCHEDULED).unwrap())
        .await
        .unwrap_err();
    assert!(matches!(error, LambdaError::Unsupported), "{error:?}");
    assert_eq!(
        error.to_string(),
        "unsupported event: expected a plan request or an API Gateway v2 request"
    );
    let error = handler.handle(json!({"services": []})).await.unwrap_err();
    assert!(matches!(error, LambdaError::Unsupported), "{error:?}");
}

#[tokio::test]
async fn invalid_services_are_refused_with_findings() {
    let root = tempfile::tempdir().unwrap();
    write_dir_registry(root.path()).await;
    let mut event = direct_event(root.path().to_str().unwrap());
    event["services"][0]["vcpus"] = Value::from(0);
    let error = Handler::default().handle(event).await.unwrap_err();
    assert_eq!(error.status(), 400);
    assert_eq!(
        firework_store::error_chain(&error),
        "plan failed: request services is invalid: line 1: services[0].vcpus: invalid vcpus 0: allowed 1 to 32 (Firecracker's limit)"
    );
}

/// Returns the node each service of a report's placement is assigned to.
fn assigned_nodes(report: &Value) -> Vec<(String, String)> {
    report["placement"]["assignments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let service = a["service"].as_str().unwrap().to_owned();
            let node = a["node"].as_str().unwrap().to_owned();
            (service, node)
        })
        .collect()
}

#[tokio::test]
async fn services_sharing_a_host_port_are_placed_apart() {
    let root = tempfile::tempdir().unwrap();
    write_dir_registry(root.path()).await;
    let registry = root.path().to_str().unwrap();

    // Without port forwards, best fit puts "db" next to "web" on n1.
    let report = Handler::default()
        .handle(direct_event(registry))
        .await
        .unwrap();
    assert_eq!(
        assigned_nodes(&report),
        [
            ("api".to_owned(), "n2".to_owned()),
            ("db".to_owned(), "n1".to_owned()),
            ("web".to_owned(), "n1".to_owned()),
        ]
    );

    let mut event = direct_event(registry);
    let forward = json!([{"host_port": 8080, "vm_port": 80}]);
    event["services"][0]["port_forwards"] = forward.clone();
    event["services"][2]["port_forwards"] = forward;
    let report = Handler::default().handle(event).await.unwrap();
    assert_eq!(
        assigned_nodes(&report),
        [
            ("api".to_owned(), "n2".to_owned()),
            ("db".to_owned(), "n2".to_owned()),
            ("web".to_owned(), "n1".to_owned()),
        ]
    );
    assert_eq!(report["placement"]["unplaced"], json!([]));
}

#[tokio::test]
async fn service_repeating_host_port_rejected() {
    let root = tempfile::tempdir().unwrap();
    write_dir_registry(root.path()).await;
    let mut event = direct_event(root.path().to_str().unwrap());
    let forward = json!({"host_port": 8080, "vm_port": 80});
    event["services"][0]["port_forwards"] = json!([forward.clone()]);
    event["services"][2]["port_forwards"] = json!([forward.clone(), forward]);
    let error = Handler::default().handle(event).await.unwrap_err();
    assert_eq!(error.status(), 400);
    assert_eq!(
        firework_store::error_chain(&error),
        "plan failed: request services is invalid: line 1: services[2].port_forwards[1].host_port: host port 8080 (tcp) is already forwarded by service \"db\""
    );
}

#[tokio::test]
async fn bad_existing_entry_and_time_are_refused() {
    let root = tempfile::tempdir().unwrap();
    write_dir_registry(root.path()).await;
    let registry = root.path().to_str().unwrap();

    let mut event = direct_event(registry);
    event["existing"]["old"] = json!([7]);
    let error = Handler::default().handle(event).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid plan request: existing.old: expected a service name or an object with a name, got 7"
    );

    let mut event = direct_event(registry);
    event["now"] = Value::from("yesterday");
    let error = Handler::default().handle(event).await.unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("invalid plan request: invalid now \"yesterday\": "),
        "{error}"
    );
}

#[tokio::test]
async fn missing_registry_directory_fails_the_invocation() {
    let root = tempfile::tempdir().unwrap();
    let missing = root.path().join("none");
    let error = Handler::default()
        .handle(direct_event(missing.to_str().unwrap()))
        .await
        .unwrap_err();
    assert_eq!(error.status(), 502);
    assert!(
        firework_store::error_chain(&error).starts_with(&format!(
            "plan failed: failed to list registry directory {}/registry/nodes: ",
            missing.display()
        )),
        "{error}"
    );
}

#[tokio::test]
async fn s3_registry_through_handler_matches_directory() {
    let Some(garage) = Garage::start() else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    write_dir_registry(root.path()).await;
    write_bucket_registry(&garage, "fleet").await;
    let handler = Handler {
        object: ObjectOptions {
            s3_endpoint_url: Some(garage.endpoint.clone()),
            s3_region: Some(garage.region.clone()),
            s3_credentials: Some((garage.key_id.clone(), Secret::new(garage.secret.clone()))),
            gcs_credentials_file: None,
        },
    };
    let from_s3 = handler
        .handle(direct_event("s3://firework/fleet"))
        .await
        .unwrap();
    let from_dir = cli_report(root.path());
    assert_eq!(from_s3["placement"], from_dir["placement"]);
    assert_eq!(from_s3["live_nodes"], from_dir["live_nodes"]);
    assert_eq!(from_s3["not_live"], from_dir["not_live"]);
    assert_eq!(
        from_s3["rejected"][0]["source"],
        "s3://firework/fleet/registry/nodes/bad.json"
    );

    // A missing bucket is a 502 for an HTTP caller: the function is fine, the store is not.
    let body = direct_event("s3://nosuch/fleet").to_string();
    let response = handler
        .handle(api_gateway_event(&body, false))
        .await
        .unwrap();
    assert_eq!(response["statusCode"], 502);
    let body: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    let error = body["error"].as_str().unwrap();
    assert!(
        error.starts_with("plan failed: failed to list registry s3://nosuch/fleet: "),
        "{error}"
    );
    assert!(!error.contains(&garage.secret));
}

#[cfg(feature = "lambda")]
#[test]
fn lambda_command_outside_lambda_fails() {
    let mut command = Command::new(env!("CARGO_BIN_EXE_firework-scheduler"));
    command.arg("lambda").env_remove("RUST_LOG");
    for name in firework_scheduler::lambda::RUNTIME_VARIABLES {
        command.env_remove(name);
    }
    let output = command.output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "error: not running inside AWS Lambda: AWS_LAMBDA_RUNTIME_API, AWS_LAMBDA_FUNCTION_NAME, \
         AWS_LAMBDA_FUNCTION_MEMORY_SIZE, AWS_LAMBDA_FUNCTION_VERSION not set; use the plan \
         command outside Lambda\n"
    );

    let mut command = Command::new(env!("CARGO_BIN_EXE_firework-scheduler"));
    command
        .arg("lambda")
        .env_remove("RUST_LOG")
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
        .env("AWS_LAMBDA_FUNCTION_NAME", "firework-scheduler")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "lots")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST");
    let output = command.output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "error: invalid AWS_LAMBDA_FUNCTION_MEMORY_SIZE \"lots\": expected MiB as an integer\n"
    );
}

#[cfg(not(feature = "lambda"))]
#[test]
fn lambda_command_needs_feature() {
    let output = Command::new(env!("CARGO_BIN_EXE_firework-scheduler"))
        .arg("lambda")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("unrecognized subcommand 'lambda'"),
        "{stderr}"
    );
}
