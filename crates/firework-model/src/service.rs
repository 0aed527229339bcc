//! The parts of a service that node configs and enricher specs share, and how each is read.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::decode::{Decoder, Fields, Schema, index, join};
use crate::duration::GoDuration;
use crate::names;
use crate::yaml::{Node, Position};

/// Firecracker's limit on vCPUs per microVM.
pub const MAX_VCPUS: u32 = 32;

/// Health check defaults, the same as the Go firework's.
pub const DEFAULT_HEALTH_INTERVAL: GoDuration = GoDuration::from_secs(10);
/// Default time one probe may take.
pub const DEFAULT_HEALTH_TIMEOUT: GoDuration = GoDuration::from_secs(5);
/// Default number of consecutive failed probes before a restart.
pub const DEFAULT_HEALTH_RETRIES: u32 = 3;

/// Transport protocol of a port forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP, the default.
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    fn is_tcp(&self) -> bool {
        *self == Protocol::Tcp
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

/// A host port forwarded to a port of the guest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct PortForward {
    /// Port on the host.
    pub host_port: u16,
    /// Port in the guest.
    pub vm_port: u16,
    /// `tcp` (default) or `udp`.
    #[serde(skip_serializing_if = "Protocol::is_tcp")]
    pub protocol: Protocol,
}

/// Probe kind of a health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthCheckType {
    /// HTTP GET; 2xx and 3xx are healthy unless `expected_status` is set.
    Http,
    /// TCP connect.
    Tcp,
}

/// A service's health check, with every default applied.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct HealthCheck {
    /// `http` or `tcp`.
    #[serde(rename = "type")]
    pub kind: HealthCheckType,
    /// An explicit probe target (a URL for http, `host:port` for tcp) instead of port and path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Guest port to probe.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// HTTP path, starting with `/`; `/` when not written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Time between probes.
    pub interval: GoDuration,
    /// Time one probe may take.
    pub timeout: GoDuration,
    /// Consecutive failures before the VM is restarted.
    pub retries: u32,
    /// Time after start during which failed probes do not count.
    #[serde(skip_serializing_if = "GoDuration::is_zero")]
    pub start_period: GoDuration,
    /// Consecutive successes needed to count as healthy.
    #[serde(skip_serializing_if = "is_one")]
    pub success_threshold: u32,
    /// The only HTTP status that counts as healthy, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_status: Option<u16>,
}

fn is_one(value: &u32) -> bool {
    *value == 1
}

/// A same-node link: the agent sets `env` to `<protocol>://<target guest ip>:<port>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Link {
    /// The target service.
    pub service: String,
    /// The environment variable that receives the address.
    pub env: String,
    /// The target's guest port.
    pub port: u16,
    /// URL scheme; `http` when not written.
    pub protocol: String,
}

/// A link to a service on another node, resolved by the enricher to `<host_ip>:<host_port>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct CrossNodeLink {
    /// The target service.
    pub service: String,
    /// The environment variable that receives the address.
    pub env: String,
    /// The host port the target forwards.
    pub host_port: u16,
    /// URL scheme; without it the value is a bare `ip:port`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}

pub(crate) const PORT_FORWARD_KEYS: &[&str] = &["host_port", "vm_port", "protocol"];
pub(crate) const HEALTH_CHECK_KEYS: &[&str] = &[
    "type",
    "target",
    "port",
    "path",
    "interval",
    "timeout",
    "retries",
    "start_period",
    "success_threshold",
    "expected_status",
];
const LINK_KEYS: &[&str] = &["service", "env", "port", "protocol"];
const CROSS_NODE_LINK_KEYS: &[&str] = &["service", "env", "host_port", "protocol"];

impl Decoder {
    /// Reads a port number field (1 to 65535).
    pub(crate) fn port(&mut self, fields: &Fields<'_>, key: &str, required: bool) -> Option<u16> {
        let path = fields.path_of(key);
        let Some(node) = fields.get(key) else {
            if required {
                self.error(
                    "missing",
                    &path,
                    fields.position,
                    format!("missing required key `{key}`"),
                );
            }
            return None;
        };
        let value: u32 = self.integer(node, &path)?;
        if (1..=65535).contains(&value) {
            Some(value as u16)
        } else {
            self.error(
                "invalid-port",
                &path,
                node.position,
                format!("invalid port {value}: allowed 1 to 65535"),
            );
            None
        }
    }

