//! The Redis side of the cluster (issue 15): one [`RedisHub`] per replica owns the client, the
//! connection manager, the health of the link and the pub/sub subscription; the shared
//! backends ([`store::RedisStore`], [`crate::events::redis_store::RedisEventStore`],
//! [`crate::cluster::bus::RedisBus`]) all talk to Redis through it.
//!
//! # Never hang a request
//!
//! Every call goes through [`RedisHub::call`]:
//! - while the hub knows Redis is down (the last call or health probe failed), the call fails
//!   at once with no network round trip — the request falls back (limits), is refused
//!   (`Idempotency-Key` → 503) or spills (events) without waiting;
//! - otherwise the round trip is bounded by `command_timeout` (the connection manager's own
//!   response timeout, and an outer `tokio::time::timeout` that also covers a reconnect in
//!   progress). A connection error or a timeout marks Redis down.
//!
//! Logs and reasons name no address (docs/api.md: no internal address in a log line or an error
//! body); the URL appears only redacted, in the operator's own config views.
//!
//! A probe task PINGs every `health_interval` and marks Redis up again once it answers, so a
//! returned Redis is noticed within one interval. Transitions are logged, exported as
//! `switchboard_cluster_redis_up`, and visible to `/readyz` ([`RedisHub::readiness`]).
//!
//! # Pub/sub
//!
//! One dedicated connection per replica subscribes to the hub's channels (cache
//! invalidations, event-store changes) and fans messages out to in-process receivers
//! ([`RedisHub::listen`]). Redis pub/sub is fire-and-forget: a message published while the
//! subscription is down is lost for good. So the subscriber also PINGs on its own connection,
//! and whenever the subscription ends — server gone, connection cut, PING unanswered — every
//! receiver gets [`HubEvent::Lost`], and [`HubEvent::Resumed`] once it is back. A cache flushes
//! on both (what it cached in between may have missed an invalidation).
//!
//! # Tasks and runtimes
//!
//! [`RedisHub::connect`] spawns its tasks (probe, subscriber, the connection manager's driver)
//! on the tokio runtime it is called from, so call it from a runtime that lives as long as the
//! gateway (a pingora `BackgroundService`'s, not a temporary one in `main` before
//! `run_forever()` daemonizes). The handles are usable from any runtime. Dropping the last
//! `Arc<RedisHub>` ends its tasks.

pub mod store;
#[cfg(test)]
pub(crate) mod test_server;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use prometheus::{IntCounterVec, IntGauge, Opts, Registry};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisError, RedisResult};
use tokio::sync::{broadcast, watch};
use tokio::task::AbortHandle;

use super::cluster::ClusterSettings;
use super::StateError;

/// The name shown in errors, logs and `/readyz`.
pub const BACKEND: &str = "redis";

/// What a pub/sub receiver learns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubEvent {
    /// A message on one of the hub's channels (the full channel name).
    Message { channel: Arc<str>, payload: Bytes },
    /// The subscription ended: messages published from now on until [`HubEvent::Resumed`] are
    /// lost to this replica. Also sent when a receiver fell too far behind.
    Lost,
    /// Subscribed (again). Sent after every (re)subscription, the first one included.
    Resumed,
}

/// Why a call to Redis failed.
#[derive(Debug)]
pub enum CallError {
    /// Known down: not attempted.
    Down,
    /// No answer within the command timeout.
    Timeout(Duration),
    /// Connecting failed or the connection broke.
    Connection(RedisError),
    /// Redis answered with an error (out of memory, a script error, wrong type…).
    Server(RedisError),
    /// Redis answered something this code cannot read.
    Unreadable(String),
}

impl CallError {
    /// Words safe for logs and error bodies: never the server's message (it may echo keys or
    /// values) nor the address.
    pub fn reason(&self) -> String {
        match self {
            CallError::Down => "unreachable (the last call or health check failed)".to_owned(),
            CallError::Timeout(t) => format!("no answer within {} ms", t.as_millis()),
            CallError::Connection(e) if e.is_connection_refusal() => {
                "connection refused".to_owned()
            }
            CallError::Connection(_) => "connection failed or lost".to_owned(),
            CallError::Server(e) => {
                format!("server error {}", e.code().unwrap_or("(no code)"))
            }
            CallError::Unreadable(what) => format!("unexpected answer: {what}"),
        }
    }

