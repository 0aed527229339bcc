//! The agent config (`/etc/firework/agent.yaml`).
//!
//! Every key of the Go firework keeps its meaning and default. Unlike the Go firework, a value
//! that is not one of the known choices is an error, not a silent fallback.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use ipnet::Ipv4Net;
use serde::Serialize;

use crate::decode::{Decoder, Fields, Schema};
use crate::diagnostic::{ConfigError, Parsed};
use crate::duration::GoDuration;
use crate::names;
use crate::yaml::{self, Position};

mod jailer;
mod network;
mod rollout;

use jailer::decode_cgroup;
use network::{decode_gateway, decode_subnet};
pub use rollout::{DEFAULT_MIN_READY, DEFAULT_PROGRESS_DEADLINE};
use rollout::{decode_delete_guard, decode_rollout_gate};

/// Default of `image_gc_grace`: long enough that an image survives a revert of the commit
/// that stopped using it.
pub const DEFAULT_IMAGE_GC_GRACE: GoDuration = GoDuration::from_secs(3600);

/// Where the agent reads its desired state from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreType {
    /// A local directory holding `nodes/`.
    Local,
    /// A Git repository holding `nodes/`.
    Git,
    /// An S3 bucket (or any S3-compatible store) written by the enricher.
    S3,
    /// A Google Cloud Storage bucket written by the enricher.
    Gcs,
}

impl StoreType {
    /// The name written in the config.
    pub fn as_str(&self) -> &'static str {
        match self {
            StoreType::Local => "local",
            StoreType::Git => "git",
            StoreType::S3 => "s3",
            StoreType::Gcs => "gcs",
        }
    }
}

/// How the agent applies updates to running services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum UpdateStrategy {
    /// Every changed service at once, with bounded parallelism.
    #[serde(rename = "all-at-once")]
    AllAtOnce,
    /// One service (or `max_unavailable`) at a time, health-gated.
    #[serde(rename = "rolling")]
    Rolling,
}

/// Log verbosity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Everything, including per-request detail.
    Trace,
    /// Debug detail.
    Debug,
    /// Normal operation.
    Info,
    /// Problems only.
    Warn,
    /// Errors only.
    Error,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object a line.
    Json,
}

