//! The bridge from the VMM state to guest mode: collects the root drive, the command
//! line and the host TAPs and starts the guest at `InstanceStart`.

use super::Vmm;
use crate::guest::{self, GuestError, GuestNic, GuestSpec};

impl Vmm {
    /// Starts the guest when guest mode is on; a no-op otherwise.
    pub(super) fn boot_guest(&mut self) -> Result<(), String> {
        if !guest::enabled() {
            return Ok(());
        }
        let spec = self
            .guest_spec()
            .map_err(|error| format!("Start microvm error: {error}"))?;
        guest::boot(spec).map_err(|error| format!("Start microvm error: {}", chain(&error)))
    }

    fn guest_spec(&self) -> Result<GuestSpec, GuestError> {
        let root = self
            .drives
            .first()
            .filter(|drive| drive.config.is_root_device)
            .ok_or(GuestError::NoRootDrive)?;
        let root_path = root
            .config
            .path_on_host
            .clone()
            .ok_or(GuestError::NoRootDrive)?;
        let mut nics = Vec::new();
        for nic in &self.nics {
            let Some(queue) = &nic._tap._queue else {
                continue;
            };
            let host_tap = queue.try_clone().map_err(|source| GuestError::Spawn {
                stage: "host TAP",
                source,
            })?;
            nics.push(GuestNic {
                host_tap,
                mac: nic.guest_mac.and_then(|mac| parse_mac(&mac.to_string())),
                mtu: nic.mtu,
            });
        }
        Ok(GuestSpec {
            root_path,
            read_only: root.config.is_read_only.unwrap_or(false),
            cmdline: self.boot_cmdline(),
            nics,
        })
    }
}

fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut bytes = [0u8; 6];
    let mut groups = text.split(':');
    for byte in &mut bytes {
        *byte = u8::from_str_radix(groups.next()?, 16).ok()?;
    }
    groups.next().is_none().then_some(bytes)
}

fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
