//! Gantry's configuration: a TOML file plus `GANTRY_*` environment overrides, validated once at
//! start into a [`Config`] that the rest of the program trusts. Nothing else reads the environment.
//!
//! Every error names the key (and its environment variable) so that one line tells the operator
//! what to fix; `gantry serve` turns it into exit code 2.

mod credentials;
mod raw;
mod validate;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

use crate::core::notifications::NotificationSpec;

pub use self::credentials::{store_app_credentials, store_setup_token};
use self::raw::{ENV_OVERRIDES, RawConfig, apply_env, read_file};
use self::validate::validate;
use crate::core::workspace::WorkspaceSpec;
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

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// What assessments are scheduled by: the system's clock (a test moves it by hand).
    pub clock: crate::clock::Clock,
    pub listen: SocketAddr,
    pub public_url: Url,
    pub data_dir: PathBuf,
    pub database_url: SecretString,
    /// Seals sensitive variables at rest (64 hex digits); None: a key file in the data dir.
    pub encryption_key: Option<SecretString>,
    /// The one organization the Terraform CLI sees (`GET /api/v2/organizations`).
    pub organization: String,
    /// Serve HTTPS with this certificate (the Terraform CLI finds services over HTTPS only).
    pub tls: Option<TlsConfig>,
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
    /// The OPA policy sets plans are checked against.
    pub policies: PolicyConfig,
    /// Each configuration-file workspace's notification configurations, by workspace name.
    pub notifications: std::collections::BTreeMap<String, Vec<NotificationSpec>>,
}

/// Where Gantry itself is reached — its public URL and, over http and https, each address it
/// listens at: no notification may be sent there.
pub fn own_urls(public_url: &Url, listening: &[std::net::SocketAddr]) -> Vec<Url> {
    let mut own = vec![public_url.clone()];
    for address in listening {
        for scheme in ["http", "https"] {
            own.extend(Url::parse(&format!("{scheme}://{address}/")).ok());
        }
    }
    own
}

/// `[[policy_sets]]`.
#[derive(Debug, Clone, Default)]
pub struct PolicyConfig {
    pub sets: Vec<PolicySetConfig>,
}

impl PolicyConfig {
    /// The policy sets that apply to workspace `name`.
    pub fn sets_for(&self, name: &str) -> Vec<&PolicySetConfig> {
        self.sets
            .iter()
            .filter(|set| crate::core::policy::applies_to(&set.workspaces, name))
            .collect()
    }

    /// The sets whose failures their change's author may not override.
    pub fn guarded_sets(&self) -> Vec<&str> {
        self.sets
            .iter()
            .filter(|set| set.prevent_self_override)
            .map(|set| set.name.as_str())
            .collect()
    }
}

#[derive(Debug, Clone)]
pub struct PolicySetConfig {
    pub name: String,
    /// Where its `policies.hcl` and `.rego` files are, read at each check. Never the commit
    /// under review: a change must not be able to rewrite the rules it is checked against.
    pub source: PolicySource,
    /// Names or glob patterns; empty: every workspace.
    pub workspaces: Vec<String>,
    /// The author of a change (who pushed it, who opened its pull request, the API token that
    /// made the run) may not override a failure of this set.
    pub prevent_self_override: bool,
}

/// Where a policy set's files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicySource {
    /// A folder on Gantry's host.
    Directory(PathBuf),
    /// A folder (`""`: the root) of a repository the App is installed on, at the head of
    /// `branch`.
    Repository {
        repo: String,
        branch: String,
        folder: String,
    },
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

/// `[tls]`: a PEM certificate chain and its private key.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
}

/// The organization name when none is configured.
pub const DEFAULT_ORGANIZATION: &str = "gantry";

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
    /// Health assessments running at once, across all servers (0: none run here).
    pub max_assessments: usize,
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

#[cfg(test)]
mod tests;
