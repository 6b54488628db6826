//! A plan's policy check: after a plan with changes, the policy sets that apply to the
//! workspace are evaluated over the plan and the run (off the async threads), their outcomes
//! kept and written to the plan log, and the verdict decides where the run goes.

use super::{Execution, Failure};
use crate::config::{PolicySetConfig, PolicySource};
use crate::core::policy::{
    PolicyOutcome, PolicyResult, RunInput, Verdict, WorkspaceInput, input_document,
    sensitive_plan_values, verdict,
};
use crate::core::run::RunState;
use crate::engine::runner::log::PhaseLog;
use crate::executor::terraform::{LogSink, PlanSummary, mask};

impl Execution {
    /// Checks the plan against the workspace's policy sets: None when there is nothing to
    /// check (no changes, or no set applies), else the verdict, the run being
    /// `policy_checking` by then.
    pub(super) async fn check_policies(
        &mut self,
        summary: &PlanSummary,
        log: &mut PhaseLog,
    ) -> Result<Option<Verdict>, Failure> {
        let sets: Vec<PolicySetConfig> = self
            .shared
            .policies
            .sets_for(self.workspace.spec.name.as_str())
            .into_iter()
            .cloned()
            .collect();
        if !summary.has_changes || sets.is_empty() {
            // A plan made again may check nothing this time: no earlier outcome stays.
            self.shared
                .store
                .record_policy_checks(self.run.id, &[])
                .await
                .map_err(|e| Failure::Errored(format!("clearing the policy checks: {e:#}")))?;
            return Ok(None);
        }
        self.advance(RunState::PolicyChecking).await?;
        let plan: serde_json::Value = serde_json::from_str(&summary.json)
            .map_err(|e| Failure::Errored(format!("reading the plan for its policies: {e}")))?;
        let marked_sensitive = sensitive_plan_values(&plan);
        let input = input_document(plan, &self.policy_input());
        let mut files = Vec::new();
        for set in sets {
            files.push(self.policy_files(set, log).await);
        }
        let outcomes = tokio::task::spawn_blocking(move || {
            let loaded: Vec<_> = files.into_iter().map(SetFiles::load).collect();
            crate::policy::evaluate(&loaded, &input)
        })
        .await
        .map_err(|e| Failure::Errored(format!("evaluating the policies: {e}")))?;
        // A policy may quote the plan, sensitive values included: masked as the log is, and
        // so are the values the plan itself marks sensitive.
        let sensitive = self.sensitive_values_and(marked_sensitive);
        let outcomes: Vec<PolicyOutcome> = outcomes
            .into_iter()
            .map(|mut outcome| {
                outcome.result = match outcome.result {
                    PolicyResult::Failed(messages) => {
                        PolicyResult::Failed(messages.iter().map(|m| mask(m, &sensitive)).collect())
                    }
                    PolicyResult::Errored(why) => PolicyResult::Errored(mask(&why, &sensitive)),
                    passed => passed,
                };
                outcome
            })
            .collect();
        self.shared
            .store
            .record_policy_checks(self.run.id, &outcomes)
            .await
            .map_err(|e| Failure::Errored(format!("storing the policy checks: {e:#}")))?;
        for outcome in &outcomes {
            let label = outcome.result.label(outcome.enforcement);
            log.line(&format!(
                "Gantry: policy {}/{}: {label}",
                outcome.policy_set, outcome.policy
            ));
            let details = match &outcome.result {
                PolicyResult::Passed => Vec::new(),
                PolicyResult::Failed(messages) => messages.clone(),
                PolicyResult::Errored(why) => vec![why.clone()],
            };
            for detail in details {
                log.line(&format!("  - {detail}"));
            }
        }
        let verdict = verdict(&outcomes);
        log.line(match verdict {
            Verdict::Passed => "Gantry: the policy check passed",
            Verdict::AdvisoryFailed => "Gantry: the policy check passed with advisory failures",
            Verdict::Blocked if self.run.speculative => {
                "Gantry: the policy check failed (a speculative plan only reports it)"
            }
            Verdict::Blocked => {
                "Gantry: the policy check failed: the run waits for an override by an admin"
            }
        });
        log.flush().await;
        Ok(Some(verdict))
    }

    /// Where a set's files are read from: its folder, or its repository's tarball at the
    /// head of its branch (the commit is logged: which rules a run was held to is on record).
    async fn policy_files(&self, set: PolicySetConfig, log: &mut PhaseLog) -> SetFiles {
        let (repo, branch, folder) = match set.source {
            PolicySource::Directory(path) => return SetFiles::Directory(set.name, path),
            PolicySource::Repository {
                repo,
                branch,
                folder,
            } => (repo, branch, folder),
        };
        let github = &self.shared.github;
        let fetched = async {
            let installation = github.repository_installation(&repo).await?;
            let head = github.branch_head(installation, &repo, &branch).await?;
            let tarball = github
                .download_tarball(installation, &repo, &head, MAX_POLICY_TARBALL_BYTES)
                .await?;
            Ok::<_, crate::github::GitHubError>((head, tarball))
        };
        match fetched.await {
            Ok((head, tarball)) => {
                log.line(&format!(
                    "Gantry: policy set {} from {repo} at {branch} ({})",
                    set.name,
                    &head[..head.len().min(12)]
                ));
                SetFiles::Archive(set.name, tarball, folder)
            }
            Err(error) => SetFiles::Unreadable(
                set.name,
                format!("reading it from {repo} at {branch}: {error}"),
            ),
        }
    }

    /// The run as its policies see it.
    fn policy_input(&self) -> RunInput<'_> {
        let spec = &self.workspace.spec;
        RunInput {
            id: format!("run-{}", self.run.id),
            created_at: chrono::DateTime::from_timestamp_millis(self.run.created_at_ms)
                .unwrap_or_default()
                .format("%Y-%m-%dT%H:%M:%SZ")
                .to_string(),
            message: &self.run.source,
            commit_sha: &self.run.commit_sha,
            speculative: self.run.speculative,
            variables: self
                .variables
                .iter()
                .map(|(category, key, _, sensitive)| (category.as_str(), key.as_str(), *sensitive))
                .collect(),
            organization: &self.shared.organization,
            workspace: WorkspaceInput {
                name: spec.name.as_str(),
                working_directory: &spec.working_directory,
                auto_apply: spec.auto_apply || self.run.auto_apply,
                execution_mode: spec.execution_mode.as_str(),
                tags: &spec.tags,
                vcs_repo: spec
                    .repo
                    .as_ref()
                    .map(|repo| (repo.as_str(), spec.branch.as_deref().unwrap_or(""))),
            },
        }
    }
}

/// The most a policy repository's tarball may hold.
const MAX_POLICY_TARBALL_BYTES: usize = 64 * 1024 * 1024;

/// A set's files, gathered: loaded off the async threads.
enum SetFiles {
    Directory(String, std::path::PathBuf),
    /// (name, the repository's tarball, the set's folder in it)
    Archive(String, Vec<u8>, String),
    /// (name, why not)
    Unreadable(String, String),
}

impl SetFiles {
    fn load(self) -> crate::policy::Loaded {
        match self {
            SetFiles::Directory(name, path) => crate::policy::load_directory(&name, &path),
            SetFiles::Archive(name, tarball, folder) => {
                crate::policy::load_archive(&name, &tarball, &folder)
            }
            SetFiles::Unreadable(name, why) => Err((name, why)),
        }
    }
}
