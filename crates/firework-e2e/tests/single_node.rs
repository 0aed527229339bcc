//! End-to-end tests on one node: agent, local directory store, emulated VMs, Traefik.
//! Each test runs as root in its own network namespace and cleans up when it ends.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use firework_e2e::node::{GuestFiles, Node, NodeOptions, guest_httpd_pid, process_alive};
use firework_e2e::{Tools, require_root, wait_until};

const BOOT: Duration = Duration::from_secs(30);

fn setup(test: &str, traefik: bool) -> Option<(Tools, Node)> {
    setup_with(test, traefik, true)
}

fn setup_with(test: &str, traefik: bool, guest: bool) -> Option<(Tools, Node)> {
    if !require_root(test) {
        return None;
    }
    let tools = Tools::find(test)?;
    if traefik {
        tools.require_traefik(test)?;
    }
    let options = NodeOptions {
        traefik,
        guest,
        ..NodeOptions::default()
    };
    let node = Node::start(&tools, &options).unwrap();
    Some((tools, node))
}

/// Returns one networked service running the example image's web server, on its own copy of the
/// image so that two guests never mount the same file.
fn service(files: &GuestFiles, name: &str, greeting: &str) -> String {
    let image = files.image.with_file_name(format!("{name}.ext4"));
    if !image.exists() {
        std::fs::copy(&files.image, &image).unwrap();
    }
    format!(
        "  - name: {name}\n    image: {image}\n    kernel: {kernel}\n    vcpus: 1\n    \
         memory_mb: 64\n    kernel_args: \"console=ttyS0 reboot=k panic=1 pci=off \
         init=/sbin/fc-init -- /bin/service\"\n    network: {{}}\n    env:\n      \
         SERVICE_NAME: {name}\n      GREETING: \"{greeting}\"\n    metadata:\n      \
         host: {name}.e2e.localhost\n",
        image = image.display(),
        kernel = files.kernel.display(),
    )
}

/// Adds an HTTP health check of `path` on the web server's port to a service from
/// [`service`]. The port is also the route's backend port, so routed services need it.
fn with_probe(service: String, path: &str) -> String {
    service.replace(
        "    env:\n",
        &format!(
            "    health_check:\n      type: http\n      port: 8080\n      path: {path}\n      \
             interval: 1s\n      timeout: 1s\n      retries: 3\n    env:\n"
        ),
    )
}

fn label(services: &[String]) -> String {
    format!("node: web\nservices:\n{}", services.concat())
}

fn pid_of(node: &Node, name: &str) -> i64 {
    node.service(name)
        .and_then(|svc| svc["pid"].as_i64())
        .unwrap_or_else(|| panic!("no pid for {name} in {:?}", node.status()))
}

#[test]
fn new_service_is_reachable() {
    let Some((_tools, node)) = setup("new_service_is_reachable", true) else {
        return;
    };
    let files = node.guest_files();
    node.write_label(
        "web",
        &label(&[with_probe(service(&files, "shop", "hi"), "/healthz")]),
    )
    .unwrap();
    node.reconcile().unwrap();

    let svc = node.wait_running("shop", BOOT).unwrap();
    assert!(process_alive(svc["pid"].as_i64().unwrap()), "{svc}");
    assert!(svc["guest_ip"].is_string(), "no guest address: {svc}");
    assert!(
        node.links().contains("br-firework"),
        "no bridge: {}",
        node.links()
    );

    let route = node.routes_dir().join("firework-local-shop.yaml");
    wait_until("the route file", Duration::from_secs(5), || {
        route.is_file().then_some(())
    })
    .unwrap();
    if !node.runs_guests() {
        eprintln!(
            "skipping the HTTP part of new_service_is_reachable: no guest mode in fc-emulator \
             or no build/example-rootfs.ext4 (run scripts/build-example-rootfs.sh)"
        );
        return;
    }
    let body = wait_until("shop through Traefik", BOOT, || {
        node.get_via_traefik("shop.e2e.localhost", "/")
    })
    .unwrap();
    assert_eq!(body.trim(), "hello from shop");
}

#[test]
fn broken_spec_changes_nothing() {
    broken_spec_case("broken_spec_changes_nothing", false);
}

#[test]
fn broken_spec_keeps_guests() {
    broken_spec_case("broken_spec_keeps_guests", true);
}

