//! Publishing rendered files with a manifest and compare-and-set.
//!
//! One run:
//! 1. refuses a result without node configs unless empty results are allowed;
//! 2. takes the lock (a local directory) and reads `manifest.json` with its version;
//! 3. refuses a commit older than the published one (by committer time);
//! 4. compares every file with what is stored and plans writes of the changed ones and
//!    deletes of files the previous manifest lists that are no longer rendered;
//! 5. claims the prefix by writing the manifest in state `publishing` with compare-and-set
//!    on the version read in 2 (create-only when there was none);
//! 6. writes the changed files, checking before each write that the manifest is still the
//!    one it wrote, and deletes the stale ones;
//! 7. writes the manifest in state `complete`, again with compare-and-set.
//!
//! A concurrent run that loses a compare-and-set stops with [`PublishError::Conflict`] or
//! [`PublishError::Superseded`]. Files that this enricher never wrote are never deleted.

pub mod manifest;
pub mod target;

use std::collections::BTreeMap;
use std::path::PathBuf;

use tracing::{info, info_span, warn};

use crate::diff::{FileChange, diff_files};
use manifest::{MANIFEST_KEY, MANIFEST_VERSION, Manifest, State, sha256_hex};
pub use target::{LOCK_FILE, ObjectOptions, Target, Version};

/// The commit a run publishes and how.
#[derive(Debug, Clone, Default)]
pub struct PublishOptions {
    /// The commit the files were rendered from.
    pub source_commit: Option<String>,
    /// Its committer time in seconds since the Unix epoch.
    pub commit_time: Option<i64>,
    /// Publish even when no node config was rendered.
    pub allow_empty: bool,
    /// Compute the changes and write nothing.
    pub dry_run: bool,
}

/// What a run did (or, for a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PublishReport {
    /// Keys written.
    pub written: Vec<String>,
    /// Keys left alone because their content is unchanged.
    pub unchanged: Vec<String>,
    /// Keys deleted.
    pub deleted: Vec<String>,
    /// The changes with their line diffs.
    pub changes: Vec<FileChange>,
    /// The commit published before this run.
    pub previous_commit: Option<String>,
}

