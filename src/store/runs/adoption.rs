//! Runs across a restart of the server executing them: which server executes a run (its
//! heartbeat), which runs a starting runner takes back (its supervisors may still be running
//! them), the plans of a dead replica another one takes over, and notes on a run's timeline
//! about these. (Queuing a lost plan again is a move: `moves.rs`.)

use super::moves::record_event;
use crate::core::RunId;
use crate::core::run::RunState;
use crate::store::{Cause, Store, now_ms, on_pool, on_read_pool};

impl Store {
    /// Runs executing (fetching, planning, checking policies, applying) under this server
    /// before it stopped:
    /// marked with `owner`, its replica id; on a database no other server shares, every
    /// executing run (a run from before runs had owners has none).
    pub async fn runs_to_adopt(&self, owner: &str) -> anyhow::Result<Vec<(RunId, RunState)>> {
        let shared = self.is_shared();
        let rows: Vec<(RunId, String)> = on_read_pool!(self, pool => {
            sqlx::query_as(
                "SELECT id, state FROM runs WHERE state IN ('fetching', 'planning', \
                 'policy_checking', 'policy_checked', 'applying') \
                 AND (runner_owner = $1 OR $2 = 0) ORDER BY id",
            )
            .bind(owner)
            .bind(i32::from(shared))
            .fetch_all(pool)
            .await?
        });
        let mut runs = Vec::with_capacity(rows.len());
        for (id, state) in rows {
            let state = RunState::parse(&state)
                .ok_or_else(|| anyhow::anyhow!("unknown run state {state:?}"))?;
            runs.push((id, state));
        }
        Ok(runs)
    }

    /// Plans another server was making when it stopped sending heartbeats: fetching ones
    /// (no Terraform yet) silent since `stale_before_ms`, planning ones once their Terraform
    /// is surely gone (silent since `terraform_gone_before_ms`). They can be planned again.
    pub async fn stale_plans(
        &self,
        owner: &str,
        stale_before_ms: i64,
        terraform_gone_before_ms: i64,
    ) -> anyhow::Result<Vec<(RunId, RunState)>> {
        let rows: Vec<(RunId, String)> = on_read_pool!(self, pool => {
            sqlx::query_as(
                "SELECT id, state FROM runs WHERE runner_owner IS NOT NULL \
                 AND runner_owner <> $1 AND ((state IN ('fetching', 'policy_checking', \
                 'policy_checked') AND heartbeat_ms < $2) \
                 OR (state = 'planning' AND heartbeat_ms < $3)) ORDER BY id",
            )
            .bind(owner)
            .bind(stale_before_ms)
            .bind(terraform_gone_before_ms)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .filter_map(|(id, state)| RunState::parse(&state).map(|s| (id, s)))
            .collect())
    }

    /// Notes on a run's timeline something that happened without changing its state (a
    /// restarted server took it back).
    pub async fn note_run_event(
        &self,
        run_id: RunId,
        state: RunState,
        detail: &str,
    ) -> anyhow::Result<()> {
        on_pool!(self, pool => {
            let mut conn = pool.acquire().await?;
            let cause = Some(&Cause::Recovery);
            record_event((&mut *conn).into(), run_id, state, Some(detail), cause).await?;
        });
        Ok(())
    }

    /// This server still executes (or holds the plan of) its runs.
    pub async fn heartbeat_runs(&self, owner: &str) -> anyhow::Result<()> {
        on_pool!(self, pool => {
            sqlx::query(
                "UPDATE runs SET heartbeat_ms = $1 WHERE runner_owner = $2 AND state IN \
                 ('fetching', 'planning', 'policy_checking', 'policy_checked', 'policy_override', \
                 'planned', 'confirmed', 'applying')",
            )
            .bind(now_ms())
            .bind(owner)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The server executing the run (or holding its plan), if any.
    pub async fn run_owner(&self, run_id: RunId) -> anyhow::Result<Option<String>> {
        let owner: Option<Option<String>> = on_read_pool!(self, pool => {
            sqlx::query_scalar("SELECT runner_owner FROM runs WHERE id = $1")
                .bind(run_id)
                .fetch_optional(pool)
                .await?
        });
        Ok(owner.flatten())
    }
}
