//! The registry of the agent's metrics and the methods that update it.

use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use crate::labels::{
    ActionKind, ActionLabels, BackendLabels, BuildLabels, CapacityKind, CapacityLabels,
    FetchLabels, FetchResult, HealthLabels, HealthState, NoLabels, RevisionLabels, ServiceLabels,
    StoreBackend, SyncLabels, SyncResult, TickLabels, TickResult, capped,
};

/// The prefix of every metric name.
pub const PREFIX: &str = "firework_agent";

/// Every metric family the agent exports, named as in its `# TYPE` line.
///
/// The OpenMetrics text format adds a suffix to the sample names of some types: counters
/// end in `_total`, info metrics in `_info`, histograms in `_bucket`, `_sum` and `_count`.
/// A family without any series is left out of the output entirely (prometheus-client
/// 0.26 writes no `# TYPE` line for it), so a scrape lists every name only after the agent
/// has recorded each kind of event at least once.
pub const FAMILY_NAMES: &[&str] = &[
    "firework_agent_ticks",
    "firework_agent_tick_duration_seconds",
    "firework_agent_plan_actions",
    "firework_agent_vm_starts",
    "firework_agent_vm_stops",
    "firework_agent_vm_restarts",
    "firework_agent_vm_failures",
    "firework_agent_service_health_state",
    "firework_agent_store_fetches",
    "firework_agent_store_fetch_duration_seconds",
    "firework_agent_image_sync_bytes",
    "firework_agent_image_sync_duration_seconds",
    "firework_agent_image_syncs",
    "firework_agent_capacity_vcpus",
    "firework_agent_capacity_memory_bytes",
    "firework_agent_applied_revision",
    "firework_agent_route_syncs",
    "firework_agent_build",
];

/// The `Content-Type` of the output of [`AgentMetrics::encode`]: OpenMetrics text 1.0.0.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds, in seconds, of the tick and store fetch duration buckets: 1 ms to 60 s.
pub const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Upper bounds, in seconds, of the image sync duration buckets: 100 ms to 30 min, because
/// a sync may download a root file system of several GiB.
pub const IMAGE_SYNC_BUCKETS: &[f64] = &[
    0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0,
];

const BYTES_PER_MIB: u64 = 1024 * 1024;

type HistogramFamily<S> = Family<S, Histogram, fn() -> Histogram>;
type InfoFamily<S> = Family<S, Info<NoLabels>, fn() -> Info<NoLabels>>;

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS.iter().copied())
}

fn revision_info() -> Info<NoLabels> {
    Info::new([])
}

fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The counts of one tick's plan, by action kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanCounts {
    /// Services to create.
    pub create: u64,
    /// Services to update.
    pub update: u64,
    /// Services to delete.
    pub delete: u64,
    /// Services left as they are.
    pub unchanged: u64,
}

/// A snapshot of the node's capacity, in vCPUs and MiB as the model counts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CapacitySnapshot {
    /// vCPUs the node offers to VMs.
    pub vcpus_total: u64,
    /// vCPUs the services placed on the node request.
    pub vcpus_reserved: u64,
    /// vCPUs running VMs hold.
    pub vcpus_used: u64,
    /// Memory the node offers to VMs, in MiB.
    pub memory_total_mib: u64,
    /// Memory the services placed on the node request, in MiB.
    pub memory_reserved_mib: u64,
    /// Memory running VMs hold, in MiB.
    pub memory_used_mib: u64,
}

