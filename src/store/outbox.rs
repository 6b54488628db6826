//! The durable outbox: what Gantry must still tell GitHub. Rows are written inside the
//! transaction that makes them necessary (a run's state change, a closed delivery) and sent by
//! the outbox worker afterwards; one pending row per (kind, key), so a burst of changes to one
//! run costs one request, and the worker reads the current state when it sends.
//!
//! Results first: rows are sent by [`Priority`], and an in-between state is held a moment
//! before it is sent, so that a result following at once replaces it (one request, not two).

use serde::{Deserialize, Serialize};

use super::{BeginWrite, Conn, Db, Store, now_ms, on_conn, on_pool, on_read_pool};

/// A row waiting this long goes before any newer one, whatever its priority: under a tight
/// budget a steady stream of results never starves the rest.
const STARVING_MS: i64 = 60_000;

/// What a row is to the people waiting on GitHub; rows are sent lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    /// A result someone waits for: a run's final (or waiting for confirmation) state, a
    /// fork's approval check, a reaction or reply to a command.
    Result = 0,
    /// An in-between state (queued, planning, applying), the PR comment and the aggregate
    /// status: held a moment before sending, since what follows at once replaces it.
    Progress = 1,
    /// A workspace the change does not touch ("No changes in this workspace").
    Untouched = 2,
}

/// Run states that are a result for [`enqueue_run_feedback`]: the final ones, and a plan
/// waiting for its confirmation.
macro_rules! result_states {
    () => {
        "('applied', 'planned_and_finished', 'errored', 'discarded', 'canceled', \
         'force_canceled', 'planned')"
    };
}

/// How long a claimed row is its worker's: past this (two request timeouts), the worker is
/// taken for dead and the row is claimed again, by any replica.
const SENDING_LEASE_MS: i64 = 60_000;

/// What an outbox row asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxKind {
    /// The commit status of a run (key: the run id); computed from the run when sent.
    RunStatus,
    /// The check run of a run (key: the run id); computed from the run when sent.
    RunCheck,
    /// A status not tied to a run (key: repo@sha/context); the payload is a [`RawStatus`].
    RawStatus,
    /// A check run not tied to a run (key: repo@sha/name); the payload is a [`RawCheck`].
    RawCheck,
    /// The `gantry` status summing up a commit's workspaces (key: repo@sha); the payload is an
    /// [`AggregateTarget`]; computed from what the other contexts show when sent.
    AggregateStatus,
    /// The pull request's one Gantry comment (key: repo#number); rendered when sent.
    PrComment,
    /// A reaction on a comment (key: repo/comment id); the payload is a [`Reaction`].
    Reaction,
    /// A reply comment on a pull request (key: unique); the payload is a [`Reply`].
    Reply,
}

impl OutboxKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxKind::RunStatus => "run_status",
            OutboxKind::RunCheck => "run_check",
            OutboxKind::RawStatus => "raw_status",
            OutboxKind::RawCheck => "raw_check",
            OutboxKind::AggregateStatus => "aggregate_status",
            OutboxKind::PrComment => "pr_comment",
            OutboxKind::Reaction => "reaction",
            OutboxKind::Reply => "reply",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        [
            OutboxKind::RunStatus,
            OutboxKind::RunCheck,
            OutboxKind::RawStatus,
            OutboxKind::RawCheck,
            OutboxKind::AggregateStatus,
            OutboxKind::PrComment,
            OutboxKind::Reaction,
            OutboxKind::Reply,
        ]
        .into_iter()
        .find(|k| k.as_str() == name)
    }
}

/// A commit status as GitHub takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawStatus {
    pub installation_id: i64,
    pub repo: String,
    pub sha: String,
    pub context: String,
    /// pending | success | failure | error
    pub state: String,
    pub description: String,
    pub target_url: Option<String>,
}

/// A check run as GitHub takes it, for something that is not a run (a fork's approval).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawCheck {
    pub installation_id: i64,
    pub repo: String,
    pub sha: String,
    pub name: String,
    pub status: String,
    pub conclusion: Option<String>,
    pub title: String,
    pub summary: String,
    pub details_url: String,
}

/// Which commit an aggregate status is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggregateTarget {
    pub installation_id: i64,
    pub repo: String,
    pub sha: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reaction {
    pub installation_id: i64,
    pub repo: String,
    pub comment_id: i64,
    pub content: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub installation_id: i64,
    pub repo: String,
    pub pr_number: i64,
    pub body: String,
}

