//! Process behaviour: flags, exit statuses, socket handling, signals, the HTTP layer and
//! the pre-boot/post-boot matrix, through the real binary and socket.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::time::Duration;

use common::{BINARY, Emulator};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const WAIT: Duration = Duration::from_secs(10);

#[test]
fn version_flag() {
    let output = Command::new(BINARY).arg("--version").output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "Firecracker v1.16.1\n\n"
    );
}

#[test]
fn unknown_flag_exits_153() {
    let output = Command::new(BINARY)
        .arg("--seccomp-level")
        .arg("0")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(153));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("Found argument 'seccomp-level' which wasn't expected"),
        "{stderr}"
    );
}

#[test]
fn equals_syntax_exits_153() {
    let output = Command::new(BINARY)
        .arg("--api-sock=/tmp/x.sock")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(153));
}

#[test]
fn bad_level_exits_152() {
    let output = Command::new(BINARY)
        .args(["--level", "chatty"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(152));
}

#[test]
fn no_api_requires_config_file() {
    let output = Command::new(BINARY).arg("--no-api").output().unwrap();
    assert_eq!(output.status.code(), Some(153));
}

#[test]
fn invalid_id_aborts() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("api.sock");
    let output = Command::new(BINARY)
        .args(["--api-sock", socket.to_str().unwrap(), "--id", "bad_id"])
        .output()
        .unwrap();
    assert_eq!(output.status.signal(), Some(Signal::SIGABRT as i32));
    assert!(!socket.exists(), "nothing bound before the id check");
}

