//! Group commit for ingest: concurrent webhook requests hand their delivery to one task, which
//! stores everything waiting in a single transaction and then answers each request. A request
//! is answered only after its delivery is committed, and many requests share one commit.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::{Notify, mpsc, oneshot};

use crate::store::{InsertOutcome, NewDelivery, Store};

/// The most deliveries one commit takes; more wait for the next.
const MAX_BATCH: usize = 256;
/// The most payload bytes one commit takes (PostgreSQL refuses messages over 1 GiB).
const MAX_BATCH_BYTES: usize = 64 * 1024 * 1024;
/// Requests waiting for a commit; beyond this a request is answered 503 at once (GitHub marks
/// it failed and it can be redelivered) instead of piling up past GitHub's 10 s timeout.
const QUEUE_CAPACITY: usize = 1024;

type Reply = oneshot::Sender<Result<InsertOutcome, CommitError>>;

/// Why a delivery could not be stored; GitHub marks it failed and it can be redelivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CommitError {
    #[error("the delivery could not be stored")]
    Store,
    #[error("Gantry is shutting down")]
    ShuttingDown,
    #[error("too many deliveries are waiting to be stored")]
    Busy,
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
            .try_send((delivery, reply))
            .map_err(|error| match error {
                mpsc::error::TrySendError::Full(_) => CommitError::Busy,
                mpsc::error::TrySendError::Closed(_) => CommitError::ShuttingDown,
            })?;
        answer.await.map_err(|_| CommitError::ShuttingDown)?
    }
}

type Job = (NewDelivery, Reply);

async fn run(mut rx: mpsc::Receiver<Job>, store: Store, stored: Arc<Notify>) {
    let mut waiting: VecDeque<Job> = VecDeque::new();
    let mut received = Vec::with_capacity(MAX_BATCH);
    loop {
        if waiting.is_empty() {
            if rx.recv_many(&mut received, MAX_BATCH).await == 0 {
                return; // every handle is gone and the queue is drained
            }
            waiting.extend(received.drain(..));
        }
        while waiting.len() < MAX_BATCH
            && let Ok(job) = rx.try_recv()
        {
            waiting.push_back(job);
        }
        commit(&store, &stored, take_batch(&mut waiting)).await;
    }
}

/// The next batch: up to MAX_BATCH deliveries and MAX_BATCH_BYTES of payload (at least one).
fn take_batch(waiting: &mut VecDeque<Job>) -> Vec<Job> {
    let mut batch = Vec::new();
    let mut bytes = 0;
    while let Some((next, _)) = waiting.front() {
        let full = batch.len() == MAX_BATCH || bytes + next.payload.len() > MAX_BATCH_BYTES;
        if full && !batch.is_empty() {
            break;
        }
        bytes += next.payload.len();
        batch.extend(waiting.pop_front());
    }
    batch
}

/// Stores a batch in one commit; if that fails, each delivery on its own, so that one bad
/// delivery fails alone instead of taking the others with it.
async fn commit(store: &Store, stored: &Notify, batch: Vec<Job>) {
    let (deliveries, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
    let outcomes = match store.insert_deliveries(&deliveries).await {
        Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
        Err(error) if deliveries.len() == 1 => {
            log_failure(&deliveries[0], &error);
            vec![Err(CommitError::Store)]
        }
        Err(_) => {
            let mut one_by_one = Vec::with_capacity(deliveries.len());
            for delivery in &deliveries {
                one_by_one.push(
                    match store
                        .insert_deliveries(std::slice::from_ref(delivery))
                        .await
                    {
                        Ok(outcome) => Ok(outcome[0]),
                        Err(error) => {
                            log_failure(delivery, &error);
                            Err(CommitError::Store)
                        }
                    },
                );
            }
            one_by_one
        }
    };
    if outcomes.contains(&Ok(InsertOutcome::Stored)) {
        stored.notify_one();
    }
    for (reply, outcome) in replies.into_iter().zip(outcomes) {
        let _ = reply.send(outcome);
    }
}

fn log_failure(delivery: &NewDelivery, error: &anyhow::Error) {
    tracing::error!(
        delivery_id = %delivery.delivery_id,
        event = %delivery.event,
        error = format!("{error:#}"),
        "storing a delivery failed"
    );
}
