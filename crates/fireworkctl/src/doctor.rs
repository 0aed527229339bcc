//! `fireworkctl doctor`: host checks before the agent runs guests.

use std::path::PathBuf;

use firework_model::ConfigError;
use firework_model::agent::{AgentConfig, load_agent_config};
use firework_net::preflight::{Check, PreflightConfig, preflight};

/// Builds the preflight inputs from an agent config.
pub fn preflight_config(config: &AgentConfig) -> PreflightConfig {
    PreflightConfig {
        firecracker_binary: config.firecracker_bin.clone(),
        bridge: (!config.vm_bridge.is_empty()).then(|| config.vm_bridge.clone()),
        network_setup: config.enable_network_setup,
    }
}

/// Runs the checks for the agent config at `path`, or for the defaults when `path` is `None`.
pub fn run_checks(path: Option<&str>) -> Result<Vec<Check>, ConfigError> {
    let hostname = || {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_string())
    };
    let config = match path {
        Some(path) => preflight_config(&load_agent_config(path, &hostname)?.value),
        None => PreflightConfig {
            firecracker_binary: PathBuf::from("/usr/bin/firecracker"),
            bridge: Some("br-firework".to_string()),
            network_setup: true,
        },
    };
    Ok(preflight(&config))
}
