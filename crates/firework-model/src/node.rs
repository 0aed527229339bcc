//! Resolved node configs (`nodes/<label>.yaml`): what the agent runs on one label.
//!
//! A file that is empty or has no `services` key is an error, so that a truncated file never
//! reads as "delete every VM". An explicit `services: []` is valid and means "run nothing on
//! this label".

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use serde::Serialize;

use crate::decode::{Decoder, Fields, Schema, index};
use crate::diagnostic::{ConfigError, Parsed};
use crate::names;
use crate::service::{CrossNodeLink, HealthCheck, Link, PortForward, Protocol};
use crate::yaml::{self, Node, Position};

/// One node config file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeConfig {
    /// The node or label name; informational for the agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The node's host IP, which peers use for remote routes and cross-node links.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<IpAddr>,
    /// The source commit the enricher rendered this file from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_commit: Option<String>,
    /// The services to run, in file order.
    pub services: Vec<Service>,
}

/// One service as the agent runs it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Service {
    /// A DNS label, unique on the node.
    pub name: String,
    /// Root filesystem image on the host (absolute path).
    pub image: String,
    /// Uncompressed kernel on the host (absolute path).
    pub kernel: String,
    /// vCPU count, 1 to 32.
    pub vcpus: u32,
    /// Memory in MiB.
    pub memory_mb: u32,
    /// Boot arguments; `--` separates kernel arguments from the init's arguments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_args: Option<String>,
    /// Networking; present means the service gets a TAP and a guest address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkSpec>,
    /// Host ports forwarded to the guest.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub port_forwards: Vec<PortForward>,
    /// Health check that probes the guest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// Environment for the guest, delivered through the boot arguments.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Links to services on the same node.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Link>,
    /// Free-form labels; `host`, `subdomain` and `tenant` have a meaning.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Scheduler hint: never two services of one group on a node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anti_affinity_group: Option<String>,
    /// Links to services on other nodes, resolved by the enricher.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cross_node_links: Vec<CrossNodeLink>,
    /// Environment variable that the enricher fills with the node's host IP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_host_ip_env: Option<String>,
    /// The node type the service was grouped by; informational for the agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_type: Option<String>,
}

/// A service's network block. Guest IP and MAC are assigned by the agent.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct NetworkSpec {
    /// A TAP name requested by the config; the agent derives one when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Host NIC of the Go firework's per-service bridge mode; accepted and unused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_dev_name: Option<String>,
    /// Guest MAC written in the config; the agent's assignment replaces it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guest_mac: Option<String>,
    /// Guest IP written in the config; the agent's assignment replaces it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guest_ip: Option<String>,
}

const NODE_KEYS: &[&str] = &[
    "node",
    "host_ip",
    "services",
    "source_commit",
    "desired_revision",
    "placement_revision",
    "rendered_revision",
];

pub(crate) const SERVICE_KEYS: &[&str] = &[
    "name",
    "image",
    "kernel",
    "vcpus",
    "memory_mb",
    "kernel_args",
    "network",
    "port_forwards",
    "health_check",
    "env",
    "links",
    "metadata",
    "anti_affinity_group",
    "cross_node_links",
    "node_host_ip_env",
    "node_type",
];

/// Keys that only CI tools read: accepted with a warning.
pub(crate) const CI_ONLY_KEYS: &[&str] = &["source_image", "rootfs_size_mb"];

const NETWORK_KEYS: &[&str] = &["interface", "host_dev_name", "guest_mac", "guest_ip"];

/// Exceptions that [`parse_node_config_with`] allows beyond a node config that one agent
/// runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeConfigRules {
    /// Lets two services forward the same host port and protocol, as in the services a
    /// scheduler places, which it keeps on different nodes. One service that forwards a
    /// host port twice is still rejected.
    pub shared_host_ports: bool,
}

/// Parses and validates one node config. `file` names it in diagnostics.
pub fn parse_node_config(bytes: &[u8], file: &str) -> Result<Parsed<NodeConfig>, ConfigError> {
    parse_node_config_with(bytes, file, NodeConfigRules::default())
}

/// Parses and validates one node config under `rules`. `file` names it in diagnostics.
pub fn parse_node_config_with(
    bytes: &[u8],
    file: &str,
    rules: NodeConfigRules,
) -> Result<Parsed<NodeConfig>, ConfigError> {
    let mut decoder = Decoder::new(file);
    let config = decode_document(&mut decoder, bytes, rules);
    match config {
        Some(config) => ConfigError::check(decoder.findings, config),
        None => Err(ConfigError::Invalid {
            file: file.to_string(),
            diagnostics: decoder.findings.into_vec(),
        }),
    }
}

