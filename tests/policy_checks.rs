//! Policy checks with real plans (Terraform 1.15.5, `terraform_data`, offline) against real
//! Rego policies (`fixtures/policies/`): a mandatory failure holds a run until an admin
//! overrides it, advisory failures only warn, an errored policy blocks, a speculative plan
//! reports and never waits, a clean plan passes.

mod common;

use common::browser::{Browser, hidden};
use common::fixture_path;
use common::github::PullRequest;
use common::runs::{Harness, REPO, sha, tarball_of_files, upload_of};
use common::terraform_cli::start_with_terraform_1_15;
use gantry::core::PrNumber;
use serde_json::json;

/// Gantry with workspace `prod` (exposure `exposure`, auto-apply or not) checked against the
/// policy sets in `sets` (fixture folder names), and Terraform 1.15.5 to plan with.
async fn gantry(exposure: &str, auto_apply: bool, sets: &[&str]) -> Harness {
    gantry_with(exposure, auto_apply, sets, "").await
}

/// [`gantry`], each policy set also given `set_lines` (more of its settings).
async fn gantry_with(exposure: &str, auto_apply: bool, sets: &[&str], set_lines: &str) -> Harness {
    let mut toml = format!(
        "[[workspaces]]\nname = \"prod\"\nrepo = \"octo-org/infra\"\n\
         terraform_version = \"1.15.5\"\nauto_apply = {auto_apply}\n\
         [workspaces.vars]\nexposure = \"{exposure}\"\n\n\
         [[workspaces]]\nname = \"unchecked\"\nrepo = \"octo-org/other\"\n\
         terraform_version = \"1.15.5\"\n[workspaces.vars]\nexposure = \"public\"\n\n"
    );
    for set in sets {
        toml.push_str(&format!(
            "[[policy_sets]]\nname = \"{set}\"\npath = \"{}\"\nworkspaces = [\"pro*\"]\n{set_lines}\n",
            fixture_path(&format!("policies/{set}")).display()
        ));
    }
    start_with_terraform_1_15(&toml).await
}

