//! Webhook deliveries: stored in batches by ingest, taken in order by the dispatcher, and closed
//! with an outcome in the same transaction as whatever processing them changed.

mod frontier;

use std::collections::HashSet;

use sqlx::{QueryBuilder, Row};

use crate::store::{BeginWrite, Db, DeliveryEffect, Store, now_ms, on_pool, on_read_pool};

/// A verified delivery as ingest hands it over: the few fields picked out of the payload beside
/// the raw bytes; the full parse happens later, in the dispatcher.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub delivery_id: String,
    pub event: String,
    pub action: Option<String>,
    pub installation_id: Option<i64>,
    pub repository: Option<String>,
    /// The request body as received (shared, not copied).
    pub payload: bytes::Bytes,
    pub received_at_ms: i64,
}

/// What storing one delivery did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertOutcome {
    Stored,
    /// The delivery id was stored before (a redelivery); nothing was written.
    Duplicate,
}

/// A delivery waiting to be processed.
#[derive(Debug, Clone)]
pub struct PendingDelivery {
    pub seq: i64,
    pub delivery_id: String,
    pub event: String,
    pub repository: Option<String>,
    pub payload: Vec<u8>,
    pub attempts: i32,
}

/// How processing a delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    Processed,
    Ignored(String),
    Failed(String),
}

impl DeliveryOutcome {
    pub fn status(&self) -> &'static str {
        match self {
            DeliveryOutcome::Processed => "processed",
            DeliveryOutcome::Ignored(_) => "ignored",
            DeliveryOutcome::Failed(_) => "failed",
        }
    }

    pub fn detail(&self) -> Option<&str> {
        match self {
            DeliveryOutcome::Processed => None,
            DeliveryOutcome::Ignored(why) | DeliveryOutcome::Failed(why) => Some(why),
        }
    }
}

/// A delivery as stored, for people and tests looking at what happened.
#[derive(Debug, Clone)]
pub struct StoredDelivery {
    pub seq: i64,
    pub delivery_id: String,
    pub event: String,
    pub action: Option<String>,
    pub installation_id: Option<i64>,
    pub repository: Option<String>,
    pub status: String,
    pub outcome_detail: Option<String>,
    pub attempts: i32,
    pub received_at_ms: i64,
    pub processed_at_ms: Option<i64>,
}

impl Store {
    /// Stores a batch of deliveries in one transaction (one commit for many webhook requests)
    /// and says, per input, whether it was new. A delivery id seen before, in the store or
    /// earlier in the same batch, is a duplicate.
    pub async fn insert_deliveries(
        &self,
        batch: &[NewDelivery],
    ) -> anyhow::Result<Vec<InsertOutcome>> {
        let mut seen = HashSet::new();
        let firsts: Vec<&NewDelivery> = batch
            .iter()
            .filter(|d| seen.insert(d.delivery_id.as_str()))
            .collect();
        if firsts.is_empty() {
            return Ok(Vec::new());
        }
        let inserted: HashSet<String> = on_pool!(self, pool => {
            let mut query = QueryBuilder::new(
                "INSERT INTO deliveries (delivery_id, event, action, installation_id, \
                 repository, payload, received_at_ms) ",
            );
            query.push_values(firsts.iter(), |mut row, d| {
                row.push_bind(&d.delivery_id)
                    .push_bind(&d.event)
                    .push_bind(&d.action)
                    .push_bind(d.installation_id)
                    .push_bind(&d.repository)
                    .push_bind(d.payload.as_ref())
                    .push_bind(d.received_at_ms);
            });
            query.push(" ON CONFLICT (delivery_id) DO NOTHING RETURNING delivery_id");
            query
                .build()
                .fetch_all(pool)
                .await?
                .iter()
                .map(|row| row.try_get::<String, _>(0))
                .collect::<Result<_, _>>()?
        });
        if let Db::Postgres(pool) = &self.db
            && !inserted.is_empty()
        {
            // Wakes every replica's dispatcher (this one's too).
            sqlx::query("SELECT pg_notify($1, '')")
                .bind(crate::store::DELIVERIES_CHANNEL)
                .execute(pool)
                .await?;
        }
        // Only the first occurrence of an id in the batch can be the stored one.
        let mut claimed = HashSet::new();
        Ok(batch
            .iter()
            .map(|d| {
                if inserted.contains(&d.delivery_id) && claimed.insert(d.delivery_id.as_str()) {
                    InsertOutcome::Stored
                } else {
                    InsertOutcome::Duplicate
                }
            })
            .collect())
    }

