//! What each event means to Gantry. `handle` parses the payload into its typed event, gathers
//! what the decision needs (workspaces from the store, changed files from GitHub), lets `core`
//! decide, and returns the outcome with the effects the store applies when it closes the
//! delivery. It changes nothing itself.

use std::sync::Arc;

use crate::config::{FeedbackConfig, PullRequestConfig};
use crate::core::push::{self, Candidate, ChangedFiles, Comparison, PushDecision};
use crate::events::{self, Event};
use crate::github::GitHub;
use crate::store::{DeliveryEffect, DeliveryOutcome, InstallationChange, NewRuns, Store};

/// What handlers may read from: the store and GitHub.
#[derive(Clone)]
pub struct Context {
    pub store: Store,
    pub github: Arc<GitHub>,
    pub pull_requests: PullRequestConfig,
    /// What workspaces get on GitHub (untouched ones' statuses or the one aggregate).
    pub feedback: FeedbackConfig,
    /// Where people reach Gantry (links in what Gantry posts).
    pub public_url: url::Url,
}

pub enum Handled {
    Done {
        outcome: DeliveryOutcome,
        effects: Vec<DeliveryEffect>,
    },
    /// A passing failure (GitHub or the store did not answer): try again later.
    RetryLater(String),
}

impl Handled {
    pub(crate) fn processed(effects: Vec<DeliveryEffect>) -> Self {
        Handled::Done {
            outcome: DeliveryOutcome::Processed,
            effects,
        }
    }

    pub(crate) fn ignored(reason: impl Into<String>) -> Self {
        Handled::Done {
            outcome: DeliveryOutcome::Ignored(reason.into()),
            effects: Vec::new(),
        }
    }

    pub(crate) fn failed(error: impl Into<String>) -> Self {
        Handled::Done {
            outcome: DeliveryOutcome::Failed(error.into()),
            effects: Vec::new(),
        }
    }
}

pub async fn handle(ctx: &Context, delivery_id: &str, event: &str, payload: &[u8]) -> Handled {
    let event = match events::parse(event, payload) {
        Ok(event) => event,
        Err(error) => return Handled::failed(error.to_string()),
    };
    match event {
        Event::Ping(_) => Handled::processed(Vec::new()),
        Event::Installation(e) => handle_installation(&e),
        Event::InstallationRepositories(e) => handle_installation_repositories(&e),
        Event::Push(e) => handle_push(ctx, delivery_id, &e).await,
        Event::PullRequest(e) => {
            super::pull_requests::handle_pull_request(ctx, delivery_id, &e).await
        }
        Event::IssueComment(e) => {
            super::pull_requests::handle_issue_comment(ctx, delivery_id, &e).await
        }
        Event::CheckRun(e) => super::pull_requests::handle_check_run(ctx, delivery_id, &e).await,
        Event::CheckSuite(e) => {
            super::pull_requests::handle_check_suite(ctx, delivery_id, &e).await
        }
        Event::Unsupported { event } => {
            Handled::ignored(format!("Gantry does not use {event} events"))
        }
    }
}

async fn handle_push(ctx: &Context, delivery_id: &str, e: &events::PushEvent) -> Handled {
    let repo = &e.repository.full_name;
    let workspaces = match ctx.store.workspaces_for_repo(repo).await {
        Ok(workspaces) => workspaces,
        Err(error) => return Handled::RetryLater(format!("reading workspaces: {error:#}")),
    };
    if workspaces.is_empty() {
        return Handled::ignored("no workspace tracks this repository");
    }
    let triggers: Vec<_> = match workspaces.iter().map(|w| w.spec.triggers()).collect() {
        Ok(triggers) => triggers,
        Err(error) => return Handled::failed(error.to_string()),
    };
    let candidates: Vec<Candidate<'_>> = workspaces
        .iter()
        .zip(&triggers)
        .map(|(w, triggers)| Candidate {
            id: w.id,
            branch: w.spec.branch.as_deref(),
            triggers,
        })
        .collect();
    let facts = push::Push {
        git_ref: &e.git_ref,
        before: &e.before,
        after: &e.after,
        created: e.created,
        deleted: e.deleted,
        forced: e.forced,
        commit_count: e.commits.len(),
        default_branch: &e.repository.default_branch,
    };
    let payload_files = e.changed_files();
    let mut decision = push::decide(&facts, &candidates, ChangedFiles::Payload(&payload_files));
    if let PushDecision::NeedCompare(comparisons) = &decision {
        let Some(installation) = e.installation.as_ref().map(|i| i.id) else {
            return Handled::failed("the push names no installation to ask GitHub with");
        };
        let compared = match compare(ctx, installation, repo, comparisons).await {
            Ok(compared) => compared,
            Err(handled) => return handled,
        };
        let files: Vec<&str> = match &compared {
            Compared::Files(files) => files.iter().map(String::as_str).collect(),
            Compared::TooMany | Compared::Unknown => Vec::new(),
        };
        let changed = match compared {
            Compared::Files(_) => ChangedFiles::Compared(&files),
            Compared::TooMany => ChangedFiles::TooMany,
            Compared::Unknown => ChangedFiles::Unknown,
        };
        decision = push::decide(&facts, &candidates, changed);
    }
    match decision {
        PushDecision::Ignore(reason) => Handled::ignored(reason),
        PushDecision::NeedCompare { .. } => {
            Handled::failed("the comparison did not settle the push")
        }
        PushDecision::Run {
            commit,
            workspace_ids,
        } => Handled::processed(vec![DeliveryEffect::CreateRuns(NewRuns::push(
            repo.clone(),
            commit,
            workspace_ids,
            delivery_id.to_string(),
            e.installation.as_ref().map(|i| i.id as i64),
        ))]),
    }
}

