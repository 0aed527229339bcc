//! Measures how long `NetworkManager::apply` takes for many services.
//!
//! Runs as root inside a network namespace it creates and deletes:
//! `cargo run --release -p firework-net --example apply_scale -- 300`.

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::Instant;

use firework_net::{
    LinuxBackend, NetworkManager, NetworkPlan, PortForward, Protocol, ServiceNetwork,
};
use nix::sched::{CloneFlags, setns};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if !nix::unistd::Uid::effective().is_root() {
        return Err("apply_scale needs root to create a network namespace".into());
    }
    let count: usize = std::env::args()
        .nth(1)
        .map(|arg| arg.parse())
        .transpose()?
        .unwrap_or(300);
    let namespace = format!("fw-scale-{}", std::process::id());
    let status = Command::new("ip")
        .args(["netns", "add", &namespace])
        .status()?;
    if !status.success() {
        return Err(format!("ip netns add {namespace} failed").into());
    }
    let result = measure(&namespace, count);
    let _ = Command::new("ip")
        .args(["netns", "del", &namespace])
        .status();
    result
}

fn measure(namespace: &str, count: usize) -> Result<(), Box<dyn std::error::Error>> {
    let file = std::fs::File::open(format!("/run/netns/{namespace}"))?;
    // The runtime below is single-threaded, so every netlink socket, ioctl and nft
    // process of the measurement runs in this namespace.
    setns(&file, CloneFlags::CLONE_NEWNET)?;
    let services = (0..count)
        .map(|i| ServiceNetwork {
            name: format!("service-{i}"),
            tap_name: None,
            port_forwards: vec![PortForward {
                host_port: 20_000 + i as u16,
                vm_port: 80,
                protocol: Protocol::Tcp,
            }],
            links: if i > 0 {
                vec![format!("service-{}", i - 1)]
            } else {
                Vec::new()
            },
        })
        .collect();
    let plan = NetworkPlan {
        bridge: "fwbr0".into(),
        subnet: "10.64.0.0/23".parse()?,
        gateway: Ipv4Addr::new(10, 64, 0, 1),
        out_interface: Some("lo".into()),
        isolation: true,
        agent_api_port: Some(7070),
        mtu: None,
        tap_owner_uid: None,
        services,
    };
    let state = tempfile::tempdir()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let manager = NetworkManager::new(LinuxBackend::new()?, state.path());
        let start = Instant::now();
        manager.apply(&plan).await?;
        println!("first apply, {count} services: {:?}", start.elapsed());
        let start = Instant::now();
        manager.apply(&plan).await?;
        println!("second apply, {count} services: {:?}", start.elapsed());
        let start = Instant::now();
        manager.teardown().await?;
        println!("teardown, {count} services: {:?}", start.elapsed());
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}
