//! The boot sequence: guest setup, planning, the service's life, and the way fc-init ends.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::command::{self, CommandError, CommandSource};
use crate::console;
use crate::env;
use crate::mounts::{self, MountOutcome};
use crate::params::BootParams;
use crate::plan::{self, PlanInput, ServicePlan};
use crate::runtime::{self, RuntimeConfig};
use crate::supervise::{Role, ServiceSpec, Supervisor};
use crate::system;

/// Environment variable that names a command-line file in the helper role (PID other than
/// 1). PID 1 always reads `/proc/cmdline`.
pub const CMDLINE_FILE_VAR: &str = "FC_INIT_CMDLINE_FILE";

/// Exit code in the helper role when the service user cannot be resolved or set up.
pub const EXIT_USER_FAILED: u8 = 125;
/// Exit code in the helper role when the program is not found.
pub const EXIT_NOT_FOUND: u8 = 127;
/// Exit code in the helper role for a usage error.
pub const EXIT_USAGE: u8 = 2;

/// Final action of fc-init after the boot sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// The service ran and exited: reboot, which ends the VM under `reboot=k`.
    Reboot,
    /// The service could not start: power off.
    PowerOff,
    /// Helper role: exit with this status.
    Exit(u8),
}

/// Inputs of the boot sequence that come from the process itself.
#[derive(Debug, Clone)]
pub struct BootOptions {
    pub role: Role,
    /// fc-init's arguments without `argv[0]`. As PID 1 these are the words the kernel passed
    /// to init. In the helper role they are the command, if given.
    pub own_args: Vec<OsString>,
    /// fc-init's environment.
    pub inherited_env: Vec<(OsString, OsString)>,
    /// Path of the kernel command-line file. `None` means an empty command line.
    pub cmdline_path: Option<PathBuf>,
    pub runtime_path: PathBuf,
    pub grace: Duration,
}

impl BootOptions {
    /// Options for this process: PID 1 reads `/proc/cmdline`, the helper role reads the file
    /// named by [`CMDLINE_FILE_VAR`], if any.
    pub fn from_process() -> BootOptions {
        let role = Role::detect();
        let inherited_env: Vec<(OsString, OsString)> = std::env::vars_os().collect();
        let cmdline_path = match role {
            Role::Init => Some(PathBuf::from("/proc/cmdline")),
            Role::Helper => std::env::var_os(CMDLINE_FILE_VAR).map(PathBuf::from),
        };
        BootOptions {
            role,
            own_args: std::env::args_os().skip(1).collect(),
            inherited_env: inherited_env
                .into_iter()
                .filter(|(name, _)| name != CMDLINE_FILE_VAR)
                .collect(),
            cmdline_path,
            runtime_path: PathBuf::from(runtime::RUNTIME_FILE),
            grace: crate::supervise::GRACE_PERIOD,
        }
    }

    fn failed(&self, helper_code: u8) -> Finish {
        nix::unistd::sync();
        match self.role {
            Role::Init => Finish::PowerOff,
            Role::Helper => Finish::Exit(helper_code),
        }
    }
}

/// Runs the whole boot sequence and returns how fc-init must end.
pub fn run(options: &BootOptions) -> Finish {
    if options.role == Role::Helper && options.own_args.is_empty() && options.cmdline_path.is_none()
    {
        console::report(format_args!(
            "not running as PID 1: give a command as arguments or set {CMDLINE_FILE_VAR}"
        ));
        return Finish::Exit(EXIT_USAGE);
    }
    if options.role == Role::Init {
        set_up_guest();
    }

    let mut params = read_params(options.cmdline_path.as_deref());
    let kernel_args: &[OsString] = match options.role {
        Role::Init => &options.own_args,
        Role::Helper => {
            if !options.own_args.is_empty() {
                params.init_args = Some(options.own_args.clone());
            }
            &[]
        }
    };
    for problem in &params.problems {
        console::report_error(problem);
    }
    let runtime = runtime::load(&options.runtime_path).unwrap_or_else(|err| {
        console::report_error(&err);
        console::report("going on without the runtime file");
        RuntimeConfig::default()
    });
    if options.role == Role::Init {
        apply_guest_settings(&params);
    }

    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let plan = match plan::plan(&PlanInput {
        params: &params,
        runtime: &runtime,
        kernel_args,
        inherited_env: options.inherited_env.clone(),
        passwd: &passwd,
        group: &group,
    }) {
        Ok(plan) => plan,
        Err(err) => {
            console::report_error(&err);
            return options.failed(EXIT_USER_FAILED);
        }
    };
    for problem in &plan.env_problems {
        console::report_error(problem);
    }
    if !kernel_args.is_empty() && plan.argv != kernel_args {
        let words: Vec<_> = kernel_args
            .iter()
            .map(|word| word.to_string_lossy())
            .collect();
        console::report(format_args!(
            "ignoring words the kernel passed to init that are not part of the command: {}",
            words.join(" ")
        ));
    }

    let spec = match prepare_service(&plan) {
        Ok(spec) => spec,
        Err(failure) => {
            console::report(&failure.message);
            return options.failed(failure.exit_code);
        }
    };
    run_service(options, &spec)
}

