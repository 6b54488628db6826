//! Remote plans and applies for the CLI: a configuration version it uploads, a run of it
//! (speculative for `terraform plan`, through the workspace's queue and lock for `terraform
//! apply`), the run's plan and apply with their logs, and what the CLI does to the run
//! (apply after "yes", discard after "no", cancel on Ctrl-C).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::documents::{self, apply_status, is_over, plan_status};
use super::ids::{self, Kind};
use super::page_of;
use super::signed::Signed;
use super::{
    TfeCaller, TfeError, check_organization, document, parse_request, signer, workspace_by_id,
};
use crate::core::access::Role;
use crate::core::plan_options::PlanOptions;
use crate::core::workspace::ExecutionMode;
use crate::core::{CommitSha, RunId};
use crate::store::{NewRuns, RunDetail, RunSource};
use crate::web::AppState;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ConfigurationAttributes {
    #[serde(default)]
    auto_queue_runs: bool,
    #[serde(default)]
    speculative: bool,
}

/// `POST /api/v2/workspaces/{id}/configuration-versions` (write): where the CLI uploads the
/// configuration next.
pub async fn create_configuration(
    State(state): State<Arc<AppState>>,
    caller: TfeCaller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, TfeError> {
    caller.require(Role::Write)?;
    let workspace = workspace_by_id(&state, &id).await?;
    let attributes = if body.is_empty() {
        ConfigurationAttributes::default()
    } else {
        parse_request::<ConfigurationAttributes>(&body)?
            .data
            .attributes
    };
    if attributes.auto_queue_runs {
        return Err(TfeError::unprocessable(
            "Gantry does not queue a run on upload (auto-queue-runs); create the run after it",
        ));
    }
    let cv_id = state
        .store
        .create_awaited_configuration(
            workspace.id,
            workspace.spec.repo_name(),
            attributes.speculative,
        )
        .await?;
    let cv = configuration_upload(&state, cv_id).await?;
    Ok(document(
        StatusCode::CREATED,
        json!({ "data": documents::configuration_version(&cv, &signer(&state)?, caller.0.role) }),
    ))
}

async fn configuration_upload(
    state: &AppState,
    id: i64,
) -> Result<crate::store::ConfigurationUpload, TfeError> {
    state.store.configuration_upload(id).await?.ok_or_else(|| {
        TfeError::not_found(format!(
            "configuration version {} not found",
            ids::external(Kind::ConfigurationVersion, id)
        ))
    })
}

/// `GET /api/v2/configuration-versions/{id}`: `uploaded` once its tarball arrived.
pub async fn configuration(
    State(state): State<Arc<AppState>>,
    caller: TfeCaller,
    Path(id): Path<String>,
) -> Result<Response, TfeError> {
    let cv = configuration_upload(&state, ids::parse(Kind::ConfigurationVersion, &id)?).await?;
    Ok(document(
        StatusCode::OK,
        json!({ "data": documents::configuration_version(&cv, &signer(&state)?, caller.0.role) }),
    ))
}

/// `PUT` a signed configuration upload URL: the configuration as a `.tar.gz`, checked by
/// unpacking it as a run would.
pub async fn upload_configuration(
    State(state): State<Arc<AppState>>,
    Path((id, expires, signature)): Path<(i64, i64, String)>,
    body: Bytes,
) -> Result<Response, TfeError> {
    signer(&state)?.check(Signed::ConfigurationUpload, id, expires, &signature)?;
    if body.is_empty() {
        return Err(TfeError::bad_request(
            "the body must be the configuration as a .tar.gz",
        ));
    }
    crate::web::api::check_archive(body.clone()).await?;
    let sha256 = hex::encode(Sha256::digest(&body));
    if !state
        .store
        .attach_configuration_archive(id, &sha256, &body)
        .await?
    {
        // The same upload again (a retry whose answer was lost) is fine; another is not.
        let cv = configuration_upload(&state, id).await?;
        if cv.sha256.as_deref() != Some(sha256.as_str()) {
            return Err(TfeError::conflict(
                "this configuration version has its upload already",
            ));
        }
    }
    tracing::info!(
        configuration_version = id,
        size = body.len(),
        "configuration uploaded by the Terraform CLI"
    );
    Ok(StatusCode::OK.into_response())
}

/// What the CLI may ask of a run. Unknown attributes are ignored; the ones Gantry cannot do
/// yet are refused by name rather than silently dropped.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RunAttributes {
    #[serde(default)]
    is_destroy: bool,
    #[serde(default)]
    refresh_only: bool,
    #[serde(default = "yes")]
    refresh: bool,
    #[serde(default)]
    target_addrs: Vec<String>,
    #[serde(default)]
    replace_addrs: Vec<String>,
    #[serde(default)]
    save_plan: bool,
    #[serde(default)]
    variables: Vec<serde_json::Value>,
    auto_apply: Option<bool>,
    plan_only: Option<bool>,
    message: Option<String>,
}

