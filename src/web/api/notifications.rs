//! `/api/v1/…/notification-configurations`: a workspace's notification configurations
//! (Terraform Cloud's), made, changed and deleted by admins; the configuration file's own are
//! shown but changed in the file. A configuration made or enabled is verified before the answer:
//! one whose receiver does not answer 2xx is kept disabled, and the answer says why. Tokens
//! are never shown.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::auth::{Admin, Caller};
use super::error::ApiError;
use super::workspace_admin::find;
use crate::core::access::Role;
use crate::core::notifications::{Destination, MAX_PER_WORKSPACE, NotificationSpec};
use crate::store::{DeliveryResponse, NotificationConfiguration};
use crate::web::AppState;

#[derive(Serialize)]
pub struct NotificationJson {
    pub id: i64,
    pub name: String,
    pub destination: &'static str,
    pub url: String,
    /// Whether generic payloads are signed (the token itself is never shown).
    pub signed: bool,
    pub triggers: Vec<String>,
    pub enabled: bool,
    /// `config` (the configuration file) or `api`.
    pub source: String,
    /// `unverified`, `verified` or `failed`.
    pub status: String,
    /// Why verification failed.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub status_detail: String,
    /// The last answers to its deliveries, newest first (in one configuration's answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery_responses: Option<Vec<DeliveryResponse>>,
}

impl From<&NotificationConfiguration> for NotificationJson {
    fn from(c: &NotificationConfiguration) -> Self {
        Self {
            id: c.id,
            name: c.spec.name.clone(),
            destination: c.spec.destination.as_str(),
            url: c.spec.url.clone(),
            signed: !c.spec.token.is_empty(),
            triggers: c.spec.triggers.clone(),
            enabled: c.spec.enabled,
            source: c.source.clone(),
            status: c.status.clone(),
            status_detail: c.status_detail.clone(),
            delivery_responses: None,
        }
    }
}

/// A configuration as sent: every field optional, so one body serves create and update.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NotificationBody {
    pub name: Option<String>,
    pub destination: Option<String>,
    pub url: Option<String>,
    /// `""` removes it.
    pub token: Option<String>,
    pub triggers: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

impl NotificationBody {
    fn apply_to(
        self,
        mut spec: NotificationSpec,
        state: &AppState,
    ) -> Result<NotificationSpec, ApiError> {
        if let Some(name) = self.name {
            spec.name = name;
        }
        if let Some(destination) = self.destination {
            spec.destination = Destination::parse(&destination)
                .map_err(|why| ApiError::BadRequest(format!("destination: {why}")))?;
        }
        if let Some(url) = self.url {
            spec.url = url;
        }
        if let Some(token) = self.token {
            spec.token = token;
        }
        if let Some(triggers) = self.triggers {
            spec.triggers = triggers;
        }
        if let Some(enabled) = self.enabled {
            spec.enabled = enabled;
        }
        match spec.problem(&state.own_urls) {
            Some((field, why)) => Err(ApiError::BadRequest(format!("{field}: {why}"))),
            None => Ok(spec),
        }
    }
}

/// `GET /api/v1/workspaces/{name}/notification-configurations` (admin)
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Vec<NotificationJson>>, ApiError> {
    // A Slack or Teams webhook's URL is its credential, and answers may quote receivers.
    caller.require(Role::Admin)?;
    let workspace = find(&state, &name).await?;
    let configurations = state
        .store
        .notification_configurations(workspace.id)
        .await?;
    Ok(Json(
        configurations.iter().map(NotificationJson::from).collect(),
    ))
}

