//! Paths inside the runtime's state directory.

use std::path::{Path, PathBuf};

/// File name of a VM's record inside its service directory.
pub const RECORD_FILE: &str = "record.json";
/// File name of the API socket of a VM launched without the jailer.
pub const SOCKET_FILE: &str = "firecracker.socket";
/// File name of the live Firecracker log.
pub const LOG_FILE: &str = "firecracker.log";
/// Suffix of the previous log: the log of the previous start, or the part cut off by the size cap.
pub const ROTATED_LOG_SUFFIX: &str = ".1";

/// The layout `<state_dir>/vms/<service>/{record.json, firecracker.socket, firecracker.log}`.
#[derive(Debug, Clone)]
pub struct StateLayout {
    state_dir: PathBuf,
}

impl StateLayout {
    /// Creates the layout rooted at `state_dir`; nothing is created on disk.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        StateLayout {
            state_dir: state_dir.into(),
        }
    }

    /// The state directory itself.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// `<state_dir>/vms`, which holds one directory per service.
    pub fn vms_dir(&self) -> PathBuf {
        self.state_dir.join("vms")
    }

    /// `<state_dir>/vms/<service>`. The caller validates `service` first.
    pub fn service_dir(&self, service: &str) -> PathBuf {
        self.vms_dir().join(service)
    }

    /// `<state_dir>/vms/<service>/record.json`.
    pub fn record_path(&self, service: &str) -> PathBuf {
        self.service_dir(service).join(RECORD_FILE)
    }

    /// `<state_dir>/vms/<service>/firecracker.socket`, the socket path of an unjailed VM.
    pub fn socket_path(&self, service: &str) -> PathBuf {
        self.service_dir(service).join(SOCKET_FILE)
    }

    /// `<state_dir>/vms/<service>/firecracker.log`, the default log path.
    pub fn log_path(&self, service: &str) -> PathBuf {
        self.service_dir(service).join(LOG_FILE)
    }
}

/// The path a log is moved to when it is rotated: the same path with `.1` appended.
pub fn rotated_log_path(log_path: &Path) -> PathBuf {
    let mut name = log_path.as_os_str().to_owned();
    name.push(ROTATED_LOG_SUFFIX);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_paths() {
        let layout = StateLayout::new("/var/lib/firework");
        assert_eq!(
            layout.record_path("web"),
            Path::new("/var/lib/firework/vms/web/record.json")
        );
        assert_eq!(
            layout.socket_path("web"),
            Path::new("/var/lib/firework/vms/web/firecracker.socket")
        );
        assert_eq!(
            rotated_log_path(&layout.log_path("web")),
            Path::new("/var/lib/firework/vms/web/firecracker.log.1")
        );
    }
}
