//! Runs the fc-init binary as PID 1 of new PID, mount, UTS and IPC namespaces, chrooted
//! into a small root file system whose `/usr` is the host's (read-only bind mount), with a
//! test command line bind-mounted over `/proc/cmdline`. Needs root and util-linux
//! (`unshare`, `mount`, `chroot`).
//!
//! Inside a child PID namespace, reboot(2) ends the namespace instead of the machine: the
//! kernel kills the namespace's init with SIGHUP for a restart and SIGINT for a power-off,
//! and `unshare` ends itself with the same signal. The tests read that to tell a reboot
//! from a power-off.
//!
//! Set `FC_INIT_BIN` to test another build (e.g. the static release binary).

// Helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Upper bound for one guest run. A run normally takes well under a second, or about the
/// 5 s grace period when a process ignores SIGTERM.
const RUN_DEADLINE: Duration = Duration::from_secs(60);

const LAUNCHER: &str = r#"set -e
root="$1"; cmdline="$2"; shift 2
mount --bind -o ro /usr "$root/usr"
mount -t proc proc "$root/proc"
mount --bind "$cmdline" "$root/proc/cmdline"
exec /usr/bin/env -i HOME=/ TERM=linux /usr/sbin/chroot "$root" /fc-init "$@"
"#;

fn can_run() -> bool {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: running fc-init as PID 1 of a new namespace needs root");
        return false;
    }
    let missing: Vec<&str> = ["/usr/bin/unshare", "/usr/bin/mount", "/usr/sbin/chroot"]
        .into_iter()
        .filter(|tool| !Path::new(tool).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "required tools missing in CI: {missing:?} (install util-linux and coreutils)"
    );
    eprintln!("skipped: missing tools {missing:?}");
    false
}

fn fc_init_binary() -> PathBuf {
    std::env::var_os("FC_INIT_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_fc-init")))
}

/// A root file system in a temporary directory.
struct Guest {
    dir: tempfile::TempDir,
}

