//! Validation of labels and node names, which become object keys and file names.

use crate::error::{Backend, MessageError, StoreError, StoreErrorKind, Subject};

/// The maximum length in bytes of a label or node name, the maximum length of a DNS name.
pub const MAX_NAME_LEN: usize = 253;

/// Checks that `name` is usable as one path segment: ASCII letters, digits, `.`, `_` and `-`,
/// starting with a letter or digit, at most [`MAX_NAME_LEN`] bytes.
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("name is empty".to_owned());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "name is {} bytes long, the maximum is {MAX_NAME_LEN}",
            name.len()
        ));
    }
    let first = name.as_bytes()[0];
    if !first.is_ascii_alphanumeric() {
        return Err("name must start with an ASCII letter or digit".to_owned());
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "name contains {bad:?}; only ASCII letters, digits, '.', '_' and '-' are allowed"
        ));
    }
    Ok(())
}

/// Validates a label before it is turned into `nodes/<label>.yaml`.
pub(crate) fn check_label(backend: Backend, label: &str) -> Result<(), StoreError> {
    validate_name(label).map_err(|reason| {
        StoreError::new(
            StoreErrorKind::InvalidSettings,
            backend,
            Subject::Label(label.to_owned()),
            MessageError(format!("invalid label: {reason}")),
        )
    })
}

/// Validates a node name before it is turned into `registry/nodes/<node>.json`.
pub(crate) fn check_node(backend: Backend, node: &str) -> Result<(), StoreError> {
    validate_name(node).map_err(|reason| {
        StoreError::new(
            StoreErrorKind::InvalidSettings,
            backend,
            Subject::Registry(node.to_owned()),
            MessageError(format!("invalid node name: {reason}")),
        )
    })
}

/// Returns the relative path of a label's node config: `nodes/<label>.yaml`.
pub(crate) fn node_config_path(label: &str) -> String {
    format!("{NODES_DIR}/{label}{NODE_CONFIG_SUFFIX}")
}

/// Returns the relative path of a node's registry record: `registry/nodes/<node>.json`.
pub(crate) fn registry_path(node: &str) -> String {
    format!("{REGISTRY_DIR}/{node}.json")
}

/// The folder that contains node configs.
pub const NODES_DIR: &str = "nodes";
/// The file name ending of a node config.
pub const NODE_CONFIG_SUFFIX: &str = ".yaml";
/// The folder that contains registry records.
pub const REGISTRY_DIR: &str = "registry/nodes";
/// The file name of the placement index.
pub const INDEX_FILE: &str = "index.json";

/// Returns the label of a file name inside `nodes/`, or `None` when the name is not a node
/// config or not a valid label.
pub(crate) fn label_from_file_name(file_name: &str) -> Option<&str> {
    let label = file_name.strip_suffix(NODE_CONFIG_SUFFIX)?;
    validate_name(label).ok().map(|()| label)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn accepts_usual_names() {
        for name in ["web", "node-1", "eu.west_2", "A1", "i-0abc"] {
            assert_eq!(validate_name(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn rejects_path_like_names() {
        assert_eq!(validate_name(""), Err("name is empty".to_owned()));
        assert_eq!(
            validate_name("../etc"),
            Err("name must start with an ASCII letter or digit".to_owned())
        );
        assert_eq!(
            validate_name("a/b"),
            Err(
                "name contains '/'; only ASCII letters, digits, '.', '_' and '-' are allowed"
                    .to_owned()
            )
        );
        assert!(validate_name(&"a".repeat(254)).is_err());
        assert!(validate_name(&"a".repeat(253)).is_ok());
    }

    #[test]
    fn label_from_file_names() {
        assert_eq!(label_from_file_name("web.yaml"), Some("web"));
        assert_eq!(label_from_file_name("web.yml"), None);
        assert_eq!(label_from_file_name(".yaml"), None);
        assert_eq!(label_from_file_name("README.md"), None);
    }
}
