//! Settings of the VM runtime.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use crate::jailer::JailerConfig;
use crate::stop::StopTimeouts;

/// Settings of a [`crate::VmRuntime`].
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Root of the runtime's state; VM records live under `<state_dir>/vms/<service>/`.
    pub state_dir: PathBuf,
    /// The `firecracker` binary.
    pub firecracker_bin: PathBuf,
    /// Jailer settings; `None` spawns Firecracker directly.
    pub jailer: Option<JailerConfig>,
    /// Environment variables added to the inherited environment of each VM process.
    pub child_env: Vec<(OsString, OsString)>,
    /// How long a new process gets to accept connections on its API socket.
    pub socket_timeout: Duration,
    /// Timeout of each API request, connect included.
    pub api_timeout: Duration,
    /// Durations of the stop sequence.
    pub stop: StopTimeouts,
    /// Size in bytes above which a VM log is moved to `<log>.1` and emptied.
    pub log_max_bytes: u64,
    /// How often log sizes are checked against `log_max_bytes`.
    pub log_check_interval: Duration,
    /// How often `/proc` is checked for the exit of an adopted VM, which is not our child.
    pub adopted_poll_interval: Duration,
    /// Number of log lines included in crash reports and start errors.
    pub log_tail_lines: usize,
}

impl RuntimeConfig {
    /// Settings with the default durations and limits.
    pub fn new(state_dir: impl Into<PathBuf>, firecracker_bin: impl Into<PathBuf>) -> Self {
        RuntimeConfig {
            state_dir: state_dir.into(),
            firecracker_bin: firecracker_bin.into(),
            jailer: None,
            child_env: Vec::new(),
            socket_timeout: Duration::from_secs(5),
            api_timeout: Duration::from_secs(10),
            stop: StopTimeouts::default(),
            log_max_bytes: 8 << 20,
            log_check_interval: Duration::from_secs(10),
            adopted_poll_interval: Duration::from_millis(200),
            log_tail_lines: 20,
        }
    }
}
