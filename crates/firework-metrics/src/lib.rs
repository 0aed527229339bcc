//! The Firework agent's Prometheus metrics as one typed struct.
//!
//! [`AgentMetrics`] owns a `prometheus_client` registry with every family the agent
//! exports, all named with the prefix `firework_agent_`. The agent calls its methods from
//! the reconcile loop and the health monitors, and serves [`AgentMetrics::encode`] with
//! [`CONTENT_TYPE`]. [`FAMILY_NAMES`] lists every family, so a test can check a real scrape
//! against it with [`declared_families`].

mod agent_metrics;
mod labels;

pub use agent_metrics::{
    AgentMetrics, CONTENT_TYPE, CapacitySnapshot, DURATION_BUCKETS, FAMILY_NAMES,
    IMAGE_SYNC_BUCKETS, PREFIX, PlanCounts,
};
pub use labels::{
    ActionKind, CapacityKind, FetchResult, HealthState, MAX_LABEL_VALUE_LEN, StoreBackend,
    SyncResult, TickResult,
};

/// Returns the name and type of every family declared by a `# TYPE` line of `text`, in
/// the order they appear.
pub fn declared_families(text: &str) -> Vec<(&str, &str)> {
    text.lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_once(' '))
        .collect()
}
