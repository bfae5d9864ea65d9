//! The demo's built-in subscriber: what an app's webhook endpoint should do, in a few lines.
//!
//! It verifies each delivery's Standard Webhooks signature (and the timestamp, within five
//! minutes), answers `401` to anything unsigned or tampered with, prints one line per event, and
//! treats `webhook-id` as the idempotency key: a redelivery (at least once means "maybe twice")
//! is acknowledged and printed as a duplicate, not processed again.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;

use super::clock::WallClock;
use super::model::Event;
use super::signing::{verify_standard, SigningSecret, WEBHOOK_ID};

/// Accepted distance between a delivery's `webhook-timestamp` and now.
pub const TOLERANCE_SECS: i64 = 300;

/// How many delivery IDs are remembered for duplicate detection.
const REMEMBERED: usize = 10_000;

/// Where printed lines go (stdout in the demo, a buffer in tests).
pub type Printer = Arc<dyn Fn(String) + Send + Sync>;

pub struct DemoReceiver {
    secret: SigningSecret,
    clock: Arc<dyn WallClock>,
    print: Printer,
    seen: Mutex<(HashSet<String>, VecDeque<String>)>,
}

impl DemoReceiver {
    pub fn new(
        secret: SigningSecret,
        clock: Arc<dyn WallClock>,
        print: Printer,
    ) -> Arc<DemoReceiver> {
        Arc::new(DemoReceiver {
            secret,
            clock,
            print,
            seen: Mutex::new((HashSet::new(), VecDeque::new())),
        })
    }

    /// `POST /` and `POST /events` both receive.
    pub fn router(self: &Arc<Self>) -> axum::Router {
        axum::Router::new()
            .route("/", axum::routing::post(receive))
            .route("/events", axum::routing::post(receive))
            .with_state(self.clone())
    }

