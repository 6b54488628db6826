//! Health assessments (drift detection) with real Terraform 1.15.5 and the tests' provider
//! (`tools/test-provider`: `drift_object`, an object on an HTTP server this test runs and
//! changes behind Terraform's back), installed from a filesystem mirror: drift is found and
//! shown (API, GitHub issue, notification, /metrics) once per change and cleared; a run that
//! starts cancels an assessment; an errored latest run pauses them; when one is due, by a
//! clock the test sets and moves (Gantry's scheduler starts it by itself then).

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use common::runs::{Harness, REPO, sha, tarball_of_files};
use common::terraform_cli::start_with_terraform_1_15;
use common::wait_until;
use gantry::core::assessments::pick_due;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Objects by path; while `slow` is set, reads wait (an assessment caught mid-refresh).
#[derive(Clone, Default)]
struct Objects {
    held: Arc<Mutex<HashMap<String, String>>>,
    slow: Arc<std::sync::atomic::AtomicBool>,
    /// While set, reads fail (500): the provider errors.
    broken: Arc<std::sync::atomic::AtomicBool>,
    reads: Arc<std::sync::atomic::AtomicUsize>,
}

impl Objects {
    fn set(&self, name: &str, content: &str) {
        self.held
            .lock()
            .unwrap()
            .insert(name.to_string(), content.to_string());
    }

    fn get(&self, name: &str) -> Option<String> {
        self.held.lock().unwrap().get(name).cloned()
    }
}

/// The HTTP server `drift_object`s live on: its base URL.
async fn object_server(objects: Objects) -> String {
    use axum::routing::get;
    async fn read(State(o): State<Objects>, Path(name): Path<String>) -> (StatusCode, String) {
        o.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        while o.slow.load(std::sync::atomic::Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if o.broken.load(std::sync::atomic::Ordering::SeqCst) {
            return (StatusCode::INTERNAL_SERVER_ERROR, "down".into());
        }
        match o.get(&name) {
            Some(content) => (StatusCode::OK, content),
            None => (StatusCode::NOT_FOUND, String::new()),
        }
    }
    async fn write(State(o): State<Objects>, Path(name): Path<String>, body: String) -> StatusCode {
        o.set(&name, &body);
        StatusCode::NO_CONTENT
    }
    async fn delete(State(o): State<Objects>, Path(name): Path<String>) -> StatusCode {
        o.held.lock().unwrap().remove(&name);
        StatusCode::NO_CONTENT
    }
    let app = axum::Router::new()
        .route("/objects/{name}", get(read).put(write).delete(delete))
        .with_state(objects);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/objects", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

/// Two objects and a check that the first still says hello.
const MAIN_TF: &str = r#"
terraform {
  required_providers {
    drift = { source = "gantry.test/test/drift" }
  }
}
variable "base" {
  type = string
}
resource "drift_object" "a" {
  url     = "${var.base}/a"
  content = "hello"
}
resource "drift_object" "b" {
  url     = "${var.base}/b"
  content = "world"
}
check "a_says_hello" {
  assert {
    condition     = drift_object.a.content == "hello"
    error_message = "a no longer says hello"
  }
}
variable "outside" {
  type = string
}
# An assessment is Terraform running the configuration's code too: it sees nothing of the host
# beyond its sandbox (this file exists outside it).
check "sees_nothing_outside" {
  assert {
    condition     = !fileexists(var.outside)
    error_message = "the assessment saw a file outside its sandbox"
  }
}
"#;

/// A file on the host, outside what the sandbox shows (not under `.tools`, not in `/tmp`).
fn file_outside_the_sandbox() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/outside-the-sandbox");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{:016x}.txt", rand::random::<u64>()));
    std::fs::write(&file, "host").unwrap();
    file
}

fn config(base: &str) -> String {
    let rc = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/providers/terraform.rc");
    assert!(
        rc.exists(),
        "{} missing: run scripts/install-test-provider",
        rc.display()
    );
    format!(
        r#"
[[workspaces]]
name = "prod"
repo = "octo-org/infra"
terraform_version = "1.15.5"
auto_apply = true
assessments = true
assessment_interval = "1h"
[workspaces.vars]
base = "{base}"
outside = "{outside}"
[workspaces.env]
TF_CLI_CONFIG_FILE = "{rc}"
"#,
        rc = rc.display(),
        outside = file_outside_the_sandbox().display()
    )
}

