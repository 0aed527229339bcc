//! The per-VM record: what the runtime launched, written before any side effect so that a
//! restarted agent can find, verify and adopt or clean up the VM.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::VmmError;
use crate::process::ProcessIdentity;
use crate::spec::VmSpec;

/// Version of the record format; a record with another version is reported, never adopted.
pub const RECORD_FORMAT: u32 = 1;

/// Lifecycle state stored in a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordState {
    /// Written before the process is spawned; the VM is not yet configured.
    Starting,
    /// `GET /` reported `Running` after `InstanceStart`.
    Running,
    /// A stop was requested and the stop sequence is running.
    Stopping,
    /// The runtime stopped the VM on request.
    Stopped,
    /// The process ended without a stop request, or failed to start.
    Exited,
}

impl RecordState {
    /// Returns the state's name as a record stores it: `starting`, `running`, `stopping`,
    /// `stopped` or `exited`.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordState::Starting => "starting",
            RecordState::Running => "running",
            RecordState::Stopping => "stopping",
            RecordState::Stopped => "stopped",
            RecordState::Exited => "exited",
        }
    }
}

/// How the VM process was launched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LaunchMode {
    /// `firecracker` spawned directly.
    Direct,
    /// Spawned through the jailer; the jail and cgroup are removed when the VM ends.
    Jailer {
        /// `<chroot_base>/<exec_name>/<vm_id>`, the directory the jailer creates.
        jail_dir: PathBuf,
        /// The VM's cgroup v2 directory, when cgroup limits were requested.
        cgroup_dir: Option<PathBuf>,
    },
}

/// How a VM process ended, as far as the runtime could observe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    /// Exit code, when the process exited normally and was our child.
    pub code: Option<i32>,
    /// Terminating signal number, when the process was killed and was our child.
    pub signal: Option<i32>,
}

impl std::fmt::Display for ExitInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.code, self.signal) {
            (Some(code), _) => write!(f, "exit code {code}"),
            (None, Some(signal)) => {
                let name = nix::sys::signal::Signal::try_from(signal)
                    .map(|s| s.as_str())
                    .unwrap_or("unknown signal");
                write!(f, "signal {signal} ({name})")
            }
            (None, None) => write!(f, "unknown status (not our child process)"),
        }
    }
}

/// The persisted state of one service's VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmRecord {
    /// Record format version, [`RECORD_FORMAT`].
    pub format: u32,
    /// Service name, equal to the directory name.
    pub service: String,
    /// Firecracker instance id.
    pub vm_id: String,
    /// Number of starts of this service recorded in this state directory, counting this one.
    pub generation: u64,
    /// The spec the VM was launched with.
    pub spec: VmSpec,
    /// [`VmSpec::hash`] of `spec`.
    pub spec_hash: String,
    /// Lifecycle state.
    pub state: RecordState,
    /// Direct or jailed launch.
    pub launch: LaunchMode,
    /// API socket path on the host.
    pub socket_path: PathBuf,
    /// The `--api-sock` value on the process command line; it differs from `socket_path`
    /// in jailer mode, where it is a path inside the jail.
    pub cmdline_socket: PathBuf,
    /// Log file receiving the process's stdout and stderr.
    pub log_path: PathBuf,
    /// Pid and start time, once the process is spawned.
    pub process: Option<ProcessIdentity>,
    /// How the process ended, once it has.
    pub exit: Option<ExitInfo>,
    /// Milliseconds since the Unix epoch of the last write.
    pub updated_at_ms: u64,
}

