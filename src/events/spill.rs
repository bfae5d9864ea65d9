//! [`SpillStore`]: the event store of a cluster replica — the shared [`RedisEventStore`], plus
//! a local durable spill so that an event accepted while Redis is unreachable is still "stored
//! before acknowledged" (issue 15: "events are accepted into a local spill and forwarded when
//! Redis returns").
//!
//! ```text
//! append / inbox_put ──Redis answers──────────────▶ shared store
//!        │ Redis unavailable (or the spill is not empty yet)
//!        ▼
//!   <data_dir>/spill.sqlite3 (fsynced) ──forwarder, when Redis is up──▶ shared store, oldest first
//! ```
//!
//! - Only the two intake writes spill: `append` and `inbox_put`. Everything else (pull, SSE,
//!   claims, admin) needs the shared view and answers `Unavailable` while Redis is down;
//!   delivery resumes when it returns.
//! - Order: once anything is spilled, later writes go to the spill too until the forwarder has
//!   drained it, so events reach the shared log in the order they were accepted (per
//!   conversation order depends on it).
//! - A spilled event keeps the ID it was acknowledged with; its `seq` is 0 in the answer (the
//!   shared log assigns one when the event is forwarded). A spilled inbox item answers id 0.
//! - Dedup: the spill refuses a vendor change it already holds; one that reached Redis before
//!   the outage (or whose append timed out after Redis stored it) is dropped by Redis's own
//!   dedup when forwarded.
//! - The spill survives a restart of the replica: the next start forwards what is left.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde_json::Value;
use tokio::sync::{watch, Notify, RwLock};
use tokio::task::AbortHandle;

use super::clock::Millis;
use super::model::{new_event_id, EventType, NewEvent, StoredEvent};
use super::redis_store::RedisEventStore;
use super::store::{
    Appended, Attempt, Backlog, Delivery, DeliveryRecord, EventStore, InboxBacklog, InboxItem,
    InboxPut, NewInboxItem, ReplayTarget, StoreError,
};
use crate::state::redis::ClusterMetrics;

/// The spill file inside `data_dir`.
pub const SPILL_FILE: &str = "spill.sqlite3";

/// Spilled rows forwarded per batch.
const FORWARD_BATCH: usize = 100;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS spill (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    kind          TEXT    NOT NULL CHECK (kind IN ('event', 'inbox')),
    tenant        TEXT    NOT NULL,
    connection    TEXT    NOT NULL,
    vendor        TEXT    NOT NULL,
    dedup_key     TEXT    NOT NULL,
    event_id      TEXT,
    type          TEXT,
    order_key     TEXT,
    at_ms         INTEGER NOT NULL,
    data          TEXT,
    subscriptions TEXT,
    body          BLOB
);
CREATE UNIQUE INDEX IF NOT EXISTS spill_dedup ON spill (kind, tenant, connection, dedup_key);
";

/// One spilled write.
#[derive(Debug, Clone, PartialEq)]
enum Spilled {
    Event {
        id: String,
        event: NewEvent,
        subscriptions: Vec<String>,
    },
    Inbox(NewInboxItem),
}

