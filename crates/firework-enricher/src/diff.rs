//! Differences between the published files and a new render, for `--dry-run` and
//! `fireworkctl diff`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// What happens to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileChange {
    /// A new file.
    Added {
        /// Object key.
        key: String,
        /// Unified-style line diff.
        diff: String,
    },
    /// A file whose content changes.
    Modified {
        /// Object key.
        key: String,
        /// Unified-style line diff.
        diff: String,
    },
    /// A file that is deleted.
    Removed {
        /// Object key.
        key: String,
        /// Unified-style line diff.
        diff: String,
    },
}

impl FileChange {
    /// The object key.
    pub fn key(&self) -> &str {
        match self {
            FileChange::Added { key, .. }
            | FileChange::Modified { key, .. }
            | FileChange::Removed { key, .. } => key,
        }
    }

    /// The line diff.
    pub fn diff(&self) -> &str {
        match self {
            FileChange::Added { diff, .. }
            | FileChange::Modified { diff, .. }
            | FileChange::Removed { diff, .. } => diff,
        }
    }
}

/// Compares `old` and `new` file sets (key to bytes), in key order. Unchanged files are left
/// out.
pub fn diff_files(
    old: &BTreeMap<String, Vec<u8>>,
    new: &BTreeMap<String, Vec<u8>>,
) -> Vec<FileChange> {
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut changes = Vec::new();
    for key in keys {
        match (old.get(key), new.get(key)) {
            (None, Some(new)) => changes.push(FileChange::Added {
                key: key.clone(),
                diff: line_diff(key, b"", new),
            }),
            (Some(old), None) => changes.push(FileChange::Removed {
                key: key.clone(),
                diff: line_diff(key, old, b""),
            }),
            (Some(old), Some(new)) if old != new => changes.push(FileChange::Modified {
                key: key.clone(),
                diff: line_diff(key, old, new),
            }),
            _ => {}
        }
    }
    changes
}

/// A line diff with `-`/`+`/` ` prefixes over the longest common subsequence of lines.
fn line_diff(key: &str, old: &[u8], new: &[u8]) -> String {
    let old_text = String::from_utf8_lossy(old);
    let new_text = String::from_utf8_lossy(new);
    let a: Vec<&str> = old_text.lines().collect();
    let b: Vec<&str> = new_text.lines().collect();
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut out = format!("--- a/{key}\n+++ b/{key}\n");
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            let _ = writeln!(out, " {}", a[i]);
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            let _ = writeln!(out, "-{}", a[i]);
            i += 1;
        } else {
            let _ = writeln!(out, "+{}", b[j]);
            j += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_added_modified_and_removed_files() {
        let old = BTreeMap::from([
            ("a".to_string(), b"x\ny\n".to_vec()),
            ("b".to_string(), b"same\n".to_vec()),
            ("c".to_string(), b"gone\n".to_vec()),
        ]);
        let new = BTreeMap::from([
            ("a".to_string(), b"x\nz\n".to_vec()),
            ("b".to_string(), b"same\n".to_vec()),
            ("d".to_string(), b"new\n".to_vec()),
        ]);
        let changes = diff_files(&old, &new);
        assert_eq!(
            changes,
            vec![
                FileChange::Modified {
                    key: "a".into(),
                    diff: "--- a/a\n+++ b/a\n x\n-y\n+z\n".into()
                },
                FileChange::Removed {
                    key: "c".into(),
                    diff: "--- a/c\n+++ b/c\n-gone\n".into()
                },
                FileChange::Added {
                    key: "d".into(),
                    diff: "--- a/d\n+++ b/d\n+new\n".into()
                },
            ]
        );
    }
}