    /// The deliveries this dispatcher (`owner`) may process next, leased to it for `lease_ms`,
    /// oldest first. A repository's deliveries stay in order: none is taken while an earlier
    /// one of the same repository waits for a retry (a later push must not run before an
    /// earlier one).
    ///
    /// On PostgreSQL several replicas dispatch at once: each takes the oldest pending
    /// deliveries no live lease holds (`FOR UPDATE SKIP LOCKED`, so replicas never wait on
    /// each other) and leases them; a replica that dies leaves leases that expire, and another
    /// replica takes the deliveries over. A repository's later delivery is not taken while an
    /// earlier one is leased by another replica, which keeps each repository in order across
    /// replicas. SQLite has one dispatcher per database: it reads, without leases, and defers
    /// the held deliveries it meets to their blocker's retry (see `delivery_frontier`).
    pub async fn claim_deliveries(
        &self,
        owner: &str,
        limit: i64,
        lease_ms: i64,
    ) -> anyhow::Result<Vec<PendingDelivery>> {
        let pool = match &self.db {
            Db::Sqlite { write, read, .. } => {
                return frontier::pending(write, read, limit).await;
            }
            Db::Postgres(pool) => pool,
        };
        let now = now_ms();
        let mut claimed = sqlx::query(
            "UPDATE deliveries SET lease_owner = $1, lease_expires_ms = $2 WHERE seq IN (\
             SELECT seq FROM deliveries d WHERE status = 'pending' AND next_attempt_ms <= $3 \
             AND (lease_expires_ms IS NULL OR lease_expires_ms <= $3 OR lease_owner = $1) \
             AND NOT EXISTS (SELECT 1 FROM deliveries e WHERE e.status = 'pending' \
             AND e.repository = d.repository AND e.seq < d.seq AND (e.next_attempt_ms > $3 \
             OR (e.lease_expires_ms > $3 AND e.lease_owner <> $1))) \
             ORDER BY seq LIMIT $4 FOR UPDATE SKIP LOCKED) \
             RETURNING seq, delivery_id, event, repository, payload, attempts",
        )
        .bind(owner)
        .bind(now + lease_ms)
        .bind(now)
        .bind(limit)
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(|row| pending_from_row(&row))
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
        claimed.sort_by_key(|d| d.seq);
        Ok(claimed)
    }

