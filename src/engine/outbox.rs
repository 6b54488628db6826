//! Sends what the outbox holds to GitHub: run statuses (computed from the run when sent, so a
//! burst of transitions costs one request), other statuses, the pull request comment,
//! reactions and replies. A failure GitHub may get over (5xx, rate limits, no answer) is
//! retried with backoff; one it will not (4xx) is recorded and dropped. Results go first
//! (the store's claim order); when a rate limit says to wait, the rest of a batch goes back
//! unsent, so that what became due meanwhile is weighed against it again.

use std::sync::Arc;
use std::time::Duration;

use sha2::Digest;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::config::{FeedbackConfig, Untouched};
use crate::core::checks::{changes_from_json, check_view};
use crate::core::comment::{self, MAX_COMMENT_CHARS, WorkspacePlan};
use crate::core::run::RunState;
use crate::core::status::{self, first_error_line};
use crate::github::{CheckRunRequest, GitHub, GitHubError};
use crate::metrics::{Metrics, OutboxLabels};
use crate::store::{
    AggregateTarget, OutboxItem, OutboxKind, OutboxRow, RawCheck, RawStatus, Reaction, Reply,
    RunDetail, ShownStatus, Store,
};

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
}

impl From<GitHubError> for SendError {
    fn from(error: GitHubError) -> Self {
        if let Some(wait) = error.retry_after() {
            return SendError::Wait(error.to_string(), wait);
        }
        match error.status() {
            // Rate limits (403/429) and server errors pass; other refusals do not.
            Some(403 | 429) | Some(500..) | None => SendError::Passing(error.to_string()),
            Some(_) => SendError::Final(error.to_string()),
        }
    }
}

impl From<anyhow::Error> for SendError {
    fn from(error: anyhow::Error) -> Self {
        SendError::Passing(format!("{error:#}"))
    }
}

/// The commit a status is for, and the installation that posts it.
struct Commit<'a> {
    installation: i64,
    repo: &'a str,
    sha: &'a str,
}

pub struct OutboxWorker {
    store: Store,
    github: Arc<GitHub>,
    public_url: Url,
    feedback: FeedbackConfig,
    metrics: Arc<Metrics>,
}