/// Gantry with the workspace applied once: both objects exist.
async fn applied(objects: &Objects) -> Harness {
    let base = object_server(objects.clone()).await;
    let h = start_with_terraform_1_15(&config(&base)).await;
    h.serve_tarball_bytes(&sha(1), tarball_of_files(&sha(1), &[("main.tf", MAIN_TF)]))
        .await;
    let run = h.push(&sha(1)).await;
    let done = h.wait_for(run, "applied").await;
    assert_eq!(objects.get("a").as_deref(), Some("hello"), "{done}");
    h
}

/// Asks for an assessment and waits for it to end: the assessment, in full.
async fn assess(h: &Harness) -> Value {
    let before = h.api_get("/api/v1/workspaces/prod/assessments").await;
    let newest = before[0]["id"].as_i64().unwrap_or(0);
    let (status, answer) = h
        .api_post("/api/v1/workspaces/prod/assessments", json!({}))
        .await;
    assert_eq!(status, 202, "{answer}");
    let id = wait_until(Duration::from_secs(120), || async {
        let list = h.api_get("/api/v1/workspaces/prod/assessments").await;
        let first = &list[0];
        (first["id"].as_i64() > Some(newest) && first["status"] != "running")
            .then(|| first["id"].as_i64().unwrap())
    })
    .await
    .expect("the assessment ended");
    h.api_get(&format!("/api/v1/workspaces/prod/assessments/{id}"))
        .await
}

/// Asks for an assessment and holds it in its refresh: Terraform has asked for an object and
/// waits for the answer until `objects.slow` is cleared.
async fn assessment_caught_refreshing(h: &Harness, objects: &Objects) {
    let reads_before = objects.reads.load(std::sync::atomic::Ordering::SeqCst);
    objects
        .slow
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let (status, answer) = h
        .api_post("/api/v1/workspaces/prod/assessments", json!({}))
        .await;
    assert_eq!(status, 202, "{answer}");
    wait_until(Duration::from_secs(60), || async {
        (objects.reads.load(std::sync::atomic::Ordering::SeqCst) > reads_before).then_some(())
    })
    .await
    .expect("the assessment is refreshing");
}

/// A receiver subscribed to `triggers` of the workspace (verified: it answers 200).
async fn receiver(h: &Harness, triggers: Value) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let (status, made) = h
        .api_post(
            "/api/v1/workspaces/prod/notification-configurations",
            json!({ "name": "ops", "destination": "generic",
                    "url": format!("{}/hook", server.uri()), "triggers": triggers }),
        )
        .await;
    assert_eq!(status, 201, "{made}");
    server
}

/// The triggers a receiver got, verification first.
async fn triggers(server: &MockServer) -> Vec<(String, Value)> {
    let requests = server.received_requests().await.unwrap_or_default();
    requests
        .iter()
        .map(|r| {
            let body: Value = serde_json::from_slice(&r.body).unwrap();
            let trigger = body["trigger"]
                .as_str()
                .or(body["notifications"][0]["trigger"].as_str())
                .unwrap()
                .to_string();
            (trigger, body)
        })
        .collect()
}