/// The agent config with every default applied.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentConfig {
    /// Display name of the node; the host name when not written.
    pub node_name: String,
    /// Labels whose `nodes/<label>.yaml` the agent merges; `[node_name]` when not written.
    pub node_names: Vec<String>,
    /// Identity in the node registry; `node_name` when not written.
    pub node_id: String,
    /// Node types the node offers to the scheduler. The heartbeat publishes them with
    /// `node_names` as the node's labels, but the agent reads no `nodes/<type>.yaml` for them.
    pub node_types: Vec<String>,
    /// The store backend. When not written: `git` with `store_url`, `s3` with `s3_bucket`,
    /// `gcs` with `gcs_bucket`, otherwise `local`.
    pub store_type: StoreType,
    /// Local store: the directory that holds `nodes/`.
    pub store_dir: PathBuf,
    /// Git store: the clone URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_url: Option<String>,
    /// Git store: the branch to follow.
    pub store_branch: String,
    /// S3 store: the bucket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_bucket: Option<String>,
    /// S3 store: a raw prefix put before `nodes/` (include the trailing `/`).
    pub s3_prefix: String,
    /// S3 region for the config and image buckets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_region: Option<String>,
    /// A custom S3 endpoint; path-style addressing is used with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_endpoint_url: Option<String>,
    /// GCS store: the bucket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gcs_bucket: Option<String>,
    /// GCS store: a raw prefix put before `nodes/`.
    pub gcs_prefix: String,
    /// GCS project.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gcs_project: Option<String>,
    /// GCS service account key file; application default credentials when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gcs_credentials_file: Option<PathBuf>,
    /// Time between ticks.
    pub poll_interval: GoDuration,
    /// The Firecracker binary.
    pub firecracker_bin: PathBuf,
    /// Where the agent keeps VM records, the Git clone and address assignments.
    pub state_dir: PathBuf,
    /// Log verbosity; `RUST_LOG` overrides it.
    pub log_level: LogLevel,
    /// Log line format.
    pub log_format: LogFormat,
    /// Address of the local API; empty disables it.
    pub api_listen_addr: String,
    /// File holding a bearer token the API requires, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_token_file: Option<PathBuf>,
    /// Health monitor on or off.
    pub enable_health_checks: bool,
    /// Bridge, TAP and nftables management on or off.
    pub enable_network_setup: bool,
    /// S3 bucket to sync images from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_images_bucket: Option<String>,
    /// GCS bucket to sync images from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gcs_images_bucket: Option<String>,
    /// Local directory to sync images from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub images_source_dir: Option<PathBuf>,
    /// Where synced images are kept.
    pub images_dir: PathBuf,
    /// How long a synced image that no service references stays under `images_dir` before
    /// garbage collection removes it.
    pub image_gc_grace: GoDuration,
    /// Guest subnet; `None` (written as an empty string) disables guest address assignment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vm_subnet: Option<Ipv4Net>,
    /// Bridge address and the guests' default gateway.
    pub vm_gateway: Ipv4Addr,
    /// Shared bridge; empty means no shared bridge.
    pub vm_bridge: String,
    /// Host interface that masqueraded guest traffic leaves through; empty disables NAT.
    pub out_interface: String,
    /// Keep guests from reaching each other (unless linked), the agent API and link-local
    /// addresses.
    pub network_isolation: bool,
    /// The address peers use to reach this node; published in the node registry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<IpAddr>,
    /// Capacity guard on or off.
    pub enable_capacity_check: bool,
    /// vCPUs the node offers in place of the host's CPU count. A value above the CPU count
    /// overcommits vCPUs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity_vcpus: Option<u32>,
    /// Memory in MiB the node offers in place of the host's `MemTotal`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity_memory_mb: Option<u64>,
    /// vCPUs kept back for the host.
    pub reserved_vcpus: u32,
    /// Memory kept back for the host, in MiB.
    pub reserved_memory_mb: u64,
    /// How updates are applied.
    pub update_strategy: UpdateStrategy,
    /// Pause between rolling updates.
    pub update_delay: GoDuration,
    /// The maximum wait for an updated service to become healthy before it is rolled back.
    pub progress_deadline: GoDuration,
    /// Run time after which an updated service without a health check counts as ready.
    pub min_ready: GoDuration,
    /// Deletes that would remove at least this percentage of the running VMs at once are
    /// held until the label contains `services: []`; 100 holds only a delete of every VM.
    pub delete_guard_percent: u8,
    /// Traefik file-provider directory; empty disables route management.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traefik_config_dir: Option<PathBuf>,
    /// Traefik entry point of the routes.
    pub traefik_entry_point: String,
    /// Domain for `metadata.subdomain` routes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingress_domain: Option<String>,
    /// Launch VMs through the jailer.
    pub use_jailer: bool,
    /// The jailer binary.
    pub jailer_bin: PathBuf,
    /// User the jailer drops to.
    pub jailer_uid: u32,
    /// Group the jailer drops to.
    pub jailer_gid: u32,
    /// Base directory of the jails.
    pub chroot_base_dir: PathBuf,
    /// cgroup v2 limits for jailed VMs, when `jailer_parent_cgroup` is written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jailer_cgroup: Option<JailerCgroup>,
}

/// cgroup v2 settings of jailed VMs: each VM gets a cgroup `<parent>/<vm id>` whose
/// `cpu.max` and `memory.max` follow its vCPUs and memory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JailerCgroup {
    /// `jailer_parent_cgroup`: the parent cgroup, relative to the hierarchy's mount point.
    pub parent: String,
    /// `jailer_cgroup_root`: the mount point of the cgroup v2 hierarchy.
    pub root: PathBuf,
    /// `jailer_memory_overhead_mib`: memory allowed on top of the guest memory, in MiB.
    pub memory_overhead_mib: u32,
}

