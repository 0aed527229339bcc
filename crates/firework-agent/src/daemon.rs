//! The long-running agent: start-up, adoption, the tick loop, triggers, the API, systemd
//! readiness and shutdown.

use std::sync::Arc;

use firework_model::agent::AgentConfig;
use firework_store::{StoreSettings, open_store};
use firework_vmm::{CgroupLimits, JailerConfig, RuntimeConfig, VmEvent, VmRuntime};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

use crate::agent::{Agent, AgentParts, AgentSettings, TickReport};
use crate::api::{ApiState, router};
use crate::driver::{HostNetwork, NetDriver, RecordsView, VmDriver};
use crate::error::{AgentError, error_chain};
use crate::health::{HealthParts, MonitorGate, VmRestarter};
use crate::images::SyncedImages;
use crate::routes::TraefikRoutes;
use crate::trigger::Trigger;
use firework_health::{HealthMonitor, ServiceLocks};
use firework_vmm::layout::StateLayout;

/// The network records directory under the state directory.
pub const NETWORK_STATE_DIR: &str = "network";

fn open_config_store(
    config: &AgentConfig,
) -> Result<
    (
        Arc<dyn firework_store::ConfigStore>,
        Option<firework_store::NodeRegistry>,
    ),
    AgentError,
> {
    let store_error = |source| AgentError::Store {
        store: config.store_type.as_str(),
        source: Box::new(source),
    };
    let mut settings = StoreSettings::from_agent_config(config).map_err(store_error)?;
    if let StoreSettings::Git(git) = &mut settings {
        // A tick reads the store once, and a triggered tick must see a commit pushed a
        // moment before it, so a fetched commit is never reused by the next tick.
        git.reuse_window = std::time::Duration::ZERO;
    }
    open_store(&settings).map_err(store_error)
}

fn network_driver(config: &AgentConfig, setup: bool) -> Option<Arc<dyn NetDriver>> {
    config.vm_subnet?;
    match HostNetwork::new(config.state_dir.join(NETWORK_STATE_DIR), setup) {
        Ok(driver) => Some(Arc::new(driver)),
        Err(error) => {
            error!(error = %error_chain(error.as_ref()), "cannot open the host network; networked services will fail");
            None
        }
    }
}

/// Builds the VM runtime settings: jailer mode when `use_jailer` is set, with cgroup v2
/// limits for each VM when `jailer_parent_cgroup` is set.
pub fn runtime_config(config: &AgentConfig) -> RuntimeConfig {
    let mut runtime = RuntimeConfig::new(&config.state_dir, &config.firecracker_bin);
    if config.use_jailer {
        runtime.jailer = Some(JailerConfig {
            jailer_bin: config.jailer_bin.clone(),
            uid: config.jailer_uid,
            gid: config.jailer_gid,
            chroot_base_dir: config.chroot_base_dir.clone(),
            cgroup: config.jailer_cgroup.as_ref().map(|cgroup| CgroupLimits {
                cgroup_root: cgroup.root.clone(),
                parent_cgroup: cgroup.parent.clone(),
                memory_overhead_mib: cgroup.memory_overhead_mib,
            }),
        });
    }
    runtime
}

/// Builds the image step when an image source (`s3_images_bucket`, `gcs_images_bucket`
/// or `images_source_dir`) is set.
pub fn image_step(
    config: &AgentConfig,
    metrics: Arc<firework_metrics::AgentMetrics>,
) -> Result<Option<SyncedImages>, AgentError> {
    let images_error = |source| AgentError::Images {
        path: config.images_dir.clone(),
        source: Box::new(source),
    };
    let Some(source) =
        firework_images::ImageSource::from_agent_config(config).map_err(images_error)?
    else {
        return Ok(None);
    };
    let sync = firework_images::ImageSync::new(
        &source,
        &config.images_dir,
        firework_images::SyncOptions::default(),
    )
    .map_err(images_error)?;
    info!(source = %source.name(), images_dir = %config.images_dir.display(), "images are synced from the image source");
    Ok(Some(SyncedImages::new(
        sync,
        metrics,
        config.image_gc_grace.into(),
    )))
}

/// Builds the route step when `traefik_config_dir` is set.
pub fn route_step(
    config: &AgentConfig,
    store: Arc<dyn firework_store::ConfigStore>,
) -> Result<Option<TraefikRoutes>, AgentError> {
    let Some(dir) = &config.traefik_config_dir else {
        return Ok(None);
    };
    let sync = firework_routes::RouteSync::new(
        dir,
        &config.traefik_entry_point,
        config.ingress_domain.as_deref(),
    )
    .map_err(|source| AgentError::Routes {
        path: dir.clone(),
        source,
    })?;
    info!(dir = %dir.display(), entry_point = %config.traefik_entry_point, "routes go to traefik_config_dir");
    Ok(Some(TraefikRoutes::new(sync, store, &config.node_names)))
}

