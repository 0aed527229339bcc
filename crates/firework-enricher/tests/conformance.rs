//! Every applicable `enricher-*` vector of the Go firework, read in place.
//!
//! Vectors whose behaviour we change on purpose assert our documented behaviour instead,
//! with the reason next to the check.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use firework_enricher::lambda::{EventKind, classify};
use firework_enricher::render::{RenderOptions, Rendered, render_dir};
use firework_enricher::serve::webhook::{Secret, SignatureError, verify_signature};
use firework_enricher::{crossnode, publish, tap};
use firework_model::node::{NodeConfig, Service, parse_node_config};
use firework_model::service::CrossNodeLink;
use serde_json::Value;

fn vectors_root() -> Option<PathBuf> {
    let root =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/go-firework");
    if root.is_dir() {
        Some(root)
    } else {
        eprintln!(
            "skipping: conformance vectors not found at {}",
            root.display()
        );
        None
    }
}

fn enricher_vectors(root: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("enricher-"))
        })
        .collect();
    dirs.sort();
    dirs
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_saphyr::from_str(&text).unwrap()
}

fn key_phrases(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("Key phrase"))
        .unwrap_or_else(|| panic!("no key phrase in {}", path.display()));
    let quoted = line.split('"').skip(1).step_by(2).map(str::to_string);
    // "Key phrase:" has one phrase, later quotes are remarks; "Key phrases" lists several.
    if line.starts_with("Key phrases") {
        quoted.collect()
    } else {
        quoted.take(1).collect()
    }
}

/// Per-file routing rules are checked by the model's spec parser when the tree is loaded,
/// worded its own way; upstream's tests only check that an error occurs. These are the
/// model's phrases for the same conditions.
fn our_phrase(phrase: &str) -> &str {
    match phrase {
        "cannot set both metadata.host and metadata.subdomain" => {
            "metadata sets both `host` and `subdomain`: choose one"
        }
        "contains invalid characters" => "invalid host \"a`b.example.com\"",
        "must be exactly one DNS label" => "invalid subdomain \"Bad.Label\"",
        other => other,
    }
}

fn name(dir: &Path) -> String {
    dir.file_name().unwrap().to_string_lossy().into_owned()
}

/// Compares `expected` with `actual` where only the listed fields count. `null` means absent
/// or empty, `<present>` means present.
fn partial_match(expected: &Value, actual: Option<&Value>, at: &str) {
    match expected {
        Value::Null => assert!(
            actual.is_none_or(|v| v.is_null()
                || v.as_str() == Some("")
                || v.as_object().is_some_and(|m| m.is_empty())
                || v.as_array().is_some_and(|a| a.is_empty())),
            "{at}: expected absent, got {actual:?}"
        ),
        Value::String(s) if s == "<present>" => assert!(actual.is_some(), "{at}: missing"),
        Value::Object(map) => {
            // A map left out of the output is an empty map.
            let empty = Value::Object(serde_json::Map::new());
            let actual = actual.unwrap_or(&empty);
            for (key, value) in map {
                partial_match(value, actual.get(key), &format!("{at}.{key}"));
            }
        }
        Value::Array(items) => {
            let actual = actual
                .and_then(Value::as_array)
                .unwrap_or_else(|| panic!("{at}: missing list"));
            assert_eq!(items.len(), actual.len(), "{at}: length");
            for (i, item) in items.iter().enumerate() {
                partial_match(item, actual.get(i), &format!("{at}[{i}]"));
            }
        }
        Value::Number(n) => {
            let actual = actual.unwrap_or_else(|| panic!("{at}: missing"));
            assert_eq!(actual.as_f64(), n.as_f64(), "{at}");
        }
        other => {
            let actual = actual.unwrap_or_else(|| panic!("{at}: missing"));
            assert_eq!(actual, other, "{at}");
        }
    }
}

fn all_services(rendered: &Rendered) -> BTreeMap<String, Value> {
    rendered
        .nodes
        .values()
        .flat_map(|c| c.services.iter())
        .map(|s| (s.name.clone(), serde_json::to_value(s).unwrap()))
        .collect()
}

/// The enricher writes `network: {}` and leaves the TAP name to the agent (a choice
/// documented in docs/enricher.md). Where a vector expects an interface name, the naming rule
/// is checked on the helper that keeps it and the output is checked to carry no interface.
fn strip_interface(service: &str, expected: &mut Value, actual: &Value) {
    if let Some(interface) = expected
        .get_mut("network")
        .and_then(Value::as_object_mut)
        .and_then(|n| n.remove("interface"))
    {
        assert_eq!(Some(tap::tap_name(service).as_str()), interface.as_str());
        assert!(actual["network"].get("interface").is_none());
    }
}

