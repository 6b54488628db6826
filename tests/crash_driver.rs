//! Crash safety with real processes: a driver sends a stream of pushes, pull request events and
//! comment commands to a real `gantry serve` (against a fake GitHub), kills it with SIGKILL at
//! random moments 20 times and starts it again each time. At the end:
//! - every delivery answered 202 was processed exactly once (closed, on its first attempt,
//!   and each push made one run per workspace it touched);
//! - no workspace ever had two runs holding it at once (from the runs' own event times);
//! - every run is finished (the workspaces auto-apply, so none waits for confirmation);
//! - the latest status at the fake GitHub for each commit and workspace is its run's final one;
//! - no run failed: a kill leaves Terraform to its supervisor, and the next start takes the
//!   run back.
//!
//! The seed is printed; `GANTRY_CRASH_SEED=<n>` replays a sequence of events and kill times.

mod common;

use std::path::Path;
use std::time::Duration;

use common::fleet::{self, Accepted, comment_payload, pr_payload};
use common::process::{GantryProcess, send};
use common::push_payload;
use common::runs::{REPO, tarball_of, tool_cache_with};
use gantry::store::Store;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const KILLS: usize = 20;
const WORKSPACES: [&str; 3] = ["prod", "staging", "network"];

fn config(tool_cache: &Path) -> String {
    let mut toml = format!(
        "[terraform]\ntool_cache = \"{}\"\n\n[runner]\nphase_timeout_secs = 120\n",
        tool_cache.display()
    );
    for name in WORKSPACES {
        toml.push_str(&format!(
            "\n[[workspaces]]\nname = \"{name}\"\nrepo = \"{REPO}\"\n\
             working_directory = \"{name}\"\nterraform_version = \"1.0.3\"\nauto_apply = true\n\
             [workspaces.vars]\nname = \"{name}\"\n"
        ));
    }
    toml
}

