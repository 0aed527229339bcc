//! The GitOps side of a test node: Garage, a Git repository with enricher input, and
//! `firework-enricher serve`, all inside the node's network namespace on loopback.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::node::Node;
use crate::wait::wait_until;

/// Garage's S3 endpoint inside the node's namespace.
pub const S3_ENDPOINT: &str = "http://127.0.0.1:3900";
/// The enricher's listen address inside the node's namespace.
pub const ENRICHER_ADDR: &str = "127.0.0.1:18600";
/// The bucket the enricher publishes to and the agent reads.
pub const BUCKET: &str = "firework";

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true")
}

/// The binaries the GitOps tests need besides the node's.
#[derive(Debug, Clone)]
pub struct GitopsTools {
    /// Garage.
    pub garage: PathBuf,
    /// `firework-enricher`.
    pub enricher: PathBuf,
}

impl GitopsTools {
    /// Locates Garage, the enricher, `git` and `openssl`. Returns `None` after printing a
    /// skip reason for `test`; panics instead when `CI=true`.
    pub fn find(test: &str) -> Option<Self> {
        let enricher = crate::tools::workspace_binary("firework-enricher");
        let mut missing = Vec::new();
        let garage = firework_testkit::garage::find_binary();
        if garage.is_none() {
            missing.push("garage (run .ci/setup-garage.sh)".to_owned());
        }
        if enricher.is_none() {
            missing.push("firework-enricher (cargo build -p firework-enricher)".to_owned());
        }
        for tool in ["git", "openssl"] {
            if Command::new(tool).arg("--version").output().is_err() {
                missing.push(tool.to_owned());
            }
        }
        if !missing.is_empty() {
            let reason = format!("missing {}", missing.join(", "));
            assert!(!in_ci(), "{test}: {reason}");
            eprintln!("skipping {test}: {reason}");
            return None;
        }
        Some(Self {
            garage: garage?,
            enricher: enricher?,
        })
    }
}

/// A Garage server inside a node's namespace.
#[derive(Debug)]
pub struct Garage {
    binary: PathBuf,
    config: PathBuf,
    child: Option<Child>,
    /// The access key id.
    pub key_id: String,
    /// The secret key.
    pub secret: String,
}

impl Garage {
    /// Starts Garage in `node`'s namespace and creates the bucket and a key.
    pub fn start(node: &Node, binary: &Path) -> Result<Self, String> {
        let dir = node.dir().join("garage");
        fs::create_dir_all(&dir)
            .map_err(|error| format!("failed to create {}: {error}", dir.display()))?;
        let secret: String = (0..32)
            .map(|i| format!("{:02x}", (i * 37 + 11) % 256))
            .collect();
        let config = dir.join("garage.toml");
        let text = format!(
            "metadata_dir = \"{meta}\"\ndata_dir = \"{data}\"\ndb_engine = \"sqlite\"\n\
             replication_factor = 1\nrpc_bind_addr = \"127.0.0.1:3901\"\n\
             rpc_public_addr = \"127.0.0.1:3901\"\nrpc_secret = \"{secret}\"\n\n\
             [s3_api]\ns3_region = \"garage\"\napi_bind_addr = \"127.0.0.1:3900\"\n\
             root_domain = \".s3.garage.localhost\"\n\n[admin]\napi_bind_addr = \"127.0.0.1:3903\"\n",
            meta = dir.join("meta").display(),
            data = dir.join("data").display(),
        );
        fs::write(&config, text)
            .map_err(|error| format!("failed to write {}: {error}", config.display()))?;
        let mut garage = Self {
            binary: binary.to_owned(),
            config,
            child: None,
            key_id: String::new(),
            secret: String::new(),
        };
        garage.resume(node)?;
        let id = garage.cli(node, &["node", "id", "-q"])?;
        let id = id.trim().split('@').next().unwrap_or_default().to_owned();
        let prefix = id
            .get(..16)
            .ok_or_else(|| format!("unexpected garage node id {id:?}"))?;
        garage.cli(node, &["layout", "assign", "-z", "dc1", "-c", "1G", prefix])?;
        garage.cli(node, &["layout", "apply", "--version", "1"])?;
        garage.cli(node, &["bucket", "create", BUCKET])?;
        garage.cli(node, &["key", "create", "e2e"])?;
        garage.cli(
            node,
            &[
                "bucket", "allow", "--read", "--write", "--owner", BUCKET, "--key", "e2e",
            ],
        )?;
        let info = garage.cli(node, &["key", "info", "e2e", "--show-secret"])?;
        for line in info.lines().map(str::trim) {
            if let Some(value) = line.strip_prefix("Key ID:") {
                garage.key_id = value.trim().to_owned();
            } else if let Some(value) = line.strip_prefix("Secret key:") {
                garage.secret = value.trim().to_owned();
            }
        }
        if garage.key_id.is_empty() || garage.secret.is_empty() {
            return Err(format!("no key in garage key info output: {info}"));
        }
        Ok(garage)
    }

