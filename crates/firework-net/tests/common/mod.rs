//! Network namespace helpers for the root-only tests.
//!
//! Each test builds its own namespaces with `ip netns add` and runs Firework code in
//! them on dedicated threads that `setns` first. The `ip` command is used only to
//! build the test topology; the library itself never runs it.

#![allow(dead_code)]

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use firework_net::{AppliedNetwork, LinuxBackend, NetError, NetworkManager, NetworkPlan};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sched::{CloneFlags, setns};

/// Returns true, after printing why, when the test cannot run here.
pub fn skip_unless_root(test: &str) -> bool {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipping {test}: needs root for network namespaces, TAP devices and nft");
        return true;
    }
    for tool in ["ip", "nft"] {
        let found = Command::new(tool).arg("-V").output().is_ok();
        if !found {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{tool} is missing; run .ci/setup-net.sh");
            }
            eprintln!("skipping {test}: {tool} is missing (run .ci/setup-net.sh)");
            return true;
        }
    }
    false
}

/// Runs a command and panics with its output when it fails.
pub fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A network namespace created for one test and deleted on drop.
#[derive(Debug)]
pub struct NetNs {
    pub name: String,
}

impl NetNs {
    pub fn new(tag: &str) -> Self {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("fwt-{tag}-{}-{n}", std::process::id());
        run("ip", &["netns", "add", &name]);
        run("ip", &["-n", &name, "link", "set", "lo", "up"]);
        Self { name }
    }

    /// Runs `ip -n <ns> args...`.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// Runs a program inside the namespace with `ip netns exec`.
    pub fn exec(&self, program: &str, args: &[&str]) -> String {
        let mut full = vec!["netns", "exec", self.name.as_str(), program];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// Returns `nft list table <family> firework` inside the namespace.
    pub fn nft_table(&self, family: &str) -> String {
        self.exec("nft", &["list", "table", family, "firework"])
    }

    /// Runs `f` on a new thread inside the namespace and returns its result.
    pub fn run<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> R {
        self.spawn(f).join().unwrap()
    }

    /// Starts `f` on a new thread inside the namespace.
    pub fn spawn<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> JoinHandle<R> {
        let name = self.name.clone();
        std::thread::spawn(move || {
            enter_namespace(&name);
            f()
        })
    }

    /// Runs `plan` through a real [`NetworkManager`] inside the namespace.
    pub fn apply(
        &self,
        state_dir: &std::path::Path,
        plan: &NetworkPlan,
    ) -> Result<AppliedNetwork, NetError> {
        let state_dir = state_dir.to_owned();
        let plan = plan.clone();
        self.run(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let manager = NetworkManager::new(LinuxBackend::new()?, state_dir);
                manager.apply(&plan).await
            })
        })
    }

    /// Runs `f` with a [`NetworkManager`] on a real backend inside the namespace.
    pub fn with_manager<R: Send + 'static>(
        &self,
        state_dir: &std::path::Path,
        f: impl AsyncFnOnce(&NetworkManager<LinuxBackend>) -> R + Send + 'static,
    ) -> R {
        let state_dir = state_dir.to_owned();
        self.run(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let manager = NetworkManager::new(LinuxBackend::new().unwrap(), state_dir);
                f(&manager).await
            })
        })
    }
}

