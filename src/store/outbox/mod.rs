//! The durable outbox: what Gantry must still tell GitHub. Rows are written inside the
//! transaction that makes them necessary (a run's state change, a closed delivery) and sent by
//! the outbox worker afterwards; one pending row per (kind, key), so a burst of changes to one
//! run costs one request, and the worker reads the current state when it sends.
//!
//! Results first: rows are sent by [`Priority`], and an in-between state is held a moment
//! before it is sent, so that a result following at once replaces it (one request, not two).

mod message;
mod shown;

pub(crate) use message::enqueue_run_feedback;
pub use message::{
    AggregateTarget, Message, OutboxItem, Priority, RawCheck, RawStatus, Reaction, Reply,
    UNTOUCHED_DESCRIPTION, UntouchedContexts,
};
pub use shown::ShownStatus;

use crate::store::{BeginWrite, Db, Store, now_ms, on_pool, on_read_pool};

/// A row waiting this long goes before any newer one, whatever its priority: under a tight
/// budget a steady stream of results never starves the rest.
const STARVING_MS: i64 = 60_000;

/// How long a claimed row is its worker's: past this (two request timeouts), the worker is
/// taken for dead and the row is claimed again, by any replica.
const SENDING_LEASE_MS: i64 = 60_000;

/// An outbox row taken for sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub id: i64,
    pub kind: String,
    pub key: String,
    /// What the row asks for; an error when its payload cannot be read (a row written by a
    /// Gantry that knew kinds this one does not).
    pub message: Result<Message, String>,
    pub attempts: i32,
    /// An earlier try may have reached GitHub without being recorded: its sender died while
    /// sending, or it failed in a way GitHub may still have acted on.
    pub in_doubt: bool,
}

