//! Render time of generated input trees: services spread over node types, each with a
//! health check, env, a link and metadata, plus one tenant override per ten services.

#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use firework_enricher::render::{RenderOptions, render};
use firework_model::spec::load_input_tree;

fn write_tree(root: &Path, services: usize) {
    std::fs::create_dir_all(root.join("services")).unwrap();
    std::fs::write(
        root.join("defaults.yaml"),
        "kernel: /var/lib/images/vmlinux-6.1\nhealth_check:\n  interval: 15s\n",
    )
    .unwrap();
    for i in 0..services {
        let text = format!(
            "name: svc-{i}\nimage: /var/lib/images/svc-{i}.ext4\nnode_type: type-{}\n\
             network: true\nport_forwards:\n  - host_port: {}\n    vm_port: 8080\n\
             health_check:\n  type: http\n  port: 8080\n  path: /healthz\n\
             env:\n  INDEX: \"{i}\"\n  MODE: production\n\
             links:\n  - service: svc-{}\n    env: PEER\n    port: 8080\n\
             metadata:\n  subdomain: svc-{i}\n",
            i % 8,
            10000 + i,
            (i + 1) % services
        );
        std::fs::write(root.join(format!("services/svc-{i}.yaml")), text).unwrap();
        if i % 10 == 0 {
            let dir = root.join(format!("tenants/t{i}"));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(
                dir.join(format!("svc-{i}.yaml")),
                format!(
                    "port_forwards:\n  - host_port: {}\n    vm_port: 8080\n\
                     metadata:\n  subdomain: t{i}\n",
                    30000 + i
                ),
            )
            .unwrap();
        }
    }
}

fn bench_render(c: &mut Criterion) {
    for services in [100, 1000] {
        let dir = tempfile::tempdir().unwrap();
        write_tree(dir.path(), services);
        let tree = load_input_tree(dir.path()).unwrap();
        c.bench_function(&format!("load_{services}_services"), |b| {
            b.iter(|| load_input_tree(black_box(dir.path())).unwrap())
        });
        c.bench_function(&format!("render_{services}_services"), |b| {
            b.iter(|| render(black_box(&tree), &RenderOptions::default()).unwrap())
        });
    }
}

criterion_group!(benches, bench_render);
criterion_main!(benches);
