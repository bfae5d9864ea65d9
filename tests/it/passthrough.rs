//! `/v1/passthrough/{connection}/{vendor path…}`: allowed calls reach the vendor with the
//! connection's credentials and never the app's; refusals (off the allow-list, a foreign
//! connection, a token without scope `passthrough`, a body over the limit) make no vendor
//! call; the vendor's answer comes back as it is minus its cookies and hop-by-hop headers; a
//! 50 MB download streams through the real `switchboard` binary with flat memory.
//!
//! The Libredesk sandbox serves the shipped allow-list (`GET /api/v1/agents`); a raw loopback
//! "vendor" ([`RawVendor`]) answers what no sandbox would: cookies, hop-by-hop headers, a
//! 50 MB body, and it records every header it was sent.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::harness::*;

/// One request the raw vendor received: method, target, every header (lowercase names, in
/// order), and how many body bytes arrived.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body_len: usize,
}

impl Seen {
    fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Bytes `/big` answers with.
const BIG: usize = 50 * 1024 * 1024;

/// A loopback HTTP/1.1 server speaking raw bytes, so its answers carry exactly the headers the
/// test wants (cookies, `Connection`-named headers) and it sees exactly the headers it is sent.
struct RawVendor {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RawVendor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RawVendor {
    async fn start() -> RawVendor {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        connections.spawn(serve(stream, record.clone()));
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        RawVendor { addr, seen, task }
    }

    fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// Serve requests on one connection until it closes.
async fn serve(stream: TcpStream, record: Arc<Mutex<Vec<Seen>>>) {
    let mut stream = BufReader::new(stream);
    loop {
        let mut head = Vec::new();
        loop {
            let mut line = String::new();
            match stream.read_line(&mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line == "\r\n" {
                break;
            }
            head.push(line.trim_end().to_owned());
        }
        let mut request_line = head[0].split(' ');
        let method = request_line.next().unwrap().to_owned();
        let target = request_line.next().unwrap().to_owned();
        let headers: Vec<(String, String)> = head[1..]
            .iter()
            .map(|l| {
                let (n, v) = l.split_once(':').unwrap();
                (n.trim().to_ascii_lowercase(), v.trim().to_owned())
            })
            .collect();
        let index = {
            let mut seen = record.lock().unwrap();
            seen.push(Seen {
                method: method.clone(),
                target: target.clone(),
                headers: headers.clone(),
                body_len: 0,
            });
            seen.len() - 1
        };
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        // The body: by Content-Length, or chunked.
        let mut body_len = 0usize;
        if let Some(len) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
            let mut body = vec![0u8; len];
            if stream.read_exact(&mut body).await.is_err() {
                return;
            }
            body_len = len;
        } else if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            loop {
                let mut size = String::new();
                if stream.read_line(&mut size).await.unwrap_or(0) == 0 {
                    return;
                }
                let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
                let mut chunk = vec![0u8; size + 2];
                if stream.read_exact(&mut chunk).await.is_err() {
                    return;
                }
                body_len += size;
                if size == 0 {
                    break;
                }
            }
        }
        record.lock().unwrap()[index].body_len = body_len;
        let path = target.split('?').next().unwrap_or_default();
        let written = match path {
            "/echo" => {
                stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\n\
                          content-type: text/plain; charset=utf-8\r\n\
                          content-length: 5\r\n\
                          set-cookie: vendor_session=abc; Path=/\r\n\
                          set-cookie: other=1\r\n\
                          x-vendor: yes\r\n\
                          connection: x-hop\r\n\
                          x-hop: drop-me\r\n\
                          keep-alive: timeout=5\r\n\
                          proxy-authenticate: Basic\r\n\
                          \r\n\
                          hello",
                    )
                    .await
            }
            "/teapot" => {
                let body = br#"{"vendor_error":"short and stout"}"#;
                let head = format!(
                    "HTTP/1.1 418 I'm a teapot\r\ncontent-type: application/vnd.teapot+json\r\ncontent-length: {}\r\n\r\n",
                    body.len()
                );
                let mut answer = head.into_bytes();
                answer.extend_from_slice(body);
                stream.write_all(&answer).await
            }
            "/upload" => {
                let body = body_len.to_string();
                let head = format!(
                    "HTTP/1.1 201 Created\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                stream.write_all(head.as_bytes()).await
            }
            "/big" => {
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: {BIG}\r\n\r\n"
                );
                let mut result = stream.write_all(head.as_bytes()).await;
                let chunk = vec![b'x'; 64 * 1024];
                let mut sent = 0;
                while result.is_ok() && sent < BIG {
                    result = stream.write_all(&chunk).await;
                    sent += chunk.len();
                }
                result
            }
            _ => {
                stream
                    .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
                    .await
            }
        };
        if written.is_err() || stream.flush().await.is_err() {
            return;
        }
    }
}

/// The shipped Libredesk routes plus the raw vendor's paths, a custom header allow-list and a
/// 4 KiB body limit.
fn raw_vendor_routes(name: &str, text: String) -> String {
    if name != "libredesk.yaml" {
        return text;
    }
    let text = text.replace(
        "    - { method: GET, path: /api/v1/agents }\n",
        "    - { method: GET, path: /api/v1/agents }\n    - { method: GET, path: /echo }\n    - { method: GET, path: /teapot }\n    - { method: POST, path: /upload }\n    - { method: GET, path: /big }\n",
    );
    let text = text.replace(
        "  # headers: [accept, accept-language, content-type]",
        "  headers: [accept, content-type, x-app-trace, x-hop]",
    );
    assert!(text.contains("headers: [accept, content-type, x-app-trace"));
    text.replace("max_body_bytes: 1048576", "max_body_bytes: 4096")
}

async fn with_raw_vendor() -> (Harness, RawVendor) {
    let vendor = RawVendor::start().await;
    let h = Harness::start_with(Options {
        routes_transform: Some(raw_vendor_routes),
        extra_connections: format!(
            "  raw:\n    vendor:\n      vendor: libredesk\n      base_url: {}\n      credentials: {{api_key: raw-key, api_secret: raw-secret}}\n      defaults: {{inbox_id: 1}}\n",
            vendor.base_url()
        ),
        ..Options::default()
    })
    .await;
    (h, vendor)
}

fn raw_token(h: &Harness) -> String {
    h.token("raw", "passthrough")
}

#[tokio::test]
async fn an_allowed_call_reaches_the_sandbox_with_the_connections_auth_and_not_the_apps_token() {
    let h = Harness::start().await;
    h.libredesk.reset_calls();
    let response = h
        .http
        .get(h.url("/v1/passthrough/support/api/v1/agents?page=1"))
        .bearer_auth(h.token("acme", "passthrough"))
        .header("X-Request-Id", "pt-req-1")
        .header("Cookie", "app_session=secret")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "pt-req-1");
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let body: serde_json::Value = response.json().await.unwrap();
    // Libredesk's own envelope, untouched: not normalized.
    assert_eq!(body["status"], "success");
    assert_eq!(body["data"][0]["first_name"], "Grace");
    assert_eq!(body["data"].as_array().unwrap().len(), 3);

