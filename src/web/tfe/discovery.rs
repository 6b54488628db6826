//! How the CLI finds Gantry and decides it may use it: service discovery, the ping that
//! carries the API version, the organization and its entitlements.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{TfeCaller, TfeError, check_organization, document, documents};
use crate::web::AppState;

/// The API version announced: the `cloud` block needs 2.5 or later.
pub const API_VERSION: &str = "2.5";

/// `GET /.well-known/terraform.json`: where the TFE API is (`tfe.v2` for the `cloud` block,
/// `tfe.v2.1` for the `remote` backend).
pub async fn services() -> Response {
    let body = json!({
        "tfe.v2": "/api/v2/",
        "tfe.v2.1": "/api/v2/",
        "tfe.v2.2": "/api/v2/",
    });
    let mut response = body.to_string().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// `GET /api/v2/ping`: the headers are the answer.
pub async fn ping() -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    headers.insert("TFP-API-Version", HeaderValue::from_static(API_VERSION));
    headers.insert(
        "TFP-AppName",
        HeaderValue::from_static("Terraform Enterprise"),
    );
    response
}

/// `GET /api/v2/organizations`: Gantry's one organization.
pub async fn organizations(State(state): State<Arc<AppState>>, _caller: TfeCaller) -> Response {
    document(
        StatusCode::OK,
        json!({
            "data": [documents::organization(&state.config.organization)],
            "meta": documents::pagination(1, 20, 1),
        }),
    )
}

pub async fn organization(
    State(state): State<Arc<AppState>>,
    _caller: TfeCaller,
    Path(org): Path<String>,
) -> Result<Response, TfeError> {
    check_organization(&state, &org)?;
    Ok(document(
        StatusCode::OK,
        json!({ "data": documents::organization(&org) }),
    ))
}

/// `GET /api/v2/organizations/{org}/entitlement-set`: `operations` is what makes the CLI run
/// plans here rather than on its own machine.
pub async fn entitlements(
    State(state): State<Arc<AppState>>,
    _caller: TfeCaller,
    Path(org): Path<String>,
) -> Result<Response, TfeError> {
    check_organization(&state, &org)?;
    Ok(document(
        StatusCode::OK,
        json!({
            "data": {
                "id": org,
                "type": "entitlement-sets",
                "attributes": {
                    "operations": true,
                    "state-storage": true,
                    "vcs-integrations": true,
                    "private-module-registry": false,
                    "sentinel": false,
                    "teams": false,
                    "agents": false,
                },
            }
        }),
    ))
}
