//! What the fake GitHub knows and does: installations and the tokens it issued, repositories
//! (commits' tarballs, comparisons, pull requests and their files, collaborators' permissions,
//! commit statuses, check runs, issue comments and reactions), the App's webhook deliveries and
//! the redeliveries asked for, and the faults a test asked it to serve. Each request the
//! contract let through is answered here, by its operation id, as GitHub would answer it; lists
//! page (`per_page`, `page` or `cursor`) with `Link` headers.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::{Value, json};
use wiremock::{Request, ResponseTemplate};

use super::contract::Operation;

/// The App every test Gantry runs as.
pub const APP_ID: u64 = 4242;
/// The installation the tests' payloads name.
pub const INSTALLATION: u64 = 99;
/// A request that reaches GitHub this soon after a rate limit was answered was on its way
/// before Gantry could read the answer: it does not count as early.
const IN_FLIGHT: Duration = Duration::from_millis(250);
/// GitHub's longest page.
const MAX_PER_PAGE: usize = 100;
/// GitHub lists at most this many files of a pull request.
const MAX_PULL_REQUEST_FILES: usize = 3000;

/// A pull request as GitHub holds it.
#[derive(Clone, Debug)]
pub struct PullRequest {
    pub head_sha: String,
    pub head_ref: String,
    /// Where the head lives: the repository itself, or a fork's full name.
    pub head_repo: String,
    pub base_ref: String,
    pub base_sha: String,
    pub state: &'static str,
    pub merged: bool,
    /// The commit GitHub merged it as, once merged.
    pub merge_commit_sha: Option<String>,
    /// The login that opened it.
    pub author: String,
    pub files: Vec<String>,
}

impl PullRequest {
    /// An open pull request from `feature` of the repository itself into `main`.
    pub fn open(head_sha: &str, files: &[&str]) -> Self {
        Self {
            head_sha: head_sha.to_owned(),
            head_ref: "feature".to_owned(),
            head_repo: String::new(),
            base_ref: "main".to_owned(),
            base_sha: "9".repeat(40),
            state: "open",
            merged: false,
            merge_commit_sha: None,
            author: "octocat".to_owned(),
            files: files.iter().map(|f| (*f).to_owned()).collect(),
        }
    }

    /// The head lives in the fork `repo` (`owner/name`).
    pub fn with_head_in_fork(self, repo: &str) -> Self {
        Self {
            head_repo: repo.to_owned(),
            ..self
        }
    }
}

/// A check run, as its last write left it, with every write that made it.
#[derive(Clone, Debug)]
pub struct CheckRun {
    pub id: i64,
    pub repo: String,
    pub name: String,
    pub head_sha: String,
    pub status: String,
    pub conclusion: Option<String>,
    pub title: String,
    pub summary: String,
    pub external_id: Option<String>,
    pub details_url: Option<String>,
    /// The bodies of the create and of every update, in order.
    pub writes: Vec<Value>,
}

/// An issue comment.
#[derive(Clone, Debug)]
pub struct Comment {
    pub id: i64,
    pub repo: String,
    pub issue: u64,
    pub body: String,
    pub author: String,
    /// Written through the App (its own comments), not by a person.
    pub by_app: bool,
    pub edits: usize,
}

/// An issue (not a pull request) as GitHub keeps it.
#[derive(Clone, Debug, PartialEq)]
pub struct Issue {
    pub repo: String,
    pub number: u64,
    pub title: String,
    pub body: String,
    /// `open` or `closed`.
    pub state: String,
    /// Times it was changed after it was opened.
    pub edits: usize,
}

/// A commit status as GitHub keeps it.
#[derive(Clone, Debug, PartialEq)]
pub struct Status {
    pub repo: String,
    pub sha: String,
    pub context: String,
    pub state: String,
    pub description: String,
    pub target_url: Option<String>,
}

/// One of the App's webhook deliveries, as `GET /app/hook/deliveries` lists it.
#[derive(Clone, Debug)]
pub struct HookDelivery {
    pub id: i64,
    pub guid: String,
    pub event: String,
    pub action: Option<String>,
    pub status_code: u16,
    pub delivered_at: chrono::DateTime<Utc>,
    pub redelivery: bool,
}

/// A misbehaviour to serve instead of an operation's answer.
#[derive(Clone, Debug)]
pub enum Fault {
    /// This answer (status, headers, JSON body), GitHub doing nothing; with `quiet_for`, a rate
    /// limit: a request within that time after it came too early (see [`World::early`]).
    Answer {
        status: u16,
        headers: Vec<(String, String)>,
        body: Value,
        quiet_for: Option<Duration>,
    },
    /// The operation is done, but its answer comes after `delay` (past a client's timeout).
    SlowAfterDoing(Duration),
    /// Nothing is done and the answer (an error) comes after `delay`.
    SlowWithoutDoing(Duration),
    /// See [`Fault::primary_rate_limit`]: the reset is counted from when it is served.
    PrimaryRateLimit { reset_in_secs: u64 },
}

