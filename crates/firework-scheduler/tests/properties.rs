//! Property tests of the placement pass over random nodes, services and previous placements.

#![allow(
    clippy::unwrap_used,
    reason = "helpers of tests: a panic is a test failure"
)]

use std::collections::{BTreeMap, BTreeSet, HashMap};

use firework_scheduler::{
    ExistingPlacement, HostPort, NodeCapacity, Placement, Resources, ScheduleOptions,
    ServiceRequest, schedule,
};
use proptest::prelude::*;
use proptest::sample::subsequence;

const LABELS: [&str; 2] = ["general", "gpu"];
const GROUPS: [&str; 2] = ["es", "db"];
/// Few ports, so that services often share one; 53 comes as TCP and UDP, which do not clash.
const HOST_PORTS: [HostPort; 4] = [
    HostPort::tcp(53),
    HostPort::udp(53),
    HostPort::tcp(80),
    HostPort::tcp(443),
];

fn node_strategy(index: usize) -> impl Strategy<Value = NodeCapacity> {
    (
        0u32..16,
        0u64..8192,
        0u32..2,
        0u64..512,
        subsequence(LABELS.to_vec(), 0..=2),
    )
        .prop_map(
            move |(vcpus, memory_mb, reserved_vcpus, reserved_mb, labels)| {
                let mut node = NodeCapacity::new(format!("n{index}"), vcpus, memory_mb)
                    .with_reserved(reserved_vcpus, reserved_mb);
                for label in labels {
                    node = node.with_label(label);
                }
                node
            },
        )
}

fn nodes_strategy() -> impl Strategy<Value = Vec<NodeCapacity>> {
    (1usize..8).prop_flat_map(|count| (0..count).map(node_strategy).collect::<Vec<_>>())
}

fn service_strategy(index: usize) -> impl Strategy<Value = ServiceRequest> {
    (
        1u32..8,
        1u64..4096,
        proptest::option::of(proptest::sample::select(LABELS.to_vec())),
        proptest::option::of(proptest::sample::select(GROUPS.to_vec())),
        subsequence(HOST_PORTS.to_vec(), 0..=2),
    )
        .prop_map(
            move |(vcpus, memory_mb, node_type, group, host_ports)| ServiceRequest {
                node_type: node_type.map(str::to_owned),
                anti_affinity_group: group.map(str::to_owned),
                host_ports,
                ..ServiceRequest::new(format!("s{index}"), vcpus, memory_mb)
            },
        )
}

fn services_strategy() -> impl Strategy<Value = Vec<ServiceRequest>> {
    (0usize..24).prop_flat_map(|count| (0..count).map(service_strategy).collect::<Vec<_>>())
}

/// Random previous placements; node `n9` never exists and stands for a dead node.
fn existing_strategy(services: usize) -> impl Strategy<Value = Vec<ExistingPlacement>> {
    proptest::collection::vec((0..services.max(1), 0usize..10), 0..=services).prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(s, n)| ExistingPlacement::new(format!("s{s}"), format!("n{n}")))
            .collect()
    })
}

fn options_strategy() -> impl Strategy<Value = ScheduleOptions> {
    (0u64..64, any::<bool>()).prop_map(|(vm_overhead_mb, spread)| ScheduleOptions {
        vm_overhead_mb,
        spread,
    })
}

type Case = (
    Vec<NodeCapacity>,
    Vec<ServiceRequest>,
    Vec<ExistingPlacement>,
    ScheduleOptions,
);

fn case_strategy() -> impl Strategy<Value = Case> {
    (nodes_strategy(), services_strategy(), options_strategy()).prop_flat_map(
        |(nodes, services, options)| {
            let existing = existing_strategy(services.len());
            (Just(nodes), Just(services), existing, Just(options))
        },
    )
}

/// Generates a case and the same case with every input list shuffled and each service's
/// host ports reversed.
fn shuffled_strategy() -> impl Strategy<Value = (Case, Case)> {
    case_strategy().prop_flat_map(|case| {
        let (nodes, mut services, existing, options) = case.clone();
        for service in &mut services {
            service.host_ports.reverse();
        }
        let shuffled = (
            Just(nodes).prop_shuffle(),
            Just(services).prop_shuffle(),
            Just(existing).prop_shuffle(),
            Just(options),
        );
        (Just(case), shuffled)
    })
}

