//! GitHub's "Re-run" buttons: on one of Gantry's check runs, and "Re-run all" on a check
//! suite. Failed or canceled runs are retried as new runs of the same configuration version,
//! only where they are still the latest of their workspace or pull request.

use super::{Context, Handled, Stop};
use crate::core::InstallationId;
use crate::core::RunId;
use crate::events::{CheckRunEvent, CheckSuiteEvent};
use crate::store::{DeliveryEffect, NewRuns, RunDetail};

/// GitHub's "Re-run" on one of Gantry's check runs: retried like `/gantry retry`.
pub(super) async fn handle_check_run(
    ctx: &Context,
    delivery_id: &str,
    e: &CheckRunEvent,
) -> Handled {
    if e.action != "rerequested" {
        return Err(Stop::ignored(format!(
            "check_run {} needs nothing",
            e.action
        )));
    }
    let Some(run_id) = e
        .check_run
        .external_id
        .as_deref()
        .and_then(|id| id.parse::<RunId>().ok())
    else {
        return Err(Stop::ignored("the check run is not one of Gantry's runs"));
    };
    let run = match ctx.store.run(run_id).await {
        Ok(Some(run)) if run.repo == e.repository.full_name => run,
        Ok(_) => {
            return Err(Stop::ignored(
                "the check run names no run of this repository",
            ));
        }
        Err(error) => return Err(Stop::retry(&format!("reading run {run_id}"), error)),
    };
    let installation = e.installation.as_ref().map(|i| i.id);
    if !run.speculative {
        // A push run: retried as the API retries it, unless a newer run of its workspace
        // came since (it would apply code that a newer commit replaced).
        let newer = (ctx.store.has_newer_run(run.workspace_id, run.id).await)
            .map_err(|e| Stop::retry("reading the queue", e))?;
        if newer {
            return Err(Stop::ignored(
                "the workspace has a newer run; re-run that one",
            ));
        }
        return retry_effects(delivery_id, installation, vec![run]);
    }
    let runs = latest_of_their_pull_requests(ctx, vec![run]).await?;
    retry_effects(delivery_id, installation, runs)
}

/// Only a workspace's latest plan of its pull request may be re-run: an older one (superseded,
/// or already retried) would run stale code, or twice.
async fn latest_of_their_pull_requests(
    ctx: &Context,
    runs: Vec<RunDetail>,
) -> Result<Vec<RunDetail>, Stop> {
    let mut latest = Vec::new();
    for run in runs {
        let Some(pr) = run.pr_number else { continue };
        let current = ctx
            .store
            .pull_request_runs(&run.repo, pr)
            .await
            .map_err(|e| Stop::retry("reading the plans", e))?;
        if current.contains(&run.id) {
            latest.push(run);
        }
    }
    Ok(latest)
}

/// GitHub's "Re-run all" on a check suite: every failed plan of its commit is retried.
pub(super) async fn handle_check_suite(
    ctx: &Context,
    delivery_id: &str,
    e: &CheckSuiteEvent,
) -> Handled {
    if e.action != "rerequested" {
        return Err(Stop::ignored(format!(
            "check_suite {} needs nothing",
            e.action
        )));
    }
    let repo = &e.repository.full_name;
    let ids = (ctx.store)
        .latest_speculative_runs_at(repo, &e.check_suite.head_sha)
        .await
        .map_err(|e| Stop::retry("reading the plans", e))?;
    let mut runs = Vec::new();
    for id in ids {
        let run =
            (ctx.store.run(id).await).map_err(|e| Stop::retry(&format!("reading run {id}"), e))?;
        runs.extend(run);
    }
    let runs = latest_of_their_pull_requests(ctx, runs).await?;
    retry_effects(delivery_id, e.installation.as_ref().map(|i| i.id), runs)
}

/// New runs (same configuration version) for those of `runs` that failed or were canceled;
/// the callers have kept only runs that are the latest of their pull request or workspace.
fn retry_effects(
    delivery_id: &str,
    installation: Option<InstallationId>,
    runs: Vec<RunDetail>,
) -> Handled {
    let effects: Vec<DeliveryEffect> = runs
        .iter()
        .filter(|r| r.state.can_be_retried())
        .map(|run| DeliveryEffect::CreateRuns(NewRuns::retry_of(run, delivery_id, installation)))
        .collect();
    if effects.is_empty() {
        return Err(Stop::ignored("no failed or canceled run to retry"));
    }
    Ok(effects)
}
