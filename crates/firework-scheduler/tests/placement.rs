//! Table tests of the placement pass.

#![allow(
    clippy::unwrap_used,
    reason = "helpers of tests: a panic is a test failure"
)]

use firework_scheduler::{
    ExistingPlacement, HostPort, MoveReason, NodeCapacity, Placement, PortConflict, ScheduleError,
    ScheduleOptions, ServiceRequest, UnplacedReason, schedule,
};

/// Options without per-VM overhead, so the numbers in a case add up exactly.
fn exact() -> ScheduleOptions {
    ScheduleOptions {
        vm_overhead_mb: 0,
        spread: false,
    }
}

fn node(name: &str, vcpus: u32, memory_mb: u64) -> NodeCapacity {
    NodeCapacity::new(name, vcpus, memory_mb)
}

fn service(name: &str, vcpus: u32, memory_mb: u64) -> ServiceRequest {
    ServiceRequest::new(name, vcpus, memory_mb)
}

fn existing(pairs: &[(&str, &str)]) -> Vec<ExistingPlacement> {
    pairs
        .iter()
        .map(|(s, n)| ExistingPlacement::new(*s, *n))
        .collect()
}

/// Returns (service, node) pairs in service-name order.
fn pairs(placement: &Placement) -> Vec<(&str, &str)> {
    placement
        .assignments
        .iter()
        .map(|a| (a.service.as_str(), a.node.as_str()))
        .collect()
}

fn run(
    nodes: &[NodeCapacity],
    services: &[ServiceRequest],
    previous: &[ExistingPlacement],
) -> Placement {
    schedule(nodes, services, previous, &exact()).unwrap()
}

#[test]
fn single_service_fits() {
    let placement = run(&[node("n1", 4, 1024)], &[service("a", 2, 512)], &[]);
    assert_eq!(placement.node_of("a"), Some("n1"));
    assert!(placement.is_complete());
    assert!(placement.moves.is_empty());
}

#[test]
fn best_fit_prefers_tighter_node() {
    let nodes = [node("large", 8, 4096), node("small", 2, 1024)];
    let placement = run(&nodes, &[service("a", 1, 256)], &[]);
    assert_eq!(placement.node_of("a"), Some("small"));
}

#[test]
fn spread_prefers_emptier_node() {
    let nodes = [node("large", 8, 4096), node("small", 2, 1024)];
    let options = ScheduleOptions {
        spread: true,
        ..exact()
    };
    let placement = schedule(&nodes, &[service("a", 1, 256)], &[], &options).unwrap();
    assert_eq!(placement.node_of("a"), Some("large"));
}

#[test]
fn best_fit_scores_cpu_and_memory() {
    // Normalised leftovers: 0/2 + 3072/4096 = 0.75 on "cpu", 2/4 + 3072/4096 = 1.25 on "wide".
    let nodes = [node("cpu", 2, 4096), node("wide", 4, 4096)];
    let placement = run(&nodes, &[service("cpu-heavy", 2, 1024)], &[]);
    assert_eq!(placement.node_of("cpu-heavy"), Some("cpu"));

    // Memory decides when CPU leftovers are equal.
    let nodes = [node("big-mem", 4, 8192), node("small-mem", 4, 2048)];
    let placement = run(&nodes, &[service("m", 2, 1024)], &[]);
    assert_eq!(placement.node_of("m"), Some("small-mem"));
}

#[test]
fn ties_broken_by_node_name() {
    let nodes = [
        node("n3", 4, 1024),
        node("n1", 4, 1024),
        node("n2", 4, 1024),
    ];
    let placement = run(&nodes, &[service("a", 1, 128)], &[]);
    assert_eq!(placement.node_of("a"), Some("n1"));
}

