//! Label values and label sets of the agent's metric families.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};

/// The maximum length of a label value taken from user input (service names, node labels, revisions),
/// in bytes. Longer values are cut at the last character boundary at or below this length.
///
/// The model already validates these names (a service name is at most 63 bytes, a node
/// label or node name at most 253), so a valid name is never cut. The cap only limits the
/// damage of a value that slipped past validation: a label value of unbounded length would
/// grow every scrape and the Prometheus index.
pub const MAX_LABEL_VALUE_LEN: usize = 256;

/// Cuts `value` to at most [`MAX_LABEL_VALUE_LEN`] bytes at a character boundary.
pub(crate) fn capped(value: &str) -> String {
    if value.len() <= MAX_LABEL_VALUE_LEN {
        return value.to_owned();
    }
    let mut end = MAX_LABEL_VALUE_LEN;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    value[..end].to_owned()
}

/// Declares a label value enum whose variants encode as fixed lowercase strings.
macro_rules! label_value_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$variant_meta:meta])* $variant:ident => $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$variant_meta])* $variant, )+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// Returns the label value this variant encodes as.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl EncodeLabelValue for $name {
            fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
                EncodeLabelValue::encode(&self.as_str(), encoder)
            }
        }
    };
}

label_value_enum! {
    /// The outcome of a reconcile tick.
    pub enum TickResult {
        /// The tick applied a plan with at least one change.
        Ok => "ok",
        /// The tick failed before or while applying its plan.
        Error => "error",
        /// The tick found nothing to change.
        NoChange => "no_change",
    }
}

label_value_enum! {
    /// The kind of a plan action.
    pub enum ActionKind {
        /// A service that is desired but not running.
        Create => "create",
        /// A running service whose spec changed.
        Update => "update",
        /// A running service that is no longer desired.
        Delete => "delete",
        /// A running service whose spec did not change.
        Unchanged => "unchanged",
    }
}

label_value_enum! {
    /// The health state of a service, with the names the health crate and the API use.
    pub enum HealthState {
        /// Started and not yet healthy.
        Starting => "starting",
        /// The last probes succeeded.
        Healthy => "healthy",
        /// Probes fail, but not yet often enough to restart.
        Unhealthy => "unhealthy",
        /// A restart is scheduled.
        Restarting => "restarting",
        /// Too many restarts within the window, so the service is left alone.
        Failing => "failing",
        /// Stopped on purpose.
        Stopped => "stopped",
        /// Not probed, because there is no health check or no reachable target.
        NotProbed => "not_probed",
    }
}

label_value_enum! {
    /// The store backend that served a fetch, named as its `store_type` value.
    pub enum StoreBackend {
        /// A local directory.
        Local => "local",
        /// A Git repository.
        Git => "git",
        /// An S3-compatible bucket.
        S3 => "s3",
        /// A Google Cloud Storage bucket.
        Gcs => "gcs",
    }
}

label_value_enum! {
    /// The outcome of a store fetch: success or the class of the failure.
    pub enum FetchResult {
        /// The document was read.
        Ok => "ok",
        /// The object, file, branch or bucket does not exist.
        NotFound => "not_found",
        /// The backend could not be reached or did not respond in time.
        Unreachable => "unreachable",
        /// The backend rejected the credentials or the caller lacks permission.
        Denied => "denied",
        /// The content was read but is not a valid document.
        InvalidContent => "invalid_content",
        /// The store settings are invalid, so no request was sent.
        InvalidSettings => "invalid_settings",
    }
}

label_value_enum! {
    /// The outcome of an image sync or a route sync.
    pub enum SyncResult {
        /// The sync changed something and succeeded.
        Ok => "ok",
        /// Everything was already in place.
        NoChange => "no_change",
        /// The sync failed, in whole or for some of its items: an image, or the route of
        /// a local service.
        Error => "error",
    }
}

label_value_enum! {
    /// The share of a node resource that a capacity gauge reports.
    pub enum CapacityKind {
        /// The amount the node offers to VMs.
        Total => "total",
        /// The amount the services placed on the node request.
        Reserved => "reserved",
        /// The amount running VMs hold.
        Used => "used",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct TickLabels {
    pub(crate) result: TickResult,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct ActionLabels {
    pub(crate) kind: ActionKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct ServiceLabels {
    pub(crate) service: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct HealthLabels {
    pub(crate) service: String,
    pub(crate) state: HealthState,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct FetchLabels {
    pub(crate) backend: StoreBackend,
    pub(crate) result: FetchResult,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct BackendLabels {
    pub(crate) backend: StoreBackend,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct SyncLabels {
    pub(crate) result: SyncResult,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct CapacityLabels {
    pub(crate) kind: CapacityKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct RevisionLabels {
    pub(crate) node: String,
    pub(crate) label: String,
    pub(crate) revision: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct BuildLabels {
    pub(crate) version: String,
}

/// The empty label set of an info metric whose labels all come from its family.
pub(crate) type NoLabels = [(&'static str, &'static str); 0];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_keeps_short_value() {
        assert_eq!(capped("web"), "web");
    }

    #[test]
    fn capped_cuts_long_value() {
        let long = "a".repeat(MAX_LABEL_VALUE_LEN + 10);
        assert_eq!(capped(&long).len(), MAX_LABEL_VALUE_LEN);
    }

    #[test]
    fn capped_cuts_at_char_boundary() {
        // "é" is two bytes, so byte MAX_LABEL_VALUE_LEN falls inside a character.
        let long = format!("a{}", "é".repeat(MAX_LABEL_VALUE_LEN));
        let cut = capped(&long);
        assert_eq!(cut.len(), MAX_LABEL_VALUE_LEN - 1);
        assert!(long.starts_with(&cut));
    }
}
