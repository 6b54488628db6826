//! A run phase's log on its way to the store: lines arrive from Terraform (already masked),
//! are gathered into chunks for a moment and appended, so that a reader can follow the run live
//! without a write per line. [`PhaseLog::flush`] waits until everything so far is stored: a run
//! flushes before each state change a reader (a status, the PR comment) would look at.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::core::RunId;
use crate::executor::terraform::LogSink;
use crate::store::Store;

/// How long lines are gathered before they are written.
const GATHER: Duration = Duration::from_millis(100);
/// A chunk is written once it is this big, gathered or not.
const MAX_CHUNK_BYTES: usize = 64 * 1024;

enum Message {
    Line(String),
    /// Store what came before, then answer.
    Flush(oneshot::Sender<()>),
}

pub struct PhaseLog {
    messages: mpsc::UnboundedSender<Message>,
    writer: JoinHandle<()>,
}

impl PhaseLog {
    /// Starts the log of `phase` ("plan" or "apply") of `run_id`.
    pub fn start(store: Store, run_id: RunId, phase: &'static str) -> Self {
        let (messages, mut incoming) = mpsc::unbounded_channel::<Message>();
        let writer = tokio::spawn(async move {
            let mut chunk = String::new();
            let mut waiting: Option<oneshot::Sender<()>> = None;
            loop {
                // Gather lines for a moment after the first one, or until a flush.
                let first = if chunk.is_empty() {
                    match incoming.recv().await {
                        Some(message) => Some(message),
                        None => break,
                    }
                } else {
                    None
                };
                let deadline = tokio::time::Instant::now() + GATHER;
                let mut next = first;
                loop {
                    match next.take() {
                        Some(Message::Line(line)) => {
                            chunk.push_str(&line);
                            chunk.push('\n');
                        }
                        Some(Message::Flush(ack)) => {
                            waiting = Some(ack);
                            break;
                        }
                        None => {}
                    }
                    if chunk.len() >= MAX_CHUNK_BYTES {
                        break;
                    }
                    match tokio::time::timeout_at(deadline, incoming.recv()).await {
                        Ok(Some(message)) => next = Some(message),
                        Ok(None) | Err(_) => break,
                    }
                }
                if !chunk.is_empty() {
                    let text = std::mem::take(&mut chunk);
                    if let Err(error) = store.append_log(run_id, phase, &[text]).await {
                        tracing::error!(
                            %run_id,
                            error = format!("{error:#}"),
                            "storing a log chunk failed"
                        );
                    }
                }
                if let Some(ack) = waiting.take() {
                    let _ = ack.send(());
                }
                if incoming.is_closed() && incoming.is_empty() {
                    break;
                }
            }
        });
        Self { messages, writer }
    }

    /// Waits until every line so far is stored.
    pub async fn flush(&self) {
        let (ack, stored) = oneshot::channel();
        if self.messages.send(Message::Flush(ack)).is_ok() {
            let _ = stored.await;
        }
    }

    /// Stores every line so far and ends the log.
    pub async fn finish(self) {
        drop(self.messages);
        let _ = self.writer.await;
    }
}

impl LogSink for PhaseLog {
    fn line(&mut self, line: &str) {
        // The writer lives as long as this sender; a send can only fail after it panicked.
        let _ = self.messages.send(Message::Line(line.to_string()));
    }
}
