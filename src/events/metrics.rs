//! Event metrics, registered into the gateway's registry next to the existing ones.
//!
//! | metric | labels | what |
//! |---|---|---|
//! | `switchboard_event_intake_total` | `vendor`, `outcome` | webhooks and agent calls received; outcome = [`INTAKE_OUTCOMES`] |
//! | `switchboard_events_stored_total` | `vendor`, `type` | events stored (one webhook may store several, or none) |
//! | `switchboard_event_delivery_attempts_total` | `subscription`, `result` | POSTs to subscribers; result = [`ATTEMPT_RESULTS`] |
//! | `switchboard_event_delivery_duration_seconds` | `subscription` | histogram of one POST, connect to last byte |
//! | `switchboard_event_deliveries_total` | `subscription`, `outcome` | deliveries finished: `delivered` or `dead` |
//! | `switchboard_event_backlog` | `subscription` | pending deliveries now |
//! | `switchboard_event_backlog_oldest_seconds` | `subscription` | age of the oldest pending event (0 when none) |
//! | `switchboard_event_inbox_pending` | — | accepted vendor events still waiting for their vendor call |
//! | `switchboard_event_inbox_oldest_seconds` | — | age of the oldest of them (0 when none) |
//!
//! **Why `subscription` and not `tenant`.** docs/architecture.md keeps tenants (and IDs, paths)
//! out of labels. The issue asks for backlog "per tenant"; the honest bounded answer is the
//! subscription *name*, a word the operator writes in the connections file (so the set is as
//! large as the config, never driven by traffic). Names are not unique across tenants: two
//! tenants' `crm` subscriptions share one series (counts add up, the oldest age is the max), so
//! an operator who wants a series per tenant names subscriptions accordingly (`acme-crm`).
//! Which tenant is behind a growing backlog is answered by the admin API (per tenant and
//! subscription, from [`super::store::EventStore::backlog`]), not by the metric. A
//! subscription removed from the config has its series removed at the next refresh.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use prometheus::{
    Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

use super::clock::Millis;
use super::model::{EventType, Subscriptions};
use super::store::{Backlog, InboxBacklog};

/// `outcome` of `switchboard_event_intake_total`.
pub const INTAKE_OUTCOMES: &[&str] = &[
    "stored",
    "duplicate",
    "ignored",
    "unauthorized",
    "invalid",
    "unavailable",
];

/// `result` of `switchboard_event_delivery_attempts_total`.
pub const ATTEMPT_RESULTS: &[&str] = &[
    "success",
    "redirect",
    "client_error",
    "rate_limited",
    "gone",
    "server_error",
    "timeout",
    "connect_error",
];

/// Buckets from 5 ms to 60 s (the longest delivery timeout allowed).
const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0,
];

pub struct EventMetrics {
    pub intake: IntCounterVec,
    pub stored: IntCounterVec,
    pub attempts: IntCounterVec,
    pub attempt_duration: HistogramVec,
    pub finished: IntCounterVec,
    pub backlog: IntGaugeVec,
    pub backlog_oldest: GaugeVec,
    pub inbox_pending: IntGauge,
    pub inbox_oldest: Gauge,
    /// Subscription labels currently exported by the backlog gauges.
    exported: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for EventMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventMetrics")
    }
}

