//! Host resources that Firecracker touches while a request is handled: the kernel, initrd
//! and drive files it opens at `PUT` time, the TAP device it attaches, and the ELF header
//! it reads at `InstanceStart`.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::path::Path;

use firework_sys::tun::TunError;

use crate::errno::musl_error_text;

/// Maximum kernel command line length including the terminating NUL, on x86_64 and aarch64.
pub const CMDLINE_CAPACITY: usize = 2048;

/// Linux's `IFNAMSIZ`: an interface name must be shorter than this.
const IFNAMSIZ: usize = 16;

/// Opens a file that must exist and be readable, returning the musl-worded error text.
pub fn open_readable(path: &str) -> Result<File, String> {
    File::open(path).map_err(|error| musl_error_text(&error))
}

/// Opens a drive's backing file read-write, or read-only when `read_only` is set.
pub fn open_drive(path: &str, read_only: bool) -> Result<File, String> {
    OpenOptions::new()
        .read(true)
        .write(!read_only)
        .open(path)
        .map_err(|error| musl_error_text(&error))
}

/// Checks a kernel command line as the linux-loader crate pinned by Firecracker v1.16.1
/// does: printable ASCII only, and at most 2047 bytes so the NUL still fits.
pub fn check_cmdline(cmdline: &str) -> Result<(), &'static str> {
    if !cmdline.chars().all(|c| matches!(c, ' '..='~')) {
        return Err("String contains a non-printable ASCII character.");
    }
    if cmdline.len() + 1 > CMDLINE_CAPACITY {
        return Err("Inserting string would make command line too long.");
    }
    Ok(())
}

/// Checks that an x86_64 kernel image starts with the ELF magic, the only format that
/// Firecracker v1.16 boots there.
pub fn check_elf_kernel(path: &str) -> Result<(), String> {
    let mut magic = [0u8; 4];
    let mut file = File::open(path).map_err(|error| musl_error_text(&error))?;
    match file.read_exact(&mut magic) {
        Ok(()) if &magic == b"\x7fELF" => Ok(()),
        _ => Err("Invalid Elf magic number".to_string()),
    }
}

/// A TAP device the emulated VM holds.
#[derive(Debug)]
pub struct TapHandle {
    /// The open queue of the device, when the busy check could open it. Holding it keeps
    /// the TAP busy for any other process, as a running Firecracker does.
    pub _queue: Option<std::os::fd::OwnedFd>,
}

/// Reason a TAP could not be attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TapFailure {
    /// The name does not fit in `IFNAMSIZ`.
    InvalidName,
    /// The `TUNSETIFF` step failed with this OS error text.
    Ioctl(String),
    /// `/dev/net/tun` could not be opened; carries the OS error text.
    OpenTunDevice(String),
}

/// Checks that `name` is an existing TAP device that no other process holds, and opens
/// it as Firecracker does (`TUNSETIFF` with `IFF_TAP | IFF_NO_PI | IFF_VNET_HDR`).
///
/// NOTE: a privileged Firecracker creates a missing TAP on the fly. The emulator instead
/// reports a missing TAP with the `EPERM` text that an unprivileged or jailed Firecracker
/// reports, because a test stand-in must not create host interfaces.
pub fn attach_tap(name: &str) -> Result<TapHandle, TapFailure> {
    if name.is_empty() || name.len() >= IFNAMSIZ {
        return Err(TapFailure::InvalidName);
    }
    let sys_path = Path::new("/sys/class/net").join(name);
    if !sys_path.exists() {
        return Err(TapFailure::Ioctl(musl_error_text(
            &std::io::Error::from_raw_os_error(1),
        )));
    }
    if !sys_path.join("tun_flags").exists() {
        // TUNSETIFF on an existing interface that is not a TUN/TAP device fails with EINVAL.
        return Err(TapFailure::Ioctl(musl_error_text(
            &std::io::Error::from_raw_os_error(22),
        )));
    }
    match firework_sys::tun::open_tap(name) {
        Ok(queue) => Ok(TapHandle {
            _queue: Some(queue),
        }),
        Err(TunError::Busy { .. }) => Err(TapFailure::Ioctl(musl_error_text(
            &std::io::Error::from_raw_os_error(16),
        ))),
        Err(TunError::InvalidName { .. }) => Err(TapFailure::InvalidName),
        Err(TunError::OpenDevice(source)) => {
            Err(TapFailure::OpenTunDevice(musl_error_text(&source)))
        }
        Err(TunError::Ioctl { source, .. }) => Err(TapFailure::Ioctl(musl_error_text(&source))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_limit_is_2047() {
        assert!(check_cmdline(&"a".repeat(2047)).is_ok());
        assert_eq!(
            check_cmdline(&"a".repeat(2048)),
            Err("Inserting string would make command line too long.")
        );
    }

    #[test]
    fn cmdline_rejects_control_characters() {
        assert_eq!(
            check_cmdline("console=ttyS0\n"),
            Err("String contains a non-printable ASCII character.")
        );
    }

    #[test]
    fn tap_name_too_long() {
        assert_eq!(
            attach_tap("abcdefghijklmnop").unwrap_err(),
            TapFailure::InvalidName
        );
    }

    #[test]
    fn loopback_is_not_a_tap() {
        assert_eq!(
            attach_tap("lo").unwrap_err(),
            TapFailure::Ioctl("Invalid argument (os error 22)".into())
        );
    }

    #[test]
    fn elf_magic_checked() {
        let dir = tempfile::tempdir().unwrap();
        let elf = dir.path().join("vmlinux");
        std::fs::write(&elf, b"\x7fELF\x02\x01\x01").unwrap();
        assert!(check_elf_kernel(elf.to_str().unwrap()).is_ok());
        let bz = dir.path().join("bzImage");
        std::fs::write(&bz, b"MZ\x00\x00").unwrap();
        assert_eq!(
            check_elf_kernel(bz.to_str().unwrap()),
            Err("Invalid Elf magic number".into())
        );
    }
}
