//! Retries of failed vendor calls: which failures may be retried, how long to back off, and
//! a per-connection budget so retries cannot multiply the load on a struggling vendor.
//!
//! The rule (docs/api.md, "Writes that are safe to repeat"): **reads** are retried on any
//! transient failure; **any other call** is retried only when the request provably never
//! reached the vendor (the connection could not be made, or a pooled connection turned out
//! to be closed before the request was written). A `POST` that may have reached the vendor
//! is never sent again — a timeout or a reset after writing may mean the message was sent.
//!
//! Every retry must also fit: within `max_attempts`, within the call's deadline (the
//! endpoint timeout — backoff included), and within the retry budget.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::settings::RetrySettings;
use super::window::RollingCounts;
use crate::clock::Clock;

/// No retry is started with less time than this left after its backoff: it could not
/// finish anyway.
pub const MIN_ATTEMPT_TIME: Duration = Duration::from_millis(25);

/// Why a vendor call produced no usable answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallFailure {
    /// No connection: DNS or TCP connect failed. Never reached the vendor.
    Connect,
    /// The TLS session could not be made (certificate check, handshake, the vendor refused
    /// our client certificate). Never reached the vendor, and the same on every attempt:
    /// not retried, but it counts against the circuit.
    Tls,
    /// A pooled keep-alive connection was found closed before any byte of the request was
    /// written. Never reached the vendor.
    StaleConnection,
    /// The connection broke after (part of) the request was written, before a whole
    /// answer was read. May have reached the vendor.
    Reset,
    /// No answer within the time limit. May have reached the vendor.
    Timeout,
    /// The vendor answered with this 5xx status.
    Status(u16),
}

impl CallFailure {
    /// Whether the vendor may have seen the request.
    pub fn reached_vendor(self) -> bool {
        !matches!(
            self,
            CallFailure::Connect | CallFailure::StaleConnection | CallFailure::Tls
        )
    }

    /// Whether trying again could help. 500/502/503/504 are; other 5xx (501 not
    /// implemented, 505 …) answer the same every time.
    pub fn is_transient(self) -> bool {
        match self {
            CallFailure::Status(s) => matches!(s, 500 | 502 | 503 | 504),
            CallFailure::Tls => false,
            _ => true,
        }
    }

    /// Whether this failure counts against the connection's circuit breaker.
    pub fn counts_against_circuit(self) -> bool {
        match self {
            CallFailure::Status(s) => s >= 500,
            _ => true,
        }
    }

    /// The `reason` label of `switchboard_vendor_retries_total`.
    pub fn reason(self) -> &'static str {
        match self {
            CallFailure::Connect => "connect_error",
            CallFailure::Tls => "tls_error",
            CallFailure::StaleConnection => "stale_connection",
            CallFailure::Reset => "reset",
            CallFailure::Timeout => "timeout",
            CallFailure::Status(_) => "server_error",
        }
    }
}

/// Whether a vendor call may be sent twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// A read (`GET`, `HEAD`, `OPTIONS`): retried on any transient failure.
    Safe,
    /// Anything else, including `PUT` and `DELETE`: a vendor's side effects (automations,
    /// notifications, a 404 on the second `DELETE`) make a resend visible, so these are
    /// retried only when the request never reached the vendor.
    Unsafe,
}

impl Replay {
    pub fn for_method(method: &http::Method) -> Replay {
        if *method == http::Method::GET
            || *method == http::Method::HEAD
            || *method == http::Method::OPTIONS
        {
            Replay::Safe
        } else {
            Replay::Unsafe
        }
    }
}

/// Why a failed call was not retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// Retries are switched off for the connection.
    Disabled,
    /// The failure is permanent, or the call may have reached the vendor and is not a read.
    NotRetryable,
    /// `max_attempts` reached.
    AttemptsExhausted,
    /// The backoff plus a minimal attempt would not fit in the time left.
    Deadline,
    /// The connection's retry budget is spent.
    RetryBudget,
    /// The next attempt was refused before any call: circuit open, connection paused, or
    /// vendor budget spent.
    Refused,
}

impl StopReason {
    /// The `reason` label of `switchboard_vendor_retries_denied_total` (for the reasons
    /// that deny a retry that would otherwise have been made).
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Disabled => "disabled",
            StopReason::NotRetryable => "not_retryable",
            StopReason::AttemptsExhausted => "attempts",
            StopReason::Deadline => "deadline",
            StopReason::RetryBudget => "retry_budget",
            StopReason::Refused => "refused",
        }
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    Retry { delay: Duration },
    Stop(StopReason),
}

/// The retry rules of one connection.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    settings: RetrySettings,
}

impl RetryPolicy {
    pub fn new(settings: RetrySettings) -> Self {
        RetryPolicy { settings }
    }

    pub fn settings(&self) -> &RetrySettings {
        &self.settings
    }