    /// Redis refused a write because it is out of memory (`maxmemory` with `noeviction`).
    pub fn is_out_of_memory(&self) -> bool {
        matches!(self, CallError::Server(e) if e.code() == Some("OOM"))
    }

    /// The bounded `reason` label of `switchboard_cluster_redis_errors_total`.
    pub fn label(&self) -> &'static str {
        match self {
            CallError::Down => "down",
            CallError::Timeout(_) => "timeout",
            CallError::Connection(_) => "connection",
            CallError::Server(_) => "server",
            CallError::Unreadable(_) => "unreadable",
        }
    }
}

impl From<CallError> for StateError {
    fn from(e: CallError) -> StateError {
        if e.is_out_of_memory() {
            return StateError::CapacityExceeded("the shared store is out of memory");
        }
        StateError::Unavailable {
            backend: BACKEND,
            reason: e.reason(),
        }
    }
}

/// Whether an error means "Redis cannot be reached" (as opposed to "Redis said no").
fn is_connection_error(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_unrecoverable_error()
        || matches!(e.code(), Some("LOADING") | Some("MASTERDOWN"))
}

/// `/readyz`: Redis is reachable, or the replica serves with local state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Shared,
    /// Still ready (the replica serves), but degraded: limits fall back to a local share,
    /// `Idempotency-Key` requests get 503, events spill locally.
    Degraded {
        reason: String,
    },
}

/// Cluster metrics (bounded labels), registered into the gateway's registry.
#[derive(Clone)]
pub struct ClusterMetrics {
    /// `switchboard_cluster_redis_up`: 1 while Redis answers, 0 while the replica is degraded.
    pub redis_up: IntGauge,
    /// `switchboard_cluster_redis_errors_total{reason}`: failed calls (down, timeout,
    /// connection, server, unreadable).
    pub redis_errors: IntCounterVec,
    /// `switchboard_cluster_fallbacks_total{kind}`: work done with local state because Redis
    /// was unreachable (limit, pause, event, inbox).
    pub fallbacks: IntCounterVec,
    /// `switchboard_cluster_spill_pending`: events and inbox items waiting in the local spill.
    pub spill_pending: IntGauge,
    /// `switchboard_cluster_invalidations_total{direction}`: cache invalidations sent to and
    /// received from other replicas.
    pub invalidations: IntCounterVec,
    /// `switchboard_cluster_subscription_losses_total`: pub/sub subscriptions lost (each one
    /// flushes the local cache).
    pub subscription_losses: prometheus::IntCounter,
}

impl std::fmt::Debug for ClusterMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterMetrics")
    }
}

/// `reason` values of `switchboard_cluster_redis_errors_total`, pre-created at 0.
pub const ERROR_REASONS: &[&str] = &["down", "timeout", "connection", "server", "unreadable"];
/// `kind` values of `switchboard_cluster_fallbacks_total`, pre-created at 0.
pub const FALLBACK_KINDS: &[&str] = &["limit", "pause", "event", "inbox"];

impl ClusterMetrics {
    pub fn new() -> Result<ClusterMetrics, prometheus::Error> {
        let m = ClusterMetrics {
            redis_up: IntGauge::new(
                "switchboard_cluster_redis_up",
                "1 while the shared Redis answers, 0 while this replica runs degraded on local state.",
            )?,
            redis_errors: IntCounterVec::new(
                Opts::new(
                    "switchboard_cluster_redis_errors_total",
                    "Failed calls to the shared Redis, by reason.",
                ),
                &["reason"],
            )?,
            fallbacks: IntCounterVec::new(
                Opts::new(
                    "switchboard_cluster_fallbacks_total",
                    "Work done with local state because Redis was unreachable, by kind.",
                ),
                &["kind"],
            )?,
            spill_pending: IntGauge::new(
                "switchboard_cluster_spill_pending",
                "Events and inbox items accepted into the local spill, waiting for Redis.",
            )?,
            invalidations: IntCounterVec::new(
                Opts::new(
                    "switchboard_cluster_invalidations_total",
                    "Cache invalidations exchanged with other replicas, by direction (sent, received).",
                ),
                &["direction"],
            )?,
            subscription_losses: prometheus::IntCounter::new(
                "switchboard_cluster_subscription_losses_total",
                "Pub/sub subscriptions lost (each flushes the local response cache).",
            )?,
        };
        for r in ERROR_REASONS {
            m.redis_errors.with_label_values(&[r]);
        }
        for k in FALLBACK_KINDS {
            m.fallbacks.with_label_values(&[k]);
        }
        for d in ["sent", "received"] {
            m.invalidations.with_label_values(&[d]);
        }
        Ok(m)
    }

