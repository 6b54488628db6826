//! Comment commands on a pull request (`/gantry plan`, `/gantry retry`, `/gantry override`,
//! `/gantry help`), one
//! function per command (`command_<verb>`). The grammar is `core::commands`; only people with
//! write access are obeyed; each command line gets its answer (runs, or a reply saying why not).

use super::pull_request::{PlanRequest, PlanTarget, plan};
use super::{Context, Handled, Stop};
use crate::core::commands::{Command, parse_comment, usage};
use crate::core::policy::self_override_refusal;
use crate::core::pull_request::{PrState, PullRequestFacts};
use crate::core::workspace::WorkspaceName;
use crate::core::{InstallationId, PrNumber};
use crate::events::IssueCommentEvent;
use crate::store::{
    DeliveryEffect, Message, NewRuns, OutboxItem, PolicyOverride, Reaction, Reply, RunSource,
};

/// Who may run comment commands.
const WRITERS: [&str; 3] = ["admin", "maintain", "write"];

/// The comment a command came in, and how to answer it.
struct Commenting<'a> {
    ctx: &'a Context,
    delivery_id: &'a str,
    event: &'a IssueCommentEvent,
    installation_id: InstallationId,
    repo: &'a str,
    number: PrNumber,
}

impl Commenting<'_> {
    /// A reply on the pull request; `unique` tells this delivery's replies apart.
    fn reply(&self, body: String, unique: &str) -> DeliveryEffect {
        DeliveryEffect::Outbox(OutboxItem::result(Message::Reply(
            self.reply_message(body, unique),
        )))
    }

    fn reply_message(&self, body: String, unique: &str) -> Reply {
        Reply {
            installation_id: self.installation_id,
            repo: self.repo.to_string(),
            pr_number: self.number,
            body,
            unique: format!("{}/{unique}", self.delivery_id),
        }
    }
}

pub(super) async fn handle_issue_comment(
    ctx: &Context,
    delivery_id: &str,
    e: &IssueCommentEvent,
) -> Handled {
    if e.action != "created" {
        return Err(Stop::ignored(format!(
            "comment {}: only new comments carry commands",
            e.action
        )));
    }
    if !e.is_on_pull_request() {
        return Err(Stop::ignored("the comment is not on a pull request"));
    }
    if e.sender.is_bot() || e.comment.user.is_bot() {
        return Err(Stop::ignored("comments by bots are not commands"));
    }
    let prefix = &ctx.pull_requests.command_prefix;
    let lines = parse_comment(&e.comment.body, prefix);
    if lines.is_empty() {
        return Err(Stop::ignored("the comment has no command"));
    }
    let Some(installation_id) = e.installation.as_ref().map(|i| i.id) else {
        return Err(Stop::ignored("the comment names no installation"));
    };
    let at = Commenting {
        ctx,
        delivery_id,
        event: e,
        installation_id,
        repo: &e.repository.full_name,
        number: e.issue.number,
    };
    let user = &e.comment.user.login;
    let permission = (ctx.github.permission(installation_id, at.repo, user).await)
        .map_err(|e| Stop::retry(&format!("checking {user}'s permission"), e))?;
    if !WRITERS.contains(&permission.as_str()) {
        tracing::info!(user, permission, "comment command refused");
        let refusal = format!(
            "Sorry @{user}, Gantry's commands are for people with write access to {}. Ask a \
             maintainer to run it for you.",
            at.repo
        );
        return Ok(vec![at.reply(refusal, "refused")]);
    }
    let seen = Message::Reaction(Reaction {
        installation_id,
        repo: at.repo.to_string(),
        comment_id: e.comment.id as i64,
        content: "eyes".into(),
    });
    let mut effects = vec![DeliveryEffect::Outbox(OutboxItem::result(seen))];
    for (n, line) in lines.iter().enumerate() {
        let unique = n.to_string();
        let answer = match &line.parsed {
            Err(error) => vec![at.reply(
                format!("`{}`: {error}.\n\n{}", line.line, usage(prefix)),
                &unique,
            )],
            Ok(Command::Help) => vec![at.reply(usage(prefix), &unique)],
            Ok(Command::Plan { workspaces }) => command_plan(&at, workspaces, &unique).await?,
            Ok(Command::Retry { workspaces }) => command_retry(&at, workspaces, &unique).await?,
            Ok(Command::Override { workspaces, reason }) => {
                let admin = permission == "admin";
                command_override(&at, workspaces, reason, admin, &unique).await?
            }
        };
        effects.extend(answer);
    }
    Ok(effects)
}

