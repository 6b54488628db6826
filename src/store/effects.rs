//! What processing a delivery decided to change, applied by the store in the same transaction
//! that closes the delivery: both happen, or neither does.

use super::{Conn, InstallationChange, NewRuns};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryEffect {
    Installation(InstallationChange),
    /// A push created a configuration version and runs.
    CreateRuns(NewRuns),
}

impl DeliveryEffect {
    pub(crate) async fn apply(&self, conn: Conn<'_>) -> Result<(), sqlx::Error> {
        match self {
            DeliveryEffect::Installation(change) => change.apply(conn).await,
            DeliveryEffect::CreateRuns(runs) => runs.create(conn).await,
        }
    }
}
