//! Every node-config rule: each case names the field path, line, column and exact message.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use firework_model::{
    ConfigError, Diagnostic, NodeConfigRules, Severity, parse_node_config, parse_node_config_with,
};

/// A valid service that each case changes in one place.
const BASE: &str = "\
services:
  - name: web
    image: /var/lib/images/web.ext4
    kernel: /var/lib/images/vmlinux
    vcpus: 1
    memory_mb: 128
";

fn errors_of(text: &str) -> Vec<Diagnostic> {
    match parse_node_config(text.as_bytes(), "nodes/t.yaml") {
        Ok(parsed) => panic!("expected errors, got {:?}", parsed.value),
        Err(ConfigError::Invalid { diagnostics, .. }) => diagnostics
            .into_iter()
            .filter(|d| d.severity == Severity::Error)
            .collect(),
        Err(other) => panic!("unexpected error {other}"),
    }
}

/// Asserts that `text` has exactly one error, at `path` and `line:column`, with `message`.
fn assert_one_error(text: &str, path: &str, line: usize, column: usize, message: &str) {
    let errors = errors_of(text);
    assert_eq!(errors.len(), 1, "errors: {errors:#?}");
    let error = &errors[0];
    assert_eq!(error.path, path);
    assert_eq!(error.message, message);
    assert_eq!(
        (error.line, error.column),
        (Some(line), Some(column)),
        "{error}"
    );
}

fn with(extra: &str) -> String {
    format!("{BASE}{extra}")
}

#[test]
fn base_is_valid() {
    let parsed = parse_node_config(BASE.as_bytes(), "nodes/t.yaml").unwrap();
    assert_eq!(parsed.value.services.len(), 1);
    assert!(parsed.warnings.is_empty());
}

#[test]
fn service_name_rules() {
    let cases = [
        (
            "Web",
            "invalid service name \"Web\": use 1 to 63 characters of a-z, 0-9 and '-', not starting or ending with '-'",
        ),
        (
            "web_1",
            "invalid service name \"web_1\": use 1 to 63 characters of a-z, 0-9 and '-', not starting or ending with '-'",
        ),
        (
            "-web",
            "invalid service name \"-web\": use 1 to 63 characters of a-z, 0-9 and '-', not starting or ending with '-'",
        ),
        (
            "../etc",
            "invalid service name \"../etc\": use 1 to 63 characters of a-z, 0-9 and '-', not starting or ending with '-'",
        ),
    ];
    for (name, message) in cases {
        let text = BASE.replace("name: web", &format!("name: \"{name}\""));
        assert_one_error(&text, "services[0].name", 2, 11, message);
    }
}

#[test]
fn duplicate_names_rejected() {
    let second = "  - name: web\n    image: /i\n    kernel: /k\n    vcpus: 1\n    memory_mb: 64\n";
    assert_one_error(
        &with(second),
        "services[1].name",
        7,
        11,
        "duplicate service name \"web\": services[0] already uses it",
    );
}

#[test]
fn resource_limits() {
    assert_one_error(
        &BASE.replace("vcpus: 1", "vcpus: 33"),
        "services[0].vcpus",
        5,
        12,
        "invalid vcpus 33: allowed 1 to 32 (Firecracker's limit)",
    );
    assert_one_error(
        &BASE.replace("vcpus: 1", "vcpus: 0"),
        "services[0].vcpus",
        5,
        12,
        "invalid vcpus 0: allowed 1 to 32 (Firecracker's limit)",
    );
    assert_one_error(
        &BASE.replace("memory_mb: 128", "memory_mb: 0"),
        "services[0].memory_mb",
        6,
        16,
        "invalid memory_mb 0: it must be positive",
    );
    assert_one_error(
        &BASE.replace("memory_mb: 128", "memory_mb: -5"),
        "services[0].memory_mb",
        6,
        16,
        "invalid number \"-5\": it must not be negative",
    );
}

