//! The HTTP edge for GitHub's webhooks: check the headers, verify the signature, pick out the
//! envelope fields, store the delivery (group-committed), answer. Nothing is processed here;
//! the dispatcher (`crate::engine`) does that from the store, so an accepted delivery survives
//! a crash and a slow handler never makes GitHub time out.

mod committer;
pub mod envelope;
pub mod signature;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::json;

pub use committer::{CommitError, Committer};
pub use signature::{SignatureError, WebhookSecrets};

use crate::store::{InsertOutcome, NewDelivery, now_ms};

const EVENT_HEADER: &str = "x-github-event";
const DELIVERY_HEADER: &str = "x-github-delivery";
const SIGNATURE_HEADER: &str = "x-hub-signature-256";
/// GitHub's delivery ids are GUIDs; leave room for other senders but bound what we store.
const MAX_DELIVERY_ID_LEN: usize = 128;
const MAX_EVENT_LEN: usize = 64;
/// GitHub gives up on a delivery after 10 s; a body still trickling in after this is not GitHub.
const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);
/// Webhook requests handled at once; more wait their turn. Bounds the memory bodies can take
/// (each up to the body limit) before their signature can be checked.
pub const MAX_CONCURRENT_WEBHOOKS: usize = 64;

/// Why a webhook request was refused. Each maps to a status and a sentence the sender can act
/// on; none reveals a secret or an internal detail.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("webhooks are not configured yet: finish the GitHub App setup at /github-app/setup")]
    NotConfigured,
    #[error("missing or invalid {0} header")]
    BadHeader(&'static str),
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error("payload larger than {0} bytes")]
    TooLarge(usize),
    #[error("could not read the request body")]
    BodyRead,
    #[error("the request body did not arrive in time")]
    BodyTimeout,
    #[error(
        "unsupported content type (expected application/json or application/x-www-form-urlencoded)"
    )]
    UnsupportedMediaType,
    #[error("invalid form body: expected payload=<JSON>")]
    BadForm,
    #[error("payload is not a valid webhook JSON object: {0}")]
    BadJson(String),
    #[error("{0}; try again later")]
    Unavailable(#[from] CommitError),
}

impl WebhookError {
    fn status(&self) -> StatusCode {
        match self {
            WebhookError::NotConfigured | WebhookError::Unavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            WebhookError::BadHeader(_)
            | WebhookError::BodyRead
            | WebhookError::BadForm
            | WebhookError::BadJson(_) => StatusCode::BAD_REQUEST,
            WebhookError::Signature(_) => StatusCode::UNAUTHORIZED,
            WebhookError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            WebhookError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            WebhookError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        }
    }
}

impl IntoResponse for WebhookError {
    fn into_response(self) -> Response {
        let status = self.status();
        (status, axum::Json(json!({ "error": self.to_string() }))).into_response()
    }
}

/// What ingest needs, built once at start.
#[derive(Clone, Debug)]
pub struct Ingest {
    pub secrets: WebhookSecrets,
    pub committer: Committer,
    pub max_body_bytes: usize,
}

/// What the webhook route needs of the server's state (taken from it with axum's `FromRef`):
/// ingest, and the metrics it counts in.
#[derive(Clone, Debug)]
pub struct WebhookState {
    pub ingest: Arc<Ingest>,
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// `POST /webhooks/github`.
#[tracing::instrument(name = "webhook", skip_all, fields(delivery_id, event))]
pub async fn receive(State(state): State<WebhookState>, request: Request) -> Response {
    let started = std::time::Instant::now();
    let response = match accept(&state, request).await {
        Ok(response) => response,
        Err(error) => {
            // Logged here, inside the span, so the line carries the delivery id when known.
            tracing::warn!(status = error.status().as_u16(), error = %error, "webhook refused");
            error.into_response()
        }
    };
    state
        .metrics
        .ingest_seconds
        .get_or_create(&crate::metrics::IngestLabels {
            status: response.status().as_u16().to_string(),
        })
        .observe(started.elapsed().as_secs_f64());
    response
}

async fn accept(state: &WebhookState, request: Request) -> Result<Response, WebhookError> {
    let ingest = &state.ingest;
    if ingest.secrets.is_empty() {
        return Err(WebhookError::NotConfigured);
    }
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    let event = header_value(headers, EVENT_HEADER, MAX_EVENT_LEN)?;
    let delivery_id = header_value(headers, DELIVERY_HEADER, MAX_DELIVERY_ID_LEN)?;
    let span = tracing::Span::current();
    span.record("delivery_id", delivery_id);
    span.record("event", event);

    let signature = headers.get(SIGNATURE_HEADER).map(|v| v.as_bytes());
    if signature.is_none() {
        return Err(SignatureError::Missing.into());
    }
    let raw = read_body(headers, body, ingest.max_body_bytes).await?;
    ingest.secrets.verify(signature, &raw)?;
    let payload = decode_payload(headers, raw)?;

    if event == "ping" {
        tracing::info!("ping received");
        return Ok((StatusCode::OK, axum::Json(json!({ "status": "pong" }))).into_response());
    }
    let envelope = envelope::read(&payload).map_err(|e| WebhookError::BadJson(e.to_string()))?;
    let delivery = NewDelivery {
        delivery_id: delivery_id.to_string(),
        event: event.to_string(),
        action: envelope.action,
        installation_id: envelope.installation_id,
        repository: envelope.repository,
        payload,
        received_at_ms: now_ms(),
    };
    let answer = match ingest.committer.store(delivery).await? {
        InsertOutcome::Stored => {
            tracing::debug!("delivery stored");
            (StatusCode::ACCEPTED, "stored")
        }
        InsertOutcome::Duplicate => {
            tracing::info!("delivery seen before; not stored again");
            (StatusCode::OK, "duplicate")
        }
    };
    Ok((
        answer.0,
        axum::Json(json!({ "status": answer.1, "delivery_id": delivery_id })),
    )
        .into_response())
}

fn header_value<'h>(
    headers: &'h HeaderMap,
    name: &'static str,
    max_len: usize,
) -> Result<&'h str, WebhookError> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= max_len)
        .filter(|v| v.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or(WebhookError::BadHeader(match name {
            EVENT_HEADER => "X-GitHub-Event",
            DELIVERY_HEADER => "X-GitHub-Delivery",
            _ => "X-Hub-Signature-256",
        }))
}

async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, WebhookError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(WebhookError::TooLarge(limit));
    }
    let read = tokio::time::timeout(BODY_READ_TIMEOUT, axum::body::to_bytes(body, limit));
    read.await
        .map_err(|_| WebhookError::BodyTimeout)?
        .map_err(|e| {
            if is_length_limit(&e) {
                WebhookError::TooLarge(limit)
            } else {
                WebhookError::BodyRead
            }
        })
}

fn is_length_limit(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// GitHub sends either the JSON itself or a form with the JSON in its `payload` field.
fn decode_payload(headers: &HeaderMap, raw: Bytes) -> Result<Bytes, WebhookError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let mime = content_type.split(';').next().unwrap_or("").trim();
    match mime.to_ascii_lowercase().as_str() {
        "application/json" => Ok(raw),
        "application/x-www-form-urlencoded" => {
            #[derive(serde::Deserialize)]
            struct Form {
                payload: String,
            }
            let form: Form =
                serde_urlencoded::from_bytes(&raw).map_err(|_| WebhookError::BadForm)?;
            Ok(Bytes::from(form.payload))
        }
        _ => Err(WebhookError::UnsupportedMediaType),
    }
}
