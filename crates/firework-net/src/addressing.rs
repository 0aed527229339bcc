//! Guest IPv4 and MAC address assignment.
//!
//! A service keeps the address recorded for it while that address is still a valid
//! guest address of the subnet. A new service starts probing at an offset derived from
//! a SHA-256 hash of its name and takes the next free host address, so adding or
//! removing one service never moves another.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use sha2::{Digest, Sha256};

use crate::error::NetError;

/// Address pair of one guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestAddress {
    /// Guest IPv4 address inside the subnet.
    pub address: Ipv4Addr,
    /// Guest MAC address, `AA:FC:` followed by the four bytes of `address`.
    pub mac: String,
}

/// Returns the MAC of a guest with `address`.
///
/// `AA` has the locally administered bit set and the multicast bit clear, and the
/// other four bytes are the IPv4 address, so distinct guest addresses give distinct
/// MACs.
pub fn mac_for_address(address: Ipv4Addr) -> String {
    let [a, b, c, d] = address.octets();
    format!("AA:FC:{a:02X}:{b:02X}:{c:02X}:{d:02X}")
}

/// Offsets inside one subnet that may hold a guest.
struct HostRange {
    base: u32,
    /// Number of addresses in the subnet.
    size: u64,
    gateway_offset: u64,
}

impl HostRange {
    fn new(subnet: Ipv4Net, gateway: Ipv4Addr) -> Self {
        let network = subnet.trunc();
        let base = u32::from(network.network());
        Self {
            base,
            size: 1u64 << (32 - u32::from(network.prefix_len())),
            gateway_offset: u64::from(u32::from(gateway).wrapping_sub(base)),
        }
    }

    /// Returns the offset of `address` when it may hold a guest: inside the subnet and
    /// not the network, broadcast or gateway address.
    fn guest_offset(&self, address: Ipv4Addr) -> Option<u64> {
        let offset = u64::from(u32::from(address).wrapping_sub(self.base));
        let usable = offset >= 1 && offset < self.size - 1 && offset != self.gateway_offset;
        usable.then_some(offset)
    }

    fn address(&self, offset: u64) -> Ipv4Addr {
        // offset < size <= 2^32, so the sum stays inside the subnet.
        Ipv4Addr::from(self.base.wrapping_add(offset as u32))
    }
}

fn hash_offset(service: &str, host_count: u64) -> u64 {
    let digest = Sha256::digest(service.as_bytes());
    let mut prefix = [0u8; 8];
    prefix.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(prefix) % host_count
}

