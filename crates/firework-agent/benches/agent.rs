//! Benchmarks of the agent: planning 500 unchanged services, a cold start of 100 services
//! through the Firecracker emulator, and the time from a trigger to a running VM.
//!
//! The emulator benchmarks need `cargo build -p firework-emulator` first and are skipped
//! with a message otherwise.

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use firework_agent::driver::VmDriver;
use firework_agent::plan::plan;
use firework_agent::spec::{ActualVm, DesiredVm, Fingerprint, Intent};
use firework_agent::{Agent, AgentParts, AgentSettings};
use firework_model::agent::UpdateStrategy;
use firework_model::registry::Resources;
use firework_store::LocalStore;
use firework_vmm::{RecordState, RuntimeConfig, VmRuntime, VmSpec};
use tokio::sync::watch;

fn desired_vm(index: usize) -> DesiredVm {
    let service = format!("svc-{index}");
    let fingerprint = Fingerprint {
        kernel: "/var/lib/firework/kernels/vmlinux".to_owned(),
        image: format!("/var/lib/firework/images/{service}.ext4"),
        image_version: "4096-1700000000000000000".to_owned(),
        vcpus: 1,
        memory_mb: 256,
        kernel_args: format!("console=ttyS0 reboot=k panic=1 firework.env.NAME={service}"),
        network: None,
        port_forwards: vec![format!("{}:8080/tcp", 10000 + index)],
        health_check: None,
    };
    let vm = VmSpec {
        service: service.clone(),
        vm_id: service.clone(),
        kernel_path: PathBuf::from(&fingerprint.kernel),
        rootfs_path: PathBuf::from(&fingerprint.image),
        read_only: false,
        vcpus: 1,
        memory_mib: 256,
        kernel_args: fingerprint.kernel_args.clone(),
        network: None,
        log_path: None,
    };
    DesiredVm {
        service,
        label: "web".to_owned(),
        revision: "sha256:0".to_owned(),
        hash: fingerprint.hash(),
        vm_hash: vm.hash(),
        fingerprint,
        vm,
        health_check: None,
    }
}

fn bench_plan(c: &mut Criterion) {
    let desired: Vec<DesiredVm> = (0..500).map(desired_vm).collect();
    let actual: BTreeMap<String, ActualVm> = desired
        .iter()
        .map(|vm| {
            (
                vm.service.clone(),
                ActualVm {
                    service: vm.service.clone(),
                    state: RecordState::Running,
                    pid: Some(1),
                    vm_hash: vm.vm_hash.clone(),
                    intent: Some(Intent {
                        label: vm.label.clone(),
                        revision: vm.revision.clone(),
                        hash: vm.hash.clone(),
                        fingerprint: vm.fingerprint.clone(),
                    }),
                },
            )
        })
        .collect();
    let keep = BTreeSet::new();
    c.bench_function("plan_500_unchanged", |b| {
        b.iter(|| {
            let result = plan(
                std::hint::black_box(&desired),
                std::hint::black_box(&actual),
                &keep,
            );
            assert!(!result.has_changes());
            result
        })
    });
}

fn emulator() -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/fc-emulator");
    if path.exists() {
        Some(path.canonicalize().unwrap())
    } else {
        eprintln!(
            "skipping emulator benchmarks: {} is missing; run `cargo build -p firework-emulator`",
            path.display()
        );
        None
    }
}

struct Bench {
    dir: tempfile::TempDir,
    agent: Agent,
    runtime: VmRuntime,
}