impl EventMetrics {
    pub fn new() -> Result<EventMetrics, prometheus::Error> {
        let metrics = EventMetrics {
            intake: IntCounterVec::new(
                Opts::new(
                    "switchboard_event_intake_total",
                    "Vendor webhooks and agent calls received, by vendor and outcome.",
                ),
                &["vendor", "outcome"],
            )?,
            stored: IntCounterVec::new(
                Opts::new(
                    "switchboard_events_stored_total",
                    "Events stored, by vendor and event type.",
                ),
                &["vendor", "type"],
            )?,
            attempts: IntCounterVec::new(
                Opts::new(
                    "switchboard_event_delivery_attempts_total",
                    "Delivery attempts to subscribers, by subscription name and result.",
                ),
                &["subscription", "result"],
            )?,
            attempt_duration: HistogramVec::new(
                HistogramOpts::new(
                    "switchboard_event_delivery_duration_seconds",
                    "One delivery attempt, connect to last byte.",
                )
                .buckets(BUCKETS.to_vec()),
                &["subscription"],
            )?,
            finished: IntCounterVec::new(
                Opts::new(
                    "switchboard_event_deliveries_total",
                    "Deliveries finished, by subscription name: delivered or dead.",
                ),
                &["subscription", "outcome"],
            )?,
            backlog: IntGaugeVec::new(
                Opts::new(
                    "switchboard_event_backlog",
                    "Deliveries waiting, by subscription name.",
                ),
                &["subscription"],
            )?,
            backlog_oldest: GaugeVec::new(
                Opts::new(
                    "switchboard_event_backlog_oldest_seconds",
                    "Age of the oldest event still waiting for delivery, by subscription name.",
                ),
                &["subscription"],
            )?,
            inbox_pending: IntGauge::new(
                "switchboard_event_inbox_pending",
                "Accepted vendor events still waiting for the vendor call that completes them.",
            )?,
            inbox_oldest: Gauge::new(
                "switchboard_event_inbox_oldest_seconds",
                "Age of the oldest accepted vendor event still waiting for its vendor call.",
            )?,
            exported: Mutex::new(HashSet::new()),
        };
        for vendor in ["caac", "chatcaptain", "libredesk", "llamadapro"] {
            for outcome in INTAKE_OUTCOMES {
                metrics.intake.with_label_values(&[vendor, outcome]);
            }
        }
        Ok(metrics)
    }

    /// Add every event metric to `registry` (the gateway's own).
    pub fn register(&self, registry: &Registry) -> Result<(), prometheus::Error> {
        registry.register(Box::new(self.intake.clone()))?;
        registry.register(Box::new(self.stored.clone()))?;
        registry.register(Box::new(self.attempts.clone()))?;
        registry.register(Box::new(self.attempt_duration.clone()))?;
        registry.register(Box::new(self.finished.clone()))?;
        registry.register(Box::new(self.backlog.clone()))?;
        registry.register(Box::new(self.backlog_oldest.clone()))?;
        registry.register(Box::new(self.inbox_pending.clone()))?;
        registry.register(Box::new(self.inbox_oldest.clone()))?;
        Ok(())
    }

    pub fn observe_intake(&self, vendor: &str, outcome: &'static str) {
        self.intake.with_label_values(&[vendor, outcome]).inc();
    }

    pub fn observe_stored(&self, vendor: &str, type_: EventType) {
        self.stored
            .with_label_values(&[vendor, type_.as_str()])
            .inc();
    }

    pub fn observe_attempt(&self, subscription: &str, result: &'static str, took: Duration) {
        self.attempts
            .with_label_values(&[subscription, result])
            .inc();
        self.attempt_duration
            .with_label_values(&[subscription])
            .observe(took.as_secs_f64());
    }

    pub fn observe_finished(&self, subscription: &str, outcome: &'static str) {
        self.finished
            .with_label_values(&[subscription, outcome])
            .inc();
    }

    pub fn observe_inbox(&self, inbox: InboxBacklog, now: Millis) {
        self.inbox_pending
            .set(i64::try_from(inbox.pending).unwrap_or(i64::MAX));
        let age = inbox
            .oldest_received_at
            .map_or(0.0, |t| (now - t).max(0) as f64 / 1000.0);
        self.inbox_oldest.set(age);
    }

