//! Jailer mode: the paths of a VM's jail, the jailer's command line, and the hard links or
//! copies that put the kernel and root drive inside the jail.
//!
//! Jailer conventions (Firecracker v1.16): the jail root is
//! `<chroot_base>/<exec_name>/<id>/root`, where `<exec_name>` is the file name of the
//! canonicalized `--exec-file`; Firecracker runs with that root as `/`, so its default API
//! socket `/run/firecracker.socket` appears on the host under the jail root, and every path
//! given through the API is a path inside the jail. The jailer already passes `--id` to
//! Firecracker. Cleanup of the jail and the cgroup is the caller's job.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Uid};

use crate::spec::VmSpec;

/// Socket path inside the jail, Firecracker's default `--api-sock`.
pub const JAILED_SOCKET: &str = "/run/firecracker.socket";
/// Kernel image path inside the jail.
pub const JAILED_KERNEL: &str = "/vmlinux";
/// Root drive path inside the jail.
pub const JAILED_ROOTFS: &str = "/rootfs.img";

/// Settings of jailer mode; without them the runtime spawns Firecracker directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JailerConfig {
    /// The `jailer` binary.
    pub jailer_bin: PathBuf,
    /// User id Firecracker runs as.
    pub uid: u32,
    /// Group id Firecracker runs as.
    pub gid: u32,
    /// `--chroot-base-dir`; must exist.
    pub chroot_base_dir: PathBuf,
    /// cgroup v2 limits derived from each VM's vCPUs and memory; `None` sets no limits.
    pub cgroup: Option<CgroupLimits>,
}

/// cgroup v2 limits the jailer writes for each VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupLimits {
    /// Mount point of the cgroup v2 hierarchy, normally `/sys/fs/cgroup`.
    pub cgroup_root: PathBuf,
    /// `--parent-cgroup`, relative to `cgroup_root`; the VM's cgroup is `<parent>/<vm_id>`.
    /// The parent must exist with the `cpu` and `memory` controllers enabled for children.
    pub parent_cgroup: String,
    /// Memory allowed on top of the guest memory for Firecracker itself and the page cache of
    /// its drives, in MiB.
    // NOTE: an estimate; Firecracker v1.16 states at most 5 MiB of VMM overhead, but cached
    // drive pages are charged to the same cgroup.
    pub memory_overhead_mib: u32,
}

/// cgroup v2 `cpu.max` period in microseconds used for VM limits.
pub const CPU_MAX_PERIOD_US: u64 = 100_000;

/// The host-side paths of one VM's jail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JailLayout {
    /// `<chroot_base>/<exec_name>/<vm_id>`, removed after the VM ends.
    pub jail_dir: PathBuf,
    /// `<jail_dir>/root`, the VM's `/`.
    pub root: PathBuf,
    /// The API socket as seen from the host.
    pub host_socket: PathBuf,
    /// `<cgroup_root>/<parent>/<vm_id>` when cgroup limits are set.
    pub cgroup_dir: Option<PathBuf>,
}

impl JailLayout {
    /// Computes the jail paths for `vm_id`; `exec_name` is the file name of the canonicalized
    /// Firecracker binary.
    pub fn new(config: &JailerConfig, exec_name: &str, vm_id: &str) -> JailLayout {
        let jail_dir = config.chroot_base_dir.join(exec_name).join(vm_id);
        let root = jail_dir.join("root");
        let host_socket = in_jail(&root, Path::new(JAILED_SOCKET));
        let cgroup_dir = config
            .cgroup
            .as_ref()
            .map(|limits| limits.cgroup_root.join(&limits.parent_cgroup).join(vm_id));
        JailLayout {
            jail_dir,
            root,
            host_socket,
            cgroup_dir,
        }
    }

    /// Host path of an absolute path inside the jail.
    pub fn host_path(&self, jailed: &str) -> PathBuf {
        in_jail(&self.root, Path::new(jailed))
    }
}

fn in_jail(root: &Path, jailed: &Path) -> PathBuf {
    root.join(jailed.strip_prefix("/").unwrap_or(jailed))
}

/// Returns the file name of the canonicalized Firecracker binary, which the jailer uses as
/// the middle directory of the jail path.
pub fn exec_name(firecracker_bin: &Path) -> io::Result<String> {
    let real = fs::canonicalize(firecracker_bin)?;
    real.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} has no UTF-8 file name", real.display()),
            )
        })
}

