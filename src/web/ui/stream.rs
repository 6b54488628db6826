//! A phase's log as server-sent events: every stored chunk after `after` (so a reader can start
//! at any offset, or resume with `Last-Event-ID`), then new chunks as they are stored, and an
//! `end` event once the phase can no longer grow. Shared by the UI and the API.

use std::convert::Infallible;
use std::time::Duration;

use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;

use crate::core::RunId;
use crate::store::Store;

/// How often the store is asked for new chunks while a phase runs.
const POLL: Duration = Duration::from_millis(250);

/// `?after=N`: the last log line the client has (else `Last-Event-ID`).
#[derive(serde::Deserialize)]
pub struct AfterQuery {
    pub after: Option<i64>,
}

/// Where to start: the `after` query, or the `Last-Event-ID` a reconnecting EventSource sends.
pub fn start_after(after: Option<i64>, headers: &HeaderMap) -> i64 {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .or(after)
        .unwrap_or(0)
}

pub fn log_events(
    store: Store,
    run_id: RunId,
    phase: &'static str,
    after: i64,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    struct Cursor {
        store: Store,
        after: i64,
        pending: std::collections::VecDeque<Event>,
        ended: bool,
        first: bool,
    }
    let cursor = Cursor {
        store,
        after,
        pending: Default::default(),
        ended: false,
        first: true,
    };
    let stream = futures_util::stream::unfold(cursor, move |mut cursor| async move {
        loop {
            if let Some(event) = cursor.pending.pop_front() {
                return Some((Ok(event), cursor));
            }
            if cursor.ended {
                return None;
            }
            if !cursor.first {
                tokio::time::sleep(POLL).await;
            }
            cursor.first = false;
            // The state is read before the chunks: a phase seen ended has stored them all.
            let state = match cursor.store.run(run_id).await {
                Ok(Some(run)) => run.state,
                _ => return None,
            };
            let chunks = cursor
                .store
                .run_log(run_id, phase, cursor.after)
                .await
                .unwrap_or_default();
            for chunk in chunks {
                cursor.after = chunk.id;
                let data = serde_json::json!({ "text": chunk.chunk }).to_string();
                cursor
                    .pending
                    .push_back(Event::default().id(chunk.id.to_string()).data(data));
            }
            if !state.log_may_grow(phase) {
                cursor.ended = true;
                cursor.pending.push_back(
                    Event::default()
                        .event("end")
                        .data(serde_json::json!({ "state": state.as_str() }).to_string()),
                );
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
