//! Runs the Go firework's fc-init test vectors (environment, user specs, writable paths)
//! against the library, reading the vector folders in place.

// Helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fc_init::params::BootParams;
use fc_init::runtime::normalize_writable_paths;
use fc_init::user;
use serde::Deserialize;

fn vectors_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/go-firework");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "skipped: conformance vectors not found at {}",
            dir.display()
        );
        None
    }
}

/// Lists the vector folders whose names start with `prefix`, sorted.
fn vectors(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with(prefix))
        })
        .collect();
    found.sort();
    found
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

#[derive(Debug, Deserialize)]
struct EnvExpected {
    assertion: String,
    env: BTreeMap<String, String>,
    #[serde(default)]
    errors: Option<Vec<String>>,
}

#[test]
fn env_vectors() {
    let Some(dir) = vectors_dir() else { return };
    let cases = vectors(&dir, "fcinit-env-");
    assert!(
        cases.len() >= 3,
        "expected the fcinit-env-* vectors, found {cases:?}"
    );
    for case in cases {
        let cmdline = read(&case.join("input/cmdline.txt"));
        let expected: EnvExpected =
            serde_saphyr::from_str(&read(&case.join("expected.yaml"))).unwrap();
        assert_eq!(expected.assertion, "full", "{}", case.display());

        let params = BootParams::parse(cmdline.as_bytes());

        assert_eq!(params.env, expected.env, "{}", case.display());
        if let Some(errors) = expected.errors {
            let problems: Vec<String> = params.problems.iter().map(ToString::to_string).collect();
            assert_eq!(problems, errors, "{}", case.display());
        }
    }
}

#[derive(Debug, Deserialize)]
struct UserExpected {
    uid: u32,
    gid: u32,
    username: Option<String>,
    home: Option<String>,
}

#[test]
fn user_vectors() {
    let Some(dir) = vectors_dir() else { return };
    let cases = vectors(&dir, "fcinit-user-");
    assert!(
        cases.len() >= 2,
        "expected the fcinit-user-* vectors, found {cases:?}"
    );
    for case in cases {
        let spec = read(&case.join("input/user-spec.txt"));
        let expected: UserExpected =
            serde_saphyr::from_str(&read(&case.join("expected.yaml"))).unwrap();

        // The vectors are numeric, so no passwd or group file is consulted.
        let resolved = user::resolve(&user::parse_spec(spec.trim()).unwrap(), "", "").unwrap();

        assert_eq!(resolved.uid, expected.uid, "{}", case.display());
        assert_eq!(resolved.gid, expected.gid, "{}", case.display());
        if let Some(username) = expected.username {
            assert_eq!(
                resolved.name.unwrap_or_default(),
                username,
                "{}",
                case.display()
            );
        }
        if let Some(home) = expected.home {
            let home_found = resolved
                .home
                .map(|home| home.display().to_string())
                .unwrap_or_default();
            assert_eq!(home_found, home, "{}", case.display());
        }
    }
}

#[derive(Debug, Deserialize)]
struct WritableExpected {
    normalized: Vec<String>,
}

#[test]
fn writable_paths_vector() {
    let Some(dir) = vectors_dir() else { return };
    let case = dir.join("fcinit-writable-paths");
    let input: Vec<String> =
        serde_saphyr::from_str(&read(&case.join("input/writable-paths.yaml"))).unwrap();
    let expected: WritableExpected =
        serde_saphyr::from_str(&read(&case.join("expected.yaml"))).unwrap();

    let normalized = normalize_writable_paths(&input);

    let expected: Vec<PathBuf> = expected.normalized.iter().map(PathBuf::from).collect();
    assert_eq!(normalized, expected);
}
