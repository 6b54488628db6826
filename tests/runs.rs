//! Runs executed end to end: signed push webhooks, a fake GitHub on loopback serving fixture
//! configurations as repository tarballs (through GitHub's redirect), the real Terraform 1.0.3,
//! and the JSON API to confirm, discard, cancel and lock.

mod common;

use std::time::Duration;

use common::runs::{
    Harness, real_terraform, sha, slow_plan_terraform, terraform_mirror, tool_cache_with,
};
use common::wait_until;
use gantry::core::RunId;
use gantry::web::api::auth::{new_token, token_hash};
use serde_json::Value;

const SECRET_VALUE: &str = "hunter2-do-not-print";

const WORKSPACE: &str = r#"
[[workspaces]]
name = "prod"
repo = "octo-org/infra"
terraform_version = "1.0.3"
[workspaces.vars]
name = "world"
secret = { value = "hunter2-do-not-print", sensitive = true }
"#;

#[tokio::test]
async fn a_push_plans_waits_for_confirmation_applies_and_keeps_state_versions() {
    // Terraform comes from the releases mirror this time, checked against its SHA256SUMS.
    let mirror = terraform_mirror().await;
    let mirror_url = format!("{}/terraform/", mirror.uri());
    let h = Harness::start_with(WORKSPACE, move |env| {
        env.insert("GANTRY_TERRAFORM_RELEASES_URL".into(), mirror_url);
    })
    .await;

    // 1. A configuration that adds outputs: planned, waiting for confirmation.
    h.serve_tarball(&sha(1), "outputs").await;
    let first = h.push(&sha(1)).await;
    let planned = h.wait_for(first, "planned").await;
    assert_eq!(planned["plan"]["add"], 0, "outputs are not resources");
    let plan_log = h.log(first, "plan").await;
    assert!(plan_log.contains("Changes to Outputs"), "{plan_log}");
    assert!(plan_log.contains("hello world"), "{plan_log}");
    assert!(h.api_get("/api/v1/workspaces/prod/state-versions").await == serde_json::json!([]));

    let (status, _) = h.action(first, "confirm").await;
    assert_eq!(status, 200);
    let applied = h.wait_for(first, "applied").await;
    assert_eq!(
        Harness::states(&applied),
        [
            "pending",
            "fetching",
            "planning",
            "planned",
            "confirmed",
            "applying",
            "applied"
        ]
    );
    // Each move names who or what made it: the person confirmed, Gantry did the rest.
    let causes: Vec<&str> = applied["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["cause"].as_str().unwrap_or("-"))
        .collect();
    assert_eq!(
        causes,
        [
            "-",
            "runner",
            "runner",
            "runner",
            "person:tester",
            "runner",
            "runner"
        ]
    );
    let versions = h.api_get("/api/v1/workspaces/prod/state-versions").await;
    assert_eq!(versions.as_array().unwrap().len(), 1, "{versions}");
    assert_eq!(versions[0]["run_id"], first);

    // 2. A push that changes an output: state version 2, same lineage, newer serial.
    h.serve_tarball(&sha(2), "outputs-v2").await;
    let second = h.push(&sha(2)).await;
    h.wait_for(second, "planned").await;
    assert!(h.log(second, "plan").await.contains("goodbye world"));
    h.action(second, "confirm").await;
    h.wait_for(second, "applied").await;
    let versions = h.api_get("/api/v1/workspaces/prod/state-versions").await;
    let versions = versions.as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[1]["lineage"], versions[0]["lineage"]);
    assert!(versions[1]["serial"].as_i64() > versions[0]["serial"].as_i64());
    let prod = h
        .gantry
        .store
        .workspace_named("prod")
        .await
        .unwrap()
        .unwrap();
    let current = h
        .gantry
        .store
        .current_state(prod.id)
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&current.state).contains("goodbye world"));

    // 3. The same configuration at a new commit: nothing to change, nothing to confirm.
    h.serve_tarball(&sha(3), "outputs-v2").await;
    let third = h.push(&sha(3)).await;
    let finished = h.wait_for(third, "planned_and_finished").await;
    assert_eq!(finished["plan"]["add"], 0);
    assert_eq!(
        h.api_get("/api/v1/workspaces/prod/state-versions")
            .await
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // The sensitive variable never reached a stored log, though Terraform printed it.
    for run in [first, second, third] {
        for phase in ["plan", "apply"] {
            let log = h.log(run, phase).await;
            assert!(
                !log.contains(SECRET_VALUE),
                "run {run} {phase} log leaks the secret"
            );
        }
    }
    assert!(
        h.log(first, "apply")
            .await
            .contains("secret_echo = \"***\"")
    );
    // The run's work dir is gone once it finished; the tarball is kept by its checksum.
    assert!(
        !h.gantry
            .data_dir
            .path()
            .join("runs")
            .join(first.to_string())
            .exists()
    );
    mirror.verify().await;
}

