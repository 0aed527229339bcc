//! Errors of a scheduling pass.

/// Errors that leave a scheduling pass without any placement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// No node is live, which usually means the registry is unreachable or stale. Placing
    /// nothing would move or delete every service, so the pass stops instead.
    #[error(
        "no live nodes: refusing to schedule {services} service(s), keep the previous placement until a node reports again"
    )]
    NoLiveNodes {
        /// Number of services that were to be placed.
        services: usize,
    },
    /// Two services share a name.
    #[error("duplicate service name {name:?}")]
    DuplicateService {
        /// The repeated name.
        name: String,
    },
    /// Two nodes share a name.
    #[error("duplicate node name {name:?}")]
    DuplicateNode {
        /// The repeated name.
        name: String,
    },
    /// A node or service name breaks the naming rule.
    #[error("invalid {kind} name {name:?}: {reason}")]
    InvalidName {
        /// `node` or `service`.
        kind: &'static str,
        /// The rejected name.
        name: String,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// A service requests no CPU or no memory.
    #[error("invalid service {name:?}: {field} must be at least 1")]
    ZeroRequest {
        /// Service name.
        name: String,
        /// `vcpus` or `memory_mb`.
        field: &'static str,
    },
}
