//! Config stores of Firework.
//!
//! A store returns the node config (`nodes/<label>.yaml`) of each label an agent serves,
//! lists every node config, reads the placement index (`index.json`) and keeps the node
//! registry (`registry/nodes/<node>.json`). Backends: a local directory, a Git repository,
//! and S3 or GCS buckets through `object_store`.
//!
//! A store only reads. [`DesiredStateCache`] turns what it read into desired state and keeps
//! the last good state whenever any label fails, so an error never means "delete everything".

mod cache;
mod error;
mod git;
mod index;
mod local;
mod model;
mod name;
mod object;
mod registry;
mod retry;
mod settings;
mod store;

pub use cache::{DesiredState, DesiredStateCache, PeerUpdate, StaleState};
pub use error::{Backend, Cause, MessageError, StoreError, StoreErrorKind, Subject, error_chain};
pub use git::{
    FIREWORK_GIT_TOKEN, GITHUB_TOKEN, GitSettings, GitStore, Secret, redact_url, token_for_url,
};
pub use index::{IndexNode, IndexService, IndexSnapshot, PlacementIndex};
pub use local::LocalStore;
pub use model::{ConfigError, NodeConfig, NodeRecord, Resources, parse_node_config};
pub use name::{INDEX_FILE, MAX_NAME_LEN, NODES_DIR, REGISTRY_DIR, validate_name};
pub use object::{ObjectConfigStore, ObjectSettings};
pub use registry::NodeRegistry;
pub use retry::Backoff;
pub use settings::{StoreSettings, open_store};
pub use store::{ConfigStore, LabelResult, Listing, NodeConfigEntry, Revision};
