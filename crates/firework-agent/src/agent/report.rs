//! The status the API serves after each tick, and the `--dry-run` plan text.

use super::*;

impl Agent {
    pub(super) async fn update_status(
        &self,
        report: &mut TickReport,
        started: Instant,
        started_at: String,
        trigger: &str,
    ) {
        let statuses = self.parts.vms.list().await;
        let intents = self.intents.load_all();
        let desired_labels: BTreeMap<String, String> = self
            .cache
            .desired()
            .map(|state| {
                state
                    .entries
                    .iter()
                    .flat_map(|(label, entry)| {
                        entry
                            .config
                            .services
                            .iter()
                            .map(move |service| (service.name.clone(), label.clone()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut services: BTreeMap<String, ServiceStatus> = BTreeMap::new();
        for (name, label) in &desired_labels {
            let status = ServiceStatus::new(name, Some(label.clone()), "absent");
            services.insert(name.clone(), status);
        }
        for status in statuses {
            let intent = intents.get(&status.service);
            let entry = services
                .entry(status.service.clone())
                .or_insert_with(|| ServiceStatus::new(&status.service, None, ""));
            entry.state = status.state.as_str().to_owned();
            entry.pid = status.pid;
            entry.spec_hash = intent.map(|intent| intent.hash.clone());
            entry.guest_ip = intent
                .and_then(|intent| intent.fingerprint.network.as_ref())
                .map(|network| network.guest_ip);
        }
        for (service, generation) in &self.generations {
            if let Some(entry) = services.get_mut(service) {
                entry.generation = *generation;
            }
        }
        for (service, rollout) in &self.rollouts {
            if let Some(entry) = services.get_mut(service) {
                entry.rollout = Some(rollout.clone());
            }
        }
        if let Some(health) = &self.parts.health {
            for snapshot in health.monitor.all() {
                let name = snapshot.state.name();
                if let Some(state) = firework_metrics::HealthState::ALL
                    .iter()
                    .find(|state| state.as_str() == name)
                {
                    self.parts
                        .metrics
                        .set_health_state(&snapshot.service, *state);
                }
                if let Some(entry) = services.get_mut(&snapshot.service) {
                    entry.health = name.to_owned();
                    entry.restarts = snapshot.restarts;
                    entry.last_probe_error = snapshot.last_error.clone();
                }
            }
        }
        for (service, error) in &report.spec_errors {
            if let Some(entry) = services.get_mut(service) {
                entry.last_error = Some(error.clone());
            }
        }
        for (service, failure) in &self.failures {
            if let Some(entry) = services.get_mut(service) {
                entry.last_error = Some(failure.error.clone());
            }
        }

        let labels = self
            .settings
            .labels
            .iter()
            .map(|label| LabelStatus {
                label: label.clone(),
                revision: self
                    .cache
                    .desired()
                    .and_then(|state| state.entries.get(label))
                    .map(|entry| entry.revision.to_string()),
            })
            .collect();
        let failed_actions = report.apply.failures().count();
        let tick = TickStatus {
            started_at,
            duration_ms: started.elapsed().as_millis() as u64,
            trigger: trigger.to_owned(),
            summary: report.plan.summary(),
            plan: report.plan.clone(),
            held: report.held.clone(),
            failed_actions,
        };
        let mut status = self
            .status
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        status.labels = labels;
        status.revision = self.cache.desired().map(DesiredState::revision);
        status.last_tick = Some(tick);
        status.last_error = report.error.clone();
        if report.error.is_none() {
            status.applied_revision = status.revision.clone();
        }
        status.services = services.into_values().collect();
        status.finished_at = Some(std::time::Instant::now());
    }
}

/// Renders a tick report as the text `--dry-run` prints: one line per action with the
/// changed fields, then held actions, spec errors and the tick error.
pub fn render_plan(report: &TickReport) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let summary = report.plan.summary();
    let _ = writeln!(
        out,
        "plan: {} create, {} update, {} delete, {} unchanged, {} held",
        summary.create,
        summary.update,
        summary.delete,
        summary.unchanged,
        report.held.len()
    );
    for action in &report.plan.actions {
        let kind = match action.kind {
            ActionKind::Create => "create",
            ActionKind::Update => "update",
            ActionKind::Delete => "delete",
            ActionKind::Unchanged => "unchanged",
        };
        let _ = write!(out, "  {kind:<9} {}", action.service);
        if !action.changed.is_empty() {
            let _ = write!(out, " [{}]", action.changed.join(", "));
        }
        let _ = writeln!(out, " ({})", action.reason);
    }
    for held in &report.held {
        let _ = writeln!(out, "  held      {}: {}", held.action.service, held.reason);
    }
    for (service, error) in &report.spec_errors {
        let _ = writeln!(out, "  error     {service}: {error}");
    }
    if let Some(error) = &report.error {
        let _ = writeln!(out, "error: {error}");
    }
    out
}
