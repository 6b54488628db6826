//! Workspaces and their variables. The configuration's workspaces are synced in at start and
//! on reload; one that left the configuration is archived with its runs, never deleted.

mod admin;

pub use admin::WorkspaceWriteError;

use std::collections::BTreeMap;

use sqlx::{QueryBuilder, Row};

use self::admin::put_variable;
use crate::core::WorkspaceId;
use crate::core::workspace::{
    ExecutionMode, RepoName, VariableCategory, VariableValue, WorkspaceName, WorkspaceSpec,
};
use crate::store::{BeginWrite, Conn, Store, now_ms, on_conn, on_pool, on_read_pool};

/// A lock set by hand: who, why, when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceLock {
    pub by: String,
    pub reason: String,
    pub at_ms: i64,
}

/// A workspace as stored.
#[derive(Debug, Clone)]
pub struct Workspace {
    pub id: WorkspaceId,
    pub spec: WorkspaceSpec,
    pub lock: Option<WorkspaceLock>,
    /// Declared in the configuration file (as opposed to made through the API).
    pub from_config: bool,
    pub archived: bool,
}

/// What a sync changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncReport {
    pub synced: usize,
    pub archived: u64,
}

/// Binds a workspace's settings as `$1`..`$8` (name, repo, branch, working directory, trigger
/// patterns as JSON, auto-apply, Terraform version, speculative plans), the order every
/// statement that writes them uses.
macro_rules! bind_workspace_settings {
    ($query:expr, $spec:expr, $patterns:expr) => {
        $query
            .bind($spec.name.as_str())
            .bind($spec.repo_name())
            .bind(&$spec.branch)
            .bind(&$spec.working_directory)
            .bind($patterns)
            .bind(i32::from($spec.auto_apply))
            .bind(&$spec.terraform_version)
            .bind(i32::from($spec.speculative_enabled))
    };
}
pub(super) use bind_workspace_settings;

