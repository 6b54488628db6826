//! Sends what the outbox holds to GitHub: run statuses (computed from the run when sent, so a
//! burst of transitions costs one request), other statuses, the pull request comment,
//! reactions and replies. A failure GitHub may get over (5xx, rate limits, no answer) is
//! retried with backoff; one it will not (4xx) is recorded and dropped. Results go first
//! (the store's claim order); when a rate limit says to wait, the rest of a batch goes back
//! unsent, so that what became due meanwhile is weighed against it again.

mod checks;
mod comment;
mod drift_issue;
mod notifications;
mod policy;
mod statuses;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use url::Url;

use crate::config::FeedbackConfig;
use crate::core::CommitSha;
use crate::core::{InstallationId, RunId};
use crate::github::{GitHub, GitHubError};
use crate::metrics::{Metrics, OutboxLabels};
use crate::store::{Message, OutboxRow, RunDetail, Store};

/// Rows taken at a time.
const BATCH: i64 = 32;
/// Looked at this often even without a wake-up (retries that came due, other replicas).
const IDLE_POLL: Duration = Duration::from_secs(1);
/// A row that keeps failing for passing reasons is given up after this many tries.
const MAX_ATTEMPTS: i32 = 12;

enum SendError {
    /// Try again later.
    Passing(String),
    /// A rate limit (GitHub's, or Gantry's own allowance) says to wait this long; not a
    /// failed try.
    Wait(String, Duration),
    /// GitHub refused it for good.
    Final(String),
    /// Not now, for a reason that is no failure (an earlier notification goes first): tried
    /// again after this long, without counting a try or holding anything else back.
    Later(String, Duration),
}

impl From<GitHubError> for SendError {
    fn from(error: GitHubError) -> Self {
        if let Some(wait) = error.retry_after() {
            SendError::Wait(error.to_string(), wait)
        } else if error.is_final() {
            SendError::Final(error.to_string())
        } else {
            SendError::Passing(error.to_string())
        }
    }
}

impl From<anyhow::Error> for SendError {
    fn from(error: anyhow::Error) -> Self {
        SendError::Passing(format!("{error:#}"))
    }
}

/// The commit a status is for, and the installation that posts it.
pub(super) struct Commit<'a> {
    installation: InstallationId,
    repo: &'a str,
    sha: &'a CommitSha,
}

pub struct OutboxWorker {
    store: Store,
    github: Arc<GitHub>,
    public_url: Url,
    feedback: FeedbackConfig,
    metrics: Arc<Metrics>,
    /// Notification receivers (not GitHub).
    notifier: Arc<crate::notify::Notifier>,
    /// Which rows this worker sends: None all, Some(true) notifications, Some(false) the rest.
    lane: Option<bool>,
}

impl OutboxWorker {
    pub fn new(
        store: Store,
        github: Arc<GitHub>,
        public_url: Url,
        feedback: FeedbackConfig,
        metrics: Arc<Metrics>,
        notifier: Arc<crate::notify::Notifier>,
    ) -> Self {
        Self {
            store,
            github,
            public_url,
            feedback,
            metrics,
            notifier,
            lane: None,
        }
    }

    /// A worker for notifications only (`true`), or for everything but them (`false`): two
    /// workers, so that a receiver that is slow or down never holds GitHub's feedback up.
    pub fn lane(self, notifications: bool) -> Self {
        Self {
            lane: Some(notifications),
            ..self
        }
    }

