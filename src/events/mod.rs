//! Typed GitHub webhook payloads: turns an event name (the `X-GitHub-Event` header) and a body
//! into an [`Event`] holding only the fields Gantry uses. Unknown fields are ignored and actions
//! are plain strings, so GitHub adding to a payload never breaks us. No I/O and no decisions here.

mod checks;
mod common;
mod installation;
mod issue_comment;
mod merge_group;
mod ping;
mod pull_request;
mod push;

use crate::core::InstallationId;
use serde::de::DeserializeOwned;

pub use checks::{
    BranchRef, CheckRun, CheckRunEvent, CheckRunSuite, CheckSuite, CheckSuiteEvent,
    CheckSuitePullRequest, RequestedAction,
};
pub use common::{Account, InstallationRef, Repository};
pub use installation::{
    Installation, InstallationEvent, InstallationRepositoriesEvent, InstallationRepository,
};
pub use issue_comment::{
    ChangedFrom, Comment, CommentChanges, Issue, IssueCommentEvent, IssuePullRequest,
};
pub use merge_group::{MergeGroup, MergeGroupEvent};
pub use ping::{Hook, PingEvent};
pub use pull_request::{
    BaseRef, BaseRepository, HeadRef, HeadRepository, PullRequest, PullRequestEvent,
};
pub use push::{Commit, PushEvent, Pusher};

/// One webhook delivery's payload, by event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Push(PushEvent),
    PullRequest(PullRequestEvent),
    IssueComment(IssueCommentEvent),
    CheckRun(CheckRunEvent),
    CheckSuite(CheckSuiteEvent),
    MergeGroup(MergeGroupEvent),
    Installation(InstallationEvent),
    InstallationRepositories(InstallationRepositoriesEvent),
    Ping(PingEvent),
    /// An event Gantry does not handle; its payload was not read.
    Unsupported {
        event: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// The payload is not JSON, or a field Gantry needs is missing or has the wrong type.
    /// `path` is where in the JSON, e.g. `pull_request.head.sha` or `commits[0].id`.
    #[error("invalid {event} payload at {path}: {message}")]
    Invalid {
        event: String,
        path: String,
        message: String,
    },
}

/// Parses a payload for the event named by the `X-GitHub-Event` header.
///
/// Events Gantry does not handle become [`Event::Unsupported`] without looking at the payload.
pub fn parse(event: &str, payload: &[u8]) -> Result<Event, EventError> {
    Ok(match event {
        "push" => Event::Push(decode(event, payload)?),
        "pull_request" => Event::PullRequest(decode(event, payload)?),
        "issue_comment" => Event::IssueComment(decode(event, payload)?),
        "check_run" => Event::CheckRun(decode(event, payload)?),
        "check_suite" => Event::CheckSuite(decode(event, payload)?),
        "merge_group" => Event::MergeGroup(decode(event, payload)?),
        "installation" => Event::Installation(decode(event, payload)?),
        "installation_repositories" => Event::InstallationRepositories(decode(event, payload)?),
        "ping" => Event::Ping(decode(event, payload)?),
        _ => Event::Unsupported {
            event: event.to_owned(),
        },
    })
}

fn decode<T: DeserializeOwned>(event: &str, payload: &[u8]) -> Result<T, EventError> {
    let invalid = |path: String, message: String| EventError::Invalid {
        event: event.to_owned(),
        path,
        message,
    };
    let mut deserializer = serde_json::Deserializer::from_slice(payload);
    let value = serde_path_to_error::deserialize(&mut deserializer)
        .map_err(|err| invalid(err.path().to_string(), err.into_inner().to_string()))?;
    // Trailing bytes after the JSON value mean the body is not what GitHub sent.
    deserializer
        .end()
        .map_err(|err| invalid(".".to_owned(), err.to_string()))?;
    Ok(value)
}

impl Event {
    /// The event name, as in the `X-GitHub-Event` header.
    pub fn name(&self) -> &str {
        match self {
            Event::Push(_) => "push",
            Event::PullRequest(_) => "pull_request",
            Event::IssueComment(_) => "issue_comment",
            Event::CheckRun(_) => "check_run",
            Event::CheckSuite(_) => "check_suite",
            Event::MergeGroup(_) => "merge_group",
            Event::Installation(_) => "installation",
            Event::InstallationRepositories(_) => "installation_repositories",
            Event::Ping(_) => "ping",
            Event::Unsupported { event } => event,
        }
    }

    /// The GitHub App installation the event is for; `None` for deliveries from a plain
    /// (non-App) webhook, for `ping` and for unsupported events.
    pub fn installation_id(&self) -> Option<InstallationId> {
        let installation = match self {
            Event::Push(e) => e.installation,
            Event::PullRequest(e) => e.installation,
            Event::IssueComment(e) => e.installation,
            Event::CheckRun(e) => e.installation,
            Event::CheckSuite(e) => e.installation,
            Event::MergeGroup(e) => e.installation,
            Event::Installation(e) => return Some(e.installation.id),
            Event::InstallationRepositories(e) => return Some(e.installation.id),
            Event::Ping(_) | Event::Unsupported { .. } => None,
        };
        installation.map(|i| i.id)
    }

