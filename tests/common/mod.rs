//! The integration-test harness: Gantry in-process on a temp SQLite database and a loopback
//! port, a fake GitHub (wiremock, held to GitHub's contract) on loopback, and a small
//! vocabulary to drive them.
#![allow(dead_code)] // each test file uses a different part of the harness

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use gantry::config::Config;
use gantry::store::{Store, StoredDelivery};
use gantry::webhook::signature::sign;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub mod browser;
pub mod fleet;
pub mod github;
pub mod process;
pub mod runs;
pub mod terraform_cli;

pub use github::FakeGitHub;

pub const SECRET: &str = "test-webhook-secret";
pub const APP_ID: u64 = 4242;

pub fn fixture_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(relative)
}

pub fn fixture(relative: &str) -> Vec<u8> {
    std::fs::read(fixture_path(relative)).unwrap_or_else(|e| panic!("fixture {relative}: {e}"))
}

/// The environment a test Gantry starts with; tests add or replace entries.
pub fn base_env(data_dir: &Path, github_url: &str) -> HashMap<String, String> {
    let key = fixture_path("keys/test-app.pem");
    [
        ("GANTRY_DATA_DIR", data_dir.to_str().unwrap()),
        ("GANTRY_LISTEN", "127.0.0.1:0"),
        // What statuses and comments link to.
        ("GANTRY_PUBLIC_URL", "https://gantry.test/"),
        ("GANTRY_WEBHOOK_SECRET", SECRET),
        ("GANTRY_APP_ID", "4242"),
        ("GANTRY_APP_PRIVATE_KEY_PATH", key.to_str().unwrap()),
        ("GANTRY_GITHUB_API_URL", github_url),
        ("GANTRY_GITHUB_WEB_URL", github_url),
        // Runs are executed only by the tests about executing them (tests/runs.rs).
        ("GANTRY_RUNNER_ENABLED", "false"),
        // Gantry runs in-process here: its phases' supervisor is the gantry binary.
        ("GANTRY_RUNNER_SUPERVISOR", env!("CARGO_BIN_EXE_gantry")),
        (
            "GANTRY_RUNNER_SANDBOX_READ_ONLY",
            &runs::sandbox_read_only(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

pub struct TestGantry {
    pub url: String,
    pub data_dir: TempDir,
    pub github: FakeGitHub,
    pub store: Store,
    pub http: reqwest::Client,
    env: HashMap<String, String>,
    config_path: Option<PathBuf>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    /// The clock Gantry schedules assessments by: a test moves it instead of waiting.
    pub clock: gantry::clock::Clock,
}

impl TestGantry {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts Gantry after `adjust` has changed its environment.
    pub async fn start_with(adjust: impl FnOnce(&mut HashMap<String, String>)) -> Self {
        Self::start_configured(None, adjust).await
    }

    /// Starts Gantry with this configuration file text (e.g. `[[workspaces]]` tables).
    pub async fn start_with_config(toml: &str) -> Self {
        Self::start_configured(Some(toml), |_| {}).await
    }

    /// Starts Gantry with an optional configuration file text and `adjust` applied to its
    /// environment.
    pub async fn start_configured(
        toml: Option<&str>,
        adjust: impl FnOnce(&mut HashMap<String, String>),
    ) -> Self {
        let data_dir = tempfile::tempdir().unwrap();
        let github = FakeGitHub::start().await;
        let mut env = base_env(data_dir.path(), &github.uri());
        if let Some(url) = fresh_postgres_database().await {
            env.insert("GANTRY_DATABASE_URL".into(), url);
        }
        adjust(&mut env);
        let config_path = toml.map(|text| {
            let path = data_dir.path().join("gantry.toml");
            std::fs::write(&path, text).unwrap();
            path
        });
        let config = Config::load(config_path.as_deref(), &env).expect("test configuration");
        // The test's own handle opens sensitive values with the key the server will use (the
        // first of the two to load it makes it).
        let cipher =
            gantry::store::Cipher::load(&config.data_dir, config.encryption_key.as_ref()).unwrap();
        let store = Store::open(&config.database_url)
            .await
            .unwrap()
            .with_cipher(cipher);
        let mut gantry = Self {
            url: String::new(),
            data_dir,
            github,
            store,
            http: reqwest::Client::new(),
            env,
            config_path,
            shutdown: None,
            task: None,
            clock: gantry::clock::Clock::system(),
        };
        gantry.launch().await;
        gantry
    }

    async fn launch(&mut self) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        self.url = format!("http://{}", listener.local_addr().unwrap());
        if let Some(cert) = self.env.get("GANTRY_TLS_CERT_PATH").cloned() {
            // HTTPS, as the Terraform CLI needs: its certificate names localhost, which is
            // also the public URL the signed links point at.
            let port = listener.local_addr().unwrap().port();
            self.url = format!("https://localhost:{port}");
            self.env
                .insert("GANTRY_PUBLIC_URL".into(), format!("{}/", self.url));
            let pem = std::fs::read(cert).unwrap();
            self.http = reqwest::Client::builder()
                .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
                .build()
                .unwrap();
        }
        let mut config =
            Config::load(self.config_path.as_deref(), &self.env).expect("test configuration");
        config.clock = self.clock.clone();
        let (tx, rx) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = rx.await;
        };
        self.task = Some(tokio::spawn(gantry::server::serve_on(
            listener, config, shutdown, None,
        )));
        self.shutdown = Some(tx);
        // Started once it answers: by then it has opened its store and written its files.
        let ready = wait_until(Duration::from_secs(10), || async {
            let response = self
                .http
                .get(format!("{}/readyz", self.url))
                .send()
                .await
                .ok()?;
            response.status().is_success().then_some(())
        })
        .await;
        assert!(ready.is_some(), "gantry did not become ready");
    }

    /// Stops Gantry gracefully and starts it again on the same data dir, with `adjust` applied.
    pub async fn restart_with(&mut self, adjust: impl FnOnce(&mut HashMap<String, String>)) {
        self.stop().await;
        adjust(&mut self.env);
        self.launch().await;
    }

    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }

    /// Posts a webhook signed with the test secret, as GitHub would.
    pub async fn send(&self, event: &str, delivery_id: &str, body: &[u8]) -> reqwest::Response {
        self.post_webhook(
            &[
                ("X-GitHub-Event", event),
                ("X-GitHub-Delivery", delivery_id),
                ("X-Hub-Signature-256", &sign(SECRET, body)),
                ("Content-Type", "application/json"),
            ],
            body.to_vec(),
        )
        .await
    }

    /// Posts a webhook with exactly these headers.
    pub async fn post_webhook(&self, headers: &[(&str, &str)], body: Vec<u8>) -> reqwest::Response {
        let mut request = self
            .http
            .post(format!("{}/webhooks/github", self.url))
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("webhook request")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap()
    }

    pub async fn delivery(&self, delivery_id: &str) -> Option<StoredDelivery> {
        self.store.delivery(delivery_id).await.unwrap()
    }

    /// Waits until the delivery has left `pending`, and returns it.
    pub async fn wait_for_outcome(&self, delivery_id: &str) -> StoredDelivery {
        let done = wait_until(Duration::from_secs(10), || async {
            self.delivery(delivery_id)
                .await
                .filter(|d| d.status != "pending")
        })
        .await;
        match done {
            Some(delivery) => delivery,
            None => panic!(
                "delivery {delivery_id} was not processed in time: {:?}",
                self.delivery(delivery_id).await
            ),
        }
    }
}

/// With `GANTRY_TEST_POSTGRES_URL` set (scripts/start-postgres), a new empty database on that
/// server for one test; without it, None (the test uses SQLite in its data dir).
pub async fn fresh_postgres_database() -> Option<String> {
    use sqlx::Connection;
    let admin = std::env::var("GANTRY_TEST_POSTGRES_URL").ok()?;
    let name = format!("gantry_test_{}", hex::encode(rand::random::<[u8; 8]>()));
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .expect("the test PostgreSQL answers");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let (base, _) = admin.rsplit_once('/').unwrap();
    Some(format!("{base}/{name}"))
}

/// Polls `check` until it returns Some or the deadline passes: the way tests wait, never sleeps.
pub async fn wait_until<T, F, Fut>(deadline: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = tokio::time::Instant::now();
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if start.elapsed() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A push payload built from GitHub's own example (`push.5.json`): `branch` of `repo` moved to
/// `after` with one commit touching `files`; `adjust` can change anything else.
pub fn push_payload(
    repo: &str,
    branch: &str,
    after: &str,
    files: &[&str],
    adjust: impl FnOnce(&mut serde_json::Value),
) -> Vec<u8> {
    let mut push: serde_json::Value =
        serde_json::from_slice(&fixture("webhooks/push.5.json")).unwrap();
    push["ref"] = format!("refs/heads/{branch}").into();
    push["after"] = after.into();
    push["before"] = "9999999999999999999999999999999999999999".into();
    push["created"] = false.into();
    push["deleted"] = false.into();
    push["forced"] = false.into();
    push["repository"]["full_name"] = repo.into();
    push["repository"]["default_branch"] = "main".into();
    push["installation"] = serde_json::json!({ "id": 99, "node_id": "x" });
    let commit = &mut push["commits"][0];
    commit["id"] = after.into();
    commit["added"] = serde_json::json!([]);
    commit["removed"] = serde_json::json!([]);
    commit["modified"] = serde_json::json!(files);
    adjust(&mut push);
    serde_json::to_vec(&push).unwrap()
}
