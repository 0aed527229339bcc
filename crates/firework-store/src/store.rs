//! The store interface and the values it returns.

use std::fmt;
use std::sync::Arc;

use futures::future::BoxFuture;

use crate::error::{Backend, StoreError};
use crate::index::IndexSnapshot;
use crate::model::NodeConfig;

/// An opaque version of a stored document: a content hash (local), a commit id (Git) or an
/// ETag (object storage). Two reads with equal revisions returned equal content.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Revision(pub String);

impl Revision {
    /// Returns the revision text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A parsed node config with the label it was read for and its revision.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeConfigEntry {
    /// The label, the file name without `.yaml`.
    pub label: String,
    /// The revision of the content that was parsed.
    pub revision: Revision,
    /// The parsed node config.
    pub config: Arc<NodeConfig>,
}

/// The outcome of reading one label: the entry or why it could not be read.
pub type LabelResult = Result<NodeConfigEntry, StoreError>;

/// Every node config in the store, one result per `nodes/*.yaml` file, sorted by label.
///
/// A file that fails to read or parse is an `Err` for its label and does not fail the listing.
pub type Listing = Vec<LabelResult>;

/// A source of node configs, the placement index and their revisions.
///
/// All methods are safe to call concurrently. Errors are [`StoreError`]s whose kind
/// distinguishes "not found", "unreachable", "denied" and "invalid content".
pub trait ConfigStore: Send + Sync + fmt::Debug {
    /// Returns the backend behind this store.
    fn backend(&self) -> Backend;

    /// Reads the node config of each label, in the order given.
    ///
    /// A Git store fetches once for the whole call and reads every label from that commit.
    fn fetch<'a>(&'a self, labels: &'a [String]) -> BoxFuture<'a, Vec<LabelResult>>;

    /// Lists and reads every node config. Meant for tools and tests: an agent uses
    /// [`ConfigStore::fetch_index`] for peers, which costs one request however many nodes exist.
    fn list_all(&self) -> BoxFuture<'_, Result<Listing, StoreError>>;

    /// Reads the placement index `index.json`, skipping the download when it has not changed
    /// since the last call.
    fn fetch_index(&self) -> BoxFuture<'_, Result<IndexSnapshot, StoreError>>;
}

/// Parses the bytes of a label's node config into an entry.
pub(crate) fn decode_entry(
    backend: Backend,
    label: &str,
    revision: Revision,
    bytes: &[u8],
    location: &str,
) -> LabelResult {
    match crate::model::parse(bytes, location) {
        Ok(config) => Ok(NodeConfigEntry {
            label: label.to_owned(),
            revision,
            config: Arc::new(config),
        }),
        Err(reason) => Err(StoreError::new(
            crate::error::StoreErrorKind::InvalidContent,
            backend,
            crate::error::Subject::Label(label.to_owned()),
            reason,
        )
        .at(location)),
    }
}

/// The revision of content that has no version of its own: `sha256:<hex>`.
pub(crate) fn content_revision(bytes: &[u8]) -> Revision {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(bytes);
    let mut text = String::with_capacity(7 + 64);
    text.push_str("sha256:");
    for byte in digest {
        text.push_str(&format!("{byte:02x}"));
    }
    Revision(text)
}