fn broken_spec_case(test: &str, guest: bool) {
    let Some((tools, node)) = setup_with(test, false, guest) else {
        return;
    };
    let files = node.guest_files();
    node.write_label("web", &label(&[service(&files, "shop", "v1")]))
        .unwrap();
    node.reconcile().unwrap();
    let before = node.wait_running("shop", BOOT).unwrap();

    // vcpus 0 is invalid; the rest of the file is the running revision with a new greeting.
    let broken = label(&[service(&files, "shop", "v2").replace("vcpus: 1", "vcpus: 0")]);
    let path = node.store_dir().join("nodes/web.yaml");
    node.write_label("web", &broken).unwrap();

    let validate = std::process::Command::new(&tools.fireworkctl)
        .arg("validate")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        !validate.status.success(),
        "fireworkctl accepted the broken spec"
    );

    node.reconcile().unwrap();
    let error = wait_until("the tick error", Duration::from_secs(10), || {
        let status = node.status().ok()?;
        status["last_error"].as_str().map(str::to_owned)
    })
    .unwrap();
    assert!(error.contains("vcpus"), "unexpected error: {error}");

    let after = node.service("shop").unwrap();
    assert_eq!(after["pid"], before["pid"]);
    assert_eq!(after["spec_hash"], before["spec_hash"]);
    assert_eq!(after["state"], "running");
}

#[test]
fn agent_sigkill_keeps_vms() {
    agent_sigkill_case("agent_sigkill_keeps_vms", false);
}

#[test]
fn agent_sigkill_keeps_guests() {
    agent_sigkill_case("agent_sigkill_keeps_guests", true);
}

fn agent_sigkill_case(test: &str, guest: bool) {
    let Some((_tools, mut node)) = setup_with(test, false, guest) else {
        return;
    };
    let files = node.guest_files();
    node.write_label(
        "web",
        &label(&[service(&files, "shop", "a"), service(&files, "cart", "b")]),
    )
    .unwrap();
    node.reconcile().unwrap();
    node.wait_running("shop", BOOT).unwrap();
    node.wait_running("cart", BOOT).unwrap();
    let shop = pid_of(&node, "shop");
    let cart = pid_of(&node, "cart");
    let old_agent = node.agent_pid().unwrap();

    node.kill_agent().unwrap();
    assert!(process_alive(shop), "shop died with the agent");
    assert!(process_alive(cart), "cart died with the agent");

    node.start_agent().unwrap();
    assert_ne!(node.agent_pid().unwrap(), old_agent);
    node.reconcile().unwrap();
    let tick = wait_until("a tick after the restart", Duration::from_secs(20), || {
        let status = node.status().ok()?;
        status["last_tick"].is_object().then_some(status)
    })
    .unwrap();
    assert!(tick["last_error"].is_null(), "tick failed: {tick}");
    assert_eq!(pid_of(&node, "shop"), shop);
    assert_eq!(pid_of(&node, "cart"), cart);
    let plan = tick["last_tick"]["plan"].to_string();
    assert!(
        !plan.contains("\"create\""),
        "restart planned creates: {plan}"
    );
    assert!(
        !plan.contains("\"update\""),
        "restart planned updates: {plan}"
    );
}

#[test]
fn edited_service_rolls() {
    let Some((_tools, node)) = setup("edited_service_rolls", false) else {
        return;
    };
    let files = node.guest_files();
    node.write_label("web", &label(&[service(&files, "shop", "v1")]))
        .unwrap();
    node.reconcile().unwrap();
    let before = node.wait_running("shop", BOOT).unwrap();

    node.write_label("web", &label(&[service(&files, "shop", "v2")]))
        .unwrap();
    node.reconcile().unwrap();
    let after = wait_until("shop with the new spec", BOOT, || {
        node.service("shop")
            .filter(|svc| svc["state"] == "running" && svc["spec_hash"] != before["spec_hash"])
    })
    .unwrap();
    assert_ne!(after["pid"], before["pid"]);
    assert!(
        !process_alive(before["pid"].as_i64().unwrap()),
        "old VM still runs"
    );
    assert_eq!(after["guest_ip"], before["guest_ip"]);
}

/// Makes the agent of `node` sync the kernel and the images of `services` from a directory
/// source, and remove an image as soon as nothing references or uses it.
fn sync_images(node: &mut Node, services: &[&str]) {
    let files = node.guest_files();
    let source = node.dir().join("image-source");
    std::fs::create_dir_all(&source).unwrap();
    std::fs::copy(&files.kernel, source.join("vmlinux")).unwrap();
    for name in services {
        std::fs::copy(&files.image, source.join(format!("{name}.ext4"))).unwrap();
    }
    let config = node.dir().join("agent.yaml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "images_source_dir: {}\nimage_gc_grace: 0s\n",
        source.display()
    ));
    std::fs::write(&config, text).unwrap();
    node.kill_agent().unwrap();
    node.start_agent().unwrap();
}