    /// Reads `port_forwards`.
    pub(crate) fn port_forwards(
        &mut self,
        node: &Node,
        path: &str,
    ) -> Vec<(PortForward, Position)> {
        let mut out = Vec::new();
        for (i, item) in self.sequence(node, path).iter().enumerate() {
            let item_path = index(path, i);
            let Some(fields) = self.mapping(item, &item_path, Schema::closed(PORT_FORWARD_KEYS))
            else {
                continue;
            };
            let host_port = self.port(&fields, "host_port", true);
            let vm_port = self.port(&fields, "vm_port", true);
            let protocol = self.protocol(&fields);
            if let (Some(host_port), Some(vm_port), Some(protocol)) = (host_port, vm_port, protocol)
            {
                out.push((
                    PortForward {
                        host_port,
                        vm_port,
                        protocol,
                    },
                    item.position,
                ));
            }
        }
        out
    }

    fn protocol(&mut self, fields: &Fields<'_>) -> Option<Protocol> {
        let Some(node) = fields.get("protocol") else {
            return Some(Protocol::Tcp);
        };
        let path = fields.path_of("protocol");
        match self.string(node, &path)?.as_str() {
            "tcp" | "" => Some(Protocol::Tcp),
            "udp" => Some(Protocol::Udp),
            other => {
                self.error(
                    "invalid-value",
                    &path,
                    node.position,
                    format!("invalid protocol {other:?}: allowed tcp or udp"),
                );
                None
            }
        }
    }

    /// Reads a health check and applies the defaults. Returns `None` when it is invalid.
    pub(crate) fn health_check(&mut self, node: &Node, path: &str) -> Option<HealthCheck> {
        let fields = self.mapping(node, path, Schema::closed(HEALTH_CHECK_KEYS))?;
        let errors_before = self.error_count();
        let kind = match self.opt_string(&fields, "type") {
            None => {
                self.error(
                    "missing",
                    &fields.path_of("type"),
                    fields.position,
                    "missing required key `type`: allowed http or tcp".to_string(),
                );
                None
            }
            Some(text) => match text.as_str() {
                "http" => Some(HealthCheckType::Http),
                "tcp" => Some(HealthCheckType::Tcp),
                other => {
                    let at = fields.get("type").map_or(fields.position, |n| n.position);
                    self.error(
                        "invalid-value",
                        &fields.path_of("type"),
                        at,
                        format!("invalid health check type {other:?}: allowed http or tcp"),
                    );
                    None
                }
            },
        };
        let target = self.opt_string(&fields, "target");
        let port = self.port(&fields, "port", false);
        if port.is_none() && target.is_none() && !fields.contains("port") {
            self.error(
                "missing",
                &fields.path_of("port"),
                fields.position,
                "missing required key `port`: a health check needs a port (or a target)"
                    .to_string(),
            );
        }
        let mut path_value = self.opt_string(&fields, "path");
        if let Some(text) = &path_value {
            if !text.starts_with('/') {
                let at = fields.get("path").map_or(fields.position, |n| n.position);
                self.error(
                    "invalid-value",
                    &fields.path_of("path"),
                    at,
                    format!("invalid path {text:?}: an HTTP path starts with '/'"),
                );
            }
        } else if kind == Some(HealthCheckType::Http) && target.is_none() {
            self.findings.warning(
                "default-applied",
                &fields.path_of("path"),
                Some(fields.position),
                "http health check without `path`; probing \"/\" as the Go firework does",
            );
            path_value = Some("/".to_string());
        }
        let interval = self.positive_duration(&fields, "interval", DEFAULT_HEALTH_INTERVAL);
        let timeout = self.positive_duration(&fields, "timeout", DEFAULT_HEALTH_TIMEOUT);
        if let (Some(interval), Some(timeout)) = (interval, timeout)
            && timeout > interval
        {
            let at = fields
                .get("timeout")
                .map_or(fields.position, |n| n.position);
            self.error(
                "invalid-value",
                &fields.path_of("timeout"),
                at,
                format!("invalid timeout {timeout}: it must not exceed interval {interval}"),
            );
        }
        let retries = self.at_least_one(&fields, "retries", DEFAULT_HEALTH_RETRIES);
        let success_threshold = self.at_least_one(&fields, "success_threshold", 1);
        let start_period = self
            .opt_duration(&fields, "start_period")
            .unwrap_or_default();
        let expected_status = match fields.get("expected_status") {
            None => None,
            Some(node) => {
                let status_path = fields.path_of("expected_status");
                let value: Option<u16> = self.integer(node, &status_path);
                match value {
                    Some(code) if (100..=599).contains(&code) => Some(code),
                    Some(code) => {
                        self.error(
                            "invalid-value",
                            &status_path,
                            node.position,
                            format!("invalid HTTP status {code}: allowed 100 to 599"),
                        );
                        None
                    }
                    None => None,
                }
            }
        };
        if self.error_count() > errors_before {
            return None;
        }
        Some(HealthCheck {
            kind: kind?,
            target,
            port,
            path: path_value,
            interval: interval?,
            timeout: timeout?,
            retries: retries?,
            start_period,
            success_threshold: success_threshold?,
            expected_status,
        })
    }

