//! The runtime object: one slot per service, the shared settings, and the scan that adopts
//! live VMs and cleans up after dead ones when the agent starts.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::config::RuntimeConfig;
use crate::error::VmmError;
use crate::jailer::{self, JailLayout};
use crate::layout::StateLayout;
use crate::monitor::{self, ExitReceiver, VmEvent};
use crate::process::{Liveness, ProcessIdentity, find_processes, has_flag_value};
use crate::record::{LaunchMode, RecordState, VmRecord};
use crate::socket::{SocketClaim, StaleCheck, remove_if_stale};
use crate::spec::validate_service_name;

/// Bytes read from the end of a log to build a tail.
pub(crate) const LOG_TAIL_BYTES: u64 = 16 << 10;

/// The public view of one service's VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmStatus {
    /// Service name.
    pub service: String,
    /// Firecracker instance id.
    pub vm_id: String,
    /// Start counter of the service.
    pub generation: u64,
    /// Lifecycle state of the record.
    pub state: RecordState,
    /// Pid of the VM process, once spawned.
    pub pid: Option<i32>,
    /// Hash of the spec the VM was started with.
    pub spec_hash: String,
    /// API socket path on the host.
    pub socket_path: PathBuf,
    /// Log file of the VM process.
    pub log_path: PathBuf,
}

impl From<&VmRecord> for VmStatus {
    fn from(record: &VmRecord) -> Self {
        VmStatus {
            service: record.service.clone(),
            vm_id: record.vm_id.clone(),
            generation: record.generation,
            state: record.state,
            pid: record.process.map(|p| p.pid),
            spec_hash: record.spec_hash.clone(),
            socket_path: record.socket_path.clone(),
            log_path: record.log_path.clone(),
        }
    }
}

/// A VM found dead (or half-started and then killed) by the scan at [`VmRuntime::open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanedVm {
    /// Service name.
    pub service: String,
    /// Firecracker instance id.
    pub vm_id: String,
    /// State the record had before the scan.
    pub previous_state: RecordState,
    /// Reason the VM was not adopted.
    pub reason: String,
}

/// The result of the scan at [`VmRuntime::open`].
#[derive(Debug, Default)]
pub struct ScanReport {
    /// Live VMs that the runtime now manages, unchanged.
    pub adopted: Vec<VmStatus>,
    /// VMs whose process had ended or could not be trusted, with what they left removed.
    pub cleaned: Vec<CleanedVm>,
    /// Service directories that could not be read; they are left untouched.
    pub errors: Vec<VmmError>,
}

/// Settings and channels shared by the runtime and its monitor tasks.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: RuntimeConfig,
    pub(crate) layout: StateLayout,
    pub(crate) events: mpsc::UnboundedSender<VmEvent>,
    /// File name of the canonicalized Firecracker binary, in jailer mode.
    pub(crate) exec_name: Option<String>,
}

/// The per-service state; `entry` is locked for the whole of a start, stop or exit handling.
#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) service: String,
    pub(crate) entry: tokio::sync::Mutex<Entry>,
    pub(crate) monitor: Mutex<Option<AbortHandle>>,
}

#[derive(Debug, Default)]
pub(crate) struct Entry {
    pub(crate) record: Option<VmRecord>,
    pub(crate) exit: Option<ExitReceiver>,
}

#[derive(Debug)]
struct Inner {
    shared: Arc<Shared>,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    log_capper: Mutex<Option<AbortHandle>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Dropping the runtime leaves every VM running; only the watching tasks end.
        if let Ok(Some(capper)) = self.log_capper.get_mut().map(Option::take) {
            capper.abort();
        }
        if let Ok(slots) = self.slots.get_mut() {
            for slot in slots.values() {
                if let Ok(Some(monitor)) = slot.monitor.lock().map(|mut m| m.take()) {
                    monitor.abort();
                }
            }
        }
    }
}

/// Firework's VM runtime. Cloning is cheap and shares the state. Dropping the last clone
/// stops watching the VMs but leaves them running; a new runtime over the same state
/// directory adopts them.
#[derive(Debug, Clone)]
pub struct VmRuntime {
    inner: Arc<Inner>,
}

