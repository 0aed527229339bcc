//! The object store backend: node configs in an S3 or GCS bucket through `object_store`.
//!
//! Keys: `<prefix>nodes/<label>.yaml`, `<prefix>index.json` and
//! `<prefix>registry/nodes/<node>.json`. Every read is a conditional GET with the ETag of
//! the cached copy, so an unchanged object costs one request and no body.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{BackoffConfig, ClientOptions, GetOptions, ObjectStore, RetryConfig};
use tracing::{Instrument, debug, info_span, warn};

use crate::error::{Backend, MessageError, StoreError, StoreErrorKind, Subject};
use crate::git::Secret;
use crate::index::{IndexSnapshot, PlacementIndex};
use crate::name::{INDEX_FILE, NODE_CONFIG_SUFFIX, NODES_DIR, check_label, label_from_file_name};
use crate::store::{
    ConfigStore, LabelResult, Listing, NodeConfigEntry, Revision, content_revision, decode_entry,
};

/// How many objects are read at the same time by `fetch` and `list_all`.
const READ_CONCURRENCY: usize = 16;

/// Settings of an S3 or GCS bucket.
#[derive(Debug, Clone)]
pub struct ObjectSettings {
    /// [`Backend::S3`] or [`Backend::Gcs`].
    pub backend: Backend,
    /// The bucket name.
    pub bucket: String,
    /// The folder inside the bucket that contains `nodes/`. Leading and trailing `/` are ignored.
    pub prefix: String,
    /// S3 only: the region; the AWS environment or `us-east-1` when unset.
    pub region: Option<String>,
    /// S3 only: an S3-compatible endpoint such as `http://127.0.0.1:3900`, addressed
    /// path-style.
    pub endpoint_url: Option<String>,
    /// S3 only: static credentials that replace the AWS credential chain.
    pub static_credentials: Option<(String, Secret)>,
    /// GCS only: a service account or application credentials JSON file.
    pub credentials_file: Option<PathBuf>,
    /// The time limit of one HTTP request.
    pub request_timeout: Duration,
    /// The time limit of establishing a connection.
    pub connect_timeout: Duration,
    /// Retries of a request that failed with a transient error.
    pub max_retries: usize,
}

impl ObjectSettings {
    /// S3 settings with defaults for `bucket` and `prefix`.
    pub fn s3(bucket: impl Into<String>, prefix: impl Into<String>) -> ObjectSettings {
        ObjectSettings {
            backend: Backend::S3,
            bucket: bucket.into(),
            prefix: prefix.into(),
            region: None,
            endpoint_url: None,
            static_credentials: None,
            credentials_file: None,
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            max_retries: 3,
        }
    }

    /// GCS settings with defaults for `bucket` and `prefix`.
    pub fn gcs(bucket: impl Into<String>, prefix: impl Into<String>) -> ObjectSettings {
        ObjectSettings {
            backend: Backend::Gcs,
            ..ObjectSettings::s3(bucket, prefix)
        }
    }

