//! Gantry's configuration: a TOML file plus `GANTRY_*` environment overrides, validated once at
//! start into a [`Config`] that the rest of the program trusts. Nothing else reads the environment.
//!
//! Every error names the key (and its environment variable) so that one line tells the operator
//! what to fix; `gantry serve` turns it into exit code 2.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

use crate::core::workspace::{
    RepoName, VariableCategory, VariableValue, WorkspaceName, WorkspaceSpec, check_branch_name,
    check_terraform_version, check_variable_name, normalize_working_directory,
};
use crate::github::AppCredentials;

/// Where the GitHub App's credentials are written by the manifest flow, inside the data dir.
pub const APP_CREDENTIALS_DIR: &str = "github-app";
const APP_ID_FILE: &str = "app-id";
const PRIVATE_KEY_FILE: &str = "private-key.pem";
const WEBHOOK_SECRET_FILE: &str = "webhook-secret";
const SETUP_TOKEN_FILE: &str = "setup-token";

/// The largest webhook body GitHub sends is 25 MiB; anything bigger is refused with 413.
pub const DEFAULT_MAX_WEBHOOK_BYTES: usize = 25 * 1024 * 1024;

/// A configuration problem, always tied to one key.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: `{key}`{env}: {message}", env = env_hint(.key))]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl ConfigError {
    fn new(key: &str, message: impl Into<String>) -> Self {
        Self {
            key: key.to_string(),
            message: message.into(),
        }
    }
}

fn env_hint(key: &str) -> String {
    ENV_OVERRIDES
        .iter()
        .find(|(_, k)| *k == key)
        .map(|(env, _)| format!(" ({env})"))
        .unwrap_or_default()
}

/// Environment variable → configuration key it overrides.
const ENV_OVERRIDES: &[(&str, &str)] = &[
    ("GANTRY_LISTEN", "listen"),
    ("GANTRY_PUBLIC_URL", "public_url"),
    ("GANTRY_DATA_DIR", "data_dir"),
    ("GANTRY_DATABASE_URL", "database_url"),
    ("GANTRY_ENCRYPTION_KEY", "encryption_key"),
    ("GANTRY_GITHUB_API_URL", "github.api_url"),
    ("GANTRY_GITHUB_WEB_URL", "github.web_url"),
    ("GANTRY_APP_ID", "github.app_id"),
    ("GANTRY_APP_PRIVATE_KEY", "github.private_key"),
    ("GANTRY_APP_PRIVATE_KEY_PATH", "github.private_key_path"),
    ("GANTRY_WEBHOOK_SECRET", "github.webhook_secret"),
    (
        "GANTRY_GITHUB_CONTENT_REQUESTS_PER_MINUTE",
        "github.content_requests_per_minute",
    ),
    ("GANTRY_GITHUB_TIMEOUT_SECS", "github.timeout_secs"),
    ("GANTRY_DISPATCHER_ENABLED", "dispatcher.enabled"),
    ("GANTRY_RUNNER_ENABLED", "runner.enabled"),
    ("GANTRY_RUNNER_MAX_PROCESSES", "runner.max_processes"),
    ("GANTRY_RUNNER_ISOLATION", "runner.isolation"),
    (
        "GANTRY_RUNNER_SANDBOX_READ_ONLY",
        "runner.sandbox_read_only",
    ),
    ("GANTRY_RUNNER_SUPERVISOR", "runner.supervisor"),
    ("GANTRY_RUNNER_ON_SHUTDOWN", "runner.on_shutdown"),
    ("GANTRY_TERRAFORM_RELEASES_URL", "terraform.releases_url"),
    ("GANTRY_TERRAFORM_TOOL_CACHE", "terraform.tool_cache"),
];

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub public_url: Url,
    pub data_dir: PathBuf,
    pub database_url: SecretString,
    /// Seals sensitive variables at rest (64 hex digits); None: a key file in the data dir.
    pub encryption_key: Option<SecretString>,
    pub github: GitHubConfig,
    pub ingest: IngestConfig,
    pub dispatcher: DispatcherConfig,
    pub runner: RunnerConfig,
    pub terraform: TerraformConfig,
    pub pull_requests: PullRequestConfig,
    pub feedback: FeedbackConfig,
    /// The workspaces declared in the file, in order; the store keeps them (and any made
    /// through the API) so that runs outlive a change of configuration.
    pub workspaces: Vec<WorkspaceSpec>,
}

