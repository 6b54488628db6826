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
