//! Check runs: a run's (computed from the run when sent, written only when what it shows
//! changed) and one not tied to a run (a fork's approval).

use super::{OutboxWorker, SendError};
use crate::core::RunId;
use crate::core::status;
use crate::engine::run_view::look;
use crate::github::CheckRunRequest;
use crate::store::RawCheck;

impl OutboxWorker {
    pub(super) async fn send_run_check(&self, run_id: RunId) -> Result<(), SendError> {
        let Some((run, workspace, installation)) = self.run_to_report(run_id).await? else {
            return Ok(());
        };
        let look = look(&self.public_url, &run);
        let (view, url) = (look.check, look.url);
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
                installation,
                &run.repo,
                existing,
                &CheckRunRequest {
                    name: &name,
                    head_sha: &run.commit_sha,
                    external_id: &external_id,
                    details_url: &url,
                    state: view.state,
                    title: &view.title,
                    summary: &view.summary,
                },
            )
            .await?;
        self.store.set_run_check(run.id, id, &shown).await?;
        Ok(())
    }

    pub(super) async fn send_raw_check(&self, check: &RawCheck) -> Result<(), SendError> {
        let existing = self
            .store
            .raw_check_id(&check.repo, &check.sha, &check.name)
            .await?;
        let id = self
            .github
            .put_check_run(
                check.installation_id,
                &check.repo,
                existing,
                &CheckRunRequest {
                    name: &check.name,
                    head_sha: &check.sha,
                    external_id: "",
                    details_url: &check.details_url,
                    state: check.state,
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
}