#[test]
fn overcommit_refused() {
    let nodes = [node("n1", 4, 1024)];
    let services = [
        service("a", 2, 512),
        service("b", 2, 512),
        service("c", 1, 1),
    ];
    let placement = run(&nodes, &services, &[]);
    assert_eq!(placement.node_of("a"), Some("n1"));
    assert_eq!(placement.node_of("b"), Some("n1"));
    assert_eq!(placement.node_of("c"), None);
    assert_eq!(placement.unplaced.len(), 1);
    assert_eq!(placement.unplaced[0].service, "c");
    assert_eq!(
        placement.unplaced[0].reason,
        UnplacedReason::InsufficientCpu {
            requested: 1,
            max_free: 0
        }
    );
    assert_eq!(placement.nodes[0].used, placement.nodes[0].allocatable);
}

#[test]
fn overhead_counted_per_vm() {
    // 2 x (256 + 32) = 576 MiB fits in 600, a third VM does not.
    let options = ScheduleOptions {
        vm_overhead_mb: 32,
        spread: false,
    };
    let services = [service("a", 1, 256), service("b", 1, 256)];
    let placement = schedule(&[node("n1", 8, 600)], &services, &[], &options).unwrap();
    assert!(placement.is_complete());
    assert_eq!(placement.nodes[0].used.memory_mb, 576);

    let services = [
        service("a", 1, 256),
        service("b", 1, 256),
        service("c", 1, 1),
    ];
    let placement = schedule(&[node("n1", 8, 600)], &services, &[], &options).unwrap();
    assert_eq!(
        placement.unplaced[0].reason,
        UnplacedReason::InsufficientMemory {
            requested_mb: 33,
            max_free_mb: 24
        }
    );
}

#[test]
fn reserve_not_allocated() {
    let nodes = [node("n1", 4, 2048).with_reserved(1, 1024)];
    let placement = run(&nodes, &[service("a", 4, 512)], &[]);
    assert_eq!(
        placement.unplaced[0].reason,
        UnplacedReason::InsufficientCpu {
            requested: 4,
            max_free: 3
        }
    );
    let placement = run(&nodes, &[service("a", 3, 1025)], &[]);
    assert_eq!(
        placement.unplaced[0].reason,
        UnplacedReason::InsufficientMemory {
            requested_mb: 1025,
            max_free_mb: 1024
        }
    );
}

#[test]
fn cpu_and_memory_on_different_nodes() {
    let nodes = [node("cpu", 8, 512), node("mem", 1, 8192)];
    let placement = run(&nodes, &[service("a", 4, 4096)], &[]);
    assert_eq!(
        placement.unplaced[0].reason,
        UnplacedReason::InsufficientCpuAndMemory {
            requested: firework_scheduler::Resources::new(4, 4096)
        }
    );
}

#[test]
fn node_type_respected() {
    let nodes = [
        node("gp", 16, 16384).with_label("general"),
        node("gpu", 4, 4096).with_label("gpu"),
    ];
    let services = [
        service("web", 1, 256).with_node_type("general"),
        service("ml", 1, 256).with_node_type("gpu"),
        service("db", 1, 256).with_node_type("storage"),
    ];
    let placement = run(&nodes, &services, &[]);
    assert_eq!(placement.node_of("web"), Some("gp"));
    assert_eq!(placement.node_of("ml"), Some("gpu"));
    assert_eq!(placement.node_of("db"), None);
    assert_eq!(
        placement.unplaced[0].reason,
        UnplacedReason::NoLiveNodeOfType {
            node_type: "storage".into()
        }
    );
}

#[test]
fn anti_affinity_is_hard() {
    let services = [
        service("es-1", 1, 128).with_group("es"),
        service("es-2", 1, 128).with_group("es"),
        service("es-3", 1, 128).with_group("es"),
    ];
    let nodes = [node("n1", 16, 16384), node("n2", 16, 16384)];
    let placement = run(&nodes, &services, &[]);
    assert_eq!(placement.assignments.len(), 2);
    let by_node = placement.by_node();
    assert_eq!(by_node["n1"].len(), 1);
    assert_eq!(by_node["n2"].len(), 1);
    assert_eq!(placement.unplaced.len(), 1);
    assert_eq!(
        placement.unplaced[0].reason,
        UnplacedReason::AntiAffinity { group: "es".into() }
    );
}

