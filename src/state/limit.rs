//! Rate limits as GCRA (the generic cell rate algorithm): one stored number per key, the
//! *theoretical arrival time* (TAT), which makes a limit cheap to keep in-process and one
//! atomic read-modify-write in a shared store.
//!
//! GCRA is a token bucket seen from the other side: a bucket of `burst` tokens refilled at
//! `per_second` is "full" when `TAT <= now` and "empty" when `TAT >= now + burst·T`
//! (`T = 1/per_second`, the emission interval). Each admitted request moves the TAT by `T`.
//!
//! A vendor budget may *wait* (`max_wait`): when the next slot is at most `max_wait` away,
//! [`gcra`] reserves it — the TAT moves now — and tells the caller how long to wait. The
//! caller then sleeps and calls the vendor without asking again, so a waiting request holds
//! its place in line and a burst of waiters leaves at exactly the configured rate. A reserved
//! slot whose caller gives up (client gone, deadline) is simply unused: the budget errs on the
//! side of fewer vendor calls, never more.

use std::time::Duration;

use http::HeaderValue;

use crate::clock::to_nanos;

/// A sustained rate with a burst: at most `burst` requests at once, refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    pub per_second: f64,
    pub burst: u32,
}

impl Limit {
    /// The emission interval `T` in nanoseconds (at least 1).
    pub(crate) fn interval(&self) -> u64 {
        let per_second = if self.per_second.is_finite() && self.per_second > 0.0 {
            self.per_second
        } else {
            // Validated settings never get here; a zero rate admits one request a year.
            1.0 / (365.0 * 86_400.0)
        };
        // ok: f64 → u64 `as` saturates; the value is positive and finite.
        ((1e9 / per_second).round() as u64).max(1)
    }

    /// `burst · T`: how far ahead of now the TAT may run.
    pub(crate) fn tolerance(&self) -> u64 {
        self.interval().saturating_mul(u64::from(self.burst.max(1)))
    }

    /// The quota and window advertised in `RateLimit-Policy`: the window is the time a full
    /// burst takes to refill (at least 1 s), the quota what that window admits at the
    /// sustained rate (at least the burst).
    pub fn policy_quota_window(&self) -> (u64, u64) {
        let burst = u64::from(self.burst.max(1));
        let per_second = self.per_second.max(f64::MIN_POSITIVE);
        // ok: `as` saturates; both values are finite and non-negative.
        let window = ((burst as f64 / per_second).ceil() as u64).max(1);
        let quota = ((per_second * window as f64).floor() as u64).max(burst);
        (quota, window)
    }
}

/// The answer to one [`crate::state::StateStore::acquire`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Go now. `remaining` requests could follow at once; `reset` is when the bucket is full
    /// again.
    Allowed { remaining: u32, reset: Duration },
    /// A slot `wait` from now is reserved for this caller: wait, then go without asking again.
    Reserved { wait: Duration, reset: Duration },
    /// Over the limit even after the allowed wait; nothing was taken. The next request
    /// would be admitted at once after `retry_after`.
    Refused {
        retry_after: Duration,
        reset: Duration,
    },
}

impl Admission {
    /// Requests that could go right now (0 unless [`Admission::Allowed`]).
    pub fn remaining(&self) -> u32 {
        match self {
            Admission::Allowed { remaining, .. } => *remaining,
            _ => 0,
        }
    }

    /// Time until the bucket is full again.
    pub fn reset(&self) -> Duration {
        match self {
            Admission::Allowed { reset, .. }
            | Admission::Reserved { reset, .. }
            | Admission::Refused { reset, .. } => *reset,
        }
    }

    pub fn is_refused(&self) -> bool {
        matches!(self, Admission::Refused { .. })
    }
}

