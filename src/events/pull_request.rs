//! The `pull_request` event: a pull request was opened, updated or closed. Gantry uses it to start
//! speculative plans for the pull request's head commit.

use serde::Deserialize;

use super::common::{Account, InstallationRef, Repository};
use crate::core::CommitSha;
use crate::core::PrNumber;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PullRequestEvent {
    /// `opened`, `synchronize` (new commits on the head branch), `reopened`, `edited`, `closed`,
    /// `ready_for_review`, `converted_to_draft`, `labeled`, …
    pub action: String,
    pub number: PrNumber,
    pub pull_request: PullRequest,
    pub repository: Repository,
    pub installation: Option<InstallationRef>,
    pub sender: Account,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PullRequest {
    pub number: PrNumber,
    /// `open` or `closed`.
    pub state: String,
    #[serde(default)]
    pub draft: bool,
    pub title: String,
    pub html_url: String,
    pub head: HeadRef,
    pub base: BaseRef,
    pub user: Account,
    pub merged: Option<bool>,
}

/// The branch the changes come from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct HeadRef {
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub sha: CommitSha,
    /// `None` when the head repository (a fork) has been deleted.
    pub repo: Option<HeadRepository>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct HeadRepository {
    pub full_name: String,
    pub fork: bool,
}

/// The branch the changes would merge into.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BaseRef {
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub sha: CommitSha,
    pub repo: BaseRepository,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BaseRepository {
    pub full_name: String,
}

impl PullRequest {
    /// True when the head branch lives in another repository (or in one that no longer exists):
    /// its code must not run with the base repository's credentials.
    pub fn is_from_fork(&self) -> bool {
        match &self.head.repo {
            Some(head) => head.full_name != self.base.repo.full_name,
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn opened() -> serde_json::Value {
        serde_json::from_str(include_str!(
            "../../fixtures/webhooks/pull_request.opened.json"
        ))
        .unwrap()
    }

    fn pull_request(payload: serde_json::Value) -> PullRequest {
        serde_json::from_value::<PullRequestEvent>(payload)
            .unwrap()
            .pull_request
    }

    #[test]
    fn same_repository_head_is_not_a_fork() {
        assert!(!pull_request(opened()).is_from_fork());
    }

    #[test]
    fn head_in_another_repository_is_a_fork() {
        let mut payload = opened();
        payload["pull_request"]["head"]["repo"]["full_name"] = json!("someone/Hello-World");
        assert!(pull_request(payload).is_from_fork());
    }

    #[test]
    fn deleted_head_repository_parses_and_counts_as_a_fork() {
        let mut payload = opened();
        payload["pull_request"]["head"]["repo"] = json!(null);
        let pr = pull_request(payload);
        assert_eq!(pr.head.repo, None);
        assert!(pr.is_from_fork());
    }

    #[test]
    fn missing_draft_means_not_a_draft() {
        let mut payload = opened();
        payload["pull_request"]
            .as_object_mut()
            .unwrap()
            .remove("draft");
        assert!(!pull_request(payload).draft);
    }
}
