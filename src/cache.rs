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

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use moka::future::Cache;
use moka::Expiry;

use crate::api::ids::ObjectId;
use crate::api::request::{OperationRequest, Page};
use crate::api::ApiError;
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
}

impl CachedResponse {
    pub fn new(value: Cached, ttl: Duration) -> Self {
        CachedResponse {
            value,
            stored_at: Instant::now(),
            ttl,
        }
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
}

impl CacheResult {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheResult::Hit => "hit",
            CacheResult::Miss => "miss",
            CacheResult::Bypass => "bypass",
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
        Some(value.ttl)
    }
}

pub struct ResponseCache {
    inner: Cache<CacheKey, Arc<CachedResponse>>,
}

impl ResponseCache {
    pub fn new(max_entries: u64) -> Self {
        ResponseCache {
            inner: Cache::builder()
                .max_capacity(max_entries)
                .expire_after(PerEntryTtl)
                .support_invalidation_closures()
                .build(),
        }
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

    /// Store a fresh value (after a bypass).
    pub async fn store(&self, key: CacheKey, value: CachedResponse) {
        self.inner.insert(key, Arc::new(value)).await;
    }

    /// Drop one object's entries (both the plain and the raw variant).
    pub async fn invalidate_object(
        &self,
        conn: &Connection,
        operation: &'static str,
        params: &str,
    ) {
        for raw in [false, true] {
            self.inner
                .invalidate(&CacheKey::new(conn, operation, params.to_owned(), raw))
                .await;
        }
    }

    /// Drop every entry of `operations` on one connection.
    pub fn invalidate_operations(
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
    pub fn invalidate_children(&self, tenant: &str, connection: &str, parent: &str) {
        let (tenant, connection, parent) =
            (tenant.to_owned(), connection.to_owned(), parent.to_owned());
        self.invalidate_if(move |k| {
            k.same_connection(&tenant, &connection) && k.parent.as_deref() == Some(parent.as_str())
        });
    }

    /// Drop everything of one connection (admin purge).
    pub fn invalidate_connection(&self, tenant: &str, connection: &str) {
        let (tenant, connection) = (tenant.to_owned(), connection.to_owned());
        self.invalidate_if(move |k| k.same_connection(&tenant, &connection));
    }

    /// Drop every entry whose (tenant, connection, fingerprint) is not in `live` — after a
    /// reload removed or changed connections.
    pub fn retain_connections(&self, live: HashSet<(String, String, u64)>) {
        self.invalidate_if(move |k| {
            !live.contains(&(k.tenant.clone(), k.connection.clone(), k.fingerprint))
        });
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
pub fn plan(
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

pub fn invalidation(request: &OperationRequest) -> Invalidation {
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
    /// Drop what a successful write changed.
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