#[derive(Debug, Clone)]
pub struct GitHubConfig {
    /// REST API base: api.github.com, a GitHub Enterprise Server's `/api/v3`, or a fake in tests.
    pub api_url: Url,
    /// Where people go: github.com or the GHES host; the manifest flow posts there.
    pub web_url: Url,
    /// None until the GitHub App exists (the manifest flow creates it).
    pub app: Option<AppSettings>,
    /// Every secret accepted on incoming webhooks; more than one during a rotation.
    pub webhook_secrets: Vec<SecretString>,
    /// Content-creating requests (statuses, comments, check runs) per installation a minute.
    pub content_requests_per_minute: std::num::NonZeroU32,
    /// How long one request to GitHub may take before it counts as failed and is retried.
    pub timeout: std::time::Duration,
}

#[derive(Clone)]
pub struct AppSettings {
    pub app_id: u64,
    /// The parsed private key: a configuration that loads holds a key that can sign.
    pub credentials: AppCredentials,
}

impl std::fmt::Debug for AppSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppSettings")
            .field("app_id", &self.app_id)
            .field("credentials", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct IngestConfig {
    pub max_body_bytes: usize,
}

#[derive(Debug, Clone)]
pub struct DispatcherConfig {
    /// Off: the server only stores deliveries (an ingest-only replica, or draining before an
    /// upgrade); they are processed by the next server that runs with it on.
    pub enabled: bool,
}

#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Off: runs are created and queued but not executed here (an ingest-only replica).
    pub enabled: bool,
    /// Terraform processes running at once, across all runs; later ones wait in order.
    pub max_processes: usize,
    /// How long one phase (init + plan, or apply) may take before it is killed.
    pub phase_timeout: std::time::Duration,
    /// Whether Terraform runs in a sandbox (the default) or, set on purpose, without one.
    pub isolation: IsolationSetting,
    /// Extra paths a sandboxed Terraform may read (a Terraform that is not one static binary,
    /// a provider mirror).
    pub sandbox_read_only: Vec<PathBuf>,
    /// The program that supervises each Terraform phase: this `gantry` binary by default.
    pub supervisor: PathBuf,
    /// What a stopping Gantry does with the phases under way.
    pub on_shutdown: OnShutdown,
}

/// `runner.isolation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsolationSetting {
    /// bubblewrap; runs are refused where no sandbox can be made.
    Sandbox,
    /// No sandbox: Terraform sees everything Gantry's user can.
    None,
}

/// `runner.on_shutdown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnShutdown {
    /// Leave them running under their supervisors; the next start follows them on.
    Detach,
    /// Cancel them (SIGINT, so Terraform saves its state) and wait for them.
    Cancel,
}

/// How Gantry reports runs on GitHub.
#[derive(Debug, Clone, Copy)]
pub struct FeedbackConfig {
    pub commit_statuses: bool,
    pub check_runs: bool,
    /// One more status, `gantry`, that sums up every workspace's on a commit.
    pub aggregate_status: bool,
    /// What workspaces a pull request does not touch get.
    pub untouched: Untouched,
    /// How long an in-between state (queued, planning) waits before it is sent: a result that
    /// follows within it is sent instead, one request rather than two.
    pub hold_in_between: std::time::Duration,
}

/// `[feedback] untouched`: what a workspace a pull request does not touch shows on GitHub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Untouched {
    /// Its own `gantry/<workspace>` status, "No changes in this workspace" (branch protection
    /// may require any workspace's context).
    Status,
    /// Nothing of its own: the one `gantry` status sums up every workspace, untouched ones as
    /// "no changes" (branch protection requires `gantry`).
    Aggregate,
}

