//! The values the planner compares: the fingerprint of a desired VM, the desired VM itself,
//! and what is known about a VM that exists.

use std::net::Ipv4Addr;

use firework_vmm::{RecordState, VmSpec};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Everything about a service that reaches Firecracker or the host network. Two VMs with
/// equal fingerprints are interchangeable; any difference means the VM is replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// Kernel path.
    pub kernel: String,
    /// Root file system image path.
    pub image: String,
    /// Content version of the image, from the image sync step.
    pub image_version: String,
    /// vCPU count.
    pub vcpus: u32,
    /// Memory in MiB.
    pub memory_mb: u32,
    /// The complete kernel command line after `ip=` and environment injection.
    pub kernel_args: String,
    /// The network identity, when the service is networked.
    pub network: Option<NetworkFingerprint>,
    /// Port forwards as `<host>:<vm>/<protocol>`, in config order.
    pub port_forwards: Vec<String>,
    /// The health check as JSON, when configured.
    pub health_check: Option<String>,
}

/// The network part of a [`Fingerprint`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkFingerprint {
    /// Host TAP device.
    pub tap: String,
    /// Guest MAC address.
    pub mac: String,
    /// Guest IPv4 address.
    pub guest_ip: Ipv4Addr,
}

impl Fingerprint {
    /// Returns `sha256:<hex>` of the fingerprint's JSON form.
    pub fn hash(&self) -> String {
        let bytes = serde_json::to_vec(self).unwrap_or_else(|_| format!("{self:?}").into_bytes());
        format!("sha256:{:x}", Sha256::digest(&bytes))
    }

    /// Returns the names of the fields that differ from `other`, in declaration order.
    pub fn changed_fields(&self, other: &Fingerprint) -> Vec<&'static str> {
        let mut changed = Vec::new();
        if self.kernel != other.kernel {
            changed.push("kernel");
        }
        if self.image != other.image {
            changed.push("image");
        }
        if self.image_version != other.image_version {
            changed.push("image_version");
        }
        if self.vcpus != other.vcpus {
            changed.push("vcpus");
        }
        if self.memory_mb != other.memory_mb {
            changed.push("memory_mb");
        }
        if self.kernel_args != other.kernel_args {
            changed.push("kernel_args");
        }
        if self.network != other.network {
            changed.push("network");
        }
        if self.port_forwards != other.port_forwards {
            changed.push("port_forwards");
        }
        if self.health_check != other.health_check {
            changed.push("health_check");
        }
        changed
    }
}

/// One service as this node should run it, resolved for this tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredVm {
    /// Service name.
    pub service: String,
    /// The label whose node config defines the service.
    pub label: String,
    /// The revision of that label.
    pub revision: String,
    /// The compared fields.
    pub fingerprint: Fingerprint,
    /// [`Fingerprint::hash`] of `fingerprint`.
    pub hash: String,
    /// What the VM runtime launches.
    pub vm: VmSpec,
    /// [`VmSpec::hash`] of `vm`, compared with the hash the runtime recorded at start.
    pub vm_hash: String,
    /// The health check the monitor probes after the start.
    pub health_check: Option<firework_model::service::HealthCheck>,
}

/// What the agent recorded before it last started a service's VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    /// The label the service came from.
    pub label: String,
    /// The label's revision at that time.
    pub revision: String,
    /// [`Fingerprint::hash`] of `fingerprint`.
    pub hash: String,
    /// The fingerprint the VM was started with.
    pub fingerprint: Fingerprint,
}

/// A VM that exists on the node, as the VM runtime and the agent's intent records see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActualVm {
    /// Service name.
    pub service: String,
    /// Lifecycle state from the runtime's record.
    pub state: RecordState,
    /// Process id, once spawned.
    pub pid: Option<i32>,
    /// The runtime's hash of the spec the VM was started with.
    pub vm_hash: String,
    /// The agent's record of the start, if it has one.
    pub intent: Option<Intent>,
}

impl ActualVm {
    /// Returns whether the VM is up or on its way up or down, so that it uses the host's
    /// resources.
    pub fn is_live(&self) -> bool {
        matches!(
            self.state,
            RecordState::Running | RecordState::Starting | RecordState::Stopping
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Fingerprint {
        Fingerprint {
            kernel: "/k".to_owned(),
            image: "/i".to_owned(),
            image_version: "1-1".to_owned(),
            vcpus: 1,
            memory_mb: 128,
            kernel_args: "console=ttyS0".to_owned(),
            network: Some(NetworkFingerprint {
                tap: "fw-a".to_owned(),
                mac: "02:fc:00:00:00:02".to_owned(),
                guest_ip: Ipv4Addr::new(172, 16, 0, 2),
            }),
            port_forwards: vec!["80:8080/tcp".to_owned()],
            health_check: Some("{\"type\":\"tcp\",\"port\":8080}".to_owned()),
        }
    }

    #[test]
    fn every_field_changes_hash_and_is_named() {
        type Change = fn(&mut Fingerprint);
        let cases: [(&str, Change); 9] = [
            ("kernel", |f| f.kernel = "/k2".to_owned()),
            ("image", |f| f.image = "/i2".to_owned()),
            ("image_version", |f| f.image_version = "2-2".to_owned()),
            ("vcpus", |f| f.vcpus = 2),
            ("memory_mb", |f| f.memory_mb = 256),
            ("kernel_args", |f| f.kernel_args.push_str(" quiet")),
            ("network", |f| f.network = None),
            ("port_forwards", |f| f.port_forwards.clear()),
            ("health_check", |f| f.health_check = None),
        ];
        let original = base();
        for (field, change) in cases {
            let mut changed = base();
            change(&mut changed);
            assert_ne!(changed.hash(), original.hash(), "{field}");
            assert_eq!(changed.changed_fields(&original), vec![field]);
        }
        assert_eq!(base().hash(), original.hash());
        assert!(base().changed_fields(&original).is_empty());
    }
}
