//! Prints a scrape after one call of every recording method, to show the output format.

use std::time::Duration;

use firework_metrics::{
    AgentMetrics, CapacitySnapshot, FetchResult, HealthState, PlanCounts, StoreBackend, SyncResult,
    TickResult,
};

fn main() {
    let metrics = AgentMetrics::new(env!("CARGO_PKG_VERSION"));
    metrics.record_tick(TickResult::Ok, Duration::from_millis(42));
    metrics.record_plan(PlanCounts {
        create: 1,
        update: 0,
        delete: 0,
        unchanged: 3,
    });
    metrics.record_vm_start("web");
    metrics.record_vm_stop("web");
    metrics.record_vm_restart("web");
    metrics.record_vm_failure("web");
    metrics.set_health_state("web", HealthState::Healthy);
    metrics.record_store_fetch(StoreBackend::S3, FetchResult::Ok, Duration::from_millis(80));
    metrics.record_image_sync(SyncResult::Ok, 52_428_800, Duration::from_secs(4));
    metrics.set_capacity(&CapacitySnapshot {
        vcpus_total: 16,
        vcpus_reserved: 4,
        vcpus_used: 2,
        memory_total_mib: 24576,
        memory_reserved_mib: 2048,
        memory_used_mib: 1024,
    });
    metrics.set_applied_revision("node-1", "edge", "4f2a9c1e");
    metrics.record_route_sync(SyncResult::NoChange);
    print!("{}", metrics.encode());
}