impl FeedbackConfig {
    /// Whether the `gantry` status summing up a commit's workspaces is kept.
    pub fn aggregates(&self) -> bool {
        self.aggregate_status || self.untouched == Untouched::Aggregate
    }
}

#[derive(Debug, Clone)]
pub struct PullRequestConfig {
    /// Plan draft pull requests too.
    pub plan_drafts: bool,
    /// What starts a comment command line.
    pub command_prefix: String,
    /// Speculative plans executing at once; more wait, in order.
    pub max_concurrent_plans: usize,
}

#[derive(Debug, Clone)]
pub struct TerraformConfig {
    /// Where Terraform versions are downloaded from (same layout as releases.hashicorp.com).
    pub releases_url: Url,
    /// Where downloaded versions are kept, one directory per version.
    pub tool_cache: PathBuf,
}

/// The file as written; every field optional so that the environment can fill it in.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    public_url: Option<String>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    encryption_key: Option<String>,
    #[serde(default)]
    github: RawGitHub,
    #[serde(default)]
    ingest: RawIngest,
    #[serde(default)]
    dispatcher: RawDispatcher,
    #[serde(default)]
    runner: RawRunner,
    #[serde(default)]
    terraform: RawTerraform,
    #[serde(default)]
    pull_requests: RawPullRequests,
    #[serde(default)]
    feedback: RawFeedback,
    #[serde(default)]
    workspaces: Vec<RawWorkspace>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorkspace {
    name: String,
    repo: String,
    branch: Option<String>,
    working_directory: Option<String>,
    trigger_patterns: Option<Vec<String>>,
    auto_apply: Option<bool>,
    terraform_version: Option<String>,
    speculative_enabled: Option<bool>,
    plan_fork_pull_requests: Option<bool>,
    network: Option<bool>,
    #[serde(default)]
    vars: std::collections::BTreeMap<String, RawVariable>,
    #[serde(default)]
    env: std::collections::BTreeMap<String, RawVariable>,
}

