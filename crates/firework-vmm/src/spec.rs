//! The resolved input of one VM start and its validation.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::VmmError;

/// Maximum length of a Firecracker instance id (`--id`), in bytes.
pub const MAX_VM_ID_LEN: usize = 64;
/// Maximum length of a service name, in bytes; the name becomes a directory name.
pub const MAX_SERVICE_NAME_LEN: usize = 63;
/// Maximum kernel command line that Firecracker v1.16 accepts at `PUT /boot-source`, in
/// bytes. Firecracker appends root-device and device arguments at `InstanceStart`, so a
/// command line close to this limit can still fail there.
pub const MAX_KERNEL_ARGS_LEN: usize = 2047;
/// Linux interface names are at most 15 bytes (`IFNAMSIZ` minus the terminating NUL).
pub const MAX_TAP_NAME_LEN: usize = 15;

/// Everything the runtime needs to launch one VM of one service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmSpec {
    /// Service name; also the directory name under `<state_dir>/vms/`.
    pub service: String,
    /// Firecracker instance id (`--id`): 1–64 ASCII alphanumerics or `-`.
    pub vm_id: String,
    /// Absolute path of the uncompressed kernel image on the host.
    pub kernel_path: PathBuf,
    /// Absolute path of the root file system image on the host.
    pub rootfs_path: PathBuf,
    /// Whether the root drive is attached read-only.
    pub read_only: bool,
    /// Number of vCPUs, 1 to 32.
    pub vcpus: u8,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// Complete kernel command line passed as `boot_args`.
    pub kernel_args: String,
    /// Network interface attached as `eth0`, if any.
    pub network: Option<VmNetwork>,
    /// Log file of the Firecracker process; `None` means `firecracker.log` in the VM directory.
    pub log_path: Option<PathBuf>,
}

/// The TAP device and guest MAC address of a VM's single network interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmNetwork {
    /// Host TAP device name (`host_dev_name`).
    pub tap_name: String,
    /// Guest MAC address, six colon-separated hex pairs; `None` lets the guest choose.
    pub guest_mac: Option<String>,
}

impl VmSpec {
    /// Checks every field that becomes a path, a process argument or an API value.
    pub fn validate(&self) -> Result<(), VmmError> {
        let invalid = |reason: String| VmmError::InvalidSpec {
            service: self.service.clone(),
            reason,
        };
        validate_service_name(&self.service)?;
        validate_vm_id(&self.vm_id).map_err(invalid)?;
        require_absolute("kernel_path", &self.kernel_path).map_err(invalid)?;
        require_absolute("rootfs_path", &self.rootfs_path).map_err(invalid)?;
        if let Some(log_path) = &self.log_path {
            require_absolute("log_path", log_path).map_err(invalid)?;
        }
        if !(1..=32).contains(&self.vcpus) {
            return Err(invalid(format!(
                "vcpus is {}, expected 1 to 32",
                self.vcpus
            )));
        }
        if self.memory_mib == 0 {
            return Err(invalid("memory_mib is 0, expected at least 1".to_owned()));
        }
        if self.kernel_args.len() > MAX_KERNEL_ARGS_LEN {
            return Err(invalid(format!(
                "kernel_args is {} bytes long, the maximum is {MAX_KERNEL_ARGS_LEN}",
                self.kernel_args.len()
            )));
        }
        if let Some(c) = self
            .kernel_args
            .chars()
            .find(|c| !(c.is_ascii_graphic() || *c == ' '))
        {
            return Err(invalid(format!(
                "kernel_args contains {c:?}, only printable ASCII and spaces are allowed"
            )));
        }
        if let Some(network) = &self.network {
            validate_tap_name(&network.tap_name).map_err(invalid)?;
            if let Some(mac) = &network.guest_mac {
                validate_mac(mac).map_err(invalid)?;
            }
        }
        Ok(())
    }

    /// Returns `sha256:<hex>` of the spec's JSON form, which changes whenever any field does.
    pub fn hash(&self) -> String {
        // Serializing a plain struct of strings, numbers and paths cannot fail unless a path
        // is not UTF-8; hash the debug form in that case so the hash still covers every field.
        let bytes = serde_json::to_vec(self).unwrap_or_else(|_| format!("{self:?}").into_bytes());
        format!("sha256:{:x}", Sha256::digest(&bytes))
    }
}

