use std::time::Duration;

use bytes::Bytes;
use serde_json::Map;

use super::*;
use crate::api::operation::Vendor;
use crate::cache::{CacheKey, CacheResult, Cached, CachedResponse};
use crate::state::test_redis::{hub, settings, settings_with, RedisServer};

fn desk() -> Connection {
    crate::vendors::test_support::connection(
        Vendor::Libredesk,
        "desk",
        "http://127.0.0.1:9",
        "key",
        Map::new(),
        &[],
    )
}

fn key(conn: &Connection, operation: &'static str, params: &str) -> CacheKey {
    CacheKey::new(conn, operation, params.to_owned(), false)
}

async fn put(cache: &ResponseCache, key: CacheKey) {
    cache
        .store(
            key,
            CachedResponse::new(
                Cached::Body(Bytes::from_static(b"{}")),
                Duration::from_secs(600),
            ),
        )
        .await;
}

/// Whether `key` is served from the cache (a miss refills it, so check each key once).
async fn cached(cache: &ResponseCache, key: CacheKey) -> bool {
    let (_, result) = cache
        .get_or_fetch(key, async {
            Ok(CachedResponse::new(
                Cached::Body(Bytes::new()),
                Duration::from_secs(600),
            ))
        })
        .await;
    result == CacheResult::Hit
}

async fn next(sub: &mut BusSubscription) -> BusEvent {
    tokio::time::timeout(Duration::from_secs(10), sub.recv())
        .await
        .expect("a bus event within 10 s")
        .expect("the bus is open")
}

/// Skip the flushes a fresh subscription reports, return the next invalidation.
async fn next_invalidation(sub: &mut BusSubscription) -> Invalidation {
    loop {
        match next(sub).await {
            BusEvent::Invalidate(i) => return i,
            BusEvent::Flush(FlushReason::Resubscribed) => continue,
            other => panic!("{other:?}"),
        }
    }
}

fn conversation(id: &str) -> Invalidation {
    Invalidation::on(
        "acme",
        "desk",
        CacheChange::Conversation {
            id: Some(id.into()),
        },
    )
}

#[test]
fn the_wire_format_is_plain_json() {
    let envelope = Envelope {
        v: WIRE_VERSION,
        origin: "r1".into(),
        invalidation: Invalidation::on(
            "acme",
            "desk",
            CacheChange::MessageIn {
                conversation: "cv1".into(),
            },
        ),
    };
    let json = serde_json::to_value(&envelope).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"v": 1, "origin": "r1", "invalidation": {
            "scope": "connection", "tenant": "acme", "connection": "desk",
            "change": {"kind": "message_in", "conversation": "cv1"}}})
    );
    let all = serde_json::to_value(Invalidation::All).unwrap();
    assert_eq!(all, serde_json::json!({"scope": "all"}));
    assert_eq!(
        CacheChange::from_write(&cache::Invalidation::Contact(None)),
        Some(CacheChange::Contact { id: None })
    );
    assert_eq!(CacheChange::from_write(&cache::Invalidation::None), None);
}

#[tokio::test]
async fn applying_a_message_drops_what_the_write_changed_on_this_replica() {
    let conn = desk();
    let cache = ResponseCache::new(1000);
    let conversation_key = key(&conn, "conversations.get", "cv1");
    let other_conversation = key(&conn, "conversations.get", "cv2");
    let list = key(&conn, "conversations.list", "limit=20&cursor=");
    let contact = key(&conn, "contacts.get", "ct1");
    let mut messages = key(&conn, "messages.list", "limit=20&cursor=");
    messages.parent = Some("cv1".into());
    for k in [
        &conversation_key,
        &other_conversation,
        &list,
        &contact,
        &messages,
    ] {
        put(&cache, k.clone()).await;
    }
    conversation("cv1").apply(&cache, Some(&conn)).await;
    cache.sync().await;
    assert!(!cached(&cache, conversation_key).await);
    assert!(!cached(&cache, list).await);
    assert!(!cached(&cache, messages).await);
    assert!(cached(&cache, other_conversation.clone()).await);
    assert!(cached(&cache, contact.clone()).await);

    // Keyed purge: entries naming that vendor key only.
    Invalidation::on(
        "acme",
        "desk",
        CacheChange::Keyed {
            params: "ct1".into(),
        },
    )
    .apply(&cache, Some(&conn))
    .await;
    cache.sync().await;
    assert!(!cached(&cache, contact).await);
    assert!(cached(&cache, other_conversation.clone()).await);

    // A connection this replica does not know: everything of that name goes.
    conversation("cv2").apply(&cache, None).await;
    cache.sync().await;
    assert!(!cached(&cache, other_conversation.clone()).await);

    // Another tenant's message never touches acme's entries.
    Invalidation::on("globex", "desk", CacheChange::Connection)
        .apply(&cache, Some(&conn))
        .await;
    cache.sync().await;
    assert!(cached(&cache, other_conversation.clone()).await);

    Invalidation::All.apply(&cache, Some(&conn)).await;
    cache.sync().await;
    assert!(!cached(&cache, other_conversation).await);
}

