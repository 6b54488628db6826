//! The JSON API under `/api/v1`, authenticated by bearer tokens (see `auth`).

pub mod auth;
mod error;
mod runs;
mod workspaces;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

pub use error::ApiError;

use super::AppState;

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/runs/{id}", get(runs::show))
        .route("/api/v1/runs/{id}/logs/{phase}", get(runs::log))
        .route(
            "/api/v1/runs/{id}/logs/{phase}/stream",
            get(runs::log_stream),
        )
        .route("/api/v1/runs/{id}/actions/{action}", post(runs::action))
        .route("/api/v1/workspaces", get(workspaces::list))
        .route("/api/v1/workspaces/{name}/runs", get(workspaces::runs))
        .route(
            "/api/v1/workspaces/{name}/state-versions",
            get(workspaces::state_versions),
        )
        .route(
            "/api/v1/workspaces/{name}/actions/lock",
            post(workspaces::lock),
        )
        .route(
            "/api/v1/workspaces/{name}/actions/unlock",
            post(workspaces::unlock),
        )
}
