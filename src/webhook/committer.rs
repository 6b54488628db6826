//! Group commit for ingest: concurrent webhook requests hand their delivery to one task, which
//! stores everything waiting in a single transaction and then answers each request. A request
//! is answered only after its delivery is committed, and many requests share one commit.

use std::sync::Arc;

use tokio::sync::{Notify, mpsc, oneshot};

use crate::store::{InsertOutcome, NewDelivery, Store};

/// The most deliveries one commit takes; more wait for the next.
const MAX_BATCH: usize = 256;
/// Requests waiting for a commit before new ones are pushed back on (503).
const QUEUE_CAPACITY: usize = 4096;

type Reply = oneshot::Sender<Result<InsertOutcome, CommitError>>;

/// Why a delivery could not be stored; GitHub marks it failed and it can be redelivered.
#[derive(Debug, Clone, Copy, thiserror::Error)]
pub enum CommitError {
    #[error("the delivery could not be stored")]
    Store,
    #[error("Gantry is shutting down")]
    ShuttingDown,
}

/// The handle requests use; cheap to clone.
#[derive(Clone, Debug)]
pub struct Committer {
    queue: mpsc::Sender<(NewDelivery, Reply)>,
}

impl Committer {
    /// Starts the commit task. It ends once every handle is dropped and the queue is drained.
    /// `stored` is notified after each commit that stored something new.
    pub fn start(store: Store, stored: Arc<Notify>) -> (Self, tokio::task::JoinHandle<()>) {
        let (queue, rx) = mpsc::channel(QUEUE_CAPACITY);
        let task = tokio::spawn(run(rx, store, stored));
        (Self { queue }, task)
    }

    /// Stores one delivery, returning once it is committed.
    pub async fn store(&self, delivery: NewDelivery) -> Result<InsertOutcome, CommitError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((delivery, reply))
            .await
            .map_err(|_| CommitError::ShuttingDown)?;
        answer.await.map_err(|_| CommitError::ShuttingDown)?
    }
}

async fn run(mut rx: mpsc::Receiver<(NewDelivery, Reply)>, store: Store, stored: Arc<Notify>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (deliveries, replies): (Vec<_>, Vec<_>) = batch.drain(..).unzip();
        match store.insert_deliveries(&deliveries).await {
            Ok(outcomes) => {
                if outcomes.contains(&InsertOutcome::Stored) {
                    stored.notify_one();
                }
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(error) => {
                tracing::error!(
                    error = format!("{error:#}"),
                    count = deliveries.len(),
                    "storing deliveries failed"
                );
                for reply in replies {
                    let _ = reply.send(Err(CommitError::Store));
                }
            }
        }
    }
}