/// One delivery the driver sends.
struct Event {
    id: String,
    event: &'static str,
    body: Vec<u8>,
    /// For a push: its commit and the workspaces it touches.
    push: Option<(String, Vec<&'static str>)>,
}

/// The events of one round between kills: a push or two, and now and then a pull request
/// event and a comment command.
fn round_events(round: usize, rng: &mut StdRng) -> Vec<Event> {
    let mut events = Vec::new();
    for n in 0..rng.random_range(1..=2) {
        let commit = format!("{:040x}", 0x00c0_ffee_0000_u64 + (round * 10 + n) as u64);
        let touched: Vec<&'static str> = WORKSPACES
            .into_iter()
            .filter(|_| rng.random_bool(0.5))
            .collect();
        let touched = if touched.is_empty() {
            vec!["prod"]
        } else {
            touched
        };
        let files: Vec<String> = touched.iter().map(|w| format!("{w}/main.tf")).collect();
        let files: Vec<&str> = files.iter().map(String::as_str).collect();
        events.push(Event {
            id: format!("push-{round}-{n}"),
            event: "push",
            body: push_payload(REPO, "main", &commit, &files, |_| {}),
            push: Some((commit, touched)),
        });
    }
    if round.is_multiple_of(2) {
        let action = if round == 0 { "opened" } else { "synchronize" };
        let head = pr_head(round);
        events.push(Event {
            id: format!("pr-{round}"),
            event: "pull_request",
            body: pr_payload(action, &head),
            push: None,
        });
    } else {
        events.push(Event {
            id: format!("comment-{round}"),
            event: "issue_comment",
            body: comment_payload(9000 + round as u64, "/gantry plan"),
            push: None,
        });
    }
    events
}

fn pr_head(round: usize) -> String {
    format!("{:040x}", 0xbeef_0000_u64 + round as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_sigkills_lose_nothing_repeat_nothing_and_leave_github_right() {
    let seed: u64 = std::env::var("GANTRY_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("crash driver seed: {seed} (GANTRY_CRASH_SEED={seed} replays it)");
    let mut rng = StdRng::seed_from_u64(seed);

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("gantry.log");
    let tools = dir.path().join("tools");
    std::fs::create_dir_all(&tools).unwrap();
    let config_path = dir.path().join("gantry.toml");
    std::fs::write(&config_path, config(&tool_cache_with(&tools, None))).unwrap();
    // The pull request's head as GitHub reports it when a command asks: the last one pushed.
    let github = fleet::fake_github(
        &pr_head(2 * ((KILLS - 1) / 2)),
        &["prod/main.tf", "staging/main.tf"],
        tarball_of("monorepo", &"0".repeat(40)),
    )
    .await;
    let database_url = match common::fresh_postgres_database().await {
        Some(url) => url,
        None => format!("sqlite://{}/gantry.db", data.display()),
    };
    let env = [
        ("GANTRY_GITHUB_API_URL", github.uri()),
        ("GANTRY_DATABASE_URL", database_url.clone()),
        ("GANTRY_PUBLIC_URL", "https://gantry.test/".to_string()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let start = || GantryProcess::start_configured(&data, &log, Some(&config_path), &env);

    let http = reqwest::Client::new();
    let mut accepted: Vec<Accepted> = Vec::new();
    let mut unanswered = 0;
    for round in 0..KILLS {
        let gantry = start();
        let events = round_events(round, &mut rng);
        // Runs take a second or two: kills land before, during and between them.
        let kill_after = Duration::from_millis(rng.random_range(100..3000));
        let sends = events.iter().map(|e| {
            let (http, url) = (&http, &gantry.url);
            let delay = Duration::from_millis(rand::random_range(0..400));
            async move {
                tokio::time::sleep(delay).await;
                send(http, url, e.event, &e.id, &e.body).await
            }
        });
        let answered = tokio::select! {
            answered = futures::future::join_all(sends) => Some(answered),
            _ = tokio::time::sleep(kill_after) => None,
        };
        // Let the deliveries already accepted be worked on, up to the kill.
        if answered.is_some() {
            tokio::time::sleep(kill_after).await;
        }
        gantry.kill();
        // Only what Gantry answered 202 to is its responsibility; GitHub redelivers the rest.
        let answered = answered.unwrap_or_default();
        for (i, event) in events.into_iter().enumerate() {
            match answered.get(i) {
                Some(202) => accepted.push(Accepted {
                    id: event.id,
                    push: event.push.map(|(commit, touched)| {
                        (commit, touched.iter().map(|w| w.to_string()).collect())
                    }),
                }),
                Some(status) => panic!("{} answered {status}", event.id),
                None => unanswered += 1,
            }
        }
    }

    // The last start: everything accepted settles.
    let gantry = start();
    let store = Store::open(&database_url.clone().into()).await.unwrap();
    let Some(runs) = fleet::settled(&store, Duration::from_secs(300)).await else {
        panic!(
            "not settled: deliveries {:?}, outbox {}\n{}",
            store.delivery_counts().await.unwrap(),
            store.outbox_pending().await.unwrap(),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    };
    let checked = fleet::check(&store, &github, &accepted, &runs).await;
    gantry.kill();
    // A kill never fails a run: its Terraform went on under its supervisor and the next
    // Gantry took the run back (or, if nothing had started, planned it again).
    let failed: Vec<String> = runs
        .iter()
        .filter(|r| r.state == gantry::core::run::RunState::Errored)
        .map(|r| format!("run {}: {:?}", r.id, r.error))
        .collect();
    assert!(failed.is_empty(), "runs failed by the kills: {failed:?}");
    assert_eq!(checked.interrupted, 0);
    eprintln!(
        "{KILLS} kills survived: {} deliveries accepted, {unanswered} unanswered at a kill, \
         {} runs ({} interrupted by a kill), {} statuses checked, 0 lost",
        accepted.len(),
        runs.len(),
        checked.interrupted,
        checked.statuses
    );
}