#[test]
fn anti_affinity_splits_existing_pair() {
    let services = [
        service("es-1", 4, 4096).with_group("g"),
        service("es-2", 4, 4096).with_group("g"),
    ];
    let nodes = [node("i-001", 64, 65536), node("i-002", 64, 65536)];
    let previous = existing(&[("es-1", "i-001"), ("es-2", "i-001")]);
    let placement = run(&nodes, &services, &previous);
    assert_eq!(placement.node_of("es-1"), Some("i-001"));
    assert_eq!(placement.node_of("es-2"), Some("i-002"));
    assert_eq!(placement.moves.len(), 1);
    assert_eq!(placement.moves[0].service, "es-2");
    assert_eq!(placement.moves[0].from, "i-001");
    assert_eq!(placement.moves[0].to.as_deref(), Some("i-002"));
    assert_eq!(
        placement.moves[0].reason,
        MoveReason::AntiAffinity {
            group: "g".into(),
            kept: "es-1".into()
        }
    );
}

#[test]
fn host_port_shared_goes_to_separate_nodes() {
    // Best fit alone would put both on "n1", the tighter node.
    let nodes = [node("n1", 4, 2048), node("n2", 8, 8192)];
    let services = [
        service("web-a", 1, 256).with_host_port(HostPort::tcp(8080)),
        service("web-b", 1, 256).with_host_port(HostPort::tcp(8080)),
    ];
    let placement = run(&nodes, &services, &[]);
    assert_eq!(placement.node_of("web-a"), Some("n1"));
    assert_eq!(placement.node_of("web-b"), Some("n2"));
    assert!(placement.is_complete());
}

#[test]
fn host_port_rule_table() {
    // (case, host ports of "a", host ports of "b", whether both share the one node)
    let cases: [(&str, Vec<HostPort>, Vec<HostPort>, bool); 6] = [
        ("no ports", vec![], vec![], true),
        (
            "different ports",
            vec![HostPort::tcp(80)],
            vec![HostPort::tcp(81)],
            true,
        ),
        (
            "same port, other protocol",
            vec![HostPort::tcp(53)],
            vec![HostPort::udp(53)],
            true,
        ),
        (
            "same port and protocol",
            vec![HostPort::udp(53)],
            vec![HostPort::udp(53)],
            false,
        ),
        (
            "one of several ports shared",
            vec![HostPort::tcp(80), HostPort::tcp(443)],
            vec![HostPort::tcp(8443), HostPort::tcp(443)],
            false,
        ),
        (
            "only one side forwards",
            vec![HostPort::tcp(80)],
            vec![],
            true,
        ),
    ];
    for (case, ports_a, ports_b, shared) in cases {
        let a = ServiceRequest {
            host_ports: ports_a,
            ..service("a", 1, 128)
        };
        let b = ServiceRequest {
            host_ports: ports_b,
            ..service("b", 1, 128)
        };
        let placement = run(&[node("n1", 8, 8192)], &[a, b], &[]);
        assert_eq!(placement.node_of("a"), Some("n1"), "{case}");
        let expected_b = if shared { Some("n1") } else { None };
        assert_eq!(placement.node_of("b"), expected_b, "{case}");
    }
}

#[test]
fn service_repeating_its_own_port_is_placed() {
    let services = [service("a", 1, 128)
        .with_host_port(HostPort::tcp(80))
        .with_host_port(HostPort::tcp(80))];
    let placement = run(&[node("n1", 4, 1024)], &services, &[]);
    assert_eq!(placement.node_of("a"), Some("n1"));
}

