//! Rendering through the library: the example tree against its expected files, tenant
//! rules, validation that reports every error, and scheduler mode.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use firework_enricher::render::{PlacementInput, RenderError, RenderOptions, render_dir};
use firework_model::diagnostic::Severity;
use firework_model::node::parse_node_config;
use firework_scheduler::NodeCapacity;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn read_tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let key = path.strip_prefix(root).unwrap().display().to_string();
                files.insert(key, std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

fn write_tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

fn errors(error: &RenderError) -> Vec<(String, String, String)> {
    error
        .diagnostics()
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| (d.file.clone(), d.path.clone(), d.message.clone()))
        .collect()
}

#[test]
fn example_tree_renders_the_expected_files() {
    let rendered = render_dir(&data("example"), &RenderOptions::default()).unwrap();
    let expected = read_tree(&data("example-expected"));
    assert_eq!(
        rendered.files.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (key, bytes) in &expected {
        assert_eq!(
            String::from_utf8_lossy(&rendered.files[key]),
            String::from_utf8_lossy(bytes),
            "{key}"
        );
    }
    // The only warning: the acme copy's link points at a tenant copy of api that does not
    // exist.
    let warnings: Vec<String> = rendered.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        warnings,
        vec![
            "tenants/acme/web.yaml: warning: links[0].service: service acme-web: link target \
             acme-api does not exist, so API_URL stays unset [unknown-link-target]"
        ]
    );
    assert_eq!(
        rendered.tenant_services,
        vec!["acme-web", "beta-cache", "beta-web"]
    );
}

#[test]
fn rendering_is_byte_for_byte_deterministic() {
    let first = render_dir(&data("example"), &RenderOptions::default()).unwrap();
    let second = render_dir(&data("example"), &RenderOptions::default()).unwrap();
    assert_eq!(first.files, second.files);
}

#[test]
fn rendered_files_round_trip_through_the_agent_parser() {
    let options = RenderOptions {
        source_commit: Some("0123456789abcdef0123456789abcdef01234567".to_string()),
        ..RenderOptions::default()
    };
    let rendered = render_dir(&data("example"), &options).unwrap();
    for (node, config) in &rendered.nodes {
        let key = format!("nodes/{node}.yaml");
        let parsed = parse_node_config(&rendered.files[&key], &key).unwrap();
        assert_eq!(&parsed.value, config);
        assert_eq!(
            parsed.value.source_commit.as_deref(),
            Some("0123456789abcdef0123456789abcdef01234567")
        );
    }
}

#[test]
fn tenant_kernel_args_need_permission_from_the_base() {
    let tree = write_tree(&[
        (
            "services/web.yaml",
            "name: web\nimage: /i/web.ext4\nnode_type: edge\n",
        ),
        (
            "tenants/acme/web.yaml",
            "kernel_args: console=ttyS0 init=/bin/sh\n",
        ),
    ]);
    let error = render_dir(tree.path(), &RenderOptions::default()).unwrap_err();
    assert_eq!(
        errors(&error),
        vec![(
            "tenants/acme/web.yaml".to_string(),
            "kernel_args".to_string(),
            "tenant acme may not set kernel_args for service web: services/web.yaml does not \
             set allow_tenant_kernel_args: true"
                .to_string()
        )]
    );
}

#[test]
fn tenant_override_changes_every_field_it_sets() {
    let tree = write_tree(&[
        (
            "services/es.yaml",
            "name: es\nimage: /i/es.ext4\nnode_type: data\nnetwork: true\n\
             port_forwards:\n  - host_port: 9200\n    vm_port: 9200\n",
        ),
        (
            "services/kibana.yaml",
            "name: kibana\nimage: /i/kibana.ext4\nnode_type: web\n\
             cross_node_links:\n  - service: es\n    env: ES\n    host_port: 9200\n",
        ),
        (
            "tenants/t1/es.yaml",
            "port_forwards:\n  - host_port: 9201\n    vm_port: 9200\n",
        ),
        (
            "tenants/t1/kibana.yaml",
            "image: /own/kibana.ext4\nnode_type: data\nnetwork: true\n\
             anti_affinity_group: kib\nnode_host_ip_env: HOST_IP\n\
             links:\n  - service: es\n    env: ES_LOCAL\n    port: 9200\n",
        ),
    ]);
    let rendered = render_dir(tree.path(), &RenderOptions::default()).unwrap();
    let data = &rendered.nodes["data"];
    let kibana = data
        .services
        .iter()
        .find(|s| s.name == "t1-kibana")
        .unwrap();
    assert_eq!(kibana.image, "/own/kibana.ext4");
    assert_eq!(kibana.node_type.as_deref(), Some("data"));
    assert!(kibana.network.is_some());
    assert_eq!(kibana.anti_affinity_group.as_deref(), Some("kib"));
    assert_eq!(kibana.node_host_ip_env.as_deref(), Some("HOST_IP"));
    assert_eq!(kibana.links.len(), 1);
    assert_eq!(kibana.links[0].service, "t1-es");
    // The inherited cross-node link points at the tenant's own copy.
    assert_eq!(kibana.cross_node_links[0].service, "t1-es");
    // The base service is unchanged.
    let base = &rendered.nodes["web"].services[0];
    assert_eq!(base.name, "kibana");
    assert_eq!(base.cross_node_links[0].service, "es");
    assert!(base.network.is_none());
}

