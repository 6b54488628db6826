//! The fake GitHub the integration tests run Gantry against: a wiremock server for the API and
//! another for the download host a tarball redirects to (as GitHub's codeload is). On each, a
//! guard comes first: it answers a request GitHub would refuse the way GitHub would, and fails
//! the test that sent it ([`contract`]). Every other request is answered by one stateful model
//! of GitHub ([`world`]); tests set it up and read it back through the verbs here, and ask it
//! to misbehave with [`Fault`]s.

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::json;
use wiremock::{Match, Mock, MockServer, Request, Respond, ResponseTemplate};

pub mod contract;
mod verbs;
pub mod world;

use contract::Violation;
use world::{Call, World};
pub use world::{CheckRun, Comment, Fault, HookDelivery, PullRequest, Status};

pub struct FakeGitHub {
    api: MockServer,
    downloads: MockServer,
    log: Arc<Log>,
    world: Arc<Mutex<World>>,
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
            world: Arc::default(),
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
        // The lowest priority: a test's own mount (a custom answer) comes before the model.
        Mock::given(wiremock::matchers::any())
            .respond_with(Model {
                world: Arc::clone(&fake.world),
                downloads_base: fake.downloads.uri(),
            })
            .with_priority(u8::MAX)
            .named("the fake GitHub's model")
            .mount(&fake.api)
            .await;
        Mock::given(wiremock::matchers::any())
            .respond_with(Downloads(Arc::clone(&fake.world)))
            .with_priority(u8::MAX)
            .named("the download host")
            .mount(&fake.downloads)
            .await;
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

/// Answers each request the guard let through from the world.
struct Model {
    world: Arc<Mutex<World>>,
    downloads_base: String,
}

impl Respond for Model {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let Ok(operation) = contract::check_api(request) else {
            unreachable!("the guard answers every request that breaks the contract");
        };
        let call = Call::new(operation, request, self.downloads_base.clone());
        lock(&self.world).respond(&call)
    }
}

/// Serves the tarballs the world holds; the guard checked the request.
struct Downloads(Arc<Mutex<World>>);

impl Respond for Downloads {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        match lock(&self.0).download(request.url.path()) {
            Some(bytes) => ResponseTemplate::new(200)
                .insert_header("content-type", "application/x-gzip")
                .set_body_bytes(bytes),
            None => ResponseTemplate::new(404).set_body_string("Not Found"),
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
