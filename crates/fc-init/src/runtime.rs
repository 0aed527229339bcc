//! The image's runtime file, `/etc/firework/runtime.json`, and the writable paths it lists.
//!
//! The file is optional and usually generated from a Docker image config:
//! `{"user": "app", "workdir": "/srv", "env": {"K": "V"}, "writable_paths": ["/data"]}`.
//! Every key is optional and unknown keys are ignored. Boot parameters override it.

use std::collections::BTreeMap;
use std::io;
use std::path::{Component, Path, PathBuf};

use nix::fcntl::AtFlags;
use nix::unistd::{Gid, Uid};
use serde::Deserialize;

/// Path of the runtime file.
pub const RUNTIME_FILE: &str = "/etc/firework/runtime.json";

/// The contents of the runtime file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct RuntimeConfig {
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub workdir: Option<String>,
    #[serde(default)]
    pub env: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub writable_paths: Option<Vec<String>>,
}

/// A runtime file that exists but cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("failed to read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("invalid JSON in {path}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// Reads the runtime file at `path`; a missing file gives the empty configuration.
pub fn load(path: &Path) -> Result<RuntimeConfig, RuntimeError> {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(RuntimeConfig::default()),
        Err(source) => {
            return Err(RuntimeError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    serde_json::from_slice(&text).map_err(|source| RuntimeError::Parse {
        path: path.to_owned(),
        source,
    })
}

/// Normalises writable paths: drops empty and relative entries, cleans each path lexically
/// (`//`, `.`, `..`, a trailing `/`), removes duplicates and sorts the result.
pub fn normalize_writable_paths<S: AsRef<str>>(paths: &[S]) -> Vec<PathBuf> {
    let mut cleaned: Vec<PathBuf> = paths
        .iter()
        .map(AsRef::as_ref)
        .filter(|path| path.starts_with('/'))
        .map(|path| clean_absolute(Path::new(path)))
        .collect();
    cleaned.sort();
    cleaned.dedup();
    cleaned
}

/// Cleans an absolute path without touching the file system; `..` at the root stays at
/// the root.
fn clean_absolute(path: &Path) -> PathBuf {
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => parts.push(part),
            Component::ParentDir => {
                parts.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    let mut cleaned = PathBuf::from("/");
    cleaned.extend(parts);
    cleaned
}

/// A failure to hand a writable path to the service user.
#[derive(Debug, thiserror::Error)]
pub enum ChownError {
    #[error("failed to change the owner of {path} to {uid}:{gid}")]
    Chown {
        path: PathBuf,
        uid: u32,
        gid: u32,
        #[source]
        source: nix::Error,
    },
    #[error("failed to list {path}")]
    ReadDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Changes the owner of `path` and everything below it to `uid:gid`, without following
/// symbolic links. A missing `path` is skipped.
pub fn chown_tree(path: &Path, uid: u32, gid: u32) -> Result<(), ChownError> {
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(ChownError::ReadDir {
                path: path.to_owned(),
                source,
            });
        }
    };
    nix::unistd::fchownat(
        nix::fcntl::AT_FDCWD,
        path,
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(|source| ChownError::Chown {
        path: path.to_owned(),
        uid,
        gid,
        source,
    })?;
    if !metadata.is_dir() {
        return Ok(());
    }
    let entries = std::fs::read_dir(path).map_err(|source| ChownError::ReadDir {
        path: path.to_owned(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| ChownError::ReadDir {
            path: path.to_owned(),
            source,
        })?;
        chown_tree(&entry.path(), uid, gid)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_drops_cleans_dedups_sorts() {
        let paths = normalize_writable_paths(&[
            "",
            "relative/path",
            "/var/lib/../lib/firework",
            "/tmp/",
            "//srv/./data",
            "/..",
            "/tmp",
        ]);
        assert_eq!(
            paths,
            vec![
                PathBuf::from("/"),
                PathBuf::from("/srv/data"),
                PathBuf::from("/tmp"),
                PathBuf::from("/var/lib/firework"),
            ]
        );
    }

    #[test]
    fn load_missing_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let config = load(&dir.path().join("runtime.json")).unwrap();
        assert_eq!(config, RuntimeConfig::default());
    }

    #[test]
    fn load_all_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runtime.json");
        std::fs::write(
            &path,
            r#"{"user":"app:staff","workdir":"/srv","env":{"A":"1","B":"x y"},
                "writable_paths":["/data"],"unknown":true}"#,
        )
        .unwrap();
        let config = load(&path).unwrap();
        assert_eq!(config.user.as_deref(), Some("app:staff"));
        assert_eq!(config.workdir.as_deref(), Some("/srv"));
        assert_eq!(
            config.env,
            Some(BTreeMap::from([
                ("A".to_owned(), "1".to_owned()),
                ("B".to_owned(), "x y".to_owned()),
            ]))
        );
        assert_eq!(config.writable_paths, Some(vec!["/data".to_owned()]));
    }

    #[test]
    fn load_null_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runtime.json");
        std::fs::write(&path, r#"{"user":null,"env":null,"writable_paths":null}"#).unwrap();
        assert_eq!(load(&path).unwrap(), RuntimeConfig::default());
    }

    #[test]
    fn load_invalid_json_names_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runtime.json");
        std::fs::write(&path, "{\"env\": [1]}").unwrap();
        let err = load(&path).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("invalid JSON in {}", path.display())
        );
        assert!(matches!(err, RuntimeError::Parse { .. }));
    }

    #[test]
    fn chown_tree_skips_missing_path() {
        let dir = tempfile::tempdir().unwrap();
        let me = nix::unistd::getuid().as_raw();
        let group = nix::unistd::getgid().as_raw();
        chown_tree(&dir.path().join("absent"), me, group).unwrap();
    }

    #[test]
    fn chown_tree_changes_owner_without_following_links() {
        use std::os::unix::fs::MetadataExt;
        if !nix::unistd::Uid::effective().is_root() {
            eprintln!("skipped chown_tree_changes_owner_without_following_links: needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::write(&outside, "x").unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir_all(tree.join("sub")).unwrap();
        std::fs::write(tree.join("sub/file"), "y").unwrap();
        std::os::unix::fs::symlink(&outside, tree.join("link")).unwrap();

        chown_tree(&tree, 4321, 8765).unwrap();

        for path in [tree.clone(), tree.join("sub"), tree.join("sub/file")] {
            let metadata = std::fs::metadata(&path).unwrap();
            assert_eq!((metadata.uid(), metadata.gid()), (4321, 8765), "{path:?}");
        }
        let link = std::fs::symlink_metadata(tree.join("link")).unwrap();
        assert_eq!((link.uid(), link.gid()), (4321, 8765));
        let target = std::fs::metadata(&outside).unwrap();
        assert_eq!((target.uid(), target.gid()), (0, 0));
    }
}
