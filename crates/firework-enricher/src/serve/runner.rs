//! Runs renders one at a time. A trigger that arrives during a run waits for it. Several
//! waiting triggers collapse into one run, which fetches the branch tip and so includes
//! every push.

use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, watch};
use tracing::{Instrument, error, info, info_span, warn};

use super::metrics::Metrics;
use crate::run::{RunConfig, RunError, run};

/// The largest number of findings of one failed run that go to the log. A push decides
/// how many findings there are, so the rest are only counted.
const MAX_LOGGED_FINDINGS: usize = 50;

/// The reason for a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// A push to the branch, with its `after` commit.
    Push {
        /// The pushed commit.
        after: String,
    },
    /// The timer.
    Scheduled,
}

/// The serialised run queue.
#[derive(Debug)]
pub struct Runner {
    pending: Mutex<Option<Trigger>>,
    notify: Notify,
    config: RunConfig,
    metrics: Arc<Metrics>,
    finished: watch::Sender<u64>,
}

impl Runner {
    /// Creates a runner for `config`.
    pub fn new(config: RunConfig, metrics: Arc<Metrics>) -> Arc<Runner> {
        Arc::new(Runner {
            pending: Mutex::new(None),
            notify: Notify::new(),
            config,
            metrics,
            finished: watch::channel(0).0,
        })
    }

    /// Queues a run; replaces a trigger that is still waiting.
    pub fn submit(&self, trigger: Trigger) {
        let mut pending = match self.pending.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(previous) = pending.replace(trigger) {
            info!(?previous, "coalesced with a newer trigger");
        }
        drop(pending);
        self.notify.notify_one();
    }

    /// True when a trigger waits for the worker.
    pub fn has_pending(&self) -> bool {
        match self.pending.lock() {
            Ok(guard) => guard.is_some(),
            Err(poisoned) => poisoned.into_inner().is_some(),
        }
    }

    /// Counts finished runs; tests and health checks wait on it.
    pub fn finished(&self) -> watch::Receiver<u64> {
        self.finished.subscribe()
    }

    /// Processes triggers until the task is dropped.
    pub async fn work(self: Arc<Self>) {
        loop {
            self.notify.notified().await;
            let trigger = match self.pending.lock() {
                Ok(mut guard) => guard.take(),
                Err(poisoned) => poisoned.into_inner().take(),
            };
            let Some(trigger) = trigger else { continue };
            let span = info_span!("run", ?trigger);
            let result = run(&self.config).instrument(span).await;
            match &result {
                Ok(outcome) => info!(
                    revision = outcome.commit.as_deref().unwrap_or(""),
                    written = outcome.report.written.len(),
                    "run succeeded"
                ),
                Err(err) => {
                    error!(error = %crate::serve::error_chain(err), "run failed");
                    log_findings(err);
                }
            }
            self.metrics.run_finished(result.is_ok());
            self.finished.send_modify(|count| *count += 1);
        }
    }
}

/// Logs the findings of an invalid input, so that the operator of a webhook service can tell
/// which file and field a refused push got wrong, as `firework-enricher check` would print.
fn log_findings(error: &RunError) {
    let RunError::Render(render) = error else {
        return;
    };
    let findings = render.diagnostics();
    for finding in findings.iter().take(MAX_LOGGED_FINDINGS) {
        if finding.is_error() {
            error!(%finding, "input finding");
        } else {
            warn!(%finding, "input finding");
        }
    }
    if findings.len() > MAX_LOGGED_FINDINGS {
        warn!(
            not_logged = findings.len() - MAX_LOGGED_FINDINGS,
            "more input findings than the log limit"
        );
    }
}
