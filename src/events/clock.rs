//! Wall time for events: milliseconds since the Unix epoch, read through a [`WallClock`] so
//! every schedule (backoff, leases, retention) can be driven by a test without waiting.
//!
//! Why not [`crate::clock::Clock`] (monotonic, from the process's own origin): event times are
//! *persisted* and must mean the same after a restart — a delivery due at 14:05 is due at
//! 14:05 in the next process too — and they are *shown*: `created_at` is RFC 3339 and
//! `webhook-timestamp` is Unix seconds, which receivers compare with their own clocks. A wall
//! clock stepped back by NTP delays a retry by that step at worst; nothing is lost.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch. Signed so that "before" arithmetic never underflows.
pub type Millis = i64;

/// Where "now" comes from.
pub trait WallClock: Send + Sync + 'static {
    fn now_ms(&self) -> Millis;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemWallClock;

impl WallClock for SystemWallClock {
    fn now_ms(&self) -> Millis {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }
}

/// A clock that only moves when told to (tests, replays).
#[derive(Debug, Default)]
pub struct ManualWallClock(AtomicI64);

impl ManualWallClock {
    pub fn new(start: Millis) -> Self {
        ManualWallClock(AtomicI64::new(start))
    }

    pub fn set(&self, at: Millis) {
        self.0.store(at, Ordering::SeqCst);
    }

    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(duration_ms(by), Ordering::SeqCst);
    }
}

impl WallClock for ManualWallClock {
    fn now_ms(&self) -> Millis {
        self.0.load(Ordering::SeqCst)
    }
}

/// A duration in whole milliseconds, saturating.
pub fn duration_ms(d: Duration) -> Millis {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// RFC 3339 with milliseconds, UTC (`2025-06-15T10:30:00.000Z`): the `created_at` of events.
pub fn rfc3339(at: Millis) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(u64::try_from(at).unwrap_or(0));
    humantime::format_rfc3339_millis(t).to_string()
}

/// Parse an RFC 3339 timestamp (`Z` or an offset) into milliseconds; `None` when malformed.
pub fn parse_rfc3339(s: &str) -> Option<Millis> {
    let t = humantime::parse_rfc3339_weak(s.trim()).ok().or_else(|| {
        // humantime reads only `Z`; fold a `+hh:mm` offset in by hand.
        let (base, sign, offset) = split_offset(s.trim())?;
        let t = humantime::parse_rfc3339_weak(base).ok()?;
        if sign > 0 {
            t.checked_sub(offset)
        } else {
            t.checked_add(offset)
        }
    })?;
    t.duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_millis()).ok())
}

fn split_offset(s: &str) -> Option<(&str, i32, Duration)> {
    let cut = s.len().checked_sub(6)?;
    let (base, offset) = s.split_at(cut);
    let sign = match offset.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let hours: u64 = offset.get(1..3)?.parse().ok()?;
    let minutes: u64 = offset.get(4..6)?.parse().ok()?;
    if offset.as_bytes().get(3) != Some(&b':') || hours > 23 || minutes > 59 {
        return None;
    }
    Some((base, sign, Duration::from_secs(hours * 3600 + minutes * 60)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_614_265_330_123), "2021-02-25T15:02:10.123Z");
        assert_eq!(
            parse_rfc3339("2021-02-25T15:02:10.123Z"),
            Some(1_614_265_330_123)
        );
        assert_eq!(
            parse_rfc3339("2021-02-25T15:02:10Z"),
            Some(1_614_265_330_000)
        );
        assert_eq!(
            parse_rfc3339("2021-02-25T17:02:10+02:00"),
            Some(1_614_265_330_000)
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualWallClock::new(1_000);
        assert_eq!(clock.now_ms(), 1_000);
        clock.advance(Duration::from_secs(5));
        assert_eq!(clock.now_ms(), 6_000);
        clock.set(42);
        assert_eq!(clock.now_ms(), 42);
    }
}
