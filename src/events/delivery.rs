//! Delivery: the outbox, POSTed to subscribers, at least once, in order per conversation.
//!
//! - [`Backoff`] is the backoff schedule as pure functions: exponential (×3 from 5 s),
//!   capped at 2 h, with downward jitter (never later than the nominal time), for a window of
//!   24 h from storage (or replay); one last attempt lands exactly at the window's end, then the
//!   delivery is dead-lettered. A `Retry-After` from the receiver pushes the next attempt later,
//!   never earlier.
//! - [`classify`] reads an answer the Standard Webhooks way: 2xx delivered; `410 Gone` means
//!   the receiver wants no more (dead-lettered at once, replayable); anything else (3xx
//!   included: redirects are not followed) is retried.
//! - [`DeliveryWorker`] claims due deliveries from the [`EventStore`], signs and POSTs them
//!   through a [`WebhookSender`], and records each result. One claim holds at most one delivery
//!   per (subscription, conversation), so order is kept even with many attempts in flight.
//!   It runs as a pingora `BackgroundService`; `run_once` is the same step for tests, driven by
//!   an injected clock.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::sync::watch;

use super::clock::{duration_ms, Millis, SystemWallClock, WallClock};
use super::metrics::EventMetrics;
use super::model::{EventsSettings, Subscriptions};
use super::sender::{WebhookRequest, WebhookSender};
use super::signing::webhook_headers;
use super::store::{Attempt, AttemptResult, Delivery, EventStore, StoreError};

/// Dead-letter reasons (bounded words, shown by the admin API).
pub const DEAD_WINDOW_EXHAUSTED: &str = "retry_window_exhausted";
pub const DEAD_GONE: &str = "gone";
pub const DEAD_SUBSCRIPTION_REMOVED: &str = "subscription_removed";
pub const DEAD_UNSUBSCRIBED: &str = "unsubscribed";

/// When to try again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Delay after the first failure.
    pub first_delay: Duration,
    /// Each further delay is this many times the previous one.
    pub multiplier: u32,
    /// No delay is longer (also caps how far a `Retry-After` can push).
    pub max_delay: Duration,
    /// From storage (or replay) to dead letter.
    pub window: Duration,
    /// Fraction a delay may be shortened by at random (0.2: 80–100 % of nominal), so
    /// deliveries that failed together do not retry together.
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            first_delay: Duration::from_secs(5),
            multiplier: 3,
            max_delay: Duration::from_secs(2 * 3600),
            window: Duration::from_secs(24 * 3600),
            jitter: 0.2,
        }
    }
}

impl Backoff {
    pub fn with_window(window: Duration) -> Self {
        Backoff {
            window,
            ..Self::default()
        }
    }

    /// The nominal delay after `failures` failed attempts (1 = after the first).
    pub fn nominal_delay(&self, failures: u32) -> Duration {
        let mut delay = self.first_delay;
        for _ in 1..failures.max(1) {
            delay = delay.saturating_mul(self.multiplier);
            if delay >= self.max_delay {
                return self.max_delay;
            }
        }
        delay.min(self.max_delay)
    }

    /// The delay with jitter; `sample` is uniform in [0, 1).
    pub fn delay(&self, failures: u32, sample: f64) -> Duration {
        let nominal = self.nominal_delay(failures);
        let cut = self.jitter.clamp(0.0, 1.0) * sample.clamp(0.0, 1.0);
        nominal.mul_f64(1.0 - cut)
    }

    /// When the next attempt is due after a failure at `now`, the `failures`-th in this window;
    /// `None` means dead-letter (the window is over).
    pub fn next_attempt(
        &self,
        window_start: Millis,
        failures: u32,
        now: Millis,
        retry_after: Option<Duration>,
        sample: f64,
    ) -> Option<Millis> {
        let window_end = window_start.saturating_add(duration_ms(self.window));
        if now >= window_end {
            return None;
        }
        let mut next = now.saturating_add(duration_ms(self.delay(failures, sample)));
        if let Some(wait) = retry_after {
            next = next.max(now.saturating_add(duration_ms(wait.min(self.max_delay))));
        }
        Some(next.min(window_end))
    }

    /// Every nominal attempt time (offsets from the window start) when every attempt fails
    /// at once: the schedule the README documents.
    pub fn schedule(&self) -> Vec<Duration> {
        let mut at = Duration::ZERO;
        let mut times = vec![at];
        let mut failures = 0;
        while at < self.window {
            failures += 1;
            at = (at + self.nominal_delay(failures)).min(self.window);
            times.push(at);
        }
        times
    }
}

