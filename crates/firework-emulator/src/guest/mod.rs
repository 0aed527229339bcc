//! Guest mode: instead of only answering the API, the emulator runs the guest from its
//! root drive as a sandboxed process tree after `InstanceStart`. See
//! `docs/emulator-guest-mode.md`.
//!
//! The tree is: the emulator, an outer stage (the emulator binary again, see [`stage`])
//! that owns the new mount, PID, UTS, IPC and network namespaces and the mounted image,
//! and the guest's init as PID 1 of the new PID namespace. The emulator keeps the host
//! TAP and relays frames to an `eth0` TAP inside the guest's network namespace
//! ([`net`]).

pub mod bootargs;
pub mod net;
pub mod stage;

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::sync::{mpsc, oneshot};

use bootargs::BootArgs;

/// Environment variable that turns guest mode on (`1`).
pub const GUEST_MODE_ENV: &str = "FC_EMULATOR_GUEST";
/// Environment variable that selects the guest stage the emulator binary runs.
pub const STAGE_ENV: &str = "FC_EMULATOR_GUEST_STAGE";
/// How long the network setup of one interface may take.
const NET_SETUP_TIMEOUT: Duration = Duration::from_secs(20);

/// Errors of starting a guest.
#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    #[error("guest mode needs a root drive with a path on the host")]
    NoRootDrive,
    #[error("failed to start the guest stage {stage}")]
    Spawn {
        stage: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to talk to the guest stage during {step}")]
    Pipe {
        step: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("guest setup failed: {0}")]
    Stage(String),
    #[error("guest stage answered {line:?} during {step}")]
    Protocol { step: &'static str, line: String },
    #[error("guest interface {interface}: {message}")]
    Net { interface: String, message: String },
}

/// One network interface of the guest.
#[derive(Debug)]
pub struct GuestNic {
    /// The host TAP, opened as Firecracker opens it (with `IFF_VNET_HDR`).
    pub host_tap: OwnedFd,
    pub mac: Option<[u8; 6]>,
    pub mtu: Option<u16>,
}

/// Everything the guest needs from the VM configuration.
#[derive(Debug)]
pub struct GuestSpec {
    pub root_path: String,
    pub read_only: bool,
    /// The full command line, as `/proc/cmdline` shows it in a real guest.
    pub cmdline: String,
    pub nics: Vec<GuestNic>,
}

/// The way the guest's init ended, as the outer stage reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestEnd {
    /// `reboot(2)` with a restart command: init was killed with SIGHUP.
    Reboot,
    /// `reboot(2)` with a power-off or halt command: init was killed with SIGINT.
    PowerOff,
    /// Init exited or was killed by another signal; the wait status, as the kernel's panic
    /// message prints it (exit status times 256, or the signal number).
    InitDied(i32),
    /// The outer stage went away without a report.
    Lost,
}

/// The running guest.
#[derive(Debug)]
struct RunningGuest {
    init_pid: Pid,
    panic_timeout: i64,
    end: Option<oneshot::Receiver<GuestEnd>>,
    /// Kept open so the outer stage is not left with a closed pipe.
    _control: ChildStdin,
}

static GUEST: Mutex<Option<RunningGuest>> = Mutex::new(None);

/// Returns whether guest mode is on for this process.
pub fn enabled() -> bool {
    std::env::var(GUEST_MODE_ENV).is_ok_and(|value| value == "1")
}

/// Runs the guest stage this process was started for, if any, and returns its exit
/// status. The emulator's `main` calls this first.
pub fn stage_main() -> Option<i32> {
    let stage = std::env::var(STAGE_ENV).ok()?;
    Some(match stage.as_str() {
        stage::OUTER => stage::run_outer(),
        stage::INIT => stage::run_init(),
        other => {
            eprintln!("fc-emulator: unknown guest stage {other:?}");
            1
        }
    })
}

fn read_line(reader: &mut impl BufRead, step: &'static str) -> Result<String, GuestError> {
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .map_err(|source| GuestError::Pipe { step, source })?;
    let line = line.trim_end().to_string();
    if let Some(message) = line.strip_prefix("error ") {
        return Err(GuestError::Stage(message.to_string()));
    }
    if line.is_empty() {
        return Err(GuestError::Stage(format!(
            "the guest stage exited during {step}"
        )));
    }
    Ok(line)
}

/// Starts the guest described by `spec`. Returns once its init runs.
pub fn boot(spec: GuestSpec) -> Result<(), GuestError> {
    let mut child = spawn_outer()?;
    let started = match start(&mut child, spec) {
        Ok(started) => started,
        Err(error) => {
            // The outer stage's death takes the namespaces, mounts and loop device along.
            let _ = child.kill();
            let _ = child.wait();
            return Err(error);
        }
    };
    let Started {
        init_pid,
        boot_args,
        mut reports,
        control,
    } = started;
    let (end_tx, end_rx) = oneshot::channel();
    std::thread::Builder::new()
        .name("guest-wait".to_string())
        .spawn(move || {
            let end = wait_end(&mut reports);
            let _ = child.wait();
            let _ = end_tx.send(end);
        })
        .map_err(|source| GuestError::Spawn {
            stage: "guest-wait",
            source,
        })?;
    let mut slot = GUEST
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    *slot = Some(RunningGuest {
        init_pid,
        panic_timeout: boot_args.panic_timeout,
        end: Some(end_rx),
        _control: control,
    });
    Ok(())
}

/// A guest whose init runs.
struct Started {
    init_pid: Pid,
    boot_args: BootArgs,
    reports: BufReader<ChildStdout>,
    control: ChildStdin,
}

