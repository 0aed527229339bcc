//! Choice of the service's command line and resolution of its program.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Program run when the boot arguments name none, as the Go firework does.
pub const DEFAULT_PROGRAM: &str = "/sbin/init";

/// Source of the service's argv.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandSource {
    /// The words the kernel passed to init: the bare words before `--` that it does not know,
    /// followed by the words after `--`.
    KernelArguments,
    /// The words after `--`.
    InitArguments,
    /// `firework.exec=<path>`.
    Exec,
    /// [`DEFAULT_PROGRAM`].
    Default,
}

/// Picks the service's argv.
///
/// With words after `--` (`init_args`), the argv is what the kernel passed to init
/// (`kernel_args`) when that ends with those words, so `/bin/tini -- /app` runs
/// `/bin/tini /app` as with the Go fc-init. Otherwise it is the words after `--`. Without
/// words after `--`, `firework.exec` is used, else [`DEFAULT_PROGRAM`]. Bare words the kernel
/// passes without a `--` command are never run: an unknown kernel flag such as `nomodule`
/// on a kernel without module support would otherwise become the command.
pub fn choose_argv(
    kernel_args: &[OsString],
    init_args: Option<&[OsString]>,
    exec: Option<&OsStr>,
) -> (Vec<OsString>, CommandSource) {
    if let Some(args) = init_args.filter(|args| !args.is_empty()) {
        if kernel_args.len() > args.len() && kernel_args.ends_with(args) {
            return (kernel_args.to_vec(), CommandSource::KernelArguments);
        }
        return (args.to_vec(), CommandSource::InitArguments);
    }
    if let Some(program) = exec {
        return (vec![program.to_owned()], CommandSource::Exec);
    }
    (
        vec![OsString::from(DEFAULT_PROGRAM)],
        CommandSource::Default,
    )
}

/// A program that cannot be found.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CommandError {
    #[error("program {program:?} not found in PATH {path:?}")]
    NotFound { program: OsString, path: OsString },
    #[error("the program name is empty")]
    EmptyProgram,
}

/// Resolves the program to execute. A name with a `/` is used as given, relative to the
/// working directory. A bare name is looked up in the `:`-separated `search_path`, and the
/// first regular file with an execute bit wins.
pub fn resolve_program(program: &OsStr, search_path: &OsStr) -> Result<PathBuf, CommandError> {
    if program.is_empty() {
        return Err(CommandError::EmptyProgram);
    }
    if program.as_bytes().contains(&b'/') {
        return Ok(PathBuf::from(program));
    }
    search_path
        .as_bytes()
        .split(|byte| *byte == b':')
        .map(|dir| {
            // An empty entry means the working directory, as in execvp.
            if dir.is_empty() {
                Path::new(".").join(program)
            } else {
                Path::new(OsStr::from_bytes(dir)).join(program)
            }
        })
        .find(|candidate| is_executable_file(candidate))
        .ok_or_else(|| CommandError::NotFound {
            program: program.to_owned(),
            path: search_path.to_owned(),
        })
}

fn is_executable_file(path: &Path) -> bool {
    std::fs::metadata(path)
        .is_ok_and(|metadata| metadata.is_file() && metadata.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(items: &[&str]) -> Vec<OsString> {
        items.iter().map(OsString::from).collect()
    }

    #[test]
    fn argv_precedence() {
        let exec = OsStr::new("/bin/exec");
        let after = os(&["/app", "x"]);

        assert_eq!(
            choose_argv(&os(&["/bin/tini", "/app", "x"]), Some(&after), Some(exec)),
            (
                os(&["/bin/tini", "/app", "x"]),
                CommandSource::KernelArguments
            )
        );
        assert_eq!(
            choose_argv(&after, Some(&after), Some(exec)),
            (after.clone(), CommandSource::InitArguments)
        );
        assert_eq!(
            choose_argv(&[], Some(&after), Some(exec)),
            (after.clone(), CommandSource::InitArguments)
        );
        assert_eq!(
            choose_argv(&[], Some(&[]), Some(exec)),
            (os(&["/bin/exec"]), CommandSource::Exec)
        );
        assert_eq!(
            choose_argv(&[], None, None),
            (os(&["/sbin/init"]), CommandSource::Default)
        );
    }

    #[test]
    fn argv_ignores_stray_kernel_words() {
        // Kernel arguments that do not end with the `--` words did not come from this
        // command line, and bare words alone are never run.
        let after = os(&["/app"]);
        assert_eq!(
            choose_argv(&os(&["nomodule", "/other"]), Some(&after), None),
            (after.clone(), CommandSource::InitArguments)
        );
        assert_eq!(
            choose_argv(&os(&["nomodule"]), None, Some(OsStr::new("/bin/exec"))),
            (os(&["/bin/exec"]), CommandSource::Exec)
        );
        assert_eq!(
            choose_argv(&os(&["nomodule"]), None, None),
            (os(&["/sbin/init"]), CommandSource::Default)
        );
    }

    #[test]
    fn resolve_searches_path_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("first");
        let second = dir.path().join("second");
        std::fs::create_dir_all(&first).unwrap();
        std::fs::create_dir_all(&second).unwrap();
        // Not executable in `first`, executable in `second`.
        std::fs::write(first.join("app"), "").unwrap();
        std::fs::write(second.join("app"), "").unwrap();
        std::fs::set_permissions(second.join("app"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        std::fs::create_dir_all(first.join("dir-app")).unwrap();

        let search = format!("{}:{}", first.display(), second.display());
        assert_eq!(
            resolve_program(OsStr::new("app"), OsStr::new(&search)).unwrap(),
            second.join("app")
        );
        assert_eq!(
            resolve_program(OsStr::new("dir-app"), OsStr::new(&search)).unwrap_err(),
            CommandError::NotFound {
                program: "dir-app".into(),
                path: search.clone().into()
            }
        );
    }

    #[test]
    fn resolve_keeps_paths_with_slash() {
        assert_eq!(
            resolve_program(OsStr::new("/no/such/app"), OsStr::new("/bin")).unwrap(),
            PathBuf::from("/no/such/app")
        );
        assert_eq!(
            resolve_program(OsStr::new("./app"), OsStr::new("/bin")).unwrap(),
            PathBuf::from("./app")
        );
    }

    #[test]
    fn resolve_errors() {
        assert_eq!(
            resolve_program(
                OsStr::new("no-such-program-here"),
                OsStr::new("/nonexistent")
            )
            .unwrap_err()
            .to_string(),
            "program \"no-such-program-here\" not found in PATH \"/nonexistent\""
        );
        assert_eq!(
            resolve_program(OsStr::new(""), OsStr::new("/bin")).unwrap_err(),
            CommandError::EmptyProgram
        );
    }
}
