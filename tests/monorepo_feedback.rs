//! Feedback at monorepo scale: results reach GitHub before anything else, in-between states a
//! result follows at once are never sent, untouched workspaces cost one `gantry` status when
//! asked (`[feedback] untouched = "aggregate"`), and the PR comment is written once results
//! are in and edited only when it changed.

mod common;

use std::time::Duration;

use common::github::Status;
use common::runs::{Harness, MONOREPO, REPO, sha, slow_plan_terraform};
use common::wait_until;
use gantry::core::PrNumber;

const PR: u64 = 7;

/// The monorepo's workspaces with these `[feedback]` settings.
fn with_feedback(settings: &str) -> String {
    format!("[feedback]\n{settings}\n{MONOREPO}")
}

/// Every status posted to `head` for `context`, oldest first.
fn statuses(h: &Harness, head: &str, context: &str) -> Vec<Status> {
    let mut posted = h.gantry.github.statuses(REPO, head);
    posted.retain(|s| s.context == context);
    posted
}

/// Waits until `context` of `head` shows a state other than pending; returns it.
async fn final_status(h: &Harness, head: &str, context: &str) -> Status {
    wait_until(Duration::from_secs(60), || async {
        statuses(h, head, context)
            .pop()
            .filter(|s| s.state != "pending")
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "{context} never showed a result: {:#?}",
            h.gantry.github.all_statuses()
        )
    })
}

#[tokio::test]
async fn a_result_goes_before_the_statuses_of_untouched_workspaces_under_a_tight_budget() {
    // 12 content-creating requests a minute: one at once, then one every 5.5 s. In-between
    // states are held long enough that the plan's result replaces them.
    let h = Harness::start_with(&with_feedback("hold_in_between_ms = 10000"), |env| {
        let tools = tempfile::tempdir().unwrap().keep();
        let cache = common::runs::tool_cache_with(&tools, None);
        env.insert(
            "GANTRY_TERRAFORM_TOOL_CACHE".into(),
            cache.display().to_string(),
        );
        env.insert(
            "GANTRY_GITHUB_CONTENT_REQUESTS_PER_MINUTE".into(),
            "12".into(),
        );
    })
    .await;
    let head = sha(1);
    h.serve_tarball(&head, "monorepo").await;
    h.open_pull_request(PR, &head, &["prod/main.tf"]).await;

    let result = final_status(&h, &head, "gantry/prod").await;
    assert_eq!(result.state, "success");
    // What went before it: the one request the budget allowed at once (an untouched
    // workspace's status, queued first), and nothing more of the untouched.
    let all = h.gantry.github.all_statuses();
    let before: Vec<&Status> = all.iter().take_while(|s| **s != result).collect();
    assert!(
        before.len() <= 1,
        "the result waited behind other statuses: {before:#?}"
    );
    // The untouched workspaces get theirs after it, as the budget allows.
    for context in ["gantry/staging", "gantry/network"] {
        let untouched = final_status(&h, &head, context).await;
        assert_eq!(untouched.description, "No changes in this workspace");
    }
}

#[tokio::test]
async fn in_between_states_that_a_result_follows_at_once_are_never_sent() {
    let h = Harness::start(&with_feedback("hold_in_between_ms = 10000"), None).await;
    let head = sha(2);
    h.serve_tarball(&head, "monorepo").await;
    h.open_pull_request(PR, &head, &["prod/main.tf"]).await;
    final_status(&h, &head, "gantry/prod").await;
    h.outbox_drained().await;

    // The plan's queued and planning states were held, then replaced by its result: one
    // status and one check run write for the workspace, not four.
    let posted: Vec<String> = statuses(&h, &head, "gantry/prod")
        .into_iter()
        .map(|s| format!("{}: {}", s.state, s.description))
        .collect();
    assert_eq!(
        posted,
        ["success: Plan: 0 to add, 0 to change, 0 to destroy"]
    );
    let checks = h.gantry.github.check_runs();
    let prod: Vec<_> = checks.iter().filter(|c| c.name == "gantry/prod").collect();
    assert_eq!(prod.len(), 1, "{checks:#?}");
    assert_eq!(prod[0].writes.len(), 1, "created completed: {:#?}", prod[0]);
    assert_eq!(prod[0].conclusion.as_deref(), Some("success"));
}

#[tokio::test]
async fn an_in_between_state_is_sent_once_the_hold_is_over() {
    // The runner is off: the plan stays queued, and people are told so after the hold.
    let h = Harness::without_runner(&with_feedback("hold_in_between_ms = 200")).await;
    let head = sha(3);
    h.open_pull_request(PR, &head, &["prod/main.tf"]).await;
    let queued = wait_until(Duration::from_secs(30), || async {
        statuses(&h, &head, "gantry/prod").pop()
    })
    .await
    .expect("the queued state was sent");
    assert_eq!(
        (queued.state.as_str(), queued.description.as_str()),
        ("pending", "Queued")
    );
    // No PR comment yet: it is written once a result is in.
    h.outbox_drained().await;
    let comments = h.gantry.github.comments(REPO, PR);
    assert!(comments.is_empty(), "{comments:#?}");
}

