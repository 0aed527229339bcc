//! The enricher's input tree: `defaults.yaml`, `services/*.yaml` and `tenants/<id>/*.yaml`.
//!
//! Each service and tenant file contains one service spec. Scalars keep the text they were
//! written with, so an env value `NO` or `0800` reaches the guest unchanged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::decode::{Decoder, Fields, Schema};
use crate::diagnostic::{ConfigError, Diagnostic, Findings};
use crate::duration::GoDuration;
use crate::names;
use crate::node::CI_ONLY_KEYS;
use crate::service::{CrossNodeLink, HEALTH_CHECK_KEYS, Link, PortForward};
use crate::yaml::{self, Position};

/// A health check as written in a spec or in `defaults.yaml`: every field optional, merged
/// field by field with the defaults by the enricher.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct HealthCheckSpec {
    /// `http` or `tcp`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Explicit probe target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Guest port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// HTTP path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Time between probes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<GoDuration>,
    /// Time one probe may take.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<GoDuration>,
    /// Failures before a restart.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Time after start during which failures do not count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_period: Option<GoDuration>,
    /// Successes needed to count as healthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub success_threshold: Option<u32>,
    /// The only HTTP status that counts as healthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_status: Option<u16>,
}

/// `defaults.yaml`: values for services that do not set them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Defaults {
    /// Kernel path.
    pub kernel: Option<String>,
    /// vCPUs.
    pub vcpus: Option<u32>,
    /// Memory in MiB.
    pub memory_mb: Option<u32>,
    /// Boot arguments.
    pub kernel_args: Option<String>,
    /// Health check merged into each service's own.
    pub health_check: Option<HealthCheckSpec>,
}

/// One service spec (`services/<file>.yaml`) or tenant file (`tenants/<id>/<base>.yaml`).
///
/// Every field is optional here; which ones are required depends on where the file sits and
/// is checked by the enricher after tenant expansion.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ServiceSpec {
    /// Service name; tenant files take theirs from the file name.
    pub name: Option<String>,
    /// Root filesystem image.
    pub image: Option<String>,
    /// Kernel path.
    pub kernel: Option<String>,
    /// vCPUs.
    pub vcpus: Option<u32>,
    /// Memory in MiB.
    pub memory_mb: Option<u32>,
    /// Boot arguments.
    pub kernel_args: Option<String>,
    /// Node type the service is grouped or scheduled by.
    pub node_type: Option<String>,
    /// Networking on or off; `None` when not written.
    pub network: Option<bool>,
    /// Host ports forwarded to the guest; `None` when not written.
    pub port_forwards: Option<Vec<PortForward>>,
    /// Health check.
    pub health_check: Option<HealthCheckSpec>,
    /// Environment.
    pub env: BTreeMap<String, String>,
    /// Same-node links; `None` when not written.
    pub links: Option<Vec<Link>>,
    /// Free-form labels.
    pub metadata: BTreeMap<String, String>,
    /// Anti-affinity group.
    pub anti_affinity_group: Option<String>,
    /// Cross-node links; `None` when not written.
    pub cross_node_links: Option<Vec<CrossNodeLink>>,
    /// Env var that receives the node's host IP.
    pub node_host_ip_env: Option<String>,
    /// Lets tenant files of this base service set `kernel_args`.
    pub allow_tenant_kernel_args: bool,
}

/// A spec file together with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecFile {
    /// Path relative to the input root, e.g. `services/web.yaml`.
    pub file: String,
    /// The decoded spec.
    pub spec: ServiceSpec,
}

/// One tenant's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// The tenant id: the directory name under `tenants/`.
    pub id: String,
    /// Tenant files, keyed by base name (file name without `.yaml` or `.yml`), sorted.
    pub files: BTreeMap<String, SpecFile>,
}

/// A whole enricher input tree.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InputTree {
    /// `defaults.yaml`, when present.
    pub defaults: Defaults,
    /// `services/*.yaml` and `*.yml`, in file name order.
    pub services: Vec<SpecFile>,
    /// `tenants/<id>/`, in id order.
    pub tenants: Vec<Tenant>,
    /// Warnings found while reading.
    pub warnings: Vec<Diagnostic>,
}