#[tokio::test]
async fn a_broken_configuration_errors_with_terraforms_message_in_the_log() {
    let h = Harness::start(WORKSPACE, None).await;
    h.serve_tarball(&sha(1), "broken").await;
    let run = h.push(&sha(1)).await;
    let errored = h.wait_for(run, "errored").await;
    assert!(
        errored["error"]
            .as_str()
            .unwrap()
            .contains("terraform plan failed"),
        "{errored}"
    );
    let log = h.log(run, "plan").await;
    assert!(log.contains("undefined_thing"), "{log}");
    assert!(log.contains("Gantry: terraform plan failed"), "{log}");
}

#[tokio::test]
async fn three_quick_pushes_run_in_order_each_waiting_for_the_one_before() {
    let h = Harness::start(WORKSPACE, None).await;
    for (n, fixture) in [(1, "outputs"), (2, "outputs-v2"), (3, "outputs")] {
        h.serve_tarball(&sha(n), fixture).await;
    }
    let runs = [
        h.push(&sha(1)).await,
        h.push(&sha(2)).await,
        h.push(&sha(3)).await,
    ];
    assert!(runs[0] < runs[1] && runs[1] < runs[2]);

    h.wait_for(runs[0], "planned").await;
    for later in &runs[1..] {
        assert_eq!(
            Harness::states(&h.run(*later).await),
            ["pending"],
            "no later run starts, not even its plan, while the first waits for confirmation"
        );
    }
    h.action(runs[0], "confirm").await;
    h.wait_for(runs[0], "applied").await;
    h.wait_for(runs[1], "planned").await;
    assert_eq!(Harness::states(&h.run(runs[2]).await), ["pending"]);
    h.action(runs[1], "confirm").await;
    h.wait_for(runs[1], "applied").await;
    h.wait_for(runs[2], "planned").await;
}

#[tokio::test]
async fn a_manual_lock_holds_the_queue_until_unlocked() {
    let h = Harness::start(WORKSPACE, None).await;
    let (status, lock) = h
        .api_post(
            "/api/v1/workspaces/prod/actions/lock",
            serde_json::json!({ "reason": "maintenance window" }),
        )
        .await;
    assert_eq!(status, 200, "{lock}");
    let (status, again) = h
        .api_post(
            "/api/v1/workspaces/prod/actions/lock",
            serde_json::json!({ "reason": "me too" }),
        )
        .await;
    assert_eq!(status, 409);
    assert!(
        again["error"]
            .as_str()
            .unwrap()
            .contains("maintenance window")
    );

    h.serve_tarball(&sha(1), "outputs").await;
    let run = h.push(&sha(1)).await;
    // The scheduler has looked at the workspace (the push marked it) and left the run waiting.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(Harness::states(&h.run(run).await), ["pending"]);

    let (status, _) = h
        .api_post("/api/v1/workspaces/prod/actions/unlock", Value::Null)
        .await;
    assert_eq!(status, 200);
    h.wait_for(run, "planned").await;
}

