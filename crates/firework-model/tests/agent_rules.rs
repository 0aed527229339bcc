//! Agent config defaults and rules.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use firework_model::agent::{AgentConfig, LogLevel, StoreType, UpdateStrategy, parse_agent_config};
use firework_model::{ConfigError, Diagnostic, Severity};

fn host() -> Option<String> {
    Some("host-1".to_string())
}

fn parse(text: &str) -> AgentConfig {
    match parse_agent_config(text.as_bytes(), "agent.yaml", &host) {
        Ok(parsed) => parsed.value,
        Err(error) => panic!("{error}: {:#?}", error.diagnostics()),
    }
}

fn errors_of(text: &str) -> Vec<Diagnostic> {
    match parse_agent_config(text.as_bytes(), "agent.yaml", &host) {
        Ok(parsed) => panic!("expected errors, got {:?}", parsed.value),
        Err(ConfigError::Invalid { diagnostics, .. }) => diagnostics
            .into_iter()
            .filter(|d| d.severity == Severity::Error)
            .collect(),
        Err(other) => panic!("unexpected error {other}"),
    }
}

fn assert_one_error(text: &str, path: &str, message: &str) {
    let errors = errors_of(text);
    assert_eq!(errors.len(), 1, "{text}: {errors:#?}");
    assert_eq!(errors[0].path, path, "{text}");
    assert_eq!(errors[0].message, message, "{text}");
}

#[test]
fn defaults_match_the_go_firework() {
    let config = parse("store_url: https://git.example.com/c.git\n");
    assert_eq!(config.store_type, StoreType::Git);
    assert_eq!(config.store_branch, "main");
    assert_eq!(config.poll_interval.to_string(), "30s");
    assert_eq!(
        config.firecracker_bin,
        PathBuf::from("/usr/bin/firecracker")
    );
    assert_eq!(config.state_dir, PathBuf::from("/var/lib/firework"));
    assert_eq!(config.log_level, LogLevel::Info);
    assert_eq!(config.images_dir, PathBuf::from("/var/lib/images"));
    assert_eq!(config.vm_subnet.unwrap().to_string(), "172.16.0.0/24");
    assert_eq!(config.vm_gateway.to_string(), "172.16.0.1");
    assert_eq!(config.vm_bridge, "br-firework");
    assert_eq!(config.update_strategy, UpdateStrategy::AllAtOnce);
    assert!(config.enable_health_checks);
    assert!(config.enable_network_setup);
    assert!(config.enable_capacity_check);
    assert_eq!(config.node_name, "host-1");
    assert_eq!(config.node_names, ["host-1"]);
    assert_eq!(config.node_id, "host-1");
    assert!(config.node_types.is_empty());
    assert_eq!(config.progress_deadline.to_string(), "5m0s");
    assert_eq!(config.min_ready.to_string(), "10s");
    assert_eq!(config.delete_guard_percent, 100);
    assert_eq!(config.image_gc_grace.to_string(), "1h0m0s");
}

#[test]
fn store_type_is_inferred() {
    assert_eq!(parse("s3_bucket: b\n").store_type, StoreType::S3);
    assert_eq!(parse("gcs_bucket: b\n").store_type, StoreType::Gcs);
    assert_eq!(parse("node_name: a\n").store_type, StoreType::Local);
}

#[test]
fn node_names_and_node_name_fill_each_other() {
    let config = parse("node_names: [web, db]\nstore_type: local\n");
    assert_eq!(config.node_name, "web");
    assert_eq!(config.node_names, ["web", "db"]);
    let config = parse("node_name: solo\nstore_type: local\n");
    assert_eq!(config.node_names, ["solo"]);
}

#[test]
fn typos_in_choices_are_errors() {
    assert_one_error(
        "store_type: local\nupdate_strategy: rollin\n",
        "update_strategy",
        "invalid update_strategy \"rollin\": allowed all-at-once, rolling",
    );
    assert_one_error(
        "store_type: local\nlog_level: verbose\n",
        "log_level",
        "invalid log_level \"verbose\": allowed trace, debug, info, warn, error",
    );
    assert_one_error(
        "store_type: consul\n",
        "store_type",
        "unsupported store_type \"consul\": allowed local, git, s3, gcs",
    );
}