const DEFAULTS_KEYS: &[&str] = &[
    "kernel",
    "vcpus",
    "memory_mb",
    "kernel_args",
    "health_check",
];

const SPEC_KEYS: &[&str] = &[
    "name",
    "image",
    "kernel",
    "vcpus",
    "memory_mb",
    "kernel_args",
    "node_type",
    "network",
    "port_forwards",
    "health_check",
    "env",
    "links",
    "metadata",
    "anti_affinity_group",
    "cross_node_links",
    "node_host_ip_env",
    "allow_tenant_kernel_args",
];

const TENANT_KEYS: &[&str] = &[
    "image",
    "vcpus",
    "memory_mb",
    "kernel_args",
    "node_type",
    "network",
    "port_forwards",
    "health_check",
    "env",
    "links",
    "metadata",
    "anti_affinity_group",
    "cross_node_links",
    "node_host_ip_env",
];

/// Which kind of spec file is read; it decides the accepted keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecKind {
    /// `services/<file>.yaml`.
    Service,
    /// `tenants/<id>/<base>.yaml`: no `name`, no `kernel`.
    Tenant,
}

/// An input tree that could not be read or has invalid files.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// A file or directory could not be read.
    #[error("failed to read {path}")]
    Read {
        /// The path that failed.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// One or more files are invalid; `diagnostics` contains every finding of every file.
    #[error("input is invalid: {} errors in {} files", .diagnostics.iter().filter(|d| d.is_error()).count(), count_files(.diagnostics))]
    Invalid {
        /// All findings.
        diagnostics: Vec<Diagnostic>,
    },
}

fn count_files(diagnostics: &[Diagnostic]) -> usize {
    let mut files: Vec<&str> = diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.file.as_str())
        .collect();
    files.sort_unstable();
    files.dedup();
    files.len()
}

/// Parses `defaults.yaml`.
pub fn parse_defaults(
    bytes: &[u8],
    file: &str,
) -> Result<(Defaults, Vec<Diagnostic>), ConfigError> {
    let mut decoder = Decoder::new(file);
    let defaults = parse_root(&mut decoder, bytes).and_then(|root| {
        let fields = decoder.mapping(&root, "", Schema::closed(DEFAULTS_KEYS))?;
        Some(Defaults {
            kernel: decoder.checked_string(
                &fields,
                "kernel",
                "kernel path",
                false,
                names::check_host_path,
            ),
            vcpus: decoder.vcpus(&fields),
            memory_mb: decoder.memory_mb(&fields),
            kernel_args: decoder.opt_string(&fields, "kernel_args"),
            health_check: fields
                .get("health_check")
                .and_then(|n| health_check_spec(&mut decoder, n, "health_check")),
        })
    });
    finish(decoder.findings, defaults.unwrap_or_default())
}

/// Parses one service spec or tenant file.
pub fn parse_spec(
    bytes: &[u8],
    file: &str,
    kind: SpecKind,
) -> Result<(ServiceSpec, Vec<Diagnostic>), ConfigError> {
    let mut decoder = Decoder::new(file);
    let spec = parse_root(&mut decoder, bytes).and_then(|root| {
        let schema = Schema {
            known: match kind {
                SpecKind::Service => SPEC_KEYS,
                SpecKind::Tenant => TENANT_KEYS,
            },
            ci_only: CI_ONLY_KEYS,
            open: false,
        };
        let fields = decoder.mapping(&root, "", schema)?;
        Some(decode_spec(&mut decoder, &fields))
    });
    finish(decoder.findings, spec.unwrap_or_default())
}

fn finish<T>(findings: Findings, value: T) -> Result<(T, Vec<Diagnostic>), ConfigError> {
    ConfigError::check(findings, value).map(|parsed| (parsed.value, parsed.warnings))
}

