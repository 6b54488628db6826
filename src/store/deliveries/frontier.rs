//! SQLite's queue of pending deliveries, kept without an index that ingest has to write.
//!
//! An index of pending deliveries cost every ingest commit a page of the write-ahead log, one of
//! the few pages a commit writes (measured with loadgen: the two such indexes took 10-12% of
//! the server's CPU per delivery). Instead the
//! dispatcher finds new deliveries by walking the table in seq order from a frontier, which it
//! moves forward as it closes them. Every delivery before the frontier is closed or waits for a
//! retry (`next_attempt_ms > 0`); those are found through indexes that a new delivery, with
//! `next_attempt_ms = 0`, never enters (`deliveries_retry_due`, `deliveries_retrying`).
//!
//! A new delivery held behind an earlier one of its repository that waits for a retry would stop
//! the frontier for as long as that retry waits, and every later delivery would be walked past
//! again on each look. So it is deferred: it takes its blocker's next attempt time and waits as
//! a retry does, still behind its blocker.
//!
//! PostgreSQL keeps its indexes of pending deliveries: its dispatchers lease deliveries across
//! replicas (see `Store::claim_deliveries`), and its writes are not this commit path.

use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};

use super::{PendingDelivery, pending_from_row};
use crate::store::{BeginWrite, Conn, now_ms};

/// A candidate's columns, with whether it is held: an earlier delivery of its repository waits
/// for a retry that is not due (`$1` is now). `next_attempt_ms > 0` is spelled out as the
/// index's condition says it, so that SQLite uses `deliveries_retrying`; the check meets the
/// blocker first, as it is the repository's earliest waiting delivery.
macro_rules! candidate {
    () => {
        "SELECT seq, delivery_id, event, repository, payload, attempts, \
         EXISTS (SELECT 1 FROM deliveries e WHERE e.status = 'pending' \
         AND e.repository = d.repository AND e.seq < d.seq AND e.next_attempt_ms > $1 \
         AND e.next_attempt_ms > 0) AS held FROM deliveries d "
    };
}

/// The oldest deliveries that may be taken: new ones from the frontier on, and retries that are
/// due (through `deliveries_retry_due`), each with whether it is held.
pub(super) const CANDIDATES: &str = concat!(
    "SELECT * FROM (",
    candidate!(),
    "WHERE d.seq >= (SELECT seq FROM delivery_frontier) AND d.status = 'pending' \
     AND d.next_attempt_ms = 0 ORDER BY d.seq LIMIT $2) \
     UNION ALL SELECT * FROM (",
    candidate!(),
    "WHERE d.status = 'pending' AND d.next_attempt_ms > 0 AND d.next_attempt_ms <= $1 \
     ORDER BY d.seq LIMIT $2) ORDER BY seq LIMIT $2"
);

/// Moves the frontier to the first new delivery still pending, or past the last delivery when
/// there is none. Run inside a write transaction, so that no ingest commit interleaves: a
/// delivery committed later gets a greater seq (deliveries are never deleted, so a rowid is
/// never reused behind the frontier).
const ADVANCE: &str = "\
    UPDATE delivery_frontier SET seq = COALESCE(\
        (SELECT d.seq FROM deliveries d WHERE d.seq >= delivery_frontier.seq \
            AND d.status = 'pending' AND d.next_attempt_ms = 0 ORDER BY d.seq LIMIT 1), \
        (SELECT MAX(seq) + 1 FROM deliveries), \
        seq)";

/// A repository's earliest delivery waiting for a retry that is not due: what holds its later
/// deliveries back.
const BLOCKER: &str = "\
    SELECT seq, next_attempt_ms FROM deliveries WHERE status = 'pending' AND repository = $1 \
    AND next_attempt_ms > 0 AND next_attempt_ms > $2 ORDER BY seq LIMIT 1";

/// Up to `limit` deliveries to process next, oldest first, none held behind a retry. Held
/// deliveries met on the way are deferred, and the look repeated if they were all it found.
pub(super) async fn pending(
    write: &SqlitePool,
    read: &SqlitePool,
    limit: i64,
) -> anyhow::Result<Vec<PendingDelivery>> {
    loop {
        let now = now_ms();
        let rows = sqlx::query(CANDIDATES)
            .bind(now)
            .bind(limit)
            .fetch_all(read)
            .await?;
        let mut taken = Vec::with_capacity(rows.len());
        let mut held = Vec::new();
        for row in &rows {
            if row.try_get::<bool, _>("held")? {
                held.push(pending_from_row(row)?);
            } else {
                taken.push(pending_from_row(row)?);
            }
        }
        if !held.is_empty() {
            defer(write, &held, now).await?;
        }
        if !taken.is_empty() || held.is_empty() {
            return Ok(taken);
        }
    }
}

