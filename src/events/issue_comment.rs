//! The `issue_comment` event: a comment on an issue or a pull request was created, edited or
//! deleted. Gantry reads `/gantry …` commands from comments on pull requests.

use serde::Deserialize;

use super::common::{Account, InstallationRef, Repository};
use crate::core::PrNumber;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct IssueCommentEvent {
    /// `created`, `edited` or `deleted`.
    pub action: String,
    pub issue: Issue,
    pub comment: Comment,
    /// What an `edited` action changed.
    pub changes: Option<CommentChanges>,
    pub repository: Repository,
    pub installation: Option<InstallationRef>,
    pub sender: Account,
}

/// The issue the comment is on. GitHub treats every pull request as an issue too.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Issue {
    pub number: PrNumber,
    pub html_url: String,
    /// Present only when the issue is a pull request.
    pub pull_request: Option<IssuePullRequest>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct IssuePullRequest {
    pub url: Option<String>,
    pub html_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Comment {
    pub id: u64,
    pub body: String,
    pub user: Account,
    pub html_url: String,
    /// How the author relates to the repository: `OWNER`, `MEMBER`, `COLLABORATOR`,
    /// `CONTRIBUTOR`, `FIRST_TIME_CONTRIBUTOR`, `FIRST_TIMER`, `MANNEQUIN` or `NONE`.
    pub author_association: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CommentChanges {
    pub body: Option<ChangedFrom>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ChangedFrom {
    pub from: String,
}

impl IssueCommentEvent {
    pub fn is_on_pull_request(&self) -> bool {
        self.issue.pull_request.is_some()
    }

    /// The comment's body before an edit, when this is an `edited` action that changed it.
    pub fn previous_body(&self) -> Option<&str> {
        let changed = self.changes.as_ref()?.body.as_ref()?;
        Some(&changed.from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn created() -> serde_json::Value {
        serde_json::from_str(include_str!(
            "../../fixtures/webhooks/issue_comment.created.json"
        ))
        .unwrap()
    }

    #[test]
    fn comment_on_an_issue_is_not_on_a_pull_request() {
        let event: IssueCommentEvent = serde_json::from_value(created()).unwrap();
        assert!(!event.is_on_pull_request());
    }

    #[test]
    fn comment_with_issue_pull_request_is_on_a_pull_request() {
        let mut payload = created();
        payload["issue"]["pull_request"] = json!({
            "url": "https://api.github.com/repos/Codertocat/Hello-World/pulls/1",
            "html_url": "https://github.com/Codertocat/Hello-World/pull/1",
        });
        let event: IssueCommentEvent = serde_json::from_value(payload).unwrap();
        assert!(event.is_on_pull_request());
    }

    #[test]
    fn edited_comment_keeps_the_previous_body() {
        let payload = serde_json::from_str(include_str!(
            "../../fixtures/webhooks/issue_comment.edited.json"
        ))
        .unwrap();
        let event: IssueCommentEvent = serde_json::from_value(payload).unwrap();
        assert_eq!(event.action, "edited");
        assert_eq!(
            event.previous_body(),
            Some("You are totally right! I'll get this fixed right away.")
        );
    }
}