/// Mounts, console, Ctrl-Alt-Del and kernel limits: the steps that need PID 1.
fn set_up_guest() {
    let outcomes = mounts::mount_all(&mounts::STANDARD_MOUNTS);
    // With no /dev/console in the root file system the kernel starts init without standard
    // descriptors; devtmpfs is mounted now, so the console can be opened.
    if let Err(err) = console::attach_console_if_closed() {
        console::report(format_args!("failed to open /dev/console: {err}"));
    }
    for (_, outcome) in outcomes {
        if let MountOutcome::Failed(err) = outcome {
            console::report_error(&err);
        }
    }
    if let Err(err) = system::disable_ctrl_alt_del() {
        console::report_error(&err);
    }
    if let Err(err) = system::raise_max_map_count(Path::new("/proc/sys/vm/max_map_count")) {
        console::report_error(&err);
    }
    if let Err(err) = system::raise_nofile_limit() {
        console::report_error(&err);
    }
}

fn read_params(path: Option<&Path>) -> BootParams {
    let Some(path) = path else {
        return BootParams::default();
    };
    match std::fs::read(path) {
        Ok(text) => BootParams::parse(&text),
        Err(err) => {
            console::report(format_args!(
                "failed to read {}: {err}; going on without boot parameters",
                path.display()
            ));
            BootParams::default()
        }
    }
}

/// Host name and name servers.
fn apply_guest_settings(params: &BootParams) {
    let etc_hostname = std::fs::read_to_string("/etc/hostname").ok();
    let hostname = system::choose_hostname(params.hostname.as_deref(), etc_hostname.as_deref());
    if let Err(err) = system::set_hostname(&hostname) {
        console::report_error(&err);
    }
    if let Some(servers) = &params.dns {
        if servers.len() > system::RESOLVER_MAX_SERVERS {
            console::report(format_args!(
                "firework.dns lists {} name servers; the C library uses only the first {}",
                servers.len(),
                system::RESOLVER_MAX_SERVERS
            ));
        }
        if let Err(err) = system::write_resolv_conf(Path::new("/etc/resolv.conf"), servers) {
            console::report_error(&err);
        }
    }
}

/// A reason the service cannot start, with its helper-role exit code.
struct StartFailure {
    message: String,
    exit_code: u8,
}

/// Hands the writable paths to the user, checks the working directory and resolves the
/// program.
fn prepare_service(plan: &ServicePlan) -> Result<ServiceSpec, StartFailure> {
    if let Some(user) = &plan.user {
        for path in &plan.writable_paths {
            runtime::chown_tree(path, user.uid, user.gid).map_err(|err| StartFailure {
                message: console::error_chain(&err),
                exit_code: EXIT_USER_FAILED,
            })?;
        }
    }

    let workdir = plan.workdir.as_ref().filter(|dir| {
        let usable = dir.is_dir();
        if !usable {
            console::report(format_args!(
                "working directory {} is not a directory, starting in the current directory",
                dir.display()
            ));
        }
        usable
    });

    let search_path = env::lookup(&plan.env, "PATH").unwrap_or_default();
    let Some(first) = plan.argv.first() else {
        return Err(StartFailure {
            message: CommandError::EmptyProgram.to_string(),
            exit_code: EXIT_NOT_FOUND,
        });
    };
    // A relative program path is relative to the service's working directory.
    let mut program = command::resolve_program(first, search_path).map_err(|err| StartFailure {
        message: err.to_string(),
        exit_code: EXIT_NOT_FOUND,
    })?;
    if program.is_relative()
        && let Some(dir) = workdir
    {
        program = dir.join(program);
    }
    if plan.source == CommandSource::Default {
        console::report(format_args!(
            "no command given (no words after --, no firework.exec), running {}",
            command::DEFAULT_PROGRAM
        ));
    }

    Ok(ServiceSpec {
        program,
        argv: plan.argv.clone(),
        env: plan.env.clone(),
        workdir: workdir.cloned(),
        user: plan.user.as_ref().map(|user| (user.uid, user.gid)),
    })
}

fn run_service(options: &BootOptions, spec: &ServiceSpec) -> Finish {
    let mut supervisor = match Supervisor::start(options.role, spec) {
        Ok(supervisor) => supervisor,
        Err(err) => {
            console::report_error(&err);
            return options.failed(err.exit_code());
        }
    };
    console::report(format_args!(
        "started {} (pid {})",
        spec.program.display(),
        supervisor.service_pid()
    ));
    let status = supervisor.wait_for_service();
    console::report(format_args!("service {status}"));
    supervisor.stop_remaining(options.grace);
    match options.role {
        Role::Init => Finish::Reboot,
        Role::Helper => Finish::Exit(status.exit_code()),
    }
}