/// The agent's metrics, registered in one registry with the prefix [`PREFIX`].
///
/// Every method takes `&self`, so one instance can be shared behind an `Arc` between the
/// reconcile loop, the health monitors and the HTTP handler that calls [`Self::encode`].
pub struct AgentMetrics {
    registry: Registry,
    ticks: Family<TickLabels, Counter>,
    tick_duration: Histogram,
    plan_actions: Family<ActionLabels, Counter>,
    vm_starts: Family<ServiceLabels, Counter>,
    vm_stops: Family<ServiceLabels, Counter>,
    vm_restarts: Family<ServiceLabels, Counter>,
    vm_failures: Family<ServiceLabels, Counter>,
    health_state: Family<HealthLabels, Gauge>,
    store_fetches: Family<FetchLabels, Counter>,
    store_fetch_duration: HistogramFamily<BackendLabels>,
    image_sync_bytes: Counter,
    image_sync_duration: Histogram,
    image_syncs: Family<SyncLabels, Counter>,
    capacity_vcpus: Family<CapacityLabels, Gauge>,
    capacity_memory: Family<CapacityLabels, Gauge>,
    applied_revision: InfoFamily<RevisionLabels>,
    route_syncs: Family<SyncLabels, Counter>,
    /// Serializes updates that replace one series by another (health state, applied
    /// revision), so two concurrent updates never leave two current series behind.
    replace_lock: Mutex<Option<RevisionLabels>>,
}

impl fmt::Debug for AgentMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentMetrics").finish_non_exhaustive()
    }
}

impl AgentMetrics {
    /// Creates the registry with every family and sets the build info to `version`.
    pub fn new(version: &str) -> Self {
        let mut registry = Registry::with_prefix(PREFIX);

        let ticks = Family::<TickLabels, Counter>::default();
        registry.register("ticks", "Reconcile ticks by result", ticks.clone());
        let tick_duration = duration_histogram();
        registry.register_with_unit(
            "tick_duration",
            "Duration of a reconcile tick, from fetch to the last applied action",
            Unit::Seconds,
            tick_duration.clone(),
        );
        let plan_actions = Family::<ActionLabels, Counter>::default();
        registry.register(
            "plan_actions",
            "Plan actions by kind, summed over ticks",
            plan_actions.clone(),
        );

        let vm_starts = Family::<ServiceLabels, Counter>::default();
        registry.register("vm_starts", "VMs started, by service", vm_starts.clone());
        let vm_stops = Family::<ServiceLabels, Counter>::default();
        registry.register("vm_stops", "VMs stopped, by service", vm_stops.clone());
        let vm_restarts = Family::<ServiceLabels, Counter>::default();
        registry.register(
            "vm_restarts",
            "VMs restarted by the health monitor or after an exit, by service",
            vm_restarts.clone(),
        );
        let vm_failures = Family::<ServiceLabels, Counter>::default();
        registry.register(
            "vm_failures",
            "VM starts, stops or restarts that failed, by service",
            vm_failures.clone(),
        );
        let health_state = Family::<HealthLabels, Gauge>::default();
        registry.register(
            "service_health_state",
            "Current health state of a service: 1 on the series of its state",
            health_state.clone(),
        );

        let store_fetches = Family::<FetchLabels, Counter>::default();
        registry.register(
            "store_fetches",
            "Store fetches by backend and result",
            store_fetches.clone(),
        );
        let store_fetch_duration: HistogramFamily<BackendLabels> =
            Family::new_with_constructor(duration_histogram);
        registry.register_with_unit(
            "store_fetch_duration",
            "Duration of a store fetch, by backend",
            Unit::Seconds,
            store_fetch_duration.clone(),
        );

        let image_sync_bytes = Counter::default();
        registry.register_with_unit(
            "image_sync",
            "Bytes downloaded by image syncs",
            Unit::Bytes,
            image_sync_bytes.clone(),
        );
        let image_sync_duration = Histogram::new(IMAGE_SYNC_BUCKETS.iter().copied());
        registry.register_with_unit(
            "image_sync_duration",
            "Duration of an image sync",
            Unit::Seconds,
            image_sync_duration.clone(),
        );
        let image_syncs = Family::<SyncLabels, Counter>::default();
        registry.register("image_syncs", "Image syncs by result", image_syncs.clone());

        let capacity_vcpus = Family::<CapacityLabels, Gauge>::default();
        registry.register(
            "capacity_vcpus",
            "Node vCPUs: total offered to VMs, reserved by placed services, used by running VMs",
            capacity_vcpus.clone(),
        );
        let capacity_memory = Family::<CapacityLabels, Gauge>::default();
        registry.register_with_unit(
            "capacity_memory",
            "Node memory: total offered to VMs, reserved by placed services, used by running VMs",
            Unit::Bytes,
            capacity_memory.clone(),
        );

        let applied_revision: InfoFamily<RevisionLabels> =
            Family::new_with_constructor(revision_info);
        registry.register(
            "applied_revision",
            "Node config revision the last successful tick applied",
            applied_revision.clone(),
        );
        let route_syncs = Family::<SyncLabels, Counter>::default();
        registry.register("route_syncs", "Route syncs by result", route_syncs.clone());

        registry.register(
            "build",
            "Agent build information",
            Info::new(BuildLabels {
                version: capped(version),
            }),
        );

        let metrics = Self {
            registry,
            ticks,
            tick_duration,
            plan_actions,
            vm_starts,
            vm_stops,
            vm_restarts,
            vm_failures,
            health_state,
            store_fetches,
            store_fetch_duration,
            image_sync_bytes,
            image_sync_duration,
            image_syncs,
            capacity_vcpus,
            capacity_memory,
            applied_revision,
            route_syncs,
            replace_lock: Mutex::new(None),
        };
        metrics.create_zero_series();
        metrics
    }

