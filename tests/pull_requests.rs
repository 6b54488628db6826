//! Pull requests end to end against a fake GitHub: speculative plans with the real Terraform,
//! and the exact requests Gantry sends back (commit statuses, the PR comment, reactions,
//! replies), driven by signed pull_request and issue_comment webhooks.

mod common;

use std::time::Duration;

use common::github::{Comment, PullRequest};
use common::runs::{Harness, MONOREPO, REPO, sha, slow_plan_terraform};
use common::wait_until;
use gantry::core::PrNumber;
use gantry::core::RunId;
use gantry::core::run::RunState;
use gantry::store::{Cause, Move};
use serde_json::{Value, json};

const PR: u64 = 7;

const ROOT: &str = common::runs::ROOT_WORKSPACE;

/// Our pull request's payload; `fork`: its head is in someone else's repository.
fn pr_payload(action: &str, head: &str, fork: bool) -> Vec<u8> {
    let head_repo = if fork { "someone/infra" } else { REPO };
    common::runs::pull_request_payload(PR, action, head, head_repo)
}

/// A comment on our pull request.
fn comment_payload(id: u64, user: &str, body: &str) -> Vec<u8> {
    common::runs::comment_payload(PR, id, user, body)
}

/// The fake GitHub holds our pull request: its head and files; `fork`: the head is in
/// someone else's repository.
async fn fake_pull_request(h: &Harness, files: &[&str], head: &str, fork: bool) {
    let mut pull = PullRequest::open(head, files);
    if fork {
        pull = pull.with_head_in_fork("someone/infra");
    }
    h.gantry.github.open_pull_request(REPO, PR, pull);
}

async fn grant_permission(h: &Harness, user: &str, permission: &str) {
    h.gantry.github.grant(REPO, user, permission);
}

/// The comments Gantry wrote on the pull request (its PR comment and its replies), oldest first.
fn gantry_comments(h: &Harness) -> Vec<Comment> {
    let mut comments = h.gantry.github.comments(REPO, PR);
    comments.retain(|c| c.by_app);
    comments
}

/// Gantry's PR comment (the one carrying its marker) as it reads now.
fn pr_comment(h: &Harness) -> Comment {
    let mut found = gantry_comments(h);
    found.retain(|c| c.body.starts_with(gantry::core::comment::MARKER));
    assert_eq!(found.len(), 1, "one PR comment: {found:#?}");
    found.remove(0)
}

/// The statuses of one commit and context, in the order posted, as the JSON Gantry sent.
async fn statuses(h: &Harness, commit: &str, context: &str) -> Vec<Value> {
    h.gantry
        .github
        .statuses(REPO, commit)
        .into_iter()
        .filter(|s| s.context == context)
        .map(|s| {
            let mut posted = json!({
                "state": s.state, "description": s.description, "context": s.context,
            });
            if let Some(url) = s.target_url {
                posted["target_url"] = url.into();
            }
            posted
        })
        .collect()
}

/// Waits until the outbox has sent everything.
async fn outbox_drained(h: &Harness) {
    wait_until(Duration::from_secs(30), || async {
        (h.gantry.store.outbox_pending().await.unwrap() == 0).then_some(())
    })
    .await
    .expect("the outbox drained");
}

async fn send(h: &Harness, event: &str, delivery: &str, body: &[u8]) {
    assert_eq!(h.gantry.send(event, delivery, body).await.status(), 202);
    h.gantry.wait_for_outcome(delivery).await;
}

/// The latest speculative plan of each workspace for the pull request.
async fn pr_runs(h: &Harness) -> Vec<gantry::store::RunDetail> {
    let mut runs = Vec::new();
    for id in h
        .gantry
        .store
        .pull_request_runs(REPO, PrNumber(PR as i64))
        .await
        .unwrap()
    {
        runs.push(h.gantry.store.run(id).await.unwrap().unwrap());
    }
    runs
}

async fn wait_for_pr_runs(h: &Harness, count: usize, state: &str) -> Vec<gantry::store::RunDetail> {
    let done = wait_until(Duration::from_secs(60), || async {
        let runs = pr_runs(h).await;
        (runs.len() == count && runs.iter().all(|r| r.state.as_str() == state)).then_some(runs)
    })
    .await;
    match done {
        Some(runs) => runs,
        None => panic!(
            "the plans never all became {state}: {:#?}",
            pr_runs(h).await
        ),
    }
}

