//! [`RedisEventStore`]: the [`EventStore`] several replicas share (issue 15) — the same
//! contract as [`super::store::SqliteStore`], checked by the same behavioural suite
//! (`events::store::tests::suite`).
//!
//! # Why sorted sets and Lua, not Streams
//!
//! A Redis Stream with a consumer group hands each entry to one consumer and re-hands it after
//! a consumer dies (`XAUTOCLAIM`): exactly the "one replica delivers" part. It has no notion of
//! *when* an entry is due (a retry 10 minutes later would need a second, delayed structure),
//! none of *order per conversation* (the group hands out m2 while m1 is still failing), and
//! requeueing a dead letter means re-adding it out of order. The outbox contract here is the
//! SQLite one — due times, queue heads per (subscription, conversation), leases, replay — and
//! it maps one to one onto sorted sets updated by Lua scripts:
//! - `ev:due` holds only *queue heads*, scored by when they can go (`max(next attempt, lease
//!   end)`). Claiming takes the lowest scores up to `now` and moves each to its lease end in the
//!   same script, so two replicas never claim the same delivery, and a replica that dies
//!   mid-delivery loses its claim when the lease ends (at least once, never lost).
//! - `ev:q:<tenant, subscription, conversation>` orders a conversation's pending deliveries;
//!   when the head is delivered or dead-lettered the next one becomes the head.
//! - A result is recorded only under the lease it was claimed with (a counter per delivery).
//!
//! Every method is one script (or one command): one round trip, atomic on the server. Scripts
//! share a prelude (`redis/common.lua`, which also documents the key layout) and start with a
//! `#!lua` shebang, so a write is refused before it starts when Redis is out of memory instead
//! of stopping halfway (Redis ≥ 7 or Valkey). Keys are derived inside the scripts, which
//! standalone Redis and Valkey allow; Redis Cluster is not supported.
//!
//! # Time
//!
//! Like the SQLite store, methods take the caller's wall time (`now`), so leases and due times
//! mean the same on every replica as long as their clocks agree to well under a lease (NTP).
//!
//! # Durability
//!
//! "Stored before acknowledged" holds as far as Redis holds: run it with `appendonly yes` and
//! `appendfsync everysec` (or `always`) — a Redis without persistence loses the outbox on a
//! restart. When Redis cannot be reached, [`super::spill::SpillStore`] keeps accepted events
//! on local disk and forwards them when it returns.
//!
//! # Changes
//!
//! Scripts `PUBLISH` on `<prefix>ev:changes` after every store, requeue or inbox put; each
//! store instance turns those (and its own writes, and subscription loss and resumption) into
//! ticks of [`EventStore::changes`], so SSE streams and workers on every replica wake up.

use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use redis::{FromRedisValue, Script, Value};
use tokio::sync::{broadcast, watch};
use tokio::task::AbortHandle;

use super::clock::{duration_ms, Millis};
use super::model::{new_event_id, EventType, NewEvent, StoredEvent};
use super::store::{
    Appended, Attempt, AttemptResult, Backlog, Delivery, DeliveryRecord, DeliveryState, EventStore,
    InboxBacklog, InboxItem, InboxPut, NewInboxItem, ReplayTarget, StoreError, MAX_PAGE,
};
use crate::state::redis::{CallError, HubEvent, RedisHub, BACKEND};

/// Events (or closed inbox items) removed per prune script run.
const PRUNE_BATCH: usize = 500;

macro_rules! script {
    ($name:literal) => {
        Script::new(concat!(
            include_str!("redis/common.lua"),
            include_str!(concat!("redis/", $name, ".lua"))
        ))
    };
}

struct Scripts {
    append: Script,
    list: Script,
    find: Script,
    claim: Script,
    record: Script,
    dead: Script,
    deliveries_of: Script,
    replay: Script,
    backlog: Script,
    prune: Script,
    prune_inbox: Script,
    inbox_put: Script,
    inbox_claim: Script,
    inbox_complete: Script,
    inbox_failed: Script,
    inbox_dead: Script,
    inbox_backlog: Script,
}