/// One GCRA step for a key whose stored TAT is `tat` (`None`: never seen or expired, i.e. a
/// full bucket), at `now` (nanoseconds on the store's clock).
///
/// Returns the TAT to store — `None` when nothing changes (a refusal) — and the admission.
/// A stored TAT is worthless once it is `<= now`: the store may drop it then (its TTL is
/// `tat - now`).
///
/// This is the exact algorithm a shared backend runs server-side (issue 15's Redis script:
/// `GET` the TAT, this arithmetic, `SET … PX (new_tat - now)`), using the server's clock so
/// replicas never disagree about time.
pub fn gcra(
    tat: Option<u64>,
    now: u64,
    limit: &Limit,
    max_wait: Duration,
) -> (Option<u64>, Admission) {
    let interval = limit.interval();
    let tolerance = limit.tolerance();
    let base = tat.map_or(now, |t| t.max(now));
    let new_tat = base.saturating_add(interval);
    let horizon = now.saturating_add(tolerance);
    let reset = Duration::from_nanos(new_tat - now);
    if new_tat <= horizon {
        let remaining = (horizon - new_tat) / interval;
        let remaining = u32::try_from(remaining).unwrap_or(u32::MAX);
        return (Some(new_tat), Admission::Allowed { remaining, reset });
    }
    let wait = new_tat - horizon;
    if wait <= to_nanos(max_wait) {
        return (
            Some(new_tat),
            Admission::Reserved {
                wait: Duration::from_nanos(wait),
                reset,
            },
        );
    }
    (
        None,
        Admission::Refused {
            retry_after: Duration::from_nanos(wait),
            reset: Duration::from_nanos(base - now),
        },
    )
}

/// Whole seconds for a header, rounded up (a client told "0" would retry at once).
pub fn header_seconds(d: Duration) -> u64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.max(1)
}

/// `RateLimit-Policy: "<name>";q=<quota>;w=<window>` (draft-ietf-httpapi-ratelimit-headers).
/// `name` must be a plain token such as `tenant`.
pub fn policy_header(name: &str, limit: &Limit) -> HeaderValue {
    let (quota, window) = limit.policy_quota_window();
    header_value(format!("\"{name}\";q={quota};w={window}"))
}

/// `RateLimit: "<name>";r=<remaining>;t=<seconds until full>`.
pub fn ratelimit_header(name: &str, admission: &Admission) -> HeaderValue {
    let reset = admission.reset();
    // A full bucket resets in 0 s; otherwise round up like Retry-After.
    let t = if reset.is_zero() {
        0
    } else {
        header_seconds(reset)
    };
    header_value(format!("\"{name}\";r={};t={t}", admission.remaining()))
}

