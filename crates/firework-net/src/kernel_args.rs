//! The kernel `ip=` argument that configures the guest's `eth0` at boot.
//!
//! The format is the kernel's nfsroot one,
//! `ip=<client>:<server>:<gateway>:<netmask>:<hostname>:<device>:<autoconf>`.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::error::NetError;

/// Returns `ip=<guest>::<gateway>:<netmask>::eth0:off` with the netmask of `subnet`.
pub fn ip_arg(guest: Ipv4Addr, gateway: Ipv4Addr, subnet: Ipv4Net) -> String {
    format!("ip={guest}::{gateway}:{}::eth0:off", subnet.netmask())
}

/// Returns the kernel-argument section of `kernel_args`: the tokens before a
/// standalone `--`, after which the arguments belong to init.
fn kernel_section(kernel_args: &str) -> impl Iterator<Item = &str> {
    kernel_args
        .split_whitespace()
        .take_while(|token| *token != "--")
}

/// Checks a user-supplied `ip=` token in the kernel section of `kernel_args`.
///
/// Returns `Ok(true)` when one is present and agrees with the assigned address: the
/// client field must be `guest`, and the gateway and netmask fields must be empty or
/// equal to the assigned ones. Returns `Ok(false)` when there is none.
pub fn check_ip_arg(
    service: &str,
    kernel_args: &str,
    guest: Ipv4Addr,
    gateway: Ipv4Addr,
    subnet: Ipv4Net,
) -> Result<bool, NetError> {
    let expected = ip_arg(guest, gateway, subnet);
    let mut found = false;
    for token in kernel_section(kernel_args) {
        let Some(value) = token.strip_prefix("ip=") else {
            continue;
        };
        found = true;
        let fields: Vec<&str> = value.split(':').collect();
        let field = |index: usize| fields.get(index).copied().unwrap_or("");
        let client_ok = field(0).parse::<Ipv4Addr>().ok() == Some(guest);
        let gateway_ok = field(2).is_empty() || field(2).parse::<Ipv4Addr>().ok() == Some(gateway);
        let netmask_ok =
            field(3).is_empty() || field(3).parse::<Ipv4Addr>().ok() == Some(subnet.netmask());
        if !(client_ok && gateway_ok && netmask_ok) {
            return Err(NetError::IpArgMismatch {
                service: service.to_owned(),
                given: token.to_owned(),
                expected,
            });
        }
    }
    Ok(found)
}

/// Returns `kernel_args` with the `ip=` argument of the guest added before `--`, or
/// unchanged when the user already supplied an `ip=` that agrees with it.
pub fn with_ip_arg(
    service: &str,
    kernel_args: &str,
    guest: Ipv4Addr,
    gateway: Ipv4Addr,
    subnet: Ipv4Net,
) -> Result<String, NetError> {
    if check_ip_arg(service, kernel_args, guest, gateway, subnet)? {
        return Ok(kernel_args.to_owned());
    }
    let arg = ip_arg(guest, gateway, subnet);
    let tokens: Vec<&str> = kernel_args.split_whitespace().collect();
    let mut out: Vec<&str> = Vec::with_capacity(tokens.len() + 1);
    match tokens.iter().position(|token| *token == "--") {
        Some(separator) => {
            out.extend_from_slice(&tokens[..separator]);
            out.push(&arg);
            out.extend_from_slice(&tokens[separator..]);
        }
        None => {
            out.extend_from_slice(&tokens);
            out.push(&arg);
        }
    }
    Ok(out.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUEST: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 7);
    const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

    fn subnet(text: &str) -> Ipv4Net {
        text.parse().unwrap()
    }

    #[test]
    fn netmask_follows_every_prefix() {
        let cases = [
            ("10.0.0.0/23", "255.255.254.0"),
            ("10.0.0.0/20", "255.255.240.0"),
            ("10.0.0.0/16", "255.255.0.0"),
            ("10.0.0.0/26", "255.255.255.192"),
            ("10.0.0.0/8", "255.0.0.0"),
        ];
        for (net, mask) in cases {
            assert_eq!(
                ip_arg(GUEST, GATEWAY, subnet(net)),
                format!("ip=10.0.1.7::10.0.0.1:{mask}::eth0:off")
            );
        }
    }

    #[test]
    fn ip_arg_goes_before_init_separator() {
        let net = subnet("10.0.0.0/23");
        let out = with_ip_arg("api", "console=ttyS0 -- --flag", GUEST, GATEWAY, net).unwrap();
        assert_eq!(
            out,
            "console=ttyS0 ip=10.0.1.7::10.0.0.1:255.255.254.0::eth0:off -- --flag"
        );
        let appended = with_ip_arg("api", "console=ttyS0", GUEST, GATEWAY, net).unwrap();
        assert_eq!(
            appended,
            "console=ttyS0 ip=10.0.1.7::10.0.0.1:255.255.254.0::eth0:off"
        );
    }

    #[test]
    fn agreeing_user_ip_arg_is_kept() {
        let net = subnet("10.0.0.0/23");
        let args = "console=ttyS0 ip=10.0.1.7:::::eth0:off";
        assert_eq!(with_ip_arg("api", args, GUEST, GATEWAY, net).unwrap(), args);
        // An ip= after `--` belongs to init and is not a kernel argument.
        let after = "console=ttyS0 -- ip=1.2.3.4";
        assert!(!check_ip_arg("api", after, GUEST, GATEWAY, net).unwrap());
    }

    #[test]
    fn disagreeing_user_ip_arg_is_rejected() {
        let net = subnet("10.0.0.0/23");
        for given in [
            "ip=10.0.1.8::10.0.0.1:255.255.254.0::eth0:off",
            "ip=10.0.1.7::10.0.0.9:255.255.254.0::eth0:off",
            "ip=10.0.1.7::10.0.0.1:255.255.255.0::eth0:off",
            "ip=dhcp",
        ] {
            let args = format!("console=ttyS0 {given}");
            let err = with_ip_arg("api", &args, GUEST, GATEWAY, net).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "kernel argument {given:?} of service \"api\" disagrees with the assigned address; remove it or use \"ip=10.0.1.7::10.0.0.1:255.255.254.0::eth0:off\""
                )
            );
        }
    }
}
