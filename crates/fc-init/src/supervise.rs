//! Starting the service, forwarding signals to it, reaping every child, and stopping what
//! is left when the service exits.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal, kill, killpg};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::console;

/// How long the processes left after the service exits get between SIGTERM and SIGKILL.
pub const GRACE_PERIOD: Duration = Duration::from_secs(5);

/// How long fc-init waits for processes to disappear after SIGKILL before it goes on.
/// Processes stuck in uninterruptible sleep may never go away.
pub const KILL_WAIT: Duration = Duration::from_secs(2);

/// Whether fc-init is the init process of its PID namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// PID 1: every orphan in the namespace becomes fc-init's child, and the namespace (or
    /// the VM) ends by reboot when fc-init is done.
    Init,
    /// Any other PID, for tests and trials: fc-init makes itself a child subreaper, starts
    /// the service in its own process group, and exits with a status at the end.
    Helper,
}

impl Role {
    /// Detects the role from the process id.
    pub fn detect() -> Role {
        if nix::unistd::getpid().as_raw() == 1 {
            Role::Init
        } else {
            Role::Helper
        }
    }
}

/// Everything needed to start the service.
#[derive(Debug, Clone)]
pub struct ServiceSpec {
    /// The resolved program path.
    pub program: PathBuf,
    /// The full argv, `argv[0]` first.
    pub argv: Vec<OsString>,
    /// The complete environment; nothing else is inherited.
    pub env: BTreeMap<OsString, OsString>,
    pub workdir: Option<PathBuf>,
    /// `(uid, gid)` to switch to; supplementary groups are cleared when set.
    pub user: Option<(u32, u32)>,
}

/// Final state of the service process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceStatus {
    Exited(i32),
    Signaled(Signal),
}

impl ServiceStatus {
    /// Returns the shell-style exit code: the status itself, or 128 + the signal number.
    pub fn exit_code(self) -> u8 {
        match self {
            // Exit statuses are already 0..=255 on Linux.
            ServiceStatus::Exited(code) => u8::try_from(code & 0xff).unwrap_or(u8::MAX),
            ServiceStatus::Signaled(signal) => {
                u8::try_from(128 + (signal as i32)).unwrap_or(u8::MAX)
            }
        }
    }
}

impl fmt::Display for ServiceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceStatus::Exited(code) => write!(f, "exited with status {code}"),
            ServiceStatus::Signaled(signal) => {
                write!(
                    f,
                    "was killed by signal {} ({})",
                    *signal as i32,
                    signal.as_str()
                )
            }
        }
    }
}

/// A failure to set up signal handling or to start the service.
#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    #[error("failed to change the signal mask")]
    BlockSignals {
        #[source]
        source: nix::Error,
    },
    #[error("failed to create the signal descriptor")]
    SignalFd {
        #[source]
        source: nix::Error,
    },
    #[error("failed to make fc-init a child subreaper")]
    Subreaper {
        #[source]
        source: nix::Error,
    },
    #[error("failed to start {program}{user}")]
    Spawn {
        program: PathBuf,
        user: String,
        #[source]
        source: std::io::Error,
    },
}

impl SuperviseError {
    /// Exit code in the helper role: 127 when the program does not exist, 126 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            SuperviseError::Spawn { source, .. }
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                127
            }
            _ => 126,
        }
    }
}

/// The running supervisor: the signal descriptor and the service it watches.
#[derive(Debug)]
pub struct Supervisor {
    role: Role,
    signals: SignalFd,
    service: Pid,
}

/// Signals fc-init handles. Once the service runs they stay blocked and are read from a
/// signal descriptor.
fn handled_signals() -> SigSet {
    let mut mask = SigSet::empty();
    for signal in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
    ] {
        mask.add(signal);
    }
    mask
}

