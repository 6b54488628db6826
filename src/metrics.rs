//! Prometheus metrics at `/metrics`: counters and a histogram kept as things happen
//! (deliveries, ingest latency, outbox sends), and gauges read from the store when scraped
//! (runs by state, queue depth per workspace, outbox backlog), so that they are right after a
//! restart and across replicas.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::store::Store;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    pub event: String,
    /// processed | ignored | failed
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IngestLabels {
    /// The HTTP status answered.
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutboxLabels {
    pub kind: String,
    /// sent | retried | failed
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GitHubCallLabels {
    pub method: String,
    /// The HTTP status GitHub answered, or `error` when no answer came.
    pub status: String,
}

/// The metrics kept as things happen.
pub struct Metrics {
    pub deliveries: Family<DeliveryLabels, Counter>,
    pub ingest_seconds: Family<IngestLabels, Histogram>,
    pub outbox: Family<OutboxLabels, Counter>,
    pub github_calls: Family<GitHubCallLabels, Counter>,
    registry: Registry,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        let ingest_seconds = Family::<IngestLabels, Histogram>::new_with_constructor(|| {
            // 0.5 ms to ~4 s.
            Histogram::new(exponential_buckets(0.0005, 2.0, 14))
        });
        let outbox = Family::<OutboxLabels, Counter>::default();
        let mut registry = Registry::with_prefix("gantry");
        registry.register(
            "deliveries",
            "Webhook deliveries processed, by event and outcome",
            deliveries.clone(),
        );
        registry.register(
            "ingest_seconds",
            "Time to verify, store and answer a webhook",
            ingest_seconds.clone(),
        );
        registry.register(
            "github_outbox_sends",
            "Requests the outbox made to GitHub, by kind and result",
            outbox.clone(),
        );
        let github_calls = Family::<GitHubCallLabels, Counter>::default();
        registry.register(
            "github_api_calls",
            "Requests Gantry made to GitHub's API, by method and answer",
            github_calls.clone(),
        );
        Arc::new(Self {
            deliveries,
            ingest_seconds,
            outbox,
            github_calls,
            registry,
        })
    }

    /// The Prometheus text: what was counted, and what the store says now.
    pub async fn render(&self, store: &Store) -> anyhow::Result<String> {
        let mut text = String::new();
        encode(&mut text, &self.registry)?;
        // The `# EOF` the encoder ends with must come last.
        let text = text.trim_end().trim_end_matches("# EOF").to_string();
        let mut scraped = Registry::with_prefix("gantry");
        let runs = Family::<Vec<(String, String)>, Gauge>::default();
        for (state, count) in store.run_counts().await? {
            runs.get_or_create(&vec![("state".into(), state)])
                .set(count);
        }
        scraped.register("runs", "Runs by state (speculative plans included)", runs);
        let queue = Family::<Vec<(String, String)>, Gauge>::default();
        for (workspace, count) in store.queue_depths().await? {
            queue
                .get_or_create(&vec![("workspace".into(), workspace)])
                .set(count);
        }
        scraped.register(
            "queue_depth",
            "Runs waiting in each workspace's queue",
            queue,
        );
        let policies = Family::<Vec<(String, String)>, Gauge>::default();
        for (enforcement, result, count) in store.policy_check_counts().await? {
            policies
                .get_or_create(&vec![
                    ("enforcement".into(), enforcement),
                    ("result".into(), result),
                ])
                .set(count);
        }
        scraped.register(
            "policy_evaluations",
            "Policy evaluations of runs' plans (the latest plan of each run), by enforcement level \
             and result",
            policies,
        );
        let backlog = Gauge::<i64>::default();
        backlog.set(store.outbox_pending().await?);
        scraped.register(
            "outbox_backlog",
            "Outbox rows not yet sent to GitHub",
            backlog,
        );
        let latest = store.latest_assessments().await?;
        let drifted = Gauge::<i64>::default();
        drifted.set(latest.iter().filter(|a| a.is_drifted()).count() as i64);
        scraped.register(
            "workspaces_drifted",
            "Workspaces whose latest health assessment found drift",
            drifted,
        );
        let failing = Gauge::<i64>::default();
        failing.set(
            latest
                .iter()
                .filter(|a| a.status == "finished" && !a.findings.failed_checks.is_empty())
                .count() as i64,
        );
        scraped.register(
            "workspaces_checks_failed",
            "Workspaces whose latest health assessment found failing checks",
            failing,
        );
        let errored = Gauge::<i64>::default();
        errored.set(latest.iter().filter(|a| a.status == "errored").count() as i64);
        scraped.register(
            "workspaces_assessment_errored",
            "Workspaces whose latest health assessment errored",
            errored,
        );
        let mut more = String::new();
        encode(&mut more, &scraped)?;
        Ok(format!("{text}\n{more}"))
    }
}
