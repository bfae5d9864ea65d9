//! The in-process [`StateStore`]: the default for one gateway process, and the local
//! fallback a shared backend degrades to.
//!
//! Three tables, each behind its own mutex (held for a hash lookup and a few arithmetic
//! steps, never across an `.await`):
//! - limits: key → GCRA TAT. An entry is worthless once its TAT has passed, so the table is
//!   swept whenever it doubles in size: it holds only keys active within their refill time.
//! - pauses: connection → paused-until, swept the same way.
//! - idempotency records: key → record, plus an index by expiry time. Expired records and
//!   lapsed leases are dropped as time passes; past [`MemoryBounds`] the oldest *completed*
//!   records are evicted first (an in-flight lock is never evicted: it expires with its
//!   lease). When only in-flight locks fill the table, `begin` answers
//!   [`StateError::CapacityExceeded`] rather than forget one.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;

use super::idempotency::{should_store, RECORD_TTL};
use super::limit::gcra;
use super::{
    Admission, Begin, Completion, ConnectionKey, Lease, Limit, LimitKey, RecordKey,
    RequestFingerprint, StateError, StateStore, StoredAnswer,
};
use crate::clock::{to_nanos, Clock, SystemClock};

/// Default cap on idempotency records (in flight + completed).
pub const DEFAULT_MAX_RECORDS: usize = 100_000;
/// Default cap on bytes held by idempotency records (answers, headers, keys).
pub const DEFAULT_MAX_RECORD_BYTES: usize = 64 * 1024 * 1024;
/// Bookkeeping bytes counted per record on top of its key and answer.
const RECORD_OVERHEAD: usize = 128;
/// Smallest table size at which limit and pause tables are swept.
const MIN_SWEEP: usize = 1024;

/// How much the in-process backend may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryBounds {
    pub max_records: usize,
    pub max_record_bytes: usize,
}

impl Default for MemoryBounds {
    fn default() -> Self {
        MemoryBounds {
            max_records: DEFAULT_MAX_RECORDS,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
        }
    }
}

/// What the store holds right now (for a gauge and for tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemoryStats {
    pub limit_keys: usize,
    pub pauses: usize,
    pub records: usize,
    pub records_in_flight: usize,
    pub record_bytes: usize,
}

/// The in-process backend.
pub struct MemoryStore {
    clock: Arc<dyn Clock>,
    bounds: MemoryBounds,
    limits: Mutex<Expiring<LimitKey>>,
    pauses: Mutex<Expiring<ConnectionKey>>,
    records: Mutex<Records>,
    next_token: AtomicU64,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("bounds", &self.bounds)
            .field("stats", &self.stats())
            .finish()
    }
}

impl MemoryStore {
    /// A store on real time with the default bounds.
    pub fn new() -> Self {
        Self::with_clock(Arc::new(SystemClock::new()), MemoryBounds::default())
    }

    pub fn with_clock(clock: Arc<dyn Clock>, bounds: MemoryBounds) -> Self {
        MemoryStore {
            clock,
            bounds,
            limits: Mutex::new(Expiring::default()),
            pauses: Mutex::new(Expiring::default()),
            records: Mutex::new(Records::default()),
            next_token: AtomicU64::new(1),
        }
    }

    fn now(&self) -> u64 {
        to_nanos(self.clock.now())
    }

    pub fn stats(&self) -> MemoryStats {
        let now = self.now();
        let records = lock(&self.records);
        MemoryStats {
            limit_keys: lock(&self.limits).live(now),
            pauses: lock(&self.pauses).live(now),
            records: records.map.len(),
            records_in_flight: records.map.values().filter(|r| r.answer.is_none()).count(),
            record_bytes: records.bytes,
        }
    }

    fn acquire_now(&self, key: &LimitKey, limit: Limit, max_wait: Duration) -> Admission {
        let now = self.now();
        let mut limits = lock(&self.limits);
        let (next, admission) = gcra(limits.get(key, now), now, &limit, max_wait);
        if let Some(tat) = next {
            limits.insert(key.clone(), tat, now);
        }
        admission
    }

