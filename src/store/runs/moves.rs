//! The one way a run's state changes ([`move_run`], after OTF's `UpdateStatus`): it asks
//! `core::run` whether the move is legal, writes the new state only if the run is still where
//! the caller saw it (another process may have moved it), and in the same transaction records
//! the event with its cause, queues the run's feedback to GitHub and, when their schedulers may
//! have something to start, tells the other replicas.
//! Everything here that changes a run's state is a [`Move`] handed to it.

use crate::core::run::{IllegalTransition, RunState};
use crate::core::{RunId, WorkspaceId};
use crate::store::outbox::enqueue_run_feedback;
use crate::store::{BeginWrite, Conn, Store, now_ms, on_conn, on_pool, on_read_pool, storable};

/// Who or what moved a run; kept on the run's event, for its timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// Gantry executing the run: its scheduler and runner.
    Runner,
    /// Gantry putting things right after a stop: a restart, a replica gone silent.
    Recovery,
    /// A person, by the name of the API token (or UI session) they acted with.
    Person(String),
    /// An event on GitHub (a newer head, a closed pull request).
    GitHub,
}

impl Cause {
    /// As stored on the event: `runner`, `recovery`, `github`, `person:<name>`.
    pub fn stored(&self) -> String {
        match self {
            Cause::Runner => "runner".into(),
            Cause::Recovery => "recovery".into(),
            Cause::GitHub => "github".into(),
            Cause::Person(name) => format!("person:{name}"),
        }
    }
}

/// What a move writes beside the state, each with the condition that comes with it, in the
/// same statement (so that the condition and the move cannot be told apart by a race).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Also<'a> {
    Nothing,
    /// A queued run starts: `owner` (a replica id) executes it, unless its workspace was
    /// locked after the scheduler looked.
    Start {
        owner: &'a str,
    },
    /// A speculative plan starts: `owner` executes it. Speculative plans take no lock.
    Own {
        owner: &'a str,
    },
    /// A lost plan is queued again, unless it was tried `max_attempts` times already; it is
    /// no server's any more.
    Requeue {
        max_attempts: i64,
    },
    /// Only if its server has been silent (no heartbeat) since `before_ms`: a heartbeat
    /// arriving after the caller looked keeps the run its server's.
    Silent {
        before_ms: i64,
    },
    /// An errored run keeps Terraform's own first error line, the reason people are shown.
    TerraformError(&'a str),
}

impl Also<'_> {
    /// The SET and WHERE additions, with their one bound value as `$6`.
    fn sql(self) -> (&'static str, &'static str) {
        match self {
            Also::Nothing => ("", ""),
            Also::Start { .. } => (
                ", runner_owner = $6, heartbeat_ms = $2",
                " AND NOT EXISTS (SELECT 1 FROM workspaces w WHERE w.id = runs.workspace_id \
                 AND w.locked_by IS NOT NULL)",
            ),
            Also::Own { .. } => (", runner_owner = $6, heartbeat_ms = $2", ""),
            Also::Requeue { .. } => (
                ", plan_attempts = plan_attempts + 1, runner_owner = NULL, heartbeat_ms = NULL",
                " AND plan_attempts + 1 < $6",
            ),
            Also::Silent { .. } => ("", " AND heartbeat_ms < $6"),
            Also::TerraformError(_) => (", terraform_error = $6", ""),
        }
    }
}

/// A move of one run from the state the caller saw to the next, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move<'a> {
    pub run_id: RunId,
    pub from: RunState,
    pub to: RunState,
    pub cause: Cause,
    /// Shown on the run's timeline beside the new state.
    pub detail: Option<&'a str>,
    /// Kept as the run's reason for ending (a reader never sees the end without it).
    pub error: Option<&'a str>,
    pub also: Also<'a>,
}

impl<'a> Move<'a> {
    pub fn new(run_id: RunId, from: RunState, to: RunState, cause: Cause) -> Self {
        Self {
            run_id,
            from,
            to,
            cause,
            detail: None,
            error: None,
            also: Also::Nothing,
        }
    }

    pub fn detail(self, detail: &'a str) -> Self {
        Self {
            detail: Some(detail),
            ..self
        }
    }

    /// Ends the run for `reason`: kept as its error and shown on its timeline.
    pub fn because(self, reason: &'a str) -> Self {
        Self {
            detail: Some(reason),
            error: Some(reason),
            ..self
        }
    }

