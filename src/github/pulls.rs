//! What Gantry reads about pull requests and people: a pull request's changed files (all
//! pages), the pull request itself (for comment commands), and a user's permission.

use http::Method;
use serde::Deserialize;
use tracing::instrument;

use super::{GitHub, Result};
use crate::core::CommitSha;
use crate::core::{InstallationId, PrNumber};
use crate::events::Account;

/// GitHub lists at most this many files of a pull request.
pub const MAX_PULL_REQUEST_FILES: usize = 3000;
const PER_PAGE: usize = 100;

/// A pull request's changed files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequestFiles {
    pub files: Vec<String>,
    /// GitHub's list stopped at its limit: more files changed than it names.
    pub truncated: bool,
}

#[derive(Deserialize)]
struct FileEntry {
    filename: String,
    #[serde(default)]
    previous_filename: Option<String>,
}

/// The parts of a pull request that comment commands need.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PullRequestInfo {
    pub number: PrNumber,
    /// `open` or `closed`.
    pub state: String,
    #[serde(default)]
    pub merged: bool,
    pub head: PullRef,
    pub base: PullRef,
    /// The commit the pull request was merged as (GitHub's test merge while it is open).
    #[serde(default)]
    pub merge_commit_sha: Option<CommitSha>,
    /// Who opened it.
    pub user: Account,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PullRef {
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub sha: CommitSha,
    pub repo: Option<PullRepo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PullRepo {
    pub full_name: String,
}

impl PullRequestInfo {
    pub fn is_from_fork(&self) -> bool {
        match (&self.head.repo, &self.base.repo) {
            (Some(head), Some(base)) => head.full_name != base.full_name,
            _ => true,
        }
    }
}

#[derive(Deserialize)]
struct Permission {
    permission: String,
}

impl GitHub {
    /// `GET /repos/{repo}/pulls/{number}/files`, every page (GitHub stops at 3,000 files).
    #[instrument(skip(self))]
    pub async fn pull_request_files(
        &self,
        installation_id: InstallationId,
        repo: &str,
        number: PrNumber,
    ) -> Result<PullRequestFiles> {
        let mut files = Vec::new();
        for page in 1..=(MAX_PULL_REQUEST_FILES / PER_PAGE) {
            let route =
                format!("/repos/{repo}/pulls/{number}/files?per_page={PER_PAGE}&page={page}");
            let entries: Vec<FileEntry> = self
                .as_installation(installation_id, Method::GET, &route, None)
                .await?;
            let count = entries.len();
            for entry in entries {
                // A rename touches both paths.
                files.extend(entry.previous_filename);
                files.push(entry.filename);
            }
            if count < PER_PAGE {
                return Ok(PullRequestFiles {
                    files,
                    truncated: false,
                });
            }
        }
        Ok(PullRequestFiles {
            files,
            truncated: true,
        })
    }

    /// `GET /repos/{repo}/pulls/{number}`.
    #[instrument(skip(self))]
    pub async fn pull_request(
        &self,
        installation_id: InstallationId,
        repo: &str,
        number: PrNumber,
    ) -> Result<PullRequestInfo> {
        let route = format!("/repos/{repo}/pulls/{number}");
        self.as_installation(installation_id, Method::GET, &route, None)
            .await
    }

    /// `GET /repos/{repo}/collaborators/{user}/permission`: admin, maintain, write, triage,
    /// read or none.
    #[instrument(skip(self))]
    pub async fn permission(
        &self,
        installation_id: InstallationId,
        repo: &str,
        user: &str,
    ) -> Result<String> {
        let route = format!("/repos/{repo}/collaborators/{user}/permission");
        let permission: Permission = self
            .as_installation(installation_id, Method::GET, &route, None)
            .await?;
        Ok(permission.permission)
    }
}
