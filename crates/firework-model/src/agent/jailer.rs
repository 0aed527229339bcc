//! cgroup keys of jailer mode: `jailer_parent_cgroup`, `jailer_cgroup_root` and
//! `jailer_memory_overhead_mib`.

use super::{JailerCgroup, path_or};
use crate::decode::{Decoder, Fields};

/// Default of `jailer_memory_overhead_mib`.
// NOTE: an estimate. Firecracker v1.16 states at most 5 MiB of VMM overhead, but the page
// cache of a VM's drives is charged to the same cgroup.
pub const DEFAULT_MEMORY_OVERHEAD_MIB: u32 = 64;

/// Decodes the cgroup keys. They take effect only with `jailer_parent_cgroup`, so the
/// other two without it are reported as warnings.
pub(super) fn decode_cgroup(decoder: &mut Decoder, fields: &Fields<'_>) -> Option<JailerCgroup> {
    let root = path_or(decoder, fields, "jailer_cgroup_root", "/sys/fs/cgroup");
    let memory_overhead_mib = decoder
        .opt_integer(fields, "jailer_memory_overhead_mib")
        .unwrap_or(DEFAULT_MEMORY_OVERHEAD_MIB);
    let Some(parent) = decoder.opt_string(fields, "jailer_parent_cgroup") else {
        for key in ["jailer_cgroup_root", "jailer_memory_overhead_mib"] {
            if let Some(node) = fields.get(key) {
                decoder.warning(
                    "ignored-key",
                    key,
                    node.position,
                    format!("{key} has no effect without jailer_parent_cgroup"),
                );
            }
        }
        return None;
    };
    if let Err(rule) = check_parent_cgroup(&parent) {
        let at = fields
            .get("jailer_parent_cgroup")
            .map_or(fields.position, |node| node.position);
        decoder.error(
            "invalid-value",
            "jailer_parent_cgroup",
            at,
            format!("invalid jailer_parent_cgroup {parent:?}: {rule}"),
        );
        return None;
    }
    Some(JailerCgroup {
        parent,
        root,
        memory_overhead_mib,
    })
}

/// Checks a cgroup path relative to the hierarchy's mount point, such as `firework` or
/// `machine.slice/firework`.
fn check_parent_cgroup(path: &str) -> Result<(), &'static str> {
    if path.is_empty() || path.starts_with('/') || path.ends_with('/') {
        return Err("write a relative path such as firework or machine.slice/firework");
    }
    let valid_segment = |segment: &str| {
        !segment.is_empty()
            && segment != "."
            && segment != ".."
            && segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    };
    if path.split('/').all(valid_segment) {
        Ok(())
    } else {
        Err(
            "use segments of letters, digits, '.', '_' and '-' separated by '/', without '.' or '..' segments",
        )
    }
}
