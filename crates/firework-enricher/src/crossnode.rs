//! Cross-node links and `node_host_ip_env`, resolved once services are placed on nodes with
//! known host IPs.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use firework_model::diagnostic::Diagnostic;
use firework_model::node::NodeConfig;

use crate::diag;

/// Fills the env values of every service with cross-node links or `node_host_ip_env`.
///
/// A link to a service placed on a node with a host IP sets `env[link.env]` to
/// `<host_ip>:<host_port>`, or `<protocol>://<host_ip>:<host_port>` when the link names a
/// protocol. Several links into one env key are joined with commas in spec order; the first
/// resolved link replaces a value written in `env`. A link whose target is not placed, or
/// sits on a node without a host IP, adds nothing and is reported as a warning.
/// `node_host_ip_env` receives the service's own node's host IP when it is known.
pub fn resolve(configs: &mut [NodeConfig]) -> Vec<Diagnostic> {
    let mut placed: HashMap<String, (String, Option<IpAddr>)> = HashMap::new();
    for config in configs.iter() {
        let node = config.node.clone().unwrap_or_default();
        for service in &config.services {
            placed.insert(service.name.clone(), (node.clone(), config.host_ip));
        }
    }
    let mut findings = Vec::new();
    for config in configs.iter_mut() {
        let node = config.node.clone().unwrap_or_default();
        let file = format!("nodes/{node}.yaml");
        for service in &mut config.services {
            let mut resolved: HashSet<String> = HashSet::new();
            for (i, link) in service.cross_node_links.iter().enumerate() {
                let path = format!("cross_node_links[{i}]");
                let Some((peer_node, peer_ip)) = placed.get(&link.service) else {
                    findings.push(diag::warning(
                        "unresolved-link",
                        &file,
                        &path,
                        format!(
                            "service {}: cross-node link target {} is not placed on any node, \
                             so {} gets no value from it",
                            service.name, link.service, link.env
                        ),
                    ));
                    continue;
                };
                let Some(ip) = peer_ip else {
                    findings.push(diag::warning(
                        "unresolved-link",
                        &file,
                        &path,
                        format!(
                            "service {}: node {peer_node} of cross-node link target {} has no \
                             host IP, so {} gets no value from it",
                            service.name, link.service, link.env
                        ),
                    ));
                    continue;
                };
                let address = socket_text(*ip, link.host_port);
                let value = match &link.protocol {
                    Some(protocol) => format!("{protocol}://{address}"),
                    None => address,
                };
                if resolved.insert(link.env.clone()) {
                    service.env.insert(link.env.clone(), value);
                } else if let Some(existing) = service.env.get_mut(&link.env) {
                    existing.push(',');
                    existing.push_str(&value);
                }
            }
            if let (Some(key), Some(ip)) = (&service.node_host_ip_env, config.host_ip) {
                service.env.insert(key.clone(), ip.to_string());
            }
        }
    }
    findings
}

fn socket_text(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{v4}:{port}"),
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
    }
}
