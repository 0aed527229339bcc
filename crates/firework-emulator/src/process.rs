//! The process life cycle: argument handling, start-up log lines, socket bind, config-file
//! boot, and exit with Firecracker's statuses.

use std::io::ErrorKind;
use std::path::Path;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use tokio::sync::{Mutex, mpsc};

use crate::cli::{self, Command, FIRECRACKER_VERSION, HELP, RunOptions, SNAPSHOT_VERSION};
use crate::errno::musl_error_text;
use crate::fault::FaultConfig;
use crate::logger::{Logger, Thread};
use crate::payload::{
    BalloonBody, ConfigFile, DriveBody, EntropyBody, LoggerBody, MachineConfigBody, MetricsBody,
    NetworkInterfaceBody, VsockBody,
};
use crate::server::{self, Shared};
use crate::vmm::Vmm;

/// Exit status for a generic error (bind failure, failed config-file boot, ...).
pub const EXIT_GENERIC_ERROR: i32 = 1;
/// Exit status for an invalid fault-injection variable (Firecracker's "unexpected error").
pub const EXIT_UNEXPECTED: i32 = 2;

/// Runs the emulator with `args` (without the program name) and returns the exit status.
/// Some paths end the process directly: `abort()` where Firecracker panics, and an
/// injected SIGKILL.
pub fn run(args: Vec<String>) -> i32 {
    let faults = match FaultConfig::from_env() {
        Ok(faults) => faults,
        Err(error) => {
            eprintln!("fc-emulator: {error}");
            return EXIT_UNEXPECTED;
        }
    };
    if let Some(code) = faults.exit_on_start {
        return code;
    }

    let command = match cli::parse_args(args) {
        Ok(command) => command,
        Err(error) => {
            eprintln!("Arguments parsing error: {error} \n\nFor more information try --help.");
            return error.exit_code();
        }
    };
    let options = match command {
        Command::Version => {
            println!("Firecracker v{FIRECRACKER_VERSION}\n");
            return 0;
        }
        Command::Help => {
            println!("Firecracker v{FIRECRACKER_VERSION}\n\n{HELP}");
            return 0;
        }
        Command::SnapshotVersion => {
            println!("{SNAPSHOT_VERSION}");
            return 0;
        }
        Command::DescribeSnapshot(path) => {
            eprintln!(
                "Error: the emulator cannot read snapshot files: {}",
                path.display()
            );
            return EXIT_GENERIC_ERROR;
        }
        Command::Run(options) => *options,
    };
    run_instance(options, faults)
}

/// Mirrors a Rust panic in Firecracker's release build, which aborts (SIGABRT).
fn panic_abort(message: &str) -> ! {
    eprintln!("thread 'main' panicked: {message}");
    std::process::abort();
}

fn run_instance(options: RunOptions, faults: FaultConfig) -> i32 {
    if let Err(message) = cli::validate_instance_id(&options.id) {
        panic_abort(&message);
    }
    let mut logger = Logger::new(&options.id);
    if let Some(level) = options.level {
        logger.set_level(level);
    }
    logger.set_decorations(options.show_level, options.show_log_origin);
    logger.set_module(options.module.clone());
    if let Some(path) = &options.log_path
        && let Err(error) = logger.set_path(path)
    {
        eprintln!(
            "Error: Logger initialization failure: Failed to open target file: {}",
            musl_error_text(&error)
        );
        return EXIT_GENERIC_ERROR;
    }
    logger.info(
        Thread::Main,
        &format!("Running Firecracker v{FIRECRACKER_VERSION}"),
    );

    let max_payload = match &options.max_payload {
        None => cli::DEFAULT_MAX_PAYLOAD,
        Some(raw) => raw.parse().unwrap_or_else(|_| {
            panic_abort(&format!("invalid --http-api-max-payload-size {raw:?}"))
        }),
    };
    let mmds_size_limit = match &options.mmds_size_limit {
        None => max_payload,
        Some(raw) => raw
            .parse()
            .unwrap_or_else(|_| panic_abort(&format!("invalid --mmds-size-limit {raw:?}"))),
    };

    let mut vmm = Vmm::new(&options.id, logger, faults);
    vmm.enable_pci = options.enable_pci;
    vmm.mmds_size_limit = mmds_size_limit;

    if let Some(path) = &options.metrics_path
        && let Err(message) = vmm.open_metrics(path)
    {
        vmm.logger.error(Thread::Main, &message);
        eprintln!("Error: {message}");
        return EXIT_GENERIC_ERROR;
    }
    if let Some(path) = &options.metadata {
        let text = std::fs::read_to_string(path).unwrap_or_else(|error| {
            panic_abort(&format!(
                "unable to read metadata file {}: {error}",
                path.display()
            ))
        });
        let data = serde_json::from_str(&text).map_err(|error| error.to_string());
        if let Err(message) = data.and_then(|data| vmm.put_mmds(data).map_err(|(_, m)| m)) {
            vmm.log_exit(EXIT_GENERIC_ERROR);
            eprintln!("Error: MMDS data from --metadata failed: {message}");
            return EXIT_GENERIC_ERROR;
        }
    }

    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("Error: failed to start the async runtime: {error}");
            return EXIT_UNEXPECTED;
        }
    };
    runtime.block_on(serve_instance(options, vmm, max_payload))
}

