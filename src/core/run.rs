//! The run state machine: the states a run passes through and the only moves allowed between
//! them (after Terraform Cloud's run states). Pure: no I/O, no clock. The store's one writer of
//! a run's state (`store::runs::moves::move_run`) asks it before every move and records each
//! accepted move as a run event.

use std::fmt;

/// Where a run is. Speculative plans use the same states but end at `PlannedAndFinished`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunState {
    /// Created, waiting for its turn in the workspace's queue.
    Pending,
    /// Getting its configuration version ready (tarball download, extraction).
    Fetching,
    /// `terraform init` and `terraform plan` are running.
    Planning,
    /// The plan has changes and its policies are being evaluated.
    PolicyChecking,
    /// Its policies passed (or only advisory ones failed); it goes on to wait for
    /// confirmation (or to apply by itself).
    PolicyChecked,
    /// A mandatory policy failed (or one errored): it waits for an override, or a discard.
    PolicyOverride,
    /// The plan has changes and waits for someone to confirm (or discard) it.
    Planned,
    /// Confirmed; the apply is about to start.
    Confirmed,
    /// `terraform apply` of the saved plan is running.
    Applying,
    Applied,
    /// The plan had no changes, or the run was a speculative plan: nothing to apply.
    PlannedAndFinished,
    Errored,
    Discarded,
    /// Stopped on request, gracefully (Terraform got SIGINT and exited).
    Canceled,
    /// Stopped by killing Terraform.
    ForceCanceled,
}

/// A move the state machine refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a run that is {from} cannot become {to}")]
pub struct IllegalTransition {
    pub from: RunState,
    pub to: RunState,
}

impl RunState {
    pub const ALL: [RunState; 15] = [
        RunState::Pending,
        RunState::Fetching,
        RunState::Planning,
        RunState::PolicyChecking,
        RunState::PolicyChecked,
        RunState::PolicyOverride,
        RunState::Planned,
        RunState::Confirmed,
        RunState::Applying,
        RunState::Applied,
        RunState::PlannedAndFinished,
        RunState::Errored,
        RunState::Discarded,
        RunState::Canceled,
        RunState::ForceCanceled,
    ];

