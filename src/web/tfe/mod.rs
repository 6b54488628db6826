//! The Terraform Enterprise API v2, the part the `terraform` CLI uses, so that a `cloud`
//! block or a `remote` backend pointed at Gantry plans and applies in Gantry's sandbox
//! (remote execution), or keeps only its state here (local execution), and existing state
//! migrates in. Gantry is one organization (`organization` in its configuration).
//!
//! The same API tokens as `/api/v1`: read sees, write plans, applies, locks (and unlocks its
//! own lock) and writes state, admin creates and changes workspaces and forces locks open. What the CLI sends to or reads from without a
//! token goes through signed URLs (`signed.rs`). The documents are in `documents.rs`; the
//! endpoints by resource in `discovery.rs`, `workspaces.rs`, `state.rs` and `runs.rs`.
//! `docs/api.md` lists them and where they differ from Terraform Cloud.

mod discovery;
mod documents;
mod error;
mod ids;
mod runs;
mod signed;
mod state;
mod workspaces;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post, put};
use serde::Deserialize;

pub use error::TfeError;

use self::ids::Kind;
use self::signed::Signer;
use crate::store::Workspace;
use crate::web::AppState;
use crate::web::api::auth::Caller;

/// JSON:API's media type, which the CLI sends and expects.
pub const MEDIA_TYPE: &str = "application/vnd.api+json";

/// The largest state the CLI may send (states of big estates run to tens of MiB).
const MAX_STATE_BYTES: usize = 128 * 1024 * 1024;

pub fn router() -> Router<Arc<AppState>> {
    let uploads = Router::new()
        .route(
            "/_tfe/configuration-upload/{id}/{expires}/{signature}",
            put(runs::upload_configuration),
        )
        .layer(DefaultBodyLimit::max(crate::web::api::MAX_UPLOAD_BYTES));
    let state_uploads = Router::new()
        .route(
            "/api/v2/workspaces/{id}/state-versions",
            get(state::list).post(state::create),
        )
        .route(
            "/_tfe/state-upload/{id}/{expires}/{signature}",
            put(state::upload),
        )
        .route(
            "/_tfe/json-state-upload/{id}/{expires}/{signature}",
            put(state::upload_json),
        )
        .layer(DefaultBodyLimit::max(MAX_STATE_BYTES));
    Router::new()
        .route("/.well-known/terraform.json", get(discovery::services))
        .route("/api/v2/ping", get(discovery::ping))
        .route("/api/v2/organizations", get(discovery::organizations))
        .route("/api/v2/organizations/{org}", get(discovery::organization))
        .route(
            "/api/v2/organizations/{org}/entitlement-set",
            get(discovery::entitlements),
        )
        .route(
            "/api/v2/organizations/{org}/workspaces",
            get(workspaces::list).post(workspaces::create),
        )
        .route(
            "/api/v2/organizations/{org}/workspaces/{name}",
            get(workspaces::show_named).patch(workspaces::update_named),
        )
        .route(
            "/api/v2/organizations/{org}/runs/queue",
            get(runs::organization_queue),
        )
        .route(
            "/api/v2/workspaces/{id}",
            get(workspaces::show).patch(workspaces::update),
        )
        .route(
            "/api/v2/workspaces/{id}/actions/{action}",
            post(workspaces::action),
        )
        .route(
            "/api/v2/workspaces/{id}/relationships/tags",
            post(workspaces::add_tags),
        )
        .route("/api/v2/workspaces/{id}/vars", get(workspaces::variables))
        .route(
            "/api/v2/workspaces/{id}/current-state-version",
            get(state::current),
        )
        .route("/api/v2/state-versions/{id}", get(state::show))
        .route(
            "/api/v2/workspaces/{id}/current-state-version-outputs",
            get(state::current_outputs),
        )
        .route("/api/v2/state-version-outputs/{id}", get(state::output))
        .route(
            "/_tfe/state/{id}/{expires}/{signature}",
            get(state::download),
        )
        .route(
            "/api/v2/workspaces/{id}/configuration-versions",
            post(runs::create_configuration),
        )
        .route(
            "/api/v2/configuration-versions/{id}",
            get(runs::configuration),
        )
        .route("/api/v2/workspaces/{id}/runs", get(runs::workspace_runs))
        .route("/api/v2/runs", post(runs::create))
        .route("/api/v2/runs/{id}", get(runs::show))
        .route("/api/v2/runs/{id}/actions/{action}", post(runs::action))
        .route("/api/v2/runs/{id}/{related}", get(runs::none_related))
        .route("/api/v2/plans/{id}", get(runs::plan))
        .route("/api/v2/applies/{id}", get(runs::apply))
        .route("/_tfe/{log}/{id}/{expires}/{signature}", get(runs::log))
        .route("/app/{org}/{workspace}/runs/{id}", get(runs::run_page))
        .route("/api/v2/organizations/{org}/projects", any(no_projects))
        .merge(uploads)
        .merge(state_uploads)
        .route("/api/v2/{*rest}", any(no_such_endpoint))
}