impl VmRuntime {
    /// Opens the runtime over `config.state_dir`: scans the records, adopts live VMs without
    /// restarting them, and cleans up after dead ones. Returns the runtime, the receiver of
    /// crash events and the scan report. Must be called inside a Tokio runtime.
    pub async fn open(
        config: RuntimeConfig,
    ) -> Result<(VmRuntime, mpsc::UnboundedReceiver<VmEvent>, ScanReport), VmmError> {
        let layout = StateLayout::new(&config.state_dir);
        let vms_dir = layout.vms_dir();
        fs::create_dir_all(&vms_dir).map_err(|source| VmmError::RuntimeIo {
            operation: "create directory",
            path: vms_dir.clone(),
            source,
        })?;
        let exec_name = match &config.jailer {
            Some(_) => Some(jailer::exec_name(&config.firecracker_bin).map_err(|e| {
                VmmError::RuntimeIo {
                    operation: "resolve firecracker binary",
                    path: config.firecracker_bin.clone(),
                    source: e,
                }
            })?),
            None => None,
        };
        let (events, events_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            config,
            layout,
            events,
            exec_name,
        });
        let runtime = VmRuntime {
            inner: Arc::new(Inner {
                shared,
                slots: Mutex::new(HashMap::new()),
                log_capper: Mutex::new(None),
            }),
        };
        let report = runtime.scan().await;
        let capper = spawn_log_capper(Arc::downgrade(&runtime.inner));
        if let Ok(mut slot) = runtime.inner.log_capper.lock() {
            *slot = Some(capper);
        }
        Ok((runtime, events_rx, report))
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.inner.shared
    }

    /// Returns the slot of `service`, creating an empty one.
    pub(crate) fn slot(&self, service: &str) -> Arc<Slot> {
        let mut slots = self
            .inner
            .slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        slots
            .entry(service.to_owned())
            .or_insert_with(|| {
                Arc::new(Slot {
                    service: service.to_owned(),
                    entry: tokio::sync::Mutex::new(Entry::default()),
                    monitor: Mutex::new(None),
                })
            })
            .clone()
    }

    fn existing_slot(&self, service: &str) -> Option<Arc<Slot>> {
        self.inner
            .slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(service)
            .cloned()
    }

    fn all_slots(&self) -> Vec<Arc<Slot>> {
        self.inner
            .slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Returns the status of every service with a record, sorted by service name.
    pub async fn list(&self) -> Vec<VmStatus> {
        let mut statuses = Vec::new();
        for slot in self.all_slots() {
            if let Some(record) = &slot.entry.lock().await.record {
                statuses.push(VmStatus::from(record));
            }
        }
        statuses.sort_by(|a, b| a.service.cmp(&b.service));
        statuses
    }

    /// Returns the status of one service's VM, if it has a record.
    pub async fn status(&self, service: &str) -> Option<VmStatus> {
        let slot = self.existing_slot(service)?;
        let entry = slot.entry.lock().await;
        entry.record.as_ref().map(VmStatus::from)
    }

    /// Stops the service's VM if one runs, then removes its directory, including record and
    /// logs, and its jail. Deleting an unknown service succeeds.
    pub async fn delete(&self, service: &str) -> Result<(), VmmError> {
        validate_service_name(service)?;
        self.stop(service).await?;
        let slot = self.slot(service);
        let mut entry = slot.entry.lock().await;
        if let Some(record) = &entry.record {
            self.inner.shared.clean_after_exit(record);
        }
        let dir = self.inner.shared.layout.service_dir(service);
        match fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(VmmError::io(service, "remove directory", &dir, e)),
        }
        entry.record = None;
        entry.exit = None;
        tracing::info!(service, "deleted vm directory");
        Ok(())
    }

    /// Reads every record and decides per VM: adopt, or clean up.
    async fn scan(&self) -> ScanReport {
        let mut report = ScanReport::default();
        let vms_dir = self.inner.shared.layout.vms_dir();
        let entries = match fs::read_dir(&vms_dir) {
            Ok(entries) => entries,
            Err(e) => {
                report.errors.push(VmmError::RuntimeIo {
                    operation: "read directory",
                    path: vms_dir.clone(),
                    source: e,
                });
                return report;
            }
        };
        let mut services: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        services.sort();
        for service in services {
            if let Err(e) = validate_service_name(&service) {
                report.errors.push(e);
                continue;
            }
            let path = self.inner.shared.layout.record_path(&service);
            if !path.exists() {
                continue;
            }
            match VmRecord::read(&service, &path) {
                Ok(record) => self.scan_record(record, &mut report).await,
                Err(e) => {
                    tracing::error!(service, error = %e, "cannot read vm record, leaving it untouched");
                    report.errors.push(e);
                }
            }
        }
        report
    }

    async fn scan_record(&self, mut record: VmRecord, report: &mut ScanReport) {
        let shared = &self.inner.shared;
        let slot = self.slot(&record.service);
        let mut entry = slot.entry.lock().await;
        let previous_state = record.state;
        let span = tracing::info_span!("vm_scan", service = %record.service, vm_id = %record.vm_id);
        let _guard = span.enter();

        if matches!(previous_state, RecordState::Stopped | RecordState::Exited) {
            shared.clean_after_exit(&record);
            entry.record = Some(record);
            return;
        }

        let liveness = match record.process {
            Some(identity) => identity.check(&record.cmdline_socket, &record.vm_id),
            None => Liveness::Gone,
        };
        let reason = if liveness.is_ours() && previous_state == RecordState::Running {
            let identity = record.process.unwrap_or(ProcessIdentity {
                pid: 0,
                start_time_ticks: 0,
            });
            let (exit_rx, monitor) = monitor::watch_adopted(
                shared.clone(),
                slot.clone(),
                record.generation,
                identity,
                shared.config.adopted_poll_interval,
            );
            tracing::info!(pid = identity.pid, "adopted running vm");
            report.adopted.push(VmStatus::from(&record));
            entry.record = Some(record);
            entry.exit = Some(exit_rx);
            slot.set_monitor(monitor);
            return;
        } else if liveness.is_ours() {
            // A start or stop was interrupted; the VM is not known to be configured, so end it.
            let identity = record.process.unwrap_or(ProcessIdentity {
                pid: 0,
                start_time_ticks: 0,
            });
            kill_and_wait(identity, shared.config.stop.sigkill_wait).await;
            format!(
                "process {} was killed because the agent stopped during the {} phase",
                identity.pid,
                state_name(previous_state)
            )
        } else if record.process.is_none() {
            // The agent may have spawned the process before it could record the pid.
            let killed = kill_unrecorded(&record, shared.config.stop.sigkill_wait).await;
            match killed {
                Some(pid) => format!("unrecorded process {pid} naming the vm socket was killed"),
                None => "the vm was never spawned".to_owned(),
            }
        } else {
            let pid = record.process.map(|p| p.pid).unwrap_or_default();
            format!("process {pid}: {liveness}")
        };

        tracing::warn!(reason = %reason, "vm is not running, cleaning up");
        record.state = RecordState::Exited;
        shared.clean_after_exit(&record);
        if let Err(e) = shared.persist(&mut record).await {
            report.errors.push(e);
        }
        report.cleaned.push(CleanedVm {
            service: record.service.clone(),
            vm_id: record.vm_id.clone(),
            previous_state,
            reason,
        });
        entry.record = Some(record);
    }
}

