//! The GitHub App client against a fake GitHub on loopback: app JWTs, installation tokens and
//! their cache, installation clients, and the manifest conversion. Must not reach the network.

use chrono::{TimeDelta, Utc};
use gantry::github::{AppCredentials, AppJwtClaims, GitHub, GitHubError};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use url::Url;
use wiremock::Request;

use common::github::Fault;
use gantry::core::InstallationId;

mod common;

const APP_ID: u64 = 42;
const INSTALLATION: InstallationId = InstallationId(1001);
const PRIVATE_KEY: &str = include_str!("../fixtures/keys/test-app.pem");
const PUBLIC_KEY: &str = include_str!("../fixtures/keys/test-app.pub.pem");

/// A fake GitHub held to GitHub's contract, and what these tests mount on it.
struct FakeGitHub {
    server: common::FakeGitHub,
    token_requests: usize,
}

impl FakeGitHub {
    async fn start() -> Self {
        Self {
            server: common::FakeGitHub::start().await,
            token_requests: 0,
        }
    }

    /// Gantry's client for this fake, as the app (`configured`) or before setup.
    fn gantry(&self, configured: bool) -> GitHub {
        self.gantry_at("", configured)
    }

    /// As [`Self::gantry`], with the API under `prefix` (GitHub Enterprise Server's `/api/v3`).
    fn gantry_at(&self, prefix: &str, configured: bool) -> GitHub {
        let api_url = Url::parse(&format!("{}{prefix}", self.server.uri())).unwrap();
        let app = configured.then(|| {
            AppCredentials::new(APP_ID, &SecretString::from(PRIVATE_KEY)).expect("fixture key")
        });
        GitHub::new(api_url, app).unwrap()
    }

    /// GitHub has our installation and grants it tokens that live `lifetime`; the test
    /// expects `times` token requests (see [`Self::verify`]).
    async fn grants_tokens(&mut self, lifetime: TimeDelta, times: usize) {
        self.server.install(INSTALLATION.0 as u64);
        self.server.token_lifetime(lifetime);
        self.token_requests = times;
    }

    /// The token requests were as many as expected.
    fn verify(&self) {
        assert_eq!(
            self.server
                .answered("apps/create-installation-access-token"),
            self.token_requests,
            "token requests"
        );
    }

    async fn requests(&self) -> Vec<Request> {
        self.server.received_requests().await.unwrap_or_default()
    }
}

/// The claims of an app JWT that verifies with the app's public key.
fn verified_claims(jwt: &str) -> Option<AppJwtClaims> {
    let key = DecodingKey::from_rsa_pem(PUBLIC_KEY.as_bytes()).ok()?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_required_spec_claims(&["iss", "iat", "exp"]);
    jsonwebtoken::decode::<AppJwtClaims>(jwt, &key, &validation)
        .ok()
        .map(|data| data.claims)
}

fn claims_are_fresh(claims: &AppJwtClaims) -> bool {
    let now = Utc::now().timestamp();
    claims.iss == APP_ID.to_string()
        && (claims.iat - (now - 60)).abs() <= 5
        && claims.exp > now
        && claims.exp - claims.iat <= 600
}

fn conversion_body() -> serde_json::Value {
    json!({
        "id": 7,
        "slug": "gantry-acme",
        "node_id": "MDM6QXBwNw==",
        "owner": {"login": "acme", "id": 1, "type": "Organization"},
        "name": "Gantry (acme)",
        "html_url": "https://github.com/apps/gantry-acme",
        "client_id": "Iv1.8a61f9b3a7aba766",
        "client_secret": "1726be1638095a19edd134c77bde3aa2ece1e5d8",
        "webhook_secret": "e340154128314309424b7c8e90325147d99fdafa",
        "pem": "-----BEGIN RSA PRIVATE KEY-----\nfake\n-----END RSA PRIVATE KEY-----\n",
    })
}