/// `text` with each run's id replaced by `<run N>` (N its place in `runs`), so that a snapshot
/// does not depend on which ids the database handed out.
fn name_runs(text: &str, runs: &[gantry::store::RunDetail]) -> String {
    let mut named = text.to_owned();
    for (n, run) in runs.iter().enumerate() {
        for (from, to) in [
            (format!("/runs/{}", run.id), format!("/runs/<run {n}>")),
            (format!("run {} of", run.id), format!("<run {n}> of")),
        ] {
            named = named.replace(&from, &to);
        }
    }
    named
}

/// The run page a status links to (the tests' public URL is https://gantry.test/).
fn run_url(_h: &Harness, run_id: RunId) -> String {
    format!("https://gantry.test/runs/{run_id}")
}

#[tokio::test]
async fn a_pull_request_plans_its_workspaces_at_once_past_a_lock_and_a_queued_run() {
    let h = Harness::start(MONOREPO, None).await;
    let head = sha(10);
    fake_pull_request(&h, &["prod/main.tf", "staging/main.tf"], &head, false).await;
    h.serve_tarball(&head, "monorepo").await;

    // prod is locked and has a push run waiting in its queue.
    let (status, _) = h
        .api_post(
            "/api/v1/workspaces/prod/actions/lock",
            json!({ "reason": "freeze" }),
        )
        .await;
    assert_eq!(status, 200);
    let push = common::push_payload(REPO, "main", &sha(1), &["prod/main.tf"], |_| {});
    send(&h, "push", "push-1", &push).await;

    send(
        &h,
        "pull_request",
        "pr-opened",
        &pr_payload("opened", &head, false),
    )
    .await;
    let runs = wait_for_pr_runs(&h, 2, "planned_and_finished").await;

    // Both planned while the other was planning: concurrently, not queued.
    let window = |run: &gantry::store::RunDetail| {
        let h = &h;
        let id = run.id;
        async move {
            let events = h.gantry.store.run_timeline(id).await.unwrap();
            let at = |s: &str| events.iter().find(|e| e.state == s).unwrap().at_ms;
            (at("planning"), at("planned_and_finished"))
        }
    };
    let (a, b) = (window(&runs[0]).await, window(&runs[1]).await);
    assert!(a.0 < b.1 && b.0 < a.1, "the plans overlapped: {a:?} {b:?}");

    // The locked workspace's queue is untouched and its run list has no speculative plan.
    let prod_runs = h.api_get("/api/v1/workspaces/prod/runs").await;
    let prod_runs = prod_runs.as_array().unwrap();
    assert_eq!(prod_runs.len(), 1);
    assert_eq!(prod_runs[0]["state"], "pending");
    assert_eq!(prod_runs[0]["commit_sha"], sha(1));
    let one = h.api_get(&format!("/api/v1/runs/{}", runs[0].id)).await;
    assert_eq!(one["speculative"], true, "reached by its direct link");

    outbox_drained(&h).await;
    for run in &runs {
        let workspace = h
            .gantry
            .store
            .workspace(run.workspace_id)
            .await
            .unwrap()
            .unwrap();
        let context = format!("gantry/{}", workspace.spec.name);
        let posted = statuses(&h, &head, &context).await;
        assert_eq!(
            posted.last().unwrap(),
            &json!({
                "state": "success",
                "description": "Plan: 0 to add, 0 to change, 0 to destroy",
                "context": context,
                "target_url": run_url(&h, run.id),
            })
        );
        assert!(
            posted.len() <= 4,
            "one request per change at most: {posted:#?}"
        );
        for pair in posted.windows(2) {
            assert_ne!(
                pair[0], pair[1],
                "the same status is never posted twice in a row"
            );
        }
    }
    assert_eq!(
        statuses(&h, &head, "gantry/network").await,
        [json!({
            "state": "success",
            "description": "No changes in this workspace",
            "context": "gantry/network",
        })]
    );

    // One comment, created once and edited afterwards.
    assert_eq!(gantry_comments(&h).len(), 1);
    let comment = pr_comment(&h);
    insta::assert_snapshot!("pr_comment_of_two_plans", name_runs(&comment.body, &runs));
}

