//! The webhook server through a real HTTP client, rendering from a real Git repository
//! served by `git daemon` on loopback, and the Lambda handler with recorded event shapes.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use firework_enricher::lambda::{Handler, LambdaError};
use firework_enricher::publish::manifest::{MANIFEST_KEY, Manifest};
use firework_enricher::serve::webhook::{Secret, WebhookCore, sign};
use firework_enricher::serve::{self, ServeConfig};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use support::{Daemon, Repo, copy_tree, example_tree};

const SECRET: &str = "webhook-test-secret";

struct Fixture {
    _base: tempfile::TempDir,
    repo: Repo,
    daemon: Daemon,
    output: tempfile::TempDir,
    secret_file: tempfile::NamedTempFile,
}

fn fixture() -> Fixture {
    let base = tempfile::tempdir().unwrap();
    let repo = Repo::init(base.path());
    copy_tree(&example_tree(), &repo.work.join("config"));
    repo.commit("first", 1_700_000_000);
    let daemon = Daemon::start(base.path());
    let secret_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret_file.path(), format!("{SECRET}\n")).unwrap();
    Fixture {
        _base: base,
        repo,
        daemon,
        output: tempfile::tempdir().unwrap(),
        secret_file,
    }
}

fn config(fixture: &Fixture, max_body_bytes: usize) -> ServeConfig {
    let text = format!(
        "listen: 127.0.0.1:0\nrepository: {}\nbranch: main\nconfig_dir: config\n\
         output: {}\nsecret_file: {}\nmax_body_bytes: {max_body_bytes}\n",
        fixture.daemon.url("repo"),
        fixture.output.path().display(),
        fixture.secret_file.path().display()
    );
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), text).unwrap();
    ServeConfig::load(file.path()).unwrap()
}

async fn request(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> (u16, String) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut builder = hyper::Request::builder()
        .method(method)
        .uri(format!("http://{address}{path}"));
    for (name, value) in headers {
        builder = builder.header(*name, value);
    }
    let response = client
        .request(builder.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

fn push(branch_ref: &str, after: &str, deleted: bool) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "ref": branch_ref,
        "after": after,
        "deleted": deleted,
        "repository": {"clone_url": "https://attacker.invalid/evil.git"}
    }))
    .unwrap()
}

fn signed(event: &str, delivery: &str, body: &[u8]) -> Vec<(&'static str, String)> {
    let secret = Secret::new(SECRET).unwrap();
    vec![
        ("x-hub-signature-256", sign(&secret, body)),
        ("x-github-event", event.to_string()),
        ("x-github-delivery", delivery.to_string()),
        ("content-type", "application/json".to_string()),
    ]
}

async fn wait_runs(receiver: &mut tokio::sync::watch::Receiver<u64>, count: u64) {
    tokio::time::timeout(Duration::from_secs(60), receiver.wait_for(|n| *n >= count))
        .await
        .expect("run finished in time")
        .unwrap();
}

