//! Catching up after downtime: GitHub does not redeliver failed webhook deliveries by itself.
//! From the App's recent deliveries, which to ask GitHub to deliver again. Pure.

use std::collections::HashSet;

/// A delivery as GitHub's `GET /app/hook/deliveries` lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct HookDelivery {
    /// GitHub's id of this attempt (redeliveries get new ones).
    pub id: i64,
    /// The `X-GitHub-Delivery` id, shared by every attempt of one delivery.
    pub guid: String,
    /// The HTTP status Gantry answered (0: no answer).
    #[serde(default)]
    pub status_code: i64,
}

impl HookDelivery {
    fn succeeded(&self) -> bool {
        (200..300).contains(&self.status_code)
    }
}

/// The attempts to redeliver: one per delivery that never got a 2xx from Gantry, whose id Gantry
/// has not stored, and that was not asked for already. The newest failed attempt of each is
/// redelivered.
pub fn to_redeliver(
    deliveries: &[HookDelivery],
    stored: impl Fn(&str) -> bool,
    asked: &HashSet<String>,
) -> Vec<i64> {
    let delivered: HashSet<&str> = deliveries
        .iter()
        .filter(|d| d.succeeded())
        .map(|d| d.guid.as_str())
        .collect();
    let mut chosen: Vec<(&str, i64)> = Vec::new();
    for delivery in deliveries.iter().filter(|d| !d.succeeded()) {
        let guid = delivery.guid.as_str();
        if delivered.contains(guid) || asked.contains(guid) || stored(guid) {
            continue;
        }
        match chosen.iter_mut().find(|(g, _)| *g == guid) {
            Some((_, id)) => *id = (*id).max(delivery.id),
            None => chosen.push((guid, delivery.id)),
        }
    }
    chosen.into_iter().map(|(_, id)| id).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(id: i64, guid: &str, status_code: i64) -> HookDelivery {
        HookDelivery {
            id,
            guid: guid.into(),
            status_code,
        }
    }

    #[test]
    fn only_failed_unknown_deliveries_are_redelivered_once_each() {
        let deliveries = [
            delivery(1, "ok", 202),
            delivery(2, "down", 0),
            delivery(5, "down", 502),
            delivery(3, "stored", 503),
            delivery(4, "retried-fine", 500),
            delivery(6, "retried-fine", 202),
            delivery(7, "asked", 500),
        ];
        let asked = HashSet::from(["asked".to_string()]);
        let ids = to_redeliver(&deliveries, |guid| guid == "stored", &asked);
        assert_eq!(
            ids,
            [5],
            "the newest attempt of the one delivery never received"
        );
    }
}
