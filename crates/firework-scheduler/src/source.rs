//! Registry locations: a directory, an S3 bucket or a GCS bucket.
//!
//! A directory is read by [`read_registry_dir`]. A bucket is read through
//! `firework_store::NodeRegistry`, which lists and reads `<prefix>/registry/nodes/<node>.json`.
//! Both return the same [`RecordFile`] list, so [`discover`](crate::registry::discover)
//! applies one liveness rule to every backend.

use std::net::IpAddr;
use std::path::PathBuf;

use firework_store::{Backend, NodeRegistry, ObjectSettings, Secret, error_chain};
use futures::StreamExt;
use tracing::{Instrument, info_span, warn};

use crate::registry::{NODES_PREFIX, RecordFile, RegistryError, read_registry_dir};

/// How many records are read at the same time from a bucket.
const READ_CONCURRENCY: usize = 16;

/// Connection settings for a bucket registry; unused for a directory.
#[derive(Debug, Clone, Default)]
pub struct ObjectOptions {
    /// S3 only: an S3-compatible endpoint such as `http://127.0.0.1:3900`. Plain `http://`
    /// is accepted only for a loopback host.
    pub s3_endpoint_url: Option<String>,
    /// S3 only: the region; the AWS environment or `us-east-1` when unset.
    pub s3_region: Option<String>,
    /// S3 only: static credentials that replace the AWS credential chain.
    pub s3_credentials: Option<(String, Secret)>,
    /// GCS only: a service account or application credentials JSON file.
    pub gcs_credentials_file: Option<PathBuf>,
}

/// A registry location.
#[derive(Debug, Clone)]
pub enum RegistrySource {
    /// A directory holding `registry/nodes/*.json`.
    Dir(PathBuf),
    /// A bucket and prefix holding `<prefix>/registry/nodes/*.json`.
    Object {
        /// The location as given, such as `s3://bucket/fleet`.
        url: String,
        /// The client settings.
        settings: Box<ObjectSettings>,
    },
}

impl RegistrySource {
    /// Parses `s3://bucket/prefix`, `gs://bucket/prefix` or a directory path. Any other
    /// `scheme://` is refused, as is an empty bucket or a plain `http://` endpoint on a host
    /// that is not loopback.
    pub fn parse(location: &str, options: &ObjectOptions) -> Result<RegistrySource, RegistryError> {
        let invalid = |reason: String| RegistryError::InvalidLocation {
            location: location.to_owned(),
            reason,
        };
        let Some((scheme, rest)) = location.split_once("://") else {
            if location.is_empty() {
                return Err(invalid("the location is empty".to_owned()));
            }
            return Ok(RegistrySource::Dir(PathBuf::from(location)));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(invalid("the bucket name is empty".to_owned()));
        }
        let settings = match scheme {
            "s3" => {
                let mut settings = ObjectSettings::s3(bucket, prefix);
                if let Some(endpoint) = &options.s3_endpoint_url {
                    check_endpoint(endpoint).map_err(invalid)?;
                    settings.endpoint_url = Some(endpoint.clone());
                }
                settings.region.clone_from(&options.s3_region);
                settings
                    .static_credentials
                    .clone_from(&options.s3_credentials);
                settings
            }
            "gs" => {
                let mut settings = ObjectSettings::gcs(bucket, prefix);
                settings
                    .credentials_file
                    .clone_from(&options.gcs_credentials_file);
                settings
            }
            other => {
                return Err(invalid(format!(
                    "unsupported scheme `{other}`; use s3://, gs:// or a directory"
                )));
            }
        };
        Ok(RegistrySource::Object {
            url: location.to_owned(),
            settings: Box::new(settings),
        })
    }

    /// The location for logs and messages.
    pub fn display(&self) -> String {
        match self {
            RegistrySource::Dir(path) => path.display().to_string(),
            RegistrySource::Object { url, .. } => url.clone(),
        }
    }
}

/// Accepts `https://` endpoints, and `http://` ones whose host is loopback.
fn check_endpoint(endpoint: &str) -> Result<(), String> {
    if endpoint.starts_with("https://") {
        return Ok(());
    }
    let Some(rest) = endpoint.strip_prefix("http://") else {
        return Err(format!(
            "endpoint `{endpoint}` must start with https:// or http://"
        ));
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(())
    } else {
        Err(format!(
            "plain http:// endpoint `{endpoint}` is allowed only on a loopback host; use https://"
        ))
    }
}

/// Reads every record of `source`. A record that cannot be read or parsed becomes a
/// [`RecordFile`] with an error; only a failed listing (or client setup) is an error.
pub async fn read_registry(source: &RegistrySource) -> Result<Vec<RecordFile>, RegistryError> {
    match source {
        RegistrySource::Dir(root) => read_registry_dir(root),
        RegistrySource::Object { url, settings } => {
            let span = info_span!("read_registry", registry = %url, backend = %settings.backend);
            read_object_registry(url, settings).instrument(span).await
        }
    }
}

