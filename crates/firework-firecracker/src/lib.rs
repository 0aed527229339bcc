//! Typed client for the Firecracker v1.16 HTTP API over its Unix socket.
//!
//! Request bodies carry the field names of Firecracker's OpenAPI file and omit unset
//! optional fields, so they are byte-compatible with what Firecracker expects. A 4xx or
//! 5xx reply becomes [`FirecrackerError::Api`] with Firecracker's `fault_message`, the
//! status and the request that caused it.

mod client;
mod error;
pub mod models;
mod wait;

pub use client::{DEFAULT_REQUEST_TIMEOUT, FirecrackerClient};
pub use error::{FirecrackerError, WaitError};
pub use wait::wait_for_socket;
