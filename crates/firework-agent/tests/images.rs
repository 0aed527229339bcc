//! Image sync through the agent binary, the Firecracker emulator and a directory image
//! source (`images_source_dir`): images are downloaded into `images_dir` before the VM
//! starts, a new image version replaces the VMs that use it, and a missing image holds
//! only the service that needs it.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use support::process::{Node, wait_until};

const DEADLINE: Duration = Duration::from_secs(30);

fn service_status(node: &Node, name: &str) -> serde_json::Value {
    node.get("/status")
        .and_then(|status| {
            status["services"]
                .as_array()?
                .iter()
                .find(|s| s["name"] == name)
                .cloned()
        })
        .unwrap_or_default()
}

#[test]
fn images_sync_from_source_dir() {
    let Some(mut node) = Node::new() else { return };
    let source = node.path("source");
    std::fs::create_dir_all(&source).unwrap();
    std::fs::write(source.join("vmlinux"), b"\x7fELF\x02\x01\x01 synced kernel").unwrap();
    std::fs::write(source.join("rootfs.ext4"), vec![7u8; 8192]).unwrap();
    node.extra_config = format!(
        "images_source_dir: {}\nimages_dir: {}\n",
        source.display(),
        node.path("images").display()
    );
    let beta = node
        .service("beta", "")
        .replace("images/rootfs.ext4", "images/missing.ext4");
    node.write_label("web", &[node.service("alpha", ""), beta]);
    node.start_agent();

    assert!(
        wait_until(DEADLINE, || node.running_pids().contains_key("alpha")),
        "alpha did not start\nlog:\n{}",
        node.log()
    );
    assert_eq!(
        std::fs::read(node.path("images/rootfs.ext4")).unwrap(),
        vec![7u8; 8192],
        "the image was not synced from the source"
    );
    assert!(node.path("images/rootfs.ext4.firework.json").exists());
    // The status is published at the end of the tick that started alpha.
    assert!(wait_until(DEADLINE, || {
        service_status(&node, "beta")["last_error"].is_string()
    }));
    let beta = service_status(&node, "beta");
    assert_eq!(beta["state"], "absent", "{beta}");
    assert!(
        beta["last_error"]
            .as_str()
            .unwrap()
            .contains("missing.ext4"),
        "{beta}"
    );
    assert!(!node.running_pids().contains_key("beta"));

    // A new version in the source replaces alpha.
    let first = node.running_pids()["alpha"];
    std::fs::write(source.join("rootfs.ext4"), vec![9u8; 16384]).unwrap();
    node.reconcile();
    assert!(
        wait_until(DEADLINE, || node
            .running_pids()
            .get("alpha")
            .is_some_and(|pid| *pid != first)),
        "alpha was not replaced after the image changed\nlog:\n{}",
        node.log()
    );
    assert_eq!(
        std::fs::read(node.path("images/rootfs.ext4")).unwrap(),
        vec![9u8; 16384]
    );

    let metrics = node.request("GET", "/metrics").unwrap().1;
    let ok = metrics
        .lines()
        .find(|line| line.starts_with("firework_agent_image_syncs_total{result=\"error\"}"))
        .unwrap();
    assert!(
        !ok.ends_with(" 0"),
        "the failing image was not counted: {ok}"
    );
    let bytes = metrics
        .lines()
        .find(|line| line.starts_with("firework_agent_image_sync_bytes_total"))
        .unwrap();
    let bytes: u64 = bytes.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(bytes >= 8192 + 16384, "{bytes} bytes downloaded");
}
