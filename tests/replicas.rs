//! What keeps several Gantry servers on one database from stepping on each other: a
//! workspace never has two runs holding it (checked by the database itself), deliveries are
//! leased to one dispatcher and taken over from a dead one, a dead replica's runs are not
//! applied elsewhere and are errored once it is silent, and a log is followed through any
//! replica. All but the first need PostgreSQL.

mod common;

use common::runs::{Harness, REPO, ROOT_WORKSPACE, sha};
use common::{TestGantry, push_payload};
use gantry::core::RunId;
use gantry::core::run::RunState;
use gantry::store::{Cause, Move};

#[tokio::test]
async fn the_database_refuses_a_second_run_holding_a_workspace() {
    // The runner is off: this test is the two runners, starting runs by hand.
    let h = Harness::start_with(ROOT_WORKSPACE, |env| {
        env.insert("GANTRY_RUNNER_ENABLED".into(), "false".into());
    })
    .await;
    let first = h.push(&sha(1)).await;
    let second = h.push(&sha(2)).await;
    let store = &h.gantry.store;

    assert!(
        store
            .start_queued_run(RunId(first), "replica-a")
            .await
            .unwrap(),
        "replica A starts the first"
    );
    assert!(
        !store
            .start_queued_run(RunId(second), "replica-b")
            .await
            .unwrap(),
        "replica B, deciding from a stale view, is refused by the one-active-run index"
    );
    let second_run = store.run(RunId(second)).await.unwrap().unwrap();
    assert_eq!(second_run.state, RunState::Pending, "it stays queued");

    // Once the first run is finished, the second may start.
    store
        .move_run(&Move::new(
            RunId(first),
            RunState::Fetching,
            RunState::Canceled,
            Cause::Runner,
        ))
        .await
        .unwrap();
    assert!(
        store
            .start_queued_run(RunId(second), "replica-b")
            .await
            .unwrap()
    );
}

/// Replicas share a PostgreSQL database; on SQLite (one server per file) these tests skip.
fn on_postgres() -> bool {
    let shared = std::env::var_os("GANTRY_TEST_POSTGRES_URL").is_some();
    if !shared {
        eprintln!("replicas share a PostgreSQL database; skipped on SQLite (one server per file)");
    }
    shared
}

/// A server for the prod workspace with these settings, on `database` (the first replica:
/// `None`, a fresh database). Returns it with its database URL, for the next replica.
async fn replica(database: Option<&str>, settings: &[(&str, &str)]) -> (TestGantry, String) {
    let mut url = String::new();
    let gantry = TestGantry::start_configured(Some(ROOT_WORKSPACE), |env| {
        for (key, value) in settings {
            env.insert((*key).into(), (*value).into());
        }
        if let Some(database) = database {
            env.insert("GANTRY_DATABASE_URL".into(), database.into());
        }
        url = env["GANTRY_DATABASE_URL"].clone();
    })
    .await;
    (gantry, url)
}

const NO_RUNNER: (&str, &str) = ("GANTRY_RUNNER_ENABLED", "false");

/// Pushes commit `sha(n)` through `gantry`; returns the run it made in prod.
async fn push_run(gantry: &TestGantry, n: u32) -> RunId {
    let body = push_payload(REPO, "main", &sha(n), &["main.tf"], |_| {});
    let delivery = format!("push-{n}");
    assert_eq!(gantry.send("push", &delivery, &body).await.status(), 202);
    gantry.wait_for_outcome(&delivery).await;
    let workspace = gantry.store.workspace_named("prod").await.unwrap().unwrap();
    let runs = gantry.store.workspace_runs(workspace.id).await.unwrap();
    runs.iter()
        .find(|r| r.commit_sha == sha(n))
        .expect("the push made a run")
        .id
}