impl OutboxWorker {
    pub fn new(
        store: Store,
        github: Arc<GitHub>,
        public_url: Url,
        feedback: FeedbackConfig,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            store,
            github,
            public_url,
            feedback,
            metrics,
        }
    }

    /// The page a status or comment links to for a run.
    pub fn run_url(public_url: &Url, run_id: i64) -> String {
        format!("{}runs/{run_id}", public_url.as_str())
    }

    pub async fn run(self, cancel: CancellationToken) {
        match self.store.reset_sending_outbox().await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(rows = n, "outbox rows a stop left in flight are sent again"),
            Err(error) => tracing::error!(error = format!("{error:#}"), "outbox reset failed"),
        }
        let hold_ms = i64::try_from(self.feedback.hold_in_between.as_millis()).unwrap_or(0);
        // When a rate limit lets the next row go: looked at then, not a poll later.
        let mut allowed_at: Option<tokio::time::Instant> = None;
        while !cancel.is_cancelled() {
            let rows = match self.store.claim_outbox(BATCH, hold_ms).await {
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

    async fn send(&self, row: &OutboxRow) -> Result<(), SendError> {
        let kind = OutboxKind::parse(&row.kind)
            .ok_or_else(|| SendError::Final(format!("unknown outbox kind {}", row.kind)))?;
        let payload = |what: &str| SendError::Final(format!("bad {what} payload"));
        match kind {
            OutboxKind::RunStatus | OutboxKind::RawStatus if !self.feedback.commit_statuses => {
                Ok(())
            }
            OutboxKind::RunCheck | OutboxKind::RawCheck if !self.feedback.check_runs => Ok(()),
            OutboxKind::RawCheck => {
                let check: RawCheck =
                    serde_json::from_str(&row.payload).map_err(|_| payload("check"))?;
                let existing = self
                    .store
                    .raw_check_id(&check.repo, &check.sha, &check.name)
                    .await?;
                let id = self
                    .github
                    .put_check_run(
                        check.installation_id as u64,
                        &check.repo,
                        existing,
                        &CheckRunRequest {
                            name: &check.name,
                            head_sha: &check.sha,
                            external_id: "",
                            details_url: &check.details_url,
                            status: &check.status,
                            conclusion: check.conclusion.as_deref(),
                            title: &check.title,
                            summary: &check.summary,
                        },
                    )
                    .await?;
                self.store
                    .set_raw_check_id(&check.repo, &check.sha, &check.name, id)
                    .await?;
                Ok(())
            }
            OutboxKind::AggregateStatus if !self.feedback.aggregates() => Ok(()),
            OutboxKind::AggregateStatus => {
                let target: AggregateTarget =
                    serde_json::from_str(&row.payload).map_err(|_| payload("aggregate"))?;
                self.send_aggregate(&target, row.in_doubt).await
            }
            OutboxKind::RunStatus => {
                let run_id: i64 = row.key.parse().map_err(|_| payload("run status"))?;
                self.send_run_status(run_id, row.in_doubt).await
            }
            OutboxKind::RunCheck => {
                let run_id: i64 = row.key.parse().map_err(|_| payload("run check"))?;
                self.send_run_check(run_id).await
            }
            OutboxKind::RawStatus => {
                let status: RawStatus =
                    serde_json::from_str(&row.payload).map_err(|_| payload("status"))?;
                self.send_raw_status(&status, row.in_doubt).await
            }
            OutboxKind::PrComment => {
                let (repo, number) = row
                    .key
                    .rsplit_once('#')
                    .and_then(|(repo, n)| Some((repo, n.parse::<i64>().ok()?)))
                    .ok_or_else(|| payload("comment"))?;
                self.send_pr_comment(repo, number).await
            }
            OutboxKind::Reaction => {
                let reaction: Reaction =
                    serde_json::from_str(&row.payload).map_err(|_| payload("reaction"))?;
                self.github
                    .add_reaction(
                        reaction.installation_id as u64,
                        &reaction.repo,
                        reaction.comment_id,
                        &reaction.content,
                    )
                    .await?;
                Ok(())
            }
            OutboxKind::Reply => {
                let reply: Reply =
                    serde_json::from_str(&row.payload).map_err(|_| payload("reply"))?;
                self.github
                    .create_comment(
                        reply.installation_id as u64,
                        &reply.repo,
                        reply.pr_number as u64,
                        &reply.body,
                    )
                    .await?;
                Ok(())
            }
        }
    }

    /// What a run's status says now, from the run as stored.
    async fn run_view(&self, run: &RunDetail) -> anyhow::Result<status::StatusView> {
        let error = self.terraform_error(run).await?;
        Ok(status::run_status(&run.facts(error.as_deref())))
    }

    /// Terraform's first error line in the log of the phase an errored run failed in: a
    /// better reason than the stored one.
    async fn terraform_error(&self, run: &RunDetail) -> anyhow::Result<Option<String>> {
        if run.state != RunState::Errored {
            return Ok(None);
        }
        let phase = if run.reached_apply { "apply" } else { "plan" };
        let log: String = self
            .store
            .run_log(run.id, phase, 0)
            .await?
            .into_iter()
            .map(|c| c.chunk)
            .collect();
        Ok(first_error_line(&log))
    }

    /// The run, its workspace's name and its installation; None when the run is gone.
    async fn run_to_report(
        &self,
        run_id: i64,
    ) -> Result<Option<(RunDetail, String, i64)>, SendError> {
        let Some(run) = self.store.run(run_id).await? else {
            return Ok(None);
        };
        let Some(workspace) = self.store.workspace(run.workspace_id).await? else {
            return Ok(None);
        };
        let installation = run
            .installation_id
            .ok_or_else(|| SendError::Final("the run has no installation to post with".into()))?;
        Ok(Some((
            run,
            workspace.spec.name.as_str().to_string(),
            installation,
        )))
    }

    async fn send_run_check(&self, run_id: i64) -> Result<(), SendError> {
        let Some((run, workspace, installation)) = self.run_to_report(run_id).await? else {
            return Ok(());
        };
        let error = self.terraform_error(&run).await?;
        let changes = run
            .plan
            .as_ref()
            .map(|p| changes_from_json(&p.resource_changes))
            .unwrap_or_default();
        let url = Self::run_url(&self.public_url, run.id);
        let view = check_view(&run.facts(error.as_deref()), &changes, &url);
        let shown = serde_json::to_string(&view).unwrap_or_default();
        let (existing, last_shown) = self.store.run_check(run.id).await?;
        if last_shown.as_deref() == Some(shown.as_str()) {
            return Ok(());
        }
        let name = status::context(&workspace);
        let external_id = run.id.to_string();
        let id = self
            .github
            .put_check_run(
                installation as u64,
                &run.repo,
                existing,
                &CheckRunRequest {
                    name: &name,
                    head_sha: &run.commit_sha,
                    external_id: &external_id,
                    details_url: &url,
                    status: view.status,
                    conclusion: view.conclusion,
                    title: &view.title,
                    summary: &view.summary,
                },
            )
            .await?;
        self.store.set_run_check(run.id, id, &shown).await?;
        Ok(())
    }

    async fn send_run_status(&self, run_id: i64, in_doubt: bool) -> Result<(), SendError> {
        let Some((run, workspace, installation)) = self.run_to_report(run_id).await? else {
            return Ok(());
        };
        let view = self.run_view(&run).await?;
        let context = status::context(&workspace);
        let wanted = ShownStatus {
            run_id: Some(run.id),
            state: view.state.to_string(),
            description: view.description,
            target_url: Some(Self::run_url(&self.public_url, run.id)),
        };
        let shown = self
            .store
            .shown_status(&run.repo, &run.commit_sha, &context)
            .await?;
        if let Some(shown) = &shown {
            if shown.run_id > wanted.run_id {
                return Ok(()); // a newer run owns this commit's context
            }
            if shown == &wanted {
                // GitHub shows it already; the aggregate may still be due (a failed enqueue).
                self.aggregate_later(installation, &run.repo, &run.commit_sha)
                    .await?;
                return Ok(());
            }
        }
        let commit = Commit {
            installation,
            repo: &run.repo,
            sha: &run.commit_sha,
        };
        self.post_status_once(in_doubt, &commit, &context, &wanted)
            .await?;
        self.aggregate_later(installation, &run.repo, &run.commit_sha)
            .await?;
        Ok(())
    }

    async fn send_raw_status(&self, status: &RawStatus, in_doubt: bool) -> Result<(), SendError> {
        let shown = self
            .store
            .shown_status(&status.repo, &status.sha, &status.context)
            .await?;
        let wanted = ShownStatus {
            run_id: None,
            state: status.state.clone(),
            description: status.description.clone(),
            target_url: status.target_url.clone(),
        };
        if let Some(shown) = &shown
            && (shown.run_id.is_some() || shown == &wanted)
        {
            return Ok(()); // a run's status wins; an equal one is not sent again
        }
        let commit = Commit {
            installation: status.installation_id,
            repo: &status.repo,
            sha: &status.sha,
        };
        self.post_status_once(in_doubt, &commit, &status.context, &wanted)
            .await?;
        self.aggregate_later(status.installation_id, &status.repo, &status.sha)
            .await?;
        Ok(())
    }

    /// A context of the commit changed: its aggregate status is due (computed when sent, from
    /// what every context then shows).
    async fn aggregate_later(
        &self,
        installation_id: i64,
        repo: &str,
        sha: &str,
    ) -> anyhow::Result<()> {
        if !self.feedback.aggregates() {
            return Ok(());
        }
        let target = AggregateTarget {
            installation_id,
            repo: repo.to_string(),
            sha: sha.to_string(),
        };
        self.store
            .enqueue_outbox(&[OutboxItem::aggregate(&target)])
            .await
    }

    async fn send_aggregate(
        &self,
        target: &AggregateTarget,
        in_doubt: bool,
    ) -> Result<(), SendError> {
        // What each context shows, and over that what each workspace's newest run at this
        // commit says now: a workspace still planning keeps the sum pending even before its
        // own status went out (statuses are sent results first, not in order).
        let mut by_context: std::collections::BTreeMap<String, String> = self
            .store
            .shown_statuses(&target.repo, &target.sha)
            .await?
            .into_iter()
            .filter(|(context, _)| context != status::AGGREGATE_CONTEXT)
            .collect();
        let runs = self
            .store
            .commit_run_states(&target.repo, &target.sha)
            .await?;
        for (workspace, state) in runs {
            let state = status::github_state(state).to_string();
            by_context.insert(status::context(&workspace), state);
        }
        let states: Vec<&str> = by_context.values().map(String::as_str).collect();
        if states.is_empty() {
            return Ok(());
        }
        let view = status::aggregate(&states);
        let wanted = ShownStatus {
            run_id: None,
            state: view.state.to_string(),
            description: view.description,
            target_url: None,
        };
        let current = self
            .store
            .shown_status(&target.repo, &target.sha, status::AGGREGATE_CONTEXT)
            .await?;
        // In aggregate mode a `gantry` check run shows the same sum; each is written only
        // when what it shows changed, so a retry after one of them went out sends the other.
        let check_shown = format!("{}: {}", wanted.state, wanted.description);
        let check_due = self.feedback.check_runs
            && self.feedback.untouched == Untouched::Aggregate
            && self
                .store
                .raw_check_shown(&target.repo, &target.sha, status::AGGREGATE_CONTEXT)
                .await?
                .as_deref()
                != Some(check_shown.as_str());
        if current.as_ref() != Some(&wanted) {
            let commit = Commit {
                installation: target.installation_id,
                repo: &target.repo,
                sha: &target.sha,
            };
            self.post_status_once(in_doubt, &commit, status::AGGREGATE_CONTEXT, &wanted)
                .await?;
        }
        if check_due {
            self.put_aggregate_check(target, view.state, &wanted.description)
                .await?;
            self.store
                .set_raw_check_shown(
                    &target.repo,
                    &target.sha,
                    status::AGGREGATE_CONTEXT,
                    &check_shown,
                )
                .await?;
        }
        Ok(())
    }

    /// The `gantry` check run beside the `gantry` status, in aggregate mode (where it is the
    /// one check branch protection requires).
    async fn put_aggregate_check(
        &self,
        target: &AggregateTarget,
        state: &str,
        description: &str,
    ) -> Result<(), SendError> {
        let name = status::AGGREGATE_CONTEXT;
        let (check_status, conclusion) = match state {
            "pending" => ("in_progress", None),
            "success" => ("completed", Some("success")),
            "failure" => ("completed", Some("failure")),
            _ => ("completed", Some("cancelled")),
        };
        let existing = self
            .store
            .raw_check_id(&target.repo, &target.sha, name)
            .await?;
        let summary = format!(
            "{description}.\n\nEvery workspace of the repository, summed up: each touched one by \
             its run, each untouched one as no changes."
        );
        let id = self
            .github
            .put_check_run(
                target.installation_id as u64,
                &target.repo,
                existing,
                &CheckRunRequest {
                    name,
                    head_sha: &target.sha,
                    external_id: "",
                    details_url: self.public_url.as_str(),
                    status: check_status,
                    conclusion,
                    title: description,
                    summary: &summary,
                },
            )
            .await?;
        self.store
            .set_raw_check_id(&target.repo, &target.sha, name, id)
            .await?;
        Ok(())
    }

    /// Posts `wanted` to a context of a commit and records that GitHub shows it. When the row
    /// is in doubt (an earlier try may have posted it already), GitHub is asked first, and a
    /// status it shows already is only recorded: a dead sender's post is not repeated.
    async fn post_status_once(
        &self,
        in_doubt: bool,
        commit: &Commit<'_>,
        context: &str,
        wanted: &ShownStatus,
    ) -> Result<(), SendError> {
        let posted = in_doubt && self.github_shows(commit, context, wanted).await;
        if !posted {
            self.github
                .post_status(
                    commit.installation as u64,
                    commit.repo,
                    commit.sha,
                    &crate::github::StatusRequest {
                        context,
                        state: &wanted.state,
                        description: &wanted.description,
                        target_url: wanted.target_url.as_deref(),
                    },
                )
                .await?;
        }
        self.store
            .record_shown_status(commit.repo, commit.sha, context, wanted)
            .await?;
        Ok(())
    }

    /// Whether GitHub's newest status for `context` is `wanted`. Not knowing counts as no: a
    /// status posted twice is better than one never posted.
    async fn github_shows(&self, commit: &Commit<'_>, context: &str, wanted: &ShownStatus) -> bool {
        let latest = self
            .github
            .latest_status(commit.installation as u64, commit.repo, commit.sha, context)
            .await;
        match latest {
            Ok(Some(shown)) => {
                shown.state == wanted.state
                    && shown.description.as_deref().unwrap_or("") == wanted.description
                    && shown.target_url == wanted.target_url
            }
            Ok(None) => false,
            Err(error) => {
                tracing::warn!(error = %error, "could not read the commit's statuses; posting");
                false
            }
        }
    }

    async fn send_pr_comment(&self, repo: &str, number: i64) -> Result<(), SendError> {
        let mut plans = Vec::new();
        let mut installation = None;
        let mut any_result = false;
        for run_id in self.store.pull_request_runs(repo, number).await? {
            let Some(run) = self.store.run(run_id).await? else {
                continue;
            };
            let Some(workspace) = self.store.workspace(run.workspace_id).await? else {
                continue;
            };
            installation = installation.or(run.installation_id);
            any_result |= run.state.is_final() || run.state == RunState::Planned;
            let output: String = self
                .store
                .run_log(run.id, "plan", 0)
                .await?
                .into_iter()
                .map(|c| c.chunk)
                .collect();
            let view = self.run_view(&run).await?;
            let output = status::plain_text(&output);
            plans.push(WorkspacePlan {
                workspace: workspace.spec.name.as_str().to_string(),
                state: run.state.to_string(),
                summary: view.description,
                run_url: Self::run_url(&self.public_url, run.id),
                commit_sha: run.commit_sha.clone(),
                output,
            });
        }
        let Some(installation) = installation else {
            return Ok(());
        };
        // Written once a result is in: a comment of plans still queued says nothing a status
        // does not. (The result's change queues the comment again.)
        if !any_result {
            return Ok(());
        }
        let installation = installation as u64;
        let body = comment::render(&plans, MAX_COMMENT_CHARS);
        let body_sha = hex::encode(sha2::Sha256::digest(body.as_bytes()));
        let known = match self.store.pr_comment(repo, number).await? {
            // Edited only when something it shows changed.
            Some((_, Some(shown))) if shown == body_sha => return Ok(()),
            Some((id, _)) => Some(id),
            None => {
                self.github
                    .find_comment(installation, repo, number as u64, comment::MARKER)
                    .await?
            }
        };
        if let Some(id) = known {
            match self
                .github
                .update_comment(installation, repo, id, &body)
                .await
            {
                Ok(()) => {
                    self.store
                        .set_pr_comment(repo, number, id, Some(&body_sha))
                        .await?;
                    return Ok(());
                }
                // Deleted, or not ours to edit any more: make a new one. (A 403 that is a
                // rate limit is not a refusal: wait, and edit it then.)
                Err(error)
                    if error.retry_after().is_none()
                        && matches!(error.status(), Some(403 | 404)) => {}
                Err(error) => return Err(error.into()),
            }
        }
        let id = self
            .github
            .create_comment(installation, repo, number as u64, &body)
            .await?;
        self.store
            .set_pr_comment(repo, number, id, Some(&body_sha))
            .await?;
        Ok(())
    }
}

/// 1 s, 2 s, 4 s … capped at 5 minutes, each with up to 25 % of random jitter so that rows
/// failed together are not retried together.
fn backoff_ms(attempts: i32) -> i64 {
    let base = (1000_i64 << attempts.clamp(0, 20)).min(300_000);
    base + rand::random_range(0..=base / 4)
}
