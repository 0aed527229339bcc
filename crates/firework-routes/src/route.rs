//! Route inputs: this node's services with their guest addresses, and peers' services.

use std::collections::BTreeMap;
use std::net::IpAddr;

use firework_model::{NodeConfig, Service, names};

use crate::hostname::RouteKeys;

/// A service running on this node. A routed local service with invalid routing keys or a
/// missing guest IP or backend port gets no new route; see [`crate::SyncReport::skipped_local`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalRoute {
    /// The service name, a DNS label.
    pub service: String,
    /// The guest address the agent assigned.
    pub guest_ip: Option<IpAddr>,
    /// The guest port Traefik forwards to.
    pub backend_port: Option<u16>,
    /// `metadata.host` or `metadata.subdomain`.
    pub keys: RouteKeys,
}

impl LocalRoute {
    /// Builds the route input of one desired service.
    ///
    /// `guest_ip` is the address the agent assigned; without it the address written in the
    /// service's network block is used, if any. The backend port is the first port
    /// forward's `vm_port`, else the health check's `port`.
    ///
    /// NOTE: as in the Go firework, the first forward counts even when it is UDP, so list
    /// the HTTP forward first.
    pub fn from_service(service: &Service, guest_ip: Option<IpAddr>) -> Self {
        let configured_ip = service
            .network
            .as_ref()
            .and_then(|network| network.guest_ip.as_deref())
            .and_then(|text| names::parse_guest_ip(text).ok())
            .map(IpAddr::V4);
        let backend_port = service
            .port_forwards
            .first()
            .map(|forward| forward.vm_port)
            .or_else(|| service.health_check.as_ref().and_then(|check| check.port));
        LocalRoute {
            service: service.name.clone(),
            guest_ip: guest_ip.or(configured_ip),
            backend_port,
            keys: RouteKeys::from_metadata(&service.metadata),
        }
    }
}

/// Builds [`LocalRoute`]s for this node's desired services; `guest_ips` maps service names
/// to the addresses the agent assigned.
pub fn local_routes(services: &[Service], guest_ips: &BTreeMap<String, IpAddr>) -> Vec<LocalRoute> {
    services
        .iter()
        .map(|service| LocalRoute::from_service(service, guest_ips.get(&service.name).copied()))
        .collect()
}

/// A service of a peer node. Remote routes are best effort: problems skip the route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteService {
    /// The service name.
    pub service: String,
    /// The first port forward's host port on the peer.
    pub host_port: Option<u16>,
    /// `metadata.host` or `metadata.subdomain`.
    pub keys: RouteKeys,
}

impl RemoteService {
    /// Builds the route input of one service of a peer's node config.
    pub fn from_service(service: &Service) -> Self {
        RemoteService {
            service: service.name.clone(),
            host_port: service
                .port_forwards
                .first()
                .map(|forward| forward.host_port),
            keys: RouteKeys::from_metadata(&service.metadata),
        }
    }
}

/// The known state of a peer's services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerServices {
    /// The peer's current node config was read.
    Listed(Vec<RemoteService>),
    /// The peer's config could not be read, so its existing route files are kept unchanged.
    Unknown,
}

/// The routes of one peer node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteNodeRoutes {
    /// The peer's node name; part of its file and router names.
    pub node: String,
    /// The peer's host IP, where its port forwards listen.
    pub host_ip: Option<IpAddr>,
    /// The peer's services, or `Unknown` when they could not be read.
    pub services: PeerServices,
}

impl RemoteNodeRoutes {
    /// Builds a peer's routes from its node config. `node` names the peer (the config's own
    /// `node` field is optional).
    pub fn from_node_config(node: impl Into<String>, config: &NodeConfig) -> Self {
        RemoteNodeRoutes {
            node: node.into(),
            host_ip: config.host_ip,
            services: PeerServices::Listed(
                config
                    .services
                    .iter()
                    .map(RemoteService::from_service)
                    .collect(),
            ),
        }
    }

    /// Marks a peer whose config could not be read, so its last routes are kept.
    pub fn unknown(node: impl Into<String>) -> Self {
        RemoteNodeRoutes {
            node: node.into(),
            host_ip: None,
            services: PeerServices::Unknown,
        }
    }
}
