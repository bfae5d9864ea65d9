//! The user-facing settings of the vendor edge, as they appear in the connections file (per
//! connection), a vendor's routes file (defaults for its connections) and, for tenants,
//! `rate_limit`.
//!
//! ```yaml
//! retry:            { enabled: true, max_attempts: 3, base_delay_ms: 50, max_delay_ms: 1000,
//!                     budget_percent: 20, budget_min_retries: 10, budget_window_seconds: 10 }
//! circuit_breaker:  { enabled: true, consecutive_failures: 5, failure_percent: 50,
//!                     window_seconds: 30, minimum_requests: 20, open_seconds: 15 }
//! vendor_budget:    { requests_per_second: 5, burst: 5, max_wait_ms: 1000 }   # off unless set
//! vendor_pause:     { enabled: true, default_seconds: 1, max_seconds: 300 }
//! rate_limit:       { requests_per_second: 20, burst: 40 }                    # per tenant, off unless set
//! ```
//!
//! Every key is optional; the defaults are the `DEFAULT_*` constants below. Retries, the
//! circuit breaker and the vendor-429 pause are on by default; vendor budgets and tenant
//! limits are off unless configured. Durations are integers with their unit in the key
//! name (`_ms`, `_seconds`), like the rest of the config.
//!
//! A connection's section is merged key by key over its vendor's defaults
//! ([`ResilienceSettings::resolve`]): `retry: {max_attempts: 5}` on a connection keeps the
//! vendor's other retry keys. Every error names the key and the reason, and which layer
//! (routes file or connections file) the offending key came from.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::state::Limit;

// ----- defaults ------------------------------------------------------------------------------

/// Retries are on unless a connection turns them off.
pub const DEFAULT_RETRY_ENABLED: bool = true;
/// Attempts per vendor call, the first included (so 2 retries).
pub const DEFAULT_RETRY_MAX_ATTEMPTS: u32 = 3;
/// Backoff before the first retry, before jitter.
pub const DEFAULT_RETRY_BASE_DELAY_MS: u64 = 50;
/// Longest backoff between two attempts.
pub const DEFAULT_RETRY_MAX_DELAY_MS: u64 = 1_000;
/// Retries may add at most this share of a connection's calls (issue 13: 20 %).
pub const DEFAULT_RETRY_BUDGET_PERCENT: u32 = 20;
/// Retries always allowed per window, however few calls there were (so a quiet connection
/// can still retry its one failed read).
pub const DEFAULT_RETRY_BUDGET_MIN_RETRIES: u32 = 10;
/// The rolling window the retry budget counts over.
pub const DEFAULT_RETRY_BUDGET_WINDOW_SECONDS: u64 = 10;

/// The circuit breaker is on unless a connection turns it off.
pub const DEFAULT_BREAKER_ENABLED: bool = true;
/// Consecutive failed calls that open the circuit.
pub const DEFAULT_BREAKER_CONSECUTIVE_FAILURES: u32 = 5;
/// Share of failed calls over the window that opens the circuit…
pub const DEFAULT_BREAKER_FAILURE_PERCENT: u32 = 50;
/// …counted over this rolling window…
pub const DEFAULT_BREAKER_WINDOW_SECONDS: u64 = 30;
/// …once the window holds at least this many calls.
pub const DEFAULT_BREAKER_MINIMUM_REQUESTS: u32 = 20;
/// How long an open circuit refuses calls before letting one probe through.
pub const DEFAULT_BREAKER_OPEN_SECONDS: u64 = 15;

/// How long a call over the vendor budget may wait for a slot before it is refused.
pub const DEFAULT_VENDOR_BUDGET_MAX_WAIT_MS: u64 = 1_000;

/// A vendor 429 pauses its connection unless turned off.
pub const DEFAULT_VENDOR_PAUSE_ENABLED: bool = true;
/// Pause after a 429 that carries no usable `Retry-After`.
pub const DEFAULT_VENDOR_PAUSE_SECONDS: u64 = 1;
/// Longest pause a vendor's `Retry-After` can impose (a bogus "come back tomorrow" must not
/// stop a connection for a day; the next call finds out whether the limit still holds).
pub const DEFAULT_VENDOR_PAUSE_MAX_SECONDS: u64 = 300;

