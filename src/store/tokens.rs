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
