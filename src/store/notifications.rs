//! Notification configurations (Terraform Cloud's): per workspace, from the configuration file
//! (synced with it) or the API, their tokens sealed like sensitive variables; whether each was
//! verified; the last answers to its deliveries; and, when a run changes, the notifications its
//! triggers ask for, queued in the outbox in the transaction of the change.

use std::collections::BTreeMap;

use sqlx::Row;

use super::{
    BeginWrite, Conn, Message, OutboxItem, Store, now_ms, on_conn, on_pool, on_read_pool, storable,
};
use crate::core::notifications::{Destination, NotificationSpec, run_trigger};
use crate::core::run::RunState;
use crate::core::{RunId, WorkspaceId};

/// How many delivery answers are kept per configuration.
const KEPT_DELIVERIES: i64 = 10;

/// A stored configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationConfiguration {
    pub id: i64,
    pub workspace_id: WorkspaceId,
    pub spec: NotificationSpec,
    /// `config` (the configuration file) or `api`.
    pub source: String,
    /// `unverified`, `verified` or `failed`.
    pub status: String,
    /// Why verification failed.
    pub status_detail: String,
    /// When its settings last changed: a verification counts only for the settings it sent to.
    pub updated_at_ms: i64,
}

impl NotificationConfiguration {
    /// Whether run notifications go to it: enabled and verified.
    pub fn sends(&self) -> bool {
        self.spec.enabled && self.status == "verified"
    }
}

/// One delivery's answer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeliveryResponse {
    pub trigger: String,
    pub run_id: Option<RunId>,
    /// The HTTP status; none when nothing answered.
    pub status: Option<i32>,
    pub success: bool,
    /// The start of the answer's body, or why there was none.
    pub detail: String,
    pub at_ms: i64,
}

/// A notification to send: what the trigger said of the run when it fired.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Notice {
    pub configuration_id: i64,
    /// The run; for an assessment, the applied run it planned.
    pub run_id: RunId,
    /// Set for an assessment's notification (payload version 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assessment_id: Option<i64>,
    pub trigger: String,
    pub message: String,
    /// The run's state when the trigger fired.
    pub state: String,
    pub at_ms: i64,
}

/// (trigger, run, status, success, detail, at_ms), as stored.
type DeliveryRow = (String, Option<RunId>, Option<i32>, i32, String, i64);

const SELECT: &str = "SELECT id, workspace_id, name, destination, url, token, triggers, enabled, \
                      source, status, status_detail, updated_at_ms FROM notification_configurations";

impl Store {
    fn configuration_from_row<R>(&self, row: &R) -> anyhow::Result<NotificationConfiguration>
    where
        R: Row,
        for<'a> &'a str: sqlx::ColumnIndex<R>,
        for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
        for<'a> i32: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
        for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    {
        let sealed: String = row.try_get("token")?;
        let token = if sealed.is_empty() {
            String::new()
        } else {
            self.cipher()?
                .open(&sealed)
                .map_err(|_| anyhow::anyhow!("a notification token cannot be opened"))?
        };
        let destination: String = row.try_get("destination")?;
        Ok(NotificationConfiguration {
            id: row.try_get("id")?,
            workspace_id: row.try_get("workspace_id")?,
            spec: NotificationSpec {
                name: row.try_get("name")?,
                destination: Destination::parse(&destination).map_err(anyhow::Error::msg)?,
                url: row.try_get("url")?,
                token,
                triggers: serde_json::from_str(&row.try_get::<String, _>("triggers")?)?,
                enabled: row.try_get::<i32, _>("enabled")? != 0,
            },
            source: row.try_get("source")?,
            status: row.try_get("status")?,
            status_detail: row.try_get("status_detail")?,
            updated_at_ms: row.try_get("updated_at_ms")?,
        })
    }

    fn sealed_token(&self, spec: &NotificationSpec) -> anyhow::Result<String> {
        Ok(if spec.token.is_empty() {
            String::new()
        } else {
            self.cipher()?.seal(&spec.token)
        })
    }

