//! Reading runs: a run with its configuration version ([`RunDetail`]), the queues and
//! speculative plans the scheduler looks at, a run's timeline, and counts for `/metrics`.

use sqlx::Row;

use crate::core::CommitSha;
use crate::core::plan_options::PlanOptions;
use crate::core::run::RunState;
use crate::core::status::{self, RunFacts};
use crate::core::workspace::WorkspaceSpec;
use crate::core::{InstallationId, PrNumber, RunId, WorkspaceId};
use crate::store::{CancelScope, Store, on_read_pool};

/// A run as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    pub id: RunId,
    pub workspace_id: WorkspaceId,
    pub configuration_version_id: i64,
    pub commit_sha: CommitSha,
    pub speculative: bool,
    pub state: String,
    pub source: String,
    pub delivery_id: Option<String>,
}

/// A run with what executing it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDetail {
    pub id: RunId,
    pub workspace_id: WorkspaceId,
    /// The workspace's name, read with the run (what GitHub's contexts and checks are named by).
    pub workspace_name: String,
    pub state: RunState,
    pub speculative: bool,
    /// Applies without confirmation, whatever the workspace's setting (`-auto-approve`).
    pub auto_apply: bool,
    pub source: String,
    pub commit_sha: CommitSha,
    pub created_at_ms: i64,
    pub configuration_version_id: i64,
    pub repo: String,
    pub installation_id: Option<InstallationId>,
    /// SHA-256 of the fetched tarball, once fetched.
    pub archive_sha256: Option<String>,
    /// The configuration was uploaded through the API (not a commit on GitHub): its tarball
    /// is in the database, holds the files at its root, and nothing is reported to GitHub.
    pub uploaded: bool,
    pub plan: Option<PlanCounts>,
    /// Gantry's reason for ending the run.
    pub error: Option<String>,
    /// Terraform's first error line, for an errored run whose log had one: the reason shown.
    pub terraform_error: Option<String>,
    /// The pull request of a speculative plan.
    pub pr_number: Option<PrNumber>,
    /// The run this one retries.
    pub retry_of: Option<RunId>,
    /// The run got as far as applying: an error now is an apply failure.
    pub reached_apply: bool,
    /// Who caused the run (a GitHub login, or an API token's name); empty when unknown.
    pub author: String,
    /// The applied run whose run trigger queued this one.
    pub triggered_by: Option<RunId>,
    /// What a person asked of its plan.
    pub options: PlanOptions,
    /// A person's note on why.
    pub message: String,
}

impl RunDetail {
    /// What every place that shows a run says about it (its commit status and check run on
    /// GitHub, the UI, the API) is decided from these facts. The reason for an error is
    /// Terraform's own first error line when its log had one, else Gantry's.
    pub fn facts(&self) -> RunFacts<'_> {
        RunFacts {
            state: self.state,
            speculative: self.speculative,
            plan: self
                .plan
                .as_ref()
                .map(|p| (p.add, p.change, p.destroy, p.has_changes)),
            reached_apply: self.reached_apply,
            error: (self.terraform_error.as_deref())
                .filter(|line| !line.is_empty())
                .or(self.error.as_deref()),
        }
    }

    /// Whether a plan of this run applies without confirmation: `-auto-approve`, or its
    /// workspace's `auto_apply` — except for a run a trigger queued, which follows
    /// `auto_apply_run_trigger` (set on the run when it was queued) alone.
    pub fn applies_automatically(&self, workspace: &WorkspaceSpec) -> bool {
        self.auto_apply || (workspace.auto_apply && self.triggered_by.is_none())
    }

    /// The run in one line, as its commit status describes it ("Apply failed: …").
    pub fn summary(&self) -> String {
        status::run_status(&self.facts()).description
    }

    /// The run's commit on GitHub (`web_url` is GitHub's web address); none for an upload,
    /// whose "commit" is its tarball's SHA-256.
    pub fn commit_url(&self, web_url: &str) -> Option<String> {
        let web = web_url.trim_end_matches('/');
        (!self.uploaded).then(|| format!("{web}/{}/commit/{}", self.repo, self.commit_sha))
    }

    /// The pull request a speculative plan belongs to.
    pub fn pr_url(&self, web_url: &str) -> Option<String> {
        let web = web_url.trim_end_matches('/');
        self.pr_number
            .map(|n| format!("{web}/{}/pull/{n}", self.repo))
    }
}

/// The plan summary as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlanCounts {
    pub add: i64,
    pub change: i64,
    pub destroy: i64,
    /// Changes of any kind, outputs included.
    #[serde(default)]
    pub has_changes: bool,
    /// `[{"address": …, "actions": […]}]`
    pub resource_changes: serde_json::Value,
}

