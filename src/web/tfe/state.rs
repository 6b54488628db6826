//! State versions for the CLI: the current one and its download, and new ones sent by
//! `terraform state push`, a migration or a local apply — inline (Terraform before 1.6, the
//! `remote` backend) or announced and then uploaded (Terraform 1.6+). A new state must
//! continue the workspace's lineage with a newer serial (`-force` may change the lineage), and
//! only the holder of the workspace's lock may write one.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use md5::{Digest, Md5};
use serde::Deserialize;
use serde_json::json;

use super::ids::{self, Kind};
use super::signed::Signed;
use super::{TfeCaller, TfeError, document, documents, parse_request, signer, workspace_by_id};
use crate::core::access::Role;
use crate::core::state::{StateError, StateMeta, check_new_state};
use crate::store::{AnnouncedState, Author, StateVersion, Workspace};
use crate::web::AppState;

/// `GET /api/v2/workspaces/{id}/current-state-version`: 404 when the workspace has none.
pub async fn current(
    State(state): State<Arc<AppState>>,
    caller: TfeCaller,
    Path(id): Path<String>,
) -> Result<Response, TfeError> {
    let workspace = workspace_by_id(&state, &id).await?;
    let current = state
        .store
        .current_state(workspace.id)
        .await?
        .ok_or_else(|| TfeError::not_found(format!("workspace {id} has no state yet")))?;
    let signer = signer(&state)?;
    let id = ids::external(Kind::StateVersion, current.id);
    Ok(document(
        StatusCode::OK,
        json!({ "data": documents::state_version(&id, &current, &signer, caller.0.role) }),
    ))
}

/// `GET /api/v2/workspaces/{id}/state-versions`: every state version, newest first.
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: TfeCaller,
    Path(id): Path<String>,
) -> Result<Response, TfeError> {
    let workspace = workspace_by_id(&state, &id).await?;
    let signer = signer(&state)?;
    let versions = state.store.state_versions(workspace.id).await?;
    let data: Vec<serde_json::Value> = versions
        .iter()
        .rev()
        .map(|sv| {
            let id = ids::external(Kind::StateVersion, sv.id);
            documents::state_version(&id, sv, &signer, caller.0.role)
        })
        .collect();
    let total = data.len() as i64;
    Ok(document(
        StatusCode::OK,
        json!({ "data": data, "meta": documents::pagination(1, total.max(1), total) }),
    ))
}

/// `GET /api/v2/state-versions/{id}`: a state version, or an announced one (`svu-…`) — as
/// the version it became once uploaded.
pub async fn show(
    State(state): State<Arc<AppState>>,
    caller: TfeCaller,
    Path(id): Path<String>,
) -> Result<Response, TfeError> {
    let signer = signer(&state)?;
    if let Ok(upload_id) = ids::parse(Kind::StateUpload, &id) {
        let upload = state
            .store
            .state_upload(upload_id)
            .await?
            .ok_or_else(|| TfeError::not_found(format!("state version {id} not found")))?;
        let data = match upload.state_version_id {
            None => documents::awaited_state_version(
                upload_id,
                upload.announced.serial,
                &signer,
                caller.0.role,
            ),
            Some(version) => {
                let sv = find(&state, version).await?;
                documents::state_version(&id, &sv, &signer, caller.0.role)
            }
        };
        return Ok(document(StatusCode::OK, json!({ "data": data })));
    }
    let sv = find(&state, ids::parse(Kind::StateVersion, &id)?).await?;
    Ok(document(
        StatusCode::OK,
        json!({ "data": documents::state_version(&id, &sv, &signer, caller.0.role) }),
    ))
}

/// State version `number`, or the CLI's 404.
async fn find(state: &AppState, number: i64) -> Result<StateVersion, TfeError> {
    state
        .store
        .state_version_by_id(number)
        .await?
        .ok_or_else(|| {
            TfeError::not_found(format!(
                "state version {} not found",
                ids::external(Kind::StateVersion, number)
            ))
        })
}