// ----- errors --------------------------------------------------------------------------------

/// A settings problem: the key (relative to the section, e.g. `retry.max_attempts`) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct SettingsError {
    pub key: String,
    pub reason: String,
}

impl SettingsError {
    fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        SettingsError {
            key: key.into(),
            reason: reason.into(),
        }
    }

    fn within(mut self, section: &str) -> Self {
        self.key = if self.key.is_empty() {
            section.to_owned()
        } else {
            format!("{section}.{}", self.key)
        };
        self
    }
}

/// Which file a merged setting came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// The vendor's routes file (defaults for every connection of that vendor).
    VendorDefaults,
    /// The connection's own entry in the connections file.
    Connection,
}

/// A settings error with the file it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct LayeredError {
    pub layer: Layer,
    pub error: SettingsError,
}

fn check(ok: bool, key: &str, reason: impl Into<String>) -> Result<(), SettingsError> {
    if ok {
        Ok(())
    } else {
        Err(SettingsError::new(key, reason))
    }
}

fn check_rate(key: &str, rps: f64, max: f64) -> Result<(), SettingsError> {
    check(
        rps.is_finite() && rps > 0.0 && rps <= max,
        key,
        format!("must be a number above 0 and at most {max}"),
    )
}

// ----- retry ---------------------------------------------------------------------------------

/// `retry`: how failed vendor calls are retried (see [`crate::resilience::retry`]).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySettings {
    pub enabled: bool,
    /// Attempts per vendor call including the first (1 = never retry).
    pub max_attempts: u32,
    pub base_delay_ms: u64,
    pub max_delay_ms: u64,
    /// Retries ≤ this percentage of the connection's calls over the window…
    pub budget_percent: u32,
    /// …but at least this many retries per window.
    pub budget_min_retries: u32,
    pub budget_window_seconds: u64,
}

impl Default for RetrySettings {
    fn default() -> Self {
        RetrySettings {
            enabled: DEFAULT_RETRY_ENABLED,
            max_attempts: DEFAULT_RETRY_MAX_ATTEMPTS,
            base_delay_ms: DEFAULT_RETRY_BASE_DELAY_MS,
            max_delay_ms: DEFAULT_RETRY_MAX_DELAY_MS,
            budget_percent: DEFAULT_RETRY_BUDGET_PERCENT,
            budget_min_retries: DEFAULT_RETRY_BUDGET_MIN_RETRIES,
            budget_window_seconds: DEFAULT_RETRY_BUDGET_WINDOW_SECONDS,
        }
    }
}

impl RetrySettings {
    pub fn validate(&self) -> Result<(), SettingsError> {
        check(
            (1..=10).contains(&self.max_attempts),
            "max_attempts",
            "use 1 to 10 (1 = never retry)",
        )?;
        check(
            (1..=10_000).contains(&self.base_delay_ms),
            "base_delay_ms",
            "use 1 to 10000",
        )?;
        check(
            self.max_delay_ms >= self.base_delay_ms && self.max_delay_ms <= 60_000,
            "max_delay_ms",
            "use base_delay_ms to 60000",
        )?;
        check(self.budget_percent <= 100, "budget_percent", "use 0 to 100")?;
        check(
            self.budget_min_retries <= 10_000,
            "budget_min_retries",
            "use 0 to 10000",
        )?;
        check(
            (1..=3_600).contains(&self.budget_window_seconds),
            "budget_window_seconds",
            "use 1 to 3600",
        )
    }

    pub fn base_delay(&self) -> Duration {
        Duration::from_millis(self.base_delay_ms)
    }

    pub fn max_delay(&self) -> Duration {
        Duration::from_millis(self.max_delay_ms)
    }

    pub fn budget_window(&self) -> Duration {
        Duration::from_secs(self.budget_window_seconds)
    }
}