    pub fn register(&self, registry: &Registry) -> Result<(), prometheus::Error> {
        registry.register(Box::new(self.redis_up.clone()))?;
        registry.register(Box::new(self.redis_errors.clone()))?;
        registry.register(Box::new(self.fallbacks.clone()))?;
        registry.register(Box::new(self.spill_pending.clone()))?;
        registry.register(Box::new(self.invalidations.clone()))?;
        registry.register(Box::new(self.subscription_losses.clone()))?;
        Ok(())
    }

    /// Count one fallback (`kind` from [`FALLBACK_KINDS`]).
    pub fn fallback(&self, kind: &'static str) {
        self.fallbacks.with_label_values(&[kind]).inc();
    }
}

/// One replica's link to Redis. Cheap to share (`Arc`); see the module docs.
pub struct RedisHub {
    settings: ClusterSettings,
    client: redis::Client,
    manager: ConnectionManager,
    up: watch::Sender<bool>,
    down_reason: Mutex<String>,
    events: broadcast::Sender<HubEvent>,
    subscribed: watch::Sender<bool>,
    metrics: Option<ClusterMetrics>,
    tasks: Mutex<Vec<AbortHandle>>,
}

impl std::fmt::Debug for RedisHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisHub")
            .field("key_prefix", &self.settings.key_prefix)
            .field("up", &self.is_up())
            .finish()
    }
}

impl Drop for RedisHub {
    fn drop(&mut self) {
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
    }
}

/// Pub/sub receivers that fall this far behind get [`HubEvent::Lost`].
const FANOUT_CAPACITY: usize = 4096;

