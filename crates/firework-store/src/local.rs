//! The local directory store: `<dir>/nodes/<label>.yaml`, `<dir>/index.json`.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use futures::future::BoxFuture;
use tracing::{Instrument, debug, info_span, warn};

use crate::error::{Backend, MessageError, StoreError, StoreErrorKind, Subject};
use crate::index::{IndexSnapshot, PlacementIndex};
use crate::name::{INDEX_FILE, NODES_DIR, check_label, label_from_file_name, node_config_path};
use crate::store::{ConfigStore, LabelResult, Listing, content_revision, decode_entry};

/// Node configs in a local directory, the default for a single machine.
///
/// Every call reads the files again, so edits are picked up on the next call. The revision of
/// a file is the SHA-256 of its content.
#[derive(Debug)]
pub struct LocalStore {
    root: PathBuf,
    last_index: Mutex<Option<IndexSnapshot>>,
}

impl LocalStore {
    /// Opens a store rooted at `root`, the directory that contains `nodes/`.
    pub fn new(root: impl Into<PathBuf>) -> LocalStore {
        LocalStore {
            root: root.into(),
            last_index: Mutex::new(None),
        }
    }

    /// Returns the directory that contains `nodes/`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    async fn read_label(&self, label: &str) -> LabelResult {
        check_label(Backend::Local, label)?;
        let path = self.root.join(node_config_path(label));
        let bytes = tokio::fs::read(&path)
            .await
            .map_err(|e| io_error(e, Subject::Label(label.to_owned()), &path))?;
        let revision = content_revision(&bytes);
        debug!(label, %revision, "read node config");
        decode_entry(
            Backend::Local,
            label,
            revision,
            &bytes,
            &path.display().to_string(),
        )
    }

    async fn list(&self) -> Result<Listing, StoreError> {
        let dir = self.root.join(NODES_DIR);
        let mut reader = tokio::fs::read_dir(&dir)
            .await
            .map_err(|e| io_error(e, Subject::Listing, &dir))?;
        let mut labels = Vec::new();
        loop {
            let entry = reader
                .next_entry()
                .await
                .map_err(|e| io_error(e, Subject::Listing, &dir))?;
            let Some(entry) = entry else { break };
            let file_name = entry.file_name();
            match file_name.to_str().and_then(label_from_file_name) {
                Some(label) => labels.push(label.to_owned()),
                None => debug!(file = ?file_name, "skipped file that is not a node config"),
            }
        }
        labels.sort();
        let mut listing = Vec::with_capacity(labels.len());
        for label in &labels {
            listing.push(self.read_label(label).await);
        }
        Ok(listing)
    }

    async fn read_index(&self) -> Result<IndexSnapshot, StoreError> {
        let path = self.root.join(INDEX_FILE);
        let bytes = tokio::fs::read(&path)
            .await
            .map_err(|e| io_error(e, Subject::Index, &path))?;
        let revision = content_revision(&bytes);
        let mut last = self
            .last_index
            .lock()
            .map_err(|_| poisoned(Subject::Index))?;
        if let Some(previous) = last.as_ref().filter(|p| p.revision == revision) {
            return Ok(IndexSnapshot {
                changed: false,
                ..previous.clone()
            });
        }
        let index = PlacementIndex::from_json(&bytes).map_err(|reason| {
            StoreError::new(
                StoreErrorKind::InvalidContent,
                Backend::Local,
                Subject::Index,
                MessageError(reason),
            )
            .at(path.display().to_string())
        })?;
        let snapshot = IndexSnapshot {
            revision,
            index: Arc::new(index),
            changed: true,
        };
        *last = Some(snapshot.clone());
        Ok(snapshot)
    }
}

impl ConfigStore for LocalStore {
    fn backend(&self) -> Backend {
        Backend::Local
    }

    fn fetch<'a>(&'a self, labels: &'a [String]) -> BoxFuture<'a, Vec<LabelResult>> {
        async move {
            let mut results = Vec::with_capacity(labels.len());
            for label in labels {
                let span = info_span!("read_label", backend = "local", label = %label);
                let result = self.read_label(label).instrument(span).await;
                if let Err(error) = &result {
                    warn!(backend = "local", label = %label, error = %crate::error_chain(error), "node config read failed");
                }
                results.push(result);
            }
            results
        }
        .boxed()
    }

    fn list_all(&self) -> BoxFuture<'_, Result<Listing, StoreError>> {
        self.list()
            .instrument(info_span!("list_node_configs", backend = "local"))
            .boxed()
    }

    fn fetch_index(&self) -> BoxFuture<'_, Result<IndexSnapshot, StoreError>> {
        self.read_index()
            .instrument(info_span!("fetch_index", backend = "local"))
            .boxed()
    }
}

/// Maps a file system error to a store error of the right kind.
pub(crate) fn io_error(error: io::Error, subject: Subject, path: &Path) -> StoreError {
    let kind = match error.kind() {
        io::ErrorKind::NotFound => StoreErrorKind::NotFound,
        io::ErrorKind::PermissionDenied => StoreErrorKind::Denied,
        io::ErrorKind::InvalidData => StoreErrorKind::InvalidContent,
        _ => StoreErrorKind::Unreachable,
    };
    StoreError::new(kind, Backend::Local, subject, error).at(path.display().to_string())
}

pub(crate) fn poisoned(subject: Subject) -> StoreError {
    StoreError::new(
        StoreErrorKind::Unreachable,
        Backend::Local,
        subject,
        MessageError("a previous read panicked while holding the cache lock".to_owned()),
    )
}
