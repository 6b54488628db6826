//! Run triggers between workspaces, with real Terraform: an apply with changes in a source
//! queues one run in each destination at its current configuration version, marked as
//! triggered; it waits for confirmation unless the destination sets `auto_apply_run_trigger`;
//! a speculative plan triggers nothing; a cycle is refused.

mod common;

use common::push_payload;
use common::runs::{Harness, REPO, sha, tarball_of_files};
use serde_json::{Value, json};

/// `network` applies by itself; `prod` (auto-apply, but not for triggered runs) and `staging`
/// (auto-apply for triggered runs only) are triggered by it.
const CONFIG: &str = r#"
[[workspaces]]
name = "network"
repo = "octo-org/infra"
working_directory = "network"
terraform_version = "1.0.3"
auto_apply = true
[workspaces.vars]
name = "network"

[[workspaces]]
name = "prod"
repo = "octo-org/infra"
working_directory = "prod"
terraform_version = "1.0.3"
auto_apply = true
run_triggers = ["network"]
[workspaces.vars]
name = "prod"

[[workspaces]]
name = "staging"
repo = "octo-org/infra"
working_directory = "staging"
terraform_version = "1.0.3"
run_triggers = ["network"]
auto_apply_run_trigger = true
[workspaces.vars]
name = "staging"
"#;

/// Each workspace's folder holds an output that changes at every apply (offline, no
/// provider), so that every plan has changes.
fn repository(commit: &str) -> Vec<u8> {
    let main_tf = "variable \"name\" {\n  type = string\n}\n\n\
                   output \"applied_at\" {\n  value = \"${var.name} ${timestamp()}\"\n}\n";
    let files = ["network", "prod", "staging"].map(|dir| (format!("{dir}/main.tf"), main_tf));
    let files: Vec<(&str, &str)> = files.iter().map(|(p, t)| (p.as_str(), *t)).collect();
    tarball_of_files(commit, &files)
}

/// Pushes `commit` to main changing `files`; waits until Gantry processed it.
async fn push(h: &Harness, commit: &str, files: &[&str]) {
    h.serve_tarball_bytes(commit, repository(commit)).await;
    let body = push_payload(REPO, "main", commit, files, |_| {});
    h.deliver("push", &body).await;
}

/// The newest run of `workspace`.
async fn latest_run(h: &Harness, workspace: &str) -> Value {
    let runs = h
        .api_get(&format!("/api/v1/workspaces/{workspace}/runs"))
        .await;
    let newest = runs
        .as_array()
        .unwrap()
        .iter()
        .max_by_key(|r| r["id"].as_i64().unwrap())
        .cloned()
        .unwrap_or_else(|| panic!("{workspace} has no run"));
    h.run(newest["id"].as_i64().unwrap()).await
}

fn id(run: &Value) -> i64 {
    run["id"].as_i64().unwrap()
}

