//! A circuit breaker per connection (per replica): stop calling a vendor that keeps failing,
//! answer `503 vendor_unavailable` with `Retry-After` at once instead, and find out with one
//! probe at a time when it is back.
//!
//! ```text
//!            N failures in a row, or ≥ P % of ≥ M calls in the window
//!   Closed ─────────────────────────────────────────────────────────▶ Open
//!     ▲                                                               │ open_seconds pass
//!     │ probe succeeds                                                ▼
//!     └──────────────────────────────── HalfOpen (one probe at a time)
//!                                         │ probe fails ──▶ Open again
//! ```
//!
//! What counts as a failure is the caller's classification
//! ([`crate::resilience::retry::CallFailure::counts_against_circuit`]): connect errors,
//! resets, timeouts and 5xx. A 4xx (including 429) is a healthy vendor saying no.
//!
//! Every call holds a [`Permit`] and reports its outcome through it. A permit dropped without
//! an outcome (the call was never made: the budget refused it, the client went away) counts
//! for nothing — and if it was the half-open probe, the probe slot is freed for the next
//! caller, so a cancelled probe can never wedge the circuit. Outcomes of calls that started
//! before a transition are ignored (a slow success from before the circuit opened does not
//! close it).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::settings::CircuitBreakerSettings;
use super::window::RollingCounts;
use crate::clock::Clock;

/// `Retry-After` for callers refused while a half-open probe is out: its answer is due
/// within one call's time.
pub const PROBE_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The state of a circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CircuitState {
    Closed,
    Open,
    HalfOpen,
}

impl CircuitState {
    /// The `state` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
        }
    }

    pub const ALL: [CircuitState; 3] = [
        CircuitState::Closed,
        CircuitState::Open,
        CircuitState::HalfOpen,
    ];
}

/// Why a circuit changed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransitionCause {
    ConsecutiveFailures,
    FailureRate,
    OpenElapsed,
    ProbeSucceeded,
    ProbeFailed,
}

impl TransitionCause {
    pub fn as_str(self) -> &'static str {
        match self {
            TransitionCause::ConsecutiveFailures => "consecutive_failures",
            TransitionCause::FailureRate => "failure_rate",
            TransitionCause::OpenElapsed => "open_elapsed",
            TransitionCause::ProbeSucceeded => "probe_succeeded",
            TransitionCause::ProbeFailed => "probe_failed",
        }
    }
}

/// One state change, reported to the breaker's hook (metrics, logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: CircuitState,
    pub to: CircuitState,
    pub cause: TransitionCause,
}

/// Called after every transition, outside the breaker's lock.
pub type TransitionHook = Box<dyn Fn(&Transition) + Send + Sync>;

/// The call may not be made; answer 503 `vendor_unavailable` with this `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    pub retry_after: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Closed,
    Open { until: Duration },
    HalfOpen { probing: bool },
}

struct Inner {
    phase: Phase,
    /// Bumped on every transition; permits from an older generation report nothing.
    generation: u64,
    consecutive_failures: u32,
    /// total = calls, marked = failures, while closed.
    window: RollingCounts,
}

pub struct CircuitBreaker {
    settings: CircuitBreakerSettings,
    clock: Arc<dyn Clock>,
    inner: Mutex<Inner>,
    hook: Option<TransitionHook>,
}

impl std::fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

impl CircuitBreaker {
    pub fn new(settings: CircuitBreakerSettings, clock: Arc<dyn Clock>) -> Self {
        CircuitBreaker {
            inner: Mutex::new(Inner {
                phase: Phase::Closed,
                generation: 0,
                consecutive_failures: 0,
                window: RollingCounts::new(settings.window()),
            }),
            settings,
            clock,
            hook: None,
        }
    }

    pub fn with_hook(mut self, hook: TransitionHook) -> Self {
        self.hook = Some(hook);
        self
    }

