//! The placement index `index.json`: every node with its host IP and the host ports of its
//! services, so an agent reads one object per tick instead of every peer's node config.
//!
//! The format is the one `firework-store` reads (version 1). It carries no time stamp, so it
//! changes only when placements change and is not rewritten on every run.

use std::collections::BTreeMap;

use firework_model::node::NodeConfig;
use serde::{Deserialize, Serialize};

/// The format version written.
pub const INDEX_VERSION: u32 = 1;
/// The object key of the index below the publish prefix.
pub const INDEX_KEY: &str = "index.json";

/// The content of `index.json`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PlacementIndex {
    /// Format version.
    pub version: u32,
    /// When the index was written; not set by the enricher (see the module docs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated_at: Option<String>,
    /// Placements by node name.
    pub nodes: BTreeMap<String, IndexNode>,
}

/// One node's placements.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct IndexNode {
    /// The node's host IP, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    /// The node's services, sorted by name.
    #[serde(default)]
    pub services: Vec<IndexService>,
}

/// One placed service.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct IndexService {
    /// Service name.
    pub name: String,
    /// Host ports forwarded to it, in port-forward order.
    #[serde(default)]
    pub host_ports: Vec<u16>,
    /// Routing metadata (`host`, `subdomain`, `tenant`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

const ROUTING_KEYS: &[&str] = &["host", "subdomain", "tenant"];

/// Builds the index of `configs`.
pub fn build<'a>(configs: impl IntoIterator<Item = &'a NodeConfig>) -> PlacementIndex {
    let mut index = PlacementIndex {
        version: INDEX_VERSION,
        generated_at: None,
        nodes: BTreeMap::new(),
    };
    for config in configs {
        let mut services: Vec<IndexService> = config
            .services
            .iter()
            .map(|service| IndexService {
                name: service.name.clone(),
                host_ports: service.port_forwards.iter().map(|f| f.host_port).collect(),
                metadata: service
                    .metadata
                    .iter()
                    .filter(|(key, _)| ROUTING_KEYS.contains(&key.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            })
            .collect();
        services.sort_by(|a, b| a.name.cmp(&b.name));
        index.nodes.insert(
            config.node.clone().unwrap_or_default(),
            IndexNode {
                host_ip: config.host_ip.map(|ip| ip.to_string()),
                services,
            },
        );
    }
    index
}

/// Serialises the index as pretty JSON with a final newline.
pub fn to_json(index: &PlacementIndex) -> Vec<u8> {
    // Maps of strings and integers always serialise.
    let mut bytes = serde_json::to_vec_pretty(index).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}
