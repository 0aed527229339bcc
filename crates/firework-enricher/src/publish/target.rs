//! Where node configs are published: a local directory or an S3 or GCS bucket.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::fcntl::{Flock, FlockArg};
use object_store::aws::{AmazonS3Builder, S3ConditionalPut};
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};

use super::PublishError;
use super::manifest::sha256_hex;

/// Name of the lock file in a local output directory.
pub const LOCK_FILE: &str = ".firework-publish.lock";

/// Settings for building an S3 or GCS client. Unset values come from the standard
/// environment (`AWS_*`, `GOOGLE_*`).
#[derive(Debug, Clone, Default)]
pub struct ObjectOptions {
    /// S3-compatible endpoint such as `http://127.0.0.1:3900`; requests are path-style and
    /// plain HTTP is allowed for an `http://` endpoint.
    pub endpoint: Option<String>,
    /// S3 region.
    pub region: Option<String>,
    /// Static S3 access key id and secret, replacing the credential chain.
    pub credentials: Option<(String, String)>,
}

/// A version of an object, used for compare-and-set of the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Version {
    /// SHA-256 of a local file's content.
    Hash(String),
    /// ETag and version of an object.
    Object(UpdateVersion),
}

impl Version {
    /// True when both name the same stored content. ETags are compared without quotes,
    /// because a PUT response and a HEAD response may quote them differently.
    pub fn same_as(&self, other: &Version) -> bool {
        match (self, other) {
            (Version::Hash(a), Version::Hash(b)) => a == b,
            (Version::Object(a), Version::Object(b)) => match (&a.e_tag, &b.e_tag) {
                (Some(x), Some(y)) => x.trim_matches('"') == y.trim_matches('"'),
                _ => a.version.is_some() && a.version == b.version,
            },
            _ => false,
        }
    }
}

/// A publish destination.
#[derive(Debug, Clone)]
pub enum Target {
    /// A local directory.
    Local(PathBuf),
    /// A bucket and a prefix inside it.
    Object {
        /// The client.
        store: Arc<dyn ObjectStore>,
        /// The prefix; empty for the bucket root.
        prefix: String,
        /// The URL, for messages.
        url: String,
    },
}

/// A held publish lock; released when dropped.
#[derive(Debug)]
pub struct LockGuard {
    _lock: Option<Flock<File>>,
}

impl Target {
    /// Parses `s3://bucket/prefix`, `gs://bucket/prefix` or a directory path.
    pub fn parse(url: &str, options: &ObjectOptions) -> Result<Target, PublishError> {
        let invalid = |reason: String| PublishError::InvalidTarget {
            url: url.to_string(),
            reason,
        };
        let (scheme, rest) = match url.split_once("://") {
            None => return Ok(Target::Local(PathBuf::from(url))),
            Some(parts) => parts,
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(invalid("the bucket name is empty".to_string()));
        }
        let prefix = prefix.trim_matches('/').to_string();
        let store: Arc<dyn ObjectStore> = match scheme {
            "s3" => {
                let mut builder = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_conditional_put(S3ConditionalPut::ETagMatch);
                if let Some(region) = &options.region {
                    builder = builder.with_region(region);
                }
                if let Some(endpoint) = &options.endpoint {
                    builder = builder
                        .with_endpoint(endpoint)
                        .with_allow_http(endpoint.starts_with("http://"))
                        .with_virtual_hosted_style_request(false);
                }
                if let Some((key, secret)) = &options.credentials {
                    builder = builder
                        .with_access_key_id(key)
                        .with_secret_access_key(secret);
                }
                Arc::new(builder.build().map_err(|e| invalid(e.to_string()))?)
            }
            "gs" => Arc::new(
                GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(bucket)
                    .build()
                    .map_err(|e| invalid(e.to_string()))?,
            ),
            other => {
                return Err(invalid(format!(
                    "unknown scheme {other:?}: write s3://, gs:// or a directory path"
                )));
            }
        };
        Ok(Target::Object {
            store,
            prefix,
            url: url.to_string(),
        })
    }

    /// Where the target is, for messages.
    pub fn describe(&self) -> String {
        match self {
            Target::Local(dir) => dir.display().to_string(),
            Target::Object { url, .. } => url.clone(),
        }
    }

    fn object_path(prefix: &str, key: &str) -> ObjectPath {
        if prefix.is_empty() {
            ObjectPath::from(key)
        } else {
            ObjectPath::from(format!("{prefix}/{key}"))
        }
    }

