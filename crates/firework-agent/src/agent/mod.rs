//! One agent and its tick: fetch, merge, assign networking, resolve links and environment,
//! sync images, check capacity, plan, apply, release the network of deleted VMs, sync
//! routes, publish the heartbeat, update the status.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use firework_metrics::{AgentMetrics, SyncResult};
use firework_model::agent::AgentConfig;
use firework_model::registry::{NodeRecord, Resources};
use firework_net::{AppliedNetwork, NetworkPlan, PortForward, Protocol, ServiceNetwork};
use firework_store::{ConfigStore, DesiredState, DesiredStateCache, NodeRegistry, error_chain};
use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::capacity::{CapacityOverride, CapacityReader, CapacitySource};
use crate::desired::{
    BuildContext, LabeledService, build_desired, explicit_empty_labels, merge_labels,
};
use crate::driver::{NetDriver, VmDriver};
use crate::error::TickError;
use crate::executor::{ApplyReport, Executor, ExecutorSettings, default_parallelism};
use crate::health::{GateSettings, HealthParts};
use crate::hooks::{HealthGate, ImageSync, LocalImages, NoRoutes, RouteSync, RunningIsReady};
use crate::intent::IntentStore;
use crate::plan::{ActionKind, Budget, HeldAction, Plan, fit_capacity, guard_deletes, plan};
use crate::spec::{ActualVm, DesiredVm};
use crate::status::{LabelStatus, RolloutStatus, ServiceStatus, SharedStatus, Status, TickStatus};
use firework_vmm::layout::StateLayout;

mod heartbeat;
mod network;
mod report;

pub use report::render_plan;

/// The first retry of a failed service waits this long; each further failure doubles it.
pub const RETRY_BASE: Duration = Duration::from_secs(1);
/// The longest wait between retries of a failed service.
pub const RETRY_MAX: Duration = Duration::from_secs(300);

/// Settings of an [`Agent`], derived from the agent config.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    /// The node's registry identity.
    pub node: String,
    /// The labels whose node configs the agent merges.
    pub labels: Vec<String>,
    /// Node types published in the heartbeat next to `labels` for the scheduler; the agent
    /// reads no node config for them.
    pub node_types: Vec<String>,
    /// The node's private address, published in the heartbeat.
    pub host_ip: Option<IpAddr>,
    /// Guest networking, `None` without `vm_subnet`: the host part of the network plan,
    /// whose `services` each tick fills in.
    pub network: Option<NetworkPlan>,
    /// Whether creates are checked against host capacity.
    pub capacity_check: bool,
    /// CPU and memory kept for the host.
    pub reserved: Resources,
    /// vCPUs and memory that replace the host's figures in the capacity check and the
    /// heartbeat, each when set.
    pub capacity_override: CapacityOverride,
    /// Parallelism and update strategy.
    pub executor: ExecutorSettings,
    /// Deletes that remove at least this share of the running VMs at once need an
    /// explicit `services: []`; 1.0 guards against deleting all of them.
    pub max_delete_share: f64,
    /// The agent's state directory.
    pub state_dir: PathBuf,
    /// The rolling-update gate's deadline and minimum ready time.
    pub gate: GateSettings,
}

impl AgentSettings {
    /// Settings from an agent config.
    pub fn from_config(config: &AgentConfig) -> AgentSettings {
        let api_port = config
            .api_listen_addr
            .rsplit(':')
            .next()
            .and_then(|port| port.parse().ok());
        AgentSettings {
            node: config.node_id.clone(),
            labels: config.node_names.clone(),
            node_types: config.node_types.clone(),
            host_ip: config.host_ip,
            network: config.vm_subnet.map(|subnet| NetworkPlan {
                bridge: config.vm_bridge.clone(),
                subnet,
                gateway: config.vm_gateway,
                out_interface: Some(config.out_interface.clone()).filter(|name| !name.is_empty()),
                isolation: config.network_isolation,
                agent_api_port: api_port,
                mtu: None,
                tap_owner_uid: None,
                services: Vec::new(),
            }),
            capacity_check: config.enable_capacity_check,
            reserved: Resources {
                vcpus: config.reserved_vcpus,
                memory_mb: config.reserved_memory_mb,
            },
            capacity_override: CapacityOverride {
                vcpus: config.capacity_vcpus,
                memory_mb: config.capacity_memory_mb,
            },
            executor: ExecutorSettings {
                parallelism: default_parallelism(),
                strategy: config.update_strategy,
                update_delay: config.update_delay.0,
            },
            max_delete_share: f64::from(config.delete_guard_percent) / 100.0,
            state_dir: config.state_dir.clone(),
            gate: GateSettings {
                progress_deadline: config.progress_deadline.0,
                min_ready: config.min_ready.0,
            },
        }
    }

