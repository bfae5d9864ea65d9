//! Resilience at the vendor edge, per replica: the circuit breaker, retries with backoff and a
//! retry budget, the vendor-429 pause rules, and the settings for all of them plus vendor
//! budgets and tenant limits. Shared state (limits, budgets, pauses, idempotency records)
//! lives behind [`crate::state::StateStore`]; this module holds what each replica keeps for
//! itself, and [`edge::Edge`], which composes both around one vendor call.
//!
//! - [`settings`] — `retry`, `circuit_breaker`, `vendor_budget`, `vendor_pause`,
//!   `rate_limit`: serde structs, documented defaults, `validate()`, layering of a
//!   connection's keys over its vendor's defaults.
//! - [`breaker`] — closed / open / half-open with one probe at a time.
//! - [`retry`] — which failures are retried, jittered exponential backoff inside the
//!   deadline, the 20 % retry budget.
//! - [`pause`] — `Retry-After` (seconds or HTTP date) → a pause.
//! - [`edge`] — `pause → breaker → vendor budget → call ⟲ retry` for one vendor call.
//! - [`GuardRegistry`] — the per-connection breaker and retry budget, kept across reloads
//!   while a connection's settings stay the same.
//!
//! # Metrics (proposed; registered when this is wired in)
//!
//! Labels are bounded sets only: `vendor` (4 values), `operation` (13), fixed reason/state
//! words. No tenant and no connection label: connection names are bounded by config but only
//! unique per tenant, so a `connection` label would either collide across tenants or carry
//! the tenant. Per-connection detail goes to logs (every transition is logged with tenant and
//! connection) and to an admin endpoint listing [`GuardRegistry::circuits`].
//!
//! | metric | type | labels | meaning |
//! |---|---|---|---|
//! | `switchboard_vendor_retries_total` | counter | `vendor, operation, reason` | retries made; reason = [`retry::CallFailure::reason`]: `connect_error stale_connection reset timeout server_error` |
//! | `switchboard_vendor_retries_denied_total` | counter | `vendor, reason` | a retryable failure not retried: `attempts deadline retry_budget refused` |
//! | `switchboard_circuit_breakers` | gauge | `vendor, state` | connections per circuit state (`closed open half_open`), computed from [`GuardRegistry::circuits`] at scrape time |
//! | `switchboard_circuit_transitions_total` | counter | `vendor, to` | state changes (`open half_open closed`), from the breaker hook |
//! | `switchboard_vendor_calls_refused_total` | counter | `vendor, reason` | calls answered without a vendor call: `circuit_open paused budget_exhausted` |
//! | `switchboard_vendor_budget_wait_seconds` | histogram | `vendor` | waits for a reserved budget slot (its count = waits) |
//! | `switchboard_vendor_pauses_total` | counter | `vendor` | vendor 429s that paused (or extended the pause of) a connection |
//! | `switchboard_rate_limited_total` | counter | `operation` | requests refused by their tenant's `rate_limit` |
//! | `switchboard_idempotency_requests_total` | counter | `operation, result` | `started replayed in_progress mismatch unavailable` |
//! | `switchboard_idempotency_records` | gauge | `state` | in-process records (`in_flight completed`), from [`crate::state::memory::MemoryStore::stats`] |
//! | `switchboard_state_errors_total` | counter | `backend, op` | shared-state calls that failed (`acquire begin complete release pause paused_for`) |
//!
//! Series used by alerts are pre-created at 0 for every vendor, like
//! `switchboard_config_reloads_total`. Alerts: **circuit open** —
//! `max by (vendor) (switchboard_circuit_breakers{state="open"}) > 0` for 1 m; **vendor
//! budget exhausted** — `sum by (vendor) (rate(switchboard_vendor_calls_refused_total{reason="budget_exhausted"}[5m])) > 0`
//! for 5 m.

pub mod breaker;
pub mod edge;
pub mod metrics;
pub mod pause;
pub mod retry;
pub mod settings;
pub mod vendor_edge;
pub mod window;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::api::operation::Vendor;
use crate::clock::Clock;
use crate::state::ConnectionKey;
use breaker::{CircuitBreaker, CircuitState, Transition};
use retry::{RetryBudget, RetryPolicy};
use settings::ResilienceSettings;

/// Everything one connection's calls share on this replica.
#[derive(Debug)]
pub struct ConnectionGuards {
    pub key: ConnectionKey,
    pub vendor: Vendor,
    pub settings: ResilienceSettings,
    pub breaker: Arc<CircuitBreaker>,
    pub retry: RetryPolicy,
    pub retry_budget: RetryBudget,
}

/// Called on every circuit transition of any connection (metrics, logs).
pub type BreakerHook = Arc<dyn Fn(&ConnectionKey, Vendor, &Transition) + Send + Sync>;

