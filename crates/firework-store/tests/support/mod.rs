//! Real servers for the integration tests: `git daemon` serving a bare repository and a
//! fake-gcs-server, each on a free loopback port and killed on drop. The Garage S3 server
//! comes from `firework-testkit`, with bucket `firework` and key `firework-test`.

#![allow(dead_code)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::path::Path as ObjectPath;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use tempfile::TempDir;

pub use firework_testkit::garage::Garage;

/// Returns a port that was free a moment ago on 127.0.0.1, outside the ephemeral range.
pub fn free_port() -> u16 {
    firework_testkit::ports::free_port().unwrap()
}

/// Polls `ready` every 50 ms until it returns true or `timeout` passes.
pub fn wait_until(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn port_open(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// Runs a command and returns its standard output; panics with its standard error on failure.
pub fn run(command: &mut Command) -> String {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn git(dir: &Path) -> Command {
    let mut command = Command::new("git");
    command
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "test")
        .env("GIT_AUTHOR_EMAIL", "test@example.invalid")
        .env("GIT_COMMITTER_NAME", "test")
        .env("GIT_COMMITTER_EMAIL", "test@example.invalid")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir);
    command
}

/// A bare repository served by `git daemon` plus a work tree to commit from.
pub struct GitServer {
    dir: TempDir,
    port: u16,
    daemon: Option<Child>,
}

impl GitServer {
    /// Creates `config.git` with branch `main` and starts the daemon.
    pub fn start() -> GitServer {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("srv");
        std::fs::create_dir_all(&root).unwrap();
        run(git(&root).args(["init", "--bare", "-q", "-b", "main", "config.git"]));
        run(git(dir.path()).args(["init", "-q", "-b", "main", "work"]));
        let work = dir.path().join("work");
        run(git(&work)
            .args(["remote", "add", "origin"])
            .arg(root.join("config.git")));
        let mut server = GitServer {
            dir,
            port: 0,
            daemon: None,
        };
        server.start_daemon();
        server
    }

    fn start_daemon(&mut self) {
        let port = free_port();
        let root = self.dir.path().join("srv");
        // `git daemon` forks `git-daemon` and killing the wrapper would leave the server
        // running, so the daemon binary is started directly.
        let exec_path = run(Command::new("git").arg("--exec-path"));
        let daemon = Path::new(exec_path.trim()).join("git-daemon");
        let child = Command::new(daemon)
            .arg("--reuseaddr")
            .arg("--export-all")
            .arg("--listen=127.0.0.1")
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", root.display()))
            .arg(&root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.daemon = Some(child);
        self.port = port;
        wait_until("git daemon", Duration::from_secs(10), || port_open(port));
    }

    /// Returns the `git://` URL of the repository.
    pub fn url(&self) -> String {
        format!("git://127.0.0.1:{}/config.git", self.port)
    }

    /// Returns the bare repository's path.
    pub fn bare_path(&self) -> PathBuf {
        self.dir.path().join("srv").join("config.git")
    }

    fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    /// Writes (`Some`) or deletes (`None`) files, commits and pushes to `main`; returns the
    /// new commit id.
    pub fn commit(&self, files: &[(&str, Option<&str>)]) -> String {
        let work = self.work();
        for (path, content) in files {
            let full = work.join(path);
            match content {
                Some(content) => {
                    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
                    std::fs::write(&full, content).unwrap();
                }
                None => {
                    let _ = std::fs::remove_file(&full);
                }
            }
        }
        run(git(&work).args(["add", "-A"]));
        run(git(&work).args(["commit", "-q", "--allow-empty", "-m", "update"]));
        run(git(&work).args(["push", "-q", "origin", "main"]));
        self.head()
    }

    /// Replaces the last commit with a different one and force-pushes it; returns its id.
    pub fn force_push_rewrite(&self, files: &[(&str, Option<&str>)]) -> String {
        let work = self.work();
        run(git(&work).args(["reset", "-q", "--hard", "HEAD~1"]));
        for (path, content) in files {
            let full = work.join(path);
            match content {
                Some(content) => {
                    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
                    std::fs::write(&full, content).unwrap();
                }
                None => {
                    let _ = std::fs::remove_file(&full);
                }
            }
        }
        run(git(&work).args(["add", "-A"]));
        run(git(&work).args(["commit", "-q", "--allow-empty", "-m", "rewritten"]));
        run(git(&work).args(["push", "-q", "--force", "origin", "main"]));
        self.head()
    }

    /// Returns the commit id of the work tree's `HEAD`.
    pub fn head(&self) -> String {
        run(git(&self.work()).args(["rev-parse", "HEAD"]))
            .trim()
            .to_owned()
    }

    /// Deletes branch `main` on the server.
    pub fn delete_branch(&self) {
        run(git(&self.bare_path()).args(["update-ref", "-d", "refs/heads/main"]));
    }

    /// Stops the daemon; the URL then refuses connections.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        wait_until("git daemon to stop", Duration::from_secs(10), || {
            !port_open(self.port)
        });
    }
}

