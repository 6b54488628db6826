//! What an outbox row asks to tell GitHub: a typed [`Message`], kept as its kind (the row's
//! `kind` column) and its fields (the `payload` column, JSON), with the key that lets one
//! pending row cover every change to the same thing derived from it.

use serde::{Deserialize, Serialize};

use crate::core::CommitSha;
use crate::core::github_terms::{CheckState, CommitState};
use crate::core::{InstallationId, PrNumber, RunId};
use crate::store::{Conn, now_ms, on_conn};

/// What a row is to the people waiting on GitHub; rows are sent lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    /// A result someone waits for: a run's final (or waiting for confirmation) state, a
    /// fork's approval check, a reaction or reply to a command.
    Result = 0,
    /// An in-between state (queued, planning, applying), the PR comment and the aggregate
    /// status: held a moment before sending, since what follows at once replaces it.
    Progress = 1,
    /// A workspace the change does not touch ("No changes in this workspace").
    Untouched = 2,
}

/// Something to tell GitHub. Run statuses, run checks, the aggregate and the PR comment name
/// what they show and are computed when sent, so that a burst of changes costs one request;
/// the others carry what they say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "payload", rename_all = "snake_case")]
pub enum Message {
    /// The commit status of a run.
    RunStatus { run_id: RunId },
    /// The check run of a run.
    RunCheck { run_id: RunId },
    /// A run's policy check: its check run `gantry/<workspace>/policy` (or status).
    PolicyCheck { run_id: RunId },
    /// A status not tied to a run.
    RawStatus(RawStatus),
    /// A check run not tied to a run (a fork's approval).
    RawCheck(RawCheck),
    /// The `gantry` status summing up a commit's workspaces, from what the others show.
    AggregateStatus(AggregateTarget),
    /// The pull request's one Gantry comment.
    PrComment { repo: String, pr_number: PrNumber },
    /// A reaction on a comment.
    Reaction(Reaction),
    /// A reply comment on a pull request.
    Reply(Reply),
    /// A notification to a workspace's notification configuration (not GitHub).
    Notification(crate::store::Notice),
    /// A workspace's drift issue: opened, updated or closed to match its latest assessment.
    DriftIssue {
        workspace_id: crate::core::WorkspaceId,
    },
}

impl Message {
    /// The row's `kind`: the variant's name.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::RunStatus { .. } => "run_status",
            Message::RunCheck { .. } => "run_check",
            Message::PolicyCheck { .. } => "policy_check",
            Message::RawStatus(_) => "raw_status",
            Message::RawCheck(_) => "raw_check",
            Message::AggregateStatus(_) => "aggregate_status",
            Message::PrComment { .. } => "pr_comment",
            Message::Reaction(_) => "reaction",
            Message::Reply(_) => "reply",
            Message::Notification(_) => "notification",
            Message::DriftIssue { .. } => "drift_issue",
        }
    }

    /// What a pending row covers: one row per (kind, key).
    pub fn key(&self) -> String {
        match self {
            Message::RunStatus { run_id }
            | Message::RunCheck { run_id }
            | Message::PolicyCheck { run_id } => run_id.to_string(),
            Message::RawStatus(s) => format!("{}@{}/{}", s.repo, s.sha, s.context),
            Message::RawCheck(c) => format!("{}@{}/{}", c.repo, c.sha, c.name),
            Message::AggregateStatus(t) => format!("{}@{}", t.repo, t.sha),
            Message::PrComment { repo, pr_number } => format!("{repo}#{pr_number}"),
            Message::Reaction(r) => format!("{}/{}/{}", r.repo, r.comment_id, r.content),
            Message::Reply(r) => format!("{}#{}/{}", r.repo, r.pr_number, r.unique),
            // The configuration first: notifications to one go in order (see
            // `Store::earlier_notification_pending`).
            Message::DriftIssue { workspace_id } => workspace_id.to_string(),
            Message::Notification(n) => {
                format!(
                    "{}/{}/{}/{}",
                    n.configuration_id, n.run_id, n.trigger, n.at_ms
                )
            }
        }
    }

    /// The row's `payload`: the variant's fields.
    fn payload(&self) -> String {
        let mut tagged = serde_json::to_value(self).unwrap_or_default();
        tagged
            .get_mut("payload")
            .map(serde_json::Value::take)
            .unwrap_or_default()
            .to_string()
    }

    /// The message a row holds.
    pub(super) fn from_row(
        kind: &str,
        key: &str,
        payload: &str,
    ) -> Result<Self, serde_json::Error> {
        let payload: serde_json::Value = serde_json::from_str(payload)?;
        if let Some(legacy) = Self::legacy(kind, key, &payload) {
            return Ok(legacy);
        }
        serde_json::from_value(serde_json::json!({ "kind": kind, "payload": payload }))
    }

    /// A row that a Gantry from before typed messages queued (a replica not upgraded yet, on a
    /// database the migration already rewrote): its run or pull request is only in its key.
    fn legacy(kind: &str, key: &str, payload: &serde_json::Value) -> Option<Self> {
        if payload.as_object().is_none_or(|fields| !fields.is_empty()) {
            return None;
        }
        match kind {
            "run_status" => Some(Message::RunStatus {
                run_id: key.parse().ok()?,
            }),
            "run_check" => Some(Message::RunCheck {
                run_id: key.parse().ok()?,
            }),
            "pr_comment" => {
                let (repo, number) = key.rsplit_once('#')?;
                Some(Message::PrComment {
                    repo: repo.to_string(),
                    pr_number: number.parse().ok()?,
                })
            }
            _ => None,
        }
    }
}

