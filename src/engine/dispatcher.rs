//! Processes stored deliveries in the order they arrived, at least once: a delivery is closed
//! (with its outcome and effects, in one transaction) only after it was handled, so one stored
//! but not processed before a crash is processed after the restart, and one already closed is
//! never processed again.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::handlers::{Context, closing, handle};
use super::runner::RunControl;
use crate::config::Config;
use crate::github::GitHub;
use crate::metrics::{DeliveryLabels, Metrics};
use crate::store::{DeliveryEffect, DeliveryOutcome, PendingDelivery, Store};

/// Deliveries taken from the store at a time.
const BATCH: i64 = 64;
/// How often the store is looked at even without a wake-up (retries that came due).
const IDLE_POLL: Duration = Duration::from_secs(2);
/// A delivery whose handling keeps failing for passing reasons is given up after this many tries.
const MAX_ATTEMPTS: i32 = 8;
/// How long deliveries taken by this dispatcher are its own (PostgreSQL replicas): a batch is
/// done long before; a replica that died frees its deliveries after this.
const LEASE: Duration = Duration::from_secs(60);

pub struct Dispatcher {
    store: Store,
    context: Context,
    wake: Arc<Notify>,
    /// Told which workspaces got new runs, and which speculative plans to stop.
    runs: Arc<RunControl>,
    metrics: Arc<Metrics>,
    /// Names this dispatcher's leases among the replicas'.
    owner: String,
}

impl Dispatcher {
    /// A dispatcher acting by `config`'s pull request and feedback settings and public URL.
    pub fn new(
        store: Store,
        github: Arc<GitHub>,
        wake: Arc<Notify>,
        runs: Arc<RunControl>,
        config: &Config,
        metrics: Arc<Metrics>,
    ) -> Self {
        let context = Context {
            store: store.clone(),
            github,
            pull_requests: config.pull_requests.clone(),
            feedback: config.feedback,
            public_url: config.public_url.clone(),
            guarded_sets: (config.policies.guarded_sets().into_iter())
                .map(String::from)
                .collect(),
        };
        Self {
            store,
            context,
            wake,
            runs,
            metrics,
            owner: format!("dispatcher-{:016x}", rand::random::<u64>()),
        }
    }

    /// Runs until `cancel` fires; finishes the delivery in hand first.
    pub async fn run(self, cancel: CancellationToken) {
        tracing::info!("dispatcher started");
        while !cancel.is_cancelled() {
            match self.dispatch_pending().await {
                Ok(0) => {
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = self.wake.notified() => {}
                        _ = tokio::time::sleep(IDLE_POLL) => {}
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::error!(
                        error = format!("{error:#}"),
                        "reading pending deliveries failed"
                    );
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = tokio::time::sleep(IDLE_POLL) => {}
                    }
                }
            }
        }
        tracing::info!("dispatcher stopped");
    }

    /// Processes one batch of pending deliveries, in order, and closes them in one
    /// transaction; returns how many it took.
    pub async fn dispatch_pending(&self) -> anyhow::Result<usize> {
        let lease_ms = LEASE.as_millis() as i64;
        let pending = self
            .store
            .claim_deliveries(&self.owner, BATCH, lease_ms)
            .await?;
        let count = pending.len();
        let mut closing = Vec::with_capacity(count);
        let mut spans = Vec::with_capacity(count);
        // Repositories with a delivery waiting for a retry in this batch: their later
        // deliveries wait too, to keep each repository's order.
        let mut held: Vec<String> = Vec::new();
        for delivery in pending {
            if let Some(repo) = &delivery.repository
                && held.contains(repo)
            {
                continue;
            }
            let span = tracing::info_span!(
                "delivery",
                delivery_id = %delivery.delivery_id,
                event = %delivery.event
            );
            let decided = decide(&self.context, &delivery)
                .instrument(span.clone())
                .await;
            match decided {
                Decided::Close(outcome, effects) => {
                    self.metrics
                        .deliveries
                        .get_or_create(&DeliveryLabels {
                            event: delivery.event.clone(),
                            outcome: outcome.status().to_string(),
                        })
                        .inc();
                    closing.push((delivery.seq, outcome, effects));
                    spans.push(span);
                }
                Decided::Retry { error, delay_ms } => {
                    self.store
                        .retry_delivery_later(delivery.seq, &error, delay_ms)
                        .await?;
                    held.extend(delivery.repository.clone());
                }
            }
        }
        if closing.is_empty() {
            return Ok(count);
        }
        match self.store.finish_deliveries(&closing).await {
            Ok(()) => {
                for ((_, outcome, effects), span) in closing.iter().zip(spans) {
                    span.in_scope(|| log_outcome(outcome));
                    self.announce_runs(effects).await;
                }
            }
            // One delivery may be what makes the batch fail: close them one by one so that it
            // fails alone and the others go on.
            Err(error) => {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "closing a batch failed; closing one by one"
                );
                for (closing, span) in closing.into_iter().zip(spans) {
                    self.close_alone(closing).instrument(span).await?;
                }
            }
        }
        Ok(count)
    }

    async fn close_alone(
        &self,
        (seq, outcome, effects): (i64, DeliveryOutcome, Vec<DeliveryEffect>),
    ) -> anyhow::Result<()> {
        let Err(error) = self
            .store
            .finish_deliveries(&[(seq, outcome.clone(), effects.clone())])
            .await
        else {
            log_outcome(&outcome);
            self.announce_runs(&effects).await;
            return Ok(());
        };
        let error = format!("storing the outcome failed: {error:#}");
        tracing::error!(error, "delivery failed");
        let failed = DeliveryOutcome::Failed(error.clone());
        if self
            .store
            .finish_deliveries(&[(seq, failed, Vec::new())])
            .await
            .is_err()
        {
            // Even that fails: count the attempt so the delivery is given up on eventually.
            self.store
                .retry_delivery_later(seq, &error, backoff_ms(0))
                .await?;
        }
        Ok(())
    }
}

