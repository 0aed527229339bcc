//! Translates what a tick did into the agent's Prometheus metrics (`firework-metrics`).

use std::time::Duration;

use firework_metrics::{
    AgentMetrics, CapacitySnapshot, FetchResult, PlanCounts, StoreBackend, TickResult,
};
use firework_model::registry::Resources;
use firework_store::{Backend, LabelResult, StoreErrorKind};

use crate::agent::TickReport;
use crate::executor::ApplyReport;
use crate::plan::{ActionKind, PlanSummary};

/// Returns the metrics label of a store backend.
pub fn backend(backend: Backend) -> StoreBackend {
    match backend {
        Backend::Local => StoreBackend::Local,
        Backend::Git => StoreBackend::Git,
        Backend::S3 => StoreBackend::S3,
        Backend::Gcs => StoreBackend::Gcs,
    }
}

/// Returns the metrics label of a store error class.
pub fn fetch_result(kind: StoreErrorKind) -> FetchResult {
    match kind {
        StoreErrorKind::NotFound => FetchResult::NotFound,
        StoreErrorKind::Unreachable => FetchResult::Unreachable,
        StoreErrorKind::Denied => FetchResult::Denied,
        StoreErrorKind::InvalidContent => FetchResult::InvalidContent,
        StoreErrorKind::InvalidSettings => FetchResult::InvalidSettings,
    }
}

/// Records one tick's store read: one fetch, whose result is the class of the first
/// failing label, or `ok` when every label was read.
pub fn record_fetch(
    metrics: &AgentMetrics,
    store: Backend,
    results: &[LabelResult],
    duration: Duration,
) {
    let result = results
        .iter()
        .find_map(|result| result.as_ref().err())
        .map_or(FetchResult::Ok, |error| fetch_result(error.kind));
    metrics.record_store_fetch(backend(store), result, duration);
}

/// Records the plan counts of a tick.
pub fn record_plan(metrics: &AgentMetrics, summary: PlanSummary) {
    metrics.record_plan(PlanCounts {
        create: summary.create as u64,
        update: summary.update as u64,
        delete: summary.delete as u64,
        unchanged: summary.unchanged as u64,
    });
}

/// Records the VM starts, stops and failures of an apply, and removes the series of
/// deleted services.
pub fn record_apply(metrics: &AgentMetrics, apply: &ApplyReport) {
    for outcome in &apply.outcomes {
        let service = outcome.service.as_str();
        if outcome.error.is_some() {
            metrics.record_vm_failure(service);
            continue;
        }
        match outcome.kind {
            ActionKind::Create => metrics.record_vm_start(service),
            ActionKind::Update => {
                metrics.record_vm_stop(service);
                metrics.record_vm_start(service);
            }
            ActionKind::Delete => metrics.forget_service(service),
            ActionKind::Unchanged => {}
        }
    }
}

/// Records the outcome and duration of a tick.
pub fn record_tick(metrics: &AgentMetrics, report: &TickReport, duration: Duration) {
    let failed = report.error.is_some()
        || report.apply.failures().next().is_some()
        || !report.network_errors.is_empty();
    let result = if failed {
        TickResult::Error
    } else if report.plan.has_changes() {
        TickResult::Ok
    } else {
        TickResult::NoChange
    };
    metrics.record_tick(result, duration);
}

/// Sets the capacity gauges: `total` is what the host offers VMs after the host's
/// reservation, `reserved` what the desired services request, `used` what live VMs hold.
pub fn set_capacity(
    metrics: &AgentMetrics,
    host: Resources,
    host_reserved: Resources,
    requested: Resources,
    used: Resources,
) {
    metrics.set_capacity(&CapacitySnapshot {
        vcpus_total: u64::from(host.vcpus.saturating_sub(host_reserved.vcpus)),
        vcpus_reserved: u64::from(requested.vcpus),
        vcpus_used: u64::from(used.vcpus),
        memory_total_mib: host.memory_mb.saturating_sub(host_reserved.memory_mb),
        memory_reserved_mib: requested.memory_mb,
        memory_used_mib: used.memory_mb,
    });
}
