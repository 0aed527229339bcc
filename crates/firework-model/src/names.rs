//! Rules for the names and values that become paths, device names, router names and labels.
//!
//! Each check returns `Err` with the rule in words, for a message of the form
//! `invalid <what> "<value>": <rule>`.

use std::net::Ipv4Addr;
use std::path::{Component, Path};

/// Checks a service name: a DNS label, because it becomes a directory name, part of a TAP
/// name, a Traefik router name and a metric label.
pub fn check_service_name(name: &str) -> Result<(), &'static str> {
    check_dns_label(name)
}

/// Checks a DNS label: 1 to 63 characters of a-z, 0-9 and `-`, not starting or ending with `-`.
pub fn check_dns_label(label: &str) -> Result<(), &'static str> {
    const RULE: &str =
        "use 1 to 63 characters of a-z, 0-9 and '-', not starting or ending with '-'";
    if label.is_empty() || label.len() > 63 {
        return Err(RULE);
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(RULE);
    }
    if !label
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(RULE);
    }
    Ok(())
}

/// Checks an environment variable name: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn check_env_key(key: &str) -> Result<(), &'static str> {
    const RULE: &str = "use letters, digits and '_', not starting with a digit";
    let mut bytes = key.bytes();
    match bytes.next() {
        Some(first) if first.is_ascii_alphabetic() || first == b'_' => {}
        _ => return Err(RULE),
    }
    if bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        Ok(())
    } else {
        Err(RULE)
    }
}

/// Checks a node label or node name, which becomes the file name `nodes/<label>.yaml`.
pub fn check_node_label(label: &str) -> Result<(), &'static str> {
    const RULE: &str = "use 1 to 253 characters of letters, digits, '.', '_' and '-', starting with a letter or digit";
    let Some(first) = label.bytes().next() else {
        return Err(RULE);
    };
    if label.len() > 253 || !first.is_ascii_alphanumeric() {
        return Err(RULE);
    }
    if label
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        Ok(())
    } else {
        Err(RULE)
    }
}

/// Checks a Linux network interface name: 1 to 15 bytes, no '/', ':' or white space.
pub fn check_interface_name(name: &str) -> Result<(), &'static str> {
    const RULE: &str =
        "use 1 to 15 characters of letters, digits, '.', '_' and '-', not '.' or '..'";
    if name.is_empty() || name.len() > 15 || name == "." || name == ".." {
        return Err(RULE);
    }
    if name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        Ok(())
    } else {
        Err(RULE)
    }
}

/// Checks a host path: absolute and without `..` components.
pub fn check_host_path(path: &str) -> Result<(), &'static str> {
    if !path.starts_with('/') {
        return Err("use an absolute path");
    }
    if Path::new(path)
        .components()
        .any(|c| matches!(c, Component::ParentDir))
    {
        return Err("'..' components are not allowed");
    }
    if path.contains('\0') {
        return Err("NUL bytes are not allowed");
    }
    Ok(())
}

/// Checks a MAC address written as six two-digit hex bytes separated by ':'.
pub fn check_mac(mac: &str) -> Result<(), &'static str> {
    const RULE: &str = "write six two-digit hex bytes separated by ':' (e.g. AA:FC:00:00:00:01)";
    let parts: Vec<&str> = mac.split(':').collect();
    if parts.len() != 6 {
        return Err(RULE);
    }
    if parts
        .iter()
        .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        Ok(())
    } else {
        Err(RULE)
    }
}

/// Checks a guest IPv4 address; a `/len` suffix is accepted and ignored, as in the Go firework.
pub fn parse_guest_ip(text: &str) -> Result<Ipv4Addr, &'static str> {
    let address = text.split_once('/').map_or(text, |(ip, _)| ip);
    address
        .parse::<Ipv4Addr>()
        .map_err(|_| "write an IPv4 address such as 172.16.0.2")
}

