//! Errors of the agent.

use std::path::PathBuf;

/// A boxed error from a VM runtime or network implementation behind a trait.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why one service's desired VM could not be built this tick. The service keeps whatever
/// runs now.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// An `env` key is not a valid variable name.
    #[error("service `{service}`: invalid env key `{key}`: {rule}")]
    InvalidEnvKey {
        /// The service.
        service: String,
        /// The key.
        key: String,
        /// The naming rule.
        rule: &'static str,
    },
    /// The kernel command line after injection is longer than Firecracker accepts.
    #[error(
        "service `{service}`: kernel command line is {length} bytes long, the maximum is {max}"
    )]
    KernelArgsTooLong {
        /// The service.
        service: String,
        /// The length in bytes.
        length: usize,
        /// Firecracker's limit.
        max: usize,
    },
    /// A link names a service that is not on this node or has no network.
    #[error("service `{service}`: link target `{target}` is not a networked service on this node")]
    LinkTarget {
        /// The service.
        service: String,
        /// The link target.
        target: String,
    },
    /// The service has a `network` block but the agent has no `vm_subnet`.
    #[error("service `{service}`: has a network block but vm_subnet is not set")]
    NoSubnet {
        /// The service.
        service: String,
    },
    /// The network layer assigned no address to the service.
    #[error("service `{service}`: no guest address was assigned")]
    NoAddress {
        /// The service.
        service: String,
    },
    /// The network layer rejected the `ip=` argument of the service.
    #[error("service `{service}`: invalid ip= kernel argument")]
    IpArg {
        /// The service.
        service: String,
        /// The network error.
        #[source]
        source: Box<firework_net::NetError>,
    },
    /// The image sync step found the service's image unusable.
    #[error("service `{service}`: image is not usable: {reason}")]
    Image {
        /// The service.
        service: String,
        /// What the image sync step reported.
        reason: String,
    },
    /// The VM spec failed the runtime's validation.
    #[error("service `{service}`: invalid vm spec")]
    VmSpec {
        /// The service.
        service: String,
        /// The runtime's error.
        #[source]
        source: Box<firework_vmm::VmmError>,
    },
}

/// Errors that stop a whole tick: nothing is changed.
#[derive(Debug, thiserror::Error)]
pub enum TickError {
    /// The store could not be read and no earlier state is known.
    #[error("no desired state yet: {errors} label(s) failed to read")]
    NoDesiredState {
        /// Number of failed labels.
        errors: usize,
    },
    /// A service name appears in more than one label.
    #[error("service `{service}` is defined in both label `{first}` and label `{second}`")]
    DuplicateService {
        /// The service name.
        service: String,
        /// The first label.
        first: String,
        /// The second label.
        second: String,
    },
    /// Guest addresses could not be assigned.
    #[error("network assignment failed")]
    Network(#[source] BoxError),
}

/// Errors that end the agent before or outside the tick loop.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The agent config is invalid or unreadable.
    #[error("invalid agent config {path}")]
    Config {
        /// The config path.
        path: String,
        /// The model's error.
        #[source]
        source: Box<firework_model::ConfigError>,
    },
    /// The store could not be opened.
    #[error("cannot open the {store} store")]
    Store {
        /// The store type.
        store: &'static str,
        /// The store error.
        #[source]
        source: Box<firework_store::StoreError>,
    },
    /// The VM runtime could not be opened.
    #[error("cannot open the vm runtime in {path}")]
    Runtime {
        /// The state directory.
        path: PathBuf,
        /// The runtime's error.
        #[source]
        source: Box<firework_vmm::VmmError>,
    },
    /// The API address is invalid or cannot be bound.
    #[error("cannot listen on api_listen_addr {addr}")]
    Listen {
        /// The address.
        addr: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A state file of the agent could not be read or written.
    #[error("cannot {operation} {path}")]
    State {
        /// What was being done.
        operation: &'static str,
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The image source cannot be set up.
    #[error("cannot set up the image sync into {}", path.display())]
    Images {
        /// `images_dir`.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: Box<firework_images::ImageError>,
    },
    /// The route settings are invalid.
    #[error("invalid route settings for traefik_config_dir {}", path.display())]
    Routes {
        /// The route directory.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: firework_routes::RoutesError,
    },
    /// The API token file cannot be read.
    #[error("cannot read api_token_file {}", path.display())]
    TokenFile {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The API token file holds no token.
    #[error("api_token_file {} is empty", path.display())]
    EmptyTokenFile {
        /// The file.
        path: std::path::PathBuf,
    },
    /// A signal handler could not be installed.
    #[error("cannot install the {signal} handler")]
    Signal {
        /// The signal name.
        signal: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Returns `error` and its sources joined with `: `.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
