//! The scheduler's cost with 10,000 workspaces and 100,000 queued runs (ten per workspace, the
//! first of each planned and waiting for confirmation, so every queue is busy): finding the
//! next runnable run of a workspace whose queue changed (one indexed read of its unfinished runs
//! and its lock, then the pure queue policy), the policy alone, and the sweep that lists every
//! workspace with unfinished runs (at start, and every 30 s).
//!
//! Run: `cargo bench --bench scheduler` (under `cargo test` it runs once on a small data set).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use gantry::core::RunId;
use gantry::core::queue::{QueuedRun, next_to_start};
use gantry::core::run::RunState;
use gantry::store::Store;
use secrecy::SecretString;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

const RUNS_PER_WORKSPACE: i64 = 10;

async fn populate(path: &std::path::Path, workspaces: i64) -> Store {
    let url = format!("sqlite://{}", path.display());
    let store = Store::open(&SecretString::from(url.clone())).await.unwrap();
    let mut conn = url
        .parse::<SqliteConnectOptions>()
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut tx = conn.begin().await.unwrap();
    for ws in 1..=workspaces {
        sqlx::query("INSERT INTO workspaces (id, name, repo) VALUES ($1, $2, 'octo-org/infra')")
            .bind(ws)
            .bind(format!("ws-{ws}"))
            .execute(&mut *tx)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO configuration_versions (id, repo, commit_sha) VALUES ($1, 'octo-org/infra', $2)",
        )
        .bind(ws)
        .bind(format!("{ws:040x}"))
        .execute(&mut *tx)
        .await
        .unwrap();
        for n in 0..RUNS_PER_WORKSPACE {
            let state = if n == 0 { "planned" } else { "pending" };
            sqlx::query(
                "INSERT INTO runs (workspace_id, configuration_version_id, commit_sha, state, source) \
                 VALUES ($1, $1, $2, $3, 'push')",
            )
            .bind(ws)
            .bind(format!("{ws:030x}{n:010x}"))
            .bind(state)
            .execute(&mut *tx)
            .await
            .unwrap();
        }
    }
    tx.commit().await.unwrap();
    sqlx::query("ANALYZE").execute(&mut conn).await.unwrap();
    store
}

fn scheduler(c: &mut Criterion) {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this once, on less data.
    let full = std::env::args().any(|a| a == "--bench");
    let workspaces: i64 = if full { 10_000 } else { 100 };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = runtime.block_on(populate(&dir.path().join("bench.db"), workspaces));
    let queued = runtime
        .block_on(store.workspaces_with_active_runs())
        .unwrap();
    assert_eq!(queued.len() as i64, workspaces);

    let mut group = c.benchmark_group(format!(
        "scheduler_{workspaces}_workspaces_{}_runs",
        workspaces * RUNS_PER_WORKSPACE
    ));
    let mut next = 0usize;
    group.bench_function("next_runnable_of_a_changed_workspace", |b| {
        b.iter(|| {
            next = (next + 7919) % queued.len();
            let ws = queued[next];
            runtime.block_on(async {
                let (runs, locked) = store.workspace_queue(ws).await.unwrap();
                let runs: Vec<QueuedRun> = runs
                    .into_iter()
                    .map(|(id, state)| QueuedRun {
                        id: RunId(id.0),
                        state,
                    })
                    .collect();
                black_box(next_to_start(&runs, locked))
            })
        })
    });
    let queue: Vec<QueuedRun> = (0..RUNS_PER_WORKSPACE)
        .map(|n| QueuedRun {
            id: RunId(n),
            state: if n == 0 {
                RunState::Applied
            } else {
                RunState::Pending
            },
        })
        .collect();
    group.bench_function("queue_policy_alone", |b| {
        b.iter(|| black_box(next_to_start(black_box(&queue), false)))
    });
    group.sample_size(10);
    group.bench_function("sweep_all_workspaces_with_unfinished_runs", |b| {
        b.iter(|| {
            runtime
                .block_on(store.workspaces_with_active_runs())
                .unwrap()
        })
    });
    group.finish();
    runtime.block_on(store.close());
}

criterion_group!(benches, scheduler);
criterion_main!(benches);
