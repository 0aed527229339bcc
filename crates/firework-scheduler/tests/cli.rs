//! The `firework-scheduler plan` binary on real files.

#![allow(
    clippy::unwrap_used,
    reason = "helpers of tests: a panic is a test failure"
)]

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

const NOW: &str = "2026-12-04T20:00:00Z";

fn write_record(root: &Path, node: &str, heartbeat: &str, vcpus: u32, memory_mb: u64) {
    let dir = root.join("registry/nodes");
    fs::create_dir_all(&dir).unwrap();
    let record = serde_json::json!({
        "node": node,
        "labels": ["general"],
        "capacity": {"vcpus": vcpus, "memory_mb": memory_mb},
        "agent_version": "0.1.0",
        "heartbeat": heartbeat,
    });
    fs::write(
        dir.join(format!("{node}.json")),
        serde_json::to_vec(&record).unwrap(),
    )
    .unwrap();
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_firework-scheduler"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

struct Setup {
    root: tempfile::TempDir,
}

impl Setup {
    /// Two live nodes, one stale node, a services directory and a previous placement.
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        write_record(r, "n1", "2026-12-04T19:59:55Z", 4, 4096);
        write_record(r, "n2", "2026-12-04T19:59:55Z", 8, 8192);
        write_record(r, "old", "2026-12-04T19:50:00Z", 8, 8192);

        fs::create_dir_all(r.join("services")).unwrap();
        fs::write(
            r.join("services/general.yaml"),
            "node: general\nservices:\n  - name: web\n    image: /images/web.ext4\n    kernel: /images/vmlinux\n    vcpus: 2\n    memory_mb: 512\n    node_type: general\n  - name: api\n    image: /images/api.ext4\n    kernel: /images/vmlinux\n    vcpus: 1\n    memory_mb: 256\n",
        )
        .unwrap();
        fs::write(
            r.join("services/db.yaml"),
            "services:\n  - name: db\n    image: /images/db.ext4\n    kernel: /images/vmlinux\n    vcpus: 2\n    memory_mb: 1024\n    anti_affinity_group: data\n",
        )
        .unwrap();
        fs::write(r.join("services/README.md"), "ignored").unwrap();

        fs::create_dir_all(r.join("nodes")).unwrap();
        fs::write(
            r.join("nodes/old.yaml"),
            "node: old\nservices:\n  - name: db\n    image: /images/db.ext4\n    kernel: /images/vmlinux\n    vcpus: 2\n    memory_mb: 1024\n",
        )
        .unwrap();
        fs::write(
            r.join("nodes/n2.yaml"),
            "node: n2\nservices:\n  - name: web\n    image: /images/web.ext4\n    kernel: /images/vmlinux\n    vcpus: 2\n    memory_mb: 512\n",
        )
        .unwrap();
        Self { root }
    }

    fn dir(&self) -> &Path {
        self.root.path()
    }

    fn plan(&self, extra: &[&str]) -> Output {
        let registry = path(self.dir()).to_owned();
        let input = path(&self.dir().join("services")).to_owned();
        let existing = path(&self.dir().join("nodes")).to_owned();
        let mut args = vec![
            "plan",
            "--registry",
            &registry,
            "--input",
            &input,
            "--existing",
            &existing,
            "--now",
            NOW,
        ];
        args.extend_from_slice(extra);
        run(&args)
    }
}

#[test]
fn plan_json_places_all() {
    let setup = Setup::new();
    let output = setup.plan(&["--format", "json"]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");

    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["live_nodes"], serde_json::json!(["n1", "n2"]));
    assert_eq!(report["not_live"][0]["node"], "old");
    let placement = &report["placement"];
    let assignments: Vec<(String, String, bool)> = placement["assignments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["service"].as_str().unwrap().to_owned(),
                a["node"].as_str().unwrap().to_owned(),
                a["kept"].as_bool().unwrap(),
            )
        })
        .collect();
    // web stays on n2; db and api are placed by best fit on the smaller n1.
    assert_eq!(
        assignments,
        [
            ("api".to_owned(), "n1".to_owned(), false),
            ("db".to_owned(), "n1".to_owned(), false),
            ("web".to_owned(), "n2".to_owned(), true),
        ]
    );
    assert_eq!(placement["moves"][0]["service"], "db");
    assert_eq!(placement["moves"][0]["from"], "old");
    assert_eq!(placement["moves"][0]["to"], "n1");
    assert_eq!(placement["moves"][0]["reason"]["code"], "node_not_live");
    assert_eq!(placement["unplaced"], serde_json::json!([]));
}

