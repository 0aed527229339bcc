//! `fireworkctl doctor` through the real binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

#[test]
fn missing_firecracker_fails_with_fix() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.yaml");
    std::fs::write(
        &config,
        "store_type: local\nenable_network_setup: false\nfirecracker_bin: /nonexistent/firecracker\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_fireworkctl"))
        .args(["doctor", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let line = stdout.lines().find(|l| l.contains("firecracker ")).unwrap();
    assert!(line.starts_with("FAIL firecracker"), "{stdout}");
    assert!(line.contains("/nonexistent/firecracker"), "{stdout}");
    // With network setup off, no network checks run.
    assert!(!stdout.contains("ip_forward"), "{stdout}");
}

#[test]
fn invalid_config_exits_two() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.yaml");
    std::fs::write(&config, "store_type: consul\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_fireworkctl"))
        .args(["doctor", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("unsupported store_type \"consul\""),
        "{stderr}"
    );
}
