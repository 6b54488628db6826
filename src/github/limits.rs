//! Staying under GitHub's rate limits: how long a refusal's headers say to wait, an
//! installation held back until then, and a client-side limit on content-creating requests
//! (GitHub's secondary limit: at most 80 a minute). A request that would break either is not
//! sent; the caller gets [`super::GitHubError::Throttled`] with the wait and tries later.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::core::InstallationId;
use chrono::{DateTime, Utc};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use http::HeaderMap;

/// GitHub's documented secondary limit on content-creating requests.
pub const DEFAULT_CONTENT_REQUESTS_PER_MINUTE: u32 = 80;
/// GitHub asks for at least a minute after a secondary rate limit that names no wait.
const SECONDARY_LIMIT_WAIT: Duration = Duration::from_secs(60);
/// A reset time in the past (clock skew) still waits a little rather than hammering.
const MIN_WAIT: Duration = Duration::from_secs(1);
/// Bound on any wait GitHub asks for: a primary limit resets within the hour.
const MAX_WAIT: Duration = Duration::from_secs(3600);

/// How long GitHub's answer says to wait before the next request, if it is a rate limit:
/// `retry-after` (429 and secondary limits), `x-ratelimit-remaining: 0` with
/// `x-ratelimit-reset` (primary limit), or a 403/429 whose message names a secondary limit.
pub fn wait_from_response(
    status: u16,
    headers: &HeaderMap,
    message: &str,
    now: DateTime<Utc>,
) -> Option<Duration> {
    let header = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<i64>().ok();
    let wait = if let Some(seconds) = header("retry-after") {
        Duration::from_secs(seconds.max(0) as u64)
    } else if header("x-ratelimit-remaining") == Some(0) && matches!(status, 403 | 429) {
        let reset = header("x-ratelimit-reset")?;
        Duration::from_secs((reset - now.timestamp()).max(0) as u64)
    } else if matches!(status, 403 | 429) && message.to_ascii_lowercase().contains("rate limit") {
        SECONDARY_LIMIT_WAIT
    } else {
        return None;
    };
    Some(wait.clamp(MIN_WAIT, MAX_WAIT))
}

/// Per-installation limits, shared by every call Gantry makes.
pub(crate) struct Limits<C: Clock = DefaultClock> {
    content: RateLimiter<
        InstallationId,
        DefaultKeyedStateStore<InstallationId>,
        C,
        NoOpMiddleware<C::Instant>,
    >,
    clock: C,
    held_until: Mutex<HashMap<InstallationId, Instant>>,
}

impl Limits {
    pub fn new(content_per_minute: NonZeroU32) -> Self {
        Self::with_clock(content_per_minute, DefaultClock::default())
    }
}

impl<C: Clock + Clone> Limits<C> {
    /// A sixteenth of the minute's allowance may go at once; the rest is spread over the
    /// minute, so that no 60-second window holds more than `content_per_minute` requests. A
    /// small burst keeps the sustained rate close to the allowance (75 of 80 a minute): a
    /// monorepo's hundreds of statuses go out near the pace GitHub allows.
    pub fn with_clock(content_per_minute: NonZeroU32, clock: C) -> Self {
        let per_minute = content_per_minute.get();
        let burst = (per_minute / 16).max(1);
        let spread = (per_minute - burst).max(1);
        let quota = Quota::with_period(Duration::from_secs(60) / spread)
            .expect("a minute divided by a positive count is not zero")
            .allow_burst(NonZeroU32::new(burst).expect("at least one"));
        Self {
            content: RateLimiter::new(quota, DefaultKeyedStateStore::default(), clock.clone()),
            clock,
            held_until: Mutex::default(),
        }
    }

    /// Whether a request for `installation` may go now; if not, how long until it may. A
    /// content-creating request that may go takes its place in the minute's allowance.
    pub fn admit(
        &self,
        installation: InstallationId,
        creates_content: bool,
    ) -> Result<(), Duration> {
        if let Some(wait) = self.held(installation) {
            return Err(wait);
        }
        if creates_content {
            self.content
                .check_key(&installation)
                .map_err(|not_until| not_until.wait_time_from(self.clock.now()))?;
        }
        Ok(())
    }

    /// GitHub said to wait: nothing more goes for `installation` until then.
    pub fn hold(&self, installation: InstallationId, wait: Duration) {
        let until = Instant::now() + wait;
        let mut held = self.held_until.lock().expect("not poisoned");
        let entry = held.entry(installation).or_insert(until);
        *entry = (*entry).max(until);
    }

