//! The fake GitHub's guard: a request GitHub would refuse gets GitHub's answer, and is recorded
//! so that the test which sent it fails. Requests here are made by hand, not by Gantry.

use chrono::Utc;
use gantry::github::AppCredentials;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use wiremock::{Mock, ResponseTemplate};

mod common;

use common::FakeGitHub;

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";
const TOKEN: &str = "Bearer ghs_test";
const AGENT: &str = "gantry/0.1.0";

/// An answer for every valid request, below the guard.
async fn answer_everything(github: &FakeGitHub) {
    for server in [&**github, github.downloads()] {
        Mock::given(wiremock::matchers::any())
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
            .mount(server)
            .await;
    }
}

fn app_jwt() -> String {
    let key = SecretString::from(String::from_utf8(common::fixture("keys/test-app.pem")).unwrap());
    let jwt = AppCredentials::new(42, &key).unwrap().app_jwt(Utc::now());
    format!("Bearer {}", jwt.unwrap().expose_secret())
}

/// A request with exactly these headers (reqwest adds no `User-Agent` of its own).
struct Call {
    method: &'static str,
    url: String,
    agent: Option<&'static str>,
    auth: Option<String>,
    body: Option<Value>,
}

impl Call {
    fn api(github: &FakeGitHub, method: &'static str, path: &str) -> Self {
        Self {
            method,
            url: format!("{}{path}", github.uri()),
            agent: Some(AGENT),
            auth: Some(TOKEN.to_owned()),
            body: None,
        }
    }

    fn auth(self, auth: Option<String>) -> Self {
        Self { auth, ..self }
    }

    fn agent(self, agent: Option<&'static str>) -> Self {
        Self { agent, ..self }
    }

    fn body(self, body: Value) -> Self {
        Self {
            body: Some(body),
            ..self
        }
    }

    /// The status and GitHub's message.
    async fn send(self) -> (u16, String) {
        let method = reqwest::Method::from_bytes(self.method.as_bytes()).unwrap();
        let mut request = reqwest::Client::new().request(method, &self.url);
        if let Some(agent) = self.agent {
            request = request.header("user-agent", agent);
        }
        if let Some(auth) = self.auth {
            request = request.header("authorization", auth);
        }
        if let Some(body) = self.body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or_default();
        (status, body["message"].as_str().unwrap_or("").to_owned())
    }
}

fn status(description: &str) -> Value {
    json!({ "state": "success", "context": "gantry/prod", "description": description })
}

#[tokio::test]
async fn requests_that_keep_the_contract_reach_the_mocks() {
    let github = FakeGitHub::start().await;
    answer_everything(&github).await;
    let statuses = format!("/repos/o/r/statuses/{SHA}");
    let downloads = format!("{}/o/r/legacy.tar.gz/{SHA}", github.downloads().uri());
    let calls = [
        Call::api(&github, "POST", &statuses).body(status(&"x".repeat(140))),
        Call::api(&github, "GET", "/app/hook/deliveries?per_page=100").auth(Some(app_jwt())),
        Call::api(&github, "POST", "/app-manifests/abc/conversions").auth(None),
        Call::api(&github, "GET", "/api/v3/repos/o/r/pulls/12/files"),
        Call::api(&github, "GET", "/repos/o/r/compare/1111111...2222222"),
        Call::api(&github, "GET", "/repos/o/r/commits/feature/x/statuses"),
        Call {
            url: downloads,
            auth: None,
            ..Call::api(&github, "GET", "")
        },
    ];

    for call in calls {
        let url = call.url.clone();
        assert_eq!(call.send().await.0, 200, "{url}");
    }
    assert!(github.take_violations().is_empty());
}

#[tokio::test]
async fn requests_github_refuses_get_its_answer_and_are_recorded() {
    let github = FakeGitHub::start().await;
    answer_everything(&github).await;
    let statuses = format!("/repos/o/r/statuses/{SHA}");
    let check_run = json!({ "name": "gantry/prod", "head_sha": SHA, "status": "completed" });
    let download = Call {
        url: format!("{}/o/r/legacy.tar.gz/{SHA}", github.downloads().uri()),
        ..Call::api(&github, "GET", "")
    };
    let cases = [
        (
            "no User-Agent",
            Call::api(&github, "POST", &statuses)
                .body(status("ok"))
                .agent(None),
            403,
            common::github::contract::NO_USER_AGENT,
        ),
        (
            "only another User-Agent",
            Call::api(&github, "GET", "/repos/o/r/pulls/12").agent(Some("curl/8")),
            403,
            common::github::contract::NO_USER_AGENT,
        ),
        (
            "an operation GitHub does not have",
            Call::api(&github, "GET", "/repos/o/r/statuses"),
            404,
            "Not Found",
        ),
        (
            "a path parameter of the wrong type",
            Call::api(&github, "PATCH", "/repos/o/r/check-runs/latest").body(check_run.clone()),
            404,
            "Not Found",
        ),
        (
            "a status description over 140 characters",
            Call::api(&github, "POST", &statuses).body(status(&"x".repeat(141))),
            422,
            "Invalid request.",
        ),
        (
            "a state the schema does not list",
            Call::api(&github, "POST", &statuses).body(json!({ "state": "done" })),
            422,
            "Invalid request.",
        ),
        (
            "a completed check run without a conclusion",
            Call::api(&github, "POST", "/repos/o/r/check-runs").body(check_run),
            422,
            "Invalid request.",
        ),
        (
            "a comment over 65,536 characters",
            Call::api(&github, "POST", "/repos/o/r/issues/12/comments")
                .body(json!({ "body": "x".repeat(65_537) })),
            422,
            "Invalid request.",
        ),
        (
            "an installation token on the app's endpoints",
            Call::api(&github, "GET", "/app/hook/deliveries"),
            401,
            "A JSON web token could not be decoded",
        ),
        (
            "the app JWT on an installation's endpoint",
            Call::api(&github, "POST", &statuses)
                .body(status("ok"))
                .auth(Some(app_jwt())),
            403,
            "Resource not accessible by integration",
        ),
        (
            "no credential",
            Call::api(&github, "GET", "/repos/o/r/pulls/12").auth(None),
            401,
            "Requires authentication",
        ),
        (
            "the API's token on the download host",
            download.auth(Some(TOKEN.to_owned())),
            400,
            "Only one auth mechanism allowed",
        ),
    ];

    for (name, call, status, message) in cases {
        let answer = call.send().await;
        assert_eq!(answer.0, status, "{name}: {}", answer.1);
        assert!(answer.1.starts_with(message), "{name}: {}", answer.1);
        let recorded = github.take_violations();
        assert_eq!(recorded.len(), 1, "{name}: {recorded:?}");
    }
}

#[tokio::test]
#[should_panic(expected = "request(s) GitHub would refuse")]
async fn a_request_github_refuses_fails_the_test_that_sent_it() {
    let github = FakeGitHub::start().await;
    Call::api(&github, "GET", "/repos/o/r/pulls/12")
        .agent(None)
        .send()
        .await;
}