impl Store {
    /// Locks a workspace by hand. Returns the lock already in place, if it was locked (the
    /// first lock stands). The lock is on the workspace's audit trail.
    pub async fn lock_workspace(
        &self,
        workspace_id: WorkspaceId,
        by: &str,
        reason: &str,
    ) -> anyhow::Result<Option<WorkspaceLock>> {
        let locked = on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let locked = sqlx::query(
                "UPDATE workspaces SET locked_by = $1, lock_reason = $2, locked_at_ms = $3 \
                 WHERE id = $4 AND locked_by IS NULL",
            )
            .bind(by)
            .bind(reason)
            .bind(now_ms())
            .bind(workspace_id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if locked {
                record_workspace_event((&mut *tx).into(), workspace_id, "locked", by, reason)
                    .await?;
            }
            tx.commit().await?;
            locked
        });
        if locked {
            return Ok(None);
        }
        Ok(self.workspace(workspace_id).await?.and_then(|w| w.lock))
    }

    /// Unlocks a workspace for `by` (whoever holds the lock); its queued runs may start again.
    /// An unlock of a locked workspace is on its audit trail.
    pub async fn unlock_workspace(
        &self,
        workspace_id: WorkspaceId,
        by: &str,
    ) -> anyhow::Result<()> {
        self.unlock_where(workspace_id, by, None).await?;
        Ok(())
    }

    /// Unlocks a workspace if `by` holds its lock (checked in the same statement, so a lock
    /// taken meanwhile by someone else stays). Returns whether it was unlocked.
    pub async fn unlock_workspace_held_by(
        &self,
        workspace_id: WorkspaceId,
        by: &str,
    ) -> anyhow::Result<bool> {
        self.unlock_where(workspace_id, by, Some(by)).await
    }

    /// Unlocks a locked workspace (held by `holder`, if named), recording who did.
    async fn unlock_where(
        &self,
        workspace_id: WorkspaceId,
        by: &str,
        holder: Option<&str>,
    ) -> anyhow::Result<bool> {
        let unlocked = on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let held_by: Option<String> =
                sqlx::query_scalar("SELECT locked_by FROM workspaces WHERE id = $1")
                    .bind(workspace_id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .flatten();
            let unlocked = match held_by.filter(|held| holder.is_none_or(|h| h == held)) {
                // Only while the same lock holds: one taken meanwhile stays.
                Some(held) => {
                    let unlocked = sqlx::query(
                        "UPDATE workspaces SET locked_by = NULL, lock_reason = NULL, \
                         locked_at_ms = NULL WHERE id = $1 AND locked_by = $2",
                    )
                    .bind(workspace_id)
                    .bind(&held)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                        == 1;
                    if unlocked {
                        let detail = if held == by { String::new() } else { format!("held by {held}") };
                        record_workspace_event((&mut *tx).into(), workspace_id, "unlocked", by, &detail)
                            .await?;
                    }
                    unlocked
                }
                None => false,
            };
            tx.commit().await?;
            unlocked
        });
        Ok(unlocked)
    }

    /// A workspace's audit trail (locks and unlocks), newest first, at most `limit`.
    pub async fn workspace_events(
        &self,
        workspace_id: WorkspaceId,
        limit: i64,
    ) -> anyhow::Result<Vec<WorkspaceEvent>> {
        let rows: Vec<(String, String, String, i64)> = on_read_pool!(self, pool => {
            sqlx::query_as(
                "SELECT action, actor, detail, at_ms FROM workspace_events \
                 WHERE workspace_id = $1 ORDER BY id DESC LIMIT $2",
            )
            .bind(workspace_id)
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(action, by, detail, at_ms)| WorkspaceEvent {
                action,
                by,
                detail,
                at_ms,
            })
            .collect())
    }

    /// Makes the stored configuration workspaces match `specs`, in one transaction: each is
    /// created or updated (its variables replaced); configuration workspaces no longer listed
    /// are archived. Workspaces made through the API are left alone, and a configuration
    /// workspace with the name of one is an error: taking it over would drop the variables
    /// (sensitive ones included) that were set through the API.
    pub async fn sync_config_workspaces(
        &self,
        specs: &[WorkspaceSpec],
    ) -> anyhow::Result<SyncReport> {
        let now = now_ms();
        let archived = on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            for spec in specs {
                let made_by_api: Option<i32> = sqlx::query_scalar(
                    "SELECT 1 FROM workspaces WHERE name = $1 AND source = 'api'",
                )
                .bind(spec.name.as_str())
                .fetch_optional(&mut *tx)
                .await?;
                anyhow::ensure!(
                    made_by_api.is_none(),
                    "workspace {0} was made through the API, and the configuration file \
                     declares it too: rename it in the file, or delete the API's one \
                     (DELETE /api/v1/workspaces/{0})",
                    spec.name.as_str()
                );
                let patterns = serde_json::to_string(&spec.trigger_patterns)?;
                let id: WorkspaceId = bind_workspace_settings!(sqlx::query_scalar(
                    "INSERT INTO workspaces (name, repo, branch, working_directory, \
                     trigger_patterns, auto_apply, terraform_version, speculative_enabled, \
                     source, archived, created_at_ms, updated_at_ms, plan_forks, network, \
                     execution_mode, tags) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'config', 0, $9, $9, $10, $11, $12, \
                     $13) \
                     ON CONFLICT (name) DO UPDATE SET repo = excluded.repo, \
                     branch = excluded.branch, working_directory = excluded.working_directory, \
                     trigger_patterns = excluded.trigger_patterns, \
                     auto_apply = excluded.auto_apply, \
                     terraform_version = excluded.terraform_version, \
                     speculative_enabled = excluded.speculative_enabled, source = 'config', \
                     plan_forks = excluded.plan_forks, network = excluded.network, \
                     execution_mode = excluded.execution_mode, tags = excluded.tags, \
                     archived = 0, updated_at_ms = excluded.updated_at_ms RETURNING id",
                ), spec, patterns)
                .bind(now)
                .bind(i32::from(spec.plan_forks))
                .bind(i32::from(spec.network))
                .bind(spec.execution_mode.as_str())
                .bind(serde_json::to_string(&spec.tags)?)
                .fetch_one(&mut *tx)
                .await?;
                put_triggers_and_assessments((&mut *tx).into(), id, spec).await?;
                sqlx::query("DELETE FROM workspace_variables WHERE workspace_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                for ((category, key), value) in &spec.variables {
                    let stored = self.stored_value(value)?;
                    put_variable((&mut *tx).into(), id, *category, key, &stored, value.sensitive)
                        .await?;
                }
            }
            let mut archive = QueryBuilder::new(
                "UPDATE workspaces SET archived = 1, updated_at_ms = ",
            );
            archive.push_bind(now);
            archive.push(" WHERE source = 'config' AND archived = 0");
            if !specs.is_empty() {
                archive.push(" AND name NOT IN (");
                let mut names = archive.separated(", ");
                for spec in specs {
                    names.push_bind(spec.name.as_str());
                }
                archive.push(")");
            }
            let archived = archive.build().execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            archived
        });
        Ok(SyncReport {
            synced: specs.len(),
            archived,
        })
    }

    /// Every workspace, archived ones included, by name.
    pub async fn workspaces(&self) -> anyhow::Result<Vec<Workspace>> {
        self.load_workspaces(None, None, None).await
    }

    /// The active workspaces of one repository, by name.
    pub async fn workspaces_for_repo(&self, repo: &str) -> anyhow::Result<Vec<Workspace>> {
        self.load_workspaces(Some(repo), None, None).await
    }

    /// A workspace's variables as they are now, opened as a run's pinned copy is
    /// (`Store::run_variables`): (category, key, value, sensitive). A sensitive value that
    /// cannot be opened is an error, not an empty value.
    pub async fn current_variables(
        &self,
        id: WorkspaceId,
    ) -> anyhow::Result<Vec<(String, String, String, bool)>> {
        let rows: Vec<(String, String, String, i32)> = on_read_pool!(self, pool => {
            sqlx::query_as(
                "SELECT category, key, value, sensitive FROM workspace_variables \
                 WHERE workspace_id = $1 ORDER BY category, key",
            )
            .bind(id)
            .fetch_all(pool)
            .await?
        });
        self.open_variables(rows)
    }

    /// One workspace by id, archived or not.
    pub async fn workspace(&self, id: WorkspaceId) -> anyhow::Result<Option<Workspace>> {
        Ok(self.load_workspaces(None, Some(id), None).await?.pop())
    }

    /// One workspace by name, archived or not.
    pub async fn workspace_named(&self, name: &str) -> anyhow::Result<Option<Workspace>> {
        Ok(self.load_workspaces(None, None, Some(name)).await?.pop())
    }

    async fn load_workspaces(
        &self,
        repo: Option<&str>,
        id: Option<WorkspaceId>,
        name: Option<&str>,
    ) -> anyhow::Result<Vec<Workspace>> {
        let (rows, variables) = on_read_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT id, name, repo, branch, working_directory, trigger_patterns, auto_apply, \
                 terraform_version, speculative_enabled, plan_forks, network, source, archived, locked_by, \
                 lock_reason, execution_mode, tags, run_triggers, auto_apply_run_trigger, \
                 assessments, assessment_interval_secs, locked_at_ms FROM workspaces \
                 WHERE ($1 IS NULL OR (repo = $1 AND archived = 0)) \
                 AND ($2 IS NULL OR id = $2) AND ($3 IS NULL OR name = $3) ORDER BY name",
            )
            .bind(repo)
            .bind(id)
            .bind(name)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|row| {
                Ok::<_, sqlx::Error>(WorkspaceRow {
                    id: row.try_get("id")?,
                    name: row.try_get("name")?,
                    repo: row.try_get("repo")?,
                    branch: row.try_get("branch")?,
                    working_directory: row.try_get("working_directory")?,
                    trigger_patterns: row.try_get("trigger_patterns")?,
                    auto_apply: row.try_get::<i32, _>("auto_apply")? != 0,
                    terraform_version: row.try_get("terraform_version")?,
                    speculative_enabled: row.try_get::<i32, _>("speculative_enabled")? != 0,
                    plan_forks: row.try_get::<i32, _>("plan_forks")? != 0,
                    network: row.try_get::<i32, _>("network")? != 0,
                    execution_mode: row.try_get("execution_mode")?,
                    tags: row.try_get("tags")?,
                    run_triggers: row.try_get("run_triggers")?,
                    auto_apply_run_trigger: row.try_get::<i32, _>("auto_apply_run_trigger")? != 0,
                    assessments: row.try_get::<i32, _>("assessments")? != 0,
                    assessment_interval_secs: row.try_get("assessment_interval_secs")?,
                    from_config: row.try_get::<String, _>("source")? == "config",
                    archived: row.try_get::<i32, _>("archived")? != 0,
                    lock: match row.try_get::<Option<String>, _>("locked_by")? {
                        Some(by) => Some(WorkspaceLock {
                            by,
                            reason: row.try_get::<Option<String>, _>("lock_reason")?.unwrap_or_default(),
                            at_ms: row.try_get::<Option<i64>, _>("locked_at_ms")?.unwrap_or_default(),
                        }),
                        None => None,
                    },
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
            let variables: Vec<(WorkspaceId, String, String, String, i32)> = sqlx::query_as(
                "SELECT v.workspace_id, v.category, v.key, v.value, v.sensitive \
                 FROM workspace_variables v JOIN workspaces w ON w.id = v.workspace_id \
                 WHERE ($1 IS NULL OR (w.repo = $1 AND w.archived = 0)) \
                 AND ($2 IS NULL OR w.id = $2) AND ($3 IS NULL OR w.name = $3)",
            )
            .bind(repo)
            .bind(id)
            .bind(name)
            .fetch_all(pool)
            .await?;
            (rows, variables)
        });
        rows.into_iter()
            .map(|row| row.into_workspace(&variables, self.cipher.as_deref()))
            .collect()
    }
}

