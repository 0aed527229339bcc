//! Process identity from `/proc`: a pid together with its start time, so that a pid reused
//! by an unrelated process is never mistaken for a VM.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// A process as recorded at spawn time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessIdentity {
    /// Process id.
    pub pid: i32,
    /// Field 22 of `/proc/<pid>/stat`: start time in clock ticks after boot.
    pub start_time_ticks: u64,
}

/// The fields of `/proc/<pid>/stat` the runtime uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// Field 3, the one-letter state (`R`, `S`, `Z`, …).
    pub state: char,
    /// Field 22, start time in clock ticks after boot.
    pub start_time_ticks: u64,
}

/// State of a recorded process according to `/proc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    /// Alive, same start time, and its command line names the expected API socket.
    Ours,
    /// No process with that pid exists.
    Gone,
    /// The process has exited and waits to be reaped.
    Zombie,
    /// The pid now belongs to a process started at another time.
    Reused { start_time_ticks: u64 },
    /// Same pid and start time, but the command line does not name the socket.
    OtherCommand { cmdline: String },
}

impl Liveness {
    /// Whether the recorded process is still running.
    pub fn is_ours(&self) -> bool {
        matches!(self, Liveness::Ours)
    }
}

impl std::fmt::Display for Liveness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Liveness::Ours => write!(f, "alive"),
            Liveness::Gone => write!(f, "no such process"),
            Liveness::Zombie => write!(f, "exited, not yet reaped"),
            Liveness::Reused { start_time_ticks } => write!(
                f,
                "pid reused by a process started at tick {start_time_ticks}"
            ),
            Liveness::OtherCommand { cmdline } => {
                write!(f, "pid runs another command: {cmdline}")
            }
        }
    }
}

/// Parses the content of `/proc/<pid>/stat`. The command name (field 2) is in parentheses
/// and may itself contain spaces and parentheses, so fields are counted after the last `)`.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let after_comm = &text[text.rfind(')')? + 1..];
    let mut fields = after_comm.split_ascii_whitespace();
    // `fields` starts at field 3 (state); field 22 is 19 further.
    let state = fields.next()?.chars().next()?;
    let start_time_ticks = fields.nth(18)?.parse().ok()?;
    Some(ProcStat {
        state,
        start_time_ticks,
    })
}

/// Reads `/proc/<pid>/stat`.
pub fn read_stat(pid: i32) -> io::Result<ProcStat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat(&text).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected format of /proc/{pid}/stat: {text:?}"),
        )
    })
}

/// Reads `/proc/<pid>/cmdline` as its NUL-separated arguments.
pub fn read_cmdline(pid: i32) -> io::Result<Vec<OsString>> {
    let bytes = fs::read(format!("/proc/{pid}/cmdline"))?;
    Ok(bytes
        .split(|b| *b == 0)
        .filter(|arg| !arg.is_empty())
        .map(|arg| OsString::from_vec(arg.to_vec()))
        .collect())
}

/// Whether `args` contains `flag` immediately followed by `value`.
pub fn has_flag_value(args: &[OsString], flag: &str, value: &std::ffi::OsStr) -> bool {
    args.windows(2)
        .any(|pair| pair[0] == flag && pair[1] == value)
}

impl ProcessIdentity {
    /// Reads the identity of a live process.
    pub fn of(pid: i32) -> io::Result<ProcessIdentity> {
        Ok(ProcessIdentity {
            pid,
            start_time_ticks: read_stat(pid)?.start_time_ticks,
        })
    }

    /// Checks that the recorded process still runs: the pid exists and is not a zombie, its
    /// start time matches, and its command line contains `--api-sock <cmdline_socket>` and
    /// `--id <vm_id>`.
    pub fn check(&self, cmdline_socket: &Path, vm_id: &str) -> Liveness {
        let stat = match read_stat(self.pid) {
            Ok(stat) => stat,
            Err(_) => return Liveness::Gone,
        };
        if stat.start_time_ticks != self.start_time_ticks {
            return Liveness::Reused {
                start_time_ticks: stat.start_time_ticks,
            };
        }
        if stat.state == 'Z' || stat.state == 'X' {
            return Liveness::Zombie;
        }
        // A process that exits between the two reads shows an empty command line.
        let args = match read_cmdline(self.pid) {
            Ok(args) => args,
            Err(_) => return Liveness::Gone,
        };
        if has_flag_value(&args, "--api-sock", cmdline_socket.as_os_str())
            && has_flag_value(&args, "--id", vm_id.as_ref())
        {
            Liveness::Ours
        } else {
            Liveness::OtherCommand {
                cmdline: join_args(&args),
            }
        }
    }