#[test]
fn plan_text_lists_moves() {
    let setup = Setup::new();
    let output = setup.plan(&[]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        text,
        "nodes: 2 live, 1 not live, 0 rejected records\n\
         \x20 not live old: last heartbeat 2026-12-04T19:50:00Z is 600s old, the TTL is 45s\n\
         assignments:\n\
         \x20 n1: 3/4 vCPUs, 1344/4096 MiB: api, db\n\
         \x20 n2: 2/8 vCPUs, 544/8192 MiB: web\n\
         moves: 1\n\
         \x20 db: old -> n1 (previous node is not live)\n\
         unplaced: 0\n"
    );
}

#[test]
fn plan_unplaced_exits_one() {
    let setup = Setup::new();
    fs::write(
        setup.dir().join("services/huge.yaml"),
        "services:\n  - name: huge\n    image: /images/huge.ext4\n    kernel: /images/vmlinux\n    vcpus: 16\n    memory_mb: 1024\n",
    )
    .unwrap();
    let output = setup.plan(&[]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.contains(
            "unplaced: 1\n  huge: insufficient CPU: requested 16 vCPUs, at most 6 free on an allowed node\n"
        ),
        "{text}"
    );
}

#[test]
fn plan_no_live_nodes_places_nothing() {
    let setup = Setup::new();
    // Every heartbeat is older than a 1-second TTL.
    let output = setup.plan(&["--ttl-seconds", "1", "--format", "json"]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["live_nodes"], serde_json::json!([]));
    assert_eq!(report["placement"], serde_json::Value::Null);
    assert_eq!(
        report["error"],
        "no live nodes: refusing to schedule 3 service(s), keep the previous placement until a node reports again"
    );
    // The previous placement is input only and stays untouched.
    assert!(setup.dir().join("nodes/old.yaml").is_file());
    assert!(setup.dir().join("nodes/n2.yaml").is_file());
}

#[test]
fn plan_missing_registry_exits_two() {
    let setup = Setup::new();
    let missing = setup.dir().join("nowhere");
    let output = run(&[
        "plan",
        "--registry",
        path(&missing),
        "--input",
        path(&setup.dir().join("services")),
    ]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.starts_with(&format!(
            "error: failed to list registry directory {}: ",
            missing.join("registry/nodes").display()
        )),
        "{stderr}"
    );
}

