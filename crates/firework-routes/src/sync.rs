//! One route sync: validate local routes, choose remote routes, write and delete files.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use firework_model::names;
use tracing::{debug, info, info_span};

use crate::error::{RouteError, RoutesError};
use crate::files::{self, DirScan};
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
    /// Firework's files that no written route accounts for, kept as they were: those of
    /// peers passed as [`PeerServices::Unknown`] and those of skipped local routes.
    pub kept: Vec<String>,
    /// Remote routes not written, with the reason.
    pub skipped: Vec<SkippedRoute>,
    /// Local routes not written, with the reason, in service name order.
    pub skipped_local: Vec<SkippedLocalRoute>,
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

/// A local service that got no new route. Its file from an earlier sync, if any, stays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedLocalRoute {
    /// The service name.
    pub service: String,
    /// The reason no route was written.
    pub reason: RouteError,
    /// The service's route file from an earlier sync, kept byte for byte, or `None` when
    /// it had none and so has no route.
    pub kept_file: Option<String>,
}

/// The route that claimed a host name first.
#[derive(Debug, Clone)]
enum Claim {
    Local { service: String },
    KeptLocal { service: String },
    Remote { node: String, service: String },
    Kept { node: String, service: String },
}

impl std::fmt::Display for Claim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Claim::Local { service } => write!(f, "local service {service:?}"),
            Claim::KeptLocal { service } => {
                write!(f, "the kept route of skipped local service {service:?}")
            }
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

/// The checked form of one local route, before host names are claimed.
#[derive(Debug)]
enum LocalCheck<'a> {
    /// A route to write.
    Route {
        service: &'a str,
        host: String,
        ip: IpAddr,
        port: u16,
    },
    /// A skipped route whose file from an earlier sync stays; `host` is read from that
    /// file's ownership line.
    Kept {
        service: &'a str,
        file: &'a str,
        host: &'a str,
    },
}

impl RouteSync {
    /// Creates a syncer for `dir`. `entry_point` names the Traefik entry point of every
    /// router ([`DEFAULT_ENTRY_POINT`] unless the agent config names another). `ingress_domain` is the domain under which
    /// `metadata.subdomain` routes are published. With `None` or a blank value, the
    /// subdomain routes of local and peer services are skipped.
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
    /// Local routes are checked first. A local service with invalid routing keys, without
    /// guest IP or without backend port is skipped and lands in
    /// [`SyncReport::skipped_local`], and its existing file stays. An invalid or duplicate
    /// service name, a host name claimed twice by local routes, or an operator's file with
    /// a local route's name returns an error before a file is touched. Remote routes are
    /// best effort and land in [`SyncReport::skipped`]. Then changed files are written
    /// atomically, unchanged ones are left alone, and Firework's files that no route
    /// accounts for are deleted, except those of unknown peers and skipped local routes.
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
        let mut report = SyncReport::default();
        let (mut planned, mut kept_files) =
            self.plan_local(local, &scan, &foreign, &mut claimed, &mut report)?;
        kept_files.extend(keep_unknown_peer_files(&scan, remote, &mut claimed));
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
            if kept_files.contains(name.as_str()) {
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

    /// Checks every local route, renders the files of the valid ones and lists the others
    /// in `report.skipped_local`. Returns the planned files and the kept files of skipped
    /// routes. `claimed` receives the host names of both, mapped to the owning service.
    fn plan_local<'a>(
        &self,
        local: &'a [LocalRoute],
        scan: &'a DirScan,
        foreign: &BTreeSet<&str>,
        claimed: &mut BTreeMap<String, Claim>,
        report: &mut SyncReport,
    ) -> Result<(Vec<Planned>, BTreeSet<&'a str>), RoutesError> {
        let mut sorted: Vec<&LocalRoute> = local.iter().collect();
        sorted.sort_by(|a, b| a.service.cmp(&b.service));
        let mut seen = BTreeSet::new();
        let mut checked = Vec::new();
        for route in sorted {
            names::check_service_name(&route.service).map_err(|rule| RoutesError::LocalRoute {
                service: route.service.clone(),
                source: RouteError::InvalidServiceName {
                    name: route.service.clone(),
                    rule,
                },
            })?;
            if !seen.insert(route.service.as_str()) {
                return Err(RoutesError::DuplicateLocalService {
                    service: route.service.clone(),
                });
            }
            match self.check_local(route) {
                Ok(Some(check)) => checked.push(check),
                Ok(None) => {}
                Err(reason) => checked.extend(skip_local(route, reason, scan, report)),
            }
        }

        let mut planned = Vec::new();
        let mut kept_files = BTreeSet::new();
        for check in checked {
            match check {
                LocalCheck::Route {
                    service,
                    host,
                    ip,
                    port,
                } => planned.push(self.plan_local_file(service, host, ip, port, foreign, claimed)?),
                LocalCheck::Kept {
                    service,
                    file,
                    host,
                } => {
                    if let Some(Claim::Local { service: first }) = claimed.get(host) {
                        return Err(RoutesError::KeptLocalHost {
                            host: host.to_string(),
                            skipped_service: service.to_string(),
                            service: first.clone(),
                        });
                    }
                    // Firework never writes two local files with one host name, so two kept
                    // ones come from a hand edit. Both stay, and the first claim counts.
                    claimed
                        .entry(host.to_string())
                        .or_insert_with(|| Claim::KeptLocal {
                            service: service.to_string(),
                        });
                    kept_files.insert(file);
                }
            }
        }
        Ok((planned, kept_files))
    }

