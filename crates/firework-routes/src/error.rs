//! Errors of a route sync and reasons a single route is not written.

use std::io;
use std::path::PathBuf;

/// The reason one route cannot be written. The route is skipped and listed in
/// [`crate::SyncReport::skipped`] for a peer or [`crate::SyncReport::skipped_local`] for a
/// local service. Two reasons fail the whole sync instead, as [`RoutesError::LocalRoute`]:
/// an invalid local service name, and an operator's file with a local route's file name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// The service name is not a DNS label, so it cannot become a file or router name.
    #[error("invalid service name {name:?}: {rule}")]
    InvalidServiceName { name: String, rule: &'static str },
    /// The peer's node name cannot become part of a file or router name.
    #[error("invalid node name {node:?}: {rule}")]
    InvalidNodeName { node: String, rule: &'static str },
    /// `metadata.host` and `metadata.subdomain` are both set.
    #[error("metadata sets both host and subdomain: choose one")]
    BothKeys,
    /// `metadata.host` is not a plain host name.
    #[error("invalid metadata.host {host:?}: {rule}")]
    InvalidHost { host: String, rule: &'static str },
    /// `metadata.subdomain` is not one lowercase DNS label.
    #[error("invalid metadata.subdomain {subdomain:?}: {rule}")]
    InvalidSubdomain {
        subdomain: String,
        rule: &'static str,
    },
    /// `metadata.subdomain` is set but the agent has no `ingress_domain`.
    #[error("metadata.subdomain {subdomain:?} requires the agent's ingress_domain; set it")]
    SubdomainWithoutDomain { subdomain: String },
    /// The ingress domain passed to the resolver is invalid.
    #[error("invalid ingress_domain {domain:?}: {rule}")]
    InvalidIngressDomain { domain: String, rule: &'static str },
    /// `<subdomain>.<ingress_domain>` is longer than a DNS name may be.
    #[error("host name {host:?} is longer than 253 characters")]
    HostTooLong { host: String },
    /// A routed local service has no guest address.
    #[error("the service is routed but has no guest IP; give it a network block")]
    MissingGuestIp,
    /// A routed local service has neither a port forward nor a health check port.
    #[error(
        "the service is routed but has no usable backend port; add a port forward or a health check port"
    )]
    MissingBackendPort,
    /// The peer node config has no `host_ip`.
    #[error("the peer node has no host_ip")]
    MissingHostIp,
    /// The peer's service has no port forward, so there is no host port to proxy to.
    #[error("the service has no port forward, so there is no host port to proxy to")]
    MissingHostPort,
    /// Another route already serves this host name.
    #[error("host {host:?} is already routed by {owner}")]
    HostClaimed { host: String, owner: String },
    /// The peer appears more than once in the peer list.
    #[error("node {node:?} is listed more than once; only its first entry is used")]
    DuplicateNode { node: String },
    /// The route file name would exceed the file system's limit of 255 bytes.
    #[error("route file name {file:?} is longer than 255 bytes")]
    FileNameTooLong { file: String },
    /// A file with the route's name exists and Firework did not write it.
    #[error("{file:?} exists and was not written by Firework; rename or remove it")]
    ForeignFile { file: String },
}

/// Errors of [`crate::RouteSync`].
#[derive(Debug, thiserror::Error)]
pub enum RoutesError {
    /// The configured entry point name cannot be written into a route file.
    #[error("invalid traefik entry point {entry_point:?}: use 1 to 64 letters, digits, '-' or '_'")]
    InvalidEntryPoint { entry_point: String },
    /// The configured ingress domain is invalid.
    #[error("invalid ingress_domain {domain:?}: {rule}")]
    InvalidIngressDomain { domain: String, rule: &'static str },
    /// A local service has an invalid name, or an operator's file has its route file
    /// name; no file was changed.
    #[error("cannot route local service {service:?}")]
    LocalRoute {
        service: String,
        #[source]
        source: RouteError,
    },
    /// Two local services resolve to the same host name; no file was changed.
    #[error("local services {first:?} and {second:?} both route host {host:?}")]
    DuplicateLocalHost {
        host: String,
        first: String,
        second: String,
    },
    /// A valid local route claims the host name that the kept file of a skipped local
    /// service still routes; no file was changed.
    #[error(
        "local service {service:?} routes host {host:?}, which the kept route of skipped local service {skipped_service:?} still serves; fix {skipped_service:?} or choose another host"
    )]
    KeptLocalHost {
        host: String,
        skipped_service: String,
        service: String,
    },
    /// A local service appears twice in the list; no file was changed.
    #[error("local service {service:?} is listed more than once")]
    DuplicateLocalService { service: String },
    /// A file system operation on the route directory failed.
    #[error("failed to {operation} {path}")]
    Io {
        operation: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl RoutesError {
    pub(crate) fn io(operation: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        RoutesError::Io {
            operation,
            path: path.into(),
            source,
        }
    }
}