impl Supervisor {
    /// Starts the service, then blocks the handled signals and opens the signal descriptor.
    pub fn start(role: Role, spec: &ServiceSpec) -> Result<Supervisor, SuperviseError> {
        if role == Role::Helper {
            nix::sys::prctl::set_child_subreaper(true)
                .map_err(|source| SuperviseError::Subreaper { source })?;
        }
        let mask = handled_signals();
        // NOTE: the standard library does not reset the signal mask of a spawned child, and
        // setting it in the child needs `unsafe` (`pre_exec`). So the signals are blocked
        // only after the spawn. A SIGTERM, SIGINT or SIGHUP that arrives during the spawn is
        // lost, because PID 1 ignores signals it has no handler for. A lost SIGCHLD does no
        // harm because `wait_for_service` reaps before it first waits.
        mask.thread_unblock()
            .map_err(|source| SuperviseError::BlockSignals { source })?;

        let mut command = Command::new(&spec.program);
        if let Some((first, rest)) = spec.argv.split_first() {
            command.arg0(first).args(rest);
        }
        command.env_clear().envs(&spec.env);
        if let Some(workdir) = &spec.workdir {
            command.current_dir(workdir);
        }
        if let Some((uid, gid)) = spec.user {
            command.uid(uid).gid(gid);
        }
        if role == Role::Helper {
            command.process_group(0);
        }
        let child = command.spawn().map_err(|source| SuperviseError::Spawn {
            program: spec.program.clone(),
            user: spec
                .user
                .map(|(uid, gid)| format!(" as {uid}:{gid}"))
                .unwrap_or_default(),
            source,
        })?;
        let pid = i32::try_from(child.id()).unwrap_or(i32::MAX);
        // The child is reaped by `reap` through waitpid(-1), never through this handle.
        drop(child);

        mask.thread_block()
            .map_err(|source| SuperviseError::BlockSignals { source })?;
        let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
            .map_err(|source| SuperviseError::SignalFd { source })?;
        Ok(Supervisor {
            role,
            signals,
            service: Pid::from_raw(pid),
        })
    }

    /// Returns the service's process id.
    pub fn service_pid(&self) -> Pid {
        self.service
    }

    /// Forwards signals to the service and reaps children until the service exits.
    pub fn wait_for_service(&mut self) -> ServiceStatus {
        loop {
            if let Some(status) = self.reap().service {
                return status;
            }
            for signal in self.wait_for_signals(None) {
                self.forward(signal);
            }
        }
    }

    fn forward(&self, signal: Signal) {
        let sent = match signal {
            Signal::SIGCHLD => return,
            Signal::SIGINT => {
                console::report(format_args!(
                    "SIGINT (Ctrl-Alt-Del) received, sending SIGTERM to the service (pid {})",
                    self.service
                ));
                Signal::SIGTERM
            }
            other => {
                console::report(format_args!(
                    "forwarding {} to the service (pid {})",
                    other.as_str(),
                    self.service
                ));
                other
            }
        };
        if let Err(err) = kill(self.service, sent) {
            console::report(format_args!(
                "failed to send {} to the service (pid {}): {err}",
                sent.as_str(),
                self.service
            ));
        }
    }

    /// Stops every process that is left: SIGTERM, up to `grace` for them to exit, then
    /// SIGKILL and up to [`KILL_WAIT`]; then flushes file systems with sync(2).
    pub fn stop_remaining(&mut self, grace: Duration) {
        if !self.reap().no_children_left {
            console::report(format_args!(
                "sending SIGTERM to the remaining processes, SIGKILL in {} ms",
                grace.as_millis()
            ));
            self.signal_remaining(Signal::SIGTERM);
            if !self.wait_until_no_children(grace, None) {
                console::report("sending SIGKILL to the remaining processes");
                self.signal_remaining(Signal::SIGKILL);
                if !self.wait_until_no_children(KILL_WAIT, Some(Signal::SIGKILL)) {
                    console::report("processes are still left after SIGKILL, going on");
                }
            }
        }
        nix::unistd::sync();
    }

