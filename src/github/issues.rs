//! A workspace's drift issue: opened, edited and closed. Called only by the outbox worker.

use http::Method;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::json;
use tracing::instrument;

use super::{GitHub, Result};
use crate::core::InstallationId;

#[derive(Deserialize)]
struct CreatedIssue {
    number: i64,
}

#[derive(Deserialize)]
struct ListedIssue {
    number: i64,
    title: String,
    /// Set on pull requests, which GitHub lists with issues.
    #[serde(default)]
    pull_request: Option<IgnoredAny>,
}

impl GitHub {
    /// `POST /repos/{repo}/issues`: the new issue's number.
    #[instrument(skip(self, body))]
    pub async fn create_issue(
        &self,
        installation_id: InstallationId,
        repo: &str,
        title: &str,
        body: &str,
    ) -> Result<i64> {
        let route = format!("/repos/{repo}/issues");
        let body = json!({ "title": title, "body": body });
        let created: CreatedIssue = self
            .as_installation(installation_id, Method::POST, &route, Some(&body))
            .await?;
        Ok(created.number)
    }

    /// The number of an open issue (not a pull request) titled `title`, if there is one
    /// (`GET /repos/{repo}/issues?state=open`, up to 1,000 of them).
    #[instrument(skip(self))]
    pub async fn find_open_issue(
        &self,
        installation_id: InstallationId,
        repo: &str,
        title: &str,
    ) -> Result<Option<i64>> {
        for page in 1..=10 {
            let route = format!("/repos/{repo}/issues?state=open&per_page=100&page={page}");
            let issues: Vec<ListedIssue> = self
                .as_installation(installation_id, Method::GET, &route, None)
                .await?;
            if let Some(found) = issues
                .iter()
                .find(|i| i.pull_request.is_none() && i.title == title)
            {
                return Ok(Some(found.number));
            }
            if issues.len() < 100 {
                break;
            }
        }
        Ok(None)
    }

    /// `PATCH /repos/{repo}/issues/{number}`: a new text, and open it again (someone may have
    /// closed it while the drift stayed).
    #[instrument(skip(self, body))]
    pub async fn update_issue(
        &self,
        installation_id: InstallationId,
        repo: &str,
        number: i64,
        title: &str,
        body: &str,
    ) -> Result<()> {
        let route = format!("/repos/{repo}/issues/{number}");
        let body = json!({ "title": title, "body": body, "state": "open" });
        let _: IgnoredAny = self
            .as_installation(installation_id, Method::PATCH, &route, Some(&body))
            .await?;
        Ok(())
    }

    /// `PATCH /repos/{repo}/issues/{number}` to `closed`, as completed.
    #[instrument(skip(self))]
    pub async fn close_issue(
        &self,
        installation_id: InstallationId,
        repo: &str,
        number: i64,
    ) -> Result<()> {
        let route = format!("/repos/{repo}/issues/{number}");
        let body = json!({ "state": "closed", "state_reason": "completed" });
        let _: IgnoredAny = self
            .as_installation(installation_id, Method::PATCH, &route, Some(&body))
            .await?;
        Ok(())
    }
}