#[test]
fn paths_must_be_absolute_without_parent() {
    assert_one_error(
        &BASE.replace("/var/lib/images/web.ext4", "web.ext4"),
        "services[0].image",
        3,
        12,
        "invalid image path \"web.ext4\": use an absolute path",
    );
    assert_one_error(
        &BASE.replace("/var/lib/images/vmlinux", "/var/lib/../vmlinux"),
        "services[0].kernel",
        4,
        13,
        "invalid kernel path \"/var/lib/../vmlinux\": '..' components are not allowed",
    );
}

#[test]
fn required_keys() {
    assert_one_error(
        &BASE.replace("    image: /var/lib/images/web.ext4\n", ""),
        "services[0].image",
        2,
        5,
        "missing required key `image`",
    );
    assert_one_error(
        &BASE.replace("    vcpus: 1\n", ""),
        "services[0].vcpus",
        2,
        5,
        "missing required key `vcpus`",
    );
}

#[test]
fn port_rules() {
    assert_one_error(
        &with("    port_forwards:\n      - host_port: 70000\n        vm_port: 80\n"),
        "services[0].port_forwards[0].host_port",
        8,
        20,
        "invalid port 70000: allowed 1 to 65535",
    );
    assert_one_error(
        &with("    port_forwards:\n      - host_port: 0\n        vm_port: 80\n"),
        "services[0].port_forwards[0].host_port",
        8,
        20,
        "invalid port 0: allowed 1 to 65535",
    );
    assert_one_error(
        &with(
            "    port_forwards:\n      - host_port: 80\n        vm_port: 80\n        protocol: sctp\n",
        ),
        "services[0].port_forwards[0].protocol",
        10,
        19,
        "invalid protocol \"sctp\": allowed tcp or udp",
    );
}

#[test]
fn duplicate_host_port_across_services() {
    let text = "\
services:
  - name: a
    image: /i
    kernel: /k
    vcpus: 1
    memory_mb: 64
    port_forwards:
      - host_port: 8080
        vm_port: 80
  - name: b
    image: /i
    kernel: /k
    vcpus: 1
    memory_mb: 64
    port_forwards:
      - host_port: 8080
        vm_port: 81
      - host_port: 8080
        vm_port: 82
        protocol: udp
";
    assert_one_error(
        text,
        "services[1].port_forwards[0].host_port",
        16,
        9,
        "host port 8080 (tcp) is already forwarded by service \"a\"",
    );
}

#[test]
fn shared_host_ports_allowed_across_services_only() {
    let shared = NodeConfigRules {
        shared_host_ports: true,
    };
    let service = |name: &str, forwards: &str| {
        format!(
            "  - name: {name}\n    image: /i\n    kernel: /k\n    vcpus: 1\n    memory_mb: 64\n    \
             port_forwards:\n{forwards}"
        )
    };
    let once = "      - host_port: 8080\n        vm_port: 80\n";
    let across = format!("services:\n{}{}", service("a", once), service("b", once));
    let parsed = parse_node_config_with(across.as_bytes(), "nodes/t.yaml", shared).unwrap();
    let names: Vec<&str> = parsed
        .value
        .services
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(names, ["a", "b"]);
    assert!(parse_node_config(across.as_bytes(), "nodes/t.yaml").is_err());

    let twice = format!("{once}{once}");
    let within = format!("services:\n{}{}", service("a", once), service("b", &twice));
    let Err(ConfigError::Invalid { diagnostics, .. }) =
        parse_node_config_with(within.as_bytes(), "nodes/t.yaml", shared)
    else {
        panic!("a service that forwards one host port twice was accepted");
    };
    assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
    assert_eq!(
        diagnostics[0].path,
        "services[1].port_forwards[1].host_port"
    );
    assert_eq!(diagnostics[0].line, Some(18));
    assert_eq!(
        diagnostics[0].message,
        "host port 8080 (tcp) is already forwarded by service \"b\""
    );
}

