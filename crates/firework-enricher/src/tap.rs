//! TAP names as the Go firework derived them.
//!
//! The agent owns TAP names now and the enricher writes `network: {}`, so this helper is not
//! used for output. It is kept so the naming rule (at most 15 bytes, `tap-` prefix, distinct
//! for names sharing a long prefix, stable) stays documented and tested.

/// Linux's limit on interface names, without the terminating NUL.
pub const MAX_IFNAME_LEN: usize = 15;

/// `tap-<name>` for names of at most 11 bytes, else `tap-` + the first 6 bytes + 5 hex
/// digits of FNV-1a-32 of the name masked to 20 bits.
pub fn tap_name(service: &str) -> String {
    if service.len() + 4 <= MAX_IFNAME_LEN {
        return format!("tap-{service}");
    }
    let head: String = service.chars().take(6).collect();
    format!("tap-{head}{:05x}", fnv1a32(service.as_bytes()) & 0xF_FFFF)
}

fn fnv1a32(bytes: &[u8]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in bytes {
        hash ^= u32::from(*byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_eleven_byte_names_stay_unhashed() {
        assert_eq!(tap_name("web"), "tap-web");
        assert_eq!(tap_name("12345678901"), "tap-12345678901");
    }

    #[test]
    fn long_names_are_short_distinct_and_stable() {
        let a = tap_name("tenant-3-elasticsearch-data-1");
        let b = tap_name("tenant-3-elasticsearch-data-2");
        assert!(a.len() <= MAX_IFNAME_LEN && b.len() <= MAX_IFNAME_LEN);
        assert!(a.starts_with("tap-") && b.starts_with("tap-"));
        assert_ne!(a, b);
        assert_eq!(a, tap_name("tenant-3-elasticsearch-data-1"));
        // The Go firework's values for these names.
        assert_eq!(a, "tap-tenantfc0a8");
        assert_eq!(b, "tap-tenantfc561");
    }
}
