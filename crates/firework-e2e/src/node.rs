//! One Firework node for a test: a network namespace, a directory store, an agent, the
//! emulator as Firecracker and, optionally, Traefik.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::netns::Netns;
use crate::tools::Tools;
use crate::wait::wait_until;

/// The agent API address inside the node's namespace.
pub const API_ADDR: &str = "127.0.0.1:18500";
/// The Traefik entry point address inside the node's namespace.
pub const TRAEFIK_ADDR: &str = "127.0.0.1:18081";

/// Settings of a test node.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// The node name.
    pub node: String,
    /// The labels the agent reads.
    pub labels: Vec<String>,
    /// Whether to start Traefik next to the agent.
    pub traefik: bool,
    /// The store block of the agent config; `None` means a local directory store.
    pub store: Option<String>,
    /// Extra agent config lines, such as `host_ip` or `out_interface`.
    pub extra_config: String,
    /// Extra environment for the agent, such as S3 credentials.
    pub agent_env: Vec<(String, String)>,
    /// Whether VMs run the example image as guests (emulator guest mode), when the
    /// emulator has guest mode and `build/example-rootfs.ext4` exists. Otherwise VMs only
    /// serve the Firecracker API and the image is a file of zeros that nothing mounts.
    pub guest: bool,
}

impl Default for NodeOptions {
    fn default() -> Self {
        Self {
            node: "e2e-node".to_owned(),
            labels: vec!["web".to_owned()],
            traefik: false,
            guest: true,
            store: None,
            extra_config: String::new(),
            agent_env: Vec::new(),
        }
    }
}

/// A running test node. Dropping it stops every process and deletes the namespace and the
/// work directory.
#[derive(Debug)]
pub struct Node {
    // Field order is drop order: processes first, then the namespace, then the directory.
    agent: Option<Child>,
    traefik: Option<Child>,
    netns: Netns,
    dir: tempfile::TempDir,
    tools: Tools,
    guest: bool,
    agent_env: Vec<(String, String)>,
}

/// The image and kernel files that service specs name.
#[derive(Debug, Clone)]
pub struct GuestFiles {
    /// The root filesystem image.
    pub image: PathBuf,
    /// The stand-in kernel: a copy of an ELF binary, enough for the emulator's check.
    pub kernel: PathBuf,
}

impl Node {
    /// Starts a node: writes the agent config, starts Traefik when asked, then the agent,
    /// and waits until the agent API responds.
    pub fn start(tools: &Tools, options: &NodeOptions) -> Result<Self, String> {
        let netns = Netns::create()?;
        let dir = tempfile::Builder::new()
            .prefix("fwe2e-")
            .tempdir()
            .map_err(|error| format!("failed to create the node directory: {error}"))?;
        let node = Self {
            agent: None,
            traefik: None,
            netns,
            dir,
            tools: tools.clone(),
            guest: options.guest
                && tools.guest_mode
                && Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../../build/example-rootfs.ext4")
                    .is_file(),
            agent_env: options.agent_env.clone(),
        };
        node.write_files(options)?;
        let mut node = node;
        if options.traefik {
            node.start_traefik()?;
        }
        node.start_agent()?;
        Ok(node)
    }

    /// Whether the VMs run guests (see [`NodeOptions::guest`]).
    pub fn runs_guests(&self) -> bool {
        self.guest
    }

    /// The node's work directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The node's namespace.
    pub fn netns(&self) -> &Netns {
        &self.netns
    }

    /// The directory store, which contains `nodes/<label>.yaml`.
    pub fn store_dir(&self) -> PathBuf {
        self.dir().join("desired")
    }

    /// The directory Traefik watches.
    pub fn routes_dir(&self) -> PathBuf {
        self.dir().join("traefik/dynamic")
    }

    /// The image and kernel for service specs.
    pub fn guest_files(&self) -> GuestFiles {
        GuestFiles {
            image: self.dir().join("images/rootfs.ext4"),
            kernel: self.dir().join("images/vmlinux"),
        }
    }

