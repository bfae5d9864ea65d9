//! A replica among several: the parts that one gateway process shares with the other replicas
//! of a deployment through Redis or Valkey (issue 15) — the state store, the event store, the
//! cache invalidation bus and the hub that connects them — assembled from the `cluster:`
//! settings ([`crate::state::cluster::ClusterSettings`]).
//!
//! It sits above [`crate::state`] and [`crate::events`] (it builds their Redis-backed stores)
//! and [`crate::cache`] (the bus drops this replica's entries), so none of them imports it.

pub mod bus;

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use crate::events::redis_store::RedisEventStore;
use crate::events::spill::SpillStore;
use crate::events::store::StoreError;
use crate::state::cluster::ClusterSettings;
use crate::state::fallback::FallbackStore;
use crate::state::redis::store::RedisStore;
use crate::state::redis::{ClusterMetrics, Readiness, RedisHub};
use crate::state::{MemoryStore, StateError};
use bus::RedisBus;

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
    pub events: Arc<SpillStore>,
    pub bus: Arc<RedisBus>,
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
}

impl Cluster {
    /// Connect (or start degraded) and open the local spill under `data_dir` (the events
    /// `data_dir`). Spawns the parts' tasks on the current runtime (see
    /// [`crate::state::redis`] for which runtime that must be).
    pub async fn start(
        settings: ClusterSettings,
        data_dir: &Path,
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
        let events = SpillStore::open(
            Arc::new(RedisEventStore::new(hub.clone())),
            data_dir,
            metrics,
        )
        .await?;
        Ok(Cluster {
            state: Arc::new(state),
            events: Arc::new(events),
            bus: Arc::new(RedisBus::new(hub.clone())),
            hub,
        })
    }

    /// For `/readyz`: a replica stays ready when degraded (it serves with local state); the
    /// body says so.
    pub fn readiness(&self) -> Readiness {
        self.hub.readiness()
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::events::store::suite::{msg, stored, subs};
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
        let cluster = Cluster::start(settings(&server), dir.path(), Some(metrics.clone()))
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
        let spilled = stored(
            cluster
                .events
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
            cluster.events.watch_pending().wait_for(|n| *n == 0),
        )
        .await
        .unwrap()
        .unwrap();
        let listed = cluster.events.list("acme", None, &[], 10).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].id, spilled.id);
        assert!(matches!(
            cluster
                .events
                .append(msg("m1", "cv_1"), vec![])
                .await
                .unwrap(),
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
