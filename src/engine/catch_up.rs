//! Asks GitHub to redeliver the webhooks Gantry missed (it was down, or answered with an
//! error): at start and every few minutes, from the App's recent deliveries.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::core::catch_up::to_redeliver;
use crate::github::GitHub;
use crate::store::Store;

/// How often the recent deliveries are looked at.
pub const CATCH_UP_EVERY: Duration = Duration::from_secs(300);

pub struct CatchUp {
    store: Store,
    github: Arc<GitHub>,
    /// Deliveries already asked for, so that one is not asked for again and again.
    asked: HashSet<String>,
}

impl CatchUp {
    pub fn new(store: Store, github: Arc<GitHub>) -> Self {
        Self {
            store,
            github,
            asked: HashSet::new(),
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

    /// One look at the recent deliveries; returns how many redeliveries were asked for.
    pub async fn once(&mut self) -> anyhow::Result<usize> {
        let deliveries = self.github.recent_deliveries().await?;
        let mut stored = HashSet::new();
        for delivery in &deliveries {
            if self.store.delivery(&delivery.guid).await?.is_some() {
                stored.insert(delivery.guid.clone());
            }
        }
        let ids = to_redeliver(&deliveries, |guid| stored.contains(guid), &self.asked);
        let mut asked = 0;
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
                    tracing::warn!(delivery_id = %guid, %error, "redelivery request failed")
                }
            }
        }
        Ok(asked)
    }
}