/// The local spill: one SQLite file, fsynced at every commit, locked by this process.
struct Spill {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

impl Spill {
    fn open(data_dir: &Path) -> Result<Spill, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::Io {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let path = data_dir.join(SPILL_FILE);
        let mut conn = Connection::open(&path)?;
        conn.busy_timeout(Duration::ZERO)?;
        let locked = |e: rusqlite::Error| match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy) | Some(rusqlite::ErrorCode::DatabaseLocked) => {
                StoreError::Locked(path.clone())
            }
            _ => StoreError::Sqlite(e),
        };
        // As the embedded event store: one owner, write-ahead log, fsync at every commit.
        conn.pragma_update(None, "locking_mode", "EXCLUSIVE")
            .map_err(locked)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(locked)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(locked)?;
        // An exclusive transaction takes the file lock now and keeps it (locking_mode): a second
        // gateway on the same data_dir fails here instead of forwarding the spill twice.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Exclusive)
            .map_err(locked)?;
        tx.execute_batch(SCHEMA)?;
        tx.commit().map_err(locked)?;
        Ok(Spill {
            conn: Arc::new(Mutex::new(conn)),
            path,
        })
    }

    async fn with_conn<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// Keep `item`; `Some(existing event id or "")` when its dedup key is already spilled.
    async fn put(&self, item: Spilled) -> Result<Option<String>, StoreError> {
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let (kind, tenant, connection, dedup) = match &item {
                Spilled::Event { event, .. } => {
                    ("event", &event.tenant, &event.connection, &event.dedup_key)
                }
                Spilled::Inbox(i) => ("inbox", &i.tenant, &i.connection, &i.dedup_key),
            };
            let existing: Option<Option<String>> = tx
                .query_row(
                    "SELECT event_id FROM spill WHERE kind = ?1 AND tenant = ?2 AND connection = ?3 AND dedup_key = ?4",
                    params![kind, tenant, connection, dedup],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(id) = existing {
                return Ok(Some(id.unwrap_or_default()));
            }
            match &item {
                Spilled::Event {
                    id,
                    event,
                    subscriptions,
                } => {
                    let data = serde_json::to_string(&event.data)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    let subs = serde_json::to_string(subscriptions)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    tx.execute(
                        "INSERT INTO spill (kind, tenant, connection, vendor, dedup_key, event_id, type, order_key, at_ms, data, subscriptions)
                         VALUES ('event', ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                        params![
                            event.tenant,
                            event.connection,
                            event.vendor,
                            event.dedup_key,
                            id,
                            event.type_.as_str(),
                            event.order_key,
                            event.created_at,
                            data,
                            subs
                        ],
                    )?;
                }
                Spilled::Inbox(i) => {
                    tx.execute(
                        "INSERT INTO spill (kind, tenant, connection, vendor, dedup_key, at_ms, body)
                         VALUES ('inbox', ?1, ?2, ?3, ?4, ?5, ?6)",
                        params![i.tenant, i.connection, i.vendor, i.dedup_key, i.received_at, i.body],
                    )?;
                }
            }
            tx.commit()?;
            Ok(None)
        })
        .await
    }

    /// The oldest spilled rows.
    async fn oldest(&self, limit: usize) -> Result<Vec<(i64, Spilled)>, StoreError> {
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, kind, tenant, connection, vendor, dedup_key, event_id, type, order_key, at_ms, data, subscriptions, body
                 FROM spill ORDER BY id LIMIT ?1",
            )?;
            let rows = stmt
                .query_map(params![i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, Option<String>>(6)?,
                        r.get::<_, Option<String>>(7)?,
                        r.get::<_, Option<String>>(8)?,
                        r.get::<_, i64>(9)?,
                        r.get::<_, Option<String>>(10)?,
                        r.get::<_, Option<String>>(11)?,
                        r.get::<_, Option<Vec<u8>>>(12)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter()
                .map(|(row, kind, tenant, connection, vendor, dedup_key, id, type_, order_key, at, data, subs, body)| {
                    let corrupt = |what: &str| StoreError::Corrupt(format!("spill row {row}: {what}"));
                    let item = if kind == "inbox" {
                        Spilled::Inbox(NewInboxItem {
                            tenant,
                            connection,
                            vendor,
                            dedup_key,
                            body: body.unwrap_or_default(),
                            received_at: at,
                        })
                    } else {
                        let type_ = type_
                            .as_deref()
                            .and_then(EventType::parse)
                            .ok_or_else(|| corrupt("event type"))?;
                        let data: Value = serde_json::from_str(data.as_deref().unwrap_or("null"))
                            .map_err(|_| corrupt("data"))?;
                        let subscriptions: Vec<String> =
                            serde_json::from_str(subs.as_deref().unwrap_or("[]"))
                                .map_err(|_| corrupt("subscriptions"))?;
                        Spilled::Event {
                            id: id.ok_or_else(|| corrupt("event id"))?,
                            event: NewEvent {
                                tenant,
                                connection,
                                vendor,
                                type_,
                                data,
                                dedup_key,
                                order_key,
                                created_at: at,
                            },
                            subscriptions,
                        }
                    };
                    Ok((row, item))
                })
                .collect()
        })
        .await
    }

    async fn remove(&self, row: i64) -> Result<(), StoreError> {
        self.with_conn(move |conn| {
            conn.execute("DELETE FROM spill WHERE id = ?1", params![row])?;
            Ok(())
        })
        .await
    }

    async fn len(&self) -> Result<u64, StoreError> {
        self.with_conn(|conn| {
            let n: i64 = conn.query_row("SELECT COUNT(*) FROM spill", [], |r| r.get(0))?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
        .await
    }
}

/// The shared event store with a local spill; see the module docs.
pub struct SpillStore {
    inner: Arc<Inner>,
    forwarder: AbortHandle,
}

struct Inner {
    shared: Arc<RedisEventStore>,
    spill: Spill,
    /// Set while the spill holds anything: new writes queue behind it.
    spilling: AtomicBool,
    /// Writes hold it shared while they decide where to go; the forwarder holds it exclusively
    /// to see "empty" and switch back to direct writes.
    gate: RwLock<()>,
    spilled: Notify,
    pending: watch::Sender<u64>,
    metrics: Option<ClusterMetrics>,
    /// Connector state written while Redis was unreachable (learned conversation numbers,
    /// poller baselines): kept here so this replica goes on using it, and written through to
    /// Redis when it answers again. Bounded: past [`MAX_LOCAL_STATE`] it starts over (the
    /// state is a cache of what the vendor tells again).
    local_state: Mutex<std::collections::HashMap<String, (Vec<u8>, Millis)>>,
}

/// Entries of connector state kept locally during an outage.
const MAX_LOCAL_STATE: usize = 10_000;

/// Plain data behind the mutex; a panic elsewhere leaves it usable.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl std::fmt::Debug for SpillStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpillStore")
            .field("spill", &self.inner.spill.path)
            .field("spilling", &self.inner.spilling.load(Ordering::SeqCst))
            .finish()
    }
}