    /// Terraform Cloud's name for the state: Gantry's, but for two it names otherwise (what
    /// the Terraform CLI and notification receivers know).
    pub fn terraform_cloud_status(self) -> &'static str {
        match self {
            RunState::Fetching => "plan_queued",
            // The CLI knows no force_canceled: it exits 1 for canceled.
            RunState::ForceCanceled => "canceled",
            other => other.as_str(),
        }
    }

    /// The name stored in the database and shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Pending => "pending",
            RunState::Fetching => "fetching",
            RunState::Planning => "planning",
            RunState::PolicyChecking => "policy_checking",
            RunState::PolicyChecked => "policy_checked",
            RunState::PolicyOverride => "policy_override",
            RunState::Planned => "planned",
            RunState::Confirmed => "confirmed",
            RunState::Applying => "applying",
            RunState::Applied => "applied",
            RunState::PlannedAndFinished => "planned_and_finished",
            RunState::Errored => "errored",
            RunState::Discarded => "discarded",
            RunState::Canceled => "canceled",
            RunState::ForceCanceled => "force_canceled",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Finished for good: no move leaves these states.
    /// Whether the log of `phase` ("plan" or "apply") may still grow in this state.
    pub fn log_may_grow(self, phase: &str) -> bool {
        use RunState::*;
        match phase {
            "plan" => matches!(
                self,
                Pending | Fetching | Planning | PolicyChecking | PolicyChecked
            ),
            _ => matches!(self, Planned | Confirmed | Applying),
        }
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            RunState::Applied
                | RunState::PlannedAndFinished
                | RunState::Errored
                | RunState::Discarded
                | RunState::Canceled
                | RunState::ForceCanceled
        )
    }

    /// What people wait for: a final state, or a plan waiting for its confirmation. GitHub
    /// hears of these before anything in between.
    pub fn is_result(self) -> bool {
        self.is_final() || self.waits_for_a_person()
    }

    /// Waits for someone: to confirm (or discard) a plan, or to override a failed policy
    /// check.
    pub fn waits_for_a_person(self) -> bool {
        matches!(self, RunState::Planned | RunState::PolicyOverride)
    }

    /// After a move into this state, some scheduler may have something to start: the run
    /// ended (the next in its workspace may go), waits in the queue again, or was confirmed
    /// (its apply starts). Moves into a phase (fetching, planning, applying) or into waiting
    /// for confirmation give no scheduler anything to do.
    pub fn wakes_schedulers(self) -> bool {
        self.is_final() || matches!(self, RunState::Pending | RunState::Confirmed)
    }

    /// Terraform may be running (or about to): the states a cancel applies to, and the ones a
    /// restart interrupts.
    pub fn is_executing(self) -> bool {
        matches!(
            self,
            RunState::Fetching
                | RunState::Planning
                | RunState::PolicyChecking
                | RunState::PolicyChecked
                | RunState::Confirmed
                | RunState::Applying
        )
    }

    /// Making its plan, or checking it: lost with its server, it is planned again.
    pub fn is_planning(self) -> bool {
        matches!(
            self,
            RunState::Fetching
                | RunState::Planning
                | RunState::PolicyChecking
                | RunState::PolicyChecked
        )
    }

    /// Ended without success, so a person may run it again (as a new run): errored,
    /// canceled or discarded. One that applied or planned cleanly is not retried.
    pub fn can_be_retried(self) -> bool {
        matches!(
            self,
            RunState::Errored | RunState::Canceled | RunState::ForceCanceled | RunState::Discarded
        )
    }

    /// Holds its workspace: from fetching to applying, waiting for confirmation included, no
    /// later run of the workspace may start (its plan could be made stale by this run).
    pub fn holds_workspace(self) -> bool {
        self.is_executing() || self.waits_for_a_person()
    }

    /// Whether `self → to` is a legal move.
    pub fn can_become(self, to: RunState) -> bool {
        use RunState::*;
        match (self, to) {
            (Pending, Fetching) => true,
            // A plan lost with its supervisor (Gantry or the machine stopped) starts again.
            (from, Pending) if from.is_planning() => true,
            (Fetching, Planning) => true,
            (Planning, Planned | PlannedAndFinished | PolicyChecking) => true,
            // A speculative plan reports its policies and is done; another goes on or waits.
            (PolicyChecking, PolicyChecked | PolicyOverride | PlannedAndFinished) => true,
            (PolicyChecked, Planned) => true,
            // An override lets it go on to wait for confirmation, in one move (a stop between
            // two would leave it executing with nothing executing it).
            (PolicyOverride, Planned) => true,
            (Planned, Confirmed) => true,
            (Confirmed, Applying) => true,
            (Applying, Applied) => true,
            // Discarding is for runs that wait: in the queue, for confirmation, for an override.
            (Pending | Planned | PolicyOverride, Discarded) => true,
            // A pending run can be canceled too (a superseded speculative plan).
            (Pending, Canceled) => true,
            // A plan waiting for confirmation errors when the server holding its saved plan
            // stopped for good: the plan went with it.
            (Planned | PolicyOverride, Errored) => true,
            (from, Errored | Canceled | ForceCanceled) => from.is_executing(),
            _ => false,
        }
    }

    /// The state after `self → to`, or why not.
    pub fn transition(self, to: RunState) -> Result<RunState, IllegalTransition> {
        if self.can_become(to) {
            Ok(to)
        } else {
            Err(IllegalTransition { from: self, to })
        }
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a finished plan leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanResult {
    pub has_changes: bool,
}

/// What kind of run this is, as far as the end of its plan is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunKind {
    pub speculative: bool,
    pub auto_apply: bool,
}

/// The states a run moves through when its plan finishes: a speculative plan or a plan without
/// changes is done; a plan with changes waits for confirmation, or (auto-apply) confirms itself.
pub fn after_plan(kind: RunKind, plan: PlanResult) -> &'static [RunState] {
    if kind.speculative || !plan.has_changes {
        &[RunState::PlannedAndFinished]
    } else if kind.auto_apply {
        &[RunState::Planned, RunState::Confirmed]
    } else {
        &[RunState::Planned]
    }
}

#[cfg(test)]
mod tests;
