//! The log output of the Firework service binaries: text or JSON lines on standard error.
//!
//! `RUST_LOG`, when set, overrides the binary's default filter. Text lines carry colour
//! codes only on a terminal and never while `NO_COLOR` is set to a non-empty value, so
//! that journald, log files and log shippers get plain text.

use std::ffi::OsStr;
use std::io::IsTerminal;

pub use firework_model::agent::LogFormat;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber with `default_filter` (an `EnvFilter` directive such as
/// `info` or `warn,firework_agent=debug`) unless `RUST_LOG` is set.
///
/// # Errors
///
/// Returns the subscriber's error when a global subscriber is already installed. The
/// binary then keeps the one it has.
pub fn init(
    default_filter: &str,
    format: LogFormat,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour(
            std::io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR").as_deref(),
        ))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    }
}

/// Returns whether text lines get colour codes: only on a terminal, and not while
/// `NO_COLOR` is set to a non-empty value.
fn colour(stderr_is_terminal: bool, no_color: Option<&OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(OsStr::is_empty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_terminal() {
        assert!(colour(true, None));
        assert!(!colour(false, None));
    }

    #[test]
    fn no_color_turns_colour_off() {
        assert!(!colour(true, Some(OsStr::new("1"))));
    }

    #[test]
    fn empty_no_color_ignored() {
        assert!(colour(true, Some(OsStr::new(""))));
    }

    #[test]
    fn second_init_fails() {
        init("warn", LogFormat::Text).unwrap();

        let again = init("warn", LogFormat::Json);

        assert!(again.is_err());
    }
}
