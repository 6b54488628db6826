//! A run's policy check on GitHub: a check run `gantry/<workspace>/policy` with one line a
//! policy (or, with check runs off, a commit status of that context), computed from the
//! stored outcomes when sent, overridden ones naming who and why.

use super::{OutboxWorker, SendError};
use crate::core::RunId;
use crate::core::policy::{policy_context, policy_view};
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
        // An override is the move out of policy_override that a person made.
        let timeline = self.store.run_timeline(run.id).await?;
        let overridden = timeline.iter().find_map(|event| {
            let by = event.cause.as_deref()?.strip_prefix("person:")?;
            let reason = event
                .detail
                .as_deref()?
                .strip_prefix("policy check overridden: ")?;
            (event.state == "policy_checked").then(|| (by.to_string(), reason.to_string()))
        });
        let view = policy_view(
            &outcomes,
            run.speculative,
            overridden
                .as_ref()
                .map(|(by, why)| (by.as_str(), why.as_str())),
        );
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
