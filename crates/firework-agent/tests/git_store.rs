//! The agent reading its labels from a Git repository served by `git daemon` on loopback.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::process::{Node, free_port, wait_until};

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "test")
        .env("GIT_AUTHOR_EMAIL", "test@example.invalid")
        .env("GIT_COMMITTER_NAME", "test")
        .env("GIT_COMMITTER_EMAIL", "test@example.invalid")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// A bare repository served by `git-daemon`, killed on drop.
struct Repo {
    dir: tempfile::TempDir,
    port: u16,
    daemon: Option<Child>,
}

impl Repo {
    fn start() -> Option<Repo> {
        if Command::new("git").arg("--version").output().is_err() {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("git is missing");
            }
            eprintln!("skipping: git is missing");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("srv")).unwrap();
        git(
            &dir.path().join("srv"),
            &["init", "--bare", "-q", "-b", "main", "config.git"],
        );
        git(dir.path(), &["init", "-q", "-b", "main", "work"]);
        let bare = dir.path().join("srv/config.git");
        git(
            &dir.path().join("work"),
            &["remote", "add", "origin", bare.to_str().unwrap()],
        );
        let mut repo = Repo {
            dir,
            port: 0,
            daemon: None,
        };
        repo.start_daemon();
        Some(repo)
    }

    fn start_daemon(&mut self) {
        self.port = free_port();
        let exec_path = git(self.dir.path(), &["--exec-path"]);
        // The daemon binary itself, because the `git daemon` wrapper forks it.
        let daemon = PathBuf::from(exec_path.trim()).join("git-daemon");
        let root = self.dir.path().join("srv");
        let child = Command::new(daemon)
            .arg("--reuseaddr")
            .arg("--export-all")
            .arg("--listen=127.0.0.1")
            .arg(format!("--port={}", self.port))
            .arg(format!("--base-path={}", root.display()))
            .arg(&root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.daemon = Some(child);
        let port = self.port;
        assert!(wait_until(Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        }));
    }

    fn stop_daemon(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn url(&self) -> String {
        format!("git://127.0.0.1:{}/config.git", self.port)
    }

    fn commit(&self, label: &str, content: &str) {
        let work = self.dir.path().join("work");
        std::fs::create_dir_all(work.join("nodes")).unwrap();
        std::fs::write(work.join(format!("nodes/{label}.yaml")), content).unwrap();
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-q", "-m", "update"]);
        git(&work, &["push", "-q", "origin", "main"]);
    }
}

impl Drop for Repo {
    fn drop(&mut self) {
        self.stop_daemon();
    }
}

#[test]
fn git_store_changes_reach_vms() {
    let Some(mut node) = Node::new() else { return };
    let Some(mut repo) = Repo::start() else {
        return;
    };
    let label = |services: &[String]| format!("node: web\nservices:\n{}", services.concat());
    repo.commit("web", &label(&[node.service("alpha", "")]));

    // The base config names a local store; switch it to the repository.
    node.extra_config = format!("store_url: {}\nstore_branch: main\n", repo.url());
    node.write_config();
    let text = std::fs::read_to_string(node.config_path())
        .unwrap()
        .replace("store_type: local", "store_type: git");
    std::fs::write(node.config_path(), text).unwrap();
    start_without_rewrite(&mut node);

    assert!(
        wait_until(Duration::from_secs(30), || node.running_pids().len() == 1),
        "alpha did not start\nlog:\n{}",
        node.log()
    );
    let alpha = node.running_pids()["alpha"];

    repo.commit(
        "web",
        &label(&[node.service("alpha", ""), node.service("beta", "")]),
    );
    node.reconcile();
    assert!(
        wait_until(Duration::from_secs(30), || node.running_pids().len() == 2),
        "beta did not start\nlog:\n{}",
        node.log()
    );
    assert_eq!(node.running_pids()["alpha"], alpha);
    // The status is written when the tick ends, a moment after beta runs.
    assert!(wait_until(Duration::from_secs(30), || {
        node.status()["services"]
            .as_array()
            .is_some_and(|s| s.len() == 2)
    }));
    let revision = node.status()["labels"][0]["revision"].clone();
    assert!(revision.is_string());

    // The server goes away: nothing changes, and the error is reported.
    let pids = node.running_pids();
    repo.stop_daemon();
    node.reconcile();
    assert!(
        wait_until(Duration::from_secs(30), || node.status()["last_error"]
            .as_str()
            .is_some_and(|e| e.starts_with("store read failed"))),
        "outage not reported: {}\nlog:\n{}",
        node.status(),
        node.log()
    );
    assert_eq!(node.running_pids(), pids);
    assert_eq!(node.status()["labels"][0]["revision"], revision);
}

fn start_without_rewrite(node: &mut Node) {
    let log = std::fs::File::create(node.path("agent.log")).unwrap();
    let child = node
        .command()
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    node.agent = Some(child);
    assert!(
        wait_until(Duration::from_secs(20), || node.get("/status").is_some()),
        "agent api did not come up; log:\n{}",
        node.log()
    );
}
