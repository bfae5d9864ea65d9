//! A replica among several: the parts that one gateway process shares with the other replicas
//! of a deployment through Redis or Valkey (issue 15) — the state store, the event store, the
//! cache invalidation bus and the hub that connects them — assembled from the `cluster:`
//! settings ([`crate::state::cluster::ClusterSettings`]).
//!
//! It sits above [`crate::state`] and [`crate::events`] (it builds their Redis-backed stores)
//! and [`crate::cache`] (the bus drops this replica's entries), so none of them imports it.

pub mod bus;

use std::fmt;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Weak};

use crate::cache::ResponseCache;
use crate::events::redis_store::RedisEventStore;
use crate::events::spill::SpillStore;
use crate::events::store::StoreError;
use crate::snapshot::Snapshot;
use crate::state::cluster::ClusterSettings;
use crate::state::fallback::FallbackStore;
use crate::state::redis::store::RedisStore;
use crate::state::redis::{ClusterMetrics, Readiness, RedisHub};
use crate::state::{MemoryStore, StateError};
use bus::{BusEvent, BusSubscription, Invalidation, InvalidationBus, RedisBus};

/// What one replica of a cluster runs: everything shared goes through Redis, with the
/// degradations of issue 15 built in. Each part implements the seam the single process uses,
/// so the gateway holds trait objects and does not care which it got.
///
/// | part | seam | when Redis is unreachable |
/// |---|---|---|
/// | [`Cluster::state`] | [`crate::state::StateStore`] | limits at `local_share`, pauses local, idempotency `Unavailable` (503) |
/// | [`Cluster::events`] | [`crate::events::store::EventStore`] | intake spills to `<data_dir>/spill.sqlite3`; reads and delivery wait |
/// | [`Cluster::bus`] | [`bus::InvalidationBus`] | publishes are held and resent; subscribers are told to flush |
/// | [`Cluster::hub`] | health, `/readyz`, metrics | [`RedisHub::readiness`] says degraded |
pub struct Cluster {
    pub hub: Arc<RedisHub>,
    pub state: Arc<FallbackStore>,
    /// The event outbox on Redis with its local spill, when a spill folder was given (the
    /// events `data_dir`).
    pub events: Option<Arc<SpillStore>>,
    pub bus: Arc<RedisBus>,
    /// The runtime the cluster's tasks run on, when [`Cluster::launch`] made one.
    runtime: Option<OwnRuntime>,
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster").field("hub", &self.hub).finish()
    }
}

/// Why a replica could not start its cluster parts (never because Redis is down: that only
/// degrades).
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Events(#[from] StoreError),
    /// The runtime for the cluster's tasks could not be made (out of threads or memory).
    #[error("cannot start the cluster runtime: {0}")]
    Runtime(String),
}

/// A tokio runtime owned by the cluster. Dropped without waiting (a gateway may drop its
/// [`Cluster`] from async code, where blocking on the runtime's shutdown is not allowed).
struct OwnRuntime(Option<tokio::runtime::Runtime>);

impl Drop for OwnRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

impl Cluster {
    /// Connect (or start degraded) and, given a `spill_dir` (the events `data_dir`), open the
    /// event store with its local spill there. Spawns the parts' tasks on the current runtime
    /// (see [`crate::state::redis`] for which runtime that must be); [`Cluster::launch`] makes
    /// one.
    pub async fn start(
        settings: ClusterSettings,
        spill_dir: Option<&Path>,
        metrics: Option<ClusterMetrics>,
    ) -> Result<Cluster, ClusterError> {
        let share = settings.local_share;
        let hub = RedisHub::connect(settings, metrics.clone()).await?;
        let state = FallbackStore::new(
            Arc::new(RedisStore::new(hub.clone())),
            MemoryStore::new(),
            share,
            metrics.clone(),
        );
        let events = match spill_dir {
            Some(dir) => Some(Arc::new(
                SpillStore::open(Arc::new(RedisEventStore::new(hub.clone())), dir, metrics).await?,
            )),
            None => None,
        };
        Ok(Cluster {
            state: Arc::new(state),
            events,
            bus: Arc::new(RedisBus::new(hub.clone())),
            hub,
            runtime: None,
        })
    }