impl Default for RunAttributes {
    fn default() -> Self {
        Self {
            is_destroy: false,
            refresh_only: false,
            refresh: true,
            target_addrs: Vec::new(),
            replace_addrs: Vec::new(),
            save_plan: false,
            variables: Vec::new(),
            auto_apply: None,
            plan_only: None,
            message: None,
        }
    }
}

fn yes() -> bool {
    true
}

impl RunAttributes {
    /// The plan's options the CLI asked for.
    fn options(&self) -> PlanOptions {
        PlanOptions {
            destroy: self.is_destroy,
            refresh_only: self.refresh_only,
            targets: self.target_addrs.clone(),
            replaces: self.replace_addrs.clone(),
        }
    }

    /// The first option Gantry does not run, as the CLI's error.
    fn unsupported(&self) -> Option<&'static str> {
        if !self.refresh {
            Some("Gantry always refreshes (-refresh=false is not supported)")
        } else if self.save_plan {
            Some("Gantry does not save plans for later (-out)")
        } else if !self.variables.is_empty() {
            Some(
                "Gantry runs with the workspace's variables only: set them on the workspace, \
                 not with -var, -var-file or TF_VAR_",
            )
        } else {
            None
        }
    }
}

/// `POST /api/v2/runs` (write): a run of an uploaded configuration version in a workspace.
/// A speculative one (`terraform plan`) plans at once, outside the queue; another (`terraform
/// apply`) joins the workspace's queue and waits for the CLI's "yes", unless it auto-applies.
pub async fn create(
    State(state): State<Arc<AppState>>,
    caller: TfeCaller,
    body: Bytes,
) -> Result<Response, TfeError> {
    caller.require(Role::Write)?;
    let request = parse_request::<RunAttributes>(&body)?;
    let workspace_id = request
        .data
        .related_id("workspace")
        .ok_or_else(|| TfeError::unprocessable("a run needs its workspace relationship"))?
        .to_string();
    let workspace = workspace_by_id(&state, &workspace_id).await?;
    let name = workspace.spec.name.as_str();
    if let Some(why) = request.data.attributes.unsupported() {
        return Err(TfeError::unprocessable(why));
    }
    let options = request.data.attributes.options();
    if let Some(why) = options.problem() {
        return Err(TfeError::unprocessable(why));
    }
    if workspace.spec.execution_mode == ExecutionMode::Local {
        return Err(TfeError::conflict(format!(
            "workspace {name} uses local execution: Terraform runs on your machine and Gantry \
             keeps its state"
        )));
    }
    let cv_id = request
        .data
        .related_id("configuration-version")
        .ok_or_else(|| {
            TfeError::unprocessable("a run needs its configuration-version relationship")
        })?;
    let cv = configuration_upload(&state, ids::parse(Kind::ConfigurationVersion, cv_id)?).await?;
    let made_for = cv
        .workspace_id
        .map_or(cv.repo == workspace.spec.repo_name(), |made_for| {
            made_for == workspace.id
        });
    if !made_for {
        return Err(TfeError::not_found(format!(
            "configuration version {cv_id} not found for workspace {name}"
        )));
    }
    if cv.sha256.is_none() {
        return Err(TfeError::unprocessable(format!(
            "configuration version {cv_id} has not been uploaded yet"
        )));
    }
    let speculative = cv.speculative || request.data.attributes.plan_only == Some(true);
    if !speculative && workspace.spec.repo.is_some() {
        // Terraform Cloud's rule and words: what a VCS-driven workspace applies is what was
        // merged, never a local checkout.
        return Err(TfeError::unprocessable(
            "Apply not allowed for workspaces with a VCS connection: a workspace that is \
             connected to a VCS requires the VCS-driven workflow to ensure that the VCS remains \
             the single source of truth",
        ));
    }
    let new = NewRuns {
        repo: cv.repo.clone(),
        commit_sha: CommitSha(cv.name.clone()),
        workspace_ids: vec![workspace.id],
        source: RunSource::Cli,
        delivery_id: String::new(),
        installation_id: None,
        speculative,
        pr_number: None,
        retry_of: Vec::new(),
        auto_apply: !speculative && request.data.attributes.auto_apply == Some(true),
        author: caller.0.name.clone(),
        triggered_by: None,
        options,
        message: request.data.attributes.message.clone().unwrap_or_default(),
    };
    let id = state.runs.create_run(&new).await?;
    tracing::info!(
        workspace = name,
        run_id = %id,
        speculative,
        by = caller.0.name,
        "run created by the Terraform CLI"
    );
    let run = find(&state, id).await?;
    Ok(document(
        StatusCode::CREATED,
        json!({ "data": documents::run(&run, caller.0.role) }),
    ))
}