#[tokio::test]
async fn a_new_head_commit_supersedes_a_plan_still_running() {
    let marker = common::runs::marker();
    let h = Harness::start(ROOT, Some(&slow_plan_terraform(marker.path()))).await;
    let (old, new) = (sha(1), sha(2));
    fake_pull_request(&h, &["main.tf"], &new, false).await;
    h.serve_tarball(&old, "outputs").await;
    h.serve_tarball(&new, "outputs-v2").await;

    send(
        &h,
        "pull_request",
        "pr-opened",
        &pr_payload("opened", &old, false),
    )
    .await;
    let first = wait_for_pr_runs(&h, 1, "planning").await.remove(0);
    send(
        &h,
        "pull_request",
        "pr-sync",
        &pr_payload("synchronize", &new, false),
    )
    .await;

    let canceled = wait_until(Duration::from_secs(30), || async {
        let run = h.gantry.store.run(first.id).await.unwrap().unwrap();
        (run.state == RunState::Canceled).then_some(run)
    })
    .await
    .expect("the older plan was canceled");
    assert_eq!(canceled.error.as_deref(), Some("superseded"));
    std::fs::remove_file(marker.path()).unwrap();
    let second = wait_for_pr_runs(&h, 1, "planned_and_finished")
        .await
        .remove(0);
    assert_eq!(second.commit_sha, new);

    outbox_drained(&h).await;
    assert_eq!(
        statuses(&h, &old, "gantry/prod").await.last().unwrap()["description"],
        "Canceled"
    );
    assert_eq!(
        statuses(&h, &new, "gantry/prod").await.last().unwrap()["state"],
        "success"
    );
}

#[tokio::test]
async fn a_failed_plan_is_retried_by_a_comment_with_the_same_configuration_version() {
    let h = Harness::start(ROOT, None).await;
    let head = sha(3);
    fake_pull_request(&h, &["main.tf"], &head, false).await;
    grant_permission(&h, "alice", "write").await;
    h.serve_tarball(&head, "broken").await;

    send(
        &h,
        "pull_request",
        "pr-opened",
        &pr_payload("opened", &head, false),
    )
    .await;
    let failed = wait_for_pr_runs(&h, 1, "errored").await.remove(0);
    outbox_drained(&h).await;
    let first_status = statuses(&h, &head, "gantry/prod")
        .await
        .last()
        .unwrap()
        .clone();
    assert_eq!(first_status["state"], "failure");
    assert!(
        first_status["description"]
            .as_str()
            .unwrap()
            .starts_with("Plan failed: Reference to undeclared resource"),
        "{first_status}"
    );

    send(
        &h,
        "issue_comment",
        "retry-1",
        &comment_payload(901, "alice", "/gantry retry"),
    )
    .await;
    let retried = wait_until(Duration::from_secs(60), || async {
        let run = pr_runs(&h).await.remove(0);
        (run.id != failed.id && run.state == RunState::Errored).then_some(run)
    })
    .await
    .expect("the retry ran");
    assert_eq!(retried.retry_of, Some(failed.id));
    assert_eq!(
        retried.configuration_version_id,
        failed.configuration_version_id
    );
    assert_eq!(retried.source, "retry");

    outbox_drained(&h).await;
    let last = statuses(&h, &head, "gantry/prod")
        .await
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        last["target_url"],
        run_url(&h, retried.id),
        "the status links to the new run"
    );
    assert_eq!(h.gantry.github.reactions(), [(901, "eyes".to_owned())]);
}

#[tokio::test]
async fn a_command_from_a_read_only_user_is_politely_refused() {
    let h = Harness::start(ROOT, None).await;
    let head = sha(4);
    fake_pull_request(&h, &["main.tf"], &head, false).await;
    grant_permission(&h, "mallory", "read").await;

    send(
        &h,
        "issue_comment",
        "plan-1",
        &comment_payload(902, "mallory", "/gantry plan"),
    )
    .await;
    outbox_drained(&h).await;
    let replies = gantry_comments(&h);
    assert_eq!(replies.len(), 1);
    insta::assert_snapshot!("reply_to_a_reader", replies[0].body);
    assert!(
        h.gantry.github.reactions().iter().all(|(id, _)| *id != 902),
        "no reaction to the refused command"
    );
    assert!(pr_runs(&h).await.is_empty(), "nothing was planned");
    assert_eq!(h.gantry.github.answered("pulls/get"), 0);
}

