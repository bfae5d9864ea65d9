//! Events as apps see them (docs/api.md "Events"), and the settings that say where they go.
//!
//! - [`Event`] is the envelope `{id, type, created_at, connection, vendor, data}`; `data` is the
//!   normalized resource exactly as a GET would answer it, with gateway IDs.
//! - [`NewEvent`] is what intake hands to the store: the envelope's parts plus the tenant, the
//!   vendor's identity of the change (dedup) and the ordering key (the conversation).
//! - [`Subscriptions`] is the validated, per-tenant `{url, secret, events[]}` table; a
//!   subscription is addressed by `(tenant, name)`, and its name is the only part of it that
//!   may appear in a metric label.
//! - [`EventsSettings`] is the `events:` block of the gateway file (`data_dir`, retention,
//!   delivery timeouts).
//!
//! Config errors name file, key and reason, and never quote a secret.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::clock::{rfc3339, Millis};
use super::signing::SigningSecret;
use crate::config_error::ConfigError;

// ----- the event --------------------------------------------------------------------------

/// What happened. The wire names are docs/api.md's; every layer (subscriptions, `types=` filter,
/// metric label `type`) uses these strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    /// A message from a contact reached the vendor.
    MessageReceived,
    /// A message to the contact was sent (by an agent, a bot or through the gateway).
    MessageSent,
    /// A message changed (its status, its text).
    MessageUpdated,
    ConversationCreated,
    /// Status, assignee, priority or tags changed.
    ConversationUpdated,
    ContactCreated,
    ContactUpdated,
}

impl EventType {
    pub const ALL: [EventType; 7] = [
        EventType::MessageReceived,
        EventType::MessageSent,
        EventType::MessageUpdated,
        EventType::ConversationCreated,
        EventType::ConversationUpdated,
        EventType::ContactCreated,
        EventType::ContactUpdated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::MessageReceived => "message.received",
            EventType::MessageSent => "message.sent",
            EventType::MessageUpdated => "message.updated",
            EventType::ConversationCreated => "conversation.created",
            EventType::ConversationUpdated => "conversation.updated",
            EventType::ContactCreated => "contact.created",
            EventType::ContactUpdated => "contact.updated",
        }
    }

    pub fn parse(s: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for EventType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        EventType::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown event type {s:?}; known: {}",
                known_types()
            ))
        })
    }
}

fn known_types() -> String {
    EventType::ALL
        .iter()
        .map(|t| t.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parse the `types=` query of `GET /v1/events` (comma-separated). An unknown name is an
/// error, never silently dropped (a typo must not turn into "no events").
pub fn parse_types(raw: &str) -> Result<Vec<EventType>, String> {
    let mut types = Vec::new();
    for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let t = EventType::parse(part)
            .ok_or_else(|| format!("unknown event type {part:?}; known: {}", known_types()))?;
        if !types.contains(&t) {
            types.push(t);
        }
    }
    if types.is_empty() {
        return Err("`types` names no event type".to_owned());
    }
    Ok(types)
}

/// The envelope every app receives, pushed or pulled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub type_: EventType,
    pub created_at: String,
    pub connection: String,
    pub vendor: String,
    pub data: Value,
}

/// Prefix of event IDs.
pub const EVENT_ID_PREFIX: &str = "evt_";

