//! What executing runs reads and writes: the runs the scheduler looks at, a run with its
//! configuration version, plan summaries, errors, log chunks and state versions.

use sqlx::Row;

use super::{BeginWrite, Store, now_ms, on_pool, on_read_pool};
use crate::core::run::RunState;
use crate::core::state::StateMeta;
use crate::core::status::{self, RunFacts};

/// The states in which a run is finished, as SQL (matches the `runs_active` index). A macro so
/// that the statements stay static strings.
macro_rules! final_states {
    () => {
        "('applied', 'planned_and_finished', 'errored', 'discarded', 'canceled', 'force_canceled')"
    };
}

/// The columns [`run_detail`] reads, from a run joined to its configuration version.
macro_rules! select_runs {
    () => {
        "SELECT r.id, r.workspace_id, r.state, r.speculative, r.source, r.commit_sha, \
         r.created_at_ms, r.configuration_version_id, c.repo, c.installation_id, \
         c.archive_sha256, c.uploaded, r.plan_add, r.plan_change, r.plan_destroy, \
         r.resource_changes, r.error, r.pr_number, r.retry_of, r.plan_has_changes, \
         CASE WHEN EXISTS (SELECT 1 FROM run_events e WHERE e.run_id = r.id \
         AND e.state = 'applying') THEN 1 ELSE 0 END AS reached_apply \
         FROM runs r JOIN configuration_versions c ON c.id = r.configuration_version_id"
    };
}

/// A run with what executing it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDetail {
    pub id: i64,
    pub workspace_id: i64,
    pub state: RunState,
    pub speculative: bool,
    pub source: String,
    pub commit_sha: String,
    pub created_at_ms: i64,
    pub configuration_version_id: i64,
    pub repo: String,
    pub installation_id: Option<i64>,
    /// SHA-256 of the fetched tarball, once fetched.
    pub archive_sha256: Option<String>,
    /// The configuration was uploaded through the API (not a commit on GitHub): its tarball
    /// is in the database, holds the files at its root, and nothing is reported to GitHub.
    pub uploaded: bool,
    pub plan: Option<PlanCounts>,
    pub error: Option<String>,
    /// The pull request of a speculative plan.
    pub pr_number: Option<i64>,
    /// The run this one retries.
    pub retry_of: Option<i64>,
    /// The run got as far as applying: an error now is an apply failure.
    pub reached_apply: bool,
}

impl RunDetail {
    /// What every place that shows a run says about it (its commit status and check run on
    /// GitHub, the UI, the API) is decided from these facts. `error`: a better reason than
    /// the stored one, when the caller has it (Terraform's first error line in the log).
    pub fn facts<'a>(&'a self, error: Option<&'a str>) -> RunFacts<'a> {
        RunFacts {
            state: self.state,
            speculative: self.speculative,
            plan: self
                .plan
                .as_ref()
                .map(|p| (p.add, p.change, p.destroy, p.has_changes)),
            reached_apply: self.reached_apply,
            error: error.or(self.error.as_deref()),
        }
    }

    /// The run in one line, as its commit status describes it ("Apply failed: …").
    pub fn summary(&self) -> String {
        status::run_status(&self.facts(None)).description
    }

    /// The run's commit on GitHub (`web_url` is GitHub's web address); none for an upload,
    /// whose "commit" is its tarball's SHA-256.
    pub fn commit_url(&self, web_url: &str) -> Option<String> {
        let web = web_url.trim_end_matches('/');
        (!self.uploaded).then(|| format!("{web}/{}/commit/{}", self.repo, self.commit_sha))
    }

    /// The pull request a speculative plan belongs to.
    pub fn pr_url(&self, web_url: &str) -> Option<String> {
        let web = web_url.trim_end_matches('/');
        self.pr_number
            .map(|n| format!("{web}/{}/pull/{n}", self.repo))
    }
}

/// The plan summary as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlanCounts {
    pub add: i64,
    pub change: i64,
    pub destroy: i64,
    /// Changes of any kind, outputs included.
    #[serde(default)]
    pub has_changes: bool,
    /// `[{"address": …, "actions": […]}]`
    pub resource_changes: serde_json::Value,
}

/// id, serial, lineage, checksum, state, run_id
type StateVersionRow = (i64, i64, String, String, Vec<u8>, Option<i64>);

/// A stored state version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateVersion {
    pub id: i64,
    pub meta: StateMeta,
    pub state: Vec<u8>,
    pub run_id: Option<i64>,
}

