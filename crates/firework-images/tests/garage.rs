//! Image sync against a real Garage S3 server on loopback.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::Read;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use firework_images::{ImageErrorKind, ImageOutcome, ImageSync, ReadyVia, SyncOptions, SyncRecord};
use object_store::path::Path as ObjectPath;
use object_store::{Attribute, Attributes, GetRange, ObjectStore, ObjectStoreExt, PutOptions};
use sha2::{Digest, Sha256};
use support::{Garage, GarageImages, TestStore, start_garage};

fn options() -> SyncOptions {
    SyncOptions {
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        ..SyncOptions::default()
    }
}

/// Deterministic content of `len` bytes that differs per `seed`.
fn content(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3] ^ seed)
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn put(store: &Arc<dyn ObjectStore>, key: &str, bytes: &[u8]) {
    store
        .put(&ObjectPath::from(key), bytes.to_vec().into())
        .await
        .unwrap();
}

async fn put_with_sha256(store: &Arc<dyn ObjectStore>, key: &str, bytes: &[u8], sha256: &str) {
    let mut attributes = Attributes::new();
    attributes.insert(
        Attribute::Metadata("sha256".into()),
        sha256.to_owned().into(),
    );
    let options = PutOptions {
        attributes,
        ..PutOptions::default()
    };
    store
        .put_opts(&ObjectPath::from(key), bytes.to_vec().into(), options)
        .await
        .unwrap();
}

struct Setup {
    garage: Garage,
    store: Arc<dyn ObjectStore>,
    test_store: Arc<TestStore>,
    images: tempfile::TempDir,
    sync: ImageSync,
}

fn setup() -> Option<Setup> {
    let garage = start_garage()?;
    let store = garage.store();
    let test_store = TestStore::new(Arc::clone(&store));
    let images = tempfile::tempdir().unwrap();
    let sync = ImageSync::with_store(
        Arc::clone(&test_store) as Arc<dyn ObjectStore>,
        "s3://images",
        images.path(),
        options(),
    );
    Some(Setup {
        garage,
        store,
        test_store,
        images,
        sync,
    })
}

fn ready_version(outcome: Option<&ImageOutcome>) -> (String, ReadyVia) {
    match outcome {
        Some(ImageOutcome::Ready { version, via }) => (version.clone(), *via),
        other => panic!("expected a ready image, got {other:?}"),
    }
}