impl VmRecord {
    /// Writes the record to `path` atomically: temporary file, fsync, rename, fsync of the
    /// directory. Readers see either the old or the new record, also after a power loss.
    pub fn write_atomic(&mut self, path: &Path) -> Result<(), VmmError> {
        self.updated_at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let service = self.service.as_str();
        let dir = path.parent().unwrap_or(Path::new("."));
        let tmp = dir.join(format!(".{}.tmp", crate::layout::RECORD_FILE));
        let mut bytes = serde_json::to_vec_pretty(self).map_err(|e| {
            VmmError::io(
                service,
                "serialize vm record",
                path,
                std::io::Error::other(e),
            )
        })?;
        bytes.push(b'\n');

        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| VmmError::io(service, "create temporary record", &tmp, e))?;
        file.write_all(&bytes)
            .map_err(|e| VmmError::io(service, "write temporary record", &tmp, e))?;
        file.sync_all()
            .map_err(|e| VmmError::io(service, "fsync temporary record", &tmp, e))?;
        drop(file);
        fs::rename(&tmp, path).map_err(|e| VmmError::io(service, "rename record into", path, e))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| VmmError::io(service, "fsync directory", dir, e))?;
        Ok(())
    }

    /// Reads the record at `path`; `service` names the directory for error messages.
    pub fn read(service: &str, path: &Path) -> Result<VmRecord, VmmError> {
        let bytes = fs::read(path).map_err(|e| VmmError::io(service, "read vm record", path, e))?;
        let record: VmRecord =
            serde_json::from_slice(&bytes).map_err(|source| VmmError::RecordInvalid {
                service: service.to_owned(),
                path: path.to_owned(),
                source,
            })?;
        if record.format != RECORD_FORMAT || record.service != service {
            return Err(VmmError::RecordInvalid {
                service: service.to_owned(),
                path: path.to_owned(),
                source: serde::de::Error::custom(format!(
                    "record has format {} and service {:?}, expected format {RECORD_FORMAT} and service {service:?}",
                    record.format, record.service
                )),
            });
        }
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::VmSpec;

    pub(crate) fn sample(service: &str) -> VmRecord {
        let spec = VmSpec {
            service: service.to_owned(),
            vm_id: format!("{service}-1"),
            kernel_path: "/k".into(),
            rootfs_path: "/r".into(),
            read_only: true,
            vcpus: 1,
            memory_mib: 128,
            kernel_args: String::new(),
            network: None,
            log_path: None,
        };
        VmRecord {
            format: RECORD_FORMAT,
            service: service.to_owned(),
            vm_id: spec.vm_id.clone(),
            generation: 1,
            spec_hash: spec.hash(),
            spec,
            state: RecordState::Starting,
            launch: LaunchMode::Direct,
            socket_path: "/s/firecracker.socket".into(),
            cmdline_socket: "/s/firecracker.socket".into(),
            log_path: "/s/firecracker.log".into(),
            process: Some(ProcessIdentity {
                pid: 42,
                start_time_ticks: 1234,
            }),
            exit: None,
            updated_at_ms: 0,
        }
    }

    #[test]
    fn record_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(crate::layout::RECORD_FILE);
        let mut record = sample("web");
        record.write_atomic(&path).unwrap();
        assert!(record.updated_at_ms > 0);
        let read = VmRecord::read("web", &path).unwrap();
        assert_eq!(read, record);
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("record.json")]);
    }

    #[test]
    fn rewrite_replaces_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(crate::layout::RECORD_FILE);
        let mut record = sample("web");
        record.write_atomic(&path).unwrap();
        record.state = RecordState::Running;
        record.write_atomic(&path).unwrap();
        assert_eq!(
            VmRecord::read("web", &path).unwrap().state,
            RecordState::Running
        );
    }

    #[test]
    fn record_of_other_service_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(crate::layout::RECORD_FILE);
        sample("web").write_atomic(&path).unwrap();
        let err = VmRecord::read("api", &path).unwrap_err();
        assert!(matches!(err, VmmError::RecordInvalid { ref service, .. } if service == "api"));
        assert!(
            std::error::Error::source(&err)
                .unwrap()
                .to_string()
                .contains("expected format 1 and service \"api\"")
        );
    }

    #[test]
    fn truncated_record_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(crate::layout::RECORD_FILE);
        fs::write(&path, b"{\"format\":1,").unwrap();
        let err = VmRecord::read("web", &path).unwrap_err();
        assert!(matches!(err, VmmError::RecordInvalid { .. }));
        assert_eq!(fs::read(&path).unwrap(), b"{\"format\":1,");
    }

    #[test]
    fn exit_info_display() {
        let killed = ExitInfo {
            code: None,
            signal: Some(9),
        };
        assert_eq!(killed.to_string(), "signal 9 (SIGKILL)");
        let exited = ExitInfo {
            code: Some(1),
            signal: None,
        };
        assert_eq!(exited.to_string(), "exit code 1");
    }
}
