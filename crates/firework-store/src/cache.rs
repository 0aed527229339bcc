//! The last good desired state, kept across store failures.
//!
//! Safety rules:
//! - If any label fails to read or parse, the whole read yields no new desired state and the
//!   previous state stays in force for every label.
//! - A missing, empty or `services`-less file is an error (the parser rejects the latter two),
//!   so it can never be read as "run nothing". Only an explicit `services: []` empties a label.
//! - A peer node config that fails to read keeps its last good copy for routing.

use std::collections::BTreeMap;

use tracing::warn;

use crate::error::{Backend, MessageError, StoreError, StoreErrorKind, Subject};
use crate::index::IndexSnapshot;
use crate::store::{LabelResult, Listing, NodeConfigEntry};

/// The node configs of all of an agent's labels from one successful read.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredState {
    /// The entry of every label, keyed by label.
    pub entries: BTreeMap<String, NodeConfigEntry>,
}

impl DesiredState {
    /// A combined revision, `label=revision` pairs joined by `,` in label order. It changes
    /// whenever any label's revision changes.
    pub fn revision(&self) -> String {
        self.entries
            .iter()
            .map(|(label, entry)| format!("{label}={}", entry.revision))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A read that produced no new desired state.
#[derive(Debug)]
pub struct StaleState<'a> {
    /// The state still in force, `None` when no read has ever succeeded.
    pub last_good: Option<&'a DesiredState>,
    /// The errors of the read, one per failed label, each with its backend and cause.
    pub errors: Vec<StoreError>,
}

/// The outcome of applying a peer listing.
#[derive(Debug, Default)]
pub struct PeerUpdate {
    /// Errors of peers that kept their last good copy, or of the listing as a whole.
    pub errors: Vec<StoreError>,
}

/// Keeps the last good desired state of an agent's labels, its peers and the placement index.
#[derive(Debug)]
pub struct DesiredStateCache {
    backend: Backend,
    desired: Option<DesiredState>,
    peers: BTreeMap<String, NodeConfigEntry>,
    index: Option<IndexSnapshot>,
}

impl DesiredStateCache {
    /// An empty cache for the results of a store of `backend`.
    pub fn new(backend: Backend) -> DesiredStateCache {
        DesiredStateCache {
            backend,
            desired: None,
            peers: BTreeMap::new(),
            index: None,
        }
    }

    /// The desired state in force, `None` until the first fully successful read.
    pub fn desired(&self) -> Option<&DesiredState> {
        self.desired.as_ref()
    }

    /// Applies the results of [`crate::ConfigStore::fetch`] for `labels`.
    ///
    /// Returns the new state when every label was read and parsed; otherwise keeps the
    /// previous state for all labels and returns the errors. A label missing from `results`
    /// counts as a failure.
    pub fn apply_fetch(
        &mut self,
        labels: &[String],
        results: Vec<LabelResult>,
    ) -> Result<&DesiredState, StaleState<'_>> {
        let mut entries = BTreeMap::new();
        let mut errors = Vec::new();
        for result in results {
            match result {
                Ok(entry) => {
                    entries.insert(entry.label.clone(), entry);
                }
                Err(error) => errors.push(error),
            }
        }
        for label in labels {
            let failed = errors.iter().any(|e| e.label() == Some(label.as_str()));
            if !entries.contains_key(label) && !failed {
                errors.push(StoreError::new(
                    StoreErrorKind::NotFound,
                    self.backend,
                    Subject::Label(label.clone()),
                    MessageError("the store returned no result for this label".to_owned()),
                ));
            }
        }
        entries.retain(|label, _| labels.contains(label));
        if !errors.is_empty() {
            for error in &errors {
                warn!(
                    backend = %error.backend,
                    label = error.label().unwrap_or_default(),
                    error = %crate::error_chain(error),
                    "keeping last good desired state"
                );
            }
            return Err(StaleState {
                last_good: self.desired.as_ref(),
                errors,
            });
        }
        Ok(self.desired.insert(DesiredState { entries }))
    }

    /// The peer node configs in force, keyed by label.
    pub fn peers(&self) -> &BTreeMap<String, NodeConfigEntry> {
        &self.peers
    }

