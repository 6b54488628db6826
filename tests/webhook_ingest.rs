//! `POST /webhooks/github` end to end: signature, headers, body forms and limits, durable
//! storage before the answer, de-duplication, and the dispatcher's outcome per delivery.

mod common;

use common::{SECRET, TestGantry, fixture};
use gantry::webhook::signature::sign;

const PUSH: &str = "push.json";

fn push_payload() -> Vec<u8> {
    fixture(&format!("webhooks/{PUSH}"))
}

#[tokio::test]
async fn a_signed_delivery_is_stored_before_the_202_and_then_processed() {
    let gantry = TestGantry::start().await;
    let body = fixture("webhooks/installation.created.json");
    let response = gantry.send("installation", "delivery-1", &body).await;
    assert_eq!(response.status(), 202);
    // Stored by the time the answer arrived: the row exists with its envelope fields.
    let stored = gantry
        .delivery("delivery-1")
        .await
        .expect("stored before the 202");
    assert_eq!(stored.event, "installation");
    assert_eq!(stored.action.as_deref(), Some("created"));
    assert!(stored.installation_id.is_some());

    let done = gantry.wait_for_outcome("delivery-1").await;
    assert_eq!(done.status, "processed");
    assert_eq!(done.attempts, 1);
}

#[tokio::test]
async fn a_delivery_id_seen_before_answers_200_and_is_not_stored_again() {
    let gantry = TestGantry::start().await;
    let body = push_payload();
    assert_eq!(gantry.send("push", "dup-1", &body).await.status(), 202);
    let first = gantry.wait_for_outcome("dup-1").await;
    let again = gantry.send("push", "dup-1", &body).await;
    assert_eq!(again.status(), 200);
    let json: serde_json::Value = again.json().await.unwrap();
    assert_eq!(json["status"], "duplicate");
    let after = gantry.delivery("dup-1").await.unwrap();
    assert_eq!(after.seq, first.seq);
    assert_eq!(after.attempts, 1, "not processed a second time");
    let total: i64 = gantry
        .store
        .delivery_counts()
        .await
        .unwrap()
        .iter()
        .map(|c| c.1)
        .sum();
    assert_eq!(total, 1);
}

#[tokio::test]
async fn concurrent_redeliveries_of_one_id_store_it_once() {
    let gantry = TestGantry::start().await;
    let body = push_payload();
    let sends = (0..16).map(|_| gantry.send("push", "same-id", &body));
    let statuses: Vec<u16> = futures_statuses(sends).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 202).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        15,
        "{statuses:?}"
    );
}

async fn futures_statuses(
    sends: impl Iterator<Item = impl Future<Output = reqwest::Response>>,
) -> Vec<u16> {
    futures::future::join_all(sends)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect()
}

#[tokio::test]
async fn a_missing_or_wrong_signature_is_401_and_nothing_is_stored() {
    let gantry = TestGantry::start().await;
    let body = push_payload();
    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("missing", vec![]),
        (
            "wrong secret",
            vec![("X-Hub-Signature-256", sign("not-the-secret", &body))],
        ),
        (
            "other body",
            vec![("X-Hub-Signature-256", sign(SECRET, b"{}"))],
        ),
        (
            "sha1 only",
            vec![("X-Hub-Signature", "sha1=0123".to_string())],
        ),
        (
            "malformed",
            vec![("X-Hub-Signature-256", "sha256=xyz".to_string())],
        ),
    ];
    for (i, (name, extra)) in cases.into_iter().enumerate() {
        let id = format!("bad-sig-{i}");
        let mut headers = vec![
            ("X-GitHub-Event", "push"),
            ("X-GitHub-Delivery", id.as_str()),
        ];
        headers.extend(extra.iter().map(|(k, v)| (*k, v.as_str())));
        let response = gantry.post_webhook(&headers, body.clone()).await;
        assert_eq!(response.status(), 401, "{name}");
        let json: serde_json::Value = response.json().await.unwrap();
        assert!(
            json["error"].as_str().unwrap().contains("ignature"),
            "{name}: {json}"
        );
        assert!(gantry.delivery(&id).await.is_none(), "{name}: stored");
    }
}