#[tokio::test]
async fn the_aggregate_turns_success_only_once_every_touched_workspace_finished() {
    let marker = common::runs::marker();
    let h = Harness::start(
        &with_feedback("untouched = \"aggregate\"\nhold_in_between_ms = 100"),
        Some(&slow_plan_terraform(marker.path())),
    )
    .await;
    let head = sha(4);
    h.serve_tarball(&head, "monorepo").await;
    h.open_pull_request(PR, &head, &["prod/main.tf", "staging/main.tf"])
        .await;

    // Both plans wait on the marker: the sum is pending, and counts the untouched one.
    let pending = wait_until(Duration::from_secs(30), || async {
        statuses(&h, &head, "gantry").pop()
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "the aggregate was not posted: {:#?} {:#?}",
            h.gantry.github.all_statuses(),
            h.gantry.github.check_runs()
        )
    });
    assert_eq!(
        (pending.state.as_str(), pending.description.as_str()),
        ("pending", "3 workspaces: 2 pending, 1 succeeded")
    );
    std::fs::remove_file(marker.path()).unwrap();
    let done = final_status(&h, &head, "gantry").await;
    assert_eq!(
        (done.state.as_str(), done.description.as_str()),
        ("success", "3 workspaces: 3 succeeded")
    );
    h.outbox_drained().await;
    let aggregate = statuses(&h, &head, "gantry");
    for earlier in &aggregate[..aggregate.len() - 1] {
        assert_eq!(
            earlier.state, "pending",
            "success came early: {aggregate:#?}"
        );
    }
    // The touched workspaces have their own statuses; the untouched one has none.
    for context in ["gantry/prod", "gantry/staging"] {
        assert_eq!(final_status(&h, &head, context).await.state, "success");
    }
    assert!(
        statuses(&h, &head, "gantry/network").is_empty(),
        "an untouched workspace's status was posted in aggregate mode"
    );
    // Beside the status, one `gantry` check run, completed with success once all finished.
    let checks = h.gantry.github.check_runs();
    let sums: Vec<_> = checks.iter().filter(|c| c.name == "gantry").collect();
    assert_eq!(sums.len(), 1, "{checks:#?}");
    assert_eq!(
        (sums[0].status.as_str(), sums[0].conclusion.as_deref()),
        ("completed", Some("success"))
    );
    assert_eq!(sums[0].title, "3 workspaces: 3 succeeded");
}

#[tokio::test]
async fn a_required_check_never_hangs_whatever_the_mode() {
    for (mode, required) in [("status", "gantry/network"), ("aggregate", "gantry")] {
        let h = Harness::start(&with_feedback(&format!("untouched = \"{mode}\"")), None).await;
        // A change to no workspace's files: nothing is planned.
        let head = sha(5);
        h.open_pull_request(PR, &head, &["README.md"]).await;
        let shown = final_status(&h, &head, required).await;
        assert_eq!(shown.state, "success", "{mode}: {shown:?}");
        h.outbox_drained().await;
        let posted: Vec<String> = h
            .gantry
            .github
            .all_statuses()
            .into_iter()
            .map(|s| s.context)
            .collect();
        match mode {
            "status" => assert_eq!(posted.len(), 3, "one status per workspace: {posted:?}"),
            _ => assert_eq!(posted, ["gantry"], "one status for them all"),
        }
    }
}

#[tokio::test]
async fn the_pr_comment_is_edited_only_when_what_it_shows_changed() {
    let h = Harness::start(&with_feedback("hold_in_between_ms = 100"), None).await;
    let head = sha(6);
    h.serve_tarball(&head, "monorepo").await;
    h.open_pull_request(PR, &head, &["prod/main.tf"]).await;
    final_status(&h, &head, "gantry/prod").await;
    h.outbox_drained().await;
    let comments = h.gantry.github.comments(REPO, PR);
    assert_eq!(comments.len(), 1, "{comments:#?}");
    let edits = comments[0].edits;

    // Asked to write the comment again with nothing new to show: no request.
    let before = h.gantry.github.answered("issues/update-comment");
    h.gantry
        .store
        .enqueue_outbox(&[gantry::store::OutboxItem::progress(
            gantry::store::Message::PrComment {
                repo: REPO.into(),
                pr_number: PrNumber(PR as i64),
            },
        )])
        .await
        .unwrap();
    h.outbox_drained().await;
    assert_eq!(h.gantry.github.answered("issues/update-comment"), before);
    assert_eq!(h.gantry.github.comments(REPO, PR)[0].edits, edits);
}
