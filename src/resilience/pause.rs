//! A vendor's `429 Too Many Requests` pauses the whole connection until its `Retry-After`,
//! so the next calls are not sent at all (they would only be refused, and some vendors
//! lengthen the penalty for calls made during it). The pause itself lives in the shared
//! state ([`crate::state::StateStore::pause`]) so every replica stops; how long it lasts is
//! decided here and in [`super::settings::VendorPauseSettings::pause_for`].

use std::time::{Duration, SystemTime};

/// Parse a `Retry-After` value (RFC 9110 §10.2.3): either delay-seconds (`120`) or an
/// HTTP-date (`Wed, 21 Oct 2015 07:28:00 GMT`), read against `now` (wall time). A date in
/// the past is a zero delay. Anything else — negative, fractional, garbage — is `None`
/// (the caller then uses its default pause).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Longer than u64 seconds is "forever"; the configured cap applies later.
        return Some(Duration::from_secs(
            value.parse::<u64>().unwrap_or(u64::MAX),
        ));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(unix: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(unix)
    }

    #[test]
    fn delay_seconds() {
        let now = at(1_000);
        assert_eq!(parse_retry_after("2", now), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after("0", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX))
        );
    }

    #[test]
    fn http_dates_in_all_three_formats() {
        // 1445412480 = Wed, 21 Oct 2015 07:28:00 GMT
        let now = at(1_445_412_480 - 30);
        for v in [
            "Wed, 21 Oct 2015 07:28:00 GMT",
            "Wednesday, 21-Oct-15 07:28:00 GMT",
            "Wed Oct 21 07:28:00 2015",
        ] {
            assert_eq!(
                parse_retry_after(v, now),
                Some(Duration::from_secs(30)),
                "{v}"
            );
        }
        // A date already past means "now".
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", at(1_445_412_480 + 5)),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn garbage_is_none() {
        let now = at(1_000);
        for v in ["", "-1", "1.5", "soon", "Wed, 32 Oct 2015 07:28:00 GMT"] {
            assert_eq!(parse_retry_after(v, now), None, "{v:?}");
        }
    }
}
