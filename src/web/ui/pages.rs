//! The web UI's pages: workspaces, a workspace (current run, queue, history, lock), and a run
//! (the page commit statuses link to: timeline, plan, resource changes, logs that follow live,
//! and the actions the viewer's role allows). Forms post back here with the session's CSRF
//! token and act through the same `RunControl` as the API.

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::errors::{internal, not_found};
use super::session::{CsrfForm, Viewer};
use crate::core::access::Role;
use crate::core::checks::{action_class, action_label, changes_from_json};
use crate::core::run::RunState;
use crate::core::{RunId, WorkspaceId};
use crate::engine::runner::ActionError;
use crate::store::{RunDetail, Workspace};
use crate::web::AppState;
use crate::web::github_app::{error_page, render};

/// The CSS class of a state's badge.
fn state_class(state: RunState) -> &'static str {
    use RunState::*;
    match state {
        Applied | PlannedAndFinished => "state-ok",
        Pending | Planned | PolicyOverride => "state-wait",
        Fetching | Planning | PolicyChecking | PolicyChecked | Confirmed | Applying => "state-run",
        Errored => "state-bad",
        Discarded | Canceled | ForceCanceled => "state-off",
    }
}

/// A run in a list.
struct RunItem {
    id: RunId,
    state: String,
    class: &'static str,
    /// Its commit's short SHA, or where its uploaded configuration came from.
    short_sha: String,
    summary: String,
}

fn run_item(run: &RunDetail) -> RunItem {
    RunItem {
        id: run.id,
        state: run.state.to_string(),
        class: state_class(run.state),
        short_sha: short_origin(run),
        summary: run.summary(),
    }
}

/// Where a run came from, in a few words.
fn origin(run: &RunDetail) -> String {
    let pr = run.pr_number.map(|n| format!(" on pull request #{n}"));
    match run.source.as_str() {
        "push" => "a push".to_string(),
        "pull_request" => format!("pull request #{}", run.pr_number.map_or(0, |n| n.0)),
        "command" => format!("a comment command{}", pr.unwrap_or_default()),
        "retry" => match run.retry_of {
            Some(of) => format!("a retry of run {of}"),
            None => "a retry".to_string(),
        },
        "cli" => "the Terraform CLI".to_string(),
        "merge_group" => "GitHub's merge queue".to_string(),
        "run_trigger" => "a run trigger".to_string(),
        "manual" => "a run started by hand".to_string(),
        "api" => "an upload through the API".to_string(),
        other => other.to_string(),
    }
}

/// A list's short name for what a run ran: the commit, or `CLI`/`upload`.
fn short_origin(run: &RunDetail) -> String {
    match (run.uploaded, run.source.as_str()) {
        (true, "cli") => "CLI".to_string(),
        (true, _) => "upload".to_string(),
        (false, _) => run.commit_sha.chars().take(7).collect(),
    }
}

fn lock_text(workspace: &Workspace) -> Option<String> {
    workspace.lock.as_ref().map(|lock| {
        let at = chrono::DateTime::from_timestamp_millis(lock.at_ms)
            .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_default();
        format!("by {} since {at}: {}", lock.by, lock.reason)
    })
}

/// How many of a workspace's runs its pages look at: its whole queue in practice, and the
/// latest history.
const RUNS_SHOWN: i64 = 200;

/// A workspace's runs in one query: queued ones in queue order, then the others newest first.
async fn runs_of(state: &AppState, workspace_id: WorkspaceId) -> anyhow::Result<Vec<RunDetail>> {
    Ok(state
        .store
        .workspace_run_page(workspace_id, 0, RUNS_SHOWN)
        .await?
        .runs)
}

struct WorkspaceRow {
    name: String,
    repo: String,
    branch: String,
    current: Option<RunItem>,
    queued: usize,
    lock: Option<String>,
    /// Its latest health assessment's badge.
    health: Option<super::health::HealthBadge>,
}

#[derive(Template)]
#[template(path = "workspaces.html")]
struct WorkspacesPage {
    viewer: String,
    role: Role,
    csrf: String,
    rows: Vec<WorkspaceRow>,
}

