//! Blocking Git operations through `gix`: fetching one branch into a bare clone and reading
//! files from a commit.

use std::num::NonZeroU32;
use std::path::Path;
use std::sync::atomic::AtomicBool;

use gix::ObjectId;

use super::auth::{Secret, TOKEN_USER};
use crate::error::StoreErrorKind;

/// A classified failure of a blocking Git operation. The message is not yet redacted, so the
/// caller must redact it before showing it.
#[derive(Debug)]
pub(super) struct GitFailure {
    pub kind: StoreErrorKind,
    pub message: String,
}

impl GitFailure {
    fn new(kind: StoreErrorKind, message: impl Into<String>) -> GitFailure {
        GitFailure {
            kind,
            message: message.into(),
        }
    }

    fn from_gix(context: &str, error: &gix::Error) -> GitFailure {
        GitFailure::new(classify(error), format!("{context}: {}", chain(error)))
    }
}

fn chain(error: &gix::Error) -> String {
    let mut text = String::new();
    for inner in error.iter_errors() {
        let inner_text = inner.to_string();
        if text.contains(&inner_text) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&inner_text);
    }
    text
}

/// Maps a `gix` error to a store error kind, looking at I/O errors first because a refused
/// connection is the clearest signal.
fn classify(error: &gix::Error) -> StoreErrorKind {
    use std::io::ErrorKind as Io;
    for inner in error.iter_errors() {
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            match io.kind() {
                Io::PermissionDenied => return StoreErrorKind::Denied,
                Io::ConnectionRefused
                | Io::ConnectionReset
                | Io::ConnectionAborted
                | Io::NotConnected
                | Io::TimedOut
                | Io::UnexpectedEof
                | Io::BrokenPipe
                | Io::HostUnreachable
                | Io::NetworkUnreachable
                | Io::Interrupted => return StoreErrorKind::Unreachable,
                _ => {}
            }
        }
    }
    if error.classify().is_unauthenticated() || error.classify().is_permission_denied() {
        return StoreErrorKind::Denied;
    }
    let text = chain(error).to_ascii_lowercase();
    // git daemon sends the same text for a missing and for an unexported repository.
    if text.contains("repository not exported") {
        return StoreErrorKind::NotFound;
    }
    if text.contains("401")
        || text.contains("403")
        || text.contains("authentication")
        || text.contains("refuses to use the given credentials")
    {
        return StoreErrorKind::Denied;
    }
    if error.classify().is_not_found() || text.contains("not found") || text.contains("404") {
        return StoreErrorKind::NotFound;
    }
    StoreErrorKind::Unreachable
}

/// Opens the bare clone at `dir`, creating it when it is missing or unreadable.
fn open_or_init(dir: &Path) -> Result<gix::Repository, GitFailure> {
    if dir.exists() {
        match gix::open(dir) {
            Ok(repo) => return Ok(repo),
            Err(error) => {
                tracing::warn!(path = %dir.display(), error = %chain(&error), "removing unreadable clone");
                std::fs::remove_dir_all(dir).map_err(|e| {
                    GitFailure::new(
                        StoreErrorKind::Unreachable,
                        format!("failed to remove unreadable clone {}: {e}", dir.display()),
                    )
                })?;
            }
        }
    }
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent).map_err(|e| {
            GitFailure::new(
                StoreErrorKind::Unreachable,
                format!("failed to create {}: {e}", parent.display()),
            )
        })?;
    }
    gix::init_bare(dir).map_err(|e| GitFailure::from_gix("failed to create the clone", &e))
}