impl Fault {
    pub fn status(status: u16) -> Self {
        let message = match status {
            500 => "Internal Server Error",
            502 => "Bad Gateway",
            503 => "Service Unavailable",
            _ => "Error",
        };
        Fault::Answer {
            status,
            headers: Vec::new(),
            body: json!({ "message": message }),
            quiet_for: None,
        }
    }

    /// A secondary rate limit: 429 with `retry-after` (whole seconds).
    pub fn too_many_requests(retry_after_secs: u64) -> Self {
        Fault::Answer {
            status: 429,
            headers: vec![("retry-after".into(), retry_after_secs.to_string())],
            body: json!({ "message": "You have exceeded a secondary rate limit." }),
            quiet_for: Some(Duration::from_secs(retry_after_secs)),
        }
    }

    /// The primary rate limit used up: 403, `x-ratelimit-remaining: 0` and a reset
    /// `reset_in_secs` after the answer (whole seconds, so requests may resume one second
    /// sooner).
    pub fn primary_rate_limit(reset_in_secs: u64) -> Self {
        Fault::PrimaryRateLimit { reset_in_secs }
    }

    /// What the fault is, for a test's log.
    pub fn label(&self) -> String {
        match self {
            Fault::Answer { status, .. } => status.to_string(),
            Fault::PrimaryRateLimit { .. } => "403".into(),
            Fault::SlowAfterDoing(_) => "slow after doing".into(),
            Fault::SlowWithoutDoing(_) => "slow without doing".into(),
        }
    }

    /// A 404 with GitHub's message.
    pub fn not_found() -> Self {
        Fault::Answer {
            status: 404,
            headers: Vec::new(),
            body: json!({ "message": "Not Found",
                          "documentation_url": "https://docs.github.com/rest" }),
            quiet_for: None,
        }
    }
}

#[derive(Default)]
struct Repo {
    /// Download paths (on the download host) of each ref's tarball.
    tarballs: HashMap<String, String>,
    /// The download path served for a ref not in `tarballs`.
    any_tarball: Option<String>,
    /// `base...head` → the files changed.
    comparisons: HashMap<(String, String), Vec<String>>,
    pulls: BTreeMap<u64, PullRequest>,
    permissions: HashMap<String, String>,
    statuses: Vec<Status>,
    /// Branch → the commit at its head.
    branches: HashMap<String, String>,
}

/// Everything the fake GitHub holds.
pub struct World {
    /// The App whose installations these are (its comments name it).
    app_id: u64,
    /// Installation ids that exist.
    installations: Vec<u64>,
    /// Tokens issued: token → installation.
    tokens: HashMap<String, u64>,
    token_lifetime: chrono::Duration,
    repos: BTreeMap<String, Repo>,
    check_runs: Vec<CheckRun>,
    comments: Vec<Comment>,
    issues: Vec<Issue>,
    reactions: Vec<(i64, String)>,
    deliveries: Vec<HookDelivery>,
    redeliveries: Vec<i64>,
    /// Download host path → bytes.
    downloads: HashMap<String, Vec<u8>>,
    /// Manifest codes → the app GitHub made.
    manifests: HashMap<String, Value>,
    faults: HashMap<&'static str, VecDeque<Fault>>,
    /// Operations that fail this way until told otherwise (after any queued faults).
    outages: HashMap<&'static str, Fault>,
    /// The faults served: (operation, [`Fault::label`]).
    served_faults: Vec<(&'static str, String)>,
    /// When the last rate limit this GitHub announced was answered, and until when it is in
    /// force.
    quiet_since: Option<Instant>,
    quiet_until: Option<Instant>,
    /// Requests that came while a rate limit was in force: `METHOD path`.
    early: Vec<String>,
    /// Operations answered (faults included), by operation id.
    answered: BTreeMap<&'static str, usize>,
    /// How long a commit status's answer takes.
    status_delay: Duration,
    /// GitHub's secondary limit on content-creating requests, per installation and minute,
    /// when a test turns it on; when each installation's last ones were made; refusals.
    secondary_limit: Option<usize>,
    content_requests: HashMap<u64, VecDeque<Instant>>,
    secondary_refusals: usize,
    next_id: i64,
}

impl Default for World {
    fn default() -> Self {
        Self {
            app_id: APP_ID,
            installations: vec![INSTALLATION],
            tokens: HashMap::new(),
            token_lifetime: chrono::Duration::hours(1),
            repos: BTreeMap::new(),
            check_runs: Vec::new(),
            comments: Vec::new(),
            issues: Vec::new(),
            reactions: Vec::new(),
            deliveries: Vec::new(),
            redeliveries: Vec::new(),
            downloads: HashMap::new(),
            manifests: HashMap::new(),
            faults: HashMap::new(),
            outages: HashMap::new(),
            served_faults: Vec::new(),
            quiet_since: None,
            quiet_until: None,
            early: Vec::new(),
            answered: BTreeMap::new(),
            status_delay: Duration::ZERO,
            secondary_limit: None,
            content_requests: HashMap::new(),
            secondary_refusals: 0,
            next_id: 1000,
        }
    }
}

/// A request as the world reads it.
pub struct Call<'r> {
    pub operation: &'static Operation,
    pub params: HashMap<String, String>,
    pub query: HashMap<String, String>,
    pub body: Value,
    pub token: Option<&'r str>,
    /// The request's path, for `Link` headers.
    pub path: String,
    /// `scheme://host:port` of the API, for `Link` headers.
    pub api_base: String,
    /// `scheme://host:port` of the download host, for the tarball redirect.
    pub downloads_base: String,
}

