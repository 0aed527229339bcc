//! Encodes the agent metrics and checks the text a scraper would read.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

mod common;

use common::record_everything;
use firework_metrics::{
    AgentMetrics, CapacitySnapshot, DURATION_BUCKETS, FAMILY_NAMES, FetchResult, HealthState,
    MAX_LABEL_VALUE_LEN, PlanCounts, StoreBackend, SyncResult, TickResult, declared_families,
};

/// One sample line: metric name, labels and value.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// One metric family: its `# HELP`, `# TYPE` and `# UNIT` lines and its samples.
#[derive(Debug, Default)]
struct ParsedFamily {
    kind: String,
    help: Option<String>,
    unit: Option<String>,
    samples: Vec<Sample>,
}

/// Parses OpenMetrics text into families keyed by name. Panics with the offending line
/// on anything the format does not allow, so a test that calls it fails on bad output.
fn parse(text: &str) -> BTreeMap<String, ParsedFamily> {
    let mut families: BTreeMap<String, ParsedFamily> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut saw_eof = false;

    for line in text.lines() {
        assert!(!saw_eof, "line after # EOF: {line:?}");
        if line == "# EOF" {
            saw_eof = true;
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("# HELP line without text");
            assert_valid_name(name);
            let family = families.entry(name.to_owned()).or_default();
            assert!(family.help.is_none(), "second # HELP for {name}");
            family.help = Some(help.to_owned());
            current = Some(name.to_owned());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE line without type");
            assert_valid_name(name);
            assert!(
                ["counter", "gauge", "histogram", "info"].contains(&kind),
                "unexpected type in {line:?}"
            );
            let family = families.entry(name.to_owned()).or_default();
            assert!(family.kind.is_empty(), "second # TYPE for {name}");
            family.kind = kind.to_owned();
            current = Some(name.to_owned());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# UNIT ") {
            let (name, unit) = rest.split_once(' ').expect("# UNIT line without unit");
            assert!(
                name.ends_with(&format!("_{unit}")),
                "unit not in name: {line:?}"
            );
            families.entry(name.to_owned()).or_default().unit = Some(unit.to_owned());
            continue;
        }
        assert!(!line.starts_with('#'), "unknown comment line {line:?}");

        let sample = parse_sample(line);
        let family_name = current
            .as_deref()
            .unwrap_or_else(|| panic!("sample before any # TYPE: {line:?}"));
        let family = families
            .get_mut(family_name)
            .expect("current family exists");
        assert!(
            sample_belongs_to(&sample.name, family_name, &family.kind),
            "sample {} does not belong to family {family_name} of type {}",
            sample.name,
            family.kind
        );
        family.samples.push(sample);
    }

    assert!(saw_eof, "output does not end with # EOF");
    for (name, family) in &families {
        assert!(!family.kind.is_empty(), "family {name} has no # TYPE");
        assert!(family.help.is_some(), "family {name} has no # HELP");
    }
    families
}

fn assert_valid_name(name: &str) {
    let mut chars = name.chars();
    let first = chars.next().expect("empty metric name");
    assert!(
        first.is_ascii_alphabetic() || first == '_' || first == ':',
        "invalid metric name {name:?}"
    );
    assert!(
        chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
        "invalid metric name {name:?}"
    );
}

fn sample_belongs_to(sample: &str, family: &str, kind: &str) -> bool {
    let suffixes: &[&str] = match kind {
        "counter" => &["_total", "_created"],
        "info" => &["_info"],
        "histogram" => &["_bucket", "_sum", "_count", "_created"],
        _ => &[""],
    };
    suffixes
        .iter()
        .any(|suffix| sample == format!("{family}{suffix}"))
}

fn parse_sample(line: &str) -> Sample {
    let (name_and_labels, value) = line
        .rsplit_once(' ')
        .unwrap_or_else(|| panic!("sample without value: {line:?}"));
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("invalid sample value in {line:?}")),
    };

    let (name, labels) = match name_and_labels.split_once('{') {
        None => (name_and_labels, BTreeMap::new()),
        Some((name, rest)) => {
            let body = rest
                .strip_suffix('}')
                .unwrap_or_else(|| panic!("unclosed label set in {line:?}"));
            (name, parse_labels(body, line))
        }
    };
    assert_valid_name(name);
    Sample {
        name: name.to_owned(),
        labels,
        value,
    }
}