#[tokio::test]
async fn discarding_a_plan_or_canceling_a_queued_run_hands_the_workspace_on() {
    let h = Harness::start(WORKSPACE, None).await;
    for (n, fixture) in [(1, "outputs"), (2, "outputs-v2"), (3, "outputs")] {
        h.serve_tarball(&sha(n), fixture).await;
    }
    let runs = [
        h.push(&sha(1)).await,
        h.push(&sha(2)).await,
        h.push(&sha(3)).await,
    ];
    h.wait_for(runs[0], "planned").await;

    // A queued run is canceled at once; one waiting for confirmation is discarded, not canceled.
    let (status, canceled) = h.action(runs[1], "cancel").await;
    assert_eq!(
        (status, canceled["state"].as_str()),
        (200, Some("canceled"))
    );
    let (status, refused) = h.action(runs[0], "cancel").await;
    assert_eq!(status, 409, "{refused}");
    let (status, _) = h.action(runs[0], "confirm-all").await;
    assert_eq!(status, 404);

    let (status, discarded) = h.action(runs[0], "discard").await;
    assert_eq!(
        (status, discarded["state"].as_str()),
        (200, Some("discarded"))
    );
    h.wait_for(runs[2], "planned").await;
    let (status, _) = h.action(runs[0], "confirm").await;
    assert_eq!(status, 409, "a discarded plan cannot be confirmed");
}

#[tokio::test]
async fn canceling_or_force_canceling_a_plan_stops_terraform() {
    let marker = common::runs::marker();
    let h = Harness::start(WORKSPACE, Some(&slow_plan_terraform(marker.path()))).await;
    h.serve_tarball(&sha(1), "outputs").await;
    h.serve_tarball(&sha(2), "outputs").await;

    let first = h.push(&sha(1)).await;
    h.wait_for(first, "planning").await;
    wait_until(Duration::from_secs(30), || async {
        h.log(first, "plan")
            .await
            .contains("slow plan")
            .then_some(())
    })
    .await
    .expect("the plan started");
    let (status, _) = h.action(first, "cancel").await;
    assert_eq!(status, 202, "Terraform was told to stop");
    let canceled = h.wait_for(first, "canceled").await;
    assert!(canceled["error"].as_str().unwrap().contains("canceled"));
    assert!(
        h.log(first, "plan").await.contains("interrupted"),
        "Terraform got SIGINT"
    );

    let second = h.push(&sha(2)).await;
    h.wait_for(second, "planning").await;
    let (status, _) = h.action(second, "force-cancel").await;
    assert_eq!(status, 202);
    h.wait_for(second, "force_canceled").await;
}

#[tokio::test]
async fn a_restart_during_a_plan_follows_it_on_and_the_queue_moves_on() {
    let marker = common::runs::marker();
    let mut h = Harness::start(WORKSPACE, Some(&slow_plan_terraform(marker.path()))).await;
    h.serve_tarball(&sha(1), "outputs").await;
    h.serve_tarball(&sha(2), "outputs-v2").await;
    let first = h.push(&sha(1)).await;
    let second = h.push(&sha(2)).await;
    h.wait_for(first, "planning").await;
    wait_until(Duration::from_secs(30), || async {
        h.log(first, "plan")
            .await
            .contains("slow plan")
            .then_some(())
    })
    .await
    .expect("the plan started");

    // Gantry stops (as for an upgrade) while Terraform plans; the plan goes on under its
    // supervisor, finishes while no Gantry runs, and the restarted Gantry records it.
    h.gantry.restart_with(|_| {}).await;
    std::fs::remove_file(marker.path()).unwrap();
    let planned = h.wait_for(first, "planned").await;
    assert!(planned["error"].is_null(), "{planned}");
    let log = h.log(first, "plan").await;
    assert!(log.contains("slow plan: waiting"), "{log}");
    assert!(
        log.contains("Gantry: restarted; following the plan on"),
        "{log}"
    );
    assert!(
        log.contains("Changes to Outputs"),
        "the plan's own output: {log}"
    );
    let events = h.gantry.store.run_events(RunId(first)).await.unwrap();
    assert!(
        events
            .iter()
            .any(|(_, detail)| detail.as_deref().unwrap_or("").contains("taken back")),
        "{events:?}"
    );
    assert!(
        !events.iter().any(|(state, _)| state == "errored"),
        "{events:?}"
    );
    let (status, _) = h.action(first, "discard").await;
    assert_eq!(status, 200);
    h.wait_for(second, "planned").await;
}