    fn write_files(&self, options: &NodeOptions) -> Result<(), String> {
        let dir = self.dir();
        for sub in ["desired/nodes", "state", "images", "bin", "traefik/dynamic"] {
            fs::create_dir_all(dir.join(sub))
                .map_err(|error| format!("failed to create {sub}: {error}"))?;
        }
        let files = self.guest_files();
        copy(Path::new("/bin/true"), &files.kernel)?;
        // Guest mode needs the example root filesystem; without it any file works as a drive.
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../build/example-rootfs.ext4");
        let guest = self.guest;
        if guest {
            copy(&example, &files.image)?;
        } else {
            write(&files.image, &vec![0u8; 1 << 20])?;
        }
        let wrapper = dir.join("bin/firecracker");
        write(
            &wrapper,
            format!(
                "#!/bin/sh\nFC_EMULATOR_GUEST={} exec {} \"$@\"\n",
                u8::from(guest),
                self.tools.emulator.display()
            )
            .as_bytes(),
        )?;
        fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755))
            .map_err(|error| format!("failed to make {} executable: {error}", wrapper.display()))?;
        let config = format!(
            "node_name: {node}\nnode_names: [{labels}]\nnode_id: {node}\n{store}\n\
             poll_interval: 1h\nfirecracker_bin: {wrapper}\n\
             state_dir: {state}\nlog_level: debug\napi_listen_addr: {API_ADDR}\n\
             enable_network_setup: true\nimages_dir: {images}\nvm_subnet: 172.16.0.0/24\n\
             vm_gateway: 172.16.0.1\nvm_bridge: br-firework\nnetwork_isolation: false\n\
             enable_capacity_check: false\nupdate_strategy: rolling\nupdate_delay: 0s\n\
             traefik_config_dir: {routes}\ningress_domain: e2e.localhost\n",
            node = options.node,
            labels = options.labels.join(", "),
            store = options.store.clone().unwrap_or_else(|| format!(
                "store_type: local\nstore_dir: {}",
                self.store_dir().display()
            )),
            wrapper = wrapper.display(),
            state = dir.join("state").display(),
            images = dir.join("images").display(),
            routes = self.routes_dir().display(),
        );
        let config = config + &options.extra_config;
        write(&dir.join("agent.yaml"), config.as_bytes())?;
        let traefik = format!(
            "entryPoints:\n  web:\n    address: \"{TRAEFIK_ADDR}\"\nproviders:\n  file:\n    \
             directory: \"{}\"\n    watch: true\n",
            self.routes_dir().display()
        );
        write(&dir.join("traefik/traefik.yaml"), traefik.as_bytes())
    }

    /// Starts `program` in the node's namespace with stdout and stderr appended to `log`
    /// in the node directory.
    pub fn spawn_logged(
        &self,
        program: &Path,
        args: &[String],
        log: &str,
    ) -> Result<Child, String> {
        self.spawn_logged_env(program, args, log, &[])
    }

    fn spawn_logged_env(
        &self,
        program: &Path,
        args: &[String],
        log: &str,
        env: &[(String, String)],
    ) -> Result<Child, String> {
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir().join(log))
            .map_err(|error| format!("failed to open {log}: {error}"))?;
        let err = out
            .try_clone()
            .map_err(|error| format!("failed to open {log}: {error}"))?;
        self.netns
            .command(&program.display().to_string())
            .args(args)
            .envs(env.iter().map(|(key, value)| (key, value)))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|error| format!("failed to start {}: {error}", program.display()))
    }

    fn start_traefik(&mut self) -> Result<(), String> {
        let traefik = self
            .tools
            .traefik
            .clone()
            .ok_or("Traefik is not installed")?;
        let config = format!(
            "--configFile={}",
            self.dir().join("traefik/traefik.yaml").display()
        );
        self.traefik = Some(self.spawn_logged(&traefik, &[config], "traefik.log")?);
        Ok(())
    }

    /// Starts the agent and waits up to 20 s for its API.
    pub fn start_agent(&mut self) -> Result<(), String> {
        let config = self.dir().join("agent.yaml").display().to_string();
        let agent = self.tools.agent.clone();
        let env = self.agent_env.clone();
        self.agent = Some(self.spawn_logged_env(
            &agent,
            &["--config".to_owned(), config],
            "agent.log",
            &env,
        )?);
        wait_until("the agent API", Duration::from_secs(20), || {
            self.status().ok()
        })
        .map_err(|error| format!("{error}; agent log:\n{}", self.agent_log()))?;
        Ok(())
    }

    /// Replaces the agent's extra environment; it applies from the next [`Node::start_agent`].
    pub fn set_agent_env(&mut self, env: Vec<(String, String)>) {
        self.agent_env = env;
    }

    /// Kills the agent with SIGKILL and reaps it. The VMs keep running.
    pub fn kill_agent(&mut self) -> Result<(), String> {
        let mut agent = self.agent.take().ok_or("the agent is not running")?;
        // `ip netns exec` execs the agent, so the child's pid is the agent's.
        agent
            .kill()
            .map_err(|error| format!("failed to kill the agent: {error}"))?;
        agent
            .wait()
            .map_err(|error| format!("failed to reap the agent: {error}"))?;
        Ok(())
    }

    /// The agent's pid.
    pub fn agent_pid(&self) -> Option<u32> {
        self.agent.as_ref().map(Child::id)
    }

    /// The agent's log so far.
    pub fn agent_log(&self) -> String {
        fs::read_to_string(self.dir().join("agent.log")).unwrap_or_default()
    }

    /// Writes `nodes/<label>.yaml` in the store.
    pub fn write_label(&self, label: &str, yaml: &str) -> Result<(), String> {
        let path = self.store_dir().join(format!("nodes/{label}.yaml"));
        let tmp = path.with_extension("yaml.tmp");
        write(&tmp, yaml.as_bytes())?;
        fs::rename(&tmp, &path)
            .map_err(|error| format!("failed to rename {}: {error}", tmp.display()))
    }

    /// Sends `POST /v1/reconcile`.
    pub fn reconcile(&self) -> Result<(), String> {
        self.netns
            .output(
                "curl",
                &[
                    "-fsS",
                    "-m",
                    "5",
                    "-X",
                    "POST",
                    &format!("http://{API_ADDR}/v1/reconcile"),
                ],
            )
            .map(|_| ())
    }

    /// Returns `GET /status` as JSON.
    pub fn status(&self) -> Result<Value, String> {
        let body = self.netns.output(
            "curl",
            &["-fsS", "-m", "5", &format!("http://{API_ADDR}/status")],
        )?;
        serde_json::from_str(&body).map_err(|error| format!("invalid /status JSON: {error}"))
    }

    /// Returns one service's entry of `/status`.
    pub fn service(&self, name: &str) -> Option<Value> {
        let status = self.status().ok()?;
        status["services"]
            .as_array()?
            .iter()
            .find(|svc| svc["name"] == name)
            .cloned()
    }

    /// Waits until `name` runs with a pid and returns its `/status` entry.
    pub fn wait_running(&self, name: &str, timeout: Duration) -> Result<Value, String> {
        wait_until(&format!("service {name} running"), timeout, || {
            self.service(name)
                .filter(|svc| svc["state"] == "running" && svc["pid"].is_i64())
        })
        .map_err(|error| format!("{error}; agent log:\n{}", self.agent_log()))
    }

    /// Sends a request through Traefik with the given Host header; returns the body of a 2xx.
    pub fn get_via_traefik(&self, host: &str, path: &str) -> Option<String> {
        self.netns
            .output(
                "curl",
                &[
                    "-fsS",
                    "-m",
                    "2",
                    "-H",
                    &format!("Host: {host}"),
                    &format!("http://{TRAEFIK_ADDR}{path}"),
                ],
            )
            .ok()
    }

    /// Lists the network interfaces in the node's namespace.
    pub fn links(&self) -> String {
        self.netns
            .output("ip", &["-o", "link", "show"])
            .unwrap_or_default()
    }

    /// Returns the nftables ruleset of the node's namespace.
    pub fn ruleset(&self) -> String {
        self.netns
            .output("nft", &["list", "ruleset"])
            .unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        for child in [self.agent.take(), self.traefik.take()]
            .into_iter()
            .flatten()
        {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
        }
        // VM processes run in the namespace; Netns::drop kills them. Guest process trees
        // may sit in namespaces of their own, so kill everything that names our directory.
        kill_processes_naming(self.dir());
    }
}