/// What GitHub's comparisons of a push say.
enum Compared {
    /// Every file they list.
    Files(Vec<String>),
    /// More files changed than GitHub lists.
    TooMany,
    /// GitHub cannot compare: it no longer has a commit, or the commits share no history.
    Unknown,
}

async fn compare(
    ctx: &Context,
    installation: u64,
    repo: &str,
    comparisons: &[Comparison],
) -> Result<Compared, Handled> {
    let mut files = Vec::new();
    for Comparison { base, head } in comparisons {
        match ctx
            .github
            .compare_files(installation, repo, base, head)
            .await
        {
            Ok(compared) if compared.truncated => return Ok(Compared::TooMany),
            Ok(compared) => files.extend(compared.files),
            Err(error) if matches!(error.status(), Some(404 | 422)) => {
                tracing::info!(%error, base, head, "GitHub cannot compare: every workspace runs");
                return Ok(Compared::Unknown);
            }
            Err(error) => {
                return Err(Handled::RetryLater(format!(
                    "comparing {base}...{head}: {error}"
                )));
            }
        }
    }
    files.sort();
    files.dedup();
    Ok(Compared::Files(files))
}

fn handle_installation(e: &events::InstallationEvent) -> Handled {
    let id = e.installation.id as i64;
    let upsert = |suspended| {
        DeliveryEffect::Installation(InstallationChange::Upsert {
            id,
            account_login: e.installation.account.login.clone(),
            account_type: e.installation.account.r#type.clone(),
            suspended,
        })
    };
    let repositories: Vec<String> = e
        .repositories
        .iter()
        .flatten()
        .map(|r| r.full_name.clone())
        .collect();
    match e.action.as_str() {
        "created" => Handled::processed(vec![
            upsert(false),
            DeliveryEffect::Installation(InstallationChange::AddRepositories {
                installation_id: id,
                full_names: repositories,
            }),
        ]),
        "new_permissions_accepted" | "unsuspend" => Handled::processed(vec![upsert(false)]),
        "suspend" => Handled::processed(vec![upsert(true)]),
        "deleted" => Handled::processed(vec![DeliveryEffect::Installation(
            InstallationChange::Remove { id },
        )]),
        other => Handled::ignored(format!("installation action {other} needs nothing")),
    }
}

fn handle_installation_repositories(e: &events::InstallationRepositoriesEvent) -> Handled {
    let installation_id = e.installation.id as i64;
    let names = |repos: &[events::InstallationRepository]| {
        repos.iter().map(|r| r.full_name.clone()).collect()
    };
    Handled::processed(
        [
            InstallationChange::Upsert {
                id: installation_id,
                account_login: e.installation.account.login.clone(),
                account_type: e.installation.account.r#type.clone(),
                suspended: false,
            },
            InstallationChange::AddRepositories {
                installation_id,
                full_names: names(&e.repositories_added),
            },
            InstallationChange::RemoveRepositories {
                installation_id,
                full_names: names(&e.repositories_removed),
            },
        ]
        .into_iter()
        .map(DeliveryEffect::Installation)
        .collect(),
    )
}
