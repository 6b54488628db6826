//! The axum router: GitHub's webhooks, health checks and the GitHub App setup pages. Handlers
//! stay thin; they hand work to the store, the engine or the GitHub client.

pub mod api;
mod github_app;
mod health;
pub mod tfe;
pub mod ui;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use secrecy::SecretString;
use tower_http::trace::TraceLayer;

use crate::config::Config;
use crate::engine::RunControl;
use crate::github::GitHub;
use crate::store::Store;
use crate::webhook::{self, Ingest};

/// Everything a request handler may use; built once at start, shared by reference.
pub struct AppState {
    pub config: Config,
    pub store: Store,
    pub github: Arc<GitHub>,
    pub ingest: Arc<Ingest>,
    /// Opens the GitHub App setup page while no app is configured (see `github_app`).
    pub setup_token: Option<SecretString>,
    /// Confirm, discard, cancel, lock: checked, then handed to the runner.
    pub runs: Arc<RunControl>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Why this server executes no run (no sandbox can be made here), if so.
    pub runner_refusal: Option<String>,
    /// Sends verification deliveries to notification receivers.
    pub notifier: Arc<crate::notify::Notifier>,
    /// Where Gantry itself is reached (public URL, configured and bound addresses).
    pub own_urls: Vec<url::Url>,
}

impl axum::extract::FromRef<Arc<AppState>> for webhook::WebhookState {
    fn from_ref(state: &Arc<AppState>) -> Self {
        webhook::WebhookState {
            ingest: state.ingest.clone(),
            metrics: state.metrics.clone(),
        }
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    // The webhook handler enforces its own (configurable) body limit with a clear 413.
    let webhooks = Router::new()
        .route("/webhooks/github", post(webhook::receive))
        .layer(DefaultBodyLimit::disable())
        .layer(tower::limit::ConcurrencyLimitLayer::new(
            webhook::MAX_CONCURRENT_WEBHOOKS,
        ));
    Router::new()
        .merge(webhooks)
        .merge(api::router())
        .merge(tfe::router())
        .merge(ui::router())
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/github-app/setup", get(github_app::setup))
        .route("/github-app/callback", get(github_app::callback))
        // Spans name the method and path only: a query may hold the manifest flow's code, and
        // a signed URL's signature (a state file's key, for minutes) is left out of its path.
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &axum::http::Request<_>| {
                let path = tfe::without_signature(request.uri().path());
                tracing::debug_span!("http", method = %request.method(), path = %path)
            }),
        )
        .with_state(state)
}
