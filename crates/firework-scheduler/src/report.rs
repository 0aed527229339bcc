//! Text and JSON renderings of a [`PlanReport`].

use std::fmt::Write as _;

use crate::plan::PlanReport;

/// Renders `report` as pretty-printed JSON with a final newline.
pub fn to_json(report: &PlanReport) -> String {
    // serde_json fails only on non-string map keys or a failing Serialize impl, and the
    // report has neither.
    let mut text = serde_json::to_string_pretty(report).unwrap_or_default();
    text.push('\n');
    text
}

/// Renders `report` for people: nodes, assignments per node, moves and unplaced services.
pub fn to_text(report: &PlanReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "nodes: {} live, {} not live, {} rejected records",
        report.live_nodes.len(),
        report.not_live.len(),
        report.rejected.len()
    );
    for node in &report.not_live {
        let _ = writeln!(out, "  not live {}: {}", node.node, node.reason);
    }
    for record in &report.rejected {
        let _ = writeln!(out, "  rejected {}: {}", record.source, record.reason);
    }

    let Some(placement) = &report.placement else {
        let reason = report.error.as_deref().unwrap_or("no placement");
        let _ = writeln!(out, "no placement: {reason}");
        return out;
    };

    let groups = placement.by_node();
    let _ = writeln!(out, "assignments:");
    for usage in &placement.nodes {
        let services = groups
            .get(usage.node.as_str())
            .map(|s| s.join(", "))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {}: {}/{} vCPUs, {}/{} MiB: {}",
            usage.node,
            usage.used.vcpus,
            usage.allocatable.vcpus,
            usage.used.memory_mb,
            usage.allocatable.memory_mb,
            if services.is_empty() { "-" } else { &services }
        );
    }

    let _ = writeln!(out, "moves: {}", placement.moves.len());
    for moved in &placement.moves {
        let _ = writeln!(
            out,
            "  {}: {} -> {} ({})",
            moved.service,
            moved.from,
            moved.to.as_deref().unwrap_or("unplaced"),
            moved.reason
        );
    }

    let _ = writeln!(out, "unplaced: {}", placement.unplaced.len());
    for unplaced in &placement.unplaced {
        let _ = writeln!(out, "  {}: {}", unplaced.service, unplaced.reason);
    }
    out
}
