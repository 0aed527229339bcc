//! Request bodies, decoded with the same strictness as Firecracker: unknown fields are
//! rejected, numbers have Firecracker's integer widths, and enums take Firecracker's names.
//! Field order matters because serde lists the expected fields in declaration order in its
//! `unknown field` messages.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// `PUT /machine-config` body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineConfigBody {
    pub vcpu_count: u8,
    pub mem_size_mib: usize,
    #[serde(default)]
    pub smt: bool,
    pub cpu_template: Option<CpuTemplate>,
    #[serde(default)]
    pub track_dirty_pages: bool,
    #[serde(default)]
    pub huge_pages: HugePages,
}

/// `PATCH /machine-config` body: every field optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineConfigPatch {
    pub vcpu_count: Option<u8>,
    pub mem_size_mib: Option<usize>,
    pub smt: Option<bool>,
    pub cpu_template: Option<CpuTemplate>,
    pub track_dirty_pages: Option<bool>,
    pub huge_pages: Option<HugePages>,
}

impl MachineConfigPatch {
    pub fn is_empty(&self) -> bool {
        self.vcpu_count.is_none()
            && self.mem_size_mib.is_none()
            && self.smt.is_none()
            && self.cpu_template.is_none()
            && self.track_dirty_pages.is_none()
            && self.huge_pages.is_none()
    }
}

/// Static CPU templates; setting one is deprecated in Firecracker v1.16.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CpuTemplate {
    C3,
    T2,
    T2S,
    T2CL,
    T2A,
    V1N1,
    None,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum HugePages {
    #[default]
    None,
    #[serde(rename = "2M")]
    Hugetlbfs2M,
}

/// `PUT /boot-source` body.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BootSourceBody {
    pub kernel_image_path: String,
    pub initrd_path: Option<String>,
    pub boot_args: Option<String>,
}

/// `PUT /drives/{id}` body.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DriveBody {
    pub drive_id: String,
    pub partuuid: Option<String>,
    pub is_root_device: bool,
    pub cache_type: Option<CacheType>,
    pub is_read_only: Option<bool>,
    pub path_on_host: Option<String>,
    pub rate_limiter: Option<RateLimiterBody>,
    pub io_engine: Option<IoEngine>,
    pub socket: Option<String>,
}

/// `PATCH /drives/{id}` body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrivePatch {
    pub drive_id: String,
    pub path_on_host: Option<String>,
    pub rate_limiter: Option<RateLimiterBody>,
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

/// Rate limiter with an optional bandwidth and an optional operations bucket.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimiterBody {
    pub bandwidth: Option<TokenBucketBody>,
    pub ops: Option<TokenBucketBody>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenBucketBody {
    pub size: u64,
    pub one_time_burst: Option<u64>,
    pub refill_time: u64,
}

/// `PUT /network-interfaces/{id}` body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkInterfaceBody {
    pub iface_id: String,
    pub host_dev_name: String,
    pub guest_mac: Option<MacAddr>,
    pub mtu: Option<u16>,
    pub rx_rate_limiter: Option<RateLimiterBody>,
    pub tx_rate_limiter: Option<RateLimiterBody>,
}

/// `PATCH /network-interfaces/{id}` body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkInterfacePatch {
    pub iface_id: String,
    pub rx_rate_limiter: Option<RateLimiterBody>,
    pub tx_rate_limiter: Option<RateLimiterBody>,
}

/// A MAC address: six `:`-separated groups of two hex digits, in either case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MacAddr([u8; 6]);

impl MacAddr {
    pub fn parse(text: &str) -> Option<MacAddr> {
        let mut bytes = [0u8; 6];
        let mut groups = text.split(':');
        for byte in &mut bytes {
            let group = groups.next()?;
            if group.len() != 2 || !group.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            *byte = u8::from_str_radix(group, 16).ok()?;
        }
        if groups.next().is_some() {
            return None;
        }
        Some(MacAddr(bytes))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        MacAddr::parse(&text)
            .ok_or_else(|| serde::de::Error::custom("The provided MAC address is invalid."))
    }
}

/// `PUT /logger` body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggerBody {
    pub log_path: Option<String>,
    pub level: Option<LevelBody>,
    pub show_level: Option<bool>,
    pub show_log_origin: Option<bool>,
    pub module: Option<String>,
}

/// Log level in a `PUT /logger` body, case-insensitive.
#[derive(Debug, Clone, Copy)]
pub struct LevelBody(pub crate::logger::Level);

