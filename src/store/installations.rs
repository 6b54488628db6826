//! Where the GitHub App is installed, kept up to date from installation events.

use sqlx::Row;

use super::{Conn, Store, now_ms, on_conn, on_read_pool};
use crate::core::InstallationId;

/// A change to where the app is installed, decided from an installation event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallationChange {
    /// The app was installed on (or its installation changed for) an account.
    Upsert {
        id: InstallationId,
        account_login: String,
        account_type: String,
        suspended: bool,
    },
    /// The app was uninstalled: its repositories go with it.
    Remove { id: InstallationId },
    AddRepositories {
        installation_id: InstallationId,
        full_names: Vec<String>,
    },
    RemoveRepositories {
        installation_id: InstallationId,
        full_names: Vec<String>,
    },
}

/// An installation as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installation {
    pub id: i64,
    pub account_login: String,
    pub account_type: String,
    pub suspended: bool,
    pub repositories: Vec<String>,
}

impl InstallationChange {
    pub(crate) async fn apply(&self, conn: Conn<'_>) -> Result<(), sqlx::Error> {
        on_conn!(conn, c => {
            match self {
                InstallationChange::Upsert { id, account_login, account_type, suspended } => {
                    sqlx::query(
                        "INSERT INTO installations (id, account_login, account_type, suspended, \
                         updated_at_ms) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET \
                         account_login = excluded.account_login, account_type = \
                         excluded.account_type, suspended = excluded.suspended, \
                         updated_at_ms = excluded.updated_at_ms",
                    )
                    .bind(id)
                    .bind(account_login)
                    .bind(account_type)
                    .bind(i32::from(*suspended))
                    .bind(now_ms())
                    .execute(&mut *c)
                    .await?;
                }
                InstallationChange::Remove { id } => {
                    sqlx::query("DELETE FROM installation_repositories WHERE installation_id = $1")
                        .bind(id)
                        .execute(&mut *c)
                        .await?;
                    sqlx::query("DELETE FROM installations WHERE id = $1")
                        .bind(id)
                        .execute(&mut *c)
                        .await?;
                }
                InstallationChange::AddRepositories { installation_id, full_names } => {
                    for name in full_names {
                        sqlx::query(
                            "INSERT INTO installation_repositories (installation_id, full_name) \
                             VALUES ($1, $2) ON CONFLICT DO NOTHING",
                        )
                        .bind(installation_id)
                        .bind(name)
                        .execute(&mut *c)
                        .await?;
                    }
                }
                InstallationChange::RemoveRepositories { installation_id, full_names } => {
                    for name in full_names {
                        sqlx::query(
                            "DELETE FROM installation_repositories \
                             WHERE installation_id = $1 AND full_name = $2",
                        )
                        .bind(installation_id)
                        .bind(name)
                        .execute(&mut *c)
                        .await?;
                    }
                }
            }
        });
        Ok(())
    }
}

impl Store {
    /// One installation with its repositories, if the app is installed there.
    pub async fn installation(&self, id: i64) -> anyhow::Result<Option<Installation>> {
        let found = on_read_pool!(self, pool => {
            let Some(row) = sqlx::query(
                "SELECT id, account_login, account_type, suspended FROM installations WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
            else {
                return Ok(None);
            };
            let repositories: Vec<String> = sqlx::query_scalar(
                "SELECT full_name FROM installation_repositories WHERE installation_id = $1 \
                 ORDER BY full_name",
            )
            .bind(id)
            .fetch_all(pool)
            .await?;
            Installation {
                id: row.try_get("id")?,
                account_login: row.try_get("account_login")?,
                account_type: row.try_get("account_type")?,
                suspended: row.try_get::<i32, _>("suspended")? != 0,
                repositories,
            }
        });
        Ok(Some(found))
    }
}