/// Something to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxItem {
    pub kind: OutboxKind,
    pub key: String,
    pub payload: String,
    pub priority: Priority,
}

impl OutboxItem {
    pub fn raw_status(status: &RawStatus) -> Self {
        Self {
            kind: OutboxKind::RawStatus,
            key: format!("{}@{}/{}", status.repo, status.sha, status.context),
            payload: serde_json::to_string(status).unwrap_or_default(),
            priority: Priority::Result,
        }
    }

    /// The status of a workspace the change does not touch: sent after every result.
    pub fn untouched_status(status: &RawStatus) -> Self {
        Self {
            priority: Priority::Untouched,
            ..Self::raw_status(status)
        }
    }

    pub fn raw_check(check: &RawCheck) -> Self {
        Self {
            kind: OutboxKind::RawCheck,
            key: format!("{}@{}/{}", check.repo, check.sha, check.name),
            payload: serde_json::to_string(check).unwrap_or_default(),
            priority: Priority::Result,
        }
    }

    /// Held like an in-between state: a commit's workspaces changing together cost one post.
    pub fn aggregate(target: &AggregateTarget) -> Self {
        Self {
            kind: OutboxKind::AggregateStatus,
            key: format!("{}@{}", target.repo, target.sha),
            payload: serde_json::to_string(target).unwrap_or_default(),
            priority: Priority::Progress,
        }
    }

    pub fn reaction(reaction: &Reaction) -> Self {
        Self {
            kind: OutboxKind::Reaction,
            key: format!(
                "{}/{}/{}",
                reaction.repo, reaction.comment_id, reaction.content
            ),
            payload: serde_json::to_string(reaction).unwrap_or_default(),
            priority: Priority::Result,
        }
    }

    /// `unique` tells replies apart (e.g. the delivery id and the line).
    pub fn reply(reply: &Reply, unique: &str) -> Self {
        Self {
            kind: OutboxKind::Reply,
            key: format!("{}#{}/{unique}", reply.repo, reply.pr_number),
            payload: serde_json::to_string(reply).unwrap_or_default(),
            priority: Priority::Result,
        }
    }

    /// Adds the row in the caller's transaction; a pending row of the same kind and key already
    /// covers it (and takes the more urgent of the two priorities).
    pub(crate) async fn enqueue(&self, conn: Conn<'_>) -> Result<(), sqlx::Error> {
        on_conn!(conn, c => {
            // The newest payload wins: a raw status queued twice before it is sent posts the
            // later text. (Other kinds compute what they send when they send it.)
            sqlx::query(
                "INSERT INTO outbox (kind, key, payload, created_at_ms, priority) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (kind, key) WHERE state = 'pending' \
                 DO UPDATE SET payload = excluded.payload, priority = CASE \
                 WHEN excluded.priority < outbox.priority THEN excluded.priority \
                 ELSE outbox.priority END",
            )
            .bind(self.kind.as_str())
            .bind(&self.key)
            .bind(&self.payload)
            .bind(now_ms())
            .bind(self.priority as i32)
            .execute(&mut *c)
            .await?;
        });
        Ok(())
    }
}

/// Workspaces a pull request's head does not touch, when they get no status of their own
/// (`[feedback] untouched = "aggregate"`): what they show is "no changes", known here but not
/// posted, and the commit's `gantry` status that sums them up is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UntouchedContexts {
    pub target: AggregateTarget,
    pub contexts: Vec<String>,
}

impl UntouchedContexts {
    pub(crate) async fn record(&self, conn: Conn<'_>) -> Result<(), sqlx::Error> {
        on_conn!(conn, c => {
            for context in &self.contexts {
                sqlx::query(
                    "INSERT INTO commit_statuses (repo, sha, context, run_id, state, \
                     description, target_url) VALUES ($1, $2, $3, NULL, 'success', $4, NULL) \
                     ON CONFLICT (repo, sha, context) DO NOTHING",
                )
                .bind(&self.target.repo)
                .bind(&self.target.sha)
                .bind(context)
                .bind(UNTOUCHED_DESCRIPTION)
                .execute(&mut *c)
                .await?;
            }
            OutboxItem::aggregate(&self.target)
                .enqueue((&mut *c).into())
                .await?;
        });
        Ok(())
    }
}

/// What a workspace a change does not touch shows.
pub const UNTOUCHED_DESCRIPTION: &str = "No changes in this workspace";

