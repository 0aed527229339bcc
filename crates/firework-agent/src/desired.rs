//! From node configs to desired VMs: merging labels, resolving links, injecting the
//! environment and building the spec the VM runtime launches.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use firework_model::node::Service;
use firework_net::AppliedNetwork;
use firework_store::DesiredState;
use firework_vmm::{VmNetwork, VmSpec};

use crate::env::inject_env;
use crate::error::{SpecError, TickError};
use crate::spec::{DesiredVm, Fingerprint, NetworkFingerprint};

/// Boot arguments of a service that sets none, as the Go firework's VM manager used.
pub const DEFAULT_KERNEL_ARGS: &str = "console=ttyS0 reboot=k panic=1 pci=off";

/// A service with the label and revision it was read from.
#[derive(Debug, Clone, PartialEq)]
pub struct LabeledService {
    /// The label.
    pub label: String,
    /// The label's revision.
    pub revision: String,
    /// The service.
    pub service: Service,
}

/// Merges the services of every label. A service name in two labels fails the whole tick,
/// because neither definition can be trusted to win.
pub fn merge_labels(state: &DesiredState) -> Result<Vec<LabeledService>, TickError> {
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    let mut merged = Vec::new();
    for (label, entry) in &state.entries {
        for service in &entry.config.services {
            if let Some(first) = seen.insert(&service.name, label) {
                return Err(TickError::DuplicateService {
                    service: service.name.clone(),
                    first: first.to_owned(),
                    second: label.clone(),
                });
            }
            merged.push(LabeledService {
                label: label.clone(),
                revision: entry.revision.to_string(),
                service: service.clone(),
            });
        }
    }
    merged.sort_by(|a, b| a.service.name.cmp(&b.service.name));
    Ok(merged)
}

/// Returns the labels whose node config says `services: []`.
pub fn explicit_empty_labels(state: &DesiredState) -> BTreeSet<String> {
    state
        .entries
        .iter()
        .filter(|(_, entry)| entry.config.services.is_empty())
        .map(|(label, _)| label.clone())
        .collect()
}

/// Inputs of [`build_desired`] besides the services.
#[derive(Debug, Clone, Copy)]
pub struct BuildContext<'a> {
    /// Assigned guest addresses, `None` when the agent has no `vm_subnet`.
    pub network: Option<&'a AppliedNetwork>,
    /// Image content version of each service from the image sync step, or why the image
    /// is not usable.
    pub image_versions: &'a BTreeMap<String, Result<String, String>>,
}

/// Builds the desired VM of every service. A service that cannot be built is returned
/// with its error instead, and the caller leaves its VM as it is.
pub fn build_desired(
    services: &[LabeledService],
    context: BuildContext<'_>,
) -> (Vec<DesiredVm>, Vec<(String, SpecError)>) {
    let mut built = Vec::with_capacity(services.len());
    let mut failed = Vec::new();
    let names: BTreeSet<&str> = services.iter().map(|s| s.service.name.as_str()).collect();
    for labeled in services {
        match build_one(labeled, &names, context) {
            Ok(vm) => built.push(vm),
            Err(error) => failed.push((labeled.service.name.clone(), error)),
        }
    }
    (built, failed)
}

fn build_one(
    labeled: &LabeledService,
    names: &BTreeSet<&str>,
    context: BuildContext<'_>,
) -> Result<DesiredVm, SpecError> {
    let service = &labeled.service;
    let name = service.name.as_str();
    let image_version = match context.image_versions.get(name) {
        Some(Ok(version)) => version.clone(),
        Some(Err(reason)) => {
            return Err(SpecError::Image {
                service: name.to_owned(),
                reason: reason.clone(),
            });
        }
        None => String::new(),
    };

    let mut kernel_args = service
        .kernel_args
        .clone()
        .filter(|args| !args.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_KERNEL_ARGS.to_owned());
    let mut network = None;
    if service.network.is_some() {
        let applied = context.network.ok_or_else(|| SpecError::NoSubnet {
            service: name.to_owned(),
        })?;
        let assigned = applied
            .services
            .get(name)
            .ok_or_else(|| SpecError::NoAddress {
                service: name.to_owned(),
            })?;
        kernel_args = firework_net::with_ip_arg(
            name,
            &kernel_args,
            assigned.address,
            applied.gateway,
            applied.subnet,
        )
        .map_err(|source| SpecError::IpArg {
            service: name.to_owned(),
            source: Box::new(source),
        })?;
        network = Some(NetworkFingerprint {
            tap: assigned.tap.clone(),
            mac: assigned.mac.clone(),
            guest_ip: assigned.address,
        });
    }

    let mut env = service.env.clone();
    for link in &service.links {
        let target = context
            .network
            .and_then(|applied| applied.services.get(&link.service))
            .filter(|_| names.contains(link.service.as_str()))
            .ok_or_else(|| SpecError::LinkTarget {
                service: name.to_owned(),
                target: link.service.clone(),
            })?;
        env.insert(
            link.env.clone(),
            format!("{}://{}:{}", link.protocol, target.address, link.port),
        );
    }
    let kernel_args = inject_env(name, &kernel_args, &env)?;

    let fingerprint = Fingerprint {
        kernel: service.kernel.clone(),
        image: service.image.clone(),
        image_version,
        vcpus: service.vcpus,
        memory_mb: service.memory_mb,
        kernel_args: kernel_args.clone(),
        network: network.clone(),
        port_forwards: service
            .port_forwards
            .iter()
            .map(|f| format!("{}:{}/{}", f.host_port, f.vm_port, f.protocol))
            .collect(),
        health_check: service
            .health_check
            .as_ref()
            .and_then(|check| serde_json::to_string(check).ok()),
    };
    let vm = VmSpec {
        service: name.to_owned(),
        vm_id: name.to_owned(),
        kernel_path: PathBuf::from(&service.kernel),
        rootfs_path: PathBuf::from(&service.image),
        read_only: false,
        vcpus: u8::try_from(service.vcpus).unwrap_or(u8::MAX),
        memory_mib: service.memory_mb,
        kernel_args,
        network: network.map(|n| VmNetwork {
            tap_name: n.tap,
            guest_mac: Some(n.mac),
        }),
        log_path: None,
    };
    vm.validate().map_err(|source| SpecError::VmSpec {
        service: name.to_owned(),
        source: Box::new(source),
    })?;
    Ok(DesiredVm {
        service: name.to_owned(),
        label: labeled.label.clone(),
        revision: labeled.revision.clone(),
        hash: fingerprint.hash(),
        vm_hash: vm.hash(),
        fingerprint,
        vm,
        health_check: service.health_check.clone(),
    })
}
