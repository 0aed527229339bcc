//! The route step: Traefik file-provider routes through `firework-routes`, for this
//! node's desired services and for peers read from the enricher's placement index.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use firework_net::AppliedNetwork;
use firework_routes::{
    PeerServices, RemoteNodeRoutes, RemoteService, RouteKeys, SyncReport, local_routes,
};
use firework_store::{ConfigStore, PlacementIndex, StoreErrorKind, error_chain};
use futures::FutureExt;
use futures::future::BoxFuture;
use tracing::{info, warn};

use crate::desired::LabeledService;
use crate::error::BoxError;
use crate::hooks::{RouteSync, RoutesSynced};

/// Writes routes into `traefik_config_dir` after every apply.
#[derive(Debug)]
pub struct TraefikRoutes {
    sync: firework_routes::RouteSync,
    store: Arc<dyn ConfigStore>,
    own_labels: BTreeSet<String>,
    /// The peers of the last index that was read, kept when the index cannot be read.
    last_peers: Mutex<Option<Vec<String>>>,
    /// The skipped routes of the last successful sync.
    skips: Mutex<SkipLog>,
}

/// The skipped routes of the last sync with their reasons. A skip is logged when it
/// appears or its reason changes, and once more when it ends, so a service that stays
/// broken does not log a warning every tick.
#[derive(Debug, Default)]
struct SkipLog {
    local: BTreeMap<String, String>,
    /// By node and service; the service is empty for a problem of the node itself.
    peers: BTreeMap<(String, String), String>,
}

impl SkipLog {
    /// Logs how the skips of `report` differ from the last report's and remembers them.
    fn update(&mut self, report: &SyncReport) {
        let mut local = BTreeMap::new();
        for skip in &report.skipped_local {
            let reason = skip.reason.to_string();
            if self.local.get(&skip.service) != Some(&reason) {
                match &skip.kept_file {
                    Some(file) => warn!(
                        service = %skip.service,
                        %reason,
                        kept_file = %file,
                        "local route skipped; its earlier route file stays until the service is fixed"
                    ),
                    None => warn!(
                        service = %skip.service,
                        %reason,
                        "local route skipped; the service has no route until it is fixed"
                    ),
                }
            }
            local.insert(skip.service.clone(), reason);
        }
        for service in self.local.keys() {
            if !local.contains_key(service) {
                info!(service = %service, "local route no longer skipped");
            }
        }
        self.local = local;

        let peers: BTreeMap<(String, String), String> = report
            .skipped
            .iter()
            .map(|skip| {
                let key = (skip.node.clone(), skip.service.clone());
                (key, skip.reason.to_string())
            })
            .collect();
        for ((node, service), reason) in &peers {
            let key = (node.clone(), service.clone());
            if self.peers.get(&key) != Some(reason) {
                warn!(node = %node, service = %service, %reason, "peer route skipped");
            }
        }
        for (node, service) in self.peers.keys() {
            if !peers.contains_key(&(node.clone(), service.clone())) {
                info!(node = %node, service = %service, "peer route no longer skipped");
            }
        }
        self.peers = peers;
    }
}

impl TraefikRoutes {
    /// Routes written by `sync`; peers come from `store`'s placement index, leaving out
    /// `own_labels`.
    pub fn new(
        sync: firework_routes::RouteSync,
        store: Arc<dyn ConfigStore>,
        own_labels: &[String],
    ) -> TraefikRoutes {
        TraefikRoutes {
            sync,
            store,
            own_labels: own_labels.iter().cloned().collect(),
            last_peers: Mutex::new(None),
            skips: Mutex::new(SkipLog::default()),
        }
    }

    /// Reads the peers from the placement index. When it cannot be read, the peers of
    /// the last good index are passed as unknown, so their files are kept. A missing
    /// index means no peers. `None` means the peers are unknown and no index was ever
    /// read, so the sync must not run.
    async fn peers(&self) -> Option<Vec<RemoteNodeRoutes>> {
        let mut last = self
            .last_peers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        let result = self.store.fetch_index().await;
        let peers = match result {
            Ok(snapshot) => Some(index_peers(&snapshot.index, &self.own_labels)),
            Err(error) if error.kind == StoreErrorKind::NotFound => {
                info!("no placement index in the store; routing no peers");
                Some(Vec::new())
            }
            Err(error) => {
                let error = error_chain(&error);
                match &last {
                    Some(names) => {
                        warn!(%error, peers = names.len(), "cannot read the placement index; keeping the routes of the last known peers");
                        return Some(names.iter().map(RemoteNodeRoutes::unknown).collect());
                    }
                    None => {
                        warn!(%error, "cannot read the placement index and none was read before; routes stay as they are");
                        return None;
                    }
                }
            }
        };
        if let Some(peers) = &peers {
            last = Some(peers.iter().map(|peer| peer.node.clone()).collect());
            *self
                .last_peers
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) = last;
        }
        peers
    }
}

/// Converts the placement index to peer routes, without the nodes named in `own_labels`.
pub fn index_peers(index: &PlacementIndex, own_labels: &BTreeSet<String>) -> Vec<RemoteNodeRoutes> {
    index
        .nodes
        .iter()
        .filter(|(node, _)| !own_labels.contains(*node))
        .map(|(node, entry)| RemoteNodeRoutes {
            node: node.clone(),
            host_ip: entry.host_ip,
            services: PeerServices::Listed(
                entry
                    .services
                    .iter()
                    .map(|service| RemoteService {
                        service: service.name.clone(),
                        host_port: service.host_ports.first().copied(),
                        keys: RouteKeys::from_metadata(&service.metadata),
                    })
                    .collect(),
            ),
        })
        .collect()
}