    /// Returns the labels the heartbeat publishes: `labels`, then the node types that are not
    /// labels already. The scheduler places a service only on a node with its `node_type`
    /// among these.
    pub fn heartbeat_labels(&self) -> Vec<String> {
        let mut labels = self.labels.clone();
        for node_type in &self.node_types {
            if !labels.contains(node_type) {
                labels.push(node_type.clone());
            }
        }
        labels
    }
}

/// The pieces an agent works with.
#[derive(Debug)]
pub struct AgentParts {
    /// The config store.
    pub store: Arc<dyn ConfigStore>,
    /// The node registry, when the store has one.
    pub registry: Option<NodeRegistry>,
    /// The VM runtime.
    pub vms: Arc<dyn VmDriver>,
    /// The network driver, `None` without guest networking.
    pub net: Option<Arc<dyn NetDriver>>,
    /// Host capacity.
    pub capacity: Box<dyn CapacitySource>,
    /// The image sync step.
    pub images: Box<dyn ImageSync>,
    /// The route sync step.
    pub routes: Box<dyn RouteSync>,
    /// The rolling-update gate.
    pub gate: Box<dyn HealthGate>,
    /// The Prometheus metrics, shared with the API.
    pub metrics: Arc<AgentMetrics>,
    /// The health monitor, `None` without `enable_health_checks`.
    pub health: Option<HealthParts>,
}

impl AgentParts {
    /// Parts with the default image, route and gate steps and `/proc` capacity.
    pub fn new(
        store: Arc<dyn ConfigStore>,
        registry: Option<NodeRegistry>,
        vms: Arc<dyn VmDriver>,
        net: Option<Arc<dyn NetDriver>>,
    ) -> AgentParts {
        AgentParts {
            store,
            registry,
            vms,
            net,
            capacity: Box::new(crate::capacity::ProcCapacity::default()),
            images: Box::new(LocalImages),
            routes: Box::new(NoRoutes),
            gate: Box::new(RunningIsReady),
            metrics: Arc::new(AgentMetrics::new(env!("CARGO_PKG_VERSION"))),
            health: None,
        }
    }
}

#[derive(Debug, Clone)]
struct Failure {
    attempts: u32,
    retry_at: Instant,
    error: String,
}

/// The outcome of one tick.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TickReport {
    /// The plan after the guard rails and the retry backoff.
    pub plan: Plan,
    /// Actions held back, with the reason.
    pub held: Vec<HeldAction>,
    /// Services whose desired VM could not be built, with the error.
    pub spec_errors: Vec<(String, String)>,
    /// The apply outcome, empty for a dry run.
    pub apply: ApplyReport,
    /// Services deleted by the apply whose TAP device, rules or address record could not
    /// be removed, with the error. The next tick's network step retries them.
    pub network_errors: Vec<(String, String)>,
    /// The tick-level error: the tick changed nothing, or read a stale store.
    pub error: Option<String>,
}

/// One node's agent.
#[derive(Debug)]
pub struct Agent {
    settings: AgentSettings,
    parts: AgentParts,
    cache: DesiredStateCache,
    intents: IntentStore,
    capacity: CapacityReader,
    failures: BTreeMap<String, Failure>,
    generations: BTreeMap<String, u64>,
    rollouts: BTreeMap<String, RolloutStatus>,
    /// Services whose update was rolled back, with the plan hash that failed; the update
    /// is held until the desired hash changes.
    rolled_back: BTreeMap<String, (String, String)>,
    records: StateLayout,
    status: SharedStatus,
    shutdown: watch::Receiver<bool>,
}