    /// Builds the `object_store` client. Credentials follow the standard chains
    /// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, web identity,
    /// instance metadata; `GOOGLE_APPLICATION_CREDENTIALS` and the metadata server for GCS).
    pub fn build(&self) -> Result<Arc<dyn ObjectStore>, StoreError> {
        let invalid = |reason: String| {
            StoreError::new(
                StoreErrorKind::InvalidSettings,
                self.backend,
                Subject::Store,
                MessageError(reason),
            )
        };
        if self.bucket.trim().is_empty() {
            return Err(invalid(format!("{}_bucket is empty", self.backend)));
        }
        let client = ClientOptions::new()
            .with_timeout(self.request_timeout)
            .with_connect_timeout(self.connect_timeout);
        let retry = RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: self.max_retries,
            retry_timeout: self.request_timeout.saturating_mul(2),
        };
        match self.backend {
            Backend::S3 => {
                let mut builder = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(&self.bucket)
                    .with_retry(retry);
                let mut client = client;
                if let Some(region) = &self.region {
                    builder = builder.with_region(region);
                }
                if let Some(endpoint) = &self.endpoint_url {
                    client = client.with_allow_http(endpoint.starts_with("http://"));
                    builder = builder
                        .with_endpoint(endpoint)
                        .with_virtual_hosted_style_request(false);
                }
                if let Some((key_id, secret)) = &self.static_credentials {
                    builder = builder
                        .with_access_key_id(key_id)
                        .with_secret_access_key(secret.expose());
                }
                let store = builder
                    .with_client_options(client)
                    .build()
                    .map_err(|e| invalid(crate::error_chain(&e)))?;
                Ok(Arc::new(store))
            }
            Backend::Gcs => {
                let mut builder = object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(&self.bucket)
                    .with_retry(retry);
                let mut client = client;
                if let Some(file) = &self.credentials_file {
                    let kind = read_gcs_credentials(file).map_err(invalid)?;
                    let path = file.display().to_string();
                    builder = match kind {
                        GcsCredentials::AuthorizedUser => {
                            builder.with_application_credentials(path)
                        }
                        GcsCredentials::ServiceAccount { plain_http } => {
                            client = client.with_allow_http(plain_http);
                            builder.with_service_account_path(path)
                        }
                    };
                }
                let builder = builder.with_client_options(client);
                let store = builder
                    .build()
                    .map_err(|e| invalid(crate::error_chain(&e)))?;
                Ok(Arc::new(store))
            }
            other => Err(invalid(format!("{other} is not an object store backend"))),
        }
    }
}

/// The kind of a GCS credentials file.
enum GcsCredentials {
    /// A user's application default credentials (`"type": "authorized_user"`).
    AuthorizedUser,
    /// A service account key. `plain_http` is true when its `gcs_base_url` (an emulator's
    /// address) uses `http://`.
    ServiceAccount { plain_http: bool },
}

/// Reads the `type` and `gcs_base_url` fields of a GCS credentials file, because
/// `object_store` takes the two kinds of file through different builder methods.
fn read_gcs_credentials(path: &std::path::Path) -> Result<GcsCredentials, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "failed to read gcs_credentials_file {}: {e}",
            path.display()
        )
    })?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("gcs_credentials_file {} is not JSON: {e}", path.display()))?;
    if value.get("type").and_then(|t| t.as_str()) == Some("authorized_user") {
        return Ok(GcsCredentials::AuthorizedUser);
    }
    let plain_http = value
        .get("gcs_base_url")
        .and_then(|url| url.as_str())
        .is_some_and(|url| url.starts_with("http://"));
    Ok(GcsCredentials::ServiceAccount { plain_http })
}

/// A cached object: its ETag and what it decoded to.
#[derive(Debug, Clone)]
struct Cached<T> {
    etag: String,
    value: T,
}

/// Node configs in an S3 or GCS bucket. The revision of an entry is its ETag without quotes.
#[derive(Debug)]
pub struct ObjectConfigStore {
    backend: Backend,
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    labels: Mutex<HashMap<String, Cached<NodeConfigEntry>>>,
    index: Mutex<Option<Cached<IndexSnapshot>>>,
}

/// The result of a conditional GET.
enum Conditional {
    Unchanged,
    Modified {
        etag: Option<String>,
        bytes: bytes::Bytes,
    },
}

impl ObjectConfigStore {
    /// Connects to the bucket in `settings`; no request is sent yet.
    pub fn new(settings: &ObjectSettings) -> Result<ObjectConfigStore, StoreError> {
        let store = settings.build()?;
        Ok(ObjectConfigStore::from_store(
            settings.backend,
            store,
            &settings.prefix,
        ))
    }

