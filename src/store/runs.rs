//! Configuration versions and runs: created (with their variable snapshot and first event) in
//! the same transaction that closes the delivery that caused them.

use sqlx::Row;

use super::execution::RunDetail;
use super::outbox::enqueue_run_feedback;
use super::{BeginWrite, Conn, Store, now_ms, on_conn, on_pool, on_read_pool};
use crate::core::run::RunState;

/// What made a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunSource {
    Push,
    /// A speculative plan for a pull request event.
    PullRequest,
    /// A speculative plan asked for by a comment command (`/gantry plan`).
    Command,
    /// A new run for a failed or canceled one (`/gantry retry`, the API).
    Retry,
    /// Asked for through the API, e.g. of an uploaded configuration.
    Api,
}

impl RunSource {
    fn as_str(self) -> &'static str {
        match self {
            RunSource::Push => "push",
            RunSource::PullRequest => "pull_request",
            RunSource::Command => "command",
            RunSource::Retry => "retry",
            RunSource::Api => "api",
        }
    }
}

/// Runs to create at one commit: one per workspace, none where that commit already has a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRuns {
    pub repo: String,
    pub commit_sha: String,
    pub workspace_ids: Vec<i64>,
    pub source: RunSource,
    /// The delivery that caused the runs; empty for runs asked for through the API.
    pub delivery_id: String,
    /// The GitHub App installation the configuration is fetched with.
    pub installation_id: Option<i64>,
    /// Speculative plans (pull requests): plan only, outside the workspace's queue.
    pub speculative: bool,
    pub pr_number: Option<i64>,
    /// The run each new run retries, by workspace id (retries only).
    pub retry_of: Vec<(i64, i64)>,
}

impl NewRuns {
    /// A retry of `run`: a new run of the same configuration version in the same workspace,
    /// asked for by `delivery_id` (a comment, a re-run button; empty for the API) through
    /// `installation` (else the run's own).
    pub fn retry_of(run: &RunDetail, delivery_id: &str, installation: Option<i64>) -> NewRuns {
        NewRuns {
            repo: run.repo.clone(),
            commit_sha: run.commit_sha.clone(),
            workspace_ids: vec![run.workspace_id],
            source: RunSource::Retry,
            delivery_id: delivery_id.to_string(),
            installation_id: installation.or(run.installation_id),
            speculative: run.speculative,
            pr_number: run.pr_number,
            retry_of: vec![(run.workspace_id, run.id)],
        }
    }

    /// Runs for a push.
    pub fn push(
        repo: String,
        commit_sha: String,
        workspace_ids: Vec<i64>,
        delivery_id: String,
        installation_id: Option<i64>,
    ) -> Self {
        Self {
            repo,
            commit_sha,
            workspace_ids,
            source: RunSource::Push,
            delivery_id,
            installation_id,
            speculative: false,
            pr_number: None,
            retry_of: Vec::new(),
        }
    }
}

/// A run as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    pub id: i64,
    pub workspace_id: i64,
    pub configuration_version_id: i64,
    pub commit_sha: String,
    pub speculative: bool,
    pub state: String,
    pub source: String,
    pub delivery_id: Option<String>,
}

