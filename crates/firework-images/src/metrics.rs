//! Counters the agent exports as metrics, and the rate-limited progress log of a download.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::ImageErrorKind;

const KIND_COUNT: usize = 7;

fn kind_index(kind: ImageErrorKind) -> usize {
    match kind {
        ImageErrorKind::NotFound => 0,
        ImageErrorKind::Denied => 1,
        ImageErrorKind::Unreachable => 2,
        ImageErrorKind::ChecksumMismatch => 3,
        ImageErrorKind::Changed => 4,
        ImageErrorKind::Io => 5,
        ImageErrorKind::Invalid => 6,
    }
}

/// Monotonic counters of one `ImageSync`, updated by every `sync` and `gc` call.
#[derive(Debug, Default)]
pub struct SyncMetrics {
    sync_runs: AtomicU64,
    sync_micros: AtomicU64,
    unchanged: AtomicU64,
    downloads: AtomicU64,
    download_bytes: AtomicU64,
    download_micros: AtomicU64,
    retries: AtomicU64,
    resumes: AtomicU64,
    failures: [AtomicU64; KIND_COUNT],
    gc_removed: AtomicU64,
    gc_removed_bytes: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// `sync` calls.
    pub sync_runs: u64,
    /// Wall time spent in `sync` calls.
    pub sync_duration: Duration,
    /// Images found up to date without a download.
    pub unchanged: u64,
    /// Images downloaded and installed.
    pub downloads: u64,
    /// Body bytes received, including bytes of downloads that later failed.
    pub download_bytes: u64,
    /// Wall time spent downloading, summed over images.
    pub download_duration: Duration,
    /// Requests repeated after a transient failure.
    pub retries: u64,
    /// Downloads continued with a range request instead of starting over.
    pub resumes: u64,
    /// Failed images by error class; read through [`MetricsSnapshot::failures`].
    failures: [u64; KIND_COUNT],
    /// Image files removed by `gc`.
    pub gc_removed: u64,
    /// Bytes freed by `gc`.
    pub gc_removed_bytes: u64,
}

impl MetricsSnapshot {
    /// Returns the number of images that failed with an error of `kind`.
    pub fn failures(&self, kind: ImageErrorKind) -> u64 {
        self.failures[kind_index(kind)]
    }

    /// Returns the number of failed images over every error class.
    pub fn failures_total(&self) -> u64 {
        self.failures.iter().sum()
    }
}

impl SyncMetrics {
    /// Takes a snapshot of every counter.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        MetricsSnapshot {
            sync_runs: load(&self.sync_runs),
            sync_duration: Duration::from_micros(load(&self.sync_micros)),
            unchanged: load(&self.unchanged),
            downloads: load(&self.downloads),
            download_bytes: load(&self.download_bytes),
            download_duration: Duration::from_micros(load(&self.download_micros)),
            retries: load(&self.retries),
            resumes: load(&self.resumes),
            failures: std::array::from_fn(|i| load(&self.failures[i])),
            gc_removed: load(&self.gc_removed),
            gc_removed_bytes: load(&self.gc_removed_bytes),
        }
    }

    fn add(counter: &AtomicU64, value: u64) {
        counter.fetch_add(value, Ordering::Relaxed);
    }

    pub(crate) fn sync_run(&self, elapsed: Duration) {
        Self::add(&self.sync_runs, 1);
        Self::add(&self.sync_micros, micros(elapsed));
    }

    pub(crate) fn unchanged(&self) {
        Self::add(&self.unchanged, 1);
    }

    pub(crate) fn downloaded(&self, elapsed: Duration) {
        Self::add(&self.downloads, 1);
        Self::add(&self.download_micros, micros(elapsed));
    }

    pub(crate) fn bytes(&self, bytes: u64) {
        Self::add(&self.download_bytes, bytes);
    }

    pub(crate) fn retry(&self) {
        Self::add(&self.retries, 1);
    }

    pub(crate) fn resume(&self) {
        Self::add(&self.resumes, 1);
    }

    pub(crate) fn failure(&self, kind: ImageErrorKind) {
        Self::add(&self.failures[kind_index(kind)], 1);
    }

    pub(crate) fn gc_removed(&self, bytes: u64) {
        Self::add(&self.gc_removed, 1);
        Self::add(&self.gc_removed_bytes, bytes);
    }
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// Logs the progress of one download at most once per `interval`, with bytes, rate and
/// estimated remaining time.
#[derive(Debug)]
pub(crate) struct Progress<'a> {
    key: &'a str,
    total: u64,
    interval: Duration,
    started: Instant,
    start_offset: u64,
    last_log: Instant,
}

impl<'a> Progress<'a> {
    pub(crate) fn new(key: &'a str, total: u64, start_offset: u64, interval: Duration) -> Self {
        let now = Instant::now();
        Progress {
            key,
            total,
            interval,
            started: now,
            start_offset,
            last_log: now,
        }
    }

    /// Records that `done` bytes of `total` are on disk and logs when the interval passed.
    pub(crate) fn update(&mut self, done: u64) {
        let now = Instant::now();
        if now.duration_since(self.last_log) < self.interval {
            return;
        }
        self.last_log = now;
        let (rate, remaining) = self.rate(done, now);
        tracing::info!(
            key = self.key,
            bytes = done,
            total = self.total,
            rate_mib_per_s = format!("{:.1}", rate / (1024.0 * 1024.0)),
            remaining_s = remaining,
            "image download in progress"
        );
    }

    /// Returns the rate in bytes per second since the start and the estimated remaining
    /// seconds, or `None` while the rate is zero.
    pub(crate) fn rate(&self, done: u64, now: Instant) -> (f64, Option<u64>) {
        let seconds = now.duration_since(self.started).as_secs_f64();
        let transferred = done.saturating_sub(self.start_offset) as f64;
        if seconds <= 0.0 || transferred <= 0.0 {
            return (0.0, None);
        }
        let rate = transferred / seconds;
        let left = self.total.saturating_sub(done) as f64;
        (rate, Some((left / rate).ceil() as u64))
    }

    /// Returns the time since the download started.
    pub(crate) fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_counted_per_kind() {
        let metrics = SyncMetrics::default();
        metrics.failure(ImageErrorKind::NotFound);
        metrics.failure(ImageErrorKind::NotFound);
        metrics.failure(ImageErrorKind::Io);
        let snapshot = metrics.snapshot();
        assert_eq!(snapshot.failures(ImageErrorKind::NotFound), 2);
        assert_eq!(snapshot.failures(ImageErrorKind::Io), 1);
        assert_eq!(snapshot.failures(ImageErrorKind::Denied), 0);
        assert_eq!(snapshot.failures_total(), 3);
    }

    #[test]
    fn progress_rate_and_remaining_time() {
        let progress = Progress::new("k", 300, 100, Duration::from_secs(5));
        let later = progress.started + Duration::from_secs(2);
        // 100 bytes in 2 s since the resume offset: 50 B/s, 100 bytes left: 2 s.
        let (rate, remaining) = progress.rate(200, later);
        assert_eq!(rate, 50.0);
        assert_eq!(remaining, Some(2));
        assert_eq!(progress.rate(100, later), (0.0, None));
    }
}
