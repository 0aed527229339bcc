//! The `firework-enricher` binary: Git input with `--ref`, the commit order, exit codes,
//! dry runs and scheduler mode with a registry directory.

#![allow(clippy::unwrap_used)]

mod support;

use std::process::{Command, Output};

use firework_enricher::source::{Source, SourceError};
use support::{Daemon, Repo, copy_tree, example_tree};

fn enricher(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_firework-enricher"))
        .args(args)
        .env("RUST_LOG", "off")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

struct Served {
    _base: tempfile::TempDir,
    repo: Repo,
    daemon: Daemon,
    first: String,
    second: String,
}

/// A repository with two commits: the example tree at time 1000, then without `db` at 2000.
fn served() -> Served {
    let base = tempfile::tempdir().unwrap();
    let repo = Repo::init(base.path());
    copy_tree(&example_tree(), &repo.work.join("config"));
    let first = repo.commit("example", 1000);
    std::fs::remove_file(repo.work.join("config/services/db.yaml")).unwrap();
    let second = repo.commit("drop db", 2000);
    let daemon = Daemon::start(base.path());
    Served {
        _base: base,
        repo,
        daemon,
        first,
        second,
    }
}

#[test]
fn git_source_checks_out_branch_or_commit() {
    let served = served();
    let url = served.daemon.url("repo");

    let tip = Source::git(&url, None, Some("config")).unwrap();
    assert_eq!(tip.commit.as_deref(), Some(served.second.as_str()));
    assert_eq!(tip.commit_time, Some(2000));
    assert!(tip.root.join("services/web.yaml").is_file());
    assert!(!tip.root.join("services/db.yaml").exists());

    let old = Source::git(&url, Some(&served.first), Some("config")).unwrap();
    assert_eq!(old.commit.as_deref(), Some(served.first.as_str()));
    assert_eq!(old.commit_time, Some(1000));
    assert!(old.root.join("services/db.yaml").is_file());

    let error = Source::git(&url, Some("release"), None).unwrap_err();
    assert!(matches!(error, SourceError::UnknownReference { .. }));
    assert_eq!(
        error.to_string(),
        format!("reference release not found in {url}")
    );
    assert_eq!(served.repo.git(&["rev-parse", "HEAD"]), served.second);
}

#[test]
fn cli_publishes_git_input_and_rejects_older_commits() {
    let served = served();
    let url = served.daemon.url("repo");
    let out = tempfile::tempdir().unwrap();
    let output_dir = out.path().display().to_string();
    let base = [
        "render",
        "--input",
        &url,
        "--config-dir",
        "config",
        "--output",
        &output_dir,
    ];

    let run = enricher(&base);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    assert_eq!(
        text(&run.stdout),
        format!(
            "published {}: 3 written, 0 unchanged, 0 deleted\n",
            served.second
        )
    );
    let storage = std::fs::read_to_string(out.path().join("nodes/storage.yaml")).unwrap();
    assert!(storage.contains(&format!("source_commit: {}\n", served.second)));

    let mut older = base.to_vec();
    older.extend(["--ref", &served.first]);
    let run = enricher(&older);
    assert_eq!(run.status.code(), Some(3));
    assert!(
        text(&run.stderr).contains(&format!(
            "error: refusing to publish commit {} (committed at 1000) over {} (committed at \
             2000), which is newer",
            served.first, served.second
        )),
        "{}",
        text(&run.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(out.path().join("nodes/storage.yaml")).unwrap(),
        storage
    );

    let mut dry = base.to_vec();
    dry.push("--dry-run");
    let run = enricher(&dry);
    assert_eq!(run.status.code(), Some(0));
    assert_eq!(
        text(&run.stdout),
        format!(
            "dry run of {}: 0 to write, 3 unchanged, 0 to delete\n",
            served.second
        )
    );
}

#[test]
fn cli_reports_every_error_and_exits_1() {
    let tree = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tree.path().join("services")).unwrap();
    std::fs::write(
        tree.path().join("services/a.yaml"),
        "name: a\nnode_type: web\n",
    )
    .unwrap();
    std::fs::write(
        tree.path().join("services/b.yaml"),
        "name: b\nimage: /i/b\n",
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let run = enricher(&[
        "render",
        "--input",
        &tree.path().display().to_string(),
        "--output",
        &out.path().display().to_string(),
    ]);
    assert_eq!(run.status.code(), Some(1));
    assert_eq!(
        text(&run.stderr),
        "services/a.yaml: error: image: service a: missing image [missing]\n\
         services/b.yaml: error: node_type: service b: missing node_type [missing]\n\
         error: input is invalid: 2 errors\n"
    );
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);
}

#[test]
fn cli_rejects_an_empty_result() {
    let tree = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let input = tree.path().display().to_string();
    let output = out.path().display().to_string();
    let run = enricher(&["render", "--input", &input, "--output", &output]);
    assert_eq!(run.status.code(), Some(3));
    assert!(text(&run.stderr).contains("refusing to publish an empty result"));
    let run = enricher(&[
        "render",
        "--input",
        &input,
        "--output",
        &output,
        "--allow-empty",
    ]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    assert!(out.path().join("index.json").is_file());
}

#[test]
fn cli_schedules_with_a_registry_directory() {
    let registry = tempfile::tempdir().unwrap();
    let nodes = registry.path().join("registry/nodes");
    std::fs::create_dir_all(&nodes).unwrap();
    let record = serde_json::json!({
        "node": "node-a",
        "labels": ["edge", "storage"],
        "host_ip": "10.0.0.9",
        "capacity": {"vcpus": 16, "memory_mb": 16384},
        "agent_version": "0.1.0",
        "heartbeat": jiff::Timestamp::now().to_string(),
    });
    std::fs::write(nodes.join("node-a.json"), record.to_string()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let run = enricher(&[
        "render",
        "--input",
        &example_tree().display().to_string(),
        "--output",
        &out.path().display().to_string(),
        "--schedule",
        "--registry",
        &registry.path().display().to_string(),
    ]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    let config = std::fs::read_to_string(out.path().join("nodes/node-a.yaml")).unwrap();
    assert!(
        config.starts_with("node: node-a\nhost_ip: \"10.0.0.9\"\n"),
        "{config}"
    );
    assert!(config.contains("    DB_ADDR: 10.0.0.9:5432\n"), "{config}");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("index.json")).unwrap()).unwrap();
    assert_eq!(index["nodes"]["node-a"]["host_ip"], "10.0.0.9");
    assert_eq!(
        index["nodes"]["node-a"]["services"]
            .as_array()
            .unwrap()
            .len(),
        6
    );
}

/// Writes a live registry record for each of `nodes`, labelled `web`, under
/// `<root>/registry/nodes/`.
fn write_web_nodes(root: &std::path::Path, nodes: &[(&str, &str)]) {
    let dir = root.join("registry/nodes");
    std::fs::create_dir_all(&dir).unwrap();
    for (node, host_ip) in nodes {
        let record = serde_json::json!({
            "node": node,
            "labels": ["web"],
            "host_ip": host_ip,
            "capacity": {"vcpus": 8, "memory_mb": 8192},
            "reserved": {"vcpus": 1, "memory_mb": 1024},
            "used": {"vcpus": 0, "memory_mb": 0},
            "agent_version": "0.1.0",
            "heartbeat": jiff::Timestamp::now().to_string(),
        });
        std::fs::write(dir.join(format!("{node}.json")), record.to_string()).unwrap();
    }
}

/// Creates an input tree with two `web` services that both forward host port 8080.
fn shared_port_tree() -> tempfile::TempDir {
    let tree = tempfile::tempdir().unwrap();
    let services = tree.path().join("services");
    std::fs::create_dir_all(&services).unwrap();
    for name in ["web-a", "web-b"] {
        std::fs::write(
            services.join(format!("{name}.yaml")),
            format!(
                "name: {name}\nimage: /i/{name}.ext4\nnode_type: web\nnetwork: true\n\
                 port_forwards:\n  - host_port: 8080\n    vm_port: 80\n"
            ),
        )
        .unwrap();
    }
    tree
}

fn render_scheduled(
    tree: &std::path::Path,
    out: &std::path::Path,
    registry: &std::path::Path,
) -> Output {
    enricher(&[
        "render",
        "--input",
        &tree.display().to_string(),
        "--output",
        &out.display().to_string(),
        "--schedule",
        "--registry",
        &registry.display().to_string(),
    ])
}

#[test]
fn cli_schedules_shared_host_port_apart() {
    let tree = shared_port_tree();
    let registry = tempfile::tempdir().unwrap();
    write_web_nodes(
        registry.path(),
        &[("node-a", "10.0.0.1"), ("node-b", "10.0.0.2")],
    );
    let out = tempfile::tempdir().unwrap();
    let run = render_scheduled(tree.path(), out.path(), registry.path());
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));

    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("index.json")).unwrap()).unwrap();
    assert_eq!(
        index["nodes"],
        serde_json::json!({
            "node-a": {"host_ip": "10.0.0.1", "services": [{"name": "web-a", "host_ports": [8080]}]},
            "node-b": {"host_ip": "10.0.0.2", "services": [{"name": "web-b", "host_ports": [8080]}]}
        })
    );
    let node_a = std::fs::read_to_string(out.path().join("nodes/node-a.yaml")).unwrap();
    assert!(node_a.contains("- name: web-a\n"), "{node_a}");
    assert!(!node_a.contains("web-b"), "{node_a}");
    let node_b = std::fs::read_to_string(out.path().join("nodes/node-b.yaml")).unwrap();
    assert!(node_b.contains("- name: web-b\n"), "{node_b}");
    assert!(!node_b.contains("web-a"), "{node_b}");
}

#[test]
fn cli_shared_host_port_on_one_node_fails() {
    let tree = shared_port_tree();
    let registry = tempfile::tempdir().unwrap();
    write_web_nodes(registry.path(), &[("node-a", "10.0.0.1")]);
    let out = tempfile::tempdir().unwrap();
    let run = render_scheduled(tree.path(), out.path(), registry.path());
    assert_eq!(run.status.code(), Some(1));
    assert_eq!(
        text(&run.stderr),
        "error: 1 services fit on no live node: web-b: every allowed node already forwards \
         one of its host ports: host port 8080 (tcp) by \"web-a\" on node-a\n"
    );
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);
}
