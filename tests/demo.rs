//! `gantry demo` end to end: the real binary starts with its stand-in GitHub and sample
//! repository, sends its push and pull request, and the push's run reaches "planned" with the
//! real Terraform; Ctrl-C stops it and removes its data.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test]
async fn the_demo_plans_its_sample_push_and_stops_on_ctrl_c() {
    let tools = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools/bin");
    let path = format!(
        "{}:{}",
        tools.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut demo = tokio::process::Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args(["demo", "--listen", "127.0.0.1:0"])
        .env("PATH", path)
        .env("GANTRY_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(demo.stdout.take().unwrap()).lines();
    let (mut url, mut token, mut data) = (None, None, None);
    while token.is_none() {
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
