//! Pull request events and comment commands: which speculative plans to create, which to
//! cancel, and what to tell GitHub (through the outbox). Reads from the store and GitHub; the
//! decisions are `core::pull_request` and `core::commands`.

use super::handlers::{Context, Handled};
use crate::config::Untouched;
use crate::core::commands::{Command, parse_comment, usage};
use crate::core::github_terms::{CheckConclusion, CheckState, CommitState};
use crate::core::pull_request::{
    self, PrCandidate, PrDecision, PrFiles, PrPolicy, PrState, PullRequestFacts,
};
use crate::core::status;
use crate::core::workspace::WorkspaceName;
use crate::events::{CheckRunEvent, CheckSuiteEvent, IssueCommentEvent, PullRequestEvent};
use crate::store::{
    AggregateTarget, DeliveryEffect, Message, NewRuns, OutboxItem, RawCheck, RawStatus, Reaction,
    Reply, RunDetail, RunSource, SpeculativeCancel, UNTOUCHED_DESCRIPTION, UntouchedContexts,
    Workspace,
};

/// Who may run comment commands.
const WRITERS: [&str; 3] = ["admin", "maintain", "write"];

/// One pull request at one head commit, to plan.
struct PlanRequest<'a> {
    delivery_id: &'a str,
    repo: &'a str,
    installation_id: u64,
    number: u64,
    head_sha: &'a str,
    facts: PullRequestFacts<'a>,
    source: RunSource,
    /// Only these workspaces (comment commands with `-w`); empty: all.
    only: &'a [WorkspaceName],
}

pub async fn handle_pull_request(
    ctx: &Context,
    delivery_id: &str,
    e: &PullRequestEvent,
) -> Handled {
    let Some(installation_id) = e.installation.as_ref().map(|i| i.id) else {
        return Handled::ignored("the pull request names no installation");
    };
    let pr = &e.pull_request;
    let request = PlanRequest {
        delivery_id,
        repo: &e.repository.full_name,
        installation_id,
        number: e.number,
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
    };
    match plan(ctx, &request).await {
        Ok(effects) => Handled::processed(effects),
        Err(handled) => handled,
    }
}

