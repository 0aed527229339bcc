//! Shared fixtures of the emulator-backed tests: paths, specs, and a guard that kills every
//! process a test started, also when the test fails.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use firework_vmm::process::ProcessIdentity;
use firework_vmm::{RuntimeConfig, StopTimeouts, VmSpec};

/// Path of the emulator binary built by `cargo build -p firework-emulator`.
pub fn emulator_path() -> Option<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let path = target.join("debug/fc-emulator");
    if path.exists() {
        return Some(path.canonicalize().unwrap_or(path));
    }
    let message = format!(
        "{} is missing; build it with `cargo build -p firework-emulator`",
        path.display()
    );
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{message}");
    }
    eprintln!("skipping: {message}");
    None
}

/// A state directory, images and settings for one test.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub emulator: PathBuf,
    pub kernel: PathBuf,
    pub rootfs: PathBuf,
    pub guard: ProcessGuard,
}

impl Fixture {
    pub fn new() -> Option<Fixture> {
        let emulator = emulator_path()?;
        let dir = tempfile::tempdir().unwrap();
        let images = dir.path().join("images");
        std::fs::create_dir_all(&images).unwrap();
        let kernel = images.join("vmlinux");
        let rootfs = images.join("rootfs.ext4");
        // The emulator checks the ELF magic at InstanceStart, as Firecracker does on x86_64.
        std::fs::write(&kernel, b"\x7fELF\x02\x01\x01 test kernel").unwrap();
        std::fs::write(&rootfs, vec![0u8; 4096]).unwrap();
        Some(Fixture {
            dir,
            emulator,
            kernel,
            rootfs,
            guard: ProcessGuard::default(),
        })
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Settings with short stop durations so escalation tests stay quick.
    pub fn config(&self) -> RuntimeConfig {
        let mut config = RuntimeConfig::new(self.state_dir(), &self.emulator);
        config.socket_timeout = Duration::from_secs(20);
        config.api_timeout = Duration::from_secs(10);
        config.stop = StopTimeouts {
            ctrl_alt_del_grace: Duration::from_secs(5),
            sigterm_grace: Duration::from_secs(5),
            sigkill_wait: Duration::from_secs(5),
        };
        config.adopted_poll_interval = Duration::from_millis(50);
        config
    }

    pub fn spec(&self, service: &str) -> VmSpec {
        VmSpec {
            service: service.to_owned(),
            vm_id: format!("{service}-vm"),
            kernel_path: self.kernel.clone(),
            rootfs_path: self.rootfs.clone(),
            read_only: false,
            vcpus: 1,
            memory_mib: 128,
            kernel_args: "console=ttyS0 reboot=k panic=1".to_owned(),
            network: None,
            log_path: None,
        }
    }
}

/// Kills the recorded processes on drop, checking the start time so that a reused pid is
/// never hit.
#[derive(Default)]
pub struct ProcessGuard {
    processes: Mutex<Vec<ProcessIdentity>>,
}

impl ProcessGuard {
    pub fn track(&self, pid: i32) {
        if let Ok(identity) = ProcessIdentity::of(pid) {
            self.processes.lock().unwrap().push(identity);
        }
    }
}

impl Drop for ProcessGuard {
    fn drop(&mut self) {
        for identity in self.processes.lock().unwrap().iter() {
            if !identity.has_ended() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(identity.pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

/// Pids of live processes whose command line contains `needle`.
pub fn processes_naming(needle: &Path) -> Vec<i32> {
    let needle = needle.as_os_str().to_string_lossy().into_owned();
    firework_vmm::process::find_processes(|args| {
        args.iter().any(|a| a.to_string_lossy().contains(&needle))
    })
    .into_iter()
    .filter(|pid| {
        firework_vmm::process::read_stat(*pid)
            .map(|s| s.state != 'Z')
            .unwrap_or(false)
    })
    .collect()
}

/// Polls `condition` every 10 ms until it holds or `timeout` passes.
pub async fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
