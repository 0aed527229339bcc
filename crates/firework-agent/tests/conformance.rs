//! The agent and reconciler vectors of the Go firework, read in place from
//! `../shared/conformance/go-firework` next to the repository. Vectors whose upstream
//! behaviour we replace on purpose are listed in `SKIPPED` with the reason.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use firework_agent::capacity::{CapacityReader, sum_resources};
use firework_agent::desired::{BuildContext, LabeledService, build_desired};
use firework_agent::driver::VmDriver;
use firework_agent::error::BoxError;
use firework_agent::executor::{Executor, ExecutorSettings};
use firework_agent::hooks::{HealthGate, RunningIsReady};
use firework_agent::intent::IntentStore;
use firework_agent::plan::{Action, ActionKind, Plan, plan};
use firework_agent::spec::{ActualVm, DesiredVm, Intent};
use firework_model::agent::UpdateStrategy;
use firework_model::node::{Service, parse_node_config};
use firework_model::registry::Resources;
use firework_net::{AppliedNetwork, ServiceNetworkState, mac_for_address};
use firework_vmm::RecordState;
use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::{Value, json};
use support::{FakeVms, FixedCapacity};
use tokio::sync::watch;

const SKIPPED: &[(&str, &str)] = &[
    (
        "agent-network-mac-past-last-octet",
        "guest MACs are derived from stable per-service addresses, not a counter",
    ),
    (
        "agent-network-status-address",
        "guest addresses are stable per service; 172.16.0.2 is not guaranteed",
    ),
    (
        "agent-tick-unchanged-revision-refreshes-routes",
        "route sync is a hook here; its vectors belong to the route component",
    ),
];

fn vectors_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/go-firework");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipping conformance vectors: {} is absent", dir.display());
        None
    }
}