#[test]
fn host_port_conflict_everywhere_is_unplaced() {
    let nodes = [node("n2", 8, 8192), node("n1", 8, 8192)];
    let services = [
        service("a", 2, 256).with_host_port(HostPort::tcp(80)),
        service("b", 2, 256)
            .with_host_port(HostPort::tcp(80))
            .with_host_port(HostPort::udp(53)),
        // Each node names the first shared port in port order, not in list order.
        service("c", 1, 256)
            .with_host_port(HostPort::tcp(80))
            .with_host_port(HostPort::udp(53)),
    ];
    let placement = run(&nodes, &services, &[]);
    assert_eq!(placement.node_of("a"), Some("n1"));
    assert_eq!(placement.node_of("b"), Some("n2"));
    assert_eq!(placement.node_of("c"), None);
    assert_eq!(placement.unplaced.len(), 1);
    assert_eq!(placement.unplaced[0].service, "c");
    assert_eq!(
        placement.unplaced[0].reason,
        UnplacedReason::HostPortConflict {
            conflicts: vec![
                PortConflict {
                    node: "n1".into(),
                    host_port: HostPort::tcp(80),
                    service: "a".into(),
                },
                PortConflict {
                    node: "n2".into(),
                    host_port: HostPort::udp(53),
                    service: "b".into(),
                },
            ]
        }
    );
    assert_eq!(
        placement.unplaced[0].reason.to_string(),
        "every allowed node already forwards one of its host ports: \
         host port 80 (tcp) by \"a\" on n1, host port 53 (udp) by \"b\" on n2"
    );
}

#[test]
fn host_port_conflict_message_names_ten_nodes() {
    let nodes: Vec<NodeCapacity> = (0..12)
        .map(|i| node(&format!("n{i:02}"), 4, 1024))
        .collect();
    let mut services: Vec<ServiceRequest> = (0..12)
        .map(|i| service(&format!("s{i:02}"), 1, 128).with_host_port(HostPort::tcp(80)))
        .collect();
    // Placed last because its name sorts last.
    services.push(service("x-last", 1, 128).with_host_port(HostPort::tcp(80)));
    let placement = run(&nodes, &services, &[]);
    assert_eq!(placement.unplaced.len(), 1);
    assert_eq!(placement.unplaced[0].service, "x-last");
    let UnplacedReason::HostPortConflict { conflicts } = &placement.unplaced[0].reason else {
        panic!("unexpected reason {:?}", placement.unplaced[0].reason);
    };
    assert_eq!(conflicts.len(), 12);
    let message = placement.unplaced[0].reason.to_string();
    assert!(
        message.ends_with("host port 80 (tcp) by \"s09\" on n09 and 2 more nodes"),
        "{message}"
    );
    assert!(!message.contains("n10"), "{message}");
}

#[test]
fn unplaced_reason_order_around_host_ports() {
    // Anti-affinity comes before host ports: every node of the type runs a member.
    let nodes = [node("n1", 8, 8192)];
    let services = [
        service("a", 1, 128)
            .with_group("g")
            .with_host_port(HostPort::tcp(80)),
        service("b", 1, 128)
            .with_group("g")
            .with_host_port(HostPort::tcp(80)),
    ];
    let placement = run(&nodes, &services, &[]);
    assert_eq!(
        placement.unplaced[0].reason,
        UnplacedReason::AntiAffinity { group: "g".into() }
    );

    // Host ports come before capacity: the only node without the port is too small, and
    // the capacity reason covers only that node.
    let nodes = [node("big", 8, 8192), node("small", 1, 128)];
    let services = [
        service("a", 1, 128).with_host_port(HostPort::tcp(80)),
        service("b", 4, 128).with_host_port(HostPort::tcp(80)),
    ];
    let placement = run(&nodes, &services, &[]);
    assert_eq!(placement.node_of("b"), Some("big"));
    assert_eq!(placement.node_of("a"), Some("small"));
    let services = [
        service("a", 4, 128).with_host_port(HostPort::tcp(80)),
        service("b", 4, 128).with_host_port(HostPort::tcp(80)),
    ];
    let placement = run(&nodes, &services, &[]);
    assert_eq!(placement.node_of("a"), Some("big"));
    assert_eq!(
        placement.unplaced[0].reason,
        UnplacedReason::InsufficientCpu {
            requested: 4,
            max_free: 1
        }
    );
}