    /// Backoff before retry number `retry` (1 = the first retry): "equal jitter" —
    /// half of `min(max_delay, base_delay · 2^(retry-1))` fixed, half random — so retries
    /// from many callers spread out but never fire back-to-back. `jitter` is a uniform
    /// random number in `[0, 1)`.
    pub fn backoff(&self, retry: u32, jitter: f64) -> Duration {
        let base = self.settings.base_delay();
        let exp = retry.saturating_sub(1).min(30);
        let cap = base
            .saturating_mul(1u32 << exp)
            .min(self.settings.max_delay());
        let jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        cap / 2 + cap.mul_f64(jitter / 2.0)
    }

    /// After `attempts_made` attempts, the last of which failed with `failure`, with
    /// `time_left` until the call's deadline: retry (after a backoff), or stop and why.
    /// The retry budget is asked separately, last, so a denied retry never spends it.
    pub fn decide(
        &self,
        attempts_made: u32,
        failure: CallFailure,
        replay: Replay,
        time_left: Duration,
        jitter: f64,
    ) -> RetryDecision {
        if !self.settings.enabled {
            return RetryDecision::Stop(StopReason::Disabled);
        }
        let allowed = match replay {
            Replay::Safe => failure.is_transient(),
            Replay::Unsafe => !failure.reached_vendor() && failure.is_transient(),
        };
        if !allowed {
            return RetryDecision::Stop(StopReason::NotRetryable);
        }
        if attempts_made >= self.settings.max_attempts {
            return RetryDecision::Stop(StopReason::AttemptsExhausted);
        }
        let delay = self.backoff(attempts_made, jitter);
        if delay + MIN_ATTEMPT_TIME > time_left {
            return RetryDecision::Stop(StopReason::Deadline);
        }
        RetryDecision::Retry { delay }
    }
}

/// Retries of one connection may add at most `budget_percent` of its calls over a rolling
/// window (at least `budget_min_retries`), so a failing vendor sees at most 1.2× its normal
/// load from retries, not 3×. Per replica.
pub struct RetryBudget {
    percent: u64,
    min_retries: u64,
    clock: Arc<dyn Clock>,
    /// total = calls (first attempts), marked = retries.
    window: Mutex<RollingCounts>,
}

impl std::fmt::Debug for RetryBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryBudget")
            .field("percent", &self.percent)
            .field("min_retries", &self.min_retries)
            .finish_non_exhaustive()
    }
}

