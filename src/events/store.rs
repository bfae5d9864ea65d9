//! The event store: the state seam of docs/architecture.md "Wave 2 seams" for events.
//!
//! [`EventStore`] is what intake, the pull API, SSE and the delivery worker use; a Redis backend
//! (issue 15) implements the same trait. [`SqliteStore`] is the embedded default: one SQLite
//! file, `<data_dir>/events.sqlite3`.
//!
//! Why SQLite (rusqlite, `bundled`) rather than redb: the outbox needs queries, not just keyed
//! reads — "the oldest due delivery whose conversation has nothing earlier still pending",
//! "pending deliveries per subscription and the age of the oldest" — which SQL states in one
//! indexed statement each, where a key-value store needs hand-maintained secondary indexes kept
//! consistent by our own code. SQLite's write-ahead log with `synchronous=FULL` makes a commit
//! durable (fsynced) before it returns, the file is inspectable with the `sqlite3` shell during
//! an incident, and `bundled` builds the same SQLite everywhere without a system library.
//!
//! Invariants every backend keeps:
//! - **Stored before acknowledged.** [`EventStore::append`] returns only after the event and all
//!   its deliveries are committed durably, in one transaction (all or nothing).
//! - **Dedup.** A second append with the same `(tenant, connection, dedup_key)` stores nothing
//!   and answers [`Appended::Duplicate`].
//! - **Order per conversation.** A delivery is not claimed while an earlier delivery (stored
//!   before it) for the same subscription and order key is still pending; a delivered or
//!   dead-lettered one no longer blocks. Deliveries without an order key are independent.
//! - **Leases.** A claimed delivery is leased until `now + lease`; an expired lease (a worker
//!   that died) makes it claimable again — at least once, never lost. A result is recorded only
//!   under the lease it was claimed with.
//! - **The inbox.** A verified vendor body that still needs a vendor call is kept durably
//!   ([`EventStore::inbox_put`]) before intake answers; per connection only the oldest pending
//!   item is leased, and [`EventStore::inbox_complete`] stores its events and closes it in one
//!   transaction. Dedup spans inbox and events.
//! - **One owner.** The embedded store locks its file exclusively: a second process on the
//!   same `data_dir` fails to open instead of delivering everything twice.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row, TransactionBehavior};
use tokio::sync::watch;

use super::clock::{duration_ms, Millis};
use super::model::{new_event_id, EventType, NewEvent, StoredEvent};

/// The file inside `data_dir`.
pub const STORE_FILE: &str = "events.sqlite3";

/// Schema version this code writes (SQLite `user_version`).
const SCHEMA_VERSION: i64 = 1;

/// Largest page a list or dead-letter query returns.
pub const MAX_PAGE: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("event store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("event store folder {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the event store {} is in use by another switchboard process", .0.display())]
    Locked(PathBuf),
    #[error("the event store {} has schema version {found}; this switchboard reads up to {SCHEMA_VERSION}", path.display())]
    Schema { path: PathBuf, found: i64 },
    #[error("a stored event is unreadable: {0}")]
    Corrupt(String),
    #[error("event store task failed: {0}")]
    Task(String),
    /// A shared backend (Redis) cannot be reached or did not answer in time.
    #[error("the {backend} event store is unavailable: {reason}")]
    Unavailable {
        backend: &'static str,
        reason: String,
    },
}

/// What [`EventStore::append`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Appended {
    /// Stored (durably) with this many deliveries queued.
    Stored {
        event: StoredEvent,
        deliveries: usize,
    },
    /// The vendor sent this change before; nothing was stored. `id` is the first event's.
    Duplicate { id: String, seq: u64 },
}

/// A claimed delivery: everything the worker needs for one attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub id: u64,
    pub tenant: String,
    pub subscription: String,
    pub event: StoredEvent,
    /// Attempts made before this one.
    pub attempts: u32,
    /// Start of the retry window (first storage, or the last replay).
    pub window_start: Millis,
    /// Proof of the claim; [`EventStore::record_attempt`] needs it.
    pub lease: u64,
}

/// What became of one attempt (decided by the delivery policy, not the store).
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptResult {
    Delivered,
    Retry {
        next_attempt_at: Millis,
    },
    /// No more attempts; `reason` is a bounded word (`retry_window_exhausted`, `gone`,
    /// `subscription_removed`).
    Dead {
        reason: &'static str,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub at: Millis,
    /// The subscriber's HTTP status, when it answered.
    pub status: Option<u16>,
    /// Why it failed, in words safe to show an operator (no secrets, no bodies).
    pub error: Option<String>,
    pub result: AttemptResult,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    Pending,
    Delivered,
    Dead,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Dead => "dead",
        }
    }

    fn parse(s: &str) -> Option<DeliveryState> {
        Some(match s {
            "pending" => DeliveryState::Pending,
            "delivered" => DeliveryState::Delivered,
            "dead" => DeliveryState::Dead,
            _ => return None,
        })
    }
}

/// A delivery as an operator sees it (`GET /admin/events/dead`).
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRecord {
    pub id: u64,
    pub tenant: String,
    pub subscription: String,
    pub event_id: String,
    pub event_type: EventType,
    pub connection: String,
    pub order_key: Option<String>,
    pub event_created_at: Millis,
    pub state: DeliveryState,
    pub attempts: u32,
    pub next_attempt_at: Millis,
    pub last_attempt_at: Option<Millis>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub dead_reason: Option<String>,
    pub finished_at: Option<Millis>,
}

/// Pending deliveries of one subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backlog {
    pub tenant: String,
    pub subscription: String,
    pub pending: u64,
    /// When the oldest pending event was stored.
    pub oldest_created_at: Millis,
}

/// What `POST /admin/events/{id}/replay` names: one delivery, every dead delivery of an
/// event, or a vendor event whose normalization was given up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayTarget {
    Delivery(u64),
    Event(String),
    Inbox(u64),
}

impl ReplayTarget {
    /// `dlv_<n>`, `inb_<n>` or an event ID (`evt_…`).
    pub fn parse(s: &str) -> Option<ReplayTarget> {
        let number = |n: &str| n.parse::<u64>().ok().filter(|n| *n > 0);
        if let Some(n) = s.strip_prefix("dlv_") {
            return number(n).map(ReplayTarget::Delivery);
        }
        if let Some(n) = s.strip_prefix("inb_") {
            return number(n).map(ReplayTarget::Inbox);
        }
        super::model::is_event_id(s).then(|| ReplayTarget::Event(s.to_owned()))
    }
}

/// The external name of a delivery id.
pub fn delivery_name(id: u64) -> String {
    format!("dlv_{id}")
}

/// The external name of an inbox item id.
pub fn inbox_name(id: u64) -> String {
    format!("inb_{id}")
}

/// A verified vendor body that intake accepted but that still needs work (a vendor call)
/// before it becomes events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInboxItem {
    pub tenant: String,
    pub connection: String,
    pub vendor: String,
    /// The vendor's identity of the change (the same key the event will carry).
    pub dedup_key: String,
    /// The raw body, exactly as verified.
    pub body: Vec<u8>,
    pub received_at: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InboxPut {
    Stored {
        id: u64,
    },
    /// Seen before, as an inbox item (`id`) or already as an event (`id` 0).
    Duplicate {
        id: u64,
    },
}

/// A leased inbox item, or (from [`EventStore::inbox_dead`]) a given-up one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxItem {
    pub id: u64,
    pub tenant: String,
    pub connection: String,
    pub vendor: String,
    pub dedup_key: String,
    pub body: Vec<u8>,
    pub received_at: Millis,
    /// Attempts made before this one.
    pub attempts: u32,
    pub last_error: Option<String>,
    pub lease: u64,
}

/// Inbox items waiting for normalization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InboxBacklog {
    pub pending: u64,
    pub oldest_received_at: Option<Millis>,
}

