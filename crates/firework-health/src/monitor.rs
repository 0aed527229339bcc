//! The monitor: one tokio task per registered service, and the handle the agent uses.

use std::collections::HashMap;
use std::fmt::{self, Debug};
use std::sync::{Arc, Mutex, PoisonError};

use firework_model::service::HealthCheck;
use futures::future::BoxFuture;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use crate::event::HealthEvent;
use crate::locks::ServiceLocks;
use crate::policy::{RestartPolicy, RestartPolicyConfig};
use crate::probe::{NetProber, Prober};
use crate::state::{HealthState, ServiceHealth};
use crate::target::resolve_target;
use crate::task::{Command, ServiceTask};

/// A boxed error from the restarter.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Restarts a service's VM: stop, then start the same spec. The agent implements it with
/// its VM runtime. The monitor calls it while it holds the service's lock from
/// [`ServiceLocks`], so the implementation must not take that lock itself.
///
/// NOTE: the monitor awaits `restart` without a timeout and keeps the lock meanwhile, so
/// the implementation must bound its own stop and start.
pub trait Restarter: Send + Sync + Debug {
    /// Restarts the VM of `service`.
    fn restart<'a>(&'a self, service: &'a str) -> BoxFuture<'a, Result<(), BoxError>>;
}

/// A service to monitor.
#[derive(Debug, Clone)]
pub struct Registration {
    /// The service name.
    pub service: String,
    /// The health check; `None` leaves the service unprobed, but a VM exit still restarts
    /// it.
    pub check: Option<HealthCheck>,
    /// The guest address the agent assigned, with or without a prefix length.
    pub guest_ip: Option<String>,
    /// When the VM started; the start period counts from here.
    pub started_at: Instant,
}

impl Registration {
    /// Describes a service whose VM started just now.
    pub fn new(service: &str, check: Option<HealthCheck>, guest_ip: Option<&str>) -> Self {
        Registration {
            service: service.to_string(),
            check,
            guest_ip: guest_ip.map(str::to_string),
            started_at: Instant::now(),
        }
    }
}

/// An operation on a service the monitor does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MonitorError {
    /// The service is not registered.
    #[error("service {service:?} is not registered with the health monitor")]
    NotRegistered {
        /// The service name.
        service: String,
    },
}

struct Entry {
    task: JoinHandle<()>,
    commands: mpsc::UnboundedSender<Command>,
    health: watch::Receiver<ServiceHealth>,
}

/// Probes registered services, restarts them per the [`RestartPolicy`] and reports their
/// health. Dropping the monitor stops all its tasks.
pub struct HealthMonitor {
    entries: Mutex<HashMap<String, Entry>>,
    restarter: Arc<dyn Restarter>,
    prober: Arc<dyn Prober>,
    locks: ServiceLocks,
    policy: RestartPolicyConfig,
    events: broadcast::Sender<HealthEvent>,
}

impl Debug for HealthMonitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthMonitor")
            .field("services", &self.services())
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// Events buffered for slow subscribers. Older events are dropped, and the subscriber
/// receives a lag error.
const EVENT_CAPACITY: usize = 256;

impl HealthMonitor {
    /// Creates a monitor that probes over real sockets with the default restart policy.
    pub fn new(restarter: Arc<dyn Restarter>, locks: ServiceLocks) -> Self {
        Self::with_parts(
            restarter,
            locks,
            Arc::new(NetProber),
            RestartPolicyConfig::default(),
        )
    }

    /// Creates a monitor with a given prober and restart policy.
    pub fn with_parts(
        restarter: Arc<dyn Restarter>,
        locks: ServiceLocks,
        prober: Arc<dyn Prober>,
        policy: RestartPolicyConfig,
    ) -> Self {
        HealthMonitor {
            entries: Mutex::new(HashMap::new()),
            restarter,
            prober,
            locks,
            policy,
            events: broadcast::channel(EVENT_CAPACITY).0,
        }
    }

    /// Returns the per-service locks that restarts take.
    pub fn locks(&self) -> &ServiceLocks {
        &self.locks
    }

