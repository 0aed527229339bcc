//! Command-line parsing with the rules of Firecracker v1.16's own argument parser.
//!
//! Firecracker accepts only `--name value` as two separate arguments (`--name=value` is an
//! unknown argument), rejects a value that starts with `--`, rejects repeated flags, and
//! ignores everything after a bare `--`. Parse errors exit with status 153 and an invalid
//! `--level` with 152, as Firecracker does.

use std::path::PathBuf;

use crate::logger::Level;

/// Firecracker version the emulator imitates, without the leading `v`.
pub const FIRECRACKER_VERSION: &str = "1.16.1";
/// Snapshot data format version printed by `--snapshot-version` in Firecracker v1.16.1.
pub const SNAPSHOT_VERSION: &str = "v10.0.0";
/// Default API socket path of Firecracker.
pub const DEFAULT_API_SOCK: &str = "/run/firecracker.socket";
/// Default instance id of Firecracker.
pub const DEFAULT_INSTANCE_ID: &str = "anonymous-instance";
/// Default maximum HTTP request body size of Firecracker, in bytes.
pub const DEFAULT_MAX_PAYLOAD: usize = 51_200;

/// Exit status of Firecracker for a command-line parse error.
pub const EXIT_ARG_PARSING: i32 = 153;
/// Exit status of Firecracker for an invalid `--level` value.
pub const EXIT_BAD_LOG_LEVEL: i32 = 152;

/// One flag that Firecracker v1.16.1 knows.
struct FlagSpec {
    name: &'static str,
    takes_value: bool,
    /// Flags that must also be present.
    requires: Option<&'static str>,
    /// Flags that must not be present together with this one.
    forbids: Option<&'static str>,
}

const fn flag(name: &'static str, takes_value: bool) -> FlagSpec {
    FlagSpec {
        name,
        takes_value,
        requires: None,
        forbids: None,
    }
}

const FLAGS: &[FlagSpec] = &[
    flag("api-sock", true),
    flag("id", true),
    flag("config-file", true),
    FlagSpec {
        name: "no-api",
        takes_value: false,
        requires: Some("config-file"),
        forbids: None,
    },
    flag("metadata", true),
    flag("log-path", true),
    flag("level", true),
    flag("module", true),
    flag("show-level", false),
    flag("show-log-origin", false),
    flag("metrics-path", true),
    flag("boot-timer", false),
    FlagSpec {
        name: "seccomp-filter",
        takes_value: true,
        requires: None,
        forbids: Some("no-seccomp"),
    },
    FlagSpec {
        name: "no-seccomp",
        takes_value: false,
        requires: None,
        forbids: Some("seccomp-filter"),
    },
    flag("http-api-max-payload-size", true),
    flag("mmds-size-limit", true),
    flag("enable-pci", false),
    flag("start-time-us", true),
    flag("start-time-cpu-us", true),
    flag("parent-cpu-time-us", true),
    flag("version", false),
    flag("help", false),
    flag("snapshot-version", false),
    flag("describe-snapshot", true),
];

/// Errors of command-line parsing; the messages follow Firecracker's argument parser.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CliError {
    #[error("Found argument '{0}' which wasn't expected, or isn't valid in this context.")]
    UnexpectedArgument(String),
    #[error("Missing value for argument: {0}.")]
    MissingValue(String),
    #[error("The argument '{0}' was provided more than once.")]
    DuplicateArgument(String),
    #[error("Argument '{0}' required, but not found.")]
    MissingArgument(String),
    #[error("Argument '{0}' cannot be used together with argument '{1}'.")]
    ForbiddenArgument(String, String),
    #[error(
        "Invalid value for logger level: {0}. Possible values: [Error, Warning, Info, Debug, Trace, Off]"
    )]
    InvalidLevel(String),
}

impl CliError {
    /// Returns the process exit status Firecracker uses for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::InvalidLevel(_) => EXIT_BAD_LOG_LEVEL,
            _ => EXIT_ARG_PARSING,
        }
    }
}

/// What the process is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Print `Firecracker v1.16.1` and a blank line, exit 0.
    Version,
    /// Print the version line and the help text, exit 0.
    Help,
    /// Print the snapshot data format version, exit 0.
    SnapshotVersion,
    /// Print the format version of a snapshot state file.
    DescribeSnapshot(PathBuf),
    /// Run the API server (and, with a config file, boot at once).
    Run(Box<RunOptions>),
}

/// Options of a normal run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOptions {
    pub api_sock: PathBuf,
    /// Raw `--id` value; validated later because Firecracker aborts (SIGABRT) on a bad id.
    pub id: String,
    pub config_file: Option<PathBuf>,
    pub no_api: bool,
    pub metadata: Option<PathBuf>,
    pub log_path: Option<PathBuf>,
    pub level: Option<Level>,
    pub module: Option<String>,
    pub show_level: bool,
    pub show_log_origin: bool,
    pub metrics_path: Option<PathBuf>,
    pub boot_timer: bool,
    pub enable_pci: bool,
    /// Raw `--http-api-max-payload-size`; Firecracker aborts when it is not a number.
    pub max_payload: Option<String>,
    /// Raw `--mmds-size-limit`.
    pub mmds_size_limit: Option<String>,
    /// Arguments after a bare `--`, ignored as Firecracker does.
    pub extra_args: Vec<String>,
}

