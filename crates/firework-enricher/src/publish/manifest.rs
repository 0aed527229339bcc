//! The publication manifest `manifest.json`: which commit is published, when, and which
//! files this enricher wrote, with their SHA-256.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The object key of the manifest below the publish prefix.
pub const MANIFEST_KEY: &str = "manifest.json";
/// The manifest format version written.
pub const MANIFEST_VERSION: u32 = 1;

/// Whether a publication finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// A run claimed the prefix and is writing; `files` lists the old and the new files so a
    /// crashed run's files are still cleaned up by the next one.
    Publishing,
    /// Every file in `files` is written.
    Complete,
}

/// The content of `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version.
    pub version: u32,
    /// The commit the files were rendered from, when the input came from Git.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_commit: Option<String>,
    /// Committer time of `source_commit`, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_time: Option<i64>,
    /// When the run wrote the manifest, RFC 3339 UTC.
    pub published_at: String,
    /// Publishing or complete.
    pub state: State,
    /// Files written by the enricher: key to lowercase hex SHA-256 of the content.
    pub files: BTreeMap<String, String>,
}

impl Manifest {
    /// Parses a manifest.
    pub fn from_json(bytes: &[u8]) -> Result<Manifest, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// Serialises the manifest as pretty JSON with a final newline.
    pub fn to_json(&self) -> Vec<u8> {
        // Strings, integers and maps always serialise.
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    out
}