fn parse_root(decoder: &mut Decoder, bytes: &[u8]) -> Option<yaml::Node> {
    let top = Position { line: 1, column: 1 };
    let Ok(text) = std::str::from_utf8(bytes) else {
        decoder.error(
            "invalid-encoding",
            "",
            top,
            "the file is not valid UTF-8".to_string(),
        );
        return None;
    };
    match yaml::parse(text) {
        Ok(Some(root)) => Some(root),
        Ok(None) => Some(yaml::Node {
            kind: yaml::NodeKind::Null,
            position: top,
        }),
        Err(error) => {
            decoder.error(
                "invalid-yaml",
                "",
                error.position,
                format!("invalid YAML: {}", error.message),
            );
            None
        }
    }
}

fn health_check_spec(
    decoder: &mut Decoder,
    node: &yaml::Node,
    path: &str,
) -> Option<HealthCheckSpec> {
    let fields = decoder.mapping(node, path, Schema::closed(HEALTH_CHECK_KEYS))?;
    let kind = decoder.opt_string(&fields, "type");
    if let Some(text) = &kind
        && text != "http"
        && text != "tcp"
    {
        let at = fields.get("type").map_or(fields.position, |n| n.position);
        decoder.error(
            "invalid-value",
            &fields.path_of("type"),
            at,
            format!("invalid health check type {text:?}: allowed http or tcp"),
        );
    }
    let path_value = decoder.opt_string(&fields, "path");
    if let Some(text) = &path_value
        && !text.starts_with('/')
    {
        let at = fields.get("path").map_or(fields.position, |n| n.position);
        decoder.error(
            "invalid-value",
            &fields.path_of("path"),
            at,
            format!("invalid path {text:?}: an HTTP path starts with '/'"),
        );
    }
    Some(HealthCheckSpec {
        kind,
        target: decoder.opt_string(&fields, "target"),
        port: decoder.port(&fields, "port", false),
        path: path_value,
        interval: decoder.opt_duration(&fields, "interval"),
        timeout: decoder.opt_duration(&fields, "timeout"),
        retries: decoder.opt_integer(&fields, "retries"),
        start_period: decoder.opt_duration(&fields, "start_period"),
        success_threshold: decoder.opt_integer(&fields, "success_threshold"),
        expected_status: decoder.opt_integer(&fields, "expected_status"),
    })
}

fn decode_spec(decoder: &mut Decoder, fields: &Fields<'_>) -> ServiceSpec {
    ServiceSpec {
        name: decoder.checked_string(
            fields,
            "name",
            "service name",
            false,
            names::check_service_name,
        ),
        image: decoder.checked_string(fields, "image", "image path", false, names::check_host_path),
        kernel: decoder.checked_string(
            fields,
            "kernel",
            "kernel path",
            false,
            names::check_host_path,
        ),
        vcpus: decoder.vcpus(fields),
        memory_mb: decoder.memory_mb(fields),
        kernel_args: decoder.opt_string(fields, "kernel_args"),
        node_type: decoder.checked_string(
            fields,
            "node_type",
            "node type",
            false,
            names::check_node_label,
        ),
        network: decoder.opt_boolean(fields, "network"),
        port_forwards: fields.get("port_forwards").map(|n| {
            decoder
                .port_forwards(n, &fields.path_of("port_forwards"))
                .into_iter()
                .map(|(forward, _)| forward)
                .collect()
        }),
        health_check: fields
            .get("health_check")
            .and_then(|n| health_check_spec(decoder, n, &fields.path_of("health_check"))),
        env: fields
            .get("env")
            .map(|n| decoder.env(n, &fields.path_of("env")))
            .unwrap_or_default(),
        links: fields
            .get("links")
            .map(|n| decoder.links(n, &fields.path_of("links"))),
        metadata: fields
            .get("metadata")
            .map(|n| decoder.metadata(n, &fields.path_of("metadata")))
            .unwrap_or_default(),
        anti_affinity_group: decoder.checked_string(
            fields,
            "anti_affinity_group",
            "anti-affinity group",
            false,
            names::check_node_label,
        ),
        cross_node_links: fields
            .get("cross_node_links")
            .map(|n| decoder.cross_node_links(n, &fields.path_of("cross_node_links"))),
        node_host_ip_env: decoder.checked_string(
            fields,
            "node_host_ip_env",
            "environment variable name",
            false,
            names::check_env_key,
        ),
        allow_tenant_kernel_args: decoder
            .opt_boolean(fields, "allow_tenant_kernel_args")
            .unwrap_or(false),
    }
}

