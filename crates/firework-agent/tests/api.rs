//! The agent's HTTP API through a real HTTP client (hyper) against the running binary,
//! the Firecracker emulator and a local directory store: every route's response is
//! checked against docs/agent-api.yaml, the bearer token is enforced, and a scrape of
//! `/metrics` after real ticks lists the metric families those ticks exercised.

#![allow(clippy::unwrap_used)]

#[path = "support/openapi.rs"]
mod openapi;
mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use support::process::{Node, wait_until};

const TOKEN: &str = "test-token-5f1c";
const CONVERGE: Duration = Duration::from_secs(30);

struct Reply {
    status: u16,
    content_type: String,
    body: String,
}

async fn call(port: u16, method: &str, path: &str, token: Option<&str>) -> Reply {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(format!("http://127.0.0.1:{port}{path}"));
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = client
        .request(request.body(Empty::new()).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        content_type,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

fn check(spec: &openapi::Spec, method: &str, path: &str, reply: &Reply) {
    let problems = spec.check(method, path, reply.status, &reply.content_type, &reply.body);
    assert!(
        problems.is_empty(),
        "{method} {path} -> {} {}: {problems:?}\n{}",
        reply.status,
        reply.content_type,
        reply.body
    );
}

/// Families a tick that creates, updates and reads capacity must export. The others need
/// a health check (`vm_restarts`, `service_health_state`) or a failed VM action
/// (`vm_failures`).
const NEED_HEALTH_OR_FAILURE: &[&str] = &[
    "firework_agent_vm_restarts",
    "firework_agent_vm_failures",
    "firework_agent_service_health_state",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_match_openapi_with_token_and_metrics_after_ticks() {
    let Some(mut node) = Node::new() else { return };
    std::fs::write(node.path("token"), format!("{TOKEN}\n")).unwrap();
    node.extra_config = format!("api_token_file: {}\n", node.path("token").display());
    node.token = Some(TOKEN.to_owned());
    node.write_label("web", &[node.service("alpha", "")]);
    node.start_agent();
    let spec = openapi::Spec::load();
    let port = node.port;

    assert!(
        wait_until(CONVERGE, || node.running_pids().contains_key("alpha")),
        "alpha did not start\nlog:\n{}",
        node.log()
    );
    // An update stops and starts alpha, so the stop counter gets a series.
    let first = node.running_pids()["alpha"];
    node.write_label(
        "web",
        &[node
            .service("alpha", "")
            .replace("memory_mb: 128", "memory_mb: 192")],
    );
    node.reconcile();
    assert!(
        wait_until(CONVERGE, || node
            .running_pids()
            .get("alpha")
            .is_some_and(|pid| *pid != first)),
        "alpha was not updated\nlog:\n{}",
        node.log()
    );
    assert!(wait_until(
        CONVERGE,
        || node.status()["services"][0]["generation"] == 2
    ));

    // Without the token: /healthz answers, every other route is 401.
    let healthz = call(port, "GET", "/healthz", None).await;
    assert_eq!(healthz.status, 200, "{}", healthz.body);
    check(&spec, "get", "/healthz", &healthz);
    for (method, path) in [
        ("GET", "/health"),
        ("GET", "/status"),
        ("GET", "/metrics"),
        ("POST", "/v1/reconcile"),
    ] {
        let reply = call(port, method, path, None).await;
        assert_eq!(reply.status, 401, "{method} {path}: {}", reply.body);
        check(&spec, &method.to_lowercase(), path, &reply);
        let wrong = call(port, method, path, Some("test-token-5f1d")).await;
        assert_eq!(wrong.status, 401, "{method} {path} with a wrong token");
    }

    // With the token every route answers as documented.
    let status = call(port, "GET", "/status", Some(TOKEN)).await;
    assert_eq!(status.status, 200);
    check(&spec, "get", "/status", &status);
    let document: serde_json::Value = serde_json::from_str(&status.body).unwrap();
    assert_eq!(document["applied_revision"], document["revision"]);
    assert_eq!(document["services"][0]["name"], "alpha");
    assert_eq!(document["services"][0]["health"], "not_probed");

    let health = call(port, "GET", "/health", Some(TOKEN)).await;
    assert_eq!(health.status, 200);
    check(&spec, "get", "/health", &health);

    let reconcile = call(port, "POST", "/v1/reconcile", Some(TOKEN)).await;
    assert_eq!(reconcile.status, 202);
    check(&spec, "post", "/v1/reconcile", &reconcile);

    let metrics = call(port, "GET", "/metrics", Some(TOKEN)).await;
    assert_eq!(metrics.status, 200);
    assert_eq!(metrics.content_type, firework_metrics::CONTENT_TYPE);
    check(&spec, "get", "/metrics", &metrics);
    assert!(metrics.body.ends_with("# EOF\n"), "{}", metrics.body);
    let declared: BTreeSet<&str> = firework_metrics::declared_families(&metrics.body)
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    let expected: BTreeSet<&str> = firework_metrics::FAMILY_NAMES
        .iter()
        .copied()
        .filter(|name| !NEED_HEALTH_OR_FAILURE.contains(name))
        .collect();
    let missing: Vec<_> = expected.difference(&declared).collect();
    assert!(
        missing.is_empty(),
        "missing families {missing:?}\n{}",
        metrics.body
    );
    for sample in [
        "firework_agent_vm_starts_total{service=\"alpha\"} 2",
        "firework_agent_vm_stops_total{service=\"alpha\"} 1",
        "firework_agent_plan_actions_total{kind=\"update\"} 1",
        "firework_agent_store_fetches_total{backend=\"local\",result=\"ok\"}",
    ] {
        assert!(
            metrics.body.contains(sample),
            "no {sample:?} in\n{}",
            metrics.body
        );
    }
}
