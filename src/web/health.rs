//! Liveness and readiness for load balancers and orchestrators.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AppState;

/// `GET /healthz`: the process is up and serving.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: the database answers, so deliveries can be accepted, and a server that
/// executes runs can run them (a sandbox can be made here).
pub async fn readyz(State(state): State<Arc<AppState>>) -> (StatusCode, Json<Value>) {
    if let Some(refusal) = &state.runner_refusal {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "error": refusal })),
        );
    }
    match state.store.ping().await {
        Ok(()) => (
            StatusCode::OK,
            Json(json!({ "status": "ready", "database": state.store.backend_name() })),
        ),
        Err(error) => {
            tracing::warn!(error = format!("{error:#}"), "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable", "error": "database unreachable" })),
            )
        }
    }
}

/// `GET /metrics`: Prometheus text.
pub async fn metrics(State(state): State<Arc<AppState>>) -> axum::response::Response {
    use axum::response::IntoResponse;
    match state.metrics.render(&state.store).await {
        Ok(text) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(error) => {
            tracing::warn!(error = format!("{error:#}"), "metrics failed");
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}