impl Scripts {
    fn new() -> Scripts {
        Scripts {
            append: script!("append"),
            list: script!("list"),
            find: script!("find"),
            claim: script!("claim"),
            record: script!("record"),
            dead: script!("dead"),
            deliveries_of: script!("deliveries_of"),
            replay: script!("replay"),
            backlog: script!("backlog"),
            prune: script!("prune"),
            prune_inbox: script!("prune_inbox"),
            inbox_put: script!("inbox_put"),
            inbox_claim: script!("inbox_claim"),
            inbox_complete: script!("inbox_complete"),
            inbox_failed: script!("inbox_failed"),
            inbox_dead: script!("inbox_dead"),
            inbox_backlog: script!("inbox_backlog"),
        }
    }
}

/// The shared event store on Redis; see the module docs.
pub struct RedisEventStore {
    hub: Arc<RedisHub>,
    /// Published with change messages; this store's own are not ticked twice.
    origin: Arc<str>,
    scripts: Arc<Scripts>,
    changes: Arc<watch::Sender<u64>>,
    listener: AbortHandle,
}

impl std::fmt::Debug for RedisEventStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisEventStore")
            .field("hub", &self.hub)
            .finish()
    }
}

impl Drop for RedisEventStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

/// Script arguments, as bytes.
#[derive(Default)]
struct Args(Vec<Vec<u8>>);

impl Args {
    fn push(&mut self, value: impl AsRef<[u8]>) -> &mut Self {
        self.0.push(value.as_ref().to_vec());
        self
    }

    fn num(&mut self, n: impl std::fmt::Display) -> &mut Self {
        self.0.push(n.to_string().into_bytes());
        self
    }

    fn opt(&mut self, value: Option<&str>) -> &mut Self {
        self.push(if value.is_some() { "1" } else { "0" });
        self.push(value.unwrap_or(""))
    }

    /// One event, as `read_event` in common.lua reads it.
    fn event(&mut self, id: &str, event: &NewEvent, body: &str, subscriptions: &[String]) {
        self.push(id)
            .push(&event.tenant)
            .push(&event.connection)
            .push(event.type_.as_str())
            .push(&event.dedup_key)
            .opt(event.order_key.as_deref())
            .num(event.created_at)
            .push(body)
            .num(subscriptions.len());
        for s in subscriptions {
            self.push(s);
        }
    }
}

fn unavailable(e: CallError) -> StoreError {
    StoreError::Unavailable {
        backend: BACKEND,
        reason: e.reason(),
    }
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("unexpected answer from Redis: {what}"))
}

/// `<byte length>:<s>`, as `lp` in common.lua.
fn lp(s: &str) -> String {
    format!("{}:{s}", s.len())
}

impl RedisEventStore {
    /// A store on the hub's Redis. Spawns (on the current runtime) the task that turns other
    /// replicas' change messages into [`EventStore::changes`] ticks.
    pub fn new(hub: Arc<RedisHub>) -> RedisEventStore {
        let changes = Arc::new(watch::channel(0u64).0);
        let origin: Arc<str> = Arc::from(format!("{:016x}", rand::random::<u64>()).as_str());
        let listener = tokio::spawn(forward_changes(
            hub.listen(),
            Arc::from(hub.events_channel().as_str()),
            origin.clone(),
            Arc::downgrade(&changes),
        ))
        .abort_handle();
        RedisEventStore {
            hub,
            origin,
            scripts: Arc::new(Scripts::new()),
            changes,
            listener,
        }
    }

    pub fn hub(&self) -> &Arc<RedisHub> {
        &self.hub
    }