    /// Reaps and waits until no child is left or `timeout` passes. With `repeat`, that
    /// signal goes again to the remaining processes at every wake-up, so that orphans
    /// reparented meanwhile get it too. Returns whether no child is left.
    fn wait_until_no_children(&mut self, timeout: Duration, repeat: Option<Signal>) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.reap().no_children_left {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            // Signals other than SIGCHLD are ignored once the service has exited.
            self.wait_for_signals(Some(deadline - now));
            if let Some(signal) = repeat {
                self.signal_remaining(signal);
            }
        }
    }

    fn signal_remaining(&self, signal: Signal) {
        match self.role {
            // kill(-1) reaches every process in the namespace except PID 1 itself.
            Role::Init => {
                if let Err(err) = kill(Pid::from_raw(-1), signal)
                    && err != Errno::ESRCH
                {
                    console::report(format_args!(
                        "failed to send {} to all processes: {err}",
                        signal.as_str()
                    ));
                }
            }
            Role::Helper => {
                // The service's process group, then every direct child: orphans that left
                // the group are reparented to fc-init because it is a child subreaper.
                let _ = killpg(self.service, signal);
                for child in direct_children(nix::unistd::getpid()) {
                    let _ = kill(child, signal);
                }
            }
        }
    }

    /// Collects every child that has exited.
    fn reap(&self) -> Reaped {
        let mut reaped = Reaped::default();
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == self.service => {
                    reaped.service = Some(ServiceStatus::Exited(code));
                }
                Ok(WaitStatus::Signaled(pid, signal, _)) if pid == self.service => {
                    reaped.service = Some(ServiceStatus::Signaled(signal));
                }
                Ok(WaitStatus::StillAlive) => return reaped,
                Ok(_) | Err(Errno::EINTR) => {}
                Err(Errno::ECHILD) => {
                    reaped.no_children_left = true;
                    return reaped;
                }
                Err(err) => {
                    console::report(format_args!("waitpid failed: {err}"));
                    return reaped;
                }
            }
        }
    }

    /// Waits until a handled signal arrives or `timeout` passes (`None`: no limit) and
    /// returns the signals read.
    fn wait_for_signals(&mut self, timeout: Option<Duration>) -> Vec<Signal> {
        let timeout = match timeout {
            None => PollTimeout::NONE,
            // Round up so that a short remainder does not turn into a busy loop.
            Some(left) => {
                PollTimeout::try_from(left + Duration::from_millis(1)).unwrap_or(PollTimeout::MAX)
            }
        };
        let mut fds = [PollFd::new(self.signals.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(err) => {
                console::report(format_args!("poll on the signal descriptor failed: {err}"))
            }
        }
        let mut signals = Vec::new();
        loop {
            match self.signals.read_signal() {
                Ok(Some(info)) => {
                    if let Ok(signal) = Signal::try_from(info.ssi_signo as i32) {
                        signals.push(signal);
                    }
                }
                Ok(None) => return signals,
                Err(Errno::EINTR) => {}
                Err(err) => {
                    console::report(format_args!("reading the signal descriptor failed: {err}"));
                    return signals;
                }
            }
        }
    }
}

#[derive(Debug, Default)]
struct Reaped {
    service: Option<ServiceStatus>,
    no_children_left: bool,
}

/// Lists the processes whose parent is `parent`, from `/proc/<pid>/stat`.
fn direct_children(parent: Pid) -> Vec<Pid> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| parent_of(&stat))
                == Some(parent.as_raw())
        })
        .map(Pid::from_raw)
        .collect()
}

/// Reads the parent pid from `/proc/<pid>/stat` text: the second field after the command
/// name, which is in parentheses and may itself contain spaces and parentheses.
fn parent_of(stat: &str) -> Option<i32> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_text_and_codes() {
        assert_eq!(ServiceStatus::Exited(3).to_string(), "exited with status 3");
        assert_eq!(ServiceStatus::Exited(3).exit_code(), 3);
        let killed = ServiceStatus::Signaled(Signal::SIGTERM);
        assert_eq!(killed.to_string(), "was killed by signal 15 (SIGTERM)");
        assert_eq!(killed.exit_code(), 143);
    }

    #[test]
    fn parent_from_stat() {
        assert_eq!(parent_of("42 (sh) S 7 42 42 0 -1"), Some(7));
        assert_eq!(parent_of("42 (a) b) (c) R 9 1 1"), Some(9));
        assert_eq!(parent_of("garbage"), None);
    }

    #[test]
    fn direct_children_finds_spawned_process() {
        let mut child = Command::new("sleep").arg("5").spawn().unwrap();
        let pid = Pid::from_raw(i32::try_from(child.id()).unwrap());
        let children = direct_children(nix::unistd::getpid());
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(children.contains(&pid), "{children:?} lacks {pid}");
    }
}