/// `POST /api/v1/workspaces/{name}/notification-configurations` (admin): 201 with it,
/// verified (or, when its receiver did not answer 2xx, disabled with why).
pub async fn create(
    State(state): State<Arc<AppState>>,
    Admin(caller): Admin,
    Path(name): Path<String>,
    Json(body): Json<NotificationBody>,
) -> Result<(StatusCode, Json<NotificationJson>), ApiError> {
    let workspace = find(&state, &name).await?;
    let missing = |field: &str| ApiError::BadRequest(format!("{field}: is required"));
    let base = NotificationSpec {
        name: body.name.clone().ok_or_else(|| missing("name"))?,
        destination: Destination::Generic,
        url: body.url.clone().ok_or_else(|| missing("url"))?,
        token: String::new(),
        triggers: Vec::new(),
        enabled: true,
    };
    if body.destination.is_none() {
        return Err(missing("destination"));
    }
    let spec = body.apply_to(base, &state)?;
    let existing = state
        .store
        .notification_configurations(workspace.id)
        .await?;
    if existing.len() >= MAX_PER_WORKSPACE {
        return Err(ApiError::Conflict(format!(
            "workspace {name} has {MAX_PER_WORKSPACE} notification configurations already"
        )));
    }
    if existing.iter().any(|c| c.spec.name == spec.name) {
        return Err(ApiError::Conflict(format!(
            "workspace {name} has a notification configuration named {} already",
            spec.name
        )));
    }
    let id = state.store.create_notification(workspace.id, &spec).await?;
    tracing::info!(
        workspace = name,
        id,
        by = caller.name,
        "notification configuration created"
    );
    let json = verified_json(&state, id).await?;
    Ok((StatusCode::CREATED, Json(json)))
}

/// `GET /api/v1/notification-configurations/{id}` (admin): with its last delivery answers.
pub async fn show(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<NotificationJson>, ApiError> {
    // A Slack or Teams webhook's URL is its credential, and answers may quote receivers.
    caller.require(Role::Admin)?;
    let configuration = found(&state, id).await?;
    let mut json = NotificationJson::from(&configuration);
    json.delivery_responses = Some(state.store.notification_deliveries(id).await?);
    Ok(Json(json))
}

/// `PATCH /api/v1/notification-configurations/{id}` (admin): changes the fields sent; an
/// enabled configuration is verified again.
pub async fn update(
    State(state): State<Arc<AppState>>,
    Admin(caller): Admin,
    Path(id): Path<i64>,
    Json(body): Json<NotificationBody>,
) -> Result<Json<NotificationJson>, ApiError> {
    let configuration = changeable(&state, id).await?;
    let spec = body.apply_to(configuration.spec.clone(), &state)?;
    state.store.update_notification(id, &spec).await?;
    tracing::info!(id, by = caller.name, "notification configuration updated");
    Ok(Json(verified_json(&state, id).await?))
}

/// `DELETE /api/v1/notification-configurations/{id}` (admin).
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Admin(caller): Admin,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    changeable(&state, id).await?;
    state.store.delete_notification(id).await?;
    tracing::info!(id, by = caller.name, "notification configuration deleted");
    Ok(StatusCode::NO_CONTENT)
}

async fn found(state: &AppState, id: i64) -> Result<NotificationConfiguration, ApiError> {
    state
        .store
        .notification_configuration(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("notification configuration {id} not found")))
}

/// The configuration, if the API may change it (the configuration file's belong to the file).
async fn changeable(state: &AppState, id: i64) -> Result<NotificationConfiguration, ApiError> {
    let configuration = found(state, id).await?;
    if configuration.source == "config" {
        return Err(ApiError::Conflict(format!(
            "notification configuration {id} is declared in the configuration file; change it \
             there"
        )));
    }
    Ok(configuration)
}

/// Verifies the configuration when it is enabled; its JSON with the last answers.
async fn verified_json(state: &AppState, id: i64) -> Result<NotificationJson, ApiError> {
    let configuration = found(state, id).await?;
    if configuration.spec.enabled {
        // The outcome is stored on the configuration (status, detail) and shown below.
        let _verified =
            crate::engine::notifications::verify(&state.store, &state.notifier, &configuration)
                .await?;
    }
    let configuration = found(state, id).await?;
    let mut json = NotificationJson::from(&configuration);
    json.delivery_responses = Some(state.store.notification_deliveries(id).await?);
    Ok(json)
}
