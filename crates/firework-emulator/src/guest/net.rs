//! The guest's network interfaces: a TAP named `eth<n>` inside the guest's network
//! namespace, configured as the kernel configures `ip=`, and two threads that copy frames
//! between it and the host TAP.
//!
//! Both TAPs are opened with `IFF_VNET_HDR` and the default header size, so each frame
//! read from one side carries the same virtio-net header the other side expects and is
//! written unchanged.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::OwnedFd;
use std::sync::mpsc;

use futures::TryStreamExt;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sched::{CloneFlags, setns};
use rtnetlink::{Handle, LinkUnspec, RouteMessageBuilder};

use super::GuestNic;
use super::bootargs::IpConfig;

/// Largest frame plus virtio-net header a TAP hands out (64 KiB GSO frames).
const FRAME_BUFFER: usize = 65_550;

/// Creates and configures `name` in the network namespace of `outer_pid`, then relays
/// frames. The returned channel reports the setup result.
pub fn attach(
    outer_pid: u32,
    name: String,
    nic: GuestNic,
    ip: Option<IpConfig>,
) -> mpsc::Receiver<Result<(), String>> {
    let (ready_tx, ready_rx) = mpsc::channel();
    let thread_name = format!("guest-{name}");
    let spawned = std::thread::Builder::new()
        .name(thread_name)
        .spawn(move || match setup(outer_pid, &name, &nic, ip.as_ref()) {
            Ok((guest_tap, host_tap)) => {
                let _ = ready_tx.send(Ok(()));
                relay_pair(&name, guest_tap, host_tap);
            }
            Err(message) => {
                let _ = ready_tx.send(Err(message));
            }
        });
    if let Err(error) = spawned {
        let (failed_tx, failed_rx) = mpsc::channel();
        let _ = failed_tx.send(Err(format!("start the relay thread: {error}")));
        return failed_rx;
    }
    ready_rx
}

fn blocking(fd: OwnedFd) -> Result<File, String> {
    fcntl(&fd, FcntlArg::F_SETFL(OFlag::empty()))
        .map_err(|error| format!("clear O_NONBLOCK: {error}"))?;
    Ok(File::from(fd))
}

fn setup(
    outer_pid: u32,
    name: &str,
    nic: &GuestNic,
    ip: Option<&IpConfig>,
) -> Result<(File, File), String> {
    let namespace = File::open(format!("/proc/{outer_pid}/ns/net"))
        .map_err(|error| format!("open the guest network namespace: {error}"))?;
    // setns changes only this thread's network namespace.
    setns(&namespace, CloneFlags::CLONE_NEWNET)
        .map_err(|error| format!("enter the guest network namespace: {error}"))?;
    let guest_tap =
        firework_sys::tun::open_tap(name).map_err(|error| format!("create the TAP: {error}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("start the netlink runtime: {error}"))?;
    runtime.block_on(configure(name, nic, ip))?;
    let host_tap = nic
        .host_tap
        .try_clone()
        .map_err(|error| format!("duplicate the host TAP: {error}"))?;
    Ok((blocking(guest_tap)?, blocking(host_tap)?))
}

async fn link_index(handle: &Handle, name: &str) -> Result<u32, String> {
    handle
        .link()
        .get()
        .match_name(name.to_string())
        .execute()
        .try_next()
        .await
        .map_err(|error| format!("look up {name}: {error}"))?
        .map(|message| message.header.index)
        .ok_or_else(|| format!("{name} does not exist"))
}

/// Applies what the kernel applies for `ip=`: loopback up, the interface's MAC and MTU,
/// link up, the address, and a default route through the gateway.
async fn configure(name: &str, nic: &GuestNic, ip: Option<&IpConfig>) -> Result<(), String> {
    let (connection, handle, _) =
        rtnetlink::new_connection().map_err(|error| format!("open rtnetlink: {error}"))?;
    tokio::spawn(connection);

    let lo = link_index(&handle, "lo").await?;
    handle
        .link()
        .set(LinkUnspec::new_with_index(lo).up().build())
        .execute()
        .await
        .map_err(|error| format!("set lo up: {error}"))?;

    let index = link_index(&handle, name).await?;
    let mut link = LinkUnspec::new_with_index(index);
    if let Some(mac) = nic.mac {
        link = link.address(mac.to_vec());
    }
    if let Some(mtu) = nic.mtu {
        link = link.mtu(u32::from(mtu));
    }
    handle
        .link()
        .set(link.up().build())
        .execute()
        .await
        .map_err(|error| format!("set MAC, MTU and up: {error}"))?;

    let Some(ip) = ip else {
        return Ok(());
    };
    handle
        .address()
        .add(index, IpAddr::V4(ip.client), ip.prefix_len)
        .execute()
        .await
        .map_err(|error| format!("add address {}/{}: {error}", ip.client, ip.prefix_len))?;
    if let Some(gateway) = ip.gateway {
        let route = RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(gateway)
            .output_interface(index)
            .build();
        handle
            .route()
            .add(route)
            .execute()
            .await
            .map_err(|error| format!("add default route via {gateway}: {error}"))?;
    }
    Ok(())
}

/// Copies frames both ways until the guest side goes away (its namespace dies).
fn relay_pair(name: &str, guest_tap: File, host_tap: File) {
    let (guest_reader, host_writer) = match (guest_tap.try_clone(), host_tap.try_clone()) {
        (Ok(guest), Ok(host)) => (guest, host),
        (Err(error), _) | (_, Err(error)) => {
            eprintln!("fc-emulator: guest {name}: duplicate a TAP descriptor: {error}");
            return;
        }
    };
    let inbound = std::thread::Builder::new()
        .name(format!("guest-{name}-in"))
        .spawn(move || copy_frames(host_tap, guest_tap));
    if let Err(error) = inbound {
        eprintln!("fc-emulator: guest {name}: start the inbound relay: {error}");
        return;
    }
    copy_frames(guest_reader, host_writer);
}

fn copy_frames(mut from: File, mut to: File) {
    let mut buffer = vec![0u8; FRAME_BUFFER];
    loop {
        let length = match from.read(&mut buffer) {
            Ok(0) => return,
            Ok(length) => length,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        // A frame the other side refuses (its link is down, its queue is full) is
        // dropped, as a NIC drops it; the copy goes on.
        match to.write(&buffer[..length]) {
            Ok(_) => {}
            Err(error) if error.raw_os_error() == Some(nix::libc::EBADFD) => return,
            Err(_) => {}
        }
    }
}