/// A state a run entered, and when.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RunEvent {
    pub state: String,
    pub at_ms: i64,
    pub detail: Option<String>,
    /// Who or what moved the run (`runner`, `recovery`, `github`, `person:<name>`); none for
    /// a run's creation and for events from before causes were kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

pub(super) fn run_detail<R>(row: &R) -> anyhow::Result<RunDetail>
where
    R: Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i32: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let state: String = row.try_get("state")?;
    let plan = match (
        row.try_get::<Option<i64>, _>("plan_add")?,
        row.try_get::<Option<i64>, _>("plan_change")?,
        row.try_get::<Option<i64>, _>("plan_destroy")?,
    ) {
        (Some(add), Some(change), Some(destroy)) => {
            let changes: Option<String> = row.try_get("resource_changes")?;
            Some(PlanCounts {
                add,
                change,
                destroy,
                has_changes: row
                    .try_get::<Option<i32>, _>("plan_has_changes")?
                    .unwrap_or(0)
                    != 0,
                resource_changes: changes
                    .map(|c| serde_json::from_str(&c))
                    .transpose()?
                    .unwrap_or_default(),
            })
        }
        _ => None,
    };
    Ok(RunDetail {
        id: row.try_get("id")?,
        workspace_id: row.try_get("workspace_id")?,
        workspace_name: row.try_get("workspace_name")?,
        state: RunState::parse(&state)
            .ok_or_else(|| anyhow::anyhow!("unknown run state {state}"))?,
        speculative: row.try_get::<i32, _>("speculative")? != 0,
        auto_apply: row.try_get::<i32, _>("auto_apply")? != 0,
        source: row.try_get("source")?,
        commit_sha: row.try_get("commit_sha")?,
        created_at_ms: row.try_get("created_at_ms")?,
        configuration_version_id: row.try_get("configuration_version_id")?,
        repo: row.try_get("repo")?,
        installation_id: row.try_get("installation_id")?,
        archive_sha256: row.try_get("archive_sha256")?,
        uploaded: row.try_get::<i32, _>("uploaded")? != 0,
        plan,
        error: row.try_get("error")?,
        terraform_error: row.try_get("terraform_error")?,
        pr_number: row.try_get("pr_number")?,
        retry_of: row.try_get("retry_of")?,
        reached_apply: row.try_get::<i32, _>("reached_apply")? != 0,
        author: row.try_get("author")?,
        triggered_by: row.try_get("triggered_by")?,
        options: serde_json::from_str(&row.try_get::<String, _>("plan_options")?)?,
        message: row.try_get("message")?,
    })
}

impl Store {
    /// A run's events with their times, oldest first.
    pub async fn run_timeline(&self, run_id: RunId) -> anyhow::Result<Vec<RunEvent>> {
        let rows: Vec<(String, i64, Option<String>, Option<String>)> = on_read_pool!(self, pool => {
            sqlx::query_as(
                "SELECT state, at_ms, detail, cause FROM run_events WHERE run_id = $1 \
                 ORDER BY id",
            )
            .bind(run_id)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(state, at_ms, detail, cause)| RunEvent {
                state,
                at_ms,
                detail,
                cause,
            })
            .collect())
    }

    /// How many runs are in each state.
    pub async fn run_counts(&self) -> anyhow::Result<Vec<(String, i64)>> {
        let rows = on_read_pool!(self, pool => {
            sqlx::query_as("SELECT state, COUNT(*) FROM runs GROUP BY state ORDER BY state")
                .fetch_all(pool)
                .await?
        });
        Ok(rows)
    }

