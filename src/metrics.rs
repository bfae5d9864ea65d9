//! Every metric switchboard exports, registered once per gateway in its own registry (so two
//! gateways in one test process never share counters). Names and label sets are the stable
//! contract of docs/architecture.md; every label takes values from a bounded set.

use std::collections::HashMap;
use std::time::Duration;

use arc_swap::ArcSwap;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
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

/// Static label values by address: label values are string literals (operation ids, vendor
/// names, codes, outcomes), so their (address, length) pairs form a bounded set and compare
/// without reading the text.
type LabelKey<const N: usize> = [(usize, usize); N];

fn label_key<const N: usize>(values: [&'static str; N]) -> LabelKey<N> {
    values.map(|v| (v.as_ptr() as usize, v.len()))
}

/// Metric handles resolved once per label set: a request finds its series without hashing
/// label text or taking the registry's lock (prometheus' `with_label_values` does both, and
/// clones the handle). Reads are lock-free; a label set seen for the first time copies the map.
struct Resolved<const N: usize, H> {
    map: ArcSwap<HashMap<LabelKey<N>, H>>,
}

impl<const N: usize, H: Clone> Resolved<N, H> {
    fn new() -> Self {
        Resolved {
            map: ArcSwap::from_pointee(HashMap::new()),
        }
    }

    /// Run `use_handles` on the handles of `values`, resolving them with `resolve` the first
    /// time.
    fn with(
        &self,
        values: [&'static str; N],
        resolve: impl FnOnce([&'static str; N]) -> H,
        use_handles: impl FnOnce(&H),
    ) {
        let key = label_key(values);
        if let Some(handles) = self.map.load().get(&key) {
            return use_handles(handles);
        }
        let handles = resolve(values);
        use_handles(&handles);
        self.map.rcu(|map| {
            let mut map = HashMap::clone(map);
            map.insert(key, handles.clone());
            map
        });
    }
}

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
    pub cache_bytes: IntGaugeVec,
    pub log_lines_dropped: IntCounter,
    /// `http_requests` by (operation, vendor, code) and `http_duration` by (operation, vendor).
    request_handles: Resolved<3, (IntCounter, Histogram)>,
    /// `vendor_requests` by (vendor, operation, outcome) and `vendor_duration` by (vendor,
    /// operation).
    vendor_handles: Resolved<3, (IntCounter, Histogram)>,
    /// `cache_requests` by (operation, result).
    cache_handles: Resolved<2, IntCounter>,
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
        let cache_bytes = IntGaugeVec::new(
            Opts::new(
                "switchboard_cache_bytes",
                "Bytes held in each cache (bodies, keys and per-entry overhead).",
            ),
            &["cache"],
        )?;
        let log_lines_dropped = IntCounter::new(
            "switchboard_log_lines_dropped_total",
            "Log lines dropped because the log writer's queue was full (stderr blocked).",
        )?;
        registry.register(Box::new(cache_bytes.clone()))?;
        registry.register(Box::new(log_lines_dropped.clone()))?;
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
            cache_bytes,
            log_lines_dropped,
            request_handles: Resolved::new(),
            vendor_handles: Resolved::new(),
            cache_handles: Resolved::new(),
        })
    }

    /// Count one cache lookup (`switchboard_cache_requests_total`).
    pub fn count_cache_request(&self, operation: &'static str, result: &'static str) {
        self.cache_handles.with(
            [operation, result],
            |labels| self.cache_requests.with_label_values(&labels),
            |counter| counter.inc(),
        );
    }

    /// Bring `switchboard_log_lines_dropped_total` up to `dropped` (the log writer's own count,
    /// read at each scrape).
    pub fn count_dropped_log_lines(&self, dropped: u64) {
        let counted = self.log_lines_dropped.get();
        if dropped > counted {
            self.log_lines_dropped.inc_by(dropped - counted);
        }
    }

    /// The registry `/metrics` renders: parts with metrics of their own (events, the cluster's)
    /// add to it.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn observe_vendor_call(
        &self,
        vendor: Vendor,
        operation: Operation,
        outcome: &'static str,
        elapsed: Duration,
    ) {
        self.vendor_handles.with(
            [vendor.as_str(), operation.as_str(), outcome],
            |[vendor, operation, outcome]| {
                (
                    self.vendor_requests
                        .with_label_values(&[vendor, operation, outcome]),
                    self.vendor_duration.with_label_values(&[vendor, operation]),
                )
            },
            |(count, duration)| {
                count.inc();
                duration.observe(elapsed.as_secs_f64());
            },
        );
    }

    pub fn observe_request(
        &self,
        operation: &'static str,
        vendor: &'static str,
        code: &'static str,
        elapsed: Duration,
    ) {
        self.request_handles.with(
            [operation, vendor, code],
            |[operation, vendor, code]| {
                (
                    self.http_requests
                        .with_label_values(&[operation, vendor, code]),
                    self.http_duration.with_label_values(&[operation, vendor]),
                )
            },
            |(count, duration)| {
                count.inc();
                duration.observe(elapsed.as_secs_f64());
            },
        );
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(metrics: &Metrics) -> String {
        String::from_utf8(metrics.render()).unwrap()
    }

    #[test]
    fn resolved_handles_count_on_their_own_series() {
        let metrics = Metrics::new().unwrap();
        for _ in 0..3 {
            metrics.observe_request("contacts.get", "libredesk", "ok", Duration::from_millis(2));
        }
        metrics.observe_request("contacts.get", "libredesk", "not_found", Duration::ZERO);
        metrics.observe_request("contacts.get", "caac", "ok", Duration::ZERO);
        metrics.observe_vendor_call(
            Vendor::Libredesk,
            Operation::ContactsGet,
            "ok",
            Duration::from_millis(1),
        );
        metrics.observe_vendor_call(
            Vendor::Libredesk,
            Operation::ContactsGet,
            "timeout",
            Duration::from_millis(1),
        );
        metrics.count_cache_request("contacts.get", "hit");
        metrics.count_cache_request("contacts.get", "hit");
        metrics.count_cache_request("contacts.get", "miss");
        let text = rendered(&metrics);
        for line in [
            r#"switchboard_http_requests_total{code="ok",operation="contacts.get",vendor="libredesk"} 3"#,
            r#"switchboard_http_requests_total{code="not_found",operation="contacts.get",vendor="libredesk"} 1"#,
            r#"switchboard_http_requests_total{code="ok",operation="contacts.get",vendor="caac"} 1"#,
            r#"switchboard_http_request_duration_seconds_count{operation="contacts.get",vendor="libredesk"} 4"#,
            r#"switchboard_http_request_duration_seconds_bucket{operation="contacts.get",vendor="libredesk",le="0.001"} 1"#,
            r#"switchboard_vendor_requests_total{operation="contacts.get",outcome="ok",vendor="libredesk"} 1"#,
            r#"switchboard_vendor_requests_total{operation="contacts.get",outcome="timeout",vendor="libredesk"} 1"#,
            r#"switchboard_vendor_request_duration_seconds_count{operation="contacts.get",vendor="libredesk"} 2"#,
            r#"switchboard_cache_requests_total{operation="contacts.get",result="hit"} 2"#,
            r#"switchboard_cache_requests_total{operation="contacts.get",result="miss"} 1"#,
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }

    #[test]
    fn dropped_log_lines_are_brought_up_to_the_writers_count() {
        let metrics = Metrics::new().unwrap();
        metrics.count_dropped_log_lines(0);
        assert_eq!(metrics.log_lines_dropped.get(), 0);
        metrics.count_dropped_log_lines(7);
        metrics.count_dropped_log_lines(7);
        assert_eq!(metrics.log_lines_dropped.get(), 7);
        metrics.count_dropped_log_lines(9);
        assert_eq!(metrics.log_lines_dropped.get(), 9);
        assert!(rendered(&metrics).contains("switchboard_log_lines_dropped_total 9"));
    }
}
