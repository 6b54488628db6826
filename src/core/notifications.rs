//! Notifications (Terraform Cloud's notification configurations): which run changes each
//! trigger names, what a destination is sent — Terraform Cloud's generic payload (version 1),
//! signed with HMAC-SHA512 in `X-TFE-Notification-Signature` when a token is set, or a Slack
//! or Microsoft Teams message — and which URLs may be sent to. Pure.

use hmac::{Hmac, Mac};
use serde_json::{Value, json};

use super::run::RunState;

/// Terraform Cloud's limit of configurations a workspace may have.
pub const MAX_PER_WORKSPACE: usize = 20;
/// The header a signed generic payload carries.
pub const SIGNATURE_HEADER: &str = "X-TFE-Notification-Signature";

/// Where a configuration sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// Terraform Cloud's JSON payload, optionally signed.
    Generic,
    /// A Slack incoming webhook.
    Slack,
    /// A Microsoft Teams incoming webhook.
    MicrosoftTeams,
}

impl Destination {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "generic" => Ok(Destination::Generic),
            "slack" => Ok(Destination::Slack),
            "microsoft-teams" => Ok(Destination::MicrosoftTeams),
            other => Err(format!(
                "`{other}` is not a destination (generic, slack or microsoft-teams)"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Destination::Generic => "generic",
            Destination::Slack => "slack",
            Destination::MicrosoftTeams => "microsoft-teams",
        }
    }
}

/// A configuration as people write it (configuration file or API).
#[derive(Clone, PartialEq, Eq)]
pub struct NotificationSpec {
    pub name: String,
    pub destination: Destination,
    pub url: String,
    /// Signs generic payloads; empty: unsigned. A secret: never in logs or answers.
    pub token: String,
    pub triggers: Vec<String>,
    pub enabled: bool,
}

impl std::fmt::Debug for NotificationSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotificationSpec")
            .field("name", &self.name)
            .field("destination", &self.destination)
            .field("url", &self.url)
            .field(
                "token",
                &if self.token.is_empty() {
                    ""
                } else {
                    "<redacted>"
                },
            )
            .field("triggers", &self.triggers)
            .field("enabled", &self.enabled)
            .finish()
    }
}

impl NotificationSpec {
    /// Why it cannot be, naming the field: `(field, reason)`.
    pub fn problem(&self, own: &[url::Url]) -> Option<(&'static str, String)> {
        let name_ok = !self.name.trim().is_empty() && self.name.chars().count() <= 100;
        if !name_ok {
            return Some(("name", "must be 1 to 100 characters".into()));
        }
        if let Some(why) = url_problem(&self.url, own) {
            return Some(("url", why));
        }
        if self.destination != Destination::Generic && !self.token.is_empty() {
            return Some((
                "token",
                "only a generic destination signs its payloads".into(),
            ));
        }
        check_triggers(&self.triggers)
            .err()
            .map(|why| ("triggers", why))
    }
}

/// Triggers a configuration may name: the run ones and Terraform Cloud's assessment ones.
pub const TRIGGERS: [&str; 9] = [
    "run:created",
    "run:planning",
    "run:needs_attention",
    "run:applying",
    "run:completed",
    "run:errored",
    "assessment:drifted",
    "assessment:check_failure",
    "assessment:failed",
];

/// Checks a configuration's triggers: known, each once.
pub fn check_triggers(triggers: &[String]) -> Result<(), String> {
    for (i, trigger) in triggers.iter().enumerate() {
        if !TRIGGERS.contains(&trigger.as_str()) {
            return Err(format!(
                "`{trigger}` is not a trigger ({})",
                TRIGGERS.join(", ")
            ));
        }
        if triggers[..i].contains(trigger) {
            return Err(format!("`{trigger}` is named twice"));
        }
    }
    Ok(())
}

/// The trigger a run entering `state` fires, with its message; none for a speculative plan
/// (never notified) or a state no trigger names.
pub fn run_trigger(state: RunState, speculative: bool) -> Option<(&'static str, &'static str)> {
    if speculative {
        return None;
    }
    Some(match state {
        RunState::Pending => ("run:created", "Run Created"),
        RunState::Planning => ("run:planning", "Run Planning"),
        RunState::Planned | RunState::PolicyOverride => {
            ("run:needs_attention", "Run Needs Attention")
        }
        RunState::Applying => ("run:applying", "Run Applying"),
        RunState::Applied | RunState::PlannedAndFinished => ("run:completed", "Run Completed"),
        RunState::Errored => ("run:errored", "Run Errored"),
        _ => return None,
    })
}

