//! `fireworkctl`: validate Firework configs and inspect what they would do.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use firework_model::Severity;
use fireworkctl::render::RenderCommandError;
use fireworkctl::validate::{self, Kind, Report};

#[derive(Debug, Parser)]
#[command(
    name = "fireworkctl",
    version,
    about = "Validate Firework configs and inspect what they would do"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check agent configs, node configs and enricher input trees.
    ///
    /// Exit status: 0 valid, 1 invalid, 2 usage or I/O error.
    Validate {
        /// Files or directories: an agent.yaml, a node config, a nodes/ directory or an
        /// enricher input tree.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Config surface of the paths; detected from names and content when not given.
        #[arg(long, value_enum)]
        kind: Option<Kind>,
        /// Treat warnings as errors.
        #[arg(long)]
        strict: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Check that this host can run the agent: IP forwarding, nftables, the bridge,
    /// /dev/net/tun, /dev/kvm and the Firecracker binary.
    ///
    /// Exit status: 0 all checks pass, 1 a check failed, 2 the config is invalid.
    Doctor {
        /// Agent config whose binary, bridge and network settings are checked; the defaults
        /// when not given.
        #[arg(long)]
        config: Option<String>,
    },
    /// Render an enricher input tree into node configs, as the enricher would.
    ///
    /// Without --output the files are printed. Exit status: 0 rendered, 1 invalid input,
    /// 2 usage or I/O error.
    Render {
        /// The input tree (defaults.yaml, services/, tenants/).
        input: PathBuf,
        /// Directory to write nodes/*.yaml and index.json into.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Source commit to record in each node config.
        #[arg(long)]
        source_commit: Option<String>,
    },
    /// Show what a render of the input would change in what the enricher published.
    ///
    /// Exit status: 0 no change, 1 changes, 2 invalid input, usage or I/O error.
    Diff {
        /// The input tree.
        input: PathBuf,
        /// Publication target of the enricher: a directory, s3://bucket/prefix or gs://bucket/prefix.
        published: String,
    },
    /// Show an agent's status: revision, last tick and every service.
    ///
    /// Exit status: 0 shown, 2 the request failed.
    Status {
        /// The agent's API address.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        api: String,
        /// File holding the API's bearer token.
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// Compiler-style lines.
    Text,
    /// One JSON document for scripts.
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate {
            paths,
            kind,
            strict,
            format,
        } => run_validate(&paths, kind, strict, format),
        Command::Doctor { config } => run_doctor(config.as_deref()),
        Command::Render {
            input,
            output,
            source_commit,
        } => run_render(&input, output.as_deref(), source_commit),
        Command::Diff { input, published } => run_async(run_diff(&input, &published)),
        Command::Status {
            api,
            token_file,
            format,
        } => run_async(run_status(&api, token_file.as_deref(), format)),
    }
}

fn print_chain(error: &dyn std::error::Error) {
    let mut text = format!("error: {error}");
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    eprintln!("{text}");
}

