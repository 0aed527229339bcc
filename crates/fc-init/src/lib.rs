//! fc-init, PID 1 of a Firework guest.
//!
//! The binary mounts the standard file systems and reads its settings from the kernel command
//! line (`firework.*` parameters and the words after `--`) and from the image's
//! `/etc/firework/runtime.json`. It then starts one service, forwards signals to it, reaps
//! every child, and reboots the guest when the service exits. See `docs/fc-init.md`.
//!
//! The modules hold the logic; `main.rs` only picks the role and carries out the
//! [`boot::Finish`].

pub mod boot;
pub mod cmdline;
pub mod command;
pub mod console;
pub mod env;
pub mod mounts;
pub mod params;
pub mod plan;
pub mod runtime;
pub mod supervise;
pub mod system;
pub mod user;
