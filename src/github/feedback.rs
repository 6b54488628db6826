//! What Gantry tells GitHub: commit statuses, the pull request comment, reactions and replies.
//! Called only by the outbox worker, which makes them durable and retries them.

use http::Method;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::json;
use tracing::instrument;

use super::{GitHub, Result};
use crate::core::github_terms::{CheckState, CommitState};
use crate::core::{InstallationId, PrNumber};

#[derive(Deserialize)]
struct Created {
    id: i64,
}

#[derive(Deserialize)]
struct IssueComment {
    id: i64,
    #[serde(default)]
    body: Option<String>,
    /// Set on comments an app made; only Gantry's own comment is ever edited.
    #[serde(default)]
    performed_via_github_app: Option<AppRef>,
}

#[derive(Deserialize)]
struct AppRef {
    id: u64,
}

/// A commit status to post.
#[derive(Debug, Clone, Copy)]
pub struct StatusRequest<'a> {
    pub context: &'a str,
    pub state: CommitState,
    pub description: &'a str,
    pub target_url: Option<&'a str>,
}

/// A commit status as GitHub shows it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PostedStatus {
    pub context: String,
    pub state: CommitState,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub target_url: Option<String>,
}

/// A check run to create or update.
#[derive(Debug, Clone, Copy)]
pub struct CheckRunRequest<'a> {
    pub name: &'a str,
    pub head_sha: &'a str,
    /// The run id: a "Re-run" request names it.
    pub external_id: &'a str,
    pub details_url: &'a str,
    pub state: CheckState,
    pub title: &'a str,
    pub summary: &'a str,
}

impl GitHub {
    /// `POST /repos/{repo}/statuses/{sha}`.
    #[instrument(skip(self, status), fields(context = status.context, state = %status.state))]
    pub async fn post_status(
        &self,
        installation_id: InstallationId,
        repo: &str,
        sha: &str,
        status: &StatusRequest<'_>,
    ) -> Result<()> {
        let mut body = json!({
            "state": status.state,
            "description": status.description,
            "context": status.context,
        });
        if let Some(url) = status.target_url {
            body["target_url"] = url.into();
        }
        let route = format!("/repos/{repo}/statuses/{sha}");
        let _: IgnoredAny = self
            .as_installation(installation_id, Method::POST, &route, Some(&body))
            .await?;
        Ok(())
    }

    /// The newest status `context` shows on commit `sha`, from
    /// `GET /repos/{repo}/commits/{sha}/statuses` (newest first; a context's older statuses
    /// follow its newest). Looks at the first 100; None if the context is not among them.
    #[instrument(skip(self))]
    pub async fn latest_status(
        &self,
        installation_id: InstallationId,
        repo: &str,
        sha: &str,
        context: &str,
    ) -> Result<Option<PostedStatus>> {
        let route = format!("/repos/{repo}/commits/{sha}/statuses?per_page=100");
        let statuses: Vec<PostedStatus> = self
            .as_installation(installation_id, Method::GET, &route, None)
            .await?;
        Ok(statuses.into_iter().find(|s| s.context == context))
    }

    /// `POST /repos/{repo}/check-runs` (new) or `PATCH /repos/{repo}/check-runs/{id}`; returns
    /// the check run's id.
    #[instrument(skip(self, check))]
    pub async fn put_check_run(
        &self,
        installation_id: InstallationId,
        repo: &str,
        existing: Option<i64>,
        check: &CheckRunRequest<'_>,
    ) -> Result<i64> {
        let mut body = json!({
            "name": check.name,
            "head_sha": check.head_sha,
            "external_id": check.external_id,
            "details_url": check.details_url,
            "status": check.state.status,
            "output": { "title": check.title, "summary": check.summary },
        });
        if let Some(conclusion) = check.state.conclusion {
            body["conclusion"] = serde_json::to_value(conclusion).unwrap_or_default();
        }
        let (method, route) = match existing {
            Some(id) => (Method::PATCH, format!("/repos/{repo}/check-runs/{id}")),
            None => (Method::POST, format!("/repos/{repo}/check-runs")),
        };
        let saved: Created = self
            .as_installation(installation_id, method, &route, Some(&body))
            .await?;
        Ok(saved.id)
    }

    /// `POST /repos/{repo}/issues/{number}/comments`; returns the comment's id.
    #[instrument(skip(self, body))]
    pub async fn create_comment(
        &self,
        installation_id: InstallationId,
        repo: &str,
        number: PrNumber,
        body: &str,
    ) -> Result<i64> {
        let route = format!("/repos/{repo}/issues/{number}/comments");
        let body = json!({ "body": body });
        let created: Created = self
            .as_installation(installation_id, Method::POST, &route, Some(&body))
            .await?;
        Ok(created.id)
    }

    /// `PATCH /repos/{repo}/issues/comments/{id}`.
    #[instrument(skip(self, body))]
    pub async fn update_comment(
        &self,
        installation_id: InstallationId,
        repo: &str,
        comment_id: i64,
        body: &str,
    ) -> Result<()> {
        let route = format!("/repos/{repo}/issues/comments/{comment_id}");
        let body = json!({ "body": body });
        let _: IgnoredAny = self
            .as_installation(installation_id, Method::PATCH, &route, Some(&body))
            .await?;
        Ok(())
    }

    /// The id of the first comment on the pull request whose body contains `marker`
    /// (`GET /repos/{repo}/issues/{number}/comments`, every page).
    #[instrument(skip(self, marker))]
    pub async fn find_comment(
        &self,
        installation_id: InstallationId,
        repo: &str,
        number: PrNumber,
        marker: &str,
    ) -> Result<Option<i64>> {
        for page in 1..=50 {
            let route = format!("/repos/{repo}/issues/{number}/comments?per_page=100&page={page}");
            let comments: Vec<IssueComment> = self
                .as_installation(installation_id, Method::GET, &route, None)
                .await?;
            if let Some(found) = comments
                .iter()
                .filter(|c| {
                    // Anyone can write the marker; only the app's own comment counts.
                    c.performed_via_github_app.as_ref().map(|a| a.id) == self.app_id()
                })
                .find(|c| c.body.as_deref().is_some_and(|b| b.contains(marker)))
            {
                return Ok(Some(found.id));
            }
            if comments.len() < 100 {
                break;
            }
        }
        Ok(None)
    }

    /// `POST /repos/{repo}/issues/comments/{id}/reactions`.
    #[instrument(skip(self))]
    pub async fn add_reaction(
        &self,
        installation_id: InstallationId,
        repo: &str,
        comment_id: i64,
        content: &str,
    ) -> Result<()> {
        let route = format!("/repos/{repo}/issues/comments/{comment_id}/reactions");
        let body = json!({ "content": content });
        let _: IgnoredAny = self
            .as_installation(installation_id, Method::POST, &route, Some(&body))
            .await?;
        Ok(())
    }
}
