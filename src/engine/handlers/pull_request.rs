//! A pull request opened, updated or closed: which speculative plans to create, which to
//! cancel, and what to tell GitHub of the workspaces it does not touch or that wait for a
//! fork's approval. The decision is `core::pull_request`; `plan` serves comment commands and
//! merge groups too.

use super::{Context, Handled, Stop};
use crate::config::Untouched;
use crate::core::CommitSha;
use crate::core::github_terms::{CheckConclusion, CheckState, CommitState};
use crate::core::pull_request::{
    self, PrCandidate, PrDecision, PrFiles, PrPolicy, PrState, PullRequestFacts,
};
use crate::core::status;
use crate::core::workspace::WorkspaceName;
use crate::core::{InstallationId, PrNumber, WorkspaceId};
use crate::events::PullRequestEvent;
use crate::store::{
    AggregateTarget, CancelScope, DeliveryEffect, Message, NewRuns, OutboxItem, RawCheck,
    RawStatus, RunSource, SpeculativeCancel, UNTOUCHED_DESCRIPTION, UntouchedContexts, Workspace,
};

/// One pull request at one head commit, to plan.
pub(super) struct PlanRequest<'a> {
    pub delivery_id: &'a str,
    pub repo: &'a str,
    pub installation_id: InstallationId,
    pub target: PlanTarget<'a>,
    pub head_sha: &'a CommitSha,
    pub facts: PullRequestFacts<'a>,
    pub source: RunSource,
    /// Only these workspaces (comment commands with `-w`); empty: all.
    pub only: &'a [WorkspaceName],
    /// The pull request's author: who the plans' changes come from.
    pub author: &'a str,
}

/// What the plans are for: a pull request's head, or the commit of a merge group.
#[derive(Debug, Clone, Copy)]
pub(super) enum PlanTarget<'a> {
    PullRequest(PrNumber),
    /// GitHub's merge queue: the changes are those from `base_sha` to the head.
    MergeGroup {
        base_sha: &'a CommitSha,
    },
}

impl PlanTarget<'_> {
    fn pr_number(self) -> Option<PrNumber> {
        match self {
            PlanTarget::PullRequest(number) => Some(number),
            PlanTarget::MergeGroup { .. } => None,
        }
    }
}

pub(super) async fn handle_pull_request(
    ctx: &Context,
    delivery_id: &str,
    e: &PullRequestEvent,
) -> Handled {
    let Some(installation_id) = e.installation.as_ref().map(|i| i.id) else {
        return Err(Stop::ignored("the pull request names no installation"));
    };
    let pr = &e.pull_request;
    let request = PlanRequest {
        delivery_id,
        repo: &e.repository.full_name,
        installation_id,
        target: PlanTarget::PullRequest(e.number),
        head_sha: &pr.head.sha,
        facts: PullRequestFacts {
            action: &e.action,
            base_ref: &pr.base.git_ref,
            default_branch: &e.repository.default_branch,
            draft: pr.draft,
            from_fork: pr.is_from_fork(),
            approved: false,
            state: PrState::of(&pr.state, pr.merged.unwrap_or(false)),
        },
        source: RunSource::PullRequest,
        only: &[],
        author: &pr.user.login,
    };
    plan(ctx, &request).await
}

