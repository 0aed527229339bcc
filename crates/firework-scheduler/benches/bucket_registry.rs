//! Measures reading a registry of 1,000 node records from Garage on loopback and planning
//! 3,000 services onto them, and prints the time of each run. Run it with
//! `cargo bench -p firework-scheduler --bench bucket_registry`.
//!
//! Garage runs on the same machine, so the figures hold no network latency. They show the
//! cost of one listing plus one GET per record at a concurrency of 16.

#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    reason = "a bench binary: a panic is a failed run and output is the result"
)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use firework_scheduler::plan::plan_records;
use firework_scheduler::source::{ObjectOptions, RegistrySource, read_registry};
use firework_scheduler::{ScheduleOptions, ServiceRequest};
use firework_store::Secret;
use futures::StreamExt;
use support::{Garage, GarageRegistry, NOW, record};

const NODES: usize = 1_000;
const SERVICES: usize = 3_000;
const RUNS: usize = 5;

#[tokio::main]
async fn main() {
    let Some(garage) = Garage::start() else {
        return;
    };
    let registry = garage.registry("bench");
    let writes = futures::stream::iter(0..NODES)
        .map(|i| {
            let registry = &registry;
            async move {
                let vcpus = 16 + u32::try_from(i % 4).unwrap() * 16;
                let node = record(
                    &format!("node-{i:04}"),
                    "2026-12-04T19:59:55Z",
                    vcpus,
                    u64::from(vcpus) * 4096,
                );
                registry.write(&node).await.unwrap();
            }
        })
        .buffer_unordered(16);
    writes.collect::<Vec<()>>().await;

    let options = ObjectOptions {
        s3_endpoint_url: Some(garage.endpoint.clone()),
        s3_region: Some(garage.region.clone()),
        s3_credentials: Some((garage.key_id.clone(), Secret::new(garage.secret.clone()))),
        gcs_credentials_file: None,
    };
    let source = RegistrySource::parse("s3://firework/bench", &options).unwrap();
    let services: Vec<ServiceRequest> = (0..SERVICES)
        .map(|i| {
            let vcpus = 1 + u32::try_from(i % 4).unwrap();
            ServiceRequest::new(format!("svc-{i:05}"), vcpus, 256 * u64::from(vcpus))
                .with_node_type("general")
        })
        .collect();
    let now = NOW.parse().unwrap();
    let ttl = Duration::from_secs(45);

    println!("{NODES} records in Garage on loopback, {SERVICES} services, {RUNS} runs");
    for run in 1..=RUNS {
        let start = Instant::now();
        let records = read_registry(&source).await.unwrap();
        let read = start.elapsed();
        assert_eq!(records.len(), NODES);
        let report = plan_records(
            records,
            &services,
            &[],
            now,
            ttl,
            &ScheduleOptions::default(),
        )
        .unwrap();
        let total = start.elapsed();
        assert_eq!(report.live_nodes.len(), NODES);
        println!(
            "run {run}: read {:.1} ms, read and plan {:.1} ms",
            read.as_secs_f64() * 1e3,
            total.as_secs_f64() * 1e3
        );
    }
}