impl<'r> Call<'r> {
    pub fn new(
        operation: &'static Operation,
        request: &'r Request,
        downloads_base: String,
    ) -> Self {
        let token = request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("token "))
            });
        let url = &request.url;
        Self {
            operation,
            params: operation.parameters_of(url.path()),
            query: url.query_pairs().into_owned().collect(),
            body: serde_json::from_slice(&request.body).unwrap_or(Value::Null),
            token,
            path: url.path().to_owned(),
            api_base: format!(
                "{}://{}{}",
                url.scheme(),
                url.host_str().unwrap_or("127.0.0.1"),
                url.port().map(|p| format!(":{p}")).unwrap_or_default()
            ),
            downloads_base,
        }
    }

    fn operation_method(&self) -> &str {
        self.operation.method()
    }

    fn param(&self, name: &str) -> &str {
        self.params.get(name).map_or("", String::as_str)
    }

    fn number(&self, name: &str) -> i64 {
        self.param(name).parse().unwrap_or(-1)
    }

    fn repo(&self) -> String {
        format!("{}/{}", self.param("owner"), self.param("repo"))
    }

    fn text(&self, field: &str) -> String {
        self.body[field].as_str().unwrap_or_default().to_owned()
    }
}

fn answer(status: u16, body: Value) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(body)
}

fn not_found() -> ResponseTemplate {
    answer(
        404,
        json!({ "message": "Not Found", "documentation_url": "https://docs.github.com/rest" }),
    )
}

impl World {
    // ----- what tests set up -----

    pub fn install(&mut self, installation: u64) {
        if !self.installations.contains(&installation) {
            self.installations.push(installation);
        }
    }

    pub fn set_app_id(&mut self, app_id: u64) {
        self.app_id = app_id;
    }

    pub fn set_token_lifetime(&mut self, lifetime: chrono::Duration) {
        self.token_lifetime = lifetime;
    }

    pub fn set_status_delay(&mut self, delay: Duration) {
        self.status_delay = delay;
    }

    pub fn add_tarball(&mut self, repo: &str, git_ref: &str, bytes: Vec<u8>) {
        let download = format!("/{repo}/legacy.tar.gz/{git_ref}");
        self.downloads.insert(download.clone(), bytes);
        self.repo_mut(repo)
            .tarballs
            .insert(git_ref.to_owned(), download);
    }

    /// Serves `bytes` as the tarball of every ref not served otherwise.
    /// Branch `branch` of `repo` is at `sha`.
    pub fn set_branch(&mut self, repo: &str, branch: &str, sha: &str) {
        self.repo_mut(repo)
            .branches
            .insert(branch.to_owned(), sha.to_owned());
    }

    /// Opens an issue in `repo`: its number. Issues and pull requests share their numbers; the
    /// tests' pull requests stay below 1000.
    pub fn open_issue(&mut self, repo: &str, title: &str, body: &str) -> u64 {
        self.repo_mut(repo);
        let number = 1000 + self.issues.iter().filter(|i| i.repo == repo).count() as u64;
        self.issues.push(Issue {
            repo: repo.to_owned(),
            number,
            title: title.to_owned(),
            body: body.to_owned(),
            state: "open".to_owned(),
            edits: 0,
        });
        number
    }

