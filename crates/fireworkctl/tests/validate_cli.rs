//! `fireworkctl validate` through the real binary: output, JSON and exit status.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fireworkctl"))
        .arg("validate")
        .args(args)
        .output()
        .unwrap()
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[test]
fn examples_are_valid() {
    let root = examples();
    let paths = [
        root.join("agent/local.yaml"),
        root.join("agent/git.yaml"),
        root.join("agent/s3.yaml"),
        root.join("agent/gcs.yaml"),
        root.join("nodes"),
        root.join("input"),
    ];
    let args: Vec<&str> = paths.iter().map(|p| p.to_str().unwrap()).collect();
    let output = run(&args);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert!(
        stdout(&output).ends_with("ok: 0 errors, 1 warnings in 6 paths\n"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn strict_turns_warnings_into_failure() {
    let input = examples().join("input");
    let output = run(&["--strict", input.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout(&output).ends_with("FAILED: 0 errors, 1 warnings in 1 paths\n"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn invalid_node_config_exits_one_with_diagnostic() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = dir.path().join("nodes");
    std::fs::create_dir(&nodes).unwrap();
    let file = nodes.join("web.yaml");
    let text = "services:\n  - name: web\n    image: /i\n    kernel: /k\n    vcpus: 40\n    memory_mb: 64\n";
    std::fs::write(&file, text).unwrap();
    let output = run(&[file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let expected = format!(
        "{}:5:12: error: services[0].vcpus: invalid vcpus 40: allowed 1 to 32 (Firecracker's limit) [invalid-value]\n",
        file.display()
    );
    assert!(
        stdout(&output).starts_with(&expected),
        "{}",
        stdout(&output)
    );
    // Validation only reads: the file is unchanged.
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
}

#[test]
fn json_format_lists_diagnostics() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("agent.yaml");
    std::fs::write(&file, "store_type: consul\ncolour: blue\n").unwrap();
    let output = run(&["--format", "json", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let document: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(document["valid"], false);
    assert_eq!(document["errors"], 1);
    assert_eq!(document["warnings"], 1);
    let diagnostics = document["reports"][0]["diagnostics"].as_array().unwrap();
    let error = diagnostics
        .iter()
        .find(|d| d["severity"] == "error")
        .unwrap();
    assert_eq!(error["path"], "store_type");
    assert_eq!(error["line"], 1);
    assert_eq!(error["column"], 13);
    assert_eq!(
        error["message"],
        "unsupported store_type \"consul\": allowed local, git, s3, gcs"
    );
    assert_eq!(document["reports"][0]["kind"], "agent");
}

#[test]
fn missing_path_exits_two() {
    let output = run(&["/nonexistent/nodes/x.yaml"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.starts_with("error: failed to read /nonexistent/nodes/x.yaml: "),
        "{stderr}"
    );
}

#[test]
fn node_directory_detected_by_content() {
    let dir = tempfile::tempdir().unwrap();
    let configs = dir.path().join("copy-of-nodes");
    std::fs::create_dir(&configs).unwrap();
    let node = "services:\n  - name: web\n    image: /i/web.ext4\n    kernel: /i/vmlinux\n    \
                vcpus: 0\n    memory_mb: 128\n";
    std::fs::write(configs.join("web.yaml"), node).unwrap();
    let output = run(&[configs.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let expected = format!(
        "{}:5:12: error: services[0].vcpus: invalid vcpus 0: allowed 1 to 32 \
         (Firecracker's limit) [invalid-value]",
        configs.join("web.yaml").display()
    );
    assert!(stdout.contains(&expected), "{stdout}");

    // A directory with one file that is not a node config stays undetected.
    std::fs::write(configs.join("notes.yaml"), "hello: world\n").unwrap();
    let output = run(&[configs.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
}

#[test]
fn undetectable_kind_exits_two_with_hint() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("thing.yaml");
    std::fs::write(&file, "hello: world\n").unwrap();
    let output = run(&[file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(
        stderr,
        format!(
            "error: cannot tell what {} is: pass --kind agent, node or input\n",
            file.display()
        )
    );
    let output = run(&["--kind", "node", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
}