/// A commit status as GitHub takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawStatus {
    pub installation_id: InstallationId,
    pub repo: String,
    pub sha: CommitSha,
    pub context: String,
    pub state: CommitState,
    pub description: String,
    pub target_url: Option<String>,
}

/// A check run as GitHub takes it, for something that is not a run (a fork's approval).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawCheck {
    pub installation_id: InstallationId,
    pub repo: String,
    pub sha: CommitSha,
    pub name: String,
    #[serde(flatten)]
    pub state: CheckState,
    pub title: String,
    pub summary: String,
    pub details_url: String,
}

/// Which commit an aggregate status is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggregateTarget {
    pub installation_id: InstallationId,
    pub repo: String,
    pub sha: CommitSha,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reaction {
    pub installation_id: InstallationId,
    pub repo: String,
    pub comment_id: i64,
    pub content: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub installation_id: InstallationId,
    pub repo: String,
    pub pr_number: PrNumber,
    pub body: String,
    /// Tells replies apart (e.g. the delivery id and the line): each is its own row.
    #[serde(default)]
    pub unique: String,
}

/// Something to send, and how urgently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxItem {
    pub message: Message,
    pub priority: Priority,
}

impl OutboxItem {
    /// A result someone waits for.
    pub fn result(message: Message) -> Self {
        Self {
            message,
            priority: Priority::Result,
        }
    }

    /// An in-between state: held a moment, so that what follows at once replaces it.
    pub fn progress(message: Message) -> Self {
        Self {
            message,
            priority: Priority::Progress,
        }
    }

    /// The status of a workspace the change does not touch: sent after every result.
    pub fn untouched_status(status: RawStatus) -> Self {
        Self {
            message: Message::RawStatus(status),
            priority: Priority::Untouched,
        }
    }

    /// Held like an in-between state: a commit's workspaces changing together cost one post.
    pub fn aggregate(target: AggregateTarget) -> Self {
        Self::progress(Message::AggregateStatus(target))
    }

