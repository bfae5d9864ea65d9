//! Cross-replica cache invalidation: each replica keeps its own response cache
//! ([`crate::cache::ResponseCache`]); when a write (or an event) changes something, the
//! replica that saw it drops its own entries and tells the others through an
//! [`InvalidationBus`].
//!
//! ```text
//! replica A: write ok ─▶ cache.apply(local) ─▶ bus.publish(Invalidation)
//!                                               │ Redis PUBLISH <prefix>cache
//! replica B: bus subscription ◀─────────────────┘ ─▶ Invalidation::apply(B's cache)
//!            subscription lost / resumed ─▶ BusEvent::Flush ─▶ cache.invalidate_all()
//! ```
//!
//! - [`LocalBus`]: in-process (one gateway process, or several "replicas" in one test).
//! - [`RedisBus`]: Redis pub/sub through the replica's [`RedisHub`]. Pub/sub is
//!   fire-and-forget, so a replica that may have missed messages is told to flush
//!   ([`BusEvent::Flush`]): when its subscription is lost, when it is back (entries cached in
//!   between may be stale), when it fell behind, and when a message is unreadable (a newer
//!   replica during a rolling upgrade). A publish that fails while Redis is unreachable is kept
//!   (bounded) and sent when Redis answers again, so replicas whose own link stayed up still
//!   hear of it; past the bound, one "flush everything" is sent instead.
//!
//! A message names the connection by tenant and name and carries what changed in the same
//! words as [`crate::cache::Invalidation`]; the receiver applies it with its *own* config of
//! that connection (its own fingerprint), so the same code path drops the same entries on
//! every replica.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::cache::{self, ResponseCache};
use crate::snapshot::Connection;
use crate::state::redis::{HubEvent, RedisHub, BACKEND};
use crate::state::StateError;

/// Wire format version (a receiver that cannot read a message flushes instead).
const WIRE_VERSION: u32 = 1;

/// Invalidations kept while Redis is unreachable; past this, one [`Invalidation::All`].
pub const MAX_UNSENT: usize = 1024;

/// What changed on one connection: [`crate::cache::Invalidation`]'s words plus the admin
/// purges. Object IDs are the cache's canonical params ([`crate::cache::object_params`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum CacheChange {
    /// A contact was created (`id` none), updated or deleted: its entries and contact lists.
    Contact { id: Option<String> },
    /// A conversation was created, updated or deleted: its entries, its message lists and
    /// conversation lists.
    Conversation { id: Option<String> },
    /// A message was sent to or received in a conversation.
    MessageIn { conversation: String },
    /// Entries whose params name this vendor key (admin purge of one ID).
    Keyed { params: String },
    /// Everything of the connection (admin purge).
    Connection,
}

impl CacheChange {
    /// The change a successful write made (`None` when it changed nothing cached).
    pub fn from_write(invalidation: &cache::Invalidation) -> Option<CacheChange> {
        Some(match invalidation {
            cache::Invalidation::None => return None,
            cache::Invalidation::Contact(id) => CacheChange::Contact { id: id.clone() },
            cache::Invalidation::Conversation(id) => CacheChange::Conversation { id: id.clone() },
            cache::Invalidation::MessageIn(c) => CacheChange::MessageIn {
                conversation: c.clone(),
            },
        })
    }
}

/// One message on the bus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "scope", rename_all = "snake_case", deny_unknown_fields)]
pub enum Invalidation {
    /// Something on one connection of one tenant.
    Connection {
        tenant: String,
        connection: String,
        change: CacheChange,
    },
    /// Everything (admin purge of the whole cache; unsent invalidations overflowed).
    All,
}

impl Invalidation {
    pub fn on(tenant: &str, connection: &str, change: CacheChange) -> Invalidation {
        Invalidation::Connection {
            tenant: tenant.to_owned(),
            connection: connection.to_owned(),
            change,
        }
    }

