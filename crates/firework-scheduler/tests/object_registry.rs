//! `firework-scheduler plan --registry s3://...` through the real binary against Garage on
//! loopback, compared with the same records in a directory.

#![allow(
    clippy::unwrap_used,
    reason = "helpers of tests: a panic is a test failure"
)]

mod support;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use support::{
    FakeGcs, Garage, NOW, SERVICES_YAML, write_bucket_registry, write_dir_registry, write_existing,
};

fn plan(registry: &str, root: &Path, extra: &[&str], garage: Option<&Garage>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_firework-scheduler"));
    command
        .args([
            "plan",
            "--registry",
            registry,
            "--now",
            NOW,
            "--format",
            "json",
        ])
        .arg("--input")
        .arg(root.join("services.yaml"))
        .arg("--existing")
        .arg(root.join("existing"))
        .args(extra)
        .env_remove("RUST_LOG")
        .env_remove("FIREWORK_S3_ENDPOINT_URL")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_REGION")
        .env_remove("AWS_PROFILE");
    if let Some(garage) = garage {
        command
            .args([
                "--s3-endpoint-url",
                &garage.endpoint,
                "--s3-region",
                &garage.region,
            ])
            .env("AWS_ACCESS_KEY_ID", &garage.key_id)
            .env("AWS_SECRET_ACCESS_KEY", &garage.secret);
    }
    command.output().unwrap()
}

fn inputs() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("services.yaml"), SERVICES_YAML).unwrap();
    write_existing(&root.path().join("existing"));
    root
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}); stderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

#[tokio::test]
async fn s3_registry_plans_like_directory() {
    let Some(garage) = Garage::start() else {
        return;
    };
    let root = inputs();
    write_dir_registry(&root.path().join("dir")).await;
    write_bucket_registry(&garage, "fleet").await;

    let from_dir = plan(
        root.path().join("dir").to_str().unwrap(),
        root.path(),
        &[],
        None,
    );
    let from_s3 = plan("s3://firework/fleet/", root.path(), &[], Some(&garage));
    assert_eq!(
        from_s3.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&from_s3.stderr)
    );
    assert_eq!(from_dir.status.code(), Some(0));
    let (dir, s3) = (json(&from_dir), json(&from_s3));

    assert_eq!(s3["placement"], dir["placement"]);
    assert_eq!(s3["live_nodes"], dir["live_nodes"]);
    assert_eq!(s3["not_live"], dir["not_live"]);
    assert_eq!(s3["live_nodes"], serde_json::json!(["n1", "n2"]));
    assert_eq!(s3["not_live"][0]["node"], "old");
    // The plan is not trivial: api stays on n2 and db leaves the stale node.
    let placement = &s3["placement"];
    let moves = placement["moves"].as_array().unwrap();
    assert_eq!(moves.len(), 1);
    assert_eq!(moves[0]["service"], "db");
    assert_eq!(moves[0]["from"], "old");
    assert_eq!(moves[0]["reason"]["code"], "node_not_live");
    let kept: Vec<_> = placement["assignments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kept"] == true)
        .map(|a| (a["service"].as_str().unwrap(), a["node"].as_str().unwrap()))
        .collect();
    assert_eq!(kept, vec![("api", "n2")]);

    // The broken record is reported by both, named by its object key or path.
    let rejected = s3["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(
        rejected[0]["source"],
        "s3://firework/fleet/registry/nodes/bad.json"
    );
    assert_eq!(
        rejected[0]["reason"],
        "s3 store: registry record of node `bad`: invalid content at fleet/registry/nodes/bad.json: key must be a string at line 1 column 2"
    );
    let dir_rejected = dir["rejected"].as_array().unwrap();
    assert_eq!(dir_rejected.len(), 1);
    assert!(
        dir_rejected[0]["source"]
            .as_str()
            .unwrap()
            .ends_with("/dir/registry/nodes/bad.json")
    );
}

#[tokio::test]
async fn s3_missing_bucket_is_usage_error() {
    let Some(garage) = Garage::start() else {
        return;
    };
    let root = inputs();
    let output = plan("s3://nosuch/fleet", root.path(), &[], Some(&garage));
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("error: failed to list registry s3://nosuch/fleet: "),
        "{stderr}"
    );
}

#[tokio::test]
async fn s3_wrong_secret_is_usage_error() {
    let Some(mut garage) = Garage::start() else {
        return;
    };
    let root = inputs();
    write_bucket_registry(&garage, "fleet").await;
    garage.secret = "0".repeat(64);
    let output = plan("s3://firework/fleet", root.path(), &[], Some(&garage));
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("error: failed to list registry s3://firework/fleet: "),
        "{stderr}"
    );
    assert!(!stderr.contains(&garage.secret), "{stderr}");
}

#[tokio::test]
async fn s3_empty_prefix_places_nothing() {
    let Some(garage) = Garage::start() else {
        return;
    };
    let root = inputs();
    write_bucket_registry(&garage, "fleet").await;
    let output = plan("s3://firework/other", root.path(), &[], Some(&garage));
    assert_eq!(output.status.code(), Some(1));
    let report = json(&output);
    assert_eq!(report["placement"], Value::Null);
    assert_eq!(report["live_nodes"], serde_json::json!([]));
    assert_eq!(
        report["error"],
        "no live nodes: refusing to schedule 3 service(s), keep the previous placement until a node reports again"
    );
}

#[test]
fn http_endpoint_off_loopback_is_refused() {
    let root = inputs();
    let output = plan(
        "s3://firework/fleet",
        root.path(),
        &["--s3-endpoint-url", "http://192.0.2.1:3900"],
        None,
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "error: invalid registry location `s3://firework/fleet`: plain http:// endpoint `http://192.0.2.1:3900` is allowed only on a loopback host; use https://\n"
    );
}

#[test]
fn unknown_scheme_is_refused() {
    let root = inputs();
    let output = plan("ftp://host/fleet", root.path(), &[], None);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "error: invalid registry location `ftp://host/fleet`: unsupported scheme `ftp`; use s3://, gs:// or a directory\n"
    );
}

#[tokio::test]
async fn gcs_registry_plans_like_directory() {
    let Some(gcs) = FakeGcs::start() else {
        return;
    };
    let root = inputs();
    write_dir_registry(&root.path().join("dir")).await;
    gcs.write_registry("fleet");
    let credentials = gcs.credentials_file();

    let from_dir = plan(
        root.path().join("dir").to_str().unwrap(),
        root.path(),
        &[],
        None,
    );
    let from_gcs = plan(
        "gs://firework/fleet",
        root.path(),
        &["--gcs-credentials-file", credentials.to_str().unwrap()],
        None,
    );
    assert_eq!(
        from_gcs.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&from_gcs.stderr)
    );
    let (dir, gcs_report) = (json(&from_dir), json(&from_gcs));
    assert_eq!(gcs_report["placement"], dir["placement"]);
    assert_eq!(gcs_report["live_nodes"], dir["live_nodes"]);
    assert_eq!(gcs_report["not_live"], dir["not_live"]);
    let rejected = gcs_report["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(
        rejected[0]["source"],
        "gs://firework/fleet/registry/nodes/bad.json"
    );
}
