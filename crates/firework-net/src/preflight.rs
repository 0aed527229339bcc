//! Host checks that tell an operator what is missing before the agent runs guests.
//!
//! Every check only reads; none of them changes the host.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Inputs of [`preflight`].
#[derive(Debug, Clone)]
pub struct PreflightConfig {
    /// Path or name of the Firecracker binary (the agent config's `firecracker_bin`).
    pub firecracker_binary: PathBuf,
    /// Bridge name, checked only when it already exists.
    pub bridge: Option<String>,
    /// Whether guest networking is managed, which needs forwarding, nft and a bridge.
    pub network_setup: bool,
}

/// Outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckStatus {
    /// The requirement is met.
    Pass,
    /// The requirement is not met.
    Fail,
}

/// One preflight check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Short name, e.g. `ip_forward`.
    pub name: &'static str,
    /// Whether it passed.
    pub status: CheckStatus,
    /// Observed state, e.g. the version found or the error.
    pub detail: String,
    /// Command or step that fixes a failure.
    pub fix: Option<String>,
}

impl Check {
    fn pass(name: &'static str, detail: impl Into<String>) -> Self {
        Self {
            name,
            status: CheckStatus::Pass,
            detail: detail.into(),
            fix: None,
        }
    }

    fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            name,
            status: CheckStatus::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// Runs every check and returns them in a fixed order.
pub fn preflight(config: &PreflightConfig) -> Vec<Check> {
    let mut checks = Vec::new();
    if config.network_setup {
        checks.push(check_ip_forward(Path::new("/proc/sys/net/ipv4/ip_forward")));
        checks.push(check_nft("nft"));
        checks.push(check_bridge(config.bridge.as_deref()));
    }
    checks.push(check_device(
        "tun",
        Path::new("/dev/net/tun"),
        "load the TUN module: modprobe tun",
    ));
    checks.push(check_device(
        "kvm",
        Path::new("/dev/kvm"),
        "enable virtualization and load KVM (modprobe kvm_intel or modprobe kvm_amd), and give the agent read-write access to /dev/kvm",
    ));
    checks.push(check_firecracker(&config.firecracker_binary));
    checks
}

/// Checks that IPv4 forwarding is on, reading the sysctl file at `path`.
pub fn check_ip_forward(path: &Path) -> Check {
    let name = "ip_forward";
    let fix =
        "sysctl -w net.ipv4.ip_forward=1 (and set it in /etc/sysctl.d to keep it after reboot)";
    match std::fs::read_to_string(path) {
        Ok(value) if value.trim() == "1" => Check::pass(name, "IPv4 forwarding is on"),
        Ok(value) => Check::fail(
            name,
            format!(
                "IPv4 forwarding is off ({} = {})",
                path.display(),
                value.trim()
            ),
            fix,
        ),
        Err(err) => Check::fail(
            name,
            format!("failed to read {}: {err}", path.display()),
            fix,
        ),
    }
}

/// Checks that `program` (the `nft` binary) runs.
pub fn check_nft(program: &str) -> Check {
    let name = "nft";
    let fix = "apt-get install nftables";
    match Command::new(program).arg("--version").output() {
        Ok(output) if output.status.success() => Check::pass(
            name,
            String::from_utf8_lossy(&output.stdout).trim().to_owned(),
        ),
        Ok(output) => Check::fail(
            name,
            format!(
                "{program} --version failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ),
            fix,
        ),
        Err(err) => Check::fail(name, format!("failed to run {program}: {err}"), fix),
    }
}

/// Checks that bridges can be used: the bridge module is loaded or built in, and an
/// existing `bridge` interface is a bridge.
pub fn check_bridge(bridge: Option<&str>) -> Check {
    let name = "bridge";
    if let Some(bridge) = bridge {
        let class = Path::new("/sys/class/net").join(bridge);
        if class.exists() {
            return if class.join("bridge").exists() {
                Check::pass(name, format!("bridge {bridge} exists"))
            } else {
                Check::fail(
                    name,
                    format!("interface {bridge} exists but is not a bridge"),
                    format!(
                        "set vm_bridge to another name or remove {bridge} (ip link del {bridge})"
                    ),
                )
            };
        }
    }
    if Path::new("/sys/module/bridge").exists() {
        Check::pass(name, "bridge support is loaded")
    } else {
        Check::fail(name, "the bridge module is not loaded", "modprobe bridge")
    }
}

/// Checks that the device at `path` opens for reading and writing.
pub fn check_device(name: &'static str, path: &Path, fix: &str) -> Check {
    match OpenOptions::new().read(true).write(true).open(path) {
        Ok(_) => Check::pass(name, format!("{} opens read-write", path.display())),
        Err(err) => Check::fail(
            name,
            format!("failed to open {}: {err}", path.display()),
            fix,
        ),
    }
}

/// Checks that the Firecracker binary runs and prints its version.
pub fn check_firecracker(binary: &Path) -> Check {
    let name = "firecracker";
    let fix = format!(
        "install Firecracker from https://github.com/firecracker-microvm/firecracker/releases and set firecracker_bin in the agent config (now {})",
        binary.display()
    );
    match Command::new(binary).arg("--version").output() {
        Ok(output) if output.status.success() => {
            let stdout = String::from_utf8_lossy(&output.stdout);
            let version = stdout.lines().next().unwrap_or("").trim().to_owned();
            Check::pass(name, format!("{}: {version}", binary.display()))
        }
        Ok(output) => Check::fail(
            name,
            format!(
                "{} --version exited with {}",
                binary.display(),
                output.status
            ),
            fix,
        ),
        Err(err) => Check::fail(
            name,
            format!("failed to run {}: {err}", binary.display()),
            fix,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_forward_reads_the_sysctl_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ip_forward");
        std::fs::write(&path, "1\n").unwrap();
        assert_eq!(check_ip_forward(&path).status, CheckStatus::Pass);

        std::fs::write(&path, "0\n").unwrap();
        let check = check_ip_forward(&path);
        assert_eq!(check.status, CheckStatus::Fail);
        assert!(
            check
                .fix
                .unwrap()
                .starts_with("sysctl -w net.ipv4.ip_forward=1")
        );

        let missing = check_ip_forward(&dir.path().join("absent"));
        assert_eq!(missing.status, CheckStatus::Fail);
    }

    #[test]
    fn missing_programs_fail_with_a_fix() {
        let nft = check_nft("/nonexistent/nft");
        assert_eq!(nft.status, CheckStatus::Fail);
        assert_eq!(nft.fix.as_deref(), Some("apt-get install nftables"));

        let firecracker = check_firecracker(Path::new("/nonexistent/firecracker"));
        assert_eq!(firecracker.status, CheckStatus::Fail);
        assert!(
            firecracker
                .detail
                .starts_with("failed to run /nonexistent/firecracker")
        );
        assert!(
            firecracker
                .fix
                .unwrap()
                .contains("set firecracker_bin in the agent config")
        );
    }

    #[test]
    fn firecracker_version_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("firecracker");
        std::fs::write(&script, "#!/bin/sh\necho 'Firecracker v1.16.0'\n").unwrap();
        let mut perms = std::fs::metadata(&script).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&script, perms).unwrap();

        let check = check_firecracker(&script);
        assert_eq!(check.status, CheckStatus::Pass, "{check:?}");
        assert!(
            check.detail.ends_with("Firecracker v1.16.0"),
            "{}",
            check.detail
        );
    }

    #[test]
    fn preflight_lists_every_check_in_order() {
        let config = PreflightConfig {
            firecracker_binary: PathBuf::from("/nonexistent/firecracker"),
            bridge: None,
            network_setup: true,
        };
        let names: Vec<&str> = preflight(&config).iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            ["ip_forward", "nft", "bridge", "tun", "kvm", "firecracker"]
        );
        let without_network = PreflightConfig {
            network_setup: false,
            ..config
        };
        let names: Vec<&str> = preflight(&without_network).iter().map(|c| c.name).collect();
        assert_eq!(names, ["tun", "kvm", "firecracker"]);
    }

    #[test]
    fn installed_nft_passes() {
        if Command::new("nft").arg("--version").output().is_err() {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("nft is missing; run .ci/setup-net.sh");
            }
            eprintln!("skipping installed_nft_passes: nft is missing (run .ci/setup-net.sh)");
            return;
        }
        let check = check_nft("nft");
        assert_eq!(check.status, CheckStatus::Pass, "{check:?}");
        assert!(check.detail.starts_with("nftables v"), "{}", check.detail);
    }

    #[test]
    fn missing_device_fails() {
        let check = check_device("kvm", Path::new("/nonexistent/kvm"), "modprobe kvm");
        assert_eq!(check.status, CheckStatus::Fail);
        assert_eq!(check.fix.as_deref(), Some("modprobe kvm"));
    }
}
