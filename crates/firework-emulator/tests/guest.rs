//! Guest mode against the example image (built with scripts/build-example-rootfs.sh): the
//! guest's own init and service run from the root drive, reachable over the TAP from a
//! bridge in a network namespace this test creates. Needs root, iproute2, the loop and
//! tun devices; each test prints why it skips otherwise.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::Emulator;

const GUEST_ENV: (&str, &str) = ("FC_EMULATOR_GUEST", "1");
const BOOT_DEADLINE: Duration = Duration::from_secs(30);

fn run(args: &[&str]) {
    let output = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        output.status.success(),
        "{args:?} failed with {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Returns whether the test can run; prints the skip reason otherwise.
fn can_run() -> bool {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipping: guest mode tests need root (namespaces, loop devices, mounts)");
        return false;
    }
    let in_ci = std::env::var("CI").as_deref() == Ok("true");
    for (what, present) in [
        (
            "the ip command (iproute2)",
            Command::new("ip").arg("-V").output().is_ok(),
        ),
        ("/dev/loop-control", Path::new("/dev/loop-control").exists()),
        ("/dev/net/tun", Path::new("/dev/net/tun").exists()),
    ] {
        if !present {
            assert!(!in_ci, "{what} is required in CI");
            eprintln!("skipping: {what} is missing");
            return false;
        }
    }
    true
}

/// The example image, built once per test binary into a temporary directory.
fn example_image() -> &'static Path {
    static IMAGE: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &IMAGE
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let image = dir.path().join("example.ext4");
            let script =
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/build-example-rootfs.sh");
            run(&["bash", script.to_str().unwrap(), image.to_str().unwrap()]);
            (dir, image)
        })
        .1
}

/// A network namespace with a bridge at `<subnet>.1/24`; deleted on drop.
struct Lab {
    name: String,
    subnet: String,
}

impl Lab {
    fn create(tag: &str, subnet: &str) -> Lab {
        let name = format!("fwg{}{tag}", std::process::id());
        run(&["ip", "netns", "add", &name]);
        let lab = Lab {
            name,
            subnet: subnet.to_string(),
        };
        lab.ip(&["link", "set", "lo", "up"]);
        lab.ip(&["link", "add", "br0", "type", "bridge"]);
        lab.ip(&["addr", "add", &format!("{subnet}.1/24"), "dev", "br0"]);
        lab.ip(&["link", "set", "br0", "up"]);
        lab
    }

    fn ip(&self, args: &[&str]) {
        let mut command = vec!["ip", "-n", &self.name];
        command.extend_from_slice(args);
        run(&command);
    }

    fn add_tap(&self, tap: &str) {
        self.ip(&["tuntap", "add", "dev", tap, "mode", "tap"]);
        self.ip(&["link", "set", tap, "master", "br0", "up"]);
    }

    fn prefix(&self) -> Vec<&str> {
        vec!["ip", "netns", "exec", &self.name]
    }

    /// `GET path` from inside the namespace; `None` while nothing answers.
    fn http_get(&self, address: &str, path: &str) -> Option<String> {
        http_get_in(&self.name, format!("{address}:8080").parse().unwrap(), path)
    }

