//! Workspaces made, changed and deleted through the API, and their variables. Configuration
//! workspaces are written only by the sync (see `workspaces`); the API refuses to change them
//! before it gets here.

use super::{bind_workspace_settings, put_triggers_and_assessments};
use crate::core::WorkspaceId;
use crate::core::workspace::{VariableCategory, VariableValue, WorkspaceSpec};
use crate::store::{BeginWrite, Conn, Store, now_ms, on_conn, on_pool};

/// Why a workspace could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceWriteError {
    #[error("a workspace named {0} exists already")]
    NameTaken(String),
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

impl From<sqlx::Error> for WorkspaceWriteError {
    fn from(error: sqlx::Error) -> Self {
        WorkspaceWriteError::Store(error.into())
    }
}

fn name_taken(error: sqlx::Error, name: &str) -> WorkspaceWriteError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            WorkspaceWriteError::NameTaken(name.to_string())
        }
        _ => error.into(),
    }
}

impl Store {
    /// Creates a workspace (source `api`) with its variables. Returns its id.
    pub async fn create_workspace(
        &self,
        spec: &WorkspaceSpec,
    ) -> Result<WorkspaceId, WorkspaceWriteError> {
        let now = now_ms();
        let patterns =
            serde_json::to_string(&spec.trigger_patterns).map_err(anyhow::Error::from)?;
        let tags = serde_json::to_string(&spec.tags).map_err(anyhow::Error::from)?;
        let id = on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let id: WorkspaceId = bind_workspace_settings!(sqlx::query_scalar(
                "INSERT INTO workspaces (name, repo, branch, working_directory, \
                 trigger_patterns, auto_apply, terraform_version, speculative_enabled, \
                 source, archived, created_at_ms, updated_at_ms, plan_forks, network, \
                 execution_mode, tags) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'api', 0, $9, $9, $10, $11, $12, $13) \
                 RETURNING id",
            ), spec, &patterns)
            .bind(now)
            .bind(i32::from(spec.plan_forks))
            .bind(i32::from(spec.network))
            .bind(spec.execution_mode.as_str())
            .bind(&tags)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| name_taken(e, spec.name.as_str()))?;
            put_triggers_and_assessments((&mut *tx).into(), id, spec).await?;
            for ((category, key), value) in &spec.variables {
                let stored = self.stored_value(value)?;
                put_variable((&mut *tx).into(), id, *category, key, &stored, value.sensitive)
                    .await?;
            }
            tx.commit().await?;
            id
        });
        Ok(id)
    }

    /// Replaces a workspace's settings (not its variables, lock or runs).
    pub async fn update_workspace(
        &self,
        id: WorkspaceId,
        spec: &WorkspaceSpec,
    ) -> Result<(), WorkspaceWriteError> {
        let patterns =
            serde_json::to_string(&spec.trigger_patterns).map_err(anyhow::Error::from)?;
        let tags = serde_json::to_string(&spec.tags).map_err(anyhow::Error::from)?;
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            bind_workspace_settings!(sqlx::query(
                "UPDATE workspaces SET name = $1, repo = $2, branch = $3, \
                 working_directory = $4, trigger_patterns = $5, auto_apply = $6, \
                 terraform_version = $7, speculative_enabled = $8, plan_forks = $9, \
                 updated_at_ms = $10, network = $12, execution_mode = $13, tags = $14 \
                 WHERE id = $11",
            ), spec, &patterns)
            .bind(i32::from(spec.plan_forks))
            .bind(now_ms())
            .bind(id)
            .bind(i32::from(spec.network))
            .bind(spec.execution_mode.as_str())
            .bind(&tags)
            .execute(&mut *tx)
            .await
            .map_err(|e| name_taken(e, spec.name.as_str()))?;
            put_triggers_and_assessments((&mut *tx).into(), id, spec).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Deletes a workspace with everything it has: runs, their logs, events and variable
    /// snapshots, state versions, variables, feedback not sent yet, and the uploaded
    /// configurations that only its runs used. Nothing is deleted
    /// while one of its runs (speculative plans included) is unfinished: returns false.
    pub async fn delete_workspace(&self, id: WorkspaceId) -> anyhow::Result<bool> {
        const RUNS: &str = "(SELECT id FROM runs WHERE workspace_id = $1)";
        let statements = [
            format!("DELETE FROM run_logs WHERE run_id IN {RUNS}"),
            format!("DELETE FROM run_events WHERE run_id IN {RUNS}"),
            format!("DELETE FROM run_variables WHERE run_id IN {RUNS}"),
            format!("DELETE FROM policy_checks WHERE run_id IN {RUNS}"),
            "DELETE FROM state_uploads WHERE workspace_id = $1".to_string(),
            "DELETE FROM state_versions WHERE workspace_id = $1".to_string(),
            "DELETE FROM outbox WHERE state IN ('pending', 'sending') \
             AND kind IN ('run_status', 'run_check') \
             AND key IN (SELECT CAST(id AS TEXT) FROM runs WHERE workspace_id = $1)"
                .to_string(),
            // Runs elsewhere that this workspace's applies triggered stay, without the link.
            format!("UPDATE runs SET triggered_by = NULL WHERE triggered_by IN {RUNS}"),
            "DELETE FROM runs WHERE workspace_id = $1".to_string(),
            "DELETE FROM workspace_variables WHERE workspace_id = $1".to_string(),
            "DELETE FROM workspace_events WHERE workspace_id = $1".to_string(),
            "DELETE FROM notification_deliveries WHERE configuration_id IN \
             (SELECT id FROM notification_configurations WHERE workspace_id = $1)"
                .to_string(),
            "DELETE FROM notification_configurations WHERE workspace_id = $1".to_string(),
            "DELETE FROM workspaces WHERE id = $1".to_string(),
        ];
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let unfinished: Option<i32> = sqlx::query_scalar(concat!(
                "SELECT 1 FROM runs WHERE workspace_id = $1 AND state NOT IN ",
                final_states!(),
                " LIMIT 1"
            ))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            if unfinished.is_some() {
                return Ok(false);
            }
            let uploads: Vec<i64> = sqlx::query_scalar(
                "SELECT DISTINCT r.configuration_version_id FROM runs r \
                 JOIN configuration_versions c ON c.id = r.configuration_version_id \
                 WHERE r.workspace_id = $1 AND c.uploaded = 1",
            )
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
            for statement in &statements {
                sqlx::query(sqlx::AssertSqlSafe(statement.clone()))
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            // Tarballs are kept in the database: one no run uses any more goes with it.
            for upload in uploads {
                sqlx::query(
                    "DELETE FROM configuration_versions WHERE id = $1 \
                     AND NOT EXISTS (SELECT 1 FROM runs WHERE configuration_version_id = $1)",
                )
                .bind(upload)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(true)
    }

    /// Writes one variable. Returns whether it is new.
    pub async fn set_variable(
        &self,
        workspace_id: WorkspaceId,
        category: VariableCategory,
        key: &str,
        value: &VariableValue,
    ) -> anyhow::Result<bool> {
        let created = on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let existed: Option<i32> = sqlx::query_scalar(
                "SELECT 1 FROM workspace_variables WHERE workspace_id = $1 AND category = $2 \
                 AND key = $3",
            )
            .bind(workspace_id)
            .bind(category.as_str())
            .bind(key)
            .fetch_optional(&mut *tx)
            .await?;
            let stored = self.stored_value(value)?;
            put_variable(
                (&mut *tx).into(),
                workspace_id,
                category,
                key,
                &stored,
                value.sensitive,
            )
            .await?;
            tx.commit().await?;
            existed.is_none()
        });
        Ok(created)
    }

    /// Deletes one variable. Returns whether it existed.
    pub async fn delete_variable(
        &self,
        workspace_id: WorkspaceId,
        category: VariableCategory,
        key: &str,
    ) -> anyhow::Result<bool> {
        let deleted = on_pool!(self, pool => {
            sqlx::query(
                "DELETE FROM workspace_variables WHERE workspace_id = $1 AND category = $2 \
                 AND key = $3",
            )
            .bind(workspace_id)
            .bind(category.as_str())
            .bind(key)
            .execute(pool)
            .await?
            .rows_affected()
                == 1
        });
        Ok(deleted)
    }
}

/// Writes one variable as stored: `stored` is the value, sealed already when `sensitive`
/// (see [`Store::stored_value`]).
pub(super) async fn put_variable(
    conn: Conn<'_>,
    workspace_id: WorkspaceId,
    category: VariableCategory,
    key: &str,
    stored: &str,
    sensitive: bool,
) -> Result<(), sqlx::Error> {
    on_conn!(conn, c => {
        sqlx::query(
            "INSERT INTO workspace_variables (workspace_id, category, key, value, sensitive) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (workspace_id, category, key) \
             DO UPDATE SET value = excluded.value, sensitive = excluded.sensitive",
        )
        .bind(workspace_id)
        .bind(category.as_str())
        .bind(key)
        .bind(stored)
        .bind(i32::from(sensitive))
        .execute(&mut *c)
        .await?;
    });
    Ok(())
}
