//! Serialisable reply bodies, with fields in the order Firecracker v1.16.1 emits them.

use serde::Serialize;
use serde_json::Value;

use crate::payload::{BalloonBody, CacheType, CpuTemplate, EntropyBody, HugePages, IoEngine};

#[derive(Debug, Serialize)]
pub struct MachineConfigWire {
    pub vcpu_count: u8,
    pub mem_size_mib: usize,
    pub smt: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_template: Option<CpuTemplate>,
    pub track_dirty_pages: bool,
    pub huge_pages: HugePages,
}

#[derive(Debug, Serialize)]
pub struct TokenBucketWire {
    pub size: u64,
    pub one_time_burst: Option<u64>,
    pub refill_time: u64,
}

#[derive(Debug, Serialize)]
pub struct RateLimiterWire {
    pub bandwidth: Option<TokenBucketWire>,
    pub ops: Option<TokenBucketWire>,
}

#[derive(Debug, Serialize)]
pub struct DriveWire<'a> {
    pub drive_id: &'a str,
    pub partuuid: Option<&'a str>,
    pub is_root_device: bool,
    pub cache_type: CacheType,
    pub is_read_only: Option<bool>,
    pub path_on_host: Option<&'a str>,
    pub rate_limiter: Option<RateLimiterWire>,
    pub io_engine: IoEngine,
    pub socket: Option<&'a str>,
}

#[derive(Debug, Serialize)]
pub struct NicWire<'a> {
    pub iface_id: &'a str,
    pub host_dev_name: &'a str,
    pub guest_mac: Option<String>,
    pub mtu: Option<u16>,
    pub rx_rate_limiter: Option<RateLimiterWire>,
    pub tx_rate_limiter: Option<RateLimiterWire>,
}

#[derive(Debug, Serialize)]
pub struct BootSourceWire<'a> {
    pub kernel_image_path: &'a str,
    pub initrd_path: Option<&'a str>,
    pub boot_args: Option<&'a str>,
}

#[derive(Debug, Serialize)]
pub struct VsockWire<'a> {
    pub guest_cid: u32,
    pub uds_path: &'a str,
}

#[derive(Debug, Serialize)]
pub struct FullConfigWire<'a> {
    pub balloon: Option<&'a BalloonBody>,
    pub drives: Vec<DriveWire<'a>>,
    #[serde(rename = "boot-source")]
    pub boot_source: BootSourceWire<'a>,
    #[serde(rename = "cpu-config")]
    pub cpu_config: Option<Value>,
    pub logger: Option<Value>,
    #[serde(rename = "machine-config")]
    pub machine_config: MachineConfigWire,
    pub metrics: Option<Value>,
    #[serde(rename = "mmds-config")]
    pub mmds_config: Option<&'a Value>,
    #[serde(rename = "network-interfaces")]
    pub network_interfaces: Vec<NicWire<'a>>,
    pub vsock: Option<VsockWire<'a>>,
    pub entropy: Option<&'a EntropyBody>,
    pub pmem: Vec<Value>,
    #[serde(rename = "memory-hotplug")]
    pub memory_hotplug: Option<Value>,
}