/// Parses the arguments after the program name.
pub fn parse_args<I, S>(args: I) -> Result<Command, CliError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut values: Vec<(&'static str, Option<String>)> = Vec::new();
    let mut extra_args = Vec::new();
    let mut iter = args.into_iter().map(Into::into).peekable();

    while let Some(arg) = iter.next() {
        if arg == "--" {
            extra_args.extend(iter.by_ref());
            break;
        }
        let name = if arg == "-h" {
            "help".to_string()
        } else if let Some(stripped) = arg.strip_prefix("--") {
            stripped.to_string()
        } else {
            return Err(CliError::UnexpectedArgument(arg));
        };
        let spec = FLAGS
            .iter()
            .find(|spec| spec.name == name)
            .ok_or_else(|| CliError::UnexpectedArgument(name.clone()))?;
        if values.iter().any(|(seen, _)| *seen == spec.name) {
            return Err(CliError::DuplicateArgument(spec.name.to_string()));
        }
        let value = if spec.takes_value {
            match iter.peek() {
                Some(next) if !next.starts_with("--") => iter.next(),
                _ => return Err(CliError::MissingValue(spec.name.to_string())),
            }
        } else {
            None
        };
        values.push((spec.name, value));
    }

    for (name, _) in &values {
        let Some(spec) = FLAGS.iter().find(|spec| spec.name == *name) else {
            continue;
        };
        if let Some(required) = spec.requires
            && !values.iter().any(|(seen, _)| *seen == required)
        {
            return Err(CliError::MissingArgument(required.to_string()));
        }
        if let Some(forbidden) = spec.forbids
            && values.iter().any(|(seen, _)| *seen == forbidden)
        {
            return Err(CliError::ForbiddenArgument(
                spec.name.to_string(),
                forbidden.to_string(),
            ));
        }
    }

    let present = |name: &str| values.iter().any(|(seen, _)| *seen == name);
    let value = |name: &str| {
        values
            .iter()
            .find(|(seen, _)| *seen == name)
            .and_then(|(_, value)| value.clone())
    };

    if present("help") {
        return Ok(Command::Help);
    }
    if present("version") {
        return Ok(Command::Version);
    }
    if present("snapshot-version") {
        return Ok(Command::SnapshotVersion);
    }
    if let Some(path) = value("describe-snapshot") {
        return Ok(Command::DescribeSnapshot(PathBuf::from(path)));
    }

    let level = match value("level") {
        Some(raw) => Some(Level::parse(&raw).ok_or(CliError::InvalidLevel(raw))?),
        None => None,
    };

    Ok(Command::Run(Box::new(RunOptions {
        api_sock: PathBuf::from(value("api-sock").unwrap_or_else(|| DEFAULT_API_SOCK.into())),
        id: value("id").unwrap_or_else(|| DEFAULT_INSTANCE_ID.into()),
        config_file: value("config-file").map(PathBuf::from),
        no_api: present("no-api"),
        metadata: value("metadata").map(PathBuf::from),
        log_path: value("log-path").map(PathBuf::from),
        level,
        module: value("module"),
        show_level: present("show-level"),
        show_log_origin: present("show-log-origin"),
        metrics_path: value("metrics-path").map(PathBuf::from),
        boot_timer: present("boot-timer"),
        enable_pci: present("enable-pci"),
        max_payload: value("http-api-max-payload-size"),
        mmds_size_limit: value("mmds-size-limit"),
        extra_args,
    })))
}

/// Checks an instance id: 1 to 64 bytes, ASCII alphanumerics or `-`.
///
/// Returns the message Firecracker's panic prints for an invalid id.
pub fn validate_instance_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 64 {
        return Err(format!(
            "Invalid instance ID: Invalid len ({});  the length must be between 1 and 64",
            id.len()
        ));
    }
    if let Some((position, invalid)) = id
        .chars()
        .enumerate()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '-'))
    {
        return Err(format!(
            "Invalid instance ID: Invalid char ({invalid}) at position {position}"
        ));
    }
    Ok(())
}

