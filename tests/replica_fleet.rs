//! Three replicas on one PostgreSQL database share the work: 200 pushes over 20 workspaces and
//! 50 pull request events, each webhook sent to the next replica in turn, and one replica
//! killed (SIGKILL) while it executes a run and never started again. Everything the crash
//! test asserts holds (every accepted delivery processed once, one run per push and
//! workspace, no workspace held by two runs at once, every run finished, the latest status
//! right), and no status is posted twice. PostgreSQL only: replicas need it.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::fleet::{self, Accepted, pr_payload};
use common::process::{GantryProcess, send};
use common::push_payload;
use common::runs::{REPO, tool_cache_with};
use gantry::core::RunId;
use gantry::store::Store;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const REPLICAS: usize = 3;
const WORKSPACES: usize = 20;
const PUSHES: usize = 200;
const PR_EVENTS: usize = 50;

fn workspace(n: usize) -> String {
    format!("ws{n:02}")
}

fn config(tool_cache: &Path) -> String {
    // A dead replica's plan is taken over only once its supervisor has surely ended it (the
    // phase timeout): kept short here so the takeover comes within the test.
    let mut toml = format!(
        "[terraform]\ntool_cache = \"{}\"\n\n[runner]\nphase_timeout_secs = 30\n",
        tool_cache.display()
    );
    for n in 0..WORKSPACES {
        let name = workspace(n);
        toml.push_str(&format!(
            "\n[[workspaces]]\nname = \"{name}\"\nrepo = \"{REPO}\"\n\
             working_directory = \"{name}\"\nterraform_version = \"1.0.3\"\nauto_apply = true\n\
             [workspaces.vars]\nname = \"{name}\"\n"
        ));
    }
    toml
}