#[tokio::test]
async fn a_tarball_with_path_traversal_is_rejected() {
    let h = Harness::start(WORKSPACE, None).await;
    // A tar entry named `../escape.tf`: the tar crate's builder refuses to write one, so the
    // header is written by hand.
    let mut raw = tar::Builder::new(Vec::new());
    let data = b"output \"x\" { value = 1 }\n";
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    let name = b"octo-org-infra-0000001/../../escape.tf";
    header.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name);
    header.set_cksum();
    raw.append(&header, &data[..]).unwrap();
    let tar = raw.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    h.serve_tarball_bytes(&sha(1), gz.finish().unwrap()).await;

    let run = h.push(&sha(1)).await;
    let errored = h.wait_for(run, "errored").await;
    let error = errored["error"].as_str().unwrap();
    assert!(error.contains("the configuration was rejected"), "{error}");
    assert!(error.contains("leaves its directory"), "{error}");
    assert!(
        !h.gantry
            .data_dir
            .path()
            .join("runs")
            .join("escape.tf")
            .exists()
    );
}

#[tokio::test]
async fn the_api_wants_a_token_with_the_right_role() {
    let h = Harness::start(WORKSPACE, None).await;
    let url = format!("{}/api/v1/workspaces/prod/runs", h.gantry.url);
    let anonymous = h.gantry.http.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let body: Value = anonymous.json().await.unwrap();
    assert!(body["error"].is_string());
    let forged = h
        .gantry
        .http
        .get(&url)
        .bearer_auth("gantry_forged")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);

    let reader = new_token();
    h.gantry
        .store
        .create_api_token("reader", "read", &token_hash(&reader))
        .await
        .unwrap();
    let read = h
        .gantry
        .http
        .get(&url)
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    let confirm = h
        .gantry
        .http
        .post(format!("{}/api/v1/runs/1/actions/confirm", h.gantry.url))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(confirm.status(), 403);
    let missing = h
        .api_post("/api/v1/runs/999/actions/confirm", Value::Null)
        .await;
    assert_eq!(missing.0, 404);
}

#[tokio::test]
async fn an_auto_apply_workspace_applies_its_own_plan() {
    let auto = WORKSPACE.replace(
        "terraform_version = \"1.0.3\"",
        "terraform_version = \"1.0.3\"\nauto_apply = true",
    );
    let tools = tempfile::tempdir().unwrap().keep();
    let cache = tool_cache_with(&tools, None);
    let h = Harness::start_with(&auto, move |env| {
        env.insert(
            "GANTRY_TERRAFORM_TOOL_CACHE".into(),
            cache.display().to_string(),
        );
    })
    .await;
    h.serve_tarball(&sha(1), "outputs").await;
    let run = h.push(&sha(1)).await;
    let applied = h.wait_for(run, "applied").await;
    assert_eq!(
        Harness::states(&applied),
        [
            "pending",
            "fetching",
            "planning",
            "planned",
            "confirmed",
            "applying",
            "applied"
        ]
    );
    assert!(h.log(run, "apply").await.contains("Apply complete"));
}

#[tokio::test]
async fn a_saved_plan_survives_a_restart_and_is_applied_after_it() {
    let mut h = Harness::start(WORKSPACE, None).await;
    h.serve_tarball(&sha(1), "outputs").await;
    let run = h.push(&sha(1)).await;
    h.wait_for(run, "planned").await;
    h.gantry.restart_with(|_| {}).await;
    assert_eq!(
        h.run(run).await["state"],
        "planned",
        "waiting runs are not interrupted"
    );
    let (status, _) = h.action(run, "confirm").await;
    assert_eq!(status, 200);
    h.wait_for(run, "applied").await;
    let log = h.log(run, "apply").await;
    assert!(log.contains("Apply complete"), "{log}");
}

