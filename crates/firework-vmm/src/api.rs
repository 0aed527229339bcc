//! The few Firecracker API requests the runtime sends, over the VM's Unix socket.
//!
//! NOTE: a minimal HTTP/1.1 client written while the workspace's typed Firecracker client
//! was not yet available; it sends one request per connection and reads a response framed
//! by `Content-Length`, which is how Firecracker's API server answers.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// Why an API request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Connecting to the socket failed.
    #[error("failed to connect to {path}")]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Writing the request or reading the response failed.
    #[error("failed to exchange {method} {uri} over {path}")]
    Io {
        method: &'static str,
        uri: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// No complete response arrived in time.
    #[error("{method} {uri} timed out after {timeout:?}")]
    Timeout {
        method: &'static str,
        uri: String,
        timeout: Duration,
    },
    /// Firecracker rejected the request; `fault_message` is its explanation.
    #[error("{method} {uri} returned status {status}: {fault_message}")]
    Status {
        method: &'static str,
        uri: String,
        status: u16,
        fault_message: String,
    },
    /// The response was not valid HTTP or JSON.
    #[error("invalid response to {method} {uri}: {reason}")]
    InvalidResponse {
        method: &'static str,
        uri: String,
        reason: String,
    },
}

/// A client for one VM's API socket.
#[derive(Debug, Clone)]
pub struct ApiClient {
    socket: PathBuf,
    timeout: Duration,
}

/// What `GET /` returns.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct InstanceInfo {
    /// Instance id given with `--id`.
    pub id: String,
    /// `Not started`, `Running` or `Paused`.
    pub state: String,
    /// Firecracker version without a leading `v`.
    pub vmm_version: String,
}

/// The values sent to Firecracker, with paths as the Firecracker process sees them.
#[derive(Debug, Clone)]
pub struct ApiConfig<'a> {
    pub vcpus: u8,
    pub memory_mib: u32,
    pub kernel_path: &'a Path,
    pub kernel_args: &'a str,
    pub rootfs_path: &'a Path,
    pub read_only: bool,
    pub tap_name: Option<&'a str>,
    pub guest_mac: Option<&'a str>,
}

impl ApiClient {
    /// Creates a client; `timeout` bounds each request including the connect.
    pub fn new(socket: impl Into<PathBuf>, timeout: Duration) -> Self {
        ApiClient {
            socket: socket.into(),
            timeout,
        }
    }

    /// Tries once to connect to the socket.
    pub async fn probe(&self) -> Result<(), ApiError> {
        UnixStream::connect(&self.socket)
            .await
            .map(drop)
            .map_err(|source| ApiError::Connect {
                path: self.socket.clone(),
                source,
            })
    }

    /// `GET /`.
    pub async fn instance_info(&self) -> Result<InstanceInfo, ApiError> {
        let body = self.request("GET", "/", None).await?;
        serde_json::from_slice(&body).map_err(|e| ApiError::InvalidResponse {
            method: "GET",
            uri: "/".to_owned(),
            reason: e.to_string(),
        })
    }

    /// `PUT /machine-config`.
    pub async fn put_machine_config(&self, vcpus: u8, memory_mib: u32) -> Result<(), ApiError> {
        self.put(
            "/machine-config",
            &json!({ "vcpu_count": vcpus, "mem_size_mib": memory_mib }),
        )
        .await
    }

    /// `PUT /boot-source`.
    pub async fn put_boot_source(&self, kernel: &Path, boot_args: &str) -> Result<(), ApiError> {
        self.put(
            "/boot-source",
            &json!({ "kernel_image_path": kernel, "boot_args": boot_args }),
        )
        .await
    }

    /// `PUT /drives/{id}` for a file-backed drive.
    pub async fn put_drive(
        &self,
        id: &str,
        path: &Path,
        is_root: bool,
        read_only: bool,
    ) -> Result<(), ApiError> {
        self.put(
            &format!("/drives/{id}"),
            &json!({
                "drive_id": id,
                "path_on_host": path,
                "is_root_device": is_root,
                "is_read_only": read_only,
            }),
        )
        .await
    }

    /// `PUT /network-interfaces/{id}`.
    pub async fn put_network_interface(
        &self,
        id: &str,
        tap: &str,
        guest_mac: Option<&str>,
    ) -> Result<(), ApiError> {
        let mut body = json!({ "iface_id": id, "host_dev_name": tap });
        if let Some(mac) = guest_mac {
            body["guest_mac"] = json!(mac);
        }
        self.put(&format!("/network-interfaces/{id}"), &body).await
    }

