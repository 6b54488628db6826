//! `/api/v1/workspaces` for admins: create, read, update and delete workspaces, and their
//! variables. Workspaces declared in the configuration file belong to the file: the API shows
//! them but refuses to change them (the next reload would undo it).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::auth::{Admin, Caller};
use super::error::ApiError;
use crate::core::access::Role;
use crate::core::run_triggers;
use crate::core::state::managed_resources;
use crate::core::workspace::{
    ExecutionMode, RepoName, VariableCategory, VariableValue, WorkspaceName, WorkspaceSpec,
    check_branch_name, check_terraform_version, check_variable_name, normalize_working_directory,
    parse_tags,
};
use crate::store::{Workspace, WorkspaceWriteError};
use crate::web::AppState;

#[derive(Serialize)]
pub struct LockJson {
    pub by: String,
    pub reason: String,
    pub at_ms: i64,
}

#[derive(Serialize)]
pub struct WorkspaceJson {
    pub name: String,
    pub repo: String,
    pub branch: Option<String>,
    pub working_directory: String,
    pub trigger_patterns: Vec<String>,
    pub auto_apply: bool,
    pub terraform_version: Option<String>,
    pub speculative_enabled: bool,
    pub plan_fork_pull_requests: bool,
    /// Whether its Terraform may use the network.
    pub network: bool,
    /// `remote` or `local` (the Terraform CLI runs Terraform; Gantry keeps the state).
    pub execution_mode: &'static str,
    pub tags: Vec<String>,
    /// The source workspaces whose applies queue a run here.
    pub run_triggers: Vec<String>,
    /// Whether runs a trigger queues may apply by themselves.
    pub auto_apply_run_trigger: bool,
    /// Health assessments (drift detection) on or off, and how often (`24h`).
    pub assessments: bool,
    pub assessment_interval: String,
    /// `config` (the configuration file) or `api`.
    pub source: &'static str,
    pub locked_by: Option<String>,
    pub lock_reason: Option<String>,
    pub lock: Option<LockJson>,
}

impl From<&Workspace> for WorkspaceJson {
    fn from(w: &Workspace) -> Self {
        Self {
            name: w.spec.name.as_str().to_string(),
            repo: w.spec.repo_name().to_string(),
            branch: w.spec.branch.clone(),
            working_directory: w.spec.working_directory.clone(),
            trigger_patterns: w.spec.trigger_patterns.clone(),
            auto_apply: w.spec.auto_apply,
            terraform_version: w.spec.terraform_version.clone(),
            speculative_enabled: w.spec.speculative_enabled,
            plan_fork_pull_requests: w.spec.plan_forks,
            network: w.spec.network,
            execution_mode: w.spec.execution_mode.as_str(),
            tags: w.spec.tags.clone(),
            run_triggers: (w.spec.run_triggers.iter())
                .map(|n| n.as_str().to_string())
                .collect(),
            auto_apply_run_trigger: w.spec.auto_apply_run_trigger,
            assessments: w.spec.assessments,
            assessment_interval: crate::core::assessments::format_interval(
                w.spec.assessment_interval,
            ),
            source: if w.from_config { "config" } else { "api" },
            locked_by: w.lock.as_ref().map(|l| l.by.clone()),
            lock_reason: w.lock.as_ref().map(|l| l.reason.clone()),
            lock: w.lock.as_ref().map(|l| LockJson {
                by: l.by.clone(),
                reason: l.reason.clone(),
                at_ms: l.at_ms,
            }),
        }
    }
}

/// A workspace's settings as sent: every field optional, so that one body serves both create
/// (name and repo required) and update (only what changes).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceBody {
    pub name: Option<String>,
    pub repo: Option<String>,
    /// `null` or absent on create: the repository's default branch.
    #[serde(default, deserialize_with = "present")]
    pub branch: Option<Option<String>>,
    pub working_directory: Option<String>,
    pub trigger_patterns: Option<Vec<String>>,
    pub auto_apply: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    pub terraform_version: Option<Option<String>>,
    pub speculative_enabled: Option<bool>,
    pub plan_fork_pull_requests: Option<bool>,
    pub network: Option<bool>,
    /// `remote` (the default) or `local`: the Terraform CLI plans and applies on the
    /// person's machine and Gantry keeps the state.
    pub execution_mode: Option<String>,
    pub tags: Option<Vec<String>>,
    /// Names of source workspaces (at most 20; not itself; no cycle).
    pub run_triggers: Option<Vec<String>>,
    pub auto_apply_run_trigger: Option<bool>,
    pub assessments: Option<bool>,
    /// A duration such as `24h`, at least `1h`.
    pub assessment_interval: Option<String>,
}