    let calls = h.libredesk.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].method, "GET");
    assert_eq!(calls[0].path, "/api/v1/agents");
    assert_eq!(calls[0].query.as_deref(), Some("page=1"));
    assert_eq!(calls[0].request_id.as_deref(), Some("pt-req-1"));
    // Exactly one Authorization arrived, Libredesk's `token key:secret` (the sandbox answered
    // 200, so it was the connection's): the app's `Bearer <JWT>` never left the gateway.
    assert_eq!(calls[0].authorization_schemes, vec!["token".to_owned()]);

    // A connection whose credentials the vendor refuses: the vendor's 401 as it is.
    let refused = h
        .http
        .get(h.url("/v1/passthrough/badcreds/api/v1/agents"))
        .bearer_auth(h.token("acme", "passthrough"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(
        body["status"], "error",
        "the vendor's own error body: {body}"
    );
}

#[tokio::test]
async fn off_list_foreign_connection_and_missing_scope_make_no_vendor_call() {
    let h = Harness::start().await;
    h.libredesk.reset_calls();
    let token = h.token("acme", "passthrough");
    let send = |method: reqwest::Method, path: &str, token: &str| {
        h.http
            .request(method, h.url(path))
            .bearer_auth(token)
            .send()
    };
    // A real Libredesk path, but not on the allow-list.
    let off_list = send(
        reqwest::Method::GET,
        "/v1/passthrough/support/api/v1/contacts",
        &token,
    )
    .await
    .unwrap();
    let body = expect_problem(off_list, 403, "forbidden").await;
    assert!(
        body["detail"].as_str().unwrap().contains("allow-list"),
        "{body}"
    );
    // An allowed path with a method that is not allowed.
    let wrong_method = send(
        reqwest::Method::DELETE,
        "/v1/passthrough/support/api/v1/agents/1",
        &token,
    )
    .await
    .unwrap();
    expect_problem(wrong_method, 403, "forbidden").await;
    // A path that climbs out of an allowed pattern, sent byte for byte (an HTTP client
    // library would resolve the dot segments itself).
    for climbing in [
        "/v1/passthrough/support/api/v1/agents/%2e%2e/contacts",
        "/v1/passthrough/support/api/v1/agents/../contacts",
        "/v1/passthrough/support/api/v1/agents/1%2F..%2F..%2Fcontacts",
    ] {
        let answer = raw_request(&h, &format!("GET {climbing} HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n")).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{climbing}: {answer}");
        assert!(answer.contains("invalid_request"), "{climbing}: {answer}");
    }
    // No vendor path at all.
    let bare = send(reqwest::Method::GET, "/v1/passthrough/support", &token)
        .await
        .unwrap();
    expect_problem(bare, 403, "forbidden").await;
    // Another tenant's connection name: tenant `solo` has no `support`.
    let foreign = send(
        reqwest::Method::GET,
        "/v1/passthrough/support/api/v1/agents",
        &h.token("solo", "passthrough"),
    )
    .await
    .unwrap();
    expect_problem(foreign, 404, "not_found").await;
    // Every other scope, but not `passthrough`.
    let everything_else = ALL_SCOPES.replace(" passthrough", "");
    assert!(!everything_else.contains("passthrough"));
    let no_scope = send(
        reqwest::Method::GET,
        "/v1/passthrough/support/api/v1/agents",
        &h.token("acme", &everything_else),
    )
    .await
    .unwrap();
    let body = expect_problem(no_scope, 403, "forbidden").await;
    assert!(
        body["detail"].as_str().unwrap().contains("passthrough"),
        "{body}"
    );
    // No token at all.
    let anonymous = h
        .http
        .get(h.url("/v1/passthrough/support/api/v1/agents"))
        .send()
        .await
        .unwrap();
    expect_problem(anonymous, 401, "unauthorized").await;

    assert_eq!(h.libredesk.call_count(), 0, "{:?}", h.libredesk.calls());
    // The same call with the scope does reach the vendor (the refusals above were refusals).
    let allowed = send(
        reqwest::Method::GET,
        "/v1/passthrough/support/api/v1/agents",
        &token,
    )
    .await
    .unwrap();
    assert_eq!(allowed.status(), 200);
    assert_eq!(h.libredesk.call_count(), 1);
}

/// Send `request` as it is to the gateway and read the answer until the gateway closes.
async fn raw_request(h: &Harness, request: &str) -> String {
    let api: SocketAddr = h.api.trim_start_matches("http://").parse().unwrap();
    let mut stream = TcpStream::connect(api).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("the gateway answers and closes")
        .unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn capabilities_list_each_connections_allowed_calls() {
    let h = Harness::start().await;
    let caps = h.get_json("/v1/capabilities", 200).await;
    let entry = |name: &str| {
        caps["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["connection"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in {caps}"))
    };
    let support = entry("support")["passthrough"].clone();
    assert!(
        support
            .as_array()
            .unwrap()
            .contains(&json!({"method": "GET", "path": "/api/v1/agents"})),
        "{support}"
    );
    // A vendor whose routes file allows nothing lists nothing.
    let chatcaptain = entry("chatcaptain");
    assert_eq!(chatcaptain["passthrough"], json!([]), "{chatcaptain}");
}

#[tokio::test]
async fn the_vendor_sees_only_allow_listed_headers_and_the_app_sees_no_vendor_cookies() {
    let (h, vendor) = with_raw_vendor().await;
    let response = h
        .http
        .get(h.url("/v1/passthrough/vendor/echo?x=1&y=%20z"))
        .bearer_auth(raw_token(&h))
        .header("Cookie", "app_session=secret")
        .header("X-App-Trace", "trace-7")
        .header("X-Not-Listed", "nope")
        .header("Proxy-Authorization", "Basic YXBwOnB3")
        .header("Connection", "x-hop")
        .header("X-Hop", "named-hop-by-hop")
        .header("X-Connection", "vendor")
        .header("X-Request-Id", "pt-hdr-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["x-vendor"], "yes");
    assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
    assert_eq!(headers["x-request-id"], "pt-hdr-1");
    for stripped in ["set-cookie", "x-hop", "keep-alive", "proxy-authenticate"] {
        assert!(
            !headers.contains_key(stripped),
            "{stripped} reached the app: {headers:?}"
        );
    }
    assert_eq!(response.text().await.unwrap(), "hello");

    let seen = vendor.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let call = &seen[0];
    assert_eq!(call.method, "GET");
    assert_eq!(call.target, "/echo?x=1&y=%20z");
    assert_eq!(
        call.header("authorization"),
        vec!["token raw-key:raw-secret"]
    );
    assert_eq!(call.header("x-app-trace"), vec!["trace-7"]);
    assert_eq!(call.header("x-request-id"), vec!["pt-hdr-1"]);
    assert_eq!(call.header("host"), vec![vendor.addr.to_string()]);
    for never in [
        "cookie",
        "x-not-listed",
        "proxy-authorization",
        "x-hop",
        "x-connection",
    ] {
        assert!(
            call.header(never).is_empty(),
            "{never} reached the vendor: {:?}",
            call.headers
        );
    }
    // The connection header, if any, is the gateway's own (keep-alive), never the app's.
    assert!(
        call.header("connection")
            .iter()
            .all(|v| !v.contains("x-hop")),
        "{:?}",
        call.headers
    );
}

#[tokio::test]
async fn a_vendor_error_comes_back_as_it_is_not_as_a_problem() {
    let (h, _vendor) = with_raw_vendor().await;
    let response = h
        .http
        .get(h.url("/v1/passthrough/vendor/teapot"))
        .bearer_auth(raw_token(&h))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 418);
    assert_eq!(
        response.headers()["content-type"],
        "application/vnd.teapot+json"
    );
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"vendor_error":"short and stout"}"#
    );
}

