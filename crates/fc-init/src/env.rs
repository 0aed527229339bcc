//! Environment variables: name rules, decoding of `firework.env64.*` values, and assembly of
//! the environment the service starts with.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// `PATH` given to the service when neither the image nor the boot arguments set one. It is
/// also the search list for a program name without a `/`.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A rejected environment entry from the boot arguments or from the runtime file.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum EnvError {
    /// The variable name does not match `[A-Za-z_][A-Za-z0-9_]*`.
    #[error("invalid variable name {name:?} in {origin}: a name must match [A-Za-z_][A-Za-z0-9_]*")]
    InvalidName { name: String, origin: String },
    /// The parameter has no `=`, so it carries no value at all.
    #[error("{origin} has no value: write {origin}= to set an empty value")]
    MissingValue { origin: String },
    /// The `firework.env64.*` value is not base64url without padding.
    #[error("invalid base64url value in {origin}")]
    InvalidBase64 {
        origin: String,
        #[source]
        source: base64::DecodeError,
    },
    /// The value (raw, or after base64 decoding) is not UTF-8.
    #[error("value of {origin} is not valid UTF-8")]
    NotUtf8 { origin: String },
}

/// Reports whether `name` is a portable environment variable name.
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) if first.is_ascii_alphabetic() || first == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Checks a variable name from the boot parameter `origin`.
pub fn check_name(name: &[u8], origin: &str) -> Result<String, EnvError> {
    let text = String::from_utf8_lossy(name);
    if is_valid_name(&text) {
        Ok(text.into_owned())
    } else {
        Err(EnvError::InvalidName {
            name: text.into_owned(),
            origin: origin.to_owned(),
        })
    }
}

/// Decodes a raw `firework.env.*` value.
pub fn decode_raw(value: &[u8], origin: &str) -> Result<String, EnvError> {
    String::from_utf8(value.to_vec()).map_err(|_| EnvError::NotUtf8 {
        origin: origin.to_owned(),
    })
}

/// Decodes a `firework.env64.*` value: base64url without padding, then UTF-8.
pub fn decode_base64(value: &[u8], origin: &str) -> Result<String, EnvError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(value)
        .map_err(|source| EnvError::InvalidBase64 {
            origin: origin.to_owned(),
            source,
        })?;
    String::from_utf8(bytes).map_err(|_| EnvError::NotUtf8 {
        origin: origin.to_owned(),
    })
}

/// Sources of the service environment, from weakest to strongest.
#[derive(Debug, Clone, Default)]
pub struct EnvLayers {
    /// The environment fc-init itself received: from the kernel that is `HOME=/`, `TERM=linux`
    /// and any unknown `name=value` boot parameter without a dot before `--`.
    pub inherited: Vec<(OsString, OsString)>,
    /// `HOME` and `USER` of a service user that was looked up by name.
    pub user: Vec<(String, String)>,
    /// `env` from the runtime file (`/etc/firework/runtime.json`), usually the image's.
    pub image: BTreeMap<String, String>,
    /// `firework.env.*` and `firework.env64.*` from the boot arguments.
    pub boot: BTreeMap<String, String>,
}

impl EnvLayers {
    /// Merges the layers: a later layer overrides an earlier one, and `PATH` falls back to
    /// [`DEFAULT_PATH`] when no layer sets it.
    pub fn merge(&self) -> BTreeMap<OsString, OsString> {
        let mut env: BTreeMap<OsString, OsString> = self.inherited.iter().cloned().collect();
        let user = self.user.iter().map(|(name, value)| (name, value));
        for (name, value) in user.chain(&self.image).chain(&self.boot) {
            env.insert(OsString::from(name), OsString::from(value));
        }
        env.entry(OsString::from("PATH"))
            .or_insert_with(|| OsString::from(DEFAULT_PATH));
        env
    }
}

/// Looks up `name` in a merged environment.
pub fn lookup<'a>(env: &'a BTreeMap<OsString, OsString>, name: &str) -> Option<&'a OsStr> {
    env.get(OsStr::new(name)).map(OsString::as_os_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_rules() {
        for good in ["A", "_", "a_1", "PATH", "_X9"] {
            assert!(is_valid_name(good), "{good} should be valid");
        }
        for bad in ["", "1A", "A-B", "A.B", "Ä", "A B", "A=B"] {
            assert!(!is_valid_name(bad), "{bad} should be invalid");
        }
    }

    #[test]
    fn check_name_error_names_origin() {
        let err = check_name(b"1BAD", "firework.env.1BAD").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid variable name \"1BAD\" in firework.env.1BAD: a name must match \
             [A-Za-z_][A-Za-z0-9_]*"
        );
    }

    #[test]
    fn base64_decodes_without_padding() {
        assert_eq!(
            decode_base64(b"aGVsbG8gd29ybGQ", "o").unwrap(),
            "hello world"
        );
    }

    #[test]
    fn base64_rejects_padding_and_bad_symbols() {
        for bad in [&b"aGVsbG8gd29ybGQ="[..], b"aGV$", b"a+b/"] {
            let err = decode_base64(bad, "firework.env64.X").unwrap_err();
            assert!(
                matches!(err, EnvError::InvalidBase64 { .. }),
                "{bad:?}: {err:?}"
            );
            assert_eq!(
                err.to_string(),
                "invalid base64url value in firework.env64.X"
            );
        }
    }

    #[test]
    fn base64_rejects_non_utf8() {
        // 0xff 0xfe is not UTF-8.
        let err = decode_base64(b"__4", "firework.env64.X").unwrap_err();
        assert_eq!(
            err.to_string(),
            "value of firework.env64.X is not valid UTF-8"
        );
    }

    #[test]
    fn merge_order_and_default_path() {
        let layers = EnvLayers {
            inherited: vec![
                ("HOME".into(), "/".into()),
                ("TERM".into(), "linux".into()),
                ("A".into(), "kernel".into()),
            ],
            user: vec![
                ("HOME".into(), "/home/app".into()),
                ("USER".into(), "app".into()),
            ],
            image: BTreeMap::from([
                ("A".to_owned(), "image".to_owned()),
                ("USER".to_owned(), "image-user".to_owned()),
            ]),
            boot: BTreeMap::from([("A".to_owned(), "boot".to_owned())]),
        };
        let env = layers.merge();
        assert_eq!(lookup(&env, "A"), Some(OsStr::new("boot")));
        assert_eq!(lookup(&env, "HOME"), Some(OsStr::new("/home/app")));
        assert_eq!(lookup(&env, "USER"), Some(OsStr::new("image-user")));
        assert_eq!(lookup(&env, "TERM"), Some(OsStr::new("linux")));
        assert_eq!(lookup(&env, "PATH"), Some(OsStr::new(DEFAULT_PATH)));
        assert_eq!(env.len(), 5);
    }

    #[test]
    fn merge_keeps_given_path() {
        let layers = EnvLayers {
            image: BTreeMap::from([("PATH".to_owned(), "/app/bin".to_owned())]),
            ..EnvLayers::default()
        };
        assert_eq!(
            lookup(&layers.merge(), "PATH"),
            Some(OsStr::new("/app/bin"))
        );
    }
}
