//! Runs people start, with real Terraform (1.15.5, `terraform_data`, offline): "Start new run"
//! plans the head of the workspace's branch on GitHub through the queue, with Terraform
//! Cloud's options (plan only, destroy, refresh-only, -target, -replace, a message), from the
//! API and the UI; retry and force-cancel are on the run page; who did what is on the run.

mod common;

use std::time::Duration;

use common::browser::{Browser, hidden};
use common::github::Fault;
use common::runs::{Harness, REPO, sha};
use common::terraform_cli::start_with_terraform_1_15;
use serde_json::{Value, json};

const PROD: &str = "[[workspaces]]\nname = \"prod\"\nrepo = \"octo-org/infra\"\n\
                    terraform_version = \"1.15.5\"\n";

/// Gantry with `prod`, whose repository's main branch (its default) is at `head`, serving
/// the `pair` fixture there.
async fn gantry(head: &str) -> Harness {
    let h = start_with_terraform_1_15(PROD).await;
    h.gantry.github.set_branch(REPO, "main", head);
    h.serve_tarball(head, "pair").await;
    h
}

/// Starts a run in prod through the API with `body`; the run, or the refusal.
async fn start(h: &Harness, body: Value) -> (u16, Value) {
    let answer = h
        .call("POST", "/api/v1/workspaces/prod/runs", &h.token, body)
        .await;
    (answer.status, answer.body)
}

fn counts(run: &Value) -> (i64, i64, i64) {
    let plan = &run["plan"];
    (
        plan["add"].as_i64().unwrap(),
        plan["change"].as_i64().unwrap(),
        plan["destroy"].as_i64().unwrap(),
    )
}

#[tokio::test]
async fn a_run_started_by_hand_plans_the_branch_head_with_the_options_asked() {
    let h = gantry(&sha(1)).await;
    let (status, run) = start(&h, json!({ "message": "first build" })).await;
    assert_eq!(status, 201, "{run}");
    assert_eq!(run["commit_sha"], sha(1), "the head of main");
    assert_eq!(run["source"], "manual");
    assert_eq!(run["author"], "tester");
    assert_eq!(run["message"], "first build");
    let id = run["id"].as_i64().unwrap();
    let planned = h.wait_for(id, "planned").await;
    assert_eq!(counts(&planned), (2, 0, 0));
    assert_eq!(h.action(id, "confirm").await.0, 200);
    h.wait_for(id, "applied").await;

    // -replace: one resource destroyed and made again.
    let (_, run) = start(&h, json!({ "replace_addrs": ["terraform_data.a"] })).await;
    let id = run["id"].as_i64().unwrap();
    let planned = h.wait_for(id, "planned").await;
    assert_eq!(counts(&planned), (1, 0, 1), "{planned}");
    assert_eq!(
        planned["options"],
        json!({ "replaces": ["terraform_data.a"] })
    );
    let log = h.log(id, "plan").await;
    assert!(
        log.contains("planning with -replace=terraform_data.a"),
        "{log}"
    );
    assert_eq!(h.action(id, "discard").await.0, 200);

    // A targeted destroy plan, plan only: b alone would go, and nothing is applied.
    let body =
        json!({ "is_destroy": true, "target_addrs": ["terraform_data.b"], "speculative": true });
    let (_, run) = start(&h, body).await;
    let id = run["id"].as_i64().unwrap();
    let done = h.wait_for(id, "planned_and_finished").await;
    assert_eq!(counts(&done), (0, 0, 1), "{done}");

    // A refresh-only plan of an unchanged workspace has nothing to do.
    let (_, run) = start(&h, json!({ "refresh_only": true, "speculative": true })).await;
    let done = h
        .wait_for(run["id"].as_i64().unwrap(), "planned_and_finished")
        .await;
    assert_eq!(counts(&done), (0, 0, 0), "{done}");

    // Nonsense is refused with the option named, and starts nothing.
    let (status, refused) = start(&h, json!({ "target_addrs": ["-lock=false"] })).await;
    assert_eq!(status, 400);
    assert_eq!(
        refused["error"],
        "target `-lock=false` is not a resource address"
    );
    let (status, refused) = start(&h, json!({ "is_destroy": true, "refresh_only": true })).await;
    assert_eq!(status, 400, "{refused}");
}

