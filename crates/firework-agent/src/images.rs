//! The image step through `firework-images`: kernels and root file systems under
//! `images_dir` are synced from the image source every tick, and images no service
//! references any more are garbage collected.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use firework_metrics::{AgentMetrics, SyncResult};
use futures::FutureExt;
use futures::future::BoxFuture;
use tracing::{error, info};

use crate::desired::LabeledService;
use crate::hooks::{ImageSync, file_version};

/// Syncs images from the configured source.
#[derive(Debug)]
pub struct SyncedImages {
    sync: firework_images::ImageSync,
    metrics: Arc<AgentMetrics>,
    gc_grace: Duration,
}

impl SyncedImages {
    /// Wraps `sync`; every sync is counted in `metrics`, and garbage collection keeps an
    /// unreferenced image for `gc_grace`.
    pub fn new(
        sync: firework_images::ImageSync,
        metrics: Arc<AgentMetrics>,
        gc_grace: Duration,
    ) -> SyncedImages {
        SyncedImages {
            sync,
            metrics,
            gc_grace,
        }
    }

    /// The version of one image path from the report: the synced content version, the
    /// local file's version when the path is outside `images_dir`, or the error.
    fn version(report: &firework_images::SyncReport, path: &str) -> Result<String, String> {
        match report.get(Path::new(path)) {
            Some(firework_images::ImageOutcome::Ready { version, .. }) => Ok(version.clone()),
            Some(firework_images::ImageOutcome::Failed(error)) => {
                Err(firework_images::error_chain(error))
            }
            Some(firework_images::ImageOutcome::NotManaged) | None => {
                file_version(path).map_err(|error| error.to_string())
            }
        }
    }
}

impl ImageSync for SyncedImages {
    fn sync<'a>(
        &'a self,
        services: &'a [LabeledService],
    ) -> BoxFuture<'a, BTreeMap<String, Result<String, String>>> {
        async move {
            let paths: Vec<PathBuf> = services
                .iter()
                .flat_map(|labeled| {
                    [
                        PathBuf::from(&labeled.service.kernel),
                        PathBuf::from(&labeled.service.image),
                    ]
                })
                .collect();
            let before = self.sync.metrics();
            let started = Instant::now();
            let report = self.sync.sync(&paths).await;
            let after = self.sync.metrics();
            let failed = report.failed().count();
            let result = if failed > 0 {
                SyncResult::Error
            } else if after.downloads > before.downloads {
                SyncResult::Ok
            } else {
                SyncResult::NoChange
            };
            self.metrics.record_image_sync(
                result,
                after.download_bytes.saturating_sub(before.download_bytes),
                started.elapsed(),
            );
            for (path, error) in report.failed() {
                error!(path = %path.display(), error = %firework_images::error_chain(error), "image not ready; services that use it are held");
            }
            let mut versions = BTreeMap::new();
            for labeled in services {
                let service = &labeled.service;
                let version = Self::version(&report, &service.kernel)
                    .map_err(|e| format!("kernel {}: {e}", service.kernel))
                    .and_then(|kernel| {
                        Self::version(&report, &service.image)
                            .map(|image| format!("kernel:{kernel};image:{image}"))
                            .map_err(|e| format!("image {}: {e}", service.image))
                    });
                versions.insert(service.name.clone(), version);
            }
            versions
        }
        .boxed()
    }

    fn collect_garbage<'a>(
        &'a self,
        referenced: &'a [PathBuf],
        in_use: &'a [PathBuf],
    ) -> BoxFuture<'a, ()> {
        async move {
            let report = self.sync.gc(referenced, in_use, self.gc_grace).await;
            if !report.removed.is_empty() {
                info!(removed = ?report.removed, "unreferenced images removed");
            }
        }
        .boxed()
    }
}
