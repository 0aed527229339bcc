//! Ticks against a real local store and a recording VM driver.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use firework_agent::plan::ActionKind;
use firework_model::agent::UpdateStrategy;
use firework_model::registry::Resources;
use support::{FakeNet, FixedCapacity, World, network_settings};

fn two_services(world: &World) -> String {
    format!(
        "node: web\nservices:\n{}{}",
        world.service("alpha", "a.ext4", ""),
        world.service("beta", "b.ext4", "")
    )
}

#[tokio::test]
async fn tick_creates_then_leaves_alone() {
    let world = World::new();
    world.write_label("web", &two_services(&world));
    let (mut agent, _stop) = world.agent(world.settings(&["web"]));

    let report = agent.tick("test", false).await;
    assert_eq!(report.error, None);
    assert_eq!(report.plan.summary().create, 2);
    assert_eq!(world.vms.take_calls(), vec!["start alpha", "start beta"]);

    let report = agent.tick("test", false).await;
    assert_eq!(report.plan.summary().unchanged, 2);
    assert!(world.vms.take_calls().is_empty());
    let status = agent.status();
    let status = status.read().unwrap();
    assert!(status.is_healthy());
    assert_eq!(status.services.len(), 2);
    assert_eq!(status.services[0].state, "running");
    assert!(
        status.services[0]
            .spec_hash
            .as_deref()
            .unwrap()
            .starts_with("sha256:")
    );
    assert!(status.labels[0].revision.is_some());
}

#[tokio::test]
async fn crashed_vm_is_recreated_without_new_revision() {
    let world = World::new();
    world.write_label("web", &two_services(&world));
    let (mut agent, _stop) = world.agent(world.settings(&["web"]));
    agent.tick("test", false).await;
    world.vms.take_calls();

    world.vms.crash("alpha");
    let report = agent.tick("vm-exit", false).await;
    let creates: Vec<_> = report.plan.of_kind(ActionKind::Create).collect();
    assert_eq!(creates.len(), 1);
    assert_eq!(creates[0].service, "alpha");
    assert_eq!(world.vms.take_calls(), vec!["start alpha"]);
}

#[tokio::test]
async fn update_lists_changed_field() {
    let world = World::new();
    world.write_label("web", &two_services(&world));
    let (mut agent, _stop) = world.agent(world.settings(&["web"]));
    agent.tick("test", false).await;
    world.vms.take_calls();

    let changed = format!(
        "node: web\nservices:\n{}{}",
        world
            .service("alpha", "a.ext4", "")
            .replace("memory_mb: 128", "memory_mb: 256"),
        world.service("beta", "b.ext4", "    env:\n      GREETING: hello world\n")
    );
    world.write_label("web", &changed);
    let report = agent.tick("test", false).await;
    let updates: Vec<_> = report.plan.of_kind(ActionKind::Update).collect();
    assert_eq!(updates.len(), 2);
    assert_eq!(updates[0].changed, vec!["memory_mb"]);
    assert_eq!(updates[1].changed, vec!["kernel_args"]);
    assert_eq!(
        world.vms.take_calls(),
        vec!["stop alpha", "start alpha", "stop beta", "start beta"]
    );
    assert_eq!(world.vms.spec("alpha").memory_mib, 256);
    assert!(
        world
            .vms
            .spec("beta")
            .kernel_args
            .contains("firework.env64.GREETING=aGVsbG8gd29ybGQ")
    );
}

#[tokio::test]
async fn replaced_image_content_updates_vm() {
    let world = World::new();
    world.write_label("web", &two_services(&world));
    let (mut agent, _stop) = world.agent(world.settings(&["web"]));
    agent.tick("test", false).await;
    world.vms.take_calls();

    // A write into the image in place, as a guest with a writable root drive does, is not
    // a new image.
    let image = world.images().join("a.ext4");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&image)
        .unwrap();
    std::io::Write::write_all(&mut file, b"written by the guest").unwrap();
    drop(file);
    let report = agent.tick("test", false).await;
    assert_eq!(report.plan.of_kind(ActionKind::Update).count(), 0);

    // A new image arrives by rename, under a new inode.
    let staged = world.images().join("a.ext4.new");
    std::fs::write(&staged, b"new image content").unwrap();
    std::fs::rename(&staged, &image).unwrap();
    let report = agent.tick("test", false).await;
    let updates: Vec<_> = report.plan.of_kind(ActionKind::Update).collect();
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].service, "alpha");
    assert_eq!(updates[0].changed, vec!["image_version"]);
}