/// A new event ID: `evt_` + 128 random bits, URL-safe, no `.` (Standard Webhooks signs
/// `id.timestamp.body`, so an ID must never contain the delimiter).
pub fn new_event_id() -> String {
    let bytes: [u8; 16] = rand::random();
    format!("{EVENT_ID_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// Whether `s` has the shape of an event ID (for `Last-Event-ID` and admin paths).
pub fn is_event_id(s: &str) -> bool {
    s.strip_prefix(EVENT_ID_PREFIX).is_some_and(|rest| {
        (16..=64).contains(&rest.len())
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// What intake hands to the store: one normalized change, ready to be stored and fanned out.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub tenant: String,
    pub connection: String,
    pub vendor: String,
    pub type_: EventType,
    /// The normalized resource (gateway IDs), as a GET would answer it.
    pub data: Value,
    /// The vendor's identity of this change, unique per connection (a second webhook with the
    /// same key is a duplicate and stores nothing).
    pub dedup_key: String,
    /// Deliveries sharing an order key reach a subscriber in the order they were stored: the
    /// gateway ID of the conversation (or of the contact, for contact events).
    pub order_key: Option<String>,
    pub created_at: Millis,
}

impl NewEvent {
    /// The envelope with `id`, serialized exactly as it is stored, listed and delivered.
    pub fn envelope(&self, id: &str) -> Event {
        Event {
            id: id.to_owned(),
            type_: self.type_,
            created_at: rfc3339(self.created_at),
            connection: self.connection.clone(),
            vendor: self.vendor.clone(),
            data: self.data.clone(),
        }
    }
}

/// An event as the store keeps it: its place in the tenant's log and the exact bytes every
/// reader gets (so a pushed body, a pulled page and an SSE frame are the same JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// Position in the store's log: increasing, never reused. Cursors carry it.
    pub seq: u64,
    pub id: String,
    pub tenant: String,
    pub connection: String,
    pub type_: EventType,
    pub order_key: Option<String>,
    pub created_at: Millis,
    /// The serialized [`Event`].
    pub body: String,
}

impl StoredEvent {
    pub fn event(&self) -> Result<Event, serde_json::Error> {
        serde_json::from_str(&self.body)
    }
}

// ----- subscriptions ----------------------------------------------------------------------

/// One subscription as written in the connections file:
///
/// ```yaml
/// subscriptions:
///   acme:                       # tenant
///     crm:                      # subscription name (metric label, admin output)
///       url: https://crm.acme.example/hooks/switchboard
///       secret: ${ACME_CRM_WEBHOOK_SECRET}    # whsec_<base64 of 24–64 random bytes>
///       events: [message.received, conversation.updated]   # or ["*"]
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionFile {
    pub url: String,
    pub secret: String,
    pub events: Vec<String>,
}

/// `subscriptions:` — tenant → subscription name → subscription.
pub type SubscriptionsFile = BTreeMap<String, BTreeMap<String, SubscriptionFile>>;

/// Which event types a subscription wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventFilter(u8);

impl EventFilter {
    pub const ALL: EventFilter = EventFilter(0x7f);

    pub fn only(types: &[EventType]) -> EventFilter {
        EventFilter(types.iter().fold(0, |acc, t| acc | t.bit()))
    }

    pub fn matches(self, t: EventType) -> bool {
        self.0 & t.bit() != 0
    }

    pub fn types(self) -> Vec<EventType> {
        EventType::ALL
            .into_iter()
            .filter(|t| self.matches(*t))
            .collect()
    }
}

/// A validated subscription.
pub struct Subscription {
    pub tenant: String,
    pub name: String,
    pub url: url::Url,
    pub secret: SigningSecret,
    pub events: EventFilter,
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("tenant", &self.tenant)
            .field("name", &self.name)
            .field("url", &self.url.as_str())
            .field("secret", &"<redacted>")
            .field("events", &self.events.types())
            .finish()
    }
}

/// Every tenant's subscriptions, immutable (rebuilt and swapped on reload).
#[derive(Debug, Default)]
pub struct Subscriptions {
    by_tenant: HashMap<String, Vec<Arc<Subscription>>>,
}

impl Subscriptions {
    /// Validate the `subscriptions:` block of `file`. `is_tenant` says whether a tenant is
    /// configured (a subscription for an unknown tenant is a typo, not a no-op).
    pub fn try_build(
        file: &Path,
        raw: &SubscriptionsFile,
        is_tenant: impl Fn(&str) -> bool,
    ) -> Result<Subscriptions, ConfigError> {
        let err = |key: String, reason: String| ConfigError {
            file: file.to_path_buf(),
            key,
            reason,
        };
        let mut by_tenant = HashMap::new();
        for (tenant, subs) in raw {
            if !is_tenant(tenant) {
                return Err(err(
                    format!("subscriptions.{tenant}"),
                    "no such tenant in `tenants`".to_owned(),
                ));
            }
            let mut built = Vec::with_capacity(subs.len());
            for (name, sub) in subs {
                let key = format!("subscriptions.{tenant}.{name}");
                if !valid_name(name) {
                    return Err(err(key, "use letters, digits, '-' and '_'".to_owned()));
                }
                let url =
                    validate_webhook_url(&sub.url).map_err(|r| err(format!("{key}.url"), r))?;
                let secret = SigningSecret::parse(&sub.secret)
                    .map_err(|r| err(format!("{key}.secret"), r.to_owned()))?;
                let events =
                    parse_event_filter(&sub.events).map_err(|r| err(format!("{key}.events"), r))?;
                built.push(Arc::new(Subscription {
                    tenant: tenant.clone(),
                    name: name.clone(),
                    url,
                    secret,
                    events,
                }));
            }
            by_tenant.insert(tenant.clone(), built);
        }
        Ok(Subscriptions { by_tenant })
    }

    /// The tenant's subscriptions that want `type_`, by name (what the store fans out to).
    pub fn matching(&self, tenant: &str, type_: EventType) -> Vec<String> {
        self.by_tenant
            .get(tenant)
            .into_iter()
            .flatten()
            .filter(|s| s.events.matches(type_))
            .map(|s| s.name.clone())
            .collect()
    }

    pub fn get(&self, tenant: &str, name: &str) -> Option<&Arc<Subscription>> {
        self.by_tenant.get(tenant)?.iter().find(|s| s.name == name)
    }

    /// Every subscription, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Subscription>> {
        self.by_tenant.values().flatten()
    }

    pub fn is_empty(&self) -> bool {
        self.by_tenant.values().all(Vec::is_empty)
    }
}

fn parse_event_filter(events: &[String]) -> Result<EventFilter, String> {
    if events.is_empty() {
        return Err(format!(
            "name at least one event type, or \"*\" for all; known: {}",
            known_types()
        ));
    }
    if events.iter().any(|e| e == "*") {
        if events.len() > 1 {
            return Err("\"*\" already means every event type; list nothing else".to_owned());
        }
        return Ok(EventFilter::ALL);
    }
    let mut types = Vec::with_capacity(events.len());
    for e in events {
        let t = EventType::parse(e).ok_or_else(|| {
            format!(
                "unknown event type {e:?}; known: {}, or \"*\"",
                known_types()
            )
        })?;
        types.push(t);
    }
    Ok(EventFilter::only(&types))
}

/// A webhook destination: `https://…`, or `http://` to a loopback address only (a local
/// receiver, the demo). No credentials in the URL (the signature authenticates), no fragment.
pub fn validate_webhook_url(raw: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(raw).map_err(|e| format!("not a URL: {e}"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("no credentials in the URL: the signature authenticates the sender".to_owned());
    }
    if url.fragment().is_some() {
        return Err("a webhook URL has no fragment".to_owned());
    }
    let host = url.host_str().ok_or("the URL has no host")?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(host) => Ok(url),
        "http" => Err(format!(
            "plain http only to a loopback address (127.0.0.1, ::1, localhost), not {host:?}; use https"
        )),
        other => Err(format!("scheme {other:?} is not supported; use https")),
    }
}

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
}

