//! A network namespace that a test owns.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A network namespace named `fwe2e-<pid>-<n>`. Dropping it kills every process inside
/// (agent, Traefik, emulators) and deletes it, which also removes its bridge, TAP devices
/// and nftables tables.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates the namespace with its loopback interface up.
    pub fn create() -> Result<Self, String> {
        let name = format!(
            "fwe2e-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        run(Command::new("ip").args(["netns", "add", &name]))?;
        let netns = Self { name };
        run(Command::new("ip").args(["-n", &netns.name, "link", "set", "lo", "up"]))?;
        Ok(netns)
    }

    /// The namespace name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Returns a command that runs `program` inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name, program]);
        command
    }

    /// Runs `program args` inside the namespace; returns its stdout when it exits 0.
    pub fn output(&self, program: &str, args: &[&str]) -> Result<String, String> {
        let output = self
            .command(program)
            .args(args)
            .output()
            .map_err(|error| format!("failed to run {program} in {}: {error}", self.name))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(format!(
                "{program} {args:?} in {} exited with {}: {}",
                self.name,
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ))
        }
    }

    /// Connects this namespace with `other` through a veth pair named `peer` at both ends,
    /// with `address` here and `other_address` there (CIDR notation), both up.
    pub fn link(
        &self,
        other: &Netns,
        peer: &str,
        address: &str,
        other_address: &str,
    ) -> Result<(), String> {
        run(Command::new("ip").args([
            "-n",
            &self.name,
            "link",
            "add",
            peer,
            "type",
            "veth",
            "peer",
            "name",
            peer,
            "netns",
            &other.name,
        ]))?;
        for (netns, addr) in [(self, address), (other, other_address)] {
            run(Command::new("ip").args(["-n", &netns.name, "addr", "add", addr, "dev", peer]))?;
            run(Command::new("ip").args(["-n", &netns.name, "link", "set", peer, "up"]))?;
        }
        Ok(())
    }

    /// Lists the processes inside the namespace.
    pub fn pids(&self) -> Vec<i32> {
        Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
            .map(|out| {
                String::from_utf8_lossy(&out.stdout)
                    .split_whitespace()
                    .filter_map(|pid| pid.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for _ in 0..3 {
            let pids = self.pids();
            if pids.is_empty() {
                break;
            }
            for pid in pids {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .status();
    }
}

fn run(command: &mut Command) -> Result<(), String> {
    let status = command
        .status()
        .map_err(|error| format!("failed to run {command:?}: {error}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{command:?} exited with {status}"))
    }
}
