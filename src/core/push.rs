//! What a push means: which workspaces get a run, or why none does. Pure: it sees the push's
//! facts and the repository's workspaces, and decides; when the push payload's list of changed
//! files cannot be trusted it asks for a comparison instead of guessing.

use super::WorkspaceId;
use super::triggers::Triggers;
use crate::core::CommitSha;

/// GitHub lists at most this many commits in a push payload; past it the list is cut.
pub const MAX_TRUSTED_COMMITS: usize = 20;
const ZERO_SHA: &str = "0000000000000000000000000000000000000000";
/// GitHub's merge queue pushes the changes it tests to branches under this prefix: a run there
/// would plan (or apply) code that is not on any branch a workspace tracks yet.
pub const MERGE_QUEUE_PREFIX: &str = "gh-readonly-queue/";

/// The facts of a push that the decision needs.
#[derive(Debug, Clone)]
pub struct Push<'a> {
    pub git_ref: &'a str,
    pub before: &'a str,
    pub after: &'a str,
    pub created: bool,
    pub deleted: bool,
    pub forced: bool,
    pub commit_count: usize,
    pub default_branch: &'a str,
}

/// A workspace of the pushed repository, as the decision sees it.
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    pub id: WorkspaceId,
    /// None: the repository's default branch.
    pub branch: Option<&'a str>,
    pub triggers: &'a Triggers,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushDecision {
    /// Nothing to run; the reason is recorded on the delivery.
    Ignore(String),
    /// The payload's file list cannot be trusted: ask GitHub for each comparison and decide
    /// again with every file they list.
    NeedCompare(Vec<Comparison>),
    /// Create a run at `commit` in each of these workspaces.
    Run {
        commit: CommitSha,
        workspace_ids: Vec<WorkspaceId>,
    },
}

/// GitHub's `base...head`: the files changed on `head` since the merge base of the two.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comparison {
    pub base: String,
    pub head: String,
}

/// Where the list of changed files comes from.
#[derive(Debug, Clone, Copy)]
pub enum ChangedFiles<'a> {
    /// The push payload's commits: trusted unless [`untrusted`] says otherwise.
    Payload(&'a [&'a str]),
    /// GitHub's comparison of the push's base and head: always trusted.
    Compared(&'a [&'a str]),
    /// More files changed than GitHub lists: every workspace on the branch may be touched.
    TooMany,
    /// GitHub cannot compare the commits (the old tip is gone, or the tips share no history):
    /// every workspace on the branch may be touched.
    Unknown,
}

/// Decides with the payload's file list first; with `Compared` after a `NeedCompare`.
pub fn decide(
    push: &Push<'_>,
    workspaces: &[Candidate<'_>],
    changed_files: ChangedFiles<'_>,
) -> PushDecision {
    let Some(branch) = push.git_ref.strip_prefix("refs/heads/") else {
        return PushDecision::Ignore(format!("{} is not a branch", push.git_ref));
    };
    if branch.starts_with(MERGE_QUEUE_PREFIX) {
        return PushDecision::Ignore(format!(
            "{branch} is a merge queue branch: GitHub tests it before merging, and the \
             workspaces run when it is merged"
        ));
    }
    if push.deleted || push.after == ZERO_SHA {
        return PushDecision::Ignore(format!("branch {branch} was deleted"));
    }
    let tracking: Vec<&Candidate<'_>> = workspaces
        .iter()
        .filter(|w| w.branch.unwrap_or(push.default_branch) == branch)
        .collect();
    if tracking.is_empty() {
        return PushDecision::Ignore(format!("no workspace tracks branch {branch}"));
    }
    let files = match changed_files {
        ChangedFiles::Payload(_) if untrusted(push) => {
            return PushDecision::NeedCompare(comparisons(push));
        }
        ChangedFiles::Payload(files) | ChangedFiles::Compared(files) => Some(files),
        ChangedFiles::TooMany | ChangedFiles::Unknown => None,
    };
    let workspace_ids: Vec<WorkspaceId> = tracking
        .iter()
        .filter(|w| files.is_none_or(|files| w.triggers.matches_any(files.iter().copied())))
        .map(|w| w.id)
        .collect();
    if workspace_ids.is_empty() {
        return PushDecision::Ignore(format!(
            "no workspace on branch {branch} is triggered by the changed files"
        ));
    }
    PushDecision::Run {
        commit: CommitSha::from(push.after),
        workspace_ids,
    }
}

/// What to compare to learn which files differ between the branch before and after the push.
fn comparisons(push: &Push<'_>) -> Vec<Comparison> {
    let compare = |base: &str, head: &str| Comparison {
        base: base.to_string(),
        head: head.to_string(),
    };
    if push.created || push.before == ZERO_SHA {
        return vec![compare(push.default_branch, push.after)];
    }
    if push.forced {
        // A forced push may take commits away (rolling the branch back): the files they had
        // changed differ between the old and the new tip too, and `before...after` alone does
        // not list them (it is empty when the new tip is an ancestor of the old one). Both
        // directions together list every file that differs, and at worst a few more.
        return vec![
            compare(push.before, push.after),
            compare(push.after, push.before),
        ];
    }
    vec![compare(push.before, push.after)]
}

/// A new branch, a forced push or a cut commit list: the payload does not say what changed.
pub fn untrusted(push: &Push<'_>) -> bool {
    push.created || push.forced || push.commit_count > MAX_TRUSTED_COMMITS
}

#[cfg(test)]
mod tests;