#[tokio::test]
async fn a_fork_waits_for_approval_and_is_planned_after_a_maintainer_asks() {
    let h = Harness::start(ROOT, None).await;
    let head = sha(5);
    fake_pull_request(&h, &["main.tf"], &head, true).await;
    grant_permission(&h, "maria", "maintain").await;
    h.serve_tarball(&head, "outputs").await;

    send(
        &h,
        "pull_request",
        "pr-fork",
        &pr_payload("opened", &head, true),
    )
    .await;
    outbox_drained(&h).await;
    assert!(
        pr_runs(&h).await.is_empty(),
        "a fork's code is not run by itself"
    );
    assert_eq!(
        statuses(&h, &head, "gantry/prod").await,
        [json!({
            "state": "pending",
            "description": "Waiting for approval to plan: a maintainer can comment /gantry plan",
            "context": "gantry/prod",
        })]
    );

    let checks = h.gantry.github.check_runs();
    assert_eq!(checks.len(), 1, "{checks:#?}");
    assert_eq!(checks[0].name, "gantry/prod");
    assert_eq!(checks[0].head_sha, head);
    assert_eq!(checks[0].status, "completed");
    assert_eq!(checks[0].conclusion.as_deref(), Some("action_required"));
    insta::assert_snapshot!(
        "check_run_of_a_fork_waiting_for_approval",
        format!("{}\n\n{}", checks[0].title, checks[0].summary)
    );

    send(
        &h,
        "issue_comment",
        "approve",
        &comment_payload(903, "maria", "LGTM\n/gantry plan"),
    )
    .await;
    let run = wait_for_pr_runs(&h, 1, "planned_and_finished")
        .await
        .remove(0);
    assert_eq!(run.source, "command");
    outbox_drained(&h).await;
    let last = statuses(&h, &head, "gantry/prod")
        .await
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["state"], "success");
    assert_eq!(last["target_url"], run_url(&h, run.id));
}

#[tokio::test]
async fn a_quoted_command_in_a_code_block_does_not_plan_a_fork() {
    let h = Harness::start(ROOT, None).await;
    let head = sha(15);
    fake_pull_request(&h, &["main.tf"], &head, true).await;
    grant_permission(&h, "maria", "maintain").await;
    send(
        &h,
        "pull_request",
        "pr-fork",
        &pr_payload("opened", &head, true),
    )
    .await;

    // A maintainer explains to the fork's author how approval works, without approving.
    let explanation = "Once I have read it I will comment:\n\n```\n/gantry plan\n```";
    send(
        &h,
        "issue_comment",
        "explained",
        &comment_payload(906, "maria", explanation),
    )
    .await;
    outbox_drained(&h).await;
    assert!(
        pr_runs(&h).await.is_empty(),
        "a quoted command ran the fork's code"
    );
    assert!(
        h.gantry.github.reactions().is_empty(),
        "Gantry did not acknowledge a command"
    );
}

/// The pull request was merged or closed without merging.
async fn pull_request_ended(h: &Harness, _head: &str, merged: bool) {
    h.gantry.github.close_pull_request(REPO, PR, merged);
}

