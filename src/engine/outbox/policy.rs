//! A run's policy check on GitHub: a check run `gantry/<workspace>/policy` with one line a
//! policy (or, with check runs off, a commit status of that context), computed from the
//! stored outcomes when sent, overridden ones naming who and why.

use super::{OutboxWorker, SendError};
use crate::core::RunId;
use crate::core::policy::{latest_override, policy_context, policy_view};
use crate::core::run::RunState;
use crate::engine::run_view::run_url;
use crate::store::{RawCheck, RawStatus};

impl OutboxWorker {
    pub(super) async fn send_policy_check(&self, run_id: RunId) -> Result<(), SendError> {
        let Some((run, workspace, installation)) = self.run_to_report(run_id).await? else {
            return Ok(());
        };
        let outcomes = self.store.policy_checks(run.id).await?;
        if outcomes.is_empty() {
            return Ok(());
        }
        let timeline = self.store.run_timeline(run.id).await?;
        let overridden = latest_override(
            timeline
                .iter()
                .map(|e| (e.state.as_str(), e.cause.as_deref(), e.detail.as_deref())),
        );
        let waiting = run.state == RunState::PolicyOverride;
        let view = policy_view(&outcomes, waiting, overridden);
        let name = policy_context(&workspace);
        let url = run_url(&self.public_url, run.id);
        if self.feedback.check_runs {
            let check = RawCheck {
                installation_id: installation,
                repo: run.repo.clone(),
                sha: run.commit_sha.clone(),
                name,
                state: view.check,
                title: view.title,
                summary: view.summary,
                details_url: url,
            };
            self.send_raw_check(&check).await
        } else if self.feedback.commit_statuses {
            let status = RawStatus {
                installation_id: installation,
                repo: run.repo.clone(),
                sha: run.commit_sha.clone(),
                context: name,
                state: view.status,
                description: view.title,
                target_url: Some(url),
            };
            self.send_raw_status(&status, false).await
        } else {
            Ok(())
        }
    }
}
