//! The Git store: node configs in a branch of a Git repository.
//!
//! One bare clone lives at the configured clone directory (usually `<state_dir>/config-repo`).
//! Each sync fetches the branch with depth 1 through a forced refspec, so force-pushes are
//! followed, and every file of the call is read from that one commit without a work tree.

mod auth;
mod fetch;

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use gix::ObjectId;
use tracing::{Instrument, debug, info, info_span, warn};

use auth::Redactor;
pub use auth::{FIREWORK_GIT_TOKEN, GITHUB_TOKEN, Secret, redact_url, token_for_url};
use fetch::GitFailure;

use crate::error::{Backend, MessageError, StoreError, StoreErrorKind, Subject};
use crate::index::{IndexSnapshot, PlacementIndex};
use crate::name::{INDEX_FILE, NODES_DIR, check_label, label_from_file_name, node_config_path};
use crate::retry::Backoff;
use crate::store::{ConfigStore, LabelResult, Listing, Revision, decode_entry};

/// Settings of a [`GitStore`].
#[derive(Debug, Clone)]
pub struct GitSettings {
    /// The repository URL: `https://`, `http://`, `git://`, `ssh://`, `user@host:path`,
    /// `file://` or a local path.
    pub url: String,
    /// The branch that contains `nodes/`.
    pub branch: String,
    /// The directory of the bare clone, kept between fetches.
    pub clone_dir: PathBuf,
    /// The host that receives `GITHUB_TOKEN`.
    pub github_host: String,
    /// The token sent as the password of user `x-access-token` over HTTPS.
    pub token: Option<Secret>,
    /// The time limit of one fetch attempt.
    pub fetch_timeout: Duration,
    /// Retries of a fetch that failed because the remote was unreachable.
    pub backoff: Backoff,
    /// The fetch depth; `None` fetches full history.
    pub depth: Option<NonZeroU32>,
    /// How long a fetched commit is reused by later calls before the next fetch, so that
    /// `fetch`, `list_all` and `fetch_index` in one agent tick cost one fetch.
    pub reuse_window: Duration,
}

impl GitSettings {
    /// Settings with defaults for `url` and `branch`, keeping the clone in
    /// `<state_dir>/config-repo`. No token is set; see [`GitSettings::with_env_token`].
    pub fn new(
        url: impl Into<String>,
        branch: impl Into<String>,
        state_dir: impl Into<PathBuf>,
    ) -> GitSettings {
        GitSettings {
            url: url.into(),
            branch: branch.into(),
            clone_dir: state_dir.into().join("config-repo"),
            github_host: "github.com".to_owned(),
            token: None,
            fetch_timeout: Duration::from_secs(60),
            backoff: Backoff::default(),
            depth: NonZeroU32::new(1),
            reuse_window: Duration::from_secs(2),
        }
    }

    /// Sets the token from `FIREWORK_GIT_TOKEN` or `GITHUB_TOKEN` as [`token_for_url`] picks it.
    pub fn with_env_token(mut self) -> GitSettings {
        self.token = token_for_url(&self.url, &self.github_host, |key| std::env::var(key).ok());
        self
    }
}

/// Node configs in a Git branch. The revision of every entry is the commit id.
#[derive(Debug)]
pub struct GitStore {
    settings: GitSettings,
    redactor: Redactor,
    redacted_url: String,
    state: tokio::sync::Mutex<SyncState>,
    /// Held by the blocking thread for the whole fetch, so a fetch that outlived its timeout
    /// finishes before the next one touches the clone.
    clone_lock: Arc<StdMutex<()>>,
    fetches: AtomicU64,
    /// True while a blocking fetch runs, including one that outlived its timeout.
    fetch_in_flight: Arc<AtomicBool>,
    last_index: StdMutex<Option<IndexSnapshot>>,
}

#[derive(Debug, Default)]
struct SyncState {
    commit: Option<ObjectId>,
    fetched_at: Option<tokio::time::Instant>,
}

impl GitStore {
    /// Creates a store; nothing is fetched until the first read.
    pub fn new(settings: GitSettings) -> Result<GitStore, StoreError> {
        let invalid = |reason: String| {
            StoreError::new(
                StoreErrorKind::InvalidSettings,
                Backend::Git,
                Subject::Store,
                MessageError(reason),
            )
        };
        if settings.url.trim().is_empty() {
            return Err(invalid("store_url is empty".to_owned()));
        }
        if settings.branch.is_empty()
            || settings.branch.starts_with(['-', '/'])
            || settings
                .branch
                .contains(['*', ':', '?', '[', '\\', '^', '~', ' '])
            || settings.branch.contains("..")
        {
            return Err(invalid(format!(
                "invalid store_branch `{}`",
                settings.branch
            )));
        }
        let redactor = Redactor::new(&settings.url, settings.token.as_ref());
        Ok(GitStore {
            redacted_url: redact_url(&settings.url),
            redactor,
            settings,
            state: tokio::sync::Mutex::new(SyncState::default()),
            clone_lock: Arc::new(StdMutex::new(())),
            fetches: AtomicU64::new(0),
            fetch_in_flight: Arc::new(AtomicBool::new(false)),
            last_index: StdMutex::new(None),
        })
    }

