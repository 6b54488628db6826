use std::time::Duration;

use secrecy::SecretString;

use crate::core::RunId;
use crate::core::run::RunState;
use crate::store::runs::move_run;
use crate::store::{BeginWrite, Cause, Move, Store, on_pool};

/// SQLite in `dir`; PostgreSQL (a fresh database) when the test script started one.
async fn open(dir: &tempfile::TempDir) -> Store {
    let url = match std::env::var("GANTRY_TEST_POSTGRES_URL") {
        Ok(admin) => {
            use sqlx::Connection;
            let name = format!("gantry_unit_{}", hex::encode(rand::random::<[u8; 8]>()));
            let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await
                .unwrap();
            format!("{}/{name}", admin.rsplit_once('/').unwrap().0)
        }
        Err(_) => format!("sqlite:{}", dir.path().join("gantry.db").display()),
    };
    Store::open(&SecretString::from(url)).await.unwrap()
}

/// A pending push run of a commit on GitHub; returns its id.
async fn run(store: &Store) -> i64 {
    on_pool!(store, pool => {
        sqlx::query("INSERT INTO workspaces (name, repo) VALUES ('prod', 'o/r')")
            .execute(pool)
            .await
            .unwrap();
        sqlx::query("INSERT INTO configuration_versions (repo, commit_sha) VALUES ('o/r', 'c')")
            .execute(pool)
            .await
            .unwrap();
        sqlx::query_scalar(
            "INSERT INTO runs (workspace_id, configuration_version_id, commit_sha, source) \
             SELECT w.id, c.id, 'c', 'push' FROM workspaces w, configuration_versions c \
             RETURNING id",
        )
        .fetch_one(pool)
        .await
        .unwrap()
    })
}

#[tokio::test]
async fn a_row_claimed_while_a_change_it_covers_commits_is_sent_after_the_change() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let run_id = run(&store).await;
    assert!(
        store
            .move_run(&Move::new(
                RunId(run_id),
                RunState::Pending,
                RunState::Fetching,
                Cause::Runner
            ))
            .await
            .unwrap()
    );
    // The next change is being committed: its feedback is covered by the pending row.
    let changing = on_pool!(store, pool => {
        let mut tx = pool.begin_write().await.unwrap();
        let planning = Move::new(RunId(run_id), RunState::Fetching, RunState::Planning, Cause::Runner);
        assert!(move_run((&mut *tx).into(), &planning).await.unwrap());
        let (commit, committed) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = committed.await;
            tx.commit().await.unwrap();
        });
        commit
    });
    // The outbox worker claims the row meanwhile and reads the run to send it.
    let sender = {
        let store = store.clone();
        tokio::spawn(async move {
            let claimed = store.claim_outbox(10, 0).await.unwrap();
            let sent_state = store.run(RunId(run_id)).await.unwrap().unwrap().state;
            (claimed.len(), sent_state)
        })
    };
    // Time for the claim to reach the row while the change is open (it takes milliseconds;
    // a claim slower than this could only make the test pass without proving anything).
    tokio::time::sleep(Duration::from_millis(300)).await;
    changing.send(()).unwrap();
    let (claimed, sent_state) = sender.await.unwrap();
    assert_eq!(claimed, 2, "the run's status and check rows");
    assert_eq!(
        sent_state,
        RunState::Planning,
        "the claim waited for the change it covers"
    );
}