/// After a run changed: its commit status, and the comment of its pull request if it has one.
/// Called inside the transaction that changed the run. The status and check rows are a
/// [`Priority::Result`] once the run has one, held as [`Priority::Progress`] before.
///
/// A pending row already there covers the change, but only if it is not sent before the
/// change commits: its sender reads the run when it sends. So the covering row is locked until
/// then (a no-op update; DO NOTHING locks nothing): on PostgreSQL a claim waits for this
/// transaction, instead of posting the run as it was before (a finished plan showing
/// "pending" for good). SQLite lets one writer in at a time, which has the same effect.
pub(crate) async fn enqueue_run_feedback(conn: Conn<'_>, run_id: i64) -> Result<(), sqlx::Error> {
    let now = now_ms();
    on_conn!(conn, c => {
        // A run of an uploaded configuration has no commit on GitHub to report on.
        for kind in ["run_status", "run_check"] {
            sqlx::query(concat!(
                "INSERT INTO outbox (kind, key, payload, created_at_ms, priority) \
                 SELECT $3, $1, '{}', $2, CASE WHEN r.state IN ",
                result_states!(),
                " THEN 0 ELSE 1 END FROM runs r \
                 JOIN configuration_versions c ON c.id = r.configuration_version_id \
                 WHERE r.id = $4 AND c.uploaded = 0 \
                 ON CONFLICT (kind, key) WHERE state = 'pending' \
                 DO UPDATE SET payload = outbox.payload, priority = CASE \
                 WHEN excluded.priority < outbox.priority THEN excluded.priority \
                 ELSE outbox.priority END"
            ))
            .bind(run_id.to_string())
            .bind(now)
            .bind(kind)
            .bind(run_id)
            .execute(&mut *c)
            .await?;
        }
        sqlx::query(
            "INSERT INTO outbox (kind, key, payload, created_at_ms, priority) \
             SELECT 'pr_comment', c.repo || '#' || CAST(r.pr_number AS TEXT), '{}', $2, 1 \
             FROM runs r JOIN configuration_versions c ON c.id = r.configuration_version_id \
             WHERE r.id = $1 AND r.pr_number IS NOT NULL \
             ON CONFLICT (kind, key) WHERE state = 'pending' \
             DO UPDATE SET payload = outbox.payload",
        )
        .bind(run_id)
        .bind(now)
        .execute(&mut *c)
        .await?;
    });
    Ok(())
}

/// An outbox row taken for sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub id: i64,
    pub kind: String,
    pub key: String,
    pub payload: String,
    pub attempts: i32,
    /// An earlier try may have reached GitHub without being recorded: its sender died while
    /// sending, or it failed in a way GitHub may still have acted on.
    pub in_doubt: bool,
}

