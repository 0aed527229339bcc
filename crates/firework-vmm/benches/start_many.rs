//! Starts many VMs through the Firecracker API emulator with bounded concurrency and prints
//! the agent-side CPU time per start (`getrusage(RUSAGE_SELF)` before and after, divided by
//! the number of VMs) and the wall time.
//!
//! Run: `cargo build -p firework-emulator && cargo bench -p firework-vmm --bench start_many`.
//! `BENCH_VMS` (default 100) and `BENCH_CONCURRENCY` (default 8) change the load; the
//! emulator is looked up at `target/debug/fc-emulator` unless `FC_EMULATOR` names it.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use firework_vmm::{RuntimeConfig, VmRuntime, VmSpec};
use nix::sys::resource::{UsageWho, getrusage};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn cpu_time() -> (Duration, Duration) {
    let usage = getrusage(UsageWho::RUSAGE_SELF).unwrap();
    let to_duration = |tv: nix::sys::time::TimeVal| {
        Duration::from_secs(tv.tv_sec() as u64) + Duration::from_micros(tv.tv_usec() as u64)
    };
    (
        to_duration(usage.user_time()),
        to_duration(usage.system_time()),
    )
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument selects nothing here.
    let vms = env_number("BENCH_VMS", 100);
    let concurrency = env_number("BENCH_CONCURRENCY", 8);
    let emulator = std::env::var_os("FC_EMULATOR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../target/debug/fc-emulator"
            ))
        });
    if !emulator.exists() {
        eprintln!(
            "{} is missing; run `cargo build -p firework-emulator` first",
            emulator.display()
        );
        std::process::exit(1);
    }

    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    std::fs::create_dir_all(&images).unwrap();
    let kernel = images.join("vmlinux");
    let rootfs = images.join("rootfs.ext4");
    std::fs::write(&kernel, b"\x7fELF\x02\x01\x01 bench kernel").unwrap();
    std::fs::write(&rootfs, vec![0u8; 4096]).unwrap();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let mut config = RuntimeConfig::new(dir.path().join("state"), &emulator);
        config.socket_timeout = Duration::from_secs(30);
        config.stop.ctrl_alt_del_grace = Duration::from_secs(5);
        let (vmm, _events, _) = VmRuntime::open(config).await.unwrap();

        let limit = Arc::new(Semaphore::new(concurrency));
        let (user_before, sys_before) = cpu_time();
        let started = Instant::now();
        let mut tasks = JoinSet::new();
        for i in 0..vms {
            let vmm = vmm.clone();
            let limit = limit.clone();
            let spec = VmSpec {
                service: format!("bench{i:03}"),
                vm_id: format!("bench-{i:03}"),
                kernel_path: kernel.clone(),
                rootfs_path: rootfs.clone(),
                read_only: true,
                vcpus: 1,
                memory_mib: 128,
                kernel_args: "console=ttyS0 reboot=k panic=1".to_owned(),
                network: None,
                log_path: None,
            };
            tasks.spawn(async move {
                let _permit = limit.acquire_owned().await.unwrap();
                vmm.start(spec).await
            });
        }
        let mut failures = 0;
        while let Some(result) = tasks.join_next().await {
            if let Err(e) = result.unwrap() {
                eprintln!("start failed: {e}");
                failures += 1;
            }
        }
        let wall = started.elapsed();
        let (user_after, sys_after) = cpu_time();
        let user = user_after - user_before;
        let sys = sys_after - sys_before;
        let per_vm = (user + sys) / vms as u32;

        println!("vm starts:          {vms} ({failures} failed), concurrency {concurrency}");
        println!(
            "wall time:          {:.1} ms ({:.2} ms per vm)",
            wall.as_secs_f64() * 1e3,
            wall.as_secs_f64() * 1e3 / vms as f64
        );
        println!(
            "agent cpu total:    {:.1} ms (user {:.1} ms, system {:.1} ms)",
            (user + sys).as_secs_f64() * 1e3,
            user.as_secs_f64() * 1e3,
            sys.as_secs_f64() * 1e3
        );
        println!("agent cpu per start: {:.3} ms", per_vm.as_secs_f64() * 1e3);

        let stop_started = Instant::now();
        let mut stops = JoinSet::new();
        for status in vmm.list().await {
            let vmm = vmm.clone();
            let limit = limit.clone();
            stops.spawn(async move {
                let _permit = limit.acquire_owned().await.unwrap();
                vmm.stop(&status.service).await
            });
        }
        while let Some(result) = stops.join_next().await {
            if let Err(e) = result.unwrap() {
                eprintln!("stop failed: {e}");
            }
        }
        println!(
            "stop of all vms:    {:.1} ms wall",
            stop_started.elapsed().as_secs_f64() * 1e3
        );
    });
}
