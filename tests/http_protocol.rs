//! HTTP at the edge, spoken over raw TCP where a client library would refuse to send it:
//! every refusal is problem+json with an `X-Request-Id` (pingora's own refusals included),
//! slow clients are closed within the configured bounds and counted, and 405 / 204 / HEAD
//! follow RFC 9110.

// Runs against the vendor sandboxes: needs the `sandbox` feature (on by default).
#![cfg(feature = "sandbox")]
// Test helpers fail loudly: a broken fixture is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A response read off a raw socket.
#[derive(Debug)]
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// The server closed the connection after the response.
    closed: bool,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): status {} body {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// A problem+json refusal with this status and code whose `request_id` is the header's.
    fn assert_problem(&self, status: u16, code: &str) -> Value {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{self:?}"
        );
        let body = self.json();
        assert_eq!(body["code"], code, "{body}");
        assert_eq!(body["status"], status, "{body}");
        let id = self.header("x-request-id").expect("X-Request-Id");
        assert!(!id.is_empty());
        assert_eq!(body["request_id"], id, "{body}");
        assert_eq!(
            self.header("content-length")
                .map(|v| v.parse::<usize>().unwrap()),
            Some(self.body.len())
        );
        body
    }
}

/// Read one response (header, then Content-Length bytes of body) and whether the server then
/// closed the connection; bounded by `within`.
async fn read_response(stream: &mut TcpStream, within: Duration) -> Option<Raw> {
    let deadline = Instant::now() + within;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let mut closed = false;
    let header_end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                if buf.is_empty() {
                    return None;
                }
                panic!(
                    "connection closed mid-header: {:?}",
                    String::from_utf8_lossy(&buf)
                );
            }
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => panic!("no response within {within:?}"),
        }
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_string();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let length = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.parse::<usize>().expect("content-length"))
        .unwrap_or(0);
    let mut body = buf[header_end..].to_vec();
    while body.len() < length {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(n)) => body.extend_from_slice(&chunk[..n]),
            Err(_) => panic!("body not complete within {within:?}"),
        }
    }
    if !closed {
        // Did the server close after the response? (bounded: a kept-alive socket stays open)
        closed = matches!(
            tokio::time::timeout(Duration::from_millis(300), stream.read(&mut chunk)).await,
            Ok(Ok(0)) | Ok(Err(_))
        );
    }
    Some(Raw {
        status,
        headers,
        body,
        closed,
    })
}

fn api_addr(h: &Harness) -> String {
    h.api.trim_start_matches("http://").to_owned()
}

async fn exchange(h: &Harness, request: &[u8]) -> Raw {
    let mut stream = TcpStream::connect(api_addr(h)).await.expect("connect");
    stream.write_all(request).await.expect("write");
    read_response(&mut stream, Duration::from_secs(5))
        .await
        .expect("a response")
}

