//! Prometheus metrics of the webhook server.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Label of a webhook outcome.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    /// HTTP status returned.
    pub status: u16,
}

/// Label of a run result.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `ok` or `error`.
    pub result: String,
}

/// The server's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Webhook deliveries by returned status.
    pub webhooks: Family<StatusLabel, Counter>,
    /// Runs by result.
    pub runs: Family<ResultLabel, Counter>,
    /// Unix time of the last successful run.
    pub last_success: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("firework_enricher");
        let webhooks = Family::<StatusLabel, Counter>::default();
        let runs = Family::<ResultLabel, Counter>::default();
        let last_success = Gauge::default();
        registry.register(
            "webhook_deliveries",
            "Webhook deliveries by returned HTTP status",
            webhooks.clone(),
        );
        registry.register("runs", "Render and publish runs by result", runs.clone());
        registry.register(
            "last_success_timestamp_seconds",
            "Unix time of the last successful run",
            last_success.clone(),
        );
        Metrics {
            registry,
            webhooks,
            runs,
            last_success,
        }
    }
}

impl Metrics {
    /// Records a run result.
    pub fn run_finished(&self, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.runs
            .get_or_create(&ResultLabel {
                result: result.to_string(),
            })
            .inc();
        if ok {
            self.last_success.set(jiff::Timestamp::now().as_second());
        }
    }

    /// The OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}