const AGENT_KEYS: &[&str] = &[
    "node_name",
    "node_names",
    "node_id",
    "node_types",
    "store_type",
    "store_dir",
    "store_url",
    "store_branch",
    "s3_bucket",
    "s3_prefix",
    "s3_region",
    "s3_endpoint_url",
    "gcs_bucket",
    "gcs_prefix",
    "gcs_project",
    "gcs_credentials_file",
    "poll_interval",
    "firecracker_bin",
    "state_dir",
    "log_level",
    "log_format",
    "api_listen_addr",
    "api_token_file",
    "enable_health_checks",
    "enable_network_setup",
    "s3_images_bucket",
    "gcs_images_bucket",
    "images_source_dir",
    "images_dir",
    "image_gc_grace",
    "vm_subnet",
    "vm_gateway",
    "vm_bridge",
    "out_interface",
    "network_isolation",
    "host_ip",
    "enable_capacity_check",
    "capacity_vcpus",
    "capacity_memory_mb",
    "reserved_vcpus",
    "reserved_memory_mb",
    "update_strategy",
    "update_delay",
    "progress_deadline",
    "min_ready",
    "delete_guard_percent",
    "traefik_config_dir",
    "traefik_entry_point",
    "ingress_domain",
    "use_jailer",
    "jailer_bin",
    "jailer_uid",
    "jailer_gid",
    "chroot_base_dir",
    "jailer_parent_cgroup",
    "jailer_cgroup_root",
    "jailer_memory_overhead_mib",
];

/// Default path of the agent config.
pub const DEFAULT_AGENT_CONFIG: &str = "/etc/firework/agent.yaml";

/// Reads and validates the agent config at `path`. `hostname` supplies the node name when the
/// file names none.
pub fn load_agent_config(
    path: &str,
    hostname: &dyn Fn() -> Option<String>,
) -> Result<Parsed<AgentConfig>, ConfigError> {
    let bytes = std::fs::read(path).map_err(|source| ConfigError::Read {
        path: path.to_string(),
        source,
    })?;
    parse_agent_config(&bytes, path, hostname)
}

/// Parses and validates an agent config. `file` names it in diagnostics.
pub fn parse_agent_config(
    bytes: &[u8],
    file: &str,
    hostname: &dyn Fn() -> Option<String>,
) -> Result<Parsed<AgentConfig>, ConfigError> {
    let mut decoder = Decoder::new(file);
    let top = Position { line: 1, column: 1 };
    let root = match std::str::from_utf8(bytes) {
        Err(_) => {
            decoder.error(
                "invalid-encoding",
                "",
                top,
                "the file is not valid UTF-8".to_string(),
            );
            None
        }
        Ok(text) => match yaml::parse(text) {
            Ok(root) => Some(root.unwrap_or(yaml::Node {
                kind: yaml::NodeKind::Null,
                position: top,
            })),
            Err(error) => {
                decoder.error(
                    "invalid-yaml",
                    "",
                    error.position,
                    format!("invalid YAML: {}", error.message),
                );
                None
            }
        },
    };
    let config = root.and_then(|root| {
        let fields = decoder.mapping(&root, "", Schema::closed(AGENT_KEYS))?;
        decode_agent(&mut decoder, &fields, hostname)
    });
    match config {
        Some(config) => ConfigError::check(decoder.findings, config),
        None => Err(ConfigError::Invalid {
            file: file.to_string(),
            diagnostics: decoder.findings.into_vec(),
        }),
    }
}

fn choice<T: Copy>(
    decoder: &mut Decoder,
    fields: &Fields<'_>,
    key: &str,
    choices: &[(&str, T)],
    default: T,
) -> T {
    let Some(text) = decoder.opt_string(fields, key) else {
        return default;
    };
    if let Some((_, value)) = choices.iter().find(|(name, _)| *name == text) {
        return *value;
    }
    let allowed: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
    let at = fields.get(key).map_or(fields.position, |n| n.position);
    decoder.error(
        "invalid-value",
        &fields.path_of(key),
        at,
        format!("invalid {key} {text:?}: allowed {}", allowed.join(", ")),
    );
    default
}