    /// Creates the series of every fixed label value of the counters, so a rate over them
    /// starts from 0 instead of being absent until the first event.
    fn create_zero_series(&self) {
        for &result in TickResult::ALL {
            drop(self.ticks.get_or_create(&TickLabels { result }));
        }
        for &kind in ActionKind::ALL {
            drop(self.plan_actions.get_or_create(&ActionLabels { kind }));
        }
        for &result in SyncResult::ALL {
            drop(self.image_syncs.get_or_create(&SyncLabels { result }));
            drop(self.route_syncs.get_or_create(&SyncLabels { result }));
        }
    }

    /// Counts one reconcile tick and records how long it took.
    pub fn record_tick(&self, result: TickResult, duration: Duration) {
        self.ticks.get_or_create(&TickLabels { result }).inc();
        self.tick_duration.observe(duration.as_secs_f64());
    }

    /// Adds one tick's plan to the action counters. Every kind is touched, so a kind that
    /// never occurs still shows up as a zero series.
    pub fn record_plan(&self, counts: PlanCounts) {
        let by_kind = [
            (ActionKind::Create, counts.create),
            (ActionKind::Update, counts.update),
            (ActionKind::Delete, counts.delete),
            (ActionKind::Unchanged, counts.unchanged),
        ];
        for (kind, count) in by_kind {
            self.plan_actions
                .get_or_create(&ActionLabels { kind })
                .inc_by(count);
        }
    }

    /// Counts a VM start of `service`.
    pub fn record_vm_start(&self, service: &str) {
        self.vm_starts.get_or_create(&service_labels(service)).inc();
    }

    /// Counts a VM stop of `service`.
    pub fn record_vm_stop(&self, service: &str) {
        self.vm_stops.get_or_create(&service_labels(service)).inc();
    }

    /// Counts a VM restart of `service`.
    pub fn record_vm_restart(&self, service: &str) {
        self.vm_restarts
            .get_or_create(&service_labels(service))
            .inc();
    }

    /// Counts a failed start, stop or restart of a VM of `service`.
    pub fn record_vm_failure(&self, service: &str) {
        self.vm_failures
            .get_or_create(&service_labels(service))
            .inc();
    }

    /// Sets the health state of `service`: its series with `state` becomes 1 and the
    /// series of its other states are removed.
    pub fn set_health_state(&self, service: &str, state: HealthState) {
        let service = capped(service);
        let _guard = self.lock_replace();
        for &other in HealthState::ALL {
            if other != state {
                self.health_state.remove(&HealthLabels {
                    service: service.clone(),
                    state: other,
                });
            }
        }
        self.health_state
            .get_or_create(&HealthLabels { service, state })
            .set(1);
    }

