//! The `push` event: a branch or tag moved. Gantry uses it to start runs for the workspaces whose
//! files changed on a tracked branch.

use std::collections::BTreeSet;

use serde::Deserialize;

use super::common::{Account, InstallationRef, Repository};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PushEvent {
    /// The full ref that moved, e.g. `refs/heads/main` or `refs/tags/v1`.
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// The sha the ref pointed to before; all zeros when the ref was created.
    pub before: String,
    /// The sha the ref points to now; all zeros when the ref was deleted.
    pub after: String,
    pub created: bool,
    pub deleted: bool,
    pub forced: bool,
    pub base_ref: Option<String>,
    /// A link to the comparison of `before` and `after` on github.com.
    pub compare: String,
    /// The pushed commits, oldest first. GitHub caps this list, so a very large push may not
    /// list every commit.
    #[serde(default)]
    pub commits: Vec<Commit>,
    /// The commit `after` points to; `None` when the ref was deleted.
    pub head_commit: Option<Commit>,
    pub pusher: Option<Pusher>,
    pub repository: Repository,
    pub installation: Option<InstallationRef>,
    pub sender: Account,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Commit {
    /// The commit sha.
    pub id: String,
    pub message: String,
    #[serde(default)]
    pub added: Vec<String>,
    #[serde(default)]
    pub removed: Vec<String>,
    #[serde(default)]
    pub modified: Vec<String>,
    /// False when the commit was already on another branch before this push.
    pub distinct: Option<bool>,
}

/// Who pushed: a git identity (name and email), not necessarily a GitHub login.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Pusher {
    pub name: String,
}

impl PushEvent {
    /// The branch name when a branch moved (`refs/heads/main` → `main`); `None` for tags and
    /// other refs.
    pub fn branch(&self) -> Option<&str> {
        self.git_ref.strip_prefix("refs/heads/")
    }

    /// The tag name when a tag moved (`refs/tags/v1` → `v1`).
    pub fn tag(&self) -> Option<&str> {
        self.git_ref.strip_prefix("refs/tags/")
    }

    /// Every path added, removed or modified by the pushed commits, once each, sorted.
    ///
    /// Only `commits` count: when a new branch is pushed at an existing commit, `commits` is
    /// empty and `head_commit` describes that commit's own diff, not what the push changed.
    pub fn changed_files(&self) -> Vec<&str> {
        let paths: BTreeSet<&str> = self
            .commits
            .iter()
            .flat_map(|commit| {
                commit
                    .added
                    .iter()
                    .chain(&commit.removed)
                    .chain(&commit.modified)
            })
            .map(String::as_str)
            .collect();
        paths.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn push(git_ref: &str, commits: serde_json::Value) -> PushEvent {
        let mut payload: serde_json::Value =
            serde_json::from_str(include_str!("../../fixtures/webhooks/push.5.json")).unwrap();
        payload["ref"] = json!(git_ref);
        payload["commits"] = commits;
        serde_json::from_value(payload).unwrap()
    }

    #[test]
    fn branch_strips_refs_heads() {
        assert_eq!(
            push("refs/heads/feature/x", json!([])).branch(),
            Some("feature/x")
        );
    }

    #[test]
    fn branch_is_none_for_a_tag() {
        let event = push("refs/tags/v1.2.0", json!([]));
        assert_eq!(event.branch(), None);
        assert_eq!(event.tag(), Some("v1.2.0"));
    }

    #[test]
    fn changed_files_is_the_sorted_union_over_commits() {
        let event = push(
            "refs/heads/main",
            json!([
                { "id": "a", "message": "one", "added": ["infra/b.tf"], "removed": [], "modified": ["README.md"] },
                { "id": "b", "message": "two", "added": [], "removed": ["infra/a.tf"], "modified": ["infra/b.tf"] },
            ]),
        );
        assert_eq!(
            event.changed_files(),
            ["README.md", "infra/a.tf", "infra/b.tf"]
        );
    }

    #[test]
    fn commits_without_file_lists_parse_as_empty() {
        let event = push("refs/heads/main", json!([{ "id": "a", "message": "m" }]));
        assert!(event.changed_files().is_empty());
        assert_eq!(event.commits[0].distinct, None);
    }
}
