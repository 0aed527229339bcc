//! Inputs of a scheduling pass: live nodes, services to place, the previous placement and
//! the options.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Deserializer, Serialize};

use firework_model::names;
use firework_model::service::Protocol;

use crate::error::ScheduleError;

/// Memory in MiB counted for every VM on top of its `memory_mb`: the Firecracker process
/// itself and what the host spends per guest.
///
/// Firecracker v1.16 states a VMM overhead of at most 5 MiB for a 1-vCPU, 128 MiB guest.
/// NOTE: 32 MiB is an estimate with margin for larger guests (page tables grow with guest
/// memory), the jailer and the host side of virtio queues. It is not a measurement.
pub const DEFAULT_VM_OVERHEAD_MB: u64 = 32;

/// A quantity of CPU and memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// Virtual CPUs.
    pub vcpus: u32,
    /// Memory in MiB.
    pub memory_mb: u64,
}

impl Resources {
    /// Creates a quantity of `vcpus` CPUs and `memory_mb` MiB.
    pub const fn new(vcpus: u32, memory_mb: u64) -> Self {
        Self { vcpus, memory_mb }
    }

    /// Subtracts `other` per dimension, stopping at zero.
    pub const fn saturating_sub(self, other: Self) -> Self {
        Self {
            vcpus: self.vcpus.saturating_sub(other.vcpus),
            memory_mb: self.memory_mb.saturating_sub(other.memory_mb),
        }
    }
}

/// A live node that can receive services.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeCapacity {
    /// Node name, the `<node>` of `nodes/<node>.yaml`.
    pub name: String,
    /// Labels; a service with `node_type` X only goes to nodes whose labels contain X.
    #[serde(default)]
    pub labels: BTreeSet<String>,
    /// Address that peers use to reach the node.
    #[serde(default)]
    pub host_ip: Option<IpAddr>,
    /// Total CPU and memory of the host.
    pub capacity: Resources,
    /// Part of the capacity kept for the host and the agent; never given to services.
    #[serde(default)]
    pub reserved: Resources,
}

impl NodeCapacity {
    /// Creates a node without labels, host address or reserve.
    pub fn new(name: impl Into<String>, vcpus: u32, memory_mb: u64) -> Self {
        Self {
            name: name.into(),
            labels: BTreeSet::new(),
            host_ip: None,
            capacity: Resources::new(vcpus, memory_mb),
            reserved: Resources::default(),
        }
    }

    /// Adds a label.
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.labels.insert(label.into());
        self
    }

    /// Sets the reserve.
    pub fn with_reserved(mut self, vcpus: u32, memory_mb: u64) -> Self {
        self.reserved = Resources::new(vcpus, memory_mb);
        self
    }

    /// Capacity minus the reserve: what services may use.
    pub fn allocatable(&self) -> Resources {
        self.capacity.saturating_sub(self.reserved)
    }
}

/// A service to place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRequest {
    /// Service name, unique among the services of one pass.
    pub name: String,
    /// Virtual CPUs of the VM.
    pub vcpus: u32,
    /// Guest memory in MiB, without the per-VM overhead.
    pub memory_mb: u64,
    /// Node label the service requires; `None` allows every node.
    #[serde(default)]
    pub node_type: Option<String>,
    /// Services sharing a group are never placed on the same node.
    #[serde(default)]
    pub anti_affinity_group: Option<String>,
    /// Host ports the service forwards to its guest. Two services that forward the same port
    /// and protocol are never placed on the same node. Missing in JSON means none.
    #[serde(default)]
    pub host_ports: Vec<HostPort>,
}

impl ServiceRequest {
    /// Creates a service without node type or anti-affinity group.
    pub fn new(name: impl Into<String>, vcpus: u32, memory_mb: u64) -> Self {
        Self {
            name: name.into(),
            vcpus,
            memory_mb,
            node_type: None,
            anti_affinity_group: None,
            host_ports: Vec::new(),
        }
    }