    fn tick(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    async fn run<T: FromRedisValue>(&self, script: &Script, args: Args) -> Result<T, StoreError> {
        self.run_within(self.hub.settings().command_timeout, script, args)
            .await
    }

    async fn run_within<T: FromRedisValue>(
        &self,
        limit: Duration,
        script: &Script,
        args: Args,
    ) -> Result<T, StoreError> {
        let prefix = self.hub.settings().key_prefix.clone();
        let origin = self.origin.clone();
        self.hub
            .call_within(limit, |mut conn| async move {
                let mut invocation = script.prepare_invoke();
                invocation.arg(prefix).arg(origin.as_bytes());
                for a in &args.0 {
                    invocation.arg(a.as_slice());
                }
                invocation.invoke_async(&mut conn).await
            })
            .await
            .map_err(unavailable)
    }

    async fn command<T: FromRedisValue>(&self, cmd: redis::Cmd) -> Result<T, StoreError> {
        self.hub
            .call(|mut conn| async move { cmd.query_async(&mut conn).await })
            .await
            .map_err(unavailable)
    }

    /// [`EventStore::append`] with an ID minted earlier (the local spill keeps the ID it
    /// answered with when it forwards the event).
    pub async fn append_with_id(
        &self,
        id: String,
        event: NewEvent,
        mut subscriptions: Vec<String>,
    ) -> Result<Appended, StoreError> {
        subscriptions.sort();
        subscriptions.dedup();
        let body = serde_json::to_string(&event.envelope(&id))
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut args = Args::default();
        args.event(&id, &event, &body, &subscriptions);
        let answer: Vec<Value> = self.run(&self.scripts.append, args).await?;
        let appended = appended(&answer, id, event, body)?;
        if matches!(appended, Appended::Stored { .. }) {
            self.tick();
        }
        Ok(appended)
    }
}

/// Turn the hub's traffic into change ticks (other stores' messages on the events channel; a
/// lost or resumed subscription too, since changes may have been missed).
async fn forward_changes(
    mut events: broadcast::Receiver<HubEvent>,
    channel: Arc<str>,
    origin: Arc<str>,
    changes: Weak<watch::Sender<u64>>,
) {
    loop {
        let tick = match events.recv().await {
            Ok(HubEvent::Message {
                channel: on,
                payload,
            }) => on == channel && payload != origin.as_bytes(),
            Ok(HubEvent::Lost) | Ok(HubEvent::Resumed) => true,
            Err(broadcast::error::RecvError::Lagged(_)) => true,
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if tick {
            let Some(changes) = changes.upgrade() else {
                return;
            };
            changes.send_modify(|n| *n = n.wrapping_add(1));
        }
    }
}

// ----- reading script answers ---------------------------------------------------------------

fn text(v: &Value) -> Result<String, StoreError> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).map_err(|_| corrupt("non-UTF-8 text")),
        Value::SimpleString(s) => Ok(s.clone()),
        Value::Int(n) => Ok(n.to_string()),
        other => Err(corrupt(&format!("{other:?} where text was expected"))),
    }
}

fn opt_text(v: &Value) -> Result<Option<String>, StoreError> {
    match v {
        Value::Nil => Ok(None),
        other => text(other).map(Some),
    }
}

fn bytes(v: &Value) -> Result<Vec<u8>, StoreError> {
    match v {
        Value::BulkString(b) => Ok(b.clone()),
        Value::Nil => Ok(Vec::new()),
        other => Err(corrupt(&format!("{other:?} where bytes were expected"))),
    }
}

fn int(v: &Value) -> Result<i64, StoreError> {
    match v {
        Value::Int(n) => Ok(*n),
        Value::BulkString(_) | Value::SimpleString(_) => {
            let t = text(v)?;
            t.parse::<i64>()
                .ok()
                // Scores come back formatted as doubles.
                .or_else(|| t.parse::<f64>().ok().map(|f| f as i64))
                .ok_or_else(|| corrupt(&format!("{t:?} where a number was expected")))
        }
        other => Err(corrupt(&format!("{other:?} where a number was expected"))),
    }
}

fn opt_int(v: &Value) -> Result<Option<i64>, StoreError> {
    match v {
        Value::Nil => Ok(None),
        other => int(other).map(Some),
    }
}

