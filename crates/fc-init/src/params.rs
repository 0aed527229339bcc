//! The `firework.*` boot parameters that fc-init reads from the kernel command line.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::IpAddr;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use crate::cmdline::{CommandLine, Word};
use crate::env::{self, EnvError};

/// Prefix of a plain environment entry: `firework.env.<NAME>=<VALUE>`.
pub const ENV_PREFIX: &str = "firework.env.";
/// Prefix of an encoded environment entry: `firework.env64.<NAME>=<base64url, no padding>`.
pub const ENV64_PREFIX: &str = "firework.env64.";

/// Maximum host name length in bytes that `sethostname` accepts (`HOST_NAME_MAX`).
const HOSTNAME_MAX_LEN: usize = 64;

/// Settings taken from the kernel command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootParams {
    /// `firework.env.*` and `firework.env64.*` entries; the last entry for a name wins.
    pub env: BTreeMap<String, String>,
    /// `firework.exec=<path>`: the program to run when no arguments follow `--`.
    pub exec: Option<OsString>,
    /// `firework.user=<spec>` in Docker's `user[:group]` form.
    pub user: Option<String>,
    /// `firework.workdir=<path>`.
    pub workdir: Option<PathBuf>,
    /// `firework.hostname=<name>`.
    pub hostname: Option<String>,
    /// `firework.dns=<ip>[,<ip>...]`: name servers for `/etc/resolv.conf`.
    pub dns: Option<Vec<IpAddr>>,
    /// The words after `--`, joined back to `param=value` form; `None` without `--`.
    pub init_args: Option<Vec<OsString>>,
    /// Malformed `firework.*` entries, each skipped.
    pub problems: Vec<ParamError>,
}

/// A malformed or unknown `firework.*` boot parameter. fc-init reports it and skips it.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ParamError {
    /// A rejected environment entry.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// A `firework.*` setting without `=`.
    #[error("{param} has no value, ignored")]
    MissingValue { param: String },
    /// A `firework.*` setting whose value is empty.
    #[error("{param} is empty, ignored")]
    EmptyValue { param: String },
    /// A `firework.*` setting whose value is not UTF-8.
    #[error("value of {param} is not valid UTF-8, ignored")]
    NotUtf8 { param: String },
    /// A `firework.dns` entry that is not an IPv4 or IPv6 address.
    #[error("invalid address {address:?} in firework.dns, ignored")]
    InvalidDnsAddress { address: String },
    /// A host name that is empty, longer than 64 bytes, or has characters other than
    /// letters, digits, `-` and `.`.
    #[error(
        "invalid host name {name:?} in firework.hostname: use 1 to 64 letters, digits, '-' \
         or '.', ignored"
    )]
    InvalidHostname { name: String },
    /// A `firework.*` parameter that fc-init does not know.
    #[error("unknown boot parameter {param}, ignored")]
    Unknown { param: String },
}

impl BootParams {
    /// Reads the `firework.*` parameters and the init arguments from a split command line.
    /// Parameters without the `firework.` prefix belong to the kernel and are ignored.
    pub fn from_command_line(line: &CommandLine) -> Self {
        let mut params = BootParams {
            init_args: line
                .init_args
                .as_ref()
                .map(|words| words.iter().map(Word::to_os_string).collect()),
            ..BootParams::default()
        };
        for word in &line.params {
            params.apply(word);
        }
        params
    }

    /// Parses the raw bytes of `/proc/cmdline`.
    pub fn parse(text: &[u8]) -> Self {
        Self::from_command_line(&crate::cmdline::split(text))
    }

    fn apply(&mut self, word: &Word) {
        let Ok(param) = std::str::from_utf8(&word.param) else {
            // Not a firework parameter: all of those are ASCII.
            return;
        };
        if !param.starts_with("firework.") {
            return;
        }
        if let Some(name) = param.strip_prefix(ENV64_PREFIX) {
            self.apply_env(name, param, word.value.as_deref(), env::decode_base64);
            return;
        }
        if let Some(name) = param.strip_prefix(ENV_PREFIX) {
            self.apply_env(name, param, word.value.as_deref(), env::decode_raw);
            return;
        }

        let known = [
            "firework.exec",
            "firework.user",
            "firework.workdir",
            "firework.hostname",
        ];
        if !known.contains(&param) && param != "firework.dns" {
            self.problems.push(ParamError::Unknown {
                param: param.to_owned(),
            });
            return;
        }
        let Some(value) = &word.value else {
            self.problems.push(ParamError::MissingValue {
                param: param.to_owned(),
            });
            return;
        };
        if value.is_empty() {
            self.problems.push(ParamError::EmptyValue {
                param: param.to_owned(),
            });
            return;
        }
        match param {
            "firework.exec" => self.exec = Some(OsString::from_vec(value.clone())),
            "firework.workdir" => {
                self.workdir = Some(PathBuf::from(OsString::from_vec(value.clone())));
            }
            _ => {
                let Ok(text) = std::str::from_utf8(value) else {
                    self.problems.push(ParamError::NotUtf8 {
                        param: param.to_owned(),
                    });
                    return;
                };
                self.apply_text_setting(param, text);
            }
        }
    }