#[test]
fn plan_invalid_services_exits_two() {
    let setup = Setup::new();
    fs::write(
        setup.dir().join("services/bad.yaml"),
        "services:\n  - name: bad\n    image: /images/bad.ext4\n    kernel: /images/vmlinux\n    vcpus: two\n    memory_mb: 128\n",
    )
    .unwrap();
    let output = setup.plan(&[]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(output.stdout.is_empty());
    let file = setup.dir().join("services/bad.yaml");
    assert_eq!(
        String::from_utf8(output.stderr).unwrap(),
        format!(
            "error: {0} is invalid: line 5: services[0].vcpus: invalid number \"two\": expected a whole number\n\
             \x20 {0}:5:12: error: services[0].vcpus: invalid number \"two\": expected a whole number [invalid-number]\n",
            file.display()
        )
    );
}

#[test]
fn plan_duplicate_service_exits_two() {
    let setup = Setup::new();
    fs::write(
        setup.dir().join("services/web.yaml"),
        "services:\n  - name: web\n    image: /images/web.ext4\n    kernel: /images/vmlinux\n    vcpus: 1\n    memory_mb: 128\n",
    )
    .unwrap();
    let output = setup.plan(&[]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert_eq!(
        String::from_utf8(output.stderr).unwrap(),
        "error: duplicate service name \"web\"\n"
    );
}

#[test]
fn usage_error_exits_two() {
    let output = run(&["plan", "--registry", "/tmp"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("--input <PATH>"), "{stderr}");

    let output = run(&[
        "plan",
        "--registry",
        "/tmp",
        "--input",
        "/tmp",
        "--format",
        "xml",
    ]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn plan_spread_and_overhead_options() {
    let setup = Setup::new();
    let output = setup.plan(&["--spread", "--vm-overhead-mb", "0", "--format", "json"]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let placement = &report["placement"];
    let node_of = |service: &str| {
        placement["assignments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["service"] == service)
            .map(|a| a["node"].as_str().unwrap().to_owned())
    };
    // Worst fit: db goes to the emptier n2, then api to n1, which n2 no longer beats.
    assert_eq!(node_of("db").as_deref(), Some("n2"));
    assert_eq!(node_of("api").as_deref(), Some("n1"));
    assert_eq!(node_of("web").as_deref(), Some("n2"));
    // Without overhead the used memory is the plain sum of memory_mb.
    assert_eq!(placement["nodes"][0]["used"]["memory_mb"], 256);
    assert_eq!(placement["nodes"][1]["used"]["memory_mb"], 1536);
}

/// Builds a services file with `web-a` and `web-b` forwarding host port 8080, and `ports`
/// as the port forwards of a third service `dns`.
fn shared_port_file(ports: &str) -> String {
    let forward = "    port_forwards:\n      - host_port: 8080\n        vm_port: 80\n";
    let service = |name: &str, extra: &str| {
        format!(
            "  - name: {name}\n    image: /images/{name}.ext4\n    kernel: /images/vmlinux\n    \
             vcpus: 1\n    memory_mb: 128\n{extra}"
        )
    };
    format!(
        "services:\n{}{}{}",
        service("web-a", forward),
        service("web-b", forward),
        service("dns", ports)
    )
}

/// Runs `plan` on the registry of `setup` with `file` as the only input.
fn plan_file(setup: &Setup, file: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "plan",
        "--registry",
        path(setup.dir()),
        "--input",
        path(file),
        "--now",
        NOW,
    ];
    args.extend_from_slice(extra);
    run(&args)
}

#[test]
fn plan_file_sharing_host_port_places_apart() {
    let setup = Setup::new();
    let file = setup.dir().join("shared.yaml");
    fs::write(&file, shared_port_file("")).unwrap();
    let output = plan_file(&setup, &file, &["--format", "json"]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let node_of = |service: &str| {
        report["placement"]["assignments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["service"] == service)
            .map(|a| a["node"].as_str().unwrap().to_owned())
            .unwrap()
    };
    assert_ne!(node_of("web-a"), node_of("web-b"));
    assert_eq!(report["placement"]["unplaced"], serde_json::json!([]));
}

#[test]
fn plan_service_repeating_host_port_exits_two() {
    let setup = Setup::new();
    let file = setup.dir().join("shared.yaml");
    let twice = "    port_forwards:\n      - host_port: 53\n        vm_port: 53\n      \
                 - host_port: 53\n        vm_port: 5353\n";
    fs::write(&file, shared_port_file(twice)).unwrap();
    let before = fs::read(&file).unwrap();
    let output = plan_file(&setup, &file, &[]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(output.stdout.is_empty());
    assert_eq!(
        String::from_utf8(output.stderr).unwrap(),
        format!(
            "error: {0} is invalid: line 26: services[2].port_forwards[1].host_port: host port 53 (tcp) is already forwarded by service \"dns\"\n\
             \x20 {0}:26:9: error: services[2].port_forwards[1].host_port: host port 53 (tcp) is already forwarded by service \"dns\" [duplicate-host-port]\n",
            file.display()
        )
    );
    assert_eq!(fs::read(&file).unwrap(), before);
}
