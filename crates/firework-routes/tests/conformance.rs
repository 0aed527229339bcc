//! The Go firework's Traefik and ingress test vectors, run in place against this crate.
//!
//! Where our design differs on purpose the test checks our behaviour and prints the
//! difference. File names
//! carry a `firework-local-`/`firework-remote-<node>_` prefix, so expected names are mapped
//! and rule, entry point and backend URL are compared instead of router names. Files seeded
//! into the directory by a vector were not written by Firework, so they survive; the stale
//! route the vector means is created by an earlier Firework sync and must be deleted. Where
//! the baseline and HEAD disagree (routed services without guest IP or backend port), the
//! baseline's behaviour is implemented: the route is skipped. HEAD's vectors that fail the
//! whole sync for one local service's routing keys, guest IP or port check instead that
//! only that service is skipped.

// Helpers outside #[test] functions unwrap too, because a panic there is a test failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use firework_model::Service;
use firework_routes::{
    LocalRoute, RemoteNodeRoutes, RemoteService, RouteKeys, RouteSync, RoutesError, SyncReport,
    normalize_domain,
};
use serde::Deserialize;

fn vectors_root() -> Option<PathBuf> {
    let root =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/go-firework");
    if root.is_dir() {
        Some(root)
    } else {
        eprintln!(
            "skipping: conformance vectors not found at {}",
            root.display()
        );
        None
    }
}

#[derive(Debug, Clone, Deserialize)]
struct VService {
    name: String,
    #[serde(default)]
    network: Option<VNetwork>,
    #[serde(default)]
    port_forwards: Vec<VForward>,
    #[serde(default)]
    health_check: Option<VHealth>,
    #[serde(default)]
    metadata: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Deserialize)]
