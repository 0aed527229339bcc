//! The `firework-agent` binary against the Firecracker emulator and a local directory
//! store: create, update, delete, crash recovery, restarts and signals.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use nix::sys::signal::Signal;
use support::process::{Node, alive, wait_until};

const CONVERGE: Duration = Duration::from_secs(30);

fn converged(node: &Node, services: &[&str]) -> bool {
    let pids = node.running_pids();
    pids.len() == services.len() && services.iter().all(|s| pids.contains_key(*s))
}

fn wait_converged(node: &Node, services: &[&str]) -> BTreeMap<String, i64> {
    assert!(
        wait_until(CONVERGE, || converged(node, services)),
        "did not converge to {services:?}: {:?}\nlog:\n{}",
        node.records(),
        node.log()
    );
    node.running_pids()
}

#[test]
fn create_update_delete_through_emulator() {
    let Some(mut node) = Node::new() else { return };
    node.write_label(
        "web",
        &[node.service("alpha", ""), node.service("beta", "")],
    );
    node.start_agent();
    let pids = wait_converged(&node, &["alpha", "beta"]);

    // Each compared field: memory, vCPUs, kernel args, env, image.
    let cases: [(&str, &str); 4] = [
        ("memory_mb: 128", "memory_mb: 256"),
        ("vcpus: 1", "vcpus: 2"),
        ("reboot=k", "reboot=t"),
        (
            "memory_mb: 128",
            "memory_mb: 128\n    env:\n      MODE: fast",
        ),
    ];
    let mut alpha_pid = pids["alpha"];
    for (from, to) in cases {
        let alpha = node.service("alpha", "").replace(from, to);
        node.write_label("web", &[alpha, node.service("beta", "")]);
        node.reconcile();
        assert!(
            wait_until(CONVERGE, || node
                .running_pids()
                .get("alpha")
                .is_some_and(|pid| *pid != alpha_pid)),
            "alpha was not replaced after changing {from:?} to {to:?}\nlog:\n{}",
            node.log()
        );
        let now = node.running_pids();
        assert_eq!(
            now["beta"], pids["beta"],
            "beta must keep running untouched"
        );
        assert!(!alive(alpha_pid), "old alpha process must be gone");
        alpha_pid = now["alpha"];
    }
    let config = node.vm_api("alpha", "/vm/config");
    assert!(
        config["boot-source"]["boot_args"]
            .as_str()
            .unwrap()
            .contains("firework.env.MODE=fast -- /app"),
        "{config}"
    );

    // A new image renamed over the old one changes its content version.
    std::fs::write(node.path("images/rootfs.ext4.new"), vec![1u8; 8192]).unwrap();
    std::fs::rename(
        node.path("images/rootfs.ext4.new"),
        node.path("images/rootfs.ext4"),
    )
    .unwrap();
    node.reconcile();
    assert!(wait_until(CONVERGE, || {
        let now = node.running_pids();
        now.get("alpha").is_some_and(|pid| *pid != alpha_pid)
            && now.get("beta").is_some_and(|pid| *pid != pids["beta"])
    }));

    // Delete beta.
    let beta_pid = node.running_pids()["beta"];
    node.write_label(
        "web",
        &[node.service("alpha", "").replace(
            "memory_mb: 128",
            "memory_mb: 128\n    env:\n      MODE: fast",
        )],
    );
    node.reconcile();
    wait_converged(&node, &["alpha"]);
    assert!(wait_until(CONVERGE, || !alive(beta_pid)));
    assert!(
        wait_until(CONVERGE, || !node.path("state/vms/beta").exists()),
        "the vm directory of a deleted service must be removed"
    );
    assert!(
        wait_until(CONVERGE, || node.status()["services"]
            .as_array()
            .is_some_and(|s| s.len() == 1)),
        "status still lists beta"
    );

    let status = node.status();
    assert_eq!(status["node"], "node-1");
    assert_eq!(status["last_error"], serde_json::Value::Null);
    let services = status["services"].as_array().unwrap();
    assert_eq!(services.len(), 1);
    assert_eq!(services[0]["name"], "alpha");
    assert_eq!(services[0]["state"], "running");
    assert!(services[0]["pid"].as_i64().is_some());
    assert!(
        services[0]["spec_hash"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert_eq!(node.request("GET", "/healthz").unwrap().0, 200);

    // Every tick publishes the heartbeat to the local store's registry.
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(node.path("store/registry/nodes/node-1.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(record["node"], "node-1");
    assert_eq!(record["labels"], serde_json::json!(["web"]));
    assert!(record["capacity"]["vcpus"].as_u64().unwrap() >= 1);
    assert_eq!(record["used"]["vcpus"], 1);
    assert_eq!(record["agent_version"], env!("CARGO_PKG_VERSION"));
}

#[test]
fn heartbeat_publishes_types_and_capacity() {
    let Some(mut node) = Node::new() else { return };
    node.extra_config = "node_types: [general, web]\ncapacity_vcpus: 64\n".to_owned();
    node.start_agent();

    // A new node has no nodes/web.yaml yet, and still announces itself to the scheduler.
    let path = node.path("store/registry/nodes/node-1.json");
    assert!(wait_until(CONVERGE, || path.is_file()), "no heartbeat");
    // The status is updated after the heartbeat, at the end of the tick.
    let no_state = |status: serde_json::Value| {
        status["last_error"]
            .as_str()
            .is_some_and(|error| error.contains("no desired state"))
    };
    assert!(
        wait_until(CONVERGE, || no_state(node.status())),
        "{}",
        node.status()
    );

    // `web` is a label already, so only `general` is added; only nodes/web.yaml is read.
    let record: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(record["labels"], serde_json::json!(["web", "general"]));
    // capacity_vcpus replaces the host's CPU count; the memory is still the host's.
    assert_eq!(record["capacity"]["vcpus"], 64);
    assert!(record["capacity"]["memory_mb"].as_u64().unwrap() >= 1);

    node.write_label("web", &[node.service("alpha", "")]);
    node.reconcile();
    assert!(wait_until(CONVERGE, || node
        .running_pids()
        .contains_key("alpha")));
    assert!(
        wait_until(CONVERGE, || node.status()["last_error"].is_null()),
        "{}",
        node.status()
    );
}

#[test]
fn killed_vm_is_recreated_with_same_revision() {
    let Some(mut node) = Node::new() else { return };
    node.write_label(
        "web",
        &[node.service("alpha", ""), node.service("beta", "")],
    );
    node.start_agent();
    let pids = wait_converged(&node, &["alpha", "beta"]);
    assert!(wait_until(CONVERGE, || node.status()["revision"].is_string()));
    let revision = node.status()["revision"].clone();

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pids["alpha"] as i32),
        Signal::SIGKILL,
    )
    .unwrap();
    assert!(
        wait_until(CONVERGE, || node
            .running_pids()
            .get("alpha")
            .is_some_and(|pid| *pid != pids["alpha"])),
        "alpha was not recreated\nlog:\n{}",
        node.log()
    );
    assert_eq!(node.running_pids()["beta"], pids["beta"]);
    assert_eq!(node.status()["revision"], revision);
}

#[test]
fn bad_store_content_changes_nothing() {
    let Some(mut node) = Node::new() else { return };
    node.write_label(
        "web",
        &[node.service("alpha", ""), node.service("beta", "")],
    );
    node.start_agent();
    let pids = wait_converged(&node, &["alpha", "beta"]);

    for (what, text) in [
        ("empty file", ""),
        ("invalid yaml", "node: web\nservices: [\n"),
        ("missing services key", "node: web\n"),
    ] {
        node.write_raw_label("web", text);
        node.reconcile();
        assert!(
            wait_until(CONVERGE, || node.status()["last_error"].is_string()),
            "{what}: no error reported"
        );
        // The loop still makes progress, so /healthz stays 200; /status has the error.
        assert_eq!(node.request("GET", "/healthz").unwrap().0, 200, "{what}");
        assert_eq!(node.running_pids(), pids, "{what}: vms changed");
    }

    // A store outage: the whole directory is gone.
    std::fs::rename(node.path("store"), node.path("store-away")).unwrap();
    node.reconcile();
    assert!(
        wait_until(CONVERGE, || node.status()["last_error"]
            .as_str()
            .is_some_and(|e| e.starts_with("store read failed"))),
        "store outage was not reported"
    );
    assert_eq!(node.running_pids(), pids, "store outage: vms changed");
    // The heartbeat recreates the registry folder, possibly again between the removal and
    // the rename; put the store back in its place, retrying until the rename wins.
    assert!(
        wait_until(CONVERGE, || {
            let _ = std::fs::remove_dir_all(node.path("store"));
            std::fs::rename(node.path("store-away"), node.path("store")).is_ok()
        }),
        "could not put the store back"
    );

    // Explicitly empty: both stop.
    node.write_label("web", &[]);
    node.reconcile();
    assert!(
        wait_until(CONVERGE, || node.running_pids().is_empty()),
        "services: [] did not stop the vms\nlog:\n{}",
        node.log()
    );
    assert!(wait_until(CONVERGE, || pids
        .values()
        .all(|pid| !alive(*pid))));
}

#[test]
fn sigterm_leaves_vms_running_and_exits_zero() {
    let Some(mut node) = Node::new() else { return };
    node.write_label("web", &[node.service("alpha", "")]);
    node.start_agent();
    wait_converged(&node, &["alpha"]);

    // SIGHUP queues a tick that picks up the new service.
    node.write_label(
        "web",
        &[node.service("alpha", ""), node.service("beta", "")],
    );
    node.signal_agent(Signal::SIGHUP);
    let pids = wait_converged(&node, &["alpha", "beta"]);

    node.signal_agent(Signal::SIGTERM);
    let status = node
        .wait_agent_exit(Duration::from_secs(20))
        .expect("agent did not exit after SIGTERM");
    assert_eq!(status.code(), Some(0));
    for (service, pid) in &pids {
        assert!(
            alive(*pid),
            "{service} must keep running after the agent exits"
        );
    }

    // A new agent adopts the VM instead of restarting it.
    node.start_agent();
    assert!(wait_until(CONVERGE, || node.status()["last_tick"].is_object()));
    assert_eq!(node.running_pids(), pids);
    let log = node.log();
    assert!(log.contains("adopted running vm"), "{log}");
}

#[test]
fn agent_killed_during_apply_converges_after_restart() {
    let Some(mut node) = Node::new() else { return };
    let names: Vec<String> = (0..8).map(|i| format!("svc-{i}")).collect();
    node.write_label(
        "web",
        &names
            .iter()
            .map(|n| node.service(n, ""))
            .collect::<Vec<_>>(),
    );
    node.start_agent();
    // Kill the agent as soon as some VMs run but, most likely, not all.
    assert!(wait_until(CONVERGE, || !node.running_pids().is_empty()));
    node.signal_agent(Signal::SIGKILL);
    node.wait_agent_exit(Duration::from_secs(10)).unwrap();
    let survivors = node.running_pids();
    assert!(!survivors.is_empty());

    node.start_agent();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let pids = wait_converged(&node, &refs);
    for (service, pid) in &survivors {
        assert_eq!(
            pids[service], *pid,
            "{service} was restarted although it was healthy"
        );
    }
}

#[test]
fn env_values_reach_kernel_args_and_decode() {
    let Some(mut node) = Node::new() else { return };
    let values = [
        ("GREETING", "hello world"),
        ("QUOTED", "say \"hi\" and 'bye'"),
        ("UNICODE", "grüße, 世界 ✓"),
        ("PLAIN", "a=b,c"),
    ];
    let mut env = String::from("    env:\n");
    for (key, value) in values {
        env.push_str(&format!(
            "      {key}: {}\n",
            serde_json::to_string(value).unwrap()
        ));
    }
    node.write_label("web", &[node.service("alpha", &env)]);
    node.start_agent();
    wait_converged(&node, &["alpha"]);

    let config = node.vm_api("alpha", "/vm/config");
    let boot_args = config["boot-source"]["boot_args"]
        .as_str()
        .unwrap()
        .to_owned();
    let (kernel_part, init_part) = boot_args.split_once(" -- ").unwrap();
    assert_eq!(init_part, "/app");
    let mut decoded = BTreeMap::new();
    for token in kernel_part.split(' ') {
        if let Some(rest) = token.strip_prefix("firework.env64.") {
            let (key, value) = rest.split_once('=').unwrap();
            let value = fc_init::env::decode_base64(value.as_bytes(), token).unwrap();
            decoded.insert(key.to_owned(), value);
        } else if let Some(rest) = token.strip_prefix("firework.env.") {
            let (key, value) = rest.split_once('=').unwrap();
            decoded.insert(key.to_owned(), value.to_owned());
        }
    }
    for (key, value) in values {
        assert_eq!(decoded.get(key).map(String::as_str), Some(value), "{key}");
    }
    assert!(boot_args.contains("firework.env.PLAIN=a=b,c"));
    assert!(!boot_args.contains("hello world"));
}

#[test]
fn cli_version_check_config_and_dry_run() {
    let Some(node) = Node::new() else { return };
    node.write_config();
    let output = node.command().arg("--version").output().unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        format!("firework-agent {}", env!("CARGO_PKG_VERSION"))
    );

    let output = node.command().arg("--check-config").output().unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stdout)
            .contains(": ok (node node-1, labels web, store local)")
    );

    std::fs::write(node.path("bad.yaml"), "poll_interval: 0s\n").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_firework-agent"))
        .args(["--check-config", "--config"])
        .arg(node.path("bad.yaml"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("poll_interval"),
        "{output:?}"
    );

    node.write_label(
        "web",
        &[node.service("alpha", ""), node.service("beta", "")],
    );
    let output = node.command().arg("--dry-run").output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(
        stdout.starts_with("plan: 2 create, 0 update, 0 delete, 0 unchanged, 0 held\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  create    alpha (not running)\n"),
        "{stdout}"
    );
    assert!(
        !node.path("state/vms/alpha").exists(),
        "a dry run must not start vms"
    );
}

