//! Queue policy: which run of a workspace may start next. Pure: it sees the workspace's runs in
//! creation order and whether the workspace is locked, and decides; the store holds the state,
//! so a restart loses nothing and decides the same way again.
//!
//! Speculative plans never reach this module: they do not queue.

use super::RunId;
use super::run::RunState;

/// A non-speculative run of one workspace, as the queue sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueuedRun {
    pub id: RunId,
    pub state: RunState,
}

/// What the workspace's queue should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueDecision {
    /// Start this run (move it from pending to fetching).
    Start(RunId),
    /// Nothing may start: why.
    Wait(WaitReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitReason {
    /// No pending run.
    Empty,
    /// Locked by hand: queued runs wait, a run under way finishes.
    Locked,
    /// This run holds the workspace (under way, or waiting for confirmation).
    Busy(RunId),
}

/// The decision for one workspace. `runs` must be in creation order.
pub fn next_to_start(runs: &[QueuedRun], locked: bool) -> QueueDecision {
    if let Some(holder) = runs.iter().find(|r| r.state.holds_workspace()) {
        return QueueDecision::Wait(WaitReason::Busy(holder.id));
    }
    let Some(first_pending) = runs.iter().find(|r| r.state == RunState::Pending) else {
        return QueueDecision::Wait(WaitReason::Empty);
    };
    if locked {
        return QueueDecision::Wait(WaitReason::Locked);
    }
    QueueDecision::Start(first_pending.id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use RunState::*;

    fn runs(states: &[RunState]) -> Vec<QueuedRun> {
        states
            .iter()
            .enumerate()
            .map(|(i, state)| QueuedRun {
                id: RunId(i as i64 + 1),
                state: *state,
            })
            .collect()
    }

    #[test]
    fn the_oldest_pending_run_starts_first() {
        let queue = runs(&[Applied, Pending, Pending]);
        assert_eq!(next_to_start(&queue, false), QueueDecision::Start(RunId(2)));
    }

    #[test]
    fn second_run_waits_while_first_awaits_confirmation() {
        let queue = runs(&[Planned, Pending]);
        assert_eq!(
            next_to_start(&queue, false),
            QueueDecision::Wait(WaitReason::Busy(RunId(1)))
        );
    }

    #[test]
    fn no_later_run_starts_while_one_is_between_fetching_and_applying() {
        for holder in [Fetching, Planning, Planned, Confirmed, Applying] {
            let queue = runs(&[holder, Pending, Pending]);
            assert_eq!(
                next_to_start(&queue, false),
                QueueDecision::Wait(WaitReason::Busy(RunId(1))),
                "{holder}"
            );
        }
    }

    #[test]
    fn finishing_discarding_or_canceling_hands_the_workspace_to_the_next_pending_run() {
        for done in [
            Applied,
            PlannedAndFinished,
            Errored,
            Discarded,
            Canceled,
            ForceCanceled,
        ] {
            let queue = runs(&[done, Pending]);
            assert_eq!(
                next_to_start(&queue, false),
                QueueDecision::Start(RunId(2)),
                "{done}"
            );
        }
    }

    #[test]
    fn a_locked_workspace_starts_nothing() {
        let queue = runs(&[Applied, Pending]);
        assert_eq!(
            next_to_start(&queue, true),
            QueueDecision::Wait(WaitReason::Locked)
        );
    }

    #[test]
    fn a_run_under_way_is_reported_busy_even_when_locked() {
        let queue = runs(&[Planning, Pending]);
        assert_eq!(
            next_to_start(&queue, true),
            QueueDecision::Wait(WaitReason::Busy(RunId(1)))
        );
    }

    #[test]
    fn an_empty_queue_waits() {
        assert_eq!(
            next_to_start(&[], false),
            QueueDecision::Wait(WaitReason::Empty)
        );
        assert_eq!(
            next_to_start(&runs(&[Applied]), true),
            QueueDecision::Wait(WaitReason::Empty)
        );
    }
}
