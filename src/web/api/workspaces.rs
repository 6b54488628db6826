//! `/api/v1/workspaces/…`: a workspace's runs and state versions, and its lock.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};

use super::auth::Caller;
use super::error::ApiError;
use super::runs::{RunJson, run_json};
use crate::core::access::Role;
use crate::store::Workspace;
use crate::web::AppState;

#[derive(Serialize)]
pub struct WorkspaceJson {
    pub name: String,
    pub repo: String,
    pub branch: Option<String>,
    pub working_directory: String,
    pub auto_apply: bool,
    pub terraform_version: Option<String>,
    pub locked_by: Option<String>,
    pub lock_reason: Option<String>,
}

/// `GET /api/v1/workspaces`: the active workspaces, by name.
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<Vec<WorkspaceJson>>, ApiError> {
    caller.require(Role::Read)?;
    let workspaces = state.store.workspaces().await?;
    Ok(Json(
        workspaces
            .into_iter()
            .filter(|w| !w.archived)
            .map(|w| WorkspaceJson {
                name: w.spec.name.as_str().to_string(),
                repo: w.spec.repo.as_str().to_string(),
                branch: w.spec.branch.clone(),
                working_directory: w.spec.working_directory.clone(),
                auto_apply: w.spec.auto_apply,
                terraform_version: w.spec.terraform_version.clone(),
                locked_by: w.lock.as_ref().map(|l| l.by.clone()),
                lock_reason: w.lock.as_ref().map(|l| l.reason.clone()),
            })
            .collect(),
    ))
}

async fn find(state: &AppState, name: &str) -> Result<Workspace, ApiError> {
    state
        .store
        .workspace_named(name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("workspace {name} not found")))
}

/// `GET /api/v1/workspaces/{name}/runs`: its runs (speculative plans excluded), oldest first.
pub async fn runs(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Vec<RunJson>>, ApiError> {
    caller.require(Role::Read)?;
    let workspace = find(&state, &name).await?;
    let mut runs = Vec::new();
    for record in state.store.workspace_runs(workspace.id).await? {
        if let Some(run) = state.store.run(record.id).await? {
            runs.push(run_json(&state, run).await?);
        }
    }
    Ok(Json(runs))
}

#[derive(Serialize)]
pub struct StateVersionJson {
    pub id: i64,
    pub serial: i64,
    pub lineage: String,
    pub checksum: String,
    pub run_id: Option<i64>,
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
    caller: Caller,
    Path(name): Path<String>,
    Json(request): Json<LockRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Role::Admin)?;
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

/// `POST /api/v1/workspaces/{name}/actions/unlock`.
pub async fn unlock(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Role::Admin)?;
    state.runs.unlock(&name).await?;
    tracing::info!(workspace = name, by = caller.name, "workspace unlocked");
    Ok(Json(serde_json::json!({ "locked": false })))
}
