//! The `GET /vm/config` view of the VM.

use super::Vmm;
use crate::payload::{CacheType, IoEngine, RateLimiterBody, TokenBucketBody};
use crate::wire::{
    BootSourceWire, DriveWire, FullConfigWire, NicWire, RateLimiterWire, TokenBucketWire, VsockWire,
};

impl Vmm {
    /// Serialises the `GET /vm/config` body in Firecracker's key order and with its `null`s.
    pub fn full_config(&self) -> String {
        let drives: Vec<DriveWire> = self
            .drives
            .iter()
            .map(|drive| {
                let config = &drive.config;
                DriveWire {
                    drive_id: &config.drive_id,
                    partuuid: config.partuuid.as_deref(),
                    is_root_device: config.is_root_device,
                    cache_type: config.cache_type.unwrap_or(CacheType::Unsafe),
                    is_read_only: config.is_read_only,
                    path_on_host: config.path_on_host.as_deref(),
                    rate_limiter: rate_limiter_wire(config.rate_limiter.as_ref()),
                    io_engine: config.io_engine.unwrap_or(IoEngine::Sync),
                    socket: config.socket.as_deref(),
                }
            })
            .collect();
        let nics: Vec<NicWire> = self
            .nics
            .iter()
            .map(|nic| NicWire {
                iface_id: &nic.iface_id,
                host_dev_name: &nic.host_dev_name,
                guest_mac: nic.guest_mac.map(|mac| mac.to_string()),
                mtu: nic.mtu,
                rx_rate_limiter: rate_limiter_wire(nic.rx_rate_limiter.as_ref()),
                tx_rate_limiter: rate_limiter_wire(nic.tx_rate_limiter.as_ref()),
            })
            .collect();
        let boot_source = match &self.boot_source {
            Some(boot) => BootSourceWire {
                kernel_image_path: &boot.kernel_image_path,
                initrd_path: boot.initrd_path.as_deref(),
                boot_args: boot.boot_args.as_deref(),
            },
            None => BootSourceWire {
                kernel_image_path: "",
                initrd_path: None,
                boot_args: None,
            },
        };
        let wire = FullConfigWire {
            balloon: self.balloon.as_ref(),
            drives,
            boot_source,
            cpu_config: None,
            logger: None,
            machine_config: self.machine.wire(),
            metrics: None,
            mmds_config: self.mmds_config.as_ref(),
            network_interfaces: nics,
            vsock: self.vsock.as_ref().map(|(body, _)| VsockWire {
                guest_cid: body.guest_cid,
                uds_path: &body.uds_path,
            }),
            entropy: self.entropy.as_ref(),
            pmem: Vec::new(),
            memory_hotplug: None,
        };
        serde_json::to_string(&wire).unwrap_or_default()
    }
}

/// Reads back a rate limiter as Firecracker does: a limiter without an enabled bucket is
/// `null`, and a bucket with a zero size or refill time is disabled.
fn rate_limiter_wire(limiter: Option<&RateLimiterBody>) -> Option<RateLimiterWire> {
    let limiter = limiter?;
    let bucket = |bucket: &Option<TokenBucketBody>| match bucket {
        Some(bucket) if bucket.size > 0 && bucket.refill_time > 0 => Some(TokenBucketWire {
            size: bucket.size,
            one_time_burst: bucket.one_time_burst,
            refill_time: bucket.refill_time,
        }),
        _ => None,
    };
    let bandwidth = bucket(&limiter.bandwidth);
    let ops = bucket(&limiter.ops);
    if bandwidth.is_none() && ops.is_none() {
        return None;
    }
    Some(RateLimiterWire { bandwidth, ops })
}
