//! The reconcile core: a pure function from desired and actual state to a plan, and the
//! guard rails that hold back parts of a plan.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::spec::{ActualVm, DesiredVm};

/// What the executor does to one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionKind {
    /// Start a VM that does not run.
    Create,
    /// Replace a running VM whose fingerprint changed.
    Update,
    /// Stop and remove a VM that is no longer desired.
    Delete,
    /// Leave a running VM alone.
    Unchanged,
}

/// One entry of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Action {
    /// The kind of change.
    pub kind: ActionKind,
    /// The service.
    pub service: String,
    /// The label the service comes from (desired) or came from (delete), when known.
    pub label: Option<String>,
    /// The fields that changed, for updates.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<String>,
    /// Why, in a few words.
    pub reason: String,
}

/// The plan of one tick, sorted by service name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Every desired or existing service, each once.
    pub actions: Vec<Action>,
}

/// Counts of a plan's actions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PlanSummary {
    /// Creates.
    pub create: usize,
    /// Updates.
    pub update: usize,
    /// Deletes.
    pub delete: usize,
    /// Unchanged services.
    pub unchanged: usize,
}

impl Plan {
    /// Returns the counts by kind.
    pub fn summary(&self) -> PlanSummary {
        let mut summary = PlanSummary::default();
        for action in &self.actions {
            match action.kind {
                ActionKind::Create => summary.create += 1,
                ActionKind::Update => summary.update += 1,
                ActionKind::Delete => summary.delete += 1,
                ActionKind::Unchanged => summary.unchanged += 1,
            }
        }
        summary
    }

    /// Returns whether the plan changes anything.
    pub fn has_changes(&self) -> bool {
        self.actions
            .iter()
            .any(|action| action.kind != ActionKind::Unchanged)
    }

    /// Returns the actions of one kind.
    pub fn of_kind(&self, kind: ActionKind) -> impl Iterator<Item = &Action> {
        self.actions
            .iter()
            .filter(move |action| action.kind == kind)
    }
}

/// Compares desired with actual state.
///
/// - A desired service without a live VM is created (an exited or stopped VM counts as
///   absent, so a crashed VM is recreated even when nothing else changed).
/// - A live VM whose recorded fingerprint hash or runtime spec hash differs is updated.
/// - An existing VM that no desired service names is deleted, unless its name is in `keep`:
///   services whose desired VM could not be built this tick stay as they are.
pub fn plan(
    desired: &[DesiredVm],
    actual: &BTreeMap<String, ActualVm>,
    keep: &BTreeSet<String>,
) -> Plan {
    let mut actions = Vec::with_capacity(desired.len() + actual.len());
    let mut wanted: BTreeSet<&str> = BTreeSet::new();
    for vm in desired {
        wanted.insert(vm.service.as_str());
        let label = Some(vm.label.clone());
        let action = match actual.get(&vm.service) {
            None => Action {
                kind: ActionKind::Create,
                service: vm.service.clone(),
                label,
                changed: Vec::new(),
                reason: "not running".to_owned(),
            },
            Some(existing) if !existing.is_live() => Action {
                kind: ActionKind::Create,
                service: vm.service.clone(),
                label,
                changed: Vec::new(),
                reason: format!("vm is {}", existing.state.as_str()),
            },
            Some(existing) => compare(vm, existing),
        };
        actions.push(action);
    }
    for (service, existing) in actual {
        if wanted.contains(service.as_str()) || keep.contains(service) {
            continue;
        }
        actions.push(Action {
            kind: ActionKind::Delete,
            service: service.clone(),
            label: existing.intent.as_ref().map(|intent| intent.label.clone()),
            changed: Vec::new(),
            reason: "not in desired state".to_owned(),
        });
    }
    actions.sort_by(|a, b| a.service.cmp(&b.service));
    Plan { actions }
}

fn compare(vm: &DesiredVm, existing: &ActualVm) -> Action {
    let label = Some(vm.label.clone());
    let unchanged = existing
        .intent
        .as_ref()
        .is_some_and(|intent| intent.hash == vm.hash)
        && existing.vm_hash == vm.vm_hash;
    if unchanged {
        return Action {
            kind: ActionKind::Unchanged,
            service: vm.service.clone(),
            label,
            changed: Vec::new(),
            reason: "spec hash matches".to_owned(),
        };
    }
    let changed: Vec<String> = match &existing.intent {
        Some(intent) => {
            let mut fields: Vec<String> = vm
                .fingerprint
                .changed_fields(&intent.fingerprint)
                .into_iter()
                .map(str::to_owned)
                .collect();
            if fields.is_empty() {
                // The agent's record matches but the runtime launched something else.
                fields.push("vm_spec".to_owned());
            }
            fields
        }
        None => vec!["unknown".to_owned()],
    };
    let reason = match &existing.intent {
        Some(_) => format!("changed: {}", changed.join(", ")),
        None => "no record of how the running vm was started".to_owned(),
    };
    Action {
        kind: ActionKind::Update,
        service: vm.service.clone(),
        label,
        changed,
        reason,
    }
}

