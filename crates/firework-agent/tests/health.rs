//! Health-gated rolling updates through the agent binary, the Firecracker emulator and a
//! local store.
//!
//! The emulator without guest mode cannot answer probes, and a TAP device cannot be
//! opened on every test host, so the service has no network and thus no probe. The gate
//! then waits `min_ready` (10 s by default) and fails when the VM exits before. To make
//! only the updated VM exit, `firecracker_bin` is a wrapper script: when a marker file
//! exists it consumes the marker and starts the emulator with
//! `FC_EMULATOR_CRASH_AFTER_MS`, so exactly the next VM process crashes after its start.

#![allow(clippy::unwrap_used)]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use support::process::{Node, wait_until};

const DEADLINE: Duration = Duration::from_secs(40);

fn alpha(node: &Node) -> serde_json::Value {
    node.get("/status")
        .and_then(|status| {
            status["services"]
                .as_array()?
                .iter()
                .find(|s| s["name"] == "alpha")
                .cloned()
        })
        .unwrap_or_default()
}

fn with_memory(node: &Node, memory: u32) -> String {
    node.service("alpha", "")
        .replace("memory_mb: 128", &format!("memory_mb: {memory}"))
}

/// Makes `node` start VMs through a wrapper that crashes the next VM whenever the
/// returned marker file exists, and consumes the marker.
fn crash_marker(node: &mut Node) -> std::path::PathBuf {
    let marker = node.path("crash-next-vm");
    let wrapper = node.path("firecracker-wrapper.sh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nif mv {marker} {marker}.used 2>/dev/null; then\n  export FC_EMULATOR_CRASH_AFTER_MS=300\nfi\nexec {} \"$@\"\n",
            node.emulator.display(),
            marker = marker.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    node.emulator = wrapper;
    marker
}

#[test]
fn crashed_vm_restarts_through_policy() {
    let Some(mut node) = Node::new() else { return };
    let marker = crash_marker(&mut node);
    std::fs::write(&marker, b"").unwrap();
    node.extra_config = "enable_health_checks: true\n".to_owned();
    node.write_label("web", &[with_memory(&node, 128)]);
    node.start_agent();

    // The first VM crashes; the monitor restarts it after its backoff (8 to 10 s for the
    // first restart), and the tick does not recreate it meanwhile.
    assert!(
        wait_until(Duration::from_secs(60), || alpha(&node)["restarts"] == 1
            && alpha(&node)["state"] == "running"),
        "no restart: {}\nlog:\n{}",
        alpha(&node),
        node.log()
    );
    let log = node.log();
    assert!(log.contains("vm restarted by the health monitor"), "{log}");
    assert_eq!(
        log.matches("starting vm").count(),
        1,
        "the tick recreated the crashed vm\n{log}"
    );
    let metrics = node.request("GET", "/metrics").unwrap().1;
    assert!(
        metrics.contains("firework_agent_vm_restarts_total{service=\"alpha\"} 1"),
        "{metrics}"
    );
}

#[test]
fn failing_rolling_update_rolls_back() {
    let Some(mut node) = Node::new() else { return };
    let marker = crash_marker(&mut node);
    node.extra_config = "enable_health_checks: true\nupdate_strategy: rolling\n".to_owned();
    node.write_label("web", &[with_memory(&node, 128)]);
    node.start_agent();
    assert!(
        wait_until(DEADLINE, || alpha(&node)["state"] == "running"),
        "alpha did not start: {}\nlog:\n{}",
        alpha(&node),
        node.log()
    );
    assert_eq!(alpha(&node)["health"], "not_probed");
    let first_hash = alpha(&node)["spec_hash"].clone();

    // The updated VM crashes 300 ms after its start, before min_ready passes.
    std::fs::write(&marker, b"").unwrap();
    node.write_label("web", &[with_memory(&node, 192)]);
    node.reconcile();
    assert!(
        wait_until(DEADLINE, || alpha(&node)["rollout"]["state"]
            == "rolled back"),
        "no rollback: {}\nlog:\n{}",
        alpha(&node),
        node.log()
    );
    assert!(
        node.path("crash-next-vm.used").exists(),
        "the updated vm did not use the crash marker"
    );
    let status = alpha(&node);
    let rollout = &status["rollout"];
    let revision = node.status()["labels"][0]["revision"].clone();
    assert_eq!(rollout["revision"], revision, "{rollout}");
    assert!(
        rollout["reason"].as_str().unwrap().contains("restarting"),
        "the reason names the state the gate saw: {rollout}"
    );
    assert_eq!(
        status["spec_hash"], first_hash,
        "the first revision's intent is back"
    );
    assert!(wait_until(DEADLINE, || alpha(&node)["state"] == "running"));
    let pid = node.running_pids()["alpha"];
    let config = node.vm_api("alpha", "/vm/config");
    assert_eq!(config["machine-config"]["mem_size_mib"], 128, "{config}");
    assert!(node.log().contains("rolled back"));

    // The rolled-back spec is held: the next tick does not try it again.
    node.reconcile();
    assert!(wait_until(DEADLINE, || {
        node.status()["last_tick"]["held"]
            .as_array()
            .is_some_and(|held| {
                held.iter()
                    .any(|h| h["reason"].as_str().unwrap().contains("rolled back"))
            })
    }));
    assert_eq!(node.running_pids()["alpha"], pid);

    // A new revision is tried again; it keeps running past min_ready and completes.
    node.write_label("web", &[with_memory(&node, 256)]);
    node.reconcile();
    assert!(
        wait_until(DEADLINE, || alpha(&node)["rollout"]["state"] == "updated"),
        "the healthy revision was not rolled out: {}\nlog:\n{}",
        alpha(&node),
        node.log()
    );
    assert_eq!(
        node.vm_api("alpha", "/vm/config")["machine-config"]["mem_size_mib"],
        256
    );
    let metrics = node.request("GET", "/metrics").unwrap().1;
    assert!(
        metrics.contains(
            "firework_agent_service_health_state{service=\"alpha\",state=\"not_probed\"} 1"
        ),
        "{metrics}"
    );
}

/// Both services at `memory` MiB.
fn pair(node: &Node, memory: u32) -> Vec<String> {
    ["alpha", "beta"]
        .iter()
        .map(|name| {
            node.service(name, "")
                .replace("memory_mb: 128", &format!("memory_mb: {memory}"))
        })
        .collect()
}

/// A service's memory as its emulator reports it; null while its VM is being replaced,
/// when the socket is briefly absent and `vm_api` would panic.
fn memory(node: &Node, service: &str) -> serde_json::Value {
    let socket = node.path(&format!("state/vms/{service}/firecracker.socket"));
    if !socket.exists() {
        return serde_json::Value::Null;
    }
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        node.vm_api(service, "/vm/config")["machine-config"]["mem_size_mib"].clone()
    }))
    .unwrap_or_default()
}

