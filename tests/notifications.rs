//! Notifications (Terraform Cloud's notification configurations) to a local receiver: the
//! exact order of triggers over one run's life, Terraform Cloud's payload fields and signature,
//! the Slack body, verification failing on 500, delivery after the receiver was down for a
//! while, nothing for a speculative plan, and URLs that are refused.

mod common;

use std::time::Duration;

use common::runs::{Harness, ROOT_WORKSPACE, sha};
use common::wait_until;
use hmac::Mac;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const RUN_TRIGGERS: [&str; 6] = [
    "run:created",
    "run:planning",
    "run:needs_attention",
    "run:applying",
    "run:completed",
    "run:errored",
];

/// A receiver that answers `status` at `/hook`.
async fn receiver(status: u16) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(status))
        .mount(&server)
        .await;
    server
}

/// What the receiver was sent, in order: (body, signature header).
async fn received(server: &MockServer) -> Vec<(Value, Option<String>)> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            let signature = r
                .headers
                .get("x-tfe-notification-signature")
                .map(|v| v.to_str().unwrap().to_string());
            (serde_json::from_slice(&r.body).unwrap(), signature)
        })
        .collect()
}

/// The triggers of what a generic receiver got, in order.
fn triggers(sent: &[(Value, Option<String>)]) -> Vec<String> {
    sent.iter()
        .map(|(body, _)| {
            body["notifications"][0]["trigger"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

async fn configure(h: &Harness, body: Value) -> (u16, Value) {
    let answer = h
        .call(
            "POST",
            "/api/v1/workspaces/prod/notification-configurations",
            &h.token,
            body,
        )
        .await;
    (answer.status, answer.body)
}

fn hmac_sha512(key: &str, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha512>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn a_runs_life_reaches_a_generic_receiver_in_order_signed_and_a_plan_sends_nothing() {
    let h = Harness::start(ROOT_WORKSPACE, None).await;
    let hook = receiver(200).await;
    let (status, made) = configure(
        &h,
        json!({ "name": "ops", "destination": "generic", "url": format!("{}/hook", hook.uri()),
                "token": "s3cret", "triggers": RUN_TRIGGERS }),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(made["status"], "verified", "{made}");
    assert_eq!(made["signed"], true);
    assert!(
        !made.to_string().contains("s3cret"),
        "the token is never shown"
    );
    let id = made["id"].as_i64().unwrap();

    h.serve_tarball(&sha(1), "outputs").await;
    let run = h.push(&sha(1)).await;
    h.wait_for(run, "planned").await;
    assert_eq!(h.action(run, "confirm").await.0, 200);
    h.wait_for(run, "applied").await;
    h.outbox_drained().await;
    let sent = received(&hook).await;
    assert_eq!(
        triggers(&sent),
        [
            "verification",
            "run:created",
            "run:planning",
            "run:needs_attention",
            "run:applying",
            "run:completed"
        ]
    );
    // Terraform Cloud's payload, version 1, signed with the token.
    let raw = hook.received_requests().await.unwrap();
    for (request, (body, signature)) in raw.iter().zip(&sent) {
        assert_eq!(
            signature.as_deref(),
            Some(hmac_sha512("s3cret", &request.body).as_str())
        );
        assert_eq!(body["payload_version"], 1);
        assert_eq!(body["notification_configuration_id"], format!("nc-{id}"));
        assert_eq!(body["organization_name"], "gantry");
    }
    let (needs_attention, _) = &sent[3];
    assert_eq!(needs_attention["run_id"], format!("run-{run}"));
    assert_eq!(needs_attention["workspace_name"], "prod");
    assert!(
        needs_attention["workspace_id"]
            .as_str()
            .unwrap()
            .starts_with("ws-")
    );
    assert!(
        needs_attention["run_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/runs/{run}"))
    );
    assert_eq!(needs_attention["notifications"][0]["run_status"], "planned");
    assert_eq!(
        needs_attention["notifications"][0]["message"],
        "Run Needs Attention"
    );
    assert_eq!(sent[5].0["notifications"][0]["run_status"], "applied");
    let shown = h
        .api_get(&format!("/api/v1/notification-configurations/{id}"))
        .await;
    let responses = shown["delivery_responses"].as_array().unwrap();
    assert_eq!(responses.len(), 6);
    assert!(
        responses
            .iter()
            .all(|r| r["status"] == 200 && r["success"] == true)
    );

    // A pull request's plan sends nothing.
    h.serve_tarball(&sha(2), "outputs").await;
    h.open_pull_request(9, &sha(2), &["main.tf"]).await;
    let plans = (h.gantry.store)
        .pull_request_runs(common::runs::REPO, gantry::core::PrNumber(9))
        .await
        .unwrap();
    h.wait_for(plans[0].0, "planned_and_finished").await;
    h.outbox_drained().await;
    assert_eq!(
        received(&hook).await.len(),
        6,
        "nothing for a speculative plan"
    );
}

#[tokio::test]
async fn verification_failing_disables_and_a_receiver_down_for_a_while_gets_it_all_in_order() {
    let h = Harness::start(ROOT_WORKSPACE, None).await;
    // A receiver answering 500 is not used: the configuration stays disabled, saying why.
    let broken = receiver(500).await;
    let (status, made) = configure(
        &h,
        json!({ "name": "broken", "destination": "generic",
                "url": format!("{}/hook", broken.uri()), "triggers": RUN_TRIGGERS }),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(made["enabled"], false);
    assert_eq!(made["status"], "failed");
    assert!(
        made["status_detail"]
            .as_str()
            .unwrap()
            .contains("answered 500"),
        "{made}"
    );

    // Slack, verified, then down for the first three deliveries.
    let slack = receiver(200).await;
    let (status, made) = configure(
        &h,
        json!({ "name": "chat", "destination": "slack", "url": format!("{}/hook", slack.uri()),
                "triggers": ["run:created", "run:needs_attention"] }),
    )
    .await;
    assert_eq!(
        (status, &made["status"]),
        (201, &json!("verified")),
        "{made}"
    );
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(3)
        .with_priority(1)
        .mount(&slack)
        .await;
    h.serve_tarball(&sha(1), "outputs").await;
    let run = h.push(&sha(1)).await;
    h.wait_for(run, "planned").await;
    let delivered = wait_until(Duration::from_secs(60), || async {
        let texts: Vec<String> = slack
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .map(|r| {
                let body: Value = serde_json::from_slice(&r.body).unwrap();
                body["text"].as_str().unwrap_or_default().to_string()
            })
            .collect();
        (texts.len() >= 6).then_some(texts)
    })
    .await
    .expect("delivered once the receiver was back");
    // Verification, three refused tries of "created", then created and needs attention in
    // the order they fired.
    assert!(delivered[0].contains("verifies"), "{delivered:?}");
    assert!(
        delivered[1..4].iter().all(|t| t.starts_with("Run Created")),
        "{delivered:?}"
    );
    assert!(delivered[4].starts_with("Run Created"), "{delivered:?}");
    assert!(
        delivered[5].starts_with("Run Needs Attention"),
        "{delivered:?}"
    );
    assert!(
        delivered[5].contains(&format!("run-{run}")),
        "{delivered:?}"
    );
    assert!(delivered[5].contains("*prod*"), "{delivered:?}");
    assert!(
        !received(&broken)
            .await
            .iter()
            .any(|(b, _)| b["notifications"][0]["trigger"] != "verification")
    );
}

#[tokio::test]
async fn urls_elsewhere_than_http_or_at_gantry_itself_are_refused() {
    let h = Harness::start(ROOT_WORKSPACE, None).await;
    for (url, why) in [
        (
            format!("{}/api/v1/workspaces", h.gantry.url),
            "points at Gantry itself",
        ),
        ("file:///etc/passwd".to_string(), "not an http(s) URL"),
    ] {
        let (status, answer) = configure(
            &h,
            json!({ "name": "x", "destination": "generic", "url": url }),
        )
        .await;
        assert_eq!(status, 400, "{answer}");
        assert!(answer["error"].as_str().unwrap().contains(why), "{answer}");
    }
    let (status, answer) = configure(
        &h,
        json!({ "name": "x", "destination": "generic", "url": "https://hooks.example.com/x",
                "triggers": ["run:exploded"] }),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
}

#[tokio::test]
async fn the_configuration_files_configurations_are_verified_at_start_and_not_changed_by_the_api() {
    let hook = receiver(200).await;
    let toml = format!(
        "{ROOT_WORKSPACE}\n[[workspaces.notifications]]\nname = \"ops\"\n\
         destination = \"generic\"\nurl = \"{}/hook\"\ntoken = \"file-secret\"\n\
         triggers = [\"run:errored\"]\n",
        hook.uri()
    );
    let h = Harness::start(&toml, None).await;
    let shown = wait_until(Duration::from_secs(30), || async {
        let list = h
            .api_get("/api/v1/workspaces/prod/notification-configurations")
            .await;
        (list[0]["status"] == "verified").then_some(list)
    })
    .await
    .expect("verified at start");
    assert_eq!(shown[0]["source"], "config");
    assert!(!shown.to_string().contains("file-secret"));
    let id = shown[0]["id"].as_i64().unwrap();
    let changed = h
        .call(
            "PATCH",
            &format!("/api/v1/notification-configurations/{id}"),
            &h.token,
            json!({ "enabled": false }),
        )
        .await;
    assert_eq!(changed.status, 409);
    let sent = received(&hook).await;
    assert_eq!(triggers(&sent), ["verification"]);
    assert_eq!(
        sent[0].1.as_deref(),
        Some(
            hmac_sha512(
                "file-secret",
                &hook.received_requests().await.unwrap()[0].body
            )
            .as_str()
        )
    );
}

#[tokio::test]
async fn a_run_that_applies_by_itself_never_asks_for_attention() {
    let toml = ROOT_WORKSPACE.replace("[workspaces.vars]", "auto_apply = true\n[workspaces.vars]");
    let h = Harness::start(&toml, None).await;
    let hook = receiver(200).await;
    let (status, made) = configure(
        &h,
        json!({ "name": "ops", "destination": "generic", "url": format!("{}/hook", hook.uri()),
                "triggers": RUN_TRIGGERS }),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    h.serve_tarball(&sha(1), "outputs").await;
    let run = h.push(&sha(1)).await;
    h.wait_for(run, "applied").await;
    h.outbox_drained().await;
    assert_eq!(
        triggers(&received(&hook).await),
        [
            "verification",
            "run:created",
            "run:planning",
            "run:applying",
            "run:completed"
        ]
    );
}
