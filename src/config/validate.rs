//! Checks the configuration as written and makes the [`Config`] the program trusts: defaults
//! filled in, every value parsed, every error naming its key.

use std::path::Path;

use secrecy::SecretString;
use url::Url;

use super::raw::*;
use super::*;
use crate::core::notifications::{self, NotificationSpec};
use crate::core::run_triggers;
use crate::core::workspace::{
    RepoName, VariableCategory, VariableValue, WorkspaceName, check_branch_name,
    check_terraform_version, check_variable_name, normalize_working_directory, parse_tags,
};

pub(super) fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
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
        None => {
            let scheme = if raw.tls.cert_path.is_some() {
                "https"
            } else {
                "http"
            };
            parse_http_url("public_url", &format!("{scheme}://{listen}"))?
        }
    };
    let data_dir = raw.data_dir.unwrap_or_else(|| PathBuf::from("data"));
    let database_url = match raw.database_url {
        Some(url) => check_database_url(url)?,
        None => format!("sqlite://{}", data_dir.join("gantry.db").display()),
    };
    let github = validate_github(raw.github, &data_dir)?;
    let organization = raw
        .organization
        .unwrap_or_else(|| DEFAULT_ORGANIZATION.to_string());
    WorkspaceName::parse(&organization).map_err(|e| ConfigError::new("organization", e))?;
    let tls = match (raw.tls.cert_path, raw.tls.key_path) {
        (Some(cert_path), Some(key_path)) => Some(TlsConfig {
            cert_path,
            key_path,
        }),
        (None, None) => None,
        (Some(_), None) => {
            return Err(ConfigError::new(
                "tls.key_path",
                "is needed with tls.cert_path",
            ));
        }
        (None, Some(_)) => {
            return Err(ConfigError::new(
                "tls.cert_path",
                "is needed with tls.key_path",
            ));
        }
    };
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
    let policies = validate_policies(raw.policy_sets)?;
    let own = own_urls(&public_url, &[listen]);
    let (workspaces, notifications) = validate_workspaces(raw.workspaces, &own)?;
    Ok(Config {
        clock: crate::clock::Clock::system(),
        policies,
        listen,
        public_url,
        organization,
        tls,
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
        workspaces,
        notifications,
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
        max_assessments: raw.max_assessments.unwrap_or(2),
    })
}

/// Every workspace's notification configurations, by workspace name.
type Notifications = std::collections::BTreeMap<String, Vec<NotificationSpec>>;

fn validate_workspaces(
    raw: Vec<RawWorkspace>,
    own: &[Url],
) -> Result<(Vec<WorkspaceSpec>, Notifications), ConfigError> {
    let mut specs: Vec<WorkspaceSpec> = Vec::with_capacity(raw.len());
    let mut notifications = Notifications::new();
    for (i, mut ws) in raw.into_iter().enumerate() {
        let key = |field: &str| format!("workspaces[{i}].{field}");
        let name = WorkspaceName::parse(&ws.name).map_err(|m| ConfigError::new(&key("name"), m))?;
        let configured =
            validate_notifications(ws.notifications.take().unwrap_or_default(), own, i)?;
        notifications.insert(name.as_str().to_string(), configured);
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
        let default = WorkspaceSpec::new(name, repo);
        let spec = WorkspaceSpec {
            branch: ws.branch,
            working_directory,
            trigger_patterns: ws.trigger_patterns.unwrap_or_default(),
            auto_apply: ws.auto_apply.unwrap_or(default.auto_apply),
            terraform_version: ws.terraform_version,
            speculative_enabled: ws
                .speculative_enabled
                .unwrap_or(default.speculative_enabled),
            plan_forks: ws.plan_fork_pull_requests.unwrap_or(default.plan_forks),
            network: ws.network.unwrap_or(default.network),
            tags: parse_tags(ws.tags.unwrap_or_default())
                .map_err(|m| ConfigError::new(&key("tags"), m))?,
            variables,
            run_triggers: (ws.run_triggers.unwrap_or_default().iter())
                .map(|n| {
                    WorkspaceName::parse(n).map_err(|m| ConfigError::new(&key("run_triggers"), m))
                })
                .collect::<Result<_, _>>()?,
            auto_apply_run_trigger: ws.auto_apply_run_trigger.unwrap_or(false),
            assessments: ws.assessments.unwrap_or(false),
            assessment_interval: match &ws.assessment_interval {
                Some(text) => crate::core::assessments::parse_interval(text)
                    .map_err(|m| ConfigError::new(&key("assessment_interval"), m))?,
                None => default.assessment_interval,
            },
            ..default
        };
        spec.triggers()
            .map_err(|e| ConfigError::new(&key("trigger_patterns"), e.to_string()))?;
        specs.push(spec);
    }
    // Run triggers name workspaces of this file, and never make a cycle.
    let all: std::collections::BTreeMap<String, Vec<String>> = specs
        .iter()
        .map(|s| {
            let sources = s.run_triggers.iter().map(|n| n.as_str().to_string());
            (s.name.as_str().to_string(), sources.collect())
        })
        .collect();
    for (i, spec) in specs.iter().enumerate() {
        if let Some(why) = run_triggers::problem(spec.name.as_str(), &spec.run_triggers, &all) {
            return Err(ConfigError::new(
                &format!("workspaces[{i}].run_triggers"),
                why,
            ));
        }
    }
    Ok((specs, notifications))
}

