//! Pure decisions with no I/O, no async and no clock: the run state machine, the queue policy
//! and which workspaces a change triggers. Everything here is tested without a database or a
//! network; the engine feeds it what the store says and stores what it decides.

pub mod access;
pub mod assessments;
pub mod catch_up;
pub mod checks;
pub mod commands;
pub mod comment;
pub mod github_terms;
pub mod ids;
pub mod notifications;
pub mod plan_options;
pub mod policy;
pub mod pull_request;
pub mod push;
pub mod queue;
pub mod run;
pub mod run_triggers;
pub mod state;
pub mod status;
pub mod triggers;
pub mod workspace;

pub use ids::{CommitSha, InstallationId, PrNumber, RunId, WorkspaceId};
