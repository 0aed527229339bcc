//! `fireworkctl validate`: checks agent configs, node configs and enricher input trees.

use std::fmt;
use std::path::{Path, PathBuf};

use firework_model::diagnostic::{ConfigError, Diagnostic, Severity};
use firework_model::{agent, node, spec};
use serde::Serialize;

/// Config surface of a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// An agent config (`agent.yaml`).
    Agent,
    /// One node config, or a directory of them (`nodes/`).
    Node,
    /// An enricher input tree (`defaults.yaml`, `services/`, `tenants/`).
    Input,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Agent => "agent config",
            Kind::Node => "node config",
            Kind::Input => "enricher input",
        })
    }
}

/// A path that cannot be validated at all.
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    /// The path could not be read.
    #[error("failed to read {path}")]
    Read {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The kind of the path could not be detected from its name or content.
    #[error("cannot tell what {path} is: pass --kind agent, node or input")]
    UnknownKind {
        /// The path.
        path: PathBuf,
    },
}

/// The result of validating one path.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The path as given.
    pub path: String,
    /// Kind the path was validated as.
    pub kind: Kind,
    /// Every error and warning.
    pub diagnostics: Vec<Diagnostic>,
}

impl Report {
    /// Counts the findings of one severity.
    pub fn count(&self, severity: Severity) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == severity)
            .count()
    }
}

/// Detects the config surface of `path` from its name and, for files, its top-level keys.
pub fn detect_kind(path: &Path) -> Result<Kind, ValidateError> {
    let read_error = |source| ValidateError::Read {
        path: path.to_path_buf(),
        source,
    };
    let metadata = std::fs::metadata(path).map_err(read_error)?;
    if metadata.is_dir() {
        if path.join("defaults.yaml").is_file()
            || path.join("services").is_dir()
            || path.join("tenants").is_dir()
        {
            return Ok(Kind::Input);
        }
        if path.join("nodes").is_dir()
            || path.file_name().is_some_and(|n| n == "nodes")
            || holds_only_node_configs(path)
        {
            return Ok(Kind::Node);
        }
        return Err(ValidateError::UnknownKind {
            path: path.to_path_buf(),
        });
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name.starts_with("agent") {
        return Ok(Kind::Agent);
    }
    if path
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|n| n == "nodes")
    {
        return Ok(Kind::Node);
    }
    let text = std::fs::read_to_string(path).map_err(read_error)?;
    kind_of_text(&text).ok_or_else(|| ValidateError::UnknownKind {
        path: path.to_path_buf(),
    })
}

/// Returns the kind of a config file from its top-level keys.
fn kind_of_text(text: &str) -> Option<Kind> {
    let has_top_key = |key: &str| {
        text.lines()
            .any(|line| line.starts_with(&format!("{key}:")))
    };
    if has_top_key("services") {
        return Some(Kind::Node);
    }
    if has_top_key("store_type") || has_top_key("node_name") || has_top_key("store_url") {
        return Some(Kind::Agent);
    }
    None
}

/// Returns whether `dir` directly contains at least one `*.yaml` or `*.yml` file and every
/// such file reads as a node config, so that a copy of `nodes/` under another name is
/// still recognised.
fn holds_only_node_configs(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    let mut found = false;
    for entry in entries.filter_map(Result::ok) {
        let file = entry.path();
        let is_yaml = file.extension().is_some_and(|e| e == "yaml" || e == "yml");
        if !is_yaml || !file.is_file() {
            continue;
        }
        let node = std::fs::read_to_string(&file)
            .ok()
            .and_then(|text| kind_of_text(&text))
            == Some(Kind::Node);
        if !node {
            return false;
        }
        found = true;
    }
    found
}

/// Validates `path` as `kind` (detected when `None`).
pub fn validate_path(path: &Path, kind: Option<Kind>) -> Result<Report, ValidateError> {
    let kind = match kind {
        Some(kind) => kind,
        None => detect_kind(path)?,
    };
    let shown = path.display().to_string();
    let diagnostics = match kind {
        Kind::Agent => {
            let bytes = read(path)?;
            collect(
                agent::parse_agent_config(&bytes, &shown, &|| Some("localhost".to_string()))
                    .map(|p| p.warnings),
            )
        }
        Kind::Node => validate_nodes(path)?,
        Kind::Input => {
            let diagnostics = match spec::load_input_tree(path) {
                Ok(tree) => tree.warnings,
                Err(spec::InputError::Invalid { diagnostics }) => diagnostics,
                Err(spec::InputError::Read { path, source }) => {
                    return Err(ValidateError::Read { path, source });
                }
            };
            // The model names files relative to the tree's root; show them as the user wrote
            // the root.
            diagnostics
                .into_iter()
                .map(|mut d| {
                    d.file = path.join(&d.file).display().to_string();
                    d
                })
                .collect()
        }
    };
    Ok(Report {
        path: shown,
        kind,
        diagnostics,
    })
}

fn read(path: &Path) -> Result<Vec<u8>, ValidateError> {
    std::fs::read(path).map_err(|source| ValidateError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn collect(result: Result<Vec<Diagnostic>, ConfigError>) -> Vec<Diagnostic> {
    match result {
        Ok(warnings) => warnings,
        Err(error) => error.diagnostics().to_vec(),
    }
}

/// Validates one node config, or every `*.yaml` in a `nodes/` directory (or in the `nodes/`
/// directory below `path`).
fn validate_nodes(path: &Path) -> Result<Vec<Diagnostic>, ValidateError> {
    if path.is_file() {
        let bytes = read(path)?;
        return Ok(collect(
            node::parse_node_config(&bytes, &path.display().to_string()).map(|p| p.warnings),
        ));
    }
    let dir = if path.join("nodes").is_dir() {
        path.join("nodes")
    } else {
        path.to_path_buf()
    };
    let entries = std::fs::read_dir(&dir).map_err(|source| ValidateError::Read {
        path: dir.clone(),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut diagnostics = Vec::new();
    for file in files {
        let bytes = read(&file)?;
        diagnostics.extend(collect(
            node::parse_node_config(&bytes, &file.display().to_string()).map(|p| p.warnings),
        ));
    }
    Ok(diagnostics)
}
