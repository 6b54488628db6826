//! The `merge_group` event: GitHub's merge queue made a commit of the base branch with the queued
//! pull requests on top (`checks_requested`) and wants the required checks on it, or dropped
//! such a commit (`destroyed`: merged, invalidated or dequeued).

use serde::Deserialize;

use super::common::{Account, InstallationRef, Repository};
use crate::core::CommitSha;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MergeGroupEvent {
    /// `checks_requested` or `destroyed`.
    pub action: String,
    /// Why a group was destroyed: `merged`, `invalidated` or `dequeued`.
    pub reason: Option<String>,
    pub merge_group: MergeGroup,
    pub repository: Repository,
    pub installation: Option<InstallationRef>,
    pub sender: Account,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MergeGroup {
    /// The commit the checks are wanted on: the base with the group's pull requests merged.
    pub head_sha: CommitSha,
    /// `refs/heads/gh-readonly-queue/<base>/pr-<n>-<sha>`.
    pub head_ref: String,
    pub base_sha: CommitSha,
    /// The branch the group merges into, e.g. `refs/heads/main`.
    pub base_ref: String,
}

impl MergeGroup {
    /// The base branch's name, without `refs/heads/`.
    pub fn base_branch(&self) -> &str {
        self.base_ref
            .strip_prefix("refs/heads/")
            .unwrap_or(&self.base_ref)
    }
}
