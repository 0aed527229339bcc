//! One test per fault-injection variable, through the real binary and socket.

#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{BINARY, Emulator};

const WAIT: Duration = Duration::from_secs(10);

#[test]
fn api_delay_slows_each_request() {
    let emulator = Emulator::start_with_env(&[], &[("FC_EMULATOR_API_DELAY_MS", "300")]);
    let started = Instant::now();
    let response = emulator.get("/");
    // A lower bound only: the delay must have been applied, however slow the host.
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(response.status, 200);
}

#[test]
fn failed_instance_start() {
    let emulator = Emulator::start_with_env(
        &[],
        &[(
            "FC_EMULATOR_FAIL_INSTANCE_START",
            "Cannot create the KVM VM",
        )],
    );
    let kernel = emulator.kernel();
    emulator.put_ok(
        "/boot-source",
        &format!(r#"{{"kernel_image_path":"{kernel}"}}"#),
    );
    emulator.expect_fault(
        "PUT",
        "/actions",
        Some(r#"{"action_type":"InstanceStart"}"#),
        "Start microvm error: Cannot create the KVM VM",
    );
    assert_eq!(emulator.get("/").json()["state"], "Not started");
}

#[test]
fn crash_after_start_exits_with_status() {
    let mut emulator = Emulator::start_with_env(
        &[],
        &[
            ("FC_EMULATOR_CRASH_AFTER_MS", "50"),
            ("FC_EMULATOR_CRASH_MODE", "exit:1"),
        ],
    );
    emulator.boot();
    let status = emulator.wait_exit(WAIT);
    assert_eq!(status.code(), Some(1));
    assert!(
        emulator
            .stdout_text()
            .contains("Firecracker exiting with error. exit_code=1")
    );
}

#[test]
fn crash_after_start_sigkill() {
    let mut emulator = Emulator::start_with_env(
        &[],
        &[
            ("FC_EMULATOR_CRASH_AFTER_MS", "0"),
            ("FC_EMULATOR_CRASH_MODE", "sigkill"),
        ],
    );
    emulator.boot();
    let status = emulator.wait_exit(WAIT);
    assert_eq!(status.signal(), Some(9));
    assert!(!emulator.stdout_text().contains("exiting"));
}

#[test]
fn no_crash_before_start() {
    let emulator = Emulator::start_with_env(&[], &[("FC_EMULATOR_CRASH_AFTER_MS", "0")]);
    // The timer is armed only by InstanceStart, so the process keeps serving.
    for _ in 0..5 {
        assert_eq!(emulator.get("/").status, 200);
    }
}

#[test]
fn exit_on_start() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("api.sock");
    let output = Command::new(BINARY)
        .args(["--api-sock", socket.to_str().unwrap()])
        .env("FC_EMULATOR_EXIT_ON_START", "7")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(7));
    assert!(!socket.exists());
}

#[test]
fn ignored_ctrl_alt_del_keeps_running() {
    let emulator = Emulator::start_with_env(&[], &[("FC_EMULATOR_IGNORE_CTRL_ALT_DEL", "1")]);
    emulator.boot();
    let response = emulator.put("/actions", r#"{"action_type":"SendCtrlAltDel"}"#);
    assert_eq!(response.status, 204);
    assert_eq!(emulator.get("/").json()["state"], "Running");
}

#[test]
fn invalid_fault_variable_exits_2() {
    let output = Command::new(BINARY)
        .env("FC_EMULATOR_CRASH_MODE", "explode")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("invalid value \"explode\" in FC_EMULATOR_CRASH_MODE")
    );
}
