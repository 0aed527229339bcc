//! The persisted record of assigned addresses and of the devices Firework created.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::NetError;
use crate::plan::NetworkPlan;

/// File name of the state inside the caller's state directory.
pub const STATE_FILE: &str = "network-state.json";

/// Record of the addresses Firework assigned and the devices it created on this host.
///
/// A service's record is written before its TAP is created and removed only after
/// the TAP is gone, so a crash in between leaves a record that garbage collection
/// can finish.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkState {
    /// Name of the bridge when Firework created it, `None` when it was adopted or
    /// not made yet.
    pub created_bridge: Option<String>,
    /// Records of networked services, by service name.
    pub services: BTreeMap<String, ServiceRecord>,
    /// TAP devices Firework created that no service uses any more (after a TAP name
    /// change), kept until they are deleted.
    #[serde(default)]
    pub orphan_taps: Vec<String>,
    /// The last plan that was applied, used to rebuild the ruleset during garbage
    /// collection.
    pub last_plan: Option<NetworkPlan>,
}

/// Addresses and TAP device of one service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRecord {
    /// TAP device that Firework created (or is about to create) for the service.
    pub tap: String,
    /// Guest IPv4 address.
    pub address: Ipv4Addr,
    /// Guest MAC address, `AA:FC:xx:xx:xx:xx`.
    pub mac: String,
}

impl NetworkState {
    /// Returns the path of the state file under `state_dir`.
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join(STATE_FILE)
    }

    /// Loads the state from `state_dir`; a missing file is an empty state.
    pub fn load(state_dir: &Path) -> Result<Self, NetError> {
        let path = Self::path(state_dir);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => {
                return Err(NetError::StateIo {
                    operation: "read",
                    path,
                    source,
                });
            }
        };
        serde_json::from_str(&text).map_err(|source| NetError::StateCorrupt { path, source })
    }

    /// Writes the state to `state_dir` atomically (temporary file, fsync, rename).
    pub fn save(&self, state_dir: &Path) -> Result<(), NetError> {
        let path = Self::path(state_dir);
        let io_error = |operation, source| NetError::StateIo {
            operation,
            path: path.clone(),
            source,
        };
        fs::create_dir_all(state_dir)
            .map_err(|source| io_error("create the directory of", source))?;
        let text = serde_json::to_string_pretty(self).map_err(|source| {
            io_error(
                "serialize",
                io::Error::new(io::ErrorKind::InvalidData, source),
            )
        })?;
        let temporary = path.with_extension("json.tmp");
        let mut file = fs::File::create(&temporary).map_err(|source| io_error("create", source))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|source| io_error("write", source))?;
        fs::rename(&temporary, &path).map_err(|source| io_error("replace", source))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_missing_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            NetworkState::load(dir.path()).unwrap(),
            NetworkState::default()
        );

        let mut state = NetworkState {
            created_bridge: Some("fwbr0".into()),
            ..NetworkState::default()
        };
        state.services.insert(
            "api".into(),
            ServiceRecord {
                tap: "fw-api-12345".into(),
                address: Ipv4Addr::new(10, 0, 0, 7),
                mac: "AA:FC:0A:00:00:07".into(),
            },
        );
        state.save(dir.path()).unwrap();
        assert_eq!(NetworkState::load(dir.path()).unwrap(), state);
    }

    #[test]
    fn corrupt_state_is_an_error_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = NetworkState::path(dir.path());
        fs::write(&path, "{not json").unwrap();
        let err = NetworkState::load(dir.path()).unwrap_err();
        assert!(matches!(err, NetError::StateCorrupt { .. }), "{err:?}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "{not json");
    }
}