    /// Handle one delivery: the status to answer.
    pub fn handle(&self, headers: &HeaderMap, body: &[u8]) -> StatusCode {
        let now = self.clock.now_ms().div_euclid(1000);
        if let Err(e) = verify_standard(&self.secret, headers, body, now, TOLERANCE_SECS) {
            (self.print)(format!("[receiver] refused a delivery: {e}"));
            return StatusCode::UNAUTHORIZED;
        }
        let Ok(event) = serde_json::from_slice::<Event>(body) else {
            (self.print)("[receiver] refused a signed body that is not an event".to_owned());
            return StatusCode::BAD_REQUEST;
        };
        let delivery = headers
            .get(WEBHOOK_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let fresh = {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            let (set, order) = &mut *seen;
            let fresh = set.insert(delivery.clone());
            if fresh {
                order.push_back(delivery);
                if order.len() > REMEMBERED {
                    if let Some(old) = order.pop_front() {
                        set.remove(&old);
                    }
                }
            }
            fresh
        };
        let what = if fresh { "" } else { " (duplicate, ignored)" };
        let resource = event.data.get("id").and_then(|v| v.as_str()).unwrap_or("-");
        (self.print)(format!(
            "[receiver] {} {} {} {}{what}: {}",
            event.type_,
            event.id,
            event.connection,
            resource,
            String::from_utf8_lossy(body)
        ));
        StatusCode::NO_CONTENT
    }
}

async fn receive(
    State(receiver): State<Arc<DemoReceiver>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    receiver.handle(&headers, &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::clock::ManualWallClock;
    use crate::events::signing::webhook_headers;
    use serde_json::json;

    const NOW: i64 = 1_750_000_000;

    fn receiver() -> (Arc<DemoReceiver>, Arc<Mutex<Vec<String>>>, SigningSecret) {
        let (secret, _) = SigningSecret::generate();
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = lines.clone();
        let r = DemoReceiver::new(
            secret.clone(),
            Arc::new(ManualWallClock::new(NOW * 1000)),
            Arc::new(move |l| sink.lock().unwrap().push(l)),
        );
        (r, lines, secret)
    }

    fn signed(secret: &SigningSecret, id: &str, ts: i64, body: &[u8]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in webhook_headers(secret, id, ts, body).unwrap() {
            h.insert(k, v);
        }
        h
    }

    fn body() -> Vec<u8> {
        serde_json::to_vec(&json!({
            "id": "evt_0123456789abcdefghij", "type": "message.received", "created_at": "2025-06-15T10:31:00.000Z",
            "connection": "desk", "vendor": "libredesk", "data": {"id": "msg_x", "text": "hello"}
        }))
        .unwrap()
    }

    #[test]
    fn prints_a_verified_event_once_and_flags_redeliveries() {
        let (r, lines, secret) = receiver();
        let body = body();
        let h = signed(&secret, "evt_0123456789abcdefghij", NOW, &body);
        assert_eq!(r.handle(&h, &body), StatusCode::NO_CONTENT);
        let h = signed(&secret, "evt_0123456789abcdefghij", NOW + 5, &body);
        assert_eq!(r.handle(&h, &body), StatusCode::NO_CONTENT);
        let lines = lines.lock().unwrap();
        assert!(
            lines[0]
                .starts_with("[receiver] message.received evt_0123456789abcdefghij desk msg_x: {"),
            "{}",
            lines[0]
        );
        assert!(!lines[0].contains("duplicate"));
        assert!(lines[1].contains("(duplicate, ignored)"));
    }

    #[test]
    fn refuses_unsigned_stale_and_foreign_deliveries() {
        let (r, lines, secret) = receiver();
        let body = body();
        assert_eq!(r.handle(&HeaderMap::new(), &body), StatusCode::UNAUTHORIZED);
        let stale = signed(&secret, "evt_0123456789abcdefghij", NOW - 301, &body);
        assert_eq!(r.handle(&stale, &body), StatusCode::UNAUTHORIZED);
        let (other, _) = SigningSecret::generate();
        let foreign = signed(&other, "evt_0123456789abcdefghij", NOW, &body);
        assert_eq!(r.handle(&foreign, &body), StatusCode::UNAUTHORIZED);
        let not_event = b"{\"hello\":1}";
        let h = signed(&secret, "evt_x", NOW, not_event);
        assert_eq!(r.handle(&h, not_event), StatusCode::BAD_REQUEST);
        assert!(lines.lock().unwrap().iter().all(|l| l.contains("refused")));
    }

    /// The whole push loop on loopback: store → worker → signed POST → this receiver.
    #[tokio::test]
    async fn the_worker_delivers_to_the_demo_receiver() {
        use crate::events::clock::SystemWallClock;
        use crate::events::delivery::DeliveryWorker;
        use crate::events::model::{
            EventType, EventsSettings, NewEvent, SubscriptionFile, Subscriptions,
        };
        use crate::events::sender::PingoraSender;
        use crate::events::store::{EventStore, SqliteStore};
        use std::path::Path;
        use std::time::Duration;

        let (secret, text) = SigningSecret::generate();
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = lines.clone();
        let r = DemoReceiver::new(
            secret,
            Arc::new(SystemWallClock),
            Arc::new(move |l| sink.lock().unwrap().push(l)),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = r.router();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

        let raw = [(
            "acme".to_owned(),
            [(
                "demo".to_owned(),
                SubscriptionFile {
                    url: format!("http://{addr}/events"),
                    secret: text,
                    events: vec!["*".into()],
                },
            )]
            .into(),
        )]
        .into();
        let subs = Subscriptions::try_build(Path::new("c.yaml"), &raw, |_| true).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
        let settings = EventsSettings {
            data_dir: dir.path().to_path_buf(),
            retention: Duration::from_secs(3600),
            delivery_timeout: Duration::from_secs(5),
            retry_window: Duration::from_secs(3600),
            max_in_flight: 4,
            first_retry: Duration::from_secs(5),
            heartbeat: Duration::from_secs(15),
        };
        let worker = DeliveryWorker::new(
            store.clone(),
            Arc::new(arc_swap::ArcSwap::from_pointee(subs)),
            Arc::new(PingoraSender::new()),
            &settings,
        );
        let event = NewEvent {
            tenant: "acme".into(),
            connection: "desk".into(),
            vendor: "libredesk".into(),
            type_: EventType::MessageReceived,
            data: json!({"id": "msg_live"}),
            dedup_key: "k".into(),
            order_key: None,
            created_at: SystemWallClock.now_ms(),
        };
        store.append(event, vec!["demo".into()]).await.unwrap();
        let reports = worker.run_once().await.unwrap();
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].status, Some(204));
        let lines = lines.lock().unwrap();
        assert_eq!(lines.len(), 1);
        assert!(
            lines[0].contains("message.received") && lines[0].contains("msg_live"),
            "{}",
            lines[0]
        );
    }
}