fn check_services(expected: &Value, rendered: &Rendered, full: bool, vector: &str) {
    let services = all_services(rendered);
    for item in expected.as_array().unwrap() {
        let service = item["name"].as_str().unwrap();
        let actual = services
            .get(service)
            .unwrap_or_else(|| panic!("{vector}: no service {service}"));
        let mut item = item.clone();
        strip_interface(service, &mut item, actual);
        partial_match(&item, Some(actual), &format!("{vector}: {service}"));
        if full {
            // Lists are compared whole by `partial_match`; maps need the key count too.
            for field in ["env", "metadata"] {
                let want = item.get(field).and_then(Value::as_object);
                let got = actual.get(field).and_then(Value::as_object);
                if let (Some(want), Some(got)) = (want, got) {
                    assert_eq!(want.len(), got.len(), "{vector}: {service}.{field}");
                }
            }
        }
    }
}

/// Upstream keeps a health check on a service without networking; the agent cannot probe
/// such a service and its node config parser drops the check with a warning, so we leave it
/// out and warn. These vectors are checked twice: as written, for the warning and the
/// missing check, and with `network: true` added, for the merge of the check itself.
fn check_health_check_without_network(dir: &Path, expected: &Value, options: &RenderOptions) {
    let vector = name(dir);
    let rendered = render_dir(&dir.join("input"), options).unwrap();
    for item in expected["services"].as_array().unwrap() {
        let service = item["name"].as_str().unwrap();
        let actual = &all_services(&rendered)[service];
        assert!(actual.get("health_check").is_none(), "{vector}");
        assert!(
            rendered
                .warnings
                .iter()
                .any(|w| w.code == "health-check-without-network"
                    && w.message
                        == format!("service {service} has health check but network is disabled")),
            "{vector}: {:?}",
            rendered.warnings
        );
    }
    let copy = tempfile::tempdir().unwrap();
    copy_tree(&dir.join("input"), copy.path());
    for entry in std::fs::read_dir(copy.path().join("services")).unwrap() {
        let path = entry.unwrap().path();
        let mut text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("network:"));
        text.push_str("network: true\n");
        std::fs::write(&path, text).unwrap();
    }
    check_render_ok_at(copy.path(), &vector, expected, options);
}