#[tokio::test]
async fn store_outage_changes_nothing() {
    let world = World::new();
    world.write_label("web", &two_services(&world));
    let (mut agent, _stop) = world.agent(world.settings(&["web"]));
    agent.tick("test", false).await;
    world.vms.take_calls();

    std::fs::remove_dir_all(world.store_dir()).unwrap();
    let report = agent.tick("test", false).await;
    assert!(
        report
            .error
            .as_deref()
            .unwrap()
            .starts_with("store read failed"),
        "{:?}",
        report.error
    );
    assert_eq!(report.plan.summary().unchanged, 2);
    assert!(world.vms.take_calls().is_empty());
    assert_eq!(world.vms.running(), vec!["alpha", "beta"]);
    assert!(!agent.status().read().unwrap().is_healthy());
}

#[tokio::test]
async fn store_outage_recreates_crashed_vm_from_last_good_state() {
    let world = World::new();
    world.write_label("web", &two_services(&world));
    let (mut agent, _stop) = world.agent(world.settings(&["web"]));
    agent.tick("test", false).await;
    world.vms.take_calls();

    std::fs::remove_dir_all(world.store_dir()).unwrap();
    world.vms.crash("beta");
    agent.tick("test", false).await;
    assert_eq!(world.vms.take_calls(), vec!["start beta"]);
}

#[tokio::test]
async fn first_tick_without_store_does_nothing() {
    let world = World::new();
    let (mut agent, _stop) = world.agent(world.settings(&["web"]));
    let report = agent.tick("test", false).await;
    assert!(
        report
            .error
            .as_deref()
            .unwrap()
            .starts_with("no desired state yet: 1 label(s) failed to read"),
        "{:?}",
        report.error
    );
    assert!(report.plan.actions.is_empty());
}

#[tokio::test]
async fn empty_file_changes_nothing() {
    let world = World::new();
    world.write_label("web", &two_services(&world));
    let (mut agent, _stop) = world.agent(world.settings(&["web"]));
    agent.tick("test", false).await;
    world.vms.take_calls();

    world.write_label("web", "");
    let report = agent.tick("test", false).await;
    assert!(report.error.is_some());
    assert!(world.vms.take_calls().is_empty());
    assert_eq!(world.vms.running(), vec!["alpha", "beta"]);
}

#[tokio::test]
async fn explicit_empty_label_stops_its_vms() {
    let world = World::new();
    world.write_label("web", &two_services(&world));
    world.write_label(
        "db",
        &format!(
            "node: db\nservices:\n{}",
            world.service("gamma", "c.ext4", "")
        ),
    );
    let (mut agent, _stop) = world.agent(world.settings(&["db", "web"]));
    agent.tick("test", false).await;
    assert_eq!(world.vms.running(), vec!["alpha", "beta", "gamma"]);
    world.vms.take_calls();

    world.write_label("web", "node: web\nservices: []\n");
    let report = agent.tick("test", false).await;
    assert!(report.held.is_empty(), "{:?}", report.held);
    let mut calls = world.vms.take_calls();
    calls.sort();
    assert_eq!(calls, vec!["delete alpha", "delete beta"]);
    assert_eq!(world.vms.running(), vec!["gamma"]);
}

#[tokio::test]
async fn all_labels_explicitly_empty_deletes_everything() {
    let world = World::new();
    world.write_label("web", &two_services(&world));
    let (mut agent, _stop) = world.agent(world.settings(&["web"]));
    agent.tick("test", false).await;
    world.write_label("web", "node: web\nservices: []\n");
    agent.tick("test", false).await;
    assert!(world.vms.running().is_empty());
}

