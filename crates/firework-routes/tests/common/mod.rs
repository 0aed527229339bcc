//! Helpers shared by the integration tests.

// Helpers outside #[test] functions unwrap too, because a panic there is a test failure.
#![allow(clippy::unwrap_used)]
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use firework_model::service::{HealthCheck, HealthCheckType, PortForward, Protocol};
use firework_model::{GoDuration, NetworkSpec, Service};

/// Builds a desired service with placeholders in the fields that routes do not read.
pub fn service(name: &str) -> Service {
    Service {
        name: name.to_string(),
        image: "/var/lib/firework/images/rootfs.ext4".to_string(),
        kernel: "/var/lib/firework/images/vmlinux".to_string(),
        vcpus: 1,
        memory_mb: 128,
        kernel_args: None,
        network: None,
        port_forwards: Vec::new(),
        health_check: None,
        env: BTreeMap::new(),
        links: Vec::new(),
        metadata: BTreeMap::new(),
        anti_affinity_group: None,
        cross_node_links: Vec::new(),
        node_host_ip_env: None,
        node_type: None,
    }
}

pub fn with_network(mut service: Service, guest_ip: Option<&str>) -> Service {
    service.network = Some(NetworkSpec {
        guest_ip: guest_ip.map(str::to_string),
        ..NetworkSpec::default()
    });
    service
}

pub fn with_forward(mut service: Service, host_port: u16, vm_port: u16) -> Service {
    service.port_forwards.push(PortForward {
        host_port,
        vm_port,
        protocol: Protocol::Tcp,
    });
    service
}

pub fn with_health_port(mut service: Service, port: u16) -> Service {
    service.health_check = Some(HealthCheck {
        kind: HealthCheckType::Http,
        target: None,
        port: Some(port),
        path: Some("/".to_string()),
        interval: GoDuration::from_secs(10),
        timeout: GoDuration::from_secs(2),
        retries: 3,
        start_period: GoDuration::from_secs(0),
        success_threshold: 1,
        expected_status: None,
    });
    service
}

pub fn with_meta(mut service: Service, key: &str, value: &str) -> Service {
    service.metadata.insert(key.to_string(), value.to_string());
    service
}

/// One directory entry as a test compares it: bytes, inode and modification time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileState {
    pub bytes: Vec<u8>,
    pub inode: u64,
    pub mtime_ns: i128,
}

/// Records every entry of `dir` by name. A missing directory reads as empty.
pub fn snapshot(dir: &Path) -> BTreeMap<String, FileState> {
    let mut out = BTreeMap::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for entry in entries {
        let entry = entry.unwrap();
        let metadata = entry.metadata().unwrap();
        let bytes = if metadata.is_file() {
            fs::read(entry.path()).unwrap()
        } else {
            Vec::new()
        };
        out.insert(
            entry.file_name().into_string().unwrap(),
            FileState {
                bytes,
                inode: metadata.ino(),
                mtime_ns: i128::from(metadata.mtime()) * 1_000_000_000
                    + i128::from(metadata.mtime_nsec()),
            },
        );
    }
    out
}

pub fn names(dir: &Path) -> Vec<String> {
    snapshot(dir).into_keys().collect()
}

pub fn read(dir: &Path, name: &str) -> String {
    fs::read_to_string(dir.join(name)).unwrap()
}
