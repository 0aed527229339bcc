//! The desired network state that [`crate::NetworkManager::apply`] enforces.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;

use firework_sys::tun::validate_interface_name;
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::error::NetError;
use crate::names::validate_service_name;

/// Desired host networking of one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkPlan {
    /// Shared bridge that every TAP is attached to (`vm_bridge`).
    pub bridge: String,
    /// Guest subnet (`vm_subnet`); its prefix length must be 30 or less.
    pub subnet: Ipv4Net,
    /// Bridge address and guest default gateway (`vm_gateway`), inside `subnet`.
    pub gateway: Ipv4Addr,
    /// Host interface that guest traffic is masqueraded out of (`out_interface`).
    pub out_interface: Option<String>,
    /// Whether guests are kept from each other, from the agent API port and from
    /// link-local addresses (169.254.0.0/16).
    pub isolation: bool,
    /// TCP port of the agent's local API, closed to guests while isolation is on.
    pub agent_api_port: Option<u16>,
    /// MTU set on the TAP devices, and on the bridge when Firework created it.
    pub mtu: Option<u32>,
    /// Owner set on new TAP devices, so an unprivileged VMM can open them.
    pub tap_owner_uid: Option<u32>,
    /// Networked services of this node.
    pub services: Vec<ServiceNetwork>,
}

/// Network settings of one service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceNetwork {
    /// Service name, unique on the node.
    pub name: String,
    /// TAP name from the node config (`network.interface`), or `None` to derive one.
    pub tap_name: Option<String>,
    /// Ports published on every host address.
    pub port_forwards: Vec<PortForward>,
    /// Services this service may reach directly while isolation is on.
    pub links: Vec<String>,
}

/// A host port forwarded to a guest port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PortForward {
    /// Port on every host address.
    pub host_port: u16,
    /// Port inside the guest.
    pub vm_port: u16,
    /// Transport protocol.
    pub protocol: Protocol,
}

/// Transport protocol of a port forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// Returns the lowercase name nftables uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl NetworkPlan {
    /// Checks the plan for inconsistencies that no kernel state can fix.
    pub fn validate(&self) -> Result<(), NetError> {
        validate_interface_name(&self.bridge).map_err(|source| NetError::InvalidInterfaceName {
            setting: "vm_bridge".to_owned(),
            source,
        })?;
        if let Some(out) = &self.out_interface {
            validate_interface_name(out).map_err(|source| NetError::InvalidInterfaceName {
                setting: "out_interface".to_owned(),
                source,
            })?;
        }
        if self.out_interface.as_deref() == Some(self.bridge.as_str()) {
            return Err(NetError::InvalidPlan(format!(
                "out_interface {:?} is the guest bridge; name the host's uplink instead",
                self.bridge
            )));
        }
        if self.subnet.prefix_len() > 30 {
            return Err(NetError::InvalidPlan(format!(
                "subnet {} leaves no guest address; use a prefix of /30 or shorter",
                self.subnet
            )));
        }
        let subnet = self.subnet.trunc();
        if !subnet.contains(&self.gateway)
            || self.gateway == subnet.network()
            || self.gateway == subnet.broadcast()
        {
            return Err(NetError::InvalidPlan(format!(
                "gateway {} is not a host address of subnet {subnet}",
                self.gateway
            )));
        }

        let mut names = BTreeSet::new();
        let mut host_ports: BTreeMap<(u16, Protocol), &str> = BTreeMap::new();
        for service in &self.services {
            validate_service_name(&service.name)?;
            if !names.insert(service.name.as_str()) {
                return Err(NetError::InvalidPlan(format!(
                    "service {:?} is listed twice",
                    service.name
                )));
            }
            if let Some(tap) = &service.tap_name {
                validate_interface_name(tap).map_err(|source| NetError::InvalidInterfaceName {
                    setting: format!("the TAP name of service {:?}", service.name),
                    source,
                })?;
                if tap == &self.bridge || Some(tap) == self.out_interface.as_ref() {
                    return Err(NetError::InvalidPlan(format!(
                        "TAP name {tap:?} of service {:?} is the bridge or the out_interface",
                        service.name
                    )));
                }
            }
            for forward in &service.port_forwards {
                if forward.host_port == 0 || forward.vm_port == 0 {
                    return Err(NetError::InvalidPlan(format!(
                        "port forward {}->{} of service {:?} uses port 0",
                        forward.host_port, forward.vm_port, service.name
                    )));
                }
                if forward.protocol == Protocol::Tcp
                    && Some(forward.host_port) == self.agent_api_port
                {
                    return Err(NetError::InvalidPlan(format!(
                        "host port {} of service {:?} is the agent API port",
                        forward.host_port, service.name
                    )));
                }
                let key = (forward.host_port, forward.protocol);
                if let Some(other) = host_ports.insert(key, &service.name) {
                    return Err(NetError::InvalidPlan(format!(
                        "host port {}/{} is forwarded by both {other:?} and {:?}",
                        forward.host_port, forward.protocol, service.name
                    )));
                }
            }
        }
        for service in &self.services {
            for target in &service.links {
                if !names.contains(target.as_str()) {
                    tracing::warn!(
                        service = %service.name,
                        link = %target,
                        "link target has no network on this node; the link opens nothing"
                    );
                }
            }
        }
        Ok(())
    }

    /// Returns the subnet with host bits cleared.
    pub fn network(&self) -> Ipv4Net {
        self.subnet.trunc()
    }
}
