//! Planning the service from the boot parameters and the runtime file, without side
//! effects: which argv, environment, user, working directory and writable paths.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::command::{self, CommandSource};
use crate::env::{self, EnvError, EnvLayers};
use crate::params::BootParams;
use crate::runtime::{self, RuntimeConfig};
use crate::user::{self, ResolvedUser, UserError};

/// The inputs a plan is made from.
#[derive(Debug, Clone)]
pub struct PlanInput<'a> {
    pub params: &'a BootParams,
    pub runtime: &'a RuntimeConfig,
    /// The words the kernel passed to init (fc-init's own arguments without `argv[0]`);
    /// empty when fc-init is not PID 1.
    pub kernel_args: &'a [OsString],
    /// fc-init's own environment.
    pub inherited_env: Vec<(OsString, OsString)>,
    /// Text of `/etc/passwd`, empty when the file is missing.
    pub passwd: &'a str,
    /// Text of `/etc/group`, empty when the file is missing.
    pub group: &'a str,
}

/// The service as planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePlan {
    /// The argv, `argv[0]` first; `argv[0]` is not resolved yet.
    pub argv: Vec<OsString>,
    pub source: CommandSource,
    pub env: std::collections::BTreeMap<OsString, OsString>,
    pub user: Option<ResolvedUser>,
    /// The user specification the user came from, for messages.
    pub user_spec: Option<String>,
    pub workdir: Option<PathBuf>,
    /// Writable paths to hand to the user, normalised; empty without a user.
    pub writable_paths: Vec<PathBuf>,
    /// Entries of the runtime file's `env` that were skipped.
    pub env_problems: Vec<EnvError>,
}

/// A plan that cannot be carried out.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("invalid service user")]
    User(#[from] UserError),
}

