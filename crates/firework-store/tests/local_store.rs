//! The local directory store and registry against a real directory.

#![allow(clippy::unwrap_used)]

mod support;

use firework_store::{
    Backend, ConfigStore, DesiredStateCache, LocalStore, NodeRegistry, PlacementIndex,
    StoreErrorKind, Subject,
};
use support::{node_yaml, sample_record};

fn labels(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

fn write(dir: &std::path::Path, path: &str, content: &str) {
    let full = dir.join(path);
    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
    std::fs::write(full, content).unwrap();
}

#[tokio::test]
async fn local_fetch_picks_up_edits() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "nodes/web.yaml", &node_yaml("web", "api"));
    let store = LocalStore::new(dir.path());
    let wanted = labels(&["web"]);

    let first = store.fetch(&wanted).await.remove(0).unwrap();
    assert_eq!(first.label, "web");
    assert!(first.revision.as_str().starts_with("sha256:"));
    assert_eq!(first.config.services.len(), 1);

    let again = store.fetch(&wanted).await.remove(0).unwrap();
    assert_eq!(again.revision, first.revision);

    write(dir.path(), "nodes/web.yaml", "services: []\n");
    let edited = store.fetch(&wanted).await.remove(0).unwrap();
    assert_ne!(edited.revision, first.revision);
    assert!(edited.config.services.is_empty());
}

#[tokio::test]
async fn local_missing_label_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "nodes/web.yaml", &node_yaml("web", "api"));
    let store = LocalStore::new(dir.path());
    let results = store.fetch(&labels(&["web", "db"])).await;
    assert!(results[0].is_ok());
    let error = results[1].as_ref().unwrap_err();
    assert_eq!(error.kind, StoreErrorKind::NotFound);
    assert_eq!(error.backend, Backend::Local);
    assert_eq!(error.subject, Subject::Label("db".to_owned()));
    assert!(
        error
            .to_string()
            .starts_with("local store: node config of label `db`: not found at "),
        "{error}"
    );
}

#[tokio::test]
async fn local_rejects_path_label() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path());
    let results = store.fetch(&labels(&["../secret"])).await;
    let error = results[0].as_ref().unwrap_err();
    assert_eq!(error.kind, StoreErrorKind::InvalidSettings);
    assert_eq!(
        error.cause.to_string(),
        "invalid label: name must start with an ASCII letter or digit"
    );
}

#[tokio::test]
async fn local_unreadable_file_is_denied() {
    if !nix_is_root() {
        // Root ignores file modes, so the check below can only run as another user.
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "nodes/web.yaml", &node_yaml("web", "api"));
        use std::os::unix::fs::PermissionsExt;
        let path = dir.path().join("nodes/web.yaml");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap();
        let store = LocalStore::new(dir.path());
        let error = store.fetch(&labels(&["web"])).await.remove(0).unwrap_err();
        assert_eq!(error.kind, StoreErrorKind::Denied);
    } else {
        eprintln!("skipping: root reads files regardless of their mode");
    }
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|status| {
            status
                .lines()
                .any(|line| line.starts_with("Uid:") && line.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

#[tokio::test]
async fn local_list_all_reads_every_config() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "nodes/b.yaml", &node_yaml("b", "api"));
    write(dir.path(), "nodes/a.yaml", &node_yaml("a", "web"));
    write(dir.path(), "nodes/broken.yaml", "services: [\n");
    write(dir.path(), "nodes/README.md", "not a node config");
    let store = LocalStore::new(dir.path());
    let listing = store.list_all().await.unwrap();
    assert_eq!(listing.len(), 3);
    assert_eq!(listing[0].as_ref().unwrap().label, "a");
    assert_eq!(listing[1].as_ref().unwrap().label, "b");
    let broken = listing[2].as_ref().unwrap_err();
    assert_eq!(broken.kind, StoreErrorKind::InvalidContent);
    assert_eq!(broken.label(), Some("broken"));
}

#[tokio::test]
async fn local_list_all_without_nodes_dir_fails() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path());
    let error = store.list_all().await.unwrap_err();
    assert_eq!(error.kind, StoreErrorKind::NotFound);
    assert_eq!(error.subject, Subject::Listing);
}

