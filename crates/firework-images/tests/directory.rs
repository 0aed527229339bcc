//! Image sync from a local directory source, source selection from the agent config, and
//! garbage collection.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use firework_images::{ImageError, ImageOutcome, ImageSource, ImageSync, ReadyVia, SyncOptions};

struct Setup {
    source_dir: tempfile::TempDir,
    images: tempfile::TempDir,
    sync: ImageSync,
}

fn setup() -> Setup {
    let source_dir = tempfile::tempdir().unwrap();
    let images = tempfile::tempdir().unwrap();
    let source = ImageSource::Directory(source_dir.path().to_owned());
    let sync = ImageSync::new(&source, images.path(), SyncOptions::default()).unwrap();
    Setup {
        source_dir,
        images,
        sync,
    }
}

fn publish(dir: &Path, key: &str, bytes: &[u8]) {
    let path = dir.join(key);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn via(outcome: Option<&ImageOutcome>) -> ReadyVia {
    match outcome {
        Some(ImageOutcome::Ready { via, .. }) => *via,
        other => panic!("expected a ready image, got {other:?}"),
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn directory_source_syncs_nested_key() {
    let s = setup();
    publish(s.source_dir.path(), "kernels/vmlinux-6.1", b"kernel v1");
    let path = s.images.path().join("kernels/vmlinux-6.1");

    let first = s.sync.sync(&[&path]).await;
    let second = s.sync.sync(&[&path]).await;

    assert_eq!(via(first.get(&path)), ReadyVia::Downloaded);
    assert_eq!(via(second.get(&path)), ReadyVia::Unchanged);
    assert_eq!(std::fs::read(&path).unwrap(), b"kernel v1");

    publish(
        s.source_dir.path(),
        "kernels/vmlinux-6.1",
        b"kernel v2, longer",
    );
    let third = s.sync.sync(&[&path]).await;
    assert_eq!(via(third.get(&path)), ReadyVia::Downloaded);
    assert_eq!(std::fs::read(&path).unwrap(), b"kernel v2, longer");
    assert_ne!(
        first.get(&path).unwrap().version(),
        third.get(&path).unwrap().version()
    );
}

#[tokio::test]
async fn invalid_path_fails_without_request() {
    let s = setup();
    let path = s.images.path().join("app.ext4.firework.json");

    let report = s.sync.sync(&[&path]).await;

    match report.get(&path).unwrap().error() {
        Some(ImageError::InvalidPath { reason, .. }) => assert_eq!(
            *reason,
            "the file name ends in a suffix reserved for sync records (.firework.json, .firework-partial)"
        ),
        other => panic!("expected InvalidPath, got {other:?}"),
    }
    assert_eq!(names(s.images.path()), Vec::<String>::new());
}

fn agent_config(yaml: &str) -> firework_model::agent::AgentConfig {
    firework_model::agent::parse_agent_config(yaml.as_bytes(), "agent.yaml", &|| {
        Some("node-1".to_owned())
    })
    .unwrap()
    .value
}

#[test]
fn source_follows_agent_config() {
    let s3 = agent_config(
        "s3_images_bucket: imgs\ns3_region: eu-west-1\ns3_endpoint_url: http://127.0.0.1:3900\n",
    );
    match ImageSource::from_agent_config(&s3).unwrap() {
        Some(ImageSource::S3 {
            bucket,
            region,
            endpoint_url,
            credentials,
        }) => {
            assert_eq!(bucket, "imgs");
            assert_eq!(region.as_deref(), Some("eu-west-1"));
            assert_eq!(endpoint_url.as_deref(), Some("http://127.0.0.1:3900"));
            assert!(credentials.is_none());
        }
        other => panic!("expected S3, got {other:?}"),
    }

    let gcs = agent_config("gcs_images_bucket: imgs\n");
    assert_eq!(
        ImageSource::from_agent_config(&gcs)
            .unwrap()
            .unwrap()
            .name(),
        "gs://imgs"
    );

    let dir = agent_config("images_source_dir: /srv/images\n");
    match ImageSource::from_agent_config(&dir).unwrap() {
        Some(ImageSource::Directory(path)) => assert_eq!(path, PathBuf::from("/srv/images")),
        other => panic!("expected a directory, got {other:?}"),
    }

    let none = agent_config("node_name: n\n");
    assert!(ImageSource::from_agent_config(&none).unwrap().is_none());
}

#[test]
fn conflicting_sources_are_rejected() {
    let mut config = agent_config("s3_images_bucket: imgs\n");
    config.images_source_dir = Some(PathBuf::from("/srv/images"));

    let error = ImageSource::from_agent_config(&config).unwrap_err();

    assert_eq!(
        error.to_string(),
        "more than one image source is set (s3_images_bucket, images_source_dir); set only one"
    );
}

#[test]
fn secret_is_redacted_in_debug() {
    let source = ImageSource::S3 {
        bucket: "b".to_owned(),
        region: None,
        endpoint_url: None,
        credentials: Some(("id".to_owned(), firework_images::Secret::new("hunter2"))),
    };
    let text = format!("{source:?}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("<redacted>"), "{text}");
}

/// Syncs `a.ext4`, `b.ext4` and `c.ext4` and adds a file the operator placed by hand.
async fn three_synced_images(s: &Setup) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    for name in ["a.ext4", "b.ext4", "c.ext4"] {
        publish(s.source_dir.path(), name, name.as_bytes());
        paths.push(s.images.path().join(name));
    }
    let report = s.sync.sync(&paths).await;
    assert_eq!(report.failed().count(), 0);
    std::fs::write(s.images.path().join("manual.ext4"), b"placed by hand").unwrap();
    paths
}

#[tokio::test]
async fn gc_removes_unreferenced_after_grace() {
    let s = setup();
    let paths = three_synced_images(&s).await;
    let b_bytes = std::fs::metadata(&paths[1]).unwrap().len()
        + std::fs::metadata(s.images.path().join("b.ext4.firework.json"))
            .unwrap()
            .len();
    let grace = Duration::from_secs(600);
    tokio::time::pause();
    let none: &[PathBuf] = &[];

    let first = s.sync.gc(&paths[..1], none, grace).await;
    assert_eq!(first.removed, Vec::<PathBuf>::new());
    let mut waiting = first.waiting.clone();
    waiting.sort();
    assert_eq!(waiting, paths[1..].to_vec());

    // c is referenced again before its grace period ends, which restarts it.
    tokio::time::advance(Duration::from_secs(300)).await;
    let second = s.sync.gc(&[&paths[0], &paths[2]], none, grace).await;
    assert_eq!(second.removed, Vec::<PathBuf>::new());
    assert_eq!(second.waiting, vec![paths[1].clone()]);

    tokio::time::advance(Duration::from_secs(300)).await;
    let third = s.sync.gc(&paths[..1], none, grace).await;
    assert_eq!(third.removed, vec![paths[1].clone()]);
    assert_eq!(third.removed_bytes, b_bytes);
    assert_eq!(third.waiting, vec![paths[2].clone()]);
    assert!(third.errors.is_empty(), "{:?}", third.errors);
    assert_eq!(
        names(s.images.path()),
        vec![
            "a.ext4",
            "a.ext4.firework.json",
            "c.ext4",
            "c.ext4.firework.json",
            "manual.ext4"
        ]
    );
    assert_eq!(s.sync.metrics().gc_removed, 1);
}

#[tokio::test]
async fn gc_keeps_in_use_and_open_images() {
    let s = setup();
    let paths = three_synced_images(&s).await;
    let none: &[PathBuf] = &[];
    // This process keeps c open, as a Firecracker process keeps its root drive open.
    let _handle = std::fs::File::open(&paths[2]).unwrap();

    let report = s.sync.gc(none, &paths[1..2], Duration::ZERO).await;

    assert_eq!(report.removed, vec![paths[0].clone()]);
    let mut in_use = report.in_use.clone();
    in_use.sort();
    assert_eq!(in_use, paths[1..].to_vec());
    assert!(!paths[0].exists());
    assert!(paths[1].exists());
    assert!(paths[2].exists());
    assert!(
        s.images.path().join("manual.ext4").exists(),
        "files without a record stay"
    );
}