    /// The number of fetches sent to the remote so far, retries included.
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// The commit of the last successful fetch.
    pub async fn current_commit(&self) -> Option<String> {
        self.state.lock().await.commit.map(|id| id.to_string())
    }

    fn error(&self, subject: Subject, failure: GitFailure) -> StoreError {
        StoreError::new(
            failure.kind,
            Backend::Git,
            subject,
            MessageError(self.redactor.redact(&failure.message)),
        )
        .at(self.redacted_url.clone())
    }

    /// Fetches the branch unless a fetch within the reuse window already did, and returns
    /// the commit to read from.
    async fn sync(&self) -> Result<ObjectId, StoreError> {
        let mut state = self.state.lock().await;
        if let (Some(commit), Some(at)) = (state.commit, state.fetched_at)
            && at.elapsed() < self.settings.reuse_window
        {
            debug!(revision = %commit, "reusing recent fetch");
            return Ok(commit);
        }
        let commit = self
            .settings
            .backoff
            .run("git fetch", || self.fetch_once())
            .await?;
        if state.commit != Some(commit) {
            info!(backend = "git", revision = %commit, url = %self.redacted_url, "fetched new commit");
        }
        state.commit = Some(commit);
        state.fetched_at = Some(tokio::time::Instant::now());
        Ok(commit)
    }