#[test]
fn health_check_rules() {
    let network = "    network: {}\n";
    let cases = [
        (
            "    health_check:\n      type: exec\n      port: 80\n",
            "services[0].health_check.type",
            9,
            13,
            "invalid health check type \"exec\": allowed http or tcp",
        ),
        (
            "    health_check:\n      type: http\n      port: 80\n      path: health\n",
            "services[0].health_check.path",
            11,
            13,
            "invalid path \"health\": an HTTP path starts with '/'",
        ),
        (
            "    health_check:\n      type: tcp\n      port: 80\n      interval: 0s\n",
            "services[0].health_check.interval",
            11,
            17,
            "invalid interval 0s: it must be positive",
        ),
        (
            "    health_check:\n      type: tcp\n      port: 80\n      interval: 5s\n      timeout: 6s\n",
            "services[0].health_check.timeout",
            12,
            16,
            "invalid timeout 6s: it must not exceed interval 5s",
        ),
        (
            "    health_check:\n      type: tcp\n      port: 80\n      retries: 0\n",
            "services[0].health_check.retries",
            11,
            16,
            "invalid retries 0: it must be at least 1",
        ),
        (
            "    health_check:\n      type: tcp\n",
            "services[0].health_check.port",
            9,
            7,
            "missing required key `port`: a health check needs a port (or a target)",
        ),
        (
            "    health_check:\n      type: tcp\n      port: 80\n      interval: 30\n",
            "services[0].health_check.interval",
            11,
            17,
            "invalid duration \"30\": missing unit; write a number with a unit: ns, us, ms, s, m or h (e.g. 500ms, 30s, 1m30s)",
        ),
    ];
    for (block, path, line, column, message) in cases {
        assert_one_error(
            &with(&format!("{network}{block}")),
            path,
            line,
            column,
            message,
        );
    }
}

#[test]
fn http_check_without_path_defaults_with_warning() {
    let text = with("    network: {}\n    health_check:\n      type: http\n      port: 8080\n");
    let parsed = parse_node_config(text.as_bytes(), "nodes/t.yaml").unwrap();
    let check = parsed.value.services[0].health_check.as_ref().unwrap();
    assert_eq!(check.path.as_deref(), Some("/"));
    assert_eq!(check.interval.to_string(), "10s");
    assert_eq!(check.timeout.to_string(), "5s");
    assert_eq!(check.retries, 3);
    assert_eq!(parsed.warnings.len(), 1);
    assert_eq!(parsed.warnings[0].code, "default-applied");
    assert_eq!(parsed.warnings[0].path, "services[0].health_check.path");
}

#[test]
fn health_check_without_network_is_ignored_with_warning() {
    let text = with("    health_check:\n      type: tcp\n      port: 8080\n");
    let parsed = parse_node_config(text.as_bytes(), "nodes/t.yaml").unwrap();
    assert_eq!(parsed.value.services[0].health_check, None);
    assert_eq!(parsed.warnings.len(), 1);
    assert_eq!(parsed.warnings[0].code, "health-check-without-network");
}

#[test]
fn env_and_link_names() {
    assert_one_error(
        &with("    env:\n      1BAD: x\n"),
        "services[0].env.1BAD",
        8,
        13,
        "invalid environment variable name \"1BAD\": use letters, digits and '_', not starting with a digit",
    );
    assert_one_error(
        &with("    links:\n      - service: db\n        env: DB-URL\n        port: 5432\n"),
        "services[0].links[0].env",
        9,
        14,
        "invalid environment variable name \"DB-URL\": use letters, digits and '_', not starting with a digit",
    );
    assert_one_error(
        &with("    node_host_ip_env: \"NODE IP\"\n"),
        "services[0].node_host_ip_env",
        7,
        23,
        "invalid environment variable name \"NODE IP\": use letters, digits and '_', not starting with a digit",
    );
}

#[test]
fn routing_metadata_rules() {
    assert_one_error(
        &with("    metadata:\n      host: \"a.com`) || Host(`b.com\"\n"),
        "services[0].metadata.host",
        8,
        13,
        "invalid host \"a.com`) || Host(`b.com\": each dot-separated label needs 1 to 63 characters of a-z, 0-9 and '-', not starting or ending with '-'",
    );
    assert_one_error(
        &with("    metadata:\n      host: a.example.com\n      subdomain: a\n"),
        "services[0].metadata.subdomain",
        9,
        18,
        "metadata sets both `host` and `subdomain`: choose one",
    );
}

