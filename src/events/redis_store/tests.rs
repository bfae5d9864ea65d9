//! [`RedisEventStore`] against a real `redis-server`: the same behavioural suite as the SQLite
//! store, then what only a shared store can show — several replicas on one Redis.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use http::HeaderMap;
use serde_json::json;
use tokio::sync::watch;

use super::*;
use crate::events::clock::{SystemWallClock, WallClock};
use crate::events::delivery::DeliveryWorker;
use crate::events::model::{EventsSettings, SubscriptionFile, Subscriptions, SubscriptionsFile};
use crate::events::sender::PingoraSender;
use crate::events::store::tests::suite::{msg, ok, stored, subs, LEASE, T0};
use crate::state::redis::RedisHub;
use crate::state::test_redis::{eventually, hub, settings, RedisServer};

/// Keeps the server and the hub alive for the test.
struct Guard {
    _server: RedisServer,
    _hub: Arc<RedisHub>,
}

/// A subscribed hub: its first "resumed" notice is behind it, so a store made now sees
/// only its own and other stores' changes.
async fn subscribed_hub(settings: &crate::state::cluster::ClusterSettings) -> Arc<RedisHub> {
    let hub = hub(settings).await;
    tokio::time::timeout(
        Duration::from_secs(5),
        hub.watch_subscribed().wait_for(|s| *s),
    )
    .await
    .expect("subscribed within 5 s")
    .unwrap();
    hub
}

async fn open() -> (Arc<dyn EventStore>, Guard) {
    let server = RedisServer::start();
    let hub = subscribed_hub(&settings(&server)).await;
    let store: Arc<dyn EventStore> = Arc::new(RedisEventStore::new(hub.clone()));
    (
        store,
        Guard {
            _server: server,
            _hub: hub,
        },
    )
}

mod behaviour {
    use super::open;
    crate::events::store::tests::suite::event_store_suite!(open());
}

/// `n` replicas: each its own hub (connections, subscription) on one deployment prefix.
async fn replicas(server: &RedisServer, n: usize) -> Vec<Arc<RedisEventStore>> {
    let settings = settings(server);
    let mut stores = Vec::new();
    for _ in 0..n {
        stores.push(Arc::new(RedisEventStore::new(
            subscribed_hub(&settings).await,
        )));
    }
    stores
}

