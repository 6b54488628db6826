//! Crash safety with real processes: a driver sends a stream of pushes, pull request events and
//! comment commands to a real `gantry serve` (against a fake GitHub), kills it with SIGKILL at
//! random moments 20 times and starts it again each time. At the end:
//! - every delivery answered 202 was processed exactly once (closed, on its first attempt,
//!   and each push made one run per workspace it touched);
//! - no workspace ever had two runs holding it at once (from the runs' own event times);
//! - every run is finished (the workspaces auto-apply, so none waits for confirmation);
//! - the latest status at the fake GitHub for each commit and workspace is its run's final one.
//!
//! The seed is printed; `GANTRY_CRASH_SEED=<n>` replays a sequence of events and kill times.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use common::process::{GantryProcess, send};
use common::runs::{REPO, grant_installation_token, tarball_of, tool_cache_with};
use common::{fixture, push_payload, wait_until};
use gantry::core::run::RunState;
use gantry::store::{RunDetail, Store};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KILLS: usize = 20;
const PR: u64 = 12;
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

/// The fake GitHub: tokens, any commit's tarball, the pull request, a writer's permission, and
/// every write Gantry makes answered with success (and recorded by wiremock).
async fn fake_github(pr_head: &str) -> MockServer {
    let github = MockServer::start().await;
    grant_installation_token(&github).await;
    Mock::given(method("GET"))
        .and(path_regex(r"^/repos/octo-org/infra/tarball/[0-9a-f]{40}$"))
        .respond_with(ResponseTemplate::new(302).insert_header(
            "location",
            format!("{}/codeload/monorepo.tar.gz", github.uri()),
        ))
        .mount(&github)
        .await;
    Mock::given(method("GET"))
        .and(path("/codeload/monorepo.tar.gz"))
        .respond_with(
            ResponseTemplate::new(200).set_body_bytes(tarball_of("monorepo", &"0".repeat(40))),
        )
        .mount(&github)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/repos/{REPO}/pulls/{PR}/files")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            { "filename": "prod/main.tf" }, { "filename": "staging/main.tf" }
        ])))
        .mount(&github)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/repos/{REPO}/pulls/{PR}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "number": PR, "state": "open",
            "head": { "ref": "feature", "sha": pr_head, "repo": { "full_name": REPO } },
            "base": { "ref": "main", "sha": "9".repeat(40), "repo": { "full_name": REPO } },
        })))
        .mount(&github)
        .await;
    Mock::given(method("GET"))
        .and(path_regex(
            r"^/repos/octo-org/infra/collaborators/[^/]+/permission$",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "permission": "write" })))
        .mount(&github)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/repos/{REPO}/issues/{PR}/comments")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&github)
        .await;
    for verb in ["POST", "PATCH"] {
        Mock::given(method(verb))
            .and(path_regex(
                r"^/repos/octo-org/infra/(statuses|check-runs|issues)(/.*)?$",
            ))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({ "id": 555 })))
            .mount(&github)
            .await;
    }
    github
}

fn pr_payload(action: &str, head: &str) -> Vec<u8> {
    let mut p: Value =
        serde_json::from_slice(&fixture("webhooks/pull_request.opened.json")).unwrap();
    p["action"] = action.into();
    p["number"] = PR.into();
    p["pull_request"]["number"] = PR.into();
    p["pull_request"]["head"]["sha"] = head.into();
    p["pull_request"]["head"]["repo"]["full_name"] = REPO.into();
    p["pull_request"]["base"]["ref"] = "main".into();
    p["pull_request"]["base"]["repo"]["full_name"] = REPO.into();
    p["repository"]["full_name"] = REPO.into();
    p["repository"]["default_branch"] = "main".into();
    p["installation"] = json!({ "id": 99, "node_id": "x" });
    serde_json::to_vec(&p).unwrap()
}

