//! Running the `firework-agent` binary against the Firecracker emulator, with a guard that
//! kills the agent and every VM process the test started.

#![allow(dead_code, clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Path of the emulator binary built by `cargo build -p firework-emulator`; `None` (after
/// printing why) when it is missing outside CI.
pub fn emulator_path() -> Option<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let path = target.join("debug/fc-emulator");
    if path.exists() {
        return Some(path.canonicalize().unwrap_or(path));
    }
    let message = format!(
        "{} is missing; build it with `cargo build -p firework-emulator`",
        path.display()
    );
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{message}");
    }
    eprintln!("skipping: {message}");
    None
}

/// Returns a port that was free a moment ago on 127.0.0.1, outside the ephemeral range.
pub fn free_port() -> u16 {
    firework_testkit::ports::free_port().unwrap()
}

/// A node: a store, images, a state directory and an agent config.
pub struct Node {
    pub dir: tempfile::TempDir,
    pub emulator: PathBuf,
    pub port: u16,
    pub agent: Option<Child>,
    pub extra_config: String,
    /// Environment added to the agent, and through it to every emulator it starts.
    pub env: Vec<(String, String)>,
    /// The API bearer token `request` sends, when set.
    pub token: Option<String>,
}

impl Node {
    pub fn new() -> Option<Node> {
        let emulator = emulator_path()?;
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("store/nodes")).unwrap();
        std::fs::create_dir_all(dir.path().join("images")).unwrap();
        // The emulator checks the ELF magic at InstanceStart, as Firecracker does on x86_64.
        std::fs::write(
            dir.path().join("images/vmlinux"),
            b"\x7fELF\x02\x01\x01 kernel",
        )
        .unwrap();
        std::fs::write(dir.path().join("images/rootfs.ext4"), vec![0u8; 4096]).unwrap();
        Some(Node {
            dir,
            emulator,
            port: free_port(),
            agent: None,
            extra_config: String::new(),
            env: Vec::new(),
            token: None,
        })
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    pub fn config_path(&self) -> PathBuf {
        self.path("agent.yaml")
    }

    pub fn write_config(&self) {
        let config = format!(
            "node_name: node-1\nnode_names: [web]\nstore_type: local\nstore_dir: {}\nstate_dir: {}\nfirecracker_bin: {}\napi_listen_addr: 127.0.0.1:{}\npoll_interval: 30s\nenable_network_setup: false\nenable_capacity_check: false\nenable_health_checks: false\nlog_level: debug\n{}",
            self.path("store").display(),
            self.path("state").display(),
            self.emulator.display(),
            self.port,
            self.extra_config
        );
        // A key in `extra_config` replaces the base config's line for it.
        let config: String = config
            .lines()
            .filter(|line| {
                let key = line.split(':').next().unwrap_or_default();
                !self
                    .extra_config
                    .lines()
                    .any(|extra| extra.split(':').next() == Some(key))
                    || self.extra_config.contains(line)
            })
            .map(|line| format!("{line}\n"))
            .collect();
        std::fs::write(self.config_path(), config).unwrap();
    }

    pub fn service(&self, name: &str, extra: &str) -> String {
        format!(
            "  - name: {name}\n    image: {}\n    kernel: {}\n    vcpus: 1\n    memory_mb: 128\n    kernel_args: \"console=ttyS0 reboot=k panic=1 init=/sbin/fc-init -- /app\"\n{extra}",
            self.path("images/rootfs.ext4").display(),
            self.path("images/vmlinux").display()
        )
    }

    pub fn write_label(&self, label: &str, services: &[String]) {
        let body = if services.is_empty() {
            format!("node: {label}\nservices: []\n")
        } else {
            format!("node: {label}\nservices:\n{}", services.concat())
        };
        let path = self.path(&format!("store/nodes/{label}.yaml"));
        let temporary = path.with_extension("tmp");
        std::fs::write(&temporary, body).unwrap();
        std::fs::rename(&temporary, &path).unwrap();
    }