fn manifest(dir: &std::path::Path) -> Manifest {
    Manifest::from_json(&std::fs::read(dir.join(MANIFEST_KEY)).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_server_signatures_events_and_pushes() {
    let fixture = fixture();
    let config = config(&fixture, 4096);
    let state = serve::state(&config).unwrap();
    let mut finished = state.runner.finished();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let server = tokio::spawn(serve::serve_on(listener, state, None));
    let head = fixture.repo.git(&["rev-parse", "HEAD"]);

    let body = push("refs/heads/main", &head, false);
    // No signature.
    let (status, text) = request(&address, "POST", "/webhook", &[], body.clone()).await;
    assert_eq!(
        (status, text.as_str()),
        (401, r#"{"error":"missing X-Hub-Signature-256 header"}"#)
    );
    // A wrong signature.
    let mut headers = signed("push", "d-0", &body);
    headers[0].1 = format!("sha256={}", "0".repeat(64));
    let (status, text) = request(&address, "POST", "/webhook", &headers, body.clone()).await;
    assert_eq!(
        (status, text.as_str()),
        (401, r#"{"error":"invalid X-Hub-Signature-256 header"}"#)
    );
    // Signed for another body.
    let headers = signed("push", "d-0", b"other");
    let (status, _) = request(&address, "POST", "/webhook", &headers, body.clone()).await;
    assert_eq!(status, 401);

    // Events that do not render.
    let ping = br#"{"zen":"hi","hook_id":1}"#.to_vec();
    let (status, text) = request(
        &address,
        "POST",
        "/webhook",
        &signed("ping", "d-1", &ping),
        ping.clone(),
    )
    .await;
    assert_eq!(
        (status, text.as_str()),
        (200, r#"{"ignored":true,"reason":"ping"}"#)
    );
    let (status, text) = request(
        &address,
        "POST",
        "/webhook",
        &signed("issues", "d-2", &ping),
        ping,
    )
    .await;
    assert_eq!(
        (status, text.as_str()),
        (202, r#"{"ignored":true,"reason":"unsupported event type"}"#)
    );
    let tag = push("refs/tags/v1", &head, false);
    let (status, text) = request(
        &address,
        "POST",
        "/webhook",
        &signed("push", "d-3", &tag),
        tag,
    )
    .await;
    assert_eq!(
        (status, text.as_str()),
        (
            200,
            r#"{"ignored":true,"reason":"not a branch","ref":"refs/tags/v1"}"#
        )
    );
    let other = push("refs/heads/dev", &head, false);
    let (status, text) = request(
        &address,
        "POST",
        "/webhook",
        &signed("push", "d-4", &other),
        other,
    )
    .await;
    assert_eq!(
        (status, text.as_str()),
        (
            200,
            r#"{"branch":"dev","ignored":true,"reason":"non-target branch","target":"main"}"#
        )
    );
    let deleted = push("refs/heads/main", &"0".repeat(40), true);
    let (status, text) = request(
        &address,
        "POST",
        "/webhook",
        &signed("push", "d-5", &deleted),
        deleted,
    )
    .await;
    assert_eq!(
        (status, text.as_str()),
        (
            200,
            r#"{"branch":"main","ignored":true,"reason":"branch deleted"}"#
        )
    );
    // Too large.
    let big = vec![b' '; 5000];
    let (status, text) = request(
        &address,
        "POST",
        "/webhook",
        &signed("push", "d-6", &big),
        big,
    )
    .await;
    assert_eq!(
        (status, text.as_str()),
        (413, r#"{"error":"request body larger than 4096 bytes"}"#)
    );
    assert!(
        !fixture.output.path().join(MANIFEST_KEY).exists(),
        "nothing rendered yet"
    );

    // A push to main renders the configured repository, not the payload's.
    let (status, text) = request(
        &address,
        "POST",
        "/webhook",
        &signed("push", "d-7", &body),
        body.clone(),
    )
    .await;
    assert_eq!(
        (status, text),
        (202, format!(r#"{{"after":"{head}","queued":true}}"#))
    );
    wait_runs(&mut finished, 1).await;
    assert_eq!(
        manifest(fixture.output.path()).source_commit.as_deref(),
        Some(head.as_str())
    );
    let edge = std::fs::read_to_string(fixture.output.path().join("nodes/edge.yaml")).unwrap();
    assert!(edge.contains(&format!("source_commit: {head}\n")), "{edge}");

    // A redelivery does not render again.
    let (status, text) = request(
        &address,
        "POST",
        "/webhook",
        &signed("push", "d-7", &body),
        body,
    )
    .await;
    assert_eq!(
        (status, text.as_str()),
        (200, r#"{"deduped":true,"delivery_id":"d-7"}"#)
    );

    // A second commit.
    std::fs::remove_file(fixture.repo.work.join("config/services/db.yaml")).unwrap();
    let second = fixture.repo.commit("drop db", 1_700_000_100);
    let body = push("refs/heads/main", &second, false);
    let (status, _) = request(
        &address,
        "POST",
        "/webhook",
        &signed("push", "d-8", &body),
        body,
    )
    .await;
    assert_eq!(status, 202);
    wait_runs(&mut finished, 2).await;
    assert_eq!(
        manifest(fixture.output.path()).source_commit.as_deref(),
        Some(second.as_str())
    );
    let storage =
        std::fs::read_to_string(fixture.output.path().join("nodes/storage.yaml")).unwrap();
    assert!(!storage.contains("name: db\n"), "{storage}");

    let (status, text) = request(&address, "GET", "/healthz", &[], Vec::new()).await;
    assert_eq!((status, text.as_str()), (200, "ok\n"));
    let (status, text) = request(&address, "GET", "/metrics", &[], Vec::new()).await;
    assert_eq!(status, 200);
    assert!(
        text.contains("firework_enricher_runs_total{result=\"ok\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("firework_enricher_webhook_deliveries_total{status=\"401\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("firework_enricher_webhook_deliveries_total{status=\"413\"} 1"),
        "{text}"
    );
    assert!(!text.contains(SECRET));
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_triggers_coalesce_into_one_run() {
    let fixture = fixture();
    let config = config(&fixture, 4096);
    let state = serve::state(&config).unwrap();
    let mut finished = state.runner.finished();
    for after in ["a", "b", "c"] {
        state.runner.submit(serve::Trigger::Push {
            after: after.to_string(),
        });
    }
    let worker = tokio::spawn(state.runner.clone().work());
    wait_runs(&mut finished, 1).await;
    assert!(!state.runner.has_pending());
    assert!(
        state
            .metrics
            .encode()
            .contains("firework_enricher_runs_total{result=\"ok\"} 1")
    );
    worker.abort();
}

fn apigw(body: &[u8], headers: Value, base64: bool) -> Value {
    let body = if base64 {
        base64::engine::general_purpose::STANDARD.encode(body)
    } else {
        String::from_utf8(body.to_vec()).unwrap()
    };
    json!({
        "version": "2.0",
        "routeKey": "POST /webhook",
        "rawPath": "/webhook",
        "headers": headers,
        "requestContext": {"http": {"method": "POST", "path": "/webhook"}},
        "body": body,
        "isBase64Encoded": base64,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_handler_shares_the_webhook_path() {
    let fixture = fixture();
    let config = config(&fixture, 4096);
    let handler = Handler {
        core: WebhookCore::new(config.secret().unwrap(), "main"),
        config: config.run_config(),
        max_body_bytes: 4096,
    };
    let head = fixture.repo.git(&["rev-parse", "HEAD"]);
    let body = push("refs/heads/main", &head, false);
    let secret = Secret::new(SECRET).unwrap();

    let unsigned = handler
        .handle(apigw(&body, json!({"X-GitHub-Event": "push"}), false))
        .await
        .unwrap();
    assert_eq!(unsigned["statusCode"], 401);
    assert_eq!(
        unsigned["body"],
        r#"{"error":"missing X-Hub-Signature-256 header"}"#
    );

    let signature = sign(&secret, &body);
    let headers = json!({"X-Hub-Signature-256": signature, "X-GitHub-Event": "push", "X-GitHub-Delivery": "l-1"});
    let response = handler.handle(apigw(&body, headers, true)).await.unwrap();
    assert_eq!(response["statusCode"], 200, "{response}");
    let reply: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    assert_eq!(reply["published"], head);
    assert_eq!(
        manifest(fixture.output.path()).source_commit.as_deref(),
        Some(head.as_str())
    );

    let big = vec![b' '; 5000];
    let response = handler.handle(apigw(&big, json!({}), false)).await.unwrap();
    assert_eq!(response["statusCode"], 413);

    // A bare push payload (direct invocation) would skip the signature check.
    let error = handler
        .handle(serde_json::from_slice(&body).unwrap())
        .await
        .unwrap_err();
    assert!(matches!(error, LambdaError::Unsupported));

    let scheduled = json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
    let reply = handler.handle(scheduled).await.unwrap();
    assert_eq!(reply["published"], head);
    assert_eq!(reply["written"], 0, "nothing changed since the push");
}

#[tokio::test(start_paused = true)]
async fn timer_queues_scheduled_runs() {
    let input = tempfile::tempdir().unwrap();
    copy_tree(&example_tree(), input.path());
    let output = tempfile::tempdir().unwrap();
    let config = firework_enricher::run::RunConfig {
        input: input.path().display().to_string(),
        output: output.path().display().to_string(),
        ..Default::default()
    };
    let metrics = std::sync::Arc::new(firework_enricher::serve::metrics::Metrics::default());
    let runner = serve::Runner::new(config, metrics.clone());
    let mut finished = runner.finished();
    let worker = tokio::spawn(runner.clone().work());
    let timer = serve::spawn_timer(runner, Duration::from_secs(300));
    // Paused time advances whenever every task waits, so each period elapses at once. Three
    // runs take two periods; the limit is virtual time too.
    tokio::time::timeout(Duration::from_secs(3600), finished.wait_for(|n| *n >= 3))
        .await
        .expect("three scheduled runs within an hour")
        .unwrap();
    assert!(output.path().join("nodes/edge.yaml").is_file());
    assert!(
        metrics
            .encode()
            .contains("firework_enricher_runs_total{result=\"ok\"} 3")
    );
    timer.abort();
    worker.abort();
}

#[test]
fn serve_config_requires_a_secret() {
    let fixture = fixture();
    std::fs::write(fixture.secret_file.path(), "\n").unwrap();
    let error = serve::state(&config(&fixture, 4096)).unwrap_err();
    assert_eq!(
        error.to_string(),
        "no webhook secret: set secret_file or secret_env to a non-empty secret"
    );
    let mut env_config = config(&fixture, 4096);
    env_config.secret_file = None;
    env_config.secret_env = Some("FIREWORK_ENRICHER_TEST_UNSET_SECRET".to_string());
    assert!(matches!(
        serve::state(&env_config),
        Err(serve::ServeConfigError::NoSecret)
    ));
    // The secret never shows in debug output.
    std::fs::write(fixture.secret_file.path(), SECRET).unwrap();
    let state = serve::state(&config(&fixture, 4096)).unwrap();
    assert!(!format!("{state:?}").contains(SECRET));
}
