//! A test stand-in for Firecracker v1.16: `fc-emulator` serves Firecracker's HTTP API on a
//! Unix socket, with the same flags, status codes, fault messages and pre-boot/post-boot
//! rules, without running a VM. It is never the default runtime; tests point the launcher
//! at it where Firecracker cannot run.
//!
//! The library holds everything testable without sockets: argument parsing ([`cli`]),
//! the wire format ([`http`]), routing ([`router`]) and the VMM state machine ([`vmm`]).

pub mod cli;
pub mod errno;
pub mod fault;
pub mod guest;
pub mod host;
pub mod http;
pub mod logger;
pub mod payload;
pub mod process;
pub mod router;
pub mod server;
pub mod vmm;
pub mod wire;
