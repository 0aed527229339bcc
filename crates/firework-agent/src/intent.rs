//! The agent's record of how it started each VM: `<state_dir>/agent/intents/<service>.json`.
//!
//! The record is written after the old VM is stopped and before the new one starts, so a
//! record always describes the running VM or a VM that is not running at all. After a
//! restart the planner compares desired state with these records, and VMs whose record
//! matches are left running.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use tracing::warn;

use crate::error::AgentError;
use crate::spec::Intent;

/// Reads and writes intent records.
#[derive(Debug, Clone)]
pub struct IntentStore {
    dir: PathBuf,
}

impl IntentStore {
    /// A store under `<state_dir>/agent/intents/`; the directory is created.
    pub fn open(state_dir: &Path) -> Result<IntentStore, AgentError> {
        let dir = state_dir.join("agent").join("intents");
        std::fs::create_dir_all(&dir).map_err(|source| AgentError::State {
            operation: "create directory",
            path: dir.clone(),
            source,
        })?;
        Ok(IntentStore { dir })
    }

    fn path(&self, service: &str) -> PathBuf {
        self.dir.join(format!("{service}.json"))
    }

    /// Reads every record. A record that cannot be read or parsed is logged and skipped, so
    /// its service counts as "started by an unknown spec" and is replaced.
    pub fn load_all(&self) -> BTreeMap<String, Intent> {
        let mut intents = BTreeMap::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(error) => {
                warn!(path = %self.dir.display(), %error, "cannot list intent records");
                return intents;
            }
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(service) = path
                .file_name()
                .and_then(|name| name.to_str())
                .and_then(|name| name.strip_suffix(".json"))
                .map(str::to_owned)
            else {
                continue;
            };
            let parsed = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|bytes| {
                    serde_json::from_slice::<Intent>(&bytes).map_err(|e| e.to_string())
                });
            match parsed {
                Ok(intent) => {
                    intents.insert(service, intent);
                }
                Err(error) => {
                    warn!(service, path = %path.display(), %error, "cannot read intent record")
                }
            }
        }
        intents
    }

    /// Writes the record of `service` through a temporary file and a rename.
    pub fn write(&self, service: &str, intent: &Intent) -> Result<(), AgentError> {
        let path = self.path(service);
        let temporary = self.dir.join(format!(".{service}.json.tmp"));
        let bytes = serde_json::to_vec_pretty(intent).map_err(|e| AgentError::State {
            operation: "encode",
            path: path.clone(),
            source: io::Error::other(e),
        })?;
        std::fs::write(&temporary, bytes).map_err(|source| AgentError::State {
            operation: "write",
            path: temporary.clone(),
            source,
        })?;
        std::fs::rename(&temporary, &path).map_err(|source| AgentError::State {
            operation: "rename into place",
            path: path.clone(),
            source,
        })
    }

    /// Removes the record of `service`; a missing record is no error.
    pub fn remove(&self, service: &str) -> Result<(), AgentError> {
        let path = self.path(service);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(AgentError::State {
                operation: "remove",
                path,
                source,
            }),
        }
    }
}
