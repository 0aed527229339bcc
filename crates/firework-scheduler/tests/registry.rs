//! Node discovery from registry record files on disk.

#![allow(
    clippy::unwrap_used,
    reason = "helpers of tests: a panic is a test failure"
)]

use std::fs;
use std::path::Path;
use std::time::Duration;

use firework_scheduler::Resources;
use firework_scheduler::registry::{DEFAULT_NODE_TTL, RegistryError, discover, read_registry_dir};
use jiff::Timestamp;

const NOW: &str = "2026-12-04T20:00:00Z";

fn now() -> Timestamp {
    NOW.parse().unwrap()
}

fn write_record(root: &Path, file: &str, node: &str, heartbeat: &str, vcpus: u32) {
    let dir = root.join("registry/nodes");
    fs::create_dir_all(&dir).unwrap();
    let record = serde_json::json!({
        "node": node,
        "labels": ["general", "gpu"],
        "host_ip": "10.0.0.5",
        "capacity": {"vcpus": vcpus, "memory_mb": 16384},
        "reserved": {"vcpus": 1, "memory_mb": 1024},
        "used": {"vcpus": 2, "memory_mb": 2048},
        "agent_version": "0.1.0",
        "heartbeat": heartbeat,
    });
    fs::write(dir.join(file), serde_json::to_vec(&record).unwrap()).unwrap();
}

#[test]
fn live_node_read_from_record() {
    let root = tempfile::tempdir().unwrap();
    write_record(root.path(), "n1.json", "n1", "2026-12-04T19:59:50Z", 8);

    let discovery = discover(
        read_registry_dir(root.path()).unwrap(),
        now(),
        DEFAULT_NODE_TTL,
    );
    assert_eq!(discovery.live.len(), 1);
    let node = &discovery.live[0];
    assert_eq!(node.name, "n1");
    assert!(node.labels.contains("general"));
    assert!(node.labels.contains("gpu"));
    assert_eq!(node.host_ip, Some("10.0.0.5".parse().unwrap()));
    assert_eq!(node.capacity, Resources::new(8, 16384));
    assert_eq!(node.reserved, Resources::new(1, 1024));
    assert!(discovery.not_live.is_empty());
    assert!(discovery.rejected.is_empty());
}

#[test]
fn heartbeat_age_decides_liveness() {
    let root = tempfile::tempdir().unwrap();
    // 44 s old with a 45 s TTL: live. 45 s old: not live.
    write_record(
        root.path(),
        "fresh.json",
        "fresh",
        "2026-12-04T19:59:16Z",
        8,
    );
    write_record(
        root.path(),
        "stale.json",
        "stale",
        "2026-12-04T19:59:15Z",
        8,
    );
    // Offsets other than Z are RFC 3339 too.
    write_record(
        root.path(),
        "offset.json",
        "offset",
        "2026-12-04T21:59:30+02:00",
        8,
    );

    let discovery = discover(
        read_registry_dir(root.path()).unwrap(),
        now(),
        Duration::from_secs(45),
    );
    let live: Vec<&str> = discovery.live.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(live, ["fresh", "offset"]);
    assert_eq!(discovery.not_live.len(), 1);
    assert_eq!(discovery.not_live[0].node, "stale");
    assert_eq!(
        discovery.not_live[0].reason,
        "last heartbeat 2026-12-04T19:59:15Z is 45s old, the TTL is 45s"
    );
}

#[test]
fn zero_capacity_not_live() {
    let root = tempfile::tempdir().unwrap();
    write_record(root.path(), "empty.json", "empty", NOW, 0);
    let discovery = discover(
        read_registry_dir(root.path()).unwrap(),
        now(),
        DEFAULT_NODE_TTL,
    );
    assert!(discovery.live.is_empty());
    assert_eq!(
        discovery.not_live[0].reason,
        "reports no capacity (0 vCPUs, 16384 MiB)"
    );
}

#[test]
fn bad_records_rejected_others_kept() {
    let root = tempfile::tempdir().unwrap();
    write_record(root.path(), "good.json", "good", NOW, 8);
    write_record(root.path(), "renamed.json", "other", NOW, 8);
    write_record(
        root.path(),
        "future.json",
        "future",
        "2026-12-04T20:01:00Z",
        8,
    );
    write_record(root.path(), "badtime.json", "badtime", "yesterday", 8);
    write_record(root.path(), "bad name.json", "bad name", NOW, 8);
    let dir = root.path().join("registry/nodes");
    fs::write(dir.join("broken.json"), b"{\"node\": ").unwrap();
    fs::write(dir.join("notes.txt"), b"not a record").unwrap();
    fs::create_dir(dir.join("sub.json")).unwrap();

    let discovery = discover(
        read_registry_dir(root.path()).unwrap(),
        now(),
        DEFAULT_NODE_TTL,
    );
    let live: Vec<&str> = discovery.live.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(live, ["good"]);

    let rejected: Vec<(String, &str)> = discovery
        .rejected
        .iter()
        .map(|r| {
            let file = Path::new(&r.source).file_name().unwrap();
            (file.to_string_lossy().into_owned(), r.reason.as_str())
        })
        .collect();
    assert_eq!(rejected.len(), 5, "{rejected:?}");
    assert_eq!(rejected[0].0, "bad name.json");
    assert_eq!(
        rejected[0].1,
        "invalid node name \"bad name\": use 1 to 253 characters of letters, digits, '.', '_' and '-', starting with a letter or digit"
    );
    assert_eq!(rejected[1].0, "badtime.json");
    assert!(
        rejected[1]
            .1
            .starts_with("invalid heartbeat \"yesterday\": ")
    );
    assert_eq!(rejected[2].0, "broken.json");
    assert!(rejected[2].1.starts_with("invalid node record JSON: "));
    assert_eq!(rejected[3].0, "future.json");
    assert_eq!(
        rejected[3].1,
        "heartbeat 2026-12-04T20:01:00Z is 60s in the future, more than the TTL of 45s"
    );
    assert_eq!(rejected[4].0, "renamed.json");
    assert_eq!(
        rejected[4].1,
        "record names node \"other\" but the file is named for \"renamed\""
    );
}

#[test]
fn missing_directory_is_error() {
    let root = tempfile::tempdir().unwrap();
    let error = read_registry_dir(root.path()).unwrap_err();
    assert!(matches!(error, RegistryError::List { .. }));
    assert_eq!(
        error.to_string(),
        format!(
            "failed to list registry directory {}",
            root.path().join("registry/nodes").display()
        )
    );
}

#[test]
fn empty_directory_has_no_nodes() {
    let root = tempfile::tempdir().unwrap();
    fs::create_dir_all(root.path().join("registry/nodes")).unwrap();
    let discovery = discover(
        read_registry_dir(root.path()).unwrap(),
        now(),
        DEFAULT_NODE_TTL,
    );
    assert!(discovery.live.is_empty());
    assert!(discovery.not_live.is_empty());
    assert!(discovery.rejected.is_empty());
}
