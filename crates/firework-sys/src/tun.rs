//! TAP devices through `/dev/net/tun`.
//!
//! Firecracker opens the host side of a guest network interface with
//! `TUNSETIFF` and the flags `IFF_TAP | IFF_NO_PI | IFF_VNET_HDR`. Firework creates
//! the same kind of device ahead of time as a *persistent* TAP, so it can be
//! attached to a bridge before the VM starts and survives the VM process.

use std::ffi::c_int;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

/// Path of the TUN/TAP clone device.
pub const TUN_DEVICE: &str = "/dev/net/tun";

/// Maximum interface name length in bytes, without the terminating NUL (`IFNAMSIZ - 1`).
pub const MAX_INTERFACE_NAME_LEN: usize = libc::IFNAMSIZ - 1;

/// Flags Firecracker passes to `TUNSETIFF` for a guest network interface.
const TAP_FLAGS: c_int = libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR;

/// Errors of the TAP wrappers.
#[derive(Debug, thiserror::Error)]
pub enum TunError {
    /// The name cannot be a Linux interface name.
    #[error("invalid interface name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    /// `/dev/net/tun` could not be opened.
    #[error("failed to open {TUN_DEVICE} (load the tun module: modprobe tun)")]
    OpenDevice(#[source] io::Error),
    /// Another process has the TAP device open (`EBUSY` from `TUNSETIFF`).
    #[error("TAP device {name:?} is in use by another process")]
    Busy { name: String },
    /// An ioctl on the TUN device failed.
    #[error("{operation} failed for TAP device {name:?}")]
    Ioctl {
        name: String,
        operation: &'static str,
        #[source]
        source: io::Error,
    },
}

/// Checks that `name` is a valid Linux network interface name.
///
/// The rules are the kernel's (`dev_valid_name`): 1 to 15 bytes, not `.` or `..`,
/// and no `/`, `:` or whitespace.
pub fn validate_interface_name(name: &str) -> Result<(), TunError> {
    let invalid = |reason| {
        Err(TunError::InvalidName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return invalid("name is empty");
    }
    if name.len() > MAX_INTERFACE_NAME_LEN {
        return invalid("name is longer than 15 bytes");
    }
    if name == "." || name == ".." {
        return invalid("name is . or ..");
    }
    if name
        .bytes()
        .any(|b| b == b'/' || b == b':' || b == 0 || b.is_ascii_whitespace())
    {
        return invalid("name contains '/', ':', NUL or whitespace");
    }
    Ok(())
}

/// The `struct ifreq` layout with the `ifr_flags` member of its union.
#[repr(C)]
struct IfReqFlags {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    /// Rest of the kernel's union, which is 24 bytes on 64-bit targets.
    padding: [u8; 22],
}

// The kernel copies `sizeof(struct ifreq)` bytes in and out, so the buffer must be at
// least that large.
const _: () = assert!(std::mem::size_of::<IfReqFlags>() >= std::mem::size_of::<libc::ifreq>());

impl IfReqFlags {
    fn new(name: &str, flags: c_int) -> Self {
        let mut request = Self {
            name: [0; libc::IFNAMSIZ],
            // The TUN flags all fit in 16 bits (IFF_VNET_HDR is 0x4000).
            flags: flags as libc::c_short,
            padding: [0; 22],
        };
        // validate_interface_name guarantees at most 15 bytes, so a NUL always follows.
        request.name[..name.len()].copy_from_slice(name.as_bytes());
        request
    }
}

fn open_tun_device() -> Result<File, TunError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(TUN_DEVICE)
        .map_err(TunError::OpenDevice)
}

/// Attaches `file` to the TAP device `name`, creating it when it does not exist.
fn set_iff(file: &File, name: &str) -> Result<(), TunError> {
    let mut request = IfReqFlags::new(name, TAP_FLAGS);
    // SAFETY: `file` is an open `/dev/net/tun` descriptor, and TUNSETIFF reads and writes
    // one `struct ifreq`. `request` is a live, exclusively borrowed buffer at least
    // `sizeof(struct ifreq)` bytes long, which the const assertion above checks.
    let rc = unsafe {
        libc::ioctl(
            file.as_raw_fd(),
            libc::TUNSETIFF as _,
            &mut request as *mut IfReqFlags,
        )
    };
    if rc < 0 {
        let source = io::Error::last_os_error();
        if source.raw_os_error() == Some(libc::EBUSY) {
            return Err(TunError::Busy {
                name: name.to_owned(),
            });
        }
        return Err(TunError::Ioctl {
            name: name.to_owned(),
            operation: "TUNSETIFF",
            source,
        });
    }
    Ok(())
}

/// Issues a TUN ioctl whose argument is an integer passed by value.
fn tun_ioctl_value(
    file: &File,
    name: &str,
    request: libc::Ioctl,
    operation: &'static str,
    value: libc::c_ulong,
) -> Result<(), TunError> {
    // SAFETY: `file` is a `/dev/net/tun` descriptor already attached with TUNSETIFF.
    // TUNSETPERSIST and TUNSETOWNER take their argument by value, not as a pointer,
    // so no memory is read or written through it.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), request as _, value) };
    if rc < 0 {
        return Err(TunError::Ioctl {
            name: name.to_owned(),
            operation,
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// Opens the TAP device `name` the way Firecracker does and returns its descriptor.
///
/// The device is created (non-persistent) when it does not exist. An existing
/// persistent TAP that another process has open yields [`TunError::Busy`].
pub fn open_tap(name: &str) -> Result<OwnedFd, TunError> {
    validate_interface_name(name)?;
    let file = open_tun_device()?;
    set_iff(&file, name)?;
    Ok(OwnedFd::from(file))
}

/// Creates the persistent TAP device `name`, owned by `owner_uid` when given.
///
/// The descriptor is closed before returning, so the device stays without a reader
/// until the VMM opens it. Creating a device that already exists as a persistent
/// TAP succeeds and sets its owner again.
pub fn create_persistent_tap(name: &str, owner_uid: Option<u32>) -> Result<(), TunError> {
    validate_interface_name(name)?;
    let file = open_tun_device()?;
    set_iff(&file, name)?;
    if let Some(uid) = owner_uid {
        tun_ioctl_value(
            &file,
            name,
            libc::TUNSETOWNER,
            "TUNSETOWNER",
            libc::c_ulong::from(uid),
        )?;
    }
    tun_ioctl_value(&file, name, libc::TUNSETPERSIST, "TUNSETPERSIST", 1)
}

/// Deletes the persistent TAP device `name` by clearing its persistent flag.
///
/// The kernel removes the device once the last descriptor closes, so this fails with
/// [`TunError::Busy`] while a VMM still has it open.
pub fn delete_persistent_tap(name: &str) -> Result<(), TunError> {
    validate_interface_name(name)?;
    let file = open_tun_device()?;
    set_iff(&file, name)?;
    tun_ioctl_value(&file, name, libc::TUNSETPERSIST, "TUNSETPERSIST", 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn skip_unless_root(test: &str) -> bool {
        if !nix::unistd::Uid::effective().is_root() {
            eprintln!("skipping {test}: needs root to create TAP devices");
            return true;
        }
        if !Path::new(TUN_DEVICE).exists() {
            eprintln!("skipping {test}: {TUN_DEVICE} is missing");
            return true;
        }
        false
    }

    fn link_exists(name: &str) -> bool {
        Path::new("/sys/class/net").join(name).exists()
    }

    fn tun_flags(name: &str) -> String {
        std::fs::read_to_string(Path::new("/sys/class/net").join(name).join("tun_flags"))
            .unwrap()
            .trim()
            .to_owned()
    }

    #[test]
    fn interface_name_rules() {
        for good in ["eth0", "fw-api-0a1b2", "a", "x23456789012345"] {
            assert!(validate_interface_name(good).is_ok(), "{good} rejected");
        }
        let cases = [
            ("", "name is empty"),
            ("x234567890123456", "name is longer than 15 bytes"),
            (".", "name is . or .."),
            ("..", "name is . or .."),
            ("a/b", "name contains '/', ':', NUL or whitespace"),
            ("a:b", "name contains '/', ':', NUL or whitespace"),
            ("a b", "name contains '/', ':', NUL or whitespace"),
        ];
        for (name, expected) in cases {
            let err = validate_interface_name(name).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("invalid interface name {name:?}: {expected}")
            );
        }
    }

    #[test]
    fn persistent_tap_lifecycle() {
        if skip_unless_root("persistent_tap_lifecycle") {
            return;
        }
        let name = format!("fwsys{}", std::process::id() % 100_000);
        create_persistent_tap(&name, Some(65534)).unwrap();
        assert!(link_exists(&name));
        let owner = std::fs::read_to_string(format!("/sys/class/net/{name}/owner")).unwrap();
        assert_eq!(owner.trim(), "65534");
        // IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_PERSIST (0x0800)
        assert_eq!(tun_flags(&name), "0x5802");

        // Creating again is idempotent.
        create_persistent_tap(&name, None).unwrap();

        // A VMM-style open succeeds, a second open reports the device busy.
        let fd = open_tap(&name).unwrap();
        let err = open_tap(&name).unwrap_err();
        assert!(matches!(err, TunError::Busy { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!("TAP device {name:?} is in use by another process")
        );
        drop(fd);

        delete_persistent_tap(&name).unwrap();
        assert!(!link_exists(&name), "{name} still exists after delete");
    }

    #[test]
    fn open_tap_rejects_invalid_name() {
        let err = open_tap("bad/name").unwrap_err();
        assert!(matches!(err, TunError::InvalidName { .. }), "{err:?}");
    }
}