fn comment_payload(id: u64, body: &str) -> Vec<u8> {
    let mut p: Value =
        serde_json::from_slice(&fixture("webhooks/issue_comment.created.json")).unwrap();
    p["issue"]["number"] = PR.into();
    p["issue"]["pull_request"] =
        json!({ "url": format!("https://api.github.com/repos/{REPO}/pulls/{PR}") });
    p["comment"]["id"] = id.into();
    p["comment"]["body"] = body.into();
    p["comment"]["user"]["login"] = "octocat".into();
    p["sender"]["login"] = "octocat".into();
    p["repository"]["full_name"] = REPO.into();
    p["installation"] = json!({ "id": 99, "node_id": "x" });
    serde_json::to_vec(&p).unwrap()
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

async fn all_runs(store: &Store) -> Vec<RunDetail> {
    let mut runs = Vec::new();
    for id in 1.. {
        match store.run(id).await.unwrap() {
            Some(run) => runs.push(run),
            None if id > 10 + runs.len() as i64 => break,
            None => {}
        }
    }
    runs
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
    let github = fake_github(&pr_head(2 * ((KILLS - 1) / 2))).await;
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
    let mut accepted: Vec<Event> = Vec::new();
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
                Some(202) => accepted.push(event),
                Some(status) => panic!("{} answered {status}", event.id),
                None => unanswered += 1,
            }
        }
    }

    // The last start: everything accepted settles.
    let gantry = start();
    let store = Store::open(&database_url.clone().into()).await.unwrap();
    let settled = wait_until(Duration::from_secs(300), || async {
        let counts = store.delivery_counts().await.ok()?;
        let pending = counts.iter().any(|(s, n)| s == "pending" && *n > 0);
        let runs = all_runs(&store).await;
        let open = runs.iter().any(|r| !r.state.is_final());
        let outbox = store.outbox_pending().await.ok()?;
        (!pending && !open && outbox == 0).then_some(runs)
    })
    .await;
    let runs = match settled {
        Some(runs) => runs,
        None => {
            let states: Vec<String> = all_runs(&store)
                .await
                .iter()
                .map(|r| format!("{}:{}", r.id, r.state))
                .collect();
            panic!(
                "not settled: deliveries {:?}, runs {states:?}, outbox {}\n{}",
                store.delivery_counts().await.unwrap(),
                store.outbox_pending().await.unwrap(),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
    };

    // Every accepted delivery was processed exactly once.
    for event in &accepted {
        let stored = store
            .delivery(&event.id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{} was answered 202 but is lost", event.id));
        assert!(
            stored.status == "processed" || stored.status == "ignored",
            "{}: {} {:?}",
            event.id,
            stored.status,
            stored.outcome_detail
        );
        assert_eq!(
            stored.attempts, 1,
            "{} was processed more than once",
            event.id
        );
    }
    // Each accepted push made one run in each workspace it touched, no more.
    let workspaces: HashMap<i64, String> = store
        .workspaces()
        .await
        .unwrap()
        .into_iter()
        .map(|w| (w.id, w.spec.name.as_str().to_string()))
        .collect();
    for event in &accepted {
        let Some((commit, touched)) = &event.push else {
            continue;
        };
        for name in touched {
            let made = runs
                .iter()
                .filter(|r| !r.speculative && &r.commit_sha == commit)
                .filter(|r| workspaces[&r.workspace_id] == *name)
                .count();
            assert_eq!(made, 1, "{name} runs for push {commit}");
        }
    }

    // No workspace ever had two runs holding it at once.
    let mut holding: BTreeMap<i64, Vec<(i64, i64, i64)>> = BTreeMap::new();
    for run in runs.iter().filter(|r| !r.speculative) {
        let timeline = store.run_timeline(run.id).await.unwrap();
        let state = |e: &gantry::store::RunEvent| RunState::parse(&e.state).unwrap();
        let Some(from) = timeline.iter().find(|e| state(e).holds_workspace()) else {
            continue;
        };
        let until = timeline
            .iter()
            .find(|e| state(e).is_final())
            .expect("every run is finished")
            .at_ms;
        holding
            .entry(run.workspace_id)
            .or_default()
            .push((from.at_ms, until, run.id));
    }
    for (workspace, mut spans) in holding {
        spans.sort();
        for pair in spans.windows(2) {
            assert!(
                pair[0].1 <= pair[1].0,
                "runs {} and {} held workspace {workspace} at once: {pair:?}",
                pair[0].2,
                pair[1].2
            );
        }
    }

    // The latest status for each commit and workspace says how its latest run ended.
    let requests = github.received_requests().await.unwrap();
    let mut latest: HashMap<(String, String), Value> = HashMap::new();
    for request in requests
        .iter()
        .filter(|r| r.method.as_str() == "POST" && r.url.path().contains("/statuses/"))
    {
        let commit = request.url.path().rsplit('/').next().unwrap().to_string();
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        let context = body["context"].as_str().unwrap().to_string();
        latest.insert((commit, context), body);
    }
    let mut newest_run: HashMap<(String, String), &RunDetail> = HashMap::new();
    for run in &runs {
        let key = (
            run.commit_sha.clone(),
            format!("gantry/{}", workspaces[&run.workspace_id]),
        );
        newest_run
            .entry(key)
            .and_modify(|r| {
                if run.id > r.id {
                    *r = run;
                }
            })
            .or_insert(run);
    }
    for (key, run) in &newest_run {
        let status = latest
            .get(key)
            .unwrap_or_else(|| panic!("no status for {key:?} (run {})", run.id));
        let expected = match run.state {
            RunState::Applied | RunState::PlannedAndFinished => "success",
            RunState::Errored => "failure",
            _ => "error",
        };
        assert_eq!(
            status["state"], expected,
            "{key:?}: run {} ended {}, the last status was {status}",
            run.id, run.state
        );
    }
    gantry.kill();
    let interrupted = runs
        .iter()
        .filter(|r| {
            r.error
                .as_deref()
                .is_some_and(|e| e.contains("interrupted"))
        })
        .count();
    eprintln!(
        "{KILLS} kills survived: {} deliveries accepted, {unanswered} unanswered at a kill, \
         {} runs ({interrupted} interrupted by a kill), {} statuses checked, 0 lost",
        accepted.len(),
        runs.len(),
        newest_run.len()
    );
}