/// The count of processed pushes a server's `/metrics` reports.
async fn processed_pushes(gantry: &TestGantry) -> u64 {
    let metrics = gantry.get("/metrics").await.text().await.unwrap();
    metrics
        .lines()
        .find(|l| l.starts_with("gantry_deliveries_total{event=\"push\",outcome=\"processed\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0, |n| n.parse().unwrap())
}

#[tokio::test]
async fn two_dispatchers_on_one_postgres_database_process_each_delivery_once() {
    if !on_postgres() {
        return;
    }
    let (a, database) = replica(None, &[NO_RUNNER]).await;
    let (b, _) = replica(Some(&database), &[NO_RUNNER]).await;

    // Pushes to alternate replicas, eight at a time, as GitHub's deliveries might come.
    let ids: Vec<String> = (0..80).map(|n| format!("push-{n}")).collect();
    for chunk in ids.chunks(8) {
        let sends = chunk.iter().enumerate().map(|(i, id)| {
            let n: u32 = id[5..].parse().unwrap();
            let body = common::push_payload(
                common::runs::REPO,
                "main",
                &sha(100 + n),
                &["main.tf"],
                |_| {},
            );
            let target = if i % 2 == 0 { &a } else { &b };
            async move { target.send("push", id, &body).await.status().as_u16() }
        });
        for status in futures::future::join_all(sends).await {
            assert_eq!(status, 202);
        }
    }
    for id in &ids {
        let closed = a.wait_for_outcome(id).await;
        assert_eq!(closed.status, "processed", "{closed:?}");
        assert_eq!(closed.attempts, 1, "{id} closed once");
    }
    let (by_a, by_b) = (processed_pushes(&a).await, processed_pushes(&b).await);
    assert_eq!(
        by_a + by_b,
        ids.len() as u64,
        "each delivery handled by one replica (a: {by_a}, b: {by_b})"
    );
}

#[tokio::test]
async fn deliveries_leased_by_a_replica_that_died_are_taken_over_when_the_lease_expires() {
    if !on_postgres() {
        return;
    }
    // An ingest-only replica stores the deliveries.
    let ingest_only = [("GANTRY_DISPATCHER_ENABLED", "false"), NO_RUNNER];
    let (ingest, database) = replica(None, &ingest_only).await;
    let ids: Vec<String> = (0..5).map(|n| format!("leased-{n}")).collect();
    for (n, id) in ids.iter().enumerate() {
        let body = push_payload(REPO, "main", &sha(200 + n as u32), &["main.tf"], |_| {});
        assert_eq!(ingest.send("push", id, &body).await.status(), 202);
    }
    // A replica takes them and dies holding a lease of 2 s.
    let taken = ingest
        .store
        .claim_deliveries("replica-that-died", 64, 2000)
        .await
        .unwrap();
    assert_eq!(taken.len(), ids.len());
    let leased_at = std::time::Instant::now();

    let (survivor, _) = replica(Some(&database), &[NO_RUNNER]).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    if leased_at.elapsed() < std::time::Duration::from_millis(1500) {
        let first = survivor.delivery(&ids[0]).await.unwrap();
        assert_eq!(first.status, "pending", "a live lease is respected");
    }
    for id in &ids {
        let closed = survivor.wait_for_outcome(id).await;
        assert_eq!(closed.status, "processed", "{closed:?}");
        assert_eq!(closed.attempts, 1);
    }
    assert!(
        leased_at.elapsed() >= std::time::Duration::from_secs(2),
        "taken over after expiry"
    );
    assert_eq!(processed_pushes(&survivor).await, ids.len() as u64);
}

#[tokio::test]
async fn a_dead_replicas_confirmed_run_is_not_applied_elsewhere_and_is_errored_after_its_heartbeats_stop()
 {
    if !on_postgres() {
        return;
    }
    // A replica without a runner takes the push; the run it makes is then "planned and
    // confirmed" by a replica that dies at once (the test stands in for it).
    let (front, database) = replica(None, &[NO_RUNNER]).await;
    let run = push_run(&front, 300).await;
    let store = &front.store;
    assert!(
        store
            .start_queued_run(RunId(run.0), "replica-that-died")
            .await
            .unwrap()
    );
    for (from, to) in [
        (RunState::Fetching, RunState::Planning),
        (RunState::Planning, RunState::Planned),
        (RunState::Planned, RunState::Confirmed),
    ] {
        assert!(
            store
                .move_run(&Move::new(RunId(run.0), from, to, Cause::Runner))
                .await
                .unwrap()
        );
    }
    let orphaned_at = std::time::Instant::now();

    // A replica with a runner starts: the plan file is on the dead replica's disk, so it must
    // not apply the run; once the dead replica's heartbeats are stale it errors the run.
    let (_survivor, _) = replica(Some(&database), &[("GANTRY_RUNNER_ENABLED", "true")]).await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let state = |run: gantry::store::RunDetail| run.state;
    assert_eq!(
        state(store.run(RunId(run.0)).await.unwrap().unwrap()),
        RunState::Confirmed,
        "another replica's confirmed run is left to it"
    );
    let errored = common::wait_until(std::time::Duration::from_secs(60), || async {
        let detail = store.run(RunId(run.0)).await.ok()??;
        (detail.state == RunState::Errored).then_some(detail)
    })
    .await
    .expect("the orphaned run was errored");
    assert!(
        orphaned_at.elapsed() >= gantry::engine::runner::STALE_AFTER,
        "not before its heartbeats were stale"
    );
    assert!(
        errored
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("stopped"),
        "{errored:?}"
    );
    let events = store.run_events(RunId(run.0)).await.unwrap();
    assert!(
        events.iter().all(|(state, _)| state != "applying"),
        "never applied: {events:?}"
    );
}

#[tokio::test]
async fn a_log_written_by_one_replica_is_followed_live_through_another() {
    if !on_postgres() {
        return;
    }
    use futures::StreamExt;
    use gantry::web::api::auth::{new_token, token_hash};

    let (a, database) = replica(None, &[NO_RUNNER]).await;
    let (b, _) = replica(Some(&database), &[NO_RUNNER]).await;
    let token = new_token();
    a.store
        .create_api_token("reader", "read", &token_hash(&token))
        .await
        .unwrap();
    let run = push_run(&a, 400).await;
    // Replica A "executes" the run: it is planning and A writes its log.
    assert!(
        a.store
            .start_queued_run(RunId(run.0), "replica-a")
            .await
            .unwrap()
    );
    a.store
        .move_run(&Move::new(
            RunId(run.0),
            RunState::Fetching,
            RunState::Planning,
            Cause::Runner,
        ))
        .await
        .unwrap();
    a.store
        .append_log(
            RunId(run.0),
            "plan",
            &["Initializing the backend...\n".into()],
        )
        .await
        .unwrap();

    // A client follows the log through replica B.
    let response = b
        .http
        .get(format!("{}/api/v1/runs/{run}/logs/plan/stream", b.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut events = response.bytes_stream();
    let mut seen = String::new();
    let mut read_until = async |needle: &str| {
        let deadline = std::time::Duration::from_secs(10);
        tokio::time::timeout(deadline, async {
            while !seen.contains(needle) {
                let chunk = events.next().await.expect("stream open").unwrap();
                seen.push_str(&String::from_utf8_lossy(&chunk));
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{needle:?} never came through B:\n{seen}"));
    };
    read_until("Initializing the backend").await;
    // Written on A after the client connected to B: it arrives live.
    a.store
        .append_log(
            RunId(run.0),
            "plan",
            &["Plan: 0 to add, 0 to change, 0 to destroy.\n".into()],
        )
        .await
        .unwrap();
    read_until("Plan: 0 to add").await;
    a.store
        .move_run(
            &Move::new(
                RunId(run.0),
                RunState::Planning,
                RunState::Errored,
                Cause::Runner,
            )
            .because("stopped by the test"),
        )
        .await
        .unwrap();
    read_until("event: end").await;
}

#[tokio::test]
async fn deliveries_stored_by_one_replica_wake_another_replicas_dispatcher_at_once() {
    if !on_postgres() {
        return;
    }
    let ingest_only = [("GANTRY_DISPATCHER_ENABLED", "false"), NO_RUNNER];
    let (front, database) = replica(None, &ingest_only).await;
    let (dispatcher, _) = replica(Some(&database), &[NO_RUNNER]).await;
    // Let the dispatcher go idle: without a wake-up it looks again only every 2 s.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    for n in 0..5u32 {
        let body = push_payload(REPO, "main", &sha(500 + n), &["main.tf"], |_| {});
        let id = format!("woken-{n}");
        assert_eq!(front.send("push", &id, &body).await.status(), 202);
        let sent = std::time::Instant::now();
        let closed = common::wait_until(std::time::Duration::from_secs(5), || async {
            let d = dispatcher.delivery(&id).await?;
            (d.status != "pending").then_some(())
        })
        .await;
        assert!(closed.is_some(), "{id} processed");
        assert!(
            sent.elapsed() < std::time::Duration::from_secs(1),
            "{id} waited {:?} for the other replica's poll",
            sent.elapsed()
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn runs_made_by_one_replica_wake_another_replicas_runner_at_once() {
    if !on_postgres() {
        return;
    }
    let (front, database) = replica(None, &[NO_RUNNER]).await;
    // The runner replica does not dispatch: only an announcement can tell it about the run
    // before its next sweep (every 30 s).
    let tools = tempfile::tempdir().unwrap().keep();
    let cache = common::runs::tool_cache_with(&tools, None);
    let runner = Harness::start_with(ROOT_WORKSPACE, |env| {
        env.insert("GANTRY_DISPATCHER_ENABLED".into(), "false".into());
        env.insert("GANTRY_DATABASE_URL".into(), database.clone());
        env.insert(
            "GANTRY_TERRAFORM_TOOL_CACHE".into(),
            cache.display().to_string(),
        );
    })
    .await;
    runner.serve_tarball(&sha(600), "outputs").await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await; // past its first sweep
    let run = push_run(&front, 600).await;
    let started = common::wait_until(std::time::Duration::from_secs(10), || async {
        let detail = front.store.run(RunId(run.0)).await.ok()??;
        (detail.state != RunState::Pending).then_some(detail.state)
    })
    .await;
    assert!(
        started.is_some(),
        "the other replica's runner started the run at once"
    );
    let done = runner.wait_for(run.0, "planned").await;
    assert_eq!(done["state"], "planned");
}

#[tokio::test]
async fn a_starting_replica_leaves_the_rows_another_replica_is_sending() {
    if !on_postgres() {
        return;
    }
    let (sender, database) = replica(None, &[NO_RUNNER]).await;
    // GitHub is slow to answer this replica: its rows stay `sending` for a while.
    let slow = std::time::Duration::from_secs(4);
    sender.github.slow_statuses(slow);
    sender.github.fail(
        "checks/create",
        [common::github::Fault::SlowAfterDoing(slow)],
    );
    push_run(&sender, 700).await;
    let in_flight = common::wait_until(std::time::Duration::from_secs(5), || async {
        (sender.github.answered("repos/create-commit-status") > 0).then_some(())
    })
    .await;
    assert!(in_flight.is_some(), "the status is on its way");

    // Another replica starts meanwhile (and puts back rows left `sending` by a crash).
    let (other, _) = replica(Some(&database), &[NO_RUNNER]).await;
    common::wait_until(std::time::Duration::from_secs(15), || async {
        (sender.store.outbox_pending().await.ok()? == 0).then_some(())
    })
    .await
    .expect("the outbox drained");
    async fn posts(github: &common::FakeGitHub) -> usize {
        let requests = github.received_requests().await.unwrap_or_default();
        requests
            .iter()
            .filter(|r| r.method.as_str() != "GET" && !r.url.path().contains("access_tokens"))
            .count()
    }
    assert_eq!(
        posts(&other.github).await,
        0,
        "the starting replica sent nothing another replica was sending"
    );
    assert_eq!(posts(&sender.github).await, 2);
}
