//! Pull request feedback, measured end to end against a fake GitHub on loopback:
//!
//! 1. latency: from a pull_request delivery's 202 to the first commit status arriving at the
//!    fake GitHub (runner off, so only ingest, dispatch, the files request and the outbox are
//!    measured; in-between states are not held, `hold_in_between_ms = 0`);
//! 2. fan-out: one pull request touching 50 workspaces, planned with the real Terraform under
//!    the speculative-plan cap: the time until all are planned and the most plans seen at once.
//!
//! Run: `cargo bench --bench pull_request_feedback` (under `cargo test --all-targets` it runs a
//! small round of each, as a smoke test).

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::github::PullRequest;
use common::runs::{Harness, REPO, monorepo_tarball, sha};
use common::{TestGantry, fixture, wait_until};
use gantry::core::PrNumber;
use serde_json::{Value, json};

fn pr_payload(number: u64, head: &str) -> Vec<u8> {
    let mut p: Value =
        serde_json::from_slice(&fixture("webhooks/pull_request.opened.json")).unwrap();
    p["number"] = number.into();
    p["pull_request"]["number"] = number.into();
    p["pull_request"]["head"]["sha"] = head.into();
    p["pull_request"]["head"]["repo"]["full_name"] = REPO.into();
    p["pull_request"]["base"]["ref"] = "main".into();
    p["pull_request"]["base"]["repo"]["full_name"] = REPO.into();
    p["repository"]["full_name"] = REPO.into();
    p["repository"]["default_branch"] = "main".into();
    p["installation"] = json!({ "id": 99, "node_id": "x" });
    serde_json::to_vec(&p).unwrap()
}

/// `count` workspaces; in-between states are sent at once, so that the latency measured is
/// Gantry's own, not the hold that coalesces them.
fn workspaces_toml(count: usize) -> String {
    let mut toml = "[feedback]\nhold_in_between_ms = 0\n\n".to_string();
    for i in 0..count {
        toml.push_str(&format!(
            "[[workspaces]]\nname = \"ws-{i}\"\nrepo = \"{REPO}\"\nworking_directory = \"ws-{i}\"\n\
             terraform_version = \"1.0.3\"\n[workspaces.vars]\nname = \"ws-{i}\"\n\n"
        ));
    }
    toml
}

async fn latency(rounds: usize) -> Vec<Duration> {
    let gantry = TestGantry::start_with_config(&workspaces_toml(1)).await;
    let mut samples = Vec::new();
    for round in 0..rounds {
        let head = sha(10_000 + round as u32);
        let number = 100 + round as u64;
        gantry
            .github
            .open_pull_request(REPO, number, PullRequest::open(&head, &["ws-0/main.tf"]));
        let body = pr_payload(number, &head);
        let response = gantry
            .send("pull_request", &format!("lat-{round}"), &body)
            .await;
        let accepted = Instant::now();
        assert_eq!(response.status(), 202);
        loop {
            if !gantry.github.statuses(REPO, &head).is_empty() {
                samples.push(accepted.elapsed());
                break;
            }
            assert!(
                accepted.elapsed() < Duration::from_secs(10),
                "a status arrived"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    samples
}

async fn fan_out(count: usize) -> (Duration, usize, usize) {
    let h = Harness::start(&workspaces_toml(count), None).await;
    let head = sha(20_000);
    let files: Vec<String> = (0..count).map(|i| format!("ws-{i}/main.tf")).collect();
    let files: Vec<&str> = files.iter().map(String::as_str).collect();
    h.gantry
        .github
        .open_pull_request(REPO, 500, PullRequest::open(&head, &files));
    h.serve_tarball_bytes(&head, monorepo_tarball(count)).await;
    let start = Instant::now();
    assert_eq!(
        h.gantry
            .send("pull_request", "fan-out", &pr_payload(500, &head))
            .await
            .status(),
        202
    );
    let most_at_once = std::sync::atomic::AtomicUsize::new(0);
    let most_ref = &most_at_once;
    let store = &h.gantry.store;
    let done = wait_until(Duration::from_secs(600), || async {
        let ids = store.pull_request_runs(REPO, PrNumber(500)).await.ok()?;
        let mut states: HashMap<String, usize> = HashMap::new();
        for id in &ids {
            let run = store.run(*id).await.ok()??;
            *states.entry(run.state.to_string()).or_default() += 1;
        }
        let executing = states.get("fetching").copied().unwrap_or(0)
            + states.get("planning").copied().unwrap_or(0);
        most_ref.fetch_max(executing, std::sync::atomic::Ordering::Relaxed);
        (ids.len() == count && states.get("planned_and_finished") == Some(&count)).then_some(())
    })
    .await;
    assert!(done.is_some(), "all {count} workspaces planned");
    let elapsed = start.elapsed();
    let cap = std::thread::available_parallelism().map_or(1, |n| n.get()) * 2;
    (elapsed, most_at_once.into_inner(), cap)
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (rounds, workspaces) = if full { (50, 50) } else { (3, 3) };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut samples = runtime.block_on(latency(rounds));
    samples.sort();
    let (elapsed, most, cap) = runtime.block_on(fan_out(workspaces));
    println!("pull_request_feedback");
    println!(
        "  202 -> first status at GitHub ({rounds} PRs): median {:.1?}, p90 {:.1?}, max {:.1?}",
        samples[samples.len() / 2],
        samples[samples.len() * 9 / 10],
        samples[samples.len() - 1]
    );
    println!(
        "  {workspaces} workspaces planned for one PR: {elapsed:.1?} (at most {most} at once; cap {cap})"
    );
}