#[test]
fn existing_socket_path_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("api.sock");
    std::fs::write(&socket, b"keep me").unwrap();
    let output = Command::new(BINARY)
        .args(["--api-sock", socket.to_str().unwrap(), "--id", "vm1"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!(
            "Failed to open the API socket at: {}. Check that it is not already used.",
            socket.display()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("Firecracker exiting with error. exit_code=1"),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read(&socket).unwrap(),
        b"keep me",
        "path left untouched"
    );
}

#[test]
fn startup_log_lines() {
    let emulator = Emulator::start(&["--id", "vm-logs"]);
    let text = emulator.stdout_text();
    assert!(
        text.contains("[vm-logs:main] Running Firecracker v1.16.1"),
        "{text}"
    );
    assert!(
        text.contains(&format!("Listening on API socket ({:?}).", emulator.socket)),
        "{text}"
    );
    assert!(
        text.contains("[vm-logs:fc_api] API server started."),
        "{text}"
    );
}

#[test]
fn instance_info_states() {
    let emulator = Emulator::start(&["--id", "vm-7"]);
    let response = emulator.get("/");
    assert_eq!(response.status, 200);
    assert_eq!(
        response.body,
        r#"{"id":"vm-7","state":"Not started","vmm_version":"1.16.1","app_name":"Firecracker"}"#
    );
    emulator.boot();
    assert_eq!(emulator.get("/").json()["state"], "Running");
    let pause = emulator.request("PATCH", "/vm", Some(r#"{"state":"Paused"}"#));
    assert_eq!(pause.status, 204);
    assert_eq!(emulator.get("/").json()["state"], "Paused");
}

#[test]
fn wire_format_of_replies() {
    let emulator = Emulator::start(&[]);
    let response = emulator.put("/logger", r#"{"level":"Info"}"#);
    assert_eq!(
        response.head,
        "HTTP/1.1 204 \r\nServer: Firecracker API\r\nConnection: keep-alive"
    );
    let response = emulator.get("/version");
    assert_eq!(
        response.head,
        "HTTP/1.1 200 \r\nServer: Firecracker API\r\nConnection: keep-alive\r\nContent-Type: application/json\r\nContent-Length: 32"
    );
    assert_eq!(response.body, r#"{"firecracker_version":"1.16.1"}"#);
}

#[test]
fn router_errors() {
    let emulator = Emulator::start(&[]);
    emulator.expect_fault(
        "PATCH",
        "/boot-source",
        Some("{}"),
        "Invalid request method and/or path: PATCH boot-source.",
    );
    emulator.expect_fault(
        "GET",
        "/machine-config",
        Some("{}"),
        "GET request cannot have a body.",
    );
    emulator.expect_fault("PUT", "/machine-config", None, "Empty PUT request.");
    emulator.expect_fault("PATCH", "/vm", None, "Empty PATCH request.");
    emulator.expect_fault(
        "GET",
        "/machine-config?x=1",
        None,
        "Invalid request method and/or path: GET machine-config?x=1.",
    );
}

#[test]
fn http_layer_rejects_unknown_method() {
    let emulator = Emulator::start(&[]);
    let response = emulator.request("POST", "/actions", None);
    assert_eq!(response.status, 400);
    assert_eq!(
        response.body,
        "{ \"error\": \"Invalid HTTP Method.\nAll previous unanswered requests will be dropped.\" }"
    );
}

#[test]
fn payload_limit_from_flag() {
    let emulator = Emulator::start(&["--http-api-max-payload-size", "64"]);
    let body = format!(r#"{{"log_path":"{}"}}"#, "x".repeat(80));
    let response = emulator.put("/logger", &body);
    assert_eq!(response.status, 400);
    assert!(
        response.body.contains(&format!(
            "Request payload with size {} is larger than the limit of 64 allowed by server.",
            body.len()
        )),
        "{}",
        response.body
    );
}

#[test]
fn keep_alive_serves_several_requests() {
    let emulator = Emulator::start(&[]);
    let mut stream = UnixStream::connect(&emulator.socket).unwrap();
    for _ in 0..3 {
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap();
        let response = common::read_response(&mut stream);
        assert_eq!(response.status, 200);
    }
}

#[test]
fn eleventh_connection_gets_503() {
    let emulator = Emulator::start(&[]);
    let mut open = Vec::new();
    for _ in 0..10 {
        let mut stream = UnixStream::connect(&emulator.socket).unwrap();
        // A served request proves the server has counted this connection.
        stream.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!(common::read_response(&mut stream).status, 200);
        open.push(stream);
    }
    let mut extra = UnixStream::connect(&emulator.socket).unwrap();
    let response = common::read_response(&mut extra);
    assert_eq!(response.status, 503);
    assert_eq!(response.body, r#"{ "error": "Too many open connections" }"#);
    drop(open);
}

#[test]
fn pre_boot_only_and_post_boot_only() {
    let emulator = Emulator::start(&[]);
    let before = "The requested operation is not supported before starting the microVM.";
    let after = "The requested operation is not supported after starting the microVM.";
    emulator.expect_fault(
        "PUT",
        "/actions",
        Some(r#"{"action_type":"FlushMetrics"}"#),
        before,
    );
    emulator.expect_fault(
        "PUT",
        "/actions",
        Some(r#"{"action_type":"SendCtrlAltDel"}"#),
        before,
    );
    emulator.expect_fault("PATCH", "/vm", Some(r#"{"state":"Paused"}"#), before);
    let disk = emulator.file("disk", &[0; 512]);
    emulator.expect_fault(
        "PATCH",
        "/drives/rootfs",
        Some(&format!(
            r#"{{"drive_id":"rootfs","path_on_host":"{disk}"}}"#
        )),
        before,
    );
    emulator.put_ok(
        "/drives/rootfs",
        &format!(r#"{{"drive_id":"rootfs","path_on_host":"{disk}","is_root_device":true}}"#),
    );
    emulator.boot();
    emulator.expect_fault(
        "PUT",
        "/actions",
        Some(r#"{"action_type":"InstanceStart"}"#),
        after,
    );
    emulator.expect_fault(
        "PUT",
        "/machine-config",
        Some(r#"{"vcpu_count":1,"mem_size_mib":128}"#),
        after,
    );
    emulator.expect_fault(
        "PUT",
        "/boot-source",
        Some(r#"{"kernel_image_path":"/x"}"#),
        after,
    );
    emulator.expect_fault("PUT", "/logger", Some(r#"{"level":"Info"}"#), after);
    emulator.expect_fault(
        "PUT",
        "/metrics",
        Some(r#"{"metrics_path":"/tmp/m"}"#),
        after,
    );
    emulator.expect_fault(
        "PUT",
        "/network-interfaces/eth0",
        Some(r#"{"iface_id":"eth0","host_dev_name":"tap0"}"#),
        "PCI is not enabled",
    );
    let flush = emulator.put("/actions", r#"{"action_type":"FlushMetrics"}"#);
    assert_eq!(
        flush.status, 204,
        "FlushMetrics works without metrics configured"
    );
    let patch = emulator.request(
        "PATCH",
        "/drives/rootfs",
        Some(&format!(
            r#"{{"drive_id":"rootfs","path_on_host":"{disk}"}}"#
        )),
    );
    assert_eq!(patch.status, 204);
    assert_eq!(emulator.get("/machine-config").status, 200);
}

#[test]
fn ctrl_alt_del_exits_0() {
    let mut emulator = Emulator::start(&[]);
    emulator.boot();
    let response = emulator.put("/actions", r#"{"action_type":"SendCtrlAltDel"}"#);
    assert_eq!(response.status, 204);
    let status = emulator.wait_exit(WAIT);
    assert_eq!(status.code(), Some(0));
    assert!(emulator.socket.exists(), "the socket file is left behind");
    assert!(
        emulator
            .stdout_text()
            .contains("Firecracker exiting successfully. exit_code=0")
    );
}

#[test]
fn sigterm_kills_silently() {
    let mut emulator = Emulator::start(&[]);
    emulator.boot();
    kill(Pid::from_raw(emulator.child.id() as i32), Signal::SIGTERM).unwrap();
    let status = emulator.wait_exit(WAIT);
    assert_eq!(status.signal(), Some(Signal::SIGTERM as i32));
    assert!(!emulator.stdout_text().contains("exiting"));
    assert!(emulator.socket.exists());
}

#[test]
fn sighup_exits_156() {
    let mut emulator = Emulator::start(&[]);
    kill(Pid::from_raw(emulator.child.id() as i32), Signal::SIGHUP).unwrap();
    let status = emulator.wait_exit(WAIT);
    assert_eq!(status.code(), Some(156));
    let text = emulator.stdout_text();
    assert!(
        text.contains("Shutting down VM after intercepting signal 1, code 0."),
        "{text}"
    );
}

#[test]
fn config_file_boots_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let kernel = dir.path().join("vmlinux");
    std::fs::write(&kernel, b"\x7fELF\x02\x01").unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"boot-source":{{"kernel_image_path":"{}"}},"machine-config":{{"vcpu_count":2,"mem_size_mib":256}}}}"#,
            kernel.display()
        ),
    )
    .unwrap();
    let emulator = Emulator::start(&["--config-file", config.to_str().unwrap()]);
    let info = emulator.get("/").json();
    assert_eq!(info["state"], "Running");
    assert_eq!(emulator.get("/machine-config").json()["vcpu_count"], 2);
}

#[test]
fn config_file_failure_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        r#"{"boot-source":{"kernel_image_path":"/nonexistent/vmlinux"}}"#,
    )
    .unwrap();
    let output = Command::new(BINARY)
        .args(["--no-api", "--config-file", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("Boot source error: The kernel file cannot be opened: No such file or directory (os error 2)"),
        "{stdout}"
    );
}

#[test]
fn metadata_flag_fills_mmds() {
    let dir = tempfile::tempdir().unwrap();
    let metadata = dir.path().join("metadata.json");
    std::fs::write(&metadata, r#"{"latest":{"meta-data":{"id":"x"}}}"#).unwrap();
    let emulator = Emulator::start(&["--metadata", metadata.to_str().unwrap()]);
    assert_eq!(
        emulator.get("/mmds").body,
        r#"{"latest":{"meta-data":{"id":"x"}}}"#
    );
}