fn copy_tree(from: &Path, to: &Path) {
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

fn check_render_ok(dir: &Path, expected: &Value, options: &RenderOptions) {
    check_render_ok_at(&dir.join("input"), &name(dir), expected, options);
}

fn check_render_ok_at(input: &Path, vector: &str, expected: &Value, options: &RenderOptions) {
    let vector = vector.to_string();
    let rendered = render_dir(input, options)
        .unwrap_or_else(|e| panic!("{vector}: {e}: {:?}", e.diagnostics()));
    let full = expected["assertion"].as_str() == Some("full");
    if let Some(count) = expected.get("node_config_count") {
        assert_eq!(
            rendered.nodes.len() as u64,
            count.as_u64().unwrap(),
            "{vector}"
        );
    }
    if let Some(configs) = expected.get("node_configs").and_then(Value::as_array) {
        for config in configs {
            let node = config["node"].as_str().unwrap();
            let actual = rendered
                .nodes
                .get(node)
                .unwrap_or_else(|| panic!("{vector}: no node {node}"));
            if let Some(count) = config.get("service_count") {
                assert_eq!(actual.services.len() as u64, count.as_u64().unwrap());
            }
            if let Some(names) = config.get("service_names") {
                let got: Vec<&str> = actual.services.iter().map(|s| s.name.as_str()).collect();
                let want: Vec<&str> = names
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap())
                    .collect();
                assert_eq!(got, want, "{vector}");
            }
            if let Some(services) = config.get("services") {
                check_services(services, &rendered, full, &vector);
            }
        }
        // Upstream processes node types in sorted order; ours are sorted too.
        let names: Vec<&String> = rendered.nodes.keys().collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
    }
    if let Some(services) = expected.get("services") {
        check_services(services, &rendered, full, &vector);
    }
    for key in ["expanded_services_exactly", "service_names_exactly"] {
        if let Some(names) = expected.get(key) {
            let mut want: Vec<String> = names
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect();
            want.sort();
            let mut got: Vec<String> = if key == "expanded_services_exactly" {
                rendered.tenant_services.clone()
            } else {
                all_services(&rendered).into_keys().collect()
            };
            got.sort();
            assert_eq!(got, want, "{vector}: {key}");
        }
    }
    if let Some(warnings) = expected.get("warnings") {
        // `warnings: []` means none at all.
        assert_eq!(warnings.as_array().unwrap().len(), 0);
        assert!(
            rendered.warnings.is_empty(),
            "{vector}: {:?}",
            rendered.warnings
        );
    }
    if let Some(warnings) = expected.get("warnings_include") {
        for warning in warnings.as_array().unwrap() {
            let found = rendered.warnings.iter().any(|w| {
                warning
                    .get("message")
                    .is_none_or(|m| w.message == m.as_str().unwrap())
                    // Our codes are kebab-case, upstream's snake_case.
                    && warning
                        .get("code")
                        .is_none_or(|c| w.code == c.as_str().unwrap().replace('_', "-"))
            });
            assert!(found, "{vector}: {warning} not in {:?}", rendered.warnings);
        }
    }
    if let Some(properties) = expected.get("properties").and_then(Value::as_array) {
        for property in properties {
            let names: Vec<&str> = property["for"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            let taps: Vec<String> = names.iter().map(|n| tap::tap_name(n)).collect();
            for t in &taps {
                assert!(t.len() <= 15 && t.starts_with("tap-"), "{t}");
            }
            assert_ne!(taps[0], taps[1]);
            let again = render_dir(input, options).unwrap();
            assert_eq!(again.files, rendered.files, "{vector}: deterministic");
        }
    }
}

fn check_render_error(dir: &Path, options: &RenderOptions) {
    let vector = name(dir);
    let error = match render_dir(&dir.join("input"), options) {
        Ok(_) => panic!("{vector}: render succeeded"),
        Err(error) => error,
    };
    let mut text = error.to_string();
    for diagnostic in error.diagnostics() {
        text.push('\n');
        text.push_str(&diagnostic.to_string());
    }
    for phrase in key_phrases(&dir.join("expected-error.txt")) {
        let phrase = our_phrase(&phrase);
        assert!(text.contains(phrase), "{vector}: {phrase:?} not in\n{text}");
    }
}

fn configcheck(dir: &Path) {
    let flags = std::fs::read_to_string(dir.join("input/flags.txt")).unwrap_or_default();
    let mut runs = Vec::new();
    if dir.join("expected.yaml").is_file() {
        let expected = yaml(&dir.join("expected.yaml"));
        match expected.get("runs").and_then(Value::as_array) {
            Some(list) => {
                for run in list {
                    let strict = run["flags"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|f| f == "--require-remote-routing");
                    runs.push((
                        strict,
                        run["outcome"] == "ok",
                        run.get("key_phrase").cloned(),
                    ));
                }
            }
            None => runs.push((
                flags.contains("--require-remote-routing"),
                expected["outcome"] == "ok",
                None,
            )),
        }
    } else {
        runs.push((flags.contains("--require-remote-routing"), false, None));
    }
    for (strict, ok, phrase) in runs {
        let options = RenderOptions {
            require_remote_routing: strict,
            ..RenderOptions::default()
        };
        let result = render_dir(&dir.join("input"), &options);
        assert_eq!(result.is_ok(), ok, "{}: strict={strict}", name(dir));
        if let (Err(error), Some(phrase)) = (&result, phrase) {
            let phrase = phrase.as_str().unwrap().replace('_', "-");
            assert!(
                error.diagnostics().iter().any(|d| d.code == phrase),
                "{:?}",
                error.diagnostics()
            );
        }
        if let (Err(error), true) = (&result, dir.join("expected-error.txt").is_file()) {
            let phrases = key_phrases(&dir.join("expected-error.txt"));
            let text: String = error.diagnostics().iter().map(|d| d.to_string()).collect();
            for phrase in phrases {
                let phrase = our_phrase(&phrase);
                assert!(text.contains(phrase), "{phrase} in {text}");
            }
        }
    }
}

fn placeholder_service(name: &str) -> Service {
    Service {
        name: name.to_string(),
        image: "/i".to_string(),
        kernel: "/k".to_string(),
        vcpus: 1,
        memory_mb: 128,
        kernel_args: None,
        network: None,
        port_forwards: Vec::new(),
        health_check: None,
        env: BTreeMap::new(),
        links: Vec::new(),
        metadata: BTreeMap::new(),
        anti_affinity_group: None,
        cross_node_links: Vec::new(),
        node_host_ip_env: None,
        node_type: None,
    }
}

fn crossnode_vector(dir: &Path) {
    let configs = yaml(&dir.join("input/node-configs.yaml"));
    let host_ips = if dir.join("input/host-ips.yaml").is_file() {
        yaml(&dir.join("input/host-ips.yaml"))
    } else {
        Value::Null
    };
    let mut nodes: Vec<NodeConfig> = Vec::new();
    for config in configs.as_array().unwrap() {
        let node = config["node"].as_str().unwrap().to_string();
        let ip_text = config
            .get("host_ip")
            .or_else(|| host_ips.get(&node))
            .and_then(Value::as_str)
            .unwrap_or("");
        let services = config["services"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let mut service = placeholder_service(s["name"].as_str().unwrap());
                if let Some(env) = s.get("env").and_then(Value::as_object) {
                    for (k, v) in env {
                        service
                            .env
                            .insert(k.clone(), v.as_str().unwrap().to_string());
                    }
                }
                for link in s
                    .get("cross_node_links")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    service.cross_node_links.push(CrossNodeLink {
                        service: link["service"].as_str().unwrap().to_string(),
                        env: link["env"].as_str().unwrap().to_string(),
                        host_port: link["host_port"].as_u64().unwrap() as u16,
                        protocol: link
                            .get("protocol")
                            .and_then(Value::as_str)
                            .map(String::from),
                    });
                }
                service
            })
            .collect();
        nodes.push(NodeConfig {
            node: Some(node),
            host_ip: ip_text.parse().ok(),
            source_commit: None,
            services,
        });
    }
    crossnode::resolve(&mut nodes);
    let expected = yaml(&dir.join("expected.yaml"));
    for item in expected["services"].as_array().unwrap() {
        let service = nodes
            .iter()
            .flat_map(|n| n.services.iter())
            .find(|s| s.name == item["name"].as_str().unwrap())
            .unwrap();
        let actual = serde_json::to_value(service).unwrap();
        partial_match(item, Some(&actual), &name(dir));
    }
}