#[tokio::test]
async fn token_request_carries_an_app_jwt_that_verifies_with_the_public_key() {
    let mut github = FakeGitHub::start().await;
    github.grants_tokens(TimeDelta::hours(1), 1).await;

    let token = github.gantry(true).installation_token(INSTALLATION).await;

    // The fake's contract grants a token only to a valid JWT: getting one is the proof.
    let token = token.unwrap();
    assert_eq!(
        github.server.issued_tokens(),
        [token.token.expose_secret().to_owned()]
    );
    let requests = github.requests().await;
    let auth = requests[0]
        .headers
        .get("authorization")
        .unwrap()
        .to_str()
        .unwrap();
    let claims = verified_claims(auth.strip_prefix("Bearer ").unwrap()).unwrap();
    assert_eq!(claims.iss, "42");
    assert!(claims_are_fresh(&claims), "{claims:?}");
}

#[tokio::test]
async fn second_call_for_an_installation_reuses_the_cached_token() {
    let mut github = FakeGitHub::start().await;
    github.grants_tokens(TimeDelta::hours(1), 1).await;
    let gantry = github.gantry(true);

    let first = gantry.installation_token(INSTALLATION).await.unwrap();
    let second = gantry.installation_token(INSTALLATION).await.unwrap();
    gantry.installation_client(INSTALLATION).await.unwrap();

    assert_eq!(first.token.expose_secret(), second.token.expose_secret());
    github.verify(); // the token endpoint was hit once
}

#[tokio::test]
async fn token_expiring_within_five_minutes_is_renewed() {
    let mut github = FakeGitHub::start().await;
    github.grants_tokens(TimeDelta::minutes(4), 2).await;
    let gantry = github.gantry(true);

    let first = gantry.installation_token(INSTALLATION).await.unwrap();
    let second = gantry.installation_token(INSTALLATION).await.unwrap();

    assert_ne!(first.token.expose_secret(), second.token.expose_secret());
    github.verify();
}

#[tokio::test]
async fn concurrent_callers_for_one_installation_share_one_token_request() {
    let mut github = FakeGitHub::start().await;
    github.grants_tokens(TimeDelta::hours(1), 1).await;
    let gantry = github.gantry(true);

    let (a, b, c) = tokio::join!(
        gantry.installation_client(INSTALLATION),
        gantry.installation_client(INSTALLATION),
        gantry.installation_client(INSTALLATION),
    );

    assert!(a.is_ok() && b.is_ok() && c.is_ok());
    github.verify();
}

#[tokio::test]
async fn installation_client_sends_the_installation_token() {
    let mut github = FakeGitHub::start().await;
    github.grants_tokens(TimeDelta::hours(1), 1).await;
    let client = github
        .gantry(true)
        .installation_client(INSTALLATION)
        .await
        .unwrap();

    // The fake answers only a token it issued.
    let repo: serde_json::Value = client.get("/repos/o/r", None::<&()>).await.unwrap();

    assert_eq!(repo["full_name"], "o/r");
    github.verify();
}

#[tokio::test]
async fn github_enterprise_api_prefix_is_kept_on_every_call() {
    let mut github = FakeGitHub::start().await;
    github.grants_tokens(TimeDelta::hours(1), 1).await;
    let gantry = github.gantry_at("/api/v3", true);

    let client = gantry.installation_client(INSTALLATION).await.unwrap();
    // The fake answers only a token it issued.
    let repo: serde_json::Value = client.get("/repos/o/r", None::<&()>).await.unwrap();

    assert_eq!(repo["full_name"], "o/r");
    github.verify();
    for request in github.requests().await {
        assert!(
            request.url.path().starts_with("/api/v3/"),
            "{}",
            request.url
        );
    }
}

#[tokio::test]
async fn refused_token_request_is_an_http_error_without_secrets() {
    let github = FakeGitHub::start().await;
    github.server.install(INSTALLATION.0 as u64);
    github.server.fail(
        "apps/create-installation-access-token",
        [Fault::Answer {
            status: 401,
            headers: Vec::new(),
            body: json!({
                "message": "A JSON web token could not be decoded",
                "documentation_url": "https://docs.github.com/rest",
            }),
            quiet_for: None,
        }],
    );

    let error = github
        .gantry(true)
        .installation_client(INSTALLATION)
        .await
        .unwrap_err();

    assert!(
        matches!(error, GitHubError::Http { status: 401, .. }),
        "{error:?}"
    );
    let shown = format!("{error} {error:?}");
    assert!(shown.contains("could not be decoded"), "{shown}");
    assert!(
        !shown.contains("Bearer") && !shown.contains("PRIVATE KEY"),
        "{shown}"
    );
}