    /// [`Cluster::start`] from synchronous code (the gateway's startup, before pingora runs):
    /// the cluster gets its own small runtime, which lives as long as the returned value, so
    /// its tasks (health probe, subscriber, resends, [`Cluster::spawn`]) outlive any caller's
    /// runtime. Blocks for at most the connect and command timeouts (one PING). Callable from
    /// inside a runtime too (tests): the start runs on a thread of its own.
    pub fn launch(
        settings: ClusterSettings,
        spill_dir: Option<&Path>,
        metrics: Option<ClusterMetrics>,
    ) -> Result<Cluster, ClusterError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("switchboard-cluster")
            .enable_all()
            .build()
            .map_err(|e| ClusterError::Runtime(e.to_string()))?;
        let handle = runtime.handle().clone();
        let started = std::thread::scope(|scope| {
            scope
                .spawn(|| handle.block_on(Cluster::start(settings, spill_dir, metrics)))
                .join()
        });
        let mut cluster = match started {
            Ok(result) => result?,
            Err(_) => {
                runtime.shutdown_background();
                return Err(ClusterError::Runtime(
                    "the cluster start panicked".to_owned(),
                ));
            }
        };
        cluster.runtime = Some(OwnRuntime(Some(runtime)));
        Ok(cluster)
    }

    /// Run `task` on the cluster's runtime (or the current one, for a cluster made by
    /// [`Cluster::start`]).
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        match self.runtime.as_ref().and_then(|rt| rt.0.as_ref()) {
            Some(rt) => {
                rt.spawn(task);
            }
            None => {
                tokio::spawn(task);
            }
        }
    }

    /// Start applying the other replicas' invalidations to `replica`'s cache ([`follow`]) on
    /// the cluster's runtime. Holds the replica weakly: the task ends when it is gone.
    pub fn follow<R: Replica>(&self, replica: Weak<R>) {
        self.spawn(follow(self.bus.subscribe(), replica));
    }

    /// For `/readyz`: a replica stays ready when degraded (it serves with local state); the
    /// body says so.
    pub fn readiness(&self) -> Readiness {
        self.hub.readiness()
    }

    /// Whether this replica hears the other replicas' cache invalidations now (its pub/sub
    /// subscription is established). Shown by `/readyz`.
    pub fn subscribed(&self) -> bool {
        *self.hub.watch_subscribed().borrow()
    }

    /// Tell the other replicas what this one changed (it has dropped its own entries
    /// already). While Redis is unreachable the bus keeps the message and sends it when Redis
    /// answers; the other replicas flush their caches meanwhile (their subscriptions are lost
    /// too), so nothing is left to do here.
    pub async fn publish(&self, invalidation: Invalidation) {
        if let Err(e) = self.bus.publish(&invalidation).await {
            tracing::debug!(error = %e, "cache invalidation held for the other replicas");
        }
    }
}

/// What a replica's bus follower works on: its response cache and its active config.
pub trait Replica: Send + Sync + 'static {
    fn cache(&self) -> &ResponseCache;
    fn snapshot(&self) -> Arc<Snapshot>;
}

