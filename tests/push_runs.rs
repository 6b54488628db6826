//! What a push becomes: one run per triggered workspace at the pushed commit, pinned to a
//! configuration version and a snapshot of the workspace's variables; nothing (with the reason
//! recorded) for other branches, tags, deletions and untouched workspaces.

mod common;

use common::github::Fault;
use common::{TestGantry, push_payload};
use gantry::core::queue::{QueueDecision, QueuedRun, WaitReason, next_to_start};
use gantry::core::run::RunState;
use gantry::store::{Cause, Move, Workspace};

const SHA1: &str = "1111111111111111111111111111111111111111";
const SHA2: &str = "2222222222222222222222222222222222222222";

const WORKSPACES: &str = r#"
[[workspaces]]
name = "prod"
repo = "octo-org/infra"
working_directory = "envs/prod"
[workspaces.vars]
region = "eu-west-1"
password = { value = "s3cret", sensitive = true }

[[workspaces]]
name = "staging"
repo = "octo-org/infra"
working_directory = "envs/staging"

[[workspaces]]
name = "other-branch"
repo = "octo-org/infra"
branch = "develop"
"#;

async fn workspace(gantry: &TestGantry, name: &str) -> Workspace {
    let all = gantry.store.workspaces().await.unwrap();
    all.into_iter()
        .find(|w| w.spec.name.as_str() == name)
        .unwrap()
}

async fn run_count(gantry: &TestGantry, name: &str) -> usize {
    let ws = workspace(gantry, name).await;
    gantry.store.workspace_runs(ws.id).await.unwrap().len()
}

#[tokio::test]
async fn a_push_runs_the_workspaces_whose_files_it_touches() {
    let gantry = TestGantry::start_with_config(WORKSPACES).await;
    let body = push_payload(
        "octo-org/infra",
        "main",
        SHA1,
        &["envs/prod/main.tf"],
        |_| {},
    );
    assert_eq!(gantry.send("push", "push-1", &body).await.status(), 202);
    let done = gantry.wait_for_outcome("push-1").await;
    assert_eq!(done.status, "processed");

    let prod = workspace(&gantry, "prod").await;
    let runs = gantry.store.workspace_runs(prod.id).await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].state, "pending");
    assert_eq!(runs[0].commit_sha, SHA1);
    assert_eq!(runs[0].source, "push");
    assert_eq!(runs[0].delivery_id.as_deref(), Some("push-1"));
    assert_eq!(run_count(&gantry, "staging").await, 0);
    assert_eq!(run_count(&gantry, "other-branch").await, 0);

    // Pinned to the variables as they were.
    let vars = gantry.store.run_variables(runs[0].id).await.unwrap();
    assert_eq!(
        vars,
        [
            ("terraform".into(), "password".into(), "s3cret".into(), true),
            (
                "terraform".into(),
                "region".into(),
                "eu-west-1".into(),
                false
            ),
        ]
    );
}

#[tokio::test]
async fn the_same_commit_pushed_again_creates_no_second_run() {
    let gantry = TestGantry::start_with_config(WORKSPACES).await;
    let body = push_payload(
        "octo-org/infra",
        "main",
        SHA1,
        &["envs/prod/a.tf", "envs/staging/b.tf"],
        |_| {},
    );
    gantry.send("push", "again-1", &body).await;
    gantry.send("push", "again-2", &body).await; // a new delivery id, the same commit
    gantry.wait_for_outcome("again-2").await;
    assert_eq!(run_count(&gantry, "prod").await, 1);
    assert_eq!(run_count(&gantry, "staging").await, 1);

    let prod = workspace(&gantry, "prod").await;
    let staging = workspace(&gantry, "staging").await;
    let prod_run = &gantry.store.workspace_runs(prod.id).await.unwrap()[0];
    let staging_run = &gantry.store.workspace_runs(staging.id).await.unwrap()[0];
    assert_eq!(
        prod_run.configuration_version_id, staging_run.configuration_version_id,
        "one configuration version per commit, shared"
    );
}

