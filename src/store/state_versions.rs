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
    /// Who wrote it when no run did (`terraform state push`, a migration, a local apply).
    pub created_by: Option<String>,
    pub created_at_ms: i64,
}

/// id, serial, lineage, checksum, state, run_id, created_by, created_at_ms
type StateVersionRow = (
    i64,
    i64,
    String,
    String,
    Vec<u8>,
    Option<RunId>,
    Option<String>,
    i64,
);

impl Store {
    /// The workspace's newest state version.
    pub async fn current_state(
        &self,
        workspace_id: WorkspaceId,
    ) -> anyhow::Result<Option<StateVersion>> {
        let newest = self
            .select_state_versions(
                "workspace_id = $1 ORDER BY serial DESC LIMIT 1",
                workspace_id.0,
                None,
            )
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
            .select_state_versions("workspace_id = $1 AND id = $2", workspace_id.0, Some(id))
            .await?;
        Ok(found.into_iter().next())
    }

    /// One state version by id, whatever its workspace (its id is what a signed URL names).
    pub async fn state_version_by_id(&self, id: i64) -> anyhow::Result<Option<StateVersion>> {
        let found = self.select_state_versions("id = $1", id, None).await?;
        Ok(found.into_iter().next())
    }

    /// Every state version of a workspace, oldest first.
    pub async fn state_versions(
        &self,
        workspace_id: WorkspaceId,
    ) -> anyhow::Result<Vec<StateVersion>> {
        self.select_state_versions("workspace_id = $1 ORDER BY serial", workspace_id.0, None)
            .await
    }

    /// The state versions that `clause` (a fixed SQL condition and order, `$1` = `first`, `$2`
    /// = `second`) selects.
    async fn select_state_versions(
        &self,
        clause: &'static str,
        first: i64,
        second: Option<i64>,
    ) -> anyhow::Result<Vec<StateVersion>> {
        let sql = format!(
            "SELECT id, serial, lineage, checksum, state, run_id, created_by, created_at_ms \
             FROM state_versions WHERE {clause}"
        );
        let rows: Vec<StateVersionRow> = on_read_pool!(self, pool => {
            let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(first);
            if let Some(second) = second {
                query = query.bind(second);
            }
            query.fetch_all(pool).await?
        });
        Ok(rows
            .into_iter()
            .map(
                |(id, serial, lineage, checksum, state, run_id, created_by, created_at_ms)| {
                    StateVersion {
                        id,
                        meta: StateMeta {
                            serial,
                            lineage,
                            checksum,
                        },
                        state,
                        run_id,
                        created_by,
                        created_at_ms,
                    }
                },
            )
            .collect())
    }

    /// Stores a new state version of a workspace, written by a run or (`Author::Person`) sent
    /// by the Terraform CLI (checked by the caller against the current one; the unique serial
    /// guards against a race all the same). Returns its id, or None when a state version
    /// with that serial exists already.
    pub async fn record_state_version(
        &self,
        workspace_id: WorkspaceId,
        author: Author<'_>,
        meta: &StateMeta,
        state: &[u8],
    ) -> anyhow::Result<Option<i64>> {
        let (run_id, created_by) = match author {
            Author::Run(run) => (Some(run), None),
            Author::Person(name) => (None, Some(name)),
        };
        let id = on_pool!(self, pool => {
            sqlx::query_scalar(
                "INSERT INTO state_versions (workspace_id, serial, lineage, checksum, state, \
                 run_id, created_at_ms, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (workspace_id, serial) DO NOTHING RETURNING id",
            )
            .bind(workspace_id)
            .bind(meta.serial)
            .bind(&meta.lineage)
            .bind(&meta.checksum)
            .bind(state)
            .bind(run_id)
            .bind(now_ms())
            .bind(created_by)
            .fetch_optional(pool)
            .await?
        });
        Ok(id)
    }

    /// Keeps what the CLI announced before it uploads a state (Terraform 1.6+). Returns the
    /// upload's id.
    pub async fn announce_state_upload(
        &self,
        workspace_id: WorkspaceId,
        upload: &AnnouncedState,
        by: &str,
    ) -> anyhow::Result<i64> {
        let id = on_pool!(self, pool => {
            sqlx::query_scalar(
                "INSERT INTO state_uploads (workspace_id, serial, lineage, md5, force, \
                 created_by, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            )
            .bind(workspace_id)
            .bind(upload.serial)
            .bind(&upload.lineage)
            .bind(&upload.md5)
            .bind(i32::from(upload.force))
            .bind(by)
            .bind(now_ms())
            .fetch_one(pool)
            .await?
        });
        Ok(id)
    }

    /// An announced state upload: its workspace, what was announced, who announced it, and
    /// the state version it became once uploaded.
    pub async fn state_upload(&self, id: i64) -> anyhow::Result<Option<StateUpload>> {
        type Row = (
            WorkspaceId,
            i64,
            String,
            String,
            i32,
            String,
            Option<i64>,
            i64,
        );
        let row: Option<Row> = on_read_pool!(self, pool => {
            sqlx::query_as(
                "SELECT workspace_id, serial, lineage, md5, force, created_by, state_version_id, \
                 created_at_ms FROM state_uploads WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(
            |(workspace_id, serial, lineage, md5, force, by, state_version_id, created_at_ms)| {
                StateUpload {
                    workspace_id,
                    announced: AnnouncedState {
                        serial,
                        lineage,
                        md5,
                        force: force != 0,
                    },
                    by,
                    state_version_id,
                    created_at_ms,
                }
            },
        ))
    }

    /// Records that the announced upload `id` became state version `state_version_id`.
    pub async fn finish_state_upload(&self, id: i64, state_version_id: i64) -> anyhow::Result<()> {
        on_pool!(self, pool => {
            sqlx::query("UPDATE state_uploads SET state_version_id = $1 WHERE id = $2")
                .bind(state_version_id)
                .bind(id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }
}

/// Who wrote a state version.
#[derive(Debug, Clone, Copy)]
pub enum Author<'a> {
    Run(RunId),
    /// The name of the API token that sent it.
    Person(&'a str),
}

/// A state version the CLI says it is about to upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnouncedState {
    pub serial: i64,
    pub lineage: String,
    /// MD5 of the state file, hex (what the CLI sends).
    pub md5: String,
    /// `-force`: the state may go back in serial or change lineage.
    pub force: bool,
}

/// An announced upload as stored.
#[derive(Debug, Clone)]
pub struct StateUpload {
    pub workspace_id: WorkspaceId,
    pub announced: AnnouncedState,
    pub by: String,
    pub state_version_id: Option<i64>,
    pub created_at_ms: i64,
}