#[tokio::test]
async fn an_apply_in_a_source_queues_one_run_in_each_destination() {
    let h = Harness::start(CONFIG, None).await;
    // The destinations get their configuration version from a push of their own.
    push(&h, &sha(1), &["prod/main.tf", "staging/main.tf"]).await;
    let prod_first = latest_run(&h, "prod").await;
    h.wait_for(id(&prod_first), "applied").await;
    let staging_first = latest_run(&h, "staging").await;
    h.wait_for(id(&staging_first), "planned").await;
    let (status, _) = h.action(id(&staging_first), "confirm").await;
    assert_eq!(status, 200);
    h.wait_for(id(&staging_first), "applied").await;

    // A push that changes only network: its apply triggers prod and staging.
    push(&h, &sha(2), &["network/main.tf"]).await;
    let source = latest_run(&h, "network").await;
    h.wait_for(id(&source), "applied").await;
    let prod = latest_run(&h, "prod").await;
    let staging = latest_run(&h, "staging").await;
    for run in [&prod, &staging] {
        assert_ne!(id(run), id(&prod_first));
        assert_ne!(id(run), id(&staging_first));
        assert_eq!(run["source"], "run_trigger");
        assert_eq!(
            run["commit_sha"],
            sha(1),
            "at the destination's own version"
        );
        assert_eq!(
            run["triggered_by"],
            json!({ "run": id(&source), "workspace": "network" })
        );
    }
    // prod applies by itself after its own pushes, never after a trigger.
    let prod = h.wait_for(id(&prod), "planned").await;
    assert_eq!(prod["state"], "planned");
    // staging lets triggered runs apply by themselves.
    h.wait_for(id(&staging), "applied").await;
    let source = h.run(id(&source)).await;
    assert_eq!(
        source["triggered"],
        json!([
            { "run": id(&prod), "workspace": "prod" },
            { "run": id(&staging), "workspace": "staging" }
        ])
    );
    // Exactly one each: nothing else was queued.
    for workspace in ["prod", "staging"] {
        let runs = h
            .api_get(&format!("/api/v1/workspaces/{workspace}/runs"))
            .await;
        assert_eq!(runs.as_array().unwrap().len(), 2, "{workspace}: {runs}");
    }
    // The run page names where a run came from, and what it triggered.
    let mut browser = common::browser::Browser::new(&h.gantry.url);
    browser.sign_in(&h.token).await;
    let (_, page, _) = browser.get(&format!("/runs/{}", id(&prod))).await;
    assert!(
        page.contains(&format!(
            "triggered by <a href=\"/runs/{0}\" id=\"triggered-by\">run {0} of network</a>",
            id(&source)
        )),
        "{page}"
    );
    let (_, page, _) = browser.get(&format!("/runs/{}", id(&source))).await;
    assert!(
        page.contains(&format!("run {} of prod", id(&prod))),
        "{page}"
    );
}

#[tokio::test]
async fn a_speculative_plan_of_a_source_triggers_nothing_and_a_cycle_is_refused() {
    let h = Harness::start(CONFIG, None).await;
    push(&h, &sha(1), &["prod/main.tf"]).await;
    let prod = latest_run(&h, "prod").await;
    h.wait_for(id(&prod), "applied").await;
    // A pull request's plan of network has changes, and applies nothing.
    h.serve_tarball_bytes(&sha(3), repository(&sha(3))).await;
    h.open_pull_request(4, &sha(3), &["network/main.tf"]).await;
    let plans = (h.gantry.store)
        .pull_request_runs(REPO, gantry::core::PrNumber(4))
        .await
        .unwrap();
    let plan = h.wait_for(plans[0].0, "planned_and_finished").await;
    assert_eq!(plan["plan"]["has_changes"], true);
    let runs = h.api_get("/api/v1/workspaces/prod/runs").await;
    assert_eq!(runs.as_array().unwrap().len(), 1, "{runs}");

    // Through the API: a workspace that would close a cycle is refused with the reason.
    let created = h
        .call(
            "POST",
            "/api/v1/workspaces",
            &h.token,
            json!({ "name": "dns", "repo": REPO, "run_triggers": ["prod"] }),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let cycle = h
        .call(
            "PATCH",
            "/api/v1/workspaces/dns",
            &h.token,
            json!({ "run_triggers": ["dns"] }),
        )
        .await;
    assert_eq!(cycle.status, 400);
    assert!(
        cycle.body["error"]
            .as_str()
            .unwrap()
            .contains("dns cannot trigger itself"),
        "{:?}",
        cycle.body
    );
    let edge = h
        .call(
            "POST",
            "/api/v1/workspaces",
            &h.token,
            json!({ "name": "edge", "repo": REPO, "run_triggers": ["dns"] }),
        )
        .await;
    assert_eq!(edge.status, 201, "{:?}", edge.body);
    let cycle = h
        .call(
            "PATCH",
            "/api/v1/workspaces/dns",
            &h.token,
            json!({ "run_triggers": ["edge"] }),
        )
        .await;
    assert_eq!(cycle.status, 400);
    assert_eq!(
        cycle.body["error"],
        "run_triggers: would make a cycle: dns ← edge ← dns"
    );
    let unknown = h
        .call(
            "PATCH",
            "/api/v1/workspaces/dns",
            &h.token,
            json!({ "run_triggers": ["nowhere"] }),
        )
        .await;
    assert_eq!(unknown.status, 400);
}