    /// Wraps an existing `object_store` client, for example one with extra instrumentation.
    pub fn from_store(
        backend: Backend,
        store: Arc<dyn ObjectStore>,
        prefix: &str,
    ) -> ObjectConfigStore {
        ObjectConfigStore {
            backend,
            store,
            prefix: Path::from(prefix),
            labels: Mutex::new(HashMap::new()),
            index: Mutex::new(None),
        }
    }

    /// Returns the `object_store` client.
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Returns the normalized prefix, without leading or trailing `/`.
    pub fn prefix(&self) -> &Path {
        &self.prefix
    }

    /// Returns the key of a label's node config.
    pub fn node_config_key(&self, label: &str) -> Path {
        self.prefix
            .clone()
            .join(NODES_DIR)
            .join(format!("{label}{NODE_CONFIG_SUFFIX}"))
    }

    /// Returns the key of the placement index.
    pub fn index_key(&self) -> Path {
        self.prefix.clone().join(INDEX_FILE)
    }

    async fn conditional_get(
        &self,
        key: &Path,
        etag: Option<String>,
        subject: &Subject,
    ) -> Result<Conditional, StoreError> {
        let options = GetOptions {
            if_none_match: etag.map(|tag| quote(&tag)),
            ..GetOptions::default()
        };
        match self.store.get_opts(key, options).await {
            Ok(result) => {
                let etag = result.meta.e_tag.as_deref().map(unquote);
                let bytes = result
                    .bytes()
                    .await
                    .map_err(|e| map_error(self.backend, subject.clone(), key, e))?;
                Ok(Conditional::Modified { etag, bytes })
            }
            Err(object_store::Error::NotModified { .. }) => Ok(Conditional::Unchanged),
            Err(error) => Err(map_error(self.backend, subject.clone(), key, error)),
        }
    }

    fn cached_label(&self, label: &str) -> Option<Cached<NodeConfigEntry>> {
        self.labels.lock().ok()?.get(label).cloned()
    }

    async fn read_label(&self, label: &str, listed_etag: Option<&str>) -> LabelResult {
        check_label(self.backend, label)?;
        let key = self.node_config_key(label);
        let subject = Subject::Label(label.to_owned());
        let cached = self.cached_label(label);
        if let (Some(cached), Some(listed)) = (&cached, listed_etag) {
            // The listing already carries the ETag, so an unchanged object needs no request.
            if cached.etag == unquote(listed) {
                return Ok(cached.value.clone());
            }
        }
        let outcome = match self
            .conditional_get(&key, cached.as_ref().map(|c| c.etag.clone()), &subject)
            .await
        {
            Ok(outcome) => outcome,
            Err(error) => {
                if error.kind == StoreErrorKind::NotFound
                    && let Ok(mut labels) = self.labels.lock()
                {
                    labels.remove(label);
                }
                return Err(error);
            }
        };
        match outcome {
            Conditional::Unchanged => match cached {
                Some(cached) => {
                    debug!(label, revision = %cached.value.revision, "node config unchanged");
                    Ok(cached.value)
                }
                None => Err(StoreError::new(
                    StoreErrorKind::Unreachable,
                    self.backend,
                    subject,
                    MessageError(
                        "server returned 304 Not Modified for an unconditional GET".to_owned(),
                    ),
                )
                .at(key.to_string())),
            },
            Conditional::Modified { etag, bytes } => {
                let revision = match &etag {
                    Some(etag) => Revision(etag.clone()),
                    None => content_revision(&bytes),
                };
                debug!(label, %revision, bytes = bytes.len(), "downloaded node config");
                let entry = decode_entry(self.backend, label, revision, &bytes, key.as_ref())?;
                if let (Some(etag), Ok(mut labels)) = (etag, self.labels.lock()) {
                    labels.insert(
                        label.to_owned(),
                        Cached {
                            etag,
                            value: entry.clone(),
                        },
                    );
                }
                Ok(entry)
            }
        }
    }

