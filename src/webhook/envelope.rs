//! The few fields ingest stores beside a delivery's raw bytes (action, installation, repository),
//! picked out with a parse that skips everything else. The full typed parse is the
//! dispatcher's job (`crate::events`), off the request path.

use std::borrow::Cow;

use serde::Deserialize;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Envelope {
    pub action: Option<String>,
    pub installation_id: Option<i64>,
    pub repository: Option<String>,
}

#[derive(Deserialize)]
struct RawEnvelope<'a> {
    #[serde(borrow, default)]
    action: Option<Cow<'a, str>>,
    #[serde(default)]
    installation: Option<IdOnly>,
    #[serde(borrow, default)]
    repository: Option<RepositoryName<'a>>,
}

#[derive(Deserialize)]
struct IdOnly {
    id: i64,
}

#[derive(Deserialize)]
struct RepositoryName<'a> {
    #[serde(borrow)]
    full_name: Cow<'a, str>,
}

/// Reads the envelope fields; fails only if the payload is not a JSON object (or those fields
/// have the wrong type), in which case nothing is stored.
pub fn read(payload: &[u8]) -> Result<Envelope, serde_json::Error> {
    let raw: RawEnvelope<'_> = serde_json::from_slice(payload)?;
    Ok(Envelope {
        action: raw.action.map(Cow::into_owned),
        installation_id: raw.installation.map(|i| i.id),
        repository: raw.repository.map(|r| r.full_name.into_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_out_action_installation_and_repository() {
        let payload = br#"{"action":"opened","number":1,"pull_request":{"title":"x","body":null},
            "repository":{"id":1,"full_name":"octo/infra","owner":{"login":"octo"}},
            "installation":{"id":42,"node_id":"abc"}}"#;
        assert_eq!(
            read(payload).unwrap(),
            Envelope {
                action: Some("opened".into()),
                installation_id: Some(42),
                repository: Some("octo/infra".into()),
            }
        );
    }

    #[test]
    fn fields_may_be_absent() {
        assert_eq!(
            read(br#"{"zen":"Keep it logically awesome."}"#).unwrap(),
            Envelope::default()
        );
    }

    #[test]
    fn escaped_strings_are_decoded() {
        let env = read(br#"{"repository":{"full_name":"octo\/infra"}}"#).unwrap();
        assert_eq!(env.repository.as_deref(), Some("octo/infra"));
    }

    #[test]
    fn invalid_json_is_an_error() {
        assert!(read(b"{\"action\":").is_err());
        assert!(read(b"[1,2]").is_err());
        assert!(read(br#"{"installation":{"id":"not a number"}}"#).is_err());
    }

    #[test]
    fn deep_nesting_never_overflows_the_stack() {
        // Skipped fields are skipped without recursion: deep but valid JSON is fine there.
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(read(deep.as_bytes()).unwrap(), Envelope::default());
        // Inside a field we read, serde_json's recursion limit turns it into an error.
        let deep = format!(
            "{{\"repository\":{}{}}}",
            "{\"a\":".repeat(10_000),
            "}".repeat(10_000)
        );
        assert!(read(deep.as_bytes()).is_err());
    }
}