impl RetryBudget {
    pub fn new(settings: &RetrySettings, clock: Arc<dyn Clock>) -> Self {
        RetryBudget {
            percent: u64::from(settings.budget_percent),
            min_retries: u64::from(settings.budget_min_retries),
            clock,
            window: Mutex::new(RollingCounts::new(settings.budget_window())),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RollingCounts> {
        self.window
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Count one call (its first attempt).
    pub fn record_call(&self) {
        let now = self.clock.now();
        self.lock().add(now, 1, 0);
    }

    /// Take one retry from the budget, if it has one.
    pub fn try_spend(&self) -> bool {
        let now = self.clock.now();
        let mut window = self.lock();
        let (calls, retries) = window.sums(now);
        let allowed = (calls * self.percent / 100).max(self.min_retries);
        if retries < allowed {
            window.add(now, 0, 1);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn policy() -> RetryPolicy {
        RetryPolicy::new(RetrySettings {
            max_attempts: 3,
            base_delay_ms: 100,
            max_delay_ms: 300,
            ..RetrySettings::default()
        })
    }

    const PLENTY: Duration = Duration::from_secs(10);

    #[test]
    fn backoff_grows_exponentially_up_to_the_cap_with_equal_jitter() {
        let p = policy();
        assert_eq!(p.backoff(1, 0.0), Duration::from_millis(50));
        let top = p.backoff(1, 0.999_999);
        assert!(top > Duration::from_millis(99) && top < Duration::from_millis(100));
        assert_eq!(p.backoff(2, 0.0), Duration::from_millis(100));
        assert_eq!(p.backoff(2, 0.5), Duration::from_millis(150));
        // 400 ms is capped at 300.
        assert_eq!(p.backoff(3, 0.0), Duration::from_millis(150));
        assert_eq!(p.backoff(30, 1.0), Duration::from_millis(300));
        // Garbage jitter is harmless.
        assert_eq!(p.backoff(1, f64::NAN), Duration::from_millis(50));
    }

    #[test]
    fn jittered_backoffs_spread_within_their_bounds() {
        let p = policy();
        let delays: Vec<Duration> = (0..200).map(|_| p.backoff(2, rand::random())).collect();
        assert!(delays
            .iter()
            .all(|d| *d >= Duration::from_millis(100) && *d <= Duration::from_millis(200)));
        let distinct: std::collections::HashSet<_> = delays.iter().collect();
        assert!(distinct.len() > 100, "jitter spreads the retries");
    }

    #[test]
    fn reads_retry_on_any_transient_failure() {
        let p = policy();
        for f in [
            CallFailure::Connect,
            CallFailure::StaleConnection,
            CallFailure::Reset,
            CallFailure::Timeout,
            CallFailure::Status(502),
            CallFailure::Status(503),
            CallFailure::Status(504),
            CallFailure::Status(500),
        ] {
            assert!(
                matches!(
                    p.decide(1, f, Replay::Safe, PLENTY, 0.0),
                    RetryDecision::Retry { .. }
                ),
                "{f:?}"
            );
        }
        assert_eq!(
            p.decide(1, CallFailure::Status(501), Replay::Safe, PLENTY, 0.0),
            RetryDecision::Stop(StopReason::NotRetryable)
        );
    }

    #[test]
    fn a_tls_failure_is_never_retried_but_counts_against_the_circuit() {
        let p = policy();
        for replay in [Replay::Safe, Replay::Unsafe] {
            assert_eq!(
                p.decide(1, CallFailure::Tls, replay, PLENTY, 0.0),
                RetryDecision::Stop(StopReason::NotRetryable)
            );
        }
        assert!(CallFailure::Tls.counts_against_circuit());
        assert!(!CallFailure::Tls.reached_vendor());
    }

    #[test]
    fn writes_retry_only_when_the_vendor_never_saw_them() {
        let p = policy();
        for f in [CallFailure::Connect, CallFailure::StaleConnection] {
            assert!(matches!(
                p.decide(1, f, Replay::Unsafe, PLENTY, 0.0),
                RetryDecision::Retry { .. }
            ));
        }
        for f in [
            CallFailure::Timeout,
            CallFailure::Reset,
            CallFailure::Status(503),
        ] {
            assert_eq!(
                p.decide(1, f, Replay::Unsafe, PLENTY, 0.0),
                RetryDecision::Stop(StopReason::NotRetryable),
                "a POST that may have reached the vendor is never resent ({f:?})"
            );
        }
    }

    #[test]
    fn methods_map_to_replay_safety() {
        assert_eq!(Replay::for_method(&http::Method::GET), Replay::Safe);
        assert_eq!(Replay::for_method(&http::Method::HEAD), Replay::Safe);
        for m in [
            http::Method::POST,
            http::Method::PUT,
            http::Method::PATCH,
            http::Method::DELETE,
        ] {
            assert_eq!(Replay::for_method(&m), Replay::Unsafe, "{m}");
        }
    }

    #[test]
    fn attempts_deadline_and_switch_are_respected() {
        let p = policy();
        assert_eq!(
            p.decide(3, CallFailure::Timeout, Replay::Safe, PLENTY, 0.0),
            RetryDecision::Stop(StopReason::AttemptsExhausted)
        );
        // First retry backs off 50 ms; it needs 50 + 25 ms left.
        assert_eq!(
            p.decide(
                1,
                CallFailure::Timeout,
                Replay::Safe,
                Duration::from_millis(74),
                0.0
            ),
            RetryDecision::Stop(StopReason::Deadline)
        );
        assert_eq!(
            p.decide(
                1,
                CallFailure::Timeout,
                Replay::Safe,
                Duration::from_millis(75),
                0.0
            ),
            RetryDecision::Retry {
                delay: Duration::from_millis(50)
            }
        );
        let off = RetryPolicy::new(RetrySettings {
            enabled: false,
            ..RetrySettings::default()
        });
        assert_eq!(
            off.decide(1, CallFailure::Connect, Replay::Safe, PLENTY, 0.0),
            RetryDecision::Stop(StopReason::Disabled)
        );
    }

    #[test]
    fn failures_that_count_against_the_circuit() {
        assert!(CallFailure::Connect.counts_against_circuit());
        assert!(CallFailure::Timeout.counts_against_circuit());
        assert!(CallFailure::Reset.counts_against_circuit());
        assert!(CallFailure::Status(500).counts_against_circuit());
        assert!(!CallFailure::Status(404).counts_against_circuit());
    }

    fn budget(percent: u32, min_retries: u32) -> (Arc<ManualClock>, RetryBudget) {
        let clock = Arc::new(ManualClock::new(Duration::from_secs(50)));
        let b = RetryBudget::new(
            &RetrySettings {
                budget_percent: percent,
                budget_min_retries: min_retries,
                budget_window_seconds: 10,
                ..RetrySettings::default()
            },
            clock.clone(),
        );
        (clock, b)
    }

    #[test]
    fn retry_budget_allows_twenty_percent_of_calls() {
        let (_clock, b) = budget(20, 0);
        for _ in 0..100 {
            b.record_call();
        }
        let granted = (0..50).filter(|_| b.try_spend()).count();
        assert_eq!(granted, 20);
    }

    #[test]
    fn retry_budget_has_a_small_minimum_for_quiet_connections() {
        let (_clock, b) = budget(20, 3);
        b.record_call();
        let granted = (0..10).filter(|_| b.try_spend()).count();
        assert_eq!(granted, 3);
    }

    #[test]
    fn retry_budget_refills_as_the_window_rolls() {
        let (clock, b) = budget(20, 0);
        for _ in 0..10 {
            b.record_call();
        }
        assert_eq!((0..5).filter(|_| b.try_spend()).count(), 2);
        clock.advance(Duration::from_secs(10));
        for _ in 0..10 {
            b.record_call();
        }
        assert_eq!((0..5).filter(|_| b.try_spend()).count(), 2);
    }
}
