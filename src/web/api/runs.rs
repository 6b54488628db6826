//! `/api/v1/runs/…`: one run, its log, and what people do to it.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;

use super::auth::{Admin, Caller, Writer};
use super::error::ApiError;
use crate::core::CommitSha;
use crate::core::access::Role;
use crate::core::plan_options::PlanOptions;
use crate::core::{PrNumber, RunId};
use crate::engine::runner::CancelOutcome;
use crate::store::{PlanCounts, RunDetail, RunEvent, Workspace};
use crate::web::AppState;

#[derive(Serialize)]
pub struct RunJson {
    pub id: RunId,
    pub workspace: String,
    pub state: String,
    pub speculative: bool,
    /// push, pull_request, command, retry or api.
    pub source: String,
    pub repo: String,
    /// The commit, or for an uploaded configuration the SHA-256 of its tarball.
    pub commit_sha: CommitSha,
    /// `github` (a commit) or `upload` (a tarball sent to the API).
    pub configuration: &'static str,
    pub commit_url: Option<String>,
    pub pr_number: Option<PrNumber>,
    pub pr_url: Option<String>,
    pub retry_of: Option<RunId>,
    /// Who started it: a GitHub login or an API token's name (empty: unknown).
    pub author: String,
    /// Why, in the words of the person who started it.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// What its plan was asked to do beyond a normal plan (destroy, refresh_only, targets,
    /// replaces).
    #[serde(skip_serializing_if = "PlanOptions::is_empty")]
    pub options: PlanOptions,
    /// The applied run whose run trigger queued this one; in a run's own answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub triggered_by: Option<RunLink>,
    /// The runs this one's apply triggered; in a run's own answer, not in lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub triggered: Option<Vec<RunLink>>,
    pub created_at_ms: i64,
    pub plan: Option<PlanCounts>,
    pub error: Option<String>,
    /// The run in one line, as its commit status on GitHub describes it.
    pub summary: String,
    /// Every state the run entered, with times; in a run's own answer, not in lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<RunEvent>>,
}

/// Another run, by id and workspace.
#[derive(Serialize)]
pub struct RunLink {
    pub run: RunId,
    pub workspace: String,
}

/// A run as listed: without its events (one query for a whole page).
pub fn run_summary(web_url: &str, workspace: &Workspace, run: RunDetail) -> RunJson {
    let (commit_url, pr_url) = (run.commit_url(web_url), run.pr_url(web_url));
    let summary = run.summary();
    RunJson {
        id: run.id,
        workspace: workspace.spec.name.as_str().to_string(),
        state: run.state.to_string(),
        speculative: run.speculative,
        source: run.source,
        configuration: if run.uploaded { "upload" } else { "github" },
        commit_url,
        pr_url,
        pr_number: run.pr_number,
        repo: run.repo,
        commit_sha: run.commit_sha,
        retry_of: run.retry_of,
        author: run.author,
        message: run.message,
        options: run.options,
        // Named in a run's own answer (one more query).
        triggered_by: None,
        triggered: None,
        created_at_ms: run.created_at_ms,
        plan: run.plan,
        error: run.error,
        summary,
        events: None,
    }
}

/// A run with its events.
pub async fn run_json(state: &AppState, run: RunDetail) -> Result<RunJson, ApiError> {
    let workspace = state
        .store
        .workspace(run.workspace_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("run {} has no workspace", run.id))?;
    let events = state.store.run_timeline(run.id).await?;
    let link = |(run, workspace)| RunLink { run, workspace };
    let triggered = state.store.triggered_runs(run.id).await?;
    let triggered_by = match run.triggered_by {
        Some(id) => (state.store.run(id).await?).map(|source| link((id, source.workspace_name))),
        None => None,
    };
    let mut json = run_summary(state.config.github.web_url.as_str(), &workspace, run);
    json.events = Some(events);
    json.triggered_by = triggered_by;
    json.triggered = Some(triggered.into_iter().map(link).collect());
    Ok(json)
}

pub(super) async fn find(state: &AppState, id: RunId) -> Result<RunDetail, ApiError> {
    state
        .store
        .run(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("run {id} not found")))
}

/// `GET /api/v1/runs/{id}`
pub async fn show(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<RunId>,
) -> Result<Json<RunJson>, ApiError> {
    caller.require(Role::Read)?;
    let run = find(&state, id).await?;
    Ok(Json(run_json(&state, run).await?))
}

/// `GET /api/v1/runs/{id}/logs/{phase}`: the phase's log so far, as plain text.
pub async fn log(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((id, phase)): Path<(RunId, String)>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(Role::Read)?;
    if !matches!(phase.as_str(), "plan" | "apply") {
        return Err(ApiError::NotFound(format!(
            "a run has no {phase} phase (plan or apply)"
        )));
    }
    find(&state, id).await?;
    let text = state.store.phase_log_text(id, &phase).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text))
}

