//! Time, injectable: every limiter, lease, breaker and backoff reads the time through a
//! [`Clock`], so tests drive time by hand instead of sleeping.
//!
//! Times are monotonic [`Duration`]s since the clock's own origin (not wall time): a wall
//! clock stepped backwards by NTP must not refill a rate limit or expire a lease early.
//! Wall time appears in exactly one place, turning a vendor's `Retry-After: <HTTP date>`
//! into a duration ([`crate::resilience::pause::parse_retry_after`]), and that function takes
//! the current wall time as a parameter.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;

/// A source of monotonic time and a way to wait.
#[async_trait]
pub trait Clock: Send + Sync + 'static {
    /// Time since this clock's origin. Never goes backwards.
    fn now(&self) -> Duration;

    /// Wait for `duration`. [`SystemClock`] sleeps on the tokio timer; [`ManualClock`]
    /// advances itself by `duration` and returns at once, so code that waits (a reserved
    /// vendor-budget slot, a retry backoff) runs deterministically in tests.
    async fn sleep(&self, duration: Duration);
}

/// Real time: `Instant` since construction, tokio's timer for waiting.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    pub fn new() -> Self {
        SystemClock {
            origin: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// Time that moves only when told to: for tests and simulations.
///
/// `sleep` advances the clock by the requested duration (then yields to the scheduler), so a
/// sleeping caller observes exactly the time it asked for, and nothing real is waited on.
#[derive(Debug, Default)]
pub struct ManualClock {
    nanos: AtomicU64,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: Duration) -> Self {
        ManualClock {
            nanos: AtomicU64::new(to_nanos(start)),
        }
    }

    /// Move the clock forward.
    pub fn advance(&self, by: Duration) {
        self.nanos.fetch_add(to_nanos(by), Ordering::SeqCst);
    }
}

#[async_trait]
impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::SeqCst))
    }

    async fn sleep(&self, duration: Duration) {
        self.advance(duration);
        tokio::task::yield_now().await;
    }
}

/// Nanoseconds, saturating (u64 nanoseconds last 584 years).
pub(crate) fn to_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(Duration::from_secs(5));
        assert_eq!(clock.now(), Duration::from_secs(5));
        clock.advance(Duration::from_millis(250));
        assert_eq!(clock.now(), Duration::from_millis(5_250));
        clock.sleep(Duration::from_secs(2)).await;
        assert_eq!(clock.now(), Duration::from_millis(7_250));
    }

    #[test]
    fn system_clock_is_monotonic() {
        let clock = SystemClock::new();
        let a = clock.now();
        let b = clock.now();
        assert!(b >= a);
    }
}