/// Checks a service name: 1–63 bytes of ASCII alphanumerics, `-` or `_`, starting with an
/// alphanumeric, so that it is safe as a single path component.
pub fn validate_service_name(name: &str) -> Result<(), VmmError> {
    let reason = if name.is_empty() || name.len() > MAX_SERVICE_NAME_LEN {
        Some(format!(
            "service name is {} bytes long, expected 1 to {MAX_SERVICE_NAME_LEN}",
            name.len()
        ))
    } else if !name.as_bytes()[0].is_ascii_alphanumeric() {
        Some("service name must start with an ASCII letter or digit".to_owned())
    } else {
        name.chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
            .map(|c| {
                format!("service name contains {c:?}, only ASCII letters, digits, '-' and '_' are allowed")
            })
    };
    match reason {
        Some(reason) => Err(VmmError::InvalidSpec {
            service: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

fn validate_vm_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_VM_ID_LEN {
        return Err(format!(
            "vm_id is {} bytes long, expected 1 to {MAX_VM_ID_LEN}",
            id.len()
        ));
    }
    match id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
    {
        Some(c) => Err(format!(
            "vm_id contains {c:?}, only ASCII letters, digits and '-' are allowed"
        )),
        None => Ok(()),
    }
}

fn validate_tap_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_TAP_NAME_LEN {
        return Err(format!(
            "tap_name {name:?} is {} bytes long, expected 1 to {MAX_TAP_NAME_LEN}",
            name.len()
        ));
    }
    if name == "." || name == ".." {
        return Err(format!("tap_name {name:?} is not a valid interface name"));
    }
    match name
        .chars()
        .find(|c| !c.is_ascii_graphic() || *c == '/' || *c == ':')
    {
        Some(c) => Err(format!("tap_name {name:?} contains {c:?}")),
        None => Ok(()),
    }
}

fn validate_mac(mac: &str) -> Result<(), String> {
    let groups: Vec<&str> = mac.split(':').collect();
    let valid = groups.len() == 6
        && groups
            .iter()
            .all(|g| g.len() == 2 && g.chars().all(|c| c.is_ascii_hexdigit()));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "guest_mac {mac:?} is invalid, expected six colon-separated hex pairs"
        ))
    }
}

fn require_absolute(field: &str, path: &Path) -> Result<(), String> {
    if path.is_absolute() {
        Ok(())
    } else {
        Err(format!(
            "{field} {} is not an absolute path",
            path.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> VmSpec {
        VmSpec {
            service: "web".to_owned(),
            vm_id: "web-1".to_owned(),
            kernel_path: PathBuf::from("/images/vmlinux"),
            rootfs_path: PathBuf::from("/images/rootfs.ext4"),
            read_only: false,
            vcpus: 2,
            memory_mib: 256,
            kernel_args: "console=ttyS0 reboot=k panic=1".to_owned(),
            network: Some(VmNetwork {
                tap_name: "tap-web".to_owned(),
                guest_mac: Some("06:00:AC:10:00:02".to_owned()),
            }),
            log_path: None,
        }
    }

    fn reason(spec: &VmSpec) -> String {
        match spec.validate() {
            Err(VmmError::InvalidSpec { reason, .. }) => reason,
            other => panic!("expected InvalidSpec, got {other:?}"),
        }
    }

    #[test]
    fn valid_spec_passes() {
        spec().validate().unwrap();
    }

    #[test]
    fn service_names_rejected() {
        for name in ["", "..", "a/b", "-x", "a b", &"x".repeat(64)] {
            let mut s = spec();
            s.service = name.to_owned();
            assert!(s.validate().is_err(), "service name {name:?} was accepted");
        }
    }

    #[test]
    fn vm_id_rules() {
        let mut s = spec();
        s.vm_id = "web_1".to_owned();
        assert_eq!(
            reason(&s),
            "vm_id contains '_', only ASCII letters, digits and '-' are allowed"
        );
        s.vm_id = "a".repeat(65);
        assert_eq!(reason(&s), "vm_id is 65 bytes long, expected 1 to 64");
        s.vm_id = "a".repeat(64);
        s.validate().unwrap();
    }

    #[test]
    fn numeric_limits() {
        let mut s = spec();
        s.vcpus = 0;
        assert_eq!(reason(&s), "vcpus is 0, expected 1 to 32");
        s.vcpus = 33;
        assert_eq!(reason(&s), "vcpus is 33, expected 1 to 32");
        s.vcpus = 1;
        s.memory_mib = 0;
        assert_eq!(reason(&s), "memory_mib is 0, expected at least 1");
    }

    #[test]
    fn kernel_args_rules() {
        let mut s = spec();
        s.kernel_args = "a\nb".to_owned();
        assert_eq!(
            reason(&s),
            "kernel_args contains '\\n', only printable ASCII and spaces are allowed"
        );
        s.kernel_args = "x".repeat(2048);
        assert_eq!(
            reason(&s),
            "kernel_args is 2048 bytes long, the maximum is 2047"
        );
    }

    #[test]
    fn network_rules() {
        let mut s = spec();
        s.network = Some(VmNetwork {
            tap_name: "tap-0123456789ab".to_owned(),
            guest_mac: None,
        });
        assert_eq!(
            reason(&s),
            "tap_name \"tap-0123456789ab\" is 16 bytes long, expected 1 to 15"
        );
        s.network = Some(VmNetwork {
            tap_name: "tap0".to_owned(),
            guest_mac: Some("06:00:AC:10:00".to_owned()),
        });
        assert_eq!(
            reason(&s),
            "guest_mac \"06:00:AC:10:00\" is invalid, expected six colon-separated hex pairs"
        );
    }

    #[test]
    fn relative_paths_rejected() {
        let mut s = spec();
        s.kernel_path = PathBuf::from("vmlinux");
        assert_eq!(reason(&s), "kernel_path vmlinux is not an absolute path");
    }

    #[test]
    fn hash_tracks_every_field() {
        let base = spec().hash();
        assert!(base.starts_with("sha256:"));
        assert_eq!(base.len(), "sha256:".len() + 64);
        assert_eq!(base, spec().hash());
        let mut s = spec();
        s.read_only = true;
        assert_ne!(s.hash(), base);
        let mut s = spec();
        s.network = None;
        assert_ne!(s.hash(), base);
    }
}