    pub fn add_any_tarball(&mut self, repo: &str, bytes: Vec<u8>) {
        let download = format!("/{repo}/legacy.tar.gz/any");
        self.downloads.insert(download.clone(), bytes);
        self.repo_mut(repo).any_tarball = Some(download);
    }

    pub fn add_comparison(&mut self, repo: &str, base: &str, head: &str, files: &[&str]) {
        let files = files.iter().map(|f| (*f).to_owned()).collect();
        self.repo_mut(repo)
            .comparisons
            .insert((base.to_owned(), head.to_owned()), files);
    }

    pub fn put_pull_request(&mut self, repo: &str, number: u64, pull: PullRequest) {
        self.repo_mut(repo).pulls.insert(number, pull);
    }

    pub fn pull_request_mut(&mut self, repo: &str, number: u64) -> &mut PullRequest {
        self.repo_mut(repo)
            .pulls
            .get_mut(&number)
            .unwrap_or_else(|| panic!("pull request {repo}#{number} was never opened"))
    }

    pub fn set_permission(&mut self, repo: &str, user: &str, permission: &str) {
        self.repo_mut(repo)
            .permissions
            .insert(user.to_owned(), permission.to_owned());
    }

    /// A comment somebody (not the App) wrote; returns its id.
    pub fn add_comment(&mut self, repo: &str, issue: u64, author: &str, body: &str) -> i64 {
        let id = self.new_id();
        self.comments.push(Comment {
            id,
            repo: repo.to_owned(),
            issue,
            body: body.to_owned(),
            author: author.to_owned(),
            by_app: false,
            edits: 0,
        });
        id
    }

    pub fn add_delivery(&mut self, delivery: HookDelivery) {
        self.deliveries.push(delivery);
    }

    pub fn add_manifest(&mut self, code: &str, app: Value) {
        self.manifests.insert(code.to_owned(), app);
    }

    pub fn add_faults(&mut self, operation: &'static str, faults: impl IntoIterator<Item = Fault>) {
        self.faults.entry(operation).or_default().extend(faults);
    }

    pub fn set_secondary_limit(&mut self, per_minute: usize) {
        self.secondary_limit = Some(per_minute);
    }

    pub fn secondary_refusals(&self) -> usize {
        self.secondary_refusals
    }

    pub fn set_outage(&mut self, operation: &'static str, fault: Option<Fault>) {
        match fault {
            Some(fault) => self.outages.insert(operation, fault),
            None => self.outages.remove(operation),
        };
    }

    // ----- what tests read -----

    pub fn statuses(&self, repo: &str, sha: &str) -> Vec<Status> {
        self.repos.get(repo).map_or_else(Vec::new, |r| {
            r.statuses
                .iter()
                .filter(|s| s.sha == sha)
                .cloned()
                .collect()
        })
    }

    pub fn all_statuses(&self) -> Vec<Status> {
        self.repos
            .values()
            .flat_map(|r| r.statuses.clone())
            .collect()
    }

    pub fn check_runs(&self) -> Vec<CheckRun> {
        self.check_runs.clone()
    }

    pub fn comments(&self, repo: &str, issue: u64) -> Vec<Comment> {
        self.comments
            .iter()
            .filter(|c| c.repo == repo && c.issue == issue)
            .cloned()
            .collect()
    }

    pub fn issues(&self, repo: &str) -> Vec<Issue> {
        self.issues
            .iter()
            .filter(|i| i.repo == repo)
            .cloned()
            .collect()
    }

    pub fn reactions(&self) -> Vec<(i64, String)> {
        self.reactions.clone()
    }

    pub fn redeliveries(&self) -> Vec<i64> {
        self.redeliveries.clone()
    }

    pub fn issued_tokens(&self) -> Vec<String> {
        self.tokens.keys().cloned().collect()
    }

    pub fn answered(&self, operation: &str) -> usize {
        self.answered.get(operation).copied().unwrap_or(0)
    }

    pub fn served_faults(&self) -> Vec<(&'static str, String)> {
        self.served_faults.clone()
    }

    pub fn early(&self) -> Vec<String> {
        self.early.clone()
    }

    pub fn download(&self, path: &str) -> Option<Vec<u8>> {
        self.downloads.get(path).cloned()
    }

    // ----- answering -----

