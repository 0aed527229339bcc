//! Delivery of a service's environment through the kernel command line.
//!
//! Each variable becomes one boot argument that the guest init (fc-init) turns back into an
//! environment variable: `firework.env.<KEY>=<VALUE>` when the value is safe as a single
//! kernel token, `firework.env64.<KEY>=<base64url of VALUE, no padding>` otherwise. The
//! arguments go before the first `--` token, because everything after it belongs to init.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use firework_model::names::check_env_key;
use firework_vmm::spec::MAX_KERNEL_ARGS_LEN;

use crate::error::SpecError;

/// Prefix of a variable whose value is written as is.
pub const ENV_PREFIX: &str = "firework.env.";
/// Prefix of a variable whose value is base64url without padding.
pub const ENV64_PREFIX: &str = "firework.env64.";

/// Returns whether `value` must be encoded: the kernel splits arguments at whitespace,
/// treats double quotes specially, and Firecracker accepts printable ASCII only.
pub fn needs_encoding(value: &str) -> bool {
    value
        .chars()
        .any(|c| !c.is_ascii_graphic() || c == '"' || c == '\'' || c == '\\')
}

/// Returns the boot argument that carries `key=value`.
pub fn env_arg(key: &str, value: &str) -> String {
    if needs_encoding(value) {
        format!("{ENV64_PREFIX}{key}={}", URL_SAFE_NO_PAD.encode(value))
    } else {
        format!("{ENV_PREFIX}{key}={value}")
    }
}

/// Inserts one boot argument per variable of `env` (in key order) before the first `--`
/// token of `kernel_args`, or at the end when there is none, and checks the length of the
/// result against Firecracker's limit.
pub fn inject_env(
    service: &str,
    kernel_args: &str,
    env: &BTreeMap<String, String>,
) -> Result<String, SpecError> {
    let mut added = Vec::with_capacity(env.len());
    for (key, value) in env {
        check_env_key(key).map_err(|rule| SpecError::InvalidEnvKey {
            service: service.to_owned(),
            key: key.clone(),
            rule,
        })?;
        added.push(env_arg(key, value));
    }
    let tokens: Vec<&str> = kernel_args.split_whitespace().collect();
    let separator = tokens
        .iter()
        .position(|token| *token == "--")
        .unwrap_or(tokens.len());
    let mut out: Vec<&str> = Vec::with_capacity(tokens.len() + added.len());
    out.extend_from_slice(&tokens[..separator]);
    out.extend(added.iter().map(String::as_str));
    out.extend_from_slice(&tokens[separator..]);
    let line = out.join(" ");
    check_length(service, &line)?;
    Ok(line)
}

/// Checks a complete kernel command line against Firecracker's `boot_args` limit.
pub fn check_length(service: &str, line: &str) -> Result<(), SpecError> {
    if line.len() > MAX_KERNEL_ARGS_LEN {
        return Err(SpecError::KernelArgsTooLong {
            service: service.to_owned(),
            length: line.len(),
            max: MAX_KERNEL_ARGS_LEN,
        });
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn plain_value_stays_raw() {
        let line = inject_env("web", "console=ttyS0", &env(&[("PORT", "8080")])).unwrap();
        assert_eq!(line, "console=ttyS0 firework.env.PORT=8080");
    }

    #[test]
    fn whitespace_value_is_encoded() {
        let line = inject_env(
            "worker",
            "console=ttyS0 init=/sbin/fc-init -- /app",
            &env(&[("MESSAGE", "hello world")]),
        )
        .unwrap();
        assert_eq!(
            line,
            "console=ttyS0 init=/sbin/fc-init firework.env64.MESSAGE=aGVsbG8gd29ybGQ -- /app"
        );
    }

    #[test]
    fn quotes_and_unicode_are_encoded() {
        for value in ["say \"hi\"", "it's", "grüße", "tab\there", "back\\slash"] {
            assert!(needs_encoding(value), "{value:?}");
        }
        assert!(!needs_encoding("a=b,c:d/e"));
        assert!(!needs_encoding(""));
    }

    #[test]
    fn env_goes_before_first_separator_only() {
        let line = inject_env("s", "a -- b -- c", &env(&[("K", "v")])).unwrap();
        assert_eq!(line, "a firework.env.K=v -- b -- c");
    }

    #[test]
    fn invalid_key_is_rejected() {
        let error = inject_env("web", "", &env(&[("1BAD", "x")])).unwrap_err();
        assert_eq!(
            error.to_string(),
            "service `web`: invalid env key `1BAD`: use letters, digits and '_', not starting with a digit"
        );
    }

    #[test]
    fn overlong_line_is_rejected() {
        let long = "x".repeat(MAX_KERNEL_ARGS_LEN);
        let error = inject_env("web", "console=ttyS0", &env(&[("BIG", &long)])).unwrap_err();
        assert!(
            matches!(error, SpecError::KernelArgsTooLong { max, .. } if max == MAX_KERNEL_ARGS_LEN)
        );
    }
}
