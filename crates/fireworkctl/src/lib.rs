//! The logic behind `fireworkctl`'s subcommands; `main.rs` only parses arguments and prints.

pub mod doctor;
pub mod render;
pub mod status;
pub mod validate;