/// `GET /api/v2/workspaces/{id}/current-state-version-outputs`: the current state's outputs
/// (`terraform output`); a sensitive one's value only through its own URL, below.
pub async fn current_outputs(
    State(state): State<Arc<AppState>>,
    _caller: TfeCaller,
    Path(id): Path<String>,
) -> Result<Response, TfeError> {
    let workspace = workspace_by_id(&state, &id).await?;
    let data = match state.store.current_state(workspace.id).await? {
        Some(current) => outputs_of(&current)?
            .into_iter()
            .map(|output| output.document(false))
            .collect(),
        None => Vec::new(),
    };
    Ok(document(StatusCode::OK, json!({ "data": data })))
}

/// `GET /api/v2/state-version-outputs/{id}`: one output, a sensitive value included for
/// tokens that may read state files.
pub async fn output(
    State(state): State<Arc<AppState>>,
    caller: TfeCaller,
    Path(id): Path<String>,
) -> Result<Response, TfeError> {
    let not_found = || TfeError::not_found(format!("state version output {id} not found"));
    let (version, name) = id
        .strip_prefix("wsout-")
        .and_then(|rest| rest.split_once('-'))
        .and_then(|(n, name)| Some((n.parse::<i64>().ok()?, name)))
        .ok_or_else(not_found)?;
    let sv = find(&state, version).await?;
    let output = outputs_of(&sv)?
        .into_iter()
        .find(|o| o.name == name)
        .ok_or_else(not_found)?;
    let reveal = caller.0.role.allows(Role::Write);
    Ok(document(
        StatusCode::OK,
        json!({ "data": output.document(reveal) }),
    ))
}

/// An output of a state version, as Terraform wrote it.
struct StateOutput {
    state_version: i64,
    name: String,
    value: serde_json::Value,
    detailed_type: serde_json::Value,
    sensitive: bool,
}

impl StateOutput {
    fn document(&self, reveal_sensitive: bool) -> serde_json::Value {
        let type_name = match &self.detailed_type {
            serde_json::Value::String(t) => t.clone(),
            serde_json::Value::Array(parts) => parts
                .first()
                .and_then(|t| t.as_str())
                .unwrap_or("")
                .to_string(),
            _ => String::new(),
        };
        json!({
            "id": format!("wsout-{}-{}", self.state_version, self.name),
            "type": "state-version-outputs",
            "attributes": {
                "name": self.name,
                "sensitive": self.sensitive,
                "type": type_name,
                "value": (!self.sensitive || reveal_sensitive).then_some(&self.value),
                "detailed-type": self.detailed_type,
            },
        })
    }
}

fn outputs_of(sv: &StateVersion) -> Result<Vec<StateOutput>, TfeError> {
    let file: serde_json::Value = serde_json::from_slice(&sv.state)
        .map_err(|e| anyhow::anyhow!("state version {} is not JSON: {e}", sv.id))?;
    let Some(outputs) = file.get("outputs").and_then(|o| o.as_object()) else {
        return Ok(Vec::new());
    };
    Ok(outputs
        .iter()
        .map(|(name, output)| StateOutput {
            state_version: sv.id,
            name: name.clone(),
            value: output.get("value").cloned().unwrap_or_default(),
            detailed_type: output.get("type").cloned().unwrap_or_default(),
            sensitive: output
                .get("sensitive")
                .and_then(|s| s.as_bool())
                .unwrap_or(false),
        })
        .collect())
}

