//! Commit statuses: a run's (computed from the run when sent), one not tied to a run, and the
//! aggregate `gantry` status (with its check run in aggregate mode) summing up a commit's
//! workspaces. Each is posted only when what GitHub shows differs, and a row in doubt asks
//! GitHub first, so that a dead sender's post is not repeated.

use std::collections::BTreeMap;

use super::{Commit, OutboxWorker, SendError};
use crate::config::Untouched;
use crate::core::CommitSha;
use crate::core::github_terms::{CheckState, CommitState};
use crate::core::status;
use crate::core::{InstallationId, RunId};
use crate::engine::run_view::{look, run_url};
use crate::github::CheckRunRequest;
use crate::store::{AggregateTarget, OutboxItem, RawStatus, ShownStatus};

impl OutboxWorker {
    pub(super) async fn send_run_status(
        &self,
        run_id: RunId,
        in_doubt: bool,
    ) -> Result<(), SendError> {
        let Some((run, workspace, installation)) = self.run_to_report(run_id).await? else {
            return Ok(());
        };
        let view = look(&self.public_url, &run).status;
        let context = status::context(&workspace);
        let wanted = ShownStatus {
            run_id: Some(run.id),
            state: view.state,
            description: view.description,
            target_url: Some(run_url(&self.public_url, run.id)),
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

    pub(super) async fn send_raw_status(
        &self,
        status: &RawStatus,
        in_doubt: bool,
    ) -> Result<(), SendError> {
        let shown = self
            .store
            .shown_status(&status.repo, &status.sha, &status.context)
            .await?;
        let wanted = ShownStatus {
            run_id: None,
            state: status.state,
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
        installation_id: InstallationId,
        repo: &str,
        sha: &CommitSha,
    ) -> anyhow::Result<()> {
        if !self.feedback.aggregates() {
            return Ok(());
        }
        let target = AggregateTarget {
            installation_id,
            repo: repo.to_string(),
            sha: sha.clone(),
        };
        self.store
            .enqueue_outbox(&[OutboxItem::aggregate(target)])
            .await
    }

    pub(super) async fn send_aggregate(
        &self,
        target: &AggregateTarget,
        in_doubt: bool,
    ) -> Result<(), SendError> {
        // What each context shows, and over that what each workspace's newest run at this
        // commit says now: a workspace still planning keeps the sum pending even before its
        // own status went out (statuses are sent results first, not in order).
        let mut by_context: BTreeMap<String, CommitState> = self
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
            by_context.insert(status::context(&workspace), status::github_state(state));
        }
        let states: Vec<CommitState> = by_context.values().copied().collect();
        if states.is_empty() {
            return Ok(());
        }
        let view = status::aggregate(&states);
        let wanted = ShownStatus {
            run_id: None,
            state: view.state,
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
        state: CommitState,
        description: &str,
    ) -> Result<(), SendError> {
        let name = status::AGGREGATE_CONTEXT;
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
                target.installation_id,
                &target.repo,
                existing,
                &CheckRunRequest {
                    name,
                    head_sha: &target.sha,
                    external_id: "",
                    details_url: self.public_url.as_str(),
                    state: CheckState::of_commit_state(state),
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
                    commit.installation,
                    commit.repo,
                    commit.sha,
                    &crate::github::StatusRequest {
                        context,
                        state: wanted.state,
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
            .latest_status(commit.installation, commit.repo, commit.sha, context)
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
}