// ----- the `events:` block of the gateway file --------------------------------------------

/// ```yaml
/// events:
///   data_dir: ./data             # relative to the gateway file; created if missing
///   retention_hours: 168         # pulled events (and dead letters) are kept this long
///   delivery:
///     timeout_ms: 15000          # one POST to a subscriber, connect to last byte
///     retry_window_hours: 24     # then the delivery is dead-lettered
///     max_in_flight: 16          # concurrent POSTs of the worker
///     first_retry_ms: 5000       # delay after the first failure; ×3 after each further one
///   stream_heartbeat_seconds: 15 # comment frames on an idle `GET /v1/events/stream`
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsFile {
    pub data_dir: String,
    #[serde(default = "default_retention_hours")]
    pub retention_hours: u64,
    #[serde(default)]
    pub delivery: DeliveryFile,
    #[serde(default = "default_heartbeat_seconds")]
    pub stream_heartbeat_seconds: u64,
}

fn default_heartbeat_seconds() -> u64 {
    15
}

fn default_retention_hours() -> u64 {
    7 * 24
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryFile {
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "default_retry_window_hours")]
    pub retry_window_hours: u64,
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    #[serde(default = "default_first_retry_ms")]
    pub first_retry_ms: u64,
}

fn default_first_retry_ms() -> u64 {
    5_000
}

