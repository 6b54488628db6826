//! Gantry's clock for what it schedules by time (health assessments): the system's, which a test
//! may move forward by hand instead of waiting. Everything else reads the system clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

#[derive(Clone, Default)]
pub struct Clock {
    /// How far it was moved ahead of the system's clock (ms).
    ahead_ms: Arc<AtomicI64>,
    moved: Arc<Notify>,
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Clock(+{} ms)", self.ahead_ms.load(Ordering::Relaxed))
    }
}

impl Clock {
    /// The system's clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        crate::store::now_ms() + self.ahead_ms.load(Ordering::SeqCst)
    }

    /// Moves it `by` ahead, and wakes whoever schedules by it.
    pub fn advance(&self, by: Duration) {
        self.ahead_ms
            .fetch_add(by.as_millis() as i64, Ordering::SeqCst);
        self.moved.notify_waiters();
    }

    /// Completes when it is moved by hand.
    pub async fn moved(&self) {
        self.moved.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_moved_clock_is_ahead_of_the_system_by_that_much() {
        let clock = Clock::system();
        let before = crate::store::now_ms();
        clock.advance(Duration::from_secs(3600));
        let now = clock.now_ms();
        assert!(now >= before + 3_600_000 && now < crate::store::now_ms() + 3_600_000 + 1000);
    }
}
