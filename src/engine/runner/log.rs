//! A run phase's log on its way to the store: lines arrive from Terraform (already masked),
//! are gathered into chunks for a moment and appended, so that a reader can follow the run live
//! without a write per line.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::executor::terraform::LogSink;
use crate::store::Store;

/// How long lines are gathered before they are written.
const GATHER: Duration = Duration::from_millis(100);
/// A chunk is written once it is this big, gathered or not.
const MAX_CHUNK_BYTES: usize = 64 * 1024;

pub struct PhaseLog {
    lines: mpsc::UnboundedSender<String>,
    writer: JoinHandle<()>,
}

impl PhaseLog {
    /// Starts the log of `phase` ("plan" or "apply") of `run_id`.
    pub fn start(store: Store, run_id: i64, phase: &'static str) -> Self {
        let (lines, mut incoming) = mpsc::unbounded_channel::<String>();
        let writer = tokio::spawn(async move {
            while let Some(first) = incoming.recv().await {
                let mut chunk = first;
                chunk.push('\n');
                let deadline = tokio::time::Instant::now() + GATHER;
                while chunk.len() < MAX_CHUNK_BYTES {
                    match tokio::time::timeout_at(deadline, incoming.recv()).await {
                        Ok(Some(line)) => {
                            chunk.push_str(&line);
                            chunk.push('\n');
                        }
                        Ok(None) | Err(_) => break,
                    }
                }
                if let Err(error) = store.append_log(run_id, phase, &[chunk]).await {
                    tracing::error!(
                        run_id,
                        error = format!("{error:#}"),
                        "storing a log chunk failed"
                    );
                }
            }
        });
        Self { lines, writer }
    }

    /// Waits until every line so far is stored.
    pub async fn finish(self) {
        drop(self.lines);
        let _ = self.writer.await;
    }
}

impl LogSink for PhaseLog {
    fn line(&mut self, line: &str) {
        // The writer lives as long as this sender; a send can only fail after it panicked.
        let _ = self.lines.send(line.to_string());
    }
}