    fn positive_duration(
        &mut self,
        fields: &Fields<'_>,
        key: &str,
        default: GoDuration,
    ) -> Option<GoDuration> {
        if !fields.contains(key) || fields.get(key).is_none() {
            return Some(default);
        }
        let value = self.opt_duration(fields, key)?;
        if value.is_zero() {
            let at = fields.get(key).map_or(fields.position, |n| n.position);
            self.error(
                "invalid-value",
                &fields.path_of(key),
                at,
                format!("invalid {key} {value}: it must be positive"),
            );
            return None;
        }
        Some(value)
    }

    fn at_least_one(&mut self, fields: &Fields<'_>, key: &str, default: u32) -> Option<u32> {
        let Some(node) = fields.get(key) else {
            return Some(default);
        };
        let path = fields.path_of(key);
        let value: u32 = self.integer(node, &path)?;
        if value == 0 {
            self.error(
                "invalid-value",
                &path,
                node.position,
                format!("invalid {key} 0: it must be at least 1"),
            );
            return None;
        }
        Some(value)
    }

    pub(crate) fn error_count(&self) -> usize {
        self.findings
            .as_slice()
            .iter()
            .filter(|d| d.is_error())
            .count()
    }

    /// Reads a string field that must pass `check`, reporting `what` and the rule on failure.
    pub(crate) fn checked_string(
        &mut self,
        fields: &Fields<'_>,
        key: &str,
        what: &str,
        required: bool,
        check: fn(&str) -> Result<(), &'static str>,
    ) -> Option<String> {
        let value = if required {
            self.required_string(fields, key)?
        } else {
            self.opt_string(fields, key)?
        };
        if let Err(rule) = check(&value) {
            let at = fields.get(key).map_or(fields.position, |n| n.position);
            self.error(
                "invalid-value",
                &fields.path_of(key),
                at,
                format!("invalid {what} {value:?}: {rule}"),
            );
            return None;
        }
        Some(value)
    }

