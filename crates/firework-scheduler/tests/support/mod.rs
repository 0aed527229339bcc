//! Shared pieces of the integration tests: the registry settings of the Garage S3 server
//! from `firework-testkit`, a fake-gcs-server on a free loopback port, and the records,
//! services and previous placement that the directory and bucket registries are compared on.

#![allow(dead_code, reason = "each test file uses a different part")]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use firework_scheduler::registry::NodeRecord;
use firework_store::{NodeRegistry, ObjectSettings, Secret};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutPayload};
use tempfile::TempDir;

pub use firework_testkit::garage::Garage;

/// The time every plan in these tests is judged at.
pub const NOW: &str = "2026-12-04T20:00:00Z";

fn port_open(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

fn wait_until(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The `firework-store` settings and registry that reach a test Garage server.
pub trait GarageRegistry {
    /// Returns S3 settings for the server's bucket with the test key, retries off.
    fn settings(&self, prefix: &str) -> ObjectSettings;

    /// Returns a registry on `prefix` of the bucket.
    fn registry(&self, prefix: &str) -> NodeRegistry;
}

impl GarageRegistry for Garage {
    fn settings(&self, prefix: &str) -> ObjectSettings {
        let mut settings = ObjectSettings::s3(&self.bucket, prefix);
        settings.region = Some(self.region.clone());
        settings.endpoint_url = Some(self.endpoint.clone());
        settings.static_credentials = Some((self.key_id.clone(), Secret::new(self.secret.clone())));
        settings.max_retries = 0;
        settings.request_timeout = Duration::from_secs(10);
        settings
    }

    fn registry(&self, prefix: &str) -> NodeRegistry {
        let settings = self.settings(prefix);
        NodeRegistry::object(settings.backend, settings.build().unwrap(), prefix)
    }
}

/// Writes `body` as the object `key` of the Garage bucket, bypassing `NodeRegistry`.
async fn put_raw(garage: &Garage, key: &str, body: &str) {
    let store = garage.settings("").build().unwrap();
    store
        .put(&ObjectPath::from(key), PutPayload::from(body.to_owned()))
        .await
        .unwrap();
}

/// A record for `node` with the `general` label.
pub fn record(node: &str, heartbeat: &str, vcpus: u32, memory_mb: u64) -> NodeRecord {
    serde_json::from_value(serde_json::json!({
        "node": node,
        "labels": ["general"],
        "host_ip": "10.0.0.7",
        "capacity": {"vcpus": vcpus, "memory_mb": memory_mb},
        "reserved": {"vcpus": 0, "memory_mb": 0},
        "agent_version": "0.1.0",
        "heartbeat": heartbeat,
    }))
    .unwrap()
}

/// The records the directory and bucket registries are compared on: two live nodes and
/// one whose heartbeat is ten minutes old.
pub fn records() -> Vec<NodeRecord> {
    vec![
        record("n1", "2026-12-04T19:59:55Z", 4, 4096),
        record("n2", "2026-12-04T19:59:55Z", 8, 8192),
        record("old", "2026-12-04T19:50:00Z", 8, 8192),
    ]
}

/// A record file whose content is not JSON, written next to the good ones.
pub const BROKEN_RECORD: &str = "{not json";

/// Writes [`records`] and the broken `bad.json` into a directory registry under `root`.
pub async fn write_dir_registry(root: &Path) {
    let registry = NodeRegistry::local(root);
    for record in records() {
        registry.write(&record).await.unwrap();
    }
    std::fs::write(root.join("registry/nodes/bad.json"), BROKEN_RECORD).unwrap();
}

/// Writes [`records`] and the broken `bad.json` under `prefix` of the Garage bucket.
pub async fn write_bucket_registry(garage: &Garage, prefix: &str) {
    let registry = garage.registry(prefix);
    for record in records() {
        registry.write(&record).await.unwrap();
    }
    put_raw(
        garage,
        &format!("{prefix}/registry/nodes/bad.json"),
        BROKEN_RECORD,
    )
    .await;
}

/// The services as node-config YAML: `web` (2 vCPUs), `api` and `db` (1 vCPU each).
pub const SERVICES_YAML: &str = "services:\n  - name: web\n    image: /images/web.ext4\n    kernel: /images/vmlinux\n    vcpus: 2\n    memory_mb: 512\n    node_type: general\n  - name: api\n    image: /images/api.ext4\n    kernel: /images/vmlinux\n    vcpus: 1\n    memory_mb: 256\n  - name: db\n    image: /images/db.ext4\n    kernel: /images/vmlinux\n    vcpus: 1\n    memory_mb: 1024\n";

/// The previous placement as node configs: `db` ran on the stale node `old`, `api` on `n2`.
pub fn write_existing(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("old.yaml"),
        "services:\n  - name: db\n    image: /images/db.ext4\n    kernel: /images/vmlinux\n    vcpus: 1\n    memory_mb: 1024\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("n2.yaml"),
        "services:\n  - name: api\n    image: /images/api.ext4\n    kernel: /images/vmlinux\n    vcpus: 1\n    memory_mb: 256\n",
    )
    .unwrap();
}

/// A fake-gcs-server (a GCS JSON API emulator) with one bucket, `firework`, in memory.
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
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "fake-gcs-server is not installed but CI=true; run .ci/setup-garage.sh"
            );
            eprintln!("skipping: fake-gcs-server is not installed (run .ci/setup-garage.sh)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        // Each folder under the data directory becomes a bucket.
        std::fs::create_dir_all(dir.path().join("data/firework")).unwrap();
        let port = firework_testkit::ports::free_port().unwrap();
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

    /// Writes a service account file that points `object_store` at the emulator and turns
    /// OAuth off, and returns its path.
    pub fn credentials_file(&self) -> PathBuf {
        let path = self.dir.path().join("credentials.json");
        let json = format!(
            r#"{{"private_key": "", "private_key_id": "", "client_email": "", "gcs_base_url": "{}", "disable_oauth": true}}"#,
            self.base_url
        );
        std::fs::write(&path, json).unwrap();
        path
    }

    /// Uploads an object through the emulator's JSON API. `object_store` writes through the
    /// XML API, whose uploads fake-gcs-server rejects with "invalid uploadType".
    pub fn upload(&self, name: &str, body: &str) {
        use std::io::{Read, Write};

        let encoded = name.replace('/', "%2F");
        let path = format!("/upload/storage/v1/b/firework/o?uploadType=media&name={encoded}");
        let address = self.base_url.trim_start_matches("http://");
        let mut stream = TcpStream::connect(address).unwrap();
        write!(
            stream,
            "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let status = response.lines().next().unwrap_or_default();
        assert!(
            status.starts_with("HTTP/1.1 200"),
            "upload of {name} failed: {status}"
        );
    }

    /// Uploads [`records`] and the broken `bad.json` under `prefix`.
    pub fn write_registry(&self, prefix: &str) {
        for record in records() {
            let body = serde_json::to_string(&record).unwrap();
            self.upload(
                &format!("{prefix}/registry/nodes/{}.json", record.node),
                &body,
            );
        }
        self.upload(&format!("{prefix}/registry/nodes/bad.json"), BROKEN_RECORD);
    }
}

impl Drop for FakeGcs {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