/// `GET /`
pub async fn workspaces(State(state): State<Arc<AppState>>, viewer: Viewer) -> Response {
    let result: anyhow::Result<Vec<WorkspaceRow>> = async {
        let mut rows = Vec::new();
        let latest = state.store.latest_assessments().await?;
        for workspace in state.store.workspaces().await? {
            if workspace.archived {
                continue;
            }
            let runs = runs_of(&state, workspace.id).await?;
            let current = runs
                .iter()
                .find(|r| r.state.holds_workspace())
                .or_else(|| runs.iter().find(|r| r.state != RunState::Pending))
                // Only pending runs: the newest of them (the list is in queue order).
                .or_else(|| runs.last());
            rows.push(WorkspaceRow {
                name: workspace.spec.name.as_str().to_string(),
                repo: workspace.spec.repo_name().to_string(),
                branch: workspace
                    .spec
                    .branch
                    .clone()
                    .unwrap_or_else(|| "default branch".into()),
                current: current.map(run_item),
                queued: runs.iter().filter(|r| r.state == RunState::Pending).count(),
                lock: lock_text(&workspace),
                health: latest
                    .iter()
                    .find(|a| a.workspace_id == workspace.id)
                    .map(|a| super::health::badge(workspace.spec.name.as_str(), a)),
            });
        }
        Ok(rows)
    }
    .await;
    match result {
        Ok(rows) => render(&WorkspacesPage {
            viewer: viewer.name,
            role: viewer.role,
            csrf: viewer.csrf,
            rows,
        }),
        Err(error) => internal(error),
    }
}