    /// Adds the row in the caller's transaction. A pending row of the same kind and key
    /// already covers it: it takes the newer payload (a raw status queued twice before it is
    /// sent posts the later text) and the more urgent of the two priorities.
    ///
    /// The update also locks the covering row until the caller commits: on PostgreSQL a claim
    /// waits for this transaction instead of sending what the change it covers is about to
    /// replace (a finished plan showing "pending" for good). SQLite lets one writer in at a
    /// time, which has the same effect.
    pub(crate) async fn enqueue(&self, conn: Conn<'_>) -> Result<(), sqlx::Error> {
        on_conn!(conn, c => {
            sqlx::query(
                "INSERT INTO outbox (kind, key, payload, created_at_ms, priority) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (kind, key) WHERE state = 'pending' \
                 DO UPDATE SET payload = excluded.payload, priority = CASE \
                 WHEN excluded.priority < outbox.priority THEN excluded.priority \
                 ELSE outbox.priority END",
            )
            .bind(self.message.kind())
            .bind(self.message.key())
            .bind(self.message.payload())
            .bind(now_ms())
            .bind(self.priority as i32)
            .execute(&mut *c)
            .await?;
        });
        Ok(())
    }
}

/// After a run changed: its commit status and check run, and the comment of its pull request
/// if it has one. Called inside the transaction that changed the run. The status and check
/// are a [`Priority::Result`] once the run has one, held as [`Priority::Progress`] before. A
/// run of an uploaded configuration has no commit on GitHub to report on.
pub(crate) async fn enqueue_run_feedback(conn: Conn<'_>, run_id: RunId) -> Result<(), sqlx::Error> {
    on_conn!(conn, c => {
        let run: Option<(String, i32, String, Option<PrNumber>)> = sqlx::query_as(
            "SELECT r.state, c.uploaded, c.repo, r.pr_number FROM runs r \
             JOIN configuration_versions c ON c.id = r.configuration_version_id WHERE r.id = $1",
        )
        .bind(run_id)
        .fetch_optional(&mut *c)
        .await?;
        let Some((state, uploaded, repo, pr_number)) = run else {
            return Ok(());
        };
        if uploaded != 0 {
            return Ok(());
        }
        let is_result = crate::core::run::RunState::parse(&state).is_some_and(|s| s.is_result());
        let item = if is_result { OutboxItem::result } else { OutboxItem::progress };
        let mut items = vec![
            item(Message::RunStatus { run_id }),
            item(Message::RunCheck { run_id }),
        ];
        // A run's policy check is shown when the check ends (checked, or waiting for an
        // override), when it is overridden (the run waits for confirmation) and when the run
        // ends (a speculative plan, a discard, an error: nobody acts on it any more).
        use crate::core::run::RunState;
        let state = RunState::parse(&state);
        let shows_policy = state.is_some_and(|s| {
            s.is_final()
                || matches!(
                    s,
                    RunState::PolicyChecked | RunState::PolicyOverride | RunState::Planned
                )
        });
        if shows_policy
            && sqlx::query_scalar::<_, i32>("SELECT 1 FROM policy_checks WHERE run_id = $1 LIMIT 1")
                .bind(run_id)
                .fetch_optional(&mut *c)
                .await?
                .is_some()
        {
            items.push(OutboxItem::result(Message::PolicyCheck { run_id }));
        }
        if let Some(pr_number) = pr_number {
            items.push(OutboxItem::progress(Message::PrComment { repo, pr_number }));
        }
        for item in items {
            item.enqueue((&mut *c).into()).await?;
        }
    });
    Ok(())
}

/// Workspaces a pull request's head does not touch, when they get no status of their own
/// (`[feedback] untouched = "aggregate"`): what they show is "no changes", known here but not
/// posted, and the commit's `gantry` status that sums them up is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UntouchedContexts {
    pub target: AggregateTarget,
    pub contexts: Vec<String>,
}

impl UntouchedContexts {
    pub(crate) async fn record(&self, conn: Conn<'_>) -> Result<(), sqlx::Error> {
        on_conn!(conn, c => {
            for context in &self.contexts {
                sqlx::query(
                    "INSERT INTO commit_statuses (repo, sha, context, run_id, state, \
                     description, target_url) VALUES ($1, $2, $3, NULL, $4, $5, NULL) \
                     ON CONFLICT (repo, sha, context) DO NOTHING",
                )
                .bind(&self.target.repo)
                .bind(&self.target.sha)
                .bind(context)
                .bind(CommitState::Success.as_str())
                .bind(UNTOUCHED_DESCRIPTION)
                .execute(&mut *c)
                .await?;
            }
            OutboxItem::aggregate(self.target.clone())
                .enqueue((&mut *c).into())
                .await?;
        });
        Ok(())
    }
}