#[tokio::test]
async fn request_bodies_stream_to_the_vendor_up_to_the_configured_limit() {
    let (h, vendor) = with_raw_vendor().await;
    let token = raw_token(&h);
    // Under the 4096-byte limit: the whole body arrives.
    let response = h
        .http
        .post(h.url("/v1/passthrough/vendor/upload"))
        .bearer_auth(&token)
        .header("Content-Type", "application/octet-stream")
        .body(vec![b'a'; 3000])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(response.text().await.unwrap(), "3000");
    assert_eq!(vendor.seen().last().unwrap().body_len, 3000);
    assert_eq!(
        vendor.seen().last().unwrap().header("content-type"),
        vec!["application/octet-stream"]
    );

    // A declared length over the limit: refused before any vendor call.
    let calls_before = vendor.seen().len();
    let response = h
        .http
        .post(h.url("/v1/passthrough/vendor/upload"))
        .bearer_auth(&token)
        .body(vec![b'a'; 5000])
        .send()
        .await
        .unwrap();
    expect_problem(response, 413, "payload_too_large").await;
    assert_eq!(vendor.seen().len(), calls_before);

    // A chunked body that grows over the limit: cut off with 413 while streaming.
    let api: SocketAddr = h.api.trim_start_matches("http://").parse().unwrap();
    let mut stream = TcpStream::connect(api).await.unwrap();
    let head = format!(
        "POST /v1/passthrough/vendor/upload HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {token}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = format!("3e8\r\n{}\r\n", "b".repeat(1000));
    let mut answer = Vec::new();
    for _ in 0..6 {
        if stream.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "no answer to an oversized chunked body");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("payload_too_large"), "{answer}");
    // Whatever reached the vendor is never more than the limit.
    assert!(vendor.seen().iter().all(|s| s.body_len <= 4096));
}

