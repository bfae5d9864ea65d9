//! Events (issue 14) end to end: the real gateway, the Libredesk and CAAC sandboxes sending
//! signed webhooks and agent calls, and real loopback subscribers and agents.

use std::collections::VecDeque;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use serde_json::{json, Value};
use switchboard::api::operation::Vendor;
use switchboard::events::signing::{
    libredesk_signature, verify_standard, LibredeskSecret, SigningSecret,
};
use switchboard::sandbox::libredesk::seed;
use switchboard::sandbox::{Credentials, Sandbox};

use crate::harness::*;

const LD_WEBHOOK_SECRET: &str = "libredesk-webhook-secret-0123";
const CAAC_TOKEN: &str = "caac-agent-token-0123456789";
const SUB_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const AGENT_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const SCOPES: &str = "conversations:read messages:read contacts:read events:read";

/// Poll `check` until it answers `Some`, failing after `seconds`.
async fn eventually<T, F, Fut>(seconds: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

// ----- a loopback subscriber ------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
    answered: u16,
}

#[derive(Default)]
struct SubscriberState {
    /// Statuses to answer next, in order; 204 once used up.
    script: Mutex<VecDeque<u16>>,
    /// Answer this to everything when set (after the script).
    always: Mutex<Option<u16>>,
    received: Mutex<Vec<Received>>,
}

struct Subscriber {
    url: String,
    state: Arc<SubscriberState>,
    _task: tokio::task::JoinHandle<()>,
}

impl Subscriber {
    async fn start() -> Subscriber {
        Self::start_on(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()).await
    }

    async fn start_on(listener: tokio::net::TcpListener) -> Subscriber {
        let state = Arc::new(SubscriberState::default());
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        async fn receive(
            State(state): State<Arc<SubscriberState>>,
            headers: HeaderMap,
            body: Bytes,
        ) -> StatusCode {
            let status = state
                .script
                .lock()
                .unwrap()
                .pop_front()
                .or(*state.always.lock().unwrap())
                .unwrap_or(204);
            state.received.lock().unwrap().push(Received {
                headers,
                body,
                answered: status,
            });
            StatusCode::from_u16(status).unwrap()
        }
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Subscriber {
            url,
            state,
            _task: task,
        }
    }

    fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    fn script(&self, statuses: &[u16]) {
        self.state.script.lock().unwrap().extend(statuses);
    }

    fn always(&self, status: Option<u16>) {
        *self.state.always.lock().unwrap() = status;
    }

