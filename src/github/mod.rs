//! The only place that talks to GitHub: the app's JWT, installation tokens, and the octocrab
//! clients built on them. Must not decide anything (that is `core/`), and must not log or show a
//! token, a private key or a secret.

mod app;
mod compare;
mod deliveries;
mod error;
mod feedback;
mod http;
mod issues;
mod limits;
mod manifest;
mod pulls;
mod repos;
mod tarball;
mod tokens;

use std::num::NonZeroU32;
use std::time::Duration;

use ::http::Method;
use chrono::{DateTime, Utc};
use octocrab::Octocrab;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serde::de::DeserializeOwned;
use tracing::{info, instrument, warn};
use url::Url;

use crate::metrics::GitHubCallLabels;
use limits::Limits;

pub use app::{AppCredentials, AppJwtClaims};
pub use compare::{ComparedFiles, MAX_COMPARE_FILES};
pub use deliveries::DeliveryPage;
pub use error::GitHubError;
pub use feedback::{CheckRunRequest, PostedStatus, StatusRequest};
pub use limits::{DEFAULT_CONTENT_REQUESTS_PER_MINUTE, wait_from_response};
pub use manifest::{ManifestCode, ManifestConversion};
pub use pulls::{MAX_PULL_REQUEST_FILES, PullRequestFiles, PullRequestInfo};
pub use tokens::{InstallationToken, RENEW_BEFORE_EXPIRY, needs_renewal};

use crate::core::InstallationId;
use manifest::ConversionResponse;
use tokens::TokenCache;

pub type Result<T, E = GitHubError> = std::result::Result<T, E>;

/// The one factory every GitHub call goes through. Share it (`Arc`) rather than making more: it
/// caches an installation's token and client until the token is five minutes from expiring.
///
/// Ask for a client per unit of work rather than keeping one: an installation client's token
/// lives an hour, an app client's JWT nine minutes.
pub struct GitHub {
    api_url: Url,
    app: Option<AppCredentials>,
    installations: TokenCache<Installation>,
    /// For downloads octocrab does not stream (tarballs).
    downloads: reqwest::Client,
    /// Rate limits GitHub announced, and the allowance of content-creating requests.
    limits: Limits,
    timeout: Duration,
    /// Every request, by method and how GitHub answered.
    calls: Family<GitHubCallLabels, Counter>,
}

/// What is cached per installation: the token and the client that sends it.
#[derive(Clone)]
struct Installation {
    token: InstallationToken,
    client: Octocrab,
}

impl GitHub {
    /// `api_url` is GitHub's REST root: `https://api.github.com`, `https://HOST/api/v3` for
    /// GitHub Enterprise Server, or a fake's address in tests. `app` is `None` until the app is
    /// registered; calls that need it then fail with [`GitHubError::NotConfigured`].
    pub fn new(api_url: Url, app: Option<AppCredentials>) -> Result<Self> {
        let usable = matches!(api_url.scheme(), "http" | "https")
            && api_url.host().is_some()
            && api_url.query().is_none()
            && api_url.fragment().is_none();
        if !usable {
            return Err(GitHubError::BadApiUrl);
        }
        Ok(Self {
            api_url,
            app,
            installations: TokenCache::new(),
            downloads: reqwest::Client::builder()
                .user_agent(crate::USER_AGENT)
                .connect_timeout(std::time::Duration::from_secs(10))
                .timeout(std::time::Duration::from_secs(300))
                .build()
                .map_err(|e| GitHubError::Download(e.to_string()))?,
            limits: Limits::new(
                NonZeroU32::new(DEFAULT_CONTENT_REQUESTS_PER_MINUTE).expect("not zero"),
            ),
            timeout: http::DEFAULT_TIMEOUT,
            calls: Family::default(),
        })
    }

    /// The allowance of content-creating requests per installation a minute, and how long a
    /// request may wait for an answer.
    pub fn with_limits(mut self, content_per_minute: NonZeroU32, timeout: Duration) -> Self {
        self.limits = Limits::new(content_per_minute);
        self.timeout = timeout;
        self
    }

    /// Counts requests into `calls` (the `/metrics` family) instead of a private one.
    pub fn with_call_counter(mut self, calls: Family<GitHubCallLabels, Counter>) -> Self {
        self.calls = calls;
        self
    }

