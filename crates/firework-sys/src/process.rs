//! Child-process setup that needs code between `fork` and `exec`.

use std::os::unix::process::CommandExt;
use std::process::Command;

/// Makes the spawned child the leader of a new session (and so of a new process group).
///
/// Signals sent to the parent's session or process group, such as a terminal's Ctrl-C or
/// systemd stopping the agent's control group with `KillMode=mixed`, then do not reach the
/// child, so a VM outlives the agent. Do not also call `process_group`: `setsid` fails for a
/// process that already leads a group.
pub fn new_session(command: &mut Command) -> &mut Command {
    // SAFETY: the hook runs in the child after fork and before exec, where only
    // async-signal-safe calls are allowed. It calls only setsid(2), which is
    // async-signal-safe, and on failure builds an io::Error from errno, which neither
    // allocates nor takes a lock.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_leads_a_new_session() {
        let mut command = Command::new("sh");
        command.args([
            "-c",
            "ps -o sid= -p $$ 2>/dev/null || cut -d' ' -f6 /proc/$$/stat; echo $$",
        ]);
        new_session(&mut command);
        let output = command.output().unwrap();
        assert!(output.status.success());
        let text = String::from_utf8(output.stdout).unwrap();
        let numbers: Vec<&str> = text.split_whitespace().collect();
        assert_eq!(numbers.len(), 2, "{text}");
        // A session leader's session id is its own pid.
        assert_eq!(numbers[0], numbers[1], "{text}");
    }
}