/// `key = "value"` or `key = { value = "…", sensitive = true }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawVariable {
    Plain(String),
    Full {
        value: String,
        #[serde(default)]
        sensitive: bool,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGitHub {
    api_url: Option<String>,
    web_url: Option<String>,
    app_id: Option<StringOrNumber>,
    private_key: Option<String>,
    private_key_path: Option<PathBuf>,
    webhook_secret: Option<SecretList>,
    content_requests_per_minute: Option<u32>,
    timeout_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIngest {
    max_body_bytes: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDispatcher {
    enabled: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRunner {
    enabled: Option<bool>,
    max_processes: Option<usize>,
    phase_timeout_secs: Option<u64>,
    isolation: Option<String>,
    sandbox_read_only: Option<Vec<PathBuf>>,
    supervisor: Option<PathBuf>,
    on_shutdown: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFeedback {
    commit_statuses: Option<bool>,
    check_runs: Option<bool>,
    aggregate_status: Option<bool>,
    untouched: Option<Untouched>,
    hold_in_between_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPullRequests {
    plan_drafts: Option<bool>,
    command_prefix: Option<String>,
    max_concurrent_plans: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTerraform {
    releases_url: Option<String>,
    tool_cache: Option<PathBuf>,
}

/// `app_id = 123` or `app_id = "123"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum StringOrNumber {
    Number(u64),
    String(String),
}

impl StringOrNumber {
    fn into_string(self) -> String {
        match self {
            StringOrNumber::Number(n) => n.to_string(),
            StringOrNumber::String(s) => s,
        }
    }
}

/// `webhook_secret = "a"`, `"a,b"` or `["a", "b"]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum SecretList {
    One(String),
    Many(Vec<String>),
}

impl SecretList {
    fn into_secrets(self) -> Vec<SecretString> {
        let items = match self {
            SecretList::One(s) => s.split(',').map(str::to_string).collect(),
            SecretList::Many(v) => v,
        };
        items
            .into_iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .map(SecretString::from)
            .collect()
    }
}

impl Config {
    /// Reads the file (if any), applies the environment, fills defaults and validates.
    pub fn load(path: Option<&Path>, env: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let mut raw = match path {
            Some(path) => read_file(path)?,
            None => RawConfig::default(),
        };
        apply_env(&mut raw, env)?;
        validate(raw)
    }

    /// The process environment, for [`Config::load`].
    pub fn process_env() -> HashMap<String, String> {
        std::env::vars().collect()
    }

    pub fn app_credentials_dir(&self) -> PathBuf {
        self.data_dir.join(APP_CREDENTIALS_DIR)
    }
}

fn read_file(path: &Path) -> Result<RawConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new("--config", format!("cannot read {}: {e}", path.display()))
    })?;
    toml::from_str(&text).map_err(|e| {
        let key = e.span().map(|s| key_at(&text, s.start)).unwrap_or_default();
        let message = e.message().to_string();
        ConfigError::new(if key.is_empty() { "--config" } else { &key }, message)
    })
}

/// The key named on the line where a TOML error starts, for a readable message.
fn key_at(text: &str, offset: usize) -> String {
    let line_start = text[..offset.min(text.len())]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let line = &text[line_start..];
    line.split(['=', '\n'])
        .next()
        .unwrap_or("")
        .trim()
        .to_string()
}

fn apply_env(raw: &mut RawConfig, env: &HashMap<String, String>) -> Result<(), ConfigError> {
    let get = |k: &str| env.get(k).filter(|v| !v.is_empty()).cloned();
    if let Some(v) = get("GANTRY_LISTEN") {
        raw.listen = Some(v);
    }
    if let Some(v) = get("GANTRY_PUBLIC_URL") {
        raw.public_url = Some(v);
    }
    if let Some(v) = get("GANTRY_DATA_DIR") {
        raw.data_dir = Some(v.into());
    }
    if let Some(v) = get("GANTRY_DATABASE_URL") {
        raw.database_url = Some(v);
    }
    if let Some(v) = get("GANTRY_ENCRYPTION_KEY") {
        raw.encryption_key = Some(v);
    }
    if let Some(v) = get("GANTRY_GITHUB_API_URL") {
        raw.github.api_url = Some(v);
    }
    if let Some(v) = get("GANTRY_GITHUB_WEB_URL") {
        raw.github.web_url = Some(v);
    }
    if let Some(v) = get("GANTRY_APP_ID") {
        raw.github.app_id = Some(StringOrNumber::String(v));
    }
    if let Some(v) = get("GANTRY_APP_PRIVATE_KEY") {
        raw.github.private_key = Some(v);
        raw.github.private_key_path = None;
    }
    if let Some(v) = get("GANTRY_APP_PRIVATE_KEY_PATH") {
        raw.github.private_key_path = Some(v.into());
        raw.github.private_key = None;
    }
    if let Some(v) = get("GANTRY_WEBHOOK_SECRET") {
        raw.github.webhook_secret = Some(SecretList::One(v));
    }
    if let Some(v) = get("GANTRY_DISPATCHER_ENABLED") {
        raw.dispatcher.enabled = Some(parse_bool("dispatcher.enabled", &v)?);
    }
    if let Some(v) = get("GANTRY_RUNNER_ENABLED") {
        raw.runner.enabled = Some(parse_bool("runner.enabled", &v)?);
    }
    if let Some(v) = get("GANTRY_GITHUB_CONTENT_REQUESTS_PER_MINUTE") {
        let key = "github.content_requests_per_minute";
        raw.github.content_requests_per_minute = Some(parse_whole(key, &v)?);
    }
    if let Some(v) = get("GANTRY_GITHUB_TIMEOUT_SECS") {
        raw.github.timeout_secs = Some(parse_whole("github.timeout_secs", &v)?);
    }
    if let Some(v) = get("GANTRY_RUNNER_MAX_PROCESSES") {
        let n = v
            .trim()
            .parse()
            .map_err(|_| ConfigError::new("runner.max_processes", "must be a whole number"))?;
        raw.runner.max_processes = Some(n);
    }
    if let Some(v) = get("GANTRY_RUNNER_ISOLATION") {
        raw.runner.isolation = Some(v);
    }
    if let Some(v) = get("GANTRY_RUNNER_SANDBOX_READ_ONLY") {
        raw.runner.sandbox_read_only = Some(std::env::split_paths(&v).collect());
    }
    if let Some(v) = get("GANTRY_RUNNER_SUPERVISOR") {
        raw.runner.supervisor = Some(v.into());
    }
    if let Some(v) = get("GANTRY_RUNNER_ON_SHUTDOWN") {
        raw.runner.on_shutdown = Some(v);
    }
    if let Some(v) = get("GANTRY_TERRAFORM_RELEASES_URL") {
        raw.terraform.releases_url = Some(v);
    }
    if let Some(v) = get("GANTRY_TERRAFORM_TOOL_CACHE") {
        raw.terraform.tool_cache = Some(v.into());
    }
    Ok(())
}

fn parse_whole<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, ConfigError> {
    value
        .trim()
        .parse()
        .map_err(|_| ConfigError::new(key, "must be a whole number"))
}

fn parse_bool(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::new(key, "must be true or false")),
    }
}

fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
    let listen: SocketAddr = raw
        .listen
        .as_deref()
        .unwrap_or("127.0.0.1:8080")
        .parse()
        .map_err(|_| {
            ConfigError::new("listen", "must be an address and port, like 127.0.0.1:8080")
        })?;
    let public_url = match raw.public_url {
        Some(u) => parse_http_url("public_url", &u)?,
        None => parse_http_url("public_url", &format!("http://{listen}"))?,
    };
    let data_dir = raw.data_dir.unwrap_or_else(|| PathBuf::from("data"));
    let database_url = match raw.database_url {
        Some(url) => check_database_url(url)?,
        None => format!("sqlite://{}", data_dir.join("gantry.db").display()),
    };
    let github = validate_github(raw.github, &data_dir)?;
    let max_body_bytes = raw
        .ingest
        .max_body_bytes
        .unwrap_or(DEFAULT_MAX_WEBHOOK_BYTES);
    if max_body_bytes == 0 {
        return Err(ConfigError::new(
            "ingest.max_body_bytes",
            "must be greater than 0",
        ));
    }
    let terraform = TerraformConfig {
        releases_url: parse_http_url(
            "terraform.releases_url",
            raw.terraform
                .releases_url
                .as_deref()
                .unwrap_or(crate::executor::terraform_install::DEFAULT_RELEASES_URL),
        )?,
        tool_cache: raw
            .terraform
            .tool_cache
            .unwrap_or_else(|| data_dir.join("tools").join("terraform")),
    };
    Ok(Config {
        listen,
        public_url,
        data_dir,
        database_url: SecretString::from(database_url),
        encryption_key: raw.encryption_key.map(SecretString::from),
        github,
        ingest: IngestConfig { max_body_bytes },
        dispatcher: DispatcherConfig {
            enabled: raw.dispatcher.enabled.unwrap_or(true),
        },
        runner: validate_runner(raw.runner)?,
        terraform,
        pull_requests: validate_pull_requests(raw.pull_requests)?,
        feedback: FeedbackConfig {
            commit_statuses: raw.feedback.commit_statuses.unwrap_or(true),
            check_runs: raw.feedback.check_runs.unwrap_or(true),
            aggregate_status: raw.feedback.aggregate_status.unwrap_or(false),
            untouched: raw.feedback.untouched.unwrap_or(Untouched::Status),
            hold_in_between: std::time::Duration::from_millis(
                raw.feedback.hold_in_between_ms.unwrap_or(1000),
            ),
        },
        workspaces: validate_workspaces(raw.workspaces)?,
    })
}