// ----- circuit breaker -----------------------------------------------------------------------

/// `circuit_breaker`: when a connection's circuit opens (see [`crate::resilience::breaker`]).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CircuitBreakerSettings {
    pub enabled: bool,
    /// Opens after this many failed calls in a row…
    pub consecutive_failures: u32,
    /// …or when at least this percentage of the window's calls failed…
    pub failure_percent: u32,
    pub window_seconds: u64,
    /// …and the window holds at least this many calls.
    pub minimum_requests: u32,
    /// How long it stays open before one probe is let through.
    pub open_seconds: u64,
}

impl Default for CircuitBreakerSettings {
    fn default() -> Self {
        CircuitBreakerSettings {
            enabled: DEFAULT_BREAKER_ENABLED,
            consecutive_failures: DEFAULT_BREAKER_CONSECUTIVE_FAILURES,
            failure_percent: DEFAULT_BREAKER_FAILURE_PERCENT,
            window_seconds: DEFAULT_BREAKER_WINDOW_SECONDS,
            minimum_requests: DEFAULT_BREAKER_MINIMUM_REQUESTS,
            open_seconds: DEFAULT_BREAKER_OPEN_SECONDS,
        }
    }
}

impl CircuitBreakerSettings {
    pub fn validate(&self) -> Result<(), SettingsError> {
        check(
            (1..=10_000).contains(&self.consecutive_failures),
            "consecutive_failures",
            "use 1 to 10000",
        )?;
        check(
            (1..=100).contains(&self.failure_percent),
            "failure_percent",
            "use 1 to 100",
        )?;
        check(
            (1..=3_600).contains(&self.window_seconds),
            "window_seconds",
            "use 1 to 3600",
        )?;
        check(
            (1..=1_000_000).contains(&self.minimum_requests),
            "minimum_requests",
            "use 1 to 1000000",
        )?;
        check(
            (1..=3_600).contains(&self.open_seconds),
            "open_seconds",
            "use 1 to 3600",
        )
    }

    pub fn window(&self) -> Duration {
        Duration::from_secs(self.window_seconds)
    }

    pub fn open_duration(&self) -> Duration {
        Duration::from_secs(self.open_seconds)
    }
}

// ----- vendor budget -------------------------------------------------------------------------

/// `vendor_budget`: a connection's proactive limit toward its vendor. Present = on.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VendorBudgetSettings {
    /// Lets a connection switch off a budget its vendor's routes file sets.
    #[serde(default = "yes")]
    pub enabled: bool,
    pub requests_per_second: f64,
    /// Calls allowed at once; default: one second's worth (`requests_per_second`, rounded up).
    #[serde(default)]
    pub burst: Option<u32>,
    #[serde(default = "default_max_wait")]
    pub max_wait_ms: u64,
}

fn yes() -> bool {
    true
}

fn default_max_wait() -> u64 {
    DEFAULT_VENDOR_BUDGET_MAX_WAIT_MS
}

impl VendorBudgetSettings {
    pub fn validate(&self) -> Result<(), SettingsError> {
        check_rate("requests_per_second", self.requests_per_second, 100_000.0)?;
        if let Some(burst) = self.burst {
            check((1..=100_000).contains(&burst), "burst", "use 1 to 100000")?;
        }
        check(self.max_wait_ms <= 60_000, "max_wait_ms", "use 0 to 60000")
    }

    pub fn limit(&self) -> Limit {
        Limit {
            per_second: self.requests_per_second,
            burst: self
                .burst
                .unwrap_or_else(|| default_burst(self.requests_per_second)),
        }
    }

    pub fn max_wait(&self) -> Duration {
        Duration::from_millis(self.max_wait_ms)
    }
}

/// One second's worth of requests, at least 1.
fn default_burst(requests_per_second: f64) -> u32 {
    // ok: `as` saturates; validated rates are finite and positive.
    (requests_per_second.ceil() as u32).max(1)
}

// ----- vendor pause --------------------------------------------------------------------------