    async fn fetch_once(&self) -> Result<ObjectId, StoreError> {
        // A fetch stuck in a network read holds its thread until the connection fails. Starting
        // no second one keeps a hung remote from using up the blocking thread pool.
        if self
            .fetch_in_flight
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(self.error(
                Subject::Store,
                GitFailure {
                    kind: StoreErrorKind::Unreachable,
                    message: "the previous fetch has not finished yet".to_owned(),
                },
            ));
        }
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let interrupt = Arc::new(AtomicBool::new(false));
        let task = {
            let interrupt = Arc::clone(&interrupt);
            let in_flight = InFlight(Arc::clone(&self.fetch_in_flight));
            let lock = Arc::clone(&self.clone_lock);
            let dir = self.settings.clone_dir.clone();
            let url = self.settings.url.clone();
            let branch = self.settings.branch.clone();
            let token = self.settings.token.clone();
            let depth = self.settings.depth;
            tokio::task::spawn_blocking(move || {
                let _in_flight = in_flight;
                let _guard = lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                fetch::fetch_branch(&dir, &url, &branch, token.as_ref(), depth, &interrupt)
            })
        };
        match tokio::time::timeout(self.settings.fetch_timeout, task).await {
            Ok(Ok(result)) => result.map_err(|failure| self.error(Subject::Store, failure)),
            Ok(Err(join)) => Err(self.error(
                Subject::Store,
                GitFailure {
                    kind: StoreErrorKind::Unreachable,
                    message: format!("fetch task failed: {join}"),
                },
            )),
            Err(_) => {
                // NOTE: gix checks this flag between protocol steps; a read blocked inside the
                // transport ends only when the connection fails or delivers data.
                interrupt.store(true, Ordering::Relaxed);
                Err(self.error(
                    Subject::Store,
                    GitFailure {
                        kind: StoreErrorKind::Unreachable,
                        message: format!("fetch timed out after {:?}", self.settings.fetch_timeout),
                    },
                ))
            }
        }
    }

    /// Runs a blocking read of the clone under the clone lock.
    async fn read_blocking<T, F>(&self, read: F) -> Result<T, GitFailure>
    where
        T: Send + 'static,
        F: FnOnce(&std::path::Path) -> Result<T, GitFailure> + Send + 'static,
    {
        let lock = Arc::clone(&self.clone_lock);
        let dir = self.settings.clone_dir.clone();
        tokio::task::spawn_blocking(move || {
            let _guard = lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            read(&dir)
        })
        .await
        .unwrap_or_else(|join| {
            Err(GitFailure {
                kind: StoreErrorKind::Unreachable,
                message: format!("read task failed: {join}"),
            })
        })
    }

    async fn fetch_labels(&self, labels: &[String]) -> Vec<LabelResult> {
        let commit = match self.sync().await {
            Ok(commit) => commit,
            Err(error) => {
                warn!(backend = "git", error = %crate::error_chain(&error), "fetch failed, no label read");
                return labels
                    .iter()
                    .map(|label| Err(error.for_subject(Subject::Label(label.clone()))))
                    .collect();
            }
        };
        let revision = Revision(commit.to_string());
        let valid: Vec<String> = labels
            .iter()
            .filter(|label| check_label(Backend::Git, label).is_ok())
            .cloned()
            .collect();
        let read = self
            .read_blocking(move |dir| {
                let files: Vec<_> = valid
                    .into_iter()
                    .map(|label| {
                        let bytes = fetch::read_file(dir, commit, &node_config_path(&label));
                        (label, bytes)
                    })
                    .collect();
                Ok(files)
            })
            .await;
        let mut files = match read {
            Ok(files) => files,
            Err(failure) => {
                let error = self.error(Subject::Store, failure);
                return labels
                    .iter()
                    .map(|label| Err(error.for_subject(Subject::Label(label.clone()))))
                    .collect();
            }
        };
        let mut results = Vec::with_capacity(labels.len());
        for label in labels {
            if let Err(error) = check_label(Backend::Git, label) {
                results.push(Err(error));
                continue;
            }
            let position = files.iter().position(|(name, _)| name == label);
            let bytes = position.map(|p| files.swap_remove(p).1);
            results.push(self.entry_from_file(label, &revision, bytes));
        }
        results
    }

    fn entry_from_file(
        &self,
        label: &str,
        revision: &Revision,
        file: Option<Result<Option<Vec<u8>>, GitFailure>>,
    ) -> LabelResult {
        let path = node_config_path(label);
        let subject = Subject::Label(label.to_owned());
        let result = match file {
            Some(Ok(Some(bytes))) => {
                decode_entry(Backend::Git, label, revision.clone(), &bytes, &path)
            }
            Some(Ok(None)) | None => Err(StoreError::new(
                StoreErrorKind::NotFound,
                Backend::Git,
                subject,
                MessageError(format!("{path} does not exist in commit {revision}")),
            )
            .at(self.redacted_url.clone())),
            Some(Err(failure)) => Err(self.error(subject, failure)),
        };
        match &result {
            Ok(_) => debug!(backend = "git", label, %revision, "read node config"),
            Err(error) => {
                warn!(backend = "git", label, %revision, error = %crate::error_chain(error), "node config read failed")
            }
        }
        result
    }

    async fn list(&self) -> Result<Listing, StoreError> {
        let commit = self.sync().await?;
        let revision = Revision(commit.to_string());
        let files = self
            .read_blocking(move |dir| {
                let names = fetch::list_files(dir, commit, NODES_DIR)?;
                let mut files = Vec::new();
                for name in names {
                    if let Some(label) = label_from_file_name(&name) {
                        let bytes = fetch::read_file(dir, commit, &node_config_path(label));
                        files.push((label.to_owned(), bytes));
                    }
                }
                Ok(files)
            })
            .await
            .map_err(|failure| self.error(Subject::Listing, failure))?;
        let mut listing: Listing = files
            .into_iter()
            .map(|(label, bytes)| self.entry_from_file(&label, &revision, Some(bytes)))
            .collect();
        listing.sort_by(|a, b| entry_label(a).cmp(entry_label(b)));
        Ok(listing)
    }

    async fn read_index(&self) -> Result<IndexSnapshot, StoreError> {
        let commit = self.sync().await?;
        let revision = Revision(commit.to_string());
        if let Some(previous) = self
            .last_index
            .lock()
            .map_err(|_| crate::local::poisoned(Subject::Index))?
            .as_ref()
            .filter(|p| p.revision == revision)
        {
            return Ok(IndexSnapshot {
                changed: false,
                ..previous.clone()
            });
        }
        let bytes = self
            .read_blocking(move |dir| fetch::read_file(dir, commit, INDEX_FILE))
            .await
            .map_err(|failure| self.error(Subject::Index, failure))?
            .ok_or_else(|| {
                StoreError::new(
                    StoreErrorKind::NotFound,
                    Backend::Git,
                    Subject::Index,
                    MessageError(format!("{INDEX_FILE} does not exist in commit {revision}")),
                )
                .at(self.redacted_url.clone())
            })?;
        let index = PlacementIndex::from_json(&bytes).map_err(|reason| {
            StoreError::new(
                StoreErrorKind::InvalidContent,
                Backend::Git,
                Subject::Index,
                MessageError(reason),
            )
            .at(INDEX_FILE)
        })?;
        let snapshot = IndexSnapshot {
            revision,
            index: Arc::new(index),
            changed: true,
        };
        if let Ok(mut last) = self.last_index.lock() {
            *last = Some(snapshot.clone());
        }
        Ok(snapshot)
    }
}

/// Clears the in-flight flag when the blocking fetch ends, also by panic.
struct InFlight(Arc<AtomicBool>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

fn entry_label(result: &LabelResult) -> &str {
    match result {
        Ok(entry) => &entry.label,
        Err(error) => error.label().unwrap_or_default(),
    }
}

impl ConfigStore for GitStore {
    fn backend(&self) -> Backend {
        Backend::Git
    }

    fn fetch<'a>(&'a self, labels: &'a [String]) -> BoxFuture<'a, Vec<LabelResult>> {
        self.fetch_labels(labels)
            .instrument(info_span!(
                "fetch_node_configs",
                backend = "git",
                labels = labels.len()
            ))
            .boxed()
    }

    fn list_all(&self) -> BoxFuture<'_, Result<Listing, StoreError>> {
        self.list()
            .instrument(info_span!("list_node_configs", backend = "git"))
            .boxed()
    }

    fn fetch_index(&self) -> BoxFuture<'_, Result<IndexSnapshot, StoreError>> {
        self.read_index()
            .instrument(info_span!("fetch_index", backend = "git"))
            .boxed()
    }
}
