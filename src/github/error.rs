//! What can go wrong talking to GitHub, as variants a caller can branch on. No message may carry a
//! token, a private key, a manifest code or a response body that could hold one.

use thiserror::Error;

/// The longest message from GitHub we keep: enough for "Bad credentials" and its kin, not enough
/// to carry a whole HTML error page from a proxy into our logs.
const MAX_MESSAGE_CHARS: usize = 200;

#[derive(Debug, Error)]
pub enum GitHubError {
    /// No app credentials yet: the app has not been registered (manifest flow) or configured.
    #[error(
        "the GitHub App is not set up yet: register it through the setup page or configure its app id and private key"
    )]
    NotConfigured,

    /// The configured private key is not an RSA private key in PEM form.
    #[error(
        "the GitHub App private key is not a valid RSA private key in PEM form (PKCS#1 or PKCS#8)"
    )]
    BadPrivateKey,

    /// The GitHub API URL is not an absolute http(s) URL without query or fragment.
    #[error("the GitHub API URL must be an http or https URL with a host and no query or fragment")]
    BadApiUrl,

    /// A GitHub App manifest code that cannot be one GitHub issued; nothing was sent.
    #[error(
        "the GitHub App manifest code is not valid: expected up to 100 letters, digits, '-' or '_'"
    )]
    InvalidManifestCode,

    /// GitHub answered with a status other than success. `retry_after`: it was a rate limit,
    /// and GitHub asked for this wait before the next request.
    #[error("GitHub answered {status}: {message}")]
    Http {
        status: u16,
        message: String,
        retry_after: Option<std::time::Duration>,
    },

    /// Not sent: Gantry's own limits hold this installation's requests back for `wait` (GitHub
    /// asked for a pause, or the minute's allowance of content-creating requests is used up).
    #[error("held back by rate limits for {} s", wait.as_secs().max(1))]
    Throttled { wait: std::time::Duration },

    /// GitHub answered with success but a body we cannot use. The text names what was wrong
    /// (a field's path), never a value.
    #[error("unexpected response from GitHub: {0}")]
    UnexpectedResponse(String),

    /// The app JWT could not be signed.
    #[error("could not sign the GitHub App JWT")]
    Signing(#[source] jsonwebtoken::errors::Error),

    /// A download (not an API call) failed on the way.
    #[error("downloading from GitHub failed: {0}")]
    Download(String),

    /// A download was larger than Gantry accepts.
    #[error("the download is larger than {0} bytes")]
    TooLarge(usize),

    /// The request did not get an answer: connection, TLS, timeout, or building the client.
    #[error("could not reach GitHub")]
    Transport(#[source] Box<octocrab::Error>),
}

impl GitHubError {
    /// The HTTP status GitHub answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// GitHub refused for good: a 4xx that is not a rate limit (a 403 or 429 may be one).
    /// Server errors, no answer and Gantry's own limits may pass.
    pub fn is_final(&self) -> bool {
        self.retry_after().is_none()
            && self
                .status()
                .is_some_and(|s| (400..500).contains(&s) && s != 403 && s != 429)
    }

    /// How long to wait before trying again, when a rate limit (GitHub's or Gantry's own)
    /// says so.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Self::Http { retry_after, .. } => *retry_after,
            Self::Throttled { wait } => Some(*wait),
            _ => None,
        }
    }
}

impl From<octocrab::Error> for GitHubError {
    fn from(error: octocrab::Error) -> Self {
        match error {
            octocrab::Error::GitHub { source, .. } => Self::Http {
                status: source.status_code.as_u16(),
                message: first_line(&source.message),
                retry_after: None,
            },
            // A body we asked octocrab to decode; its serde message may quote a value.
            octocrab::Error::Json { source, .. } => {
                Self::UnexpectedResponse(format!("cannot decode the field at `{}`", source.path()))
            }
            octocrab::Error::Serde { .. } => {
                Self::UnexpectedResponse("the body is not the JSON expected".to_owned())
            }
            other => Self::Transport(Box::new(other)),
        }
    }
}

/// The first line of GitHub's message, bounded, so an error page cannot flood a log line.
pub(crate) fn first_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or_default().trim();
    line.chars().take(MAX_MESSAGE_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_messages_are_cut_to_one_bounded_line() {
        let long = format!("{}\nsecond line", "x".repeat(500));
        assert_eq!(first_line(&long), "x".repeat(MAX_MESSAGE_CHARS));
        assert_eq!(first_line("Bad credentials"), "Bad credentials");
    }

    #[test]
    fn only_http_errors_have_a_status() {
        let http = GitHubError::Http {
            status: 401,
            message: "Bad credentials".into(),
            retry_after: None,
        };
        assert_eq!(http.status(), Some(401));
        assert_eq!(GitHubError::NotConfigured.status(), None);
    }

    #[test]
    fn only_a_refusal_that_is_not_a_rate_limit_is_final() {
        let http = |status, retry_after| GitHubError::Http {
            status,
            message: String::new(),
            retry_after,
        };
        assert!(http(404, None).is_final());
        assert!(http(422, None).is_final());
        for passing in [403, 429, 500, 502] {
            assert!(!http(passing, None).is_final(), "{passing}");
        }
        let wait = Some(std::time::Duration::from_secs(1));
        assert!(!http(404, wait).is_final());
        assert!(!GitHubError::Download("reset".into()).is_final());
    }
}
