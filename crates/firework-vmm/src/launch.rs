//! Starting a VM: record first, then the jail or stale-socket cleanup, the spawn, the wait
//! for the API socket, the configuration through the API and `InstanceStart`.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use firework_firecracker::models::{
    BootSource, Drive, InstanceState, MachineConfig, NetworkInterface,
};
use firework_firecracker::{FirecrackerClient, FirecrackerError, wait_for_socket};
use tokio::time::Instant;
use tracing::Instrument;

use crate::error::VmmError;
use crate::jailer::{self, JAILED_KERNEL, JAILED_ROOTFS, JAILED_SOCKET, JailLayout};
use crate::logfile;
use crate::monitor::{self, ExitReceiver};
use crate::process::{ProcessIdentity, find_processes, has_flag_value};
use crate::record::{ExitInfo, LaunchMode, RECORD_FORMAT, RecordState, VmRecord};
use crate::runtime::{LOG_TAIL_BYTES, Shared, VmRuntime, VmStatus, kill_and_wait};
use crate::socket::{MAX_SOCKET_PATH_LEN, SocketClaim, StaleCheck, remove_if_stale};
use crate::spec::VmSpec;

/// Failure of a start after the spawn.
enum BringUpFailure {
    /// The process exited during this operation.
    Exited(&'static str),
    /// Any other error; the process may still run.
    Error(VmmError),
}

impl VmRuntime {
    /// Starts a VM for `spec.service`. Writes the record before any other side effect, and
    /// returns once `GET /` reports the VM `Running`. On failure the process is killed, the
    /// socket and jail are removed, and the record and log stay with state `exited`.
    pub async fn start(&self, spec: VmSpec) -> Result<VmStatus, VmmError> {
        spec.validate()?;
        let span = tracing::info_span!("vm_start", service = %spec.service, vm_id = %spec.vm_id);
        self.start_validated(spec).instrument(span).await
    }

