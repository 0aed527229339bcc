//! Docker-style user specifications (`name`, `uid`, `name:group`, `uid:gid`) and their
//! resolution against `/etc/passwd` and `/etc/group`.

use std::path::PathBuf;

/// One side of a user specification: a name to look up or a numeric id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Account {
    Name(String),
    Id(u32),
}

/// A parsed `user[:group]` specification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSpec {
    pub user: Account,
    pub group: Option<Account>,
}

/// The identity the service runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    /// The user name, when the user was given by name.
    pub name: Option<String>,
    /// The home directory from `/etc/passwd`, when the user was given by name.
    pub home: Option<PathBuf>,
}

/// A user specification that cannot be parsed or resolved.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UserError {
    #[error("invalid user spec {spec:?}: the user part is empty")]
    EmptyUser { spec: String },
    #[error("invalid user spec {spec:?}: the group part after ':' is empty")]
    EmptyGroup { spec: String },
    #[error("invalid user spec {spec:?}: {id} is a negative id")]
    NegativeId { spec: String, id: String },
    #[error("invalid user spec {spec:?}: {id} is larger than the largest id 4294967294")]
    IdOutOfRange { spec: String, id: String },
    #[error("user {name:?} not found in /etc/passwd")]
    UserNotFound { name: String },
    #[error("group {name:?} not found in /etc/group")]
    GroupNotFound { name: String },
    #[error("invalid entry for {name:?} in {file}: {reason}")]
    InvalidEntry {
        name: String,
        file: &'static str,
        reason: &'static str,
    },
}

/// Parses a Docker-style user specification.
pub fn parse_spec(spec: &str) -> Result<UserSpec, UserError> {
    let (user_part, group_part) = match spec.split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (spec, None),
    };
    if user_part.is_empty() {
        return Err(UserError::EmptyUser {
            spec: spec.to_owned(),
        });
    }
    let user = parse_account(user_part, spec)?;
    let group = match group_part {
        None => None,
        Some("") => {
            return Err(UserError::EmptyGroup {
                spec: spec.to_owned(),
            });
        }
        Some(group) => Some(parse_account(group, spec)?),
    };
    Ok(UserSpec { user, group })
}

fn parse_account(part: &str, spec: &str) -> Result<Account, UserError> {
    let digits = part.strip_prefix('-').unwrap_or(part);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(Account::Name(part.to_owned()));
    }
    if part.starts_with('-') {
        return Err(UserError::NegativeId {
            spec: spec.to_owned(),
            id: part.to_owned(),
        });
    }
    // u32::MAX is (uid_t)-1, which setuid reads as "leave unchanged".
    match part.parse::<u32>() {
        Ok(id) if id < u32::MAX => Ok(Account::Id(id)),
        _ => Err(UserError::IdOutOfRange {
            spec: spec.to_owned(),
            id: part.to_owned(),
        }),
    }
}

/// Resolves a specification with the contents of `/etc/passwd` and `/etc/group` (pass an
/// empty string for a missing file). A numeric user alone means gid = uid and no lookup.
pub fn resolve(spec: &UserSpec, passwd: &str, group: &str) -> Result<ResolvedUser, UserError> {
    let mut resolved = match &spec.user {
        Account::Id(uid) => ResolvedUser {
            uid: *uid,
            gid: *uid,
            name: None,
            home: None,
        },
        Account::Name(name) => lookup_passwd(name, passwd)?,
    };
    match &spec.group {
        None => {}
        Some(Account::Id(gid)) => resolved.gid = *gid,
        Some(Account::Name(name)) => resolved.gid = lookup_group(name, group)?,
    }
    Ok(resolved)
}

/// Finds `name` in `/etc/passwd` text (`name:password:uid:gid:gecos:home:shell`).
fn lookup_passwd(name: &str, passwd: &str) -> Result<ResolvedUser, UserError> {
    let fields = find_entry(passwd, name).ok_or_else(|| UserError::UserNotFound {
        name: name.to_owned(),
    })?;
    let invalid = |reason| UserError::InvalidEntry {
        name: name.to_owned(),
        file: "/etc/passwd",
        reason,
    };
    let uid = parse_id(fields.get(2).copied()).ok_or_else(|| invalid("the uid is not a number"))?;
    let gid = parse_id(fields.get(3).copied()).ok_or_else(|| invalid("the gid is not a number"))?;
    let home = fields
        .get(5)
        .filter(|home| !home.is_empty())
        .map(PathBuf::from);
    Ok(ResolvedUser {
        uid,
        gid,
        name: Some(name.to_owned()),
        home,
    })
}

