//! End-to-end test of two nodes: a guest on node A reaches a service on node B through
//! B's `host_ip` and published port.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use firework_e2e::node::{Node, NodeOptions};
use firework_e2e::{Tools, require_root, wait_until};

const BOOT: Duration = Duration::from_secs(30);

fn label(node: &Node, name: &str, extra: &str) -> String {
    let files = node.guest_files();
    let image = files.image.with_file_name(format!("{name}.ext4"));
    std::fs::copy(&files.image, &image).unwrap();
    format!(
        "node: web\nservices:\n  - name: {name}\n    image: {image}\n    kernel: {kernel}\n    \
         vcpus: 1\n    memory_mb: 64\n    kernel_args: \"console=ttyS0 reboot=k panic=1 pci=off \
         init=/sbin/fc-init -- /bin/service\"\n    network: {{}}\n    env:\n      \
         SERVICE_NAME: {name}\n{extra}",
        image = image.display(),
        kernel = files.kernel.display(),
    )
}

/// Finds a process of the guest whose environment sets `SERVICE_NAME=<name>`.
fn guest_pid(name: &str) -> Option<i32> {
    let needle = format!("SERVICE_NAME={name}");
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: i32 = entry.file_name().to_string_lossy().parse().ok()?;
            let environ = std::fs::read(entry.path().join("environ")).ok()?;
            let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
            let matches = comm.trim() == "httpd"
                && environ
                    .split(|b| *b == 0)
                    .any(|var| var == needle.as_bytes());
            matches.then_some(pid)
        })
}

#[test]
fn cross_node_link_reaches_peer() {
    let test = "cross_node_link_reaches_peer";
    if !require_root(test) {
        return;
    }
    let Some(tools) = Tools::find(test) else {
        return;
    };
    let node_b = Node::start(
        &tools,
        &NodeOptions {
            node: "node-b".to_owned(),
            extra_config: "host_ip: 10.78.0.2\n".to_owned(),
            ..NodeOptions::default()
        },
    )
    .unwrap();
    let node_a = Node::start(
        &tools,
        &NodeOptions {
            node: "node-a".to_owned(),
            extra_config: "host_ip: 10.78.0.1\nout_interface: fwpeer\n".to_owned(),
            ..NodeOptions::default()
        },
    )
    .unwrap();
    if !node_a.runs_guests() {
        eprintln!("skipping {test}: needs guest mode and build/example-rootfs.ext4");
        return;
    }
    node_a
        .netns()
        .link(node_b.netns(), "fwpeer", "10.78.0.1/24", "10.78.0.2/24")
        .unwrap();
    for node in [&node_a, &node_b] {
        node.netns()
            .output("sysctl", &["-qw", "net.ipv4.ip_forward=1"])
            .unwrap();
    }

    node_b
        .write_label(
            "web",
            &label(
                &node_b,
                "billing",
                "    port_forwards:\n      - host_port: 19090\n        vm_port: 8080\n",
            ),
        )
        .unwrap();
    node_b.reconcile().unwrap();
    node_b.wait_running("billing", BOOT).unwrap();
    // The resolved form of `cross_node_links: [{service: billing, env: BILLING_ADDR,
    // host_port: 19090}]` on node A, as the enricher writes it with the scheduler.
    node_a
        .write_label(
            "web",
            &label(
                &node_a,
                "shop",
                "      BILLING_ADDR: http://10.78.0.2:19090\n",
            ),
        )
        .unwrap();
    node_a.reconcile().unwrap();
    node_a.wait_running("shop", BOOT).unwrap();

    // Node A itself reaches B's published port.
    let from_host = wait_until("billing from node A", BOOT, || {
        node_a
            .netns()
            .output("curl", &["-fsS", "-m", "1", "http://10.78.0.2:19090/"])
            .ok()
    })
    .unwrap();
    assert_eq!(from_host.trim(), "hello from billing");

    // The guest on node A sees the address and reaches B from its own namespace.
    let pid = wait_until("the shop guest", BOOT, || guest_pid("shop")).unwrap();
    let guest_netns = std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    let node_netns =
        std::fs::read_link(format!("/proc/{}/ns/net", node_a.agent_pid().unwrap())).unwrap();
    assert_ne!(
        guest_netns, node_netns,
        "the guest shares node A's namespace"
    );
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    assert!(
        environ
            .split(|b| *b == 0)
            .any(|var| var == b"BILLING_ADDR=http://10.78.0.2:19090"),
        "the guest has no BILLING_ADDR"
    );
    let from_guest = wait_until("billing from the shop guest", BOOT, || {
        let output = std::process::Command::new("nsenter")
            .args(["-t", &pid.to_string(), "-n", "curl", "-fsS", "-m", "1"])
            .arg("http://10.78.0.2:19090/")
            .output()
            .ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    })
    .unwrap();
    assert_eq!(from_guest.trim(), "hello from billing");
}