impl RedisHub {
    /// Make the client and start the health probe and the subscriber; see the module docs for
    /// the runtime. Never fails because Redis is down: the hub starts degraded and recovers
    /// when Redis answers. Fails only on settings the client refuses.
    pub async fn connect(
        settings: ClusterSettings,
        metrics: Option<ClusterMetrics>,
    ) -> Result<Arc<RedisHub>, StateError> {
        let client =
            redis::Client::open(settings.redis_url()).map_err(|e| StateError::Unavailable {
                backend: BACKEND,
                reason: format!("the Redis URL is not usable: {:?}", e.kind()),
            })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.connect_timeout))
            .set_response_timeout(Some(settings.command_timeout))
            // The hub decides when to try again (the health probe); the manager only makes a
            // short attempt per reconnect so a call never waits behind a long backoff.
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(20))
            .set_max_delay(settings.health_interval);
        let manager =
            ConnectionManager::new_lazy_with_config(client.clone(), config).map_err(|e| {
                StateError::Unavailable {
                    backend: BACKEND,
                    reason: format!("the Redis client could not start: {:?}", e.kind()),
                }
            })?;
        let (events, _) = broadcast::channel(FANOUT_CAPACITY);
        let hub = Arc::new(RedisHub {
            settings,
            client,
            manager,
            up: watch::channel(true).0,
            down_reason: Mutex::new(String::new()),
            events,
            subscribed: watch::channel(false).0,
            metrics,
            tasks: Mutex::new(Vec::new()),
        });
        // The first answer decides the starting state (bounded by the timeouts).
        hub.probe().await;
        let probe = tokio::spawn(probe_loop(Arc::downgrade(&hub)));
        let subscriber = tokio::spawn(subscribe_loop(Arc::downgrade(&hub)));
        lock(&hub.tasks).extend([probe.abort_handle(), subscriber.abort_handle()]);
        Ok(hub)
    }

    pub fn settings(&self) -> &ClusterSettings {
        &self.settings
    }

    pub fn metrics(&self) -> Option<&ClusterMetrics> {
        self.metrics.as_ref()
    }

    /// `<key_prefix><name>`: every key and channel of this deployment.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.settings.key_prefix)
    }

    /// The pub/sub channel of cache invalidations.
    pub fn cache_channel(&self) -> String {
        self.key("cache")
    }

    /// The pub/sub channel of event-store changes.
    pub fn events_channel(&self) -> String {
        self.key("ev:changes")
    }

    /// Whether the last call or probe reached Redis.
    pub fn is_up(&self) -> bool {
        *self.up.borrow()
    }

    /// Watch up/down transitions (the spill forwarder waits for "up").
    pub fn watch_up(&self) -> watch::Receiver<bool> {
        self.up.subscribe()
    }

    /// Watch whether the pub/sub subscription is established.
    pub fn watch_subscribed(&self) -> watch::Receiver<bool> {
        self.subscribed.subscribe()
    }

    /// For `/readyz`: shared, or degraded with a reason fit to show (no address, no password).
    pub fn readiness(&self) -> Readiness {
        if self.is_up() {
            Readiness::Shared
        } else {
            Readiness::Degraded {
                reason: format!("redis {}", lock(&self.down_reason)),
            }
        }
    }

    /// Receive the hub's pub/sub traffic (both channels; filter by [`HubEvent::Message`]'s
    /// channel).
    pub fn listen(&self) -> broadcast::Receiver<HubEvent> {
        self.events.subscribe()
    }

    /// A clone of the connection manager (multiplexed: clones share one connection).
    pub fn connection(&self) -> ConnectionManager {
        self.manager.clone()
    }

    /// Run one round trip (or a script) with the hub's rules: fail at once while Redis is
    /// known down, bound the wait by `command_timeout`, mark Redis down on connection errors
    /// and timeouts.
    pub async fn call<T, F, Fut>(&self, f: F) -> Result<T, CallError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        self.call_within(self.settings.command_timeout, f).await
    }

    /// [`Self::call`] with another bound (maintenance work that may take longer).
    pub async fn call_within<T, F, Fut>(&self, limit: Duration, f: F) -> Result<T, CallError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        if !self.is_up() {
            return Err(self.failed(CallError::Down));
        }
        match tokio::time::timeout(limit, f(self.manager.clone())).await {
            Ok(Ok(value)) => Ok(value),
            // The connection manager's own response or connect timeout.
            Ok(Err(e)) if e.is_timeout() => {
                let e = CallError::Timeout(limit.min(self.settings.command_timeout));
                self.mark(false, &e.reason());
                Err(self.failed(e))
            }
            Ok(Err(e)) if is_connection_error(&e) => {
                let e = CallError::Connection(e);
                self.mark(false, &e.reason());
                Err(self.failed(e))
            }
            Ok(Err(e)) => Err(self.failed(CallError::Server(e))),
            Err(_) => {
                let e = CallError::Timeout(limit);
                self.mark(false, &e.reason());
                Err(self.failed(e))
            }
        }
    }

    fn failed(&self, e: CallError) -> CallError {
        if let Some(m) = &self.metrics {
            m.redis_errors.with_label_values(&[e.label()]).inc();
        }
        e
    }

    /// Check now (one PING) instead of waiting for the next health probe; answers whether
    /// Redis is up.
    pub async fn check(&self) -> bool {
        self.probe().await
    }

    /// PING once and record the result.
    async fn probe(&self) -> bool {
        let mut conn = self.manager.clone();
        let ping = tokio::time::timeout(
            self.settings.command_timeout,
            redis::cmd("PING").query_async::<String>(&mut conn),
        )
        .await;
        let reason = match ping {
            Ok(Ok(_)) => None,
            Ok(Err(e)) if e.is_timeout() => {
                Some(CallError::Timeout(self.settings.command_timeout).reason())
            }
            Ok(Err(e)) if is_connection_error(&e) => Some(CallError::Connection(e).reason()),
            Ok(Err(e)) => Some(CallError::Server(e).reason()),
            Err(_) => Some(CallError::Timeout(self.settings.command_timeout).reason()),
        };
        let up = reason.is_none();
        self.mark(up, reason.as_deref().unwrap_or(""));
        up
    }

    fn mark(&self, up: bool, reason: &str) {
        if !up {
            *lock(&self.down_reason) = reason.to_owned();
        }
        let changed = self.up.send_if_modified(|now| {
            let changed = *now != up;
            *now = up;
            changed
        });
        if let Some(m) = &self.metrics {
            m.redis_up.set(i64::from(up));
        }
        if changed {
            if up {
                tracing::info!("redis reachable again: shared state resumes");
            } else {
                tracing::warn!(
                    reason,
                    "redis unreachable: serving degraded with local state"
                );
            }
        }
    }

    fn set_subscribed(&self, subscribed: bool) {
        self.subscribed.send_if_modified(|now| {
            let changed = *now != subscribed;
            *now = subscribed;
            changed
        });
    }
}

