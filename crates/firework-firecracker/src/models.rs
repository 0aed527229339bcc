//! Request and reply bodies with the field names of Firecracker's OpenAPI file. Unset
//! optional fields are omitted from requests, so Firecracker applies its own defaults.

use serde::{Deserialize, Serialize};

/// `GET /` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceInfo {
    pub id: String,
    pub state: InstanceState,
    pub vmm_version: String,
    pub app_name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum InstanceState {
    #[serde(rename = "Not started")]
    NotStarted,
    Running,
    Paused,
}

/// `PUT /machine-config` body and `GET /machine-config` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineConfig {
    /// Number of vCPUs, 1 to 32; 1 or even when `smt` is set.
    pub vcpu_count: u8,
    /// Guest memory in MiB.
    pub mem_size_mib: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smt: Option<bool>,
    /// Deprecated static CPU template (`C3`, `T2`, `T2S`, `T2CL`, `T2A`, `V1N1`, `None`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_template: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track_dirty_pages: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub huge_pages: Option<HugePages>,
}

impl MachineConfig {
    /// Creates a configuration with only the two required fields set.
    pub fn new(vcpu_count: u8, mem_size_mib: u64) -> MachineConfig {
        MachineConfig {
            vcpu_count,
            mem_size_mib,
            smt: None,
            cpu_template: None,
            track_dirty_pages: None,
            huge_pages: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HugePages {
    None,
    #[serde(rename = "2M")]
    Hugetlbfs2M,
}

/// `PUT /boot-source` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootSource {
    pub kernel_image_path: String,
    /// Kernel command line; when unset Firecracker uses its own default line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_args: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initrd_path: Option<String>,
}

/// `PUT /drives/{drive_id}` body; the path id is `drive_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drive {
    /// Letters, digits and `_` only.
    pub drive_id: String,
    pub is_root_device: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_on_host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_read_only: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partuuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_type: Option<CacheType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_engine: Option<IoEngine>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limiter: Option<RateLimiter>,
    /// vhost-user socket; used instead of `path_on_host`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket: Option<String>,
}

impl Drive {
    /// Creates a virtio-block drive backed by a host file.
    pub fn from_file(
        drive_id: &str,
        path_on_host: &str,
        is_root_device: bool,
        is_read_only: bool,
    ) -> Drive {
        Drive {
            drive_id: drive_id.to_string(),
            is_root_device,
            path_on_host: Some(path_on_host.to_string()),
            is_read_only: Some(is_read_only),
            partuuid: None,
            cache_type: None,
            io_engine: None,
            rate_limiter: None,
            socket: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CacheType {
    Unsafe,
    Writeback,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IoEngine {
    Sync,
    Async,
}

/// `PUT /network-interfaces/{iface_id}` body; the path id is `iface_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkInterface {
    /// Letters, digits and `_` only.
    pub iface_id: String,
    /// Name of the host TAP device.
    pub host_dev_name: String,
    /// Six `:`-separated hex pairs; the guest picks a random MAC when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest_mac: Option<String>,
    /// MTU advertised to the guest, 68 to 65535.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rx_rate_limiter: Option<RateLimiter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tx_rate_limiter: Option<RateLimiter>,
}

impl NetworkInterface {
    pub fn new(iface_id: &str, host_dev_name: &str) -> NetworkInterface {
        NetworkInterface {
            iface_id: iface_id.to_string(),
            host_dev_name: host_dev_name.to_string(),
            guest_mac: None,
            mtu: None,
            rx_rate_limiter: None,
            tx_rate_limiter: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimiter {
    /// Token bucket with bytes as tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<TokenBucket>,
    /// Token bucket with operations as tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ops: Option<TokenBucket>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenBucket {
    /// Bucket capacity in tokens; 0 disables the bucket.
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_time_burst: Option<u64>,
    /// Milliseconds to refill the whole bucket; 0 disables the bucket.
    pub refill_time: u64,
}

/// `PUT /logger` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Logger {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<LogLevel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub show_level: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub show_log_origin: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogLevel {
    Error,
    Warning,
    Info,
    Debug,
    Trace,
    Off,
}

/// `PUT /metrics` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metrics {
    pub metrics_path: String,
}

/// `PUT /actions` body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceActionInfo {
    pub action_type: ActionType,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ActionType {
    FlushMetrics,
    InstanceStart,
    SendCtrlAltDel,
}

/// `PATCH /vm` body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vm {
    pub state: VmState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VmState {
    Paused,
    Resumed,
}

/// `PUT /vsock` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vsock {
    /// Guest context id, 3 or more.
    pub guest_cid: u32,
    /// Host-side Unix socket; Firecracker binds it, so the path must not exist.
    pub uds_path: String,
}

/// `PUT /snapshot/create` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotCreateParams {
    pub snapshot_path: String,
    pub mem_file_path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_type: Option<SnapshotType>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SnapshotType {
    Full,
    Diff,
}

/// `PUT /snapshot/load` body, with the memory given as a `mem_backend`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotLoadParams {
    pub snapshot_path: String,
    pub mem_backend: MemoryBackend,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track_dirty_pages: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_vm: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network_overrides: Vec<NetworkOverride>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryBackend {
    pub backend_type: MemoryBackendType,
    pub backend_path: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemoryBackendType {
    File,
    Uffd,
}

/// A TAP device to use for an interface on snapshot restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkOverride {
    pub iface_id: String,
    pub host_dev_name: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_optionals_omitted() {
        assert_eq!(
            serde_json::to_string(&MachineConfig::new(2, 256)).unwrap(),
            r#"{"vcpu_count":2,"mem_size_mib":256}"#
        );
        assert_eq!(
            serde_json::to_string(&NetworkInterface::new("eth0", "tap0")).unwrap(),
            r#"{"iface_id":"eth0","host_dev_name":"tap0"}"#
        );
        assert_eq!(serde_json::to_string(&Logger::default()).unwrap(), "{}");
    }

    #[test]
    fn drive_body_fields() {
        let drive = Drive::from_file("rootfs", "/img/rootfs.ext4", true, false);
        assert_eq!(
            serde_json::to_string(&drive).unwrap(),
            r#"{"drive_id":"rootfs","is_root_device":true,"path_on_host":"/img/rootfs.ext4","is_read_only":false}"#
        );
    }

    #[test]
    fn enums_use_api_names() {
        let config = MachineConfig {
            huge_pages: Some(HugePages::Hugetlbfs2M),
            ..MachineConfig::new(1, 128)
        };
        assert!(
            serde_json::to_string(&config)
                .unwrap()
                .contains(r#""huge_pages":"2M""#)
        );
        let action = InstanceActionInfo {
            action_type: ActionType::SendCtrlAltDel,
        };
        assert_eq!(
            serde_json::to_string(&action).unwrap(),
            r#"{"action_type":"SendCtrlAltDel"}"#
        );
        let info: InstanceInfo = serde_json::from_str(
            r#"{"id":"a","state":"Not started","vmm_version":"1.16.1","app_name":"Firecracker"}"#,
        )
        .unwrap();
        assert_eq!(info.state, InstanceState::NotStarted);
    }
}
