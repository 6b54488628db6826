//! Asks GitHub to redeliver the webhooks Gantry missed (it was down, or answered with an
//! error): at start, reading the App's deliveries back to the newest one Gantry had stored,
//! and every few minutes after, back to the previous pass.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::core::catch_up::{HookDelivery, MAX_PAGES, reaches_back_to, read_back_to, to_redeliver};
use crate::github::GitHub;
use crate::store::Store;

/// How often the recent deliveries are looked at.
pub const CATCH_UP_EVERY: Duration = Duration::from_secs(300);

pub struct CatchUp {
    store: Store,
    github: Arc<GitHub>,
    /// Deliveries already asked for, so that one is not asked for again and again.
    asked: HashSet<String>,
    /// When this Gantry started: deliveries stored since then are not where the gap began.
    started_at: DateTime<Utc>,
    /// When the last pass that asked for everything it found began: the next pass reads back
    /// to there. None until then: the first pass reads back to the newest delivery stored
    /// before Gantry started.
    last_pass: Option<DateTime<Utc>>,
}

impl CatchUp {
    pub fn new(store: Store, github: Arc<GitHub>) -> Self {
        Self {
            store,
            github,
            asked: HashSet::new(),
            started_at: Utc::now(),
            last_pass: None,
        }
    }

    pub async fn run(mut self, cancel: CancellationToken) {
        let mut every = tokio::time::interval(CATCH_UP_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = every.tick() => {}
            }
            let once = tokio::select! {
                _ = cancel.cancelled() => return,
                once = self.once() => once,
            };
            match once {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(redelivered = n, "asked GitHub to redeliver missed webhooks")
                }
                Err(error) => tracing::warn!(
                    error = format!("{error:#}"),
                    "catching up on missed webhooks failed"
                ),
            }
        }
    }

    /// One pass over the deliveries since the last one; returns how many redeliveries were
    /// asked for.
    pub async fn once(&mut self) -> anyhow::Result<usize> {
        let now = Utc::now();
        let since = match self.last_pass {
            Some(at) => Some(at),
            None => self
                .store
                .newest_delivery_before(self.started_at.timestamp_millis())
                .await?
                .and_then(DateTime::from_timestamp_millis),
        };
        let back_to = read_back_to(since, now);
        let deliveries = self.read_back(back_to).await?;
        let mut stored = HashSet::new();
        for delivery in &deliveries {
            if self.store.delivery(&delivery.guid).await?.is_some() {
                stored.insert(delivery.guid.clone());
            }
        }
        let ids = to_redeliver(&deliveries, |guid| stored.contains(guid), &self.asked);
        let (mut asked, mut failed) = (0, 0);
        for id in ids {
            let guid = deliveries
                .iter()
                .find(|d| d.id == id)
                .map(|d| d.guid.clone())
                .unwrap_or_default();
            match self.github.redeliver(id).await {
                Ok(()) => {
                    tracing::info!(delivery_id = %guid, "redelivery requested");
                    self.asked.insert(guid);
                    asked += 1;
                }
                Err(error) => {
                    tracing::warn!(delivery_id = %guid, %error, "redelivery request failed");
                    failed += 1;
                }
            }
        }
        // A redelivery GitHub refused is looked for again next time, from as far back.
        if failed == 0 {
            self.last_pass = Some(now);
        }
        Ok(asked)
    }

    /// The App's deliveries from the newest back to `back_to` (GitHub's cursor pagination,
    /// at most [`MAX_PAGES`] pages), without those older than that.
    async fn read_back(&self, back_to: DateTime<Utc>) -> anyhow::Result<Vec<HookDelivery>> {
        let mut deliveries = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let page = self.github.deliveries_page(cursor.as_deref()).await?;
            let far_enough = reaches_back_to(&page.deliveries, back_to);
            deliveries.extend(page.deliveries);
            match page.next {
                Some(next) if !far_enough => cursor = Some(next),
                _ => {
                    cursor = None;
                    break;
                }
            }
        }
        if cursor.is_some() {
            tracing::warn!(
                pages = MAX_PAGES,
                "stopped reading deliveries at the page limit: older missed ones are not redelivered"
            );
        }
        deliveries.retain(|d| d.delivered_at.is_none_or(|at| at >= back_to));
        Ok(deliveries)
    }
}
