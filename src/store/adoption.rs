//! Runs across a restart of the server executing them: which runs a starting runner takes back
//! (its supervisors may still be running them), the plans of a dead replica another one takes
//! over, a lost plan queued again, and notes on a run's timeline about these.

use super::outbox::enqueue_run_feedback;
use super::{BeginWrite, Store, now_ms, on_pool, on_read_pool};
use crate::core::run::RunState;

impl Store {
    /// Runs executing (fetching, planning, applying) under this server before it stopped:
    /// marked with `owner`, its replica id; on a database no other server shares, every
    /// executing run (a run from before runs had owners has none).
    pub async fn runs_to_adopt(&self, owner: &str) -> anyhow::Result<Vec<(i64, RunState)>> {
        let shared = self.is_shared();
        let rows: Vec<(i64, String)> = on_read_pool!(self, pool => {
            sqlx::query_as(
                "SELECT id, state FROM runs WHERE state IN ('fetching', 'planning', 'applying') \
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
    ) -> anyhow::Result<Vec<(i64, RunState)>> {
        let rows: Vec<(i64, String)> = on_read_pool!(self, pool => {
            sqlx::query_as(
                "SELECT id, state FROM runs WHERE runner_owner IS NOT NULL \
                 AND runner_owner <> $1 AND ((state = 'fetching' AND heartbeat_ms < $2) \
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

    /// A plan lost with its supervisor (or never started by a server that died) goes back to
    /// pending, at the front of its workspace's queue (it is older than what came after it),
    /// unless it was tried `max_attempts` times already. Returns whether it was queued again.
    pub async fn requeue_lost_plan(
        &self,
        run_id: i64,
        from: RunState,
        detail: &str,
        max_attempts: i64,
    ) -> anyhow::Result<bool> {
        from.transition(RunState::Pending)?;
        let detail = super::storable(detail);
        let now = now_ms();
        let requeued = on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let moved = sqlx::query(
                "UPDATE runs SET state = 'pending', updated_at_ms = $1, \
                 plan_attempts = plan_attempts + 1, runner_owner = NULL, heartbeat_ms = NULL \
                 WHERE id = $2 AND state = $3 AND plan_attempts + 1 < $4",
            )
            .bind(now)
            .bind(run_id)
            .bind(from.as_str())
            .bind(max_attempts)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if moved {
                sqlx::query(
                    "INSERT INTO run_events (run_id, state, at_ms, detail) \
                     VALUES ($1, 'pending', $2, $3)",
                )
                .bind(run_id)
                .bind(now)
                .bind(&detail)
                .execute(&mut *tx)
                .await?;
                enqueue_run_feedback((&mut *tx).into(), run_id).await?;
            }
            tx.commit().await?;
            moved
        });
        if requeued {
            self.notify_outbox();
        }
        Ok(requeued)
    }

    /// Notes on a run's timeline something that happened without changing its state (a
    /// restarted server took it back).
    pub async fn note_run_event(
        &self,
        run_id: i64,
        state: RunState,
        detail: &str,
    ) -> anyhow::Result<()> {
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO run_events (run_id, state, at_ms, detail) VALUES ($1, $2, $3, $4)",
            )
            .bind(run_id)
            .bind(state.as_str())
            .bind(now_ms())
            .bind(detail)
            .execute(pool)
            .await?;
        });
        Ok(())
    }
}
