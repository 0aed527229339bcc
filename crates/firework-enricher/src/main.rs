//! `firework-enricher`: render service specs into node configs and publish them.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use firework_enricher::publish::{ObjectOptions, PublishError};
use firework_enricher::run::{RunConfig, RunError, render_only, run};
use firework_enricher::serve::{self, ServeConfig, error_chain};
use firework_model::diagnostic::Diagnostic;

/// Exit code of invalid input: validation errors or services that fit nowhere.
const EXIT_INVALID: u8 = 1;
/// Exit code of a refused publication: empty result, older commit, concurrent run.
const EXIT_REFUSED: u8 = 3;
/// Exit code of any other failure: Git, files, object store, server.
const EXIT_FAILED: u8 = 4;

#[derive(Debug, Parser)]
#[command(name = "firework-enricher", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate the input, render node configs and publish them.
    Render(RenderArgs),
    /// Validate and render without publishing; print every finding.
    Check(InputArgs),
    /// Receive GitHub push webhooks and render on each push to the configured branch.
    Serve {
        /// The YAML configuration file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Run as an AWS Lambda function (API Gateway v2 and EventBridge scheduled events).
    #[cfg(feature = "lambda")]
    Lambda {
        /// The YAML configuration file (the same format as `serve`; `listen` is unused).
        #[arg(long, env = "FIREWORK_ENRICHER_CONFIG")]
        config: PathBuf,
    },
}

#[derive(Debug, Args)]
struct InputArgs {
    /// Input tree: a directory or a Git URL.
    #[arg(long)]
    input: String,
    /// Branch or full commit id of a Git input (default: main).
    #[arg(long = "ref")]
    reference: Option<String>,
    /// Directory inside the input that holds the tree.
    #[arg(long)]
    config_dir: Option<String>,
    /// Make a routed service without a port forward an error.
    #[arg(long)]
    require_remote_routing: bool,
}

#[derive(Debug, Args)]
struct RenderArgs {
    #[command(flatten)]
    input: InputArgs,
    /// A directory, s3://bucket/prefix or gs://bucket/prefix.
    #[arg(long)]
    output: String,
    /// Place services on live nodes with the scheduler.
    #[arg(long, requires = "registry")]
    schedule: bool,
    /// Registry holding registry/nodes/<node>.json: a directory or s3://bucket/prefix.
    #[arg(long)]
    registry: Option<String>,
    /// Publish even when no node config was rendered (stops every service).
    #[arg(long)]
    allow_empty: bool,
    /// Print the changes and write nothing.
    #[arg(long)]
    dry_run: bool,
    /// S3-compatible endpoint, e.g. http://127.0.0.1:3900 (path-style requests).
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    s3_endpoint: Option<String>,
    /// S3 region.
    #[arg(long, env = "AWS_REGION")]
    s3_region: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = match cli.command {
        Command::Serve { .. } => "info",
        #[cfg(feature = "lambda")]
        Command::Lambda { .. } => "info",
        _ => "warn",
    };
    if let Err(error) = firework_logging::init(default_level, firework_logging::LogFormat::Text) {
        eprintln!("warning: failed to install the logger: {error}");
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: failed to start the async runtime: {error}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Render(args) => render_command(args).await,
            Command::Check(args) => check_command(args).await,
            Command::Serve { config } => serve_command(config).await,
            #[cfg(feature = "lambda")]
            Command::Lambda { config } => lambda_command(config).await,
        }
    })
}

fn run_config(input: &InputArgs) -> RunConfig {
    RunConfig {
        input: input.input.clone(),
        reference: input.reference.clone(),
        subdir: input.config_dir.clone(),
        require_remote_routing: input.require_remote_routing,
        ..RunConfig::default()
    }
}

fn print_diagnostics(diagnostics: &[Diagnostic]) {
    for diagnostic in diagnostics {
        eprintln!("{diagnostic}");
    }
}

fn exit_for(error: &RunError) -> ExitCode {
    if let RunError::Render(render) = error {
        print_diagnostics(render.diagnostics());
    }
    eprintln!("error: {}", error_chain(error));
    let code = match error {
        RunError::Render(_) => EXIT_INVALID,
        RunError::Publish(
            PublishError::Empty { .. }
            | PublishError::OlderCommit { .. }
            | PublishError::Conflict { .. }
            | PublishError::Superseded { .. }
            | PublishError::Busy { .. },
        ) => EXIT_REFUSED,
        _ => EXIT_FAILED,
    };
    ExitCode::from(code)
}

async fn render_command(args: RenderArgs) -> ExitCode {
    let config = RunConfig {
        output: args.output.clone(),
        object: ObjectOptions {
            endpoint: args.s3_endpoint.clone(),
            region: args.s3_region.clone(),
            credentials: None,
        },
        registry: if args.schedule {
            args.registry.clone()
        } else {
            None
        },
        allow_empty: args.allow_empty,
        dry_run: args.dry_run,
        ..run_config(&args.input)
    };
    match run(&config).await {
        Ok(outcome) => {
            print_diagnostics(&outcome.rendered.warnings);
            let commit = outcome.commit.as_deref().unwrap_or("(no commit)");
            if args.dry_run {
                for change in &outcome.report.changes {
                    print!("{}", change.diff());
                }
                println!(
                    "dry run of {commit}: {} to write, {} unchanged, {} to delete",
                    outcome.report.written.len(),
                    outcome.report.unchanged.len(),
                    outcome.report.deleted.len()
                );
            } else {
                println!(
                    "published {commit}: {} written, {} unchanged, {} deleted",
                    outcome.report.written.len(),
                    outcome.report.unchanged.len(),
                    outcome.report.deleted.len()
                );
            }
            ExitCode::SUCCESS
        }
        Err(error) => exit_for(&error),
    }
}

async fn check_command(args: InputArgs) -> ExitCode {
    let config = RunConfig {
        output: std::env::temp_dir().display().to_string(),
        ..run_config(&args)
    };
    match render_only(&config).await {
        Ok((rendered, _)) => {
            print_diagnostics(&rendered.warnings);
            println!(
                "ok: {} node configs, {} warnings",
                rendered.nodes.len(),
                rendered.warnings.len()
            );
            ExitCode::SUCCESS
        }
        Err(error) => exit_for(&error),
    }
}

async fn serve_command(path: PathBuf) -> ExitCode {
    let config = match ServeConfig::load(&path) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {}", error_chain(&error));
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let state = match serve::state(&config) {
        Ok(state) => state,
        Err(error) => {
            eprintln!("error: {}", error_chain(&error));
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let listener = match tokio::net::TcpListener::bind(&config.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("error: failed to listen on {}: {error}", config.listen);
            return ExitCode::from(EXIT_FAILED);
        }
    };
    match serve::serve_on(listener, state, config.interval()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: server failed: {error}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

#[cfg(feature = "lambda")]
async fn lambda_command(path: PathBuf) -> ExitCode {
    let config = match ServeConfig::load(&path) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {}", error_chain(&error));
            return ExitCode::from(EXIT_FAILED);
        }
    };
    match firework_enricher::lambda::run_lambda(&config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}