#[tokio::test]
async fn runs_beyond_the_terraform_process_cap_wait_for_a_slot_in_order() {
    let marker = common::runs::marker();
    let tools = tempfile::tempdir().unwrap().keep();
    let cache = tool_cache_with(&tools, Some(&slow_plan_terraform(marker.path())));
    let two = format!(
        "{WORKSPACE}{}",
        WORKSPACE.replace("name = \"prod\"", "name = \"staging\"")
    );
    let h = Harness::start_with(&two, move |env| {
        env.insert(
            "GANTRY_TERRAFORM_TOOL_CACHE".into(),
            cache.display().to_string(),
        );
        env.insert("GANTRY_RUNNER_MAX_PROCESSES".into(), "1".into());
    })
    .await;
    h.serve_tarball(&sha(1), "outputs").await;
    // One push, two workspaces: two runs, one Terraform slot.
    let prod = h.push(&sha(1)).await;
    let staging: i64 = h.api_get("/api/v1/workspaces/staging/runs").await[0]["id"]
        .as_i64()
        .unwrap();
    for run in [prod, staging] {
        h.wait_for(run, "planning").await;
    }
    let waiting = wait_until(Duration::from_secs(30), || async {
        for run in [prod, staging] {
            if h.log(run, "plan")
                .await
                .contains("waiting for a free Terraform slot")
            {
                return Some(run);
            }
        }
        None
    })
    .await
    .expect("one run waits for the slot");
    let holder = if waiting == prod { staging } else { prod };
    wait_until(Duration::from_secs(30), || async {
        h.log(holder, "plan")
            .await
            .contains("slow plan: waiting")
            .then_some(())
    })
    .await
    .expect("the run holding the slot plans");
    assert!(
        !h.log(waiting, "plan").await.contains("slow plan"),
        "no second process"
    );

    std::fs::remove_file(marker.path()).unwrap();
    let first = h.wait_for(holder, "planned").await;
    let second = h.wait_for(waiting, "planned").await;
    let planned_at = |run: &Value| {
        run["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["state"] == "planned")
            .unwrap()["at_ms"]
            .as_i64()
            .unwrap()
    };
    assert!(planned_at(&first) <= planned_at(&second));
}

#[tokio::test]
async fn an_apply_that_fails_after_writing_state_keeps_that_state() {
    // Terraform applies (writing state) and then fails, as a provider error half-way would.
    let failing_apply = format!(
        "#!/bin/sh\nif [ \"$1\" = apply ]; then '{real}' \"$@\"; echo 'Error: provider crashed'; exit 1; fi\nexec '{real}' \"$@\"\n",
        real = real_terraform().display()
    );
    let h = Harness::start(WORKSPACE, Some(&failing_apply)).await;
    h.serve_tarball(&sha(1), "outputs").await;
    let run = h.push(&sha(1)).await;
    h.wait_for(run, "planned").await;
    h.action(run, "confirm").await;
    let errored = h.wait_for(run, "errored").await;
    assert!(
        errored["error"]
            .as_str()
            .unwrap()
            .contains("terraform apply failed"),
        "{errored}"
    );
    let versions = h.api_get("/api/v1/workspaces/prod/state-versions").await;
    assert_eq!(
        versions.as_array().unwrap().len(),
        1,
        "the written state is kept"
    );
    assert_eq!(versions[0]["run_id"], run);
}

#[tokio::test]
async fn metrics_count_deliveries_ingest_runs_queues_and_the_outbox() {
    let h = Harness::start(WORKSPACE, None).await;
    let (status, _) = h
        .api_post(
            "/api/v1/workspaces/prod/actions/lock",
            serde_json::json!({ "reason": "hold the queue" }),
        )
        .await;
    assert_eq!(status, 200);
    h.serve_tarball(&sha(1), "outputs").await;
    h.push(&sha(1)).await;
    let text = h.gantry.get("/metrics").await.text().await.unwrap();
    for expected in [
        "gantry_deliveries_total{event=\"push\",outcome=\"processed\"} 1",
        "gantry_ingest_seconds_count{status=\"202\"} 1",
        "gantry_runs{state=\"pending\"} 1",
        "gantry_queue_depth{workspace=\"prod\"} 1",
        "gantry_outbox_backlog",
    ] {
        assert!(text.contains(expected), "{expected} missing:\n{text}");
    }
    assert!(text.trim_end().ends_with("# EOF"), "one EOF, last");
    assert_eq!(text.matches("# EOF").count(), 1);
}

#[tokio::test]
async fn a_discarded_plan_leaves_no_directory_behind_after_the_sweep() {
    let mut h = Harness::start(WORKSPACE, None).await;
    h.serve_tarball(&sha(1), "outputs").await;
    let run = h.push(&sha(1)).await;
    h.wait_for(run, "planned").await;
    let dir = h.gantry.data_dir.path().join("runs").join(run.to_string());
    assert!(
        dir.join("work/plan.tfplan").is_file(),
        "the saved plan waits in the run's directory"
    );
    let (status, _) = h.action(run, "discard").await;
    assert_eq!(status, 200);
    // The sweep (at start, then every 30 s) removes what runs ended outside their task left.
    h.gantry.restart_with(|_| {}).await;
    let gone = wait_until(Duration::from_secs(10), || async {
        (!dir.exists()).then_some(())
    })
    .await;
    assert!(
        gone.is_some(),
        "the plan file and variables of a discarded run are removed"
    );
}

#[tokio::test]
async fn a_configuration_with_its_own_backend_keeps_its_state_in_gantry() {
    let h = Harness::start(WORKSPACE, None).await;
    h.serve_tarball(&sha(1), "own-backend").await;
    let run = h.push(&sha(1)).await;
    h.wait_for(run, "planned").await;
    let log = h.log(run, "plan").await;
    assert!(
        log.contains("the configuration's own backend (or cloud block) is overridden"),
        "{log}"
    );
    h.action(run, "confirm").await;
    let applied = h.wait_for(run, "applied").await;
    assert!(applied["error"].is_null(), "{applied}");
    let versions = h.api_get("/api/v1/workspaces/prod/state-versions").await;
    assert_eq!(
        versions.as_array().map(Vec::len),
        Some(1),
        "the state is Gantry's: {versions}"
    );
}

#[tokio::test]
async fn re_run_on_a_failed_push_runs_check_run_retries_it() {
    let h = Harness::start(WORKSPACE, None).await;
    h.serve_tarball(&sha(1), "broken").await;
    let failed = h.push(&sha(1)).await;
    h.wait_for(failed, "errored").await;
    // GitHub's "Re-run" button on the run's check run.
    let mut rerun: serde_json::Value =
        serde_json::from_slice(&common::fixture("webhooks/check_run.rerequested.json")).unwrap();
    rerun["check_run"]["external_id"] = failed.to_string().into();
    rerun["check_run"]["head_sha"] = sha(1).into();
    rerun["repository"]["full_name"] = common::runs::REPO.into();
    rerun["installation"] = serde_json::json!({ "id": 99, "node_id": "x" });
    let body = serde_json::to_vec(&rerun).unwrap();
    assert_eq!(
        h.gantry.send("check_run", "rerun-1", &body).await.status(),
        202
    );
    let done = h.gantry.wait_for_outcome("rerun-1").await;
    assert_eq!(done.status, "processed", "{done:?}");
    let runs = h.api_get("/api/v1/workspaces/prod/runs").await;
    let retried = runs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["retry_of"] == failed)
        .unwrap_or_else(|| panic!("no retry of run {failed}: {runs}"));
    let retried = retried["id"].as_i64().unwrap();
    h.wait_for(retried, "errored").await;
    // A second press on the same (old) run retries nothing more.
    assert_eq!(
        h.gantry.send("check_run", "rerun-2", &body).await.status(),
        202
    );
    let again = h.gantry.wait_for_outcome("rerun-2").await;
    assert_eq!(again.status, "ignored", "{again:?}");
}