/// Tells "absent" (None) from "null" (Some(None)).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

fn invalid(field: &str, why: impl std::fmt::Display) -> ApiError {
    ApiError::BadRequest(format!("{field}: {why}"))
}

impl WorkspaceBody {
    /// `base` with this body's fields applied, checked as the configuration file checks them.
    fn apply_to(self, mut spec: WorkspaceSpec) -> Result<WorkspaceSpec, ApiError> {
        if let Some(name) = self.name {
            spec.name = WorkspaceName::parse(&name).map_err(|e| invalid("name", e))?;
        }
        if let Some(repo) = self.repo {
            spec.repo = Some(RepoName::parse(&repo).map_err(|e| invalid("repo", e))?);
        }
        if let Some(branch) = self.branch {
            if let Some(branch) = &branch {
                check_branch_name(branch).map_err(|e| invalid("branch", e))?;
            }
            spec.branch = branch;
        }
        if let Some(dir) = self.working_directory {
            spec.working_directory =
                normalize_working_directory(&dir).map_err(|e| invalid("working_directory", e))?;
        }
        if let Some(patterns) = self.trigger_patterns {
            spec.trigger_patterns = patterns;
        }
        if let Some(auto_apply) = self.auto_apply {
            spec.auto_apply = auto_apply;
        }
        if let Some(version) = self.terraform_version {
            if let Some(version) = &version {
                check_terraform_version(version).map_err(|e| invalid("terraform_version", e))?;
            }
            spec.terraform_version = version;
        }
        if let Some(enabled) = self.speculative_enabled {
            spec.speculative_enabled = enabled;
        }
        if let Some(forks) = self.plan_fork_pull_requests {
            spec.plan_forks = forks;
        }
        if let Some(network) = self.network {
            spec.network = network;
        }
        if let Some(mode) = self.execution_mode {
            spec.execution_mode =
                ExecutionMode::parse(&mode).map_err(|e| invalid("execution_mode", e))?;
        }
        if let Some(tags) = self.tags {
            spec.tags = parse_tags(tags).map_err(|e| invalid("tags", e))?;
        }
        if let Some(sources) = self.run_triggers {
            spec.run_triggers = (sources.iter())
                .map(|n| WorkspaceName::parse(n).map_err(|e| invalid("run_triggers", e)))
                .collect::<Result<_, _>>()?;
        }
        if let Some(auto_apply) = self.auto_apply_run_trigger {
            spec.auto_apply_run_trigger = auto_apply;
        }
        if let Some(on) = self.assessments {
            spec.assessments = on;
        }
        if let Some(interval) = self.assessment_interval {
            spec.assessment_interval = crate::core::assessments::parse_interval(&interval)
                .map_err(|e| invalid("assessment_interval", e))?;
        }
        spec.triggers()
            .map_err(|e| invalid("trigger_patterns", e))?;
        Ok(spec)
    }
}

/// `spec`'s run triggers name other live workspaces, without a cycle among all of them (`was`:
/// the workspace's name before this change, if it exists).
async fn check_run_triggers(
    state: &AppState,
    spec: &WorkspaceSpec,
    was: Option<&WorkspaceName>,
) -> Result<(), ApiError> {
    let mut all: std::collections::BTreeMap<String, Vec<String>> =
        std::collections::BTreeMap::new();
    for workspace in state.store.workspaces().await? {
        if workspace.archived || Some(&workspace.spec.name) == was {
            continue;
        }
        let sources = workspace.spec.run_triggers.iter();
        all.insert(
            workspace.spec.name.as_str().to_string(),
            sources.map(|n| n.as_str().to_string()).collect(),
        );
    }
    all.insert(spec.name.as_str().to_string(), Vec::new());
    match run_triggers::problem(spec.name.as_str(), &spec.run_triggers, &all) {
        Some(why) => Err(invalid("run_triggers", why)),
        None => Ok(()),
    }
}