#[tokio::test]
async fn the_ui_starts_retries_and_force_cancels_runs_and_says_who_did_what() {
    let h = gantry(&sha(1)).await;
    let mut browser = Browser::new(&h.gantry.url);
    browser.sign_in(&h.token).await;
    let (_, page, _) = browser.get("/workspaces/prod").await;
    assert!(page.contains("Start new run"), "{page}");
    let csrf = hidden(&page, "csrf");
    let (status, location) = browser
        .post(
            "/workspaces/prod/runs",
            &[
                ("csrf", &csrf),
                ("destroy", "on"),
                ("plan_only", "on"),
                ("targets", "terraform_data.a, terraform_data.b"),
                ("message", "what would go"),
            ],
        )
        .await;
    assert_eq!(status, 303);
    let id: i64 = location
        .unwrap()
        .strip_prefix("/runs/")
        .unwrap()
        .parse()
        .unwrap();
    let run = h.wait_for(id, "planned_and_finished").await;
    assert_eq!(run["author"], "tester");
    assert_eq!(
        run["options"],
        json!({ "destroy": true, "targets": ["terraform_data.a", "terraform_data.b"] })
    );

    // A run errors (its branch's head is gone from GitHub): the run page offers a retry, which
    // makes a new run of the same commit, by the person who asked.
    h.gantry.github.set_branch(REPO, "main", &sha(2));
    let (_, run) = start(&h, json!({})).await;
    let failed = run["id"].as_i64().unwrap();
    h.wait_for(failed, "errored").await;
    h.serve_tarball(&sha(2), "pair").await;
    let (_, page, _) = browser.get(&format!("/runs/{failed}")).await;
    assert!(page.contains(">Retry</button>"), "{page}");
    let csrf = hidden(&page, "csrf");
    let (status, location) = browser
        .post(&format!("/runs/{failed}/retry"), &[("csrf", &csrf)])
        .await;
    assert_eq!(status, 303);
    let retry: i64 = location
        .unwrap()
        .strip_prefix("/runs/")
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(retry, failed);
    let retried = h.wait_for(retry, "planned").await;
    assert_eq!(retried["commit_sha"], sha(2));
    assert_eq!(retried["retry_of"], failed);

    // Who did what is on the run: the discard, with the token's name.
    assert_eq!(h.action(retry, "discard").await.0, 200);
    let discarded = h.run(retry).await;
    let events = discarded["events"].as_array().unwrap();
    assert!(
        events
            .iter()
            .any(|e| e["state"] == "discarded" && e["cause"] == "person:tester"),
        "{events:?}"
    );
    let (_, page, _) = browser.get(&format!("/runs/{retry}")).await;
    assert!(page.contains("tester"), "{page}");

    // A run stuck fetching (GitHub answers slowly) can be force-canceled from its page.
    h.gantry.github.set_branch(REPO, "main", &sha(3));
    h.serve_tarball(&sha(3), "pair").await;
    h.gantry.github.fail(
        "repos/download-tarball-archive",
        [Fault::SlowWithoutDoing(Duration::from_secs(60))],
    );
    let (_, run) = start(&h, json!({})).await;
    let stuck = run["id"].as_i64().unwrap();
    h.wait_for(stuck, "fetching").await;
    let (_, page, _) = browser.get(&format!("/runs/{stuck}")).await;
    assert!(page.contains(">Force cancel</button>"), "{page}");
    let csrf = hidden(&page, "csrf");
    let (status, _) = browser
        .post(&format!("/runs/{stuck}/force-cancel"), &[("csrf", &csrf)])
        .await;
    assert_eq!(status, 303);
    let ended = h.wait_for(stuck, "force_canceled").await;
    assert_eq!(ended["state"], "force_canceled", "{ended}");
    let events = ended["events"].as_array().unwrap();
    assert!(
        events.iter().any(|e| e["cause"] == "person:tester"),
        "{events:?}"
    );
}

