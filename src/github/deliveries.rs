//! The App's webhook deliveries as GitHub recorded them, and asking for a redelivery: how
//! Gantry catches up on webhooks it missed while it was down.

use http::Method;
use tracing::instrument;

use super::{GitHub, Result};
use crate::core::catch_up::HookDelivery;

impl GitHub {
    /// `GET /app/hook/deliveries?per_page=100` (newest first), with the App JWT.
    #[instrument(skip(self))]
    pub async fn recent_deliveries(&self) -> Result<Vec<HookDelivery>> {
        let client = self.app_client()?;
        let route = "/app/hook/deliveries?per_page=100";
        self.call(None, &client, Method::GET, route, None).await
    }

    /// `POST /app/hook/deliveries/{id}/attempts`.
    #[instrument(skip(self))]
    pub async fn redeliver(&self, delivery_id: i64) -> Result<()> {
        let client = self.app_client()?;
        let route = format!("/app/hook/deliveries/{delivery_id}/attempts");
        let _: serde::de::IgnoredAny = self.call(None, &client, Method::POST, &route, None).await?;
        Ok(())
    }
}
