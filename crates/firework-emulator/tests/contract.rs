//! Contract test: every request the emulator accepts and every reply it returns, checked
//! against Firecracker's OpenAPI (Swagger 2.0) file. A small validator over serde_json
//! values resolves `$ref`s and checks required fields, types, enums, integer bounds and
//! `additionalProperties` where the file sets it.
//!
//! The OpenAPI file is read in place from the shared reference folder next to the
//! repository. When that folder is absent, the test prints a skip reason and returns.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Emulator;
use common::openapi::{self, Nulls, Validator, load_spec, operation};
use serde_json::{Value, json};

/// Sends a request, checks it and its reply against the file, and returns the status.
fn exchange(
    spec: &Value,
    emulator: &Emulator,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> u16 {
    let text = body.as_ref().map(Value::to_string);
    let response = emulator.request(method, path, text.as_deref());
    assert!(
        operation(spec, method, path).is_some(),
        "{method} {path} is not in the OpenAPI file"
    );
    if let Err(errors) = openapi::check(spec, method, path, text.as_deref(), &response) {
        panic!("{method} {path} ({}): {errors:#?}", response.status);
    }
    response.status
}

#[test]
fn validator_detects_violations() {
    let Some(spec) = load_spec() else { return };
    let validator = Validator {
        spec: &spec,
        nulls: Nulls::Reject,
        partial: false,
    };
    let schema = json!({"$ref": "#/definitions/MachineConfiguration"});
    let cases = [
        (
            json!({"mem_size_mib": 128}),
            "missing required field vcpu_count",
        ),
        (
            json!({"vcpu_count": 33, "mem_size_mib": 128}),
            "above the maximum 32",
        ),
        (
            json!({"vcpu_count": 1, "mem_size_mib": "128"}),
            "expected an integer",
        ),
        (
            json!({"vcpu_count": 1, "mem_size_mib": 128, "huge_pages": "1G"}),
            "is not one of",
        ),
        (
            json!({"vcpu_count": 1, "mem_size_mib": 128, "smt": null}),
            "expected a boolean",
        ),
    ];
    for (value, expected) in cases {
        let mut errors = Vec::new();
        validator.validate(&schema, &value, "body", &mut errors);
        assert!(
            errors.iter().any(|e| e.contains(expected)),
            "{value}: {errors:?}"
        );
    }
    let mut errors = Vec::new();
    let strict = json!({"type": "object", "properties": {}, "additionalProperties": false});
    validator.validate(&strict, &json!({"x": 1}), "body", &mut errors);
    assert_eq!(errors, ["body.x: property not allowed"]);
}

#[test]
fn requests_and_replies_match_openapi() {
    let Some(spec) = load_spec() else { return };
    let emulator = Emulator::start(&["--id", "contract"]);
    let kernel = emulator.kernel();
    let rootfs = emulator.file("rootfs.ext4", &[0; 4096]);
    let data = emulator.file("data.ext4", &[0; 4096]);
    let log = emulator.dir.path().join("fc.log");
    let metrics = emulator.dir.path().join("metrics.json");
    let vsock = emulator.dir.path().join("vsock.sock");
    let bucket = json!({"size": 1000, "one_time_burst": 0, "refill_time": 100});

    let accepted: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", "/".into(), None),
        ("GET", "/version".into(), None),
        ("GET", "/machine-config".into(), None),
        ("GET", "/vm/config".into(), None),
        (
            "PUT",
            "/logger".into(),
            Some(
                json!({"log_path": log, "level": "Debug", "show_level": true, "show_log_origin": false}),
            ),
        ),
        (
            "PUT",
            "/metrics".into(),
            Some(json!({"metrics_path": metrics})),
        ),
        (
            "PUT",
            "/machine-config".into(),
            Some(
                json!({"vcpu_count": 2, "mem_size_mib": 256, "smt": false, "track_dirty_pages": false, "huge_pages": "None"}),
            ),
        ),
        (
            "PATCH",
            "/machine-config".into(),
            Some(json!({"mem_size_mib": 512})),
        ),
        (
            "PUT",
            "/boot-source".into(),
            Some(
                json!({"kernel_image_path": kernel, "boot_args": "console=ttyS0 reboot=k panic=1"}),
            ),
        ),
        (
            "PUT",
            "/drives/rootfs".into(),
            Some(
                json!({"drive_id": "rootfs", "path_on_host": rootfs, "is_root_device": true, "is_read_only": false, "cache_type": "Unsafe", "io_engine": "Sync"}),
            ),
        ),
        (
            "PUT",
            "/drives/data".into(),
            Some(
                json!({"drive_id": "data", "path_on_host": data, "is_root_device": false, "is_read_only": true, "rate_limiter": {"bandwidth": bucket, "ops": bucket}}),
            ),
        ),
        (
            "PUT",
            "/vsock".into(),
            Some(json!({"guest_cid": 3, "uds_path": vsock})),
        ),
        (
            "PUT",
            "/balloon".into(),
            Some(json!({"amount_mib": 64, "deflate_on_oom": true, "stats_polling_interval_s": 1})),
        ),
        ("GET", "/balloon".into(), None),
        ("PUT", "/entropy".into(), Some(json!({}))),
        (
            "PUT",
            "/mmds".into(),
            Some(json!({"latest": {"meta-data": {"instance-id": "i-1"}}})),
        ),
        (
            "PATCH",
            "/mmds".into(),
            Some(json!({"latest": {"meta-data": {"zone": "a"}}})),
        ),
        ("GET", "/mmds".into(), None),
        ("GET", "/vm/config".into(), None),
        (
            "PUT",
            "/actions".into(),
            Some(json!({"action_type": "InstanceStart"})),
        ),
        ("GET", "/".into(), None),
        (
            "PUT",
            "/actions".into(),
            Some(json!({"action_type": "FlushMetrics"})),
        ),
        (
            "PATCH",
            "/drives/data".into(),
            Some(json!({"drive_id": "data", "rate_limiter": {"ops": bucket}})),
        ),
        ("PATCH", "/vm".into(), Some(json!({"state": "Paused"}))),
        ("PATCH", "/vm".into(), Some(json!({"state": "Resumed"}))),
        ("GET", "/vm/config".into(), None),
    ];
    for (method, path, body) in accepted {
        let status = exchange(&spec, &emulator, method, &path, body.clone());
        assert!(
            status < 300,
            "{method} {path} {body:?} was rejected with {status}"
        );
    }

    let rejected: Vec<(&str, String, Option<Value>)> = vec![
        (
            "PUT",
            "/machine-config".into(),
            Some(json!({"vcpu_count": 1, "mem_size_mib": 128})),
        ),
        (
            "PUT",
            "/actions".into(),
            Some(json!({"action_type": "InstanceStart"})),
        ),
        (
            "PUT",
            "/drives/x".into(),
            Some(json!({"drive_id": "x", "path_on_host": data, "is_root_device": false})),
        ),
        (
            "PUT",
            "/network-interfaces/eth0".into(),
            Some(json!({"iface_id": "eth0", "host_dev_name": "tap0"})),
        ),
        (
            "PATCH",
            "/network-interfaces/eth9".into(),
            Some(json!({"iface_id": "eth9"})),
        ),
        ("PUT", "/logger".into(), Some(json!({"level": "Info"}))),
    ];
    for (method, path, body) in rejected {
        let status = exchange(&spec, &emulator, method, &path, body);
        assert_eq!(status, 400, "{method} {path}");
    }
}