#[tokio::test]
async fn local_index_reports_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let mut index = PlacementIndex {
        version: 1,
        ..PlacementIndex::default()
    };
    index.nodes.insert("a".to_owned(), Default::default());
    std::fs::write(dir.path().join("index.json"), index.to_json()).unwrap();
    let store = LocalStore::new(dir.path());

    let first = store.fetch_index().await.unwrap();
    assert!(first.changed);
    assert_eq!(*first.index, index);
    let second = store.fetch_index().await.unwrap();
    assert!(!second.changed);
    assert_eq!(second.revision, first.revision);

    index.nodes.insert("b".to_owned(), Default::default());
    std::fs::write(dir.path().join("index.json"), index.to_json()).unwrap();
    let third = store.fetch_index().await.unwrap();
    assert!(third.changed);
    assert_eq!(third.index.nodes.len(), 2);
}

#[tokio::test]
async fn local_registry_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let registry = NodeRegistry::local(dir.path());
    assert_eq!(registry.list().await.unwrap().len(), 0);

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

    assert!(dir.path().join("registry/nodes/node-a.json").exists());
    let read = registry.read("node-a").await.unwrap();
    assert_eq!(read, sample_record("node-a", "2026-12-04T20:00:15Z"));
    let all = registry.list().await.unwrap();
    let nodes: Vec<_> = all
        .iter()
        .map(|r| r.as_ref().unwrap().node.clone())
        .collect();
    assert_eq!(nodes, ["node-a", "node-b"]);
}

#[tokio::test]
async fn local_registry_rejects_bad_records() {
    let dir = tempfile::tempdir().unwrap();
    let registry = NodeRegistry::local(dir.path());
    let error = registry
        .write(&sample_record("../x", "2026-12-04T20:00:00Z"))
        .await
        .unwrap_err();
    assert_eq!(error.kind, StoreErrorKind::InvalidSettings);
    assert!(!dir.path().join("registry").exists());

    write(dir.path(), "registry/nodes/bad.json", "{");
    let error = registry.read("bad").await.unwrap_err();
    assert_eq!(error.kind, StoreErrorKind::InvalidContent);
    let error = registry.read("missing").await.unwrap_err();
    assert_eq!(error.kind, StoreErrorKind::NotFound);
}

#[tokio::test]
async fn local_safety_keeps_last_good_state() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "nodes/web.yaml", &node_yaml("web", "api"));
    write(dir.path(), "nodes/db.yaml", &node_yaml("db", "pg"));
    let store = LocalStore::new(dir.path());
    let wanted = labels(&["web", "db"]);
    let mut cache = DesiredStateCache::new(Backend::Local);

    let good = cache
        .apply_fetch(&wanted, store.fetch(&wanted).await)
        .unwrap()
        .clone();
    assert_eq!(good.entries.len(), 2);

    // Empty file, missing `services` and a missing file each keep the whole last good state.
    for (content, kind) in [
        (Some(""), StoreErrorKind::InvalidContent),
        (Some("node: db\n"), StoreErrorKind::InvalidContent),
        (None, StoreErrorKind::NotFound),
    ] {
        match content {
            Some(content) => write(dir.path(), "nodes/db.yaml", content),
            None => std::fs::remove_file(dir.path().join("nodes/db.yaml")).unwrap(),
        }
        let stale = cache
            .apply_fetch(&wanted, store.fetch(&wanted).await)
            .unwrap_err();
        assert_eq!(stale.last_good, Some(&good));
        assert_eq!(stale.errors.len(), 1);
        assert_eq!(stale.errors[0].kind, kind);
        assert_eq!(stale.errors[0].label(), Some("db"));
        assert_eq!(stale.errors[0].backend, Backend::Local);
    }
    assert_eq!(cache.desired(), Some(&good));

    // Only an explicit empty list empties a label.
    write(dir.path(), "nodes/db.yaml", "services: []\n");
    let emptied = cache
        .apply_fetch(&wanted, store.fetch(&wanted).await)
        .unwrap();
    assert!(emptied.entries["db"].config.services.is_empty());
    assert_eq!(emptied.entries["web"].config.services.len(), 1);
}
