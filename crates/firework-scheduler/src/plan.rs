//! The `plan` command: discover live nodes, read services and the previous placement, and
//! schedule.

use std::path::PathBuf;
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;
use tracing::info_span;

use crate::error::ScheduleError;
use crate::input::{InputError, read_existing, read_services};
use crate::placement::Placement;
use crate::registry::{Discovery, NotLive, RecordFile, RegistryError, Rejected, discover};
use crate::request::{ExistingPlacement, ScheduleOptions, ServiceRequest};
use crate::schedule::schedule;
use crate::source::{RegistrySource, read_registry};

/// What [`plan`] reads and how it decides.
#[derive(Debug, Clone)]
pub struct PlanRequest {
    /// Registry location; records are read from `registry/nodes/*.json` below it.
    pub registry: RegistrySource,
    /// Rendered services: one YAML file or a directory of them.
    pub input: PathBuf,
    /// Directory of previous node configs `<node>.yaml`, if any.
    pub existing: Option<PathBuf>,
    /// Heartbeat age after which a node is not live.
    pub ttl: Duration,
    /// The time liveness is judged at.
    pub now: Timestamp,
    /// Placement options.
    pub options: ScheduleOptions,
}

/// Errors that stop `plan` before scheduling.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The registry could not be read.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The services or node configs could not be read.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The inputs are inconsistent, for example two services with one name.
    #[error(transparent)]
    Schedule(ScheduleError),
}

impl PlanError {
    /// Returns every finding of an invalid node config, or nothing for other errors.
    pub fn diagnostics(&self) -> &[firework_model::Diagnostic] {
        match self {
            Self::Input(InputError::Invalid(error)) => error.diagnostics(),
            _ => &[],
        }
    }
}

/// Result of `plan`: the discovered nodes and the placement, or why there is none.
#[derive(Debug, Clone, Serialize)]
pub struct PlanReport {
    /// Names of the live nodes.
    pub live_nodes: Vec<String>,
    /// Known nodes that are not live.
    pub not_live: Vec<NotLive>,
    /// Record files that could not be used.
    pub rejected: Vec<Rejected>,
    /// The placement; `None` when no node is live.
    pub placement: Option<Placement>,
    /// Reason there is no placement.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl PlanReport {
    /// True when a placement exists and every service is in it.
    pub fn is_complete(&self) -> bool {
        self.placement.as_ref().is_some_and(Placement::is_complete)
    }
}

/// Runs discovery and scheduling for `request`: reads the registry, the services and the
/// previous placement, then calls [`plan_records`].
pub async fn plan(request: &PlanRequest) -> Result<PlanReport, PlanError> {
    let records = read_registry(&request.registry).await?;
    let services = read_services(&request.input)?;
    let existing = match &request.existing {
        Some(dir) => read_existing(dir)?,
        None => Vec::new(),
    };
    plan_records(
        records,
        &services,
        &existing,
        request.now,
        request.ttl,
        &request.options,
    )
}

/// Applies the liveness rule to `records` and schedules `services`. The command line and the
/// Lambda handler both end here.
///
/// When no node is live the report has no placement and carries the reason, because
/// planning against an empty registry would move every service. Inconsistent inputs are
/// errors.
pub fn plan_records(
    records: Vec<RecordFile>,
    services: &[ServiceRequest],
    existing: &[ExistingPlacement],
    now: Timestamp,
    ttl: Duration,
    options: &ScheduleOptions,
) -> Result<PlanReport, PlanError> {
    let span = info_span!("plan", records = records.len(), services = services.len());
    let _entered = span.enter();

    let Discovery {
        live,
        not_live,
        rejected,
    } = discover(records, now, ttl);
    let live_nodes = live.iter().map(|n| n.name.clone()).collect();
    let (placement, error) = match schedule(&live, services, existing, options) {
        Ok(placement) => (Some(placement), None),
        Err(error @ ScheduleError::NoLiveNodes { .. }) => (None, Some(error.to_string())),
        Err(error) => return Err(PlanError::Schedule(error)),
    };
    Ok(PlanReport {
        live_nodes,
        not_live,
        rejected,
        placement,
        error,
    })
}