impl Drop for GitServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The `firework-store` settings that reach a test Garage server.
pub trait GarageSettings {
    /// Returns S3 settings for the server's bucket with the test key, retries off.
    fn settings(&self, prefix: &str) -> firework_store::ObjectSettings;
}

impl GarageSettings for Garage {
    fn settings(&self, prefix: &str) -> firework_store::ObjectSettings {
        let mut settings = firework_store::ObjectSettings::s3(&self.bucket, prefix);
        settings.region = Some(self.region.clone());
        settings.endpoint_url = Some(self.endpoint.clone());
        settings.static_credentials = Some((
            self.key_id.clone(),
            firework_store::Secret::new(self.secret.clone()),
        ));
        settings.max_retries = 0;
        settings.request_timeout = Duration::from_secs(10);
        settings
    }
}

/// Counts what passes through an `ObjectStore`: GETs that returned a body, GETs that
/// returned 304 Not Modified, and list calls.
#[derive(Debug)]
pub struct CountingStore {
    inner: Arc<dyn ObjectStore>,
    pub bodies: AtomicUsize,
    pub not_modified: AtomicUsize,
    pub lists: AtomicUsize,
}

impl CountingStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Arc<CountingStore> {
        Arc::new(CountingStore {
            inner,
            bodies: AtomicUsize::new(0),
            not_modified: AtomicUsize::new(0),
            lists: AtomicUsize::new(0),
        })
    }

    pub fn bodies(&self) -> usize {
        self.bodies.load(Ordering::SeqCst)
    }

    pub fn not_modified(&self) -> usize {
        self.not_modified.load(Ordering::SeqCst)
    }
}