#[tokio::test]
async fn mass_delete_without_explicit_empty_is_held() {
    let world = World::new();
    world.write_label("web", &two_services(&world));
    let (mut agent, _stop) = world.agent(world.settings(&["web"]));
    agent.tick("test", false).await;
    world.vms.take_calls();

    // Every running service renamed: the new ones start, the old ones keep running.
    world.write_label(
        "web",
        &format!(
            "node: web\nservices:\n{}",
            world.service("delta", "c.ext4", "")
        ),
    );
    let report = agent.tick("test", false).await;
    assert_eq!(report.held.len(), 2);
    assert!(
        report.held[0]
            .reason
            .starts_with("would delete 2 of 2 running vms at once")
    );
    assert_eq!(world.vms.take_calls(), vec!["start delta"]);
    assert_eq!(world.vms.running(), vec!["alpha", "beta", "delta"]);
}

#[tokio::test]
async fn one_label_failing_to_parse_changes_nothing() {
    let world = World::new();
    world.write_label("web", &two_services(&world));
    world.write_label(
        "db",
        &format!(
            "node: db\nservices:\n{}",
            world.service("gamma", "c.ext4", "")
        ),
    );
    let (mut agent, _stop) = world.agent(world.settings(&["db", "web"]));
    agent.tick("test", false).await;
    world.vms.take_calls();

    world.write_label("db", "node: db\nservices:\n  - name: Bad_Name\n");
    world.write_label(
        "web",
        &format!(
            "node: web\nservices:\n{}",
            world.service("alpha", "a.ext4", "")
        ),
    );
    let report = agent.tick("test", false).await;
    assert!(
        report.error.as_deref().unwrap().contains("db"),
        "{:?}",
        report.error
    );
    assert!(world.vms.take_calls().is_empty());
    assert_eq!(world.vms.running(), vec!["alpha", "beta", "gamma"]);
}

#[tokio::test]
async fn duplicate_service_across_labels_fails_tick() {
    let world = World::new();
    world.write_label("web", &two_services(&world));
    world.write_label(
        "db",
        &format!(
            "node: db\nservices:\n{}",
            world.service("alpha", "c.ext4", "")
        ),
    );
    let (mut agent, _stop) = world.agent(world.settings(&["db", "web"]));
    let report = agent.tick("test", false).await;
    assert_eq!(
        report.error.as_deref(),
        Some("service `alpha` is defined in both label `db` and label `web`")
    );
    assert!(world.vms.take_calls().is_empty());
}

#[tokio::test]
async fn failed_service_does_not_stop_others_and_backs_off() {
    let world = World::new();
    world.write_label("web", &two_services(&world));
    let (mut agent, _stop) = world.agent(world.settings(&["web"]));
    world.vms.fail("alpha", true);

    let report = agent.tick("test", false).await;
    let failures: Vec<_> = report.apply.failures().collect();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].service, "alpha");
    assert_eq!(world.vms.running(), vec!["beta"]);
    world.vms.take_calls();

    // Right away the failed service waits for its retry time.
    let report = agent.tick("test", false).await;
    assert_eq!(report.held.len(), 1);
    assert!(
        report.held[0]
            .reason
            .starts_with("failed 1 time(s), retrying in")
    );
    assert!(world.vms.take_calls().is_empty());
    let status = agent.status();
    let alpha = status.read().unwrap().services[0].clone();
    assert_eq!(alpha.name, "alpha");
    assert_eq!(
        alpha.last_error.as_deref(),
        Some("injected start failure of alpha")
    );

    assert!(agent.next_retry().is_some());
}

#[tokio::test(start_paused = true)]
async fn retry_after_backoff_succeeds() {
    let world = World::new();
    world.write_label("web", &two_services(&world));
    let (mut agent, _stop) = world.agent(world.settings(&["web"]));
    world.vms.fail("alpha", true);
    agent.tick("test", false).await;
    world.vms.fail("alpha", false);
    world.vms.take_calls();

    tokio::time::sleep_until(agent.next_retry().unwrap()).await;
    agent.tick("retry", false).await;
    assert_eq!(world.vms.take_calls(), vec!["start alpha"]);
    assert_eq!(agent.next_retry(), None);
}