    /// Drop what this names from `cache`. `conn` is this replica's own config of the named
    /// connection; without one (configs differ during a rollout) every entry of that
    /// tenant + connection name goes.
    pub async fn apply(&self, cache: &ResponseCache, conn: Option<&Connection>) {
        let (tenant, name, change) = match self {
            Invalidation::All => {
                cache.invalidate_all();
                return;
            }
            Invalidation::Connection {
                tenant,
                connection,
                change,
            } => (tenant.as_str(), connection.as_str(), change),
        };
        let conn = conn.filter(|c| c.tenant == tenant && c.name == name);
        match (change, conn) {
            (CacheChange::Keyed { params }, _) => cache.invalidate_keyed(tenant, name, params),
            (CacheChange::Connection, _) | (_, None) => cache.invalidate_connection(tenant, name),
            (CacheChange::Contact { id }, Some(conn)) => {
                cache
                    .apply(conn, cache::Invalidation::Contact(id.clone()))
                    .await
            }
            (CacheChange::Conversation { id }, Some(conn)) => {
                cache
                    .apply(conn, cache::Invalidation::Conversation(id.clone()))
                    .await
            }
            (CacheChange::MessageIn { conversation }, Some(conn)) => {
                cache
                    .apply(conn, cache::Invalidation::MessageIn(conversation.clone()))
                    .await
            }
        }
    }
}

/// Why a replica must drop its whole cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushReason {
    /// The subscription ended: invalidations are being missed.
    SubscriptionLost,
    /// The subscription is back: entries cached while it was down may be stale.
    Resubscribed,
    /// This receiver fell behind and messages were dropped.
    Lagged,
    /// A message could not be read (another version of switchboard).
    Unreadable,
}

impl FlushReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FlushReason::SubscriptionLost => "subscription_lost",
            FlushReason::Resubscribed => "resubscribed",
            FlushReason::Lagged => "lagged",
            FlushReason::Unreadable => "unreadable",
        }
    }
}

/// What a subscriber does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusEvent {
    /// Another replica changed something: [`Invalidation::apply`] it.
    Invalidate(Invalidation),
    /// Drop the whole local cache.
    Flush(FlushReason),
}

/// Cache invalidations between replicas.
#[async_trait]
pub trait InvalidationBus: Send + Sync + 'static {
    /// `local` or `redis`.
    fn backend(&self) -> &'static str;

    /// Tell the other replicas (not this one: the caller has already applied it locally).
    /// An error means they could not be told now; the bus keeps it and sends it when it can.
    async fn publish(&self, invalidation: &Invalidation) -> Result<(), StateError>;

    /// What the other replicas publish, and when to flush. One subscription per cache.
    fn subscribe(&self) -> BusSubscription;
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Envelope {
    v: u32,
    /// The publishing replica (a subscriber skips its own messages).
    origin: String,
    invalidation: Invalidation,
}

fn new_origin() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// A stream of [`BusEvent`]s.
pub struct BusSubscription {
    origin: String,
    source: Source,
}

enum Source {
    Local(broadcast::Receiver<Arc<Envelope>>),
    Hub {
        events: broadcast::Receiver<HubEvent>,
        channel: Arc<str>,
        hub: Arc<RedisHub>,
    },
}