/// `vendor_pause`: what a vendor 429 does to its connection.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VendorPauseSettings {
    pub enabled: bool,
    /// Pause when the 429 has no usable `Retry-After`.
    pub default_seconds: u64,
    /// Cap on the pause a `Retry-After` can impose.
    pub max_seconds: u64,
}

impl Default for VendorPauseSettings {
    fn default() -> Self {
        VendorPauseSettings {
            enabled: DEFAULT_VENDOR_PAUSE_ENABLED,
            default_seconds: DEFAULT_VENDOR_PAUSE_SECONDS,
            max_seconds: DEFAULT_VENDOR_PAUSE_MAX_SECONDS,
        }
    }
}

impl VendorPauseSettings {
    pub fn validate(&self) -> Result<(), SettingsError> {
        check(
            (1..=86_400).contains(&self.max_seconds),
            "max_seconds",
            "use 1 to 86400",
        )?;
        check(
            self.default_seconds >= 1 && self.default_seconds <= self.max_seconds,
            "default_seconds",
            "use 1 to max_seconds",
        )
    }

    /// The pause for a vendor 429 whose `Retry-After` said `retry_after` (if anything
    /// usable): capped at `max_seconds`, `default_seconds` when absent. `None` when pauses
    /// are off.
    pub fn pause_for(&self, retry_after: Option<Duration>) -> Option<Duration> {
        if !self.enabled {
            return None;
        }
        let wanted = retry_after.unwrap_or(Duration::from_secs(self.default_seconds));
        Some(wanted.min(Duration::from_secs(self.max_seconds)))
    }
}

// ----- tenant rate limit ---------------------------------------------------------------------

/// A tenant's `rate_limit`. Present = on.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    pub requests_per_second: f64,
    /// Requests allowed at once; default: one second's worth.
    #[serde(default)]
    pub burst: Option<u32>,
}

impl RateLimitSettings {
    pub fn validate(&self) -> Result<(), SettingsError> {
        check_rate("requests_per_second", self.requests_per_second, 1_000_000.0)?;
        if let Some(burst) = self.burst {
            check(
                (1..=1_000_000).contains(&burst),
                "burst",
                "use 1 to 1000000",
            )?;
        }
        Ok(())
    }

    pub fn limit(&self) -> Limit {
        Limit {
            per_second: self.requests_per_second,
            burst: self
                .burst
                .unwrap_or_else(|| default_burst(self.requests_per_second)),
        }
    }
}

// ----- a connection's whole edge -------------------------------------------------------------

/// The resilience sections as written in a file, before merging: each one raw YAML so a
/// connection can override single keys of its vendor's defaults.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResilienceFile {
    #[serde(default)]
    pub retry: Option<serde_yaml::Value>,
    #[serde(default)]
    pub circuit_breaker: Option<serde_yaml::Value>,
    #[serde(default)]
    pub vendor_budget: Option<serde_yaml::Value>,
    #[serde(default)]
    pub vendor_pause: Option<serde_yaml::Value>,
}

/// Everything the vendor edge needs for one connection, validated.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ResilienceSettings {
    pub retry: RetrySettings,
    pub circuit_breaker: CircuitBreakerSettings,
    /// `None`: no budget (the default).
    pub vendor_budget: Option<VendorBudgetSettings>,
    pub vendor_pause: VendorPauseSettings,
}

impl ResilienceSettings {
    pub fn validate(&self) -> Result<(), SettingsError> {
        self.retry.validate().map_err(|e| e.within("retry"))?;
        self.circuit_breaker
            .validate()
            .map_err(|e| e.within("circuit_breaker"))?;
        if let Some(budget) = &self.vendor_budget {
            budget.validate().map_err(|e| e.within("vendor_budget"))?;
        }
        self.vendor_pause
            .validate()
            .map_err(|e| e.within("vendor_pause"))
    }