/// The per-connection guards of this replica. A request asks for its connection's guards
/// with the connection's current settings; the same settings return the same guards (the
/// breaker's state survives reloads), changed settings start fresh ones (a closed circuit,
/// an empty retry budget).
pub struct GuardRegistry {
    clock: Arc<dyn Clock>,
    hook: Option<BreakerHook>,
    guards: Mutex<HashMap<ConnectionKey, Arc<ConnectionGuards>>>,
}

impl std::fmt::Debug for GuardRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardRegistry")
            .field("connections", &self.lock().len())
            .finish_non_exhaustive()
    }
}

impl GuardRegistry {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        GuardRegistry {
            clock,
            hook: None,
            guards: Mutex::new(HashMap::new()),
        }
    }

    pub fn with_hook(mut self, hook: BreakerHook) -> Self {
        self.hook = Some(hook);
        self
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<ConnectionKey, Arc<ConnectionGuards>>> {
        self.guards
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The guards of `key`, built for `settings`.
    pub fn get(
        &self,
        key: &ConnectionKey,
        vendor: Vendor,
        settings: &ResilienceSettings,
    ) -> Arc<ConnectionGuards> {
        let mut guards = self.lock();
        if let Some(existing) = guards.get(key) {
            if existing.vendor == vendor && existing.settings == *settings {
                return existing.clone();
            }
        }
        let mut breaker = CircuitBreaker::new(settings.circuit_breaker.clone(), self.clock.clone());
        if let Some(hook) = &self.hook {
            let hook = hook.clone();
            let key = key.clone();
            breaker = breaker.with_hook(Box::new(move |t| hook(&key, vendor, t)));
        }
        let built = Arc::new(ConnectionGuards {
            key: key.clone(),
            vendor,
            settings: settings.clone(),
            breaker: Arc::new(breaker),
            retry: RetryPolicy::new(settings.retry.clone()),
            retry_budget: RetryBudget::new(&settings.retry, self.clock.clone()),
        });
        guards.insert(key.clone(), built.clone());
        built
    }

    /// Forget connections that are gone after a reload.
    pub fn retain(&self, keep: impl Fn(&ConnectionKey) -> bool) {
        self.lock().retain(|k, _| keep(k));
    }

    /// Every known connection's circuit state, sorted (admin listing, the state gauge).
    pub fn circuits(&self) -> Vec<(ConnectionKey, Vendor, CircuitState)> {
        let mut out: Vec<_> = self
            .lock()
            .values()
            .map(|g| (g.key.clone(), g.vendor, g.breaker.state()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn guards_survive_while_settings_stay_the_same() {
        let clock = Arc::new(ManualClock::new(Duration::from_secs(1)));
        let registry = GuardRegistry::new(clock);
        let key = ConnectionKey::new("acme", "desk");
        let settings = ResilienceSettings::default();
        let a = registry.get(&key, Vendor::Libredesk, &settings);
        let b = registry.get(&key, Vendor::Libredesk, &settings);
        assert!(Arc::ptr_eq(&a, &b));
        let mut changed = settings.clone();
        changed.circuit_breaker.open_seconds = 1;
        let c = registry.get(&key, Vendor::Libredesk, &changed);
        assert!(!Arc::ptr_eq(&a, &c), "changed settings build fresh guards");
        assert_eq!(c.breaker.settings().open_seconds, 1);
        // Same name, other tenant: other guards.
        let d = registry.get(
            &ConnectionKey::new("other", "desk"),
            Vendor::Libredesk,
            &changed,
        );
        assert!(!Arc::ptr_eq(&c, &d));
    }

    #[test]
    fn circuits_lists_states_and_retain_forgets_removed_connections() {
        let clock = Arc::new(ManualClock::new(Duration::from_secs(1)));
        let seen: Arc<Mutex<Vec<(ConnectionKey, Vendor, CircuitState)>>> = Arc::default();
        let sink = seen.clone();
        let registry = GuardRegistry::new(clock).with_hook(Arc::new(move |key, vendor, t| {
            sink.lock().unwrap().push((key.clone(), vendor, t.to));
        }));
        let mut settings = ResilienceSettings::default();
        settings.circuit_breaker.consecutive_failures = 1;
        let b = ConnectionKey::new("acme", "b");
        let a = ConnectionKey::new("acme", "a");
        let gb = registry.get(&b, Vendor::Caac, &settings);
        registry.get(&a, Vendor::Libredesk, &settings);
        gb.breaker.try_acquire().unwrap().failure();
        assert_eq!(
            registry.circuits(),
            [
                (a.clone(), Vendor::Libredesk, CircuitState::Closed),
                (b.clone(), Vendor::Caac, CircuitState::Open)
            ]
        );
        assert_eq!(
            seen.lock().unwrap().as_slice(),
            [(b.clone(), Vendor::Caac, CircuitState::Open)]
        );
        registry.retain(|k| *k != b);
        assert_eq!(registry.circuits().len(), 1);
    }
}
