//! Runs the fc-init binary as an ordinary process (the helper role): exit statuses, the
//! command-line file, and reaping as a child subreaper. Needs no root.

// Helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

fn fc_init() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fc-init"));
    command.env_clear().env("PATH", "/usr/bin:/bin");
    command
}

fn stderr_lines(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn with_cmdline(dir: &Path, cmdline: &str) -> Command {
    let file = dir.join("cmdline");
    std::fs::write(&file, cmdline).unwrap();
    let mut command = fc_init();
    command.env("FC_INIT_CMDLINE_FILE", &file);
    command
}

#[test]
fn helper_passes_exit_status() {
    let output = fc_init()
        .args(["/bin/sh", "-c", "exit 3"])
        .output()
        .unwrap();

    assert_eq!(output.status.code(), Some(3));
    assert!(
        stderr_lines(&output).contains(&"fc-init: service exited with status 3".to_owned()),
        "{output:?}"
    );
}

#[test]
fn helper_reports_killing_signal() {
    let output = fc_init()
        .args(["/bin/sh", "-c", "kill -KILL $$"])
        .output()
        .unwrap();

    assert_eq!(output.status.code(), Some(128 + 9));
    assert!(
        stderr_lines(&output)
            .contains(&"fc-init: service was killed by signal 9 (SIGKILL)".to_owned()),
        "{output:?}"
    );
}

#[test]
fn helper_reads_cmdline_file() {
    let dir = tempfile::tempdir().unwrap();
    let output = with_cmdline(
        dir.path(),
        "console=ttyS0 firework.env.GREETING=\"hi there\" firework.env64.B=Yj1j \
         firework.env.X=1 firework.env.X=2 -- sh -c \"echo $GREETING/$B/$X/$0\"\n",
    )
    .output()
    .unwrap();

    assert_eq!(output.status.code(), Some(0), "{output:?}");
    // `sh` is found through PATH and keeps its name as argv[0].
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "hi there/b=c/2/sh\n"
    );
}

#[test]
fn helper_without_command_is_usage_error() {
    let output = fc_init().output().unwrap();

    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr_lines(&output),
        vec![
            "fc-init: not running as PID 1: give a command as arguments or set \
             FC_INIT_CMDLINE_FILE"
        ]
    );
}

#[test]
fn helper_missing_program_exits_127() {
    let output = fc_init()
        .arg("no-such-program-for-fc-init")
        .output()
        .unwrap();

    assert_eq!(output.status.code(), Some(127));
    assert_eq!(
        stderr_lines(&output),
        vec![
            "fc-init: program \"no-such-program-for-fc-init\" not found in PATH \"/usr/bin:/bin\""
        ]
    );
}

#[test]
fn helper_unknown_user_exits_125() {
    let dir = tempfile::tempdir().unwrap();
    let output = with_cmdline(
        dir.path(),
        "firework.user=no-such-user-for-fc-init -- /bin/true",
    )
    .output()
    .unwrap();

    assert_eq!(output.status.code(), Some(125));
    assert_eq!(
        stderr_lines(&output),
        vec![
            "fc-init: invalid service user: user \"no-such-user-for-fc-init\" not found in \
             /etc/passwd"
        ]
    );
}

#[test]
fn helper_reaps_and_stops_leftovers() {
    // The service leaves a background process in another process group that ignores
    // SIGTERM; fc-init, as child subreaper, must kill it after the grace period and only
    // then exit.
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("leftover.pid");
    let script = format!(
        "setsid sh -c 'trap \"\" TERM; echo $$ > {pid}; while :; do sleep 0.05; done' & \
         while [ ! -s {pid} ]; do sleep 0.05; done; exit 4",
        pid = pid_file.display()
    );
    let output = fc_init().args(["/bin/sh", "-c", &script]).output().unwrap();

    assert_eq!(output.status.code(), Some(4), "{output:?}");
    let lines = stderr_lines(&output);
    assert!(
        lines.contains(&"fc-init: sending SIGKILL to the remaining processes".to_owned()),
        "{lines:?}"
    );
    let leftover = std::fs::read_to_string(&pid_file).unwrap();
    assert!(
        !Path::new("/proc").join(leftover.trim()).exists(),
        "leftover {} still exists",
        leftover.trim()
    );
}
