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
    /// How many VMs this agent process has started for the service: 1 after the first
    /// start, one more for each update; 0 for an adopted VM it has not replaced.
    pub generation: u64,
    /// The health state: `starting`, `healthy`, `unhealthy`, `restarting`, `failing`,
    /// `stopped` or `not_probed`.
    pub health: String,
    /// Restarts by the health monitor.
    pub restarts: u32,
    /// The error of the last failed health probe.
    pub last_probe_error: Option<String>,
    /// The state of the service in the last rolling update, when it was part of one.
    pub rollout: Option<RolloutStatus>,
}

impl ServiceStatus {
    /// Creates the status of `name` in `state`, with no VM details, not probed and in no
    /// rollout.
    pub fn new(name: &str, label: Option<String>, state: &str) -> Self {
        ServiceStatus {
            name: name.to_owned(),
            label,
            state: state.to_owned(),
            pid: None,
            spec_hash: None,
            guest_ip: None,
            last_error: None,
            generation: 0,
            health: "not_probed".to_owned(),
            restarts: 0,
            last_probe_error: None,
            rollout: None,
        }
    }
}

/// A service's part in a rolling update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RolloutStatus {
    /// `updated`, `failed`, `skipped` or `rolled back`.
    pub state: String,
    /// The combined revision the rollout was for.
    pub revision: String,
    /// Why the service was not updated, when it was not.
    pub reason: Option<String>,
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
    /// The combined revision of all labels, as last read (the desired revision).
    pub revision: Option<String>,
    /// The combined revision of the last tick that read the store without error and
    /// applied its plan.
    pub applied_revision: Option<String>,
    /// The last completed tick.
    pub last_tick: Option<TickStatus>,
    /// The error of the last tick, if it failed or could not read the store.
    pub last_error: Option<String>,
    /// Every desired or existing service, by name.
    pub services: Vec<ServiceStatus>,
    /// When the last tick finished; `/healthz` compares it with the poll interval.
    #[serde(skip)]
    pub finished_at: Option<std::time::Instant>,
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
            applied_revision: None,
            last_tick: None,
            last_error: None,
            services: Vec::new(),
            finished_at: None,
        }
    }

    /// Returns whether the agent is healthy: it completed a tick and that tick had no error.
    pub fn is_healthy(&self) -> bool {
        self.last_tick.is_some() && self.last_error.is_none()
    }
}

/// The status shared between the tick loop and the API.
pub type SharedStatus = Arc<RwLock<Status>>;
