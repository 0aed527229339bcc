//! Route sync against a real directory: content, ownership, conflicts and atomicity.

// Helpers outside #[test] functions unwrap too, because a panic there is a test failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::{
    names, read, service, snapshot, with_forward, with_health_port, with_meta, with_network,
};
use firework_model::NodeConfig;
use firework_routes::{
    LocalRoute, PeerServices, RemoteNodeRoutes, RemoteService, RouteError, RouteKeys, RouteSync,
    RoutesError, local_routes,
};

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn local(name: &str, guest_ip: &str, port: u16, host: &str) -> LocalRoute {
    LocalRoute {
        service: name.to_string(),
        guest_ip: Some(ip(guest_ip)),
        backend_port: Some(port),
        keys: RouteKeys {
            host: Some(host.to_string()),
            subdomain: None,
        },
    }
}

fn local_sub(name: &str, guest_ip: &str, port: u16, subdomain: &str) -> LocalRoute {
    LocalRoute {
        keys: RouteKeys {
            host: None,
            subdomain: Some(subdomain.to_string()),
        },
        ..local(name, guest_ip, port, "unused")
    }
}

fn remote_service(name: &str, host_port: Option<u16>, subdomain: &str) -> RemoteService {
    RemoteService {
        service: name.to_string(),
        host_port,
        keys: RouteKeys {
            host: None,
            subdomain: Some(subdomain.to_string()),
        },
    }
}

fn peer(node: &str, host_ip: Option<&str>, services: Vec<RemoteService>) -> RemoteNodeRoutes {
    RemoteNodeRoutes {
        node: node.to_string(),
        host_ip: host_ip.map(ip),
        services: PeerServices::Listed(services),
    }
}

fn syncer(dir: &Path) -> RouteSync {
    RouteSync::new(
        dir,
        firework_routes::DEFAULT_ENTRY_POINT,
        Some("example.com"),
    )
    .unwrap()
}

#[test]
fn local_route_file_content() {
    let temp = tempfile::tempdir().unwrap();
    let routes = syncer(temp.path());

    let report = routes
        .sync(
            &[local("kibana", "172.16.0.2", 5601, "tenant-1.example.com")],
            &[],
        )
        .unwrap();

    assert_eq!(report.written, ["firework-local-kibana.yaml"]);
    let text = read(temp.path(), "firework-local-kibana.yaml");
    assert!(text.starts_with(
        "# managed-by: firework-routes kind=local service=kibana host=tenant-1.example.com\n"
    ));
    assert!(
        text.contains("rule: \"Host(`tenant-1.example.com`)\""),
        "{text}"
    );
    assert!(text.contains("url: \"http://172.16.0.2:5601\""), "{text}");
    assert!(text.contains("\"fw-local-kibana\":"), "{text}");
    assert!(text.contains("service: \"fw-local-kibana\""), "{text}");
    let mode = fs::metadata(temp.path().join("firework-local-kibana.yaml"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644);
}

#[test]
fn remote_route_file_content() {
    let temp = tempfile::tempdir().unwrap();
    let routes = syncer(temp.path());
    let peers = [peer(
        "node-2",
        Some("10.0.1.5"),
        vec![remote_service("kibana", Some(5611), "tenant-1")],
    )];

    let report = routes.sync(&[], &peers).unwrap();

    assert_eq!(report.written, ["firework-remote-node-2_kibana.yaml"]);
    let text = read(temp.path(), "firework-remote-node-2_kibana.yaml");
    assert!(
        text.starts_with(
            "# managed-by: firework-routes kind=remote node=node-2 service=kibana host=tenant-1.example.com\n"
        )
    );
    assert!(
        text.contains("rule: \"Host(`tenant-1.example.com`)\""),
        "{text}"
    );
    assert!(text.contains("url: \"http://10.0.1.5:5611\""), "{text}");
    assert!(text.contains("\"fw-remote-node-2_kibana\":"), "{text}");
}

#[test]
fn entry_point_is_configurable() {
    let temp = tempfile::tempdir().unwrap();
    let routes = RouteSync::new(temp.path(), "websecure", None).unwrap();

    routes
        .sync(&[local("web", "172.16.0.2", 80, "web.example.net")], &[])
        .unwrap();

    let text = read(temp.path(), "firework-local-web.yaml");
    assert!(
        text.contains("entryPoints:\n        - \"websecure\"\n"),
        "{text}"
    );
}

#[test]
fn invalid_settings_rejected() {
    for bad in ["", "web secure", "web\"", &"a".repeat(65)] {
        let result = RouteSync::new("/nonexistent", bad, None);
        assert!(
            matches!(result, Err(RoutesError::InvalidEntryPoint { ref entry_point }) if entry_point == bad),
            "{bad:?}"
        );
    }
    let result = RouteSync::new("/nonexistent", "web", Some("https://example.com"));
    assert!(
        matches!(result, Err(RoutesError::InvalidIngressDomain { ref domain, .. }) if domain == "https://example.com"),
        "{result:?}"
    );
    // A blank domain means "no ingress domain", not an error.
    assert!(RouteSync::new("/nonexistent", "web", Some("  ")).is_ok());
}

#[test]
fn directory_created_when_missing() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("traefik").join("dynamic");

    syncer(&dir)
        .sync(&[local("web", "172.16.0.2", 80, "web.example.net")], &[])
        .unwrap();

    assert_eq!(names(&dir), ["firework-local-web.yaml"]);
    let mode = fs::metadata(&dir).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o755);
}

