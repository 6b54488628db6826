//! A workspace's drift issue, made to match its latest assessment when sent: opened on drift
//! (or, if an open one with its title exists, that one taken up), edited when the drift
//! changed, closed when an assessment finds none. Its number is kept on the workspace.

use super::{OutboxWorker, SendError};
use crate::core::assessments::{issue_body, issue_title};
use crate::core::{InstallationId, WorkspaceId};

impl OutboxWorker {
    pub(super) async fn send_drift_issue(
        &self,
        workspace_id: WorkspaceId,
    ) -> Result<(), SendError> {
        let Some(workspace) = self.store.workspace(workspace_id).await? else {
            return Ok(());
        };
        let Some(repo) = &workspace.spec.repo else {
            return Ok(()); // no repository to open it in
        };
        let latest = self.store.ended_assessment_before(workspace_id, i64::MAX);
        let Some(latest) = latest.await? else {
            return Ok(());
        };
        let open = self.store.drift_issue(workspace_id).await?;
        if latest.status == "errored" {
            return Ok(()); // an error says nothing about drift: the issue stays as it is
        }
        if !latest.is_drifted() && open.is_none() {
            return Ok(());
        }
        let installation = self.installation_for(latest.run_id, repo.as_str()).await?;
        let name = workspace.spec.name.as_str();
        match open {
            Some(number) if !latest.is_drifted() => {
                self.github
                    .close_issue(installation, repo.as_str(), number)
                    .await?;
                self.store.set_drift_issue(workspace_id, None).await?;
            }
            Some(number) => {
                let link = self.assessment_url(name, latest.id);
                let body = issue_body(name, &latest.findings, &link);
                self.github
                    .update_issue(
                        installation,
                        repo.as_str(),
                        number,
                        &issue_title(name),
                        &body,
                    )
                    .await?;
            }
            None => {
                let link = self.assessment_url(name, latest.id);
                let body = issue_body(name, &latest.findings, &link);
                let title = issue_title(name);
                // One opened by a send that stopped before its number was kept is taken up
                // again, not opened twice.
                let number = match (self.github)
                    .find_open_issue(installation, repo.as_str(), &title)
                    .await?
                {
                    Some(number) => {
                        self.github
                            .update_issue(installation, repo.as_str(), number, &title, &body)
                            .await?;
                        number
                    }
                    None => {
                        self.github
                            .create_issue(installation, repo.as_str(), &title, &body)
                            .await?
                    }
                };
                self.store
                    .set_drift_issue(workspace_id, Some(number))
                    .await?;
            }
        }
        Ok(())
    }

    /// The installation that posts for the assessed run's repository: the run's own, else the
    /// App's installation on the repository (an uploaded configuration names none).
    async fn installation_for(
        &self,
        run_id: crate::core::RunId,
        repo: &str,
    ) -> Result<InstallationId, SendError> {
        if let Some(run) = self.store.run(run_id).await?
            && let Some(installation) = run.installation_id
        {
            return Ok(installation);
        }
        Ok(self.github.repository_installation(repo).await?)
    }

    /// The assessment's page in the UI.
    pub(super) fn assessment_url(&self, workspace: &str, id: i64) -> String {
        crate::engine::run_view::assessment_url(&self.public_url, workspace, id)
    }
}
