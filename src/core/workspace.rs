//! What a workspace is: its name, repository, branch, directory, triggers, apply mode,
//! Terraform version and variables. Values parse on construction, so a `WorkspaceSpec` that
//! exists is valid. Pure: no I/O.

use std::collections::BTreeMap;
use std::fmt;

use super::triggers::{TriggerError, Triggers};

/// A workspace name: letters, digits, `-` and `_`, at most 90 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkspaceName(String);

impl WorkspaceName {
    pub fn parse(name: &str) -> Result<Self, String> {
        let valid = !name.is_empty()
            && name.len() <= 90
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if valid {
            Ok(Self(name.to_string()))
        } else {
            Err("must be 1-90 letters, digits, '-' or '_'".to_string())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WorkspaceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A GitHub repository, `owner/name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RepoName(String);

impl RepoName {
    pub fn parse(full_name: &str) -> Result<Self, String> {
        let is_part = |p: &str| {
            !p.is_empty()
                && p.len() <= 100
                && p != "."
                && p != ".."
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        };
        match full_name.split_once('/') {
            Some((owner, name)) if is_part(owner) && is_part(name) => {
                Ok(Self(full_name.to_string()))
            }
            _ => Err("must be owner/name".to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where a variable goes: a Terraform input variable, or the process environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VariableCategory {
    Terraform,
    Env,
}

impl VariableCategory {
    pub fn as_str(self) -> &'static str {
        match self {
            VariableCategory::Terraform => "terraform",
            VariableCategory::Env => "env",
        }
    }
}

/// A variable's value; a sensitive one is written, never shown again.
#[derive(Clone, PartialEq, Eq)]
pub struct VariableValue {
    pub value: String,
    pub sensitive: bool,
}

impl fmt::Debug for VariableValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = if self.sensitive {
            "<sensitive>"
        } else {
            &self.value
        };
        f.debug_struct("VariableValue")
            .field("value", &shown)
            .field("sensitive", &self.sensitive)
            .finish()
    }
}

/// Checks a variable's name for its category: a Terraform identifier, or an environment
/// variable name.
pub fn check_variable_name(category: VariableCategory, name: &str) -> Result<(), String> {
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    let ok = match category {
        VariableCategory::Terraform => {
            first_ok
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        }
        VariableCategory::Env => {
            first_ok && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        }
    };
    if ok && name.len() <= 128 {
        Ok(())
    } else {
        Err(match category {
            VariableCategory::Terraform => "is not a Terraform variable name".to_string(),
            VariableCategory::Env => "is not an environment variable name".to_string(),
        })
    }
}

/// Git's rules for a branch name, the parts that matter here.
pub fn check_branch_name(branch: &str) -> Result<(), String> {
    let valid = !branch.is_empty()
        && branch.len() <= 255
        && !branch.starts_with(['-', '/'])
        && !branch.ends_with(['/', '.'])
        && !branch.contains("..")
        && !branch.contains("//")
        && !branch.ends_with(".lock")
        && branch
            .chars()
            .all(|c| !c.is_control() && !" ~^:?*[\\".contains(c));
    if valid {
        Ok(())
    } else {
        Err("is not a valid branch name".to_string())
    }
}

/// A Terraform version: `MAJOR.MINOR.PATCH`, optionally with a pre-release suffix.
pub fn check_terraform_version(version: &str) -> Result<(), String> {
    let (core, pre) = version.split_once('-').unwrap_or((version, ""));
    let parts: Vec<&str> = core.split('.').collect();
    let numeric = parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let pre_ok = pre.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.');
    if numeric && pre_ok {
        Ok(())
    } else {
        Err("must be a version like 1.0.3".to_string())
    }
}

/// Where a workspace's plans and applies run (Terraform Cloud's execution mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExecutionMode {
    /// In Gantry's sandbox, through the workspace's queue.
    #[default]
    Remote,
    /// On the person's machine: Gantry only keeps the state and its lock.
    Local,
}

impl ExecutionMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionMode::Remote => "remote",
            ExecutionMode::Local => "local",
        }
    }

    pub fn parse(mode: &str) -> Result<Self, String> {
        match mode {
            "remote" => Ok(ExecutionMode::Remote),
            "local" => Ok(ExecutionMode::Local),
            _ => Err("must be remote or local".to_string()),
        }
    }
}

/// A workspace tag, as a `cloud` block selects workspaces by: letters, digits, `-`, `_` and
/// `:`, at most 255 characters (Terraform Cloud's rule), kept lowercase.
pub fn parse_tag(tag: &str) -> Result<String, String> {
    let valid = !tag.is_empty()
        && tag.len() <= 255
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_:".contains(&b));
    if valid {
        Ok(tag.to_ascii_lowercase())
    } else {
        Err(format!(
            "tag {tag:?} must be 1-255 letters, digits, '-', '_' or ':'"
        ))
    }
}

/// A workspace's tags: each checked, sorted, without repeats.
pub fn parse_tags(tags: impl IntoIterator<Item = String>) -> Result<Vec<String>, String> {
    let mut parsed = tags
        .into_iter()
        .map(|t| parse_tag(&t))
        .collect::<Result<Vec<_>, _>>()?;
    parsed.sort();
    parsed.dedup();
    Ok(parsed)
}

/// A workspace as configured.
#[derive(Debug, Clone)]
pub struct WorkspaceSpec {
    pub name: WorkspaceName,
    /// The GitHub repository its runs come from; None for a workspace the Terraform CLI
    /// drives (its configurations are uploaded).
    pub repo: Option<RepoName>,
    pub execution_mode: ExecutionMode,
    /// Sorted, lowercase.
    pub tags: Vec<String>,
    /// None: the repository's default branch.
    pub branch: Option<String>,
    /// Relative to the repository root; "" is the root.
    pub working_directory: String,
    /// Empty: everything under the working directory.
    pub trigger_patterns: Vec<String>,
    pub auto_apply: bool,
    /// None: `terraform` on PATH.
    pub terraform_version: Option<String>,
    pub speculative_enabled: bool,
    /// Plan pull requests from forks by themselves (they run the fork's code); otherwise they
    /// wait for `/gantry plan` from someone with write access.
    pub plan_forks: bool,
    /// Off: the workspace's Terraform runs with no network at all (its sandbox has its own,
    /// empty network namespace).
    pub network: bool,
    pub variables: BTreeMap<(VariableCategory, String), VariableValue>,
    /// Run triggers: the workspaces whose applies (with changes) queue a run here.
    pub run_triggers: Vec<WorkspaceName>,
    /// A run a trigger queued may apply by itself (else it always waits for confirmation,
    /// whatever `auto_apply` says).
    pub auto_apply_run_trigger: bool,
    /// Health assessments (drift detection) of its applied configuration.
    pub assessments: bool,
    /// How often an assessment runs (at least an hour).
    pub assessment_interval: std::time::Duration,
}

impl WorkspaceSpec {
    /// A workspace of `repo` with every setting at its default: the default branch, the
    /// repository root, planning pull requests (not forks' by themselves), confirmation
    /// before apply, the network on, no variables.
    pub fn new(name: WorkspaceName, repo: RepoName) -> Self {
        Self {
            repo: Some(repo),
            ..Self::without_repository(name)
        }
    }

    /// A workspace connected to no repository (the Terraform CLI uploads what it runs), with
    /// the same defaults.
    pub fn without_repository(name: WorkspaceName) -> Self {
        Self {
            name,
            repo: None,
            execution_mode: ExecutionMode::Remote,
            tags: Vec::new(),
            branch: None,
            working_directory: String::new(),
            trigger_patterns: Vec::new(),
            auto_apply: false,
            terraform_version: None,
            speculative_enabled: true,
            plan_forks: false,
            network: true,
            variables: BTreeMap::new(),
            run_triggers: Vec::new(),
            auto_apply_run_trigger: false,
            assessments: false,
            assessment_interval: crate::core::assessments::DEFAULT_INTERVAL,
        }
    }

    /// The repository's `owner/name`, or "" for a workspace connected to none (how it is
    /// stored, and what no push ever names).
    pub fn repo_name(&self) -> &str {
        self.repo.as_ref().map_or("", RepoName::as_str)
    }

    /// The compiled trigger patterns.
    pub fn triggers(&self) -> Result<Triggers, TriggerError> {
        Triggers::new(&self.working_directory, &self.trigger_patterns)
    }
}

/// Checks a working directory: relative, inside the repository.
pub fn normalize_working_directory(dir: &str) -> Result<String, String> {
    let trimmed = dir.trim().trim_matches('/');
    if trimmed.split('/').any(|part| part == "..") {
        return Err("must be a path inside the repository".to_string());
    }
    Ok(if trimmed == "." {
        String::new()
    } else {
        trimmed.to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_names_are_letters_digits_dashes_and_underscores() {
        assert!(WorkspaceName::parse("prod-eu_1").is_ok());
        for bad in ["", "prod eu", "prod/eu", "prød", &"x".repeat(91)] {
            assert!(WorkspaceName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn repositories_are_owner_slash_name() {
        assert!(RepoName::parse("octo-org/infra.live").is_ok());
        for bad in [
            "infra",
            "a/b/c",
            "/infra",
            "octo/",
            "octo/..",
            "octo/in fra",
        ] {
            assert!(RepoName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn variable_names_follow_their_category() {
        assert!(check_variable_name(VariableCategory::Terraform, "instance-count").is_ok());
        assert!(check_variable_name(VariableCategory::Env, "instance-count").is_err());
        assert!(check_variable_name(VariableCategory::Env, "TF_LOG").is_ok());
        assert!(check_variable_name(VariableCategory::Env, "1ABC").is_err());
        assert!(check_variable_name(VariableCategory::Terraform, "").is_err());
    }

    #[test]
    fn terraform_versions_are_semantic_versions() {
        assert!(check_terraform_version("1.0.3").is_ok());
        assert!(check_terraform_version("1.6.0-beta1").is_ok());
        for bad in ["1.0", "latest", "1.0.3/../../x", "v1.0.3"] {
            assert!(check_terraform_version(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn working_directories_stay_inside_the_repository() {
        assert_eq!(
            normalize_working_directory("infra/prod/").unwrap(),
            "infra/prod"
        );
        assert_eq!(normalize_working_directory(".").unwrap(), "");
        assert_eq!(normalize_working_directory("").unwrap(), "");
        assert!(normalize_working_directory("../other").is_err());
        assert!(normalize_working_directory("infra/../../x").is_err());
    }

    #[test]
    fn tags_are_lowercase_names() {
        assert_eq!(parse_tag("Env:Prod").unwrap(), "env:prod");
        for bad in ["", "a b", "a/b", &"x".repeat(256)] {
            assert!(parse_tag(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sensitive_values_do_not_show_in_debug_output() {
        let value = VariableValue {
            value: "hunter2".into(),
            sensitive: true,
        };
        assert!(!format!("{value:?}").contains("hunter2"));
    }
}
