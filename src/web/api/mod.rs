//! The JSON API under `/api/v1`, authenticated by bearer tokens (see `auth`).

mod assessments;
pub mod auth;
mod error;
mod json_errors;
mod notifications;
mod runs;
pub(crate) mod start;
mod uploads;
mod workspace_admin;
mod workspaces;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};

pub use error::ApiError;
pub use uploads::{MAX_UPLOAD_BYTES, check_archive};

use super::AppState;

pub fn router() -> Router<Arc<AppState>> {
    let uploads = Router::new()
        .route(
            "/api/v1/workspaces/{name}/configuration-versions",
            post(uploads::upload),
        )
        .layer(DefaultBodyLimit::max(uploads::MAX_UPLOAD_BYTES));
    Router::new()
        .route("/api/v1/runs/{id}", get(runs::show))
        .route("/api/v1/runs/{id}/logs/{phase}", get(runs::log))
        .route(
            "/api/v1/runs/{id}/logs/{phase}/stream",
            get(runs::log_stream),
        )
        .route(
            "/api/v1/runs/{id}/actions/override",
            post(runs::override_policy),
        )
        .route("/api/v1/runs/{id}/actions/{action}", post(runs::action))
        .route("/api/v1/runs/{id}/policy-checks", get(runs::policy_checks))
        .route(
            "/api/v1/workspaces",
            get(workspaces::list).post(workspace_admin::create),
        )
        .route(
            "/api/v1/workspaces/{name}",
            get(workspace_admin::show)
                .patch(workspace_admin::update)
                .delete(workspace_admin::delete),
        )
        .route(
            "/api/v1/workspaces/{name}/vars",
            get(workspace_admin::variables),
        )
        .route(
            "/api/v1/workspaces/{name}/vars/{category}/{key}",
            put(workspace_admin::set_variable).delete(workspace_admin::delete_variable),
        )
        .route(
            "/api/v1/workspaces/{name}/runs",
            get(workspaces::runs).post(start::create_run),
        )
        .route(
            "/api/v1/workspaces/{name}/state-versions",
            get(workspaces::state_versions),
        )
        .route(
            "/api/v1/workspaces/{name}/state-versions/{version}/download",
            get(workspaces::download_state),
        )
        .route(
            "/api/v1/workspaces/{name}/actions/lock",
            post(workspaces::lock),
        )
        .route(
            "/api/v1/workspaces/{name}/actions/unlock",
            post(workspaces::unlock),
        )
        .route("/api/v1/workspaces/{name}/events", get(workspaces::events))
        .route(
            "/api/v1/workspaces/{name}/assessments",
            get(assessments::list).post(assessments::request),
        )
        .route(
            "/api/v1/workspaces/{name}/assessments/{id}",
            get(assessments::show),
        )
        .route(
            "/api/v1/workspaces/{name}/notification-configurations",
            get(notifications::list).post(notifications::create),
        )
        .route(
            "/api/v1/notification-configurations/{id}",
            get(notifications::show)
                .patch(notifications::update)
                .delete(notifications::delete),
        )
        .merge(uploads)
        .route(
            "/api/v1/{*rest}",
            axum::routing::any(json_errors::no_such_route),
        )
        .layer(axum::middleware::map_response(json_errors::as_json))
}