/// What a notification is about: the run as it was when the trigger fired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunNotice<'a> {
    /// `nc-<id>`
    pub configuration_id: &'a str,
    pub run_url: &'a str,
    /// `run-<id>`
    pub run_id: &'a str,
    pub run_message: &'a str,
    /// RFC 3339, UTC.
    pub run_created_at: &'a str,
    pub run_created_by: &'a str,
    /// `ws-<id>`
    pub workspace_id: &'a str,
    pub workspace_name: &'a str,
    pub organization_name: &'a str,
    pub message: &'a str,
    pub trigger: &'a str,
    /// Terraform Cloud's run status at the trigger ("planning", "planned", "applied", …).
    pub run_status: &'a str,
    pub run_updated_at: &'a str,
    pub run_updated_by: &'a str,
}

/// Terraform Cloud's generic payload, version 1.
pub fn generic_payload(notice: &RunNotice<'_>) -> Value {
    json!({
        "payload_version": 1,
        "notification_configuration_id": notice.configuration_id,
        "run_url": notice.run_url,
        "run_id": notice.run_id,
        "run_message": notice.run_message,
        "run_created_at": notice.run_created_at,
        "run_created_by": notice.run_created_by,
        "workspace_id": notice.workspace_id,
        "workspace_name": notice.workspace_name,
        "organization_name": notice.organization_name,
        "notifications": [{
            "message": notice.message,
            "trigger": notice.trigger,
            "run_status": notice.run_status,
            "run_updated_at": notice.run_updated_at,
            "run_updated_by": notice.run_updated_by,
        }],
    })
}

/// The generic payload of a verification delivery: no run, trigger `verification`.
pub fn verification_payload(configuration_id: &str, organization: &str) -> Value {
    json!({
        "payload_version": 1,
        "notification_configuration_id": configuration_id,
        "run_url": null,
        "run_id": null,
        "run_message": null,
        "run_created_at": null,
        "run_created_by": null,
        "workspace_id": null,
        "workspace_name": null,
        "organization_name": organization,
        "notifications": [{
            "message": "Verification of notification configuration",
            "trigger": "verification",
            "run_status": null,
            "run_updated_at": null,
            "run_updated_by": null,
        }],
    })
}

/// A Slack incoming webhook's message.
pub fn slack_payload(notice: &RunNotice<'_>) -> Value {
    json!({
        "text": format!(
            "{}: <{}|{}> in workspace *{}* is {}",
            notice.message, notice.run_url, notice.run_id, notice.workspace_name,
            notice.run_status
        ),
    })
}

/// A Microsoft Teams incoming webhook's message card about a run.
pub fn teams_payload(notice: &RunNotice<'_>) -> Value {
    teams_card(
        notice.message,
        &format!("{}: {}", notice.message, notice.workspace_name),
        &format!("{} is {}", notice.run_id, notice.run_status),
        Some(("View run", notice.run_url)),
    )
}

/// A Microsoft Teams message card, with a button (`link`: its name and URL) if given.
pub fn teams_card(summary: &str, title: &str, text: &str, link: Option<(&str, &str)>) -> Value {
    let mut card = json!({
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "summary": summary,
        "title": title,
        "text": text,
    });
    if let Some((name, uri)) = link {
        card["potentialAction"] = json!([{
            "@type": "OpenUri",
            "name": name,
            "targets": [{ "os": "default", "uri": uri }],
        }]);
    }
    card
}