pub(super) fn path_or(
    decoder: &mut Decoder,
    fields: &Fields<'_>,
    key: &str,
    default: &str,
) -> PathBuf {
    match decoder.checked_string(fields, key, key, false, names::check_host_path) {
        Some(value) => PathBuf::from(value),
        None => PathBuf::from(default),
    }
}

/// Decodes a list of unique node labels, such as `node_names`. Error messages call one
/// entry `entry_name`.
fn label_list(
    decoder: &mut Decoder,
    fields: &Fields<'_>,
    key: &str,
    entry_name: &str,
) -> Vec<String> {
    let mut labels: Vec<String> = Vec::new();
    let Some(node) = fields.get(key) else {
        return labels;
    };
    let path = fields.path_of(key);
    for (i, (label, position)) in decoder.string_list(node, &path).into_iter().enumerate() {
        if let Err(rule) = names::check_node_label(&label) {
            decoder.error(
                "invalid-value",
                &format!("{path}[{i}]"),
                position,
                format!("invalid {entry_name} {label:?}: {rule}"),
            );
        } else if labels.contains(&label) {
            decoder.error(
                "duplicate-name",
                &format!("{path}[{i}]"),
                position,
                format!("duplicate {entry_name} {label:?}"),
            );
        } else {
            labels.push(label);
        }
    }
    labels
}