#[test]
fn store_required_keys() {
    assert_one_error(
        "store_type: git\n",
        "store_url",
        "missing required key `store_url` for store_type git",
    );
    assert_one_error(
        "store_type: s3\n",
        "s3_bucket",
        "missing required key `s3_bucket` for store_type s3",
    );
    assert_one_error(
        "store_type: gcs\n",
        "gcs_bucket",
        "missing required key `gcs_bucket` for store_type gcs",
    );
}

#[test]
fn poll_interval_rules() {
    assert_one_error(
        "store_type: local\npoll_interval: 0s\n",
        "poll_interval",
        "invalid poll_interval 0s: it must be positive",
    );
    assert_one_error(
        "store_type: local\npoll_interval: 30\n",
        "poll_interval",
        "invalid duration \"30\": missing unit; write a number with a unit: ns, us, ms, s, m or h (e.g. 500ms, 30s, 1m30s)",
    );
}

#[test]
fn subnet_and_gateway_rules() {
    assert_one_error(
        "store_type: local\nvm_subnet: 10.0.0.0/31\n",
        "vm_subnet",
        "invalid vm_subnet \"10.0.0.0/31\": a /31 has no room for a gateway and a guest; use /30 or wider",
    );
    assert_one_error(
        "store_type: local\nvm_subnet: 10.0.0.0\n",
        "vm_subnet",
        "invalid vm_subnet \"10.0.0.0\": write an IPv4 CIDR such as 172.16.0.0/24",
    );
    assert_one_error(
        "store_type: local\nvm_subnet: 10.0.0.0/24\nvm_gateway: 10.0.1.1\n",
        "vm_gateway",
        "invalid vm_gateway 10.0.1.1: it must be a host address inside vm_subnet 10.0.0.0/24",
    );
    assert_one_error(
        "store_type: local\nvm_subnet: 10.0.0.0/24\nvm_gateway: 10.0.0.255\n",
        "vm_gateway",
        "invalid vm_gateway 10.0.0.255: it must be a host address inside vm_subnet 10.0.0.0/24",
    );
    let config = parse("store_type: local\nvm_subnet: 10.0.0.0/30\nvm_gateway: 10.0.0.1/30\n");
    assert_eq!(config.vm_gateway.to_string(), "10.0.0.1");
    let config = parse("store_type: local\nvm_subnet: \"\"\n");
    assert_eq!(config.vm_subnet, None);
}

#[test]
fn image_sources_are_exclusive() {
    assert_one_error(
        "store_type: local\ns3_images_bucket: a\ngcs_images_bucket: b\n",
        "s3_images_bucket",
        "s3_images_bucket, gcs_images_bucket and images_source_dir are mutually exclusive: set one",
    );
}

#[test]
fn labels_are_checked() {
    assert_one_error(
        "store_type: local\nnode_names: [web, \"../etc\"]\n",
        "node_names[1]",
        "invalid label \"../etc\": use 1 to 253 characters of letters, digits, '.', '_' and '-', starting with a letter or digit",
    );
    assert_one_error(
        "store_type: local\nnode_names: [web, web]\n",
        "node_names[1]",
        "duplicate label \"web\"",
    );
}

#[test]
fn node_types_are_checked() {
    let config = parse("store_type: local\nnode_name: n1\nnode_types: [web, backend]\n");
    assert_eq!(config.node_types, ["web", "backend"]);
    assert_eq!(config.node_names, ["n1"]);
    assert_one_error(
        "store_type: local\nnode_types: [web, \"a b\"]\n",
        "node_types[1]",
        "invalid node type \"a b\": use 1 to 253 characters of letters, digits, '.', '_' and '-', starting with a letter or digit",
    );
    assert_one_error(
        "store_type: local\nnode_types: [web, web]\n",
        "node_types[1]",
        "duplicate node type \"web\"",
    );
}

#[test]
fn rollout_gate_rules() {
    let config = parse("store_type: local\nprogress_deadline: 2m\nmin_ready: 0s\n");
    assert_eq!(config.progress_deadline.to_string(), "2m0s");
    assert!(config.min_ready.is_zero());
    assert_one_error(
        "store_type: local\nprogress_deadline: 0s\n",
        "progress_deadline",
        "invalid progress_deadline 0s: it must be positive",
    );
    assert_one_error(
        "store_type: local\nprogress_deadline: 30s\nmin_ready: 30s\n",
        "min_ready",
        "invalid min_ready 30s: it must be shorter than progress_deadline 30s",
    );
    assert_one_error(
        "store_type: local\nmin_ready: 10m\n",
        "min_ready",
        "invalid min_ready 10m0s: it must be shorter than progress_deadline 5m0s",
    );
}

