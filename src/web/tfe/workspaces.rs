//! Workspaces as the CLI sees them: found by name (and made by `terraform init` when
//! missing), listed by name or tags, locked around a local plan or a state write, and their
//! variables for a `remote` backend's local runs.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::{
    TfeCaller, TfeError, check_organization, document, documents, page_of, parse_request,
    workspace_by_id, workspace_named,
};
use crate::core::access::Role;
use crate::core::workspace::{
    ExecutionMode, WorkspaceName, WorkspaceSpec, check_terraform_version, parse_tags,
};
use crate::store::{Workspace, WorkspaceWriteError};
use crate::web::AppState;

/// A workspace's document for `caller`.
async fn answer(
    state: &AppState,
    caller: &TfeCaller,
    workspace: &Workspace,
    status: StatusCode,
) -> Result<Response, TfeError> {
    let current_run = state.store.current_run(workspace.id).await?;
    Ok(document(
        status,
        json!({ "data": documents::workspace(
            &state.config.organization,
            workspace,
            caller.0.role,
            current_run.map(|r| r.0),
        ) }),
    ))
}

pub async fn show_named(
    State(state): State<Arc<AppState>>,
    caller: TfeCaller,
    Path((org, name)): Path<(String, String)>,
) -> Result<Response, TfeError> {
    check_organization(&state, &org)?;
    let workspace = workspace_named(&state, &name).await?;
    answer(&state, &caller, &workspace, StatusCode::OK).await
}

pub async fn show(
    State(state): State<Arc<AppState>>,
    caller: TfeCaller,
    Path(id): Path<String>,
) -> Result<Response, TfeError> {
    let workspace = workspace_by_id(&state, &id).await?;
    answer(&state, &caller, &workspace, StatusCode::OK).await
}

