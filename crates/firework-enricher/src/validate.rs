//! Input validation after tenant expansion. Every finding is collected before rendering
//! starts, each naming the file and field it is about.

use std::collections::{BTreeMap, HashMap, HashSet};

use firework_model::diagnostic::Diagnostic;
use firework_model::names;
use firework_model::service::Protocol;

use crate::diag;
use crate::tenant::Expanded;

/// Validation settings beyond the rules that always apply.
#[derive(Debug, Clone, Copy, Default)]
pub struct ValidateOptions {
    /// Placement comes from the scheduler, so host ports are not checked per node type.
    pub scheduled: bool,
    /// A routed service without a port forward is an error instead of a warning.
    pub require_remote_routing: bool,
}

/// Checks the expanded services and appends the findings to `findings`.
pub fn validate(services: &[Expanded], options: ValidateOptions, findings: &mut Vec<Diagnostic>) {
    let known: HashSet<&str> = services.iter().map(Expanded::name).collect();
    let mut first_file: HashMap<&str, &str> = HashMap::new();
    let mut hosts: HashMap<String, &str> = HashMap::new();
    let mut subdomains: HashMap<String, &str> = HashMap::new();
    let mut host_ports: BTreeMap<(&str, u16, Protocol), &str> = BTreeMap::new();

    for service in services {
        let file = service.file.as_str();
        let spec = &service.spec;
        let name = service.name();
        if name.is_empty() {
            findings.push(diag::error(
                "missing",
                file,
                "name",
                "service with empty name: write `name:`".to_string(),
            ));
            continue;
        }
        if let Some(first) = first_file.get(name) {
            findings.push(diag::error(
                "duplicate-name",
                file,
                "name",
                format!("duplicate service name: {name} (also defined by {first})"),
            ));
        } else {
            first_file.insert(name, file);
        }
        if spec.image.is_none() {
            findings.push(diag::error(
                "missing",
                file,
                "image",
                format!("service {name}: missing image"),
            ));
        }
        if spec.node_type.is_none() {
            findings.push(diag::error(
                "missing",
                file,
                "node_type",
                format!("service {name}: missing node_type"),
            ));
        }
        let networked = spec.network == Some(true);
        if spec.health_check.is_some() && !networked {
            findings.push(diag::warning(
                "health-check-without-network",
                file,
                "health_check",
                format!("service {name} has health check but network is disabled"),
            ));
        }
        for (i, link) in spec.links.iter().flatten().enumerate() {
            if !known.contains(link.service.as_str()) {
                findings.push(diag::warning(
                    "unknown-link-target",
                    file,
                    &format!("links[{i}].service"),
                    format!(
                        "service {name}: link target {} does not exist, so {} stays unset",
                        link.service, link.env
                    ),
                ));
            }
        }
        for (i, link) in spec.cross_node_links.iter().flatten().enumerate() {
            if !known.contains(link.service.as_str()) {
                findings.push(diag::warning(
                    "unknown-link-target",
                    file,
                    &format!("cross_node_links[{i}].service"),
                    format!(
                        "service {name}: cross-node link target {} does not exist, so {} stays unset",
                        link.service, link.env
                    ),
                ));
            }
        }
        routing(service, options, &mut hosts, &mut subdomains, findings);
        if !options.scheduled
            && let Some(node_type) = spec.node_type.as_deref()
        {
            for (i, forward) in spec.port_forwards.iter().flatten().enumerate() {
                let key = (node_type, forward.host_port, forward.protocol);
                if let Some(owner) = host_ports.get(&key) {
                    findings.push(diag::error(
                        "duplicate-host-port",
                        file,
                        &format!("port_forwards[{i}].host_port"),
                        format!(
                            "service {name}: host port {} ({}) on node type {node_type} is \
                             already forwarded by service {owner}",
                            forward.host_port, forward.protocol
                        ),
                    ));
                } else {
                    host_ports.insert(key, name);
                }
            }
        }
    }
}

fn routing<'a>(
    service: &'a Expanded,
    options: ValidateOptions,
    hosts: &mut HashMap<String, &'a str>,
    subdomains: &mut HashMap<String, &'a str>,
    findings: &mut Vec<Diagnostic>,
) {
    let file = service.file.as_str();
    let name = service.name();
    let spec = &service.spec;
    let host = spec.metadata.get("host");
    let subdomain = spec.metadata.get("subdomain");
    if host.is_none() && subdomain.is_none() {
        return;
    }
    if host.is_some() && subdomain.is_some() {
        findings.push(diag::error(
            "routing-both-keys",
            file,
            "metadata",
            format!("service {name}: cannot set both metadata.host and metadata.subdomain"),
        ));
    }
    if let Some(host) = host {
        match names::normalize_host(host) {
            Ok(normal) => {
                if let Some(owner) = hosts.get(&normal) {
                    findings.push(diag::error(
                        "duplicate-route",
                        file,
                        "metadata.host",
                        format!(
                            "service {name}: duplicate metadata.host {normal:?}, already \
                             requested by service {owner}"
                        ),
                    ));
                } else {
                    hosts.insert(normal, name);
                }
            }
            Err(rule) => findings.push(diag::error(
                "invalid-value",
                file,
                "metadata.host",
                format!(
                    "service {name}: metadata.host {host:?} contains invalid characters: {rule}"
                ),
            )),
        }
    }
    if let Some(subdomain) = subdomain {
        if subdomain.contains('.') || names::check_dns_label(subdomain).is_err() {
            findings.push(diag::error(
                "invalid-value",
                file,
                "metadata.subdomain",
                format!(
                    "service {name}: metadata.subdomain {subdomain:?} must be exactly one DNS \
                     label: 1 to 63 characters of a-z, 0-9 and '-'"
                ),
            ));
        } else if let Some(owner) = subdomains.get(subdomain.as_str()) {
            findings.push(diag::error(
                "duplicate-route",
                file,
                "metadata.subdomain",
                format!(
                    "service {name}: duplicate metadata.subdomain {subdomain:?}, already \
                     requested by service {owner}"
                ),
            ));
        } else {
            subdomains.insert(subdomain.clone(), name);
        }
    }
    if spec.network != Some(true) {
        findings.push(diag::error(
            "routing-without-network",
            file,
            "network",
            format!("service {name}: a routed service needs `network: true`"),
        ));
    }
    if spec.port_forwards.as_ref().is_none_or(Vec::is_empty) {
        let message = format!(
            "service {name}: routed but has no port forward, so peers on other nodes cannot \
             route to it"
        );
        findings.push(if options.require_remote_routing {
            diag::error(
                "remote-routing-no-host-port",
                file,
                "port_forwards",
                message,
            )
        } else {
            diag::warning(
                "remote-routing-no-host-port",
                file,
                "port_forwards",
                message,
            )
        });
    }
}
