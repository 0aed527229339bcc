//! Messages on the console. PID 1's standard error is the guest console (the serial port
//! under Firecracker), which is the only log sink a guest has before the service starts, so
//! fc-init writes plain `fc-init: ...` lines there.

use std::error::Error;
use std::fmt::Display;
use std::os::fd::{AsFd, AsRawFd, IntoRawFd};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::stat::Mode;

/// Prefix of every console line fc-init writes.
pub const PREFIX: &str = "fc-init: ";

/// Writes one line to standard error. A failed write is dropped: there is nowhere else to
/// report it.
pub fn report(message: impl Display) {
    eprintln!("{PREFIX}{message}");
}

/// Writes an error with each of its sources, `message: source: source`.
pub fn report_error(error: &dyn Error) {
    report(error_chain(error));
}

/// Formats an error and its sources on one line, separated by `: `.
pub fn error_chain(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Opens `/dev/console` as standard input, output and error when standard error is closed,
/// which happens when the kernel found no `/dev/console` in the root file system before
/// fc-init mounted devtmpfs on `/dev`.
pub fn attach_console_if_closed() -> nix::Result<bool> {
    if fcntl(std::io::stderr().as_fd(), FcntlArg::F_GETFD).is_ok() {
        return Ok(false);
    }
    let console = nix::fcntl::open(
        "/dev/console",
        OFlag::O_RDWR | OFlag::O_NOCTTY,
        Mode::empty(),
    )?;
    nix::unistd::dup2_stdin(&console)?;
    nix::unistd::dup2_stdout(&console)?;
    nix::unistd::dup2_stderr(&console)?;
    if console.as_raw_fd() <= 2 {
        // The descriptor is itself one of 0, 1 and 2 now: keep it open.
        let _ = console.into_raw_fd();
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer {0}")]
    struct Outer(&'static str, #[source] std::io::Error);

    #[test]
    fn chain_lists_sources() {
        let error = Outer("x", std::io::Error::other("inner"));
        assert_eq!(error_chain(&error), "outer x: inner");
    }
}