#[tokio::test]
async fn a_branch_github_does_not_have_is_a_clear_error_and_starts_nothing() {
    let h = gantry(&sha(1)).await;
    let created = h
        .call(
            "POST",
            "/api/v1/workspaces",
            &h.token,
            json!({ "name": "cli", "repo": REPO }),
        )
        .await;
    assert_eq!(created.status, 201);
    // A branch GitHub does not have: a clear error, and no run.
    let renamed = h
        .call(
            "PATCH",
            "/api/v1/workspaces/cli",
            &h.token,
            json!({ "branch": "no-such-branch" }),
        )
        .await;
    assert_eq!(renamed.status, 200, "{:?}", renamed.body);
    let answer = h
        .call("POST", "/api/v1/workspaces/cli/runs", &h.token, json!({}))
        .await;
    assert_eq!(answer.status, 502, "{:?}", answer.body);
    assert!(
        answer.body["error"]
            .as_str()
            .unwrap()
            .contains("the head of no-such-branch"),
        "{:?}",
        answer.body
    );
    let runs = h.api_get("/api/v1/workspaces/cli/runs").await;
    assert!(runs.as_array().unwrap().is_empty());
    // A local-execution workspace runs Terraform on people's machines: Gantry starts nothing.
    let local = h
        .call(
            "PATCH",
            "/api/v1/workspaces/cli",
            &h.token,
            json!({ "branch": null, "execution_mode": "local" }),
        )
        .await;
    assert_eq!(local.status, 200, "{:?}", local.body);
    let answer = h
        .call("POST", "/api/v1/workspaces/cli/runs", &h.token, json!({}))
        .await;
    assert_eq!(answer.status, 409, "{:?}", answer.body);
    assert!(
        answer.body["error"]
            .as_str()
            .unwrap()
            .contains("local execution")
    );
}

#[tokio::test]
async fn locks_and_unlocks_are_on_the_workspaces_audit_trail_with_who() {
    let h = gantry(&sha(1)).await;
    let locked = h
        .call(
            "POST",
            "/api/v1/workspaces/prod/actions/lock",
            &h.token,
            json!({ "reason": "maintenance window" }),
        )
        .await;
    assert_eq!(locked.status, 200, "{:?}", locked.body);
    // Someone else (an admin token of another name) opens it from the UI.
    let other = h.token_for("admin").await;
    let mut browser = Browser::new(&h.gantry.url);
    browser.sign_in(&other).await;
    let (_, page, _) = browser.get("/workspaces/prod").await;
    let csrf = hidden(&page, "csrf");
    let (status, _) = browser
        .post("/workspaces/prod/unlock", &[("csrf", &csrf)])
        .await;
    assert_eq!(status, 303);
    let events = h.api_get("/api/v1/workspaces/prod/events").await;
    let events = events.as_array().unwrap();
    assert_eq!(events.len(), 2, "{events:?}");
    let unlocked_by = events[0]["by"].as_str().unwrap().to_string();
    assert_eq!(events[0]["action"], "unlocked");
    assert_ne!(unlocked_by, "tester");
    assert_eq!(events[0]["detail"], "held by tester");
    assert_eq!(events[1]["action"], "locked");
    assert_eq!(events[1]["by"], "tester");
    assert_eq!(events[1]["detail"], "maintenance window");
    let (_, page, _) = browser.get("/workspaces/prod").await;
    assert!(
        page.contains("locked by <b>tester</b> (maintenance window)"),
        "{page}"
    );
    // Unlocking an unlocked workspace records nothing.
    let again = h
        .call(
            "POST",
            "/api/v1/workspaces/prod/actions/unlock",
            &h.token,
            json!({}),
        )
        .await;
    assert_eq!(again.status, 200);
    let events = h.api_get("/api/v1/workspaces/prod/events").await;
    assert_eq!(events.as_array().unwrap().len(), 2);
}