    pub fn write_raw_label(&self, label: &str, text: &str) {
        std::fs::write(self.path(&format!("store/nodes/{label}.yaml")), text).unwrap();
    }

    pub fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_firework-agent"));
        command.arg("--config").arg(self.config_path());
        command
    }

    pub fn start_agent(&mut self) {
        self.write_config();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path("agent.log"))
            .unwrap();
        let child = self
            .command()
            .env("RUST_LOG", "debug")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.agent = Some(child);
        assert!(
            wait_until(Duration::from_secs(20), || self.get("/status").is_some()),
            "agent api did not come up; log:\n{}",
            self.log()
        );
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("agent.log")).unwrap_or_default()
    }

    pub fn signal_agent(&self, signal: Signal) {
        let pid = self.agent.as_ref().unwrap().id() as i32;
        kill(Pid::from_raw(pid), signal).unwrap();
    }

    pub fn wait_agent_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        let child = self.agent.as_mut().unwrap();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.agent = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends one HTTP request to the agent API and returns status code and body.
    pub fn request(&self, method: &str, path: &str) -> Option<(u16, String)> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let auth = self
            .token
            .as_ref()
            .map(|token| format!("Authorization: Bearer {token}\r\n"))
            .unwrap_or_default();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let code = response.split(' ').nth(1)?.parse().ok()?;
        let body = response.split_once("\r\n\r\n")?.1.to_owned();
        Some((code, body))
    }

    pub fn get(&self, path: &str) -> Option<serde_json::Value> {
        let (code, body) = self.request("GET", path)?;
        (code == 200).then(|| serde_json::from_str(&body).ok())?
    }

    pub fn status(&self) -> serde_json::Value {
        self.get("/status").unwrap()
    }

    pub fn reconcile(&self) {
        let (code, _) = self.request("POST", "/v1/reconcile").unwrap();
        assert_eq!(code, 202);
    }

    /// Reads the VM records under the state directory: service to (state, pid).
    pub fn records(&self) -> std::collections::BTreeMap<String, (String, Option<i64>)> {
        let mut records = std::collections::BTreeMap::new();
        let Ok(entries) = std::fs::read_dir(self.path("state/vms")) else {
            return records;
        };
        for entry in entries.flatten() {
            let path = entry.path().join("record.json");
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            let Ok(record) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
                continue;
            };
            let state = record["state"].as_str().unwrap_or("").to_owned();
            let pid = record["process"]["pid"].as_i64();
            records.insert(
                entry.file_name().to_string_lossy().into_owned(),
                (state, pid),
            );
        }
        records
    }

    /// Pids of running VMs whose process is alive, by service.
    pub fn running_pids(&self) -> std::collections::BTreeMap<String, i64> {
        self.records()
            .into_iter()
            .filter(|(_, (state, pid))| state == "running" && pid.is_some_and(alive))
            .map(|(service, (_, pid))| (service, pid.unwrap()))
            .collect()
    }

    /// Sends a request to a VM's emulator API socket.
    pub fn vm_api(&self, service: &str, path: &str) -> serde_json::Value {
        let socket = self.path(&format!("state/vms/{service}/firecracker.socket"));
        let mut stream = UnixStream::connect(&socket).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let _ = stream.read_to_string(&mut response);
        let body = response.split_once("\r\n\r\n").unwrap().1;
        serde_json::from_str(body.trim()).unwrap_or_else(|e| panic!("{e}: {body}"))
    }

    /// Kills every process whose command line names this node's directory.
    pub fn kill_all(&mut self) {
        if let Some(mut child) = self.agent.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let needle = self.dir.path().to_string_lossy().into_owned();
        for pid in firework_vmm::process::find_processes(|args| {
            args.iter().any(|a| a.to_string_lossy().contains(&needle))
        }) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill_all();
    }
}

pub fn alive(pid: i64) -> bool {
    firework_vmm::process::read_stat(pid as i32)
        .map(|stat| stat.state != 'Z' && stat.state != 'X')
        .unwrap_or(false)
}

/// Polls `condition` every 20 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
