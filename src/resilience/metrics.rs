//! The vendor edge's metrics: retries, circuit breakers, vendor budgets and pauses, tenant
//! limits and idempotent replays. Registered in the gateway's registry by
//! [`crate::metrics::Metrics::new`]. Every label is a bounded set: vendor names, operation
//! ids and fixed words — never a tenant, a connection or a key.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

use super::breaker::CircuitState;
use super::edge::{EdgeReport, Refusal};
use crate::api::operation::Vendor;

/// `state` label values of `switchboard_circuit_breakers`.
pub const CIRCUIT_STATES: &[&str] = &["closed", "open", "half_open"];
/// `reason` label values of `switchboard_vendor_calls_refused_total`.
pub const REFUSAL_REASONS: &[&str] = &["circuit_open", "paused", "budget_exhausted"];
/// `reason` label values of `switchboard_vendor_retries_denied_total`.
pub const RETRY_DENIED_REASONS: &[&str] = &["attempts", "deadline", "retry_budget", "refused"];
/// `result` label values of `switchboard_idempotency_requests_total`.
pub const IDEMPOTENCY_RESULTS: &[&str] = &[
    "started",
    "replayed",
    "in_progress",
    "mismatch",
    "unavailable",
];

/// Buckets for budget waits: 1 ms to the 60 s `max_wait_ms` ceiling.
const WAIT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// The edge's metric handles.
#[derive(Clone)]
pub struct ResilienceMetrics {
    pub retries: IntCounterVec,
    pub retries_denied: IntCounterVec,
    pub circuit_breakers: IntGaugeVec,
    pub circuit_transitions: IntCounterVec,
    pub calls_refused: IntCounterVec,
    pub budget_wait: HistogramVec,
    pub vendor_pauses: IntCounterVec,
    pub rate_limited: IntCounterVec,
    pub idempotency: IntCounterVec,
    pub state_errors: IntCounterVec,
}

