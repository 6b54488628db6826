//! GitHub misbehaving while Gantry reports a pull request's plans: every endpoint Gantry writes
//! to (statuses, check runs, the PR comment: list, create, edit) first answers a 500, a 429
//! with `retry-after`, a 403 primary rate limit (`x-ratelimit-remaining: 0`,
//! `x-ratelimit-reset`), and a timeout. Afterwards every status and the comment arrive, once
//! each, the newest last, and there is still exactly one comment: a comment whose creation
//! timed out after GitHub made it is found and edited, not made twice.

mod common;

use std::time::Duration;

use common::github::{Fault, PullRequest};
use common::runs::{Harness, REPO, ROOT_WORKSPACE, sha};
use common::wait_until;
use gantry::core::PrNumber;

const PR: u64 = 7;
/// Gantry gives up on a request after this (GANTRY_GITHUB_TIMEOUT_SECS).
const CLIENT_TIMEOUT_SECS: u64 = 1;

/// The endpoints Gantry writes to (and the comment list it reads), each of which misbehaves
/// on its first four requests.
const MISBEHAVING: [&str; 6] = [
    "repos/create-commit-status",
    "checks/create",
    "checks/update",
    "issues/list-comments",
    "issues/create-comment",
    "issues/update-comment",
];

/// A 500, a 429 with `retry-after`, a 403 primary rate limit, and a timeout. A timed-out
/// comment creation was done by GitHub (the nasty case: a retry must not make a second
/// comment); the other endpoints did nothing.
fn four_faults(operation: &str) -> [Fault; 4] {
    let late = Duration::from_secs(CLIENT_TIMEOUT_SECS + 2);
    [
        Fault::status(500),
        Fault::too_many_requests(1),
        Fault::primary_rate_limit(2),
        if operation == "issues/create-comment" {
            Fault::SlowAfterDoing(late)
        } else {
            Fault::SlowWithoutDoing(late)
        },
    ]
}

fn pr_payload(action: &str, head: &str) -> Vec<u8> {
    common::runs::pull_request_payload(PR, action, head, REPO)
}

#[tokio::test]
async fn after_500s_timeouts_and_rate_limits_every_status_and_the_comment_arrive_once() {
    let tools = tempfile::tempdir().unwrap().keep();
    let cache = common::runs::tool_cache_with(&tools, None);
    let h = Harness::start_with(ROOT_WORKSPACE, |env| {
        env.insert(
            "GANTRY_TERRAFORM_TOOL_CACHE".into(),
            cache.display().to_string(),
        );
        env.insert(
            "GANTRY_GITHUB_TIMEOUT_SECS".into(),
            CLIENT_TIMEOUT_SECS.to_string(),
        );
    })
    .await;
    let github = &h.gantry.github;
    let (first, second) = ("a1".repeat(20), "b2".repeat(20));
    github.open_pull_request(REPO, PR, PullRequest::open(&second, &["main.tf"]));
    for operation in MISBEHAVING {
        github.fail(operation, four_faults(operation));
    }
    h.serve_tarball(&first, "outputs").await;
    h.serve_tarball(&second, "outputs-v2").await;

    // The pull request is opened, then pushed to while GitHub is still misbehaving.
    assert_eq!(
        h.gantry
            .send("pull_request", "pr-open", &pr_payload("opened", &first))
            .await
            .status(),
        202
    );
    h.gantry.wait_for_outcome("pr-open").await;
    let sync = pr_payload("synchronize", &second);
    assert_eq!(
        h.gantry
            .send("pull_request", "pr-sync", &sync)
            .await
            .status(),
        202
    );
    // Processing it may wait out the rate limits GitHub announces meanwhile: the wait below
    // allows for that.

    let settled = wait_until(Duration::from_secs(120), || async {
        let runs = h
            .gantry
            .store
            .pull_request_runs(REPO, PrNumber(PR as i64))
            .await
            .ok()?;
        let mut finished = true;
        for id in &runs {
            let run = h.gantry.store.run(*id).await.ok()??;
            finished &= run.state.as_str() == "planned_and_finished";
        }
        let pending = h.gantry.store.outbox_pending().await.ok()?;
        let synchronized = h.gantry.delivery("pr-sync").await?.status == "processed";
        (synchronized && finished && !runs.is_empty() && pending == 0).then_some(runs)
    })
    .await;
    let Some(settled) = settled else {
        let runs = h
            .gantry
            .store
            .pull_request_runs(REPO, PrNumber(PR as i64))
            .await
            .unwrap();
        let mut states = Vec::new();
        for id in runs {
            states.push(
                h.gantry
                    .store
                    .run(id)
                    .await
                    .unwrap()
                    .unwrap()
                    .state
                    .to_string(),
            );
        }
        let outbox = h.gantry.store.outbox_pending().await.unwrap();
        panic!(
            "not settled: runs {states:?}, outbox pending {outbox}, faults {:?}, comments {:?}",
            github.served_faults(),
            github.comments(REPO, PR)
        );
    };
    assert_eq!(
        settled.len(),
        1,
        "one plan per workspace: the newest head's"
    );

    // Every endpoint met every fault.
    let served = github.served_faults();
    for operation in [
        "repos/create-commit-status",
        "checks/create",
        "issues/list-comments",
        "issues/create-comment",
    ] {
        let met: Vec<String> = served
            .iter()
            .filter(|(o, _)| *o == operation)
            .map(|(_, f)| f.clone())
            .collect();
        let expected: Vec<String> = four_faults(operation).iter().map(Fault::label).collect();
        assert_eq!(met, expected, "{operation} met every fault once");
    }
    // No request came while a rate limit GitHub announced was in force.
    let early = github.early_requests();
    assert!(early.is_empty(), "sent during a rate limit: {early:?}");

    // Statuses: for each commit, each status GitHub accepted is a new one (no repeats), and
    // the last says how the plan of that commit ended.
    for commit in [&first, &second] {
        let mut posted = github.statuses(REPO, commit);
        posted.retain(|s| s.context == "gantry/prod");
        assert!(!posted.is_empty(), "statuses arrived for {commit}");
        for pair in posted.windows(2) {
            assert_ne!(pair[0], pair[1], "the same status twice for {commit}");
        }
        let last = posted.last().unwrap();
        if commit == &second {
            assert_eq!(
                last.state, "success",
                "the newest plan's final status: {last:?}"
            );
        } else {
            // The first head's plan was superseded by the push: its last word is not pending.
            assert_ne!(last.state, "pending", "{last:?}");
        }
    }

    // One comment, never duplicated, showing the newest head.
    let comments = github.comments(REPO, PR);
    assert_eq!(comments.len(), 1, "exactly one PR comment: {comments:?}");
    let body = &comments[0].body;
    assert!(
        body.contains(&second[..7]),
        "the comment shows the newest head:\n{body}"
    );
    assert!(body.contains(gantry::core::comment::MARKER));

    let metrics = h.gantry.get("/metrics").await.text().await.unwrap();
    for line in [
        "gantry_github_api_calls_total{method=\"POST\",status=\"500\"}",
        "gantry_github_api_calls_total{method=\"POST\",status=\"429\"}",
        "gantry_github_api_calls_total{method=\"POST\",status=\"403\"}",
        "gantry_github_api_calls_total{method=\"POST\",status=\"error\"}",
        "gantry_github_api_calls_total{method=\"POST\",status=\"201\"}",
        "gantry_github_outbox_sends_total{kind=\"pr_comment\",result=\"rate_limited\"}",
    ] {
        assert!(metrics.contains(line), "{line}\n{metrics}");
    }
}

