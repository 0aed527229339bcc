//! Guest network keys of the agent config: `vm_subnet` and `vm_gateway`.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::decode::{Decoder, Fields};

pub(super) fn decode_subnet(decoder: &mut Decoder, fields: &Fields<'_>) -> Option<Ipv4Net> {
    let default: Ipv4Net = Ipv4Net::new(Ipv4Addr::new(172, 16, 0, 0), 24).ok()?;
    let Some(node) = fields.raw("vm_subnet") else {
        return Some(default);
    };
    let text = decoder.string(node, "vm_subnet").unwrap_or_default();
    if text.is_empty() {
        return None;
    }
    match text.parse::<Ipv4Net>() {
        Ok(net) if net.prefix_len() <= 30 => Some(net.trunc()),
        Ok(net) => {
            decoder.error(
                "invalid-value",
                "vm_subnet",
                node.position,
                format!("invalid vm_subnet {text:?}: a /{} has no room for a gateway and a guest; use /30 or wider", net.prefix_len()),
            );
            None
        }
        Err(_) => {
            decoder.error(
                "invalid-value",
                "vm_subnet",
                node.position,
                format!("invalid vm_subnet {text:?}: write an IPv4 CIDR such as 172.16.0.0/24"),
            );
            None
        }
    }
}

pub(super) fn decode_gateway(
    decoder: &mut Decoder,
    fields: &Fields<'_>,
    subnet: Option<Ipv4Net>,
) -> Ipv4Addr {
    let default = subnet.map_or(Ipv4Addr::new(172, 16, 0, 1), |net| {
        Ipv4Addr::from(u32::from(net.network()) + 1)
    });
    let Some(node) = fields.get("vm_gateway") else {
        return default;
    };
    let Some(text) = decoder.string(node, "vm_gateway") else {
        return default;
    };
    // A `/len` suffix is accepted and ignored, as in the Go firework.
    let address_text = text.split_once('/').map_or(text.as_str(), |(ip, _)| ip);
    let Ok(gateway) = address_text.parse::<Ipv4Addr>() else {
        decoder.error(
            "invalid-value",
            "vm_gateway",
            node.position,
            format!("invalid vm_gateway {text:?}: write an IPv4 address such as 172.16.0.1"),
        );
        return default;
    };
    if let Some(net) = subnet
        && (!net.contains(&gateway) || gateway == net.network() || gateway == net.broadcast())
    {
        decoder.error(
            "invalid-value",
            "vm_gateway",
            node.position,
            format!(
                "invalid vm_gateway {gateway}: it must be a host address inside vm_subnet {net}"
            ),
        );
    }
    gateway
}