/// The state seam for events. Every method is safe to call concurrently.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Store `event` and queue one delivery per name in `subscriptions`, durably, before
    /// returning. The event ID is minted here.
    async fn append(
        &self,
        event: NewEvent,
        subscriptions: Vec<String>,
    ) -> Result<Appended, StoreError>;

    /// A tenant's events after `after` (a `seq`), oldest first, optionally only `types`.
    async fn list(
        &self,
        tenant: &str,
        after: Option<u64>,
        types: &[EventType],
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError>;

    /// One of the tenant's events by ID (`Last-Event-ID`).
    async fn find(&self, tenant: &str, event_id: &str) -> Result<Option<StoredEvent>, StoreError>;

    /// The newest `seq` of the tenant (an SSE stream without `Last-Event-ID` starts after it).
    async fn last_seq(&self, tenant: &str) -> Result<Option<u64>, StoreError>;

    /// Lease up to `limit` due deliveries (at most one per subscription and order key).
    async fn claim_due(
        &self,
        now: Millis,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Delivery>, StoreError>;

    /// When the earliest pending delivery falls due (a worker sleeps until then at most).
    async fn next_due(&self) -> Result<Option<Millis>, StoreError>;

    /// Record an attempt. `false` when the lease is no longer held (another claim took over);
    /// nothing is changed then.
    async fn record_attempt(
        &self,
        delivery: &Delivery,
        attempt: Attempt,
    ) -> Result<bool, StoreError>;

    /// Dead letters, oldest first, after delivery id `after`, optionally of one tenant.
    async fn dead_letters(
        &self,
        tenant: Option<&str>,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<DeliveryRecord>, StoreError>;

    /// Every delivery of one event (admin detail, tests).
    async fn deliveries_of(&self, event_id: &str) -> Result<Vec<DeliveryRecord>, StoreError>;

    /// Put dead deliveries back in the queue, due at `now`, with a fresh retry window.
    /// Answers how many were requeued (0: nothing dead under that name).
    async fn replay(&self, target: &ReplayTarget, now: Millis) -> Result<usize, StoreError>;

    /// Pending deliveries per subscription.
    async fn backlog(&self) -> Result<Vec<Backlog>, StoreError>;

    /// Forget events stored before `before` (and their deliveries), except events that still
    /// have a pending delivery. Answers how many events were removed.
    async fn prune(&self, before: Millis) -> Result<u64, StoreError>;

    /// Keep a verified vendor body durably until it is normalized: intake answers 2xx once
    /// this returns, so a vendor that never retries (Libredesk) loses nothing when the
    /// follow-up vendor call fails. Deduplicated by `(tenant, connection, dedup_key)`.
    async fn inbox_put(&self, item: NewInboxItem) -> Result<InboxPut, StoreError>;

    /// Lease up to `limit` due inbox items: per `(tenant, connection)` only the oldest pending
    /// one, so a connection's vendor events become events in the order they arrived.
    async fn inbox_claim(
        &self,
        now: Millis,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<InboxItem>, StoreError>;

    /// Store the item's events (each deduplicated and fanned out to its subscriptions) and
    /// close the item, in one transaction. `None` when the lease was lost (nothing stored).
    async fn inbox_complete(
        &self,
        item: &InboxItem,
        events: Vec<(NewEvent, Vec<String>)>,
        now: Millis,
    ) -> Result<Option<Vec<Appended>>, StoreError>;

    /// A failed normalization: due again at `retry_at`, or given up (`None`) and listed by
    /// [`EventStore::inbox_dead`]. `false` when the lease was lost.
    async fn inbox_failed(
        &self,
        item: &InboxItem,
        retry_at: Option<Millis>,
        error: &str,
        now: Millis,
    ) -> Result<bool, StoreError>;

    /// Given-up inbox items, oldest first, after inbox id `after`.
    async fn inbox_dead(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<InboxItem>, StoreError>;

    /// Inbox items waiting.
    async fn inbox_backlog(&self) -> Result<InboxBacklog, StoreError>;

    /// Small durable state for pollers ("resume where it stopped").
    async fn state_get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    async fn state_put(&self, key: &str, value: &[u8], now: Millis) -> Result<(), StoreError>;

    /// Ticks whenever an event is stored or a delivery requeued: SSE streams and the worker
    /// wait on it instead of polling.
    fn changes(&self) -> watch::Receiver<u64>;
}

// ----- the embedded backend ---------------------------------------------------------------

const SCHEMA: &str = "
CREATE TABLE events (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT    NOT NULL UNIQUE,
    tenant        TEXT    NOT NULL,
    connection    TEXT    NOT NULL,
    type          TEXT    NOT NULL,
    dedup_key     TEXT    NOT NULL,
    order_key     TEXT,
    created_at_ms INTEGER NOT NULL,
    body          TEXT    NOT NULL
);
CREATE UNIQUE INDEX events_dedup ON events (tenant, connection, dedup_key);
CREATE INDEX events_by_tenant ON events (tenant, seq);
CREATE INDEX events_by_age ON events (created_at_ms);

CREATE TABLE deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    event_seq       INTEGER NOT NULL REFERENCES events (seq) ON DELETE CASCADE,
    tenant          TEXT    NOT NULL,
    subscription    TEXT    NOT NULL,
    order_key       TEXT,
    state           TEXT    NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    window_start_ms INTEGER NOT NULL,
    next_attempt_ms INTEGER NOT NULL,
    lease           INTEGER NOT NULL DEFAULT 0,
    leased_until_ms INTEGER NOT NULL DEFAULT 0,
    last_attempt_ms INTEGER,
    last_status     INTEGER,
    last_error      TEXT,
    dead_reason     TEXT,
    finished_ms     INTEGER
);
CREATE INDEX deliveries_due ON deliveries (state, next_attempt_ms);
CREATE INDEX deliveries_queue ON deliveries (tenant, subscription, order_key, state, id);
CREATE INDEX deliveries_by_event ON deliveries (event_seq);

CREATE TABLE inbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant          TEXT    NOT NULL,
    connection      TEXT    NOT NULL,
    vendor          TEXT    NOT NULL,
    dedup_key       TEXT    NOT NULL,
    body            BLOB    NOT NULL,
    received_ms     INTEGER NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('pending', 'done', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL,
    lease           INTEGER NOT NULL DEFAULT 0,
    leased_until_ms INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    finished_ms     INTEGER
);
CREATE UNIQUE INDEX inbox_dedup ON inbox (tenant, connection, dedup_key);
CREATE INDEX inbox_queue ON inbox (tenant, connection, state, id);
CREATE INDEX inbox_due ON inbox (state, next_attempt_ms);

CREATE TABLE state (
    key        TEXT PRIMARY KEY,
    value      BLOB    NOT NULL,
    updated_ms INTEGER NOT NULL
);
";

const EVENT_COLUMNS: &str =
    "e.seq, e.id, e.tenant, e.connection, e.type, e.order_key, e.created_at_ms, e.body";

const RECORD_COLUMNS: &str =
    "d.id, d.tenant, d.subscription, e.id, e.type, e.connection, d.order_key, \
     e.created_at_ms, d.state, d.attempts, d.next_attempt_ms, d.last_attempt_ms, d.last_status, \
     d.last_error, d.dead_reason, d.finished_ms";

/// The embedded, durable store: one SQLite file under `data_dir`.
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
    changes: watch::Sender<u64>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

impl SqliteStore {
    /// Open (creating if needed) the store in `data_dir`. Fails if another process holds it.
    ///
    /// Leases left by a previous run of this process are cleared: with one owner, nothing can
    /// still be in flight, and the deliveries are due again at once.
    pub fn open(data_dir: &Path) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::Io {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let path = data_dir.join(STORE_FILE);
        let mut conn = Connection::open(&path)?;
        // Exclusive locking: the first write takes the file lock and keeps it until close, so a
        // second gateway on the same data_dir fails here instead of double-delivering.
        // busy_timeout 0: fail at once rather than hang a starting gateway.
        conn.busy_timeout(Duration::ZERO)?;
        let locked = |e: rusqlite::Error| match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy) | Some(rusqlite::ErrorCode::DatabaseLocked) => {
                StoreError::Locked(path.clone())
            }
            _ => StoreError::Sqlite(e),
        };
        conn.pragma_update(None, "locking_mode", "EXCLUSIVE")
            .map_err(locked)?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(locked)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Corrupt(format!(
                "{}: journal_mode is {mode}, expected wal",
                path.display()
            )));
        }
        // FULL: every commit fsyncs the write-ahead log before it returns (WAL's NORMAL would
        // trade the last transactions for speed on power loss — an acknowledged event must
        // survive that).
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(locked)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(locked)?;

        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Exclusive)
            .map_err(locked)?;
        let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        match version {
            0 => {
                tx.execute_batch(SCHEMA)?;
                tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
            }
            SCHEMA_VERSION => {}
            found => return Err(StoreError::Schema { path, found }),
        }
        tx.execute(
            "UPDATE deliveries SET leased_until_ms = 0 WHERE state = 'pending' AND leased_until_ms > 0",
            [],
        )?;
        tx.execute(
            "UPDATE inbox SET leased_until_ms = 0 WHERE state = 'pending' AND leased_until_ms > 0",
            [],
        )?;
        tx.commit().map_err(locked)?;

        let last: i64 =
            conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))?;
        let (changes, _) = watch::channel(u64::try_from(last).unwrap_or(0));
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            path,
            changes,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Run `f` on the connection off the async threads (SQLite calls block, fsync included).
    async fn with_conn<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock leaves no open transaction behind (rusqlite rolls
            // back on drop), so the connection is still consistent.
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    fn tick(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn event_from_row(row: &Row<'_>, at: usize) -> rusqlite::Result<Result<StoredEvent, String>> {
    let type_text: String = row.get(at + 4)?;
    let Some(type_) = EventType::parse(&type_text) else {
        return Ok(Err(format!("unknown event type {type_text:?}")));
    };
    Ok(Ok(StoredEvent {
        seq: to_u64(row.get(at)?),
        id: row.get(at + 1)?,
        tenant: row.get(at + 2)?,
        connection: row.get(at + 3)?,
        type_,
        order_key: row.get(at + 5)?,
        created_at: row.get(at + 6)?,
        body: row.get(at + 7)?,
    }))
}

fn record_from_row(row: &Row<'_>) -> rusqlite::Result<Result<DeliveryRecord, String>> {
    let type_text: String = row.get(4)?;
    let state_text: String = row.get(8)?;
    let (Some(event_type), Some(state)) = (
        EventType::parse(&type_text),
        DeliveryState::parse(&state_text),
    ) else {
        return Ok(Err(format!(
            "unknown event type {type_text:?} or state {state_text:?}"
        )));
    };
    Ok(Ok(DeliveryRecord {
        id: to_u64(row.get(0)?),
        tenant: row.get(1)?,
        subscription: row.get(2)?,
        event_id: row.get(3)?,
        event_type,
        connection: row.get(5)?,
        order_key: row.get(6)?,
        event_created_at: row.get(7)?,
        state,
        attempts: u32::try_from(row.get::<_, i64>(9)?).unwrap_or(u32::MAX),
        next_attempt_at: row.get(10)?,
        last_attempt_at: row.get(11)?,
        last_status: row
            .get::<_, Option<i64>>(12)?
            .and_then(|s| u16::try_from(s).ok()),
        last_error: row.get(13)?,
        dead_reason: row.get(14)?,
        finished_at: row.get(15)?,
    }))
}

fn collect<T>(rows: Vec<Result<T, String>>) -> Result<Vec<T>, StoreError> {
    rows.into_iter()
        .map(|r| r.map_err(StoreError::Corrupt))
        .collect()
}

/// Append one event and its deliveries inside the caller's transaction.
fn append_in(
    tx: &rusqlite::Transaction<'_>,
    event: NewEvent,
    mut subscriptions: Vec<String>,
) -> Result<Appended, StoreError> {
    subscriptions.sort();
    subscriptions.dedup();
    let existing: Option<(String, i64)> = tx
        .query_row(
            "SELECT id, seq FROM events WHERE tenant = ?1 AND connection = ?2 AND dedup_key = ?3",
            params![event.tenant, event.connection, event.dedup_key],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    if let Some((id, seq)) = existing {
        return Ok(Appended::Duplicate {
            id,
            seq: to_u64(seq),
        });
    }
    let id = new_event_id();
    let body = serde_json::to_string(&event.envelope(&id))
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    tx.execute(
        "INSERT INTO events (id, tenant, connection, type, dedup_key, order_key, created_at_ms, body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            id,
            event.tenant,
            event.connection,
            event.type_.as_str(),
            event.dedup_key,
            event.order_key,
            event.created_at,
            body
        ],
    )?;
    let seq = tx.last_insert_rowid();
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO deliveries (event_seq, tenant, subscription, order_key, state, window_start_ms, next_attempt_ms)
             VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?5)",
        )?;
        for sub in &subscriptions {
            insert.execute(params![
                seq,
                event.tenant,
                sub,
                event.order_key,
                event.created_at
            ])?;
        }
    }
    Ok(Appended::Stored {
        event: StoredEvent {
            seq: to_u64(seq),
            id,
            tenant: event.tenant,
            connection: event.connection,
            type_: event.type_,
            order_key: event.order_key,
            created_at: event.created_at,
            body,
        },
        deliveries: subscriptions.len(),
    })
}