#[test]
fn queue_names_split_back_into_tenant_and_subscription() {
    assert_eq!(split_lp("4:acme:crm"), Some(("acme", "crm")));
    assert_eq!(split_lp("3:a:b:c:d"), Some(("a:b", "c:d")));
    assert_eq!(split_lp("9:acme:crm"), None);
    assert_eq!(split_lp("x:acme"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_never_claim_one_delivery_twice() {
    let server = RedisServer::start();
    let stores = replicas(&server, 3).await;
    for i in 0..120 {
        // 40 conversations of 3 messages, plus the same events for an unordered subscriber.
        let mut event = msg(&format!("m{i}"), &format!("cv_{}", i % 40));
        if i % 2 == 0 {
            event.order_key = None;
        }
        stored(stores[i % 3].append(event, subs(&["crm"])).await.unwrap());
    }
    let claimed = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for store in &stores {
        for _ in 0..4 {
            let store = store.clone();
            let claimed = claimed.clone();
            tasks.push(tokio::spawn(async move {
                // Claim and finish until nothing is left; each finish may free the next
                // message of a conversation.
                let mut idle = 0;
                while idle < 20 {
                    let batch = store.claim_due(T0, 7, LEASE).await.unwrap();
                    if batch.is_empty() {
                        idle += 1;
                        tokio::task::yield_now().await;
                        continue;
                    }
                    idle = 0;
                    for d in batch {
                        claimed.lock().unwrap().push((
                            d.id,
                            d.event.order_key.clone(),
                            d.event.seq,
                        ));
                        assert!(store.record_attempt(&d, ok(T0)).await.unwrap());
                    }
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let claimed = claimed.lock().unwrap().clone();
    let mut ids: Vec<u64> = claimed.iter().map(|c| c.0).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), claimed.len(), "a delivery was claimed twice");
    assert_eq!(ids.len(), 120, "every delivery was claimed");
    // Per conversation, claims followed the order the events were stored in.
    let mut last_seq: HashMap<String, u64> = HashMap::new();
    for (_, order_key, seq) in &claimed {
        if let Some(key) = order_key {
            let last = last_seq.entry(key.clone()).or_insert(0);
            assert!(*seq > *last, "{key}: seq {seq} after {last}");
            *last = *seq;
        }
    }
    assert!(stores[0].backlog().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_second_replica_sees_what_the_first_stored() {
    let server = RedisServer::start();
    let stores = replicas(&server, 2).await;
    let (a, b) = (&stores[0], &stores[1]);
    let e1 = stored(a.append(msg("m1", "cv_1"), subs(&["crm"])).await.unwrap());
    let e2 = stored(a.append(msg("m2", "cv_1"), subs(&["crm"])).await.unwrap());
    a.state_put("poll:acme:chat", b"cursor-17", T0)
        .await
        .unwrap();
    // A claims m1 and "dies" holding it.
    let held = a.claim_due(T0, 10, LEASE).await.unwrap();
    assert_eq!(held.len(), 1);

    assert_eq!(
        b.list("acme", None, &[], 10).await.unwrap(),
        vec![e1.clone(), e2.clone()]
    );
    assert_eq!(b.find("acme", &e2.id).await.unwrap(), Some(e2.clone()));
    assert_eq!(b.last_seq("acme").await.unwrap(), Some(e2.seq));
    assert_eq!(
        b.state_get("poll:acme:chat").await.unwrap().as_deref(),
        Some(&b"cursor-17"[..])
    );
    assert!(matches!(
        b.append(msg("m1", "cv_1"), subs(&["crm"])).await.unwrap(),
        Appended::Duplicate { .. }
    ));
    // B cannot take A's claim while its lease lasts; after it, B delivers in order.
    assert!(b.claim_due(T0 + 1, 10, LEASE).await.unwrap().is_empty());
    let taken = b.claim_due(T0 + 30_000, 10, LEASE).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].event.id, e1.id);
    assert!(!a.record_attempt(&held[0], ok(T0 + 30_001)).await.unwrap());
    assert!(b.record_attempt(&taken[0], ok(T0 + 30_001)).await.unwrap());
    assert_eq!(
        b.claim_due(T0 + 30_001, 10, LEASE).await.unwrap()[0]
            .event
            .id,
        e2.id
    );
}

#[tokio::test]
async fn a_store_on_one_replica_wakes_the_others() {
    let server = RedisServer::start();
    let stores = replicas(&server, 2).await;
    let mut b_changes = stores[1].changes();
    b_changes.mark_unchanged();
    stored(stores[0].append(msg("m1", "cv_1"), vec![]).await.unwrap());
    tokio::time::timeout(Duration::from_secs(5), b_changes.changed())
        .await
        .expect("replica B hears of replica A's event within 5 s")
        .unwrap();
}

#[tokio::test]
async fn redis_stopped_means_unavailable_at_once_and_restarted_means_working_again() {
    let mut server = RedisServer::start();
    let store = &replicas(&server, 1).await[0];
    stored(store.append(msg("m1", "cv_1"), vec![]).await.unwrap());
    server.stop();
    let t = Instant::now();
    for _ in 0..3 {
        match store.append(msg("m2", "cv_1"), vec![]).await {
            Err(StoreError::Unavailable {
                backend: "redis", ..
            }) => {}
            other => panic!("{other:?}"),
        }
        assert!(store.claim_due(T0, 10, LEASE).await.is_err());
    }
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    server.restart();
    eventually(Duration::from_secs(10), "the store works again", || async {
        store.append(msg("m3", "cv_1"), vec![]).await.is_ok()
    })
    .await;
}

// ----- three delivery workers, one subscriber ------------------------------------------------

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Every POST a receiver got: headers and body.
type Received = Arc<Mutex<Vec<(HeaderMap, serde_json::Value)>>>;

/// A loopback subscriber that records every POST and answers 200.
async fn receiver() -> (String, Received) {
    let received: Received = Arc::default();
    let app = axum::Router::new()
        .route(
            "/hooks",
            axum::routing::post(
                |axum::extract::State(received): axum::extract::State<Received>,
                 headers: HeaderMap,
                 body: axum::body::Bytes| async move {
                    let body = serde_json::from_slice(&body).unwrap_or(json!(null));
                    received.lock().unwrap().push((headers, body));
                    http::StatusCode::OK
                },
            ),
        )
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (format!("http://{addr}/hooks"), received)
}

fn subscriptions(url: &str) -> Arc<ArcSwap<Subscriptions>> {
    let raw: SubscriptionsFile = [(
        "acme".to_owned(),
        [(
            "crm".to_owned(),
            SubscriptionFile {
                url: url.to_owned(),
                secret: SECRET.to_owned(),
                events: vec!["*".to_owned()],
            },
        )]
        .into(),
    )]
    .into();
    let subs = Subscriptions::try_build(Path::new("c.yaml"), &raw, |_| true).unwrap();
    Arc::new(ArcSwap::from_pointee(subs))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_is_delivered_once_although_three_replicas_run() {
    let server = RedisServer::start();
    let stores = replicas(&server, 3).await;
    let (url, received) = receiver().await;
    let subs = subscriptions(&url);
    let settings = EventsSettings {
        data_dir: std::env::temp_dir(),
        retention: Duration::from_secs(7 * 24 * 3600),
        delivery_timeout: Duration::from_secs(5),
        retry_window: Duration::from_secs(24 * 3600),
        max_in_flight: 4,
        first_retry: Duration::from_secs(5),
        heartbeat: Duration::from_secs(15),
    };
    let (stop, shutdown) = watch::channel(false);
    let mut workers = Vec::new();
    for store in &stores {
        let store: Arc<dyn EventStore> = store.clone();
        let worker = Arc::new(
            DeliveryWorker::new(
                store,
                subs.clone(),
                Arc::new(PingoraSender::new()),
                &settings,
            )
            // Appends on any replica wake every worker through Redis; the idle wait is
            // only a safety net.
            .with_idle_wait(Duration::from_secs(3600)),
        );
        let shutdown = shutdown.clone();
        workers.push(tokio::spawn(async move { worker.run(shutdown).await }));
    }

    let now = SystemWallClock.now_ms();
    let mut appended = Vec::new();
    for i in 0..30 {
        let event = NewEvent {
            tenant: "acme".into(),
            connection: "desk".into(),
            vendor: "libredesk".into(),
            type_: EventType::MessageReceived,
            data: json!({"id": format!("m{i}")}),
            dedup_key: format!("m{i}"),
            order_key: Some(format!("cv_{}", i % 4)),
            created_at: now,
        };
        // Each replica takes some of the intake.
        appended.push(stored(
            stores[i % 3]
                .append(event, vec!["crm".into()])
                .await
                .unwrap(),
        ));
    }
    eventually(Duration::from_secs(30), "30 deliveries", || async {
        received.lock().unwrap().len() >= 30
    })
    .await;
    eventually(Duration::from_secs(10), "nothing pending", || async {
        stores[0].backlog().await.unwrap().is_empty()
    })
    .await;
    stop.send(true).unwrap();
    for w in workers {
        tokio::time::timeout(Duration::from_secs(10), w)
            .await
            .expect("workers stop")
            .unwrap();
    }

    let received = received.lock().unwrap().clone();
    assert_eq!(received.len(), 30, "each event exactly once");
    let mut webhook_ids: Vec<String> = received
        .iter()
        .map(|(h, _)| h["webhook-id"].to_str().unwrap().to_owned())
        .collect();
    webhook_ids.sort();
    webhook_ids.dedup();
    assert_eq!(webhook_ids.len(), 30);
    // In order per conversation.
    for cv in 0..4 {
        let sent: Vec<String> = appended
            .iter()
            .filter(|e| e.order_key.as_deref() == Some(&format!("cv_{cv}")))
            .map(|e| e.id.clone())
            .collect();
        let got: Vec<String> = received
            .iter()
            .map(|(_, b)| b["id"].as_str().unwrap().to_owned())
            .filter(|id| sent.contains(id))
            .collect();
        assert_eq!(got, sent, "cv_{cv}");
    }
    for e in &appended {
        let records = stores[2].deliveries_of(&e.id).await.unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].state, DeliveryState::Delivered);
        assert_eq!(records[0].attempts, 1);
    }
}
