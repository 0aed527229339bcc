//! Snapshot create and load through the socket: the pause rule, the fresh-process rule,
//! the exclusive memory fields, and the fatal exit of a failed restore.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::Emulator;

const WAIT: Duration = Duration::from_secs(10);

/// Boots a VM with a root drive in `emulator`, pauses it and snapshots it; returns the
/// snapshot and memory file paths.
fn snapshot_of(emulator: &Emulator) -> (String, String) {
    let disk = emulator.file("rootfs.ext4", &[0; 4096]);
    emulator.put_ok("/machine-config", r#"{"vcpu_count":2,"mem_size_mib":64}"#);
    emulator.put_ok(
        "/drives/rootfs",
        &format!(r#"{{"drive_id":"rootfs","path_on_host":"{disk}","is_root_device":true}}"#),
    );
    emulator.boot();
    emulator.expect_fault(
        "PUT",
        "/snapshot/create",
        Some(r#"{"snapshot_path":"/tmp/never","mem_file_path":"/tmp/never.mem"}"#),
        "Create snapshot error: Cannot save the microVM state: Operation not allowed: save/restore unavailable while running",
    );
    let pause = emulator.request("PATCH", "/vm", Some(r#"{"state":"Paused"}"#));
    assert_eq!(pause.status, 204);
    let state = emulator.dir.path().join("vm.snap").display().to_string();
    let memory = emulator.dir.path().join("vm.mem").display().to_string();
    emulator.put_ok(
        "/snapshot/create",
        &format!(
            r#"{{"snapshot_path":"{state}","mem_file_path":"{memory}","snapshot_type":"Full"}}"#
        ),
    );
    (state, memory)
}

#[test]
fn create_requires_paused_vm() {
    let emulator = Emulator::start(&[]);
    emulator.expect_fault(
        "PUT",
        "/snapshot/create",
        Some(r#"{"snapshot_path":"/tmp/s","mem_file_path":"/tmp/m"}"#),
        "The requested operation is not supported before starting the microVM.",
    );
    let (state, memory) = snapshot_of(&emulator);
    assert!(std::path::Path::new(&state).exists());
    assert_eq!(std::fs::metadata(&memory).unwrap().len(), 64 * 1024 * 1024);
}

#[test]
fn load_restores_paused_vm() {
    let source = Emulator::start(&[]);
    let (state, memory) = snapshot_of(&source);

    let target = Emulator::start(&[]);
    target.put_ok(
        "/snapshot/load",
        &format!(r#"{{"snapshot_path":"{state}","mem_backend":{{"backend_type":"File","backend_path":"{memory}"}}}}"#),
    );
    assert_eq!(target.get("/").json()["state"], "Paused");
    let config = target.get("/vm/config").json();
    assert_eq!(config["machine-config"]["vcpu_count"], 2);
    assert_eq!(config["drives"][0]["drive_id"], "rootfs");
    target.expect_fault(
        "PUT",
        "/actions",
        Some(r#"{"action_type":"InstanceStart"}"#),
        "The requested operation is not supported after starting the microVM.",
    );
}

#[test]
fn load_with_resume_runs() {
    let source = Emulator::start(&[]);
    let (state, memory) = snapshot_of(&source);
    let target = Emulator::start(&[]);
    let response = target.put(
        "/snapshot/load",
        &format!(r#"{{"snapshot_path":"{state}","mem_file_path":"{memory}","resume_vm":true}}"#),
    );
    assert_eq!(response.status, 204);
    assert!(
        response.head.contains("\r\nDeprecation: true"),
        "mem_file_path is deprecated"
    );
    assert_eq!(target.get("/").json()["state"], "Running");
}

#[test]
fn load_after_configuring_rejected() {
    let mut emulator = Emulator::start(&[]);
    emulator.put_ok("/machine-config", r#"{"vcpu_count":1,"mem_size_mib":128}"#);
    emulator.expect_fault(
        "PUT",
        "/snapshot/load",
        Some(r#"{"snapshot_path":"/nonexistent/vm.snap","mem_file_path":"/nonexistent/vm.mem"}"#),
        "Load snapshot error: Loading a microVM snapshot not allowed after configuring boot-specific resources.",
    );
    // Not fatal: the process keeps serving.
    assert!(emulator.child.try_wait().unwrap().is_none());
    assert_eq!(emulator.get("/").status, 200);
}

#[test]
fn load_memory_fields_exclusive() {
    let emulator = Emulator::start(&[]);
    emulator.expect_fault(
        "PUT",
        "/snapshot/load",
        Some(r#"{"snapshot_path":"/s","mem_file_path":"/m","mem_backend":{"backend_type":"File","backend_path":"/m"}}"#),
        "An error occurred when deserializing the json body of a request: too many fields: either `mem_backend` or `mem_file_path` exclusively is required.",
    );
    emulator.expect_fault(
        "PUT",
        "/snapshot/load",
        Some(r#"{"snapshot_path":"/s"}"#),
        "An error occurred when deserializing the json body of a request: missing field: either `mem_backend` or `mem_file_path` is required.",
    );
}

#[test]
fn failed_restore_exits_1() {
    let mut emulator = Emulator::start(&[]);
    let missing = emulator
        .dir
        .path()
        .join("missing.snap")
        .display()
        .to_string();
    emulator.expect_fault(
        "PUT",
        "/snapshot/load",
        Some(&format!(r#"{{"snapshot_path":"{missing}","mem_file_path":"/nonexistent/vm.mem"}}"#)),
        "Load snapshot error: Failed to restore from snapshot: Failed to get snapshot state from file: Failed to open snapshot file: No such file or directory (os error 2)",
    );
    let status = emulator.wait_exit(WAIT);
    assert_eq!(status.code(), Some(1));
}

#[test]
fn restore_needs_the_drive_file() {
    let source = Emulator::start(&[]);
    let (state, memory) = snapshot_of(&source);
    let disk = source.dir.path().join("rootfs.ext4");
    std::fs::remove_file(&disk).unwrap();

    let mut target = Emulator::start(&[]);
    target.expect_fault(
        "PUT",
        "/snapshot/load",
        Some(&format!(r#"{{"snapshot_path":"{state}","mem_file_path":"{memory}"}}"#)),
        &format!("Load snapshot error: Failed to restore from snapshot: Failed to build microVM from snapshot: Drive config error: Unable to create the virtio block device: Virtio backend error: Error manipulating the backing file: No such file or directory (os error 2) {}", disk.display()),
    );
    assert_eq!(target.wait_exit(WAIT).code(), Some(1));
}