    pub fn settings(&self) -> &CircuitBreakerSettings {
        &self.settings
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The state as a caller would meet it now: an open circuit whose open time has passed
    /// reports `HalfOpen` (the next call is its probe), so a gauge read between calls is
    /// truthful.
    pub fn state(&self) -> CircuitState {
        match self.lock().phase {
            Phase::Closed => CircuitState::Closed,
            Phase::Open { until } if self.clock.now() < until => CircuitState::Open,
            Phase::Open { .. } | Phase::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }

    /// Ask to make one vendor call. Closed: yes. Open: no, with the time left. Half-open:
    /// yes to exactly one caller at a time (the probe), no to the others.
    pub fn try_acquire(self: &Arc<Self>) -> Result<Permit, Rejected> {
        if !self.settings.enabled {
            return Ok(self.permit(u64::MAX, false));
        }
        let now = self.clock.now();
        let mut transition = None;
        let result = {
            let mut inner = self.lock();
            match inner.phase {
                Phase::Closed => Ok(self.permit(inner.generation, false)),
                Phase::Open { until } if now < until => Err(Rejected {
                    retry_after: until - now,
                }),
                Phase::Open { .. } => {
                    inner.phase = Phase::HalfOpen { probing: true };
                    inner.generation += 1;
                    transition = Some(Transition {
                        from: CircuitState::Open,
                        to: CircuitState::HalfOpen,
                        cause: TransitionCause::OpenElapsed,
                    });
                    Ok(self.permit(inner.generation, true))
                }
                Phase::HalfOpen { probing: true } => Err(Rejected {
                    retry_after: PROBE_RETRY_AFTER,
                }),
                Phase::HalfOpen { probing: false } => {
                    inner.phase = Phase::HalfOpen { probing: true };
                    Ok(self.permit(inner.generation, true))
                }
            }
        };
        self.notify(transition);
        result
    }

    fn permit(self: &Arc<Self>, generation: u64, probe: bool) -> Permit {
        Permit {
            breaker: self.clone(),
            generation,
            probe,
            reported: false,
        }
    }

    fn report(&self, generation: u64, probe: bool, failed: bool) {
        if !self.settings.enabled {
            return;
        }
        let now = self.clock.now();
        let mut transition = None;
        {
            let mut inner = self.lock();
            if inner.generation != generation {
                return;
            }
            match inner.phase {
                Phase::Closed => {
                    inner.window.add(now, 1, u64::from(failed));
                    if !failed {
                        inner.consecutive_failures = 0;
                    } else {
                        inner.consecutive_failures += 1;
                        let (calls, failures) = inner.window.sums(now);
                        let cause = if inner.consecutive_failures
                            >= self.settings.consecutive_failures
                        {
                            Some(TransitionCause::ConsecutiveFailures)
                        } else if calls >= u64::from(self.settings.minimum_requests)
                            && failures * 100 >= calls * u64::from(self.settings.failure_percent)
                        {
                            Some(TransitionCause::FailureRate)
                        } else {
                            None
                        };
                        if let Some(cause) = cause {
                            self.open(&mut inner, now);
                            transition = Some(Transition {
                                from: CircuitState::Closed,
                                to: CircuitState::Open,
                                cause,
                            });
                        }
                    }
                }
                Phase::HalfOpen { .. } if probe => {
                    if failed {
                        self.open(&mut inner, now);
                        transition = Some(Transition {
                            from: CircuitState::HalfOpen,
                            to: CircuitState::Open,
                            cause: TransitionCause::ProbeFailed,
                        });
                    } else {
                        inner.phase = Phase::Closed;
                        inner.generation += 1;
                        inner.consecutive_failures = 0;
                        inner.window.clear();
                        transition = Some(Transition {
                            from: CircuitState::HalfOpen,
                            to: CircuitState::Closed,
                            cause: TransitionCause::ProbeSucceeded,
                        });
                    }
                }
                // Not reachable within one generation; nothing to count.
                Phase::HalfOpen { .. } | Phase::Open { .. } => {}
            }
        }
        self.notify(transition);
    }

    fn open(&self, inner: &mut Inner, now: Duration) {
        inner.phase = Phase::Open {
            until: now + self.settings.open_duration(),
        };
        inner.generation += 1;
        inner.consecutive_failures = 0;
        inner.window.clear();
    }

    /// A probe permit dropped without an outcome: let the next caller probe.
    fn abandon_probe(&self, generation: u64) {
        let mut inner = self.lock();
        if inner.generation == generation && inner.phase == (Phase::HalfOpen { probing: true }) {
            inner.phase = Phase::HalfOpen { probing: false };
        }
    }

    fn notify(&self, transition: Option<Transition>) {
        if let (Some(t), Some(hook)) = (transition, &self.hook) {
            hook(&t);
        }
    }
}

/// Leave to make one vendor call; report how it went with [`Permit::success`] or
/// [`Permit::failure`], or drop it if the call was not made.
#[must_use = "report the call's outcome, or drop the permit if no call was made"]
pub struct Permit {
    breaker: Arc<CircuitBreaker>,
    generation: u64,
    probe: bool,
    reported: bool,
}

impl std::fmt::Debug for Permit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Permit")
            .field("generation", &self.generation)
            .field("probe", &self.probe)
            .finish()
    }
}