fn state_name(state: RecordState) -> &'static str {
    match state {
        RecordState::Starting => "start",
        RecordState::Running => "running",
        RecordState::Stopping => "stop",
        RecordState::Stopped => "stopped",
        RecordState::Exited => "exited",
    }
}

impl Slot {
    pub(crate) fn set_monitor(&self, handle: AbortHandle) {
        let mut monitor = self
            .monitor
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(old) = monitor.replace(handle) {
            // The previous process has ended; its task only waits for the entry lock.
            drop(old);
        }
    }
}

impl Shared {
    /// Writes the record atomically on a blocking thread.
    pub(crate) async fn persist(&self, record: &mut VmRecord) -> Result<(), VmmError> {
        let path = self.layout.record_path(&record.service);
        let mut copy = record.clone();
        let written = tokio::task::spawn_blocking(move || copy.write_atomic(&path).map(|()| copy))
            .await
            .map_err(|e| {
                VmmError::io(&record.service, "write vm record", "", io::Error::other(e))
            })??;
        *record = written;
        Ok(())
    }

    /// Jail layout of a record launched through the jailer.
    pub(crate) fn jail_layout(&self, record: &VmRecord) -> Option<JailLayout> {
        match &record.launch {
            LaunchMode::Direct => None,
            LaunchMode::Jailer {
                jail_dir,
                cgroup_dir,
            } => Some(JailLayout {
                jail_dir: jail_dir.clone(),
                root: jail_dir.join("root"),
                host_socket: record.socket_path.clone(),
                cgroup_dir: cgroup_dir.clone(),
            }),
        }
    }

