//! The response cache: moka, keyed by (tenant, connection + its config fingerprint, cache
//! operation, canonical parameters, raw?), holding the serialized JSON body.
//!
//! - Only reads with a TTL in the connection's routes file are cached; errors never are,
//!   except a vendor 404 when the routes file sets `negative_cache_seconds`.
//! - Concurrent misses on one key make one vendor call (moka's `or_try_insert_with`).
//! - A key carries the tenant, so an entry is never served to another tenant, and the
//!   connection's fingerprint, so a reload that changes a connection (credentials, base URL,
//!   routes) makes its old entries unreachable; the reloader also drops them.
//! - Writes through the gateway invalidate what they changed.
//!
//! The gateway makes one call per request, [`ResponseCache::serve`], with the request's
//! [`Plan`] and the fetch that would answer it: the plan says whether the request is a cached
//! read (served from an entry, or fetched once per key, or — `Cache-Control: no-cache` —
//! fetched and stored) or anything else (fetched; a write that reached the vendor invalidates
//! what it touched). The `switchboard_cache_entries` and `switchboard_cache_bytes` gauges are
//! set in one place: each scrape of `/metrics` calls [`ResponseCache::report_entries`].
//!
//! Two bounds, `cache.max_entries` and `cache.max_bytes`: moka bounds one total weight, so the
//! capacity is `max_bytes` and each entry weighs its size ([`entry_bytes`]: body, key, fixed
//! overhead) but at least `ceil(max_bytes / max_entries)` — the bytes stay under `max_bytes`,
//! and the entries under `max_entries`. Beyond either, moka evicts (TinyLFU admission, LRU).

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use moka::future::Cache;
use moka::Expiry;
use prometheus::IntGauge;

use crate::api::ids::ObjectId;
use crate::api::request::{OperationRequest, Page};
use crate::api::{ApiError, ErrorCode};
use crate::snapshot::Connection;

/// The `cache` label of `switchboard_cache_entries`.
pub const CACHE_NAME: &str = "responses";

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    pub tenant: String,
    pub connection: String,
    pub fingerprint: u64,
    /// `contacts.get`, `contacts.lookup`, `conversations.list`, …
    pub operation: &'static str,
    /// Canonical parameters: the object's vendor keys, or the list's filters and page.
    pub params: String,
    pub raw: bool,
    /// For message lists: the conversation they belong to (invalidated by a send).
    pub parent: Option<String>,
}

impl CacheKey {
    pub fn new(conn: &Connection, operation: &'static str, params: String, raw: bool) -> Self {
        CacheKey {
            tenant: conn.tenant.clone(),
            connection: conn.name.clone(),
            fingerprint: conn.fingerprint,
            operation,
            params,
            raw,
            parent: None,
        }
    }

    fn same_connection(&self, tenant: &str, connection: &str) -> bool {
        self.tenant == tenant && self.connection == connection
    }
}

/// What is stored: a 200 body, or a remembered vendor 404.
#[derive(Debug, Clone)]
pub enum Cached {
    Body(Bytes),
    NotFound(ApiError),
}

#[derive(Debug, Clone)]
pub struct CachedResponse {
    pub value: Cached,
    pub stored_at: Instant,
    pub ttl: Duration,
    /// How long past `ttl` the entry is kept to answer while the vendor fails
    /// (`stale_if_error`).
    pub stale_for: Duration,
}

impl CachedResponse {
    pub fn new(value: Cached, ttl: Duration) -> Self {
        CachedResponse {
            value,
            stored_at: Instant::now(),
            ttl,
            stale_for: Duration::ZERO,
        }
    }

    /// Past its TTL: kept only to answer while the vendor fails.
    pub fn is_stale(&self) -> bool {
        self.stored_at.elapsed() >= self.ttl
    }

    /// Seconds since the vendor answered (the `Age` header).
    pub fn age(&self) -> u64 {
        self.stored_at.elapsed().as_secs()
    }
}