/// A path fit for a log: a signed URL's signature replaced (it opens a state file, or takes an
/// upload, until it expires).
pub fn without_signature(path: &str) -> std::borrow::Cow<'_, str> {
    match path
        .strip_prefix("/_tfe/")
        .and_then(|rest| rest.rsplit_once('/'))
    {
        Some((signed, _signature)) => format!("/_tfe/{signed}/<signature>").into(),
        None => path.into(),
    }
}

/// A `project` in a `cloud` block: Gantry has none, and says so (a 404 here would crash the
/// CLI).
async fn no_projects() -> TfeError {
    TfeError::unprocessable(
        "Gantry has no projects: remove `project` from the cloud block (workspaces are found by \
         name or tags)",
    )
}

async fn no_such_endpoint(uri: axum::http::Uri) -> TfeError {
    TfeError::not_found(format!("Gantry does not serve {}", uri.path()))
}

/// A JSON:API document answered with `status`.
pub(super) fn document(status: StatusCode, body: serde_json::Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE));
    response
}

/// The caller, by the same tokens as `/api/v1`, refused in JSON:API form.
pub(super) struct TfeCaller(pub Caller);

impl FromRequestParts<Arc<AppState>> for TfeCaller {
    type Rejection = TfeError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        Ok(TfeCaller(Caller::from_request_parts(parts, state).await?))
    }
}

impl TfeCaller {
    pub fn require(&self, role: crate::core::access::Role) -> Result<(), TfeError> {
        Ok(self.0.require(role)?)
    }
}

/// Refuses every organization but Gantry's own, as the CLI's 404.
pub(super) fn check_organization(state: &AppState, org: &str) -> Result<(), TfeError> {
    if org == state.config.organization {
        Ok(())
    } else {
        Err(TfeError::not_found(format!(
            "organization {org} not found (this Gantry is organization {})",
            state.config.organization
        )))
    }
}

/// Signs the URLs handed to the CLI, under Gantry's public URL.
pub(super) fn signer(state: &AppState) -> Result<Signer, TfeError> {
    Ok(Signer::new(
        state.store.url_signing_key()?,
        state.config.public_url.clone(),
    ))
}

/// A workspace by its TFE id (`ws-…`); archived ones are gone for the CLI.
pub(super) async fn workspace_by_id(state: &AppState, id: &str) -> Result<Workspace, TfeError> {
    let number = ids::parse(Kind::Workspace, id)?;
    state
        .store
        .workspace(crate::core::WorkspaceId(number))
        .await?
        .filter(|w| !w.archived)
        .ok_or_else(|| TfeError::not_found(format!("workspace {id} not found")))
}

/// A workspace by name.
pub(super) async fn workspace_named(state: &AppState, name: &str) -> Result<Workspace, TfeError> {
    state
        .store
        .workspace_named(name)
        .await?
        .filter(|w| !w.archived)
        .ok_or_else(|| TfeError::not_found(format!("workspace {name} not found")))
}

/// A JSON:API request document: `{"data": {"type", "attributes", "relationships"}}`. Unknown
/// members are ignored, as Terraform Cloud ignores them.
#[derive(Debug, Deserialize)]
pub(super) struct Request<A: Default> {
    pub data: Resource<A>,
}

#[derive(Debug, Deserialize)]
pub(super) struct Resource<A: Default> {
    #[serde(default)]
    pub attributes: A,
    #[serde(default)]
    pub relationships: serde_json::Map<String, serde_json::Value>,
}

impl<A: Default> Resource<A> {
    /// The id a to-one relationship points at.
    pub fn related_id(&self, name: &str) -> Option<&str> {
        self.relationships
            .get(name)?
            .get("data")?
            .get("id")?
            .as_str()
    }
}

/// `page[number]` (from 1) and `page[size]` (20 by default, at most 100).
pub(super) fn page_of(query: &HashMap<String, String>) -> Result<(i64, i64), TfeError> {
    let number = |key: &str, default: i64| -> Result<i64, TfeError> {
        match query.get(key).filter(|v| !v.is_empty()) {
            None => Ok(default),
            Some(v) => v.parse::<i64>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                TfeError::bad_request(format!("{key} must be a whole number from 1"))
            }),
        }
    };
    Ok((
        number("page[number]", 1)?,
        number("page[size]", 20)?.min(100),
    ))
}

/// Parses a request body as a JSON:API document, with the path of what is wrong.
pub(super) fn parse_request<A: serde::de::DeserializeOwned + Default>(
    body: &[u8],
) -> Result<Request<A>, TfeError> {
    let deserializer = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        TfeError::bad_request(format!(
            "invalid JSON:API document at {}: {}",
            e.path(),
            e.inner()
        ))
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_logged_path_keeps_no_signature() {
        assert_eq!(
            super::without_signature("/_tfe/state/12/1700000000000/abcdef"),
            "/_tfe/state/12/1700000000000/<signature>"
        );
        assert_eq!(super::without_signature("/api/v2/ping"), "/api/v2/ping");
    }
}
