//! The API listener's connection loop, in front of pingora's HTTP proxy.
//!
//! Pingora reads and parses a request header inside `HttpProxy` before any application hook
//! runs, so its own refusals (a header over the limit, a bad `Content-Length` or
//! `Transfer-Encoding`, a NUL in a header, too many headers, `HTTP/1.2`, `CONNECT`) answer
//! with an empty body and no `X-Request-Id`, and it bounds neither the time to send a
//! header nor (in total) a body. So each request header is read here first:
//!
//! 1. read until the end of the header, within `http.header_read_timeout_ms` (from accept,
//!    or from the first byte of a later request on a keep-alive connection) and
//!    `http.max_header_bytes` — else 408 `request_timeout` / 431 `header_too_large`;
//! 2. parse it with pingora's own parser over an in-memory copy, so every header pingora
//!    would refuse is refused here first with problem+json (400 `invalid_request`,
//!    431 for too many headers); an HTTP/1.1 request without `Host` is a 400 and `CONNECT`
//!    a 405;
//! 3. hand the connection and the bytes already read (as pingora's pipelined prefix) to
//!    `HttpProxy`, which parses the same bytes again and runs the `ProxyHttp` phases.
//!
//! The body deadline (`http.body_read_timeout_ms`) is enforced where the body is read
//! (`read_body` in the gateway). A refusal here is logged and counted like any answered
//! request (operation `unknown`, vendor `none`); every timeout also counts in
//! `switchboard_http_read_timeouts_total{phase}`.

use std::io::Cursor;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::BytesMut;
use pingora::apps::{HttpPersistentSettings, HttpServerApp, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::Stream;
use pingora::proxy::HttpProxy;
use pingora::server::configuration::ServerConf;
use pingora::server::ShutdownWatch;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{new_request_id, App, Gateway, Reply};
use crate::api::{ApiError, ErrorCode};
use crate::snapshot::HttpLimits;

/// How long writing a refusal may take: a client that does not read it is dropped.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(2);

pub struct ApiListener {
    app: Arc<App>,
    proxy: Arc<HttpProxy<Gateway>>,
}

impl ApiListener {
    pub fn new(app: Arc<App>, conf: &Arc<ServerConf>) -> Self {
        let proxy = pingora::proxy::http_proxy(conf, Gateway::new(app.clone()));
        ApiListener {
            app,
            proxy: Arc::new(proxy),
        }
    }
}

/// How reading one request header ended.
#[derive(Debug, PartialEq, Eq)]
enum Head {
    /// The header ends at this offset of the buffer.
    Complete(usize),
    /// The client closed (or the keep-alive wait ended) before sending a byte: nothing to say.
    Closed,
    TimedOut,
    TooLarge,
}

/// Where the header of the bytes read so far ends (after its empty line), if it does.
/// Accepts bare LF line ends as pingora's parser does.
fn header_end(buf: &[u8], from: usize) -> Option<usize> {
    let start = from.saturating_sub(3);
    let mut i = start;
    while let Some(pos) = buf[i..].iter().position(|b| *b == b'\n') {
        let nl = i + pos;
        match buf.get(nl + 1) {
            Some(b'\n') => return Some(nl + 2),
            Some(b'\r') if buf.get(nl + 2) == Some(&b'\n') => return Some(nl + 3),
            _ => {}
        }
        i = nl + 1;
    }
    None
}

/// Read one request header into `buf`. The first request of a connection has
/// `limits.header_read_timeout` from accept; a later one may idle up to the keep-alive
/// timeout (or until shutdown) for its first byte, then has the header timeout.
async fn read_head(
    stream: &mut Stream,
    buf: &mut BytesMut,
    limits: &HttpLimits,
    first_request: bool,
    shutdown: &ShutdownWatch,
) -> Head {
    let mut shutdown = shutdown.clone();
    let mut deadline = first_request.then(|| Instant::now() + limits.header_read_timeout);
    let idle_until = Instant::now() + limits.keepalive_timeout;
    let mut scanned = 0;
    loop {
        if let Some(end) = header_end(buf, scanned) {
            return if end > limits.max_header_bytes {
                Head::TooLarge
            } else {
                Head::Complete(end)
            };
        }
        if buf.len() > limits.max_header_bytes {
            return Head::TooLarge;
        }
        scanned = buf.len();
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(4096);
        }
        let until = deadline.unwrap_or(idle_until);
        let read = tokio::select! {
            read = tokio::time::timeout_at(until.into(), stream.read_buf(buf)) => read,
            _ = shutdown.changed(), if deadline.is_none() => return Head::Closed,
        };
        match read {
            Ok(Ok(0)) | Ok(Err(_)) => return Head::Closed,
            Ok(Ok(_)) => {
                if deadline.is_none() {
                    deadline = Some(Instant::now() + limits.header_read_timeout);
                }
            }
            Err(_) if deadline.is_none() => return Head::Closed, // idle keep-alive ended
            Err(_) => return Head::TimedOut,
        }
    }
}

