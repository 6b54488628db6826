//! The configuration as written: the TOML file's shape (every field optional) and the
//! `GANTRY_*` variables that override it, before anything is checked.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use secrecy::SecretString;
use serde::Deserialize;

use super::{ConfigError, Untouched};

/// Environment variable → configuration key it overrides.
pub(super) const ENV_OVERRIDES: &[(&str, &str)] = &[
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
    ("GANTRY_ORGANIZATION", "organization"),
    ("GANTRY_TLS_CERT_PATH", "tls.cert_path"),
    ("GANTRY_TLS_KEY_PATH", "tls.key_path"),
];

/// The file as written; every field optional so that the environment can fill it in.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) listen: Option<String>,
    pub(super) public_url: Option<String>,
    pub(super) data_dir: Option<PathBuf>,
    pub(super) database_url: Option<String>,
    pub(super) encryption_key: Option<String>,
    pub(super) organization: Option<String>,
    #[serde(default)]
    pub(super) tls: RawTls,
    #[serde(default)]
    pub(super) github: RawGitHub,
    #[serde(default)]
    pub(super) ingest: RawIngest,
    #[serde(default)]
    pub(super) dispatcher: RawDispatcher,
    #[serde(default)]
    pub(super) runner: RawRunner,
    #[serde(default)]
    pub(super) terraform: RawTerraform,
    #[serde(default)]
    pub(super) pull_requests: RawPullRequests,
    #[serde(default)]
    pub(super) feedback: RawFeedback,
    #[serde(default)]
    pub(super) workspaces: Vec<RawWorkspace>,
    #[serde(default)]
    pub(super) policy_sets: Vec<RawPolicySet>,
}

/// `[[policy_sets]]`: a folder of OPA policies, on Gantry's host or in a repository.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicySet {
    pub(super) name: String,
    pub(super) path: Option<String>,
    pub(super) repo: Option<String>,
    pub(super) branch: Option<String>,
    pub(super) workspaces: Option<Vec<String>>,
    pub(super) prevent_self_override: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWorkspace {
    pub(super) name: String,
    pub(super) repo: String,
    pub(super) branch: Option<String>,
    pub(super) working_directory: Option<String>,
    pub(super) trigger_patterns: Option<Vec<String>>,
    pub(super) auto_apply: Option<bool>,
    pub(super) terraform_version: Option<String>,
    pub(super) speculative_enabled: Option<bool>,
    pub(super) plan_fork_pull_requests: Option<bool>,
    pub(super) network: Option<bool>,
    pub(super) tags: Option<Vec<String>>,
    pub(super) run_triggers: Option<Vec<String>>,
    pub(super) auto_apply_run_trigger: Option<bool>,
    pub(super) assessments: Option<bool>,
    pub(super) assessment_interval: Option<String>,
    pub(super) notifications: Option<Vec<RawNotification>>,
    #[serde(default)]
    pub(super) vars: std::collections::BTreeMap<String, RawVariable>,
    #[serde(default)]
    pub(super) env: std::collections::BTreeMap<String, RawVariable>,
}

/// `[[workspaces.notifications]]`: a notification configuration.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotification {
    pub(super) name: String,
    pub(super) destination: String,
    pub(super) url: String,
    pub(super) token: Option<String>,
    pub(super) triggers: Option<Vec<String>>,
    pub(super) enabled: Option<bool>,
}

impl std::fmt::Debug for RawNotification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawNotification")
            .field("name", &self.name)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// `key = "value"` or `key = { value = "…", sensitive = true }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawVariable {
    Plain(String),
    Full {
        value: String,
        #[serde(default)]
        sensitive: bool,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGitHub {
    pub(super) api_url: Option<String>,
    pub(super) web_url: Option<String>,
    pub(super) app_id: Option<StringOrNumber>,
    pub(super) private_key: Option<String>,
    pub(super) private_key_path: Option<PathBuf>,
    pub(super) webhook_secret: Option<SecretList>,
    pub(super) content_requests_per_minute: Option<u32>,
    pub(super) timeout_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    pub(super) cert_path: Option<PathBuf>,
    pub(super) key_path: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIngest {
    pub(super) max_body_bytes: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDispatcher {
    pub(super) enabled: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRunner {
    pub(super) enabled: Option<bool>,
    pub(super) max_processes: Option<usize>,
    pub(super) phase_timeout_secs: Option<u64>,
    pub(super) isolation: Option<String>,
    pub(super) sandbox_read_only: Option<Vec<PathBuf>>,
    pub(super) supervisor: Option<PathBuf>,
    pub(super) on_shutdown: Option<String>,
    pub(super) max_assessments: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFeedback {
    pub(super) commit_statuses: Option<bool>,
    pub(super) check_runs: Option<bool>,
    pub(super) aggregate_status: Option<bool>,
    pub(super) untouched: Option<Untouched>,
    pub(super) hold_in_between_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPullRequests {
    pub(super) plan_drafts: Option<bool>,
    pub(super) command_prefix: Option<String>,
    pub(super) max_concurrent_plans: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTerraform {
    pub(super) releases_url: Option<String>,
    pub(super) tool_cache: Option<PathBuf>,
}

/// `app_id = 123` or `app_id = "123"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum StringOrNumber {
    Number(u64),
    String(String),
}

impl StringOrNumber {
    pub(super) fn into_string(self) -> String {
        match self {
            StringOrNumber::Number(n) => n.to_string(),
            StringOrNumber::String(s) => s,
        }
    }
}

/// `webhook_secret = "a"`, `"a,b"` or `["a", "b"]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum SecretList {
    One(String),
    Many(Vec<String>),
}

impl SecretList {
    pub(super) fn into_secrets(self) -> Vec<SecretString> {
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

pub(super) fn read_file(path: &Path) -> Result<RawConfig, ConfigError> {
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

pub(super) fn apply_env(
    raw: &mut RawConfig,
    env: &HashMap<String, String>,
) -> Result<(), ConfigError> {
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
    if let Some(v) = get("GANTRY_ORGANIZATION") {
        raw.organization = Some(v);
    }
    if let Some(v) = get("GANTRY_TLS_CERT_PATH") {
        raw.tls.cert_path = Some(v.into());
    }
    if let Some(v) = get("GANTRY_TLS_KEY_PATH") {
        raw.tls.key_path = Some(v.into());
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