/// A node whose emulator answers every API request after 300 ms, so a VM start takes
/// seconds and a signal can arrive while it runs.
fn slow_node() -> Option<Node> {
    let mut node = Node::new()?;
    node.env
        .push(("FC_EMULATOR_API_DELAY_MS".to_owned(), "300".to_owned()));
    node.write_label("web", &[node.service("alpha", "")]);
    node.start_agent();
    assert!(
        wait_until(CONVERGE, || node
            .records()
            .get("alpha")
            .is_some_and(|(state, pid)| state == "starting" && pid.is_some())),
        "alpha never started starting\nlog:\n{}",
        node.log()
    );
    Some(node)
}

#[test]
fn sigterm_finishes_start_in_flight() {
    let Some(mut node) = slow_node() else { return };
    node.signal_agent(Signal::SIGTERM);
    let status = node
        .wait_agent_exit(CONVERGE)
        .expect("agent did not exit after SIGTERM");
    assert_eq!(status.code(), Some(0));
    let pids = node.running_pids();
    assert!(
        pids.contains_key("alpha"),
        "the start in flight must finish: {:?}\nlog:\n{}",
        node.records(),
        node.log()
    );
}

#[test]
fn second_signal_exits_at_once() {
    let Some(mut node) = slow_node() else { return };
    node.signal_agent(Signal::SIGTERM);
    node.signal_agent(Signal::SIGINT);
    let status = node
        .wait_agent_exit(CONVERGE)
        .expect("agent did not exit after two signals");
    assert_eq!(status.code(), Some(0));
    let (state, pid) = node.records()["alpha"].clone();
    assert_eq!(
        state, "starting",
        "the agent waited for the start to finish"
    );
    // The VM process outlives the agent; the guard kills it.
    assert!(alive(pid.unwrap()));
}
