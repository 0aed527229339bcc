//! Store selection from the agent's `store_type` and related keys.

use std::path::PathBuf;
use std::sync::Arc;

use firework_model::agent::{AgentConfig, StoreType};

use crate::error::{Backend, MessageError, StoreError, StoreErrorKind, Subject};
use crate::git::{GitSettings, GitStore};
use crate::local::LocalStore;
use crate::object::{ObjectConfigStore, ObjectSettings};
use crate::registry::NodeRegistry;
use crate::store::ConfigStore;

/// The store an agent reads, one variant per `store_type`.
#[derive(Debug, Clone)]
pub enum StoreSettings {
    /// `store_type: local`: a directory holding `nodes/`.
    Local {
        /// The directory.
        dir: PathBuf,
    },
    /// `store_type: git` with `store_url` and `store_branch`.
    Git(GitSettings),
    /// `store_type: s3` or `gcs`.
    Object(ObjectSettings),
}

impl StoreSettings {
    /// Builds the settings from the agent config's `store_type` and related keys. The Git
    /// token comes from the environment (see [`GitSettings::with_env_token`]).
    pub fn from_agent_config(config: &AgentConfig) -> Result<StoreSettings, StoreError> {
        let missing = |backend: Backend, key: &str| {
            StoreError::new(
                StoreErrorKind::InvalidSettings,
                backend,
                Subject::Store,
                MessageError(format!("{key} is required with store_type: {backend}")),
            )
        };
        Ok(match config.store_type {
            StoreType::Local => StoreSettings::Local {
                dir: config.store_dir.clone(),
            },
            StoreType::Git => {
                let url = config
                    .store_url
                    .clone()
                    .ok_or_else(|| missing(Backend::Git, "store_url"))?;
                StoreSettings::Git(
                    GitSettings::new(url, config.store_branch.clone(), config.state_dir.clone())
                        .with_env_token(),
                )
            }
            StoreType::S3 => {
                let bucket = config
                    .s3_bucket
                    .clone()
                    .ok_or_else(|| missing(Backend::S3, "s3_bucket"))?;
                let mut settings = ObjectSettings::s3(bucket, config.s3_prefix.clone());
                settings.region = config.s3_region.clone();
                settings.endpoint_url = config.s3_endpoint_url.clone();
                StoreSettings::Object(settings)
            }
            StoreType::Gcs => {
                let bucket = config
                    .gcs_bucket
                    .clone()
                    .ok_or_else(|| missing(Backend::Gcs, "gcs_bucket"))?;
                let mut settings = ObjectSettings::gcs(bucket, config.gcs_prefix.clone());
                settings.credentials_file = config.gcs_credentials_file.clone();
                StoreSettings::Object(settings)
            }
        })
    }
}

/// Opens the config store and, where the backend can hold one, the node registry.
///
/// A Git store has no registry because agents cannot write to it.
pub fn open_store(
    settings: &StoreSettings,
) -> Result<(Arc<dyn ConfigStore>, Option<NodeRegistry>), StoreError> {
    match settings {
        StoreSettings::Local { dir } => {
            if dir.as_os_str().is_empty() {
                return Err(StoreError::new(
                    StoreErrorKind::InvalidSettings,
                    Backend::Local,
                    Subject::Store,
                    MessageError("store directory is empty".to_owned()),
                ));
            }
            Ok((
                Arc::new(LocalStore::new(dir.clone())),
                Some(NodeRegistry::local(dir.clone())),
            ))
        }
        StoreSettings::Git(git) => Ok((Arc::new(GitStore::new(git.clone())?), None)),
        StoreSettings::Object(object) => {
            let store = ObjectConfigStore::new(object)?;
            let registry = NodeRegistry::object(
                object.backend,
                Arc::clone(store.object_store()),
                &object.prefix,
            );
            Ok((Arc::new(store), Some(registry)))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn agent(yaml: &str) -> AgentConfig {
        firework_model::agent::parse_agent_config(yaml.as_bytes(), "agent.yaml", &|| {
            Some("host-1".to_owned())
        })
        .unwrap()
        .value
    }

    #[test]
    fn git_settings_from_agent_config() {
        let config =
            agent("store_type: git\nstore_url: git://127.0.0.1/r.git\nstate_dir: /var/lib/fw\n");
        let StoreSettings::Git(git) = StoreSettings::from_agent_config(&config).unwrap() else {
            panic!("expected git settings");
        };
        assert_eq!(git.url, "git://127.0.0.1/r.git");
        assert_eq!(git.branch, "main");
        assert_eq!(git.clone_dir, PathBuf::from("/var/lib/fw/config-repo"));
    }

    #[test]
    fn s3_settings_from_agent_config() {
        let config = agent(
            "store_type: s3\ns3_bucket: cfg\ns3_prefix: fleet/\ns3_region: eu-west-1\ns3_endpoint_url: http://127.0.0.1:3900\n",
        );
        let StoreSettings::Object(object) = StoreSettings::from_agent_config(&config).unwrap()
        else {
            panic!("expected object settings");
        };
        assert_eq!(object.backend, Backend::S3);
        assert_eq!(object.bucket, "cfg");
        assert_eq!(object.prefix, "fleet/");
        assert_eq!(object.region.as_deref(), Some("eu-west-1"));
        assert_eq!(
            object.endpoint_url.as_deref(),
            Some("http://127.0.0.1:3900")
        );
        let (store, registry) = open_store(&StoreSettings::Object(object)).unwrap();
        assert_eq!(store.backend(), Backend::S3);
        assert!(registry.is_some());
    }

    #[test]
    fn gcs_settings_from_agent_config() {
        let config =
            agent("store_type: gcs\ngcs_bucket: cfg\ngcs_credentials_file: /etc/fw/sa.json\n");
        let StoreSettings::Object(object) = StoreSettings::from_agent_config(&config).unwrap()
        else {
            panic!("expected object settings");
        };
        assert_eq!(object.backend, Backend::Gcs);
        assert_eq!(
            object.credentials_file,
            Some(PathBuf::from("/etc/fw/sa.json"))
        );
    }

    #[test]
    fn local_store_opens_with_registry() {
        let (store, registry) = open_store(&StoreSettings::Local {
            dir: PathBuf::from("/srv/firework"),
        })
        .unwrap();
        assert_eq!(store.backend(), Backend::Local);
        assert_eq!(registry.unwrap().backend(), Backend::Local);
    }

    #[test]
    fn git_store_has_no_registry() {
        let settings = GitSettings::new("git://127.0.0.1/r.git", "main", "/tmp/state");
        let (store, registry) = open_store(&StoreSettings::Git(settings)).unwrap();
        assert_eq!(store.backend(), Backend::Git);
        assert!(registry.is_none());
    }

    #[test]
    fn git_rejects_bad_branch() {
        let settings = GitSettings::new("git://127.0.0.1/r.git", "a..b", "/tmp/state");
        let error = GitStore::new(settings).unwrap_err();
        assert_eq!(error.kind, StoreErrorKind::InvalidSettings);
        assert_eq!(error.cause.to_string(), "invalid store_branch `a..b`");
    }
}
