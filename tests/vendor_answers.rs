//! What the gateway makes of vendor answers, against a scripted Libredesk-shaped vendor on
//! loopback (raw TCP, so it can close connections the way real servers do) and the Libredesk
//! sandbox: a pooled connection the vendor closed is retried on a fresh one, `Retry-After` is
//! read in both forms, echoed credentials never come back, and a 403 means what the contract
//! says.

// Runs against the vendor sandboxes: needs the `sandbox` feature (on by default).
#![cfg(feature = "sandbox")]
// Test helpers fail loudly: a broken fixture is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use switchboard::api::ids::{Kind, ObjectId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const KEY: &str = "scripted-key-0123";
const SECRET: &str = "scripted-secret-4567";
const UUID: &str = "0d5f8a2e-3b1c-4c7e-9f6a-2b8e4d1c7a90";

/// One request as the scripted vendor read it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    authorization: String,
}

type Answer = (u16, Vec<(String, String)>, String);
type Script = Arc<dyn Fn(&Seen) -> Answer + Send + Sync>;

/// A Libredesk-shaped vendor that answers from a script. With `close_reused`, it closes a
/// kept-alive connection when a second request arrives on it, without answering — what a
/// server whose keep-alive timer fires as the request is sent looks like to the client.
struct ScriptedVendor {
    base_url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    connections: Arc<AtomicUsize>,
    closed_reused: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ScriptedVendor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn scripted_vendor(close_reused: bool, script: Script) -> ScriptedVendor {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base_url = format!("http://{}", listener.local_addr().expect("addr"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let connections = Arc::new(AtomicUsize::new(0));
    let closed_reused = Arc::new(AtomicUsize::new(0));
    let (s, c, r) = (seen.clone(), connections.clone(), closed_reused.clone());
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            c.fetch_add(1, Ordering::SeqCst);
            let (s, r, script) = (s.clone(), r.clone(), script.clone());
            tokio::spawn(serve(stream, close_reused, s, r, script));
        }
    });
    ScriptedVendor {
        base_url,
        seen,
        connections,
        closed_reused,
        task,
    }
}

async fn serve(
    mut stream: TcpStream,
    close_reused: bool,
    seen: Arc<Mutex<Vec<Seen>>>,
    closed_reused: Arc<AtomicUsize>,
    script: Script,
) {
    let mut buf = Vec::new();
    let mut served = 0;
    loop {
        // Read one request: header, then Content-Length bytes.
        let end = loop {
            if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break pos + 4;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        let length: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse().unwrap_or(0))
            })
            .unwrap_or(0);
        while buf.len() < end + length {
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..end + length);
        if close_reused && served > 0 {
            closed_reused.fetch_add(1, Ordering::SeqCst);
            return; // closes the connection, the request unanswered and unprocessed
        }
        let mut line = head.lines().next().unwrap_or_default().split(' ');
        let request = Seen {
            method: line.next().unwrap_or_default().to_owned(),
            path: line.next().unwrap_or_default().to_owned(),
            authorization: head
                .lines()
                .find_map(|l| {
                    l.split_once(':')
                        .filter(|(n, _)| n.eq_ignore_ascii_case("authorization"))
                        .map(|(_, v)| v.trim().to_owned())
                })
                .unwrap_or_default(),
        };
        seen.lock().expect("lock").push(request.clone());
        let (status, headers, body) = script(&request);
        let mut response = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            response.push_str(&format!("{name}: {value}\r\n"));
        }
        response.push_str("\r\n");
        response.push_str(&body);
        if stream.write_all(response.as_bytes()).await.is_err() {
            return;
        }
        served += 1;
    }
}

fn contact_fixture() -> String {
    std::fs::read_to_string(repo_path("tests/fixtures/libredesk/contact.json")).expect("fixture")
}

async fn harness_with(vendor: &ScriptedVendor) -> Harness {
    Harness::start_with(Options {
        extra_connections: format!(
            "  scripted:\n    desk:\n      vendor: libredesk\n      base_url: {}\n      credentials: {{api_key: {KEY}, api_secret: {SECRET}}}\n      defaults: {{inbox_id: 1}}\n",
            vendor.base_url
        ),
        ..Options::default()
    })
    .await
}

fn id(kind: Kind, keys: &[&str]) -> String {
    ObjectId::new(
        kind,
        "scripted",
        "desk",
        keys.iter().map(|k| (*k).to_owned()).collect(),
    )
    .encode()
}

