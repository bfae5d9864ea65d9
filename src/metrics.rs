//! Every metric switchboard exports, registered once per gateway in its own registry (so two
//! gateways in one test process never share counters). Names and label sets are the stable
//! contract of docs/architecture.md; every label takes values from a bounded set.

use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::api::operation::{Operation, Vendor};

/// Buckets from 1 ms to 45 s (the longest vendor timeout a platform team would set).
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 45.0,
];

/// `reason` label values of `switchboard_auth_failures_total`, pre-created at 0.
pub const AUTH_FAILURE_REASONS: &[&str] = &[
    "missing",
    "repeated_header",
    "malformed",
    "critical_extension",
    "expired",
    "not_yet_valid",
    "bad_signature",
    "wrong_algorithm",
    "wrong_issuer",
    "wrong_audience",
    "missing_claim",
    "unknown_key",
    "missing_scope",
];

pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub vendor_requests: IntCounterVec,
    pub vendor_duration: HistogramVec,
    pub cache_requests: IntCounterVec,
    pub cache_entries: IntGaugeVec,
    pub auth_failures: IntCounterVec,
    pub config_reloads: IntCounterVec,
    pub config_generation: IntGauge,
    pub read_timeouts: IntCounterVec,
    /// Retries, circuits, budgets, pauses, tenant limits, idempotency (issue 13).
    pub resilience: crate::resilience::metrics::ResilienceMetrics,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let http_requests = IntCounterVec::new(
            Opts::new(
                "switchboard_http_requests_total",
                "Requests answered, by operation, vendor and code (ok or the error code).",
            ),
            &["operation", "vendor", "code"],
        )?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "switchboard_http_request_duration_seconds",
                "Whole-request latency.",
            )
            .buckets(BUCKETS.to_vec()),
            &["operation", "vendor"],
        )?;
        let vendor_requests = IntCounterVec::new(
            Opts::new(
                "switchboard_vendor_requests_total",
                "Vendor calls, by outcome.",
            ),
            &["vendor", "operation", "outcome"],
        )?;
        let vendor_duration = HistogramVec::new(
            HistogramOpts::new(
                "switchboard_vendor_request_duration_seconds",
                "Latency of the vendor call alone.",
            )
            .buckets(BUCKETS.to_vec()),
            &["vendor", "operation"],
        )?;
        let cache_requests = IntCounterVec::new(
            Opts::new(
                "switchboard_cache_requests_total",
                "Cache lookups, by result.",
            ),
            &["operation", "result"],
        )?;
        let cache_entries = IntGaugeVec::new(
            Opts::new("switchboard_cache_entries", "Entries held in each cache."),
            &["cache"],
        )?;
        let auth_failures = IntCounterVec::new(
            Opts::new(
                "switchboard_auth_failures_total",
                "Requests refused by authentication or authorization, by reason.",
            ),
            &["reason"],
        )?;
        let config_reloads = IntCounterVec::new(
            Opts::new(
                "switchboard_config_reloads_total",
                "Config reload attempts, by result.",
            ),
            &["result"],
        )?;
        let config_generation = IntGauge::new(
            "switchboard_config_generation",
            "Generation of the active config; +1 per applied reload.",
        )?;
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_duration.clone()))?;
        registry.register(Box::new(vendor_requests.clone()))?;
        registry.register(Box::new(vendor_duration.clone()))?;
        registry.register(Box::new(cache_requests.clone()))?;
        registry.register(Box::new(cache_entries.clone()))?;
        registry.register(Box::new(auth_failures.clone()))?;
        registry.register(Box::new(config_reloads.clone()))?;
        let read_timeouts = IntCounterVec::new(
            Opts::new(
                "switchboard_http_read_timeouts_total",
                "Client connections closed because the request header or body took too long.",
            ),
            &["phase"],
        )?;
        registry.register(Box::new(config_generation.clone()))?;
        registry.register(Box::new(read_timeouts.clone()))?;
        for phase in ["header", "body"] {
            read_timeouts.with_label_values(&[phase]);
        }
        // Series that alerts use with increase() must exist at 0 before the first event.
        for result in ["success", "failure"] {
            config_reloads.with_label_values(&[result]);
        }
        for reason in AUTH_FAILURE_REASONS {
            auth_failures.with_label_values(&[reason]);
        }
        let resilience = crate::resilience::metrics::ResilienceMetrics::register(&registry)?;
        Ok(Metrics {
            registry,
            http_requests,
            http_duration,
            vendor_requests,
            vendor_duration,
            cache_requests,
            cache_entries,
            auth_failures,
            config_reloads,
            config_generation,
            read_timeouts,
            resilience,
        })
    }

    /// The registry `/metrics` renders: parts with metrics of their own (events) add to it.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn observe_vendor_call(
        &self,
        vendor: Vendor,
        operation: Operation,
        outcome: &str,
        elapsed: Duration,
    ) {
        self.vendor_requests
            .with_label_values(&[vendor.as_str(), operation.as_str(), outcome])
            .inc();
        self.vendor_duration
            .with_label_values(&[vendor.as_str(), operation.as_str()])
            .observe(elapsed.as_secs_f64());
    }

    pub fn observe_request(&self, operation: &str, vendor: &str, code: &str, elapsed: Duration) {
        self.http_requests
            .with_label_values(&[operation, vendor, code])
            .inc();
        self.http_duration
            .with_label_values(&[operation, vendor])
            .observe(elapsed.as_secs_f64());
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let families = self.registry.gather();
        if let Err(e) = TextEncoder::new().encode(&families, &mut out) {
            tracing::error!(error = %e, "could not encode metrics");
        }
        out
    }
}
