//! Catching up after downtime: GitHub does not redeliver failed webhook deliveries by itself.
//! How far back to read the App's deliveries, and which to ask GitHub to deliver again. Pure.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};

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
    /// When GitHub attempted it.
    #[serde(default)]
    pub delivered_at: Option<DateTime<Utc>>,
}

/// GitHub keeps an App's deliveries this long: nothing older can be listed or redelivered.
pub const RETENTION: Duration = Duration::days(3);
/// GitHub's clock and Gantry's may disagree; reading a little further back costs a page at most.
pub const CLOCK_SLACK: Duration = Duration::minutes(10);
/// At most this many pages (100 deliveries each) are read in one pass.
pub const MAX_PAGES: usize = 50;

/// The oldest delivery a pass must read back to: the newest one Gantry stored before the gap
/// it is catching up on (`since`; None when it never stored one), less the clock slack, and
/// never older than GitHub keeps them.
pub fn read_back_to(since: Option<DateTime<Utc>>, now: DateTime<Utc>) -> DateTime<Utc> {
    let kept = now - RETENTION;
    since.map_or(kept, |since| (since - CLOCK_SLACK).max(kept))
}

/// Whether a page (newest first) reaches back past `back_to`: the pages after it are older.
pub fn reaches_back_to(page: &[HookDelivery], back_to: DateTime<Utc>) -> bool {
    page.iter()
        .any(|d| d.delivered_at.is_some_and(|at| at < back_to))
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
            delivered_at: None,
        }
    }

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn a_pass_reads_back_to_the_last_stored_delivery_within_githubs_retention() {
        let now = at("2026-01-10T12:00:00Z");
        assert_eq!(
            read_back_to(Some(at("2026-01-10T08:00:00Z")), now),
            at("2026-01-10T07:50:00Z"),
            "the last stored delivery, less the clock slack"
        );
        assert_eq!(
            read_back_to(Some(at("2025-12-01T00:00:00Z")), now),
            at("2026-01-07T12:00:00Z"),
            "GitHub keeps nothing older"
        );
        assert_eq!(read_back_to(None, now), at("2026-01-07T12:00:00Z"));
    }

    #[test]
    fn paging_stops_at_a_page_with_deliveries_older_than_the_mark() {
        let mark = at("2026-01-10T08:00:00Z");
        let mut newer = delivery(2, "b", 502);
        newer.delivered_at = Some(at("2026-01-10T09:00:00Z"));
        let mut older = delivery(1, "a", 202);
        older.delivered_at = Some(at("2026-01-10T07:59:59Z"));
        assert!(!reaches_back_to(std::slice::from_ref(&newer), mark));
        assert!(reaches_back_to(&[newer, older], mark));
        assert!(
            !reaches_back_to(&[delivery(3, "c", 0)], mark),
            "no time: read on"
        );
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
