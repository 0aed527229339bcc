//! A single-node Garage S3 server on free loopback ports, and `ObjectStore` wrappers that
//! count requests or break a download once.

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path as ObjectPath;
use object_store::{
    CopyOptions, GetOptions, GetRange, GetResult, GetResultPayload, ListResult, MultipartUpload,
    ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use tempfile::TempDir;

/// Returns a port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
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

/// Finds the `garage` binary on PATH or in `~/.cargo/bin`.
fn garage_binary() -> Option<PathBuf> {
    let output = Command::new("sh")
        .args(["-c", "command -v garage"])
        .output()
        .ok()?;
    let found = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if output.status.success() && !found.is_empty() {
        return Some(PathBuf::from(found));
    }
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
    let candidate = home.join("bin").join("garage");
    candidate.exists().then_some(candidate)
}

/// A single-node Garage server with bucket `images` and one key with read and write access.
pub struct Garage {
    dir: TempDir,
    binary: PathBuf,
    child: Option<Child>,
    /// The S3 endpoint, `http://127.0.0.1:<port>`.
    pub endpoint: String,
    /// The S3 region Garage expects.
    pub region: String,
    /// The bucket created at start.
    pub bucket: String,
    /// The access key id.
    pub key_id: String,
    /// The secret access key.
    pub secret: String,
}

impl Garage {
    /// Starts Garage, or returns `None` after printing why when it is not installed.
    /// Panics when it is missing and `CI=true`, because CI must run these tests.
    pub fn start() -> Option<Garage> {
        let Some(binary) = garage_binary() else {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("garage is not installed but CI=true; run .ci/setup-garage.sh");
            }
            eprintln!("skipping: garage is not installed (run .ci/setup-garage.sh)");
            return None;
        };
        Some(Garage::start_with(binary, None))
    }

    /// Starts Garage with its data under `data_root` (a temporary directory when `None`).
    pub fn start_with(binary: PathBuf, data_root: Option<PathBuf>) -> Garage {
        let dir = match data_root {
            Some(root) => tempfile::tempdir_in(root).unwrap(),
            None => tempfile::tempdir().unwrap(),
        };
        let rpc_port = free_port();
        let s3_port = free_port();
        let admin_port = free_port();
        let secret: String = (0..32)
            .map(|_| format!("{:02x}", rand::random::<u8>()))
            .collect();
        let config = format!(
            r#"metadata_dir = "{meta}"
data_dir = "{data}"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc_port}"
rpc_public_addr = "127.0.0.1:{rpc_port}"
rpc_secret = "{secret}"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:{s3_port}"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:{admin_port}"
"#,
            meta = dir.path().join("meta").display(),
            data = dir.path().join("data").display(),
        );
        let config_path = dir.path().join("garage.toml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("garage.log")).unwrap();
        let child = Command::new(&binary)
            .arg("-c")
            .arg(&config_path)
            .arg("server")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut garage = Garage {
            dir,
            binary,
            child: Some(child),
            endpoint: format!("http://127.0.0.1:{s3_port}"),
            region: "garage".to_owned(),
            bucket: "images".to_owned(),
            key_id: String::new(),
            secret: String::new(),
        };
        wait_until("garage rpc", Duration::from_secs(30), || {
            port_open(rpc_port)
        });
        let node_id = garage.cli(&["node", "id", "-q"]);
        let node_id = node_id.trim().split('@').next().unwrap().to_owned();
        garage.cli(&["layout", "assign", "-z", "dc1", "-c", "10G", &node_id[..16]]);
        garage.cli(&["layout", "apply", "--version", "1"]);
        wait_until("garage s3 api", Duration::from_secs(30), || {
            port_open(s3_port)
        });
        garage.cli(&["bucket", "create", "images"]);
        garage.cli(&["key", "create", "images-test"]);
        garage.cli(&[
            "bucket",
            "allow",
            "--read",
            "--write",
            "--owner",
            "images",
            "--key",
            "images-test",
        ]);
        let info = garage.cli(&["key", "info", "images-test", "--show-secret"]);
        for line in info.lines() {
            let line = line.trim();
            if let Some(value) = line.strip_prefix("Key ID:") {
                garage.key_id = value.trim().to_owned();
            }
            if let Some(value) = line.strip_prefix("Secret key:") {
                garage.secret = value.trim().to_owned();
            }
        }
        assert!(!garage.key_id.is_empty(), "no key id in: {info}");
        assert!(!garage.secret.is_empty(), "no secret in: {info}");
        garage
    }

    /// Runs a `garage` command against this server and returns its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let output = Command::new(&self.binary)
                .arg("-c")
                .arg(self.dir.path().join("garage.toml"))
                .args(args)
                .output()
                .unwrap();
            if output.status.success() {
                return String::from_utf8(output.stdout).unwrap();
            }
            // Right after start the layout may not have propagated yet.
            assert!(
                Instant::now() < deadline,
                "garage {args:?} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Returns the image source of this server's bucket with the test key.
    pub fn source(&self) -> firework_images::ImageSource {
        self.source_with_secret(&self.secret)
    }

    /// Returns the image source with another secret, for denied requests.
    pub fn source_with_secret(&self, secret: &str) -> firework_images::ImageSource {
        firework_images::ImageSource::S3 {
            bucket: self.bucket.clone(),
            region: Some(self.region.clone()),
            endpoint_url: Some(self.endpoint.clone()),
            credentials: Some((self.key_id.clone(), firework_images::Secret::new(secret))),
        }
    }

    /// Builds a client of the bucket for uploading test objects.
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        self.source().build(Duration::from_secs(30)).unwrap()
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One GET as the wrapped store saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetRecord {
    pub key: String,
    pub head: bool,
    pub range: Option<GetRange>,
    pub if_match: Option<String>,
}

/// Wraps a store: records every GET, counts body bytes, and can break the first body
/// stream of one key after a number of bytes.
#[derive(Debug)]
pub struct TestStore {
    inner: Arc<dyn ObjectStore>,
    pub gets: Mutex<Vec<GetRecord>>,
    pub body_bytes: Arc<AtomicUsize>,
    break_key: Mutex<Option<(String, usize)>>,
    broken: AtomicBool,
}

impl TestStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Arc<TestStore> {
        Arc::new(TestStore {
            inner,
            gets: Mutex::new(Vec::new()),
            body_bytes: Arc::new(AtomicUsize::new(0)),
            break_key: Mutex::new(None),
            broken: AtomicBool::new(false),
        })
    }

    /// Makes the first body of `key` fail after `after` bytes.
    pub fn break_once(&self, key: &str, after: usize) {
        *self.break_key.lock().unwrap() = Some((key.to_owned(), after));
    }

    /// GETs that asked for a body (not metadata only), for `key`.
    pub fn body_gets(&self, key: &str) -> Vec<GetRecord> {
        self.gets
            .lock()
            .unwrap()
            .iter()
            .filter(|g| g.key == key && !g.head)
            .cloned()
            .collect()
    }

    pub fn reset(&self) {
        self.gets.lock().unwrap().clear();
        self.body_bytes.store(0, Ordering::SeqCst);
    }
}

impl std::fmt::Display for TestStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Test({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for TestStore {
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
        let key = location.to_string();
        self.gets.lock().unwrap().push(GetRecord {
            key: key.clone(),
            head: options.head,
            range: options.range.clone(),
            if_match: options.if_match.clone(),
        });
        let head = options.head;
        let result = self.inner.get_opts(location, options).await?;
        let mut result = result;
        if head {
            return Ok(result);
        }
        let limit = {
            let target = self.break_key.lock().unwrap();
            match &*target {
                Some((target, after))
                    if *target == key && !self.broken.swap(true, Ordering::SeqCst) =>
                {
                    Some(*after)
                }
                _ => None,
            }
        };
        let GetResult {
            payload,
            meta,
            range,
            attributes,
            extensions,
        } = result;
        let stream = match payload {
            GetResultPayload::Stream(stream) => stream,
            file => GetResult {
                payload: file,
                meta: meta.clone(),
                range: range.clone(),
                attributes: attributes.clone(),
                extensions: extensions.clone(),
            }
            .into_stream(),
        };
        result = GetResult {
            payload: GetResultPayload::Stream(counted_stream(
                stream,
                limit,
                Arc::clone(&self.body_bytes),
            )),
            meta,
            range,
            attributes,
            extensions,
        };
        Ok(result)
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

/// Counts the bytes of `stream` into `counter`; with `limit`, stops after that many bytes
/// with a connection error.
fn counted_stream(
    stream: BoxStream<'static, object_store::Result<bytes::Bytes>>,
    limit: Option<usize>,
    counter: Arc<AtomicUsize>,
) -> BoxStream<'static, object_store::Result<bytes::Bytes>> {
    struct State {
        stream: BoxStream<'static, object_store::Result<bytes::Bytes>>,
        seen: usize,
        limit: Option<usize>,
        fail_next: bool,
        done: bool,
        counter: Arc<AtomicUsize>,
    }
    let state = State {
        stream,
        seen: 0,
        limit,
        fail_next: false,
        done: false,
        counter,
    };
    futures::stream::unfold(state, |mut state| async move {
        if state.done {
            return None;
        }
        if state.fail_next {
            state.done = true;
            let error = object_store::Error::Generic {
                store: "test",
                source: "connection reset by the test".into(),
            };
            return Some((Err(error), state));
        }
        match state.stream.next().await {
            None => None,
            Some(Err(error)) => {
                state.done = true;
                Some((Err(error), state))
            }
            Some(Ok(mut chunk)) => {
                if let Some(limit) = state.limit
                    && state.seen + chunk.len() >= limit
                {
                    chunk = chunk.slice(..limit - state.seen);
                    state.fail_next = true;
                }
                state.seen += chunk.len();
                state.counter.fetch_add(chunk.len(), Ordering::SeqCst);
                Some((Ok(chunk), state))
            }
        }
    })
    .boxed()
}