    fn begin_now(
        &self,
        record: &RecordKey,
        fingerprint: &RequestFingerprint,
        lease: Duration,
    ) -> Result<Begin, StateError> {
        let now = self.now();
        let mut records = lock(&self.records);
        records.sweep(now);
        if let Some(existing) = records.map.get(record) {
            if existing.fingerprint != *fingerprint {
                return Ok(Begin::Mismatch);
            }
            return Ok(match &existing.answer {
                Some(answer) => Begin::Replay(answer.clone()),
                None => Begin::InFlight {
                    lease_remaining: Duration::from_nanos(existing.expires.saturating_sub(now)),
                },
            });
        }
        let size = record_size(record, None);
        while records.map.len() >= self.bounds.max_records
            || records.bytes + size > self.bounds.max_record_bytes
        {
            if !records.evict_oldest_completed() {
                return Err(StateError::CapacityExceeded(
                    "too many idempotency keys in flight",
                ));
            }
        }
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        let lease = lease.max(Duration::from_millis(1));
        records.insert(
            record.clone(),
            Record {
                token,
                fingerprint: *fingerprint,
                expires: now.saturating_add(to_nanos(lease)),
                answer: None,
                size,
            },
        );
        Ok(Begin::Started(Lease {
            record: record.clone(),
            token,
        }))
    }

    fn complete_now(&self, lease: &Lease, answer: StoredAnswer) -> Result<Completion, StateError> {
        let now = self.now();
        let mut records = lock(&self.records);
        records.sweep(now);
        if !records.holds(lease) {
            return Ok(Completion::LeaseLost);
        }
        if !should_store(answer.status) {
            records.remove(&lease.record);
            return Ok(Completion::Released);
        }
        let size = record_size(&lease.record, Some(&answer));
        if size > self.bounds.max_record_bytes {
            records.remove(&lease.record);
            return Err(StateError::CapacityExceeded(
                "an answer larger than the idempotency store",
            ));
        }
        let held = records.map.get(&lease.record).map_or(0, |r| r.size);
        // The record being completed is in flight, so eviction never picks it.
        while records.bytes - held + size > self.bounds.max_record_bytes {
            if !records.evict_oldest_completed() {
                records.remove(&lease.record);
                return Err(StateError::CapacityExceeded(
                    "idempotency store bytes in flight",
                ));
            }
        }
        // Re-inserted under its new expiry, so the index stays in step.
        let Some(mut record) = records.remove(&lease.record) else {
            return Ok(Completion::LeaseLost);
        };
        record.expires = now.saturating_add(to_nanos(RECORD_TTL));
        record.answer = Some(answer);
        record.size = size;
        records.insert(lease.record.clone(), record);
        Ok(Completion::Stored)
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl StateStore for MemoryStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn acquire(
        &self,
        key: &LimitKey,
        limit: Limit,
        max_wait: Duration,
    ) -> Result<Admission, StateError> {
        Ok(self.acquire_now(key, limit, max_wait))
    }

    async fn begin(
        &self,
        record: &RecordKey,
        fingerprint: &RequestFingerprint,
        lease: Duration,
    ) -> Result<Begin, StateError> {
        self.begin_now(record, fingerprint, lease)
    }

    async fn complete(
        &self,
        lease: &Lease,
        answer: StoredAnswer,
    ) -> Result<Completion, StateError> {
        self.complete_now(lease, answer)
    }

    async fn release(&self, lease: &Lease) -> Result<(), StateError> {
        let now = self.now();
        let mut records = lock(&self.records);
        records.sweep(now);
        if records.holds(lease) {
            records.remove(&lease.record);
        }
        Ok(())
    }

    async fn pause(
        &self,
        connection: &ConnectionKey,
        duration: Duration,
    ) -> Result<Duration, StateError> {
        let now = self.now();
        let mut pauses = lock(&self.pauses);
        let until = now
            .saturating_add(to_nanos(duration))
            .max(pauses.get(connection, now).unwrap_or(0));
        pauses.insert(connection.clone(), until, now);
        Ok(Duration::from_nanos(until - now))
    }

    async fn paused_for(&self, connection: &ConnectionKey) -> Result<Option<Duration>, StateError> {
        let now = self.now();
        Ok(lock(&self.pauses)
            .get(connection, now)
            .map(|until| Duration::from_nanos(until - now)))
    }
}

/// A poisoned mutex only means another thread panicked mid-update of plain numbers; the
/// data is still usable, and refusing every later request would be worse.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Key → expiry time; an entry at or before `now` counts as absent.
struct Expiring<K> {
    map: HashMap<K, u64>,
    sweep_at: usize,
}

impl<K> Default for Expiring<K> {
    fn default() -> Self {
        Expiring {
            map: HashMap::new(),
            sweep_at: MIN_SWEEP,
        }
    }
}

impl<K: Hash + Eq> Expiring<K> {
    fn get(&self, key: &K, now: u64) -> Option<u64> {
        self.map.get(key).copied().filter(|&v| v > now)
    }

