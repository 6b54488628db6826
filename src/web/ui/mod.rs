//! The web UI: server-rendered pages (askama) with a little JavaScript for live logs, behind a
//! sign-in with an API token.

mod errors;
pub mod health;
pub mod pages;
pub mod session;
pub mod stream;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::AppState;
use crate::core::RunId;
use session::Viewer;

/// `GET /runs/{id}/logs/{phase}/stream`
async fn log_stream(
    State(state): State<Arc<AppState>>,
    _viewer: Viewer,
    Path((id, phase)): Path<(RunId, String)>,
    Query(query): Query<stream::AfterQuery>,
    headers: HeaderMap,
) -> Response {
    let phase: &'static str = match phase.as_str() {
        "plan" => "plan",
        "apply" => "apply",
        _ => return axum::http::StatusCode::NOT_FOUND.into_response(),
    };
    let after = stream::start_after(query.after, &headers);
    stream::log_events(state.store.clone(), id, phase, after).into_response()
}

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(pages::workspaces))
        .route(
            "/sign-in",
            get(session::sign_in_page).post(session::sign_in),
        )
        .route("/sign-out", post(session::sign_out))
        .route("/workspaces/{name}", get(pages::workspace))
        .route("/workspaces/{name}/runs", post(pages::start_run))
        .route("/workspaces/{name}/assessments", post(health::assess_now))
        .route(
            "/workspaces/{name}/assessments/{id}",
            get(health::assessment),
        )
        .route("/workspaces/{name}/{action}", post(pages::workspace_action))
        .route(
            "/workspaces/{name}/state-versions/{id}/download",
            get(pages::download_state),
        )
        .route("/runs/{id}", get(pages::run))
        .route("/runs/{id}/override", post(pages::override_policy))
        .route("/runs/{id}/{action}", post(pages::run_action))
        .route("/runs/{id}/logs/{phase}/stream", get(log_stream))
}