    /// Takes the publish lock: an exclusive `flock` on the lock file of a local directory,
    /// nothing for a bucket (the manifest's compare-and-set guards it).
    pub fn lock(&self) -> Result<LockGuard, PublishError> {
        match self {
            Target::Local(dir) => {
                let io = |source| PublishError::Io {
                    operation: "lock",
                    path: dir.join(LOCK_FILE),
                    source,
                };
                std::fs::create_dir_all(dir).map_err(io)?;
                let file = OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(dir.join(LOCK_FILE))
                    .map_err(io)?;
                let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|_| {
                    PublishError::Busy {
                        target: dir.display().to_string(),
                    }
                })?;
                Ok(LockGuard { _lock: Some(lock) })
            }
            Target::Object { .. } => Ok(LockGuard { _lock: None }),
        }
    }

    /// Reads `key`; `None` when it does not exist.
    pub async fn get(&self, key: &str) -> Result<Option<(Vec<u8>, Version)>, PublishError> {
        match self {
            Target::Local(dir) => {
                let path = dir.join(key);
                match std::fs::read(&path) {
                    Ok(bytes) => {
                        let version = Version::Hash(sha256_hex(&bytes));
                        Ok(Some((bytes, version)))
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(source) => Err(PublishError::Io {
                        operation: "read",
                        path,
                        source,
                    }),
                }
            }
            Target::Object { store, prefix, url } => {
                let path = Self::object_path(prefix, key);
                match store.get(&path).await {
                    Ok(result) => {
                        let version = Version::Object(UpdateVersion {
                            e_tag: result.meta.e_tag.clone(),
                            version: result.meta.version.clone(),
                        });
                        let bytes =
                            result
                                .bytes()
                                .await
                                .map_err(|source| PublishError::Object {
                                    operation: "read",
                                    key: format!("{url}/{key}"),
                                    source,
                                })?;
                        Ok(Some((bytes.to_vec(), version)))
                    }
                    Err(object_store::Error::NotFound { .. }) => Ok(None),
                    Err(source) => Err(PublishError::Object {
                        operation: "read",
                        key: format!("{url}/{key}"),
                        source,
                    }),
                }
            }
        }
    }

    /// The current version of `key`, without reading it.
    pub async fn version(&self, key: &str) -> Result<Option<Version>, PublishError> {
        match self {
            Target::Local(_) => Ok(self.get(key).await?.map(|(_, v)| v)),
            Target::Object { store, prefix, url } => {
                match store.head(&Self::object_path(prefix, key)).await {
                    Ok(meta) => Ok(Some(Version::Object(UpdateVersion {
                        e_tag: meta.e_tag,
                        version: meta.version,
                    }))),
                    Err(object_store::Error::NotFound { .. }) => Ok(None),
                    Err(source) => Err(PublishError::Object {
                        operation: "head",
                        key: format!("{url}/{key}"),
                        source,
                    }),
                }
            }
        }
    }

    /// Writes `key` (atomically: a temporary file renamed over it, or one PUT).
    pub async fn put(&self, key: &str, bytes: &[u8]) -> Result<(), PublishError> {
        match self {
            Target::Local(dir) => write_atomic(&dir.join(key), bytes),
            Target::Object { store, prefix, url } => store
                .put(
                    &Self::object_path(prefix, key),
                    PutPayload::from(bytes.to_vec()),
                )
                .await
                .map(|_| ())
                .map_err(|source| PublishError::Object {
                    operation: "write",
                    key: format!("{url}/{key}"),
                    source,
                }),
        }
    }

    /// Writes `key` only if its version is still `expected` (`None`: only if it does not
    /// exist). Returns the new version.
    pub async fn put_if(
        &self,
        key: &str,
        bytes: &[u8],
        expected: Option<&Version>,
    ) -> Result<Version, PublishError> {
        match self {
            Target::Local(dir) => {
                // The caller holds the directory lock; compare and write under it.
                let current = self.version(key).await?;
                let unchanged = match (&current, expected) {
                    (None, None) => true,
                    (Some(current), Some(expected)) => current.same_as(expected),
                    _ => false,
                };
                if !unchanged {
                    return Err(PublishError::Conflict {
                        target: dir.display().to_string(),
                    });
                }
                write_atomic(&dir.join(key), bytes)?;
                Ok(Version::Hash(sha256_hex(bytes)))
            }
            Target::Object { store, prefix, url } => {
                let mode = match expected {
                    None => PutMode::Create,
                    Some(Version::Object(version)) => PutMode::Update(version.clone()),
                    Some(Version::Hash(_)) => {
                        return Err(PublishError::Conflict {
                            target: url.clone(),
                        });
                    }
                };
                let options = PutOptions {
                    mode,
                    ..PutOptions::default()
                };
                match store
                    .put_opts(
                        &Self::object_path(prefix, key),
                        PutPayload::from(bytes.to_vec()),
                        options,
                    )
                    .await
                {
                    Ok(result) => {
                        // Some S3 servers (Garage 2.5.0) ignore the condition. Reading the
                        // object back catches a concurrent write that landed in between.
                        if let Some((stored, _)) = self.get(key).await?
                            && stored != bytes
                        {
                            return Err(PublishError::Conflict {
                                target: url.clone(),
                            });
                        }
                        Ok(Version::Object(UpdateVersion {
                            e_tag: result.e_tag,
                            version: result.version,
                        }))
                    }
                    Err(
                        object_store::Error::Precondition { .. }
                        | object_store::Error::AlreadyExists { .. },
                    ) => Err(PublishError::Conflict {
                        target: url.clone(),
                    }),
                    Err(source) => Err(PublishError::Object {
                        operation: "write",
                        key: format!("{url}/{key}"),
                        source,
                    }),
                }
            }
        }
    }

    /// Deletes `key`; a missing object is fine.
    pub async fn delete(&self, key: &str) -> Result<(), PublishError> {
        match self {
            Target::Local(dir) => {
                let path = dir.join(key);
                match std::fs::remove_file(&path) {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(source) => Err(PublishError::Io {
                        operation: "delete",
                        path,
                        source,
                    }),
                }
            }
            Target::Object { store, prefix, url } => {
                match store.delete(&Self::object_path(prefix, key)).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                    Err(source) => Err(PublishError::Object {
                        operation: "delete",
                        key: format!("{url}/{key}"),
                        source,
                    }),
                }
            }
        }
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PublishError> {
    let io = |operation, source| PublishError::Io {
        operation,
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| io("create directory for", e))?;
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(|e| io("write", e))?;
    file.write_all(bytes).map_err(|e| io("write", e))?;
    // Readable like a checked-out file; the agent and a Git or HTTP server may read it.
    file.as_file()
        .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .map_err(|e| io("set permissions of", e))?;
    file.as_file().sync_all().map_err(|e| io("sync", e))?;
    file.persist(path).map_err(|e| io("rename into", e.error))?;
    Ok(())
}