#[test]
fn host_port_splits_existing_pair() {
    let nodes = [node("n1", 8, 8192), node("n2", 8, 8192)];
    let services = [
        service("web-b", 1, 256).with_host_port(HostPort::tcp(443)),
        service("web-a", 1, 256)
            .with_host_port(HostPort::tcp(8443))
            .with_host_port(HostPort::tcp(443)),
        service("other", 1, 256).with_host_port(HostPort::tcp(9000)),
    ];
    let previous = existing(&[("web-a", "n1"), ("web-b", "n1"), ("other", "n1")]);
    let placement = run(&nodes, &services, &previous);
    assert_eq!(placement.node_of("web-a"), Some("n1"));
    assert_eq!(placement.node_of("other"), Some("n1"));
    assert_eq!(placement.node_of("web-b"), Some("n2"));
    assert_eq!(placement.moves.len(), 1);
    assert_eq!(placement.moves[0].service, "web-b");
    assert_eq!(placement.moves[0].from, "n1");
    assert_eq!(placement.moves[0].to.as_deref(), Some("n2"));
    assert_eq!(
        placement.moves[0].reason,
        MoveReason::HostPortConflict {
            host_port: HostPort::tcp(443),
            kept: "web-a".into()
        }
    );
    assert_eq!(
        placement.moves[0].reason.to_string(),
        "\"web-a\" forwarding host port 443 (tcp) stays on the previous node"
    );
}

#[test]
fn host_port_clash_on_single_node_unplaces_one() {
    let services = [
        service("web-b", 1, 256).with_host_port(HostPort::udp(5353)),
        service("web-a", 1, 256).with_host_port(HostPort::udp(5353)),
    ];
    let previous = existing(&[("web-a", "n1"), ("web-b", "n1")]);
    let placement = run(&[node("n1", 8, 8192)], &services, &previous);
    assert_eq!(placement.node_of("web-a"), Some("n1"));
    assert_eq!(placement.node_of("web-b"), None);
    assert_eq!(placement.moves.len(), 1);
    assert_eq!(placement.moves[0].to, None);
    assert_eq!(
        placement.unplaced[0].reason.to_string(),
        "every allowed node already forwards one of its host ports: \
         host port 5353 (udp) by \"web-a\" on n1"
    );
}

#[test]
fn host_port_reasons_serialize_with_codes() {
    let unplaced = UnplacedReason::HostPortConflict {
        conflicts: vec![PortConflict {
            node: "n1".into(),
            host_port: HostPort::udp(53),
            service: "dns".into(),
        }],
    };
    assert_eq!(
        serde_json::to_value(&unplaced).unwrap(),
        serde_json::json!({
            "code": "host_port_conflict",
            "conflicts": [
                {"node": "n1", "host_port": {"port": 53, "protocol": "udp"}, "service": "dns"}
            ]
        })
    );
    let moved = MoveReason::HostPortConflict {
        host_port: HostPort::tcp(80),
        kept: "web".into(),
    };
    let json = serde_json::to_value(&moved).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "code": "host_port_conflict",
            "host_port": {"port": 80, "protocol": "tcp"},
            "kept": "web"
        })
    );
    assert_eq!(serde_json::from_value::<MoveReason>(json).unwrap(), moved);
}

#[test]
fn service_request_json_without_host_ports() {
    let request: ServiceRequest =
        serde_json::from_str(r#"{"name": "web", "vcpus": 1, "memory_mb": 256}"#).unwrap();
    assert_eq!(request, service("web", 1, 256));

    let request: ServiceRequest = serde_json::from_str(
        r#"{"name": "dns", "vcpus": 1, "memory_mb": 64,
            "host_ports": [{"port": 53, "protocol": "udp"}, {"port": 8053}]}"#,
    )
    .unwrap();
    assert_eq!(request.host_ports, [HostPort::udp(53), HostPort::tcp(8053)]);

    let error = serde_json::from_str::<ServiceRequest>(
        r#"{"name": "x", "vcpus": 1, "memory_mb": 64, "host_ports": [{"port": 1, "protocol": "sctp"}]}"#,
    )
    .unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("invalid value: string \"sctp\", expected tcp or udp"),
        "{error}"
    );
}