async fn call(h: &Harness, method: Method, path: &str, body: Option<Value>) -> reqwest::Response {
    let mut request = h
        .http
        .request(method, h.url(path))
        .bearer_auth(h.token("scripted", ALL_SCOPES))
        .header("cache-control", "no-cache");
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.expect("request")
}

/// (connections accepted, pooled connections the vendor closed on a new request)
fn counts(vendor: &ScriptedVendor) -> (usize, usize) {
    (
        vendor.connections.load(Ordering::SeqCst),
        vendor.closed_reused.load(Ordering::SeqCst),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooled_connection_the_vendor_closed_is_retried_on_a_fresh_one() {
    let contact = contact_fixture();
    let vendor = scripted_vendor(true, Arc::new(move |_| (200, Vec::new(), contact.clone()))).await;
    let h = harness_with(&vendor).await;
    let path = format!("/v1/contacts/{}", id(Kind::Contact, &["163"]));
    // Every read after the first goes out on the pooled connection, which the vendor closes
    // (pingora under load may hand out a fresh one instead: then try again, bounded).
    let mut rounds = 0;
    while counts(&vendor).1 < 2 {
        assert!(rounds < 20, "the pooled connection was never reused");
        rounds += 1;
        let response = call(&h, Method::GET, &path, None).await;
        let body = expect_status(response, 200).await;
        assert_eq!(body["name"], "Jane Doe", "round {rounds}");
    }
    assert_eq!(
        vendor.seen.lock().expect("lock").len(),
        rounds,
        "each request processed once"
    );
}

/// The same race on a write: the whole `POST` was written before the connection closed, so
/// the vendor may have read it — it is not sent twice (docs/api.md: "never resends a POST
/// that reached the vendor"); only a read is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_written_post_is_never_sent_twice() {
    let contact = contact_fixture();
    let vendor = scripted_vendor(true, Arc::new(move |_| (200, Vec::new(), contact.clone()))).await;
    let h = harness_with(&vendor).await;
    let path = format!("/v1/contacts/{}", id(Kind::Contact, &["163"]));
    let conversation = id(Kind::Conversation, &[UUID]);
    for _ in 0..20 {
        // Pool one connection to the vendor.
        expect_status(call(&h, Method::GET, &path, None).await, 200).await;
        let (connections, closed) = counts(&vendor);
        let response = call(
            &h,
            Method::POST,
            "/v1/messages",
            Some(json!({"conversation_id": conversation, "text": "once"})),
        )
        .await;
        if counts(&vendor).1 == closed {
            continue; // pingora made a fresh connection for the POST: not the case under test
        }
        expect_problem(response, 502, "vendor_error").await;
        assert_eq!(
            counts(&vendor),
            (connections, closed + 1),
            "no second connection: the POST was not sent again"
        );
        return;
    }
    panic!("the POST never went out on a pooled connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_as_an_http_date() {
    let vendor = scripted_vendor(
        false,
        Arc::new(|_| {
            let at = SystemTime::now() + Duration::from_secs(120);
            (
                429,
                vec![("retry-after".into(), httpdate::fmt_http_date(at))],
                r#"{"status":"error","message":"Too many requests","data":null,"error_type":"RateLimitException"}"#.into(),
            )
        }),
    )
    .await;
    let h = harness_with(&vendor).await;
    let path = format!("/v1/contacts/{}", id(Kind::Contact, &["163"]));
    let response = call(&h, Method::GET, &path, None).await;
    let header: u64 = response
        .headers()
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .expect("text")
        .parse()
        .expect("seconds");
    let body = expect_problem(response, 429, "vendor_rate_limited").await;
    // The date is at whole-second precision: 119–120 s from when the vendor answered.
    assert!((115..=120).contains(&header), "Retry-After: {header}");
    assert_eq!(body["retry_after"], header, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_a_vendor_echoes_never_come_back() {
    let contact = contact_fixture();
    let vendor = scripted_vendor(
        false,
        Arc::new(move |seen: &Seen| {
            let echo = serde_json::to_string(&seen.authorization).expect("json");
            if seen.method == "GET" && seen.path.contains("/contacts/") {
                // A contact whose fields carry the credentials.
                let mut c: Value = serde_json::from_str(&contact).expect("fixture");
                c["data"]["first_name"] = json!(KEY);
                c["data"]["last_name"] = json!(seen.authorization);
                (200, Vec::new(), c.to_string())
            } else {
                (
                    400,
                    Vec::new(),
                    format!(
                        r#"{{"status":"error","message":"invalid input; you sent Authorization: {} (key {KEY}, secret {SECRET})","data":null,"error_type":"InputException"}}"#,
                        &echo[1..echo.len() - 1]
                    ),
                )
            }
        }),
    )
    .await;
    let h = harness_with(&vendor).await;
    let conversation = id(Kind::Conversation, &[UUID]);
    let response = call(
        &h,
        Method::POST,
        "/v1/messages",
        Some(json!({"conversation_id": conversation, "text": "hi"})),
    )
    .await;
    let text = response.text().await.expect("body");
    assert!(text.contains("invalid input"), "{text}");
    for secret in [KEY, SECRET] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    assert!(text.contains("[redacted]"), "{text}");

    // The same for an object the vendor returns, `raw` included.
    let path = format!("/v1/contacts/{}?include=raw", id(Kind::Contact, &["163"]));
    let text = call(&h, Method::GET, &path, None)
        .await
        .text()
        .await
        .expect("body");
    assert!(text.contains("\"raw\""), "{text}");
    for secret in [KEY, SECRET] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    // The vendor did receive them: the redaction is on the way back only.
    assert!(vendor.seen.lock().expect("lock")[0]
        .authorization
        .contains(KEY));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vendor_403_is_not_found_for_a_read_and_forbidden_for_a_write() {
    let h = Harness::start().await;
    // Libredesk answers 403 for a message asked for under another conversation.
    let page = h.get_json("/v1/conversations?limit=2", 200).await;
    let a = page["data"][0]["id"].as_str().expect("a").to_owned();
    let b = page["data"][1]["id"].as_str().expect("b").to_owned();
    let messages = h
        .get_json(&format!("/v1/conversations/{b}/messages"), 200)
        .await;
    let message = messages["data"][0]["remote_id"]
        .as_str()
        .expect("message")
        .to_owned();
    let a_uuid = h.get_json(&format!("/v1/conversations/{a}"), 200).await["remote_id"]
        .as_str()
        .expect("uuid")
        .to_owned();
    let foreign = ObjectId::new(Kind::Message, "acme", "support", vec![a_uuid, message]).encode();
    let before = h.libredesk.calls_to("messages.get");
    let body = expect_problem(
        h.get(&format!("/v1/messages/{foreign}"), &h.acme()).await,
        404,
        "not_found",
    )
    .await;
    assert_eq!(body["vendor"], "libredesk");
    assert_eq!(body["vendor_status"], 403);
    assert_eq!(
        h.libredesk.calls_to("messages.get"),
        before + 1,
        "the vendor was asked"
    );

    // A 403 on a change: the account may not do it.
    let vendor = scripted_vendor(
        false,
        Arc::new(|_| {
            (
                403,
                Vec::new(),
                r#"{"status":"error","message":"Permission denied","data":null,"error_type":"PermissionException"}"#.into(),
            )
        }),
    )
    .await;
    let h = harness_with(&vendor).await;
    let conversation = id(Kind::Conversation, &[UUID]);
    let body = expect_problem(
        call(
            &h,
            Method::PATCH,
            &format!("/v1/conversations/{conversation}"),
            Some(json!({"status": "closed"})),
        )
        .await,
        403,
        "forbidden",
    )
    .await;
    assert_eq!(body["vendor_status"], 403);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("Permission denied"),
        "{body}"
    );
    // …and on a read by ID: as if it did not exist.
    expect_problem(
        call(
            &h,
            Method::GET,
            &format!("/v1/conversations/{conversation}"),
            None,
        )
        .await,
        404,
        "not_found",
    )
    .await;
    // A 401 still means the credentials are bad.
    let vendor = scripted_vendor(
        false,
        Arc::new(|_| {
            (
                401,
                Vec::new(),
                r#"{"status":"error","message":"Invalid API key","data":null,"error_type":"GeneralException"}"#.into(),
            )
        }),
    )
    .await;
    let h = harness_with(&vendor).await;
    expect_problem(
        call(
            &h,
            Method::GET,
            &format!("/v1/conversations/{conversation}"),
            None,
        )
        .await,
        502,
        "vendor_auth_failed",
    )
    .await;
}
