//! [`RedisStore`] and [`RedisHub`] against a real `redis-server`: several store instances on
//! one server stand for several replicas.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::store::RedisStore;
use super::{HubEvent, Readiness, RedisHub};
use crate::state::test_redis::{eventually, hub, settings, settings_with, RedisServer};
use crate::state::{
    Admission, Begin, Completion, ConnectionKey, IdempotencyKey, Lease, Limit, LimitKey, RecordKey,
    RequestFingerprint, StateError, StateStore, StoredAnswer,
};

const LEASE: Duration = Duration::from_secs(30);

/// `n` replicas of one deployment (same prefix), each with its own hub and connections.
async fn replicas(server: &RedisServer, n: usize) -> Vec<RedisStore> {
    let settings = settings(server);
    let mut stores = Vec::new();
    for _ in 0..n {
        stores.push(RedisStore::new(hub(&settings).await));
    }
    stores
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

async fn started(store: &RedisStore, r: &RecordKey, f: &RequestFingerprint) -> Lease {
    match store.begin(r, f, LEASE).await.unwrap() {
        Begin::Started(lease) => lease,
        other => panic!("expected Started, got {other:?}"),
    }
}

/// Redis's own clock, in microseconds (to measure windows on the clock the limits use).
async fn redis_micros(store: &RedisStore) -> u64 {
    let (s, us): (u64, u64) = store
        .hub()
        .call(|mut c| async move { redis::cmd("TIME").query_async(&mut c).await })
        .await
        .unwrap();
    s * 1_000_000 + us
}

// ----- limits ------------------------------------------------------------------------------

#[tokio::test]
async fn a_burst_is_admitted_then_refused_like_gcra() {
    let server = RedisServer::start();
    let store = &replicas(&server, 1).await[0];
    // One request an hour refills nothing during the test: the answers are exact.
    let limit = Limit {
        per_second: 1.0 / 3600.0,
        burst: 3,
    };
    let mut remaining = Vec::new();
    for _ in 0..3 {
        match store
            .acquire(&tenant("acme"), limit, Duration::ZERO)
            .await
            .unwrap()
        {
            Admission::Allowed {
                remaining: r,
                reset,
            } => {
                remaining.push(r);
                assert!(reset <= Duration::from_secs(3 * 3600));
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(remaining, [2, 1, 0]);
    match store
        .acquire(&tenant("acme"), limit, Duration::ZERO)
        .await
        .unwrap()
    {
        Admission::Refused { retry_after, reset } => {
            // The next slot is one interval after the first admission (minus the test's own
            // elapsed time); the bucket is full again after three intervals.
            assert!(retry_after <= Duration::from_secs(3600), "{retry_after:?}");
            assert!(retry_after > Duration::from_secs(3590), "{retry_after:?}");
            assert!(reset > Duration::from_secs(3 * 3600 - 10), "{reset:?}");
        }
        other => panic!("{other:?}"),
    }
    // Another tenant has its own bucket.
    assert!(!store
        .acquire(&tenant("globex"), limit, Duration::ZERO)
        .await
        .unwrap()
        .is_refused());
    // The key lives exactly as long as it matters: PTTL ≈ 3 intervals.
    let ttl: i64 = store
        .hub()
        .call(|mut c| {
            let key = store.limit_key(&tenant("acme"));
            async move { redis::cmd("PTTL").arg(key).query_async(&mut c).await }
        })
        .await
        .unwrap();
    assert!(
        (3 * 3600 * 1000 - 10_000..=3 * 3600 * 1000).contains(&ttl),
        "{ttl}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_share_one_limit_exactly() {
    let server = RedisServer::start();
    let stores = replicas(&server, 3).await;
    let limit = Limit {
        per_second: 1.0 / 3600.0,
        burst: 50,
    };
    // 3 replicas × 4 concurrent clients × 25 requests = 300 tries at a burst of 50.
    let mut tasks = Vec::new();
    for store in &stores {
        for _ in 0..4 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut allowed = 0u32;
                for _ in 0..25 {
                    if !store
                        .acquire(&tenant("acme"), limit, Duration::ZERO)
                        .await
                        .unwrap()
                        .is_refused()
                    {
                        allowed += 1;
                    }
                }
                allowed
            }));
        }
    }
    let mut allowed = 0;
    for t in tasks {
        allowed += t.await.unwrap();
    }
    assert_eq!(allowed, 50, "one shared bucket, not one per replica");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rate_holds_within_ten_percent_across_three_replicas() {
    let server = RedisServer::start();
    let stores = replicas(&server, 3).await;
    let limit = Limit {
        per_second: 50.0,
        burst: 5,
    };
    let started = redis_micros(&stores[0]).await;
    let window_us = 1_500_000;
    let mut tasks = Vec::new();
    for store in &stores {
        for _ in 0..3 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut allowed = 0u64;
                loop {
                    let a = store
                        .acquire(&tenant("acme"), limit, Duration::ZERO)
                        .await
                        .unwrap();
                    if !a.is_refused() {
                        allowed += 1;
                    }
                    if redis_micros(&store).await - started >= window_us {
                        return allowed;
                    }
                }
            }));
        }
    }
    let mut allowed = 0;
    for t in tasks {
        allowed += t.await.unwrap();
    }
    // Measured on Redis's clock: the window the limit actually saw.
    let elapsed = (redis_micros(&stores[0]).await - started) as f64 / 1e6;
    let expected = 5.0 + 50.0 * elapsed;
    let ratio = allowed as f64 / expected;
    assert!(
        (0.9..=1.1).contains(&ratio),
        "{allowed} admitted in {elapsed:.3} s, expected {expected:.0} (±10 %)"
    );
}

