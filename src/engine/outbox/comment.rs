//! The pull request's one Gantry comment: every workspace's plan, written once a result is in
//! and edited only when what it shows changed.

use sha2::Digest;

use super::{OutboxWorker, SendError};
use crate::core::PrNumber;
use crate::core::comment::{self, MAX_COMMENT_CHARS, WorkspacePlan};
use crate::core::policy::policy_view;
use crate::core::status;
use crate::engine::run_view::look;

impl OutboxWorker {
    pub(super) async fn send_pr_comment(
        &self,
        repo: &str,
        number: PrNumber,
    ) -> Result<(), SendError> {
        let mut plans = Vec::new();
        let mut installation = None;
        let mut any_result = false;
        for run_id in self.store.pull_request_runs(repo, number).await? {
            let Some(run) = self.store.run(run_id).await? else {
                continue;
            };
            installation = installation.or(run.installation_id);
            any_result |= run.state.is_result();
            let output = self.store.phase_log_text(run.id, "plan").await?;
            let look = look(&self.public_url, &run);
            let output = status::plain_text(&output);
            let outcomes = self.store.policy_checks(run.id).await?;
            // A speculative plan never waits on its check, and is never overridden.
            let policy = (!outcomes.is_empty()).then(|| {
                let view = policy_view(&outcomes, false, None);
                (view.title, view.summary)
            });
            plans.push(WorkspacePlan {
                workspace: run.workspace_name.clone(),
                state: run.state.to_string(),
                summary: look.status.description,
                run_url: look.url,
                commit_sha: run.commit_sha.clone(),
                output,
                policy,
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
        let body = comment::render(&plans, MAX_COMMENT_CHARS);
        let body_sha = hex::encode(sha2::Sha256::digest(body.as_bytes()));
        let known = match self.store.pr_comment(repo, number).await? {
            // Edited only when something it shows changed.
            Some((_, Some(shown))) if shown == body_sha => return Ok(()),
            Some((id, _)) => Some(id),
            None => {
                self.github
                    .find_comment(installation, repo, number, comment::MARKER)
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
            .create_comment(installation, repo, number, &body)
            .await?;
        self.store
            .set_pr_comment(repo, number, id, Some(&body_sha))
            .await?;
        Ok(())
    }
}
