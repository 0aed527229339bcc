//! Errors of the networking library.

use std::io;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use ipnet::Ipv4Net;

/// Errors from planning, applying or tearing down guest networking.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The plan itself is inconsistent.
    #[error("invalid network plan: {0}")]
    InvalidPlan(String),
    /// A service name cannot be used to derive a TAP name or a record.
    #[error("invalid service name {name:?}: {reason}")]
    InvalidServiceName { name: String, reason: &'static str },
    /// A TAP, bridge or output interface name is not a valid Linux interface name.
    #[error("{setting} is not a valid interface name")]
    InvalidInterfaceName {
        /// The setting with the name, e.g. `vm_bridge` or `the TAP name of service "api"`.
        setting: String,
        #[source]
        source: firework_sys::tun::TunError,
    },
    /// The requested TAP name is an existing device that Firework did not create.
    #[error(
        "TAP name {interface:?} for service {service:?} is an existing interface that Firework did not create; choose another name or remove the network.interface setting"
    )]
    ForeignInterface { service: String, interface: String },
    /// Two services would share one TAP device.
    #[error("services {first:?} and {second:?} both use TAP name {interface:?}")]
    DuplicateTapName {
        first: String,
        second: String,
        interface: String,
    },
    /// No guest address is left in the subnet.
    #[error("no free guest address in {subnet} for service {service:?}")]
    SubnetExhausted { service: String, subnet: Ipv4Net },
    /// A user-supplied `ip=` kernel argument disagrees with the assigned address.
    #[error(
        "kernel argument {given:?} of service {service:?} disagrees with the assigned address; remove it or use {expected:?}"
    )]
    IpArgMismatch {
        service: String,
        given: String,
        expected: String,
    },
    /// The bridge exists but is not a bridge device.
    #[error(
        "interface {name:?} exists but is not a bridge; rename vm_bridge or remove the interface"
    )]
    NotABridge { name: String },
    /// An adopted bridge, which Firework must not change, lacks the gateway address.
    #[error(
        "bridge {bridge:?} was not created by Firework and has no address {gateway}; add it (ip addr add {gateway}/{prefix_len} dev {bridge}) or let Firework create the bridge"
    )]
    AdoptedBridgeWithoutGateway {
        bridge: String,
        gateway: Ipv4Addr,
        prefix_len: u8,
    },
    /// An interface recorded as a Firework TAP is now some other kind of device.
    #[error(
        "interface {name:?} recorded as a Firework TAP is no longer a TAP device; it is left alone"
    )]
    NotATap { name: String },
    /// An interface that the operation needs does not exist.
    #[error("interface {name:?} not found")]
    LinkNotFound { name: String },
    /// A netlink request failed.
    #[error("netlink {operation} failed for interface {interface:?}")]
    Netlink {
        operation: &'static str,
        interface: String,
        #[source]
        source: rtnetlink::Error,
    },
    /// Opening the rtnetlink socket failed.
    #[error("failed to open a netlink socket")]
    NetlinkSocket(#[source] io::Error),
    /// A TAP ioctl failed.
    #[error("TAP operation failed for interface {interface:?}")]
    Tap {
        interface: String,
        #[source]
        source: firework_sys::tun::TunError,
    },
    /// Applying or reading the nftables ruleset failed.
    #[error("nftables {operation} failed")]
    Nftables {
        operation: &'static str,
        #[source]
        source: nftables::helper::NftablesError,
    },
    /// The generated ruleset did not match the nftables JSON schema.
    #[error("generated nftables ruleset is invalid")]
    RulesetSchema(#[source] serde_json::Error),
    /// Reading or writing the state file failed.
    #[error("failed to {operation} network state file {path}")]
    StateIo {
        operation: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The state file exists but cannot be parsed.
    #[error(
        "network state file {path} is corrupt; move it away to start over (Firework then adopts no devices)"
    )]
    StateCorrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// Writing a sysctl of a device Firework owns failed.
    #[error("failed to write sysctl {path}")]
    Sysctl {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}
