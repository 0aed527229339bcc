//! Rolling-update keys of the agent config: `progress_deadline`, `min_ready` and
//! `delete_guard_percent`.

use crate::decode::{Decoder, Fields};
use crate::duration::GoDuration;

/// Default of `progress_deadline`: the time an updated VM gets to boot and pass its first
/// health checks.
pub const DEFAULT_PROGRESS_DEADLINE: GoDuration = GoDuration::from_secs(300);
/// Default of `min_ready`.
pub const DEFAULT_MIN_READY: GoDuration = GoDuration::from_secs(10);

/// Decodes `progress_deadline` (positive) and `min_ready`, which must be shorter than the
/// deadline, because an unprobed service could otherwise never count as ready in time.
pub(super) fn decode_rollout_gate(
    decoder: &mut Decoder,
    fields: &Fields<'_>,
) -> (GoDuration, GoDuration) {
    let position_of = |key: &str| fields.get(key).map_or(fields.position, |n| n.position);
    let deadline = decoder
        .opt_duration(fields, "progress_deadline")
        .unwrap_or(DEFAULT_PROGRESS_DEADLINE);
    let min_ready = decoder
        .opt_duration(fields, "min_ready")
        .unwrap_or(DEFAULT_MIN_READY);
    if deadline.is_zero() {
        decoder.error(
            "invalid-value",
            "progress_deadline",
            position_of("progress_deadline"),
            "invalid progress_deadline 0s: it must be positive".to_string(),
        );
        return (DEFAULT_PROGRESS_DEADLINE, min_ready);
    }
    if min_ready >= deadline {
        decoder.error(
            "invalid-value",
            "min_ready",
            position_of("min_ready"),
            format!(
                "invalid min_ready {min_ready}: it must be shorter than progress_deadline {deadline}"
            ),
        );
    }
    (deadline, min_ready)
}

/// Decodes `delete_guard_percent`, 1 to 100, default 100.
pub(super) fn decode_delete_guard(decoder: &mut Decoder, fields: &Fields<'_>) -> u8 {
    let Some(percent) = decoder.opt_integer::<u64>(fields, "delete_guard_percent") else {
        return 100;
    };
    if let Ok(valid @ 1..=100) = u8::try_from(percent) {
        return valid;
    }
    let at = fields
        .get("delete_guard_percent")
        .map_or(fields.position, |n| n.position);
    decoder.error(
        "invalid-value",
        "delete_guard_percent",
        at,
        format!("invalid delete_guard_percent {percent}: write a percentage from 1 to 100"),
    );
    100
}