    /// Starts monitoring a service, replacing an earlier registration of the same name
    /// (its counts and restart history are dropped). Must be called within a tokio
    /// runtime.
    pub fn register(&self, registration: Registration) {
        let Registration {
            service,
            check,
            guest_ip,
            started_at,
        } = registration;

        let (target, reason) = match &check {
            None => (None, Some("no health check".to_string())),
            Some(check) => match resolve_target(check, guest_ip.as_deref()) {
                Ok(target) => (Some(target), None),
                Err(error) => {
                    tracing::warn!(service = %service, error = %error, "health check not probed");
                    (None, Some(error.to_string()))
                }
            },
        };
        let initial = if target.is_some() {
            HealthState::Starting
        } else {
            HealthState::NotProbed
        };
        let mut health = ServiceHealth::new(&service, initial, started_at);
        health.reason = reason.clone();

        let (health_tx, health_rx) = watch::channel(health);
        let (commands_tx, commands_rx) = mpsc::unbounded_channel();
        let task = ServiceTask {
            service: service.clone(),
            probed: check.zip(target),
            prober: self.prober.clone(),
            restarter: self.restarter.clone(),
            locks: self.locks.clone(),
            policy: RestartPolicy::new(self.policy.clone()),
            events: self.events.clone(),
            health: health_tx,
            commands: commands_rx,
            healthy_since: None,
            not_probed_reason: reason,
        };
        tracing::info!(service = %service, state = %initial, "health monitoring started");
        let entry = Entry {
            task: tokio::spawn(
                task.run()
                    .instrument(tracing::info_span!("health", service = %service)),
            ),
            commands: commands_tx,
            health: health_rx,
        };
        if let Some(old) = self.lock_entries().insert(service, entry) {
            old.task.abort();
        }
    }

    /// Stops monitoring a service and drops its state. Returns whether it was registered.
    /// Call it while holding the service's lock, so no restart is halfway through.
    pub fn deregister(&self, service: &str) -> bool {
        match self.lock_entries().remove(service) {
            Some(entry) => {
                entry.task.abort();
                tracing::info!(service = %service, "health monitoring stopped");
                true
            }
            None => false,
        }
    }

    /// Reports that the VM process of `service` exited; the monitor restarts it per the
    /// policy unless it is stopped or failing.
    pub fn vm_exited(&self, service: &str, reason: &str) -> Result<(), MonitorError> {
        self.send(service, Command::VmExited(reason.to_string()))
    }

    /// Clears the restart history of `service` (an operator's reset). A failing service is
    /// restarted at once and probed again.
    pub fn reset(&self, service: &str) -> Result<(), MonitorError> {
        self.send(service, Command::Reset)
    }

    /// Marks `service` stopped on purpose: no probes and no restarts until it is
    /// registered again.
    pub fn mark_stopped(&self, service: &str) -> Result<(), MonitorError> {
        self.send(service, Command::Stop)
    }

    /// Returns the health of `service`.
    pub fn health(&self, service: &str) -> Option<ServiceHealth> {
        self.lock_entries()
            .get(service)
            .map(|entry| entry.health.borrow().clone())
    }

    /// Returns the health of every registered service, sorted by name.
    pub fn all(&self) -> Vec<ServiceHealth> {
        let mut all: Vec<ServiceHealth> = self
            .lock_entries()
            .values()
            .map(|entry| entry.health.borrow().clone())
            .collect();
        all.sort_by(|a, b| a.service.cmp(&b.service));
        all
    }

    /// Returns the names of the registered services, sorted.
    pub fn services(&self) -> Vec<String> {
        let mut names: Vec<String> = self.lock_entries().keys().cloned().collect();
        names.sort();
        names
    }

    /// Returns a receiver notified of every change of the health of `service`. It closes
    /// when the service is deregistered or registered again.
    pub fn watch(&self, service: &str) -> Option<watch::Receiver<ServiceHealth>> {
        self.lock_entries()
            .get(service)
            .map(|entry| entry.health.clone())
    }

    /// Subscribes to the events of all services.
    pub fn subscribe(&self) -> broadcast::Receiver<HealthEvent> {
        self.events.subscribe()
    }

    /// Stops every task; the last health of each service stays readable.
    pub fn shutdown(&self) {
        for entry in self.lock_entries().values() {
            entry.task.abort();
        }
    }

    fn send(&self, service: &str, command: Command) -> Result<(), MonitorError> {
        let entries = self.lock_entries();
        let entry = entries
            .get(service)
            .ok_or_else(|| MonitorError::NotRegistered {
                service: service.to_string(),
            })?;
        // The send fails only when the task ended (after `shutdown`), so nothing can act on it.
        if entry.commands.send(command).is_err() {
            tracing::warn!(service = %service, "health task already stopped; command dropped");
        }
        Ok(())
    }

    fn lock_entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for HealthMonitor {
    fn drop(&mut self) {
        self.shutdown();
    }
}
