//! The state seam: everything that several gateway replicas must agree on goes through one
//! small async trait, [`StateStore`]. One process is the default and uses the in-process
//! backend ([`memory::MemoryStore`]); several replicas (issue 15) plug a Redis/Valkey backend
//! in behind the same trait — a new backend, not a rewrite.
//!
//! # Shared state vs per-replica state
//!
//! | what | where | why |
//! |---|---|---|
//! | tenant rate limit (`rate_limit`) | **shared** ([`StateStore::acquire`]) | three replicas must not grant a tenant 3× its limit |
//! | vendor budget (`vendor_budget`) | **shared** ([`StateStore::acquire`], may reserve a slot) | the vendor counts our calls from every replica |
//! | vendor 429 pause (`Retry-After`) | **shared** ([`StateStore::pause`], [`StateStore::paused_for`]) | the vendor throttles the account, not a replica |
//! | idempotency records | **shared** ([`StateStore::begin`], `complete`, `release`) | a retried POST may land on another replica |
//! | circuit breaker | per replica (`crate::resilience::breaker`) | each replica sees its own network path; Envoy, Kong and Tyk do the same |
//! | retry policy and retry budget | per replica (`crate::resilience::retry`) | a budget is a local brake on local amplification |
//! | response cache | per replica (invalidated across replicas in issue 15) | |
//!
//! # The contract every backend keeps
//!
//! - **Time is the store's.** Methods take and return *durations*, never instants: the
//!   in-process backend reads its injected [`crate::clock::Clock`]; a Redis backend reads the
//!   server's clock (`TIME` inside its scripts), so replicas with skewed clocks still agree.
//! - **Each method is one atomic step** on one key. Nothing is read, decided in the gateway
//!   and written back.
//! - **Memory is bounded.** Limit and pause entries live only as long as they matter (their
//!   TTL is known at write time); idempotency records have a 24 h TTL, in-flight locks a
//!   lease, and the in-process backend caps records and bytes.
//! - **Errors say what the gateway must do.** [`StateError::Unavailable`] means "the store
//!   cannot answer": the gateway refuses requests that carry an `Idempotency-Key` with 503
//!   (never risk a duplicate), lets limits fall back to a local share, and serves everything
//!   else. [`StateError::CapacityExceeded`] is the in-process bound being hit (503 too).
//!
//! # How the Redis backend (issue 15) maps onto the trait
//!
//! | method | Redis ([`redis::store`]) |
//! |---|---|
//! | `acquire` | one `EVALSHA` running [`limit::gcra`] on the server's `TIME`: read the TAT, the arithmetic, `SET tat PX (new_tat − now)`; a refusal writes nothing |
//! | `begin` | one script: when the record is absent, `HSET <record> f <fingerprint> t <token>` + `PEXPIRE <lease>` (the in-flight lock); otherwise InFlight / Replay / Mismatch from what it holds |
//! | `complete` | script: if the record still holds this token in flight, store the answer with `PEXPIRE 24h` (or `DEL` when not storable) |
//! | `release` | script: `DEL` only if the record still holds this token (compare-and-delete) |
//! | `pause` | script: `SET pause:<connection> 1 PX <ms>` only if the current `PTTL` is shorter (a pause only grows) |
//! | `paused_for` | `PTTL pause:<connection>` |
//!
//! Keys: [`LimitKey::storage_key`], [`idempotency::RecordKey::storage_key`] and
//! [`ConnectionKey::storage_key`] are length-prefixed, so no tenant or connection name can
//! make two keys collide. Connection errors and timeouts of the Redis client become
//! `StateError::Unavailable`.
//!
//! # Several replicas (issue 15)
//!
//! - [`cluster`] — the `cluster:` settings (`redis_url`, timeouts, `local_share`).
//! - [`redis`] — [`redis::RedisHub`] (one per replica: the connection manager, health, pub/sub)
//!   and [`redis::store::RedisStore`], this trait on Redis (scripts in `redis/lua/`).
//! - [`fallback`] — [`fallback::FallbackStore`], what a replica uses — Redis while it answers,
//!   local state (limits at `local_share`, pauses) while it does not; idempotency stays shared.
//! - Cross-replica cache invalidation is `crate::cluster::bus::InvalidationBus`; what one
//!   replica runs is assembled by `crate::cluster::Cluster` (above this module and
//!   `crate::events`, so neither imports it).
//! - The event outbox has its own seam: `crate::events::store::EventStore`, with
//!   `crate::events::redis_store` and `crate::events::spill` for several replicas.

pub mod cluster;
pub mod fallback;
pub mod idempotency;
pub mod limit;
pub mod memory;
pub mod redis;
#[cfg(test)]
pub(crate) mod test_redis;

use std::time::Duration;

use async_trait::async_trait;

