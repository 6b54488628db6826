//! A workspace's state versions: what Terraform wrote, each with its serial and lineage.

use super::{Store, now_ms, on_pool, on_read_pool};
use crate::core::state::StateMeta;
use crate::core::{RunId, WorkspaceId};

/// A stored state version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateVersion {
    pub id: i64,
    pub meta: StateMeta,
    pub state: Vec<u8>,
    pub run_id: Option<RunId>,
}

/// id, serial, lineage, checksum, state, run_id
type StateVersionRow = (i64, i64, String, String, Vec<u8>, Option<RunId>);

impl Store {
    /// The workspace's newest state version.
    pub async fn current_state(
        &self,
        workspace_id: WorkspaceId,
    ) -> anyhow::Result<Option<StateVersion>> {
        let newest = self
            .select_state_versions(workspace_id, "ORDER BY serial DESC LIMIT 1", None)
            .await?;
        Ok(newest.into_iter().next())
    }

    /// One state version of the workspace, by id.
    pub async fn state_version(
        &self,
        workspace_id: WorkspaceId,
        id: i64,
    ) -> anyhow::Result<Option<StateVersion>> {
        let found = self
            .select_state_versions(workspace_id, "AND id = $2", Some(id))
            .await?;
        Ok(found.into_iter().next())
    }

    /// Every state version of a workspace, oldest first.
    pub async fn state_versions(
        &self,
        workspace_id: WorkspaceId,
    ) -> anyhow::Result<Vec<StateVersion>> {
        self.select_state_versions(workspace_id, "ORDER BY serial", None)
            .await
    }

    /// The workspace's state versions that `tail` (a fixed SQL suffix, `$2` = `id`) selects.
    async fn select_state_versions(
        &self,
        workspace_id: WorkspaceId,
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
        workspace_id: WorkspaceId,
        run_id: RunId,
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
}