/// Hit, miss or bypass: the `X-Cache` header and the `result` metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheResult {
    Hit,
    Miss,
    Bypass,
    /// An entry past its TTL, served because the vendor failed (`stale_if_error`).
    Stale,
}

impl CacheResult {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheResult::Hit => "hit",
            CacheResult::Miss => "miss",
            CacheResult::Bypass => "bypass",
            CacheResult::Stale => "stale",
        }
    }
}

/// Each entry lives for the TTL it was stored with.
struct PerEntryTtl;

impl Expiry<CacheKey, Arc<CachedResponse>> for PerEntryTtl {
    fn expire_after_create(
        &self,
        _key: &CacheKey,
        value: &Arc<CachedResponse>,
        _now: Instant,
    ) -> Option<Duration> {
        Some(value.ttl.saturating_add(value.stale_for))
    }
}

/// Vendor failures that a stale entry may answer for (RFC 5861's 500/502/503/504, and the
/// edge's refusals: an open circuit, a pause or a spent budget).
fn serves_stale(error: &ApiError) -> bool {
    error.vendor.is_some()
        && matches!(
            error.code,
            ErrorCode::VendorError
                | ErrorCode::VendorTimeout
                | ErrorCode::VendorUnavailable
                | ErrorCode::VendorRateLimited
                | ErrorCode::VendorBadResponse
        )
}

pub struct ResponseCache {
    inner: Cache<CacheKey, Arc<CachedResponse>>,
}

/// `cache.max_bytes` when the config does not say: 32 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 32 * 1024 * 1024;

/// What an entry costs besides its strings and body: the key and value structs, the `Arc`, and
/// moka's own bookkeeping (measured roughly; the bound is on memory, not an exact count).
const ENTRY_OVERHEAD: usize = 256;

/// The bytes one entry holds: its body (or remembered error), its key's strings and
/// [`ENTRY_OVERHEAD`].
pub fn entry_bytes(key: &CacheKey, value: &CachedResponse) -> u64 {
    let value_bytes = match &value.value {
        Cached::Body(body) => body.len(),
        Cached::NotFound(error) => error.detail.len(),
    };
    let key_bytes = key.tenant.len()
        + key.connection.len()
        + key.params.len()
        + key.parent.as_ref().map_or(0, String::len);
    (ENTRY_OVERHEAD + key_bytes + value_bytes) as u64
}

/// What the cache does with one request, decided from the request before it runs.
pub enum Plan {
    /// A read the connection's routes cache: its key and TTL, how long a vendor 404 is
    /// remembered, and whether the caller asked for a fresh answer (`Cache-Control: no-cache`).
    Read {
        key: CacheKey,
        ttl: Duration,
        negative: Option<Duration>,
        fresh: bool,
        /// `stale_if_error` of the operation (zero: never served stale).
        stale: Duration,
    },
    /// Anything else: fetched every time; what a write invalidates once it reached the vendor.
    Pass {
        connection: Arc<Connection>,
        invalidation: Invalidation,
    },
}

impl Plan {
    pub fn new(
        connection: &Arc<Connection>,
        request: &OperationRequest,
        want_raw: bool,
        filters_key: &str,
        fresh: bool,
    ) -> Plan {
        match plan(connection, request, want_raw, filters_key) {
            Some((key, ttl)) => Plan::Read {
                stale: connection
                    .routes
                    .stale_if_error
                    .get(key.operation)
                    .copied()
                    .unwrap_or_default(),
                key,
                ttl,
                negative: connection.routes.negative_cache,
                fresh,
            },
            None => Plan::Pass {
                connection: connection.clone(),
                invalidation: invalidation(request),
            },
        }
    }
}

/// An answer the cache can store (its JSON body: cached reads answer 200) and rebuild.
pub trait Cacheable: Sized {
    fn into_body(self) -> Bytes;
    fn from_body(body: Bytes) -> Self;
}