    /// Removes what a VM whose process has ended leaves behind: its API socket (only when no
    /// live process owns it) and, in jailer mode, its jail and cgroup. The VM directory, the
    /// record and the log stay for diagnosis. Failures are logged, not returned.
    pub(crate) fn clean_after_exit(&self, record: &VmRecord) {
        let claim = SocketClaim {
            host_path: &record.socket_path,
            cmdline_socket: &record.cmdline_socket,
            vm_id: &record.vm_id,
        };
        match remove_if_stale(&claim) {
            Ok(StaleCheck::Absent | StaleCheck::Removed) => {}
            Ok(StaleCheck::Owned(owner)) => {
                tracing::warn!(service = %record.service, vm_id = %record.vm_id, path = %record.socket_path.display(), owner = %owner, "api socket is owned by a live process, left in place");
                return;
            }
            Ok(StaleCheck::NotASocket) => {
                tracing::warn!(service = %record.service, vm_id = %record.vm_id, path = %record.socket_path.display(), "api socket path contains a file that is not a socket, left in place");
            }
            Err(e) => {
                tracing::warn!(service = %record.service, vm_id = %record.vm_id, path = %record.socket_path.display(), error = %e, "failed to remove api socket");
            }
        }
        if let Some(jail) = self.jail_layout(record)
            && let Err(e) = jailer::remove_jail(&jail)
        {
            tracing::warn!(service = %record.service, vm_id = %record.vm_id, path = %jail.jail_dir.display(), error = %e, "failed to remove jail");
        }
    }
}

/// Sends SIGKILL to a verified process and waits up to `wait` for it to end.
pub(crate) async fn kill_and_wait(identity: ProcessIdentity, wait: std::time::Duration) -> bool {
    if identity.has_ended() {
        return true;
    }
    let pid = nix::unistd::Pid::from_raw(identity.pid);
    if let Err(e) = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL) {
        tracing::warn!(pid = identity.pid, error = %e, "failed to send SIGKILL");
    }
    let deadline = tokio::time::Instant::now() + wait;
    while tokio::time::Instant::now() < deadline {
        if identity.has_ended() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    identity.has_ended()
}

async fn kill_unrecorded(record: &VmRecord, wait: std::time::Duration) -> Option<i32> {
    let pids = find_processes(|args| {
        has_flag_value(args, "--api-sock", record.cmdline_socket.as_os_str())
            && has_flag_value(args, "--id", record.vm_id.as_ref())
    });
    let mut killed = None;
    for pid in pids {
        if let Ok(identity) = ProcessIdentity::of(pid) {
            kill_and_wait(identity, wait).await;
            killed = Some(pid);
        }
    }
    killed
}

fn spawn_log_capper(inner: Weak<Inner>) -> AbortHandle {
    let interval = inner
        .upgrade()
        .map(|i| i.shared.config.log_check_interval)
        .unwrap_or(std::time::Duration::from_secs(10));
    let task = tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let Some(inner) = inner.upgrade() else {
                return;
            };
            let max = inner.shared.config.log_max_bytes;
            let runtime = VmRuntime { inner };
            for slot in runtime.all_slots() {
                // A slot busy with a start or stop is checked on the next tick.
                let Ok(entry) = slot.entry.try_lock() else {
                    continue;
                };
                let Some(record) = &entry.record else {
                    continue;
                };
                match crate::logfile::cap_log(&record.log_path, max) {
                    Ok(true) => {
                        tracing::info!(service = %slot.service, vm_id = %record.vm_id, max_bytes = max, "vm log exceeded its size cap, rotated");
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(service = %slot.service, vm_id = %record.vm_id, error = %e, "failed to cap vm log");
                    }
                }
            }
        }
    });
    task.abort_handle()
}

/// Returns how the VM process ended, once its watcher has published it.
pub(crate) fn current_exit(entry: &Entry) -> Option<crate::record::ExitInfo> {
    entry.exit.as_ref().and_then(|rx| rx.borrow().clone())
}