#[tokio::test]
async fn pushes_that_run_nothing_say_why() {
    let gantry = TestGantry::start_with_config(WORKSPACES).await;
    let cases = [
        (
            "why-branch",
            push_payload(
                "octo-org/infra",
                "feature/x",
                SHA1,
                &["envs/prod/a.tf"],
                |_| {},
            ),
            "no workspace tracks branch feature/x",
        ),
        (
            "why-tag",
            push_payload("octo-org/infra", "main", SHA1, &["envs/prod/a.tf"], |p| {
                p["ref"] = "refs/tags/v1.0".into();
            }),
            "refs/tags/v1.0 is not a branch",
        ),
        (
            "why-deleted",
            push_payload("octo-org/infra", "main", SHA1, &[], |p| {
                p["deleted"] = true.into();
                p["after"] = "0000000000000000000000000000000000000000".into();
            }),
            "branch main was deleted",
        ),
        (
            "why-files",
            push_payload("octo-org/infra", "main", SHA1, &["README.md"], |_| {}),
            "no workspace on branch main is triggered by the changed files",
        ),
        (
            "why-repo",
            push_payload(
                "octo-org/elsewhere",
                "main",
                SHA1,
                &["envs/prod/a.tf"],
                |_| {},
            ),
            "no workspace tracks this repository",
        ),
        (
            "why-merge-queue",
            push_payload(
                "octo-org/infra",
                "gh-readonly-queue/main/pr-7-2222222222222222222222222222222222222222",
                SHA1,
                &["envs/prod/a.tf"],
                |_| {},
            ),
            "gh-readonly-queue/main/pr-7-2222222222222222222222222222222222222222 is a merge \
             queue branch: GitHub tests it before merging, and the workspaces run when it is \
             merged",
        ),
    ];
    for (id, body, reason) in cases {
        gantry.send("push", id, &body).await;
        let done = gantry.wait_for_outcome(id).await;
        assert_eq!(done.status, "ignored", "{id}");
        assert_eq!(done.outcome_detail.as_deref(), Some(reason), "{id}");
    }
    for name in ["prod", "staging", "other-branch"] {
        assert_eq!(run_count(&gantry, name).await, 0, "{name}");
    }
}

#[tokio::test]
async fn a_forced_push_asks_github_which_files_changed() {
    let gantry = TestGantry::start_with_config(WORKSPACES).await;
    compare_lists(&gantry, SHA1, SHA2, &["envs/staging/main.tf"]).await;
    compare_lists(&gantry, SHA2, SHA1, &[]).await;
    // The payload claims prod changed; after a forced push only the comparison counts.
    let body = push_payload(
        "octo-org/infra",
        "main",
        SHA2,
        &["envs/prod/main.tf"],
        |p| {
            p["forced"] = true.into();
            p["before"] = SHA1.into();
        },
    );
    gantry.send("push", "forced-1", &body).await;
    let done = gantry.wait_for_outcome("forced-1").await;
    assert_eq!(done.status, "processed", "{:?}", done.outcome_detail);
    assert_eq!(run_count(&gantry, "staging").await, 1);
    assert_eq!(run_count(&gantry, "prod").await, 0);
    let requests = gantry.github.received_requests().await.unwrap();
    for compared in [format!("{SHA1}...{SHA2}"), format!("{SHA2}...{SHA1}")] {
        let asked = requests
            .iter()
            .filter(|r| r.url.path().ends_with(&format!("/compare/{compared}")))
            .count();
        assert_eq!(asked, 1, "{compared} compared once");
    }
}

/// GitHub's comparison `base...head` lists these files.
async fn compare_lists(gantry: &TestGantry, base: &str, head: &str, files: &[&str]) {
    gantry.github.compare("octo-org/infra", base, head, files);
}

