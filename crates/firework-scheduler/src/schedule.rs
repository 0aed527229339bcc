//! The placement pass.
//!
//! 1. Existing placements are re-checked in service-name order. A service stays on its
//!    previous node when that node is live, still carries the service's `node_type`, runs no
//!    other service of the same anti-affinity group and no service forwarding one of the same
//!    host ports that stayed before it, and has room left after the services kept before it.
//! 2. The other services are placed largest first (vCPUs, then memory, descending; then name)
//!    on the allowed node with the lowest score. The score is the node's normalised leftover
//!    after placement, `free_vcpus_after / allocatable_vcpus + free_mb_after /
//!    allocatable_mb`, so the tightest fit wins (best fit). With
//!    [`ScheduleOptions::spread`] the highest leftover wins instead. Equal scores go to the
//!    node whose name sorts first.
//!
//! A node is allowed for a service only when no service already on it belongs to the same
//! anti-affinity group or forwards one of the same host ports (port and protocol).
//! Capacity is consumed as the pass goes, so no node ends up over its allocatable CPU or
//! memory. Nodes, services and existing placements are sorted by name before use, so the
//! result does not depend on input order.

use std::collections::{BTreeMap, HashMap};

use tracing::{debug, info, info_span, warn};

use crate::error::ScheduleError;
use crate::placement::{
    Assignment, Move, MoveReason, NodeUsage, Placement, PortConflict, Unplaced, UnplacedReason,
};
use crate::request::{
    ExistingPlacement, HostPort, NameKind, NodeCapacity, Resources, ScheduleOptions,
    ServiceRequest, validate_name,
};

/// Places `services` on the live `nodes`, keeping `existing` placements that still fit.
///
/// Returns [`ScheduleError::NoLiveNodes`] when `nodes` is empty, even with no services, so a
/// registry outage never turns into an empty placement. Services that fit nowhere are listed
/// in [`Placement::unplaced`] and never squeezed onto a node. Existing entries for services
/// not in `services` are ignored.
pub fn schedule(
    nodes: &[NodeCapacity],
    services: &[ServiceRequest],
    existing: &[ExistingPlacement],
    options: &ScheduleOptions,
) -> Result<Placement, ScheduleError> {
    let span = info_span!(
        "schedule",
        nodes = nodes.len(),
        services = services.len(),
        existing = existing.len()
    );
    let _entered = span.enter();

    if nodes.is_empty() {
        warn!(
            services = services.len(),
            "no live nodes, producing no placement"
        );
        return Err(ScheduleError::NoLiveNodes {
            services: services.len(),
        });
    }

    let nodes = sorted_nodes(nodes)?;
    let services = sorted_services(services)?;
    let previous = previous_nodes(&services, existing);

    let mut pass = Pass::new(&nodes, &services, options);
    let mut moves_pending: Vec<(usize, String, MoveReason)> = Vec::new();
    let mut pending: Vec<usize> = Vec::new();

    // Phase 1: keep what still fits, in service-name order.
    for (service_index, previous_nodes) in previous.iter().enumerate() {
        if previous_nodes.is_empty() {
            pending.push(service_index);
            continue;
        }
        let mut first_reason = None;
        for node_name in previous_nodes {
            match pass.try_keep(service_index, node_name) {
                Ok(()) => {
                    first_reason = None;
                    break;
                }
                Err(reason) => {
                    first_reason.get_or_insert(reason);
                }
            }
        }
        if let Some(reason) = first_reason {
            moves_pending.push((service_index, previous_nodes[0].to_owned(), reason));
            pending.push(service_index);
        }
    }

    // Phase 2: place the rest, largest first.
    pending.sort_by(|&a, &b| {
        let (sa, sb) = (services[a], services[b]);
        sb.vcpus
            .cmp(&sa.vcpus)
            .then(sb.memory_mb.cmp(&sa.memory_mb))
            .then(sa.name.cmp(&sb.name))
    });
    let mut unplaced = Vec::new();
    for &service_index in &pending {
        match pass.best_node(service_index) {
            Some(node_index) => pass.assign(service_index, node_index),
            None => {
                let reason = pass.unplaced_reason(service_index);
                warn!(service = %services[service_index].name, %reason, "service not placed");
                unplaced.push(Unplaced {
                    service: services[service_index].name.clone(),
                    reason,
                });
            }
        }
    }
    unplaced.sort_by(|a, b| a.service.cmp(&b.service));

    let mut moves: Vec<Move> = moves_pending
        .into_iter()
        .map(|(service_index, from, reason)| {
            let to = pass.assigned[service_index].map(|n| nodes[n].name.clone());
            info!(
                service = %services[service_index].name,
                from = %from,
                to = to.as_deref().unwrap_or("-"),
                %reason,
                "service moves"
            );
            Move {
                service: services[service_index].name.clone(),
                from,
                to,
                reason,
            }
        })
        .collect();
    moves.sort_by(|a, b| a.service.cmp(&b.service));

    let placement = pass.finish(unplaced, moves);
    info!(
        placed = placement.assignments.len(),
        unplaced = placement.unplaced.len(),
        moves = placement.moves.len(),
        "placement computed"
    );
    Ok(placement)
}

