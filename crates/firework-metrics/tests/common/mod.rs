//! Helpers shared by the integration tests.

use std::time::Duration;

use firework_metrics::{
    AgentMetrics, CapacitySnapshot, FetchResult, HealthState, PlanCounts, StoreBackend, SyncResult,
    TickResult,
};

/// Calls every recording method once, so every family has at least one sample.
pub fn record_everything(metrics: &AgentMetrics) {
    metrics.record_tick(TickResult::Ok, Duration::from_millis(42));
    metrics.record_plan(PlanCounts {
        create: 2,
        update: 1,
        delete: 1,
        unchanged: 5,
    });
    metrics.record_vm_start("web");
    metrics.record_vm_stop("web");
    metrics.record_vm_restart("web");
    metrics.record_vm_failure("web");
    metrics.set_health_state("web", HealthState::Healthy);
    metrics.record_store_fetch(StoreBackend::S3, FetchResult::Ok, Duration::from_millis(80));
    metrics.record_image_sync(SyncResult::Ok, 4096, Duration::from_secs(3));
    metrics.set_capacity(&CapacitySnapshot {
        vcpus_total: 16,
        vcpus_reserved: 6,
        vcpus_used: 4,
        memory_total_mib: 32768,
        memory_reserved_mib: 4096,
        memory_used_mib: 2048,
    });
    metrics.set_applied_revision("node-1", "edge", "0123abcd");
    metrics.record_route_sync(SyncResult::NoChange);
}
