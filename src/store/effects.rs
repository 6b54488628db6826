//! What processing a delivery decided to change, applied by the store in the same transaction
//! that closes the delivery: both happen, or neither does.

use super::{
    Conn, InstallationChange, Message, MoveError, NewRuns, OutboxItem, PolicyOverride, Reply,
    UntouchedContexts,
};
use crate::core::{CommitSha, PrNumber};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryEffect {
    Installation(InstallationChange),
    /// A push or a pull request created a configuration version and runs.
    CreateRuns(NewRuns),
    /// A pull request's speculative plans that have not started are canceled (a newer head,
    /// or the pull request closed). Those already executing are stopped by the dispatcher.
    CancelSpeculative(SpeculativeCancel),
    /// Something to tell GitHub.
    Outbox(OutboxItem),
    /// Workspaces a pull request does not touch, summed up by the `gantry` status only.
    Untouched(UntouchedContexts),
    /// A run's failed policy check overridden from a pull request comment, and the reply that
    /// says so — or, when the run no longer waits by the time the delivery closes, says that
    /// nothing was overridden.
    OverridePolicy(PolicyOverride, Reply),
}

/// Which speculative plans to cancel, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpeculativeCancel {
    pub repo: String,
    pub scope: CancelScope,
    pub reason: String,
}

impl DeliveryEffect {
    pub(crate) async fn apply(&self, conn: Conn<'_>) -> Result<(), MoveError> {
        match self {
            DeliveryEffect::Installation(change) => change.apply(conn).await?,
            DeliveryEffect::CreateRuns(runs) => {
                runs.create(conn).await?;
            }
            DeliveryEffect::CancelSpeculative(cancel) => cancel.cancel_pending(conn).await?,
            DeliveryEffect::Outbox(item) => item.enqueue(conn).await?,
            DeliveryEffect::Untouched(untouched) => untouched.record(conn).await?,
            DeliveryEffect::OverridePolicy(order, reply) => {
                let mut conn = conn;
                let mut reply = reply.clone();
                // A run that stopped waiting meanwhile (discarded, say) stays as it is.
                if !order.apply(conn.reborrow()).await? {
                    reply.body = format!(
                        "Run {} no longer waits for a policy override: nothing was overridden.",
                        order.run_id
                    );
                }
                OutboxItem::result(Message::Reply(reply))
                    .enqueue(conn)
                    .await?;
            }
        }
        Ok(())
    }
}

/// Whose speculative plans a cancel stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelScope {
    /// A pull request's, but those of `except_sha` (its new head) stay.
    PullRequest {
        pr_number: PrNumber,
        except_sha: Option<CommitSha>,
    },
    /// Those of one commit: a merge group's.
    Commit(CommitSha),
}

impl CancelScope {
    /// The scope as the bind values of `(pr_number, except_sha, only_sha)` in
    /// the statements that cancel.
    pub(crate) fn binds(&self) -> (Option<PrNumber>, Option<&CommitSha>, Option<&CommitSha>) {
        match self {
            CancelScope::PullRequest {
                pr_number,
                except_sha,
            } => (Some(*pr_number), except_sha.as_ref(), None),
            CancelScope::Commit(sha) => (None, None, Some(sha)),
        }
    }
}
