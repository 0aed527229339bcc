//! `fireworkctl status`: reads an agent's `GET /status` and prints it as a table.

use std::fmt::Write as _;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// A status request that failed.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The API address is not an http URL.
    #[error("invalid API address {address:?}: write it as http://host:port")]
    InvalidAddress {
        /// The address as given.
        address: String,
    },
    /// The request failed or timed out.
    #[error("request to {url} failed")]
    Request {
        /// The URL.
        url: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The agent replied with an error status.
    #[error("{url} returned {status}: {body}")]
    Status {
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// The body is not the JSON the agent sends.
    #[error("{url} did not return JSON")]
    Decode {
        /// The URL.
        url: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}

/// Fetches `GET <api>/status`, sending `token` as a bearer token when given.
pub async fn fetch(api: &str, token: Option<&str>) -> Result<Value, StatusError> {
    let base = api.trim_end_matches('/');
    if !base.starts_with("http://") {
        return Err(StatusError::InvalidAddress {
            address: api.to_string(),
        });
    }
    let url = format!("{base}/status");
    let request_error = |source: Box<dyn std::error::Error + Send + Sync>| StatusError::Request {
        url: url.clone(),
        source,
    };
    let mut request = Request::get(&url);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request
        .body(Empty::<Bytes>::new())
        .map_err(|e| request_error(Box::new(e)))?;
    let client = Client::builder(TokioExecutor::new()).build_http();
    let response = tokio::time::timeout(Duration::from_secs(10), client.request(request))
        .await
        .map_err(|e| request_error(Box::new(e)))?
        .map_err(|e| request_error(Box::new(e)))?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| request_error(Box::new(e)))?
        .to_bytes();
    if status != 200 {
        let text: String = String::from_utf8_lossy(&body).chars().take(200).collect();
        return Err(StatusError::Status {
            url,
            status,
            body: text,
        });
    }
    serde_json::from_slice(&body).map_err(|source| StatusError::Decode { url, source })
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Formats a status document as a header and one row per service.
pub fn format_table(status: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "node {}  version {}  revision {}",
        text(&status["node"]),
        text(&status["version"]),
        text(&status["revision"])
    );
    if let Some(tick) = status["last_tick"].as_object() {
        let _ = writeln!(
            out,
            "last tick {} ({} ms, {})",
            text(&tick["started_at"]),
            text(&tick["duration_ms"]),
            text(&tick["trigger"])
        );
    }
    if !status["last_error"].is_null() {
        let _ = writeln!(out, "last error: {}", text(&status["last_error"]));
    }
    let _ = writeln!(
        out,
        "{:<24} {:<10} {:<10} {:>8} {:<15} {:>8}",
        "SERVICE", "STATE", "HEALTH", "PID", "GUEST IP", "RESTARTS"
    );
    for service in status["services"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let health = match &service["health"] {
            Value::Null => "-".to_string(),
            other => text(other),
        };
        let _ = writeln!(
            out,
            "{:<24} {:<10} {:<10} {:>8} {:<15} {:>8}",
            text(&service["name"]),
            text(&service["state"]),
            health,
            text(&service["pid"]),
            text(&service["guest_ip"]),
            text(&service["restarts"])
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_lists_every_service() {
        let status = serde_json::json!({
            "node": "demo-node",
            "version": "0.1.0",
            "revision": "abc",
            "last_error": null,
            "services": [
                {"name": "api", "state": "running", "health": "healthy", "pid": 42, "guest_ip": "172.16.0.7", "restarts": 0},
                {"name": "worker", "state": "exited", "pid": null, "guest_ip": null, "restarts": 2}
            ]
        });
        let table = format_table(&status);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "node demo-node  version 0.1.0  revision abc");
        assert!(lines[1].starts_with("SERVICE"));
        assert_eq!(
            lines[2],
            "api                      running    healthy          42 172.16.0.7             0"
        );
        assert_eq!(
            lines[3],
            "worker                   exited     -                 - -                      2"
        );
    }
}