    /// How many runs wait in each workspace's queue (pending, non-speculative).
    pub async fn queue_depths(&self) -> anyhow::Result<Vec<(String, i64)>> {
        let rows = on_read_pool!(self, pool => {
            sqlx::query_as(
                "SELECT w.name, COUNT(r.id) FROM workspaces w LEFT JOIN runs r \
                 ON r.workspace_id = w.id AND r.state = 'pending' AND r.speculative = 0 \
                 WHERE w.archived = 0 GROUP BY w.name ORDER BY w.name",
            )
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }

    /// Workspaces with at least one unfinished, non-speculative run: where the scheduler looks
    /// at start and on its periodic sweep.
    pub async fn workspaces_with_active_runs(&self) -> anyhow::Result<Vec<WorkspaceId>> {
        let ids = on_read_pool!(self, pool => {
            sqlx::query_scalar(concat!(
                "SELECT DISTINCT workspace_id FROM runs WHERE speculative = 0 AND state NOT IN ",
                final_states!()
            ))
            .fetch_all(pool)
            .await?
        });
        Ok(ids)
    }

    /// A workspace's unfinished, non-speculative runs in queue order, and whether it is locked:
    /// all the queue policy needs.
    pub async fn workspace_queue(
        &self,
        workspace_id: WorkspaceId,
    ) -> anyhow::Result<(Vec<(RunId, RunState)>, bool)> {
        let (rows, locked): (Vec<(RunId, String)>, Option<Option<String>>) = on_read_pool!(self, pool => {
            let mut conn = pool.acquire().await?;
            let rows = sqlx::query_as(concat!(
                "SELECT id, state FROM runs WHERE workspace_id = $1 AND speculative = 0 ",
                "AND state NOT IN ",
                final_states!(),
                " ORDER BY id"
            ))
                .bind(workspace_id)
                .fetch_all(&mut *conn)
                .await?;
            let locked = sqlx::query_scalar("SELECT locked_by FROM workspaces WHERE id = $1")
                .bind(workspace_id)
                .fetch_optional(&mut *conn)
                .await?;
            (rows, locked)
        });
        let runs = rows
            .into_iter()
            .map(|(id, state)| {
                let state = RunState::parse(&state)
                    .ok_or_else(|| anyhow::anyhow!("run {id} has an unknown state {state}"))?;
                Ok((id, state))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok((runs, locked.flatten().is_some()))
    }

    /// One run with its configuration version.
    pub async fn run(&self, run_id: RunId) -> anyhow::Result<Option<RunDetail>> {
        let row = on_read_pool!(self, pool => {
            sqlx::query(concat!(select_runs!(), " WHERE r.id = $1"))
            .bind(run_id)
            .fetch_optional(pool)
            .await?
            .map(|row| run_detail(&row))
            .transpose()?
        });
        Ok(row)
    }

    /// The speculative plans of `scope` in `repo` that are executing (fetching, planning or
    /// checking policies).
    pub async fn executing_speculative_runs(
        &self,
        repo: &str,
        scope: &CancelScope,
    ) -> anyhow::Result<Vec<RunId>> {
        let (pr_number, except_sha, only_sha) = scope.binds();
        let ids = on_read_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT r.id FROM runs r JOIN configuration_versions c \
                 ON c.id = r.configuration_version_id WHERE r.speculative = 1 \
                 AND r.state IN ('fetching', 'planning', 'policy_checking', 'policy_checked') \
                 AND ($1 IS NULL OR r.pr_number = $1) AND c.repo = $2 \
                 AND ($3 IS NULL OR r.commit_sha <> $3) AND ($4 IS NULL OR r.commit_sha = $4) \
                 ORDER BY r.id",
            )
            .bind(pr_number)
            .bind(repo)
            .bind(except_sha)
            .bind(only_sha)
            .fetch_all(pool)
            .await?
        });
        Ok(ids)
    }

    /// Speculative plans waiting to start, oldest first.
    pub async fn pending_speculative_runs(&self) -> anyhow::Result<Vec<RunId>> {
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
        sha: &CommitSha,
    ) -> anyhow::Result<Vec<RunId>> {
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

    /// The runs of `repo` at any of `commits` that wait for an override of their failed
    /// policy check, by workspace.
    pub async fn runs_waiting_for_override(
        &self,
        repo: &str,
        commits: &[CommitSha],
    ) -> anyhow::Result<Vec<RunDetail>> {
        let mut waiting = Vec::new();
        for sha in commits {
            let rows = on_read_pool!(self, pool => {
                sqlx::query(concat!(
                    select_runs!(),
                    " WHERE r.state = 'policy_override' AND r.speculative = 0 \
                     AND c.repo = $1 AND r.commit_sha = $2 ORDER BY r.workspace_id"
                ))
                .bind(repo)
                .bind(sha)
                .fetch_all(pool)
                .await?
                .iter()
                .map(run_detail)
                .collect::<anyhow::Result<Vec<_>>>()?
            });
            waiting.extend(rows);
        }
        Ok(waiting)
    }

    /// The runs `run_id`'s apply triggered, with their workspaces' names, oldest first.
    pub async fn triggered_runs(&self, run_id: RunId) -> anyhow::Result<Vec<(RunId, String)>> {
        let runs = on_read_pool!(self, pool => {
            sqlx::query_as(
                "SELECT r.id, w.name FROM runs r JOIN workspaces w ON w.id = r.workspace_id \
                 WHERE r.triggered_by = $1 ORDER BY r.id",
            )
            .bind(run_id)
            .fetch_all(pool)
            .await?
        });
        Ok(runs)
    }

    /// The latest speculative plan of each workspace for a pull request, by workspace id.
    pub async fn pull_request_runs(
        &self,
        repo: &str,
        pr_number: PrNumber,
    ) -> anyhow::Result<Vec<RunId>> {
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
        sha: &CommitSha,
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

    /// A run's events, oldest first: (state, detail).
    pub async fn run_events(&self, run_id: RunId) -> anyhow::Result<Vec<(String, Option<String>)>> {
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
    pub async fn workspace_runs(
        &self,
        workspace_id: WorkspaceId,
    ) -> anyhow::Result<Vec<RunRecord>> {
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
}
