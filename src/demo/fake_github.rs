//! The demo's stand-in for GitHub, on loopback: enough of the REST API for Gantry to run the
//! sample repository (installation tokens, tarballs, pull request files) and to accept what
//! Gantry reports (statuses, check runs, comments, reactions), which it prints.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, patch, post};
use serde_json::{Value, json};

#[derive(Default)]
pub struct FakeGitHub {
    /// Repository tarballs by commit.
    pub tarballs: Mutex<HashMap<String, Vec<u8>>>,
    /// Files changed by each pull request.
    pub pull_files: Mutex<HashMap<u64, Vec<String>>>,
    next_id: Mutex<i64>,
}

impl FakeGitHub {
    fn id(&self) -> i64 {
        let mut next = self.next_id.lock().unwrap_or_else(|e| e.into_inner());
        *next += 1;
        *next
    }
}

type Shared = Arc<FakeGitHub>;

pub fn router(fake: Shared) -> Router {
    Router::new()
        .route("/app/installations/{id}/access_tokens", post(token))
        .route("/repos/{owner}/{repo}/tarball/{sha}", get(tarball))
        .route(
            "/repos/{owner}/{repo}/pulls/{number}/files",
            get(pull_files),
        )
        .route("/repos/{owner}/{repo}/statuses/{sha}", post(status))
        .route("/repos/{owner}/{repo}/check-runs", post(check_run))
        .route(
            "/repos/{owner}/{repo}/check-runs/{id}",
            patch(check_run_update),
        )
        .route(
            "/repos/{owner}/{repo}/issues/{number}/comments",
            get(no_comments).post(comment),
        )
        .route(
            "/repos/{owner}/{repo}/issues/comments/{id}",
            patch(comment_update),
        )
        .with_state(fake)
}

async fn token() -> impl IntoResponse {
    (
        StatusCode::CREATED,
        Json(json!({ "token": "ghs_demo", "expires_at": "2099-01-01T00:00:00Z" })),
    )
}

async fn tarball(
    State(fake): State<Shared>,
    Path((_, _, sha)): Path<(String, String, String)>,
) -> impl IntoResponse {
    match fake
        .tarballs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&sha)
    {
        Some(bytes) => (StatusCode::OK, bytes.clone()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn pull_files(
    State(fake): State<Shared>,
    Path((_, _, number)): Path<(String, String, u64)>,
) -> Json<Value> {
    let files = fake
        .pull_files
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&number)
        .cloned()
        .unwrap_or_default();
    Json(Value::Array(
        files
            .into_iter()
            .map(|f| json!({ "filename": f }))
            .collect(),
    ))
}

async fn status(
    State(fake): State<Shared>,
    Path((_, _, sha)): Path<(String, String, String)>,
    Json(body): Json<Value>,
) -> impl IntoResponse {
    println!(
        "  [github] status {} on {}: {} — {}",
        body["context"].as_str().unwrap_or(""),
        &sha[..7.min(sha.len())],
        body["state"].as_str().unwrap_or(""),
        body["description"].as_str().unwrap_or("")
    );
    (StatusCode::CREATED, Json(json!({ "id": fake.id() })))
}

async fn check_run(State(fake): State<Shared>) -> impl IntoResponse {
    (StatusCode::CREATED, Json(json!({ "id": fake.id() })))
}

async fn check_run_update(Path((_, _, id)): Path<(String, String, i64)>) -> Json<Value> {
    Json(json!({ "id": id }))
}

async fn no_comments() -> Json<Value> {
    Json(json!([]))
}

async fn comment(State(fake): State<Shared>) -> impl IntoResponse {
    println!("  [github] pull request comment posted");
    (StatusCode::CREATED, Json(json!({ "id": fake.id() })))
}

async fn comment_update(Path((_, _, id)): Path<(String, String, i64)>) -> Json<Value> {
    Json(json!({ "id": id }))
}
