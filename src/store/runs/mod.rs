//! Runs, all in one tree: created with their configuration version and pinned variables
//! (`create.rs`), moved from state to state by one function (`moves.rs`), read
//! (`read.rs`), executed (`execution.rs`: plans, logs), taken back after a restart
//! (`adoption.rs`) and made from uploaded configurations (`uploads.rs`).

/// The states in which a run is finished, as SQL (matches the `runs_active` index). A macro so
/// that the statements stay static strings.
macro_rules! final_states {
    () => {
        "('applied', 'planned_and_finished', 'errored', 'discarded', 'canceled', 'force_canceled')"
    };
}

/// The columns [`read::run_detail`] reads, from a run joined to its configuration version.
macro_rules! select_runs {
    () => {
        "SELECT r.id, r.workspace_id, r.state, r.speculative, r.source, r.commit_sha, \
         r.created_at_ms, r.configuration_version_id, c.repo, c.installation_id, \
         c.archive_sha256, c.uploaded, r.plan_add, r.plan_change, r.plan_destroy, \
         r.resource_changes, r.error, r.terraform_error, r.pr_number, r.retry_of, \
         r.plan_has_changes, r.auto_apply, r.author, r.triggered_by, r.plan_options, r.message, \
         CASE WHEN EXISTS (SELECT 1 FROM run_events e WHERE e.run_id = r.id \
         AND e.state = 'applying') THEN 1 ELSE 0 END AS reached_apply, \
         w.name AS workspace_name \
         FROM runs r JOIN configuration_versions c ON c.id = r.configuration_version_id \
         JOIN workspaces w ON w.id = r.workspace_id"
    };
}

mod adoption;
mod create;
mod execution;
mod moves;
mod overrides;
mod read;
mod triggered;
mod uploads;

pub use create::{NewRuns, RunSource};
pub use execution::LogChunk;
#[cfg(test)]
pub(crate) use moves::move_run;
pub use moves::{Also, Cause, Move, MoveError};
pub use overrides::PolicyOverride;
pub use read::{PlanCounts, RunDetail, RunEvent, RunRecord};
pub use uploads::ConfigurationUpload;
pub use uploads::RunPage;
