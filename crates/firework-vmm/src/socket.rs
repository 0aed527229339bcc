//! Finding out whether an API socket path is still owned by a live process, and removing it
//! only when it is not.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::path::Path;

use crate::process::{find_processes, has_flag_value};

/// Longest path that fits into `sockaddr_un.sun_path` with its terminating NUL.
pub const MAX_SOCKET_PATH_LEN: usize = 107;

/// The expected owner of a socket path, for the checks that remove a stale socket.
#[derive(Debug, Clone)]
pub struct SocketClaim<'a> {
    /// The socket path on the host.
    pub host_path: &'a Path,
    /// The `--api-sock` value on the owner's command line (differs from `host_path` in a jail).
    pub cmdline_socket: &'a Path,
    /// The Firecracker `--id`; required to match as well when `host_path != cmdline_socket`,
    /// because every jailed Firecracker uses the same in-jail socket path.
    pub vm_id: &'a str,
}

/// Returns a description of a live owner of the socket, or `None` when no live process
/// owns it. The first check connects to the socket. The second looks for a socket bound to
/// the path in `/proc/net/unix`, which also finds a process between `bind` and `listen`.
/// The third looks for a command line naming the socket, which finds a process that has not
/// bound yet.
pub fn find_live_owner(claim: &SocketClaim<'_>) -> Option<String> {
    match UnixStream::connect(claim.host_path) {
        Ok(_) => return Some("a process accepts connections on it".to_owned()),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::debug!(path = %claim.host_path.display(), error = %e, "connect to check socket ownership failed");
        }
    }
    if listed_in_proc_net_unix(claim.host_path) {
        return Some("a bound socket with this path is listed in /proc/net/unix".to_owned());
    }
    let jailed = claim.host_path != claim.cmdline_socket;
    let pids = find_processes(|args: &[OsString]| {
        has_flag_value(args, "--api-sock", claim.cmdline_socket.as_os_str())
            && (!jailed || has_flag_value(args, "--id", claim.vm_id.as_ref()))
    });
    pids.first()
        .map(|pid| format!("process {pid} names it in its command line"))
}

fn listed_in_proc_net_unix(path: &Path) -> bool {
    let Ok(table) = fs::read_to_string("/proc/net/unix") else {
        return false;
    };
    let expected = path.as_os_str().to_string_lossy();
    // Columns: Num RefCount Protocol Flags Type St Inode [Path]; the path is the eighth.
    table
        .lines()
        .skip(1)
        .filter_map(|line| line.split_ascii_whitespace().nth(7))
        .any(|bound| bound == expected)
}

/// Outcome of [`remove_if_stale`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StaleCheck {
    /// Nothing exists at the path.
    Absent,
    /// A socket without a live owner was removed.
    Removed,
    /// A live process owns the socket; it was left in place.
    Owned(String),
    /// Something other than a socket exists at the path; it was left in place.
    NotASocket,
}

/// Removes the socket at `claim.host_path` only after [`find_live_owner`] found no owner.
pub fn remove_if_stale(claim: &SocketClaim<'_>) -> io::Result<StaleCheck> {
    let metadata = match fs::symlink_metadata(claim.host_path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(StaleCheck::Absent),
        Err(e) => return Err(e),
    };
    if !metadata.file_type().is_socket() {
        return Ok(StaleCheck::NotASocket);
    }
    if let Some(owner) = find_live_owner(claim) {
        return Ok(StaleCheck::Owned(owner));
    }
    match fs::remove_file(claim.host_path) {
        Ok(()) => Ok(StaleCheck::Removed),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(StaleCheck::Absent),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::{UnixDatagram, UnixListener};
    use std::os::unix::process::CommandExt;

    fn claim(path: &Path) -> SocketClaim<'_> {
        SocketClaim {
            host_path: path,
            cmdline_socket: path,
            vm_id: "vm-1",
        }
    }

    #[test]
    fn absent_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.sock");
        assert_eq!(remove_if_stale(&claim(&path)).unwrap(), StaleCheck::Absent);
    }

    #[test]
    fn stale_socket_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.sock");
        drop(UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        assert_eq!(remove_if_stale(&claim(&path)).unwrap(), StaleCheck::Removed);
        assert!(!path.exists());
    }

    #[test]
    fn listening_socket_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.sock");
        let _listener = UnixListener::bind(&path).unwrap();
        let check = remove_if_stale(&claim(&path)).unwrap();
        assert_eq!(
            check,
            StaleCheck::Owned("a process accepts connections on it".to_owned())
        );
        assert!(path.exists());
    }

    #[test]
    fn bound_not_listening_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.sock");
        // A datagram socket is bound but refuses stream connections, like a listener
        // between bind() and listen().
        let _bound = UnixDatagram::bind(&path).unwrap();
        let check = remove_if_stale(&claim(&path)).unwrap();
        assert_eq!(
            check,
            StaleCheck::Owned(
                "a bound socket with this path is listed in /proc/net/unix".to_owned()
            )
        );
        assert!(path.exists());
    }

    #[test]
    fn regular_file_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.sock");
        fs::write(&path, b"x").unwrap();
        assert_eq!(
            remove_if_stale(&claim(&path)).unwrap(),
            StaleCheck::NotASocket
        );
        assert!(path.exists());
    }

    #[test]
    fn process_naming_socket_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.sock");
        drop(UnixListener::bind(&path).unwrap());
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg("sleep 30; true")
            .arg("--api-sock")
            .arg(&path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        crate::process::tests::wait_for_exec(child.id() as i32);
        let check = remove_if_stale(&claim(&path));
        crate::process::tests::kill_group(child.id() as i32);
        child.wait().unwrap();
        assert_eq!(
            check.unwrap(),
            StaleCheck::Owned(format!(
                "process {} names it in its command line",
                child.id()
            ))
        );
        assert!(path.exists());
    }
}
