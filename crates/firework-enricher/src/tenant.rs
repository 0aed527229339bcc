//! Tenant expansion: turns `tenants/<id>/<base>.yaml` files into services.
//!
//! * Override mode: a service in `services/` is named `<base>`. The tenant copy is the base
//!   spec with every field the tenant file sets replacing the base's (`env` and `metadata`
//!   merge per key, `health_check` merges per field); name `<id>-<base>`; image the tenant's
//!   or the base image's directory plus `<id>-` plus its file name. `kernel_args` may only be
//!   set when the base has `allow_tenant_kernel_args: true`.
//! * Standalone mode: no such base service and the file sets `node_type`: the file is a
//!   whole spec named `<id>-<base>`, image `/var/lib/images/<id>-<base>-rootfs.ext4` unless
//!   written.
//! * Neither: the file is ignored with a warning.
//!
//! Link and cross-node link targets of a tenant copy are prefixed with `<id>-`, so a tenant's
//! services talk to the same tenant's copies.

use std::collections::BTreeMap;

use firework_model::diagnostic::Diagnostic;
use firework_model::service::{CrossNodeLink, Link};
use firework_model::spec::{HealthCheckSpec, InputTree, ServiceSpec, SpecFile, Tenant};

use crate::diag;

/// Where an expanded service came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A file under `services/`.
    Service,
    /// A tenant file overriding the base service of the same name.
    TenantOverride {
        /// The tenant id.
        tenant: String,
        /// The base service's file.
        base_file: String,
    },
    /// A tenant file that is a whole spec.
    TenantStandalone {
        /// The tenant id.
        tenant: String,
    },
}

/// One service after tenant expansion, still a spec (defaults not applied).
#[derive(Debug, Clone, PartialEq)]
pub struct Expanded {
    /// The spec, with the final name in `spec.name`.
    pub spec: ServiceSpec,
    /// The file the service is reported against.
    pub file: String,
    /// Where the service came from.
    pub origin: Origin,
}

impl Expanded {
    /// The service name, empty when none was written.
    pub fn name(&self) -> &str {
        self.spec.name.as_deref().unwrap_or("")
    }
}

/// Expands `tree` into its services: base services in file order, then tenant copies in
/// tenant and file order. Errors and warnings are appended to `findings`.
pub fn expand(tree: &InputTree, findings: &mut Vec<Diagnostic>) -> Vec<Expanded> {
    let mut out: Vec<Expanded> = tree
        .services
        .iter()
        .map(|file| Expanded {
            spec: file.spec.clone(),
            file: file.file.clone(),
            origin: Origin::Service,
        })
        .collect();
    let mut bases: BTreeMap<&str, &SpecFile> = BTreeMap::new();
    for file in &tree.services {
        if let Some(name) = file.spec.name.as_deref() {
            bases.entry(name).or_insert(file);
        }
    }
    for tenant in &tree.tenants {
        expand_tenant(tenant, &bases, &mut out, findings);
    }
    out
}

fn expand_tenant(
    tenant: &Tenant,
    bases: &BTreeMap<&str, &SpecFile>,
    out: &mut Vec<Expanded>,
    findings: &mut Vec<Diagnostic>,
) {
    for (base_name, file) in &tenant.files {
        let name = format!("{}-{base_name}", tenant.id);
        if let Some(base) = bases.get(base_name.as_str()) {
            if file.spec.kernel_args.is_some() && !base.spec.allow_tenant_kernel_args {
                findings.push(diag::error(
                    "tenant-kernel-args",
                    &file.file,
                    "kernel_args",
                    format!(
                        "tenant {} may not set kernel_args for service {base_name}: \
                         {} does not set allow_tenant_kernel_args: true",
                        tenant.id, base.file
                    ),
                ));
            }
            let spec = override_spec(&tenant.id, &name, &base.spec, &file.spec);
            out.push(Expanded {
                spec,
                file: file.file.clone(),
                origin: Origin::TenantOverride {
                    tenant: tenant.id.clone(),
                    base_file: base.file.clone(),
                },
            });
        } else if file.spec.node_type.is_some() {
            let mut spec = file.spec.clone();
            spec.name = Some(name.clone());
            if spec.image.is_none() {
                spec.image = Some(format!("/var/lib/images/{name}-rootfs.ext4"));
            }
            spec.links = spec.links.map(|links| prefix_links(&tenant.id, links));
            spec.cross_node_links = spec
                .cross_node_links
                .map(|links| prefix_cross_node_links(&tenant.id, links));
            out.push(Expanded {
                spec,
                file: file.file.clone(),
                origin: Origin::TenantStandalone {
                    tenant: tenant.id.clone(),
                },
            });
        } else {
            findings.push(diag::warning(
                "tenant-file-ignored",
                &file.file,
                "",
                format!(
                    "ignored: no service named {base_name} in services/ and no node_type, \
                     so the file neither overrides a service nor defines one"
                ),
            ));
        }
    }
}

