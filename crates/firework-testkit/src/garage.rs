//! A single-node Garage S3 server for integration tests.
//!
//! [`Garage::start`] writes a config file into a new temporary directory, starts
//! `garage server` on free loopback ports, assigns and applies a one-node cluster layout,
//! then creates a bucket and an access key that may read and write it. Dropping the
//! [`Garage`] kills the server and deletes the directory.
//!
//! Tests skip when `garage` is not installed, unless `CI=true`: CI must run them, so there a
//! missing binary is a failure. `.ci/setup-garage.sh` installs it.

use std::fs::File;
use std::io;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The S3 region the server is configured with. S3 clients must sign requests for it.
pub const REGION: &str = "garage";

/// The config file's name inside the server's directory.
const CONFIG_FILE: &str = "garage.toml";

/// The log file inside the server's directory. The server's standard error goes there.
const LOG_FILE: &str = "garage.log";

/// How many times [`Garage::launch`] starts a server that exits during set-up.
pub const LAUNCH_ATTEMPTS: u32 = 3;

/// How many of the server's last log lines an error quotes.
const LOG_TAIL_LINES: usize = 5;

/// How long a port may take to open, and how long an admin command is retried.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// The bucket, key and layout that [`Garage::start_with`] creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GarageOptions {
    /// The bucket created at start.
    pub bucket: String,
    /// The name of the access key created at start. Garage generates its id and secret.
    pub key_name: String,
    /// The node's capacity in the cluster layout, in Garage's size syntax (`1G`, `10G`).
    pub capacity: String,
    /// The directory in which the server's temporary directory is created, or `None` for
    /// the system's temporary directory.
    pub data_root: Option<PathBuf>,
}

impl Default for GarageOptions {
    /// Bucket `firework`, key `firework-test`, capacity `1G`, data in the system's
    /// temporary directory.
    fn default() -> Self {
        GarageOptions {
            bucket: "firework".to_owned(),
            key_name: "firework-test".to_owned(),
            capacity: "1G".to_owned(),
            data_root: None,
        }
    }
}

/// An error of starting or administering the server.
#[derive(Debug, thiserror::Error)]
pub enum GarageError {
    /// A file or process operation failed.
    #[error("failed to {action}: {source}")]
    Io {
        /// The failed step as a verb phrase, such as `write the config file`.
        action: String,
        /// The underlying error.
        source: io::Error,
    },
    /// A port did not accept connections in time.
    #[error("timed out after {timeout:?} waiting for {what} on 127.0.0.1:{port}")]
    PortTimeout {
        /// The name of the listener, such as `garage rpc`.
        what: &'static str,
        /// The loopback port.
        port: u16,
        /// How long the wait lasted.
        timeout: Duration,
    },
    /// An admin command still failed when its retries ran out.
    #[error("garage {args:?} failed: {stderr}; the server's log ends with: {log_tail}")]
    Command {
        /// The command's arguments after `-c <config>`.
        args: Vec<String>,
        /// The standard error of the last attempt.
        stderr: String,
        /// The last lines of the server's log.
        log_tail: String,
    },
    /// The server exited while it was being set up.
    #[error("garage server exited with {status} during set-up; its log ends with: {log_tail}")]
    Exited {
        /// The server's exit status.
        status: std::process::ExitStatus,
        /// The last lines of the server's log.
        log_tail: String,
    },
    /// An admin command succeeded but its output lacked a value.
    #[error("no {missing} in the output of garage {args:?}: {output}")]
    Output {
        /// The command's arguments after `-c <config>`.
        args: Vec<String>,
        /// The value that was looked for.
        missing: &'static str,
        /// The command's standard output.
        output: String,
    },
}

/// A running single-node Garage server with one bucket and one key that may read and
/// write it.
#[derive(Debug)]
pub struct Garage {
    dir: TempDir,
    binary: PathBuf,
    /// The server process, behind a lock so that `&self` methods can see whether it exited.
    child: Mutex<Option<Child>>,
    /// The S3 endpoint, `http://127.0.0.1:<port>`.
    pub endpoint: String,
    /// The admin API endpoint, `http://127.0.0.1:<port>`. It serves `/metrics`.
    pub admin_endpoint: String,
    /// The S3 region, [`REGION`].
    pub region: String,
    /// The bucket created at start.
    pub bucket: String,
    /// The access key id.
    pub key_id: String,
    /// The secret access key.
    pub secret: String,
}

