//! The nftables ruleset Firework owns: table `ip firework` and table `bridge firework`.
//!
//! Each apply sends one `nft -j` transaction that creates both tables if missing,
//! deletes them and adds them back with the desired chains and rules. nftables
//! commits a transaction as a whole, so the kernel never contains a partial ruleset.
//! The transaction names no table of other software.
//!
//! Table `ip firework`:
//! - `prerouting` and `output` (nat, priority -100): DNAT of each port forward for
//!   packets addressed to any local address, from outside and from the host itself.
//! - `postrouting` (nat, priority 100): masquerade of guest traffic leaving through
//!   `out_interface`, and of DNAT-ed connections that the host itself or another
//!   guest opened (hairpin), so replies come back through the host.
//! - `forward` (filter, priority 0): lets established and port-forward traffic
//!   through, and with isolation on drops routed guest-to-guest traffic that no link
//!   allows and guest traffic to 169.254.0.0/16.
//! - `guard` (filter prerouting, priority -150): drops packets from or to
//!   127.0.0.0/8 that arrive on the bridge.
//! - `input` (filter, priority 0, isolation only): drops guest traffic to the agent
//!   API port and to 169.254.0.0/16 on the host.
//!
//! Table `bridge firework` (isolation only): `forward` drops frames bridged between
//! two Firework TAPs unless the two services are linked, and `prerouting` drops IPv6
//! from TAPs and IPv4 and ARP whose source is not the guest's assigned address.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use nftables::schema::Nftables;
use serde_json::{Value, json};

use crate::error::NetError;
use crate::plan::{NetworkPlan, PortForward};

/// Name of Firework's nftables tables (one in family `ip`, one in family `bridge`).
pub const NFT_TABLE: &str = "firework";

/// Link-local range that guests must not reach while isolation is on.
const LINK_LOCAL: &str = "169.254.0.0";
const LINK_LOCAL_LEN: u8 = 16;

/// The fields of one service that the ruleset uses.
#[derive(Debug, Clone)]
pub(crate) struct RulesetService<'a> {
    pub name: &'a str,
    pub tap: &'a str,
    pub address: Ipv4Addr,
    pub port_forwards: &'a [PortForward],
    pub links: &'a [String],
}

/// A complete nftables transaction in the JSON form `nft -j -f -` reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Ruleset {
    commands: Vec<Value>,
}

impl Ruleset {
    /// Returns the transaction as the JSON document `nft -j` reads.
    pub fn to_json(&self) -> Value {
        json!({ "nftables": self.commands })
    }

    /// Converts the transaction to the typed schema of the `nftables` crate, which
    /// rejects statements outside the nftables JSON schema.
    pub fn to_nftables(&self) -> Result<Nftables<'static>, NetError> {
        serde_json::from_value(self.to_json()).map_err(NetError::RulesetSchema)
    }

    /// Returns the rules added to `chain` of the table in `family`, as JSON
    /// statement lists.
    pub fn rules(&self, family: &str, chain: &str) -> Vec<&Value> {
        self.commands
            .iter()
            .filter_map(|command| command.get("add")?.get("rule"))
            .filter(|rule| rule["family"] == family && rule["chain"] == chain)
            .map(|rule| &rule["expr"])
            .collect()
    }
}

fn table(family: &str) -> Value {
    json!({ "table": { "family": family, "name": NFT_TABLE } })
}

/// Commands that delete both tables, adding them first so that the delete finds them.
fn delete_tables() -> Vec<Value> {
    let mut commands = Vec::new();
    for family in ["ip", "bridge"] {
        commands.push(json!({ "add": table(family) }));
        commands.push(json!({ "delete": table(family) }));
    }
    commands
}

/// Returns the transaction that removes Firework's tables and adds nothing.
pub(crate) fn teardown_ruleset() -> Ruleset {
    Ruleset {
        commands: delete_tables(),
    }
}

fn chain(family: &str, name: &str, kind: &str, hook: &str, priority: i32) -> Value {
    json!({ "add": { "chain": {
        "family": family, "table": NFT_TABLE, "name": name,
        "type": kind, "hook": hook, "prio": priority, "policy": "accept",
    }}})
}