/// Finds `name` in `/etc/group` text (`name:password:gid:members`).
fn lookup_group(name: &str, group: &str) -> Result<u32, UserError> {
    let fields = find_entry(group, name).ok_or_else(|| UserError::GroupNotFound {
        name: name.to_owned(),
    })?;
    parse_id(fields.get(2).copied()).ok_or_else(|| UserError::InvalidEntry {
        name: name.to_owned(),
        file: "/etc/group",
        reason: "the gid is not a number",
    })
}

/// Returns the `:`-separated fields of the first line whose first field is `name`.
fn find_entry<'a>(text: &'a str, name: &str) -> Option<Vec<&'a str>> {
    text.lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields.first() == Some(&name))
}

fn parse_id(field: Option<&str>) -> Option<u32> {
    field?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
                          # comment line\n\
                          app:x:1000:1001:App user:/home/app:/bin/sh\n\
                          nohome:x:1002:1002:::/bin/false\n\
                          broken:x:abc:1:::\n";
    const GROUP: &str = "root:x:0:\nstaff:x:50:app\napp:x:1001:\nodd:x:-5:\n";

    fn resolve_str(spec: &str) -> Result<ResolvedUser, UserError> {
        resolve(&parse_spec(spec)?, PASSWD, GROUP)
    }

    #[test]
    fn numeric_uid_implies_gid() {
        assert_eq!(
            resolve_str("1001").unwrap(),
            ResolvedUser {
                uid: 1001,
                gid: 1001,
                name: None,
                home: None
            }
        );
    }

    #[test]
    fn numeric_uid_and_gid() {
        let user = resolve_str("1001:2002").unwrap();
        assert_eq!((user.uid, user.gid), (1001, 2002));
    }

    #[test]
    fn name_from_passwd() {
        assert_eq!(
            resolve_str("app").unwrap(),
            ResolvedUser {
                uid: 1000,
                gid: 1001,
                name: Some("app".to_owned()),
                home: Some(PathBuf::from("/home/app")),
            }
        );
        assert_eq!(resolve_str("nohome").unwrap().home, None);
    }

    #[test]
    fn name_and_group_name() {
        let user = resolve_str("app:staff").unwrap();
        assert_eq!((user.uid, user.gid), (1000, 50));
        let user = resolve_str("0:app").unwrap();
        assert_eq!((user.uid, user.gid), (0, 1001));
        let user = resolve_str("app:7").unwrap();
        assert_eq!((user.uid, user.gid), (1000, 7));
    }

    #[test]
    fn invalid_specs() {
        let cases = [
            (
                ":1000",
                "invalid user spec \":1000\": the user part is empty",
            ),
            ("", "invalid user spec \"\": the user part is empty"),
            (
                "app:",
                "invalid user spec \"app:\": the group part after ':' is empty",
            ),
            ("-1", "invalid user spec \"-1\": -1 is a negative id"),
            ("1:-2", "invalid user spec \"1:-2\": -2 is a negative id"),
            (
                "4294967295",
                "invalid user spec \"4294967295\": 4294967295 is larger than the largest id \
                 4294967294",
            ),
            ("ghost", "user \"ghost\" not found in /etc/passwd"),
            ("app:ghosts", "group \"ghosts\" not found in /etc/group"),
            (
                "broken",
                "invalid entry for \"broken\" in /etc/passwd: the uid is not a number",
            ),
            (
                "1:odd",
                "invalid entry for \"odd\" in /etc/group: the gid is not a number",
            ),
        ];
        for (spec, message) in cases {
            assert_eq!(
                resolve_str(spec).unwrap_err().to_string(),
                message,
                "spec {spec:?}"
            );
        }
    }

    #[test]
    fn missing_files_fail_names_only() {
        let spec = parse_spec("1000:1000").unwrap();
        assert_eq!(resolve(&spec, "", "").unwrap().uid, 1000);
        let spec = parse_spec("app").unwrap();
        assert_eq!(
            resolve(&spec, "", "").unwrap_err(),
            UserError::UserNotFound {
                name: "app".to_owned()
            }
        );
    }
}
