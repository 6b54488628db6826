//! The API-driven workflow: upload a configuration tarball (like Terraform Cloud's
//! configuration versions), then start a run of it (`start.rs`). `gantry runs create --dir`
//! does both.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::auth::Writer;
use super::error::ApiError;
use super::workspace_admin::find;
use crate::executor::extract::{ExtractError, Limits, extract_tar_gz};
use crate::web::AppState;

/// The largest configuration tarball accepted (compressed).
pub const MAX_UPLOAD_BYTES: usize = 64 * 1024 * 1024;

/// How long an upload that no run uses is kept.
const UNUSED_UPLOAD_KEPT_MS: i64 = 24 * 3600 * 1000;

#[derive(Serialize)]
pub struct ConfigurationVersionJson {
    pub id: i64,
    pub sha256: String,
    pub size: usize,
}

/// `POST /api/v1/workspaces/{name}/configuration-versions`, the body a `.tar.gz` of the
/// configuration with its files at the root (the workspace's working directory applies inside
/// it). Checked by unpacking it as a run would; a bad archive is refused with 400 here rather
/// than failing a run later.
pub async fn upload(
    State(state): State<Arc<AppState>>,
    Writer(caller): Writer,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<ConfigurationVersionJson>), ApiError> {
    let workspace = find(&state, &name).await?;
    if body.is_empty() {
        return Err(ApiError::BadRequest(
            "the body must be the configuration as a .tar.gz".into(),
        ));
    }
    check_archive(body.clone()).await?;
    // Uploads that never became a run are dropped a day later, here rather than by a timer:
    // only uploading adds them.
    let day_ago = crate::store::now_ms() - UNUSED_UPLOAD_KEPT_MS;
    match state.store.prune_unused_uploads(day_ago).await {
        Ok(0) => {}
        Ok(pruned) => tracing::info!(pruned, "unused uploads deleted"),
        Err(error) => tracing::warn!(
            error = format!("{error:#}"),
            "pruning unused uploads failed"
        ),
    }
    let sha256 = hex::encode(Sha256::digest(&body));
    let id = state
        .store
        .store_uploaded_configuration(workspace.spec.repo_name(), &sha256, &body)
        .await?;
    tracing::info!(
        workspace = name,
        id,
        size = body.len(),
        by = caller.name,
        "configuration uploaded"
    );
    Ok((
        StatusCode::CREATED,
        Json(ConfigurationVersionJson {
            id,
            sha256,
            size: body.len(),
        }),
    ))
}

/// Unpacks an uploaded configuration as a run would, so that a bad archive is refused (400)
/// when it is sent rather than failing a run later.
pub async fn check_archive(archive: Bytes) -> Result<(), ApiError> {
    tokio::task::spawn_blocking(move || {
        let scratch = tempfile::tempdir()
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("a scratch directory: {e}")))?;
        extract_tar_gz(&archive[..], scratch.path(), 0, Limits::default())
            .map(drop)
            .map_err(rejection)
    })
    .await
    .map_err(|e| anyhow::anyhow!("checking the upload: {e}"))?
}

/// A bad archive is the client's 400; a failure to write the scratch copy (a full disk) is
/// ours, and its details stay in the log.
fn rejection(error: ExtractError) -> ApiError {
    match error {
        ExtractError::Io(io) => {
            ApiError::Internal(anyhow::anyhow!("unpacking an upload to check it: {io}"))
        }
        error => ApiError::BadRequest(format!("the configuration was rejected: {error}")),
    }
}
