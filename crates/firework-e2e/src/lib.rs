//! Test support for Firework's end-to-end tests: each test node is a network namespace
//! with a `firework-agent`, Traefik and VMs run by the Firecracker emulator. Everything a
//! node starts is stopped and removed when it is dropped.

pub mod gitops;
pub mod netns;
pub mod node;
pub mod tools;
pub mod wait;

pub use netns::Netns;
pub use node::{Node, NodeOptions};
pub use tools::{Tools, require_root};
pub use wait::wait_until;
