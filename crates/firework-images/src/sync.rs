//! [`ImageSync`]: the entry point the agent calls on every tick.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use object_store::ObjectStore;
use tokio::sync::Mutex;
use tracing::{Instrument, error, info, info_span};

use crate::download::{Context, ReadyVia, sync_image};
use crate::error::ImageError;
use crate::key::{Placement, place};
use crate::metrics::{MetricsSnapshot, SyncMetrics};
use crate::source::ImageSource;

/// Tuning of [`ImageSync`].
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// A prefix put before every object key, `/`-separated; empty for the bucket root.
    pub key_prefix: String,
    /// Images downloaded at the same time.
    pub max_parallel: usize,
    /// Attempts of one request or one download before the image fails as unreachable.
    pub max_attempts: u32,
    /// The wait before the second attempt; it doubles after each failure.
    pub initial_backoff: Duration,
    /// The maximum wait between two attempts.
    pub max_backoff: Duration,
    /// A transfer that receives nothing for this long counts as broken and is resumed.
    pub read_timeout: Duration,
    /// The time between two progress log lines of one download.
    pub progress_interval: Duration,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            key_prefix: String::new(),
            max_parallel: 4,
            max_attempts: 4,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            read_timeout: Duration::from_secs(60),
            progress_interval: Duration::from_secs(5),
        }
    }
}

/// The state of one image after a sync.
#[derive(Debug)]
pub enum ImageOutcome {
    /// The file at the path has the content `version`.
    Ready {
        /// The content version to fold into the spec hash of each service that uses the
        /// image: `etag=<etag>,size=<bytes>` for a synced image,
        /// `local,dev=<device>,ino=<inode>` for a file that exists only locally.
        version: String,
        /// Whether it was downloaded, already current, or only local.
        via: ReadyVia,
    },
    /// The path lies outside `images_dir`; it is not synced and used as it is.
    NotManaged,
    /// The image could not be made ready; services that use it must wait.
    Failed(ImageError),
}

impl ImageOutcome {
    /// Returns the content version when the image is ready.
    pub fn version(&self) -> Option<&str> {
        match self {
            ImageOutcome::Ready { version, .. } => Some(version),
            _ => None,
        }
    }

    /// Returns whether services that use the image may start: it is ready or not managed.
    pub fn is_usable(&self) -> bool {
        !matches!(self, ImageOutcome::Failed(_))
    }

    /// Returns the error of a failed image.
    pub fn error(&self) -> Option<&ImageError> {
        match self {
            ImageOutcome::Failed(error) => Some(error),
            _ => None,
        }
    }
}

/// The outcome of every image of one [`ImageSync::sync`] call, keyed by normalised path.
#[derive(Debug, Default)]
pub struct SyncReport {
    /// One entry per distinct path.
    pub images: BTreeMap<PathBuf, ImageOutcome>,
}

impl SyncReport {
    /// Returns the outcome of `path`, or `None` when it was not part of the call.
    pub fn get(&self, path: &Path) -> Option<&ImageOutcome> {
        self.images.get(&normalise(path))
    }

    /// Returns the failed images.
    pub fn failed(&self) -> impl Iterator<Item = (&PathBuf, &ImageError)> {
        self.images
            .iter()
            .filter_map(|(path, outcome)| outcome.error().map(|e| (path, e)))
    }
}

/// Drops repeated separators and trailing slashes so equal paths compare equal.
pub(crate) fn normalise(path: &Path) -> PathBuf {
    path.components().collect()
}

/// Keeps the images under `images_dir` in step with an object store.
#[derive(Debug)]
pub struct ImageSync {
    pub(crate) images_dir: PathBuf,
    pub(crate) context: Arc<Context>,
    /// Serialises `sync` and `gc`, because both touch the same files.
    pub(crate) busy: Mutex<()>,
    /// When each managed image was first seen unreferenced by `gc`.
    pub(crate) unreferenced_since: std::sync::Mutex<HashMap<PathBuf, tokio::time::Instant>>,
}

