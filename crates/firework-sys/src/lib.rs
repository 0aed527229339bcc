//! Small Linux syscall wrappers that Firework needs and no safe crate offers.
//!
//! This is the only crate in the workspace that may contain `unsafe` code. Every
//! `unsafe` block carries a `// SAFETY:` comment naming the invariant it relies on.
#![allow(unsafe_code)]

pub mod loopdev;
pub mod process;
pub mod tun;