/// The hex HMAC-SHA512 of `body` with `token`: what a receiver written for Terraform Cloud
/// checks.
pub fn signature(token: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha512>::new_from_slice(token.as_bytes()).expect("any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Why a configuration may not send to `url`: not http(s), or Gantry itself (`own` are
/// Gantry's own addresses: its public URL and where it listens).
pub fn url_problem(url: &str, own: &[url::Url]) -> Option<String> {
    let Ok(parsed) = url::Url::parse(url) else {
        return Some(format!("`{url}` is not a URL"));
    };
    if !matches!(parsed.scheme(), "http" | "https") {
        return Some(format!("`{}` is not an http(s) URL", parsed.scheme()));
    }
    let Some(host) = parsed.host_str() else {
        return Some("the URL has no host".into());
    };
    let port = parsed.port_or_known_default();
    let target = Place::of(host);
    if own.iter().any(|gantry| {
        let place = gantry.host_str().map(Place::of);
        gantry.port_or_known_default() == port && place.is_some_and(|p| p.reaches(&target))
    }) {
        return Some("the URL points at Gantry itself".into());
    }
    None
}

/// Where a host name leads, as far as telling Gantry's own address apart goes.
#[derive(Debug, PartialEq, Eq)]
enum Place {
    /// `localhost`, 127.0.0.0/8, `::1`.
    Loopback,
    /// `0.0.0.0` or `::`: every address of the machine (what a listener bound to all has).
    Anywhere,
    Named(String),
}

impl Place {
    fn of(host: &str) -> Self {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        match host.parse::<std::net::IpAddr>() {
            Ok(ip) if ip.is_loopback() => Place::Loopback,
            Ok(ip) if ip.is_unspecified() => Place::Anywhere,
            _ if host == "localhost" || host.ends_with(".localhost") => Place::Loopback,
            _ => Place::Named(host),
        }
    }

    /// Whether Gantry at `self` answers at `target` too.
    fn reaches(&self, target: &Place) -> bool {
        match (self, target) {
            (Place::Anywhere | Place::Loopback, Place::Loopback | Place::Anywhere) => true,
            (a, b) => a == b,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice() -> RunNotice<'static> {
        RunNotice {
            configuration_id: "nc-3",
            run_url: "https://gantry.example/runs/7",
            run_id: "run-7",
            run_message: "Queued by a push",
            run_created_at: "2026-12-07T01:00:00Z",
            run_created_by: "octocat",
            workspace_id: "ws-2",
            workspace_name: "prod",
            organization_name: "gantry",
            message: "Run Needs Attention",
            trigger: "run:needs_attention",
            run_status: "planned",
            run_updated_at: "2026-12-07T01:00:05Z",
            run_updated_by: "",
        }
    }

    #[test]
    fn the_generic_payload_is_terraform_clouds() {
        let payload = generic_payload(&notice());
        assert_eq!(payload["payload_version"], 1);
        assert_eq!(payload["notification_configuration_id"], "nc-3");
        assert_eq!(payload["run_id"], "run-7");
        assert_eq!(
            payload["notifications"][0]["trigger"],
            "run:needs_attention"
        );
        assert_eq!(payload["notifications"][0]["run_status"], "planned");
    }

    #[test]
    fn the_signature_is_hex_hmac_sha512_of_the_body() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a\
             6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"
        );
    }

    #[test]
    fn triggers_follow_a_runs_life_and_skip_speculative_plans() {
        let fired: Vec<&str> = [
            RunState::Pending,
            RunState::Fetching,
            RunState::Planning,
            RunState::Planned,
            RunState::Confirmed,
            RunState::Applying,
            RunState::Applied,
        ]
        .into_iter()
        .filter_map(|s| run_trigger(s, false))
        .map(|(t, _)| t)
        .collect();
        assert_eq!(
            fired,
            [
                "run:created",
                "run:planning",
                "run:needs_attention",
                "run:applying",
                "run:completed"
            ]
        );
        assert_eq!(run_trigger(RunState::Planning, true), None);
        assert_eq!(run_trigger(RunState::Canceled, false), None);
        assert!(check_triggers(&["run:nope".into()]).is_err());
        assert!(check_triggers(&["run:created".into(), "run:created".into()]).is_err());
    }

    #[test]
    fn only_http_urls_elsewhere_than_gantry() {
        let own = [url::Url::parse("http://127.0.0.1:8080/").unwrap()];
        assert_eq!(url_problem("https://hooks.example.com/x", &own), None);
        assert_eq!(url_problem("http://127.0.0.1:9000/hook", &own), None);
        assert!(
            url_problem("http://127.0.0.1:8080/api/v1/x", &own)
                .unwrap()
                .contains("itself")
        );
        assert!(
            url_problem("file:///etc/passwd", &own)
                .unwrap()
                .contains("http(s)")
        );
        assert!(url_problem("not a url", &own).is_some());
        assert!(url_problem("http://localhost:8080/x", &own).is_some());
        let everywhere = [url::Url::parse("http://0.0.0.0:8080/").unwrap()];
        for at_gantry in [
            "http://127.0.0.1:8080/",
            "http://[::1]:8080/",
            "http://localhost:8080/",
        ] {
            assert!(url_problem(at_gantry, &everywhere).is_some(), "{at_gantry}");
        }
        assert_eq!(url_problem("http://127.0.0.1:9000/", &everywhere), None);
    }
}
