//! The pages a UI request gets when it fails: not found, or an error kept in the log.

use axum::http::StatusCode;
use axum::response::Response;

use crate::web::github_app::error_page;

/// The page for an error people cannot act on; the error goes to the log, not the page.
pub fn internal(error: anyhow::Error) -> Response {
    tracing::error!(error = format!("{error:#}"), "page failed");
    error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "Gantry could not show this page. The error is in its log.",
    )
}

pub fn not_found(what: &str) -> Response {
    error_page(
        StatusCode::NOT_FOUND,
        "Not found",
        &format!("There is no {what}."),
    )
}