async fn find(state: &AppState, id: RunId) -> Result<RunDetail, TfeError> {
    state.store.run(id).await?.ok_or_else(|| {
        TfeError::not_found(format!("run {} not found", ids::external(Kind::Run, id.0)))
    })
}

async fn find_external(state: &AppState, kind: Kind, id: &str) -> Result<RunDetail, TfeError> {
    find(state, RunId(ids::parse(kind, id)?)).await
}

/// `GET /app/{org}/{workspace}/runs/{id}`: the link the CLI prints for a run ("To view this
/// run in a browser") leads to its page in Gantry's UI.
pub async fn run_page(
    Path((_org, _workspace, id)): Path<(String, String, String)>,
) -> Result<axum::response::Redirect, TfeError> {
    let run = ids::parse(Kind::Run, &id)?;
    Ok(axum::response::Redirect::to(&format!("/runs/{run}")))
}

/// `GET /api/v2/runs/{id}[?include=workspace,plan,apply]`.
pub async fn show(
    State(state): State<Arc<AppState>>,
    caller: TfeCaller,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, TfeError> {
    let run = find_external(&state, Kind::Run, &id).await?;
    let mut included = Vec::new();
    let include = query.get("include").map(String::as_str).unwrap_or("");
    for what in include.split(',').filter(|w| !w.is_empty()) {
        match what {
            "workspace" => {
                if let Some(workspace) = state.store.workspace(run.workspace_id).await? {
                    let current = state.store.current_run(workspace.id).await?;
                    included.push(documents::workspace(
                        &state.config.organization,
                        &workspace,
                        caller.0.role,
                        current.map(|r| r.0),
                    ));
                }
            }
            "plan" => included.push(documents::plan(&run, &signer(&state)?)),
            "apply" => included.push(documents::apply(&run, &signer(&state)?)),
            // Task stages, policy checks and the rest: Gantry has none to include.
            _ => {}
        }
    }
    Ok(document(
        StatusCode::OK,
        json!({ "data": documents::run(&run, caller.0.role), "included": included }),
    ))
}

/// `GET /api/v2/runs/{id}/{run-events,task-stages,policy-checks,comments}`: Gantry has none
/// of these yet, and the CLI needs an empty list rather than a 404.
pub async fn none_related(
    State(state): State<Arc<AppState>>,
    _caller: TfeCaller,
    Path((id, related)): Path<(String, String)>,
) -> Result<Response, TfeError> {
    find_external(&state, Kind::Run, &id).await?;
    match related.as_str() {
        "run-events" | "task-stages" | "policy-checks" | "comments" => Ok(document(
            StatusCode::OK,
            json!({ "data": [], "meta": documents::pagination(1, 20, 0) }),
        )),
        other => Err(TfeError::not_found(format!("runs have no {other}"))),
    }
}

/// `POST /api/v2/runs/{id}/actions/{apply,discard,cancel,force-cancel}` (write).
pub async fn action(
    State(state): State<Arc<AppState>>,
    caller: TfeCaller,
    Path((id, action)): Path<(String, String)>,
) -> Result<Response, TfeError> {
    caller.require(Role::Write)?;
    let run = RunId(ids::parse(Kind::Run, &id)?);
    let by = caller.0.name.as_str();
    match action.as_str() {
        "apply" => drop(state.runs.confirm(run, by).await?),
        "discard" => drop(state.runs.discard(run, by).await?),
        "cancel" => drop(state.runs.cancel(run, false, by).await?),
        "force-cancel" => drop(state.runs.cancel(run, true, by).await?),
        other => {
            return Err(TfeError::not_found(format!(
                "runs have no action {other} (apply, discard, cancel, force-cancel)"
            )));
        }
    }
    tracing::info!(run_id = %run, action, by, "run action from the Terraform CLI");
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `GET /api/v2/workspaces/{id}/runs`: the workspace's runs (speculative plans aside), newest
/// first.
pub async fn workspace_runs(
    State(state): State<Arc<AppState>>,
    caller: TfeCaller,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, TfeError> {
    let workspace = workspace_by_id(&state, &id).await?;
    let (page, size) = page_of(&query)?;
    let runs = state
        .store
        .workspace_runs_newest_first(workspace.id, (page - 1) * size, size)
        .await?;
    let data: Vec<serde_json::Value> = runs
        .runs
        .iter()
        .map(|run| documents::run(run, caller.0.role))
        .collect();
    Ok(document(
        StatusCode::OK,
        json!({ "data": data, "meta": documents::pagination(page, size, runs.total) }),
    ))
}

/// `GET /api/v2/organizations/{org}/runs/queue`: Terraform Cloud's queue of runs waiting for
/// capacity. Gantry's queues are per workspace (`/workspaces/{id}/runs` shows them); its
/// capacity is the runner's process limit, which no run waits for in a list. Empty.
pub async fn organization_queue(
    State(state): State<Arc<AppState>>,
    _caller: TfeCaller,
    Path(org): Path<String>,
) -> Result<Response, TfeError> {
    check_organization(&state, &org)?;
    Ok(document(
        StatusCode::OK,
        json!({ "data": [], "meta": documents::pagination(1, 20, 0) }),
    ))
}

/// `GET /api/v2/plans/{id}`.
pub async fn plan(
    State(state): State<Arc<AppState>>,
    _caller: TfeCaller,
    Path(id): Path<String>,
) -> Result<Response, TfeError> {
    let run = find_external(&state, Kind::Plan, &id).await?;
    Ok(document(
        StatusCode::OK,
        json!({ "data": documents::plan(&run, &signer(&state)?) }),
    ))
}

/// `GET /api/v2/applies/{id}`.
pub async fn apply(
    State(state): State<Arc<AppState>>,
    _caller: TfeCaller,
    Path(id): Path<String>,
) -> Result<Response, TfeError> {
    let run = find_external(&state, Kind::Apply, &id).await?;
    Ok(document(
        StatusCode::OK,
        json!({ "data": documents::apply(&run, &signer(&state)?) }),
    ))
}

/// The CLI skips an apply log's first three lines (Terraform Cloud's version header).
const APPLY_LOG_HEADER: &str = "Terraform apply on Gantry\n\nApplying the saved plan...\n";

#[derive(Debug, Deserialize)]
pub struct LogWindow {
    #[serde(default)]
    offset: usize,
    limit: Option<usize>,
}

/// `GET` a signed log URL `?offset=…&limit=…`: a window of the phase's log as Terraform
/// Cloud's archivist serves it — STX first, ETX once the phase is over — so that the CLI
/// prints it as it grows and stops at its end.
pub async fn log(
    State(state): State<Arc<AppState>>,
    Path((log, id, expires, signature)): Path<(String, i64, i64, String)>,
    Query(window): Query<LogWindow>,
) -> Result<Response, TfeError> {
    let (what, phase) = match log.as_str() {
        "plan-log" => (Signed::PlanLog, "plan"),
        "apply-log" => (Signed::ApplyLog, "apply"),
        _ => return Err(TfeError::not_found("no such log")),
    };
    signer(&state)?.check(what, id, expires, &signature)?;
    // The status before the text: a phase over by then has all its text stored.
    let run = find(&state, RunId(id)).await?;
    let over = is_over(match what {
        Signed::PlanLog => plan_status(&run),
        _ => apply_status(&run),
    });
    let text = state.store.phase_log_text(run.id, phase).await?;
    let mut stream = Vec::with_capacity(text.len() + 64);
    stream.push(0x02);
    if what == Signed::ApplyLog {
        stream.extend_from_slice(APPLY_LOG_HEADER.as_bytes());
    }
    stream.extend_from_slice(text.as_bytes());
    if over {
        stream.push(0x03);
    }
    let start = window.offset.min(stream.len());
    let end = start
        .saturating_add(window.limit.unwrap_or(64 * 1024).min(1024 * 1024))
        .min(stream.len());
    let mut response = stream[start..end].to_vec().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(response)
}