    async fn start_validated(&self, spec: VmSpec) -> Result<VmStatus, VmmError> {
        let shared = self.shared().clone();
        let service = spec.service.clone();
        let slot = self.slot(&service);
        let mut entry = slot.entry.lock().await;

        if let Some(previous) = &entry.record {
            if let Some(identity) = previous.process
                && matches!(
                    previous.state,
                    RecordState::Starting | RecordState::Running | RecordState::Stopping
                )
                && identity
                    .check(&previous.cmdline_socket, &previous.vm_id)
                    .is_ours()
            {
                return Err(VmmError::AlreadyRunning {
                    service,
                    vm_id: previous.vm_id.clone(),
                    pid: identity.pid,
                });
            }
            // The previous VM has ended; its jail may still exist under another vm id.
            shared.clean_after_exit(previous);
        }

        let mut record = new_record(&shared, &spec, entry.record.as_ref())?;
        let service_dir = shared.layout.service_dir(&service);
        fs::create_dir_all(&service_dir)
            .map_err(|e| VmmError::io(&service, "create directory", &service_dir, e))?;
        shared.persist(&mut record).await?;
        entry.record = Some(record.clone());
        entry.exit = None;

        let prepared = prepare(&shared, &spec, &record);
        let (program, args) = match prepared {
            Ok(command) => command,
            Err(e) => {
                record.state = RecordState::Exited;
                shared.clean_after_exit(&record);
                let _ = shared.persist(&mut record).await;
                entry.record = Some(record);
                return Err(e);
            }
        };

        let spawned = spawn(&shared, &spec, &record, &program, &args);
        let (child, identity) = match spawned {
            Ok(spawned) => spawned,
            Err(e) => {
                record.state = RecordState::Exited;
                shared.clean_after_exit(&record);
                let _ = shared.persist(&mut record).await;
                entry.record = Some(record);
                return Err(e);
            }
        };
        tracing::info!(pid = identity.pid, program = %program.display(), "spawned vm process");
        let (exit_rx, monitor) =
            monitor::watch_child(shared.clone(), slot.clone(), record.generation, child);
        slot.set_monitor(monitor);
        entry.exit = Some(exit_rx.clone());
        record.process = Some(identity);
        if let Err(e) = shared.persist(&mut record).await {
            entry.record = Some(record.clone());
            return Err(self_fail(&shared, &mut record, identity, exit_rx, e).await);
        }
        entry.record = Some(record.clone());

        match bring_up(&shared, &spec, &record, exit_rx.clone()).await {
            Ok(()) => {
                record.state = RecordState::Running;
                shared.persist(&mut record).await?;
                tracing::info!(pid = identity.pid, "vm is running");
                entry.record = Some(record.clone());
                Ok(VmStatus::from(&record))
            }
            Err(failure) => {
                let error = match failure {
                    BringUpFailure::Error(e) => e,
                    BringUpFailure::Exited(operation) => {
                        let exit = wait_exit(exit_rx.clone(), shared.config.stop.sigkill_wait)
                            .await
                            .unwrap_or(ExitInfo {
                                code: None,
                                signal: None,
                            });
                        VmmError::ExitedEarly {
                            service: service.clone(),
                            vm_id: spec.vm_id.clone(),
                            operation,
                            status: exit.to_string(),
                            log_tail: logfile::read_tail(
                                &record.log_path,
                                shared.config.log_tail_lines,
                                LOG_TAIL_BYTES,
                            ),
                        }
                    }
                };
                let error = self_fail(&shared, &mut record, identity, exit_rx, error).await;
                entry.record = Some(record);
                Err(error)
            }
        }
    }
}

/// Kills the process of a failed start, waits for it, cleans up and records the exit.
async fn self_fail(
    shared: &Shared,
    record: &mut VmRecord,
    identity: ProcessIdentity,
    exit_rx: ExitReceiver,
    error: VmmError,
) -> VmmError {
    tracing::warn!(error = %error, "vm start failed, killing the process");
    if exit_rx.borrow().is_none() {
        kill_and_wait(identity, shared.config.stop.sigkill_wait).await;
    }
    let exit = wait_exit(exit_rx, shared.config.stop.sigkill_wait).await;
    record.state = RecordState::Exited;
    record.exit = exit;
    shared.clean_after_exit(record);
    if let Err(e) = shared.persist(record).await {
        tracing::error!(error = %e, "failed to record the failed start");
    }
    error
}

/// Waits up to `wait` for the exit to be published.
pub(crate) async fn wait_exit(mut exit_rx: ExitReceiver, wait: Duration) -> Option<ExitInfo> {
    if let Ok(Ok(exit)) = tokio::time::timeout(wait, exit_rx.wait_for(Option::is_some)).await {
        return exit.clone();
    }
    exit_rx.borrow().clone()
}

fn new_record(
    shared: &Shared,
    spec: &VmSpec,
    previous: Option<&VmRecord>,
) -> Result<VmRecord, VmmError> {
    let service = &spec.service;
    let (launch, socket_path, cmdline_socket) = match (&shared.config.jailer, &shared.exec_name) {
        (Some(config), Some(exec_name)) => {
            let jail = JailLayout::new(config, exec_name, &spec.vm_id);
            (
                LaunchMode::Jailer {
                    jail_dir: jail.jail_dir.clone(),
                    cgroup_dir: jail.cgroup_dir.clone(),
                },
                jail.host_socket,
                PathBuf::from(JAILED_SOCKET),
            )
        }
        _ => {
            let socket = shared.layout.socket_path(service);
            (LaunchMode::Direct, socket.clone(), socket)
        }
    };
    let len = socket_path.as_os_str().len();
    if len > MAX_SOCKET_PATH_LEN {
        return Err(VmmError::SocketPathTooLong {
            service: service.clone(),
            path: socket_path,
            len,
        });
    }
    let log_path = spec
        .log_path
        .clone()
        .unwrap_or_else(|| shared.layout.log_path(service));
    Ok(VmRecord {
        format: RECORD_FORMAT,
        service: service.clone(),
        vm_id: spec.vm_id.clone(),
        generation: previous.map_or(0, |r| r.generation) + 1,
        spec: spec.clone(),
        spec_hash: spec.hash(),
        state: RecordState::Starting,
        launch,
        socket_path,
        cmdline_socket,
        log_path,
        process: None,
        exit: None,
        updated_at_ms: 0,
    })
}

/// Clears the way for the process (stale socket or stale jail) and returns its command.
fn prepare(
    shared: &Shared,
    spec: &VmSpec,
    record: &VmRecord,
) -> Result<(PathBuf, Vec<OsString>), VmmError> {
    let service = spec.service.as_str();
    match (&shared.config.jailer, shared.jail_layout(record)) {
        (Some(config), Some(jail)) => {
            if jail.jail_dir.exists() {
                let owners = find_processes(|args| {
                    has_flag_value(args, "--id", spec.vm_id.as_ref())
                        && has_flag_value(args, "--api-sock", JAILED_SOCKET.as_ref())
                });
                if let Some(pid) = owners.first() {
                    return Err(VmmError::SocketInUse {
                        service: service.to_owned(),
                        path: jail.host_socket.clone(),
                        owner: format!("process {pid} runs with --id {}", spec.vm_id),
                    });
                }
                tracing::info!(path = %jail.jail_dir.display(), "removing stale jail");
                jailer::remove_jail(&jail)
                    .map_err(|e| VmmError::io(service, "remove stale jail", &jail.jail_dir, e))?;
            }
            let writable = !spec.read_only;
            for (source, jailed, writable) in [
                (&spec.kernel_path, JAILED_KERNEL, false),
                (&spec.rootfs_path, JAILED_ROOTFS, writable),
            ] {
                let dest = jail.host_path(jailed);
                jailer::place_in_jail(source, &dest, config.uid, config.gid, writable)
                    .map_err(|e| VmmError::io(service, "place file in jail", &dest, e))?;
            }
            Ok((
                config.jailer_bin.clone(),
                jailer::jailer_args(config, &shared.config.firecracker_bin, spec),
            ))
        }
        _ => {
            let claim = SocketClaim {
                host_path: &record.socket_path,
                cmdline_socket: &record.cmdline_socket,
                vm_id: &record.vm_id,
            };
            let check = remove_if_stale(&claim).map_err(|e| {
                VmmError::io(service, "remove stale socket", &record.socket_path, e)
            })?;
            match check {
                StaleCheck::Absent => {}
                StaleCheck::Removed => {
                    tracing::info!(path = %record.socket_path.display(), "removed stale api socket");
                }
                StaleCheck::Owned(owner) => {
                    return Err(VmmError::SocketInUse {
                        service: service.to_owned(),
                        path: record.socket_path.clone(),
                        owner,
                    });
                }
                StaleCheck::NotASocket => {
                    return Err(VmmError::SocketInUse {
                        service: service.to_owned(),
                        path: record.socket_path.clone(),
                        owner: "a file that is not a socket exists there; remove it".to_owned(),
                    });
                }
            }
            Ok((
                shared.config.firecracker_bin.clone(),
                vec![
                    "--api-sock".into(),
                    record.socket_path.clone().into(),
                    "--id".into(),
                    spec.vm_id.clone().into(),
                ],
            ))
        }
    }
}

/// Spawns the process in its own process group with stdout and stderr in the log.
fn spawn(
    shared: &Shared,
    spec: &VmSpec,
    record: &VmRecord,
    program: &Path,
    args: &[OsString],
) -> Result<(tokio::process::Child, ProcessIdentity), VmmError> {
    let service = spec.service.as_str();
    let log = logfile::start_new_log(&record.log_path)
        .map_err(|e| VmmError::io(service, "open log", &record.log_path, e))?;
    let log_err = log
        .try_clone()
        .map_err(|e| VmmError::io(service, "duplicate log descriptor", &record.log_path, e))?;
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .envs(shared.config.child_env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .kill_on_drop(false);
    // A new session keeps signals sent to the agent's session or process group (Ctrl-C in
    // a terminal, a group kill) away from the VM, so it outlives the agent.
    firework_sys::process::new_session(command.as_std_mut());
    let child = command.spawn().map_err(|source| VmmError::Spawn {
        service: service.to_owned(),
        vm_id: spec.vm_id.clone(),
        program: program.to_owned(),
        source,
    })?;
    let pid = child.id().map(|p| p as i32).unwrap_or_default();
    // The child cannot be reaped before its monitor waits for it, so its stat is readable
    // even if it has already exited.
    match ProcessIdentity::of(pid) {
        Ok(identity) => Ok((child, identity)),
        Err(e) => {
            let mut child = child;
            let _ = child.start_kill();
            Err(VmmError::io(
                service,
                "read process start time",
                format!("/proc/{pid}/stat"),
                e,
            ))
        }
    }
}

/// Waits for the socket, configures the VM and starts it, watching for an early exit.
async fn bring_up(
    shared: &Shared,
    spec: &VmSpec,
    record: &VmRecord,
    exit_rx: ExitReceiver,
) -> Result<(), BringUpFailure> {
    let service = &spec.service;
    let client =
        FirecrackerClient::new(&record.socket_path).with_timeout(shared.config.api_timeout);

    let deadline = Instant::now() + shared.config.socket_timeout;
    let mut exit_watch = exit_rx.clone();
    tokio::select! {
        ready = wait_for_socket(&record.socket_path, deadline) => {
            if let Err(source) = ready {
                if exit_rx.borrow().is_some() {
                    return Err(BringUpFailure::Exited("waiting for the api socket"));
                }
                return Err(BringUpFailure::Error(VmmError::SocketTimeout {
                    service: service.clone(),
                    vm_id: spec.vm_id.clone(),
                    path: record.socket_path.clone(),
                    timeout: shared.config.socket_timeout,
                    source: Box::new(source),
                }));
            }
        }
        _ = exit_watch.wait_for(Option::is_some) => {
            return Err(BringUpFailure::Exited("waiting for the api socket"));
        }
    }

    let jailed = matches!(record.launch, LaunchMode::Jailer { .. });
    let kernel = if jailed {
        Path::new(JAILED_KERNEL)
    } else {
        &spec.kernel_path
    };
    let rootfs = if jailed {
        Path::new(JAILED_ROOTFS)
    } else {
        &spec.rootfs_path
    };
    let call = |operation: &'static str, result: Result<(), FirecrackerError>| {
        result.map_err(|source| (operation, source))
    };
    let configure = async {
        call(
            "PUT /machine-config",
            client
                .put_machine_config(&MachineConfig::new(spec.vcpus, spec.memory_mib.into()))
                .await,
        )?;
        let boot_source = BootSource {
            kernel_image_path: path_string(kernel),
            boot_args: Some(spec.kernel_args.clone()),
            initrd_path: None,
        };
        call(
            "PUT /boot-source",
            client.put_boot_source(&boot_source).await,
        )?;
        let drive = Drive::from_file("rootfs", &path_string(rootfs), true, spec.read_only);
        call("PUT /drives/rootfs", client.put_drive(&drive).await)?;
        if let Some(network) = &spec.network {
            let mut interface = NetworkInterface::new("eth0", &network.tap_name);
            interface.guest_mac = network.guest_mac.clone();
            call(
                "PUT /network-interfaces/eth0",
                client.put_network_interface(&interface).await,
            )?;
        }
        call("PUT /actions InstanceStart", client.instance_start().await)?;
        client
            .instance_info()
            .await
            .map_err(|source| ("GET /", source))
    };

    let outcome = tokio::select! {
        outcome = configure => outcome,
        _ = exit_watch.wait_for(Option::is_some) => {
            return Err(BringUpFailure::Exited("configuration"));
        }
    };
    match outcome {
        Ok(info) if info.state == InstanceState::Running => Ok(()),
        Ok(info) => Err(BringUpFailure::Error(VmmError::NotRunning {
            service: service.clone(),
            vm_id: spec.vm_id.clone(),
            state: format!("{:?}", info.state),
        })),
        Err((operation, source)) => {
            // A request that failed because the process died is reported as that exit.
            if wait_exit(exit_rx, Duration::from_millis(100))
                .await
                .is_some()
            {
                return Err(BringUpFailure::Exited(operation));
            }
            Err(BringUpFailure::Error(VmmError::Api {
                service: service.clone(),
                vm_id: spec.vm_id.clone(),
                operation,
                source: Box::new(source),
            }))
        }
    }
}

/// Paths are validated as UTF-8 in [`VmSpec::validate`], so nothing is lost here.
fn path_string(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}
