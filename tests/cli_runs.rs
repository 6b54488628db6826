//! The run CLI against a running Gantry: `gantry runs watch` streams a real plan (and apply) to
//! the terminal and says with its exit code how the run ended; `workspaces list`, `lock`,
//! `unlock`.

mod common;

use std::process::Stdio;

use std::time::Duration;

use common::runs::{Harness, sha};
use common::wait_until;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const ROOT: &str = common::runs::ROOT_WORKSPACE;

fn gantry(h: &Harness, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gantry"));
    command
        .args(args)
        .env("GANTRY_URL", &h.gantry.url)
        .env("GANTRY_TOKEN", &h.token)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

#[tokio::test]
async fn watch_streams_a_plan_waits_for_confirmation_and_exits_0_when_applied() {
    let h = Harness::start(ROOT, None).await;
    h.serve_tarball(&sha(1), "outputs").await;
    let run = h.push(&sha(1)).await;
    let mut watcher = gantry(&h, &["runs", "watch", &run.to_string()])
        .spawn()
        .unwrap();
    // What the watcher tells the terminal, as it comes.
    let told = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let mut lines = BufReader::new(watcher.stderr.take().unwrap()).lines();
    let collected = told.clone();
    let reader = tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            let mut text = collected.lock().unwrap();
            text.push_str(&line);
            text.push('\n');
        }
    });
    wait_until(Duration::from_secs(60), || async {
        told.lock()
            .unwrap()
            .contains("waiting for confirmation")
            .then_some(())
    })
    .await
    .expect("the watcher says the plan waits for confirmation");
    h.action(run, "confirm").await;
    let output = watcher.wait_with_output().await.unwrap();
    reader.await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = told.lock().unwrap().clone();
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stdout.contains("Changes to Outputs"), "{stdout}");
    assert!(stdout.contains("Apply complete"), "{stdout}");
    assert!(stderr.contains("== plan"), "{stderr}");
    assert!(stderr.contains("waiting for confirmation"), "{stderr}");
    assert!(
        stderr.contains(&format!("== run {run} (prod): applied")),
        "{stderr}"
    );
}

#[tokio::test]
async fn watch_exits_1_when_the_run_errors_and_the_other_codes_say_why() {
    let h = Harness::start(ROOT, None).await;
    h.serve_tarball(&sha(1), "broken").await;
    let run = h.push(&sha(1)).await;
    let output = gantry(&h, &["runs", "watch", &run.to_string()])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout.contains("undefined_thing"),
        "the error is streamed: {stdout}"
    );

    let missing = gantry(&h, &["runs", "watch", "999"])
        .output()
        .await
        .unwrap();
    assert_eq!(missing.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("404"));
    let no_token = gantry(&h, &["runs", "watch", "1"])
        .env_remove("GANTRY_TOKEN")
        .output()
        .await
        .unwrap();
    assert_eq!(no_token.status.code(), Some(2));
}

#[tokio::test]
async fn workspaces_can_be_listed_locked_and_unlocked() {
    let h = Harness::start(ROOT, None).await;
    let lock = gantry(&h, &["lock", "prod", "--reason", "change freeze"])
        .output()
        .await
        .unwrap();
    assert_eq!(lock.status.code(), Some(0));
    let list = gantry(&h, &["workspaces", "list"]).output().await.unwrap();
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(text.contains("prod"), "{text}");
    assert!(text.contains("locked by tester: change freeze"), "{text}");
    let again = gantry(&h, &["lock", "prod", "--reason", "me too"])
        .output()
        .await
        .unwrap();
    assert_eq!(again.status.code(), Some(4), "already locked");
    let unlock = gantry(&h, &["unlock", "prod"]).output().await.unwrap();
    assert_eq!(unlock.status.code(), Some(0));
}