#[tokio::test]
async fn content_creating_requests_stay_within_the_allowance_per_installation() {
    // 4 a minute: one at once, then one every 20 s. The runner is off: each push's run
    // stays queued, and its "queued" status (and check run) is all that is sent.
    let h = Harness::start_with(ROOT_WORKSPACE, |env| {
        env.insert("GANTRY_RUNNER_ENABLED".into(), "false".into());
        env.insert(
            "GANTRY_GITHUB_CONTENT_REQUESTS_PER_MINUTE".into(),
            "4".into(),
        );
    })
    .await;
    for n in 0..3 {
        let body = common::push_payload(REPO, "main", &sha(40 + n), &["main.tf"], |_| {});
        let delivery = format!("push-{n}");
        assert_eq!(h.gantry.send("push", &delivery, &body).await.status(), 202);
        h.gantry.wait_for_outcome(&delivery).await;
    }
    let posts = || async {
        let github = &h.gantry.github;
        github.answered("repos/create-commit-status") + github.answered("checks/create")
    };
    wait_until(Duration::from_secs(10), || async {
        (posts().await >= 1).then_some(())
    })
    .await
    .expect("the first request went at once");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(posts().await, 1, "the rest wait for the allowance");
    let pending = h.gantry.store.outbox_pending().await.unwrap();
    assert!(pending >= 2, "held back, not dropped: {pending} pending");
    let metrics = h.gantry.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("result=\"rate_limited\""),
        "held-back sends are counted:\n{metrics}"
    );
}

#[tokio::test]
async fn a_rate_limited_download_of_the_commit_waits_the_limit_out_instead_of_failing_the_run() {
    let h = Harness::start(ROOT_WORKSPACE, None).await;
    let commit = sha(50);
    h.serve_tarball(&commit, "outputs").await;
    h.gantry.github.fail(
        "repos/download-tarball-archive",
        [Fault::primary_rate_limit(2)],
    );
    let run = h.push(&commit).await;
    let planned = h.wait_for(run, "planned").await;
    assert_eq!(planned["state"], "planned");
    assert_eq!(
        h.gantry.github.answered("repos/download-tarball-archive"),
        2,
        "asked again once the limit lifted"
    );
    let early = h.gantry.github.early_requests();
    assert!(early.is_empty(), "sent during the rate limit: {early:?}");
}