impl<'de> Deserialize<'de> for LevelBody {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        crate::logger::Level::parse(&text)
            .map(LevelBody)
            .ok_or_else(|| serde::de::Error::custom("Invalid LevelFilter"))
    }
}

/// `PUT /metrics` body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsBody {
    pub metrics_path: String,
}

/// `PUT /actions` body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionBody {
    pub action_type: ActionType,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ActionType {
    FlushMetrics,
    InstanceStart,
    SendCtrlAltDel,
}

/// `PATCH /vm` body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmStateBody {
    pub state: VmState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum VmState {
    Paused,
    Resumed,
}

/// `PUT /vsock` body.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VsockBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vsock_id: Option<String>,
    pub guest_cid: u32,
    pub uds_path: String,
}

/// `PUT /entropy` body.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EntropyBody {
    pub rate_limiter: Option<RateLimiterBody>,
}

/// `PUT /balloon` body.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BalloonBody {
    pub amount_mib: u32,
    pub deflate_on_oom: bool,
    #[serde(default)]
    pub stats_polling_interval_s: u16,
    #[serde(default)]
    pub free_page_hinting: bool,
    #[serde(default)]
    pub free_page_reporting: bool,
}

/// `PUT /serial` body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SerialBody {
    pub serial_out_path: Option<String>,
}

/// `PUT /snapshot/create` body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotCreateBody {
    pub snapshot_type: Option<SnapshotType>,
    pub snapshot_path: String,
    pub mem_file_path: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum SnapshotType {
    Full,
    Diff,
}

/// `PUT /snapshot/load` body. Exactly one of `mem_file_path` (deprecated) and
/// `mem_backend` must be set, which the router checks after decoding.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotLoadBody {
    pub snapshot_path: String,
    pub mem_file_path: Option<String>,
    pub mem_backend: Option<MemoryBackendBody>,
    pub enable_diff_snapshots: Option<bool>,
    pub track_dirty_pages: Option<bool>,
    pub resume_vm: Option<bool>,
    #[serde(default)]
    pub network_overrides: Vec<NetworkOverrideBody>,
    pub vsock_override: Option<VsockOverrideBody>,
    pub clock_realtime: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryBackendBody {
    pub backend_type: MemoryBackendType,
    pub backend_path: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum MemoryBackendType {
    File,
    Uffd,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkOverrideBody {
    pub iface_id: String,
    pub host_dev_name: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VsockOverrideBody {
    pub uds_path: String,
}

/// `--config-file` document: the same bodies under kebab-case keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(rename = "boot-source")]
    pub boot_source: BootSourceBody,
    #[serde(default)]
    pub drives: Vec<serde_json::Value>,
    #[serde(rename = "machine-config")]
    pub machine_config: Option<serde_json::Value>,
    #[serde(rename = "network-interfaces", default)]
    pub network_interfaces: Vec<serde_json::Value>,
    pub logger: Option<serde_json::Value>,
    pub metrics: Option<serde_json::Value>,
    #[serde(rename = "mmds-config")]
    pub mmds_config: Option<serde_json::Value>,
    pub vsock: Option<serde_json::Value>,
    pub balloon: Option<serde_json::Value>,
    pub entropy: Option<serde_json::Value>,
    #[serde(default)]
    pub pmem: Vec<serde_json::Value>,
    #[serde(rename = "cpu-config")]
    pub cpu_config: Option<serde_json::Value>,
    #[serde(rename = "memory-hotplug")]
    pub memory_hotplug: Option<serde_json::Value>,
    pub serial: Option<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_parse_and_lowercase() {
        let mac = MacAddr::parse("06:00:AC:10:00:02").unwrap();
        assert_eq!(mac.to_string(), "06:00:ac:10:00:02");
        assert!(MacAddr::parse("06:00:ac:10:00").is_none());
        assert!(MacAddr::parse("06:00:ac:10:00:02:03").is_none());
        assert!(MacAddr::parse("06-00-ac-10-00-02").is_none());
        assert!(MacAddr::parse("6:00:ac:10:00:02").is_none());
        assert!(MacAddr::parse("0g:00:ac:10:00:02").is_none());
    }

    #[test]
    fn unknown_field_lists_expected() {
        let error =
            serde_json::from_str::<MachineConfigBody>(r#"{"vcpu_count":1,"mem_size_mib":2,"x":1}"#)
                .unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown field `x`, expected one of `vcpu_count`, `mem_size_mib`, `smt`, `cpu_template`, `track_dirty_pages`, `huge_pages` at line 1 column 36"
        );
    }
}
