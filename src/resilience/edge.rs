//! One vendor call through the edge: `pause → breaker → vendor budget → call ⟲ retry`
//! (docs/architecture.md, "Wave 2 seams"), as one function that `CallContext::call` wraps around
//! the pooled client.
//!
//! Per attempt:
//! 1. **Pause** — the connection is paused by a vendor 429: refuse, no call.
//! 2. **Breaker** — the circuit is open (or a probe is out): refuse, no call.
//! 3. **Vendor budget** — over budget: wait for a reserved slot (up to `max_wait_ms`, and
//!    never past the deadline), or refuse, no call.
//! 4. **Call** — with the time left until the deadline (the endpoint timeout, for all
//!    attempts and backoffs together).
//! 5. **Outcome** — reported to the breaker; a 429 pauses the connection; a failure may be
//!    retried ([`super::retry`]), after a backoff, if the retry budget allows.
//!
//! A refusal before the *first* attempt is returned as a [`Refusal`] (the caller answers
//! 503/429 with `Retry-After`, no vendor call made). A refusal before a *retry* returns the
//! failure that would have been retried: it is what really happened to this request.
//!
//! The shared state can fail (a Redis backend down): the pause check and the budget then
//! let the call through (counted in [`EdgeReport::state_errors`]), because refusing every
//! call over a state outage would turn it into a full outage. Idempotency, which must not
//! fail open, is not handled here.

use std::future::Future;
use std::time::Duration;

use super::breaker::Permit;
use super::retry::{CallFailure, Replay, RetryDecision, StopReason, MIN_ATTEMPT_TIME};
use super::ConnectionGuards;
use crate::clock::Clock;
use crate::state::{Admission, LimitKey, StateStore};

/// What one attempt produced, as the edge needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The vendor gave a final answer (2xx–4xx other than 429).
    Answered,
    /// The vendor said 429; `retry_after` is its parsed `Retry-After`, if usable.
    RateLimited { retry_after: Option<Duration> },
    /// No usable answer; maybe retried.
    Failed(CallFailure),
}

/// The edge answered without calling the vendor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 503 `vendor_unavailable`.
    CircuitOpen { retry_after: Duration },
    /// 429 `vendor_rate_limited`: the vendor asked us to pause.
    Paused { retry_after: Duration },
    /// 429 `vendor_rate_limited`: the connection's own budget is spent.
    BudgetExhausted { retry_after: Duration },
}

impl Refusal {
    pub fn retry_after(&self) -> Duration {
        match self {
            Refusal::CircuitOpen { retry_after }
            | Refusal::Paused { retry_after }
            | Refusal::BudgetExhausted { retry_after } => *retry_after,
        }
    }

    /// The `reason` label of `switchboard_vendor_calls_refused_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::CircuitOpen { .. } => "circuit_open",
            Refusal::Paused { .. } => "paused",
            Refusal::BudgetExhausted { .. } => "budget_exhausted",
        }
    }
}

/// What happened inside one [`Edge::run`], for metrics and the access log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EdgeReport {
    /// Vendor calls made.
    pub attempts: u32,
    /// One entry per retry made: its [`CallFailure::reason`].
    pub retries: Vec<&'static str>,
    /// Why the last failure was not retried (`None` when the last attempt was not a
    /// failure).
    pub stopped: Option<StopReason>,
    /// The refusal that stopped a retry, when [`StopReason::Refused`].
    pub refused_retry: Option<Refusal>,
    /// Time spent waiting for reserved vendor-budget slots.
    pub budget_wait: Duration,
    /// Number of attempts that waited for a budget slot.
    pub budget_waits: u32,
    /// The pause in force after a vendor 429 in this call.
    pub paused: Option<Duration>,
    /// Calls to the shared state that failed (the edge let the call through).
    pub state_errors: u32,
}