#[tokio::test]
async fn manifest_code_converts_into_the_new_apps_credentials() {
    let github = FakeGitHub::start().await;
    github.server.add_manifest(
        "a180b1a3d263c81bc6441d7b990bae27d4c10679",
        conversion_body(),
    );

    let app = github
        .gantry(false)
        .convert_manifest_code("a180b1a3d263c81bc6441d7b990bae27d4c10679")
        .await
        .unwrap();

    assert_eq!((app.id, app.slug.as_str()), (7, "gantry-acme"));
    assert_eq!(app.html_url, "https://github.com/apps/gantry-acme");
    assert!(
        app.pem
            .expose_secret()
            .starts_with("-----BEGIN RSA PRIVATE KEY-----")
    );
    assert_eq!(
        app.webhook_secret.expose_secret(),
        "e340154128314309424b7c8e90325147d99fdafa"
    );
    assert_eq!(app.client_id.as_deref(), Some("Iv1.8a61f9b3a7aba766"));
    let client_secret = app
        .client_secret
        .as_ref()
        .map(|s| s.expose_secret().to_owned());
    assert_eq!(
        client_secret.as_deref(),
        Some("1726be1638095a19edd134c77bde3aa2ece1e5d8")
    );
    assert_eq!(app.owner_login.as_deref(), Some("acme"));
    let requests = github.requests().await;
    assert!(
        requests[0].headers.get("authorization").is_none(),
        "conversion needs no auth"
    );
    assert_eq!(github.server.answered("apps/create-from-manifest"), 1);
}

#[tokio::test]
async fn invalid_manifest_code_is_rejected_before_any_request() {
    let github = FakeGitHub::start().await;
    let gantry = github.gantry(false);

    for code in [
        "../../app/installations",
        "abc/def",
        "abc?x=1",
        "",
        "%2e%2e",
    ] {
        let error = gantry.convert_manifest_code(code).await.unwrap_err();
        assert!(
            matches!(error, GitHubError::InvalidManifestCode),
            "{code:?}: {error:?}"
        );
    }
    assert!(github.requests().await.is_empty());
}

#[tokio::test]
async fn without_app_credentials_installation_calls_are_not_configured() {
    let github = FakeGitHub::start().await;
    let gantry = github.gantry(false);

    let client = gantry.installation_client(INSTALLATION).await.unwrap_err();
    let token = gantry.installation_token(INSTALLATION).await.unwrap_err();

    assert!(matches!(client, GitHubError::NotConfigured));
    assert!(matches!(token, GitHubError::NotConfigured));
    assert!(matches!(
        gantry.app_client(),
        Err(GitHubError::NotConfigured)
    ));
    assert!(github.requests().await.is_empty());
}

#[tokio::test]
async fn tarball_download_names_gantry_and_leaves_the_token_at_the_api() {
    let mut github = FakeGitHub::start().await;
    github.grants_tokens(TimeDelta::hours(1), 1).await;
    let sha = "0123456789abcdef0123456789abcdef01234567";
    github
        .server
        .serve_tarball("o/r", sha, b"the tarball".to_vec());

    let tarball = github
        .gantry(true)
        .download_tarball(INSTALLATION, "o/r", sha, 1 << 20)
        .await
        .unwrap();

    assert_eq!(tarball, b"the tarball");
    // GitHub refuses a request without a User-Agent, and the token must not follow the redirect
    // to another host: the fake's guard would have answered 403 or 400 (and failed the test).
    let fetched = github.server.downloads().received_requests().await.unwrap();
    let agent = fetched[0]
        .headers
        .get("user-agent")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(agent.starts_with("gantry/"), "{agent}");
    assert!(fetched[0].headers.get("authorization").is_none());
    assert_eq!(fetched.len(), 1);
    assert_eq!(github.server.answered("repos/download-tarball-archive"), 1);
    github.verify();
}