/// What a receiver's answer means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// `410 Gone`: stop trying.
    Gone,
    Retry,
}

pub fn classify(status: u16) -> Verdict {
    match status {
        200..=299 => Verdict::Delivered,
        410 => Verdict::Gone,
        _ => Verdict::Retry,
    }
}

/// The `result` label of an answered attempt.
pub fn result_label(status: u16) -> &'static str {
    match status {
        200..=299 => "success",
        300..=399 => "redirect",
        410 => "gone",
        429 => "rate_limited",
        400..=499 => "client_error",
        _ => "server_error",
    }
}

/// What one attempt did (for logs and tests).
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptReport {
    pub delivery: u64,
    pub event_id: String,
    pub subscription: String,
    pub status: Option<u16>,
    pub result: AttemptResult,
    /// False when the lease had been lost meanwhile (the result was not recorded).
    pub recorded: bool,
}

/// The delivery worker. Cheap to share (`Arc`); `run_once` may be called concurrently.
pub struct DeliveryWorker {
    store: Arc<dyn EventStore>,
    subscriptions: Arc<ArcSwap<Subscriptions>>,
    sender: Arc<dyn WebhookSender>,
    clock: Arc<dyn WallClock>,
    policy: Backoff,
    timeout: Duration,
    max_in_flight: usize,
    retention: Duration,
    metrics: Option<Arc<EventMetrics>>,
    jitter: Arc<dyn Fn() -> f64 + Send + Sync>,
    /// Longest sleep of the run loop with nothing due (a safety net; appends and replays wake
    /// it at once through the store's change feed).
    idle_wait: Duration,
    /// How often the run loop prunes old events and refreshes the backlog gauges.
    maintenance_every: Duration,
}

impl std::fmt::Debug for DeliveryWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryWorker")
            .field("policy", &self.policy)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

const USER_AGENT: &str = concat!("switchboard/", env!("CARGO_PKG_VERSION"));

impl DeliveryWorker {
    /// A worker with the settings' timeout, retry window, concurrency and retention, the wall
    /// clock and random jitter. `subscriptions` is the live table (reloads swap it).
    pub fn new(
        store: Arc<dyn EventStore>,
        subscriptions: Arc<ArcSwap<Subscriptions>>,
        sender: Arc<dyn WebhookSender>,
        settings: &EventsSettings,
    ) -> DeliveryWorker {
        DeliveryWorker {
            store,
            subscriptions,
            sender,
            clock: Arc::new(SystemWallClock),
            policy: Backoff {
                first_delay: settings.first_retry,
                ..Backoff::with_window(settings.retry_window)
            },
            timeout: settings.delivery_timeout,
            max_in_flight: settings.max_in_flight,
            retention: settings.retention,
            metrics: None,
            jitter: Arc::new(rand::random::<f64>),
            idle_wait: Duration::from_secs(5),
            maintenance_every: Duration::from_secs(15),
        }
    }

    pub fn with_clock(mut self, clock: Arc<dyn WallClock>) -> Self {
        self.clock = clock;
        self
    }

    pub fn with_policy(mut self, policy: Backoff) -> Self {
        self.policy = policy;
        self
    }

    /// The jitter source, uniform in [0, 1) (tests pin it).
    pub fn with_jitter(mut self, jitter: impl Fn() -> f64 + Send + Sync + 'static) -> Self {
        self.jitter = Arc::new(jitter);
        self
    }

