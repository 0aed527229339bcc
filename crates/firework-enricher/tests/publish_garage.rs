//! Publishing to a real S3 server (Garage on loopback): changed-only writes, stale deletes,
//! foreign objects left alone and compare-and-set on the manifest.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;

use firework_enricher::publish::manifest::{MANIFEST_KEY, Manifest};
use firework_enricher::publish::{ObjectOptions, PublishError, PublishOptions, Target, publish};
use support::start_garage;

fn files(entries: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
    entries
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect()
}

fn commit(id: &str, time: i64) -> PublishOptions {
    PublishOptions {
        source_commit: Some(id.to_string()),
        commit_time: Some(time),
        ..PublishOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garage_publish_protocol() {
    let Some(garage) = start_garage() else {
        return;
    };
    let options = ObjectOptions {
        endpoint: Some(garage.endpoint.clone()),
        region: Some("garage".to_string()),
        credentials: Some((garage.key_id.clone(), garage.secret.clone())),
    };
    let target = Target::parse("s3://firework/env/prod", &options).unwrap();

    let first = files(&[
        ("nodes/a.yaml", "a\n"),
        ("nodes/b.yaml", "b\n"),
        ("index.json", "{}\n"),
    ]);
    let report = publish(&target, &first, &commit("c1", 100)).await.unwrap();
    assert_eq!(report.written.len(), 3);
    target
        .put("nodes/foreign.yaml", b"not ours\n")
        .await
        .unwrap();

    let report = publish(&target, &first, &commit("c2", 200)).await.unwrap();
    assert!(report.written.is_empty(), "{report:?}");
    assert_eq!(report.unchanged.len(), 3);

    let second = files(&[("nodes/a.yaml", "a2\n"), ("index.json", "{}\n")]);
    let report = publish(&target, &second, &commit("c3", 300)).await.unwrap();
    assert_eq!(report.written, vec!["nodes/a.yaml"]);
    assert_eq!(report.deleted, vec!["nodes/b.yaml"]);
    assert!(target.get("nodes/b.yaml").await.unwrap().is_none());
    assert_eq!(
        target.get("nodes/foreign.yaml").await.unwrap().unwrap().0,
        b"not ours\n"
    );
    let (bytes, version) = target.get(MANIFEST_KEY).await.unwrap().unwrap();
    let manifest = Manifest::from_json(&bytes).unwrap();
    assert_eq!(manifest.source_commit.as_deref(), Some("c3"));

    let error = publish(&target, &first, &commit("c0", 50))
        .await
        .unwrap_err();
    assert!(matches!(error, PublishError::OlderCommit { .. }), "{error}");

    // Garage 2.5.0 does not evaluate If-Match or If-None-Match on PutObject: both
    // conditional writes below succeed although the version is stale. Compare-and-set
    // therefore only protects publications on stores that honour the conditions (AWS S3,
    // GCS, the in-memory store of the unit tests). When this starts failing, Garage has
    // gained conditional writes and the assertions should expect a conflict.
    publish(
        &target,
        &files(&[("nodes/a.yaml", "a3\n")]),
        &commit("c4", 400),
    )
    .await
    .unwrap();
    let stale = target.put_if(MANIFEST_KEY, &bytes, Some(&version)).await;
    assert!(
        stale.is_ok(),
        "garage now rejects a stale If-Match: {stale:?}"
    );
    let create = target.put_if(MANIFEST_KEY, &bytes, None).await;
    assert!(
        create.is_ok(),
        "garage now rejects If-None-Match: {create:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garage_registry_and_output_in_one_run() {
    let Some(garage) = start_garage() else {
        return;
    };
    let object = ObjectOptions {
        endpoint: Some(garage.endpoint.clone()),
        region: Some("garage".to_string()),
        credentials: Some((garage.key_id.clone(), garage.secret.clone())),
    };
    let registry = Target::parse("s3://firework/cluster", &object).unwrap();
    let record = serde_json::json!({
        "node": "node-a",
        "labels": ["edge", "storage"],
        "host_ip": "10.1.0.5",
        "capacity": {"vcpus": 16, "memory_mb": 16384},
        "agent_version": "0.1.0",
        "heartbeat": jiff::Timestamp::now().to_string(),
    });
    registry
        .put("registry/nodes/node-a.json", record.to_string().as_bytes())
        .await
        .unwrap();
    let config = firework_enricher::run::RunConfig {
        input: std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/example")
            .display()
            .to_string(),
        output: "s3://firework/cluster".to_string(),
        object: object.clone(),
        registry: Some("s3://firework/cluster".to_string()),
        ..Default::default()
    };
    let outcome = firework_enricher::run::run(&config).await.unwrap();
    assert_eq!(
        outcome.report.written,
        vec!["index.json", "nodes/node-a.yaml"]
    );
    let (bytes, _) = registry.get("nodes/node-a.yaml").await.unwrap().unwrap();
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.contains("host_ip: \"10.1.0.5\"\n"), "{text}");
    // The second run keeps the placement read back from index.json and writes nothing.
    let outcome = firework_enricher::run::run(&config).await.unwrap();
    assert!(outcome.report.written.is_empty(), "{:?}", outcome.report);
}