impl Permit {
    /// Whether this call is the half-open probe.
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    /// The vendor answered (any 2xx–4xx): it is up.
    pub fn success(mut self) {
        self.reported = true;
        self.breaker.report(self.generation, self.probe, false);
    }

    /// The call failed in a way that counts against the circuit (connect error, reset,
    /// timeout, 5xx).
    pub fn failure(mut self) {
        self.reported = true;
        self.breaker.report(self.generation, self.probe, true);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.reported && self.probe {
            self.breaker.abandon_probe(self.generation);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn settings() -> CircuitBreakerSettings {
        CircuitBreakerSettings {
            enabled: true,
            consecutive_failures: 3,
            failure_percent: 50,
            window_seconds: 10,
            minimum_requests: 10,
            open_seconds: 5,
        }
    }

    type Log = Arc<Mutex<Vec<Transition>>>;

    fn breaker(settings: CircuitBreakerSettings) -> (Arc<ManualClock>, Arc<CircuitBreaker>, Log) {
        let clock = Arc::new(ManualClock::new(Duration::from_secs(100)));
        let log: Log = Arc::default();
        let sink = log.clone();
        let b = CircuitBreaker::new(settings, clock.clone())
            .with_hook(Box::new(move |t| sink.lock().unwrap().push(*t)));
        (clock, Arc::new(b), log)
    }

    fn fail(b: &Arc<CircuitBreaker>) {
        b.try_acquire().unwrap().failure();
    }

    fn succeed(b: &Arc<CircuitBreaker>) {
        b.try_acquire().unwrap().success();
    }

    #[test]
    fn opens_after_consecutive_failures_and_refuses_with_the_time_left() {
        let (clock, b, log) = breaker(settings());
        fail(&b);
        fail(&b);
        assert_eq!(b.state(), CircuitState::Closed);
        fail(&b);
        assert_eq!(b.state(), CircuitState::Open);
        assert_eq!(
            log.lock().unwrap().as_slice(),
            [Transition {
                from: CircuitState::Closed,
                to: CircuitState::Open,
                cause: TransitionCause::ConsecutiveFailures
            }]
        );
        clock.advance(Duration::from_secs(2));
        assert_eq!(
            b.try_acquire().unwrap_err(),
            Rejected {
                retry_after: Duration::from_secs(3)
            }
        );
    }

    #[test]
    fn a_success_resets_the_consecutive_count() {
        let (_clock, b, _log) = breaker(CircuitBreakerSettings {
            minimum_requests: 1_000,
            ..settings()
        });
        for _ in 0..5 {
            fail(&b);
            fail(&b);
            succeed(&b);
        }
        assert_eq!(b.state(), CircuitState::Closed);
        fail(&b);
        fail(&b);
        fail(&b);
        assert_eq!(b.state(), CircuitState::Open);
    }

    #[test]
    fn opens_on_the_failure_rate_once_the_window_has_enough_calls() {
        let (clock, b, log) = breaker(CircuitBreakerSettings {
            consecutive_failures: 100,
            ..settings()
        });
        // Alternate: 50 % failures, never 2 in a row. 9 calls: below the minimum.
        for i in 0..9 {
            if i % 2 == 0 {
                fail(&b);
            } else {
                succeed(&b);
            }
            clock.advance(Duration::from_millis(100));
        }
        assert_eq!(b.state(), CircuitState::Closed, "below minimum_requests");
        succeed(&b); // 10 calls, 5 failed: a failure must be what trips it
        assert_eq!(b.state(), CircuitState::Closed);
        fail(&b); // 11 calls, 6 failed ≥ 50 %
        assert_eq!(b.state(), CircuitState::Open);
        assert_eq!(log.lock().unwrap()[0].cause, TransitionCause::FailureRate);
    }

    #[test]
    fn old_failures_leave_the_window() {
        // 9 calls, 4 failed (below the minimum), then one more failure: with the old calls
        // still in the window that is 5 of 10 = 50 % and opens; after the window has rolled
        // past them it is 1 of 1, below the minimum.
        let rate_only = CircuitBreakerSettings {
            consecutive_failures: 100,
            ..settings()
        };
        for (gap, expected) in [
            (Duration::from_secs(1), CircuitState::Open),
            (Duration::from_secs(11), CircuitState::Closed),
        ] {
            let (clock, b, _log) = breaker(rate_only.clone());
            for _ in 0..4 {
                fail(&b);
                succeed(&b);
            }
            succeed(&b);
            clock.advance(gap);
            fail(&b);
            assert_eq!(b.state(), expected, "after {gap:?}");
        }
    }

    #[test]
    fn half_open_probe_success_closes() {
        let (clock, b, log) = breaker(settings());
        for _ in 0..3 {
            fail(&b);
        }
        clock.advance(Duration::from_secs(5));
        assert_eq!(b.state(), CircuitState::HalfOpen, "open time has passed");
        let probe = b.try_acquire().unwrap();
        assert!(probe.is_probe());
        assert_eq!(
            b.try_acquire().unwrap_err().retry_after,
            PROBE_RETRY_AFTER,
            "one probe at a time"
        );
        probe.success();
        assert_eq!(b.state(), CircuitState::Closed);
        let causes: Vec<_> = log.lock().unwrap().iter().map(|t| t.cause).collect();
        assert_eq!(
            causes,
            [
                TransitionCause::ConsecutiveFailures,
                TransitionCause::OpenElapsed,
                TransitionCause::ProbeSucceeded
            ]
        );
        // Closed again with a clean slate: two failures do not reopen it.
        fail(&b);
        fail(&b);
        assert_eq!(b.state(), CircuitState::Closed);
    }

    #[test]
    fn half_open_probe_failure_reopens_for_another_period() {
        let (clock, b, _log) = breaker(settings());
        for _ in 0..3 {
            fail(&b);
        }
        clock.advance(Duration::from_secs(5));
        b.try_acquire().unwrap().failure();
        assert_eq!(b.state(), CircuitState::Open);
        assert_eq!(
            b.try_acquire().unwrap_err().retry_after,
            Duration::from_secs(5)
        );
    }

    #[test]
    fn a_dropped_probe_frees_the_probe_slot() {
        let (clock, b, _log) = breaker(settings());
        for _ in 0..3 {
            fail(&b);
        }
        clock.advance(Duration::from_secs(5));
        let probe = b.try_acquire().unwrap();
        drop(probe); // e.g. the vendor budget refused the call
        let probe = b.try_acquire().expect("the next caller may probe");
        assert!(probe.is_probe());
        probe.success();
        assert_eq!(b.state(), CircuitState::Closed);
    }

    #[test]
    fn late_outcomes_from_before_a_transition_are_ignored() {
        let (clock, b, _log) = breaker(settings());
        let slow = b.try_acquire().unwrap();
        for _ in 0..3 {
            fail(&b);
        }
        // The slow call started while closed; its success must not close the open circuit.
        slow.success();
        assert_eq!(b.state(), CircuitState::Open);
        clock.advance(Duration::from_secs(5));
        let probe = b.try_acquire().unwrap();
        let late = b.try_acquire();
        assert!(late.is_err());
        probe.success();
        assert_eq!(b.state(), CircuitState::Closed);
    }

    #[test]
    fn client_errors_do_not_open_the_circuit() {
        // A 4xx is reported as success by the caller; many of them keep it closed.
        let (_clock, b, _log) = breaker(settings());
        for _ in 0..50 {
            succeed(&b);
        }
        assert_eq!(b.state(), CircuitState::Closed);
    }

    #[test]
    fn a_disabled_breaker_never_opens() {
        let (_clock, b, log) = breaker(CircuitBreakerSettings {
            enabled: false,
            ..settings()
        });
        for _ in 0..20 {
            fail(&b);
        }
        assert_eq!(b.state(), CircuitState::Closed);
        assert!(log.lock().unwrap().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn half_open_admits_exactly_one_probe_among_concurrent_callers() {
        let (clock, b, _log) = breaker(settings());
        for _ in 0..3 {
            fail(&b);
        }
        clock.advance(Duration::from_secs(5));
        let barrier = Arc::new(tokio::sync::Barrier::new(64));
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let b = b.clone();
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    // Hold the permit (if any) past the others' attempts.
                    let permit = b.try_acquire();
                    let admitted = permit.is_ok();
                    tokio::task::yield_now().await;
                    (admitted, permit)
                })
            })
            .collect();
        let mut permits = Vec::new();
        for t in tasks {
            let (admitted, permit) = t.await.unwrap();
            if admitted {
                permits.push(permit.unwrap());
            }
        }
        assert_eq!(permits.len(), 1, "exactly one probe");
        assert!(permits[0].is_probe());
    }
}