    pub fn with_metrics(mut self, metrics: Arc<EventMetrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    pub fn with_idle_wait(mut self, idle_wait: Duration) -> Self {
        self.idle_wait = idle_wait;
        self
    }

    /// A claim outlives the longest attempt, so a live worker never loses its lease.
    fn lease(&self) -> Duration {
        self.timeout + Duration::from_secs(30)
    }

    /// Claim what is due now and attempt it all, concurrently; answers what was attempted.
    pub async fn run_once(&self) -> Result<Vec<AttemptReport>, StoreError> {
        let now = self.clock.now_ms();
        let claimed = self
            .store
            .claim_due(now, self.max_in_flight, self.lease())
            .await?;
        let attempts = claimed.into_iter().map(|d| self.attempt(d));
        futures::future::join_all(attempts)
            .await
            .into_iter()
            .collect()
    }

    async fn attempt(&self, delivery: Delivery) -> Result<AttemptReport, StoreError> {
        let subscriptions = self.subscriptions.load_full();
        let subscription = subscriptions.get(&delivery.tenant, &delivery.subscription);
        let (status, result, error) = match subscription {
            None => (
                None,
                AttemptResult::Dead {
                    reason: DEAD_SUBSCRIPTION_REMOVED,
                },
                Some("the subscription is no longer configured".to_owned()),
            ),
            Some(s) if !s.events.matches(delivery.event.type_) => (
                None,
                AttemptResult::Dead {
                    reason: DEAD_UNSUBSCRIBED,
                },
                Some(format!(
                    "the subscription no longer wants {}",
                    delivery.event.type_
                )),
            ),
            Some(s) => self.post(&delivery, &s.url, &s.secret).await,
        };
        let at = self.clock.now_ms();
        let recorded = self
            .store
            .record_attempt(
                &delivery,
                Attempt {
                    at,
                    status,
                    error,
                    result: result.clone(),
                },
            )
            .await?;
        if let (Some(metrics), true) = (&self.metrics, recorded) {
            match result {
                AttemptResult::Delivered => {
                    metrics.observe_finished(&delivery.subscription, "delivered")
                }
                AttemptResult::Dead { .. } => {
                    metrics.observe_finished(&delivery.subscription, "dead")
                }
                AttemptResult::Retry { .. } => {}
            }
        }
        match &result {
            AttemptResult::Dead { reason } => tracing::warn!(
                event_id = %delivery.event.id,
                subscription = %delivery.subscription,
                reason,
                "event delivery dead-lettered"
            ),
            AttemptResult::Retry { .. } => tracing::debug!(
                event_id = %delivery.event.id,
                subscription = %delivery.subscription,
                "event delivery failed; will retry"
            ),
            AttemptResult::Delivered => {}
        }
        Ok(AttemptReport {
            delivery: delivery.id,
            event_id: delivery.event.id,
            subscription: delivery.subscription,
            status,
            result,
            recorded,
        })
    }

    /// One signed POST, and what it means for the delivery.
    async fn post(
        &self,
        delivery: &Delivery,
        url: &url::Url,
        secret: &super::signing::SigningSecret,
    ) -> (Option<u16>, AttemptResult, Option<String>) {
        let body = Bytes::from(delivery.event.body.clone());
        let timestamp = self.clock.now_ms().div_euclid(1000);
        let mut headers: Vec<(HeaderName, HeaderValue)> = vec![
            (
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (
                http::header::USER_AGENT,
                HeaderValue::from_static(USER_AGENT),
            ),
        ];
        match webhook_headers(secret, &delivery.event.id, timestamp, &body) {
            Ok(signed) => headers.extend(signed),
            Err(e) => {
                // Event IDs are minted by the store and always header-safe; a failure here is
                // a corrupt row, which no retry fixes.
                return (
                    None,
                    AttemptResult::Dead {
                        reason: "unsignable",
                    },
                    Some(e.to_string()),
                );
            }
        }
        let started = Instant::now();
        let answer = self
            .sender
            .post(WebhookRequest {
                url: url.clone(),
                headers,
                body,
                timeout: self.timeout,
            })
            .await;
        let took = started.elapsed();
        let now = self.clock.now_ms();
        let failures = delivery.attempts.saturating_add(1);
        let retry = |retry_after: Option<Duration>| match self.policy.next_attempt(
            delivery.window_start,
            failures,
            now,
            retry_after,
            (self.jitter)(),
        ) {
            Some(next_attempt_at) => AttemptResult::Retry { next_attempt_at },
            None => AttemptResult::Dead {
                reason: DEAD_WINDOW_EXHAUSTED,
            },
        };
        match answer {
            Ok(response) => {
                if let Some(m) = &self.metrics {
                    m.observe_attempt(&delivery.subscription, result_label(response.status), took);
                }
                let result = match classify(response.status) {
                    Verdict::Delivered => AttemptResult::Delivered,
                    Verdict::Gone => AttemptResult::Dead { reason: DEAD_GONE },
                    Verdict::Retry => retry(response.retry_after),
                };
                let error = (result != AttemptResult::Delivered)
                    .then(|| format!("the subscriber answered {}", response.status));
                (Some(response.status), result, error)
            }
            Err(e) => {
                if let Some(m) = &self.metrics {
                    m.observe_attempt(&delivery.subscription, e.result(), took);
                }
                // The network stack's words (never the body or the signature): for operators.
                (None, retry(None), Some(e.to_string()))
            }
        }
    }

    /// Prune events past retention and refresh the backlog gauges.
    pub async fn maintain(&self) -> Result<(), StoreError> {
        let now = self.clock.now_ms();
        let pruned = self
            .store
            .prune(now.saturating_sub(duration_ms(self.retention)))
            .await?;
        if pruned > 0 {
            tracing::info!(pruned, "events past retention removed");
        }
        if let Some(metrics) = &self.metrics {
            let backlog = self.store.backlog().await?;
            metrics.observe_backlog(&backlog, &self.subscriptions.load(), now);
            metrics.observe_inbox(self.store.inbox_backlog().await?, now);
        }
        Ok(())
    }

    /// The loop: deliver what is due, then sleep until the next delivery falls due, something
    /// is stored or replayed, or shutdown. Store errors are logged and retried after a pause
    /// (a full disk must not end delivery for good).
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) {
        let mut changes = self.store.changes();
        let mut next_maintenance = Instant::now();
        loop {
            if *shutdown.borrow() {
                return;
            }
            changes.mark_unchanged();
            if Instant::now() >= next_maintenance {
                if let Err(e) = self.maintain().await {
                    tracing::error!(error = %e, "event store maintenance failed");
                }
                next_maintenance = Instant::now() + self.maintenance_every;
            }
            let wait = match self.run_once().await {
                // A full batch: more may be due right now.
                Ok(reports) if reports.len() >= self.max_in_flight => Duration::ZERO,
                Ok(_) => match self.store.next_due().await {
                    Ok(Some(due)) => {
                        let ms = u64::try_from(due - self.clock.now_ms()).unwrap_or(0);
                        Duration::from_millis(ms).min(self.idle_wait)
                    }
                    Ok(None) => self.idle_wait,
                    Err(e) => {
                        tracing::error!(error = %e, "event store unavailable to the delivery worker");
                        self.idle_wait
                    }
                },
                Err(e) => {
                    tracing::error!(error = %e, "event store unavailable to the delivery worker");
                    self.idle_wait
                }
            };
            let wait = wait.min(next_maintenance.saturating_duration_since(Instant::now()));
            if wait.is_zero() {
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = changes.changed() => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}

#[async_trait]
impl BackgroundService for DeliveryWorker {
    /// Runs until the server shuts down. Attempts in flight at shutdown finish (each within the
    /// delivery timeout); anything not recorded is delivered again after the restart.
    async fn start(&self, shutdown: ShutdownWatch) {
        self.run(shutdown).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::clock::ManualWallClock;
    use crate::events::model::StoredEvent;
    use crate::events::model::{EventType, NewEvent, SubscriptionFile, SubscriptionsFile};
    use crate::events::sender::PingoraSender;
    use crate::events::signing::{verify_standard, SigningSecret, WEBHOOK_ID, WEBHOOK_TIMESTAMP};
    use crate::events::store::{Appended, DeliveryState, SqliteStore};
    use axum::extract::State;
    use axum::response::IntoResponse;
    use http::{HeaderMap, StatusCode};
    use serde_json::json;
    use std::path::Path;
    use std::sync::Mutex;

    const T0: Millis = 1_750_000_000_000;
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    // ----- the schedule ---------------------------------------------------------------------

    #[test]
    fn nominal_delays_grow_threefold_from_five_seconds_up_to_two_hours() {
        let p = Backoff::default();
        let secs: Vec<u64> = (1..=9).map(|n| p.nominal_delay(n).as_secs()).collect();
        assert_eq!(secs, [5, 15, 45, 135, 405, 1215, 3645, 7200, 7200]);
        assert_eq!(p.nominal_delay(0), Duration::from_secs(5));
        assert_eq!(p.nominal_delay(u32::MAX), Duration::from_secs(7200));
    }

    #[test]
    fn the_schedule_spans_exactly_the_window() {
        let p = Backoff::default();
        let schedule = p.schedule();
        assert_eq!(schedule[0], Duration::ZERO);
        assert_eq!(schedule[1], Duration::from_secs(5));
        assert_eq!(schedule[2], Duration::from_secs(20));
        assert_eq!(*schedule.last().unwrap(), Duration::from_secs(24 * 3600));
        assert!(schedule.windows(2).all(|w| w[0] < w[1]));
        // 8 growing attempts reach 2 h gaps after about 3.5 h; then 2-hourly to the end.
        assert_eq!(schedule.len(), 20, "{schedule:?}");
    }

    #[test]
    fn jitter_only_shortens_a_delay_and_by_at_most_a_fifth() {
        let p = Backoff::default();
        assert_eq!(p.delay(3, 0.0), Duration::from_secs(45));
        assert_eq!(p.delay(3, 0.5), Duration::from_secs(45).mul_f64(0.9));
        let min = p.delay(8, 0.999_999);
        assert!(min >= Duration::from_secs(7200).mul_f64(0.8) && min < Duration::from_secs(7200));
        assert_eq!(
            p.delay(8, 7.0),
            Duration::from_secs(7200).mul_f64(0.8),
            "sample clamped"
        );
    }

    #[test]
    fn next_attempt_ends_at_the_window_and_honours_retry_after() {
        let p = Backoff::default();
        let day = 24 * 3600 * 1000;
        assert_eq!(p.next_attempt(T0, 1, T0, None, 0.0), Some(T0 + 5_000));
        // Retry-After later than the backoff wins; earlier does not shorten it.
        assert_eq!(
            p.next_attempt(T0, 1, T0, Some(Duration::from_secs(120)), 0.0),
            Some(T0 + 120_000)
        );
        assert_eq!(
            p.next_attempt(T0, 4, T0, Some(Duration::from_secs(1)), 0.0),
            Some(T0 + 135_000)
        );
        // An absurd Retry-After is capped at the longest delay.
        assert_eq!(
            p.next_attempt(T0, 1, T0, Some(Duration::from_secs(86_400 * 30)), 0.0),
            Some(T0 + 7_200_000)
        );
        // Near the end: the last attempt lands exactly at the window's end…
        assert_eq!(
            p.next_attempt(T0, 12, T0 + day - 60_000, None, 0.0),
            Some(T0 + day)
        );
        // …and a failure there is final.
        assert_eq!(p.next_attempt(T0, 13, T0 + day, None, 0.0), None);
        assert_eq!(p.next_attempt(T0, 13, T0 + day + 1, None, 0.0), None);
    }

    #[test]
    fn answers_are_classified_the_standard_webhooks_way() {
        assert_eq!(classify(200), Verdict::Delivered);
        assert_eq!(classify(204), Verdict::Delivered);
        for s in [301, 302, 400, 401, 404, 429, 500, 502, 503, 504] {
            assert_eq!(classify(s), Verdict::Retry, "{s}");
        }
        assert_eq!(classify(410), Verdict::Gone);
        assert_eq!(result_label(302), "redirect");
        assert_eq!(result_label(429), "rate_limited");
        assert_eq!(result_label(404), "client_error");
        assert_eq!(result_label(503), "server_error");
    }

    // ----- a real loopback subscriber ---------------------------------------------------------

    /// What the receiver got: headers and body of each request.
    type Received = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;
    /// Answers to give, in order: status and an optional `Retry-After`; then 200.
    type Script = Arc<Mutex<Vec<(u16, Option<&'static str>)>>>;

    struct Receiver {
        url: String,
        received: Received,
        /// Statuses to answer, in order; after the script, 200.
        script: Script,
    }

    impl Receiver {
        async fn start(script: Vec<(u16, Option<&'static str>)>) -> Receiver {
            let received: Received = Arc::default();
            let script = Arc::new(Mutex::new(script));
            let state = (received.clone(), script.clone());
            let app = axum::Router::new()
                .route("/hooks", axum::routing::post(receive))
                .with_state(state);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move {
                axum::serve(listener, app).await.unwrap();
            });
            Receiver {
                url: format!("http://{addr}/hooks"),
                received,
                script,
            }
        }

        fn bodies(&self) -> Vec<serde_json::Value> {
            self.received
                .lock()
                .unwrap()
                .iter()
                .map(|(_, b)| serde_json::from_slice(b).unwrap())
                .collect()
        }
    }

    type ReceiverState = (Received, Script);

    async fn receive(
        State((received, script)): State<ReceiverState>,
        headers: HeaderMap,
        body: Bytes,
    ) -> impl IntoResponse {
        received.lock().unwrap().push((headers, body));
        let next = {
            let mut script = script.lock().unwrap();
            (!script.is_empty()).then(|| script.remove(0))
        };
        let (status, retry_after) = next.unwrap_or((200, None));
        let mut response = StatusCode::from_u16(status).unwrap().into_response();
        if let Some(v) = retry_after {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from_static(v));
        }
        response
    }

    fn subscriptions(url: &str, events: &[&str]) -> Arc<ArcSwap<Subscriptions>> {
        let raw: SubscriptionsFile = [(
            "acme".to_owned(),
            [(
                "crm".to_owned(),
                SubscriptionFile {
                    url: url.to_owned(),
                    secret: SECRET.to_owned(),
                    events: events.iter().map(|s| s.to_string()).collect(),
                },
            )]
            .into(),
        )]
        .into();
        let subs = Subscriptions::try_build(Path::new("c.yaml"), &raw, |_| true).unwrap();
        Arc::new(ArcSwap::from_pointee(subs))
    }

    fn settings(dir: &Path) -> EventsSettings {
        EventsSettings {
            data_dir: dir.to_path_buf(),
            retention: Duration::from_secs(7 * 24 * 3600),
            delivery_timeout: Duration::from_secs(5),
            retry_window: Duration::from_secs(24 * 3600),
            max_in_flight: 8,
            first_retry: Duration::from_secs(5),
            heartbeat: Duration::from_secs(15),
        }
    }

    struct Fixture {
        store: Arc<SqliteStore>,
        clock: Arc<ManualWallClock>,
        worker: DeliveryWorker,
        subs: Arc<ArcSwap<Subscriptions>>,
        _dir: tempfile::TempDir,
    }

    fn fixture(url: &str) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
        let clock = Arc::new(ManualWallClock::new(T0));
        let subs = subscriptions(url, &["*"]);
        let worker = DeliveryWorker::new(
            store.clone(),
            subs.clone(),
            Arc::new(PingoraSender::new()),
            &settings(dir.path()),
        )
        .with_clock(clock.clone())
        .with_jitter(|| 0.0);
        Fixture {
            store,
            clock,
            worker,
            subs,
            _dir: dir,
        }
    }

    async fn append(f: &Fixture, text: &str, conversation: &str) -> StoredEvent {
        let event = NewEvent {
            tenant: "acme".into(),
            connection: "desk".into(),
            vendor: "libredesk".into(),
            type_: EventType::MessageReceived,
            data: json!({"id": text, "text": text}),
            dedup_key: text.into(),
            order_key: Some(conversation.into()),
            created_at: f.clock.now_ms(),
        };
        let subs = f.subs.load().matching("acme", event.type_);
        match f.store.append(event, subs).await.unwrap() {
            Appended::Stored { event, .. } => event,
            other => panic!("{other:?}"),
        }
    }

    /// Advance the manual clock to the next due delivery and run one step.
    async fn step(f: &Fixture) -> Vec<AttemptReport> {
        if let Some(due) = f.store.next_due().await.unwrap() {
            if due > f.clock.now_ms() {
                f.clock.set(due);
            }
        }
        f.worker.run_once().await.unwrap()
    }

    #[tokio::test]
    async fn a_subscriber_failing_three_times_gets_the_event_on_the_fourth_attempt_in_order() {
        let receiver = Receiver::start(vec![(500, None), (500, None), (503, None)]).await;
        let f = fixture(&receiver.url);
        let first = append(&f, "hello", "cv_1").await;
        let second = append(&f, "again", "cv_1").await;

        // t=0: first fails; second waits behind it.
        let reports = f.worker.run_once().await.unwrap();
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].event_id, first.id);
        assert_eq!(reports[0].status, Some(500));
        assert!(
            f.worker.run_once().await.unwrap().is_empty(),
            "nothing due yet"
        );

        // Two more failures at +5 s and +20 s, success at +65 s.
        let mut times = Vec::new();
        for _ in 0..3 {
            let r = step(&f).await;
            assert_eq!(r.len(), 1);
            assert_eq!(r[0].event_id, first.id);
            times.push(f.clock.now_ms() - T0);
        }
        assert_eq!(times, [5_000, 20_000, 65_000]);
        let r = step(&f).await;
        assert_eq!(r.len(), 1);
        assert_eq!(
            r[0].event_id, second.id,
            "second only after first succeeded"
        );
        assert_eq!(r[0].result, AttemptResult::Delivered);
        assert!(f.worker.run_once().await.unwrap().is_empty());

        // What the subscriber saw, in order, each signed and verifiable.
        let received = receiver.received.lock().unwrap().clone();
        let ids: Vec<String> = received
            .iter()
            .map(|(h, _)| h.get(WEBHOOK_ID).unwrap().to_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            ids,
            [&first.id, &first.id, &first.id, &first.id, &second.id].map(String::clone)
        );
        let secret = SigningSecret::parse(SECRET).unwrap();
        for (headers, body) in &received {
            let ts: i64 = headers
                .get(WEBHOOK_TIMESTAMP)
                .unwrap()
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(verify_standard(&secret, headers, body, ts, 0), Ok(()));
            assert_eq!(
                headers.get(http::header::CONTENT_TYPE).unwrap(),
                "application/json"
            );
        }
        // The timestamp is the attempt's, the body the stored event's, unchanged.
        let first_ts: Vec<i64> = received
            .iter()
            .filter(|(h, _)| h.get(WEBHOOK_ID).unwrap() == first.id.as_str())
            .map(|(h, _)| {
                h.get(WEBHOOK_TIMESTAMP)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap()
            })
            .collect();
        assert_eq!(
            first_ts,
            [T0 / 1000, T0 / 1000 + 5, T0 / 1000 + 20, T0 / 1000 + 65]
        );
        assert!(received.iter().all(|(h, b)| {
            let id = h.get(WEBHOOK_ID).unwrap().to_str().unwrap();
            [&first, &second]
                .iter()
                .any(|e| e.id == id && e.body.as_bytes() == b.as_ref())
        }));
        let record = &f.store.deliveries_of(&first.id).await.unwrap()[0];
        assert_eq!(record.state, DeliveryState::Delivered);
        assert_eq!(record.attempts, 4);
        assert_eq!(record.last_status, Some(200));
        assert_eq!(receiver.bodies()[0]["type"], "message.received");
    }

    #[tokio::test]
    async fn after_the_window_it_is_dead_lettered_and_a_replay_delivers_it() {
        let receiver = Receiver::start(vec![(500, None); 40]).await;
        let mut f = fixture(&receiver.url);
        f.worker = f
            .worker
            .with_policy(Backoff::with_window(Duration::from_secs(3600)));
        let event = append(&f, "doomed", "cv_1").await;
        let next = append(&f, "next", "cv_1").await;
        let mut attempts = 0;
        loop {
            let r = step(&f).await;
            assert_eq!(r.len(), 1);
            attempts += 1;
            if let AttemptResult::Dead { reason } = r[0].result {
                assert_eq!(reason, DEAD_WINDOW_EXHAUSTED);
                break;
            }
            assert!(attempts < 40, "never dead-lettered");
        }
        assert_eq!(
            f.clock.now_ms(),
            T0 + 3_600_000,
            "the last attempt is at the window's end"
        );
        let dead = f.store.dead_letters(Some("acme"), None, 10).await.unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].event_id, event.id);
        assert_eq!(dead[0].attempts, attempts);
        assert_eq!(
            dead[0].last_error.as_deref(),
            Some("the subscriber answered 500")
        );

        // The conversation moves on: `next` is attempted (and fails on the remaining script).
        receiver.script.lock().unwrap().clear();
        let r = f.worker.run_once().await.unwrap();
        assert_eq!(r[0].event_id, next.id);
        assert_eq!(r[0].result, AttemptResult::Delivered);

        let target = crate::events::store::ReplayTarget::Event(event.id.clone());
        assert_eq!(f.store.replay(&target, f.clock.now_ms()).await.unwrap(), 1);
        let r = f.worker.run_once().await.unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(
            (r[0].event_id.as_str(), &r[0].result),
            (event.id.as_str(), &AttemptResult::Delivered)
        );
        assert!(f
            .store
            .dead_letters(None, None, 10)
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn gone_dead_letters_at_once_and_retry_after_is_honoured() {
        let receiver = Receiver::start(vec![(429, Some("120")), (410, None)]).await;
        let f = fixture(&receiver.url);
        let event = append(&f, "x", "cv_1").await;
        let r = f.worker.run_once().await.unwrap();
        assert_eq!(r[0].status, Some(429));
        assert_eq!(
            r[0].result,
            AttemptResult::Retry {
                next_attempt_at: T0 + 120_000
            }
        );
        let r = step(&f).await;
        assert_eq!(r[0].status, Some(410));
        assert_eq!(r[0].result, AttemptResult::Dead { reason: DEAD_GONE });
        assert_eq!(
            f.store.dead_letters(None, None, 10).await.unwrap()[0].event_id,
            event.id
        );
    }

    #[tokio::test]
    async fn unreachable_and_silent_subscribers_are_retried() {
        // A port that refuses connections.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let f = fixture(&format!("http://{closed}/hooks"));
        append(&f, "x", "cv_1").await;
        let r = f.worker.run_once().await.unwrap();
        assert_eq!(r[0].status, None);
        assert_eq!(
            r[0].result,
            AttemptResult::Retry {
                next_attempt_at: T0 + 5_000
            }
        );
        let record = &f.store.dead_letters(None, None, 1).await.unwrap();
        assert!(record.is_empty());

        // A receiver that accepts and never answers: the timeout ends the attempt.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = silent.local_addr().unwrap();
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                let (s, _) = silent.accept().await.unwrap();
                held.push(s);
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
        let mut s = settings(dir.path());
        s.delivery_timeout = Duration::from_millis(300);
        let subs = subscriptions(&format!("http://{addr}/hooks"), &["*"]);
        let clock = Arc::new(ManualWallClock::new(T0));
        let worker = DeliveryWorker::new(store.clone(), subs, Arc::new(PingoraSender::new()), &s)
            .with_clock(clock)
            .with_jitter(|| 0.0);
        let event = NewEvent {
            tenant: "acme".into(),
            connection: "desk".into(),
            vendor: "libredesk".into(),
            type_: EventType::MessageReceived,
            data: json!({}),
            dedup_key: "k".into(),
            order_key: None,
            created_at: T0,
        };
        store.append(event, vec!["crm".into()]).await.unwrap();
        let r = worker.run_once().await.unwrap();
        assert_eq!(
            r[0].result,
            AttemptResult::Retry {
                next_attempt_at: T0 + 5_000
            }
        );
        let records = store.deliveries_of(&r[0].event_id).await.unwrap();
        assert_eq!(
            records[0].last_error.as_deref(),
            Some("no answer within 300 ms")
        );
        hold.abort();
    }

    #[tokio::test]
    async fn a_removed_or_narrowed_subscription_dead_letters_its_deliveries() {
        let receiver = Receiver::start(vec![]).await;
        let f = fixture(&receiver.url);
        let a = append(&f, "a", "cv_1").await;
        f.subs.store(Arc::new(Subscriptions::default()));
        let r = f.worker.run_once().await.unwrap();
        assert_eq!(
            r[0].result,
            AttemptResult::Dead {
                reason: DEAD_SUBSCRIPTION_REMOVED
            }
        );
        assert_eq!(
            f.store.dead_letters(None, None, 10).await.unwrap()[0].event_id,
            a.id
        );

        let narrowed = subscriptions(&receiver.url, &["conversation.updated"]);
        f.subs.store(narrowed.load_full());
        let b = append(&f, "b", "cv_2").await;
        // `append` asked the narrowed table: nothing queued for b.
        assert!(f.store.deliveries_of(&b.id).await.unwrap().is_empty());
        // A replay of a, now unwanted by the subscription, is dead-lettered again.
        f.store
            .replay(
                &crate::events::store::ReplayTarget::Event(a.id.clone()),
                f.clock.now_ms(),
            )
            .await
            .unwrap();
        let r = f.worker.run_once().await.unwrap();
        assert_eq!(
            r[0].result,
            AttemptResult::Dead {
                reason: DEAD_UNSUBSCRIBED
            }
        );
        assert!(receiver.received.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn metrics_count_attempts_and_outcomes() {
        let receiver = Receiver::start(vec![(500, None)]).await;
        let mut f = fixture(&receiver.url);
        let metrics = Arc::new(EventMetrics::new().unwrap());
        f.worker = f.worker.with_metrics(metrics.clone());
        append(&f, "x", "cv_1").await;
        f.worker.run_once().await.unwrap();
        f.worker.maintain().await.unwrap();
        assert_eq!(metrics.backlog.with_label_values(&["crm"]).get(), 1);
        step(&f).await;
        f.worker.maintain().await.unwrap();
        assert_eq!(
            metrics
                .attempts
                .with_label_values(&["crm", "server_error"])
                .get(),
            1
        );
        assert_eq!(
            metrics
                .attempts
                .with_label_values(&["crm", "success"])
                .get(),
            1
        );
        assert_eq!(
            metrics
                .finished
                .with_label_values(&["crm", "delivered"])
                .get(),
            1
        );
        assert_eq!(metrics.backlog.with_label_values(&["crm"]).get(), 0);
    }

    /// The run loop on the wall clock: an append wakes it (the idle wait is an hour), it
    /// delivers, and shutdown ends it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_run_loop_wakes_on_append_and_stops_on_shutdown() {
        let receiver = Receiver::start(vec![]).await;
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
        let subs = subscriptions(&receiver.url, &["*"]);
        let worker = Arc::new(
            DeliveryWorker::new(
                store.clone(),
                subs,
                Arc::new(PingoraSender::new()),
                &settings(dir.path()),
            )
            .with_idle_wait(Duration::from_secs(3600)),
        );
        let (stop, shutdown) = watch::channel(false);
        let running = tokio::spawn({
            let worker = worker.clone();
            async move { worker.run(shutdown).await }
        });
        let now = SystemWallClock.now_ms();
        let event = NewEvent {
            tenant: "acme".into(),
            connection: "desk".into(),
            vendor: "libredesk".into(),
            type_: EventType::MessageReceived,
            data: json!({"id": "live"}),
            dedup_key: "live".into(),
            order_key: Some("cv_1".into()),
            created_at: now,
        };
        store.append(event, vec!["crm".into()]).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while receiver.received.lock().unwrap().is_empty() {
            assert!(Instant::now() < deadline, "not delivered within 10 s");
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(receiver.bodies()[0]["data"]["id"], "live");
        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(10), running)
            .await
            .expect("the loop ends on shutdown")
            .unwrap();
    }
}