/// Why a complete header is refused before pingora sees it.
struct Refusal {
    error: ApiError,
    /// The client's `X-Request-Id`, when the header parsed.
    request_id: Option<String>,
    allow: Option<&'static str>,
}

/// Parse `head` with pingora's own parser (on an in-memory copy) and apply the checks pingora
/// leaves to the application.
async fn check_head(head: &[u8]) -> Result<(), Refusal> {
    let mut session = ServerSession::new_http1(Box::new(Cursor::new(head.to_vec())));
    match session.read_request().await {
        Ok(true) => {}
        Ok(false) | Err(_) if head.is_empty() => {
            return Err(refusal(ApiError::invalid("empty request"), None));
        }
        Ok(false) => {
            return Err(refusal(
                ApiError::invalid("malformed HTTP request: incomplete header"),
                None,
            ))
        }
        Err(e) => return Err(refusal(parse_error(&e), None)),
    }
    let header = session.req_header();
    let request_id = super::client_request_id(&header.headers);
    if header.method == http::Method::CONNECT {
        return Err(Refusal {
            error: ApiError::new(
                ErrorCode::MethodNotAllowed,
                "CONNECT is not supported: switchboard is not a forward proxy",
            ),
            request_id,
            // The target of CONNECT is a tunnel, and this server allows no method on one.
            allow: Some(""),
        });
    }
    if header.version == http::Version::HTTP_11 && !header.headers.contains_key(http::header::HOST)
    {
        return Err(refusal(
            ApiError::invalid("an HTTP/1.1 request needs a Host header (RFC 9112 §3.2)"),
            request_id,
        ));
    }
    Ok(())
}

/// Header fields of a plain request, at most: more take the full check.
const PLAIN_MAX_HEADERS: usize = 32;