#[tokio::test]
async fn the_local_bus_tells_the_other_replicas_not_the_sender() {
    let a = LocalBus::new();
    let b = a.join();
    let mut a_sub = a.subscribe();
    let mut b_sub = b.subscribe();
    a.publish(&conversation("cv1")).await.unwrap();
    b.publish(&conversation("cv2")).await.unwrap();
    assert_eq!(next_invalidation(&mut b_sub).await, conversation("cv1"));
    // A skipped its own cv1 and sees B's cv2 first.
    assert_eq!(next_invalidation(&mut a_sub).await, conversation("cv2"));
    assert_eq!(a.backend(), "local");
}

#[tokio::test]
async fn an_invalidation_published_on_one_replica_reaches_another_through_redis() {
    let server = RedisServer::start();
    let settings = settings(&server);
    let (hub_a, hub_b) = (hub(&settings).await, hub(&settings).await);
    let (a, b) = (RedisBus::new(hub_a.clone()), RedisBus::new(hub_b.clone()));
    let mut a_sub = a.subscribe();
    let mut b_sub = b.subscribe();
    for h in [&hub_a, &hub_b] {
        tokio::time::timeout(
            Duration::from_secs(5),
            h.watch_subscribed().wait_for(|s| *s),
        )
        .await
        .unwrap()
        .unwrap();
    }

    // B's cache holds a conversation; A's write changes it.
    let conn = desk();
    let b_cache = ResponseCache::new(100);
    put(&b_cache, key(&conn, "conversations.get", "cv1")).await;
    a.publish(&conversation("cv1")).await.unwrap();
    let received = next_invalidation(&mut b_sub).await;
    assert_eq!(received, conversation("cv1"));
    received.apply(&b_cache, Some(&conn)).await;
    b_cache.sync().await;
    assert!(!cached(&b_cache, key(&conn, "conversations.get", "cv1")).await);

    // A does not hear its own message: B's next one is the first A sees.
    b.publish(&conversation("cv2")).await.unwrap();
    assert_eq!(next_invalidation(&mut a_sub).await, conversation("cv2"));
}

#[tokio::test]
async fn a_lost_subscription_flushes_and_unsent_invalidations_follow_the_outage() {
    let mut server = RedisServer::start();
    // A's own probe would notice the returned Redis only after a minute: the test decides when
    // A finds out (after B has subscribed again), so the order is certain.
    let a_settings = settings_with(&server, |f| f.health_interval_ms = 60_000);
    let b_settings = settings_with(&server, |f| f.key_prefix = a_settings.key_prefix.clone());
    let (hub_a, hub_b) = (hub(&a_settings).await, hub(&b_settings).await);
    let a = RedisBus::new(hub_a.clone());
    let b = RedisBus::new(hub_b.clone());
    let mut b_sub = b.subscribe();
    tokio::time::timeout(
        Duration::from_secs(5),
        hub_b.watch_subscribed().wait_for(|s| *s),
    )
    .await
    .unwrap()
    .unwrap();

    server.stop();
    loop {
        match next(&mut b_sub).await {
            BusEvent::Flush(FlushReason::SubscriptionLost) => break,
            BusEvent::Flush(FlushReason::Resubscribed) => continue,
            other => panic!("{other:?}"),
        }
    }
    // A's write during the outage cannot be sent now; it is kept.
    assert!(a.publish(&conversation("cv1")).await.is_err());
    assert!(a.publish(&conversation("cv2")).await.is_err());
    assert_eq!(a.unsent(), 2);

    server.restart();
    assert_eq!(
        next(&mut b_sub).await,
        BusEvent::Flush(FlushReason::Resubscribed)
    );
    assert!(
        a.publish(&conversation("cv3")).await.is_err(),
        "A still thinks Redis is down"
    );
    assert!(hub_a.check().await);
    // Then A's held invalidations arrive, in order.
    assert_eq!(next_invalidation(&mut b_sub).await, conversation("cv1"));
    assert_eq!(next_invalidation(&mut b_sub).await, conversation("cv2"));
    assert_eq!(next_invalidation(&mut b_sub).await, conversation("cv3"));
    assert_eq!(a.unsent(), 0);
}

#[tokio::test]
async fn an_unreadable_message_flushes_instead_of_guessing() {
    let server = RedisServer::start();
    let hub = hub(&settings(&server)).await;
    let bus = RedisBus::new(hub.clone());
    let mut sub = bus.subscribe();
    tokio::time::timeout(
        Duration::from_secs(5),
        hub.watch_subscribed().wait_for(|s| *s),
    )
    .await
    .unwrap()
    .unwrap();
    let channel = hub.cache_channel();
    hub.call(|mut c| async move {
        redis::cmd("PUBLISH")
            .arg(channel)
            .arg(r#"{"v":2,"origin":"x","invalidation":{"scope":"galaxy"}}"#)
            .query_async::<i64>(&mut c)
            .await
    })
    .await
    .unwrap();
    loop {
        match next(&mut sub).await {
            BusEvent::Flush(FlushReason::Resubscribed) => continue,
            other => {
                assert_eq!(other, BusEvent::Flush(FlushReason::Unreadable));
                break;
            }
        }
    }
}

#[test]
fn unsent_invalidations_overflow_into_one_flush_everything() {
    let mut unsent = Unsent::default();
    for i in 0..MAX_UNSENT {
        unsent.push(conversation(&format!("cv{i}")));
    }
    assert_eq!(unsent.take().len(), MAX_UNSENT);
    for i in 0..=MAX_UNSENT {
        unsent.push(conversation(&format!("cv{i}")));
    }
    assert_eq!(unsent.take(), vec![Invalidation::All]);
    assert!(unsent.is_empty());
}