impl BusSubscription {
    /// The next event; `None` once the bus is gone (shutdown).
    pub async fn recv(&mut self) -> Option<BusEvent> {
        loop {
            match &mut self.source {
                Source::Local(rx) => match rx.recv().await {
                    Ok(envelope) if envelope.origin == self.origin => continue,
                    Ok(envelope) => {
                        return Some(BusEvent::Invalidate(envelope.invalidation.clone()))
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        return Some(BusEvent::Flush(FlushReason::Lagged))
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                Source::Hub {
                    events,
                    channel,
                    hub,
                } => {
                    let event = match events.recv().await {
                        Ok(HubEvent::Message {
                            channel: on,
                            payload,
                        }) if on == *channel => {
                            match serde_json::from_slice::<Envelope>(&payload) {
                                Ok(envelope) if envelope.v == WIRE_VERSION => {
                                    if envelope.origin == self.origin {
                                        continue;
                                    }
                                    BusEvent::Invalidate(envelope.invalidation)
                                }
                                _ => {
                                    tracing::warn!(
                                    "unreadable cache invalidation from another replica: flushing the cache"
                                );
                                    BusEvent::Flush(FlushReason::Unreadable)
                                }
                            }
                        }
                        Ok(HubEvent::Message { .. }) => continue,
                        Ok(HubEvent::Lost) => BusEvent::Flush(FlushReason::SubscriptionLost),
                        Ok(HubEvent::Resumed) => BusEvent::Flush(FlushReason::Resubscribed),
                        Err(broadcast::error::RecvError::Lagged(_)) => {
                            BusEvent::Flush(FlushReason::Lagged)
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    };
                    if let (BusEvent::Invalidate(_), Some(m)) = (&event, hub.metrics()) {
                        m.invalidations.with_label_values(&["received"]).inc();
                    }
                    return Some(event);
                }
            }
        }
    }
}

// ----- in process --------------------------------------------------------------------------

/// In-process bus: the default for one gateway process (nothing to tell anyone), and a way to
/// run several replicas in one process ([`LocalBus::join`]).
#[derive(Clone)]
pub struct LocalBus {
    origin: String,
    sender: broadcast::Sender<Arc<Envelope>>,
}

impl std::fmt::Debug for LocalBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalBus")
            .field("origin", &self.origin)
            .finish()
    }
}

impl Default for LocalBus {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalBus {
    pub fn new() -> LocalBus {
        LocalBus {
            origin: new_origin(),
            sender: broadcast::channel(MAX_UNSENT).0,
        }
    }

    /// Another replica on the same in-process bus.
    pub fn join(&self) -> LocalBus {
        LocalBus {
            origin: new_origin(),
            sender: self.sender.clone(),
        }
    }
}

#[async_trait]
impl InvalidationBus for LocalBus {
    fn backend(&self) -> &'static str {
        "local"
    }

    async fn publish(&self, invalidation: &Invalidation) -> Result<(), StateError> {
        // No subscriber is not an error: there is nobody to tell.
        let _ = self.sender.send(Arc::new(Envelope {
            v: WIRE_VERSION,
            origin: self.origin.clone(),
            invalidation: invalidation.clone(),
        }));
        Ok(())
    }

    fn subscribe(&self) -> BusSubscription {
        BusSubscription {
            origin: self.origin.clone(),
            source: Source::Local(self.sender.subscribe()),
        }
    }
}

// ----- Redis -------------------------------------------------------------------------------

/// Redis pub/sub on `<prefix>cache` through the replica's hub.
pub struct RedisBus {
    hub: Arc<RedisHub>,
    origin: String,
    channel: String,
    unsent: Arc<Mutex<Unsent>>,
    resend: tokio::task::AbortHandle,
}

impl std::fmt::Debug for RedisBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBus")
            .field("origin", &self.origin)
            .field("channel", &self.channel)
            .finish()
    }
}

impl Drop for RedisBus {
    fn drop(&mut self) {
        self.resend.abort();
    }
}

#[derive(Default)]
struct Unsent {
    queue: VecDeque<Invalidation>,
    overflowed: bool,
}

impl Unsent {
    fn push(&mut self, invalidation: Invalidation) {
        if self.overflowed {
            return;
        }
        if self.queue.len() >= MAX_UNSENT {
            self.queue.clear();
            self.overflowed = true;
            return;
        }
        self.queue.push_back(invalidation);
    }

    /// What to send now, in order (one `All` after an overflow).
    fn take(&mut self) -> Vec<Invalidation> {
        if std::mem::take(&mut self.overflowed) {
            self.queue.clear();
            return vec![Invalidation::All];
        }
        self.queue.drain(..).collect()
    }

    fn is_empty(&self) -> bool {
        self.queue.is_empty() && !self.overflowed
    }
}

