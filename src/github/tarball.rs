//! `GET /repos/{repo}/tarball/{sha}`: a repository's files at a commit, as GitHub's gzipped
//! tarball. GitHub answers with a redirect to a short-lived download URL; reqwest follows it and
//! drops the token when the redirect leaves the API's host.

use secrecy::ExposeSecret;
use tracing::instrument;

use super::{GitHub, GitHubError, Result};
use crate::core::InstallationId;

impl GitHub {
    /// The tarball of `repo` (`owner/name`) at `sha`, at most `max_bytes` long.
    #[instrument(skip(self))]
    pub async fn download_tarball(
        &self,
        installation_id: InstallationId,
        repo: &str,
        sha: &str,
        max_bytes: usize,
    ) -> Result<Vec<u8>> {
        if sha.is_empty() || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(GitHubError::UnexpectedResponse(
                "a commit id to download must be hexadecimal".into(),
            ));
        }
        // A rate limit GitHub announced holds downloads back too: GitHub counts them.
        self.limits
            .admit(installation_id, false)
            .map_err(|wait| GitHubError::Throttled { wait })?;
        let token = self.installation_token(installation_id).await?;
        let url = format!(
            "{}/repos/{repo}/tarball/{sha}",
            self.api_url().as_str().trim_end_matches('/')
        );
        let response = self
            .downloads
            .get(url)
            .bearer_auth(token.token.expose_secret())
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
            .send()
            .await
            .map_err(|e| GitHubError::Download(e.without_url().to_string()))?;
        let status = response.status();
        self.count(&::http::Method::GET, status.as_u16().to_string());
        if !status.is_success() {
            let retry_after = super::limits::wait_from_response(
                status.as_u16(),
                response.headers(),
                "",
                chrono::Utc::now(),
            );
            if let Some(wait) = retry_after {
                tracing::warn!(
                    installation_id = installation_id.0,
                    wait_secs = wait.as_secs(),
                    "GitHub rate limit: holding requests back"
                );
                self.limits.hold(installation_id, wait);
            }
            return Err(GitHubError::Http {
                status: status.as_u16(),
                message: format!("downloading the tarball of {repo} at {sha}"),
                retry_after,
            });
        }
        if response.content_length().unwrap_or(0) > max_bytes as u64 {
            return Err(GitHubError::TooLarge(max_bytes));
        }
        let mut body = Vec::new();
        let mut response = response;
        while let Some(piece) = response
            .chunk()
            .await
            .map_err(|e| GitHubError::Download(e.without_url().to_string()))?
        {
            if body.len() + piece.len() > max_bytes {
                return Err(GitHubError::TooLarge(max_bytes));
            }
            body.extend_from_slice(&piece);
        }
        Ok(body)
    }
}