/// Moves the calling thread into the named network namespace.
fn enter_namespace(name: &str) {
    let file = File::open(PathBuf::from("/run/netns").join(name)).unwrap();
    setns(file.as_fd(), CloneFlags::CLONE_NEWNET).unwrap();
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Copies frames between two TAP descriptors until dropped, standing in for a VMM.
pub struct FrameRelay {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl FrameRelay {
    pub fn new(host: OwnedFd, guest: OwnedFd) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let host = Arc::new(File::from(host));
        let guest = Arc::new(File::from(guest));
        let threads = vec![
            Self::copy(host.clone(), guest.clone(), stop.clone()),
            Self::copy(guest, host, stop.clone()),
        ];
        Self { stop, threads }
    }

    fn copy(from: Arc<File>, to: Arc<File>, stop: Arc<AtomicBool>) -> JoinHandle<()> {
        std::thread::spawn(move || {
            let mut buffer = vec![0u8; 65536];
            while !stop.load(Ordering::Relaxed) {
                let mut fds = [PollFd::new(from.as_fd(), PollFlags::POLLIN)];
                if poll(&mut fds, PollTimeout::from(100u16)).unwrap_or(0) == 0 {
                    continue;
                }
                match (&*from).read(&mut buffer) {
                    Ok(0) => return,
                    Ok(len) => {
                        // A full queue on the other side drops the frame, as a link would.
                        let _ = (&*to).write(&buffer[..len]);
                    }
                    Err(err) if err.kind() == ErrorKind::WouldBlock => {}
                    Err(_) => return,
                }
            }
        })
    }
}

impl Drop for FrameRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// A stand-in guest: namespace `ns` whose `eth0` is a TAP relayed to the host TAP.
pub struct Guest {
    pub ns: NetNs,
    pub relay: FrameRelay,
}

impl Guest {
    /// Creates the guest namespace and connects its `eth0` to `host_tap` in `host`.
    pub fn attach(
        tag: &str,
        host: &NetNs,
        host_tap: &str,
        address: &str,
        prefix: u8,
        gateway: &str,
    ) -> Self {
        let ns = NetNs::new(tag);
        let tap = host_tap.to_owned();
        let host_fd = host.run(move || firework_sys::tun::open_tap(&tap).unwrap());
        let guest_fd = ns.run(|| firework_sys::tun::open_tap("eth0").unwrap());
        ns.ip(&["addr", "add", &format!("{address}/{prefix}"), "dev", "eth0"]);
        ns.ip(&["link", "set", "eth0", "up"]);
        ns.ip(&["route", "add", "default", "via", gateway]);
        let relay = FrameRelay::new(host_fd, guest_fd);
        Self { ns, relay }
    }
}

/// A TCP server that replies to each connection with `<name> saw <peer address>`.
pub struct Server {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    pub fn start(ns: &NetNs, name: &str, port: u16) -> Self {
        Self::start_on(ns, name, SocketAddr::from(([0, 0, 0, 0], port)))
    }

    /// Starts the server on `address`, e.g. `[::]:port` for IPv6.
    pub fn start_on(ns: &NetNs, name: &str, address: SocketAddr) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let name = name.to_owned();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread_stop = stop.clone();
        let thread = ns.spawn(move || {
            let listener = TcpListener::bind(address).unwrap();
            listener.set_nonblocking(true).unwrap();
            ready_tx.send(()).unwrap();
            while !thread_stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut stream, peer)) => {
                        stream.set_nonblocking(false).unwrap();
                        let _ = stream.write_all(format!("{name} saw {}", peer.ip()).as_bytes());
                    }
                    Err(err) if err.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    Err(err) => panic!("accept failed: {err}"),
                }
            }
        });
        ready_rx.recv().unwrap();
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Connects from inside `ns` to `address` and returns what the server sent.
pub fn fetch(ns: &NetNs, address: &str, timeout: Duration) -> std::io::Result<String> {
    let address: SocketAddr = address.parse().unwrap();
    ns.run(move || {
        let mut stream = TcpStream::connect_timeout(&address, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        let mut reply = String::new();
        stream.read_to_string(&mut reply)?;
        Ok(reply)
    })
}

/// Retries [`fetch`] until it succeeds or `attempts` run out, because neighbour
/// discovery through a fresh relay can drop the first SYN.
pub fn fetch_with_retry(ns: &NetNs, address: &str, attempts: u32) -> std::io::Result<String> {
    let mut last = None;
    for _ in 0..attempts {
        match fetch(ns, address, Duration::from_secs(2)) {
            Ok(reply) => return Ok(reply),
            Err(err) => last = Some(err),
        }
    }
    Err(last.unwrap())
}

/// A UDP server that replies to each datagram with `<name> saw <peer address>`.
pub struct UdpEchoServer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl UdpEchoServer {
    pub fn start(ns: &NetNs, name: &str, port: u16) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let name = name.to_owned();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread_stop = stop.clone();
        let thread = ns.spawn(move || {
            let socket = UdpSocket::bind(("0.0.0.0", port)).unwrap();
            socket
                .set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            ready_tx.send(()).unwrap();
            let mut buffer = [0u8; 512];
            while !thread_stop.load(Ordering::Relaxed) {
                if let Ok((_, peer)) = socket.recv_from(&mut buffer) {
                    let reply = format!("{name} saw {}", peer.ip());
                    let _ = socket.send_to(reply.as_bytes(), peer);
                }
            }
        });
        ready_rx.recv().unwrap();
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for UdpEchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Sends a datagram from inside `ns` to `address` and returns the reply, retrying up
/// to `attempts` times because UDP may lose the first datagram while neighbours resolve.
pub fn query_udp(ns: &NetNs, address: &str, attempts: u32) -> std::io::Result<String> {
    let address: SocketAddr = address.parse().unwrap();
    ns.run(move || {
        let socket = UdpSocket::bind("0.0.0.0:0")?;
        socket.set_read_timeout(Some(Duration::from_secs(1)))?;
        let mut buffer = [0u8; 512];
        let mut last = None;
        for _ in 0..attempts {
            socket.send_to(b"ping", address)?;
            match socket.recv_from(&mut buffer) {
                Ok((len, _)) => return Ok(String::from_utf8_lossy(&buffer[..len]).into_owned()),
                Err(err) => last = Some(err),
            }
        }
        Err(last.unwrap())
    })
}
