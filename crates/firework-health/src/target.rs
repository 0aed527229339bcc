//! Probe target resolution: an explicit `target`, or the guest address with the check's port
//! and path.

use std::fmt;

use firework_model::service::{HealthCheck, HealthCheckType};

/// A resolved probe target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeTarget {
    /// An HTTP GET to `host:port` with `path` (path and query).
    Http {
        /// Host name or IP address; IPv6 without brackets.
        host: String,
        /// TCP port; 80 when the URL has none.
        port: u16,
        /// Request target starting with `/`.
        path: String,
    },
    /// A TCP connect to `host:port`.
    Tcp {
        /// Host name or IP address; IPv6 without brackets.
        host: String,
        /// TCP port.
        port: u16,
    },
}

impl ProbeTarget {
    /// Returns `host:port`, with brackets around an IPv6 address.
    pub fn authority(&self) -> String {
        let (host, port) = match self {
            ProbeTarget::Http { host, port, .. } | ProbeTarget::Tcp { host, port } => (host, *port),
        };
        if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        }
    }
}

impl fmt::Display for ProbeTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeTarget::Http { path, .. } => write!(f, "http://{}{path}", self.authority()),
            ProbeTarget::Tcp { .. } => f.write_str(&self.authority()),
        }
    }
}

/// The reason a health check has no probe target. The monitor then leaves the service unprobed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Neither an explicit target nor a port with a guest address.
    #[error(
        "no probe target: the check has no `target`, and {}",
        if *.has_port { "the service has no guest address" } else { "no `port`" }
    )]
    Missing {
        /// Whether the check has a port (so only the guest address is missing).
        has_port: bool,
    },
    /// The explicit target cannot be parsed.
    #[error("invalid probe target {target:?}: {reason}")]
    Invalid {
        /// The target as written.
        target: String,
        /// The problem found.
        reason: &'static str,
    },
}

/// Resolves the target of `check` for a guest at `guest_ip` (a prefix length such as
/// `/24` is dropped). An explicit `target` wins over port, path and guest address.
pub fn resolve_target(
    check: &HealthCheck,
    guest_ip: Option<&str>,
) -> Result<ProbeTarget, TargetError> {
    if let Some(target) = check.target.as_deref().filter(|t| !t.is_empty()) {
        return parse_explicit(check.kind, target);
    }
    let guest_ip = guest_ip
        .map(|ip| ip.split('/').next().unwrap_or(ip).trim())
        .filter(|ip| !ip.is_empty());
    let (Some(port), Some(host)) = (check.port, guest_ip) else {
        return Err(TargetError::Missing {
            has_port: check.port.is_some(),
        });
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    Ok(match check.kind {
        HealthCheckType::Http => ProbeTarget::Http {
            host,
            port,
            path: check.path.clone().unwrap_or_else(|| "/".to_string()),
        },
        HealthCheckType::Tcp => ProbeTarget::Tcp { host, port },
    })
}

fn parse_explicit(kind: HealthCheckType, target: &str) -> Result<ProbeTarget, TargetError> {
    let invalid = |reason| TargetError::Invalid {
        target: target.to_string(),
        reason,
    };
    match kind {
        HealthCheckType::Http => {
            let rest = if let Some(rest) = target.strip_prefix("http://") {
                rest
            } else if target.starts_with("https://") {
                return Err(invalid("https is not supported; probe the guest over http"));
            } else {
                return Err(invalid("an http target is a URL starting with http://"));
            };
            let (authority, path) = match rest.find(['/', '?']) {
                Some(at) if rest[at..].starts_with('/') => (&rest[..at], rest[at..].to_string()),
                Some(at) => (&rest[..at], format!("/{}", &rest[at..])),
                None => (rest, "/".to_string()),
            };
            let (host, port) = split_authority(authority, Some(80)).map_err(invalid)?;
            Ok(ProbeTarget::Http { host, port, path })
        }
        HealthCheckType::Tcp => {
            let (host, port) = split_authority(target, None).map_err(invalid)?;
            Ok(ProbeTarget::Tcp { host, port })
        }
    }
}

/// Splits `host[:port]` (IPv6 in brackets) into host and port.
fn split_authority(
    authority: &str,
    default_port: Option<u16>,
) -> Result<(String, u16), &'static str> {
    if authority.contains('@') {
        return Err("user information in the target is not supported");
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("unclosed '[' in the host")?;
        match after.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if after.is_empty() => (host, None),
            None => return Err("unexpected text after the IPv6 address"),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("missing host");
    }
    let port = match port {
        Some(text) => text
            .parse::<u16>()
            .ok()
            .filter(|port| *port != 0)
            .ok_or("the port is not a number from 1 to 65535")?,
        None => default_port.ok_or("missing port; write host:port")?,
    };
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use firework_model::GoDuration;

    fn check(kind: HealthCheckType) -> HealthCheck {
        HealthCheck {
            kind,
            target: None,
            port: None,
            path: None,
            interval: GoDuration::from_secs(10),
            timeout: GoDuration::from_secs(5),
            retries: 3,
            start_period: GoDuration::from_secs(0),
            success_threshold: 1,
            expected_status: None,
        }
    }

    #[test]
    fn explicit_http_target_parts() {
        let mut c = check(HealthCheckType::Http);
        c.target = Some("http://[::1]:8080/ready?x=1".to_string());
        let target = resolve_target(&c, Some("10.0.0.2")).unwrap();
        assert_eq!(
            target,
            ProbeTarget::Http {
                host: "::1".to_string(),
                port: 8080,
                path: "/ready?x=1".to_string()
            }
        );
        assert_eq!(target.to_string(), "http://[::1]:8080/ready?x=1");
    }

    #[test]
    fn http_target_default_port_and_path() {
        let mut c = check(HealthCheckType::Http);
        c.target = Some("http://guest.local".to_string());
        let target = resolve_target(&c, None).unwrap();
        assert_eq!(target.to_string(), "http://guest.local:80/");
    }

    #[test]
    fn invalid_targets_rejected() {
        let cases = [
            (
                HealthCheckType::Http,
                "https://10.0.0.1/",
                "https is not supported",
            ),
            (
                HealthCheckType::Http,
                "10.0.0.1:80",
                "starting with http://",
            ),
            (
                HealthCheckType::Http,
                "http://10.0.0.1:0/",
                "from 1 to 65535",
            ),
            (HealthCheckType::Http, "http://:80/", "missing host"),
            (HealthCheckType::Tcp, "10.0.0.1", "missing port"),
            (HealthCheckType::Tcp, "[::1", "unclosed"),
        ];
        for (kind, text, reason) in cases {
            let mut c = check(kind);
            c.target = Some(text.to_string());
            let error = resolve_target(&c, None).unwrap_err();
            assert!(
                error.to_string().contains(reason),
                "{text}: {error} lacks {reason}"
            );
            assert!(error.to_string().contains(text), "{error} lacks {text}");
        }
    }

    #[test]
    fn missing_guest_address_reported() {
        let mut c = check(HealthCheckType::Tcp);
        c.port = Some(3306);
        assert_eq!(
            resolve_target(&c, None),
            Err(TargetError::Missing { has_port: true })
        );
        assert_eq!(
            resolve_target(&c, Some("")),
            Err(TargetError::Missing { has_port: true })
        );
    }
}