/// An action the guard rails held back, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeldAction {
    /// The action that was not applied.
    pub action: Action,
    /// Why.
    pub reason: String,
}

/// Holds back deletes of live VMs when they would remove at least `max_delete_share` of the
/// live VMs at once (1.0: all of them), unless the service's label is explicitly empty
/// (`services: []`). Returns the held deletes, which are removed from `plan`.
pub fn guard_deletes(
    plan: &mut Plan,
    actual: &BTreeMap<String, ActualVm>,
    explicit_empty: &BTreeSet<String>,
    max_delete_share: f64,
) -> Vec<HeldAction> {
    let live = actual.values().filter(|vm| vm.is_live()).count();
    let guarded: Vec<usize> = plan
        .actions
        .iter()
        .enumerate()
        .filter(|(_, action)| action.kind == ActionKind::Delete)
        .filter(|(_, action)| actual.get(&action.service).is_some_and(ActualVm::is_live))
        .filter(|(_, action)| {
            !action
                .label
                .as_ref()
                .is_some_and(|label| explicit_empty.contains(label))
        })
        .map(|(index, _)| index)
        .collect();
    if guarded.is_empty() || live == 0 {
        return Vec::new();
    }
    let share = guarded.len() as f64 / live as f64;
    if share < max_delete_share {
        return Vec::new();
    }
    let reason = format!(
        "would delete {} of {live} running vms at once; write `services: []` in the label to remove them all",
        guarded.len()
    );
    let mut held = Vec::new();
    for index in guarded.into_iter().rev() {
        let mut action = plan.actions.remove(index);
        action.reason = reason.clone();
        held.push(HeldAction {
            action,
            reason: reason.clone(),
        });
    }
    held.reverse();
    held
}

/// CPU and memory that VMs may use on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Budget {
    /// vCPUs.
    pub vcpus: u64,
    /// Memory in MiB.
    pub memory_mb: u64,
}

/// Holds back the creates and the growing updates that do not fit in `budget`, and
/// returns them. Deletes always apply.
///
/// Unchanged VMs count at their size. An update counts at the size its VM runs with now,
/// which the intent record in `actual` contains (the desired size when there is none). When
/// the desired size is not larger in either resource, the update counts at that instead. Then, in plan order, each update that grows a VM
/// is admitted while its growth fits, and after the updates each create while it fits. An
/// update comes first because its service already runs; a held update leaves the old VM
/// running as it is.
pub fn fit_capacity(
    plan: &mut Plan,
    desired: &BTreeMap<&str, &DesiredVm>,
    actual: &BTreeMap<String, ActualVm>,
    budget: Budget,
) -> Vec<HeldAction> {
    let desired_size = |service: &str| {
        desired
            .get(service)
            .map_or(Size::default(), |vm| Size::of(&vm.fingerprint))
    };
    let running_size = |service: &str| {
        actual
            .get(service)
            .and_then(|vm| vm.intent.as_ref())
            .map(|intent| Size::of(&intent.fingerprint))
    };

    let mut used = Size::default();
    for action in &plan.actions {
        match action.kind {
            ActionKind::Unchanged => used = used.plus(desired_size(&action.service)),
            ActionKind::Update => {
                let to = desired_size(&action.service);
                let from = running_size(&action.service).unwrap_or(to);
                used = used.plus(if to.within(from) { to } else { from });
            }
            ActionKind::Create | ActionKind::Delete => {}
        }
    }

    let mut held_services = BTreeSet::new();
    let mut held = Vec::new();
    for pass in [ActionKind::Update, ActionKind::Create] {
        for action in plan.actions.iter().filter(|action| action.kind == pass) {
            let to = desired_size(&action.service);
            let from = match pass {
                ActionKind::Update => running_size(&action.service).unwrap_or(to),
                _ => Size::default(),
            };
            if to.within(from) {
                continue;
            }
            // The old VM stops before the new one starts, so a resource that shrinks is
            // free for the one that grows.
            let growth = to.minus(from);
            let after = used.minus(from.minus(to)).plus(growth);
            if after.within(budget.size()) {
                used = after;
                continue;
            }
            let free = budget.size().minus(used);
            let need = match pass {
                ActionKind::Update => format!(
                    "grows by {} vcpus and {} MiB",
                    growth.vcpus, growth.memory_mb
                ),
                _ => format!("needs {} vcpus and {} MiB", to.vcpus, to.memory_mb),
            };
            held_services.insert(action.service.clone());
            held.push(HeldAction {
                action: action.clone(),
                reason: format!(
                    "does not fit: {need}, {} vcpus and {} MiB free",
                    free.vcpus, free.memory_mb
                ),
            });
        }
    }
    plan.actions.retain(|action| {
        action.kind == ActionKind::Delete || !held_services.contains(&action.service)
    });
    held
}