impl Guest {
    fn new() -> Guest {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        for sub in ["usr", "proc", "etc/firework", "svc", "out"] {
            fs::create_dir_all(root.join(sub)).unwrap();
        }
        for (link, target) in [
            ("bin", "usr/bin"),
            ("sbin", "usr/sbin"),
            ("lib", "usr/lib"),
            ("lib64", "usr/lib64"),
        ] {
            std::os::unix::fs::symlink(target, root.join(link)).unwrap();
        }
        fs::copy(fc_init_binary(), root.join("fc-init")).unwrap();
        fs::write(
            root.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nsvc:x:4321:4322:service:/home/svc:/bin/sh\n",
        )
        .unwrap();
        fs::write(root.join("etc/group"), "root:x:0:\nsvc:x:4322:\n").unwrap();
        fs::write(root.join("etc/hostname"), "from-file\n").unwrap();
        Guest { dir }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn add_script(&self, name: &str, body: &str) {
        let path = self.root().join("svc").join(name);
        fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn output(&self, name: &str) -> String {
        let path = self.root().join("out").join(name);
        fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
    }

    /// Starts fc-init as PID 1 with `cmdline` as its `/proc/cmdline`.
    fn start(&self, cmdline: &str) -> Running {
        self.start_with_args(cmdline, &[])
    }

    /// Starts fc-init as PID 1 with `cmdline` as its `/proc/cmdline` and `kernel_args` as
    /// its arguments, standing in for the words the kernel passes to init.
    fn start_with_args(&self, cmdline: &str, kernel_args: &[&str]) -> Running {
        let cmdline_file = self.dir.path().join("cmdline");
        fs::write(&cmdline_file, format!("{cmdline}\n")).unwrap();
        let console_file = self.dir.path().join("console");
        let console = fs::File::create(&console_file).unwrap();
        let child = Command::new("/usr/bin/unshare")
            .args(["--pid", "--fork", "--mount", "--uts", "--ipc"])
            .args(["--propagation", "private", "--", "/bin/sh", "-c", LAUNCHER])
            .arg("launcher")
            .arg(self.root())
            .arg(&cmdline_file)
            .args(kernel_args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(Stdio::null())
            .stdout(console.try_clone().unwrap())
            .stderr(console)
            .spawn()
            .unwrap();
        Running {
            child,
            console_file,
        }
    }

    /// Runs fc-init to the end.
    fn run(&self, cmdline: &str) -> Finished {
        self.start(cmdline).finish()
    }
}

struct Running {
    child: Child,
    console_file: PathBuf,
}

struct Finished {
    status: ExitStatus,
    console: String,
}

impl Finished {
    fn assert_console_has(&self, line: &str) {
        assert!(
            self.console.lines().any(|l| l == line),
            "console lacks line {line:?}:\n{}",
            self.console
        );
    }

    fn assert_ended_by(&self, signal: Signal) {
        assert_eq!(
            self.status.signal(),
            Some(signal as i32),
            "expected the namespace to end by {signal} (status {:?}), console:\n{}",
            self.status,
            self.console
        );
    }
}

impl Running {
    /// Finds the host pid of the namespace's PID 1, the only child of `unshare`.
    fn init_pid(&self) -> Pid {
        let parent = self.child.id().to_string();
        let deadline = Instant::now() + RUN_DEADLINE;
        loop {
            for entry in fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
                let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
                    continue;
                };
                let Some(after_name) = stat.rfind(')').map(|end| &stat[end + 1..]) else {
                    continue;
                };
                if after_name.split_whitespace().nth(1) == Some(parent.as_str()) {
                    let pid = entry.file_name().to_string_lossy().parse().unwrap();
                    return Pid::from_raw(pid);
                }
            }
            assert!(Instant::now() < deadline, "unshare started no child");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Polls until `path` exists, failing after the deadline or when the run ends first.
    fn wait_for_file(&mut self, path: &Path) {
        let deadline = Instant::now() + RUN_DEADLINE;
        while !path.exists() {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "fc-init ended ({status:?}) before {} appeared:\n{}",
                    path.display(),
                    fs::read_to_string(&self.console_file).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} did not appear",
                path.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Polls until the namespace has ended; kills it after the deadline.
    fn finish(mut self) -> Finished {
        let deadline = Instant::now() + RUN_DEADLINE;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = kill(self.init_pid(), Signal::SIGKILL);
                let _ = self.child.wait();
                panic!(
                    "the namespace did not end within {RUN_DEADLINE:?}:\n{}",
                    fs::read_to_string(&self.console_file).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Finished {
            status,
            console: fs::read_to_string(&self.console_file).unwrap(),
        }
    }
}

#[test]
fn pid1_environment_arguments_and_settings() {
    if !can_run() {
        return;
    }
    let guest = Guest::new();
    guest.add_script(
        "report.sh",
        r#"env > /out/env
for arg in "$@"; do printf '%s\n' "$arg"; done > /out/args
pwd > /out/pwd
cat /proc/sys/kernel/hostname > /out/hostname
cut -d' ' -f2 /proc/self/mounts > /out/mounts
exit 3
"#,
    );

    let finished = guest.run(
        r#"console=ttyS0 reboot=k panic=1 firework.env.FOO=first firework.env64.MSG=aGVsbG8gd29ybGQ "firework.env.QUOTED=a b" firework.env.EQ=x=y firework.env.EMPTY= firework.env.1BAD=z firework.env.FOO=last firework.hostname=guest-one firework.dns=127.0.0.53,::1 firework.workdir=/svc -- /svc/report.sh "arg one" two k=v"#,
    );

    finished.assert_console_has("fc-init: service exited with status 3");
    finished.assert_console_has(
        "fc-init: invalid variable name \"1BAD\" in firework.env.1BAD: a name must match \
         [A-Za-z_][A-Za-z0-9_]*",
    );
    finished.assert_console_has("fc-init: rebooting");
    // A child PID namespace rejects RB_DISABLE_CAD, which shows that fc-init made the call.
    finished.assert_console_has(
        "fc-init: failed to disable the Ctrl-Alt-Del reboot: EINVAL: Invalid argument",
    );
    finished.assert_ended_by(Signal::SIGHUP);

    let mut env: Vec<String> = guest.output("env").lines().map(str::to_owned).collect();
    env.sort();
    let expected = [
        "EMPTY=",
        "EQ=x=y",
        "FOO=last",
        "HOME=/",
        "MSG=hello world",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        // The shell sets PWD itself.
        "PWD=/svc",
        "QUOTED=a b",
        "TERM=linux",
    ];
    assert_eq!(env, expected);
    assert_eq!(guest.output("args"), "arg one\ntwo\nk=v\n");
    assert_eq!(guest.output("pwd"), "/svc\n");
    assert_eq!(guest.output("hostname"), "guest-one\n");
    assert_eq!(
        fs::read_to_string(guest.root().join("etc/resolv.conf")).unwrap(),
        "# Written by fc-init from the firework.dns boot parameter.\n\
         nameserver 127.0.0.53\nnameserver ::1\n"
    );
    let mounts = guest.output("mounts");
    for target in [
        "/proc", "/sys", "/dev", "/dev/pts", "/dev/shm", "/run", "/tmp",
    ] {
        assert!(
            mounts.lines().any(|line| line == target),
            "{target} not mounted:\n{mounts}"
        );
    }
}

#[test]
fn pid1_hostname_from_file_and_exec_parameter() {
    if !can_run() {
        return;
    }
    let guest = Guest::new();
    guest.add_script("host.sh", "cat /proc/sys/kernel/hostname > /out/hostname\n");

    let finished = guest.run("console=ttyS0 firework.exec=/svc/host.sh");

    finished.assert_console_has("fc-init: service exited with status 0");
    finished.assert_ended_by(Signal::SIGHUP);
    assert_eq!(guest.output("hostname"), "from-file\n");
}

#[test]
fn pid1_runs_kernel_words_before_dashes() {
    if !can_run() {
        return;
    }
    let guest = Guest::new();
    guest.add_script("wrap.sh", "echo wrapped > /out/wrap\nexec \"$@\"\n");
    guest.add_script("app.sh", "echo \"$0 $*\" > /out/app\n");

    // The kernel passes `/svc/wrap.sh` (a bare word before `--`) and the words after `--`.
    let finished = guest
        .start_with_args(
            "-- /svc/app.sh one",
            &["/svc/wrap.sh", "/svc/app.sh", "one"],
        )
        .finish();

    finished.assert_console_has("fc-init: service exited with status 0");
    assert_eq!(guest.output("wrap"), "wrapped\n");
    assert_eq!(guest.output("app"), "/svc/app.sh one\n");
}

#[test]
fn pid1_ignores_stray_kernel_words() {
    if !can_run() {
        return;
    }
    let guest = Guest::new();
    guest.add_script("host.sh", "echo ran > /out/ran\n");

    let finished = guest
        .start_with_args("nomodule firework.exec=/svc/host.sh", &["nomodule"])
        .finish();

    finished.assert_console_has(
        "fc-init: ignoring words the kernel passed to init that are not part of the command: \
         nomodule",
    );
    finished.assert_console_has("fc-init: service exited with status 0");
    assert_eq!(guest.output("ran"), "ran\n");
}

#[test]
fn pid1_reaps_orphaned_zombie() {
    if !can_run() {
        return;
    }
    let guest = Guest::new();
    // The inner shell exits at once, so its background `sleep` is reparented to PID 1 and
    // becomes PID 1's zombie when it exits, unless fc-init reaps it.
    guest.add_script(
        "orphan.sh",
        r#"sh -c 'sleep 0.5 & echo $! > /out/orphan.pid'
pid=$(cat /out/orphan.pid)
cut -d' ' -f4 /proc/$pid/stat > /out/orphan.ppid
i=0
while [ $i -lt 400 ]; do
  if [ ! -e /proc/$pid ]; then echo reaped > /out/orphan; exit 0; fi
  sleep 0.05
  i=$((i + 1))
done
echo "still present: $(cat /proc/$pid/stat)" > /out/orphan
exit 1
"#,
    );

    let finished = guest.run("-- /svc/orphan.sh");

    assert_eq!(guest.output("orphan.ppid"), "1\n");
    assert_eq!(guest.output("orphan"), "reaped\n");
    finished.assert_console_has("fc-init: service exited with status 0");
    finished.assert_ended_by(Signal::SIGHUP);
}

/// Starts a service that writes a marker when SIGTERM reaches it, sends `signal` to the
/// namespace's PID 1 from outside, and returns the finished run.
fn run_with_signal(signal: Signal) -> (Guest, Finished) {
    let guest = Guest::new();
    guest.add_script(
        "wait.sh",
        r#"trap 'echo term > /out/term; exit 0' TERM
trap 'echo hup > /out/hup' HUP
echo ready > /out/ready
while :; do sleep 0.05; done
"#,
    );
    let mut running = guest.start("-- /svc/wait.sh");
    running.wait_for_file(&guest.root().join("out/ready"));

    kill(running.init_pid(), signal).unwrap();

    let finished = running.finish();
    (guest, finished)
}

#[test]
fn pid1_forwards_sigterm() {
    if !can_run() {
        return;
    }
    let (guest, finished) = run_with_signal(Signal::SIGTERM);

    assert_eq!(guest.output("term"), "term\n");
    finished.assert_console_has("fc-init: service exited with status 0");
    finished.assert_ended_by(Signal::SIGHUP);
}

#[test]
fn pid1_turns_sigint_into_sigterm() {
    if !can_run() {
        return;
    }
    let (guest, finished) = run_with_signal(Signal::SIGINT);

    assert_eq!(guest.output("term"), "term\n");
    assert!(
        finished
            .console
            .contains("fc-init: SIGINT (Ctrl-Alt-Del) received, sending SIGTERM to the service"),
        "{}",
        finished.console
    );
    finished.assert_ended_by(Signal::SIGHUP);
}

#[test]
fn pid1_kills_leftovers_that_ignore_sigterm() {
    if !can_run() {
        return;
    }
    let guest = Guest::new();
    guest.add_script(
        "leave.sh",
        r#"sh -c 'trap "" TERM; echo started > /out/leftover; while :; do sleep 0.05; done' &
while [ ! -e /out/leftover ]; do sleep 0.05; done
exit 7
"#,
    );

    let finished = guest.run("-- /svc/leave.sh");

    finished.assert_console_has("fc-init: service exited with status 7");
    finished.assert_console_has("fc-init: sending SIGKILL to the remaining processes");
    finished.assert_ended_by(Signal::SIGHUP);
}

#[test]
fn pid1_user_from_runtime_file() {
    if !can_run() {
        return;
    }
    let guest = Guest::new();
    fs::write(
        guest.root().join("etc/firework/runtime.json"),
        r#"{"user":"svc","writable_paths":["/out/"],"env":{"IMAGE":"yes","FOO":"image"}}"#,
    )
    .unwrap();
    guest.add_script(
        "who.sh",
        r#"echo "$(id -u):$(id -g) $USER $HOME $IMAGE $FOO" > /out/who
"#,
    );

    let finished = guest.run("firework.env.FOO=boot -- /svc/who.sh");

    finished.assert_console_has("fc-init: service exited with status 0");
    finished.assert_ended_by(Signal::SIGHUP);
    assert_eq!(guest.output("who"), "4321:4322 svc /home/svc yes boot\n");
    let out = fs::metadata(guest.root().join("out")).unwrap();
    assert_eq!((out.uid(), out.gid()), (4321, 4322));
}

#[test]
fn pid1_exec_failure_powers_off() {
    if !can_run() {
        return;
    }
    let guest = Guest::new();

    let finished = guest.run("-- /no/such/program arg");

    assert!(
        finished
            .console
            .contains("fc-init: failed to start /no/such/program: No such file or directory"),
        "{}",
        finished.console
    );
    finished.assert_console_has("fc-init: powering off");
    finished.assert_ended_by(Signal::SIGINT);
}

#[test]
fn pid1_unknown_user_powers_off() {
    if !can_run() {
        return;
    }
    let guest = Guest::new();
    guest.add_script("never.sh", "echo ran > /out/ran\n");

    let finished = guest.run("firework.user=ghost -- /svc/never.sh");

    finished.assert_console_has(
        "fc-init: invalid service user: user \"ghost\" not found in /etc/passwd",
    );
    finished.assert_console_has("fc-init: powering off");
    finished.assert_ended_by(Signal::SIGINT);
    assert!(!guest.root().join("out/ran").exists());
}