    /// Insert, and when the table has doubled since the last sweep, drop what has expired
    /// (amortized O(1) per insert).
    fn insert(&mut self, key: K, expires: u64, now: u64) {
        self.map.insert(key, expires);
        if self.map.len() >= self.sweep_at {
            self.map.retain(|_, v| *v > now);
            self.sweep_at = (self.map.len() * 2).max(MIN_SWEEP);
        }
    }

    fn live(&self, now: u64) -> usize {
        self.map.values().filter(|&&v| v > now).count()
    }
}

struct Record {
    /// Who holds (or last held) the record: changes with every `begin` that starts it.
    token: u64,
    fingerprint: RequestFingerprint,
    /// Lease end while in flight; the 24 h TTL once completed.
    expires: u64,
    /// `None` while in flight.
    answer: Option<StoredAnswer>,
    /// Bytes counted against [`MemoryBounds::max_record_bytes`].
    size: usize,
}

/// Records plus an index by expiry. Invariant: exactly one index entry per record, at
/// `(record.expires, record.token)`, and `bytes` is the sum of record sizes.
#[derive(Default)]
struct Records {
    map: HashMap<RecordKey, Record>,
    by_expiry: BTreeMap<(u64, u64), RecordKey>,
    bytes: usize,
}

impl Records {
    fn insert(&mut self, key: RecordKey, record: Record) {
        self.by_expiry
            .insert((record.expires, record.token), key.clone());
        self.bytes += record.size;
        if let Some(old) = self.map.insert(key, record) {
            // Callers remove first; keep the invariant even if one does not.
            self.by_expiry.remove(&(old.expires, old.token));
            self.bytes -= old.size;
        }
    }

    fn remove(&mut self, key: &RecordKey) -> Option<Record> {
        let record = self.map.remove(key)?;
        self.by_expiry.remove(&(record.expires, record.token));
        self.bytes -= record.size;
        Some(record)
    }

    /// Whether `lease` still holds its record in flight.
    fn holds(&self, lease: &Lease) -> bool {
        self.map
            .get(&lease.record)
            .is_some_and(|r| r.token == lease.token && r.answer.is_none())
    }

    /// Drop every record whose lease or TTL has passed.
    fn sweep(&mut self, now: u64) {
        while let Some((&(expires, _), key)) = self.by_expiry.first_key_value() {
            if expires > now {
                break;
            }
            let key = key.clone();
            self.remove(&key);
        }
    }

