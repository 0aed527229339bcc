//! Firework's per-node agent.
//!
//! Every tick the agent reads the desired state of its labels from the store, builds the
//! VM each service should have, compares that with the VMs that exist ([`plan::plan`], a
//! pure function), and applies the difference through the [`driver::VmDriver`] and
//! [`driver::NetDriver`] traits. Guard rails hold back mass deletes and creates that do not
//! fit the host. See `docs/agent.md`.

pub mod agent;
pub mod api;
pub mod capacity;
pub mod daemon;
pub mod desired;
pub mod driver;
pub mod env;
pub mod error;
pub mod executor;
pub mod health;
pub mod hooks;
pub mod images;
pub mod intent;
pub mod logging;
pub mod metrics;
pub mod plan;
pub mod routes;
pub mod spec;
pub mod status;
pub mod trigger;

pub use agent::{Agent, AgentParts, AgentSettings, TickReport};
pub use error::{AgentError, SpecError, TickError};
