//! The typed error of one image's sync and of the sync settings.

use std::fmt;
use std::path::PathBuf;

/// The class of an image failure, usable as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageErrorKind {
    /// The object does not exist and there is no local copy.
    NotFound,
    /// The object store rejected the credentials or the caller lacks permission.
    Denied,
    /// The object store could not be reached or failed to respond after every retry.
    Unreachable,
    /// The downloaded content does not match its published SHA-256 or size.
    ChecksumMismatch,
    /// The object changed while it was downloaded; the next sync starts over.
    Changed,
    /// A local file operation failed.
    Io,
    /// The image path or the source settings are invalid, so nothing was requested.
    Invalid,
}

impl ImageErrorKind {
    /// Returns the lowercase name used in metric labels and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ImageErrorKind::NotFound => "not_found",
            ImageErrorKind::Denied => "denied",
            ImageErrorKind::Unreachable => "unreachable",
            ImageErrorKind::ChecksumMismatch => "checksum_mismatch",
            ImageErrorKind::Changed => "changed",
            ImageErrorKind::Io => "io",
            ImageErrorKind::Invalid => "invalid",
        }
    }
}

impl fmt::Display for ImageErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The failure of one image, or of the sync settings.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The object is missing from the source and `path` does not exist locally.
    #[error("image object {key} not found in {source_name} and no local copy exists at {path}")]
    NotFound {
        /// The object key.
        key: String,
        /// The local path the service references.
        path: PathBuf,
        /// The source, e.g. `s3://bucket`.
        source_name: String,
    },
    /// The object store rejected the request.
    #[error("access to image object {key} in {source_name} denied")]
    Denied {
        /// The object key.
        key: String,
        /// The source, e.g. `s3://bucket`.
        source_name: String,
        /// The store's error.
        #[source]
        source: object_store::Error,
    },
    /// The object store failed on every attempt.
    #[error("image object {key} in {source_name} unreachable after {attempts} attempts")]
    Unreachable {
        /// The object key.
        key: String,
        /// The source, e.g. `s3://bucket`.
        source_name: String,
        /// How many attempts were made.
        attempts: u32,
        /// The error of the last attempt.
        #[source]
        source: object_store::Error,
    },
    /// The downloaded bytes do not hash to the published SHA-256; nothing was installed.
    #[error(
        "checksum mismatch for image object {key}: expected sha256 {expected}, got {actual}; {path} was left unchanged"
    )]
    ChecksumMismatch {
        /// The object key.
        key: String,
        /// The local path that keeps its previous content.
        path: PathBuf,
        /// The published digest, lowercase hex.
        expected: String,
        /// The digest of the downloaded bytes, lowercase hex.
        actual: String,
    },
    /// The object's length differs from the size its metadata announced.
    #[error(
        "image object {key} returned {actual} bytes but its size is {expected}; {path} was left unchanged"
    )]
    SizeMismatch {
        /// The object key.
        key: String,
        /// The local path that keeps its previous content.
        path: PathBuf,
        /// The announced size in bytes.
        expected: u64,
        /// The received size in bytes.
        actual: u64,
    },
    /// The object's ETag changed between the metadata request and the download.
    #[error(
        "image object {key} in {source_name} changed during the download; it is fetched again on the next sync"
    )]
    Changed {
        /// The object key.
        key: String,
        /// The source, e.g. `s3://bucket`.
        source_name: String,
    },
    /// A local file operation failed.
    #[error("failed to {operation} {path}")]
    Io {
        /// The attempted operation, e.g. `rename`.
        operation: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The image path cannot be mapped to an object key.
    #[error("invalid image path {path}: {reason}")]
    InvalidPath {
        /// The path as the service wrote it.
        path: PathBuf,
        /// The reason for the rejection.
        reason: &'static str,
    },
    /// The source settings are unusable.
    #[error("invalid image source {source_name}")]
    InvalidSource {
        /// The source, e.g. `s3://bucket`.
        source_name: String,
        /// The builder's error.
        #[source]
        source: object_store::Error,
    },
    /// More than one image source is configured.
    #[error("more than one image source is set ({sources}); set only one")]
    ConflictingSources {
        /// The config keys that are set.
        sources: String,
    },
}

impl ImageError {
    /// Returns the class of this error.
    pub fn kind(&self) -> ImageErrorKind {
        match self {
            ImageError::NotFound { .. } => ImageErrorKind::NotFound,
            ImageError::Denied { .. } => ImageErrorKind::Denied,
            ImageError::Unreachable { .. } => ImageErrorKind::Unreachable,
            ImageError::ChecksumMismatch { .. } | ImageError::SizeMismatch { .. } => {
                ImageErrorKind::ChecksumMismatch
            }
            ImageError::Changed { .. } => ImageErrorKind::Changed,
            ImageError::Io { .. } => ImageErrorKind::Io,
            ImageError::InvalidPath { .. }
            | ImageError::InvalidSource { .. }
            | ImageError::ConflictingSources { .. } => ImageErrorKind::Invalid,
        }
    }

    pub(crate) fn io(
        operation: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        ImageError::Io {
            operation,
            path: path.into(),
            source,
        }
    }
}

/// Formats an error and its sources on one line, `outer: inner: innermost`.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}
