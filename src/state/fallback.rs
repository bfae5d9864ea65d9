//! [`FallbackStore`]: the [`StateStore`] a replica of a cluster uses — the shared store while
//! it answers, local state while it does not (issue 15, "when Redis is unreachable").
//!
//! | method | shared store answers | shared store unavailable |
//! |---|---|---|
//! | `acquire` | its answer | the local store, with the limit scaled to `local_share` (rate × share, burst × share rounded up, at least 1) |
//! | `begin`, `complete`, `release` | its answer | the error: a request with an `Idempotency-Key` gets 503, never a possible duplicate |
//! | `pause` | its answer, also recorded locally | recorded locally |
//! | `paused_for` | the longer of the shared and the local pause | the local pause |
//!
//! The shared backend fails fast while it is known down (see [`crate::state::redis`]), so a
//! fallback costs no waiting. Pauses are also kept locally so a vendor's `Retry-After` is still
//! honoured by this replica when Redis goes away (or comes back empty) in the middle of it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::redis::ClusterMetrics;
use super::{
    Admission, Begin, Completion, ConnectionKey, Lease, Limit, LimitKey, MemoryStore, RecordKey,
    RequestFingerprint, StateError, StateStore, StoredAnswer,
};

/// A shared store with a local fallback; see the module docs.
pub struct FallbackStore {
    shared: Arc<dyn StateStore>,
    local: MemoryStore,
    share: f64,
    metrics: Option<ClusterMetrics>,
}

impl std::fmt::Debug for FallbackStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FallbackStore")
            .field("shared", &self.shared.backend())
            .field("share", &self.share)
            .finish()
    }
}

impl FallbackStore {
    /// `share` is `cluster.local_share` (validated to (0, 1]).
    pub fn new(
        shared: Arc<dyn StateStore>,
        local: MemoryStore,
        share: f64,
        metrics: Option<ClusterMetrics>,
    ) -> FallbackStore {
        let share = if share.is_finite() && share > 0.0 {
            share.min(1.0)
        } else {
            1.0
        };
        FallbackStore {
            shared,
            local,
            share,
            metrics,
        }
    }

    /// The local state (stats, tests).
    pub fn local(&self) -> &MemoryStore {
        &self.local
    }

    fn fell_back(&self, kind: &'static str, error: &StateError) {
        tracing::debug!(kind, %error, "shared state unavailable; local fallback");
        if let Some(m) = &self.metrics {
            m.fallback(kind);
        }
    }
}

/// This replica's share of `limit`.
pub fn local_share(limit: Limit, share: f64) -> Limit {
    // ok: `as` saturates; the product is finite and non-negative.
    let burst = ((f64::from(limit.burst) * share).ceil() as u32).max(1);
    Limit {
        per_second: limit.per_second * share,
        burst,
    }
}

