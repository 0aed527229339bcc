//! Conversions from the model's node configs and registry records.

use firework_model::node::parse_node_config;
use firework_model::registry::{self, NodeRecord};
use firework_scheduler::{HostPort, NodeCapacity, Resources, ServiceRequest};

#[test]
fn service_from_node_config() {
    let yaml = b"services:\n  - name: es-1\n    image: /images/es.ext4\n    kernel: /images/vmlinux\n    vcpus: 2\n    memory_mb: 2048\n    node_type: storage\n    anti_affinity_group: es\n";
    let config = parse_node_config(yaml, "es.yaml").unwrap().value;
    let request = ServiceRequest::from(&config.services[0]);
    assert_eq!(
        request,
        ServiceRequest::new("es-1", 2, 2048)
            .with_node_type("storage")
            .with_group("es")
    );
}

#[test]
fn service_host_ports_from_port_forwards() {
    let yaml = b"services:\n  - name: dns\n    image: /images/dns.ext4\n    kernel: /images/vmlinux\n    vcpus: 1\n    memory_mb: 128\n    port_forwards:\n      - host_port: 53\n        vm_port: 53\n        protocol: udp\n      - host_port: 8053\n        vm_port: 53\n";
    let config = parse_node_config(yaml, "dns.yaml").unwrap().value;
    let request = ServiceRequest::from(&config.services[0]);
    assert_eq!(request.host_ports, [HostPort::udp(53), HostPort::tcp(8053)]);
}

#[test]
fn node_from_record() {
    let record = NodeRecord {
        node: "n1".to_owned(),
        labels: vec!["gpu".to_owned(), "general".to_owned()],
        host_ip: Some("10.0.0.7".parse().unwrap()),
        capacity: registry::Resources {
            vcpus: 16,
            memory_mb: 65536,
        },
        reserved: registry::Resources {
            vcpus: 2,
            memory_mb: 4096,
        },
        used: registry::Resources {
            vcpus: 8,
            memory_mb: 8192,
        },
        agent_version: "0.1.0".to_owned(),
        heartbeat: "2026-12-04T20:00:00Z".to_owned(),
    };
    let node = NodeCapacity::from(record);
    let mut expected = NodeCapacity::new("n1", 16, 65536)
        .with_label("general")
        .with_label("gpu")
        .with_reserved(2, 4096);
    expected.host_ip = Some("10.0.0.7".parse().unwrap());
    assert_eq!(node, expected);
    assert_eq!(node.allocatable(), Resources::new(14, 61440));
}
