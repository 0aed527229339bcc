//! The scan at `VmRuntime::open` on records that cannot be adopted, without any VM process.

use std::path::Path;

use firework_vmm::{JailerConfig, RuntimeConfig, VmRuntime, VmmError};

#[tokio::test]
async fn invalid_record_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let service_dir = dir.path().join("vms/web");
    std::fs::create_dir_all(&service_dir).unwrap();
    std::fs::write(service_dir.join("record.json"), b"{\"format\":1").unwrap();
    std::fs::create_dir_all(dir.path().join("vms/bad name")).unwrap();

    let config = RuntimeConfig::new(dir.path(), "/usr/bin/firecracker");
    let (runtime, _events, report) = VmRuntime::open(config).await.unwrap();
    assert!(report.adopted.is_empty());
    assert!(report.cleaned.is_empty());
    assert_eq!(report.errors.len(), 2, "{:?}", report.errors);
    assert!(
        matches!(&report.errors[0], VmmError::InvalidSpec { service, .. } if service == "bad name"),
        "{:?}",
        report.errors[0]
    );
    assert!(
        matches!(&report.errors[1], VmmError::RecordInvalid { service, path, .. }
            if service == "web" && path == &service_dir.join("record.json")),
        "{:?}",
        report.errors[1]
    );
    assert_eq!(
        std::fs::read(service_dir.join("record.json")).unwrap(),
        b"{\"format\":1"
    );
    assert!(runtime.list().await.is_empty());
}

#[tokio::test]
async fn missing_firecracker_in_jailer_mode() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = RuntimeConfig::new(dir.path(), dir.path().join("no-firecracker"));
    config.jailer = Some(JailerConfig {
        jailer_bin: "/usr/bin/jailer".into(),
        uid: 1000,
        gid: 1000,
        chroot_base_dir: dir.path().join("jail"),
        cgroup: None,
    });
    let error = VmRuntime::open(config).await.unwrap_err();
    match &error {
        VmmError::RuntimeIo {
            operation, path, ..
        } => {
            assert_eq!(*operation, "resolve firecracker binary");
            assert_eq!(path, &dir.path().join("no-firecracker"));
        }
        other => panic!("expected RuntimeIo, got {other:?}"),
    }
    assert_eq!(
        error.to_string(),
        format!(
            "failed to resolve firecracker binary {}",
            dir.path().join("no-firecracker").display()
        )
    );
}

#[tokio::test]
async fn invalid_spec_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = RuntimeConfig::new(dir.path(), "/usr/bin/firecracker");
    let (runtime, _events, _) = VmRuntime::open(config).await.unwrap();
    let spec = firework_vmm::VmSpec {
        service: "../etc".to_owned(),
        vm_id: "x".to_owned(),
        kernel_path: "/k".into(),
        rootfs_path: "/r".into(),
        read_only: true,
        vcpus: 1,
        memory_mib: 128,
        kernel_args: String::new(),
        network: None,
        log_path: None,
    };
    let error = runtime.start(spec).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid vm spec for service \"../etc\": service name must start with an ASCII letter or digit"
    );
    let entries: Vec<_> = std::fs::read_dir(dir.path().join("vms")).unwrap().collect();
    assert!(entries.is_empty());
    assert!(!Path::new("/etc/record.json").exists());
}
