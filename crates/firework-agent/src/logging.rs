//! Log output: text or JSON lines on stderr, level from `RUST_LOG` or the config.

use firework_model::agent::{LogFormat, LogLevel};

/// Installs the global subscriber. `RUST_LOG`, when set, overrides `level`.
pub fn init(level: LogLevel, format: LogFormat) {
    let default = match level {
        LogLevel::Trace => "trace",
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
    };
    if let Err(error) = firework_logging::init(default, format) {
        eprintln!("firework-agent: cannot install the logger: {error}");
    }
}
