//! The bridge to the desired-state model: node config parsing and the registry record.
//!
//! Every byte string read from a store goes through [`parse`], so parsing happens in one place.

pub use firework_model::diagnostic::ConfigError;
pub use firework_model::node::{NodeConfig, parse_node_config};
pub use firework_model::registry::{NodeRecord, Resources};

/// Parses and validates a node config; `file` names the source in diagnostics. Warnings
/// (such as unknown keys) are logged and do not fail the read.
pub(crate) fn parse(bytes: &[u8], file: &str) -> Result<NodeConfig, ConfigError> {
    let parsed = parse_node_config(bytes, file)?;
    for warning in &parsed.warnings {
        tracing::warn!(file, path = %warning.path, code = warning.code, "{}", warning.message);
    }
    Ok(parsed.value)
}