fn uint(v: &Value) -> Result<u64, StoreError> {
    u64::try_from(int(v)?).map_err(|_| corrupt("a negative id"))
}

fn array(v: &Value) -> Result<&[Value], StoreError> {
    match v {
        Value::Array(items) => Ok(items),
        other => Err(corrupt(&format!("{other:?} where a list was expected"))),
    }
}

fn fields<const N: usize>(v: &Value) -> Result<&[Value; N], StoreError> {
    array(v)?
        .try_into()
        .map_err(|_| corrupt(&format!("a row without {N} fields")))
}

/// `{seq, id, tenant, connection, type, order|nil, created, body}`.
fn event_row(v: &Value) -> Result<StoredEvent, StoreError> {
    let [seq, id, tenant, connection, type_, order, created, body] = fields::<8>(v)?;
    let type_text = text(type_)?;
    Ok(StoredEvent {
        seq: uint(seq)?,
        id: text(id)?,
        tenant: text(tenant)?,
        connection: text(connection)?,
        type_: EventType::parse(&type_text)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown event type {type_text:?}")))?,
        order_key: opt_text(order)?,
        created_at: int(created)?,
        body: text(body)?,
    })
}

fn state(v: &Value) -> Result<DeliveryState, StoreError> {
    match text(v)?.as_str() {
        "p" => Ok(DeliveryState::Pending),
        "d" => Ok(DeliveryState::Delivered),
        "x" => Ok(DeliveryState::Dead),
        other => Err(StoreError::Corrupt(format!(
            "unknown delivery state {other:?}"
        ))),
    }
}

fn delivery_row(v: &Value) -> Result<DeliveryRecord, StoreError> {
    let [id, tenant, subscription, event_id, event_type, connection, order_key, created, st, attempts, next, last, status, error, reason, finished] =
        fields::<16>(v)?;
    let type_text = text(event_type)?;
    Ok(DeliveryRecord {
        id: uint(id)?,
        tenant: text(tenant)?,
        subscription: text(subscription)?,
        event_id: text(event_id)?,
        event_type: EventType::parse(&type_text)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown event type {type_text:?}")))?,
        connection: text(connection)?,
        order_key: opt_text(order_key)?,
        event_created_at: int(created)?,
        state: state(st)?,
        attempts: u32::try_from(int(attempts)?).unwrap_or(u32::MAX),
        next_attempt_at: int(next)?,
        last_attempt_at: opt_int(last)?,
        last_status: opt_int(status)?.and_then(|s| u16::try_from(s).ok()),
        last_error: opt_text(error)?,
        dead_reason: opt_text(reason)?,
        finished_at: opt_int(finished)?,
    })
}

/// `{id, tenant, connection, vendor, dedup, body, received, attempts, last_error|nil, lease}`.
fn inbox_row(v: &Value) -> Result<InboxItem, StoreError> {
    let [id, tenant, connection, vendor, dedup, body, received, attempts, error, lease] =
        fields::<10>(v)?;
    Ok(InboxItem {
        id: uint(id)?,
        tenant: text(tenant)?,
        connection: text(connection)?,
        vendor: text(vendor)?,
        dedup_key: text(dedup)?,
        body: bytes(body)?,
        received_at: int(received)?,
        attempts: u32::try_from(int(attempts)?).unwrap_or(u32::MAX),
        last_error: opt_text(error)?,
        lease: uint(lease)?,
    })
}

/// `append_event`'s answer: `{'stored', seq, deliveries}` or `{'dup', first id, first seq}`.
fn appended(
    answer: &[Value],
    id: String,
    event: NewEvent,
    body: String,
) -> Result<Appended, StoreError> {
    match answer {
        [kind, seq, n] if text(kind)? == "stored" => Ok(Appended::Stored {
            event: StoredEvent {
                seq: uint(seq)?,
                id,
                tenant: event.tenant,
                connection: event.connection,
                type_: event.type_,
                order_key: event.order_key,
                created_at: event.created_at,
                body,
            },
            deliveries: usize::try_from(uint(n)?).unwrap_or(usize::MAX),
        }),
        [kind, first, seq] if text(kind)? == "dup" => Ok(Appended::Duplicate {
            id: text(first)?,
            seq: uint(seq)?,
        }),
        _ => Err(corrupt("the append script's answer")),
    }
}