    /// The AWS environment for clients of this Garage.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID".to_owned(), self.key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY".to_owned(), self.secret.clone()),
            ("AWS_REGION".to_owned(), "garage".to_owned()),
        ]
    }

    /// Runs a Garage CLI command in the namespace, retrying for up to 30 s while the
    /// server starts.
    pub fn cli(&self, node: &Node, args: &[&str]) -> Result<String, String> {
        let config = self.config.display().to_string();
        let mut full = vec!["-c", config.as_str()];
        full.extend_from_slice(args);
        let binary = self.binary.display().to_string();
        let mut last = String::new();
        wait_until(
            &format!("garage {args:?}"),
            Duration::from_secs(30),
            || match node.netns().output(&binary, &full) {
                Ok(out) => Some(out),
                Err(error) => {
                    last = error;
                    None
                }
            },
        )
        .map_err(|error| format!("{error}: {last}"))
    }

    /// Stops the server (SIGKILL); the data stays.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same data and waits for its S3 port.
    pub fn resume(&mut self, node: &Node) -> Result<(), String> {
        let args = [
            "-c".to_owned(),
            self.config.display().to_string(),
            "server".to_owned(),
        ];
        self.child = Some(node.spawn_logged(&self.binary, &args, "garage.log")?);
        wait_until("garage S3 port", Duration::from_secs(30), || {
            node.netns()
                .output("curl", &["-sS", "-m", "1", "-o", "/dev/null", S3_ENDPOINT])
                .ok()
        })
        .map(|_| ())
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A bare Git repository and a checkout that pushes to it.
#[derive(Debug)]
pub struct GitRepo {
    /// The bare repository the enricher fetches.
    pub bare: PathBuf,
    /// The working checkout.
    pub checkout: PathBuf,
}

fn git(dir: &Path, args: &[&str]) -> Result<String, String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=e2e", "-c", "user.email=e2e@localhost"])
        .args(args)
        .output()
        .map_err(|error| format!("failed to run git: {error}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    } else {
        Err(format!(
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

impl GitRepo {
    /// Creates the repositories under `dir` with one commit holding `files`.
    pub fn create(dir: &Path, files: &[(String, String)]) -> Result<Self, String> {
        let checkout = dir.join("checkout");
        let bare = dir.join("repo.git");
        fs::create_dir_all(&checkout)
            .map_err(|error| format!("failed to create {}: {error}", checkout.display()))?;
        git(&checkout, &["init", "-q", "-b", "main"])?;
        let repo = Self { bare, checkout };
        repo.commit(files, "Initial input")?;
        git(dir, &["clone", "-q", "--bare", "checkout", "repo.git"])?;
        git(
            &repo.checkout,
            &["remote", "add", "origin", &repo.bare.display().to_string()],
        )?;
        Ok(repo)
    }

    /// Returns the checkout's HEAD commit id.
    pub fn head(&self) -> Result<String, String> {
        git(&self.checkout, &["rev-parse", "HEAD"])
    }

    /// Writes `files` (path relative to the checkout, content), commits and pushes when a
    /// remote exists. Returns the new commit id.
    pub fn commit(&self, files: &[(String, String)], message: &str) -> Result<String, String> {
        for (path, content) in files {
            let full = self.checkout.join(path);
            if let Some(parent) = full.parent() {
                fs::create_dir_all(parent)
                    .map_err(|error| format!("failed to create {}: {error}", parent.display()))?;
            }
            fs::write(&full, content)
                .map_err(|error| format!("failed to write {}: {error}", full.display()))?;
        }
        git(&self.checkout, &["add", "-A"])?;
        git(&self.checkout, &["commit", "-q", "-m", message])?;
        if self.bare.exists() {
            git(&self.checkout, &["push", "-q", "origin", "main"])?;
        }
        git(&self.checkout, &["rev-parse", "HEAD"])
    }
}

/// `firework-enricher serve` inside a node's namespace.
#[derive(Debug)]
pub struct Enricher {
    child: Child,
    secret: String,
}

impl Enricher {
    /// Returns the enricher's log so far.
    pub fn log(node: &Node) -> String {
        fs::read_to_string(node.dir().join("enricher.log")).unwrap_or_default()
    }

    /// Starts the enricher for `repo`, publishing to `s3://firework/<prefix>` on `garage`.
    pub fn start(
        node: &Node,
        binary: &Path,
        repo: &GitRepo,
        garage: &Garage,
        prefix: &str,
    ) -> Result<Self, String> {
        let secret = "e2e-webhook-secret".to_owned();
        let secret_file = node.dir().join("webhook-secret");
        fs::write(&secret_file, &secret)
            .map_err(|error| format!("failed to write the secret: {error}"))?;
        let config = node.dir().join("enricher.yaml");
        let text = format!(
            "listen: {ENRICHER_ADDR}\nrepository: file://{repo}\nbranch: main\n\
             output: s3://{BUCKET}/{prefix}\ns3_endpoint: {S3_ENDPOINT}\ns3_region: garage\n\
             secret_file: {secret}\n",
            repo = repo.bare.display(),
            secret = secret_file.display(),
        );
        fs::write(&config, text)
            .map_err(|error| format!("failed to write {}: {error}", config.display()))?;
        let mut command = node.netns().command(&binary.display().to_string());
        command
            .args(["serve", "--config", &config.display().to_string()])
            .envs(garage.env())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                fs::File::create(node.dir().join("enricher.log"))
                    .map_err(|error| format!("failed to create the enricher log: {error}"))?,
            );
        let child = command
            .spawn()
            .map_err(|error| format!("failed to start the enricher: {error}"))?;
        let enricher = Self { child, secret };
        wait_until("the enricher /healthz", Duration::from_secs(20), || {
            node.netns()
                .output(
                    "curl",
                    &[
                        "-fsS",
                        "-m",
                        "1",
                        &format!("http://{ENRICHER_ADDR}/healthz"),
                    ],
                )
                .ok()
        })?;
        Ok(enricher)
    }

    /// Returns the count of successful runs from `/metrics`.
    pub fn runs_ok(&self, node: &Node) -> u64 {
        self.runs(node, "ok")
    }

    /// Returns the count of runs with `result` (`ok` or `error`) from `/metrics`.
    pub fn runs(&self, node: &Node, result: &str) -> u64 {
        let prefix = format!("firework_enricher_runs_total{{result=\"{result}\"}} ");
        node.netns()
            .output(
                "curl",
                &[
                    "-fsS",
                    "-m",
                    "2",
                    &format!("http://{ENRICHER_ADDR}/metrics"),
                ],
            )
            .unwrap_or_default()
            .lines()
            .find_map(|line| line.strip_prefix(prefix.as_str()))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Sends a push webhook for `after` signed with the secret, waits for one more
    /// successful run and returns the response body.
    pub fn push(&self, node: &Node, after: &str) -> Result<String, String> {
        self.push_expecting(node, after, "ok")
    }

    /// Sends a push webhook for `after` like [`Enricher::push`], and waits for one more run
    /// with `result` (`ok` or `error`).
    pub fn push_expecting(&self, node: &Node, after: &str, result: &str) -> Result<String, String> {
        let before = self.runs(node, result);
        let body =
            format!("{{\"ref\":\"refs/heads/main\",\"after\":\"{after}\",\"deleted\":false}}");
        let signature = hmac_sha256_hex(&self.secret, &body)?;
        let response = node.netns().output(
            "curl",
            &[
                "-fsS",
                "-m",
                "5",
                "-X",
                "POST",
                "-H",
                "X-GitHub-Event: push",
                "-H",
                &format!("X-GitHub-Delivery: e2e-{after}"),
                "-H",
                &format!("X-Hub-Signature-256: sha256={signature}"),
                "--data",
                &body,
                &format!("http://{ENRICHER_ADDR}/webhook"),
            ],
        )?;
        wait_until(
            &format!("an enricher run with result {result}"),
            Duration::from_secs(30),
            || (self.runs(node, result) > before).then_some(()),
        )
        .map_err(|error| {
            format!(
                "{error}; enricher log:\n{}",
                fs::read_to_string(node.dir().join("enricher.log")).unwrap_or_default()
            )
        })?;
        Ok(response)
    }
}

impl Drop for Enricher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn hmac_sha256_hex(key: &str, body: &str) -> Result<String, String> {
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-hmac", key, "-r"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|error| format!("failed to run openssl: {error}"))?;
    child
        .stdin
        .take()
        .ok_or("no stdin for openssl")?
        .write_all(body.as_bytes())
        .map_err(|error| format!("failed to write to openssl: {error}"))?;
    let output = child
        .wait_with_output()
        .map_err(|error| format!("openssl failed: {error}"))?;
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .map(str::to_owned)
        .ok_or_else(|| "openssl printed no digest".to_owned())
}
