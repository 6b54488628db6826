//! The fake GitHub the integration tests run Gantry against: a wiremock server for the API and
//! another for the download host a tarball redirects to (as GitHub's codeload is), each behind a
//! guard that answers a request GitHub would refuse the way GitHub would, and fails the test
//! that sent it. Tests mount their answers on it as on any `MockServer`; the guard comes first.

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::json;
use wiremock::{Match, Mock, MockServer, Request, Respond, ResponseTemplate};

use super::contract::{self, Violation};

pub struct FakeGitHub {
    api: MockServer,
    downloads: MockServer,
    log: Arc<Log>,
}

/// What the guards saw, for the failure message and the suite's report.
#[derive(Default)]
struct Log {
    checked: AtomicUsize,
    operations: Mutex<BTreeSet<&'static str>>,
    violations: Mutex<Vec<Violation>>,
}

#[derive(Clone, Copy)]
enum Host {
    Api,
    Downloads,
}

impl Host {
    fn check(self, request: &Request) -> Result<&'static str, Violation> {
        match self {
            Host::Api => contract::check_api(request).map(|operation| operation.id),
            Host::Downloads => contract::check_download(request).map(|()| "(tarball download)"),
        }
    }
}

impl FakeGitHub {
    pub async fn start() -> Self {
        let fake = Self {
            api: MockServer::start().await,
            downloads: MockServer::start().await,
            log: Arc::default(),
        };
        for (server, host) in [(&fake.api, Host::Api), (&fake.downloads, Host::Downloads)] {
            // Priority 1 is wiremock's highest, and of equal priorities the first mounted wins.
            Mock::given(Guard {
                host,
                log: Arc::clone(&fake.log),
            })
            .respond_with(Refusal(host))
            .with_priority(1)
            .named("GitHub's contract")
            .mount(server)
            .await;
        }
        fake
    }

    /// The download host: what a tarball request redirects to.
    pub fn downloads(&self) -> &MockServer {
        &self.downloads
    }

    /// The violations so far, which then no longer fail the test: for a test about the guard.
    pub fn take_violations(&self) -> Vec<Violation> {
        std::mem::take(&mut *lock(&self.log.violations))
    }
}

impl std::ops::Deref for FakeGitHub {
    type Target = MockServer;

    fn deref(&self) -> &MockServer {
        &self.api
    }
}

impl Drop for FakeGitHub {
    fn drop(&mut self) {
        let checked = self.log.checked.load(Ordering::SeqCst);
        let operations: Vec<_> = lock(&self.log.operations).iter().copied().collect();
        let violations = std::mem::take(&mut *lock(&self.log.violations));
        let test = std::thread::current().name().unwrap_or("?").to_owned();
        eprintln!(
            "fake GitHub ({test}): {checked} requests checked, {} operations, {} violations",
            operations.len(),
            violations.len()
        );
        if let Ok(path) = std::env::var("GANTRY_CONTRACT_REPORT") {
            let line = json!({
                "test": test,
                "checked": checked,
                "operations": operations,
                "violations": violations.iter().map(ToString::to_string).collect::<Vec<_>>(),
            });
            let appended = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .and_then(|mut file| file.write_all(format!("{line}\n").as_bytes()));
            if let Err(error) = appended {
                eprintln!("GANTRY_CONTRACT_REPORT {path}: {error}");
            }
        }
        if !violations.is_empty() && !std::thread::panicking() {
            let list: Vec<_> = violations.iter().map(|v| format!("  {v}")).collect();
            panic!(
                "Gantry sent {} request(s) GitHub would refuse:\n{}",
                violations.len(),
                list.join("\n")
            );
        }
    }
}

/// Matches exactly the requests that break GitHub's contract, recording them; counts every
/// request and the operations the valid ones named.
struct Guard {
    host: Host,
    log: Arc<Log>,
}

impl Match for Guard {
    fn matches(&self, request: &Request) -> bool {
        self.log.checked.fetch_add(1, Ordering::SeqCst);
        match self.host.check(request) {
            Ok(operation) => {
                lock(&self.log.operations).insert(operation);
                false
            }
            Err(violation) => {
                lock(&self.log.violations).push(violation);
                true
            }
        }
    }
}

/// GitHub's answer to a request the guard matched.
struct Refusal(Host);

impl Respond for Refusal {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let Err(violation) = self.0.check(request) else {
            unreachable!("the guard matches only requests that break the contract");
        };
        let message = match violation.status {
            422 => format!("{}\n\n{}", violation.message, violation.errors.join("\n")),
            _ => violation.message.to_owned(),
        };
        ResponseTemplate::new(violation.status).set_body_json(json!({
            "message": message,
            "documentation_url": "https://docs.github.com/rest",
            "status": violation.status.to_string(),
        }))
    }
}

/// The log's locks guard plain data; a test that panicked holding one left it whole.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
