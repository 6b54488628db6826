//! Health assessments: which workspaces the scheduler weighs, an assessment started (at most one
//! running per workspace, by a unique index), kept alive and found canceled by one statement,
//! and finished in one transaction with what its news asks for (notifications, the drift issue
//! on GitHub), decided by `core::assessments`.

use sqlx::Row;

use super::{BeginWrite, Conn, Message, OutboxItem, Store, now_ms, on_conn, on_pool, on_read_pool};
use super::{Notice, storable};
use crate::core::assessments::{Findings, IssueChange, Outcome, Schedule, issue_change, triggers};
use crate::core::run::RunState;
use crate::core::{RunId, WorkspaceId};

/// One assessment, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    pub id: i64,
    pub workspace_id: WorkspaceId,
    /// The applied run whose configuration it planned.
    pub run_id: RunId,
    /// `running`, `finished`, `errored` or `canceled`.
    pub status: String,
    pub findings: Findings,
    /// Why it errored or was canceled.
    pub error: String,
    pub log: String,
    pub created_at_ms: i64,
    pub finished_at_ms: Option<i64>,
}

impl Assessment {
    /// What it found, once it ended with a result or an error.
    pub fn outcome(&self) -> Option<Outcome> {
        match self.status.as_str() {
            "finished" => Some(Outcome::Found(self.findings.clone())),
            "errored" => Some(Outcome::Errored(self.error.clone())),
            _ => None,
        }
    }

    pub fn is_drifted(&self) -> bool {
        self.status == "finished" && self.findings.is_drifted()
    }
}

/// Which running assessments a stop interrupted.
enum Interrupted<'a> {
    One(i64),
    /// A server's own (after its restart), and any nobody has heartbeated lately.
    Abandoned {
        owner: &'a str,
        stale_before_ms: i64,
    },
}

/// What an assessment's end changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    /// The notification triggers it fired.
    pub triggers: Vec<&'static str>,
    pub issue: IssueChange,
}

/// One assessment in full, its log included.
const SELECT: &str = "SELECT id, workspace_id, run_id, status, findings, error, log, \
                      created_at_ms, finished_at_ms FROM assessments";
/// Assessments for lists, badges and comparisons: without their logs (up to 512 KiB each).
const SELECT_LISTED: &str = "SELECT id, workspace_id, run_id, status, findings, error, \
                             '' AS log, created_at_ms, finished_at_ms FROM assessments";

/// The newest assessment of workspace `$1` below id `$2` that ended in one of `statuses`.
fn ended_before(statuses: &str) -> String {
    format!(
        "{SELECT_LISTED} WHERE workspace_id = $1 AND id < $2 AND status IN ({statuses}) \
         ORDER BY id DESC LIMIT 1"
    )
}

/// With a result or an error (not running, not canceled).
const ENDED: &str = "'finished', 'errored'";

fn from_row<R>(row: &R) -> anyhow::Result<Assessment>
where
    R: Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<i64>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let findings: String = row.try_get("findings")?;
    Ok(Assessment {
        id: row.try_get("id")?,
        workspace_id: WorkspaceId(row.try_get("workspace_id")?),
        run_id: RunId(row.try_get("run_id")?),
        status: row.try_get("status")?,
        findings: serde_json::from_str(&findings).unwrap_or_default(),
        error: row.try_get("error")?,
        log: row.try_get("log")?,
        created_at_ms: row.try_get("created_at_ms")?,
        finished_at_ms: row.try_get("finished_at_ms")?,
    })
}