#[test]
fn existing_placement_kept_over_best_fit() {
    // Best fit would choose "small", but "a" already runs on "large".
    let nodes = [node("large", 8, 4096), node("small", 2, 1024)];
    let placement = run(
        &nodes,
        &[service("a", 1, 256)],
        &existing(&[("a", "large")]),
    );
    assert_eq!(placement.node_of("a"), Some("large"));
    assert!(placement.assignments[0].kept);
    assert!(placement.moves.is_empty());
}

#[test]
fn adding_node_moves_nothing() {
    let services = [
        service("a", 2, 512),
        service("b", 1, 256),
        service("c", 1, 1024),
    ];
    let before = run(&[node("n1", 4, 4096)], &services, &[]);
    assert!(before.is_complete());
    let previous: Vec<ExistingPlacement> = before
        .assignments
        .iter()
        .map(|a| ExistingPlacement::new(&a.service, &a.node))
        .collect();

    // The new node is a tighter fit for every service, and still nothing moves.
    let after = run(
        &[node("n1", 4, 4096), node("n0", 2, 1024)],
        &services,
        &previous,
    );
    assert_eq!(pairs(&after), pairs(&before));
    assert!(after.assignments.iter().all(|a| a.kept));
    assert!(after.moves.is_empty());
}

#[test]
fn adding_service_moves_nothing() {
    let nodes = [node("n1", 4, 2048), node("n2", 8, 8192)];
    let services = vec![service("a", 2, 512), service("b", 4, 4096)];
    let before = run(&nodes, &services, &[]);
    let previous: Vec<ExistingPlacement> = before
        .assignments
        .iter()
        .map(|a| ExistingPlacement::new(&a.service, &a.node))
        .collect();

    // A large new service would fit best where "a" is; "a" stays anyway.
    let mut more = services.clone();
    more.push(service("big", 4, 2048));
    let after = run(&nodes, &more, &previous);
    assert_eq!(after.node_of("a"), before.node_of("a"));
    assert_eq!(after.node_of("b"), before.node_of("b"));
    assert!(after.moves.is_empty());
    assert!(after.node_of("big").is_some());
}

#[test]
fn dead_node_services_moved() {
    let services = [service("a", 1, 256), service("b", 1, 256)];
    let previous = existing(&[("a", "gone"), ("b", "n1")]);
    let placement = run(
        &[node("n1", 4, 1024), node("n2", 4, 1024)],
        &services,
        &previous,
    );
    assert_eq!(placement.node_of("b"), Some("n1"));
    assert!(placement.node_of("a").is_some());
    assert_eq!(placement.moves.len(), 1);
    assert_eq!(placement.moves[0].service, "a");
    assert_eq!(placement.moves[0].from, "gone");
    assert_eq!(placement.moves[0].reason, MoveReason::NodeNotLive);
}

#[test]
fn moved_service_without_room_is_unplaced() {
    let services = [service("a", 4, 256), service("b", 4, 256)];
    let previous = existing(&[("a", "gone"), ("b", "n1")]);
    let placement = run(&[node("n1", 4, 1024)], &services, &previous);
    assert_eq!(placement.node_of("b"), Some("n1"));
    assert_eq!(placement.moves.len(), 1);
    assert_eq!(placement.moves[0].to, None);
    assert_eq!(placement.unplaced[0].service, "a");
}

#[test]
fn label_removed_moves_service() {
    let nodes = [node("n1", 4, 1024), node("n2", 4, 1024).with_label("gpu")];
    let services = [service("ml", 1, 256).with_node_type("gpu")];
    let placement = run(&nodes, &services, &existing(&[("ml", "n1")]));
    assert_eq!(placement.node_of("ml"), Some("n2"));
    assert_eq!(
        placement.moves[0].reason,
        MoveReason::NodeTypeMismatch {
            node_type: "gpu".into()
        }
    );
}

