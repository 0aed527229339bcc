//! Route file names, router names, the ownership line and the file content.

use std::net::{IpAddr, SocketAddr};

/// File name prefix of local route files.
pub const LOCAL_FILE_PREFIX: &str = "firework-local-";
/// File name prefix of remote route files.
pub const REMOTE_FILE_PREFIX: &str = "firework-remote-";
/// Extension of route files. Traefik's file provider loads `.yaml`, `.yml` and `.toml`.
pub const FILE_SUFFIX: &str = ".yaml";
/// Start of the first line of every file Firework writes. Only files with it are deleted.
pub const OWNERSHIP_MARKER: &str = "# managed-by: firework-routes";

/// Separates node and service in remote names. Service names are DNS labels and never
/// contain `_`, so the last `_` splits a remote name unambiguously.
const NODE_SERVICE_SEPARATOR: char = '_';

/// The owner of a route file, as recorded in its ownership line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Owner {
    /// A service on this node.
    Local { service: String },
    /// A service of a peer node.
    Remote { node: String, service: String },
}

impl Owner {
    /// Returns the file name: `firework-local-<service>.yaml` or
    /// `firework-remote-<node>_<service>.yaml`.
    pub fn file_name(&self) -> String {
        match self {
            Owner::Local { service } => format!("{LOCAL_FILE_PREFIX}{service}{FILE_SUFFIX}"),
            Owner::Remote { node, service } => {
                format!("{REMOTE_FILE_PREFIX}{node}{NODE_SERVICE_SEPARATOR}{service}{FILE_SUFFIX}")
            }
        }
    }

    /// Returns the router and Traefik service name: `fw-local-<service>` or
    /// `fw-remote-<node>_<service>`, so local and remote routes never share a name.
    pub fn router_name(&self) -> String {
        match self {
            Owner::Local { service } => format!("fw-local-{service}"),
            Owner::Remote { node, service } => {
                format!("fw-remote-{node}{NODE_SERVICE_SEPARATOR}{service}")
            }
        }
    }

    fn ownership_line(&self, host: &str) -> String {
        match self {
            Owner::Local { service } => {
                format!("{OWNERSHIP_MARKER} kind=local service={service} host={host}")
            }
            Owner::Remote { node, service } => {
                format!("{OWNERSHIP_MARKER} kind=remote node={node} service={service} host={host}")
            }
        }
    }

    /// Parses the ownership line of a file into the owner and the routed host name, or
    /// returns `None` when the file is not Firework's.
    pub fn parse(first_line: &str) -> Option<(Owner, String)> {
        let rest = first_line
            .strip_prefix(OWNERSHIP_MARKER)?
            .strip_prefix(' ')?;
        let mut kind = None;
        let mut node = None;
        let mut service = None;
        let mut host = None;
        for field in rest.split(' ') {
            let (key, value) = field.split_once('=')?;
            let slot = match key {
                "kind" => &mut kind,
                "node" => &mut node,
                "service" => &mut service,
                "host" => &mut host,
                _ => return None,
            };
            if slot.replace(value.to_string()).is_some() || value.is_empty() {
                return None;
            }
        }
        let owner = match (kind?.as_str(), node, service?) {
            ("local", None, service) => Owner::Local { service },
            ("remote", Some(node), service) => Owner::Remote { node, service },
            _ => return None,
        };
        Some((owner, host?))
    }
}