    /// Whether the process has ended (gone, zombie, or its pid reused).
    pub fn has_ended(&self) -> bool {
        match read_stat(self.pid) {
            Ok(stat) => {
                stat.start_time_ticks != self.start_time_ticks
                    || stat.state == 'Z'
                    || stat.state == 'X'
            }
            Err(_) => true,
        }
    }
}

/// Joins arguments with spaces for messages.
pub fn join_args(args: &[OsString]) -> String {
    args.iter()
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Lists the pids in `/proc` whose command line satisfies `matches`.
pub fn find_processes(matches: impl Fn(&[OsString]) -> bool) -> Vec<i32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            read_cmdline(*pid)
                .map(|args| matches(&args))
                .unwrap_or(false)
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    #[test]
    fn stat_with_odd_comm() {
        let text = "1234 (fc (x) y) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 10 18446744073709551615";
        let stat = parse_stat(text).unwrap();
        assert_eq!(stat.state, 'S');
        assert_eq!(stat.start_time_ticks, 98765);
    }

    #[test]
    fn stat_truncated() {
        assert_eq!(parse_stat("1 (a) S 1 2 3"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn own_process_identity() {
        let pid = std::process::id() as i32;
        let me = ProcessIdentity::of(pid).unwrap();
        let again = ProcessIdentity::of(pid).unwrap();
        assert_eq!(me, again);
        assert!(!me.has_ended());
        // The test binary's command line has no --api-sock.
        assert!(matches!(
            me.check(Path::new("/x.sock"), "vm-1"),
            Liveness::OtherCommand { .. }
        ));
        let wrong_start = ProcessIdentity {
            pid,
            start_time_ticks: me.start_time_ticks + 1,
        };
        assert_eq!(
            wrong_start.check(Path::new("/x.sock"), "vm-1"),
            Liveness::Reused {
                start_time_ticks: me.start_time_ticks
            }
        );
        assert!(wrong_start.has_ended());
    }

    #[test]
    fn child_with_socket_arg_is_ours() {
        // The trailing `true` keeps the shell from replacing itself with `sleep`.
        let child = std::process::Command::new("sh")
            .args([
                "-c",
                "sleep 30; true",
                "--api-sock",
                "/tmp/a.sock",
                "--id",
                "vm-1",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .spawn();
        let mut child = child.unwrap();
        let pid = child.id() as i32;
        wait_for_exec(pid);
        let id = ProcessIdentity::of(pid).unwrap();
        let args = read_cmdline(pid).unwrap();
        let liveness = id.check(Path::new("/tmp/a.sock"), "vm-1");
        let other_vm = id.check(Path::new("/tmp/a.sock"), "vm-2");
        kill_group(pid);
        child.wait().unwrap();
        assert!(
            has_flag_value(&args, "--api-sock", "/tmp/a.sock".as_ref()),
            "{args:?}"
        );
        assert_eq!(liveness, Liveness::Ours);
        assert!(
            matches!(other_vm, Liveness::OtherCommand { .. }),
            "{other_vm:?}"
        );
        assert_eq!(id.check(Path::new("/tmp/a.sock"), "vm-1"), Liveness::Gone);
    }

    /// Kills the process group of a test child, so that its `sleep` dies with the shell.
    pub(crate) fn kill_group(pid: i32) {
        nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
    }

    /// Waits until the child's command line is readable: the parent of a vfork-style spawn
    /// resumes before the kernel has set up the new program's arguments.
    pub(crate) fn wait_for_exec(pid: i32) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while read_cmdline(pid).map(|a| a.is_empty()).unwrap_or(true) {
            assert!(
                std::time::Instant::now() < deadline,
                "pid {pid} never exec'd"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    #[test]
    fn flag_value_pairs() {
        let args: Vec<OsString> = ["fc", "--api-sock", "/a", "--id", "x"]
            .iter()
            .map(OsString::from)
            .collect();
        assert!(has_flag_value(&args, "--api-sock", "/a".as_ref()));
        assert!(has_flag_value(&args, "--id", "x".as_ref()));
        assert!(!has_flag_value(&args, "--api-sock", "x".as_ref()));
    }
}
