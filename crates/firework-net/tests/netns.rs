//! Root-only tests of the real backend inside network namespaces made per test.

// Tests may unwrap: a failed setup step should stop the test with its error.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use common::{
    Guest, NetNs, Server, UdpEchoServer, fetch, fetch_with_retry, query_udp, skip_unless_root,
};
use firework_net::{
    LinkKind, NetError, NetworkBackend, NetworkPlan, PortForward, Protocol, ServiceNetwork,
};

fn service(name: &str) -> ServiceNetwork {
    ServiceNetwork {
        name: name.to_owned(),
        tap_name: None,
        port_forwards: Vec::new(),
        links: Vec::new(),
    }
}

fn forward(host_port: u16, vm_port: u16) -> PortForward {
    PortForward {
        host_port,
        vm_port,
        protocol: Protocol::Tcp,
    }
}

fn plan(services: Vec<ServiceNetwork>) -> NetworkPlan {
    NetworkPlan {
        bridge: "fwbr0".into(),
        subnet: "10.77.0.0/24".parse().unwrap(),
        gateway: Ipv4Addr::new(10, 77, 0, 1),
        out_interface: None,
        isolation: true,
        agent_api_port: Some(7070),
        mtu: None,
        tap_owner_uid: None,
        services,
    }
}

/// Returns the state of link `name` in `host`, through the real backend.
fn link(host: &NetNs, name: &str) -> Option<firework_net::LinkState> {
    let dir = tempfile::tempdir().unwrap();
    let name = name.to_owned();
    host.with_manager(dir.path(), async move |manager| {
        manager.backend().link(&name).await.unwrap()
    })
}

#[test]
fn apply_twice_gives_identical_ruleset() {
    if skip_unless_root("apply_twice_gives_identical_ruleset") {
        return;
    }
    let host = NetNs::new("idem");
    let state = tempfile::tempdir().unwrap();
    let mut web = service("web");
    web.port_forwards = vec![
        forward(8080, 80),
        PortForward {
            host_port: 5353,
            vm_port: 53,
            protocol: Protocol::Udp,
        },
    ];
    web.links = vec!["db".into()];
    let mut desired = plan(vec![web, service("db")]);
    desired.out_interface = Some("lo".into());

    let first = host.apply(state.path(), &desired).unwrap();
    let ip_first = host.nft_table("ip");
    let bridge_first = host.nft_table("bridge");
    let second = host.apply(state.path(), &desired).unwrap();
    assert_eq!(first, second);
    assert_eq!(host.nft_table("ip"), ip_first);
    assert_eq!(host.nft_table("bridge"), bridge_first);

    assert!(ip_first.contains("dnat to"), "{ip_first}");
    assert!(
        ip_first.contains(&format!("{}:80", first.services["web"].address)),
        "{ip_first}"
    );
    assert!(ip_first.contains("udp dport 5353"), "{ip_first}");

    let bridge = link(&host, "fwbr0").unwrap();
    assert_eq!(bridge.kind, LinkKind::Bridge);
    assert!(bridge.up);
    assert!(
        bridge.addresses.contains(&"10.77.0.1/24".parse().unwrap()),
        "{bridge:?}"
    );
    for network in first.services.values() {
        let tap = link(&host, &network.tap).unwrap();
        assert_eq!(tap.kind, LinkKind::Tun);
        assert_eq!(tap.controller.as_deref(), Some("fwbr0"));
        assert!(tap.up, "{tap:?}");
    }
}

#[test]
fn mtu_is_set_on_owned_links() {
    if skip_unless_root("mtu_is_set_on_owned_links") {
        return;
    }
    let host = NetNs::new("mtu");
    let state = tempfile::tempdir().unwrap();
    let mut desired = plan(vec![service("api")]);
    desired.mtu = Some(1400);
    let applied = host.apply(state.path(), &desired).unwrap();
    assert_eq!(link(&host, &applied.services["api"].tap).unwrap().mtu, 1400);
    assert_eq!(link(&host, "fwbr0").unwrap().mtu, 1400);
}

