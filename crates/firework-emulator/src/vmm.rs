//! The emulated VMM: configuration state, the pre-boot/post-boot state machine and the
//! checks each operation makes. Operations return `Err(fault_message)` exactly as
//! Firecracker v1.16.1 words it.

use std::fs::File;
use std::io::Write;
use std::os::unix::net::UnixListener;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{Value, json};

use crate::cli::FIRECRACKER_VERSION;
use crate::fault::FaultConfig;
use crate::host::{self, TapFailure, TapHandle};
use crate::logger::{Logger, Thread};
use crate::payload::{
    BalloonBody, BootSourceBody, CpuTemplate, DriveBody, EntropyBody, HugePages, LoggerBody,
    MacAddr, MachineConfigBody, MachineConfigPatch, MetricsBody, NetworkInterfaceBody,
    RateLimiterBody, VsockBody,
};
use crate::wire::MachineConfigWire;

mod config_view;
mod guest_hook;
mod mmds;
mod snapshot;

pub use snapshot::LoadFailure;

pub const NOT_SUPPORTED_BEFORE_START: &str =
    "The requested operation is not supported before starting the microVM.";
pub const NOT_SUPPORTED_AFTER_START: &str =
    "The requested operation is not supported after starting the microVM.";
const VCPU_ERROR: &str = "Machine config error: The number of vCPUs must be greater than 0, less than 32 and must be 1 or an even number if SMT is enabled.";
const MEMORY_ERROR: &str = "Machine config error: The memory size (MiB) is either 0, or not a multiple of the configured page size.";
const MAX_VCPUS: u8 = 32;

/// Boot command line Firecracker uses when `boot_args` is not given.
pub const DEFAULT_BOOT_ARGS: &str = "reboot=k panic=1 nomodule 8250.nr_uarts=0 i8042.noaux i8042.nomux i8042.dumbkbd swiotlb=noforce";

/// Lifecycle state reported by `GET /`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceState {
    NotStarted,
    Running,
    Paused,
}

impl InstanceState {
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::NotStarted => "Not started",
            InstanceState::Running => "Running",
            InstanceState::Paused => "Paused",
        }
    }
}

/// Machine configuration with Firecracker's defaults (1 vCPU, 128 MiB).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineConfig {
    pub vcpu_count: u8,
    pub mem_size_mib: usize,
    pub smt: bool,
    pub cpu_template: Option<CpuTemplate>,
    pub track_dirty_pages: bool,
    pub huge_pages: HugePages,
}

impl Default for MachineConfig {
    fn default() -> Self {
        MachineConfig {
            vcpu_count: 1,
            mem_size_mib: 128,
            smt: false,
            cpu_template: None,
            track_dirty_pages: false,
            huge_pages: HugePages::None,
        }
    }
}

impl MachineConfig {
    /// Returns the wire form, which has Firecracker's field order and carries
    /// `cpu_template` only when a static template is set.
    pub fn wire(&self) -> MachineConfigWire {
        MachineConfigWire {
            vcpu_count: self.vcpu_count,
            mem_size_mib: self.mem_size_mib,
            smt: self.smt,
            cpu_template: self
                .cpu_template
                .filter(|template| *template != CpuTemplate::None),
            track_dirty_pages: self.track_dirty_pages,
            huge_pages: self.huge_pages,
        }
    }

    /// `GET /machine-config` body.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.wire()).unwrap_or_default()
    }
}

/// A configured network interface and the TAP it holds.
#[derive(Debug)]
struct NetworkInterface {
    iface_id: String,
    host_dev_name: String,
    guest_mac: Option<MacAddr>,
    mtu: Option<u16>,
    rx_rate_limiter: Option<RateLimiterBody>,
    tx_rate_limiter: Option<RateLimiterBody>,
    _tap: TapHandle,
}

/// A configured drive and its open backing file.
#[derive(Debug)]
struct Drive {
    config: DriveBody,
    _file: Option<File>,
}

/// Per-flush API counters written to the metrics target.
#[derive(Debug, Default)]
pub struct ApiCounters {
    pub get_requests: u64,
    pub put_requests: u64,
    pub patch_requests: u64,
    pub failed_requests: u64,
}

