//! Verifying notification configurations: a new or changed one gets a verification delivery
//! before any run's notification goes to it; a receiver that does not answer 2xx leaves it
//! disabled, with why (as Terraform Cloud does). The API verifies what it is given before it
//! answers; the configuration file's are verified when Gantry starts or reloads.

use crate::notify::Notifier;
use crate::store::{DeliveryResponse, NotificationConfiguration, Store};

/// Sends the verification delivery and records how it went; Err says why it failed.
pub async fn verify(
    store: &Store,
    notifier: &Notifier,
    configuration: &NotificationConfiguration,
) -> anyhow::Result<Result<(), String>> {
    let id = format!("nc-{}", configuration.id);
    let answer = notifier.verify(&configuration.spec, &id).await;
    let response = DeliveryResponse {
        trigger: "verification".into(),
        run_id: None,
        status: answer.status.map(i32::from),
        success: answer.success(),
        detail: answer.detail.clone(),
        at_ms: crate::store::now_ms(),
    };
    store
        .record_notification_delivery(configuration.id, &response)
        .await?;
    let verified = if answer.success() {
        Ok(())
    } else {
        Err(format!("verification failed: {}", answer.describe()))
    };
    store
        .set_notification_verified(
            configuration.id,
            configuration.updated_at_ms,
            verified.as_ref().map(|_| ()).map_err(String::as_str),
        )
        .await?;
    match &verified {
        Ok(()) => tracing::info!(configuration = id, "notification configuration verified"),
        Err(why) => tracing::warn!(
            configuration = id,
            why,
            "notification configuration disabled"
        ),
    }
    Ok(verified)
}

/// Verifies the configuration file's configurations that are new or changed.
pub async fn verify_configured(store: Store, notifier: std::sync::Arc<Notifier>) {
    let pending = match store.notifications_to_verify().await {
        Ok(pending) => pending,
        Err(error) => {
            tracing::error!(
                error = format!("{error:#}"),
                "reading notification configurations failed"
            );
            return;
        }
    };
    for configuration in pending {
        if let Err(error) = verify(&store, &notifier, &configuration).await {
            tracing::error!(
                error = format!("{error:#}"),
                "verifying a notification configuration failed"
            );
        }
    }
}
