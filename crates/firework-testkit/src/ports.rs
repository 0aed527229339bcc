//! Loopback ports for servers that tests start as separate processes.
//!
//! A port that the kernel hands out for `bind(127.0.0.1:0)` comes from the ephemeral range,
//! from which outgoing connections also take their local ports. Once the probing listener
//! closes, any client on the machine may take that port before the server binds it, and
//! the server then fails with "address in use". [`free_port`] picks a random port below
//! the ephemeral range instead, where only another test that picks the same number can
//! collide.

use std::io;
use std::net::TcpListener;
use std::ops::Range;

/// The file that gives the kernel's ephemeral port range, first and last port.
const EPHEMERAL_RANGE_FILE: &str = "/proc/sys/net/ipv4/ip_local_port_range";

/// The lowest port [`free_port`] picks, far above the well-known ports (below 1024).
const LOWEST_PORT: u16 = 10_000;

/// How many random ports [`free_port`] tries before it gives up.
const ATTEMPTS: usize = 200;

/// Returns a port on 127.0.0.1 that was free a moment ago and lies outside the ephemeral
/// range, so that no outgoing connection takes it before the caller's server binds it.
///
/// When the ephemeral range cannot be read or leaves fewer than 1,000 ports below it, the
/// kernel's choice is returned instead.
///
/// # Errors
///
/// Returns the error of binding port 0 when even the kernel has no port to give.
pub fn free_port() -> io::Result<u16> {
    if let Some(range) = std::fs::read_to_string(EPHEMERAL_RANGE_FILE)
        .ok()
        .and_then(|text| below_ephemeral(&text))
    {
        for _ in 0..ATTEMPTS {
            let port = rand::random_range(range.clone());
            if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return Ok(port);
            }
        }
    }
    Ok(TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

/// Returns the ports from [`LOWEST_PORT`] up to the start of the ephemeral range that
/// `range_file` (the text of [`EPHEMERAL_RANGE_FILE`], two numbers) gives, or `None` when
/// the text is not two numbers or fewer than 1,000 ports lie below it.
fn below_ephemeral(range_file: &str) -> Option<Range<u16>> {
    let mut numbers = range_file.split_whitespace().map(str::parse::<u16>);
    let start = numbers.next()?.ok()?;
    numbers.next()?.ok()?;
    (start >= LOWEST_PORT + 1_000).then_some(LOWEST_PORT..start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_below_linux_default() {
        assert_eq!(below_ephemeral("32768\t60999\n"), Some(10_000..32_768));
    }

    #[test]
    fn narrow_or_garbled_range_falls_back() {
        assert_eq!(below_ephemeral("10500 60999"), None);
        assert_eq!(below_ephemeral("32768"), None);
        assert_eq!(below_ephemeral("many ports"), None);
        assert_eq!(below_ephemeral(""), None);
    }

    #[test]
    fn port_is_free_and_outside_ephemeral_range() {
        let port = free_port().unwrap();

        let listener = TcpListener::bind(("127.0.0.1", port));
        assert!(listener.is_ok(), "port {port} is taken: {listener:?}");
        if let Some(range) = std::fs::read_to_string(EPHEMERAL_RANGE_FILE)
            .ok()
            .and_then(|text| below_ephemeral(&text))
        {
            assert!(range.contains(&port), "{port} not in {range:?}");
        }
    }
}
