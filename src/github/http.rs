//! Building octocrab clients and making the few raw calls whose answers hold secrets. Must not
//! decide anything, and must not put a response body or a secret in an error or a log.
//!
//! Clients are built inside a tokio runtime: octocrab spawns a worker task for each.

use std::time::Duration;

use chrono::Utc;
use http::Method;
use octocrab::{
    DefaultOctocrabBuilderConfig, NoAuth, NoSvc, NotLayerReady, Octocrab, OctocrabBuilder,
};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use url::Url;

use super::GitHubError;

/// A client for `api_url` that sends `Authorization: Bearer <token>` on every request (octocrab
/// sends it only to `api_url`'s host, so a redirect elsewhere does not leak it).
///
/// It never retries by itself: what failed is retried by its caller's own policy (the outbox,
/// the dispatcher), with backoff and rate limits honoured, so every request GitHub sees is
/// one Gantry decided to send.
pub(crate) fn bearer_client(
    api_url: &Url,
    token: &SecretString,
    timeout: Duration,
) -> Result<Octocrab, GitHubError> {
    // octocrab panics on a token that is not a valid header value; refuse it first.
    check_header_safe(token, "token")?;
    Ok(builder(api_url, timeout)?
        .add_retry_config(octocrab::service::middleware::retry::RetryConfig::None)
        .personal_token(token.clone())
        .build()?)
}

/// A client for `api_url` that sends no credentials and never retries: it carries the
/// manifest flow's one-time code, which a retry after a lost answer would find already used.
pub(crate) fn anonymous_client(api_url: &Url) -> Result<Octocrab, GitHubError> {
    Ok(builder(api_url, DEFAULT_TIMEOUT)?
        .add_retry_config(octocrab::service::middleware::retry::RetryConfig::None)
        .build()?)
}

type Builder = OctocrabBuilder<NoSvc, DefaultOctocrabBuilderConfig, NoAuth, NotLayerReady>;

/// How long a request may wait for GitHub unless configured otherwise.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Bounded waits: a token renewal holds its installation's slot, so a GitHub that never answers
/// must not hold it for ever.
fn builder(api_url: &Url, timeout: Duration) -> Result<Builder, GitHubError> {
    Ok(Octocrab::builder()
        .base_uri(api_url.as_str())?
        .add_header(::http::header::USER_AGENT, crate::USER_AGENT.to_owned())
        .set_connect_timeout(Some(timeout.min(Duration::from_secs(10))))
        .set_read_timeout(Some(timeout))
        .set_write_timeout(Some(timeout)))
}

/// Sends one API request and decodes the JSON answer; also says how GitHub answered (the
/// status, or `error` when no answer came), for counting. A refusal carries GitHub's message
/// (one bounded line) and, for a rate limit, how long GitHub asked to wait. A success comes
/// with the answer's headers (a list's `Link` to its next page).
pub(crate) async fn send_json<T: DeserializeOwned>(
    client: &Octocrab,
    method: &Method,
    route: &str,
    body: Option<&serde_json::Value>,
) -> (String, Result<(T, http::HeaderMap), GitHubError>) {
    let sent = match *method {
        Method::GET => client._get(route).await,
        Method::PATCH => client._patch(route, body).await,
        Method::PUT => client._put(route, body).await,
        _ => client._post(route, body).await,
    };
    let response = match sent {
        Ok(response) => response,
        Err(error) => return ("error".to_owned(), Err(error.into())),
    };
    let status = response.status();
    let headers = response.headers().clone();
    let text = match client.body_to_string(response).await {
        Ok(text) => text,
        Err(error) => return ("error".to_owned(), Err(error.into())),
    };
    let answer = if status.is_success() {
        decode(if text.trim().is_empty() {
            "null"
        } else {
            &text
        })
        .map(|value| (value, headers))
    } else {
        let message = error_message(&text, status);
        let retry_after =
            super::limits::wait_from_response(status.as_u16(), &headers, &message, Utc::now());
        Err(GitHubError::Http {
            status: status.as_u16(),
            message,
            retry_after,
        })
    };
    (status.as_u16().to_string(), answer)
}

/// GitHub's `message`, or the status's reason when the body has none.
fn error_message(body: &str, status: http::StatusCode) -> String {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        message: Option<String>,
    }
    let message = serde_json::from_str::<ErrorBody>(body)
        .ok()
        .and_then(|b| b.message)
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned());
    super::error::first_line(&message)
}

/// Decodes `body`, naming only the path of a field that does not fit.
pub(crate) fn decode<T: DeserializeOwned>(body: &str) -> Result<T, GitHubError> {
    let mut json = serde_json::Deserializer::from_str(body);
    serde_path_to_error::deserialize(&mut json).map_err(|error| {
        let path = error.path().to_string();
        GitHubError::UnexpectedResponse(format!("missing or malformed field at `{path}`"))
    })
}

/// Refuses a credential from GitHub that could not travel in an HTTP header.
pub(crate) fn check_header_safe(secret: &SecretString, what: &str) -> Result<(), GitHubError> {
    let value = secret.expose_secret();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(GitHubError::UnexpectedResponse(format!(
            "the {what} is empty or has characters a header cannot carry"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Shape {
        #[allow(dead_code)]
        count: u64,
    }

    #[test]
    fn decoding_error_names_the_field_not_its_value() {
        let error = decode::<Shape>(r#"{"count": "s3cr3t-value"}"#).unwrap_err();
        let shown = error.to_string();
        assert!(shown.contains("count"), "{shown}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
    }

    #[test]
    fn non_json_body_is_an_unexpected_response() {
        let error = decode::<Shape>("<html>oops</html>").unwrap_err();
        assert!(matches!(error, GitHubError::UnexpectedResponse(_)));
    }

    #[test]
    fn header_unsafe_tokens_are_refused() {
        for bad in ["", "two words", "line\nbreak", "tab\t", "é"] {
            let refused = check_header_safe(&SecretString::from(bad), "token");
            assert!(refused.is_err(), "{bad:?}");
        }
        assert!(check_header_safe(&SecretString::from("ghs_abc123"), "token").is_ok());
    }

    #[tokio::test]
    async fn clients_build_for_a_path_prefixed_api_url() {
        let api = Url::parse("https://ghe.example.com/api/v3").unwrap();
        assert!(anonymous_client(&api).is_ok());
        let token = SecretString::from("ghs_abc");
        assert!(bearer_client(&api, &token, DEFAULT_TIMEOUT).is_ok());
    }
}
