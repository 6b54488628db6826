//! Errors in JSON:API form (`{"errors": [{"status", "title", "detail"}]}`), which is what the
//! Terraform CLI reads and prints ("title" and "detail"). Internal errors are logged in full
//! and answered with a generic message.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::engine::runner::ActionError;
use crate::web::api::ApiError;

use super::MEDIA_TYPE;

#[derive(Debug)]
pub struct TfeError {
    status: StatusCode,
    detail: String,
}

impl TfeError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: detail.into(),
        }
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, detail)
    }

    /// A request that is well-formed but asks for something Gantry does not do.
    pub fn unprocessable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, detail)
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }
}

impl From<ApiError> for TfeError {
    fn from(error: ApiError) -> Self {
        let status = match &error {
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Upstream(_) => StatusCode::BAD_GATEWAY,
            ApiError::Internal(error) => return Self::from(anyhow::anyhow!("{error:#}")),
        };
        Self::new(status, error.to_string())
    }
}

impl From<anyhow::Error> for TfeError {
    fn from(error: anyhow::Error) -> Self {
        tracing::error!(error = format!("{error:#}"), "TFE API request failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }
}

impl From<ActionError> for TfeError {
    fn from(error: ActionError) -> Self {
        Self::from(ApiError::from(error))
    }
}

impl IntoResponse for TfeError {
    fn into_response(self) -> Response {
        if matches!(
            self.status,
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        ) {
            tracing::info!(status = %self.status, reason = %self.detail, "TFE API request refused");
        }
        let title = self
            .status
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase();
        let body = serde_json::json!({
            "errors": [{
                "status": self.status.as_str(),
                "title": title,
                "detail": self.detail,
            }]
        });
        let mut response = (self.status, body.to_string()).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE));
        response
    }
}
