//! `firework-scheduler`: print the placement of rendered services onto live nodes.
//!
//! Exit codes: 0 every service placed, 1 some service unplaced or no live node, 2 usage,
//! I/O or registry error.

use std::error::Error;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use firework_scheduler::plan::{PlanRequest, plan};
use firework_scheduler::registry::DEFAULT_NODE_TTL;
use firework_scheduler::report::{to_json, to_text};
use firework_scheduler::source::{ObjectOptions, RegistrySource};
use firework_scheduler::{DEFAULT_VM_OVERHEAD_MB, ScheduleOptions};
use jiff::Timestamp;

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
    /// Run as an AWS Lambda function that answers plan requests.
    #[cfg(feature = "lambda")]
    Lambda(ObjectArgs),
}

/// Connection settings for a bucket registry.
#[derive(Debug, clap::Args)]
struct ObjectArgs {
    /// S3-compatible endpoint, addressed path-style; plain http:// only on a loopback host.
    #[arg(long, value_name = "URL", env = "FIREWORK_S3_ENDPOINT_URL")]
    s3_endpoint_url: Option<String>,
    /// S3 region (default: the AWS environment, then us-east-1).
    #[arg(long, value_name = "REGION")]
    s3_region: Option<String>,
    /// GCS service account or application credentials file.
    #[arg(long, value_name = "FILE")]
    gcs_credentials_file: Option<PathBuf>,
}

impl ObjectArgs {
    fn options(self) -> ObjectOptions {
        ObjectOptions {
            s3_endpoint_url: self.s3_endpoint_url,
            s3_region: self.s3_region,
            s3_credentials: None,
            gcs_credentials_file: self.gcs_credentials_file,
        }
    }
}

#[derive(Debug, clap::Args)]
struct PlanArgs {
    /// Registry: a directory, s3://BUCKET/PREFIX or gs://BUCKET/PREFIX; node records are
    /// read from registry/nodes/*.json below it.
    #[arg(long, value_name = "LOCATION")]
    registry: String,
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
    #[command(flatten)]
    object: ObjectArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

fn main() -> ExitCode {
    if let Err(error) = firework_logging::init("warn", firework_logging::LogFormat::Text) {
        eprintln!("warning: failed to install the logger: {error}");
    }

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
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: failed to start the async runtime: {error}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Plan(args) => runtime.block_on(plan_command(args)),
        #[cfg(feature = "lambda")]
        Command::Lambda(args) => runtime.block_on(lambda_command(args)),
    }
}

async fn plan_command(args: PlanArgs) -> ExitCode {
    let registry = match RegistrySource::parse(&args.registry, &args.object.options()) {
        Ok(registry) => registry,
        Err(error) => {
            eprintln!("error: {}", error_chain(&error));
            return ExitCode::from(2);
        }
    };
    let request = PlanRequest {
        registry,
        input: args.input,
        existing: args.existing,
        ttl: Duration::from_secs(args.ttl_seconds),
        now: args.now.unwrap_or_else(Timestamp::now),
        options: ScheduleOptions {
            vm_overhead_mb: args.vm_overhead_mb,
            spread: args.spread,
        },
    };
    match plan(&request).await {
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

#[cfg(feature = "lambda")]
async fn lambda_command(args: ObjectArgs) -> ExitCode {
    let handler = firework_scheduler::lambda::Handler {
        object: args.options(),
    };
    match firework_scheduler::lambda::run_lambda(handler).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
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
