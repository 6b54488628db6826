//! `/api/v1/workspaces/{name}/assessments`: a workspace's health assessments (drift
//! detection), newest first, one with what drifted, its failed checks and its log, and an
//! assessment asked for now (write), which starts as soon as the workspace may be assessed.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};

use super::auth::Caller;
use super::error::ApiError;
use super::workspace_admin::find;
use crate::core::access::Role;
use crate::core::assessments::{DriftedResource, FailedCheck};
use crate::store::Assessment;
use crate::web::AppState;

/// How many assessments a list shows.
const LISTED: i64 = 50;

#[derive(Serialize)]
pub struct AssessmentJson {
    pub id: i64,
    /// `running`, `finished`, `errored` or `canceled`.
    pub status: String,
    /// The applied run whose configuration it planned.
    pub run_id: i64,
    pub drifted: bool,
    pub resources_drifted: usize,
    pub resources_total: usize,
    pub checks_passed: usize,
    pub checks_failed: usize,
    /// Why it errored or was canceled.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub error: String,
    pub created_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    /// In one assessment's answer: what drifted, the checks that failed, its Terraform output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drifted_resources: Option<Vec<DriftedResource>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_checks: Option<Vec<FailedCheck>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
}

impl From<&Assessment> for AssessmentJson {
    fn from(a: &Assessment) -> Self {
        Self {
            id: a.id,
            status: a.status.clone(),
            run_id: a.run_id.0,
            drifted: a.is_drifted(),
            resources_drifted: a.findings.drifted.len(),
            resources_total: a.findings.resources_total,
            checks_passed: a.findings.checks_passed,
            checks_failed: a.findings.failed_checks.len(),
            error: a.error.clone(),
            created_at_ms: a.created_at_ms,
            finished_at_ms: a.finished_at_ms,
            drifted_resources: None,
            failed_checks: None,
            log: None,
        }
    }
}

/// `GET /api/v1/workspaces/{name}/assessments` (read): newest first.
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Vec<AssessmentJson>>, ApiError> {
    caller.require(Role::Read)?;
    let workspace = find(&state, &name).await?;
    let assessments = state.store.assessments(workspace.id, LISTED).await?;
    Ok(Json(assessments.iter().map(AssessmentJson::from).collect()))
}

/// `GET /api/v1/workspaces/{name}/assessments/{id}` (read): with what drifted and its log.
pub async fn show(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((name, id)): Path<(String, i64)>,
) -> Result<Json<AssessmentJson>, ApiError> {
    caller.require(Role::Read)?;
    let workspace = find(&state, &name).await?;
    let assessment = (state.store.assessment(id).await?)
        .filter(|a| a.workspace_id == workspace.id)
        .ok_or_else(|| ApiError::NotFound(format!("assessment {id} not found")))?;
    let mut json = AssessmentJson::from(&assessment);
    json.drifted_resources = Some(assessment.findings.drifted.clone());
    json.failed_checks = Some(assessment.findings.failed_checks.clone());
    json.log = Some(assessment.log.clone());
    Ok(Json(json))
}

/// `POST /api/v1/workspaces/{name}/assessments` (write): 202 once asked for; 409 with why
/// when the workspace cannot be assessed now (assessments off, nothing applied, its latest
/// run errored, one running).
pub async fn request(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(Role::Write)?;
    state.runs.request_assessment(&name, &caller.name).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "status": "requested" }))))
}
