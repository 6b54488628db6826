//! `gantry demo` end to end: the real binary starts with its stand-in GitHub and sample
//! repository, sends its push and pull request, and the push's run reaches "planned" with the
//! real Terraform; Ctrl-C stops it and removes its data. The same flow against the tests' fake
//! GitHub keeps to GitHub's contract.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

/// `gantry demo`, started with these extra environment variables.
fn start_demo(env: &[(&str, &str)]) -> tokio::process::Child {
    let tools = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools/bin");
    let path = format!(
        "{}:{}",
        tools.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    tokio::process::Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args(["demo", "--listen", "127.0.0.1:0"])
        .env("PATH", path)
        .env("GANTRY_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

#[tokio::test]
async fn the_demos_flow_keeps_to_githubs_contract() {
    use gantry::demo;
    let github = common::FakeGitHub::start().await;
    github.app_id(demo::APP_ID);
    github.install(demo::INSTALLATION);
    for (sha, tarball) in demo::sample_commits().unwrap() {
        github.serve_tarball(demo::REPO, sha, tarball);
    }
    github.open_pull_request(
        demo::REPO,
        demo::PR_NUMBER,
        common::github::PullRequest::open(demo::PR_SHA, demo::PR_FILES),
    );
    let mut demo_process = start_demo(&[(demo::GITHUB_URL_ENV, &github.uri())]);
    let stdout = demo_process.stdout.take().unwrap();
    // Drain what the demo prints, so it never blocks on its pipe.
    tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(_)) = lines.next_line().await {}
    });

    // The push plans both workspaces (to be confirmed); the pull request plans the one it
    // touches, and its
    // comment is written: every request on the way checked against GitHub's contract.
    let finished = common::wait_until(Duration::from_secs(60), || async {
        let main = github.latest_statuses(demo::REPO, demo::MAIN_SHA);
        let pull = github.latest_statuses(demo::REPO, demo::PR_SHA);
        let says = |statuses: &std::collections::BTreeMap<String, common::github::Status>,
                    context: &str,
                    words: &str| {
            statuses
                .get(context)
                .is_some_and(|s| s.description.contains(words))
        };
        let commented = github
            .comments(demo::REPO, demo::PR_NUMBER)
            .iter()
            .any(|c| c.body.contains("demo-network"));
        (says(&main, "gantry/demo-app", "Needs confirmation")
            && says(&main, "gantry/demo-network", "Needs confirmation")
            && says(&pull, "gantry/demo-network", "Plan: ")
            && says(&pull, "gantry/demo-app", "No changes in this workspace")
            && commented)
            .then_some(())
    })
    .await;
    let pid = nix::unistd::Pid::from_raw(demo_process.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), demo_process.wait())
        .await
        .expect("the demo stops on Ctrl-C")
        .unwrap();
    assert!(status.success());
    assert!(
        finished.is_some(),
        "the demo's runs reported to GitHub: {:#?}",
        github.all_statuses()
    );
    assert_eq!(
        github.comments(demo::REPO, demo::PR_NUMBER).len(),
        1,
        "one PR comment"
    );
}

#[tokio::test]
async fn the_demo_plans_its_sample_push_and_stops_on_ctrl_c() {
    let mut demo = start_demo(&[]);
    let mut lines = BufReader::new(demo.stdout.take().unwrap()).lines();
    let (mut url, mut token, mut data, mut command) = (None, None, None, None);
    while command.is_none() {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("the demo starts")
            .unwrap()
            .expect("the demo prints its URL and token");
        if let Some(rest) = line.trim().strip_prefix("UI:") {
            url = Some(rest.trim().to_string());
        } else if let Some(rest) = line.trim().strip_prefix("token:") {
            token = Some(rest.trim().to_string());
        } else if let Some(rest) = line.split("data in ").nth(1) {
            data = Some(PathBuf::from(rest.trim_end_matches(").")));
        } else if line.trim().starts_with("cd ") {
            command = Some(line.trim().to_string());
        }
    }
    let (url, token, data) = (url.unwrap(), token.unwrap(), data.unwrap());
    assert!(data.is_dir());
    // Keep reading what the stand-in GitHub prints, so the demo never blocks on its pipe.
    let printed = tokio::spawn(async move {
        let mut all = String::new();
        while let Ok(Some(line)) = lines.next_line().await {
            all.push_str(&line);
            all.push('\n');
        }
        all
    });

    let http = reqwest::Client::new();
    let mut planned = false;
    for _ in 0..300 {
        let runs: serde_json::Value = http
            .get(format!("{url}api/v1/workspaces/demo-app/runs"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if runs[0]["state"] == "planned" {
            planned = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(planned, "the sample push's run in demo-app reached planned");

    // The command it prints plans demo-app from a terminal, with the workspace's variables.
    let tools = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools/bin");
    let home = tempfile::tempdir().unwrap();
    let plan = tokio::process::Command::new("sh")
        .args(["-c", &command.unwrap()])
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", tools.display()))
        .env("HOME", home.path())
        .env("CHECKPOINT_DISABLE", "1")
        .output()
        .await
        .unwrap();
    let said = String::from_utf8_lossy(&plan.stdout);
    assert!(
        plan.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&plan.stderr)
    );
    assert!(said.contains("https://checkout.demo.example.com"), "{said}");

    let pid = nix::unistd::Pid::from_raw(demo.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), demo.wait())
        .await
        .expect("the demo stops on Ctrl-C")
        .unwrap();
    assert!(status.success());
    let printed = printed.await.unwrap();
    assert!(
        printed.contains("[github] status gantry/demo-app"),
        "{printed}"
    );
    assert!(!data.exists(), "the demo's data is removed");
}