/// Parses `a="x",b="y\"z"`, undoing the `\\`, `\"` and `\n` escapes.
fn parse_labels(body: &str, line: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut chars = body.chars().peekable();
    while chars.peek().is_some() {
        let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
        assert_valid_name(&key);
        assert_eq!(
            chars.next(),
            Some('"'),
            "label value not quoted in {line:?}"
        );
        let mut value = String::new();
        loop {
            match chars.next() {
                Some('"') => break,
                Some('\\') => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(c @ ('\\' | '"')) => value.push(c),
                    other => panic!("invalid escape {other:?} in {line:?}"),
                },
                Some(c) => value.push(c),
                None => panic!("unterminated label value in {line:?}"),
            }
        }
        assert!(
            labels.insert(key.clone(), value).is_none(),
            "duplicate label {key} in {line:?}"
        );
        match chars.next() {
            None | Some(',') => {}
            Some(c) => panic!("unexpected {c:?} after label value in {line:?}"),
        }
    }
    labels
}

fn samples_named<'a>(
    families: &'a BTreeMap<String, ParsedFamily>,
    family: &str,
    sample: &str,
) -> Vec<&'a Sample> {
    families
        .get(family)
        .unwrap_or_else(|| panic!("family {family} missing"))
        .samples
        .iter()
        .filter(|s| s.name == sample)
        .collect()
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn every_family_exercised() {
    let metrics = AgentMetrics::new("1.2.3");
    record_everything(&metrics);
    let families = parse(&metrics.encode());

    for name in FAMILY_NAMES {
        let family = families
            .get(*name)
            .unwrap_or_else(|| panic!("family {name} is listed but not registered"));
        assert!(
            !family.samples.is_empty(),
            "family {name} has no sample after record_everything"
        );
    }
    let listed: BTreeSet<&str> = FAMILY_NAMES.iter().copied().collect();
    for name in families.keys() {
        assert!(
            listed.contains(name.as_str()),
            "family {name} is registered but missing from FAMILY_NAMES"
        );
    }
    assert_eq!(
        listed.len(),
        FAMILY_NAMES.len(),
        "FAMILY_NAMES has duplicates"
    );
}

#[test]
fn fresh_registry_families() {
    let metrics = AgentMetrics::new("1.2.3");
    let text = metrics.encode();
    let declared: BTreeSet<&str> = declared_families(&text)
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    // Families with fixed label values or without labels have series from the start.
    // The others appear with their first event.
    let expected = BTreeSet::from([
        "firework_agent_ticks",
        "firework_agent_tick_duration_seconds",
        "firework_agent_plan_actions",
        "firework_agent_image_sync_bytes",
        "firework_agent_image_sync_duration_seconds",
        "firework_agent_image_syncs",
        "firework_agent_route_syncs",
        "firework_agent_build",
    ]);
    assert_eq!(declared, expected);

    let families = parse(&text);
    let ticks = samples_named(
        &families,
        "firework_agent_ticks",
        "firework_agent_ticks_total",
    );
    let results: BTreeSet<&str> = ticks.iter().map(|s| s.labels["result"].as_str()).collect();
    assert_eq!(results, BTreeSet::from(["ok", "error", "no_change"]));
    for sample in ticks {
        assert_eq!(sample.value, 0.0, "{sample:?}");
    }
}

#[test]
fn declared_families_reads_types() {
    let metrics = AgentMetrics::new("1.2.3");
    record_everything(&metrics);
    let text = metrics.encode();
    let types: BTreeMap<&str, &str> = declared_families(&text).into_iter().collect();
    let expected = BTreeMap::from([
        ("firework_agent_ticks", "counter"),
        ("firework_agent_tick_duration_seconds", "histogram"),
        ("firework_agent_plan_actions", "counter"),
        ("firework_agent_vm_starts", "counter"),
        ("firework_agent_vm_stops", "counter"),
        ("firework_agent_vm_restarts", "counter"),
        ("firework_agent_vm_failures", "counter"),
        ("firework_agent_service_health_state", "gauge"),
        ("firework_agent_store_fetches", "counter"),
        ("firework_agent_store_fetch_duration_seconds", "histogram"),
        ("firework_agent_image_sync_bytes", "counter"),
        ("firework_agent_image_sync_duration_seconds", "histogram"),
        ("firework_agent_image_syncs", "counter"),
        ("firework_agent_capacity_vcpus", "gauge"),
        ("firework_agent_capacity_memory_bytes", "gauge"),
        ("firework_agent_applied_revision", "info"),
        ("firework_agent_route_syncs", "counter"),
        ("firework_agent_build", "info"),
    ]);
    assert_eq!(types, expected);
}