pub(super) async fn find(state: &AppState, name: &str) -> Result<Workspace, ApiError> {
    state
        .store
        .workspace_named(name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("workspace {name} not found")))
}

/// The workspace, if the API may change it.
async fn find_changeable(state: &AppState, name: &str) -> Result<Workspace, ApiError> {
    let workspace = find(state, name).await?;
    if workspace.from_config && !workspace.archived {
        return Err(ApiError::Conflict(format!(
            "workspace {name} is declared in the configuration file; change it there"
        )));
    }
    Ok(workspace)
}

impl From<WorkspaceWriteError> for ApiError {
    fn from(error: WorkspaceWriteError) -> Self {
        match error {
            WorkspaceWriteError::NameTaken(_) => ApiError::Conflict(error.to_string()),
            WorkspaceWriteError::Store(error) => ApiError::Internal(error),
        }
    }
}

/// `GET /api/v1/workspaces/{name}`
pub async fn show(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<WorkspaceJson>, ApiError> {
    caller.require(Role::Read)?;
    Ok(Json(WorkspaceJson::from(&find(&state, &name).await?)))
}

/// `POST /api/v1/workspaces`: a new workspace; `name` and `repo` are required.
pub async fn create(
    State(state): State<Arc<AppState>>,
    Admin(caller): Admin,
    Json(body): Json<WorkspaceBody>,
) -> Result<(StatusCode, Json<WorkspaceJson>), ApiError> {
    let name = body
        .name
        .as_deref()
        .ok_or_else(|| invalid("name", "is required"))?;
    let repo = body
        .repo
        .as_deref()
        .ok_or_else(|| invalid("repo", "is required"))?;
    let base = WorkspaceSpec::new(
        WorkspaceName::parse(name).map_err(|e| invalid("name", e))?,
        RepoName::parse(repo).map_err(|e| invalid("repo", e))?,
    );
    let spec = body.apply_to(base)?;
    check_run_triggers(&state, &spec, None).await?;
    let id = state.store.create_workspace(&spec).await?;
    tracing::info!(
        workspace = spec.name.as_str(),
        by = caller.name,
        "workspace created"
    );
    let created = state
        .store
        .workspace(id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("workspace {id} vanished"))?;
    Ok((StatusCode::CREATED, Json(WorkspaceJson::from(&created))))
}

/// `PATCH /api/v1/workspaces/{name}`: changes the fields sent.
pub async fn update(
    State(state): State<Arc<AppState>>,
    Admin(caller): Admin,
    Path(name): Path<String>,
    Json(body): Json<WorkspaceBody>,
) -> Result<Json<WorkspaceJson>, ApiError> {
    let workspace = find_changeable(&state, &name).await?;
    let spec = body.apply_to(workspace.spec.clone())?;
    check_run_triggers(&state, &spec, Some(&workspace.spec.name)).await?;
    state.store.update_workspace(workspace.id, &spec).await?;
    state.runs.signal().workspace_changed(workspace.id);
    tracing::info!(workspace = name, by = caller.name, "workspace updated");
    let updated = state
        .store
        .workspace(workspace.id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("workspace {name} vanished"))?;
    Ok(Json(WorkspaceJson::from(&updated)))
}

#[derive(Deserialize)]
pub struct DeleteQuery {
    #[serde(default)]
    pub force: bool,
}

/// `DELETE /api/v1/workspaces/{name}[?force=true]`: the workspace with its runs and state.
/// Refused while a run is unfinished, and (unless forced) while its state still manages
/// resources: deleting it would orphan real infrastructure.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Admin(caller): Admin,
    Path(name): Path<String>,
    Query(query): Query<DeleteQuery>,
) -> Result<StatusCode, ApiError> {
    let workspace = find_changeable(&state, &name).await?;
    if !query.force
        && let Some(current) = state.store.current_state(workspace.id).await?
    {
        match managed_resources(&current.state) {
            Some(0) => {}
            Some(resources) => {
                return Err(ApiError::Conflict(format!(
                    "workspace {name} still manages {resources} resources; destroy them \
                     first, or delete with ?force=true"
                )));
            }
            None => {
                return Err(ApiError::Conflict(format!(
                    "workspace {name}'s current state cannot be read to see what it manages; \
                     delete with ?force=true if you are sure"
                )));
            }
        }
    }
    if !state.store.delete_workspace(workspace.id).await? {
        return Err(ApiError::Conflict(format!(
            "workspace {name} has unfinished runs; cancel or discard them first"
        )));
    }
    tracing::info!(workspace = name, by = caller.name, "workspace deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize)]
pub struct VariableJson {
    pub category: &'static str,
    pub key: String,
    /// `null` for a sensitive variable: written, never read back.
    pub value: Option<String>,
    pub sensitive: bool,
}

/// `GET /api/v1/workspaces/{name}/vars`
pub async fn variables(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Vec<VariableJson>>, ApiError> {
    caller.require(Role::Read)?;
    let workspace = find(&state, &name).await?;
    Ok(Json(
        workspace
            .spec
            .variables
            .iter()
            .map(|((category, key), value)| VariableJson {
                category: category.as_str(),
                key: key.clone(),
                value: (!value.sensitive).then(|| value.value.clone()),
                sensitive: value.sensitive,
            })
            .collect(),
    ))
}

fn category(name: &str) -> Result<VariableCategory, ApiError> {
    match name {
        "terraform" => Ok(VariableCategory::Terraform),
        "env" => Ok(VariableCategory::Env),
        other => Err(ApiError::NotFound(format!(
            "no variable category {other} (terraform or env)"
        ))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariableBody {
    pub value: String,
    #[serde(default)]
    pub sensitive: bool,
}

/// `PUT /api/v1/workspaces/{name}/vars/{category}/{key}` with `{"value": …, "sensitive": …}`:
/// 201 when new, 200 when replaced. Runs already made keep the values they were pinned to.
pub async fn set_variable(
    State(state): State<Arc<AppState>>,
    Admin(caller): Admin,
    Path((name, category_name, key)): Path<(String, String, String)>,
    Json(body): Json<VariableBody>,
) -> Result<(StatusCode, Json<VariableJson>), ApiError> {
    let category = category(&category_name)?;
    check_variable_name(category, &key).map_err(|e| invalid("key", e))?;
    let workspace = find_changeable(&state, &name).await?;
    let was_sensitive = workspace
        .spec
        .variables
        .get(&(category, key.clone()))
        .is_some_and(|v| v.sensitive);
    if was_sensitive && !body.sensitive {
        return Err(invalid(
            "sensitive",
            "a sensitive variable stays sensitive; delete it and write it again",
        ));
    }
    let value = VariableValue {
        value: body.value,
        sensitive: body.sensitive,
    };
    let created = state
        .store
        .set_variable(workspace.id, category, &key, &value)
        .await?;
    tracing::info!(workspace = name, key, by = caller.name, "variable written");
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(VariableJson {
            category: category.as_str(),
            key,
            value: (!value.sensitive).then_some(value.value),
            sensitive: value.sensitive,
        }),
    ))
}

/// `DELETE /api/v1/workspaces/{name}/vars/{category}/{key}`
pub async fn delete_variable(
    State(state): State<Arc<AppState>>,
    Admin(caller): Admin,
    Path((name, category_name, key)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let category = category(&category_name)?;
    let workspace = find_changeable(&state, &name).await?;
    if !state
        .store
        .delete_variable(workspace.id, category, &key)
        .await?
    {
        return Err(ApiError::NotFound(format!(
            "workspace {name} has no {category_name} variable {key}"
        )));
    }
    tracing::info!(workspace = name, key, by = caller.name, "variable deleted");
    Ok(StatusCode::NO_CONTENT)
}