/// A checkout of the repository with the `outputs` configuration in `envs/prod`, a module
/// beside it, and files that ignore files leave out.
fn checkout() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let files = [
        (
            "envs/prod/main.tf",
            std::fs::read_to_string(common::fixture_path("terraform/outputs/main.tf")).unwrap(),
        ),
        (
            "envs/prod/extra.tf",
            "module \"tags\" {\n  source = \"../../modules/tags\"\n}\n\
             output \"tags\" {\n  value = module.tags.value\n}\n"
                .to_string(),
        ),
        (
            "modules/tags/main.tf",
            "output \"value\" {\n  value = \"from-a-module\"\n}\n".to_string(),
        ),
        // Broken on purpose: uploaded, they would fail the plan.
        ("envs/prod/scratch.tf", "this is not HCL {".to_string()),
        ("envs/prod/local.tf", "this is not HCL either {".to_string()),
        (".gitignore", "scratch.tf\n".to_string()),
        (".terraformignore", "envs/prod/local.tf\n".to_string()),
        (".terraform/terraform.tfstate", "{}".to_string()),
    ];
    for (path, body) in files {
        let file = root.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, body).unwrap();
    }
    dir
}

#[tokio::test]
async fn runs_create_uploads_the_checkout_without_ignored_files_and_streams_the_plan() {
    let settings = ROOT.replace(
        "[workspaces.vars]",
        "working_directory = \"envs/prod\"\n[workspaces.vars]",
    );
    let h = Harness::start(&settings, None).await;
    let checkout = checkout();
    let dir = checkout.path().join("envs/prod");
    let output = gantry(
        &h,
        &[
            "runs",
            "create",
            "--workspace",
            "prod",
            "--dir",
            dir.to_str().unwrap(),
            "--speculative",
        ],
    )
    .output()
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}\n{stdout}");
    assert!(stdout.contains("hello world"), "{stdout}");
    assert!(stdout.contains("from-a-module"), "{stdout}");
    assert!(stderr.contains("== packed 5 files"), "{stderr}");
    assert!(stderr.contains(": planned_and_finished"), "{stderr}");

    // A plan that fails exits 1; a directory outside the working directory is a usage error.
    std::fs::remove_file(checkout.path().join(".gitignore")).unwrap();
    let failing = gantry(
        &h,
        &[
            "runs",
            "create",
            "--workspace",
            "prod",
            "--dir",
            dir.to_str().unwrap(),
            "--speculative",
        ],
    )
    .output()
    .await
    .unwrap();
    assert_eq!(failing.status.code(), Some(1));
    let elsewhere = gantry(
        &h,
        &[
            "runs",
            "create",
            "--workspace",
            "prod",
            "--dir",
            checkout.path().to_str().unwrap(),
        ],
    )
    .output()
    .await
    .unwrap();
    assert_eq!(elsewhere.status.code(), Some(2));
    let unknown = gantry(&h, &["runs", "create", "--workspace", "nope", "--dir", "."])
        .output()
        .await
        .unwrap();
    assert_eq!(unknown.status.code(), Some(4));
}

#[tokio::test]
async fn create_without_a_directory_plans_the_branch_head_with_the_options_given() {
    let h = Harness::start(ROOT, None).await;
    h.gantry
        .github
        .set_branch(common::runs::REPO, "main", &sha(5));
    h.serve_tarball(&sha(5), "outputs").await;
    let output = gantry(
        &h,
        &[
            "runs",
            "create",
            "--workspace",
            "prod",
            "--plan-only",
            "--message",
            "checking main",
        ],
    )
    .output()
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}\n{stdout}");
    assert!(stdout.contains("hello world"), "{stdout}");
    assert!(stderr.contains(": planned_and_finished"), "{stderr}");
    assert!(!stderr.contains("== packed"), "nothing uploaded: {stderr}");
    let run: i64 = stderr
        .split("== run ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no run named: {stderr}"));
    let run = h.run(run).await;
    assert_eq!(run["commit_sha"], sha(5));
    assert_eq!(run["source"], "manual");
    assert_eq!(run["message"], "checking main");
    // An option that cannot be run is the API's 400: exit 4 with the reason.
    let refused = gantry(
        &h,
        &[
            "runs",
            "create",
            "--workspace",
            "prod",
            "--destroy",
            "--refresh-only",
        ],
    )
    .output()
    .await
    .unwrap();
    assert_eq!(refused.status.code(), Some(4));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("not both"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}