#[test]
fn added_service_keeps_other_addresses() {
    if skip_unless_root("added_service_keeps_other_addresses") {
        return;
    }
    let host = NetNs::new("add");
    let state = tempfile::tempdir().unwrap();
    let before = host
        .apply(state.path(), &plan(vec![service("m"), service("z")]))
        .unwrap();
    let after = host
        .apply(
            state.path(),
            &plan(vec![service("a"), service("m"), service("z")]),
        )
        .unwrap();
    assert_eq!(after.services["m"], before.services["m"]);
    assert_eq!(after.services["z"], before.services["z"]);
    assert_ne!(after.services["a"].address, after.services["m"].address);
    assert_ne!(after.services["a"].address, after.services["z"].address);
    assert!(link(&host, &after.services["a"].tap).is_some());
}

#[test]
fn deleted_service_loses_tap_and_rules() {
    if skip_unless_root("deleted_service_loses_tap_and_rules") {
        return;
    }
    let host = NetNs::new("del");
    let state = tempfile::tempdir().unwrap();
    let mut gone = service("gone");
    gone.port_forwards = vec![forward(9090, 90)];
    let mut stays = service("stays");
    stays.port_forwards = vec![forward(9191, 91)];
    let before = host
        .apply(state.path(), &plan(vec![gone, stays.clone()]))
        .unwrap();
    let gone_tap = before.services["gone"].tap.clone();
    let gone_address = before.services["gone"].address.to_string();
    assert!(link(&host, &gone_tap).is_some());
    assert!(host.nft_table("ip").contains(&gone_address));
    assert!(host.nft_table("bridge").contains(&gone_tap));

    let after = host.apply(state.path(), &plan(vec![stays])).unwrap();
    assert_eq!(after.services["stays"], before.services["stays"]);
    assert!(
        link(&host, &gone_tap).is_none(),
        "TAP {gone_tap} still exists"
    );
    let ip_rules = host.nft_table("ip");
    assert!(!ip_rules.contains(&gone_address), "{ip_rules}");
    assert!(!ip_rules.contains("9090"), "{ip_rules}");
    assert!(ip_rules.contains("9191"), "{ip_rules}");
    assert!(!host.nft_table("bridge").contains(&gone_tap));
}

