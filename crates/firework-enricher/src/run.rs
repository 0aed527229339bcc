//! One whole enricher run: obtain the input, render, publish. Shared by the command line,
//! the webhook server and the Lambda handler.

use std::collections::BTreeMap;
use std::time::Duration;

use firework_scheduler::ExistingPlacement;
use firework_scheduler::registry::{RecordFile, discover, parse_record, read_registry_dir};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use tracing::{info, warn};

use crate::index::{INDEX_KEY, PlacementIndex};
use crate::publish::{self, ObjectOptions, PublishOptions, PublishReport, Target};
use crate::render::{PlacementInput, RenderError, RenderOptions, Rendered, render_dir};
use crate::source::{Source, SourceError, is_git_url};

/// Heartbeat age after which a node no longer counts as live.
pub const DEFAULT_NODE_TTL: Duration = firework_scheduler::registry::DEFAULT_NODE_TTL;

/// Everything one run needs.
#[derive(Debug, Clone, Default)]
pub struct RunConfig {
    /// A directory or a Git URL.
    pub input: String,
    /// Branch or commit for Git input.
    pub reference: Option<String>,
    /// Directory inside the repository that holds the input tree.
    pub subdir: Option<String>,
    /// A directory, `s3://bucket/prefix` or `gs://bucket/prefix`.
    pub output: String,
    /// Object store settings for the output and the registry.
    pub object: ObjectOptions,
    /// Place services with the scheduler using the registry at this location.
    pub registry: Option<String>,
    /// Heartbeat age limit for live nodes.
    pub node_ttl: Option<Duration>,
    /// Publish an empty result.
    pub allow_empty: bool,
    /// Compute changes, write nothing.
    pub dry_run: bool,
    /// A routed service without a port forward is an error.
    pub require_remote_routing: bool,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// The rendered files.
    pub rendered: Rendered,
    /// What publishing did.
    pub report: PublishReport,
    /// The commit rendered.
    pub commit: Option<String>,
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The input could not be obtained.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The render failed.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// Publishing failed.
    #[error(transparent)]
    Publish(#[from] publish::PublishError),
    /// The node registry could not be read.
    #[error("failed to read the node registry {location}: {message}")]
    Registry {
        /// The registry.
        location: String,
        /// What failed.
        message: String,
    },
    /// A blocking task failed.
    #[error("internal task failed: {0}")]
    Task(String),
}

/// Obtains the input described by `config` (blocking for Git).
pub async fn open_source(config: &RunConfig) -> Result<Source, RunError> {
    if is_git_url(&config.input) {
        let url = config.input.clone();
        let reference = config.reference.clone();
        let subdir = config.subdir.clone();
        tokio::task::spawn_blocking(move || {
            Source::git(&url, reference.as_deref(), subdir.as_deref())
        })
        .await
        .map_err(|e| RunError::Task(e.to_string()))?
        .map_err(RunError::from)
    } else {
        let mut root = std::path::PathBuf::from(&config.input);
        if let Some(dir) = &config.subdir {
            root = root.join(dir);
        }
        Ok(Source::dir(root))
    }
}

/// Renders the input of `config` without publishing.
pub async fn render_only(config: &RunConfig) -> Result<(Rendered, Source), RunError> {
    let source = open_source(config).await?;
    let target = Target::parse(&config.output, &config.object)?;
    let options = render_options(config, &source, &target).await?;
    let rendered = render_dir(&source.root, &options)?;
    Ok((rendered, source))
}

/// Runs the whole pipeline.
pub async fn run(config: &RunConfig) -> Result<RunOutcome, RunError> {
    let (rendered, source) = render_only(config).await?;
    for warning in &rendered.warnings {
        info!(%warning, "render warning");
    }
    let target = Target::parse(&config.output, &config.object)?;
    let report = publish::publish(
        &target,
        &rendered.files,
        &PublishOptions {
            source_commit: source.commit.clone(),
            commit_time: source.commit_time,
            allow_empty: config.allow_empty,
            dry_run: config.dry_run,
        },
    )
    .await?;
    info!(
        revision = source.commit.as_deref().unwrap_or(""),
        written = report.written.len(),
        deleted = report.deleted.len(),
        "run finished"
    );
    Ok(RunOutcome {
        rendered,
        report,
        commit: source.commit,
    })
}

async fn render_options(
    config: &RunConfig,
    source: &Source,
    target: &Target,
) -> Result<RenderOptions, RunError> {
    let placement = match &config.registry {
        None => None,
        Some(registry) => Some(placement_input(config, registry, target).await?),
    };
    Ok(RenderOptions {
        source_commit: source.commit.clone(),
        require_remote_routing: config.require_remote_routing,
        placement,
    })
}

async fn placement_input(
    config: &RunConfig,
    registry: &str,
    target: &Target,
) -> Result<PlacementInput, RunError> {
    let records = read_records(registry, &config.object).await?;
    let ttl = config.node_ttl.unwrap_or(DEFAULT_NODE_TTL);
    let discovery = discover(records, jiff::Timestamp::now(), ttl);
    for rejected in &discovery.rejected {
        warn!(source = %rejected.source, reason = %rejected.reason, "node record rejected");
    }
    let existing = match target.get(INDEX_KEY).await? {
        None => Vec::new(),
        Some((bytes, _)) => match serde_json::from_slice::<PlacementIndex>(&bytes) {
            Ok(index) => existing_from_index(&index),
            Err(error) => {
                warn!(%error, "previous index.json unreadable; placing from scratch");
                Vec::new()
            }
        },
    };
    Ok(PlacementInput {
        nodes: discovery.live,
        existing,
        options: Default::default(),
    })
}

/// The previous placement recorded in an index.
pub fn existing_from_index(index: &PlacementIndex) -> Vec<ExistingPlacement> {
    index
        .nodes
        .iter()
        .flat_map(|(node, entry)| {
            entry
                .services
                .iter()
                .map(move |s| ExistingPlacement::new(s.name.clone(), node.clone()))
        })
        .collect()
}

async fn read_records(registry: &str, object: &ObjectOptions) -> Result<Vec<RecordFile>, RunError> {
    let fail = |message: String| RunError::Registry {
        location: registry.to_string(),
        message,
    };
    match Target::parse(registry, object)? {
        Target::Local(dir) => read_registry_dir(&dir).map_err(|e| fail(e.to_string())),
        Target::Object { store, prefix, .. } => {
            let base = if prefix.is_empty() {
                "registry/nodes".to_string()
            } else {
                format!("{prefix}/registry/nodes")
            };
            let listed: Vec<object_store::ObjectMeta> = store
                .list(Some(&object_store::path::Path::from(base)))
                .try_collect()
                .await
                .map_err(|e| fail(e.to_string()))?;
            let mut by_name: BTreeMap<String, RecordFile> = BTreeMap::new();
            for meta in listed {
                let Some(file) = meta.location.filename().map(str::to_string) else {
                    continue;
                };
                let Some(node) = file.strip_suffix(".json") else {
                    continue;
                };
                let record = match store.get(&meta.location).await {
                    Ok(result) => match result.bytes().await {
                        Ok(bytes) => parse_record(&bytes),
                        Err(e) => Err(format!("failed to read: {e}")),
                    },
                    Err(e) => Err(format!("failed to read: {e}")),
                };
                by_name.insert(
                    node.to_string(),
                    RecordFile {
                        source: meta.location.to_string(),
                        file_node: node.to_string(),
                        record,
                    },
                );
            }
            Ok(by_name.into_values().collect())
        }
    }
}