/// Makes the held deliveries wait for their blocker's retry, as retries do, so that the
/// frontier can pass them. Per repository, in one statement each: the held retries that came
/// due with their blocker (however many), and the new deliveries met.
async fn defer(write: &SqlitePool, held: &[PendingDelivery], now: i64) -> anyhow::Result<()> {
    let mut tx = write.begin_write().await?;
    let mut repositories: Vec<&str> = held
        .iter()
        .filter_map(|d| d.repository.as_deref())
        .collect();
    repositories.sort_unstable();
    repositories.dedup();
    for repository in repositories {
        let blocker: Option<(i64, i64)> = sqlx::query_as(BLOCKER)
            .bind(repository)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
        // Its blocker is gone (closed meanwhile): nothing holds these back any more.
        let Some((blocker_seq, due_ms)) = blocker else {
            continue;
        };
        sqlx::query(
            "UPDATE deliveries SET next_attempt_ms = $1 WHERE status = 'pending' \
             AND repository = $2 AND next_attempt_ms > 0 AND next_attempt_ms <= $3 AND seq > $4",
        )
        .bind(due_ms)
        .bind(repository)
        .bind(now)
        .bind(blocker_seq)
        .execute(&mut *tx)
        .await?;
        let mut new = QueryBuilder::<Sqlite>::new("UPDATE deliveries SET next_attempt_ms = ");
        new.push_bind(due_ms)
            .push(" WHERE status = 'pending' AND next_attempt_ms = 0 AND seq > ")
            .push_bind(blocker_seq)
            .push(" AND seq IN (");
        let mut list = new.separated(", ");
        for delivery in held
            .iter()
            .filter(|d| d.repository.as_deref() == Some(repository))
        {
            list.push_bind(delivery.seq);
        }
        new.push(")");
        new.build().execute(&mut *tx).await?;
    }
    advance((&mut *tx).into()).await?;
    tx.commit().await?;
    Ok(())
}

