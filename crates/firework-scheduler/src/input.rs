//! Readers for the command-line tool's files: rendered services and previous node configs.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tracing::debug;

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
    /// A file is not valid YAML of the expected shape.
    #[error("invalid {what} {path}: {message}")]
    Parse {
        /// `services file` or `node config`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A directory contains no YAML file.
    #[error("no .yaml or .yml file in {path}")]
    Empty {
        /// The directory.
        path: PathBuf,
    },
}

/// The fields of a rendered service that placement reads; other keys are ignored.
#[derive(Debug, Deserialize)]
struct ServiceDocument {
    name: String,
    vcpus: u32,
    memory_mb: u64,
    #[serde(default)]
    node_type: Option<String>,
    #[serde(default)]
    anti_affinity_group: Option<String>,
}

impl From<ServiceDocument> for ServiceRequest {
    fn from(doc: ServiceDocument) -> Self {
        Self {
            name: doc.name,
            vcpus: doc.vcpus,
            memory_mb: doc.memory_mb,
            node_type: doc.node_type,
            anti_affinity_group: doc.anti_affinity_group,
        }
    }
}

/// A node config (`services:` list) or a single service document.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ServicesFile {
    NodeConfig { services: Vec<ServiceDocument> },
    Single(ServiceDocument),
}

/// Only the service names of a node config.
#[derive(Debug, Deserialize)]
struct NodeConfigNames {
    services: Vec<NamedService>,
}

#[derive(Debug, Deserialize)]
struct NamedService {
    name: String,
}

/// Reads rendered services from a YAML file, or from every `.yaml`/`.yml` file directly in
/// a directory (in file-name order). Each file is either a node config with a `services:`
/// list or one service with at least `name`, `vcpus` and `memory_mb`.
pub fn read_services(path: &Path) -> Result<Vec<ServiceRequest>, InputError> {
    let mut services = Vec::new();
    for file in yaml_files(path, false)? {
        let text = read_text(&file)?;
        let parsed: ServicesFile = serde_saphyr::from_str(&text).map_err(|e| InputError::Parse {
            what: "services file",
            path: file.clone(),
            message: format!(
                "expected a node config with a `services:` list or one service with `name`, `vcpus` and `memory_mb` ({e})"
            ),
        })?;
        match parsed {
            ServicesFile::NodeConfig { services: list } => {
                services.extend(list.into_iter().map(ServiceRequest::from));
            }
            ServicesFile::Single(service) => services.push(service.into()),
        }
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
        let text = read_text(&file)?;
        let config: NodeConfigNames =
            serde_saphyr::from_str(&text).map_err(|e| InputError::Parse {
                what: "node config",
                path: file.clone(),
                message: e.to_string(),
            })?;
        existing.extend(
            config
                .services
                .into_iter()
                .map(|s| ExistingPlacement::new(s.name, &node)),
        );
    }
    Ok(existing)
}

fn read_text(path: &Path) -> Result<String, InputError> {
    fs::read_to_string(path).map_err(|source| InputError::Read {
        path: path.to_owned(),
        source,
    })
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