struct WorkspaceRow {
    id: WorkspaceId,
    name: String,
    repo: String,
    branch: Option<String>,
    working_directory: String,
    trigger_patterns: String,
    auto_apply: bool,
    terraform_version: Option<String>,
    speculative_enabled: bool,
    plan_forks: bool,
    network: bool,
    execution_mode: String,
    /// JSON list.
    tags: String,
    /// JSON list of workspace names.
    run_triggers: String,
    auto_apply_run_trigger: bool,
    assessments: bool,
    assessment_interval_secs: i64,
    from_config: bool,
    archived: bool,
    lock: Option<WorkspaceLock>,
}

impl WorkspaceRow {
    fn into_workspace(
        self,
        variables: &[(WorkspaceId, String, String, String, i32)],
        cipher: Option<&crate::store::Cipher>,
    ) -> anyhow::Result<Workspace> {
        let corrupt =
            |what: &str, why: String| anyhow::anyhow!("stored workspace {}: {what} {why}", self.id);
        let mut vars = BTreeMap::new();
        for (_, category, key, value, sensitive) in variables.iter().filter(|v| v.0 == self.id) {
            let category = match category.as_str() {
                "terraform" => VariableCategory::Terraform,
                "env" => VariableCategory::Env,
                other => return Err(corrupt("variable category", other.to_string())),
            };
            // A sensitive value is opened for the workspace as configured; the API never
            // shows it, and runs use their own pinned copy (`Store::run_variables`), which
            // fails loudly where this one, unreadable, is left empty.
            let sensitive = *sensitive != 0;
            let value = VariableValue {
                value: match (sensitive, cipher) {
                    (false, _) => value.clone(),
                    (true, Some(cipher)) if crate::store::cipher::is_sealed(value) => {
                        cipher.open(value).unwrap_or_default()
                    }
                    (true, _) => String::new(),
                },
                sensitive,
            };
            vars.insert((category, key.clone()), value);
        }
        let spec = WorkspaceSpec {
            name: WorkspaceName::parse(&self.name).map_err(|e| corrupt("name", e))?,
            repo: match self.repo.as_str() {
                "" => None,
                repo => Some(RepoName::parse(repo).map_err(|e| corrupt("repo", e))?),
            },
            execution_mode: ExecutionMode::parse(&self.execution_mode)
                .map_err(|e| corrupt("execution mode", e))?,
            tags: serde_json::from_str(&self.tags).map_err(|e| corrupt("tags", e.to_string()))?,
            branch: self.branch,
            working_directory: self.working_directory,
            trigger_patterns: serde_json::from_str(&self.trigger_patterns)
                .map_err(|e| corrupt("trigger patterns", e.to_string()))?,
            auto_apply: self.auto_apply,
            terraform_version: self.terraform_version,
            speculative_enabled: self.speculative_enabled,
            plan_forks: self.plan_forks,
            network: self.network,
            variables: vars,
            run_triggers: serde_json::from_str::<Vec<String>>(&self.run_triggers)
                .map_err(|e| corrupt("run triggers", e.to_string()))?
                .iter()
                .map(|name| WorkspaceName::parse(name).map_err(|e| corrupt("run trigger", e)))
                .collect::<anyhow::Result<_>>()?,
            auto_apply_run_trigger: self.auto_apply_run_trigger,
            assessments: self.assessments,
            assessment_interval: std::time::Duration::from_secs(
                self.assessment_interval_secs.max(0) as u64,
            ),
        };
        Ok(Workspace {
            id: self.id,
            spec,
            lock: self.lock,
            from_config: self.from_config,
            archived: self.archived,
        })
    }
}