/// The base spec with every field the tenant file sets applied.
fn override_spec(tenant: &str, name: &str, base: &ServiceSpec, over: &ServiceSpec) -> ServiceSpec {
    let mut spec = base.clone();
    spec.name = Some(name.to_string());
    spec.image = match &over.image {
        Some(image) => Some(image.clone()),
        None => base
            .image
            .as_deref()
            .map(|image| tenant_image(tenant, image)),
    };
    replace(&mut spec.vcpus, &over.vcpus);
    replace(&mut spec.memory_mb, &over.memory_mb);
    replace(&mut spec.kernel_args, &over.kernel_args);
    replace(&mut spec.node_type, &over.node_type);
    replace(&mut spec.network, &over.network);
    replace(&mut spec.port_forwards, &over.port_forwards);
    replace(&mut spec.anti_affinity_group, &over.anti_affinity_group);
    replace(&mut spec.node_host_ip_env, &over.node_host_ip_env);
    spec.health_check = match (&base.health_check, &over.health_check) {
        (Some(base), Some(over)) => Some(merge_health_check(over, base)),
        (None, Some(over)) => Some(over.clone()),
        (base, None) => base.clone(),
    };
    for (key, value) in &over.env {
        spec.env.insert(key.clone(), value.clone());
    }
    for (key, value) in &over.metadata {
        spec.metadata.insert(key.clone(), value.clone());
    }
    let links = over.links.clone().or_else(|| base.links.clone());
    spec.links = links.map(|links| prefix_links(tenant, links));
    let cross = over
        .cross_node_links
        .clone()
        .or_else(|| base.cross_node_links.clone());
    spec.cross_node_links = cross.map(|links| prefix_cross_node_links(tenant, links));
    // The permission belongs to the base service and is not inherited by tenant copies.
    spec.allow_tenant_kernel_args = false;
    spec
}

fn replace<T: Clone>(target: &mut Option<T>, value: &Option<T>) {
    if value.is_some() {
        target.clone_from(value);
    }
}

/// `/dir/file` becomes `/dir/<tenant>-file`.
fn tenant_image(tenant: &str, image: &str) -> String {
    match image.rsplit_once('/') {
        Some((dir, file)) => format!("{dir}/{tenant}-{file}"),
        None => format!("{tenant}-{image}"),
    }
}

fn prefix_links(tenant: &str, links: Vec<Link>) -> Vec<Link> {
    links
        .into_iter()
        .map(|mut link| {
            link.service = format!("{tenant}-{}", link.service);
            link
        })
        .collect()
}

fn prefix_cross_node_links(tenant: &str, links: Vec<CrossNodeLink>) -> Vec<CrossNodeLink> {
    links
        .into_iter()
        .map(|mut link| {
            link.service = format!("{tenant}-{}", link.service);
            link
        })
        .collect()
}

/// Field-by-field merge: every field `first` sets wins over `second`.
pub fn merge_health_check(first: &HealthCheckSpec, second: &HealthCheckSpec) -> HealthCheckSpec {
    HealthCheckSpec {
        kind: first.kind.clone().or_else(|| second.kind.clone()),
        target: first.target.clone().or_else(|| second.target.clone()),
        port: first.port.or(second.port),
        path: first.path.clone().or_else(|| second.path.clone()),
        interval: first.interval.or(second.interval),
        timeout: first.timeout.or(second.timeout),
        retries: first.retries.or(second.retries),
        start_period: first.start_period.or(second.start_period),
        success_threshold: first.success_threshold.or(second.success_threshold),
        expected_status: first.expected_status.or(second.expected_status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_image_prefixes_the_file_name() {
        assert_eq!(
            tenant_image("tenant-1", "/var/lib/images/kibana-rootfs.ext4"),
            "/var/lib/images/tenant-1-kibana-rootfs.ext4"
        );
    }
}