    /// GitHub's answer to a request the contract let through.
    pub fn respond(&mut self, call: &Call) -> ResponseTemplate {
        let id = call.operation.id;
        *self.answered.entry(id).or_default() += 1;
        let now = Instant::now();
        if self
            .quiet_since
            .is_some_and(|since| since + IN_FLIGHT <= now && self.quiet_until > Some(now))
        {
            self.early
                .push(format!("{} {}", call.operation_method(), call.path));
        }
        if let Some(refusal) = self.check_token(call) {
            return refusal;
        }
        if let Some(refusal) = self.check_secondary_limit(call) {
            return refusal;
        }
        let fault = self
            .faults
            .get_mut(id)
            .and_then(VecDeque::pop_front)
            .or_else(|| self.outages.get(id).cloned());
        if let Some(fault) = &fault {
            self.served_faults.push((id, fault.label()));
        }
        match fault {
            Some(Fault::Answer {
                status,
                headers,
                body,
                quiet_for,
            }) => {
                if let Some(quiet) = quiet_for {
                    self.be_quiet_for(quiet);
                }
                let mut template = answer(status, body);
                for (name, value) in headers {
                    template = template.insert_header(name.as_str(), value.as_str());
                }
                template
            }
            Some(Fault::PrimaryRateLimit { reset_in_secs }) => {
                let reset = Utc::now().timestamp() + reset_in_secs as i64;
                self.be_quiet_for(Duration::from_secs(reset_in_secs.saturating_sub(1)));
                answer(
                    403,
                    json!({ "message": "API rate limit exceeded for installation." }),
                )
                .insert_header("x-ratelimit-remaining", "0")
                .insert_header("x-ratelimit-reset", reset.to_string().as_str())
            }
            Some(Fault::SlowAfterDoing(delay)) => self.perform(call).set_delay(delay),
            Some(Fault::SlowWithoutDoing(delay)) => {
                answer(504, json!({ "message": "Gateway Timeout" })).set_delay(delay)
            }
            None => self.perform(call),
        }
    }

    fn be_quiet_for(&mut self, quiet: Duration) {
        let now = Instant::now();
        self.quiet_since = Some(now);
        self.quiet_until = Some(now + quiet);
    }

    /// GitHub's secondary limit: at most so many content-creating requests (anything but a
    /// read) an installation makes in any minute; past it, a 403 that says to wait a minute.
    fn check_secondary_limit(&mut self, call: &Call) -> Option<ResponseTemplate> {
        let limit = self.secondary_limit?;
        if call.operation.method() == "GET" {
            return None;
        }
        let installation = *self.tokens.get(call.token?)?;
        let now = Instant::now();
        let made = self.content_requests.entry(installation).or_default();
        while made
            .front()
            .is_some_and(|at| now.duration_since(*at) >= Duration::from_secs(60))
        {
            made.pop_front();
        }
        if made.len() >= limit {
            self.secondary_refusals += 1;
            return Some(
                answer(
                    403,
                    json!({ "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again." }),
                )
                .insert_header("retry-after", "60"),
            );
        }
        made.push_back(now);
        None
    }

    /// An installation token must be one this GitHub issued (and for an installation that still
    /// exists); an app JWT was verified by the contract.
    fn check_token(&self, call: &Call) -> Option<ResponseTemplate> {
        let token = call.token?;
        if !token.starts_with("ghs_") || self.tokens.contains_key(token) {
            return None;
        }
        Some(answer(
            401,
            json!({ "message": "Bad credentials", "documentation_url": "https://docs.github.com/rest" }),
        ))
    }

