//! The mapping from a local image path under `images_dir` to its object key.
//!
//! `/var/lib/images/kernels/vmlinux-6.1` with `images_dir = /var/lib/images` maps to the key
//! `kernels/vmlinux-6.1` (plus the optional key prefix). Paths outside `images_dir` are not
//! synced.

use std::path::{Component, Path, PathBuf};

use crate::error::ImageError;

/// Suffix of the sidecar record written next to each synced image.
pub const RECORD_SUFFIX: &str = ".firework.json";
/// Suffix of the hidden download file kept next to the image until it is installed.
pub const PARTIAL_SUFFIX: &str = ".firework-partial";
/// Suffix of the object that may hold the image's SHA-256 in hex.
pub const SHA256_SUFFIX: &str = ".sha256";

/// The place of an image path relative to `images_dir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Placement {
    /// Under `images_dir`: synced from the object `key`.
    Managed {
        /// The object key, `/`-separated, prefix included.
        key: String,
    },
    /// Outside `images_dir`: used as it is.
    Outside,
}

/// Maps `path` to an object key, or reports that it lies outside `images_dir`.
///
/// Rejects relative paths, `.` and `..` components, and names that end in the suffixes this
/// crate reserves for its own files, because such a name would collide with the sidecar or
/// partial download of another image.
pub(crate) fn place(images_dir: &Path, prefix: &str, path: &Path) -> Result<Placement, ImageError> {
    let invalid = |reason| ImageError::InvalidPath {
        path: path.to_owned(),
        reason,
    };
    if !path.is_absolute() {
        return Err(invalid("the path must be absolute"));
    }
    if path
        .components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
    {
        return Err(invalid("the path must not contain . or .. components"));
    }
    let Ok(relative) = path.strip_prefix(images_dir) else {
        return Ok(Placement::Outside);
    };
    let mut parts = Vec::new();
    for component in relative.components() {
        let Component::Normal(part) = component else {
            return Err(invalid("the path must not contain . or .. components"));
        };
        let Some(part) = part.to_str() else {
            return Err(invalid("the path is not valid UTF-8"));
        };
        parts.push(part);
    }
    let Some(name) = parts.last() else {
        return Err(invalid("the path is images_dir itself, not a file in it"));
    };
    if name.ends_with(RECORD_SUFFIX) || name.ends_with(PARTIAL_SUFFIX) {
        return Err(invalid(
            "the file name ends in a suffix reserved for sync records (.firework.json, .firework-partial)",
        ));
    }
    let prefix = prefix.trim_matches('/');
    let mut key = String::new();
    if !prefix.is_empty() {
        key.push_str(prefix);
        key.push('/');
    }
    key.push_str(&parts.join("/"));
    Ok(Placement::Managed { key })
}

/// Returns `<dir>/<name><suffix>` for the image at `path`.
pub(crate) fn sibling(path: &Path, prefix: &str, suffix: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!("{prefix}{name}{suffix}"))
}

/// Returns the sidecar record path of the image at `path`.
pub(crate) fn record_path(path: &Path) -> PathBuf {
    sibling(path, "", RECORD_SUFFIX)
}

/// Returns the hidden partial download path of the image at `path`.
pub(crate) fn partial_path(path: &Path) -> PathBuf {
    sibling(path, ".", PARTIAL_SUFFIX)
}

/// Returns the record path of the partial download of the image at `path`.
pub(crate) fn partial_record_path(path: &Path) -> PathBuf {
    sibling(path, ".", &format!("{PARTIAL_SUFFIX}{RECORD_SUFFIX}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(path: &str) -> Result<Placement, ImageError> {
        place(Path::new("/var/lib/images"), "", Path::new(path))
    }

    #[test]
    fn nested_path_maps_to_relative_key() {
        assert_eq!(
            key("/var/lib/images/kernels/vmlinux-6.1").unwrap(),
            Placement::Managed {
                key: "kernels/vmlinux-6.1".to_owned()
            }
        );
    }

    #[test]
    fn prefix_is_joined_with_one_slash() {
        let placement = place(
            Path::new("/var/lib/images"),
            "/images/",
            Path::new("/var/lib/images/app.ext4"),
        )
        .unwrap();
        assert_eq!(
            placement,
            Placement::Managed {
                key: "images/app.ext4".to_owned()
            }
        );
    }

    #[test]
    fn path_outside_images_dir_is_not_managed() {
        assert_eq!(key("/srv/app.ext4").unwrap(), Placement::Outside);
        // A sibling directory that shares the name's beginning is outside too.
        assert_eq!(
            key("/var/lib/images2/app.ext4").unwrap(),
            Placement::Outside
        );
    }

    #[test]
    fn invalid_paths_are_rejected() {
        let cases = [
            ("relative/app.ext4", "the path must be absolute"),
            (
                "/var/lib/images/../etc/passwd",
                "the path must not contain . or .. components",
            ),
            (
                "/var/lib/images",
                "the path is images_dir itself, not a file in it",
            ),
            (
                "/var/lib/images/app.ext4.firework.json",
                "the file name ends in a suffix reserved for sync records (.firework.json, .firework-partial)",
            ),
            (
                "/var/lib/images/.app.firework-partial",
                "the file name ends in a suffix reserved for sync records (.firework.json, .firework-partial)",
            ),
        ];
        for (path, expected) in cases {
            match key(path) {
                Err(ImageError::InvalidPath { reason, .. }) => {
                    assert_eq!(reason, expected, "{path}")
                }
                other => panic!("{path}: expected InvalidPath, got {other:?}"),
            }
        }
    }

    #[test]
    fn sidecar_names_sit_next_to_image() {
        let path = Path::new("/var/lib/images/k/vmlinux");
        assert_eq!(
            record_path(path),
            Path::new("/var/lib/images/k/vmlinux.firework.json")
        );
        assert_eq!(
            partial_path(path),
            Path::new("/var/lib/images/k/.vmlinux.firework-partial")
        );
        assert_eq!(
            partial_record_path(path),
            Path::new("/var/lib/images/k/.vmlinux.firework-partial.firework.json")
        );
    }
}