#[test]
fn network_interface_and_mac() {
    assert_one_error(
        &with("    network:\n      interface: this-name-is-too-long\n"),
        "services[0].network.interface",
        8,
        18,
        "invalid interface name \"this-name-is-too-long\": use 1 to 15 characters of letters, digits, '.', '_' and '-', not '.' or '..'",
    );
    assert_one_error(
        &with("    network:\n      guest_mac: AA:FC:00:00:01\n"),
        "services[0].network.guest_mac",
        8,
        18,
        "invalid MAC address \"AA:FC:00:00:01\": write six two-digit hex bytes separated by ':' (e.g. AA:FC:00:00:00:01)",
    );
}

#[test]
fn empty_and_missing_services_are_errors() {
    let cases = [
        (
            "",
            "",
            "the file is empty; write `services: []` to run nothing on this label",
        ),
        (
            "# nothing\n",
            "",
            "the file is empty; write `services: []` to run nothing on this label",
        ),
        (
            "---\n",
            "",
            "the document is empty; write `services: []` to run nothing on this label",
        ),
        (
            "node: a\n",
            "services",
            "missing required key `services`; write `services: []` to run nothing on this label",
        ),
        (
            "services:\n",
            "services",
            "`services` is null; write `services: []` to run nothing on this label",
        ),
    ];
    for (text, path, message) in cases {
        let errors = errors_of(text);
        assert_eq!(errors.len(), 1, "{text:?}: {errors:#?}");
        assert_eq!(errors[0].path, path, "{text:?}");
        assert_eq!(errors[0].message, message, "{text:?}");
    }
}

#[test]
fn explicit_empty_list_is_valid() {
    let parsed = parse_node_config(b"services: []\n", "nodes/t.yaml").unwrap();
    assert!(parsed.value.services.is_empty());
}

#[test]
fn all_errors_reported_not_only_first() {
    let text = "\
services:
  - name: BAD
    image: rel
    kernel: /k
    vcpus: 99
    memory_mb: 0
";
    let paths: Vec<String> = errors_of(text).into_iter().map(|d| d.path).collect();
    assert_eq!(
        paths,
        [
            "services[0].name",
            "services[0].image",
            "services[0].vcpus",
            "services[0].memory_mb"
        ]
    );
}

#[test]
fn unknown_and_ci_only_keys_warn() {
    let text = with("    source_image: docker.io/x:1\n    rootfs_size_mb: 512\n    colour: blue\n");
    let parsed = parse_node_config(text.as_bytes(), "nodes/t.yaml").unwrap();
    let codes: Vec<(&str, &str)> = parsed
        .warnings
        .iter()
        .map(|w| (w.code, w.path.as_str()))
        .collect();
    assert_eq!(
        codes,
        [
            ("ci-only-key", "services[0].source_image"),
            ("ci-only-key", "services[0].rootfs_size_mb"),
            ("unknown-key", "services[0].colour"),
        ]
    );
}

#[test]
fn values_keep_their_text() {
    let text =
        with("    env:\n      FLAG: NO\n      ZIP: 0800\n      VERSION: 1.10\n      EMPTY:\n");
    let parsed = parse_node_config(text.as_bytes(), "nodes/t.yaml").unwrap();
    let env = &parsed.value.services[0].env;
    assert_eq!(env["FLAG"], "NO");
    assert_eq!(env["ZIP"], "0800");
    assert_eq!(env["VERSION"], "1.10");
    assert_eq!(env["EMPTY"], "");
}

#[test]
fn invalid_yaml_reports_position() {
    let errors = errors_of("services:\n  - name: [unclosed\n");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].code, "invalid-yaml");
    assert_eq!(errors[0].line, Some(3));
}

#[test]
fn duplicate_keys_rejected() {
    assert_one_error(
        &BASE.replace("    vcpus: 1\n", "    vcpus: 1\n    vcpus: 2\n"),
        "services[0].vcpus",
        6,
        5,
        "duplicate key `vcpus`: each key may appear once",
    );
}

#[test]
fn host_ip_must_be_an_address() {
    assert_one_error(
        &format!("host_ip: 10.0.1\n{BASE}"),
        "host_ip",
        1,
        10,
        "invalid host_ip \"10.0.1\": write an IP address such as 10.0.1.5",
    );
}
