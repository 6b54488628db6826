//! Where a repository's files come from when they are not a run's commit: the installation
//! that can read a repository (`GET /repos/{repo}/installation`, as the App) and the commit at
//! the head of a branch (`GET /repos/{repo}/git/ref/heads/{branch}`). Policy sets kept in a
//! repository are read this way, at their branch's head.

use http::Method;
use serde::Deserialize;
use tracing::instrument;

use super::{GitHub, GitHubError, Result};
use crate::core::{CommitSha, InstallationId};

#[derive(Deserialize)]
struct RepoInstallation {
    id: i64,
}

#[derive(Deserialize)]
struct RepositoryInfo {
    default_branch: String,
}

#[derive(Deserialize)]
struct GitRef {
    object: GitObject,
}

#[derive(Deserialize)]
struct GitObject {
    sha: CommitSha,
    r#type: String,
}

impl GitHub {
    /// The App's installation on `repo` (`owner/name`).
    #[instrument(skip(self))]
    pub async fn repository_installation(&self, repo: &str) -> Result<InstallationId> {
        let client = self.app_client()?;
        let route = format!("/repos/{repo}/installation");
        let found: RepoInstallation = self.call(None, &client, Method::GET, &route, None).await?;
        Ok(InstallationId(found.id))
    }

    /// The default branch of `repo` (`GET /repos/{repo}`).
    #[instrument(skip(self))]
    pub async fn default_branch(
        &self,
        installation_id: InstallationId,
        repo: &str,
    ) -> Result<String> {
        let route = format!("/repos/{repo}");
        let found: RepositoryInfo = self
            .as_installation(installation_id, Method::GET, &route, None)
            .await?;
        Ok(found.default_branch)
    }

    /// The commit at the head of `branch` of `repo`.
    #[instrument(skip(self))]
    pub async fn branch_head(
        &self,
        installation_id: InstallationId,
        repo: &str,
        branch: &str,
    ) -> Result<CommitSha> {
        let route = format!("/repos/{repo}/git/ref/heads/{branch}");
        let found: GitRef = self
            .as_installation(installation_id, Method::GET, &route, None)
            .await?;
        if found.object.r#type != "commit" {
            return Err(GitHubError::UnexpectedResponse(format!(
                "heads/{branch} of {repo} points at a {}, not a commit",
                found.object.r#type
            )));
        }
        Ok(found.object.sha)
    }
}
