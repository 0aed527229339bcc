//! Errors of the VM runtime.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Failure of a VM runtime operation. Every variant names the service and, where one
/// exists, the VM id and the path or operation involved.
#[derive(Debug, thiserror::Error)]
pub enum VmmError {
    /// A field of the VM spec or runtime configuration is invalid.
    #[error("invalid vm spec for service {service:?}: {reason}")]
    InvalidSpec { service: String, reason: String },

    /// A file system operation failed.
    #[error("failed to {operation} {path} (service {service})")]
    Io {
        service: String,
        operation: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A file system operation on the runtime's own files, outside any service, failed.
    #[error("failed to {operation} {path}")]
    RuntimeIo {
        operation: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A VM record exists but cannot be parsed.
    #[error("vm record {path} is invalid (service {service})")]
    RecordInvalid {
        service: String,
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    /// The service already has a live VM; stop it first.
    #[error("service {service} already has a running vm {vm_id} (pid {pid}); stop it first")]
    AlreadyRunning {
        service: String,
        vm_id: String,
        pid: i32,
    },

    /// The API socket path is held by a live process, so it was left in place.
    #[error("api socket {path} of service {service} is in use: {owner}")]
    SocketInUse {
        service: String,
        path: PathBuf,
        owner: String,
    },

    /// The API socket path does not fit into `sockaddr_un`.
    #[error(
        "api socket path {path} of service {service} is {len} bytes long, the maximum is 107; use a shorter state_dir"
    )]
    SocketPathTooLong {
        service: String,
        path: PathBuf,
        len: usize,
    },

    /// The Firecracker or jailer process could not be spawned.
    #[error("failed to spawn {program} for vm {vm_id} (service {service})")]
    Spawn {
        service: String,
        vm_id: String,
        program: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The VM process exited before it was running.
    #[error(
        "vm {vm_id} (service {service}) exited during {operation} with {status}; last log lines:\n{log_tail}"
    )]
    ExitedEarly {
        service: String,
        vm_id: String,
        operation: &'static str,
        status: String,
        log_tail: String,
    },

    /// The API socket did not accept connections before the deadline.
    #[error("api socket {path} of vm {vm_id} (service {service}) not ready within {timeout:?}")]
    SocketTimeout {
        service: String,
        vm_id: String,
        path: PathBuf,
        timeout: Duration,
        #[source]
        source: Box<firework_firecracker::WaitError>,
    },

    /// A Firecracker API request failed.
    #[error("firecracker api request {operation} failed for vm {vm_id} (service {service})")]
    Api {
        service: String,
        vm_id: String,
        operation: &'static str,
        #[source]
        source: Box<firework_firecracker::FirecrackerError>,
    },

    /// `GET /` reported a state other than `Running` after `InstanceStart`.
    #[error(
        "vm {vm_id} (service {service}) reports state {state:?} after InstanceStart, expected \"Running\""
    )]
    NotRunning {
        service: String,
        vm_id: String,
        state: String,
    },

    /// Sending a signal to the VM process failed.
    #[error("failed to send {signal} to pid {pid} of vm {vm_id} (service {service})")]
    Signal {
        service: String,
        vm_id: String,
        pid: i32,
        signal: &'static str,
        #[source]
        source: nix::Error,
    },

    /// The VM process was still alive after SIGKILL and the final wait.
    #[error("pid {pid} of vm {vm_id} (service {service}) is still alive {waited:?} after SIGKILL")]
    StopTimeout {
        service: String,
        vm_id: String,
        pid: i32,
        waited: Duration,
    },

    /// The runtime was shut down while the operation was running.
    #[error("vm runtime shut down during {operation} (service {service})")]
    ShutDown {
        service: String,
        operation: &'static str,
    },
}

impl VmmError {
    /// Firecracker's `fault_message` when an API request was rejected.
    pub fn fault_message(&self) -> Option<&str> {
        match self {
            VmmError::Api { source, .. } => source.fault_message(),
            _ => None,
        }
    }

    pub(crate) fn io(
        service: &str,
        operation: &'static str,
        path: impl Into<PathBuf>,
        source: io::Error,
    ) -> Self {
        VmmError::Io {
            service: service.to_owned(),
            operation,
            path: path.into(),
            source,
        }
    }
}
