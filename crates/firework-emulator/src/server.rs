//! The API server on the Unix socket: at most 10 connections, requests processed one at
//! a time, keep-alive connections, and the follow-ups (exit, injected crash) that a reply
//! triggers.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Mutex, mpsc};

use crate::fault::CrashMode;
use crate::http::{self, HttpError, Request};
use crate::vmm::{AfterReply, Vmm};

/// Maximum number of concurrent API connections, as in Firecracker's HTTP server.
pub const MAX_CONNECTIONS: usize = 10;
/// Largest request head (request line and headers) the server reads.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Shared state of one emulator process.
#[derive(Debug, Clone)]
pub struct Shared {
    pub vmm: Arc<Mutex<Vmm>>,
    pub max_payload: usize,
    /// Receives the exit status when a reply or an injected crash ends the process.
    pub exit: mpsc::UnboundedSender<i32>,
}

/// Accepts connections until the listener fails.
pub async fn serve(listener: UnixListener, shared: Shared) {
    let open = Arc::new(AtomicUsize::new(0));
    loop {
        let mut stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                shared.vmm.lock().await.logger.error(
                    crate::logger::Thread::Api,
                    &format!("Failed to accept an API connection: {error}"),
                );
                // Back off so a persistent error such as EMFILE does not spin the loop.
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        if open.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
            let _ = stream.write_all(http::TOO_MANY_CONNECTIONS).await;
            let _ = stream.shutdown().await;
            continue;
        }
        open.fetch_add(1, Ordering::SeqCst);
        let shared = shared.clone();
        let open = Arc::clone(&open);
        tokio::spawn(async move {
            handle_connection(stream, &shared).await;
            open.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

fn find_head_end(buffer: &[u8]) -> Option<usize> {
    buffer.windows(4).position(|window| window == b"\r\n\r\n")
}

/// Reads more bytes into `buffer`; returns `false` at end of stream or on an error.
async fn fill(stream: &mut UnixStream, buffer: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 8192];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(read) => {
            buffer.extend_from_slice(&chunk[..read]);
            true
        }
    }
}

async fn handle_connection(mut stream: UnixStream, shared: &Shared) {
    let mut buffer = Vec::new();
    loop {
        let head_end = loop {
            if let Some(end) = find_head_end(&buffer) {
                break end;
            }
            if buffer.len() > MAX_HEAD_BYTES {
                let error = HttpError::InvalidRequest;
                let _ = stream.write_all(&error.to_response().encode()).await;
                return;
            }
            if !fill(&mut stream, &mut buffer).await {
                return;
            }
        };
        let head = match http::parse_head(&buffer[..head_end], shared.max_payload) {
            Ok(head) => head,
            Err(error) => {
                let _ = stream.write_all(&error.to_response().encode()).await;
                let _ = stream.shutdown().await;
                return;
            }
        };
        let body_start = head_end + 4;
        while buffer.len() < body_start + head.content_length {
            if !fill(&mut stream, &mut buffer).await {
                return;
            }
        }
        let body = buffer[body_start..body_start + head.content_length].to_vec();
        buffer.drain(..body_start + head.content_length);
        let request = Request {
            method: head.method,
            uri: head.uri,
            body: (!body.is_empty()).then_some(body),
        };

        let reply = {
            let mut vmm = shared.vmm.lock().await;
            if let Some(delay) = vmm.faults.api_delay {
                tokio::time::sleep(delay).await;
            }
            vmm.handle(&request)
        };
        if stream.write_all(&reply.response.encode()).await.is_err() {
            return;
        }
        let _ = stream.flush().await;

        match reply.after {
            Some(AfterReply::Started) => on_started(shared).await,
            Some(AfterReply::Exit(code)) => {
                let _ = shared.exit.send(code);
            }
            None => {}
        }
    }
}

/// Interval of Firecracker's periodic metrics flush while the VM runs.
pub const METRICS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// Starts the work that follows a successful boot: the periodic metrics flush and the
/// injected crash timer, if one is set.
pub async fn on_started(shared: &Shared) {
    crate::guest::spawn_exit_watch(shared.exit.clone());
    start_periodic_metrics(shared);
    arm_crash(shared).await;
}

/// Writes a metrics line every 60 s, as Firecracker does, except while the VM is paused
/// because Firecracker's event loop is frozen then.
pub fn start_periodic_metrics(shared: &Shared) -> tokio::task::JoinHandle<()> {
    let vmm = Arc::clone(&shared.vmm);
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(METRICS_INTERVAL);
        // The first tick fires at once, and the boot itself already flushed.
        interval.tick().await;
        loop {
            interval.tick().await;
            let mut vmm = vmm.lock().await;
            if vmm.state() == crate::vmm::InstanceState::Running {
                vmm.flush_metrics();
            }
        }
    })
}