/// What a fetch produced.
pub struct Fetched<T> {
    pub result: Result<T, ApiError>,
    /// Whether any vendor call was made: a write that made one invalidates what it touched even
    /// when a later call failed (a multi-call update may have applied in part).
    pub reached_vendor: bool,
}

/// How [`ResponseCache::serve`] answered.
pub struct Served<T> {
    pub result: Result<T, ApiError>,
    /// Hit, miss or bypass, for a cached read; `None` when the cache was not asked.
    pub outcome: Option<CacheResult>,
    /// Seconds since the vendor answered, on a hit (the `Age` header).
    pub age: Option<u64>,
}

impl ResponseCache {
    /// A cache of at most `max_entries` entries and [`DEFAULT_MAX_BYTES`] bytes.
    pub fn new(max_entries: u64) -> Self {
        Self::with_bounds(max_entries, DEFAULT_MAX_BYTES)
    }

    /// A cache of at most `max_entries` entries and `max_bytes` bytes (see the module doc).
    pub fn with_bounds(max_entries: u64, max_bytes: u64) -> Self {
        let max_entries = max_entries.max(1);
        let least_weight = max_bytes.div_ceil(max_entries);
        ResponseCache {
            inner: Cache::builder()
                .max_capacity(max_bytes)
                .weigher(move |key, value: &Arc<CachedResponse>| {
                    let weight = entry_bytes(key, value).max(least_weight);
                    u32::try_from(weight).unwrap_or(u32::MAX)
                })
                .expire_after(PerEntryTtl)
                .support_invalidation_closures()
                .build(),
        }
    }

    /// Serve one request under its [`Plan`]. A cached read answers from its entry, or runs
    /// `fetch` (once per key at a time; a success, or a vendor 404 when the routes remember
    /// them, is stored), or — asked fresh — runs `fetch` and replaces the entry. Anything else
    /// runs `fetch`, and a write that reached the vendor drops the entries it changed.
    pub async fn serve<T, F>(&self, plan: Plan, fetch: F) -> Served<T>
    where
        T: Cacheable,
        F: Future<Output = Fetched<T>>,
    {
        let served = match plan {
            Plan::Read {
                key,
                ttl,
                negative,
                fresh,
                stale,
            } => {
                // An entry past its TTL but inside `stale_if_error`: refetch, and answer from
                // it only when the vendor fails.
                let expired = if stale.is_zero() || fresh {
                    None
                } else {
                    self.inner.get(&key).await.filter(|e| e.is_stale())
                };
                let fetch = async {
                    match fetch.await.result {
                        Ok(answer) => {
                            let mut entry =
                                CachedResponse::new(Cached::Body(answer.into_body()), ttl);
                            entry.stale_for = stale;
                            Ok(entry)
                        }
                        Err(e) if e.code == ErrorCode::NotFound && e.vendor.is_some() => {
                            match negative {
                                Some(ttl) => Ok(CachedResponse::new(Cached::NotFound(e), ttl)),
                                None => Err(e),
                            }
                        }
                        Err(e) => Err(e),
                    }
                };
                let (result, outcome) = if let Some(old) = expired {
                    match fetch.await {
                        Ok(entry) => {
                            let entry = Arc::new(entry);
                            self.inner.insert(key, entry.clone()).await;
                            (Ok(entry), CacheResult::Miss)
                        }
                        Err(e) if serves_stale(&e) => (Ok(old), CacheResult::Stale),
                        Err(e) => {
                            // The vendor answered (a 404, a 4xx): the old entry is no truth.
                            self.inner.invalidate(&key).await;
                            (Err(e), CacheResult::Miss)
                        }
                    }
                } else if fresh {
                    match fetch.await {
                        Ok(entry) => {
                            let entry = Arc::new(entry);
                            self.inner.insert(key, entry.clone()).await;
                            (Ok(entry), CacheResult::Bypass)
                        }
                        Err(e) => (Err(e), CacheResult::Bypass),
                    }
                } else {
                    self.get_or_fetch(key, fetch).await
                };
                let age = match (&result, outcome) {
                    (Ok(entry), CacheResult::Hit | CacheResult::Stale) => Some(entry.age()),
                    _ => None,
                };
                Served {
                    result: result.and_then(|entry| match &entry.value {
                        Cached::Body(body) => Ok(T::from_body(body.clone())),
                        Cached::NotFound(e) => Err(e.clone()),
                    }),
                    outcome: Some(outcome),
                    age,
                }
            }
            Plan::Pass {
                connection,
                invalidation,
            } => {
                let fetched = fetch.await;
                if fetched.reached_vendor {
                    self.apply(&connection, invalidation).await;
                }
                Served {
                    result: fetched.result,
                    outcome: None,
                    age: None,
                }
            }
        };
        served
    }