#[tokio::test]
async fn capacity_holds_creates_that_do_not_fit() {
    let world = World::new();
    let heavy = world
        .service("gamma", "c.ext4", "")
        .replace("vcpus: 1", "vcpus: 4");
    world.write_label("web", &format!("{}{heavy}", two_services(&world)));
    let reads = Arc::new(AtomicUsize::new(0));
    let mut settings = world.settings(&["web"]);
    settings.capacity_check = true;
    settings.reserved = Resources {
        vcpus: 1,
        memory_mb: 512,
    };
    let capacity = FixedCapacity {
        resources: std::sync::Mutex::new(Some(Resources {
            vcpus: 4,
            memory_mb: 4096,
        })),
        reads: reads.clone(),
    };
    let (mut agent, _stop) = world.agent_with(settings, |parts| {
        parts.capacity = Box::new(capacity);
    });
    let report = agent.tick("test", false).await;
    assert_eq!(reads.load(Ordering::SeqCst), 1);
    assert_eq!(report.held.len(), 1);
    assert_eq!(report.held[0].action.service, "gamma");
    assert_eq!(
        report.held[0].reason,
        "does not fit: needs 4 vcpus and 128 MiB, 1 vcpus and 3328 MiB free"
    );
    assert_eq!(world.vms.running(), vec!["alpha", "beta"]);
}

/// Starts an agent with the capacity check on a node of 4 vCPUs and 1024 MiB, nothing
/// reserved.
fn small_node(world: &World) -> (firework_agent::Agent, tokio::sync::watch::Sender<bool>) {
    let mut settings = world.settings(&["web"]);
    settings.capacity_check = true;
    settings.reserved = Resources {
        vcpus: 0,
        memory_mb: 0,
    };
    let capacity = FixedCapacity {
        resources: std::sync::Mutex::new(Some(Resources {
            vcpus: 4,
            memory_mb: 1024,
        })),
        reads: Arc::new(AtomicUsize::new(0)),
    };
    world.agent_with(settings, |parts| {
        parts.capacity = Box::new(capacity);
    })
}

/// Builds the label with alpha at `alpha_memory` MiB, beta at 128 MiB, and `extra` appended.
fn sized_label(world: &World, alpha_memory: u32, extra: &str) -> String {
    let alpha = world
        .service("alpha", "a.ext4", "")
        .replace("memory_mb: 128", &format!("memory_mb: {alpha_memory}"));
    format!(
        "node: web\nservices:\n{alpha}{}{extra}",
        world.service("beta", "b.ext4", "")
    )
}

#[tokio::test]
async fn capacity_holds_update_that_grows_too_much() {
    let world = World::new();
    world.write_label("web", &sized_label(&world, 128, ""));
    let (mut agent, _stop) = small_node(&world);
    agent.tick("test", false).await;
    let pid = world.vms.pid("alpha");
    world.vms.take_calls();

    // 256 MiB in use; growing alpha by 896 MiB would need 1152 of 1024.
    world.write_label("web", &sized_label(&world, 1024, ""));
    let report = agent.tick("test", false).await;
    assert_eq!(report.held.len(), 1);
    assert_eq!(report.held[0].action.service, "alpha");
    assert_eq!(report.held[0].action.kind, ActionKind::Update);
    assert_eq!(
        report.held[0].reason,
        "does not fit: grows by 0 vcpus and 896 MiB, 2 vcpus and 768 MiB free"
    );
    assert!(world.vms.take_calls().is_empty());
    assert_eq!(world.vms.pid("alpha"), pid);

    // Growing by 640 MiB fits: the update applies.
    world.write_label("web", &sized_label(&world, 768, ""));
    let report = agent.tick("test", false).await;
    assert!(report.held.is_empty(), "{:?}", report.held);
    assert_eq!(world.vms.running(), vec!["alpha", "beta"]);
    assert_ne!(world.vms.pid("alpha"), pid);
}

