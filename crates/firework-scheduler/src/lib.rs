//! Deterministic placement of Firework services onto live nodes.
//!
//! [`schedule`] is a pure function: the same nodes, services, previous placement and options
//! give the same [`Placement`], whatever the order of the inputs. [`registry`] finds the live
//! nodes from the records agents write, [`source`] reads them from a directory or a bucket,
//! [`lambda`] serves plan requests as an AWS Lambda function, and [`input`] reads the files the command-line tool
//! takes.

pub mod error;
pub mod input;
pub mod lambda;
mod model;
pub mod placement;
pub mod plan;
pub mod registry;
pub mod report;
pub mod request;
mod schedule;
pub mod source;

pub use error::ScheduleError;
pub use placement::{
    Assignment, Move, MoveReason, NodeUsage, Placement, PortConflict, Unplaced, UnplacedReason,
};
pub use request::{
    DEFAULT_VM_OVERHEAD_MB, ExistingPlacement, HostPort, NameKind, NodeCapacity, Resources,
    ScheduleOptions, ServiceRequest,
};
pub use schedule::schedule;