fn validate_pull_requests(raw: RawPullRequests) -> Result<PullRequestConfig, ConfigError> {
    let prefix = raw.command_prefix.unwrap_or_else(|| "/gantry".into());
    if prefix.trim().is_empty() || prefix.contains(char::is_whitespace) {
        return Err(ConfigError::new(
            "pull_requests.command_prefix",
            "must be one word, like /gantry",
        ));
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let max = raw.max_concurrent_plans.unwrap_or(2 * cores);
    if max == 0 {
        return Err(ConfigError::new(
            "pull_requests.max_concurrent_plans",
            "must be greater than 0",
        ));
    }
    Ok(PullRequestConfig {
        plan_drafts: raw.plan_drafts.unwrap_or(true),
        command_prefix: prefix,
        max_concurrent_plans: max,
    })
}

fn validate_runner(raw: RawRunner) -> Result<RunnerConfig, ConfigError> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let max_processes = raw.max_processes.unwrap_or(2 * cores);
    if max_processes == 0 {
        return Err(ConfigError::new(
            "runner.max_processes",
            "must be greater than 0",
        ));
    }
    let timeout = raw.phase_timeout_secs.unwrap_or(3600);
    if timeout == 0 {
        return Err(ConfigError::new(
            "runner.phase_timeout_secs",
            "must be greater than 0",
        ));
    }
    let isolation = match raw.isolation.as_deref().unwrap_or("sandbox") {
        "sandbox" => IsolationSetting::Sandbox,
        "none" => IsolationSetting::None,
        other => {
            return Err(ConfigError::new(
                "runner.isolation",
                format!("`{other}` is not one of \"sandbox\", \"none\""),
            ));
        }
    };
    let on_shutdown = match raw.on_shutdown.as_deref().unwrap_or("detach") {
        "detach" => OnShutdown::Detach,
        "cancel" => OnShutdown::Cancel,
        other => {
            return Err(ConfigError::new(
                "runner.on_shutdown",
                format!("`{other}` is not one of \"detach\", \"cancel\""),
            ));
        }
    };
    let sandbox_read_only = raw.sandbox_read_only.unwrap_or_default();
    if let Some(path) = sandbox_read_only.iter().find(|p| !p.is_absolute()) {
        return Err(ConfigError::new(
            "runner.sandbox_read_only",
            format!("{} is not an absolute path", path.display()),
        ));
    }
    let supervisor = match raw.supervisor {
        Some(path) => path,
        None => std::env::current_exe().map_err(|e| {
            ConfigError::new(
                "runner.supervisor",
                format!("cannot find this program's own path ({e}); name it here"),
            )
        })?,
    };
    Ok(RunnerConfig {
        enabled: raw.enabled.unwrap_or(true),
        max_processes,
        phase_timeout: std::time::Duration::from_secs(timeout),
        isolation,
        sandbox_read_only,
        supervisor,
        on_shutdown,
    })
}