/// Fetches `branch` of `url` into the bare clone at `dir` with the given depth and returns
/// the commit the remote branch points to. A force-pushed branch is followed because the
/// refspec is forced (`+`).
pub(super) fn fetch_branch(
    dir: &Path,
    url: &str,
    branch: &str,
    token: Option<&Secret>,
    depth: Option<NonZeroU32>,
    interrupt: &AtomicBool,
) -> Result<ObjectId, GitFailure> {
    let repo = open_or_init(dir)?;

    let refspec = format!("+refs/heads/{branch}:refs/remotes/origin/{branch}");
    let remote = repo
        .remote_at(url)
        .and_then(|remote| {
            remote.with_refspecs(Some(refspec.as_str()), gix::remote::Direction::Fetch)
        })
        .map_err(|e| {
            GitFailure::new(
                StoreErrorKind::InvalidSettings,
                format!("invalid remote: {}", chain(&e)),
            )
        })?;
    let connection = remote
        .connect(gix::remote::Direction::Fetch)
        .map_err(|e| GitFailure::from_gix("failed to connect", &e))?;

    let token = token.cloned();
    // Credentials come only from the token. Without one, the credential helpers and prompts of
    // the host's Git configuration are skipped, so a daemon never blocks on a password prompt.
    let connection = connection.with_credentials(move |action| match (&token, action) {
        (Some(token), gix::credentials::helper::Action::Get(context)) => {
            Ok(Some(gix::credentials::protocol::Outcome {
                credentials: gix::sec::identity::Credentials::UsernamePassword {
                    username: TOKEN_USER.to_owned(),
                    password: token.expose().to_owned(),
                    oauth_refresh_token: None,
                },
                next: context.into(),
            }))
        }
        _ => Ok(None),
    });
    let prepare = connection
        .prepare_fetch(gix::progress::Discard, Default::default())
        .map_err(|e| GitFailure::from_gix("failed to list remote references", &e))?;

    let wanted = format!("refs/heads/{branch}");
    let remote_tip = prepare
        .ref_map()
        .mappings
        .iter()
        .find(|mapping| {
            mapping
                .remote
                .as_name()
                .is_some_and(|name| name == wanted.as_str())
        })
        .and_then(|mapping| mapping.remote.as_id().map(|id| id.to_owned()));
    let Some(tip) = remote_tip else {
        return Err(GitFailure::new(
            StoreErrorKind::NotFound,
            format!("branch `{branch}` does not exist on the remote"),
        ));
    };
    let prepare = match depth {
        Some(depth) => prepare.with_shallow(gix::remote::fetch::Shallow::DepthAtRemote(depth)),
        None => prepare,
    };
    prepare
        .receive(gix::progress::Discard, interrupt)
        .map_err(|e| GitFailure::from_gix("failed to fetch", &e))?;
    Ok(tip)
}

/// Reads the file at `path` in the tree of `commit`; `Ok(None)` when it does not exist.
pub(super) fn read_file(
    dir: &Path,
    commit: ObjectId,
    path: &str,
) -> Result<Option<Vec<u8>>, GitFailure> {
    let repo = gix::open(dir).map_err(|e| GitFailure::from_gix("failed to open the clone", &e))?;
    let tree = commit_tree(&repo, commit)?;
    let entry = tree
        .lookup_entry_by_path(path)
        .map_err(|e| GitFailure::from_gix("failed to look up file", &e))?;
    let Some(entry) = entry else { return Ok(None) };
    if !entry.mode().is_blob() {
        return Err(GitFailure::new(
            StoreErrorKind::InvalidContent,
            format!("{path} is not a file"),
        ));
    }
    let object = entry
        .object()
        .map_err(|e| GitFailure::from_gix("failed to read file", &e))?;
    Ok(Some(object.detach().data))
}

/// Lists the file names directly inside folder `dir_path` of `commit`; empty when the folder
/// does not exist.
pub(super) fn list_files(
    dir: &Path,
    commit: ObjectId,
    dir_path: &str,
) -> Result<Vec<String>, GitFailure> {
    let repo = gix::open(dir).map_err(|e| GitFailure::from_gix("failed to open the clone", &e))?;
    let tree = commit_tree(&repo, commit)?;
    let entry = tree
        .lookup_entry_by_path(dir_path)
        .map_err(|e| GitFailure::from_gix("failed to look up folder", &e))?;
    let Some(entry) = entry else {
        return Ok(Vec::new());
    };
    if !entry.mode().is_tree() {
        return Ok(Vec::new());
    }
    let subtree = entry
        .object()
        .map_err(|e| GitFailure::from_gix("failed to read folder", &e))?
        .into_tree();
    let mut names = Vec::new();
    let decoded = subtree.decode().map_err(|e| {
        GitFailure::new(
            StoreErrorKind::InvalidContent,
            format!("failed to decode folder: {e}"),
        )
    })?;
    for item in decoded.entries.iter() {
        if item.mode.is_blob() {
            names.push(item.filename.to_string());
        }
    }
    Ok(names)
}

fn commit_tree(repo: &gix::Repository, commit: ObjectId) -> Result<gix::Tree<'_>, GitFailure> {
    repo.find_object(commit)
        .map_err(|e| {
            GitFailure::new(
                StoreErrorKind::Unreachable,
                format!("commit {commit} is missing from the clone: {e}"),
            )
        })?
        .peel_to_tree()
        .map_err(|e| GitFailure::from_gix("failed to read the commit's tree", &e))
}