/// `plan`: speculative plans of the pull request's head, a fork's included (a writer asked).
/// Err only for a passing failure: the whole comment is handled again.
async fn command_plan(
    at: &Commenting<'_>,
    only: &[WorkspaceName],
    unique: &str,
) -> Result<Vec<DeliveryEffect>, Stop> {
    let github = &at.ctx.github;
    let pr = match github
        .pull_request(at.installation_id, at.repo, at.number)
        .await
    {
        Ok(pr) => pr,
        // GitHub says no for good: tell the person instead of retrying.
        Err(error) if error.is_final() => {
            let answer = format!("Gantry cannot read this pull request on GitHub ({error}).");
            return Ok(vec![at.reply(answer, unique)]);
        }
        Err(error) => return Err(Stop::retry("reading the pull request", error)),
    };
    let request = PlanRequest {
        delivery_id: at.delivery_id,
        repo: at.repo,
        installation_id: at.installation_id,
        target: PlanTarget::PullRequest(at.number),
        head_sha: &pr.head.sha,
        facts: PullRequestFacts {
            action: "command",
            base_ref: &pr.base.git_ref,
            default_branch: &at.event.repository.default_branch,
            draft: false,
            from_fork: pr.is_from_fork(),
            approved: true,
            state: PrState::of(&pr.state, pr.merged),
        },
        source: RunSource::Command,
        only,
        author: &pr.user.login,
    };
    answer_or_stop(at, plan(at.ctx, &request).await, "Nothing to plan", unique)
}

/// `retry`: new runs for the head's failed or canceled plans.
async fn command_retry(
    at: &Commenting<'_>,
    only: &[WorkspaceName],
    unique: &str,
) -> Result<Vec<DeliveryEffect>, Stop> {
    let retried = match retry(at, only).await {
        Ok(Some(runs)) => Ok(vec![DeliveryEffect::CreateRuns(runs)]),
        Ok(None) => {
            let nothing =
                "Nothing to retry: no failed or canceled plan at the pull request's head.";
            return Ok(vec![at.reply(nothing.into(), unique)]);
        }
        Err(stop) => Err(stop),
    };
    answer_or_stop(at, retried, "Nothing to retry", unique)
}

/// A command's effects; where it stopped for a reason a person can act on, a reply saying
/// `what` and why; a passing failure stops the whole comment (handled again later).
fn answer_or_stop(
    at: &Commenting<'_>,
    handled: Handled,
    what: &str,
    unique: &str,
) -> Result<Vec<DeliveryEffect>, Stop> {
    match handled {
        Ok(effects) => Ok(effects),
        Err(stop) => match stop.reason() {
            Some(reason) => Ok(vec![at.reply(format!("{what}: {reason}"), unique)]),
            None => Err(stop),
        },
    }
}

/// New runs, with the same configuration version, for the head commit's failed or canceled
/// speculative plans.
async fn retry(at: &Commenting<'_>, only: &[WorkspaceName]) -> Result<Option<NewRuns>, Stop> {
    let (ctx, repo, number) = (at.ctx, at.repo, at.number);
    let pr = (ctx
        .github
        .pull_request(at.installation_id, repo, number)
        .await)
        .map_err(|e| Stop::retry("reading the pull request", e))?;
    if let Some(why) = PrState::of(&pr.state, pr.merged).why_not_run() {
        return Err(Stop::ignored(why));
    }
    let latest = (ctx.store.pull_request_runs(repo, number).await)
        .map_err(|e| Stop::retry("reading the plans", e))?;
    let mut retry_of = Vec::new();
    for run_id in latest {
        let run = (ctx.store.run(run_id).await)
            .map_err(|e| Stop::retry(&format!("reading run {run_id}"), e))?;
        let Some(run) = run else { continue };
        if !run.state.can_be_retried() || run.commit_sha != pr.head.sha {
            continue;
        }
        if !only.is_empty() && !only.iter().any(|name| name.as_str() == run.workspace_name) {
            continue;
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
        delivery_id: at.delivery_id.to_string(),
        installation_id: Some(at.installation_id),
        speculative: true,
        pr_number: Some(number),
        retry_of,
        auto_apply: false,
        author: pr.user.login,
        triggered_by: None,
        options: crate::core::plan_options::PlanOptions::default(),
        message: String::new(),
    }))
}