/// What a workspace a change does not touch shows.
pub const UNTOUCHED_DESCRIPTION: &str = "No changes in this workspace";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_its_kind_and_its_fields_and_reads_back() {
        let comment = Message::PrComment {
            repo: "o/r".into(),
            pr_number: PrNumber(7),
        };
        assert_eq!(comment.kind(), "pr_comment");
        assert_eq!(comment.key(), "o/r#7");
        assert_eq!(comment.payload(), r#"{"pr_number":7,"repo":"o/r"}"#);
        assert_eq!(
            Message::from_row("pr_comment", "o/r#7", &comment.payload()).unwrap(),
            comment
        );
        let status = Message::RunStatus { run_id: RunId(12) };
        assert_eq!((status.kind(), status.key()), ("run_status", "12".into()));
        assert!(Message::from_row("run_status", "12", r#"{"run":12}"#).is_err());
        assert!(Message::from_row("no_such_kind", "1", r#"{"run_id":1}"#).is_err());
    }

    /// While replicas are upgraded one by one, one not upgraded yet still queues its run rows
    /// the old way (an empty payload); they are read from their key, not failed.
    #[test]
    fn a_row_queued_the_old_way_by_a_replica_not_upgraded_yet_is_read_from_its_key() {
        assert_eq!(
            Message::from_row("run_check", "12", "{}").unwrap(),
            Message::RunCheck { run_id: RunId(12) }
        );
        assert_eq!(
            Message::from_row("pr_comment", "o/r#7", "{}").unwrap(),
            Message::PrComment {
                repo: "o/r".into(),
                pr_number: PrNumber(7)
            }
        );
        assert!(Message::from_row("reply", "o/r#7/x", "{}").is_err());
    }

    #[test]
    fn a_raw_check_keeps_githubs_field_names() {
        let check = RawCheck {
            installation_id: InstallationId(1),
            repo: "o/r".into(),
            sha: "abc".into(),
            name: "gantry/prod".into(),
            state: CheckState::completed(
                crate::core::github_terms::CheckConclusion::ActionRequired,
            ),
            title: "t".into(),
            summary: "s".into(),
            details_url: "http://x".into(),
        };
        let json = serde_json::to_value(&check).unwrap();
        assert_eq!(json["status"], "completed");
        assert_eq!(json["conclusion"], "action_required");
    }

    /// Rows queued by a Gantry from before typed messages read back after the migration.
    #[tokio::test]
    async fn rows_queued_before_typed_messages_read_back_after_the_migration() {
        use sqlx::Connection;
        let mut db = sqlx::SqliteConnection::connect("sqlite::memory:")
            .await
            .unwrap();
        sqlx::raw_sql(
            "CREATE TABLE outbox (kind TEXT, key TEXT, payload TEXT, state TEXT); \
             INSERT INTO outbox VALUES ('run_status', '12', '{}', 'pending'), \
             ('run_check', '12', '{}', 'sending'), ('pr_comment', 'o/r#7', '{}', 'pending');",
        )
        .execute(&mut db)
        .await
        .unwrap();
        let migration = include_str!("../../../migrations/sqlite/0023_typed_outbox_payloads.sql");
        sqlx::raw_sql(sqlx::AssertSqlSafe(migration))
            .execute(&mut db)
            .await
            .unwrap();
        let rows: Vec<(String, String)> = sqlx::query_as("SELECT kind, payload FROM outbox")
            .fetch_all(&mut db)
            .await
            .unwrap();
        let messages: Vec<Message> = rows
            .iter()
            .map(|(kind, payload)| Message::from_row(kind, "", payload).unwrap())
            .collect();
        assert_eq!(
            messages,
            [
                Message::RunStatus { run_id: RunId(12) },
                Message::RunCheck { run_id: RunId(12) },
                Message::PrComment {
                    repo: "o/r".into(),
                    pr_number: PrNumber(7)
                }
            ]
        );
    }
}
