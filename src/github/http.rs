//! Building octocrab clients and making the few raw calls whose answers hold secrets. Must not
//! decide anything, and must not put a response body or a secret in an error or a log.
//!
//! Clients are built inside a tokio runtime: octocrab spawns a worker task for each.

use std::time::Duration;

use octocrab::{
    DefaultOctocrabBuilderConfig, NoAuth, NoSvc, NotLayerReady, Octocrab, OctocrabBuilder,
};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use url::Url;

use super::GitHubError;

/// A client for `api_url` that sends `Authorization: Bearer <token>` on every request (octocrab
/// sends it only to `api_url`'s host, so a redirect elsewhere does not leak it).
pub(crate) fn bearer_client(api_url: &Url, token: &SecretString) -> Result<Octocrab, GitHubError> {
    // octocrab panics on a token that is not a valid header value; refuse it first.
    check_header_safe(token, "token")?;
    Ok(builder(api_url)?.personal_token(token.clone()).build()?)
}

/// A client for `api_url` that sends no credentials and never retries: it carries the
/// manifest flow's one-time code, which a retry after a lost answer would find already used.
pub(crate) fn anonymous_client(api_url: &Url) -> Result<Octocrab, GitHubError> {
    Ok(builder(api_url)?
        .add_retry_config(octocrab::service::middleware::retry::RetryConfig::None)
        .build()?)
}

type Builder = OctocrabBuilder<NoSvc, DefaultOctocrabBuilderConfig, NoAuth, NotLayerReady>;

/// Bounded waits: a token renewal holds its installation's slot, so a GitHub that never answers
/// must not hold it for ever.
fn builder(api_url: &Url) -> Result<Builder, GitHubError> {
    Ok(Octocrab::builder()
        .base_uri(api_url.as_str())?
        .set_connect_timeout(Some(Duration::from_secs(10)))
        .set_read_timeout(Some(Duration::from_secs(30)))
        .set_write_timeout(Some(Duration::from_secs(30))))
}

/// POSTs no body to `route` (relative to the client's base URI) and decodes the JSON answer.
///
/// The body is decoded here rather than by octocrab so a decoding error can name the field
/// without quoting its value, which may be a secret.
pub(crate) async fn post_json<T: DeserializeOwned>(
    client: &Octocrab,
    route: &str,
) -> Result<T, GitHubError> {
    let response = client._post(route, None::<&()>).await?;
    let response = octocrab::map_github_error(response).await?;
    let body = client.body_to_string(response).await?;
    decode(&body)
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
        assert!(bearer_client(&api, &SecretString::from("ghs_abc")).is_ok());
    }
}