#[tokio::test]
async fn capacity_admits_update_before_create() {
    let world = World::new();
    world.write_label("web", &sized_label(&world, 128, ""));
    let (mut agent, _stop) = small_node(&world);
    agent.tick("test", false).await;
    world.vms.take_calls();

    // "aardvark" sorts before "alpha", yet alpha's growth to 768 MiB comes first and
    // leaves 128 MiB, too little for the new 512 MiB service.
    let create = world
        .service("aardvark", "c.ext4", "")
        .replace("memory_mb: 128", "memory_mb: 512");
    world.write_label("web", &sized_label(&world, 768, &create));
    let report = agent.tick("test", false).await;
    assert_eq!(report.held.len(), 1);
    assert_eq!(report.held[0].action.service, "aardvark");
    assert_eq!(
        report.held[0].reason,
        "does not fit: needs 1 vcpus and 512 MiB, 2 vcpus and 128 MiB free"
    );
    assert_eq!(world.vms.running(), vec!["alpha", "beta"]);
}

#[tokio::test]
async fn missing_image_keeps_running_vm() {
    let world = World::new();
    world.write_label("web", &two_services(&world));
    let (mut agent, _stop) = world.agent(world.settings(&["web"]));
    agent.tick("test", false).await;
    let pid = world.vms.pid("alpha");
    world.vms.take_calls();

    std::fs::remove_file(world.images().join("a.ext4")).unwrap();
    let report = agent.tick("test", false).await;
    assert_eq!(report.spec_errors.len(), 1);
    assert_eq!(report.spec_errors[0].0, "alpha");
    assert!(
        report.spec_errors[0]
            .1
            .starts_with("service `alpha`: image is not usable: image ")
    );
    assert!(world.vms.take_calls().is_empty());
    assert_eq!(world.vms.pid("alpha"), pid);
}