impl Default for DeliveryFile {
    fn default() -> Self {
        DeliveryFile {
            timeout_ms: default_timeout_ms(),
            retry_window_hours: default_retry_window_hours(),
            max_in_flight: default_max_in_flight(),
            first_retry_ms: default_first_retry_ms(),
        }
    }
}

fn default_timeout_ms() -> u64 {
    15_000
}
fn default_retry_window_hours() -> u64 {
    24
}
fn default_max_in_flight() -> usize {
    16
}

/// The validated `events:` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsSettings {
    /// Absolute (resolved against the gateway file's folder).
    pub data_dir: PathBuf,
    pub retention: Duration,
    pub delivery_timeout: Duration,
    pub retry_window: Duration,
    pub max_in_flight: usize,
    /// Delay after a delivery's first failure (each further one is three times longer).
    pub first_retry: Duration,
    /// How often an idle event stream gets a comment frame.
    pub heartbeat: Duration,
}

impl EventsSettings {
    /// Validate `raw`, read from `file` (the gateway file), whose folder anchors `data_dir`.
    pub fn try_build(file: &Path, raw: &EventsFile) -> Result<EventsSettings, ConfigError> {
        let err = |key: &str, reason: &str| ConfigError {
            file: file.to_path_buf(),
            key: format!("events.{key}"),
            reason: reason.to_owned(),
        };
        if raw.data_dir.trim().is_empty() {
            return Err(err("data_dir", "must name a folder"));
        }
        if !(1..=24 * 90).contains(&raw.retention_hours) {
            return Err(err("retention_hours", "use 1 to 2160 (90 days)"));
        }
        let d = &raw.delivery;
        if !(100..=60_000).contains(&d.timeout_ms) {
            return Err(err("delivery.timeout_ms", "use 100 to 60000"));
        }
        if !(1..=24 * 7).contains(&d.retry_window_hours) {
            return Err(err("delivery.retry_window_hours", "use 1 to 168"));
        }
        if d.retry_window_hours > raw.retention_hours {
            return Err(err(
                "delivery.retry_window_hours",
                "must not exceed retention_hours (an event must outlive its retries)",
            ));
        }
        if !(1..=1024).contains(&d.max_in_flight) {
            return Err(err("delivery.max_in_flight", "use 1 to 1024"));
        }
        if !(100..=3_600_000).contains(&d.first_retry_ms) {
            return Err(err(
                "delivery.first_retry_ms",
                "use 100 to 3600000 (an hour)",
            ));
        }
        if !(1..=300).contains(&raw.stream_heartbeat_seconds) {
            return Err(err("stream_heartbeat_seconds", "use 1 to 300"));
        }
        let base = file.parent().unwrap_or(Path::new("."));
        Ok(EventsSettings {
            data_dir: base.join(&raw.data_dir),
            retention: Duration::from_secs(raw.retention_hours * 3600),
            delivery_timeout: Duration::from_millis(d.timeout_ms),
            retry_window: Duration::from_secs(d.retry_window_hours * 3600),
            max_in_flight: d.max_in_flight,
            first_retry: Duration::from_millis(d.first_retry_ms),
            heartbeat: Duration::from_secs(raw.stream_heartbeat_seconds),
        })
    }

