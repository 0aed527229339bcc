//! Guest-wide settings PID 1 makes before the service starts: host name, name servers,
//! Ctrl-Alt-Del handling and kernel limits.

use std::fmt::Write as _;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// Host name used when neither `firework.hostname` nor `/etc/hostname` gives one.
pub const DEFAULT_HOSTNAME: &str = "fc-guest";

/// `vm.max_map_count` is raised to at least this value (Elasticsearch needs it).
pub const MIN_MAX_MAP_COUNT: u64 = 262_144;

/// `RLIMIT_NOFILE` is raised to at least this value; the service inherits it.
pub const MIN_NOFILE: u64 = 65_535;

/// glibc reads at most this many `nameserver` lines (`MAXNS`).
pub const RESOLVER_MAX_SERVERS: usize = 3;

/// A failed guest-wide setting; PID 1 reports it and continues.
#[derive(Debug, thiserror::Error)]
pub enum SystemError {
    #[error("failed to set the host name to {name:?}")]
    Hostname {
        name: String,
        #[source]
        source: nix::Error,
    },
    #[error("failed to write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to disable the Ctrl-Alt-Del reboot")]
    CtrlAltDel {
        #[source]
        source: nix::Error,
    },
    #[error("failed to raise RLIMIT_NOFILE to {limit}")]
    NofileLimit {
        limit: u64,
        #[source]
        source: nix::Error,
    },
}

/// Picks the host name: the boot parameter, else the trimmed `/etc/hostname` text, else
/// [`DEFAULT_HOSTNAME`]. An empty `/etc/hostname` counts as absent.
pub fn choose_hostname(boot: Option<&str>, etc_hostname: Option<&str>) -> String {
    boot.map(str::to_owned)
        .or_else(|| {
            etc_hostname
                .map(str::trim)
                .filter(|name| !name.is_empty())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| DEFAULT_HOSTNAME.to_owned())
}

/// Sets the kernel's host name.
pub fn set_hostname(name: &str) -> Result<(), SystemError> {
    nix::unistd::sethostname(name).map_err(|source| SystemError::Hostname {
        name: name.to_owned(),
        source,
    })
}

/// Renders `/etc/resolv.conf` for the given name servers.
pub fn render_resolv_conf(servers: &[IpAddr]) -> String {
    let mut text = String::from("# Written by fc-init from the firework.dns boot parameter.\n");
    for server in servers {
        // Writing to a String cannot fail.
        let _ = writeln!(text, "nameserver {server}");
    }
    text
}

/// Replaces `path` with the rendered name servers: writes a sibling file and renames it over
/// `path`, which also replaces a symbolic link instead of writing through it.
pub fn write_resolv_conf(path: &Path, servers: &[IpAddr]) -> Result<(), SystemError> {
    let staging = path.with_file_name(".resolv.conf.fc-init");
    let write_error = |source| SystemError::Write {
        path: path.to_owned(),
        source,
    };
    std::fs::write(&staging, render_resolv_conf(servers)).map_err(write_error)?;
    std::fs::rename(&staging, path).map_err(write_error)
}

/// Stops the kernel from rebooting at once on Ctrl-Alt-Del, so that the key press (and
/// Firecracker's `SendCtrlAltDel`) reaches PID 1 as SIGINT.
pub fn disable_ctrl_alt_del() -> Result<(), SystemError> {
    nix::sys::reboot::set_cad_enabled(false).map_err(|source| SystemError::CtrlAltDel { source })
}

/// Raises `vm.max_map_count` to [`MIN_MAX_MAP_COUNT`]; a higher value is left alone.
/// Returns the value written, or `None` when nothing needed to change.
pub fn raise_max_map_count(path: &Path) -> Result<Option<u64>, SystemError> {
    let current = std::fs::read_to_string(path).map_err(|source| SystemError::Read {
        path: path.to_owned(),
        source,
    })?;
    if current
        .trim()
        .parse::<u64>()
        .is_ok_and(|value| value >= MIN_MAX_MAP_COUNT)
    {
        return Ok(None);
    }
    std::fs::write(path, MIN_MAX_MAP_COUNT.to_string()).map_err(|source| SystemError::Write {
        path: path.to_owned(),
        source,
    })?;
    Ok(Some(MIN_MAX_MAP_COUNT))
}

/// Raises the soft and hard `RLIMIT_NOFILE` to at least [`MIN_NOFILE`]; higher limits stay.
pub fn raise_nofile_limit() -> Result<(), SystemError> {
    let error = |source| SystemError::NofileLimit {
        limit: MIN_NOFILE,
        source,
    };
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(error)?;
    let new_hard = hard.max(MIN_NOFILE);
    let new_soft = soft.max(MIN_NOFILE);
    if (new_soft, new_hard) == (soft, hard) {
        return Ok(());
    }
    setrlimit(Resource::RLIMIT_NOFILE, new_soft, new_hard).map_err(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostname_choice() {
        assert_eq!(choose_hostname(Some("boot"), Some("file\n")), "boot");
        assert_eq!(choose_hostname(None, Some("  file-name \n")), "file-name");
        assert_eq!(choose_hostname(None, Some(" \n")), DEFAULT_HOSTNAME);
        assert_eq!(choose_hostname(None, None), DEFAULT_HOSTNAME);
    }

    #[test]
    fn resolv_conf_replaces_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, "nameserver 127.0.0.9\n").unwrap();
        let path = dir.path().join("resolv.conf");
        std::os::unix::fs::symlink(&target, &path).unwrap();

        let servers: Vec<IpAddr> = vec!["127.0.0.53".parse().unwrap(), "::1".parse().unwrap()];
        write_resolv_conf(&path, &servers).unwrap();

        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "# Written by fc-init from the firework.dns boot parameter.\n\
             nameserver 127.0.0.53\nnameserver ::1\n"
        );
        assert!(!std::fs::symlink_metadata(&path).unwrap().is_symlink());
        assert_eq!(
            std::fs::read_to_string(&target).unwrap(),
            "nameserver 127.0.0.9\n"
        );
    }

    #[test]
    fn resolv_conf_missing_directory_fails() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no-such-dir/resolv.conf");
        let err = write_resolv_conf(&path, &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("failed to write {}", path.display())
        );
    }

    #[test]
    fn max_map_count_only_raises() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("max_map_count");
        std::fs::write(&path, "65530\n").unwrap();
        assert_eq!(raise_max_map_count(&path).unwrap(), Some(MIN_MAX_MAP_COUNT));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "262144");

        std::fs::write(&path, "1000000\n").unwrap();
        assert_eq!(raise_max_map_count(&path).unwrap(), None);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "1000000\n");
    }
}
