//! `fireworkctl render`, `diff` and `status` through the real binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use firework_enricher::publish::{ObjectOptions, PublishOptions, Target, publish};

fn fireworkctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fireworkctl"))
        .args(args)
        .output()
        .unwrap()
}

fn examples_input() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/input")
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn render_writes_node_configs() {
    let out = tempfile::tempdir().unwrap();
    let output = fireworkctl(&[
        "render",
        examples_input().to_str().unwrap(),
        "--output",
        out.path().to_str().unwrap(),
    ]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for key in ["nodes/web.yaml", "nodes/backend.yaml", "index.json"] {
        assert!(out.path().join(key).is_file(), "{key} missing");
    }
    // The rendered configs are valid node configs.
    let check = fireworkctl(&["validate", out.path().join("nodes").to_str().unwrap()]);
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
}

#[test]
fn render_of_invalid_input_exits_one() {
    let input = tempfile::tempdir().unwrap();
    std::fs::create_dir(input.path().join("services")).unwrap();
    std::fs::write(
        input.path().join("services/web.yaml"),
        "name: web\nnode_type: web\n",
    )
    .unwrap();
    let output = fireworkctl(&["render", input.path().to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.starts_with(&format!(
            "error: failed to render {}",
            input.path().display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("image"), "{stderr}");
}

#[tokio::test(flavor = "current_thread")]
async fn diff_against_published_directory() {
    let input = tempfile::tempdir().unwrap();
    copy_tree(&examples_input(), input.path());
    let published = tempfile::tempdir().unwrap();
    let rendered = fireworkctl::render::render(input.path(), Some("c0ffee".to_string())).unwrap();
    let target = Target::parse(
        published.path().to_str().unwrap(),
        &ObjectOptions::default(),
    )
    .unwrap();
    let options = PublishOptions {
        source_commit: Some("c0ffee".to_string()),
        ..PublishOptions::default()
    };
    publish(&target, &rendered.files, &options).await.unwrap();

    let same = fireworkctl(&[
        "diff",
        input.path().to_str().unwrap(),
        published.path().to_str().unwrap(),
    ]);
    assert_eq!(
        same.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&same.stdout)
    );
    assert_eq!(String::from_utf8(same.stdout).unwrap(), "no changes\n");

    let cache = input.path().join("services/cache.yaml");
    let text = std::fs::read_to_string(&cache)
        .unwrap()
        .replace("port: 6379", "port: 6380");
    std::fs::write(&cache, text).unwrap();
    let changed = fireworkctl(&[
        "diff",
        input.path().to_str().unwrap(),
        published.path().to_str().unwrap(),
    ]);
    assert_eq!(changed.status.code(), Some(1));
    let stdout = String::from_utf8(changed.stdout).unwrap();
    assert!(
        stdout.contains("-    port: 6379\n+    port: 6380\n"),
        "{stdout}"
    );
    assert!(stdout.ends_with("1 files change\n"), "{stdout}");
    // diff only reads: the published files are unchanged.
    let after = fireworkctl(&[
        "diff",
        examples_input().to_str().unwrap(),
        published.path().to_str().unwrap(),
    ]);
    assert_eq!(after.status.code(), Some(0));
}

/// Serves one canned HTTP response on a loopback port and returns the request it saw.
fn serve_once(response: &'static str) -> (String, std::thread::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut buffer = [0u8; 4096];
        let n = stream.read(&mut buffer).unwrap();
        stream.write_all(response.as_bytes()).unwrap();
        String::from_utf8_lossy(&buffer[..n]).into_owned()
    });
    (address, handle)
}

#[test]
fn status_prints_table_and_sends_token() {
    let body = r#"{"node":"n1","version":"0.1.0","revision":"abc","last_error":null,"services":[{"name":"api","state":"running","health":"healthy","pid":7,"guest_ip":"172.16.0.9","restarts":1}]}"#;
    let response: &'static str = Box::leak(
        format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len())
            .into_boxed_str(),
    );
    let (address, server) = serve_once(response);
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let output = fireworkctl(&[
        "status",
        "--api",
        &address,
        "--token-file",
        token.to_str().unwrap(),
    ]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        stdout.starts_with("node n1  version 0.1.0  revision abc\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "api                      running    healthy           7 172.16.0.9             1"
        ),
        "{stdout}"
    );
    let request = server.join().unwrap();
    assert!(request.starts_with("GET /status HTTP/1.1\r\n"), "{request}");
    assert!(
        request
            .to_ascii_lowercase()
            .contains("authorization: bearer s3cret\r\n"),
        "{request}"
    );
}

#[test]
fn status_error_reply_exits_two() {
    let (address, server) = serve_once(
        "HTTP/1.1 401 Unauthorized\r\ncontent-length: 12\r\nconnection: close\r\n\r\nunauthorized",
    );
    let output = fireworkctl(&["status", "--api", &address]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(
        stderr,
        format!("error: {address}/status returned 401: unauthorized\n")
    );
    server.join().unwrap();
}