fn output_vector(dir: &Path) {
    let nodes = dir.join("input/nodes");
    for entry in std::fs::read_dir(&nodes).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let result = parse_node_config(&bytes, "node.yaml");
        if dir.join("expected-error.txt").is_file() {
            // The agent's parser words it as a missing required key at services[0].kernel
            // instead of upstream's "service web: missing kernel".
            let error = result.unwrap_err();
            assert!(
                error
                    .diagnostics()
                    .iter()
                    .any(|d| d.is_error() && d.path == "services[0].kernel"),
                "{error}"
            );
        } else {
            result.unwrap();
        }
    }
}

fn event_kind_vector(dir: &Path) {
    let expected = yaml(&dir.join("expected.yaml"));
    for (file, scheduled) in expected["scheduled"].as_object().unwrap() {
        let text = std::fs::read_to_string(dir.join("input/events").join(file)).unwrap();
        let event: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            classify(&event) == EventKind::Scheduled,
            scheduled.as_bool().unwrap(),
            "{file}"
        );
    }
}

fn signature_vector(dir: &Path) {
    let input = dir.join("input");
    let secret = Secret::new(std::fs::read(input.join("secret.txt")).unwrap()).unwrap();
    let body = std::fs::read(input.join("body.bin")).unwrap();
    let headers = yaml(&input.join("headers.yaml"));
    let header = headers.as_object().and_then(|m| {
        m.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("x-hub-signature-256"))
            .map(|(_, v)| v.as_str().unwrap().to_string())
    });
    let result = verify_signature(&secret, header.as_deref(), &body);
    if dir.join("expected-error.txt").is_file() {
        let error = result.unwrap_err();
        for phrase in key_phrases(&dir.join("expected-error.txt")) {
            assert!(error.to_string().contains(&phrase));
        }
        let missing = name(dir).ends_with("missing");
        assert_eq!(error == SignatureError::Missing, missing);
    } else {
        result.unwrap();
    }
}

