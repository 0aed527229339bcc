//! File operations on the route directory: scanning for Firework's files and atomic writes.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use crate::error::RoutesError;
use crate::render::{FILE_SUFFIX, LOCAL_FILE_PREFIX, Owner, REMOTE_FILE_PREFIX};

/// Prefix and suffix of temporary files. Traefik's file provider loads only `.yaml`, `.yml`
/// and `.toml` files, so it never reads a file ending in `.tmp`.
const TEMP_PREFIX: &str = ".firework-";
const TEMP_SUFFIX: &str = ".tmp";

/// What the route directory contains that matters to a sync.
#[derive(Debug, Default)]
pub struct DirScan {
    /// Files with a Firework prefix and ownership line, by file name, with the host name
    /// each one routes.
    pub owned: BTreeMap<String, (Owner, String)>,
    /// Entries with a Firework name that are not regular files or lack a valid ownership
    /// line. Firework never touches them.
    pub foreign: Vec<String>,
    /// Temporary files left by an interrupted write.
    pub leftover_temps: Vec<String>,
}

/// Lists the route directory. A missing directory reads as empty.
pub fn scan(dir: &Path) -> Result<DirScan, RoutesError> {
    let mut result = DirScan::default();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(result),
        Err(error) => return Err(RoutesError::io("list", dir, error)),
    };
    for entry in entries {
        let entry = entry.map_err(|error| RoutesError::io("list", dir, error))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let file_type = entry
            .file_type()
            .map_err(|error| RoutesError::io("inspect", entry.path(), error))?;
        if file_type.is_file() && name.starts_with(TEMP_PREFIX) && name.ends_with(TEMP_SUFFIX) {
            result.leftover_temps.push(name);
            continue;
        }
        let ours = name.starts_with(LOCAL_FILE_PREFIX) || name.starts_with(REMOTE_FILE_PREFIX);
        if !ours || !name.ends_with(FILE_SUFFIX) {
            continue;
        }
        // Firework writes only regular files, so a symlink or directory with one of its
        // names is the operator's and must not be replaced by a rename.
        if !file_type.is_file() {
            result.foreign.push(name);
            continue;
        }
        let first_line = read_first_line(&entry.path())?;
        match Owner::parse(&first_line) {
            Some((owner, host)) if owner.file_name() == name => {
                result.owned.insert(name, (owner, host));
            }
            _ => result.foreign.push(name),
        }
    }
    Ok(result)
}

fn read_first_line(path: &Path) -> Result<String, RoutesError> {
    let file = File::open(path).map_err(|error| RoutesError::io("open", path, error))?;
    // The ownership line is short, so a first line longer than this is not ours.
    let mut head = Vec::new();
    BufReader::new(file)
        .take(512)
        .read_until(b'\n', &mut head)
        .map_err(|error| RoutesError::io("read", path, error))?;
    let line = head.strip_suffix(b"\n").unwrap_or(&head);
    Ok(String::from_utf8_lossy(line).into_owned())
}

/// Reads a file's bytes; `None` when it does not exist.
pub fn read_existing(path: &Path) -> Result<Option<Vec<u8>>, RoutesError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(RoutesError::io("read", path, error)),
    }
}

/// Creates the route directory (mode 0755) when missing.
pub fn create_dir(dir: &Path) -> Result<(), RoutesError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(|error| RoutesError::io("create directory", dir, error))
}

/// Replaces `<dir>/<name>` with `bytes` so that readers see either the old or the new file,
/// never a partial one: the bytes go to `.firework-<name>.tmp`, are flushed to disk, and
/// the temporary file is renamed over the target. The caller syncs the directory.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), RoutesError> {
    let temp = dir.join(temp_name(name));
    let target = dir.join(name);
    let result = write_temp(&temp, bytes).and_then(|()| {
        fs::rename(&temp, &target).map_err(|error| RoutesError::io("rename", &temp, error))
    });
    if result.is_err() {
        // The temporary file is not loaded by Traefik; removing it only keeps the directory
        // tidy, and the next sync removes it anyway.
        let _ = fs::remove_file(&temp);
    }
    result
}

fn temp_name(name: &str) -> String {
    format!(
        "{TEMP_PREFIX}{}{TEMP_SUFFIX}",
        name.trim_start_matches("firework-")
    )
}

fn write_temp(temp: &Path, bytes: &[u8]) -> Result<(), RoutesError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(temp)
        .map_err(|error| RoutesError::io("create", temp, error))?;
    file.write_all(bytes)
        .map_err(|error| RoutesError::io("write", temp, error))?;
    file.sync_all()
        .map_err(|error| RoutesError::io("sync", temp, error))
}

/// Flushes the directory's entries (renames and deletions) to disk.
pub fn sync_dir(dir: &Path) -> Result<(), RoutesError> {
    File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(|error| RoutesError::io("sync directory", dir, error))
}

/// Deletes `<dir>/<name>`; a file that is already gone counts as deleted.
pub fn remove(dir: &Path, name: &str) -> Result<(), RoutesError> {
    let path = dir.join(name);
    match fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(RoutesError::io("delete", path, error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_are_ignored_by_traefik() {
        let name = temp_name("firework-local-kibana.yaml");
        assert_eq!(name, ".firework-local-kibana.yaml.tmp");
        assert!(!name.ends_with(".yaml"));
        assert!(!name.ends_with(".yml"));
        assert!(!name.ends_with(".toml"));
    }
}
