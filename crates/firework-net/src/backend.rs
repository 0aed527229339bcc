//! The kernel operations [`crate::NetworkManager`] needs, behind a trait so unit
//! tests can record them instead.

use std::future::Future;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::error::NetError;
use crate::nft::Ruleset;

/// Kind of an existing network interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkKind {
    /// A Linux bridge.
    Bridge,
    /// A TUN or TAP device.
    Tun,
    /// Anything else, by its rtnetlink kind name (`dummy`, `veth`, ...) or `None`
    /// for physical devices.
    Other(Option<String>),
}

/// State of an existing network interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkState {
    /// Interface name.
    pub name: String,
    /// Device kind.
    pub kind: LinkKind,
    /// Name of the bridge the interface is attached to, if any.
    pub controller: Option<String>,
    /// Whether the interface is administratively up.
    pub up: bool,
    /// Current MTU.
    pub mtu: u32,
    /// IPv4 addresses with prefix length.
    pub addresses: Vec<Ipv4Net>,
}

/// Kernel-side operations on links and the nftables ruleset.
pub trait NetworkBackend {
    /// Returns the interface `name`, or `None` when it does not exist.
    fn link(&self, name: &str) -> impl Future<Output = Result<Option<LinkState>, NetError>> + Send;

    /// Lists all interfaces.
    fn links(&self) -> impl Future<Output = Result<Vec<LinkState>, NetError>> + Send;

    /// Creates the bridge `name`.
    fn create_bridge(&self, name: &str) -> impl Future<Output = Result<(), NetError>> + Send;

    /// Adds `address` to the interface `name`; an address already present is no error.
    fn add_address(
        &self,
        name: &str,
        address: Ipv4Net,
    ) -> impl Future<Output = Result<(), NetError>> + Send;

    /// Creates the persistent TAP device `name`, owned by `owner_uid` when given.
    fn create_tap(
        &self,
        name: &str,
        owner_uid: Option<u32>,
    ) -> impl Future<Output = Result<(), NetError>> + Send;

    /// Attaches `name` to `bridge`, sets its MTU when given and brings it up.
    fn configure_link(
        &self,
        name: &str,
        bridge: Option<&str>,
        mtu: Option<u32>,
    ) -> impl Future<Output = Result<(), NetError>> + Send;

    /// Deletes the interface `name`.
    fn delete_link(&self, name: &str) -> impl Future<Output = Result<(), NetError>> + Send;

    /// Lets packets from 127.0.0.0/8 leave through `name` (`route_localnet`), needed
    /// for port forwards used through the host's loopback address.
    fn allow_route_localnet(&self, name: &str)
    -> impl Future<Output = Result<(), NetError>> + Send;

    /// Replaces Firework's nftables tables with `ruleset` in one transaction.
    fn apply_ruleset(&self, ruleset: &Ruleset)
    -> impl Future<Output = Result<(), NetError>> + Send;
}

/// Returns whether `address` is one of the IPv4 addresses of `link`.
pub(crate) fn has_address(link: &LinkState, address: Ipv4Addr) -> bool {
    link.addresses.iter().any(|net| net.addr() == address)
}