fn header_value(s: String) -> HeaderValue {
    HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static("\"invalid\";q=0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    fn limit(per_second: f64, burst: u32) -> Limit {
        Limit { per_second, burst }
    }

    /// Run `n` acquisitions at one instant, threading the TAT through.
    fn burst_at(tat: &mut Option<u64>, now: u64, l: &Limit, n: usize) -> Vec<Admission> {
        (0..n)
            .map(|_| {
                let (next, a) = gcra(*tat, now, l, Duration::ZERO);
                if next.is_some() {
                    *tat = next;
                }
                a
            })
            .collect()
    }

    #[test]
    fn a_full_bucket_admits_exactly_the_burst() {
        let l = limit(10.0, 5);
        let mut tat = None;
        let got = burst_at(&mut tat, 100 * SEC, &l, 6);
        let remaining: Vec<u32> = got.iter().map(Admission::remaining).collect();
        assert_eq!(remaining, [4, 3, 2, 1, 0, 0]);
        assert!(got[..5]
            .iter()
            .all(|a| matches!(a, Admission::Allowed { .. })));
        match got[5] {
            Admission::Refused { retry_after, .. } => {
                assert_eq!(retry_after, Duration::from_millis(100))
            }
            other => panic!("sixth request should be refused: {other:?}"),
        }
    }

    #[test]
    fn tokens_come_back_at_the_sustained_rate() {
        let l = limit(10.0, 5);
        let mut tat = None;
        let now = 100 * SEC;
        burst_at(&mut tat, now, &l, 5);
        // 250 ms later two tokens are back (one every 100 ms), not three.
        let got = burst_at(&mut tat, now + SEC / 4, &l, 3);
        assert!(matches!(got[0], Admission::Allowed { .. }));
        assert!(matches!(got[1], Admission::Allowed { .. }));
        assert!(got[2].is_refused());
        // After a full refill period the whole burst is available again.
        let got = burst_at(&mut tat, now + 2 * SEC, &l, 5);
        assert!(got.iter().all(|a| !a.is_refused()), "{got:?}");
    }

    #[test]
    fn a_refusal_takes_nothing() {
        let l = limit(1.0, 1);
        let (tat, _) = gcra(None, 10 * SEC, &l, Duration::ZERO);
        let (unchanged, a) = gcra(tat, 10 * SEC, &l, Duration::ZERO);
        assert!(a.is_refused());
        assert_eq!(unchanged, None, "a refusal must not move the TAT");
        // So one second later exactly one request goes through.
        let (_, a) = gcra(tat, 11 * SEC, &l, Duration::ZERO);
        assert!(matches!(a, Admission::Allowed { remaining: 0, .. }));
    }

    #[test]
    fn waiting_callers_reserve_successive_slots() {
        // 5 rps, burst 1, wait up to 1 s: ten callers at once get slots 0, 200, … 800 ms,
        // then the rest are refused.
        let l = limit(5.0, 1);
        let mut tat = None;
        let now = 50 * SEC;
        let mut waits = Vec::new();
        let mut refused = 0;
        for _ in 0..10 {
            let (next, a) = gcra(tat, now, &l, Duration::from_secs(1));
            match a {
                Admission::Allowed { .. } => waits.push(Duration::ZERO),
                Admission::Reserved { wait, .. } => waits.push(wait),
                Admission::Refused { .. } => refused += 1,
            }
            if next.is_some() {
                tat = next;
            }
        }
        let ms: Vec<u128> = waits.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [0, 200, 400, 600, 800, 1000]);
        assert_eq!(refused, 4);
    }

    #[test]
    fn refused_retry_after_is_the_next_free_slot() {
        let l = limit(2.0, 2);
        let mut tat = None;
        burst_at(&mut tat, 0, &l, 2);
        let (_, a) = gcra(tat, SEC / 10, &l, Duration::ZERO);
        match a {
            Admission::Refused { retry_after, reset } => {
                assert_eq!(retry_after, Duration::from_millis(400));
                assert_eq!(reset, Duration::from_millis(900));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn fractional_rates_work() {
        // One request every two seconds.
        let l = limit(0.5, 1);
        let (tat, a) = gcra(None, 0, &l, Duration::ZERO);
        assert!(!a.is_refused());
        let (_, a) = gcra(tat, SEC, &l, Duration::ZERO);
        assert!(a.is_refused());
        let (_, a) = gcra(tat, 2 * SEC, &l, Duration::ZERO);
        assert!(!a.is_refused());
    }

    #[test]
    fn policy_header_describes_quota_and_window() {
        assert_eq!(
            policy_header("tenant", &limit(10.0, 20)),
            "\"tenant\";q=20;w=2"
        );
        // A burst smaller than a second's worth still advertises the sustained rate.
        assert_eq!(
            policy_header("tenant", &limit(50.0, 1)),
            "\"tenant\";q=50;w=1"
        );
        assert_eq!(
            policy_header("tenant", &limit(0.5, 1)),
            "\"tenant\";q=1;w=2"
        );
    }

    #[test]
    fn ratelimit_header_reports_remaining_and_reset() {
        let l = limit(1.0, 3);
        let (_, a) = gcra(None, 0, &l, Duration::ZERO);
        assert_eq!(ratelimit_header("tenant", &a), "\"tenant\";r=2;t=1");
        let refused = Admission::Refused {
            retry_after: Duration::from_millis(1500),
            reset: Duration::from_millis(2500),
        };
        assert_eq!(ratelimit_header("tenant", &refused), "\"tenant\";r=0;t=3");
    }

    #[test]
    fn header_seconds_round_up_and_never_say_zero() {
        assert_eq!(header_seconds(Duration::from_millis(1)), 1);
        assert_eq!(header_seconds(Duration::from_millis(1000)), 1);
        assert_eq!(header_seconds(Duration::from_millis(1001)), 2);
        assert_eq!(header_seconds(Duration::ZERO), 1);
    }
}