/// `POST /api/v1/runs/{id}/actions/{action}`: confirm, discard, cancel, force-cancel, retry.
pub async fn action(
    State(state): State<Arc<AppState>>,
    Writer(caller): Writer,
    Path((id, action)): Path<(RunId, String)>,
) -> Result<(StatusCode, Json<RunJson>), ApiError> {
    let status = match action.as_str() {
        "confirm" => {
            state.runs.confirm(id, &caller.name).await?;
            StatusCode::OK
        }
        "discard" => {
            state.runs.discard(id, &caller.name).await?;
            StatusCode::OK
        }
        "cancel" | "force-cancel" => match state
            .runs
            .cancel(id, action == "force-cancel", &caller.name)
            .await?
        {
            CancelOutcome::Done(_) => StatusCode::OK,
            CancelOutcome::Requested => StatusCode::ACCEPTED,
        },
        "retry" => {
            // A new run: answered with it, not with the one retried.
            let new_run = state.runs.retry(id, &caller.name).await?;
            tracing::info!(run_id = %id, %new_run, by = caller.name, "run retried");
            let run = find(&state, new_run).await?;
            return Ok((StatusCode::CREATED, Json(run_json(&state, run).await?)));
        }
        other => {
            return Err(ApiError::NotFound(format!(
                "no run action {other} (confirm, discard, cancel, force-cancel, retry)"
            )));
        }
    };
    tracing::info!(run_id = %id, action, by = caller.name, "run action");
    let run = find(&state, id).await?;
    Ok((status, Json(run_json(&state, run).await?)))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideBody {
    pub reason: String,
}

/// `POST /api/v1/runs/{id}/actions/override` (admin) with `{"reason": "…"}`: a run waiting
/// for an override of its failed policy check goes on.
pub async fn override_policy(
    State(state): State<Arc<AppState>>,
    Admin(caller): Admin,
    Path(id): Path<RunId>,
    Json(body): Json<OverrideBody>,
) -> Result<Json<RunJson>, ApiError> {
    let reason = body.reason.trim();
    if reason.is_empty() {
        return Err(ApiError::BadRequest("reason: an override says why".into()));
    }
    state.runs.override_policy(id, &caller.name, reason).await?;
    tracing::info!(run_id = %id, by = caller.name, reason, "policy check overridden");
    let run = find(&state, id).await?;
    Ok(Json(run_json(&state, run).await?))
}

#[derive(Serialize)]
pub struct PolicyCheckJson {
    pub policy_set: String,
    pub policy: String,
    /// advisory or mandatory
    pub enforcement: &'static str,
    /// passed, advisory failed, mandatory failed or errored
    pub result: &'static str,
    /// The violations, or why it errored.
    pub messages: Vec<String>,
}

/// `GET /api/v1/runs/{id}/policy-checks`: what each policy said about the run's plan.
pub async fn policy_checks(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<RunId>,
) -> Result<Json<Vec<PolicyCheckJson>>, ApiError> {
    caller.require(Role::Read)?;
    find(&state, id).await?;
    let checks = state.store.policy_checks(id).await?;
    Ok(Json(
        checks
            .into_iter()
            .map(|check| PolicyCheckJson {
                result: check.result.label(check.enforcement),
                enforcement: check.enforcement.as_str(),
                messages: match check.result {
                    crate::core::policy::PolicyResult::Passed => Vec::new(),
                    crate::core::policy::PolicyResult::Failed(messages) => messages,
                    crate::core::policy::PolicyResult::Errored(why) => vec![why],
                },
                policy_set: check.policy_set,
                policy: check.policy,
            })
            .collect(),
    ))
}

/// `GET /api/v1/runs/{id}/logs/{phase}/stream[?after=N]`: server-sent events, one per chunk
/// (`{"text": …}`, id = the chunk's offset), then `end` with the run's state.
pub async fn log_stream(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((id, phase)): Path<(RunId, String)>,
    axum::extract::Query(query): axum::extract::Query<crate::web::ui::stream::AfterQuery>,
    headers: axum::http::HeaderMap,
) -> Result<axum::response::Response, ApiError> {
    caller.require(Role::Read)?;
    let phase: &'static str = match phase.as_str() {
        "plan" => "plan",
        "apply" => "apply",
        other => {
            return Err(ApiError::NotFound(format!(
                "a run has no {other} phase (plan or apply)"
            )));
        }
    };
    find(&state, id).await?;
    let after = crate::web::ui::stream::start_after(query.after, &headers);
    Ok(crate::web::ui::stream::log_events(state.store.clone(), id, phase, after).into_response())
}
