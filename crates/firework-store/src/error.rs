//! The error type shared by every store backend.

use std::fmt;

/// The backend that produced a value or an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// A local directory holding `nodes/`.
    Local,
    /// A Git repository.
    Git,
    /// An S3-compatible bucket.
    S3,
    /// A Google Cloud Storage bucket.
    Gcs,
}

impl Backend {
    /// The `store_type` value that selects this backend.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Local => "local",
            Backend::Git => "git",
            Backend::S3 => "s3",
            Backend::Gcs => "gcs",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The class of a store failure, which decides what a caller can do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreErrorKind {
    /// The object, file, branch or bucket does not exist.
    NotFound,
    /// The backend could not be reached or did not respond in time.
    Unreachable,
    /// The backend rejected the credentials or the caller lacks permission.
    Denied,
    /// The content was read but is not a valid document of its kind.
    InvalidContent,
    /// The store settings or a label are invalid, so no request was sent.
    InvalidSettings,
}

impl fmt::Display for StoreErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StoreErrorKind::NotFound => "not found",
            StoreErrorKind::Unreachable => "unreachable",
            StoreErrorKind::Denied => "access denied",
            StoreErrorKind::InvalidContent => "invalid content",
            StoreErrorKind::InvalidSettings => "invalid settings",
        })
    }
}

/// The document a failed operation was reading or writing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    /// The node config of one label.
    Label(String),
    /// The listing of all node configs.
    Listing,
    /// The placement index object.
    Index,
    /// The registry record of one node.
    Registry(String),
    /// The listing of all registry records.
    RegistryListing,
    /// The store as a whole, such as its settings or its Git clone.
    Store,
}

impl Subject {
    /// The label this subject names, if it is a node config.
    pub fn label(&self) -> Option<&str> {
        match self {
            Subject::Label(label) => Some(label),
            _ => None,
        }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Label(label) => write!(f, "node config of label `{label}`"),
            Subject::Listing => f.write_str("listing of node configs"),
            Subject::Index => f.write_str("placement index"),
            Subject::Registry(node) => write!(f, "registry record of node `{node}`"),
            Subject::RegistryListing => f.write_str("listing of registry records"),
            Subject::Store => f.write_str("store"),
        }
    }
}

/// The boxed cause of a [`StoreError`].
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A failed store operation: which backend, on what, of which kind, and why.
///
/// The message names the backend, the subject and the kind; the cause is the `source()`.
#[derive(Debug, thiserror::Error)]
#[error("{backend} store: {subject}: {kind}{}", location_suffix(.location))]
pub struct StoreError {
    /// The class of failure.
    pub kind: StoreErrorKind,
    /// The backend that failed.
    pub backend: Backend,
    /// The document that was being read or written.
    pub subject: Subject,
    /// The key, path or redacted URL involved, when there is one.
    pub location: Option<String>,
    /// The underlying error.
    #[source]
    pub cause: Cause,
}

fn location_suffix(location: &Option<String>) -> String {
    match location {
        Some(location) => format!(" at {location}"),
        None => String::new(),
    }
}

impl StoreError {
    /// Builds an error without a location.
    pub fn new(
        kind: StoreErrorKind,
        backend: Backend,
        subject: Subject,
        cause: impl Into<Cause>,
    ) -> Self {
        StoreError {
            kind,
            backend,
            subject,
            location: None,
            cause: cause.into(),
        }
    }

    /// Sets the key, path or redacted URL shown in the message.
    pub fn at(mut self, location: impl Into<String>) -> Self {
        self.location = Some(location.into());
        self
    }

    /// The label whose node config failed, if the subject is a node config.
    pub fn label(&self) -> Option<&str> {
        self.subject.label()
    }

    /// Returns the same failure for another subject, keeping the cause text.
    ///
    /// A Git fetch fails once for all labels, and each label gets its own copy of the error.
    pub fn for_subject(&self, subject: Subject) -> StoreError {
        StoreError {
            kind: self.kind,
            backend: self.backend,
            subject,
            location: self.location.clone(),
            cause: Box::new(MessageError(error_chain(&*self.cause))),
        }
    }
}

/// A cause that is only text, used where the original error cannot be shared or
/// must be redacted first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageError(pub String);

impl fmt::Display for MessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MessageError {}

/// Renders an error and all its sources as one line, `outer: inner: innermost`.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let inner_text = inner.to_string();
        // Some libraries repeat the source text inside their own message.
        if !text.contains(&inner_text) {
            text.push_str(": ");
            text.push_str(&inner_text);
        }
        source = inner.source();
    }
    text
}
