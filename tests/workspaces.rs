//! Workspaces from the configuration reach the store at start and again on SIGHUP; one that
//! leaves the configuration is archived (its runs will survive), never deleted.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use gantry::config::Config;
use gantry::core::workspace::{VariableCategory, VariableValue};
use gantry::store::Store;

fn config_file(dir: &Path, body: &str) -> std::path::PathBuf {
    let path = dir.join("gantry.toml");
    let text = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n{body}",
        dir.join("data").display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

const PROD_AND_STAGING: &str = r#"
[[workspaces]]
name = "prod"
repo = "octo-org/infra"
working_directory = "envs/prod"
auto_apply = true
[workspaces.vars]
region = "eu-west-1"
token = { value = "s3cret", sensitive = true }

[[workspaces]]
name = "staging"
repo = "octo-org/infra"
"#;

const STAGING_AND_DEV: &str = r#"
[[workspaces]]
name = "staging"
repo = "octo-org/infra"
branch = "develop"

[[workspaces]]
name = "dev"
repo = "octo-org/sandbox"
"#;

async fn open_store(path: &Path) -> (Config, Store) {
    let config = Config::load(Some(path), &HashMap::new()).unwrap();
    let cipher = gantry::store::Cipher::load(&config.data_dir, None).unwrap();
    let store = Store::open(&config.database_url)
        .await
        .unwrap()
        .with_cipher(cipher);
    (config, store)
}

#[tokio::test]
async fn a_sync_creates_updates_and_archives_configured_workspaces() {
    let dir = tempfile::tempdir().unwrap();
    let (config, store) = open_store(&config_file(dir.path(), PROD_AND_STAGING)).await;
    store
        .sync_config_workspaces(&config.workspaces)
        .await
        .unwrap();
    let stored = store.workspaces().await.unwrap();
    let names: Vec<&str> = stored.iter().map(|w| w.spec.name.as_str()).collect();
    assert_eq!(names, ["prod", "staging"]);
    let prod = &stored[0].spec;
    assert!(prod.auto_apply);
    assert_eq!(prod.working_directory, "envs/prod");
    let token = &prod.variables[&(VariableCategory::Terraform, "token".to_string())];
    assert!(token.sensitive);

    let changed = Config::load(
        Some(&config_file(dir.path(), STAGING_AND_DEV)),
        &HashMap::new(),
    )
    .unwrap();
    let report = store
        .sync_config_workspaces(&changed.workspaces)
        .await
        .unwrap();
    assert_eq!(report.archived, 1);
    let stored = store.workspaces().await.unwrap();
    let by_name = |n: &str| stored.iter().find(|w| w.spec.name.as_str() == n).unwrap();
    assert!(by_name("prod").archived, "kept, archived");
    assert!(
        by_name("prod").spec.variables.len() == 2,
        "its variables kept too"
    );
    assert_eq!(by_name("staging").spec.branch.as_deref(), Some("develop"));
    assert!(!by_name("dev").archived);

    let infra = store.workspaces_for_repo("octo-org/infra").await.unwrap();
    let names: Vec<&str> = infra.iter().map(|w| w.spec.name.as_str()).collect();
    assert_eq!(names, ["staging"], "archived workspaces trigger nothing");
}

#[tokio::test]
async fn the_file_cannot_take_over_a_workspace_made_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let (config, store) = open_store(&config_file(dir.path(), PROD_AND_STAGING)).await;
    let mut spec = config.workspaces[0].clone();
    spec.variables.clear();
    let id = store.create_workspace(&spec).await.unwrap();
    let secret = VariableValue {
        value: "set-through-the-api".into(),
        sensitive: true,
    };
    store
        .set_variable(id, VariableCategory::Terraform, "db_password", &secret)
        .await
        .unwrap();

    let error = store
        .sync_config_workspaces(&config.workspaces)
        .await
        .unwrap_err();
    assert!(
        format!("{error:#}").contains("workspace prod was made through the API"),
        "{error:#}"
    );
    let prod = store.workspace(id).await.unwrap().unwrap();
    assert!(!prod.from_config, "still the API's");
    assert_eq!(
        prod.spec.variables[&(VariableCategory::Terraform, "db_password".to_string())].value,
        "set-through-the-api"
    );
    assert!(
        store.workspace_named("staging").await.unwrap().is_none(),
        "nothing of the refused sync stays"
    );
}

#[tokio::test]
async fn sighup_reloads_the_workspaces_and_a_broken_file_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = config_file(dir.path(), PROD_AND_STAGING);
    let mut child = Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args(["serve", "--config"])
        .arg(&path)
        .env("GANTRY_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines_tx.send(line);
        }
    });
    let wait_for_line = |needle: &str| loop {
        let line = lines
            .recv_timeout(Duration::from_secs(20))
            .expect("gantry log line");
        if line.contains(needle) {
            return;
        }
    };
    wait_for_line("gantry listening");
    let (_, store) = open_store(&path).await;
    let hup = |pid: u32| {
        assert!(
            Command::new("kill")
                .args(["-HUP", &pid.to_string()])
                .status()
                .unwrap()
                .success()
        )
    };

    config_file(dir.path(), STAGING_AND_DEV);
    hup(child.id());
    wait_for_line("configuration reloaded");
    let active = |store: Store| async move {
        let all = store.workspaces().await.unwrap();
        let mut names: Vec<String> = all
            .iter()
            .filter(|w| !w.archived)
            .map(|w| w.spec.name.to_string())
            .collect();
        names.sort();
        names
    };
    assert_eq!(active(store.clone()).await, ["dev", "staging"]);

    // A broken file is refused; the workspaces stay as they were.
    std::fs::write(
        &path,
        "[[workspaces]]\nname = \"bad name\"\nrepo = \"o/r\"\n",
    )
    .unwrap();
    hup(child.id());
    wait_for_line("configuration not reloaded");
    assert_eq!(active(store.clone()).await, ["dev", "staging"]);

    child.kill().unwrap();
    child.wait().unwrap();
}
