//! GitHub's merge queue: a `merge_group` asks for the required checks on the commit where the
//! queued pull requests meet (`checks_requested`). Gantry plans every workspace the group's
//! changes touch at that commit, as speculative plans reported under the same contexts and
//! check names as a pull request's, so the same required checks pass or fail; untouched
//! workspaces get their passing status at once. A group that is destroyed (merged,
//! invalidated, dequeued) cancels its plans still running.

use super::pull_request::{PlanRequest, PlanTarget, plan};
use super::{Context, Handled, Stop};
use crate::core::pull_request::{PrState, PullRequestFacts};
use crate::events::MergeGroupEvent;
use crate::store::{CancelScope, DeliveryEffect, RunSource, SpeculativeCancel};

pub(super) async fn handle_merge_group(
    ctx: &Context,
    delivery_id: &str,
    e: &MergeGroupEvent,
) -> Handled {
    let Some(installation_id) = e.installation.as_ref().map(|i| i.id) else {
        return Err(Stop::ignored("the merge group names no installation"));
    };
    let group = &e.merge_group;
    let repo = &e.repository.full_name;
    match e.action.as_str() {
        "checks_requested" => {
            let request = PlanRequest {
                delivery_id,
                repo,
                installation_id,
                target: PlanTarget::MergeGroup {
                    base_sha: &group.base_sha,
                },
                head_sha: &group.head_sha,
                facts: PullRequestFacts {
                    action: "merge_group",
                    base_ref: group.base_branch(),
                    default_branch: &e.repository.default_branch,
                    draft: false,
                    // The group's commit is the base repository's own, and every pull request
                    // in it passed the branch's rules to enter the queue.
                    from_fork: false,
                    approved: true,
                    state: PrState::Open,
                },
                source: RunSource::MergeGroup,
                only: &[],
                author: &e.sender.login,
            };
            plan(ctx, &request).await
        }
        "destroyed" => {
            let reason = e.reason.as_deref().unwrap_or("destroyed");
            Ok(vec![DeliveryEffect::CancelSpeculative(SpeculativeCancel {
                repo: repo.clone(),
                scope: CancelScope::Commit(group.head_sha.clone()),
                reason: format!("the merge group was {reason}"),
            })])
        }
        other => Err(Stop::ignored(format!(
            "merge group action {other} asks nothing of Gantry"
        ))),
    }
}
