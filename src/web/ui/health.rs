//! Workspaces' health (drift detection): the badge each one shows (drifted resources out of
//! all), an assessment's page (what drifted and how, failed checks, its Terraform output) and
//! the "Assess now" button.

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use super::errors::{internal, not_found};
use super::session::{CsrfForm, Viewer};
use crate::core::access::Role;
use crate::core::assessments::{DriftedResource, FailedCheck};
use crate::store::Assessment;
use crate::web::AppState;
use crate::web::github_app::{error_page, render};

/// A workspace's health badge.
pub struct HealthBadge {
    pub text: String,
    pub class: &'static str,
    /// The assessment's page.
    pub link: String,
}

/// The badge of a workspace whose latest ended assessment is `latest`.
pub fn badge(workspace: &str, latest: &Assessment) -> HealthBadge {
    let f = &latest.findings;
    let (text, class) = match latest.status.as_str() {
        "errored" => ("Assessment errored".to_string(), "state-bad"),
        _ if f.is_drifted() => (
            format!(
                "Drifted: {} of {} resources",
                f.drifted.len(),
                f.resources_total
            ),
            "state-bad",
        ),
        _ if !f.failed_checks.is_empty() => (
            format!("{} check(s) failing", f.failed_checks.len()),
            "state-wait",
        ),
        _ => (
            format!("Healthy: {} resources", f.resources_total),
            "state-ok",
        ),
    };
    HealthBadge {
        text,
        class,
        link: format!("/workspaces/{workspace}/assessments/{}", latest.id),
    }
}

/// An assessment in a workspace's list.
pub struct AssessmentItem {
    pub id: i64,
    pub status: String,
    pub summary: String,
    pub at: String,
}

pub fn item(a: &Assessment) -> AssessmentItem {
    let summary = match a.status.as_str() {
        "finished" if a.findings.is_drifted() => format!(
            "{} of {} resources drifted",
            a.findings.drifted.len(),
            a.findings.resources_total
        ),
        "finished" => "no drift".to_string(),
        _ => a.error.clone(),
    };
    AssessmentItem {
        id: a.id,
        status: a.status.clone(),
        summary,
        at: when(a.created_at_ms),
    }
}

fn when(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

#[derive(Template)]
#[template(path = "assessment.html")]
struct AssessmentPage {
    viewer: String,
    role: Role,
    csrf: String,
    workspace: String,
    id: i64,
    status: String,
    badge: Option<HealthBadge>,
    at: String,
    run_id: i64,
    error: String,
    drifted: Vec<DriftedResource>,
    failed_checks: Vec<FailedCheck>,
    log: String,
    /// Terraform's action word for a resource gone outside Terraform.
    delete: String,
}

/// `GET /workspaces/{name}/assessments/{id}`
pub async fn assessment(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Path((name, id)): Path<(String, i64)>,
) -> Response {
    let workspace = match state.store.workspace_named(&name).await {
        Ok(Some(workspace)) => workspace,
        Ok(None) => return not_found(&format!("workspace {name}")),
        Err(error) => return internal(error),
    };
    let found = match state.store.assessment(id).await {
        Ok(Some(a)) if a.workspace_id == workspace.id => a,
        Ok(_) => return not_found(&format!("assessment {id} of {name}")),
        Err(error) => return internal(error),
    };
    let ended = found.outcome().is_some();
    render(&AssessmentPage {
        viewer: viewer.name,
        role: viewer.role,
        csrf: viewer.csrf,
        workspace: name.clone(),
        id,
        status: found.status.clone(),
        badge: ended.then(|| badge(&name, &found)),
        at: when(found.created_at_ms),
        run_id: found.run_id.0,
        error: found.error.clone(),
        drifted: found.findings.drifted.clone(),
        failed_checks: found.findings.failed_checks.clone(),
        log: strip_ansi_escapes::strip_str(&found.log),
        delete: "delete".into(),
    })
}

/// `POST /workspaces/{name}/assessments`: "Assess now".
pub async fn assess_now(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Path(name): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(refused) = viewer.authorize(&form.csrf, Role::Write) {
        return *refused;
    }
    match state.runs.request_assessment(&name, &viewer.name).await {
        Ok(()) => Redirect::to(&format!("/workspaces/{name}#health")).into_response(),
        Err(error) => error_page(StatusCode::CONFLICT, "Not assessed", &error.to_string()),
    }
}