/// `GET /api/v2/organizations/{org}/workspaces?search[name]=…&search[tags]=a,b&page[number]=n`:
/// workspaces whose name contains the search and that carry every tag, by name.
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: TfeCaller,
    Path(org): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, TfeError> {
    check_organization(&state, &org)?;
    let search = query.get("search[name]").map(String::as_str).unwrap_or("");
    let tags = parse_tags(
        query
            .get("search[tags]")
            .map(|t| {
                t.split(',')
                    .filter(|t| !t.is_empty())
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default(),
    )
    .map_err(TfeError::bad_request)?;
    let (page, size) = page_of(&query)?;
    let matching: Vec<Workspace> = state
        .store
        .workspaces()
        .await?
        .into_iter()
        .filter(|w| !w.archived && w.spec.name.as_str().contains(search))
        .filter(|w| tags.iter().all(|t| w.spec.tags.contains(t)))
        .collect();
    let total = matching.len() as i64;
    let mut data = Vec::new();
    for w in matching
        .iter()
        .skip(((page - 1) * size) as usize)
        .take(size as usize)
    {
        let current_run = state.store.current_run(w.id).await?;
        data.push(documents::workspace(
            &org,
            w,
            caller.0.role,
            current_run.map(|r| r.0),
        ));
    }
    Ok(document(
        StatusCode::OK,
        json!({ "data": data, "meta": documents::pagination(page, size, total) }),
    ))
}

/// The settings the CLI sends when it makes or changes a workspace.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct WorkspaceAttributes {
    name: Option<String>,
    terraform_version: Option<String>,
    execution_mode: Option<String>,
    auto_apply: Option<bool>,
    working_directory: Option<String>,
    /// Health assessments (Terraform Cloud's attribute).
    assessments_enabled: Option<bool>,
}

impl WorkspaceAttributes {
    fn apply_to(self, spec: &mut WorkspaceSpec) -> Result<(), TfeError> {
        let invalid = |field: &str, why: String| TfeError::unprocessable(format!("{field} {why}"));
        if let Some(version) = self.terraform_version {
            // "latest" is Terraform Cloud's word for not pinned.
            spec.terraform_version = match version.as_str() {
                "" | "latest" => None,
                v => {
                    check_terraform_version(v).map_err(|e| invalid("terraform-version", e))?;
                    Some(v.to_string())
                }
            };
        }
        if let Some(mode) = self.execution_mode {
            spec.execution_mode =
                ExecutionMode::parse(&mode).map_err(|e| invalid("execution-mode", e))?;
        }
        if let Some(auto_apply) = self.auto_apply {
            spec.auto_apply = auto_apply;
        }
        if let Some(on) = self.assessments_enabled {
            spec.assessments = on;
        }
        if let Some(dir) = self.working_directory {
            spec.working_directory = crate::core::workspace::normalize_working_directory(&dir)
                .map_err(|e| invalid("working-directory", e))?;
        }
        Ok(())
    }
}

/// The tag names of a `tags` relationship (`{"data": [{"type": "tags", "attributes":
/// {"name": …}}]}`).
fn tag_names(relationship: Option<&serde_json::Value>) -> Vec<String> {
    relationship
        .and_then(|r| r.get("data"))
        .and_then(|d| d.as_array())
        .map(|tags| {
            tags.iter()
                .filter_map(|t| t.pointer("/attributes/name").and_then(|n| n.as_str()))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// `POST /api/v2/organizations/{org}/workspaces` (admin): what `terraform init` does for a
/// workspace that does not exist yet. It is connected to no repository.
pub async fn create(
    State(state): State<Arc<AppState>>,
    caller: TfeCaller,
    Path(org): Path<String>,
    body: Bytes,
) -> Result<Response, TfeError> {
    check_organization(&state, &org)?;
    caller.require(Role::Admin)?;
    let request = parse_request::<WorkspaceAttributes>(&body)?;
    let tags = tag_names(request.data.relationships.get("tags"));
    let mut attributes = request.data.attributes;
    let name = attributes
        .name
        .take()
        .ok_or_else(|| TfeError::unprocessable("name is required"))?;
    let name =
        WorkspaceName::parse(&name).map_err(|e| TfeError::unprocessable(format!("name {e}")))?;
    let mut spec = WorkspaceSpec::without_repository(name);
    attributes.apply_to(&mut spec)?;
    spec.tags = parse_tags(tags).map_err(TfeError::unprocessable)?;
    let id = match state.store.create_workspace(&spec).await {
        Ok(id) => id,
        Err(WorkspaceWriteError::NameTaken(_)) => {
            return Err(TfeError::unprocessable("name has already been taken"));
        }
        Err(WorkspaceWriteError::Store(e)) => return Err(e.into()),
    };
    tracing::info!(
        workspace = spec.name.as_str(),
        by = caller.0.name,
        "workspace created by the Terraform CLI"
    );
    let created = state
        .store
        .workspace(id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("workspace {id} vanished after its creation"))?;
    answer(&state, &caller, &created, StatusCode::CREATED).await
}

pub async fn update_named(
    State(state): State<Arc<AppState>>,
    caller: TfeCaller,
    Path((org, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, TfeError> {
    check_organization(&state, &org)?;
    let workspace = workspace_named(&state, &name).await?;
    change(&state, &caller, workspace, &body).await
}

/// `PATCH /api/v2/workspaces/{id}` (admin): the CLI pins a new workspace to its own
/// Terraform version this way.
pub async fn update(
    State(state): State<Arc<AppState>>,
    caller: TfeCaller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, TfeError> {
    let workspace = workspace_by_id(&state, &id).await?;
    change(&state, &caller, workspace, &body).await
}

async fn change(
    state: &AppState,
    caller: &TfeCaller,
    workspace: Workspace,
    body: &[u8],
) -> Result<Response, TfeError> {
    caller.require(Role::Admin)?;
    refuse_configured(&workspace)?;
    let request = parse_request::<WorkspaceAttributes>(body)?;
    let mut spec = workspace.spec.clone();
    if let Some(name) = &request.data.attributes.name {
        spec.name =
            WorkspaceName::parse(name).map_err(|e| TfeError::unprocessable(format!("name {e}")))?;
    }
    request.data.attributes.apply_to(&mut spec)?;
    match state.store.update_workspace(workspace.id, &spec).await {
        Ok(()) => {}
        Err(WorkspaceWriteError::NameTaken(_)) => {
            return Err(TfeError::unprocessable("name has already been taken"));
        }
        Err(WorkspaceWriteError::Store(e)) => return Err(e.into()),
    }
    let changed = state
        .store
        .workspace(workspace.id)
        .await?
        .ok_or_else(|| TfeError::not_found("workspace not found"))?;
    answer(state, caller, &changed, StatusCode::OK).await
}

/// Workspaces of the configuration file change only there (a reload would undo the API).
fn refuse_configured(workspace: &Workspace) -> Result<(), TfeError> {
    if workspace.from_config {
        return Err(TfeError::conflict(format!(
            "workspace {} is declared in Gantry's configuration file; change it there",
            workspace.spec.name
        )));
    }
    Ok(())
}

/// `POST /api/v2/workspaces/{id}/relationships/tags` (admin): the CLI adds the tags of its
/// `cloud` block to a workspace that lacks them.
pub async fn add_tags(
    State(state): State<Arc<AppState>>,
    caller: TfeCaller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, TfeError> {
    caller.require(Role::Admin)?;
    let workspace = workspace_by_id(&state, &id).await?;
    refuse_configured(&workspace)?;
    let sent: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| TfeError::bad_request(format!("invalid JSON: {e}")))?;
    let mut spec = workspace.spec.clone();
    let added = tag_names(Some(&sent));
    spec.tags =
        parse_tags(spec.tags.iter().cloned().chain(added)).map_err(TfeError::unprocessable)?;
    match state.store.update_workspace(workspace.id, &spec).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(WorkspaceWriteError::NameTaken(_)) => {
            Err(TfeError::unprocessable("name has already been taken"))
        }
        Err(WorkspaceWriteError::Store(e)) => Err(e.into()),
    }
}

/// `POST /api/v2/workspaces/{id}/actions/{lock,unlock,force-unlock}`: the CLI locks the
/// workspace around a local plan, a state write or a migration (write), and unlocks what it
/// locked; forcing someone else's lock open is for admins, as locking by hand is. A lock stops
/// its queued runs from starting, as a lock by hand does. Answered with the workspace.
pub async fn action(
    State(state): State<Arc<AppState>>,
    caller: TfeCaller,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, TfeError> {
    caller.require(if action == "force-unlock" {
        Role::Admin
    } else {
        Role::Write
    })?;
    let workspace = workspace_by_id(&state, &id).await?;
    let name = workspace.spec.name.as_str();
    let by = caller.0.name.as_str();
    match (action.as_str(), &workspace.lock) {
        ("lock", Some(lock)) => {
            return Err(TfeError::conflict(format!(
                "workspace already locked by {}: {}",
                lock.by, lock.reason
            )));
        }
        ("lock", None) => {
            let reason = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|b| {
                    b.pointer("/data/attributes/reason")
                        .and_then(|r| r.as_str())
                        .map(str::to_string)
                })
                .unwrap_or_else(|| "Locked by Terraform".to_string());
            state.runs.lock(name, by, &reason).await?;
        }
        ("unlock" | "force-unlock", None) => {
            return Err(TfeError::conflict("workspace already unlocked"));
        }
        ("unlock", Some(lock)) => {
            if !state.runs.unlock_held_by(name, by).await? {
                return Err(TfeError::conflict(format!(
                    "Unable to unlock workspace. The workspace is locked by User {}: {} \
                     (an admin can force it open)",
                    lock.by, lock.reason
                )));
            }
        }
        ("force-unlock", Some(lock)) => {
            state.runs.unlock(name, by).await?;
            tracing::info!(workspace = name, by, held_by = lock.by, "lock forced open");
        }
        (other, _) => {
            return Err(TfeError::not_found(format!(
                "workspaces have no action {other} (lock, unlock, force-unlock)"
            )));
        }
    }
    tracing::info!(
        workspace = name,
        by,
        action,
        "workspace lock changed by the Terraform CLI"
    );
    let workspace = workspace_by_id(&state, &id).await?;
    answer(&state, &caller, &workspace, StatusCode::OK).await
}

/// `GET /api/v2/workspaces/{id}/vars`: the workspace's variables; a sensitive value is never
/// shown (the `remote` backend's local runs ask for it, and get null, as from Terraform Cloud).
pub async fn variables(
    State(state): State<Arc<AppState>>,
    _caller: TfeCaller,
    Path(id): Path<String>,
) -> Result<Response, TfeError> {
    let workspace = workspace_by_id(&state, &id).await?;
    let data: Vec<serde_json::Value> = workspace
        .spec
        .variables
        .iter()
        .map(|((category, key), value)| {
            json!({
                "id": format!("var-{}-{}-{key}", workspace.id, category.as_str()),
                "type": "vars",
                "attributes": {
                    "key": key,
                    "value": (!value.sensitive).then_some(value.value.as_str()),
                    "category": category.as_str(),
                    "hcl": false,
                    "sensitive": value.sensitive,
                },
            })
        })
        .collect();
    Ok(document(StatusCode::OK, json!({ "data": data })))
}