#[test]
fn unchanged_files_not_rewritten() {
    let temp = tempfile::tempdir().unwrap();
    let routes = syncer(temp.path());
    let local_routes = [local("kibana", "172.16.0.2", 5601, "tenant-1.example.com")];
    let peers = [peer(
        "node-2",
        Some("10.0.1.5"),
        vec![remote_service("other", Some(5611), "tenant-2")],
    )];
    routes.sync(&local_routes, &peers).unwrap();
    let before = snapshot(temp.path());

    let report = routes.sync(&local_routes, &peers).unwrap();

    assert!(report.written.is_empty(), "{report:?}");
    assert_eq!(
        report.unchanged,
        [
            "firework-local-kibana.yaml",
            "firework-remote-node-2_other.yaml"
        ]
    );
    assert_eq!(
        snapshot(temp.path()),
        before,
        "inode, mtime or bytes changed"
    );
}

#[test]
fn changed_file_replaced() {
    let temp = tempfile::tempdir().unwrap();
    let routes = syncer(temp.path());
    routes
        .sync(
            &[local("kibana", "172.16.0.2", 5601, "tenant-1.example.com")],
            &[],
        )
        .unwrap();

    let report = routes
        .sync(
            &[local("kibana", "172.16.0.9", 5601, "tenant-1.example.com")],
            &[],
        )
        .unwrap();

    assert_eq!(report.written, ["firework-local-kibana.yaml"]);
    let text = read(temp.path(), "firework-local-kibana.yaml");
    assert!(text.contains("http://172.16.0.9:5601"), "{text}");
    assert_eq!(names(temp.path()), ["firework-local-kibana.yaml"]);
}

#[test]
fn stale_owned_files_deleted() {
    let temp = tempfile::tempdir().unwrap();
    let routes = syncer(temp.path());
    routes
        .sync(
            &[
                local("a", "172.16.0.2", 80, "a.example.com"),
                local("b", "172.16.0.3", 80, "b.example.com"),
            ],
            &[peer(
                "node-2",
                Some("10.0.1.5"),
                vec![remote_service("c", Some(8080), "c")],
            )],
        )
        .unwrap();

    let report = routes
        .sync(&[local("a", "172.16.0.2", 80, "a.example.com")], &[])
        .unwrap();

    assert_eq!(
        report.deleted,
        ["firework-local-b.yaml", "firework-remote-node-2_c.yaml"]
    );
    assert_eq!(names(temp.path()), ["firework-local-a.yaml"]);
}

#[test]
fn operator_files_survive() {
    let temp = tempfile::tempdir().unwrap();
    let operator = [
        ("middlewares.yaml", "http: {}\n"),
        ("old-service.yaml", "http: {}\n"),
        ("traefik.toml", "# static config\n"),
        ("tls.yml", "tls: {}\n"),
        // Our prefix but no ownership line: still the operator's.
        ("firework-local-legacy.yaml", "http: {}\n"),
        // An ownership line that does not match the file name.
        (
            "firework-remote-x_y.yaml",
            "# managed-by: firework-routes kind=local service=y host=y.example.com\n",
        ),
    ];
    for (name, content) in operator {
        fs::write(temp.path().join(name), content).unwrap();
    }
    fs::create_dir(temp.path().join("firework-local-dir.yaml")).unwrap();
    std::os::unix::fs::symlink(
        "middlewares.yaml",
        temp.path().join("firework-local-link.yaml"),
    )
    .unwrap();
    let routes = syncer(temp.path());
    routes
        .sync(&[local("web", "172.16.0.2", 80, "web.example.com")], &[])
        .unwrap();

    let report = routes.sync(&[], &[]).unwrap();

    assert_eq!(report.deleted, ["firework-local-web.yaml"]);
    for (name, content) in operator {
        assert_eq!(read(temp.path(), name), content, "{name}");
    }
    assert!(temp.path().join("firework-local-dir.yaml").is_dir());
    let link = fs::read_link(temp.path().join("firework-local-link.yaml")).unwrap();
    assert_eq!(link, Path::new("middlewares.yaml"));
}