#[tokio::test]
async fn drift_behind_gantrys_back_is_found_shown_once_and_cleared() {
    let objects = Objects::default();
    let h = applied(&objects).await;
    let hook = receiver(
        &h,
        json!([
            "assessment:drifted",
            "assessment:check_failure",
            "assessment:failed"
        ]),
    )
    .await;

    // Nothing changed: no drift, no issue, no notification.
    let clean = assess(&h).await;
    assert_eq!(clean["status"], "finished", "{clean}");
    assert_eq!(clean["drifted"], false, "{clean}");
    assert_eq!(clean["resources_total"], 2, "{clean}");
    assert_eq!(clean["checks_failed"], 0, "{clean}");
    assert_eq!(
        clean["checks_passed"], 2,
        "the sandbox hid the host's file: {clean}"
    );
    assert!(
        clean["log"].as_str().unwrap().contains("refresh-only plan"),
        "{clean}"
    );

    // Someone changes `a` outside Terraform.
    objects.set("a", "changed by hand");
    let drifted = assess(&h).await;
    assert_eq!(drifted["status"], "finished", "{drifted}");
    assert_eq!(drifted["drifted"], true, "{drifted}");
    assert_eq!(drifted["resources_drifted"], 1);
    assert_eq!(
        drifted["drifted_resources"],
        json!([{ "address": "drift_object.a", "actions": ["update"],
                 "attributes": ["content"] }])
    );
    assert_eq!(drifted["checks_failed"], 1);
    assert_eq!(
        drifted["failed_checks"][0]["messages"],
        json!(["a no longer says hello"])
    );
    h.outbox_drained().await;
    let issues = h.gantry.github.issues(REPO);
    assert_eq!(issues.len(), 1, "one issue for the drifted workspace");
    assert_eq!(issues[0].state, "open");
    assert!(issues[0].title.contains("prod"), "{}", issues[0].title);
    assert!(
        issues[0]
            .body
            .contains("| `drift_object.a` | changed | `content` |"),
        "{}",
        issues[0].body
    );
    assert!(
        !issues[0].body.contains("changed by hand"),
        "values are never shown"
    );
    let sent = triggers(&hook).await;
    let names: Vec<&str> = sent.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        names,
        [
            "verification",
            "assessment:drifted",
            "assessment:check_failure"
        ]
    );
    let payload = &sent[1].1;
    assert_eq!(payload["payload_version"], "2");
    assert_eq!(payload["workspace_name"], "prod");
    assert_eq!(
        payload["details"]["new_assessment_result"]["resources_drifted"],
        1
    );
    assert_eq!(
        payload["details"]["prior_assessment_result"]["drifted"],
        false
    );
    let metrics = h.gantry.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("gantry_workspaces_drifted 1"), "{metrics}");

    // The same drift again: no new issue, no edit, no notification.
    let again = assess(&h).await;
    assert_eq!(again["drifted"], true);
    h.outbox_drained().await;
    let issues = h.gantry.github.issues(REPO);
    assert_eq!((issues.len(), issues[0].edits), (1, 0));
    assert_eq!(triggers(&hook).await.len(), 3);

    // Drift that changes updates the issue; `b` deleted behind Terraform's back.
    objects.held.lock().unwrap().remove("b");
    let more = assess(&h).await;
    assert_eq!(more["resources_drifted"], 2, "{more}");
    h.outbox_drained().await;
    let issues = h.gantry.github.issues(REPO);
    assert_eq!((issues.len(), issues[0].edits), (1, 1));
    assert!(
        issues[0].body.contains("| `drift_object.b` | deleted |"),
        "{}",
        issues[0].body
    );

    // Put back as the code says: the issue is closed.
    objects.set("a", "hello");
    objects.set("b", "world");
    let fixed = assess(&h).await;
    assert_eq!(fixed["drifted"], false, "{fixed}");
    h.outbox_drained().await;
    let issues = h.gantry.github.issues(REPO);
    assert_eq!(issues.len(), 1);
    assert_eq!(issues[0].state, "closed");
    let metrics = h.gantry.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("gantry_workspaces_drifted 0"), "{metrics}");
}

#[tokio::test]
async fn a_run_that_starts_cancels_the_assessment_under_way() {
    let objects = Objects::default();
    let h = applied(&objects).await;
    assessment_caught_refreshing(&h, &objects).await;

    h.serve_tarball_bytes(&sha(2), tarball_of_files(&sha(2), &[("main.tf", MAIN_TF)]))
        .await;
    let run = h.push(&sha(2)).await;
    let canceled = wait_until(Duration::from_secs(30), || async {
        let list = h.api_get("/api/v1/workspaces/prod/assessments").await;
        (list[0]["status"] == "canceled").then(|| list[0].clone())
    })
    .await
    .expect("the assessment was canceled");
    assert!(
        canceled["error"]
            .as_str()
            .unwrap()
            .contains("a run of the workspace started"),
        "{canceled}"
    );
    objects
        .slow
        .store(false, std::sync::atomic::Ordering::SeqCst);
    h.wait_for(run, "planned_and_finished").await;
    // A canceled assessment is no result: nothing was sent.
    h.outbox_drained().await;
    assert!(h.gantry.github.issues(REPO).is_empty());
}