fn spawn_outer() -> Result<Child, GuestError> {
    // The console is the emulator's stdout: the outer stage's stderr, which it hands to
    // init as stdout and stderr.
    let console = std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|source| GuestError::Spawn {
            stage: stage::OUTER,
            source,
        })?;
    Command::new("/proc/self/exe")
        .env(STAGE_ENV, stage::OUTER)
        .env(stage::PARENT_ENV, std::process::id().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(console))
        .spawn()
        .map_err(|source| GuestError::Spawn {
            stage: stage::OUTER,
            source,
        })
}

fn start(child: &mut Child, spec: GuestSpec) -> Result<Started, GuestError> {
    let boot_args = BootArgs::parse(&spec.cmdline);
    let mut control = child.stdin.take().ok_or(GuestError::Protocol {
        step: "spawn",
        line: String::new(),
    })?;
    let stdout = child.stdout.take().ok_or(GuestError::Protocol {
        step: "spawn",
        line: String::new(),
    })?;
    let mut reports = BufReader::new(stdout);
    let request = stage::OuterRequest {
        root_path: spec.root_path,
        read_only: spec.read_only,
        cmdline: spec.cmdline,
    };
    let mut text = serde_json::to_string(&request).map_err(|error| GuestError::Pipe {
        step: "send request",
        source: error.into(),
    })?;
    text.push('\n');
    control
        .write_all(text.as_bytes())
        .map_err(|source| GuestError::Pipe {
            step: "send request",
            source,
        })?;
    let line = read_line(&mut reports, "namespace setup")?;
    if line != "ready" {
        return Err(GuestError::Protocol {
            step: "namespace setup",
            line,
        });
    }

    for (index, nic) in spec.nics.into_iter().enumerate() {
        let name = format!("eth{index}");
        let ip = boot_args
            .ip
            .as_ref()
            .filter(|ip| ip.device.as_deref().unwrap_or("eth0") == name)
            .cloned();
        let ready = net::attach(child.id(), name.clone(), nic, ip);
        match ready.recv_timeout(NET_SETUP_TIMEOUT) {
            Ok(Ok(())) => {}
            Ok(Err(message)) => {
                return Err(GuestError::Net {
                    interface: name,
                    message,
                });
            }
            Err(_) => {
                return Err(GuestError::Net {
                    interface: name,
                    message: "setup did not finish".to_string(),
                });
            }
        }
    }

    control
        .write_all(b"go\n")
        .map_err(|source| GuestError::Pipe {
            step: "start init",
            source,
        })?;
    let line = read_line(&mut reports, "start init")?;
    let init_pid = line
        .strip_prefix("init ")
        .and_then(|pid| pid.parse().ok())
        .map(Pid::from_raw)
        .ok_or_else(|| GuestError::Protocol {
            step: "start init",
            line: line.clone(),
        })?;

    Ok(Started {
        init_pid,
        boot_args,
        reports,
        control,
    })
}

fn wait_end(reports: &mut impl BufRead) -> GuestEnd {
    let mut line = String::new();
    loop {
        line.clear();
        match reports.read_line(&mut line) {
            Ok(0) | Err(_) => return GuestEnd::Lost,
            Ok(_) => {}
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["end", "signal", number] if *number == (Signal::SIGHUP as i32).to_string() => {
                return GuestEnd::Reboot;
            }
            ["end", "signal", number] if *number == (Signal::SIGINT as i32).to_string() => {
                return GuestEnd::PowerOff;
            }
            ["end", "signal", number] => {
                return GuestEnd::InitDied(number.parse::<i32>().unwrap_or(0) & 0x7f);
            }
            ["end", "exit", status] => {
                return GuestEnd::InitDied((status.parse::<i32>().unwrap_or(0) & 0xff) << 8);
            }
            _ => {}
        }
    }
}

/// Delivers Ctrl-Alt-Del to the guest as the kernel does when the key combination does
/// not reboot at once: SIGINT to init. Returns `false` when no guest runs.
pub fn send_ctrl_alt_del() -> bool {
    let slot = GUEST
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    match slot.as_ref() {
        Some(guest) => kill(guest.init_pid, Signal::SIGINT).is_ok(),
        None => false,
    }
}

/// Watches the running guest, if any, and sends the emulator's exit status on `exit`
/// when the guest's end would end Firecracker: a reboot, or init's death followed by
/// the kernel's panic reboot when `panic=` is not 0. A power-off leaves the process
/// running, as on x86_64 Firecracker without ACPI power-off.
pub fn spawn_exit_watch(exit: mpsc::UnboundedSender<i32>) {
    let (end, panic_timeout) = {
        let mut slot = GUEST
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match slot.as_mut() {
            Some(guest) => (guest.end.take(), guest.panic_timeout),
            None => return,
        }
    };
    let Some(end) = end else {
        return;
    };
    tokio::spawn(async move {
        let Ok(end) = end.await else {
            return;
        };
        match end {
            GuestEnd::Reboot => {
                println!("reboot: Restarting system");
                let _ = exit.send(0);
            }
            GuestEnd::PowerOff => println!("reboot: Power down"),
            GuestEnd::InitDied(status) => {
                println!(
                    "Kernel panic - not syncing: Attempted to kill init! exitcode=0x{:08x}",
                    status as u32
                );
                if panic_timeout != 0 {
                    let seconds = panic_timeout.max(0) as u64;
                    tokio::time::sleep(Duration::from_secs(seconds)).await;
                    let _ = exit.send(0);
                }
            }
            GuestEnd::Lost => {
                println!("Kernel panic - not syncing: guest stage lost");
                if panic_timeout != 0 {
                    let _ = exit.send(0);
                }
            }
        }
    });
}
