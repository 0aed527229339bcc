//! Feeds the scrape output to the OpenMetrics parser of the Python Prometheus client
//! (Debian package python3-prometheus-client, installed by .ci/setup-metrics.sh).

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use common::record_everything;
use firework_metrics::{AgentMetrics, FAMILY_NAMES, HealthState};

/// Debian's interpreter, because a pyenv python3 earlier on PATH lacks Debian packages.
const PYTHON: &str = "/usr/bin/python3";

/// Parses stdin strictly and prints one line per family: name, type and sample count.
const PARSER_SCRIPT: &str = r#"
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
for family in text_string_to_metric_families(sys.stdin.read()):
    print(family.name, family.type, len(family.samples))
"#;

fn parser_available() -> bool {
    Path::new(PYTHON).exists()
        && Command::new(PYTHON)
            .args(["-c", "import prometheus_client.openmetrics.parser"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
}

/// Returns the parsed families as name to (type, sample count), or None when the parser
/// is missing outside CI.
fn parse_with_python(text: &str) -> Option<BTreeMap<String, (String, usize)>> {
    if !parser_available() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{PYTHON} with prometheus_client is missing; run .ci/setup-metrics.sh"
        );
        eprintln!(
            "skipping: {PYTHON} with prometheus_client is missing (.ci/setup-metrics.sh installs it)"
        );
        return None;
    }

    let mut child = Command::new(PYTHON)
        .args(["-c", PARSER_SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the OpenMetrics parser");
    child
        .stdin
        .take()
        .expect("parser stdin is piped")
        .write_all(text.as_bytes())
        .expect("write the scrape to the parser");
    let output = child
        .wait_with_output()
        .expect("wait for the OpenMetrics parser");
    assert!(
        output.status.success(),
        "the OpenMetrics parser rejected the output: {}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );

    let stdout = String::from_utf8(output.stdout).expect("parser output is UTF-8");
    let families = stdout
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            assert_eq!(fields.len(), 3, "unexpected parser line {line:?}");
            (
                fields[0].to_owned(),
                (
                    fields[1].to_owned(),
                    fields[2].parse().expect("sample count"),
                ),
            )
        })
        .collect();
    Some(families)
}

#[test]
fn python_parser_reads_every_family() {
    let metrics = AgentMetrics::new("1.2.3");
    record_everything(&metrics);
    let Some(families) = parse_with_python(&metrics.encode()) else {
        return;
    };

    for name in FAMILY_NAMES {
        let (_, samples) = families
            .get(*name)
            .unwrap_or_else(|| panic!("the parser did not return family {name}"));
        assert!(*samples > 0, "family {name} has no samples");
    }
    assert_eq!(families.len(), FAMILY_NAMES.len(), "{families:?}");
    assert_eq!(families["firework_agent_applied_revision"].0, "info");
    assert_eq!(
        families["firework_agent_tick_duration_seconds"].0,
        "histogram"
    );
}

#[test]
fn python_parser_reads_fresh_registry() {
    let metrics = AgentMetrics::new("1.2.3");
    parse_with_python(&metrics.encode());
}

#[test]
fn python_parser_after_forget_and_replace() {
    let metrics = AgentMetrics::new("1.2.3");
    record_everything(&metrics);
    metrics.set_health_state("web", HealthState::Restarting);
    metrics.set_applied_revision("node-1", "edge", "ffff");
    metrics.forget_service("web");
    let Some(families) = parse_with_python(&metrics.encode()) else {
        return;
    };

    assert!(!families.contains_key("firework_agent_vm_starts"));
    assert!(!families.contains_key("firework_agent_service_health_state"));
    assert_eq!(families["firework_agent_applied_revision"].1, 1);
}
