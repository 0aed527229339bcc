//! Serialising node configs and checking that the agent reads back exactly what was written.

use firework_model::diagnostic::ConfigError;
use firework_model::node::{NodeConfig, parse_node_config};

/// A node config that cannot be written or does not read back as written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// Serialising to YAML failed.
    #[error("failed to serialise {file}")]
    Serialize {
        /// The file being written.
        file: String,
        /// The serialiser's error.
        #[source]
        source: serde_saphyr::SerializeError,
    },
    /// The agent's parser rejects the rendered file.
    #[error("rendered {file} is rejected by the node config parser")]
    Rejected {
        /// The file.
        file: String,
        /// The parser's findings.
        #[source]
        source: ConfigError,
    },
    /// The agent's parser reads a different config than the one rendered.
    #[error("rendered {file} reads back differently: {detail}")]
    RoundTrip {
        /// The file.
        file: String,
        /// What differs.
        detail: String,
    },
}

/// The object key of a node's config below the publish prefix.
pub fn node_key(node: &str) -> String {
    format!("nodes/{node}.yaml")
}

/// Serialises `config` and checks it with the agent's parser. Keys come out in struct order
/// and maps sorted, so equal configs give equal bytes.
pub fn to_yaml(config: &NodeConfig, file: &str) -> Result<Vec<u8>, OutputError> {
    let mut options = serde_saphyr::SerializerOptions::default();
    // Long values such as kernel arguments stay on one line instead of folded blocks.
    options.prefer_block_scalars = false;
    let text = serde_saphyr::to_string_with_options(config, options).map_err(|source| {
        OutputError::Serialize {
            file: file.to_string(),
            source,
        }
    })?;
    let parsed =
        parse_node_config(text.as_bytes(), file).map_err(|source| OutputError::Rejected {
            file: file.to_string(),
            source,
        })?;
    if &parsed.value != config {
        return Err(OutputError::RoundTrip {
            file: file.to_string(),
            detail: format!("wrote {config:?}, read {:?}", parsed.value),
        });
    }
    if let Some(warning) = parsed.warnings.first() {
        return Err(OutputError::RoundTrip {
            file: file.to_string(),
            detail: format!("the parser warns: {warning}"),
        });
    }
    Ok(text.into_bytes())
}
