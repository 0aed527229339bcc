//! The Garage fixture against the real `garage` binary: options are applied, a failed
//! launch cleans up, a server that exits during set-up is started again and then reported,
//! and the server and its directory are gone after `stop` and drop.

use std::net::TcpStream;

use firework_testkit::garage::{Garage, GarageError, GarageOptions, REGION};

fn accepts_connections(endpoint: &str) -> bool {
    TcpStream::connect(endpoint.trim_start_matches("http://")).is_ok()
}

#[test]
fn options_applied() {
    let data_root = tempfile::tempdir().unwrap();
    let options = GarageOptions {
        bucket: "testkit".to_owned(),
        key_name: "testkit-key".to_owned(),
        capacity: "2G".to_owned(),
        data_root: Some(data_root.path().to_owned()),
    };
    let Some(garage) = Garage::start_with(&options) else {
        return;
    };

    assert_eq!(garage.bucket, "testkit");
    assert_eq!(garage.region, REGION);
    assert!(garage.key_id.starts_with("GK"), "key id {}", garage.key_id);
    assert!(!garage.secret.is_empty());
    assert!(garage.log_path().starts_with(data_root.path()));
    assert!(accepts_connections(&garage.endpoint));
    assert!(accepts_connections(&garage.admin_endpoint));

    let buckets = garage.cli(&["bucket", "list"]).unwrap();
    assert!(buckets.contains("testkit"), "{buckets}");
    let key = garage
        .cli(&["key", "info", "testkit-key", "--show-secret"])
        .unwrap();
    assert!(key.contains(&garage.key_id), "{key}");
    assert!(key.contains(&garage.secret), "{key}");
    // Garage 2.5.0 lists the key's permissions on each bucket: read, write and owner.
    assert!(key.contains("RWO"), "{key}");
    let layout = garage.cli(&["layout", "show"]).unwrap();
    assert!(layout.contains("dc1"), "{layout}");
    // Garage 2.5.0 shows 2G (2 * 10^9 bytes) in GiB.
    assert!(layout.contains("1.9 GiB"), "{layout}");

    let endpoint = garage.endpoint.clone();
    drop(garage);

    assert!(!accepts_connections(&endpoint));
    let left = std::fs::read_dir(data_root.path()).unwrap().count();
    assert_eq!(
        left, 0,
        "the server's directory is still under the data root"
    );
}

#[test]
fn stop_closes_endpoints() {
    let Some(mut garage) = Garage::start() else {
        return;
    };
    assert_eq!(garage.bucket, "firework");

    garage.stop();

    assert!(!accepts_connections(&garage.endpoint));
    assert!(!accepts_connections(&garage.admin_endpoint));
    garage.stop();
}

#[test]
fn launch_missing_binary_fails() {
    let data_root = tempfile::tempdir().unwrap();
    let options = GarageOptions {
        data_root: Some(data_root.path().to_owned()),
        ..GarageOptions::default()
    };

    let error = Garage::launch(data_root.path().join("no-garage"), &options).unwrap_err();

    assert!(matches!(error, GarageError::Io { .. }), "{error}");
    assert!(error.to_string().contains("no-garage"), "{error}");
    let left = std::fs::read_dir(data_root.path()).unwrap().count();
    assert_eq!(
        left, 0,
        "the server's directory is still under the data root"
    );
}

#[test]
fn exiting_server_restarted_then_reported() {
    use std::os::unix::fs::PermissionsExt;

    let data_root = tempfile::tempdir().unwrap();
    let bin_dir = tempfile::tempdir().unwrap();
    let runs = bin_dir.path().join("runs");
    // Stands in for a server that loses the race for its port: it logs and exits at once.
    let binary = bin_dir.path().join("garage");
    std::fs::write(
        &binary,
        format!(
            "#!/bin/sh\necho \"$*\" >> {}\necho 'bind: Address already in use' >&2\nexit 3\n",
            runs.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();
    let options = GarageOptions {
        data_root: Some(data_root.path().to_owned()),
        ..GarageOptions::default()
    };

    let error = Garage::launch(binary, &options).unwrap_err();

    match &error {
        GarageError::Exited { status, log_tail } => {
            assert_eq!(status.code(), Some(3), "{error}");
            assert_eq!(log_tail, "bind: Address already in use");
        }
        other => panic!("expected Exited, got {other}"),
    }
    assert_eq!(
        error.to_string(),
        "garage server exited with exit status: 3 during set-up; its log ends with: \
         bind: Address already in use"
    );
    let runs = std::fs::read_to_string(runs).unwrap();
    assert_eq!(
        runs.lines().count(),
        firework_testkit::garage::LAUNCH_ATTEMPTS as usize,
        "{runs}"
    );
    assert!(runs.lines().all(|line| line.ends_with(" server")), "{runs}");
    let left = std::fs::read_dir(data_root.path()).unwrap().count();
    assert_eq!(left, 0, "a server directory is still under the data root");
}
