//! Where the input tree comes from: a local directory, or one commit of a Git repository
//! fetched into a temporary directory.

use std::path::{Component, Path, PathBuf};
use std::sync::atomic::AtomicBool;

use tracing::{info, info_span};

/// The branch fetched when no reference is given.
pub const DEFAULT_BRANCH: &str = "main";

/// An input tree ready to be rendered.
#[derive(Debug)]
pub struct Source {
    /// The input root (the checkout, or a directory inside it).
    pub root: PathBuf,
    /// The commit, for Git input.
    pub commit: Option<String>,
    /// The commit's committer time in seconds since the Unix epoch, for Git input.
    pub commit_time: Option<i64>,
    _checkout: Option<tempfile::TempDir>,
}

/// Why the input could not be obtained.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A Git operation failed.
    #[error("git {operation} of {url} failed: {message}")]
    Git {
        /// What was being done.
        operation: &'static str,
        /// The repository, without credentials.
        url: String,
        /// The error text.
        message: String,
    },
    /// The reference does not exist.
    #[error("reference {reference} not found in {url}")]
    UnknownReference {
        /// The branch or commit.
        reference: String,
        /// The repository, without credentials.
        url: String,
    },
    /// A file could not be written while checking out.
    #[error("failed to write {}", .path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// True when `input` names a Git repository rather than a directory.
pub fn is_git_url(input: &str) -> bool {
    input.contains("://") || input.starts_with("git@")
}

/// Removes user information (tokens) from a URL for messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

impl Source {
    /// A local directory; no commit is recorded.
    pub fn dir(root: impl Into<PathBuf>) -> Source {
        Source {
            root: root.into(),
            commit: None,
            commit_time: None,
            _checkout: None,
        }
    }

    /// Fetches `url` and checks out `reference` (a branch name or a full commit id;
    /// [`DEFAULT_BRANCH`] when `None`) into a temporary directory. `subdir` selects the input
    /// root inside the repository. Blocking.
    pub fn git(
        url: &str,
        reference: Option<&str>,
        subdir: Option<&str>,
    ) -> Result<Source, SourceError> {
        let shown = redact_url(url);
        let span = info_span!("fetch", url = %shown);
        let _entered = span.enter();
        let fail = |operation: &'static str, message: String| SourceError::Git {
            operation,
            url: shown.clone(),
            message,
        };
        let checkout = tempfile::tempdir().map_err(|source| SourceError::Io {
            path: std::env::temp_dir(),
            source,
        })?;
        let repo = gix::init_bare(checkout.path().join("repo.git"))
            .map_err(|e| fail("init", e.to_string()))?;
        let remote = repo
            .remote_at(url)
            .map_err(|e| fail("remote", e.to_string()))?
            .with_refspecs(
                Some("+refs/heads/*:refs/remotes/origin/*"),
                gix::remote::Direction::Fetch,
            )
            .map_err(|e| fail("remote", e.to_string()))?;
        let connection = remote
            .connect(gix::remote::Direction::Fetch)
            .map_err(|e| fail("connect", e.to_string()))?;
        // Never consult the host's credential helpers: a daemon must not block on a prompt.
        let connection = connection.with_credentials(|_| Ok(None));
        connection
            .prepare_fetch(gix::progress::Discard, Default::default())
            .map_err(|e| fail("fetch", e.to_string()))?
            .receive(gix::progress::Discard, &AtomicBool::new(false))
            .map_err(|e| fail("fetch", e.to_string()))?;

        let reference = reference.unwrap_or(DEFAULT_BRANCH);
        let unknown = || SourceError::UnknownReference {
            reference: reference.to_string(),
            url: shown.clone(),
        };
        let id = if reference.len() == 40 && reference.bytes().all(|b| b.is_ascii_hexdigit()) {
            gix::ObjectId::from_hex(reference.as_bytes()).map_err(|_| unknown())?
        } else {
            let mut found = repo
                .find_reference(format!("refs/remotes/origin/{reference}").as_str())
                .map_err(|_| unknown())?;
            found
                .peel_to_id()
                .map_err(|e| fail("resolve", e.to_string()))?
                .detach()
        };
        let commit = repo.find_commit(id).map_err(|_| unknown())?;
        let commit_time = commit
            .time()
            .map_err(|e| fail("read commit", e.to_string()))?
            .seconds;
        let tree = commit
            .tree()
            .map_err(|e| fail("read tree", e.to_string()))?;
        let mut recorder = gix::traverse::tree::Recorder::default();
        tree.traverse()
            .breadthfirst(&mut recorder)
            .map_err(|e| fail("read tree", e.to_string()))?;
        let work = checkout.path().join("work");
        for entry in &recorder.records {
            if !entry.mode.is_blob() {
                continue;
            }
            let relative = PathBuf::from(entry.filepath.to_string());
            if !is_safe_relative(&relative) {
                continue;
            }
            let object = repo
                .find_object(entry.oid)
                .map_err(|e| fail("read blob", e.to_string()))?;
            let path = work.join(&relative);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|source| SourceError::Io {
                    path: parent.to_path_buf(),
                    source,
                })?;
            }
            std::fs::write(&path, &object.data)
                .map_err(|source| SourceError::Io { path, source })?;
        }
        std::fs::create_dir_all(&work).map_err(|source| SourceError::Io {
            path: work.clone(),
            source,
        })?;
        let root = match subdir {
            Some(dir) if !dir.is_empty() => work.join(dir),
            _ => work,
        };
        info!(revision = %id, commit_time, "checked out");
        Ok(Source {
            root,
            commit: Some(id.to_string()),
            commit_time: Some(commit_time),
            _checkout: Some(checkout),
        })
    }
}

fn is_safe_relative(path: &Path) -> bool {
    path.components().all(|c| matches!(c, Component::Normal(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_tokens() {
        assert_eq!(
            redact_url("https://x-access-token:abc@github.com/o/r.git"),
            "https://***@github.com/o/r.git"
        );
        assert_eq!(redact_url("git://127.0.0.1/r"), "git://127.0.0.1/r");
    }
}
