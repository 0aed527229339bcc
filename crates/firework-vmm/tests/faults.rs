//! Every fault-injection mode of the emulator ends in a clear, typed error or event and
//! leaves no stray process or socket.

mod common;

use std::time::Duration;

use common::{Fixture, processes_naming};
use firework_firecracker::FirecrackerError;
use firework_vmm::{RecordState, RuntimeConfig, StopStep, VmEvent, VmRuntime, VmmError};

fn with_env(mut config: RuntimeConfig, pairs: &[(&str, &str)]) -> RuntimeConfig {
    config.child_env = pairs
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    config
}

/// Checks what a failed start must leave: no process naming the socket, no socket, and a
/// record in state `exited`.
async fn assert_clean_failure(fx: &Fixture, runtime: &VmRuntime, service: &str) {
    let socket = fx
        .state_dir()
        .join(format!("vms/{service}/firecracker.socket"));
    assert!(processes_naming(&socket).is_empty(), "stray process left");
    assert!(!socket.exists(), "socket {} left", socket.display());
    let status = runtime
        .status(service)
        .await
        .expect("record of the failed start");
    assert_eq!(status.state, RecordState::Exited);
    assert!(
        status.log_path.exists(),
        "the log of a failed start is kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_on_start_is_exited_early() {
    let Some(fx) = Fixture::new() else { return };
    let config = with_env(fx.config(), &[("FC_EMULATOR_EXIT_ON_START", "3")]);
    let (runtime, _events, _) = VmRuntime::open(config).await.unwrap();
    let error = runtime.start(fx.spec("web")).await.unwrap_err();
    match &error {
        VmmError::ExitedEarly {
            service,
            vm_id,
            operation,
            status,
            ..
        } => {
            assert_eq!(service, "web");
            assert_eq!(vm_id, "web-vm");
            assert_eq!(*operation, "waiting for the api socket");
            assert_eq!(status, "exit code 3");
        }
        other => panic!("expected ExitedEarly, got {other:?}"),
    }
    assert_clean_failure(&fx, &runtime, "web").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_instance_start_carries_fault_message() {
    let Some(fx) = Fixture::new() else { return };
    let config = with_env(fx.config(), &[("FC_EMULATOR_FAIL_INSTANCE_START", "boom")]);
    let (runtime, _events, _) = VmRuntime::open(config).await.unwrap();
    let error = runtime.start(fx.spec("web")).await.unwrap_err();
    match &error {
        VmmError::Api {
            service, operation, ..
        } => {
            assert_eq!(service, "web");
            assert_eq!(*operation, "PUT /actions InstanceStart");
        }
        other => panic!("expected Api, got {other:?}"),
    }
    assert_eq!(error.fault_message(), Some("Start microvm error: boom"));
    assert_clean_failure(&fx, &runtime, "web").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_api_times_out() {
    let Some(fx) = Fixture::new() else { return };
    let mut config = with_env(fx.config(), &[("FC_EMULATOR_API_DELAY_MS", "3000")]);
    config.api_timeout = Duration::from_millis(300);
    let (runtime, _events, _) = VmRuntime::open(config).await.unwrap();
    let error = runtime.start(fx.spec("web")).await.unwrap_err();
    match &error {
        VmmError::Api {
            operation, source, ..
        } => {
            assert_eq!(*operation, "PUT /machine-config");
            assert!(
                matches!(source.as_ref(), FirecrackerError::Timeout { timeout, .. } if *timeout == Duration::from_millis(300)),
                "{source:?}"
            );
        }
        other => panic!("expected Api, got {other:?}"),
    }
    assert_clean_failure(&fx, &runtime, "web").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_kernel_rejected_at_boot_source() {
    let Some(fx) = Fixture::new() else { return };
    let (runtime, _events, _) = VmRuntime::open(fx.config()).await.unwrap();
    let mut spec = fx.spec("web");
    spec.kernel_path = fx.dir.path().join("images/missing-vmlinux");
    let error = runtime.start(spec).await.unwrap_err();
    assert!(
        matches!(
            error,
            VmmError::Api {
                operation: "PUT /boot-source",
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        error.fault_message(),
        Some(
            "Boot source error: The kernel file cannot be opened: No such file or directory (os error 2)"
        )
    );
    assert_clean_failure(&fx, &runtime, "web").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_fault_setting_exits_early() {
    let Some(fx) = Fixture::new() else { return };
    let config = with_env(fx.config(), &[("FC_EMULATOR_CRASH_MODE", "boom")]);
    let (runtime, _events, _) = VmRuntime::open(config).await.unwrap();
    let error = runtime.start(fx.spec("web")).await.unwrap_err();
    match &error {
        VmmError::ExitedEarly { log_tail, .. } => {
            assert!(log_tail.contains("FC_EMULATOR_CRASH_MODE"), "{log_tail}");
        }
        other => panic!("expected ExitedEarly, got {other:?}"),
    }
    assert_clean_failure(&fx, &runtime, "web").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_after_start_reported_with_status() {
    let Some(fx) = Fixture::new() else { return };
    for (mode, code, signal) in [("exit:7", Some(7), None), ("sigkill", None, Some(9))] {
        let config = with_env(
            fx.config(),
            &[
                ("FC_EMULATOR_CRASH_AFTER_MS", "300"),
                ("FC_EMULATOR_CRASH_MODE", mode),
            ],
        );
        let (runtime, mut events, _) = VmRuntime::open(config).await.unwrap();
        let status = runtime.start(fx.spec("web")).await.unwrap();
        fx.guard.track(status.pid.unwrap());
        let event = tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .expect("no crash event")
            .unwrap();
        let VmEvent::Crashed(crash) = event;
        assert_eq!(crash.exit.code, code, "mode {mode}");
        assert_eq!(crash.exit.signal, signal, "mode {mode}");
        assert!(!status.socket_path.exists(), "mode {mode}: socket left");
        assert!(processes_naming(&status.socket_path).is_empty());
        assert_eq!(
            runtime.status("web").await.unwrap().state,
            RecordState::Exited
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignored_ctrl_alt_del_escalates_to_sigterm() {
    let Some(fx) = Fixture::new() else { return };
    let mut config = with_env(fx.config(), &[("FC_EMULATOR_IGNORE_CTRL_ALT_DEL", "1")]);
    config.stop.ctrl_alt_del_grace = Duration::from_millis(300);
    let (runtime, mut events, _) = VmRuntime::open(config).await.unwrap();
    let status = runtime.start(fx.spec("web")).await.unwrap();
    fx.guard.track(status.pid.unwrap());
    let report = runtime.stop("web").await.unwrap().unwrap();
    assert_eq!(report.step, StopStep::Sigterm);
    assert_eq!(report.exit.unwrap().signal, Some(15));
    assert!(!status.socket_path.exists());
    assert!(processes_naming(&status.socket_path).is_empty());
    // A requested stop is not a crash.
    assert!(events.try_recv().is_err());
}