/// `[[workspaces.notifications]]` of workspace `i`: at most 20, names unique, each sendable.
fn validate_notifications(
    raw: Vec<RawNotification>,
    own: &[Url],
    i: usize,
) -> Result<Vec<NotificationSpec>, ConfigError> {
    let key = |n: usize, field: &str| format!("workspaces[{i}].notifications[{n}].{field}");
    if raw.len() > notifications::MAX_PER_WORKSPACE {
        return Err(ConfigError::new(
            &format!("workspaces[{i}].notifications"),
            format!("at most {} per workspace", notifications::MAX_PER_WORKSPACE),
        ));
    }
    let mut specs: Vec<NotificationSpec> = Vec::new();
    for (n, raw) in raw.into_iter().enumerate() {
        let destination = notifications::Destination::parse(&raw.destination)
            .map_err(|m| ConfigError::new(&key(n, "destination"), m))?;
        let spec = NotificationSpec {
            name: raw.name,
            destination,
            url: raw.url,
            token: raw.token.unwrap_or_default(),
            triggers: raw.triggers.unwrap_or_default(),
            enabled: raw.enabled.unwrap_or(true),
        };
        if let Some((field, why)) = spec.problem(own) {
            return Err(ConfigError::new(&key(n, field), why));
        }
        if specs.iter().any(|s| s.name == spec.name) {
            return Err(ConfigError::new(
                &key(n, "name"),
                "is taken by another configuration",
            ));
        }
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

fn validate_policies(sets: Vec<RawPolicySet>) -> Result<PolicyConfig, ConfigError> {
    let mut validated: Vec<PolicySetConfig> = Vec::new();
    for (i, set) in sets.into_iter().enumerate() {
        let key = |field: &str| format!("policy_sets[{i}].{field}");
        WorkspaceName::parse(&set.name).map_err(|e| ConfigError::new(&key("name"), e))?;
        if validated.iter().any(|s| s.name == set.name) {
            return Err(ConfigError::new(
                &key("name"),
                "is taken by another policy set",
            ));
        }
        let source = match (set.repo, set.branch) {
            (None, None) => {
                let path = PathBuf::from(set.path.ok_or_else(|| {
                    ConfigError::new(&key("path"), "is required: the policy set's folder")
                })?);
                if !path.is_absolute() {
                    return Err(ConfigError::new(&key("path"), "must be an absolute path"));
                }
                PolicySource::Directory(path)
            }
            (Some(repo), Some(branch)) => {
                RepoName::parse(&repo).map_err(|e| ConfigError::new(&key("repo"), e))?;
                check_branch_name(&branch).map_err(|m| ConfigError::new(&key("branch"), m))?;
                let folder = set.path.unwrap_or_default();
                if folder.starts_with('/') || folder.split('/').any(|part| part == "..") {
                    return Err(ConfigError::new(
                        &key("path"),
                        "must be a folder within the repository",
                    ));
                }
                PolicySource::Repository {
                    repo,
                    branch,
                    folder,
                }
            }
            (Some(_), None) => {
                return Err(ConfigError::new(
                    &key("branch"),
                    "is required with repo: the branch whose head the set is read at",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    &key("repo"),
                    "is required with branch: the repository the set is kept in",
                ));
            }
        };
        let workspaces = set.workspaces.unwrap_or_default();
        for pattern in &workspaces {
            globset::Glob::new(pattern)
                .map_err(|e| ConfigError::new(&key("workspaces"), e.to_string()))?;
        }
        validated.push(PolicySetConfig {
            name: set.name,
            source,
            workspaces,
            prevent_self_override: set.prevent_self_override.unwrap_or(false),
        });
    }
    Ok(PolicyConfig { sets: validated })
}
