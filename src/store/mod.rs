//! The only place with SQL. One [`Store`] with SQLite (embedded default) or PostgreSQL behind
//! it; the rest of Gantry sees plain Rust types and never a pool or a dialect.
//!
//! Most statements are written once in the common subset of both dialects (`$1` placeholders
//! work in both through sqlx); [`on_pool!`] runs such a body against whichever pool is open.
//! Where the dialects differ, a method matches on [`Db`] explicitly.

// First: its `select_runs!` and `final_states!` are used by the modules after it.
#[macro_use]
mod runs;
mod assessments;
mod cipher;
mod deliveries;
mod effects;
mod ingest_writer;
mod installations;
mod notifications;
mod outbox;
mod policy_checks;
mod state_versions;
mod tokens;
mod workspaces;

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

pub use assessments::{Assessment, Ended as AssessmentEnded};
pub use cipher::{Cipher, Unreadable};
pub use deliveries::{
    DeliveryOutcome, InsertOutcome, NewDelivery, PendingDelivery, StoredDelivery,
};
pub use effects::{CancelScope, DeliveryEffect, SpeculativeCancel};
pub use ingest_writer::IngestWriter;
pub use installations::{Installation, InstallationChange};
pub(crate) use notifications::enqueue_notifications;
pub use notifications::{DeliveryResponse, Notice, NotificationConfiguration};
pub use outbox::{
    AggregateTarget, Message, OutboxItem, OutboxRow, Priority, RawCheck, RawStatus, Reaction,
    Reply, ShownStatus, UNTOUCHED_DESCRIPTION, UntouchedContexts,
};
pub use runs::{
    Also, Cause, ConfigurationUpload, LogChunk, Move, MoveError, NewRuns, PlanCounts,
    PolicyOverride, RunDetail, RunEvent, RunPage, RunRecord, RunSource,
};
pub use state_versions::{AnnouncedState, Author, StateUpload, StateVersion};
pub use tokens::Session;
pub use workspaces::{SyncReport, Workspace, WorkspaceEvent, WorkspaceLock, WorkspaceWriteError};

/// The PostgreSQL channel a commit of new deliveries is announced on, for other replicas.
const DELIVERIES_CHANNEL: &str = "gantry_deliveries";
/// The PostgreSQL channel a change of a workspace's runs is announced on (payload: its id).
const RUNS_CHANNEL: &str = "gantry_runs";

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// An open database of either kind.
#[derive(Clone, Debug)]
pub enum Db {
    /// SQLite has one writer at a time: all writes go through a single connection (no lock
    /// contention, and its page cache stays warm), reads through a pool of their own.
    Sqlite {
        write: SqlitePool,
        read: SqlitePool,
        /// The database file; None for an in-memory database.
        path: Option<std::path::PathBuf>,
    },
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the open pool, whichever kind it is. The body is compiled
/// once per backend, so it must only use SQL and types both understand.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.db {
            $crate::store::Db::Sqlite { write: $pool, .. } => $body,
            $crate::store::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// [`on_pool!`] for statements that only read: on SQLite they run beside the writer.
macro_rules! on_read_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.db {
            $crate::store::Db::Sqlite { read: $pool, .. } => $body,
            $crate::store::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_read_pool;

/// Opens a transaction that writes. On SQLite it takes the write lock at once
/// (`BEGIN IMMEDIATE`, waiting for the other writer if need be): a transaction that read first
/// would otherwise fail outright (`SQLITE_BUSY_SNAPSHOT`, no waiting) when it came to write
/// after the ingest writer had committed in between.
pub(crate) trait BeginWrite {
    type Database: sqlx::Database;

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Self::Database>, sqlx::Error>;
}

impl BeginWrite for SqlitePool {
    type Database = sqlx::Sqlite;

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.begin_with("BEGIN IMMEDIATE").await
    }
}

impl BeginWrite for PgPool {
    type Database = sqlx::Postgres;

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        self.begin().await
    }
}

/// A connection (usually inside a transaction) of either kind, so that one function can take
/// part in a transaction opened under [`on_pool!`].
pub(crate) enum Conn<'a> {
    Sqlite(&'a mut sqlx::SqliteConnection),
    Postgres(&'a mut sqlx::PgConnection),
}

impl Conn<'_> {
    /// The same connection for one more statement, this one kept for later ones.
    pub(crate) fn reborrow(&mut self) -> Conn<'_> {
        match self {
            Conn::Sqlite(c) => Conn::Sqlite(c),
            Conn::Postgres(c) => Conn::Postgres(c),
        }
    }
}

impl<'a> From<&'a mut sqlx::SqliteConnection> for Conn<'a> {
    fn from(conn: &'a mut sqlx::SqliteConnection) -> Self {
        Conn::Sqlite(conn)
    }
}

