//! The file systems PID 1 mounts before it starts the service.

use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use nix::mount::MsFlags;

/// One file system to mount when its target is not a mount point yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MountSpec {
    pub source: &'static str,
    pub target: &'static str,
    pub fstype: &'static str,
    pub flags: MsFlags,
    pub data: Option<&'static str>,
}

const NOSUID_NODEV: MsFlags = MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV);
const NOSUID_NODEV_NOEXEC: MsFlags = NOSUID_NODEV.union(MsFlags::MS_NOEXEC);

/// The mounts, in order: parents before children, `/proc` first so that later steps can
/// read `/proc/self/mountinfo`.
pub const STANDARD_MOUNTS: [MountSpec; 7] = [
    MountSpec {
        source: "proc",
        target: "/proc",
        fstype: "proc",
        flags: NOSUID_NODEV_NOEXEC,
        data: None,
    },
    MountSpec {
        source: "sysfs",
        target: "/sys",
        fstype: "sysfs",
        flags: NOSUID_NODEV_NOEXEC,
        data: None,
    },
    MountSpec {
        source: "devtmpfs",
        target: "/dev",
        fstype: "devtmpfs",
        flags: MsFlags::MS_NOSUID,
        data: Some("mode=0755"),
    },
    MountSpec {
        source: "devpts",
        target: "/dev/pts",
        fstype: "devpts",
        flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NOEXEC),
        data: Some("mode=0620,ptmxmode=0666"),
    },
    MountSpec {
        source: "shm",
        target: "/dev/shm",
        fstype: "tmpfs",
        flags: NOSUID_NODEV,
        data: Some("mode=1777"),
    },
    MountSpec {
        source: "tmpfs",
        target: "/run",
        fstype: "tmpfs",
        flags: NOSUID_NODEV,
        data: Some("mode=0755"),
    },
    MountSpec {
        source: "tmpfs",
        target: "/tmp",
        fstype: "tmpfs",
        flags: NOSUID_NODEV,
        data: Some("mode=1777"),
    },
];

/// A mount that failed; PID 1 reports it and goes on with the next one.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("failed to create the mount point {target}")]
    CreateTarget {
        target: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to mount {fstype} on {target}")]
    Mount {
        fstype: &'static str,
        target: PathBuf,
        #[source]
        source: nix::Error,
    },
}

/// Result of one mount.
#[derive(Debug)]
pub enum MountOutcome {
    /// The target already was a mount point, so nothing was done.
    AlreadyMounted,
    Mounted,
    Failed(MountError),
}

/// Mounts every entry of `specs` whose target is not a mount point yet, creating missing
/// targets with mode 0755.
pub fn mount_all(specs: &[MountSpec]) -> Vec<(MountSpec, MountOutcome)> {
    specs.iter().map(|spec| (*spec, mount_one(spec))).collect()
}

fn mount_one(spec: &MountSpec) -> MountOutcome {
    let target = Path::new(spec.target);
    if is_mount_point(target) {
        return MountOutcome::AlreadyMounted;
    }
    if let Err(source) = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(target)
    {
        return MountOutcome::Failed(MountError::CreateTarget {
            target: target.to_owned(),
            source,
        });
    }
    match nix::mount::mount(
        Some(spec.source),
        target,
        Some(spec.fstype),
        spec.flags,
        spec.data,
    ) {
        Ok(()) => MountOutcome::Mounted,
        Err(source) => MountOutcome::Failed(MountError::Mount {
            fstype: spec.fstype,
            target: target.to_owned(),
            source,
        }),
    }
}

/// Reports whether `path` is a mount point. Uses `/proc/self/mountinfo` when `/proc` is
/// mounted, which also lists bind mounts. Before that, it compares the device of `path` with
/// the device of its parent.
pub fn is_mount_point(path: &Path) -> bool {
    if let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") {
        return mount_points(&mountinfo).iter().any(|point| point == path);
    }
    let Some(parent) = path.parent() else {
        return true;
    };
    match (std::fs::metadata(path), std::fs::metadata(parent)) {
        (Ok(own), Ok(parent)) => own.dev() != parent.dev() || own.ino() == parent.ino(),
        _ => false,
    }
}

/// Lists the mount points (field 5) of `/proc/self/mountinfo` text, with the kernel's octal
/// escapes (`\040` for a space) decoded.
pub fn mount_points(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape_octal(field)))
        .collect()
}

fn unescape_octal(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escape = bytes
            .get(i + 1..i + 4)
            .filter(|digits| bytes[i] == b'\\' && digits.iter().all(|d| (b'0'..=b'7').contains(d)));
        match escape {
            Some(digits) => {
                let value = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_points_are_unescaped() {
        let text = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw\n\
                    23 22 0:5 / /dev rw,nosuid - devtmpfs devtmpfs rw\n\
                    40 22 0:40 / /mnt/with\\040space rw - tmpfs tmpfs rw\n";
        assert_eq!(
            mount_points(text),
            vec![
                PathBuf::from("/"),
                PathBuf::from("/dev"),
                PathBuf::from("/mnt/with space"),
            ]
        );
    }

    #[test]
    fn unescape_leaves_plain_backslash() {
        assert_eq!(unescape_octal("a\\b\\0"), "a\\b\\0");
        assert_eq!(unescape_octal("tab\\011x"), "tab\tx");
    }

    #[test]
    fn proc_and_root_are_mount_points() {
        assert!(is_mount_point(Path::new("/proc")));
        assert!(is_mount_point(Path::new("/")));
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_mount_point(dir.path()));
    }
}