    fn perform(&mut self, call: &Call) -> ResponseTemplate {
        match call.operation.id {
            "apps/create-installation-access-token" => self.issue_token(call),
            "apps/list-webhook-deliveries" => self.list_deliveries(call),
            "apps/redeliver-webhook-delivery" => {
                let id = call.number("delivery_id");
                if !self.deliveries.iter().any(|d| d.id == id) {
                    return not_found();
                }
                self.redeliveries.push(id);
                answer(202, json!({}))
            }
            "apps/create-from-manifest" => match self.manifests.remove(call.param("code")) {
                Some(app) => answer(201, app),
                None => not_found(),
            },
            "checks/create" => self.create_check_run(call),
            "checks/update" => self.update_check_run(call),
            "issues/create-comment" => self.create_comment(call),
            "issues/create" => {
                let repo = call.repo();
                if !self.repos.contains_key(&repo) {
                    return not_found();
                }
                let body = call.body["body"].as_str().unwrap_or_default();
                let number = self.open_issue(&repo, &call.text("title"), body);
                let issue = self
                    .issues
                    .iter()
                    .find(|i| i.number == number && i.repo == repo);
                answer(201, issue_json(issue.expect("just opened")))
            }
            "issues/list-for-repo" => {
                let repo = call.repo();
                let state = call.query.get("state").map_or("open", String::as_str);
                let listed: Vec<Value> = self
                    .issues
                    .iter()
                    .filter(|i| i.repo == repo && (state == "all" || i.state == state))
                    .map(issue_json)
                    .collect();
                page(call, &listed)
            }
            "issues/update" => {
                let (repo, number) = (call.repo(), call.number("issue_number") as u64);
                let Some(issue) = self
                    .issues
                    .iter_mut()
                    .find(|i| i.repo == repo && i.number == number)
                else {
                    return not_found();
                };
                if let Some(title) = call.body["title"].as_str() {
                    issue.title = title.to_owned();
                }
                if let Some(body) = call.body["body"].as_str() {
                    issue.body = body.to_owned();
                }
                if let Some(state) = call.body["state"].as_str() {
                    issue.state = state.to_owned();
                }
                issue.edits += 1;
                answer(200, issue_json(issue))
            }
            "issues/list-comments" => {
                let (repo, issue) = (call.repo(), call.number("issue_number") as u64);
                let listed: Vec<Value> = self
                    .comments
                    .iter()
                    .filter(|c| c.repo == repo && c.issue == issue)
                    .map(|c| comment_json(c, self.app_id))
                    .collect();
                page(call, &listed)
            }
            "issues/update-comment" => {
                let id = call.number("comment_id");
                let repo = call.repo();
                let Some(comment) = self
                    .comments
                    .iter_mut()
                    .find(|c| c.id == id && c.repo == repo)
                else {
                    return not_found();
                };
                comment.body = call.text("body");
                comment.edits += 1;
                answer(200, comment_json(comment, self.app_id))
            }
            "reactions/create-for-issue-comment" => {
                let id = call.number("comment_id");
                self.reactions.push((id, call.text("content")));
                answer(
                    201,
                    json!({ "id": self.new_id(), "content": call.text("content") }),
                )
            }
            "pulls/get" => match self.pull(call) {
                Some(pull) => answer(200, pull_json(call, pull)),
                None => not_found(),
            },
            "pulls/list-files" => match self.pull(call) {
                Some(pull) => {
                    let files: Vec<Value> = pull
                        .files
                        .iter()
                        .take(MAX_PULL_REQUEST_FILES)
                        .map(|f| json!({ "filename": f, "status": "modified" }))
                        .collect();
                    page(call, &files)
                }
                None => not_found(),
            },
            "repos/compare-commits" => {
                let (base, head) = (call.param("base"), call.param("head"));
                let key = (base.to_owned(), head.to_owned());
                match self
                    .repos
                    .get(&call.repo())
                    .and_then(|r| r.comparisons.get(&key))
                {
                    Some(files) => {
                        let files: Vec<Value> = files
                            .iter()
                            .take(300)
                            .map(|f| json!({ "filename": f, "status": "modified" }))
                            .collect();
                        answer(200, json!({ "status": "ahead", "files": files }))
                    }
                    None => not_found(),
                }
            }
            "repos/create-commit-status" => self.create_status(call),
            "repos/list-commit-statuses-for-ref" => {
                let (repo, sha) = (call.repo(), call.param("ref").to_owned());
                let newest_first: Vec<Value> = self
                    .statuses(&repo, &sha)
                    .iter()
                    .rev()
                    .map(status_json)
                    .collect();
                page(call, &newest_first)
            }
            "repos/download-tarball-archive" => {
                let git_ref = call.param("ref");
                match self
                    .repos
                    .get(&call.repo())
                    .and_then(|r| r.tarballs.get(git_ref).or(r.any_tarball.as_ref()))
                {
                    Some(download) => ResponseTemplate::new(302).insert_header(
                        "location",
                        format!("{}{download}?token=download-only", call.downloads_base),
                    ),
                    None => not_found(),
                }
            }
            "apps/get-repo-installation" => {
                if !self.repos.contains_key(&call.repo()) {
                    return not_found();
                }
                answer(
                    200,
                    json!({ "id": self.installations[0], "app_id": self.app_id,
                            "account": { "login": call.param("owner"), "type": "Organization" },
                            "repository_selection": "all" }),
                )
            }
            "git/get-ref" => {
                let head = call
                    .param("ref")
                    .strip_prefix("heads/")
                    .and_then(|branch| self.repos.get(&call.repo())?.branches.get(branch));
                match head {
                    Some(sha) => answer(
                        200,
                        json!({ "ref": format!("refs/{}", call.param("ref")),
                                "object": { "type": "commit", "sha": sha } }),
                    ),
                    None => not_found(),
                }
            }
            "repos/get" => {
                let repo = call.repo();
                answer(
                    200,
                    json!({ "id": 1, "name": call.param("repo"), "full_name": repo,
                            "private": true, "default_branch": "main" }),
                )
            }
            "repos/get-collaborator-permission-level" => {
                let permission = self
                    .repos
                    .get(&call.repo())
                    .and_then(|r| r.permissions.get(call.param("username")))
                    .cloned()
                    .unwrap_or_else(|| "read".to_owned());
                answer(
                    200,
                    json!({ "permission": permission, "role_name": permission,
                            "user": { "login": call.param("username") } }),
                )
            }
            other => answer(
                501,
                json!({ "message": format!("the fake GitHub does not model {other} yet") }),
            ),
        }
    }