    /// `PUT /actions` with the given `action_type`.
    pub async fn action(&self, action_type: &str) -> Result<(), ApiError> {
        self.put("/actions", &json!({ "action_type": action_type }))
            .await
    }

    async fn put(&self, uri: &str, body: &impl Serialize) -> Result<(), ApiError> {
        let body = serde_json::to_vec(body).map_err(|e| ApiError::InvalidResponse {
            method: "PUT",
            uri: uri.to_owned(),
            reason: format!("request body not serializable: {e}"),
        })?;
        self.request("PUT", uri, Some(&body)).await.map(drop)
    }

    /// Sends one request on a new connection and returns the body of a 2xx response.
    async fn request(
        &self,
        method: &'static str,
        uri: &str,
        body: Option<&[u8]>,
    ) -> Result<Vec<u8>, ApiError> {
        let exchange = self.exchange(method, uri, body);
        let (status, response_body) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| ApiError::Timeout {
                method,
                uri: uri.to_owned(),
                timeout: self.timeout,
            })??;
        if (200..300).contains(&status) {
            return Ok(response_body);
        }
        let fault_message = serde_json::from_slice::<serde_json::Value>(&response_body)
            .ok()
            .and_then(|v| {
                v.get("fault_message")
                    .or_else(|| v.get("error"))
                    .and_then(|m| m.as_str())
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| String::from_utf8_lossy(&response_body).into_owned());
        Err(ApiError::Status {
            method,
            uri: uri.to_owned(),
            status,
            fault_message,
        })
    }

    async fn exchange(
        &self,
        method: &'static str,
        uri: &str,
        body: Option<&[u8]>,
    ) -> Result<(u16, Vec<u8>), ApiError> {
        let io_error = |source| ApiError::Io {
            method,
            uri: uri.to_owned(),
            path: self.socket.clone(),
            source,
        };
        let mut stream =
            UnixStream::connect(&self.socket)
                .await
                .map_err(|source| ApiError::Connect {
                    path: self.socket.clone(),
                    source,
                })?;
        let body = body.unwrap_or_default();
        let mut request =
            format!("{method} {uri} HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n");
        if !body.is_empty() {
            request.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        request.push_str("\r\n");
        let mut bytes = request.into_bytes();
        bytes.extend_from_slice(body);
        stream.write_all(&bytes).await.map_err(io_error)?;

        let mut buffer = Vec::with_capacity(1024);
        let invalid = |reason: String| ApiError::InvalidResponse {
            method,
            uri: uri.to_owned(),
            reason,
        };
        loop {
            if let Some(end) = find_header_end(&buffer) {
                let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
                let (status, content_length) = parse_head(&head).map_err(invalid)?;
                let body_start = end + 4;
                while buffer.len() < body_start + content_length {
                    let read = stream.read_buf(&mut buffer).await.map_err(io_error)?;
                    if read == 0 {
                        return Err(invalid("connection closed inside the body".to_owned()));
                    }
                }
                return Ok((
                    status,
                    buffer[body_start..body_start + content_length].to_vec(),
                ));
            }
            let read = stream.read_buf(&mut buffer).await.map_err(io_error)?;
            if read == 0 {
                return Err(invalid(format!(
                    "connection closed after {} bytes, before the end of the headers",
                    buffer.len()
                )));
            }
        }
    }
}

fn find_header_end(buffer: &[u8]) -> Option<usize> {
    buffer.windows(4).position(|w| w == b"\r\n\r\n")
}

/// Parses the status line and `Content-Length` of a response head.
fn parse_head(head: &str) -> Result<(u16, usize), String> {
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_ascii_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("invalid status line {status_line:?}"))?;
    let mut content_length = 0;
    for line in lines {
        if let Some((name, value)) = line.split_once(':')
            && name.trim().eq_ignore_ascii_case("content-length")
        {
            content_length = value
                .trim()
                .parse()
                .map_err(|_| format!("invalid Content-Length {value:?}"))?;
        }
    }
    Ok((status, content_length))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_of_firecracker_error() {
        let head = "HTTP/1.1 400 \r\nServer: Firecracker API\r\nConnection: keep-alive\r\nContent-Type: application/json\r\nContent-Length: 27";
        assert_eq!(parse_head(head).unwrap(), (400, 27));
    }

    #[test]
    fn head_of_no_content() {
        let head = "HTTP/1.1 204 \r\nServer: Firecracker API\r\nConnection: keep-alive";
        assert_eq!(parse_head(head).unwrap(), (204, 0));
    }

    #[test]
    fn head_invalid() {
        assert_eq!(
            parse_head("garbage").unwrap_err(),
            "invalid status line \"garbage\""
        );
    }
}