/// Follow-up action that the server carries out once the reply has been written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterReply {
    /// The VM has started: arm the injected crash, if any.
    Started,
    /// The process exits with this status (the guest rebooted).
    Exit(i32),
}

/// The emulated Firecracker process state.
#[derive(Debug)]
pub struct Vmm {
    pub instance_id: String,
    pub enable_pci: bool,
    pub faults: FaultConfig,
    pub logger: Logger,
    pub counters: ApiCounters,
    pub mmds_size_limit: usize,
    pub(crate) state: InstanceState,
    pub(crate) machine: MachineConfig,
    boot_source: Option<BootSourceBody>,
    _kernel: Option<File>,
    drives: Vec<Drive>,
    nics: Vec<NetworkInterface>,
    metrics: Option<File>,
    vsock: Option<(VsockBody, UnixListener)>,
    balloon: Option<BalloonBody>,
    entropy: Option<EntropyBody>,
    mmds_config: Option<Value>,
    mmds_data: Option<Value>,
    /// Whether a resource that rules out a snapshot load was configured: machine config,
    /// boot source, drives, network interfaces, vsock, balloon, entropy or MMDS config.
    boot_specific_configured: bool,
}

impl Vmm {
    pub fn new(instance_id: &str, logger: Logger, faults: FaultConfig) -> Vmm {
        Vmm {
            instance_id: instance_id.to_string(),
            enable_pci: false,
            faults,
            logger,
            counters: ApiCounters::default(),
            mmds_size_limit: crate::cli::DEFAULT_MAX_PAYLOAD,
            state: InstanceState::NotStarted,
            machine: MachineConfig::default(),
            boot_source: None,
            _kernel: None,
            drives: Vec::new(),
            nics: Vec::new(),
            metrics: None,
            vsock: None,
            balloon: None,
            entropy: None,
            mmds_config: None,
            mmds_data: None,
            boot_specific_configured: false,
        }
    }

    pub fn state(&self) -> InstanceState {
        self.state
    }

    pub fn is_started(&self) -> bool {
        self.state != InstanceState::NotStarted
    }

    fn require_pre_boot(&self) -> Result<(), String> {
        if self.is_started() {
            return Err(NOT_SUPPORTED_AFTER_START.into());
        }
        Ok(())
    }

    fn require_post_boot(&self) -> Result<(), String> {
        if !self.is_started() {
            return Err(NOT_SUPPORTED_BEFORE_START.into());
        }
        Ok(())
    }