    /// Every API request goes through here: not sent while a rate limit holds the
    /// installation back, counted by how GitHub answered, and a rate limit GitHub announces
    /// holds the installation's next requests back until it lifts.
    async fn call<T: DeserializeOwned>(
        &self,
        installation: Option<InstallationId>,
        client: &Octocrab,
        method: Method,
        route: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<T> {
        self.call_with_headers(installation, client, method, route, body)
            .await
            .map(|(value, _)| value)
    }

    /// [`GitHub::call`], with the answer's headers.
    async fn call_with_headers<T: DeserializeOwned>(
        &self,
        installation: Option<InstallationId>,
        client: &Octocrab,
        method: Method,
        route: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(T, ::http::HeaderMap)> {
        if let Some(id) = installation {
            let creates_content = method != Method::GET;
            self.limits
                .admit(id, creates_content)
                .map_err(|wait| GitHubError::Throttled { wait })?;
        }
        let (status, answer) = http::send_json(client, &method, route, body).await;
        self.count(&method, status);
        if let (Some(id), Err(error)) = (installation, &answer)
            && let Some(wait) = error.retry_after()
        {
            warn!(
                installation_id = id.0,
                wait_secs = wait.as_secs(),
                "GitHub rate limit: holding requests back"
            );
            self.limits.hold(id, wait);
        }
        answer
    }

    /// [`GitHub::call`] with installation `installation_id`'s client: every REST call Gantry
    /// makes for a repository goes through here.
    async fn as_installation<T: DeserializeOwned>(
        &self,
        installation_id: InstallationId,
        method: Method,
        route: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<T> {
        let client = self.installation_client(installation_id).await?;
        self.call(Some(installation_id), &client, method, route, body)
            .await
    }

    fn count(&self, method: &Method, status: String) {
        self.calls
            .get_or_create(&GitHubCallLabels {
                method: method.as_str().to_owned(),
                status,
            })
            .inc();
    }

    pub fn api_url(&self) -> &Url {
        &self.api_url
    }

    /// The app id, once the app is set up.
    pub fn app_id(&self) -> Option<u64> {
        self.app.as_ref().map(AppCredentials::app_id)
    }

    /// A client that authenticates as the app itself (a fresh JWT), for the `/app` endpoints.
    /// Call it inside a tokio runtime.
    pub fn app_client(&self) -> Result<Octocrab> {
        let jwt = self.credentials()?.app_jwt(Utc::now())?;
        http::bearer_client(&self.api_url, &jwt, self.timeout)
    }

    /// A client that acts as installation `installation_id`, reused while its token is fresh.
    #[instrument(skip(self))]
    pub async fn installation_client(&self, installation_id: InstallationId) -> Result<Octocrab> {
        Ok(self.installation(installation_id).await?.client)
    }

    /// The installation's token itself, for what octocrab does not do (e.g. `git` over HTTPS).
    #[instrument(skip(self))]
    pub async fn installation_token(
        &self,
        installation_id: InstallationId,
    ) -> Result<InstallationToken> {
        Ok(self.installation(installation_id).await?.token)
    }

    /// Trades the code GitHub sent to the manifest flow's redirect for the new app's
    /// credentials. The code is checked before it goes into the URL; the call needs no auth.
    #[instrument(skip_all)]
    pub async fn convert_manifest_code(&self, code: &str) -> Result<ManifestConversion> {
        let code = ManifestCode::parse(code)?;
        let client = http::anonymous_client(&self.api_url)?;
        let route = format!("/app-manifests/{}/conversions", code.as_str());
        let response: ConversionResponse = self
            .call(None, &client, Method::POST, &route, None)
            .await
            .inspect_err(
                |e| warn!(status = e.status(), error = %e, "manifest conversion failed"),
            )?;
        let conversion = ManifestConversion::try_from(response)?;
        info!(app_id = conversion.id, slug = %conversion.slug, "registered the GitHub App");
        Ok(conversion)
    }

    fn credentials(&self) -> Result<&AppCredentials> {
        self.app.as_ref().ok_or(GitHubError::NotConfigured)
    }

    async fn installation(&self, installation_id: InstallationId) -> Result<Installation> {
        self.credentials()?;
        let renew = || self.new_installation(installation_id);
        self.installations
            .get_or_renew(installation_id, Utc::now(), renew)
            .await
    }

    async fn new_installation(
        &self,
        installation_id: InstallationId,
    ) -> Result<(Installation, DateTime<Utc>)> {
        let app = self.app_client()?;
        let route = format!("/app/installations/{installation_id}/access_tokens");
        let token: InstallationToken = self
            .call(None, &app, Method::POST, &route, None)
            .await
            .and_then(|token: InstallationToken| {
                http::check_header_safe(&token.token, "token")?;
                Ok(token)
            })
            .inspect_err(|e| {
                let status = e.status();
                warn!(installation_id = installation_id.0, status, error = %e, "installation token request failed");
            })?;
        let client = http::bearer_client(&self.api_url, &token.token, self.timeout)?;
        let expires_at = token.expires_at;
        info!(installation_id = installation_id.0, %expires_at, "created an installation token");
        Ok((Installation { token, client }, expires_at))
    }
}

impl std::fmt::Debug for GitHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHub")
            .field("api_url", &self.api_url.as_str())
            .field("app_id", &self.app_id())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    #[test]
    fn api_urls_for_github_enterprise_and_fakes_are_accepted() {
        for ok in [
            "https://api.github.com",
            "https://ghe.example.com/api/v3",
            "http://127.0.0.1:8080/",
        ] {
            assert!(GitHub::new(url(ok), None).is_ok(), "{ok}");
        }
    }

    #[test]
    fn api_urls_octocrab_cannot_use_are_refused() {
        for bad in [
            "ftp://example.com",
            "https://h/api?x=1",
            "https://h/api#top",
            "mailto:a@b",
        ] {
            assert!(
                matches!(GitHub::new(url(bad), None), Err(GitHubError::BadApiUrl)),
                "{bad}"
            );
        }
    }

    #[test]
    fn without_credentials_the_app_client_is_not_configured() {
        let github = GitHub::new(url("https://api.github.com"), None).unwrap();
        assert!(matches!(
            github.app_client(),
            Err(GitHubError::NotConfigured)
        ));
        assert_eq!(github.app_id(), None);
    }
}