    /// Evict the completed record closest to expiry (the oldest). False when every record
    /// is in flight.
    fn evict_oldest_completed(&mut self) -> bool {
        let victim = self
            .by_expiry
            .values()
            .find(|key| self.map.get(*key).is_some_and(|r| r.answer.is_some()))
            .cloned();
        match victim {
            Some(key) => {
                self.remove(&key);
                true
            }
            None => false,
        }
    }
}

fn record_size(key: &RecordKey, answer: Option<&StoredAnswer>) -> usize {
    RECORD_OVERHEAD + key.tenant.len() + key.key.as_str().len() + answer.map_or(0, |a| a.size())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::state::IdempotencyKey;
    use bytes::Bytes;

    fn store() -> (Arc<ManualClock>, MemoryStore) {
        store_with(MemoryBounds::default())
    }

    fn store_with(bounds: MemoryBounds) -> (Arc<ManualClock>, MemoryStore) {
        let clock = Arc::new(ManualClock::new(Duration::from_secs(1_000)));
        let store = MemoryStore::with_clock(clock.clone(), bounds);
        (clock, store)
    }

    fn tenant(t: &str) -> LimitKey {
        LimitKey::Tenant(t.to_owned())
    }

    fn record(tenant: &str, key: &str) -> RecordKey {
        RecordKey::new(tenant, IdempotencyKey::parse(key.as_bytes()).unwrap())
    }

    fn fp(body: &str) -> RequestFingerprint {
        RequestFingerprint::new("POST", "/v1/messages", "main", body.as_bytes())
    }

    fn answer(status: u16, body: &'static str) -> StoredAnswer {
        StoredAnswer::new(
            status,
            [(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            )],
            Bytes::from_static(body.as_bytes()),
        )
    }

    const LEASE: Duration = Duration::from_secs(30);

    async fn started(store: &MemoryStore, r: &RecordKey, f: &RequestFingerprint) -> Lease {
        match store.begin(r, f, LEASE).await.unwrap() {
            Begin::Started(lease) => lease,
            other => panic!("expected Started, got {other:?}"),
        }
    }

    // ----- limits ------------------------------------------------------------------------

    #[tokio::test]
    async fn tenant_limit_refuses_past_the_burst_and_refills() {
        let (clock, store) = store();
        let limit = Limit {
            per_second: 2.0,
            burst: 3,
        };
        for expected in [2, 1, 0] {
            let a = store
                .acquire(&tenant("acme"), limit, Duration::ZERO)
                .await
                .unwrap();
            assert_eq!(a.remaining(), expected);
            assert!(!a.is_refused());
        }
        let refused = store
            .acquire(&tenant("acme"), limit, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(
            refused,
            Admission::Refused {
                retry_after: Duration::from_millis(500),
                reset: Duration::from_millis(1500)
            }
        );
        clock.advance(Duration::from_millis(500));
        let a = store
            .acquire(&tenant("acme"), limit, Duration::ZERO)
            .await
            .unwrap();
        assert!(!a.is_refused(), "one token is back after 1/rate");
    }

    #[tokio::test]
    async fn one_tenant_over_its_limit_leaves_another_unaffected() {
        let (_clock, store) = store();
        let limit = Limit {
            per_second: 1.0,
            burst: 1,
        };
        assert!(!store
            .acquire(&tenant("a"), limit, Duration::ZERO)
            .await
            .unwrap()
            .is_refused());
        assert!(store
            .acquire(&tenant("a"), limit, Duration::ZERO)
            .await
            .unwrap()
            .is_refused());
        assert!(!store
            .acquire(&tenant("b"), limit, Duration::ZERO)
            .await
            .unwrap()
            .is_refused());
        // A vendor budget of a connection named like the tenant is a different key.
        let budget = LimitKey::VendorBudget(ConnectionKey::new("a", "a"));
        assert!(!store
            .acquire(&budget, limit, Duration::ZERO)
            .await
            .unwrap()
            .is_refused());
    }

    #[tokio::test]
    async fn budget_of_5_rps_holds_under_a_50_rps_client() {
        // A client sends one request every 20 ms for 2 s; the budget (5 rps, burst 5, no
        // waiting) admits the burst plus 5 per second.
        let (clock, store) = store();
        let key = LimitKey::VendorBudget(ConnectionKey::new("acme", "desk"));
        let limit = Limit {
            per_second: 5.0,
            burst: 5,
        };
        let mut admitted = 0;
        for _ in 0..100 {
            if !store
                .acquire(&key, limit, Duration::ZERO)
                .await
                .unwrap()
                .is_refused()
            {
                admitted += 1;
            }
            clock.advance(Duration::from_millis(20));
        }
        // burst 5, plus 5 rps over the 1.98 s the client keeps sending: 14 of 100.
        assert_eq!(admitted, 14);
    }

    #[tokio::test]
    async fn waiting_budget_callers_leave_at_the_configured_rate() {
        // 20 callers arrive together; budget 5 rps, burst 1, max wait 1 s. Each admitted
        // caller's departure time (now + wait) is 200 ms after the previous one, and those
        // that cannot leave within 1 s are refused without taking a slot.
        let (clock, store) = store();
        let key = LimitKey::VendorBudget(ConnectionKey::new("acme", "desk"));
        let limit = Limit {
            per_second: 5.0,
            burst: 1,
        };
        let mut departures = Vec::new();
        let mut refused = 0;
        for _ in 0..20 {
            match store
                .acquire(&key, limit, Duration::from_secs(1))
                .await
                .unwrap()
            {
                Admission::Allowed { .. } => departures.push(Duration::ZERO),
                Admission::Reserved { wait, .. } => departures.push(wait),
                Admission::Refused { retry_after, .. } => {
                    assert!(retry_after > Duration::from_secs(1));
                    refused += 1;
                }
            }
        }
        let ms: Vec<u128> = departures.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [0, 200, 400, 600, 800, 1000]);
        assert_eq!(refused, 14);
        // The refused callers took nothing: 1.2 s later the line is empty again.
        clock.advance(Duration::from_millis(1200));
        assert!(matches!(
            store.acquire(&key, limit, Duration::ZERO).await.unwrap(),
            Admission::Allowed { .. }
        ));
    }

    #[tokio::test]
    async fn a_reloaded_limit_keeps_the_key_state() {
        let (_clock, store) = store();
        let key = tenant("acme");
        let small = Limit {
            per_second: 1.0,
            burst: 2,
        };
        store.acquire(&key, small, Duration::ZERO).await.unwrap();
        store.acquire(&key, small, Duration::ZERO).await.unwrap();
        assert!(store
            .acquire(&key, small, Duration::ZERO)
            .await
            .unwrap()
            .is_refused());
        // A bigger burst applies at once, counted from the same state.
        let bigger = Limit {
            per_second: 1.0,
            burst: 4,
        };
        let a = store.acquire(&key, bigger, Duration::ZERO).await.unwrap();
        assert_eq!(a.remaining(), 1);
    }

    #[tokio::test]
    async fn limit_entries_are_swept_once_their_bucket_is_full_again() {
        let (clock, store) = store();
        let limit = Limit {
            per_second: 10.0,
            burst: 1,
        };
        for i in 0..5_000 {
            store
                .acquire(&tenant(&format!("t{i}")), limit, Duration::ZERO)
                .await
                .unwrap();
        }
        assert_eq!(store.stats().limit_keys, 5_000);
        clock.advance(Duration::from_secs(1));
        // New traffic triggers the sweep of the idle keys once the table has doubled since
        // the last sweep (at 8192 entries here): it then holds at most twice the live keys.
        for i in 0..4_000 {
            store
                .acquire(&tenant(&format!("u{i}")), limit, Duration::ZERO)
                .await
                .unwrap();
        }
        let held = lock(&store.limits).map.len();
        assert!(held <= 4_000, "idle keys were kept: {held}");
        assert_eq!(store.stats().limit_keys, 4_000);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_acquires_admit_exactly_the_burst() {
        let (_clock, store) = store();
        let store = Arc::new(store);
        let limit = Limit {
            per_second: 1.0,
            burst: 10,
        };
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .acquire(&tenant("acme"), limit, Duration::ZERO)
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut allowed = 0;
        for t in tasks {
            if !t.await.unwrap().is_refused() {
                allowed += 1;
            }
        }
        assert_eq!(allowed, 10);
    }

    // ----- idempotency -------------------------------------------------------------------

    #[tokio::test]
    async fn same_key_same_request_replays_the_first_answer() {
        let (_clock, store) = store();
        let r = record("acme", "k1");
        let lease = started(&store, &r, &fp("hi")).await;
        assert!(matches!(
            store.begin(&r, &fp("hi"), LEASE).await.unwrap(),
            Begin::InFlight { lease_remaining } if lease_remaining == LEASE
        ));
        assert_eq!(
            store
                .complete(&lease, answer(201, "{\"id\":\"m1\"}"))
                .await
                .unwrap(),
            Completion::Stored
        );
        for _ in 0..2 {
            match store.begin(&r, &fp("hi"), LEASE).await.unwrap() {
                Begin::Replay(a) => {
                    assert_eq!(a.status, 201);
                    assert_eq!(a.body, Bytes::from_static(b"{\"id\":\"m1\"}"));
                    assert_eq!(a.headers.len(), 1);
                }
                other => panic!("expected a replay, got {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn same_key_different_request_is_a_mismatch_in_flight_and_after() {
        let (_clock, store) = store();
        let r = record("acme", "k1");
        let lease = started(&store, &r, &fp("hi")).await;
        assert_eq!(
            store.begin(&r, &fp("bye"), LEASE).await.unwrap(),
            Begin::Mismatch
        );
        store.complete(&lease, answer(201, "{}")).await.unwrap();
        assert_eq!(
            store.begin(&r, &fp("bye"), LEASE).await.unwrap(),
            Begin::Mismatch
        );
    }

    #[tokio::test]
    async fn server_errors_and_429_release_the_key() {
        let (_clock, store) = store();
        for status in [500, 502, 503, 429] {
            let r = record("acme", &format!("k{status}"));
            let lease = started(&store, &r, &fp("hi")).await;
            assert_eq!(
                store.complete(&lease, answer(status, "{}")).await.unwrap(),
                Completion::Released
            );
            // The client may retry, and this time it runs.
            started(&store, &r, &fp("hi")).await;
        }
    }

    #[tokio::test]
    async fn client_errors_are_stored_and_replayed() {
        let (_clock, store) = store();
        let r = record("acme", "k");
        let lease = started(&store, &r, &fp("hi")).await;
        store.complete(&lease, answer(404, "{}")).await.unwrap();
        assert!(matches!(
            store.begin(&r, &fp("hi"), LEASE).await.unwrap(),
            Begin::Replay(StoredAnswer { status: 404, .. })
        ));
    }

    #[tokio::test]
    async fn release_frees_the_key_and_a_stale_release_does_nothing() {
        let (clock, store) = store();
        let r = record("acme", "k");
        let first = started(&store, &r, &fp("hi")).await;
        store.release(&first).await.unwrap();
        let second = started(&store, &r, &fp("hi")).await;
        // Releasing the first lease again must not free the second holder's lock.
        store.release(&first).await.unwrap();
        assert!(matches!(
            store.begin(&r, &fp("hi"), LEASE).await.unwrap(),
            Begin::InFlight { .. }
        ));
        clock.advance(Duration::from_secs(1));
        store.complete(&second, answer(201, "{}")).await.unwrap();
        // Releasing a completed record does not forget the answer.
        store.release(&second).await.unwrap();
        assert!(matches!(
            store.begin(&r, &fp("hi"), LEASE).await.unwrap(),
            Begin::Replay(_)
        ));
    }

    #[tokio::test]
    async fn a_dead_first_request_blocks_its_key_only_until_the_lease_ends() {
        let (clock, store) = store();
        let r = record("acme", "k");
        let dead = started(&store, &r, &fp("hi")).await;
        clock.advance(LEASE - Duration::from_millis(1));
        assert!(matches!(
            store.begin(&r, &fp("hi"), LEASE).await.unwrap(),
            Begin::InFlight { lease_remaining } if lease_remaining == Duration::from_millis(1)
        ));
        clock.advance(Duration::from_millis(1));
        let taken_over = started(&store, &r, &fp("hi")).await;
        assert_ne!(dead.token, taken_over.token);
        // The first request's late answer changes nothing; the new holder keeps its lock.
        assert_eq!(
            store.complete(&dead, answer(201, "{}")).await.unwrap(),
            Completion::LeaseLost
        );
        assert!(matches!(
            store.begin(&r, &fp("hi"), LEASE).await.unwrap(),
            Begin::InFlight { .. }
        ));
        assert_eq!(
            store
                .complete(&taken_over, answer(201, "{}"))
                .await
                .unwrap(),
            Completion::Stored
        );
    }

    #[tokio::test]
    async fn records_expire_after_24_hours() {
        let (clock, store) = store();
        let r = record("acme", "k");
        let lease = started(&store, &r, &fp("hi")).await;
        store.complete(&lease, answer(201, "{}")).await.unwrap();
        clock.advance(RECORD_TTL - Duration::from_secs(1));
        assert!(matches!(
            store.begin(&r, &fp("hi"), LEASE).await.unwrap(),
            Begin::Replay(_)
        ));
        clock.advance(Duration::from_secs(1));
        // Expired: even a different request may use the key now.
        started(&store, &r, &fp("other")).await;
        assert_eq!(store.stats().records, 1);
    }

    #[tokio::test]
    async fn keys_are_scoped_per_tenant() {
        let (_clock, store) = store();
        started(&store, &record("a", "same"), &fp("hi")).await;
        started(&store, &record("b", "same"), &fp("hi")).await;
    }

    #[tokio::test]
    async fn the_oldest_completed_record_is_evicted_at_the_record_cap() {
        let (clock, store) = store_with(MemoryBounds {
            max_records: 3,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
        });
        for k in ["k1", "k2", "k3"] {
            let lease = started(&store, &record("t", k), &fp(k)).await;
            store.complete(&lease, answer(201, "{}")).await.unwrap();
            clock.advance(Duration::from_secs(1));
        }
        started(&store, &record("t", "k4"), &fp("k4")).await;
        assert_eq!(store.stats().records, 3);
        // k1 was the oldest: forgotten. k2 and k3 still replay.
        started(&store, &record("t", "k1"), &fp("k1")).await;
        assert_eq!(store.stats().records, 3);
        assert!(matches!(
            store
                .begin(&record("t", "k3"), &fp("k3"), LEASE)
                .await
                .unwrap(),
            Begin::Replay(_)
        ));
    }

    #[tokio::test]
    async fn in_flight_locks_are_never_evicted() {
        let (_clock, store) = store_with(MemoryBounds {
            max_records: 2,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
        });
        started(&store, &record("t", "k1"), &fp("1")).await;
        started(&store, &record("t", "k2"), &fp("2")).await;
        assert!(matches!(
            store.begin(&record("t", "k3"), &fp("3"), LEASE).await,
            Err(StateError::CapacityExceeded(_))
        ));
        // Both locks still hold.
        assert!(matches!(
            store
                .begin(&record("t", "k1"), &fp("1"), LEASE)
                .await
                .unwrap(),
            Begin::InFlight { .. }
        ));
    }

    #[tokio::test]
    async fn byte_cap_evicts_old_answers_and_refuses_one_too_large() {
        let big = "x".repeat(600);
        let big: &'static str = Box::leak(big.into_boxed_str());
        let (_clock, store) = store_with(MemoryBounds {
            max_records: 100,
            max_record_bytes: 2_000,
        });
        let a = started(&store, &record("t", "a"), &fp("a")).await;
        store.complete(&a, answer(201, big)).await.unwrap();
        let b = started(&store, &record("t", "b"), &fp("b")).await;
        store.complete(&b, answer(201, big)).await.unwrap();
        let c = started(&store, &record("t", "c"), &fp("c")).await;
        store.complete(&c, answer(201, big)).await.unwrap();
        let stats = store.stats();
        assert!(stats.record_bytes <= 2_000, "{stats:?}");
        assert_eq!(stats.records, 2, "the oldest answer made room");
        // An answer bigger than the whole store is refused, and the key is released.
        let huge: &'static str = Box::leak("y".repeat(3_000).into_boxed_str());
        let d = started(&store, &record("t", "d"), &fp("d")).await;
        assert!(matches!(
            store.complete(&d, answer(201, huge)).await,
            Err(StateError::CapacityExceeded(_))
        ));
        started(&store, &record("t", "d"), &fp("d")).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn fifty_concurrent_begins_start_exactly_one() {
        let (_clock, store) = store();
        let store = Arc::new(store);
        let barrier = Arc::new(tokio::sync::Barrier::new(50));
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let store = store.clone();
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    store
                        .begin(&record("acme", "send-1"), &fp("hi"), LEASE)
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut started = 0;
        let mut in_flight = 0;
        for t in tasks {
            match t.await.unwrap() {
                Begin::Started(_) => started += 1,
                Begin::InFlight { .. } => in_flight += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!((started, in_flight), (1, 49));
    }

    // ----- pauses ------------------------------------------------------------------------

    #[tokio::test]
    async fn a_pause_holds_until_its_end_and_only_grows() {
        let (clock, store) = store();
        let conn = ConnectionKey::new("acme", "desk");
        assert_eq!(store.paused_for(&conn).await.unwrap(), None);
        assert_eq!(
            store.pause(&conn, Duration::from_secs(2)).await.unwrap(),
            Duration::from_secs(2)
        );
        clock.advance(Duration::from_millis(500));
        assert_eq!(
            store.paused_for(&conn).await.unwrap(),
            Some(Duration::from_millis(1500))
        );
        // A shorter Retry-After does not shorten the pause; a longer one extends it.
        assert_eq!(
            store.pause(&conn, Duration::from_secs(1)).await.unwrap(),
            Duration::from_millis(1500)
        );
        assert_eq!(
            store.pause(&conn, Duration::from_secs(3)).await.unwrap(),
            Duration::from_secs(3)
        );
        // Other connections are not paused.
        assert_eq!(
            store
                .paused_for(&ConnectionKey::new("acme", "other"))
                .await
                .unwrap(),
            None
        );
        clock.advance(Duration::from_secs(3));
        assert_eq!(store.paused_for(&conn).await.unwrap(), None);
    }
}
