//! Jailer mode with a fake jailer that builds the jail and runs the emulator chrooted in it.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::Fixture;
use firework_vmm::record::{LaunchMode, VmRecord};
use firework_vmm::{CgroupLimits, JailerConfig, RecordState, RuntimeConfig, StopStep, VmRuntime};

const UID: u32 = 12345;
const GID: u32 = 12346;

struct JailFixture {
    fx: Fixture,
    base: PathBuf,
    cgroup_root: PathBuf,
    args_file: PathBuf,
}

impl JailFixture {
    fn new() -> Option<JailFixture> {
        if !nix::unistd::Uid::effective().is_root() {
            eprintln!("skipping: the fake jailer needs root for chroot, chown and mounts");
            return None;
        }
        let fx = Fixture::new()?;
        let base = fx.dir.path().join("jail");
        let cgroup_root = fx.dir.path().join("cgroup");
        std::fs::create_dir_all(&base).expect("create jail base directory");
        std::fs::create_dir_all(cgroup_root.join("firework")).expect("create parent cgroup");
        let args_file = fx.dir.path().join("jailer-args");
        Some(JailFixture {
            fx,
            base,
            cgroup_root,
            args_file,
        })
    }

    fn config(&self) -> RuntimeConfig {
        let mut config = self.fx.config();
        config.jailer = Some(JailerConfig {
            jailer_bin: Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake-jailer.sh"),
            uid: UID,
            gid: GID,
            chroot_base_dir: self.base.clone(),
            cgroup: Some(CgroupLimits {
                cgroup_root: self.cgroup_root.clone(),
                parent_cgroup: "firework".to_owned(),
                memory_overhead_mib: 64,
            }),
        });
        config.child_env = vec![
            ("FAKE_JAILER_ARGS".into(), self.args_file.clone().into()),
            ("FAKE_CGROUP_ROOT".into(), self.cgroup_root.clone().into()),
        ];
        config
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jailed_vm_layout_adoption_and_cleanup() {
    let Some(jf) = JailFixture::new() else { return };
    let fx = &jf.fx;
    let jail_dir = jf.base.join("fc-emulator/web-vm");
    let cgroup_dir = jf.cgroup_root.join("firework/web-vm");

    // A jail left by an earlier run with no live process is removed before the start.
    std::fs::create_dir_all(jail_dir.join("root/leftover")).unwrap();

    let (runtime, _events, _) = VmRuntime::open(jf.config()).await.unwrap();
    let status = runtime.start(fx.spec("web")).await.unwrap();
    fx.guard.track(status.pid.unwrap());
    assert_eq!(status.state, RecordState::Running);
    assert_eq!(
        status.socket_path,
        jail_dir.join("root/run/firecracker.socket")
    );
    assert!(status.socket_path.exists());
    assert!(!jail_dir.join("root/leftover").exists());

    let args = std::fs::read_to_string(&jf.args_file).unwrap();
    let expected = format!(
        "--id\nweb-vm\n--exec-file\n{}\n--uid\n{UID}\n--gid\n{GID}\n--chroot-base-dir\n{}\n\
         --cgroup-version\n2\n--parent-cgroup\nfirework\n--cgroup\ncpu.max=100000 100000\n\
         --cgroup\nmemory.max=201326592\n--\n--api-sock\n/run/firecracker.socket\n",
        fx.emulator.display(),
        jf.base.display()
    );
    assert_eq!(args, expected);

    // The kernel is readable by everyone, so it is hard-linked and keeps its owner. The
    // writable root drive is hard-linked and handed to the jail user.
    let kernel = std::fs::metadata(jail_dir.join("root/vmlinux")).unwrap();
    assert_eq!(kernel.ino(), std::fs::metadata(&fx.kernel).unwrap().ino());
    assert_eq!(kernel.uid(), 0);
    let rootfs = std::fs::metadata(jail_dir.join("root/rootfs.img")).unwrap();
    assert_eq!(rootfs.ino(), std::fs::metadata(&fx.rootfs).unwrap().ino());
    assert_eq!((rootfs.uid(), rootfs.gid()), (UID, GID));

    // Firecracker is configured with paths inside the jail.
    let log = std::fs::read_to_string(&status.log_path).unwrap();
    assert!(log.contains(r#""kernel_image_path":"/vmlinux""#), "{log}");
    assert!(log.contains(r#""path_on_host":"/rootfs.img""#), "{log}");
    assert!(cgroup_dir.exists());

    let record = VmRecord::read("web", &fx.state_dir().join("vms/web/record.json")).unwrap();
    assert_eq!(
        record.launch,
        LaunchMode::Jailer {
            jail_dir: jail_dir.clone(),
            cgroup_dir: Some(cgroup_dir.clone()),
        }
    );
    assert_eq!(record.cmdline_socket, Path::new("/run/firecracker.socket"));

    drop(runtime);
    let (runtime, _events, report) = VmRuntime::open(jf.config()).await.unwrap();
    assert_eq!(report.adopted.len(), 1, "{report:?}");
    assert_eq!(report.adopted[0].pid, status.pid);

    let stop = runtime.stop("web").await.unwrap().unwrap();
    assert_eq!(stop.step, StopStep::CtrlAltDel);
    assert!(!jail_dir.exists(), "jail left after stop");
    assert!(!cgroup_dir.exists(), "cgroup left after stop");
    assert!(jf.base.join("fc-emulator").exists());
    assert!(status.log_path.exists(), "the log survives a stop");
    // The host's /usr was mounted read-only inside the jail; it must be untouched.
    assert!(Path::new("/usr/bin").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jailed_crash_removes_jail() {
    let Some(jf) = JailFixture::new() else { return };
    let fx = &jf.fx;
    let mut config = jf.config();
    config
        .child_env
        .push(("FC_EMULATOR_CRASH_AFTER_MS".into(), "200".into()));
    let (runtime, mut events, _) = VmRuntime::open(config).await.unwrap();
    let status = runtime.start(fx.spec("crashy")).await.unwrap();
    fx.guard.track(status.pid.unwrap());
    let event = tokio::time::timeout(std::time::Duration::from_secs(10), events.recv())
        .await
        .expect("no crash event")
        .unwrap();
    let firework_vmm::VmEvent::Crashed(crash) = event;
    assert_eq!(crash.exit.code, Some(1));
    assert!(!jf.base.join("fc-emulator/crashy-vm").exists());
    assert!(!jf.cgroup_root.join("firework/crashy-vm").exists());
}