    /// Store a value as if fetched (tests fill a cache with it).
    #[cfg(test)]
    pub(crate) async fn store(&self, key: CacheKey, value: CachedResponse) {
        self.inner.insert(key, Arc::new(value)).await;
    }

    /// The cached value for `key`, or the result of `fetch` (stored when it succeeds). Only
    /// one `fetch` runs per key at a time: concurrent callers wait for it and share its result.
    pub async fn get_or_fetch<F>(
        &self,
        key: CacheKey,
        fetch: F,
    ) -> (Result<Arc<CachedResponse>, ApiError>, CacheResult)
    where
        F: Future<Output = Result<CachedResponse, ApiError>>,
    {
        let entry = self
            .inner
            .entry(key)
            .or_try_insert_with(async { fetch.await.map(Arc::new) })
            .await;
        match entry {
            Ok(entry) => {
                let result = if entry.is_fresh() {
                    CacheResult::Miss
                } else {
                    CacheResult::Hit
                };
                (Ok(entry.into_value()), result)
            }
            Err(error) => (Err((*error).clone()), CacheResult::Miss),
        }
    }

    /// Drop one object's entries (both the plain and the raw variant).
    async fn invalidate_object(&self, conn: &Connection, operation: &'static str, params: &str) {
        for raw in [false, true] {
            self.inner
                .invalidate(&CacheKey::new(conn, operation, params.to_owned(), raw))
                .await;
        }
    }