/// Apply what the other replicas publish to this replica's cache, and flush it whenever
/// invalidations may have been missed (subscription lost or resumed, fell behind, unreadable).
/// Ends with the bus, or when the replica is gone.
pub async fn follow<R: Replica + ?Sized>(mut subscription: BusSubscription, replica: Weak<R>) {
    while let Some(event) = subscription.recv().await {
        let Some(replica) = replica.upgrade() else {
            return;
        };
        match event {
            BusEvent::Invalidate(invalidation) => {
                let snapshot = replica.snapshot();
                let conn = match &invalidation {
                    Invalidation::Connection {
                        tenant, connection, ..
                    } => snapshot.connection(tenant, connection),
                    Invalidation::All => None,
                };
                invalidation
                    .apply(replica.cache(), conn.map(Arc::as_ref))
                    .await;
            }
            BusEvent::Flush(reason) => {
                tracing::info!(
                    reason = reason.as_str(),
                    "flushing the response cache: invalidations from other replicas may have been missed"
                );
                replica.cache().invalidate_all();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::events::store::tests::suite::{msg, stored, subs};
    use crate::events::store::{Appended, EventStore};
    use crate::state::test_redis::{eventually, settings, RedisServer};
    use crate::state::StateStore;
    use crate::state::{Begin, IdempotencyKey, Limit, LimitKey, RecordKey, RequestFingerprint};
    use bus::{BusEvent, CacheChange, FlushReason, Invalidation, InvalidationBus};

    async fn flush(sub: &mut bus::BusSubscription) -> FlushReason {
        match tokio::time::timeout(Duration::from_secs(10), sub.recv()).await {
            Ok(Some(BusEvent::Flush(reason))) => reason,
            other => panic!("expected a flush, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_replica_degrades_as_documented_and_resumes_when_redis_returns() {
        let mut server = RedisServer::start();
        let dir = tempfile::tempdir().unwrap();
        let metrics = ClusterMetrics::new().unwrap();
        let cluster = Cluster::start(settings(&server), Some(dir.path()), Some(metrics.clone()))
            .await
            .unwrap();
        tokio::time::timeout(
            Duration::from_secs(5),
            cluster.hub.watch_subscribed().wait_for(|s| *s),
        )
        .await
        .unwrap()
        .unwrap();
        let mut sub = cluster.bus.subscribe();
        assert_eq!(cluster.readiness(), Readiness::Shared);
        assert_eq!(metrics.redis_up.get(), 1);
        let limit = Limit {
            per_second: 1.0 / 3600.0,
            burst: 4,
        };
        let tenant = LimitKey::Tenant("acme".into());
        let record = RecordKey::new("acme", IdempotencyKey::parse(b"send-1").unwrap());
        let fp = RequestFingerprint::new("POST", "/v1/messages", "desk", b"{}");
        let lease = Duration::from_secs(30);

        server.stop();
        assert_eq!(flush(&mut sub).await, FlushReason::SubscriptionLost);
        let t = Instant::now();
        // Limits: the local share (half of 4), never an error.
        let mut allowed = 0;
        for _ in 0..6 {
            if !cluster
                .state
                .acquire(&tenant, limit, Duration::ZERO)
                .await
                .unwrap()
                .is_refused()
            {
                allowed += 1;
            }
        }
        assert_eq!(allowed, 2);
        // Idempotency-Key requests: refused (503), never a possible duplicate.
        assert!(matches!(
            cluster.state.begin(&record, &fp, lease).await,
            Err(StateError::Unavailable { .. })
        ));
        // Events: accepted into the local spill.
        let events = cluster.events.clone().unwrap();
        let spilled = stored(
            events
                .append(msg("m1", "cv_1"), subs(&["crm"]))
                .await
                .unwrap(),
        );
        assert_eq!(spilled.seq, 0);
        // Invalidations: held for later.
        let inv = Invalidation::on("acme", "desk", CacheChange::Connection);
        assert!(cluster.bus.publish(&inv).await.is_err());
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "no waiting: {:?}",
            t.elapsed()
        );
        assert!(matches!(cluster.readiness(), Readiness::Degraded { .. }));
        assert_eq!(metrics.redis_up.get(), 0);

        server.restart();
        assert_eq!(flush(&mut sub).await, FlushReason::Resubscribed);
        eventually(Duration::from_secs(10), "shared state resumes", || async {
            cluster.hub.is_up()
        })
        .await;
        assert_eq!(cluster.readiness(), Readiness::Shared);
        assert!(matches!(
            cluster.state.begin(&record, &fp, lease).await,
            Ok(Begin::Started(_))
        ));
        tokio::time::timeout(
            Duration::from_secs(10),
            events.watch_pending().wait_for(|n| *n == 0),
        )
        .await
        .unwrap()
        .unwrap();
        let listed = events.list("acme", None, &[], 10).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].id, spilled.id);
        assert!(matches!(
            events.append(msg("m1", "cv_1"), vec![]).await.unwrap(),
            Appended::Duplicate { .. }
        ));
        eventually(
            Duration::from_secs(10),
            "held invalidations sent",
            || async { cluster.bus.unsent() == 0 },
        )
        .await;
        assert_eq!(metrics.subscription_losses.get(), 1);
    }
}
