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

/// A delivery as GitHub lists it, attempted `minutes_ago` minutes ago (negative: later).
fn listed(id: i64, guid: &str, status_code: i64, minutes_ago: i64) -> serde_json::Value {
    let at = chrono::Utc::now() - chrono::Duration::minutes(minutes_ago);
    json!({
        "id": id, "guid": guid, "status_code": status_code, "event": "push",
        "delivered_at": at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    })
}

#[tokio::test]
async fn more_than_a_page_of_missed_deliveries_is_paged_back_to_the_last_one_stored() {
    let mut gantry = TestGantry::start().await;
    let body = common::fixture("webhooks/ping.json");
    gantry.send("installation", "stored-1", &body).await;
    gantry.wait_for_outcome("stored-1").await;

    // 150 deliveries failed while Gantry was down, newest first; GitHub lists 100 a page.
    let missed: Vec<serde_json::Value> = (0..150)
        .map(|n| listed(1000 - n, &format!("missed-{n}"), 502, 0))
        .collect();
    let mut older = missed[100..].to_vec();
    // Then the one Gantry stored, and one it failed long before that (an hour before: a
    // periodic pass asked for it then).
    older.push(listed(700, "stored-1", 202, 0));
    older.push(listed(600, "failed-long-ago", 500, 60));
    let api = gantry.github.uri();
    let next = |cursor: &str| {
        format!("<{api}/app/hook/deliveries?per_page=100&cursor={cursor}>; rel=\"next\"")
    };
    Mock::given(method("GET"))
        .and(path("/app/hook/deliveries"))
        .and(wiremock::matchers::query_param_is_missing("cursor"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("link", next("v1_page2").as_str())
                .set_body_json(&missed[..100]),
        )
        .mount(&gantry.github)
        .await;
    Mock::given(method("GET"))
        .and(path("/app/hook/deliveries"))
        .and(wiremock::matchers::query_param("cursor", "v1_page2"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("link", next("v1_page3").as_str())
                .set_body_json(&older),
        )
        .mount(&gantry.github)
        .await;
    Mock::given(method("GET"))
        .and(path("/app/hook/deliveries"))
        .and(wiremock::matchers::query_param("cursor", "v1_page3"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([listed(
            500,
            "failed-even-longer-ago",
            500,
            120
        )])))
        .mount(&gantry.github)
        .await;
    Mock::given(method("POST"))
        .and(path_regex(r"^/app/hook/deliveries/\d+/attempts$"))
        .respond_with(ResponseTemplate::new(202).set_body_json(json!({})))
        .mount(&gantry.github)
        .await;

    // What the first start asked for (before any of this was listed) does not count.
    let before = gantry
        .github
        .received_requests()
        .await
        .unwrap_or_default()
        .len();
    gantry.restart_with(|_| {}).await;
    let asked = wait_until(Duration::from_secs(20), || async {
        let requests = gantry.github.received_requests().await.unwrap_or_default();
        let asked: Vec<String> = requests[before..]
            .iter()
            .filter(|r| r.method.as_str() == "POST" && r.url.path().ends_with("/attempts"))
            .map(|r| r.url.path().to_string())
            .collect();
        (asked.len() >= 150).then_some(asked)
    })
    .await;
    let requests = gantry.github.received_requests().await.unwrap_or_default();
    let pages: Vec<String> = requests[before..]
        .iter()
        .filter(|r| r.url.path() == "/app/hook/deliveries")
        .map(|r| r.url.query().unwrap_or_default().to_string())
        .collect();
    let asked = asked
        .unwrap_or_else(|| panic!("not every missed delivery was asked for; pages: {pages:?}"));
    let mut expected: Vec<String> = (0..150)
        .map(|n| format!("/app/hook/deliveries/{}/attempts", 1000 - n))
        .collect();
    let mut asked = asked;
    asked.sort();
    expected.sort();
    assert_eq!(
        asked, expected,
        "each missed delivery once, and nothing older"
    );
    assert_eq!(
        pages,
        ["per_page=100", "per_page=100&cursor=v1_page2"],
        "paged back to the last delivery stored, no further"
    );
}

#[tokio::test]
async fn a_periodic_pass_pages_back_to_the_previous_pass() {
    // No catch-up of its own: this test drives one, pass by pass.
    let gantry = TestGantry::start_with(|env| {
        env.insert("GANTRY_DISPATCHER_ENABLED".into(), "false".into());
    })
    .await;
    let body = common::fixture("webhooks/ping.json");
    gantry.send("installation", "stored-1", &body).await;
    let app = gantry::github::AppCredentials::new(
        common::APP_ID,
        &secrecy::SecretString::from(
            std::fs::read_to_string(common::fixture_path("keys/test-app.pem")).unwrap(),
        ),
    )
    .unwrap();
    let github =
        gantry::github::GitHub::new(url::Url::parse(&gantry.github.uri()).unwrap(), Some(app))
            .unwrap();
    let mut catch_up =
        gantry::engine::catch_up::CatchUp::new(gantry.store.clone(), std::sync::Arc::new(github));
    Mock::given(method("POST"))
        .and(path_regex(r"^/app/hook/deliveries/\d+/attempts$"))
        .respond_with(ResponseTemplate::new(202).set_body_json(json!({})))
        .mount(&gantry.github)
        .await;

    // The first pass finds nothing missed.
    Mock::given(method("GET"))
        .and(path("/app/hook/deliveries"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!([listed(700, "stored-1", 202, 0)])),
        )
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&gantry.github)
        .await;
    assert_eq!(catch_up.once().await.unwrap(), 0);

    // Then 120 deliveries fail while Gantry is up (say it answered 500 for a while).
    let failed: Vec<serde_json::Value> = (0..120)
        .map(|n| listed(2000 - n, &format!("failed-{n}"), 500, 0))
        .collect();
    let mut older = failed[100..].to_vec();
    older.push(listed(700, "stored-1", 202, 60));
    let api = gantry.github.uri();
    let next = |cursor: &str| {
        format!("<{api}/app/hook/deliveries?per_page=100&cursor={cursor}>; rel=\"next\"")
    };
    Mock::given(method("GET"))
        .and(path("/app/hook/deliveries"))
        .and(wiremock::matchers::query_param_is_missing("cursor"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("link", next("v1_page2").as_str())
                .set_body_json(&failed[..100]),
        )
        .mount(&gantry.github)
        .await;
    Mock::given(method("GET"))
        .and(path("/app/hook/deliveries"))
        .and(wiremock::matchers::query_param("cursor", "v1_page2"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("link", next("v1_page3").as_str())
                .set_body_json(&older),
        )
        .mount(&gantry.github)
        .await;
    assert_eq!(catch_up.once().await.unwrap(), 120, "every one of them");
    let pages: Vec<String> = gantry
        .github
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/app/hook/deliveries")
        .map(|r| r.url.query().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        pages,
        [
            "per_page=100",
            "per_page=100",
            "per_page=100&cursor=v1_page2"
        ],
        "the second pass stops at the page that reaches the first"
    );
    assert_eq!(catch_up.once().await.unwrap(), 0, "asked once each");
}
