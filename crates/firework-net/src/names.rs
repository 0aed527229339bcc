//! Service names and the TAP names derived from them.

use sha2::{Digest, Sha256};

use crate::error::NetError;

/// Prefix of every TAP name Firework derives.
pub const TAP_PREFIX: &str = "fw-";

/// Number of service-name characters kept in a derived TAP name.
const READABLE_LEN: usize = 6;

/// Maximum length of a service name accepted here, in bytes.
const MAX_SERVICE_NAME_LEN: usize = 128;

/// Checks that `name` can be used as a service name in records and TAP names.
///
/// Accepted are 1 to 128 ASCII letters, digits, `-`, `_` and `.`, not starting with `.`.
pub fn validate_service_name(name: &str) -> Result<(), NetError> {
    let invalid = |reason| {
        Err(NetError::InvalidServiceName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return invalid("name is empty");
    }
    if name.len() > MAX_SERVICE_NAME_LEN {
        return invalid("name is longer than 128 bytes");
    }
    if name.starts_with('.') {
        return invalid("name starts with '.'");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return invalid(
            "name contains a character other than ASCII letters, digits, '-', '_' and '.'",
        );
    }
    Ok(())
}

/// Derives the TAP name of `service`: `fw-`, up to 6 characters of the name, `-` and
/// 5 hex digits of a SHA-256 hash, at most 15 bytes in all.
///
/// `attempt` 0 gives the usual name, and higher values give other hashes for the rare
/// case that two services collide.
pub fn derive_tap_name(service: &str, attempt: u32) -> String {
    let readable: String = service
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .take(READABLE_LEN)
        .collect();
    let mut hasher = Sha256::new();
    hasher.update(service.as_bytes());
    if attempt > 0 {
        hasher.update(attempt.to_be_bytes());
    }
    let digest = hasher.finalize();
    let hash = format!("{:02x}{:02x}{:02x}", digest[0], digest[1], digest[2]);
    format!("{TAP_PREFIX}{readable}-{}", &hash[..5])
}

#[cfg(test)]
mod tests {
    use super::*;
    use firework_sys::tun::validate_interface_name;

    #[test]
    fn derived_names_are_valid_and_stable() {
        for service in [
            "api",
            "a-very-long-service-name-indeed",
            "x",
            "Web_1.prod",
            "---",
        ] {
            let name = derive_tap_name(service, 0);
            assert!(name.len() <= 15, "{name} is longer than 15 bytes");
            assert!(name.starts_with(TAP_PREFIX), "{name}");
            assert!(validate_interface_name(&name).is_ok(), "{name}");
            assert_eq!(name, derive_tap_name(service, 0));
            assert_ne!(name, derive_tap_name(service, 1));
        }
        let api = derive_tap_name("api", 0);
        assert!(api.starts_with("fw-api-"), "{api}");
        assert_eq!(api.len(), "fw-api-".len() + 5);
    }

    #[test]
    fn derived_names_differ_for_similar_services() {
        let names: std::collections::BTreeSet<String> = (0..300)
            .map(|i| derive_tap_name(&format!("service-{i}"), 0))
            .collect();
        assert_eq!(names.len(), 300);
    }

    #[test]
    fn service_name_rules() {
        assert!(validate_service_name("web-1_a.b").is_ok());
        let cases = [
            ("", "name is empty"),
            (".hidden", "name starts with '.'"),
            (
                "a/b",
                "name contains a character other than ASCII letters, digits, '-', '_' and '.'",
            ),
            (
                "a b",
                "name contains a character other than ASCII letters, digits, '-', '_' and '.'",
            ),
        ];
        for (name, reason) in cases {
            let err = validate_service_name(name).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("invalid service name {name:?}: {reason}")
            );
        }
        let long = "a".repeat(129);
        assert!(validate_service_name(&long).is_err());
    }
}