fn rows<T>(
    answer: &[Value],
    row: fn(&Value) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    answer.iter().map(row).collect()
}

#[async_trait]
impl EventStore for RedisEventStore {
    async fn append(
        &self,
        event: NewEvent,
        subscriptions: Vec<String>,
    ) -> Result<Appended, StoreError> {
        self.append_with_id(new_event_id(), event, subscriptions)
            .await
    }

    async fn list(
        &self,
        tenant: &str,
        after: Option<u64>,
        types: &[EventType],
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let mut types: Vec<&'static str> = types.iter().map(|t| t.as_str()).collect();
        types.sort_unstable();
        types.dedup();
        let mut args = Args::default();
        args.push(tenant)
            .num(after.unwrap_or(0))
            .num(limit.clamp(1, MAX_PAGE))
            .num(types.len());
        for t in types {
            args.push(t);
        }
        let answer: Vec<Value> = self.run(&self.scripts.list, args).await?;
        rows(&answer, event_row)
    }

    async fn find(&self, tenant: &str, event_id: &str) -> Result<Option<StoredEvent>, StoreError> {
        let mut args = Args::default();
        args.push(tenant).push(event_id);
        let answer: Vec<Value> = self.run(&self.scripts.find, args).await?;
        answer.first().map(event_row).transpose()
    }

    async fn last_seq(&self, tenant: &str) -> Result<Option<u64>, StoreError> {
        let key = self.hub.key(&format!("ev:log:{}", lp(tenant)));
        let newest: Vec<String> = self
            .command(redis::cmd("ZREVRANGE").arg(key).arg(0).arg(0).clone())
            .await?;
        newest
            .first()
            .map(|s| s.parse::<u64>().map_err(|_| corrupt("a seq")))
            .transpose()
    }