/// The edge of one connection for one call.
pub struct Edge<'a> {
    state: &'a dyn StateStore,
    guards: &'a ConnectionGuards,
    clock: &'a dyn Clock,
    jitter: fn() -> f64,
}

fn random_jitter() -> f64 {
    rand::random::<f64>()
}

impl<'a> Edge<'a> {
    pub fn new(
        state: &'a dyn StateStore,
        guards: &'a ConnectionGuards,
        clock: &'a dyn Clock,
    ) -> Self {
        Edge {
            state,
            guards,
            clock,
            jitter: random_jitter,
        }
    }

    /// Replace the backoff's random source (tests).
    pub fn with_jitter(mut self, jitter: fn() -> f64) -> Self {
        self.jitter = jitter;
        self
    }

    /// Admit one call that cannot run inside [`Edge::run`] — a passthrough call streamed
    /// across pingora's phases: the same pause, breaker and vendor-budget checks as an
    /// attempt of `run`, no retries. The caller reports the outcome on the returned permit
    /// ([`crate::resilience::vendor_edge::VendorEdge::finish`]); a permit dropped unreported
    /// (the client went away) frees a half-open probe slot.
    pub async fn admit_once(
        &self,
        timeout: Duration,
        report: &mut EdgeReport,
    ) -> Result<Permit, Refusal> {
        let guards = self.guards;
        match self.state.paused_for(&guards.key).await {
            Ok(Some(retry_after)) => return Err(Refusal::Paused { retry_after }),
            Ok(None) => {}
            Err(e) => {
                report.state_errors += 1;
                tracing::warn!(error = %e, "pause check failed; calling the vendor anyway");
            }
        }
        let permit = guards
            .breaker
            .try_acquire()
            .map_err(|rejected| Refusal::CircuitOpen {
                retry_after: rejected.retry_after,
            })?;
        if let Some(budget) = &guards.settings.vendor_budget {
            let max_wait = budget
                .max_wait()
                .min(timeout.saturating_sub(MIN_ATTEMPT_TIME));
            let key = LimitKey::VendorBudget(guards.key.clone());
            match self.state.acquire(&key, budget.limit(), max_wait).await {
                Ok(Admission::Allowed { .. }) => {}
                Ok(Admission::Reserved { wait, .. }) => {
                    report.budget_wait += wait;
                    report.budget_waits += 1;
                    self.clock.sleep(wait).await;
                }
                Ok(Admission::Refused { retry_after, .. }) => {
                    drop(permit);
                    return Err(Refusal::BudgetExhausted { retry_after });
                }
                Err(e) => {
                    report.state_errors += 1;
                    tracing::warn!(error = %e, "vendor budget check failed; calling the vendor anyway");
                }
            }
        }
        report.attempts += 1;
        Ok(permit)
    }