    /// Sets the required node label.
    pub fn with_node_type(mut self, node_type: impl Into<String>) -> Self {
        self.node_type = Some(node_type.into());
        self
    }

    /// Sets the anti-affinity group.
    pub fn with_group(mut self, group: impl Into<String>) -> Self {
        self.anti_affinity_group = Some(group.into());
        self
    }

    /// Adds a host port that the service forwards.
    pub fn with_host_port(mut self, host_port: HostPort) -> Self {
        self.host_ports.push(host_port);
        self
    }

    /// CPU and memory the service takes on a node, per-VM overhead included.
    pub fn demand(&self, options: &ScheduleOptions) -> Resources {
        Resources::new(
            self.vcpus,
            self.memory_mb.saturating_add(options.vm_overhead_mb),
        )
    }
}

/// A port on the node's host that a service forwards to its guest, with the transport
/// protocol. In JSON: `{"port": 8080, "protocol": "tcp"}`, where `protocol` defaults to `tcp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct HostPort {
    /// Port number on the host.
    pub port: u16,
    /// `tcp` or `udp`.
    #[serde(default, deserialize_with = "deserialize_protocol")]
    pub protocol: Protocol,
}

impl HostPort {
    /// Creates a TCP host port.
    pub const fn tcp(port: u16) -> Self {
        Self {
            port,
            protocol: Protocol::Tcp,
        }
    }

    /// Creates a UDP host port.
    pub const fn udp(port: u16) -> Self {
        Self {
            port,
            protocol: Protocol::Udp,
        }
    }
}

impl fmt::Display for HostPort {
    /// Formats the port as the node config parser names it in its errors: `8080 (tcp)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.port, self.protocol)
    }
}

/// Reads `tcp` or `udp`. The model's [`Protocol`] only implements `Serialize`, because node
/// configs are parsed by the model's own decoder.
fn deserialize_protocol<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Protocol, D::Error> {
    let text = String::deserialize(deserializer)?;
    match text.as_str() {
        "tcp" => Ok(Protocol::Tcp),
        "udp" => Ok(Protocol::Udp),
        other => Err(serde::de::Error::invalid_value(
            serde::de::Unexpected::Str(other),
            &"tcp or udp",
        )),
    }
}

/// One entry of the previous placement: `service` ran on `node`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ExistingPlacement {
    /// Service name.
    pub service: String,
    /// Node the service was placed on.
    pub node: String,
}

impl ExistingPlacement {
    /// Creates an entry.
    pub fn new(service: impl Into<String>, node: impl Into<String>) -> Self {
        Self {
            service: service.into(),
            node: node.into(),
        }
    }
}

/// Options of a scheduling pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleOptions {
    /// Memory in MiB added to every VM's `memory_mb`.
    pub vm_overhead_mb: u64,
    /// Prefer the node that stays least loaded (worst fit) instead of best fit when placing
    /// a service. A preference only: capacity, node type, anti-affinity and host ports still
    /// hold, and existing placements that fit are kept either way.
    pub spread: bool,
}

impl Default for ScheduleOptions {
    fn default() -> Self {
        Self {
            vm_overhead_mb: DEFAULT_VM_OVERHEAD_MB,
            spread: false,
        }
    }
}

/// Kind of name, which selects the rule [`validate_name`] applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// A node name, which becomes the file name `nodes/<node>.yaml`.
    Node,
    /// A service name, which becomes a directory, TAP and router name.
    Service,
}

/// Checks a name with the model's rules. A node name is 1 to 253 characters of letters,
/// digits, `.`, `_` and `-` starting with a letter or digit. A service name is a DNS label.
pub fn validate_name(kind: NameKind, name: &str) -> Result<(), ScheduleError> {
    let (kind, checked) = match kind {
        NameKind::Node => ("node", names::check_node_label(name)),
        NameKind::Service => ("service", names::check_service_name(name)),
    };
    checked.map_err(|reason| ScheduleError::InvalidName {
        kind,
        name: name.to_owned(),
        reason,
    })
}