/// Assigns a guest address to each of `services`.
///
/// `previous` contains the addresses recorded earlier, and each one that is still a
/// valid guest address of `subnet` is kept. Returns
/// [`NetError::SubnetExhausted`] naming the first service that finds no free address.
pub fn assign_addresses<'a>(
    subnet: Ipv4Net,
    gateway: Ipv4Addr,
    services: impl IntoIterator<Item = &'a str>,
    previous: &BTreeMap<String, Ipv4Addr>,
) -> Result<BTreeMap<String, GuestAddress>, NetError> {
    let range = HostRange::new(subnet, gateway);
    let mut names: Vec<&str> = services.into_iter().collect();
    names.sort_unstable();
    names.dedup();

    let mut taken: BTreeSet<u64> = BTreeSet::new();
    let mut assigned: BTreeMap<String, Ipv4Addr> = BTreeMap::new();
    for name in &names {
        let Some(address) = previous.get(*name) else {
            continue;
        };
        if let Some(offset) = range.guest_offset(*address)
            && taken.insert(offset)
        {
            assigned.insert((*name).to_owned(), *address);
        }
    }

    // Host offsets run from 1 to size - 2: the network and broadcast addresses are
    // excluded here and the gateway by guest_offset.
    let host_count = range.size.saturating_sub(2);
    for name in &names {
        if assigned.contains_key(*name) {
            continue;
        }
        let start = if host_count == 0 {
            0
        } else {
            hash_offset(name, host_count)
        };
        let free = (0..host_count)
            .map(|step| 1 + (start + step) % host_count)
            .find(|offset| {
                !taken.contains(offset) && range.guest_offset(range.address(*offset)).is_some()
            });
        let Some(offset) = free else {
            return Err(NetError::SubnetExhausted {
                service: (*name).to_owned(),
                subnet: subnet.trunc(),
            });
        };
        taken.insert(offset);
        assigned.insert((*name).to_owned(), range.address(offset));
    }

    Ok(assigned
        .into_iter()
        .map(|(name, address)| {
            let mac = mac_for_address(address);
            (name, GuestAddress { address, mac })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> Ipv4Net {
        text.parse().unwrap()
    }

    fn names(count: usize) -> Vec<String> {
        (0..count).map(|i| format!("svc-{i}")).collect()
    }

    #[test]
    fn three_hundred_services_on_a_23() {
        let subnet = net("10.20.0.0/23");
        let gateway = Ipv4Addr::new(10, 20, 0, 1);
        let services = names(300);
        let assigned = assign_addresses(
            subnet,
            gateway,
            services.iter().map(String::as_str),
            &BTreeMap::new(),
        )
        .unwrap();
        assert_eq!(assigned.len(), 300);

        let addresses: BTreeSet<Ipv4Addr> = assigned.values().map(|g| g.address).collect();
        let macs: BTreeSet<&str> = assigned.values().map(|g| g.mac.as_str()).collect();
        assert_eq!(addresses.len(), 300, "addresses are not unique");
        assert_eq!(macs.len(), 300, "MACs are not unique");
        for guest in assigned.values() {
            assert!(subnet.contains(&guest.address), "{} outside", guest.address);
            assert_ne!(guest.address, subnet.network());
            assert_ne!(guest.address, subnet.broadcast());
            assert_ne!(guest.address, gateway);
            let first = u8::from_str_radix(&guest.mac[..2], 16).unwrap();
            assert_eq!(first & 0x01, 0, "{} is multicast", guest.mac);
            assert_eq!(
                first & 0x02,
                0x02,
                "{} is not locally administered",
                guest.mac
            );
            assert!(guest.mac.starts_with("AA:FC:"), "{}", guest.mac);
        }
    }

    #[test]
    fn adding_and_removing_keeps_other_addresses() {
        let subnet = net("172.16.0.0/24");
        let gateway = Ipv4Addr::new(172, 16, 0, 1);
        let first = assign_addresses(subnet, gateway, ["b", "c", "d"], &BTreeMap::new()).unwrap();
        let recorded: BTreeMap<String, Ipv4Addr> =
            first.iter().map(|(n, g)| (n.clone(), g.address)).collect();

        let added = assign_addresses(subnet, gateway, ["a", "b", "c", "d"], &recorded).unwrap();
        for name in ["b", "c", "d"] {
            assert_eq!(added[name], first[name], "{name} moved when a was added");
        }

        let mut without_c = recorded.clone();
        without_c.remove("c");
        let removed = assign_addresses(subnet, gateway, ["b", "d"], &without_c).unwrap();
        assert_eq!(removed["b"], first["b"]);
        assert_eq!(removed["d"], first["d"]);
    }

    #[test]
    fn assignment_without_records_is_deterministic() {
        let subnet = net("10.0.0.0/16");
        let gateway = Ipv4Addr::new(10, 0, 0, 1);
        let one = assign_addresses(subnet, gateway, ["x", "y"], &BTreeMap::new()).unwrap();
        let two = assign_addresses(subnet, gateway, ["y", "x"], &BTreeMap::new()).unwrap();
        assert_eq!(one, two);
    }

    #[test]
    fn slash_30_holds_one_guest_then_exhausts() {
        let subnet = net("192.168.5.0/30");
        let gateway = Ipv4Addr::new(192, 168, 5, 1);
        let one = assign_addresses(subnet, gateway, ["only"], &BTreeMap::new()).unwrap();
        assert_eq!(one["only"].address, Ipv4Addr::new(192, 168, 5, 2));
        assert_eq!(one["only"].mac, "AA:FC:C0:A8:05:02");

        let err = assign_addresses(subnet, gateway, ["a", "b"], &BTreeMap::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no free guest address in 192.168.5.0/30 for service \"b\""
        );
    }

    #[test]
    fn invalid_records_are_reassigned() {
        let subnet = net("10.1.0.0/24");
        let gateway = Ipv4Addr::new(10, 1, 0, 1);
        let mut previous = BTreeMap::new();
        previous.insert("gw".to_owned(), gateway);
        previous.insert("outside".to_owned(), Ipv4Addr::new(10, 2, 0, 5));
        previous.insert("bcast".to_owned(), Ipv4Addr::new(10, 1, 0, 255));
        previous.insert("dup-a".to_owned(), Ipv4Addr::new(10, 1, 0, 9));
        previous.insert("dup-b".to_owned(), Ipv4Addr::new(10, 1, 0, 9));
        let assigned = assign_addresses(
            subnet,
            gateway,
            ["gw", "outside", "bcast", "dup-a", "dup-b"],
            &previous,
        )
        .unwrap();
        assert_ne!(assigned["gw"].address, gateway);
        assert!(subnet.contains(&assigned["outside"].address));
        assert_ne!(assigned["bcast"].address, Ipv4Addr::new(10, 1, 0, 255));
        assert_eq!(assigned["dup-a"].address, Ipv4Addr::new(10, 1, 0, 9));
        assert_ne!(assigned["dup-b"].address, Ipv4Addr::new(10, 1, 0, 9));
    }
}
