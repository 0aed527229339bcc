//! fc-init: PID 1 of a Firework guest. The logic is in the library; see `docs/fc-init.md`.

use std::process::ExitCode;

use fc_init::boot::{self, BootOptions, Finish};
use fc_init::console;
use nix::sys::reboot::{RebootMode, reboot};

fn main() -> ExitCode {
    let options = BootOptions::from_process();
    match boot::run(&options) {
        Finish::Exit(code) => ExitCode::from(code),
        Finish::Reboot => end_guest(RebootMode::RB_AUTOBOOT, "rebooting"),
        Finish::PowerOff => end_guest(RebootMode::RB_POWER_OFF, "powering off"),
    }
}

/// Reboots or powers off. Only PID 1 gets here. If the call fails, fc-init exits and the
/// kernel panics, which with `panic=1` also ends the VM.
fn end_guest(mode: RebootMode, action: &str) -> ExitCode {
    console::report(action);
    let Err(err) = reboot(mode);
    console::report(format_args!("{action} failed: {err}"));
    ExitCode::FAILURE
}
