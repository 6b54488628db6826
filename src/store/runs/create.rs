//! Configuration versions and runs: created (with their variable snapshot and first event) in
//! the same transaction that closes the delivery that caused them.

use super::RunDetail;
use super::moves::record_event;
use crate::core::CommitSha;
use crate::core::plan_options::PlanOptions;
use crate::core::run::RunState;
use crate::core::{InstallationId, PrNumber, RunId, WorkspaceId};
use crate::store::outbox::enqueue_run_feedback;
use crate::store::{Conn, now_ms, on_conn};

/// What made a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunSource {
    Push,
    /// A speculative plan for a pull request event.
    PullRequest,
    /// A speculative plan asked for by a comment command (`/gantry plan`).
    Command,
    /// A new run for a failed or canceled one (`/gantry retry`, the API).
    Retry,
    /// Asked for through the API, e.g. of an uploaded configuration.
    Api,
    /// `terraform plan` or `apply` of a `cloud` block or `remote` backend (the TFE API).
    Cli,
    /// A source workspace's apply queued it (a run trigger).
    RunTrigger,
    /// A person started it from the workspace's branch head (UI, API, CLI).
    Manual,
    /// A speculative plan of the commit GitHub's merge queue made of queued pull requests.
    MergeGroup,
}

impl RunSource {
    fn as_str(self) -> &'static str {
        match self {
            RunSource::Push => "push",
            RunSource::PullRequest => "pull_request",
            RunSource::Command => "command",
            RunSource::Retry => "retry",
            RunSource::Api => "api",
            RunSource::Cli => "cli",
            RunSource::RunTrigger => "run_trigger",
            RunSource::Manual => "manual",
            RunSource::MergeGroup => "merge_group",
        }
    }
}

/// Runs to create at one commit: one per workspace, none where that commit already has a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRuns {
    pub repo: String,
    pub commit_sha: CommitSha,
    pub workspace_ids: Vec<WorkspaceId>,
    pub source: RunSource,
    /// The delivery that caused the runs; empty for runs asked for through the API.
    pub delivery_id: String,
    /// The GitHub App installation the configuration is fetched with.
    pub installation_id: Option<InstallationId>,
    /// Speculative plans (pull requests): plan only, outside the workspace's queue.
    pub speculative: bool,
    pub pr_number: Option<PrNumber>,
    /// The run each new run retries, by workspace id (retries only).
    pub retry_of: Vec<(WorkspaceId, RunId)>,
    /// Apply without confirmation whatever the workspace says (`terraform apply
    /// -auto-approve`).
    pub auto_apply: bool,
    /// Who caused the runs: the GitHub login that pushed or opened the pull request, or the
    /// API token's name.
    pub author: String,
    /// The applied run whose run trigger queued these.
    pub triggered_by: Option<RunId>,
    /// What a person asked of the plans (none for a push or a pull request).
    pub options: PlanOptions,
    /// A person's note on why (Terraform Cloud's run message).
    pub message: String,
}

impl NewRuns {
    /// A retry of `run`: a new run of the same configuration version in the same workspace,
    /// asked for by `delivery_id` (a comment, a re-run button; empty for the API) through
    /// `installation` (else the run's own).
    pub fn retry_of(
        run: &RunDetail,
        delivery_id: &str,
        installation: Option<InstallationId>,
    ) -> NewRuns {
        NewRuns {
            repo: run.repo.clone(),
            commit_sha: run.commit_sha.clone(),
            workspace_ids: vec![run.workspace_id],
            source: RunSource::Retry,
            delivery_id: delivery_id.to_string(),
            installation_id: installation.or(run.installation_id),
            speculative: run.speculative,
            pr_number: run.pr_number,
            retry_of: vec![(run.workspace_id, run.id)],
            auto_apply: run.auto_apply,
            author: run.author.clone(),
            triggered_by: run.triggered_by,
            options: run.options.clone(),
            message: run.message.clone(),
        }
    }

    /// Runs for a push.
    pub fn push(
        repo: String,
        commit_sha: CommitSha,
        workspace_ids: Vec<WorkspaceId>,
        delivery_id: String,
        installation_id: Option<InstallationId>,
        author: String,
    ) -> Self {
        Self {
            repo,
            commit_sha,
            workspace_ids,
            source: RunSource::Push,
            delivery_id,
            installation_id,
            speculative: false,
            pr_number: None,
            retry_of: Vec::new(),
            auto_apply: false,
            author,
            triggered_by: None,
            options: PlanOptions::default(),
            message: String::new(),
        }
    }
}

