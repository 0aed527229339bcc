//! The render pipeline: load, expand tenants, validate everything, enrich, group or schedule,
//! resolve cross-node links, serialise and read back.

use std::collections::BTreeMap;
use std::path::Path;

use firework_model::diagnostic::Diagnostic;
use firework_model::node::{NodeConfig, Service};
use firework_model::spec::{InputError, InputTree, load_input_tree};
use firework_scheduler::{
    ExistingPlacement, NodeCapacity, ScheduleError, ScheduleOptions, ServiceRequest, schedule,
};
use tracing::{info, info_span};

use crate::crossnode;
use crate::enrich::enrich;
use crate::index::{self, INDEX_KEY};
use crate::output::{self, OutputError};
use crate::tenant;
use crate::validate::{ValidateOptions, validate};

/// How to render.
#[derive(Debug, Clone, Default)]
pub struct RenderOptions {
    /// The commit the input was read from; written into every node config.
    pub source_commit: Option<String>,
    /// A routed service without a port forward is an error.
    pub require_remote_routing: bool,
    /// Place services on live nodes with the scheduler instead of grouping by `node_type`.
    pub placement: Option<PlacementInput>,
}

/// What the scheduler needs.
#[derive(Debug, Clone, Default)]
pub struct PlacementInput {
    /// Live nodes.
    pub nodes: Vec<NodeCapacity>,
    /// The previous placement, kept where it still fits.
    pub existing: Vec<ExistingPlacement>,
    /// Scheduler options.
    pub options: ScheduleOptions,
}

/// A rendered input tree.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// Node configs by node name.
    pub nodes: BTreeMap<String, NodeConfig>,
    /// The files to publish, by key: `nodes/<node>.yaml` and `index.json`.
    pub files: BTreeMap<String, Vec<u8>>,
    /// Names of the services that tenant files produced.
    pub tenant_services: Vec<String>,
    /// Warnings of every step.
    pub warnings: Vec<Diagnostic>,
}

/// Why a render produced nothing.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The input tree could not be read.
    #[error("failed to read the input tree")]
    Read(#[source] InputError),
    /// The input has errors; `diagnostics` holds every error and warning.
    #[error("input is invalid: {} errors", .diagnostics.iter().filter(|d| d.is_error()).count())]
    Invalid {
        /// All findings.
        diagnostics: Vec<Diagnostic>,
    },
    /// The scheduler refused the inputs.
    #[error("scheduling failed")]
    Schedule(#[source] ScheduleError),
    /// Some services fit on no live node; nothing is rendered.
    #[error("{} services fit on no live node: {}", .services.len(), .services.join("; "))]
    Unplaced {
        /// `<service>: <reason>` per service.
        services: Vec<String>,
    },
    /// A rendered file failed the round trip through the agent's parser.
    #[error(transparent)]
    Output(#[from] OutputError),
}

impl RenderError {
    /// The findings of an invalid input, empty for other errors.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            RenderError::Invalid { diagnostics } => diagnostics,
            RenderError::Read(InputError::Invalid { diagnostics }) => diagnostics,
            _ => &[],
        }
    }
}

/// Loads the input tree at `root` and renders it.
pub fn render_dir(root: &Path, options: &RenderOptions) -> Result<Rendered, RenderError> {
    let tree = load_input_tree(root).map_err(|error| match error {
        InputError::Invalid { diagnostics } => RenderError::Invalid { diagnostics },
        other => RenderError::Read(other),
    })?;
    render(&tree, options)
}

/// Renders an input tree into node configs and the files to publish.
pub fn render(tree: &InputTree, options: &RenderOptions) -> Result<Rendered, RenderError> {
    let span = info_span!(
        "render",
        revision = options.source_commit.as_deref().unwrap_or("")
    );
    let _entered = span.enter();
    let mut findings = tree.warnings.clone();
    let expanded = tenant::expand(tree, &mut findings);
    let validate_options = ValidateOptions {
        scheduled: options.placement.is_some(),
        require_remote_routing: options.require_remote_routing,
    };
    validate(&expanded, validate_options, &mut findings);
    if findings.iter().any(Diagnostic::is_error) {
        return Err(RenderError::Invalid {
            diagnostics: findings,
        });
    }
    let mut services = Vec::with_capacity(expanded.len());
    for service in &expanded {
        match enrich(service, &tree.defaults) {
            Ok(service) => services.push(service),
            Err(errors) => findings.extend(errors),
        }
    }
    if findings.iter().any(Diagnostic::is_error) {
        return Err(RenderError::Invalid {
            diagnostics: findings,
        });
    }
    let tenant_services = expanded
        .iter()
        .filter(|s| s.origin != tenant::Origin::Service)
        .map(|s| s.name().to_string())
        .collect();

    let mut configs = match &options.placement {
        None => group(services),
        Some(placement) => place(services, placement)?,
    };
    for config in &mut configs {
        config.source_commit.clone_from(&options.source_commit);
    }
    if options.placement.is_some() {
        findings.extend(crossnode::resolve(&mut configs));
    }

    let mut files = BTreeMap::new();
    let mut nodes = BTreeMap::new();
    for config in configs {
        let name = config.node.clone().unwrap_or_default();
        let key = output::node_key(&name);
        let bytes = output::to_yaml(&config, &key)?;
        files.insert(key, bytes);
        nodes.insert(name, config);
    }
    files.insert(
        INDEX_KEY.to_string(),
        index::to_json(&index::build(nodes.values())),
    );
    info!(
        nodes = nodes.len(),
        warnings = findings.len(),
        "rendered node configs"
    );
    Ok(Rendered {
        nodes,
        files,
        tenant_services,
        warnings: findings,
    })
}

/// Groups services by `node_type`, each group sorted by service name.
fn group(services: Vec<Service>) -> Vec<NodeConfig> {
    let mut groups: BTreeMap<String, Vec<Service>> = BTreeMap::new();
    for service in services {
        let node_type = service.node_type.clone().unwrap_or_default();
        groups.entry(node_type).or_default().push(service);
    }
    groups
        .into_iter()
        .map(|(node, mut services)| {
            services.sort_by(|a, b| a.name.cmp(&b.name));
            NodeConfig {
                node: Some(node),
                host_ip: None,
                source_commit: None,
                services,
            }
        })
        .collect()
}

/// Places services with the scheduler; every service must fit.
fn place(
    services: Vec<Service>,
    placement: &PlacementInput,
) -> Result<Vec<NodeConfig>, RenderError> {
    let requests: Vec<ServiceRequest> = services.iter().map(ServiceRequest::from).collect();
    let result = schedule(
        &placement.nodes,
        &requests,
        &placement.existing,
        &placement.options,
    )
    .map_err(RenderError::Schedule)?;
    if !result.unplaced.is_empty() {
        return Err(RenderError::Unplaced {
            services: result
                .unplaced
                .iter()
                .map(|u| format!("{}: {}", u.service, u.reason))
                .collect(),
        });
    }
    let mut by_name: BTreeMap<String, Service> =
        services.into_iter().map(|s| (s.name.clone(), s)).collect();
    let mut configs = Vec::new();
    for (node, names) in result.by_node() {
        let host_ip = placement
            .nodes
            .iter()
            .find(|n| n.name == node)
            .and_then(|n| n.host_ip);
        let mut node_services: Vec<Service> = names
            .iter()
            .filter_map(|name| by_name.remove(*name))
            .collect();
        node_services.sort_by(|a, b| a.name.cmp(&b.name));
        configs.push(NodeConfig {
            node: Some(node.to_string()),
            host_ip,
            source_commit: None,
            services: node_services,
        });
    }
    Ok(configs)
}
