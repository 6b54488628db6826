//! What the API adds to runs: runs asked for by people (retries, uploaded configurations),
//! uploaded configuration tarballs, and a workspace's runs page by page.

use super::NewRuns;
use super::read::{RunDetail, run_detail};
use crate::core::run::RunState;
use crate::core::{RunId, WorkspaceId};
use crate::store::{BeginWrite, Store, now_ms, on_pool, on_read_pool};

/// A configuration version the API or the Terraform CLI uploads.
#[derive(Debug, Clone)]
pub struct ConfigurationUpload {
    pub id: i64,
    pub repo: String,
    /// What its runs show as their commit.
    pub name: String,
    /// None while the CLI has not uploaded it yet.
    pub sha256: Option<String>,
    pub speculative: bool,
    /// The workspace it was made for, when the Terraform CLI made it.
    pub workspace_id: Option<WorkspaceId>,
}

/// How a page of a workspace's runs is ordered.
#[derive(Debug, Clone, Copy)]
enum RunOrder {
    /// Waiting runs in queue order, then the others newest first (the UI and `/api/v1`).
    QueueFirst,
    /// Newest first (the TFE API).
    NewestFirst,
}

/// One page of a workspace's runs.
#[derive(Debug, Clone)]
pub struct RunPage {
    pub runs: Vec<RunDetail>,
    /// How many runs the workspace has in all (speculative plans excluded).
    pub total: i64,
}