#[derive(Template)]
#[template(path = "workspace.html")]
struct WorkspacePage {
    viewer: String,
    role: Role,
    csrf: String,
    name: String,
    repo: String,
    branch: String,
    working_directory: String,
    auto_apply: bool,
    /// `remote` or `local` (the Terraform CLI runs Terraform; Gantry keeps the state).
    execution_mode: &'static str,
    tags: String,
    lock: Option<String>,
    can_lock: bool,
    /// A writer may start a run of the branch's head (a workspace with a repository).
    can_start: bool,
    current: Option<RunItem>,
    queue: Vec<RunItem>,
    history: Vec<RunItem>,
    /// Newest first.
    states: Vec<StateItem>,
    /// Whether the viewer may download state files (they hold sensitive values).
    can_download: bool,
    /// Who locked and unlocked it, newest first: (action, by, detail, when).
    activity: Vec<(String, String, String, String)>,
    /// Its notification configurations: (name, destination, status, why it failed).
    notifications: Vec<(String, &'static str, String, String)>,
    /// Health assessments: on or off, how often, the latest one's badge, the recent ones, the
    /// open drift issue on GitHub, and whether the viewer may ask for one now.
    assessments_on: bool,
    assessment_interval: String,
    health: Option<super::health::HealthBadge>,
    assessments: Vec<super::health::AssessmentItem>,
    drift_issue: Option<String>,
    can_assess: bool,
}

/// A state version in the workspace's list.
struct StateItem {
    id: i64,
    serial: i64,
    /// The run that wrote it, or who sent it.
    run: Option<RunId>,
    by: String,
    at: String,
    size: String,
}

/// `GET /workspaces/{name}`
pub async fn workspace(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Path(name): Path<String>,
) -> Response {
    let workspace = match state.store.workspace_named(&name).await {
        Ok(Some(workspace)) => workspace,
        Ok(None) => return not_found(&format!("workspace {name}")),
        Err(error) => return internal(error),
    };
    let runs = match runs_of(&state, workspace.id).await {
        Ok(runs) => runs,
        Err(error) => return internal(error),
    };
    let current = runs.iter().find(|r| r.state.holds_workspace());
    let queue = runs
        .iter()
        .filter(|r| r.state == RunState::Pending)
        .map(run_item)
        .collect();
    let history = runs
        .iter()
        .filter(|r| r.state.is_final())
        .take(50)
        .map(run_item)
        .collect();
    let states = match state.store.state_versions(workspace.id).await {
        Ok(versions) => versions
            .iter()
            .rev()
            .take(50)
            .map(|sv| StateItem {
                id: sv.id,
                serial: sv.meta.serial,
                run: sv.run_id,
                by: sv.created_by.clone().unwrap_or_default(),
                at: chrono::DateTime::from_timestamp_millis(sv.created_at_ms)
                    .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                    .unwrap_or_default(),
                size: format!("{:.1} KiB", sv.state.len() as f64 / 1024.0),
            })
            .collect(),
        Err(error) => return internal(error),
    };
    let activity = match state.store.workspace_events(workspace.id, 20).await {
        Ok(events) => events
            .into_iter()
            .map(|e| {
                let at = chrono::DateTime::from_timestamp_millis(e.at_ms)
                    .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                    .unwrap_or_default();
                (e.action, e.by, e.detail, at)
            })
            .collect(),
        Err(error) => return internal(error),
    };
    let notifications = match state.store.notification_configurations(workspace.id).await {
        Ok(configurations) => configurations
            .into_iter()
            .map(|c| {
                let status = if c.spec.enabled {
                    c.status
                } else {
                    "disabled".to_string()
                };
                // Why it failed may quote the receiver: for admins only.
                let admin = viewer.role.allows(Role::Admin);
                let why = if admin {
                    c.status_detail
                } else {
                    String::new()
                };
                (c.spec.name, c.spec.destination.as_str(), status, why)
            })
            .collect(),
        Err(error) => return internal(error),
    };
    let recent = match state.store.assessments(workspace.id, 10).await {
        Ok(recent) => recent,
        Err(error) => return internal(error),
    };
    let latest = match state
        .store
        .ended_assessment_before(workspace.id, i64::MAX)
        .await
    {
        Ok(latest) => latest,
        Err(error) => return internal(error),
    };
    let drift_issue = match state.store.drift_issue(workspace.id).await {
        Ok(number) => number.and_then(|n| {
            let repo = workspace.spec.repo.as_ref()?;
            Some(format!("https://github.com/{}/issues/{n}", repo.as_str()))
        }),
        Err(error) => return internal(error),
    };
    let name = workspace.spec.name.as_str();
    render(&WorkspacePage {
        assessments_on: workspace.spec.assessments,
        assessment_interval: crate::core::assessments::format_interval(
            workspace.spec.assessment_interval,
        ),
        health: latest.as_ref().map(|a| super::health::badge(name, a)),
        assessments: recent.iter().map(super::health::item).collect(),
        drift_issue,
        can_assess: viewer.role.allows(Role::Write)
            && workspace.spec.assessments
            && !workspace.archived,
        activity,
        notifications,
        can_lock: viewer.role.allows(Role::Admin),
        can_start: viewer.role.allows(Role::Write)
            && workspace.spec.repo.is_some()
            && !workspace.archived,
        can_download: viewer.role.allows(Role::Write),
        execution_mode: workspace.spec.execution_mode.as_str(),
        tags: workspace.spec.tags.join(", "),
        states,
        viewer: viewer.name,
        role: viewer.role,
        csrf: viewer.csrf,
        name: workspace.spec.name.as_str().to_string(),
        repo: workspace.spec.repo_name().to_string(),
        branch: workspace
            .spec
            .branch
            .clone()
            .unwrap_or_else(|| "default branch".into()),
        working_directory: workspace.spec.working_directory.clone(),
        auto_apply: workspace.spec.auto_apply,
        lock: lock_text(&workspace),
        current: current.map(run_item),
        queue,
        history,
    })
}

struct Bar {
    state: String,
    width: String,
    duration: String,
}

struct Change {
    address: String,
    label: &'static str,
    class: &'static str,
}

struct LogView {
    phase: &'static str,
    title: &'static str,
    text: String,
    last_id: i64,
    live: bool,
}

#[derive(Template)]
#[template(path = "run.html")]
struct RunPage {
    viewer: String,
    role: Role,
    csrf: String,
    id: RunId,
    workspace: String,
    state: String,
    state_class: &'static str,
    speculative: bool,
    repo: String,
    /// Where the run came from: a push, a pull request, the Terraform CLI, the API…
    origin: String,
    short_sha: String,
    /// None for an uploaded configuration: its "commit" is the tarball's SHA-256.
    commit_url: Option<String>,
    pr_url: Option<String>,
    error: Option<String>,
    /// add, change, destroy, has changes
    plan: Option<(i64, i64, i64, bool)>,
    changes: Vec<Change>,
    bars: Vec<Bar>,
    /// state, time, detail
    /// (state, time, detail, the person who moved the run there).
    events: Vec<(String, String, Option<String>, Option<String>)>,
    logs: Vec<LogView>,
    can_write: bool,
    can_confirm: bool,
    can_discard: bool,
    can_cancel: bool,
    /// Executing: Terraform may be stopped at once, without waiting for it to save.
    can_force_cancel: bool,
    /// Errored, canceled or discarded: a new run of the same configuration may be made.
    can_retry: bool,
    /// An admin may override the failed policy check the run waits on.
    can_override: bool,
    /// What each policy said: (set/policy, result, class, messages).
    policies: Vec<(String, &'static str, &'static str, Vec<String>)>,
    /// `runner.isolation = "none"`: this server's runs are not sandboxed.
    unsandboxed: bool,
    /// The run whose apply triggered this one: (id, workspace).
    triggered_by: Option<(RunId, String)>,
    /// The runs this one's apply triggered: (id, workspace).
    triggered: Vec<(RunId, String)>,
}

fn human(ms: i64) -> String {
    let secs = ms as f64 / 1000.0;
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        format!("{}m {:02}s", (secs / 60.0) as i64, (secs % 60.0) as i64)
    }
}

