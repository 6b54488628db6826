//! The last step of registering the app from a manifest: the one-time code GitHub hands back, and
//! the credentials it converts into. Must not log or format the code or the secrets.

use secrecy::SecretString;
use serde::Deserialize;

use super::GitHubError;

/// Longer than any code GitHub issues (they are tens of characters) and short enough for a path.
const MAX_CODE_LEN: usize = 100;

/// A manifest code that is safe to put in a URL path: 1 to 100 ASCII letters, digits, `-`, `_`.
///
/// GitHub's codes are hex today; the wider set leaves room without letting `/`, `.`, `%` or `?`
/// steer the request elsewhere. `Debug` redacts it: until it is used, it is worth an app's keys.
#[derive(Clone, PartialEq, Eq)]
pub struct ManifestCode(String);

impl ManifestCode {
    pub fn parse(code: &str) -> Result<Self, GitHubError> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if (1..=MAX_CODE_LEN).contains(&code.len()) && code.chars().all(allowed) {
            Ok(Self(code.to_owned()))
        } else {
            Err(GitHubError::InvalidManifestCode)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ManifestCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ManifestCode([REDACTED])")
    }
}

/// What GitHub returns for a converted manifest code: the new app and its credentials.
#[derive(Debug, Clone)]
pub struct ManifestConversion {
    pub id: u64,
    pub slug: String,
    pub html_url: String,
    /// The app's private key (PEM), to sign app JWTs with.
    pub pem: SecretString,
    /// The secret GitHub signs webhook deliveries with.
    pub webhook_secret: SecretString,
    pub client_id: Option<String>,
    pub client_secret: Option<SecretString>,
    /// The user or organization that owns the new app.
    pub owner_login: Option<String>,
}

/// The fields we use of GitHub's answer to `POST /app-manifests/{code}/conversions`.
#[derive(Deserialize)]
pub(crate) struct ConversionResponse {
    id: u64,
    slug: String,
    html_url: String,
    pem: SecretString,
    /// Null when the manifest has no webhook (`hook_attributes`); Gantry cannot work without one.
    webhook_secret: Option<SecretString>,
    client_id: Option<String>,
    client_secret: Option<SecretString>,
    owner: Option<Owner>,
}

#[derive(Deserialize)]
struct Owner {
    login: String,
}

impl TryFrom<ConversionResponse> for ManifestConversion {
    type Error = GitHubError;

    fn try_from(response: ConversionResponse) -> Result<Self, GitHubError> {
        let webhook_secret = response.webhook_secret.ok_or_else(|| {
            GitHubError::UnexpectedResponse(
                "the new app has no webhook secret: the manifest must set hook_attributes.url"
                    .to_owned(),
            )
        })?;
        Ok(Self {
            id: response.id,
            slug: response.slug,
            html_url: response.html_url,
            pem: response.pem,
            webhook_secret,
            client_id: response.client_id,
            client_secret: response.client_secret,
            owner_login: response.owner.map(|owner| owner.login),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::github::http::decode;
    use secrecy::ExposeSecret;

    #[test]
    fn codes_github_issues_are_accepted() {
        for code in ["a180b1a3d263c81bc6441d7b990bae27d4c10679", "abc", "A-b_9"] {
            assert_eq!(ManifestCode::parse(code).unwrap().as_str(), code);
        }
    }

    #[test]
    fn codes_that_could_steer_the_request_are_rejected() {
        let too_long = "a".repeat(MAX_CODE_LEN + 1);
        let cases = [
            "",
            "../app",
            "a/b",
            "a%2Fb",
            "a?b=c",
            "a.b",
            "a b",
            "é",
            too_long.as_str(),
        ];
        for code in cases {
            let rejected = ManifestCode::parse(code);
            assert!(
                matches!(rejected, Err(GitHubError::InvalidManifestCode)),
                "{code:?}"
            );
        }
    }

    #[test]
    fn code_debug_is_redacted() {
        let code = ManifestCode::parse("deadbeef").unwrap();
        assert_eq!(format!("{code:?}"), "ManifestCode([REDACTED])");
    }

    fn response(webhook_secret: &str) -> String {
        format!(
            r#"{{"id": 7, "slug": "gantry", "html_url": "https://github.com/apps/gantry",
                "pem": "PEM", "webhook_secret": {webhook_secret}, "client_id": "Iv1.x",
                "client_secret": "cs", "owner": {{"login": "acme", "id": 1}}, "name": "Gantry"}}"#
        )
    }

    #[test]
    fn conversion_keeps_the_fields_gantry_needs() {
        let parsed: ConversionResponse = decode(&response(r#""whsec""#)).unwrap();
        let conversion = ManifestConversion::try_from(parsed).unwrap();
        assert_eq!((conversion.id, conversion.slug.as_str()), (7, "gantry"));
        assert_eq!(conversion.webhook_secret.expose_secret(), "whsec");
        assert_eq!(conversion.owner_login.as_deref(), Some("acme"));
        assert!(!format!("{conversion:?}").contains("whsec"));
    }

    #[test]
    fn conversion_without_a_webhook_secret_is_unexpected() {
        let parsed: ConversionResponse = decode(&response("null")).unwrap();
        let error = ManifestConversion::try_from(parsed).unwrap_err();
        assert!(matches!(error, GitHubError::UnexpectedResponse(_)));
    }
}
