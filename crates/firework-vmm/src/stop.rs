//! The stop sequence: `SendCtrlAltDel`, a grace period, SIGTERM, another grace period,
//! SIGKILL, and a final wait.

use std::future::Future;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::time::{Instant, timeout_at};
use tracing::Instrument;

use crate::error::VmmError;
use crate::monitor::ExitReceiver;
use crate::process::ProcessIdentity;
use crate::record::RecordState;
use crate::runtime::{VmRuntime, current_exit};
use crate::spec::validate_service_name;
use firework_firecracker::FirecrackerClient;

/// Durations of the stop sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopTimeouts {
    /// How long the guest gets to shut down after `SendCtrlAltDel`.
    pub ctrl_alt_del_grace: Duration,
    /// How long the process gets to exit after SIGTERM.
    pub sigterm_grace: Duration,
    /// How long to wait for the exit after SIGKILL before reporting failure.
    pub sigkill_wait: Duration,
}

impl Default for StopTimeouts {
    fn default() -> Self {
        StopTimeouts {
            ctrl_alt_del_grace: Duration::from_secs(10),
            sigterm_grace: Duration::from_secs(3),
            sigkill_wait: Duration::from_secs(5),
        }
    }
}

/// The step of the stop sequence after which the process exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopStep {
    /// The process had already exited.
    AlreadyExited,
    /// The guest shut down after `SendCtrlAltDel`.
    CtrlAltDel,
    /// The process exited after SIGTERM.
    Sigterm,
    /// The process was killed with SIGKILL.
    Sigkill,
}

/// Failure of the stop sequence.
#[derive(Debug)]
pub enum StopFailure {
    /// Sending a signal failed for a reason other than the process being gone.
    Signal(&'static str, nix::Error),
    /// The process was still alive `sigkill_wait` after SIGKILL.
    StillAlive,
}

/// The operations the stop sequence needs on the process being stopped.
pub trait StopTarget {
    /// Whether the process has already exited.
    fn has_exited(&self) -> bool;
    /// Sends `SendCtrlAltDel`; returns whether Firecracker accepted the request.
    fn ctrl_alt_del(&self) -> impl Future<Output = bool> + Send;
    /// Sends a signal to the process; `Ok` if it was sent or the process is already gone.
    fn signal(&self, signal: Signal) -> Result<(), nix::Error>;
    /// Completes once the process has exited.
    fn exited(&self) -> impl Future<Output = ()> + Send;
}

/// Runs the stop sequence until the process exits.
pub async fn run_stop_sequence<T: StopTarget>(
    target: &T,
    timeouts: StopTimeouts,
) -> Result<StopStep, StopFailure> {
    if target.has_exited() {
        return Ok(StopStep::AlreadyExited);
    }

    let deadline = Instant::now() + timeouts.ctrl_alt_del_grace;
    let accepted = timeout_at(deadline, target.ctrl_alt_del())
        .await
        .unwrap_or(false);
    // Without an accepted request there is nothing to wait for; go on to SIGTERM at once.
    if accepted && timeout_at(deadline, target.exited()).await.is_ok() {
        return Ok(StopStep::CtrlAltDel);
    }
    if target.has_exited() {
        return Ok(StopStep::CtrlAltDel);
    }

    tracing::info!("guest did not shut down after SendCtrlAltDel, sending SIGTERM");
    target
        .signal(Signal::SIGTERM)
        .map_err(|e| StopFailure::Signal("SIGTERM", e))?;
    let deadline = Instant::now() + timeouts.sigterm_grace;
    if timeout_at(deadline, target.exited()).await.is_ok() {
        return Ok(StopStep::Sigterm);
    }

    tracing::warn!("process did not exit after SIGTERM, sending SIGKILL");
    target
        .signal(Signal::SIGKILL)
        .map_err(|e| StopFailure::Signal("SIGKILL", e))?;
    let deadline = Instant::now() + timeouts.sigkill_wait;
    if timeout_at(deadline, target.exited()).await.is_ok() {
        return Ok(StopStep::Sigkill);
    }
    Err(StopFailure::StillAlive)
}

/// The result of [`crate::VmRuntime::stop`] for a VM that was running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopReport {
    /// Firecracker instance id of the stopped VM.
    pub vm_id: String,
    /// The step after which the process exited.
    pub step: StopStep,
    /// Exit status; `None` fields for an adopted process, which is not our child.
    pub exit: Option<crate::record::ExitInfo>,
}