/// `override`: the runs of the pull request's commits (its head, and the commit it merged as)
/// that wait on a failed policy check go on, if the person is an admin of the repository and
/// not, for a set that forbids it, the change's author. Never in advance: only runs waiting
/// now.
async fn command_override(
    at: &Commenting<'_>,
    only: &[WorkspaceName],
    reason: &str,
    admin: bool,
    unique: &str,
) -> Result<Vec<DeliveryEffect>, Stop> {
    let (ctx, user) = (at.ctx, &at.event.comment.user.login);
    if !admin {
        tracing::info!(user, "policy override refused: not an admin");
        let refusal = format!(
            "Sorry @{user}, overriding a policy check needs admin permission on {}.",
            at.repo
        );
        return Ok(vec![at.reply(refusal, unique)]);
    }
    let pr = (ctx
        .github
        .pull_request(at.installation_id, at.repo, at.number)
        .await)
        .map_err(|e| Stop::retry("reading the pull request", e))?;
    let mut commits = vec![pr.head.sha.clone()];
    commits.extend(pr.merge_commit_sha.clone().filter(|_| pr.merged));
    let waiting = (ctx.store.runs_waiting_for_override(at.repo, &commits).await)
        .map_err(|e| Stop::retry("finding the runs waiting for an override", e))?;
    let waiting: Vec<_> = waiting
        .into_iter()
        .filter(|run| only.is_empty() || only.iter().any(|n| n.as_str() == run.workspace_name))
        .collect();
    if waiting.is_empty() {
        let nothing = "Nothing to override: no run of this pull request's commits waits on a \
                       failed policy check.";
        return Ok(vec![at.reply(nothing.into(), unique)]);
    }
    let guarded: Vec<&str> = ctx.guarded_sets.iter().map(String::as_str).collect();
    let mut effects = Vec::new();
    let mut lines = Vec::new();
    for run in waiting {
        let outcomes = (ctx.store.policy_checks(run.id).await)
            .map_err(|e| Stop::retry("reading the policy checks", e))?;
        let authors = [run.author.as_str(), pr.user.login.as_str()];
        if let Some(why) = self_override_refusal(&outcomes, &guarded, &authors, user) {
            tracing::info!(user, run_id = %run.id, "policy override refused: {why}");
            lines.push(format!(
                "- `{}`: not overridden: {why}.",
                run.workspace_name
            ));
            continue;
        }
        let auto_apply = (ctx.store.workspace(run.workspace_id).await)
            .map_err(|e| Stop::retry("reading the workspace", e))?
            .is_some_and(|w| run.applies_automatically(&w.spec));
        tracing::info!(user, run_id = %run.id, "policy check overridden from a comment");
        // Its own reply, sent only if the override happens (see the effect).
        let said = format!(
            "`{}`: run {} overridden by @{user}.",
            run.workspace_name, run.id
        );
        let reply = at.reply_message(said, &format!("{unique}/{}", run.id));
        let order = PolicyOverride {
            run_id: run.id,
            by: user.clone(),
            reason: reason.to_string(),
            auto_apply,
        };
        effects.push(DeliveryEffect::OverridePolicy(order, reply));
    }
    if !lines.is_empty() {
        effects.push(at.reply(lines.join("\n"), unique));
    }
    Ok(effects)
}