/// The effects of planning a pull request's head, or the delivery's outcome when there are none.
async fn plan(ctx: &Context, request: &PlanRequest<'_>) -> Result<Vec<DeliveryEffect>, Handled> {
    let workspaces = ctx
        .store
        .workspaces_for_repo(request.repo)
        .await
        .map_err(|e| Handled::RetryLater(format!("reading workspaces: {e:#}")))?;
    let workspaces: Vec<Workspace> = workspaces
        .into_iter()
        .filter(|w| request.only.is_empty() || request.only.contains(&w.spec.name))
        .collect();
    if workspaces.is_empty() {
        return Err(Handled::ignored("no workspace tracks this repository"));
    }
    let triggers: Vec<_> = workspaces
        .iter()
        .map(|w| w.spec.triggers())
        .collect::<Result<_, _>>()
        .map_err(|e| Handled::failed(e.to_string()))?;
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
        let listed = ctx
            .github
            .pull_request_files(request.installation_id, request.repo, request.number)
            .await
            .map_err(|e| Handled::RetryLater(format!("listing the pull request's files: {e}")))?;
        let files: Vec<&str> = listed.files.iter().map(String::as_str).collect();
        let files = if listed.truncated {
            PrFiles::TooMany
        } else {
            PrFiles::Listed(&files)
        };
        decision = pull_request::decide(&request.facts, policy, &candidates, Some(files));
    }
    let pr_number = request.number as i64;
    match decision {
        PrDecision::Ignore(reason) => Err(Handled::ignored(reason)),
        PrDecision::NeedFiles => Err(Handled::failed(
            "the file list did not settle the pull request",
        )),
        PrDecision::Closed => Ok(vec![DeliveryEffect::CancelSpeculative(SpeculativeCancel {
            repo: request.repo.to_string(),
            pr_number,
            except_sha: None,
            reason: "the pull request was closed".into(),
        })]),
        PrDecision::Plan {
            plan,
            untouched,
            awaiting_approval,
        } => {
            let name_of = |id: i64| {
                workspaces
                    .iter()
                    .find(|w| w.id == id)
                    .map(|w| w.spec.name.as_str().to_string())
                    .unwrap_or_default()
            };
            let raw_status = |id: i64, state: CommitState, description: String| RawStatus {
                installation_id: request.installation_id as i64,
                repo: request.repo.to_string(),
                sha: request.head_sha.to_string(),
                context: status::context(&name_of(id)),
                state,
                description,
                target_url: None,
            };
            let mut effects = vec![DeliveryEffect::CancelSpeculative(SpeculativeCancel {
                repo: request.repo.to_string(),
                pr_number,
                except_sha: Some(request.head_sha.to_string()),
                reason: "superseded".into(),
            })];
            if !plan.is_empty() {
                effects.push(DeliveryEffect::CreateRuns(NewRuns {
                    repo: request.repo.to_string(),
                    commit_sha: request.head_sha.to_string(),
                    workspace_ids: plan,
                    source: request.source,
                    delivery_id: request.delivery_id.to_string(),
                    installation_id: Some(request.installation_id as i64),
                    speculative: true,
                    pr_number: Some(pr_number),
                    retry_of: Vec::new(),
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
                            installation_id: request.installation_id as i64,
                            repo: request.repo.to_string(),
                            sha: request.head_sha.to_string(),
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
                    installation_id: request.installation_id as i64,
                    repo: request.repo.to_string(),
                    sha: request.head_sha.to_string(),
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

pub async fn handle_issue_comment(
    ctx: &Context,
    delivery_id: &str,
    e: &IssueCommentEvent,
) -> Handled {
    if e.action != "created" {
        return Handled::ignored(format!(
            "comment {}: only new comments carry commands",
            e.action
        ));
    }
    if !e.is_on_pull_request() {
        return Handled::ignored("the comment is not on a pull request");
    }
    if e.sender.is_bot() || e.comment.user.is_bot() {
        return Handled::ignored("comments by bots are not commands");
    }
    let prefix = &ctx.pull_requests.command_prefix;
    let lines = parse_comment(&e.comment.body, prefix);
    if lines.is_empty() {
        return Handled::ignored("the comment has no command");
    }
    let Some(installation_id) = e.installation.as_ref().map(|i| i.id) else {
        return Handled::ignored("the comment names no installation");
    };
    let repo = &e.repository.full_name;
    let number = e.issue.number;
    let user = &e.comment.user.login;
    let reply = |body: String, unique: &str| {
        DeliveryEffect::Outbox(OutboxItem::result(Message::Reply(Reply {
            installation_id: installation_id as i64,
            repo: repo.clone(),
            pr_number: number as i64,
            body,
            unique: format!("{delivery_id}/{unique}"),
        })))
    };
    let permission = match ctx.github.permission(installation_id, repo, user).await {
        Ok(permission) => permission,
        Err(error) => return Handled::RetryLater(format!("checking {user}'s permission: {error}")),
    };
    if !WRITERS.contains(&permission.as_str()) {
        tracing::info!(user, permission, "comment command refused");
        return Handled::processed(vec![reply(
            format!(
                "Sorry @{user}, Gantry's commands are for people with write access to \
                 {repo}. Ask a maintainer to run it for you."
            ),
            "refused",
        )]);
    }
    let seen = Message::Reaction(Reaction {
        installation_id: installation_id as i64,
        repo: repo.clone(),
        comment_id: e.comment.id as i64,
        content: "eyes".into(),
    });
    let mut effects = vec![DeliveryEffect::Outbox(OutboxItem::result(seen))];
    for (n, line) in lines.iter().enumerate() {
        let unique = n.to_string();
        match &line.parsed {
            Err(error) => effects.push(reply(
                format!("`{}`: {error}.\n\n{}", line.line, usage(prefix)),
                &unique,
            )),
            Ok(Command::Help) => effects.push(reply(usage(prefix), &unique)),
            Ok(Command::Plan { workspaces }) => {
                let pr = match ctx.github.pull_request(installation_id, repo, number).await {
                    Ok(pr) => pr,
                    // GitHub says no for good: tell the person instead of retrying.
                    Err(error)
                        if error
                            .status()
                            .is_some_and(|s| (400..500).contains(&s) && s != 403 && s != 429) =>
                    {
                        effects.push(reply(
                            format!("Gantry cannot read this pull request on GitHub ({error})."),
                            &unique,
                        ));
                        continue;
                    }
                    Err(error) => {
                        return Handled::RetryLater(format!("reading the pull request: {error}"));
                    }
                };
                let request = PlanRequest {
                    delivery_id,
                    repo,
                    installation_id,
                    number,
                    head_sha: &pr.head.sha,
                    facts: PullRequestFacts {
                        action: "command",
                        base_ref: &pr.base.git_ref,
                        default_branch: &e.repository.default_branch,
                        draft: false,
                        from_fork: pr.is_from_fork(),
                        approved: true,
                        state: PrState::of(&pr.state, pr.merged),
                    },
                    source: RunSource::Command,
                    only: workspaces,
                };
                match plan(ctx, &request).await {
                    Ok(planned) => effects.extend(planned),
                    Err(Handled::Done { outcome, .. }) => effects.push(reply(
                        format!("Nothing to plan: {}", outcome.detail().unwrap_or_default()),
                        &unique,
                    )),
                    Err(retry) => return retry,
                }
            }
            Ok(Command::Retry { workspaces }) => {
                match retry(ctx, delivery_id, repo, installation_id, number, workspaces).await {
                    Ok(Some(runs)) => effects.push(DeliveryEffect::CreateRuns(runs)),
                    Ok(None) => effects.push(reply(
                        "Nothing to retry: no failed or canceled plan at the pull request's head."
                            .into(),
                        &unique,
                    )),
                    Err(Handled::Done { outcome, .. }) => effects.push(reply(
                        format!("Nothing to retry: {}", outcome.detail().unwrap_or_default()),
                        &unique,
                    )),
                    Err(retry) => return retry,
                }
            }
        }
    }
    Handled::processed(effects)
}

/// New runs, with the same configuration version, for the head commit's failed or canceled
/// speculative plans.
async fn retry(
    ctx: &Context,
    delivery_id: &str,
    repo: &str,
    installation_id: u64,
    number: u64,
    only: &[WorkspaceName],
) -> Result<Option<NewRuns>, Handled> {
    let pr = ctx
        .github
        .pull_request(installation_id, repo, number)
        .await
        .map_err(|e| Handled::RetryLater(format!("reading the pull request: {e}")))?;
    if let Some(why) = PrState::of(&pr.state, pr.merged).why_not_run() {
        return Err(Handled::ignored(why));
    }
    let latest = ctx
        .store
        .pull_request_runs(repo, number as i64)
        .await
        .map_err(|e| Handled::RetryLater(format!("reading the plans: {e:#}")))?;
    let mut retry_of = Vec::new();
    for run_id in latest {
        let Some(run) = ctx
            .store
            .run(run_id)
            .await
            .map_err(|e| Handled::RetryLater(format!("reading run {run_id}: {e:#}")))?
        else {
            continue;
        };
        if !run.state.can_be_retried() || run.commit_sha != pr.head.sha {
            continue;
        }
        if !only.is_empty() {
            let workspace = ctx.store.workspace(run.workspace_id).await.ok().flatten();
            if !workspace.is_some_and(|w| only.contains(&w.spec.name)) {
                continue;
            }
        }
        retry_of.push((run.workspace_id, run.id));
    }
    if retry_of.is_empty() {
        return Ok(None);
    }
    Ok(Some(NewRuns {
        repo: repo.to_string(),
        commit_sha: pr.head.sha,
        workspace_ids: retry_of.iter().map(|(ws, _)| *ws).collect(),
        source: RunSource::Retry,
        delivery_id: delivery_id.to_string(),
        installation_id: Some(installation_id as i64),
        speculative: true,
        pr_number: Some(number as i64),
        retry_of,
    }))
}

/// GitHub's "Re-run" on one of Gantry's check runs: retried like `/gantry retry`.
pub async fn handle_check_run(ctx: &Context, delivery_id: &str, e: &CheckRunEvent) -> Handled {
    if e.action != "rerequested" {
        return Handled::ignored(format!("check_run {} needs nothing", e.action));
    }
    let Some(run_id) = e
        .check_run
        .external_id
        .as_deref()
        .and_then(|id| id.parse::<i64>().ok())
    else {
        return Handled::ignored("the check run is not one of Gantry's runs");
    };
    let run = match ctx.store.run(run_id).await {
        Ok(Some(run)) if run.repo == e.repository.full_name => run,
        Ok(_) => return Handled::ignored("the check run names no run of this repository"),
        Err(error) => return Handled::RetryLater(format!("reading run {run_id}: {error:#}")),
    };
    let installation = e.installation.as_ref().map(|i| i.id);
    if !run.speculative {
        // A push run: retried as the API retries it, unless a newer run of its workspace
        // came since (it would apply code that a newer commit replaced).
        return match ctx.store.has_newer_run(run.workspace_id, run.id).await {
            Ok(true) => Handled::ignored("the workspace has a newer run; re-run that one"),
            Ok(false) => retry_effects(delivery_id, installation, vec![run]),
            Err(error) => Handled::RetryLater(format!("reading the queue: {error:#}")),
        };
    }
    match latest_of_their_pull_requests(ctx, vec![run]).await {
        Ok(runs) => retry_effects(delivery_id, installation, runs),
        Err(handled) => handled,
    }
}

/// Only a workspace's latest plan of its pull request may be re-run: an older one (superseded,
/// or already retried) would run stale code, or twice.
async fn latest_of_their_pull_requests(
    ctx: &Context,
    runs: Vec<RunDetail>,
) -> Result<Vec<RunDetail>, Handled> {
    let mut latest = Vec::new();
    for run in runs {
        let Some(pr) = run.pr_number else { continue };
        let current = ctx
            .store
            .pull_request_runs(&run.repo, pr)
            .await
            .map_err(|e| Handled::RetryLater(format!("reading the plans: {e:#}")))?;
        if current.contains(&run.id) {
            latest.push(run);
        }
    }
    Ok(latest)
}

/// GitHub's "Re-run all" on a check suite: every failed plan of its commit is retried.
pub async fn handle_check_suite(ctx: &Context, delivery_id: &str, e: &CheckSuiteEvent) -> Handled {
    if e.action != "rerequested" {
        return Handled::ignored(format!("check_suite {} needs nothing", e.action));
    }
    let repo = &e.repository.full_name;
    let ids = match ctx
        .store
        .latest_speculative_runs_at(repo, &e.check_suite.head_sha)
        .await
    {
        Ok(ids) => ids,
        Err(error) => return Handled::RetryLater(format!("reading the plans: {error:#}")),
    };
    let mut runs = Vec::new();
    for id in ids {
        match ctx.store.run(id).await {
            Ok(Some(run)) => runs.push(run),
            Ok(None) => {}
            Err(error) => return Handled::RetryLater(format!("reading run {id}: {error:#}")),
        }
    }
    match latest_of_their_pull_requests(ctx, runs).await {
        Ok(runs) => retry_effects(delivery_id, e.installation.as_ref().map(|i| i.id), runs),
        Err(handled) => handled,
    }
}

/// New runs (same configuration version) for those of `runs` that failed or were canceled;
/// the callers have kept only runs that are the latest of their pull request or workspace.
fn retry_effects(delivery_id: &str, installation: Option<u64>, runs: Vec<RunDetail>) -> Handled {
    let effects: Vec<DeliveryEffect> = runs
        .iter()
        .filter(|r| r.state.can_be_retried())
        .map(|run| {
            let installation = installation.map(|i| i as i64);
            DeliveryEffect::CreateRuns(NewRuns::retry_of(run, delivery_id, installation))
        })
        .collect();
    if effects.is_empty() {
        return Handled::ignored("no failed or canceled run to retry");
    }
    Handled::processed(effects)
}
