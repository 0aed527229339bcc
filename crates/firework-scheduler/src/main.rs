//! `firework-scheduler`: print the placement of rendered services onto live nodes.
//!
//! Exit codes: 0 every service placed, 1 some service unplaced or no live node, 2 usage or
//! I/O error.

use std::error::Error;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use firework_scheduler::plan::{PlanRequest, plan};
use firework_scheduler::registry::DEFAULT_NODE_TTL;
use firework_scheduler::report::{to_json, to_text};
use firework_scheduler::{DEFAULT_VM_OVERHEAD_MB, ScheduleOptions};
use jiff::Timestamp;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Deterministic placement of Firework services onto live nodes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the placement of the services and the moves against the previous placement.
    Plan(PlanArgs),
}

#[derive(Debug, clap::Args)]
struct PlanArgs {
    /// Registry root directory; node records are read from <DIR>/registry/nodes/*.json.
    #[arg(long, value_name = "DIR")]
    registry: PathBuf,
    /// Rendered services: a YAML file, or a directory of YAML files.
    #[arg(long, value_name = "PATH")]
    input: PathBuf,
    /// Directory of the previous node configs <node>.yaml.
    #[arg(long, value_name = "DIR")]
    existing: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Heartbeat age in seconds after which a node is not live.
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_NODE_TTL.as_secs())]
    ttl_seconds: u64,
    /// Memory in MiB counted for every VM on top of its memory_mb.
    #[arg(long, value_name = "MIB", default_value_t = DEFAULT_VM_OVERHEAD_MB)]
    vm_overhead_mb: u64,
    /// Prefer the least loaded node (worst fit) instead of best fit for new placements.
    #[arg(long)]
    spread: bool,
    /// Judge liveness at this RFC 3339 time instead of the current time.
    #[arg(long, value_name = "TIME")]
    now: Option<Timestamp>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();

    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let Command::Plan(args) = cli.command;

    let request = PlanRequest {
        registry: args.registry,
        input: args.input,
        existing: args.existing,
        ttl: Duration::from_secs(args.ttl_seconds),
        now: args.now.unwrap_or_else(Timestamp::now),
        options: ScheduleOptions {
            vm_overhead_mb: args.vm_overhead_mb,
            spread: args.spread,
        },
    };
    match plan(&request) {
        Ok(report) => {
            let text = match args.format {
                Format::Text => to_text(&report),
                Format::Json => to_json(&report),
            };
            print!("{text}");
            if report.is_complete() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(error) => {
            eprintln!("error: {}", error_chain(&error));
            for diagnostic in error.diagnostics() {
                eprintln!("  {diagnostic}");
            }
            ExitCode::from(2)
        }
    }
}

/// Joins an error and its sources with ": ".
fn error_chain(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
