//! One route sync: validate local routes, choose remote routes, write and delete files.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use firework_model::names;
use tracing::{debug, info, info_span, warn};

use crate::error::{RouteError, RoutesError};
use crate::files;
use crate::render::{Owner, render};
use crate::route::{LocalRoute, PeerServices, RemoteNodeRoutes};

/// The entry point routers use unless the agent config names another.
pub const DEFAULT_ENTRY_POINT: &str = "web";

/// Maximum file name length in bytes on ext4, XFS and Btrfs.
const MAX_FILE_NAME_LEN: usize = 255;

/// Writes Traefik file-provider routes into one directory. See the crate documentation.
#[derive(Debug, Clone)]
pub struct RouteSync {
    dir: PathBuf,
    entry_point: String,
    ingress_domain: Option<String>,
}

/// The changes of one sync. File names are relative to the route directory and sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Files created or rewritten because their content changed.
    pub written: Vec<String>,
    /// Files whose content was already right and were left untouched.
    pub unchanged: Vec<String>,
    /// Firework's files that no current route accounts for, now deleted.
    pub deleted: Vec<String>,
    /// Files of peers passed as [`PeerServices::Unknown`], kept as they were.
    pub kept: Vec<String>,
    /// Remote routes not written, with the reason.
    pub skipped: Vec<SkippedRoute>,
}

/// A peer's service that got no route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedRoute {
    /// The peer's node name.
    pub node: String,
    /// The service name.
    pub service: String,
    /// The reason no route was written.
    pub reason: RouteError,
}

/// The route that claimed a host name first.
#[derive(Debug, Clone)]
enum Claim {
    Local { service: String },
    Remote { node: String, service: String },
    Kept { node: String, service: String },
}

impl std::fmt::Display for Claim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Claim::Local { service } => write!(f, "local service {service:?}"),
            Claim::Remote { node, service } => write!(f, "service {service:?} of node {node:?}"),
            Claim::Kept { node, service } => write!(
                f,
                "the kept route of service {service:?} of unknown node {node:?}"
            ),
        }
    }
}

/// One file the sync wants to exist.
#[derive(Debug)]
struct Planned {
    file: String,
    content: String,
}

impl RouteSync {
    /// Creates a syncer for `dir`. `entry_point` names the Traefik entry point of every
    /// router ([`DEFAULT_ENTRY_POINT`] unless the agent config names another). `ingress_domain` is the domain under which
    /// `metadata.subdomain` routes are published. With `None` or a blank value, a routed
    /// local service with a subdomain fails the sync and such peer routes are skipped.
    pub fn new(
        dir: impl Into<PathBuf>,
        entry_point: &str,
        ingress_domain: Option<&str>,
    ) -> Result<Self, RoutesError> {
        let valid_entry_point = !entry_point.is_empty()
            && entry_point.len() <= 64
            && entry_point
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid_entry_point {
            return Err(RoutesError::InvalidEntryPoint {
                entry_point: entry_point.to_string(),
            });
        }
        let ingress_domain = match ingress_domain.map(str::trim) {
            Some(domain) if !domain.is_empty() => {
                Some(names::normalize_domain(domain).map_err(|rule| {
                    RoutesError::InvalidIngressDomain {
                        domain: domain.to_string(),
                        rule,
                    }
                })?)
            }
            _ => None,
        };
        Ok(RouteSync {
            dir: dir.into(),
            entry_point: entry_point.to_string(),
            ingress_domain,
        })
    }

