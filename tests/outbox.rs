//! The outbox against a failing GitHub: a 500 is retried by the outbox (with backoff; the
//! client itself never retries) until the status arrives; a 422 is final: tried once,
//! recorded as failed, never blocking the rest.

mod common;

use std::time::Duration;

use common::github::Fault;
use common::runs::{Harness, REPO, ROOT_WORKSPACE, sha};
use common::{push_payload, wait_until};
use gantry::core::InstallationId;
use serde_json::json;

#[tokio::test]
async fn a_500_is_retried_until_the_status_arrives_and_a_422_is_given_up_at_once() {
    // The runner is off: the push's run stays queued, its "Queued" status and check go out.
    let h = Harness::without_runner(ROOT_WORKSPACE).await;
    let commit = sha(1);
    let github = &h.gantry.github;
    github.fail(
        "repos/create-commit-status",
        [Fault::status(500), Fault::status(500)],
    );
    github.outage(
        "checks/create",
        Fault::Answer {
            status: 422,
            headers: Vec::new(),
            body: json!({ "message": "Validation Failed" }),
            quiet_for: None,
        },
    );

    let body = push_payload(REPO, "main", &commit, &["main.tf"], |_| {});
    assert_eq!(h.gantry.send("push", "push-1", &body).await.status(), 202);
    h.gantry.wait_for_outcome("push-1").await;
    wait_until(Duration::from_secs(15), || async {
        (h.gantry.store.outbox_pending().await.ok()? == 0).then_some(())
    })
    .await
    .expect("the outbox drained after the retry");

    assert_eq!(
        github.answered("repos/create-commit-status"),
        3,
        "two 500s, each retried by the outbox, then the status arrived"
    );
    assert_eq!(github.statuses(REPO, &commit).len(), 1);
    assert_eq!(github.answered("checks/create"), 1, "a 422 is not retried");
    let metrics = h.gantry.get("/metrics").await.text().await.unwrap();
    for line in [
        "gantry_github_outbox_sends_total{kind=\"run_status\",result=\"retried\"} 2",
        "gantry_github_outbox_sends_total{kind=\"run_status\",result=\"sent\"} 1",
        "gantry_github_outbox_sends_total{kind=\"run_check\",result=\"failed\"} 1",
    ] {
        assert!(metrics.contains(line), "{line}\n{metrics}");
    }
}

#[tokio::test]
async fn a_status_github_took_without_answering_in_time_is_not_posted_again() {
    // GitHub keeps each status but answers after 2 s; Gantry gives up waiting after 1 s, so
    // it cannot know whether the status arrived. The retry asks GitHub instead of posting.
    let gantry = common::TestGantry::start_configured(Some(ROOT_WORKSPACE), |env| {
        env.insert("GANTRY_GITHUB_TIMEOUT_SECS".into(), "1".into());
    })
    .await;
    let commit = sha(1);
    gantry.github.slow_statuses(Duration::from_secs(2));

    let body = push_payload(REPO, "main", &commit, &["main.tf"], |_| {});
    assert_eq!(gantry.send("push", "push-1", &body).await.status(), 202);
    gantry.wait_for_outcome("push-1").await;
    wait_until(Duration::from_secs(30), || async {
        (gantry.store.outbox_pending().await.ok()? == 0).then_some(())
    })
    .await
    .expect("the outbox drained");

    let posted = gantry.github.statuses(REPO, &commit);
    let contexts: Vec<&str> = posted.iter().map(|s| s.context.as_str()).collect();
    assert!(contexts.contains(&"gantry/prod"), "{posted:?}");
    let mut unique = contexts.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        contexts.len(),
        unique.len(),
        "a status was posted twice: {posted:?}"
    );
    assert!(
        gantry.github.answered("repos/list-commit-statuses-for-ref") > 0,
        "the retry asked GitHub what it shows"
    );
    // What GitHub shows is recorded: the same status is not sent again later either.
    let shown = gantry
        .store
        .shown_status(REPO, &commit.as_str().into(), "gantry/prod")
        .await
        .unwrap()
        .expect("recorded");
    assert_eq!(shown.state.as_str(), "pending");
}

#[tokio::test]
async fn a_row_a_stop_left_in_flight_comes_back_in_doubt_and_a_fresh_one_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("gantry.db").display());
    let store = gantry::store::Store::open(&url.into()).await.unwrap();
    let status = |context: &str| {
        gantry::store::OutboxItem::result(gantry::store::Message::RawStatus(
            gantry::store::RawStatus {
                installation_id: InstallationId(99),
                repo: REPO.into(),
                sha: sha(1).into(),
                context: context.into(),
                state: gantry::core::github_terms::CommitState::Success,
                description: "ok".into(),
                target_url: None,
            },
        ))
    };
    store.enqueue_outbox(&[status("left")]).await.unwrap();
    let taken = store.claim_outbox(10, 0).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert!(!taken[0].in_doubt, "a first try is not in doubt");
    // The server stops while the row is being sent; at the next start it is put back.
    store.enqueue_outbox(&[status("fresh")]).await.unwrap();
    assert_eq!(store.reset_sending_outbox().await.unwrap(), 1);
    let again = store.claim_outbox(10, 0).await.unwrap();
    let in_doubt: Vec<(String, bool)> = again
        .iter()
        .map(|r| (r.key.rsplit('/').next().unwrap().to_string(), r.in_doubt))
        .collect();
    assert_eq!(
        in_doubt,
        [("left".to_string(), true), ("fresh".to_string(), false)]
    );
}
