//! Installation access tokens: created on GitHub with the app JWT, cached per installation and
//! renewed five minutes before they expire, one renewal at a time per installation. Must not log,
//! format or store a token value.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, PoisonError};

use chrono::{DateTime, TimeDelta, Utc};
use secrecy::SecretString;
use serde::Deserialize;

use super::GitHubError;
use crate::core::InstallationId;

/// A cached token is renewed once it has this little time left, so a caller never starts work
/// with a token that dies halfway through.
pub const RENEW_BEFORE_EXPIRY: TimeDelta = TimeDelta::minutes(5);

/// A token that acts as one installation of the app, and when GitHub will stop accepting it.
#[derive(Debug, Clone, Deserialize)]
pub struct InstallationToken {
    pub token: SecretString,
    pub expires_at: DateTime<Utc>,
}

/// Whether something expiring at `expires_at` must be renewed before use at `now`.
pub fn needs_renewal(expires_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    expires_at - now <= RENEW_BEFORE_EXPIRY
}

/// Values that expire (a token and the client built on it), one slot per installation.
///
/// Each slot has its own async lock, held while it is renewed: callers for the same installation
/// wait for one renewal instead of each asking GitHub, while other installations go on.
pub(crate) struct TokenCache<T> {
    slots: std::sync::Mutex<HashMap<InstallationId, Arc<Slot<T>>>>,
}

type Slot<T> = tokio::sync::Mutex<Option<Expiring<T>>>;

struct Expiring<T> {
    value: T,
    expires_at: DateTime<Utc>,
}

impl<T: Clone> TokenCache<T> {
    pub(crate) fn new() -> Self {
        Self {
            slots: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The cached value for `installation_id` if it is still good at `now`, or else the one
    /// `renew` makes (with its expiry), which replaces it. A failed renewal leaves the slot as it
    /// was, so the next caller tries again.
    pub(crate) async fn get_or_renew<F, Fut>(
        &self,
        installation_id: InstallationId,
        now: DateTime<Utc>,
        renew: F,
    ) -> Result<T, GitHubError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(T, DateTime<Utc>), GitHubError>>,
    {
        let slot = self.slot(installation_id);
        let mut cached = slot.lock().await;
        if let Some(entry) = cached
            .as_ref()
            .filter(|e| !needs_renewal(e.expires_at, now))
        {
            return Ok(entry.value.clone());
        }
        let (value, expires_at) = renew().await?;
        *cached = Some(Expiring {
            value: value.clone(),
            expires_at,
        });
        Ok(value)
    }

    fn slot(&self, installation_id: InstallationId) -> Arc<Slot<T>> {
        // Nothing panics while this lock is held, so a poisoned map is still a sound map.
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(slots.entry(installation_id).or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).expect("valid timestamp")
    }

    const NOW: i64 = 1_700_000_000;

    #[test]
    fn renewal_rule() {
        let cases = [
            ("an hour left", NOW + 3600, false),
            ("five minutes and a second left", NOW + 301, false),
            ("exactly five minutes left", NOW + 300, true),
            ("four minutes left", NOW + 240, true),
            ("already expired", NOW - 1, true),
        ];
        for (name, expires_at, expected) in cases {
            assert_eq!(needs_renewal(at(expires_at), at(NOW)), expected, "{name}");
        }
    }

    /// A renewal that counts its calls and hands out `"token-<n>"` expiring at `expires_at`.
    async fn counting_renewal(
        calls: &AtomicUsize,
        expires_at: i64,
    ) -> Result<(String, DateTime<Utc>), GitHubError> {
        let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
        tokio::task::yield_now().await;
        Ok((format!("token-{n}"), at(expires_at)))
    }

    #[tokio::test]
    async fn fresh_value_is_reused() {
        let cache = TokenCache::new();
        let calls = AtomicUsize::new(0);
        let renew = || counting_renewal(&calls, NOW + 3600);
        let first = cache
            .get_or_renew(InstallationId(1), at(NOW), renew)
            .await
            .unwrap();
        let second = cache
            .get_or_renew(InstallationId(1), at(NOW + 60), renew)
            .await
            .unwrap();
        assert_eq!((first.as_str(), second.as_str()), ("token-1", "token-1"));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn value_within_five_minutes_of_expiry_is_renewed() {
        let cache = TokenCache::new();
        let calls = AtomicUsize::new(0);
        let renew = || counting_renewal(&calls, NOW + 3600);
        cache
            .get_or_renew(InstallationId(1), at(NOW), renew)
            .await
            .unwrap();
        let later = cache
            .get_or_renew(InstallationId(1), at(NOW + 3600 - 299), renew)
            .await
            .unwrap();
        assert_eq!(later, "token-2");
    }

    #[tokio::test]
    async fn installations_are_cached_separately() {
        let cache = TokenCache::new();
        let calls = AtomicUsize::new(0);
        let renew = || counting_renewal(&calls, NOW + 3600);
        let one = cache
            .get_or_renew(InstallationId(1), at(NOW), renew)
            .await
            .unwrap();
        let two = cache
            .get_or_renew(InstallationId(2), at(NOW), renew)
            .await
            .unwrap();
        assert_ne!(one, two);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_renewal() {
        let cache = TokenCache::new();
        let calls = AtomicUsize::new(0);
        let renew = || counting_renewal(&calls, NOW + 3600);
        let (a, b, c) = tokio::join!(
            cache.get_or_renew(InstallationId(1), at(NOW), renew),
            cache.get_or_renew(InstallationId(1), at(NOW), renew),
            cache.get_or_renew(InstallationId(1), at(NOW), renew),
        );
        assert_eq!([a.unwrap(), b.unwrap(), c.unwrap()], ["token-1"; 3]);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn failed_renewal_is_retried_by_the_next_caller() {
        let cache: TokenCache<String> = TokenCache::new();
        let failed = cache
            .get_or_renew(InstallationId(1), at(NOW), || async {
                Err(GitHubError::NotConfigured)
            })
            .await;
        assert!(matches!(failed, Err(GitHubError::NotConfigured)));
        let calls = AtomicUsize::new(0);
        let value = cache
            .get_or_renew(InstallationId(1), at(NOW), || {
                counting_renewal(&calls, NOW + 3600)
            })
            .await;
        assert_eq!(value.unwrap(), "token-1");
    }
}