/// Builds the jailer arguments: jailer flags, then `--` and the Firecracker flags.
pub fn jailer_args(
    config: &JailerConfig,
    firecracker_bin: &Path,
    spec: &VmSpec,
) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = vec![
        "--id".into(),
        spec.vm_id.clone().into(),
        "--exec-file".into(),
        firecracker_bin.into(),
        "--uid".into(),
        config.uid.to_string().into(),
        "--gid".into(),
        config.gid.to_string().into(),
        "--chroot-base-dir".into(),
        config.chroot_base_dir.clone().into(),
    ];
    if let Some(limits) = &config.cgroup {
        let quota = u64::from(spec.vcpus) * CPU_MAX_PERIOD_US;
        let memory_bytes =
            (u64::from(spec.memory_mib) + u64::from(limits.memory_overhead_mib)) << 20;
        args.extend([
            "--cgroup-version".into(),
            "2".into(),
            "--parent-cgroup".into(),
            limits.parent_cgroup.clone().into(),
            "--cgroup".into(),
            format!("cpu.max={quota} {CPU_MAX_PERIOD_US}").into(),
            "--cgroup".into(),
            format!("memory.max={memory_bytes}").into(),
        ]);
    }
    // The jailer passes --id itself; a second --id would make Firecracker exit with 153.
    args.extend(["--".into(), "--api-sock".into(), JAILED_SOCKET.into()]);
    args
}

/// How a resource got into the jail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Hard link to the original (same inode).
    HardLinked,
    /// Copy, because the hard link failed (another file system, or a protected link).
    Copied,
}

/// Puts `source` at `dest` inside the jail: a hard link where possible, else a copy. Then
/// makes it usable by `uid:gid`: if the file's mode does not already grant the needed
/// access, its owner becomes `uid:gid`, which for a hard link also changes the original.
pub fn place_in_jail(
    source: &Path,
    dest: &Path,
    uid: u32,
    gid: u32,
    writable: bool,
) -> io::Result<Placement> {
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent)?;
    }
    match fs::remove_file(dest) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let placement = match fs::hard_link(source, dest) {
        Ok(()) => Placement::HardLinked,
        Err(e) => {
            tracing::debug!(source = %source.display(), error = %e, "hard link into jail failed, copying");
            fs::copy(source, dest)?;
            Placement::Copied
        }
    };
    let metadata = fs::metadata(dest)?;
    if !grants_access(&metadata, uid, gid, writable) {
        nix::unistd::chown(dest, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
            .map_err(io::Error::from)?;
    }
    Ok(placement)
}

fn grants_access(metadata: &fs::Metadata, uid: u32, gid: u32, writable: bool) -> bool {
    let mode = metadata.mode();
    let needed = if writable { 0o6 } else { 0o4 };
    let bits = if uid == 0 {
        return true;
    } else if metadata.uid() == uid {
        (mode >> 6) & 0o7
    } else if metadata.gid() == gid {
        (mode >> 3) & 0o7
    } else {
        mode & 0o7
    };
    bits & needed == needed
}