impl std::fmt::Display for CountingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Counting({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for CountingStore {
    async fn put_opts(
        &self,
        location: &ObjectPath,
        payload: PutPayload,
        options: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.inner.put_opts(location, payload, options).await
    }

    async fn put_multipart_opts(
        &self,
        location: &ObjectPath,
        options: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, options).await
    }

    async fn get_opts(
        &self,
        location: &ObjectPath,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let result = self.inner.get_opts(location, options).await;
        match &result {
            Ok(_) => {
                self.bodies.fetch_add(1, Ordering::SeqCst);
            }
            Err(object_store::Error::NotModified { .. }) => {
                self.not_modified.fetch_add(1, Ordering::SeqCst);
            }
            Err(_) => {}
        }
        result
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<ObjectPath>>,
    ) -> BoxStream<'static, object_store::Result<ObjectPath>> {
        self.inner.delete_stream(locations)
    }

    fn list(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.lists.fetch_add(1, Ordering::SeqCst);
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &ObjectPath,
        to: &ObjectPath,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

/// Builds a registry record for `node` with fixed values.
pub fn sample_record(node: &str, heartbeat: &str) -> firework_store::NodeRecord {
    firework_store::NodeRecord {
        node: node.to_owned(),
        labels: vec![node.to_owned()],
        host_ip: Some("10.0.0.7".parse().unwrap()),
        capacity: firework_store::Resources {
            vcpus: 8,
            memory_mb: 16384,
        },
        reserved: firework_store::Resources {
            vcpus: 1,
            memory_mb: 1024,
        },
        used: firework_store::Resources {
            vcpus: 2,
            memory_mb: 2048,
        },
        agent_version: "0.1.0".to_owned(),
        heartbeat: heartbeat.to_owned(),
    }
}

/// Renders a valid node config with one service.
pub fn node_yaml(node: &str, service: &str) -> String {
    format!(
        "node: {node}\nhost_ip: 10.0.0.9\nservices:\n  - name: {service}\n    image: /img/{service}.ext4\n    kernel: /img/vmlinux\n    vcpus: 1\n    memory_mb: 128\n"
    )
}

/// A fake-gcs-server (a GCS JSON API emulator) with one bucket, `firework`.
pub struct FakeGcs {
    dir: TempDir,
    child: Option<Child>,
    /// The emulator's base URL, `http://127.0.0.1:<port>`.
    pub base_url: String,
}

impl FakeGcs {
    /// Starts the emulator, or returns `None` after printing why when it is not installed.
    /// Panics when it is missing and `CI=true`.
    pub fn start() -> Option<FakeGcs> {
        let output = Command::new("sh")
            .args(["-c", "command -v fake-gcs-server"])
            .output()
            .unwrap();
        if !output.status.success() {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("fake-gcs-server is not installed but CI=true; run .ci/setup-garage.sh");
            }
            eprintln!("skipping: fake-gcs-server is not installed (run .ci/setup-garage.sh)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        // Each folder under the data directory becomes a bucket.
        std::fs::create_dir_all(dir.path().join("data/firework")).unwrap();
        let port = free_port();
        let child = Command::new("fake-gcs-server")
            .args([
                "-scheme",
                "http",
                "-host",
                "127.0.0.1",
                "-backend",
                "memory",
            ])
            .args(["-log-level", "error"])
            .arg("-port")
            .arg(port.to_string())
            .arg("-public-host")
            .arg(format!("127.0.0.1:{port}"))
            .arg("-data")
            .arg(dir.path().join("data"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let gcs = FakeGcs {
            dir,
            child: Some(child),
            base_url: format!("http://127.0.0.1:{port}"),
        };
        wait_until("fake-gcs-server", Duration::from_secs(30), || {
            port_open(port)
        });
        Some(gcs)
    }

    /// GCS settings for `bucket` with a service account file that points `object_store` at
    /// the emulator and turns OAuth off.
    pub fn settings(&self, bucket: &str, prefix: &str) -> firework_store::ObjectSettings {
        let credentials = self.dir.path().join("credentials.json");
        let json = format!(
            r#"{{"private_key": "", "private_key_id": "", "client_email": "", "gcs_base_url": "{}", "disable_oauth": true}}"#,
            self.base_url
        );
        std::fs::write(&credentials, json).unwrap();
        let mut settings = firework_store::ObjectSettings::gcs(bucket, prefix);
        settings.credentials_file = Some(credentials);
        settings.max_retries = 0;
        settings.request_timeout = Duration::from_secs(10);
        settings
    }

    /// Uploads an object through the emulator's JSON API. `object_store` writes through the
    /// XML API, whose uploads fake-gcs-server rejects with "invalid uploadType".
    pub fn upload(&self, bucket: &str, name: &str, body: &str) {
        let encoded = name.replace('/', "%2F");
        let path = format!("/upload/storage/v1/b/{bucket}/o?uploadType=media&name={encoded}");
        let status = self.request("POST", &path, body);
        assert!(
            status.starts_with("HTTP/1.1 200"),
            "upload of {name} failed: {status}"
        );
    }

    /// Sends one HTTP request and returns the status line.
    fn request(&self, method: &str, path: &str, body: &str) -> String {
        use std::io::{Read, Write};

        let address = self.base_url.trim_start_matches("http://");
        let mut stream = TcpStream::connect(address).unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response.lines().next().unwrap_or_default().to_owned()
    }

    /// Stops the emulator.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for FakeGcs {
    fn drop(&mut self) {
        self.stop();
    }
}