    /// Merge a connection's sections over its vendor's defaults (key by key), deserialize
    /// and validate. An error names the key and the layer it came from (the connection's when
    /// the connection sets that key, else the vendor defaults').
    pub fn resolve(
        vendor_defaults: &ResilienceFile,
        connection: &ResilienceFile,
    ) -> Result<ResilienceSettings, LayeredError> {
        let settings = ResilienceSettings {
            retry: section(
                "retry",
                &vendor_defaults.retry,
                &connection.retry,
                RetrySettings::validate,
            )?
            .unwrap_or_default(),
            circuit_breaker: section(
                "circuit_breaker",
                &vendor_defaults.circuit_breaker,
                &connection.circuit_breaker,
                CircuitBreakerSettings::validate,
            )?
            .unwrap_or_default(),
            vendor_budget: section(
                "vendor_budget",
                &vendor_defaults.vendor_budget,
                &connection.vendor_budget,
                VendorBudgetSettings::validate,
            )?
            .filter(|b| b.enabled),
            vendor_pause: section(
                "vendor_pause",
                &vendor_defaults.vendor_pause,
                &connection.vendor_pause,
                VendorPauseSettings::validate,
            )?
            .unwrap_or_default(),
        };
        Ok(settings)
    }
}

/// Merge, parse and validate one section. `None` when neither layer sets it.
fn section<T: DeserializeOwned>(
    name: &str,
    defaults: &Option<serde_yaml::Value>,
    connection: &Option<serde_yaml::Value>,
    validate: fn(&T) -> Result<(), SettingsError>,
) -> Result<Option<T>, LayeredError> {
    let merged = match (defaults, connection) {
        (None, None) => return Ok(None),
        (Some(d), None) => d.clone(),
        (None, Some(c)) => c.clone(),
        (Some(d), Some(c)) => merge(d.clone(), c.clone()),
    };
    let layer_of = |key: &str| -> Layer {
        let first = key.split('.').next().unwrap_or_default();
        let set_by_connection = connection.as_ref().is_some_and(|c| match c {
            serde_yaml::Value::Mapping(m) => first.is_empty() || m.contains_key(first),
            _ => true,
        });
        if set_by_connection {
            Layer::Connection
        } else {
            Layer::VendorDefaults
        }
    };
    let parsed: T = serde_path_to_error::deserialize(merged).map_err(|e| {
        let key = e.path().to_string();
        let key = if key == "." { String::new() } else { key };
        LayeredError {
            layer: layer_of(&key),
            error: SettingsError::new(key, e.into_inner().to_string()).within(name),
        }
    })?;
    validate(&parsed).map_err(|e| LayeredError {
        layer: layer_of(&e.key),
        error: e.within(name),
    })?;
    Ok(Some(parsed))
}