async fn policy_checks(h: &Harness, run: i64) -> Vec<(String, String, Vec<String>)> {
    let checks = h
        .api_get(&format!("/api/v1/runs/{run}/policy-checks"))
        .await;
    checks
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["policy"].as_str().unwrap().to_string(),
                c["result"].as_str().unwrap().to_string(),
                c["messages"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| m.as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_mandatory_failure_holds_the_run_until_an_admin_overrides_it_then_it_applies_once() {
    let h = gantry("public", true, &["guards"]).await;
    h.serve_tarball(&sha(1), "exposed").await;
    let run = h.push(&sha(1)).await;
    h.wait_for(run, "policy_override").await;
    let checks = policy_checks(&h, run).await;
    assert_eq!(
        checks[0],
        (
            "no_public_ingress".to_string(),
            "mandatory failed".to_string(),
            vec!["terraform_data.web is exposed to the internet".to_string()]
        )
    );
    assert_eq!(checks[1].1, "passed");
    let log = h.log(run, "plan").await;
    assert!(log.contains("waits for an override"), "{log}");
    // GitHub shows the check of its own, waiting for action.
    let policy_check = || async {
        h.outbox_drained().await;
        h.gantry
            .github
            .check_runs()
            .into_iter()
            .find(|c| c.name == "gantry/prod/policy")
            .expect("a policy check run")
    };
    let shown = policy_check().await;
    assert_eq!(shown.conclusion.as_deref(), Some("action_required"));
    assert!(
        shown
            .summary
            .contains("terraform_data.web is exposed to the internet"),
        "{}",
        shown.summary
    );

    // Not by a writer, not without a reason; an admin's override is kept with who and why.
    let writer = h.token_for("write").await;
    let reason = json!({ "reason": "the load balancer is meant to be public" });
    let refused = h
        .call(
            "POST",
            &format!("/api/v1/runs/{run}/actions/override"),
            &writer,
            reason.clone(),
        )
        .await;
    assert_eq!(refused.status, 403);
    let no_reason = h
        .call(
            "POST",
            &format!("/api/v1/runs/{run}/actions/override"),
            &h.token,
            json!({"reason": " "}),
        )
        .await;
    assert_eq!(no_reason.status, 400);
    assert_eq!(h.run(run).await["state"], "policy_override");
    // The run page shows the check, and an admin the override form, which takes a reason.
    let mut browser = Browser::new(&h.gantry.url);
    browser.sign_in(&writer).await;
    let (_, page, _) = browser.get(&format!("/runs/{run}")).await;
    assert!(page.contains("Policy checks"), "{page}");
    assert!(
        page.contains("terraform_data.web is exposed to the internet"),
        "{page}"
    );
    assert!(!page.contains("Override policy check"), "not for writers");
    let mut admin = Browser::new(&h.gantry.url);
    admin.sign_in(&h.token).await;
    let (_, page, _) = admin.get(&format!("/runs/{run}")).await;
    assert!(page.contains("Override policy check"), "{page}");
    let csrf = hidden(&page, "csrf");
    let (status, _) = admin
        .post(
            &format!("/runs/{run}/override"),
            &[("csrf", &csrf), ("reason", "")],
        )
        .await;
    assert_eq!(status, 400);
    let (status, location) = admin
        .post(
            &format!("/runs/{run}/override"),
            &[
                ("csrf", &csrf),
                ("reason", reason["reason"].as_str().unwrap()),
            ],
        )
        .await;
    assert_eq!(status, 303);
    assert_eq!(location, Some(format!("/runs/{run}")));

    // The workspace auto-applies: the overridden run applies, once.
    let done = h.wait_for(run, "applied").await;
    let states = Harness::states(&done);
    assert_eq!(
        states.iter().filter(|s| *s == "applying").count(),
        1,
        "{states:?}"
    );
    let shown = policy_check().await;
    assert_eq!(shown.conclusion.as_deref(), Some("success"));
    assert!(
        shown
            .title
            .contains("overridden by tester: the load balancer is meant to be public"),
        "{}",
        shown.title
    );
    let events = done["events"].as_array().unwrap();
    let override_event = events
        .iter()
        .find(|e| e["state"] == "planned" && e["cause"] == "person:tester")
        .unwrap_or_else(|| panic!("the override is on the timeline: {events:?}"));
    assert!(
        override_event["detail"]
            .as_str()
            .unwrap()
            .contains("meant to be public")
    );
    let again = h
        .call(
            "POST",
            &format!("/api/v1/runs/{run}/actions/override"),
            &h.token,
            json!({"reason": "again"}),
        )
        .await;
    assert_eq!(again.status, 409, "nothing to override any more");
}

#[tokio::test]
async fn advisory_failures_only_warn_and_workspaces_outside_a_set_are_not_checked() {
    let h = gantry("internal", false, &["guards"]).await;
    h.serve_tarball(&sha(1), "exposed").await;
    let run = h.push(&sha(1)).await;
    let planned = h.wait_for(run, "planned").await;
    let states = Harness::states(&planned);
    assert!(
        states.contains(&"policy_checking".to_string()),
        "{states:?}"
    );
    assert!(states.contains(&"policy_checked".to_string()), "{states:?}");
    let checks = policy_checks(&h, run).await;
    assert_eq!(checks[0].1, "passed");
    assert_eq!(checks[1].1, "advisory failed");
    assert_eq!(
        checks[1].2,
        vec!["terraform_data.web could be private (workspace prod)".to_string()],
        "the input document carries the run's workspace"
    );
    let (status, _) = h.action(run, "confirm").await;
    assert_eq!(status, 200);
    h.wait_for(run, "applied").await;

    // `unchecked` matches no set's patterns: its public service plans without a check.
    let version = h.upload("unchecked", upload_of("exposed")).await;
    let other = h.run_upload("unchecked", version, true).await;
    let done = h.wait_for(other, "planned_and_finished").await;
    assert!(!Harness::states(&done).contains(&"policy_checking".to_string()));
    assert!(policy_checks(&h, other).await.is_empty());
}

#[tokio::test]
async fn a_clean_plan_passes_and_an_errored_policy_blocks() {
    let h = gantry("private", false, &["guards"]).await;
    h.serve_tarball(&sha(1), "exposed").await;
    let run = h.push(&sha(1)).await;
    h.wait_for(run, "planned").await;
    assert!(policy_checks(&h, run).await.iter().all(|c| c.1 == "passed"));

    let h = gantry("private", false, &["guards", "broken"]).await;
    h.serve_tarball(&sha(1), "exposed").await;
    let run = h.push(&sha(1)).await;
    h.wait_for(run, "policy_override").await;
    let checks = policy_checks(&h, run).await;
    let broken = checks.iter().find(|c| c.0 == "half_written").unwrap();
    assert_eq!(broken.1, "errored");
    assert!(broken.2[0].contains("does not parse"), "{broken:?}");
    // A discard ends a run waiting for an override.
    let (status, _) = h.action(run, "discard").await;
    assert_eq!(status, 200);
    assert_eq!(h.run(run).await["state"], "discarded");
    // GitHub's check no longer asks for an action nobody can take.
    h.outbox_drained().await;
    let check = h
        .gantry
        .github
        .check_runs()
        .into_iter()
        .find(|c| c.name == "gantry/prod/policy")
        .expect("a policy check run");
    assert_eq!(check.conclusion.as_deref(), Some("failure"));
}

#[tokio::test]
async fn a_speculative_plan_reports_its_policy_check_and_never_waits() {
    let h = gantry("public", false, &["guards"]).await;
    let version = h.upload("prod", upload_of("exposed")).await;
    let run = h.run_upload("prod", version, true).await;
    let done = h.wait_for(run, "planned_and_finished").await;
    assert!(Harness::states(&done).contains(&"policy_checking".to_string()));
    let checks = policy_checks(&h, run).await;
    assert_eq!(checks[0].1, "mandatory failed");
    let log = h.log(run, "plan").await;
    assert!(log.contains("a speculative plan only reports it"), "{log}");
    let metrics = h
        .gantry
        .http
        .get(format!("{}/metrics", h.gantry.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .contains("gantry_policy_evaluations{enforcement=\"mandatory\",result=\"failed\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn an_override_in_a_comment_needs_an_admin_who_is_not_the_changes_author() {
    let h = gantry_with(
        "public",
        false,
        &["guards"],
        "prevent_self_override = true\n",
    )
    .await;
    // Pull request 7 by octocat merged as sha(1); the push of the merge waits on its check.
    let github = &h.gantry.github;
    github.open_pull_request(REPO, 7, PullRequest::open(&sha(2), &["main.tf"]));
    github.merge_pull_request(REPO, 7, &sha(1));
    h.serve_tarball(&sha(1), "exposed").await;
    let run = h.push(&sha(1)).await;
    h.wait_for(run, "policy_override").await;
    for (user, permission) in [("reader", "read"), ("writer", "write")] {
        github.grant(REPO, user, permission);
    }
    for user in ["octocat", "boss"] {
        github.grant(REPO, user, "admin");
    }
    let replies = || async {
        h.outbox_drained().await;
        let comments = h.gantry.github.comments(REPO, 7);
        comments.last().map(|c| c.body.clone()).unwrap_or_default()
    };

    h.comment(7, "reader", "/gantry override it is fine").await;
    assert!(
        replies().await.contains("write access"),
        "{}",
        replies().await
    );
    h.comment(7, "writer", "/gantry override it is fine").await;
    let reply = replies().await;
    assert!(reply.contains("needs admin permission"), "{reply}");
    h.comment(7, "octocat", "/gantry override my own change is fine")
        .await;
    let reply = replies().await;
    assert!(
        reply.contains("policy set `guards` does not let the author of a change override"),
        "{reply}"
    );
    assert_eq!(h.run(run).await["state"], "policy_override");
    // Through the API too: an admin token of the pusher's name (GitHub's example push is by
    // Codertocat) is refused, with why.
    let pusher = gantry::web::api::auth::new_token();
    (h.gantry.store)
        .create_api_token(
            "Codertocat",
            "admin",
            &gantry::web::api::auth::token_hash(&pusher),
        )
        .await
        .unwrap();
    let refused = h
        .call(
            "POST",
            &format!("/api/v1/runs/{run}/actions/override"),
            &pusher,
            json!({ "reason": "mine is fine" }),
        )
        .await;
    assert_eq!(refused.status, 403, "{:?}", refused.body);
    assert!(
        refused.body["error"]
            .as_str()
            .unwrap()
            .contains("does not let the author of a change override"),
        "{:?}",
        refused.body
    );

    h.comment(7, "boss", "/gantry override -w prod accepted risk, INC-42")
        .await;
    let reply = replies().await;
    assert!(reply.contains("overridden by @boss"), "{reply}");
    let planned = h.wait_for(run, "planned").await;
    let events = planned["events"].as_array().unwrap();
    assert!(
        events.iter().any(|e| e["cause"] == "person:boss"
            && e["detail"]
                .as_str()
                .unwrap()
                .ends_with("accepted risk, INC-42")),
        "{events:?}"
    );
    // Waiting for confirmation now (not auto-apply), and nothing is left to override.
    assert_eq!(h.run(run).await["state"], "planned");
    h.comment(7, "boss", "/gantry override again").await;
    assert!(replies().await.contains("Nothing to override"));
}

/// The repository at `commit` as GitHub's tarball: the `exposed` configuration at its root and
/// the `guards` policy set in `policies/guards/`, with `policies.hcl` replaced by `hcl` if
/// given.
fn repository_with_policies(commit: &str, hcl: Option<&str>) -> Vec<u8> {
    let read = |path: &str| std::fs::read_to_string(fixture_path(path)).unwrap();
    let mut files = vec![("main.tf".to_string(), read("terraform/exposed/main.tf"))];
    for name in [
        "policies.hcl",
        "no_public_ingress.rego",
        "prefer_private.rego",
    ] {
        let text = match (hcl, name) {
            (Some(hcl), "policies.hcl") => hcl.to_string(),
            _ => read(&format!("policies/guards/{name}")),
        };
        files.push((format!("policies/guards/{name}"), text));
    }
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    tarball_of_files(commit, &files)
}

#[tokio::test]
async fn a_pull_request_that_weakens_a_repository_policy_set_is_checked_against_its_branch() {
    let toml = "[[workspaces]]\nname = \"prod\"\nrepo = \"octo-org/infra\"\n\
                terraform_version = \"1.15.5\"\n[workspaces.vars]\nexposure = \"public\"\n\n\
                [[policy_sets]]\nname = \"guards\"\nrepo = \"octo-org/infra\"\n\
                branch = \"main\"\npath = \"policies/guards\"\n";
    let h = start_with_terraform_1_15(toml).await;
    // main holds the set as written; the pull request makes its mandatory policy advisory.
    let github = &h.gantry.github;
    github.set_branch(REPO, "main", &sha(1));
    h.serve_tarball_bytes(&sha(1), repository_with_policies(&sha(1), None))
        .await;
    let weakened = "policy \"no_public_ingress\" {\n  query = \"data.terraform.policies.no_public_ingress.deny\"\n\
                    enforcement_level = \"advisory\"\n}\n";
    h.serve_tarball_bytes(&sha(2), repository_with_policies(&sha(2), Some(weakened)))
        .await;
    h.open_pull_request(5, &sha(2), &["main.tf", "policies/guards/policies.hcl"])
        .await;
    let plans = h.gantry.store.pull_request_runs(REPO, PrNumber(5)).await;
    let run = plans.unwrap()[0].0;
    let done = h.wait_for(run, "planned_and_finished").await;
    assert_eq!(done["commit_sha"], sha(2));
    let checks = policy_checks(&h, run).await;
    assert_eq!(
        (checks[0].0.as_str(), checks[0].1.as_str()),
        ("no_public_ingress", "mandatory failed"),
        "checked against main's set, not the pull request's: {checks:?}"
    );
    assert_eq!(checks.len(), 2, "main's set has two policies: {checks:?}");
    let log = h.log(run, "plan").await;
    let from = format!(
        "policy set guards from octo-org/infra at main ({})",
        &sha(1)[..12]
    );
    assert!(log.contains(&from), "{log}");
    h.outbox_drained().await;
    let check = github
        .check_runs()
        .into_iter()
        .find(|c| c.name == "gantry/prod/policy" && c.head_sha == sha(2))
        .expect("the pull request's policy check");
    assert_eq!(check.conclusion.as_deref(), Some("failure"));
    // The pull request's comment has the workspace's policy section.
    let comment = github
        .comments(REPO, 5)
        .pop()
        .expect("Gantry's comment")
        .body;
    assert!(
        comment.contains("<b>prod</b> policy check: 1 mandatory failure(s) or error(s)"),
        "{comment}"
    );
    assert!(
        comment.contains("- `terraform_data.web is exposed to the internet`"),
        "{comment}"
    );
}

#[tokio::test]
async fn a_policy_quoting_a_value_the_plan_marks_sensitive_shows_it_masked() {
    let h = gantry("public", false, &["quoting"]).await;
    h.serve_tarball(&sha(1), "secretive").await;
    let run = h.push(&sha(1)).await;
    h.wait_for(run, "planned").await;
    let checks = policy_checks(&h, run).await;
    assert_eq!(checks[0].1, "advisory failed");
    let message = &checks[0].2[0];
    assert!(
        message.starts_with("terraform_data.db has input"),
        "{message}"
    );
    assert!(!message.contains("s3cr3t-from-the-plan"), "{message}");
    let log = h.log(run, "plan").await;
    assert!(!log.contains("s3cr3t-from-the-plan"), "{log}");
}