#[tokio::test]
async fn passthrough_calls_are_counted_under_operation_passthrough() {
    let h = Harness::start().await;
    let token = h.token("acme", "passthrough");
    let ok = h
        .http
        .get(h.url("/v1/passthrough/support/api/v1/agents"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let refused = h
        .http
        .get(h.url("/v1/passthrough/support/api/v1/contacts"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    // A request is counted in its logging phase, just after its answer went out: poll.
    let expected = [
        r#"switchboard_http_requests_total{code="ok",operation="passthrough",vendor="libredesk"}"#,
        r#"switchboard_http_requests_total{code="forbidden",operation="passthrough",vendor="libredesk"}"#,
        r#"switchboard_vendor_requests_total{operation="passthrough",outcome="ok",vendor="libredesk"}"#,
    ];
    let deadline = Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let metrics = h
            .http
            .get(format!("{}/metrics", h.admin))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if expected
            .iter()
            .all(|series| metrics.lines().any(|l| l.starts_with(series)))
        {
            break metrics;
        }
        assert!(
            Instant::now() < deadline,
            "not all of {expected:?} in\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let value = |series: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {series} in\n{metrics}"))
    };
    assert_eq!(
        value(
            r#"switchboard_http_requests_total{code="ok",operation="passthrough",vendor="libredesk"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            r#"switchboard_http_requests_total{code="forbidden",operation="passthrough",vendor="libredesk"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            r#"switchboard_vendor_requests_total{operation="passthrough",outcome="ok",vendor="libredesk"}"#
        ),
        1.0
    );
    // No raw path ever becomes a label.
    assert!(!metrics.contains("/api/v1"), "{metrics}");
}

/// The real binary, its own process: its RSS is what the download costs.
struct Gateway(Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

#[tokio::test]
async fn a_50_mb_download_streams_through_the_binary_with_flat_memory() {
    let vendor = RawVendor::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("routes")).unwrap();
    let routes = std::fs::read_to_string(repo_path("routes/libredesk.yaml")).unwrap();
    std::fs::write(
        dir.path().join("routes/libredesk.yaml"),
        raw_vendor_routes("libredesk.yaml", routes),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("connections.yaml"),
        format!(
            "tenants:\n  acme:\n    bulk:\n      vendor: libredesk\n      base_url: {}\n      credentials: {{api_key: k, api_secret: s}}\n      defaults: {{inbox_id: 1}}\n",
            vendor.base_url()
        ),
    )
    .unwrap();
    let [api, admin] = free_ports();
    std::fs::write(
        dir.path().join("switchboard.yaml"),
        format!(
            "listen:\n  api: 127.0.0.1:{api}\n  admin: 127.0.0.1:{admin}\nthreads: 2\ngrace_period_seconds: 0\n\
             graceful_shutdown_timeout_seconds: 1\nbody_limit_bytes: 65536\nroutes_dir: routes\n\
             connections: connections.yaml\njwt:\n  algorithm: HS256\n  secret: {SECRET}\n  audience: {AUDIENCE}\n\
             cursor_secret: test-cursor-secret-0123456789\nlog:\n  format: json\n  filter: info\n"
        ),
    )
    .unwrap();
    let log_path = dir.path().join("switchboard.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["run", "--config"])
        .arg(dir.path().join("switchboard.yaml"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("switchboard starts");
    let pid = child.id();
    let _gateway = Gateway(child);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !http
        .get(format!("http://127.0.0.1:{admin}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
    {
        assert!(
            Instant::now() < deadline,
            "switchboard did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let token = token_with("acme", "passthrough", json!({"aud": AUDIENCE}));
    let url = format!("http://127.0.0.1:{api}/v1/passthrough/bulk/big");
    // Warm up: the pools, the proxy path and the allocator's first arenas.
    let warm = http.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(warm.status(), 200);
    let mut warm = warm;
    let mut warm_bytes = 0;
    while let Some(chunk) = warm.chunk().await.unwrap() {
        warm_bytes += chunk.len();
        if warm_bytes > BIG / 10 {
            break;
        }
    }
    drop(warm);
    let baseline = rss_kib(pid);
    let mut response = http
        .get(&url)
        .bearer_auth(&token)
        .header("X-Request-Id", "pt-big-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-length"],
        BIG.to_string().as_str()
    );
    let mut received = 0usize;
    let mut peak = baseline;
    let mut samples = 0;
    while let Some(chunk) = response.chunk().await.unwrap() {
        received += chunk.len();
        if samples % 16 == 0 {
            peak = peak.max(rss_kib(pid));
        }
        samples += 1;
    }
    peak = peak.max(rss_kib(pid));
    assert_eq!(received, BIG);
    let growth_mib = (peak.saturating_sub(baseline)) as f64 / 1024.0;
    eprintln!(
        "passthrough 50 MB download: RSS baseline {} KiB, peak {peak} KiB, growth {growth_mib:.1} MiB",
        baseline
    );
    assert!(
        growth_mib < 16.0,
        "RSS grew {growth_mib:.1} MiB while streaming {BIG} bytes (baseline {baseline} KiB, peak {peak} KiB)"
    );

    // The access log line of the download (written once the response is done).
    let deadline = Instant::now() + Duration::from_secs(10);
    let line = loop {
        let text = std::fs::read_to_string(&log_path).unwrap();
        let found = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|l| l["request_id"] == "pt-big-1" && l["message"] == "request");
        if let Some(line) = found {
            break line;
        }
        assert!(
            Instant::now() < deadline,
            "no access log line for pt-big-1:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(line["operation"], "passthrough", "{line}");
    assert_eq!(line["vendor"], "libredesk", "{line}");
    assert_eq!(line["connection"], "bulk", "{line}");
    assert_eq!(line["status"], 200, "{line}");
    assert_eq!(line["code"], "ok", "{line}");
    assert_eq!(line["vendor_calls"], 1, "{line}");
    let text = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        !text.contains("raw-secret") && !text.contains("token k:s"),
        "{text}"
    );
}

#[tokio::test]
async fn the_allow_list_reloads_and_a_bad_one_keeps_the_old_rules_serving() {
    let h = Harness::start().await;
    let token = h.token("acme", "passthrough");
    let status = |path: &'static str| {
        let request = h
            .http
            .get(h.url(&format!("/v1/passthrough/support{path}")))
            .bearer_auth(&token)
            .send();
        async move { request.await.unwrap().status().as_u16() }
    };
    assert_eq!(status("/api/v1/teams").await, 200);

    // Teams off the list: applied by a reload, no restart.
    let shipped = h.read("routes/libredesk.yaml");
    let without_teams = shipped.replace("    - { method: GET, path: /api/v1/teams }\n", "");
    assert_ne!(without_teams, shipped);
    h.write("routes/libredesk.yaml", &without_teams);
    h.app.reload("test").expect("a good allow-list reloads");
    assert_eq!(status("/api/v1/teams").await, 403);
    assert_eq!(status("/api/v1/agents").await, 200);

    // A broken rule: refused with its key, and the previous rules keep serving.
    let broken = shipped.replace(
        "    - { method: GET, path: /api/v1/teams }\n",
        "    - { method: TRACE, path: /api/v1/teams }\n",
    );
    h.write("routes/libredesk.yaml", &broken);
    let error = h.app.reload("test").expect_err("a bad rule is refused");
    assert!(error.file.ends_with("libredesk.yaml"), "{error:?}");
    assert_eq!(error.key, "passthrough.allow[2].method", "{error:?}");
    assert!(error.reason.contains("TRACE"), "{error:?}");
    assert_eq!(status("/api/v1/teams").await, 403);
    assert_eq!(status("/api/v1/agents").await, 200);
}

#[tokio::test]
async fn a_vendor_that_cannot_be_reached_or_stays_silent_is_a_problem() {
    let h = Harness::start_with(Options {
        vendor_timeout_ms: 300,
        ..Options::default()
    })
    .await;
    let token = h.token("acme", "passthrough");
    // `down` points at a closed port.
    let down = h
        .http
        .get(h.url("/v1/passthrough/down/api/v1/agents"))
        .bearer_auth(&token)
        .header("X-Request-Id", "pt-down-1")
        .send()
        .await
        .unwrap();
    let body = expect_problem(down, 503, "vendor_unavailable").await;
    assert_eq!(body["request_id"], "pt-down-1");
    assert!(!body.to_string().contains("127.0.0.1"), "{body}");

    // A vendor silent for longer than the routes file's timeout.
    h.libredesk.inject(
        switchboard::sandbox::Fault::Latency(Duration::from_secs(2)),
        Some(1),
    );
    let silent = h
        .http
        .get(h.url("/v1/passthrough/support/api/v1/agents"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    expect_problem(silent, 504, "vendor_timeout").await;
}

#[tokio::test]
async fn the_tenant_limit_applies_to_passthrough_calls() {
    let h = Harness::start_with(Options {
        extra_connections: "rate_limits:\n  acme: {requests_per_second: 0.01, burst: 2}\n".into(),
        ..Options::default()
    })
    .await;
    h.libredesk.reset_calls();
    let token = h.token("acme", "passthrough");
    for _ in 0..2 {
        let allowed = h
            .http
            .get(h.url("/v1/passthrough/support/api/v1/agents"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(allowed.status(), 200);
        assert!(
            allowed.headers().contains_key("ratelimit-policy"),
            "{allowed:?}"
        );
    }
    let limited = h
        .http
        .get(h.url("/v1/passthrough/support/api/v1/agents"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(limited.headers().contains_key("retry-after"), "{limited:?}");
    expect_problem(limited, 429, "rate_limited").await;
    assert_eq!(
        h.libredesk.call_count(),
        2,
        "the limited call reached the vendor"
    );
}

// ----- the vendor edge: the same breaker, budget and pause as translated calls ---------------

/// The Libredesk routes file with vendor-edge settings added (the harness turns the edge off
/// unless `vendor_edge` is emptied, as here).
fn edge_routes(name: &str, text: String) -> String {
    if name == "libredesk.yaml" {
        format!(
            "{text}\nretry: {{enabled: false}}\ncircuit_breaker: {{consecutive_failures: 3, open_seconds: 60}}\n\
             vendor_budget: {{requests_per_second: 0.01, burst: 6, max_wait_ms: 0}}\n"
        )
    } else {
        text
    }
}

async fn passthrough_get(h: &Harness) -> reqwest::Response {
    h.http
        .get(h.url("/v1/passthrough/support/api/v1/agents"))
        .bearer_auth(h.token("acme", ALL_SCOPES))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passthrough_failures_open_the_circuit_and_an_open_circuit_refuses_passthrough() {
    let h = Harness::start_with(Options {
        routes_transform: Some(edge_routes),
        vendor_edge: String::new(),
        ..Options::default()
    })
    .await;
    h.libredesk
        .inject(switchboard::sandbox::Fault::Status(503), None);
    let before = h.libredesk.call_count();
    // Three vendor 5xx through passthrough: relayed as they are, and counted by the breaker.
    for _ in 0..3 {
        assert_eq!(passthrough_get(&h).await.status(), 503);
    }
    assert_eq!(h.libredesk.call_count() - before, 3);
    // The circuit is open for the connection: a translated call is refused without a call...
    let translated = h.get_on("support", "/v1/conversations?limit=1").await;
    assert!(translated.headers().contains_key("retry-after"));
    expect_problem(translated, 503, "vendor_unavailable").await;
    // ...and so is a passthrough call, as problem+json (the gateway refused, not the vendor).
    let refused = passthrough_get(&h).await;
    assert!(refused.headers().contains_key("retry-after"));
    expect_problem(refused, 503, "vendor_unavailable").await;
    assert_eq!(
        h.libredesk.call_count() - before,
        3,
        "no vendor call while the circuit is open"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vendor_429_relayed_through_passthrough_pauses_the_connection() {
    let h = Harness::start_with(Options {
        routes_transform: Some(edge_routes),
        vendor_edge: String::new(),
        ..Options::default()
    })
    .await;
    let before = h.libredesk.call_count();
    // A vendor 429 with Retry-After relayed through passthrough pauses the connection.
    h.libredesk.inject(
        switchboard::sandbox::Fault::RateLimit {
            retry_after_secs: 30,
        },
        Some(1),
    );
    assert_eq!(passthrough_get(&h).await.status(), 429);
    assert_eq!(h.libredesk.call_count() - before, 1);
    let paused = passthrough_get(&h).await;
    expect_problem(paused, 429, "vendor_rate_limited").await;
    let paused = h.get_on("support", "/v1/conversations?limit=1").await;
    expect_problem(paused, 429, "vendor_rate_limited").await;
    assert_eq!(
        h.libredesk.call_count() - before,
        1,
        "no vendor call while paused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vendor_budget_counts_passthrough_and_translated_calls_together() {
    let h = Harness::start_with(Options {
        routes_transform: Some(edge_routes),
        vendor_edge: String::new(),
        ..Options::default()
    })
    .await;
    let before = h.libredesk.call_count();
    // A burst of 6 shared by both kinds of call, no refill to speak of (0.01 per second).
    for _ in 0..3 {
        assert_eq!(passthrough_get(&h).await.status(), 200);
        let r = h.get_on("support", "/v1/conversations?limit=1").await;
        assert_eq!(r.status(), 200);
    }
    let refused = passthrough_get(&h).await;
    assert!(refused.headers().contains_key("retry-after"));
    expect_problem(refused, 429, "vendor_rate_limited").await;
    assert_eq!(
        h.libredesk.call_count() - before,
        6,
        "the refused call reached the vendor"
    );
}
