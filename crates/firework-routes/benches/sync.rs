//! Benchmarks of one route sync with 100 local and 300 remote routes (3 peers): the steady
//! state, where every file is already right, and a sync where every backend changed.

#![allow(clippy::unwrap_used, missing_docs)]

use std::net::{IpAddr, Ipv4Addr};

use criterion::{Criterion, criterion_group, criterion_main};
use firework_routes::{
    LocalRoute, PeerServices, RemoteNodeRoutes, RemoteService, RouteKeys, RouteSync,
};

const LOCAL: u8 = 100;
const PEERS: u8 = 3;
const PER_PEER: u16 = 100;

fn local(port: u16) -> Vec<LocalRoute> {
    (0..LOCAL)
        .map(|i| LocalRoute {
            service: format!("svc-{i}"),
            guest_ip: Some(IpAddr::V4(Ipv4Addr::new(172, 16, 0, i + 2))),
            backend_port: Some(port),
            keys: RouteKeys {
                host: None,
                subdomain: Some(format!("svc-{i}")),
            },
        })
        .collect()
}

fn remote(port_base: u16) -> Vec<RemoteNodeRoutes> {
    (0..PEERS)
        .map(|peer| RemoteNodeRoutes {
            node: format!("node-{peer}"),
            host_ip: Some(IpAddr::V4(Ipv4Addr::new(10, 0, 1, peer + 1))),
            services: PeerServices::Listed(
                (0..PER_PEER)
                    .map(|i| RemoteService {
                        service: format!("remote-{i}"),
                        host_port: Some(port_base + i),
                        keys: RouteKeys {
                            host: Some(format!("remote-{i}.node-{peer}.example.net")),
                            subdomain: None,
                        },
                    })
                    .collect(),
            ),
        })
        .collect()
}

fn bench_sync(c: &mut Criterion) {
    let temp = tempfile::tempdir().unwrap();
    let routes = RouteSync::new(temp.path(), "web", Some("example.com")).unwrap();
    let (local_a, remote_a) = (local(8080), remote(20000));
    let (local_b, remote_b) = (local(8081), remote(30000));
    routes.sync(&local_a, &remote_a).unwrap();

    c.bench_function("sync 400 routes unchanged", |b| {
        b.iter(|| {
            let report = routes.sync(&local_a, &remote_a).unwrap();
            assert_eq!(report.unchanged.len(), 400);
        });
    });

    let mut flip = false;
    c.bench_function("sync 400 routes all changed", |b| {
        b.iter(|| {
            flip = !flip;
            let (local, remote) = if flip {
                (&local_b, &remote_b)
            } else {
                (&local_a, &remote_a)
            };
            let report = routes.sync(local, remote).unwrap();
            assert_eq!(report.written.len(), 400);
        });
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = bench_sync
}
criterion_main!(benches);