const INBOX_COLUMNS: &str =
    "i.id, i.tenant, i.connection, i.vendor, i.dedup_key, i.body, i.received_ms, i.attempts, i.last_error, i.lease";

fn inbox_from_row(r: &Row<'_>) -> rusqlite::Result<InboxItem> {
    Ok(InboxItem {
        id: to_u64(r.get(0)?),
        tenant: r.get(1)?,
        connection: r.get(2)?,
        vendor: r.get(3)?,
        dedup_key: r.get(4)?,
        body: r.get(5)?,
        received_at: r.get(6)?,
        attempts: u32::try_from(r.get::<_, i64>(7)?).unwrap_or(u32::MAX),
        last_error: r.get(8)?,
        lease: to_u64(r.get(9)?),
    })
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn append(
        &self,
        event: NewEvent,
        subscriptions: Vec<String>,
    ) -> Result<Appended, StoreError> {
        let result = self
            .with_conn(move |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let appended = append_in(&tx, event, subscriptions)?;
                tx.commit()?;
                Ok(appended)
            })
            .await?;
        if matches!(result, Appended::Stored { .. }) {
            self.tick();
        }
        Ok(result)
    }

    async fn list(
        &self,
        tenant: &str,
        after: Option<u64>,
        types: &[EventType],
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let tenant = tenant.to_owned();
        let types: Vec<&'static str> = types.iter().map(|t| t.as_str()).collect();
        let limit = limit.clamp(1, MAX_PAGE);
        self.with_conn(move |conn| {
            let type_filter = if types.is_empty() {
                String::new()
            } else {
                let marks: Vec<String> = (0..types.len()).map(|i| format!("?{}", i + 4)).collect();
                format!(" AND e.type IN ({})", marks.join(", "))
            };
            let sql = format!(
                "SELECT {EVENT_COLUMNS} FROM events e WHERE e.tenant = ?1 AND e.seq > ?2{type_filter}
                 ORDER BY e.seq LIMIT ?3"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut values: Vec<rusqlite::types::Value> = vec![
                tenant.into(),
                to_i64(after.unwrap_or(0)).into(),
                to_i64(limit as u64).into(),
            ];
            values.extend(types.iter().map(|t| rusqlite::types::Value::from(t.to_string())));
            let rows = stmt
                .query_map(params_from_iter(values), |r| event_from_row(r, 0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            collect(rows)
        })
        .await
    }

    async fn find(&self, tenant: &str, event_id: &str) -> Result<Option<StoredEvent>, StoreError> {
        let (tenant, event_id) = (tenant.to_owned(), event_id.to_owned());
        self.with_conn(move |conn| {
            let row = conn
                .query_row(
                    &format!(
                        "SELECT {EVENT_COLUMNS} FROM events e WHERE e.id = ?1 AND e.tenant = ?2"
                    ),
                    params![event_id, tenant],
                    |r| event_from_row(r, 0),
                )
                .optional()?;
            row.transpose().map_err(StoreError::Corrupt)
        })
        .await
    }

    async fn last_seq(&self, tenant: &str) -> Result<Option<u64>, StoreError> {
        let tenant = tenant.to_owned();
        self.with_conn(move |conn| {
            let seq: Option<i64> = conn.query_row(
                "SELECT MAX(seq) FROM events WHERE tenant = ?1",
                params![tenant],
                |r| r.get(0),
            )?;
            Ok(seq.map(to_u64))
        })
        .await
    }

    async fn claim_due(
        &self,
        now: Millis,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Delivery>, StoreError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let leased_until = now.saturating_add(duration_ms(lease));
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let rows = {
                // The head of each (tenant, subscription, order_key) queue only: nothing stored
                // earlier for the same queue may still be pending.
                let mut stmt = tx.prepare_cached(&format!(
                    "SELECT d.id, d.tenant, d.subscription, d.attempts, d.window_start_ms, {EVENT_COLUMNS}
                     FROM deliveries d JOIN events e ON e.seq = d.event_seq
                     WHERE d.state = 'pending' AND d.next_attempt_ms <= ?1 AND d.leased_until_ms <= ?1
                       AND (d.order_key IS NULL OR NOT EXISTS (
                             SELECT 1 FROM deliveries p
                             WHERE p.tenant = d.tenant AND p.subscription = d.subscription
                               AND p.order_key = d.order_key AND p.state = 'pending' AND p.id < d.id))
                     ORDER BY d.next_attempt_ms, d.id
                     LIMIT ?2"
                ))?;
                let rows = stmt
                    .query_map(params![now, to_i64(limit as u64)], |r| {
                        Ok((
                            to_u64(r.get(0)?),
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            u32::try_from(r.get::<_, i64>(3)?).unwrap_or(u32::MAX),
                            r.get::<_, i64>(4)?,
                            event_from_row(r, 5)?,
                        ))
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                rows
            };
            let mut claimed = Vec::with_capacity(rows.len());
            {
                let mut take = tx.prepare_cached(
                    "UPDATE deliveries SET lease = lease + 1, leased_until_ms = ?2 WHERE id = ?1 RETURNING lease",
                )?;
                for (id, tenant, subscription, attempts, window_start, event) in rows {
                    let event = event.map_err(StoreError::Corrupt)?;
                    let lease: i64 =
                        take.query_row(params![to_i64(id), leased_until], |r| r.get(0))?;
                    claimed.push(Delivery {
                        id,
                        tenant,
                        subscription,
                        event,
                        attempts,
                        window_start,
                        lease: to_u64(lease),
                    });
                }
            }
            tx.commit()?;
            Ok(claimed)
        })
        .await
    }

    async fn next_due(&self) -> Result<Option<Millis>, StoreError> {
        self.with_conn(|conn| {
            // Queue heads only: a blocked delivery's own time says nothing about when it can go.
            Ok(conn.query_row(
                "SELECT MIN(MAX(d.next_attempt_ms, d.leased_until_ms)) FROM deliveries d
                 WHERE d.state = 'pending'
                   AND (d.order_key IS NULL OR NOT EXISTS (
                         SELECT 1 FROM deliveries p
                         WHERE p.tenant = d.tenant AND p.subscription = d.subscription
                           AND p.order_key = d.order_key AND p.state = 'pending' AND p.id < d.id))",
                [],
                |r| r.get(0),
            )?)
        })
        .await
    }

    async fn record_attempt(
        &self,
        delivery: &Delivery,
        attempt: Attempt,
    ) -> Result<bool, StoreError> {
        let (id, lease) = (to_i64(delivery.id), to_i64(delivery.lease));
        self.with_conn(move |conn| {
            let status = attempt.status.map(i64::from);
            let (state, next, dead_reason, finished) = match attempt.result {
                AttemptResult::Delivered => ("delivered", attempt.at, None, Some(attempt.at)),
                AttemptResult::Retry { next_attempt_at } => ("pending", next_attempt_at, None, None),
                AttemptResult::Dead { reason } => ("dead", attempt.at, Some(reason), Some(attempt.at)),
            };
            let changed = conn.execute(
                "UPDATE deliveries
                 SET state = ?3, attempts = attempts + 1, next_attempt_ms = ?4, leased_until_ms = 0,
                     last_attempt_ms = ?5, last_status = ?6, last_error = ?7, dead_reason = ?8, finished_ms = ?9
                 WHERE id = ?1 AND lease = ?2 AND state = 'pending'",
                params![
                    id,
                    lease,
                    state,
                    next,
                    attempt.at,
                    status,
                    attempt.error,
                    dead_reason,
                    finished
                ],
            )?;
            Ok(changed == 1)
        })
        .await
    }

    async fn dead_letters(
        &self,
        tenant: Option<&str>,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let tenant = tenant.map(str::to_owned);
        let limit = limit.clamp(1, MAX_PAGE);
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {RECORD_COLUMNS} FROM deliveries d JOIN events e ON e.seq = d.event_seq
                 WHERE d.state = 'dead' AND d.id > ?1 AND (?2 IS NULL OR d.tenant = ?2)
                 ORDER BY d.id LIMIT ?3"
            ))?;
            let rows = stmt
                .query_map(
                    params![to_i64(after.unwrap_or(0)), tenant, to_i64(limit as u64)],
                    record_from_row,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            collect(rows)
        })
        .await
    }

    async fn deliveries_of(&self, event_id: &str) -> Result<Vec<DeliveryRecord>, StoreError> {
        let event_id = event_id.to_owned();
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {RECORD_COLUMNS} FROM deliveries d JOIN events e ON e.seq = d.event_seq
                 WHERE e.id = ?1 ORDER BY d.id"
            ))?;
            let rows = stmt
                .query_map(params![event_id], record_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            collect(rows)
        })
        .await
    }

    async fn replay(&self, target: &ReplayTarget, now: Millis) -> Result<usize, StoreError> {
        let target = target.clone();
        let n = self
            .with_conn(move |conn| {
                const SET: &str = "UPDATE deliveries
                    SET state = 'pending', next_attempt_ms = ?1, window_start_ms = ?1, leased_until_ms = 0,
                        dead_reason = NULL, finished_ms = NULL";
                let n = match &target {
                    ReplayTarget::Delivery(id) => conn.execute(
                        &format!("{SET} WHERE id = ?2 AND state = 'dead'"),
                        params![now, to_i64(*id)],
                    )?,
                    ReplayTarget::Inbox(id) => conn.execute(
                        "UPDATE inbox SET state = 'pending', next_attempt_ms = ?1, leased_until_ms = 0, finished_ms = NULL
                         WHERE id = ?2 AND state = 'dead'",
                        params![now, to_i64(*id)],
                    )?,
                    ReplayTarget::Event(event_id) => conn.execute(
                        &format!(
                            "{SET} WHERE state = 'dead' AND event_seq = (SELECT seq FROM events WHERE id = ?2)"
                        ),
                        params![now, event_id],
                    )?,
                };
                Ok(n)
            })
            .await?;
        if n > 0 {
            self.tick();
        }
        Ok(n)
    }

    async fn backlog(&self) -> Result<Vec<Backlog>, StoreError> {
        self.with_conn(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT d.tenant, d.subscription, COUNT(*), MIN(e.created_at_ms)
                 FROM deliveries d JOIN events e ON e.seq = d.event_seq
                 WHERE d.state = 'pending'
                 GROUP BY d.tenant, d.subscription ORDER BY d.tenant, d.subscription",
            )?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(Backlog {
                        tenant: r.get(0)?,
                        subscription: r.get(1)?,
                        pending: to_u64(r.get(2)?),
                        oldest_created_at: r.get(3)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn prune(&self, before: Millis) -> Result<u64, StoreError> {
        self.with_conn(move |conn| {
            let mut removed = 0u64;
            // In batches, so a large backlog of old events never holds the lock for long.
            loop {
                let n = conn.execute(
                    "DELETE FROM events WHERE seq IN (
                         SELECT e.seq FROM events e
                         WHERE e.created_at_ms < ?1
                           AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_seq = e.seq AND d.state = 'pending')
                         LIMIT 5000)",
                    params![before],
                )?;
                removed += n as u64;
                if n < 5000 {
                    break;
                }
            }
            // Closed inbox items only keep dedup keys alive; they go with the events.
            conn.execute(
                "DELETE FROM inbox WHERE state != 'pending' AND received_ms < ?1",
                params![before],
            )?;
            Ok(removed)
        })
        .await
    }

    async fn inbox_put(&self, item: NewInboxItem) -> Result<InboxPut, StoreError> {
        let put = self
            .with_conn(move |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let existing: Option<i64> = tx
                    .query_row(
                        "SELECT id FROM inbox WHERE tenant = ?1 AND connection = ?2 AND dedup_key = ?3",
                        params![item.tenant, item.connection, item.dedup_key],
                        |r| r.get(0),
                    )
                    .optional()?;
                if let Some(id) = existing {
                    return Ok(InboxPut::Duplicate { id: to_u64(id) });
                }
                // Already an event (appended directly earlier): also a duplicate.
                let event: Option<i64> = tx
                    .query_row(
                        "SELECT seq FROM events WHERE tenant = ?1 AND connection = ?2 AND dedup_key = ?3",
                        params![item.tenant, item.connection, item.dedup_key],
                        |r| r.get(0),
                    )
                    .optional()?;
                if event.is_some() {
                    return Ok(InboxPut::Duplicate { id: 0 });
                }
                tx.execute(
                    "INSERT INTO inbox (tenant, connection, vendor, dedup_key, body, received_ms, state, next_attempt_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?6)",
                    params![
                        item.tenant,
                        item.connection,
                        item.vendor,
                        item.dedup_key,
                        item.body,
                        item.received_at
                    ],
                )?;
                let id = tx.last_insert_rowid();
                tx.commit()?;
                Ok(InboxPut::Stored { id: to_u64(id) })
            })
            .await?;
        if matches!(put, InboxPut::Stored { .. }) {
            self.tick();
        }
        Ok(put)
    }

    async fn inbox_claim(
        &self,
        now: Millis,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<InboxItem>, StoreError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let leased_until = now.saturating_add(duration_ms(lease));
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let ids: Vec<i64> = {
                let mut stmt = tx.prepare_cached(
                    "SELECT i.id FROM inbox i
                     WHERE i.state = 'pending' AND i.next_attempt_ms <= ?1 AND i.leased_until_ms <= ?1
                       AND NOT EXISTS (
                             SELECT 1 FROM inbox p
                             WHERE p.tenant = i.tenant AND p.connection = i.connection
                               AND p.state = 'pending' AND p.id < i.id)
                     ORDER BY i.next_attempt_ms, i.id LIMIT ?2",
                )?;
                let ids = stmt
                    .query_map(params![now, to_i64(limit as u64)], |r| r.get(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                ids
            };
            let mut items = Vec::with_capacity(ids.len());
            {
                let mut take = tx.prepare_cached(
                    "UPDATE inbox SET lease = lease + 1, leased_until_ms = ?2 WHERE id = ?1",
                )?;
                let mut read = tx.prepare_cached(&format!(
                    "SELECT {INBOX_COLUMNS} FROM inbox i WHERE i.id = ?1"
                ))?;
                for id in ids {
                    take.execute(params![id, leased_until])?;
                    items.push(read.query_row(params![id], inbox_from_row)?);
                }
            }
            tx.commit()?;
            Ok(items)
        })
        .await
    }

    async fn inbox_complete(
        &self,
        item: &InboxItem,
        events: Vec<(NewEvent, Vec<String>)>,
        now: Millis,
    ) -> Result<Option<Vec<Appended>>, StoreError> {
        let (id, lease) = (to_i64(item.id), to_i64(item.lease));
        let result = self
            .with_conn(move |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                // Close first: if the lease is gone, store nothing.
                let closed = tx.execute(
                    "UPDATE inbox SET state = 'done', attempts = attempts + 1, leased_until_ms = 0,
                         finished_ms = ?3, last_error = NULL, body = X''
                     WHERE id = ?1 AND lease = ?2 AND state = 'pending'",
                    params![id, lease, now],
                )?;
                if closed != 1 {
                    return Ok(None);
                }
                let mut appended = Vec::with_capacity(events.len());
                for (event, subscriptions) in events {
                    appended.push(append_in(&tx, event, subscriptions)?);
                }
                tx.commit()?;
                Ok(Some(appended))
            })
            .await?;
        if result
            .as_ref()
            .is_some_and(|a| a.iter().any(|a| matches!(a, Appended::Stored { .. })))
        {
            self.tick();
        }
        Ok(result)
    }

    async fn inbox_failed(
        &self,
        item: &InboxItem,
        retry_at: Option<Millis>,
        error: &str,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let (id, lease, error) = (to_i64(item.id), to_i64(item.lease), error.to_owned());
        self.with_conn(move |conn| {
            let changed = match retry_at {
                Some(at) => conn.execute(
                    "UPDATE inbox SET attempts = attempts + 1, next_attempt_ms = ?3, leased_until_ms = 0, last_error = ?4
                     WHERE id = ?1 AND lease = ?2 AND state = 'pending'",
                    params![id, lease, at, error],
                )?,
                None => conn.execute(
                    "UPDATE inbox SET state = 'dead', attempts = attempts + 1, leased_until_ms = 0, last_error = ?4,
                         finished_ms = ?3
                     WHERE id = ?1 AND lease = ?2 AND state = 'pending'",
                    params![id, lease, now, error],
                )?,
            };
            Ok(changed == 1)
        })
        .await
    }

    async fn inbox_dead(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<InboxItem>, StoreError> {
        let limit = limit.clamp(1, MAX_PAGE);
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {INBOX_COLUMNS} FROM inbox i WHERE i.state = 'dead' AND i.id > ?1 ORDER BY i.id LIMIT ?2"
            ))?;
            let rows = stmt
                .query_map(params![to_i64(after.unwrap_or(0)), to_i64(limit as u64)], inbox_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn inbox_backlog(&self) -> Result<InboxBacklog, StoreError> {
        self.with_conn(|conn| {
            let (pending, oldest): (i64, Option<i64>) = conn.query_row(
                "SELECT COUNT(*), MIN(received_ms) FROM inbox WHERE state = 'pending'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            Ok(InboxBacklog {
                pending: to_u64(pending),
                oldest_received_at: oldest,
            })
        })
        .await
    }

    async fn state_get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = key.to_owned();
        self.with_conn(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT value FROM state WHERE key = ?1",
                    params![key],
                    |r| r.get(0),
                )
                .optional()?)
        })
        .await
    }

    async fn state_put(&self, key: &str, value: &[u8], now: Millis) -> Result<(), StoreError> {
        let (key, value) = (key.to_owned(), value.to_vec());
        self.with_conn(move |conn| {
            conn.execute(
                "INSERT INTO state (key, value, updated_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_ms = excluded.updated_ms",
                params![key, value, now],
            )?;
            Ok(())
        })
        .await
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use suite::*;

    /// The contract every event store keeps, as tests any store runs on itself
    /// (`event_store_suite!`): the SQLite store below, Redis, the spill.
    pub(crate) mod suite {
        use crate::events::store::*;
        use serde_json::json;
        use std::sync::Arc;

        pub(crate) const T0: Millis = 1_750_000_000_000;
        pub(crate) const LEASE: Duration = Duration::from_secs(30);

        pub(crate) fn new_event(
            tenant: &str,
            dedup: &str,
            order: Option<&str>,
            type_: EventType,
        ) -> NewEvent {
            NewEvent {
                tenant: tenant.into(),
                connection: "desk".into(),
                vendor: "libredesk".into(),
                type_,
                data: json!({"id": dedup}),
                dedup_key: dedup.into(),
                order_key: order.map(str::to_owned),
                created_at: T0,
            }
        }

        pub(crate) fn msg(dedup: &str, order: &str) -> NewEvent {
            new_event("acme", dedup, Some(order), EventType::MessageReceived)
        }

        pub(crate) fn stored(a: Appended) -> StoredEvent {
            match a {
                Appended::Stored { event, .. } => event,
                other => panic!("not stored: {other:?}"),
            }
        }

        pub(crate) fn subs(names: &[&str]) -> Vec<String> {
            names.iter().map(|s| s.to_string()).collect()
        }

        pub(crate) fn ok(at: Millis) -> Attempt {
            Attempt {
                at,
                status: Some(200),
                error: None,
                result: AttemptResult::Delivered,
            }
        }

        pub(crate) fn retry(at: Millis, next: Millis) -> Attempt {
            Attempt {
                at,
                status: Some(500),
                error: Some("status 500".into()),
                result: AttemptResult::Retry {
                    next_attempt_at: next,
                },
            }
        }

        pub(crate) fn dead(at: Millis) -> Attempt {
            Attempt {
                at,
                status: Some(500),
                error: Some("status 500".into()),
                result: AttemptResult::Dead {
                    reason: "retry_window_exhausted",
                },
            }
        }

        pub(crate) fn ids(d: &[Delivery]) -> Vec<String> {
            d.iter()
                .map(|d| format!("{}:{}", d.subscription, data_id(&d.event)))
                .collect()
        }

        pub(crate) fn data_id(event: &StoredEvent) -> String {
            event.event().unwrap().data["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }

        pub(crate) async fn append_stores_the_envelope_and_deduplicates(
            store: Arc<dyn EventStore>,
        ) {
            let mut changes = store.changes();
            let first = store
                .append(msg("m1", "cv_1"), subs(&["crm"]))
                .await
                .unwrap();
            let Appended::Stored { event, deliveries } = first else {
                panic!("{first:?}")
            };
            assert_eq!(deliveries, 1);
            assert!(changes.has_changed().unwrap());
            changes.mark_unchanged();
            let envelope = event.event().unwrap();
            assert_eq!(envelope.id, event.id);
            assert_eq!(envelope.type_, EventType::MessageReceived);
            assert_eq!(envelope.connection, "desk");
            assert_eq!(envelope.data, json!({"id": "m1"}));

            let again = store
                .append(msg("m1", "cv_1"), subs(&["crm"]))
                .await
                .unwrap();
            assert_eq!(
                again,
                Appended::Duplicate {
                    id: event.id.clone(),
                    seq: event.seq
                }
            );
            assert!(!changes.has_changed().unwrap(), "a duplicate is no change");
            // The same vendor key on another tenant or connection is another event.
            stored(
                store
                    .append(
                        new_event("globex", "m1", None, EventType::MessageReceived),
                        vec![],
                    )
                    .await
                    .unwrap(),
            );
            let mut other_conn = msg("m1", "cv_1");
            other_conn.connection = "desk2".into();
            stored(store.append(other_conn, vec![]).await.unwrap());
            assert_eq!(store.list("acme", None, &[], 100).await.unwrap().len(), 2);
            assert_eq!(store.deliveries_of(&event.id).await.unwrap().len(), 1);
        }

        pub(crate) async fn list_pages_by_seq_filters_types_and_isolates_tenants(
            store: Arc<dyn EventStore>,
        ) {
            let a = stored(store.append(msg("m1", "cv_1"), vec![]).await.unwrap());
            stored(
                store
                    .append(
                        new_event("globex", "g1", None, EventType::MessageReceived),
                        vec![],
                    )
                    .await
                    .unwrap(),
            );
            let b = stored(
                store
                    .append(
                        new_event("acme", "c1", Some("cv_1"), EventType::ConversationUpdated),
                        vec![],
                    )
                    .await
                    .unwrap(),
            );
            let c = stored(store.append(msg("m2", "cv_2"), vec![]).await.unwrap());
            assert!(a.seq < b.seq && b.seq < c.seq);

            let all = store.list("acme", None, &[], 100).await.unwrap();
            assert_eq!(
                all.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
                [a.id.clone(), b.id.clone(), c.id.clone()]
            );
            let page1 = store.list("acme", None, &[], 2).await.unwrap();
            assert_eq!(page1.len(), 2);
            let page2 = store
                .list("acme", Some(page1[1].seq), &[], 2)
                .await
                .unwrap();
            assert_eq!(page2.iter().map(|e| &e.id).collect::<Vec<_>>(), [&c.id]);
            assert!(store
                .list("acme", Some(c.seq), &[], 2)
                .await
                .unwrap()
                .is_empty());

            let messages = store
                .list("acme", None, &[EventType::MessageReceived], 100)
                .await
                .unwrap();
            assert_eq!(
                messages.iter().map(|e| &e.id).collect::<Vec<_>>(),
                [&a.id, &c.id]
            );
            let two = store
                .list(
                    "acme",
                    None,
                    &[EventType::ConversationUpdated, EventType::MessageReceived],
                    100,
                )
                .await
                .unwrap();
            assert_eq!(two.len(), 3);
            assert!(store
                .list("acme", None, &[EventType::ContactCreated], 100)
                .await
                .unwrap()
                .is_empty());

            assert_eq!(store.find("acme", &b.id).await.unwrap().unwrap().seq, b.seq);
            assert_eq!(
                store.find("globex", &b.id).await.unwrap(),
                None,
                "another tenant's event"
            );
            assert_eq!(store.last_seq("acme").await.unwrap(), Some(c.seq));
            assert_eq!(store.last_seq("initech").await.unwrap(), None);
        }

        pub(crate) async fn deliveries_are_ordered_per_conversation_and_subscription(
            store: Arc<dyn EventStore>,
        ) {
            let e1 = stored(
                store
                    .append(msg("m1", "cv_1"), subs(&["crm", "audit"]))
                    .await
                    .unwrap(),
            );
            stored(
                store
                    .append(msg("m2", "cv_1"), subs(&["crm", "audit"]))
                    .await
                    .unwrap(),
            );
            stored(
                store
                    .append(msg("m3", "cv_2"), subs(&["crm"]))
                    .await
                    .unwrap(),
            );
            stored(
                store
                    .append(
                        new_event("acme", "k1", None, EventType::ContactUpdated),
                        subs(&["crm"]),
                    )
                    .await
                    .unwrap(),
            );
            stored(
                store
                    .append(
                        new_event("acme", "k2", None, EventType::ContactUpdated),
                        subs(&["crm"]),
                    )
                    .await
                    .unwrap(),
            );

            // Heads only: m1 for both subscriptions, m3 (another conversation), both unordered ones.
            let mut first = store.claim_due(T0, 100, LEASE).await.unwrap();
            let mut names = ids(&first);
            names.sort();
            assert_eq!(names, ["audit:m1", "crm:k1", "crm:k2", "crm:m1", "crm:m3"]);
            // Leased: nothing more to claim, and m2 still waits for m1.
            assert!(store.claim_due(T0, 100, LEASE).await.unwrap().is_empty());

            // crm fails m1: m2 stays blocked for crm even when its own time comes.
            let crm_m1 = first
                .iter()
                .position(|d| d.subscription == "crm" && d.event.id == e1.id)
                .unwrap();
            let crm_m1 = first.remove(crm_m1);
            assert!(store
                .record_attempt(&crm_m1, retry(T0, T0 + 5_000))
                .await
                .unwrap());
            // audit delivers m1: audit's m2 becomes due.
            let audit_m1 = first
                .iter()
                .find(|d| d.subscription == "audit")
                .unwrap()
                .clone();
            assert!(store.record_attempt(&audit_m1, ok(T0)).await.unwrap());
            assert_eq!(
                ids(&store.claim_due(T0 + 1, 100, LEASE).await.unwrap()),
                ["audit:m2"]
            );
            // After the backoff, crm's m1 comes back — m2 still not.
            assert_eq!(
                ids(&store.claim_due(T0 + 5_000, 100, LEASE).await.unwrap()),
                ["crm:m1"]
            );
            assert!(store
                .claim_due(T0 + 5_000, 100, LEASE)
                .await
                .unwrap()
                .is_empty());
        }

        pub(crate) async fn a_dead_letter_unblocks_its_conversation_and_can_be_replayed(
            store: Arc<dyn EventStore>,
        ) {
            let e1 = stored(
                store
                    .append(msg("m1", "cv_1"), subs(&["crm"]))
                    .await
                    .unwrap(),
            );
            stored(
                store
                    .append(msg("m2", "cv_1"), subs(&["crm"]))
                    .await
                    .unwrap(),
            );
            let d1 = store.claim_due(T0, 10, LEASE).await.unwrap().remove(0);
            assert_eq!(d1.attempts, 0);
            assert_eq!(d1.window_start, T0);
            assert!(store.record_attempt(&d1, dead(T0 + 10)).await.unwrap());

            let next = store.claim_due(T0 + 10, 10, LEASE).await.unwrap();
            assert_eq!(ids(&next), ["crm:m2"]);
            assert!(store.record_attempt(&next[0], ok(T0 + 11)).await.unwrap());

            let dead_list = store.dead_letters(None, None, 10).await.unwrap();
            assert_eq!(dead_list.len(), 1);
            let record = &dead_list[0];
            assert_eq!(record.event_id, e1.id);
            assert_eq!(record.state, DeliveryState::Dead);
            assert_eq!(record.attempts, 1);
            assert_eq!(record.last_status, Some(500));
            assert_eq!(
                record.dead_reason.as_deref(),
                Some("retry_window_exhausted")
            );
            assert_eq!(record.finished_at, Some(T0 + 10));
            assert!(store
                .dead_letters(Some("globex"), None, 10)
                .await
                .unwrap()
                .is_empty());
            assert!(store
                .dead_letters(None, Some(record.id), 10)
                .await
                .unwrap()
                .is_empty());

            // Replay by delivery name: due at once, with a fresh window.
            let target = ReplayTarget::parse(&delivery_name(record.id)).unwrap();
            assert_eq!(store.replay(&target, T0 + 100).await.unwrap(), 1);
            assert_eq!(
                store.replay(&target, T0 + 100).await.unwrap(),
                0,
                "no longer dead"
            );
            assert!(store.dead_letters(None, None, 10).await.unwrap().is_empty());
            let again = store.claim_due(T0 + 100, 10, LEASE).await.unwrap();
            assert_eq!(ids(&again), ["crm:m1"]);
            assert_eq!(again[0].window_start, T0 + 100);
            assert_eq!(again[0].attempts, 1);
            assert!(store
                .record_attempt(&again[0], dead(T0 + 101))
                .await
                .unwrap());
            // Replay by event ID requeues every dead delivery of the event.
            let by_event = ReplayTarget::parse(&e1.id).unwrap();
            assert_eq!(store.replay(&by_event, T0 + 200).await.unwrap(), 1);
            assert_eq!(
                store
                    .replay(&ReplayTarget::Delivery(9_999), T0)
                    .await
                    .unwrap(),
                0
            );
        }

        pub(crate) async fn results_count_only_under_the_current_lease(store: Arc<dyn EventStore>) {
            stored(
                store
                    .append(msg("m1", "cv_1"), subs(&["crm"]))
                    .await
                    .unwrap(),
            );
            let stale = store.claim_due(T0, 10, LEASE).await.unwrap().remove(0);
            // The worker holding it is presumed dead once the lease expires: claimed again.
            assert!(store
                .claim_due(T0 + 29_999, 10, LEASE)
                .await
                .unwrap()
                .is_empty());
            let fresh = store
                .claim_due(T0 + 30_000, 10, LEASE)
                .await
                .unwrap()
                .remove(0);
            assert_ne!(stale.lease, fresh.lease);
            assert!(!store.record_attempt(&stale, ok(T0 + 30_001)).await.unwrap());
            assert!(store.record_attempt(&fresh, ok(T0 + 30_002)).await.unwrap());
            assert!(
                !store.record_attempt(&fresh, ok(T0 + 30_003)).await.unwrap(),
                "already final"
            );
            let records = store.deliveries_of(&fresh.event.id).await.unwrap();
            assert_eq!(records[0].state, DeliveryState::Delivered);
            assert_eq!(records[0].attempts, 1);
        }

        pub(crate) async fn prune_forgets_old_events_but_not_pending_deliveries(
            store: Arc<dyn EventStore>,
        ) {
            let old_done = stored(
                store
                    .append(msg("m1", "cv_1"), subs(&["crm"]))
                    .await
                    .unwrap(),
            );
            let old_pending = stored(
                store
                    .append(msg("m2", "cv_2"), subs(&["crm"]))
                    .await
                    .unwrap(),
            );
            let mut young = msg("m3", "cv_3");
            young.created_at = T0 + 10_000;
            let young = stored(store.append(young, vec![]).await.unwrap());
            let claimed = store.claim_due(T0, 10, LEASE).await.unwrap();
            let done = claimed.iter().find(|d| d.event.id == old_done.id).unwrap();
            assert!(store.record_attempt(done, ok(T0)).await.unwrap());

            assert_eq!(store.prune(T0 + 5_000).await.unwrap(), 1);
            let left: Vec<String> = store
                .list("acme", None, &[], 10)
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.id)
                .collect();
            assert_eq!(left, [old_pending.id.clone(), young.id.clone()]);
            assert!(
                store.deliveries_of(&old_done.id).await.unwrap().is_empty(),
                "cascaded"
            );
            // A pruned vendor change may be accepted again: its dedup key went with it.
            assert!(matches!(
                store.append(msg("m1", "cv_1"), vec![]).await.unwrap(),
                Appended::Stored { .. }
            ));
        }

        pub(crate) async fn backlog_and_next_due_describe_what_is_waiting(
            store: Arc<dyn EventStore>,
        ) {
            assert_eq!(store.next_due().await.unwrap(), None);
            let mut early = msg("m1", "cv_1");
            early.created_at = T0 - 60_000;
            stored(store.append(early, subs(&["crm", "audit"])).await.unwrap());
            stored(
                store
                    .append(msg("m2", "cv_1"), subs(&["crm"]))
                    .await
                    .unwrap(),
            );
            stored(
                store
                    .append(
                        new_event("globex", "g1", None, EventType::MessageSent),
                        subs(&["crm"]),
                    )
                    .await
                    .unwrap(),
            );
            assert_eq!(
                store.backlog().await.unwrap(),
                vec![
                    Backlog {
                        tenant: "acme".into(),
                        subscription: "audit".into(),
                        pending: 1,
                        oldest_created_at: T0 - 60_000
                    },
                    Backlog {
                        tenant: "acme".into(),
                        subscription: "crm".into(),
                        pending: 2,
                        oldest_created_at: T0 - 60_000
                    },
                    Backlog {
                        tenant: "globex".into(),
                        subscription: "crm".into(),
                        pending: 1,
                        oldest_created_at: T0
                    },
                ]
            );
            assert_eq!(store.next_due().await.unwrap(), Some(T0 - 60_000));
            for d in store.claim_due(T0, 10, LEASE).await.unwrap() {
                assert!(store
                    .record_attempt(&d, retry(T0, T0 + 7_000))
                    .await
                    .unwrap());
            }
            // m2 is due at T0 but blocked behind m1: the hint is m1's retry, so a worker neither
            // spins on m2 nor sleeps past a delivery that can go.
            assert_eq!(store.next_due().await.unwrap(), Some(T0 + 7_000));
        }

        pub(crate) async fn state_is_overwritten_in_place(store: Arc<dyn EventStore>) {
            assert_eq!(store.state_get("k").await.unwrap(), None);
            store.state_put("k", b"1", T0).await.unwrap();
            store.state_put("k", b"2", T0 + 1).await.unwrap();
            assert_eq!(
                store.state_get("k").await.unwrap().as_deref(),
                Some(&b"2"[..])
            );
        }

        pub(crate) async fn concurrent_appends_and_claims_never_lose_or_double_claim(
            store: Arc<dyn EventStore>,
        ) {
            let mut tasks = Vec::new();
            for t in 0..8 {
                let store = store.clone();
                tasks.push(tokio::spawn(async move {
                    for i in 0..25 {
                        // Two writers race on every key: exactly one must win.
                        let key = format!("m{}", (t % 4) * 100 + i);
                        store
                            .append(msg(&key, &format!("cv_{key}")), subs(&["crm"]))
                            .await
                            .unwrap();
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            assert_eq!(
                store.list("acme", None, &[], 1000).await.unwrap().len(),
                100
            );

            let mut claimers = Vec::new();
            for _ in 0..4 {
                let store = store.clone();
                claimers.push(tokio::spawn(async move {
                    store.claim_due(T0, 1000, LEASE).await.unwrap()
                }));
            }
            let mut claimed: Vec<u64> = Vec::new();
            for c in claimers {
                claimed.extend(c.await.unwrap().into_iter().map(|d| d.id));
            }
            let total = claimed.len();
            claimed.sort();
            claimed.dedup();
            assert_eq!(claimed.len(), total, "a delivery was claimed twice");
            assert_eq!(total, 100, "every delivery has its own conversation here");
        }
        pub(crate) async fn a_replayed_delivery_goes_back_in_front_of_its_conversation(
            store: Arc<dyn EventStore>,
        ) {
            for m in ["m1", "m2", "m3"] {
                stored(store.append(msg(m, "cv_1"), subs(&["crm"])).await.unwrap());
            }
            let m1 = store.claim_due(T0, 10, LEASE).await.unwrap().remove(0);
            assert!(store.record_attempt(&m1, dead(T0 + 1)).await.unwrap());
            let m2 = store.claim_due(T0 + 1, 10, LEASE).await.unwrap();
            assert_eq!(ids(&m2), ["crm:m2"]);
            assert!(store.record_attempt(&m2[0], ok(T0 + 2)).await.unwrap());
            // m3 is in flight when m1 is replayed.
            let m3 = store.claim_due(T0 + 2, 10, LEASE).await.unwrap();
            assert_eq!(ids(&m3), ["crm:m3"]);
            assert_eq!(
                store
                    .replay(&ReplayTarget::Delivery(m1.id), T0 + 3)
                    .await
                    .unwrap(),
                1
            );
            // The replayed m1 is the conversation's head again: it goes, m3 waits behind it.
            let again = store.claim_due(T0 + 3, 10, LEASE).await.unwrap();
            assert_eq!(ids(&again), ["crm:m1"]);
            assert!(store
                .record_attempt(&m3[0], retry(T0 + 4, T0 + 5))
                .await
                .unwrap());
            assert!(store
                .claim_due(T0 + 10, 10, LEASE)
                .await
                .unwrap()
                .is_empty());
            assert_eq!(store.next_due().await.unwrap(), Some(T0 + 3 + 30_000));
            assert!(store.record_attempt(&again[0], ok(T0 + 11)).await.unwrap());
            let last = store.claim_due(T0 + 11, 10, LEASE).await.unwrap();
            assert_eq!(ids(&last), ["crm:m3"]);
            assert_eq!(last[0].attempts, 1);
        }

        pub(crate) fn inbox_item(connection: &str, dedup: &str, at: Millis) -> NewInboxItem {
            NewInboxItem {
                tenant: "acme".into(),
                connection: connection.into(),
                vendor: "libredesk".into(),
                dedup_key: dedup.into(),
                body: format!("{{\"raw\":\"{dedup}\"}}\u{0}\u{ff}").into_bytes(),
                received_at: at,
            }
        }

        fn inbox_stored(put: InboxPut) -> u64 {
            match put {
                InboxPut::Stored { id } => id,
                other => panic!("not stored: {other:?}"),
            }
        }

        pub(crate) async fn inbox_items_are_deduplicated_and_leased_one_per_connection(
            store: Arc<dyn EventStore>,
        ) {
            let i1 = inbox_stored(store.inbox_put(inbox_item("desk", "k1", T0)).await.unwrap());
            let i2 = inbox_stored(
                store
                    .inbox_put(inbox_item("desk", "k2", T0 + 1))
                    .await
                    .unwrap(),
            );
            let i3 = inbox_stored(
                store
                    .inbox_put(inbox_item("chat", "k3", T0 + 2))
                    .await
                    .unwrap(),
            );
            assert!(i1 < i2 && i2 < i3);
            assert_eq!(
                store
                    .inbox_put(inbox_item("desk", "k1", T0 + 9))
                    .await
                    .unwrap(),
                InboxPut::Duplicate { id: i1 }
            );
            assert_eq!(
                store.inbox_backlog().await.unwrap(),
                InboxBacklog {
                    pending: 3,
                    oldest_received_at: Some(T0)
                }
            );
            // The oldest of each connection, oldest first.
            let items = store.inbox_claim(T0 + 5, 10, LEASE).await.unwrap();
            assert_eq!(items.iter().map(|i| i.id).collect::<Vec<_>>(), [i1, i3]);
            let first = &items[0];
            assert_eq!(first.body, inbox_item("desk", "k1", T0).body);
            assert_eq!(
                (
                    first.tenant.as_str(),
                    first.connection.as_str(),
                    first.vendor.as_str(),
                    first.dedup_key.as_str()
                ),
                ("acme", "desk", "libredesk", "k1")
            );
            assert_eq!(
                (first.attempts, first.received_at, &first.last_error),
                (0, T0, &None)
            );
            assert!(store
                .inbox_claim(T0 + 5, 10, LEASE)
                .await
                .unwrap()
                .is_empty());
            // A lapsed lease makes the item claimable again, under a new lease.
            let again = store.inbox_claim(T0 + 5 + 30_000, 10, LEASE).await.unwrap();
            assert_eq!(again.len(), 2);
            assert_ne!(again[0].lease, first.lease);
        }

        pub(crate) async fn inbox_completion_stores_events_once_under_the_lease(
            store: Arc<dyn EventStore>,
        ) {
            let i1 = inbox_stored(store.inbox_put(inbox_item("desk", "k1", T0)).await.unwrap());
            let i2 = inbox_stored(store.inbox_put(inbox_item("desk", "k2", T0)).await.unwrap());
            let item = store.inbox_claim(T0, 10, LEASE).await.unwrap().remove(0);
            assert_eq!(item.id, i1);
            let mut stale = item.clone();
            stale.lease = 0;
            assert_eq!(
                store.inbox_complete(&stale, vec![], T0).await.unwrap(),
                None,
                "a stale lease stores nothing"
            );
            let done = store
                .inbox_complete(
                    &item,
                    vec![
                        (msg("m1", "cv_1"), subs(&["crm", "audit", "crm"])),
                        (msg("m1", "cv_1"), subs(&["crm"])),
                    ],
                    T0 + 1,
                )
                .await
                .unwrap()
                .unwrap();
            let first = match &done[0] {
                Appended::Stored { event, deliveries } => {
                    assert_eq!(*deliveries, 2);
                    event.clone()
                }
                other => panic!("{other:?}"),
            };
            assert_eq!(
                done[1],
                Appended::Duplicate {
                    id: first.id.clone(),
                    seq: first.seq
                }
            );
            assert_eq!(
                store.find("acme", &first.id).await.unwrap(),
                Some(first.clone())
            );
            assert_eq!(store.deliveries_of(&first.id).await.unwrap().len(), 2);
            assert_eq!(
                store.inbox_complete(&item, vec![], T0 + 2).await.unwrap(),
                None,
                "already closed"
            );
            // The connection's next item is up.
            let next = store.inbox_claim(T0 + 2, 10, LEASE).await.unwrap();
            assert_eq!(next.iter().map(|i| i.id).collect::<Vec<_>>(), [i2]);
            assert_eq!(
                store
                    .inbox_complete(&next[0], vec![], T0 + 3)
                    .await
                    .unwrap(),
                Some(vec![])
            );
            assert_eq!(store.inbox_backlog().await.unwrap().pending, 0);
            assert!(store.inbox_dead(None, 10).await.unwrap().is_empty());
        }

        pub(crate) async fn inbox_failures_retry_give_up_and_replay(store: Arc<dyn EventStore>) {
            let i1 = inbox_stored(store.inbox_put(inbox_item("desk", "k1", T0)).await.unwrap());
            let i2 = inbox_stored(store.inbox_put(inbox_item("desk", "k2", T0)).await.unwrap());
            let item = store.inbox_claim(T0, 10, LEASE).await.unwrap().remove(0);
            assert!(store
                .inbox_failed(&item, Some(T0 + 100), "vendor 503", T0 + 1)
                .await
                .unwrap());
            // Not due yet, and the connection's next item waits behind it.
            assert!(store
                .inbox_claim(T0 + 50, 10, LEASE)
                .await
                .unwrap()
                .is_empty());
            let item = store
                .inbox_claim(T0 + 100, 10, LEASE)
                .await
                .unwrap()
                .remove(0);
            assert_eq!((item.id, item.attempts), (i1, 1));
            assert_eq!(item.last_error.as_deref(), Some("vendor 503"));
            assert!(!store
                .inbox_failed(
                    &InboxItem {
                        lease: 0,
                        ..item.clone()
                    },
                    None,
                    "x",
                    T0 + 101
                )
                .await
                .unwrap());
            assert!(store
                .inbox_failed(&item, None, "unknown conversation", T0 + 101)
                .await
                .unwrap());
            let dead = store.inbox_dead(None, 10).await.unwrap();
            assert_eq!(dead.len(), 1);
            assert_eq!((dead[0].id, dead[0].attempts), (i1, 2));
            assert_eq!(dead[0].last_error.as_deref(), Some("unknown conversation"));
            assert!(store.inbox_dead(Some(i1), 10).await.unwrap().is_empty());
            // A given-up item no longer blocks its connection.
            let next = store.inbox_claim(T0 + 101, 10, LEASE).await.unwrap();
            assert_eq!(next.iter().map(|i| i.id).collect::<Vec<_>>(), [i2]);
            // Replayed, it is the connection's oldest again.
            assert_eq!(
                store
                    .replay(&ReplayTarget::Inbox(i1), T0 + 200)
                    .await
                    .unwrap(),
                1
            );
            assert_eq!(
                store
                    .replay(&ReplayTarget::Inbox(i1), T0 + 200)
                    .await
                    .unwrap(),
                0
            );
            assert!(store.inbox_dead(None, 10).await.unwrap().is_empty());
            assert_eq!(store.inbox_backlog().await.unwrap().pending, 2);
            let replayed = store.inbox_claim(T0 + 200, 10, LEASE).await.unwrap();
            assert_eq!(replayed.iter().map(|i| i.id).collect::<Vec<_>>(), [i1]);
            assert_eq!(replayed[0].attempts, 2);
        }

        pub(crate) async fn inbox_dedup_spans_events_and_closed_items_are_pruned(
            store: Arc<dyn EventStore>,
        ) {
            stored(store.append(msg("m1", "cv_1"), vec![]).await.unwrap());
            assert_eq!(
                store.inbox_put(inbox_item("desk", "m1", T0)).await.unwrap(),
                InboxPut::Duplicate { id: 0 },
                "already an event"
            );
            // Another connection's key is its own.
            inbox_stored(store.inbox_put(inbox_item("chat", "m1", T0)).await.unwrap());
            let k2 = inbox_stored(store.inbox_put(inbox_item("desk", "k2", T0)).await.unwrap());
            let items = store.inbox_claim(T0, 10, LEASE).await.unwrap();
            let desk = items.iter().find(|i| i.id == k2).unwrap();
            assert_eq!(
                store.inbox_complete(desk, vec![], T0).await.unwrap(),
                Some(vec![])
            );
            assert_eq!(
                store.inbox_put(inbox_item("desk", "k2", T0)).await.unwrap(),
                InboxPut::Duplicate { id: k2 },
                "a closed item still deduplicates"
            );
            assert_eq!(store.prune(T0 + 10).await.unwrap(), 1);
            // Pruned: the event and the closed item took their dedup keys with them; the pending
            // chat item stays.
            inbox_stored(
                store
                    .inbox_put(inbox_item("desk", "m1", T0 + 20))
                    .await
                    .unwrap(),
            );
            inbox_stored(
                store
                    .inbox_put(inbox_item("desk", "k2", T0 + 20))
                    .await
                    .unwrap(),
            );
            assert_eq!(
                store.inbox_put(inbox_item("chat", "m1", T0)).await.unwrap(),
                InboxPut::Duplicate {
                    id: items.iter().find(|i| i.connection == "chat").unwrap().id
                }
            );
        }

        pub(crate) async fn changes_tick_on_store_and_requeue_only(store: Arc<dyn EventStore>) {
            let mut changes = store.changes();
            changes.mark_unchanged();
            store.inbox_put(inbox_item("desk", "k1", T0)).await.unwrap();
            assert!(changes.has_changed().unwrap(), "an inbox item was stored");
            changes.mark_unchanged();
            store.inbox_put(inbox_item("desk", "k1", T0)).await.unwrap();
            assert!(!changes.has_changed().unwrap(), "a duplicate is no change");
            stored(
                store
                    .append(msg("m1", "cv_1"), subs(&["crm"]))
                    .await
                    .unwrap(),
            );
            assert!(changes.has_changed().unwrap());
            changes.mark_unchanged();
            let d = store.claim_due(T0, 10, LEASE).await.unwrap().remove(0);
            assert!(store.record_attempt(&d, dead(T0)).await.unwrap());
            assert!(
                !changes.has_changed().unwrap(),
                "claims and attempts are no change"
            );
            assert_eq!(
                store
                    .replay(&ReplayTarget::Delivery(d.id), T0 + 1)
                    .await
                    .unwrap(),
                1
            );
            assert!(
                changes.has_changed().unwrap(),
                "a requeue wakes the workers"
            );
        }

        /// Test wrappers running every behaviour above on the stores `$open` makes: an async
        /// expression answering `(Arc<dyn EventStore>, guard)`, a fresh empty store per test (the
        /// guard keeps its folder or server alive).
        macro_rules! event_store_suite {
        ($open:expr) => {
            $crate::events::store::tests::suite::event_store_suite!(@tests $open;
                append_stores_the_envelope_and_deduplicates,
                list_pages_by_seq_filters_types_and_isolates_tenants,
                deliveries_are_ordered_per_conversation_and_subscription,
                a_dead_letter_unblocks_its_conversation_and_can_be_replayed,
                a_replayed_delivery_goes_back_in_front_of_its_conversation,
                results_count_only_under_the_current_lease,
                prune_forgets_old_events_but_not_pending_deliveries,
                backlog_and_next_due_describe_what_is_waiting,
                state_is_overwritten_in_place,
                inbox_items_are_deduplicated_and_leased_one_per_connection,
                inbox_completion_stores_events_once_under_the_lease,
                inbox_failures_retry_give_up_and_replay,
                inbox_dedup_spans_events_and_closed_items_are_pruned,
                changes_tick_on_store_and_requeue_only,
            );
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn concurrent_appends_and_claims_never_lose_or_double_claim() {
                let (store, _guard) = $open.await;
                $crate::events::store::tests::suite::concurrent_appends_and_claims_never_lose_or_double_claim(store).await;
            }
        };
        (@tests $open:expr; $($name:ident,)*) => {
            $(
                #[tokio::test]
                async fn $name() {
                    let (store, _guard) = $open.await;
                    $crate::events::store::tests::suite::$name(store).await;
                }
            )*
        };
    }
        pub(crate) use event_store_suite;
    }

    async fn open() -> (Arc<dyn EventStore>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn EventStore> = Arc::new(SqliteStore::open(dir.path()).unwrap());
        (store, dir)
    }

    mod behaviour {
        use super::open;
        super::suite::event_store_suite!(open());
    }

    #[test]
    fn replay_targets_parse_strictly() {
        assert_eq!(
            ReplayTarget::parse("dlv_42"),
            Some(ReplayTarget::Delivery(42))
        );
        let id = new_event_id();
        assert_eq!(
            ReplayTarget::parse(&id),
            Some(ReplayTarget::Event(id.clone()))
        );
        for bad in ["dlv_", "dlv_0", "dlv_-1", "dlv_x", "42", "evt_", "../etc"] {
            assert_eq!(ReplayTarget::parse(bad), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn pending_deliveries_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (e1, e2) = {
            let store = SqliteStore::open(dir.path()).unwrap();
            let e1 = stored(
                store
                    .append(msg("m1", "cv_1"), subs(&["crm"]))
                    .await
                    .unwrap(),
            );
            let e2 = stored(
                store
                    .append(msg("m2", "cv_1"), subs(&["crm"]))
                    .await
                    .unwrap(),
            );
            // Claimed and in flight when the process "dies": the lease must not strand it.
            let d = store.claim_due(T0, 10, LEASE).await.unwrap();
            assert_eq!(d.len(), 1);
            store
                .state_put("poll:acme:chat", b"cursor-17", T0)
                .await
                .unwrap();
            (e1, e2)
        };
        let store = SqliteStore::open(dir.path()).unwrap();
        let due = store.claim_due(T0, 10, LEASE).await.unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].event.id, e1.id, "the earlier one first, still");
        assert_eq!(due[0].event.body, e1.body);
        assert!(store.record_attempt(&due[0], ok(T0 + 1)).await.unwrap());
        assert_eq!(
            store.claim_due(T0 + 1, 10, LEASE).await.unwrap()[0]
                .event
                .id,
            e2.id
        );
        assert_eq!(
            store.state_get("poll:acme:chat").await.unwrap().as_deref(),
            Some(&b"cursor-17"[..])
        );
        // Dedup survives too.
        assert!(matches!(
            store
                .append(msg("m1", "cv_1"), subs(&["crm"]))
                .await
                .unwrap(),
            Appended::Duplicate { .. }
        ));
        // New events continue the sequence.
        let e3 = stored(store.append(msg("m3", "cv_1"), vec![]).await.unwrap());
        assert!(e3.seq > e2.seq);
    }

    #[tokio::test]
    async fn a_second_process_cannot_open_the_same_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let first = SqliteStore::open(dir.path()).unwrap();
        stored(first.append(msg("m1", "cv_1"), vec![]).await.unwrap());
        match SqliteStore::open(dir.path()) {
            Err(StoreError::Locked(path)) => assert_eq!(path, dir.path().join(STORE_FILE)),
            other => panic!("expected Locked, got {other:?}"),
        }
        drop(first);
        assert!(SqliteStore::open(dir.path()).is_ok());
    }

    #[tokio::test]
    async fn commits_are_fsynced_through_the_write_ahead_log() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let (journal, synchronous, foreign_keys, locking) = store
            .with_conn(|conn| {
                let text = |name: &str| -> rusqlite::Result<String> {
                    conn.pragma_query_value(None, name, |r| r.get::<_, rusqlite::types::Value>(0))
                        .map(|v| match v {
                            rusqlite::types::Value::Integer(n) => n.to_string(),
                            rusqlite::types::Value::Text(t) => t,
                            other => format!("{other:?}"),
                        })
                };
                Ok((
                    text("journal_mode")?,
                    text("synchronous")?,
                    text("foreign_keys")?,
                    text("locking_mode")?,
                ))
            })
            .await
            .unwrap();
        assert_eq!(journal, "wal");
        assert_eq!(synchronous, "2", "FULL: the WAL is fsynced at every commit");
        assert_eq!(foreign_keys, "1");
        assert_eq!(locking, "exclusive");
    }

    #[tokio::test]
    async fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(SqliteStore::open(dir.path()).unwrap());
        let conn = Connection::open(dir.path().join(STORE_FILE)).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        assert!(matches!(
            SqliteStore::open(dir.path()),
            Err(StoreError::Schema { found: 99, .. })
        ));
    }
}