fn decode_document(
    decoder: &mut Decoder,
    bytes: &[u8],
    rules: NodeConfigRules,
) -> Option<NodeConfig> {
    let top = Position { line: 1, column: 1 };
    let Ok(text) = std::str::from_utf8(bytes) else {
        decoder.error(
            "invalid-encoding",
            "",
            top,
            "the file is not valid UTF-8".to_string(),
        );
        return None;
    };
    let root = match yaml::parse(text) {
        Ok(Some(root)) => root,
        Ok(None) => {
            decoder.error(
                "empty-file",
                "",
                top,
                "the file is empty; write `services: []` to run nothing on this label".to_string(),
            );
            return None;
        }
        Err(error) => {
            decoder.error(
                "invalid-yaml",
                "",
                error.position,
                format!("invalid YAML: {}", error.message),
            );
            return None;
        }
    };
    if root.is_null() {
        decoder.error(
            "empty-file",
            "",
            root.position,
            "the document is empty; write `services: []` to run nothing on this label".to_string(),
        );
        return None;
    }
    let fields = decoder.mapping(&root, "", Schema::closed(NODE_KEYS))?;
    decode_node_config(decoder, &fields, rules)
}

fn decode_node_config(
    decoder: &mut Decoder,
    fields: &Fields<'_>,
    rules: NodeConfigRules,
) -> Option<NodeConfig> {
    let node = decoder.checked_string(fields, "node", "node name", false, names::check_node_label);
    let host_ip = decoder.opt_ip(fields, "host_ip");
    let source_commit = decoder.opt_string(fields, "source_commit");
    let services = match fields.raw("services") {
        None => {
            decoder.error(
                "missing",
                "services",
                fields.position,
                "missing required key `services`; write `services: []` to run nothing on this label"
                    .to_string(),
            );
            return None;
        }
        Some(node) if node.is_null() => {
            decoder.error(
                "missing",
                "services",
                node.position,
                "`services` is null; write `services: []` to run nothing on this label".to_string(),
            );
            return None;
        }
        Some(node) => decode_services(decoder, node, rules),
    };
    Some(NodeConfig {
        node,
        host_ip,
        source_commit,
        services,
    })
}

fn decode_services(decoder: &mut Decoder, node: &Node, rules: NodeConfigRules) -> Vec<Service> {
    let mut services = Vec::new();
    let mut names_seen: HashMap<String, usize> = HashMap::new();
    let mut host_ports: HashMap<(u16, Protocol), String> = HashMap::new();
    for (i, item) in decoder.sequence(node, "services").iter().enumerate() {
        let path = index("services", i);
        let decoded = decode_service(decoder, item, &path);
        // Names and host ports are compared even for services with other errors, so that
        // one run reports every conflict.
        if let Some((name, position)) = &decoded.name {
            if let Some(first) = names_seen.get(name) {
                decoder.error(
                    "duplicate-name",
                    &format!("{path}.name"),
                    *position,
                    format!("duplicate service name {name:?}: services[{first}] already uses it"),
                );
            } else {
                names_seen.insert(name.clone(), i);
            }
        }
        if rules.shared_host_ports {
            // Only the forwards of this one service are compared with each other.
            host_ports.clear();
        }
        let owner = decoded
            .name
            .as_ref()
            .map_or_else(|| path.clone(), |(name, _)| name.clone());
        for (j, (forward, position)) in decoded.port_forwards.iter().enumerate() {
            let key = (forward.host_port, forward.protocol);
            match host_ports.get(&key) {
                Some(first_owner) => decoder.error(
                    "duplicate-host-port",
                    &format!("{path}.port_forwards[{j}].host_port"),
                    *position,
                    format!(
                        "host port {} ({}) is already forwarded by service {first_owner:?}",
                        forward.host_port, forward.protocol
                    ),
                ),
                None => {
                    host_ports.insert(key, owner.clone());
                }
            }
        }
        if let Some(service) = decoded.service {
            services.push(service);
        }
    }
    services
}

/// One service of a node config as far as it could be read.
struct DecodedService {
    /// The whole service, when it has no errors.
    service: Option<Service>,
    /// The name and where it is written, when the name is valid.
    name: Option<(String, Position)>,
    /// The valid port forwards and where each is written.
    port_forwards: Vec<(PortForward, Position)>,
}