    /// `owner/name` of the repository the event happened in; `None` for installation events
    /// (they can cover many repositories), organization pings and unsupported events.
    pub fn repository_full_name(&self) -> Option<&str> {
        let repository = match self {
            Event::Push(e) => &e.repository,
            Event::PullRequest(e) => &e.repository,
            Event::IssueComment(e) => &e.repository,
            Event::CheckRun(e) => &e.repository,
            Event::CheckSuite(e) => &e.repository,
            Event::MergeGroup(e) => &e.repository,
            Event::Ping(e) => e.repository.as_ref()?,
            Event::Installation(_)
            | Event::InstallationRepositories(_)
            | Event::Unsupported { .. } => return None,
        };
        Some(&repository.full_name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn fixture(name: &str) -> Value {
        let path = format!("{}/fixtures/webhooks/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    fn parse_value(event: &str, payload: &Value) -> Result<Event, EventError> {
        parse(event, &serde_json::to_vec(payload).unwrap())
    }

    fn invalid_path(result: Result<Event, EventError>) -> (String, String, String) {
        match result {
            Err(EventError::Invalid {
                event,
                path,
                message,
            }) => (event, path, message),
            Ok(event) => panic!("expected an error, parsed {event:?}"),
        }
    }

    #[test]
    fn wrong_type_at_a_known_field_names_its_path() {
        let mut payload = fixture("pull_request.opened.json");
        payload["pull_request"]["head"]["sha"] = json!(42);
        let (event, path, message) = invalid_path(parse_value("pull_request", &payload));
        assert_eq!(event, "pull_request");
        assert_eq!(path, "pull_request.head.sha");
        assert!(
            message.starts_with("invalid type: integer `42`"),
            "{message}"
        );
    }

    #[test]
    fn missing_field_inside_a_list_names_the_element() {
        let mut payload = fixture("push.5.json");
        payload["commits"][0].as_object_mut().unwrap().remove("id");
        let (_, path, message) = invalid_path(parse_value("push", &payload));
        assert_eq!(path, "commits[0]");
        assert!(message.starts_with("missing field `id`"), "{message}");
    }

    #[test]
    fn error_message_names_event_and_path() {
        let mut payload = fixture("check_run.created.json");
        payload["check_run"]["id"] = json!("not a number");
        let err = parse_value("check_run", &payload).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid check_run payload at check_run.id: invalid type: string"),
            "{err}"
        );
    }

    #[test]
    fn body_that_is_not_json_is_invalid_at_the_root() {
        let (_, path, _) = invalid_path(parse("ping", b"zen: yes"));
        assert_eq!(path, ".");
    }

    #[test]
    fn trailing_bytes_after_the_payload_are_invalid() {
        let (_, path, message) = invalid_path(parse("ping", b"{} {}"));
        assert_eq!(path, ".");
        assert!(message.starts_with("trailing characters"), "{message}");
    }

    #[test]
    fn unknown_event_is_unsupported_without_reading_the_payload() {
        let event = parse("workflow_run", b"not json at all").unwrap();
        assert_eq!(
            event,
            Event::Unsupported {
                event: "workflow_run".to_owned()
            }
        );
        assert_eq!(event.name(), "workflow_run");
        assert_eq!(event.installation_id(), None);
        assert_eq!(event.repository_full_name(), None);
    }

    #[test]
    fn unknown_action_still_parses() {
        let mut payload = fixture("pull_request.opened.json");
        payload["action"] = json!("teleported");
        let Event::PullRequest(event) = parse_value("pull_request", &payload).unwrap() else {
            panic!("not a pull_request");
        };
        assert_eq!(event.action, "teleported");
    }

    #[test]
    fn unknown_values_and_extra_fields_still_parse() {
        let mut payload = fixture("check_run.completed.json");
        payload["check_run"]["conclusion"] = json!("exploded");
        payload["sender"]["type"] = json!("Enterprise");
        payload["brand_new_field"] = json!({ "nested": [1, 2, 3] });
        let Event::CheckRun(event) = parse_value("check_run", &payload).unwrap() else {
            panic!("not a check_run");
        };
        assert_eq!(event.check_run.conclusion.as_deref(), Some("exploded"));
        assert_eq!(event.sender.r#type, "Enterprise");
        assert!(!event.sender.is_bot());
    }

    #[test]
    fn installation_id_comes_from_the_installation_field() {
        let with = parse_value("push", &fixture("push.5.json")).unwrap();
        assert_eq!(with.installation_id(), Some(InstallationId(1)));
        let without = parse_value("push", &fixture("push.json")).unwrap();
        assert_eq!(without.installation_id(), None);
        let installed = parse_value("installation", &fixture("installation.created.json")).unwrap();
        assert_eq!(installed.installation_id(), Some(InstallationId(957387)));
    }

    #[test]
    fn repository_full_name_is_none_for_installation_events() {
        let push = parse_value("push", &fixture("push.5.json")).unwrap();
        assert_eq!(push.repository_full_name(), Some("Codertocat/Hello-World"));
        let installed = parse_value("installation", &fixture("installation.created.json")).unwrap();
        assert_eq!(installed.repository_full_name(), None);
        let org_ping = parse_value("ping", &fixture("ping.4.json")).unwrap();
        assert_eq!(org_ping.repository_full_name(), None);
    }
}