/// Why a run published nothing or stopped.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The output URL cannot be used.
    #[error("invalid output {url}: {reason}")]
    InvalidTarget {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The render has no node configs and empty results are not allowed.
    #[error(
        "refusing to publish an empty result to {target}: no node configs were rendered (pass --allow-empty to stop every service)"
    )]
    Empty {
        /// The target.
        target: String,
    },
    /// The published commit is newer than this run's.
    #[error(
        "refusing to publish commit {ours} (committed at {ours_time}) over {published} (committed at {published_time}), which is newer"
    )]
    OlderCommit {
        /// This run's commit.
        ours: String,
        /// Its committer time.
        ours_time: i64,
        /// The published commit.
        published: String,
        /// Its committer time.
        published_time: i64,
    },
    /// Another run holds the local lock.
    #[error("another publish run holds the lock of {target}")]
    Busy {
        /// The target.
        target: String,
    },
    /// The manifest changed between read and write.
    #[error("manifest of {target} changed during the run: another run published first")]
    Conflict {
        /// The target.
        target: String,
    },
    /// Another run claimed the prefix while this one was writing.
    #[error("another run claimed {target} while this one was writing; stopped")]
    Superseded {
        /// The target.
        target: String,
    },
    /// The stored manifest cannot be read.
    #[error("invalid manifest in {target}")]
    InvalidManifest {
        /// The target.
        target: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// A local file operation failed.
    #[error("failed to {operation} {}", .path.display())]
    Io {
        /// The operation.
        operation: &'static str,
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// An object store request failed.
    #[error("failed to {operation} {key}")]
    Object {
        /// The operation.
        operation: &'static str,
        /// The object.
        key: String,
        /// The error.
        #[source]
        source: object_store::Error,
    },
}

/// Reads the stored manifest, if any.
pub async fn read_manifest(target: &Target) -> Result<Option<(Manifest, Version)>, PublishError> {
    let Some((bytes, version)) = target.get(MANIFEST_KEY).await? else {
        return Ok(None);
    };
    let manifest = Manifest::from_json(&bytes).map_err(|source| PublishError::InvalidManifest {
        target: target.describe(),
        source,
    })?;
    Ok(Some((manifest, version)))
}

/// Reads the files the stored manifest lists, for a diff against a new render.
pub async fn published_files(target: &Target) -> Result<BTreeMap<String, Vec<u8>>, PublishError> {
    let mut files = BTreeMap::new();
    if let Some((manifest, _)) = read_manifest(target).await? {
        for key in manifest.files.keys() {
            if let Some((bytes, _)) = target.get(key).await? {
                files.insert(key.clone(), bytes);
            }
        }
    }
    Ok(files)
}

/// Compares `files` with what the stored manifest lists, for `fireworkctl diff`.
pub async fn diff_published(
    target: &Target,
    files: &BTreeMap<String, Vec<u8>>,
) -> Result<Vec<FileChange>, PublishError> {
    let published = published_files(target).await?;
    Ok(diff_files(&published, files))
}

fn is_node_key(key: &str) -> bool {
    key.starts_with("nodes/") && key.ends_with(".yaml")
}

fn now_rfc3339() -> String {
    jiff::Timestamp::now().to_string()
}

/// Publishes `files` (key to content) to `target`.
pub async fn publish(
    target: &Target,
    files: &BTreeMap<String, Vec<u8>>,
    options: &PublishOptions,
) -> Result<PublishReport, PublishError> {
    let span = info_span!(
        "publish",
        target = %target.describe(),
        revision = options.source_commit.as_deref().unwrap_or("")
    );
    let _entered = span.enter();
    if !options.allow_empty && !files.keys().any(|k| is_node_key(k)) {
        return Err(PublishError::Empty {
            target: target.describe(),
        });
    }
    let _lock = if options.dry_run {
        None
    } else {
        Some(target.lock()?)
    };
    let previous = read_manifest(target).await?;
    if let Some((manifest, _)) = &previous {
        check_not_older(manifest, options)?;
    }
    let previous_files: BTreeMap<String, String> = previous
        .as_ref()
        .map(|(m, _)| m.files.clone())
        .unwrap_or_default();

    let mut report = PublishReport {
        previous_commit: previous.as_ref().and_then(|(m, _)| m.source_commit.clone()),
        ..PublishReport::default()
    };
    let mut stored: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut to_write: Vec<&String> = Vec::new();
    for (key, bytes) in files {
        match target.get(key).await? {
            Some((current, _)) => {
                if &current == bytes {
                    report.unchanged.push(key.clone());
                } else {
                    to_write.push(key);
                }
                stored.insert(key.clone(), current);
            }
            None => to_write.push(key),
        }
    }
    let stale: Vec<String> = previous_files
        .keys()
        .filter(|key| !files.contains_key(*key))
        .cloned()
        .collect();
    for key in &stale {
        if let Some((bytes, _)) = target.get(key).await? {
            stored.insert(key.clone(), bytes);
        }
    }
    let mut desired: BTreeMap<String, Vec<u8>> = stored.clone();
    for key in &stale {
        desired.remove(key);
    }
    for (key, bytes) in files {
        desired.insert(key.clone(), bytes.clone());
    }
    report.changes = diff_files(&stored, &desired);
    if options.dry_run {
        report.written = to_write.iter().map(|k| (*k).clone()).collect();
        report.deleted = stale;
        return Ok(report);
    }

    let hashes: BTreeMap<String, String> = files
        .iter()
        .map(|(k, v)| (k.clone(), sha256_hex(v)))
        .collect();
    let mut claim_files = previous_files.clone();
    claim_files.extend(hashes.clone());
    let claim = Manifest {
        version: MANIFEST_VERSION,
        source_commit: options.source_commit.clone(),
        commit_time: options.commit_time,
        published_at: now_rfc3339(),
        state: State::Publishing,
        files: claim_files,
    };
    let claimed = target
        .put_if(
            MANIFEST_KEY,
            &claim.to_json(),
            previous.as_ref().map(|(_, v)| v),
        )
        .await?;

    for key in to_write {
        if matches!(target, Target::Object { .. })
            && !target
                .version(MANIFEST_KEY)
                .await?
                .is_some_and(|current| current.same_as(&claimed))
        {
            warn!(key = %key, "manifest changed during the run, stopping");
            return Err(PublishError::Superseded {
                target: target.describe(),
            });
        }
        target.put(key, &files[key]).await?;
        info!(key = %key, "wrote");
        report.written.push(key.clone());
    }
    for key in stale {
        target.delete(&key).await?;
        info!(key = %key, "deleted stale file");
        report.deleted.push(key);
    }
    let complete = Manifest {
        state: State::Complete,
        files: hashes,
        published_at: now_rfc3339(),
        ..claim
    };
    target
        .put_if(MANIFEST_KEY, &complete.to_json(), Some(&claimed))
        .await
        .map_err(|error| match error {
            PublishError::Conflict { target } => PublishError::Superseded { target },
            other => other,
        })?;
    info!(
        written = report.written.len(),
        unchanged = report.unchanged.len(),
        deleted = report.deleted.len(),
        "published"
    );
    Ok(report)
}

fn check_not_older(manifest: &Manifest, options: &PublishOptions) -> Result<(), PublishError> {
    if let (Some(published_time), Some(ours_time)) = (manifest.commit_time, options.commit_time)
        && ours_time < published_time
    {
        return Err(PublishError::OlderCommit {
            ours: options.source_commit.clone().unwrap_or_default(),
            ours_time,
            published: manifest.source_commit.clone().unwrap_or_default(),
            published_time,
        });
    }
    Ok(())
}