#[tokio::test]
async fn assessments_come_due_by_the_clock_and_pause_while_the_latest_run_errored() {
    let objects = Objects::default();
    let h = applied(&objects).await;
    let store = &h.gantry.store;
    // Terraform Cloud's API says so too.
    let tfe = h
        .call(
            "GET",
            "/api/v2/organizations/gantry/workspaces/prod",
            &h.token,
            Value::Null,
        )
        .await;
    assert_eq!(
        tfe.body["data"]["attributes"]["assessments-enabled"], true,
        "{}",
        tfe.body
    );
    let schedules = store.assessment_schedules(None).await.unwrap();
    let applied_at = schedules[0].last_applied_at_ms.unwrap();
    let hour = 3_600_000;
    // An hour after the apply, not a moment before.
    assert!(pick_due(&schedules, applied_at + hour - 1, 2).is_empty());
    assert_eq!(
        pick_due(&schedules, applied_at + hour, 2),
        vec![schedules[0].workspace]
    );
    // The cap: no room, none starts.
    assert!(pick_due(&schedules, applied_at + hour, 0).is_empty());

    // An assessment moves the next one an interval on from its end.
    let done = assess(&h).await;
    let finished = done["finished_at_ms"].as_i64().unwrap();
    let schedules = store.assessment_schedules(None).await.unwrap();
    assert!(pick_due(&schedules, finished + hour - 1, 2).is_empty());
    assert_eq!(pick_due(&schedules, finished + hour, 2).len(), 1);

    // Nobody asks: the scheduler starts it when the clock says it is due.
    let count = h
        .api_get("/api/v1/workspaces/prod/assessments")
        .await
        .as_array()
        .unwrap()
        .len();
    h.gantry.clock.advance(Duration::from_secs(3600));
    let by_itself = wait_until(Duration::from_secs(120), || async {
        let list = h.api_get("/api/v1/workspaces/prod/assessments").await;
        (list.as_array().unwrap().len() > count && list[0]["status"] == "finished")
            .then(|| list[0].clone())
    })
    .await
    .expect("the due assessment ran by itself");
    assert_eq!(by_itself["drifted"], false, "{by_itself}");

    // A run that errors pauses them, whenever it is.
    let broken = "resource \"drift_object\" \"a\" {\n  url = undefined_thing\n}\n";
    h.serve_tarball_bytes(&sha(3), tarball_of_files(&sha(3), &[("main.tf", broken)]))
        .await;
    let run = h.push(&sha(3)).await;
    h.wait_for(run, "errored").await;
    let schedules = store.assessment_schedules(None).await.unwrap();
    assert!(pick_due(&schedules, finished + 100 * hour, 2).is_empty());
    let (status, answer) = h
        .api_post("/api/v1/workspaces/prod/assessments", json!({}))
        .await;
    assert_eq!(status, 409, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("the latest run errored"),
        "{answer}"
    );
}