    async fn claim_due(
        &self,
        now: Millis,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Delivery>, StoreError> {
        let mut args = Args::default();
        args.num(now)
            .num(limit.clamp(1, MAX_PAGE))
            .num(now.saturating_add(duration_ms(lease)));
        let answer: Vec<Value> = self.run(&self.scripts.claim, args).await?;
        answer
            .iter()
            .map(|row| {
                let [id, tenant, subscription, attempts, window_start, lease, event] =
                    fields::<7>(row)?;
                Ok(Delivery {
                    id: uint(id)?,
                    tenant: text(tenant)?,
                    subscription: text(subscription)?,
                    event: event_row(event)?,
                    attempts: u32::try_from(int(attempts)?).unwrap_or(u32::MAX),
                    window_start: int(window_start)?,
                    lease: uint(lease)?,
                })
            })
            .collect()
    }

    async fn next_due(&self) -> Result<Option<Millis>, StoreError> {
        let first: Vec<(String, f64)> = self
            .command(
                redis::cmd("ZRANGE")
                    .arg(self.hub.key("ev:due"))
                    .arg(0)
                    .arg(0)
                    .arg("WITHSCORES")
                    .clone(),
            )
            .await?;
        // ok: `as` saturates; scores are whole milliseconds.
        Ok(first.first().map(|(_, score)| *score as Millis))
    }

    async fn record_attempt(
        &self,
        delivery: &Delivery,
        attempt: Attempt,
    ) -> Result<bool, StoreError> {
        let (kind, next, reason) = match attempt.result {
            AttemptResult::Delivered => ("d", attempt.at, ""),
            AttemptResult::Retry { next_attempt_at } => ("r", next_attempt_at, ""),
            AttemptResult::Dead { reason } => ("x", attempt.at, reason),
        };
        let status = attempt.status.map(|s| s.to_string());
        let mut args = Args::default();
        args.num(delivery.id)
            .num(delivery.lease)
            .push(kind)
            .num(attempt.at)
            .num(next)
            .opt(status.as_deref())
            .opt(attempt.error.as_deref())
            .push(reason);
        let recorded: i64 = self.run(&self.scripts.record, args).await?;
        Ok(recorded == 1)
    }

    async fn dead_letters(
        &self,
        tenant: Option<&str>,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let mut args = Args::default();
        args.opt(tenant)
            .num(after.unwrap_or(0))
            .num(limit.clamp(1, MAX_PAGE));
        let answer: Vec<Value> = self.run(&self.scripts.dead, args).await?;
        rows(&answer, delivery_row)
    }

    async fn deliveries_of(&self, event_id: &str) -> Result<Vec<DeliveryRecord>, StoreError> {
        let mut args = Args::default();
        args.push(event_id);
        let answer: Vec<Value> = self.run(&self.scripts.deliveries_of, args).await?;
        rows(&answer, delivery_row)
    }

    async fn replay(&self, target: &ReplayTarget, now: Millis) -> Result<usize, StoreError> {
        let mut args = Args::default();
        match target {
            ReplayTarget::Delivery(id) => args.push("d").num(id),
            ReplayTarget::Event(id) => args.push("e").push(id),
            ReplayTarget::Inbox(id) => args.push("i").num(id),
        };
        args.num(now);
        let n: i64 = self.run(&self.scripts.replay, args).await?;
        if n > 0 {
            self.tick();
        }
        Ok(usize::try_from(n).unwrap_or(0))
    }

    async fn backlog(&self) -> Result<Vec<Backlog>, StoreError> {
        let answer: Vec<Value> = self.run(&self.scripts.backlog, Args::default()).await?;
        let mut backlog = answer
            .iter()
            .map(|row| {
                let [queue, pending, oldest] = fields::<3>(row)?;
                let queue = text(queue)?;
                let (tenant, subscription) =
                    split_lp(&queue).ok_or_else(|| corrupt("a backlog queue name"))?;
                Ok(Backlog {
                    tenant: tenant.to_owned(),
                    subscription: subscription.to_owned(),
                    pending: uint(pending)?,
                    oldest_created_at: int(oldest)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        backlog.sort_by(|a, b| (&a.tenant, &a.subscription).cmp(&(&b.tenant, &b.subscription)));
        Ok(backlog)
    }

    async fn prune(&self, before: Millis) -> Result<u64, StoreError> {
        // Maintenance may take longer than a request's round trip.
        let limit = self.hub.settings().command_timeout * 4;
        let (mut removed, mut offset) = (0u64, 0u64);
        loop {
            let mut args = Args::default();
            args.num(before).num(offset).num(PRUNE_BATCH);
            let [r, s, scanned]: [u64; 3] =
                self.run_within(limit, &self.scripts.prune, args).await?;
            removed += r;
            offset += s;
            if scanned < PRUNE_BATCH as u64 {
                break;
            }
        }
        loop {
            let mut args = Args::default();
            args.num(before).num(PRUNE_BATCH);
            let scanned: u64 = self
                .run_within(limit, &self.scripts.prune_inbox, args)
                .await?;
            if scanned < PRUNE_BATCH as u64 {
                break;
            }
        }
        Ok(removed)
    }

    async fn inbox_put(&self, item: NewInboxItem) -> Result<InboxPut, StoreError> {
        let mut args = Args::default();
        args.push(&item.tenant)
            .push(&item.connection)
            .push(&item.vendor)
            .push(&item.dedup_key)
            .push(&item.body)
            .num(item.received_at);
        let answer: Vec<Value> = self.run(&self.scripts.inbox_put, args).await?;
        let put = match answer.as_slice() {
            [kind, id] if text(kind)? == "stored" => InboxPut::Stored { id: uint(id)? },
            [kind, id] if text(kind)? == "dup" => InboxPut::Duplicate { id: uint(id)? },
            _ => return Err(corrupt("the inbox_put script's answer")),
        };
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
        let mut args = Args::default();
        args.num(now)
            .num(limit.clamp(1, MAX_PAGE))
            .num(now.saturating_add(duration_ms(lease)));
        let answer: Vec<Value> = self.run(&self.scripts.inbox_claim, args).await?;
        rows(&answer, inbox_row)
    }

    async fn inbox_complete(
        &self,
        item: &InboxItem,
        events: Vec<(NewEvent, Vec<String>)>,
        now: Millis,
    ) -> Result<Option<Vec<Appended>>, StoreError> {
        let mut args = Args::default();
        args.num(item.id).num(item.lease).num(now).num(events.len());
        let mut prepared = Vec::with_capacity(events.len());
        for (event, mut subscriptions) in events {
            subscriptions.sort();
            subscriptions.dedup();
            let id = new_event_id();
            let body = serde_json::to_string(&event.envelope(&id))
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            args.event(&id, &event, &body, &subscriptions);
            prepared.push((id, event, body));
        }
        let answer: Vec<Value> = self.run(&self.scripts.inbox_complete, args).await?;
        let (kind, results) = answer
            .split_first()
            .ok_or_else(|| corrupt("the inbox_complete script's answer"))?;
        match text(kind)?.as_str() {
            "lost" => Ok(None),
            "done" if results.len() == prepared.len() => {
                let appended = results
                    .iter()
                    .zip(prepared)
                    .map(|(result, (id, event, body))| appended(array(result)?, id, event, body))
                    .collect::<Result<Vec<_>, StoreError>>()?;
                if appended
                    .iter()
                    .any(|a| matches!(a, Appended::Stored { .. }))
                {
                    self.tick();
                }
                Ok(Some(appended))
            }
            _ => Err(corrupt("the inbox_complete script's answer")),
        }
    }

    async fn inbox_failed(
        &self,
        item: &InboxItem,
        retry_at: Option<Millis>,
        error: &str,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let mut args = Args::default();
        args.num(item.id)
            .num(item.lease)
            .push(if retry_at.is_some() { "1" } else { "0" })
            .num(retry_at.unwrap_or(0))
            .push(error)
            .num(now);
        let recorded: i64 = self.run(&self.scripts.inbox_failed, args).await?;
        Ok(recorded == 1)
    }

    async fn inbox_dead(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<InboxItem>, StoreError> {
        let mut args = Args::default();
        args.num(after.unwrap_or(0)).num(limit.clamp(1, MAX_PAGE));
        let answer: Vec<Value> = self.run(&self.scripts.inbox_dead, args).await?;
        rows(&answer, inbox_row)
    }

    async fn inbox_backlog(&self) -> Result<InboxBacklog, StoreError> {
        let answer: Vec<Value> = self
            .run(&self.scripts.inbox_backlog, Args::default())
            .await?;
        match answer.as_slice() {
            [pending, oldest] => Ok(InboxBacklog {
                pending: uint(pending)?,
                oldest_received_at: opt_int(oldest)?,
            }),
            _ => Err(corrupt("the inbox_backlog script's answer")),
        }
    }

    async fn state_get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.command(
            redis::cmd("HGET")
                .arg(self.hub.key("ev:state"))
                .arg(key)
                .clone(),
        )
        .await
    }

    async fn state_put(&self, key: &str, value: &[u8], _now: Millis) -> Result<(), StoreError> {
        self.command::<i64>(
            redis::cmd("HSET")
                .arg(self.hub.key("ev:state"))
                .arg(key)
                .arg(value)
                .clone(),
        )
        .await
        .map(|_| ())
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}

/// `"<len>:<tenant>:<subscription>"` → (tenant, subscription).
fn split_lp(s: &str) -> Option<(&str, &str)> {
    let (len, rest) = s.split_once(':')?;
    let len: usize = len.parse().ok()?;
    let tenant = rest.get(..len)?;
    let subscription = rest.get(len..)?.strip_prefix(':')?;
    Some((tenant, subscription))
}

#[cfg(test)]
mod tests;
