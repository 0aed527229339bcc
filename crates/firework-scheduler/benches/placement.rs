//! Placement of 10,000 services onto 1,000 nodes: from scratch, against a full previous
//! placement, and from scratch without node types.
//!
//! Run with `cargo bench -p firework-scheduler --bench placement`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use firework_scheduler::{
    ExistingPlacement, NodeCapacity, ScheduleOptions, ServiceRequest, schedule,
};

const NODES: usize = 1_000;
const SERVICES: usize = 10_000;
const NODE_TYPES: [&str; 4] = ["general", "compute", "memory", "storage"];

/// A fixed linear congruential generator, so every run benchmarks the same input.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % bound
    }
}

fn cluster() -> (Vec<NodeCapacity>, Vec<ServiceRequest>) {
    let mut rng = Lcg(42);
    let nodes = (0..NODES)
        .map(|i| {
            let size = [16, 32, 48, 64][rng.next(4) as usize];
            NodeCapacity::new(format!("node-{i:04}"), size, u64::from(size) * 4096)
                .with_reserved(1, 2048)
                .with_label(NODE_TYPES[i % NODE_TYPES.len()])
        })
        .collect();
    let services = (0..SERVICES)
        .map(|i| {
            let mut service = ServiceRequest::new(
                format!("svc-{i:05}"),
                [1, 1, 2, 2, 4][rng.next(5) as usize],
                [256, 512, 1024, 2048, 4096][rng.next(5) as usize],
            )
            .with_node_type(NODE_TYPES[rng.next(4) as usize]);
            if i % 10 == 0 {
                service = service.with_group(format!("group-{}", i % 300));
            }
            service
        })
        .collect();
    (nodes, services)
}

fn bench_placement(c: &mut Criterion) {
    let (nodes, services) = cluster();
    let options = ScheduleOptions::default();

    let first = schedule(&nodes, &services, &[], &options).expect("schedule");
    assert!(
        first.is_complete(),
        "bench input must fit: {:?}",
        first.unplaced.first()
    );
    let existing: Vec<ExistingPlacement> = first
        .assignments
        .iter()
        .map(|a| ExistingPlacement::new(&a.service, &a.node))
        .collect();

    let mut group = c.benchmark_group("placement");
    group.sample_size(20);
    group.bench_function("10000_services_1000_nodes_fresh", |b| {
        b.iter(|| schedule(black_box(&nodes), black_box(&services), &[], &options))
    });
    group.bench_function("10000_services_1000_nodes_all_kept", |b| {
        b.iter(|| schedule(black_box(&nodes), black_box(&services), &existing, &options))
    });

    // Without node types every service scans all 1,000 nodes: the slowest case.
    let untyped: Vec<ServiceRequest> = services
        .iter()
        .map(|s| ServiceRequest {
            node_type: None,
            ..s.clone()
        })
        .collect();
    group.bench_function("10000_untyped_services_1000_nodes_fresh", |b| {
        b.iter(|| schedule(black_box(&nodes), black_box(&untyped), &[], &options))
    });
    group.finish();
}

criterion_group!(benches, bench_placement);
criterion_main!(benches);