#[tokio::test]
async fn people_see_health_badges_the_drift_page_and_assess_now_from_the_ui() {
    use common::browser::{Browser, hidden};
    let objects = Objects::default();
    let h = applied(&objects).await;
    objects.set("b", "moved on");
    let mut browser = Browser::new(&h.gantry.url);
    let (status, _) = browser.sign_in(&h.token).await;
    assert_eq!(status, reqwest::StatusCode::SEE_OTHER);
    let (_, page, _) = browser.get("/workspaces/prod").await;
    assert!(page.contains("Not assessed yet."), "{page}");
    let csrf = hidden(&page, "csrf");
    let (status, location) = browser
        .post("/workspaces/prod/assessments", &[("csrf", &csrf)])
        .await;
    assert_eq!(status, reqwest::StatusCode::SEE_OTHER);
    assert_eq!(location.as_deref(), Some("/workspaces/prod#health"));
    let id = wait_until(Duration::from_secs(120), || async {
        let list = h.api_get("/api/v1/workspaces/prod/assessments").await;
        (list[0]["status"] == "finished").then(|| list[0]["id"].as_i64().unwrap())
    })
    .await
    .expect("the assessment ended");

    let (_, list, _) = browser.get("/").await;
    assert!(list.contains("Drifted: 1 of 2 resources"), "{list}");
    let (_, page, _) = browser.get("/workspaces/prod").await;
    assert!(page.contains("Drifted: 1 of 2 resources"), "{page}");
    assert!(
        page.contains(&format!("/workspaces/prod/assessments/{id}")),
        "{page}"
    );
    let (status, drift, _) = browser
        .get(&format!("/workspaces/prod/assessments/{id}"))
        .await;
    assert_eq!(status, 200);
    assert!(drift.contains("<code>drift_object.b</code>"), "{drift}");
    assert!(drift.contains("<code>content</code>"), "{drift}");
    assert!(drift.contains("refresh-only plan"), "{drift}");
    // Another workspace's number, or none: not found.
    let (status, _, _) = browser.get("/workspaces/prod/assessments/999").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn an_assessment_a_restart_interrupts_runs_again_after_it() {
    let objects = Objects::default();
    let mut h = applied(&objects).await;
    assessment_caught_refreshing(&h, &objects).await;
    let first = h.api_get("/api/v1/workspaces/prod/assessments").await[0].clone();

    // Gantry stops mid-assessment: its Terraform is stopped with it (the stop would wait for
    // it otherwise), and the assessment is no result.
    h.gantry.restart_with(|_| {}).await;
    let interrupted = h
        .api_get(&format!(
            "/api/v1/workspaces/prod/assessments/{}",
            first["id"]
        ))
        .await;
    assert_eq!(interrupted["status"], "canceled", "{interrupted}");
    assert!(
        interrupted["error"]
            .as_str()
            .unwrap()
            .contains("runs again"),
        "{interrupted}"
    );
    // The restarted Gantry runs it again, and it finishes.
    objects
        .slow
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let again = wait_until(Duration::from_secs(120), || async {
        let list = h.api_get("/api/v1/workspaces/prod/assessments").await;
        (list[0]["id"].as_i64() > first["id"].as_i64() && list[0]["status"] == "finished")
            .then(|| list[0].clone())
    })
    .await
    .expect("the assessment ran again");
    assert_eq!(again["drifted"], false, "{again}");
}

#[tokio::test]
async fn an_open_drift_issue_whose_number_was_lost_is_taken_up_not_opened_twice() {
    let objects = Objects::default();
    let h = applied(&objects).await;
    // Opened by a send that stopped before Gantry kept its number.
    let number = h
        .gantry
        .github
        .open_issue(REPO, &gantry::core::assessments::issue_title("prod"));
    objects.set("a", "changed by hand");
    let drifted = assess(&h).await;
    assert_eq!(drifted["drifted"], true, "{drifted}");
    h.outbox_drained().await;
    let issues = h.gantry.github.issues(REPO);
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert_eq!((issues[0].number, issues[0].edits), (number, 1));
    assert!(
        issues[0].body.contains("drift_object.a"),
        "{}",
        issues[0].body
    );
    // And it is closed as Gantry's own when the drift is gone.
    objects.set("a", "hello");
    assess(&h).await;
    h.outbox_drained().await;
    assert_eq!(h.gantry.github.issues(REPO)[0].state, "closed");
}

#[tokio::test]
async fn an_assessment_that_errors_says_why_and_notifies_once() {
    let objects = Objects::default();
    let h = applied(&objects).await;
    let hook = receiver(&h, json!(["assessment:failed"])).await;
    objects
        .broken
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let errored = assess(&h).await;
    assert_eq!(errored["status"], "errored", "{errored}");
    assert!(
        errored["error"].as_str().unwrap().contains("GET failed"),
        "Terraform's own reason: {errored}"
    );
    let again = assess(&h).await;
    assert_eq!(again["status"], "errored", "{again}");
    h.outbox_drained().await;
    let sent = triggers(&hook).await;
    let names: Vec<&str> = sent.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        names,
        ["verification", "assessment:failed"],
        "the same error twice: once"
    );
    let result = &sent[1].1["details"]["new_assessment_result"];
    assert_eq!(result["succeeded"], false);
    assert!(result["error_msg"].as_str().unwrap().contains("GET failed"));
    // An error says nothing of drift: no issue.
    assert!(h.gantry.github.issues(REPO).is_empty());
    let metrics = h.gantry.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("gantry_workspaces_assessment_errored 1"),
        "{metrics}"
    );
}