impl ResilienceMetrics {
    /// Create and register every series; the series alerts read are pre-created at 0 for
    /// every vendor, so `increase()` and `max by (vendor)` see them before the first event.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok::<_, prometheus::Error>(c)
        };
        let retries = counter(
            "switchboard_vendor_retries_total",
            "Vendor calls sent again after a failure, by the failure that was retried.",
            &["vendor", "operation", "reason"],
        )?;
        let retries_denied = counter(
            "switchboard_vendor_retries_denied_total",
            "Retryable vendor failures not retried: attempts, deadline, retry_budget or refused.",
            &["vendor", "reason"],
        )?;
        let circuit_breakers = IntGaugeVec::new(
            Opts::new(
                "switchboard_circuit_breakers",
                "Connections per circuit state (closed, open, half_open), counted at each scrape.",
            ),
            &["vendor", "state"],
        )?;
        registry.register(Box::new(circuit_breakers.clone()))?;
        let circuit_transitions = counter(
            "switchboard_circuit_transitions_total",
            "Circuit state changes, by the state entered.",
            &["vendor", "to"],
        )?;
        let calls_refused = counter(
            "switchboard_vendor_calls_refused_total",
            "Vendor calls answered by the gateway without calling the vendor, by reason.",
            &["vendor", "reason"],
        )?;
        let budget_wait = HistogramVec::new(
            HistogramOpts::new(
                "switchboard_vendor_budget_wait_seconds",
                "Time vendor calls waited for a reserved vendor-budget slot.",
            )
            .buckets(WAIT_BUCKETS.to_vec()),
            &["vendor"],
        )?;
        registry.register(Box::new(budget_wait.clone()))?;
        let vendor_pauses = counter(
            "switchboard_vendor_pauses_total",
            "Vendor 429 answers that paused (or extended the pause of) a connection.",
            &["vendor"],
        )?;
        let rate_limited = counter(
            "switchboard_rate_limited_total",
            "Requests refused by their tenant's rate_limit.",
            &["operation"],
        )?;
        let idempotency = counter(
            "switchboard_idempotency_requests_total",
            "Requests that carried an Idempotency-Key, by what the store said.",
            &["operation", "result"],
        )?;
        let state_errors = counter(
            "switchboard_state_errors_total",
            "Calls to the shared state store that failed (limits and pauses then let calls through).",
            &["backend"],
        )?;
        for vendor in Vendor::ALL {
            let v = vendor.as_str();
            for state in CIRCUIT_STATES {
                circuit_breakers.with_label_values(&[v, state]);
            }
            for reason in REFUSAL_REASONS {
                calls_refused.with_label_values(&[v, reason]);
            }
            for to in CIRCUIT_STATES {
                circuit_transitions.with_label_values(&[v, to]);
            }
            vendor_pauses.with_label_values(&[v]);
            budget_wait.with_label_values(&[v]);
            for reason in RETRY_DENIED_REASONS {
                retries_denied.with_label_values(&[v, reason]);
            }
        }
        Ok(ResilienceMetrics {
            retries,
            retries_denied,
            circuit_breakers,
            circuit_transitions,
            calls_refused,
            budget_wait,
            vendor_pauses,
            rate_limited,
            idempotency,
            state_errors,
        })
    }

    /// Count what one [`super::edge::Edge::run`] did.
    pub fn observe_edge(
        &self,
        vendor: Vendor,
        operation: &str,
        backend: &str,
        report: &EdgeReport,
        refused: Option<&Refusal>,
    ) {
        let v = vendor.as_str();
        for reason in &report.retries {
            self.retries
                .with_label_values(&[v, operation, reason])
                .inc();
        }
        if let Some(stop) = report.stopped {
            use super::retry::StopReason;
            if matches!(
                stop,
                StopReason::AttemptsExhausted
                    | StopReason::Deadline
                    | StopReason::RetryBudget
                    | StopReason::Refused
            ) {
                self.retries_denied
                    .with_label_values(&[v, stop.as_str()])
                    .inc();
            }
        }
        if let Some(refusal) = refused.or(report.refused_retry.as_ref()) {
            self.calls_refused
                .with_label_values(&[v, refusal.reason()])
                .inc();
        }
        if report.budget_waits > 0 {
            self.budget_wait
                .with_label_values(&[v])
                .observe(report.budget_wait.as_secs_f64());
        }
        if report.paused.is_some() {
            self.vendor_pauses.with_label_values(&[v]).inc();
        }
        if report.state_errors > 0 {
            self.state_errors
                .with_label_values(&[backend])
                .inc_by(u64::from(report.state_errors));
        }
    }

    /// Set the circuit gauge from every known connection's state (at scrape time).
    pub fn report_circuits(&self, circuits: impl IntoIterator<Item = (Vendor, CircuitState)>) {
        let mut counts = [[0i64; 3]; 4];
        for (vendor, state) in circuits {
            let v = Vendor::ALL.iter().position(|x| *x == vendor).unwrap_or(0);
            let s = match state {
                CircuitState::Closed => 0,
                CircuitState::Open => 1,
                CircuitState::HalfOpen => 2,
            };
            counts[v][s] += 1;
        }
        for (v, vendor) in Vendor::ALL.iter().enumerate() {
            for (s, state) in CIRCUIT_STATES.iter().enumerate() {
                self.circuit_breakers
                    .with_label_values(&[vendor.as_str(), state])
                    .set(counts[v][s]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::resilience::retry::StopReason;

    fn value(registry: &Registry, name: &str, labels: &[(&str, &str)]) -> f64 {
        registry
            .gather()
            .iter()
            .filter(|f| f.name() == name)
            .flat_map(|f| f.get_metric().iter())
            .find(|m| {
                labels.iter().all(|(k, v)| {
                    m.get_label()
                        .iter()
                        .any(|l| l.name() == *k && l.value() == *v)
                })
            })
            .map(|m| {
                if m.get_counter().has_value() {
                    m.get_counter().value()
                } else {
                    m.get_gauge().value()
                }
            })
            .unwrap_or(f64::NAN)
    }

    #[test]
    fn alert_series_exist_at_zero_and_an_edge_report_is_counted() {
        let registry = Registry::new();
        let m = ResilienceMetrics::register(&registry).unwrap();
        let open = [("vendor", "caac"), ("state", "open")];
        assert_eq!(value(&registry, "switchboard_circuit_breakers", &open), 0.0);
        let exhausted = [("vendor", "caac"), ("reason", "budget_exhausted")];
        assert_eq!(
            value(
                &registry,
                "switchboard_vendor_calls_refused_total",
                &exhausted
            ),
            0.0
        );
        let report = EdgeReport {
            attempts: 2,
            retries: vec!["reset"],
            stopped: Some(StopReason::RetryBudget),
            budget_wait: Duration::from_millis(100),
            budget_waits: 1,
            paused: Some(Duration::from_secs(2)),
            ..EdgeReport::default()
        };
        m.observe_edge(
            Vendor::Caac,
            "contacts.get",
            "memory",
            &report,
            Some(&Refusal::BudgetExhausted {
                retry_after: Duration::from_secs(1),
            }),
        );
        assert_eq!(
            value(
                &registry,
                "switchboard_vendor_retries_total",
                &[("reason", "reset"), ("operation", "contacts.get")]
            ),
            1.0
        );
        assert_eq!(
            value(
                &registry,
                "switchboard_vendor_retries_denied_total",
                &[("reason", "retry_budget")]
            ),
            1.0
        );
        assert_eq!(
            value(
                &registry,
                "switchboard_vendor_calls_refused_total",
                &exhausted
            ),
            1.0
        );
        assert_eq!(
            value(
                &registry,
                "switchboard_vendor_pauses_total",
                &[("vendor", "caac")]
            ),
            1.0
        );
        m.report_circuits([
            (Vendor::Caac, CircuitState::Open),
            (Vendor::Caac, CircuitState::Open),
            (Vendor::Libredesk, CircuitState::Closed),
        ]);
        assert_eq!(value(&registry, "switchboard_circuit_breakers", &open), 2.0);
        m.report_circuits([]);
        assert_eq!(value(&registry, "switchboard_circuit_breakers", &open), 0.0);
    }
}
