//! `fireworkctl`: validate Firework configs and inspect what they would do.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use firework_model::Severity;
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
        /// What the paths hold; detected from names and content when not given.
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
