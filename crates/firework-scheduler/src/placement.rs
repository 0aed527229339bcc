//! Result of a scheduling pass.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::request::{HostPort, Resources};

/// Number of nodes that [`UnplacedReason::HostPortConflict`] names in its message; the
/// structure keeps all of them.
const PORT_CONFLICTS_SHOWN: usize = 10;

/// Result of [`schedule`](crate::schedule): where each service goes, what could not be
/// placed and which services changed node. Every list is sorted by service name (nodes by
/// node name), so equal inputs give byte-identical serialisations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// One entry per placed service.
    pub assignments: Vec<Assignment>,
    /// Services that fit on no node, with the reason.
    pub unplaced: Vec<Unplaced>,
    /// Services whose previous node differs from the new one, or that lost their node.
    pub moves: Vec<Move>,
    /// Allocatable and used resources of every live node after the pass.
    pub nodes: Vec<NodeUsage>,
}

impl Placement {
    /// Returns the node `service` was assigned to.
    pub fn node_of(&self, service: &str) -> Option<&str> {
        self.assignments
            .binary_search_by(|a| a.service.as_str().cmp(service))
            .ok()
            .map(|i| self.assignments[i].node.as_str())
    }

    /// Groups the assigned service names by node, nodes and services in name order. Nodes
    /// without services are left out.
    pub fn by_node(&self) -> BTreeMap<&str, Vec<&str>> {
        let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for assignment in &self.assignments {
            groups
                .entry(assignment.node.as_str())
                .or_default()
                .push(assignment.service.as_str());
        }
        groups
    }

    /// True when every service was placed.
    pub fn is_complete(&self) -> bool {
        self.unplaced.is_empty()
    }
}

/// A service and the node it runs on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    /// Service name.
    pub service: String,
    /// Node name.
    pub node: String,
    /// Whether the service stayed on its previous node.
    pub kept: bool,
}

/// A service that no node can take.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unplaced {
    /// Service name.
    pub service: String,
    /// Reason no node can take it.
    pub reason: UnplacedReason,
}

/// Reason a service was not placed. The checks run in this order over the live nodes: node
/// type, then anti-affinity on the nodes of that type, then host ports on the nodes that
/// anti-affinity allows, then capacity on the nodes left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum UnplacedReason {
    /// No live node carries the label the service requires.
    NoLiveNodeOfType {
        /// The required label.
        node_type: String,
    },
    /// Every live node of the right type already runs a service of the same group.
    AntiAffinity {
        /// The anti-affinity group.
        group: String,
    },
    /// Every live node of the right type that anti-affinity allows already forwards one of
    /// the service's host ports for another service.
    HostPortConflict {
        /// One entry per node, in node-name order.
        conflicts: Vec<PortConflict>,
    },
    /// No allowed node has enough free CPU.
    InsufficientCpu {
        /// vCPUs requested.
        requested: u32,
        /// Most free vCPUs on an allowed node.
        max_free: u32,
    },
    /// No allowed node has enough free memory.
    InsufficientMemory {
        /// MiB requested, per-VM overhead included.
        requested_mb: u64,
        /// Most free MiB on an allowed node.
        max_free_mb: u64,
    },
    /// Some allowed nodes have enough CPU and others enough memory, but none has both.
    InsufficientCpuAndMemory {
        /// CPU and memory requested, per-VM overhead included.
        requested: Resources,
    },
}

impl fmt::Display for UnplacedReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoLiveNodeOfType { node_type } => {
                write!(f, "no live node has label {node_type:?}")
            }
            Self::AntiAffinity { group } => write!(
                f,
                "every live node of its type already runs a service of anti-affinity group {group:?}"
            ),
            Self::HostPortConflict { conflicts } => {
                f.write_str("every allowed node already forwards one of its host ports: ")?;
                for (i, conflict) in conflicts.iter().take(PORT_CONFLICTS_SHOWN).enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{conflict}")?;
                }
                if conflicts.len() > PORT_CONFLICTS_SHOWN {
                    write!(
                        f,
                        " and {} more nodes",
                        conflicts.len() - PORT_CONFLICTS_SHOWN
                    )?;
                }
                Ok(())
            }
            Self::InsufficientCpu {
                requested,
                max_free,
            } => write!(
                f,
                "insufficient CPU: requested {requested} vCPUs, at most {max_free} free on an allowed node"
            ),
            Self::InsufficientMemory {
                requested_mb,
                max_free_mb,
            } => write!(
                f,
                "insufficient memory: requested {requested_mb} MiB with overhead, at most {max_free_mb} MiB free on an allowed node"
            ),
            Self::InsufficientCpuAndMemory { requested } => write!(
                f,
                "insufficient CPU and memory: no allowed node has both {} vCPUs and {} MiB free",
                requested.vcpus, requested.memory_mb
            ),
        }
    }
}

/// A node that cannot take a service because another service there forwards the same host
/// port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortConflict {
    /// Node name.
    pub node: String,
    /// The first of the service's host ports, in port order, that the node already forwards.
    pub host_port: HostPort,
    /// The service on the node that forwards it.
    pub service: String,
}

impl fmt::Display for PortConflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "host port {} by {:?} on {}",
            self.host_port, self.service, self.node
        )
    }
}

/// A service that leaves its previous node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Move {
    /// Service name.
    pub service: String,
    /// Previous node.
    pub from: String,
    /// New node; `None` when the service is now unplaced.
    pub to: Option<String>,
    /// Reason the service could not stay.
    pub reason: MoveReason,
}

/// Reason a service could not stay on its previous node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum MoveReason {
    /// The previous node is not live (stale heartbeat, or no registry record).
    NodeNotLive,
    /// The previous node no longer carries the label the service requires.
    NodeTypeMismatch {
        /// The required label.
        node_type: String,
    },
    /// Another service of the same anti-affinity group stays on the previous node.
    AntiAffinity {
        /// The anti-affinity group.
        group: String,
        /// The service that stays.
        kept: String,
    },
    /// A service kept on the previous node before it forwards one of its host ports.
    HostPortConflict {
        /// The first shared host port, in port order.
        host_port: HostPort,
        /// The service that stays.
        kept: String,
    },
    /// The previous node has no room left for it.
    InsufficientCapacity,
}

impl fmt::Display for MoveReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NodeNotLive => f.write_str("previous node is not live"),
            Self::NodeTypeMismatch { node_type } => {
                write!(f, "previous node no longer has label {node_type:?}")
            }
            Self::AntiAffinity { group, kept } => write!(
                f,
                "{kept:?} of anti-affinity group {group:?} stays on the previous node"
            ),
            Self::HostPortConflict { host_port, kept } => write!(
                f,
                "{kept:?} forwarding host port {host_port} stays on the previous node"
            ),
            Self::InsufficientCapacity => f.write_str("previous node has no room left"),
        }
    }
}

/// Resources of one node after the pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeUsage {
    /// Node name.
    pub node: String,
    /// Capacity minus reserve.
    pub allocatable: Resources,
    /// Sum of the demands of the services assigned to the node, per-VM overhead included.
    pub used: Resources,
    /// Number of services assigned.
    pub services: usize,
}