    /// Which settings only take effect at start (the store is opened once).
    pub fn restart_required(&self, next: &EventsSettings) -> Vec<&'static str> {
        let mut keys = Vec::new();
        if self.data_dir != next.data_dir {
            keys.push("events.data_dir");
        }
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[test]
    fn event_types_round_trip_their_api_names() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, format!("\"{}\"", t.as_str()));
            assert_eq!(serde_json::from_str::<EventType>(&json).unwrap(), t);
        }
        assert_eq!(
            EventType::ALL.map(EventType::as_str),
            [
                "message.received",
                "message.sent",
                "message.updated",
                "conversation.created",
                "conversation.updated",
                "contact.created",
                "contact.updated"
            ]
        );
        assert!(serde_json::from_str::<EventType>("\"message.deleted\"").is_err());
    }

    #[test]
    fn envelope_serializes_exactly_the_documented_keys() {
        let new = NewEvent {
            tenant: "acme".into(),
            connection: "desk".into(),
            vendor: "libredesk".into(),
            type_: EventType::MessageReceived,
            data: json!({"id": "msg_x"}),
            dedup_key: "k".into(),
            order_key: Some("cv_x".into()),
            created_at: 1_614_265_330_000,
        };
        let value = serde_json::to_value(new.envelope("evt_abc")).unwrap();
        assert_eq!(
            value,
            json!({
                "id": "evt_abc",
                "type": "message.received",
                "created_at": "2021-02-25T15:02:10.000Z",
                "connection": "desk",
                "vendor": "libredesk",
                "data": {"id": "msg_x"}
            })
        );
    }

    #[test]
    fn event_ids_are_unique_url_safe_and_recognized() {
        let a = new_event_id();
        let b = new_event_id();
        assert_ne!(a, b);
        assert!(is_event_id(&a), "{a}");
        assert!(!a.contains('.'));
        for bad in [
            "",
            "evt_",
            "evt_short",
            "msg_aaaaaaaaaaaaaaaaaaaaaa",
            "evt_aaaaaaaaaaaaaaaa.aaaa",
        ] {
            assert!(!is_event_id(bad), "{bad}");
        }
    }

    #[test]
    fn types_query_is_strict() {
        assert_eq!(
            parse_types("message.received, conversation.updated,message.received").unwrap(),
            vec![EventType::MessageReceived, EventType::ConversationUpdated]
        );
        assert!(parse_types("message.recieved")
            .unwrap_err()
            .contains("unknown"));
        assert!(parse_types(" , ").is_err());
    }

    fn sub(url: &str, secret: &str, events: &[&str]) -> SubscriptionFile {
        SubscriptionFile {
            url: url.into(),
            secret: secret.into(),
            events: events.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn build(raw: SubscriptionsFile) -> Result<Subscriptions, ConfigError> {
        Subscriptions::try_build(Path::new("connections.yaml"), &raw, |t| {
            t == "acme" || t == "globex"
        })
    }

    #[test]
    fn subscriptions_match_by_tenant_and_type() {
        let raw: SubscriptionsFile = [
            (
                "acme".to_owned(),
                [
                    (
                        "crm".to_owned(),
                        sub("https://crm.example/hook", SECRET, &["message.received"]),
                    ),
                    (
                        "audit".to_owned(),
                        sub("http://127.0.0.1:9999/", SECRET, &["*"]),
                    ),
                ]
                .into(),
            ),
            (
                "globex".to_owned(),
                [("all".to_owned(), sub("https://g.example/h", SECRET, &["*"]))].into(),
            ),
        ]
        .into();
        let subs = build(raw).unwrap();
        let mut names = subs.matching("acme", EventType::MessageReceived);
        names.sort();
        assert_eq!(names, vec!["audit", "crm"]);
        assert_eq!(
            subs.matching("acme", EventType::ConversationUpdated),
            vec!["audit"]
        );
        assert_eq!(
            subs.matching("nobody", EventType::MessageReceived),
            Vec::<String>::new()
        );
        assert_eq!(
            subs.get("acme", "crm").unwrap().url.as_str(),
            "https://crm.example/hook"
        );
        let debug = format!("{:?}", subs.get("acme", "crm").unwrap());
        assert!(!debug.contains("MfKQ9r8"), "{debug}");
    }

    #[test]
    fn subscription_errors_name_the_key_and_hide_the_secret() {
        let cases: Vec<(SubscriptionFile, &str, &str)> = vec![
            (
                sub("http://crm.example/h", SECRET, &["*"]),
                "subscriptions.acme.crm.url",
                "loopback",
            ),
            (
                sub("ftp://crm.example/h", SECRET, &["*"]),
                "subscriptions.acme.crm.url",
                "scheme",
            ),
            (
                sub("https://u:p@crm.example/h", SECRET, &["*"]),
                "subscriptions.acme.crm.url",
                "credentials",
            ),
            (
                sub("not a url", SECRET, &["*"]),
                "subscriptions.acme.crm.url",
                "not a URL",
            ),
            (
                sub("https://crm.example/h", "hunter2-plain-secret", &["*"]),
                "subscriptions.acme.crm.secret",
                "whsec_",
            ),
            (
                sub("https://crm.example/h", "whsec_c2hvcnQ=", &["*"]),
                "subscriptions.acme.crm.secret",
                "24",
            ),
            (
                sub("https://crm.example/h", "whsec_!!!notbase64!!!", &["*"]),
                "subscriptions.acme.crm.secret",
                "base64",
            ),
            (
                sub("https://crm.example/h", SECRET, &[]),
                "subscriptions.acme.crm.events",
                "at least one",
            ),
            (
                sub("https://crm.example/h", SECRET, &["message.recieved"]),
                "subscriptions.acme.crm.events",
                "unknown",
            ),
            (
                sub("https://crm.example/h", SECRET, &["*", "message.sent"]),
                "subscriptions.acme.crm.events",
                "*",
            ),
        ];
        for (s, key, reason) in cases {
            let raw: SubscriptionsFile =
                [("acme".to_owned(), [("crm".to_owned(), s)].into())].into();
            let e = build(raw).unwrap_err();
            assert_eq!(e.key, key);
            assert!(e.reason.contains(reason), "{key}: {}", e.reason);
            assert!(!e.to_string().contains("hunter2"), "{e}");
        }
        let raw: SubscriptionsFile = [(
            "initech".to_owned(),
            [("crm".to_owned(), sub("https://x.example", SECRET, &["*"]))].into(),
        )]
        .into();
        assert_eq!(build(raw).unwrap_err().key, "subscriptions.initech");
        let raw: SubscriptionsFile = [(
            "acme".to_owned(),
            [(
                "bad name".to_owned(),
                sub("https://x.example", SECRET, &["*"]),
            )]
            .into(),
        )]
        .into();
        assert_eq!(build(raw).unwrap_err().key, "subscriptions.acme.bad name");
    }

    #[test]
    fn webhook_urls_allow_https_and_loopback_http_only() {
        for ok in [
            "https://crm.example/hook?x=1",
            "http://127.0.0.1:8080/h",
            "http://[::1]:8080/h",
            "http://localhost:9/h",
        ] {
            assert!(validate_webhook_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.1/h",
            "http://crm.example/h",
            "https://crm.example/h#frag",
            "mailto:x@y",
        ] {
            assert!(validate_webhook_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn events_settings_resolve_data_dir_and_check_ranges() {
        let file = Path::new("/etc/switchboard/switchboard.yaml");
        let raw: EventsFile = serde_yaml::from_str("data_dir: ./data\n").unwrap();
        let s = EventsSettings::try_build(file, &raw).unwrap();
        assert_eq!(s.data_dir, Path::new("/etc/switchboard/./data"));
        assert_eq!(s.retention, Duration::from_secs(7 * 24 * 3600));
        assert_eq!(s.retry_window, Duration::from_secs(24 * 3600));
        assert_eq!(s.delivery_timeout, Duration::from_secs(15));
        let raw: EventsFile = serde_yaml::from_str("data_dir: /var/lib/sb\n").unwrap();
        assert_eq!(
            EventsSettings::try_build(file, &raw).unwrap().data_dir,
            Path::new("/var/lib/sb")
        );
        for (yaml, key) in [
            ("data_dir: ''", "events.data_dir"),
            ("data_dir: d\nretention_hours: 0", "events.retention_hours"),
            (
                "data_dir: d\ndelivery: {timeout_ms: 5}",
                "events.delivery.timeout_ms",
            ),
            (
                "data_dir: d\nretention_hours: 12",
                "events.delivery.retry_window_hours",
            ),
            (
                "data_dir: d\ndelivery: {max_in_flight: 0}",
                "events.delivery.max_in_flight",
            ),
        ] {
            let raw: EventsFile = serde_yaml::from_str(yaml).unwrap();
            assert_eq!(
                EventsSettings::try_build(file, &raw).unwrap_err().key,
                key,
                "{yaml}"
            );
        }
        assert!(serde_yaml::from_str::<EventsFile>("data_dir: d\ncolour: red").is_err());
        let a =
            EventsSettings::try_build(file, &serde_yaml::from_str("data_dir: a").unwrap()).unwrap();
        let b =
            EventsSettings::try_build(file, &serde_yaml::from_str("data_dir: b").unwrap()).unwrap();
        assert_eq!(a.restart_required(&b), vec!["events.data_dir"]);
        assert!(a.restart_required(&a.clone()).is_empty());
    }
}