impl Dispatcher {
    /// Tells the runner about the workspaces that got runs from closed deliveries, and stops
    /// the speculative plans they superseded that are already executing.
    async fn announce_runs(&self, effects: &[DeliveryEffect]) {
        for effect in effects {
            match effect {
                DeliveryEffect::CreateRuns(runs) => {
                    let ids = &runs.workspace_ids;
                    self.runs.signal().workspaces_changed(ids.iter().copied());
                    self.store.announce_workspaces_changed(ids).await;
                }
                DeliveryEffect::OverridePolicy(order, _) => {
                    if let Ok(Some(run)) = self.store.run(order.run_id).await {
                        self.runs.signal().workspace_changed(run.workspace_id);
                        (self.store)
                            .announce_workspaces_changed(&[run.workspace_id])
                            .await;
                    }
                }
                DeliveryEffect::CancelSpeculative(cancel) => {
                    let executing = self
                        .store
                        .executing_speculative_runs(&cancel.repo, &cancel.scope)
                        .await;
                    match executing {
                        Ok(ids) => {
                            for id in ids {
                                self.runs.cancel_executing(id, &cancel.reason);
                            }
                        }
                        Err(error) => tracing::error!(
                            error = format!("{error:#}"),
                            "finding superseded plans failed"
                        ),
                    }
                }
                _ => {}
            }
        }
    }
}

enum Decided {
    Close(DeliveryOutcome, Vec<DeliveryEffect>),
    Retry { error: String, delay_ms: i64 },
}

async fn decide(context: &Context, delivery: &PendingDelivery) -> Decided {
    let handled = handle(
        context,
        &delivery.delivery_id,
        &delivery.event,
        &delivery.payload,
    )
    .await;
    match closing(handled) {
        Ok((outcome, effects)) => Decided::Close(outcome, effects),
        Err(error) if delivery.attempts + 1 < MAX_ATTEMPTS => {
            let delay_ms = backoff_ms(delivery.attempts);
            tracing::warn!(error, delay_ms, "processing failed; will retry");
            Decided::Retry { error, delay_ms }
        }
        Err(error) => Decided::Close(DeliveryOutcome::Failed(error), Vec::new()),
    }
}

fn log_outcome(outcome: &DeliveryOutcome) {
    match outcome {
        DeliveryOutcome::Processed => tracing::info!("delivery processed"),
        DeliveryOutcome::Ignored(reason) => tracing::info!(reason, "delivery ignored"),
        DeliveryOutcome::Failed(error) => tracing::warn!(error, "delivery failed"),
    }
}

/// 1 s, 2 s, 4 s … capped at 5 minutes.
fn backoff_ms(attempts: i32) -> i64 {
    (1000_i64 << attempts.clamp(0, 20)).min(300_000)
}
