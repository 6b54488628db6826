//! API tokens: only the SHA-256 of a token is stored; the token itself is shown once.

use super::{Store, now_ms, on_pool, on_read_pool};

impl Store {
    /// Stores a token's hash under `name` with `role`. Fails if the name is taken.
    pub async fn create_api_token(
        &self,
        name: &str,
        role: &str,
        token_sha256: &str,
    ) -> anyhow::Result<()> {
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO api_tokens (name, role, token_sha256, created_at_ms) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(name)
            .bind(role)
            .bind(token_sha256)
            .bind(now_ms())
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The (name, role) of the token with this hash.
    pub async fn api_token(&self, token_sha256: &str) -> anyhow::Result<Option<(String, String)>> {
        let found = on_read_pool!(self, pool => {
            sqlx::query_as("SELECT name, role FROM api_tokens WHERE token_sha256 = $1")
                .bind(token_sha256)
                .fetch_optional(pool)
                .await?
        });
        Ok(found)
    }
}

/// A signed-in web session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub token_name: String,
    pub role: String,
    pub csrf: String,
}

impl Store {
    /// Opens a session (its id's hash) for a token's name and role, until `expires_at_ms`.
    pub async fn create_session(
        &self,
        id_sha256: &str,
        session: &Session,
        expires_at_ms: i64,
    ) -> anyhow::Result<()> {
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO sessions (id_sha256, token_name, role, csrf, expires_at_ms) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(id_sha256)
            .bind(&session.token_name)
            .bind(&session.role)
            .bind(&session.csrf)
            .bind(expires_at_ms)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The live session with this id hash.
    pub async fn session(&self, id_sha256: &str) -> anyhow::Result<Option<Session>> {
        let row: Option<(String, String, String)> = on_read_pool!(self, pool => {
            sqlx::query_as(
                "SELECT token_name, role, csrf FROM sessions WHERE id_sha256 = $1 \
                 AND expires_at_ms > $2",
            )
            .bind(id_sha256)
            .bind(now_ms())
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(|(token_name, role, csrf)| Session {
            token_name,
            role,
            csrf,
        }))
    }

    pub async fn delete_session(&self, id_sha256: &str) -> anyhow::Result<()> {
        on_pool!(self, pool => {
            sqlx::query("DELETE FROM sessions WHERE id_sha256 = $1 OR expires_at_ms <= $2")
                .bind(id_sha256)
                .bind(now_ms())
                .execute(pool)
                .await?;
        });
        Ok(())
    }
}
