//! The parts of a kernel command line that guest mode acts on, read the way Linux reads
//! them: `init=`, `panic=`, `ip=`, and the words the kernel hands to init (its arguments
//! and environment).

use std::net::Ipv4Addr;

/// Init the kernel runs when the command line has no `init=`.
pub const DEFAULT_INIT: &str = "/sbin/init";

/// Parameters the kernel consumes itself, so they never reach init. Names with a dot
/// (module parameters such as `virtio_mmio.device`) are dropped by the kernel too.
const KERNEL_PARAMETERS: &[&str] = &[
    "acpi",
    "console",
    "earlycon",
    "earlyprintk",
    "init",
    "ip",
    "loglevel",
    "mitigations",
    "nomodule",
    "noapic",
    "nokaslr",
    "panic",
    "pci",
    "quiet",
    "random",
    "reboot",
    "ro",
    "root",
    "rootflags",
    "rootfstype",
    "rootwait",
    "rw",
    "swiotlb",
    "tsc",
];

/// The kernel's `ip=` static configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpConfig {
    pub client: Ipv4Addr,
    pub gateway: Option<Ipv4Addr>,
    pub prefix_len: u8,
    pub hostname: Option<String>,
    /// Device name; `None` means the first interface.
    pub device: Option<String>,
}

/// The boot command line values that guest mode uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootArgs {
    /// Path of init inside the root file system.
    pub init: String,
    /// Arguments after the program name.
    pub init_args: Vec<String>,
    /// Environment the kernel passes: `HOME=/`, `TERM=linux` and unknown `key=value` words.
    pub init_env: Vec<(String, String)>,
    /// Seconds before the kernel reboots after a panic; 0 means it hangs.
    pub panic_timeout: i64,
    pub ip: Option<IpConfig>,
}

/// Splits a command line into words as the kernel does: spaces separate words except
/// inside double quotes, and the quotes are removed.
pub fn split_words(cmdline: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut in_word = false;
    for c in cmdline.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            ' ' | '\t' | '\n' if !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            _ => {
                current.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(current);
    }
    words
}

/// Parses a dotted netmask (`255.255.255.0`) into a prefix length.
fn netmask_prefix(mask: Ipv4Addr) -> Option<u8> {
    let bits = u32::from(mask);
    (bits.leading_ones() + bits.trailing_zeros() == 32).then_some(bits.leading_ones() as u8)
}

/// Parses `ip=<client>:<server>:<gateway>:<netmask>:<hostname>:<device>:<autoconf>`.
/// Returns `None` for forms that are not a static address (`dhcp`, `off`, ...).
pub fn parse_ip(value: &str) -> Option<IpConfig> {
    let fields: Vec<&str> = value.split(':').collect();
    let client: Ipv4Addr = fields.first()?.parse().ok()?;
    let field = |index: usize| fields.get(index).copied().filter(|text| !text.is_empty());
    let gateway = field(2).and_then(|text| text.parse().ok());
    let prefix_len = match field(3).and_then(|text| text.parse().ok()) {
        Some(mask) => netmask_prefix(mask)?,
        // The kernel derives a class-based mask; every test network is a /24 or smaller.
        None => 24,
    };
    Some(IpConfig {
        client,
        gateway,
        prefix_len,
        hostname: field(4).map(str::to_string),
        device: field(5).map(str::to_string),
    })
}

impl BootArgs {
    /// Reads the command line the kernel would see.
    pub fn parse(cmdline: &str) -> BootArgs {
        let words = split_words(cmdline);
        let (kernel_words, init_words) = match words.iter().position(|word| word == "--") {
            Some(index) => (&words[..index], words[index + 1..].to_vec()),
            None => (&words[..], Vec::new()),
        };
        let mut args = BootArgs {
            init: DEFAULT_INIT.to_string(),
            init_args: Vec::new(),
            init_env: vec![
                ("HOME".to_string(), "/".to_string()),
                ("TERM".to_string(), "linux".to_string()),
            ],
            panic_timeout: 0,
            ip: None,
        };
        for word in kernel_words {
            let (name, value) = match word.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (word.as_str(), None),
            };
            match (name, value) {
                ("init", Some(path)) => args.init = path.to_string(),
                ("panic", Some(seconds)) => args.panic_timeout = seconds.parse().unwrap_or(0),
                ("ip", Some(config)) => args.ip = parse_ip(config),
                _ if KERNEL_PARAMETERS.contains(&name) || name.contains('.') => {}
                (name, Some(value)) => args.init_env.push((name.to_string(), value.to_string())),
                (name, None) => args.init_args.push(name.to_string()),
            }
        }
        args.init_args.extend(init_words);
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn firecracker_command_line() {
        let args = BootArgs::parse(
            "console=ttyS0 reboot=k panic=1 pci=off ip=172.16.0.2::172.16.0.1:255.255.255.0::eth0:off firework.env.A=1 root=/dev/vda rw virtio_mmio.device=4K@0xc0001000:5 -- --flag value",
        );
        assert_eq!(args.init, DEFAULT_INIT);
        assert_eq!(args.init_args, vec!["--flag", "value"]);
        assert_eq!(
            args.init_env,
            vec![
                ("HOME".to_string(), "/".to_string()),
                ("TERM".to_string(), "linux".to_string())
            ]
        );
        assert_eq!(args.panic_timeout, 1);
        assert_eq!(
            args.ip,
            Some(IpConfig {
                client: Ipv4Addr::new(172, 16, 0, 2),
                gateway: Some(Ipv4Addr::new(172, 16, 0, 1)),
                prefix_len: 24,
                hostname: None,
                device: Some("eth0".to_string()),
            })
        );
    }

    #[test]
    fn init_and_unknown_words() {
        let args = BootArgs::parse("init=/sbin/fc-init single FOO=bar \"quoted word\"");
        assert_eq!(args.init, "/sbin/fc-init");
        assert_eq!(args.init_args, vec!["single", "quoted word"]);
        assert_eq!(args.init_env[2], ("FOO".to_string(), "bar".to_string()));
        assert_eq!(args.panic_timeout, 0);
    }

    #[test]
    fn ip_forms() {
        assert_eq!(parse_ip("dhcp"), None);
        assert_eq!(parse_ip("10.0.0.2::10.0.0.1:255.255.0.255::eth0:off"), None);
        let config = parse_ip("10.0.0.2::10.0.0.1:255.255.255.252:vm1:eth1:off").unwrap();
        assert_eq!(config.prefix_len, 30);
        assert_eq!(config.hostname.as_deref(), Some("vm1"));
        assert_eq!(config.device.as_deref(), Some("eth1"));
    }
}