/// The commits of a workspace's runs, oldest first.
async fn run_commits(gantry: &TestGantry, name: &str) -> Vec<String> {
    let ws = workspace(gantry, name).await;
    let mut runs = gantry.store.workspace_runs(ws.id).await.unwrap();
    runs.sort_by_key(|r| r.id);
    runs.into_iter().map(|r| r.commit_sha.to_string()).collect()
}

#[tokio::test]
async fn a_forced_push_rolling_the_branch_back_runs_the_old_commit_again() {
    let gantry = TestGantry::start_with_config(WORKSPACES).await;
    let first = push_payload("octo-org/infra", "main", SHA1, &["envs/prod/a.tf"], |_| {});
    gantry.send("push", "first", &first).await;
    gantry.wait_for_outcome("first").await;
    let bad = push_payload("octo-org/infra", "main", SHA2, &["envs/prod/a.tf"], |p| {
        p["before"] = SHA1.into();
    });
    gantry.send("push", "bad-change", &bad).await;
    gantry.wait_for_outcome("bad-change").await;
    assert_eq!(run_commits(&gantry, "prod").await, [SHA1, SHA2]);

    // `git push --force origin SHA1:main`: the bad change is undone. Nothing is new on the
    // branch since the tips' merge base (SHA1 itself); what differs is what SHA2 had changed.
    compare_lists(&gantry, SHA2, SHA1, &[]).await;
    compare_lists(&gantry, SHA1, SHA2, &["envs/prod/a.tf"]).await;
    let rollback = push_payload("octo-org/infra", "main", SHA1, &[], |p| {
        p["before"] = SHA2.into();
        p["forced"] = true.into();
        p["commits"] = serde_json::json!([]);
    });
    gantry.send("push", "rollback", &rollback).await;
    let done = gantry.wait_for_outcome("rollback").await;
    assert_eq!(done.status, "processed", "{:?}", done.outcome_detail);
    assert_eq!(
        run_commits(&gantry, "prod").await,
        [SHA1, SHA2, SHA1],
        "the commit that is the tip again runs again"
    );
    assert_eq!(
        run_count(&gantry, "staging").await,
        0,
        "its files never differed"
    );

    // The same push delivered again is no new push.
    gantry.send("push", "rollback", &rollback).await;
    gantry.send("push", "rollback-again", &rollback).await;
    gantry.wait_for_outcome("rollback-again").await;
    assert_eq!(run_commits(&gantry, "prod").await, [SHA1, SHA2, SHA1]);
}

#[tokio::test]
async fn a_forced_push_github_cannot_compare_runs_every_workspace_on_the_branch() {
    let gantry = TestGantry::start_with_config(WORKSPACES).await;
    // The old tip is gone from GitHub (or shares no history with the new one): the fake
    // GitHub knows no comparison of the two and answers 404, as GitHub does.
    let body = push_payload("octo-org/infra", "main", SHA2, &[], |p| {
        p["before"] = SHA1.into();
        p["forced"] = true.into();
    });
    gantry.send("push", "orphan", &body).await;
    let done = gantry.wait_for_outcome("orphan").await;
    assert_eq!(done.status, "processed", "{:?}", done.outcome_detail);
    assert_eq!(run_commits(&gantry, "prod").await, [SHA2]);
    assert_eq!(run_commits(&gantry, "staging").await, [SHA2]);
    assert_eq!(run_count(&gantry, "other-branch").await, 0);
}

#[tokio::test]
async fn a_comparison_github_cannot_answer_is_retried_not_lost() {
    let gantry = TestGantry::start_with_config(WORKSPACES).await;
    gantry
        .github
        .outage("apps/create-installation-access-token", Fault::status(503));
    let body = push_payload(
        "octo-org/infra",
        "main",
        SHA2,
        &["envs/prod/main.tf"],
        |p| {
            p["forced"] = true.into();
            p["before"] = SHA1.into();
        },
    );
    gantry.send("push", "outage-1", &body).await;
    let stored = common::wait_until(std::time::Duration::from_secs(10), || async {
        gantry
            .delivery("outage-1")
            .await
            .filter(|d| d.attempts >= 1)
    })
    .await
    .expect("a failed attempt is recorded");
    assert_eq!(stored.status, "pending", "kept for a retry");
    assert!(stored.outcome_detail.unwrap().contains("comparing"));
}