/// A VM process as the runtime stops it.
struct VmProcess {
    identity: ProcessIdentity,
    cmdline_socket: std::path::PathBuf,
    vm_id: String,
    client: FirecrackerClient,
    exit: Option<ExitReceiver>,
}

impl StopTarget for VmProcess {
    fn has_exited(&self) -> bool {
        match &self.exit {
            Some(rx) => rx.borrow().is_some(),
            None => self.identity.has_ended(),
        }
    }

    async fn ctrl_alt_del(&self) -> bool {
        match self.client.send_ctrl_alt_del().await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "SendCtrlAltDel failed");
                false
            }
        }
    }

    fn signal(&self, signal: Signal) -> Result<(), nix::Error> {
        // Verify the identity right before signalling so a reused pid is never hit.
        if self.has_exited()
            || !self
                .identity
                .check(&self.cmdline_socket, &self.vm_id)
                .is_ours()
        {
            return Ok(());
        }
        match nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.identity.pid), signal) {
            Err(nix::Error::ESRCH) => Ok(()),
            other => other,
        }
    }

    async fn exited(&self) {
        match &self.exit {
            Some(rx) => {
                let mut rx = rx.clone();
                let _ = rx.wait_for(Option::is_some).await;
            }
            None => {
                while !self.identity.has_ended() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }
}

impl VmRuntime {
    /// Stops the service's VM: `SendCtrlAltDel`, grace period, SIGTERM, SIGKILL; then removes
    /// the socket and jail and records the stop. The VM directory, record and log stay.
    /// Returns `None` when no VM was running; stopping twice is not an error.
    pub async fn stop(&self, service: &str) -> Result<Option<StopReport>, VmmError> {
        validate_service_name(service)?;
        let span = tracing::info_span!("vm_stop", service, vm_id = tracing::field::Empty);
        self.stop_validated(service).instrument(span).await
    }

    async fn stop_validated(&self, service: &str) -> Result<Option<StopReport>, VmmError> {
        let shared = self.shared().clone();
        let slot = self.slot(service);
        let mut entry = slot.entry.lock().await;
        let Some(mut record) = entry.record.clone() else {
            return Ok(None);
        };
        tracing::Span::current().record("vm_id", record.vm_id.as_str());
        let Some(identity) = record.process else {
            shared.clean_after_exit(&record);
            return Ok(None);
        };
        if matches!(record.state, RecordState::Stopped | RecordState::Exited) {
            shared.clean_after_exit(&record);
            return Ok(None);
        }

        record.state = RecordState::Stopping;
        shared.persist(&mut record).await?;
        entry.record = Some(record.clone());
        tracing::info!(pid = identity.pid, "stopping vm");

        let process = VmProcess {
            identity,
            cmdline_socket: record.cmdline_socket.clone(),
            vm_id: record.vm_id.clone(),
            client: FirecrackerClient::new(&record.socket_path)
                .with_timeout(shared.config.api_timeout),
            exit: entry.exit.clone(),
        };
        let step = run_stop_sequence(&process, shared.config.stop)
            .await
            .map_err(|failure| match failure {
                StopFailure::Signal(signal, source) => VmmError::Signal {
                    service: service.to_owned(),
                    vm_id: record.vm_id.clone(),
                    pid: identity.pid,
                    signal,
                    source,
                },
                StopFailure::StillAlive => VmmError::StopTimeout {
                    service: service.to_owned(),
                    vm_id: record.vm_id.clone(),
                    pid: identity.pid,
                    waited: shared.config.stop.sigkill_wait,
                },
            })?;

        let exit = current_exit(&entry);
        record.state = RecordState::Stopped;
        record.exit = exit.clone();
        shared.clean_after_exit(&record);
        shared.persist(&mut record).await?;
        tracing::info!(pid = identity.pid, step = ?step, "vm stopped");
        entry.record = Some(record.clone());
        Ok(Some(StopReport {
            vm_id: record.vm_id,
            step,
            exit,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tokio::sync::watch;

    /// A process that exits on the configured step and records when each step happened.
    struct FakeProcess {
        exits_on: Option<&'static str>,
        accept_ctrl_alt_del: bool,
        start: Instant,
        steps: Mutex<Vec<(&'static str, Duration)>>,
        exited_tx: watch::Sender<bool>,
    }

    impl FakeProcess {
        fn new(exits_on: Option<&'static str>, accept_ctrl_alt_del: bool) -> Self {
            FakeProcess {
                exits_on,
                accept_ctrl_alt_del,
                start: Instant::now(),
                steps: Mutex::new(Vec::new()),
                exited_tx: watch::channel(false).0,
            }
        }

        fn step(&self, name: &'static str) {
            self.steps
                .lock()
                .unwrap()
                .push((name, self.start.elapsed()));
            if self.exits_on == Some(name) {
                self.exited_tx.send_replace(true);
            }
        }

        fn steps(&self) -> Vec<(&'static str, Duration)> {
            self.steps.lock().unwrap().clone()
        }
    }

    impl StopTarget for FakeProcess {
        fn has_exited(&self) -> bool {
            *self.exited_tx.borrow()
        }

        async fn ctrl_alt_del(&self) -> bool {
            self.step("ctrl_alt_del");
            self.accept_ctrl_alt_del
        }

        fn signal(&self, signal: Signal) -> Result<(), nix::Error> {
            self.step(signal.as_str());
            Ok(())
        }

        async fn exited(&self) {
            let mut rx = self.exited_tx.subscribe();
            let _ = rx.wait_for(|exited| *exited).await;
        }
    }

    const TIMEOUTS: StopTimeouts = StopTimeouts {
        ctrl_alt_del_grace: Duration::from_secs(10),
        sigterm_grace: Duration::from_secs(3),
        sigkill_wait: Duration::from_secs(5),
    };

    #[tokio::test(start_paused = true)]
    async fn guest_honours_ctrl_alt_del() {
        let process = FakeProcess::new(Some("ctrl_alt_del"), true);
        let step = run_stop_sequence(&process, TIMEOUTS).await.unwrap();
        assert_eq!(step, StopStep::CtrlAltDel);
        assert_eq!(process.steps(), vec![("ctrl_alt_del", Duration::ZERO)]);
    }

    #[tokio::test(start_paused = true)]
    async fn sigterm_after_grace() {
        let process = FakeProcess::new(Some("SIGTERM"), true);
        let step = run_stop_sequence(&process, TIMEOUTS).await.unwrap();
        assert_eq!(step, StopStep::Sigterm);
        assert_eq!(
            process.steps(),
            vec![
                ("ctrl_alt_del", Duration::ZERO),
                ("SIGTERM", Duration::from_secs(10)),
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn sigkill_after_both_graces() {
        let process = FakeProcess::new(Some("SIGKILL"), true);
        let step = run_stop_sequence(&process, TIMEOUTS).await.unwrap();
        assert_eq!(step, StopStep::Sigkill);
        assert_eq!(
            process.steps(),
            vec![
                ("ctrl_alt_del", Duration::ZERO),
                ("SIGTERM", Duration::from_secs(10)),
                ("SIGKILL", Duration::from_secs(13)),
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn rejected_ctrl_alt_del_skips_grace() {
        let process = FakeProcess::new(Some("SIGTERM"), false);
        let step = run_stop_sequence(&process, TIMEOUTS).await.unwrap();
        assert_eq!(step, StopStep::Sigterm);
        assert_eq!(
            process.steps(),
            vec![
                ("ctrl_alt_del", Duration::ZERO),
                ("SIGTERM", Duration::ZERO)
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn unkillable_process_fails() {
        let process = FakeProcess::new(None, true);
        let result = run_stop_sequence(&process, TIMEOUTS).await;
        assert!(matches!(result, Err(StopFailure::StillAlive)));
        assert_eq!(process.steps().len(), 3);
        assert_eq!(process.start.elapsed(), Duration::from_secs(18));
    }

    #[tokio::test(start_paused = true)]
    async fn exited_process_untouched() {
        let process = FakeProcess::new(None, true);
        process.exited_tx.send_replace(true);
        let step = run_stop_sequence(&process, TIMEOUTS).await.unwrap();
        assert_eq!(step, StopStep::AlreadyExited);
        assert!(process.steps().is_empty());
    }
}