/// Starts the injected crash timer after a successful `InstanceStart`, if one is set.
async fn arm_crash(shared: &Shared) {
    let crash = shared.vmm.lock().await.faults.crash_after_start;
    let Some((delay, mode)) = crash else {
        return;
    };
    let exit = shared.exit.clone();
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        crash_now(mode, &exit);
    });
}

fn crash_now(mode: CrashMode, exit: &mpsc::UnboundedSender<i32>) {
    match mode {
        CrashMode::Exit(code) => {
            let _ = exit.send(code);
        }
        CrashMode::SigKill => {
            let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
            // SIGKILL cannot be caught, so this is reached only if raise failed.
            std::process::abort();
        }
    }
}

/// Signals Firecracker handles, with the exit status it uses for each.
pub const HANDLED_SIGNALS: &[(i32, i32)] = &[
    (libc_signal::SIGHUP, 156),
    (libc_signal::SIGXFSZ, 151),
    (libc_signal::SIGXCPU, 154),
    (libc_signal::SIGBUS, 149),
    (libc_signal::SIGSYS, 148),
];

mod libc_signal {
    use nix::sys::signal::Signal;
    pub const SIGHUP: i32 = Signal::SIGHUP as i32;
    pub const SIGXFSZ: i32 = Signal::SIGXFSZ as i32;
    pub const SIGXCPU: i32 = Signal::SIGXCPU as i32;
    pub const SIGBUS: i32 = Signal::SIGBUS as i32;
    pub const SIGSYS: i32 = Signal::SIGSYS as i32;
}

/// Handlers for the signals Firecracker handles. They are installed at start-up, before
/// the API socket is bound, as in Firecracker, so a signal sent once the socket accepts
/// connections is never lost to the default action.
#[derive(Debug)]
pub struct SignalWatcher {
    received: mpsc::UnboundedReceiver<(i32, i32)>,
}

impl SignalWatcher {
    pub fn install() -> std::io::Result<SignalWatcher> {
        use tokio::signal::unix::{SignalKind, signal};
        let (tx, received) = mpsc::unbounded_channel();
        for &(number, code) in HANDLED_SIGNALS {
            let mut stream = signal(SignalKind::from_raw(number))?;
            let tx = tx.clone();
            tokio::spawn(async move {
                if stream.recv().await.is_some() {
                    let _ = tx.send((number, code));
                }
            });
        }
        Ok(SignalWatcher { received })
    }

    /// Waits for a handled signal and returns `(signal, exit status)`.
    pub async fn recv(&mut self) -> (i32, i32) {
        match self.received.recv().await {
            Some(pair) => pair,
            None => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::FaultConfig;
    use crate::logger::{Level, Logger};

    #[tokio::test(start_paused = true)]
    async fn metrics_flushed_every_minute_while_running() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = dir.path().join("metrics");
        let mut logger = Logger::new("unit");
        logger.set_level(Level::Off);
        let mut vmm = Vmm::new("unit", logger, FaultConfig::default());
        vmm.open_metrics(&metrics).unwrap();
        vmm.state = crate::vmm::InstanceState::Running;
        let (exit, _exit_rx) = mpsc::unbounded_channel();
        let shared = Shared {
            vmm: Arc::new(Mutex::new(vmm)),
            max_payload: 1024,
            exit,
        };
        let lines = || std::fs::read_to_string(&metrics).unwrap().lines().count();

        let task = start_periodic_metrics(&shared);
        tokio::time::sleep(METRICS_INTERVAL / 2).await;
        assert_eq!(lines(), 0);
        tokio::time::sleep(METRICS_INTERVAL).await;
        assert_eq!(lines(), 1);

        shared.vmm.lock().await.state = crate::vmm::InstanceState::Paused;
        tokio::time::sleep(METRICS_INTERVAL * 2).await;
        assert_eq!(lines(), 1, "no periodic flush while paused");
        task.abort();
    }
}