    fn issue_token(&mut self, call: &Call) -> ResponseTemplate {
        let installation = call.number("installation_id") as u64;
        if !self.installations.contains(&installation) {
            return not_found();
        }
        let token = format!("ghs_{}", hex::encode(rand::random::<[u8; 18]>()));
        self.tokens.insert(token.clone(), installation);
        let expires_at = Utc::now() + self.token_lifetime;
        answer(
            201,
            json!({ "token": token, "expires_at": expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    "permissions": { "checks": "write", "statuses": "write", "contents": "read",
                                     "pull_requests": "write" },
                    "repository_selection": "all" }),
        )
    }

    /// Newest first, `per_page` a page, the next (older) page after `cursor`.
    fn list_deliveries(&self, call: &Call) -> ResponseTemplate {
        let per_page = per_page(call);
        let mut newest_first: Vec<&HookDelivery> = self.deliveries.iter().collect();
        newest_first.sort_by_key(|d| std::cmp::Reverse(d.id));
        let start = match call.query.get("cursor") {
            Some(cursor) => {
                let Some(after) = cursor
                    .strip_prefix("v1_")
                    .and_then(|id| id.parse::<i64>().ok())
                else {
                    return answer(422, json!({ "message": "Invalid cursor" }));
                };
                newest_first.iter().take_while(|d| d.id > after).count()
            }
            None => 0,
        };
        let listed: Vec<Value> = newest_first
            .iter()
            .skip(start)
            .take(per_page)
            .map(|d| delivery_json(d))
            .collect();
        let mut template = answer(200, json!(listed));
        if let Some(next) = newest_first.get(start + per_page) {
            template = template.insert_header(
                "link",
                format!(
                    "<{}{}?per_page={per_page}&cursor=v1_{}>; rel=\"next\"",
                    call.api_base, call.path, next.id
                ),
            );
        }
        template
    }

    fn create_check_run(&mut self, call: &Call) -> ResponseTemplate {
        let id = self.new_id();
        let mut check = CheckRun {
            id,
            repo: call.repo(),
            name: call.text("name"),
            head_sha: call.text("head_sha"),
            status: "queued".to_owned(),
            conclusion: None,
            title: String::new(),
            summary: String::new(),
            external_id: None,
            details_url: None,
            writes: Vec::new(),
        };
        apply_check_write(&mut check, &call.body);
        let json = check_json(&check);
        self.check_runs.push(check);
        answer(201, json)
    }

    fn update_check_run(&mut self, call: &Call) -> ResponseTemplate {
        let id = call.number("check_run_id");
        let repo = call.repo();
        let Some(check) = self
            .check_runs
            .iter_mut()
            .find(|c| c.id == id && c.repo == repo)
        else {
            return not_found();
        };
        apply_check_write(check, &call.body);
        answer(200, check_json(check))
    }

    fn create_comment(&mut self, call: &Call) -> ResponseTemplate {
        let id = self.new_id();
        let comment = Comment {
            id,
            repo: call.repo(),
            issue: call.number("issue_number") as u64,
            body: call.text("body"),
            author: "gantry[bot]".to_owned(),
            by_app: true,
            edits: 0,
        };
        let json = comment_json(&comment, self.app_id);
        self.comments.push(comment);
        answer(201, json)
    }

    fn create_status(&mut self, call: &Call) -> ResponseTemplate {
        let status = Status {
            repo: call.repo(),
            sha: call.param("sha").to_owned(),
            context: call.body["context"]
                .as_str()
                .unwrap_or("default")
                .to_owned(),
            state: call.text("state"),
            description: call.text("description"),
            target_url: call.body["target_url"].as_str().map(str::to_owned),
        };
        let json = json!({ "id": self.new_id(), "state": status.state, "context": status.context,
                           "description": status.description, "target_url": status.target_url,
                           "created_at": Utc::now().to_rfc3339() });
        self.repo_mut(&call.repo()).statuses.push(status);
        answer(201, json).set_delay(self.status_delay)
    }

