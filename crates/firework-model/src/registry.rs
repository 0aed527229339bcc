//! Node registry records: the heartbeat each agent publishes for the scheduler.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// CPU and memory amounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Resources {
    /// vCPUs.
    pub vcpus: u32,
    /// Memory in MiB.
    pub memory_mb: u64,
}

/// The record an agent writes to `registry/nodes/<node>.json` on every heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// The node name, the same as the file name without `.json`.
    pub node: String,
    /// The labels the agent reads (`nodes/<label>.yaml`).
    pub labels: Vec<String>,
    /// The address peers use to reach this node's forwarded ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<IpAddr>,
    /// Host capacity.
    pub capacity: Resources,
    /// Capacity kept back for the host itself.
    #[serde(default)]
    pub reserved: Resources,
    /// Capacity the node's VMs use now.
    #[serde(default)]
    pub used: Resources,
    /// The agent's version.
    pub agent_version: String,
    /// Time of the heartbeat, RFC 3339 in UTC.
    pub heartbeat: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips_through_json() {
        let record = NodeRecord {
            node: "node-a".to_string(),
            labels: vec!["web".to_string()],
            host_ip: Some("10.0.0.5".parse().unwrap()),
            capacity: Resources {
                vcpus: 8,
                memory_mb: 16384,
            },
            reserved: Resources {
                vcpus: 1,
                memory_mb: 1024,
            },
            used: Resources::default(),
            agent_version: "0.1.0".to_string(),
            heartbeat: "2026-12-04T20:00:00Z".to_string(),
        };
        let text = serde_json::to_string(&record).unwrap();
        let back: NodeRecord = serde_json::from_str(&text).unwrap();
        assert_eq!(back, record);
    }
}
