//! Test support: spawn `fc-emulator` in a temporary directory and talk to it with a raw
//! HTTP/1.1 client over the Unix socket, so tests see the exact bytes on the wire.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub mod openapi;

pub const BINARY: &str = env!("CARGO_BIN_EXE_fc-emulator");

/// A reply as read from the socket.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl RawResponse {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("body {:?}: {e}", self.body))
    }

    pub fn fault(&self) -> String {
        self.json()["fault_message"]
            .as_str()
            .unwrap_or_else(|| panic!("no fault_message in {:?}", self.body))
            .to_string()
    }
}

/// Sends one request on a new connection and reads the reply.
pub fn request(socket: &Path, method: &str, path: &str, body: Option<&str>) -> RawResponse {
    let mut stream = UnixStream::connect(socket).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n");
    if let Some(body) = body {
        text.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    text.push_str("\r\n");
    if let Some(body) = body {
        text.push_str(body);
    }
    stream.write_all(text.as_bytes()).unwrap();
    read_response(&mut stream)
}

/// Reads one reply from a stream.
pub fn read_response(stream: &mut UnixStream) -> RawResponse {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        let read = stream.read(&mut chunk).unwrap();
        assert!(
            read > 0,
            "connection closed before a full reply: {buffer:?}"
        );
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8(buffer[..head_end].to_vec()).unwrap();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("Content-Length: "))
        .map(|value| value.trim().parse().unwrap())
        .unwrap_or(0);
    while buffer.len() < head_end + 4 + length {
        let read = stream.read(&mut chunk).unwrap();
        assert!(read > 0, "connection closed inside the body");
        buffer.extend_from_slice(&chunk[..read]);
    }
    let body = String::from_utf8(buffer[head_end + 4..head_end + 4 + length].to_vec()).unwrap();
    RawResponse { status, head, body }
}

/// A running emulator; killed on drop.
pub struct Emulator {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub stdout: PathBuf,
}

pub fn spawn(args: &[&str], env: &[(&str, &str)]) -> (Child, tempfile::TempDir, PathBuf, PathBuf) {
    spawn_with_prefix(&[], args, env)
}

/// Spawns the emulator behind a wrapper command such as `ip netns exec NAME`.
pub fn spawn_with_prefix(
    prefix: &[&str],
    args: &[&str],
    env: &[(&str, &str)],
) -> (Child, tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("api.sock");
    let stdout = dir.path().join("stdout.log");
    let mut command = match prefix.split_first() {
        Some((program, rest)) => {
            let mut command = Command::new(program);
            command.args(rest).arg(BINARY);
            command
        }
        None => Command::new(BINARY),
    };
    command
        .args(["--api-sock", socket.to_str().unwrap()])
        .args(args)
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap())
        .stdin(Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    (command.spawn().unwrap(), dir, socket, stdout)
}

impl Emulator {
    pub fn start(args: &[&str]) -> Emulator {
        Emulator::start_with_env(args, &[])
    }

    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Emulator {
        Emulator::start_with_prefix(&[], args, env)
    }

    pub fn start_with_prefix(prefix: &[&str], args: &[&str], env: &[(&str, &str)]) -> Emulator {
        let (child, dir, socket, stdout) = spawn_with_prefix(prefix, args, env);
        let mut emulator = Emulator {
            child,
            dir,
            socket,
            stdout,
        };
        emulator.wait_ready();
        emulator
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while UnixStream::connect(&self.socket).is_err() {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("emulator exited early with {status}: {}", self.stderr());
            }
            assert!(Instant::now() < deadline, "emulator socket not ready");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sends a request and checks the exchange against the OpenAPI file when it is present,
    /// so every reply in every socket test is held to the contract.
    pub fn request(&self, method: &str, path: &str, body: Option<&str>) -> RawResponse {
        let response = request(&self.socket, method, path, body);
        if let Some(spec) = openapi::spec()
            && let Err(errors) = openapi::check(spec, method, path, body, &response)
        {
            panic!(
                "{method} {path} breaks the OpenAPI contract ({}): {errors:#?}",
                response.status
            );
        }
        response
    }

    pub fn put(&self, path: &str, body: &str) -> RawResponse {
        self.request("PUT", path, Some(body))
    }

    pub fn get(&self, path: &str) -> RawResponse {
        self.request("GET", path, None)
    }

    /// Asserts a 204 for a PUT.
    pub fn put_ok(&self, path: &str, body: &str) {
        let response = self.put(path, body);
        assert_eq!(response.status, 204, "PUT {path} {body}: {}", response.body);
    }

    /// Asserts a 400 with exactly `message`.
    pub fn expect_fault(&self, method: &str, path: &str, body: Option<&str>, message: &str) {
        let response = self.request(method, path, body);
        assert_eq!(response.status, 400, "{method} {path}: {}", response.body);
        assert_eq!(response.fault(), message, "{method} {path}");
    }

    pub fn file(&self, name: &str, content: &[u8]) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        path.to_str().unwrap().to_string()
    }

    pub fn kernel(&self) -> String {
        self.file("vmlinux", b"\x7fELF\x02\x01\x01\x00")
    }

    /// Configures a kernel and starts the VM.
    pub fn boot(&self) {
        let kernel = self.kernel();
        self.put_ok(
            "/boot-source",
            &format!(r#"{{"kernel_image_path":"{kernel}"}}"#),
        );
        self.put_ok("/actions", r#"{"action_type":"InstanceStart"}"#);
    }

    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        wait_exit(&mut self.child, within)
    }

    pub fn stdout_text(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }
}

pub fn wait_exit(child: &mut Child, within: Duration) -> ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "process did not exit in {within:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