    /// Set the backlog gauges from the store's per-(tenant, subscription) counts: summed per
    /// subscription name, oldest age the max. Every configured subscription gets a series (0
    /// when idle, so an alert can tell "empty" from "absent"); series of names no longer
    /// configured are removed.
    pub fn observe_backlog(&self, backlog: &[Backlog], subscriptions: &Subscriptions, now: Millis) {
        let mut by_name: BTreeMap<&str, (i64, f64)> = subscriptions
            .iter()
            .map(|s| (s.name.as_str(), (0, 0.0)))
            .collect();
        for b in backlog {
            let entry = by_name.entry(b.subscription.as_str()).or_insert((0, 0.0));
            entry.0 += i64::try_from(b.pending).unwrap_or(i64::MAX);
            let age = (now - b.oldest_created_at).max(0) as f64 / 1000.0;
            entry.1 = entry.1.max(age);
        }
        let mut exported = self.exported.lock().unwrap_or_else(|p| p.into_inner());
        for gone in exported
            .iter()
            .filter(|n| !by_name.contains_key(n.as_str()))
        {
            let _ = self.backlog.remove_label_values(&[gone]);
            let _ = self.backlog_oldest.remove_label_values(&[gone]);
        }
        exported.clear();
        for (name, (pending, oldest)) in by_name {
            self.backlog.with_label_values(&[name]).set(pending);
            self.backlog_oldest.with_label_values(&[name]).set(oldest);
            exported.insert(name.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::model::{SubscriptionFile, SubscriptionsFile};
    use std::path::Path;

    fn subscriptions(names: &[(&str, &str)]) -> Subscriptions {
        let mut raw = SubscriptionsFile::new();
        for (tenant, name) in names {
            raw.entry(tenant.to_string()).or_default().insert(
                name.to_string(),
                SubscriptionFile {
                    url: "https://x.example/h".into(),
                    secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
                    events: vec!["*".into()],
                },
            );
        }
        Subscriptions::try_build(Path::new("c.yaml"), &raw, |_| true).unwrap()
    }

    fn render(registry: &Registry) -> String {
        let mut out = Vec::new();
        prometheus::Encoder::encode(
            &prometheus::TextEncoder::new(),
            &registry.gather(),
            &mut out,
        )
        .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn backlog_is_per_subscription_name_never_per_tenant() {
        let m = EventMetrics::new().unwrap();
        let registry = Registry::new();
        m.register(&registry).unwrap();
        let subs = subscriptions(&[("acme", "crm"), ("globex", "crm"), ("acme", "audit")]);
        let backlog = vec![
            Backlog {
                tenant: "acme".into(),
                subscription: "crm".into(),
                pending: 3,
                oldest_created_at: 10_000,
            },
            Backlog {
                tenant: "globex".into(),
                subscription: "crm".into(),
                pending: 2,
                oldest_created_at: 40_000,
            },
        ];
        m.observe_backlog(&backlog, &subs, 70_000);
        let text = render(&registry);
        assert!(
            text.contains("switchboard_event_backlog{subscription=\"crm\"} 5"),
            "{text}"
        );
        assert!(
            text.contains("switchboard_event_backlog_oldest_seconds{subscription=\"crm\"} 60"),
            "{text}"
        );
        assert!(
            text.contains("switchboard_event_backlog{subscription=\"audit\"} 0"),
            "{text}"
        );
        assert!(
            !text.contains("acme") && !text.contains("globex"),
            "tenants leaked into labels:\n{text}"
        );

        // audit removed from the config: its series disappears.
        m.observe_backlog(&[], &subscriptions(&[("acme", "crm")]), 70_000);
        let text = render(&registry);
        assert!(!text.contains("subscription=\"audit\""), "{text}");
        assert!(
            text.contains("switchboard_event_backlog{subscription=\"crm\"} 0"),
            "{text}"
        );
    }

    #[test]
    fn intake_outcomes_exist_at_zero_and_count() {
        let m = EventMetrics::new().unwrap();
        let registry = Registry::new();
        m.register(&registry).unwrap();
        assert!(render(&registry).contains(
            "switchboard_event_intake_total{outcome=\"unauthorized\",vendor=\"libredesk\"} 0"
        ));
        m.observe_intake("libredesk", "stored");
        m.observe_stored("libredesk", EventType::MessageReceived);
        m.observe_attempt("crm", "server_error", Duration::from_millis(20));
        m.observe_finished("crm", "dead");
        m.observe_inbox(
            InboxBacklog {
                pending: 2,
                oldest_received_at: Some(1_000),
            },
            31_000,
        );
        let text = render(&registry);
        assert!(text.contains("switchboard_event_inbox_pending 2"), "{text}");
        assert!(
            text.contains("switchboard_event_inbox_oldest_seconds 30"),
            "{text}"
        );
        assert!(text
            .contains("switchboard_event_intake_total{outcome=\"stored\",vendor=\"libredesk\"} 1"));
        assert!(text.contains(
            "switchboard_events_stored_total{type=\"message.received\",vendor=\"libredesk\"} 1"
        ));
        assert!(text.contains("switchboard_event_delivery_attempts_total{result=\"server_error\",subscription=\"crm\"} 1"));
        assert!(text.contains(
            "switchboard_event_deliveries_total{outcome=\"dead\",subscription=\"crm\"} 1"
        ));
        assert!(text
            .contains("switchboard_event_delivery_duration_seconds_count{subscription=\"crm\"} 1"));
    }
}
