//! The desired-state model of Firework: the agent config (`agent.yaml`), resolved node configs
//! (`nodes/<label>.yaml`) and the enricher's input tree (`defaults.yaml`, `services/*.yaml`,
//! `tenants/<id>/*.yaml`), with parsers that keep the Go firework's keys and defaults and
//! validation that reports every problem with its file, field path, line and column.

pub mod agent;
pub mod diagnostic;
pub mod duration;
pub mod names;
pub mod node;
pub mod registry;
pub mod service;
pub mod spec;
pub mod yaml;

mod decode;

pub use diagnostic::{ConfigError, Diagnostic, Parsed, Severity};
pub use duration::GoDuration;
pub use node::{
    NetworkSpec, NodeConfig, NodeConfigRules, Service, parse_node_config, parse_node_config_with,
    to_yaml,
};