/// The repository's tarball: one offline configuration per workspace directory.
fn repository_tarball() -> Vec<u8> {
    let main_tf = common::fixture("terraform/outputs/main.tf");
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    for n in 0..WORKSPACES {
        let mut header = tar::Header::new_gnu();
        header.set_size(main_tf.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        let path = format!("octo-org-infra-0000000/{}/main.tf", workspace(n));
        builder
            .append_data(&mut header, path, main_tf.as_slice())
            .unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

struct Event {
    id: String,
    event: &'static str,
    body: Vec<u8>,
    push: Option<(String, Vec<String>)>,
}

fn events(rng: &mut StdRng) -> Vec<Event> {
    let mut pushes: Vec<Event> = (0..PUSHES)
        .map(|n| {
            let commit = format!("{:040x}", 0x00aa_0000_u64 + n as u64);
            let name = workspace(rng.random_range(0..WORKSPACES));
            Event {
                id: format!("push-{n}"),
                event: "push",
                body: push_payload(REPO, "main", &commit, &[&format!("{name}/main.tf")], |_| {}),
                push: Some((commit, vec![name])),
            }
        })
        .collect();
    let mut pulls: Vec<Event> = (0..PR_EVENTS)
        .map(|n| {
            let action = if n == 0 { "opened" } else { "synchronize" };
            Event {
                id: format!("pr-{n}"),
                event: "pull_request",
                body: pr_payload(action, &format!("{:040x}", 0x00bb_0000_u64 + n as u64)),
                push: None,
            }
        })
        .collect();
    // Interleaved: a pull request event after every fourth push, in order.
    let mut all = Vec::new();
    pulls.reverse();
    pushes.reverse();
    while let Some(push) = pushes.pop() {
        all.push(push);
        if all.len() % 5 == 4
            && let Some(pull) = pulls.pop()
        {
            all.push(pull);
        }
    }
    all.extend(pulls.into_iter().rev());
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_share_the_work_and_survive_losing_one_mid_run() {
    let Some(database_url) = common::fresh_postgres_database().await else {
        eprintln!("replicas share a PostgreSQL database; skipped on SQLite");
        return;
    };
    let seed: u64 = rand::random();
    eprintln!("replica fleet seed: {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let tools = dir.path().join("tools");
    std::fs::create_dir_all(&tools).unwrap();
    let config_path = dir.path().join("gantry.toml");
    std::fs::write(&config_path, config(&tool_cache_with(&tools, None))).unwrap();
    let last_head = format!("{:040x}", 0x00bb_0000_u64 + PR_EVENTS as u64 - 1);
    let pr_files = ["ws00/main.tf", "ws01/main.tf"];
    let github = fleet::fake_github(&last_head, &pr_files, repository_tarball()).await;
    let env = [
        ("GANTRY_GITHUB_API_URL", github.uri()),
        ("GANTRY_DATABASE_URL", database_url.clone()),
        ("GANTRY_PUBLIC_URL", "https://gantry.test/".to_string()),
        // The fake GitHub has no secondary limit; 300 runs' statuses would take minutes.
        (
            "GANTRY_GITHUB_CONTENT_REQUESTS_PER_MINUTE",
            "100000".to_string(),
        ),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let started = Instant::now();
    let mut replicas: Vec<Option<GantryProcess>> = (0..REPLICAS)
        .map(|n| {
            let data = dir.path().join(format!("replica-{n}"));
            let log = dir.path().join(format!("replica-{n}.log"));
            Some(GantryProcess::start_configured(
                &data,
                &log,
                Some(&config_path),
                &env,
            ))
        })
        .collect();
    let victim = 1;
    let victim_id =
        std::fs::read_to_string(dir.path().join(format!("replica-{victim}/replica-id"))).unwrap();
    let store = Store::open(&database_url.clone().into()).await.unwrap();

    let http = reqwest::Client::new();
    let events = events(&mut rng);
    let total = events.len();
    let mut accepted = Vec::new();
    let mut next = 0;
    let mut killed_during = None;
    for (i, chunk) in events.chunks(4).enumerate() {
        // Halfway, the victim dies as soon as it executes a run.
        if killed_during.is_none() && i * 4 >= total / 2 {
            killed_during = kill_when_executing(&store, &victim_id, &mut replicas[victim]).await;
        }
        let mut sends = Vec::new();
        for event in chunk {
            while replicas[next % REPLICAS].is_none() {
                next += 1;
            }
            let url = replicas[next % REPLICAS].as_ref().unwrap().url.clone();
            next += 1;
            let http = &http;
            sends.push(async move { send(http, &url, event.event, &event.id, &event.body).await });
        }
        let answers = futures::future::join_all(sends).await;
        for (event, status) in chunk.iter().zip(answers) {
            assert_eq!(status, 202, "{}", event.id);
            accepted.push(Accepted {
                id: event.id.clone(),
                push: event.push.clone(),
            });
        }
    }
    let killed_during = killed_during.expect("the victim executed a run and was killed");
    let sent_in = started.elapsed();

    let Some(runs) = fleet::settled(&store, Duration::from_secs(600)).await else {
        let open: Vec<String> = fleet::all_runs(&store)
            .await
            .iter()
            .filter(|r| !r.state.is_final())
            .map(|r| format!("{}:{}", r.id, r.state))
            .collect();
        panic!(
            "not settled: deliveries {:?}, outbox {}, open runs {open:?}",
            store.delivery_counts().await.unwrap(),
            store.outbox_pending().await.unwrap()
        );
    };
    let settled_in = started.elapsed();
    let checked = fleet::check(&store, &github, &accepted, &runs).await;
    let interrupted = store.run(RunId(killed_during.0)).await.unwrap().unwrap();
    assert!(
        interrupted.state.is_final(),
        "the run the dead replica executed was taken over: {interrupted:?}"
    );
    assert!(
        checked.repeated_statuses.is_empty(),
        "posted twice in a row for the same commit and context: {:?} (run {killed_during} was \
         killed)",
        checked.repeated_statuses
    );
    let mut per_replica = Vec::new();
    for run in &runs {
        per_replica.push(store.run_owner(run.id).await.unwrap());
    }
    for replica in replicas.into_iter().flatten() {
        replica.kill();
    }
    eprintln!(
        "{REPLICAS} replicas, one killed during run {killed_during}: {} deliveries accepted, \
         {} runs ({} interrupted), {} statuses checked, 0 repeated; sent in {sent_in:?}, \
         settled in {settled_in:?}",
        accepted.len(),
        runs.len(),
        checked.interrupted,
        checked.statuses
    );
    let owners: std::collections::BTreeMap<String, usize> =
        per_replica
            .into_iter()
            .flatten()
            .fold(Default::default(), |mut m, o| {
                *m.entry(o).or_default() += 1;
                m
            });
    eprintln!("runs per replica: {owners:?}");
    assert!(owners.len() >= 2, "the work was shared: {owners:?}");
}

/// Waits (up to 60 s) until the victim executes a run, then kills it; returns that run.
async fn kill_when_executing(
    store: &Store,
    victim_id: &str,
    victim: &mut Option<GantryProcess>,
) -> Option<RunId> {
    let run = common::wait_until(Duration::from_secs(60), || async {
        for run in fleet::all_runs(store).await {
            if run.state.is_executing()
                && store.run_owner(run.id).await.ok()?.as_deref() == Some(victim_id)
            {
                return Some(run.id);
            }
        }
        None
    })
    .await?;
    victim.take()?.kill();
    Some(run)
}