impl ImageSync {
    /// Connects to `source`; no request is sent yet. `images_dir` is created on the first
    /// download.
    pub fn new(
        source: &ImageSource,
        images_dir: impl Into<PathBuf>,
        options: SyncOptions,
    ) -> Result<ImageSync, ImageError> {
        let store = source.build(options.read_timeout)?;
        Ok(ImageSync::with_store(
            store,
            source.name(),
            images_dir,
            options,
        ))
    }

    /// Uses an existing client; `source_name` appears in logs and errors.
    pub fn with_store(
        store: Arc<dyn ObjectStore>,
        source_name: impl Into<String>,
        images_dir: impl Into<PathBuf>,
        options: SyncOptions,
    ) -> ImageSync {
        ImageSync {
            images_dir: normalise(&images_dir.into()),
            context: Arc::new(Context {
                store,
                source_name: source_name.into(),
                options,
                metrics: Arc::new(SyncMetrics::default()),
            }),
            busy: Mutex::new(()),
            unreferenced_since: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Returns the directory images are synced into.
    pub fn images_dir(&self) -> &Path {
        &self.images_dir
    }

    /// Returns the counters of every call so far.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.context.metrics.snapshot()
    }

    /// Maps an image path to its object key; `None` when it lies outside `images_dir`.
    pub fn object_key(&self, path: &Path) -> Result<Option<String>, ImageError> {
        match place(
            &self.images_dir,
            &self.context.options.key_prefix,
            &normalise(path),
        )? {
            Placement::Managed { key } => Ok(Some(key)),
            Placement::Outside => Ok(None),
        }
    }

    /// Brings every image in `paths` up to date, up to `max_parallel` at a time. Each path
    /// gets its own outcome, so one failure blocks only the services that use that image.
    /// Repeated paths are synced once.
    pub async fn sync<P: AsRef<Path>>(&self, paths: &[P]) -> SyncReport {
        let _busy = self.busy.lock().await;
        let started = Instant::now();
        let mut report = SyncReport::default();
        let mut jobs = Vec::new();
        let mut seen = HashSet::new();
        for path in paths {
            let path = normalise(path.as_ref());
            if path.as_os_str().is_empty() || !seen.insert(path.clone()) {
                continue;
            }
            let outcome = match place(&self.images_dir, &self.context.options.key_prefix, &path) {
                Ok(Placement::Managed { key }) => {
                    jobs.push((path.clone(), key));
                    continue;
                }
                Ok(Placement::Outside) => ImageOutcome::NotManaged,
                Err(error) => {
                    self.context.metrics.failure(error.kind());
                    error!(path = %path.display(), error = %crate::error_chain(&error), "image not synced");
                    ImageOutcome::Failed(error)
                }
            };
            report.images.insert(path, outcome);
        }
        let context = &self.context;
        let results: Vec<(PathBuf, ImageOutcome)> = futures::stream::iter(jobs)
            .map(|(path, key)| {
                let span = info_span!("image_sync", key = %key, path = %path.display());
                async move {
                    let outcome = match sync_image(context, &key, &path).await {
                        Ok((version, via)) => {
                            if via == ReadyVia::Unchanged {
                                context.metrics.unchanged();
                            }
                            ImageOutcome::Ready { version, via }
                        }
                        Err(error) => {
                            context.metrics.failure(error.kind());
                            error!(error = %crate::error_chain(&error), "image sync failed");
                            ImageOutcome::Failed(error)
                        }
                    };
                    (path, outcome)
                }
                .instrument(span)
            })
            .buffer_unordered(context.options.max_parallel.max(1))
            .collect()
            .await;
        report.images.extend(results);

        let elapsed = started.elapsed();
        self.context.metrics.sync_run(elapsed);
        let failed = report.failed().count();
        info!(
            images = report.images.len(),
            failed,
            elapsed_ms = elapsed.as_millis() as u64,
            "image sync finished"
        );
        report
    }
}