impl NewRuns {
    /// Creates the runs; returns the ids of those made.
    pub(crate) async fn create(&self, conn: Conn<'_>) -> Result<Vec<i64>, sqlx::Error> {
        let now = now_ms();
        let delivery_id = (!self.delivery_id.is_empty()).then_some(&self.delivery_id);
        let mut created = Vec::new();
        on_conn!(conn, c => {
            sqlx::query(
                "INSERT INTO configuration_versions (repo, commit_sha, created_at_ms, \
                 installation_id) VALUES ($1, $2, $3, $4) ON CONFLICT (repo, commit_sha) \
                 DO UPDATE SET installation_id = COALESCE(excluded.installation_id, \
                 configuration_versions.installation_id)",
            )
            .bind(&self.repo)
            .bind(&self.commit_sha)
            .bind(now)
            .bind(self.installation_id)
            .execute(&mut *c)
            .await?;
            let version: i64 = sqlx::query_scalar(
                "SELECT id FROM configuration_versions WHERE repo = $1 AND commit_sha = $2",
            )
            .bind(&self.repo)
            .bind(&self.commit_sha)
            .fetch_one(&mut *c)
            .await?;
            for workspace_id in &self.workspace_ids {
                if self.speculative && self.source == RunSource::PullRequest {
                    // A pull request event for a head that is already being planned (opened and
                    // ready_for_review together, a redelivery) plans it once.
                    let planning: Option<i64> = sqlx::query_scalar(
                        "SELECT id FROM runs WHERE workspace_id = $1 AND commit_sha = $2 \
                         AND speculative = 1 AND pr_number = $3 AND state IN \
                         ('pending', 'fetching', 'planning')",
                    )
                    .bind(workspace_id)
                    .bind(&self.commit_sha)
                    .bind(self.pr_number)
                    .fetch_optional(&mut *c)
                    .await?;
                    if planning.is_some() {
                        continue;
                    }
                }
                if self.source == RunSource::Push && !self.speculative {
                    // The same push again (another delivery of it): its commit is the tip that
                    // ran last. A commit that ran before and is the tip again after another
                    // push (a rollback) runs again.
                    let latest: Option<String> = sqlx::query_scalar(
                        "SELECT commit_sha FROM runs WHERE workspace_id = $1 \
                         AND speculative = 0 AND source = 'push' ORDER BY id DESC LIMIT 1",
                    )
                    .bind(workspace_id)
                    .fetch_optional(&mut *c)
                    .await?;
                    if latest.as_deref() == Some(self.commit_sha.as_str()) {
                        continue;
                    }
                }
                let retry_of = self
                    .retry_of
                    .iter()
                    .find(|(ws, _)| ws == workspace_id)
                    .map(|(_, run)| *run);
                let run: Option<i64> = sqlx::query_scalar(
                    "INSERT INTO runs (workspace_id, configuration_version_id, commit_sha, \
                     speculative, state, source, delivery_id, created_at_ms, updated_at_ms, \
                     pr_number, retry_of) \
                     VALUES ($1, $2, $3, $7, 'pending', $4, $5, $6, $6, $8, $9) \
                     ON CONFLICT DO NOTHING \
                     RETURNING id",
                )
                .bind(workspace_id)
                .bind(version)
                .bind(&self.commit_sha)
                .bind(self.source.as_str())
                .bind(delivery_id)
                .bind(now)
                .bind(i32::from(self.speculative))
                .bind(self.pr_number)
                .bind(retry_of)
                .fetch_optional(&mut *c)
                .await?;
                let Some(run) = run else {
                    // This push made its run in this workspace already, or the run was
                    // retried already (the unique indexes on runs).
                    continue;
                };
                // Pinned now: later variable changes affect only later runs.
                sqlx::query(
                    "INSERT INTO run_variables (run_id, category, key, value, sensitive) \
                     SELECT $1, category, key, value, sensitive FROM workspace_variables \
                     WHERE workspace_id = $2",
                )
                .bind(run)
                .bind(workspace_id)
                .execute(&mut *c)
                .await?;
                sqlx::query("INSERT INTO run_events (run_id, state, at_ms) VALUES ($1, $2, $3)")
                    .bind(run)
                    .bind(RunState::Pending.as_str())
                    .bind(now)
                    .execute(&mut *c)
                    .await?;
                enqueue_run_feedback((&mut *c).into(), run).await?;
                created.push(run);
            }
        });
        Ok(created)
    }
}

