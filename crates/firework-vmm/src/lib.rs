//! Firework's VM runtime: starts, configures, stops, adopts and watches Firecracker
//! processes, one VM per service, with a durable record per VM under
//! `<state_dir>/vms/<service>/`.
//!
//! [`VmRuntime::open`] scans the records and adopts live VMs; [`VmRuntime::start`] and
//! [`VmRuntime::stop`] run the launch and stop sequences; crashes arrive as [`VmEvent`]s.

pub mod config;
pub mod error;
pub mod jailer;
pub mod launch;
pub mod layout;
pub mod logfile;
pub mod monitor;
pub mod process;
pub mod record;
pub mod runtime;
pub mod socket;
pub mod spec;
pub mod stop;

pub use config::RuntimeConfig;
pub use error::VmmError;
pub use jailer::{CgroupLimits, JailerConfig};
pub use monitor::{CrashReport, VmEvent};
pub use record::{ExitInfo, RecordState, VmRecord};
pub use runtime::{CleanedVm, ScanReport, VmRuntime, VmStatus};
pub use spec::{VmNetwork, VmSpec};
pub use stop::{StopReport, StopStep, StopTimeouts};