/// The effects of planning a pull request's head, or the delivery's outcome when there are none.
pub(super) async fn plan(ctx: &Context, request: &PlanRequest<'_>) -> Handled {
    let workspaces = ctx
        .store
        .workspaces_for_repo(request.repo)
        .await
        .map_err(|e| Stop::retry("reading workspaces", e))?;
    let workspaces: Vec<Workspace> = workspaces
        .into_iter()
        .filter(|w| request.only.is_empty() || request.only.contains(&w.spec.name))
        .collect();
    if workspaces.is_empty() {
        return Err(Stop::ignored("no workspace tracks this repository"));
    }
    let triggers: Vec<_> = workspaces
        .iter()
        .map(|w| w.spec.triggers())
        .collect::<Result<_, _>>()
        .map_err(|e| Stop::failed(e.to_string()))?;
    let candidates: Vec<PrCandidate<'_>> = workspaces
        .iter()
        .zip(&triggers)
        .map(|(w, triggers)| PrCandidate {
            id: w.id,
            branch: w.spec.branch.as_deref(),
            speculative_enabled: w.spec.speculative_enabled,
            plan_forks: w.spec.plan_forks,
            triggers,
        })
        .collect();
    let policy = PrPolicy {
        plan_drafts: ctx.pull_requests.plan_drafts,
    };
    let mut decision = pull_request::decide(&request.facts, policy, &candidates, None);
    if decision == PrDecision::NeedFiles {
        let github = &ctx.github;
        let (installation, repo) = (request.installation_id, request.repo);
        let (files, truncated) = match request.target {
            PlanTarget::PullRequest(number) => {
                let listed = (github.pull_request_files(installation, repo, number).await)
                    .map_err(|e| Stop::retry("listing the pull request's files", e))?;
                (listed.files, listed.truncated)
            }
            PlanTarget::MergeGroup { base_sha } => {
                let compared =
                    (github.compare_files(installation, repo, base_sha, request.head_sha))
                        .await
                        .map_err(|e| Stop::retry("comparing the merge group with its base", e))?;
                (compared.files, compared.truncated)
            }
        };
        let files: Vec<&str> = files.iter().map(String::as_str).collect();
        let files = if truncated {
            PrFiles::TooMany
        } else {
            PrFiles::Listed(&files)
        };
        decision = pull_request::decide(&request.facts, policy, &candidates, Some(files));
    }
    let pr_number = request.target.pr_number();
    match decision {
        PrDecision::Ignore(reason) => Err(Stop::ignored(reason)),
        PrDecision::NeedFiles => Err(Stop::failed(
            "the file list did not settle the pull request",
        )),
        PrDecision::Closed => Ok(pr_number
            .map(|pr_number| {
                DeliveryEffect::CancelSpeculative(SpeculativeCancel {
                    repo: request.repo.to_string(),
                    scope: CancelScope::PullRequest {
                        pr_number,
                        except_sha: None,
                    },
                    reason: "the pull request was closed".into(),
                })
            })
            .into_iter()
            .collect()),
        PrDecision::Plan {
            plan,
            untouched,
            awaiting_approval,
        } => {
            let name_of = |id: WorkspaceId| {
                workspaces
                    .iter()
                    .find(|w| w.id == id)
                    .map(|w| w.spec.name.as_str().to_string())
                    .unwrap_or_default()
            };
            let raw_status = |id: WorkspaceId, state: CommitState, description: String| RawStatus {
                installation_id: request.installation_id,
                repo: request.repo.to_string(),
                sha: request.head_sha.clone(),
                context: status::context(&name_of(id)),
                state,
                description,
                target_url: None,
            };
            // A pull request's new head supersedes its plans of older ones.
            let superseded = pr_number.map(|pr_number| {
                DeliveryEffect::CancelSpeculative(SpeculativeCancel {
                    repo: request.repo.to_string(),
                    scope: CancelScope::PullRequest {
                        pr_number,
                        except_sha: Some(request.head_sha.clone()),
                    },
                    reason: "superseded".into(),
                })
            });
            let mut effects: Vec<DeliveryEffect> = superseded.into_iter().collect();
            if !plan.is_empty() {
                effects.push(DeliveryEffect::CreateRuns(NewRuns {
                    repo: request.repo.to_string(),
                    commit_sha: request.head_sha.clone(),
                    workspace_ids: plan,
                    source: request.source,
                    delivery_id: request.delivery_id.to_string(),
                    installation_id: Some(request.installation_id),
                    speculative: true,
                    pr_number,
                    retry_of: Vec::new(),
                    auto_apply: false,
                    author: request.author.to_string(),
                    triggered_by: None,
                    options: crate::core::plan_options::PlanOptions::default(),
                    message: String::new(),
                }));
            }
            match ctx.feedback.untouched {
                Untouched::Status => {
                    for id in untouched {
                        let status =
                            raw_status(id, CommitState::Success, UNTOUCHED_DESCRIPTION.into());
                        effects.push(DeliveryEffect::Outbox(OutboxItem::untouched_status(status)));
                    }
                }
                // Also with nothing untouched: the `gantry` status is due for every head.
                Untouched::Aggregate => {
                    effects.push(DeliveryEffect::Untouched(UntouchedContexts {
                        target: AggregateTarget {
                            installation_id: request.installation_id,
                            repo: request.repo.to_string(),
                            sha: request.head_sha.clone(),
                        },
                        contexts: untouched
                            .into_iter()
                            .map(|id| status::context(&name_of(id)))
                            .collect(),
                    }))
                }
            }
            for id in awaiting_approval {
                let waiting = format!(
                    "Waiting for approval to plan: a maintainer can comment {} plan",
                    ctx.pull_requests.command_prefix
                );
                let pending = raw_status(id, CommitState::Pending, waiting.clone());
                effects.push(DeliveryEffect::Outbox(OutboxItem::result(
                    Message::RawStatus(pending),
                )));
                let check = Message::RawCheck(RawCheck {
                    installation_id: request.installation_id,
                    repo: request.repo.to_string(),
                    sha: request.head_sha.clone(),
                    name: status::context(&name_of(id)),
                    state: CheckState::completed(CheckConclusion::ActionRequired),
                    title: waiting,
                    summary: "This pull request comes from a fork: its code runs only after \
                              someone with write access to the repository asks for a plan."
                        .into(),
                    details_url: ctx.public_url.to_string(),
                });
                effects.push(DeliveryEffect::Outbox(OutboxItem::result(check)));
            }
            Ok(effects)
        }
    }
}
