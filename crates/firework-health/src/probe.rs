//! One probe: an HTTP GET or a TCP connect, bounded by the check's timeout.
//!
//! The HTTP probe is a minimal HTTP/1.1 client over a tokio `TcpStream`: it sends one GET
//! with `Connection: close`, reads only the status line and ignores proxy environment
//! variables, because the target is a guest on this host. Redirects are not followed.

use std::fmt::Debug;
use std::time::Duration;

use firework_model::service::HealthCheck;
use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::target::ProbeTarget;

/// Maximum status line length the HTTP probe reads before it fails.
const MAX_STATUS_LINE: usize = 8 * 1024;

/// A failed probe.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// Connecting failed (refused, unreachable, name not resolved).
    #[error("connect to {target} failed")]
    Connect {
        /// The probe target.
        target: String,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// Sending the request or reading the response failed.
    #[error("reading the response of {target} failed")]
    Io {
        /// The probe target.
        target: String,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// The probe took longer than the check's timeout.
    #[error("probe of {target} timed out after {timeout:?}")]
    TimedOut {
        /// The probe target.
        target: String,
        /// The check's timeout.
        timeout: Duration,
    },
    /// The response does not start with an HTTP/1.x status line.
    #[error("invalid HTTP response from {target}: {reason}")]
    InvalidResponse {
        /// The probe target.
        target: String,
        /// The problem found.
        reason: String,
    },
    /// The HTTP status is not a healthy one.
    #[error("{target} returned HTTP status {status}, expected {expected}")]
    Status {
        /// The probe target.
        target: String,
        /// The status received.
        status: u16,
        /// The healthy statuses: `2xx or 3xx`, or the check's `expected_status`.
        expected: String,
    },
}

/// Runs one probe. The monitor calls it on its own task per service, so a probe that waits
/// delays only its own service.
pub trait Prober: Send + Sync + Debug {
    /// Probes `target` once with the parameters of `check`.
    fn probe<'a>(
        &'a self,
        check: &'a HealthCheck,
        target: &'a ProbeTarget,
    ) -> BoxFuture<'a, Result<(), ProbeError>>;
}

/// The probe over real sockets.
#[derive(Debug, Default, Clone, Copy)]
pub struct NetProber;

impl Prober for NetProber {
    fn probe<'a>(
        &'a self,
        check: &'a HealthCheck,
        target: &'a ProbeTarget,
    ) -> BoxFuture<'a, Result<(), ProbeError>> {
        probe_once(target, check.timeout.into(), check.expected_status).boxed()
    }
}

/// Probes `target` once. Connect, request and response together get `timeout`.
/// An HTTP status is healthy when it equals `expected_status`, or without one when it is
/// 2xx or 3xx.
pub async fn probe_once(
    target: &ProbeTarget,
    timeout: Duration,
    expected_status: Option<u16>,
) -> Result<(), ProbeError> {
    let attempt = async {
        let stream = TcpStream::connect(target.authority())
            .await
            .map_err(|source| ProbeError::Connect {
                target: target.to_string(),
                source,
            })?;
        match target {
            ProbeTarget::Tcp { .. } => Ok(()),
            ProbeTarget::Http { path, .. } => {
                let status = http_status(stream, target, path).await?;
                check_status(target, status, expected_status)
            }
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(ProbeError::TimedOut {
            target: target.to_string(),
            timeout,
        }),
    }
}

async fn http_status(
    mut stream: TcpStream,
    target: &ProbeTarget,
    path: &str,
) -> Result<u16, ProbeError> {
    let io_error = |source| ProbeError::Io {
        target: target.to_string(),
        source,
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: firework-health\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        target.authority()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(io_error)?;

    let mut buffer = Vec::with_capacity(256);
    let mut chunk = [0_u8; 512];
    let line_end = loop {
        if let Some(at) = buffer.windows(2).position(|w| w == b"\r\n") {
            break at;
        }
        if buffer.len() > MAX_STATUS_LINE {
            return Err(invalid(target, "the status line is longer than 8 KiB"));
        }
        let read = stream.read(&mut chunk).await.map_err(io_error)?;
        if read == 0 {
            return Err(invalid(
                target,
                "the connection closed before a status line",
            ));
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    parse_status_line(&buffer[..line_end]).ok_or_else(|| {
        let line = String::from_utf8_lossy(&buffer[..line_end.min(80)]).into_owned();
        invalid(target, &format!("unexpected status line {line:?}"))
    })
}

fn invalid(target: &ProbeTarget, reason: &str) -> ProbeError {
    ProbeError::InvalidResponse {
        target: target.to_string(),
        reason: reason.to_string(),
    }
}

/// Parses `HTTP/1.x NNN reason` and returns the status code.
fn parse_status_line(line: &[u8]) -> Option<u16> {
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.splitn(3, ' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 {
        return None;
    }
    code.parse::<u16>().ok().filter(|c| (100..600).contains(c))
}

fn check_status(
    target: &ProbeTarget,
    status: u16,
    expected_status: Option<u16>,
) -> Result<(), ProbeError> {
    let (healthy, expected) = match expected_status {
        Some(expected) => (status == expected, expected.to_string()),
        None => ((200..400).contains(&status), "2xx or 3xx".to_string()),
    };
    if healthy {
        Ok(())
    } else {
        Err(ProbeError::Status {
            target: target.to_string(),
            status,
            expected,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_line_parsing() {
        assert_eq!(parse_status_line(b"HTTP/1.1 200 OK"), Some(200));
        assert_eq!(parse_status_line(b"HTTP/1.0 503"), Some(503));
        assert_eq!(parse_status_line(b"HTTP/2 200 OK"), None);
        assert_eq!(parse_status_line(b"HTTP/1.1 20 OK"), None);
        assert_eq!(parse_status_line(b"HTTP/1.1 999 OK"), None);
        assert_eq!(parse_status_line(b"SSH-2.0-OpenSSH"), None);
    }

    #[test]
    fn status_rules() {
        let target = ProbeTarget::Tcp {
            host: "h".to_string(),
            port: 1,
        };
        assert!(check_status(&target, 204, None).is_ok());
        assert!(check_status(&target, 302, None).is_ok());
        assert!(check_status(&target, 404, None).is_err());
        assert!(check_status(&target, 200, Some(204)).is_err());
        assert!(check_status(&target, 418, Some(418)).is_ok());
        let error = check_status(&target, 503, None).unwrap_err();
        assert_eq!(
            error.to_string(),
            "h:1 returned HTTP status 503, expected 2xx or 3xx"
        );
    }
}
