//! GitHub's words for what it shows: a commit status's state, a check run's status and
//! conclusion. Decisions use these types; they become GitHub's strings only at the edge
//! (serde, in `github/feedback.rs` and in what the store keeps).

use serde::{Deserialize, Serialize};

/// A commit status's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommitState {
    Pending,
    Success,
    Failure,
    Error,
}

impl CommitState {
    pub const ALL: [CommitState; 4] = [
        CommitState::Pending,
        CommitState::Success,
        CommitState::Failure,
        CommitState::Error,
    ];

    /// GitHub's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            CommitState::Pending => "pending",
            CommitState::Success => "success",
            CommitState::Failure => "failure",
            CommitState::Error => "error",
        }
    }

    pub fn parse(word: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == word)
    }
}

impl std::fmt::Display for CommitState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A check run's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Queued,
    InProgress,
    Completed,
}

/// How a completed check run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckConclusion {
    Success,
    Failure,
    Neutral,
    Cancelled,
    ActionRequired,
}

/// A check run's status with its conclusion: only a completed check has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckState {
    pub status: CheckStatus,
    pub conclusion: Option<CheckConclusion>,
}

impl CheckState {
    pub const QUEUED: CheckState = CheckState {
        status: CheckStatus::Queued,
        conclusion: None,
    };
    pub const IN_PROGRESS: CheckState = CheckState {
        status: CheckStatus::InProgress,
        conclusion: None,
    };

    pub fn completed(conclusion: CheckConclusion) -> Self {
        CheckState {
            status: CheckStatus::Completed,
            conclusion: Some(conclusion),
        }
    }

    /// The check run that shows what a commit status of `state` shows.
    pub fn of_commit_state(state: CommitState) -> Self {
        match state {
            CommitState::Pending => Self::IN_PROGRESS,
            CommitState::Success => Self::completed(CheckConclusion::Success),
            CommitState::Failure => Self::completed(CheckConclusion::Failure),
            CommitState::Error => Self::completed(CheckConclusion::Cancelled),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_githubs() {
        for state in CommitState::ALL {
            let json = serde_json::to_value(state).unwrap();
            assert_eq!(json, state.as_str());
            assert_eq!(CommitState::parse(state.as_str()), Some(state));
        }
        assert_eq!(
            serde_json::to_value(CheckStatus::InProgress).unwrap(),
            "in_progress"
        );
        assert_eq!(
            serde_json::to_value(CheckConclusion::ActionRequired).unwrap(),
            "action_required"
        );
    }

    #[test]
    fn a_pending_commit_is_a_check_in_progress_and_an_error_a_cancelled_one() {
        assert_eq!(
            CheckState::of_commit_state(CommitState::Pending),
            CheckState::IN_PROGRESS
        );
        assert_eq!(
            CheckState::of_commit_state(CommitState::Error).conclusion,
            Some(CheckConclusion::Cancelled)
        );
    }
}