#[test]
fn image_gc_grace_rules() {
    let config = parse("store_type: local\nimage_gc_grace: 0s\n");
    assert!(config.image_gc_grace.is_zero());
    let config = parse("store_type: local\nimage_gc_grace: 24h\n");
    assert_eq!(config.image_gc_grace.to_string(), "24h0m0s");
    assert_one_error(
        "store_type: local\nimage_gc_grace: -5s\n",
        "image_gc_grace",
        "invalid duration \"-5s\": negative durations are not allowed; write a number with a \
         unit: ns, us, ms, s, m or h (e.g. 500ms, 30s, 1m30s)",
    );
}

#[test]
fn capacity_override_rules() {
    let config = parse("store_type: local\ncapacity_vcpus: 16\n");
    assert_eq!(config.capacity_vcpus, Some(16));
    assert_eq!(config.capacity_memory_mb, None);
    assert_one_error(
        "store_type: local\ncapacity_vcpus: 0\n",
        "capacity_vcpus",
        "invalid capacity_vcpus 0: it must be at least 1, or left out to use the host's",
    );
    assert_one_error(
        "store_type: local\ncapacity_memory_mb: 0\n",
        "capacity_memory_mb",
        "invalid capacity_memory_mb 0: it must be at least 1, or left out to use the host's",
    );
}

#[test]
fn jailer_cgroup_rules() {
    let config = parse("store_type: local\njailer_parent_cgroup: firework\n");
    let cgroup = config.jailer_cgroup.unwrap();
    assert_eq!(cgroup.parent, "firework");
    assert_eq!(cgroup.root, PathBuf::from("/sys/fs/cgroup"));
    assert_eq!(cgroup.memory_overhead_mib, 64);
    assert_eq!(parse("store_type: local\n").jailer_cgroup, None);

    for parent in ["/firework", "a/../b", "a//b", "fire work", "firework/"] {
        let errors = errors_of(&format!(
            "store_type: local\njailer_parent_cgroup: \"{parent}\"\n"
        ));
        assert_eq!(errors.len(), 1, "{parent}: {errors:#?}");
        assert_eq!(errors[0].path, "jailer_parent_cgroup");
        assert!(
            errors[0]
                .message
                .starts_with(&format!("invalid jailer_parent_cgroup {parent:?}: ")),
            "{}",
            errors[0].message
        );
    }

    let parsed = parse_agent_config(
        b"store_type: local\njailer_memory_overhead_mib: 16\n",
        "agent.yaml",
        &host,
    )
    .unwrap();
    assert_eq!(parsed.value.jailer_cgroup, None);
    assert_eq!(parsed.warnings.len(), 1);
    assert_eq!(parsed.warnings[0].code, "ignored-key");
    assert_eq!(
        parsed.warnings[0].message,
        "jailer_memory_overhead_mib has no effect without jailer_parent_cgroup"
    );
}

#[test]
fn delete_guard_percent_rules() {
    assert_eq!(
        parse("store_type: local\ndelete_guard_percent: 50\n").delete_guard_percent,
        50
    );
    for (text, value) in [("0", "0"), ("101", "101"), ("300", "300")] {
        assert_one_error(
            &format!("store_type: local\ndelete_guard_percent: {text}\n"),
            "delete_guard_percent",
            &format!("invalid delete_guard_percent {value}: write a percentage from 1 to 100"),
        );
    }
}

#[test]
fn unknown_key_is_a_warning() {
    let parsed = parse_agent_config(
        b"store_type: local\nregistry_url: https://x\n",
        "agent.yaml",
        &host,
    )
    .unwrap();
    assert_eq!(parsed.warnings.len(), 1);
    assert_eq!(parsed.warnings[0].code, "unknown-key");
    assert_eq!(parsed.warnings[0].path, "registry_url");
}

#[test]
fn booleans_are_strict() {
    assert_one_error(
        "store_type: local\nenable_health_checks: yes\n",
        "enable_health_checks",
        "invalid boolean \"yes\": write true or false",
    );
}

#[test]
fn missing_file_is_a_read_error() {
    let error =
        firework_model::agent::load_agent_config("/nonexistent/agent.yaml", &host).unwrap_err();
    assert!(matches!(error, ConfigError::Read { .. }));
    assert_eq!(error.to_string(), "failed to read /nonexistent/agent.yaml");
}