    /// Drop every entry of `operations` on one connection.
    fn invalidate_operations(
        &self,
        tenant: &str,
        connection: &str,
        operations: &'static [&'static str],
    ) {
        let (tenant, connection) = (tenant.to_owned(), connection.to_owned());
        self.invalidate_if(move |k| {
            k.same_connection(&tenant, &connection) && operations.contains(&k.operation)
        });
    }

    /// Drop the message lists of one conversation.
    fn invalidate_children(&self, tenant: &str, connection: &str, parent: &str) {
        let (tenant, connection, parent) =
            (tenant.to_owned(), connection.to_owned(), parent.to_owned());
        self.invalidate_if(move |k| {
            k.same_connection(&tenant, &connection) && k.parent.as_deref() == Some(parent.as_str())
        });
    }

    /// Drop every entry whose (tenant, connection, fingerprint) is not in `live` — after a
    /// reload removed or changed connections.
    pub fn retain_connections(&self, live: HashSet<(String, String, u64)>) {
        self.invalidate_if(move |k| {
            !live.contains(&(k.tenant.clone(), k.connection.clone(), k.fingerprint))
        });
    }

    /// Drop everything of one connection (admin purge, a purge from another replica).
    pub fn invalidate_connection(&self, tenant: &str, connection: &str) {
        let (tenant, connection) = (tenant.to_owned(), connection.to_owned());
        self.invalidate_if(move |k| k.same_connection(&tenant, &connection));
    }

    /// Drop entries whose params name this vendor key (admin purge of one ID).
    pub fn invalidate_keyed(&self, tenant: &str, connection: &str, params: &str) {
        let (tenant, connection, params) =
            (tenant.to_owned(), connection.to_owned(), params.to_owned());
        self.invalidate_if(move |k| k.same_connection(&tenant, &connection) && k.params == params);
    }

    pub fn invalidate_all(&self) {
        self.inner.invalidate_all();
    }

    fn invalidate_if(&self, predicate: impl Fn(&CacheKey) -> bool + Send + Sync + 'static) {
        if let Err(e) = self.inner.invalidate_entries_if(move |k, _| predicate(k)) {
            // Only possible when invalidation closures are disabled; they are enabled above.
            tracing::error!(error = %e, "cache invalidation failed; purging everything instead");
            self.inner.invalidate_all();
        }
    }

    /// Apply pending evictions and invalidations now (tests, metrics).
    pub async fn sync(&self) {
        self.inner.run_pending_tasks().await;
    }

    pub fn entry_count(&self) -> u64 {
        self.inner.entry_count()
    }

    /// The bytes held ([`entry_bytes`] summed over the entries): one pass over the cache.
    pub fn bytes(&self) -> u64 {
        self.inner
            .iter()
            .map(|(key, value)| entry_bytes(&key, &value))
            .sum()
    }

    /// Apply pending work, then set `entries` (`switchboard_cache_entries`) to the number of
    /// entries and `bytes` (`switchboard_cache_bytes`) to the bytes they hold. The one place the
    /// gauges are set: each scrape of `/metrics` calls it.
    pub async fn report_entries(&self, entries: &IntGauge, bytes: &IntGauge) {
        self.sync().await;
        entries.set(i64::try_from(self.entry_count()).unwrap_or(i64::MAX));
        bytes.set(i64::try_from(self.bytes()).unwrap_or(i64::MAX));
    }
}

/// Canonical parameters of an object: its vendor keys.
pub fn object_params(id: &ObjectId) -> String {
    id.keys.join("\u{1f}")
}

fn page_params(filters_key: &str, page: &Page) -> String {
    let cursor = page
        .cursor
        .as_ref()
        .map(|c| c.to_string())
        .unwrap_or_default();
    format!("{filters_key}limit={}&cursor={cursor}", page.limit)
}

/// The cache key and TTL for a read, when the connection's routes enable caching for it.
fn plan(
    conn: &Connection,
    request: &OperationRequest,
    want_raw: bool,
    filters_key: &str,
) -> Option<(CacheKey, Duration)> {
    let (operation, params, parent) = match request {
        OperationRequest::ContactsGet(id) => ("contacts.get", object_params(id), None),
        OperationRequest::ConversationsGet(id) => ("conversations.get", object_params(id), None),
        OperationRequest::MessagesGet(id) => ("messages.get", object_params(id), None),
        OperationRequest::ContactsList(page, f) => {
            let lookups = [f.email.is_some(), f.phone.is_some(), f.handle.is_some()]
                .iter()
                .filter(|x| **x)
                .count();
            let name = if lookups == 1 && f.q.is_none() && page.cursor.is_none() {
                "contacts.lookup"
            } else {
                "contacts.list"
            };
            (name, page_params(filters_key, page), None)
        }
        OperationRequest::ConversationsList(page, _) => {
            ("conversations.list", page_params(filters_key, page), None)
        }
        OperationRequest::MessagesList(conversation, page) => (
            "messages.list",
            page_params(filters_key, page),
            Some(object_params(conversation)),
        ),
        _ => return None,
    };
    let ttl = *conn.routes.cache.get(operation)?;
    let mut key = CacheKey::new(conn, operation, params, want_raw);
    key.parent = parent;
    Some((key, ttl))
}

/// What a successful write changed, to be invalidated once it succeeded.
pub enum Invalidation {
    None,
    Contact(Option<String>),
    Conversation(Option<String>),
    MessageIn(String),
}