impl RedisBus {
    /// Spawns (on the current runtime) the task that resends what could not be sent once
    /// Redis answers again.
    pub fn new(hub: Arc<RedisHub>) -> RedisBus {
        let unsent = Arc::new(Mutex::new(Unsent::default()));
        let origin = new_origin();
        let channel = hub.cache_channel();
        let resend = tokio::spawn(resend_when_up(
            Arc::downgrade(&hub),
            unsent.clone(),
            origin.clone(),
            channel.clone(),
        ))
        .abort_handle();
        RedisBus {
            hub,
            origin,
            channel,
            unsent,
            resend,
        }
    }

    /// Invalidations waiting for Redis (tests, metrics).
    pub fn unsent(&self) -> usize {
        let unsent = lock(&self.unsent);
        unsent.queue.len() + usize::from(unsent.overflowed)
    }
}

async fn send(
    hub: &RedisHub,
    origin: &str,
    channel: &str,
    invalidation: &Invalidation,
) -> Result<(), StateError> {
    let payload = serde_json::to_vec(&Envelope {
        v: WIRE_VERSION,
        origin: origin.to_owned(),
        invalidation: invalidation.clone(),
    })
    .map_err(|e| StateError::Unavailable {
        backend: BACKEND,
        reason: format!("cannot encode an invalidation: {e}"),
    })?;
    let channel = channel.to_owned();
    hub.call(|mut c| async move {
        redis::cmd("PUBLISH")
            .arg(channel)
            .arg(payload)
            .query_async::<i64>(&mut c)
            .await
    })
    .await?;
    if let Some(m) = hub.metrics() {
        m.invalidations.with_label_values(&["sent"]).inc();
    }
    Ok(())
}

/// Send the backlog, in order. On failure what is left goes back to the front of the queue.
async fn drain(hub: &RedisHub, unsent: &Mutex<Unsent>, origin: &str, channel: &str) -> bool {
    let batch = lock(unsent).take();
    for (i, invalidation) in batch.iter().enumerate() {
        if send(hub, origin, channel, invalidation).await.is_err() {
            let mut unsent = lock(unsent);
            let rest = batch[i..].to_vec();
            let newer: Vec<_> = unsent.queue.drain(..).collect();
            for inv in rest.into_iter().chain(newer) {
                unsent.push(inv);
            }
            return false;
        }
    }
    true
}

async fn resend_when_up(
    hub: std::sync::Weak<RedisHub>,
    unsent: Arc<Mutex<Unsent>>,
    origin: String,
    channel: String,
) {
    let mut up = match hub.upgrade() {
        Some(h) => h.watch_up(),
        None => return,
    };
    loop {
        if up.wait_for(|up| *up).await.is_err() {
            return;
        }
        {
            let Some(h) = hub.upgrade() else { return };
            if !lock(&unsent).is_empty() && drain(&h, &unsent, &origin, &channel).await {
                tracing::info!("cache invalidations held during the Redis outage were sent");
            }
        }
        // Wait for the next outage before looking again.
        if up.wait_for(|up| !*up).await.is_err() {
            return;
        }
    }
}

#[async_trait]
impl InvalidationBus for RedisBus {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn publish(&self, invalidation: &Invalidation) -> Result<(), StateError> {
        // Keep the order: anything held back goes first.
        if !lock(&self.unsent).is_empty()
            && !drain(&self.hub, &self.unsent, &self.origin, &self.channel).await
        {
            lock(&self.unsent).push(invalidation.clone());
            return Err(StateError::Unavailable {
                backend: BACKEND,
                reason: "kept to send when Redis answers again".to_owned(),
            });
        }
        match send(&self.hub, &self.origin, &self.channel, invalidation).await {
            Ok(()) => Ok(()),
            Err(e) => {
                lock(&self.unsent).push(invalidation.clone());
                Err(e)
            }
        }
    }

    fn subscribe(&self) -> BusSubscription {
        BusSubscription {
            origin: self.origin.clone(),
            source: Source::Hub {
                events: self.hub.listen(),
                channel: Arc::from(self.channel.as_str()),
                hub: self.hub.clone(),
            },
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