fn decode_service(decoder: &mut Decoder, node: &Node, path: &str) -> DecodedService {
    let schema = Schema {
        known: SERVICE_KEYS,
        ci_only: CI_ONLY_KEYS,
        open: false,
    };
    let Some(fields) = decoder.mapping(node, path, schema) else {
        return DecodedService {
            service: None,
            name: None,
            port_forwards: Vec::new(),
        };
    };
    let errors_before = decoder.error_count();
    let name = decoder.checked_string(
        &fields,
        "name",
        "service name",
        true,
        names::check_service_name,
    );
    let name_position = fields.get("name").map_or(fields.position, |n| n.position);
    let image =
        decoder.checked_string(&fields, "image", "image path", true, names::check_host_path);
    let kernel = decoder.checked_string(
        &fields,
        "kernel",
        "kernel path",
        true,
        names::check_host_path,
    );
    let vcpus = decoder.vcpus(&fields);
    if !fields.contains("vcpus") {
        decoder.error(
            "missing",
            &fields.path_of("vcpus"),
            fields.position,
            "missing required key `vcpus`".to_string(),
        );
    }
    let memory_mb = decoder.memory_mb(&fields);
    if !fields.contains("memory_mb") {
        decoder.error(
            "missing",
            &fields.path_of("memory_mb"),
            fields.position,
            "missing required key `memory_mb`".to_string(),
        );
    }
    let kernel_args = decoder.opt_string(&fields, "kernel_args");
    let network = decode_network(decoder, &fields);
    let forwards = fields
        .get("port_forwards")
        .map(|n| decoder.port_forwards(n, &fields.path_of("port_forwards")))
        .unwrap_or_default();
    let mut health_check = fields
        .get("health_check")
        .and_then(|n| decoder.health_check(n, &fields.path_of("health_check")));
    if health_check.is_some() && network.is_none() {
        let at = fields
            .get("health_check")
            .map_or(fields.position, |n| n.position);
        decoder.warning(
            "health-check-without-network",
            &fields.path_of("health_check"),
            at,
            "the service has no network, so its health check cannot reach it and is ignored"
                .to_string(),
        );
        health_check = None;
    }
    let env = fields
        .get("env")
        .map(|n| decoder.env(n, &fields.path_of("env")))
        .unwrap_or_default();
    let links = fields
        .get("links")
        .map(|n| decoder.links(n, &fields.path_of("links")))
        .unwrap_or_default();
    let metadata = fields
        .get("metadata")
        .map(|n| decoder.metadata(n, &fields.path_of("metadata")))
        .unwrap_or_default();
    let anti_affinity_group = decoder.checked_string(
        &fields,
        "anti_affinity_group",
        "anti-affinity group",
        false,
        names::check_node_label,
    );
    let cross_node_links = fields
        .get("cross_node_links")
        .map(|n| decoder.cross_node_links(n, &fields.path_of("cross_node_links")))
        .unwrap_or_default();
    let node_host_ip_env = decoder.checked_string(
        &fields,
        "node_host_ip_env",
        "environment variable name",
        false,
        names::check_env_key,
    );
    let node_type = decoder.opt_string(&fields, "node_type");
    let named = name.clone().map(|name| (name, name_position));
    let complete = decoder.error_count() == errors_before;
    let service = match (complete, name, image, kernel, vcpus, memory_mb) {
        (true, Some(name), Some(image), Some(kernel), Some(vcpus), Some(memory_mb)) => {
            Some(Service {
                name,
                image,
                kernel,
                vcpus,
                memory_mb,
                kernel_args,
                network,
                port_forwards: forwards
                    .iter()
                    .map(|(forward, _)| forward.clone())
                    .collect(),
                health_check,
                env,
                links,
                metadata,
                anti_affinity_group,
                cross_node_links,
                node_host_ip_env,
                node_type,
            })
        }
        _ => None,
    };
    DecodedService {
        service,
        name: named,
        port_forwards: forwards,
    }
}

fn decode_network(decoder: &mut Decoder, fields: &Fields<'_>) -> Option<NetworkSpec> {
    let node = fields.raw("network")?;
    let path = fields.path_of("network");
    // `network: true` and `network: false` are accepted as in enricher specs; a null value
    // means no network, as in the Go firework.
    if node.is_null() {
        return None;
    }
    if node.as_scalar().is_some() {
        let on = decoder.boolean(node, &path)?;
        return on.then(NetworkSpec::default);
    }
    let network = decoder.mapping(node, &path, Schema::closed(NETWORK_KEYS))?;
    let interface = decoder.checked_string(
        &network,
        "interface",
        "interface name",
        false,
        names::check_interface_name,
    );
    let host_dev_name = decoder.checked_string(
        &network,
        "host_dev_name",
        "interface name",
        false,
        names::check_interface_name,
    );
    let guest_mac = decoder.checked_string(
        &network,
        "guest_mac",
        "MAC address",
        false,
        names::check_mac,
    );
    let guest_ip = decoder.checked_string(&network, "guest_ip", "guest IP", false, |text| {
        names::parse_guest_ip(text).map(|_| ())
    });
    Some(NetworkSpec {
        interface,
        host_dev_name,
        guest_mac,
        guest_ip,
    })
}

/// A node config that could not be written as YAML.
#[derive(Debug, thiserror::Error)]
#[error("failed to serialize node config {node:?} as YAML")]
pub struct NodeConfigWriteError {
    /// The config's `node` value.
    pub node: Option<String>,
    /// The serializer's error.
    #[source]
    pub source: serde_saphyr::SerializeError,
}

/// Writes a node config as YAML that [`parse_node_config`] reads back to an equal value.
pub fn to_yaml(config: &NodeConfig) -> Result<String, NodeConfigWriteError> {
    serde_saphyr::to_string(config).map_err(|source| NodeConfigWriteError {
        node: config.node.clone(),
        source,
    })
}
