//! Snapshot create and load.
//!
//! The emulator writes its own state file: a JSON document with the snapshot data format
//! version and the `GET /vm/config` view of the VM. The memory file is a sparse file of the
//! guest memory size. Loading reopens every drive, TAP and vsock socket at its recorded (or
//! overridden) path, so a missing resource fails the load as it does in Firecracker. Any
//! failure during restore ends the process with status 1 after the 400 reply.

use std::fs::{File, OpenOptions};

use serde_json::Value;

use super::{InstanceState, NOT_SUPPORTED_AFTER_START, Vmm};
use crate::cli::SNAPSHOT_VERSION;
use crate::errno::musl_error_text;
use crate::payload::{
    DriveBody, MachineConfigBody, MemoryBackendType, NetworkInterfaceBody, SnapshotCreateBody,
    SnapshotLoadBody, VsockBody,
};

/// Key of the emulator's state file that carries the data format version.
const VERSION_KEY: &str = "emulator_snapshot_version";

/// Failure of a snapshot load. A `fatal` failure ends the process after the reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadFailure {
    pub message: String,
    pub fatal: bool,
}

impl Vmm {
    /// Handles `PUT /snapshot/create`, which needs a paused VM.
    pub fn create_snapshot(&mut self, body: SnapshotCreateBody) -> Result<(), String> {
        self.require_post_boot()?;
        if self.state == InstanceState::Running {
            return Err("Create snapshot error: Cannot save the microVM state: Operation not allowed: save/restore unavailable while running".into());
        }
        let config: Value = serde_json::from_str(&self.full_config()).unwrap_or(Value::Null);
        let state = serde_json::json!({
            VERSION_KEY: SNAPSHOT_VERSION.trim_start_matches('v'),
            "config": config,
        });
        std::fs::write(&body.snapshot_path, state.to_string()).map_err(|error| {
            format!(
                "Create snapshot error: Cannot save the microVM state: Failed to open snapshot file: {}",
                musl_error_text(&error)
            )
        })?;
        let memory = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&body.mem_file_path)
            .and_then(|file| {
                file.set_len(self.machine.mem_size_mib as u64 * 1024 * 1024)?;
                Ok(file)
            });
        memory.map_err(|error| {
            format!(
                "Create snapshot error: Cannot save the microVM memory: {}",
                musl_error_text(&error)
            )
        })?;
        Ok(())
    }

    /// Handles `PUT /snapshot/load`.
    pub fn load_snapshot(&mut self, body: SnapshotLoadBody) -> Result<(), LoadFailure> {
        let rejected = |message: String| LoadFailure {
            message,
            fatal: false,
        };
        if self.is_started() {
            return Err(rejected(NOT_SUPPORTED_AFTER_START.into()));
        }
        if self.boot_specific_configured {
            return Err(rejected("Load snapshot error: Loading a microVM snapshot not allowed after configuring boot-specific resources.".into()));
        }

        let fatal = |cause: String| LoadFailure {
            message: format!("Load snapshot error: Failed to restore from snapshot: {cause}"),
            fatal: true,
        };
        let text = std::fs::read_to_string(&body.snapshot_path).map_err(|error| {
            fatal(format!(
                "Failed to get snapshot state from file: Failed to open snapshot file: {}",
                musl_error_text(&error)
            ))
        })?;
        let state = serde_json::from_str::<Value>(&text)
            .ok()
            .filter(|state: &Value| state.get(VERSION_KEY).is_some())
            .ok_or_else(|| {
                fatal("Failed to get snapshot state from file: Snapshot file is not a valid emulator snapshot".into())
            })?;

        let memory = match (&body.mem_backend, &body.mem_file_path) {
            // NOTE: a UFFD backend is a socket served by a page-fault handler process. The
            // emulator does not talk to it and only checks that the socket exists.
            (Some(backend), _) if backend.backend_type == MemoryBackendType::Uffd => {
                std::fs::metadata(&backend.backend_path).map(|_| ())
            }
            (Some(backend), _) => File::open(&backend.backend_path).map(|_| ()),
            (None, path) => File::open(path.as_deref().unwrap_or_default()).map(|_| ()),
        };
        memory.map_err(|error| {
            fatal(format!(
                "Failed to load guest memory: {}",
                musl_error_text(&error)
            ))
        })?;

        self.restore(&state["config"], &body)
            .map_err(|cause| fatal(format!("Failed to build microVM from snapshot: {cause}")))?;
        self.state = if body.resume_vm.unwrap_or(false) {
            InstanceState::Running
        } else {
            InstanceState::Paused
        };
        self.flush_metrics();
        Ok(())
    }

    /// Rebuilds the devices recorded in a snapshot, reopening their host resources.
    fn restore(&mut self, config: &Value, body: &SnapshotLoadBody) -> Result<(), String> {
        let decode_error = |error: serde_json::Error| format!("invalid snapshot state: {error}");
        let machine: MachineConfigBody =
            serde_json::from_value(config["machine-config"].clone()).map_err(decode_error)?;
        self.apply_machine_config(super::MachineConfig {
            vcpu_count: machine.vcpu_count,
            mem_size_mib: machine.mem_size_mib,
            smt: machine.smt,
            cpu_template: machine.cpu_template,
            track_dirty_pages: body.track_dirty_pages.unwrap_or(machine.track_dirty_pages),
            huge_pages: machine.huge_pages,
        })?;

        let drives: Vec<DriveBody> =
            serde_json::from_value(config["drives"].clone()).map_err(decode_error)?;
        for drive in drives {
            self.put_drive(drive)?;
        }

        let nics: Vec<NetworkInterfaceBody> =
            serde_json::from_value(config["network-interfaces"].clone()).map_err(decode_error)?;
        for mut nic in nics {
            if let Some(found) = body
                .network_overrides
                .iter()
                .find(|entry| entry.iface_id == nic.iface_id)
            {
                nic.host_dev_name = found.host_dev_name.clone();
            }
            self.put_network_interface(nic)?;
        }

        if let Some(vsock) = config.get("vsock").filter(|vsock| !vsock.is_null()) {
            let mut vsock: VsockBody =
                serde_json::from_value(vsock.clone()).map_err(decode_error)?;
            if let Some(found) = &body.vsock_override {
                vsock.uds_path = found.uds_path.clone();
            }
            self.set_vsock(vsock)?;
        }
        Ok(())
    }
}
