//! Node discovery from the registry records that agents write.
//!
//! Every agent writes `registry/nodes/<node>.json` on each heartbeat. A node is live when its
//! heartbeat is younger than a TTL; its labels, host address, capacity and reserve come from
//! the record. The record's `used` field is not read: the plan covers every service, so the
//! running load is already in the services being placed. [`read_registry_dir`] reads the
//! records from a directory tree; an object-store reader returns the same [`RecordFile`]
//! list, and [`discover`] applies the liveness rule.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use firework_model::registry::NodeRecord;
use jiff::Timestamp;
use serde::Serialize;
use tracing::{debug, info, warn};

use crate::request::{NameKind, NodeCapacity, validate_name};

/// Default heartbeat age after which a node is no longer live: three missed heartbeats at
/// the agent's 15-second interval.
pub const DEFAULT_NODE_TTL: Duration = Duration::from_secs(45);

/// Path of the records below the registry root.
pub const NODES_PREFIX: &str = "registry/nodes";

/// One record file as read, or why it could not be read.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordFile {
    /// Origin of the record: a file path or an object key.
    pub source: String,
    /// Node name taken from the file name.
    pub file_node: String,
    /// The record, or why it is unusable.
    pub record: Result<NodeRecord, String>,
}

/// Errors of reading a registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The directory of node records could not be listed.
    #[error("failed to list registry directory {path}")]
    List {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The registry location is malformed or not allowed.
    #[error("invalid registry location `{location}`: {reason}")]
    InvalidLocation {
        /// The location as given.
        location: String,
        /// The reason the location is invalid.
        reason: String,
    },
    /// The bucket could not be listed, or its client could not be set up.
    #[error("failed to list registry {location}")]
    Store {
        /// The registry location, such as `s3://bucket/prefix`.
        location: String,
        /// The store error.
        #[source]
        source: firework_store::StoreError,
    },
}

/// Reads every `<root>/registry/nodes/*.json` file, in file-name order. Other files and
/// subdirectories are skipped. A file that cannot be read or parsed becomes a
/// [`RecordFile`] with an error, so one bad record does not hide the others.
pub fn read_registry_dir(root: &Path) -> Result<Vec<RecordFile>, RegistryError> {
    let dir = root.join(NODES_PREFIX);
    let list_error = |source| RegistryError::List {
        path: dir.clone(),
        source,
    };
    let mut paths = Vec::new();
    for entry in fs::read_dir(&dir).map_err(list_error)? {
        let path = entry.map_err(list_error)?.path();
        if path.extension().is_some_and(|e| e == "json") && path.is_file() {
            paths.push(path);
        } else {
            debug!(path = %path.display(), "not a node record, skipped");
        }
    }
    paths.sort();

    Ok(paths
        .into_iter()
        .map(|path| {
            let file_node = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let record = fs::read(&path)
                .map_err(|e| format!("failed to read: {e}"))
                .and_then(|bytes| parse_record(&bytes));
            RecordFile {
                source: path.display().to_string(),
                file_node,
                record,
            }
        })
        .collect())
}

/// Parses one record's JSON.
pub fn parse_record(bytes: &[u8]) -> Result<NodeRecord, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("invalid node record JSON: {e}"))
}

/// Nodes found in the registry, split by liveness.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Discovery {
    /// Live nodes in name order, ready for [`schedule`](crate::schedule).
    pub live: Vec<NodeCapacity>,
    /// Nodes with a valid record whose heartbeat is too old, or that report no capacity.
    pub not_live: Vec<NotLive>,
    /// Record files that could not be used.
    pub rejected: Vec<Rejected>,
}

/// A node that is known but not live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotLive {
    /// Node name.
    pub node: String,
    /// Reason the node is not live.
    pub reason: String,
}

/// A record file that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejected {
    /// File path or object key.
    pub source: String,
    /// Reason the record is unusable.
    pub reason: String,
}

/// Splits `records` into live nodes, stale ones and unusable files.
///
/// A node is live when `now - heartbeat < ttl` and its capacity has at least one vCPU and
/// one MiB. A heartbeat up to `ttl` in the future counts as fresh (clock skew between
/// hosts); a later one is rejected as bogus.
pub fn discover(records: Vec<RecordFile>, now: Timestamp, ttl: Duration) -> Discovery {
    let mut discovery = Discovery::default();
    for file in records {
        let record = match check_record(&file) {
            Ok(record) => record,
            Err(reason) => {
                warn!(source = %file.source, %reason, "node record rejected");
                discovery.rejected.push(Rejected {
                    source: file.source,
                    reason,
                });
                continue;
            }
        };
        match liveness(&record, now, ttl) {
            Ok(()) => {
                debug!(node = %record.node, heartbeat = %record.heartbeat, "node live");
                discovery.live.push(NodeCapacity::from(record));
            }
            Err(Liveness::NotLive(reason)) => {
                info!(node = %record.node, %reason, "node not live");
                discovery.not_live.push(NotLive {
                    node: record.node,
                    reason,
                });
            }
            Err(Liveness::Invalid(reason)) => {
                warn!(source = %file.source, %reason, "node record rejected");
                discovery.rejected.push(Rejected {
                    source: file.source,
                    reason,
                });
            }
        }
    }
    discovery.live.sort_by(|a, b| a.name.cmp(&b.name));
    discovery.not_live.sort_by(|a, b| a.node.cmp(&b.node));
    discovery
}

fn check_record(file: &RecordFile) -> Result<NodeRecord, String> {
    let record = file.record.clone()?;
    if record.node != file.file_node {
        return Err(format!(
            "record names node {:?} but the file is named for {:?}",
            record.node, file.file_node
        ));
    }
    validate_name(NameKind::Node, &record.node).map_err(|e| e.to_string())?;
    Ok(record)
}

enum Liveness {
    NotLive(String),
    Invalid(String),
}

fn liveness(record: &NodeRecord, now: Timestamp, ttl: Duration) -> Result<(), Liveness> {
    let heartbeat: Timestamp = record.heartbeat.parse().map_err(|e| {
        Liveness::Invalid(format!(
            "invalid heartbeat {:?}: {e}; write an RFC 3339 time such as 2026-12-04T20:00:00Z",
            record.heartbeat
        ))
    })?;
    let ttl_signed = jiff::SignedDuration::try_from(ttl).unwrap_or(jiff::SignedDuration::MAX);
    let age = now.duration_since(heartbeat);
    if age >= ttl_signed {
        return Err(Liveness::NotLive(format!(
            "last heartbeat {} is {}s old, the TTL is {}s",
            record.heartbeat,
            age.as_secs(),
            ttl.as_secs()
        )));
    }
    if -age > ttl_signed {
        return Err(Liveness::Invalid(format!(
            "heartbeat {} is {}s in the future, more than the TTL of {}s",
            record.heartbeat,
            (-age).as_secs(),
            ttl.as_secs()
        )));
    }
    if record.capacity.vcpus == 0 || record.capacity.memory_mb == 0 {
        return Err(Liveness::NotLive(format!(
            "reports no capacity ({} vCPUs, {} MiB)",
            record.capacity.vcpus, record.capacity.memory_mb
        )));
    }
    Ok(())
}