    /// Counts one store fetch and records its duration.
    pub fn record_store_fetch(
        &self,
        backend: StoreBackend,
        result: FetchResult,
        duration: Duration,
    ) {
        self.store_fetches
            .get_or_create(&FetchLabels { backend, result })
            .inc();
        self.store_fetch_duration
            .get_or_create(&BackendLabels { backend })
            .observe(duration.as_secs_f64());
    }

    /// Counts one image sync, the bytes it downloaded and its duration.
    pub fn record_image_sync(&self, result: SyncResult, bytes: u64, duration: Duration) {
        self.image_syncs.get_or_create(&SyncLabels { result }).inc();
        self.image_sync_bytes.inc_by(bytes);
        self.image_sync_duration.observe(duration.as_secs_f64());
    }

    /// Sets the capacity gauges. Memory is given in MiB and exported in bytes. A value
    /// above `i64::MAX` is exported as `i64::MAX`.
    pub fn set_capacity(&self, capacity: &CapacitySnapshot) {
        let vcpus = [
            (CapacityKind::Total, capacity.vcpus_total),
            (CapacityKind::Reserved, capacity.vcpus_reserved),
            (CapacityKind::Used, capacity.vcpus_used),
        ];
        for (kind, value) in vcpus {
            self.capacity_vcpus
                .get_or_create(&CapacityLabels { kind })
                .set(saturating_i64(value));
        }

        let memory_mib = [
            (CapacityKind::Total, capacity.memory_total_mib),
            (CapacityKind::Reserved, capacity.memory_reserved_mib),
            (CapacityKind::Used, capacity.memory_used_mib),
        ];
        for (kind, mib) in memory_mib {
            let bytes = mib.saturating_mul(BYTES_PER_MIB);
            self.capacity_memory
                .get_or_create(&CapacityLabels { kind })
                .set(saturating_i64(bytes));
        }
    }

    /// Sets the applied revision info and removes the series of the previous revision.
    pub fn set_applied_revision(&self, node: &str, label: &str, revision: &str) {
        let labels = RevisionLabels {
            node: capped(node),
            label: capped(label),
            revision: capped(revision),
        };
        let mut current = self.lock_replace();
        if let Some(previous) = current.as_ref()
            && *previous != labels
        {
            self.applied_revision.remove(previous);
        }
        // Creating the series is all this needs, so the read guard is released at once.
        drop(self.applied_revision.get_or_create(&labels));
        *current = Some(labels);
    }

    /// Counts one route sync.
    pub fn record_route_sync(&self, result: SyncResult) {
        self.route_syncs.get_or_create(&SyncLabels { result }).inc();
    }

    /// Removes every series of `service` from every family, for a service that is gone
    /// from the node. A later call that records `service` creates its series again.
    pub fn forget_service(&self, service: &str) {
        let labels = service_labels(service);
        for family in [
            &self.vm_starts,
            &self.vm_stops,
            &self.vm_restarts,
            &self.vm_failures,
        ] {
            family.remove(&labels);
        }

        let _guard = self.lock_replace();
        for &state in HealthState::ALL {
            self.health_state.remove(&HealthLabels {
                service: labels.service.clone(),
                state,
            });
        }
    }

    /// Encodes every family in the OpenMetrics text format 1.0.0, ending in `# EOF`.
    /// Serve it with [`CONTENT_TYPE`].
    pub fn encode(&self) -> String {
        let mut output = String::new();
        // Writing to a String does not fail, and every label value here encodes as a
        // string, so an error here would come from a change in prometheus-client. The
        // partial output then lacks `# EOF`, and the scraper reports the scrape as failed.
        if let Err(error) = encode(&mut output, &self.registry) {
            tracing::error!(%error, "failed to encode the agent metrics");
        }
        output
    }

    fn lock_replace(&self) -> MutexGuard<'_, Option<RevisionLabels>> {
        // The guarded value is only the current revision, and each update leaves it
        // consistent, so a panic in another holder does not make it invalid.
        self.replace_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn service_labels(service: &str) -> ServiceLabels {
    ServiceLabels {
        service: capped(service),
    }
}