/// Sends SIGKILL to every process whose command line contains `dir`.
fn kill_processes_naming(dir: &Path) {
    let needle = dir.display().to_string();
    let Ok(entries) = fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmdline).contains(&needle) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Returns true when a process with this pid exists.
pub fn process_alive(pid: i64) -> bool {
    i32::try_from(pid).is_ok_and(|pid| Path::new(&format!("/proc/{pid}")).exists())
}

/// Finds the example service's `httpd` process of a guest whose environment contains
/// `variable` (`KEY=VALUE`). Guest mode runs each guest as host processes in the guest's
/// own namespaces, so `/proc` shows them.
pub fn guest_httpd_pid(variable: &str) -> Option<i32> {
    fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: i32 = entry.file_name().to_string_lossy().parse().ok()?;
        let comm = fs::read_to_string(entry.path().join("comm")).ok()?;
        if comm.trim() != "httpd" {
            return None;
        }
        let environ = fs::read(entry.path().join("environ")).ok()?;
        environ
            .split(|byte| *byte == 0)
            .any(|entry| entry == variable.as_bytes())
            .then_some(pid)
    })
}

fn copy(from: &Path, to: &Path) -> Result<(), String> {
    fs::copy(from, to).map(|_| ()).map_err(|error| {
        format!(
            "failed to copy {} to {}: {error}",
            from.display(),
            to.display()
        )
    })
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    fs::write(path, bytes).map_err(|error| format!("failed to write {}: {error}", path.display()))
}
