//! `firework-agent`: the per-node daemon.

use std::process::ExitCode;

use clap::Parser;
use firework_agent::error::error_chain;
use firework_model::agent::{DEFAULT_AGENT_CONFIG, load_agent_config};

/// Makes the Firecracker VMs on this node match the desired state in the store.
#[derive(Debug, Parser)]
#[command(name = "firework-agent", version, about)]
struct Cli {
    /// The agent config file.
    #[arg(long, default_value = DEFAULT_AGENT_CONFIG)]
    config: String,
    /// Validate the config, print the result and exit.
    #[arg(long, conflicts_with = "dry_run")]
    check_config: bool,
    /// Plan one tick, print what would change, and exit without changing anything.
    #[arg(long)]
    dry_run: bool,
}

fn hostname() -> Option<String> {
    nix::unistd::gethostname()
        .ok()
        .and_then(|name| name.into_string().ok())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let parsed = match load_agent_config(&cli.config, &hostname) {
        Ok(parsed) => parsed,
        Err(error) => {
            eprintln!(
                "firework-agent: invalid agent config {}: {error}",
                cli.config
            );
            return ExitCode::from(2);
        }
    };
    for warning in &parsed.warnings {
        eprintln!("firework-agent: warning: {warning}");
    }
    let config = parsed.value;
    if cli.check_config {
        println!(
            "{}: ok (node {}, labels {}, store {})",
            cli.config,
            config.node_id,
            config.node_names.join(","),
            config.store_type.as_str()
        );
        return ExitCode::SUCCESS;
    }
    firework_agent::logging::init(config.log_level, config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("firework-agent: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    if cli.dry_run {
        return runtime.block_on(async {
            match firework_agent::daemon::dry_run(&config).await {
                Ok(report) => {
                    print!("{}", firework_agent::agent::render_plan(&report));
                    if report.error.is_some() {
                        ExitCode::FAILURE
                    } else {
                        ExitCode::SUCCESS
                    }
                }
                Err(error) => {
                    eprintln!("firework-agent: {}", error_chain(&error));
                    ExitCode::FAILURE
                }
            }
        });
    }
    match runtime.block_on(firework_agent::daemon::run(config, &cli.config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("firework-agent: {}", error_chain(&error));
            tracing::error!(error = %error_chain(&error), "firework-agent failed");
            ExitCode::FAILURE
        }
    }
}