#[test]
fn shrunk_node_keeps_by_name() {
    // n1 now has room for one of the two, and the first by name stays.
    let nodes = [node("n1", 2, 512), node("n2", 4, 2048)];
    let services = [service("b", 2, 512), service("a", 2, 512)];
    let placement = run(&nodes, &services, &existing(&[("a", "n1"), ("b", "n1")]));
    assert_eq!(placement.node_of("a"), Some("n1"));
    assert_eq!(placement.node_of("b"), Some("n2"));
    assert_eq!(placement.moves[0].reason, MoveReason::InsufficientCapacity);
}

#[test]
fn removed_service_ignored() {
    let placement = run(
        &[node("n1", 4, 1024)],
        &[service("a", 1, 256)],
        &existing(&[("old", "n1"), ("a", "n1")]),
    );
    assert_eq!(placement.assignments.len(), 1);
    assert!(placement.moves.is_empty());
}

#[test]
fn no_live_nodes_is_error() {
    let error = schedule(&[], &[service("a", 1, 256)], &[], &exact()).unwrap_err();
    assert_eq!(error, ScheduleError::NoLiveNodes { services: 1 });
    assert_eq!(
        error.to_string(),
        "no live nodes: refusing to schedule 1 service(s), keep the previous placement until a node reports again"
    );
    // Also with nothing to place: an empty placement would still delete every node config.
    let error = schedule(&[], &[], &[], &exact()).unwrap_err();
    assert_eq!(error, ScheduleError::NoLiveNodes { services: 0 });
}

#[test]
fn invalid_inputs_rejected() {
    let nodes = [node("n1", 4, 1024)];
    let cases: Vec<(Vec<NodeCapacity>, Vec<ServiceRequest>, &str)> = vec![
        (
            nodes.to_vec(),
            vec![service("a", 1, 256), service("a", 2, 256)],
            "duplicate service name \"a\"",
        ),
        (
            vec![node("n1", 4, 1024), node("n1", 8, 1024)],
            vec![service("a", 1, 256)],
            "duplicate node name \"n1\"",
        ),
        (
            nodes.to_vec(),
            vec![service("a", 0, 256)],
            "invalid service \"a\": vcpus must be at least 1",
        ),
        (
            nodes.to_vec(),
            vec![service("a", 1, 0)],
            "invalid service \"a\": memory_mb must be at least 1",
        ),
        (
            nodes.to_vec(),
            vec![service("../etc", 1, 1)],
            "invalid service name \"../etc\": use 1 to 63 characters of a-z, 0-9 and '-', not starting or ending with '-'",
        ),
        (
            nodes.to_vec(),
            vec![service("a/b", 1, 1)],
            "invalid service name \"a/b\": use 1 to 63 characters of a-z, 0-9 and '-', not starting or ending with '-'",
        ),
        (
            vec![node("", 4, 1024)],
            vec![service("a", 1, 1)],
            "invalid node name \"\": use 1 to 253 characters of letters, digits, '.', '_' and '-', starting with a letter or digit",
        ),
    ];
    for (nodes, services, message) in cases {
        let error = schedule(&nodes, &services, &[], &exact()).unwrap_err();
        assert_eq!(error.to_string(), message);
    }
}

#[test]
fn output_sorted_by_name() {
    let nodes = [node("n2", 8, 8192), node("n1", 8, 8192)];
    let services = [
        service("c", 1, 128),
        service("a", 4, 128),
        service("b", 2, 128),
    ];
    let placement = run(&nodes, &services, &[]);
    let names: Vec<&str> = placement
        .assignments
        .iter()
        .map(|a| a.service.as_str())
        .collect();
    assert_eq!(names, ["a", "b", "c"]);
    let node_names: Vec<&str> = placement.nodes.iter().map(|n| n.node.as_str()).collect();
    assert_eq!(node_names, ["n1", "n2"]);
}
