//! Traefik file-provider routes for the services of a Firework node and its peers.
//!
//! The agent calls [`RouteSync::sync`] after each reconcile with two lists. This node's
//! services are [`LocalRoute`]s, built by [`local_routes`] from the desired services and
//! the guest IPs the agent assigned. The peers' services are [`RemoteNodeRoutes`], built
//! by [`RemoteNodeRoutes::from_node_config`], or [`RemoteNodeRoutes::unknown`] for a peer
//! whose config could not be read. The call does blocking file I/O, so async code runs
//! it on `tokio::task::spawn_blocking`. Run one sync at a time per directory, because
//! concurrent syncs share temporary file names.
//!
//! ```no_run
//! use std::collections::BTreeMap;
//! use firework_routes::{RemoteNodeRoutes, RouteSync, local_routes};
//! # fn example(
//! #     services: &[firework_model::Service],
//! #     peers: &[(String, firework_model::NodeConfig)],
//! # ) -> Result<(), firework_routes::RoutesError> {
//! let routes = RouteSync::new("/etc/traefik/dynamic", "web", Some("example.com"))?;
//! let guest_ips = BTreeMap::new(); // service name -> assigned guest IP
//! let local = local_routes(services, &guest_ips);
//! let remote: Vec<_> = peers
//!     .iter()
//!     .map(|(node, config)| RemoteNodeRoutes::from_node_config(node, config))
//!     .collect();
//! let report = routes.sync(&local, &remote)?;
//! println!("wrote {:?}, deleted {:?}", report.written, report.deleted);
//! # Ok(())
//! # }
//! ```
//!
//! # Files
//!
//! One file per routed service: `firework-local-<service>.yaml` with router and service
//! `fw-local-<service>` pointing at `http://<guest_ip>:<backend port>`, and
//! `firework-remote-<node>_<service>.yaml` with `fw-remote-<node>_<service>` pointing at
//! `http://<peer host_ip>:<first host_port>`. The rule is ``Host(`<host>`)`` where the
//! host is `metadata.host`, or `<metadata.subdomain>.<ingress_domain>`. The first line of
//! every file marks it as Firework's; only files with a Firework name prefix and that line
//! are ever rewritten or deleted, so an operator's files in the same directory survive.
//!
//! # Rules
//!
//! * A local route with invalid routing keys (both keys, an invalid value, a subdomain
//!   without ingress domain), without guest IP or without backend port is skipped and
//!   listed in [`SyncReport::skipped_local`]; the other services' routes are written as
//!   usual. The skipped service's file from an earlier sync stays byte for byte (listed in
//!   [`SyncReport::kept`]), so a bad edit does not take a working route down, and the host
//!   name in that file counts as claimed. A skipped service without such a file gets none.
//! * These local problems still fail the sync before any file changes:
//!   * an invalid service name or a service listed twice. The model rejects both when it
//!     parses a node config, so they mean the caller passed unchecked input.
//!   * two local routes with one host name, a kept file's host included. Skipping one of
//!     the two would pick the route that serves the host by name order.
//!   * a route file name taken by a file Firework did not write. That is a conflict in
//!     the directory, not in a service's config, and the operator resolves it once.
//! * Remote routes are best effort: peers are visited in node-name order and services in
//!   name order. A route is skipped (and listed in [`SyncReport::skipped`]) for invalid
//!   keys, a peer without `host_ip`, a service without port forward, or a host name
//!   already claimed. Local routes claim their host names first.
//! * A peer passed as unknown keeps its existing files unchanged, and their host names
//!   count as claimed for the listed peers. A kept file whose host name a local route now
//!   serves is deleted, because local routes win.
//! * The sync logs skips at debug level only, because it runs on every reconcile. The
//!   caller reports [`SyncReport::skipped`] and [`SyncReport::skipped_local`]. The agent
//!   logs a skip when it appears or its reason changes.
//! * Each file is written to a temporary `.firework-*.tmp` file, flushed and renamed into
//!   place, so Traefik never reads a partial file; files whose bytes are unchanged are not
//!   rewritten. Stale files are deleted only after all new files are in place.

mod error;
mod files;
mod hostname;
mod render;
mod route;
mod sync;

pub use error::{RouteError, RoutesError};
pub use hostname::{RouteKeys, normalize_domain};
pub use render::{LOCAL_FILE_PREFIX, OWNERSHIP_MARKER, REMOTE_FILE_PREFIX};
pub use route::{LocalRoute, PeerServices, RemoteNodeRoutes, RemoteService, local_routes};
pub use sync::{DEFAULT_ENTRY_POINT, RouteSync, SkippedLocalRoute, SkippedRoute, SyncReport};
