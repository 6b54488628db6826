//! Catching up after downtime: at start Gantry lists the App's recent deliveries and asks GitHub
//! to redeliver each failed one it never stored, and only those.

mod common;

use std::time::Duration;

use common::github::HookDelivery;
use common::{TestGantry, wait_until};

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
    for (id, guid, status_code, event) in [
        (11, "missed-1", 0, "push"),
        (12, "missed-1", 502, "push"),
        (13, "stored-1", 503, "installation"),
        (14, "fine-1", 202, "push"),
        (15, "missed-2", 500, "pull_request"),
    ] {
        gantry.github.add_delivery(HookDelivery {
            event: event.to_owned(),
            ..listed(id, guid, status_code, 0)
        });
    }

    // Listed with the App's JWT: the fake's contract refuses anything else on `/app/…`.
    gantry.restart_with(|_| {}).await;
    let asked = wait_until(Duration::from_secs(10), || async {
        let mut asked = gantry.github.redeliveries();
        asked.sort();
        (asked.len() >= 2).then_some(asked)
    })
    .await
    .expect("redeliveries were asked for");
    assert_eq!(asked, [12, 15]);
}

/// A delivery of a push as GitHub lists it, attempted `minutes_ago` minutes ago.
fn listed(id: i64, guid: &str, status_code: u16, minutes_ago: i64) -> HookDelivery {
    HookDelivery {
        id,
        guid: guid.to_owned(),
        event: "push".to_owned(),
        action: None,
        status_code,
        delivered_at: chrono::Utc::now() - chrono::Duration::minutes(minutes_ago),
        redelivery: false,
    }
}

/// The query of each request for a page of deliveries, in order.
async fn pages_asked(gantry: &TestGantry) -> Vec<String> {
    gantry
        .github
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == "/app/hook/deliveries")
        .map(|r| r.url.query().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn more_than_a_page_of_missed_deliveries_is_paged_back_to_the_last_one_stored() {
    let mut gantry = TestGantry::start().await;
    let body = common::fixture("webhooks/ping.json");
    gantry.send("installation", "stored-1", &body).await;
    gantry.wait_for_outcome("stored-1").await;

    // 150 deliveries failed while Gantry was down; GitHub lists 100 a page, newest first.
    for n in 0..150 {
        gantry
            .github
            .add_delivery(listed(1000 - n, &format!("missed-{n}"), 502, 0));
    }
    // Before them: the one Gantry stored, one it failed an hour before that (a periodic pass
    // asked for it then), and a page and more of older failures.
    gantry.github.add_delivery(listed(700, "stored-1", 202, 0));
    gantry
        .github
        .add_delivery(listed(600, "failed-long-ago", 500, 60));
    for n in 0..120 {
        gantry
            .github
            .add_delivery(listed(500 - n, &format!("older-{n}"), 500, 120));
    }

    // What the first start asked for (before any of this was listed) does not count.
    let before = pages_asked(&gantry).await.len();
    gantry.restart_with(|_| {}).await;
    let asked = wait_until(Duration::from_secs(20), || async {
        let asked = gantry.github.redeliveries();
        (asked.len() >= 150).then_some(asked)
    })
    .await;
    let pages = pages_asked(&gantry).await.split_off(before);
    let mut asked = asked
        .unwrap_or_else(|| panic!("not every missed delivery was asked for; pages: {pages:?}"));
    asked.sort();
    let expected: Vec<i64> = (851..=1000).collect();
    assert_eq!(
        asked, expected,
        "each missed delivery once, and nothing older"
    );
    assert_eq!(
        pages,
        ["per_page=100", "per_page=100&cursor=v1_900"],
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
    // The first pass finds nothing missed. Before the delivery Gantry stored, more than a page
    // of older ones it failed long ago (asked for then): no pass needs to page back to them.
    gantry.github.add_delivery(listed(700, "stored-1", 202, 60));
    for n in 0..150 {
        gantry
            .github
            .add_delivery(listed(600 - n, &format!("long-ago-{n}"), 500, 120));
    }
    assert_eq!(catch_up.once().await.unwrap(), 0);

    // Then 120 deliveries fail while Gantry is up (say it answered 500 for a while).
    for n in 0..120 {
        gantry
            .github
            .add_delivery(listed(2000 - n, &format!("failed-{n}"), 500, 0));
    }
    assert_eq!(catch_up.once().await.unwrap(), 120, "every one of them");
    assert_eq!(
        pages_asked(&gantry).await,
        [
            "per_page=100",
            "per_page=100",
            "per_page=100&cursor=v1_1900"
        ],
        "the second pass stops at the page that reaches the first"
    );
    assert_eq!(catch_up.once().await.unwrap(), 0, "asked once each");
}