fn dir_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn first_download_installs_image_and_record() {
    let Some(s) = setup() else { return };
    let bytes = content(300_000, 1);
    put(&s.store, "rootfs/app.ext4", &bytes).await;
    let path = s.images.path().join("rootfs/app.ext4");

    let report = s.sync.sync(&[&path]).await;

    let (version, via) = ready_version(report.get(&path));
    assert_eq!(via, ReadyVia::Downloaded);
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    let record: SyncRecord = serde_json::from_slice(
        &std::fs::read(s.images.path().join("rootfs/app.ext4.firework.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(record.key, "rootfs/app.ext4");
    assert_eq!(record.size, bytes.len() as u64);
    assert_eq!(record.sha256.as_deref(), Some(sha256_hex(&bytes).as_str()));
    assert!(!record.verified, "no digest was published");
    assert_eq!(version, record.version());
    assert!(version.starts_with("etag="), "{version}");
    // Only the image and its record are left; no partial files.
    assert_eq!(
        dir_names(&s.images.path().join("rootfs")),
        vec!["app.ext4", "app.ext4.firework.json"]
    );
    let metrics = s.sync.metrics();
    assert_eq!(metrics.downloads, 1);
    assert_eq!(metrics.download_bytes, bytes.len() as u64);
    assert_eq!(metrics.failures_total(), 0);
}

#[tokio::test]
async fn unchanged_image_transfers_no_body() {
    let Some(s) = setup() else { return };
    let bytes = content(200_000, 2);
    put(&s.store, "app.ext4", &bytes).await;
    let path = s.images.path().join("app.ext4");
    let first = s.sync.sync(&[&path]).await;
    let (first_version, _) = ready_version(first.get(&path));
    s.test_store.reset();

    let second = s.sync.sync(&[&path]).await;

    let (second_version, via) = ready_version(second.get(&path));
    assert_eq!(via, ReadyVia::Unchanged);
    assert_eq!(second_version, first_version);
    assert_eq!(s.test_store.body_gets("app.ext4"), vec![]);
    assert_eq!(s.test_store.body_bytes.load(Ordering::SeqCst), 0);
    let heads = s.test_store.gets.lock().unwrap().len();
    assert_eq!(heads, 1, "one metadata request and nothing else");
    assert_eq!(s.sync.metrics().unchanged, 1);
}

#[tokio::test]
async fn changed_object_installs_new_inode() {
    let Some(s) = setup() else { return };
    let old = content(100_000, 3);
    let new = content(120_000, 4);
    put(&s.store, "app.ext4", &old).await;
    let path = s.images.path().join("app.ext4");
    let first = s.sync.sync(&[&path]).await;
    let (old_version, _) = ready_version(first.get(&path));
    // A running VM keeps the image open.
    let mut handle = std::fs::File::open(&path).unwrap();
    let old_inode = std::fs::metadata(&path).unwrap().ino();

    put(&s.store, "app.ext4", &new).await;
    let second = s.sync.sync(&[&path]).await;

    let (new_version, via) = ready_version(second.get(&path));
    assert_eq!(via, ReadyVia::Downloaded);
    assert_ne!(new_version, old_version);
    assert_eq!(std::fs::read(&path).unwrap(), new);
    assert_ne!(std::fs::metadata(&path).unwrap().ino(), old_inode);
    let mut seen = Vec::new();
    handle.read_to_end(&mut seen).unwrap();
    assert_eq!(seen, old, "the open handle still reads the old content");
}

#[tokio::test]
async fn interrupted_download_resumes_with_range() {
    let Some(s) = setup() else { return };
    let bytes = content(5 * 1024 * 1024 + 17, 5);
    put(&s.store, "big.ext4", &bytes).await;
    let path = s.images.path().join("big.ext4");
    let cut = 3 * 1024 * 1024 + 5;
    s.test_store.break_once("big.ext4", cut);

    let report = s.sync.sync(&[&path]).await;

    let (_, via) = ready_version(report.get(&path));
    assert_eq!(via, ReadyVia::Downloaded);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bytes,
        "byte-exact after resume"
    );
    let gets = s.test_store.body_gets("big.ext4");
    assert_eq!(gets.len(), 2, "{gets:?}");
    assert_eq!(gets[0].range, None);
    assert_eq!(gets[1].range, Some(GetRange::Offset(cut as u64)));
    assert!(
        gets[1].if_match.is_some(),
        "the resume is bound to the ETag"
    );
    assert_eq!(
        s.test_store.body_bytes.load(Ordering::SeqCst),
        bytes.len(),
        "no byte was transferred twice"
    );
    let metrics = s.sync.metrics();
    assert_eq!(metrics.resumes, 1);
    assert_eq!(metrics.retries, 1);
}

#[tokio::test]
async fn partial_file_resumes_on_next_sync() {
    let Some(s) = setup() else { return };
    let bytes = content(4 * 1024 * 1024, 6);
    put(&s.store, "big.ext4", &bytes).await;
    let path = s.images.path().join("big.ext4");
    // One attempt only, so the broken stream fails the first sync.
    let sync = ImageSync::with_store(
        Arc::clone(&s.test_store) as Arc<dyn ObjectStore>,
        "s3://images",
        s.images.path(),
        SyncOptions {
            max_attempts: 1,
            ..options()
        },
    );
    let cut = 2 * 1024 * 1024 + 3;
    s.test_store.break_once("big.ext4", cut);

    let first = sync.sync(&[&path]).await;
    let error = first.get(&path).unwrap().error().expect("first sync fails");
    assert_eq!(error.kind(), ImageErrorKind::Unreachable);
    assert!(!path.exists(), "nothing is visible at the final path");
    assert_eq!(
        std::fs::metadata(s.images.path().join(".big.ext4.firework-partial"))
            .unwrap()
            .len(),
        cut as u64
    );

    let second = sync.sync(&[&path]).await;
    let (_, via) = ready_version(second.get(&path));
    assert_eq!(via, ReadyVia::Downloaded);
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    let gets = s.test_store.body_gets("big.ext4");
    assert_eq!(
        gets.last().unwrap().range,
        Some(GetRange::Offset(cut as u64))
    );
    assert_eq!(
        dir_names(s.images.path()),
        vec!["big.ext4", "big.ext4.firework.json"]
    );
}

#[tokio::test]
async fn checksum_mismatch_keeps_old_file() {
    let Some(s) = setup() else { return };
    let old = content(50_000, 7);
    put(&s.store, "app.ext4", &old).await;
    put(
        &s.store,
        "app.ext4.sha256",
        format!("{}  app.ext4\n", sha256_hex(&old)).as_bytes(),
    )
    .await;
    let path = s.images.path().join("app.ext4");
    let first = s.sync.sync(&[&path]).await;
    ready_version(first.get(&path));
    let record = std::fs::read(s.images.path().join("app.ext4.firework.json")).unwrap();
    let record: SyncRecord = serde_json::from_slice(&record).unwrap();
    assert!(record.verified, "the .sha256 object was checked");

    // New content whose published digest belongs to other bytes.
    let new = content(60_000, 8);
    let wrong = sha256_hex(b"something else");
    put_with_sha256(&s.store, "app.ext4", &new, &wrong).await;
    let second = s.sync.sync(&[&path]).await;

    let error = second.get(&path).unwrap().error().expect("checksum fails");
    assert_eq!(error.kind(), ImageErrorKind::ChecksumMismatch);
    assert_eq!(
        error.to_string(),
        format!(
            "checksum mismatch for image object app.ext4: expected sha256 {wrong}, got {}; {} was left unchanged",
            sha256_hex(&new),
            path.display()
        )
    );
    assert_eq!(std::fs::read(&path).unwrap(), old, "the old file is intact");
    assert_eq!(
        dir_names(s.images.path()),
        vec!["app.ext4", "app.ext4.firework.json"]
    );
}

#[tokio::test]
async fn metadata_checksum_verifies_download() {
    let Some(s) = setup() else { return };
    let bytes = content(70_000, 9);
    put_with_sha256(&s.store, "app.ext4", &bytes, &sha256_hex(&bytes)).await;
    let path = s.images.path().join("app.ext4");

    let report = s.sync.sync(&[&path]).await;

    ready_version(report.get(&path));
    let record: SyncRecord = serde_json::from_slice(
        &std::fs::read(s.images.path().join("app.ext4.firework.json")).unwrap(),
    )
    .unwrap();
    assert!(record.verified);
    // The digest came from the metadata, so no .sha256 object was requested.
    assert_eq!(s.test_store.body_gets("app.ext4.sha256"), vec![]);
}

#[tokio::test]
async fn missing_object_fails_not_found() {
    let Some(s) = setup() else { return };
    let path = s.images.path().join("missing.ext4");

    let report = s.sync.sync(&[&path]).await;

    let error = report.get(&path).unwrap().error().expect("missing fails");
    assert_eq!(error.kind(), ImageErrorKind::NotFound);
    assert_eq!(
        error.to_string(),
        format!(
            "image object missing.ext4 not found in s3://images and no local copy exists at {}",
            path.display()
        )
    );
    assert_eq!(dir_names(s.images.path()), Vec::<String>::new());
    assert_eq!(s.sync.metrics().failures(ImageErrorKind::NotFound), 1);
}

#[tokio::test]
async fn missing_object_with_local_file_is_used() {
    let Some(s) = setup() else { return };
    let path = s.images.path().join("vmlinux");
    std::fs::write(&path, b"kernel baked into the machine image").unwrap();

    let report = s.sync.sync(&[&path]).await;

    let (version, via) = ready_version(report.get(&path));
    assert_eq!(via, ReadyVia::LocalOnly);
    assert!(version.starts_with("local,dev="), "{version}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        b"kernel baked into the machine image"
    );

    // A VM writing into the file in place keeps the version, so it is not restarted.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(b" written by the guest")
        .unwrap();
    let report = s.sync.sync(&[&path]).await;
    assert_eq!(ready_version(report.get(&path)).0, version);

    // A new file renamed over it is a new version.
    let replacement = s.images.path().join("vmlinux.new");
    std::fs::write(&replacement, b"a new kernel").unwrap();
    std::fs::rename(&replacement, &path).unwrap();
    let report = s.sync.sync(&[&path]).await;
    assert_ne!(ready_version(report.get(&path)).0, version);
}

#[tokio::test]
async fn one_failing_image_leaves_others_ready() {
    let Some(s) = setup() else { return };
    let a = content(10_000, 10);
    let c = content(20_000, 11);
    put(&s.store, "a.ext4", &a).await;
    put(&s.store, "vmlinux-6.1", &c).await;
    let paths: Vec<PathBuf> = ["a.ext4", "b.ext4", "vmlinux-6.1"]
        .iter()
        .map(|n| s.images.path().join(n))
        .collect();
    // A path outside images_dir and a repeated path are part of the request too.
    let outside = PathBuf::from("/srv/other/rootfs.ext4");
    let mut request = paths.clone();
    request.push(outside.clone());
    request.push(paths[0].clone());

    let report = s.sync.sync(&request).await;

    assert_eq!(report.images.len(), 4);
    ready_version(report.get(&paths[0]));
    ready_version(report.get(&paths[2]));
    let failed: Vec<_> = report
        .failed()
        .map(|(p, e)| (p.clone(), e.kind()))
        .collect();
    assert_eq!(failed, vec![(paths[1].clone(), ImageErrorKind::NotFound)]);
    assert!(matches!(
        report.get(&outside),
        Some(ImageOutcome::NotManaged)
    ));
    assert_eq!(std::fs::read(&paths[0]).unwrap(), a);
    assert_eq!(std::fs::read(&paths[2]).unwrap(), c);
    assert_eq!(
        s.test_store.body_gets("a.ext4").len(),
        1,
        "repeated path synced once"
    );
}

#[tokio::test]
async fn wrong_secret_fails_denied() {
    let Some(s) = setup() else { return };
    put(&s.store, "app.ext4", b"image").await;
    let images = tempfile::tempdir().unwrap();
    let sync = ImageSync::new(
        &s.garage.source_with_secret(&"0".repeat(64)),
        images.path(),
        options(),
    )
    .unwrap();
    let path = images.path().join("app.ext4");

    let report = sync.sync(&[&path]).await;

    let error = report.get(&path).unwrap().error().expect("denied");
    assert_eq!(error.kind(), ImageErrorKind::Denied, "{error:?}");
    assert_eq!(
        error.to_string(),
        "access to image object app.ext4 in s3://images denied"
    );
    assert!(!path.exists());
}

#[tokio::test]
async fn stopped_server_fails_unreachable() {
    let Some(s) = setup() else { return };
    let images = tempfile::tempdir().unwrap();
    let source = s.garage.source();
    drop(s);
    let sync = ImageSync::new(
        &source,
        images.path(),
        SyncOptions {
            max_attempts: 2,
            ..options()
        },
    )
    .unwrap();
    let path = images.path().join("app.ext4");

    let report = sync.sync(&[&path]).await;

    let error = report.get(&path).unwrap().error().expect("unreachable");
    assert_eq!(error.kind(), ImageErrorKind::Unreachable, "{error:?}");
    assert_eq!(
        error.to_string(),
        "image object app.ext4 in s3://images unreachable after 2 attempts"
    );
}

#[tokio::test]
async fn partial_file_of_old_etag_is_discarded() {
    let Some(s) = setup() else { return };
    let old = content(3 * 1024 * 1024, 12);
    put(&s.store, "big.ext4", &old).await;
    let path = s.images.path().join("big.ext4");
    let sync = ImageSync::with_store(
        Arc::clone(&s.test_store) as Arc<dyn ObjectStore>,
        "s3://images",
        s.images.path(),
        SyncOptions {
            max_attempts: 1,
            ..options()
        },
    );
    s.test_store.break_once("big.ext4", 1024 * 1024);
    let first = sync.sync(&[&path]).await;
    assert!(first.get(&path).unwrap().error().is_some());
    assert!(s.images.path().join(".big.ext4.firework-partial").exists());

    // The object changes before the next sync, so the partial bytes belong to old content.
    let new = content(3 * 1024 * 1024 + 9, 13);
    put(&s.store, "big.ext4", &new).await;
    let second = sync.sync(&[&path]).await;

    ready_version(second.get(&path));
    assert_eq!(std::fs::read(&path).unwrap(), new);
    let gets = s.test_store.body_gets("big.ext4");
    assert_eq!(
        gets.last().unwrap().range,
        None,
        "the download started over"
    );
    assert_eq!(
        dir_names(s.images.path()),
        vec!["big.ext4", "big.ext4.firework.json"]
    );
}
