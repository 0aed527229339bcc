//! Throughput and peak memory of syncing one large image from Garage on loopback, compared
//! with a plain streaming GET of the same object in the same run.
//!
//! Run: `cargo bench -p firework-images --bench sync_1gib`. The size defaults to 1024 MiB;
//! `FIREWORK_IMAGES_BENCH_MIB` overrides it. Needs `garage` (see `.ci/setup-garage.sh`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::Instant;

use firework_images::{ImageSync, SyncOptions};
use futures::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use support::GarageImages;

const MIB: usize = 1024 * 1024;
const ROUNDS: usize = 2;

/// Reads a `kB` field of `/proc/self/status`, in bytes.
fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("{field} missing from /proc/self/status"));
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib * 1024
}

/// Resets the peak RSS (`VmHWM`) to the current RSS.
fn reset_peak_rss() {
    std::fs::write("/proc/self/clear_refs", "5").expect("write /proc/self/clear_refs");
}

async fn upload(store: &Arc<dyn ObjectStore>, key: &str, size: usize) {
    let upload = store.put_multipart(&ObjectPath::from(key)).await.unwrap();
    let mut writer = WriteMultipart::new_with_chunk_size(upload, 16 * MIB);
    let mut chunk = vec![0u8; 8 * MIB];
    let mut written = 0;
    let mut seed = 0u32;
    while written < size {
        for (i, byte) in chunk.iter_mut().enumerate() {
            *byte = (i as u32 ^ seed).wrapping_mul(2_654_435_761).to_le_bytes()[3];
        }
        seed += 1;
        let n = chunk.len().min(size - written);
        writer.wait_for_capacity(2).await.unwrap();
        writer.write(&chunk[..n]);
        written += n;
    }
    writer.finish().await.unwrap();
}

async fn plain_get(store: &Arc<dyn ObjectStore>, key: &str) -> (u64, f64) {
    let started = Instant::now();
    let mut stream = store
        .get(&ObjectPath::from(key))
        .await
        .unwrap()
        .into_stream();
    let mut bytes = 0u64;
    while let Some(chunk) = stream.next().await {
        bytes += chunk.unwrap().len() as u64;
    }
    (bytes, started.elapsed().as_secs_f64())
}

/// Writes the same GET to a file and fsyncs it, the disk-bound floor of any durable sync.
async fn plain_get_to_file(store: &Arc<dyn ObjectStore>, key: &str, file: &std::path::Path) -> f64 {
    use std::io::Write;
    let started = Instant::now();
    let mut out = std::fs::File::create(file).unwrap();
    let mut stream = store
        .get(&ObjectPath::from(key))
        .await
        .unwrap()
        .into_stream();
    while let Some(chunk) = stream.next().await {
        out.write_all(&chunk.unwrap()).unwrap();
    }
    out.sync_all().unwrap();
    let seconds = started.elapsed().as_secs_f64();
    std::fs::remove_file(file).unwrap();
    seconds
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    let Some(garage) = support::start_garage() else {
        return;
    };
    let size_mib: usize = std::env::var("FIREWORK_IMAGES_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let size = size_mib * MIB;
    let store = garage.store();
    let key = "bench/rootfs.ext4";
    let started = Instant::now();
    upload(&store, key, size).await;
    println!(
        "uploaded {size_mib} MiB in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let mut best_get = f64::MAX;
    let mut best_file = f64::MAX;
    let mut best_sync = f64::MAX;
    let mut max_growth = 0u64;
    for round in 1..=ROUNDS {
        let (bytes, get_seconds) = plain_get(&store, key).await;
        assert_eq!(bytes, size as u64);

        let images = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
        let file_seconds = plain_get_to_file(&store, key, &images.path().join("plain")).await;
        let sync = ImageSync::new(&garage.source(), images.path(), SyncOptions::default()).unwrap();
        let path = images.path().join(key);
        reset_peak_rss();
        let rss_before = status_bytes("VmRSS:");
        let sync_started = Instant::now();
        let report = sync.sync(&[&path]).await;
        let sync_seconds = sync_started.elapsed().as_secs_f64();
        let peak = status_bytes("VmHWM:");
        assert_eq!(report.failed().count(), 0, "{report:?}");
        assert_eq!(std::fs::metadata(&path).unwrap().len(), size as u64);
        let growth = peak.saturating_sub(rss_before);

        let mib = size as f64 / MIB as f64;
        println!(
            "round {round}: plain GET {:.0} MiB/s ({get_seconds:.2} s), GET to file + fsync {:.0} MiB/s ({file_seconds:.2} s), sync {:.0} MiB/s ({sync_seconds:.2} s, sha256 + fsync + rename), ratio {:.2}, peak RSS growth during sync {:.1} MiB",
            mib / get_seconds,
            mib / file_seconds,
            mib / sync_seconds,
            get_seconds / sync_seconds,
            growth as f64 / MIB as f64,
        );
        best_get = best_get.min(get_seconds);
        best_file = best_file.min(file_seconds);
        best_sync = best_sync.min(sync_seconds);
        max_growth = max_growth.max(growth);
    }
    let mib = size as f64 / MIB as f64;
    println!(
        "best of {ROUNDS}: plain GET {:.0} MiB/s, GET to file + fsync {:.0} MiB/s, sync {:.0} MiB/s; sync/GET ratio {:.2}, sync/(GET to file) ratio {:.2}; max peak RSS growth {:.1} MiB",
        mib / best_get,
        mib / best_file,
        mib / best_sync,
        best_get / best_sync,
        best_file / best_sync,
        max_growth as f64 / MIB as f64,
    );
}
