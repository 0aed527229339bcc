//! The two guest stages, both run by the emulator binary itself.
//!
//! * The outer stage binds the root image to a loop device, enters new mount, PID, UTS,
//!   IPC and network namespaces, mounts the image, and starts the init stage. It reports
//!   on its stdout (`ready`, `init <pid>`, `end exit <n>`, `end signal <n>` or
//!   `error <text>`) and its stderr is the guest console.
//! * The init stage is PID 1 of the new PID namespace: it mounts `/proc`, shows the boot
//!   command line as `/proc/cmdline`, chroots into the image and executes the guest's
//!   init in its own place.
//!
//! Both stages ask for SIGKILL when their parent dies, so killing the emulator takes the
//! whole tree down, and with it the namespaces, the mount and the loop device.

use std::convert::Infallible;
use std::fs::OpenOptions;
use std::io::{BufRead, Write};
use std::os::fd::AsFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};
use nix::sys::signal::Signal;
use nix::unistd::{chdir, chroot, getppid, sethostname};
use serde::{Deserialize, Serialize};

use super::STAGE_ENV;
use super::bootargs::BootArgs;

/// Stage name of the namespace owner.
pub const OUTER: &str = "outer";
/// Stage name of PID 1 in the guest's PID namespace.
pub const INIT: &str = "init";
/// Process id the stage expects as its parent.
pub const PARENT_ENV: &str = "FC_EMULATOR_GUEST_PARENT";
/// The init stage's orders, as JSON.
const INIT_ORDER_ENV: &str = "FC_EMULATOR_GUEST_INIT";

/// Private scratch file system, mounted over `/tmp` inside the new mount namespace only.
const SCRATCH: &str = "/tmp";
/// Mount point of the root image inside the scratch file system.
const ROOT: &str = "/tmp/root";
/// The boot command line file bind-mounted over the guest's `/proc/cmdline`.
const CMDLINE: &str = "/tmp/cmdline";
/// File system types tried, in order, when mounting the root image.
const ROOT_FS_TYPES: &[&str] = &["ext4", "ext3", "ext2", "squashfs", "erofs", "xfs", "btrfs"];

/// The request the emulator sends the outer stage.
#[derive(Debug, Serialize, Deserialize)]
pub struct OuterRequest {
    pub root_path: String,
    pub read_only: bool,
    pub cmdline: String,
}

/// The orders the outer stage passes to the init stage.
#[derive(Debug, Serialize, Deserialize)]
struct InitOrder {
    init: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

fn die_with_parent() -> Result<(), String> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
        .map_err(|error| format!("PR_SET_PDEATHSIG: {error}"))?;
    // The parent may have died before the request took effect.
    let expected = std::env::var(PARENT_ENV).unwrap_or_default();
    if getppid().as_raw().to_string() != expected {
        return Err(format!("the parent process {expected} is gone"));
    }
    Ok(())
}

/// Runs the outer stage and returns its exit status.
pub fn run_outer() -> i32 {
    match outer() {
        Ok(()) => 0,
        Err(message) => {
            let mut reports = std::io::stdout();
            let _ = writeln!(reports, "error {}", message.replace('\n', " "));
            let _ = reports.flush();
            1
        }
    }
}

fn report(line: &str) -> Result<(), String> {
    let mut reports = std::io::stdout();
    writeln!(reports, "{line}")
        .and_then(|()| reports.flush())
        .map_err(|error| format!("report {line:?}: {error}"))
}

fn mount_root(device: &Path, read_only: bool) -> Result<(), String> {
    let mut flags = MsFlags::empty();
    if read_only {
        flags |= MsFlags::MS_RDONLY;
    }
    let mut errors = Vec::new();
    for fs_type in ROOT_FS_TYPES {
        match mount(Some(device), ROOT, Some(*fs_type), flags, None::<&str>) {
            Ok(()) => return Ok(()),
            Err(error) => errors.push(format!("{fs_type}: {error}")),
        }
    }
    Err(format!(
        "mount {} on {ROOT}: {}",
        device.display(),
        errors.join(", ")
    ))
}