impl Garage {
    /// Starts a server with [`GarageOptions::default`], as [`Garage::start_with`] does.
    ///
    /// # Panics
    ///
    /// When `garage` is missing and `CI=true`, or when the server fails to start.
    pub fn start() -> Option<Garage> {
        Garage::start_with(&GarageOptions::default())
    }

    /// Starts a server, or returns `None` after printing why to standard error when
    /// `garage` is not installed.
    ///
    /// # Panics
    ///
    /// When `garage` is missing and `CI=true`, because CI must run the tests that need it,
    /// or when the server fails to start.
    pub fn start_with(options: &GarageOptions) -> Option<Garage> {
        let Some(binary) = find_binary() else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "garage is not installed but CI=true; run .ci/setup-garage.sh"
            );
            eprintln!("skipping: garage is not installed (run .ci/setup-garage.sh)");
            return None;
        };
        match Garage::launch(binary, options) {
            Ok(garage) => Some(garage),
            Err(error) => panic!("garage failed to start: {error}"),
        }
    }

    /// Starts `binary` as a server and creates the bucket and key of `options`. When the
    /// server exits during set-up, most likely because another process took one of its
    /// ports first, it is started again on new ports, up to [`LAUNCH_ATTEMPTS`] times in
    /// all.
    ///
    /// # Errors
    ///
    /// Returns [`GarageError`] when a file cannot be written, the server cannot be spawned,
    /// a port does not open or an admin command fails. The server is stopped then.
    pub fn launch(binary: PathBuf, options: &GarageOptions) -> Result<Garage, GarageError> {
        let mut attempt = 1;
        loop {
            match Garage::launch_once(binary.clone(), options) {
                Err(error @ GarageError::Exited { .. }) if attempt < LAUNCH_ATTEMPTS => {
                    eprintln!("garage: starting again on new ports: {error}");
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    /// Starts `binary` once, as [`Garage::launch`] describes.
    fn launch_once(binary: PathBuf, options: &GarageOptions) -> Result<Garage, GarageError> {
        let dir = match &options.data_root {
            Some(root) => tempfile::tempdir_in(root),
            None => tempfile::tempdir(),
        }
        .map_err(|source| io_error("create the server directory", source))?;
        let rpc_port = free_port()?;
        let s3_port = free_port()?;
        let admin_port = free_port()?;
        let config_path = dir.path().join(CONFIG_FILE);
        let config = config_file(dir.path(), rpc_port, s3_port, admin_port);
        std::fs::write(&config_path, config)
            .map_err(|source| io_error("write the config file", source))?;
        let log = File::create(dir.path().join(LOG_FILE))
            .map_err(|source| io_error("create the log file", source))?;
        let child = Command::new(&binary)
            .arg("-c")
            .arg(&config_path)
            .arg("server")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|source| io_error(&format!("run {}", binary.display()), source))?;

        // From here on an early return drops `garage`, which kills the server.
        let mut garage = Garage {
            dir,
            binary,
            child: Mutex::new(Some(child)),
            endpoint: format!("http://127.0.0.1:{s3_port}"),
            admin_endpoint: format!("http://127.0.0.1:{admin_port}"),
            region: REGION.to_owned(),
            bucket: options.bucket.clone(),
            key_id: String::new(),
            secret: String::new(),
        };
        garage.wait_for_port("garage rpc", rpc_port)?;
        garage.apply_layout(&options.capacity)?;
        garage.wait_for_port("garage s3 api", s3_port)?;
        garage.create_bucket_and_key(&options.key_name)?;
        Ok(garage)
    }

    /// Runs `garage -c <config> <args>` against this server and returns its standard
    /// output. A failing command is retried every 200 ms for up to 30 s, because right
    /// after start the layout may not have propagated yet. Retries stop once the server
    /// has exited.
    ///
    /// # Errors
    ///
    /// Returns [`GarageError::Io`] when `garage` cannot be run, [`GarageError::Exited`]
    /// when the server has exited, and [`GarageError::Command`] when the command still
    /// fails after the retries.
    pub fn cli(&self, args: &[&str]) -> Result<String, GarageError> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            let output = Command::new(&self.binary)
                .arg("-c")
                .arg(self.dir.path().join(CONFIG_FILE))
                .args(args)
                .output()
                .map_err(|source| io_error(&format!("run garage {args:?}"), source))?;
            if output.status.success() {
                return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
            }
            self.check_running()?;
            if Instant::now() >= deadline {
                return Err(GarageError::Command {
                    args: owned(args),
                    stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
                    log_tail: self.log_tail(),
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Returns the path of the server's log file, which receives its standard error.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join(LOG_FILE)
    }

    /// Kills the server. The endpoints then refuse connections. Calling it again does
    /// nothing.
    pub fn stop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Some(mut child) = child.take() {
            // The server may have exited already, and there is nothing else to clean up.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Polls `port` on 127.0.0.1 every 50 ms until it accepts a connection.
    fn wait_for_port(&self, what: &'static str, port: u16) -> Result<(), GarageError> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            self.check_running()?;
            if Instant::now() >= deadline {
                return Err(GarageError::PortTimeout {
                    what,
                    port,
                    timeout: STARTUP_TIMEOUT,
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Returns [`GarageError::Exited`] when the server process has exited by itself. A
    /// server that [`Garage::stop`] killed is not reported.
    fn check_running(&self) -> Result<(), GarageError> {
        let mut child = self.child.lock().unwrap_or_else(PoisonError::into_inner);
        let status = match child.as_mut().map(Child::try_wait) {
            Some(Ok(Some(status))) => status,
            _ => return Ok(()),
        };
        Err(GarageError::Exited {
            status,
            log_tail: self.log_tail(),
        })
    }

    /// Returns the last lines of the server's log, joined by ` | `, or a note that the log
    /// is empty or unreadable.
    fn log_tail(&self) -> String {
        match std::fs::read_to_string(self.log_path()) {
            Ok(log) if log.is_empty() => "(empty)".to_owned(),
            Ok(log) => {
                let lines: Vec<&str> = log.lines().collect();
                let start = lines.len().saturating_sub(LOG_TAIL_LINES);
                lines[start..].join(" | ")
            }
            Err(error) => format!("(failed to read {}: {error})", self.log_path().display()),
        }
    }

    /// Gives this node `capacity` in zone `dc1` and applies the layout as version 1.
    fn apply_layout(&self, capacity: &str) -> Result<(), GarageError> {
        let args = ["node", "id", "-q"];
        let output = self.cli(&args)?;
        // The output is `<64 hex digits>@<address>`, and `layout assign` accepts the first 16
        // digits as the node id.
        let node_id = output
            .trim()
            .split('@')
            .next()
            .and_then(|id| id.get(..16))
            .ok_or_else(|| GarageError::Output {
                args: owned(&args),
                missing: "node id",
                output: output.clone(),
            })?;
        self.cli(&["layout", "assign", "-z", "dc1", "-c", capacity, node_id])?;
        self.cli(&["layout", "apply", "--version", "1"])?;
        Ok(())
    }

    /// Creates the bucket and the key `key_name`, lets the key read, write and own the
    /// bucket, and stores the key's id and secret.
    fn create_bucket_and_key(&mut self, key_name: &str) -> Result<(), GarageError> {
        let bucket = self.bucket.clone();
        self.cli(&["bucket", "create", &bucket])?;
        self.cli(&["key", "create", key_name])?;
        self.cli(&[
            "bucket", "allow", "--read", "--write", "--owner", &bucket, "--key", key_name,
        ])?;
        let args = ["key", "info", key_name, "--show-secret"];
        let info = self.cli(&args)?;
        let (key_id, secret) = parse_key_info(&info);
        let missing = |missing| GarageError::Output {
            args: owned(&args),
            missing,
            output: info.clone(),
        };
        self.key_id = key_id.ok_or_else(|| missing("key id"))?;
        self.secret = secret.ok_or_else(|| missing("secret key"))?;
        Ok(())
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Finds the `garage` binary on `PATH`, then in `$CARGO_HOME/bin` (by default
/// `~/.cargo/bin`), where `.ci/setup-garage.sh` installs it.
pub fn find_binary() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("garage"))
            .find(|candidate| candidate.is_file())
    });
    on_path.or_else(|| {
        let cargo_home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))?;
        let candidate = cargo_home.join("bin").join("garage");
        candidate.is_file().then_some(candidate)
    })
}

/// Renders the config of a single-node server that keeps its data under `dir` and listens
/// on loopback only. The RPC secret is random for each server.
fn config_file(dir: &Path, rpc_port: u16, s3_port: u16, admin_port: u16) -> String {
    let rpc_secret: String = (0..32)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect();
    format!(
        r#"metadata_dir = "{meta}"
data_dir = "{data}"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc_port}"
rpc_public_addr = "127.0.0.1:{rpc_port}"
rpc_secret = "{rpc_secret}"

[s3_api]
s3_region = "{REGION}"
api_bind_addr = "127.0.0.1:{s3_port}"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:{admin_port}"
"#,
        meta = dir.join("meta").display(),
        data = dir.join("data").display(),
    )
}

/// Reads the `Key ID:` and `Secret key:` lines of `garage key info --show-secret`.
fn parse_key_info(info: &str) -> (Option<String>, Option<String>) {
    let mut key_id = None;
    let mut secret = None;
    for line in info.lines().map(str::trim) {
        if let Some(value) = line.strip_prefix("Key ID:") {
            key_id = Some(value.trim().to_owned());
        } else if let Some(value) = line.strip_prefix("Secret key:") {
            secret = Some(value.trim().to_owned());
        }
    }
    let non_empty = |value: Option<String>| value.filter(|v| !v.is_empty());
    (non_empty(key_id), non_empty(secret))
}

/// Returns a free loopback port, see [`crate::ports::free_port`].
fn free_port() -> Result<u16, GarageError> {
    crate::ports::free_port().map_err(|source| io_error("find a free loopback port", source))
}

fn io_error(action: &str, source: io::Error) -> GarageError {
    GarageError::Io {
        action: action.to_owned(),
        source,
    }
}

fn owned(args: &[&str]) -> Vec<String> {
    args.iter().map(|&arg| arg.to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_info_parsed() {
        // The layout of `garage key info --show-secret` in Garage 2.5.0.
        let info = "\
==== ACCESS KEY INFORMATION ====
Key ID:              GKe48b56eb08aaa2d3363219b6
Key name:            testkit-key
Secret key:          1dda54678dc775af13832a95bdc6fb594314f4fb730fd444390fef7ca95f453d
Created:             2026-12-04 23:04:31.767 +00:00
Validity:            valid
Expiration:          never

Can create buckets:  false

==== BUCKETS FOR THIS KEY ====
Permissions  ID                Global aliases  Local aliases
RWO          cc3a3ecef7bdd794  testkit
";

        let (key_id, secret) = parse_key_info(info);

        assert_eq!(key_id.as_deref(), Some("GKe48b56eb08aaa2d3363219b6"));
        assert_eq!(
            secret.as_deref(),
            Some("1dda54678dc775af13832a95bdc6fb594314f4fb730fd444390fef7ca95f453d")
        );
    }

    #[test]
    fn key_info_without_secret() {
        let (key_id, secret) = parse_key_info("Key ID: GK1\nSecret key: \n");

        assert_eq!(key_id.as_deref(), Some("GK1"));
        assert_eq!(secret, None);
    }

    #[test]
    fn config_file_contents() {
        let config = config_file(Path::new("/srv/g"), 3901, 3900, 3903);

        assert!(
            config.contains("metadata_dir = \"/srv/g/meta\""),
            "{config}"
        );
        assert!(config.contains("data_dir = \"/srv/g/data\""), "{config}");
        assert!(
            config.contains("rpc_bind_addr = \"127.0.0.1:3901\""),
            "{config}"
        );
        assert!(
            config.contains("[s3_api]\ns3_region = \"garage\"\napi_bind_addr = \"127.0.0.1:3900\""),
            "{config}"
        );
        assert!(
            config.contains("[admin]\napi_bind_addr = \"127.0.0.1:3903\""),
            "{config}"
        );
    }
}
