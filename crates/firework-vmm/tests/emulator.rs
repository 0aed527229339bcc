//! The runtime against real processes of the Firecracker API emulator (`fc-emulator`).

mod common;

use std::os::unix::net::UnixListener;
use std::time::Duration;

use common::{Fixture, processes_naming, wait_until};
use firework_vmm::process::ProcessIdentity;
use firework_vmm::record::VmRecord;
use firework_vmm::{RecordState, StopStep, VmEvent, VmRuntime, VmmError};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launch_configure_stop() {
    let Some(fx) = Fixture::new() else { return };
    let (runtime, _events, report) = VmRuntime::open(fx.config()).await.unwrap();
    assert!(report.adopted.is_empty());
    assert!(report.cleaned.is_empty());

    let status = runtime.start(fx.spec("web")).await.unwrap();
    let pid = status.pid.unwrap();
    fx.guard.track(pid);
    assert_eq!(status.state, RecordState::Running);
    assert_eq!(status.generation, 1);
    assert!(status.socket_path.exists());

    let record_path = fx.state_dir().join("vms/web/record.json");
    let record = VmRecord::read("web", &record_path).unwrap();
    assert_eq!(record.state, RecordState::Running);
    assert_eq!(record.spec, fx.spec("web"));
    assert_eq!(record.spec_hash, fx.spec("web").hash());
    assert_eq!(record.process, Some(ProcessIdentity::of(pid).unwrap()));

    let log = std::fs::read_to_string(&status.log_path).unwrap();
    assert!(log.contains("Running Firecracker v1.16.1"), "{log}");
    assert!(log.contains("\"/boot-source\""), "{log}");
    assert!(log.contains("InstanceStart"), "{log}");

    let again = runtime.start(fx.spec("web")).await.unwrap_err();
    assert!(
        matches!(again, VmmError::AlreadyRunning { ref service, pid: p, .. } if service == "web" && p == pid),
        "{again:?}"
    );

    let stop = runtime.stop("web").await.unwrap().unwrap();
    assert_eq!(stop.step, StopStep::CtrlAltDel);
    assert_eq!(stop.exit.unwrap().code, Some(0));
    assert!(!status.socket_path.exists());
    assert!(ProcessIdentity::of(pid).is_err() || record.process.unwrap().has_ended());
    let record = VmRecord::read("web", &record_path).unwrap();
    assert_eq!(record.state, RecordState::Stopped);
    assert!(status.log_path.exists(), "the log survives a stop");

    assert_eq!(runtime.stop("web").await.unwrap(), None);
    assert_eq!(runtime.stop("never-started").await.unwrap(), None);

    let second = runtime.start(fx.spec("web")).await.unwrap();
    fx.guard.track(second.pid.unwrap());
    assert_eq!(second.generation, 2);
    runtime.delete("web").await.unwrap();
    assert!(!fx.state_dir().join("vms/web").exists());
    assert!(runtime.status("web").await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_adopts_twenty_vms() {
    let Some(fx) = Fixture::new() else { return };
    let (runtime, _events, _) = VmRuntime::open(fx.config()).await.unwrap();
    let mut before = Vec::new();
    for i in 0..20 {
        let status = runtime.start(fx.spec(&format!("svc{i:02}"))).await.unwrap();
        fx.guard.track(status.pid.unwrap());
        before.push((status.service, status.pid.unwrap()));
    }
    drop(runtime);

    let (runtime, mut events, report) = VmRuntime::open(fx.config()).await.unwrap();
    assert!(report.cleaned.is_empty(), "{:?}", report.cleaned);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let adopted: Vec<(String, i32)> = report
        .adopted
        .iter()
        .map(|s| (s.service.clone(), s.pid.unwrap()))
        .collect();
    assert_eq!(adopted, before);
    for (service, pid) in &before {
        let record = VmRecord::read(
            service,
            &fx.state_dir().join(format!("vms/{service}/record.json")),
        )
        .unwrap();
        assert!(
            record
                .process
                .unwrap()
                .check(&record.cmdline_socket, &record.vm_id)
                .is_ours()
        );
        assert_eq!(record.process.unwrap().pid, *pid);
    }
    let listed = runtime.list().await;
    assert_eq!(listed.len(), 20);
    assert!(listed.iter().all(|s| s.state == RecordState::Running));

    // An adopted VM is stopped like a spawned one; its exit status is unknown.
    let stop = runtime.stop("svc00").await.unwrap().unwrap();
    assert_eq!(stop.step, StopStep::CtrlAltDel);
    assert_eq!(stop.exit.unwrap().code, None);

    // An adopted VM that dies is reported.
    let (_, pid) = before[1];
    kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
    let event = tokio::time::timeout(EVENT_TIMEOUT, events.recv())
        .await
        .expect("no crash event")
        .unwrap();
    let VmEvent::Crashed(crash) = event;
    assert_eq!(crash.service, "svc01");
    assert_eq!(crash.pid, pid);
    assert_eq!(crash.exit.code, None);
    assert_eq!(crash.exit.signal, None);
    assert!(
        crash.log_tail.contains("InstanceStart"),
        "{}",
        crash.log_tail
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_detected_and_reported() {
    let Some(fx) = Fixture::new() else { return };
    let (runtime, mut events, _) = VmRuntime::open(fx.config()).await.unwrap();
    let status = runtime.start(fx.spec("web")).await.unwrap();
    let pid = status.pid.unwrap();
    fx.guard.track(pid);

    kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
    let event = tokio::time::timeout(EVENT_TIMEOUT, events.recv())
        .await
        .expect("no crash event")
        .unwrap();
    let VmEvent::Crashed(crash) = event;
    assert_eq!(crash.service, "web");
    assert_eq!(crash.vm_id, "web-vm");
    assert_eq!(crash.pid, pid);
    assert_eq!(crash.exit.signal, Some(9));
    assert_eq!(crash.exit.code, None);
    assert!(
        crash.log_tail.contains("Running Firecracker"),
        "{}",
        crash.log_tail
    );

    let after = runtime.status("web").await.unwrap();
    assert_eq!(after.state, RecordState::Exited);
    assert!(
        !status.socket_path.exists(),
        "socket of the dead vm was not removed"
    );
    assert!(status.log_path.exists());
    assert_eq!(runtime.stop("web").await.unwrap(), None);

    // The crashed service starts again.
    let restarted = runtime.start(fx.spec("web")).await.unwrap();
    fx.guard.track(restarted.pid.unwrap());
    assert_eq!(restarted.generation, 2);
    runtime.stop("web").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_socket_does_not_block_start() {
    let Some(fx) = Fixture::new() else { return };
    let (runtime, _events, _) = VmRuntime::open(fx.config()).await.unwrap();
    let status = runtime.start(fx.spec("web")).await.unwrap();
    let pid = status.pid.unwrap();
    fx.guard.track(pid);
    drop(runtime);

    // The VM dies while no runtime watches it; Firecracker leaves its socket behind.
    kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
    assert!(
        wait_until(EVENT_TIMEOUT, || ProcessIdentity::of(pid)
            .map(|_| false)
            .unwrap_or(true)
            || firework_vmm::process::read_stat(pid)
                .map(|s| s.state == 'Z')
                .unwrap_or(true))
        .await
    );
    assert!(status.socket_path.exists());

    let (runtime, _events, report) = VmRuntime::open(fx.config()).await.unwrap();
    assert!(report.adopted.is_empty());
    assert_eq!(report.cleaned.len(), 1);
    assert_eq!(report.cleaned[0].service, "web");
    assert_eq!(report.cleaned[0].previous_state, RecordState::Running);
    assert!(!status.socket_path.exists(), "scan left the stale socket");

    // A stale socket that appears outside the runtime is removed at start as well.
    drop(UnixListener::bind(&status.socket_path).unwrap());
    let restarted = runtime.start(fx.spec("web")).await.unwrap();
    fx.guard.track(restarted.pid.unwrap());
    assert_eq!(restarted.state, RecordState::Running);
    runtime.stop("web").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_socket_never_removed() {
    let Some(fx) = Fixture::new() else { return };
    let (runtime, _events, _) = VmRuntime::open(fx.config()).await.unwrap();
    let socket = fx.state_dir().join("vms/web/firecracker.socket");
    std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
    let _listener = UnixListener::bind(&socket).unwrap();

    let error = runtime.start(fx.spec("web")).await.unwrap_err();
    match &error {
        VmmError::SocketInUse {
            service,
            path,
            owner,
        } => {
            assert_eq!(service, "web");
            assert_eq!(path, &socket);
            assert_eq!(owner, "a process accepts connections on it");
        }
        other => panic!("expected SocketInUse, got {other:?}"),
    }
    assert!(socket.exists());
    assert!(
        processes_naming(&socket).is_empty(),
        "a process was spawned"
    );
    assert_eq!(
        runtime.status("web").await.unwrap().state,
        RecordState::Exited
    );

    // Another emulator that owns the path, started outside the runtime, is left alone too.
    drop(_listener);
    std::fs::remove_file(&socket).unwrap();
    let mut foreign = std::process::Command::new(&fx.emulator)
        .arg("--api-sock")
        .arg(&socket)
        .arg("--id")
        .arg("foreign")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    fx.guard.track(foreign.id() as i32);
    assert!(
        wait_until(EVENT_TIMEOUT, || std::os::unix::net::UnixStream::connect(
            &socket
        )
        .is_ok())
        .await
    );
    let error = runtime.start(fx.spec("web")).await.unwrap_err();
    assert!(matches!(error, VmmError::SocketInUse { .. }), "{error:?}");
    assert!(socket.exists());
    assert_eq!(
        foreign.try_wait().unwrap(),
        None,
        "the foreign process was touched"
    );
    foreign.kill().unwrap();
    foreign.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reused_pid_not_adopted() {
    let Some(fx) = Fixture::new() else { return };
    let (runtime, _events, _) = VmRuntime::open(fx.config()).await.unwrap();
    let status = runtime.start(fx.spec("web")).await.unwrap();
    let pid = status.pid.unwrap();
    fx.guard.track(pid);
    drop(runtime);

    // Fake the record so that it names the live pid with another start time.
    let record_path = fx.state_dir().join("vms/web/record.json");
    let mut record = VmRecord::read("web", &record_path).unwrap();
    let real = record.process.unwrap();
    record.process = Some(ProcessIdentity {
        pid: real.pid,
        start_time_ticks: real.start_time_ticks + 1,
    });
    record.write_atomic(&record_path).unwrap();

    let (_runtime, _events, report) = VmRuntime::open(fx.config()).await.unwrap();
    assert!(report.adopted.is_empty(), "{:?}", report.adopted);
    assert_eq!(report.cleaned.len(), 1);
    assert_eq!(
        report.cleaned[0].reason,
        format!(
            "process {}: pid reused by a process started at tick {}",
            pid, real.start_time_ticks
        )
    );
    // The process behind the reused pid is not ours, so it must survive and keep its socket.
    assert!(
        !real.has_ended(),
        "the process behind the reused pid was killed"
    );
    assert!(
        status.socket_path.exists(),
        "the live process's socket was removed"
    );
    kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_cap_rotates_live_log() {
    let Some(fx) = Fixture::new() else { return };
    let mut config = fx.config();
    config.log_max_bytes = 512;
    config.log_check_interval = Duration::from_millis(50);
    let (runtime, _events, _) = VmRuntime::open(config).await.unwrap();
    let status = runtime.start(fx.spec("web")).await.unwrap();
    fx.guard.track(status.pid.unwrap());
    let rotated = status.log_path.with_extension("log.1");
    assert!(
        wait_until(EVENT_TIMEOUT, || rotated.exists()).await,
        "log never rotated"
    );
    let live = std::fs::metadata(&status.log_path).unwrap().len();
    assert!(live <= 512, "live log has {live} bytes");
    runtime.stop("web").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_start_killed_at_scan() {
    let Some(fx) = Fixture::new() else { return };
    let (runtime, _events, _) = VmRuntime::open(fx.config()).await.unwrap();
    runtime.start(fx.spec("recorded")).await.unwrap();
    runtime.start(fx.spec("unrecorded")).await.unwrap();
    for status in runtime.list().await {
        fx.guard.track(status.pid.unwrap());
    }
    drop(runtime);

    // "recorded": the agent stopped after recording the pid but before InstanceStart
    // finished. "unrecorded": it stopped between the spawn and the record write.
    let record_path = |service: &str| fx.state_dir().join(format!("vms/{service}/record.json"));
    let mut recorded = VmRecord::read("recorded", &record_path("recorded")).unwrap();
    recorded.state = RecordState::Starting;
    recorded.write_atomic(&record_path("recorded")).unwrap();
    let mut unrecorded = VmRecord::read("unrecorded", &record_path("unrecorded")).unwrap();
    let unrecorded_process = unrecorded.process.take().unwrap();
    unrecorded.state = RecordState::Starting;
    unrecorded.write_atomic(&record_path("unrecorded")).unwrap();

    let (_runtime, _events, report) = VmRuntime::open(fx.config()).await.unwrap();
    assert!(report.adopted.is_empty(), "{:?}", report.adopted);
    let reasons: Vec<(String, String)> = report
        .cleaned
        .iter()
        .map(|c| (c.service.clone(), c.reason.clone()))
        .collect();
    assert_eq!(
        reasons,
        vec![
            (
                "recorded".to_owned(),
                format!(
                    "process {} was killed because the agent stopped during the start phase",
                    recorded.process.unwrap().pid
                )
            ),
            (
                "unrecorded".to_owned(),
                format!(
                    "unrecorded process {} naming the vm socket was killed",
                    unrecorded_process.pid
                )
            ),
        ]
    );
    assert!(recorded.process.unwrap().has_ended());
    assert!(unrecorded_process.has_ended());
    assert!(!recorded.socket_path.exists());
    assert!(!unrecorded.socket_path.exists());
}
