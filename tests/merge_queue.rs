//! GitHub's merge queue: a `merge_group` (GitHub's own example payloads,
//! `fixtures/webhooks/merge_group.*`) gets speculative plans of the workspaces its changes touch,
//! at the group's commit, under the contexts pull requests use; untouched workspaces pass at
//! once; a destroyed group cancels its plans.

mod common;

use std::time::Duration;

use common::github::{PullRequest, Status};
use common::runs::{
    Harness, MONOREPO, REPO, ROOT_WORKSPACE, sha, slow_plan_terraform, tarball_of_files,
};
use common::{fixture, wait_until};
use gantry::core::CommitSha;
use serde_json::Value;

/// GitHub's example `merge_group` payload as `action` for our repository: the group's commit
/// `head` on top of `base` of main.
fn merge_group_payload(action: &str, base: &str, head: &str) -> Vec<u8> {
    let mut p: Value =
        serde_json::from_slice(&fixture("webhooks/merge_group.checks_requested.json")).unwrap();
    p["action"] = action.into();
    if action == "destroyed" {
        p["reason"] = "dequeued".into();
    }
    p["merge_group"]["base_sha"] = base.into();
    p["merge_group"]["head_sha"] = head.into();
    p["merge_group"]["head_ref"] = format!("refs/heads/gh-readonly-queue/main/pr-2-{head}").into();
    p["repository"]["full_name"] = REPO.into();
    p["repository"]["default_branch"] = "main".into();
    p["installation"] = serde_json::json!({ "id": 99, "node_id": "x" });
    serde_json::to_vec(&p).unwrap()
}

/// The final (not pending) `gantry/prod` status of `head`.
async fn final_status(h: &Harness, head: &str) -> Status {
    wait_until(Duration::from_secs(60), || async {
        h.gantry
            .github
            .latest_statuses(REPO, head)
            .remove("gantry/prod")
            .filter(|s| s.state != "pending")
    })
    .await
    .unwrap_or_else(|| panic!("no result on {head}: {:#?}", h.gantry.github.all_statuses()))
}

/// Each pull request adds an output of the same name in a file of its own: each plans alone.
const VARIABLE: &str = "variable \"name\" {\n  type = string\n}\n";
const FROM_A: &str = "output \"endpoint\" {\n  value = \"a\"\n}\n";
const FROM_B: &str = "output \"endpoint\" {\n  value = \"b\"\n}\n";

#[tokio::test]
async fn a_group_of_two_pull_requests_that_conflict_fails_though_each_plans_alone() {
    let h = Harness::start(ROOT_WORKSPACE, None).await;
    let github = &h.gantry.github;
    let (base, a, b, group) = (sha(9), sha(1), sha(2), sha(3));
    for (number, head, files) in [
        (1, &a, vec![("main.tf", VARIABLE), ("a.tf", FROM_A)]),
        (2, &b, vec![("main.tf", VARIABLE), ("b.tf", FROM_B)]),
    ] {
        h.serve_tarball_bytes(head, tarball_of_files(head, &files))
            .await;
        let changed = files[1].0;
        github.open_pull_request(REPO, number, PullRequest::open(head, &[changed]));
        h.open_pull_request(number, head, &[changed]).await;
        let alone = final_status(&h, head).await;
        assert_eq!(
            alone.state, "success",
            "pull request {number} plans alone: {alone:?}"
        );
    }

    // The queue meets them in one commit: the group's check fails.
    let both = [("main.tf", VARIABLE), ("a.tf", FROM_A), ("b.tf", FROM_B)];
    h.serve_tarball_bytes(&group, tarball_of_files(&group, &both))
        .await;
    github.compare(REPO, &base, &group, &["a.tf", "b.tf"]);
    h.deliver(
        "merge_group",
        &merge_group_payload("checks_requested", &base, &group),
    )
    .await;
    let result = final_status(&h, &group).await;
    assert_eq!(result.state, "failure", "{result:?}");
    let runs = (h.gantry.store)
        .latest_speculative_runs_at(REPO, &CommitSha(group.clone()))
        .await
        .unwrap();
    let run = h.run(runs[0].0).await;
    assert_eq!(run["state"], "errored");
    assert_eq!(run["speculative"], true);
    let log = h.log(runs[0].0, "plan").await;
    assert!(log.contains("Duplicate output definition"), "{log}");
    // The same check name a pull request gets, on the group's commit.
    h.outbox_drained().await;
    assert!(
        github.check_runs().iter().any(|c| c.name == "gantry/prod"
            && c.head_sha == group
            && c.conclusion.as_deref() == Some("failure")),
        "{:#?}",
        github.check_runs()
    );
}

#[tokio::test]
async fn a_group_that_only_touches_docs_passes_at_once() {
    // Three workspaces, each in a folder of its own: the docs are none of theirs.
    let h = Harness::start(MONOREPO, None).await;
    let (base, group) = (sha(9), sha(4));
    h.gantry
        .github
        .compare(REPO, &base, &group, &["docs/README.md"]);
    h.deliver(
        "merge_group",
        &merge_group_payload("checks_requested", &base, &group),
    )
    .await;
    h.outbox_drained().await;
    let statuses = h.gantry.github.latest_statuses(REPO, &group);
    for context in ["gantry/prod", "gantry/staging", "gantry/network"] {
        let status = &statuses[context];
        assert_eq!(status.state, "success", "{context}");
        assert_eq!(status.description, "No changes in this workspace");
    }
    let runs = (h.gantry.store)
        .latest_speculative_runs_at(REPO, &CommitSha(group))
        .await
        .unwrap();
    assert!(runs.is_empty(), "nothing to plan: {runs:?}");
}

#[tokio::test]
async fn a_dequeued_group_cancels_its_plan_still_running() {
    let marker = common::runs::marker();
    let h = Harness::start(ROOT_WORKSPACE, Some(&slow_plan_terraform(marker.path()))).await;
    let (base, group) = (sha(9), sha(5));
    h.serve_tarball(&group, "outputs").await;
    h.gantry.github.compare(REPO, &base, &group, &["main.tf"]);
    h.deliver(
        "merge_group",
        &merge_group_payload("checks_requested", &base, &group),
    )
    .await;
    let run = (h.gantry.store)
        .latest_speculative_runs_at(REPO, &CommitSha(group.clone()))
        .await
        .unwrap()[0]
        .0;
    h.wait_for(run, "planning").await;
    h.deliver(
        "merge_group",
        &merge_group_payload("destroyed", &base, &group),
    )
    .await;
    let done = h.wait_for(run, "canceled").await;
    assert_eq!(done["state"], "canceled", "{done}");
    assert!(
        done["error"]
            .as_str()
            .unwrap_or_default()
            .contains("dequeued"),
        "{done}"
    );
}
