//! Exit detection: a task per VM that notices the end of its process, publishes how it
//! ended, and reports a crash when nobody asked the VM to stop.

use std::sync::Arc;
use std::time::Duration;

use tokio::process::Child;
use tokio::sync::watch;
use tokio::task::AbortHandle;

use crate::process::ProcessIdentity;
use crate::record::{ExitInfo, RecordState};
use crate::runtime::{Shared, Slot};

/// Receives `Some` once the VM process has exited.
pub(crate) type ExitReceiver = watch::Receiver<Option<ExitInfo>>;

/// An event the agent consumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmEvent {
    /// A running VM's process ended without a stop request.
    Crashed(CrashReport),
}

/// What is known about a crashed VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrashReport {
    /// Service of the VM.
    pub service: String,
    /// Firecracker instance id.
    pub vm_id: String,
    /// Generation of the record that crashed.
    pub generation: u64,
    /// Pid of the ended process.
    pub pid: i32,
    /// Exit status; both fields are `None` for an adopted process, which is not our child.
    pub exit: ExitInfo,
    /// Last lines of the VM log.
    pub log_tail: String,
}

fn exit_info(status: std::io::Result<std::process::ExitStatus>) -> ExitInfo {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(status) => ExitInfo {
            code: status.code(),
            signal: status.signal(),
        },
        Err(e) => {
            tracing::warn!(error = %e, "waiting for the vm process failed");
            ExitInfo {
                code: None,
                signal: None,
            }
        }
    }
}

/// Watches a process we spawned: waits for it (which also reaps it) and then handles the exit.
pub(crate) fn watch_child(
    shared: Arc<Shared>,
    slot: Arc<Slot>,
    generation: u64,
    mut child: Child,
) -> (ExitReceiver, AbortHandle) {
    let (tx, rx) = watch::channel(None);
    let task = tokio::spawn(async move {
        let exit = exit_info(child.wait().await);
        tx.send_replace(Some(exit.clone()));
        handle_exit(&shared, &slot, generation, exit).await;
    });
    (rx, task.abort_handle())
}

/// Watches an adopted process by polling `/proc`, because only its parent can wait for it.
pub(crate) fn watch_adopted(
    shared: Arc<Shared>,
    slot: Arc<Slot>,
    generation: u64,
    identity: ProcessIdentity,
    interval: Duration,
) -> (ExitReceiver, AbortHandle) {
    let (tx, rx) = watch::channel(None);
    let task = tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if identity.has_ended() {
                break;
            }
        }
        let exit = ExitInfo {
            code: None,
            signal: None,
        };
        tx.send_replace(Some(exit.clone()));
        handle_exit(&shared, &slot, generation, exit).await;
    });
    (rx, task.abort_handle())
}

/// Reports a crash if the record of `generation` still says the VM runs; a start or stop in
/// progress holds the entry lock and records the outcome itself.
async fn handle_exit(shared: &Shared, slot: &Slot, generation: u64, exit: ExitInfo) {
    let mut entry = slot.entry.lock().await;
    let Some(record) = entry.record.as_mut() else {
        return;
    };
    if record.generation != generation || record.state != RecordState::Running {
        return;
    }
    let pid = record.process.map(|p| p.pid).unwrap_or_default();
    let log_tail = crate::logfile::read_tail(
        &record.log_path,
        shared.config.log_tail_lines,
        crate::runtime::LOG_TAIL_BYTES,
    );
    tracing::warn!(
        service = %record.service,
        vm_id = %record.vm_id,
        pid,
        exit = %exit,
        "vm process exited without a stop request"
    );
    record.state = RecordState::Exited;
    record.exit = Some(exit.clone());
    shared.clean_after_exit(record);
    if let Err(e) = shared.persist(record).await {
        tracing::error!(service = %record.service, vm_id = %record.vm_id, error = %e, "failed to record the vm exit");
    }
    let report = CrashReport {
        service: record.service.clone(),
        vm_id: record.vm_id.clone(),
        generation,
        pid,
        exit,
        log_tail,
    };
    // The receiver may be gone while the agent shuts down; nothing else is to be done then.
    let _ = shared.events.send(VmEvent::Crashed(report));
}
