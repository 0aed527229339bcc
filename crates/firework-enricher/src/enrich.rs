//! Enrichment of one service: defaults precedence (service, then `defaults.yaml`, then the
//! built-in values) and the health check merge.

use firework_model::diagnostic::Diagnostic;
use firework_model::node::{NetworkSpec, Service};
use firework_model::service::{
    DEFAULT_HEALTH_INTERVAL, DEFAULT_HEALTH_RETRIES, DEFAULT_HEALTH_TIMEOUT, HealthCheck,
    HealthCheckType,
};
use firework_model::spec::{Defaults, HealthCheckSpec};

use crate::diag;
use crate::tenant::{Expanded, merge_health_check};

/// Kernel used when neither the service nor `defaults.yaml` names one.
pub const DEFAULT_KERNEL: &str = "/var/lib/images/vmlinux-5.10";
/// vCPUs used when neither the service nor `defaults.yaml` sets them.
pub const DEFAULT_VCPUS: u32 = 1;
/// Memory in MiB used when neither the service nor `defaults.yaml` sets it.
pub const DEFAULT_MEMORY_MB: u32 = 256;
/// Boot arguments used when neither the service nor `defaults.yaml` sets them.
pub const DEFAULT_KERNEL_ARGS: &str = "console=ttyS0 reboot=k panic=1 pci=off init=/sbin/fc-init";

/// Applies the defaults to one expanded service. Returns the findings when the merged
/// health check is incomplete.
///
/// A health check only reaches the output for a networked service: without a guest address
/// the agent could never reach it. Validation warns when a service writes its own check
/// without networking; a check inherited from `defaults.yaml` is dropped silently.
pub fn enrich(expanded: &Expanded, defaults: &Defaults) -> Result<Service, Vec<Diagnostic>> {
    let spec = &expanded.spec;
    let name = expanded.name().to_string();
    let networked = spec.network == Some(true);
    let merged = match (&spec.health_check, &defaults.health_check) {
        (Some(own), Some(default)) => Some(merge_health_check(own, default)),
        (Some(own), None) => Some(own.clone()),
        (None, Some(default)) => Some(default.clone()),
        (None, None) => None,
    };
    let health_check = match merged {
        Some(check) if networked => Some(health_check(&name, &expanded.file, &check)?),
        _ => None,
    };
    Ok(Service {
        name,
        image: spec.image.clone().unwrap_or_default(),
        kernel: spec
            .kernel
            .clone()
            .or_else(|| defaults.kernel.clone())
            .unwrap_or_else(|| DEFAULT_KERNEL.to_string()),
        vcpus: spec.vcpus.or(defaults.vcpus).unwrap_or(DEFAULT_VCPUS),
        memory_mb: spec
            .memory_mb
            .or(defaults.memory_mb)
            .unwrap_or(DEFAULT_MEMORY_MB),
        kernel_args: Some(
            spec.kernel_args
                .clone()
                .or_else(|| defaults.kernel_args.clone())
                .unwrap_or_else(|| DEFAULT_KERNEL_ARGS.to_string()),
        ),
        network: networked.then(NetworkSpec::default),
        port_forwards: spec.port_forwards.clone().unwrap_or_default(),
        health_check,
        env: spec.env.clone(),
        links: spec.links.clone().unwrap_or_default(),
        metadata: spec.metadata.clone(),
        anti_affinity_group: spec.anti_affinity_group.clone(),
        cross_node_links: spec.cross_node_links.clone().unwrap_or_default(),
        node_host_ip_env: spec.node_host_ip_env.clone(),
        node_type: spec.node_type.clone(),
    })
}

fn health_check(
    name: &str,
    file: &str,
    check: &HealthCheckSpec,
) -> Result<HealthCheck, Vec<Diagnostic>> {
    let mut errors = Vec::new();
    let kind = match check.kind.as_deref() {
        Some("http") => Some(HealthCheckType::Http),
        Some("tcp") => Some(HealthCheckType::Tcp),
        Some(other) => {
            errors.push(diag::error(
                "invalid-value",
                file,
                "health_check.type",
                format!("service {name}: invalid health check type {other:?}: allowed http or tcp"),
            ));
            None
        }
        None => {
            errors.push(diag::error(
                "missing",
                file,
                "health_check.type",
                format!(
                    "service {name}: the health check has no type in the service or in \
                     defaults.yaml: write http or tcp"
                ),
            ));
            None
        }
    };
    if check.port.is_none() && check.target.is_none() {
        errors.push(diag::error(
            "missing",
            file,
            "health_check.port",
            format!("service {name}: the health check needs a port (or a target)"),
        ));
    }
    let interval = check.interval.unwrap_or(DEFAULT_HEALTH_INTERVAL);
    let timeout = check.timeout.unwrap_or(DEFAULT_HEALTH_TIMEOUT);
    for (field, value) in [("interval", interval), ("timeout", timeout)] {
        if value.is_zero() {
            errors.push(diag::error(
                "invalid-value",
                file,
                &format!("health_check.{field}"),
                format!("service {name}: health check {field} {value} must be positive"),
            ));
        }
    }
    if timeout > interval {
        errors.push(diag::error(
            "invalid-value",
            file,
            "health_check.timeout",
            format!(
                "service {name}: health check timeout {timeout} is longer than interval \
                 {interval} (after merging with defaults.yaml)"
            ),
        ));
    }
    let retries = check.retries.unwrap_or(DEFAULT_HEALTH_RETRIES);
    let success_threshold = check.success_threshold.unwrap_or(1);
    for (field, value) in [
        ("retries", retries),
        ("success_threshold", success_threshold),
    ] {
        if value == 0 {
            errors.push(diag::error(
                "invalid-value",
                file,
                &format!("health_check.{field}"),
                format!("service {name}: health check {field} must be at least 1"),
            ));
        }
    }
    let Some(kind) = kind else {
        return Err(errors);
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    let path = match (&check.path, kind, &check.target) {
        (Some(path), _, _) => Some(path.clone()),
        (None, HealthCheckType::Http, None) => Some("/".to_string()),
        _ => None,
    };
    Ok(HealthCheck {
        kind,
        target: check.target.clone(),
        port: check.port,
        path,
        interval,
        timeout,
        retries,
        start_period: check.start_period.unwrap_or_default(),
        success_threshold,
        expected_status: check.expected_status,
    })
}
