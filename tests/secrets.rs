//! Secrets stay secret: through a whole scenario (a push planned and applied with a sensitive
//! variable, a pull request planned and commented on, a comment command, API and UI reads),
//! nothing Gantry logged, answered or sent to GitHub contains the webhook secret, the App's
//! private key, an installation token, an API token or a sensitive variable's value.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::github::{Fault, PullRequest};
use common::runs::{Harness, REPO, sha};
use common::{SECRET, fixture};
use gantry::core::PrNumber;
use serde_json::{Value, json};

const SENSITIVE: &str = "s3nsitive-Value-4711";

const WORKSPACE: &str = r#"
[[workspaces]]
name = "prod"
repo = "octo-org/infra"
terraform_version = "1.0.3"
[workspaces.vars]
name = "world"
secret = { value = "s3nsitive-Value-4711", sensitive = true }
[workspaces.env]
TF_VAR_unused = { value = "s3nsitive-Value-4711", sensitive = true }
"#;

/// Everything the process logs, at every level.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_secret_appears_in_logs_run_output_api_answers_or_requests_to_github() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter("trace")
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    let h = Harness::start(WORKSPACE, None).await;
    let github = &h.gantry.github;
    github.open_pull_request(REPO, 7, PullRequest::open(&sha(2), &["main.tf"]));
    // The command's permission check gets no permission: GitHub answers 404.
    github.outage(
        "repos/get-collaborator-permission-level",
        Fault::not_found(),
    );

    // A push, planned and applied: Terraform prints the sensitive value in plan and apply.
    h.serve_tarball(&sha(1), "outputs").await;
    let run = h.push(&sha(1)).await;
    h.wait_for(run, "planned").await;
    h.action(run, "confirm").await;
    h.wait_for(run, "applied").await;

    // A pull request plan, and a command refused for want of a permission answer.
    h.serve_tarball(&sha(2), "outputs-v2").await;
    let mut pr: Value =
        serde_json::from_slice(&fixture("webhooks/pull_request.opened.json")).unwrap();
    pr["number"] = 7.into();
    pr["pull_request"]["number"] = 7.into();
    pr["pull_request"]["head"]["sha"] = sha(2).into();
    pr["pull_request"]["head"]["repo"]["full_name"] = REPO.into();
    pr["pull_request"]["base"]["ref"] = "main".into();
    pr["pull_request"]["base"]["repo"]["full_name"] = REPO.into();
    pr["repository"]["full_name"] = REPO.into();
    pr["repository"]["default_branch"] = "main".into();
    pr["installation"] = json!({ "id": 99 });
    let body = serde_json::to_vec(&pr).unwrap();
    assert_eq!(
        h.gantry.send("pull_request", "pr-1", &body).await.status(),
        202
    );
    h.gantry.wait_for_outcome("pr-1").await;
    common::wait_until(std::time::Duration::from_secs(60), || async {
        let ids = h
            .gantry
            .store
            .pull_request_runs(REPO, PrNumber(7))
            .await
            .ok()?;
        let run = h.gantry.store.run(*ids.first()?).await.ok()??;
        run.state.is_final().then_some(())
    })
    .await
    .expect("the plan finished");
    // Bad requests are answered with errors that must not echo secrets either.
    let wrong = h
        .gantry
        .post_webhook(
            &[
                ("X-GitHub-Event", "push"),
                ("X-GitHub-Delivery", "bad-1"),
                ("X-Hub-Signature-256", "sha256=00"),
                ("Content-Type", "application/json"),
            ],
            b"{}".to_vec(),
        )
        .await;
    assert_eq!(wrong.status(), 401);
    let mut seen = wrong.text().await.unwrap();
    wait_for_outbox(&h).await;

    // What people read.
    for route in [
        format!("/api/v1/runs/{run}"),
        format!("/api/v1/runs/{run}/logs/plan"),
        format!("/api/v1/runs/{run}/logs/apply"),
        "/api/v1/workspaces".to_string(),
        "/api/v1/workspaces/prod/runs".to_string(),
        "/metrics".to_string(),
    ] {
        let response = h
            .gantry
            .http
            .get(format!("{}{route}", h.gantry.url))
            .bearer_auth(&h.token)
            .send()
            .await
            .unwrap();
        seen.push_str(&response.text().await.unwrap());
    }
    assert!(seen.contains("secret_echo"), "the outputs were read");
    // What Gantry sent GitHub (bodies; the token rightly travels in the Authorization header).
    for request in github.received_requests().await.unwrap() {
        seen.push_str(&String::from_utf8_lossy(&request.body));
        seen.push_str(request.url.as_str());
    }
    let logs = String::from_utf8_lossy(&captured.0.lock().unwrap()).to_string();
    assert!(logs.contains("run executing"), "the logs were captured");
    seen.push_str(&logs);

    let key = String::from_utf8(fixture("keys/test-app.pem")).unwrap();
    let key_line = key.lines().nth(1).unwrap().to_string();
    let tokens = github.issued_tokens();
    assert!(!tokens.is_empty(), "installation tokens were used");
    for token in &tokens {
        assert!(
            !seen.contains(token.as_str()),
            "an installation token leaked"
        );
    }
    for (what, secret) in [
        ("the sensitive variable", SENSITIVE),
        ("the webhook secret", SECRET),
        ("the private key", key_line.as_str()),
        ("the API token", h.token.as_str()),
    ] {
        assert!(!seen.contains(secret), "{what} leaked");
    }
}

async fn wait_for_outbox(h: &Harness) {
    common::wait_until(std::time::Duration::from_secs(30), || async {
        (h.gantry.store.outbox_pending().await.ok()? == 0).then_some(())
    })
    .await
    .expect("the outbox drained");
}
