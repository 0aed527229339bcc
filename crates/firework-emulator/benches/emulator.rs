//! Emulator start-up to API-ready, and a full configure + InstanceStart sequence through
//! the typed client.
//!
//! Run with `cargo bench -p firework-emulator --bench emulator`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_debug_implementations
)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use firework_firecracker::models::{BootSource, Drive, MachineConfig};
use firework_firecracker::{FirecrackerClient, wait_for_socket};
use tokio::runtime::Runtime;
use tokio::time::Instant;

const BINARY: &str = env!("CARGO_BIN_EXE_fc-emulator");

/// A spawned emulator with its own directory; killed on drop.
struct Running {
    child: Child,
    dir: tempfile::TempDir,
    socket: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn() -> Running {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("api.sock");
    let child = Command::new(BINARY)
        .args(["--api-sock", socket.to_str().unwrap(), "--id", "bench"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Running { child, dir, socket }
}

fn start_to_ready(c: &mut Criterion, runtime: &Runtime) {
    c.bench_function("emulator_start_to_api_ready", |b| {
        b.iter_batched(
            || (),
            |()| {
                let running = spawn();
                runtime
                    .block_on(wait_for_socket(
                        &running.socket,
                        Instant::now() + Duration::from_secs(10),
                    ))
                    .unwrap();
                running
            },
            BatchSize::PerIteration,
        );
    });
}

fn configure_and_start(c: &mut Criterion, runtime: &Runtime) {
    c.bench_function("configure_and_instance_start", |b| {
        b.iter_batched(
            || {
                let running = spawn();
                runtime
                    .block_on(wait_for_socket(
                        &running.socket,
                        Instant::now() + Duration::from_secs(10),
                    ))
                    .unwrap();
                let kernel = running.dir.path().join("vmlinux");
                std::fs::write(&kernel, b"\x7fELF\x02\x01\x01\x00").unwrap();
                let rootfs = running.dir.path().join("rootfs.ext4");
                std::fs::write(&rootfs, vec![0u8; 4096]).unwrap();
                (running, kernel, rootfs)
            },
            |(running, kernel, rootfs)| {
                let client = FirecrackerClient::new(&running.socket);
                runtime.block_on(async {
                    client
                        .put_machine_config(&MachineConfig::new(2, 256))
                        .await
                        .unwrap();
                    client
                        .put_boot_source(&BootSource {
                            kernel_image_path: kernel.to_str().unwrap().into(),
                            boot_args: Some("console=ttyS0 reboot=k panic=1".into()),
                            initrd_path: None,
                        })
                        .await
                        .unwrap();
                    client
                        .put_drive(&Drive::from_file(
                            "rootfs",
                            rootfs.to_str().unwrap(),
                            true,
                            false,
                        ))
                        .await
                        .unwrap();
                    client.instance_start().await.unwrap();
                });
                running
            },
            BatchSize::PerIteration,
        );
    });
}

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    start_to_ready(c, &runtime);
    configure_and_start(c, &runtime);
}

criterion_group! {
    name = emulator;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(5));
    targets = benches
}
criterion_main!(emulator);
