//! `/api/v1/workspaces/…`: a workspace's runs and state versions, and its lock.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};

use super::auth::{Admin, Caller, Writer};
use super::error::ApiError;
use super::runs::{RunJson, run_summary};
use super::workspace_admin::{WorkspaceJson, find};
use crate::core::RunId;
use crate::core::access::Role;
use crate::web::AppState;

/// `GET /api/v1/workspaces`: the active workspaces, by name.
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<Vec<WorkspaceJson>>, ApiError> {
    caller.require(Role::Read)?;
    let workspaces = state.store.workspaces().await?;
    Ok(Json(
        workspaces
            .iter()
            .filter(|w| !w.archived)
            .map(WorkspaceJson::from)
            .collect(),
    ))
}

#[derive(Deserialize)]
pub struct PageQuery {
    pub page: Option<i64>,
    pub per_page: Option<i64>,
}

const DEFAULT_PER_PAGE: i64 = 20;
const MAX_PER_PAGE: i64 = 100;

/// `GET /api/v1/workspaces/{name}/runs[?page=N&per_page=M]`: its runs, speculative plans
/// excluded: the queued ones in queue order, then the others newest first. Pages are numbered
/// from 1; a `Link` header names the next and previous pages, `X-Total-Count` the runs in all.
pub async fn runs(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(Role::Read)?;
    let page = query.page.unwrap_or(1);
    let per_page = query.per_page.unwrap_or(DEFAULT_PER_PAGE);
    if page < 1 {
        return Err(ApiError::BadRequest("page: must be 1 or more".into()));
    }
    if !(1..=MAX_PER_PAGE).contains(&per_page) {
        return Err(ApiError::BadRequest(format!(
            "per_page: must be between 1 and {MAX_PER_PAGE}"
        )));
    }
    let offset = (page - 1)
        .checked_mul(per_page)
        .ok_or_else(|| ApiError::BadRequest("page: too large".into()))?;
    let workspace = find(&state, &name).await?;
    let found = state
        .store
        .workspace_run_page(workspace.id, offset, per_page)
        .await?;
    let mut links = Vec::new();
    // Absolute, from the public URL: right behind a proxy and under a path prefix.
    let route = state
        .config
        .public_url
        .join(&format!("api/v1/workspaces/{name}/runs"))
        .map_err(|e| anyhow::anyhow!("link header: {e}"))?;
    if offset + (found.runs.len() as i64) < found.total {
        let next = page + 1;
        links.push(format!(
            "<{route}?page={next}&per_page={per_page}>; rel=\"next\""
        ));
    }
    if page > 1 {
        let prev = page - 1;
        links.push(format!(
            "<{route}?page={prev}&per_page={per_page}>; rel=\"prev\""
        ));
    }
    let runs: Vec<RunJson> = found
        .runs
        .into_iter()
        .map(|run| run_summary(state.config.github.web_url.as_str(), &workspace, run))
        .collect();
    let mut response = Json(runs).into_response();
    let headers = response.headers_mut();
    headers.insert("x-total-count", found.total.into());
    if !links.is_empty() {
        let link = HeaderValue::from_str(&links.join(", "))
            .map_err(|e| anyhow::anyhow!("link header: {e}"))?;
        headers.insert(header::LINK, link);
    }
    Ok(response)
}

#[derive(Serialize)]
pub struct StateVersionJson {
    pub id: i64,
    pub serial: i64,
    pub lineage: String,
    pub checksum: String,
    pub run_id: Option<RunId>,
}

/// `GET /api/v1/workspaces/{name}/state-versions`: oldest first.
pub async fn state_versions(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Vec<StateVersionJson>>, ApiError> {
    caller.require(Role::Read)?;
    let workspace = find(&state, &name).await?;
    let versions = state.store.state_versions(workspace.id).await?;
    Ok(Json(
        versions
            .into_iter()
            .map(|v| StateVersionJson {
                id: v.id,
                serial: v.meta.serial,
                lineage: v.meta.lineage,
                checksum: v.meta.checksum,
                run_id: v.run_id,
            })
            .collect(),
    ))
}

#[derive(Deserialize)]
pub struct LockRequest {
    pub reason: String,
}

/// `POST /api/v1/workspaces/{name}/actions/lock` with `{"reason": "…"}`.
pub async fn lock(
    State(state): State<Arc<AppState>>,
    Admin(caller): Admin,
    Path(name): Path<String>,
    Json(request): Json<LockRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if request.reason.trim().is_empty() {
        return Err(ApiError::BadRequest("a lock needs a reason".into()));
    }
    state
        .runs
        .lock(&name, &caller.name, &request.reason)
        .await?;
    tracing::info!(workspace = name, by = caller.name, "workspace locked");
    Ok(Json(
        serde_json::json!({ "locked": true, "by": caller.name, "reason": request.reason }),
    ))
}

/// `GET /api/v1/workspaces/{name}/events`: who locked and unlocked the workspace, newest
/// first (the last 100). What people did to runs is on each run's events.
pub async fn events(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Vec<crate::store::WorkspaceEvent>>, ApiError> {
    caller.require(Role::Read)?;
    let workspace = find(&state, &name).await?;
    Ok(Json(state.store.workspace_events(workspace.id, 100).await?))
}

/// `POST /api/v1/workspaces/{name}/actions/unlock`.
pub async fn unlock(
    State(state): State<Arc<AppState>>,
    Admin(caller): Admin,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    state.runs.unlock(&name, &caller.name).await?;
    tracing::info!(workspace = name, by = caller.name, "workspace unlocked");
    Ok(Json(serde_json::json!({ "locked": false })))
}

/// `GET /api/v1/workspaces/{name}/state-versions/{id|current}/download`: the state file.
/// Needs the write role: a state holds every value Terraform knows in plain text, sensitive
/// variables and outputs included, and `read` must not read those back.
pub async fn download_state(
    State(state): State<Arc<AppState>>,
    Writer(caller): Writer,
    Path((name, version)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let workspace = find(&state, &name).await?;
    let found = if version == "current" {
        state.store.current_state(workspace.id).await?
    } else {
        let id: i64 = version.parse().map_err(|_| {
            ApiError::BadRequest(format!("{version}: a state version is a number or current"))
        })?;
        state.store.state_version(workspace.id, id).await?
    };
    let found = found.ok_or_else(|| {
        ApiError::NotFound(format!("workspace {name} has no state version {version}"))
    })?;
    tracing::info!(
        workspace = name,
        state_version = found.id,
        by = caller.name,
        "state downloaded"
    );
    let disposition = format!(
        "attachment; filename=\"{name}-{}.tfstate\"",
        found.meta.serial
    );
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        found.state,
    ))
}
