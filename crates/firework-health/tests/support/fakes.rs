//! A scripted prober and a recording restarter for tests on paused tokio time.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use firework_health::monitor::BoxError;
use firework_health::{ProbeError, ProbeTarget, Prober, Restarter};
use firework_model::service::HealthCheck;
use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::time::Instant;

/// A prober whose result the test switches; records the time of every probe.
#[derive(Debug, Default)]
pub struct SwitchProber {
    pub healthy: AtomicBool,
    /// When set, probes alternate: ok, fail, ok, ...
    pub flapping: AtomicBool,
    pub calls: Mutex<Vec<Instant>>,
    /// How long each probe takes; the result is decided when the probe starts.
    pub delay: Mutex<Duration>,
    /// Probes running now; a cancelled probe leaves when it is dropped.
    pub in_flight: AtomicUsize,
    /// The largest number of probes that ran at the same time.
    pub max_in_flight: AtomicUsize,
}

impl SwitchProber {
    pub fn new(healthy: bool) -> Arc<Self> {
        Arc::new(SwitchProber {
            healthy: AtomicBool::new(healthy),
            ..SwitchProber::default()
        })
    }

    pub fn set_delay(&self, delay: Duration) {
        *self.delay.lock().unwrap() = delay;
    }

    /// Returns the probe start times, relative to `start`.
    pub fn calls_since(&self, start: Instant) -> Vec<Duration> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .map(|at| at.duration_since(start))
            .collect()
    }

    pub fn set(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::SeqCst);
    }

    pub fn call_count(&self) -> usize {
        self.calls.lock().unwrap().len()
    }
}

impl Prober for SwitchProber {
    fn probe<'a>(
        &'a self,
        _check: &'a HealthCheck,
        target: &'a ProbeTarget,
    ) -> BoxFuture<'a, Result<(), ProbeError>> {
        let healthy = {
            let mut calls = self.calls.lock().unwrap();
            calls.push(Instant::now());
            if self.flapping.load(Ordering::SeqCst) {
                calls.len() % 2 == 1
            } else {
                self.healthy.load(Ordering::SeqCst)
            }
        };
        let result = if healthy {
            Ok(())
        } else {
            Err(ProbeError::Status {
                target: target.to_string(),
                status: 503,
                expected: "2xx or 3xx".to_string(),
            })
        };
        let delay = *self.delay.lock().unwrap();
        async move {
            let _running = Running::enter(self);
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            result
        }
        .boxed()
    }
}

/// Counts a probe in [`SwitchProber::in_flight`] while it lives.
struct Running<'a>(&'a SwitchProber);

impl<'a> Running<'a> {
    fn enter(prober: &'a SwitchProber) -> Self {
        let now = prober.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        prober.max_in_flight.fetch_max(now, Ordering::SeqCst);
        Running(prober)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A restarter that records when it ran; fails while `fail` is set.
#[derive(Debug, Default)]
pub struct RecordingRestarter {
    pub restarts: Mutex<Vec<(String, Instant)>>,
    pub fail: AtomicBool,
}

impl RecordingRestarter {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn times(&self) -> Vec<Instant> {
        self.restarts
            .lock()
            .unwrap()
            .iter()
            .map(|(_, at)| *at)
            .collect()
    }
}

impl Restarter for RecordingRestarter {
    fn restart<'a>(&'a self, service: &'a str) -> BoxFuture<'a, Result<(), BoxError>> {
        self.restarts
            .lock()
            .unwrap()
            .push((service.to_string(), Instant::now()));
        let fail = self.fail.load(Ordering::SeqCst);
        async move {
            if fail {
                Err(BoxError::from("firecracker did not start"))
            } else {
                Ok(())
            }
        }
        .boxed()
    }
}