fn validate_workspaces(raw: Vec<RawWorkspace>) -> Result<Vec<WorkspaceSpec>, ConfigError> {
    let mut specs: Vec<WorkspaceSpec> = Vec::with_capacity(raw.len());
    for (i, ws) in raw.into_iter().enumerate() {
        let key = |field: &str| format!("workspaces[{i}].{field}");
        let name = WorkspaceName::parse(&ws.name).map_err(|m| ConfigError::new(&key("name"), m))?;
        if specs.iter().any(|s| s.name == name) {
            return Err(ConfigError::new(
                &key("name"),
                format!("`{name}` is declared twice"),
            ));
        }
        let repo = RepoName::parse(&ws.repo).map_err(|m| ConfigError::new(&key("repo"), m))?;
        if let Some(branch) = &ws.branch {
            check_branch_name(branch).map_err(|m| ConfigError::new(&key("branch"), m))?;
        }
        let working_directory =
            normalize_working_directory(ws.working_directory.as_deref().unwrap_or(""))
                .map_err(|m| ConfigError::new(&key("working_directory"), m))?;
        if let Some(version) = &ws.terraform_version {
            check_terraform_version(version)
                .map_err(|m| ConfigError::new(&key("terraform_version"), m))?;
        }
        let mut variables = std::collections::BTreeMap::new();
        for (category, table, vars) in [
            (VariableCategory::Terraform, "vars", ws.vars),
            (VariableCategory::Env, "env", ws.env),
        ] {
            for (name, value) in vars {
                check_variable_name(category, &name)
                    .map_err(|m| ConfigError::new(&key(&format!("{table}.{name}")), m))?;
                let value = match value {
                    RawVariable::Plain(value) => VariableValue {
                        value,
                        sensitive: false,
                    },
                    RawVariable::Full { value, sensitive } => VariableValue { value, sensitive },
                };
                variables.insert((category, name), value);
            }
        }
        let spec = WorkspaceSpec {
            name,
            repo,
            branch: ws.branch,
            working_directory,
            trigger_patterns: ws.trigger_patterns.unwrap_or_default(),
            auto_apply: ws.auto_apply.unwrap_or(false),
            terraform_version: ws.terraform_version,
            speculative_enabled: ws.speculative_enabled.unwrap_or(true),
            plan_forks: ws.plan_fork_pull_requests.unwrap_or(false),
            network: ws.network.unwrap_or(true),
            variables,
        };
        spec.triggers()
            .map_err(|e| ConfigError::new(&key("trigger_patterns"), e.to_string()))?;
        specs.push(spec);
    }
    Ok(specs)
}

fn validate_github(raw: RawGitHub, data_dir: &Path) -> Result<GitHubConfig, ConfigError> {
    let api_url = parse_http_url(
        "github.api_url",
        raw.api_url.as_deref().unwrap_or("https://api.github.com"),
    )?;
    let web_url = parse_http_url(
        "github.web_url",
        raw.web_url.as_deref().unwrap_or("https://github.com"),
    )?;
    let stored = data_dir.join(APP_CREDENTIALS_DIR);
    let app_id = match raw.app_id {
        Some(id) => Some(id.into_string()),
        None => read_stored(&stored, APP_ID_FILE, "github.app_id")?,
    };
    let private_key = match (raw.private_key, raw.private_key_path) {
        (Some(key), _) => Some(key),
        (None, Some(path)) => Some(std::fs::read_to_string(&path).map_err(|e| {
            ConfigError::new(
                "github.private_key_path",
                format!("cannot read {}: {e}", path.display()),
            )
        })?),
        (None, None) => read_stored(&stored, PRIVATE_KEY_FILE, "github.private_key")?,
    };
    let app = match (app_id, private_key) {
        (None, None) => None,
        (Some(_), None) => {
            return Err(ConfigError::new(
                "github.private_key",
                "the app id is set but not its private key (set GANTRY_APP_PRIVATE_KEY_PATH)",
            ));
        }
        (None, Some(_)) => {
            return Err(ConfigError::new(
                "github.app_id",
                "the private key is set but not the app id",
            ));
        }
        (Some(id), Some(key)) => {
            let app_id = id
                .trim()
                .parse()
                .map_err(|_| ConfigError::new("github.app_id", "must be a number"))?;
            let key = SecretString::from(check_pem(key)?);
            let credentials = AppCredentials::new(app_id, &key).map_err(|_| {
                ConfigError::new("github.private_key", "is not a usable RSA private key")
            })?;
            Some(AppSettings {
                app_id,
                credentials,
            })
        }
    };
    let webhook_secret = match raw.webhook_secret {
        Some(list) => Some(list),
        None => {
            read_stored(&stored, WEBHOOK_SECRET_FILE, "github.webhook_secret")?.map(SecretList::One)
        }
    };
    let webhook_secrets = webhook_secret
        .map(SecretList::into_secrets)
        .unwrap_or_default();
    if app.is_some() && webhook_secrets.is_empty() {
        return Err(ConfigError::new(
            "github.webhook_secret",
            "is required once the GitHub App is configured",
        ));
    }
    let content_requests_per_minute = std::num::NonZeroU32::new(
        raw.content_requests_per_minute
            .unwrap_or(crate::github::DEFAULT_CONTENT_REQUESTS_PER_MINUTE),
    )
    .ok_or_else(|| ConfigError::new("github.content_requests_per_minute", "must be at least 1"))?;
    let timeout_secs = raw.timeout_secs.unwrap_or(30);
    if !(1..=600).contains(&timeout_secs) {
        return Err(ConfigError::new(
            "github.timeout_secs",
            "must be between 1 and 600",
        ));
    }
    Ok(GitHubConfig {
        api_url,
        web_url,
        app,
        webhook_secrets,
        content_requests_per_minute,
        timeout: std::time::Duration::from_secs(timeout_secs),
    })
}