impl NewRuns {
    /// Creates the runs; returns the ids of those made.
    pub(crate) async fn create(&self, conn: Conn<'_>) -> Result<Vec<RunId>, sqlx::Error> {
        let now = now_ms();
        let delivery_id = (!self.delivery_id.is_empty()).then_some(&self.delivery_id);
        let mut created = Vec::new();
        on_conn!(conn, c => {
            sqlx::query(
                "INSERT INTO configuration_versions (repo, commit_sha, created_at_ms, \
                 installation_id) VALUES ($1, $2, $3, $4) ON CONFLICT (repo, commit_sha) \
                 DO UPDATE SET installation_id = COALESCE(excluded.installation_id, \
                 configuration_versions.installation_id)",
            )
            .bind(&self.repo)
            .bind(&self.commit_sha)
            .bind(now)
            .bind(self.installation_id)
            .execute(&mut *c)
            .await?;
            let version: i64 = sqlx::query_scalar(
                "SELECT id FROM configuration_versions WHERE repo = $1 AND commit_sha = $2",
            )
            .bind(&self.repo)
            .bind(&self.commit_sha)
            .fetch_one(&mut *c)
            .await?;
            for workspace_id in &self.workspace_ids {
                if self.speculative && self.source == RunSource::PullRequest {
                    // A pull request event for a head that is already being planned (opened and
                    // ready_for_review together, a redelivery) plans it once.
                    let planning: Option<RunId> = sqlx::query_scalar(
                        "SELECT id FROM runs WHERE workspace_id = $1 AND commit_sha = $2 \
                         AND speculative = 1 AND pr_number = $3 AND state IN \
                         ('pending', 'fetching', 'planning', 'policy_checking', 'policy_checked')",
                    )
                    .bind(workspace_id)
                    .bind(&self.commit_sha)
                    .bind(self.pr_number)
                    .fetch_optional(&mut *c)
                    .await?;
                    if planning.is_some() {
                        continue;
                    }
                }
                if self.source == RunSource::Push && !self.speculative {
                    // The same push again (another delivery of it): its commit is the tip that
                    // ran last. A commit that ran before and is the tip again after another
                    // push (a rollback) runs again.
                    let latest: Option<String> = sqlx::query_scalar(
                        "SELECT commit_sha FROM runs WHERE workspace_id = $1 \
                         AND speculative = 0 AND source = 'push' ORDER BY id DESC LIMIT 1",
                    )
                    .bind(workspace_id)
                    .fetch_optional(&mut *c)
                    .await?;
                    if latest.as_deref() == Some(self.commit_sha.as_str()) {
                        continue;
                    }
                }
                let retry_of = self
                    .retry_of
                    .iter()
                    .find(|(ws, _)| ws == workspace_id)
                    .map(|(_, run)| *run);
                let run: Option<RunId> = sqlx::query_scalar(
                    "INSERT INTO runs (workspace_id, configuration_version_id, commit_sha, \
                     speculative, state, source, delivery_id, created_at_ms, updated_at_ms, \
                     pr_number, retry_of, auto_apply, author, triggered_by, plan_options, \
                     message) \
                     VALUES ($1, $2, $3, $7, 'pending', $4, $5, $6, $6, $8, $9, $10, $11, $12, \
                     $13, $14) \
                     ON CONFLICT DO NOTHING \
                     RETURNING id",
                )
                .bind(workspace_id)
                .bind(version)
                .bind(&self.commit_sha)
                .bind(self.source.as_str())
                .bind(delivery_id)
                .bind(now)
                .bind(i32::from(self.speculative))
                .bind(self.pr_number)
                .bind(retry_of)
                .bind(i32::from(self.auto_apply))
                .bind(&self.author)
                .bind(self.triggered_by)
                .bind(serde_json::to_string(&self.options).expect("options serialize"))
                .bind(&self.message)
                .fetch_optional(&mut *c)
                .await?;
                let Some(run) = run else {
                    // This push made its run in this workspace already, or the run was
                    // retried already (the unique indexes on runs).
                    continue;
                };
                // Pinned now: later variable changes affect only later runs.
                sqlx::query(
                    "INSERT INTO run_variables (run_id, category, key, value, sensitive) \
                     SELECT $1, category, key, value, sensitive FROM workspace_variables \
                     WHERE workspace_id = $2",
                )
                .bind(run)
                .bind(workspace_id)
                .execute(&mut *c)
                .await?;
                record_event((&mut *c).into(), run, RunState::Pending, None, None).await?;
                enqueue_run_feedback((&mut *c).into(), run).await?;
                crate::store::enqueue_notifications((&mut *c).into(), run, RunState::Pending)
                    .await?;
                created.push(run);
            }
        });
        Ok(created)
    }
}