#[tokio::test]
async fn plan_and_retry_on_a_merged_pull_request_are_refused_with_the_reason() {
    let h = Harness::start(ROOT, None).await;
    let head = sha(16);
    fake_pull_request(&h, &["main.tf"], &head, false).await;
    pull_request_ended(&h, &head, true).await;
    grant_permission(&h, "alice", "admin").await;
    h.comment(PR, "alice", "/gantry plan\n/gantry retry").await;
    h.outbox_drained().await;
    assert!(
        pr_runs(&h).await.is_empty(),
        "a merged pull request was planned"
    );
    let replies: Vec<String> = gantry_comments(&h).into_iter().map(|c| c.body).collect();
    insta::assert_debug_snapshot!(replies, @r#"
    [
        "Nothing to plan: the pull request is merged; its changes run in the workspaces of the branch it was merged into",
        "Nothing to retry: the pull request is merged; its changes run in the workspaces of the branch it was merged into",
    ]
    "#);
}

#[tokio::test]
async fn a_plan_command_on_a_closed_pull_request_is_refused_with_the_reason() {
    let h = Harness::start(ROOT, None).await;
    let head = sha(17);
    fake_pull_request(&h, &["main.tf"], &head, false).await;
    pull_request_ended(&h, &head, false).await;
    grant_permission(&h, "alice", "admin").await;
    h.comment(PR, "alice", "/gantry plan").await;
    h.outbox_drained().await;
    assert!(
        pr_runs(&h).await.is_empty(),
        "a closed pull request was planned"
    );
    let replies: Vec<String> = gantry_comments(&h).into_iter().map(|c| c.body).collect();
    insta::assert_debug_snapshot!(replies, @r#"
    [
        "Nothing to plan: the pull request is closed; reopen it to plan it again",
    ]
    "#);
}

#[tokio::test]
async fn unknown_commands_get_the_usage_and_start_nothing() {
    let h = Harness::start(ROOT, None).await;
    fake_pull_request(&h, &["main.tf"], &sha(6), false).await;
    grant_permission(&h, "alice", "admin").await;
    send(
        &h,
        "issue_comment",
        "bad",
        &comment_payload(904, "alice", "/gantry apply --now"),
    )
    .await;
    outbox_drained(&h).await;
    let replies = gantry_comments(&h);
    assert_eq!(replies.len(), 1);
    insta::assert_snapshot!("reply_to_an_unknown_command", replies[0].body);
    assert!(pr_runs(&h).await.is_empty());
}

#[tokio::test]
async fn the_pr_comment_is_trimmed_to_githubs_limit() {
    let h = Harness::start(ROOT, None).await;
    let head = sha(7);
    fake_pull_request(&h, &["main.tf"], &head, false).await;
    h.serve_tarball(&head, "huge").await;
    send(
        &h,
        "pull_request",
        "pr-huge",
        &pr_payload("opened", &head, false),
    )
    .await;
    let run = wait_for_pr_runs(&h, 1, "planned_and_finished")
        .await
        .remove(0);
    let log_chars = h.log(run.id.0, "plan").await.chars().count();
    assert!(
        log_chars > 65_536,
        "the plan output is longer than a comment: {log_chars}"
    );
    outbox_drained(&h).await;
    let last = pr_comment(&h).body;
    assert!(last.chars().count() <= 65_536);
    assert!(
        last.contains(&format!(
            "trimmed to fit in a GitHub comment; the whole plan: {}",
            run_url(&h, run.id)
        )),
        "{}",
        &last[..500]
    );
}

#[tokio::test]
async fn a_late_older_run_never_overwrites_a_newer_runs_status() {
    // The runner is off: the test moves the runs itself, in the order that matters.
    let h = Harness::without_runner(ROOT).await;
    let head = sha(8);
    fake_pull_request(&h, &["main.tf"], &head, false).await;
    grant_permission(&h, "alice", "write").await;

    send(
        &h,
        "pull_request",
        "pr-opened",
        &pr_payload("opened", &head, false),
    )
    .await;
    let older = pr_runs(&h).await.remove(0);
    send(
        &h,
        "issue_comment",
        "plan-again",
        &comment_payload(905, "alice", "/gantry plan"),
    )
    .await;
    let newer = pr_runs(&h).await.remove(0);
    assert!(newer.id > older.id);

    let store = &h.gantry.store;
    use RunState::*;
    for (from, to) in [
        (Pending, Fetching),
        (Fetching, Planning),
        (Planning, PlannedAndFinished),
    ] {
        assert!(
            store
                .move_run(&Move::new(newer.id, from, to, Cause::Runner))
                .await
                .unwrap()
        );
    }
    outbox_drained(&h).await;
    // The older plan finishes late, with an error.
    assert!(
        store
            .move_run(&Move::new(older.id, Pending, Fetching, Cause::Runner))
            .await
            .unwrap()
    );
    assert!(
        store
            .move_run(&Move::new(older.id, Fetching, Errored, Cause::Runner).because("late"))
            .await
            .unwrap()
    );
    outbox_drained(&h).await;

    let posted = statuses(&h, &head, "gantry/prod").await;
    let last = posted.last().unwrap();
    assert_eq!(last["target_url"], run_url(&h, newer.id));
    assert_eq!(last["state"], "success");
    assert!(
        posted.iter().all(|s| s["state"] != "failure"),
        "the older run's failure was never posted: {posted:#?}"
    );
}

#[tokio::test]
async fn check_runs_follow_each_plan_and_githubs_re_run_retries_it() {
    let h = Harness::start(ROOT, None).await;
    let head = sha(9);
    h.serve_tarball(&head, "broken").await;
    h.open_pull_request(PR, &head, &["main.tf"]).await;
    let failed = wait_for_pr_runs(&h, 1, "errored").await.remove(0);
    h.outbox_drained().await;

    let checks = h.gantry.github.check_runs();
    assert_eq!(checks.len(), 1, "one check run per run: {checks:#?}");
    let check = &checks[0];
    assert_eq!(check.name, "gantry/prod");
    assert_eq!(check.head_sha, head);
    assert_eq!(check.external_id, Some(failed.id.to_string()));
    assert_eq!(check.details_url, Some(run_url(&h, failed.id)));
    assert_eq!(check.status, "completed");
    assert_eq!(check.conclusion.as_deref(), Some("failure"));
    insta::assert_snapshot!(
        "check_run_of_a_failed_plan",
        name_runs(
            &format!("{}\n\n{}", check.title, check.summary),
            std::slice::from_ref(&failed)
        )
    );

    // GitHub's "Re-run" button on that check run.
    h.rerun_check(failed.id.0, &head).await;
    let retried = wait_until(Duration::from_secs(60), || async {
        let run = pr_runs(&h).await.remove(0);
        (run.id != failed.id && run.state == RunState::Errored).then_some(run)
    })
    .await
    .expect("the re-run ran");
    assert_eq!(retried.retry_of, Some(failed.id));
    assert_eq!(
        retried.configuration_version_id,
        failed.configuration_version_id
    );
}

#[tokio::test]
async fn closing_the_pull_request_cancels_its_waiting_plans() {
    // The runner is off, so the plan waits.
    let h = Harness::without_runner(ROOT).await;
    let head = sha(11);
    h.open_pull_request(PR, &head, &["main.tf"]).await;
    let waiting = pr_runs(&h).await.remove(0);
    assert_eq!(waiting.state, RunState::Pending);
    h.close_pull_request(PR, &head, false).await;
    let closed = h.gantry.store.run(waiting.id).await.unwrap().unwrap();
    assert_eq!(closed.state, RunState::Canceled);
    assert_eq!(closed.error.as_deref(), Some("the pull request was closed"));
    let timeline = h.gantry.store.run_timeline(waiting.id).await.unwrap();
    let last = timeline.last().unwrap();
    assert_eq!(
        (last.state.as_str(), last.cause.as_deref()),
        ("canceled", Some("github")),
        "the timeline says GitHub's event canceled it"
    );
}

#[tokio::test]
async fn an_aggregate_status_sums_up_every_workspace_when_asked_for() {
    // The runner is off: prod's plan stays queued, the others are untouched.
    // `[feedback]` comes before the workspace tables, as TOML wants.
    let config = format!("[feedback]\naggregate_status = true\n{MONOREPO}");
    let h = Harness::without_runner(&config).await;
    let head = sha(12);
    fake_pull_request(&h, &["prod/main.tf"], &head, false).await;
    send(
        &h,
        "pull_request",
        "pr-opened",
        &pr_payload("opened", &head, false),
    )
    .await;
    outbox_drained(&h).await;
    assert_eq!(
        statuses(&h, &head, "gantry").await.last().unwrap(),
        &json!({
            "state": "pending",
            "description": "3 workspaces: 1 pending, 2 succeeded",
            "context": "gantry",
        })
    );
}

#[tokio::test]
async fn a_comment_carrying_the_marker_but_not_written_by_gantry_is_never_edited() {
    let h = Harness::start(ROOT, None).await;
    let head = sha(13);
    h.serve_tarball(&head, "outputs").await;
    // Someone posted a comment with Gantry's hidden marker, hoping Gantry writes its plan there.
    let planted = format!("{}\nNo changes. Ship it!", gantry::core::comment::MARKER);
    h.gantry.github.comment_by(REPO, PR, "mallory", &planted);
    h.open_pull_request(PR, &head, &["main.tf"]).await;
    wait_for_pr_runs(&h, 1, "planned_and_finished").await;
    outbox_drained(&h).await;
    let comments = h.gantry.github.comments(REPO, PR);
    assert_eq!(comments.len(), 2, "{comments:#?}");
    assert_eq!(
        (comments[0].body.as_str(), comments[0].edits),
        (planted.as_str(), 0),
        "the planted comment is untouched"
    );
    assert!(comments[1].by_app, "Gantry made its own comment");
}