#[tokio::test]
async fn any_of_several_secrets_is_accepted_for_rotation() {
    let gantry = TestGantry::start_with(|env| {
        env.insert(
            "GANTRY_WEBHOOK_SECRET".into(),
            "new-secret,test-webhook-secret".into(),
        );
    })
    .await;
    let body = push_payload();
    for (id, secret) in [("rot-old", SECRET), ("rot-new", "new-secret")] {
        let sig = sign(secret, &body);
        let headers = [
            ("X-GitHub-Event", "push"),
            ("X-GitHub-Delivery", id),
            ("X-Hub-Signature-256", sig.as_str()),
        ];
        assert_eq!(
            gantry.post_webhook(&headers, body.clone()).await.status(),
            202,
            "{id}"
        );
    }
}

#[tokio::test]
async fn event_and_delivery_headers_are_required() {
    let gantry = TestGantry::start().await;
    let body = push_payload();
    let sig = sign(SECRET, &body);
    let no_event = [
        ("X-GitHub-Delivery", "h-1"),
        ("X-Hub-Signature-256", sig.as_str()),
    ];
    let no_delivery = [
        ("X-GitHub-Event", "push"),
        ("X-Hub-Signature-256", sig.as_str()),
    ];
    for (headers, named) in [
        (&no_event[..], "X-GitHub-Event"),
        (&no_delivery[..], "X-GitHub-Delivery"),
    ] {
        let response = gantry.post_webhook(headers, body.clone()).await;
        assert_eq!(response.status(), 400);
        let json: serde_json::Value = response.json().await.unwrap();
        assert!(json["error"].as_str().unwrap().contains(named), "{json}");
    }
    assert!(gantry.delivery("h-1").await.is_none());
}

#[tokio::test]
async fn a_form_encoded_delivery_is_stored_as_its_json_payload() {
    let gantry = TestGantry::start().await;
    let json = fixture("webhooks/installation.created.json");
    let form =
        serde_urlencoded::to_string([("payload", String::from_utf8(json).unwrap())]).unwrap();
    let sig = sign(SECRET, form.as_bytes());
    let headers = [
        ("X-GitHub-Event", "installation"),
        ("X-GitHub-Delivery", "form-1"),
        ("X-Hub-Signature-256", sig.as_str()),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];
    assert_eq!(
        gantry
            .post_webhook(&headers, form.into_bytes())
            .await
            .status(),
        202
    );
    let done = gantry.wait_for_outcome("form-1").await;
    assert_eq!(done.action.as_deref(), Some("created"));
    assert_eq!(done.status, "processed");
}

#[tokio::test]
async fn an_unsupported_content_type_is_415() {
    let gantry = TestGantry::start().await;
    let body = push_payload();
    let sig = sign(SECRET, &body);
    let headers = [
        ("X-GitHub-Event", "push"),
        ("X-GitHub-Delivery", "ct-1"),
        ("X-Hub-Signature-256", sig.as_str()),
        ("Content-Type", "text/plain"),
    ];
    assert_eq!(gantry.post_webhook(&headers, body).await.status(), 415);
    assert!(gantry.delivery("ct-1").await.is_none());
}

#[tokio::test]
async fn a_body_over_25_mib_is_413_and_nothing_is_stored() {
    let gantry = TestGantry::start().await;
    let mut body = b"{\"pad\":\"".to_vec();
    body.resize(25 * 1024 * 1024 + 1, b'a');
    let sig = sign(SECRET, &body);
    let headers = [
        ("X-GitHub-Event", "push"),
        ("X-GitHub-Delivery", "big-1"),
        ("X-Hub-Signature-256", sig.as_str()),
    ];
    let response = gantry.post_webhook(&headers, body).await;
    assert_eq!(response.status(), 413);
    assert!(gantry.delivery("big-1").await.is_none());
    // The server is still healthy afterwards.
    assert_eq!(gantry.get("/healthz").await.status(), 200);
}

#[tokio::test]
async fn a_signed_body_that_is_not_json_is_400_and_not_stored() {
    let gantry = TestGantry::start().await;
    let response = gantry.send("push", "nojson-1", b"{not json").await;
    assert_eq!(response.status(), 400);
    assert!(gantry.delivery("nojson-1").await.is_none());
}

#[tokio::test]
async fn ping_is_answered_200_and_not_stored() {
    let gantry = TestGantry::start().await;
    let response = gantry
        .send("ping", "ping-1", &fixture("webhooks/ping.json"))
        .await;
    assert_eq!(response.status(), 200);
    assert!(gantry.delivery("ping-1").await.is_none());
}