#[test]
fn deleted_service_leaves_nothing() {
    let Some((_tools, mut node)) = setup("deleted_service_leaves_nothing", true) else {
        return;
    };
    sync_images(&mut node, &["shop", "cart"]);
    let files = node.guest_files();
    node.write_label(
        "web",
        &label(&[
            with_probe(service(&files, "shop", "a"), "/healthz"),
            with_probe(service(&files, "cart", "b"), "/healthz"),
        ]),
    )
    .unwrap();
    node.reconcile().unwrap();
    let shop = node.wait_running("shop", BOOT).unwrap();
    node.wait_running("cart", BOOT).unwrap();
    let route = node.routes_dir().join("firework-local-shop.yaml");
    wait_until("shop's route file", Duration::from_secs(10), || {
        route.is_file().then_some(())
    })
    .unwrap();
    let pid = shop["pid"].as_i64().unwrap();
    let ip = shop["guest_ip"].as_str().unwrap().to_owned();
    let tap = node
        .links()
        .lines()
        .filter_map(|line| line.split(": ").nth(1))
        .map(|name| name.split('@').next().unwrap_or(name).to_owned())
        .find(|name| name.starts_with("fw-shop"))
        .unwrap_or_else(|| panic!("no TAP for shop: {}", node.links()));
    let vm_dir = node.dir().join("state/vms/shop");
    assert!(vm_dir.is_dir(), "no VM directory {}", vm_dir.display());
    let image = node.dir().join("images/shop.ext4");
    let record = node.dir().join("images/shop.ext4.firework.json");
    assert!(
        record.is_file(),
        "shop's image was not synced: no {}",
        record.display()
    );

    node.write_label(
        "web",
        &label(&[with_probe(service(&files, "cart", "b"), "/healthz")]),
    )
    .unwrap();
    node.reconcile().unwrap();
    wait_until("shop gone from /status", BOOT, || {
        node.service("shop").is_none().then_some(())
    })
    .unwrap();

    // `/status` is written when the tick ends, so the tick that deleted shop has also
    // removed its TAP, rules and VM directory.
    assert!(!process_alive(pid), "VM process {pid} still runs");
    let links = node.links();
    assert!(!links.contains(&tap), "TAP {tap} still exists: {links}");
    assert!(!vm_dir.exists(), "{} still exists", vm_dir.display());
    assert!(!node.ruleset().contains(&ip), "rules still name {ip}");
    assert!(!route.exists(), "{} still exists", route.display());
    assert_eq!(node.service("cart").unwrap()["state"], "running");

    // Garbage collection keeps an image that a process still has open, so the image may
    // go on a later tick.
    wait_until("shop's image removed", Duration::from_secs(20), || {
        if image.exists() {
            node.reconcile().ok();
            return None;
        }
        Some(())
    })
    .unwrap();
    assert!(!record.exists(), "{} still exists", record.display());
    assert!(node.dir().join("images/cart.ext4").is_file());
    assert!(node.dir().join("images/cart.ext4.firework.json").is_file());
}

#[test]
fn failing_health_rolls_back() {
    let Some((_tools, node)) = setup("failing_health_rolls_back", false) else {
        return;
    };
    if !node.runs_guests() {
        eprintln!(
            "skipping failing_health_rolls_back: needs guest mode and build/example-rootfs.ext4"
        );
        return;
    }
    let files = node.guest_files();
    node.write_label("web", &label(&[service(&files, "shop", "v1")]))
        .unwrap();
    node.reconcile().unwrap();
    let before = node.wait_running("shop", BOOT).unwrap();

    // Revision 2 boots and serves, but its probe requests a page the guest does not have.
    let broken = with_probe(service(&files, "shop", "v2"), "/missing");
    node.write_label("web", &label(&[broken])).unwrap();
    node.reconcile().unwrap();
    // `/status` shows the rollout when the tick ends, so the revision-2 guest is found by
    // its environment. It booted, and serves on the address that the first guest had.
    let revision_2 = wait_until("the revision-2 guest", BOOT, || {
        guest_httpd_pid("GREETING=v2")
    })
    .unwrap();
    let ip = before["guest_ip"].as_str().unwrap().to_owned();
    let body = wait_until("the revision-2 guest answering", BOOT, || {
        node.netns()
            .output("curl", &["-fsS", "-m", "1", &format!("http://{ip}:8080/")])
            .ok()
    })
    .unwrap();
    assert_eq!(body.trim(), "hello from shop");
    assert!(
        process_alive(i64::from(revision_2)),
        "the revision-2 guest stopped before it answered"
    );

    let rolled_back = wait_until("shop rolled back", Duration::from_secs(60), || {
        node.service("shop").filter(|svc| {
            svc["state"] == "running"
                && svc["spec_hash"] == before["spec_hash"]
                && svc["last_error"].is_string()
        })
    })
    .unwrap();
    assert_eq!(rolled_back["guest_ip"], before["guest_ip"]);
    assert_eq!(
        rolled_back["rollout"]["state"], "rolled back",
        "{rolled_back}"
    );
    let error = rolled_back["last_error"].as_str().unwrap();
    assert!(error.contains("rolled back"), "{error}");
    // The revision-2 VM replaced the first one and was replaced again by the rollback.
    assert_ne!(rolled_back["pid"], before["pid"]);
    wait_until("the revision-2 guest gone", Duration::from_secs(10), || {
        (!process_alive(i64::from(revision_2))).then_some(())
    })
    .unwrap();
}
