//! SQLite's ingest writer: a connection of its own, used from one thread, that stores batches
//! of deliveries with no hand-off per statement.
//!
//! Why not the sqlx pool: every sqlx SQLite statement crosses threads several times (the pool,
//! the connection's worker thread, a channel per result row). On a small virtual machine each
//! crossing is a wake-up costing tens of microseconds, and the webhook answer waits for all of
//! them; measured with `examples/loadgen`, they made up most of a commit's time. Here the
//! thread that waits for deliveries is the thread that writes them.
//!
//! The rest of Gantry keeps writing through the sqlx pool; SQLite lets one writer in at a time
//! and the other waits (`BUSY_WAIT`), which a batch of inserts never holds for long.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use rusqlite::{Connection, OpenFlags, params};

use super::{InsertOutcome, NewDelivery};

/// How long a write waits for the other writer (the sqlx pool) before failing.
const BUSY_WAIT: Duration = Duration::from_secs(10);

/// How often the checkpointer copies the log back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(50);
/// Under a steady stream of commits a passive checkpoint never finishes (new frames keep
/// arriving while it copies), so the log is never started over and would grow forever. Past
/// this length the writer finishes the copy itself between two batches: the checkpointer has
/// already copied all but the last few milliseconds' frames, so that is short.
const LONG_LOG_BYTES: i64 = 32 * 1024 * 1024;
/// Passive rounds the checkpointer adds once the log is long, before the writer finishes: each
/// copies what arrived during the round before, so what is left for the writer (with webhooks
/// waiting) keeps shrinking. Measured with loadgen: the writer's finishing checkpoints took
/// ~400 ms per 60k deliveries without them, ~60 ms with them.
const CATCH_UP_ROUNDS: usize = 3;
/// Past this length the checkpointer makes writers wait while it copies everything (the other
/// writer may be what keeps the log from finishing).
const MAX_LOG_BYTES: i64 = 64 * 1024 * 1024;

/// Opened by [`super::Store::ingest_writer`]; not `Sync`: one thread owns it.
pub struct IngestWriter {
    conn: Connection,
    /// Dropped with the writer, which stops the checkpointer.
    _checkpointer: std::sync::mpsc::Sender<()>,
    /// Set by the checkpointer when the log is long: finish the checkpoint after a batch.
    finish_checkpoint: Arc<AtomicBool>,
}

impl std::fmt::Debug for IngestWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestWriter").finish_non_exhaustive()
    }
}

impl IngestWriter {
    /// Opens the database file the store uses (already created and migrated).
    pub(super) fn open(path: &Path) -> anyhow::Result<Self> {
        let conn =
            connect(path).with_context(|| format!("opening {} for ingest", path.display()))?;
        // Never checkpoint in a commit: the checkpointer does it beside the commits.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        conn.pragma_update(None, "journal_size_limit", MAX_LOG_BYTES)?;
        let checkpointer = Checkpointer::open(path)?;
        let finish_checkpoint = checkpointer.log_is_long.clone();
        let (stop, stopped) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("gantry-checkpoint".into())
            .spawn(move || checkpointer.run(&stopped))?;
        Ok(Self {
            conn,
            _checkpointer: stop,
            finish_checkpoint,
        })
    }

    /// Stores a batch in one transaction and says, per input, whether it was new. A delivery
    /// id seen before, in the store or earlier in the same batch, is a duplicate.
    pub fn insert(&mut self, batch: &[NewDelivery]) -> anyhow::Result<Vec<InsertOutcome>> {
        // IMMEDIATE: take the write lock now (waiting for the other writer if need be) rather
        // than fail when a read would have to become a write.
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut outcomes = Vec::with_capacity(batch.len());
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO deliveries (delivery_id, event, action, installation_id, \
                 repository, payload, received_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                 ON CONFLICT (delivery_id) DO NOTHING",
            )?;
            for d in batch {
                let inserted = insert.execute(params![
                    d.delivery_id,
                    d.event,
                    d.action,
                    d.installation_id,
                    d.repository,
                    d.payload.as_ref(),
                    d.received_at_ms,
                ])?;
                outcomes.push(if inserted == 1 {
                    InsertOutcome::Stored
                } else {
                    InsertOutcome::Duplicate
                });
            }
        }
        tx.commit()?;
        if self.finish_checkpoint.swap(false, Ordering::Relaxed) {
            // This batch is answered late by the time the last frames take to copy; the next
            // batch then starts the log over from its beginning. The batch is committed
            // whatever happens here: a failed copy is only logged (the checkpointer retries).
            let copied = self
                .conn
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
            if let Err(error) = copied {
                tracing::warn!(error = %error, "finishing a checkpoint failed");
            }
        }
        Ok(outcomes)
    }
}

/// A connection to the store's database file (created and migrated already), with the same
/// durability as the store's own writer: a commit survives a process crash.
fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.busy_timeout(BUSY_WAIT)?;
    Ok(conn)
}