impl<'a> From<&'a mut sqlx::PgConnection> for Conn<'a> {
    fn from(conn: &'a mut sqlx::PgConnection) -> Self {
        Conn::Postgres(conn)
    }
}

/// [`on_pool!`] for a [`Conn`].
macro_rules! on_conn {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::store::Conn::Sqlite($c) => $body,
            $crate::store::Conn::Postgres($c) => $body,
        }
    };
}
pub(crate) use on_conn;

#[derive(Clone, Debug)]
pub struct Store {
    db: Db,
    /// Woken after a commit that added outbox rows, so that GitHub hears at once.
    outbox_wake: std::sync::Arc<tokio::sync::Notify>,
    /// Seals sensitive variable values; without it they can be neither written nor read.
    cipher: Option<std::sync::Arc<Cipher>>,
}

impl Store {
    /// Opens (creating if needed) the database named by `url` and applies the migrations.
    pub async fn open(url: &SecretString) -> anyhow::Result<Self> {
        let url = url.expose_secret();
        let db = if url.starts_with("sqlite:") {
            let (write, read, path) = open_sqlite(url).await?;
            Db::Sqlite { write, read, path }
        } else {
            Db::Postgres(open_postgres(url).await?)
        };
        let store = Self {
            db,
            outbox_wake: Default::default(),
            cipher: None,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// This store seals and opens sensitive values with `cipher`.
    pub fn with_cipher(mut self, cipher: Cipher) -> Self {
        self.cipher = Some(std::sync::Arc::new(cipher));
        self
    }

    /// The key that signs URLs handed out without a token (see `Cipher::url_signing_key`).
    pub fn url_signing_key(&self) -> anyhow::Result<[u8; 32]> {
        Ok(*self.cipher()?.url_signing_key())
    }

    /// Stored variables (category, key, value, sensitive) with their sensitive values opened; one
    /// that cannot be opened is an error, never an empty value.
    fn open_variables(
        &self,
        rows: Vec<(String, String, String, i32)>,
    ) -> anyhow::Result<Vec<(String, String, String, bool)>> {
        rows.into_iter()
            .map(|(category, key, stored, sensitive)| {
                let value = if sensitive != 0 && cipher::is_sealed(&stored) {
                    self.cipher()?
                        .open(&stored)
                        .map_err(|e| anyhow::anyhow!("the sensitive variable `{key}`: {e}"))?
                } else {
                    stored
                };
                Ok((category, key, value, sensitive != 0))
            })
            .collect()
    }

    fn cipher(&self) -> anyhow::Result<&Cipher> {
        self.cipher
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("no encryption key for sensitive values was loaded"))
    }

    /// A variable's value as it is stored: sealed when sensitive.
    pub(crate) fn stored_value(
        &self,
        value: &crate::core::workspace::VariableValue,
    ) -> anyhow::Result<String> {
        Ok(if value.sensitive {
            self.cipher()?.seal(&value.value)
        } else {
            value.value.clone()
        })
    }

    async fn migrate(&self) -> anyhow::Result<()> {
        match &self.db {
            Db::Sqlite { write, .. } => SQLITE_MIGRATIONS.run(write).await,
            Db::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await,
        }
        .context("applying database migrations")
    }

    /// A connection of its own for storing deliveries from one thread (SQLite with a file);
    /// None where ingest goes through the pool (PostgreSQL, an in-memory database).
    pub fn ingest_writer(&self) -> anyhow::Result<Option<IngestWriter>> {
        match &self.db {
            Db::Sqlite {
                path: Some(path), ..
            } => IngestWriter::open(path).map(Some),
            _ => Ok(None),
        }
    }

    /// Whether the database answers, for `/readyz`.
    pub async fn ping(&self) -> anyhow::Result<()> {
        on_read_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Completes when rows were added to the outbox since the last wake-up.
    pub async fn outbox_changed(&self) {
        self.outbox_wake.notified().await;
    }

    pub(crate) fn notify_outbox(&self) {
        self.outbox_wake.notify_one();
    }

    /// On PostgreSQL, wakes `wake` whenever any replica stores new deliveries (LISTEN/NOTIFY),
    /// so that a dispatcher starts on them at once instead of at its next poll. Nothing on
    /// SQLite, which has one server per database.
    pub async fn wake_on_new_deliveries(
        &self,
        wake: std::sync::Arc<tokio::sync::Notify>,
    ) -> anyhow::Result<()> {
        self.listen(DELIVERIES_CHANNEL, move |_| wake.notify_one())
            .await
    }

    /// On PostgreSQL, calls `changed` with a workspace id whenever any replica says that
    /// workspace's runs changed ([`Store::announce_workspaces_changed`]). Nothing on SQLite.
    pub async fn on_workspace_changes(
        &self,
        changed: impl Fn(crate::core::WorkspaceId) + Send + 'static,
    ) -> anyhow::Result<()> {
        self.listen(RUNS_CHANNEL, move |payload| {
            for id in payload.split(',').filter_map(|id| id.parse().ok()) {
                changed(id);
            }
        })
        .await
    }

    /// Tells the other replicas (PostgreSQL) that these workspaces' runs changed, so that
    /// their runners look at them now rather than at their next sweep. One notification.
    pub async fn announce_workspaces_changed(&self, workspace_ids: &[crate::core::WorkspaceId]) {
        if let Db::Postgres(pool) = &self.db
            && !workspace_ids.is_empty()
        {
            let ids: Vec<String> = workspace_ids.iter().map(|id| id.0.to_string()).collect();
            let sent = sqlx::query("SELECT pg_notify($1, $2)")
                .bind(RUNS_CHANNEL)
                .bind(ids.join(","))
                .execute(pool)
                .await;
            if let Err(error) = sent {
                tracing::warn!(error = %error, "announcing a workspace change failed");
            }
        }
    }

    async fn listen(
        &self,
        channel: &'static str,
        heard: impl Fn(&str) + Send + 'static,
    ) -> anyhow::Result<()> {
        let Db::Postgres(pool) = &self.db else {
            return Ok(());
        };
        let mut listener = sqlx::postgres::PgListener::connect_with(pool)
            .await
            .with_context(|| format!("listening on {channel}"))?;
        listener.listen(channel).await?;
        tokio::spawn(async move {
            loop {
                match listener.recv().await {
                    Ok(notification) => heard(notification.payload()),
                    // Shutting down: the pool waits for the listener's connection to close.
                    Err(sqlx::Error::PoolClosed) => break,
                    // The listener reconnects on the next recv; meanwhile the polls cover.
                    Err(error) => {
                        tracing::warn!(error = %error, channel, "listening failed");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
        Ok(())
    }

    /// Whether several servers (replicas) may share this database: PostgreSQL. A SQLite
    /// file is one server's own.
    pub fn is_shared(&self) -> bool {
        matches!(self.db, Db::Postgres(_))
    }

    pub fn backend_name(&self) -> &'static str {
        match self.db {
            Db::Sqlite { .. } => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    pub async fn close(&self) {
        match &self.db {
            Db::Sqlite { write, read, .. } => {
                read.close().await;
                write.close().await;
            }
            Db::Postgres(pool) => pool.close().await,
        }
    }
}

async fn open_sqlite(
    url: &str,
) -> anyhow::Result<(SqlitePool, SqlitePool, Option<std::path::PathBuf>)> {
    let options = SqliteConnectOptions::from_str(url)
        .context("parsing the SQLite database URL")?
        .create_if_missing(true)
        // 4 KiB pages (SQLite's default, set here so it stays a decision): a commit rewrites
        // every page it touches in full, and an ingest batch touches a few index pages beside
        // the rows. Measured with `examples/loadgen` (7 KB pushes): half the log bytes per
        // delivery of 16 KiB pages, and faster. A database keeps the page size it was made with.
        .page_size(4096)
        // WAL: readers never block the writer. NORMAL: a commit survives a process crash
        // (SIGKILL); only an OS crash or power loss can take the last commits back.
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true);
    if let Some(parent) = options.get_filename().parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating the database directory {}", parent.display()))?;
    }
    let write = SqlitePoolOptions::new()
        .max_connections(1)
        // Checkpoint every 512 pages (2 MiB) instead of SQLite's 1,000: the commit that
        // checkpoints stalls for less. Ingest's own writer never checkpoints in a commit
        // (ingest_writer.rs).
        .connect_with(options.clone().pragma("wal_autocheckpoint", "512"))
        .await
        .context("opening the SQLite database")?;
    let read = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options.read_only(true))
        .await
        .context("opening the SQLite database for reading")?;
    // SQLite's own answer: an in-memory database has no file.
    let file: String =
        sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
            .fetch_one(&write)
            .await
            .context("asking SQLite for the database file")?;
    let path = (!file.is_empty()).then(|| std::path::PathBuf::from(file));
    Ok((write, read, path))
}

async fn open_postgres(url: &str) -> anyhow::Result<PgPool> {
    let options = PgConnectOptions::from_str(url).context("parsing the PostgreSQL URL")?;
    PgPoolOptions::new()
        .max_connections(10)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .context("connecting to PostgreSQL")
}

/// Text as both databases can keep it: PostgreSQL refuses NUL in text, and webhook payloads
/// (a branch name, a comment) can carry one into an outcome or an error.
pub(crate) fn storable(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') {
        std::borrow::Cow::Owned(text.replace('\0', "\u{FFFD}"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// Milliseconds since the Unix epoch: the one time format in the store, the same in both
/// dialects and cheap to compare.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
