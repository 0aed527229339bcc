//! Feeds arbitrary bytes to the node-config parser; any panic is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = firework_model::parse_node_config(data, "nodes/fuzz.yaml");
});