async fn probe_loop(hub: Weak<RedisHub>) {
    loop {
        let interval = {
            let Some(hub) = hub.upgrade() else { return };
            hub.probe().await;
            hub.settings.health_interval
        };
        tokio::time::sleep(interval).await;
    }
}

/// Keep one subscription to the hub's channels alive; report every loss and resumption.
async fn subscribe_loop(hub: Weak<RedisHub>) {
    const FIRST_RETRY: Duration = Duration::from_millis(20);
    let mut backoff = FIRST_RETRY;
    loop {
        let (settings, client, channels) = {
            let Some(h) = hub.upgrade() else { return };
            let channels = [h.cache_channel(), h.events_channel()];
            (h.settings.clone(), h.client.clone(), channels)
        };
        if subscribe_once(&hub, &settings, &client, &channels).await {
            backoff = FIRST_RETRY;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(settings.health_interval);
    }
}

/// One subscription session. Returns whether it was established (then it ran until lost).
async fn subscribe_once(
    hub: &Weak<RedisHub>,
    settings: &ClusterSettings,
    client: &redis::Client,
    channels: &[String; 2],
) -> bool {
    let connected = tokio::time::timeout(settings.connect_timeout, client.get_async_pubsub()).await;
    let Ok(Ok(mut pubsub)) = connected else {
        return false;
    };
    let subscribed = tokio::time::timeout(
        settings.command_timeout,
        pubsub.subscribe(channels.as_slice()),
    )
    .await;
    if !matches!(subscribed, Ok(Ok(()))) {
        return false;
    }
    let names: Vec<Arc<str>> = channels.iter().map(|c| Arc::from(c.as_str())).collect();
    {
        let Some(hub) = hub.upgrade() else {
            return true;
        };
        hub.set_subscribed(true);
        let _ = hub.events.send(HubEvent::Resumed);
    }
    let (mut sink, mut stream) = pubsub.split();
    let mut ping = tokio::time::interval(settings.health_interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    loop {
        tokio::select! {
            message = stream.next() => {
                let Some(message) = message else { break };
                let Some(hub) = hub.upgrade() else { return true };
                let channel = names
                    .iter()
                    .find(|n| n.as_bytes() == message.get_channel_name().as_bytes())
                    .cloned();
                if let Some(channel) = channel {
                    let payload = Bytes::copy_from_slice(message.get_payload_bytes());
                    let _ = hub.events.send(HubEvent::Message { channel, payload });
                }
            }
            _ = ping.tick() => {
                let answered = tokio::time::timeout(
                    settings.command_timeout,
                    sink.ping::<redis::Value>(),
                )
                .await;
                if !matches!(answered, Ok(Ok(_))) {
                    break;
                }
            }
        }
    }
    if let Some(hub) = hub.upgrade() {
        hub.set_subscribed(false);
        if let Some(m) = &hub.metrics {
            m.subscription_losses.inc();
        }
        tracing::warn!(
            "redis subscription lost: cache invalidations from other replicas are missed until it resumes"
        );
        let _ = hub.events.send(HubEvent::Lost);
    }
    true
}

/// Plain data behind the mutexes; a panic elsewhere leaves it usable.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