    /// Rows a stop left in flight are to be sent again: called once, before any worker of this
    /// process starts (a second call would take back rows a running worker is sending).
    pub async fn recover_in_flight(store: &Store) {
        match store.reset_sending_outbox().await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(rows = n, "outbox rows a stop left in flight are sent again"),
            Err(error) => tracing::error!(error = format!("{error:#}"), "outbox reset failed"),
        }
    }

    pub async fn run(self, cancel: CancellationToken) {
        let hold_ms = i64::try_from(self.feedback.hold_in_between.as_millis()).unwrap_or(0);
        // When a rate limit lets the next row go: looked at then, not a poll later.
        let mut allowed_at: Option<tokio::time::Instant> = None;
        while !cancel.is_cancelled() {
            let claimed = self.store.claim_outbox_lane(BATCH, hold_ms, self.lane);
            let rows = match claimed.await {
                Ok(rows) => rows,
                Err(error) => {
                    tracing::error!(error = format!("{error:#}"), "reading the outbox failed");
                    Vec::new()
                }
            };
            if rows.is_empty() {
                let idle = tokio::time::Instant::now() + IDLE_POLL;
                let until = allowed_at.take().map_or(idle, |at| at.min(idle));
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = self.store.outbox_changed() => {}
                    _ = tokio::time::sleep_until(until) => {}
                }
                continue;
            }
            let mut rows = rows.into_iter();
            while let Some(row) = rows.next() {
                if let Some(wait) = self.deliver(row).await {
                    self.put_back(rows.by_ref(), wait).await;
                    let wait = Duration::from_millis(u64::try_from(wait).unwrap_or(0));
                    allowed_at = Some(tokio::time::Instant::now() + wait);
                }
            }
        }
    }

    /// Rows claimed but not tried: back to pending after `wait`, without counting a try.
    async fn put_back(&self, rows: impl Iterator<Item = OutboxRow>, wait: i64) {
        for row in rows {
            let error = "held back by a rate limit before it was tried";
            if let Err(error) = self.store.outbox_retry(row.id, error, wait, false).await {
                tracing::error!(
                    error = format!("{error:#}"),
                    "putting an outbox row back failed"
                );
            }
        }
    }

    /// Sends one row and records how it went; returns the wait a rate limit asked for.
    async fn deliver(&self, row: OutboxRow) -> Option<i64> {
        let span = tracing::info_span!("outbox", id = row.id, kind = %row.kind, key = %row.key);
        let _enter = span.enter();
        let result = self.send(&row).await;
        let counted = match &result {
            Ok(()) => "sent",
            Err(SendError::Passing(_)) if row.attempts + 1 < MAX_ATTEMPTS => "retried",
            Err(SendError::Wait(..)) => "rate_limited",
            Err(SendError::Later(..)) => "deferred",
            Err(_) => "failed",
        };
        self.metrics
            .outbox
            .get_or_create(&OutboxLabels {
                kind: row.kind.clone(),
                result: counted.into(),
            })
            .inc();
        let mut waited = None;
        let stored = match result {
            Ok(()) => self.store.outbox_sent(row.id).await,
            Err(SendError::Final(error)) => {
                tracing::warn!(error, "GitHub refused; not retried");
                self.store.outbox_failed(row.id, &error).await
            }
            Err(SendError::Passing(error)) if row.attempts + 1 >= MAX_ATTEMPTS => {
                tracing::error!(error, "giving up after {MAX_ATTEMPTS} tries");
                self.store.outbox_failed(row.id, &error).await
            }
            Err(SendError::Passing(error)) => {
                let delay = backoff_ms(row.attempts);
                tracing::warn!(error, delay_ms = delay, "sending failed; will retry");
                self.store.outbox_retry(row.id, &error, delay, true).await
            }
            Err(SendError::Later(why, wait)) => {
                let delay = i64::try_from(wait.as_millis()).unwrap_or(1000);
                self.store.outbox_retry(row.id, &why, delay, false).await
            }
            Err(SendError::Wait(error, wait)) => {
                let delay = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX / 2);
                tracing::info!(error, delay_ms = delay, "rate limited; will send later");
                waited = Some(delay);
                self.store.outbox_retry(row.id, &error, delay, false).await
            }
        };
        if let Err(error) = stored {
            tracing::error!(
                error = format!("{error:#}"),
                "recording an outbox row failed"
            );
        }
        waited
    }

    /// Sends what the row asks for, unless feedback of its kind is turned off.
    async fn send(&self, row: &OutboxRow) -> Result<(), SendError> {
        let message = row
            .message
            .as_ref()
            .map_err(|e| SendError::Final(e.clone()))?;
        let feedback = &self.feedback;
        match message {
            Message::RunStatus { .. } | Message::RawStatus(_) if !feedback.commit_statuses => {
                Ok(())
            }
            Message::RunCheck { .. } | Message::RawCheck(_) if !feedback.check_runs => Ok(()),
            Message::AggregateStatus(_) if !feedback.aggregates() => Ok(()),
            Message::RunStatus { run_id } => self.send_run_status(*run_id, row.in_doubt).await,
            Message::RunCheck { run_id } => self.send_run_check(*run_id).await,
            Message::PolicyCheck { run_id } => self.send_policy_check(*run_id).await,
            Message::RawStatus(status) => self.send_raw_status(status, row.in_doubt).await,
            Message::RawCheck(check) => self.send_raw_check(check).await,
            Message::AggregateStatus(target) => self.send_aggregate(target, row.in_doubt).await,
            Message::PrComment { repo, pr_number } => self.send_pr_comment(repo, *pr_number).await,
            Message::Reaction(reaction) => {
                let installation = reaction.installation_id;
                self.github
                    .add_reaction(
                        installation,
                        &reaction.repo,
                        reaction.comment_id,
                        &reaction.content,
                    )
                    .await?;
                Ok(())
            }
            Message::Notification(notice) => self.send_notification(row, notice).await,
            Message::DriftIssue { workspace_id } => self.send_drift_issue(*workspace_id).await,
            Message::Reply(reply) => {
                let (installation, number) = (reply.installation_id, reply.pr_number);
                self.github
                    .create_comment(installation, &reply.repo, number, &reply.body)
                    .await?;
                Ok(())
            }
        }
    }

    /// The run, its workspace's name and its installation; None when the run is gone.
    async fn run_to_report(
        &self,
        run_id: RunId,
    ) -> Result<Option<(RunDetail, String, InstallationId)>, SendError> {
        let Some(run) = self.store.run(run_id).await? else {
            return Ok(None);
        };
        let installation = run
            .installation_id
            .ok_or_else(|| SendError::Final("the run has no installation to post with".into()))?;
        let workspace = run.workspace_name.clone();
        Ok(Some((run, workspace, installation)))
    }
}

/// 1 s, 2 s, 4 s … capped at 5 minutes, each with up to 25 % of random jitter so that rows
/// failed together are not retried together.
fn backoff_ms(attempts: i32) -> i64 {
    let base = (1000_i64 << attempts.clamp(0, 20)).min(300_000);
    base + rand::random_range(0..=base / 4)
}