/// Moves the frontier past what is no longer new (see [`ADVANCE`]); PostgreSQL has none.
pub(super) async fn advance(conn: Conn<'_>) -> Result<(), sqlx::Error> {
    if let Conn::Sqlite(conn) = conn {
        sqlx::query(ADVANCE).execute(conn).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;
    use secrecy::SecretString;

    use crate::store::{DeliveryOutcome, IngestWriter, NewDelivery, Store};

    async fn open() -> (tempfile::TempDir, Store, IngestWriter) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&url(&dir)).await.unwrap();
        let writer = store.ingest_writer().unwrap().expect("a SQLite file");
        (dir, store, writer)
    }

    fn url(dir: &tempfile::TempDir) -> SecretString {
        SecretString::from(format!("sqlite:{}", dir.path().join("gantry.db").display()))
    }

    fn raw(dir: &tempfile::TempDir) -> Connection {
        Connection::open(dir.path().join("gantry.db")).unwrap()
    }

    fn delivery(id: &str, repository: &str) -> NewDelivery {
        NewDelivery {
            delivery_id: id.into(),
            event: "push".into(),
            action: None,
            installation_id: Some(7),
            repository: Some(repository.into()),
            payload: bytes::Bytes::from_static(b"{}"),
            received_at_ms: 1,
        }
    }

    /// Delivery ids of the deliveries to process next, and their seqs.
    async fn pending(store: &Store) -> (Vec<String>, Vec<i64>) {
        let pending = store
            .claim_deliveries("dispatcher", 10, 60_000)
            .await
            .unwrap();
        (
            pending.iter().map(|d| d.delivery_id.clone()).collect(),
            pending.iter().map(|d| d.seq).collect(),
        )
    }

    async fn close(store: &Store, seqs: &[i64]) {
        let closing: Vec<_> = seqs
            .iter()
            .map(|seq| (*seq, DeliveryOutcome::Processed, Vec::new()))
            .collect();
        store.finish_deliveries(&closing).await.unwrap();
    }

    fn frontier(conn: &Connection) -> i64 {
        conn.query_row("SELECT seq FROM delivery_frontier", [], |row| row.get(0))
            .unwrap()
    }

    fn next_attempt_ms(conn: &Connection, delivery_id: &str) -> i64 {
        conn.query_row(
            "SELECT next_attempt_ms FROM deliveries WHERE delivery_id = ?1",
            [delivery_id],
            |row| row.get(0),
        )
        .unwrap()
    }

    /// The point of the frontier: a new delivery enters no index but the delivery id's, and the
    /// dispatcher's look walks the table from the frontier and reads indexes of retries only.
    #[tokio::test]
    async fn ingest_writes_no_index_of_pending_deliveries() {
        let (dir, _store, _writer) = open().await;
        let conn = raw(&dir);
        let mut indexes = conn
            .prepare("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'deliveries'")
            .unwrap();
        let indexes: Vec<(String, Option<String>)> = indexes
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for (name, sql) in &indexes {
            match sql {
                // UNIQUE (delivery_id): how a redelivery is recognised.
                None => assert_eq!(name, "sqlite_autoindex_deliveries_1"),
                Some(sql) => assert!(sql.contains("next_attempt_ms > 0"), "{sql}"),
            }
        }
        let mut explain = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {}", super::CANDIDATES))
            .unwrap();
        let plan: Vec<String> = explain
            .query_map(rusqlite::params![0, 10], |row| row.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let uses = |what: &str| plan.iter().any(|step| step.contains(what));
        assert!(uses("USING INTEGER PRIMARY KEY (rowid>?)"), "{plan:#?}");
        assert!(uses("USING INDEX deliveries_retry_due"), "{plan:#?}");
        assert!(uses("USING INDEX deliveries_retrying"), "{plan:#?}");
    }

    #[tokio::test]
    async fn new_deliveries_are_found_from_the_frontier_in_order_also_after_a_restart() {
        let (dir, store, mut writer) = open().await;
        writer
            .insert(&[
                delivery("d1", "o/a"),
                delivery("d2", "o/b"),
                delivery("d3", "o/a"),
            ])
            .unwrap();
        let (ids, seqs) = pending(&store).await;
        assert_eq!(ids, ["d1", "d2", "d3"]);
        close(&store, &seqs[..2]).await;
        assert_eq!(
            frontier(&raw(&dir)),
            seqs[2],
            "moved to the first still pending"
        );
        writer.insert(&[delivery("d4", "o/b")]).unwrap();
        assert_eq!(pending(&store).await.0, ["d3", "d4"]);
        // The frontier is stored: a new process starts from it.
        drop((store, writer));
        let store = Store::open(&url(&dir)).await.unwrap();
        let (ids, seqs) = pending(&store).await;
        assert_eq!(ids, ["d3", "d4"]);
        close(&store, &seqs).await;
        assert_eq!(frontier(&raw(&dir)), seqs[1] + 1, "past the last delivery");
        assert!(pending(&store).await.0.is_empty());
    }

    #[tokio::test]
    async fn a_delivery_held_behind_a_retry_waits_with_it_without_stopping_the_frontier() {
        let (dir, store, mut writer) = open().await;
        writer
            .insert(&[
                delivery("d1", "o/a"),
                delivery("d2", "o/a"),
                delivery("d3", "o/b"),
            ])
            .unwrap();
        let (_, seqs) = pending(&store).await;
        // d1 fails for a while; d2 of the same repository was skipped; d3 went through.
        store
            .retry_delivery_later(seqs[0], "GitHub is down", 400)
            .await
            .unwrap();
        close(&store, &seqs[2..]).await;
        // d2 waits for d1's retry, as d1 does ...
        assert!(pending(&store).await.0.is_empty());
        let conn = raw(&dir);
        assert_eq!(next_attempt_ms(&conn, "d2"), next_attempt_ms(&conn, "d1"));
        // ... and holds nothing else up: the frontier is past it.
        assert_eq!(frontier(&conn), seqs[2] + 1);
        writer.insert(&[delivery("d4", "o/b")]).unwrap();
        let (ids, d4) = pending(&store).await;
        assert_eq!(ids, ["d4"]);
        close(&store, &d4).await;
        // When the retry is due, both come back, in order.
        tokio::time::sleep(std::time::Duration::from_millis(450)).await;
        assert_eq!(pending(&store).await.0, ["d1", "d2"]);
    }

    /// When a retry fails again, everything that came due with it (more than one look takes)
    /// waits again with it, and other repositories' deliveries go on.
    #[tokio::test]
    async fn a_retry_that_fails_again_keeps_all_it_holds_waiting_and_others_go_on() {
        let (dir, store, mut writer) = open().await;
        let held: Vec<String> = (0..25).map(|n| format!("held{n}")).collect();
        let mut batch = vec![delivery("first", "o/a")];
        batch.extend(held.iter().map(|id| delivery(id, "o/a")));
        writer.insert(&batch).unwrap();
        let (_, seqs) = pending(&store).await;
        store
            .retry_delivery_later(seqs[0], "GitHub is down", 200)
            .await
            .unwrap();
        // A batch that only retried moves the frontier too: past the first, to the next new.
        assert_eq!(frontier(&raw(&dir)), seqs[0] + 1);
        assert!(pending(&store).await.0.is_empty(), "all wait for the first");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        // Due together: the first comes first, and fails again.
        let (ids, seqs) = pending(&store).await;
        assert_eq!(ids[0], "first");
        store
            .retry_delivery_later(seqs[0], "GitHub is down", 60_000)
            .await
            .unwrap();
        writer.insert(&[delivery("other", "o/b")]).unwrap();
        assert_eq!(pending(&store).await.0, ["other"]);
        let conn = raw(&dir);
        let first = next_attempt_ms(&conn, "first");
        for id in &held {
            assert_eq!(next_attempt_ms(&conn, id), first, "{id}");
        }
    }
}