    /// `GET /` body, in Firecracker's field order.
    pub fn instance_info(&self) -> String {
        #[derive(Serialize)]
        struct Wire<'a> {
            id: &'a str,
            state: &'a str,
            vmm_version: &'a str,
            app_name: &'a str,
        }
        let wire = Wire {
            id: &self.instance_id,
            state: self.state.as_str(),
            vmm_version: FIRECRACKER_VERSION,
            app_name: "Firecracker",
        };
        serde_json::to_string(&wire).unwrap_or_default()
    }

    pub fn set_machine_config(&mut self, body: MachineConfigBody) -> Result<(), String> {
        self.require_pre_boot()?;
        let candidate = MachineConfig {
            vcpu_count: body.vcpu_count,
            mem_size_mib: body.mem_size_mib,
            smt: body.smt,
            cpu_template: body.cpu_template,
            track_dirty_pages: body.track_dirty_pages,
            huge_pages: body.huge_pages,
        };
        self.apply_machine_config(candidate)
    }

    pub fn patch_machine_config(&mut self, patch: MachineConfigPatch) -> Result<(), String> {
        self.require_pre_boot()?;
        let current = &self.machine;
        let candidate = MachineConfig {
            vcpu_count: patch.vcpu_count.unwrap_or(current.vcpu_count),
            mem_size_mib: patch.mem_size_mib.unwrap_or(current.mem_size_mib),
            smt: patch.smt.unwrap_or(current.smt),
            cpu_template: patch.cpu_template.or(current.cpu_template),
            track_dirty_pages: patch.track_dirty_pages.unwrap_or(current.track_dirty_pages),
            huge_pages: patch.huge_pages.unwrap_or(current.huge_pages),
        };
        self.apply_machine_config(candidate)
    }

    fn apply_machine_config(&mut self, candidate: MachineConfig) -> Result<(), String> {
        if cfg!(target_arch = "aarch64") && candidate.smt {
            return Err(
                "Machine config error: Enabling simultaneous multithreading is not supported on aarch64."
                    .into(),
            );
        }
        let vcpus = candidate.vcpu_count;
        if vcpus == 0
            || vcpus > MAX_VCPUS
            || (candidate.smt && vcpus > 1 && !vcpus.is_multiple_of(2))
        {
            return Err(VCPU_ERROR.into());
        }
        let page_multiple = match candidate.huge_pages {
            HugePages::None => 1,
            HugePages::Hugetlbfs2M => 2,
        };
        if candidate.mem_size_mib == 0 || !candidate.mem_size_mib.is_multiple_of(page_multiple) {
            return Err(MEMORY_ERROR.into());
        }
        if let Some(balloon) = &self.balloon
            && candidate.mem_size_mib < balloon.amount_mib as usize
        {
            return Err("Machine config error: The memory size (MiB) is smaller than the previously set balloon device target size.".into());
        }
        self.machine = candidate;
        self.boot_specific_configured = true;
        Ok(())
    }

    pub fn set_boot_source(&mut self, body: BootSourceBody) -> Result<(), String> {
        self.require_pre_boot()?;
        let kernel = host::open_readable(&body.kernel_image_path).map_err(|error| {
            format!("Boot source error: The kernel file cannot be opened: {error}")
        })?;
        if let Some(initrd) = &body.initrd_path {
            host::open_readable(initrd).map_err(|error| {
                format!("Boot source error: The initrd file cannot be opened due to invalid path or invalid permissions. {error}")
            })?;
        }
        let cmdline = body.boot_args.as_deref().unwrap_or(DEFAULT_BOOT_ARGS);
        host::check_cmdline(cmdline).map_err(|error| {
            format!("Boot source error: The kernel command line is invalid: {error}")
        })?;
        self._kernel = Some(kernel);
        self.boot_source = Some(body);
        self.boot_specific_configured = true;
        Ok(())
    }

    pub fn put_drive(&mut self, body: DriveBody) -> Result<(), String> {
        if self.is_started() {
            return Err(self.hotplug_error());
        }
        let invalid_block =
            "Drive config error: Unable to create the virtio block device: Invalid block config.";
        match (&body.path_on_host, &body.socket) {
            (Some(_), None) => {}
            (None, Some(_)) => {
                if body.is_read_only.is_some()
                    || body.rate_limiter.is_some()
                    || body.io_engine.is_some()
                {
                    return Err(invalid_block.into());
                }
                // NOTE: vhost-user drives need a backend speaking the vhost-user protocol,
                // which the emulator does not have.
                return Err("Drive config error: vhost-user block devices are not supported by the emulator".into());
            }
            _ => return Err(invalid_block.into()),
        }

        if body.is_root_device
            && self
                .drives
                .iter()
                .any(|drive| drive.config.is_root_device && drive.config.drive_id != body.drive_id)
        {
            return Err("Drive config error: A root block device already exists!".into());
        }

        let path = body.path_on_host.clone().unwrap_or_default();
        let read_only = body.is_read_only.unwrap_or(false);
        let file = host::open_drive(&path, read_only).map_err(|error| {
            format!("Drive config error: Unable to create the virtio block device: Virtio backend error: Error manipulating the backing file: {error} {path}")
        })?;

        let drive = Drive {
            config: body,
            _file: Some(file),
        };
        if let Some(index) = self
            .drives
            .iter()
            .position(|existing| existing.config.drive_id == drive.config.drive_id)
        {
            if drive.config.is_root_device && index != 0 {
                self.drives.remove(index);
                self.drives.insert(0, drive);
            } else {
                self.drives[index] = drive;
            }
        } else if drive.config.is_root_device {
            self.drives.insert(0, drive);
        } else {
            self.drives.push(drive);
        }
        self.boot_specific_configured = true;
        Ok(())
    }

    /// Fault message of a post-boot `PUT` on a hot-pluggable device.
    fn hotplug_error(&self) -> String {
        if self.enable_pci {
            // NOTE: hotplug over PCI is not emulated.
            "Device hotplug is not supported by the emulator".into()
        } else {
            "PCI is not enabled".into()
        }
    }

    pub fn patch_drive(
        &mut self,
        drive_id: &str,
        path_on_host: Option<String>,
        rate_limiter: Option<RateLimiterBody>,
    ) -> Result<(), String> {
        self.require_post_boot()?;
        let Some(drive) = self
            .drives
            .iter_mut()
            .find(|drive| drive.config.drive_id == drive_id)
        else {
            return Err("Drive config error: Unable to patch the block device: Failed perform action on device: Device not found Please verify the request arguments.".into());
        };
        if path_on_host.is_none() && rate_limiter.is_none() {
            return Err("Drive config error: Unable to patch the block device: Block: Running method expected different backend. Please verify the request arguments.".into());
        }
        if let Some(path) = path_on_host {
            let read_only = drive.config.is_read_only.unwrap_or(false);
            let file = host::open_drive(&path, read_only).map_err(|error| {
                format!("Drive config error: Unable to patch the block device: Virtio backend error: Error manipulating the backing file: {error} {path} Please verify the request arguments.")
            })?;
            drive._file = Some(file);
            drive.config.path_on_host = Some(path);
        }
        if rate_limiter.is_some() {
            drive.config.rate_limiter = rate_limiter;
        }
        Ok(())
    }

    pub fn put_network_interface(&mut self, body: NetworkInterfaceBody) -> Result<(), String> {
        if self.is_started() {
            return Err(self.hotplug_error());
        }
        if let Some(mtu) = body.mtu
            && mtu < 68
        {
            return Err(format!(
                "Network config error: MTU {mtu} is out of range [68, 65535]"
            ));
        }

        // Firecracker drops the interface being replaced first (swap-remove), so a failed
        // replacement leaves it unconfigured and a successful one moves it to the end.
        if let Some(index) = self
            .nics
            .iter()
            .position(|nic| nic.iface_id == body.iface_id)
        {
            self.nics.swap_remove(index);
        }
        if let Some(mac) = body.guest_mac
            && self.nics.iter().any(|nic| nic.guest_mac == Some(mac))
        {
            return Err(format!(
                "Network config error: The MAC address is already in use: {mac}"
            ));
        }

        let tap = host::attach_tap(&body.host_dev_name).map_err(|failure| match failure {
            TapFailure::InvalidName => "Network config error: Could not create the network device: Open tap device failed: Invalid interface name".to_string(),
            TapFailure::OpenTunDevice(error) => format!(
                "Network config error: Could not create the network device: Open tap device failed: Couldn't open /dev/net/tun: {error}"
            ),
            TapFailure::Ioctl(error) => format!(
                "Network config error: Could not create the network device: Open tap device failed: Error while creating ifreq structure: {error}. Invalid TUN/TAP Backend provided by {}. Check our documentation on setting up the network devices.",
                body.host_dev_name
            ),
        })?;
        self.nics.push(NetworkInterface {
            iface_id: body.iface_id,
            host_dev_name: body.host_dev_name,
            guest_mac: body.guest_mac,
            mtu: body.mtu,
            rx_rate_limiter: body.rx_rate_limiter,
            tx_rate_limiter: body.tx_rate_limiter,
            _tap: tap,
        });
        self.boot_specific_configured = true;
        Ok(())
    }

    pub fn patch_network_interface(
        &mut self,
        iface_id: &str,
        rx: Option<RateLimiterBody>,
        tx: Option<RateLimiterBody>,
    ) -> Result<(), String> {
        self.require_post_boot()?;
        let Some(nic) = self.nics.iter_mut().find(|nic| nic.iface_id == iface_id) else {
            return Err("Network config error: Unable to update the net device: Failed perform action on device: Device not found".into());
        };
        if rx.is_some() {
            nic.rx_rate_limiter = rx;
        }
        if tx.is_some() {
            nic.tx_rate_limiter = tx;
        }
        Ok(())
    }

    pub fn set_logger(&mut self, body: LoggerBody) -> Result<(), String> {
        self.require_pre_boot()?;
        if let Some(path) = &body.log_path {
            self.logger
                .set_path(std::path::Path::new(path))
                .map_err(|error| {
                    format!(
                        "Logger error: Failed to open target file: {}",
                        crate::errno::musl_error_text(&error)
                    )
                })?;
        }
        if let Some(level) = body.level {
            self.logger.set_level(level.0);
        }
        self.logger.set_decorations(
            body.show_level.unwrap_or(false),
            body.show_log_origin.unwrap_or(false),
        );
        self.logger.set_module(body.module);
        Ok(())
    }

    pub fn set_metrics(&mut self, body: MetricsBody) -> Result<(), String> {
        self.require_pre_boot()?;
        self.open_metrics(std::path::Path::new(&body.metrics_path))
    }

    /// Opens the metrics target; Firecracker allows this only once per process.
    pub fn open_metrics(&mut self, path: &std::path::Path) -> Result<(), String> {
        let prefix = "Metrics error: Cannot initialize the metrics system due to bad user input:";
        if self.metrics.is_some() {
            return Err(format!("{prefix} Reinitialization of metrics not allowed."));
        }
        let file = crate::logger::open_output(path)
            .map_err(|error| format!("{prefix} {}", crate::errno::musl_error_text(&error)))?;
        self.metrics = Some(file);
        Ok(())
    }

    /// Writes one metrics line with the counters since the previous flush.
    pub fn flush_metrics(&mut self) {
        let Some(file) = &mut self.metrics else {
            return;
        };
        let timestamp_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_millis() as u64)
            .unwrap_or(0);
        let counters = std::mem::take(&mut self.counters);
        let line = json!({
            "utc_timestamp_ms": timestamp_ms,
            "api_server": { "process_startup_time_us": 0, "process_startup_time_cpu_us": 0 },
            "get_api_requests": { "count": counters.get_requests },
            "put_api_requests": { "count": counters.put_requests },
            "patch_api_requests": { "count": counters.patch_requests },
            "failed_api_requests": { "count": counters.failed_requests },
        });
        let _ = writeln!(file, "{line}");
    }

    /// Handles `InstanceStart`.
    pub fn start(&mut self) -> Result<(), String> {
        self.require_pre_boot()?;
        let Some(boot_source) = &self.boot_source else {
            return Err(
                "Start microvm error: Cannot start microvm without kernel configuration.".into(),
            );
        };
        if let Some(message) = &self.faults.fail_instance_start {
            return Err(format!("Start microvm error: {message}"));
        }
        if cfg!(target_arch = "x86_64") {
            host::check_elf_kernel(&boot_source.kernel_image_path).map_err(|error| {
                format!("Start microvm error: System configuration error: Cannot load kernel due to invalid memory configuration or invalid kernel image: Kernel Loader: failed to load ELF kernel image: Kernel Loader: {error}")
            })?;
        }
        let cmdline = self.boot_cmdline();
        host::check_cmdline(&cmdline).map_err(|error| {
            format!("Start microvm error: Invalid kernel command line: {error}")
        })?;
        self.boot_guest()?;
        self.state = InstanceState::Running;
        self.flush_metrics();
        Ok(())
    }

    /// Builds the command line with Firecracker's boot-time additions: the root device,
    /// `pci=off` and, on x86_64, one `virtio_mmio.device` entry per virtio device.
    ///
    /// NOTE: the MMIO addresses and IRQs follow Firecracker's allocation order but are not
    /// guaranteed to match it byte for byte, so the length check is close, not exact.
    pub fn boot_cmdline(&self) -> String {
        let user_args = self
            .boot_source
            .as_ref()
            .and_then(|boot| boot.boot_args.clone())
            .unwrap_or_else(|| DEFAULT_BOOT_ARGS.to_string());
        let (kernel_args, init_args) = match user_args.split_once(" -- ") {
            Some((kernel, init)) => (kernel.to_string(), Some(init.to_string())),
            None => (user_args, None),
        };
        let mut cmdline = kernel_args;
        if let Some(root) = self
            .drives
            .first()
            .filter(|drive| drive.config.is_root_device)
        {
            match &root.config.partuuid {
                Some(partuuid) => cmdline.push_str(&format!(" root=PARTUUID={partuuid}")),
                None => cmdline.push_str(" root=/dev/vda"),
            }
            let read_only = root.config.is_read_only.unwrap_or(false);
            cmdline.push_str(if read_only { " ro" } else { " rw" });
        }
        if !self.enable_pci {
            cmdline.push_str(" pci=off");
            if cfg!(target_arch = "x86_64") {
                let devices = self.drives.len()
                    + self.nics.len()
                    + usize::from(self.vsock.is_some())
                    + usize::from(self.balloon.is_some())
                    + usize::from(self.entropy.is_some());
                for index in 0..devices {
                    let address = 0xc000_1000u64 + 0x1000 * index as u64;
                    cmdline.push_str(&format!(
                        " virtio_mmio.device=4K@0x{address:x}:{}",
                        5 + index
                    ));
                }
            }
        }
        if let Some(init) = init_args {
            cmdline.push_str(" -- ");
            cmdline.push_str(&init);
        }
        cmdline
    }

    /// Handles `SendCtrlAltDel`; returns whether the emulated guest reboots, which ends
    /// the process with status 0.
    pub fn send_ctrl_alt_del(&mut self) -> Result<bool, String> {
        self.require_post_boot()?;
        if cfg!(target_arch = "aarch64") {
            return Err("SendCtrlAltDel does not supported on aarch64.".into());
        }
        let delivered = self.state == InstanceState::Running && !self.faults.ignore_ctrl_alt_del;
        // In guest mode the guest decides: its init gets SIGINT and its reboot ends us.
        if delivered && crate::guest::send_ctrl_alt_del() {
            return Ok(false);
        }
        Ok(delivered)
    }

    pub fn flush_metrics_action(&mut self) -> Result<(), String> {
        self.require_post_boot()?;
        self.flush_metrics();
        Ok(())
    }

    pub fn set_vm_state(&mut self, paused: bool) -> Result<(), String> {
        self.require_post_boot()?;
        self.state = if paused {
            InstanceState::Paused
        } else {
            InstanceState::Running
        };
        Ok(())
    }

    pub fn set_vsock(&mut self, body: VsockBody) -> Result<(), String> {
        self.require_pre_boot()?;
        if let Some((previous, _)) = self.vsock.take() {
            let _ = std::fs::remove_file(&previous.uds_path);
        }
        let listener = UnixListener::bind(&body.uds_path).map_err(|error| {
            format!(
                "Vsock config error: Cannot create backend for vsock device: Error binding to the host-side Unix socket: {}",
                crate::errno::musl_error_text(&error)
            )
        })?;
        self.vsock = Some((body, listener));
        self.boot_specific_configured = true;
        Ok(())
    }

    pub fn set_balloon(&mut self, body: BalloonBody) -> Result<(), String> {
        self.require_pre_boot()?;
        if body.amount_mib as usize > self.machine.mem_size_mib {
            return Err("Balloon config error: Amount of pages requested is too large.".into());
        }
        self.balloon = Some(body);
        self.boot_specific_configured = true;
        Ok(())
    }

    pub fn balloon(&self) -> Result<String, String> {
        self.balloon
            .as_ref()
            .map(|balloon| serde_json::to_string(balloon).unwrap_or_default())
            .ok_or_else(|| "Balloon config error: No balloon device found.".into())
    }

    pub fn set_entropy(&mut self, body: EntropyBody) -> Result<(), String> {
        self.require_pre_boot()?;
        self.entropy = Some(body);
        self.boot_specific_configured = true;
        Ok(())
    }

    pub fn set_serial(&mut self) -> Result<(), String> {
        self.require_pre_boot()
    }

    /// Logs Firecracker's exit line and flushes metrics, as Firecracker does before it exits.
    pub fn log_exit(&mut self, code: i32) {
        self.flush_metrics();
        if code == 0 {
            self.logger.info(
                Thread::Main,
                "Firecracker exiting successfully. exit_code=0",
            );
        } else {
            self.logger.error(
                Thread::Main,
                &format!("Firecracker exiting with error. exit_code={code}"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_machine_config_json() {
        assert_eq!(
            MachineConfig::default().to_json(),
            r#"{"vcpu_count":1,"mem_size_mib":128,"smt":false,"track_dirty_pages":false,"huge_pages":"None"}"#
        );
    }
}
