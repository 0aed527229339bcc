//! Fixtures for the integration tests of the Firework crates.
//!
//! Only dev-dependencies use this crate. Its fixtures start real servers on loopback ports
//! and stop them on drop.

pub mod garage;
pub mod ports;
