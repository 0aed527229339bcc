//! The `serve` configuration file.

use std::path::PathBuf;
use std::time::Duration;

use firework_model::duration::GoDuration;
use serde::Deserialize;

use super::webhook::Secret;
use crate::publish::ObjectOptions;
use crate::run::RunConfig;

/// Default body size limit: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;

/// The YAML configuration of `firework-enricher serve`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    /// Address to listen on, e.g. `127.0.0.1:8080`.
    pub listen: String,
    /// The Git repository to render; pushes never choose another one.
    pub repository: String,
    /// The branch whose pushes render.
    #[serde(default = "default_branch")]
    pub branch: String,
    /// Directory inside the repository that holds the input tree.
    #[serde(default)]
    pub config_dir: Option<String>,
    /// Where to publish.
    pub output: String,
    /// Registry location; enables the scheduler.
    #[serde(default)]
    pub registry: Option<String>,
    /// S3-compatible endpoint.
    #[serde(default)]
    pub s3_endpoint: Option<String>,
    /// S3 region.
    #[serde(default)]
    pub s3_region: Option<String>,
    /// File holding the webhook secret.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// Environment variable holding the webhook secret.
    #[serde(default)]
    pub secret_env: Option<String>,
    /// Largest accepted request body.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Time between scheduled renders, a Go duration such as `5m`; none when unset.
    #[serde(default)]
    pub interval: Option<GoDuration>,
    /// Publish an empty result.
    #[serde(default)]
    pub allow_empty: bool,
    /// A routed service without a port forward is an error.
    #[serde(default)]
    pub require_remote_routing: bool,
}

fn default_branch() -> String {
    "main".to_string()
}

fn default_max_body() -> usize {
    DEFAULT_MAX_BODY_BYTES
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ServeConfigError {
    /// The file could not be read.
    #[error("failed to read {}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid configuration.
    #[error("invalid serve configuration {}: {message}", .path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// No secret was configured or it is empty.
    #[error("no webhook secret: set secret_file or secret_env to a non-empty secret")]
    NoSecret,
}

impl ServeConfig {
    /// Reads and parses a configuration file.
    pub fn load(path: &std::path::Path) -> Result<ServeConfig, ServeConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ServeConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        serde_saphyr::from_str(&text).map_err(|e| ServeConfigError::Invalid {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// Reads the secret from the file or the environment variable.
    pub fn secret(&self) -> Result<Secret, ServeConfigError> {
        let value = if let Some(file) = &self.secret_file {
            let text = std::fs::read_to_string(file).map_err(|source| ServeConfigError::Read {
                path: file.clone(),
                source,
            })?;
            text.trim_end_matches(['\r', '\n']).to_string()
        } else if let Some(name) = &self.secret_env {
            std::env::var(name).unwrap_or_default()
        } else {
            String::new()
        };
        Secret::new(value).ok_or(ServeConfigError::NoSecret)
    }

    /// The run configuration for renders of the configured branch.
    pub fn run_config(&self) -> RunConfig {
        RunConfig {
            input: self.repository.clone(),
            reference: Some(self.branch.clone()),
            subdir: self.config_dir.clone(),
            output: self.output.clone(),
            object: ObjectOptions {
                endpoint: self.s3_endpoint.clone(),
                region: self.s3_region.clone(),
                credentials: None,
            },
            registry: self.registry.clone(),
            node_ttl: None,
            allow_empty: self.allow_empty,
            dry_run: false,
            require_remote_routing: self.require_remote_routing,
        }
    }

    /// The timer period, if any.
    pub fn interval(&self) -> Option<Duration> {
        self.interval.map(Duration::from).filter(|d| !d.is_zero())
    }
}