    /// Returns the route directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Brings the directory in line with `local` (this node's services) and `remote`
    /// (peers, not including this node).
    ///
    /// Local routes are checked first, and any problem returns an error before a file is
    /// touched. Remote routes are best effort and land in [`SyncReport::skipped`]. Then
    /// changed files are written atomically, unchanged ones are left alone, and Firework's
    /// files that no route accounts for are deleted, except those of unknown peers.
    pub fn sync(
        &self,
        local: &[LocalRoute],
        remote: &[RemoteNodeRoutes],
    ) -> Result<SyncReport, RoutesError> {
        let span = info_span!("route_sync", dir = %self.dir.display());
        let _entered = span.enter();

        let scan = files::scan(&self.dir)?;
        let foreign: BTreeSet<&str> = scan.foreign.iter().map(String::as_str).collect();
        let mut claimed: BTreeMap<String, Claim> = BTreeMap::new();
        let mut planned = self.plan_local(local, &foreign, &mut claimed)?;
        let mut report = SyncReport::default();
        let kept = keep_unknown_peer_files(&scan, remote, &mut claimed);
        self.plan_remote(remote, &foreign, &mut claimed, &mut planned, &mut report);

        files::create_dir(&self.dir)?;
        for temp in &scan.leftover_temps {
            debug!(file = %temp, "removing a temporary file left by an interrupted write");
            files::remove(&self.dir, temp)?;
        }
        for file in &planned {
            let path = self.dir.join(&file.file);
            if files::read_existing(&path)?.as_deref() == Some(file.content.as_bytes()) {
                report.unchanged.push(file.file.clone());
                continue;
            }
            files::write_atomic(&self.dir, &file.file, file.content.as_bytes())?;
            info!(file = %file.file, "wrote route file");
            report.written.push(file.file.clone());
        }
        if !report.written.is_empty() {
            files::sync_dir(&self.dir)?;
        }

        let planned_names: BTreeSet<&str> = planned.iter().map(|file| file.file.as_str()).collect();
        for name in scan.owned.keys() {
            if planned_names.contains(name.as_str()) {
                continue;
            }
            if kept.contains(name.as_str()) {
                report.kept.push(name.clone());
                continue;
            }
            files::remove(&self.dir, name)?;
            info!(file = %name, "deleted route file");
            report.deleted.push(name.clone());
        }
        if !report.deleted.is_empty() {
            files::sync_dir(&self.dir)?;
        }

        report.written.sort();
        report.unchanged.sort();
        Ok(report)
    }

    /// Validates every local route and renders its file. `claimed` receives the host
    /// names, mapped to the owning service.
    fn plan_local(
        &self,
        local: &[LocalRoute],
        foreign: &BTreeSet<&str>,
        claimed: &mut BTreeMap<String, Claim>,
    ) -> Result<Vec<Planned>, RoutesError> {
        let mut sorted: Vec<&LocalRoute> = local.iter().collect();
        sorted.sort_by(|a, b| a.service.cmp(&b.service));
        let mut seen = BTreeSet::new();
        let mut planned = Vec::new();
        for route in sorted {
            let fail = |source| RoutesError::LocalRoute {
                service: route.service.clone(),
                source,
            };
            names::check_service_name(&route.service).map_err(|rule| {
                fail(RouteError::InvalidServiceName {
                    name: route.service.clone(),
                    rule,
                })
            })?;
            if !seen.insert(route.service.as_str()) {
                return Err(RoutesError::DuplicateLocalService {
                    service: route.service.clone(),
                });
            }
            let Some(host) = route
                .keys
                .resolve(self.ingress_domain.as_deref())
                .map_err(fail)?
            else {
                continue;
            };
            let ip = route
                .guest_ip
                .ok_or_else(|| fail(RouteError::MissingGuestIp))?;
            let port = route
                .backend_port
                .ok_or_else(|| fail(RouteError::MissingBackendPort))?;
            if let Some(Claim::Local { service: first }) = claimed.get(&host) {
                return Err(RoutesError::DuplicateLocalHost {
                    host,
                    first: first.clone(),
                    second: route.service.clone(),
                });
            }
            let owner = Owner::Local {
                service: route.service.clone(),
            };
            let file = owner.file_name();
            if foreign.contains(file.as_str()) {
                return Err(fail(RouteError::ForeignFile { file }));
            }
            let content = render(&owner, &host, &self.entry_point, ip, port);
            claimed.insert(
                host,
                Claim::Local {
                    service: route.service.clone(),
                },
            );
            planned.push(Planned { file, content });
        }
        Ok(planned)
    }