/// Normalises and checks an exact host name for a routing rule.
///
/// Trims white space, removes one trailing dot and lowercases. Characters that could change
/// a Traefik rule (backticks, quotes, parentheses, braces, `$`, `|`, white space) are rejected.
pub fn normalize_host(host: &str) -> Result<String, &'static str> {
    let trimmed = host.trim();
    let trimmed = trimmed.strip_suffix('.').unwrap_or(trimmed);
    if trimmed.is_empty() {
        return Err("the host name is empty");
    }
    if trimmed.len() > 253 {
        return Err("a host name has at most 253 characters");
    }
    let lower = trimmed.to_ascii_lowercase();
    for label in lower.split('.') {
        check_host_label(label)?;
    }
    Ok(lower)
}

fn check_host_label(label: &str) -> Result<(), &'static str> {
    const RULE: &str = "each dot-separated label needs 1 to 63 characters of a-z, 0-9 and '-', not starting or ending with '-'";
    if label.is_empty() || label.len() > 63 || label.starts_with('-') || label.ends_with('-') {
        return Err(RULE);
    }
    if label
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        Ok(())
    } else {
        Err(RULE)
    }
}

/// Normalises and checks an ingress domain: a DNS name without scheme, port, path or wildcard.
pub fn normalize_domain(domain: &str) -> Result<String, &'static str> {
    if domain.contains("://") {
        return Err("remove the scheme; write only the domain, e.g. example.com");
    }
    if domain.contains(':') {
        return Err("remove the port; write only the domain, e.g. example.com");
    }
    if domain.contains('/') {
        return Err("remove the path; write only the domain, e.g. example.com");
    }
    if domain.contains('*') {
        return Err("wildcards are not allowed; write the parent domain, e.g. example.com");
    }
    normalize_host(domain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names() {
        for good in ["web", "a", "tenant-1-kibana", &"a".repeat(63), "0day"] {
            assert_eq!(check_service_name(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "-web",
            "web-",
            "Web",
            "web_1",
            "web.1",
            "we b",
            &"a".repeat(64),
            "../x",
        ] {
            assert!(check_service_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn env_keys() {
        for good in ["A", "_x", "DB_URL_2", "camelCase"] {
            assert_eq!(check_env_key(good), Ok(()), "{good}");
        }
        for bad in ["", "1A", "A-B", "A B", "A=B", "é"] {
            assert!(check_env_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn interface_names() {
        assert_eq!(check_interface_name("tap-web"), Ok(()));
        assert_eq!(check_interface_name("fw-abcdef-12345"), Ok(()));
        for bad in ["", "0123456789abcdef", "a/b", "a b", ".", "..", "eth0:1"] {
            assert!(check_interface_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn host_paths() {
        assert_eq!(check_host_path("/var/lib/images/web.ext4"), Ok(()));
        assert_eq!(
            check_host_path("images/web.ext4"),
            Err("use an absolute path")
        );
        assert_eq!(
            check_host_path("/var/lib/../etc/shadow"),
            Err("'..' components are not allowed")
        );
    }

    #[test]
    fn macs() {
        assert_eq!(check_mac("AA:FC:00:00:00:01"), Ok(()));
        assert_eq!(check_mac("aa:fc:00:00:00:ff"), Ok(()));
        for bad in [
            "AA:FC:00:00:00",
            "AA:FC:00:00:00:100",
            "AA-FC-00-00-00-01",
            "GG:FC:00:00:00:01",
        ] {
            assert!(check_mac(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hosts_are_normalised_and_injection_rejected() {
        assert_eq!(
            normalize_host("Web.Example.COM."),
            Ok("web.example.com".to_string())
        );
        for bad in [
            "a`b.com",
            "a.com) || Host(`b",
            "a b.com",
            "a..com",
            "-a.com",
            "$x.com",
            "",
        ] {
            assert!(normalize_host(bad).is_err(), "{bad}");
        }
    }
}
