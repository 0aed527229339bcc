//! Health monitoring of Firework services.
//!
//! The agent registers each started service with a [`HealthMonitor`]. The monitor probes
//! every service on its own tokio task ([`probe`]) and keeps a [`ServiceHealth`] snapshot
//! per service. A service that is still starting is also probed every
//! [`STARTUP_PROBE_PERIOD`], so a rollout can go on soon after the service responds
//! ([`schedule`]). When the probes fail `retries` times in a row or the VM process exits, it
//! restarts the VM through the agent's [`Restarter`]. The [`RestartPolicy`] spaces those
//! restarts with exponential backoff and ends in the `failing` state. Restarts take the
//! service's lock from [`ServiceLocks`], the same lock the reconcile loop takes, so the two
//! never act on one VM at once. [`HealthMonitor::wait_healthy`] is the gate of rolling
//! updates.
//!
//! docs/health.md describes the behaviour and the numbers.

pub mod cancel;
pub mod event;
pub mod gate;
pub mod locks;
pub mod monitor;
pub mod policy;
pub mod probe;
pub mod schedule;
pub mod state;
pub mod target;

mod task;

pub use cancel::CancelToken;
pub use event::HealthEvent;
pub use gate::GateError;
pub use locks::ServiceLocks;
pub use monitor::{HealthMonitor, MonitorError, Registration, Restarter};
pub use policy::{Decision, RestartPolicy, RestartPolicyConfig};
pub use probe::{NetProber, ProbeError, Prober};
pub use schedule::{STARTUP_PROBE_DELAY, STARTUP_PROBE_PERIOD};
pub use state::{HealthReport, HealthState, MAX_ERROR_LEN, ServiceHealth};
pub use target::{ProbeTarget, TargetError, resolve_target};
