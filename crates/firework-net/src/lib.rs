//! Host networking for Firework guests.
//!
//! A [`NetworkPlan`] describes the desired state: one shared bridge with the guest
//! gateway address, one TAP device per networked service, port forwards and links
//! between services. [`NetworkManager::apply`] makes the host match it through a
//! [`NetworkBackend`]: [`LinuxBackend`] talks rtnetlink and `nft -j`, and unit tests
//! use a recording fake. Assigned addresses, TAP names and the record of what
//! Firework created are kept in a state directory, so they stay stable across
//! restarts and Firework only ever deletes devices it created.
//!
//! See `docs/networking.md` for the model.

mod addressing;
mod backend;
mod error;
mod kernel_args;
mod linux;
mod manager;
mod names;
mod nft;
mod plan;
pub mod preflight;
mod state;

pub use addressing::{GuestAddress, assign_addresses, mac_for_address};
pub use backend::{LinkKind, LinkState, NetworkBackend};
pub use error::NetError;
pub use kernel_args::{check_ip_arg, ip_arg, with_ip_arg};
pub use linux::LinuxBackend;
pub use manager::{AppliedNetwork, GarbageReport, NetworkManager, ServiceNetworkState};
pub use names::{TAP_PREFIX, derive_tap_name, validate_service_name};
pub use nft::{NFT_TABLE, Ruleset, build_ruleset};
pub use plan::{NetworkPlan, PortForward, Protocol, ServiceNetwork};
pub use state::{NetworkState, ServiceRecord};

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;