fn rule(family: &str, chain: &str, comment: Option<&str>, expr: Vec<Value>) -> Value {
    let mut rule = json!({ "family": family, "table": NFT_TABLE, "chain": chain, "expr": expr });
    if let Some(comment) = comment {
        rule["comment"] = json!(comment);
    }
    json!({ "add": { "rule": rule } })
}

fn equals(left: Value, right: Value) -> Value {
    json!({ "match": { "op": "==", "left": left, "right": right } })
}

fn not_equals(left: Value, right: Value) -> Value {
    json!({ "match": { "op": "!=", "left": left, "right": right } })
}

fn meta(key: &str) -> Value {
    json!({ "meta": { "key": key } })
}

fn payload(protocol: &str, field: &str) -> Value {
    json!({ "payload": { "protocol": protocol, "field": field } })
}

fn prefix(net: Ipv4Net) -> Value {
    json!({ "prefix": { "addr": net.network().to_string(), "len": net.prefix_len() } })
}

fn link_local() -> Value {
    json!({ "prefix": { "addr": LINK_LOCAL, "len": LINK_LOCAL_LEN } })
}

fn fib_type_local(address: &str) -> Value {
    equals(
        json!({ "fib": { "result": "type", "flags": [address] } }),
        json!("local"),
    )
}

fn ct_status_dnat() -> Value {
    json!({ "match": { "op": "in", "left": { "ct": { "key": "status" } }, "right": "dnat" } })
}

fn ct_established() -> Value {
    json!({ "match": { "op": "in", "left": { "ct": { "key": "state" } },
        "right": ["established", "related"] } })
}

fn verdict(name: &str) -> Value {
    json!({ name: null })
}

/// Builds the transaction that makes Firework's tables match `plan`.
pub(crate) fn build(plan: &NetworkPlan, services: &[RulesetService<'_>]) -> Ruleset {
    let mut commands = delete_tables();
    let subnet = plan.network();
    let bridge = plan.bridge.as_str();
    let ip = "ip";

    commands.push(json!({ "add": table(ip) }));
    commands.push(chain(ip, "prerouting", "nat", "prerouting", -100));
    commands.push(chain(ip, "output", "nat", "output", -100));
    commands.push(chain(ip, "postrouting", "nat", "postrouting", 100));
    commands.push(chain(ip, "forward", "filter", "forward", 0));
    commands.push(chain(ip, "guard", "filter", "prerouting", -150));
    if plan.isolation {
        commands.push(chain(ip, "input", "filter", "input", 0));
    }

    // Firework sets route_localnet on its bridge so that loopback port forwards work.
    // That also lets the host accept 127.0.0.0/8 arriving on the bridge, which would
    // open services bound to loopback to guests, so such packets are dropped before
    // DNAT and routing.
    for field in ["daddr", "saddr"] {
        commands.push(rule(
            ip,
            "guard",
            Some("loopback addresses from guests"),
            vec![
                equals(meta("iifname"), json!(bridge)),
                equals(
                    payload(ip, field),
                    json!({ "prefix": { "addr": "127.0.0.0", "len": 8 } }),
                ),
                verdict("drop"),
            ],
        ));
    }

    // Port forwards: DNAT for traffic to any local address, from outside and from
    // the host itself, then an explicit accept ahead of the isolation drops.
    for service in services {
        let comment = format!("service {}", service.name);
        for forward in service.port_forwards {
            let protocol = forward.protocol.as_str();
            let dnat = json!({ "dnat": {
                "addr": service.address.to_string(), "port": forward.vm_port,
            }});
            for nat_chain in ["prerouting", "output"] {
                commands.push(rule(
                    ip,
                    nat_chain,
                    Some(&comment),
                    vec![
                        fib_type_local("daddr"),
                        equals(payload(protocol, "dport"), json!(forward.host_port)),
                        dnat.clone(),
                    ],
                ));
            }
        }
    }

    // Masquerade: guests going out, and hairpin connections (host-originated or
    // guest-originated DNAT to a guest), so the guest's reply returns through the host.
    if let Some(out) = &plan.out_interface {
        commands.push(rule(
            ip,
            "postrouting",
            None,
            vec![
                equals(payload(ip, "saddr"), prefix(subnet)),
                equals(meta("oifname"), json!(out)),
                verdict("masquerade"),
            ],
        ));
    }
    commands.push(rule(
        ip,
        "postrouting",
        Some("hairpin from the host"),
        vec![
            equals(meta("oifname"), json!(bridge)),
            ct_status_dnat(),
            fib_type_local("saddr"),
            verdict("masquerade"),
        ],
    ));
    commands.push(rule(
        ip,
        "postrouting",
        Some("hairpin from a guest"),
        vec![
            equals(payload(ip, "saddr"), prefix(subnet)),
            equals(payload(ip, "daddr"), prefix(subnet)),
            ct_status_dnat(),
            verdict("masquerade"),
        ],
    ));

    // Forward: established traffic and port forwards pass first.
    commands.push(rule(
        ip,
        "forward",
        None,
        vec![ct_established(), verdict("accept")],
    ));
    for service in services {
        let comment = format!("service {}", service.name);
        for forward in service.port_forwards {
            commands.push(rule(
                ip,
                "forward",
                Some(&comment),
                vec![
                    equals(meta("oifname"), json!(bridge)),
                    equals(payload(ip, "daddr"), json!(service.address.to_string())),
                    equals(
                        payload(forward.protocol.as_str(), "dport"),
                        json!(forward.vm_port),
                    ),
                    ct_status_dnat(),
                    verdict("accept"),
                ],
            ));
        }
    }

    if plan.isolation {
        add_isolation(&mut commands, plan, services);
    }

    if let Some(out) = &plan.out_interface {
        commands.push(rule(
            ip,
            "forward",
            None,
            vec![
                equals(meta("iifname"), json!(bridge)),
                equals(meta("oifname"), json!(out)),
                equals(payload(ip, "saddr"), prefix(subnet)),
                verdict("accept"),
            ],
        ));
    }

    Ruleset { commands }
}

/// Pairs `(from, to)` of linked services, both present in `services`.
fn linked_pairs<'a>(services: &[RulesetService<'a>]) -> BTreeSet<(&'a str, &'a str)> {
    let names: BTreeSet<&str> = services.iter().map(|s| s.name).collect();
    let mut pairs = BTreeSet::new();
    for service in services {
        for target in service.links {
            if target != service.name && names.contains(target.as_str()) {
                pairs.insert((service.name, target.as_str()));
            }
        }
    }
    pairs
}