/// `GET` a signed state URL: the state file itself.
pub async fn download(
    State(state): State<Arc<AppState>>,
    Path((id, expires, signature)): Path<(i64, i64, String)>,
) -> Result<Response, TfeError> {
    signer(&state)?.check(Signed::StateDownload, id, expires, &signature)?;
    let sv = find(&state, id).await?;
    let mut response = sv.state.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct StateAttributes {
    serial: Option<i64>,
    md5: Option<String>,
    lineage: Option<String>,
    #[serde(default)]
    force: bool,
    /// Base64 of the state file, when it comes inline.
    state: Option<String>,
}

/// `POST /api/v2/workspaces/{id}/state-versions` (write, holding the workspace's lock).
pub async fn create(
    State(state): State<Arc<AppState>>,
    caller: TfeCaller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, TfeError> {
    caller.require(Role::Write)?;
    let workspace = workspace_by_id(&state, &id).await?;
    let by = caller.0.name.as_str();
    match &workspace.lock {
        Some(lock) if lock.by == by => {}
        _ => {
            return Err(TfeError::conflict(format!(
                "workspace {} must be locked by {by} to write its state (terraform locks it \
                 itself; is another lock in the way?)",
                workspace.spec.name
            )));
        }
    }
    let attributes = parse_request::<StateAttributes>(&body)?.data.attributes;
    let missing = |name: &str| {
        TfeError::unprocessable(format!("param is missing or the value is empty: {name}"))
    };
    let announced = AnnouncedState {
        serial: attributes.serial.ok_or_else(|| missing("serial"))?,
        md5: attributes
            .md5
            .ok_or_else(|| missing("md5"))?
            .to_ascii_lowercase(),
        lineage: attributes.lineage.ok_or_else(|| missing("lineage"))?,
        force: attributes.force,
    };
    let signer = signer(&state)?;
    let Some(inline) = attributes.state.filter(|s| !s.is_empty()) else {
        // Terraform 1.6+: the state follows at the upload URL.
        let upload = state
            .store
            .announce_state_upload(workspace.id, &announced, by)
            .await?;
        return Ok(document(
            StatusCode::CREATED,
            json!({ "data": documents::awaited_state_version(
                upload,
                announced.serial,
                &signer,
                caller.0.role,
            ) }),
        ));
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(inline.trim())
        .map_err(|e| TfeError::unprocessable(format!("state is not base64: {e}")))?;
    let sv = record(&state, &workspace, &announced, &bytes, by).await?;
    Ok(document(
        StatusCode::CREATED,
        json!({ "data": documents::state_version(
            &ids::external(Kind::StateVersion, sv.id),
            &sv,
            &signer,
            caller.0.role,
        ) }),
    ))
}

/// How long an announced state may take to arrive (as long as its upload URL works).
const ANNOUNCEMENT_KEPT_MS: i64 = 60 * 60 * 1000;

/// `PUT` a signed state upload URL: the state announced before.
pub async fn upload(
    State(state): State<Arc<AppState>>,
    Path((id, expires, signature)): Path<(i64, i64, String)>,
    body: Bytes,
) -> Result<Response, TfeError> {
    signer(&state)?.check(Signed::StateUpload, id, expires, &signature)?;
    let upload = state
        .store
        .state_upload(id)
        .await?
        .ok_or_else(|| TfeError::not_found("state upload not found"))?;
    if let Some(version) = upload.state_version_id {
        // The same state again (a retry whose answer was lost) is fine; another is not.
        let stored = find(&state, version).await?;
        if stored.state != body {
            return Err(TfeError::conflict("this state was uploaded already"));
        }
        return Ok(StatusCode::OK.into_response());
    }
    if crate::store::now_ms() - upload.created_at_ms > ANNOUNCEMENT_KEPT_MS {
        return Err(TfeError::conflict(
            "this state was announced too long ago; create the state version again",
        ));
    }
    let workspace = state
        .store
        .workspace(upload.workspace_id)
        .await?
        .filter(|w| !w.archived)
        .ok_or_else(|| TfeError::not_found("workspace not found"))?;
    // Still its announcer's to write: the lock may have been forced open meanwhile.
    if workspace
        .lock
        .as_ref()
        .is_none_or(|lock| lock.by != upload.by)
    {
        return Err(TfeError::conflict(format!(
            "workspace {} is no longer locked by {}, who announced this state",
            workspace.spec.name, upload.by
        )));
    }
    let sv = record(&state, &workspace, &upload.announced, &body, &upload.by).await?;
    state.store.finish_state_upload(id, sv.id).await?;
    Ok(StatusCode::OK.into_response())
}

/// `PUT` a signed JSON state upload URL: Terraform's JSON rendering of the state, which
/// Gantry does not keep (it reads the state itself); taken so that the CLI goes on.
pub async fn upload_json(
    State(state): State<Arc<AppState>>,
    Path((id, expires, signature)): Path<(i64, i64, String)>,
) -> Result<Response, TfeError> {
    signer(&state)?.check(Signed::JsonStateUpload, id, expires, &signature)?;
    Ok(StatusCode::OK.into_response())
}

/// Checks a state file against what was announced and the workspace's current state, and
/// stores it as the next state version.
async fn record(
    state: &AppState,
    workspace: &Workspace,
    announced: &AnnouncedState,
    file: &[u8],
    by: &str,
) -> Result<StateVersion, TfeError> {
    if hex::encode(Md5::digest(file)) != announced.md5 {
        return Err(TfeError::unprocessable(
            "the state does not match its md5: it was damaged on the way",
        ));
    }
    let current = state.store.current_state(workspace.id).await?;
    let meta = checked(current.as_ref().map(|c| &c.meta), file, announced)?;
    let id = state
        .store
        .record_state_version(workspace.id, Author::Person(by), &meta, file)
        .await?
        .ok_or_else(|| {
            TfeError::conflict(format!(
                "a state version with serial {} exists already",
                meta.serial
            ))
        })?;
    tracing::info!(
        workspace = workspace.spec.name.as_str(),
        serial = meta.serial,
        by,
        "state version stored from the Terraform CLI"
    );
    find(state, id).await
}

/// The state's identity, if it may follow `current`: the serial and lineage it was announced
/// with, a newer serial, and the same lineage unless forced. Even a forced state moves the
/// serial forward: versions are kept in serial order.
fn checked(
    current: Option<&StateMeta>,
    file: &[u8],
    announced: &AnnouncedState,
) -> Result<StateMeta, TfeError> {
    let refused = |e: StateError| TfeError::conflict(format!("the state was refused: {e}"));
    let meta = check_new_state(None, file).map_err(refused)?;
    if meta.serial != announced.serial || meta.lineage != announced.lineage {
        return Err(TfeError::unprocessable(
            "the state's serial and lineage are not the ones announced for it",
        ));
    }
    match current {
        Some(current) if announced.force && meta.serial <= current.serial => {
            Err(refused(StateError::OlderSerial {
                current: current.serial,
                new: meta.serial,
            }))
        }
        Some(_) if announced.force => Ok(meta),
        current => check_new_state(current, file).map_err(refused),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(serial: i64, lineage: &str) -> Vec<u8> {
        format!(r#"{{"version":4,"serial":{serial},"lineage":"{lineage}","resources":[]}}"#)
            .into_bytes()
    }

    fn announced(file: &[u8], serial: i64, lineage: &str, force: bool) -> AnnouncedState {
        AnnouncedState {
            serial,
            lineage: lineage.into(),
            md5: hex::encode(Md5::digest(file)),
            force,
        }
    }

    fn meta(serial: i64, lineage: &str) -> StateMeta {
        StateMeta {
            serial,
            lineage: lineage.into(),
            checksum: String::new(),
        }
    }

    #[test]
    fn a_state_must_be_newer_and_of_the_same_lineage_unless_forced() {
        let current = meta(5, "a");
        let newer = file(6, "a");
        assert!(checked(Some(&current), &newer, &announced(&newer, 6, "a", false)).is_ok());
        let older = file(4, "a");
        assert!(checked(Some(&current), &older, &announced(&older, 4, "a", false)).is_err());
        assert!(checked(Some(&current), &older, &announced(&older, 4, "a", true)).is_err());
        let other = file(6, "b");
        assert!(checked(Some(&current), &other, &announced(&other, 6, "b", false)).is_err());
        assert!(checked(Some(&current), &other, &announced(&other, 6, "b", true)).is_ok());
        let first = file(1, "z");
        assert!(checked(None, &first, &announced(&first, 1, "z", false)).is_ok());
    }

    #[test]
    fn a_state_must_be_the_one_announced() {
        let sent = file(6, "a");
        assert!(checked(None, &sent, &announced(&sent, 7, "a", false)).is_err());
        assert!(checked(None, &sent, &announced(&sent, 6, "b", false)).is_err());
    }
}
