use std::path::PathBuf;
use std::time::Duration;

/// Errors of one API request.
#[derive(Debug, thiserror::Error)]
pub enum FirecrackerError {
    /// Firecracker answered with an error status.
    #[error("{method} {path} rejected with status {status}: {fault_message}")]
    Api {
        method: hyper::Method,
        path: String,
        status: u16,
        /// `fault_message` of the reply; for HTTP-layer errors, which have no
        /// `fault_message`, the `error` field or the raw body.
        fault_message: String,
    },
    /// The socket could not be connected (missing, refused, permission denied).
    #[error("failed to connect to Firecracker API socket {socket}")]
    Connect {
        socket: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The HTTP exchange failed after connecting (connection reset, malformed reply).
    #[error("HTTP exchange for {method} {path} on {socket} failed")]
    Http {
        method: hyper::Method,
        path: String,
        socket: PathBuf,
        #[source]
        source: hyper::Error,
    },
    /// No complete reply arrived within the per-request timeout.
    #[error("{method} {path} on {socket} timed out after {timeout:?}")]
    Timeout {
        method: hyper::Method,
        path: String,
        socket: PathBuf,
        timeout: Duration,
    },
    /// The request could not be built, e.g. a resource id that is not valid in a URI.
    #[error("invalid request {method} {path}")]
    InvalidRequest {
        method: hyper::Method,
        path: String,
        #[source]
        source: hyper::http::Error,
    },
    #[error("failed to encode the body of {method} {path}")]
    Encode {
        method: hyper::Method,
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("invalid reply body for {method} {path}")]
    Decode {
        method: hyper::Method,
        path: String,
        #[source]
        source: serde_json::Error,
    },
}

impl FirecrackerError {
    /// Returns Firecracker's `fault_message` when this is an error reply.
    pub fn fault_message(&self) -> Option<&str> {
        match self {
            FirecrackerError::Api { fault_message, .. } => Some(fault_message),
            _ => None,
        }
    }

    /// Returns the HTTP status when this is an error reply.
    pub fn status(&self) -> Option<u16> {
        match self {
            FirecrackerError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Errors of [`crate::wait_for_socket`].
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    #[error("Firecracker API socket {socket} did not accept connections within {waited:?}")]
    Timeout {
        socket: PathBuf,
        waited: Duration,
        /// The error of the last connection attempt.
        #[source]
        last_error: std::io::Error,
    },
}
