//! Fault injection, configured through environment variables so a test can make one
//! emulator process misbehave without changing its command line.

use std::time::Duration;

/// Delay in milliseconds before each API request is processed.
pub const ENV_API_DELAY_MS: &str = "FC_EMULATOR_API_DELAY_MS";
/// When set, every `InstanceStart` fails with 400 and `Start microvm error: <value>`.
pub const ENV_FAIL_INSTANCE_START: &str = "FC_EMULATOR_FAIL_INSTANCE_START";
/// Milliseconds after a successful `InstanceStart` at which the process crashes.
pub const ENV_CRASH_AFTER_MS: &str = "FC_EMULATOR_CRASH_AFTER_MS";
/// How the crash happens: `exit:<status>` (default `exit:1`) or `sigkill`.
pub const ENV_CRASH_MODE: &str = "FC_EMULATOR_CRASH_MODE";
/// Exit status with which the process exits at once, before it binds the API socket.
pub const ENV_EXIT_ON_START: &str = "FC_EMULATOR_EXIT_ON_START";
/// When set to `1`, the emulated guest ignores `SendCtrlAltDel` and keeps running.
pub const ENV_IGNORE_CTRL_ALT_DEL: &str = "FC_EMULATOR_IGNORE_CTRL_ALT_DEL";

/// How an injected crash ends the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// Log Firecracker's error exit line and exit with this status.
    Exit(i32),
    /// Send SIGKILL to itself: no log line, no metrics flush.
    SigKill,
}

/// The faults one emulator process injects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultConfig {
    pub api_delay: Option<Duration>,
    pub fail_instance_start: Option<String>,
    pub crash_after_start: Option<(Duration, CrashMode)>,
    pub exit_on_start: Option<i32>,
    pub ignore_ctrl_alt_del: bool,
}

/// An environment variable with a value the emulator cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value {value:?} in {variable}: expected {expected}")]
pub struct FaultConfigError {
    pub variable: &'static str,
    pub value: String,
    pub expected: &'static str,
}

impl FaultConfig {
    /// Reads the fault variables from the process environment.
    pub fn from_env() -> Result<FaultConfig, FaultConfigError> {
        FaultConfig::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the fault variables through `lookup`, which returns a variable's value.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<FaultConfig, FaultConfigError> {
        let milliseconds = |variable: &'static str| -> Result<Option<Duration>, FaultConfigError> {
            match lookup(variable) {
                None => Ok(None),
                Some(value) => value
                    .trim()
                    .parse::<u64>()
                    .map(|ms| Some(Duration::from_millis(ms)))
                    .map_err(|_| FaultConfigError {
                        variable,
                        value,
                        expected: "a whole number of milliseconds",
                    }),
            }
        };

        let crash_mode = match lookup(ENV_CRASH_MODE) {
            None => CrashMode::Exit(1),
            Some(value) => parse_crash_mode(&value).ok_or(FaultConfigError {
                variable: ENV_CRASH_MODE,
                value,
                expected: "exit:<status> or sigkill",
            })?,
        };

        let exit_on_start = match lookup(ENV_EXIT_ON_START) {
            None => None,
            Some(value) => Some(value.trim().parse::<i32>().map_err(|_| FaultConfigError {
                variable: ENV_EXIT_ON_START,
                value,
                expected: "an exit status",
            })?),
        };

        let ignore_ctrl_alt_del = match lookup(ENV_IGNORE_CTRL_ALT_DEL).as_deref() {
            None | Some("0") | Some("") => false,
            Some("1") => true,
            Some(other) => {
                return Err(FaultConfigError {
                    variable: ENV_IGNORE_CTRL_ALT_DEL,
                    value: other.to_string(),
                    expected: "0 or 1",
                });
            }
        };

        Ok(FaultConfig {
            api_delay: milliseconds(ENV_API_DELAY_MS)?,
            fail_instance_start: lookup(ENV_FAIL_INSTANCE_START),
            crash_after_start: milliseconds(ENV_CRASH_AFTER_MS)?.map(|delay| (delay, crash_mode)),
            exit_on_start,
            ignore_ctrl_alt_del,
        })
    }
}

fn parse_crash_mode(value: &str) -> Option<CrashMode> {
    let value = value.trim();
    if value.eq_ignore_ascii_case("sigkill") {
        return Some(CrashMode::SigKill);
    }
    let status = value.strip_prefix("exit:")?.parse().ok()?;
    Some(CrashMode::Exit(status))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<FaultConfig, FaultConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        FaultConfig::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn empty_environment_injects_nothing() {
        assert_eq!(config(&[]).unwrap(), FaultConfig::default());
    }

    #[test]
    fn crash_defaults_to_exit_1() {
        let faults = config(&[(ENV_CRASH_AFTER_MS, "250")]).unwrap();
        assert_eq!(
            faults.crash_after_start,
            Some((Duration::from_millis(250), CrashMode::Exit(1)))
        );
    }

    #[test]
    fn crash_mode_sigkill() {
        let faults = config(&[(ENV_CRASH_AFTER_MS, "0"), (ENV_CRASH_MODE, "sigkill")]).unwrap();
        assert_eq!(
            faults.crash_after_start,
            Some((Duration::ZERO, CrashMode::SigKill))
        );
    }

    #[test]
    fn invalid_values_named() {
        let error = config(&[(ENV_API_DELAY_MS, "fast")]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid value \"fast\" in FC_EMULATOR_API_DELAY_MS: expected a whole number of milliseconds"
        );
        let error = config(&[(ENV_CRASH_MODE, "boom")]).unwrap_err();
        assert_eq!(error.variable, ENV_CRASH_MODE);
        let error = config(&[(ENV_IGNORE_CTRL_ALT_DEL, "yes")]).unwrap_err();
        assert_eq!(error.variable, ENV_IGNORE_CTRL_ALT_DEL);
    }
}
