//! The agent's status as `GET /status` returns it.

use std::net::Ipv4Addr;
use std::sync::{Arc, RwLock};

use serde::Serialize;

use crate::plan::{HeldAction, Plan, PlanSummary};

/// The revision of one label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LabelStatus {
    /// The label.
    pub label: String,
    /// The revision in force, `None` before the first successful read.
    pub revision: Option<String>,
}

/// One service on this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceStatus {
    /// The service.
    pub name: String,
    /// The label it comes from, when desired.
    pub label: Option<String>,
    /// The VM state: `running`, `starting`, `stopping`, `stopped`, `exited` or `absent`.
    pub state: String,
    /// The VM process id.
    pub pid: Option<i32>,
    /// The plan hash the VM was started with.
    pub spec_hash: Option<String>,
    /// The guest address.
    pub guest_ip: Option<Ipv4Addr>,
    /// The last error of this service, if its last action or spec failed.
    pub last_error: Option<String>,
}

/// What the last tick did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TickStatus {
    /// Start time, RFC 3339.
    pub started_at: String,
    /// Duration in milliseconds.
    pub duration_ms: u64,
    /// What caused the tick.
    pub trigger: String,
    /// Counts of the plan's actions, after the guard rails.
    pub summary: PlanSummary,
    /// The plan as applied.
    pub plan: Plan,
    /// Actions the guard rails or the retry backoff held back.
    pub held: Vec<HeldAction>,
    /// Number of VM actions that failed.
    pub failed_actions: usize,
}

/// The whole status document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    /// The node name.
    pub node: String,
    /// The agent version.
    pub version: String,
    /// The labels and their revisions.
    pub labels: Vec<LabelStatus>,
    /// The combined revision of all labels.
    pub revision: Option<String>,
    /// The last completed tick.
    pub last_tick: Option<TickStatus>,
    /// The error of the last tick, if it failed or could not read the store.
    pub last_error: Option<String>,
    /// Every desired or existing service, by name.
    pub services: Vec<ServiceStatus>,
}

impl Status {
    /// The status before the first tick.
    pub fn new(node: &str, labels: &[String]) -> Status {
        Status {
            node: node.to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            labels: labels
                .iter()
                .map(|label| LabelStatus {
                    label: label.clone(),
                    revision: None,
                })
                .collect(),
            revision: None,
            last_tick: None,
            last_error: None,
            services: Vec::new(),
        }
    }

    /// Returns whether the agent is healthy: it completed a tick and that tick had no error.
    pub fn is_healthy(&self) -> bool {
        self.last_tick.is_some() && self.last_error.is_none()
    }
}

/// The status shared between the tick loop and the API.
pub type SharedStatus = Arc<RwLock<Status>>;