/// The vCPUs and memory of one VM, or a sum of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Size {
    vcpus: u64,
    memory_mb: u64,
}

impl Size {
    fn of(fingerprint: &crate::spec::Fingerprint) -> Self {
        Size {
            vcpus: u64::from(fingerprint.vcpus),
            memory_mb: u64::from(fingerprint.memory_mb),
        }
    }

    fn plus(self, other: Size) -> Size {
        Size {
            vcpus: self.vcpus.saturating_add(other.vcpus),
            memory_mb: self.memory_mb.saturating_add(other.memory_mb),
        }
    }

    /// Returns the part of `self` above `other`, per resource, never negative.
    fn minus(self, other: Size) -> Size {
        Size {
            vcpus: self.vcpus.saturating_sub(other.vcpus),
            memory_mb: self.memory_mb.saturating_sub(other.memory_mb),
        }
    }

    /// Returns whether both resources are at most those of `limit`.
    fn within(self, limit: Size) -> bool {
        self.vcpus <= limit.vcpus && self.memory_mb <= limit.memory_mb
    }
}

impl Budget {
    fn size(self) -> Size {
        Size {
            vcpus: self.vcpus,
            memory_mb: self.memory_mb,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use firework_vmm::RecordState;

    use super::*;

    fn live(service: &str, label: &str) -> (String, ActualVm) {
        (
            service.to_owned(),
            ActualVm {
                service: service.to_owned(),
                state: RecordState::Running,
                pid: Some(1),
                vm_hash: String::new(),
                intent: Some(crate::spec::Intent {
                    label: label.to_owned(),
                    revision: String::new(),
                    hash: String::new(),
                    fingerprint: crate::spec::Fingerprint {
                        kernel: String::new(),
                        image: String::new(),
                        image_version: String::new(),
                        vcpus: 1,
                        memory_mb: 128,
                        kernel_args: String::new(),
                        network: None,
                        port_forwards: Vec::new(),
                        health_check: None,
                    },
                }),
            },
        )
    }

    fn four_live() -> BTreeMap<String, ActualVm> {
        ["a", "b", "c", "d"]
            .into_iter()
            .map(|name| live(name, "web"))
            .collect()
    }

    #[test]
    fn guard_share_below_one_holds_half() {
        let actual = four_live();
        let mut deletes = plan(&[], &actual, &["c", "d"].map(str::to_owned).into());
        let held = guard_deletes(&mut deletes, &actual, &BTreeSet::new(), 0.5);
        assert_eq!(held.len(), 2);
        assert_eq!(held[0].action.service, "a");
        assert!(deletes.actions.is_empty());
    }

    #[test]
    fn guard_share_below_threshold_passes() {
        let actual = four_live();
        let mut deletes = plan(&[], &actual, &["b", "c", "d"].map(str::to_owned).into());
        let held = guard_deletes(&mut deletes, &actual, &BTreeSet::new(), 0.5);
        assert!(held.is_empty());
        assert_eq!(deletes.summary().delete, 1);
    }

    #[test]
    fn guard_allows_explicitly_empty_label() {
        let actual = four_live();
        let mut deletes = plan(&[], &actual, &BTreeSet::new());
        let explicit = BTreeSet::from(["web".to_owned()]);
        let held = guard_deletes(&mut deletes, &actual, &explicit, 1.0);
        assert!(held.is_empty());
        assert_eq!(deletes.summary().delete, 4);
    }

    #[test]
    fn guard_ignores_exited_vms() {
        let mut actual = four_live();
        for vm in actual.values_mut() {
            vm.state = RecordState::Exited;
        }
        let mut deletes = plan(&[], &actual, &BTreeSet::new());
        let held = guard_deletes(&mut deletes, &actual, &BTreeSet::new(), 1.0);
        assert!(held.is_empty());
        assert_eq!(deletes.summary().delete, 4);
    }
}
