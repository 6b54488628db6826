//! The axum router: GitHub's webhooks, health checks and the GitHub App setup pages. Handlers
//! stay thin; they hand work to the store, the engine or the GitHub client.

mod github_app;
mod health;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use tower_http::trace::TraceLayer;

use crate::config::Config;
use crate::github::GitHub;
use crate::store::Store;
use crate::webhook::{self, Ingest};

/// Everything a request handler may use; built once at start, shared by reference.
pub struct AppState {
    pub config: Config,
    pub store: Store,
    pub github: GitHub,
    pub ingest: Ingest,
}

pub fn router(state: Arc<AppState>) -> Router {
    // The webhook handler enforces its own (configurable) body limit with a clear 413.
    let webhooks = Router::new()
        .route("/webhooks/github", post(webhook::receive))
        .layer(DefaultBodyLimit::disable());
    Router::new()
        .merge(webhooks)
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/github-app/setup", get(github_app::setup))
        .route("/github-app/callback", get(github_app::callback))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