/// `GET /workspaces/{name}/state-versions/{id}/download` (write: a state holds sensitive
/// values in plain text).
pub async fn download_state(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Path((name, id)): Path<(String, i64)>,
) -> Response {
    if !viewer.role.allows(Role::Write) {
        return error_page(
            StatusCode::FORBIDDEN,
            "Not allowed",
            "Downloading a state file needs the write role: it holds sensitive values.",
        );
    }
    let workspace = match state.store.workspace_named(&name).await {
        Ok(Some(workspace)) => workspace,
        Ok(None) => return not_found(&format!("workspace {name}")),
        Err(error) => return internal(error),
    };
    match state.store.state_version(workspace.id, id).await {
        Ok(Some(version)) => {
            tracing::info!(
                workspace = name,
                state_version = id,
                by = viewer.name,
                "state downloaded"
            );
            let file = format!(
                "attachment; filename=\"{name}-{}.tfstate\"",
                version.meta.serial
            );
            (
                [
                    (
                        axum::http::header::CONTENT_TYPE,
                        "application/json".to_string(),
                    ),
                    (axum::http::header::CONTENT_DISPOSITION, file),
                ],
                version.state,
            )
                .into_response()
        }
        Ok(None) => not_found(&format!("state version {id} of {name}")),
        Err(error) => internal(error),
    }
}

/// `GET /runs/{id}`
pub async fn run(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Path(id): Path<RunId>,
) -> Response {
    let run = match state.store.run(id).await {
        Ok(Some(run)) => run,
        Ok(None) => return not_found(&format!("run {id}")),
        Err(error) => return internal(error),
    };
    match run_page(&state, viewer, run).await {
        Ok(page) => render(&page),
        Err(error) => internal(error),
    }
}