#[async_trait]
impl StateStore for FallbackStore {
    fn backend(&self) -> &'static str {
        self.shared.backend()
    }

    async fn acquire(
        &self,
        key: &LimitKey,
        limit: Limit,
        max_wait: Duration,
    ) -> Result<Admission, StateError> {
        match self.shared.acquire(key, limit, max_wait).await {
            Ok(admission) => Ok(admission),
            Err(e) => {
                self.fell_back("limit", &e);
                self.local
                    .acquire(key, local_share(limit, self.share), max_wait)
                    .await
            }
        }
    }

    async fn begin(
        &self,
        record: &RecordKey,
        fingerprint: &RequestFingerprint,
        lease: Duration,
    ) -> Result<Begin, StateError> {
        self.shared.begin(record, fingerprint, lease).await
    }

    async fn complete(
        &self,
        lease: &Lease,
        answer: StoredAnswer,
    ) -> Result<Completion, StateError> {
        self.shared.complete(lease, answer).await
    }

    async fn release(&self, lease: &Lease) -> Result<(), StateError> {
        self.shared.release(lease).await
    }

    async fn pause(
        &self,
        connection: &ConnectionKey,
        duration: Duration,
    ) -> Result<Duration, StateError> {
        let local = self.local.pause(connection, duration).await?;
        match self.shared.pause(connection, duration).await {
            Ok(shared) => Ok(shared.max(local)),
            Err(e) => {
                self.fell_back("pause", &e);
                Ok(local)
            }
        }
    }

    async fn paused_for(&self, connection: &ConnectionKey) -> Result<Option<Duration>, StateError> {
        let local = self.local.paused_for(connection).await?;
        match self.shared.paused_for(connection).await {
            Ok(shared) => Ok(shared.max(local)),
            Err(e) => {
                self.fell_back("pause", &e);
                Ok(local)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::state::redis::store::RedisStore;
    use crate::state::test_redis::{eventually, hub, settings, RedisServer};
    use crate::state::IdempotencyKey;

    #[test]
    fn a_share_scales_rate_and_burst_never_to_zero() {
        let l = Limit {
            per_second: 30.0,
            burst: 10,
        };
        assert_eq!(
            local_share(l, 1.0 / 3.0),
            Limit {
                per_second: 10.0,
                burst: 4
            }
        );
        assert_eq!(local_share(l, 1.0), l);
        assert_eq!(
            local_share(
                Limit {
                    per_second: 1.0,
                    burst: 1
                },
                0.01
            )
            .burst,
            1
        );
    }

    async fn admitted(store: &FallbackStore, tenant: &str, limit: Limit, tries: usize) -> usize {
        let mut n = 0;
        for _ in 0..tries {
            if !store
                .acquire(&LimitKey::Tenant(tenant.into()), limit, Duration::ZERO)
                .await
                .unwrap()
                .is_refused()
            {
                n += 1;
            }
        }
        n
    }

    #[tokio::test]
    async fn limits_fall_back_to_the_local_share_and_return_to_the_shared_one() {
        let mut server = RedisServer::start();
        let settings = settings(&server); // local_share 0.5
        let metrics = ClusterMetrics::new().unwrap();
        let hub = crate::state::redis::RedisHub::connect(settings.clone(), Some(metrics.clone()))
            .await
            .unwrap();
        let store = FallbackStore::new(
            Arc::new(RedisStore::new(hub.clone())),
            MemoryStore::new(),
            settings.local_share,
            Some(metrics.clone()),
        );
        let limit = Limit {
            per_second: 1.0 / 3600.0,
            burst: 10,
        };
        assert_eq!(admitted(&store, "acme", limit, 20).await, 10, "shared");
        assert_eq!(store.local().stats().limit_keys, 0, "nothing local yet");

        server.stop();
        let t = Instant::now();
        // Half of the burst per replica while Redis is away; no error reaches the caller.
        assert_eq!(admitted(&store, "acme", limit, 20).await, 5, "local share");
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        assert!(metrics.fallbacks.with_label_values(&["limit"]).get() >= 20);
        assert_eq!(metrics.redis_up.get(), 0);
        // Idempotency is never served locally: a possible duplicate is worse than a 503.
        let record = crate::state::RecordKey::new("acme", IdempotencyKey::parse(b"k").unwrap());
        let fp = RequestFingerprint::new("POST", "/v1/messages", "desk", b"{}");
        assert!(matches!(
            store.begin(&record, &fp, Duration::from_secs(30)).await,
            Err(StateError::Unavailable { .. })
        ));

        server.restart();
        eventually(Duration::from_secs(10), "shared again", || async {
            hub.is_up()
        })
        .await;
        assert_eq!(metrics.redis_up.get(), 1);
        // The restarted Redis is empty: a fresh shared bucket of the whole burst.
        assert_eq!(
            admitted(&store, "acme", limit, 20).await,
            10,
            "shared again"
        );
        assert!(matches!(
            store.begin(&record, &fp, Duration::from_secs(30)).await,
            Ok(Begin::Started(_))
        ));
    }

    #[tokio::test]
    async fn a_pause_outlives_a_redis_restart_on_the_replica_that_saw_it() {
        let mut server = RedisServer::start();
        let hub = hub(&settings(&server)).await;
        let store = FallbackStore::new(
            Arc::new(RedisStore::new(hub.clone())),
            MemoryStore::new(),
            0.5,
            None,
        );
        let conn = ConnectionKey::new("acme", "desk");
        store.pause(&conn, Duration::from_secs(60)).await.unwrap();
        server.stop();
        let left = store.paused_for(&conn).await.unwrap().unwrap();
        assert!(left > Duration::from_secs(55), "{left:?}");
        // A pause learnt while Redis is down is kept locally.
        let other = ConnectionKey::new("acme", "chat");
        store.pause(&other, Duration::from_secs(30)).await.unwrap();
        server.restart();
        eventually(Duration::from_secs(10), "shared again", || async {
            hub.is_up()
        })
        .await;
        // Redis came back empty; the local record still holds both pauses.
        assert!(store.paused_for(&conn).await.unwrap().unwrap() > Duration::from_secs(50));
        assert!(store.paused_for(&other).await.unwrap().unwrap() > Duration::from_secs(25));
    }
}