impl Drop for SpillStore {
    fn drop(&mut self) {
        self.forwarder.abort();
    }
}

impl SpillStore {
    /// Open (or create) `<data_dir>/spill.sqlite3` and start the forwarder on the current
    /// runtime. What a previous run left in the spill is forwarded as soon as Redis answers.
    pub async fn open(
        shared: Arc<RedisEventStore>,
        data_dir: &Path,
        metrics: Option<ClusterMetrics>,
    ) -> Result<SpillStore, StoreError> {
        let spill = Spill::open(data_dir)?;
        let left = spill.len().await?;
        if left > 0 {
            tracing::info!(
                left,
                "events left in the local spill by the last run will be forwarded"
            );
        }
        if let Some(m) = &metrics {
            m.spill_pending.set(i64::try_from(left).unwrap_or(i64::MAX));
        }
        let inner = Arc::new(Inner {
            shared,
            spill,
            spilling: AtomicBool::new(left > 0),
            gate: RwLock::new(()),
            spilled: Notify::new(),
            pending: watch::channel(left).0,
            metrics,
            local_state: Mutex::new(std::collections::HashMap::new()),
        });
        let forwarder = tokio::spawn(forward(inner.clone())).abort_handle();
        Ok(SpillStore { inner, forwarder })
    }

    /// Writes waiting in the spill (watch it to see the forwarder drain it).
    pub fn watch_pending(&self) -> watch::Receiver<u64> {
        self.inner.pending.subscribe()
    }

    pub fn path(&self) -> &Path {
        &self.inner.spill.path
    }

    pub fn shared(&self) -> &Arc<RedisEventStore> {
        &self.inner.shared
    }
}