/// One stored piece of a run's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChunk {
    pub id: i64,
    pub chunk: String,
}

/// A state a run entered, and when.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RunEvent {
    pub state: String,
    pub at_ms: i64,
    pub detail: Option<String>,
}

impl Store {
    /// A run's events with their times, oldest first.
    pub async fn run_timeline(&self, run_id: i64) -> anyhow::Result<Vec<RunEvent>> {
        let rows: Vec<(String, i64, Option<String>)> = on_read_pool!(self, pool => {
            sqlx::query_as(
                "SELECT state, at_ms, detail FROM run_events WHERE run_id = $1 ORDER BY id",
            )
            .bind(run_id)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(state, at_ms, detail)| RunEvent {
                state,
                at_ms,
                detail,
            })
            .collect())
    }

    /// How many runs are in each state.
    pub async fn run_counts(&self) -> anyhow::Result<Vec<(String, i64)>> {
        let rows = on_read_pool!(self, pool => {
            sqlx::query_as("SELECT state, COUNT(*) FROM runs GROUP BY state ORDER BY state")
                .fetch_all(pool)
                .await?
        });
        Ok(rows)
    }

    /// How many runs wait in each workspace's queue (pending, non-speculative).
    pub async fn queue_depths(&self) -> anyhow::Result<Vec<(String, i64)>> {
        let rows = on_read_pool!(self, pool => {
            sqlx::query_as(
                "SELECT w.name, COUNT(r.id) FROM workspaces w LEFT JOIN runs r \
                 ON r.workspace_id = w.id AND r.state = 'pending' AND r.speculative = 0 \
                 WHERE w.archived = 0 GROUP BY w.name ORDER BY w.name",
            )
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }

    /// Workspaces with at least one unfinished, non-speculative run: where the scheduler looks
    /// at start and on its periodic sweep.
    pub async fn workspaces_with_active_runs(&self) -> anyhow::Result<Vec<i64>> {
        let ids = on_read_pool!(self, pool => {
            sqlx::query_scalar(concat!(
                "SELECT DISTINCT workspace_id FROM runs WHERE speculative = 0 AND state NOT IN ",
                final_states!()
            ))
            .fetch_all(pool)
            .await?
        });
        Ok(ids)
    }

    /// A workspace's unfinished, non-speculative runs in queue order, and whether it is locked:
    /// all the queue policy needs.
    pub async fn workspace_queue(
        &self,
        workspace_id: i64,
    ) -> anyhow::Result<(Vec<(i64, RunState)>, bool)> {
        let (rows, locked): (Vec<(i64, String)>, Option<Option<String>>) = on_read_pool!(self, pool => {
            let mut conn = pool.acquire().await?;
            let rows = sqlx::query_as(concat!(
                "SELECT id, state FROM runs WHERE workspace_id = $1 AND speculative = 0 ",
                "AND state NOT IN ",
                final_states!(),
                " ORDER BY id"
            ))
                .bind(workspace_id)
                .fetch_all(&mut *conn)
                .await?;
            let locked = sqlx::query_scalar("SELECT locked_by FROM workspaces WHERE id = $1")
                .bind(workspace_id)
                .fetch_optional(&mut *conn)
                .await?;
            (rows, locked)
        });
        let runs = rows
            .into_iter()
            .map(|(id, state)| {
                let state = RunState::parse(&state)
                    .ok_or_else(|| anyhow::anyhow!("run {id} has an unknown state {state}"))?;
                Ok((id, state))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok((runs, locked.flatten().is_some()))
    }

    /// One run with its configuration version.
    pub async fn run(&self, run_id: i64) -> anyhow::Result<Option<RunDetail>> {
        let row = on_read_pool!(self, pool => {
            sqlx::query(concat!(select_runs!(), " WHERE r.id = $1"))
            .bind(run_id)
            .fetch_optional(pool)
            .await?
            .map(|row| run_detail(&row))
            .transpose()?
        });
        Ok(row)
    }

    /// Starts a queued run (pending → fetching) unless its workspace is locked meanwhile: one
    /// statement, so a lock taken after the scheduler looked still holds the run. Returns
    /// whether it started. A run already holding the workspace (another runner's) makes the
    /// start fail on the database's one-active-run index: not started.
    ///
    /// `owner` (this server's replica id) becomes the run's runner, in the same statement.
    pub async fn start_queued_run(&self, run_id: i64, owner: &str) -> anyhow::Result<bool> {
        let now = now_ms();
        let started = on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let updated = sqlx::query(
                "UPDATE runs SET state = 'fetching', updated_at_ms = $1, runner_owner = $3, \
                 heartbeat_ms = $1 WHERE id = $2 AND state = 'pending' AND NOT EXISTS \
                 (SELECT 1 FROM workspaces w WHERE w.id = runs.workspace_id \
                 AND w.locked_by IS NOT NULL)",
            )
            .bind(now)
            .bind(run_id)
            .bind(owner)
            .execute(&mut *tx)
            .await;
            let started = match updated {
                Ok(done) => done.rows_affected() == 1,
                Err(sqlx::Error::Database(error)) if error.is_unique_violation() => {
                    tracing::warn!(run_id, "another run holds the workspace; not started");
                    return Ok(false);
                }
                Err(error) => return Err(error.into()),
            };
            if started {
                sqlx::query(
                    "INSERT INTO run_events (run_id, state, at_ms) VALUES ($1, 'fetching', $2)",
                )
                .bind(run_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                super::outbox::enqueue_run_feedback((&mut *tx).into(), run_id).await?;
            }
            tx.commit().await?;
            started
        });
        if started {
            self.notify_outbox();
        }
        Ok(started)
    }

    /// Records that a configuration version's tarball is stored under `sha256`.
    pub async fn set_configuration_archive(
        &self,
        configuration_version_id: i64,
        sha256: &str,
    ) -> anyhow::Result<()> {
        on_pool!(self, pool => {
            sqlx::query("UPDATE configuration_versions SET archive_sha256 = $1 WHERE id = $2")
                .bind(sha256)
                .bind(configuration_version_id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Stores a run's plan summary.
    pub async fn record_plan(&self, run_id: i64, plan: &PlanCounts) -> anyhow::Result<()> {
        let changes = plan.resource_changes.to_string();
        on_pool!(self, pool => {
            sqlx::query(
                "UPDATE runs SET plan_add = $1, plan_change = $2, plan_destroy = $3, \
                 resource_changes = $4, plan_has_changes = $6 WHERE id = $5",
            )
            .bind(plan.add)
            .bind(plan.change)
            .bind(plan.destroy)
            .bind(&changes)
            .bind(run_id)
            .bind(i32::from(plan.has_changes))
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Ends a run in `to` (errored, canceled, force-canceled) from `from`, keeping `error` as
    /// the reason. Returns whether the run moved.
    pub async fn end_run(
        &self,
        run_id: i64,
        from: RunState,
        to: RunState,
        error: &str,
    ) -> anyhow::Result<bool> {
        let moved = self
            .transition_run_with_error(run_id, from, to, Some(error), Some(error))
            .await?;
        Ok(moved)
    }

    /// Appends chunks of a run's (masked) output.
    pub async fn append_log(
        &self,
        run_id: i64,
        phase: &str,
        chunks: &[String],
    ) -> anyhow::Result<()> {
        if chunks.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            for chunk in chunks {
                sqlx::query(
                    "INSERT INTO run_logs (run_id, phase, chunk, at_ms) VALUES ($1, $2, $3, $4)",
                )
                .bind(run_id)
                .bind(phase)
                .bind(super::storable(chunk).as_ref())
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// A phase's log chunks after chunk `after` (0: from the start), oldest first.
    pub async fn run_log(
        &self,
        run_id: i64,
        phase: &str,
        after: i64,
    ) -> anyhow::Result<Vec<LogChunk>> {
        let rows: Vec<(i64, String)> = on_read_pool!(self, pool => {
            sqlx::query_as(
                "SELECT id, chunk FROM run_logs WHERE run_id = $1 AND phase = $2 AND id > $3 \
                 ORDER BY id",
            )
            .bind(run_id)
            .bind(phase)
            .bind(after)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(id, chunk)| LogChunk { id, chunk })
            .collect())
    }

    /// The workspace's newest state version.
    pub async fn current_state(&self, workspace_id: i64) -> anyhow::Result<Option<StateVersion>> {
        let newest = self
            .select_state_versions(workspace_id, "ORDER BY serial DESC LIMIT 1", None)
            .await?;
        Ok(newest.into_iter().next())
    }

    /// One state version of the workspace, by id.
    pub async fn state_version(
        &self,
        workspace_id: i64,
        id: i64,
    ) -> anyhow::Result<Option<StateVersion>> {
        let found = self
            .select_state_versions(workspace_id, "AND id = $2", Some(id))
            .await?;
        Ok(found.into_iter().next())
    }

    /// Every state version of a workspace, oldest first.
    pub async fn state_versions(&self, workspace_id: i64) -> anyhow::Result<Vec<StateVersion>> {
        self.select_state_versions(workspace_id, "ORDER BY serial", None)
            .await
    }

    /// The workspace's state versions that `tail` (a fixed SQL suffix, `$2` = `id`) selects.
    async fn select_state_versions(
        &self,
        workspace_id: i64,
        tail: &'static str,
        id: Option<i64>,
    ) -> anyhow::Result<Vec<StateVersion>> {
        let sql = format!(
            "SELECT id, serial, lineage, checksum, state, run_id FROM state_versions \
             WHERE workspace_id = $1 {tail}"
        );
        let rows: Vec<StateVersionRow> = on_read_pool!(self, pool => {
            let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(workspace_id);
            if let Some(id) = id {
                query = query.bind(id);
            }
            query.fetch_all(pool).await?
        });
        Ok(rows
            .into_iter()
            .map(
                |(id, serial, lineage, checksum, state, run_id)| StateVersion {
                    id,
                    meta: StateMeta {
                        serial,
                        lineage,
                        checksum,
                    },
                    state,
                    run_id,
                },
            )
            .collect())
    }

    /// Stores a new state version of a workspace (checked by the caller against the current
    /// one; the unique serial guards against a race all the same). Returns its id.
    pub async fn record_state_version(
        &self,
        workspace_id: i64,
        run_id: i64,
        meta: &StateMeta,
        state: &[u8],
    ) -> anyhow::Result<i64> {
        let id = on_pool!(self, pool => {
            sqlx::query_scalar(
                "INSERT INTO state_versions (workspace_id, serial, lineage, checksum, state, \
                 run_id, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            )
            .bind(workspace_id)
            .bind(meta.serial)
            .bind(&meta.lineage)
            .bind(&meta.checksum)
            .bind(state)
            .bind(run_id)
            .bind(now_ms())
            .fetch_one(pool)
            .await?
        });
        Ok(id)
    }

    /// Moves a run from applying to applied (its state version, if any, already stored).
    pub async fn finish_apply(
        &self,
        run_id: i64,
        state_version: Option<i64>,
    ) -> anyhow::Result<()> {
        let detail = state_version.map(|id| format!("state version {id}"));
        let moved = self
            .transition_run(
                run_id,
                RunState::Applying,
                RunState::Applied,
                detail.as_deref(),
            )
            .await?;
        anyhow::ensure!(moved, "run {run_id} was no longer applying");
        Ok(())
    }
}

pub(super) fn run_detail<R>(row: &R) -> anyhow::Result<RunDetail>
where
    R: Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i32: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let state: String = row.try_get("state")?;
    let plan = match (
        row.try_get::<Option<i64>, _>("plan_add")?,
        row.try_get::<Option<i64>, _>("plan_change")?,
        row.try_get::<Option<i64>, _>("plan_destroy")?,
    ) {
        (Some(add), Some(change), Some(destroy)) => {
            let changes: Option<String> = row.try_get("resource_changes")?;
            Some(PlanCounts {
                add,
                change,
                destroy,
                has_changes: row
                    .try_get::<Option<i32>, _>("plan_has_changes")?
                    .unwrap_or(0)
                    != 0,
                resource_changes: changes
                    .map(|c| serde_json::from_str(&c))
                    .transpose()?
                    .unwrap_or_default(),
            })
        }
        _ => None,
    };
    Ok(RunDetail {
        id: row.try_get("id")?,
        workspace_id: row.try_get("workspace_id")?,
        state: RunState::parse(&state)
            .ok_or_else(|| anyhow::anyhow!("unknown run state {state}"))?,
        speculative: row.try_get::<i32, _>("speculative")? != 0,
        source: row.try_get("source")?,
        commit_sha: row.try_get("commit_sha")?,
        created_at_ms: row.try_get("created_at_ms")?,
        configuration_version_id: row.try_get("configuration_version_id")?,
        repo: row.try_get("repo")?,
        installation_id: row.try_get("installation_id")?,
        archive_sha256: row.try_get("archive_sha256")?,
        uploaded: row.try_get::<i32, _>("uploaded")? != 0,
        plan,
        error: row.try_get("error")?,
        pr_number: row.try_get("pr_number")?,
        retry_of: row.try_get("retry_of")?,
        reached_apply: row.try_get::<i32, _>("reached_apply")? != 0,
    })
}