fn outer() -> Result<(), String> {
    die_with_parent()?;
    let mut stdin = std::io::stdin().lock();
    let mut line = String::new();
    stdin
        .read_line(&mut line)
        .map_err(|error| format!("read the request: {error}"))?;
    let request: OuterRequest =
        serde_json::from_str(&line).map_err(|error| format!("decode the request: {error}"))?;
    let boot_args = BootArgs::parse(&request.cmdline);

    let image = OpenOptions::new()
        .read(true)
        .write(!request.read_only)
        .open(&request.root_path)
        .map_err(|error| format!("open root drive {}: {error}", request.root_path))?;
    let device = firework_sys::loopdev::attach(&image, request.read_only)
        .map_err(|error| format!("loop device for {}: {}", request.root_path, chain(&error)))?;

    unshare(
        CloneFlags::CLONE_NEWNS
            | CloneFlags::CLONE_NEWPID
            | CloneFlags::CLONE_NEWUTS
            | CloneFlags::CLONE_NEWIPC
            | CloneFlags::CLONE_NEWNET,
    )
    .map_err(|error| format!("unshare namespaces: {error}"))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|error| format!("make mounts private: {error}"))?;
    mount(
        Some("tmpfs"),
        SCRATCH,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0700,size=1m"),
    )
    .map_err(|error| format!("mount tmpfs on {SCRATCH}: {error}"))?;
    std::fs::create_dir(ROOT).map_err(|error| format!("create {ROOT}: {error}"))?;
    mount_root(device.path(), request.read_only)?;
    // The mount holds the loop device now; with autoclear it goes away with the mount.
    drop(device);
    drop(image);
    std::fs::write(CMDLINE, format!("{}\n", request.cmdline))
        .map_err(|error| format!("write {CMDLINE}: {error}"))?;
    let hostname = boot_args
        .ip
        .as_ref()
        .and_then(|ip| ip.hostname.clone())
        .unwrap_or_else(|| "(none)".to_string());
    sethostname(&hostname).map_err(|error| format!("set host name {hostname:?}: {error}"))?;

    report("ready")?;
    line.clear();
    stdin
        .read_line(&mut line)
        .map_err(|error| format!("wait for go: {error}"))?;
    if line.trim_end() != "go" {
        return Err(format!("expected go, read {line:?}"));
    }

    let order = InitOrder {
        init: boot_args.init,
        args: boot_args.init_args,
        env: boot_args.init_env,
    };
    let order = serde_json::to_string(&order).map_err(|error| format!("encode order: {error}"))?;
    let console = || {
        std::io::stderr()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|error| format!("duplicate the console: {error}"))
    };
    let mut init = Command::new("/proc/self/exe")
        .env_clear()
        .env(STAGE_ENV, INIT)
        .env(INIT_ORDER_ENV, order)
        // The init stage reads end of file on this pipe once the outer stage is gone.
        .stdin(Stdio::piped())
        .stdout(Stdio::from(console()?))
        .stderr(Stdio::from(console()?))
        .spawn()
        .map_err(|error| format!("start the init stage: {error}"))?;
    let _alive = init.stdin.take();
    report(&format!("init {}", init.id()))?;
    let status = init
        .wait()
        .map_err(|error| format!("wait for init: {error}"))?;
    match (status.code(), status.signal()) {
        (Some(code), _) => report(&format!("end exit {code}")),
        (None, Some(signal)) => report(&format!("end signal {signal}")),
        (None, None) => report("end exit 0"),
    }
}

fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Runs the init stage. It returns only when the guest's init could not be executed.
pub fn run_init() -> i32 {
    match init_stage() {
        Ok(never) => match never {},
        Err(message) => {
            eprintln!("fc-emulator guest: {message}");
            1
        }
    }
}

fn init_stage() -> Result<Infallible, String> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
        .map_err(|error| format!("PR_SET_PDEATHSIG: {error}"))?;
    // getppid is 0 for PID 1 of a new namespace. The outer stage holds the write end of
    // stdin instead, so end of file there means it died before the request took effect.
    let stdin = std::io::stdin();
    fcntl(stdin.as_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK))
        .map_err(|error| format!("set stdin non-blocking: {error}"))?;
    if let Ok(0) = nix::unistd::read(stdin.as_fd(), &mut [0u8; 1]) {
        return Err("the outer stage is gone".to_string());
    }
    let order: InitOrder = std::env::var(INIT_ORDER_ENV)
        .map_err(|error| format!("{INIT_ORDER_ENV}: {error}"))
        .and_then(|text| {
            serde_json::from_str(&text).map_err(|error| format!("decode the order: {error}"))
        })?;

    let proc_dir = format!("{ROOT}/proc");
    if !Path::new(&proc_dir).is_dir() {
        std::fs::create_dir(&proc_dir).map_err(|error| format!("create /proc: {error}"))?;
    }
    mount(
        Some("proc"),
        proc_dir.as_str(),
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(|error| format!("mount /proc: {error}"))?;
    let cmdline = format!("{proc_dir}/cmdline");
    mount(
        Some(CMDLINE),
        cmdline.as_str(),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|error| format!("bind the command line over /proc/cmdline: {error}"))?;
    mount(
        None::<&str>,
        cmdline.as_str(),
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
        None::<&str>,
    )
    .map_err(|error| format!("make /proc/cmdline read-only: {error}"))?;

    // Opened before the chroot: the image's /dev is empty until its init mounts devtmpfs.
    let null =
        std::fs::File::open("/dev/null").map_err(|error| format!("open /dev/null: {error}"))?;
    chdir(ROOT).map_err(|error| format!("chdir {ROOT}: {error}"))?;
    chroot(".").map_err(|error| format!("chroot {ROOT}: {error}"))?;
    chdir("/").map_err(|error| format!("chdir /: {error}"))?;

    let error = Command::new(&order.init)
        .arg0(&order.init)
        .args(&order.args)
        .env_clear()
        .envs(order.env.iter().map(|(key, value)| (key, value)))
        .stdin(Stdio::from(null))
        .exec();
    Err(format!("execute init {}: {error}", order.init))
}