    fn apply_text_setting(&mut self, param: &str, text: &str) {
        match param {
            "firework.user" => self.user = Some(text.to_owned()),
            "firework.hostname" => {
                if is_valid_hostname(text) {
                    self.hostname = Some(text.to_owned());
                } else {
                    self.problems.push(ParamError::InvalidHostname {
                        name: text.to_owned(),
                    });
                }
            }
            _ => self.dns = Some(self.parse_dns(text)),
        }
    }

    fn parse_dns(&mut self, text: &str) -> Vec<IpAddr> {
        let mut servers = Vec::new();
        for address in text.split(',') {
            match address.parse::<IpAddr>() {
                Ok(ip) => servers.push(ip),
                Err(_) => self.problems.push(ParamError::InvalidDnsAddress {
                    address: address.to_owned(),
                }),
            }
        }
        servers
    }

    fn apply_env(
        &mut self,
        name: &str,
        param: &str,
        value: Option<&[u8]>,
        decode: fn(&[u8], &str) -> Result<String, EnvError>,
    ) {
        let entry = env::check_name(name.as_bytes(), param).and_then(|name| {
            let value = value.ok_or_else(|| EnvError::MissingValue {
                origin: param.to_owned(),
            })?;
            Ok((name, decode(value, param)?))
        });
        match entry {
            Ok((name, value)) => {
                self.env.insert(name, value);
            }
            Err(err) => self.problems.push(err.into()),
        }
    }
}