    fn held(&self, installation: InstallationId) -> Option<Duration> {
        let mut held = self.held_until.lock().expect("not poisoned");
        let until = *held.get(&installation)?;
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            held.remove(&installation);
            None
        } else {
            Some(left)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).unwrap()
    }

    #[test]
    fn a_primary_limit_waits_until_its_reset() {
        let h = headers(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1000"),
        ]);
        let wait = wait_from_response(403, &h, "API rate limit exceeded", at(970));
        assert_eq!(wait, Some(Duration::from_secs(30)));
        // A reset already past (clock skew) still waits a second.
        let wait = wait_from_response(403, &h, "", at(2000));
        assert_eq!(wait, Some(MIN_WAIT));
    }

    #[test]
    fn retry_after_is_honoured_and_bounded() {
        let h = headers(&[("retry-after", "7")]);
        assert_eq!(
            wait_from_response(429, &h, "", at(0)),
            Some(Duration::from_secs(7))
        );
        let h = headers(&[("retry-after", "999999")]);
        assert_eq!(wait_from_response(403, &h, "", at(0)), Some(MAX_WAIT));
    }

    #[test]
    fn a_secondary_limit_without_headers_waits_a_minute() {
        let message = "You have exceeded a secondary rate limit. Please wait a few minutes";
        assert_eq!(
            wait_from_response(403, &HeaderMap::new(), message, at(0)),
            Some(SECONDARY_LIMIT_WAIT)
        );
    }

    #[test]
    fn other_refusals_are_not_rate_limits() {
        assert_eq!(
            wait_from_response(
                403,
                &HeaderMap::new(),
                "Resource not accessible by integration",
                at(0)
            ),
            None
        );
        let h = headers(&[("x-ratelimit-remaining", "4999")]);
        assert_eq!(wait_from_response(404, &h, "Not Found", at(0)), None);
        // Remaining 0 on a success is GitHub counting, not refusing.
        let h = headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "9")]);
        assert_eq!(wait_from_response(500, &h, "", at(0)), None);
    }

    #[test]
    fn no_minute_holds_more_content_requests_than_allowed() {
        let clock = FakeRelativeClock::default();
        let limits = Limits::with_clock(NonZeroU32::new(80).unwrap(), clock.clone());
        // Try one request every 100 ms for five minutes; record when each went.
        let mut sent = Vec::new();
        for tick in 0..3000u64 {
            if limits.admit(InstallationId(1), true).is_ok() {
                sent.push(tick);
            }
            clock.advance(Duration::from_millis(100));
        }
        for (i, &start) in sent.iter().enumerate() {
            let in_minute = sent[i..].iter().take_while(|&&t| t < start + 600).count();
            assert!(
                in_minute <= 80,
                "{in_minute} requests in the minute from {start}"
            );
        }
        // And the allowance is used: close to 80 a minute over five minutes (75 a minute
        // after a burst of 5).
        assert!(sent.len() >= 5 * 75, "only {} sent", sent.len());
    }

    #[test]
    fn the_limit_is_per_installation_and_reads_are_not_counted() {
        let clock = FakeRelativeClock::default();
        let limits = Limits::with_clock(NonZeroU32::new(4).unwrap(), clock);
        assert!(limits.admit(InstallationId(1), true).is_ok());
        let wait = limits.admit(InstallationId(1), true).unwrap_err();
        assert_eq!(
            wait,
            Duration::from_secs(20),
            "3 a minute after a burst of 1"
        );
        assert!(
            limits.admit(InstallationId(2), true).is_ok(),
            "another installation has its own"
        );
        assert!(
            limits.admit(InstallationId(1), false).is_ok(),
            "reads are not content-creating"
        );
    }

    #[test]
    fn a_held_installation_waits_for_everything() {
        let limits = Limits::new(NonZeroU32::new(80).unwrap());
        limits.hold(InstallationId(7), Duration::from_secs(30));
        let wait = limits.admit(InstallationId(7), false).unwrap_err();
        assert!(wait > Duration::from_secs(29) && wait <= Duration::from_secs(30));
        assert!(limits.admit(InstallationId(8), true).is_ok());
        // A shorter hold does not cut a longer one short.
        limits.hold(InstallationId(7), Duration::from_secs(1));
        assert!(limits.admit(InstallationId(7), false).unwrap_err() > Duration::from_secs(29));
    }
}