fn object_keys_vector(dir: &Path) {
    let expected = yaml(&dir.join("expected.yaml"));
    let cases = yaml(&dir.join("input/cases.yaml"));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for case in cases.as_array().unwrap() {
        let store = std::sync::Arc::new(object_store::memory::InMemory::new());
        let target = publish::Target::Object {
            store: store.clone(),
            prefix: case["prefix"]
                .as_str()
                .unwrap()
                .trim_matches('/')
                .to_string(),
            url: "memory".to_string(),
        };
        let node = case["node"].as_str().unwrap();
        runtime
            .block_on(target.put(&format!("nodes/{node}.yaml"), b"services: []\n"))
            .unwrap();
        let keys: Vec<String> = runtime.block_on(async {
            use futures::TryStreamExt;
            use object_store::ObjectStore;
            store
                .list(None)
                .map_ok(|m| m.location.to_string())
                .try_collect()
                .await
                .unwrap()
        });
        let want = expected["keys"][case["name"].as_str().unwrap()]
            .as_str()
            .unwrap();
        assert_eq!(keys, vec![want.to_string()]);
    }
}

/// Upstream deletes every `nodes/*.yaml` it did not render, including files it never wrote;
/// we delete only files recorded in our manifest. The seeded listing therefore keeps
/// `nodes/backend.yaml`; seeded through an earlier publish it is deleted.
fn deletes_stale_vector(dir: &Path) {
    let expected = yaml(&dir.join("expected.yaml"));
    let existing = yaml(&dir.join("input/existing-keys.yaml"));
    let configs = yaml(&dir.join("input/node-configs.yaml"));
    let files: BTreeMap<String, Vec<u8>> = configs
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let node = c["node"].as_str().unwrap();
            (format!("nodes/{node}.yaml"), b"services: []\n".to_vec())
        })
        .collect();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let out = tempfile::tempdir().unwrap();
    for key in existing.as_array().unwrap() {
        let path = out.path().join(key.as_str().unwrap());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"foreign\n").unwrap();
    }
    let target = publish::Target::Local(out.path().to_path_buf());
    let report = runtime
        .block_on(publish::publish(&target, &files, &Default::default()))
        .unwrap();
    for key in expected["puts_include"].as_array().unwrap() {
        assert!(report.written.contains(&key.as_str().unwrap().to_string()));
    }
    assert!(report.deleted.is_empty(), "foreign files are never deleted");
    for key in expected["untouched"].as_array().unwrap() {
        assert_eq!(
            std::fs::read(out.path().join(key.as_str().unwrap())).unwrap(),
            b"foreign\n"
        );
    }
    assert!(out.path().join("nodes/backend.yaml").is_file());

    // Seeded through an earlier publish, the stale file is ours and goes.
    let seeded = tempfile::tempdir().unwrap();
    let target = publish::Target::Local(seeded.path().to_path_buf());
    let mut earlier = files.clone();
    earlier.insert("nodes/backend.yaml".to_string(), b"services: []\n".to_vec());
    runtime
        .block_on(publish::publish(&target, &earlier, &Default::default()))
        .unwrap();
    let report = runtime
        .block_on(publish::publish(&target, &files, &Default::default()))
        .unwrap();
    let deletes: Vec<&str> = expected["deletes_exactly"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(report.deleted, deletes);
    assert!(!seeded.path().join("nodes/backend.yaml").exists());
}

#[test]
fn every_applicable_enricher_vector() {
    let Some(root) = vectors_root() else { return };
    let mut ran = 0;
    for dir in enricher_vectors(&root) {
        let vector = name(&dir);
        if vector.contains("volume") {
            eprintln!("{vector}: skipped, persistent volumes are not implemented yet");
            continue;
        }
        let input = dir.join("input");
        if vector.starts_with("enricher-configcheck-") {
            configcheck(&dir);
        } else if input.join("node-configs.yaml").is_file() && vector.contains("crossnode") {
            crossnode_vector(&dir);
        } else if vector == "enricher-writer-deletes-stale" {
            deletes_stale_vector(&dir);
        } else if vector == "enricher-writer-object-keys" {
            object_keys_vector(&dir);
        } else if input.join("nodes").is_dir() {
            output_vector(&dir);
        } else if input.join("events").is_dir() {
            event_kind_vector(&dir);
        } else if input.join("body.bin").is_file() {
            signature_vector(&dir);
        } else if dir.join("expected-error.txt").is_file() {
            check_render_error(&dir, &RenderOptions::default());
        } else if vector.starts_with("enricher-defaults-healthcheck") {
            let expected = yaml(&dir.join("expected.yaml"));
            check_health_check_without_network(&dir, &expected, &RenderOptions::default());
        } else {
            let expected = yaml(&dir.join("expected.yaml"));
            check_render_ok(&dir, &expected, &RenderOptions::default());
        }
        ran += 1;
    }
    eprintln!("ran {ran} enricher vectors");
    assert!(ran >= 55, "only {ran} vectors ran");
}