impl Agent {
    /// Builds an agent. `shutdown` turns true when the agent should stop starting actions.
    pub fn new(
        settings: AgentSettings,
        mut parts: AgentParts,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Agent, crate::error::AgentError> {
        let intents = IntentStore::open(&settings.state_dir)?;
        let status = Arc::new(std::sync::RwLock::new(Status::new(
            &settings.node,
            &settings.labels,
        )));
        let backend = parts.store.backend();
        let capacity = std::mem::replace(
            &mut parts.capacity,
            Box::new(crate::capacity::ProcCapacity::default()),
        );
        let capacity = CapacityReader::new(settings.capacity_override.wrap(capacity));
        Ok(Agent {
            records: StateLayout::new(&settings.state_dir),
            settings,
            parts,
            cache: DesiredStateCache::new(backend),
            intents,
            capacity,
            failures: BTreeMap::new(),
            generations: BTreeMap::new(),
            rollouts: BTreeMap::new(),
            rolled_back: BTreeMap::new(),
            status,
            shutdown,
        })
    }

    /// Returns the status shared with the API.
    pub fn status(&self) -> SharedStatus {
        Arc::clone(&self.status)
    }

    /// Returns the metrics shared with the API.
    pub fn metrics(&self) -> Arc<AgentMetrics> {
        Arc::clone(&self.parts.metrics)
    }

    /// Returns the agent settings.
    pub fn settings(&self) -> &AgentSettings {
        &self.settings
    }

    /// Returns the earliest time a failed service is due for a retry.
    pub fn next_retry(&self) -> Option<Instant> {
        self.failures.values().map(|failure| failure.retry_at).min()
    }

    /// Runs one tick. With `dry_run` the tick stops after planning and changes nothing.
    pub async fn tick(&mut self, trigger: &str, dry_run: bool) -> TickReport {
        let started = Instant::now();
        let started_at = jiff::Timestamp::now().to_string();
        let span = info_span!("tick", node = %self.settings.node, trigger);
        let mut report = self.run_tick(dry_run).instrument(span).await;
        if !dry_run {
            crate::metrics::record_tick(&self.parts.metrics, &report, started.elapsed());
            self.update_status(&mut report, started, started_at, trigger)
                .await;
        }
        report
    }

    async fn run_tick(&mut self, dry_run: bool) -> TickReport {
        let mut report = TickReport::default();
        self.capacity.begin_tick();

        // Fetch every label; on failure the last good state stays in force.
        let labels = self.settings.labels.clone();
        let fetch_started = Instant::now();
        let results = self.parts.store.fetch(&labels).await;
        if !dry_run {
            crate::metrics::record_fetch(
                &self.parts.metrics,
                self.parts.store.backend(),
                &results,
                fetch_started.elapsed(),
            );
        }
        let state: DesiredState = match self.cache.apply_fetch(&labels, results) {
            Ok(state) => state.clone(),
            Err(stale) => {
                let message = stale
                    .errors
                    .iter()
                    .map(|e| error_chain(e))
                    .collect::<Vec<_>>()
                    .join("; ");
                report.error = Some(format!("store read failed: {message}"));
                match stale.last_good {
                    Some(state) => {
                        warn!(error = %message, "store read failed; reconciling against the last good state");
                        state.clone()
                    }
                    None => {
                        let error = TickError::NoDesiredState {
                            errors: stale.errors.len(),
                        };
                        // A node waiting for its first config is normal right after it
                        // joins, so only other failures are errors.
                        let waiting = stale
                            .errors
                            .iter()
                            .all(|e| e.kind == firework_store::StoreErrorKind::NotFound);
                        if waiting {
                            warn!(error = %error, cause = %message, "tick skipped; no config is published for this node yet");
                        } else {
                            error!(error = %error, cause = %message, "tick skipped");
                        }
                        report.error = Some(format!("{error}: {message}"));
                        // A new node has no config until the scheduler has placed services on
                        // it, and the scheduler places nothing on a node without a heartbeat.
                        if !dry_run {
                            self.publish_heartbeat(&[]).await;
                        }
                        return report;
                    }
                }
            }
        };
        let revision = state.revision();

        let services = match merge_labels(&state) {
            Ok(services) => services,
            Err(error) => {
                error!(%error, %revision, "tick skipped; nothing changed");
                report.error = Some(error.to_string());
                return report;
            }
        };
        let explicit_empty = explicit_empty_labels(&state);
        let actual = self.actual().await;

        let network_plan = self.network_plan(&services, &actual);
        let network = match self.assign_network(network_plan.as_ref()).await {
            Ok(network) => network,
            Err(error) => {
                let message = error_chain(&error);
                error!(error = %message, %revision, "tick skipped; nothing changed");
                report.error = Some(message);
                return report;
            }
        };

        let versions = self.parts.images.sync(&services).await;
        let (desired, failed) = build_desired(
            &services,
            BuildContext {
                network: network.as_ref(),
                image_versions: &versions,
            },
        );
        let mut keep = BTreeSet::new();
        for (service, error) in &failed {
            let message = error_chain(error);
            error!(service, error = %message, "cannot build the desired vm; leaving the service as it is");
            report.spec_errors.push((service.clone(), message));
            keep.insert(service.clone());
        }

        // A registered VM that exited is the health monitor's to restart.
        let mut monitored_exits = BTreeSet::new();
        if let Some(health) = &self.parts.health {
            for vm in actual.values().filter(|vm| !vm.is_live()) {
                let same_spec = vm.intent.as_ref().is_some_and(|intent| {
                    desired
                        .iter()
                        .any(|d| d.service == vm.service && d.hash == intent.hash)
                });
                if same_spec && health.monitor.health(&vm.service).is_some() {
                    keep.insert(vm.service.clone());
                    monitored_exits.insert(vm.service.clone());
                }
            }
        }
        // Such a service is left out of the plan: not created again, and not deleted.
        let planned: Vec<DesiredVm> = desired
            .iter()
            .filter(|vm| !monitored_exits.contains(&vm.service))
            .cloned()
            .collect();
        let mut plan = plan(&planned, &actual, &keep);
        let by_name: BTreeMap<&str, &DesiredVm> =
            desired.iter().map(|vm| (vm.service.as_str(), vm)).collect();
        let mut held = guard_deletes(
            &mut plan,
            &actual,
            &explicit_empty,
            self.settings.max_delete_share,
        );
        for item in &held {
            error!(service = %item.action.service, reason = %item.reason, "delete held back");
        }
        if self.settings.capacity_check {
            match self.capacity.read() {
                Ok(host) => {
                    let budget = Budget {
                        vcpus: u64::from(host.vcpus.saturating_sub(self.settings.reserved.vcpus)),
                        memory_mb: host
                            .memory_mb
                            .saturating_sub(self.settings.reserved.memory_mb),
                    };
                    let over = fit_capacity(&mut plan, &by_name, &actual, budget);
                    for item in &over {
                        warn!(service = %item.action.service, kind = ?item.action.kind, reason = %item.reason, "action held back: over capacity");
                    }
                    held.extend(over);
                }
                Err(error) => {
                    error!(%error, "cannot read host capacity; holding back every create");
                    let reason = format!("host capacity unknown: {error}");
                    plan.actions.retain(|action| {
                        if action.kind == ActionKind::Create {
                            held.push(HeldAction {
                                action: action.clone(),
                                reason: reason.clone(),
                            });
                            false
                        } else {
                            true
                        }
                    });
                }
            }
        }
        self.hold_backoff(&mut plan, &mut held);
        self.hold_rolled_back(&mut plan, &mut held, &by_name);

        let summary = plan.summary();
        info!(
            %revision,
            create = summary.create,
            update = summary.update,
            delete = summary.delete,
            unchanged = summary.unchanged,
            held = held.len(),
            failed_specs = failed.len(),
            "plan"
        );
        for action in plan
            .actions
            .iter()
            .filter(|a| a.kind != ActionKind::Unchanged)
        {
            debug!(service = %action.service, action = ?action.kind, changed = ?action.changed, reason = %action.reason, "planned action");
        }
        report.plan = plan;
        report.held = held;
        if dry_run {
            return report;
        }
        crate::metrics::record_plan(&self.parts.metrics, summary);

        if report.plan.has_changes() {
            let executor = Executor {
                vms: self.parts.vms.as_ref(),
                intents: &self.intents,
                gate: self.parts.gate.as_ref(),
                settings: self.settings.executor,
                shutdown: self.shutdown.clone(),
                health: self.parts.health.as_ref(),
                records: Some(&self.records),
            };
            let watcher = self.watch_for_preemption(&revision);
            report.apply = executor.apply(&report.plan, &by_name).await;
            if let Some(watcher) = watcher {
                watcher.abort();
            }
            for (service, rollout) in &report.apply.rollout {
                if rollout.state == "rolled back"
                    && let Some(vm) = by_name.get(service.as_str())
                {
                    self.rolled_back.insert(
                        service.clone(),
                        (vm.hash.clone(), rollout.reason.clone().unwrap_or_default()),
                    );
                }
                self.rollouts.insert(service.clone(), rollout.clone());
            }
            self.record_failures(&report.apply);
            crate::metrics::record_apply(&self.parts.metrics, &report.apply);
            for outcome in report.apply.outcomes.iter().filter(|o| o.error.is_none()) {
                match outcome.kind {
                    ActionKind::Create | ActionKind::Update => {
                        *self.generations.entry(outcome.service.clone()).or_default() += 1;
                    }
                    ActionKind::Delete => {
                        self.generations.remove(&outcome.service);
                        self.rollouts.remove(&outcome.service);
                        self.rolled_back.remove(&outcome.service);
                    }
                    ActionKind::Unchanged => {}
                }
            }
        }
        if report.error.is_none() {
            self.parts.metrics.set_applied_revision(
                &self.settings.node,
                &self.settings.labels.join(","),
                revision.as_str(),
            );
        }

        if let Some(plan) = &network_plan {
            report.network_errors = self.release_deleted_networks(plan, &report.apply).await;
        }

        self.register_adopted(&desired, &actual);
        self.collect_image_garbage(&services).await;
        match self.parts.routes.sync(&services, network.as_ref()).await {
            Ok(Some(synced)) => {
                // A skipped local route counts as an error, as an image sync with one failed
                // image does, so a route sync alert fires until the service is fixed. The
                // route step logs which service and why.
                let result = if synced.skipped_local > 0 {
                    SyncResult::Error
                } else if synced.changed {
                    SyncResult::Ok
                } else {
                    SyncResult::NoChange
                };
                self.parts.metrics.record_route_sync(result);
            }
            Ok(None) => {}
            Err(error) => {
                self.parts.metrics.record_route_sync(SyncResult::Error);
                error!(error = %crate::error::error_chain(error.as_ref()), "route sync failed");
            }
        }
        self.record_capacity(&desired).await;
        self.publish_heartbeat(&desired).await;
        report
    }

    /// Lists the VMs the runtime has records of, joined with the agent intent records.
    async fn actual(&self) -> BTreeMap<String, ActualVm> {
        let mut intents = self.intents.load_all();
        self.parts
            .vms
            .list()
            .await
            .into_iter()
            .map(|status| {
                let intent = intents.remove(&status.service);
                (
                    status.service.clone(),
                    ActualVm {
                        service: status.service,
                        state: status.state,
                        pid: status.pid,
                        vm_hash: status.spec_hash,
                        intent,
                    },
                )
            })
            .collect()
    }

    /// Holds updates to a plan hash that a rolling update already rolled back.
    fn hold_rolled_back(
        &mut self,
        plan: &mut Plan,
        held: &mut Vec<HeldAction>,
        desired: &BTreeMap<&str, &DesiredVm>,
    ) {
        self.rolled_back.retain(|service, (hash, _)| {
            desired
                .get(service.as_str())
                .is_some_and(|vm| &vm.hash == hash)
        });
        let rolled_back = &self.rolled_back;
        plan.actions.retain(|action| {
            let Some((_, reason)) = rolled_back.get(&action.service) else {
                return true;
            };
            if action.kind != ActionKind::Update {
                return true;
            }
            held.push(HeldAction {
                action: action.clone(),
                reason: format!("this spec was rolled back ({reason}); waiting for a new revision"),
            });
            false
        });
    }

    /// Starts a task that cancels the rollout's gate when the store has a newer revision
    /// than `revision`. `None` when no rollout can wait on the gate.
    fn watch_for_preemption(&self, revision: &str) -> Option<tokio::task::JoinHandle<()>> {
        let health = self.parts.health.as_ref()?;
        if self.settings.executor.strategy != firework_model::agent::UpdateStrategy::Rolling {
            return None;
        }
        let token = health.new_rollout();
        let store = Arc::clone(&self.parts.store);
        let labels = self.settings.labels.clone();
        let revision = revision.to_owned();
        Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(crate::health::PREEMPT_POLL).await;
                let results = store.fetch(&labels).await;
                let Ok(mut entries) = results.into_iter().collect::<Result<Vec<_>, _>>() else {
                    continue;
                };
                // The same form as `DesiredState::revision`: labels in sorted order.
                entries.sort_by(|a, b| a.label.cmp(&b.label));
                let current = entries
                    .iter()
                    .map(|entry| format!("{}={}", entry.label, entry.revision))
                    .collect::<Vec<_>>()
                    .join(",");
                if current != revision {
                    info!(from = %revision, to = %current, "a newer revision arrived during the rolling update");
                    token.cancel();
                    return;
                }
            }
        }))
    }

    fn hold_backoff(&self, plan: &mut Plan, held: &mut Vec<HeldAction>) {
        let now = Instant::now();
        plan.actions.retain(|action| {
            let waiting = action.kind != ActionKind::Unchanged
                && self
                    .failures
                    .get(&action.service)
                    .is_some_and(|failure| failure.retry_at > now);
            if waiting {
                let failure = &self.failures[&action.service];
                let wait = failure.retry_at.saturating_duration_since(now);
                held.push(HeldAction {
                    action: action.clone(),
                    reason: format!(
                        "failed {} time(s), retrying in {} ms: {}",
                        failure.attempts,
                        wait.as_millis(),
                        failure.error
                    ),
                });
            }
            !waiting
        });
    }

    fn record_failures(&mut self, apply: &ApplyReport) {
        let now = Instant::now();
        for outcome in &apply.outcomes {
            match &outcome.error {
                None => {
                    self.failures.remove(&outcome.service);
                }
                Some(error) => {
                    let attempts = self
                        .failures
                        .get(&outcome.service)
                        .map_or(1, |failure| failure.attempts + 1);
                    let wait = retry_delay(attempts);
                    warn!(service = %outcome.service, attempts, retry_in_ms = wait.as_millis() as u64, "will retry the failed service");
                    self.failures.insert(
                        outcome.service.clone(),
                        Failure {
                            attempts,
                            retry_at: now + wait,
                            error: error.clone(),
                        },
                    );
                }
            }
        }
    }

    /// Runs the image step's garbage collection: images of desired services are
    /// referenced, images of live VMs are in use.
    async fn collect_image_garbage(&self, services: &[LabeledService]) {
        let referenced: Vec<PathBuf> = services
            .iter()
            .flat_map(|labeled| {
                [
                    PathBuf::from(&labeled.service.kernel),
                    PathBuf::from(&labeled.service.image),
                ]
            })
            .collect();
        let in_use: Vec<PathBuf> = self
            .actual()
            .await
            .values()
            .filter(|vm| vm.is_live())
            .filter_map(|vm| vm.intent.as_ref())
            .flat_map(|intent| {
                [
                    PathBuf::from(&intent.fingerprint.kernel),
                    PathBuf::from(&intent.fingerprint.image),
                ]
            })
            .collect();
        self.parts
            .images
            .collect_garbage(&referenced, &in_use)
            .await;
    }

    /// Registers live VMs the monitor does not know yet (adopted at start, or left
    /// unchanged) with the desired health check.
    fn register_adopted(&self, desired: &[DesiredVm], actual: &BTreeMap<String, ActualVm>) {
        let Some(health) = &self.parts.health else {
            return;
        };
        for vm in desired {
            let live = actual.get(&vm.service).is_some_and(ActualVm::is_live);
            if live && health.monitor.health(&vm.service).is_none() {
                let guest_ip = vm
                    .fingerprint
                    .network
                    .as_ref()
                    .map(|network| network.guest_ip.to_string());
                debug!(service = %vm.service, "registering a running vm with the health monitor");
                health.register(firework_health::Registration::new(
                    &vm.service,
                    vm.health_check.clone(),
                    guest_ip.as_deref(),
                ));
            }
        }
    }
}

/// Returns the wait before retry number `attempts` (1-based): 1 s, 2 s, 4 s, … up to
/// [`RETRY_MAX`].
pub fn retry_delay(attempts: u32) -> Duration {
    let exponent = attempts.saturating_sub(1).min(16);
    RETRY_BASE.saturating_mul(1u32 << exponent).min(RETRY_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_doubles_up_to_max() {
        assert_eq!(retry_delay(1), Duration::from_secs(1));
        assert_eq!(retry_delay(2), Duration::from_secs(2));
        assert_eq!(retry_delay(4), Duration::from_secs(8));
        assert_eq!(retry_delay(10), RETRY_MAX);
        assert_eq!(retry_delay(u32::MAX), RETRY_MAX);
    }
}