/// Plans one tick against the current state without changing any VM and returns the
/// report. Guest addresses of new services are assigned and recorded, so the plan shows
/// the addresses the real tick will use; no device or rule is touched.
pub async fn dry_run(config: &AgentConfig) -> Result<TickReport, AgentError> {
    let (store, _registry) = open_config_store(config)?;
    let vms: Arc<dyn VmDriver> = Arc::new(RecordsView::new(&config.state_dir));
    let parts = AgentParts::new(store, None, vms, network_driver(config, false));
    let (_shutdown_tx, shutdown) = watch::channel(false);
    let mut agent = Agent::new(AgentSettings::from_config(config), parts, shutdown)?;
    Ok(agent.tick("dry-run", true).await)
}

/// Runs the agent until SIGTERM or SIGINT. Running VMs are adopted before the first plan
/// and left running at exit.
pub async fn run(config: AgentConfig, config_path: &str) -> Result<(), AgentError> {
    info!(
        version = env!("CARGO_PKG_VERSION"),
        config = config_path,
        store = config.store_type.as_str(),
        node = %config.node_id,
        labels = ?config.node_names,
        "firework-agent starting"
    );
    let (store, registry) = open_config_store(&config)?;

    let runtime_config = runtime_config(&config);
    if let Some(jailer) = &runtime_config.jailer {
        info!(jailer = %jailer.jailer_bin.display(), uid = jailer.uid, gid = jailer.gid, chroot_base_dir = %jailer.chroot_base_dir.display(), "vms start through the jailer");
    }
    let (runtime, mut vm_events, scan) =
        VmRuntime::open(runtime_config)
            .await
            .map_err(|source| AgentError::Runtime {
                path: config.state_dir.clone(),
                source: Box::new(source),
            })?;
    for vm in &scan.adopted {
        info!(service = %vm.service, vm_id = %vm.vm_id, pid = ?vm.pid, "adopted running vm");
    }
    for vm in &scan.cleaned {
        info!(service = %vm.service, vm_id = %vm.vm_id, reason = %vm.reason, "cleaned up after ended vm");
    }
    for problem in &scan.errors {
        error!(error = %error_chain(problem), "vm record left untouched");
    }

    let (shutdown_tx, shutdown) = watch::channel(false);
    let net = network_driver(&config, config.enable_network_setup);
    let vms: Arc<dyn VmDriver> = Arc::new(runtime);
    let mut parts = AgentParts::new(Arc::clone(&store), registry, Arc::clone(&vms), net);
    if let Some(routes) = route_step(&config, store)? {
        parts.routes = Box::new(routes);
    }
    let settings = AgentSettings::from_config(&config);
    if let Some(images) = image_step(&config, Arc::clone(&parts.metrics))? {
        parts.images = Box::new(images);
    }
    if config.enable_health_checks {
        let restarter = VmRestarter {
            vms,
            layout: StateLayout::new(&config.state_dir),
            metrics: Arc::clone(&parts.metrics),
        };
        let monitor = Arc::new(HealthMonitor::new(Arc::new(restarter), ServiceLocks::new()));
        let health = HealthParts::new(monitor);
        parts.gate = Box::new(MonitorGate {
            health: health.clone(),
            settings: settings.gate,
        });
        parts.health = Some(health);
        info!("health checks on");
    }
    let monitor = parts
        .health
        .as_ref()
        .map(|health| Arc::clone(&health.monitor));
    let mut agent = Agent::new(settings, parts, shutdown.clone())?;

    let (trigger, mut triggers) = Trigger::new();
    // VM exits are handled outside the tick loop, so the health monitor hears of them
    // while a rolling update waits on its gate.
    let exit_trigger = trigger.clone();
    tokio::spawn(async move {
        while let Some(event) = vm_events.recv().await {
            let VmEvent::Crashed(crash) = event;
            warn!(service = %crash.service, vm_id = %crash.vm_id, pid = crash.pid, exit = %crash.exit, log_tail = %crash.log_tail, "vm exited unexpectedly");
            // The monitor restarts a registered service through its policy, with
            // backoff, and the tick leaves such a VM alone.
            if let Some(monitor) = &monitor
                && let Err(error) = monitor.vm_exited(&crash.service, &crash.exit.to_string())
            {
                debug!(service = %crash.service, %error, "the exited vm is not monitored, so the tick recreates it");
            }
            exit_trigger.fire("vm-exit");
        }
    });
    spawn_signal_handlers(shutdown_tx, trigger.clone())?;
    let listener = tokio::net::TcpListener::bind(&config.api_listen_addr)
        .await
        .map_err(|source| AgentError::Listen {
            addr: config.api_listen_addr.clone(),
            source,
        })?;
    let token = read_token(&config)?;
    warn_if_exposed(&config.api_listen_addr, token.is_some());
    let app = router(ApiState {
        status: agent.status(),
        trigger: trigger.clone(),
        metrics: agent.metrics(),
        poll_interval: config.poll_interval.0,
        token,
    });
    let mut api_shutdown = shutdown.clone();
    let api = tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = api_shutdown.wait_for(|stop| *stop).await;
        });
        if let Err(error) = serve.await {
            error!(%error, "api server failed");
        }
    });
    info!(addr = %config.api_listen_addr, "api listening");

    if let Err(error) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        warn!(%error, "cannot notify systemd of readiness");
    }

    let poll = config.poll_interval.0;
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + poll, poll);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reason = "start".to_owned();
    let mut stop = shutdown.clone();
    loop {
        if *stop.borrow() {
            break;
        }
        agent.tick(&reason, false).await;
        if *stop.borrow() {
            break;
        }
        let retry = agent.next_retry();
        reason = tokio::select! {
            _ = stop.wait_for(|stop| *stop) => break,
            Some(queued) = triggers.recv() => queued,
            _ = interval.tick() => "poll".to_owned(),
            _ = sleep_until(retry) => "retry".to_owned(),
        };
    }

    info!("shutting down; vms keep running");
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    let _ = api.await;
    Ok(())
}