impl Inner {
    async fn refresh_pending(&self) {
        if let Ok(n) = self.spill.len().await {
            self.pending.send_replace(n);
            if let Some(m) = &self.metrics {
                m.spill_pending.set(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
    }

    async fn spill(&self, item: Spilled, kind: &'static str) -> Result<Option<String>, StoreError> {
        let existing = self.spill.put(item).await?;
        if existing.is_none() {
            self.spilling.store(true, Ordering::SeqCst);
            if let Some(m) = &self.metrics {
                m.fallback(kind);
            }
            self.refresh_pending().await;
            self.spilled.notify_one();
        }
        Ok(existing)
    }

    /// Forward the spill, oldest first. `Ok(true)` when it is empty and writes go direct again.
    async fn forward_once(&self) -> Result<bool, StoreError> {
        loop {
            let batch = self.spill.oldest(FORWARD_BATCH).await?;
            if batch.is_empty() {
                let _exclusive = self.gate.write().await;
                if self.spill.len().await? == 0 {
                    self.spilling.store(false, Ordering::SeqCst);
                    self.refresh_pending().await;
                    return Ok(true);
                }
                continue;
            }
            for (row, item) in batch {
                match item {
                    Spilled::Event {
                        id,
                        event,
                        subscriptions,
                    } => {
                        self.shared.append_with_id(id, event, subscriptions).await?;
                    }
                    Spilled::Inbox(item) => {
                        self.shared.inbox_put(item).await?;
                    }
                }
                self.spill.remove(row).await?;
            }
            self.refresh_pending().await;
        }
    }
}

/// Wait for something spilled and Redis up; forward; back off on failures. Holds the store's
/// state until the store aborts it (on drop).
async fn forward(inner: Arc<Inner>) {
    const FIRST_RETRY: Duration = Duration::from_millis(100);
    let mut backoff = FIRST_RETRY;
    let mut up = inner.shared.hub().watch_up();
    loop {
        if !inner.spilling.load(Ordering::SeqCst) {
            // notify_one keeps a permit when nobody waits: a spill just before this is not
            // missed.
            inner.spilled.notified().await;
            continue;
        }
        if up.wait_for(|up| *up).await.is_err() {
            return;
        }
        match inner.forward_once().await {
            Ok(_) => {
                tracing::info!("the local event spill was forwarded to Redis");
                backoff = FIRST_RETRY;
            }
            Err(e) => {
                tracing::warn!(error = %e, "forwarding the local event spill failed; will retry");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// The answer for an event accepted into the spill.
fn spilled_answer(id: String, event: NewEvent, deliveries: usize) -> Result<Appended, StoreError> {
    let body = serde_json::to_string(&event.envelope(&id))
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(Appended::Stored {
        event: StoredEvent {
            seq: 0,
            id,
            tenant: event.tenant,
            connection: event.connection,
            type_: event.type_,
            order_key: event.order_key,
            created_at: event.created_at,
            body,
        },
        deliveries,
    })
}

#[async_trait]
impl EventStore for SpillStore {
    async fn append(
        &self,
        event: NewEvent,
        mut subscriptions: Vec<String>,
    ) -> Result<Appended, StoreError> {
        subscriptions.sort();
        subscriptions.dedup();
        let inner = &self.inner;
        let _shared = inner.gate.read().await;
        let id = new_event_id();
        if !inner.spilling.load(Ordering::SeqCst) {
            match inner
                .shared
                .append_with_id(id.clone(), event.clone(), subscriptions.clone())
                .await
            {
                Err(StoreError::Unavailable { .. }) => {}
                answer => return answer,
            }
        }
        let deliveries = subscriptions.len();
        let item = Spilled::Event {
            id: id.clone(),
            event: event.clone(),
            subscriptions,
        };
        match inner.spill(item, "event").await? {
            None => spilled_answer(id, event, deliveries),
            Some(first) => Ok(Appended::Duplicate { id: first, seq: 0 }),
        }
    }

    async fn inbox_put(&self, item: NewInboxItem) -> Result<InboxPut, StoreError> {
        let inner = &self.inner;
        let _shared = inner.gate.read().await;
        if !inner.spilling.load(Ordering::SeqCst) {
            match inner.shared.inbox_put(item.clone()).await {
                Err(StoreError::Unavailable { .. }) => {}
                answer => return answer,
            }
        }
        Ok(match inner.spill(Spilled::Inbox(item), "inbox").await? {
            None => InboxPut::Stored { id: 0 },
            Some(_) => InboxPut::Duplicate { id: 0 },
        })
    }

    async fn list(
        &self,
        tenant: &str,
        after: Option<u64>,
        types: &[EventType],
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.inner.shared.list(tenant, after, types, limit).await
    }

    async fn find(&self, tenant: &str, event_id: &str) -> Result<Option<StoredEvent>, StoreError> {
        self.inner.shared.find(tenant, event_id).await
    }

    async fn last_seq(&self, tenant: &str) -> Result<Option<u64>, StoreError> {
        self.inner.shared.last_seq(tenant).await
    }

    async fn claim_due(
        &self,
        now: Millis,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.inner.shared.claim_due(now, limit, lease).await
    }

    async fn next_due(&self) -> Result<Option<Millis>, StoreError> {
        self.inner.shared.next_due().await
    }

    async fn record_attempt(
        &self,
        delivery: &Delivery,
        attempt: Attempt,
    ) -> Result<bool, StoreError> {
        self.inner.shared.record_attempt(delivery, attempt).await
    }

    async fn dead_letters(
        &self,
        tenant: Option<&str>,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        self.inner.shared.dead_letters(tenant, after, limit).await
    }

    async fn deliveries_of(&self, event_id: &str) -> Result<Vec<DeliveryRecord>, StoreError> {
        self.inner.shared.deliveries_of(event_id).await
    }

    async fn replay(&self, target: &ReplayTarget, now: Millis) -> Result<usize, StoreError> {
        self.inner.shared.replay(target, now).await
    }

    async fn backlog(&self) -> Result<Vec<Backlog>, StoreError> {
        self.inner.shared.backlog().await
    }

    async fn prune(&self, before: Millis) -> Result<u64, StoreError> {
        self.inner.shared.prune(before).await
    }

    async fn inbox_claim(
        &self,
        now: Millis,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<InboxItem>, StoreError> {
        self.inner.shared.inbox_claim(now, limit, lease).await
    }

    async fn inbox_complete(
        &self,
        item: &InboxItem,
        events: Vec<(NewEvent, Vec<String>)>,
        now: Millis,
    ) -> Result<Option<Vec<Appended>>, StoreError> {
        self.inner.shared.inbox_complete(item, events, now).await
    }

    async fn inbox_failed(
        &self,
        item: &InboxItem,
        retry_at: Option<Millis>,
        error: &str,
        now: Millis,
    ) -> Result<bool, StoreError> {
        self.inner
            .shared
            .inbox_failed(item, retry_at, error, now)
            .await
    }

    async fn inbox_dead(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<InboxItem>, StoreError> {
        self.inner.shared.inbox_dead(after, limit).await
    }

    async fn inbox_backlog(&self) -> Result<InboxBacklog, StoreError> {
        self.inner.shared.inbox_backlog().await
    }

    /// Redis's value, or (while Redis is unreachable) what this replica wrote during the
    /// outage, else nothing: the callers treat unknown state as "not learned yet".
    async fn state_get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self.inner.shared.state_get(key).await {
            Err(StoreError::Unavailable { .. }) => Ok(lock(&self.inner.local_state)
                .get(key)
                .map(|(value, _)| value.clone())),
            answer => answer,
        }
    }

    /// Written to Redis; while it is unreachable, kept locally and written through once a
    /// later write reaches Redis (connector state is never a reason to refuse an event).
    async fn state_put(&self, key: &str, value: &[u8], now: Millis) -> Result<(), StoreError> {
        match self.inner.shared.state_put(key, value, now).await {
            Err(StoreError::Unavailable { .. }) => {
                let mut local = lock(&self.inner.local_state);
                if local.len() >= MAX_LOCAL_STATE && !local.contains_key(key) {
                    local.clear();
                }
                local.insert(key.to_owned(), (value.to_vec(), now));
                Ok(())
            }
            Ok(()) => {
                let held: Vec<(String, (Vec<u8>, Millis))> =
                    lock(&self.inner.local_state).drain().collect();
                for (k, (v, at)) in held {
                    if k != key && self.inner.shared.state_put(&k, &v, at).await.is_err() {
                        lock(&self.inner.local_state).insert(k, (v, at));
                    }
                }
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.inner.shared.changes()
    }
}

#[cfg(test)]
mod tests;
