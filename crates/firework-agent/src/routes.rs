//! The route step: Traefik file-provider routes through `firework-routes`, for this
//! node's desired services and for peers read from the enricher's placement index.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use firework_net::AppliedNetwork;
use firework_routes::{PeerServices, RemoteNodeRoutes, RemoteService, RouteKeys, local_routes};
use firework_store::{ConfigStore, PlacementIndex, StoreErrorKind, error_chain};
use futures::FutureExt;
use futures::future::BoxFuture;
use tracing::{info, warn};

use crate::desired::LabeledService;
use crate::error::BoxError;
use crate::hooks::RouteSync;

/// Writes routes into `traefik_config_dir` after every apply.
#[derive(Debug)]
pub struct TraefikRoutes {
    sync: firework_routes::RouteSync,
    store: Arc<dyn ConfigStore>,
    own_labels: BTreeSet<String>,
    /// The peers of the last index that was read, kept when the index cannot be read.
    last_peers: Mutex<Option<Vec<String>>>,
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
    ) -> BoxFuture<'a, Result<Option<bool>, BoxError>> {
        async move {
            let Some(remote) = self.peers().await else {
                return Err("placement index unreadable and never read; routes left as they are".into());
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
            for skipped in &report.skipped {
                warn!(node = %skipped.node, service = %skipped.service, reason = %skipped.reason, "peer route skipped");
            }
            let changed = !report.written.is_empty() || !report.deleted.is_empty();
            if changed {
                info!(written = ?report.written, deleted = ?report.deleted, "routes synced");
            }
            Ok(Some(changed))
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

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
