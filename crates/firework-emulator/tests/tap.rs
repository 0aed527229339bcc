//! TAP attachment through a real TAP device in a network namespace this test creates:
//! an existing TAP is accepted, and one held by another emulator is busy.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

use common::Emulator;

/// A network namespace with one persistent TAP device; deleted on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn create(tap: &str) -> Netns {
        let name = format!("fwemu{}", std::process::id());
        run(&["ip", "netns", "add", &name]);
        let netns = Netns { name };
        run(&[
            "ip",
            "netns",
            "exec",
            &netns.name,
            "ip",
            "tuntap",
            "add",
            "dev",
            tap,
            "mode",
            "tap",
        ]);
        netns
    }

    fn exec_prefix(&self) -> Vec<&str> {
        vec!["ip", "netns", "exec", &self.name]
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .status();
    }
}

fn run(args: &[&str]) {
    let status = Command::new(args[0]).args(&args[1..]).status().unwrap();
    assert!(status.success(), "{args:?} failed with {status}");
}

/// Returns whether the test can run; prints the skip reason otherwise.
fn can_run() -> bool {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipping: TAP tests need root to create a network namespace");
        return false;
    }
    let has_ip = Command::new("ip").arg("-V").output().is_ok();
    if !has_ip {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "the ip command (iproute2) is required in CI"
        );
        eprintln!("skipping: the ip command (iproute2) is not installed");
        return false;
    }
    true
}

#[test]
fn tap_attach_and_busy() {
    if !can_run() {
        return;
    }
    let netns = Netns::create("fwtap0");
    let prefix = netns.exec_prefix();
    let body = r#"{"iface_id":"eth0","host_dev_name":"fwtap0","guest_mac":"06:00:AC:10:00:02"}"#;

    let first = Emulator::start_with_prefix(&prefix, &[], &[]);
    first.put_ok("/network-interfaces/eth0", body);
    let nics = first.get("/vm/config").json()["network-interfaces"].clone();
    assert_eq!(nics[0]["host_dev_name"], "fwtap0");
    assert_eq!(nics[0]["guest_mac"], "06:00:ac:10:00:02");

    let second = Emulator::start_with_prefix(&prefix, &[], &[]);
    second.expect_fault(
        "PUT",
        "/network-interfaces/eth0",
        Some(body),
        "Network config error: Could not create the network device: Open tap device failed: Error while creating ifreq structure: Resource busy (os error 16). Invalid TUN/TAP Backend provided by fwtap0. Check our documentation on setting up the network devices.",
    );

    // Replacing the interface in the same process reopens the TAP it already held.
    first.put_ok("/network-interfaces/eth0", body);
    drop(first);
    second.put_ok("/network-interfaces/eth0", body);
}

#[test]
fn duplicate_mac_rejected() {
    if !can_run() {
        return;
    }
    let netns = Netns {
        name: format!("fwemu{}m", std::process::id()),
    };
    run(&["ip", "netns", "add", &netns.name]);
    for tap in ["fwtap1", "fwtap2"] {
        run(&[
            "ip",
            "netns",
            "exec",
            &netns.name,
            "ip",
            "tuntap",
            "add",
            "dev",
            tap,
            "mode",
            "tap",
        ]);
    }
    let emulator = Emulator::start_with_prefix(&netns.exec_prefix(), &[], &[]);
    emulator.put_ok(
        "/network-interfaces/eth0",
        r#"{"iface_id":"eth0","host_dev_name":"fwtap1","guest_mac":"06:00:00:00:00:01"}"#,
    );
    emulator.expect_fault(
        "PUT",
        "/network-interfaces/eth1",
        Some(r#"{"iface_id":"eth1","host_dev_name":"fwtap2","guest_mac":"06:00:00:00:00:01"}"#),
        "Network config error: The MAC address is already in use: 06:00:00:00:00:01",
    );
}