#[tokio::test]
async fn a_vendor_budget_reserves_slots_in_line() {
    let server = RedisServer::start();
    let stores = replicas(&server, 2).await;
    let key = LimitKey::VendorBudget(ConnectionKey::new("acme", "desk"));
    // One call per 100 s, burst 1, wait up to 500 s: departures at 0, 100, …, 500 s.
    let limit = Limit {
        per_second: 0.01,
        burst: 1,
    };
    let mut departures = Vec::new();
    let mut refused = 0;
    for i in 0..10 {
        let store = &stores[i % 2];
        match store
            .acquire(&key, limit, Duration::from_secs(500))
            .await
            .unwrap()
        {
            Admission::Allowed { .. } => departures.push(0),
            Admission::Reserved { wait, .. } => departures.push(wait.as_secs_f64().round() as u64),
            Admission::Refused { retry_after, .. } => {
                assert!(retry_after > Duration::from_secs(500));
                refused += 1;
            }
        }
    }
    assert_eq!(departures, [0, 100, 200, 300, 400, 500]);
    assert_eq!(refused, 4, "refused callers take nothing");
}

// ----- idempotency -------------------------------------------------------------------------

#[tokio::test]
async fn a_key_started_on_one_replica_replays_on_another() {
    let server = RedisServer::start();
    let stores = replicas(&server, 2).await;
    let (a, b) = (&stores[0], &stores[1]);
    let r = record("acme", "send-1");
    let lease = started(a, &r, &fp("hi")).await;
    match b.begin(&r, &fp("hi"), LEASE).await.unwrap() {
        Begin::InFlight { lease_remaining } => {
            assert!(lease_remaining <= LEASE && lease_remaining > LEASE - Duration::from_secs(5))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        b.begin(&r, &fp("bye"), LEASE).await.unwrap(),
        Begin::Mismatch
    );
    assert_eq!(
        a.complete(&lease, answer(201, "{\"id\":\"m1\"}"))
            .await
            .unwrap(),
        Completion::Stored
    );
    for store in [a, b] {
        match store.begin(&r, &fp("hi"), LEASE).await.unwrap() {
            Begin::Replay(stored) => assert_eq!(stored, answer(201, "{\"id\":\"m1\"}")),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        b.begin(&r, &fp("bye"), LEASE).await.unwrap(),
        Begin::Mismatch
    );
    // Kept 24 h.
    let ttl: i64 = a
        .hub()
        .call(|mut c| {
            let key = a.record_key(&r);
            async move { redis::cmd("PTTL").arg(key).query_async(&mut c).await }
        })
        .await
        .unwrap();
    assert!(ttl > 24 * 3600 * 1000 - 60_000, "{ttl}");
    // Keys are per tenant.
    started(b, &record("globex", "send-1"), &fp("hi")).await;
}

#[tokio::test]
async fn server_errors_release_and_stale_leases_change_nothing() {
    let server = RedisServer::start();
    let stores = replicas(&server, 2).await;
    let (a, b) = (&stores[0], &stores[1]);
    for status in [500, 503, 429] {
        let r = record("acme", &format!("k{status}"));
        let lease = started(a, &r, &fp("hi")).await;
        assert_eq!(
            a.complete(&lease, answer(status, "{}")).await.unwrap(),
            Completion::Released
        );
        // The client may retry, on any replica.
        started(b, &r, &fp("hi")).await;
    }
    let r = record("acme", "k");
    let first = started(a, &r, &fp("hi")).await;
    a.release(&first).await.unwrap();
    let second = started(b, &r, &fp("hi")).await;
    // The first holder's late release or completion must not touch the second's lock.
    a.release(&first).await.unwrap();
    assert_eq!(
        a.complete(&first, answer(201, "{}")).await.unwrap(),
        Completion::LeaseLost
    );
    assert!(matches!(
        a.begin(&r, &fp("hi"), LEASE).await.unwrap(),
        Begin::InFlight { .. }
    ));
    assert_eq!(
        b.complete(&second, answer(201, "{}")).await.unwrap(),
        Completion::Stored
    );
    // Releasing a completed record forgets nothing.
    b.release(&second).await.unwrap();
    assert!(matches!(
        a.begin(&r, &fp("hi"), LEASE).await.unwrap(),
        Begin::Replay(_)
    ));
}

#[tokio::test]
async fn a_dead_holder_blocks_its_key_only_for_the_lease() {
    let server = RedisServer::start();
    let stores = replicas(&server, 2).await;
    let r = record("acme", "k");
    let short = Duration::from_millis(150);
    let dead = match stores[0].begin(&r, &fp("hi"), short).await.unwrap() {
        Begin::Started(l) => l,
        other => panic!("{other:?}"),
    };
    // The other replica takes over once the lease has run out, not before.
    let taken = Arc::new(tokio::sync::Mutex::new(None));
    eventually(Duration::from_secs(5), "the lease expires", || {
        let taken = taken.clone();
        let b = stores[1].clone();
        let r = r.clone();
        async move {
            match b.begin(&r, &fp("hi"), LEASE).await.unwrap() {
                Begin::Started(l) => {
                    *taken.lock().await = Some(l);
                    true
                }
                Begin::InFlight { .. } => false,
                other => panic!("{other:?}"),
            }
        }
    })
    .await;
    let taken = taken.lock().await.take().unwrap();
    assert_ne!(dead.token, taken.token);
    assert_eq!(
        stores[0].complete(&dead, answer(201, "{}")).await.unwrap(),
        Completion::LeaseLost
    );
    assert_eq!(
        stores[1].complete(&taken, answer(201, "{}")).await.unwrap(),
        Completion::Stored
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_begins_on_three_replicas_start_exactly_one() {
    let server = RedisServer::start();
    let stores = replicas(&server, 3).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(51));
    let tasks: Vec<_> = (0..51)
        .map(|i| {
            let store = stores[i % 3].clone();
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
    let (mut started, mut in_flight) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Begin::Started(_) => started += 1,
            Begin::InFlight { .. } => in_flight += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((started, in_flight), (1, 50));
}

#[tokio::test]
async fn an_out_of_memory_redis_refuses_the_answer_and_releases_the_key() {
    let server = RedisServer::start();
    let store = &replicas(&server, 1).await[0];
    let r = record("acme", "k");
    let lease = started(store, &r, &fp("hi")).await;
    assert!(server
        .command(&["CONFIG", "SET", "maxmemory", "1"])
        .starts_with("+OK"));
    // The write script is refused before it runs (its shebang), not halfway through.
    match store.complete(&lease, answer(201, "{}")).await {
        Err(StateError::CapacityExceeded(_)) => {}
        other => panic!("{other:?}"),
    }
    assert!(
        store.hub().is_up(),
        "a full Redis is not an unreachable one"
    );
    assert!(server
        .command(&["CONFIG", "SET", "maxmemory", "0"])
        .starts_with("+OK"));
    // The failed completion released the key (release.lua may run out of memory): a retry runs.
    started(store, &r, &fp("hi")).await;
}

// ----- pauses ------------------------------------------------------------------------------

#[tokio::test]
async fn a_pause_on_one_replica_holds_on_all_and_only_grows() {
    let server = RedisServer::start();
    let stores = replicas(&server, 2).await;
    let conn = ConnectionKey::new("acme", "desk");
    assert_eq!(stores[1].paused_for(&conn).await.unwrap(), None);
    assert_eq!(
        stores[0]
            .pause(&conn, Duration::from_secs(60))
            .await
            .unwrap(),
        Duration::from_secs(60)
    );
    let left = stores[1].paused_for(&conn).await.unwrap().unwrap();
    assert!(left <= Duration::from_secs(60) && left > Duration::from_secs(55));
    let kept = stores[1]
        .pause(&conn, Duration::from_secs(2))
        .await
        .unwrap();
    assert!(
        kept > Duration::from_secs(55),
        "a shorter pause changes nothing"
    );
    assert_eq!(
        stores[1]
            .pause(&conn, Duration::from_secs(90))
            .await
            .unwrap(),
        Duration::from_secs(90)
    );
    assert_eq!(
        stores[0]
            .paused_for(&ConnectionKey::new("acme", "other"))
            .await
            .unwrap(),
        None
    );
}

// ----- outages -----------------------------------------------------------------------------

fn is_unavailable(e: &StateError) -> bool {
    matches!(
        e,
        StateError::Unavailable {
            backend: "redis",
            ..
        }
    )
}

#[tokio::test]
async fn redis_stopped_means_unavailable_at_once_and_restarted_means_shared_again() {
    let mut server = RedisServer::start();
    let store = &replicas(&server, 1).await[0];
    let limit = Limit {
        per_second: 1.0,
        burst: 5,
    };
    store
        .acquire(&tenant("acme"), limit, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(store.hub().readiness(), Readiness::Shared);
    server.stop();

    // Every call answers within its bound — never a hang — and says Unavailable.
    for _ in 0..3 {
        let t = Instant::now();
        let e = store
            .acquire(&tenant("acme"), limit, Duration::ZERO)
            .await
            .unwrap_err();
        assert!(is_unavailable(&e), "{e}");
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        let e = store
            .begin(&record("acme", "k"), &fp("hi"), LEASE)
            .await
            .unwrap_err();
        assert!(is_unavailable(&e), "{e}");
    }
    assert!(!store.hub().is_up());
    match store.hub().readiness() {
        Readiness::Degraded { reason } => {
            assert!(reason.starts_with("redis "), "{reason}");
            assert!(!reason.contains("127.0.0.1"), "no address: {reason}");
        }
        other => panic!("{other:?}"),
    }

    server.restart();
    eventually(Duration::from_secs(10), "shared state resumes", || async {
        store
            .acquire(&tenant("acme"), limit, Duration::ZERO)
            .await
            .is_ok()
    })
    .await;
    assert!(store.hub().is_up());
    // The scripts were flushed with the old server: EVALSHA falls back to EVAL by itself.
    let lease = started(store, &record("acme", "k"), &fp("hi")).await;
    assert_eq!(
        store.complete(&lease, answer(201, "{}")).await.unwrap(),
        Completion::Stored
    );
}

#[tokio::test]
async fn a_hung_redis_answers_unavailable_within_the_command_timeout() {
    let server = RedisServer::start();
    let settings = settings_with(&server, |f| f.command_timeout_ms = 1_500);
    let store = RedisStore::new(hub(&settings).await);
    let conn = ConnectionKey::new("acme", "desk");
    assert_eq!(store.paused_for(&conn).await.unwrap(), None);
    server.freeze();
    let t = Instant::now();
    let e = store.paused_for(&conn).await.unwrap_err();
    let took = t.elapsed();
    assert!(is_unavailable(&e), "{e}");
    assert!(took < Duration::from_secs(5), "bounded: {took:?}");
    assert!(e.to_string().contains("no answer within 1500 ms"), "{e}");
    // Known down: the next call does not wait for the timeout again.
    let t = Instant::now();
    assert!(store.paused_for(&conn).await.is_err());
    assert!(
        t.elapsed() < Duration::from_millis(750),
        "{:?}",
        t.elapsed()
    );
    server.thaw();
    eventually(Duration::from_secs(10), "redis answers again", || async {
        store.paused_for(&conn).await.is_ok()
    })
    .await;
}

#[tokio::test]
async fn a_hub_started_while_redis_is_down_starts_degraded_and_recovers() {
    let mut server = RedisServer::start();
    let settings = settings(&server);
    server.stop();
    let t = Instant::now();
    let hub = RedisHub::connect(settings, None).await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert!(!hub.is_up());
    let mut up = hub.watch_up();
    server.restart();
    tokio::time::timeout(Duration::from_secs(10), up.wait_for(|up| *up))
        .await
        .expect("up within 10 s")
        .unwrap();
}

async fn next(events: &mut tokio::sync::broadcast::Receiver<HubEvent>) -> HubEvent {
    tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("an event within 5 s")
        .unwrap()
}

// ----- pub/sub -----------------------------------------------------------------------------

#[tokio::test]
async fn the_subscriber_reports_loss_and_resumption() {
    let mut server = RedisServer::start();
    let settings = settings(&server);
    let hub = hub(&settings).await;
    let mut events = hub.listen();
    let mut subscribed = hub.watch_subscribed();
    tokio::time::timeout(Duration::from_secs(5), subscribed.wait_for(|s| *s))
        .await
        .unwrap()
        .unwrap();
    // A message published by anyone on the channel arrives.
    let channel = hub.cache_channel();
    let publish = |payload: &'static str| {
        let channel = channel.clone();
        let hub = hub.clone();
        async move {
            hub.call(|mut c| async move {
                redis::cmd("PUBLISH")
                    .arg(channel)
                    .arg(payload)
                    .query_async::<i64>(&mut c)
                    .await
            })
            .await
            .unwrap()
        }
    };
    assert_eq!(publish("hello").await, 1);
    let mut seen = next(&mut events).await;
    if seen == HubEvent::Resumed {
        seen = next(&mut events).await;
    }
    assert_eq!(
        seen,
        HubEvent::Message {
            channel: Arc::from(channel.as_str()),
            payload: Bytes::from_static(b"hello")
        }
    );
    server.stop();
    assert_eq!(next(&mut events).await, HubEvent::Lost);
    server.restart();
    assert_eq!(next(&mut events).await, HubEvent::Resumed);
    assert!(*hub.watch_subscribed().borrow());
}
