//! The placement index: one object listing every node's services and host ports.
//!
//! The enricher publishes it as `<prefix>index.json` whenever it writes node configs, so an
//! agent learns all peers' routes with one conditional read instead of reading every node config.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::store::Revision;

/// The current format version of [`PlacementIndex`].
pub const INDEX_VERSION: u32 = 1;

/// The content of `index.json`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlacementIndex {
    /// The format version; readers reject versions they do not know.
    pub version: u32,
    /// When the enricher wrote the index, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated_at: Option<String>,
    /// The placements, keyed by node name.
    pub nodes: BTreeMap<String, IndexNode>,
}

/// The placements of one node.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexNode {
    /// The node's private IP that peers route to; `None` until the node has registered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<IpAddr>,
    /// The services placed on the node, sorted by name.
    #[serde(default)]
    pub services: Vec<IndexService>,
}

/// One placed service as peers see it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexService {
    /// The service name.
    pub name: String,
    /// The host ports forwarded to the service, in port-forward order.
    #[serde(default)]
    pub host_ports: Vec<u16>,
    /// Routing metadata copied from the service, such as `host` and `subdomain`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

impl PlacementIndex {
    /// Parses and checks the version of an index document.
    pub fn from_json(bytes: &[u8]) -> Result<PlacementIndex, String> {
        let index: PlacementIndex =
            serde_json::from_slice(bytes).map_err(|e| format!("invalid index JSON: {e}"))?;
        if index.version != INDEX_VERSION {
            return Err(format!(
                "unsupported index version {}, expected {INDEX_VERSION}",
                index.version
            ));
        }
        Ok(index)
    }

    /// Serializes the index as pretty JSON.
    pub fn to_json(&self) -> Vec<u8> {
        // serde_json fails only on non-string map keys or failing `Serialize` impls, and this
        // type has neither.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }
}

/// The placement index as read, with its revision.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexSnapshot {
    /// The revision of the index content.
    pub revision: Revision,
    /// The parsed index.
    pub index: Arc<PlacementIndex>,
    /// False when the store found the index unchanged since the previous read and returned
    /// its cached copy without downloading it.
    pub changed: bool,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn index_round_trips() {
        let mut index = PlacementIndex {
            version: INDEX_VERSION,
            generated_at: Some("2026-12-04T20:00:00Z".to_owned()),
            nodes: BTreeMap::new(),
        };
        index.nodes.insert(
            "node-a".to_owned(),
            IndexNode {
                host_ip: Some("10.0.0.5".parse().unwrap()),
                services: vec![IndexService {
                    name: "web".to_owned(),
                    host_ports: vec![8080],
                    metadata: BTreeMap::from([("host".to_owned(), "web.example".to_owned())]),
                }],
            },
        );
        let parsed = PlacementIndex::from_json(&index.to_json()).unwrap();
        assert_eq!(parsed, index);
    }

    #[test]
    fn index_rejects_unknown_version() {
        let error = PlacementIndex::from_json(br#"{"version": 2, "nodes": {}}"#).unwrap_err();
        assert_eq!(error, "unsupported index version 2, expected 1");
    }

    #[test]
    fn index_rejects_missing_nodes() {
        let error = PlacementIndex::from_json(br#"{"version": 1}"#).unwrap_err();
        assert!(error.contains("missing field `nodes`"), "{error}");
    }
}