async fn read_object_registry(
    url: &str,
    settings: &ObjectSettings,
) -> Result<Vec<RecordFile>, RegistryError> {
    let store_error = |source| RegistryError::Store {
        location: url.to_owned(),
        source,
    };
    let store = settings.build().map_err(store_error)?;
    let registry = NodeRegistry::object(settings.backend, store, &settings.prefix);
    let nodes = registry.nodes().await.map_err(store_error)?;
    let scheme = match settings.backend {
        Backend::Gcs => "gs",
        _ => "s3",
    };
    let folder = object_folder(scheme, &settings.bucket, &settings.prefix);
    let records = futures::stream::iter(nodes)
        .map(|node| {
            let registry = &registry;
            let folder = &folder;
            async move {
                let record = registry.read(&node).await.map_err(|error| {
                    let reason = error_chain(&error);
                    warn!(node = %node, error = %reason, "failed to read node record");
                    reason
                });
                RecordFile {
                    source: format!("{folder}/{node}.json"),
                    file_node: node,
                    record,
                }
            }
        })
        .buffered(READ_CONCURRENCY)
        .collect()
        .await;
    Ok(records)
}

/// `scheme://bucket/prefix/registry/nodes` with the prefix's extra slashes removed.
fn object_folder(scheme: &str, bucket: &str, prefix: &str) -> String {
    let mut folder = format!("{scheme}://{bucket}");
    for part in prefix.split('/').filter(|p| !p.is_empty()) {
        folder.push('/');
        folder.push_str(part);
    }
    folder.push('/');
    folder.push_str(NODES_PREFIX);
    folder
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    fn parse(location: &str) -> Result<RegistrySource, String> {
        RegistrySource::parse(location, &ObjectOptions::default()).map_err(|e| e.to_string())
    }

    fn parse_with_endpoint(endpoint: &str) -> Result<RegistrySource, String> {
        let options = ObjectOptions {
            s3_endpoint_url: Some(endpoint.to_owned()),
            ..ObjectOptions::default()
        };
        RegistrySource::parse("s3://b/p", &options).map_err(|e| e.to_string())
    }

    #[test]
    fn s3_location_splits_bucket_and_prefix() {
        let RegistrySource::Object { settings, url } = parse("s3://cfg/fleet/a/").unwrap() else {
            panic!("expected a bucket");
        };
        assert_eq!(url, "s3://cfg/fleet/a/");
        assert_eq!(settings.backend, Backend::S3);
        assert_eq!(settings.bucket, "cfg");
        assert_eq!(settings.prefix, "fleet/a/");
    }

    #[test]
    fn gs_location_without_prefix() {
        let RegistrySource::Object { settings, .. } = parse("gs://cfg").unwrap() else {
            panic!("expected a bucket");
        };
        assert_eq!(settings.backend, Backend::Gcs);
        assert_eq!(settings.bucket, "cfg");
        assert_eq!(settings.prefix, "");
    }

    #[test]
    fn plain_path_is_a_directory() {
        let RegistrySource::Dir(path) = parse("/srv/firework").unwrap() else {
            panic!("expected a directory");
        };
        assert_eq!(path, PathBuf::from("/srv/firework"));
    }

    #[test]
    fn bad_locations_are_refused() {
        assert_eq!(
            parse("s3:///fleet").unwrap_err(),
            "invalid registry location `s3:///fleet`: the bucket name is empty"
        );
        assert_eq!(
            parse("ftp://host/x").unwrap_err(),
            "invalid registry location `ftp://host/x`: unsupported scheme `ftp`; use s3://, gs:// or a directory"
        );
        assert_eq!(
            parse("").unwrap_err(),
            "invalid registry location ``: the location is empty"
        );
    }

    #[test]
    fn http_endpoint_only_on_loopback() {
        for endpoint in [
            "http://127.0.0.1:3900",
            "http://localhost:3900/",
            "http://[::1]:3900",
            "https://s3.example.com",
        ] {
            assert!(parse_with_endpoint(endpoint).is_ok(), "{endpoint}");
        }
        assert_eq!(
            parse_with_endpoint("http://10.0.0.5:3900").unwrap_err(),
            "invalid registry location `s3://b/p`: plain http:// endpoint `http://10.0.0.5:3900` is allowed only on a loopback host; use https://"
        );
        assert_eq!(
            parse_with_endpoint("http://127.0.0.1.example.com").unwrap_err(),
            "invalid registry location `s3://b/p`: plain http:// endpoint `http://127.0.0.1.example.com` is allowed only on a loopback host; use https://"
        );
        assert_eq!(
            parse_with_endpoint("ftp://127.0.0.1").unwrap_err(),
            "invalid registry location `s3://b/p`: endpoint `ftp://127.0.0.1` must start with https:// or http://"
        );
    }

    #[test]
    fn object_folder_ignores_extra_slashes() {
        assert_eq!(
            object_folder("s3", "b", "/fleet//a/"),
            "s3://b/fleet/a/registry/nodes"
        );
        assert_eq!(object_folder("gs", "b", ""), "gs://b/registry/nodes");
    }
}