/// Removes the jail directory and the VM's cgroup; either may already be gone.
pub fn remove_jail(layout: &JailLayout) -> io::Result<()> {
    match fs::remove_dir_all(&layout.jail_dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if let Some(cgroup_dir) = &layout.cgroup_dir {
        // A cgroup directory is removed with rmdir once it has no processes; its control
        // files vanish with it.
        match fs::remove_dir(cgroup_dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn config(base: &Path, cgroup: bool) -> JailerConfig {
        JailerConfig {
            jailer_bin: "/usr/bin/jailer".into(),
            uid: 1234,
            gid: 1235,
            chroot_base_dir: base.to_owned(),
            cgroup: cgroup.then(|| CgroupLimits {
                cgroup_root: "/sys/fs/cgroup".into(),
                parent_cgroup: "firework".to_owned(),
                memory_overhead_mib: 64,
            }),
        }
    }

    fn spec() -> VmSpec {
        VmSpec {
            service: "web".to_owned(),
            vm_id: "web-3".to_owned(),
            kernel_path: "/images/vmlinux".into(),
            rootfs_path: "/images/rootfs.ext4".into(),
            read_only: false,
            vcpus: 2,
            memory_mib: 256,
            kernel_args: String::new(),
            network: None,
            log_path: None,
        }
    }

    #[test]
    fn layout_follows_jailer_conventions() {
        let layout = JailLayout::new(
            &config(Path::new("/srv/jailer"), true),
            "firecracker",
            "web-3",
        );
        assert_eq!(layout.jail_dir, Path::new("/srv/jailer/firecracker/web-3"));
        assert_eq!(layout.root, Path::new("/srv/jailer/firecracker/web-3/root"));
        assert_eq!(
            layout.host_socket,
            Path::new("/srv/jailer/firecracker/web-3/root/run/firecracker.socket")
        );
        assert_eq!(
            layout.host_path(JAILED_KERNEL),
            Path::new("/srv/jailer/firecracker/web-3/root/vmlinux")
        );
        assert_eq!(
            layout.cgroup_dir.as_deref(),
            Some(Path::new("/sys/fs/cgroup/firework/web-3"))
        );
    }

    #[test]
    fn args_without_cgroup() {
        let args = jailer_args(
            &config(Path::new("/srv/jailer"), false),
            Path::new("/usr/bin/firecracker"),
            &spec(),
        );
        let expected = [
            "--id",
            "web-3",
            "--exec-file",
            "/usr/bin/firecracker",
            "--uid",
            "1234",
            "--gid",
            "1235",
            "--chroot-base-dir",
            "/srv/jailer",
            "--",
            "--api-sock",
            "/run/firecracker.socket",
        ];
        assert_eq!(args, expected.map(std::ffi::OsString::from));
    }

    #[test]
    fn args_with_cgroup_limits() {
        let args = jailer_args(
            &config(Path::new("/srv/jailer"), true),
            Path::new("/usr/bin/firecracker"),
            &spec(),
        );
        let tail: Vec<_> = args[10..].iter().map(|a| a.to_str().unwrap()).collect();
        assert_eq!(
            tail,
            [
                "--cgroup-version",
                "2",
                "--parent-cgroup",
                "firework",
                "--cgroup",
                "cpu.max=200000 100000",
                "--cgroup",
                "memory.max=335544320",
                "--",
                "--api-sock",
                "/run/firecracker.socket",
            ]
        );
    }

    #[test]
    fn place_links_and_chowns_when_needed() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("rootfs.ext4");
        fs::write(&source, b"disk").unwrap();
        fs::set_permissions(&source, fs::Permissions::from_mode(0o600)).unwrap();
        let dest = dir.path().join("jail/root/rootfs.img");
        let placement = place_in_jail(&source, &dest, 1234, 1235, true);
        if !nix::unistd::Uid::effective().is_root() {
            eprintln!("skipping the ownership checks: chown needs root");
            return;
        }
        assert_eq!(placement.unwrap(), Placement::HardLinked);
        let meta = fs::metadata(&dest).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (1234, 1235));
        assert_eq!(meta.ino(), fs::metadata(&source).unwrap().ino());
    }

    #[test]
    fn place_keeps_owner_of_readable_file() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("vmlinux");
        fs::write(&source, b"kernel").unwrap();
        fs::set_permissions(&source, fs::Permissions::from_mode(0o644)).unwrap();
        let owner = fs::metadata(&source).unwrap().uid();
        let dest = dir.path().join("jail/root/vmlinux");
        place_in_jail(&source, &dest, 1234, 1235, false).unwrap();
        assert_eq!(fs::metadata(&dest).unwrap().uid(), owner);
        assert_eq!(fs::read(&dest).unwrap(), b"kernel");
    }

    #[test]
    fn remove_jail_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path(), true);
        if let Some(limits) = cfg.cgroup.as_mut() {
            limits.cgroup_root = dir.path().join("cgroup");
        }
        let layout = JailLayout::new(&cfg, "firecracker", "web-3");
        fs::create_dir_all(layout.root.join("run")).unwrap();
        fs::write(layout.root.join("vmlinux"), b"k").unwrap();
        fs::create_dir_all(layout.cgroup_dir.as_ref().unwrap()).unwrap();
        remove_jail(&layout).unwrap();
        assert!(!layout.jail_dir.exists());
        assert!(!layout.cgroup_dir.as_ref().unwrap().exists());
        assert!(dir.path().join("firecracker").exists());
        remove_jail(&layout).unwrap();
    }
}