/// Help text printed after the version line by `--help`.
pub const HELP: &str = "\
Arguments:
  --api-sock <path>                   Path to the API socket. [default: /run/firecracker.socket]
  --id <id>                           MicroVM unique identifier. [default: anonymous-instance]
  --config-file <path>                Path to a JSON file that configures and starts the microVM.
  --no-api                            Do not create the API socket; requires --config-file.
  --metadata <path>                   Path to a JSON file loaded into the MMDS data store.
  --log-path <path>                   Path to a file or FIFO for the log output.
  --level <level>                     Log level: Error, Warning, Info, Debug, Trace or Off.
  --module <module>                   Only log records whose module path starts with this prefix.
  --show-level                        Print the level of each log line.
  --show-log-origin                   Print the file and line of each log line.
  --metrics-path <path>               Path to a file or FIFO for the metrics output.
  --boot-timer                        Add the boot-timer device.
  --seccomp-filter <path>             Custom seccomp filter file; forbids --no-seccomp.
  --no-seccomp                        Disable seccomp; forbids --seccomp-filter.
  --http-api-max-payload-size <bytes> Maximum HTTP request body size. [default: 51200]
  --mmds-size-limit <bytes>           Maximum MMDS data store size. [default: the payload limit]
  --enable-pci                        Use virtio over PCI and allow device hotplug.
  --start-time-us <us>                Process start time, passed by the jailer.
  --start-time-cpu-us <us>            Process start CPU time, passed by the jailer.
  --parent-cpu-time-us <us>           Parent CPU time, passed by the jailer.
  --version                           Print the version and exit.
  --snapshot-version                  Print the snapshot data format version and exit.
  --describe-snapshot <path>          Print the data format version of a snapshot state file.
  --help, -h                          Print this help and exit.
";

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> RunOptions {
        match parse_args(args.iter().copied()) {
            Ok(Command::Run(options)) => *options,
            other => panic!("expected a run command, got {other:?}"),
        }
    }

    #[test]
    fn defaults_match_firecracker() {
        let options = run(&[]);
        assert_eq!(options.api_sock, PathBuf::from("/run/firecracker.socket"));
        assert_eq!(options.id, "anonymous-instance");
        assert!(!options.no_api);
    }

    #[test]
    fn equals_form_is_unexpected() {
        assert_eq!(
            parse_args(["--api-sock=/tmp/x"]),
            Err(CliError::UnexpectedArgument("api-sock=/tmp/x".into()))
        );
    }

    #[test]
    fn unknown_flag_rejected() {
        let error = parse_args(["--bogus"]).unwrap_err();
        assert_eq!(error, CliError::UnexpectedArgument("bogus".into()));
        assert_eq!(error.exit_code(), 153);
    }

    #[test]
    fn positional_rejected() {
        assert_eq!(
            parse_args(["stray"]),
            Err(CliError::UnexpectedArgument("stray".into()))
        );
    }

    #[test]
    fn value_starting_with_dashes_missing() {
        assert_eq!(
            parse_args(["--api-sock", "--id", "x"]),
            Err(CliError::MissingValue("api-sock".into()))
        );
        assert_eq!(
            parse_args(["--id"]),
            Err(CliError::MissingValue("id".into()))
        );
    }

    #[test]
    fn repeated_flag_rejected() {
        assert_eq!(
            parse_args(["--id", "a", "--id", "b"]),
            Err(CliError::DuplicateArgument("id".into()))
        );
    }

    #[test]
    fn no_api_requires_config_file() {
        assert_eq!(
            parse_args(["--no-api"]),
            Err(CliError::MissingArgument("config-file".into()))
        );
        let options = run(&["--no-api", "--config-file", "/tmp/c.json"]);
        assert!(options.no_api);
    }

    #[test]
    fn seccomp_flags_exclusive() {
        assert_eq!(
            parse_args(["--no-seccomp", "--seccomp-filter", "/f"]),
            Err(CliError::ForbiddenArgument(
                "no-seccomp".into(),
                "seccomp-filter".into()
            ))
        );
    }

    #[test]
    fn bad_level_exits_152() {
        let error = parse_args(["--level", "loud"]).unwrap_err();
        assert_eq!(error, CliError::InvalidLevel("loud".into()));
        assert_eq!(error.exit_code(), 152);
    }

    #[test]
    fn level_case_insensitive() {
        assert_eq!(run(&["--level", "warn"]).level, Some(Level::Warn));
        assert_eq!(run(&["--level", "DEBUG"]).level, Some(Level::Debug));
    }

    #[test]
    fn extra_args_after_double_dash() {
        let options = run(&["--id", "vm1", "--", "--whatever", "x"]);
        assert_eq!(options.extra_args, vec!["--whatever", "x"]);
        assert_eq!(options.id, "vm1");
    }

    #[test]
    fn version_and_help() {
        assert_eq!(parse_args(["--version"]), Ok(Command::Version));
        assert_eq!(parse_args(["-h"]), Ok(Command::Help));
        assert_eq!(
            parse_args(["--snapshot-version"]),
            Ok(Command::SnapshotVersion)
        );
    }

    #[test]
    fn instance_id_rules() {
        assert!(validate_instance_id("vm-1").is_ok());
        assert_eq!(
            validate_instance_id("a_b"),
            Err("Invalid instance ID: Invalid char (_) at position 1".into())
        );
        assert_eq!(
            validate_instance_id(&"a".repeat(65)),
            Err(
                "Invalid instance ID: Invalid len (65);  the length must be between 1 and 64"
                    .into()
            )
        );
        assert!(validate_instance_id("").is_err());
    }
}