    pub fn also(self, also: Also<'a>) -> Self {
        Self { also, ..self }
    }
}

/// Why a move was not made.
#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    #[error(transparent)]
    Illegal(#[from] IllegalTransition),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Makes `mv` in the caller's transaction. Returns whether the run moved: false when it had
/// left `from` meanwhile, or the condition of [`Also`] did not hold.
pub(crate) async fn move_run(conn: Conn<'_>, mv: &Move<'_>) -> Result<bool, MoveError> {
    mv.from.transition(mv.to)?;
    let now = now_ms();
    let error = mv.error.map(storable);
    let (set, condition) = mv.also.sql();
    let statement = format!(
        "UPDATE runs SET state = $1, updated_at_ms = $2, error = COALESCE($3, error){set} \
         WHERE id = $4 AND state = $5{condition} RETURNING workspace_id"
    );
    on_conn!(conn, c => {
        let query = sqlx::query_scalar(sqlx::AssertSqlSafe(statement))
            .bind(mv.to.as_str())
            .bind(now)
            .bind(error.as_deref())
            .bind(mv.run_id)
            .bind(mv.from.as_str());
        let query = match mv.also {
            Also::Nothing => query,
            Also::Start { owner } | Also::Own { owner } => query.bind(owner),
            Also::Requeue { max_attempts } => query.bind(max_attempts),
            Also::Silent { before_ms } => query.bind(before_ms),
            Also::TerraformError(line) => query.bind(line),
        };
        let workspace: Option<WorkspaceId> = query.fetch_optional(&mut *c).await?;
        let Some(workspace) = workspace else {
            return Ok(false);
        };
        record_event((&mut *c).into(), mv.run_id, mv.to, mv.detail, Some(&mv.cause)).await?;
        enqueue_run_feedback((&mut *c).into(), mv.run_id).await?;
        crate::store::enqueue_notifications((&mut *c).into(), mv.run_id, mv.to).await?;
        if mv.to.wakes_schedulers() {
            AnnounceRuns::announce(&mut *c, workspace).await?;
        }
    });
    Ok(true)
}

/// A run entered `state` (created, or moved): its timeline's event.
pub(super) async fn record_event(
    conn: Conn<'_>,
    run_id: RunId,
    state: RunState,
    detail: Option<&str>,
    cause: Option<&Cause>,
) -> Result<(), sqlx::Error> {
    on_conn!(conn, c => {
        sqlx::query(
            "INSERT INTO run_events (run_id, state, at_ms, detail, cause) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(run_id)
        .bind(state.as_str())
        .bind(now_ms())
        .bind(detail.map(storable).as_deref())
        .bind(cause.map(Cause::stored))
        .execute(&mut *c)
        .await?;
    });
    Ok(())
}

/// Tells the other replicas that a workspace's runs changed, when the transaction commits
/// (PostgreSQL's NOTIFY), so that their schedulers look at it now. SQLite has one server.
trait AnnounceRuns {
    async fn announce(&mut self, workspace_id: WorkspaceId) -> Result<(), sqlx::Error>;
}

impl AnnounceRuns for sqlx::SqliteConnection {
    async fn announce(&mut self, _workspace_id: WorkspaceId) -> Result<(), sqlx::Error> {
        Ok(())
    }
}

impl AnnounceRuns for sqlx::PgConnection {
    async fn announce(&mut self, workspace_id: WorkspaceId) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(crate::store::RUNS_CHANNEL)
            .bind(workspace_id.0.to_string())
            .execute(self)
            .await?;
        Ok(())
    }
}

impl crate::store::effects::SpeculativeCancel {
    /// Cancels the pull request's speculative plans that have not started (except those of
    /// the head that stays).
    pub(crate) async fn cancel_pending(&self, conn: Conn<'_>) -> Result<(), MoveError> {
        on_conn!(conn, c => {
            let (pr_number, except_sha, only_sha) = self.scope.binds();
            let ids: Vec<RunId> = sqlx::query_scalar(
                "SELECT r.id FROM runs r JOIN configuration_versions c \
                 ON c.id = r.configuration_version_id WHERE r.speculative = 1 \
                 AND r.state = 'pending' AND ($1 IS NULL OR r.pr_number = $1) \
                 AND ($2 IS NULL OR r.commit_sha <> $2) AND ($4 IS NULL OR r.commit_sha = $4) \
                 AND c.repo = $3 ORDER BY r.id",
            )
            .bind(pr_number)
            .bind(except_sha)
            .bind(&self.repo)
            .bind(only_sha)
            .fetch_all(&mut *c)
            .await?;
            for id in ids {
                let mv = Move::new(id, RunState::Pending, RunState::Canceled, Cause::GitHub)
                    .because(&self.reason);
                move_run((&mut *c).into(), &mv).await?;
            }
        });
        Ok(())
    }
}

impl Store {
    /// Makes `mv` in a transaction of its own; see [`move_run`].
    pub async fn move_run(&self, mv: &Move<'_>) -> anyhow::Result<bool> {
        let moved = on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let moved = move_run((&mut *tx).into(), mv).await?;
            tx.commit().await?;
            moved
        });
        if moved {
            self.notify_outbox();
        }
        Ok(moved)
    }

    /// Starts a queued run (pending → fetching) with this server (`owner`) as its runner,
    /// unless its workspace was locked meanwhile (one statement, so a lock taken after the
    /// scheduler looked still holds the run). A run already holding the workspace (another
    /// runner's) makes the start fail on the database's one-active-run index: not started.
    /// The workspace's running assessment is canceled in the same transaction.
    pub async fn start_queued_run(&self, run_id: RunId, owner: &str) -> anyhow::Result<bool> {
        let start = Move::new(run_id, RunState::Pending, RunState::Fetching, Cause::Runner)
            .also(Also::Start { owner });
        let started = on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let moved = match move_run((&mut *tx).into(), &start).await {
                Err(MoveError::Database(sqlx::Error::Database(db))) if db.is_unique_violation() => {
                    tracing::warn!(%run_id, "another run holds the workspace; not started");
                    return Ok(false);
                }
                moved => moved?,
            };
            if moved {
                crate::store::assessments::cancel_for_started_run((&mut *tx).into(), run_id)
                    .await?;
            }
            tx.commit().await?;
            moved
        });
        if started {
            self.notify_outbox();
        }
        Ok(started)
    }

    /// Moves a run from applying to applied (its state version, if any, already stored), and
    /// queues the runs its workspace's run triggers ask for, in one transaction. Returns the
    /// workspaces that got a run.
    pub async fn finish_apply(
        &self,
        run_id: RunId,
        state_version: Option<i64>,
    ) -> anyhow::Result<Vec<WorkspaceId>> {
        let detail = state_version.map(|id| format!("state version {id}"));
        let mut applied = Move::new(run_id, RunState::Applying, RunState::Applied, Cause::Runner);
        applied.detail = detail.as_deref();
        let triggered = on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let moved = move_run((&mut *tx).into(), &applied).await?;
            anyhow::ensure!(moved, "run {run_id} was no longer applying");
            let triggered = super::triggered::queue_triggered_runs((&mut *tx).into(), run_id).await?;
            tx.commit().await?;
            triggered
        });
        self.notify_outbox();
        Ok(triggered)
    }

    /// A plan lost with its supervisor (or never started by a server that died) goes back to
    /// pending, at the front of its workspace's queue (it is older than what came after it),
    /// unless it was tried `max_attempts` times already. Returns whether it was queued again.
    pub async fn requeue_lost_plan(
        &self,
        run_id: RunId,
        from: RunState,
        detail: &str,
        max_attempts: i64,
    ) -> anyhow::Result<bool> {
        let requeue = Move::new(run_id, from, RunState::Pending, Cause::Recovery)
            .detail(detail)
            .also(Also::Requeue { max_attempts });
        self.move_run(&requeue).await
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
    ) -> anyhow::Result<Vec<RunId>> {
        let reason = "interrupted: the server executing it stopped";
        let stale: Vec<(RunId, String)> = on_read_pool!(self, pool => {
            sqlx::query_as(
                "SELECT id, state FROM runs WHERE runner_owner IS NOT NULL \
                 AND runner_owner <> $1 AND ((state IN ('planned', 'policy_override', 'confirmed') \
                 AND heartbeat_ms < $2) OR (state = 'applying' AND heartbeat_ms < $3)) \
                 ORDER BY id",
            )
            .bind(owner)
            .bind(stale_before_ms)
            .bind(terraform_gone_before_ms)
            .fetch_all(pool)
            .await?
        });
        let mut interrupted = Vec::new();
        for (id, state) in stale {
            let from = RunState::parse(&state)
                .ok_or_else(|| anyhow::anyhow!("run {id} has an unknown state {state}"))?;
            let before_ms = if from == RunState::Applying {
                terraform_gone_before_ms
            } else {
                stale_before_ms
            };
            let mv = Move::new(id, from, RunState::Errored, Cause::Recovery)
                .because(reason)
                .also(Also::Silent { before_ms });
            if self.move_run(&mv).await? {
                interrupted.push(id);
            }
        }
        Ok(interrupted)
    }
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;
    use crate::core::workspace::{RepoName, WorkspaceName, WorkspaceSpec};
    use crate::store::NewRuns;

    async fn store_with_a_run() -> (tempfile::TempDir, Store, RunId) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("gantry.db").display());
        let store = Store::open(&SecretString::from(url)).await.unwrap();
        let spec = WorkspaceSpec::new(
            WorkspaceName::parse("prod").unwrap(),
            RepoName::parse("o/r").unwrap(),
        );
        let workspace = store.create_workspace(&spec).await.unwrap();
        let new = NewRuns::push(
            "o/r".into(),
            "c".into(),
            vec![workspace],
            String::new(),
            None,
            "octocat".into(),
        );
        let run = store.create_runs(&new).await.unwrap()[0];
        (dir, store, run)
    }

    #[tokio::test]
    async fn a_start_holds_while_the_workspace_is_locked_and_makes_the_run_its_servers() {
        let (_dir, store, run) = store_with_a_run().await;
        let workspace = store.run(run).await.unwrap().unwrap().workspace_id;
        store
            .lock_workspace(workspace, "ops", "freeze")
            .await
            .unwrap();
        assert!(!store.start_queued_run(run, "replica-a").await.unwrap());
        store.unlock_workspace(workspace, "tester").await.unwrap();
        assert!(store.start_queued_run(run, "replica-a").await.unwrap());
        assert_eq!(
            store.run_owner(run).await.unwrap().as_deref(),
            Some("replica-a")
        );
    }

    #[tokio::test]
    async fn an_interruption_holds_only_while_the_server_stays_silent() {
        let (_dir, store, run) = store_with_a_run().await;
        assert!(store.start_queued_run(run, "replica-a").await.unwrap());
        for (from, to) in [
            (RunState::Fetching, RunState::Planning),
            (RunState::Planning, RunState::Planned),
        ] {
            assert!(
                store
                    .move_run(&Move::new(run, from, to, Cause::Runner))
                    .await
                    .unwrap()
            );
        }
        let interrupt = |before_ms| {
            Move::new(run, RunState::Planned, RunState::Errored, Cause::Recovery)
                .because("interrupted")
                .also(Also::Silent { before_ms })
        };
        // A heartbeat came after the caller looked (the start's, at about now): kept.
        let looked_before = now_ms() - 60_000;
        assert!(!store.move_run(&interrupt(looked_before)).await.unwrap());
        assert_eq!(
            store.run(run).await.unwrap().unwrap().state,
            RunState::Planned
        );
        // Silent since the caller's limit: interrupted, and the timeline says by whom.
        assert!(store.move_run(&interrupt(now_ms() + 1)).await.unwrap());
        let timeline = store.run_timeline(run).await.unwrap();
        let last = timeline.last().unwrap();
        assert_eq!(
            (last.state.as_str(), last.cause.as_deref()),
            ("errored", Some("recovery"))
        );
    }

    #[tokio::test]
    async fn a_lost_plan_is_queued_again_only_as_often_as_allowed_and_an_illegal_move_is_refused() {
        let (_dir, store, run) = store_with_a_run().await;
        for attempt in 1..=2 {
            assert!(store.start_queued_run(run, "replica-a").await.unwrap());
            let requeued = store
                .requeue_lost_plan(run, RunState::Fetching, "lost", 3)
                .await
                .unwrap();
            assert!(requeued, "attempt {attempt}");
            assert_eq!(
                store.run_owner(run).await.unwrap(),
                None,
                "no server's any more"
            );
        }
        assert!(store.start_queued_run(run, "replica-a").await.unwrap());
        assert!(
            !store
                .requeue_lost_plan(run, RunState::Fetching, "lost", 3)
                .await
                .unwrap(),
            "the third loss is the last"
        );
        let illegal = Move::new(run, RunState::Fetching, RunState::Applied, Cause::Runner);
        assert!(store.move_run(&illegal).await.is_err());
    }
}
