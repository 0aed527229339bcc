//! Fixtures for the integration tests of the Firework crates.
//!
//! Only tests use this crate: dev-dependencies and the end-to-end test crate. Its fixtures
//! start real servers on loopback ports and stop them on drop.

pub mod garage;
pub mod ports;