#[tokio::test(start_paused = true)]
async fn rolling_updates_pause_between_services() {
    let world = World::new();
    let yaml = |memory: &str| {
        let mut text = "node: web\nservices:\n".to_owned();
        for (name, image) in [("alpha", "a.ext4"), ("beta", "b.ext4"), ("gamma", "c.ext4")] {
            text.push_str(
                &world
                    .service(name, image, "")
                    .replace("memory_mb: 128", &format!("memory_mb: {memory}")),
            );
        }
        text
    };
    world.write_label("web", &yaml("128"));
    let mut settings = world.settings(&["web"]);
    settings.executor.strategy = UpdateStrategy::Rolling;
    settings.executor.update_delay = Duration::from_secs(5);
    let (mut agent, _stop) = world.agent(settings);
    agent.tick("test", false).await;
    world.vms.take_calls();

    world.write_label("web", &yaml("256"));
    let before = tokio::time::Instant::now();
    let report = agent.tick("test", false).await;
    assert_eq!(report.apply.pauses, 2);
    assert!(before.elapsed() >= Duration::from_secs(10));
    assert_eq!(
        world.vms.take_calls(),
        vec![
            "stop alpha",
            "start alpha",
            "stop beta",
            "start beta",
            "stop gamma",
            "start gamma"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn parallel_creates_are_bounded() {
    let world = World::new();
    let mut text = "node: web\nservices:\n".to_owned();
    for index in 0..10 {
        text.push_str(&world.service(&format!("svc-{index}"), "a.ext4", ""));
    }
    world.write_label("web", &text);
    *world.vms.start_delay.lock().unwrap() = Duration::from_millis(100);
    let mut settings = world.settings(&["web"]);
    settings.executor.parallelism = 3;
    let (mut agent, _stop) = world.agent(settings);
    agent.tick("test", false).await;
    assert_eq!(world.vms.running().len(), 10);
    assert_eq!(world.vms.max_in_flight.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn shutdown_skips_actions_not_started() {
    let world = World::new();
    world.write_label("web", &two_services(&world));
    let (mut agent, stop) = world.agent(world.settings(&["web"]));
    stop.send(true).unwrap();
    let report = agent.tick("test", false).await;
    assert_eq!(report.apply.skipped, vec!["alpha", "beta"]);
    assert!(world.vms.take_calls().is_empty());
}

#[tokio::test]
async fn dry_run_changes_nothing() {
    let world = World::new();
    world.write_label("web", &two_services(&world));
    let (mut agent, _stop) = world.agent(world.settings(&["web"]));
    let report = agent.tick("dry-run", true).await;
    assert_eq!(report.plan.summary().create, 2);
    assert!(world.vms.take_calls().is_empty());
    let text = firework_agent::agent::render_plan(&report);
    assert!(
        text.starts_with("plan: 2 create, 0 update, 0 delete, 0 unchanged, 0 held\n"),
        "{text}"
    );
    assert!(text.contains("  create    alpha (not running)\n"), "{text}");
}

#[tokio::test]
async fn kernel_change_updates() {
    let world = World::new();
    world.write_label("web", &two_services(&world));
    let (mut agent, _stop) = world.agent(world.settings(&["web"]));
    agent.tick("test", false).await;
    world.vms.take_calls();

    std::fs::write(world.images().join("vmlinux2"), b"\x7fELF other kernel").unwrap();
    let changed = format!(
        "node: web\nservices:\n{}{}",
        world
            .service("alpha", "a.ext4", "")
            .replace("vmlinux", "vmlinux2"),
        world.service("beta", "b.ext4", "")
    );
    world.write_label("web", &changed);
    let report = agent.tick("test", false).await;
    assert_eq!(report.error, None);
    let updates: Vec<_> = report.plan.of_kind(ActionKind::Update).collect();
    assert_eq!(updates.len(), 1, "{:?}", report.plan);
    assert_eq!(updates[0].changed, vec!["kernel"]);
    assert!(
        world
            .vms
            .spec("alpha")
            .kernel_path
            .ends_with("images/vmlinux2")
    );
}

/// Builds a label with a networked service for each of `names` and a service without a
/// network for each of `plain`.
fn networked_label(world: &World, names: &[&str], plain: &[&str]) -> String {
    let mut text = "node: web\nservices:\n".to_owned();
    for name in names {
        text.push_str(&world.service(name, "a.ext4", "    network: {}\n"));
    }
    for name in plain {
        text.push_str(&world.service(name, "b.ext4", ""));
    }
    text
}

fn networked_agent(
    world: &World,
) -> (
    firework_agent::Agent,
    tokio::sync::watch::Sender<bool>,
    Arc<FakeNet>,
) {
    let net = Arc::new(FakeNet::default());
    let mut settings = world.settings(&["web"]);
    settings.network = Some(network_settings("fwbr0"));
    let driver = net.clone();
    let (agent, stop) = world.agent_with(settings, |parts| parts.net = Some(driver));
    (agent, stop, net)
}

#[tokio::test]
async fn deleted_vm_loses_network_in_same_tick() {
    let world = World::new();
    world.write_label("web", &networked_label(&world, &["alpha", "beta"], &[]));
    let (mut agent, _stop, net) = networked_agent(&world);
    agent.tick("test", false).await;
    assert_eq!(net.taps(), vec!["alpha", "beta"]);
    net.take_plans();

    world.write_label("web", &networked_label(&world, &["alpha"], &[]));
    let report = agent.tick("test", false).await;
    assert_eq!(report.error, None);
    assert_eq!(report.plan.of_kind(ActionKind::Delete).count(), 1);
    assert_eq!(report.apply.failures().count(), 0);
    assert!(
        report.network_errors.is_empty(),
        "{:?}",
        report.network_errors
    );
    assert_eq!(world.vms.running(), vec!["alpha"]);
    // The network step keeps beta's TAP for the delete; the sync after the apply drops it.
    assert_eq!(net.take_plans(), vec![vec!["alpha", "beta"], vec!["alpha"]]);
    assert_eq!(net.taps(), vec!["alpha"]);

    let report = agent.tick("test", false).await;
    assert_eq!(report.plan.summary().unchanged, 1);
    assert_eq!(net.take_plans(), vec![vec!["alpha"]]);
}

#[tokio::test]
async fn failed_delete_keeps_network() {
    let world = World::new();
    world.write_label("web", &networked_label(&world, &["alpha", "beta"], &[]));
    let (mut agent, _stop, net) = networked_agent(&world);
    agent.tick("test", false).await;
    net.take_plans();
    world
        .vms
        .failing_deletes
        .lock()
        .unwrap()
        .insert("beta".to_owned());

    world.write_label("web", &networked_label(&world, &["alpha"], &[]));
    let report = agent.tick("test", false).await;
    let failures: Vec<_> = report.apply.failures().collect();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].service, "beta");
    assert_eq!(world.vms.running(), vec!["alpha", "beta"]);
    assert_eq!(net.take_plans(), vec![vec!["alpha", "beta"]]);
    assert_eq!(net.taps(), vec!["alpha", "beta"]);
}

#[tokio::test]
async fn held_delete_keeps_network() {
    let world = World::new();
    world.write_label("web", &networked_label(&world, &["alpha", "beta"], &[]));
    let (mut agent, _stop, net) = networked_agent(&world);
    agent.tick("test", false).await;
    net.take_plans();

    // Every running service renamed: the mass delete guard holds both deletes.
    world.write_label("web", &networked_label(&world, &["gamma"], &[]));
    let report = agent.tick("test", false).await;
    assert_eq!(report.held.len(), 2);
    assert_eq!(world.vms.running(), vec!["alpha", "beta", "gamma"]);
    assert_eq!(net.take_plans(), vec![vec!["gamma", "alpha", "beta"]]);
    assert_eq!(net.taps(), vec!["alpha", "beta", "gamma"]);
}

#[tokio::test]
async fn deleted_vm_without_network_syncs_once() {
    let world = World::new();
    world.write_label("web", &networked_label(&world, &["alpha"], &["beta"]));
    let (mut agent, _stop, net) = networked_agent(&world);
    agent.tick("test", false).await;
    net.take_plans();

    world.write_label("web", &networked_label(&world, &["alpha"], &[]));
    let report = agent.tick("test", false).await;
    assert_eq!(report.plan.of_kind(ActionKind::Delete).count(), 1);
    assert_eq!(world.vms.running(), vec!["alpha"]);
    assert_eq!(net.take_plans(), vec![vec!["alpha"]]);
    assert_eq!(net.taps(), vec!["alpha"]);
}

#[tokio::test]
async fn failed_network_release_is_reported_and_retried() {
    let world = World::new();
    world.write_label("web", &networked_label(&world, &["alpha", "beta"], &[]));
    let (mut agent, _stop, net) = networked_agent(&world);
    agent.tick("test", false).await;
    // The first tick made call 0 and the next tick's network step makes call 1, so only
    // the release after its apply fails.
    *net.fail_from_call.lock().unwrap() = Some(2);

    world.write_label("web", &networked_label(&world, &["alpha"], &[]));
    let report = agent.tick("test", false).await;
    assert_eq!(report.error, None);
    assert_eq!(report.apply.failures().count(), 0);
    assert_eq!(
        report.network_errors,
        vec![("beta".to_owned(), "injected network failure".to_owned())]
    );
    assert_eq!(world.vms.running(), vec!["alpha"]);
    assert_eq!(net.taps(), vec!["alpha", "beta"]);
    let scrape = agent.metrics().encode();
    assert!(
        scrape.contains("firework_agent_ticks_total{result=\"error\"} 1"),
        "{scrape}"
    );

    // The next tick's network step leaves beta out, because its VM is gone.
    *net.fail_from_call.lock().unwrap() = None;
    net.take_plans();
    let report = agent.tick("test", false).await;
    assert!(report.network_errors.is_empty());
    assert_eq!(net.take_plans(), vec![vec!["alpha"]]);
    assert_eq!(net.taps(), vec!["alpha"]);
}