async fn run_page(state: &AppState, viewer: Viewer, run: RunDetail) -> anyhow::Result<RunPage> {
    let workspace = state
        .store
        .workspace(run.workspace_id)
        .await?
        .map(|w| w.spec.name.as_str().to_string())
        .unwrap_or_default();
    let events = state.store.run_timeline(run.id).await?;
    let now = crate::store::now_ms();
    let mut bars = Vec::new();
    let start = events.first().map_or(now, |e| e.at_ms);
    let end = if run.state.is_final() {
        events.last().map_or(now, |e| e.at_ms)
    } else {
        now
    };
    let total = (end - start).max(1) as f64;
    for (i, event) in events.iter().enumerate() {
        let until = events.get(i + 1).map_or(end, |next| next.at_ms);
        if until <= event.at_ms && i + 1 < events.len() {
            continue;
        }
        if RunState::parse(&event.state).is_some_and(RunState::is_final) {
            continue;
        }
        bars.push(Bar {
            state: event.state.clone(),
            width: format!("{:.2}", (until - event.at_ms) as f64 / total * 100.0),
            duration: human(until - event.at_ms),
        });
    }
    let mut logs = Vec::new();
    for (phase, title) in [("plan", "Plan log"), ("apply", "Apply log")] {
        let chunks = state.store.run_log(run.id, phase, 0).await?;
        let live = run.state.log_may_grow(phase);
        if chunks.is_empty() && !(live && (phase == "plan" || run.state != RunState::Planned)) {
            continue;
        }
        logs.push(LogView {
            phase,
            title,
            last_id: chunks.last().map_or(0, |c| c.id),
            text: chunks.into_iter().map(|c| c.chunk).collect(),
            live,
        });
    }
    let changes = run
        .plan
        .as_ref()
        .map(|p| changes_from_json(&p.resource_changes))
        .unwrap_or_default()
        .iter()
        .map(|c| Change {
            address: c.address.to_string(),
            label: action_label(&c.actions),
            class: action_class(&c.actions),
        })
        .collect();
    let triggered = state.store.triggered_runs(run.id).await?;
    let triggered_by = match run.triggered_by {
        Some(id) => (state.store.run(id).await?).map(|source| (id, source.workspace_name)),
        None => None,
    };
    let web = state.config.github.web_url.as_str().trim_end_matches('/');
    let can_write = viewer.role.allows(Role::Write);
    let viewer_is_admin = viewer.role.allows(Role::Admin);
    Ok(RunPage {
        viewer: viewer.name,
        role: viewer.role,
        csrf: viewer.csrf,
        id: run.id,
        workspace,
        state: run.state.to_string(),
        state_class: state_class(run.state),
        speculative: run.speculative,
        origin: origin(&run),
        short_sha: run.commit_sha.chars().take(7).collect(),
        commit_url: run.commit_url(web),
        pr_url: run.pr_url(web),
        repo: run.repo.clone(),
        error: run.error.clone(),
        plan: run
            .plan
            .as_ref()
            .map(|p| (p.add, p.change, p.destroy, p.has_changes)),
        changes,
        bars,
        events: events
            .iter()
            .map(|e| {
                let at = chrono::DateTime::from_timestamp_millis(e.at_ms)
                    .map(|t| t.format("%H:%M:%S%.3f").to_string())
                    .unwrap_or_default();
                let person = (e.cause.as_deref())
                    .and_then(|cause| cause.strip_prefix("person:"))
                    .map(str::to_string);
                (e.state.clone(), at, e.detail.clone(), person)
            })
            .collect(),
        logs,
        can_write,
        can_confirm: can_write && run.state == RunState::Planned,
        can_discard: can_write
            && matches!(
                run.state,
                RunState::Pending | RunState::Planned | RunState::PolicyOverride
            ),
        can_override: viewer_is_admin && run.state == RunState::PolicyOverride,
        policies: state
            .store
            .policy_checks(run.id)
            .await?
            .into_iter()
            .map(|check| {
                let label = check.result.label(check.enforcement);
                let class = match label {
                    "passed" => "state-ok",
                    "advisory failed" => "state-wait",
                    _ => "state-bad",
                };
                let messages = match check.result {
                    crate::core::policy::PolicyResult::Passed => Vec::new(),
                    crate::core::policy::PolicyResult::Failed(messages) => messages,
                    crate::core::policy::PolicyResult::Errored(why) => vec![why],
                };
                (
                    format!("{}/{}", check.policy_set, check.policy),
                    label,
                    class,
                    messages,
                )
            })
            .collect(),
        can_cancel: can_write && (run.state == RunState::Pending || run.state.is_executing()),
        can_force_cancel: can_write && run.state.is_executing(),
        can_retry: can_write && run.state.can_be_retried(),
        unsandboxed: state.config.runner.isolation == crate::config::IsolationSetting::None,
        triggered_by,
        triggered,
    })
}

/// `POST /runs/{id}/{action}`: confirm, discard, cancel.
pub async fn run_action(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Path((id, action)): Path<(RunId, String)>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(refused) = viewer.authorize(&form.csrf, Role::Write) {
        return *refused;
    }
    let done = match action.as_str() {
        "confirm" => state.runs.confirm(id, &viewer.name).await.map(|_| ()),
        "discard" => state.runs.discard(id, &viewer.name).await.map(|_| ()),
        "cancel" => state.runs.cancel(id, false, &viewer.name).await.map(|_| ()),
        "force-cancel" => state.runs.cancel(id, true, &viewer.name).await.map(|_| ()),
        "retry" => match state.runs.retry(id, &viewer.name).await {
            Ok(new_run) => {
                tracing::info!(run_id = %id, %new_run, by = viewer.name, "run retried from the UI");
                return Redirect::to(&format!("/runs/{new_run}")).into_response();
            }
            Err(error) => Err(error),
        },
        _ => return not_found("such action"),
    };
    match done {
        Ok(()) => {
            tracing::info!(
                run_id = %id,
                action,
                by = viewer.name,
                "run action from the UI"
            );
            Redirect::to(&format!("/runs/{id}")).into_response()
        }
        Err(error) => error_page(StatusCode::CONFLICT, "Not done", &error.to_string()),
    }
}

