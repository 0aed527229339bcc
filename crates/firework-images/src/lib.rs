//! Root filesystem and kernel image sync for Firework nodes.
//!
//! The agent builds one [`ImageSync`] from its config ([`ImageSource::from_agent_config`])
//! and calls [`ImageSync::sync`] on every tick with the `image` and `kernel` paths of the
//! desired services. Each path gets its own [`ImageOutcome`]: ready with a content version
//! that belongs in the service's spec hash, not managed (outside `images_dir`), or failed
//! with an [`ImageError`] that blocks only the services using that image.
//! [`ImageSync::gc`] removes synced images no service references any more.
//!
//! An image at `<images_dir>/<relative path>` comes from the object key
//! `<key_prefix><relative path>`. Downloads stream to a hidden partial file in the same
//! directory. Each is checked against a published SHA-256 when there is one, fsynced and
//! renamed into place. So the final path only ever shows complete content, and a VM that
//! has the old file open keeps its old inode.

mod download;
mod error;
mod gc;
mod key;
mod metrics;
mod record;
mod source;
mod sync;

pub use download::ReadyVia;
pub use error::{ImageError, ImageErrorKind, error_chain};
pub use gc::GcReport;
pub use key::{PARTIAL_SUFFIX, RECORD_SUFFIX, SHA256_SUFFIX};
pub use metrics::{MetricsSnapshot, SyncMetrics};
pub use record::SyncRecord;
pub use source::{ImageSource, Secret};
pub use sync::{ImageOutcome, ImageSync, SyncOptions, SyncReport};
