//! The sidecar record kept next to each synced image, `<name>.firework.json`.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::ImageError;

/// The object version installed at an image path, or the one a partial download belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRecord {
    /// The object key the file came from.
    pub key: String,
    /// The object's ETag as the store returned it, quotes included; empty when the store
    /// returned none.
    pub etag: String,
    /// The object's size in bytes.
    pub size: u64,
    /// The SHA-256 of the content in lowercase hex; absent in the record of a partial
    /// download.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Whether `sha256` was checked against a digest the source published.
    #[serde(default)]
    pub verified: bool,
}

impl SyncRecord {
    /// The content version string of this record, `etag=<etag without quotes>,size=<bytes>`.
    pub fn version(&self) -> String {
        content_version(&self.etag, self.size)
    }
}

/// Builds the content version string of an object from its ETag and size.
pub(crate) fn content_version(etag: &str, size: u64) -> String {
    format!("etag={},size={size}", etag.trim_matches('"'))
}

/// Reads a record; `None` when it is missing or unreadable, which makes the image count as
/// out of date rather than failing it.
pub(crate) fn read(path: &Path) -> Option<SyncRecord> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return None,
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "failed to read image sync record; the image will be downloaded again");
            return None;
        }
    };
    match serde_json::from_slice(&bytes) {
        Ok(record) => Some(record),
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "invalid image sync record; the image will be downloaded again");
            None
        }
    }
}

/// Writes `record` to `path` through a temporary file, fsync and rename, so a reader sees
/// either the old or the new record.
pub(crate) fn write_atomic(path: &Path, record: &SyncRecord) -> Result<(), ImageError> {
    let json = serde_json::to_vec_pretty(record)
        .map_err(|e| ImageError::io("encode", path, std::io::Error::other(e)))?;
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    let result = (|| {
        let mut file = File::create(&tmp).map_err(|e| ImageError::io("create", &tmp, e))?;
        file.write_all(&json)
            .map_err(|e| ImageError::io("write", &tmp, e))?;
        file.sync_all()
            .map_err(|e| ImageError::io("fsync", &tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| ImageError::io("rename", &tmp, e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Removes a file, treating a missing file as success.
pub(crate) fn remove_if_exists(path: &Path) -> Result<(), ImageError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(ImageError::io("remove", path, error)),
    }
}

/// Fsyncs a directory so a rename inside it survives a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), ImageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| ImageError::io("fsync directory", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.ext4.firework.json");
        let record = SyncRecord {
            key: "app.ext4".to_owned(),
            etag: "\"abc\"".to_owned(),
            size: 42,
            sha256: Some("00".repeat(32)),
            verified: true,
        };
        write_atomic(&path, &record).unwrap();
        assert_eq!(read(&path), Some(record.clone()));
        assert_eq!(record.version(), "etag=abc,size=42");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            vec![std::ffi::OsString::from("app.ext4.firework.json")]
        );
    }

    #[test]
    fn invalid_record_reads_as_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.ext4.firework.json");
        std::fs::write(&path, b"{not json").unwrap();
        assert_eq!(read(&path), None);
        assert_eq!(read(&dir.path().join("missing.firework.json")), None);
    }
}
