//! Publishing to a local directory and to an in-memory object store: changed-only writes,
//! stale deletes limited to our own files, the empty guard, the commit order and
//! compare-and-set.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use firework_enricher::publish::manifest::{MANIFEST_KEY, Manifest, State, sha256_hex};
use firework_enricher::publish::{PublishError, PublishOptions, Target, publish};

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

fn stamp(path: &Path) -> (u64, i64, i64) {
    let meta = std::fs::metadata(path).unwrap();
    (meta.ino(), meta.mtime(), meta.mtime_nsec())
}

fn manifest(dir: &Path) -> Manifest {
    Manifest::from_json(&std::fs::read(dir.join(MANIFEST_KEY)).unwrap()).unwrap()
}

/// Reads every file below `dir` except the lock file.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if !path.ends_with(".firework-publish.lock") {
                let key = path.strip_prefix(dir).unwrap().display().to_string();
                out.insert(key, std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

#[tokio::test]
async fn writes_only_changed_files() {
    let out = tempfile::tempdir().unwrap();
    let target = Target::Local(out.path().to_path_buf());
    let first = files(&[
        ("nodes/a.yaml", "services: []\n"),
        ("nodes/b.yaml", "node: b\nservices: []\n"),
        ("index.json", "{}\n"),
    ]);
    let report = publish(&target, &first, &commit("c1", 100)).await.unwrap();
    assert_eq!(
        report.written,
        vec!["index.json", "nodes/a.yaml", "nodes/b.yaml"]
    );
    let a = stamp(&out.path().join("nodes/a.yaml"));
    let b = stamp(&out.path().join("nodes/b.yaml"));

    let report = publish(&target, &first, &commit("c2", 200)).await.unwrap();
    assert!(report.written.is_empty());
    assert_eq!(report.unchanged.len(), 3);
    assert_eq!(stamp(&out.path().join("nodes/a.yaml")), a);

    let mut second = first.clone();
    second.insert(
        "nodes/b.yaml".to_string(),
        b"node: b\nservices: [] # x\n".to_vec(),
    );
    let report = publish(&target, &second, &commit("c3", 300)).await.unwrap();
    assert_eq!(report.written, vec!["nodes/b.yaml"]);
    assert_eq!(stamp(&out.path().join("nodes/a.yaml")), a);
    assert_ne!(stamp(&out.path().join("nodes/b.yaml")).0, b.0);
    let manifest = manifest(out.path());
    assert_eq!(manifest.source_commit.as_deref(), Some("c3"));
    assert_eq!(manifest.commit_time, Some(300));
    assert_eq!(manifest.state, State::Complete);
    assert_eq!(
        manifest.files["nodes/b.yaml"],
        sha256_hex(b"node: b\nservices: [] # x\n")
    );
}

#[tokio::test]
async fn deletes_only_stale_files_it_published() {
    let out = tempfile::tempdir().unwrap();
    let target = Target::Local(out.path().to_path_buf());
    let both = files(&[("nodes/a.yaml", "a\n"), ("nodes/b.yaml", "b\n")]);
    publish(&target, &both, &commit("c1", 1)).await.unwrap();
    std::fs::write(out.path().join("nodes/foreign.yaml"), "mine\n").unwrap();
    let only_a = files(&[("nodes/a.yaml", "a\n")]);
    let report = publish(&target, &only_a, &commit("c2", 2)).await.unwrap();
    assert_eq!(report.deleted, vec!["nodes/b.yaml"]);
    assert!(!out.path().join("nodes/b.yaml").exists());
    assert_eq!(
        std::fs::read_to_string(out.path().join("nodes/foreign.yaml")).unwrap(),
        "mine\n"
    );
    assert_eq!(
        manifest(out.path()).files.keys().collect::<Vec<_>>(),
        vec!["nodes/a.yaml"]
    );
}

#[tokio::test]
async fn refuses_an_empty_result_unless_allowed() {
    let out = tempfile::tempdir().unwrap();
    let target = Target::Local(out.path().to_path_buf());
    publish(
        &target,
        &files(&[("nodes/a.yaml", "a\n")]),
        &commit("c1", 1),
    )
    .await
    .unwrap();
    let before = snapshot(out.path());
    let empty = files(&[("index.json", "{\"version\":1,\"nodes\":{}}\n")]);
    let error = publish(&target, &empty, &commit("c2", 2))
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "refusing to publish an empty result to {}: no node configs were rendered (pass \
             --allow-empty to stop every service)",
            out.path().display()
        )
    );
    assert_eq!(snapshot(out.path()), before);

    let allowed = PublishOptions {
        allow_empty: true,
        ..commit("c2", 2)
    };
    let report = publish(&target, &empty, &allowed).await.unwrap();
    assert_eq!(report.deleted, vec!["nodes/a.yaml"]);
}