/// Stores a workspace's run triggers and assessment settings, in the caller's transaction.
pub(super) async fn put_triggers_and_assessments(
    conn: Conn<'_>,
    id: WorkspaceId,
    spec: &WorkspaceSpec,
) -> Result<(), sqlx::Error> {
    let names: Vec<&str> = spec
        .run_triggers
        .iter()
        .map(WorkspaceName::as_str)
        .collect();
    let names = serde_json::to_string(&names).expect("names serialize");
    on_conn!(conn, c => {
        sqlx::query(
            "UPDATE workspaces SET run_triggers = $1, auto_apply_run_trigger = $2, \
             assessments = $3, assessment_interval_secs = $4 WHERE id = $5",
        )
        .bind(names)
        .bind(i32::from(spec.auto_apply_run_trigger))
        .bind(i32::from(spec.assessments))
        .bind(spec.assessment_interval.as_secs() as i64)
        .bind(id)
        .execute(&mut *c)
        .await?;
    });
    Ok(())
}

/// One entry of a workspace's audit trail.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WorkspaceEvent {
    /// `locked` or `unlocked`.
    pub action: String,
    /// The token's or person's name.
    pub by: String,
    /// A lock's reason; for an unlock of someone else's lock, whose it was.
    pub detail: String,
    pub at_ms: i64,
}

/// Records `by` doing `action` to a workspace, in the caller's transaction.
async fn record_workspace_event(
    conn: Conn<'_>,
    workspace_id: WorkspaceId,
    action: &str,
    by: &str,
    detail: &str,
) -> Result<(), sqlx::Error> {
    on_conn!(conn, c => {
        sqlx::query(
            "INSERT INTO workspace_events (workspace_id, action, actor, detail, at_ms) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(workspace_id)
        .bind(action)
        .bind(by)
        .bind(crate::store::storable(detail).as_ref())
        .bind(now_ms())
        .execute(&mut *c)
        .await?;
    });
    Ok(())
}
