//! Bearer tokens for the API: `Authorization: Bearer gantry_…`. Only a token's SHA-256 is
//! stored, so a leaked database holds no usable token.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};

use super::error::ApiError;
use crate::core::access::Role;
use crate::web::AppState;

/// The prefix that makes a Gantry token recognizable (and findable by secret scanners).
pub const TOKEN_PREFIX: &str = "gantry_";

/// A new random token: shown once, stored hashed.
pub fn new_token() -> String {
    use rand::Rng;
    format!(
        "{TOKEN_PREFIX}{}",
        hex::encode(rand::rng().random::<[u8; 24]>())
    )
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The caller, authenticated by a valid token.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub role: Role,
}

impl Caller {
    /// Refuses with 403 unless the caller's role covers `needed`.
    pub fn require(&self, needed: Role) -> Result<(), ApiError> {
        if self.role.allows(needed) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "this needs the {needed} role; the token has {}",
                self.role
            )))
        }
    }
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ApiError::Unauthorized("an API token is required".into()))?;
        let token = header
            .strip_prefix("Bearer ")
            .map(str::trim)
            .filter(|t| t.starts_with(TOKEN_PREFIX))
            .ok_or_else(|| {
                ApiError::Unauthorized("expected `Authorization: Bearer gantry_…`".into())
            })?;
        // Looked up by hash: equal hashes are what the index finds, so no comparison of the
        // token itself happens in Rust, constant-time or not.
        let found = state.store.api_token(&token_hash(token)).await?;
        let (name, role) =
            found.ok_or_else(|| ApiError::Unauthorized("the token is not valid".into()))?;
        let role = Role::parse(&role).ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!("token {name} has an unknown role {role}"))
        })?;
        Ok(Caller { name, role })
    }
}

/// Callers whose role covers `write` or `admin`, checked as an extractor: it runs before the
/// body is read, so a small role gets 403 rather than a complaint about the body it sent.
macro_rules! role_extractor {
    ($name:ident, $role:expr) => {
        pub struct $name(pub Caller);

        impl FromRequestParts<Arc<AppState>> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(
                parts: &mut Parts,
                state: &Arc<AppState>,
            ) -> Result<Self, Self::Rejection> {
                let caller = Caller::from_request_parts(parts, state).await?;
                caller.require($role)?;
                Ok($name(caller))
            }
        }
    };
}

role_extractor!(Writer, Role::Write);
role_extractor!(Admin, Role::Admin);
