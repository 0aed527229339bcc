//! Log output: text or JSON lines on stderr, level from `RUST_LOG` or the config.

use std::io::IsTerminal;

use firework_model::agent::{LogFormat, LogLevel};
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `RUST_LOG`, when set, overrides `level`.
pub fn init(level: LogLevel, format: LogFormat) {
    let default = match level {
        LogLevel::Trace => "trace",
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour_stderr())
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
    if let Err(error) = result {
        eprintln!("firework-agent: cannot install the logger: {error}");
    }
}

/// Returns whether text logs get colour codes: only on a terminal, and never with
/// `NO_COLOR` set, so that journald, log files and shippers get plain text.
fn colour_stderr() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}
