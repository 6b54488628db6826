//! Shared by the tests that drive whole `gantry` processes through a scenario (kills, several
//! replicas): a fake GitHub that answers everything such a scenario needs, the webhook
//! payloads, and the checks that must hold once everything settled.

use std::collections::{BTreeMap, HashMap};

use super::FakeGitHub;
use super::github::{PullRequest, Status};
use super::runs::REPO;
use gantry::core::run::RunState;
use gantry::core::{RunId, WorkspaceId};
use gantry::store::{RunDetail, Store};

/// The pull request the scenarios use.
pub const PR: u64 = 12;

/// The fake GitHub: `tarball` for any commit, the pull request (its files and, for commands,
/// its head), and octocat a writer.
pub async fn fake_github(pr_head: &str, pr_files: &[&str], tarball: Vec<u8>) -> FakeGitHub {
    let github = FakeGitHub::start().await;
    github.serve_any_tarball(REPO, tarball);
    github.open_pull_request(REPO, PR, PullRequest::open(pr_head, pr_files));
    github.grant(REPO, "octocat", "write");
    github
}

pub fn pr_payload(action: &str, head: &str) -> Vec<u8> {
    super::runs::pull_request_payload(PR, action, head, REPO)
}

/// A comment by a writer on the pull request.
pub fn comment_payload(id: u64, body: &str) -> Vec<u8> {
    super::runs::comment_payload(PR, id, "octocat", body)
}

/// A delivery Gantry answered 202 to; for a push, its commit and the workspaces it touched.
pub struct Accepted {
    pub id: String,
    pub push: Option<(String, Vec<String>)>,
}

/// Every run in the store. Ids have gaps (a sequence value taken by a transaction that rolled
/// back), but not long ones: the scan stops after 100 missing ids in a row.
pub async fn all_runs(store: &Store) -> Vec<RunDetail> {
    let mut runs = Vec::new();
    let mut missing = 0;
    for id in 1.. {
        match store.run(RunId(id)).await.unwrap() {
            Some(run) => {
                runs.push(run);
                missing = 0;
            }
            None if missing >= 100 => break,
            None => missing += 1,
        }
    }
    runs
}

/// Waits until no delivery is pending, every run is finished and the outbox is empty.
pub async fn settled(store: &Store, within: std::time::Duration) -> Option<Vec<RunDetail>> {
    super::wait_until(within, || async {
        let counts = store.delivery_counts().await.ok()?;
        let pending = counts.iter().any(|(s, n)| s == "pending" && *n > 0);
        let runs = all_runs(store).await;
        let open = runs.iter().any(|r| !r.state.is_final());
        let outbox = store.outbox_pending().await.ok()?;
        (!pending && !open && outbox == 0).then_some(runs)
    })
    .await
}

/// What the checks counted.
pub struct Checked {
    pub statuses: usize,
    pub interrupted: usize,
    /// The same status (commit, context, state, description) posted more than once in a row.
    pub repeated_statuses: Vec<String>,
}

/// The checks that must hold after any scenario, however it was disturbed: every accepted
/// delivery processed exactly once; each push made one run per workspace it touched; no
/// workspace ever had two runs holding it at once; and the latest status at GitHub for each
/// commit and workspace says how its latest run ended.
pub async fn check(
    store: &Store,
    github: &FakeGitHub,
    accepted: &[Accepted],
    runs: &[RunDetail],
) -> Checked {
    for event in accepted {
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
    let workspaces: HashMap<WorkspaceId, String> = store
        .workspaces()
        .await
        .unwrap()
        .into_iter()
        .map(|w| (w.id, w.spec.name.as_str().to_string()))
        .collect();
    for event in accepted {
        let Some((commit, touched)) = &event.push else {
            continue;
        };
        for name in touched {
            let made = runs
                .iter()
                .filter(|r| !r.speculative && &r.commit_sha == commit)
                .filter(|r| &workspaces[&r.workspace_id] == name)
                .count();
            assert_eq!(made, 1, "{name} runs for push {commit}");
        }
    }

    let mut holding: BTreeMap<WorkspaceId, Vec<(i64, i64, RunId)>> = BTreeMap::new();
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

    let mut posted: HashMap<(String, String), Vec<Status>> = HashMap::new();
    for status in github.all_statuses() {
        let key = (status.sha.clone(), status.context.clone());
        posted.entry(key).or_default().push(status);
    }
    let repeated_statuses = posted
        .iter()
        .flat_map(|((commit, context), bodies)| {
            bodies
                .windows(2)
                .filter(|w| w[0] == w[1])
                .map(move |w| format!("{commit} {context} {:?}", w[0]))
        })
        .collect();
    let mut newest_run: HashMap<(String, String), &RunDetail> = HashMap::new();
    for run in runs {
        let key = (
            run.commit_sha.to_string(),
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
        let status = posted
            .get(key)
            .and_then(|bodies| bodies.last())
            .unwrap_or_else(|| panic!("no status for {key:?} (run {})", run.id));
        let expected = match run.state {
            RunState::Applied | RunState::PlannedAndFinished => "success",
            RunState::Errored => "failure",
            _ => "error",
        };
        assert_eq!(
            status.state, expected,
            "{key:?}: run {} ended {}, the last status was {status:?}",
            run.id, run.state
        );
    }
    Checked {
        statuses: newest_run.len(),
        interrupted: runs
            .iter()
            .filter(|r| {
                r.error
                    .as_deref()
                    .is_some_and(|e| e.contains("interrupted"))
            })
            .count(),
        repeated_statuses,
    }
}