fn add_isolation(commands: &mut Vec<Value>, plan: &NetworkPlan, services: &[RulesetService<'_>]) {
    let ip = "ip";
    let bridge = plan.bridge.as_str();
    let by_name = |name: &str| services.iter().find(|s| s.name == name);
    let pairs = linked_pairs(services);

    // Routed guest-to-guest traffic (a guest sending through the gateway).
    for (from, to) in &pairs {
        let (Some(from), Some(to)) = (by_name(from), by_name(to)) else {
            continue;
        };
        commands.push(rule(
            ip,
            "forward",
            Some(&format!("link {} -> {}", from.name, to.name)),
            vec![
                equals(meta("iifname"), json!(bridge)),
                equals(meta("oifname"), json!(bridge)),
                equals(payload(ip, "saddr"), json!(from.address.to_string())),
                equals(payload(ip, "daddr"), json!(to.address.to_string())),
                verdict("accept"),
            ],
        ));
    }
    commands.push(rule(
        ip,
        "forward",
        Some("isolate guests"),
        vec![
            equals(meta("iifname"), json!(bridge)),
            equals(meta("oifname"), json!(bridge)),
            verdict("drop"),
        ],
    ));
    commands.push(rule(
        ip,
        "forward",
        Some("isolate guests from link-local"),
        vec![
            equals(meta("iifname"), json!(bridge)),
            equals(payload(ip, "daddr"), link_local()),
            verdict("drop"),
        ],
    ));

    // The host itself: agent API and link-local addresses.
    if let Some(port) = plan.agent_api_port {
        for protocol in ["tcp", "udp"] {
            commands.push(rule(
                ip,
                "input",
                Some("isolate the agent API"),
                vec![
                    equals(meta("iifname"), json!(bridge)),
                    equals(payload(protocol, "dport"), json!(port)),
                    verdict("drop"),
                ],
            ));
        }
    }
    commands.push(rule(
        ip,
        "input",
        Some("isolate guests from link-local"),
        vec![
            equals(meta("iifname"), json!(bridge)),
            equals(payload(ip, "daddr"), link_local()),
            verdict("drop"),
        ],
    ));

    // Bridged frames between two TAPs never reach the ip family, so the bridge family
    // enforces the same model at layer 2. A link opens both directions, because the
    // bridge table keeps no connection state for replies.
    if services.is_empty() {
        return;
    }
    let bridge_family = "bridge";
    commands.push(json!({ "add": table(bridge_family) }));
    commands.push(chain(bridge_family, "forward", "filter", "forward", 0));
    commands.push(chain(
        bridge_family,
        "prerouting",
        "filter",
        "prerouting",
        0,
    ));

    // Guests are IPv4-only, and the isolation rules of the ip table do not see IPv6,
    // so IPv6 from a guest (e.g. to the bridge's link-local address) is dropped.
    let tap_names: BTreeSet<&str> = services.iter().map(|s| s.tap).collect();
    commands.push(rule(
        bridge_family,
        "prerouting",
        Some("guests are IPv4-only"),
        vec![
            equals(
                meta("iifname"),
                json!({ "set": tap_names.into_iter().collect::<Vec<_>>() }),
            ),
            equals(payload("ether", "type"), json!("ip6")),
            verdict("drop"),
        ],
    ));

    // A guest may only send IPv4 and ARP from its assigned address, so it cannot pass
    // as a linked guest in the routed rules above.
    for service in services {
        let address = json!(service.address.to_string());
        for field in [("ip", "saddr"), ("arp", "saddr ip")] {
            commands.push(rule(
                bridge_family,
                "prerouting",
                Some(&format!("service {} source address", service.name)),
                vec![
                    equals(meta("iifname"), json!(service.tap)),
                    not_equals(payload(field.0, field.1), address.clone()),
                    verdict("drop"),
                ],
            ));
        }
    }
    for (from, to) in &pairs {
        let (Some(from), Some(to)) = (by_name(from), by_name(to)) else {
            continue;
        };
        for (a, b) in [(from, to), (to, from)] {
            commands.push(rule(
                bridge_family,
                "forward",
                Some(&format!("link {} -> {}", from.name, to.name)),
                vec![
                    equals(meta("iifname"), json!(a.tap)),
                    equals(meta("oifname"), json!(b.tap)),
                    verdict("accept"),
                ],
            ));
        }
    }
    // With br_netfilter loaded, a DNAT whose target sits on the same bridge (a guest
    // using another guest's published port) is bridged instead of routed, so it
    // reaches this chain. The bridge family has no connection tracking without
    // nf_conntrack_bridge, so published guest ports are opened here in both
    // directions: every guest may reach them, as everyone may through the host port.
    for service in services {
        let comment = format!("service {}", service.name);
        for forward in service.port_forwards {
            let protocol = forward.protocol.as_str();
            let address = json!(service.address.to_string());
            for (address_field, port_field) in [("daddr", "dport"), ("saddr", "sport")] {
                commands.push(rule(
                    bridge_family,
                    "forward",
                    Some(&comment),
                    vec![
                        equals(payload("ip", address_field), address.clone()),
                        equals(payload(protocol, port_field), json!(forward.vm_port)),
                        verdict("accept"),
                    ],
                ));
            }
        }
    }
    let taps: BTreeSet<&str> = services.iter().map(|s| s.tap).collect();
    let tap_set = json!({ "set": taps.into_iter().collect::<Vec<_>>() });
    commands.push(rule(
        bridge_family,
        "forward",
        Some("isolate guests"),
        vec![
            equals(meta("iifname"), tap_set.clone()),
            equals(meta("oifname"), tap_set),
            verdict("drop"),
        ],
    ));
}

/// Builds the ruleset for `plan` with the given TAP names and guest addresses.
///
/// `bindings` maps a service name to its TAP name and guest address. Services of the
/// plan without a binding are left out. Rules follow service names in sorted order,
/// so the order of `plan.services` does not change the ruleset.
pub fn build_ruleset(
    plan: &NetworkPlan,
    bindings: &std::collections::BTreeMap<String, (String, Ipv4Addr)>,
) -> Ruleset {
    let mut services: Vec<RulesetService<'_>> = plan
        .services
        .iter()
        .filter_map(|service| {
            let (tap, address) = bindings.get(&service.name)?;
            Some(RulesetService {
                name: &service.name,
                tap,
                address: *address,
                port_forwards: &service.port_forwards,
                links: &service.links,
            })
        })
        .collect();
    services.sort_by(|a, b| a.name.cmp(b.name));
    build(plan, &services)
}
