//! Feedback at monorepo scale, end to end against the tests' fake GitHub with GitHub's
//! secondary rate limit on (80 content-creating requests an installation makes in any minute):
//! a repository of many workspaces, planned with the real Terraform, for both
//! `[feedback] untouched` modes.
//!
//! (a) a pull request touching one workspace: from the webhook's 202 to that workspace's final
//!     status at GitHub, and the requests it cost;
//! (b) a pull request touching every workspace: from the 202 to the last final status, the
//!     content-creating requests it cost, and the floor GitHub's limit sets for them
//!     (requests / 80 a minute).
//!
//! Run: `cargo bench --bench monorepo_feedback` (200 workspaces; about a quarter of an hour, the
//! time GitHub's limit takes; `-- status` or `-- aggregate` for one mode). Under `cargo test --all-targets` it runs a small round as a
//! smoke test.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::github::PullRequest;
use common::runs::{Harness, REPO, monorepo_tarball, pull_request_payload, sha};
use common::wait_until;

/// GitHub's secondary limit on content-creating requests, a minute.
const GITHUB_LIMIT_PER_MINUTE: usize = 80;

fn workspaces_toml(count: usize, untouched: &str) -> String {
    let mut toml = format!("[feedback]\nuntouched = \"{untouched}\"\n\n");
    for i in 0..count {
        toml.push_str(&format!(
            "[[workspaces]]\nname = \"ws-{i}\"\nrepo = \"{REPO}\"\nworking_directory = \"ws-{i}\"\n\
             terraform_version = \"1.0.3\"\n[workspaces.vars]\nname = \"ws-{i}\"\n\n"
        ));
    }
    toml
}

/// Requests the fake GitHub answered: (all, content-creating).
fn requests(h: &Harness) -> (usize, usize) {
    let world = h.gantry.github.world();
    let content = [
        "repos/create-commit-status",
        "checks/create",
        "checks/update",
        "issues/create-comment",
        "issues/update-comment",
    ]
    .iter()
    .map(|op| world.answered(op))
    .sum();
    let all = [
        "apps/create-installation-access-token",
        "pulls/list-files",
        "issues/list-comments",
        "repos/list-commit-statuses-for-ref",
        "repos/download-tarball-archive",
    ]
    .iter()
    .map(|op| world.answered(op))
    .sum::<usize>()
        + content;
    (all, content)
}

/// What one pull request cost: from 202 to the awaited final statuses, and the requests.
struct Measured {
    to_results: Duration,
    requests: usize,
    content_requests: usize,
}

/// Opens pull request `number` touching `touched` of the workspaces; waits for the final
/// status of each touched one, then for the outbox to drain (the untouched ones' statuses).
async fn pull_request(h: &Harness, number: u64, head: &str, touched: &[usize]) -> Measured {
    let files: Vec<String> = touched.iter().map(|i| format!("ws-{i}/main.tf")).collect();
    let files: Vec<&str> = files.iter().map(String::as_str).collect();
    h.gantry
        .github
        .open_pull_request(REPO, number, PullRequest::open(head, &files));
    let (before_all, before_content) = requests(h);
    let body = pull_request_payload(number, "opened", head, REPO);
    let response = h
        .gantry
        .send("pull_request", &format!("pr-{number}"), &body)
        .await;
    let accepted = Instant::now();
    assert_eq!(response.status(), 202);
    let contexts: Vec<String> = touched.iter().map(|i| format!("gantry/ws-{i}")).collect();
    let finished = wait_until(Duration::from_secs(3600), || async {
        let shown = h.gantry.github.latest_statuses(REPO, head);
        contexts
            .iter()
            .all(|c| shown.get(c).is_some_and(|s| s.state != "pending"))
            .then_some(())
    })
    .await;
    assert!(finished.is_some(), "every touched workspace got its result");
    let to_results = accepted.elapsed();
    wait_until(Duration::from_secs(3600), || async {
        (h.gantry.store.outbox_pending().await.ok()? == 0).then_some(())
    })
    .await
    .expect("the outbox drained");
    let (after_all, after_content) = requests(h);
    Measured {
        to_results,
        requests: after_all - before_all,
        content_requests: after_content - before_content,
    }
}

async fn scenario(count: usize, untouched: &str) {
    let tools = tempfile::tempdir().unwrap().keep();
    let cache = common::runs::tool_cache_with(&tools, None);
    let h = Harness::start_with(&workspaces_toml(count, untouched), |env| {
        env.insert(
            "GANTRY_TERRAFORM_TOOL_CACHE".into(),
            cache.display().to_string(),
        );
    })
    .await;
    h.gantry
        .github
        .secondary_rate_limit(GITHUB_LIMIT_PER_MINUTE);
    let (one, all) = (sha(1), sha(2));
    let tarball = monorepo_tarball(count);
    h.serve_tarball_bytes(&one, tarball.clone()).await;
    h.serve_tarball_bytes(&all, tarball).await;

    let a = pull_request(&h, 1, &one, &[0]).await;
    let every: Vec<usize> = (0..count).collect();
    let b = pull_request(&h, 2, &all, &every).await;
    let floor =
        Duration::from_secs_f64(b.content_requests as f64 * 60.0 / GITHUB_LIMIT_PER_MINUTE as f64);
    println!("monorepo_feedback: {count} workspaces, untouched = \"{untouched}\"");
    println!(
        "  (a) PR touching 1: 202 -> its final status {:.2?}; {} requests ({} content-creating)",
        a.to_results, a.requests, a.content_requests
    );
    println!(
        "  (b) PR touching {count}: 202 -> last final status {:.1?}; {} requests ({} \
         content-creating); GitHub's floor for those {:.1?} ({:+.1}%)",
        b.to_results,
        b.requests,
        b.content_requests,
        floor,
        (b.to_results.as_secs_f64() / floor.as_secs_f64() - 1.0) * 100.0
    );
    let refused = h.gantry.github.secondary_refusals();
    println!("  requests GitHub's limit refused: {refused}");
    assert_eq!(refused, 0, "Gantry kept under GitHub's limit");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let full = args.iter().any(|a| a == "--bench");
    let count = if full { 200 } else { 4 };
    // `-- status` or `-- aggregate` runs one mode only.
    let named: Vec<&str> = ["status", "aggregate"]
        .into_iter()
        .filter(|mode| args.iter().any(|a| a == mode))
        .collect();
    let modes = if named.is_empty() {
        vec!["status", "aggregate"]
    } else {
        named
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for untouched in modes {
        runtime.block_on(scenario(count, untouched));
    }
}