struct VNetwork {
    #[serde(default)]
    guest_ip: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct VForward {
    host_port: u16,
    vm_port: u16,
}

#[derive(Debug, Clone, Deserialize)]
struct VHealth {
    #[serde(default)]
    port: Option<u16>,
}

#[derive(Debug, Clone, Deserialize)]
struct VNode {
    node: String,
    #[serde(default)]
    host_ip: Option<String>,
    #[serde(default)]
    services: Vec<VService>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct Settings {
    #[serde(default)]
    ingress_domain: Option<String>,
    #[serde(default)]
    mode: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Expected {
    #[serde(default)]
    outcome: Option<String>,
    #[serde(default)]
    files: BTreeMap<String, FileExpect>,
    #[serde(default)]
    files_present: Vec<String>,
    #[serde(default)]
    files_absent: Vec<String>,
    #[serde(default)]
    dir_entry_count: Option<usize>,
    #[serde(default)]
    runs: Vec<Expected>,
    #[serde(default)]
    steps: Vec<Expected>,
    #[serde(default)]
    every_case: Option<Box<Expected>>,
    #[serde(default)]
    results: BTreeMap<String, String>,
    #[serde(default)]
    kibana_yaml_unchanged_since_step_1: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
struct FileExpect {
    #[serde(default)]
    must_contain: Vec<String>,
    #[serde(default)]
    content: Option<TraefikFile>,
}

/// The parts of a Traefik dynamic config file that the vectors pin.
#[derive(Debug, Deserialize)]
struct TraefikFile {
    http: TraefikHttp,
}

#[derive(Debug, Deserialize)]
struct TraefikHttp {
    routers: BTreeMap<String, TraefikRouter>,
    services: BTreeMap<String, TraefikService>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TraefikRouter {
    rule: String,
    entry_points: Vec<String>,
    service: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TraefikService {
    load_balancer: TraefikLoadBalancer,
}

#[derive(Debug, Deserialize)]
struct TraefikLoadBalancer {
    servers: Vec<TraefikServer>,
}

#[derive(Debug, Deserialize)]
struct TraefikServer {
    url: String,
}

impl TraefikFile {
    /// Rule, entry points and backend URL of the one router in the file.
    fn route(&self) -> (String, Vec<String>, String) {
        assert_eq!(self.http.routers.len(), 1, "{self:?}");
        let router = self.http.routers.values().next().unwrap();
        let service = &self.http.services[&router.service];
        assert_eq!(service.load_balancer.servers.len(), 1, "{self:?}");
        (
            router.rule.clone(),
            router.entry_points.clone(),
            service.load_balancer.servers[0].url.clone(),
        )
    }
}

fn read_yaml<T: for<'de> Deserialize<'de>>(path: &Path) -> T {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn read_yaml_or_default<T: for<'de> Deserialize<'de> + Default>(path: &Path) -> T {
    if path.exists() {
        read_yaml(path)
    } else {
        T::default()
    }
}

fn model_service(v: &VService) -> Service {
    let mut service = common::service(&v.name);
    if let Some(network) = &v.network {
        service = common::with_network(service, network.guest_ip.as_deref());
    }
    for forward in &v.port_forwards {
        service = common::with_forward(service, forward.host_port, forward.vm_port);
    }
    if let Some(port) = v.health_check.as_ref().and_then(|check| check.port) {
        service = common::with_health_port(service, port);
    }
    for (key, value) in v.metadata.iter().flatten() {
        service = common::with_meta(service, key, value);
    }
    service
}

fn local_routes(services: &[VService]) -> Vec<LocalRoute> {
    services
        .iter()
        .map(|v| LocalRoute::from_service(&model_service(v), None))
        .collect()
}

fn remote_routes(nodes: &[VNode]) -> Vec<RemoteNodeRoutes> {
    nodes
        .iter()
        .map(|node| {
            let config = firework_model::NodeConfig {
                node: Some(node.node.clone()),
                host_ip: node
                    .host_ip
                    .as_deref()
                    .filter(|ip| !ip.is_empty())
                    .map(|ip| ip.parse::<IpAddr>().unwrap()),
                source_commit: None,
                services: node.services.iter().map(model_service).collect(),
            };
            RemoteNodeRoutes::from_node_config(&node.node, &config)
        })
        .collect()
}

/// Maps an upstream file name to ours: `remote-<service>.yaml` to the one
/// `firework-remote-<node>_<service>.yaml`, `<service>.yaml` to `firework-local-<service>.yaml`.
fn our_file(dir: &Path, upstream: &str) -> Option<String> {
    let stem = upstream.strip_suffix(".yaml")?;
    if let Some(service) = stem.strip_prefix("remote-") {
        let suffix = format!("_{service}.yaml");
        let matches: Vec<String> = common::names(dir)
            .into_iter()
            .filter(|name| name.starts_with("firework-remote-") && name.ends_with(&suffix))
            .collect();
        assert!(matches.len() <= 1, "{upstream}: {matches:?}");
        matches.into_iter().next()
    } else {
        let name = format!("firework-local-{stem}.yaml");
        dir.join(&name).exists().then_some(name)
    }
}

/// The vector's input folder: services, peers, settings and seeded files.
struct Input {
    local: Vec<VService>,
    remote: Vec<VNode>,
    settings: Settings,
    seeded: Vec<(String, Vec<u8>)>,
}

fn load_input(vector: &Path) -> Input {
    let input = vector.join("input");
    let mut seeded = Vec::new();
    if let Ok(entries) = fs::read_dir(input.join("traefik-dir")) {
        for entry in entries {
            let entry = entry.unwrap();
            let name = entry.file_name().into_string().unwrap();
            if name != ".gitkeep" {
                seeded.push((name, fs::read(entry.path()).unwrap()));
            }
        }
    }
    Input {
        local: read_yaml_or_default(&input.join("local-services.yaml")),
        remote: read_yaml_or_default(&input.join("remote-nodes.yaml")),
        settings: read_yaml_or_default(&input.join("settings.yaml")),
        seeded,
    }
}

fn syncer(dir: &Path, settings: &Settings) -> RouteSync {
    RouteSync::new(dir, "web", settings.ingress_domain.as_deref()).unwrap()
}

/// Checks `expected` against the directory after a successful sync.
fn check_files(vector: &str, dir: &Path, expected: &Expected) {
    for (upstream, file) in &expected.files {
        let ours = our_file(dir, upstream).unwrap_or_else(|| {
            panic!(
                "{vector}: no file for {upstream} in {:?}",
                common::names(dir)
            )
        });
        let text = common::read(dir, &ours);
        for needle in &file.must_contain {
            assert!(
                text.contains(needle.as_str()),
                "{vector}: {ours} lacks {needle:?}:\n{text}"
            );
        }
        if let Some(content) = &file.content {
            let parsed: TraefikFile = serde_saphyr::from_str(&text).unwrap();
            assert_eq!(parsed.route(), content.route(), "{vector}: {ours}");
        }
    }
    for upstream in &expected.files_present {
        let present = dir.join(upstream).exists() || our_file(dir, upstream).is_some();
        assert!(
            present,
            "{vector}: {upstream} missing: {:?}",
            common::names(dir)
        );
    }
    for upstream in &expected.files_absent {
        assert_eq!(
            our_file(dir, upstream),
            None,
            "{vector}: {upstream} present"
        );
    }
    if let Some(count) = expected.dir_entry_count {
        assert_eq!(
            common::names(dir).len(),
            count,
            "{vector}: {:?}",
            common::names(dir)
        );
    }
}

/// Runs a vector with one sync and either `expected.yaml` or `expected-error.txt`.
///
/// A seeded `.yaml` file that the vector expects deleted is, in our design, the operator's
/// and must survive. To check the deletion the vector means, a Firework sync first creates
/// a route of the same service, and that file must be gone afterwards.
fn run_single(name: &str) {
    let Some(root) = vectors_root() else { return };
    let vector = root.join(name);
    let input = load_input(&vector);
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let routes = syncer(dir, &input.settings);

    let expected: Expected = read_yaml_or_default(&vector.join("expected.yaml"));
    let stale: Vec<&String> = input
        .seeded
        .iter()
        .map(|(file, _)| file)
        .filter(|file| {
            expected.files_absent.contains(file)
                || (file.starts_with("remote-") && expected.files_present.contains(file))
        })
        .collect();
    let (stale_local, stale_remote) = stale_routes(&stale);
    if !stale.is_empty() {
        routes.sync(&stale_local, &stale_remote).unwrap();
        eprintln!("{name}: differs on purpose: seeded {stale:?} are operator files and stay");
    }
    for (file, bytes) in &input.seeded {
        fs::write(dir.join(file), bytes).unwrap();
    }

    let mut remote = remote_routes(&input.remote);
    if input.settings.mode.as_deref() == Some("sync-local") {
        remote.extend(
            stale_remote
                .iter()
                .map(|peer| RemoteNodeRoutes::unknown(&peer.node)),
        );
    }
    let before = common::snapshot(dir);
    let result = routes.sync(&local_routes(&input.local), &remote);

    if vector.join("expected-error.txt").exists() {
        let error = result.expect_err(name);
        eprintln!("{name}: failed as expected: {}", error_chain(&error));
        assert_eq!(
            common::snapshot(dir),
            before,
            "{name}: files changed on error"
        );
        return;
    }
    let report = result.unwrap_or_else(|e| panic!("{name}: {}", error_chain(&e)));
    assert_ne!(expected.outcome.as_deref(), Some("error"), "{name}");
    for (file, bytes) in &input.seeded {
        assert_eq!(
            &fs::read(dir.join(file)).unwrap(),
            bytes,
            "{name}: {file} changed"
        );
    }
    for file in &stale {
        let mapped = our_file(dir, file);
        if expected.files_absent.contains(file) {
            assert_eq!(
                mapped, None,
                "{name}: stale route for {file} kept: {report:?}"
            );
        } else {
            assert!(
                mapped.is_some(),
                "{name}: route for {file} of an unknown peer deleted"
            );
        }
    }
    // Seeded operator files are extra entries in our directory.
    let mut expected = expected;
    if let Some(count) = expected.dir_entry_count.as_mut() {
        *count += input.seeded.len();
    }
    check_files(name, dir, &expected);
}

/// Routes that a previous Firework sync would have written for seeded file names.
fn stale_routes(files: &[&String]) -> (Vec<LocalRoute>, Vec<RemoteNodeRoutes>) {
    let host = |service: &str| RouteKeys {
        host: Some(format!("{service}.stale.test")),
        subdomain: None,
    };
    let mut local = Vec::new();
    let mut remote = Vec::new();
    for (i, file) in files.iter().enumerate() {
        let stem = file.strip_suffix(".yaml").unwrap();
        if let Some(service) = stem.strip_prefix("remote-") {
            remote.push(RemoteService {
                service: service.to_string(),
                host_port: Some(5611),
                keys: host(service),
            });
        } else {
            local.push(LocalRoute {
                service: stem.to_string(),
                guest_ip: Some(format!("172.16.9.{}", i + 2).parse().unwrap()),
                backend_port: Some(80),
                keys: host(stem),
            });
        }
    }
    let peers = if remote.is_empty() {
        Vec::new()
    } else {
        vec![RemoteNodeRoutes {
            node: "node-2".to_string(),
            host_ip: Some("10.0.9.9".parse().unwrap()),
            services: firework_routes::PeerServices::Listed(remote),
        }]
    };
    (local, peers)
}

fn error_chain(error: &RoutesError) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

macro_rules! single_vectors {
    ($($test:ident => $name:literal,)*) => {
        $(
            #[test]
            fn $test() {
                run_single($name);
            }
        )*
    };
}

single_vectors! {
    deletes_stale => "traefik-deletes-stale",
    deletes_stale_subdomain => "traefik-deletes-stale-subdomain",
    duplicate_local_hostname_error => "traefik-duplicate-local-hostname-error",
    keeps_non_yaml => "traefik-keeps-non-yaml",
    local_route => "traefik-local-route",
    local_wins_hostname => "traefik-local-wins-hostname",
    remote_no_host_port_skipped => "traefik-remote-no-host-port-skipped",
    remote_route => "traefik-remote-route",
    remote_skip_no_host_ip => "traefik-remote-skip-no-host-ip",
    remote_skip_no_host_ip_subdomain => "traefik-remote-skip-no-host-ip-subdomain",
    skip_no_guest_ip => "traefik-skip-no-guest-ip",
    skip_no_host => "traefik-skip-no-host",
    skip_no_port => "traefik-skip-no-port",
    subdomain_local => "traefik-subdomain-local",
    subdomain_remote => "traefik-subdomain-remote",
    synclocal_keeps_remote => "traefik-synclocal-keeps-remote",
    unrouted_no_file => "traefik-unrouted-no-file",
}

/// Checks that `report` skipped the local service `service` alone, and that it had no
/// route file to keep.
fn assert_only_skipped(vector: &str, report: &SyncReport, service: &str) {
    let skipped: Vec<&str> = report
        .skipped_local
        .iter()
        .map(|skip| skip.service.as_str())
        .collect();
    assert_eq!(skipped, [service], "{vector}: {report:?}");
    assert_eq!(report.skipped_local[0].kept_file, None, "{vector}");
}

/// HEAD vectors that fail the sync for one local service's routing keys or backend port.
/// We skip that service's route instead, so the sync succeeds and writes no file for it.
#[test]
fn head_local_errors_become_skips() {
    let Some(root) = vectors_root() else { return };
    for name in [
        "traefik-both-keys-error",
        "traefik-routed-no-backend-port-error",
        "traefik-subdomain-needs-domain",
    ] {
        let input = load_input(&root.join(name));
        let temp = tempfile::tempdir().unwrap();
        let report = syncer(temp.path(), &input.settings)
            .sync(&local_routes(&input.local), &[])
            .unwrap_or_else(|e| panic!("{name}: {}", error_chain(&e)));
        eprintln!(
            "{name}: differs on purpose: the route is skipped: {}",
            report.skipped_local[0].reason
        );
        assert_only_skipped(name, &report, "kibana");
        assert!(common::names(temp.path()).is_empty(), "{name}");
    }
}

#[derive(Debug, Deserialize)]
struct Run {
    #[serde(default)]
    ingress_domain: Option<String>,
    #[serde(default, rename = "local-services")]
    local_services: Option<Vec<VService>>,
    #[serde(default, rename = "remote-nodes")]
    remote_nodes: Option<Vec<VNode>>,
    #[serde(default)]
    peer_order: Option<Vec<String>>,
}

/// Vectors with `input/runs.yaml`: each run in a fresh directory.
#[test]
fn multi_run_vectors() {
    let Some(root) = vectors_root() else { return };
    for name in [
        "traefik-exact-host-compat",
        "traefik-local-remote-same-rule",
        "traefik-remote-conflict-deterministic",
    ] {
        let vector = root.join(name);
        let input = load_input(&vector);
        let runs: Vec<Run> = read_yaml(&vector.join("input/runs.yaml"));
        let expected: Expected = read_yaml(&vector.join("expected.yaml"));
        assert_eq!(runs.len(), expected.runs.len(), "{name}");
        for (run, expected) in runs.iter().zip(&expected.runs) {
            let temp = tempfile::tempdir().unwrap();
            let mut settings = input.settings.clone();
            if run.ingress_domain.is_some() {
                settings.ingress_domain = run.ingress_domain.clone();
            }
            let local = run.local_services.as_ref().unwrap_or(&input.local);
            let mut nodes = run
                .remote_nodes
                .clone()
                .unwrap_or_else(|| input.remote.clone());
            if let Some(order) = &run.peer_order {
                nodes.sort_by_key(|node| order.iter().position(|n| *n == node.node));
            }
            syncer(temp.path(), &settings)
                .sync(&local_routes(local), &remote_routes(&nodes))
                .unwrap_or_else(|e| panic!("{name}: {}", error_chain(&e)));
            check_files(name, temp.path(), expected);
        }
    }
}

/// `traefik-validation-failure-no-changes`: step 2 adds a service with an invalid
/// subdomain. HEAD fails the sync; we skip that route, and step 1's file stays byte for
/// byte either way.
#[test]
fn validation_failure_no_changes() {
    let Some(root) = vectors_root() else { return };
    let name = "traefik-validation-failure-no-changes";
    let vector = root.join(name);
    let input = load_input(&vector);
    let steps: Vec<Run> = read_yaml(&vector.join("input/steps.yaml"));
    let expected: Expected = read_yaml(&vector.join("expected.yaml"));
    let temp = tempfile::tempdir().unwrap();
    let routes = syncer(temp.path(), &input.settings);

    let step1 = steps[0].local_services.as_ref().unwrap();
    routes.sync(&local_routes(step1), &[]).unwrap();
    let after_step1 = common::snapshot(temp.path());
    assert_eq!(expected.steps[0].outcome.as_deref(), Some("ok"));

    let step2 = steps[1].local_services.as_ref().unwrap();
    let report = routes
        .sync(&local_routes(step2), &[])
        .unwrap_or_else(|e| panic!("{name}: {}", error_chain(&e)));

    assert_eq!(expected.steps[1].outcome.as_deref(), Some("error"));
    eprintln!(
        "{name}: differs on purpose: step 2 skips the route instead of failing: {}",
        report.skipped_local[0].reason
    );
    assert_only_skipped(name, &report, "broken");
    assert_eq!(
        expected.steps[1].kibana_yaml_unchanged_since_step_1,
        Some(true)
    );
    assert_eq!(common::snapshot(temp.path()), after_step1);
    check_files(name, temp.path(), &expected.steps[1]);
}

/// Table vectors: one sync per case of the kibana service. HEAD fails each sync; we skip
/// the route, so each sync succeeds without a file.
#[test]
fn error_case_tables() {
    let Some(root) = vectors_root() else { return };
    for name in [
        "traefik-empty-routing-values-error",
        "traefik-host-injection-error",
        "traefik-invalid-subdomains-error",
    ] {
        let vector = root.join(name);
        let input = load_input(&vector);
        let expected: Expected = read_yaml(&vector.join("expected.yaml"));
        assert_eq!(
            expected
                .every_case
                .as_ref()
                .and_then(|e| e.outcome.as_deref()),
            Some("error"),
            "{name}"
        );
        let cases: Vec<BTreeMap<String, String>> = if name.ends_with("empty-routing-values-error") {
            read_yaml(&vector.join("input/cases.yaml"))
        } else {
            let key = if name.contains("host") {
                "host"
            } else {
                "subdomain"
            };
            let values: Vec<String> = read_yaml(&vector.join("input/cases.yaml"));
            values
                .into_iter()
                .map(|value| BTreeMap::from([(key.to_string(), value)]))
                .collect()
        };
        assert!(!cases.is_empty(), "{name}");
        eprintln!("{name}: differs on purpose: each case skips the route instead of failing");
        for metadata in cases {
            let service = VService {
                name: "kibana".to_string(),
                network: Some(VNetwork {
                    guest_ip: Some("172.16.0.2".to_string()),
                }),
                port_forwards: vec![VForward {
                    host_port: 5611,
                    vm_port: 5601,
                }],
                health_check: None,
                metadata: Some(metadata.clone()),
            };
            let temp = tempfile::tempdir().unwrap();
            let report = syncer(temp.path(), &input.settings)
                .sync(&local_routes(&[service]), &[])
                .unwrap_or_else(|e| panic!("{name}: {metadata:?}: {}", error_chain(&e)));
            assert_only_skipped(name, &report, "kibana");
            assert!(
                common::names(temp.path()).is_empty(),
                "{name}: {metadata:?}"
            );
        }
    }
}

#[derive(Debug, Deserialize)]
struct ResolveCase {
    #[allow(dead_code)]
    service: String,
    #[serde(default)]
    metadata: Option<BTreeMap<String, String>>,
    ingress_domain: String,
}

#[test]
fn ingress_resolve_hostname() {
    let Some(root) = vectors_root() else { return };
    let vector = root.join("ingress-resolve-hostname");
    let cases: BTreeMap<String, ResolveCase> = read_yaml(&vector.join("input/cases.yaml"));
    let expected: Expected = read_yaml(&vector.join("expected.yaml"));
    assert_eq!(cases.len(), expected.results.len());
    for (row, case) in &cases {
        let keys = RouteKeys::from_metadata(&case.metadata.clone().unwrap_or_default());
        let got = match keys.resolve(Some(&case.ingress_domain)) {
            Ok(host) => host.unwrap_or_default(),
            Err(_) => "error".to_string(),
        };
        assert_eq!(&got, &expected.results[row], "{row}");
    }
}

#[test]
fn ingress_normalize_domain() {
    let Some(root) = vectors_root() else { return };
    let vector = root.join("ingress-normalize-domain");
    let cases: BTreeMap<String, String> = read_yaml(&vector.join("input/cases.yaml"));
    let expected: Expected = read_yaml(&vector.join("expected.yaml"));
    assert_eq!(cases.len(), expected.results.len());
    for (row, value) in &cases {
        let got = normalize_domain(value).unwrap_or_else(|_| "error".to_string());
        assert_eq!(&got, &expected.results[row], "{row}");
    }
}

#[test]
fn ingress_validate_host() {
    let Some(root) = vectors_root() else { return };
    let vector = root.join("ingress-validate-host");
    let cases: BTreeMap<String, String> = read_yaml(&vector.join("input/cases.yaml"));
    let expected: Expected = read_yaml(&vector.join("expected.yaml"));
    assert_eq!(cases.len(), expected.results.len());
    for (row, value) in &cases {
        let keys = RouteKeys {
            host: Some(value.clone()),
            subdomain: None,
        };
        let got = match keys.resolve(None) {
            Ok(host) => host.unwrap_or_default(),
            Err(_) => "error".to_string(),
        };
        assert_eq!(&got, &expected.results[row], "{row}");
    }
}
