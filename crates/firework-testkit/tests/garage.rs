//! The Garage fixture against the real `garage` binary: options are applied, a failed
//! launch cleans up, and the server and its directory are gone after `stop` and drop.

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