/// Reads the API bearer token from `api_token_file`; surrounding white space is dropped.
fn read_token(config: &AgentConfig) -> Result<Option<Arc<str>>, AgentError> {
    let Some(path) = &config.api_token_file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path).map_err(|source| AgentError::TokenFile {
        path: path.clone(),
        source,
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(AgentError::EmptyTokenFile { path: path.clone() });
    }
    Ok(Some(Arc::from(token)))
}

/// Returns whether the API at `addr` is reachable beyond loopback without a token.
pub fn exposed_without_token(addr: &str, has_token: bool) -> bool {
    let loopback = addr
        .parse::<std::net::SocketAddr>()
        .map(|addr| addr.ip().is_loopback())
        .unwrap_or_else(|_| addr.starts_with("localhost:"));
    !loopback && !has_token
}

/// Warns when the API listens beyond loopback without a token.
fn warn_if_exposed(addr: &str, has_token: bool) {
    if exposed_without_token(addr, has_token) {
        warn!(
            addr,
            "the api listens beyond loopback without api_token_file; anyone who can connect can read the status and trigger ticks"
        );
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

fn spawn_signal_handlers(
    shutdown: watch::Sender<bool>,
    trigger: Trigger,
) -> Result<(), AgentError> {
    let install = |kind: SignalKind, name: &'static str| {
        signal(kind).map_err(|source| AgentError::Signal {
            signal: name,
            source,
        })
    };
    let mut terminate = install(SignalKind::terminate(), "SIGTERM")?;
    let mut interrupt = install(SignalKind::interrupt(), "SIGINT")?;
    let mut hangup = install(SignalKind::hangup(), "SIGHUP")?;
    tokio::spawn(async move {
        let mut received = 0u32;
        loop {
            let name = tokio::select! {
                _ = terminate.recv() => "SIGTERM",
                _ = interrupt.recv() => "SIGINT",
            };
            received += 1;
            if received == 1 {
                info!(
                    signal = name,
                    "finishing the operation in flight, then exiting; a second signal exits at once"
                );
                let _ = shutdown.send(true);
            } else {
                warn!(
                    signal = name,
                    "second signal; exiting at once, vms keep running"
                );
                std::process::exit(0);
            }
        }
    });
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            let queued = trigger.fire("sighup");
            info!(queued, "SIGHUP received; reconcile queued");
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn config(extra: &str) -> AgentConfig {
        let text = format!(
            "node_name: n1\nnode_names: [web]\nstore_type: local\nstore_dir: /srv/store\n{extra}"
        );
        firework_model::agent::parse_agent_config(text.as_bytes(), "agent.yaml", &|| None)
            .unwrap()
            .value
    }

    #[test]
    fn jailer_settings_reach_the_runtime() {
        let runtime = runtime_config(&config(
            "use_jailer: true\njailer_bin: /opt/jailer\njailer_uid: 123\njailer_gid: 456\nchroot_base_dir: /srv/jail\n",
        ));
        assert_eq!(
            runtime.jailer,
            Some(JailerConfig {
                jailer_bin: "/opt/jailer".into(),
                uid: 123,
                gid: 456,
                chroot_base_dir: "/srv/jail".into(),
                cgroup: None,
            })
        );
    }

    #[test]
    fn jailer_cgroup_limits_reach_the_runtime() {
        let runtime = runtime_config(&config(
            "use_jailer: true\njailer_parent_cgroup: machine.slice/firework\n\
             jailer_memory_overhead_mib: 32\n",
        ));
        let jailer = runtime.jailer.unwrap();
        assert_eq!(
            jailer.cgroup,
            Some(CgroupLimits {
                cgroup_root: "/sys/fs/cgroup".into(),
                parent_cgroup: "machine.slice/firework".to_owned(),
                memory_overhead_mib: 32,
            })
        );
    }

    #[test]
    fn exposed_api_needs_a_token() {
        assert!(exposed_without_token("0.0.0.0:8080", false));
        assert!(exposed_without_token("10.0.0.5:8080", false));
        assert!(exposed_without_token("[::]:8080", false));
        assert!(!exposed_without_token("0.0.0.0:8080", true));
        assert!(!exposed_without_token("127.0.0.1:8080", false));
        assert!(!exposed_without_token("[::1]:8080", false));
        assert!(!exposed_without_token("localhost:8080", false));
    }

    #[test]
    fn firecracker_runs_directly_without_use_jailer() {
        assert_eq!(runtime_config(&config("")).jailer, None);
    }
}