    /// Closes deliveries with their outcomes and applies what processing them decided, all in
    /// one transaction: after a crash either all of it happened or none did, and the deliveries
    /// are processed again from scratch. One commit (and one statement per distinct outcome)
    /// for many deliveries keeps the dispatcher from holding the database against ingest.
    ///
    /// Effects are applied only for the deliveries this call closed: one that another process
    /// closed first is left as it is, so its effects never happen twice.
    pub async fn finish_deliveries(
        &self,
        closing: &[(i64, DeliveryOutcome, Vec<DeliveryEffect>)],
    ) -> anyhow::Result<()> {
        let mut by_outcome: Vec<(&DeliveryOutcome, Vec<i64>)> = Vec::new();
        for (seq, outcome, _) in closing {
            match by_outcome.iter_mut().find(|(o, _)| *o == outcome) {
                Some((_, seqs)) => seqs.push(*seq),
                None => by_outcome.push((outcome, vec![*seq])),
            }
        }
        let now = now_ms();
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let mut closed = HashSet::new();
            for (outcome, seqs) in &by_outcome {
                let mut query = QueryBuilder::new("UPDATE deliveries SET status = ");
                query
                    .push_bind(outcome.status())
                    .push(", outcome_detail = ")
                    .push_bind(outcome.detail().map(|d| crate::store::storable(d).into_owned()))
                    .push(", processed_at_ms = ")
                    .push_bind(now)
                    .push(", attempts = attempts + 1 WHERE status = 'pending' AND seq IN (");
                let mut list = query.separated(", ");
                for seq in seqs {
                    list.push_bind(*seq);
                }
                query.push(") RETURNING seq");
                for row in query.build().fetch_all(&mut *tx).await? {
                    closed.insert(row.try_get::<i64, _>(0)?);
                }
            }
            for (seq, _, effects) in closing {
                if closed.contains(seq) {
                    for effect in effects {
                        effect.apply((&mut *tx).into()).await?;
                    }
                }
            }
            frontier::advance((&mut *tx).into()).await?;
            tx.commit().await?;
        });
        if closing.iter().any(|(_, _, effects)| !effects.is_empty()) {
            self.notify_outbox();
        }
        Ok(())
    }

    /// Leaves a delivery pending after a passing failure, to be tried again after `delay_ms`.
    pub async fn retry_delivery_later(
        &self,
        seq: i64,
        error: &str,
        delay_ms: i64,
    ) -> anyhow::Result<()> {
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "UPDATE deliveries SET attempts = attempts + 1, next_attempt_ms = $1, \
                 outcome_detail = $2 WHERE seq = $3 AND status = 'pending'",
            )
            .bind(now_ms() + delay_ms)
            .bind(crate::store::storable(error).as_ref())
            .bind(seq)
            .execute(&mut *tx)
            .await?;
            frontier::advance((&mut *tx).into()).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// One delivery by its GitHub delivery id.
    pub async fn delivery(&self, delivery_id: &str) -> anyhow::Result<Option<StoredDelivery>> {
        let row = on_read_pool!(self, pool => {
            sqlx::query(
                "SELECT seq, delivery_id, event, action, installation_id, repository, status, \
                 outcome_detail, attempts, received_at_ms, processed_at_ms \
                 FROM deliveries WHERE delivery_id = $1",
            )
            .bind(delivery_id)
            .fetch_optional(pool)
            .await?
            .map(|row| stored_delivery(&row))
            .transpose()?
        });
        Ok(row)
    }

    /// When the newest delivery received before `before_ms` was received: where a catch-up
    /// after downtime reads back to.
    pub async fn newest_delivery_before(&self, before_ms: i64) -> anyhow::Result<Option<i64>> {
        let at = on_read_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT received_at_ms FROM deliveries WHERE received_at_ms < $1 \
                 ORDER BY seq DESC LIMIT 1",
            )
            .bind(before_ms)
            .fetch_optional(pool)
            .await?
        });
        Ok(at)
    }

    /// How many deliveries are in each status.
    pub async fn delivery_counts(&self) -> anyhow::Result<Vec<(String, i64)>> {
        let counts = on_read_pool!(self, pool => {
            sqlx::query_as::<_, (String, i64)>(
                "SELECT status, COUNT(*) FROM deliveries GROUP BY status ORDER BY status",
            )
            .fetch_all(pool)
            .await?
        });
        Ok(counts)
    }
}

fn stored_delivery<R: Row>(row: &R) -> Result<StoredDelivery, sqlx::Error>
where
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i32: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(StoredDelivery {
        seq: row.try_get("seq")?,
        delivery_id: row.try_get("delivery_id")?,
        event: row.try_get("event")?,
        action: row.try_get("action")?,
        installation_id: row.try_get("installation_id")?,
        repository: row.try_get("repository")?,
        status: row.try_get("status")?,
        outcome_detail: row.try_get("outcome_detail")?,
        attempts: row.try_get("attempts")?,
        received_at_ms: row.try_get("received_at_ms")?,
        processed_at_ms: row.try_get("processed_at_ms")?,
    })
}

pub(super) fn pending_from_row<R: Row>(row: &R) -> Result<PendingDelivery, sqlx::Error>
where
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i32: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(PendingDelivery {
        seq: row.try_get("seq")?,
        delivery_id: row.try_get("delivery_id")?,
        event: row.try_get("event")?,
        repository: row.try_get("repository")?,
        payload: row.try_get("payload")?,
        attempts: row.try_get("attempts")?,
    })
}