impl Store {
    /// What the scheduler weighs, for every active workspace with assessments on that Gantry
    /// runs (remote execution), or for `only` that one.
    pub async fn assessment_schedules(
        &self,
        only: Option<WorkspaceId>,
    ) -> anyhow::Result<Vec<Schedule>> {
        type ScheduleRow = (
            WorkspaceId,
            i64,
            Option<String>,
            Option<i64>,
            Option<i64>,
            i64,
            Option<i64>,
        );
        let rows: Vec<ScheduleRow> = on_read_pool!(self, pool => {
            sqlx::query_as(
                "SELECT w.id, w.assessment_interval_secs, \
                 (SELECT r.state FROM runs r WHERE r.workspace_id = w.id AND r.speculative = 0 \
                  ORDER BY r.id DESC LIMIT 1), \
                 (SELECT MAX(r.updated_at_ms) FROM runs r WHERE r.workspace_id = w.id \
                  AND r.speculative = 0 AND r.state = 'applied'), \
                 (SELECT MAX(a.finished_at_ms) FROM assessments a WHERE a.workspace_id = w.id \
                  AND a.status IN ('finished', 'errored')), \
                 (SELECT COUNT(*) FROM assessments a WHERE a.workspace_id = w.id \
                  AND a.status = 'running'), w.assessment_requested_at_ms \
                 FROM workspaces w WHERE w.assessments = 1 AND w.archived = 0 \
                 AND w.execution_mode = 'remote' AND ($1 IS NULL OR w.id = $1) ORDER BY w.id",
            )
            .bind(only)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(
                |(workspace, interval, latest, applied, assessed, running, asked)| Schedule {
                    workspace,
                    interval: std::time::Duration::from_secs(interval.max(0) as u64),
                    latest_run: latest.as_deref().and_then(RunState::parse),
                    last_applied_at_ms: applied,
                    last_assessed_at_ms: assessed,
                    assessing: running > 0,
                    requested_at_ms: asked,
                },
            )
            .collect())
    }

    /// Someone asks for an assessment of `workspace` now.
    pub async fn request_assessment(&self, workspace: WorkspaceId) -> anyhow::Result<()> {
        on_pool!(self, pool => {
            sqlx::query(
                "UPDATE workspaces SET assessment_requested_at_ms = \
                 COALESCE(assessment_requested_at_ms, $1) WHERE id = $2",
            )
            .bind(now_ms())
            .bind(workspace)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// How many assessments run now, on every server.
    pub async fn assessments_running(&self) -> anyhow::Result<usize> {
        let (count,): (i64,) = on_read_pool!(self, pool => {
            sqlx::query_as("SELECT COUNT(*) FROM assessments WHERE status = 'running'")
                .fetch_one(pool)
                .await?
        });
        Ok(count as usize)
    }

    /// Starts an assessment of `workspace`'s latest run, unless that run did not end applied
    /// (or with nothing to apply), one is running, or `cap` run on every server already:
    /// (assessment id, the run whose configuration it plans).
    pub async fn start_assessment(
        &self,
        workspace: WorkspaceId,
        owner: &str,
        cap: usize,
    ) -> anyhow::Result<Option<(i64, RunId)>> {
        let now = now_ms();
        let shared = self.is_shared();
        let started: Option<(i64, i64)> = on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            if shared {
                // Replicas start assessments one at a time, so the cap holds across them
                // (SQLite has one writer anyway).
                sqlx::query("SELECT pg_advisory_xact_lock(724011)")
                    .execute(&mut *tx)
                    .await?;
            }
            let (running,): (i64,) =
                sqlx::query_as("SELECT COUNT(*) FROM assessments WHERE status = 'running'")
                    .fetch_one(&mut *tx)
                    .await?;
            if running as usize >= cap {
                return Ok(None);
            }
            // Decided again here, in the transaction: a run may have started since the
            // scheduler looked.
            let latest: Option<(i64, String)> = sqlx::query_as(
                "SELECT id, state FROM runs WHERE workspace_id = $1 AND speculative = 0 \
                 ORDER BY id DESC LIMIT 1",
            )
            .bind(workspace)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((run_id, _)) =
                latest.filter(|(_, state)| state == "applied" || state == "planned_and_finished")
            else {
                return Ok(None);
            };
            // The unique index on running assessments keeps a second one out.
            let inserted: Option<(i64,)> = sqlx::query_as(
                "INSERT INTO assessments (workspace_id, run_id, owner, heartbeat_at_ms, \
                 created_at_ms) VALUES ($1, $2, $3, $4, $4) ON CONFLICT DO NOTHING RETURNING id",
            )
            .bind(workspace)
            .bind(run_id)
            .bind(owner)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            if inserted.is_some() {
                sqlx::query(
                    "UPDATE workspaces SET assessment_requested_at_ms = NULL WHERE id = $1",
                )
                .bind(workspace)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            inserted.map(|(id,)| (id, run_id))
        });
        Ok(started.map(|(id, run)| (id, RunId(run))))
    }

    /// Says a running assessment is still watched; false once it is not running any more (a
    /// run of its workspace started and canceled it).
    pub async fn assessment_alive(&self, id: i64) -> anyhow::Result<bool> {
        let changed = on_pool!(self, pool => {
            // A run that started on another server meanwhile cancels it here.
            sqlx::query(
                "UPDATE assessments SET status = 'canceled', finished_at_ms = $1, \
                 error = 'canceled: a run of the workspace started' \
                 WHERE id = $2 AND status = 'running' AND EXISTS (SELECT 1 FROM runs r \
                 WHERE r.workspace_id = assessments.workspace_id AND r.speculative = 0 \
                 AND r.state IN ('fetching', 'planning', 'policy_checking', 'policy_checked', \
                 'policy_override', 'planned', 'confirmed', 'applying'))",
            )
            .bind(now_ms())
            .bind(id)
            .execute(pool)
            .await?;
            sqlx::query(
                "UPDATE assessments SET heartbeat_at_ms = $1 WHERE id = $2 AND status = 'running'",
            )
            .bind(now_ms())
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(changed > 0)
    }

    /// Cancels the running assessments no server watches any more: `owner`'s (a restart of
    /// it) and any whose heartbeat stopped before `stale_before_ms`. See
    /// [`Self::interrupt_assessment`].
    pub async fn cancel_abandoned_assessments(
        &self,
        owner: &str,
        stale_before_ms: i64,
    ) -> anyhow::Result<Vec<i64>> {
        self.interrupt_assessments(Interrupted::Abandoned {
            owner,
            stale_before_ms,
        })
        .await
    }

    /// Gantry stopped while assessment `id` ran: it does not count as an assessment, and its
    /// workspace is asked for one again, so that it runs again as soon as it may.
    pub async fn interrupt_assessment(&self, id: i64) -> anyhow::Result<Vec<i64>> {
        self.interrupt_assessments(Interrupted::One(id)).await
    }

    async fn interrupt_assessments(&self, which: Interrupted<'_>) -> anyhow::Result<Vec<i64>> {
        const SET: &str = "UPDATE assessments SET status = 'canceled', finished_at_ms = $1, \
                           error = 'Gantry stopped while it ran; it runs again' \
                           WHERE status = 'running' AND ";
        let now = now_ms();
        let rows: Vec<(i64, i64)> = on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let rows: Vec<(i64, i64)> = match which {
                Interrupted::One(id) => {
                    sqlx::query_as(sqlx::AssertSqlSafe(format!(
                        "{SET} id = $2 RETURNING id, workspace_id"
                    )))
                    .bind(now)
                    .bind(id)
                    .fetch_all(&mut *tx)
                    .await?
                }
                Interrupted::Abandoned { owner, stale_before_ms } => {
                    sqlx::query_as(sqlx::AssertSqlSafe(format!(
                        "{SET} (owner = $2 OR heartbeat_at_ms < $3) RETURNING id, workspace_id"
                    )))
                    .bind(now)
                    .bind(owner)
                    .bind(stale_before_ms)
                    .fetch_all(&mut *tx)
                    .await?
                }
            };
            for (_, workspace) in &rows {
                sqlx::query(
                    "UPDATE workspaces SET assessment_requested_at_ms = \
                     COALESCE(assessment_requested_at_ms, $1) WHERE id = $2",
                )
                .bind(now)
                .bind(workspace)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            rows
        });
        Ok(rows.into_iter().map(|(id, _)| id).collect())
    }

    /// Ends a running assessment with its outcome and, in the same transaction, queues what
    /// its news asks for: notifications for the triggers it fired and, for a workspace of a
    /// repository, the drift issue's update. None when it was no longer running (canceled).
    pub async fn finish_assessment(
        &self,
        id: i64,
        outcome: &Outcome,
        log: &str,
    ) -> anyhow::Result<Option<Ended>> {
        let (status, findings, error) = match outcome {
            Outcome::Found(f) => ("finished", f.clone(), String::new()),
            Outcome::Errored(reason) => ("errored", Findings::default(), reason.clone()),
        };
        let findings_json = serde_json::to_string(&findings)?;
        let now = now_ms();
        let ended = on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let row: Option<(i64, i64)> = sqlx::query_as(
                "UPDATE assessments SET status = $1, findings = $2, error = $3, log = $4, \
                 finished_at_ms = $5 WHERE id = $6 AND status = 'running' \
                 RETURNING workspace_id, run_id",
            )
            .bind(status)
            .bind(&findings_json)
            .bind(storable(&error).as_ref())
            .bind(storable(log).as_ref())
            .bind(now)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((workspace_id, run_id)) = row else {
                return Ok(None);
            };
            let prior = sqlx::query(sqlx::AssertSqlSafe(ended_before(ENDED)))
                .bind(workspace_id)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
                .map(|row| from_row(&row))
                .transpose()?
                .and_then(|a| a.outcome());
            let prior_found = sqlx::query(sqlx::AssertSqlSafe(ended_before("'finished'")))
                .bind(workspace_id)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
                .map(|row| from_row(&row))
                .transpose()?
                .map(|a| a.findings);
            let ended = Ended {
                triggers: triggers(prior.as_ref(), prior_found.as_ref(), outcome),
                issue: issue_change(prior_found.as_ref(), outcome),
            };
            enqueue_news((&mut *tx).into(), id, WorkspaceId(workspace_id), RunId(run_id), &ended)
                .await?;
            tx.commit().await?;
            Some(ended)
        });
        self.notify_outbox();
        Ok(ended)
    }

    pub async fn assessment(&self, id: i64) -> anyhow::Result<Option<Assessment>> {
        let row = on_read_pool!(self, pool => {
            sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE id = $1")))
                .bind(id)
                .fetch_optional(pool)
                .await?
                .map(|row| from_row(&row))
                .transpose()?
        });
        Ok(row)
    }

    /// A workspace's assessments, newest first.
    pub async fn assessments(
        &self,
        workspace: WorkspaceId,
        limit: i64,
    ) -> anyhow::Result<Vec<Assessment>> {
        let rows = on_read_pool!(self, pool => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "{SELECT_LISTED} WHERE workspace_id = $1 ORDER BY id DESC LIMIT $2"
            )))
            .bind(workspace)
            .bind(limit)
            .fetch_all(pool)
            .await?
            .iter()
            .map(from_row)
            .collect::<anyhow::Result<Vec<_>>>()?
        });
        Ok(rows)
    }

    /// `workspace`'s newest assessment below id `before` that ended with a result or an error
    /// (`i64::MAX`: its latest), without its log.
    pub async fn ended_assessment_before(
        &self,
        workspace: WorkspaceId,
        before: i64,
    ) -> anyhow::Result<Option<Assessment>> {
        let row = on_read_pool!(self, pool => {
            sqlx::query(sqlx::AssertSqlSafe(ended_before(ENDED)))
                .bind(workspace)
                .bind(before)
                .fetch_optional(pool)
                .await?
                .map(|row| from_row(&row))
                .transpose()?
        });
        Ok(row)
    }

    /// Each workspace's latest ended assessment (finished or errored), without its log, for
    /// badges and `/metrics`.
    pub async fn latest_assessments(&self) -> anyhow::Result<Vec<Assessment>> {
        let rows = on_read_pool!(self, pool => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "{SELECT_LISTED} WHERE id IN (SELECT MAX(a.id) FROM assessments a \
                 JOIN workspaces w ON w.id = a.workspace_id \
                 WHERE a.status IN ('finished', 'errored') AND w.archived = 0 \
                 AND w.assessments = 1 GROUP BY a.workspace_id) ORDER BY workspace_id"
            )))
            .fetch_all(pool)
            .await?
            .iter()
            .map(from_row)
            .collect::<anyhow::Result<Vec<_>>>()?
        });
        Ok(rows)
    }

    /// The number of `workspace`'s open drift issue on GitHub, if one is open.
    pub async fn drift_issue(&self, workspace: WorkspaceId) -> anyhow::Result<Option<i64>> {
        let row: Option<(Option<i64>,)> = on_read_pool!(self, pool => {
            sqlx::query_as("SELECT drift_issue FROM workspaces WHERE id = $1")
                .bind(workspace)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.and_then(|(n,)| n))
    }

    /// Records the open drift issue's number (None: closed).
    pub async fn set_drift_issue(
        &self,
        workspace: WorkspaceId,
        number: Option<i64>,
    ) -> anyhow::Result<()> {
        on_pool!(self, pool => {
            sqlx::query("UPDATE workspaces SET drift_issue = $1 WHERE id = $2")
                .bind(number)
                .bind(workspace)
                .execute(pool)
                .await?;
        });
        Ok(())
    }
}