/// Decodes an optional whole number that must be at least 1 when written.
fn positive<T>(decoder: &mut Decoder, fields: &Fields<'_>, key: &str) -> Option<T>
where
    T: std::str::FromStr + TryFrom<u64> + PartialEq + Default,
{
    let value = decoder.opt_integer::<T>(fields, key)?;
    if value != T::default() {
        return Some(value);
    }
    let at = fields.get(key).map_or(fields.position, |n| n.position);
    decoder.error(
        "invalid-value",
        key,
        at,
        format!("invalid {key} 0: it must be at least 1, or left out to use the host's"),
    );
    None
}

fn decode_agent(
    decoder: &mut Decoder,
    fields: &Fields<'_>,
    hostname: &dyn Fn() -> Option<String>,
) -> Option<AgentConfig> {
    let node_name_written = decoder.checked_string(
        fields,
        "node_name",
        "node name",
        false,
        names::check_node_label,
    );
    let mut node_names = label_list(decoder, fields, "node_names", "label");
    let node_types = label_list(decoder, fields, "node_types", "node type");
    let node_name = match (node_name_written, node_names.first()) {
        (Some(name), _) => name,
        (None, Some(first)) => first.clone(),
        (None, None) => match hostname() {
            Some(name) => name,
            None => {
                decoder.error(
                    "missing",
                    "node_name",
                    fields.position,
                    "missing node_name and the host name is unavailable; set node_name".to_string(),
                );
                String::new()
            }
        },
    };
    if node_names.is_empty() && !node_name.is_empty() {
        node_names.push(node_name.clone());
    }
    let node_id = decoder
        .checked_string(fields, "node_id", "node id", false, names::check_node_label)
        .unwrap_or_else(|| node_name.clone());

    let store_url = decoder.opt_string(fields, "store_url");
    let s3_bucket = decoder.opt_string(fields, "s3_bucket");
    let gcs_bucket = decoder.opt_string(fields, "gcs_bucket");
    let inferred = if store_url.is_some() {
        StoreType::Git
    } else if s3_bucket.is_some() {
        StoreType::S3
    } else if gcs_bucket.is_some() {
        StoreType::Gcs
    } else {
        StoreType::Local
    };
    let store_type = match decoder.opt_string(fields, "store_type") {
        None => inferred,
        Some(text) => match text.as_str() {
            "local" => StoreType::Local,
            "git" => StoreType::Git,
            "s3" => StoreType::S3,
            "gcs" => StoreType::Gcs,
            other => {
                let at = fields
                    .get("store_type")
                    .map_or(fields.position, |n| n.position);
                decoder.error(
                    "invalid-value",
                    "store_type",
                    at,
                    format!("unsupported store_type {other:?}: allowed local, git, s3, gcs"),
                );
                inferred
            }
        },
    };
    let required = |decoder: &mut Decoder, present: bool, key: &str| {
        if !present {
            let at = fields.raw(key).map_or(fields.position, |n| n.position);
            decoder.error(
                "missing",
                key,
                at,
                format!(
                    "missing required key `{key}` for store_type {}",
                    store_type.as_str()
                ),
            );
        }
    };
    match store_type {
        StoreType::Git => required(decoder, store_url.is_some(), "store_url"),
        StoreType::S3 => required(decoder, s3_bucket.is_some(), "s3_bucket"),
        StoreType::Gcs => required(decoder, gcs_bucket.is_some(), "gcs_bucket"),
        StoreType::Local => {}
    }

    let poll_interval = decoder
        .opt_duration(fields, "poll_interval")
        .unwrap_or(GoDuration::from_secs(30));
    if poll_interval.is_zero() {
        let at = fields
            .get("poll_interval")
            .map_or(fields.position, |n| n.position);
        decoder.error(
            "invalid-value",
            "poll_interval",
            at,
            "invalid poll_interval 0s: it must be positive".to_string(),
        );
    }

    let (progress_deadline, min_ready) = decode_rollout_gate(decoder, fields);
    let delete_guard_percent = decode_delete_guard(decoder, fields);

    let s3_images_bucket = decoder.opt_string(fields, "s3_images_bucket");
    let gcs_images_bucket = decoder.opt_string(fields, "gcs_images_bucket");
    let images_source_dir = decoder
        .checked_string(
            fields,
            "images_source_dir",
            "images_source_dir",
            false,
            names::check_host_path,
        )
        .map(PathBuf::from);
    let image_sources = [
        s3_images_bucket.is_some(),
        gcs_images_bucket.is_some(),
        images_source_dir.is_some(),
    ];
    if image_sources.iter().filter(|set| **set).count() > 1 {
        decoder.error(
            "conflicting-keys",
            "s3_images_bucket",
            fields.position,
            "s3_images_bucket, gcs_images_bucket and images_source_dir are mutually exclusive: set one"
                .to_string(),
        );
    }

    let vm_subnet = decode_subnet(decoder, fields);
    let vm_gateway = decode_gateway(decoder, fields, vm_subnet);

    let host_ip = decoder.opt_ip(fields, "host_ip");

    let ingress_domain = decoder
        .opt_string(fields, "ingress_domain")
        .and_then(|text| match names::normalize_domain(&text) {
            Ok(domain) => Some(domain),
            Err(rule) => {
                let at = fields
                    .get("ingress_domain")
                    .map_or(fields.position, |n| n.position);
                decoder.error(
                    "invalid-value",
                    "ingress_domain",
                    at,
                    format!("invalid ingress_domain {text:?}: {rule}"),
                );
                None
            }
        });

    let vm_bridge = decoder
        .checked_string(
            fields,
            "vm_bridge",
            "bridge name",
            false,
            names::check_interface_name,
        )
        .unwrap_or_else(|| {
            if fields.contains("vm_bridge") {
                String::new()
            } else {
                "br-firework".to_string()
            }
        });
    let out_interface = decoder
        .checked_string(
            fields,
            "out_interface",
            "interface name",
            false,
            names::check_interface_name,
        )
        .unwrap_or_default();

    let update_strategy = choice(
        decoder,
        fields,
        "update_strategy",
        &[
            ("all-at-once", UpdateStrategy::AllAtOnce),
            ("rolling", UpdateStrategy::Rolling),
        ],
        UpdateStrategy::AllAtOnce,
    );
    let log_level = choice(
        decoder,
        fields,
        "log_level",
        &[
            ("trace", LogLevel::Trace),
            ("debug", LogLevel::Debug),
            ("info", LogLevel::Info),
            ("warn", LogLevel::Warn),
            ("error", LogLevel::Error),
        ],
        LogLevel::Info,
    );
    let log_format = choice(
        decoder,
        fields,
        "log_format",
        &[("text", LogFormat::Text), ("json", LogFormat::Json)],
        LogFormat::Text,
    );
    let traefik_entry_point = decoder
        .checked_string(
            fields,
            "traefik_entry_point",
            "entry point",
            false,
            names::check_dns_label,
        )
        .unwrap_or_else(|| "web".to_string());

    Some(AgentConfig {
        node_name,
        node_names,
        node_id,
        node_types,
        store_type,
        store_dir: path_or(decoder, fields, "store_dir", "/var/lib/firework/desired"),
        store_url,
        store_branch: decoder
            .opt_string(fields, "store_branch")
            .unwrap_or_else(|| "main".to_string()),
        s3_bucket,
        s3_prefix: decoder.opt_string(fields, "s3_prefix").unwrap_or_default(),
        s3_region: decoder.opt_string(fields, "s3_region"),
        s3_endpoint_url: decoder.opt_string(fields, "s3_endpoint_url"),
        gcs_bucket,
        gcs_prefix: decoder.opt_string(fields, "gcs_prefix").unwrap_or_default(),
        gcs_project: decoder.opt_string(fields, "gcs_project"),
        gcs_credentials_file: decoder
            .opt_string(fields, "gcs_credentials_file")
            .map(PathBuf::from),
        poll_interval,
        firecracker_bin: path_or(decoder, fields, "firecracker_bin", "/usr/bin/firecracker"),
        state_dir: path_or(decoder, fields, "state_dir", "/var/lib/firework"),
        log_level,
        log_format,
        api_listen_addr: decoder
            .opt_string(fields, "api_listen_addr")
            .unwrap_or_else(|| {
                if fields.contains("api_listen_addr") {
                    String::new()
                } else {
                    "127.0.0.1:8080".to_string()
                }
            }),
        api_token_file: decoder
            .checked_string(
                fields,
                "api_token_file",
                "api_token_file",
                false,
                names::check_host_path,
            )
            .map(PathBuf::from),
        enable_health_checks: decoder
            .opt_boolean(fields, "enable_health_checks")
            .unwrap_or(true),
        enable_network_setup: decoder
            .opt_boolean(fields, "enable_network_setup")
            .unwrap_or(true),
        s3_images_bucket,
        gcs_images_bucket,
        images_source_dir,
        images_dir: path_or(decoder, fields, "images_dir", "/var/lib/images"),
        image_gc_grace: decoder
            .opt_duration(fields, "image_gc_grace")
            .unwrap_or(DEFAULT_IMAGE_GC_GRACE),
        vm_subnet,
        vm_gateway,
        vm_bridge,
        out_interface,
        network_isolation: decoder
            .opt_boolean(fields, "network_isolation")
            .unwrap_or(true),
        host_ip,
        enable_capacity_check: decoder
            .opt_boolean(fields, "enable_capacity_check")
            .unwrap_or(true),
        capacity_vcpus: positive(decoder, fields, "capacity_vcpus"),
        capacity_memory_mb: positive(decoder, fields, "capacity_memory_mb"),
        reserved_vcpus: decoder.opt_integer(fields, "reserved_vcpus").unwrap_or(0),
        reserved_memory_mb: decoder
            .opt_integer(fields, "reserved_memory_mb")
            .unwrap_or(0),
        update_strategy,
        update_delay: decoder
            .opt_duration(fields, "update_delay")
            .unwrap_or_default(),
        progress_deadline,
        min_ready,
        delete_guard_percent,
        traefik_config_dir: decoder
            .checked_string(
                fields,
                "traefik_config_dir",
                "traefik_config_dir",
                false,
                names::check_host_path,
            )
            .map(PathBuf::from),
        traefik_entry_point,
        ingress_domain,
        use_jailer: decoder.opt_boolean(fields, "use_jailer").unwrap_or(false),
        jailer_bin: path_or(decoder, fields, "jailer_bin", "/usr/bin/jailer"),
        jailer_uid: decoder.opt_integer(fields, "jailer_uid").unwrap_or(0),
        jailer_gid: decoder.opt_integer(fields, "jailer_gid").unwrap_or(0),
        chroot_base_dir: path_or(decoder, fields, "chroot_base_dir", "/srv/jailer"),
        jailer_cgroup: decode_cgroup(decoder, fields),
    })
}