    /// Chooses the remote routes: peers in node-name order, services in name order, the
    /// first claim of a host name wins, and local routes and kept files have claimed
    /// theirs already.
    fn plan_remote(
        &self,
        remote: &[RemoteNodeRoutes],
        foreign: &BTreeSet<&str>,
        claimed: &mut BTreeMap<String, Claim>,
        planned: &mut Vec<Planned>,
        report: &mut SyncReport,
    ) {
        let mut peers: Vec<&RemoteNodeRoutes> = remote.iter().collect();
        peers.sort_by(|a, b| a.node.cmp(&b.node));
        let mut seen = BTreeSet::new();
        for peer in peers {
            let mut skip = |service: &str, reason: RouteError| {
                warn!(node = %peer.node, service, reason = %reason, "skipping remote route");
                report.skipped.push(SkippedRoute {
                    node: peer.node.clone(),
                    service: service.to_string(),
                    reason,
                });
            };
            if !seen.insert(peer.node.as_str()) {
                skip(
                    "",
                    RouteError::DuplicateNode {
                        node: peer.node.clone(),
                    },
                );
                continue;
            }
            let services = match &peer.services {
                PeerServices::Unknown => continue,
                PeerServices::Listed(services) => services,
            };
            if let Err(rule) = names::check_node_label(&peer.node) {
                skip(
                    "",
                    RouteError::InvalidNodeName {
                        node: peer.node.clone(),
                        rule,
                    },
                );
                continue;
            }
            let mut sorted: Vec<_> = services.iter().collect();
            sorted.sort_by(|a, b| a.service.cmp(&b.service));
            for service in sorted {
                let result = self.plan_one_remote(peer, service, foreign, claimed);
                match result {
                    Ok(Some(file)) => planned.push(file),
                    Ok(None) => {}
                    Err(reason) => skip(&service.service, reason),
                }
            }
        }
    }

    fn plan_one_remote(
        &self,
        peer: &RemoteNodeRoutes,
        service: &crate::route::RemoteService,
        foreign: &BTreeSet<&str>,
        claimed: &mut BTreeMap<String, Claim>,
    ) -> Result<Option<Planned>, RouteError> {
        if !service.keys.is_routed() {
            return Ok(None);
        }

        names::check_service_name(&service.service).map_err(|rule| {
            RouteError::InvalidServiceName {
                name: service.service.clone(),
                rule,
            }
        })?;
        let Some(host) = service.keys.resolve(self.ingress_domain.as_deref())? else {
            return Ok(None);
        };
        let ip: IpAddr = peer.host_ip.ok_or(RouteError::MissingHostIp)?;
        let port = service.host_port.ok_or(RouteError::MissingHostPort)?;

        if let Some(owner) = claimed.get(&host) {
            return Err(RouteError::HostClaimed {
                host,
                owner: owner.to_string(),
            });
        }
        let owner = Owner::Remote {
            node: peer.node.clone(),
            service: service.service.clone(),
        };
        let file = owner.file_name();

        if file.len() > MAX_FILE_NAME_LEN {
            return Err(RouteError::FileNameTooLong { file });
        }
        if foreign.contains(file.as_str()) {
            return Err(RouteError::ForeignFile { file });
        }
        let content = render(&owner, &host, &self.entry_point, ip, port);
        claimed.insert(
            host,
            Claim::Remote {
                node: peer.node.clone(),
                service: service.service.clone(),
            },
        );
        Ok(Some(Planned { file, content }))
    }
}

/// Picks the files of peers passed as unknown that stay, and claims their host names so
/// that no listed peer gets a second router for the same host. A kept file whose host a
/// local route now claims is not kept, because local routes win, so the caller deletes it.
///
/// Only a peer's first entry counts, as in [`RouteSync::sync`]'s remote planning.
fn keep_unknown_peer_files<'a>(
    scan: &'a files::DirScan,
    remote: &[RemoteNodeRoutes],
    claimed: &mut BTreeMap<String, Claim>,
) -> BTreeSet<&'a str> {
    let mut first_entries: BTreeMap<&str, &PeerServices> = BTreeMap::new();
    let mut peers: Vec<&RemoteNodeRoutes> = remote.iter().collect();
    peers.sort_by(|a, b| a.node.cmp(&b.node));
    for peer in peers {
        first_entries
            .entry(peer.node.as_str())
            .or_insert(&peer.services);
    }

    let mut kept = BTreeSet::new();
    for (name, (owner, host)) in &scan.owned {
        let Owner::Remote { node, service } = owner else {
            continue;
        };
        if !matches!(
            first_entries.get(node.as_str()),
            Some(PeerServices::Unknown)
        ) {
            continue;
        }
        if let Some(Claim::Local { service: local }) = claimed.get(host) {
            info!(
                file = %name,
                node = %node,
                service = %service,
                host = %host,
                local_service = %local,
                "not keeping the route of an unknown peer because a local route now serves its host"
            );
            continue;
        }
        claimed.entry(host.clone()).or_insert_with(|| Claim::Kept {
            node: node.clone(),
            service: service.clone(),
        });
        kept.insert(name.as_str());
    }
    kept
}