    async fn fetch_labels(&self, labels: &[String]) -> Vec<LabelResult> {
        futures::stream::iter(labels.iter().cloned())
            .map(|label| {
                let span = info_span!("read_label", backend = %self.backend, label = %label);
                async move {
                    let result = self.read_label(&label, None).await;
                    if let Err(error) = &result {
                        warn!(error = %crate::error_chain(error), "node config read failed");
                    }
                    result
                }
                .instrument(span)
            })
            .buffered(READ_CONCURRENCY)
            .collect()
            .await
    }

    async fn list(&self) -> Result<Listing, StoreError> {
        let folder = self.prefix.clone().join(NODES_DIR);
        let metas: Vec<_> = self
            .store
            .list(Some(&folder))
            .try_collect()
            .await
            .map_err(|e| map_error(self.backend, Subject::Listing, &folder, e))?;
        let folder_depth = folder.parts().count();
        let mut labels: Vec<(String, Option<String>)> = metas
            .into_iter()
            .filter(|meta| meta.location.parts().count() == folder_depth + 1)
            .filter_map(|meta| {
                let name = meta.location.filename()?;
                let label = label_from_file_name(name)?;
                Some((label.to_owned(), meta.e_tag))
            })
            .collect();
        labels.sort();
        debug!(objects = labels.len(), "listed node configs");
        if let Ok(mut cache) = self.labels.lock() {
            cache.retain(|label, _| {
                labels
                    .binary_search_by(|(l, _)| l.as_str().cmp(label))
                    .is_ok()
            });
        }
        let listing = futures::stream::iter(labels)
            .map(|(label, etag)| async move { self.read_label(&label, etag.as_deref()).await })
            .buffered(READ_CONCURRENCY)
            .collect()
            .await;
        Ok(listing)
    }

    async fn read_index(&self) -> Result<IndexSnapshot, StoreError> {
        let key = self.index_key();
        let cached = self.index.lock().ok().and_then(|c| c.clone());
        let outcome = self
            .conditional_get(
                &key,
                cached.as_ref().map(|c| c.etag.clone()),
                &Subject::Index,
            )
            .await?;
        match (outcome, cached) {
            (Conditional::Unchanged, Some(cached)) => Ok(IndexSnapshot {
                changed: false,
                ..cached.value
            }),
            (Conditional::Unchanged, None) => Err(StoreError::new(
                StoreErrorKind::Unreachable,
                self.backend,
                Subject::Index,
                MessageError(
                    "server returned 304 Not Modified for an unconditional GET".to_owned(),
                ),
            )
            .at(key.to_string())),
            (Conditional::Modified { etag, bytes }, _) => {
                let index = PlacementIndex::from_json(&bytes).map_err(|reason| {
                    StoreError::new(
                        StoreErrorKind::InvalidContent,
                        self.backend,
                        Subject::Index,
                        MessageError(reason),
                    )
                    .at(key.to_string())
                })?;
                let revision = match &etag {
                    Some(etag) => Revision(etag.clone()),
                    None => content_revision(&bytes),
                };
                let snapshot = IndexSnapshot {
                    revision,
                    index: Arc::new(index),
                    changed: true,
                };
                if let (Some(etag), Ok(mut slot)) = (etag, self.index.lock()) {
                    *slot = Some(Cached {
                        etag,
                        value: snapshot.clone(),
                    });
                }
                Ok(snapshot)
            }
        }
    }
}

impl ConfigStore for ObjectConfigStore {
    fn backend(&self) -> Backend {
        self.backend
    }

    fn fetch<'a>(&'a self, labels: &'a [String]) -> BoxFuture<'a, Vec<LabelResult>> {
        self.fetch_labels(labels)
            .instrument(
                info_span!("fetch_node_configs", backend = %self.backend, labels = labels.len()),
            )
            .boxed()
    }