    /// Polls `GET path` until it answers 200 or the boot deadline passes.
    fn wait_http(&self, address: &str, path: &str, emulator: &mut Emulator) -> String {
        let deadline = Instant::now() + BOOT_DEADLINE;
        loop {
            if let Some(body) = self.http_get(address, path) {
                return body;
            }
            if let Some(status) = emulator.child.try_wait().unwrap() {
                panic!(
                    "emulator exited with {status}; console:\n{}\nstderr:\n{}",
                    emulator.stdout_text(),
                    emulator.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{address}{path} did not answer; console:\n{}",
                emulator.stdout_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// `GET path` from inside the network namespace `netns`; `None` unless it answers 200.
fn http_get_in(netns: &str, address: SocketAddr, path: &str) -> Option<String> {
    let netns = format!("/run/netns/{netns}");
    let request = format!("GET {path} HTTP/1.0\r\nHost: guest\r\n\r\n");
    std::thread::spawn(move || {
        let namespace = std::fs::File::open(netns).unwrap();
        nix::sched::setns(&namespace, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        stream.write_all(request.as_bytes()).ok()?;
        let mut reply = String::new();
        stream.read_to_string(&mut reply).ok()?;
        // CGI replies end their headers with a bare "\n\n".
        let end = [("\r\n\r\n", 4), ("\n\n", 2)]
            .iter()
            .filter_map(|(marker, length)| Some(reply.find(marker)? + length))
            .min()?;
        let ok = reply.split(' ').nth(1) == Some("200");
        ok.then(|| reply[end..].to_string())
    })
    .join()
    .unwrap()
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .status();
    }
}

/// One guest: an emulator in the lab's namespace with its own copy of the image.
struct Guest {
    emulator: Emulator,
    image: PathBuf,
}

fn boot_guest(lab: &Lab, tap: &str, host: u8, extra_args: &str) -> Guest {
    lab.add_tap(tap);
    let emulator = Emulator::start_with_prefix(&lab.prefix(), &[], &[GUEST_ENV]);
    let image = emulator.dir.path().join("rootfs.ext4");
    std::fs::copy(example_image(), &image).unwrap();
    let kernel = emulator.kernel();
    let subnet = &lab.subnet;
    let boot_args = format!(
        "console=ttyS0 reboot=k panic=1 ip={subnet}.{host}::{subnet}.1:255.255.255.0::eth0:off init=/sbin/fc-init {extra_args} -- /bin/service"
    );
    emulator.put_ok(
        "/boot-source",
        &serde_json::json!({"kernel_image_path": kernel, "boot_args": boot_args}).to_string(),
    );
    emulator.put_ok(
        "/drives/rootfs",
        &serde_json::json!({
            "drive_id": "rootfs",
            "path_on_host": image,
            "is_root_device": true,
            "is_read_only": false,
        })
        .to_string(),
    );
    emulator.put_ok(
        "/network-interfaces/eth0",
        &serde_json::json!({
            "iface_id": "eth0",
            "host_dev_name": tap,
            "guest_mac": format!("06:00:00:00:00:{host:02x}"),
        })
        .to_string(),
    );
    emulator.put_ok("/actions", r#"{"action_type":"InstanceStart"}"#);
    Guest { emulator, image }
}

/// Processes in the tree below `root`, as `(pid, start time)` so a reused pid is not
/// mistaken for a survivor.
fn process_tree(root: u32) -> BTreeSet<(u32, String)> {
    let mut parents = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Some((ppid, start)) = stat_fields(pid) {
            parents.push((pid, ppid, start));
        }
    }
    let mut tree = BTreeSet::new();
    let mut members = vec![root];
    while let Some(parent) = members.pop() {
        for (pid, ppid, start) in &parents {
            if *ppid == parent && tree.insert((*pid, start.clone())) {
                members.push(*pid);
            }
        }
    }
    if let Some((_, start)) = stat_fields(root) {
        tree.insert((root, start));
    }
    tree
}

/// Parent pid and start time from `/proc/<pid>/stat`.
fn stat_fields(pid: u32) -> Option<(u32, String)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    Some((fields.get(1)?.parse().ok()?, fields.get(19)?.to_string()))
}

fn alive(process: &(u32, String)) -> bool {
    stat_fields(process.0).is_some_and(|(_, start)| start == process.1)
}

/// Loop devices whose backing file is `image`.
fn loops_backed_by(image: &Path) -> Vec<String> {
    let image = image.to_str().unwrap();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/sys/block").unwrap().flatten() {
        let backing = entry.path().join("loop/backing_file");
        if let Ok(text) = std::fs::read_to_string(backing)
            && text.trim_end().trim_end_matches(" (deleted)") == image
        {
            found.push(entry.file_name().to_string_lossy().to_string());
        }
    }
    found
}

/// Waits until the processes, the loop device and any mount of `image` are gone.
fn assert_released(processes: &BTreeSet<(u32, String)>, image: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let survivors: Vec<_> = processes.iter().filter(|process| alive(process)).collect();
        let loops = loops_backed_by(image);
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
        let mounted = mounts.contains(image.to_str().unwrap());
        if survivors.is_empty() && loops.is_empty() && !mounted {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "left behind: processes {survivors:?}, loop devices {loops:?}, mounted {mounted}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn guest_serves_http_and_reboots_on_ctrl_alt_del() {
    if !can_run() {
        return;
    }
    let lab = Lab::create("a", "172.29.1");
    // "hello world" in base64url without padding.
    let mut guest = boot_guest(
        &lab,
        "fwgtap0",
        2,
        "firework.env.SERVICE_NAME=alpha firework.env.GREETING=hi firework.env64.MOTTO=aGVsbG8gd29ybGQ",
    );
    let emulator = &mut guest.emulator;
    assert_eq!(
        lab.wait_http("172.29.1.2", "/", emulator),
        "hello from alpha\n"
    );
    assert_eq!(lab.wait_http("172.29.1.2", "/healthz", emulator), "ok\n");
    let env = lab.wait_http("172.29.1.2", "/cgi-bin/env", emulator);
    let lines: Vec<&str> = env.lines().collect();
    for expected in [
        "SERVICE_NAME=alpha",
        "GREETING=hi",
        "MOTTO=hello world",
        "HOME=/",
        "TERM=linux",
    ] {
        assert!(lines.contains(&expected), "{expected} missing from {env}");
    }
    assert_eq!(emulator.get("/").json()["state"], "Running");
    assert!(
        emulator
            .stdout_text()
            .contains("service alpha starting on :8080"),
        "console: {}",
        emulator.stdout_text()
    );

    let processes = process_tree(emulator.child.id());
    assert!(processes.len() >= 4, "guest tree: {processes:?}");
    assert_eq!(loops_backed_by(&guest.image).len(), 1);
    let response = emulator.put("/actions", r#"{"action_type":"SendCtrlAltDel"}"#);
    assert_eq!(response.status, 204, "{}", response.body);
    let status = emulator.wait_exit(Duration::from_secs(20));
    assert_eq!(
        status.code(),
        Some(0),
        "console: {}",
        emulator.stdout_text()
    );
    let console = emulator.stdout_text();
    assert!(console.contains("reboot: Restarting system"), "{console}");
    assert!(
        console.contains("Firecracker exiting successfully. exit_code=0"),
        "{console}"
    );
    assert_released(&processes, &guest.image);
}

#[test]
fn sigkill_of_emulator_leaves_nothing_behind() {
    if !can_run() {
        return;
    }
    let lab = Lab::create("k", "172.29.2");
    let mut guest = boot_guest(&lab, "fwgtap1", 2, "");
    lab.wait_http("172.29.2.2", "/healthz", &mut guest.emulator);
    let processes = process_tree(guest.emulator.child.id());
    assert!(processes.len() >= 4, "guest tree: {processes:?}");
    assert_eq!(loops_backed_by(&guest.image).len(), 1);

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(guest.emulator.child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let status = guest.emulator.wait_exit(Duration::from_secs(10));
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    assert_released(&processes, &guest.image);
    assert!(lab.http_get("172.29.2.2", "/healthz").is_none());
}

#[test]
fn two_guests_share_a_bridge() {
    if !can_run() {
        return;
    }
    let lab = Lab::create("b", "172.29.3");
    let mut first = boot_guest(&lab, "fwgtap2", 2, "firework.env.SERVICE_NAME=first");
    let mut second = boot_guest(&lab, "fwgtap3", 3, "firework.env.SERVICE_NAME=second");
    assert_eq!(
        lab.wait_http("172.29.3.2", "/", &mut first.emulator),
        "hello from first\n"
    );
    assert_eq!(
        lab.wait_http("172.29.3.3", "/", &mut second.emulator),
        "hello from second\n"
    );
}

#[test]
fn image_that_is_no_file_system_fails_instance_start() {
    if !can_run() {
        return;
    }
    let emulator = Emulator::start_with_env(&[], &[GUEST_ENV]);
    let kernel = emulator.kernel();
    let image = emulator.file("rootfs.ext4", &vec![0u8; 1 << 20]);
    emulator.put_ok(
        "/boot-source",
        &serde_json::json!({"kernel_image_path": kernel}).to_string(),
    );
    emulator.put_ok(
        "/drives/rootfs",
        &serde_json::json!({"drive_id": "rootfs", "path_on_host": image, "is_root_device": true})
            .to_string(),
    );
    let response = emulator.put("/actions", r#"{"action_type":"InstanceStart"}"#);
    assert_eq!(response.status, 400);
    let fault = response.fault();
    assert!(
        fault.starts_with("Start microvm error: guest setup failed: mount /dev/loop")
            && fault.contains("ext4: EINVAL"),
        "{fault}"
    );
    assert_eq!(emulator.get("/").json()["state"], "Not started");
    assert_released(&BTreeSet::new(), Path::new(&image));
}

#[test]
fn guest_mode_needs_a_root_drive() {
    let emulator = Emulator::start_with_env(&[], &[GUEST_ENV]);
    let kernel = emulator.kernel();
    emulator.put_ok(
        "/boot-source",
        &serde_json::json!({"kernel_image_path": kernel}).to_string(),
    );
    emulator.expect_fault(
        "PUT",
        "/actions",
        Some(r#"{"action_type":"InstanceStart"}"#),
        "Start microvm error: guest mode needs a root drive with a path on the host",
    );
    assert_eq!(emulator.get("/").json()["state"], "Not started");
}

/// Boots the example image without a network interface, with `boot_args` as given.
fn boot_plain(boot_args: &str) -> Guest {
    let emulator = Emulator::start_with_env(&[], &[GUEST_ENV]);
    let image = emulator.dir.path().join("rootfs.ext4");
    std::fs::copy(example_image(), &image).unwrap();
    let kernel = emulator.kernel();
    emulator.put_ok(
        "/boot-source",
        &serde_json::json!({"kernel_image_path": kernel, "boot_args": boot_args}).to_string(),
    );
    emulator.put_ok(
        "/drives/rootfs",
        &serde_json::json!({
            "drive_id": "rootfs",
            "path_on_host": image,
            "is_root_device": true,
            "is_read_only": true,
        })
        .to_string(),
    );
    emulator.put_ok("/actions", r#"{"action_type":"InstanceStart"}"#);
    Guest { emulator, image }
}

/// Polls the console until it contains `text`.
fn wait_console(emulator: &mut Emulator, text: &str) -> String {
    let deadline = Instant::now() + BOOT_DEADLINE;
    loop {
        let console = emulator.stdout_text();
        if console.contains(text) {
            return console;
        }
        assert!(
            Instant::now() < deadline,
            "{text:?} never reached the console:\n{console}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn init_exit_panics_then_reboots() {
    if !can_run() {
        return;
    }
    let mut guest = boot_plain("reboot=k panic=1 init=/bin/sh -- -c \"cat /proc/cmdline; exit 3\"");
    let console = wait_console(
        &mut guest.emulator,
        "Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000300",
    );
    // /proc/cmdline shows the boot arguments with Firecracker's additions.
    assert!(
        console.contains("reboot=k panic=1 init=/bin/sh root=/dev/vda ro pci=off"),
        "{console}"
    );
    let status = guest.emulator.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0));
    assert_released(&BTreeSet::new(), &guest.image);
}

#[test]
fn power_off_keeps_the_emulator_running() {
    if !can_run() {
        return;
    }
    let mut guest = boot_plain("reboot=k panic=1 init=/bin/poweroff -- -f");
    wait_console(&mut guest.emulator, "reboot: Power down");
    assert!(guest.emulator.child.try_wait().unwrap().is_none());
    assert_eq!(guest.emulator.get("/").json()["state"], "Running");
    assert_released(&BTreeSet::new(), &guest.image);
}

/// A client network namespace joined to a lab by a veth pair; deleted on drop.
struct Client {
    name: String,
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .status();
    }
}

#[test]
fn dnat_from_a_client_namespace_reaches_the_guest() {
    if !can_run() {
        return;
    }
    if Command::new("nft").arg("--version").output().is_err() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "nft is required in CI"
        );
        eprintln!("skipping: nft is not installed");
        return;
    }
    let lab = Lab::create("d", "172.29.4");
    let client = Client {
        name: format!("fwg{}dc", std::process::id()),
    };
    run(&["ip", "netns", "add", &client.name]);
    run(&[
        "ip",
        "-n",
        &lab.name,
        "link",
        "add",
        "fwgv0",
        "type",
        "veth",
        "peer",
        "name",
        "fwgv1",
        "netns",
        &client.name,
    ]);
    lab.ip(&["addr", "add", "192.168.244.1/24", "dev", "fwgv0"]);
    lab.ip(&["link", "set", "fwgv0", "up"]);
    for args in [
        vec!["addr", "add", "192.168.244.2/24", "dev", "fwgv1"],
        vec!["link", "set", "fwgv1", "up"],
        vec!["link", "set", "lo", "up"],
    ] {
        let mut command = vec!["ip", "-n", &client.name];
        command.extend(args);
        run(&command);
    }
    run(&[
        "ip",
        "netns",
        "exec",
        &lab.name,
        "sysctl",
        "-q",
        "-w",
        "net.ipv4.ip_forward=1",
    ]);
    run(&[
        "ip",
        "netns",
        "exec",
        &lab.name,
        "nft",
        "add table ip fwg; add chain ip fwg pre { type nat hook prerouting priority -100; }; add rule ip fwg pre tcp dport 18080 dnat to 172.29.4.2:8080",
    ]);

    let mut guest = boot_guest(&lab, "fwgtap4", 2, "firework.env.SERVICE_NAME=natted");
    lab.wait_http("172.29.4.2", "/healthz", &mut guest.emulator);
    let address: SocketAddr = "192.168.244.1:18080".parse().unwrap();
    let deadline = Instant::now() + BOOT_DEADLINE;
    let body = loop {
        if let Some(body) = http_get_in(&client.name, address, "/") {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "DNAT to the guest never answered"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(body, "hello from natted\n");
}