async fn serve_instance(options: RunOptions, vmm: Vmm, max_payload: usize) -> i32 {
    let vmm = Arc::new(Mutex::new(vmm));
    let (exit_tx, mut exit_rx) = mpsc::unbounded_channel();
    let shared = Shared {
        vmm: Arc::clone(&vmm),
        max_payload,
        exit: exit_tx,
    };

    let mut signals = match server::SignalWatcher::install() {
        Ok(signals) => signals,
        Err(error) => {
            eprintln!("Error: failed to install signal handlers: {error}");
            return EXIT_UNEXPECTED;
        }
    };

    let listener = if options.no_api {
        None
    } else {
        match bind_api_socket(&options.api_sock, &shared).await {
            Ok(listener) => Some(listener),
            Err(code) => return code,
        }
    };

    if let Some(path) = &options.config_file {
        let text = std::fs::read_to_string(path).unwrap_or_else(|error| {
            panic_abort(&format!(
                "unable to read config file {}: {error}",
                path.display()
            ))
        });
        let result = {
            let mut vmm = vmm.lock().await;
            boot_from_config(&mut vmm, &text)
        };
        let mut guard = vmm.lock().await;
        match result {
            Ok(()) => {
                guard.logger.info(
                    Thread::Main,
                    "Successfully started microvm that was configured from one single json",
                );
                drop(guard);
                server::on_started(&shared).await;
            }
            Err(message) => {
                guard.logger.error(
                    Thread::Main,
                    &format!("Building VMM configured from cmdline json failed: {message}"),
                );
                guard.log_exit(EXIT_GENERIC_ERROR);
                eprintln!("Error: BuildFromJson({message:?})");
                return EXIT_GENERIC_ERROR;
            }
        }
    }

    let server_task =
        listener.map(|listener| tokio::spawn(server::serve(listener, shared.clone())));

    let code = tokio::select! {
        Some(code) = exit_rx.recv() => code,
        (number, code) = signals.recv() => {
            vmm.lock().await.logger.error(
                Thread::Main,
                &format!("Shutting down VM after intercepting signal {number}, code 0."),
            );
            code
        }
    };
    if let Some(task) = server_task {
        task.abort();
    }
    vmm.lock().await.log_exit(code);
    if code != 0 {
        eprintln!("Error: RunWithApi(FcExitCode({code}))");
    }
    code
}

/// Binds the API socket without removing anything at the path, as Firecracker does.
async fn bind_api_socket(path: &Path, shared: &Shared) -> Result<tokio::net::UnixListener, i32> {
    let bound = std::os::unix::net::UnixListener::bind(path).and_then(|listener| {
        listener.set_nonblocking(true)?;
        tokio::net::UnixListener::from_std(listener)
    });
    let mut vmm = shared.vmm.lock().await;
    match bound {
        Ok(listener) => {
            vmm.logger.info(
                Thread::Main,
                &format!("Listening on API socket ({path:?})."),
            );
            vmm.logger.info(Thread::Api, "API server started.");
            Ok(listener)
        }
        Err(error) => {
            let message = if error.kind() == ErrorKind::AddrInUse {
                format!(
                    "Failed to open the API socket at: {}. Check that it is not already used.",
                    path.display()
                )
            } else {
                format!(
                    "Failed to bind and run the HTTP server: IO error: {}",
                    musl_error_text(&error)
                )
            };
            vmm.logger.error(Thread::Main, &message);
            vmm.log_exit(EXIT_GENERIC_ERROR);
            eprintln!("Error: {message}");
            Err(EXIT_GENERIC_ERROR)
        }
    }
}

fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, String> {
    serde_json::from_value(value).map_err(|error| error.to_string())
}

/// Applies a `--config-file` document and starts the VM.
pub fn boot_from_config(vmm: &mut Vmm, text: &str) -> Result<(), String> {
    let config: ConfigFile = serde_json::from_str(text).map_err(|error| error.to_string())?;
    if let Some(logger) = config.logger {
        vmm.set_logger(from_value::<LoggerBody>(logger)?)?;
    }
    if let Some(metrics) = config.metrics {
        vmm.set_metrics(from_value::<MetricsBody>(metrics)?)?;
    }
    if let Some(machine) = config.machine_config {
        vmm.set_machine_config(from_value::<MachineConfigBody>(machine)?)?;
    }

    vmm.set_boot_source(config.boot_source)?;
    for drive in config.drives {
        vmm.put_drive(from_value::<DriveBody>(drive)?)?;
    }
    for nic in config.network_interfaces {
        vmm.put_network_interface(from_value::<NetworkInterfaceBody>(nic)?)?;
    }
    if let Some(vsock) = config.vsock {
        vmm.set_vsock(from_value::<VsockBody>(vsock)?)?;
    }
    if let Some(balloon) = config.balloon {
        vmm.set_balloon(from_value::<BalloonBody>(balloon)?)?;
    }
    if let Some(entropy) = config.entropy {
        vmm.set_entropy(from_value::<EntropyBody>(entropy)?)?;
    }
    if let Some(mmds_config) = config.mmds_config {
        vmm.set_mmds_config(mmds_config)?;
    }

    let unsupported = [
        ("pmem", !config.pmem.is_empty()),
        ("cpu-config", config.cpu_config.is_some()),
        ("memory-hotplug", config.memory_hotplug.is_some()),
    ];
    if let Some((key, _)) = unsupported.iter().find(|(_, present)| *present) {
        return Err(format!("the emulator does not implement the {key} section"));
    }
    vmm.start()
}