async fn metric(h: &Harness, series: &str) -> u64 {
    let text = h
        .http
        .get(format!("{}/metrics", h.admin))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pingora_refusals_are_problem_json_with_a_request_id() {
    let h = Harness::start().await;
    let token = h.acme();
    let huge = "a".repeat(80 * 1024);
    let mut many_headers = String::new();
    for i in 0..300 {
        many_headers.push_str(&format!("X-Filler-{i}: v\r\n"));
    }
    let cases: Vec<(String, Vec<u8>, u16, &str)> = vec![
        (
            "a token over the header limit".into(),
            format!("GET /v1/capabilities HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {huge}\r\n\r\n")
                .into_bytes(),
            431,
            "header_too_large",
        ),
        (
            "too many header fields".into(),
            format!("GET /v1/capabilities HTTP/1.1\r\nHost: x\r\n{many_headers}\r\n").into_bytes(),
            431,
            "header_too_large",
        ),
        (
            "an unparsable Content-Length".into(),
            b"POST /v1/contacts HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\n".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "two different Content-Lengths".into(),
            b"POST /v1/contacts HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}"
                .to_vec(),
            400,
            "invalid_request",
        ),
        (
            "a Transfer-Encoding that does not end in chunked".into(),
            b"POST /v1/contacts HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "Transfer-Encoding on HTTP/1.0".into(),
            b"POST /v1/contacts HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "a NUL in a header".into(),
            b"GET /v1/capabilities HTTP/1.1\r\nHost: x\r\nX-Note: a\0b\r\n\r\n".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "HTTP/1.2".into(),
            b"GET /v1/capabilities HTTP/1.2\r\nHost: x\r\n\r\n".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "HTTP/1.1 without Host".into(),
            format!("GET /v1/capabilities HTTP/1.1\r\nAuthorization: Bearer {token}\r\n\r\n")
                .into_bytes(),
            400,
            "invalid_request",
        ),
        (
            "two Host headers".into(),
            b"GET /v1/capabilities HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "CONNECT".into(),
            b"CONNECT vendor.example:443 HTTP/1.1\r\nHost: vendor.example:443\r\n\r\n".to_vec(),
            405,
            "method_not_allowed",
        ),
        (
            "not HTTP at all".into(),
            b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n".to_vec(),
            400,
            "invalid_request",
        ),
    ];
    for (what, request, status, code) in cases {
        let response = exchange(&h, &request).await;
        let body = response.assert_problem(status, code);
        assert!(
            response.closed,
            "{what}: the connection is closed after a refusal"
        );
        let detail = body["detail"].as_str().unwrap();
        assert!(
            !detail.contains(&token) && !detail.contains("aaaa"),
            "{what}: {detail}"
        );
        if what == "CONNECT" {
            assert_eq!(response.header("allow"), Some(""), "{what}");
        }
    }
    // A client's own X-Request-Id is echoed when the header parsed.
    let response = exchange(
        &h,
        b"GET /v1/capabilities HTTP/1.1\r\nX-Request-Id: audit-42\r\n\r\n",
    )
    .await;
    response.assert_problem(400, "invalid_request");
    assert_eq!(response.header("x-request-id"), Some("audit-42"));
    // HTTP/1.0 needs no Host, and a well-formed request still works on the same listener.
    let response = exchange(
        &h,
        format!("GET /v1/capabilities HTTP/1.0\r\nAuthorization: Bearer {token}\r\n\r\n")
            .as_bytes(),
    )
    .await;
    assert_eq!(response.status, 200, "{response:?}");
    // Refusals are counted like every answered request.
    assert!(
        metric(
            &h,
            "switchboard_http_requests_total{code=\"invalid_request\",operation=\"unknown\",vendor=\"none\"} "
        )
        .await
            >= 9
    );
}

fn slow_limits() -> String {
    "http:\n  header_read_timeout_ms: 600\n  body_read_timeout_ms: 600\n".to_owned()
}

/// Send `first`, then one byte of `trickle` every 100 ms until the server answers or closes;
/// returns what the server said and when.
async fn slow_client(
    addr: String,
    first: Vec<u8>,
    trickle: &'static [u8],
) -> (Option<u16>, Duration) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(&first).await.expect("write");
    let mut chunk = [0u8; 4096];
    let mut seen = Vec::new();
    let mut next = trickle.iter().cycle();
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "a slow client is still connected after 10 s"
        );
        match tokio::time::timeout(Duration::from_millis(100), stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => seen.extend_from_slice(&chunk[..n]),
            Err(_) => {
                // The client's behaviour under test: one more byte, then wait again.
                if let Some(b) = next.next() {
                    let _ = stream.write_all(&[*b]).await;
                }
            }
        }
    }
    let status = String::from_utf8_lossy(&seen)
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok());
    (status, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_and_bodies_are_cut_off_and_counted() {
    let h = Harness::start_with(Options {
        gateway_extra: slow_limits(),
        ..Options::default()
    })
    .await;
    let token = h.acme();
    // Five clients that never finish their header (one sends nothing at all).
    let mut slow = Vec::new();
    for i in 0..5 {
        let first = if i == 0 {
            Vec::new()
        } else {
            b"GET /v1/contacts HTTP/1.1\r\nHost: x\r\n".to_vec()
        };
        slow.push(tokio::spawn(slow_client(
            api_addr(&h),
            first,
            b"X-Slow: y\r\n",
        )));
    }
    for task in slow {
        let (status, took) = task.await.expect("client");
        assert_eq!(status, Some(408), "answered 408 before closing");
        assert!(
            took < Duration::from_secs(3),
            "closed after {took:?}, bound 600 ms"
        );
    }
    assert_eq!(
        metric(
            &h,
            "switchboard_http_read_timeouts_total{phase=\"header\"} "
        )
        .await,
        5
    );

    // Five clients that send a header, then trickle a body that never ends.
    let mut slow = Vec::new();
    for _ in 0..5 {
        let first = format!(
            "POST /v1/conversations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
             X-Connection: support\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{{"
        )
        .into_bytes();
        slow.push(tokio::spawn(slow_client(api_addr(&h), first, b" ")));
    }
    for task in slow {
        let (status, took) = task.await.expect("client");
        assert_eq!(status, Some(408));
        assert!(
            took < Duration::from_secs(3),
            "closed after {took:?}, bound 600 ms"
        );
    }
    assert_eq!(
        metric(&h, "switchboard_http_read_timeouts_total{phase=\"body\"} ").await,
        5
    );
    assert_eq!(h.libredesk.calls_to("conversations.create"), 0);

    // A client that is merely idle between requests on a keep-alive connection is not one of
    // them: its next request, sent within the keep-alive timeout, is served.
    let mut stream = TcpStream::connect(api_addr(&h)).await.expect("connect");
    let request = format!(
        "GET /v1/capabilities HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let first = read_response(&mut stream, Duration::from_secs(5))
        .await
        .expect("response");
    assert_eq!(first.status, 200);
    assert!(!first.closed);
    stream.write_all(request.as_bytes()).await.expect("write");
    let second = read_response(&mut stream, Duration::from_secs(5))
        .await
        .expect("response");
    assert_eq!(second.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn method_not_allowed_says_what_is_allowed() {
    let h = Harness::start().await;
    let cases = [
        (Method::PUT, "/v1/contacts/ct_x", "GET, HEAD, PATCH, DELETE"),
        (Method::DELETE, "/v1/contacts", "GET, HEAD, POST"),
        (Method::POST, "/v1/messages/msg_x", "GET, HEAD"),
        (Method::POST, "/openapi.json", "GET, HEAD"),
        (Method::DELETE, "/v1/capabilities", "GET, HEAD"),
        (Method::OPTIONS, "/v1/conversations", "GET, HEAD, POST"),
    ];
    for (method, path, allow) in cases {
        let response = h
            .http
            .request(method.clone(), h.url(path))
            .bearer_auth(h.acme())
            .send()
            .await
            .expect("request");
        assert_eq!(
            response
                .headers()
                .get("allow")
                .and_then(|v| v.to_str().ok()),
            Some(allow),
            "{method} {path}"
        );
        expect_problem(response, 405, "method_not_allowed").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_content_has_no_content_length_and_keeps_the_connection() {
    let h = Harness::start().await;
    let token = h.acme();
    let created = expect_status(
        h.send_on(
            "chatcaptain",
            Method::POST,
            "/v1/contacts",
            json!({"name": "Short Lived", "emails": ["short@example.com"]}),
        )
        .await,
        201,
    )
    .await;
    let id = created["id"].as_str().expect("id");
    let mut stream = TcpStream::connect(api_addr(&h)).await.expect("connect");
    let delete = format!(
        "DELETE /v1/contacts/{id} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    stream.write_all(delete.as_bytes()).await.expect("write");
    let response = read_response(&mut stream, Duration::from_secs(5))
        .await
        .expect("response");
    assert_eq!(response.status, 204, "{response:?}");
    assert_eq!(response.header("content-length"), None, "{response:?}");
    assert_eq!(response.header("content-type"), None);
    assert!(response.header("x-request-id").is_some());
    assert!(response.body.is_empty());
    assert!(!response.closed, "a 204 keeps the connection");
    // The same connection serves the next request.
    let get = format!(
        "GET /v1/contacts/{id} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    stream.write_all(get.as_bytes()).await.expect("write");
    let response = read_response(&mut stream, Duration::from_secs(5))
        .await
        .expect("response");
    assert_eq!(response.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_works_on_openapi_and_capabilities() {
    let h = Harness::start().await;
    let token = h.acme();
    for path in ["/openapi.json", "/v1/capabilities"] {
        let get = exchange(
            &h,
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await;
        assert_eq!(get.status, 200);
        let mut stream = TcpStream::connect(api_addr(&h)).await.expect("connect");
        let head =
            format!("HEAD {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n");
        stream.write_all(head.as_bytes()).await.expect("write");
        // A HEAD answer has the GET's headers and no body: read only the header.
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let deadline = Instant::now() + Duration::from_secs(5);
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = tokio::time::timeout(
                deadline.saturating_duration_since(Instant::now()),
                stream.read(&mut chunk),
            )
            .await
            .expect("HEAD answered in time")
            .expect("read");
            assert!(n > 0, "closed before the header");
            buf.extend_from_slice(&chunk[..n]);
        }
        let text = String::from_utf8_lossy(&buf).to_string();
        let (head_part, rest) = text.split_once("\r\n\r\n").expect("header end");
        assert!(head_part.starts_with("HTTP/1.1 200"), "{path}: {head_part}");
        assert!(rest.is_empty(), "{path}: HEAD sent a body");
        let length = head_part
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().to_owned())
            })
            .expect("content-length");
        assert_eq!(length, get.body.len().to_string(), "{path}");
        // The connection still serves a request afterwards: no stray body bytes.
        stream.write_all(head.as_bytes()).await.expect("write");
        let again = read_head_only(&mut stream).await;
        assert!(again.starts_with("HTTP/1.1 200"), "{path}: {again}");
    }
}

async fn read_head_only(stream: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .expect("in time")
            .expect("read");
        assert!(n > 0);
        buf.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&buf).to_string()
}