pub use idempotency::{
    Begin, Completion, IdempotencyKey, InvalidKey, Lease, RecordKey, RequestFingerprint,
    StoredAnswer,
};
pub use limit::{Admission, Limit};
pub use memory::{MemoryBounds, MemoryStore};

/// One tenant's connection (connection names are unique per tenant only).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionKey {
    pub tenant: String,
    pub connection: String,
}

impl ConnectionKey {
    pub fn new(tenant: impl Into<String>, connection: impl Into<String>) -> Self {
        ConnectionKey {
            tenant: tenant.into(),
            connection: connection.into(),
        }
    }

    /// `<len>:<tenant>:<connection>`, unambiguous whatever the names contain.
    pub fn storage_key(&self) -> String {
        format!("{}:{}:{}", self.tenant.len(), self.tenant, self.connection)
    }
}

/// What a rate limit is counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LimitKey {
    /// A tenant's own limit (`rate_limit`), counted over all its requests.
    Tenant(String),
    /// A connection's budget toward its vendor (`vendor_budget`).
    VendorBudget(ConnectionKey),
}

impl LimitKey {
    /// The key's name in a shared store.
    pub fn storage_key(&self) -> String {
        match self {
            LimitKey::Tenant(t) => format!("rl:tenant:{}:{t}", t.len()),
            LimitKey::VendorBudget(c) => format!("rl:budget:{}", c.storage_key()),
        }
    }
}

/// Why the state store could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// The store cannot be reached or did not answer in time (a shared backend is down).
    /// Requests with an `Idempotency-Key` get 503; limits fall back to local state.
    #[error("the {backend} state store is unavailable: {reason}")]
    Unavailable {
        backend: &'static str,
        reason: String,
    },
    /// The store holds as much as it is allowed to (the in-process bounds).
    #[error("the state store is full: {0}")]
    CapacityExceeded(&'static str),
}

/// Shared gateway state: rate limits, idempotency records and connection pauses.
///
/// Implementations are cheap to call concurrently; every method is one atomic step.
/// Keep this trait small: a second backend has to implement every method.
#[async_trait]
pub trait StateStore: Send + Sync + 'static {
    /// `memory` or `redis`: for logs, metrics and `/readyz`.
    fn backend(&self) -> &'static str;

    /// Take one request from `key`'s limit.
    ///
    /// With `max_wait` zero (tenant limits) the answer is `Allowed` or `Refused`. With a
    /// positive `max_wait` (vendor budgets) a request that would fit within `max_wait`
    /// *reserves* its slot and gets `Reserved { wait }`: the caller sleeps `wait`, then calls
    /// the vendor without asking again. `Refused` takes nothing. Changing `limit` between
    /// calls (a config reload) keeps the key's state.
    async fn acquire(
        &self,
        key: &LimitKey,
        limit: Limit,
        max_wait: Duration,
    ) -> Result<Admission, StateError>;

    /// Start a request that carries an `Idempotency-Key`. `lease` bounds how long the
    /// in-flight lock is held if the request never completes or releases (use the longest
    /// the request can run, plus a margin).
    async fn begin(
        &self,
        record: &RecordKey,
        fingerprint: &RequestFingerprint,
        lease: Duration,
    ) -> Result<Begin, StateError>;

    /// Finish a started request with its answer: stored for replay for 24 h when
    /// [`idempotency::should_store`] says so, otherwise the key is released. On an error the
    /// record is released too (better a possible retry than a key locked for the lease).
    async fn complete(&self, lease: &Lease, answer: StoredAnswer)
        -> Result<Completion, StateError>;

    /// Drop a started request's lock without storing anything, so the client may retry
    /// (a 5xx, or the gateway gave up before an answer). A lost lease is a no-op.
    async fn release(&self, lease: &Lease) -> Result<(), StateError>;

    /// Stop calls to `connection` for `duration` (a vendor 429's `Retry-After`). A pause only
    /// grows: a shorter pause than the current one changes nothing. Returns the pause now in
    /// force.
    async fn pause(
        &self,
        connection: &ConnectionKey,
        duration: Duration,
    ) -> Result<Duration, StateError>;

    /// How much longer `connection` is paused, if it is.
    async fn paused_for(&self, connection: &ConnectionKey) -> Result<Option<Duration>, StateError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_keys_are_unambiguous() {
        let a = ConnectionKey::new("a:1", "b");
        let b = ConnectionKey::new("a", "1:b");
        assert_ne!(a.storage_key(), b.storage_key());
        assert_ne!(
            LimitKey::Tenant("x".into()).storage_key(),
            LimitKey::VendorBudget(ConnectionKey::new("x", "")).storage_key()
        );
        assert_eq!(
            LimitKey::VendorBudget(ConnectionKey::new("acme", "desk")).storage_key(),
            "rl:budget:4:acme:desk"
        );
    }
}