#[tokio::test]
async fn without_a_webhook_secret_webhooks_are_refused_with_503() {
    let gantry = TestGantry::start_with(|env| {
        for key in [
            "GANTRY_WEBHOOK_SECRET",
            "GANTRY_APP_ID",
            "GANTRY_APP_PRIVATE_KEY_PATH",
        ] {
            env.remove(key);
        }
    })
    .await;
    let response = gantry.send("push", "nosecret-1", &push_payload()).await;
    assert_eq!(response.status(), 503);
    let json: serde_json::Value = response.json().await.unwrap();
    assert!(
        json["error"]
            .as_str()
            .unwrap()
            .contains("/github-app/setup")
    );
}

#[tokio::test]
async fn each_delivery_records_its_outcome() {
    let gantry = TestGantry::start().await;
    gantry.send("push", "out-push", &push_payload()).await;
    gantry
        .send("star", "out-star", br#"{"action":"created"}"#)
        .await;
    gantry.send("push", "out-bad", br#"{"ref": 5}"#).await;

    let push = gantry.wait_for_outcome("out-push").await;
    assert_eq!(push.status, "ignored");
    assert_eq!(
        push.outcome_detail.as_deref(),
        Some("no workspace tracks this repository")
    );

    let star = gantry.wait_for_outcome("out-star").await;
    assert_eq!(star.status, "ignored");
    assert_eq!(
        star.outcome_detail.as_deref(),
        Some("Gantry does not use star events")
    );

    let bad = gantry.wait_for_outcome("out-bad").await;
    assert_eq!(bad.status, "failed");
    let error = bad.outcome_detail.unwrap();
    assert!(
        error.contains("ref"),
        "the error names the JSON path: {error}"
    );
}

#[tokio::test]
async fn installation_events_keep_the_installations_and_their_repositories() {
    let gantry = TestGantry::start().await;
    let created = fixture("webhooks/installation.created.json");
    let payload: serde_json::Value = serde_json::from_slice(&created).unwrap();
    let id = payload["installation"]["id"].as_i64().unwrap();
    gantry.send("installation", "inst-1", &created).await;
    gantry.wait_for_outcome("inst-1").await;
    let installation = gantry
        .store
        .installation(id)
        .await
        .unwrap()
        .expect("installation stored");
    assert_eq!(
        installation.account_login,
        payload["installation"]["account"]["login"]
    );
    let expected: Vec<String> = payload["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["full_name"].as_str().unwrap().to_string())
        .collect();
    let mut got = installation.repositories.clone();
    got.sort();
    let mut expected_sorted = expected.clone();
    expected_sorted.sort();
    assert_eq!(got, expected_sorted);

    let mut deleted: serde_json::Value =
        serde_json::from_slice(&fixture("webhooks/installation.deleted.json")).unwrap();
    deleted["installation"]["id"] = id.into();
    gantry
        .send("installation", "inst-2", deleted.to_string().as_bytes())
        .await;
    gantry.wait_for_outcome("inst-2").await;
    assert!(gantry.store.installation(id).await.unwrap().is_none());
}

#[tokio::test]
async fn deliveries_stored_while_the_dispatcher_is_off_are_processed_after_a_restart() {
    let mut gantry = TestGantry::start_with(|env| {
        env.insert("GANTRY_DISPATCHER_ENABLED".into(), "false".into());
    })
    .await;
    for i in 0..5 {
        let id = format!("later-{i}");
        assert_eq!(
            gantry.send("push", &id, &push_payload()).await.status(),
            202
        );
    }
    assert_eq!(gantry.delivery("later-4").await.unwrap().status, "pending");
    gantry
        .restart_with(|env| {
            env.remove("GANTRY_DISPATCHER_ENABLED");
        })
        .await;
    for i in 0..5 {
        let done = gantry.wait_for_outcome(&format!("later-{i}")).await;
        assert_eq!(done.attempts, 1);
    }
}

#[tokio::test]
async fn health_and_readiness() {
    let gantry = TestGantry::start().await;
    let health = gantry.get("/healthz").await;
    assert_eq!(health.status(), 200);
    let ready: serde_json::Value = gantry.get("/readyz").await.json().await.unwrap();
    assert_eq!(ready["status"], "ready");
    let expected = if std::env::var_os("GANTRY_TEST_POSTGRES_URL").is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    assert_eq!(ready["database"], expected);
}
