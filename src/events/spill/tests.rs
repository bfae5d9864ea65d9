//! The spill against a real `redis-server` that is stopped and started again.

use std::time::{Duration, Instant};

use super::*;
use crate::events::store::tests::suite::{inbox_item, msg, stored, subs, LEASE, T0};
use crate::state::redis::RedisHub;
use crate::state::test_redis::{hub, settings, RedisServer};

async fn spill_store(
    server: &RedisServer,
    dir: &Path,
    metrics: Option<ClusterMetrics>,
) -> (SpillStore, Arc<RedisHub>) {
    let hub = match &metrics {
        Some(m) => RedisHub::connect(settings(server), Some(m.clone()))
            .await
            .unwrap(),
        None => hub(&settings(server)).await,
    };
    let shared = Arc::new(RedisEventStore::new(hub.clone()));
    (SpillStore::open(shared, dir, metrics).await.unwrap(), hub)
}

async fn drained(store: &SpillStore) {
    tokio::time::timeout(
        Duration::from_secs(15),
        store.watch_pending().wait_for(|n| *n == 0),
    )
    .await
    .expect("the spill is forwarded within 15 s")
    .unwrap();
}

#[tokio::test]
async fn events_accepted_while_redis_is_down_are_spilled_and_forwarded_in_order() {
    let mut server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let metrics = ClusterMetrics::new().unwrap();
    let (store, _hub) = spill_store(&server, dir.path(), Some(metrics.clone())).await;
    let direct = stored(store.append(msg("m0", "cv_0"), vec![]).await.unwrap());
    assert!(direct.seq > 0, "Redis up: straight to the shared log");
    assert_eq!(*store.watch_pending().borrow(), 0);

    server.stop();
    let t = Instant::now();
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
    assert_eq!((e1.seq, e2.seq), (0, 0), "accepted into the spill");
    assert_eq!(
        store
            .append(msg("m1", "cv_1"), subs(&["crm"]))
            .await
            .unwrap(),
        Appended::Duplicate {
            id: e1.id.clone(),
            seq: 0
        }
    );
    assert_eq!(
        store.inbox_put(inbox_item("desk", "k1", T0)).await.unwrap(),
        InboxPut::Stored { id: 0 }
    );
    assert_eq!(
        store.inbox_put(inbox_item("desk", "k1", T0)).await.unwrap(),
        InboxPut::Duplicate { id: 0 }
    );
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert_eq!(*store.watch_pending().borrow(), 3);
    assert_eq!(metrics.spill_pending.get(), 3);
    assert_eq!(metrics.fallbacks.with_label_values(&["event"]).get(), 2);
    assert_eq!(metrics.fallbacks.with_label_values(&["inbox"]).get(), 1);
    // Reads need the shared view.
    assert!(matches!(
        store.list("acme", None, &[], 10).await,
        Err(StoreError::Unavailable { .. })
    ));

    server.restart();
    drained(&store).await;
    assert_eq!(metrics.spill_pending.get(), 0);
    // The restarted Redis is empty (no persistence in tests): it holds exactly what was
    // spilled, with the IDs the intake answered with, in the order accepted.
    let events = store.list("acme", None, &[], 10).await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
        [e1.id.clone(), e2.id.clone()]
    );
    assert_eq!(events[0].body, e1.body);
    let due = store.claim_due(T0, 10, LEASE).await.unwrap();
    assert_eq!(due.len(), 1, "cv_1 in order: m1 first");
    assert_eq!(due[0].event.id, e1.id);
    assert_eq!(store.inbox_backlog().await.unwrap().pending, 1);
    // Drained: writes go straight to Redis again.
    let after = stored(store.append(msg("m3", "cv_1"), vec![]).await.unwrap());
    assert!(after.seq > 0);
}

#[tokio::test]
async fn a_spill_left_by_a_stopped_replica_is_forwarded_by_the_next_start() {
    let mut server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (first, hub) = spill_store(&server, dir.path(), None).await;
    server.stop();
    let e1 = stored(
        first
            .append(msg("m1", "cv_1"), subs(&["crm"]))
            .await
            .unwrap(),
    );
    drop(first);
    drop(hub);

    server.restart();
    // The old process's file lock goes with its forwarder task: the next start waits for it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (next, _hub) = loop {
        let hub = crate::state::test_redis::hub(&settings(&server)).await;
        let shared = Arc::new(RedisEventStore::new(hub.clone()));
        match SpillStore::open(shared, dir.path(), None).await {
            Ok(store) => break (store, hub),
            Err(StoreError::Locked(_)) if Instant::now() < deadline => {
                tokio::task::yield_now().await;
            }
            Err(e) => panic!("{e}"),
        }
    };
    drained(&next).await;
    let events = next.list("acme", None, &[], 10).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].id, e1.id);
    assert_eq!(next.deliveries_of(&e1.id).await.unwrap().len(), 1);
}

#[tokio::test]
async fn the_spill_file_is_durable_and_owned_by_one_process() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (store, _hub) = spill_store(&server, dir.path(), None).await;
    assert_eq!(store.path(), dir.path().join(SPILL_FILE));
    let (synchronous, journal) = store
        .inner
        .spill
        .with_conn(|conn| {
            let sync: i64 = conn.pragma_query_value(None, "synchronous", |r| r.get(0))?;
            let journal: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
            Ok((sync, journal))
        })
        .await
        .unwrap();
    assert_eq!((synchronous, journal.as_str()), (2, "wal"));
    assert!(matches!(
        Spill::open(dir.path()),
        Err(StoreError::Locked(_))
    ));
}

#[tokio::test]
async fn connector_state_written_while_redis_is_down_is_kept_and_written_through_later() {
    let mut server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (store, hub) = spill_store(&server, dir.path(), None).await;
    store.state_put("k0", b"before", T0).await.unwrap();
    server.stop();
    // A webhook that teaches a conversation number is not refused for it.
    store.state_put("k1", b"during", T0).await.unwrap();
    assert_eq!(
        store.state_get("k1").await.unwrap(),
        Some(b"during".to_vec())
    );
    assert_eq!(
        store.state_get("k0").await.unwrap(),
        None,
        "unknown, not an error"
    );
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !hub.check().await {
        assert!(Instant::now() < deadline, "Redis back within 10 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    store.state_put("k2", b"after", T0).await.unwrap();
    // Written through: another replica's store sees it.
    let other = RedisEventStore::new(hub.clone());
    assert_eq!(
        other.state_get("k1").await.unwrap(),
        Some(b"during".to_vec())
    );
    assert_eq!(
        other.state_get("k2").await.unwrap(),
        Some(b"after".to_vec())
    );
}