impl Store {
    /// Adds rows outside any other change (e.g. from the API).
    pub async fn enqueue_outbox(&self, items: &[OutboxItem]) -> anyhow::Result<()> {
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            for item in items {
                item.enqueue((&mut *tx).into()).await?;
            }
            tx.commit().await?;
        });
        self.outbox_wake.notify_one();
        Ok(())
    }

    /// Takes up to `limit` due rows, most urgent first ([`Priority`], then oldest), marking them
    /// as being sent: a change made meanwhile gets a pending row of its own instead of being
    /// folded into one in flight. A [`Priority::Progress`] row is due only `hold_ms` after it
    /// was queued.
    pub async fn claim_outbox(&self, limit: i64, hold_ms: i64) -> anyhow::Result<Vec<OutboxRow>> {
        self.claim_outbox_lane(limit, hold_ms, None).await
    }

    /// [`Store::claim_outbox`] of one lane: `Some(true)` notifications only, `Some(false)`
    /// everything else (what goes to GitHub), so that a slow receiver never holds GitHub's
    /// feedback up.
    pub async fn claim_outbox_lane(
        &self,
        limit: i64,
        hold_ms: i64,
        notifications: Option<bool>,
    ) -> anyhow::Result<Vec<OutboxRow>> {
        let now = now_ms();
        let rows = on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let rows: Vec<(i64, String, String, String, i32, bool)> = sqlx::query_as(
                "SELECT id, kind, key, payload, attempts, in_doubt OR state = 'sending' \
                 FROM outbox o \
                 WHERE ((state = 'pending' AND next_attempt_at_ms <= $1 \
                 AND (priority <> 1 OR created_at_ms <= $3)) \
                 OR (state = 'sending' AND lease_expires_ms <= $1)) \
                 AND ($5 IS NULL OR (kind = 'notification') = $5) \
                 AND NOT EXISTS (SELECT 1 FROM outbox s WHERE s.kind = o.kind \
                 AND s.key = o.key AND s.state = 'sending' AND s.lease_expires_ms > $1) \
                 ORDER BY CASE WHEN created_at_ms <= $4 THEN 0 ELSE priority END, id \
                 LIMIT $2",
            )
            .bind(now)
            .bind(limit)
            .bind(now - hold_ms)
            .bind(now - STARVING_MS)
            .bind(notifications)
            .fetch_all(&mut *tx)
            .await?;
            // Only rows still pending are taken: a row another worker claimed meanwhile is not
            // sent twice. A row whose kind and key another worker is sending waits for it
            // (replicas): both would compute the same status and post it twice.
            let mut claimed = Vec::with_capacity(rows.len());
            for row in rows {
                let taken = sqlx::query(
                    "UPDATE outbox SET state = 'sending', lease_expires_ms = $2, \
                     in_doubt = (in_doubt OR state = 'sending') WHERE id = $1 \
                     AND (state = 'pending' OR (state = 'sending' AND lease_expires_ms <= $3))",
                )
                .bind(row.0)
                .bind(now + SENDING_LEASE_MS)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if taken {
                    claimed.push(row);
                }
            }
            tx.commit().await?;
            claimed
        });
        Ok(rows
            .into_iter()
            .map(|(id, kind, key, payload, attempts, in_doubt)| OutboxRow {
                message: Message::from_row(&kind, &key, &payload)
                    .map_err(|e| format!("an outbox row of kind {kind} cannot be read: {e}")),
                id,
                kind,
                key,
                attempts,
                in_doubt,
            })
            .collect())
    }

    pub async fn outbox_sent(&self, id: i64) -> anyhow::Result<()> {
        self.set_outbox_state(id, "sent", None).await
    }

    pub async fn outbox_failed(&self, id: i64, error: &str) -> anyhow::Result<()> {
        self.set_outbox_state(id, "failed", Some(error)).await
    }

    async fn set_outbox_state(
        &self,
        id: i64,
        state: &str,
        error: Option<&str>,
    ) -> anyhow::Result<()> {
        on_pool!(self, pool => {
            sqlx::query("UPDATE outbox SET state = $1, last_error = $2 WHERE id = $3")
                .bind(state)
                .bind(error.map(crate::store::storable).as_deref())
                .bind(id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Puts a row back for another try after `delay_ms`; if a newer pending row of the same
    /// kind and key exists, that one covers it and this one is closed.
    /// `attempt`: whether this try counts toward giving up (a wait a rate limit asked for
    /// does not); a counted try may have reached GitHub, so the row is then in doubt.
    pub async fn outbox_retry(
        &self,
        id: i64,
        error: &str,
        delay_ms: i64,
        attempt: bool,
    ) -> anyhow::Result<()> {
        let now = now_ms();
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let covered: Option<i64> = sqlx::query_scalar(
                "SELECT n.id FROM outbox o JOIN outbox n ON n.kind = o.kind AND n.key = o.key \
                 AND n.state = 'pending' WHERE o.id = $1",
            )
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            let state = if covered.is_some() { "superseded" } else { "pending" };
            sqlx::query(
                "UPDATE outbox SET state = $1, attempts = attempts + $5, last_error = $2, \
                 next_attempt_at_ms = $3, in_doubt = (in_doubt OR $6) WHERE id = $4",
            )
            .bind(state)
            .bind(crate::store::storable(error).as_ref())
            .bind(now + delay_ms)
            .bind(id)
            .bind(i32::from(attempt))
            .bind(attempt)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// At start: rows a crash left "sending" are pending again, in doubt (or closed, if a newer
    /// pending row covers them). Returns how many were put back.
    pub async fn reset_sending_outbox(&self) -> anyhow::Result<u64> {
        // On SQLite this server is the only sender: whatever is `sending` was its own. On
        // PostgreSQL another replica may be sending it now: only expired leases are reset.
        let expired_before = match self.db {
            Db::Sqlite { .. } => i64::MAX,
            Db::Postgres(_) => now_ms(),
        };
        let reset = on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            // A newer row that covers one left in flight sends what that one may have sent.
            sqlx::query(
                "UPDATE outbox SET in_doubt = TRUE WHERE state = 'pending' AND EXISTS \
                 (SELECT 1 FROM outbox s WHERE s.kind = outbox.kind AND s.key = outbox.key \
                 AND s.state = 'sending' AND COALESCE(s.lease_expires_ms, 0) <= $1)",
            )
            .bind(expired_before)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE outbox SET state = 'superseded' WHERE state = 'sending' \
                 AND COALESCE(lease_expires_ms, 0) <= $1 AND EXISTS \
                 (SELECT 1 FROM outbox n WHERE n.kind = outbox.kind AND n.key = outbox.key \
                 AND n.state = 'pending')",
            )
            .bind(expired_before)
            .execute(&mut *tx)
            .await?;
            let reset = sqlx::query(
                "UPDATE outbox SET state = 'pending', in_doubt = TRUE WHERE state = 'sending' \
                 AND COALESCE(lease_expires_ms, 0) <= $1",
            )
            .bind(expired_before)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            reset
        });
        Ok(reset)
    }

    /// Rows still to send, for tests and /readyz.
    pub async fn outbox_pending(&self) -> anyhow::Result<i64> {
        let count = on_read_pool!(self, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE state IN ('pending', 'sending')")
                .fetch_one(pool)
                .await?
        });
        Ok(count)
    }
}

#[cfg(test)]
mod tests;
