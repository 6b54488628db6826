//! Kills the real `gantry` process with SIGKILL while deliveries are stored but not yet
//! processed, restarts it on the same data dir, and checks that every accepted delivery is
//! processed exactly once: none lost, none twice.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::process::{GantryProcess, send};
use common::{fixture, wait_until};
use gantry::config::Config;
use gantry::store::Store;

async fn open_store(data_dir: &Path) -> Store {
    let env: HashMap<String, String> = [(
        "GANTRY_DATA_DIR".to_string(),
        data_dir.to_str().unwrap().to_string(),
    )]
    .into();
    Store::open(&Config::load(None, &env).unwrap().database_url)
        .await
        .unwrap()
}

/// How many times the log says a delivery was closed (processed, ignored or failed).
fn times_closed(log_text: &str, id: &str) -> usize {
    let needle = format!("delivery_id={id} ");
    log_text
        .lines()
        .filter(|l| l.contains(&needle))
        .filter(|l| {
            l.contains("delivery processed")
                || l.contains("delivery ignored")
                || l.contains("delivery failed")
        })
        .count()
}

/// The log's text once it says each of `ids` was closed (at most 10 s after the store did).
async fn logged_closing_every(log: &std::path::Path, ids: &[String]) -> String {
    let logged = wait_until(Duration::from_secs(10), || async {
        let text = std::fs::read_to_string(log).ok()?;
        ids.iter()
            .all(|id| times_closed(&text, id) >= 1)
            .then_some(text)
    })
    .await;
    logged.unwrap_or_else(|| std::fs::read_to_string(log).unwrap())
}

async fn wait_all_closed(store: &Store, ids: &[String]) {
    let done = wait_until(Duration::from_secs(60), || async {
        let counts = store.delivery_counts().await.unwrap();
        let pending = counts
            .iter()
            .find(|(s, _)| s == "pending")
            .map_or(0, |c| c.1);
        (pending == 0).then_some(())
    })
    .await;
    assert!(done.is_some(), "deliveries still pending after the restart");
    for id in ids {
        let d = store
            .delivery(id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{id} lost"));
        assert_ne!(d.status, "pending", "{id}");
        assert_eq!(d.attempts, 1, "{id} processed more than once");
    }
}

fn payloads() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("push", fixture("webhooks/push.json")),
        (
            "installation",
            fixture("webhooks/installation.created.json"),
        ),
        ("pull_request", fixture("webhooks/pull_request.opened.json")),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_stored_before_a_sigkill_are_processed_once_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let log: PathBuf = dir.path().join("gantry.log");
    let data = dir.path().join("data");
    // Ingest only, so that every delivery is certainly stored and not processed at the kill.
    let first = GantryProcess::start(&data, &log, &[("GANTRY_DISPATCHER_ENABLED", "false")]);
    let http = reqwest::Client::new();
    let payloads = payloads();
    let mut ids = Vec::new();
    for i in 0..60 {
        let (event, body) = &payloads[i % payloads.len()];
        let id = format!("stored-{i:03}");
        assert_eq!(send(&http, &first.url, event, &id, body).await, 202);
        ids.push(id);
    }
    first.kill();
    let store = open_store(&data).await;
    let counts = store.delivery_counts().await.unwrap();
    assert_eq!(counts, vec![("pending".to_string(), 60)]);

    let second = GantryProcess::start(&data, &log, &[]);
    wait_all_closed(&store, &ids).await;
    // The log line follows the commit that closed the delivery: read the log once every
    // delivery's line is in it.
    let text = logged_closing_every(&log, &ids).await;
    for id in &ids {
        assert_eq!(times_closed(&text, id), 1, "{id}");
    }
    second.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_during_processing_loses_nothing_and_repeats_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log: PathBuf = dir.path().join("gantry.log");
    let data = dir.path().join("data");
    let first = GantryProcess::start(&data, &log, &[]);
    let http = reqwest::Client::new();
    let payloads = payloads();
    let ids: Vec<String> = (0..600).map(|i| format!("racing-{i:04}")).collect();
    // Eight at a time, as GitHub might; kill the moment the last one is accepted, while the
    // dispatcher is still working through the backlog.
    for chunk in ids.chunks(8) {
        let sends = chunk.iter().enumerate().map(|(i, id)| {
            let (event, body) = &payloads[i % payloads.len()];
            send(&http, &first.url, event, id, body)
        });
        for status in futures::future::join_all(sends).await {
            assert_eq!(status, 202);
        }
    }
    first.kill();
    let store = open_store(&data).await;
    let pending_at_kill = store
        .delivery_counts()
        .await
        .unwrap()
        .into_iter()
        .find(|(s, _)| s == "pending")
        .map_or(0, |c| c.1);

    let second = GantryProcess::start(&data, &log, &[]);
    wait_all_closed(&store, &ids).await;
    // The store closed each exactly once (attempts = 1, checked above). The log may miss the
    // batch (at most 64) whose commit landed just before the kill, but never shows one closed
    // twice.
    let closings = |text: &str| ids.iter().map(|id| times_closed(text, id)).sum::<usize>();
    // The log lines follow the commits: read the log once they are in.
    let text = wait_until(Duration::from_secs(10), || async {
        let text = std::fs::read_to_string(&log).ok()?;
        (closings(&text) >= ids.len() - 64).then_some(text)
    })
    .await
    .unwrap_or_else(|| std::fs::read_to_string(&log).unwrap());
    let logged = closings(&text);
    for id in &ids {
        assert!(times_closed(&text, id) <= 1, "{id} processed twice");
    }
    assert!(logged >= ids.len() - 64, "only {logged} closings logged");
    second.kill();
    eprintln!("{pending_at_kill} of 600 deliveries were still pending at the kill");
}