/// Whether `head` is a plain request that pingora's parser and checks, and [`check_head`], are
/// sure to accept — found in one pass without copying it or building a pingora session (the
/// header is parsed again by pingora anyway). Plain: httparse's strict parse (the one pingora
/// runs) completes at the end of `head`; HTTP/1.1; a common method (never CONNECT); an
/// origin-form target of unreserved, sub-delimiter, `:@/?%` characters; exactly one `Host`
/// without userinfo; at most one all-digit `Content-Length`; no `Transfer-Encoding`; visible
/// ASCII values; at most [`PLAIN_MAX_HEADERS`] fields. Anything else, refused or merely
/// unusual, returns false and takes [`check_head`].
fn plainly_valid(head: &[u8]) -> bool {
    let mut headers = [httparse::EMPTY_HEADER; PLAIN_MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(head) {
        Ok(httparse::Status::Complete(len)) if len == head.len() => {}
        _ => return false,
    }
    if request.version != Some(1)
        || !matches!(
            request.method,
            Some("GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS")
        )
    {
        return false;
    }
    let plain_target = |path: &str| {
        path.starts_with('/')
            && !path.starts_with("//")
            && path.bytes().all(|b| {
                b.is_ascii_alphanumeric()
                    || matches!(
                        b,
                        b'-' | b'.'
                            | b'_'
                            | b'~'
                            | b'!'
                            | b'$'
                            | b'&'
                            | b'\''
                            | b'('
                            | b')'
                            | b'*'
                            | b'+'
                            | b','
                            | b';'
                            | b'='
                            | b':'
                            | b'@'
                            | b'/'
                            | b'?'
                            | b'%'
                    )
            })
    };
    if !request.path.is_some_and(plain_target) {
        return false;
    }
    let (mut hosts, mut lengths) = (0, 0);
    for field in request.headers.iter() {
        if !field
            .value
            .iter()
            .all(|b| (0x20..0x7f).contains(b) || *b == b'\t')
        {
            return false;
        }
        if field.name.eq_ignore_ascii_case("host") {
            hosts += 1;
            if field.value.contains(&b'@') {
                return false;
            }
        } else if field.name.eq_ignore_ascii_case("content-length") {
            lengths += 1;
            if field.value.is_empty()
                || field.value.len() > 18
                || !field.value.iter().all(u8::is_ascii_digit)
            {
                return false;
            }
        } else if field.name.eq_ignore_ascii_case("transfer-encoding") {
            return false;
        }
    }
    hosts == 1 && lengths <= 1
}

fn refusal(error: ApiError, request_id: Option<String>) -> Refusal {
    Refusal {
        error,
        request_id,
        allow: None,
    }
}

/// The problem for a header pingora's parser refused. Pingora's context may quote the raw
/// request (tokens included), so only its static parts are used.
fn parse_error(e: &pingora::Error) -> ApiError {
    if let Some(cause) = e.cause.as_ref() {
        if let Some(parse) = cause.downcast_ref::<httparse::Error>() {
            return match parse {
                httparse::Error::TooManyHeaders => ApiError::new(
                    ErrorCode::HeaderTooLarge,
                    "too many header fields in the request",
                ),
                other => ApiError::invalid(format!("malformed HTTP request: {other}")),
            };
        }
    }
    let context = e.context.as_ref().map(|c| c.as_str()).unwrap_or_default();
    if context.starts_with("buf") || context.is_empty() {
        return ApiError::invalid("malformed HTTP request header");
    }
    let context: String = context.chars().take(120).collect();
    ApiError::invalid(format!("malformed HTTP request: {context}"))
}

impl ApiListener {
    /// Answer a refused request with problem+json and close the connection. Counted and
    /// logged like every answered request.
    async fn refuse(&self, mut stream: Stream, refusal: Refusal, started: Instant) {
        let request_id = refusal.request_id.unwrap_or_else(new_request_id);
        let reply = Reply::problem(&refusal.error, &request_id);
        let mut head = format!(
            "HTTP/1.1 {} {}\r\ncontent-type: {}\r\ncontent-length: {}\r\nx-request-id: {}\r\n\
             cache-control: no-store\r\nconnection: close\r\n",
            reply.status,
            http::StatusCode::from_u16(reply.status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or(""),
            reply.content_type,
            reply.body.len(),
            request_id,
        );
        if let Some(allow) = refusal.allow {
            head.push_str(&format!("allow: {allow}\r\n"));
        }
        head.push_str("\r\n");
        let write = async {
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(&reply.body).await?;
            stream.flush().await
        };
        if let Err(e) = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, write)
            .await
            .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
        {
            tracing::debug!(error = %e, "could not write the refusal");
        }
        let _ = stream.shutdown().await;
        let code = refusal.error.code.as_str();
        let elapsed = started.elapsed();
        self.app
            .metrics
            .observe_request("unknown", "none", code, elapsed);
        tracing::info!(
            target: "switchboard::access",
            request_id = %request_id,
            operation = "unknown",
            vendor = "none",
            connection = "-",
            status = reply.status,
            code,
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            vendor_ms = 0.0,
            vendor_calls = 0,
            cache = "none",
            "request"
        );
    }
}

#[async_trait]
impl ServerApp for ApiListener {
    async fn process_new(
        self: &Arc<Self>,
        mut stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let mut first_request = true;
        let mut persistent: Option<HttpPersistentSettings> = None;
        loop {
            let limits = self.app.snapshot().settings.http;
            let started = Instant::now();
            let mut buf = BytesMut::with_capacity(4096);
            let end = match read_head(&mut stream, &mut buf, &limits, first_request, shutdown).await
            {
                Head::Complete(end) => end,
                Head::Closed => return None,
                Head::TimedOut => {
                    self.app
                        .metrics
                        .read_timeouts
                        .with_label_values(&["header"])
                        .inc();
                    let error = ApiError::new(
                        ErrorCode::RequestTimeout,
                        format!(
                            "the request header did not arrive within {} ms",
                            limits.header_read_timeout.as_millis()
                        ),
                    );
                    self.refuse(stream, refusal(error, None), started).await;
                    return None;
                }
                Head::TooLarge => {
                    let error = ApiError::new(
                        ErrorCode::HeaderTooLarge,
                        format!(
                            "the request header is larger than {} bytes",
                            limits.max_header_bytes
                        ),
                    );
                    self.refuse(stream, refusal(error, None), started).await;
                    return None;
                }
            };
            if !plainly_valid(&buf[..end]) {
                if let Err(refused) = check_head(&buf[..end]).await {
                    self.refuse(stream, refused, started).await;
                    return None;
                }
            }
            let mut session = ServerSession::new_http1(stream);
            if *shutdown.borrow() {
                session.set_keepalive(None);
            } else {
                session.set_keepalive(Some(limits.keepalive_timeout.as_secs()));
            }
            if let Some(settings) = persistent.take() {
                settings.apply_to_session(&mut session);
            }
            session.set_pipelined_prefix(buf);
            let reused = HttpServerApp::process_new_http(&self.proxy, session, shutdown).await?;
            let (next, settings) = reused.consume();
            stream = next;
            persistent = settings;
            first_request = false;
        }
    }

    async fn cleanup(&self) {
        self.proxy.http_cleanup().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_end_of_a_header() {
        let head = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nbody";
        assert_eq!(header_end(head, 0), Some(head.len() - 4));
        assert_eq!(header_end(b"GET / HTTP/1.1\nHost: x\n\n", 0), Some(24));
        assert_eq!(header_end(b"GET / HTTP/1.1\r\nHost: x\r\n", 0), None);
        // found across reads: the scan restarts a few bytes before the new data
        let head = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(header_end(head, 25), Some(head.len()));
    }

    #[tokio::test]
    async fn pingora_refusals_are_found_before_pingora() {
        let cases: &[(&[u8], ErrorCode)] = &[
            (
                b"GET / HTTP/1.2\r\nHost: x\r\n\r\n",
                ErrorCode::InvalidRequest,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n",
                ErrorCode::InvalidRequest,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                ErrorCode::InvalidRequest,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: five\r\n\r\n",
                ErrorCode::InvalidRequest,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
                ErrorCode::InvalidRequest,
            ),
            (
                b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
                ErrorCode::InvalidRequest,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
                ErrorCode::InvalidRequest,
            ),
            (b"GET / HTTP/1.1\r\n\r\n", ErrorCode::InvalidRequest),
            (
                b"CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n",
                ErrorCode::MethodNotAllowed,
            ),
            (
                b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
                ErrorCode::InvalidRequest,
            ),
        ];
        for (head, code) in cases {
            assert!(!plainly_valid(head), "{}", String::from_utf8_lossy(head));
            let refused = check_head(head).await.err();
            assert_eq!(
                refused.map(|r| r.error.code),
                Some(*code),
                "{}",
                String::from_utf8_lossy(head)
            );
        }
        let mut many = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
        for i in 0..300 {
            many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        let refused = check_head(&many).await.err().map(|r| r.error.code);
        assert_eq!(refused, Some(ErrorCode::HeaderTooLarge));
        assert!(!plainly_valid(&many));
        for ok in [
            &b"GET /v1/contacts HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"GET /v1/contacts HTTP/1.0\r\n\r\n",
            b"POST /v1/contacts HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n",
            b"POST /v1/contacts HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert!(
                check_head(ok).await.is_ok(),
                "{}",
                String::from_utf8_lossy(ok)
            );
        }
    }

    /// The fast path only ever says yes to what the full check accepts; the unusual but valid
    /// takes the full check.
    #[tokio::test]
    async fn plain_requests_skip_the_second_parse_and_the_full_check_accepts_them() {
        let plain: &[&[u8]] = &[
            b"GET /v1/contacts HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /v1/conversations/cv_WyJhY21lIl0?include=raw&limit=30 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\
              Authorization: Bearer a.b.c\r\nCache-Control: no-cache\r\nX-Request-Id: r-1\r\n\r\n",
            b"POST /v1/contacts HTTP/1.1\r\nhost: x\r\ncontent-length: 12\r\n\
              Content-Type: application/json\r\n\r\n",
            b"DELETE /v1/contacts/ct_x HTTP/1.1\nHost: x\n\n",
            b"GET /v1/contacts?q=a%20b HTTP/1.1\r\nHost: x\r\nX-Empty:\r\n\r\n",
        ];
        for head in plain {
            assert!(plainly_valid(head), "{}", String::from_utf8_lossy(head));
            assert!(
                check_head(head).await.is_ok(),
                "{}",
                String::from_utf8_lossy(head)
            );
        }
        let unusual: &[&[u8]] = &[
            b"GET /v1/contacts HTTP/1.0\r\n\r\n",
            b"POST /v1/contacts HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET /v1/contacts HTTP/1.1\r\nHost: x\r\nX-Name: caf\xc3\xa9\r\n\r\n",
            b"GET http://x/v1/contacts HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET //v1/contacts HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /v1/{contacts} HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: u@x\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2, 2\r\n\r\n",
            b"PROPFIND / HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET",
        ];
        for head in unusual {
            assert!(!plainly_valid(head), "{}", String::from_utf8_lossy(head));
        }
    }

    #[tokio::test]
    async fn a_refusal_never_quotes_the_request() {
        let head = b"GET / HTTP/1.1\r\nAuthorization: Bearer SECRET-TOKEN\r\nX-Bad: \x01\r\n\r\n";
        let refused = check_head(head).await.expect_err("refused");
        assert!(
            !refused.error.detail.contains("SECRET"),
            "{}",
            refused.error.detail
        );
    }
}