    fn pull(&self, call: &Call) -> Option<&PullRequest> {
        self.repos
            .get(&call.repo())?
            .pulls
            .get(&(call.number("pull_number") as u64))
    }

    fn repo_mut(&mut self, repo: &str) -> &mut Repo {
        self.repos.entry(repo.to_owned()).or_default()
    }

    fn new_id(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }
}

fn apply_check_write(check: &mut CheckRun, body: &Value) {
    let text = |field: &Value| field.as_str().map(str::to_owned);
    if let Some(name) = text(&body["name"]) {
        check.name = name;
    }
    if let Some(status) = text(&body["status"]) {
        check.status = status;
    }
    if let Some(conclusion) = text(&body["conclusion"]) {
        // GitHub completes a check run given a conclusion.
        check.status = "completed".to_owned();
        check.conclusion = Some(conclusion);
    }
    if let Some(title) = text(&body["output"]["title"]) {
        check.title = title;
    }
    if let Some(summary) = text(&body["output"]["summary"]) {
        check.summary = summary;
    }
    if let Some(external_id) = text(&body["external_id"]) {
        check.external_id = Some(external_id);
    }
    if let Some(details_url) = text(&body["details_url"]) {
        check.details_url = Some(details_url);
    }
    check.writes.push(body.clone());
}

fn check_json(check: &CheckRun) -> Value {
    json!({ "id": check.id, "name": check.name, "head_sha": check.head_sha,
            "status": check.status, "conclusion": check.conclusion,
            "external_id": check.external_id, "details_url": check.details_url,
            "output": { "title": check.title, "summary": check.summary } })
}

fn comment_json(comment: &Comment, app_id: u64) -> Value {
    let (user_type, app) = if comment.by_app {
        ("Bot", json!({ "id": app_id, "slug": "gantry" }))
    } else {
        ("User", Value::Null)
    };
    json!({ "id": comment.id, "body": comment.body,
            "user": { "login": comment.author, "type": user_type },
            "performed_via_github_app": app })
}

fn status_json(status: &Status) -> Value {
    json!({ "state": status.state, "context": status.context,
            "description": status.description, "target_url": status.target_url })
}

fn pull_json(call: &Call, pull: &PullRequest) -> Value {
    json!({ "number": call.number("pull_number"), "state": pull.state, "merged": pull.merged,
            "merge_commit_sha": pull.merge_commit_sha, "user": { "login": pull.author, "type": "User" },
            "head": { "ref": pull.head_ref, "sha": pull.head_sha,
                      "repo": { "full_name": if pull.head_repo.is_empty() { call.repo() } else { pull.head_repo.clone() } } },
            "base": { "ref": pull.base_ref, "sha": pull.base_sha,
                      "repo": { "full_name": call.repo() } } })
}

fn delivery_json(delivery: &HookDelivery) -> Value {
    json!({ "id": delivery.id, "guid": delivery.guid,
            "delivered_at": delivery.delivered_at.to_rfc3339(),
            "redelivery": delivery.redelivery, "duration": 0.1,
            "status": if delivery.status_code < 300 { "OK" } else { "Error" },
            "status_code": delivery.status_code, "event": delivery.event,
            "action": delivery.action, "installation_id": INSTALLATION,
            "repository_id": 1 })
}

fn per_page(call: &Call) -> usize {
    call.query
        .get("per_page")
        .and_then(|n| n.parse().ok())
        .unwrap_or(30)
        .clamp(1, MAX_PER_PAGE)
}

/// One page of `items` by `page` and `per_page`, with GitHub's `Link` header naming the next
/// and the last page.
fn page(call: &Call, items: &[Value]) -> ResponseTemplate {
    let per_page = per_page(call);
    let page: usize = call
        .query
        .get("page")
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
        .max(1);
    let listed: Vec<Value> = items
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .cloned()
        .collect();
    let last = items.len().div_ceil(per_page).max(1);
    let mut template = answer(200, json!(listed));
    if page < last {
        let path = &call.path;
        template = template.insert_header(
            "link",
            format!(
                "<{base}{path}?per_page={per_page}&page={next}>; rel=\"next\", \
                 <{base}{path}?per_page={per_page}&page={last}>; rel=\"last\"",
                base = call.api_base,
                next = page + 1,
            ),
        );
    }
    template
}

fn issue_json(issue: &Issue) -> Value {
    json!({ "id": issue.number * 7, "number": issue.number, "title": issue.title,
            "body": issue.body, "state": issue.state,
            "html_url": format!("https://github.com/{}/issues/{}", issue.repo, issue.number) })
}
