//! Catching up after downtime: at start Gantry lists the App's recent deliveries and asks GitHub
//! to redeliver each failed one it never stored, and only those.

mod common;

use std::time::Duration;

use common::{TestGantry, wait_until};
use serde_json::json;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, ResponseTemplate};

#[tokio::test]
async fn at_start_missed_deliveries_are_redelivered_and_nothing_else() {
    let mut gantry = TestGantry::start().await;
    // One delivery arrived before; three were attempted while Gantry was "down".
    let body = common::fixture("webhooks/ping.json");
    assert_eq!(
        gantry
            .send("installation", "stored-1", &body)
            .await
            .status(),
        202
    );
    Mock::given(method("GET"))
        .and(path("/app/hook/deliveries"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            { "id": 11, "guid": "missed-1", "status_code": 0, "event": "push" },
            { "id": 12, "guid": "missed-1", "status_code": 502, "event": "push" },
            { "id": 13, "guid": "stored-1", "status_code": 503, "event": "installation" },
            { "id": 14, "guid": "fine-1", "status_code": 202, "event": "push" },
            { "id": 15, "guid": "missed-2", "status_code": 500, "event": "pull_request" },
        ])))
        .mount(&gantry.github)
        .await;
    Mock::given(method("POST"))
        .and(path_regex(r"^/app/hook/deliveries/\d+/attempts$"))
        .respond_with(ResponseTemplate::new(202).set_body_json(json!({})))
        .mount(&gantry.github)
        .await;

    gantry.restart_with(|_| {}).await;
    let asked = wait_until(Duration::from_secs(10), || async {
        let requests = gantry.github.received_requests().await.unwrap_or_default();
        let mut asked: Vec<String> = requests
            .iter()
            .filter(|r| r.method.as_str() == "POST" && r.url.path().ends_with("/attempts"))
            .map(|r| r.url.path().to_string())
            .collect();
        asked.sort();
        (asked.len() >= 2).then_some(asked)
    })
    .await
    .expect("redeliveries were asked for");
    assert_eq!(
        asked,
        [
            "/app/hook/deliveries/12/attempts",
            "/app/hook/deliveries/15/attempts"
        ]
    );
    let listing = gantry
        .github
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.url.path() == "/app/hook/deliveries")
        .unwrap();
    let auth = listing
        .headers
        .get("authorization")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        auth.starts_with("Bearer ey"),
        "asked with the App's JWT: {auth}"
    );
}