fn check_pem(key: String) -> Result<String, ConfigError> {
    if key.contains("-----BEGIN") && key.contains("PRIVATE KEY-----") {
        Ok(key)
    } else {
        Err(ConfigError::new(
            "github.private_key",
            "is not a PEM private key (expected -----BEGIN RSA PRIVATE KEY-----)",
        ))
    }
}

/// A credential the manifest flow saved; absent is fine, unreadable is an error for `key`.
fn read_stored(dir: &Path, file: &str, key: &str) -> Result<Option<String>, ConfigError> {
    match std::fs::read_to_string(dir.join(file)) {
        Ok(text) => Ok(Some(text.trim_end().to_string()).filter(|s| !s.is_empty())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ConfigError::new(
            key,
            format!("cannot read {}: {e}", dir.join(file).display()),
        )),
    }
}

fn parse_http_url(key: &str, value: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(value).map_err(|e| ConfigError::new(key, format!("is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(ConfigError::new(key, "must be an http or https URL"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::new(key, "must not have a query or a fragment"));
    }
    Ok(url)
}

/// Checks the database URL the way the store will read it, without echoing it (it may hold a
/// password).
fn check_database_url(url: String) -> Result<String, ConfigError> {
    use std::str::FromStr;
    let parses = if url.starts_with("sqlite:") {
        sqlx::sqlite::SqliteConnectOptions::from_str(&url).is_ok()
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        sqlx::postgres::PgConnectOptions::from_str(&url).is_ok()
    } else {
        return Err(ConfigError::new(
            "database_url",
            "must start with sqlite: or postgres:",
        ));
    };
    if parses {
        Ok(url)
    } else {
        Err(ConfigError::new(
            "database_url",
            "is not a valid database URL",
        ))
    }
}

/// Writes the app credentials the manifest flow received, readable only by the owner. Refuses
/// to replace credentials that exist already. Each file is written beside its final name and
/// renamed into place, so a crash leaves either the old file or the new one, never half of one.
pub fn store_app_credentials(
    data_dir: &Path,
    app_id: u64,
    private_key_pem: &str,
    webhook_secret: &str,
) -> std::io::Result<PathBuf> {
    let dir = data_dir.join(APP_CREDENTIALS_DIR);
    std::fs::create_dir_all(&dir)?;
    if dir.join(APP_ID_FILE).exists() || dir.join(PRIVATE_KEY_FILE).exists() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "GitHub App credentials exist already",
        ));
    }
    // The id goes last: until it is there, the next start sees no app.
    write_private(&dir.join(PRIVATE_KEY_FILE), private_key_pem)?;
    write_private(&dir.join(WEBHOOK_SECRET_FILE), webhook_secret)?;
    write_private(&dir.join(APP_ID_FILE), &app_id.to_string())?;
    std::fs::File::open(&dir)?.sync_all()?;
    Ok(dir)
}

/// Writes the one-time token that opens the GitHub App setup page, and returns where.
pub fn store_setup_token(data_dir: &Path, token: &str) -> std::io::Result<PathBuf> {
    let dir = data_dir.join(APP_CREDENTIALS_DIR);
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(SETUP_TOKEN_FILE);
    write_private(&path, token)?;
    Ok(path)
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let partial = path.with_extension("partial");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&partial)?;
    // `mode` only applies when the file is created; tighten a leftover one too.
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&partial, path)
}

#[cfg(test)]
mod tests;