/// What a commit status context shows now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShownStatus {
    pub run_id: Option<i64>,
    pub state: String,
    pub description: String,
    pub target_url: Option<String>,
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
        let now = now_ms();
        let rows = on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let rows: Vec<(i64, String, String, String, i32, bool)> = sqlx::query_as(
                "SELECT id, kind, key, payload, attempts, in_doubt OR state = 'sending' \
                 FROM outbox o \
                 WHERE ((state = 'pending' AND next_attempt_at_ms <= $1 \
                 AND (priority <> 1 OR created_at_ms <= $3)) \
                 OR (state = 'sending' AND lease_expires_ms <= $1)) \
                 AND NOT EXISTS (SELECT 1 FROM outbox s WHERE s.kind = o.kind \
                 AND s.key = o.key AND s.state = 'sending' AND s.lease_expires_ms > $1) \
                 ORDER BY CASE WHEN created_at_ms <= $4 THEN 0 ELSE priority END, id \
                 LIMIT $2",
            )
            .bind(now)
            .bind(limit)
            .bind(now - hold_ms)
            .bind(now - STARVING_MS)
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
                id,
                kind,
                key,
                payload,
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
                .bind(error.map(super::storable).as_deref())
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
            .bind(super::storable(error).as_ref())
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

    /// What a status context shows now.
    pub async fn shown_status(
        &self,
        repo: &str,
        sha: &str,
        context: &str,
    ) -> anyhow::Result<Option<ShownStatus>> {
        let row: Option<(Option<i64>, String, String, Option<String>)> = on_read_pool!(self, pool => {
            sqlx::query_as(
                "SELECT run_id, state, description, target_url FROM commit_statuses \
                 WHERE repo = $1 AND sha = $2 AND context = $3",
            )
            .bind(repo)
            .bind(sha)
            .bind(context)
            .fetch_optional(pool)
            .await?
        });
        Ok(
            row.map(|(run_id, state, description, target_url)| ShownStatus {
                run_id,
                state,
                description,
                target_url,
            }),
        )
    }

    /// The GitHub state every context of a commit shows: (context, state).
    pub async fn shown_statuses(
        &self,
        repo: &str,
        sha: &str,
    ) -> anyhow::Result<Vec<(String, String)>> {
        let rows = on_read_pool!(self, pool => {
            sqlx::query_as(
                "SELECT context, state FROM commit_statuses WHERE repo = $1 AND sha = $2 \
                 ORDER BY context",
            )
            .bind(repo)
            .bind(sha)
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }

    /// Remembers what a status context shows after posting it.
    pub async fn record_shown_status(
        &self,
        repo: &str,
        sha: &str,
        context: &str,
        shown: &ShownStatus,
    ) -> anyhow::Result<()> {
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO commit_statuses (repo, sha, context, run_id, state, description, \
                 target_url) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (repo, sha, context) DO UPDATE SET run_id = excluded.run_id, \
                 state = excluded.state, description = excluded.description, \
                 target_url = excluded.target_url",
            )
            .bind(repo)
            .bind(sha)
            .bind(context)
            .bind(shown.run_id)
            .bind(&shown.state)
            .bind(&shown.description)
            .bind(&shown.target_url)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The check run of a run, once created, and what it last showed.
    pub async fn run_check(&self, run_id: i64) -> anyhow::Result<(Option<i64>, Option<String>)> {
        let row: Option<(Option<i64>, Option<String>)> = on_read_pool!(self, pool => {
            sqlx::query_as("SELECT check_run_id, check_run_shown FROM runs WHERE id = $1")
                .bind(run_id)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.unwrap_or((None, None)))
    }

    pub async fn set_run_check(
        &self,
        run_id: i64,
        check_run_id: i64,
        shown: &str,
    ) -> anyhow::Result<()> {
        on_pool!(self, pool => {
            sqlx::query("UPDATE runs SET check_run_id = $1, check_run_shown = $2 WHERE id = $3")
                .bind(check_run_id)
                .bind(shown)
                .bind(run_id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// The check run made for (repo, sha, name) outside any run.
    pub async fn raw_check_id(
        &self,
        repo: &str,
        sha: &str,
        name: &str,
    ) -> anyhow::Result<Option<i64>> {
        let id = on_read_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT check_run_id FROM raw_checks WHERE repo = $1 AND sha = $2 AND name = $3",
            )
            .bind(repo)
            .bind(sha)
            .bind(name)
            .fetch_optional(pool)
            .await?
        });
        Ok(id)
    }

    /// What the check run made for (repo, sha, name) last showed, as its writer put it.
    pub async fn raw_check_shown(
        &self,
        repo: &str,
        sha: &str,
        name: &str,
    ) -> anyhow::Result<Option<String>> {
        let shown: Option<Option<String>> = on_read_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT shown FROM raw_checks WHERE repo = $1 AND sha = $2 AND name = $3",
            )
            .bind(repo)
            .bind(sha)
            .bind(name)
            .fetch_optional(pool)
            .await?
        });
        Ok(shown.flatten())
    }

    pub async fn set_raw_check_shown(
        &self,
        repo: &str,
        sha: &str,
        name: &str,
        shown: &str,
    ) -> anyhow::Result<()> {
        on_pool!(self, pool => {
            sqlx::query(
                "UPDATE raw_checks SET shown = $4 WHERE repo = $1 AND sha = $2 AND name = $3",
            )
            .bind(repo)
            .bind(sha)
            .bind(name)
            .bind(shown)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    pub async fn set_raw_check_id(
        &self,
        repo: &str,
        sha: &str,
        name: &str,
        check_run_id: i64,
    ) -> anyhow::Result<()> {
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO raw_checks (repo, sha, name, check_run_id) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (repo, sha, name) DO UPDATE SET check_run_id = excluded.check_run_id",
            )
            .bind(repo)
            .bind(sha)
            .bind(name)
            .bind(check_run_id)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The pull request's Gantry comment: its id, and the SHA-256 of the body last written.
    pub async fn pr_comment(
        &self,
        repo: &str,
        pr_number: i64,
    ) -> anyhow::Result<Option<(i64, Option<String>)>> {
        let row = on_read_pool!(self, pool => {
            sqlx::query_as(
                "SELECT comment_id, body_sha256 FROM pr_comments \
                 WHERE repo = $1 AND pr_number = $2",
            )
            .bind(repo)
            .bind(pr_number)
            .fetch_optional(pool)
            .await?
        });
        Ok(row)
    }

    /// Remembers the comment and the body it shows (None: not known).
    pub async fn set_pr_comment(
        &self,
        repo: &str,
        pr_number: i64,
        comment_id: i64,
        body_sha256: Option<&str>,
    ) -> anyhow::Result<()> {
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO pr_comments (repo, pr_number, comment_id, body_sha256) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (repo, pr_number) DO UPDATE SET \
                 comment_id = excluded.comment_id, body_sha256 = excluded.body_sha256",
            )
            .bind(repo)
            .bind(pr_number)
            .bind(comment_id)
            .bind(body_sha256)
            .execute(pool)
            .await?;
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use secrecy::SecretString;

    use crate::core::run::RunState;
    use crate::store::runs::move_run;
    use crate::store::{BeginWrite, Cause, Move, Store, on_pool};

    /// SQLite in `dir`; PostgreSQL (a fresh database) when the test script started one.
    async fn open(dir: &tempfile::TempDir) -> Store {
        let url = match std::env::var("GANTRY_TEST_POSTGRES_URL") {
            Ok(admin) => {
                use sqlx::Connection;
                let name = format!("gantry_unit_{}", hex::encode(rand::random::<[u8; 8]>()));
                let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                format!("{}/{name}", admin.rsplit_once('/').unwrap().0)
            }
            Err(_) => format!("sqlite:{}", dir.path().join("gantry.db").display()),
        };
        Store::open(&SecretString::from(url)).await.unwrap()
    }

    /// A pending push run of a commit on GitHub; returns its id.
    async fn run(store: &Store) -> i64 {
        on_pool!(store, pool => {
            sqlx::query("INSERT INTO workspaces (name, repo) VALUES ('prod', 'o/r')")
                .execute(pool)
                .await
                .unwrap();
            sqlx::query("INSERT INTO configuration_versions (repo, commit_sha) VALUES ('o/r', 'c')")
                .execute(pool)
                .await
                .unwrap();
            sqlx::query_scalar(
                "INSERT INTO runs (workspace_id, configuration_version_id, commit_sha, source) \
                 SELECT w.id, c.id, 'c', 'push' FROM workspaces w, configuration_versions c \
                 RETURNING id",
            )
            .fetch_one(pool)
            .await
            .unwrap()
        })
    }

    #[tokio::test]
    async fn a_row_claimed_while_a_change_it_covers_commits_is_sent_after_the_change() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir).await;
        let run_id = run(&store).await;
        assert!(
            store
                .move_run(&Move::new(
                    run_id,
                    RunState::Pending,
                    RunState::Fetching,
                    Cause::Runner
                ))
                .await
                .unwrap()
        );
        // The next change is being committed: its feedback is covered by the pending row.
        let changing = on_pool!(store, pool => {
            let mut tx = pool.begin_write().await.unwrap();
            let planning = Move::new(run_id, RunState::Fetching, RunState::Planning, Cause::Runner);
            assert!(move_run((&mut *tx).into(), &planning).await.unwrap());
            let (commit, committed) = tokio::sync::oneshot::channel::<()>();
            tokio::spawn(async move {
                let _ = committed.await;
                tx.commit().await.unwrap();
            });
            commit
        });
        // The outbox worker claims the row meanwhile and reads the run to send it.
        let sender = {
            let store = store.clone();
            tokio::spawn(async move {
                let claimed = store.claim_outbox(10, 0).await.unwrap();
                let sent_state = store.run(run_id).await.unwrap().unwrap().state;
                (claimed.len(), sent_state)
            })
        };
        // Time for the claim to reach the row while the change is open (it takes milliseconds;
        // a claim slower than this could only make the test pass without proving anything).
        tokio::time::sleep(Duration::from_millis(300)).await;
        changing.send(()).unwrap();
        let (claimed, sent_state) = sender.await.unwrap();
        assert_eq!(claimed, 2, "the run's status and check rows");
        assert_eq!(
            sent_state,
            RunState::Planning,
            "the claim waited for the change it covers"
        );
    }
}