/// Makes the plan. Boot parameters override the runtime file: `firework.user` over `user`,
/// `firework.workdir` over `workdir`, and `firework.env.*` over `env`.
pub fn plan(input: &PlanInput<'_>) -> Result<ServicePlan, PlanError> {
    let params = input.params;
    let runtime = input.runtime;

    let user_spec = params.user.clone().or_else(|| runtime.user.clone());
    let user = match &user_spec {
        None => None,
        Some(spec) => Some(user::resolve(
            &user::parse_spec(spec)?,
            input.passwd,
            input.group,
        )?),
    };

    let mut env_problems = Vec::new();
    let mut image_env = std::collections::BTreeMap::new();
    for (name, value) in runtime.env.iter().flatten() {
        match env::check_name(
            name.as_bytes(),
            &format!("env of {}", runtime::RUNTIME_FILE),
        ) {
            Ok(name) => {
                image_env.insert(name, value.clone());
            }
            Err(err) => env_problems.push(err),
        }
    }
    let user_env = user
        .as_ref()
        .and_then(|user| Some((user.name.clone()?, user.home.clone())))
        .map(|(name, home)| {
            let mut vars = vec![("USER".to_owned(), name)];
            if let Some(home) = home {
                vars.push(("HOME".to_owned(), home.to_string_lossy().into_owned()));
            }
            vars
        })
        .unwrap_or_default();
    let env = EnvLayers {
        inherited: input.inherited_env.clone(),
        user: user_env,
        image: image_env,
        boot: params.env.clone(),
    }
    .merge();

    let (argv, source) = command::choose_argv(
        input.kernel_args,
        params.init_args.as_deref(),
        params.exec.as_deref(),
    );
    let workdir = params
        .workdir
        .clone()
        .or_else(|| runtime.workdir.as_ref().map(PathBuf::from));
    let writable_paths = match &user {
        Some(_) => {
            runtime::normalize_writable_paths(runtime.writable_paths.as_deref().unwrap_or_default())
        }
        None => Vec::new(),
    };

    Ok(ServicePlan {
        argv,
        source,
        env,
        user,
        user_spec,
        workdir,
        writable_paths,
        env_problems,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::ffi::OsStr;

    const PASSWD: &str = "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\napp:x:1000:\nstaff:x:50:\n";

    fn plan_for(cmdline: &str, runtime: &RuntimeConfig) -> Result<ServicePlan, PlanError> {
        let params = BootParams::parse(cmdline.as_bytes());
        plan(&PlanInput {
            params: &params,
            runtime,
            kernel_args: &[],
            inherited_env: vec![("HOME".into(), "/".into()), ("TERM".into(), "linux".into())],
            passwd: PASSWD,
            group: GROUP,
        })
    }

    fn get<'a>(plan: &'a ServicePlan, name: &str) -> Option<&'a OsStr> {
        env::lookup(&plan.env, name)
    }

    #[test]
    fn defaults_without_parameters() {
        let plan = plan_for("console=ttyS0", &RuntimeConfig::default()).unwrap();
        assert_eq!(plan.argv, vec![OsString::from("/sbin/init")]);
        assert_eq!(plan.source, CommandSource::Default);
        assert_eq!(plan.user, None);
        assert_eq!(plan.workdir, None);
        assert_eq!(get(&plan, "HOME"), Some(OsStr::new("/")));
        assert_eq!(get(&plan, "PATH"), Some(OsStr::new(env::DEFAULT_PATH)));
        assert_eq!(plan.env.len(), 3);
    }

    #[test]
    fn boot_parameters_override_runtime_file() {
        let runtime = RuntimeConfig {
            user: Some("1000".to_owned()),
            workdir: Some("/image".to_owned()),
            env: Some(BTreeMap::from([
                ("A".to_owned(), "image".to_owned()),
                ("B".to_owned(), "image".to_owned()),
                ("bad-name".to_owned(), "x".to_owned()),
            ])),
            writable_paths: Some(vec!["/data/".to_owned(), "rel".to_owned()]),
        };
        let plan = plan_for(
            "firework.env.A=boot firework.user=app:staff firework.workdir=/boot -- /bin/app x",
            &runtime,
        )
        .unwrap();
        assert_eq!(
            plan.argv,
            vec![OsString::from("/bin/app"), OsString::from("x")]
        );
        assert_eq!(get(&plan, "A"), Some(OsStr::new("boot")));
        assert_eq!(get(&plan, "B"), Some(OsStr::new("image")));
        assert_eq!(get(&plan, "USER"), Some(OsStr::new("app")));
        assert_eq!(get(&plan, "HOME"), Some(OsStr::new("/home/app")));

        assert_eq!(plan.user_spec.as_deref(), Some("app:staff"));
        let user = plan.user.clone().unwrap();
        assert_eq!((user.uid, user.gid), (1000, 50));
        assert_eq!(plan.workdir, Some(PathBuf::from("/boot")));
        assert_eq!(plan.writable_paths, vec![PathBuf::from("/data")]);
        assert_eq!(
            plan.env_problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            vec![
                "invalid variable name \"bad-name\" in env of /etc/firework/runtime.json: a \
                 name must match [A-Za-z_][A-Za-z0-9_]*"
            ]
        );
    }

    #[test]
    fn runtime_user_and_numeric_user_keep_home() {
        let runtime = RuntimeConfig {
            user: Some("1000:1000".to_owned()),
            ..RuntimeConfig::default()
        };
        let plan = plan_for("", &runtime).unwrap();
        assert_eq!(
            plan.user.as_ref().map(|u| (u.uid, u.gid)),
            Some((1000, 1000))
        );
        assert_eq!(get(&plan, "HOME"), Some(OsStr::new("/")));
        assert_eq!(get(&plan, "USER"), None);
        assert!(plan.writable_paths.is_empty());
    }

    #[test]
    fn writable_paths_need_a_user() {
        let runtime = RuntimeConfig {
            writable_paths: Some(vec!["/data".to_owned()]),
            ..RuntimeConfig::default()
        };
        assert!(plan_for("", &runtime).unwrap().writable_paths.is_empty());
    }

    #[test]
    fn unknown_user_fails() {
        let err = plan_for("firework.user=ghost", &RuntimeConfig::default()).unwrap_err();
        assert_eq!(
            err,
            PlanError::User(UserError::UserNotFound {
                name: "ghost".to_owned()
            })
        );
        assert_eq!(
            crate::console::error_chain(&err),
            "invalid service user: user \"ghost\" not found in /etc/passwd"
        );
    }

    #[test]
    fn exec_parameter_used_without_dashes() {
        let plan = plan_for("firework.exec=/usr/bin/app", &RuntimeConfig::default()).unwrap();
        assert_eq!(plan.argv, vec![OsString::from("/usr/bin/app")]);
        assert_eq!(plan.source, CommandSource::Exec);
    }
}
