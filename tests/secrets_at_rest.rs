//! Sensitive variables at rest: sealed in the database with a key Gantry keeps outside it (a
//! private file in the private data dir), opened only for the run they are pinned to; with the
//! key lost they are unreadable, and a run that needs them fails saying so, never with a wrong
//! value. (Apart from tests/secrets.rs, which captures every log line of its process.)

mod common;

use common::runs::{Harness, sha};
use gantry::core::RunId;

const SENSITIVE: &str = "s3nsitive-Value-4711";

const WORKSPACE: &str = r#"
[[workspaces]]
name = "prod"
repo = "octo-org/infra"
terraform_version = "1.0.3"
[workspaces.vars]
name = "world"
secret = { value = "s3nsitive-Value-4711", sensitive = true }
[workspaces.env]
TF_VAR_unused = { value = "s3nsitive-Value-4711", sensitive = true }
"#;

/// Every byte of the SQLite database (and its log) on disk; empty on PostgreSQL.
fn database_bytes(h: &Harness) -> Vec<u8> {
    let mut bytes = Vec::new();
    for file in ["gantry.db", "gantry.db-wal"] {
        if let Ok(more) = std::fs::read(h.gantry.data_dir.path().join(file)) {
            bytes.extend(more);
        }
    }
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn sensitive_values_are_encrypted_at_rest_and_reach_their_run() {
    let h = Harness::start(WORKSPACE, None).await;
    h.serve_tarball(&sha(1), "outputs").await;
    let run = h.push(&sha(1)).await;
    h.wait_for(run, "planned").await;
    // The run had the value (Terraform read it; its output is masked) ...
    let log = gantry::core::status::plain_text(&h.log(run, "plan").await);
    assert!(log.contains("***") && log.contains("secret_echo"), "{log}");
    // ... the pinned copy opens with the server's key ...
    let pinned = h.gantry.store.run_variables(RunId(run)).await.unwrap();
    assert!(pinned.iter().any(|v| v.1 == "secret" && v.2 == SENSITIVE));
    // ... and the database holds it only sealed: under another key it cannot be opened (a
    // value stored in clear would read back as it is).
    let elsewhere = tempfile::tempdir().unwrap();
    let other_key = gantry::store::Cipher::load(elsewhere.path(), None).unwrap();
    let wrong = h.gantry.store.clone().with_cipher(other_key);
    let unreadable = wrong
        .run_variables(RunId(run))
        .await
        .unwrap_err()
        .to_string();
    assert!(unreadable.contains("cannot be decrypted"), "{unreadable}");
    assert!(
        !contains(&database_bytes(&h), SENSITIVE),
        "the value is in the database file"
    );
    let data = h.gantry.data_dir.path();
    assert_eq!(mode(&data.join("encryption-key")), 0o600);
    assert_eq!(mode(data), 0o700, "the data dir is private");
}

#[tokio::test]
async fn a_lost_key_makes_sensitive_values_unreadable_not_wrong() {
    let mut h = Harness::start_with(WORKSPACE, |env| {
        env.insert("GANTRY_RUNNER_ENABLED".into(), "false".into());
    })
    .await;
    let run = h.push(&sha(1)).await;
    // The key is lost: the next start makes a new one, and the queued run's pinned values
    // were sealed under the old one.
    std::fs::remove_file(h.gantry.data_dir.path().join("encryption-key")).unwrap();
    let tools = tempfile::tempdir().unwrap().keep();
    let cache = common::runs::tool_cache_with(&tools, None);
    h.gantry
        .restart_with(|env| {
            env.insert("GANTRY_RUNNER_ENABLED".into(), "true".into());
            env.insert(
                "GANTRY_TERRAFORM_TOOL_CACHE".into(),
                cache.display().to_string(),
            );
        })
        .await;
    let errored = h.wait_for(run, "errored").await;
    let reason = errored["error"].as_str().unwrap_or_default();
    assert!(
        reason.contains("cannot be decrypted"),
        "unreadable, and said so: {reason}"
    );
    assert!(!reason.contains(SENSITIVE));
}
