//! A policy override as one transaction: the run leaves `policy_override` for `planned`
//! with who and why on its timeline, and on an auto-apply run goes straight on to
//! `confirmed`. People override through the API, the UI and a pull request comment (a
//! delivery's effect): the same moves for all three.

use super::moves::move_run;
use super::{Cause, Move, MoveError};
use crate::core::RunId;
use crate::core::policy::OVERRIDE_DETAIL;
use crate::core::run::RunState;
use crate::store::{BeginWrite, Conn, Store, on_pool};

/// An override someone asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyOverride {
    pub run_id: RunId,
    /// Who asked: a GitHub login or an API token's name.
    pub by: String,
    pub reason: String,
    /// The run applies without confirmation (its own `-auto-approve` or its workspace's
    /// setting).
    pub auto_apply: bool,
}

impl PolicyOverride {
    /// Makes the moves in the caller's transaction; false when the run no longer waits.
    pub(crate) async fn apply(&self, mut conn: Conn<'_>) -> Result<bool, MoveError> {
        let detail = format!("{OVERRIDE_DETAIL}{}", self.reason);
        let overridden = Move::new(
            self.run_id,
            RunState::PolicyOverride,
            RunState::Planned,
            Cause::Person(self.by.clone()),
        )
        .detail(&detail);
        if !move_run(conn.reborrow(), &overridden).await? {
            return Ok(false);
        }
        // Waiting for confirmation is a resting state: auto-apply confirms from there, as
        // after any plan.
        if self.auto_apply {
            let confirm = Move::new(
                self.run_id,
                RunState::Planned,
                RunState::Confirmed,
                Cause::Runner,
            );
            move_run(conn, &confirm).await?;
        }
        Ok(true)
    }
}

impl Store {
    /// Overrides a run's failed policy check; false when it no longer waits for one.
    pub async fn override_policy(&self, order: &PolicyOverride) -> anyhow::Result<bool> {
        let moved = on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let moved = order.apply((&mut *tx).into()).await?;
            tx.commit().await?;
            moved
        });
        if moved {
            self.notify_outbox();
        }
        Ok(moved)
    }
}