/// The "Start new run" form: checkboxes are present ("on") when ticked; addresses are
/// separated by spaces, commas or lines.
#[derive(Deserialize)]
pub struct StartForm {
    csrf: String,
    plan_only: Option<String>,
    destroy: Option<String>,
    refresh_only: Option<String>,
    #[serde(default)]
    targets: String,
    #[serde(default)]
    replaces: String,
    #[serde(default)]
    message: String,
}

/// `POST /workspaces/{name}/runs` (write): a run of the head of the workspace's branch, with
/// the options chosen.
pub async fn start_run(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Path(name): Path<String>,
    Form(form): Form<StartForm>,
) -> Response {
    if let Err(refused) = viewer.authorize(&form.csrf, Role::Write) {
        return *refused;
    }
    let workspace = match state.store.workspace_named(&name).await {
        Ok(Some(workspace)) => workspace,
        Ok(None) => return not_found(&format!("workspace {name}")),
        Err(error) => return internal(error),
    };
    let addresses = |text: &str| -> Vec<String> {
        text.split(|c: char| c == ',' || c.is_whitespace())
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .collect()
    };
    let body = crate::web::api::start::NewRunBody {
        configuration_version: None,
        speculative: form.plan_only.is_some(),
        is_destroy: form.destroy.is_some(),
        refresh_only: form.refresh_only.is_some(),
        target_addrs: addresses(&form.targets),
        replace_addrs: addresses(&form.replaces),
        message: form.message,
    };
    match crate::web::api::start::start_run(&state, &workspace, &viewer.name, &body).await {
        Ok(id) => Redirect::to(&format!("/runs/{id}")).into_response(),
        Err(error) => error_page(error.status(), "Not started", &error.to_string()),
    }
}

#[derive(Deserialize)]
pub struct OverrideForm {
    csrf: String,
    reason: Option<String>,
}

/// `POST /runs/{id}/override` (admin): the failed policy check the run waits on is
/// overridden, with the reason given.
pub async fn override_policy(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Path(id): Path<RunId>,
    Form(form): Form<OverrideForm>,
) -> Response {
    if let Err(refused) = viewer.authorize(&form.csrf, Role::Admin) {
        return *refused;
    }
    let reason = form.reason.unwrap_or_default();
    if reason.trim().is_empty() {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Not overridden",
            "An override says why.",
        );
    }
    match state
        .runs
        .override_policy(id, &viewer.name, reason.trim())
        .await
    {
        Ok(_) => {
            tracing::info!(run_id = %id, by = viewer.name, "policy check overridden from the UI");
            Redirect::to(&format!("/runs/{id}")).into_response()
        }
        Err(error) => {
            let status = match error {
                ActionError::Forbidden(_) => StatusCode::FORBIDDEN,
                _ => StatusCode::CONFLICT,
            };
            error_page(status, "Not overridden", &error.to_string())
        }
    }
}

#[derive(Deserialize)]
pub struct LockForm {
    csrf: String,
    reason: Option<String>,
}

/// `POST /workspaces/{name}/{lock|unlock}`
pub async fn workspace_action(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Path((name, action)): Path<(String, String)>,
    Form(form): Form<LockForm>,
) -> Response {
    if let Err(refused) = viewer.authorize(&form.csrf, Role::Admin) {
        return *refused;
    }
    let done = match action.as_str() {
        "lock" => {
            let reason = form.reason.unwrap_or_default();
            if reason.trim().is_empty() {
                return error_page(
                    StatusCode::BAD_REQUEST,
                    "Not locked",
                    "A lock needs a reason.",
                );
            }
            state.runs.lock(&name, &viewer.name, reason.trim()).await
        }
        "unlock" => state.runs.unlock(&name, &viewer.name).await,
        _ => return not_found("such action"),
    };
    match done {
        Ok(()) => Redirect::to(&format!("/workspaces/{name}")).into_response(),
        Err(error) => error_page(StatusCode::CONFLICT, "Not done", &error.to_string()),
    }
}