#[test]
fn newer_revision_preempts_rollout() {
    let Some(mut node) = Node::new() else { return };
    node.extra_config = "enable_health_checks: true\nupdate_strategy: rolling\n".to_owned();
    node.write_label("web", &pair(&node, 128));
    node.start_agent();
    assert!(
        wait_until(DEADLINE, || node.running_pids().len() == 2),
        "the services did not start\nlog:\n{}",
        node.log()
    );

    // The rolling update to 192 MiB updates alpha first, and the gate waits min_ready
    // (10 s) before it moves on to beta ...
    node.write_label("web", &pair(&node, 192));
    node.reconcile();
    assert!(
        wait_until(DEADLINE, || memory(&node, "alpha") == 192),
        "the first update did not start\nlog:\n{}",
        node.log()
    );
    assert_eq!(
        memory(&node, "beta"),
        128,
        "beta is updated only after alpha's gate"
    );

    // ... when a newer revision arrives: it preempts the waiting gate and rolls out.
    node.write_label("web", &pair(&node, 256));
    node.reconcile();
    assert!(
        wait_until(Duration::from_secs(60), || memory(&node, "alpha") == 256
            && memory(&node, "beta") == 256),
        "the newer revision did not take over: {}\nlog:\n{}",
        alpha(&node),
        node.log()
    );
    let log = node.log();
    assert!(
        log.contains("a newer revision preempts the rolling update"),
        "{log}"
    );
    assert!(
        !log.contains("rolled back"),
        "a preempted rollout is not a failure\n{log}"
    );
}