    /// Run one vendor call with its retries. `attempt` makes one call, given the time left
    /// until the deadline (use it as that attempt's timeout); `classify` says what its result
    /// means. Returns the last attempt's result, or a refusal when no call was made.
    pub async fn run<R, F, Fut, C>(
        &self,
        replay: Replay,
        timeout: Duration,
        mut attempt: F,
        classify: C,
        report: &mut EdgeReport,
    ) -> Result<R, Refusal>
    where
        F: FnMut(Duration) -> Fut,
        Fut: Future<Output = R>,
        C: Fn(&R) -> AttemptOutcome,
    {
        let guards = self.guards;
        let deadline = self.clock.now() + timeout;
        let time_left = || deadline.saturating_sub(self.clock.now());
        guards.retry_budget.record_call();
        let mut last: Option<R> = None;
        // Before a retry, a refusal returns the failure being retried; before the first
        // attempt, it is the answer.
        let refuse = |refusal: Refusal, last: Option<R>, report: &mut EdgeReport| match last {
            Some(result) => {
                report.stopped = Some(StopReason::Refused);
                report.refused_retry = Some(refusal);
                Ok(result)
            }
            None => Err(refusal),
        };
        loop {
            match self.state.paused_for(&guards.key).await {
                Ok(Some(retry_after)) => {
                    return refuse(Refusal::Paused { retry_after }, last, report)
                }
                Ok(None) => {}
                Err(e) => {
                    report.state_errors += 1;
                    tracing::warn!(error = %e, "pause check failed; calling the vendor anyway");
                }
            }
            let permit = match guards.breaker.try_acquire() {
                Ok(permit) => permit,
                Err(rejected) => {
                    return refuse(
                        Refusal::CircuitOpen {
                            retry_after: rejected.retry_after,
                        },
                        last,
                        report,
                    )
                }
            };
            if let Some(budget) = &guards.settings.vendor_budget {
                let max_wait = budget
                    .max_wait()
                    .min(time_left().saturating_sub(MIN_ATTEMPT_TIME));
                let key = LimitKey::VendorBudget(guards.key.clone());
                match self.state.acquire(&key, budget.limit(), max_wait).await {
                    Ok(Admission::Allowed { .. }) => {}
                    Ok(Admission::Reserved { wait, .. }) => {
                        report.budget_wait += wait;
                        report.budget_waits += 1;
                        self.clock.sleep(wait).await;
                    }
                    Ok(Admission::Refused { retry_after, .. }) => {
                        // No call: the permit goes back unused (a probe slot is freed).
                        drop(permit);
                        return refuse(Refusal::BudgetExhausted { retry_after }, last, report);
                    }
                    Err(e) => {
                        report.state_errors += 1;
                        tracing::warn!(error = %e, "vendor budget check failed; calling the vendor anyway");
                    }
                }
            }

            report.attempts += 1;
            let result = attempt(time_left()).await;
            let failure = match classify(&result) {
                AttemptOutcome::Answered => {
                    permit.success();
                    report.stopped = None;
                    return Ok(result);
                }
                AttemptOutcome::RateLimited { retry_after } => {
                    permit.success();
                    report.stopped = None;
                    if let Some(pause) = guards.settings.vendor_pause.pause_for(retry_after) {
                        match self.state.pause(&guards.key, pause).await {
                            Ok(in_force) => report.paused = Some(in_force),
                            Err(e) => {
                                report.state_errors += 1;
                                tracing::warn!(error = %e, "could not record the vendor's pause");
                            }
                        }
                    }
                    return Ok(result);
                }
                AttemptOutcome::Failed(failure) => failure,
            };
            if failure.counts_against_circuit() {
                permit.failure();
            } else {
                permit.success();
            }
            let decision = guards.retry.decide(
                report.attempts,
                failure,
                replay,
                time_left(),
                (self.jitter)(),
            );
            match decision {
                RetryDecision::Retry { delay } if guards.retry_budget.try_spend() => {
                    report.retries.push(failure.reason());
                    self.clock.sleep(delay).await;
                    last = Some(result);
                }
                RetryDecision::Retry { .. } => {
                    report.stopped = Some(StopReason::RetryBudget);
                    return Ok(result);
                }
                RetryDecision::Stop(reason) => {
                    report.stopped = Some(reason);
                    return Ok(result);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Arc;

    use async_trait::async_trait;

    use super::*;
    use crate::api::operation::Vendor;
    use crate::clock::ManualClock;
    use crate::resilience::settings::{
        CircuitBreakerSettings, ResilienceSettings, RetrySettings, VendorBudgetSettings,
    };
    use crate::resilience::GuardRegistry;
    use crate::state::{
        Begin, Completion, ConnectionKey, Lease, Limit, MemoryBounds, MemoryStore, RecordKey,
        RequestFingerprint, StateError, StoredAnswer,
    };

    const TIMEOUT: Duration = Duration::from_secs(10);

    struct Fixture {
        clock: Arc<ManualClock>,
        store: MemoryStore,
        registry: GuardRegistry,
        settings: ResilienceSettings,
    }

    impl Fixture {
        fn new(settings: ResilienceSettings) -> Self {
            let clock = Arc::new(ManualClock::new(Duration::from_secs(1_000)));
            Fixture {
                store: MemoryStore::with_clock(clock.clone(), MemoryBounds::default()),
                registry: GuardRegistry::new(clock.clone()),
                clock,
                settings,
            }
        }

        fn guards(&self, connection: &str) -> Arc<ConnectionGuards> {
            self.registry.get(
                &ConnectionKey::new("acme", connection),
                Vendor::Libredesk,
                &self.settings,
            )
        }

        /// Run one call on `connection` whose attempts produce `script` in order (each
        /// taking `each` of clock time). Returns the result, the report and the number of
        /// vendor calls made.
        async fn run(
            &self,
            connection: &str,
            replay: Replay,
            script: &[AttemptOutcome],
            each: Duration,
        ) -> (Result<AttemptOutcome, Refusal>, EdgeReport, usize) {
            let guards = self.guards(connection);
            let edge = Edge::new(&self.store, &guards, &*self.clock).with_jitter(|| 0.0);
            let mut script: VecDeque<AttemptOutcome> = script.iter().copied().collect();
            let mut calls = 0;
            let mut report = EdgeReport::default();
            let clock = self.clock.clone();
            let result = edge
                .run(
                    replay,
                    TIMEOUT,
                    |_time_left| {
                        calls += 1;
                        clock.advance(each);
                        let next = script.pop_front().expect("the script ran out");
                        async move { next }
                    },
                    |r| *r,
                    &mut report,
                )
                .await;
            (result, report, calls)
        }
    }

    fn quick_retries() -> ResilienceSettings {
        ResilienceSettings {
            retry: RetrySettings {
                base_delay_ms: 50,
                max_delay_ms: 200,
                ..RetrySettings::default()
            },
            ..ResilienceSettings::default()
        }
    }

    const OK: AttemptOutcome = AttemptOutcome::Answered;
    const RESET: AttemptOutcome = AttemptOutcome::Failed(CallFailure::Reset);
    const TIMEOUT_FAIL: AttemptOutcome = AttemptOutcome::Failed(CallFailure::Timeout);
    const CONNECT: AttemptOutcome = AttemptOutcome::Failed(CallFailure::Connect);
    const E503: AttemptOutcome = AttemptOutcome::Failed(CallFailure::Status(503));

    #[tokio::test]
    async fn a_read_is_retried_after_one_reset_and_succeeds() {
        let f = Fixture::new(quick_retries());
        let before = f.clock.now();
        let (result, report, calls) = f
            .run("desk", Replay::Safe, &[RESET, OK], Duration::ZERO)
            .await;
        assert_eq!(result, Ok(OK));
        assert_eq!(calls, 2);
        assert_eq!(report.retries, ["reset"]);
        assert_eq!(report.stopped, None);
        // Backed off half the base delay (jitter 0) before the retry.
        assert_eq!(f.clock.now() - before, Duration::from_millis(25));
    }

    #[tokio::test]
    async fn a_post_is_not_resent_after_a_timeout() {
        let f = Fixture::new(quick_retries());
        let (result, report, calls) = f
            .run("desk", Replay::Unsafe, &[TIMEOUT_FAIL], Duration::ZERO)
            .await;
        assert_eq!(result, Ok(TIMEOUT_FAIL));
        assert_eq!(calls, 1);
        assert_eq!(report.stopped, Some(StopReason::NotRetryable));
        let (_, _, calls) = f.run("desk", Replay::Unsafe, &[E503], Duration::ZERO).await;
        assert_eq!(calls, 1, "a 5xx to a POST is not resent either");
    }

    #[tokio::test]
    async fn a_post_is_retried_when_it_never_reached_the_vendor() {
        let f = Fixture::new(quick_retries());
        let (result, report, calls) = f
            .run("desk", Replay::Unsafe, &[CONNECT, OK], Duration::ZERO)
            .await;
        assert_eq!(result, Ok(OK));
        assert_eq!(calls, 2);
        assert_eq!(report.retries, ["connect_error"]);
    }

    #[tokio::test]
    async fn retries_stop_at_max_attempts() {
        let f = Fixture::new(quick_retries());
        let (result, report, calls) = f
            .run("desk", Replay::Safe, &[E503, E503, E503], Duration::ZERO)
            .await;
        assert_eq!(result, Ok(E503));
        assert_eq!(calls, 3);
        assert_eq!(report.retries.len(), 2);
        assert_eq!(report.stopped, Some(StopReason::AttemptsExhausted));
    }

    #[tokio::test]
    async fn retries_and_backoff_stay_inside_the_endpoint_timeout() {
        let f = Fixture::new(quick_retries());
        let guards = f.guards("desk");
        let edge = Edge::new(&f.store, &guards, &*f.clock).with_jitter(|| 0.0);
        let mut seen = Vec::new();
        let mut report = EdgeReport::default();
        let clock = f.clock.clone();
        let result = edge
            .run(
                Replay::Safe,
                Duration::from_millis(100),
                |time_left| {
                    seen.push(time_left);
                    // Each attempt fails after 40 ms.
                    clock.advance(Duration::from_millis(40));
                    async { TIMEOUT_FAIL }
                },
                |r| *r,
                &mut report,
            )
            .await;
        assert_eq!(result, Ok(TIMEOUT_FAIL));
        // 100 ms: attempt (40) + backoff (25) leaves 35 ms for the second attempt; after it
        // (−5 ms) there is no room for another backoff + attempt.
        assert_eq!(
            seen,
            [Duration::from_millis(100), Duration::from_millis(35)]
        );
        assert_eq!(report.stopped, Some(StopReason::Deadline));
    }

    #[tokio::test]
    async fn the_retry_budget_caps_retries_per_connection() {
        let mut settings = quick_retries();
        settings.retry.budget_percent = 0;
        settings.retry.budget_min_retries = 1;
        let f = Fixture::new(settings);
        let (_, report, calls) = f
            .run("desk", Replay::Safe, &[RESET, OK], Duration::ZERO)
            .await;
        assert_eq!((calls, report.retries.len()), (2, 1));
        let (result, report, calls) = f.run("desk", Replay::Safe, &[RESET], Duration::ZERO).await;
        assert_eq!(result, Ok(RESET));
        assert_eq!(calls, 1);
        assert_eq!(report.stopped, Some(StopReason::RetryBudget));
        // Another connection has its own budget.
        let (_, report, _) = f
            .run("other", Replay::Safe, &[RESET, OK], Duration::ZERO)
            .await;
        assert_eq!(report.retries.len(), 1);
    }

    #[tokio::test]
    async fn the_breaker_opens_answers_without_a_call_then_half_opens_and_closes() {
        let mut settings = quick_retries();
        settings.retry.enabled = false;
        settings.circuit_breaker = CircuitBreakerSettings {
            consecutive_failures: 3,
            open_seconds: 5,
            ..CircuitBreakerSettings::default()
        };
        let f = Fixture::new(settings);
        for _ in 0..3 {
            let (result, _, calls) = f.run("desk", Replay::Safe, &[E503], Duration::ZERO).await;
            assert_eq!((result, calls), (Ok(E503), 1));
        }
        let (result, report, calls) = f.run("desk", Replay::Safe, &[], Duration::ZERO).await;
        assert_eq!(
            result,
            Err(Refusal::CircuitOpen {
                retry_after: Duration::from_secs(5)
            })
        );
        assert_eq!(
            (calls, report.attempts),
            (0, 0),
            "no vendor call while open"
        );
        f.clock.advance(Duration::from_secs(5));
        let (result, _, calls) = f.run("desk", Replay::Safe, &[OK], Duration::ZERO).await;
        assert_eq!((result, calls), (Ok(OK), 1), "the probe goes through");
        let (_, _, calls) = f.run("desk", Replay::Safe, &[OK], Duration::ZERO).await;
        assert_eq!(calls, 1, "closed again");
    }

    #[tokio::test]
    async fn client_errors_and_429_keep_the_circuit_closed() {
        let mut settings = quick_retries();
        settings.circuit_breaker.consecutive_failures = 1;
        settings.vendor_pause.enabled = false;
        let f = Fixture::new(settings);
        let limited = AttemptOutcome::RateLimited { retry_after: None };
        let (result, report, _) = f
            .run("desk", Replay::Safe, &[limited], Duration::ZERO)
            .await;
        assert_eq!(result, Ok(limited));
        assert_eq!(report.paused, None, "pauses are off here");
        let (result, _, _) = f.run("desk", Replay::Safe, &[OK], Duration::ZERO).await;
        assert_eq!(result, Ok(OK));
        let (_, _, calls) = f.run("desk", Replay::Safe, &[OK], Duration::ZERO).await;
        assert_eq!(calls, 1);
        assert_eq!(
            f.guards("desk").breaker.state(),
            crate::resilience::breaker::CircuitState::Closed
        );
    }

    #[tokio::test]
    async fn a_vendor_429_pauses_every_call_of_that_connection_until_retry_after() {
        let f = Fixture::new(quick_retries());
        let limited = AttemptOutcome::RateLimited {
            retry_after: Some(Duration::from_secs(2)),
        };
        let (result, report, _) = f
            .run("desk", Replay::Safe, &[limited], Duration::ZERO)
            .await;
        assert_eq!(
            result,
            Ok(limited),
            "the 429 itself is the answer, not retried"
        );
        assert_eq!(report.paused, Some(Duration::from_secs(2)));
        f.clock.advance(Duration::from_millis(1_500));
        let (result, _, calls) = f.run("desk", Replay::Unsafe, &[], Duration::ZERO).await;
        assert_eq!(
            result,
            Err(Refusal::Paused {
                retry_after: Duration::from_millis(500)
            })
        );
        assert_eq!(calls, 0);
        let (_, _, calls) = f.run("other", Replay::Safe, &[OK], Duration::ZERO).await;
        assert_eq!(calls, 1, "other connections are not paused");
        f.clock.advance(Duration::from_millis(500));
        let (_, _, calls) = f.run("desk", Replay::Safe, &[OK], Duration::ZERO).await;
        assert_eq!(calls, 1, "the pause is over");
    }

    fn with_budget(max_wait_ms: u64) -> ResilienceSettings {
        ResilienceSettings {
            vendor_budget: Some(VendorBudgetSettings {
                enabled: true,
                requests_per_second: 5.0,
                burst: Some(1),
                max_wait_ms,
            }),
            ..quick_retries()
        }
    }

    #[tokio::test]
    async fn over_budget_a_call_waits_for_its_slot() {
        let f = Fixture::new(with_budget(1_000));
        let (_, report, _) = f.run("desk", Replay::Safe, &[OK], Duration::ZERO).await;
        assert_eq!(report.budget_waits, 0);
        let before = f.clock.now();
        let (result, report, calls) = f.run("desk", Replay::Safe, &[OK], Duration::ZERO).await;
        assert_eq!((result, calls), (Ok(OK), 1));
        assert_eq!(report.budget_wait, Duration::from_millis(200));
        assert_eq!(f.clock.now() - before, Duration::from_millis(200));
    }

    #[tokio::test]
    async fn over_budget_without_wait_a_call_is_refused_without_a_vendor_call() {
        let f = Fixture::new(with_budget(0));
        let (first, _, _) = f.run("desk", Replay::Safe, &[OK], Duration::ZERO).await;
        assert_eq!(first, Ok(OK));
        let (result, _, calls) = f.run("desk", Replay::Safe, &[], Duration::ZERO).await;
        assert_eq!(
            result,
            Err(Refusal::BudgetExhausted {
                retry_after: Duration::from_millis(200)
            })
        );
        assert_eq!(calls, 0);
    }

    #[tokio::test]
    async fn a_budget_wait_never_runs_past_the_deadline() {
        let f = Fixture::new(with_budget(5_000));
        // Fill the line: the next slot is 1 s away.
        let key = LimitKey::VendorBudget(ConnectionKey::new("acme", "desk"));
        let limit = Limit {
            per_second: 5.0,
            burst: 1,
        };
        for _ in 0..5 {
            f.store
                .acquire(&key, limit, Duration::from_secs(5))
                .await
                .unwrap();
        }
        let guards = f.guards("desk");
        let edge = Edge::new(&f.store, &guards, &*f.clock);
        let mut report = EdgeReport::default();
        let result = edge
            .run(
                Replay::Safe,
                Duration::from_millis(500),
                |_| async { OK },
                |r| *r,
                &mut report,
            )
            .await;
        assert!(matches!(result, Err(Refusal::BudgetExhausted { .. })));
        assert_eq!(report.attempts, 0);
    }

    #[tokio::test]
    async fn a_retry_the_budget_refuses_returns_the_failure_it_would_retry() {
        let f = Fixture::new(with_budget(0));
        let (result, report, calls) = f.run("desk", Replay::Safe, &[RESET], Duration::ZERO).await;
        assert_eq!(result, Ok(RESET));
        assert_eq!(calls, 1);
        assert_eq!(report.stopped, Some(StopReason::Refused));
        assert!(matches!(
            report.refused_retry,
            Some(Refusal::BudgetExhausted { .. })
        ));
    }

    /// A shared store that is down (what a Redis backend reports when Redis is gone).
    struct Unreachable;

    fn down() -> StateError {
        StateError::Unavailable {
            backend: "test",
            reason: "connection refused".into(),
        }
    }

    #[async_trait]
    impl StateStore for Unreachable {
        fn backend(&self) -> &'static str {
            "test"
        }
        async fn acquire(
            &self,
            _: &LimitKey,
            _: Limit,
            _: Duration,
        ) -> Result<Admission, StateError> {
            Err(down())
        }
        async fn begin(
            &self,
            _: &RecordKey,
            _: &RequestFingerprint,
            _: Duration,
        ) -> Result<Begin, StateError> {
            Err(down())
        }
        async fn complete(&self, _: &Lease, _: StoredAnswer) -> Result<Completion, StateError> {
            Err(down())
        }
        async fn release(&self, _: &Lease) -> Result<(), StateError> {
            Err(down())
        }
        async fn pause(&self, _: &ConnectionKey, _: Duration) -> Result<Duration, StateError> {
            Err(down())
        }
        async fn paused_for(&self, _: &ConnectionKey) -> Result<Option<Duration>, StateError> {
            Err(down())
        }
    }

    #[tokio::test]
    async fn a_state_outage_lets_calls_through_and_is_reported() {
        let f = Fixture::new(with_budget(0));
        let guards = f.guards("desk");
        let edge = Edge::new(&Unreachable, &guards, &*f.clock);
        let mut report = EdgeReport::default();
        let result = edge
            .run(
                Replay::Safe,
                TIMEOUT,
                |_| async {
                    AttemptOutcome::RateLimited {
                        retry_after: Some(Duration::from_secs(1)),
                    }
                },
                |r| *r,
                &mut report,
            )
            .await;
        assert!(result.is_ok());
        assert_eq!(report.attempts, 1);
        // pause check, budget, recording the pause
        assert_eq!(report.state_errors, 3);
        assert_eq!(report.paused, None);
    }
}
