//! Loop devices through `/dev/loop-control` and `LOOP_CONFIGURE`.
//!
//! [`attach`] binds an open image file to a free loop device with the autoclear flag,
//! so the kernel detaches the device on its own once the last user (an open descriptor
//! or a mount) is gone. A caller that mounts the device and then drops the returned
//! [`LoopDevice`] leaves no loop device behind after the unmount.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

/// Path of the loop control device.
pub const LOOP_CONTROL: &str = "/dev/loop-control";

/// `LOOP_CTL_GET_FREE` from `<linux/loop.h>`.
const LOOP_CTL_GET_FREE: libc::Ioctl = 0x4C82;
/// `LOOP_CONFIGURE` from `<linux/loop.h>` (Linux 5.8 and later).
const LOOP_CONFIGURE: libc::Ioctl = 0x4C0A;
/// `LO_FLAGS_READ_ONLY`.
const LO_FLAGS_READ_ONLY: u32 = 1;
/// `LO_FLAGS_AUTOCLEAR`.
const LO_FLAGS_AUTOCLEAR: u32 = 4;
/// How often a free device is looked up again when another process takes it first.
const CLAIM_ATTEMPTS: usize = 16;

/// `struct loop_info64` from `<linux/loop.h>`.
#[repr(C)]
struct LoopInfo64 {
    device: u64,
    inode: u64,
    rdevice: u64,
    offset: u64,
    size_limit: u64,
    number: u32,
    encrypt_type: u32,
    encrypt_key_size: u32,
    flags: u32,
    file_name: [u8; 64],
    crypt_name: [u8; 64],
    encrypt_key: [u8; 32],
    init: [u64; 2],
}

/// `struct loop_config` from `<linux/loop.h>`.
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

// The kernel copies exactly `sizeof(struct loop_config)`, which is 304 bytes.
const _: () = assert!(std::mem::size_of::<LoopConfig>() == 304);