/// A queued run of a workspace starts (in the caller's transaction, beside its move): the
/// workspace's running assessment is canceled, and one asked for is forgotten (the run changes
/// what it would find). The runner stops its Terraform; another server's finds out at its next
/// heartbeat.
pub(crate) async fn cancel_for_started_run(
    conn: Conn<'_>,
    run_id: RunId,
) -> Result<(), sqlx::Error> {
    on_conn!(conn, c => {
        sqlx::query(
            "UPDATE assessments SET status = 'canceled', finished_at_ms = $1, \
             error = 'canceled: a run of the workspace started' WHERE status = 'running' \
             AND workspace_id = (SELECT workspace_id FROM runs WHERE id = $2)",
        )
        .bind(now_ms())
        .bind(run_id)
        .execute(&mut *c)
        .await?;
        sqlx::query(
            "UPDATE workspaces SET assessment_requested_at_ms = NULL \
             WHERE id = (SELECT workspace_id FROM runs WHERE id = $1) \
             AND assessment_requested_at_ms IS NOT NULL",
        )
        .bind(run_id)
        .execute(&mut *c)
        .await?;
    });
    Ok(())
}

/// Queues what an assessment's end asks for, in its transaction.
async fn enqueue_news(
    mut conn: Conn<'_>,
    id: i64,
    workspace: WorkspaceId,
    run_id: RunId,
    ended: &Ended,
) -> Result<(), sqlx::Error> {
    let at_ms = now_ms();
    if !ended.triggers.is_empty() {
        let configurations: Vec<(i64, String)> = on_conn!(conn.reborrow(), c => {
            sqlx::query_as(
                "SELECT id, triggers FROM notification_configurations WHERE workspace_id = $1 \
                 AND enabled = 1 AND status = 'verified' ORDER BY id",
            )
            .bind(workspace)
            .fetch_all(&mut *c)
            .await?
        });
        for (configuration_id, subscribed) in configurations {
            let subscribed: Vec<String> = serde_json::from_str(&subscribed).unwrap_or_default();
            for trigger in &ended.triggers {
                if !subscribed.iter().any(|t| t == trigger) {
                    continue;
                }
                let notice = Notice {
                    configuration_id,
                    run_id,
                    assessment_id: Some(id),
                    trigger: trigger.to_string(),
                    message: crate::core::assessments::trigger_message(trigger).to_string(),
                    state: "assessed".into(),
                    at_ms,
                };
                OutboxItem::result(Message::Notification(notice))
                    .enqueue(conn.reborrow())
                    .await?;
            }
        }
    }
    if ended.issue != IssueChange::Keep {
        let repo: Option<(String,)> = on_conn!(conn.reborrow(), c => {
            sqlx::query_as("SELECT repo FROM workspaces WHERE id = $1")
                .bind(workspace)
                .fetch_optional(&mut *c)
                .await?
        });
        if repo.is_some_and(|(repo,)| !repo.is_empty()) {
            OutboxItem::result(Message::DriftIssue {
                workspace_id: workspace,
            })
            .enqueue(conn)
            .await?;
        }
    }
    Ok(())
}