    /// A workspace's configurations, by name.
    pub async fn notification_configurations(
        &self,
        workspace_id: WorkspaceId,
    ) -> anyhow::Result<Vec<NotificationConfiguration>> {
        let configurations = on_read_pool!(self, pool => {
            sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE workspace_id = $1 ORDER BY name")))
                .bind(workspace_id)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|row| self.configuration_from_row(row))
                .collect::<anyhow::Result<Vec<_>>>()?
        });
        Ok(configurations)
    }

    /// One configuration.
    pub async fn notification_configuration(
        &self,
        id: i64,
    ) -> anyhow::Result<Option<NotificationConfiguration>> {
        let configuration = on_read_pool!(self, pool => {
            sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE id = $1")))
                .bind(id)
                .fetch_optional(pool)
                .await?
                .map(|row| self.configuration_from_row(&row))
                .transpose()?
        });
        Ok(configuration)
    }

    /// Configuration-file configurations that are enabled but not verified yet (new or
    /// changed): verified when Gantry starts or reloads.
    pub async fn notifications_to_verify(&self) -> anyhow::Result<Vec<NotificationConfiguration>> {
        let rows = on_read_pool!(self, pool => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "{SELECT} WHERE source = 'config' AND enabled = 1 AND status = 'unverified' \
                 ORDER BY id"
            )))
            .fetch_all(pool)
            .await?
            .iter()
            .map(|row| self.configuration_from_row(row))
            .collect::<anyhow::Result<Vec<_>>>()?
        });
        Ok(rows)
    }

    /// Makes the configuration-file workspaces' configurations match `wanted` (by workspace
    /// name): new ones made, changed ones updated and to be verified again, others deleted.
    pub async fn sync_notifications(
        &self,
        wanted: &BTreeMap<String, Vec<NotificationSpec>>,
    ) -> anyhow::Result<()> {
        let now = now_ms();
        let mut current = Vec::new();
        for (name, specs) in wanted {
            if let Some(workspace) = self.workspace_named(name).await? {
                let existing = self.notification_configurations(workspace.id).await?;
                current.push((workspace.id, specs, existing));
            }
        }
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            for (workspace_id, specs, existing) in &current {
                for old in existing.iter().filter(|c| c.source == "config") {
                    if !specs.iter().any(|s| s.name == old.spec.name) {
                        delete_configuration((&mut *tx).into(), old.id).await?;
                    }
                }
                for spec in specs.iter() {
                    match existing.iter().find(|c| c.spec.name == spec.name) {
                        Some(old) if old.spec == *spec && old.source == "config" => {}
                        Some(old) => {
                            sqlx::query(
                                "UPDATE notification_configurations SET destination = $1, \
                                 url = $2, token = $3, triggers = $4, enabled = $5, \
                                 source = 'config', status = 'unverified', status_detail = '', \
                                 updated_at_ms = $6 WHERE id = $7",
                            )
                            .bind(spec.destination.as_str())
                            .bind(&spec.url)
                            .bind(self.sealed_token(spec)?)
                            .bind(serde_json::to_string(&spec.triggers)?)
                            .bind(i32::from(spec.enabled))
                            .bind(now)
                            .bind(old.id)
                            .execute(&mut *tx)
                            .await?;
                        }
                        None => {
                            insert_configuration(
                                (&mut *tx).into(),
                                *workspace_id,
                                spec,
                                &self.sealed_token(spec)?,
                                "config",
                            )
                            .await?;
                        }
                    }
                }
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// A configuration made through the API (to be verified); its id.
    pub async fn create_notification(
        &self,
        workspace_id: WorkspaceId,
        spec: &NotificationSpec,
    ) -> anyhow::Result<i64> {
        let token = self.sealed_token(spec)?;
        let id = on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let id = insert_configuration((&mut *tx).into(), workspace_id, spec, &token, "api").await?;
            tx.commit().await?;
            id
        });
        Ok(id)
    }

    /// Replaces a configuration's settings; it is to be verified again.
    pub async fn update_notification(
        &self,
        id: i64,
        spec: &NotificationSpec,
    ) -> anyhow::Result<()> {
        let token = self.sealed_token(spec)?;
        on_pool!(self, pool => {
            sqlx::query(
                "UPDATE notification_configurations SET name = $1, destination = $2, url = $3, \
                 token = $4, triggers = $5, enabled = $6, status = 'unverified', \
                 status_detail = '', updated_at_ms = $7 WHERE id = $8",
            )
            .bind(&spec.name)
            .bind(spec.destination.as_str())
            .bind(&spec.url)
            .bind(token)
            .bind(serde_json::to_string(&spec.triggers)?)
            .bind(i32::from(spec.enabled))
            .bind(now_ms())
            .bind(id)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Deletes a configuration with its delivery answers.
    pub async fn delete_notification(&self, id: i64) -> anyhow::Result<()> {
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            delete_configuration((&mut *tx).into(), id).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// How its verification went: verified, or failed (and disabled) for `detail` — unless its
    /// settings changed since `updated_at_ms` (what was verified is no longer what it is).
    pub async fn set_notification_verified(
        &self,
        id: i64,
        updated_at_ms: i64,
        verified: Result<(), &str>,
    ) -> anyhow::Result<()> {
        let (status, detail) = match verified {
            Ok(()) => ("verified", ""),
            Err(why) => ("failed", why),
        };
        on_pool!(self, pool => {
            sqlx::query(
                "UPDATE notification_configurations SET status = $1, status_detail = $2, \
                 enabled = CASE WHEN $1 = 'failed' THEN 0 ELSE enabled END \
                 WHERE id = $3 AND updated_at_ms = $4",
            )
            .bind(status)
            .bind(storable(detail).as_ref())
            .bind(id)
            .bind(updated_at_ms)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Keeps a delivery's answer (the last few per configuration).
    pub async fn record_notification_delivery(
        &self,
        configuration_id: i64,
        response: &DeliveryResponse,
    ) -> anyhow::Result<()> {
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "INSERT INTO notification_deliveries (configuration_id, trigger_name, run_id, \
                 status, success, detail, at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(configuration_id)
            .bind(&response.trigger)
            .bind(response.run_id)
            .bind(response.status)
            .bind(i32::from(response.success))
            .bind(storable(&response.detail).as_ref())
            .bind(response.at_ms)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "DELETE FROM notification_deliveries WHERE configuration_id = $1 AND id NOT IN \
                 (SELECT id FROM notification_deliveries WHERE configuration_id = $1 \
                 ORDER BY id DESC LIMIT $2)",
            )
            .bind(configuration_id)
            .bind(KEPT_DELIVERIES)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// A configuration's last delivery answers, newest first.
    pub async fn notification_deliveries(
        &self,
        configuration_id: i64,
    ) -> anyhow::Result<Vec<DeliveryResponse>> {
        let rows: Vec<DeliveryRow> = on_read_pool!(self, pool => {
            sqlx::query_as(
                "SELECT trigger_name, run_id, status, success, detail, at_ms \
                 FROM notification_deliveries WHERE configuration_id = $1 ORDER BY id DESC",
            )
            .bind(configuration_id)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(
                |(trigger, run_id, status, success, detail, at_ms)| DeliveryResponse {
                    trigger,
                    run_id,
                    status,
                    success: success != 0,
                    detail,
                    at_ms,
                },
            )
            .collect())
    }

    /// When an earlier notification to the same configuration, still to be sent, is next
    /// tried (none: nothing goes before this one): they go in the order their triggers fired.
    pub async fn earlier_notification_due(
        &self,
        outbox_id: i64,
        configuration_id: i64,
    ) -> anyhow::Result<Option<i64>> {
        let due: Option<i64> = on_read_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT MIN(CASE WHEN state = 'pending' THEN next_attempt_at_ms \
                 ELSE COALESCE(lease_expires_ms, 0) END) FROM outbox \
                 WHERE kind = 'notification' AND state IN ('pending', 'sending') \
                 AND id < $1 AND key LIKE $2",
            )
            .bind(outbox_id)
            .bind(format!("{configuration_id}/%"))
            .fetch_one(pool)
            .await?
        });
        Ok(due)
    }
}

async fn insert_configuration(
    conn: Conn<'_>,
    workspace_id: WorkspaceId,
    spec: &NotificationSpec,
    sealed_token: &str,
    source: &str,
) -> Result<i64, sqlx::Error> {
    let id = on_conn!(conn, c => {
        sqlx::query_scalar(
            "INSERT INTO notification_configurations (workspace_id, name, destination, url, \
             token, triggers, enabled, source, updated_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .bind(workspace_id)
        .bind(&spec.name)
        .bind(spec.destination.as_str())
        .bind(&spec.url)
        .bind(sealed_token)
        .bind(serde_json::to_string(&spec.triggers).expect("strings serialize"))
        .bind(i32::from(spec.enabled))
        .bind(source)
        .bind(now_ms())
        .fetch_one(&mut *c)
        .await?
    });
    Ok(id)
}

async fn delete_configuration(conn: Conn<'_>, id: i64) -> Result<(), sqlx::Error> {
    on_conn!(conn, c => {
        sqlx::query("DELETE FROM notification_deliveries WHERE configuration_id = $1")
            .bind(id)
            .execute(&mut *c)
            .await?;
        sqlx::query("DELETE FROM notification_configurations WHERE id = $1")
            .bind(id)
            .execute(&mut *c)
            .await?;
    });
    Ok(())
}

/// After run `run_id` moved to `state`: a notification for each enabled, verified configuration
/// of its workspace whose triggers name what the move fired. In the caller's transaction.
pub(crate) async fn enqueue_notifications(
    conn: Conn<'_>,
    run_id: RunId,
    state: RunState,
) -> Result<(), sqlx::Error> {
    // Most moves fire no trigger (fetching, confirmed, policy states…): no query for them, on
    // a path every run takes many times.
    if run_trigger(state, false).is_none() {
        return Ok(());
    }
    on_conn!(conn, c => {
        // Whether the run applies by itself (`RunDetail::applies_automatically`): then a plan
        // waiting for confirmation only passes through, and needs nobody's attention.
        let run: Option<(WorkspaceId, i32, i32)> = sqlx::query_as(
            "SELECT r.workspace_id, r.speculative, CASE WHEN r.auto_apply = 1 \
             OR (w.auto_apply = 1 AND r.triggered_by IS NULL) THEN 1 ELSE 0 END \
             FROM runs r JOIN workspaces w ON w.id = r.workspace_id WHERE r.id = $1",
        )
        .bind(run_id)
        .fetch_optional(&mut *c)
        .await?;
        let Some((workspace_id, speculative, applies_by_itself)) = run else {
            return Ok(());
        };
        if state == RunState::Planned && applies_by_itself != 0 {
            return Ok(());
        }
        let Some((trigger, message)) = run_trigger(state, speculative != 0) else {
            return Ok(());
        };
        let configurations: Vec<(i64, String)> = sqlx::query_as(
            "SELECT id, triggers FROM notification_configurations WHERE workspace_id = $1 \
             AND enabled = 1 AND status = 'verified' ORDER BY id",
        )
        .bind(workspace_id)
        .fetch_all(&mut *c)
        .await?;
        let at_ms = now_ms();
        for (configuration_id, triggers) in configurations {
            let triggers: Vec<String> = serde_json::from_str(&triggers).unwrap_or_default();
            if !triggers.iter().any(|t| t == trigger) {
                continue;
            }
            let notice = Notice {
                configuration_id,
                run_id,
                assessment_id: None,
                trigger: trigger.to_string(),
                message: message.to_string(),
                state: state.as_str().to_string(),
                at_ms,
            };
            OutboxItem::result(Message::Notification(notice))
                .enqueue((&mut *c).into())
                .await?;
        }
    });
    Ok(())
}
