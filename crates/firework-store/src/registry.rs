//! The node registry: one heartbeat record per node at `registry/nodes/<node>.json`, written by
//! each agent and read by the scheduler.

use std::path::PathBuf;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tracing::{Instrument, debug, info_span};

use crate::error::{Backend, MessageError, StoreError, StoreErrorKind, Subject};
use crate::local::io_error;
use crate::model::NodeRecord;
use crate::name::{REGISTRY_DIR, check_node, registry_path, validate_name};
use crate::object::map_error;

/// How many records are read at the same time when listing an object store registry.
const READ_CONCURRENCY: usize = 16;

/// The location of registry records.
#[derive(Debug, Clone)]
enum Location {
    Local(PathBuf),
    Object {
        backend: Backend,
        store: Arc<dyn ObjectStore>,
        prefix: ObjectPath,
    },
}

/// Reads and writes node heartbeat records.
#[derive(Debug, Clone)]
pub struct NodeRegistry {
    location: Location,
}

impl NodeRegistry {
    /// A registry under `root/registry/nodes/`, the same directory a [`crate::LocalStore`] reads.
    pub fn local(root: impl Into<PathBuf>) -> NodeRegistry {
        NodeRegistry {
            location: Location::Local(root.into()),
        }
    }

    /// A registry under `<prefix>registry/nodes/` of a bucket.
    pub fn object(backend: Backend, store: Arc<dyn ObjectStore>, prefix: &str) -> NodeRegistry {
        NodeRegistry {
            location: Location::Object {
                backend,
                store,
                prefix: ObjectPath::from(prefix),
            },
        }
    }

    /// The backend records are written to.
    pub fn backend(&self) -> Backend {
        match &self.location {
            Location::Local(_) => Backend::Local,
            Location::Object { backend, .. } => *backend,
        }
    }

    /// Writes `record`, replacing the node's previous record. A local write goes to a temporary
    /// file first and is renamed into place, so readers never see half a record.
    pub async fn write(&self, record: &NodeRecord) -> Result<(), StoreError> {
        let backend = self.backend();
        check_node(backend, &record.node)?;
        let subject = Subject::Registry(record.node.clone());
        let bytes = serde_json::to_vec_pretty(record).map_err(|e| {
            StoreError::new(StoreErrorKind::InvalidContent, backend, subject.clone(), e)
        })?;
        let span = info_span!("write_heartbeat", backend = %backend, node = %record.node);
        async {
            match &self.location {
                Location::Local(root) => {
                    let path = root.join(registry_path(&record.node));
                    let dir = root.join(REGISTRY_DIR);
                    tokio::fs::create_dir_all(&dir)
                        .await
                        .map_err(|e| io_error(e, subject.clone(), &dir))?;
                    let temporary = dir.join(format!(".{}.json.tmp", record.node));
                    tokio::fs::write(&temporary, &bytes)
                        .await
                        .map_err(|e| io_error(e, subject.clone(), &temporary))?;
                    tokio::fs::rename(&temporary, &path)
                        .await
                        .map_err(|e| io_error(e, subject.clone(), &path))?;
                }
                Location::Object { store, prefix, .. } => {
                    let key = object_key(prefix, &record.node);
                    store
                        .put(&key, PutPayload::from(bytes))
                        .await
                        .map_err(|e| map_error(backend, subject.clone(), &key, e))?;
                }
            }
            debug!("wrote heartbeat record");
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// Reads the record of `node`.
    pub async fn read(&self, node: &str) -> Result<NodeRecord, StoreError> {
        let backend = self.backend();
        check_node(backend, node)?;
        let subject = Subject::Registry(node.to_owned());
        let (bytes, location) = match &self.location {
            Location::Local(root) => {
                let path = root.join(registry_path(node));
                let bytes = tokio::fs::read(&path)
                    .await
                    .map_err(|e| io_error(e, subject.clone(), &path))?;
                (bytes::Bytes::from(bytes), path.display().to_string())
            }
            Location::Object { store, prefix, .. } => {
                let key = object_key(prefix, node);
                let bytes = async { store.get(&key).await?.bytes().await }
                    .await
                    .map_err(|e| map_error(backend, subject.clone(), &key, e))?;
                (bytes, key.to_string())
            }
        };
        let record: NodeRecord = serde_json::from_slice(&bytes).map_err(|e| {
            StoreError::new(StoreErrorKind::InvalidContent, backend, subject.clone(), e)
                .at(location.clone())
        })?;
        if record.node != node {
            return Err(StoreError::new(
                StoreErrorKind::InvalidContent,
                backend,
                subject,
                MessageError(format!("record names node `{}`", record.node)),
            )
            .at(location));
        }
        Ok(record)
    }

    /// Lists the node names that have a record, sorted.
    pub async fn nodes(&self) -> Result<Vec<String>, StoreError> {
        let backend = self.backend();
        let mut nodes = Vec::new();
        match &self.location {
            Location::Local(root) => {
                let dir = root.join(REGISTRY_DIR);
                let mut reader = match tokio::fs::read_dir(&dir).await {
                    Ok(reader) => reader,
                    // No agent has written a heartbeat yet.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                    Err(e) => return Err(io_error(e, Subject::RegistryListing, &dir)),
                };
                while let Some(entry) = reader
                    .next_entry()
                    .await
                    .map_err(|e| io_error(e, Subject::RegistryListing, &dir))?
                {
                    if let Some(node) = entry.file_name().to_str().and_then(node_from_file_name) {
                        nodes.push(node.to_owned());
                    }
                }
            }
            Location::Object { store, prefix, .. } => {
                let folder = registry_folder(prefix);
                let depth = folder.parts().count();
                let metas: Vec<_> = store
                    .list(Some(&folder))
                    .try_collect()
                    .await
                    .map_err(|e| map_error(backend, Subject::RegistryListing, &folder, e))?;
                for meta in metas {
                    if meta.location.parts().count() != depth + 1 {
                        continue;
                    }
                    if let Some(node) = meta.location.filename().and_then(node_from_file_name) {
                        nodes.push(node.to_owned());
                    }
                }
            }
        }
        nodes.sort();
        Ok(nodes)
    }

    /// Reads every record; a record that fails to read is an `Err` for its node and does not
    /// fail the listing.
    pub async fn list(&self) -> Result<Vec<Result<NodeRecord, StoreError>>, StoreError> {
        let nodes = self.nodes().await?;
        let records = futures::stream::iter(&nodes)
            .map(|node| self.read(node))
            .buffered(READ_CONCURRENCY)
            .collect()
            .await;
        Ok(records)
    }
}

fn registry_folder(prefix: &ObjectPath) -> ObjectPath {
    REGISTRY_DIR
        .split('/')
        .fold(prefix.clone(), |path, part| path.join(part))
}

fn object_key(prefix: &ObjectPath, node: &str) -> ObjectPath {
    registry_folder(prefix).join(format!("{node}.json"))
}

fn node_from_file_name(name: &str) -> Option<&str> {
    let node = name.strip_suffix(".json")?;
    validate_name(node).ok().map(|()| node)
}