/// Reports whether `name` can be given to `sethostname` and reads as a DNS host name.
pub fn is_valid_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= HOSTNAME_MAX_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(params: &BootParams) -> Vec<(&str, &str)> {
        params
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    fn messages(params: &BootParams) -> Vec<String> {
        params.problems.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn env_plain_and_encoded() {
        let params = BootParams::parse(
            b"console=ttyS0 firework.env.A=1 firework.env64.MSG=aGVsbG8gd29ybGQ reboot=k\n",
        );
        assert_eq!(env_of(&params), vec![("A", "1"), ("MSG", "hello world")]);
        assert!(params.problems.is_empty());
    }

    #[test]
    fn env_quoted_values() {
        let params = BootParams::parse(
            br#"firework.env.A="two words" "firework.env.B=x y" firework.env.C="""#,
        );
        assert_eq!(
            env_of(&params),
            vec![("A", "two words"), ("B", "x y"), ("C", "")]
        );
    }

    #[test]
    fn env_value_keeps_equals() {
        let params = BootParams::parse(b"firework.env.URL=postgres://u:p@h/db?sslmode=off&a=b");
        assert_eq!(
            env_of(&params),
            vec![("URL", "postgres://u:p@h/db?sslmode=off&a=b")]
        );
    }

    #[test]
    fn env_empty_values() {
        let params = BootParams::parse(b"firework.env.EMPTY= firework.env64.EMPTY64=");
        assert_eq!(env_of(&params), vec![("EMPTY", ""), ("EMPTY64", "")]);
        assert!(params.problems.is_empty());
    }

    #[test]
    fn env_last_one_wins() {
        let params = BootParams::parse(
            b"firework.env.A=first firework.env64.A=c2Vjb25k firework.env.B=1 firework.env.A=third",
        );
        assert_eq!(env_of(&params), vec![("A", "third"), ("B", "1")]);

        let params = BootParams::parse(b"firework.env.A=first firework.env64.A=c2Vjb25k");
        assert_eq!(env_of(&params), vec![("A", "second")]);
    }

    #[test]
    fn env_malformed_entries_are_reported_and_skipped() {
        let params = BootParams::parse(
            b"firework.env.1BAD=x firework.env.A-B=x firework.env.=x firework.env.NOVALUE \
              firework.env64.B64=aGV$ firework.env64.PAD=aGk= firework.env.OK=yes \
              firework.env64.BIN=__4 firework.env.RAW=\xff",
        );
        assert_eq!(env_of(&params), vec![("OK", "yes")]);
        assert_eq!(
            messages(&params),
            vec![
                "invalid variable name \"1BAD\" in firework.env.1BAD: a name must match \
                 [A-Za-z_][A-Za-z0-9_]*",
                "invalid variable name \"A-B\" in firework.env.A-B: a name must match \
                 [A-Za-z_][A-Za-z0-9_]*",
                "invalid variable name \"\" in firework.env.: a name must match \
                 [A-Za-z_][A-Za-z0-9_]*",
                "firework.env.NOVALUE has no value: write firework.env.NOVALUE= to set an \
                 empty value",
                "invalid base64url value in firework.env64.B64",
                "invalid base64url value in firework.env64.PAD",
                "value of firework.env64.BIN is not valid UTF-8",
                "value of firework.env.RAW is not valid UTF-8",
            ]
        );
        // The decoder's own reason is the error's source, printed after the message.
        let source = std::error::Error::source(&params.problems[4]).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("Invalid symbol 36, offset 3."));
    }

    #[test]
    fn malformed_entry_does_not_remove_earlier_value() {
        let params = BootParams::parse(b"firework.env.A=kept firework.env64.A=!!");
        assert_eq!(env_of(&params), vec![("A", "kept")]);
        assert_eq!(
            messages(&params),
            vec!["invalid base64url value in firework.env64.A"]
        );
    }

    #[test]
    fn kernel_parameters_are_ignored() {
        let params = BootParams::parse(
            b"console=ttyS0 reboot=k panic=1 pci=off init=/sbin/fc-init quiet \
              ip=172.16.0.2::172.16.0.1:255.255.255.0::eth0:off env.A=1 firework=1 FOO=bar",
        );
        assert_eq!(params, BootParams::default());
    }

    #[test]
    fn settings() {
        let params = BootParams::parse(
            b"firework.exec=/usr/bin/app firework.user=app:staff firework.workdir=/srv/app \
              firework.hostname=web-1.example firework.dns=127.0.0.53,::1",
        );
        assert_eq!(params.exec, Some(OsString::from("/usr/bin/app")));
        assert_eq!(params.user.as_deref(), Some("app:staff"));
        assert_eq!(params.workdir, Some(PathBuf::from("/srv/app")));
        assert_eq!(params.hostname.as_deref(), Some("web-1.example"));
        assert_eq!(
            params.dns,
            Some(vec![
                "127.0.0.53".parse::<IpAddr>().unwrap(),
                "::1".parse::<IpAddr>().unwrap(),
            ])
        );
        assert!(params.problems.is_empty());
        assert_eq!(params.init_args, None);
    }

    #[test]
    fn settings_last_one_wins() {
        let params = BootParams::parse(b"firework.user=a firework.user=1000:1000");
        assert_eq!(params.user.as_deref(), Some("1000:1000"));
    }

    #[test]
    fn malformed_settings_are_reported() {
        let params = BootParams::parse(
            b"firework.user firework.exec= firework.hostname=bad_name firework.dns=127.0.0.1,nope \
              firework.volumes64=e30 firework.hostname=ok",
        );
        assert_eq!(params.user, None);
        assert_eq!(params.exec, None);
        assert_eq!(params.hostname.as_deref(), Some("ok"));
        assert_eq!(
            params.dns,
            Some(vec!["127.0.0.1".parse::<IpAddr>().unwrap()])
        );
        assert_eq!(
            messages(&params),
            vec![
                "firework.user has no value, ignored",
                "firework.exec is empty, ignored",
                "invalid host name \"bad_name\" in firework.hostname: use 1 to 64 letters, \
                 digits, '-' or '.', ignored",
                "invalid address \"nope\" in firework.dns, ignored",
                "unknown boot parameter firework.volumes64, ignored",
            ]
        );
    }

    #[test]
    fn init_args_after_dashes() {
        let params = BootParams::parse(
            br#"firework.env.A=1 -- /bin/app "arg one" --flag=x firework.env.B=2"#,
        );
        assert_eq!(env_of(&params), vec![("A", "1")]);
        assert_eq!(
            params.init_args,
            Some(vec![
                OsString::from("/bin/app"),
                OsString::from("arg one"),
                OsString::from("--flag=x"),
                OsString::from("firework.env.B=2"),
            ])
        );
    }

    #[test]
    fn hostname_rules() {
        assert!(is_valid_hostname("fc-guest"));
        assert!(is_valid_hostname(&"a".repeat(64)));
        assert!(!is_valid_hostname(&"a".repeat(65)));
        assert!(!is_valid_hostname(""));
        assert!(!is_valid_hostname("a b"));
    }
}