    /// Applies the result of [`crate::ConfigStore::list_all`].
    ///
    /// A failed listing keeps every peer. A peer whose file failed keeps its last good copy.
    /// A peer absent from a successful listing was deleted and is dropped.
    pub fn apply_listing(&mut self, listing: Result<Listing, StoreError>) -> PeerUpdate {
        let listing = match listing {
            Ok(listing) => listing,
            Err(error) => {
                warn!(backend = %error.backend, error = %crate::error_chain(&error), "keeping last good peers");
                return PeerUpdate {
                    errors: vec![error],
                };
            }
        };
        let mut peers = BTreeMap::new();
        let mut errors = Vec::new();
        for result in listing {
            match result {
                Ok(entry) => {
                    peers.insert(entry.label.clone(), entry);
                }
                Err(error) => {
                    if let Some(previous) = error.label().and_then(|label| self.peers.get(label)) {
                        peers.insert(previous.label.clone(), previous.clone());
                    }
                    warn!(
                        backend = %error.backend,
                        label = error.label().unwrap_or_default(),
                        error = %crate::error_chain(&error),
                        "keeping last good copy of peer node config"
                    );
                    errors.push(error);
                }
            }
        }
        self.peers = peers;
        PeerUpdate { errors }
    }

    /// The placement index in force.
    pub fn index(&self) -> Option<&IndexSnapshot> {
        self.index.as_ref()
    }

    /// Applies the result of [`crate::ConfigStore::fetch_index`], keeping the last good index
    /// on error.
    pub fn apply_index(
        &mut self,
        result: Result<IndexSnapshot, StoreError>,
    ) -> Result<&IndexSnapshot, (Option<&IndexSnapshot>, StoreError)> {
        match result {
            Ok(snapshot) => Ok(self.index.insert(snapshot)),
            Err(error) => {
                warn!(backend = %error.backend, error = %crate::error_chain(&error), "keeping last good placement index");
                Err((self.index.as_ref(), error))
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::Revision;

    fn entry(label: &str, revision: &str, services: &str) -> NodeConfigEntry {
        let yaml = format!("services: {services}\n");
        NodeConfigEntry {
            label: label.to_owned(),
            revision: Revision(revision.to_owned()),
            config: Arc::new(crate::model::parse(yaml.as_bytes(), "test.yaml").unwrap()),
        }
    }

    fn failure(label: &str, kind: StoreErrorKind) -> StoreError {
        StoreError::new(
            kind,
            Backend::S3,
            Subject::Label(label.to_owned()),
            MessageError("boom".to_owned()),
        )
    }

    fn labels(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn no_state_before_first_success() {
        let mut cache = DesiredStateCache::new(Backend::S3);
        let wanted = labels(&["a"]);
        let stale = cache
            .apply_fetch(
                &wanted,
                vec![Err(failure("a", StoreErrorKind::Unreachable))],
            )
            .unwrap_err();
        assert_eq!(stale.last_good, None);
        assert_eq!(stale.errors.len(), 1);
        assert_eq!(cache.desired(), None);
    }

    #[test]
    fn label_without_result_is_failure() {
        let mut cache = DesiredStateCache::new(Backend::S3);
        let wanted = labels(&["a", "b"]);
        let stale = cache
            .apply_fetch(&wanted, vec![Ok(entry("a", "r1", "[]"))])
            .unwrap_err();
        assert_eq!(stale.errors.len(), 1);
        assert_eq!(stale.errors[0].label(), Some("b"));
        assert_eq!(stale.errors[0].kind, StoreErrorKind::NotFound);
        assert_eq!(cache.desired(), None);
    }

    #[test]
    fn combined_revision_names_each_label() {
        let mut cache = DesiredStateCache::new(Backend::S3);
        let wanted = labels(&["b", "a"]);
        let state = cache
            .apply_fetch(
                &wanted,
                vec![Ok(entry("b", "r2", "[]")), Ok(entry("a", "r1", "[]"))],
            )
            .unwrap();
        assert_eq!(state.revision(), "a=r1,b=r2");
    }

    #[test]
    fn failed_listing_keeps_all_peers() {
        let mut cache = DesiredStateCache::new(Backend::S3);
        cache.apply_listing(Ok(vec![Ok(entry("p", "r1", "[]"))]));
        let update = cache.apply_listing(Err(StoreError::new(
            StoreErrorKind::Denied,
            Backend::S3,
            Subject::Listing,
            MessageError("boom".to_owned()),
        )));
        assert_eq!(update.errors.len(), 1);
        assert_eq!(cache.peers().len(), 1);
        assert_eq!(cache.peers()["p"].revision.as_str(), "r1");
    }

    #[test]
    fn failed_index_keeps_last_good() {
        let mut cache = DesiredStateCache::new(Backend::S3);
        let snapshot = IndexSnapshot {
            revision: Revision("e1".to_owned()),
            index: Arc::new(crate::PlacementIndex::default()),
            changed: true,
        };
        cache.apply_index(Ok(snapshot.clone())).unwrap();
        let (kept, error) = cache
            .apply_index(Err(failure("x", StoreErrorKind::Unreachable)))
            .unwrap_err();
        assert_eq!(kept, Some(&snapshot));
        assert_eq!(error.kind, StoreErrorKind::Unreachable);
    }
}
