//! The edge to notification receivers (Terraform Cloud's notification configurations): what a
//! configuration is sent — Terraform Cloud's generic payload, signed with its token, or a Slack
//! or Teams message (`core::notifications`) — over HTTP(S), and how the receiver answered.
//! Redirects are not followed (a receiver cannot bounce a delivery somewhere else), and an
//! answer's body is kept only in part.

use std::time::Duration;

use serde_json::Value;
use url::Url;

use crate::core::notifications::{
    Destination, NotificationSpec, RunNotice, SIGNATURE_HEADER, generic_payload, signature,
    slack_payload, teams_payload, verification_payload,
};

/// How long a receiver may take to answer.
const TIMEOUT: Duration = Duration::from_secs(10);
/// How much of an answer's body is kept.
const KEPT_BODY: usize = 500;

/// How a receiver answered one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// None when nothing answered (no connection, a timeout).
    pub status: Option<u16>,
    /// The start of the body, or why there was no answer.
    pub detail: String,
}

impl Answer {
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }

    /// A receiver's 4xx will not change by sending again (but 408 and 429 may).
    pub fn is_final(&self) -> bool {
        self.status
            .is_some_and(|s| (400..500).contains(&s) && s != 408 && s != 429)
    }

    /// One line for people: "answered 500: …" or "did not answer: …".
    pub fn describe(&self) -> String {
        match self.status {
            Some(status) => format!("the receiver answered {status}: {}", self.detail),
            None => format!("the receiver did not answer: {}", self.detail),
        }
    }
}

pub struct Notifier {
    http: reqwest::Client,
    /// Gantry's organization, as receivers see it.
    organization: String,
}

impl Notifier {
    pub fn new(organization: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .user_agent(crate::USER_AGENT)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(TIMEOUT)
            .build()?;
        Ok(Self {
            http,
            organization: organization.to_string(),
        })
    }

    pub fn organization(&self) -> &str {
        &self.organization
    }

    /// Sends a run's notification as the configuration's destination takes it.
    pub async fn send(&self, spec: &NotificationSpec, notice: &RunNotice<'_>) -> Answer {
        let body = match spec.destination {
            Destination::Generic => generic_payload(notice),
            Destination::Slack => slack_payload(notice),
            Destination::MicrosoftTeams => teams_payload(notice),
        };
        self.post(spec, &body).await
    }

    /// Sends an assessment's notification as the configuration's destination takes it.
    pub async fn send_assessment(
        &self,
        spec: &NotificationSpec,
        notice: &crate::core::assessments::AssessmentNotice<'_>,
    ) -> Answer {
        use crate::core::assessments as payloads;
        let body = match spec.destination {
            Destination::Generic => payloads::generic_payload(notice),
            Destination::Slack => payloads::slack_payload(notice),
            Destination::MicrosoftTeams => payloads::teams_payload(notice),
        };
        self.post(spec, &body).await
    }

    /// The delivery that checks a configuration before it is used.
    pub async fn verify(&self, spec: &NotificationSpec, configuration_id: &str) -> Answer {
        let body = match spec.destination {
            Destination::Generic => verification_payload(configuration_id, &self.organization),
            Destination::Slack => serde_json::json!({
                "text": format!("Gantry verifies the notification configuration {}", spec.name)
            }),
            Destination::MicrosoftTeams => crate::core::notifications::teams_card(
                "Verification",
                "Verification",
                &format!(
                    "Gantry verifies the notification configuration {}",
                    spec.name
                ),
                None,
            ),
        };
        self.post(spec, &body).await
    }

    async fn post(&self, spec: &NotificationSpec, body: &Value) -> Answer {
        let Ok(url) = Url::parse(&spec.url) else {
            return Answer {
                status: None,
                detail: "the URL does not parse".into(),
            };
        };
        let body = body.to_string();
        let mut request = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        if spec.destination == Destination::Generic && !spec.token.is_empty() {
            request = request.header(SIGNATURE_HEADER, signature(&spec.token, body.as_bytes()));
        }
        match request.body(body).send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let text = response.text().await.unwrap_or_default();
                Answer {
                    status: Some(status),
                    detail: text.chars().take(KEPT_BODY).collect(),
                }
            }
            // Without the URL: it may hold a secret (a Slack webhook's path does).
            Err(error) => Answer {
                status: None,
                detail: error.without_url().to_string(),
            },
        }
    }
}
