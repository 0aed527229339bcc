//! Garbage collection of synced images that no desired service references.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tracing::{info, warn};

use crate::error::ImageError;
use crate::key::{PARTIAL_SUFFIX, RECORD_SUFFIX, partial_path, partial_record_path, record_path};
use crate::record;
use crate::sync::{ImageSync, normalise};

/// The result of one [`ImageSync::gc`] call.
#[derive(Debug, Default)]
pub struct GcReport {
    /// Image files removed, with their sidecar records and partial downloads.
    pub removed: Vec<PathBuf>,
    /// Bytes freed.
    pub removed_bytes: u64,
    /// Unreferenced images kept because the caller listed them as in use or a process has
    /// them open.
    pub in_use: Vec<PathBuf>,
    /// Unreferenced images whose grace period has not passed yet.
    pub waiting: Vec<PathBuf>,
    /// Files that could not be removed.
    pub errors: Vec<ImageError>,
}

impl ImageSync {
    /// Removes synced images that are not in `referenced` once they have been unreferenced
    /// for `grace`, unless they are in `in_use` or any process has them open.
    ///
    /// Only images this crate installed (those with a `<name>.firework.json` record) and
    /// abandoned partial downloads are candidates; other files in `images_dir` are never
    /// touched. The grace period starts at the first `gc` call that finds the image
    /// unreferenced and is kept in memory, so it starts over when the agent restarts.
    pub async fn gc<P: AsRef<Path>, Q: AsRef<Path>>(
        &self,
        referenced: &[P],
        in_use: &[Q],
        grace: Duration,
    ) -> GcReport {
        let _busy = self.busy.lock().await;
        let now = tokio::time::Instant::now();
        let referenced: HashSet<PathBuf> =
            referenced.iter().map(|p| normalise(p.as_ref())).collect();
        let in_use: HashSet<PathBuf> = in_use.iter().map(|p| normalise(p.as_ref())).collect();
        let images_dir = self.images_dir.clone();
        let candidates =
            match tokio::task::spawn_blocking(move || managed_images(&images_dir)).await {
                Ok(candidates) => candidates,
                Err(error) => {
                    let mut report = GcReport::default();
                    report.errors.push(ImageError::io(
                        "scan",
                        &self.images_dir,
                        std::io::Error::other(error),
                    ));
                    return report;
                }
            };

        let mut report = GcReport::default();
        let mut due = Vec::new();
        {
            let mut since = self
                .unreferenced_since
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            since.retain(|path, _| !referenced.contains(path) && candidates.contains(path));
            for path in candidates {
                if referenced.contains(&path) {
                    continue;
                }
                let first_seen = *since.entry(path.clone()).or_insert(now);
                if now.duration_since(first_seen) < grace {
                    report.waiting.push(path);
                } else if in_use.contains(&path) {
                    report.in_use.push(path);
                } else {
                    due.push(path);
                }
            }
        }
        if due.is_empty() {
            return report;
        }

        let metrics = std::sync::Arc::clone(&self.context.metrics);
        let result = tokio::task::spawn_blocking(move || {
            let open = open_files();
            let mut report = report;
            for path in due {
                if is_open(&path, &open) {
                    info!(path = %path.display(), "unreferenced image is open by a process; keeping it");
                    report.in_use.push(path);
                    continue;
                }
                let bytes = remove_image(&path, &mut report.errors);
                metrics.gc_removed(bytes);
                report.removed_bytes += bytes;
                info!(path = %path.display(), bytes, "removed unreferenced image");
                report.removed.push(path);
            }
            report
        })
        .await;
        match result {
            Ok(report) => {
                let mut since = self
                    .unreferenced_since
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                for path in &report.removed {
                    since.remove(path);
                }
                report
            }
            Err(error) => {
                let mut report = GcReport::default();
                report.errors.push(ImageError::io(
                    "remove images in",
                    &self.images_dir,
                    std::io::Error::other(error),
                ));
                report
            }
        }
    }
}

/// Returns the image paths under `dir` that have a sync record or a partial download.
fn managed_images(dir: &Path) -> HashSet<PathBuf> {
    let mut found = HashSet::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(error) => {
                if error.kind() != std::io::ErrorKind::NotFound {
                    warn!(dir = %dir.display(), %error, "failed to list image directory");
                }
                continue;
            }
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                pending.push(path);
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let partial_record = format!("{PARTIAL_SUFFIX}{RECORD_SUFFIX}");
            let image = if let Some(stem) = name.strip_suffix(&partial_record) {
                stem.strip_prefix('.')
            } else if let Some(stem) = name.strip_suffix(PARTIAL_SUFFIX) {
                stem.strip_prefix('.')
            } else {
                name.strip_suffix(RECORD_SUFFIX)
            };
            if let Some(image) = image.filter(|i| !i.is_empty()) {
                found.insert(dir.join(image));
            }
        }
    }
    found
}

/// Collects the (device, inode) of every file any process has open from `/proc/*/fd`.
/// Processes that exit or deny access during the scan are skipped.
fn open_files() -> HashSet<(u64, u64)> {
    let mut open = HashSet::new();
    let Ok(processes) = std::fs::read_dir("/proc") else {
        warn!("/proc is not readable; only the in-use list protects images from removal");
        return open;
    };
    for process in processes.flatten() {
        let name = process.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(process.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            // metadata follows the link to the open file, which also matches a hard link
            // or a bind mount of the image inside a jail.
            if let Ok(meta) = std::fs::metadata(fd.path()) {
                open.insert((meta.dev(), meta.ino()));
            }
        }
    }
    open
}

fn is_open(path: &Path, open: &HashSet<(u64, u64)>) -> bool {
    std::fs::metadata(path).is_ok_and(|m| open.contains(&(m.dev(), m.ino())))
}

/// Removes the image, its record and any partial download; returns the bytes freed.
fn remove_image(path: &Path, errors: &mut Vec<ImageError>) -> u64 {
    let mut bytes = 0;
    // The record goes last, so a failure leaves it in place and the next call retries.
    for file in [
        path.to_owned(),
        partial_path(path),
        partial_record_path(path),
        record_path(path),
    ] {
        let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        match record::remove_if_exists(&file) {
            Ok(()) => bytes += size,
            Err(error) => {
                warn!(error = %crate::error_chain(&error), "failed to remove image file");
                errors.push(error);
            }
        }
    }
    bytes
}