    fn list_all(&self) -> BoxFuture<'_, Result<Listing, StoreError>> {
        self.list()
            .instrument(info_span!("list_node_configs", backend = %self.backend))
            .boxed()
    }

    fn fetch_index(&self) -> BoxFuture<'_, Result<IndexSnapshot, StoreError>> {
        self.read_index()
            .instrument(info_span!("fetch_index", backend = %self.backend))
            .boxed()
    }
}

fn quote(etag: &str) -> String {
    format!("\"{etag}\"")
}

fn unquote(etag: &str) -> String {
    etag.trim_matches('"').to_owned()
}

/// Maps an `object_store` error to a store error of the right kind.
pub(crate) fn map_error(
    backend: Backend,
    subject: Subject,
    key: &Path,
    error: object_store::Error,
) -> StoreError {
    let kind = match &error {
        object_store::Error::NotFound { .. } => StoreErrorKind::NotFound,
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => StoreErrorKind::Denied,
        object_store::Error::InvalidPath { .. } => StoreErrorKind::InvalidSettings,
        // List requests report HTTP failures only as text, so the status is read from it.
        _ => match http_status(&crate::error_chain(&error)) {
            Some(404) => StoreErrorKind::NotFound,
            Some(401 | 403) => StoreErrorKind::Denied,
            _ => StoreErrorKind::Unreachable,
        },
    };
    StoreError::new(kind, backend, subject, error).at(key.to_string())
}

/// Finds the status in object_store's message "Server returned non-2xx status code: 404 …".
fn http_status(message: &str) -> Option<u16> {
    const MARKER: &str = "non-2xx status code: ";
    let start = message.find(MARKER)? + MARKER.len();
    message[start..].get(..3)?.parse().ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn gcs_credentials_kinds() {
        let dir = tempfile::tempdir().unwrap();
        let user = dir.path().join("user.json");
        std::fs::write(&user, r#"{"type": "authorized_user", "client_id": "x"}"#).unwrap();
        assert!(matches!(
            read_gcs_credentials(&user),
            Ok(GcsCredentials::AuthorizedUser)
        ));
        let emulator = dir.path().join("sa.json");
        std::fs::write(&emulator, r#"{"gcs_base_url": "http://127.0.0.1:4443"}"#).unwrap();
        assert!(matches!(
            read_gcs_credentials(&emulator),
            Ok(GcsCredentials::ServiceAccount { plain_http: true })
        ));
        let missing = dir.path().join("missing.json");
        let error = read_gcs_credentials(&missing).err().unwrap();
        assert!(
            error.starts_with("failed to read gcs_credentials_file"),
            "{error}"
        );
    }

    #[test]
    fn http_status_from_message() {
        assert_eq!(
            http_status(
                "Error performing GET x - Server returned non-2xx status code: 404 Not Found: <xml>"
            ),
            Some(404)
        );
        assert_eq!(http_status("connection refused"), None);
    }

    fn store(prefix: &str) -> ObjectConfigStore {
        ObjectConfigStore::from_store(
            Backend::S3,
            Arc::new(object_store::memory::InMemory::new()),
            prefix,
        )
    }

    #[test]
    fn keys_join_prefix_without_double_slashes() {
        assert_eq!(store("").node_config_key("web").as_ref(), "nodes/web.yaml");
        assert_eq!(
            store("fleet/").node_config_key("web").as_ref(),
            "fleet/nodes/web.yaml"
        );
        assert_eq!(
            store("/fleet//a/").node_config_key("web").as_ref(),
            "fleet/a/nodes/web.yaml"
        );
        assert_eq!(store("fleet").index_key().as_ref(), "fleet/index.json");
    }

    #[test]
    fn settings_reject_empty_bucket() {
        let error = ObjectSettings::s3(" ", "").build().unwrap_err();
        assert_eq!(error.kind, StoreErrorKind::InvalidSettings);
        assert_eq!(error.to_string(), "s3 store: store: invalid settings");
        assert_eq!(error.cause.to_string(), "s3_bucket is empty");
    }
}
