//! Arbitrary input never panics a parser: it is accepted or rejected with diagnostics.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use firework_model::agent::parse_agent_config;
use firework_model::spec::{SpecKind, parse_defaults, parse_spec};
use firework_model::{GoDuration, parse_node_config};
use proptest::prelude::*;

/// YAML-looking text built from the tokens the parsers care about, so that the decoder (not
/// only the YAML parser) sees deep and odd structures.
fn yaml_like() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("services:".to_string()),
        Just("- name: web".to_string()),
        Just("  image: /i".to_string()),
        Just("  vcpus: 99999999999999999999".to_string()),
        Just("  health_check: {type: http, port: 0}".to_string()),
        Just("  env: {A: [1, 2], 1B: x}".to_string()),
        Just("  port_forwards: [{host_port: -1}]".to_string()),
        Just("<<: *a".to_string()),
        Just("a: &a {b: 1}".to_string()),
        Just("  network: {interface: ''}".to_string()),
        Just("? [complex]\n: key".to_string()),
        "[ -~]{0,20}",
    ];
    prop::collection::vec(token, 0..12).prop_map(|lines| lines.join("\n"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn node_parser_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse_node_config(&bytes, "nodes/x.yaml");
    }

    #[test]
    fn node_parser_never_panics_on_yaml_like_text(text in yaml_like()) {
        let _ = parse_node_config(text.as_bytes(), "nodes/x.yaml");
    }

    #[test]
    fn agent_parser_never_panics(text in yaml_like()) {
        let _ = parse_agent_config(text.as_bytes(), "agent.yaml", &|| None);
    }

    #[test]
    fn spec_parsers_never_panic(text in yaml_like()) {
        let _ = parse_spec(text.as_bytes(), "services/x.yaml", SpecKind::Service);
        let _ = parse_spec(text.as_bytes(), "tenants/t/x.yaml", SpecKind::Tenant);
        let _ = parse_defaults(text.as_bytes(), "defaults.yaml");
    }

    #[test]
    fn duration_parser_never_panics(text in "[0-9.a-zµ+-]{0,24}") {
        let _ = text.parse::<GoDuration>();
    }

    #[test]
    fn valid_node_configs_are_accepted(
        name in "[a-z][a-z0-9-]{0,20}[a-z0-9]",
        vcpus in 1u32..=32,
        memory in 1u32..100_000,
        port in 1u16..=65535,
    ) {
        let text = format!(
            "services:\n  - name: {name}\n    image: /i\n    kernel: /k\n    vcpus: {vcpus}\n    memory_mb: {memory}\n    port_forwards:\n      - host_port: {port}\n        vm_port: 80\n"
        );
        let parsed = parse_node_config(text.as_bytes(), "nodes/x.yaml").unwrap();
        prop_assert_eq!(&parsed.value.services[0].name, &name);
        prop_assert_eq!(parsed.value.services[0].vcpus, vcpus);
        prop_assert_eq!(parsed.value.services[0].port_forwards[0].host_port, port);
    }
}