impl RouteSync for TraefikRoutes {
    fn sync<'a>(
        &'a self,
        services: &'a [LabeledService],
        network: Option<&'a AppliedNetwork>,
    ) -> BoxFuture<'a, Result<Option<RoutesSynced>, BoxError>> {
        async move {
            let Some(remote) = self.peers().await else {
                return Err(
                    "placement index unreadable and never read; routes left as they are".into(),
                );
            };
            let guest_ips: BTreeMap<String, IpAddr> = network
                .map(|network| {
                    network
                        .services
                        .iter()
                        .map(|(name, state)| (name.clone(), IpAddr::V4(state.address)))
                        .collect()
                })
                .unwrap_or_default();
            let services: Vec<_> = services.iter().map(|s| s.service.clone()).collect();
            let local = local_routes(&services, &guest_ips);
            let sync = self.sync.clone();
            let report = tokio::task::spawn_blocking(move || sync.sync(&local, &remote))
                .await
                .map_err(|error| -> BoxError { Box::new(error) })?
                .map_err(|error| -> BoxError { Box::new(error) })?;
            self.skips
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .update(&report);
            let changed = !report.written.is_empty() || !report.deleted.is_empty();
            if changed {
                info!(written = ?report.written, deleted = ?report.deleted, "routes synced");
            }
            Ok(Some(RoutesSynced {
                changed,
                skipped_local: report.skipped_local.len(),
            }))
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    use firework_routes::{RouteError, SkippedLocalRoute, SkippedRoute};

    /// A log writer that appends to a shared buffer.
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Runs `update` on `log` and returns the lines it logged.
    fn logged(log: &mut SkipLog, report: &SyncReport) -> Vec<String> {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = Arc::clone(&buffer);
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || Captured(Arc::clone(&writer)))
            .with_ansi(false)
            .without_time()
            .finish();
        tracing::subscriber::with_default(subscriber, || log.update(report));
        let text = String::from_utf8(buffer.lock().unwrap().clone()).unwrap();
        text.lines().map(str::to_owned).collect()
    }

    fn report(local_reason: Option<RouteError>, peer_reason: Option<RouteError>) -> SyncReport {
        SyncReport {
            skipped_local: local_reason
                .into_iter()
                .map(|reason| SkippedLocalRoute {
                    service: "web".to_owned(),
                    reason,
                    kept_file: Some("firework-local-web.yaml".to_owned()),
                })
                .collect(),
            skipped: peer_reason
                .into_iter()
                .map(|reason| SkippedRoute {
                    node: "node-2".to_owned(),
                    service: "api".to_owned(),
                    reason,
                })
                .collect(),
            ..SyncReport::default()
        }
    }

    #[test]
    fn skips_logged_on_change() {
        let mut log = SkipLog::default();
        let broken = report(
            Some(RouteError::MissingBackendPort),
            Some(RouteError::MissingHostIp),
        );

        let first = logged(&mut log, &broken);
        assert_eq!(first.len(), 2, "{first:?}");
        assert!(first[0].starts_with(" WARN "), "{first:?}");
        assert!(first[0].contains("local route skipped; its earlier route file stays"));
        assert!(first[0].contains("service=web"), "{first:?}");
        assert!(
            first[0].contains("reason=the service is routed but has no usable backend port"),
            "{first:?}"
        );
        assert!(
            first[0].contains("kept_file=firework-local-web.yaml"),
            "{first:?}"
        );
        assert!(first[1].starts_with(" WARN "), "{first:?}");
        assert!(first[1].contains("peer route skipped"), "{first:?}");
        assert!(first[1].contains("node=node-2 service=api"), "{first:?}");

        let again = logged(&mut log, &broken);
        assert!(again.is_empty(), "unchanged skips logged again: {again:?}");

        let changed = report(
            Some(RouteError::MissingGuestIp),
            Some(RouteError::MissingHostIp),
        );
        let after_change = logged(&mut log, &changed);
        assert_eq!(after_change.len(), 1, "{after_change:?}");
        assert!(
            after_change[0].contains("reason=the service is routed but has no guest IP"),
            "{after_change:?}"
        );

        let fixed = logged(&mut log, &report(None, None));
        assert_eq!(fixed.len(), 2, "{fixed:?}");
        assert!(fixed[0].starts_with(" INFO "), "{fixed:?}");
        assert!(
            fixed[0].contains("local route no longer skipped service=web"),
            "{fixed:?}"
        );
        assert!(
            fixed[1].contains("peer route no longer skipped node=node-2 service=api"),
            "{fixed:?}"
        );
    }

    #[test]
    fn index_peers_skip_own_labels() {
        let index = PlacementIndex::from_json(
            br#"{"version": 1, "nodes": {
                "web": {"host_ip": "10.0.0.1", "services": [{"name": "a", "host_ports": [80]}]},
                "db": {"host_ip": "10.0.0.2", "services": [
                    {"name": "b", "host_ports": [8080, 9090], "metadata": {"host": "b.example"}},
                    {"name": "c", "host_ports": []}
                ]}
            }}"#,
        )
        .unwrap();
        let own = BTreeSet::from(["web".to_owned()]);
        let peers = index_peers(&index, &own);
        assert_eq!(peers.len(), 1);
        assert_eq!(peers[0].node, "db");
        assert_eq!(peers[0].host_ip, Some("10.0.0.2".parse().unwrap()));
        let PeerServices::Listed(services) = &peers[0].services else {
            panic!("db must be listed");
        };
        assert_eq!(services[0].service, "b");
        assert_eq!(services[0].host_port, Some(8080));
        assert!(services[0].keys.is_routed());
        assert_eq!(services[1].host_port, None);
    }
}
