//! Runs people start (`POST /api/v1/workspaces/{name}/runs`, the UI's "Start new run", `gantry
//! runs create`): of an uploaded configuration version, or — without one — of the head of the
//! workspace's branch on GitHub, fetched now and run through the queue like a push. With
//! Terraform Cloud's options: plan only, destroy, refresh-only, `-target`, `-replace`, a
//! message.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::auth::Writer;
use super::error::ApiError;
use super::runs::{RunJson, run_json};
use super::workspace_admin::find;
use crate::core::plan_options::PlanOptions;
use crate::core::{CommitSha, RunId};
use crate::store::{NewRuns, RunSource, Workspace};
use crate::web::AppState;

/// The longest run message taken.
const MAX_MESSAGE_CHARS: usize = 1_000;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRunBody {
    /// An uploaded configuration version; absent: the head of the workspace's branch.
    pub configuration_version: Option<i64>,
    /// Plan only, outside the queue (like a pull request's plan).
    #[serde(default)]
    pub speculative: bool,
    #[serde(default)]
    pub is_destroy: bool,
    #[serde(default)]
    pub refresh_only: bool,
    #[serde(default)]
    pub target_addrs: Vec<String>,
    #[serde(default)]
    pub replace_addrs: Vec<String>,
    #[serde(default)]
    pub message: String,
}

impl NewRunBody {
    /// The plan's options and the message, checked.
    fn options(&self) -> Result<(PlanOptions, String), ApiError> {
        let options = PlanOptions {
            destroy: self.is_destroy,
            refresh_only: self.refresh_only,
            targets: self.target_addrs.clone(),
            replaces: self.replace_addrs.clone(),
        };
        if let Some(why) = options.problem() {
            return Err(ApiError::BadRequest(why));
        }
        let message = self.message.trim();
        if message.chars().count() > MAX_MESSAGE_CHARS {
            return Err(ApiError::BadRequest(format!(
                "message: at most {MAX_MESSAGE_CHARS} characters"
            )));
        }
        Ok((options, message.to_string()))
    }
}

/// `POST /api/v1/workspaces/{name}/runs`: a run joins the workspace's queue and waits for
/// confirmation (unless it auto-applies); a speculative one plans at once.
pub async fn create_run(
    State(state): State<Arc<AppState>>,
    Writer(caller): Writer,
    Path(name): Path<String>,
    Json(body): Json<NewRunBody>,
) -> Result<(StatusCode, Json<RunJson>), ApiError> {
    let workspace = find(&state, &name).await?;
    let id = start_run(&state, &workspace, &caller.name, &body).await?;
    let run = super::runs::find(&state, id).await?;
    Ok((StatusCode::CREATED, Json(run_json(&state, run).await?)))
}

/// Starts the run `body` asks for in `workspace`, for `by` (a token's name).
pub async fn start_run(
    state: &AppState,
    workspace: &Workspace,
    by: &str,
    body: &NewRunBody,
) -> Result<RunId, ApiError> {
    let name = workspace.spec.name.as_str();
    if workspace.archived {
        return Err(ApiError::Conflict(format!(
            "workspace {name} is archived: it left the configuration file"
        )));
    }
    if workspace.spec.execution_mode == crate::core::workspace::ExecutionMode::Local {
        return Err(ApiError::Conflict(format!(
            "workspace {name} uses local execution: Terraform runs on your machine and Gantry \
             keeps its state"
        )));
    }
    let (options, message) = body.options()?;
    let (repo, commit_sha, installation_id, source) = match body.configuration_version {
        Some(version) => {
            if workspace.from_config && !body.speculative {
                // As Terraform Cloud does for VCS-driven workspaces: what a configuration-file
                // workspace applies is what was merged on GitHub, never a local checkout.
                return Err(ApiError::Conflict(format!(
                    "workspace {name} applies what is pushed to GitHub; an uploaded \
                     configuration can only be planned there (speculative: true)"
                )));
            }
            let (repo, sha256) = (state.store.uploaded_configuration(version).await?)
                .filter(|(repo, _)| repo == workspace.spec.repo_name())
                .ok_or_else(|| {
                    ApiError::NotFound(format!(
                        "configuration version {version} not found for workspace {name}"
                    ))
                })?;
            (repo, CommitSha(sha256), None, RunSource::Api)
        }
        None => {
            let (head, installation) = branch_head(state, workspace).await?;
            let repo = workspace.spec.repo_name().to_string();
            (repo, head, Some(installation), RunSource::Manual)
        }
    };
    let new = NewRuns {
        repo,
        commit_sha,
        workspace_ids: vec![workspace.id],
        source,
        delivery_id: String::new(),
        installation_id,
        speculative: body.speculative,
        pr_number: None,
        retry_of: Vec::new(),
        auto_apply: false,
        author: by.to_string(),
        triggered_by: None,
        options,
        message,
    };
    let id = state.runs.create_run(&new).await?;
    tracing::info!(
        workspace = name,
        run_id = %id,
        commit = %new.commit_sha,
        speculative = body.speculative,
        options = new.options.describe(),
        by,
        "run started"
    );
    Ok(id)
}

/// The commit at the head of the workspace's branch (its repository's default branch when it
/// names none), and the installation that reads it.
async fn branch_head(
    state: &AppState,
    workspace: &Workspace,
) -> Result<(CommitSha, crate::core::InstallationId), ApiError> {
    let name = workspace.spec.name.as_str();
    let Some(repo) = &workspace.spec.repo else {
        return Err(ApiError::BadRequest(format!(
            "workspace {name} is connected to no repository: upload a configuration \
             version and name it"
        )));
    };
    let github = &state.github;
    let upstream = |doing: &str, error: crate::github::GitHubError| {
        tracing::warn!(workspace = name, error = %error, "{doing} failed");
        ApiError::Upstream(format!("GitHub did not answer {doing}: {error}"))
    };
    let installation = (github.repository_installation(repo.as_str()).await)
        .map_err(|e| upstream("which installation reads the repository", e))?;
    let branch = match &workspace.spec.branch {
        Some(branch) => branch.clone(),
        None => (github.default_branch(installation, repo.as_str()).await)
            .map_err(|e| upstream("the repository's default branch", e))?,
    };
    let head = (github
        .branch_head(installation, repo.as_str(), &branch)
        .await)
        .map_err(|e| upstream(&format!("the head of {branch}"), e))?;
    Ok((head, installation))
}