fn run_validate(paths: &[PathBuf], kind: Option<Kind>, strict: bool, format: Format) -> ExitCode {
    let mut reports: Vec<Report> = Vec::new();
    for path in paths {
        match validate::validate_path(path, kind) {
            Ok(report) => reports.push(report),
            Err(error) => {
                print_chain(&error);
                return ExitCode::from(2);
            }
        }
    }
    let errors: usize = reports.iter().map(|r| r.count(Severity::Error)).sum();
    let warnings: usize = reports.iter().map(|r| r.count(Severity::Warning)).sum();
    let failed = errors > 0 || (strict && warnings > 0);
    let mut out = std::io::stdout().lock();
    let written = match format {
        Format::Json => {
            let document = serde_json::json!({
                "valid": !failed,
                "errors": errors,
                "warnings": warnings,
                "strict": strict,
                "reports": reports,
            });
            writeln!(out, "{document:#}")
        }
        Format::Text => write_text(&mut out, &reports, errors, warnings, failed),
    };
    if let Err(error) = written {
        print_chain(&error);
        return ExitCode::from(2);
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn write_text(
    out: &mut impl Write,
    reports: &[Report],
    errors: usize,
    warnings: usize,
    failed: bool,
) -> std::io::Result<()> {
    for report in reports {
        for diagnostic in &report.diagnostics {
            writeln!(out, "{diagnostic}")?;
        }
        let verdict = if report.count(Severity::Error) > 0 {
            "invalid"
        } else {
            "valid"
        };
        writeln!(out, "{}: {verdict} {}", report.path, report.kind)?;
    }
    let verdict = if failed { "FAILED" } else { "ok" };
    writeln!(
        out,
        "{verdict}: {errors} errors, {warnings} warnings in {} paths",
        reports.len()
    )
}

fn run_doctor(config: Option<&str>) -> ExitCode {
    let checks = match fireworkctl::doctor::run_checks(config) {
        Ok(checks) => checks,
        Err(error) => {
            print_chain(&error);
            for diagnostic in error.diagnostics() {
                eprintln!("{diagnostic}");
            }
            return ExitCode::from(2);
        }
    };
    let mut failed = 0;
    for check in &checks {
        let passed = check.status == firework_net::preflight::CheckStatus::Pass;
        let mark = if passed { "ok  " } else { "FAIL" };
        println!("{mark} {:<12} {}", check.name, check.detail);
        if let Some(fix) = &check.fix {
            println!("     fix: {fix}");
        }
        if !passed {
            failed += 1;
        }
    }
    if failed > 0 {
        println!("{failed} of {} checks failed", checks.len());
        ExitCode::from(1)
    } else {
        println!("all {} checks passed", checks.len());
        ExitCode::SUCCESS
    }
}

fn run_async(future: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(future),
        Err(error) => {
            print_chain(&error);
            ExitCode::from(2)
        }
    }
}

/// Prints a render error and the diagnostics of an invalid input.
fn print_render_error(error: &RenderCommandError) {
    print_chain(error);
    if let RenderCommandError::Render { source, .. } = error {
        for diagnostic in source.diagnostics() {
            eprintln!("{diagnostic}");
        }
    }
}

fn run_render(input: &Path, output: Option<&Path>, source_commit: Option<String>) -> ExitCode {
    let rendered = match fireworkctl::render::render(input, source_commit) {
        Ok(rendered) => rendered,
        Err(error) => {
            print_render_error(&error);
            let invalid = matches!(&error, RenderCommandError::Render { source, .. } if !source.diagnostics().is_empty());
            return ExitCode::from(if invalid { 1 } else { 2 });
        }
    };
    for warning in &rendered.warnings {
        eprintln!("{warning}");
    }
    match output {
        Some(dir) => {
            if let Err(error) = fireworkctl::render::write_files(dir, &rendered.files) {
                print_chain(&error);
                return ExitCode::from(2);
            }
            for key in rendered.files.keys() {
                println!("wrote {}", dir.join(key).display());
            }
        }
        None => {
            for (key, bytes) in &rendered.files {
                println!("# ==> {key}");
                println!("{}", String::from_utf8_lossy(bytes).trim_end());
            }
        }
    }
    ExitCode::SUCCESS
}

async fn run_diff(input: &Path, published: &str) -> ExitCode {
    match fireworkctl::render::diff(input, published).await {
        Ok(changes) if changes.is_empty() => {
            println!("no changes");
            ExitCode::SUCCESS
        }
        Ok(changes) => {
            for change in &changes {
                print!("{}", change.diff());
            }
            println!("{} files change", changes.len());
            ExitCode::from(1)
        }
        Err(error) => {
            print_render_error(&error);
            ExitCode::from(2)
        }
    }
}

async fn run_status(api: &str, token_file: Option<&Path>, format: Format) -> ExitCode {
    let token = match token_file {
        None => None,
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => Some(text.trim().to_string()),
            Err(error) => {
                eprintln!("error: failed to read {}: {error}", path.display());
                return ExitCode::from(2);
            }
        },
    };
    match fireworkctl::status::fetch(api, token.as_deref()).await {
        Ok(status) => {
            match format {
                Format::Json => println!("{status:#}"),
                Format::Text => print!("{}", fireworkctl::status::format_table(&status)),
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            print_chain(&error);
            ExitCode::from(2)
        }
    }
}
