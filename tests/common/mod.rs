//! The integration-test harness: Gantry in-process on a temp SQLite database and a loopback
//! port, a fake GitHub (wiremock) on loopback, and a small vocabulary to drive them.
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
use wiremock::MockServer;

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
        ("GANTRY_WEBHOOK_SECRET", SECRET),
        ("GANTRY_APP_ID", "4242"),
        ("GANTRY_APP_PRIVATE_KEY_PATH", key.to_str().unwrap()),
        ("GANTRY_GITHUB_API_URL", github_url),
        ("GANTRY_GITHUB_WEB_URL", github_url),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

pub struct TestGantry {
    pub url: String,
    pub data_dir: TempDir,
    pub github: MockServer,
    pub store: Store,
    pub http: reqwest::Client,
    env: HashMap<String, String>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestGantry {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts Gantry after `adjust` has changed its environment.
    pub async fn start_with(adjust: impl FnOnce(&mut HashMap<String, String>)) -> Self {
        let data_dir = tempfile::tempdir().unwrap();
        let github = MockServer::start().await;
        let mut env = base_env(data_dir.path(), &github.uri());
        adjust(&mut env);
        let config = Config::load(None, &env).expect("test configuration");
        let store = Store::open(&config.database_url).await.unwrap();
        let mut gantry = Self {
            url: String::new(),
            data_dir,
            github,
            store,
            http: reqwest::Client::new(),
            env,
            shutdown: None,
            task: None,
        };
        gantry.launch().await;
        gantry
    }

    async fn launch(&mut self) {
        let config = Config::load(None, &self.env).expect("test configuration");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        self.url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = rx.await;
        };
        self.task = Some(tokio::spawn(gantry::server::serve_on(
            listener, config, shutdown,
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
        wait_until(Duration::from_secs(10), || async {
            self.delivery(delivery_id)
                .await
                .filter(|d| d.status != "pending")
        })
        .await
        .unwrap_or_else(|| panic!("delivery {delivery_id} was not processed in time"))
    }
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