/// Checks capacity, node type, anti-affinity, host ports and that each service is listed
/// exactly once, all recomputed from the inputs rather than read from the placement's own
/// summary.
fn check_invariants(case: &Case, placement: &Placement) -> Result<(), TestCaseError> {
    let (nodes, services, _, options) = case;
    let nodes: HashMap<&str, &NodeCapacity> = nodes.iter().map(|n| (n.name.as_str(), n)).collect();
    let services: HashMap<&str, &ServiceRequest> =
        services.iter().map(|s| (s.name.as_str(), s)).collect();

    let mut used: BTreeMap<&str, Resources> = BTreeMap::new();
    let mut groups: BTreeSet<(&str, &str)> = BTreeSet::new();
    let mut host_ports: BTreeSet<(HostPort, &str)> = BTreeSet::new();
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    for assignment in &placement.assignments {
        let service = services[assignment.service.as_str()];
        let node = nodes
            .get(assignment.node.as_str())
            .ok_or_else(|| TestCaseError::fail(format!("unknown node {}", assignment.node)))?;
        prop_assert!(seen.insert(&assignment.service), "listed twice");

        let total = used.entry(&assignment.node).or_default();
        total.vcpus += service.vcpus;
        total.memory_mb += service.memory_mb + options.vm_overhead_mb;

        if let Some(node_type) = &service.node_type {
            prop_assert!(node.labels.contains(node_type), "label missing");
        }
        if let Some(group) = &service.anti_affinity_group {
            prop_assert!(
                groups.insert((group, &assignment.node)),
                "group {} twice on {}",
                group,
                assignment.node
            );
        }
        for &host_port in &service.host_ports {
            prop_assert!(
                host_ports.insert((host_port, &assignment.node)),
                "host port {} twice on {}",
                host_port,
                assignment.node
            );
        }
    }
    for (node, total) in &used {
        let allocatable = nodes[node].allocatable();
        prop_assert!(total.vcpus <= allocatable.vcpus, "{node} over CPU");
        prop_assert!(
            total.memory_mb <= allocatable.memory_mb,
            "{node} over memory"
        );
    }
    for unplaced in &placement.unplaced {
        prop_assert!(seen.insert(&unplaced.service), "placed and unplaced");
    }
    prop_assert_eq!(seen.len(), services.len());
    Ok(())
}

fn as_existing(placement: &Placement) -> Vec<ExistingPlacement> {
    placement
        .assignments
        .iter()
        .map(|a| ExistingPlacement::new(&a.service, &a.node))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn never_over_capacity_or_against_rules(case in case_strategy()) {
        let (nodes, services, existing, options) = &case;
        let placement = schedule(nodes, services, existing, options).unwrap();
        check_invariants(&case, &placement)?;
    }

    #[test]
    fn deterministic_under_shuffling((case, shuffled) in shuffled_strategy()) {
        let (nodes, services, existing, options) = &case;
        let first = schedule(nodes, services, existing, options).unwrap();
        let (nodes, services, existing, options) = &shuffled;
        let second = schedule(nodes, services, existing, options).unwrap();
        prop_assert_eq!(first, second);
    }

    #[test]
    fn fitting_existing_kept(
        case in case_strategy(),
        extra_node in node_strategy(8),
        extra_service in service_strategy(99),
    ) {
        let (nodes, services, existing, options) = &case;
        let first = schedule(nodes, services, existing, options).unwrap();
        let previous = as_existing(&first);

        // A valid previous placement stays as it is, also with one more node and service.
        let mut more_nodes = nodes.clone();
        more_nodes.push(extra_node);
        let mut more_services = services.clone();
        more_services.push(extra_service);
        let second = schedule(&more_nodes, &more_services, &previous, options).unwrap();

        for assignment in &first.assignments {
            prop_assert_eq!(second.node_of(&assignment.service), Some(assignment.node.as_str()));
        }
        prop_assert!(second.moves.is_empty(), "moves: {:?}", second.moves);
    }

    #[test]
    fn moves_match_previous_nodes(case in case_strategy()) {
        let (nodes, services, existing, options) = &case;
        let placement = schedule(nodes, services, existing, options).unwrap();
        let mut previous: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for entry in existing {
            previous.entry(&entry.service).or_default().insert(&entry.node);
        }
        for moved in &placement.moves {
            let from = &previous[moved.service.as_str()];
            prop_assert!(from.contains(moved.from.as_str()));
            prop_assert_eq!(placement.node_of(&moved.service), moved.to.as_deref());
        }
        for assignment in placement.assignments.iter().filter(|a| a.kept) {
            prop_assert!(previous[assignment.service.as_str()].contains(assignment.node.as_str()));
        }
    }
}