fn invalidation(request: &OperationRequest) -> Invalidation {
    match request {
        OperationRequest::ContactsUpdate(id, _) | OperationRequest::ContactsDelete(id) => {
            Invalidation::Contact(Some(object_params(id)))
        }
        OperationRequest::ContactsCreate(_) => Invalidation::Contact(None),
        OperationRequest::ConversationsUpdate(id, _)
        | OperationRequest::ConversationsDelete(id) => {
            Invalidation::Conversation(Some(object_params(id)))
        }
        OperationRequest::ConversationsCreate(..) => Invalidation::Conversation(None),
        OperationRequest::MessagesSend(conversation, _) => {
            Invalidation::MessageIn(object_params(conversation))
        }
        _ => Invalidation::None,
    }
}

impl ResponseCache {
    /// Drop what a successful write changed (on this replica, or one another replica saw).
    pub async fn apply(&self, conn: &Connection, invalidation: Invalidation) {
        let (tenant, name) = (conn.tenant.as_str(), conn.name.as_str());
        match invalidation {
            Invalidation::None => {}
            Invalidation::Contact(id) => {
                if let Some(id) = id {
                    self.invalidate_object(conn, "contacts.get", &id).await;
                }
                self.invalidate_operations(tenant, name, &["contacts.lookup", "contacts.list"]);
            }
            Invalidation::Conversation(id) => {
                if let Some(id) = id {
                    self.invalidate_object(conn, "conversations.get", &id).await;
                    self.invalidate_children(tenant, name, &id);
                }
                self.invalidate_operations(tenant, name, &["conversations.list"]);
            }
            Invalidation::MessageIn(conversation) => {
                self.invalidate_object(conn, "conversations.get", &conversation)
                    .await;
                self.invalidate_children(tenant, name, &conversation);
                self.invalidate_operations(tenant, name, &["conversations.list"]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::api::ids::Kind;
    use crate::api::operation::Vendor;
    use crate::snapshot::routes::{AuthScheme, VendorRoutes};
    use crate::upstream::BaseUrl;

    fn connection() -> Arc<Connection> {
        Arc::new(Connection {
            tenant: "acme".into(),
            name: "desk".into(),
            vendor: Vendor::Libredesk,
            base_url: BaseUrl::parse("http://127.0.0.1:9").unwrap(),
            auth_header: (
                http::header::AUTHORIZATION,
                http::HeaderValue::from_static("token k:s"),
            ),
            credentials: BTreeMap::new(),
            redactor: Default::default(),
            defaults: Default::default(),
            tls: Default::default(),
            routes: Arc::new(VendorRoutes {
                vendor: Vendor::Libredesk,
                auth: AuthScheme::Token,
                endpoints: BTreeMap::new(),
                cache: [("contacts.get", Duration::from_secs(60))].into(),
                negative_cache: None,
                stale_if_error: Default::default(),
                resilience: Default::default(),
                passthrough: Default::default(),
                settings: BTreeMap::new(),
            }),
            resilience: Default::default(),
            capabilities: Vec::new(),
            fingerprint: 7,
        })
    }

    #[derive(Debug, PartialEq)]
    struct Body(Bytes);

    impl Cacheable for Body {
        fn into_body(self) -> Bytes {
            self.0
        }
        fn from_body(body: Bytes) -> Self {
            Body(body)
        }
    }

    /// One `serve` call per request: plan, fetch (counted), bypass, and a write's invalidation.
    #[tokio::test]
    async fn serve_plans_fetches_bypasses_and_invalidates() {
        let conn = connection();
        let id = ObjectId::new(Kind::Contact, "acme", "desk", vec!["42".into()]);
        let get = OperationRequest::ContactsGet(id.clone());
        let delete = OperationRequest::ContactsDelete(id);
        let cache = ResponseCache::new(100);
        let fetches = AtomicU32::new(0);
        let read = |fresh: bool| {
            let plan = Plan::new(&conn, &get, false, "", fresh);
            let fetch = async {
                let n = fetches.fetch_add(1, Ordering::SeqCst) + 1;
                Fetched {
                    result: Ok(Body(Bytes::from(format!("v{n}")))),
                    reached_vendor: true,
                }
            };
            cache.serve(plan, fetch)
        };
        let write = |reached_vendor: bool| {
            let plan = Plan::new(&conn, &delete, false, "", false);
            cache.serve(plan, async move {
                Fetched {
                    result: Ok(Body(Bytes::new())),
                    reached_vendor,
                }
            })
        };

        let served = read(false).await;
        assert_eq!(served.outcome, Some(CacheResult::Miss));
        assert_eq!(served.result.unwrap(), Body(Bytes::from("v1")));
        let served = read(false).await;
        assert_eq!(served.outcome, Some(CacheResult::Hit));
        assert_eq!(served.age, Some(0));
        assert_eq!(served.result.unwrap(), Body(Bytes::from("v1")));
        let served = read(true).await;
        assert_eq!(served.outcome, Some(CacheResult::Bypass));
        assert_eq!(served.result.unwrap(), Body(Bytes::from("v2")));
        assert_eq!(read(false).await.result.unwrap(), Body(Bytes::from("v2")));
        assert_eq!(fetches.load(Ordering::SeqCst), 2);

        // A write is never cached; one that made no vendor call changes nothing.
        assert_eq!(write(false).await.outcome, None);
        assert_eq!(read(false).await.outcome, Some(CacheResult::Hit));
        write(true).await;
        assert_eq!(read(false).await.outcome, Some(CacheResult::Miss));
        assert_eq!(fetches.load(Ordering::SeqCst), 3);

        // The gauges are set from the cache when asked (each scrape).
        let gauge = IntGauge::new("entries", "entries").unwrap();
        let bytes = IntGauge::new("bytes", "bytes").unwrap();
        cache.report_entries(&gauge, &bytes).await;
        assert_eq!(gauge.get(), 1);
        let key = CacheKey::new(&conn, "contacts.get", "42".into(), false);
        let body = CachedResponse::new(Cached::Body(Bytes::from("v2")), Duration::from_secs(1));
        assert_eq!(bytes.get() as u64, entry_bytes(&key, &body));
        cache.invalidate_all();
        cache.report_entries(&gauge, &bytes).await;
        assert_eq!((gauge.get(), bytes.get()), (0, 0));
    }

    /// Fill `cache` with `n` distinct entries whose bodies have `body_len` bytes.
    async fn fill(cache: &ResponseCache, conn: &Connection, n: usize, body_len: usize) {
        for i in 0..n {
            let key = CacheKey::new(conn, "contacts.get", format!("{i:04}"), false);
            let body = Bytes::from(vec![b'x'; body_len]);
            let entry = CachedResponse::new(Cached::Body(body), Duration::from_secs(60));
            cache.store(key, entry).await;
            cache.sync().await;
        }
        cache.sync().await;
    }

    #[tokio::test]
    async fn max_bytes_bounds_the_bytes_held() {
        let conn = connection();
        // 100 entries would be allowed, but 40 bodies of 1000 bytes need more than 10 000 bytes
        let cache = ResponseCache::with_bounds(100, 10_000);
        fill(&cache, &conn, 40, 1000).await;
        let (entries, bytes) = (cache.entry_count(), cache.bytes());
        assert!(bytes <= 10_000, "{bytes} bytes held under max_bytes 10000");
        assert!(
            (1..=8).contains(&entries),
            "{entries} entries of ~1.3 kB each"
        );
    }

    #[tokio::test]
    async fn max_entries_still_bounds_small_entries() {
        let conn = connection();
        // 1 MiB would hold thousands of 10-byte bodies; 5 entries is the bound
        let cache = ResponseCache::with_bounds(5, 1 << 20);
        fill(&cache, &conn, 40, 10).await;
        let entries = cache.entry_count();
        assert!(
            (1..=5).contains(&entries),
            "{entries} entries under max_entries 5"
        );
    }
}
