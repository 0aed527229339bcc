//! The object store backend against a real single-node Garage S3 server.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::{Read, Write};
use std::sync::Arc;

use firework_store::{
    Backend, ConfigStore, DesiredStateCache, NodeRegistry, ObjectConfigStore, PlacementIndex,
    Secret, StoreErrorKind, Subject, error_chain,
};
use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use support::{CountingStore, Garage, GarageSettings, node_yaml, sample_record};

fn labels(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

async fn put(store: &Arc<dyn ObjectStore>, key: &str, body: &str) -> String {
    let result = store
        .put(&Path::from(key), PutPayload::from(body.as_bytes().to_vec()))
        .await
        .unwrap();
    result.e_tag.unwrap().trim_matches('"').to_owned()
}

/// A store over Garage whose `ObjectStore` counts bodies and 304 responses.
fn counting_store(garage: &Garage, prefix: &str) -> (ObjectConfigStore, Arc<CountingStore>) {
    let raw = garage.settings(prefix).build().unwrap();
    let counting = CountingStore::new(raw);
    let store = ObjectConfigStore::from_store(Backend::S3, counting.clone(), prefix);
    (store, counting)
}

/// Reads one counter from Garage's Prometheus endpoint, summed over all label sets whose
/// line contains `filter`.
fn garage_metric(garage: &Garage, name: &str, filter: &str) -> f64 {
    let address = garage.admin_endpoint.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: {address}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
        .lines()
        .filter(|line| line.starts_with(name) && line.contains(filter))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn s3_fetch_uses_etag_revision() {
    let Some(garage) = Garage::start() else {
        return;
    };
    let (store, _) = counting_store(&garage, "fleet/");
    let etag = put(
        store.object_store(),
        "fleet/nodes/a.yaml",
        &node_yaml("a", "web"),
    )
    .await;

    let entry = store.fetch(&labels(&["a"])).await.remove(0).unwrap();
    assert_eq!(entry.revision.as_str(), etag);
    assert_eq!(entry.config.services[0].name, "web");
}

#[tokio::test]
async fn s3_unchanged_object_not_downloaded() {
    let Some(garage) = Garage::start() else {
        return;
    };
    let (store, counting) = counting_store(&garage, "");
    put(store.object_store(), "nodes/a.yaml", &node_yaml("a", "web")).await;
    let wanted = labels(&["a"]);

    let first = store.fetch(&wanted).await.remove(0).unwrap();
    assert_eq!(counting.bodies(), 1);
    assert_eq!(counting.not_modified(), 0);

    let second = store.fetch(&wanted).await.remove(0).unwrap();
    assert_eq!(second, first);
    assert_eq!(
        counting.bodies(),
        1,
        "an unchanged object was downloaded again"
    );
    assert_eq!(counting.not_modified(), 1);

    let etag = put(store.object_store(), "nodes/a.yaml", &node_yaml("a", "api")).await;
    let third = store.fetch(&wanted).await.remove(0).unwrap();
    assert_eq!(counting.bodies(), 2);
    assert_eq!(third.revision.as_str(), etag);
    assert_ne!(third.revision, first.revision);
    assert_eq!(third.config.services[0].name, "api");
}

#[tokio::test]
async fn s3_list_all_pages_over_1000_configs() {
    let Some(garage) = Garage::start() else {
        return;
    };
    let (store, counting) = counting_store(&garage, "big");
    // S3 returns at most 1,000 keys a page, so 1,005 objects need two list pages.
    let count = 1005;
    futures::stream::iter(0..count)
        .for_each_concurrent(32, |i| {
            let raw = Arc::clone(store.object_store());
            async move {
                let label = format!("node-{i:04}");
                put(
                    &raw,
                    &format!("big/nodes/{label}.yaml"),
                    &node_yaml(&label, "web"),
                )
                .await;
            }
        })
        .await;
    put(
        store.object_store(),
        "big/nodes/notes.txt",
        "not a node config",
    )
    .await;
    put(
        store.object_store(),
        "big/nodes/sub/x.yaml",
        &node_yaml("x", "web"),
    )
    .await;
    let lists_before = garage_metric(&garage, "api_s3_request_counter", "ListObjectsV2");

    let listing = store.list_all().await.unwrap();
    assert_eq!(listing.len(), count);
    assert!(listing.iter().all(Result::is_ok));
    assert_eq!(listing[0].as_ref().unwrap().label, "node-0000");
    assert_eq!(listing[count - 1].as_ref().unwrap().label, "node-1004");
    let lists_after = garage_metric(&garage, "api_s3_request_counter", "ListObjectsV2");
    assert!(
        lists_after - lists_before >= 2.0,
        "expected at least two list pages, Garage counted {}",
        lists_after - lists_before
    );
    assert_eq!(counting.bodies(), count);

    // The listing carries ETags, so a second listing downloads nothing.
    let again = store.list_all().await.unwrap();
    assert_eq!(again.len(), count);
    assert_eq!(counting.bodies(), count);
    assert_eq!(counting.not_modified(), 0);
}

#[tokio::test]
async fn s3_missing_bucket_is_not_found() {
    let Some(garage) = Garage::start() else {
        return;
    };
    let mut settings = garage.settings("");
    settings.bucket = "no-such-bucket".to_owned();
    let store = ObjectConfigStore::new(&settings).unwrap();
    let error = store.fetch(&labels(&["a"])).await.remove(0).unwrap_err();
    assert_eq!(
        error.kind,
        StoreErrorKind::NotFound,
        "{}",
        error_chain(&error)
    );
    assert_eq!(error.backend, Backend::S3);
    assert_eq!(error.subject, Subject::Label("a".to_owned()));
    let error = store.list_all().await.unwrap_err();
    assert_eq!(
        error.kind,
        StoreErrorKind::NotFound,
        "{}",
        error_chain(&error)
    );
}

#[tokio::test]
async fn s3_wrong_credentials_are_denied() {
    let Some(garage) = Garage::start() else {
        return;
    };
    let (good, _) = counting_store(&garage, "");
    put(good.object_store(), "nodes/a.yaml", &node_yaml("a", "web")).await;

    let mut settings = garage.settings("");
    settings.static_credentials = Some((garage.key_id.clone(), Secret::new("0".repeat(64))));
    let store = ObjectConfigStore::new(&settings).unwrap();
    let error = store.fetch(&labels(&["a"])).await.remove(0).unwrap_err();
    assert_eq!(
        error.kind,
        StoreErrorKind::Denied,
        "{}",
        error_chain(&error)
    );
    assert!(!error_chain(&error).contains(&"0".repeat(64)));

    let mut settings = garage.settings("");
    settings.static_credentials = Some((
        "GK000000000000000000000000".to_owned(),
        Secret::new(garage.secret.clone()),
    ));
    let store = ObjectConfigStore::new(&settings).unwrap();
    let error = store.list_all().await.unwrap_err();
    assert_eq!(
        error.kind,
        StoreErrorKind::Denied,
        "{}",
        error_chain(&error)
    );
}

#[tokio::test]
async fn s3_server_down_keeps_last_good() {
    let Some(mut garage) = Garage::start() else {
        return;
    };
    let (store, _) = counting_store(&garage, "");
    put(store.object_store(), "nodes/a.yaml", &node_yaml("a", "web")).await;
    let wanted = labels(&["a"]);
    let mut cache = DesiredStateCache::new(Backend::S3);
    let good = cache
        .apply_fetch(&wanted, store.fetch(&wanted).await)
        .unwrap()
        .clone();

    garage.stop();
    let results = store.fetch(&wanted).await;
    let error = results[0].as_ref().unwrap_err();
    assert_eq!(
        error.kind,
        StoreErrorKind::Unreachable,
        "{}",
        error_chain(error)
    );
    let stale = cache.apply_fetch(&wanted, results).unwrap_err();
    assert_eq!(stale.last_good, Some(&good));
    assert_eq!(stale.errors[0].label(), Some("a"));

    let index = cache.apply_index(store.fetch_index().await);
    assert_eq!(index.unwrap_err().1.kind, StoreErrorKind::Unreachable);
}

#[tokio::test]
async fn s3_index_conditional_get() {
    let Some(garage) = Garage::start() else {
        return;
    };
    let (store, counting) = counting_store(&garage, "fleet");
    let mut index = PlacementIndex {
        version: 1,
        ..PlacementIndex::default()
    };
    index.nodes.insert("node-a".to_owned(), Default::default());
    let body = String::from_utf8(index.to_json()).unwrap();
    let etag = put(store.object_store(), "fleet/index.json", &body).await;

    let first = store.fetch_index().await.unwrap();
    assert!(first.changed);
    assert_eq!(first.revision.as_str(), etag);
    assert_eq!(*first.index, index);

    let second = store.fetch_index().await.unwrap();
    assert!(!second.changed);
    assert_eq!(second.revision, first.revision);
    assert_eq!(counting.bodies(), 1);
    assert_eq!(counting.not_modified(), 1);

    index.nodes.insert("node-b".to_owned(), Default::default());
    put(
        store.object_store(),
        "fleet/index.json",
        &String::from_utf8(index.to_json()).unwrap(),
    )
    .await;
    let third = store.fetch_index().await.unwrap();
    assert!(third.changed);
    assert_eq!(third.index.nodes.len(), 2);

    put(store.object_store(), "fleet/index.json", "{\"version\": 1}").await;
    let error = store.fetch_index().await.unwrap_err();
    assert_eq!(error.kind, StoreErrorKind::InvalidContent);
    assert_eq!(error.subject, Subject::Index);
}

#[tokio::test]
async fn s3_registry_round_trip() {
    let Some(garage) = Garage::start() else {
        return;
    };
    let raw = garage.settings("fleet").build().unwrap();
    let registry = NodeRegistry::object(Backend::S3, Arc::clone(&raw), "fleet/");
    assert!(registry.list().await.unwrap().is_empty());

    registry
        .write(&sample_record("node-b", "2026-12-04T20:00:00Z"))
        .await
        .unwrap();
    registry
        .write(&sample_record("node-a", "2026-12-04T20:00:00Z"))
        .await
        .unwrap();
    registry
        .write(&sample_record("node-a", "2026-12-04T20:00:15Z"))
        .await
        .unwrap();
    let head = raw
        .head(&Path::from("fleet/registry/nodes/node-a.json"))
        .await
        .unwrap();
    assert!(head.size > 0);

    assert_eq!(
        registry.read("node-a").await.unwrap(),
        sample_record("node-a", "2026-12-04T20:00:15Z")
    );
    let all = registry.list().await.unwrap();
    let nodes: Vec<_> = all
        .iter()
        .map(|r| r.as_ref().unwrap().node.clone())
        .collect();
    assert_eq!(nodes, ["node-a", "node-b"]);

    put(&raw, "fleet/registry/nodes/node-c.json", "{").await;
    let all = registry.list().await.unwrap();
    assert_eq!(all.len(), 3);
    let broken = all[2].as_ref().unwrap_err();
    assert_eq!(broken.kind, StoreErrorKind::InvalidContent);
    assert_eq!(broken.subject, Subject::Registry("node-c".to_owned()));
    let missing = registry.read("node-z").await.unwrap_err();
    assert_eq!(missing.kind, StoreErrorKind::NotFound);
}

#[tokio::test]
async fn s3_safety_rules() {
    let Some(garage) = Garage::start() else {
        return;
    };
    let (store, _) = counting_store(&garage, "");
    let raw = Arc::clone(store.object_store());
    put(&raw, "nodes/a.yaml", &node_yaml("a", "web")).await;
    put(&raw, "nodes/b.yaml", &node_yaml("b", "api")).await;
    let wanted = labels(&["a", "b"]);
    let mut cache = DesiredStateCache::new(Backend::S3);
    let good = cache
        .apply_fetch(&wanted, store.fetch(&wanted).await)
        .unwrap()
        .clone();

    let cases: [(Option<&str>, StoreErrorKind); 4] = [
        (Some(""), StoreErrorKind::InvalidContent),
        (Some("node: b\n"), StoreErrorKind::InvalidContent),
        (Some("services: [\n"), StoreErrorKind::InvalidContent),
        (None, StoreErrorKind::NotFound),
    ];
    for (content, kind) in cases {
        match content {
            Some(body) => {
                put(&raw, "nodes/b.yaml", body).await;
            }
            None => raw.delete(&Path::from("nodes/b.yaml")).await.unwrap(),
        }
        let stale = cache
            .apply_fetch(&wanted, store.fetch(&wanted).await)
            .unwrap_err();
        assert_eq!(stale.last_good, Some(&good), "{content:?}");
        assert_eq!(stale.errors.len(), 1, "{content:?}");
        assert_eq!(stale.errors[0].kind, kind, "{content:?}");
        assert_eq!(stale.errors[0].label(), Some("b"));
        assert_eq!(stale.errors[0].backend, Backend::S3);
    }

    let etag = put(&raw, "nodes/b.yaml", "services: []\n").await;
    let fresh = cache
        .apply_fetch(&wanted, store.fetch(&wanted).await)
        .unwrap();
    assert!(fresh.entries["b"].config.services.is_empty());
    assert_eq!(fresh.entries["b"].revision.as_str(), etag);
    assert_eq!(fresh.entries["a"].config.services.len(), 1);
}

#[tokio::test]
async fn s3_peer_read_failure_keeps_copy() {
    let Some(garage) = Garage::start() else {
        return;
    };
    let (store, _) = counting_store(&garage, "");
    let raw = Arc::clone(store.object_store());
    put(&raw, "nodes/a.yaml", &node_yaml("a", "web")).await;
    put(&raw, "nodes/b.yaml", &node_yaml("b", "api")).await;
    let mut cache = DesiredStateCache::new(Backend::S3);
    assert!(
        cache
            .apply_listing(store.list_all().await)
            .errors
            .is_empty()
    );
    let good_b = cache.peers()["b"].clone();

    put(&raw, "nodes/b.yaml", "").await;
    let update = cache.apply_listing(store.list_all().await);
    assert_eq!(update.errors.len(), 1);
    assert_eq!(update.errors[0].label(), Some("b"));
    assert_eq!(cache.peers()["b"], good_b);
    assert_eq!(cache.peers().len(), 2);

    raw.delete(&Path::from("nodes/a.yaml")).await.unwrap();
    cache.apply_listing(store.list_all().await);
    assert!(!cache.peers().contains_key("a"));
}
