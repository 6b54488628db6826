//! What keeps several Gantry servers on one database from stepping on each other, checked
//! at the database: a workspace never has two runs holding it, even when two runners (two
//! replicas) each decide to start one of its queued runs.

mod common;

use common::runs::{Harness, ROOT_WORKSPACE, sha};
use gantry::core::run::RunState;

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
        store.start_queued_run(first).await.unwrap(),
        "replica A starts the first"
    );
    assert!(
        !store.start_queued_run(second).await.unwrap(),
        "replica B, deciding from a stale view, is refused by the one-active-run index"
    );
    let second_run = store.run(second).await.unwrap().unwrap();
    assert_eq!(second_run.state, RunState::Pending, "it stays queued");

    // Once the first run is finished, the second may start.
    store
        .transition_run(first, RunState::Fetching, RunState::Canceled, None)
        .await
        .unwrap();
    assert!(store.start_queued_run(second).await.unwrap());
}