/// The queue's decision for a workspace, from what the store holds.
async fn queue_decision(gantry: &TestGantry, name: &str) -> QueueDecision {
    let ws = workspace(gantry, name).await;
    let runs: Vec<QueuedRun> = gantry
        .store
        .workspace_runs(ws.id)
        .await
        .unwrap()
        .iter()
        .map(|r| QueuedRun {
            id: r.id,
            state: RunState::parse(&r.state).unwrap(),
        })
        .collect();
    next_to_start(&runs, ws.lock.is_some())
}

async fn push_to_prod(gantry: &TestGantry, delivery: &str, sha: &str) {
    let body = push_payload(
        "octo-org/infra",
        "main",
        sha,
        &["envs/prod/main.tf"],
        |_| {},
    );
    gantry.send("push", delivery, &body).await;
    gantry.wait_for_outcome(delivery).await;
}

#[tokio::test]
async fn a_restart_plans_again_a_plan_that_never_started_at_the_front_of_the_queue() {
    let mut gantry = TestGantry::start_with_config(WORKSPACES).await;
    push_to_prod(&gantry, "q-1", SHA1).await;
    push_to_prod(&gantry, "q-2", SHA2).await;
    let prod = workspace(&gantry, "prod").await;
    let runs = gantry.store.workspace_runs(prod.id).await.unwrap();
    let (first, second) = (runs[0].id, runs[1].id);
    assert_eq!(
        queue_decision(&gantry, "prod").await,
        QueueDecision::Start(first),
        "FIFO"
    );
    // This server started the run and moved it to planning, then stopped before Terraform.
    let replica = std::fs::read_to_string(gantry.data_dir.path().join("replica-id")).unwrap();
    assert!(
        gantry
            .store
            .start_queued_run(first, &replica)
            .await
            .unwrap()
    );
    assert!(
        gantry
            .store
            .move_run(&Move::new(
                first,
                RunState::Fetching,
                RunState::Planning,
                Cause::Runner
            ))
            .await
            .unwrap()
    );
    assert_eq!(
        queue_decision(&gantry, "prod").await,
        QueueDecision::Wait(WaitReason::Busy(first)),
        "the second run waits, not even planned"
    );

    // Only a server that executes runs takes them back. This plan never started (nothing was
    // fetched, no supervisor ran): it is queued again, ahead of the second run.
    gantry
        .restart_with(|env| {
            env.insert("GANTRY_RUNNER_ENABLED".into(), "true".into());
        })
        .await;
    let started = common::wait_until(std::time::Duration::from_secs(20), || async {
        let events = gantry.store.run_events(second).await.unwrap();
        (events.len() > 1).then_some(events)
    })
    .await
    .expect("the second run started");
    assert_eq!(started[1].0, "fetching");
    let first_run = gantry.store.run(first).await.unwrap().unwrap();
    assert!(
        first_run.state.is_final(),
        "the second run starts only after the first one: {first_run:?}"
    );
    let events = gantry.store.run_events(first).await.unwrap();
    assert!(
        events.iter().any(|(state, detail)| state == "pending"
            && detail.as_deref().unwrap_or("").contains("planned again")),
        "queued again: {events:?}"
    );
    let fetched = events
        .iter()
        .filter(|(state, _)| state == "fetching")
        .count();
    assert_eq!(
        fetched, 2,
        "started again, before the second run: {events:?}"
    );
    assert!(
        !events
            .iter()
            .any(|(_, detail)| detail.as_deref() == Some("interrupted")),
        "{events:?}"
    );
}

