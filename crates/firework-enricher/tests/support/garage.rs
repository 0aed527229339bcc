//! A single-node Garage S3 server on loopback ports, stopped on drop.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running Garage with bucket `firework` and a key that may read and write it.
#[derive(Debug)]
pub struct Garage {
    dir: tempfile::TempDir,
    binary: PathBuf,
    child: Child,
    pub endpoint: String,
    pub key_id: String,
    pub secret: String,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not open port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn find_binary() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("garage"))
            .find(|candidate| candidate.is_file())
    });
    on_path.or_else(|| {
        let home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
        let candidate = home.join("bin/garage");
        candidate.is_file().then_some(candidate)
    })
}

impl Garage {
    /// Starts Garage. Without a `garage` binary it prints why and returns `None`, or panics
    /// when `CI=true`.
    pub fn start() -> Option<Garage> {
        let Some(binary) = find_binary() else {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "garage is not installed; run .ci/setup-garage.sh"
            );
            eprintln!("skipping: garage is not installed (run .ci/setup-garage.sh)");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let (rpc, s3, admin) = (free_port(), free_port(), free_port());
        let rpc_secret: String = (0..32)
            .map(|i| format!("{:02x}", (i * 37 + 11) % 256))
            .collect();
        let config = format!(
            "metadata_dir = \"{meta}\"\ndata_dir = \"{data}\"\ndb_engine = \"sqlite\"\n\
             replication_factor = 1\nrpc_bind_addr = \"127.0.0.1:{rpc}\"\n\
             rpc_public_addr = \"127.0.0.1:{rpc}\"\nrpc_secret = \"{rpc_secret}\"\n\n\
             [s3_api]\ns3_region = \"garage\"\napi_bind_addr = \"127.0.0.1:{s3}\"\n\
             root_domain = \".s3.garage.localhost\"\n\n[admin]\n\
             api_bind_addr = \"127.0.0.1:{admin}\"\n",
            meta = dir.path().join("meta").display(),
            data = dir.path().join("data").display(),
        );
        std::fs::write(dir.path().join("garage.toml"), config).unwrap();
        let child = Command::new(&binary)
            .arg("-c")
            .arg(dir.path().join("garage.toml"))
            .arg("server")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("garage.log")).unwrap())
            .spawn()
            .unwrap();
        let mut garage = Garage {
            dir,
            binary,
            child,
            endpoint: format!("http://127.0.0.1:{s3}"),
            key_id: String::new(),
            secret: String::new(),
        };
        wait_for_port(rpc, "garage rpc");
        let node = garage.cli(&["node", "id", "-q"]);
        let node = node.trim().split('@').next().unwrap().to_string();
        garage.cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &node[..16]]);
        garage.cli(&["layout", "apply", "--version", "1"]);
        wait_for_port(s3, "garage s3");
        garage.cli(&["bucket", "create", "firework"]);
        garage.cli(&["key", "create", "enricher-test"]);
        garage.cli(&[
            "bucket",
            "allow",
            "--read",
            "--write",
            "--owner",
            "firework",
            "--key",
            "enricher-test",
        ]);
        let info = garage.cli(&["key", "info", "enricher-test", "--show-secret"]);
        for line in info.lines().map(str::trim) {
            if let Some(value) = line.strip_prefix("Key ID:") {
                garage.key_id = value.trim().to_string();
            } else if let Some(value) = line.strip_prefix("Secret key:") {
                garage.secret = value.trim().to_string();
            }
        }
        assert!(
            !garage.key_id.is_empty() && !garage.secret.is_empty(),
            "{info}"
        );
        Some(garage)
    }

    /// Runs a `garage` admin command, retrying while the new layout propagates.
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
            assert!(
                Instant::now() < deadline,
                "garage {args:?} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