fn is_yaml_file(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, InputError> {
    let read = std::fs::read_dir(dir).map_err(|source| InputError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut paths = Vec::new();
    for entry in read {
        let entry = entry.map_err(|source| InputError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        paths.push(entry.path());
    }
    paths.sort();
    Ok(paths)
}

fn read_file(path: &Path) -> Result<Vec<u8>, InputError> {
    std::fs::read(path).map_err(|source| InputError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Reads a whole input tree, collecting the findings of every file before failing.
///
/// Missing `defaults.yaml`, `services/` or `tenants/` are fine. Files that do not end in
/// `.yaml` or `.yml` are skipped.
pub fn load_input_tree(root: &Path) -> Result<InputTree, InputError> {
    let mut tree = InputTree::default();
    let mut diagnostics: Vec<Diagnostic> = Vec::new();
    let record = |result: Result<Vec<Diagnostic>, ConfigError>,
                  diagnostics: &mut Vec<Diagnostic>| match result {
        Ok(warnings) => diagnostics.extend(warnings),
        Err(error) => diagnostics.extend(error.diagnostics().iter().cloned()),
    };

    let defaults_path = root.join("defaults.yaml");
    if defaults_path.is_file() {
        let bytes = read_file(&defaults_path)?;
        let result = parse_defaults(&bytes, "defaults.yaml").map(|(defaults, warnings)| {
            tree.defaults = defaults;
            warnings
        });
        record(result, &mut diagnostics);
    }

    let services_dir = root.join("services");
    if services_dir.is_dir() {
        for path in sorted_entries(&services_dir)? {
            if !path.is_file() || !is_yaml_file(&path) {
                continue;
            }
            let file = relative(root, &path);
            let bytes = read_file(&path)?;
            let result = parse_spec(&bytes, &file, SpecKind::Service).map(|(spec, warnings)| {
                tree.services.push(SpecFile {
                    file: file.clone(),
                    spec,
                });
                warnings
            });
            record(result, &mut diagnostics);
        }
    }

    let tenants_dir = root.join("tenants");
    if tenants_dir.is_dir() {
        for dir in sorted_entries(&tenants_dir)? {
            if !dir.is_dir() {
                continue;
            }
            let id = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if let Err(rule) = names::check_dns_label(&id) {
                diagnostics.push(Diagnostic {
                    severity: crate::diagnostic::Severity::Error,
                    code: "invalid-name",
                    file: relative(root, &dir),
                    path: String::new(),
                    line: None,
                    column: None,
                    message: format!("invalid tenant id {id:?}: {rule}"),
                });
                continue;
            }
            let mut tenant = Tenant {
                id,
                files: BTreeMap::new(),
            };
            for path in sorted_entries(&dir)? {
                if !path.is_file() || !is_yaml_file(&path) {
                    continue;
                }
                let file = relative(root, &path);
                let base = path
                    .file_stem()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if let Err(rule) = names::check_dns_label(&base) {
                    diagnostics.push(Diagnostic {
                        severity: crate::diagnostic::Severity::Error,
                        code: "invalid-name",
                        file: file.clone(),
                        path: String::new(),
                        line: None,
                        column: None,
                        message: format!("invalid tenant file name {base:?}: {rule}"),
                    });
                    continue;
                }
                let bytes = read_file(&path)?;
                let result = parse_spec(&bytes, &file, SpecKind::Tenant).map(|(spec, warnings)| {
                    tenant.files.insert(
                        base.clone(),
                        SpecFile {
                            file: file.clone(),
                            spec,
                        },
                    );
                    warnings
                });
                record(result, &mut diagnostics);
            }
            tree.tenants.push(tenant);
        }
    }

    if diagnostics.iter().any(Diagnostic::is_error) {
        return Err(InputError::Invalid { diagnostics });
    }
    tree.warnings = diagnostics;
    Ok(tree)
}
