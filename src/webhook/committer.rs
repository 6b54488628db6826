//! Group commit for ingest: concurrent webhook requests hand their delivery to one task, which
//! stores everything waiting in a single transaction and then answers each request. A request
//! is answered only after its delivery is committed, and many requests share one commit.
//!
//! The task is a thread. On SQLite it owns a connection of its own
//! ([`crate::store::IngestWriter`]): waiting for deliveries and writing them happen on one
//! thread, with no hand-off per statement.

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
    pub fn start(
        store: Store,
        stored: Arc<Notify>,
    ) -> anyhow::Result<(Self, tokio::task::JoinHandle<()>)> {
        let (queue, rx) = mpsc::channel(QUEUE_CAPACITY);
        let insert: Insert = match store.ingest_writer()? {
            Some(mut writer) => Box::new(move |batch| writer.insert(batch)),
            // PostgreSQL: the pool's async insert, driven from the commit thread.
            None => {
                let runtime = tokio::runtime::Handle::current();
                Box::new(move |batch| runtime.block_on(store.insert_deliveries(batch)))
            }
        };
        let (answers, mut answering) = mpsc::unbounded_channel::<Answers>();
        std::thread::Builder::new()
            .name("gantry-ingest".into())
            .spawn(move || run(rx, insert, &stored, &answers))?;
        // Answers a batch's requests from a task on the runtime: one wake-up crosses from the
        // commit thread per batch, and the requests' tasks are woken from inside the runtime
        // (no syscall each), instead of one cross-thread wake-up per request.
        let task = tokio::spawn(async move {
            while let Some(batch) = answering.recv().await {
                for (reply, outcome) in batch {
                    let _ = reply.send(outcome);
                }
            }
        });
        Ok((Self { queue }, task))
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

/// A committed batch's answers, sent from the commit thread to the runtime in one message.
type Answers = Vec<(Reply, Result<InsertOutcome, CommitError>)>;

/// Stores one batch, saying per delivery whether it was new.
type Insert = Box<dyn FnMut(&[NewDelivery]) -> anyhow::Result<Vec<InsertOutcome>> + Send>;

/// The commit thread: waits for deliveries, commits what is waiting, answers, again.
fn run(
    mut rx: mpsc::Receiver<Job>,
    mut insert: Insert,
    stored: &Notify,
    answers: &mpsc::UnboundedSender<Answers>,
) {
    let mut waiting: VecDeque<Job> = VecDeque::new();
    loop {
        if waiting.is_empty() {
            match wait_for_job(&mut rx) {
                Some(job) => waiting.push_back(job),
                None => return, // every handle is gone and the queue is drained
            }
        }
        while waiting.len() < MAX_BATCH
            && let Ok(job) = rx.try_recv()
        {
            waiting.push_back(job);
        }
        let batch = take_batch(&mut waiting);
        commit(stored, batch, &mut insert, answers);
    }
}

/// How long the commit thread keeps looking for the next delivery before it sleeps. Under load
/// the next one comes within this, and a thread that never sleeps need not be woken: on a small
/// VM a wake-up (the waker's syscall, the sleeping CPU's interrupt) costs tens of microseconds
/// on every request's path. Idle, the thread sleeps after this. Measured with loadgen at 8
/// connections: 50 µs gave the most deliveries/s; 20 µs and 200 µs did no better than none.
const SPIN_FOR: std::time::Duration = std::time::Duration::from_micros(50);

/// The next delivery: looked for without sleeping for [`SPIN_FOR`], then waited for.
fn wait_for_job(rx: &mut mpsc::Receiver<Job>) -> Option<Job> {
    let started = std::time::Instant::now();
    while started.elapsed() < SPIN_FOR {
        match rx.try_recv() {
            Ok(job) => return Some(job),
            Err(mpsc::error::TryRecvError::Disconnected) => return None,
            // Yield rather than spin hot: on two cores the request it waits for may need this one.
            Err(mpsc::error::TryRecvError::Empty) => std::thread::yield_now(),
        }
    }
    rx.blocking_recv()
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

/// Stores a batch in one commit with `insert`, then answers each request; if the commit fails,
/// each delivery is stored on its own, so that one bad delivery fails alone instead of taking
/// the others with it.
fn commit(
    stored: &Notify,
    batch: Vec<Job>,
    insert: &mut Insert,
    answers: &mpsc::UnboundedSender<Answers>,
) {
    let (deliveries, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
    let outcomes = match insert(&deliveries) {
        Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
        Err(error) if deliveries.len() == 1 => {
            log_failure(&deliveries[0], &error);
            vec![Err(CommitError::Store)]
        }
        Err(_) => deliveries
            .iter()
            .map(|delivery| match insert(std::slice::from_ref(delivery)) {
                Ok(outcome) => Ok(outcome[0]),
                Err(error) => {
                    log_failure(delivery, &error);
                    Err(CommitError::Store)
                }
            })
            .collect(),
    };
    if outcomes.contains(&Ok(InsertOutcome::Stored)) {
        stored.notify_one();
    }
    // Gone only when the runtime is: the requests are gone with it.
    let _ = answers.send(replies.into_iter().zip(outcomes).collect());
}

fn log_failure(delivery: &NewDelivery, error: &anyhow::Error) {
    tracing::error!(
        delivery_id = %delivery.delivery_id,
        event = %delivery.event,
        error = format!("{error:#}"),
        "storing a delivery failed"
    );
}