/// Validates the nodes and returns them sorted by name.
fn sorted_nodes(nodes: &[NodeCapacity]) -> Result<Vec<&NodeCapacity>, ScheduleError> {
    let mut sorted: Vec<&NodeCapacity> = nodes.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    for pair in sorted.windows(2) {
        if pair[0].name == pair[1].name {
            return Err(ScheduleError::DuplicateNode {
                name: pair[0].name.clone(),
            });
        }
    }
    for node in &sorted {
        validate_name(NameKind::Node, &node.name)?;
        if node.reserved.vcpus > node.capacity.vcpus
            || node.reserved.memory_mb > node.capacity.memory_mb
        {
            warn!(node = %node.name, "reserve exceeds capacity, node takes no services");
        }
    }
    Ok(sorted)
}

/// Validates the services and returns them sorted by name.
fn sorted_services(services: &[ServiceRequest]) -> Result<Vec<&ServiceRequest>, ScheduleError> {
    let mut sorted: Vec<&ServiceRequest> = services.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    for pair in sorted.windows(2) {
        if pair[0].name == pair[1].name {
            return Err(ScheduleError::DuplicateService {
                name: pair[0].name.clone(),
            });
        }
    }
    for service in &sorted {
        validate_name(NameKind::Service, &service.name)?;
        if service.vcpus == 0 {
            return Err(ScheduleError::ZeroRequest {
                name: service.name.clone(),
                field: "vcpus",
            });
        }
        if service.memory_mb == 0 {
            return Err(ScheduleError::ZeroRequest {
                name: service.name.clone(),
                field: "memory_mb",
            });
        }
    }
    Ok(sorted)
}

/// Returns, per service (in sorted order), its previous nodes sorted by name without
/// repeats. A service listed on several nodes tries them in that order.
fn previous_nodes<'a>(
    services: &[&ServiceRequest],
    existing: &'a [ExistingPlacement],
) -> Vec<Vec<&'a str>> {
    let index: HashMap<&str, usize> = services
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    let mut previous: Vec<Vec<&str>> = vec![Vec::new(); services.len()];
    for entry in existing {
        if let Some(&i) = index.get(entry.service.as_str()) {
            previous[i].push(entry.node.as_str());
        } else {
            debug!(service = %entry.service, node = %entry.node, "previous placement of a removed service ignored");
        }
    }
    for nodes in &mut previous {
        nodes.sort_unstable();
        nodes.dedup();
    }
    previous
}

/// Mutable state of one pass over sorted nodes and services.
struct Pass<'a> {
    nodes: &'a [&'a NodeCapacity],
    services: &'a [&'a ServiceRequest],
    /// Per-service demand, overhead included.
    demand: Vec<Resources>,
    free_vcpus: Vec<u32>,
    free_mb: Vec<u64>,
    /// `1 / allocatable` per node, 0 where nothing is allocatable.
    inverse_vcpus: Vec<f64>,
    inverse_mb: Vec<f64>,
    /// Node indices per required label, in node-name order; `None` key means "any node".
    candidates: HashMap<Option<&'a str>, Vec<u32>>,
    /// Per anti-affinity group, a bit set of the nodes that run a member.
    groups: HashMap<&'a str, Vec<u64>>,
    /// The member of a group on a node, to name it in a move reason.
    group_members: HashMap<(&'a str, usize), usize>,
    /// Per-service host ports, sorted and without repeats.
    host_ports: Vec<Vec<HostPort>>,
    /// The service that forwards a host port on a node.
    port_owners: HashMap<(HostPort, usize), usize>,
    assigned: Vec<Option<usize>>,
    kept: Vec<bool>,
    spread: bool,
}