#[test]
fn build_info_has_version() {
    let metrics = AgentMetrics::new("1.2.3");
    let families = parse(&metrics.encode());
    let samples = samples_named(
        &families,
        "firework_agent_build",
        "firework_agent_build_info",
    );
    assert_eq!(samples.len(), 1);
    assert_eq!(samples[0].labels, labels(&[("version", "1.2.3")]));
    assert_eq!(samples[0].value, 1.0);
}

#[test]
fn ticks_counted_by_result() {
    let metrics = AgentMetrics::new("1.2.3");
    metrics.record_tick(TickResult::Ok, Duration::from_millis(2));
    metrics.record_tick(TickResult::Ok, Duration::from_millis(3));
    metrics.record_tick(TickResult::NoChange, Duration::from_secs(90));
    let families = parse(&metrics.encode());

    let ticks = samples_named(
        &families,
        "firework_agent_ticks",
        "firework_agent_ticks_total",
    );
    let by_result: BTreeMap<&str, f64> = ticks
        .iter()
        .map(|s| (s.labels["result"].as_str(), s.value))
        .collect();
    assert_eq!(
        by_result,
        BTreeMap::from([("ok", 2.0), ("error", 0.0), ("no_change", 1.0)])
    );

    let family = "firework_agent_tick_duration_seconds";
    let count = samples_named(&families, family, &format!("{family}_count"));
    assert_eq!(count[0].value, 3.0);
    let buckets = samples_named(&families, family, &format!("{family}_bucket"));
    // One bucket per bound plus +Inf.
    assert_eq!(buckets.len(), DURATION_BUCKETS.len() + 1);
    let at_60s = buckets
        .iter()
        .find(|s| s.labels["le"].parse::<f64>().ok() == Some(60.0))
        .expect("bucket with le=60");
    assert_eq!(at_60s.value, 2.0, "the 90 s tick falls only into +Inf");
    let infinite = buckets
        .iter()
        .find(|s| s.labels["le"] == "+Inf")
        .expect("+Inf bucket");
    assert_eq!(infinite.value, 3.0);
}

#[test]
fn plan_actions_summed_per_kind() {
    let metrics = AgentMetrics::new("1.2.3");
    let counts = PlanCounts {
        create: 2,
        update: 0,
        delete: 1,
        unchanged: 7,
    };
    metrics.record_plan(counts);
    metrics.record_plan(counts);
    let families = parse(&metrics.encode());

    let samples = samples_named(
        &families,
        "firework_agent_plan_actions",
        "firework_agent_plan_actions_total",
    );
    let by_kind: BTreeMap<&str, f64> = samples
        .iter()
        .map(|s| (s.labels["kind"].as_str(), s.value))
        .collect();
    assert_eq!(
        by_kind,
        BTreeMap::from([
            ("create", 4.0),
            ("update", 0.0),
            ("delete", 2.0),
            ("unchanged", 14.0)
        ])
    );
}

#[test]
fn health_state_replaces_previous() {
    let metrics = AgentMetrics::new("1.2.3");
    metrics.set_health_state("web", HealthState::Starting);
    metrics.set_health_state("web", HealthState::Healthy);
    metrics.set_health_state("db", HealthState::Unhealthy);
    let families = parse(&metrics.encode());

    let samples = samples_named(
        &families,
        "firework_agent_service_health_state",
        "firework_agent_service_health_state",
    );
    let series: BTreeSet<(&str, &str)> = samples
        .iter()
        .map(|s| (s.labels["service"].as_str(), s.labels["state"].as_str()))
        .collect();
    assert_eq!(
        series,
        BTreeSet::from([("web", "healthy"), ("db", "unhealthy")])
    );
    for sample in samples {
        assert_eq!(sample.value, 1.0, "{sample:?}");
    }
}