/// Copies SQLite's write-ahead log back into the database file, on a thread and connection of
/// its own. SQLite's automatic checkpoint does this inside the commit that crosses a threshold,
/// and that commit (with every webhook waiting on it) pays for the copy and two fsyncs.
///
/// Under a steady stream of commits a passive checkpoint never reaches the end of the log, and
/// SQLite syncs the database file only when one does: the copies pile up unsynced, and the
/// checkpoint that finally finishes (the writer's, with webhooks waiting) has to flush them all
/// (measured: ~12 ms of a ~16 ms stall). So the checkpointer syncs the file after each copy,
/// off the webhooks' path, and the finishing sync has only the last few pages left.
struct Checkpointer {
    conn: Connection,
    /// The database file, synced after each checkpoint that copied something new.
    database: std::fs::File,
    /// (frames in the log, frames copied) when the file was last synced. Only an optimization:
    /// SQLite syncs whatever it needs itself.
    synced: std::cell::Cell<(i64, i64)>,
    long_log_frames: i64,
    max_log_frames: i64,
    log_is_long: Arc<AtomicBool>,
}

impl Checkpointer {
    fn open(path: &Path) -> anyhow::Result<Self> {
        let conn =
            connect(path).with_context(|| format!("opening {} for checkpoints", path.display()))?;
        let page_size: i64 = conn.pragma_query_value(None, "page_size", |row| row.get(0))?;
        let page_size = page_size.max(512);
        let database = std::fs::File::open(path)
            .with_context(|| format!("opening {} for syncing", path.display()))?;
        Ok(Self {
            conn,
            database,
            synced: std::cell::Cell::new((0, 0)),
            long_log_frames: LONG_LOG_BYTES / page_size,
            max_log_frames: MAX_LOG_BYTES / page_size,
            log_is_long: Arc::default(),
        })
    }

    /// Checkpoints every [`CHECKPOINT_EVERY`] until `stop`'s sender is dropped.
    fn run(self, stop: &std::sync::mpsc::Receiver<()>) {
        while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
            stop.recv_timeout(CHECKPOINT_EVERY)
        {
            if let Err(error) = self.checkpoint() {
                tracing::warn!(error = format!("{error:#}"), "checkpointing SQLite failed");
            }
        }
    }

