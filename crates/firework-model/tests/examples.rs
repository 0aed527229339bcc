//! The bundled examples parse without errors, and node configs survive a YAML round trip.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use firework_model::agent::parse_agent_config;
use firework_model::spec::load_input_tree;
use firework_model::{parse_node_config, to_yaml};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no examples in {}", dir.display());
    files
}

#[test]
fn agent_examples_are_valid_without_warnings() {
    for file in yaml_files(&examples().join("agent")) {
        let bytes = std::fs::read(&file).unwrap();
        let parsed = parse_agent_config(&bytes, &file.display().to_string(), &|| None)
            .unwrap_or_else(|e| panic!("{e}: {:#?}", e.diagnostics()));
        assert!(
            parsed.warnings.is_empty(),
            "{}: {:#?}",
            file.display(),
            parsed.warnings
        );
    }
}

#[test]
fn node_examples_round_trip() {
    for file in yaml_files(&examples().join("nodes")) {
        let name = file.display().to_string();
        let bytes = std::fs::read(&file).unwrap();
        let parsed = parse_node_config(&bytes, &name)
            .unwrap_or_else(|e| panic!("{e}: {:#?}", e.diagnostics()));
        assert!(parsed.warnings.is_empty(), "{name}: {:#?}", parsed.warnings);
        let written = to_yaml(&parsed.value).unwrap();
        let again = parse_node_config(written.as_bytes(), "written.yaml").unwrap_or_else(|e| {
            panic!(
                "{name} written back:\n{written}\n{e}: {:#?}",
                e.diagnostics()
            )
        });
        assert_eq!(again.value, parsed.value, "{name} written back:\n{written}");
    }
}

#[test]
fn input_example_is_valid() {
    let tree = load_input_tree(&examples().join("input")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(tree.services.len(), 3);
    let tenants: Vec<&str> = tree.tenants.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(tenants, ["acme", "globex"]);
    // billing.yaml carries the CI-only key source_image on purpose.
    let codes: Vec<&str> = tree.warnings.iter().map(|w| w.code).collect();
    assert_eq!(codes, ["ci-only-key"]);
}
