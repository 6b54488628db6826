//! The API answers errors in JSON everywhere, including those axum makes before a handler
//! runs: a bad path, query or body, a wrong method, an unknown route.

use axum::Json;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// Any `/api/v1/…` route that does not exist.
pub async fn no_such_route() -> ApiError {
    ApiError::NotFound("no such API route (see docs/api.md)".into())
}

/// Turns an error answered in plain text (axum's extractor rejections) into
/// `{"error": "…"}` with the same status and headers (`Allow`, `WWW-Authenticate`).
pub async fn as_json(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 16 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_lowercase()
    } else {
        text
    };
    tracing::info!(%status, message, "API request refused");
    let mut json = (status, Json(serde_json::json!({ "error": message }))).into_response();
    for (name, value) in &parts.headers {
        if name != CONTENT_TYPE && name != CONTENT_LENGTH {
            json.headers_mut().insert(name.clone(), value.clone());
        }
    }
    json
}
