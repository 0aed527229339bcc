//! Contract test: every request the emulator accepts and every reply it returns, checked
//! against Firecracker's OpenAPI (Swagger 2.0) file. A small validator over serde_json
//! values resolves `$ref`s and checks required fields, types, enums, integer bounds and
//! `additionalProperties` where the file sets it.
//!
//! The OpenAPI file is read in place from the shared reference folder next to the
//! repository. When that folder is absent, the test prints a skip reason and returns.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;

use common::Emulator;
use serde_json::{Value, json};

fn spec_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/firecracker/firecracker-api.yaml")
}

fn load_spec() -> Option<Value> {
    let path = spec_path();
    if !path.exists() {
        eprintln!("skipping: OpenAPI file {} not found", path.display());
        return None;
    }
    let text = std::fs::read_to_string(&path).unwrap();
    Some(serde_saphyr::from_str::<Value>(&text).expect("parse the OpenAPI YAML"))
}

/// Where null is accepted for a property the schema does not require.
#[derive(Clone, Copy, PartialEq)]
enum Nulls {
    /// Requests: a null is a type error, as Firecracker's decoder would mostly treat it.
    Reject,
    /// Replies: Firecracker serialises unset optional fields as `null` in `GET /vm/config`
    /// although the file does not mark them nullable.
    AllowForOptional,
}

struct Validator<'a> {
    spec: &'a Value,
    nulls: Nulls,
    /// Skips `required` at the top level. `PATCH /machine-config` reuses the full
    /// `MachineConfiguration` schema in the file, but its description and Firecracker
    /// accept any subset of the fields.
    partial: bool,
}

impl Validator<'_> {
    fn resolve<'s>(&'s self, schema: &'s Value) -> &'s Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(reference) => {
                let name = reference
                    .strip_prefix("#/definitions/")
                    .unwrap_or_else(|| panic!("unsupported $ref {reference}"));
                let target = &self.spec["definitions"][name];
                assert!(!target.is_null(), "unresolved $ref {reference}");
                self.resolve(target)
            }
            None => schema,
        }
    }

    fn validate(&self, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
        let schema = self.resolve(schema);
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
            let matches = allowed.iter().any(|candidate| {
                candidate == value
                    || candidate
                        .as_str()
                        .is_some_and(|c| Some(c) == value.as_str())
                    || (candidate.is_number() && value.as_str() == Some(&candidate.to_string()))
            });
            if !matches {
                errors.push(format!("{at}: {value} is not one of {allowed:?}"));
            }
        }
        let Some(kind) = schema.get("type").and_then(Value::as_str) else {
            if schema.get("properties").is_some() {
                self.validate_object(schema, value, at, errors);
            }
            return;
        };
        match kind {
            "object" => self.validate_object(schema, value, at, errors),
            "string" if !value.is_string() => {
                errors.push(format!("{at}: expected a string, got {value}"))
            }
            "boolean" if !value.is_boolean() => {
                errors.push(format!("{at}: expected a boolean, got {value}"))
            }
            "number" if !value.is_number() => {
                errors.push(format!("{at}: expected a number, got {value}"))
            }
            "integer" => {
                if !(value.is_i64() || value.is_u64()) {
                    errors.push(format!("{at}: expected an integer, got {value}"));
                    return;
                }
                let number = value.as_f64().unwrap();
                if let Some(minimum) = schema.get("minimum").and_then(Value::as_f64)
                    && number < minimum
                {
                    errors.push(format!("{at}: {number} is below the minimum {minimum}"));
                }
                if let Some(maximum) = schema.get("maximum").and_then(Value::as_f64)
                    && number > maximum
                {
                    errors.push(format!("{at}: {number} is above the maximum {maximum}"));
                }
            }
            "array" => match value.as_array() {
                Some(items) => {
                    for (index, item) in items.iter().enumerate() {
                        self.validate(&schema["items"], item, &format!("{at}[{index}]"), errors);
                    }
                }
                None => errors.push(format!("{at}: expected an array, got {value}")),
            },
            _ => {}
        }
    }

    fn validate_object(&self, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
        let Some(object) = value.as_object() else {
            errors.push(format!("{at}: expected an object, got {value}"));
            return;
        };
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|names| names.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let skip_required = self.partial && !at.contains('.') && !at.contains('[');
        for name in &required {
            if !skip_required && !object.contains_key(*name) {
                errors.push(format!("{at}: missing required field {name}"));
            }
        }
        let properties = schema.get("properties").and_then(Value::as_object);
        for (key, item) in object {
            let child = format!("{at}.{key}");
            match properties.and_then(|properties| properties.get(key)) {
                Some(_)
                    if item.is_null()
                        && self.nulls == Nulls::AllowForOptional
                        && !required.contains(&key.as_str()) => {}
                Some(property) => self.validate(property, item, &child, errors),
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => {
                        errors.push(format!("{child}: property not allowed"));
                    }
                    Some(extra) if extra.is_object() => self.validate(extra, item, &child, errors),
                    _ => {}
                },
            }
        }
    }
}

/// Finds the operation for a concrete path such as `/drives/rootfs`.
fn operation<'s>(spec: &'s Value, method: &str, path: &str) -> Option<(&'s str, &'s Value)> {
    let paths = spec["paths"].as_object()?;
    let segments: Vec<&str> = path.split('/').collect();
    paths.iter().find_map(|(template, item)| {
        let parts: Vec<&str> = template.split('/').collect();
        let matches = parts.len() == segments.len()
            && parts
                .iter()
                .zip(&segments)
                .all(|(part, segment)| part.starts_with('{') || part == segment);
        let op = item.get(method.to_ascii_lowercase())?;
        matches.then_some((template.as_str(), op))
    })
}

fn body_schema(op: &Value) -> Option<&Value> {
    op.get("parameters")?
        .as_array()?
        .iter()
        .find(|parameter| parameter["in"] == "body")
        .map(|parameter| &parameter["schema"])
}

/// Sends a request and checks it and its reply against the file; returns the status.
fn exchange(
    spec: &Value,
    emulator: &Emulator,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> u16 {
    let text = body.as_ref().map(Value::to_string);
    let response = emulator.request(method, path, text.as_deref());
    let (template, op) = operation(spec, method, path)
        .unwrap_or_else(|| panic!("{method} {path} is not in the OpenAPI file"));

    let mut errors = Vec::new();
    if response.status < 300
        && let Some(body) = &body
    {
        let schema = body_schema(op).unwrap_or_else(|| panic!("{method} {template} takes no body"));
        let partial = method == "PATCH" && template == "/machine-config";
        Validator {
            spec,
            nulls: Nulls::Reject,
            partial,
        }
        .validate(schema, body, "request", &mut errors);
    }

    let responses = &op["responses"];
    let declared = responses
        .get(response.status.to_string())
        .or_else(|| responses.get("default"))
        .unwrap_or_else(|| {
            panic!(
                "{method} {template}: status {} not declared",
                response.status
            )
        });
    match declared.get("schema") {
        Some(schema) => {
            let value: Value = serde_json::from_str(&response.body).unwrap_or_else(|e| {
                panic!(
                    "{method} {path}: reply is not JSON ({e}): {}",
                    response.body
                )
            });
            Validator {
                spec,
                nulls: Nulls::AllowForOptional,
                partial: false,
            }
            .validate(schema, &value, "reply", &mut errors);
        }
        None => assert!(
            response.body.is_empty(),
            "{method} {path}: {} must have no body",
            response.status
        ),
    }
    assert!(
        errors.is_empty(),
        "{method} {path} ({}): {errors:#?}",
        response.status
    );
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
