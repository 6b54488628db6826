//! What executing a run writes and reads besides its state: its configuration's archive, its
//! plan summary, its (masked) log, and the variables it was pinned to.

use super::PlanCounts;
use crate::core::RunId;
use crate::store::{BeginWrite, Store, now_ms, on_pool, on_read_pool};

/// One stored piece of a run's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChunk {
    pub id: i64,
    pub chunk: String,
}

impl Store {
    /// A phase's whole (masked) log as one text.
    pub async fn phase_log_text(&self, run_id: RunId, phase: &str) -> anyhow::Result<String> {
        let chunks = self.run_log(run_id, phase, 0).await?;
        Ok(chunks.into_iter().map(|c| c.chunk).collect())
    }

    /// Errored runs without Terraform's reason recorded, oldest first: (run, reached apply).
    pub async fn errored_runs_unexplained(&self, limit: i64) -> anyhow::Result<Vec<(RunId, bool)>> {
        let rows: Vec<(RunId, i32)> = on_read_pool!(self, pool => {
            sqlx::query_as(
                "SELECT r.id, CASE WHEN EXISTS (SELECT 1 FROM run_events e \
                 WHERE e.run_id = r.id AND e.state = 'applying') THEN 1 ELSE 0 END \
                 FROM runs r WHERE r.state = 'errored' AND r.terraform_error IS NULL \
                 ORDER BY r.id LIMIT $1",
            )
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(id, applied)| (id, applied != 0))
            .collect())
    }

    /// Keeps Terraform's reason for an errored run (empty: its log had none).
    pub async fn set_terraform_error(&self, run_id: RunId, line: &str) -> anyhow::Result<()> {
        on_pool!(self, pool => {
            sqlx::query("UPDATE runs SET terraform_error = $1 WHERE id = $2")
                .bind(crate::store::storable(line).as_ref())
                .bind(run_id)
                .execute(pool)
                .await?;
        });
        Ok(())
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
    pub async fn record_plan(&self, run_id: RunId, plan: &PlanCounts) -> anyhow::Result<()> {
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

    /// Appends chunks of a run's (masked) output.
    pub async fn append_log(
        &self,
        run_id: RunId,
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
                .bind(crate::store::storable(chunk).as_ref())
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
        run_id: RunId,
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

    /// The variables a run was pinned to: (category, key, value, sensitive), sensitive values
    /// opened. A value sealed under another key fails the whole read: a run never goes on
    /// with a wrong value.
    pub async fn run_variables(
        &self,
        run_id: RunId,
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
        self.open_variables(rows)
    }
}