    /// Claims `host` for a valid local route and renders its file. Fails when another
    /// local route or a kept local file has claimed `host`, or an operator's file has the
    /// route's file name.
    fn plan_local_file(
        &self,
        service: &str,
        host: String,
        ip: IpAddr,
        port: u16,
        foreign: &BTreeSet<&str>,
        claimed: &mut BTreeMap<String, Claim>,
    ) -> Result<Planned, RoutesError> {
        match claimed.get(&host) {
            Some(Claim::Local { service: first }) => {
                return Err(RoutesError::DuplicateLocalHost {
                    host,
                    first: first.clone(),
                    second: service.to_string(),
                });
            }
            Some(Claim::KeptLocal { service: skipped }) => {
                return Err(RoutesError::KeptLocalHost {
                    host,
                    skipped_service: skipped.clone(),
                    service: service.to_string(),
                });
            }
            _ => {}
        }
        let owner = Owner::Local {
            service: service.to_string(),
        };
        let file = owner.file_name();
        if foreign.contains(file.as_str()) {
            return Err(RoutesError::LocalRoute {
                service: service.to_string(),
                source: RouteError::ForeignFile { file },
            });
        }
        let content = render(&owner, &host, &self.entry_point, ip, port);
        claimed.insert(
            host,
            Claim::Local {
                service: service.to_string(),
            },
        );
        Ok(Planned { file, content })
    }

    /// Resolves one local route's host name, guest IP and backend port. Returns `None`
    /// for an unrouted service, and the reason to skip the route for a routed service
    /// that lacks one of them.
    fn check_local<'a>(&self, route: &'a LocalRoute) -> Result<Option<LocalCheck<'a>>, RouteError> {
        let Some(host) = route.keys.resolve(self.ingress_domain.as_deref())? else {
            return Ok(None);
        };
        let ip = route.guest_ip.ok_or(RouteError::MissingGuestIp)?;
        let port = route.backend_port.ok_or(RouteError::MissingBackendPort)?;
        Ok(Some(LocalCheck::Route {
            service: &route.service,
            host,
            ip,
            port,
        }))
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
                debug!(node = %peer.node, service, reason = %reason, "skipping remote route");
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
/// local route or a skipped local route's kept file now claims is not kept, because local
/// routes win, so the caller deletes it.
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
        if let Some(Claim::Local { service: local } | Claim::KeptLocal { service: local }) =
            claimed.get(host)
        {
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

/// Lists a skipped local route in `report.skipped_local`. Returns the route's file from an
/// earlier sync, which stays, or `None` when it has none.
fn skip_local<'a>(
    route: &'a LocalRoute,
    reason: RouteError,
    scan: &'a DirScan,
    report: &mut SyncReport,
) -> Option<LocalCheck<'a>> {
    let kept = kept_local_file(scan, &route.service);
    debug!(
        service = %route.service,
        reason = %reason,
        kept_file = kept.map(|(file, _)| file),
        "skipping local route"
    );
    report.skipped_local.push(SkippedLocalRoute {
        service: route.service.clone(),
        reason,
        kept_file: kept.map(|(file, _)| file.to_string()),
    });
    let (file, host) = kept?;
    Some(LocalCheck::Kept {
        service: &route.service,
        file,
        host,
    })
}

/// Returns the file name and routed host of `service`'s local route file from an earlier
/// sync, if the directory has one.
fn kept_local_file<'a>(scan: &'a DirScan, service: &str) -> Option<(&'a str, &'a str)> {
    let file = Owner::Local {
        service: service.to_string(),
    }
    .file_name();
    let (name, (_, host)) = scan.owned.get_key_value(&file)?;
    Some((name.as_str(), host.as_str()))
}
