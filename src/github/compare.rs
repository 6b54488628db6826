//! `GET /repos/{repo}/compare/{base}...{head}`: which files changed between two commits, for a
//! push whose payload cannot say (a new branch, a forced push, more than 20 commits).

use http::Method;
use serde::Deserialize;
use tracing::instrument;

use super::{GitHub, GitHubError, Result};
use crate::core::InstallationId;

/// GitHub lists at most this many files in a comparison.
pub const MAX_COMPARE_FILES: usize = 300;

/// The files a comparison lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComparedFiles {
    pub files: Vec<String>,
    /// GitHub's list stopped at its limit: more files changed than it names.
    pub truncated: bool,
}

#[derive(Deserialize)]
struct Comparison {
    #[serde(default)]
    files: Vec<ComparedFile>,
}

#[derive(Deserialize)]
struct ComparedFile {
    filename: String,
}

impl GitHub {
    /// The files changed between `base` and `head` in `repo` (`owner/name`).
    #[instrument(skip(self))]
    pub async fn compare_files(
        &self,
        installation_id: InstallationId,
        repo: &str,
        base: &str,
        head: &str,
    ) -> Result<ComparedFiles> {
        for part in [base, head] {
            if part.is_empty()
                || !part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b))
            {
                return Err(GitHubError::UnexpectedResponse(
                    "a ref to compare has characters a URL path cannot carry".into(),
                ));
            }
        }
        let route = format!("/repos/{repo}/compare/{base}...{head}");
        let comparison: Comparison = self
            .as_installation(installation_id, Method::GET, &route, None)
            .await?;
        let truncated = comparison.files.len() >= MAX_COMPARE_FILES;
        Ok(ComparedFiles {
            files: comparison.files.into_iter().map(|f| f.filename).collect(),
            truncated,
        })
    }
}
