//! Test helpers: a Git repository on disk, `git daemon` serving it on loopback, and the
//! Garage S3 server from `firework-testkit`.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use firework_testkit::garage::{Garage, GarageOptions};

/// Copies the directory tree `from` into `to`.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Returns the example input tree of the render tests.
pub fn example_tree() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/example")
}

/// Starts Garage with bucket `firework` and key `enricher-test`, or returns `None` after
/// printing why when it is not installed.
pub fn start_garage() -> Option<Garage> {
    Garage::start_with(&GarageOptions {
        key_name: "enricher-test".to_owned(),
        ..GarageOptions::default()
    })
}

/// A repository under `<base>/repo.git`'s work tree `<base>/work`.
#[derive(Debug)]
pub struct Repo {
    pub work: PathBuf,
}

fn git(dir: &Path, args: &[&str], date: Option<i64>) -> String {
    let mut command = Command::new("git");
    command
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.invalid")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.invalid")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1");
    if let Some(date) = date {
        command
            .env("GIT_AUTHOR_DATE", format!("@{date} +0000"))
            .env("GIT_COMMITTER_DATE", format!("@{date} +0000"));
    }
    let output = command.output().expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

impl Repo {
    /// Creates a repository with branch `main` in `dir`.
    pub fn init(dir: &Path) -> Repo {
        let work = dir.join("repo");
        std::fs::create_dir_all(&work).unwrap();
        git(&work, &["init", "-q", "-b", "main"], None);
        Repo { work }
    }

    /// Commits everything with committer time `date`; returns the commit id.
    pub fn commit(&self, message: &str, date: i64) -> String {
        git(&self.work, &["add", "-A"], None);
        git(
            &self.work,
            &["commit", "-q", "--allow-empty", "-m", message],
            Some(date),
        );
        git(&self.work, &["rev-parse", "HEAD"], None)
    }

    /// Runs a git command in the work tree.
    pub fn git(&self, args: &[&str]) -> String {
        git(&self.work, args, None)
    }
}

/// `git daemon` exporting the parent of a repository on a loopback port.
#[derive(Debug)]
pub struct Daemon {
    child: Child,
    pub port: u16,
}

impl Daemon {
    /// Serves every repository below `base`; the URL of `base/<name>` is
    /// `git://127.0.0.1:<port>/<name>`.
    pub fn start(base: &Path) -> Daemon {
        let port = firework_testkit::ports::free_port().unwrap();
        // `git daemon` forks `git-daemon`, and killing the wrapper would leave the server
        // running, so the daemon binary is started directly.
        let exec_path = Command::new("git")
            .arg("--exec-path")
            .output()
            .expect("git --exec-path runs");
        let exec_path = String::from_utf8(exec_path.stdout).expect("exec path is UTF-8");
        let daemon = std::path::PathBuf::from(exec_path.trim()).join("git-daemon");
        let child = Command::new(daemon)
            .args([
                "--reuseaddr",
                "--export-all",
                "--listen=127.0.0.1",
                &format!("--port={port}"),
                &format!("--base-path={}", base.display()),
                &base.display().to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("git daemon starts");
        let address: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(address).is_err() {
            assert!(Instant::now() < deadline, "git daemon did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Daemon { child, port }
    }

    pub fn url(&self, name: &str) -> String {
        format!("git://127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