#[tokio::test]
async fn refuses_a_commit_older_than_the_published_one() {
    let out = tempfile::tempdir().unwrap();
    let target = Target::Local(out.path().to_path_buf());
    publish(
        &target,
        &files(&[("nodes/a.yaml", "new\n")]),
        &commit("newer", 200),
    )
    .await
    .unwrap();
    let before = snapshot(out.path());
    let error = publish(
        &target,
        &files(&[("nodes/a.yaml", "old\n")]),
        &commit("older", 100),
    )
    .await
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "refusing to publish commit older (committed at 100) over newer (committed at 200), \
         which is newer"
    );
    assert_eq!(snapshot(out.path()), before);
}

#[tokio::test]
async fn dry_run_reports_the_diff_and_writes_nothing() {
    let out = tempfile::tempdir().unwrap();
    let target = Target::Local(out.path().to_path_buf());
    publish(
        &target,
        &files(&[("nodes/a.yaml", "x: 1\n"), ("nodes/b.yaml", "b\n")]),
        &commit("c1", 1),
    )
    .await
    .unwrap();
    let before = snapshot(out.path());
    let options = PublishOptions {
        dry_run: true,
        ..commit("c2", 2)
    };
    let report = publish(&target, &files(&[("nodes/a.yaml", "x: 2\n")]), &options)
        .await
        .unwrap();
    assert_eq!(snapshot(out.path()), before);
    assert_eq!(report.written, vec!["nodes/a.yaml"]);
    assert_eq!(report.deleted, vec!["nodes/b.yaml"]);
    let diffs: Vec<&str> = report.changes.iter().map(|c| c.diff()).collect();
    assert_eq!(
        diffs,
        vec![
            "--- a/nodes/a.yaml\n+++ b/nodes/a.yaml\n-x: 1\n+x: 2\n",
            "--- a/nodes/b.yaml\n+++ b/nodes/b.yaml\n-b\n",
        ]
    );
}

#[tokio::test]
async fn held_lock_stops_second_run() {
    let out = tempfile::tempdir().unwrap();
    let target = Target::Local(out.path().to_path_buf());
    let _held = target.lock().unwrap();
    let error = publish(&target, &files(&[("nodes/a.yaml", "a\n")]), &commit("c", 1))
        .await
        .unwrap_err();
    assert!(matches!(error, PublishError::Busy { .. }), "{error}");
    assert!(!out.path().join("nodes/a.yaml").exists());
}

fn memory_target() -> Target {
    Target::Object {
        store: Arc::new(object_store::memory::InMemory::new()),
        prefix: "env/prod".to_string(),
        url: "memory://bucket/env/prod".to_string(),
    }
}

#[tokio::test]
async fn manifest_compare_and_set_rejects_a_stale_version() {
    let target = memory_target();
    publish(
        &target,
        &files(&[("nodes/a.yaml", "a\n")]),
        &commit("c1", 1),
    )
    .await
    .unwrap();
    let (_, version) = target.get(MANIFEST_KEY).await.unwrap().unwrap();
    publish(
        &target,
        &files(&[("nodes/a.yaml", "b\n")]),
        &commit("c2", 2),
    )
    .await
    .unwrap();
    let error = target
        .put_if(MANIFEST_KEY, b"{}", Some(&version))
        .await
        .unwrap_err();
    assert!(matches!(error, PublishError::Conflict { .. }), "{error}");
    let error = target.put_if(MANIFEST_KEY, b"{}", None).await.unwrap_err();
    assert!(matches!(error, PublishError::Conflict { .. }), "{error}");
}

#[tokio::test]
async fn racing_runs_never_leave_the_older_commit_published() {
    for round in 0..20 {
        let target = memory_target();
        let old = files(&[("nodes/a.yaml", "old\n"), ("nodes/b.yaml", "old\n")]);
        let new = files(&[("nodes/a.yaml", "new\n"), ("nodes/c.yaml", "new\n")]);
        let old_options = commit("old", 100);
        let new_options = commit("new", 200);
        let (first, second) = tokio::join!(
            publish(&target, &old, &old_options),
            publish(&target, &new, &new_options)
        );
        // At least one run publishes; whichever lost stopped with a refusal.
        assert!(first.is_ok() || second.is_ok(), "round {round}");
        let (bytes, _) = target.get(MANIFEST_KEY).await.unwrap().unwrap();
        let manifest = Manifest::from_json(&bytes).unwrap();
        if second.is_ok() {
            assert_eq!(
                manifest.source_commit.as_deref(),
                Some("new"),
                "round {round}"
            );
            assert_eq!(
                target.get("nodes/a.yaml").await.unwrap().unwrap().0,
                b"new\n"
            );
        }
        // A retry of the newer commit always converges to it.
        publish(&target, &new, &new_options).await.unwrap();
        assert_eq!(
            target.get("nodes/a.yaml").await.unwrap().unwrap().0,
            b"new\n"
        );
        assert!(target.get("nodes/b.yaml").await.unwrap().is_none());
        // The older commit is now refused.
        assert!(matches!(
            publish(&target, &old, &old_options).await,
            Err(PublishError::OlderCommit { .. })
        ));
    }
}