    fn checkpoint(&self) -> anyhow::Result<()> {
        let log_frames = self.copy()?;
        if log_frames > self.long_log_frames {
            for _ in 0..CATCH_UP_ROUNDS {
                self.copy()?;
            }
            self.log_is_long.store(true, Ordering::Relaxed);
        }
        if log_frames > self.max_log_frames {
            // RESTART: writers wait while the rest is copied; the next commit starts the log
            // over from its beginning.
            self.conn
                .query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(()))?;
            tracing::debug!(log_frames, "the write-ahead log was restarted");
        }
        Ok(())
    }

    /// One passive checkpoint (copy what no reader needs, waiting for no one), then a sync of
    /// what it copied. Returns the frames in the log.
    fn copy(&self) -> anyhow::Result<i64> {
        let (_, log_frames, copied_frames): (i64, i64, i64) =
            self.conn
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })?;
        if copied_frames > 0 && self.synced.get() != (log_frames, copied_frames) {
            self.database
                .sync_data()
                .context("syncing the database file")?;
            self.synced.set((log_frames, copied_frames));
        }
        Ok(log_frames)
    }
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;
    use crate::store::{BeginWrite, Db, Store};

    async fn open() -> (tempfile::TempDir, Store, IngestWriter) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("gantry.db").display());
        let store = Store::open(&SecretString::from(url)).await.unwrap();
        let writer = store.ingest_writer().unwrap().expect("a SQLite file");
        (dir, store, writer)
    }

    fn delivery(id: &str) -> NewDelivery {
        NewDelivery {
            delivery_id: id.into(),
            event: "push".into(),
            action: None,
            installation_id: Some(7),
            repository: Some("octo-org/infra".into()),
            payload: bytes::Bytes::from_static(br#"{"ref":"refs/heads/main"}"#),
            received_at_ms: 1,
        }
    }

    #[tokio::test]
    async fn a_batch_says_which_deliveries_were_new() {
        let (_dir, store, mut writer) = open().await;
        store.insert_deliveries(&[delivery("seen")]).await.unwrap();
        let outcomes = writer
            .insert(&[delivery("new"), delivery("seen"), delivery("new")])
            .unwrap();
        use InsertOutcome::*;
        assert_eq!(outcomes, vec![Stored, Duplicate, Duplicate]);
        // Committed, and visible to the store's own connections.
        let pending = store
            .claim_deliveries("dispatcher", 10, 60_000)
            .await
            .unwrap();
        let ids: Vec<_> = pending.iter().map(|d| d.delivery_id.as_str()).collect();
        assert_eq!(ids, ["seen", "new"]);
    }

    #[tokio::test]
    async fn a_write_waits_for_the_other_writer_instead_of_failing() {
        let (dir, store, mut writer) = open().await;
        // Another connection holds SQLite's write lock for a while.
        let other = Connection::open(dir.path().join("gantry.db")).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let inserting = std::thread::spawn(move || writer.insert(&[delivery("d1")]));
        std::thread::sleep(Duration::from_millis(300));
        assert!(!inserting.is_finished(), "the insert waits for the lock");
        other.execute_batch("COMMIT").unwrap();
        let outcomes = inserting.join().unwrap().unwrap();
        assert_eq!(outcomes, vec![InsertOutcome::Stored]);
        assert_eq!(
            store
                .claim_deliveries("dispatcher", 10, 60_000)
                .await
                .unwrap()
                .len(),
            1
        );
    }

    /// Frames in the log and frames already copied into the database file.
    fn log_frames(conn: &Connection) -> (i64, i64) {
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            Ok((row.get(1)?, row.get(2)?))
        })
        .unwrap()
    }

    #[tokio::test]
    async fn commits_leave_the_log_to_the_checkpointer_which_keeps_it_short() {
        let (dir, _store, mut writer) = open().await;
        let path = dir.path().join("gantry.db");
        // A commit does not checkpoint: the log keeps what the batches wrote.
        let frames = fill_log(&path, &mut writer);
        assert!(frames > 20, "{frames} frames in the log");
        // Over its bound the checkpointer restarts the log: the next commit writes at its
        // start instead of after everything before.
        let mut checkpointer = Checkpointer::open(&path).unwrap();
        checkpointer.max_log_frames = 1;
        checkpointer.checkpoint().unwrap();
        assert_log_started_over(&mut writer, frames);
    }

    /// Commits 20 deliveries while a reader from before them keeps the background
    /// checkpointer from copying or restarting anything; returns the frames in the log.
    fn fill_log(path: &Path, writer: &mut IngestWriter) -> i64 {
        let reader = Connection::open(path).unwrap();
        reader
            .execute_batch("BEGIN; SELECT COUNT(*) FROM deliveries;")
            .unwrap();
        for n in 0..20 {
            writer.insert(&[delivery(&format!("d{n}"))]).unwrap();
        }
        let (frames, _) = log_frames(&writer.conn);
        reader.execute_batch("COMMIT").unwrap();
        frames
    }

    /// The next commit writes at the log's start, not after the `frames` before it.
    fn assert_log_started_over(writer: &mut IngestWriter, frames: i64) {
        writer.insert(&[delivery("after")]).unwrap();
        let (after, _) = log_frames(&writer.conn);
        assert!(
            after < frames / 4,
            "{after} frames after a restart (was {frames})"
        );
    }

    #[tokio::test]
    async fn a_long_log_is_finished_by_the_writer_between_batches() {
        let (dir, _store, mut writer) = open().await;
        let path = dir.path().join("gantry.db");
        let frames = fill_log(&path, &mut writer);
        // The checkpointer copies what it can and finds the log long.
        let mut checkpointer = Checkpointer::open(&path).unwrap();
        checkpointer.long_log_frames = 1;
        checkpointer.checkpoint().unwrap();
        assert!(checkpointer.log_is_long.load(Ordering::Relaxed));
        // Commits went on meanwhile, so its copy is not the whole log ...
        writer.insert(&[delivery("meanwhile")]).unwrap();
        // ... which the writer finishes after its next batch, and the log starts over.
        writer.finish_checkpoint.store(true, Ordering::Relaxed);
        writer.insert(&[delivery("last")]).unwrap();
        assert!(!writer.finish_checkpoint.load(Ordering::Relaxed));
        assert_log_started_over(&mut writer, frames);
    }

    #[tokio::test]
    async fn the_stores_write_transactions_wait_for_ingest_instead_of_failing() {
        let (_dir, store, mut writer) = open().await;
        let Db::Sqlite { write, .. } = &store.db else {
            unreachable!()
        };
        // A transaction that reads before it writes, as many of the store's do.
        let mut tx = write.begin_write().await.unwrap();
        let before: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM deliveries")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        // Ingest commits meanwhile (it waits for the transaction's lock) ...
        let inserting = std::thread::spawn(move || writer.insert(&[delivery("d1")]));
        tokio::time::sleep(Duration::from_millis(200)).await;
        // ... and the transaction's write still succeeds: a plain BEGIN would fail here with
        // SQLITE_BUSY_SNAPSHOT, its snapshot older than ingest's commit.
        sqlx::query("UPDATE deliveries SET attempts = attempts + 1")
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(before, 0);
        assert_eq!(
            inserting.join().unwrap().unwrap(),
            vec![InsertOutcome::Stored]
        );
    }
}