/// Renders one route file: a router matching `Host(<host>)` on `entry_point`, and a service
/// with one backend. `host` must be a validated host name, because it is written into the
/// rule without escaping; the other names are validated where they enter.
pub fn render(owner: &Owner, host: &str, entry_point: &str, ip: IpAddr, port: u16) -> String {
    let name = owner.router_name();
    let backend = SocketAddr::new(ip, port);
    format!(
        "{ownership}\n\
         # Written by the Firework agent. Changes are overwritten, and the file is deleted when the route goes away.\n\
         http:\n\
         \x20 routers:\n\
         \x20   \"{name}\":\n\
         \x20     rule: \"Host(`{host}`)\"\n\
         \x20     entryPoints:\n\
         \x20       - \"{entry_point}\"\n\
         \x20     service: \"{name}\"\n\
         \x20 services:\n\
         \x20   \"{name}\":\n\
         \x20     loadBalancer:\n\
         \x20       servers:\n\
         \x20         - url: \"http://{backend}\"\n",
        ownership = owner.ownership_line(host),
    )
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    fn local(service: &str) -> Owner {
        Owner::Local {
            service: service.to_string(),
        }
    }

    fn remote(node: &str, service: &str) -> Owner {
        Owner::Remote {
            node: node.to_string(),
            service: service.to_string(),
        }
    }

    #[test]
    fn local_file_content() {
        let text = render(
            &local("kibana"),
            "tenant-1.example.com",
            "web",
            IpAddr::V4(Ipv4Addr::new(172, 16, 0, 2)),
            5601,
        );
        let expected = "\
# managed-by: firework-routes kind=local service=kibana host=tenant-1.example.com
# Written by the Firework agent. Changes are overwritten, and the file is deleted when the route goes away.
http:
  routers:
    \"fw-local-kibana\":
      rule: \"Host(`tenant-1.example.com`)\"
      entryPoints:
        - \"web\"
      service: \"fw-local-kibana\"
  services:
    \"fw-local-kibana\":
      loadBalancer:
        servers:
          - url: \"http://172.16.0.2:5601\"
";
        assert_eq!(text, expected);
    }

    #[test]
    fn remote_file_names() {
        let owner = remote("node-2", "tenant-1-kibana");
        assert_eq!(
            owner.file_name(),
            "firework-remote-node-2_tenant-1-kibana.yaml"
        );
        assert_eq!(owner.router_name(), "fw-remote-node-2_tenant-1-kibana");
    }

    #[test]
    fn remote_names_are_unambiguous() {
        // Without a separator that service names cannot contain, these two would collide.
        let first = remote("a-b", "c");
        let second = remote("a", "b-c");
        assert_ne!(first.file_name(), second.file_name());
        assert_ne!(first.router_name(), second.router_name());
    }

    #[test]
    fn local_and_remote_names_differ() {
        let local = local("svc-a");
        let remote = remote("local", "svc-a");
        assert_ne!(local.file_name(), remote.file_name());
        assert_ne!(local.router_name(), remote.router_name());
    }

    #[test]
    fn ipv6_backend_is_bracketed() {
        let text = render(
            &remote("node-2", "web"),
            "web.example.com",
            "websecure",
            IpAddr::V6(Ipv6Addr::LOCALHOST),
            8080,
        );
        assert!(text.contains("url: \"http://[::1]:8080\""), "{text}");
        assert!(text.contains("- \"websecure\""), "{text}");
    }

    #[test]
    fn ownership_line_round_trips() {
        for owner in [local("kibana"), remote("node.a_1", "web")] {
            let text = render(
                &owner,
                "h.example.com",
                "web",
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                1,
            );
            let first = text.lines().next().unwrap_or_default();
            assert_eq!(
                Owner::parse(first),
                Some((owner, "h.example.com".to_string()))
            );
        }
    }

    #[test]
    fn foreign_lines_not_owned() {
        for line in [
            "",
            "http: {}",
            "# managed-by: someone-else kind=local service=x",
            "# managed-by: firework-routes",
            "# managed-by: firework-routes kind=local",
            "# managed-by: firework-routes kind=remote service=x",
            "# managed-by: firework-routes kind=local node=n service=x",
            "# managed-by: firework-routes kind=local service=x service=y",
            "# managed-by: firework-routes kind=local service=",
            "# managed-by: firework-routes kind=other service=x",
            "# managed-by: firework-routes kind=local service=x host=h extra=1",
            "# managed-by: firework-routes kind=local service=x host=",
            "# managed-by: firework-routes kind=local service=x host=a host=b",
        ] {
            assert_eq!(Owner::parse(line), None, "{line:?}");
        }
    }
}