fn vectors(prefix: &str) -> Vec<PathBuf> {
    let Some(dir) = vectors_dir() else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    found.sort();
    found.retain(|path| {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        match SKIPPED.iter().find(|(skipped, _)| *skipped == name) {
            Some((_, reason)) => {
                eprintln!("skipping vector {name}: {reason}");
                false
            }
            None => true,
        }
    });
    found
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Parses a loose service map through the strict node parser, filling the fields the
/// vector leaves out with placeholders that do not influence the result.
fn service(value: &Value) -> Service {
    let mut value = value.clone();
    let map = value.as_object_mut().unwrap();
    map.entry("image").or_insert(json!("/img/placeholder"));
    map.entry("kernel").or_insert(json!("/kern"));
    map.entry("vcpus").or_insert(json!(1));
    map.entry("memory_mb").or_insert(json!(128));
    if let Some(network) = map.get_mut("network").and_then(Value::as_object_mut) {
        network.remove("guest_mac");
    }
    let document = json!({"node": "test-node", "services": [value]});
    let parsed = parse_node_config(document.to_string().as_bytes(), "vector.yaml")
        .unwrap_or_else(|e| panic!("{e}"));
    parsed.value.services.into_iter().next().unwrap()
}

/// Builds desired VMs; a networked service gets the `guest_ip` its config names, or
/// 172.16.0.2, the way the network layer would hand out a recorded address.
fn build(services: &[Service], raw: &[Value]) -> Vec<DesiredVm> {
    let mut network = AppliedNetwork {
        subnet: "172.16.0.0/24".parse().unwrap(),
        gateway: Ipv4Addr::new(172, 16, 0, 1),
        services: BTreeMap::new(),
    };
    for (service, raw) in services.iter().zip(raw) {
        if service.network.is_some() {
            let address: Ipv4Addr = raw["network"]["guest_ip"]
                .as_str()
                .unwrap_or("172.16.0.2")
                .parse()
                .unwrap();
            network.services.insert(
                service.name.clone(),
                ServiceNetworkState {
                    tap: service
                        .network
                        .as_ref()
                        .and_then(|n| n.interface.clone())
                        .unwrap_or_else(|| format!("fw-{}", service.name)),
                    address,
                    mac: mac_for_address(address),
                    kernel_ip_arg: String::new(),
                },
            );
        }
    }
    let labeled: Vec<LabeledService> = services
        .iter()
        .map(|service| LabeledService {
            label: "test-node".to_owned(),
            revision: "r1".to_owned(),
            service: service.clone(),
        })
        .collect();
    let versions = services
        .iter()
        .map(|s| (s.name.clone(), Ok("v1".to_owned())))
        .collect();
    let (built, failed) = build_desired(
        &labeled,
        BuildContext {
            network: Some(&network),
            image_versions: &versions,
        },
    );
    assert!(failed.is_empty(), "{failed:?}");
    built
}

fn actual_from(vm: &DesiredVm, state: RecordState) -> ActualVm {
    ActualVm {
        service: vm.service.clone(),
        state,
        pid: Some(1),
        vm_hash: vm.vm_hash.clone(),
        intent: Some(Intent {
            label: vm.label.clone(),
            revision: vm.revision.clone(),
            hash: vm.hash.clone(),
            fingerprint: vm.fingerprint.clone(),
        }),
    }
}

fn record_state(text: &str) -> RecordState {
    match text {
        "running" => RecordState::Running,
        "stopped" => RecordState::Stopped,
        _ => RecordState::Exited,
    }
}

fn loose_services(values: &[Value]) -> (Vec<Service>, Vec<Value>) {
    (values.iter().map(service).collect(), values.to_vec())
}

#[test]
fn reconciler_plan_vectors() {
    for dir in vectors("reconciler-plan-") {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let desired_doc = yaml(&dir.join("input/desired.yaml"));
        let desired_raw: Vec<Value> = desired_doc["services"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let (services, raw) = loose_services(&desired_raw);
        let desired = build(&services, &raw);

        let actual_doc = yaml(&dir.join("input/actual.yaml"));
        let mut actual = BTreeMap::new();
        for entry in actual_doc.as_array().unwrap() {
            let (services, raw) = loose_services(std::slice::from_ref(&entry["config"]));
            let vm = &build(&services, &raw)[0];
            actual.insert(
                vm.service.clone(),
                actual_from(vm, record_state(entry["state"].as_str().unwrap())),
            );
        }
        let result = plan(&desired, &actual, &BTreeSet::new());
        let expected = yaml(&dir.join("expected.yaml"));

        if let Some(counts) = expected["action_counts"].as_object() {
            let summary = result.summary();
            for (kind, count) in counts {
                let got = match kind.as_str() {
                    "create" => summary.create,
                    "update" => summary.update,
                    "delete" => summary.delete,
                    other => panic!("{name}: unknown kind {other}"),
                };
                assert_eq!(got as u64, count.as_u64().unwrap(), "{name}: {kind}");
            }
        }
        for want in expected["actions"].as_array().cloned().unwrap_or_default() {
            let service = want["service"].as_str().unwrap();
            let action = result
                .actions
                .iter()
                .find(|a| a.service == service)
                .unwrap_or_else(|| panic!("{name}: no action for {service}"));
            let mut kind = want["type"].as_str().unwrap().to_owned();
            if name == "reconciler-plan-restart-failed" {
                // Upstream calls the restart of a crashed VM an update; here a VM that does
                // not run is created again.
                eprintln!("{name}: expecting create where upstream says {kind}");
                kind = "create".to_owned();
            }
            let got = match action.kind {
                ActionKind::Create => "create",
                ActionKind::Update => "update",
                ActionKind::Delete => "delete",
                ActionKind::Unchanged => "unchanged",
            };
            assert_eq!(got, kind, "{name}: {service}");
            let previous = &actual.get(service).and_then(|a| a.intent.clone());
            if let Some(teardown) = want.get("teardown_config") {
                let fingerprint = &previous.as_ref().unwrap().fingerprint;
                assert!(fingerprint.network.is_some(), "{name}");
                assert_eq!(
                    fingerprint.port_forwards.len() as u64,
                    teardown["port_forward_count"].as_u64().unwrap(),
                    "{name}"
                );
            }
            if let Some(config) = want.get("previous_config") {
                let fingerprint = &previous.as_ref().unwrap().fingerprint;
                let ip = config["network"]["guest_ip"].as_str().unwrap();
                assert_eq!(
                    fingerprint.network.as_ref().unwrap().guest_ip.to_string(),
                    ip,
                    "{name}"
                );
                let port = config["port_forwards"][0]["host_port"].as_u64().unwrap();
                assert!(
                    fingerprint.port_forwards[0].starts_with(&format!("{port}:")),
                    "{name}"
                );
            }
        }
        eprintln!("vector {name}: ok");
    }
}

#[test]
fn reconciler_change_vectors() {
    for dir in vectors("reconciler-change-") {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let desired_raw = yaml(&dir.join("input/desired.yaml"));
        let running_raw = yaml(&dir.join("input/running.yaml"));
        let desired = build(&[service(&desired_raw)], std::slice::from_ref(&desired_raw));
        let running = build(&[service(&running_raw)], std::slice::from_ref(&running_raw));
        let actual = BTreeMap::from([(
            running[0].service.clone(),
            actual_from(&running[0], RecordState::Running),
        )]);
        let result = plan(&desired, &actual, &BTreeSet::new());
        let expected = yaml(&dir.join("expected.yaml"));
        let needs_update = result.actions[0].kind == ActionKind::Update;
        assert_eq!(
            needs_update,
            expected["needs_update"].as_bool().unwrap(),
            "{name}: {:?}",
            result.actions
        );
        eprintln!("vector {name}: ok ({:?})", result.actions[0].changed);
    }
}

/// A gate that asks the executor to shut down after the first ready check, which cancels
/// the pause before the next rolling update.
#[derive(Debug)]
struct ShutdownAfterFirst(watch::Sender<bool>);

impl HealthGate for ShutdownAfterFirst {
    fn wait_ready<'a>(&'a self, _vm: &'a DesiredVm) -> BoxFuture<'a, Result<(), BoxError>> {
        let _ = self.0.send(true);
        async { Ok(()) }.boxed()
    }
}

#[tokio::test(start_paused = true)]
async fn reconciler_apply_vectors() {
    for dir in vectors("reconciler-apply-") {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let vms = Arc::new(FakeVms::default());
        let state = tempfile::tempdir().unwrap();
        let intents = IntentStore::open(state.path()).unwrap();

        let instances = yaml(&dir.join("input/instances.yaml"));
        for instance in instances.as_array().unwrap() {
            let (services, raw) = loose_services(std::slice::from_ref(&instance["config"]));
            let vm = build(&services, &raw).remove(0);
            vms.start(vm.vm.clone()).await.unwrap();
        }
        vms.take_calls();

        let mut desired = Vec::new();
        let mut actions = Vec::new();
        for entry in yaml(&dir.join("input/actions.yaml")).as_array().unwrap() {
            let kind = match entry["type"].as_str().unwrap() {
                "create" => ActionKind::Create,
                "update" => ActionKind::Update,
                _ => ActionKind::Delete,
            };
            let service_name = entry["service"]["name"].as_str().unwrap().to_owned();
            if kind != ActionKind::Delete {
                let (services, raw) = loose_services(std::slice::from_ref(&entry["service"]));
                desired.push(build(&services, &raw).remove(0));
            }
            actions.push(Action {
                kind,
                service: service_name,
                label: None,
                changed: Vec::new(),
                reason: "vector".to_owned(),
            });
        }
        let strategy_doc = yaml(&dir.join("input/strategy.yaml"));
        let strategy = match strategy_doc["update_strategy"].as_str().unwrap_or("") {
            "rolling" => UpdateStrategy::Rolling,
            _ => UpdateStrategy::AllAtOnce,
        };
        let delay = strategy_doc["update_delay"]
            .as_str()
            .unwrap_or("0s")
            .parse::<firework_model::GoDuration>()
            .unwrap()
            .0;
        let interrupted = dir.join("input/faults.yaml").exists();
        let (stop_tx, stop_rx) = watch::channel(false);
        let gate: Box<dyn HealthGate> = if interrupted {
            Box::new(ShutdownAfterFirst(stop_tx))
        } else {
            Box::new(RunningIsReady)
        };
        let by_name: BTreeMap<&str, &DesiredVm> =
            desired.iter().map(|vm| (vm.service.as_str(), vm)).collect();
        let executor = Executor {
            vms: vms.as_ref(),
            intents: &intents,
            gate: gate.as_ref(),
            settings: ExecutorSettings {
                parallelism: 4,
                strategy,
                update_delay: delay,
            },
            shutdown: stop_rx,
            health: None,
            records: None,
        };
        let report = executor.apply(&Plan { actions }, &by_name).await;

        let expected = yaml(&dir.join("expected.yaml"));
        let starts = vms
            .take_calls()
            .iter()
            .filter(|c| c.starts_with("start "))
            .count();
        if let Some(calls) = expected["start_calls"].as_u64() {
            assert_eq!(starts as u64, calls, "{name}");
        }
        if let Some(pauses) = expected["delays_between_updates"].as_u64() {
            assert_eq!(report.pauses as u64, pauses, "{name}");
        }
        if let Some(after) = expected["instances_after"].as_array() {
            let want: BTreeSet<&str> = after.iter().map(|v| v.as_str().unwrap()).collect();
            let running = vms.running();
            let got: BTreeSet<&str> = running.iter().map(String::as_str).collect();
            assert_eq!(got, want, "{name}");
        }
        match expected["outcome"].as_str() {
            Some("error") => assert!(
                !report.skipped.is_empty() || report.failures().count() > 0,
                "{name}: expected the apply to stop early"
            ),
            Some("ok") => {
                assert!(report.skipped.is_empty(), "{name}");
                assert_eq!(report.failures().count(), 0, "{name}");
            }
            _ => {}
        }
        eprintln!("vector {name}: ok");
    }
}

#[test]
fn agent_env_vectors() {
    for dir in vectors("agent-env-")
        .into_iter()
        .chain(vectors("agent-network-ip-"))
    {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let node = yaml(&dir.join("input/node.yaml"));
        let raw: Vec<Value> = node["services"].as_array().cloned().unwrap();
        let (services, raw) = loose_services(&raw);
        let built = build(&services, &raw);
        let expected = yaml(&dir.join("expected.yaml"));
        for want in expected["services"].as_array().unwrap() {
            let vm = built
                .iter()
                .find(|vm| vm.service == want["name"].as_str().unwrap())
                .unwrap();
            let tokens: Vec<&str> = vm.vm.kernel_args.split(' ').collect();
            let mut last = None;
            for token in want["kernel_args_token_order"].as_array().unwrap() {
                let token = token.as_str().unwrap();
                let position = tokens.iter().position(|t| *t == token).unwrap_or_else(|| {
                    panic!("{name}: {token} missing from {:?}", vm.vm.kernel_args)
                });
                assert!(last < Some(position), "{name}: {token} out of order");
                last = Some(position);
            }
            if let Some(absent) = want["kernel_args_must_not_contain"].as_str() {
                assert!(!vm.vm.kernel_args.contains(absent), "{name}");
            }
        }
        eprintln!("vector {name}: ok");
    }
}

#[test]
fn agent_capacity_vectors() {
    for dir in vectors("agent-capacity-") {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let expected = yaml(&dir.join("expected.yaml"));
        if let Some(used) = expected.get("used") {
            let node = yaml(&dir.join("input/node.yaml"));
            let raw: Vec<Value> = node["services"].as_array().cloned().unwrap();
            let services: Vec<Service> = raw.iter().map(service).collect();
            let total = sum_resources(&services);
            assert_eq!(
                u64::from(total.vcpus),
                used["vcpus"].as_u64().unwrap(),
                "{name}"
            );
            assert_eq!(
                total.memory_mb,
                used["memory_mb"].as_u64().unwrap(),
                "{name}"
            );
        } else if let Some(reads) = expected["reads"].as_array() {
            let script = yaml(&dir.join("input/capacity-reads.yaml"));
            let source = Scripted(std::sync::Mutex::new(script.as_array().unwrap().clone()));
            let mut reader = CapacityReader::new(Box::new(source));
            for want in reads {
                let got = reader.read();
                assert_eq!(got.is_ok(), want["ok"].as_bool().unwrap(), "{name}");
                let got = got.unwrap();
                assert_eq!(
                    u64::from(got.vcpus),
                    want["vcpus"].as_u64().unwrap(),
                    "{name}"
                );
                assert_eq!(got.memory_mb, want["memory_mb"].as_u64().unwrap(), "{name}");
            }
        } else {
            run_capacity_tick(&dir, &name, &expected);
        }
        eprintln!("vector {name}: ok");
    }
}

#[derive(Debug)]
struct Scripted(std::sync::Mutex<Vec<Value>>);

impl firework_agent::capacity::CapacitySource for Scripted {
    fn read(&self) -> std::io::Result<Resources> {
        let next = self.0.lock().unwrap().remove(0);
        if let Some(error) = next["error"].as_str() {
            return Err(std::io::Error::other(error.to_owned()));
        }
        Ok(Resources {
            vcpus: next["vcpus"].as_u64().unwrap() as u32,
            memory_mb: next["memory_mb"].as_u64().unwrap(),
        })
    }
}

/// Runs one tick of an agent over the vector's node file with the injected host capacity.
fn run_capacity_tick(dir: &Path, name: &str, expected: &Value) {
    let world = support::World::new();
    let node_file = std::fs::read_to_string(dir.join("input/nodes/web.yaml")).unwrap();
    // The vector's image and kernel paths do not exist here; point them at fixtures.
    let node_file = node_file
        .replace(
            "kernel: /kern",
            &format!("kernel: {}", world.images().join("vmlinux").display()),
        )
        .replace(
            "image: /img/heavy",
            &format!("image: {}", world.images().join("a.ext4").display()),
        )
        .replace(
            "image: /img/light",
            &format!("image: {}", world.images().join("a.ext4").display()),
        );
    world.write_label("web", &node_file);
    let capacity = yaml(&dir.join("input/host-capacity.yaml"));
    let reads = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let source = FixedCapacity {
        resources: std::sync::Mutex::new(Some(Resources {
            vcpus: capacity["vcpus"].as_u64().unwrap() as u32,
            memory_mb: capacity["memory_mb"].as_u64().unwrap(),
        })),
        reads: reads.clone(),
    };
    let mut settings = world.settings(&["web"]);
    settings.capacity_check = true;
    let (mut agent, _stop) = world.agent_with(settings, |parts| parts.capacity = Box::new(source));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let report = runtime.block_on(agent.tick("test", false));
    if let Some(count) = expected["vm_count_after_tick"].as_u64() {
        assert_eq!(world.vms.running().len() as u64, count, "{name}");
        assert!(
            !report.held.is_empty(),
            "{name}: the held create must be reported"
        );
    }
    if let Some(count) = expected["capacity_reads_per_tick"].as_u64() {
        assert_eq!(
            reads.load(std::sync::atomic::Ordering::SeqCst) as u64,
            count,
            "{name}"
        );
    }
}
