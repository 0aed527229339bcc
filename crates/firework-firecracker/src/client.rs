use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, header};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::UnixStream;

use crate::error::FirecrackerError;
use crate::models::{
    ActionType, BootSource, Drive, InstanceActionInfo, InstanceInfo, Logger, MachineConfig,
    Metrics, NetworkInterface, SnapshotCreateParams, SnapshotLoadParams, Vm, VmState, Vsock,
};

/// Timeout of one request when none is set with [`FirecrackerClient::with_timeout`].
///
/// Firecracker replies to configuration requests within milliseconds, and its own test framework
/// fails any call slower than 700 ms. This default leaves room for a loaded host.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Client for one Firecracker process, addressed by its API socket.
///
/// Each request opens its own connection, so a client can be shared and cloned freely and
/// a failed request leaves no half-read connection behind.
#[derive(Debug, Clone)]
pub struct FirecrackerClient {
    socket: PathBuf,
    timeout: Duration,
}

impl FirecrackerClient {
    pub fn new(socket: impl Into<PathBuf>) -> FirecrackerClient {
        FirecrackerClient {
            socket: socket.into(),
            timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }

    /// Sets the timeout of each request, from connecting to the last byte of the reply.
    pub fn with_timeout(mut self, timeout: Duration) -> FirecrackerClient {
        self.timeout = timeout;
        self
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `GET /`: instance id, state and version.
    pub async fn instance_info(&self) -> Result<InstanceInfo, FirecrackerError> {
        self.get_json("/").await
    }

    /// `GET /machine-config`.
    pub async fn machine_config(&self) -> Result<MachineConfig, FirecrackerError> {
        self.get_json("/machine-config").await
    }

    /// `PUT /machine-config` (pre-boot only).
    pub async fn put_machine_config(&self, config: &MachineConfig) -> Result<(), FirecrackerError> {
        self.put("/machine-config", config).await
    }

    /// `PUT /boot-source` (pre-boot only). Firecracker opens the kernel file here.
    pub async fn put_boot_source(&self, boot_source: &BootSource) -> Result<(), FirecrackerError> {
        self.put("/boot-source", boot_source).await
    }

    /// `PUT /drives/{drive_id}`, with the path id taken from the body.
    pub async fn put_drive(&self, drive: &Drive) -> Result<(), FirecrackerError> {
        self.put(&format!("/drives/{}", drive.drive_id), drive)
            .await
    }

    /// `PUT /network-interfaces/{iface_id}`, with the path id taken from the body.
    /// Firecracker attaches the TAP device here.
    pub async fn put_network_interface(
        &self,
        interface: &NetworkInterface,
    ) -> Result<(), FirecrackerError> {
        self.put(
            &format!("/network-interfaces/{}", interface.iface_id),
            interface,
        )
        .await
    }

    /// `PUT /logger` (pre-boot only).
    pub async fn put_logger(&self, logger: &Logger) -> Result<(), FirecrackerError> {
        self.put("/logger", logger).await
    }

    /// `PUT /metrics` (pre-boot only, once per process).
    pub async fn put_metrics(&self, metrics: &Metrics) -> Result<(), FirecrackerError> {
        self.put("/metrics", metrics).await
    }

    /// `PUT /actions` with the given action.
    pub async fn action(&self, action_type: ActionType) -> Result<(), FirecrackerError> {
        self.put("/actions", &InstanceActionInfo { action_type })
            .await
    }

    /// Boots the configured VM.
    pub async fn instance_start(&self) -> Result<(), FirecrackerError> {
        self.action(ActionType::InstanceStart).await
    }

    /// Sends Ctrl+Alt+Del to the guest (x86_64); a guest booted with `reboot=k` then
    /// reboots and the Firecracker process exits with status 0.
    pub async fn send_ctrl_alt_del(&self) -> Result<(), FirecrackerError> {
        self.action(ActionType::SendCtrlAltDel).await
    }

    /// Writes the metrics now (post-boot only).
    pub async fn flush_metrics(&self) -> Result<(), FirecrackerError> {
        self.action(ActionType::FlushMetrics).await
    }

    /// `GET /vm/config`: the whole configuration as Firecracker reports it.
    pub async fn vm_config(&self) -> Result<serde_json::Value, FirecrackerError> {
        self.get_json("/vm/config").await
    }

    /// `PUT /vsock` (pre-boot only). Firecracker binds `uds_path` here.
    pub async fn put_vsock(&self, vsock: &Vsock) -> Result<(), FirecrackerError> {
        self.put("/vsock", vsock).await
    }

    /// `PUT /mmds`: replaces the metadata store with `data`.
    pub async fn put_mmds(&self, data: &serde_json::Value) -> Result<(), FirecrackerError> {
        self.put("/mmds", data).await
    }

    /// `PATCH /vm`: pauses or resumes a started VM.
    pub async fn patch_vm(&self, state: VmState) -> Result<(), FirecrackerError> {
        self.write(Method::PATCH, "/vm", &Vm { state }).await
    }

    pub async fn pause(&self) -> Result<(), FirecrackerError> {
        self.patch_vm(VmState::Paused).await
    }

    pub async fn resume(&self) -> Result<(), FirecrackerError> {
        self.patch_vm(VmState::Resumed).await
    }

    /// `PUT /snapshot/create` (the VM must be paused).
    pub async fn create_snapshot(
        &self,
        params: &SnapshotCreateParams,
    ) -> Result<(), FirecrackerError> {
        self.put("/snapshot/create", params).await
    }

    /// `PUT /snapshot/load` (only in a fresh process). Firecracker exits with status 1
    /// after replying with an error that happened during the restore itself.
    pub async fn load_snapshot(&self, params: &SnapshotLoadParams) -> Result<(), FirecrackerError> {
        self.put("/snapshot/load", params).await
    }

    async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, FirecrackerError> {
        let body = self.send(Method::GET, path, None).await?;
        serde_json::from_slice(&body).map_err(|source| FirecrackerError::Decode {
            method: Method::GET,
            path: path.to_string(),
            source,
        })
    }

    async fn put<T: Serialize>(&self, path: &str, body: &T) -> Result<(), FirecrackerError> {
        self.write(Method::PUT, path, body).await
    }

    /// Sends a request with a JSON body and expects an empty success reply.
    async fn write<T: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: &T,
    ) -> Result<(), FirecrackerError> {
        let encoded = serde_json::to_vec(body).map_err(|source| FirecrackerError::Encode {
            method: method.clone(),
            path: path.to_string(),
            source,
        })?;
        self.send(method, path, Some(encoded)).await?;
        Ok(())
    }

    /// Sends one request on a fresh connection and returns the body of a 2xx reply.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Bytes, FirecrackerError> {
        let span =
            tracing::debug_span!("firecracker_api", %method, path, socket = %self.socket.display());
        let _entered = span.enter();
        let exchange = self.exchange(method.clone(), path, body);
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result,
            Err(_elapsed) => Err(FirecrackerError::Timeout {
                method,
                path: path.to_string(),
                socket: self.socket.clone(),
                timeout: self.timeout,
            }),
        }
    }

    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Bytes, FirecrackerError> {
        let http_error = |source| FirecrackerError::Http {
            method: method.clone(),
            path: path.to_string(),
            socket: self.socket.clone(),
            source,
        };

        let mut builder = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(header::HOST, "localhost")
            .header(header::ACCEPT, "application/json");
        if body.is_some() {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
        }
        let request = builder
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|source| FirecrackerError::InvalidRequest {
                method: method.clone(),
                path: path.to_string(),
                source,
            })?;

        let stream = UnixStream::connect(&self.socket).await.map_err(|source| {
            FirecrackerError::Connect {
                socket: self.socket.clone(),
                source,
            }
        })?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(http_error)?;
        let connection_task = tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "Firecracker API connection closed with an error");
            }
        });

        let result = async {
            let response = sender.send_request(request).await.map_err(http_error)?;
            let status = response.status();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(http_error)?
                .to_bytes();
            Ok::<_, FirecrackerError>((status, bytes))
        }
        .await;
        connection_task.abort();
        let (status, bytes) = result?;

        if status.is_success() {
            return Ok(bytes);
        }
        let fault_message = fault_message_of(&bytes);
        tracing::debug!(
            status = status.as_u16(),
            fault_message,
            "Firecracker rejected the request"
        );
        Err(FirecrackerError::Api {
            method,
            path: path.to_string(),
            status: status.as_u16(),
            fault_message,
        })
    }
}

/// Extracts `fault_message` from an error body; falls back to the HTTP layer's `error`
/// field and then to the raw text.
fn fault_message_of(body: &[u8]) -> String {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
        for key in ["fault_message", "error"] {
            if let Some(text) = value.get(key).and_then(|v| v.as_str()) {
                return text.to_string();
            }
        }
    }
    String::from_utf8_lossy(body).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_message_extraction() {
        assert_eq!(fault_message_of(br#"{"fault_message":"bad"}"#), "bad");
        assert_eq!(
            fault_message_of(b"{ \"error\": \"Invalid HTTP Method.\" }"),
            "Invalid HTTP Method."
        );
        assert_eq!(fault_message_of(b"oops"), "oops");
    }
}
