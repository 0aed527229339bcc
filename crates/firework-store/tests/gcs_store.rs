//! The GCS backend against fake-gcs-server, a GCS JSON API emulator.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;

use firework_store::{
    Backend, ConfigStore, DesiredStateCache, NodeRegistry, ObjectConfigStore, StoreErrorKind,
    Subject, error_chain,
};
use support::{FakeGcs, node_yaml, sample_record};

fn labels(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

#[tokio::test]
async fn gcs_fetch_list_and_revisions() {
    let Some(gcs) = FakeGcs::start() else { return };
    let raw = gcs.settings("firework", "fleet").build().unwrap();
    let store = ObjectConfigStore::from_store(Backend::Gcs, Arc::clone(&raw), "fleet");
    gcs.upload("firework", "fleet/nodes/a.yaml", &node_yaml("a", "web"));
    gcs.upload("firework", "fleet/nodes/b.yaml", &node_yaml("b", "api"));
    let wanted = labels(&["a", "b"]);

    let first = store.fetch(&wanted).await;
    let a = first[0].as_ref().unwrap();
    assert_eq!(a.config.services[0].name, "web");
    assert!(!a.revision.as_str().is_empty());
    assert_eq!(first[1].as_ref().unwrap().config.services[0].name, "api");

    // fake-gcs-server ignores If-None-Match and sends the body again, so only the revision
    // is checked here. The S3 tests against Garage prove that no body is transferred.
    let again = store.fetch(&wanted).await;
    assert_eq!(again[0].as_ref().unwrap(), a);

    let listing = store.list_all().await.unwrap();
    assert_eq!(listing.len(), 2);
    assert!(listing.iter().all(Result::is_ok));

    gcs.upload("firework", "fleet/nodes/a.yaml", &node_yaml("a", "db"));
    let changed = store.fetch(&wanted).await.remove(0).unwrap();
    assert_ne!(changed.revision, a.revision);
    assert_eq!(changed.config.services[0].name, "db");
}

#[tokio::test]
async fn gcs_missing_object_and_bucket() {
    let Some(gcs) = FakeGcs::start() else { return };
    let store = ObjectConfigStore::new(&gcs.settings("firework", "")).unwrap();
    let error = store.fetch(&labels(&["a"])).await.remove(0).unwrap_err();
    assert_eq!(
        error.kind,
        StoreErrorKind::NotFound,
        "{}",
        error_chain(&error)
    );
    assert_eq!(error.backend, Backend::Gcs);
    assert_eq!(error.subject, Subject::Label("a".to_owned()));

    let store = ObjectConfigStore::new(&gcs.settings("no-such-bucket", "")).unwrap();
    let error = store.fetch(&labels(&["a"])).await.remove(0).unwrap_err();
    assert_eq!(
        error.kind,
        StoreErrorKind::NotFound,
        "{}",
        error_chain(&error)
    );
}

#[tokio::test]
async fn gcs_safety_keeps_last_good() {
    let Some(mut gcs) = FakeGcs::start() else {
        return;
    };
    let raw = gcs.settings("firework", "").build().unwrap();
    let store = ObjectConfigStore::from_store(Backend::Gcs, Arc::clone(&raw), "");
    gcs.upload("firework", "nodes/a.yaml", &node_yaml("a", "web"));
    let wanted = labels(&["a"]);
    let mut cache = DesiredStateCache::new(Backend::Gcs);
    let good = cache
        .apply_fetch(&wanted, store.fetch(&wanted).await)
        .unwrap()
        .clone();

    gcs.upload("firework", "nodes/a.yaml", "");
    let stale = cache
        .apply_fetch(&wanted, store.fetch(&wanted).await)
        .unwrap_err();
    assert_eq!(stale.last_good, Some(&good));
    assert_eq!(stale.errors[0].kind, StoreErrorKind::InvalidContent);

    gcs.upload("firework", "nodes/a.yaml", "services: []\n");
    let empty = cache
        .apply_fetch(&wanted, store.fetch(&wanted).await)
        .unwrap();
    assert!(empty.entries["a"].config.services.is_empty());

    gcs.stop();
    let stale = cache
        .apply_fetch(&wanted, store.fetch(&wanted).await)
        .unwrap_err();
    assert_eq!(stale.errors[0].kind, StoreErrorKind::Unreachable);
    assert!(
        stale.last_good.unwrap().entries["a"]
            .config
            .services
            .is_empty()
    );
}

#[tokio::test]
async fn gcs_registry_reads_records() {
    let Some(gcs) = FakeGcs::start() else { return };
    // The emulator rejects object_store's uploads, so the records are uploaded directly and
    // the write path is covered by the S3 test against Garage, which shares its code.
    let record = sample_record("node-a", "2026-12-04T20:00:00Z");
    let json = serde_json::to_string(&record).unwrap();
    gcs.upload("firework", "fleet/registry/nodes/node-a.json", &json);
    gcs.upload("firework", "fleet/registry/nodes/node-b.json", "{");
    let raw = gcs.settings("firework", "fleet").build().unwrap();
    let registry = NodeRegistry::object(Backend::Gcs, raw, "fleet");

    assert_eq!(registry.read("node-a").await.unwrap(), record);
    assert_eq!(registry.nodes().await.unwrap(), ["node-a", "node-b"]);
    let all = registry.list().await.unwrap();
    assert_eq!(all[0].as_ref().unwrap(), &record);
    assert_eq!(
        all[1].as_ref().unwrap_err().kind,
        StoreErrorKind::InvalidContent
    );
}