/// `over`'s keys replace `base`'s, recursively for nested mappings; any other value (or a
/// type change) replaces the whole value.
fn merge(base: serde_yaml::Value, over: serde_yaml::Value) -> serde_yaml::Value {
    match (base, over) {
        (serde_yaml::Value::Mapping(mut base), serde_yaml::Value::Mapping(over)) => {
            for (k, v) in over {
                let merged = match base.remove(&k) {
                    Some(old) => merge(old, v),
                    None => v,
                };
                base.insert(k, merged);
            }
            serde_yaml::Value::Mapping(base)
        }
        (_, over) => over,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(s: &str) -> Option<serde_yaml::Value> {
        Some(serde_yaml::from_str(s).unwrap())
    }

    fn file(s: &str) -> ResilienceFile {
        serde_yaml::from_str(s).unwrap()
    }

    #[test]
    fn nothing_configured_means_the_documented_defaults() {
        let s = ResilienceSettings::resolve(&ResilienceFile::default(), &ResilienceFile::default())
            .unwrap();
        assert_eq!(s, ResilienceSettings::default());
        assert!(s.retry.enabled && s.circuit_breaker.enabled && s.vendor_pause.enabled);
        assert_eq!(s.vendor_budget, None, "budgets are off unless configured");
        assert_eq!(s.retry.max_attempts, DEFAULT_RETRY_MAX_ATTEMPTS);
        assert_eq!(
            s.circuit_breaker.consecutive_failures,
            DEFAULT_BREAKER_CONSECUTIVE_FAILURES
        );
        assert!(s.validate().is_ok());
    }

    #[test]
    fn a_connection_overrides_single_keys_of_its_vendor_defaults() {
        let defaults = file(
            "retry: {max_attempts: 4, base_delay_ms: 100}\n\
             vendor_budget: {requests_per_second: 10, burst: 20}\n",
        );
        let connection = file(
            "retry: {max_attempts: 2}\n\
             vendor_budget: {max_wait_ms: 250}\n\
             circuit_breaker: {open_seconds: 5}\n",
        );
        let s = ResilienceSettings::resolve(&defaults, &connection).unwrap();
        assert_eq!(s.retry.max_attempts, 2);
        assert_eq!(s.retry.base_delay_ms, 100, "kept from the vendor defaults");
        assert_eq!(s.retry.max_delay_ms, DEFAULT_RETRY_MAX_DELAY_MS);
        let budget = s.vendor_budget.unwrap();
        assert_eq!(
            budget.limit(),
            Limit {
                per_second: 10.0,
                burst: 20
            }
        );
        assert_eq!(budget.max_wait(), Duration::from_millis(250));
        assert_eq!(s.circuit_breaker.open_seconds, 5);
        assert_eq!(
            s.circuit_breaker.consecutive_failures,
            DEFAULT_BREAKER_CONSECUTIVE_FAILURES
        );
    }

    #[test]
    fn a_connection_can_switch_off_a_vendor_default_budget() {
        let defaults = file("vendor_budget: {requests_per_second: 10}\n");
        let connection = file("vendor_budget: {enabled: false}\nretry: {enabled: false}\n");
        let s = ResilienceSettings::resolve(&defaults, &connection).unwrap();
        assert_eq!(s.vendor_budget, None);
        assert!(!s.retry.enabled);
    }

    #[test]
    fn budget_burst_defaults_to_one_second_of_requests() {
        let b: VendorBudgetSettings = serde_yaml::from_str("requests_per_second: 2.5").unwrap();
        assert_eq!(b.limit().burst, 3);
        assert_eq!(b.max_wait_ms, DEFAULT_VENDOR_BUDGET_MAX_WAIT_MS);
        let r: RateLimitSettings = serde_yaml::from_str("requests_per_second: 0.2").unwrap();
        assert_eq!(r.limit().burst, 1);
    }

    #[test]
    fn errors_name_the_key_the_reason_and_the_layer() {
        let err = ResilienceSettings::resolve(
            &ResilienceFile::default(),
            &file("retry: {max_attempts: 0}\n"),
        )
        .unwrap_err();
        assert_eq!(err.layer, Layer::Connection);
        assert_eq!(err.error.key, "retry.max_attempts");
        assert!(err.error.reason.contains("1 to 10"), "{err}");

        let err = ResilienceSettings::resolve(
            &file("circuit_breaker: {failure_percent: 150}\n"),
            &file("circuit_breaker: {open_seconds: 5}\n"),
        )
        .unwrap_err();
        assert_eq!(err.layer, Layer::VendorDefaults);
        assert_eq!(err.error.key, "circuit_breaker.failure_percent");

        let err = ResilienceSettings::resolve(
            &ResilienceFile::default(),
            &file("retry: {max_attemps: 3}\n"),
        )
        .unwrap_err();
        assert_eq!(err.error.key, "retry.max_attemps");
        assert!(err.error.reason.contains("unknown field"), "{err}");

        let err = ResilienceSettings::resolve(
            &ResilienceFile::default(),
            &file("vendor_budget: {burst: 5}\n"),
        )
        .unwrap_err();
        assert_eq!(err.error.key, "vendor_budget");
        assert!(err.error.reason.contains("requests_per_second"), "{err}");

        let err = ResilienceSettings::resolve(
            &ResilienceFile::default(),
            &file("vendor_budget: {requests_per_second: fast}\n"),
        )
        .unwrap_err();
        assert_eq!(err.error.key, "vendor_budget.requests_per_second");
    }

    #[test]
    fn unknown_sections_are_refused() {
        assert!(serde_yaml::from_str::<ResilienceFile>("retries: {}\n").is_err());
    }

    #[test]
    fn validation_bounds() {
        let bad_retry = [
            RetrySettings {
                max_attempts: 11,
                ..Default::default()
            },
            RetrySettings {
                base_delay_ms: 0,
                ..Default::default()
            },
            RetrySettings {
                max_delay_ms: 10,
                ..Default::default()
            },
            RetrySettings {
                budget_percent: 101,
                ..Default::default()
            },
            RetrySettings {
                budget_window_seconds: 0,
                ..Default::default()
            },
        ];
        for (s, key) in bad_retry.iter().zip([
            "max_attempts",
            "base_delay_ms",
            "max_delay_ms",
            "budget_percent",
            "budget_window_seconds",
        ]) {
            assert_eq!(s.validate().unwrap_err().key, key);
        }
        let bad_breaker = [
            (
                CircuitBreakerSettings {
                    consecutive_failures: 0,
                    ..Default::default()
                },
                "consecutive_failures",
            ),
            (
                CircuitBreakerSettings {
                    failure_percent: 0,
                    ..Default::default()
                },
                "failure_percent",
            ),
            (
                CircuitBreakerSettings {
                    window_seconds: 0,
                    ..Default::default()
                },
                "window_seconds",
            ),
            (
                CircuitBreakerSettings {
                    minimum_requests: 0,
                    ..Default::default()
                },
                "minimum_requests",
            ),
            (
                CircuitBreakerSettings {
                    open_seconds: 0,
                    ..Default::default()
                },
                "open_seconds",
            ),
        ];
        for (s, key) in bad_breaker {
            assert_eq!(s.validate().unwrap_err().key, key);
        }
        for rps in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let b = VendorBudgetSettings {
                enabled: true,
                requests_per_second: rps,
                burst: None,
                max_wait_ms: 0,
            };
            assert_eq!(b.validate().unwrap_err().key, "requests_per_second");
            let r = RateLimitSettings {
                requests_per_second: rps,
                burst: None,
            };
            assert_eq!(r.validate().unwrap_err().key, "requests_per_second");
        }
        let r = RateLimitSettings {
            requests_per_second: 5.0,
            burst: Some(0),
        };
        assert_eq!(r.validate().unwrap_err().key, "burst");
        let b = VendorBudgetSettings {
            enabled: true,
            requests_per_second: 5.0,
            burst: None,
            max_wait_ms: 60_001,
        };
        assert_eq!(b.validate().unwrap_err().key, "max_wait_ms");
        let p = VendorPauseSettings {
            default_seconds: 600,
            ..Default::default()
        };
        assert_eq!(p.validate().unwrap_err().key, "default_seconds");
    }

    #[test]
    fn pause_uses_retry_after_capped_or_the_default() {
        let p = VendorPauseSettings::default();
        assert_eq!(
            p.pause_for(Some(Duration::from_secs(2))),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            p.pause_for(Some(Duration::from_secs(86_400))),
            Some(Duration::from_secs(DEFAULT_VENDOR_PAUSE_MAX_SECONDS))
        );
        assert_eq!(
            p.pause_for(None),
            Some(Duration::from_secs(DEFAULT_VENDOR_PAUSE_SECONDS))
        );
        let off = VendorPauseSettings {
            enabled: false,
            ..Default::default()
        };
        assert_eq!(off.pause_for(Some(Duration::from_secs(2))), None);
    }

    #[test]
    fn merge_replaces_leaves_and_merges_mappings() {
        let merged = merge(
            yaml("{a: 1, b: {c: 2, d: 3}}").unwrap(),
            yaml("{b: {d: 4}, e: 5}").unwrap(),
        );
        assert_eq!(merged, yaml("{a: 1, b: {c: 2, d: 4}, e: 5}").unwrap());
    }
}