impl super::effects::SpeculativeCancel {
    pub(crate) async fn cancel_pending(&self, conn: Conn<'_>) -> Result<(), sqlx::Error> {
        let now = now_ms();
        on_conn!(conn, c => {
            let ids: Vec<i64> = sqlx::query_scalar(
                "UPDATE runs SET state = 'canceled', updated_at_ms = $1, error = $2 \
                 WHERE speculative = 1 AND state = 'pending' AND pr_number = $3 \
                 AND ($4 IS NULL OR commit_sha <> $4) AND configuration_version_id IN \
                 (SELECT id FROM configuration_versions WHERE repo = $5) RETURNING id",
            )
            .bind(now)
            .bind(&self.reason)
            .bind(self.pr_number)
            .bind(&self.except_sha)
            .bind(&self.repo)
            .fetch_all(&mut *c)
            .await?;
            for id in ids {
                sqlx::query(
                    "INSERT INTO run_events (run_id, state, at_ms, detail) \
                     VALUES ($1, 'canceled', $2, $3)",
                )
                .bind(id)
                .bind(now)
                .bind(&self.reason)
                .execute(&mut *c)
                .await?;
                enqueue_run_feedback((&mut *c).into(), id).await?;
            }
        });
        Ok(())
    }
}

impl Store {
    /// A pull request's speculative plans that are executing (fetching or planning), except
    /// those of `except_sha`.
    pub async fn executing_speculative_runs(
        &self,
        repo: &str,
        pr_number: i64,
        except_sha: Option<&str>,
    ) -> anyhow::Result<Vec<i64>> {
        let ids = on_read_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT r.id FROM runs r JOIN configuration_versions c \
                 ON c.id = r.configuration_version_id WHERE r.speculative = 1 \
                 AND r.state IN ('fetching', 'planning') AND r.pr_number = $1 \
                 AND c.repo = $2 AND ($3 IS NULL OR r.commit_sha <> $3) ORDER BY r.id",
            )
            .bind(pr_number)
            .bind(repo)
            .bind(except_sha)
            .fetch_all(pool)
            .await?
        });
        Ok(ids)
    }

    /// Speculative plans waiting to start, oldest first.
    pub async fn pending_speculative_runs(&self) -> anyhow::Result<Vec<i64>> {
        let ids = on_read_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT id FROM runs WHERE speculative = 1 AND state = 'pending' ORDER BY id",
            )
            .fetch_all(pool)
            .await?
        });
        Ok(ids)
    }

    /// The latest speculative plan of each workspace at a commit.
    pub async fn latest_speculative_runs_at(
        &self,
        repo: &str,
        sha: &str,
    ) -> anyhow::Result<Vec<i64>> {
        let ids = on_read_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT MAX(r.id) FROM runs r JOIN configuration_versions c \
                 ON c.id = r.configuration_version_id WHERE r.speculative = 1 \
                 AND r.commit_sha = $1 AND c.repo = $2 GROUP BY r.workspace_id \
                 ORDER BY r.workspace_id",
            )
            .bind(sha)
            .bind(repo)
            .fetch_all(pool)
            .await?
        });
        Ok(ids)
    }

    /// The latest speculative plan of each workspace for a pull request, by workspace id.
    pub async fn pull_request_runs(&self, repo: &str, pr_number: i64) -> anyhow::Result<Vec<i64>> {
        let ids = on_read_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT MAX(r.id) FROM runs r JOIN configuration_versions c \
                 ON c.id = r.configuration_version_id WHERE r.speculative = 1 \
                 AND r.pr_number = $1 AND c.repo = $2 GROUP BY r.workspace_id \
                 ORDER BY r.workspace_id",
            )
            .bind(pr_number)
            .bind(repo)
            .fetch_all(pool)
            .await?
        });
        Ok(ids)
    }

    /// The state of the newest run of each workspace at commit `sha` of `repo` (push runs and
    /// plans alike): (workspace name, state).
    pub async fn commit_run_states(
        &self,
        repo: &str,
        sha: &str,
    ) -> anyhow::Result<Vec<(String, RunState)>> {
        let rows: Vec<(String, String)> = on_read_pool!(self, pool => {
            sqlx::query_as(
                "SELECT w.name, r.state FROM runs r JOIN workspaces w ON w.id = r.workspace_id \
                 WHERE r.id IN (SELECT MAX(r2.id) FROM runs r2 JOIN configuration_versions c \
                 ON c.id = r2.configuration_version_id WHERE c.repo = $1 \
                 AND r2.commit_sha = $2 GROUP BY r2.workspace_id) ORDER BY w.name",
            )
            .bind(repo)
            .bind(sha)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|(name, state)| {
                let state = RunState::parse(&state)
                    .ok_or_else(|| anyhow::anyhow!("run state `{state}` is not known"))?;
                Ok((name, state))
            })
            .collect()
    }

    /// Moves a run from `from` to `to` if the state machine allows it and the run is still in
    /// `from` (another process may have moved it), recording the event. Returns whether it moved.
    pub async fn transition_run(
        &self,
        run_id: i64,
        from: RunState,
        to: RunState,
        detail: Option<&str>,
    ) -> anyhow::Result<bool> {
        self.transition_run_with_error(run_id, from, to, detail, None)
            .await
    }

    /// [`Store::transition_run`] that also keeps `error` as the run's reason for ending, in
    /// the same transaction (a reader never sees the end without its reason).
    pub async fn transition_run_with_error(
        &self,
        run_id: i64,
        from: RunState,
        to: RunState,
        detail: Option<&str>,
        error: Option<&str>,
    ) -> anyhow::Result<bool> {
        from.transition(to)?;
        let error = error.map(super::storable);
        let error = error.as_deref();
        let detail = detail.map(super::storable);
        let detail = detail.as_deref();
        let now = now_ms();
        let moved = on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let moved = sqlx::query(
                "UPDATE runs SET state = $1, updated_at_ms = $2, error = COALESCE($5, error) \
                 WHERE id = $3 AND state = $4",
            )
            .bind(to.as_str())
            .bind(now)
            .bind(run_id)
            .bind(from.as_str())
            .bind(error)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if moved {
                sqlx::query(
                    "INSERT INTO run_events (run_id, state, at_ms, detail) VALUES ($1, $2, $3, $4)",
                )
                .bind(run_id)
                .bind(to.as_str())
                .bind(now)
                .bind(detail)
                .execute(&mut *tx)
                .await?;
                enqueue_run_feedback((&mut *tx).into(), run_id).await?;
            }
            tx.commit().await?;
            moved
        });
        if moved {
            self.notify_outbox();
        }
        Ok(moved)
    }

    /// Errors the runs another server held that it stopped sending heartbeats for: a plan
    /// waiting on its disk (planned, confirmed) once it was silent since `stale_before_ms`; an
    /// apply only once its Terraform is surely gone (silent since `terraform_gone_before_ms`:
    /// a supervisor kills its phase at the phase timeout), so that two Terraforms never work
    /// on one workspace. (Lost plans are queued again: `Store::stale_plans`.)
    pub async fn interrupt_stale_runs(
        &self,
        owner: &str,
        stale_before_ms: i64,
        terraform_gone_before_ms: i64,
    ) -> anyhow::Result<Vec<i64>> {
        self.interrupt_runs(
            "runner_owner IS NOT NULL AND runner_owner <> $2 AND \
             ((state IN ('planned', 'confirmed') AND heartbeat_ms < $3) \
             OR (state = 'applying' AND heartbeat_ms < $5))",
            owner,
            stale_before_ms,
            terraform_gone_before_ms,
            "interrupted: the server executing it stopped",
        )
        .await
    }

    /// This server still executes (or holds the plan of) its runs.
    pub async fn heartbeat_runs(&self, owner: &str) -> anyhow::Result<()> {
        on_pool!(self, pool => {
            sqlx::query(
                "UPDATE runs SET heartbeat_ms = $1 WHERE runner_owner = $2 AND state IN \
                 ('fetching', 'planning', 'planned', 'confirmed', 'applying')",
            )
            .bind(now_ms())
            .bind(owner)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Makes `owner` the server executing the run (a speculative plan it started).
    pub async fn own_run(&self, run_id: i64, owner: &str) -> anyhow::Result<()> {
        on_pool!(self, pool => {
            sqlx::query("UPDATE runs SET runner_owner = $1, heartbeat_ms = $2 WHERE id = $3")
                .bind(owner)
                .bind(now_ms())
                .bind(run_id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// The server executing the run (or holding its plan), if any.
    pub async fn run_owner(&self, run_id: i64) -> anyhow::Result<Option<String>> {
        let owner: Option<Option<String>> = on_read_pool!(self, pool => {
            sqlx::query_scalar("SELECT runner_owner FROM runs WHERE id = $1")
                .bind(run_id)
                .fetch_optional(pool)
                .await?
        });
        Ok(owner.flatten())
    }

    async fn interrupt_runs(
        &self,
        condition: &'static str,
        owner: &str,
        stale_before_ms: i64,
        terraform_gone_before_ms: i64,
        detail: &str,
    ) -> anyhow::Result<Vec<i64>> {
        let now = now_ms();
        let statement = format!(
            "UPDATE runs SET state = 'errored', updated_at_ms = $1, error = $4 \
             WHERE {condition} RETURNING id"
        );
        let interrupted = on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let ids: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(statement.clone()))
                .bind(now)
                .bind(owner)
                .bind(stale_before_ms)
                .bind(detail)
                .bind(terraform_gone_before_ms)
                .fetch_all(&mut *tx)
                .await?;
            for id in &ids {
                sqlx::query(
                    "INSERT INTO run_events (run_id, state, at_ms, detail) \
                     VALUES ($1, 'errored', $2, $3)",
                )
                .bind(id)
                .bind(now)
                .bind(detail)
                .execute(&mut *tx)
                .await?;
                enqueue_run_feedback((&mut *tx).into(), *id).await?;
            }
            tx.commit().await?;
            ids
        });
        self.notify_outbox();
        Ok(interrupted)
    }

    /// A run's events, oldest first: (state, detail).
    pub async fn run_events(&self, run_id: i64) -> anyhow::Result<Vec<(String, Option<String>)>> {
        let events = on_read_pool!(self, pool => {
            sqlx::query_as(
                "SELECT state, detail FROM run_events WHERE run_id = $1 ORDER BY id",
            )
            .bind(run_id)
            .fetch_all(pool)
            .await?
        });
        Ok(events)
    }

    /// A workspace's runs (speculative plans excluded), oldest first.
    pub async fn workspace_runs(&self, workspace_id: i64) -> anyhow::Result<Vec<RunRecord>> {
        let runs = on_read_pool!(self, pool => {
            sqlx::query(
                "SELECT id, workspace_id, configuration_version_id, commit_sha, speculative, \
                 state, source, delivery_id FROM runs WHERE workspace_id = $1 \
                 AND speculative = 0 ORDER BY id",
            )
            .bind(workspace_id)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|row| {
                Ok::<_, sqlx::Error>(RunRecord {
                    id: row.try_get("id")?,
                    workspace_id: row.try_get("workspace_id")?,
                    configuration_version_id: row.try_get("configuration_version_id")?,
                    commit_sha: row.try_get("commit_sha")?,
                    speculative: row.try_get::<i32, _>("speculative")? != 0,
                    state: row.try_get("state")?,
                    source: row.try_get("source")?,
                    delivery_id: row.try_get("delivery_id")?,
                })
            })
            .collect::<Result<Vec<_>, _>>()?
        });
        Ok(runs)
    }

    /// The variables a run was pinned to: (category, key, value, sensitive), sensitive values
    /// opened. A value sealed under another key fails the whole read: a run never goes on
    /// with a wrong value.
    pub async fn run_variables(
        &self,
        run_id: i64,
    ) -> anyhow::Result<Vec<(String, String, String, bool)>> {
        let rows: Vec<(String, String, String, i32)> = on_read_pool!(self, pool => {
            sqlx::query_as(
                "SELECT category, key, value, sensitive FROM run_variables WHERE run_id = $1 \
                 ORDER BY category, key",
            )
            .bind(run_id)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|(category, key, stored, sensitive)| {
                let value = if sensitive != 0 && super::cipher::is_sealed(&stored) {
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
}
