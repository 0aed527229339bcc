//! The image source: an S3 or GCS bucket, a local directory, or any `ObjectStore`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use firework_model::agent::AgentConfig;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};

use crate::error::ImageError;

/// A secret that `Debug` prints as `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// Returns the secret value.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The object store that contains the images.
#[derive(Debug, Clone)]
pub enum ImageSource {
    /// An S3 or S3-compatible bucket. Credentials come from the AWS environment chain unless
    /// `credentials` is set.
    S3 {
        /// The bucket name.
        bucket: String,
        /// The region; the AWS environment or `us-east-1` when unset.
        region: Option<String>,
        /// An S3-compatible endpoint such as `http://127.0.0.1:3900`, addressed path-style.
        endpoint_url: Option<String>,
        /// Access key id and secret that replace the credential chain.
        credentials: Option<(String, Secret)>,
    },
    /// A Google Cloud Storage bucket with application default credentials or a key file.
    Gcs {
        /// The bucket name.
        bucket: String,
        /// A service account or application credentials JSON file.
        credentials_file: Option<PathBuf>,
    },
    /// A local directory; the key `a/b` is the file `<dir>/a/b`.
    Directory(PathBuf),
    /// A ready client, for example one wrapped with instrumentation.
    Store {
        /// The name used in logs and errors.
        name: String,
        /// The client.
        store: Arc<dyn ObjectStore>,
    },
}

impl ImageSource {
    /// Selects the source from the agent config: `s3_images_bucket` (with `s3_region` and
    /// `s3_endpoint_url`), `gcs_images_bucket` (with `gcs_credentials_file`) or
    /// `images_source_dir`. Returns `None` when none is set, which disables image sync.
    pub fn from_agent_config(config: &AgentConfig) -> Result<Option<ImageSource>, ImageError> {
        let non_empty =
            |value: &Option<String>| value.as_ref().filter(|v| !v.trim().is_empty()).cloned();
        let s3 = non_empty(&config.s3_images_bucket);
        let gcs = non_empty(&config.gcs_images_bucket);
        let dir = config
            .images_source_dir
            .clone()
            .filter(|d| !d.as_os_str().is_empty());
        let set: Vec<&str> = [
            s3.as_ref().map(|_| "s3_images_bucket"),
            gcs.as_ref().map(|_| "gcs_images_bucket"),
            dir.as_ref().map(|_| "images_source_dir"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if set.len() > 1 {
            return Err(ImageError::ConflictingSources {
                sources: set.join(", "),
            });
        }
        if let Some(bucket) = s3 {
            return Ok(Some(ImageSource::S3 {
                bucket,
                region: non_empty(&config.s3_region),
                endpoint_url: non_empty(&config.s3_endpoint_url),
                credentials: None,
            }));
        }
        if let Some(bucket) = gcs {
            return Ok(Some(ImageSource::Gcs {
                bucket,
                credentials_file: config.gcs_credentials_file.clone(),
            }));
        }
        Ok(dir.map(ImageSource::Directory))
    }

    /// Returns the name used in logs and errors: `s3://bucket`, `gs://bucket` or
    /// `file://dir`.
    pub fn name(&self) -> String {
        match self {
            ImageSource::S3 { bucket, .. } => format!("s3://{bucket}"),
            ImageSource::Gcs { bucket, .. } => format!("gs://{bucket}"),
            ImageSource::Directory(dir) => format!("file://{}", dir.display()),
            ImageSource::Store { name, .. } => name.clone(),
        }
    }

    /// Builds the client. HTTP clients get no overall request timeout, because a large image
    /// takes longer than any fixed limit, but a read timeout of `read_timeout` between two
    /// received chunks.
    pub fn build(&self, read_timeout: Duration) -> Result<Arc<dyn ObjectStore>, ImageError> {
        let invalid = |source| ImageError::InvalidSource {
            source_name: self.name(),
            source,
        };
        let client = ClientOptions::new()
            .with_timeout_disabled()
            .with_connect_timeout(Duration::from_secs(5))
            .with_read_timeout(read_timeout);
        // The store retries a failed request a few times itself; the sync adds its own
        // retries with resume on top.
        let retry = RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: 2,
            retry_timeout: Duration::from_secs(60),
        };
        match self {
            ImageSource::S3 {
                bucket,
                region,
                endpoint_url,
                credentials,
            } => {
                let mut builder = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_retry(retry);
                let mut client = client;
                if let Some(region) = region {
                    builder = builder.with_region(region);
                }
                if let Some(endpoint) = endpoint_url {
                    client = client.with_allow_http(endpoint.starts_with("http://"));
                    builder = builder
                        .with_endpoint(endpoint)
                        .with_virtual_hosted_style_request(false);
                }
                if let Some((key_id, secret)) = credentials {
                    builder = builder
                        .with_access_key_id(key_id)
                        .with_secret_access_key(secret.expose());
                }
                let store = builder
                    .with_client_options(client)
                    .build()
                    .map_err(invalid)?;
                Ok(Arc::new(store))
            }
            ImageSource::Gcs {
                bucket,
                credentials_file,
            } => {
                let mut builder = object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(bucket)
                    .with_retry(retry)
                    .with_client_options(client);
                if let Some(file) = credentials_file {
                    builder = builder.with_application_credentials(file.display().to_string());
                }
                Ok(Arc::new(builder.build().map_err(invalid)?))
            }
            ImageSource::Directory(dir) => {
                let store =
                    object_store::local::LocalFileSystem::new_with_prefix(dir).map_err(invalid)?;
                Ok(Arc::new(store))
            }
            ImageSource::Store { store, .. } => Ok(Arc::clone(store)),
        }
    }
}