#[test]
fn existing_host_interface_is_rejected() {
    if skip_unless_root("existing_host_interface_is_rejected") {
        return;
    }
    let host = NetNs::new("foreign");
    let state = tempfile::tempdir().unwrap();
    host.ip(&[
        "link", "add", "uplink9", "type", "veth", "peer", "name", "uplink9p",
    ]);
    host.ip(&["addr", "add", "192.0.2.9/24", "dev", "uplink9"]);
    let before = host.ip(&["-d", "addr", "show", "uplink9"]);

    let mut api = service("api");
    api.tap_name = Some("uplink9".into());
    let err = host.apply(state.path(), &plan(vec![api])).unwrap_err();
    assert!(matches!(err, NetError::ForeignInterface { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "TAP name \"uplink9\" for service \"api\" is an existing interface that Firework did not create; choose another name or remove the network.interface setting"
    );
    assert_eq!(host.ip(&["-d", "addr", "show", "uplink9"]), before);
    assert!(
        link(&host, "fwbr0").is_none(),
        "bridge created despite the error"
    );
}

#[test]
fn foreign_nft_table_survives_apply() {
    if skip_unless_root("foreign_nft_table_survives_apply") {
        return;
    }
    let host = NetNs::new("nftfor");
    let state = tempfile::tempdir().unwrap();
    host.exec("nft", &["add", "table", "inet", "other"]);
    host.exec(
        "nft",
        &[
            "add",
            "chain",
            "inet",
            "other",
            "input",
            "{ type filter hook input priority 0; policy accept; }",
        ],
    );
    host.exec(
        "nft",
        &[
            "add", "rule", "inet", "other", "input", "tcp", "dport", "22", "counter", "accept",
        ],
    );
    // A table named like Firework's in another family is not Firework's either.
    host.exec("nft", &["add", "table", "inet", "firework"]);
    let other_before = host.exec("nft", &["list", "table", "inet", "other"]);

    host.apply(state.path(), &plan(vec![service("api")]))
        .unwrap();
    host.apply(state.path(), &plan(vec![])).unwrap();
    assert_eq!(
        host.exec("nft", &["list", "table", "inet", "other"]),
        other_before
    );
    host.exec("nft", &["list", "table", "inet", "firework"]);

    host.with_manager(state.path(), async |manager| {
        manager.teardown().await.unwrap()
    });
    assert_eq!(
        host.exec("nft", &["list", "table", "inet", "other"]),
        other_before
    );
    let tables = host.exec("nft", &["list", "tables"]);
    assert!(!tables.contains("table ip firework"), "{tables}");
    assert!(!tables.contains("table bridge firework"), "{tables}");
    assert!(
        link(&host, "fwbr0").is_none(),
        "created bridge left after teardown"
    );
}

#[test]
fn garbage_collection_removes_unknown_services() {
    if skip_unless_root("garbage_collection_removes_unknown_services") {
        return;
    }
    let host = NetNs::new("gc");
    let state = tempfile::tempdir().unwrap();
    let applied = host
        .apply(state.path(), &plan(vec![service("keep"), service("stale")]))
        .unwrap();
    let report = host.with_manager(state.path(), async |manager| {
        let keep = ["keep".to_owned()].into();
        manager.collect_garbage(&keep).await.unwrap()
    });
    assert_eq!(report.removed_services, vec!["stale".to_owned()]);
    assert!(link(&host, &applied.services["stale"].tap).is_none());
    assert!(link(&host, &applied.services["keep"].tap).is_some());
    assert!(
        !host
            .nft_table("bridge")
            .contains(&applied.services["stale"].tap)
    );
}

/// Builds host, client and two guests: `web` publishes port 8080 -> 80, `other` is
/// another tenant. The client reaches the host over a veth pair that is the plan's
/// `out_interface`.
struct Topology {
    host: NetNs,
    client: NetNs,
    web: Guest,
    other: Guest,
    state: tempfile::TempDir,
    web_address: Ipv4Addr,
    other_address: Ipv4Addr,
}

fn topology(tag: &str) -> Topology {
    let host = NetNs::new(&format!("{tag}h"));
    let client = NetNs::new(&format!("{tag}c"));
    host.ip(&[
        "link",
        "add",
        "vout",
        "type",
        "veth",
        "peer",
        "name",
        "vin",
        "netns",
        &client.name,
    ]);
    host.ip(&["addr", "add", "10.99.0.1/24", "dev", "vout"]);
    host.ip(&["link", "set", "vout", "up"]);
    client.ip(&["addr", "add", "10.99.0.2/24", "dev", "vin"]);
    client.ip(&["link", "set", "vin", "up"]);
    host.exec("sysctl", &["-qw", "net.ipv4.ip_forward=1"]);

    let state = tempfile::tempdir().unwrap();
    let applied = host.apply(state.path(), &topology_plan(false)).unwrap();
    let web = &applied.services["web"];
    let other = &applied.services["other"];
    let web_guest = Guest::attach(
        &format!("{tag}w"),
        &host,
        &web.tap,
        &web.address.to_string(),
        24,
        "10.77.0.1",
    );
    let other_guest = Guest::attach(
        &format!("{tag}o"),
        &host,
        &other.tap,
        &other.address.to_string(),
        24,
        "10.77.0.1",
    );
    Topology {
        web_address: web.address,
        other_address: other.address,
        host,
        client,
        web: web_guest,
        other: other_guest,
        state,
    }
}

fn topology_plan(linked: bool) -> NetworkPlan {
    let mut web = service("web");
    web.port_forwards = vec![
        forward(8080, 80),
        PortForward {
            host_port: 5353,
            vm_port: 53,
            protocol: Protocol::Udp,
        },
    ];
    let mut other = service("other");
    if linked {
        other.links = vec!["web".into()];
    }
    let mut desired = plan(vec![web, other]);
    desired.out_interface = Some("vout".into());
    desired
}

#[test]
fn port_forward_carries_tcp() {
    if skip_unless_root("port_forward_carries_tcp") {
        return;
    }
    let net = topology("pf");
    let _server = Server::start(&net.web.ns, "web", 80);

    // From outside, through the out_interface: the guest gets the real client address.
    let reply = fetch_with_retry(&net.client, "10.99.0.1:8080", 5).unwrap();
    assert_eq!(reply, "web saw 10.99.0.2");

    // From the host itself (hairpin through the output chain), by a host address
    // and by loopback; both are masqueraded to the gateway.
    let reply = fetch_with_retry(&net.host, "10.99.0.1:8080", 5).unwrap();
    assert_eq!(reply, "web saw 10.77.0.1");
    let reply = fetch_with_retry(&net.host, "127.0.0.1:8080", 5).unwrap();
    assert_eq!(reply, "web saw 10.77.0.1");

    // From another guest through the published port (hairpin between guests).
    let reply = fetch_with_retry(&net.other.ns, "10.99.0.1:8080", 5).unwrap();
    assert_eq!(reply, "web saw 10.77.0.1");

    // Guest traffic out of out_interface is masqueraded to the host's address.
    let _client_server = Server::start(&net.client, "client", 9000);
    let reply = fetch_with_retry(&net.web.ns, "10.99.0.2:9000", 5).unwrap();
    assert_eq!(reply, "client saw 10.99.0.1");
    drop(net.state);
}

#[test]
fn tenants_cannot_reach_each_other() {
    if skip_unless_root("tenants_cannot_reach_each_other") {
        return;
    }
    let net = topology("iso");
    // Port 81 is not published, so only a link opens it to the other guest.
    let _server = Server::start(&net.web.ns, "web", 81);
    let _agent_api = Server::start(&net.host, "agent", 7070);
    let _metadata = Server::start(&net.host, "metadata", 7071);
    net.host
        .ip(&["addr", "add", "169.254.169.254/32", "dev", "lo"]);
    let web_direct = format!("{}:81", net.web_address);
    let short = Duration::from_secs(2);

    // Unlinked: the other tenant reaches neither web, nor the agent API, nor a
    // link-local address on the host.
    let blocked = fetch(&net.other.ns, &web_direct, short);
    assert!(blocked.is_err(), "other reached web directly: {blocked:?}");
    let api = fetch(&net.other.ns, "10.77.0.1:7070", short);
    assert!(api.is_err(), "guest reached the agent API: {api:?}");
    let metadata = fetch(&net.other.ns, "169.254.169.254:7071", short);
    assert!(
        metadata.is_err(),
        "guest reached a link-local address: {metadata:?}"
    );
    // The host itself still reaches the agent API, and the guest other host ports.
    assert_eq!(
        fetch_with_retry(&net.host, "127.0.0.1:7070", 3).unwrap(),
        "agent saw 127.0.0.1"
    );
    assert_eq!(
        fetch_with_retry(&net.other.ns, "10.77.0.1:7071", 3).unwrap(),
        format!("metadata saw {}", net.other_address)
    );

    // Linked: the same connection now succeeds, so the drop above was the isolation.
    net.host
        .apply(net.state.path(), &topology_plan(true))
        .unwrap();
    let reply = fetch_with_retry(&net.other.ns, &web_direct, 5).unwrap();
    assert_eq!(reply, format!("web saw {}", net.other_address));

    // With isolation off, the agent API and link-local addresses are reachable.
    let mut open = topology_plan(false);
    open.isolation = false;
    net.host.apply(net.state.path(), &open).unwrap();
    let reply = fetch_with_retry(&net.other.ns, "10.77.0.1:7070", 5).unwrap();
    assert_eq!(reply, format!("agent saw {}", net.other_address));
    let reply = fetch_with_retry(&net.other.ns, "169.254.169.254:7071", 5).unwrap();
    assert_eq!(reply, format!("metadata saw {}", net.other_address));
}

#[test]
fn udp_port_forward_carries_datagrams() {
    if skip_unless_root("udp_port_forward_carries_datagrams") {
        return;
    }
    let net = topology("udp");
    let _server = UdpEchoServer::start(&net.web.ns, "web", 53);
    let reply = query_udp(&net.client, "10.99.0.1:5353", 5).unwrap();
    assert_eq!(reply, "web saw 10.99.0.2");
    // The TCP forward on the same guest does not carry UDP.
    let tcp_only = query_udp(&net.client, "10.99.0.1:8080", 1);
    assert!(
        tcp_only.is_err(),
        "UDP passed a TCP-only forward: {tcp_only:?}"
    );
}

#[test]
fn spoofed_source_address_is_dropped() {
    if skip_unless_root("spoofed_source_address_is_dropped") {
        return;
    }
    let net = topology("spoof");
    let _host_server = Server::start(&net.host, "host", 7071);
    let own = format!("{}/24", net.other_address);

    // Positive control with the assigned address.
    assert_eq!(
        fetch_with_retry(&net.other.ns, "10.77.0.1:7071", 3).unwrap(),
        format!("host saw {}", net.other_address)
    );

    // The same guest with an address it was not given reaches nothing.
    net.other.ns.ip(&["addr", "flush", "dev", "eth0"]);
    net.other
        .ns
        .ip(&["addr", "add", "10.77.0.250/24", "dev", "eth0"]);
    net.other
        .ns
        .ip(&["route", "add", "default", "via", "10.77.0.1"]);
    let spoofed = fetch(&net.other.ns, "10.77.0.1:7071", Duration::from_secs(2));
    assert!(spoofed.is_err(), "spoofed source got through: {spoofed:?}");

    // Back on its own address, it works again.
    net.other.ns.ip(&["addr", "flush", "dev", "eth0"]);
    net.other.ns.ip(&["addr", "add", &own, "dev", "eth0"]);
    net.other
        .ns
        .ip(&["route", "add", "default", "via", "10.77.0.1"]);
    assert_eq!(
        fetch_with_retry(&net.other.ns, "10.77.0.1:7071", 3).unwrap(),
        format!("host saw {}", net.other_address)
    );
}

#[test]
fn guest_cannot_reach_host_loopback() {
    if skip_unless_root("guest_cannot_reach_host_loopback") {
        return;
    }
    let net = topology("lo");
    let _host_server = Server::start(&net.host, "host", 7071);
    // Firework sets route_localnet on its bridge for loopback port forwards, so the
    // host would accept 127.0.0.0/8 from the bridge. Make the guest send there.
    let guest = &net.other.ns;
    guest.exec("sysctl", &["-qw", "net.ipv4.conf.eth0.route_localnet=1"]);
    guest.ip(&[
        "route",
        "del",
        "local",
        "127.0.0.0/8",
        "dev",
        "lo",
        "table",
        "local",
    ]);
    guest.ip(&[
        "route",
        "add",
        "127.1.2.3/32",
        "via",
        "10.77.0.1",
        "dev",
        "eth0",
    ]);

    assert_eq!(
        fetch_with_retry(guest, "10.77.0.1:7071", 3).unwrap(),
        format!("host saw {}", net.other_address)
    );
    let loopback = fetch(guest, "127.1.2.3:7071", Duration::from_secs(2));
    assert!(
        loopback.is_err(),
        "guest reached the host's loopback: {loopback:?}"
    );
}

/// Returns the IPv6 link-local address of `device` in `ns` once duplicate address
/// detection has finished, polling for up to ten seconds.
fn link_local_v6(ns: &NetNs, device: &str) -> String {
    for _ in 0..100 {
        let output = ns.ip(&["-6", "-o", "addr", "show", "dev", device, "scope", "link"]);
        if !output.contains("tentative")
            && let Some(address) = output
                .split_whitespace()
                .skip_while(|word| *word != "inet6")
                .nth(1)
        {
            return address.split('/').next().unwrap().to_owned();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "{device} in {} got no usable IPv6 link-local address",
        ns.name
    );
}

#[test]
fn guest_ipv6_is_dropped_under_isolation() {
    if skip_unless_root("guest_ipv6_is_dropped_under_isolation") {
        return;
    }
    let net = topology("v6");
    let _host_server = Server::start_on(&net.host, "host", "[::]:7072".parse().unwrap());
    let bridge = link_local_v6(&net.host, "fwbr0");
    link_local_v6(&net.other.ns, "eth0");
    // Rust's socket address parser takes the scope as an interface index.
    let link = net.other.ns.ip(&["-o", "link", "show", "eth0"]);
    let index = link.split(':').next().unwrap().trim().to_owned();
    let target = format!("[{bridge}%{index}]:7072");

    let blocked = fetch(&net.other.ns, &target, Duration::from_secs(2));
    assert!(
        blocked.is_err(),
        "guest reached the host over IPv6: {blocked:?}"
    );

    // Positive control: without isolation the same connection works.
    let mut open = topology_plan(false);
    open.isolation = false;
    net.host.apply(net.state.path(), &open).unwrap();
    let reply = fetch_with_retry(&net.other.ns, &target, 5).unwrap();
    assert!(reply.starts_with("host saw fe80::"), "{reply}");
}