impl Bench {
    async fn new(emulator: &Path) -> Bench {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("store/nodes")).unwrap();
        std::fs::create_dir_all(dir.path().join("images")).unwrap();
        std::fs::write(
            dir.path().join("images/vmlinux"),
            b"\x7fELF\x02\x01\x01 kernel",
        )
        .unwrap();
        std::fs::write(dir.path().join("images/rootfs.ext4"), vec![0u8; 4096]).unwrap();
        let state = dir.path().join("state");
        let (runtime, _events, _scan) = VmRuntime::open(RuntimeConfig::new(&state, emulator))
            .await
            .unwrap();
        let vms: Arc<dyn VmDriver> = Arc::new(runtime.clone());
        let parts = AgentParts::new(
            Arc::new(LocalStore::new(dir.path().join("store"))),
            None,
            vms,
            None,
        );
        let settings = AgentSettings {
            node: "bench".to_owned(),
            labels: vec!["web".to_owned()],
            node_types: Vec::new(),
            host_ip: None,
            network: None,
            capacity_check: false,
            reserved: Resources::default(),
            capacity_override: Default::default(),
            executor: firework_agent::executor::ExecutorSettings {
                parallelism: firework_agent::executor::default_parallelism(),
                strategy: UpdateStrategy::AllAtOnce,
                update_delay: Duration::ZERO,
            },
            max_delete_share: 1.0,
            state_dir: state,
            gate: firework_agent::health::GateSettings::default(),
        };
        let (_tx, rx) = watch::channel(false);
        let agent = Agent::new(settings, parts, rx).unwrap();
        Bench {
            dir,
            agent,
            runtime,
        }
    }

    fn write(&self, count: usize, offset: usize) {
        let mut text = "node: web\nservices:\n".to_owned();
        for index in offset..offset + count {
            text.push_str(&format!(
                "  - name: svc-{index}\n    image: {}\n    kernel: {}\n    vcpus: 1\n    memory_mb: 128\n",
                self.dir.path().join("images/rootfs.ext4").display(),
                self.dir.path().join("images/vmlinux").display()
            ));
        }
        if count == 0 {
            text = "node: web\nservices: []\n".to_owned();
        }
        std::fs::write(self.dir.path().join("store/nodes/web.yaml"), text).unwrap();
    }

    async fn running(&self) -> usize {
        self.runtime
            .list()
            .await
            .iter()
            .filter(|vm| vm.state == RecordState::Running)
            .count()
    }
}

fn cpu_time() -> Duration {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF).unwrap();
    let user = usage.user_time();
    let system = usage.system_time();
    Duration::from_micros(
        (user.tv_sec() * 1_000_000
            + user.tv_usec()
            + system.tv_sec() * 1_000_000
            + system.tv_usec()) as u64,
    )
}

fn bench_cold_start(c: &mut Criterion) {
    let Some(emulator) = emulator() else { return };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut bench = runtime.block_on(Bench::new(&emulator));
    let mut group = c.benchmark_group("emulator");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    let mut cpu_per_vm = Vec::new();
    group.bench_function("cold_start_100_services", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                bench.write(100, 0);
                let cpu = cpu_time();
                let start = Instant::now();
                runtime.block_on(bench.agent.tick("bench", false));
                total += start.elapsed();
                cpu_per_vm.push((cpu_time() - cpu) / 100);
                assert_eq!(runtime.block_on(bench.running()), 100);
                bench.write(0, 0);
                runtime.block_on(bench.agent.tick("bench", false));
                assert_eq!(runtime.block_on(bench.running()), 0);
            }
            total
        })
    });
    if !cpu_per_vm.is_empty() {
        cpu_per_vm.sort();
        eprintln!(
            "cold_start_100_services: agent cpu per vm, median {:?} (of {} runs)",
            cpu_per_vm[cpu_per_vm.len() / 2],
            cpu_per_vm.len()
        );
    }

    // Trigger to a running VM: one new service next to ten running ones. The tick is what
    // a trigger runs; it returns after InstanceStart and the VM reports Running.
    bench.write(10, 0);
    runtime.block_on(bench.agent.tick("bench", false));
    let mut next = 1000;
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("trigger_to_instance_start", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                let mut text = std::fs::read_to_string(bench.dir.path().join("store/nodes/web.yaml")).unwrap();
                text.push_str(&format!(
                    "  - name: svc-{next}\n    image: {}\n    kernel: {}\n    vcpus: 1\n    memory_mb: 128\n",
                    bench.dir.path().join("images/rootfs.ext4").display(),
                    bench.dir.path().join("images/vmlinux").display()
                ));
                next += 1;
                std::fs::write(bench.dir.path().join("store/nodes/web.yaml"), text).unwrap();
                let start = Instant::now();
                let report = runtime.block_on(bench.agent.tick("bench", false));
                total += start.elapsed();
                assert_eq!(report.plan.summary().create, 1);
            }
            total
        })
    });
    group.finish();
    bench.write(0, 0);
    runtime.block_on(bench.agent.tick("bench", false));
}

criterion_group!(benches, bench_plan, bench_cold_start);
criterion_main!(benches);