/// Errors of the loop device wrappers.
#[derive(Debug, thiserror::Error)]
pub enum LoopError {
    /// `/dev/loop-control` could not be opened.
    #[error("failed to open {LOOP_CONTROL} (load the loop module: modprobe loop)")]
    OpenControl(#[source] io::Error),
    /// `LOOP_CTL_GET_FREE` failed.
    #[error("failed to find a free loop device")]
    GetFree(#[source] io::Error),
    /// The loop device node could not be opened.
    #[error("failed to open loop device {path}")]
    OpenDevice {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// `LOOP_CONFIGURE` failed.
    #[error("LOOP_CONFIGURE failed for loop device {path}")]
    Configure {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Every free device found was taken by another process before it could be bound.
    #[error("every free loop device was taken by another process ({CLAIM_ATTEMPTS} attempts)")]
    Contended,
}

/// A loop device bound to an image with the autoclear flag.
#[derive(Debug)]
pub struct LoopDevice {
    path: PathBuf,
    /// Open descriptor of the device; the device stays bound while it or a mount exists.
    _device: File,
}

impl LoopDevice {
    /// Path of the device node, such as `/dev/loop3`.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

/// Binds `image` to a free loop device, read-only when `read_only` is set, with the
/// autoclear flag.
pub fn attach(image: &File, read_only: bool) -> Result<LoopDevice, LoopError> {
    let control = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(LOOP_CONTROL)
        .map_err(LoopError::OpenControl)?;
    for _ in 0..CLAIM_ATTEMPTS {
        // SAFETY: `control` is an open `/dev/loop-control` descriptor; LOOP_CTL_GET_FREE
        // takes no argument and returns a device number or -1, touching no memory of ours.
        let number = unsafe { libc::ioctl(control.as_raw_fd(), LOOP_CTL_GET_FREE as _) };
        if number < 0 {
            return Err(LoopError::GetFree(io::Error::last_os_error()));
        }
        let path = PathBuf::from(format!("/dev/loop{number}"));
        let device = OpenOptions::new()
            .read(true)
            .write(!read_only)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)
            .map_err(|source| LoopError::OpenDevice {
                path: path.clone(),
                source,
            })?;
        let mut flags = LO_FLAGS_AUTOCLEAR;
        if read_only {
            flags |= LO_FLAGS_READ_ONLY;
        }
        let config = LoopConfig {
            fd: image.as_raw_fd() as u32,
            block_size: 0,
            info: LoopInfo64 {
                device: 0,
                inode: 0,
                rdevice: 0,
                offset: 0,
                size_limit: 0,
                number: 0,
                encrypt_type: 0,
                encrypt_key_size: 0,
                flags,
                file_name: [0; 64],
                crypt_name: [0; 64],
                encrypt_key: [0; 32],
                init: [0; 2],
            },
            reserved: [0; 8],
        };
        // SAFETY: `device` is an open loop device node; LOOP_CONFIGURE reads one
        // `struct loop_config`, and `config` is a live, fully initialised value with the
        // kernel's layout (checked by the size assertion above). `image` stays open for
        // the duration of the call, so the descriptor in it is valid.
        let rc = unsafe {
            libc::ioctl(
                device.as_raw_fd(),
                LOOP_CONFIGURE as _,
                &config as *const LoopConfig,
            )
        };
        if rc == 0 {
            return Ok(LoopDevice {
                path,
                _device: device,
            });
        }
        let source = io::Error::last_os_error();
        if source.raw_os_error() != Some(libc::EBUSY) {
            return Err(LoopError::Configure { path, source });
        }
    }
    Err(LoopError::Contended)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sys_attr(device: &LoopDevice, name: &str) -> Option<String> {
        let block = device.path().file_name()?.to_str()?.to_string();
        std::fs::read_to_string(format!("/sys/block/{block}/loop/{name}"))
            .ok()
            .map(|text| text.trim_end().to_string())
    }

    #[test]
    fn attach_read_only_autoclear_detaches_on_drop() {
        if !nix::unistd::Uid::effective().is_root() {
            eprintln!("skipping: loop devices need root");
            return;
        }
        if !std::path::Path::new(LOOP_CONTROL).exists() {
            eprintln!("skipping: {LOOP_CONTROL} is missing");
            return;
        }
        let dir = std::env::temp_dir().join(format!("firework-sys-loop-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let image_path = dir.join("image");
        std::fs::write(&image_path, vec![0u8; 1 << 20]).unwrap();
        let image = File::open(&image_path).unwrap();

        let device = attach(&image, true).unwrap();
        let block = device.path().to_path_buf();
        assert_eq!(
            sys_attr(&device, "backing_file").as_deref(),
            image_path.to_str()
        );
        assert_eq!(sys_attr(&device, "autoclear").as_deref(), Some("1"));
        let ro = std::fs::read_to_string(format!(
            "/sys/block/{}/ro",
            block.file_name().unwrap().to_str().unwrap()
        ))
        .unwrap();
        assert_eq!(ro.trim_end(), "1");
        let name = block.file_name().unwrap().to_str().unwrap().to_string();
        drop(device);
        // Autoclear detaches once the last descriptor is closed.
        let backing = std::fs::read_to_string(format!("/sys/block/{name}/loop/backing_file"));
        assert!(backing.is_err(), "still bound: {backing:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn attach_rejects_a_directory() {
        if !nix::unistd::Uid::effective().is_root() {
            eprintln!("skipping: loop devices need root");
            return;
        }
        let directory = File::open(std::env::temp_dir()).unwrap();
        match attach(&directory, true).unwrap_err() {
            LoopError::Configure { path, source } => {
                assert!(path.to_str().unwrap().starts_with("/dev/loop"), "{path:?}");
                assert_eq!(source.raw_os_error(), Some(libc::EINVAL), "{source}");
            }
            other => panic!("unexpected error: {other:?}"),
        }
    }
}