    /// Reads `env`: keys must be environment variable names, values are kept as written.
    pub(crate) fn env(&mut self, node: &Node, path: &str) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (key, (value, position)) in self.string_map(node, path) {
            if let Err(rule) = names::check_env_key(&key) {
                self.error(
                    "invalid-env-key",
                    &join(path, &key),
                    position,
                    format!("invalid environment variable name {key:?}: {rule}"),
                );
                continue;
            }
            out.insert(key, value);
        }
        out
    }

    /// Reads `metadata` and checks the keys that have a meaning: `host`, `subdomain`, `tenant`.
    pub(crate) fn metadata(&mut self, node: &Node, path: &str) -> BTreeMap<String, String> {
        let entries = self.string_map(node, path);
        let mut out = BTreeMap::new();
        for (key, (value, position)) in &entries {
            let field = join(path, key);
            match key.as_str() {
                "host" => match names::normalize_host(value) {
                    Ok(host) => {
                        out.insert(key.clone(), host);
                        continue;
                    }
                    Err(rule) => self.error(
                        "invalid-host",
                        &field,
                        *position,
                        format!("invalid host {value:?}: {rule}"),
                    ),
                },
                "subdomain" | "tenant" => {
                    if let Err(rule) = names::check_dns_label(value) {
                        self.error(
                            "invalid-value",
                            &field,
                            *position,
                            format!("invalid {key} {value:?}: {rule}"),
                        );
                    }
                }
                _ => {}
            }
            out.insert(key.clone(), value.clone());
        }
        if let (Some(_), Some((_, position))) = (entries.get("host"), entries.get("subdomain")) {
            self.error(
                "conflicting-keys",
                &join(path, "subdomain"),
                *position,
                "metadata sets both `host` and `subdomain`: choose one".to_string(),
            );
        }
        out
    }

    /// Reads `links`.
    pub(crate) fn links(&mut self, node: &Node, path: &str) -> Vec<Link> {
        let mut out = Vec::new();
        for (i, item) in self.sequence(node, path).iter().enumerate() {
            let item_path = index(path, i);
            let Some(fields) = self.mapping(item, &item_path, Schema::closed(LINK_KEYS)) else {
                continue;
            };
            let service = self.checked_string(
                &fields,
                "service",
                "service name",
                true,
                names::check_service_name,
            );
            let env = self.checked_string(
                &fields,
                "env",
                "environment variable name",
                true,
                names::check_env_key,
            );
            let port = self.port(&fields, "port", true);
            let protocol = self
                .checked_string(&fields, "protocol", "protocol", false, check_scheme)
                .unwrap_or_else(|| "http".to_string());
            if let (Some(service), Some(env), Some(port)) = (service, env, port) {
                out.push(Link {
                    service,
                    env,
                    port,
                    protocol,
                });
            }
        }
        out
    }

    /// Reads `cross_node_links`.
    pub(crate) fn cross_node_links(&mut self, node: &Node, path: &str) -> Vec<CrossNodeLink> {
        let mut out = Vec::new();
        for (i, item) in self.sequence(node, path).iter().enumerate() {
            let item_path = index(path, i);
            let Some(fields) = self.mapping(item, &item_path, Schema::closed(CROSS_NODE_LINK_KEYS))
            else {
                continue;
            };
            let service = self.checked_string(
                &fields,
                "service",
                "service name",
                true,
                names::check_service_name,
            );
            let env = self.checked_string(
                &fields,
                "env",
                "environment variable name",
                true,
                names::check_env_key,
            );
            let host_port = self.port(&fields, "host_port", true);
            let protocol =
                self.checked_string(&fields, "protocol", "protocol", false, check_scheme);
            if let (Some(service), Some(env), Some(host_port)) = (service, env, host_port) {
                out.push(CrossNodeLink {
                    service,
                    env,
                    host_port,
                    protocol,
                });
            }
        }
        out
    }

    /// Reads `vcpus` (1 to 32) when present.
    pub(crate) fn vcpus(&mut self, fields: &Fields<'_>) -> Option<u32> {
        let node = fields.get("vcpus")?;
        let path = fields.path_of("vcpus");
        let value: u32 = self.integer(node, &path)?;
        if (1..=MAX_VCPUS).contains(&value) {
            Some(value)
        } else {
            self.error(
                "invalid-value",
                &path,
                node.position,
                format!("invalid vcpus {value}: allowed 1 to {MAX_VCPUS} (Firecracker's limit)"),
            );
            None
        }
    }

    /// Reads `memory_mb` (positive) when present.
    pub(crate) fn memory_mb(&mut self, fields: &Fields<'_>) -> Option<u32> {
        let node = fields.get("memory_mb")?;
        let path = fields.path_of("memory_mb");
        let value: u32 = self.integer(node, &path)?;
        if value > 0 {
            Some(value)
        } else {
            self.error(
                "invalid-value",
                &path,
                node.position,
                "invalid memory_mb 0: it must be positive".to_string(),
            );
            None
        }
    }
}

/// Checks a URL scheme such as `http`, `https` or `grpc+tls`.
fn check_scheme(scheme: &str) -> Result<(), &'static str> {
    let mut bytes = scheme.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_lowercase());
    if first_ok
        && bytes.all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.')
        })
    {
        Ok(())
    } else {
        Err("write a URL scheme such as http or https")
    }
}