#[test]
fn health_state_concurrent_updates() {
    let metrics = Arc::new(AgentMetrics::new("1.2.3"));
    let threads: Vec<_> = HealthState::ALL
        .iter()
        .map(|&state| {
            let metrics = Arc::clone(&metrics);
            std::thread::spawn(move || {
                for _ in 0..200 {
                    metrics.set_health_state("web", state);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let families = parse(&metrics.encode());
    let samples = samples_named(
        &families,
        "firework_agent_service_health_state",
        "firework_agent_service_health_state",
    );
    assert_eq!(samples.len(), 1, "one series per service: {samples:?}");
}

#[test]
fn forget_service_removes_series() {
    let metrics = AgentMetrics::new("1.2.3");
    record_everything(&metrics);
    for service in ["db", "web"] {
        metrics.record_vm_start(service);
        metrics.set_health_state(service, HealthState::Failing);
    }
    metrics.forget_service("web");
    let families = parse(&metrics.encode());

    for (name, family) in &families {
        for sample in &family.samples {
            assert_ne!(
                sample.labels.get("service").map(String::as_str),
                Some("web"),
                "series of the forgotten service left in {name}: {sample:?}"
            );
        }
    }
    let starts = samples_named(
        &families,
        "firework_agent_vm_starts",
        "firework_agent_vm_starts_total",
    );
    assert_eq!(starts.len(), 1);
    assert_eq!(starts[0].labels, labels(&[("service", "db")]));
    let health = samples_named(
        &families,
        "firework_agent_service_health_state",
        "firework_agent_service_health_state",
    );
    assert_eq!(health.len(), 1);
    assert_eq!(health[0].labels["service"], "db");
}

#[test]
fn forget_service_then_record_again() {
    let metrics = AgentMetrics::new("1.2.3");
    metrics.record_vm_restart("web");
    metrics.record_vm_restart("web");
    metrics.forget_service("web");
    metrics.record_vm_restart("web");
    let families = parse(&metrics.encode());

    let restarts = samples_named(
        &families,
        "firework_agent_vm_restarts",
        "firework_agent_vm_restarts_total",
    );
    assert_eq!(restarts.len(), 1);
    assert_eq!(restarts[0].value, 1.0, "the counter starts again from zero");
}

#[test]
fn applied_revision_replaces_old() {
    let metrics = AgentMetrics::new("1.2.3");
    metrics.set_applied_revision("node-1", "edge", "aaaa");
    metrics.set_applied_revision("node-1", "edge", "bbbb");
    metrics.set_applied_revision("node-1", "edge", "bbbb");
    let families = parse(&metrics.encode());

    let samples = samples_named(
        &families,
        "firework_agent_applied_revision",
        "firework_agent_applied_revision_info",
    );
    assert_eq!(samples.len(), 1, "{samples:?}");
    assert_eq!(
        samples[0].labels,
        labels(&[("node", "node-1"), ("label", "edge"), ("revision", "bbbb")])
    );
    assert_eq!(samples[0].value, 1.0);
}

#[test]
fn store_fetch_by_backend_and_result() {
    let metrics = AgentMetrics::new("1.2.3");
    metrics.record_store_fetch(StoreBackend::Git, FetchResult::Ok, Duration::from_millis(5));
    metrics.record_store_fetch(
        StoreBackend::Git,
        FetchResult::Unreachable,
        Duration::from_secs(2),
    );
    metrics.record_store_fetch(StoreBackend::Gcs, FetchResult::Denied, Duration::ZERO);
    let families = parse(&metrics.encode());

    let fetches = samples_named(
        &families,
        "firework_agent_store_fetches",
        "firework_agent_store_fetches_total",
    );
    let series: BTreeMap<(&str, &str), f64> = fetches
        .iter()
        .map(|s| {
            (
                (s.labels["backend"].as_str(), s.labels["result"].as_str()),
                s.value,
            )
        })
        .collect();
    assert_eq!(
        series,
        BTreeMap::from([
            (("git", "ok"), 1.0),
            (("git", "unreachable"), 1.0),
            (("gcs", "denied"), 1.0)
        ])
    );

    let family = "firework_agent_store_fetch_duration_seconds";
    let counts = samples_named(&families, family, &format!("{family}_count"));
    let by_backend: BTreeMap<&str, f64> = counts
        .iter()
        .map(|s| (s.labels["backend"].as_str(), s.value))
        .collect();
    assert_eq!(by_backend, BTreeMap::from([("git", 2.0), ("gcs", 1.0)]));
}

#[test]
fn image_sync_bytes_and_results() {
    let metrics = AgentMetrics::new("1.2.3");
    metrics.record_image_sync(SyncResult::Ok, 1000, Duration::from_secs(12));
    metrics.record_image_sync(SyncResult::NoChange, 0, Duration::from_millis(3));
    metrics.record_image_sync(SyncResult::Error, 24, Duration::from_secs(1));
    let families = parse(&metrics.encode());

    let bytes = samples_named(
        &families,
        "firework_agent_image_sync_bytes",
        "firework_agent_image_sync_bytes_total",
    );
    assert_eq!(bytes[0].value, 1024.0);
    assert_eq!(
        families["firework_agent_image_sync_bytes"].unit.as_deref(),
        Some("bytes")
    );

    let family = "firework_agent_image_sync_duration_seconds";
    let sum = samples_named(&families, family, &format!("{family}_sum"));
    assert!((sum[0].value - 13.003).abs() < 1e-9, "{sum:?}");

    let syncs = samples_named(
        &families,
        "firework_agent_image_syncs",
        "firework_agent_image_syncs_total",
    );
    let by_result: BTreeMap<&str, f64> = syncs
        .iter()
        .map(|s| (s.labels["result"].as_str(), s.value))
        .collect();
    assert_eq!(
        by_result,
        BTreeMap::from([("ok", 1.0), ("no_change", 1.0), ("error", 1.0)])
    );
}

#[test]
fn capacity_memory_in_bytes() {
    let metrics = AgentMetrics::new("1.2.3");
    metrics.set_capacity(&CapacitySnapshot {
        vcpus_total: 8,
        vcpus_reserved: 3,
        vcpus_used: 2,
        memory_total_mib: 1024,
        memory_reserved_mib: 512,
        memory_used_mib: u64::MAX,
    });
    let families = parse(&metrics.encode());

    let vcpus = samples_named(
        &families,
        "firework_agent_capacity_vcpus",
        "firework_agent_capacity_vcpus",
    );
    let vcpus: BTreeMap<&str, f64> = vcpus
        .iter()
        .map(|s| (s.labels["kind"].as_str(), s.value))
        .collect();
    assert_eq!(
        vcpus,
        BTreeMap::from([("total", 8.0), ("reserved", 3.0), ("used", 2.0)])
    );

    let memory = samples_named(
        &families,
        "firework_agent_capacity_memory_bytes",
        "firework_agent_capacity_memory_bytes",
    );
    let memory: BTreeMap<&str, f64> = memory
        .iter()
        .map(|s| (s.labels["kind"].as_str(), s.value))
        .collect();
    assert_eq!(memory["total"], 1_073_741_824.0);
    assert_eq!(memory["reserved"], 536_870_912.0);
    assert_eq!(memory["used"], i64::MAX as f64, "overflow saturates");
}

#[test]
fn route_syncs_by_result() {
    let metrics = AgentMetrics::new("1.2.3");
    metrics.record_route_sync(SyncResult::Error);
    metrics.record_route_sync(SyncResult::Error);
    let families = parse(&metrics.encode());
    let samples = samples_named(
        &families,
        "firework_agent_route_syncs",
        "firework_agent_route_syncs_total",
    );
    let by_result: BTreeMap<&str, f64> = samples
        .iter()
        .map(|s| (s.labels["result"].as_str(), s.value))
        .collect();
    assert_eq!(
        by_result,
        BTreeMap::from([("ok", 0.0), ("no_change", 0.0), ("error", 2.0)])
    );
}

#[test]
fn long_label_values_capped() {
    let metrics = AgentMetrics::new("1.2.3");
    let long_service = "s".repeat(MAX_LABEL_VALUE_LEN * 2);
    let long_revision = "r".repeat(MAX_LABEL_VALUE_LEN + 1);
    metrics.record_vm_start(&long_service);
    metrics.set_applied_revision("node-1", "edge", &long_revision);
    let families = parse(&metrics.encode());

    let starts = samples_named(
        &families,
        "firework_agent_vm_starts",
        "firework_agent_vm_starts_total",
    );
    assert_eq!(starts[0].labels["service"], "s".repeat(MAX_LABEL_VALUE_LEN));
    let revision = samples_named(
        &families,
        "firework_agent_applied_revision",
        "firework_agent_applied_revision_info",
    );
    assert_eq!(
        revision[0].labels["revision"],
        "r".repeat(MAX_LABEL_VALUE_LEN)
    );

    // forget_service caps the same way, so it finds the capped series. A family left
    // without series disappears from the output.
    metrics.forget_service(&long_service);
    let families = parse(&metrics.encode());
    assert!(!families.contains_key("firework_agent_vm_starts"));
}

#[test]
fn label_value_escaped() {
    let metrics = AgentMetrics::new("1.2.3");
    metrics.record_vm_start("we\"b\\x\ny");
    let families = parse(&metrics.encode());
    let starts = samples_named(
        &families,
        "firework_agent_vm_starts",
        "firework_agent_vm_starts_total",
    );
    assert_eq!(starts[0].labels["service"], "we\"b\\x\ny");
}