#[test]
fn validation_reports_every_error_with_file_and_field() {
    let tree = write_tree(&[
        ("services/a.yaml", "name: a\nnode_type: web\n"),
        ("services/b.yaml", "name: b\nimage: /i/b.ext4\n"),
        (
            "services/c.yaml",
            "name: t1-a\nimage: /i/c.ext4\nnode_type: web\n",
        ),
        ("tenants/t1/a.yaml", "image: /i/t1-a.ext4\n"),
        (
            "services/d.yaml",
            "name: d\nimage: /i/d.ext4\nnode_type: web\nnetwork: true\n\
             port_forwards:\n  - host_port: 80\n    vm_port: 80\n",
        ),
        (
            "services/e.yaml",
            "name: e\nimage: /i/e.ext4\nnode_type: web\nnetwork: true\n\
             port_forwards:\n  - host_port: 80\n    vm_port: 8080\n",
        ),
    ]);
    let error = render_dir(tree.path(), &RenderOptions::default()).unwrap_err();
    assert_eq!(
        errors(&error),
        vec![
            (
                "services/a.yaml".to_string(),
                "image".to_string(),
                "service a: missing image".to_string()
            ),
            (
                "services/b.yaml".to_string(),
                "node_type".to_string(),
                "service b: missing node_type".to_string()
            ),
            (
                "services/e.yaml".to_string(),
                "port_forwards[0].host_port".to_string(),
                "service e: host port 80 (tcp) on node type web is already forwarded by service d"
                    .to_string()
            ),
            (
                "tenants/t1/a.yaml".to_string(),
                "name".to_string(),
                "duplicate service name: t1-a (also defined by services/c.yaml)".to_string()
            ),
        ]
    );
}

#[test]
fn scheduler_mode_resolves_cross_node_links() {
    let tree = write_tree(&[
        (
            "services/db.yaml",
            "name: db\nimage: /i/db.ext4\nnode_type: storage\nnetwork: true\n\
             port_forwards:\n  - host_port: 5432\n    vm_port: 5432\n",
        ),
        (
            "services/api.yaml",
            "name: api\nimage: /i/api.ext4\nnode_type: edge\nnode_host_ip_env: MY_IP\n\
             env:\n  DB: static:1\n\
             cross_node_links:\n  - service: db\n    env: DB\n    host_port: 5432\n\
             \x20 - service: db\n    env: DB\n    host_port: 5433\n    protocol: postgres\n\
             \x20 - service: ghost\n    env: GHOST\n    host_port: 1\n",
        ),
    ]);
    let mut edge = NodeCapacity::new("node-a", 4, 4096).with_label("edge");
    edge.host_ip = Some("10.0.0.1".parse().unwrap());
    let mut storage = NodeCapacity::new("node-b", 4, 4096).with_label("storage");
    storage.host_ip = Some("10.0.0.2".parse().unwrap());
    let options = RenderOptions {
        placement: Some(PlacementInput {
            nodes: vec![edge, storage],
            ..PlacementInput::default()
        }),
        ..RenderOptions::default()
    };
    let rendered = render_dir(tree.path(), &options).unwrap();
    assert_eq!(
        rendered.files.keys().collect::<Vec<_>>(),
        vec!["index.json", "nodes/node-a.yaml", "nodes/node-b.yaml"]
    );
    let api = &rendered.nodes["node-a"].services[0];
    assert_eq!(
        rendered.nodes["node-a"].host_ip,
        Some("10.0.0.1".parse().unwrap())
    );
    assert_eq!(api.env["DB"], "10.0.0.2:5432,postgres://10.0.0.2:5433");
    assert_eq!(api.env["MY_IP"], "10.0.0.1");
    assert!(!api.env.contains_key("GHOST"));
    let index: serde_json::Value = serde_json::from_slice(&rendered.files["index.json"]).unwrap();
    assert_eq!(
        index,
        serde_json::json!({
            "version": 1,
            "nodes": {
                "node-a": {"host_ip": "10.0.0.1", "services": [{"name": "api", "host_ports": []}]},
                "node-b": {"host_ip": "10.0.0.2", "services": [{"name": "db", "host_ports": [5432]}]}
            }
        })
    );
}

#[test]
fn scheduler_mode_fails_when_a_service_fits_nowhere() {
    let tree = write_tree(&[(
        "services/big.yaml",
        "name: big\nimage: /i/big.ext4\nnode_type: edge\nvcpus: 8\n",
    )]);
    let options = RenderOptions {
        placement: Some(PlacementInput {
            nodes: vec![NodeCapacity::new("node-a", 2, 4096).with_label("edge")],
            ..PlacementInput::default()
        }),
        ..RenderOptions::default()
    };
    let error = render_dir(tree.path(), &options).unwrap_err();
    match error {
        RenderError::Unplaced { services } => {
            assert_eq!(services.len(), 1);
            assert!(services[0].starts_with("big: "), "{services:?}");
        }
        other => panic!("unexpected {other}"),
    }
}