impl<'a> Pass<'a> {
    fn new(
        nodes: &'a [&'a NodeCapacity],
        services: &'a [&'a ServiceRequest],
        options: &ScheduleOptions,
    ) -> Self {
        let allocatable: Vec<Resources> = nodes.iter().map(|n| n.allocatable()).collect();
        let inverse = |value: f64| if value > 0.0 { 1.0 / value } else { 0.0 };

        let mut candidates: HashMap<Option<&str>, Vec<u32>> = HashMap::new();
        for service in services {
            let key = service.node_type.as_deref();
            candidates.entry(key).or_insert_with(|| {
                (0..nodes.len())
                    .filter(|&i| key.is_none_or(|label| nodes[i].labels.contains(label)))
                    .map(|i| i as u32)
                    .collect()
            });
        }

        Self {
            nodes,
            services,
            demand: services.iter().map(|s| s.demand(options)).collect(),
            free_vcpus: allocatable.iter().map(|a| a.vcpus).collect(),
            free_mb: allocatable.iter().map(|a| a.memory_mb).collect(),
            inverse_vcpus: allocatable
                .iter()
                .map(|a| inverse(f64::from(a.vcpus)))
                .collect(),
            inverse_mb: allocatable
                .iter()
                .map(|a| inverse(a.memory_mb as f64))
                .collect(),
            candidates,
            groups: HashMap::new(),
            group_members: HashMap::new(),
            host_ports: services
                .iter()
                .map(|service| {
                    let mut ports = service.host_ports.clone();
                    ports.sort_unstable();
                    ports.dedup();
                    ports
                })
                .collect(),
            port_owners: HashMap::new(),
            assigned: vec![None; services.len()],
            kept: vec![false; services.len()],
            spread: options.spread,
        }
    }

    fn node_index(&self, name: &str) -> Option<usize> {
        self.nodes
            .binary_search_by(|n| n.name.as_str().cmp(name))
            .ok()
    }

    fn group_blocks(&self, service_index: usize, node_index: usize) -> bool {
        let Some(group) = self.services[service_index].anti_affinity_group.as_deref() else {
            return false;
        };
        self.groups
            .get(group)
            .is_some_and(|bits| bits[node_index / 64] & (1 << (node_index % 64)) != 0)
    }

    /// Returns the first of the service's host ports that a service already on the node
    /// forwards, with that service.
    fn port_conflict(&self, service_index: usize, node_index: usize) -> Option<(HostPort, usize)> {
        self.host_ports[service_index].iter().find_map(|&port| {
            self.port_owners
                .get(&(port, node_index))
                .map(|&owner| (port, owner))
        })
    }

    fn fits(&self, service_index: usize, node_index: usize) -> bool {
        let demand = self.demand[service_index];
        self.free_vcpus[node_index] >= demand.vcpus && self.free_mb[node_index] >= demand.memory_mb
    }

    /// Keeps the service on `node_name` when allowed, or returns why not.
    fn try_keep(&mut self, service_index: usize, node_name: &str) -> Result<(), MoveReason> {
        let service = self.services[service_index];
        let node_index = self.node_index(node_name).ok_or(MoveReason::NodeNotLive)?;
        if let Some(node_type) = service.node_type.as_deref()
            && !self.nodes[node_index].labels.contains(node_type)
        {
            return Err(MoveReason::NodeTypeMismatch {
                node_type: node_type.to_owned(),
            });
        }
        if self.group_blocks(service_index, node_index) {
            let group = service.anti_affinity_group.clone().unwrap_or_default();
            let kept = self
                .group_members
                .get(&(group.as_str(), node_index))
                .map(|&member| self.services[member].name.clone())
                .unwrap_or_default();
            return Err(MoveReason::AntiAffinity { group, kept });
        }
        if let Some((host_port, owner)) = self.port_conflict(service_index, node_index) {
            return Err(MoveReason::HostPortConflict {
                host_port,
                kept: self.services[owner].name.clone(),
            });
        }
        if !self.fits(service_index, node_index) {
            return Err(MoveReason::InsufficientCapacity);
        }
        self.assign(service_index, node_index);
        self.kept[service_index] = true;
        Ok(())
    }

    fn assign(&mut self, service_index: usize, node_index: usize) {
        let demand = self.demand[service_index];
        self.free_vcpus[node_index] -= demand.vcpus;
        self.free_mb[node_index] -= demand.memory_mb;
        self.assigned[service_index] = Some(node_index);
        if let Some(group) = self.services[service_index].anti_affinity_group.as_deref() {
            let words = self.nodes.len().div_ceil(64);
            let bits = self.groups.entry(group).or_insert_with(|| vec![0; words]);
            bits[node_index / 64] |= 1 << (node_index % 64);
            self.group_members
                .insert((group, node_index), service_index);
        }
        for &port in &self.host_ports[service_index] {
            self.port_owners.insert((port, node_index), service_index);
        }
    }

    /// Returns the allowed node with the lowest score, ties to the first in name order.
    fn best_node(&self, service_index: usize) -> Option<usize> {
        let service = self.services[service_index];
        let demand = self.demand[service_index];
        let candidates = self.candidates.get(&service.node_type.as_deref())?;
        let group_bits = service
            .anti_affinity_group
            .as_deref()
            .and_then(|g| self.groups.get(g));

        let mut best: Option<(f64, usize)> = None;
        for &candidate in candidates {
            let i = candidate as usize;
            let (free_vcpus, free_mb) = (self.free_vcpus[i], self.free_mb[i]);
            if free_vcpus < demand.vcpus || free_mb < demand.memory_mb {
                continue;
            }
            if group_bits.is_some_and(|bits| bits[i / 64] & (1 << (i % 64)) != 0) {
                continue;
            }
            if self.port_conflict(service_index, i).is_some() {
                continue;
            }
            let leftover = f64::from(free_vcpus - demand.vcpus) * self.inverse_vcpus[i]
                + (free_mb - demand.memory_mb) as f64 * self.inverse_mb[i];
            let score = if self.spread { -leftover } else { leftover };
            if best.is_none_or(|(best_score, _)| score < best_score) {
                best = Some((score, i));
            }
        }
        best.map(|(_, i)| i)
    }

    /// Explains why [`best_node`](Self::best_node) found nothing.
    fn unplaced_reason(&self, service_index: usize) -> UnplacedReason {
        let service = self.services[service_index];
        let demand = self.demand[service_index];
        let candidates = self
            .candidates
            .get(&service.node_type.as_deref())
            .map(Vec::as_slice)
            .unwrap_or_default();
        if candidates.is_empty() {
            return UnplacedReason::NoLiveNodeOfType {
                node_type: service.node_type.clone().unwrap_or_default(),
            };
        }
        let allowed: Vec<usize> = candidates
            .iter()
            .map(|&i| i as usize)
            .filter(|&i| !self.group_blocks(service_index, i))
            .collect();
        if allowed.is_empty() {
            return UnplacedReason::AntiAffinity {
                group: service.anti_affinity_group.clone().unwrap_or_default(),
            };
        }
        let mut conflicts = Vec::new();
        let mut free_of_conflicts = Vec::new();
        for &i in &allowed {
            match self.port_conflict(service_index, i) {
                Some((host_port, owner)) => conflicts.push(PortConflict {
                    node: self.nodes[i].name.clone(),
                    host_port,
                    service: self.services[owner].name.clone(),
                }),
                None => free_of_conflicts.push(i),
            }
        }
        if free_of_conflicts.is_empty() {
            return UnplacedReason::HostPortConflict { conflicts };
        }
        let allowed = free_of_conflicts;
        let max_free_vcpus = allowed
            .iter()
            .map(|&i| self.free_vcpus[i])
            .max()
            .unwrap_or(0);
        let max_free_mb = allowed.iter().map(|&i| self.free_mb[i]).max().unwrap_or(0);
        if max_free_vcpus < demand.vcpus {
            UnplacedReason::InsufficientCpu {
                requested: demand.vcpus,
                max_free: max_free_vcpus,
            }
        } else if max_free_mb < demand.memory_mb {
            UnplacedReason::InsufficientMemory {
                requested_mb: demand.memory_mb,
                max_free_mb,
            }
        } else {
            UnplacedReason::InsufficientCpuAndMemory { requested: demand }
        }
    }

    fn finish(self, unplaced: Vec<Unplaced>, moves: Vec<Move>) -> Placement {
        let mut counts: BTreeMap<usize, usize> = BTreeMap::new();
        let assignments = self
            .services
            .iter()
            .zip(self.assigned.iter().zip(&self.kept))
            .filter_map(|(service, (assigned, &kept))| {
                let node_index = (*assigned)?;
                *counts.entry(node_index).or_default() += 1;
                Some(Assignment {
                    service: service.name.clone(),
                    node: self.nodes[node_index].name.clone(),
                    kept,
                })
            })
            .collect();
        let nodes = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, node)| {
                let allocatable = node.allocatable();
                NodeUsage {
                    node: node.name.clone(),
                    allocatable,
                    used: allocatable
                        .saturating_sub(Resources::new(self.free_vcpus[i], self.free_mb[i])),
                    services: counts.get(&i).copied().unwrap_or(0),
                }
            })
            .collect();
        Placement {
            assignments,
            unplaced,
            moves,
            nodes,
        }
    }
}
