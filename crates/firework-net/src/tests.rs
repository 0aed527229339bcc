//! Unit tests of [`NetworkManager`] against the recording fake backend.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use serde_json::json;

use crate::NetError;
use crate::backend::LinkKind;
use crate::fake::FakeBackend;
use crate::manager::NetworkManager;
use crate::plan::{NetworkPlan, PortForward, Protocol, ServiceNetwork};
use crate::state::NetworkState;

fn service(name: &str) -> ServiceNetwork {
    ServiceNetwork {
        name: name.to_owned(),
        tap_name: None,
        port_forwards: Vec::new(),
        links: Vec::new(),
    }
}

fn plan(services: Vec<ServiceNetwork>) -> NetworkPlan {
    NetworkPlan {
        bridge: "fwbr0".into(),
        subnet: "10.77.0.0/24".parse().unwrap(),
        gateway: Ipv4Addr::new(10, 77, 0, 1),
        out_interface: Some("eth0".into()),
        isolation: true,
        agent_api_port: Some(8080),
        mtu: Some(1400),
        tap_owner_uid: None,
        services,
    }
}

fn manager() -> (NetworkManager<FakeBackend>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (NetworkManager::new(FakeBackend::default(), dir.path()), dir)
}

#[tokio::test]
async fn apply_twice_is_idempotent() {
    let (manager, _dir) = manager();
    let mut web = service("web");
    web.port_forwards.push(PortForward {
        host_port: 8443,
        vm_port: 443,
        protocol: Protocol::Tcp,
    });
    let plan = plan(vec![web, service("db")]);

    let first = manager.apply(&plan).await.unwrap();
    let calls = manager.backend().take_calls();
    assert!(
        calls.contains(&"create_bridge fwbr0".to_owned()),
        "{calls:?}"
    );
    assert!(
        calls.contains(&"add_address fwbr0 10.77.0.1/24".to_owned()),
        "{calls:?}"
    );
    let web_tap = first.services["web"].tap.clone();
    assert!(
        calls.contains(&format!("create_tap {web_tap} None")),
        "{calls:?}"
    );
    assert!(
        calls.contains(&format!(
            "configure_link {web_tap} Some(\"fwbr0\") Some(1400)"
        )),
        "{calls:?}"
    );
    let first_ruleset = manager.backend().last_ruleset();

    let second = manager.apply(&plan).await.unwrap();
    assert_eq!(first, second);
    let calls = manager.backend().take_calls();
    assert!(!calls.iter().any(|c| c.starts_with("create_")), "{calls:?}");
    assert!(!calls.iter().any(|c| c.starts_with("delete_")), "{calls:?}");
    assert_eq!(manager.backend().last_ruleset(), first_ruleset);
}

#[tokio::test]
async fn kernel_ip_arg_uses_real_netmask() {
    let (manager, _dir) = manager();
    let mut plan = plan(vec![service("api")]);
    plan.subnet = "10.20.0.0/23".parse().unwrap();
    plan.gateway = Ipv4Addr::new(10, 20, 0, 1);
    let applied = manager.apply(&plan).await.unwrap();
    let api = &applied.services["api"];
    assert_eq!(
        api.kernel_ip_arg,
        format!("ip={}::10.20.0.1:255.255.254.0::eth0:off", api.address)
    );
}