#[tokio::test]
async fn a_locked_workspace_holds_its_queue_until_unlocked() {
    let gantry = TestGantry::start_with_config(WORKSPACES).await;
    push_to_prod(&gantry, "lock-1", SHA1).await;
    let prod = workspace(&gantry, "prod").await;
    let first = gantry
        .store
        .lock_workspace(prod.id, "alice", "maintenance window")
        .await
        .unwrap();
    assert_eq!(first, None);
    let lock = workspace(&gantry, "prod").await.lock.unwrap();
    assert_eq!(
        (lock.by.as_str(), lock.reason.as_str()),
        ("alice", "maintenance window")
    );
    assert_eq!(
        queue_decision(&gantry, "prod").await,
        QueueDecision::Wait(WaitReason::Locked)
    );

    let again = gantry
        .store
        .lock_workspace(prod.id, "bob", "mine now")
        .await
        .unwrap();
    assert_eq!(again.unwrap().by, "alice", "the first lock stands");

    gantry
        .store
        .unlock_workspace(prod.id, "tester")
        .await
        .unwrap();
    assert!(matches!(
        queue_decision(&gantry, "prod").await,
        QueueDecision::Start(_)
    ));
}

#[tokio::test]
async fn an_illegal_run_transition_is_refused_and_changes_nothing() {
    let gantry = TestGantry::start_with_config(WORKSPACES).await;
    push_to_prod(&gantry, "illegal-1", SHA1).await;
    let prod = workspace(&gantry, "prod").await;
    let run = gantry.store.workspace_runs(prod.id).await.unwrap()[0].id;
    let refused = gantry
        .store
        .move_run(&Move::new(
            run,
            RunState::Pending,
            RunState::Applied,
            Cause::Runner,
        ))
        .await;
    assert!(refused.is_err());
    // A stale `from` (another process moved it) is not an error, just no move.
    let stale = gantry
        .store
        .move_run(&Move::new(
            run,
            RunState::Planned,
            RunState::Confirmed,
            Cause::Runner,
        ))
        .await;
    assert!(!stale.unwrap());
    assert_eq!(
        gantry.store.workspace_runs(prod.id).await.unwrap()[0].state,
        "pending"
    );
}

#[tokio::test]
async fn a_later_push_waits_while_an_earlier_one_of_its_repository_is_retried() {
    let gantry = TestGantry::start_with_config(WORKSPACES).await;
    // GitHub fails the first comparison, then answers. (Not with a 404: that says GitHub
    // cannot compare the commits, and every workspace on the branch runs.)
    gantry
        .github
        .fail("repos/compare-commits", [Fault::status(502)]);
    compare_lists(&gantry, SHA1, SHA2, &["envs/prod/main.tf"]).await;
    compare_lists(&gantry, SHA2, SHA1, &[]).await;
    const SHA3: &str = "3333333333333333333333333333333333333333";
    let forced = push_payload("octo-org/infra", "main", SHA2, &[], |p| {
        p["forced"] = true.into();
        p["before"] = SHA1.into();
    });
    let next = push_payload(
        "octo-org/infra",
        "main",
        SHA3,
        &["envs/prod/main.tf"],
        |_| {},
    );
    gantry.send("push", "order-1", &forced).await;
    gantry.send("push", "order-2", &next).await;

    let first = gantry.wait_for_outcome("order-1").await;
    assert_eq!(first.attempts, 2, "processed on its second try");
    let second = gantry.wait_for_outcome("order-2").await;
    assert!(second.processed_at_ms >= first.processed_at_ms);
    let prod = workspace(&gantry, "prod").await;
    let commits: Vec<String> = gantry
        .store
        .workspace_runs(prod.id)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.commit_sha.to_string())
        .collect();
    assert_eq!(commits, [SHA2, SHA3], "runs in push order");
}