impl Store {
    /// Creates runs outside any delivery (the API). Returns the ids of the runs made.
    pub async fn create_runs(&self, runs: &NewRuns) -> anyhow::Result<Vec<RunId>> {
        let ids = on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let ids = runs.create((&mut *tx).into()).await?;
            tx.commit().await?;
            ids
        });
        self.notify_outbox();
        Ok(ids)
    }

    /// Keeps an uploaded configuration tarball as a configuration version of `repo`, named by
    /// its SHA-256: the same upload twice is one version (its bytes are kept once; the second
    /// upload only restarts the time an unused upload is kept). Returns the version's id.
    pub async fn store_uploaded_configuration(
        &self,
        repo: &str,
        sha256: &str,
        archive: &[u8],
    ) -> anyhow::Result<i64> {
        let id = on_pool!(self, pool => {
            sqlx::query_scalar(
                "INSERT INTO configuration_versions (repo, commit_sha, created_at_ms, \
                 archive_sha256, uploaded, archive) VALUES ($1, $2, $3, $2, 1, $4) \
                 ON CONFLICT (repo, commit_sha) DO UPDATE \
                 SET created_at_ms = excluded.created_at_ms RETURNING id",
            )
            .bind(repo)
            .bind(sha256)
            .bind(now_ms())
            .bind(archive)
            .fetch_one(pool)
            .await?
        });
        Ok(id)
    }

    /// Makes a configuration version of `repo` ("" for a workspace with no repository) that
    /// the Terraform CLI uploads next (`PUT` to its upload URL); `speculative`: its runs only
    /// plan. Returns its id.
    pub async fn create_awaited_configuration(
        &self,
        workspace_id: WorkspaceId,
        repo: &str,
        speculative: bool,
    ) -> anyhow::Result<i64> {
        use rand::Rng;
        // Named until its upload arrives; the same tarball uploaded for another plan is
        // another version, so the name is not its checksum.
        let name = format!("upload-{}", hex::encode(rand::rng().random::<[u8; 12]>()));
        let id = on_pool!(self, pool => {
            sqlx::query_scalar(
                "INSERT INTO configuration_versions (repo, commit_sha, created_at_ms, uploaded, \
                 speculative, workspace_id) VALUES ($1, $2, $3, 1, $4, $5) RETURNING id",
            )
            .bind(repo)
            .bind(&name)
            .bind(now_ms())
            .bind(i32::from(speculative))
            .bind(workspace_id)
            .fetch_one(pool)
            .await?
        });
        Ok(id)
    }

    /// An uploaded (or awaited) configuration version: repo, name, SHA-256 of its tarball
    /// once it has one, speculative.
    pub async fn configuration_upload(
        &self,
        id: i64,
    ) -> anyhow::Result<Option<ConfigurationUpload>> {
        type Row = (String, String, Option<String>, i32, Option<WorkspaceId>);
        let row: Option<Row> = on_read_pool!(self, pool => {
            sqlx::query_as(
                "SELECT repo, commit_sha, archive_sha256, speculative, workspace_id \
                 FROM configuration_versions WHERE id = $1 AND uploaded = 1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(
            |(repo, name, sha256, speculative, workspace_id)| ConfigurationUpload {
                id,
                repo,
                name,
                sha256,
                speculative: speculative != 0,
                workspace_id,
            },
        ))
    }

    /// Keeps the tarball of an awaited configuration version. False if it has one already
    /// (an upload URL takes one upload).
    pub async fn attach_configuration_archive(
        &self,
        id: i64,
        sha256: &str,
        archive: &[u8],
    ) -> anyhow::Result<bool> {
        let attached = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE configuration_versions SET archive = $1, archive_sha256 = $2 \
                 WHERE id = $3 AND uploaded = 1 AND archive IS NULL",
            )
            .bind(archive)
            .bind(sha256)
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected()
                == 1
        });
        Ok(attached)
    }

    /// The workspace's current run, as Terraform Cloud means it: the one holding the
    /// workspace (executing, or waiting for confirmation), else the newest; speculative plans
    /// aside.
    pub async fn current_run(&self, workspace_id: WorkspaceId) -> anyhow::Result<Option<RunId>> {
        let holding: Vec<&str> = RunState::ALL
            .into_iter()
            .filter(|s| s.holds_workspace())
            .map(RunState::as_str)
            .collect();
        let sql = format!(
            "SELECT id FROM runs WHERE workspace_id = $1 AND speculative = 0 \
             ORDER BY CASE WHEN state IN ('{}') THEN 0 ELSE 1 END, id DESC LIMIT 1",
            holding.join("', '")
        );
        let current = on_read_pool!(self, pool => {
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone()))
                .bind(workspace_id)
                .fetch_optional(pool)
                .await?
        });
        Ok(current)
    }

    /// Deletes uploaded configurations made before `before_ms` that no run uses: an upload
    /// that never became a run would otherwise stay in the database for good. Returns how
    /// many went.
    pub async fn prune_unused_uploads(&self, before_ms: i64) -> anyhow::Result<u64> {
        let pruned = on_pool!(self, pool => {
            sqlx::query(
                "DELETE FROM configuration_versions WHERE uploaded = 1 AND created_at_ms < $1 \
                 AND NOT EXISTS (SELECT 1 FROM runs \
                 WHERE runs.configuration_version_id = configuration_versions.id)",
            )
            .bind(before_ms)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(pruned)
    }

    /// An uploaded configuration version: its repository and SHA-256, if it is one.
    pub async fn uploaded_configuration(
        &self,
        id: i64,
    ) -> anyhow::Result<Option<(String, String)>> {
        let found = on_read_pool!(self, pool => {
            sqlx::query_as(
                "SELECT repo, commit_sha FROM configuration_versions WHERE id = $1 \
                 AND uploaded = 1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
        });
        Ok(found)
    }

    /// The tarball of an uploaded configuration version.
    pub async fn uploaded_archive(&self, configuration_version_id: i64) -> anyhow::Result<Vec<u8>> {
        let archive: Option<Option<Vec<u8>>> = on_read_pool!(self, pool => {
            sqlx::query_scalar("SELECT archive FROM configuration_versions WHERE id = $1")
                .bind(configuration_version_id)
                .fetch_optional(pool)
                .await?
        });
        archive.flatten().ok_or_else(|| {
            anyhow::anyhow!("configuration version {configuration_version_id} has no upload")
        })
    }

    /// A workspace's runs, speculative plans excluded: those waiting in the queue first, in
    /// queue order, then the others newest first. `offset`/`limit` cut out one page.
    pub async fn workspace_run_page(
        &self,
        workspace_id: WorkspaceId,
        offset: i64,
        limit: i64,
    ) -> anyhow::Result<RunPage> {
        self.runs_page(workspace_id, RunOrder::QueueFirst, offset, limit)
            .await
    }

    /// The same, newest first: Terraform Cloud's order, which the CLI counts the runs ahead
    /// of its own in.
    pub async fn workspace_runs_newest_first(
        &self,
        workspace_id: WorkspaceId,
        offset: i64,
        limit: i64,
    ) -> anyhow::Result<RunPage> {
        self.runs_page(workspace_id, RunOrder::NewestFirst, offset, limit)
            .await
    }

    async fn runs_page(
        &self,
        workspace_id: WorkspaceId,
        order: RunOrder,
        offset: i64,
        limit: i64,
    ) -> anyhow::Result<RunPage> {
        let sql = match order {
            RunOrder::QueueFirst => concat!(
                select_runs!(),
                " WHERE r.workspace_id = $1 AND r.speculative = 0 \
                 ORDER BY CASE WHEN r.state = 'pending' THEN 0 ELSE 1 END, \
                 CASE WHEN r.state = 'pending' THEN r.id ELSE -r.id END LIMIT $2 OFFSET $3"
            ),
            RunOrder::NewestFirst => concat!(
                select_runs!(),
                " WHERE r.workspace_id = $1 AND r.speculative = 0 ORDER BY r.id DESC \
                 LIMIT $2 OFFSET $3"
            ),
        };
        let (rows, total) = on_read_pool!(self, pool => {
            let rows = sqlx::query(sql)
                .bind(workspace_id)
                .bind(limit)
                .bind(offset)
                .fetch_all(pool)
                .await?;
            let total: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM runs WHERE workspace_id = $1 AND speculative = 0",
            )
            .bind(workspace_id)
            .fetch_one(pool)
            .await?;
            let runs = rows.iter().map(run_detail).collect::<anyhow::Result<Vec<_>>>()?;
            (runs, total)
        });
        Ok(RunPage { runs: rows, total })
    }

    /// Whether the workspace has a run (not a speculative plan) made after `run_id`.
    pub async fn has_newer_run(
        &self,
        workspace_id: WorkspaceId,
        run_id: RunId,
    ) -> anyhow::Result<bool> {
        let newer: Option<i64> = on_read_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT id FROM runs WHERE workspace_id = $1 AND speculative = 0 AND id > $2 \
                 LIMIT 1",
            )
            .bind(workspace_id)
            .bind(run_id)
            .fetch_optional(pool)
            .await?
        });
        Ok(newer.is_some())
    }
}