#[test]
fn symlink_blocks_local_route() {
    let temp = tempfile::tempdir().unwrap();
    fs::write(temp.path().join("target.yaml"), "http: {}\n").unwrap();
    std::os::unix::fs::symlink("target.yaml", temp.path().join("firework-local-web.yaml")).unwrap();
    let before = snapshot(temp.path());

    let error = syncer(temp.path())
        .sync(&[local("web", "172.16.0.2", 80, "web.example.com")], &[])
        .unwrap_err();

    assert!(
        matches!(
            error,
            RoutesError::LocalRoute {
                source: RouteError::ForeignFile { .. },
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(snapshot(temp.path()), before);
    assert!(
        fs::symlink_metadata(temp.path().join("firework-local-web.yaml"))
            .unwrap()
            .is_symlink()
    );
}

#[test]
fn foreign_file_blocks_local_route() {
    let temp = tempfile::tempdir().unwrap();
    fs::write(temp.path().join("firework-local-web.yaml"), "http: {}\n").unwrap();
    let before = snapshot(temp.path());

    let error = syncer(temp.path())
        .sync(&[local("web", "172.16.0.2", 80, "web.example.com")], &[])
        .unwrap_err();

    assert!(
        matches!(
            error,
            RoutesError::LocalRoute { ref service, source: RouteError::ForeignFile { ref file } }
                if service == "web" && file == "firework-local-web.yaml"
        ),
        "{error:?}"
    );
    assert_eq!(snapshot(temp.path()), before);
}

#[test]
fn foreign_file_skips_remote_route() {
    let temp = tempfile::tempdir().unwrap();
    fs::write(
        temp.path().join("firework-remote-n1_web.yaml"),
        "http: {}\n",
    )
    .unwrap();

    let report = syncer(temp.path())
        .sync(
            &[],
            &[peer(
                "n1",
                Some("10.0.1.5"),
                vec![remote_service("web", Some(80), "web")],
            )],
        )
        .unwrap();

    assert_eq!(report.skipped.len(), 1);
    assert_eq!(
        report.skipped[0].reason,
        RouteError::ForeignFile {
            file: "firework-remote-n1_web.yaml".to_string()
        }
    );
    assert_eq!(
        read(temp.path(), "firework-remote-n1_web.yaml"),
        "http: {}\n"
    );
}

fn assert_local_error_changes_nothing(routes: &[LocalRoute], check: impl Fn(&RoutesError) -> bool) {
    let temp = tempfile::tempdir().unwrap();
    let syncer = syncer(temp.path());
    syncer
        .sync(
            &[local("kibana", "172.16.0.2", 5601, "kibana.example.com")],
            &[peer(
                "node-2",
                Some("10.0.1.5"),
                vec![remote_service("other", Some(8080), "other")],
            )],
        )
        .unwrap();
    fs::write(temp.path().join("operator.yaml"), "http: {}\n").unwrap();
    let before = snapshot(temp.path());

    let error = syncer.sync(routes, &[]).unwrap_err();

    assert!(check(&error), "unexpected error: {error:?}");
    assert_eq!(snapshot(temp.path()), before, "files changed after {error}");
}

/// Checks that `bad` (the service `web`) is skipped with `reason` while the other routes
/// are written, by a syncer with `domain` as its ingress domain. Where `web` has a route
/// file from an earlier sync, that file stays byte for byte. In an empty directory no
/// file appears for `web`.
fn assert_local_skipped(domain: Option<&str>, bad: &LocalRoute, reason: &str) {
    assert_eq!(bad.service, "web");
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let routes = RouteSync::new(dir, "web", domain).unwrap();
    let peers = [RemoteNodeRoutes {
        node: "node-2".to_string(),
        host_ip: Some(ip("10.0.1.5")),
        services: PeerServices::Listed(vec![RemoteService {
            service: "other".to_string(),
            host_port: Some(8080),
            keys: RouteKeys {
                host: Some("other.example.com".to_string()),
                subdomain: None,
            },
        }]),
    }];
    routes
        .sync(
            &[
                local("kibana", "172.16.0.2", 5601, "kibana.example.com"),
                local("web", "172.16.0.3", 80, "web.example.com"),
            ],
            &peers,
        )
        .unwrap();
    let before = snapshot(dir);

    let report = routes
        .sync(
            &[
                local("kibana", "172.16.0.9", 5601, "kibana.example.com"),
                bad.clone(),
                local("new", "172.16.0.4", 80, "new.example.com"),
            ],
            &peers,
        )
        .unwrap();

    assert_eq!(report.skipped_local.len(), 1, "{report:?}");
    let skipped = &report.skipped_local[0];
    assert_eq!(skipped.service, "web");
    assert_eq!(skipped.reason.to_string(), reason);
    assert_eq!(
        skipped.kept_file.as_deref(),
        Some("firework-local-web.yaml")
    );
    assert_eq!(
        report.written,
        ["firework-local-kibana.yaml", "firework-local-new.yaml"]
    );
    assert_eq!(report.unchanged, ["firework-remote-node-2_other.yaml"]);
    assert_eq!(report.kept, ["firework-local-web.yaml"]);
    assert!(report.deleted.is_empty(), "{report:?}");
    assert!(report.skipped.is_empty(), "{report:?}");
    assert_eq!(
        snapshot(dir)["firework-local-web.yaml"],
        before["firework-local-web.yaml"],
        "the skipped service's file changed"
    );
    let kibana = read(dir, "firework-local-kibana.yaml");
    assert!(kibana.contains("http://172.16.0.9:5601"), "{kibana}");

    let empty = tempfile::tempdir().unwrap();
    let report = RouteSync::new(empty.path(), "web", domain)
        .unwrap()
        .sync(
            &[
                bad.clone(),
                local("kibana", "172.16.0.2", 5601, "kibana.example.com"),
            ],
            &[],
        )
        .unwrap();

    assert_eq!(report.skipped_local.len(), 1, "{report:?}");
    assert_eq!(report.skipped_local[0].reason.to_string(), reason);
    assert_eq!(report.skipped_local[0].kept_file, None);
    assert!(report.kept.is_empty(), "{report:?}");
    assert_eq!(names(empty.path()), ["firework-local-kibana.yaml"]);
}

#[test]
fn local_missing_guest_ip_skipped() {
    let mut route = local("web", "172.16.0.2", 80, "web.example.com");
    route.guest_ip = None;
    assert_local_skipped(
        Some("example.com"),
        &route,
        "the service is routed but has no guest IP; give it a network block",
    );
}

#[test]
fn local_missing_port_skipped() {
    let mut route = local("web", "172.16.0.2", 80, "web.example.com");
    route.backend_port = None;
    assert_local_skipped(
        Some("example.com"),
        &route,
        "the service is routed but has no usable backend port; add a port forward or a health check port",
    );
}

#[test]
fn local_both_keys_skipped() {
    let mut route = local("web", "172.16.0.2", 80, "web.example.com");
    route.keys.subdomain = Some("tenant-1".to_string());
    assert_local_skipped(
        Some("example.com"),
        &route,
        "metadata sets both host and subdomain: choose one",
    );
}

#[test]
fn local_invalid_host_skipped() {
    let route = local("web", "172.16.0.2", 80, "x.com`) || Host(`y.com");
    assert_local_skipped(
        Some("example.com"),
        &route,
        "invalid metadata.host \"x.com`) || Host(`y.com\": each dot-separated label needs 1 to 63 characters of a-z, 0-9 and '-', not starting or ending with '-'",
    );
    let empty = local("web", "172.16.0.2", 80, "  ");
    assert_local_skipped(
        Some("example.com"),
        &empty,
        "invalid metadata.host \"  \": the host name is empty",
    );
}

#[test]
fn local_invalid_subdomain_skipped() {
    let route = local_sub("web", "172.16.0.2", 80, "Bad.Label");
    assert_local_skipped(
        Some("example.com"),
        &route,
        "invalid metadata.subdomain \"Bad.Label\": use 1 to 63 characters of a-z, 0-9 and '-', not starting or ending with '-'",
    );
}

#[test]
fn local_subdomain_without_domain_skipped() {
    let route = local_sub("web", "172.16.0.2", 80, "tenant-1");
    assert_local_skipped(
        None,
        &route,
        "metadata.subdomain \"tenant-1\" requires the agent's ingress_domain; set it",
    );
}

#[test]
fn skipped_route_recovers() {
    let temp = tempfile::tempdir().unwrap();
    let routes = syncer(temp.path());
    let mut broken = local("web", "172.16.0.2", 80, "web.example.com");
    broken.backend_port = None;
    routes.sync(std::slice::from_ref(&broken), &[]).unwrap();
    assert!(names(temp.path()).is_empty());

    let report = routes
        .sync(&[local("web", "172.16.0.2", 80, "web.example.com")], &[])
        .unwrap();

    assert!(report.skipped_local.is_empty(), "{report:?}");
    assert_eq!(report.written, ["firework-local-web.yaml"]);
}

#[test]
fn unrouted_service_file_deleted() {
    // Removing both routing keys is no error: the service is unrouted, so its route goes.
    let temp = tempfile::tempdir().unwrap();
    let routes = syncer(temp.path());
    routes
        .sync(&[local("web", "172.16.0.2", 80, "web.example.com")], &[])
        .unwrap();
    let mut unrouted = local("web", "172.16.0.2", 80, "unused");
    unrouted.keys = RouteKeys::default();

    let report = routes.sync(&[unrouted], &[]).unwrap();

    assert!(report.skipped_local.is_empty(), "{report:?}");
    assert_eq!(report.deleted, ["firework-local-web.yaml"]);
    assert!(names(temp.path()).is_empty());
}

/// Writes a route for `web` at `web.example.com`, then breaks `web` (no backend port).
fn sync_then_break_web(routes: &RouteSync) -> LocalRoute {
    routes
        .sync(&[local("web", "172.16.0.2", 80, "web.example.com")], &[])
        .unwrap();
    let mut broken = local("web", "172.16.0.2", 80, "web.example.com");
    broken.backend_port = None;
    broken
}

#[test]
fn kept_local_host_blocks_peer() {
    let temp = tempfile::tempdir().unwrap();
    let routes = syncer(temp.path());
    let broken = sync_then_break_web(&routes);
    let peers = [peer(
        "node-2",
        Some("10.0.1.5"),
        vec![RemoteService {
            service: "web".to_string(),
            host_port: Some(8080),
            keys: RouteKeys {
                host: Some("web.example.com".to_string()),
                subdomain: None,
            },
        }],
    )];

    let report = routes.sync(&[broken], &peers).unwrap();

    assert_eq!(report.kept, ["firework-local-web.yaml"]);
    assert_eq!(names(temp.path()), ["firework-local-web.yaml"]);
    assert_eq!(report.skipped.len(), 1, "{report:?}");
    assert_eq!(
        report.skipped[0].reason,
        RouteError::HostClaimed {
            host: "web.example.com".to_string(),
            owner: "the kept route of skipped local service \"web\"".to_string(),
        }
    );
}

#[test]
fn kept_local_host_replaces_unknown_peer() {
    let temp = tempfile::tempdir().unwrap();
    let routes = syncer(temp.path());
    routes
        .sync(
            &[local("web", "172.16.0.2", 80, "web.example.com")],
            &[peer(
                "node-2",
                Some("10.0.1.5"),
                vec![remote_service("shop", Some(8080), "shop")],
            )],
        )
        .unwrap();
    // A hand-edited ownership line makes the peer's kept file claim web's host too.
    let peer_file = temp.path().join("firework-remote-node-2_shop.yaml");
    let text = fs::read_to_string(&peer_file)
        .unwrap()
        .replace("host=shop.example.com", "host=web.example.com");
    fs::write(&peer_file, text).unwrap();
    let mut broken = local("web", "172.16.0.2", 80, "web.example.com");
    broken.guest_ip = None;

    let report = routes
        .sync(&[broken], &[RemoteNodeRoutes::unknown("node-2")])
        .unwrap();

    assert_eq!(report.kept, ["firework-local-web.yaml"]);
    assert_eq!(report.deleted, ["firework-remote-node-2_shop.yaml"]);
}

#[test]
fn kept_local_host_conflict_fails() {
    // The valid service sorts after and before the skipped one: both orders fail.
    for other in ["api", "zoo"] {
        let temp = tempfile::tempdir().unwrap();
        let routes = syncer(temp.path());
        let broken = sync_then_break_web(&routes);
        let before = snapshot(temp.path());

        let error = routes
            .sync(
                &[broken, local(other, "172.16.0.3", 80, "Web.Example.com")],
                &[],
            )
            .unwrap_err();

        assert!(
            matches!(
                &error,
                RoutesError::KeptLocalHost { host, skipped_service, service }
                    if host == "web.example.com" && skipped_service == "web" && service == other
            ),
            "{other}: {error:?}"
        );
        assert_eq!(
            error.to_string(),
            format!(
                "local service \"{other}\" routes host \"web.example.com\", which the kept route of skipped local service \"web\" still serves; fix \"web\" or choose another host"
            )
        );
        assert_eq!(snapshot(temp.path()), before, "{other}: files changed");
    }
}

#[test]
fn local_duplicate_host_fails() {
    let routes = [
        local_sub("svc-a", "172.16.0.2", 80, "tenant-1"),
        local("svc-b", "172.16.0.3", 80, "Tenant-1.Example.com."),
    ];
    assert_local_error_changes_nothing(&routes, |error| {
        matches!(error, RoutesError::DuplicateLocalHost { host, first, second }
            if host == "tenant-1.example.com" && first == "svc-a" && second == "svc-b")
    });
}

#[test]
fn local_duplicate_service_fails() {
    let routes = [
        local("web", "172.16.0.2", 80, "a.example.com"),
        local("web", "172.16.0.3", 80, "b.example.com"),
    ];
    assert_local_error_changes_nothing(
        &routes,
        |error| matches!(error, RoutesError::DuplicateLocalService { service } if service == "web"),
    );
}

#[test]
fn local_invalid_name_fails() {
    let routes = [local("../web", "172.16.0.2", 80, "a.example.com")];
    assert_local_error_changes_nothing(
        &routes,
        |error| matches!(error, RoutesError::LocalRoute { service, source: RouteError::InvalidServiceName { .. } } if service == "../web"),
    );
}

#[test]
fn unrouted_local_ignored() {
    let temp = tempfile::tempdir().unwrap();
    let route = LocalRoute {
        service: "db".to_string(),
        guest_ip: None,
        backend_port: None,
        keys: RouteKeys::default(),
    };

    let report = syncer(temp.path()).sync(&[route], &[]).unwrap();

    assert!(report.written.is_empty());
    assert!(names(temp.path()).is_empty());
}

#[test]
fn local_wins_over_remote() {
    let temp = tempfile::tempdir().unwrap();
    let peers = [peer(
        "node-2",
        Some("10.0.1.5"),
        vec![remote_service("svc-a", Some(5612), "tenant-1")],
    )];

    let report = syncer(temp.path())
        .sync(
            &[local_sub("svc-a", "172.16.0.2", 5601, "tenant-1")],
            &peers,
        )
        .unwrap();

    assert_eq!(names(temp.path()), ["firework-local-svc-a.yaml"]);
    assert_eq!(report.skipped.len(), 1);
    assert_eq!(
        report.skipped[0].reason,
        RouteError::HostClaimed {
            host: "tenant-1.example.com".to_string(),
            owner: "local service \"svc-a\"".to_string()
        }
    );
}

#[test]
fn remote_conflict_resolved_by_node_name() {
    for reversed in [false, true] {
        let temp = tempfile::tempdir().unwrap();
        let mut peers = vec![
            peer(
                "node-a",
                Some("10.0.1.5"),
                vec![remote_service("svc-a", Some(5611), "t")],
            ),
            peer(
                "node-b",
                Some("10.0.1.9"),
                vec![remote_service("svc-b", Some(5611), "t")],
            ),
        ];
        if reversed {
            peers.reverse();
        }

        let report = syncer(temp.path()).sync(&[], &peers).unwrap();

        assert_eq!(
            names(temp.path()),
            ["firework-remote-node-a_svc-a.yaml"],
            "{reversed}"
        );
        assert_eq!(report.skipped.len(), 1);
        assert_eq!(report.skipped[0].node, "node-b");
    }
}

#[test]
fn remote_problems_skipped() {
    let temp = tempfile::tempdir().unwrap();
    let peers = [
        peer("no-ip", None, vec![remote_service("a", Some(80), "a")]),
        peer(
            "n1",
            Some("10.0.1.5"),
            vec![
                remote_service("no-port", None, "b"),
                remote_service("bad-sub", Some(80), "Bad.Label"),
                remote_service("Bad_Name", Some(80), "c"),
                remote_service("ok", Some(80), "ok"),
                RemoteService {
                    service: "unrouted".to_string(),
                    host_port: Some(80),
                    keys: RouteKeys::default(),
                },
            ],
        ),
        peer(
            "n1",
            Some("10.0.1.6"),
            vec![remote_service("dup", Some(80), "dup")],
        ),
        peer(
            "bad/node",
            Some("10.0.1.7"),
            vec![remote_service("e", Some(80), "e")],
        ),
    ];

    let report = syncer(temp.path()).sync(&[], &peers).unwrap();

    assert_eq!(names(temp.path()), ["firework-remote-n1_ok.yaml"]);
    let reasons: BTreeMap<(String, String), RouteError> = report
        .skipped
        .iter()
        .map(|skip| {
            (
                (skip.node.clone(), skip.service.clone()),
                skip.reason.clone(),
            )
        })
        .collect();
    let key = |node: &str, service: &str| (node.to_string(), service.to_string());
    assert_eq!(reasons[&key("no-ip", "a")], RouteError::MissingHostIp);
    assert_eq!(reasons[&key("n1", "no-port")], RouteError::MissingHostPort);
    assert!(matches!(
        reasons[&key("n1", "bad-sub")],
        RouteError::InvalidSubdomain { .. }
    ));
    assert!(matches!(
        reasons[&key("n1", "Bad_Name")],
        RouteError::InvalidServiceName { .. }
    ));
    assert_eq!(
        reasons[&key("n1", "")],
        RouteError::DuplicateNode {
            node: "n1".to_string()
        }
    );
    assert!(matches!(
        reasons[&key("bad/node", "")],
        RouteError::InvalidNodeName { .. }
    ));
    assert_eq!(report.skipped.len(), 6);
}

#[test]
fn unknown_peer_keeps_files() {
    let temp = tempfile::tempdir().unwrap();
    let routes = syncer(temp.path());
    routes
        .sync(
            &[],
            &[
                peer(
                    "node-a",
                    Some("10.0.1.5"),
                    vec![remote_service("a", Some(80), "a")],
                ),
                peer(
                    "node-b",
                    Some("10.0.1.6"),
                    vec![remote_service("b", Some(80), "b")],
                ),
            ],
        )
        .unwrap();
    let kept_before = snapshot(temp.path())["firework-remote-node-a_a.yaml"].clone();

    let report = routes
        .sync(
            &[],
            &[
                RemoteNodeRoutes::unknown("node-a"),
                peer("node-b", Some("10.0.1.6"), vec![]),
            ],
        )
        .unwrap();

    assert_eq!(report.kept, ["firework-remote-node-a_a.yaml"]);
    assert_eq!(report.deleted, ["firework-remote-node-b_b.yaml"]);
    assert_eq!(
        snapshot(temp.path())["firework-remote-node-a_a.yaml"],
        kept_before
    );

    // Once the peer is absent from the list, its routes go.
    let report = routes.sync(&[], &[]).unwrap();
    assert_eq!(report.deleted, ["firework-remote-node-a_a.yaml"]);
    assert!(names(temp.path()).is_empty());
}

#[test]
fn leftover_temp_files_removed() {
    let temp = tempfile::tempdir().unwrap();
    fs::write(temp.path().join(".firework-local-web.yaml.tmp"), "http:").unwrap();
    fs::write(temp.path().join(".operator.tmp"), "x").unwrap();

    syncer(temp.path()).sync(&[], &[]).unwrap();

    assert_eq!(names(temp.path()), [".operator.tmp"]);
}

#[test]
fn routes_built_from_services() {
    let services = vec![
        with_meta(
            with_forward(
                with_network(common::service("kibana"), Some("172.16.0.2")),
                5611,
                5601,
            ),
            "subdomain",
            "tenant-1",
        ),
        with_meta(
            with_health_port(with_network(service("api"), Some("172.16.0.3/24")), 8080),
            "host",
            "api.example.net",
        ),
        with_meta(
            with_network(service("moved"), Some("172.16.0.4")),
            "host",
            "m.example.net",
        ),
        with_forward(service("plain"), 9200, 9200),
    ];
    let mut assigned = BTreeMap::new();
    assigned.insert(
        "moved".to_string(),
        IpAddr::V4(Ipv4Addr::new(172, 16, 0, 40)),
    );

    let routes = local_routes(&services, &assigned);

    assert_eq!(routes.len(), 4);
    assert_eq!(routes[0].guest_ip, Some(ip("172.16.0.2")));
    assert_eq!(routes[0].backend_port, Some(5601));
    assert_eq!(routes[0].keys.subdomain.as_deref(), Some("tenant-1"));
    assert_eq!(
        routes[1].guest_ip,
        Some(ip("172.16.0.3")),
        "prefix length dropped"
    );
    assert_eq!(
        routes[1].backend_port,
        Some(8080),
        "health check port fallback"
    );
    assert_eq!(
        routes[2].guest_ip,
        Some(ip("172.16.0.40")),
        "assigned address wins"
    );
    assert_eq!(routes[2].backend_port, None);
    assert!(!routes[3].keys.is_routed());
    assert_eq!(routes[3].guest_ip, None);
}

#[test]
fn first_forward_wins_over_health_port() {
    let service = with_health_port(
        with_forward(
            with_forward(with_network(service("web"), Some("172.16.0.2")), 8081, 81),
            8082,
            82,
        ),
        90,
    );
    let route = LocalRoute::from_service(&service, None);
    assert_eq!(route.backend_port, Some(81));
}

#[test]
fn remote_built_from_node_config() {
    let config = NodeConfig {
        node: Some("ignored".to_string()),
        host_ip: Some(ip("10.0.1.5")),
        source_commit: None,
        services: vec![with_meta(
            with_forward(with_forward(service("web"), 8080, 80), 8443, 443),
            "host",
            "web.example.net",
        )],
    };

    let peer = RemoteNodeRoutes::from_node_config("node-2", &config);

    assert_eq!(peer.node, "node-2");
    assert_eq!(peer.host_ip, Some(ip("10.0.1.5")));
    assert_eq!(
        peer.services,
        PeerServices::Listed(vec![RemoteService {
            service: "web".to_string(),
            host_port: Some(8080),
            keys: RouteKeys {
                host: Some("web.example.net".to_string()),
                subdomain: None
            },
        }])
    );
}

/// A reader that lists and reads the directory while files are replaced many times must
/// only ever see complete files.
#[test]
fn partial_file_never_visible() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().to_path_buf();
    let routes = syncer(&dir);
    let versions: Vec<Vec<LocalRoute>> = (0..2)
        .map(|version| {
            (0..8)
                .map(|i| {
                    local(
                        &format!("svc-{i}"),
                        &format!("172.16.{version}.{}", i + 2),
                        8000 + i,
                        &format!("svc-{i}.example.com"),
                    )
                })
                .collect()
        })
        .collect();
    routes.sync(&versions[0], &[]).unwrap();

    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let done = Arc::clone(&done);
        let dir = dir.clone();
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !done.load(Ordering::Relaxed) {
                for entry in fs::read_dir(&dir).unwrap() {
                    let name = entry.unwrap().file_name().into_string().unwrap();
                    if !name.ends_with(".yaml") {
                        continue;
                    }
                    let Ok(text) = fs::read_to_string(dir.join(&name)) else {
                        continue; // Replaced between listing and opening.
                    };
                    assert!(
                        text.starts_with("# managed-by: firework-routes")
                            && text.ends_with("\"\n")
                            && text.lines().count() == 14,
                        "partial file {name}: {text:?}"
                    );
                    reads += 1;
                }
            }
            reads
        })
    };

    for round in 0..150 {
        let report = routes.sync(&versions[(round + 1) % 2], &[]).unwrap();
        assert_eq!(report.written.len(), 8);
    }
    done.store(true, Ordering::Relaxed);
    let reads = reader.join().unwrap();

    assert!(reads > 0, "the reader never read a file");
    let leftovers: Vec<String> = names(&dir)
        .into_iter()
        .filter(|name| !name.ends_with(".yaml"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn write_failure_then_converges() {
    let temp = tempfile::tempdir().unwrap();
    let routes = syncer(temp.path());
    routes
        .sync(&[local("old", "172.16.0.5", 80, "old.example.com")], &[])
        .unwrap();
    // A directory in place of the temporary file makes writing route b fail.
    fs::create_dir(temp.path().join(".firework-local-b.yaml.tmp")).unwrap();
    let wanted = [
        local("a", "172.16.0.2", 80, "a.example.com"),
        local("b", "172.16.0.3", 80, "b.example.com"),
    ];

    let error = routes.sync(&wanted, &[]).unwrap_err();

    assert!(
        matches!(error, RoutesError::Io { operation: "create", ref path, .. }
            if path.ends_with(".firework-local-b.yaml.tmp")),
        "{error:?}"
    );
    assert!(
        temp.path().join("firework-local-old.yaml").exists(),
        "stale files are deleted only after every write succeeded"
    );

    fs::remove_dir(temp.path().join(".firework-local-b.yaml.tmp")).unwrap();
    let report = routes.sync(&wanted, &[]).unwrap();

    assert_eq!(report.unchanged, ["firework-local-a.yaml"]);
    assert_eq!(report.written, ["firework-local-b.yaml"]);
    assert_eq!(report.deleted, ["firework-local-old.yaml"]);
    assert_eq!(
        names(temp.path()),
        ["firework-local-a.yaml", "firework-local-b.yaml"]
    );
}

#[test]
fn kept_route_blocks_listed_peer() {
    let temp = tempfile::tempdir().unwrap();
    let routes = syncer(temp.path());
    routes
        .sync(
            &[],
            &[peer(
                "node-b",
                Some("10.0.1.6"),
                vec![remote_service("svc", Some(80), "shared")],
            )],
        )
        .unwrap();

    // node-b cannot be read and node-a now lists a service with the same host name.
    let report = routes
        .sync(
            &[],
            &[
                peer(
                    "node-a",
                    Some("10.0.1.5"),
                    vec![remote_service("moved", Some(80), "shared")],
                ),
                RemoteNodeRoutes::unknown("node-b"),
            ],
        )
        .unwrap();

    assert_eq!(report.kept, ["firework-remote-node-b_svc.yaml"]);
    assert_eq!(names(temp.path()), ["firework-remote-node-b_svc.yaml"]);
    assert_eq!(report.skipped.len(), 1);
    assert_eq!(
        report.skipped[0].reason,
        RouteError::HostClaimed {
            host: "shared.example.com".to_string(),
            owner: "the kept route of service \"svc\" of unknown node \"node-b\"".to_string(),
        }
    );
}

#[test]
fn local_route_replaces_kept_route() {
    let temp = tempfile::tempdir().unwrap();
    let routes = syncer(temp.path());
    routes
        .sync(
            &[],
            &[peer(
                "node-b",
                Some("10.0.1.6"),
                vec![remote_service("svc", Some(80), "shared")],
            )],
        )
        .unwrap();

    // The service moved here while node-b cannot be read: the local route wins.
    let report = routes
        .sync(
            &[local_sub("svc", "172.16.0.2", 80, "shared")],
            &[RemoteNodeRoutes::unknown("node-b")],
        )
        .unwrap();

    assert!(report.kept.is_empty(), "{report:?}");
    assert_eq!(report.deleted, ["firework-remote-node-b_svc.yaml"]);
    assert_eq!(names(temp.path()), ["firework-local-svc.yaml"]);
}
