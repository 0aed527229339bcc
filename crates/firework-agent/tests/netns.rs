//! The agent with real host networking, inside a network namespace the test creates:
//! bridge, TAP devices, stable guest addresses, `ip=` and link environment, and the removal
//! of a deleted service's TAP device and rules. Needs root, `ip` and `nft`; prints why and
//! returns otherwise.

#![allow(clippy::unwrap_used)]

mod support;

use std::fs::File;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use firework_agent::driver::HostNetwork;
use firework_agent::plan::ActionKind;
use nix::sched::{CloneFlags, setns};
use support::process::{Node, wait_until};
use support::{World, network_settings};

fn skip_unless_root(test: &str) -> bool {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipping {test}: needs root for network namespaces, TAP devices and nft");
        return true;
    }
    for tool in ["ip", "nft"] {
        if Command::new(tool).arg("-V").output().is_err() {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{tool} is missing; run .ci/setup-net.sh");
            }
            eprintln!("skipping {test}: {tool} is missing");
            return true;
        }
    }
    false
}

/// A network namespace, deleted on drop.
struct NetNs(String);

impl NetNs {
    /// Creates the namespace `fwagent-<tag>-<pid>`. Each test passes its own tag because
    /// the tests of this file run at the same time in one process.
    fn new(tag: &str) -> NetNs {
        let name = format!("fwagent-{tag}-{}", std::process::id());
        let netns = NetNs(name.clone());
        for args in [
            vec!["netns", "add", name.as_str()],
            vec!["-n", name.as_str(), "link", "set", "lo", "up"],
        ] {
            let output = Command::new("ip").args(&args).output().unwrap();
            assert!(
                output.status.success(),
                "ip {args:?} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        netns
    }

    fn ip(&self, args: &[&str]) -> String {
        let output = Command::new("ip")
            .arg("-n")
            .arg(&self.0)
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn nft_ruleset(&self) -> String {
        let output = Command::new("ip")
            .args(["netns", "exec", &self.0, "nft", "list", "ruleset"])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "nft list ruleset failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Runs `f` on a thread that has entered the namespace.
    fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let file = File::open(format!("/run/netns/{}", self.0)).unwrap();
                    setns(&file, CloneFlags::CLONE_NEWNET).unwrap();
                    f()
                })
                .join()
                .unwrap()
        })
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn networked_services_get_taps_addresses_and_links() {
    if skip_unless_root("networked_services_get_taps_addresses_and_links") {
        return;
    }
    let Some(mut node) = Node::new() else { return };
    let ns = NetNs::new("links");
    node.extra_config = "vm_subnet: 172.30.0.0/24\nvm_gateway: 172.30.0.1\nvm_bridge: fwbr0\nnetwork_isolation: true\n"
        .to_owned();
    node.write_config();
    let config = node.config_path();
    // The enable_network_setup: false from the base config is replaced here.
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("enable_network_setup: false", "enable_network_setup: true");
    std::fs::write(&config, text).unwrap();
    node.write_label(
        "web",
        &[
            node.service(
                "alpha",
                "    network: {}\n    port_forwards:\n      - host_port: 18080\n        vm_port: 8080\n",
            ),
            node.service(
                "beta",
                "    network: {}\n    links:\n      - service: alpha\n        env: ALPHA_URL\n        port: 8080\n",
            ),
        ],
    );
    let log = File::create(node.path("agent.log")).unwrap();
    let child = Command::new("ip")
        .args(["netns", "exec", &ns.0])
        .arg(env!("CARGO_BIN_EXE_firework-agent"))
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    node.agent = Some(child);

    assert!(
        wait_until(Duration::from_secs(30), || node.running_pids().len() == 2),
        "vms did not start: {:?}\nlog:\n{}",
        node.records(),
        node.log()
    );
    let links = ns.ip(&["-o", "link", "show"]);
    assert!(links.contains("fwbr0"), "{links}");
    assert_eq!(links.matches("master fwbr0").count(), 2, "{links}");

    // The status is written when the tick ends, a moment after the VMs run.
    assert!(wait_until(Duration::from_secs(30), || {
        ns.run(|| node.status())["services"]
            .as_array()
            .is_some_and(|s| s.len() == 2 && s.iter().all(|s| s["guest_ip"].is_string()))
    }));
    let status = ns.run(|| node.status());
    let services = status["services"].as_array().unwrap().clone();
    let alpha_ip = services[0]["guest_ip"].as_str().unwrap().to_owned();
    let beta_ip = services[1]["guest_ip"].as_str().unwrap().to_owned();
    assert_ne!(alpha_ip, beta_ip);
    assert!(alpha_ip.starts_with("172.30.0."));

    let alpha = node.vm_api("alpha", "/vm/config");
    let boot = alpha["boot-source"]["boot_args"].as_str().unwrap();
    let ip_arg = format!("ip={alpha_ip}::172.30.0.1:255.255.255.0::eth0:off");
    let ip_at = boot.find(&ip_arg).unwrap_or_else(|| panic!("{boot}"));
    assert!(ip_at < boot.find(" -- ").unwrap(), "{boot}");
    let tap = alpha["network-interfaces"][0]["host_dev_name"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        links.contains(&format!("{tap}:")),
        "{tap} missing from {links}"
    );
    let beta = node.vm_api("beta", "/vm/config");
    let boot = beta["boot-source"]["boot_args"].as_str().unwrap();
    assert!(
        boot.contains(&format!("firework.env.ALPHA_URL=http://{alpha_ip}:8080")),
        "{boot}"
    );

    // A restart keeps the addresses and leaves both VMs running.
    let pids = node.running_pids();
    node.signal_agent(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(
        node.wait_agent_exit(Duration::from_secs(20))
            .unwrap()
            .code(),
        Some(0)
    );
    let log = std::fs::OpenOptions::new()
        .append(true)
        .open(node.path("agent.log"))
        .unwrap();
    node.agent = Some(
        Command::new("ip")
            .args(["netns", "exec", &ns.0])
            .arg(env!("CARGO_BIN_EXE_firework-agent"))
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    assert!(wait_until(Duration::from_secs(30), || {
        ns.run(|| node.get("/status"))
            .is_some_and(|status| status["last_tick"].is_object())
    }));
    assert_eq!(node.running_pids(), pids);
    let status = ns.run(|| node.status());
    assert_eq!(
        status["services"][0]["guest_ip"].as_str().unwrap(),
        alpha_ip
    );
    assert_eq!(status["last_error"], serde_json::Value::Null, "{status}");
}

/// Returns whether `ip -o link show` output lists the interface `name`.
fn has_link(links: &str, name: &str) -> bool {
    links.lines().any(|line| {
        line.split(": ")
            .nth(1)
            .is_some_and(|field| field.split('@').next() == Some(name))
    })
}

/// Returns whether `text` contains the IPv4 address `address` itself, not only as the start
/// of a longer address (172.30.0.5 in 172.30.0.53).
fn mentions_address(text: &str, address: &str) -> bool {
    text.match_indices(address)
        .any(|(at, _)| !text[at + address.len()..].starts_with(|c: char| c.is_ascii_digit()))
}

#[test]
fn deleted_service_loses_tap_in_same_tick() {
    if skip_unless_root("deleted_service_loses_tap_in_same_tick") {
        return;
    }
    let ns = NetNs::new("release");
    let world = World::new();
    let service = |name: &str, host_port: u16| {
        world.service(
            name,
            "a.ext4",
            &format!(
                "    network: {{}}\n    port_forwards:\n      - host_port: {host_port}\n        vm_port: 8080\n"
            ),
        )
    };
    let alpha = service("alpha", 18081);
    let beta = service("beta", 18082);
    world.write_label("web", &format!("node: web\nservices:\n{alpha}{beta}"));

    // The netlink socket, the TAP ioctls and nft act in the namespace of the thread that
    // runs them, so the agent runs on one thread inside the namespace.
    ns.run(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let net = HostNetwork::new(world.dir.path().join("state/network"), true).unwrap();
            let mut settings = world.settings(&["web"]);
            settings.network = Some(network_settings("fwbr1"));
            let (mut agent, _stop) =
                world.agent_with(settings, |parts| parts.net = Some(Arc::new(net)));

            let report = agent.tick("test", false).await;
            assert_eq!(report.error, None);
            assert_eq!(world.vms.running(), vec!["alpha", "beta"]);
            let alpha_tap = world.vms.spec("alpha").network.unwrap().tap_name;
            let beta_tap = world.vms.spec("beta").network.unwrap().tap_name;
            let beta_ip = {
                let status = agent.status();
                let status = status.read().unwrap();
                let beta = status.services.iter().find(|s| s.name == "beta").unwrap();
                beta.guest_ip.unwrap().to_string()
            };
            let links = ns.ip(&["-o", "link", "show"]);
            assert!(has_link(&links, &alpha_tap), "{alpha_tap} missing: {links}");
            assert!(has_link(&links, &beta_tap), "{beta_tap} missing: {links}");
            let ruleset = ns.nft_ruleset();
            assert!(
                mentions_address(&ruleset, &beta_ip),
                "no rule names {beta_ip}: {ruleset}"
            );

            world.write_label("web", &format!("node: web\nservices:\n{alpha}"));
            let report = agent.tick("test", false).await;
            assert_eq!(report.error, None);
            let deletes: Vec<_> = report.plan.of_kind(ActionKind::Delete).collect();
            assert_eq!(deletes.len(), 1);
            assert_eq!(deletes[0].service, "beta");
            assert!(
                report.network_errors.is_empty(),
                "{:?}",
                report.network_errors
            );

            let links = ns.ip(&["-o", "link", "show"]);
            assert!(
                !has_link(&links, &beta_tap),
                "{beta_tap} still exists: {links}"
            );
            assert!(has_link(&links, &alpha_tap), "{alpha_tap} missing: {links}");
            let ruleset = ns.nft_ruleset();
            assert!(
                !mentions_address(&ruleset, &beta_ip),
                "rules still name {beta_ip}: {ruleset}"
            );
            assert!(
                ruleset.contains("18081"),
                "alpha's forward missing: {ruleset}"
            );
            let state =
                std::fs::read_to_string(world.dir.path().join("state/network/network-state.json"))
                    .unwrap();
            assert!(
                !state.contains("\"beta\""),
                "beta is still recorded: {state}"
            );
        });
    });
}