    /// Bodies of the deliveries answered 2xx, as events.
    fn delivered(&self) -> Vec<Value> {
        self.received()
            .iter()
            .filter(|r| (200..300).contains(&r.answered))
            .map(|r| serde_json::from_slice(&r.body).unwrap())
            .collect()
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

// ----- a gateway with events ------------------------------------------------------------------

struct Events {
    h: Harness,
    desk: Sandbox,
    caac: Sandbox,
    captain: Sandbox,
    subscriber: Subscriber,
    agent: Agent,
}

impl Events {
    fn token(&self) -> String {
        self.h.token("hooked", SCOPES)
    }

    fn hook_url(&self, connection: &str) -> String {
        self.h.url(&format!("/hooks/hooked/{connection}"))
    }

    async fn events(&self, query: &str) -> Value {
        let r = self
            .h
            .http
            .get(self.h.url(&format!("/v1/events{query}")))
            .bearer_auth(self.token())
            .send()
            .await
            .unwrap();
        expect_status(r, 200).await
    }

    async fn admin(&self, method: reqwest::Method, path: &str) -> (u16, Value) {
        let r = self
            .h
            .http
            .request(method, format!("{}{path}", self.h.admin))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Wait until no delivery is pending.
    async fn drained(&self) {
        eventually(20, "an empty delivery backlog", || async {
            let (_, backlog) = self
                .admin(reqwest::Method::GET, "/admin/events/backlog")
                .await;
            backlog["data"].as_array().unwrap().is_empty().then_some(())
        })
        .await
    }

    fn set_webhook(&self) {
        self.desk
            .libredesk()
            .unwrap()
            .set_webhook(Some((
                self.hook_url("desk").parse().unwrap(),
                LD_WEBHOOK_SECRET,
            )))
            .unwrap();
    }
}

/// The app's agent behind CAAC: verifies our signature and answers as scripted.
#[derive(Clone, Default)]
struct AgentState {
    /// (status, body, delay)
    answer: Arc<Mutex<(u16, Value, Duration)>>,
    requests: Arc<Mutex<Vec<(bool, Value)>>>,
}

struct Agent {
    url: String,
    state: AgentState,
}

async fn start_agent() -> Agent {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/agent", listener.local_addr().unwrap());
    let state = AgentState::default();
    *state.answer.lock().unwrap() = (200, json!({"text": "Hi from the app"}), Duration::ZERO);
    async fn answer(
        State(state): State<AgentState>,
        headers: HeaderMap,
        body: Bytes,
    ) -> (StatusCode, axum::Json<Value>) {
        let secret = SigningSecret::parse(AGENT_SECRET).unwrap();
        let verified = verify_standard(&secret, &headers, &body, now_secs(), 300).is_ok();
        state.requests.lock().unwrap().push((
            verified,
            serde_json::from_slice(&body).unwrap_or(Value::Null),
        ));
        let (status, reply, delay) = state.answer.lock().unwrap().clone();
        if !delay.is_zero() {
            // The app is slow: the gateway's agent timeout must answer CAAC first.
            tokio::time::sleep(delay).await;
        }
        (StatusCode::from_u16(status).unwrap(), axum::Json(reply))
    }
    let app = axum::Router::new()
        .route("/agent", axum::routing::post(answer))
        .with_state(state.clone());
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Agent { url, state }
}

async fn start_events() -> Events {
    let desk = Sandbox::start_libredesk(
        load_routes("libredesk"),
        Credentials::new(LD_KEY, LD_SECRET),
    )
    .await
    .unwrap();
    let caac = Sandbox::start_vendor(
        Vendor::Caac,
        load_routes("caac"),
        Credentials::new("caac-key", "caac-secret"),
    )
    .await
    .unwrap();
    let captain = Sandbox::start_vendor(
        Vendor::ChatCaptain,
        load_routes("chatcaptain"),
        Credentials::new("chatcaptain-key", "chatcaptain-secret"),
    )
    .await
    .unwrap();
    let subscriber = Subscriber::start().await;
    let agent = start_agent().await;
    let extra = format!(
        r#"  hooked:
    desk:
      vendor: libredesk
      base_url: {ld}
      credentials: {{api_key: {LD_KEY}, api_secret: {LD_SECRET}}}
      defaults: {{inbox_id: 1}}
      webhook_secret: {LD_WEBHOOK_SECRET}
    line:
      vendor: caac
      base_url: {caac}
      credentials: {{api_key: caac-key}}
      defaults: {{channel_id: 1201, user_id: 501, org_id: 8801}}
      webhook_token: {CAAC_TOKEN}
      agent: {{url: "{agent}", secret: "{AGENT_SECRET}", timeout_ms: 700}}
    captain:
      vendor: chatcaptain
      base_url: {captain}
      credentials: {{api_key: chatcaptain-key}}
      defaults: {{chatbot_id: bot_demo_captain, channel_id: chn_web, language: de}}
      poll: {{interval_seconds: 1}}
subscriptions:
  hooked:
    crm:
      url: {sub}
      secret: {SUB_SECRET}
      events: ["*"]
"#,
        ld = desk.base_url(),
        caac = caac.base_url(),
        captain = captain.base_url(),
        agent = agent.url,
        sub = subscriber.url,
    );
    let h = Harness::start_with(Options {
        extra_connections: extra,
        gateway_extra: "events:\n  data_dir: data\n  delivery:\n    first_retry_ms: 100\n  stream_heartbeat_seconds: 1\n".to_owned(),
        ..Options::default()
    })
    .await;
    Events {
        h,
        desk,
        caac,
        captain,
        subscriber,
        agent,
    }
}

fn signed_libredesk(body: &Value, secret: &str) -> (Vec<u8>, String) {
    let bytes = serde_json::to_vec(body).unwrap();
    let signature = libredesk_signature(&LibredeskSecret::new(secret).unwrap(), &bytes);
    (bytes, signature)
}

fn message_webhook(uuid: &str, text: &str) -> Value {
    json!({
        "event": "message.created",
        "timestamp": "2025-06-15T10:31:00Z",
        "payload": {
            "id": 986, "created_at": "2025-06-15T10:31:00Z", "updated_at": "2025-06-15T10:31:00Z",
            "uuid": uuid, "type": "incoming", "status": "received", "conversation_id": 1,
            "conversation_uuid": seed::CONVERSATION_OPEN_UUID,
            "content": format!("<p>{text}</p>"), "text_content": text, "content_type": "html",
            "private": false, "sender_id": 1, "sender_type": "contact", "meta": {}, "attachments": []
        }
    })
}

// ----- tests ------------------------------------------------------------------------------------

#[tokio::test]
async fn a_bad_or_missing_signature_is_refused_and_stores_nothing() {
    let e = start_events().await;
    let body = message_webhook("9b2f7c1e-4d3a-4f0e-8a6b-2c1d0e9f8a7b", "forged");
    let (bytes, wrong) = signed_libredesk(&body, "not-the-configured-secret-000");
    for signature in [Some(wrong.as_str()), Some("sha256=zz"), None] {
        let mut request =
            e.h.http
                .post(e.hook_url("desk"))
                .header("content-type", "application/json")
                .body(bytes.clone());
        if let Some(s) = signature {
            request = request.header("X-Libredesk-Signature", s);
        }
        let problem = expect_problem(request.send().await.unwrap(), 401, "unauthorized").await;
        assert!(!problem.to_string().contains(LD_WEBHOOK_SECRET));
    }
    // A wrong CAAC token too.
    let r =
        e.h.http
            .post(e.hook_url("line"))
            .bearer_auth("not-the-caac-token-0000")
            .json(&json!({"version": "1.0", "conversation_id": 0}))
            .send()
            .await
            .unwrap();
    expect_problem(r, 401, "unauthorized").await;
    // Unknown intake addresses are 404, whatever the signature.
    for path in ["/hooks/hooked/nope", "/hooks/acme/support", "/hooks/hooked"] {
        let r =
            e.h.http
                .post(e.h.url(path))
                .body("{}")
                .send()
                .await
                .unwrap();
        expect_problem(r, 404, "not_found").await;
    }
    assert_eq!(e.events("").await["data"], json!([]));
    assert!(e.subscriber.received().is_empty());
    // The same body with the right signature (docs header name) is stored.
    let (bytes, right) = signed_libredesk(&body, LD_WEBHOOK_SECRET);
    let r =
        e.h.http
            .post(e.hook_url("desk"))
            .header("X-Signature-256", right)
            .body(bytes)
            .send()
            .await
            .unwrap();
    assert_eq!(expect_status(r, 200).await["status"], "stored");
    assert_eq!(e.events("").await["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_libredesk_message_becomes_one_signed_message_received_whose_id_works() {
    let e = start_events().await;
    e.set_webhook();
    let ld = e.desk.libredesk().unwrap();
    let uuid = ld
        .contact_writes(seed::CONVERSATION_OPEN_UUID, "Where is my order?")
        .unwrap();
    let delivered = eventually(20, "the delivery", || async {
        let d = e.subscriber.delivered();
        (!d.is_empty()).then_some(d)
    })
    .await;
    e.drained().await;
    // Sent again by Libredesk (same body): a duplicate, not a second event.
    let webhook = ld
        .webhooks_sent()
        .into_iter()
        .find(|w| w.event == "message.created")
        .unwrap();
    assert_eq!(webhook.status, Some(200));
    let received = e.subscriber.received();
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(delivered.len(), 1);
    let event = &delivered[0];
    assert_eq!(event["type"], "message.received");
    assert_eq!(event["connection"], "desk");
    assert_eq!(event["vendor"], "libredesk");
    assert_eq!(event["data"]["remote_id"], uuid);
    let secret = SigningSecret::parse(SUB_SECRET).unwrap();
    let r = &received[0];
    verify_standard(&secret, &r.headers, &r.body, now_secs(), 300).unwrap();
    assert_eq!(r.headers["webhook-id"], event["id"].as_str().unwrap());
    // data.id is a gateway ID the API answers at once.
    let id = event["data"]["id"].as_str().unwrap();
    let r =
        e.h.http
            .get(e.h.url(&format!("/v1/messages/{id}")))
            .bearer_auth(e.token())
            .send()
            .await
            .unwrap();
    let message = expect_status(r, 200).await;
    assert_eq!(message, event["data"]);
    // Pulled, it is the same event, byte for byte; the cursor continues after it.
    let page = e.events("?types=message.received").await;
    assert_eq!(page["data"], json!([event]));
    let cursor = page["next_cursor"].as_str().unwrap();
    let next = e
        .events(&format!("?types=message.received&cursor={cursor}"))
        .await;
    assert_eq!(next["data"], json!([]));
    // A cursor is bound to its filter.
    let r =
        e.h.http
            .get(e.h.url(&format!("/v1/events?cursor={cursor}")))
            .bearer_auth(e.token())
            .send()
            .await
            .unwrap();
    expect_problem(r, 400, "invalid_request").await;
    dashboards_name_exported_metrics(&e).await;
}

/// Every metric the events dashboard and alert rules query is one the gateway exports.
async fn dashboards_name_exported_metrics(e: &Events) {
    let metrics =
        e.h.http
            .get(format!("{}/metrics", e.h.admin))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
    let texts = [
        std::fs::read_to_string(repo_path("dashboards/switchboard-events.json")).unwrap(),
        std::fs::read_to_string(repo_path("dashboards/alerts.yml")).unwrap(),
    ];
    let mut named = 0;
    for text in &texts {
        for (i, _) in text.match_indices("switchboard_event") {
            let name: String = text[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let base = name
                .trim_end_matches("_bucket")
                .trim_end_matches("_count")
                .trim_end_matches("_sum");
            assert!(
                metrics.contains(&format!("# TYPE {base} ")),
                "{base} is queried but not exported"
            );
            named += 1;
        }
    }
    assert!(named >= 10, "{named}");
}

#[tokio::test]
async fn a_failing_subscriber_gets_the_event_on_the_fourth_attempt_in_order() {
    let e = start_events().await;
    e.subscriber.script(&[500, 503, 429]);
    e.set_webhook();
    let ld = e.desk.libredesk().unwrap();
    let first = ld
        .contact_writes(seed::CONVERSATION_OPEN_UUID, "first")
        .unwrap();
    let second = ld
        .contact_writes(seed::CONVERSATION_OPEN_UUID, "second")
        .unwrap();
    eventually(30, "both deliveries", || async {
        (e.subscriber.delivered().len() == 2).then_some(())
    })
    .await;
    e.drained().await;
    let received = e.subscriber.received();
    let order: Vec<(String, u16)> = received
        .iter()
        .map(|r| {
            let v: Value = serde_json::from_slice(&r.body).unwrap();
            (
                v["data"]["remote_id"].as_str().unwrap().to_owned(),
                r.answered,
            )
        })
        .collect();
    assert_eq!(
        order,
        vec![
            (first.clone(), 500),
            (first.clone(), 503),
            (first.clone(), 429),
            (first.clone(), 204),
            (second.clone(), 204)
        ]
    );
    // Every attempt carries the same webhook-id (the receiver's idempotency key).
    let ids: Vec<_> = received[..4]
        .iter()
        .map(|r| r.headers["webhook-id"].clone())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] == w[1]));
}

#[tokio::test]
async fn dead_letters_are_listed_and_replayed_by_the_admin() {
    let e = start_events().await;
    // 410 Gone: the subscriber wants no more; dead at once.
    e.subscriber.always(Some(410));
    e.set_webhook();
    e.desk
        .libredesk()
        .unwrap()
        .contact_writes(seed::CONVERSATION_OPEN_UUID, "anyone?")
        .unwrap();
    let dead = eventually(20, "a dead letter", || async {
        let (_, dead) = e.admin(reqwest::Method::GET, "/admin/events/dead").await;
        let data = dead["data"].as_array().cloned().unwrap_or_default();
        (!data.is_empty()).then_some(data)
    })
    .await;
    assert_eq!(dead[0]["reason"], "gone");
    assert_eq!(dead[0]["subscription"], "crm");
    assert_eq!(dead[0]["last_status"], 410);
    assert!(!json!(dead).to_string().contains("whsec_"));
    e.subscriber.always(None);
    let id = dead[0]["id"].as_str().unwrap();
    let (status, body) = e
        .admin(reqwest::Method::POST, &format!("/admin/events/{id}/replay"))
        .await;
    assert_eq!((status, body["replayed"].clone()), (200, json!(1)));
    eventually(20, "the replayed delivery", || async {
        (e.subscriber.delivered().len() == 1).then_some(())
    })
    .await;
    let (status, _) = e
        .admin(reqwest::Method::POST, &format!("/admin/events/{id}/replay"))
        .await;
    assert_eq!(status, 404, "nothing dead any more");
    let (status, _) = e
        .admin(reqwest::Method::POST, "/admin/events/bogus/replay")
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_caac_agent_bridge_answers_with_the_apps_reply_or_hands_over() {
    let e = start_events().await;
    let caac = e.caac.caac().unwrap();
    let hook: url::Url = e.hook_url("line").parse().unwrap();
    use switchboard::sandbox::caac::seed as caac_seed;
    let answer = caac
        .play_line_message(
            hook.clone(),
            CAAC_TOKEN,
            caac_seed::CHANNEL_LINE_ID,
            caac_seed::MEMBER_WEITING_ID,
            "Can I change my delivery address?",
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.text, "Hi from the app");
    assert!(!answer.handover);
    // The app got a signed, normalized request: gateway IDs, the customer's message.
    let (verified, request) = e.agent.state.requests.lock().unwrap()[0].clone();
    assert!(verified);
    assert_eq!(request["connection"], "line");
    let last = request["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["text"], "Can I change my delivery address?");
    assert_eq!(last["direction"], "inbound");
    assert!(request["conversation_id"]
        .as_str()
        .unwrap()
        .starts_with("cv"));
    // ... and the message is an event.
    let page = e.events("?types=message.received").await;
    let events = page["data"].as_array().unwrap();
    assert!(events
        .iter()
        .any(|ev| ev["data"]["remote_id"] == answer.message_uuid.as_str()));

    // The app fails: CAAC is told to hand over.
    *e.agent.state.answer.lock().unwrap() = (500, json!({"error": "boom"}), Duration::ZERO);
    let answer = caac
        .play_line_message(
            hook.clone(),
            CAAC_TOKEN,
            caac_seed::CHANNEL_LINE_ID,
            caac_seed::MEMBER_WEITING_ID,
            "Hello?",
        )
        .await
        .unwrap();
    assert!(answer.handover);
    assert_eq!(
        caac.processing_state(caac_seed::CHANNEL_LINE_ID, caac_seed::MEMBER_WEITING_ID)
            .as_deref(),
        Some("pending")
    );
    // The app is slower than the agent timeout (700 ms): a handover, well within CAAC's 45 s.
    *e.agent.state.answer.lock().unwrap() =
        (200, json!({"text": "too late"}), Duration::from_secs(5));
    let started = Instant::now();
    let answer = caac
        .play_line_message(
            hook,
            CAAC_TOKEN,
            caac_seed::CHANNEL_LINE_ID,
            caac_seed::MEMBER_WEITING_ID,
            "Anyone there?",
        )
        .await
        .unwrap();
    assert!(answer.handover);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

/// Frames of an event stream, read until `count` events arrived.
async fn read_frames(
    response: &mut reqwest::Response,
    count: usize,
    buf: &mut String,
) -> Vec<String> {
    let mut ids = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while ids.len() < count {
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            if let Some(id) = frame.lines().find_map(|l| l.strip_prefix("id: ")) {
                ids.push(id.to_owned());
            }
        }
        if ids.len() >= count {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "stream: timed out with {ids:?}");
        let chunk = tokio::time::timeout(left, response.chunk())
            .await
            .expect("stream chunk in time")
            .unwrap()
            .expect("stream open");
        buf.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    ids
}

#[tokio::test]
async fn the_stream_resumes_after_last_event_id_without_gaps_or_duplicates() {
    let e = start_events().await;
    e.set_webhook();
    let ld = e.desk.libredesk().unwrap();
    for text in ["one", "two", "three"] {
        ld.contact_writes(seed::CONVERSATION_OPEN_UUID, text)
            .unwrap();
    }
    let all = eventually(20, "three events", || async {
        let page = e.events("").await;
        let ids: Vec<String> = page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|ev| ev["id"].as_str().unwrap().to_owned())
            .collect();
        (ids.len() == 3).then_some(ids)
    })
    .await;
    let open = |last: Option<String>| {
        let mut r =
            e.h.http
                .get(e.h.url("/v1/events/stream"))
                .bearer_auth(e.token())
                .timeout(Duration::from_secs(60));
        if let Some(last) = last {
            r = r.header("Last-Event-ID", last);
        }
        r.send()
    };
    let mut stream = open(Some(all[0].clone())).await.unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let mut buf = String::new();
    assert_eq!(
        read_frames(&mut stream, 2, &mut buf).await,
        all[1..].to_vec()
    );
    // Live: a new event arrives on the open stream.
    ld.contact_writes(seed::CONVERSATION_OPEN_UUID, "four")
        .unwrap();
    let fourth = read_frames(&mut stream, 1, &mut buf).await;
    // Idle: heartbeats (every second here) keep it open.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !buf.contains(": heartbeat") {
        assert!(Instant::now() < deadline, "no heartbeat");
        let chunk = tokio::time::timeout(Duration::from_secs(5), stream.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        buf.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    drop(stream);
    // Reconnect after the third: exactly the fourth, then what comes next.
    let mut stream = open(Some(all[2].clone())).await.unwrap();
    let mut buf = String::new();
    assert_eq!(read_frames(&mut stream, 1, &mut buf).await, fourth);
    ld.contact_writes(seed::CONVERSATION_OPEN_UUID, "five")
        .unwrap();
    let fifth = read_frames(&mut stream, 1, &mut buf).await;
    assert_ne!(fifth, fourth);
    let page = e.events("").await;
    let ids: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|ev| ev["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [&all[0], &all[1], &all[2], &fourth[0], &fifth[0]]);
    // Without the scope: 403.
    let r =
        e.h.http
            .get(e.h.url("/v1/events/stream"))
            .bearer_auth(e.h.token("hooked", "messages:read"))
            .send()
            .await
            .unwrap();
    expect_problem(r, 403, "forbidden").await;
}

#[tokio::test]
async fn a_cached_conversation_is_not_served_after_its_conversation_updated_event() {
    let e = start_events().await;
    e.set_webhook();
    let page = e.events("").await;
    assert_eq!(page["data"], json!([]));
    let get = |id: String| {
        let r =
            e.h.http
                .get(e.h.url(&format!("/v1/conversations/{id}")))
                .bearer_auth(e.token());
        async move { r.send().await.unwrap() }
    };
    let id = switchboard::api::ids::ObjectId::new(
        switchboard::api::ids::Kind::Conversation,
        "hooked",
        "desk",
        vec![seed::CONVERSATION_OPEN_UUID.to_owned()],
    )
    .encode();
    let first = get(id.clone()).await;
    assert_eq!(first.headers()["x-cache"], "miss");
    assert_eq!(expect_status(first, 200).await["status"], "open");
    let second = get(id.clone()).await;
    assert_eq!(second.headers()["x-cache"], "hit");
    // An agent resolves it in Libredesk; Libredesk's webhook carries no conversation.
    assert!(e
        .desk
        .libredesk()
        .unwrap()
        .agent_sets_status(seed::CONVERSATION_OPEN_UUID, seed::STATUS_RESOLVED_ID));
    let updated = eventually(20, "conversation.updated", || async {
        let page = e.events("?types=conversation.updated").await;
        page["data"].as_array().unwrap().first().cloned()
    })
    .await;
    assert_eq!(updated["data"]["status"], "resolved");
    assert_eq!(updated["data"]["id"], id.as_str());
    let after = get(id).await;
    assert_ne!(after.headers()["x-cache"], "hit");
    assert_eq!(expect_status(after, 200).await["status"], "resolved");
}

// ----- crash safety: the real binary, killed and restarted --------------------------------------

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_gateway(config: &Path) -> Process {
    Process(
        Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args(["run", "--config"])
            .arg(config)
            .args(["--pid-file"])
            .arg(config.with_file_name("switchboard.pid"))
            .args(["--upgrade-sock"])
            .arg(config.with_file_name("upgrade.sock"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

#[tokio::test]
async fn a_gateway_killed_with_events_pending_delivers_them_after_restart() {
    let subscriber = Subscriber::start().await;
    subscriber.always(Some(503));
    let dir = tempfile::tempdir().unwrap();
    let [api, admin] = free_ports();
    std::fs::write(
        dir.path().join("connections.yaml"),
        format!(
            "tenants:\n  hooked:\n    desk:\n      vendor: libredesk\n      base_url: http://127.0.0.1:9\n      \
             credentials: {{api_key: k, api_secret: s}}\n      defaults: {{inbox_id: 1}}\n      \
             webhook_secret: {LD_WEBHOOK_SECRET}\nsubscriptions:\n  hooked:\n    crm:\n      url: {}\n      \
             secret: {SUB_SECRET}\n      events: [\"*\"]\n",
            subscriber.url
        ),
    )
    .unwrap();
    let config = dir.path().join("switchboard.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: {{api: 127.0.0.1:{api}, admin: 127.0.0.1:{admin}}}\nthreads: 1\n\
             grace_period_seconds: 0\ngraceful_shutdown_timeout_seconds: 1\nroutes_dir: {routes}\n\
             connections: connections.yaml\njwt: {{algorithm: HS256, secret: {SECRET}}}\n\
             log: {{format: text, filter: warn}}\n\
             events: {{data_dir: data, delivery: {{first_retry_ms: 100}}}}\n",
            routes = repo_path("routes").display()
        ),
    )
    .unwrap();
    let http = reqwest::Client::new();
    let ready = |http: reqwest::Client| async move {
        eventually(30, "the gateway", || {
            let http = http.clone();
            async move {
                let r = http
                    .get(format!("http://127.0.0.1:{admin}/readyz"))
                    .send()
                    .await
                    .ok()?;
                (r.status() == 200).then_some(())
            }
        })
        .await
    };
    let gateway = spawn_gateway(&config);
    ready(http.clone()).await;
    let (bytes, signature) = signed_libredesk(
        &message_webhook("e0000000-0000-4000-8000-0000000000aa", "kept"),
        LD_WEBHOOK_SECRET,
    );
    let r = http
        .post(format!("http://127.0.0.1:{api}/hooks/hooked/desk"))
        .header("X-Libredesk-Signature", signature)
        .body(bytes)
        .send()
        .await
        .unwrap();
    let stored = expect_status(r, 200).await;
    let event_id = stored["id"].as_str().unwrap().to_owned();
    // It is being tried (and failing) when the gateway dies.
    eventually(20, "a failed attempt", || async {
        (!subscriber.received().is_empty()).then_some(())
    })
    .await;
    drop(gateway); // SIGKILL: no shutdown, no flush
    assert!(subscriber.delivered().is_empty());
    subscriber.always(None);
    let _gateway = spawn_gateway(&config);
    ready(http.clone()).await;
    let delivered = eventually(30, "the delivery after restart", || async {
        let d = subscriber.delivered();
        (!d.is_empty()).then_some(d)
    })
    .await;
    assert_eq!(delivered[0]["id"], event_id.as_str());
    assert_eq!(delivered[0]["data"]["text"], "kept");
}

#[tokio::test]
async fn the_poller_turns_chatcaptain_list_differences_into_events() {
    let e = start_events().await;
    // The first poll only records what exists: nothing is announced.
    eventually(20, "the baseline poll", || async {
        (e.captain.calls_to("conversations.list") >= 1).then_some(())
    })
    .await;
    let list =
        e.h.http
            .get(e.h.url("/v1/conversations?limit=5"))
            .bearer_auth(e.h.token(
                "hooked",
                "conversations:read conversations:write messages:write events:read",
            ))
            .header("X-Connection", "captain")
            .send()
            .await
            .unwrap();
    let list = expect_status(list, 200).await;
    let conversation = list["data"][0].clone();
    let id = conversation["id"].as_str().unwrap().to_owned();
    let status = if conversation["status"] == "resolved" {
        "open"
    } else {
        "resolved"
    };
    let r =
        e.h.http
            .patch(e.h.url(&format!("/v1/conversations/{id}")))
            .bearer_auth(e.h.token("hooked", "conversations:write"))
            .json(&json!({"status": status}))
            .send()
            .await
            .unwrap();
    let patched = expect_status(r, 200).await;
    let updated = eventually(20, "conversation.updated from the poller", || async {
        let page = e.events("?types=conversation.updated").await;
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|ev| ev["data"]["id"] == id.as_str())
            .cloned()
    })
    .await;
    assert_eq!(updated["connection"], "captain");
    assert_eq!(updated["vendor"], "chatcaptain");
    assert_eq!(updated["data"]["status"], patched["status"], "{updated}");
    assert_ne!(updated["data"]["status"], conversation["status"]);
    // Polled again with nothing new: no second event for the same change.
    let calls = e.captain.calls_to("conversations.list");
    eventually(20, "two more polls", || async {
        (e.captain.calls_to("conversations.list") >= calls + 2).then_some(())
    })
    .await;
    let page = e.events("?types=conversation.updated").await;
    let same: Vec<_> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|ev| ev["data"]["id"] == id.as_str())
        .collect();
    assert_eq!(same.len(), 1, "{same:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tenant_limit_applies_to_the_event_feed_and_stream() {
    let h = Harness::start_with(Options {
        extra_connections: "rate_limits:\n  acme: {requests_per_second: 0.01, burst: 3}\n".into(),
        gateway_extra: "events:\n  data_dir: data\n  stream_heartbeat_seconds: 1\n".to_owned(),
        ..Options::default()
    })
    .await;
    let token = h.token("acme", "events:read");
    for _ in 0..2 {
        let page = h
            .http
            .get(h.url("/v1/events"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        assert!(page.headers().contains_key("ratelimit-policy"), "{page:?}");
        assert!(page.headers().contains_key("ratelimit"), "{page:?}");
    }
    // The third slot opens a stream, which answers with the limit's headers too.
    let stream = h
        .http
        .get(h.url("/v1/events/stream"))
        .bearer_auth(&token)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert!(
        stream.headers().contains_key("ratelimit-policy"),
        "{stream:?}"
    );
    drop(stream);
    for path in ["/v1/events", "/v1/events/stream"] {
        let limited = h
            .http
            .get(h.url(path))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert!(limited.headers().contains_key("retry-after"), "{limited:?}");
        assert!(limited.headers().contains_key("ratelimit"), "{limited:?}");
        expect_problem(limited, 429, "rate_limited").await;
    }
    // Another tenant has no limit and is not affected.
    let other = h
        .http
        .get(h.url("/v1/events"))
        .bearer_auth(h.token("other", "events:read"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
    assert!(other.headers().get("ratelimit").is_none());
}
