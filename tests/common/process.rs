//! A real `gantry serve` process, for tests that kill it (SIGKILL) and start it again.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use gantry::webhook::signature::sign;

use super::{SECRET, fixture_path};

/// One `gantry serve` process whose log goes to a file.
pub struct GantryProcess {
    child: Child,
    pub url: String,
}

impl GantryProcess {
    pub fn start(data_dir: &Path, log: &Path, extra_env: &[(&str, &str)]) -> Self {
        Self::start_configured(data_dir, log, None, extra_env)
    }

    /// `gantry serve [--config <config>]`, the environment pointing at `data_dir`.
    pub fn start_configured(
        data_dir: &Path,
        log: &Path,
        config: Option<&Path>,
        extra_env: &[(&str, &str)],
    ) -> Self {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let key = fixture_path("keys/test-app.pem");
        let mut command = Command::new(env!("CARGO_BIN_EXE_gantry"));
        command.arg("serve");
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        command
            .env("GANTRY_DATA_DIR", data_dir)
            .env("GANTRY_LISTEN", "127.0.0.1:0")
            .env("GANTRY_WEBHOOK_SECRET", SECRET)
            .env("GANTRY_APP_ID", "4242")
            .env("GANTRY_APP_PRIVATE_KEY_PATH", key)
            .env("GANTRY_GITHUB_API_URL", "http://127.0.0.1:9")
            .env("GANTRY_LOG", "info")
            .env(
                "GANTRY_RUNNER_SANDBOX_READ_ONLY",
                super::runs::sandbox_read_only(),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file);
        for (k, v) in extra_env {
            command.env(k, v);
        }
        let earlier = std::fs::read_to_string(log)
            .unwrap_or_default()
            .matches("gantry listening")
            .count();
        let child = command.spawn().expect("start gantry");
        let url = wait_for_listen_address(log, earlier);
        Self { child, url }
    }

    pub fn kill(mut self) {
        self.child.kill().unwrap(); // SIGKILL: no chance to clean up
        self.child.wait().unwrap();
    }

    /// SIGTERM, as `systemctl stop` sends; returns how long the process took to exit (it is
    /// killed after 30 s).
    pub fn terminate(mut self) -> Duration {
        let started = std::time::Instant::now();
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        while started.elapsed() < Duration::from_secs(30) {
            if self.child.try_wait().unwrap().is_some() {
                return started.elapsed();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        started.elapsed()
    }
}

/// A test that fails half-way must not leave its servers running.
impl Drop for GantryProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for the "gantry listening" line of the process started after `earlier` such lines,
/// and returns its address.
fn wait_for_listen_address(log: &Path, earlier: usize) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut text = String::new();
        std::fs::File::open(log)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        let listening: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("gantry listening"))
            .collect();
        if listening.len() > earlier {
            let address = listening[earlier].split("address=").nth(1).unwrap();
            return format!("http://{}", address.split_whitespace().next().unwrap());
        }
        assert!(
            std::time::Instant::now() < deadline,
            "gantry did not start:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends a signed delivery; the status Gantry answered, or 0 when no answer came (the process
/// was killed meanwhile).
pub async fn send(http: &reqwest::Client, url: &str, event: &str, id: &str, body: &[u8]) -> u16 {
    http.post(format!("{url}/webhooks/github"))
        .header("X-GitHub-Event", event)
        .header("X-GitHub-Delivery", id)
        .header("X-Hub-Signature-256", sign(SECRET, body))
        .header("Content-Type", "application/json")
        .body(body.to_vec())
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}