#[tokio::test]
async fn foreign_requested_tap_is_rejected() {
    let (manager, dir) = manager();
    manager
        .backend()
        .add_link("eth1", LinkKind::Other(Some("dummy".into())));
    let mut api = service("api");
    api.tap_name = Some("eth1".into());

    let err = manager.apply(&plan(vec![api])).await.unwrap_err();
    assert!(matches!(err, NetError::ForeignInterface { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "TAP name \"eth1\" for service \"api\" is an existing interface that Firework did not create; choose another name or remove the network.interface setting"
    );
    assert!(manager.backend().take_calls().is_empty());
    let link = manager.backend().links.lock().unwrap()["eth1"].clone();
    assert_eq!(link.controller, None);
    assert!(!link.up);
    assert_eq!(
        NetworkState::load(dir.path()).unwrap(),
        NetworkState::default()
    );
}

#[tokio::test]
async fn removing_a_service_keeps_other_addresses() {
    let (manager, _dir) = manager();
    let full = manager
        .apply(&plan(vec![service("a"), service("b"), service("c")]))
        .await
        .unwrap();
    manager.backend().take_calls();

    let reduced = manager
        .apply(&plan(vec![service("a"), service("c")]))
        .await
        .unwrap();
    assert_eq!(reduced.services["a"], full.services["a"]);
    assert_eq!(reduced.services["c"], full.services["c"]);
    let calls = manager.backend().take_calls();
    assert!(
        calls.contains(&format!("delete_link {}", full.services["b"].tap)),
        "{calls:?}"
    );
    assert!(
        !manager
            .backend()
            .links
            .lock()
            .unwrap()
            .contains_key(&full.services["b"].tap)
    );

    let added = manager
        .apply(&plan(vec![service("0-first"), service("a"), service("c")]))
        .await
        .unwrap();
    assert_eq!(added.services["a"], full.services["a"]);
    assert_eq!(added.services["c"], full.services["c"]);
}

#[tokio::test]
async fn adopted_bridge_is_not_changed() {
    let (manager, dir) = manager();
    manager.backend().add_link("fwbr0", LinkKind::Bridge);
    let err = manager.apply(&plan(vec![service("a")])).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "bridge \"fwbr0\" was not created by Firework and has no address 10.77.0.1; add it (ip addr add 10.77.0.1/24 dev fwbr0) or let Firework create the bridge"
    );

    manager
        .backend()
        .links
        .lock()
        .unwrap()
        .get_mut("fwbr0")
        .unwrap()
        .addresses
        .push("10.77.0.1/24".parse().unwrap());
    manager.backend().take_calls();
    manager.apply(&plan(vec![service("a")])).await.unwrap();
    let calls = manager.backend().take_calls();
    assert!(
        !calls
            .iter()
            .any(|c| c.contains("fwbr0 ") && !c.starts_with("configure_link fw-")),
        "{calls:?}"
    );
    assert!(
        !calls.contains(&"allow_route_localnet fwbr0".to_owned()),
        "{calls:?}"
    );

    manager.teardown().await.unwrap();
    assert!(
        manager
            .backend()
            .links
            .lock()
            .unwrap()
            .contains_key("fwbr0"),
        "adopted bridge deleted"
    );
    assert_eq!(NetworkState::load(dir.path()).unwrap().services.len(), 0);
}

#[tokio::test]
async fn recorded_tap_replaced_by_other_device_is_kept() {
    let (manager, _dir) = manager();
    let applied = manager.apply(&plan(vec![service("a")])).await.unwrap();
    let tap = applied.services["a"].tap.clone();
    manager.backend().links.lock().unwrap().remove(&tap);
    manager
        .backend()
        .add_link(&tap, LinkKind::Other(Some("veth".into())));

    let err = manager.apply(&plan(vec![])).await.unwrap_err();
    assert!(matches!(err, NetError::NotATap { .. }), "{err:?}");
    assert!(manager.backend().links.lock().unwrap().contains_key(&tap));
}

#[tokio::test]
async fn garbage_collection_removes_unknown_records() {
    let (manager, dir) = manager();
    let applied = manager
        .apply(&plan(vec![service("keep"), service("gone")]))
        .await
        .unwrap();
    manager.backend().add_link("fw-stray-00000", LinkKind::Tun);

    let keep: BTreeSet<String> = ["keep".to_owned()].into();
    let report = manager.collect_garbage(&keep).await.unwrap();
    assert_eq!(report.removed_services, vec!["gone".to_owned()]);
    assert_eq!(report.unrecorded_taps, vec!["fw-stray-00000".to_owned()]);
    let links = manager.backend().links.lock().unwrap().clone();
    assert!(!links.contains_key(&applied.services["gone"].tap));
    assert!(links.contains_key(&applied.services["keep"].tap));
    assert!(
        links.contains_key("fw-stray-00000"),
        "unrecorded TAP was deleted"
    );

    let state = NetworkState::load(dir.path()).unwrap();
    assert_eq!(state.services.keys().collect::<Vec<_>>(), vec!["keep"]);
    let ruleset = manager.backend().last_ruleset();
    let rules = ruleset.rules("bridge", "forward");
    let text = serde_json::to_string(&rules).unwrap();
    assert!(!text.contains(&applied.services["gone"].tap), "{text}");
}

#[tokio::test]
async fn isolation_rules_follow_links() {
    let (manager, _dir) = manager();
    let mut a = service("a");
    a.links.push("b".into());
    let applied = manager
        .apply(&plan(vec![a, service("b"), service("c")]))
        .await
        .unwrap();
    let ruleset = manager.backend().last_ruleset();
    let tap = |name: &str| applied.services[name].tap.clone();

    let bridge_rules = ruleset.rules("bridge", "forward");
    let accepts: Vec<(String, String)> = bridge_rules
        .iter()
        .filter(|expr| expr.as_array().unwrap().last().unwrap() == &json!({"accept": null}))
        .map(|expr| {
            (
                expr[0]["match"]["right"].as_str().unwrap().to_owned(),
                expr[1]["match"]["right"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(accepts, vec![(tap("a"), tap("b")), (tap("b"), tap("a"))]);
    let drop = bridge_rules.last().unwrap();
    assert_eq!(drop[2], json!({"drop": null}));
    let set: Vec<String> =
        serde_json::from_value(drop[0]["match"]["right"]["set"].clone()).unwrap();
    let mut all = vec![tap("a"), tap("b"), tap("c")];
    all.sort();
    assert_eq!(set, all);

    let input = serde_json::to_string(&ruleset.rules("ip", "input")).unwrap();
    assert!(input.contains("\"right\":8080"), "{input}");
    assert!(input.contains("169.254.0.0"), "{input}");

    let mut open = plan(vec![service("a"), service("b")]);
    open.isolation = false;
    manager.apply(&open).await.unwrap();
    let ruleset = manager.backend().last_ruleset();
    assert!(ruleset.rules("bridge", "forward").is_empty());
    assert!(ruleset.rules("ip", "input").is_empty());
}

#[tokio::test]
async fn ruleset_survives_schema_round_trip() {
    let (manager, _dir) = manager();
    let mut web = service("web");
    web.links.push("db".into());
    web.port_forwards = vec![
        PortForward {
            host_port: 80,
            vm_port: 8080,
            protocol: Protocol::Tcp,
        },
        PortForward {
            host_port: 53,
            vm_port: 53,
            protocol: Protocol::Udp,
        },
    ];
    manager
        .apply(&plan(vec![web, service("db")]))
        .await
        .unwrap();
    let ruleset = manager.backend().last_ruleset();
    let typed = ruleset.to_nftables().unwrap();
    assert_eq!(serde_json::to_value(&typed).unwrap(), ruleset.to_json());
}

#[tokio::test]
async fn invalid_plans_are_rejected_before_any_change() {
    let (manager, _dir) = manager();
    let mut dup = service("a");
    dup.port_forwards.push(PortForward {
        host_port: 80,
        vm_port: 80,
        protocol: Protocol::Tcp,
    });
    let mut dup2 = service("b");
    dup2.port_forwards.push(PortForward {
        host_port: 80,
        vm_port: 81,
        protocol: Protocol::Tcp,
    });
    let err = manager.apply(&plan(vec![dup, dup2])).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid network plan: host port 80/tcp is forwarded by both \"a\" and \"b\""
    );

    let mut bad_gateway = plan(vec![]);
    bad_gateway.gateway = Ipv4Addr::new(10, 77, 0, 255);
    let err = manager.apply(&bad_gateway).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid network plan: gateway 10.77.0.255 is not a host address of subnet 10.77.0.0/24"
    );

    let mut api_clash = service("a");
    api_clash.port_forwards.push(PortForward {
        host_port: 8080,
        vm_port: 80,
        protocol: Protocol::Tcp,
    });
    let err = manager.apply(&plan(vec![api_clash])).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid network plan: host port 8080 of service \"a\" is the agent API port"
    );

    let mut out_is_bridge = plan(vec![]);
    out_is_bridge.out_interface = Some("fwbr0".into());
    let err = manager.apply(&out_is_bridge).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid network plan: out_interface \"fwbr0\" is the guest bridge; name the host's uplink instead"
    );

    let mut long_tap = service("a");
    long_tap.tap_name = Some("this-name-is-too-long".into());
    let err = manager.apply(&plan(vec![long_tap])).await.unwrap_err();
    assert!(
        matches!(err, NetError::InvalidInterfaceName { .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "the TAP name of service \"a\" is not a valid interface name"
    );
    let source = std::error::Error::source(&err).unwrap().to_string();
    assert_eq!(
        source,
        "invalid interface name \"this-name-is-too-long\": name is longer than 15 bytes"
    );
    assert!(manager.backend().take_calls().is_empty());
}

#[tokio::test]
async fn changed_tap_name_deletes_the_old_tap() {
    let (manager, _dir) = manager();
    let first = manager.apply(&plan(vec![service("a")])).await.unwrap();
    let old = first.services["a"].tap.clone();
    let mut renamed = service("a");
    renamed.tap_name = Some("tap-a".into());
    let second = manager.apply(&plan(vec![renamed])).await.unwrap();
    assert_eq!(second.services["a"].tap, "tap-a");
    assert_eq!(second.services["a"].address, first.services["a"].address);
    let links = manager.backend().links.lock().unwrap().clone();
    assert!(!links.contains_key(&old), "old TAP {old} still exists");
    assert!(links.contains_key("tap-a"));
}

#[tokio::test]
async fn renamed_bridge_replaces_the_created_one() {
    let (manager, dir) = manager();
    let first = manager.apply(&plan(vec![service("a")])).await.unwrap();
    let mut renamed = plan(vec![service("a")]);
    renamed.bridge = "fwbr1".into();
    manager.apply(&renamed).await.unwrap();

    let links = manager.backend().links.lock().unwrap().clone();
    assert!(!links.contains_key("fwbr0"), "old bridge left behind");
    assert_eq!(links["fwbr1"].kind, LinkKind::Bridge);
    let tap = &links[&first.services["a"].tap];
    assert_eq!(tap.controller.as_deref(), Some("fwbr1"));
    let state = NetworkState::load(dir.path()).unwrap();
    assert_eq!(state.created_bridge.as_deref(), Some("fwbr1"));
}

#[tokio::test]
async fn assign_records_without_touching_devices() {
    let (manager, dir) = manager();
    let assigned = manager
        .assign(&plan(vec![service("a"), service("b")]))
        .await
        .unwrap();
    assert!(manager.backend().take_calls().is_empty());
    assert!(manager.backend().links.lock().unwrap().is_empty());

    let state = NetworkState::load(dir.path()).unwrap();
    assert_eq!(state.services["a"].address, assigned.services["a"].address);
    assert_eq!(state.services["b"].tap, assigned.services["b"].tap);

    let applied = manager
        .apply(&plan(vec![service("a"), service("b")]))
        .await
        .unwrap();
    assert_eq!(applied, assigned);
}

#[tokio::test]
async fn remove_service_keeps_the_others() {
    let (manager, _dir) = manager();
    let mut web = service("web");
    web.port_forwards.push(PortForward {
        host_port: 80,
        vm_port: 8080,
        protocol: Protocol::Tcp,
    });
    let applied = manager
        .apply(&plan(vec![web, service("db")]))
        .await
        .unwrap();
    manager.remove_service("web").await.unwrap();

    let links = manager.backend().links.lock().unwrap().clone();
    assert!(!links.contains_key(&applied.services["web"].tap));
    assert!(links.contains_key(&applied.services["db"].tap));
    let ruleset = manager.backend().last_ruleset();
    assert!(ruleset.rules("ip", "prerouting").is_empty());
    let bridge = serde_json::to_string(&ruleset.rules("bridge", "forward")).unwrap();
    assert!(bridge.contains(&applied.services["db"].tap), "{bridge}");
    assert!(!bridge.contains(&applied.services["web"].tap), "{bridge}");
}

#[tokio::test]
async fn tap_taken_over_by_new_service_survives() {
    let (manager, dir) = manager();
    let first = manager.apply(&plan(vec![service("old")])).await.unwrap();
    let tap = first.services["old"].tap.clone();

    let mut new = service("new");
    new.tap_name = Some(tap.clone());
    let second = manager.apply(&plan(vec![new])).await.unwrap();
    assert_eq!(second.services["new"].tap, tap);
    assert!(
        manager.backend().links.lock().unwrap().contains_key(&tap),
        "TAP {tap} deleted"
    );
    let state = NetworkState::load(dir.path()).unwrap();
    assert_eq!(state.services.keys().collect::<Vec<_>>(), vec!["new"]);
}

#[tokio::test]
async fn service_order_does_not_change_ruleset() {
    let (manager, _dir) = manager();
    let mut web = service("web");
    web.port_forwards.push(PortForward {
        host_port: 80,
        vm_port: 8080,
        protocol: Protocol::Tcp,
    });
    let mut db = service("db");
    db.port_forwards.push(PortForward {
        host_port: 5432,
        vm_port: 5432,
        protocol: Protocol::Tcp,
    });
    manager
        .apply(&plan(vec![web.clone(), db.clone()]))
        .await
        .unwrap();
    let first = manager.backend().last_ruleset();
    manager.apply(&plan(vec![db, web])).await.unwrap();
    assert_eq!(manager.backend().last_ruleset(), first);
}
