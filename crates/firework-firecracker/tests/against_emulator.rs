//! The client against the `fc-emulator` binary: every call, each 400 case with its exact
//! fault message, and the connection, timeout and wait errors.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use firework_firecracker::models::{
    BootSource, Drive, InstanceState, LogLevel, Logger, MachineConfig, Metrics, NetworkInterface,
};
use firework_firecracker::{FirecrackerClient, FirecrackerError, WaitError, wait_for_socket};
use tokio::time::Instant;

/// Builds `fc-emulator` once per test binary and returns its path.
fn emulator_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let workspace = manifest_dir.join("../..");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "firework-emulator", "--bin", "fc-emulator"])
            .current_dir(&workspace)
            .status()
            .expect("run cargo build for fc-emulator");
        assert!(status.success(), "cargo build -p firework-emulator failed");
        let target = std::env::var("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| workspace.join("target"));
        target.join("debug/fc-emulator")
    })
}

/// A running emulator in its own temporary directory; killed on drop.
struct Emulator {
    child: Child,
    dir: tempfile::TempDir,
    socket: PathBuf,
}

impl Emulator {
    async fn start(env: &[(&str, &str)]) -> Emulator {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("api.sock");
        let mut command = Command::new(emulator_binary());
        command
            .args([
                "--api-sock",
                socket.to_str().unwrap(),
                "--id",
                "client-test",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().unwrap();
        wait_for_socket(&socket, Instant::now() + Duration::from_secs(10))
            .await
            .unwrap();
        Emulator { child, dir, socket }
    }

    fn client(&self) -> FirecrackerClient {
        FirecrackerClient::new(&self.socket)
    }

    /// Writes a file that passes the emulator's ELF kernel check.
    fn kernel(&self) -> String {
        let path = self.dir.path().join("vmlinux");
        std::fs::write(&path, b"\x7fELF\x02\x01\x01\x00").unwrap();
        path.to_str().unwrap().to_string()
    }

    fn disk(&self, name: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, vec![0u8; 4096]).unwrap();
        path.to_str().unwrap().to_string()
    }

    fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn assert_fault(result: Result<(), FirecrackerError>, method: &str, path: &str, message: &str) {
    match result {
        Err(FirecrackerError::Api {
            method: got_method,
            path: got_path,
            status,
            fault_message,
        }) => {
            assert_eq!(status, 400);
            assert_eq!(got_method.as_str(), method);
            assert_eq!(got_path, path);
            assert_eq!(fault_message, message);
        }
        other => panic!("expected a 400 on {method} {path}, got {other:?}"),
    }
}

#[tokio::test]
async fn configure_and_start_sequence() {
    let emulator = Emulator::start(&[]).await;
    let client = emulator.client();

    let info = client.instance_info().await.unwrap();
    assert_eq!(info.id, "client-test");
    assert_eq!(info.state, InstanceState::NotStarted);
    assert_eq!(info.vmm_version, "1.16.1");
    assert_eq!(info.app_name, "Firecracker");

    let log_path = emulator.dir.path().join("fc.log");
    client
        .put_logger(&Logger {
            log_path: Some(log_path.to_str().unwrap().into()),
            level: Some(LogLevel::Info),
            ..Logger::default()
        })
        .await
        .unwrap();
    let metrics_path = emulator.dir.path().join("metrics.json");
    client
        .put_metrics(&Metrics {
            metrics_path: metrics_path.to_str().unwrap().into(),
        })
        .await
        .unwrap();
    client
        .put_machine_config(&MachineConfig::new(2, 256))
        .await
        .unwrap();
    client
        .put_boot_source(&BootSource {
            kernel_image_path: emulator.kernel(),
            boot_args: Some("console=ttyS0 reboot=k panic=1".into()),
            initrd_path: None,
        })
        .await
        .unwrap();
    client
        .put_drive(&Drive::from_file(
            "rootfs",
            &emulator.disk("rootfs.ext4"),
            true,
            false,
        ))
        .await
        .unwrap();
    client.instance_start().await.unwrap();

    let info = client.instance_info().await.unwrap();
    assert_eq!(info.state, InstanceState::Running);
    let machine = client.machine_config().await.unwrap();
    assert_eq!(machine.vcpu_count, 2);
    assert_eq!(machine.mem_size_mib, 256);
    client.flush_metrics().await.unwrap();

    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.contains("The API server received a Put request on \"/actions\""),
        "{log}"
    );
    let metrics = std::fs::read_to_string(&metrics_path).unwrap();
    assert_eq!(
        metrics.lines().count(),
        2,
        "one line at start, one on FlushMetrics"
    );
}

#[tokio::test]
async fn ctrl_alt_del_ends_process_cleanly() {
    let mut emulator = Emulator::start(&[]).await;
    let client = emulator.client();
    client
        .put_boot_source(&BootSource {
            kernel_image_path: emulator.kernel(),
            boot_args: None,
            initrd_path: None,
        })
        .await
        .unwrap();
    client.instance_start().await.unwrap();
    client.send_ctrl_alt_del().await.unwrap();
    let status = emulator
        .wait_exit(Duration::from_secs(10))
        .expect("emulator exits");
    assert_eq!(status.code(), Some(0));
    assert!(
        emulator.socket.exists(),
        "Firecracker leaves its socket behind"
    );
}

#[tokio::test]
async fn machine_config_rejections() {
    let emulator = Emulator::start(&[]).await;
    let client = emulator.client();
    let vcpu = "Machine config error: The number of vCPUs must be greater than 0, less than 32 and must be 1 or an even number if SMT is enabled.";
    for count in [0u8, 33] {
        assert_fault(
            client
                .put_machine_config(&MachineConfig::new(count, 128))
                .await,
            "PUT",
            "/machine-config",
            vcpu,
        );
    }
    let smt_odd = MachineConfig {
        smt: Some(true),
        ..MachineConfig::new(3, 128)
    };
    assert_fault(
        client.put_machine_config(&smt_odd).await,
        "PUT",
        "/machine-config",
        vcpu,
    );
    assert_fault(
        client.put_machine_config(&MachineConfig::new(1, 0)).await,
        "PUT",
        "/machine-config",
        "Machine config error: The memory size (MiB) is either 0, or not a multiple of the configured page size.",
    );
    // Nothing of the rejected requests was applied.
    let machine = client.machine_config().await.unwrap();
    assert_eq!(
        machine,
        MachineConfig {
            smt: Some(false),
            track_dirty_pages: Some(false),
            huge_pages: Some(firework_firecracker::models::HugePages::None),
            ..MachineConfig::new(1, 128)
        }
    );
}

#[tokio::test]
async fn boot_source_and_drive_rejections() {
    let emulator = Emulator::start(&[]).await;
    let client = emulator.client();
    let missing = emulator.dir.path().join("missing");
    let missing = missing.to_str().unwrap();
    assert_fault(
        client
            .put_boot_source(&BootSource {
                kernel_image_path: missing.into(),
                boot_args: None,
                initrd_path: None,
            })
            .await,
        "PUT",
        "/boot-source",
        "Boot source error: The kernel file cannot be opened: No such file or directory (os error 2)",
    );
    assert_fault(
        client
            .put_boot_source(&BootSource {
                kernel_image_path: emulator.kernel(),
                boot_args: Some("a".repeat(2048)),
                initrd_path: None,
            })
            .await,
        "PUT",
        "/boot-source",
        "Boot source error: The kernel command line is invalid: Inserting string would make command line too long.",
    );
    assert_fault(
        client
            .put_drive(&Drive::from_file("rootfs", missing, true, false))
            .await,
        "PUT",
        "/drives/rootfs",
        &format!(
            "Drive config error: Unable to create the virtio block device: Virtio backend error: Error manipulating the backing file: No such file or directory (os error 2) {missing}"
        ),
    );
    assert_fault(
        client
            .put_drive(&Drive::from_file(
                "root-fs",
                &emulator.disk("a"),
                true,
                false,
            ))
            .await,
        "PUT",
        "/drives/root-fs",
        "API Resource IDs can only contain alphanumeric characters and underscores.",
    );
    client
        .put_drive(&Drive::from_file(
            "rootfs",
            &emulator.disk("a"),
            true,
            false,
        ))
        .await
        .unwrap();
    assert_fault(
        client
            .put_drive(&Drive::from_file("other", &emulator.disk("b"), true, false))
            .await,
        "PUT",
        "/drives/other",
        "Drive config error: A root block device already exists!",
    );
}

#[tokio::test]
async fn network_logger_metrics_rejections() {
    let emulator = Emulator::start(&[]).await;
    let client = emulator.client();
    assert_fault(
        client
            .put_network_interface(&NetworkInterface::new("eth0", "fwnotatap0"))
            .await,
        "PUT",
        "/network-interfaces/eth0",
        "Network config error: Could not create the network device: Open tap device failed: Error while creating ifreq structure: Operation not permitted (os error 1). Invalid TUN/TAP Backend provided by fwnotatap0. Check our documentation on setting up the network devices.",
    );
    let bad_mac = NetworkInterface {
        guest_mac: Some("06:00:zz:00:00:01".into()),
        ..NetworkInterface::new("eth0", "tap0")
    };
    assert_fault(
        client.put_network_interface(&bad_mac).await,
        "PUT",
        "/network-interfaces/eth0",
        "An error occurred when deserializing the json body of a request: The provided MAC address is invalid. at line 1 column 74.",
    );
    assert_fault(
        client
            .put_logger(&Logger {
                log_path: Some("/nonexistent-dir/fc.log".into()),
                ..Logger::default()
            })
            .await,
        "PUT",
        "/logger",
        "Logger error: Failed to open target file: No such file or directory (os error 2)",
    );
    let metrics = Metrics {
        metrics_path: emulator.dir.path().join("m").to_str().unwrap().into(),
    };
    client.put_metrics(&metrics).await.unwrap();
    assert_fault(
        client.put_metrics(&metrics).await,
        "PUT",
        "/metrics",
        "Metrics error: Cannot initialize the metrics system due to bad user input: Reinitialization of metrics not allowed.",
    );
}

#[tokio::test]
async fn action_state_rejections() {
    let emulator = Emulator::start(&[]).await;
    let client = emulator.client();
    let before = "The requested operation is not supported before starting the microVM.";
    assert_fault(client.flush_metrics().await, "PUT", "/actions", before);
    assert_fault(client.send_ctrl_alt_del().await, "PUT", "/actions", before);
    assert_fault(
        client.instance_start().await,
        "PUT",
        "/actions",
        "Start microvm error: Cannot start microvm without kernel configuration.",
    );
    client
        .put_boot_source(&BootSource {
            kernel_image_path: emulator.kernel(),
            boot_args: None,
            initrd_path: None,
        })
        .await
        .unwrap();
    client.instance_start().await.unwrap();
    let after = "The requested operation is not supported after starting the microVM.";
    assert_fault(client.instance_start().await, "PUT", "/actions", after);
    assert_fault(
        client.put_machine_config(&MachineConfig::new(1, 128)).await,
        "PUT",
        "/machine-config",
        after,
    );
    assert_fault(
        client.put_logger(&Logger::default()).await,
        "PUT",
        "/logger",
        after,
    );
    assert_fault(
        client
            .put_drive(&Drive::from_file("data", &emulator.disk("d"), false, false))
            .await,
        "PUT",
        "/drives/data",
        "PCI is not enabled",
    );
}

#[tokio::test]
async fn injected_start_failure_is_typed() {
    let emulator = Emulator::start(&[("FC_EMULATOR_FAIL_INSTANCE_START", "no KVM")]).await;
    let client = emulator.client();
    client
        .put_boot_source(&BootSource {
            kernel_image_path: emulator.kernel(),
            boot_args: None,
            initrd_path: None,
        })
        .await
        .unwrap();
    let error = client.instance_start().await.unwrap_err();
    assert_eq!(error.status(), Some(400));
    assert_eq!(error.fault_message(), Some("Start microvm error: no KVM"));
    assert_eq!(
        error.to_string(),
        "PUT /actions rejected with status 400: Start microvm error: no KVM"
    );
}

#[tokio::test]
async fn connect_error_is_typed() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("absent.sock");
    let error = FirecrackerClient::new(&socket)
        .instance_info()
        .await
        .unwrap_err();
    match error {
        FirecrackerError::Connect {
            socket: got,
            source,
        } => {
            assert_eq!(got, socket);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected a connect error, got {other:?}"),
    }
}

#[tokio::test]
async fn slow_api_times_out() {
    let emulator = Emulator::start(&[("FC_EMULATOR_API_DELAY_MS", "3000")]).await;
    let client = emulator.client().with_timeout(Duration::from_millis(200));
    match client.instance_info().await.unwrap_err() {
        FirecrackerError::Timeout {
            method,
            path,
            timeout,
            ..
        } => {
            assert_eq!(method.as_str(), "GET");
            assert_eq!(path, "/");
            assert_eq!(timeout, Duration::from_millis(200));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
}

#[tokio::test]
async fn wait_ignores_stale_socket_file() {
    let dir = tempfile::tempdir().unwrap();
    let stale = dir.path().join("stale.sock");
    // A socket file whose listener is gone: it exists but refuses connections.
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    assert!(stale.exists());
    let error = wait_for_socket(&stale, Instant::now() + Duration::from_millis(100))
        .await
        .unwrap_err();
    let WaitError::Timeout {
        socket, last_error, ..
    } = error;
    assert_eq!(socket, stale);
    assert_eq!(last_error.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[tokio::test]
async fn pause_snapshot_and_restore() {
    use firework_firecracker::models::{
        MemoryBackend, MemoryBackendType, SnapshotCreateParams, SnapshotLoadParams,
    };

    let source = Emulator::start(&[]).await;
    let client = source.client();
    client
        .put_boot_source(&BootSource {
            kernel_image_path: source.kernel(),
            boot_args: None,
            initrd_path: None,
        })
        .await
        .unwrap();
    client.instance_start().await.unwrap();
    let snapshot = SnapshotCreateParams {
        snapshot_path: source.dir.path().join("vm.snap").to_str().unwrap().into(),
        mem_file_path: source.dir.path().join("vm.mem").to_str().unwrap().into(),
        snapshot_type: None,
    };
    let error = client.create_snapshot(&snapshot).await.unwrap_err();
    assert_eq!(
        error.fault_message(),
        Some(
            "Create snapshot error: Cannot save the microVM state: Operation not allowed: save/restore unavailable while running"
        )
    );
    client.pause().await.unwrap();
    assert_eq!(
        client.instance_info().await.unwrap().state,
        InstanceState::Paused
    );
    client.create_snapshot(&snapshot).await.unwrap();
    client.resume().await.unwrap();
    assert_eq!(
        client.instance_info().await.unwrap().state,
        InstanceState::Running
    );

    let target = Emulator::start(&[]).await;
    let restored = target.client();
    restored
        .load_snapshot(&SnapshotLoadParams {
            snapshot_path: snapshot.snapshot_path.clone(),
            mem_backend: MemoryBackend {
                backend_type: MemoryBackendType::File,
                backend_path: snapshot.mem_file_path.clone(),
            },
            track_dirty_pages: None,
            resume_vm: Some(true),
            network_overrides: Vec::new(),
        })
        .await
        .unwrap();
    assert_eq!(
        restored.instance_info().await.unwrap().state,
        InstanceState::Running
    );
    let config = restored.vm_config().await.unwrap();
    assert_eq!(config["machine-config"]["mem_size_mib"], 128);
}

#[tokio::test]
async fn vsock_and_mmds_calls() {
    use firework_firecracker::models::Vsock;

    let emulator = Emulator::start(&[]).await;
    let client = emulator.client();
    let uds_path = emulator.dir.path().join("v.sock");
    let vsock = Vsock {
        guest_cid: 3,
        uds_path: uds_path.to_str().unwrap().into(),
    };
    client.put_vsock(&vsock).await.unwrap();
    assert!(
        uds_path.exists(),
        "Firecracker binds the vsock socket at PUT time"
    );
    client
        .put_mmds(&serde_json::json!({"latest": {"meta-data": {"id": "a"}}}))
        .await
        .unwrap();

    let other = Emulator::start(&[]).await;
    let error = other.client().put_vsock(&vsock).await.unwrap_err();
    assert_eq!(
        error.fault_message(),
        Some(
            "Vsock config error: Cannot create backend for vsock device: Error binding to the host-side Unix socket: Address in use (os error 98)"
        )
    );
}
