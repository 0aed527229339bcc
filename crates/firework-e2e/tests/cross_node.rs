//! End-to-end test of two nodes placed by the scheduler. The enricher reads both agents'
//! heartbeats, places `shop` on node A and `billing` on node B, and resolves shop's
//! cross-node link to B's `host_ip` and published port. A guest on A then reaches B.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use firework_e2e::node::{GuestFiles, Node, NodeOptions, guest_httpd_pid};
use firework_e2e::tools::workspace_binary;
use firework_e2e::{Tools, require_root, wait_until};

const BOOT: Duration = Duration::from_secs(30);

/// Writes the enricher input: shop (node type `web`) links to billing (node type
/// `backend`) on another node through billing's host port 19090.
fn write_input(input: &Path, files: &GuestFiles) {
    std::fs::create_dir_all(input.join("services")).unwrap();
    std::fs::write(
        input.join("defaults.yaml"),
        format!(
            "kernel: {}\nvcpus: 1\nmemory_mb: 64\nkernel_args: \"console=ttyS0 reboot=k \
             panic=1 pci=off init=/sbin/fc-init -- /bin/service\"\n",
            files.kernel.display()
        ),
    )
    .unwrap();
    for (name, node_type, extra) in [
        (
            "billing",
            "backend",
            "port_forwards:\n  - host_port: 19090\n    vm_port: 8080\n",
        ),
        (
            "shop",
            "web",
            "cross_node_links:\n  - service: billing\n    env: BILLING_ADDR\n    \
             host_port: 19090\n    protocol: http\nnode_host_ip_env: NODE_IP\n",
        ),
    ] {
        // Each guest boots its own copy of the image, because two guests never share one
        // writable root drive.
        let image = files.image.with_file_name(format!("{name}.ext4"));
        std::fs::copy(&files.image, &image).unwrap();
        std::fs::write(
            input.join(format!("services/{name}.yaml")),
            format!(
                "name: {name}\nimage: {}\nnode_type: {node_type}\nnetwork: true\nenv:\n  SERVICE_NAME: {name}\n{extra}",
                image.display()
            ),
        )
        .unwrap();
    }
}

/// Starts a node named `name` that reads `nodes/<name>.yaml` from `store` and offers
/// `node_type` to the scheduler.
fn scheduled_node(tools: &Tools, name: &str, store: &Path, node_type: &str, extra: &str) -> Node {
    Node::start(
        tools,
        &NodeOptions {
            node: name.to_owned(),
            labels: vec![name.to_owned()],
            store: Some(format!("store_type: local\nstore_dir: {}", store.display())),
            extra_config: format!("node_types: [{node_type}]\n{extra}"),
            ..NodeOptions::default()
        },
    )
    .unwrap()
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
    let Some(enricher) = workspace_binary("firework-enricher") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{test}: firework-enricher is not built"
        );
        eprintln!("skipping {test}: firework-enricher is not built");
        return;
    };
    // Both agents read one directory store and publish their heartbeats into it, as they
    // would with one bucket. The enricher reads the registry there and writes the configs.
    let shared = tempfile::Builder::new()
        .prefix("fwe2e-shared-")
        .tempdir()
        .unwrap();
    let store = shared.path().join("desired");
    std::fs::create_dir_all(store.join("nodes")).unwrap();
    let node_b = scheduled_node(&tools, "node-b", &store, "backend", "host_ip: 10.78.0.2\n");
    let node_a = scheduled_node(
        &tools,
        "node-a",
        &store,
        "web",
        "host_ip: 10.78.0.1\nout_interface: fwpeer\n",
    );
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

    // Each agent publishes its heartbeat on its first tick, even without a node config.
    for node in [&node_a, &node_b] {
        node.reconcile().unwrap();
    }
    for name in ["node-a", "node-b"] {
        let record = store.join(format!("registry/nodes/{name}.json"));
        wait_until("the heartbeat", Duration::from_secs(20), || {
            record.is_file().then_some(())
        })
        .unwrap();
    }

    let input = shared.path().join("input");
    let files = GuestFiles {
        image: shared.path().join("rootfs.ext4"),
        kernel: node_a.guest_files().kernel,
    };
    std::fs::copy(node_a.guest_files().image, &files.image).unwrap();
    write_input(&input, &files);
    let render = Command::new(&enricher)
        .arg("render")
        .arg("--input")
        .arg(&input)
        .arg("--output")
        .arg(&store)
        .arg("--schedule")
        .arg("--registry")
        .arg(&store)
        .output()
        .unwrap();
    assert!(
        render.status.success(),
        "render failed: {}",
        String::from_utf8_lossy(&render.stderr)
    );

    // The scheduler put each service on the node with its type, and the enricher resolved
    // the link to node B's host IP and billing's host port.
    let config_a = std::fs::read_to_string(store.join("nodes/node-a.yaml")).unwrap();
    let config_b = std::fs::read_to_string(store.join("nodes/node-b.yaml")).unwrap();
    assert!(config_a.contains("name: shop"), "{config_a}");
    assert!(!config_a.contains("name: billing"), "{config_a}");
    assert!(config_b.contains("name: billing"), "{config_b}");
    assert!(
        config_a.contains("BILLING_ADDR: http://10.78.0.2:19090"),
        "{config_a}"
    );
    assert!(config_a.contains("NODE_IP: \"10.78.0.1\""), "{config_a}");

    node_b.reconcile().unwrap();
    node_b.wait_running("billing", BOOT).unwrap();
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

    // The guest on node A has the resolved address and reaches B from its own namespace.
    let pid = wait_until("the shop guest", BOOT, || {
        guest_httpd_pid("SERVICE_NAME=shop")
    })
    .unwrap();
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
        let output = Command::new("nsenter")
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
