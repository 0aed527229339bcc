//! The public host name of a service: `metadata.host` as written, or
//! `metadata.subdomain` under the agent's ingress domain.

use std::collections::BTreeMap;

use firework_model::names;

use crate::error::RouteError;

/// A DNS name has at most 253 characters.
const MAX_HOST_LEN: usize = 253;

/// The routing keys of a service's metadata. At most one may be set; a service with
/// neither is not routed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteKeys {
    /// `metadata.host`: an exact host name.
    pub host: Option<String>,
    /// `metadata.subdomain`: one DNS label under the agent's ingress domain.
    pub subdomain: Option<String>,
}

impl RouteKeys {
    /// Reads `host` and `subdomain` from a service's metadata; other keys are ignored.
    pub fn from_metadata(metadata: &BTreeMap<String, String>) -> Self {
        RouteKeys {
            host: metadata.get("host").cloned(),
            subdomain: metadata.get("subdomain").cloned(),
        }
    }

    /// Reports whether the service requests a route, that is whether either key is present,
    /// even with an empty value (an empty value is an error, not "unrouted").
    pub fn is_routed(&self) -> bool {
        self.host.is_some() || self.subdomain.is_some()
    }

    /// Resolves the host name the route matches.
    ///
    /// Returns `Ok(None)` when neither key is set. `host` is normalised (trimmed, one
    /// trailing dot removed, lowercased) and checked so that it cannot change the Traefik
    /// rule; it ignores the ingress domain. `subdomain` must be one lowercase DNS label and
    /// needs a non-blank `ingress_domain`, which is normalised the same way.
    pub fn resolve(&self, ingress_domain: Option<&str>) -> Result<Option<String>, RouteError> {
        match (&self.host, &self.subdomain) {
            (None, None) => Ok(None),
            (Some(_), Some(_)) => Err(RouteError::BothKeys),
            (Some(host), None) => {
                names::normalize_host(host)
                    .map(Some)
                    .map_err(|rule| RouteError::InvalidHost {
                        host: host.clone(),
                        rule,
                    })
            }
            (None, Some(subdomain)) => {
                names::check_dns_label(subdomain).map_err(|rule| RouteError::InvalidSubdomain {
                    subdomain: subdomain.clone(),
                    rule,
                })?;
                let domain = match ingress_domain.map(str::trim) {
                    Some(domain) if !domain.is_empty() => normalize_domain(domain)?,
                    _ => {
                        return Err(RouteError::SubdomainWithoutDomain {
                            subdomain: subdomain.clone(),
                        });
                    }
                };
                let host = format!("{subdomain}.{domain}");
                if host.len() > MAX_HOST_LEN {
                    return Err(RouteError::HostTooLong { host });
                }
                Ok(Some(host))
            }
        }
    }
}

/// Normalises an ingress domain: trims white space, removes one trailing dot and
/// lowercases; schemes, ports, paths, wildcards and invalid labels are errors.
pub fn normalize_domain(domain: &str) -> Result<String, RouteError> {
    names::normalize_domain(domain).map_err(|rule| RouteError::InvalidIngressDomain {
        domain: domain.to_string(),
        rule,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(value: &str) -> RouteKeys {
        RouteKeys {
            host: Some(value.to_string()),
            subdomain: None,
        }
    }

    fn subdomain(value: &str) -> RouteKeys {
        RouteKeys {
            host: None,
            subdomain: Some(value.to_string()),
        }
    }

    #[test]
    fn unrouted_resolves_to_none() {
        assert_eq!(RouteKeys::default().resolve(Some("example.com")), Ok(None));
        assert!(!RouteKeys::default().is_routed());
    }

    #[test]
    fn exact_host_is_normalised() {
        let resolved = host(" Custom.Example.NET. ").resolve(None);
        assert_eq!(resolved, Ok(Some("custom.example.net".to_string())));
    }

    #[test]
    fn exact_host_ignores_domain() {
        let resolved = host("custom.example.net").resolve(Some("example.com"));
        assert_eq!(resolved, Ok(Some("custom.example.net".to_string())));
    }

    #[test]
    fn subdomain_joins_domain() {
        let resolved = subdomain("tenant-1").resolve(Some("GCP.example.com."));
        assert_eq!(resolved, Ok(Some("tenant-1.gcp.example.com".to_string())));
    }

    #[test]
    fn subdomain_needs_domain() {
        for domain in [None, Some(""), Some("   ")] {
            let error = subdomain("tenant-1").resolve(domain);
            assert_eq!(
                error,
                Err(RouteError::SubdomainWithoutDomain {
                    subdomain: "tenant-1".to_string()
                }),
                "{domain:?}"
            );
        }
    }

    #[test]
    fn both_keys_rejected() {
        let keys = RouteKeys {
            host: Some("x.example.com".to_string()),
            subdomain: Some("tenant-1".to_string()),
        };
        assert_eq!(keys.resolve(Some("example.com")), Err(RouteError::BothKeys));
    }

    #[test]
    fn injection_hosts_rejected() {
        for bad in [
            "a`b.example.com",
            "x.com`) || Host(`y.com",
            "http://x.example.com",
            "x.example.com:8080",
            "*.example.com",
            "a\"b.example.com",
            "a$b.example.com",
            "a b.example.com",
            "",
            "   ",
        ] {
            let result = host(bad).resolve(None);
            assert!(
                matches!(result, Err(RouteError::InvalidHost { ref host, .. }) if host == bad),
                "{bad:?}: {result:?}"
            );
        }
    }

    #[test]
    fn invalid_subdomains_rejected() {
        let long = "a".repeat(64);
        for bad in [
            "a.b",
            "Tenant-1",
            "-tenant",
            "tenant-",
            "",
            "  ",
            long.as_str(),
        ] {
            let result = subdomain(bad).resolve(Some("example.com"));
            assert!(
                matches!(result, Err(RouteError::InvalidSubdomain { ref subdomain, .. }) if subdomain == bad),
                "{bad:?}: {result:?}"
            );
        }
    }

    #[test]
    fn overlong_joined_host_rejected() {
        let label = "a".repeat(63);
        let domain = format!("{label}.{label}.{label}.com");
        let result = subdomain(&label).resolve(Some(&domain));
        assert!(
            matches!(result, Err(RouteError::HostTooLong { ref host }) if host.len() == 63 * 4 + 4 + 3),
            "{result:?}"
        );
    }

    #[test]
    fn invalid_domain_rejected() {
        let result = subdomain("tenant-1").resolve(Some("https://example.com"));
        assert!(
            matches!(result, Err(RouteError::InvalidIngressDomain { ref domain, .. }) if domain == "https://example.com"),
            "{result:?}"
        );
    }
}
