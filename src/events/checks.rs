//! The `check_run` and `check_suite` events: GitHub asks Gantry's checks to run again
//! ("Re-run" in the UI) or reports a button a person pressed on one of Gantry's check runs.

use serde::Deserialize;

use super::common::{Account, InstallationRef, Repository};
use crate::core::CommitSha;
use crate::core::PrNumber;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CheckRunEvent {
    /// `created`, `completed`, `rerequested` or `requested_action` (a person pressed one of
    /// the check run's buttons).
    pub action: String,
    pub check_run: CheckRun,
    /// The button pressed, for a `requested_action` action.
    pub requested_action: Option<RequestedAction>,
    pub repository: Repository,
    pub installation: Option<InstallationRef>,
    pub sender: Account,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CheckRun {
    pub id: u64,
    pub name: String,
    pub head_sha: CommitSha,
    /// The identifier the app that created the check run gave it (Gantry: its run id).
    pub external_id: Option<String>,
    /// `queued`, `in_progress`, `completed`, `waiting`, `requested` or `pending`.
    pub status: String,
    /// Set once completed: `success`, `failure`, `neutral`, `cancelled`, `timed_out`,
    /// `action_required`, `skipped`, `stale`, …
    pub conclusion: Option<String>,
    pub check_suite: Option<CheckRunSuite>,
}

/// The suite a check run belongs to, as the check run payload describes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CheckRunSuite {
    pub id: u64,
    pub head_branch: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RequestedAction {
    /// The identifier Gantry gave the button when it created the check run.
    pub identifier: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CheckSuiteEvent {
    /// `requested`, `rerequested` or `completed`.
    pub action: String,
    pub check_suite: CheckSuite,
    pub repository: Repository,
    pub installation: Option<InstallationRef>,
    pub sender: Account,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CheckSuite {
    pub id: u64,
    /// `None` when the suite is for a commit no branch points to.
    pub head_branch: Option<String>,
    pub head_sha: CommitSha,
    pub status: Option<String>,
    pub conclusion: Option<String>,
    /// Open pull requests whose head is this suite's commit, in this repository only.
    #[serde(default)]
    pub pull_requests: Vec<CheckSuitePullRequest>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CheckSuitePullRequest {
    pub number: PrNumber,
    pub head: BranchRef,
    pub base: BranchRef,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BranchRef {
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub sha: CommitSha,
}
