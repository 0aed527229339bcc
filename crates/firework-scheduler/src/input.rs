//! Readers for the command-line tool's files: rendered services and previous node configs,
//! both in the node config format that agents read.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use firework_model::ConfigError;
use firework_model::node::{NodeConfig, NodeConfigRules, parse_node_config_with};
use tracing::{debug, warn};

use crate::request::{ExistingPlacement, ServiceRequest};

/// Errors of reading services or node configs.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// A file or directory could not be read.
    #[error("failed to read {path}")]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A file is not a valid node config; the error names the file and every finding.
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    /// A directory contains no YAML file.
    #[error("no .yaml or .yml file in {path}")]
    Empty {
        /// The directory.
        path: PathBuf,
    },
}

/// The rules for services to place: two of them may forward the same host port, because
/// the scheduler keeps such services on different nodes.
pub const PLACEMENT_RULES: NodeConfigRules = NodeConfigRules {
    shared_host_ports: true,
};

/// Reads rendered services from a node config file, or from every `.yaml`/`.yml` file
/// directly in a directory (in file-name order). Each file must be a valid node config with
/// a `services:` list, except that services may share host ports ([`PLACEMENT_RULES`]);
/// warnings are logged.
pub fn read_services(path: &Path) -> Result<Vec<ServiceRequest>, InputError> {
    let mut services = Vec::new();
    for file in yaml_files(path, false)? {
        let config = read_node_config(&file, PLACEMENT_RULES)?;
        services.extend(config.services.iter().map(ServiceRequest::from));
    }
    Ok(services)
}

/// Reads the previous placement from a directory of node configs `<node>.yaml`: every
/// service listed in a file was placed on the node the file is named for. A directory
/// without YAML files means no previous placement.
pub fn read_existing(dir: &Path) -> Result<Vec<ExistingPlacement>, InputError> {
    let mut existing = Vec::new();
    for file in yaml_files(dir, true)? {
        let node = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let config = read_node_config(&file, NodeConfigRules::default())?;
        existing.extend(
            config
                .services
                .into_iter()
                .map(|s| ExistingPlacement::new(s.name, &node)),
        );
    }
    Ok(existing)
}

fn read_node_config(path: &Path, rules: NodeConfigRules) -> Result<NodeConfig, InputError> {
    let bytes = fs::read(path).map_err(|source| InputError::Read {
        path: path.to_owned(),
        source,
    })?;
    let parsed = parse_node_config_with(&bytes, &path.display().to_string(), rules)?;
    for warning in &parsed.warnings {
        warn!(path = %path.display(), "{warning}");
    }
    Ok(parsed.value)
}

/// Returns `path` itself when it is a file, else the YAML files directly inside it, which
/// must be at least one unless `allow_empty`.
fn yaml_files(path: &Path, allow_empty: bool) -> Result<Vec<PathBuf>, InputError> {
    let read_error = |source| InputError::Read {
        path: path.to_owned(),
        source,
    };
    let metadata = fs::metadata(path).map_err(read_error)?;
    if metadata.is_file() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files = Vec::new();
    for entry in fs::read_dir(path).map_err(read_error)? {
        let file = entry.map_err(read_error)?.path();
        let is_yaml = file.extension().is_some_and(|e| e == "yaml" || e == "yml");
        if is_yaml && file.is_file() {
            files.push(file);
        } else {
            debug!(path = %file.display(), "not a YAML file, skipped");
        }
    }
    if files.is_empty() && !allow_empty {
        return Err(InputError::Empty {
            path: path.to_owned(),
        });
    }
    files.sort();
    Ok(files)
}
