//! POSTing to an arbitrary URL: subscriber deliveries and the CAAC agent bridge.
//!
//! [`WebhookSender`] is the seam the delivery worker calls (tests may drive it with any
//! implementation; the real one is [`PingoraSender`]). The gateway's `VendorClient` cannot
//! serve here: it only sends a connection's routes-file endpoints, or GETs (`fetch_url`), and
//! its `exchange` is private. [`PingoraSender`] uses the same stack — pingora's `Connector`
//! (keep-alive pool, TLS with certificate verification) — so there is still one HTTP/TLS stack
//! in the process. Like `VendorClient`, the connector is created lazily on first use, inside the
//! runtime of the service that sends.

use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use http::{HeaderName, HeaderValue};
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::upstreams::peer::HttpPeer;

use crate::resilience::pause::parse_retry_after;

/// Largest answer body read (a subscriber's body is ignored; an agent's reply is small).
pub const MAX_RESPONSE_BODY: usize = 1024 * 1024;
const POOL_IDLE: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One POST.
#[derive(Debug, Clone)]
pub struct WebhookRequest {
    pub url: url::Url,
    /// Extra headers (`webhook-*`, content type, user agent). `Host` and `Content-Length` are
    /// set by the sender.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
    /// Whole exchange, connect to last byte.
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookResponse {
    pub status: u16,
    /// `Retry-After` (seconds or an HTTP date), when the receiver sent one.
    pub retry_after: Option<Duration>,
    pub body: Bytes,
}

/// Why no answer came. The text is safe to store and show an operator: it never contains the
/// body, the headers or the signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("no answer within {} ms", .0.as_millis())]
    Timeout(Duration),
    #[error("could not connect: {0}")]
    Connect(String),
    #[error("connection failed during the exchange: {0}")]
    Io(String),
    #[error("answer body larger than {MAX_RESPONSE_BODY} bytes")]
    TooLarge,
    #[error("bad target: {0}")]
    Target(String),
}

impl SendError {
    /// The `result` label of `switchboard_event_delivery_attempts_total`.
    pub fn result(&self) -> &'static str {
        match self {
            SendError::Timeout(_) => "timeout",
            SendError::Connect(_) | SendError::Io(_) | SendError::Target(_) => "connect_error",
            SendError::TooLarge => "server_error",
        }
    }
}

#[async_trait]
pub trait WebhookSender: Send + Sync + 'static {
    async fn post(&self, request: WebhookRequest) -> Result<WebhookResponse, SendError>;
}

/// The real sender, on pingora's connector.
#[derive(Default)]
pub struct PingoraSender {
    connector: OnceLock<Connector>,
}

impl std::fmt::Debug for PingoraSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PingoraSender")
    }
}

impl PingoraSender {
    pub fn new() -> Self {
        Self::default()
    }

    fn connector(&self) -> &Connector {
        self.connector.get_or_init(|| Connector::new(None))
    }

    async fn exchange(&self, request: WebhookRequest) -> Result<WebhookResponse, SendError> {
        let url = &request.url;
        let tls = match url.scheme() {
            "https" => true,
            "http" => false,
            other => return Err(SendError::Target(format!("scheme {other:?}"))),
        };
        let host = url
            .host_str()
            .ok_or_else(|| SendError::Target("no host".to_owned()))?;
        let bare_host = host.trim_start_matches('[').trim_end_matches(']');
        let port = url
            .port_or_known_default()
            .ok_or_else(|| SendError::Target("no port".to_owned()))?;
        let addr = match bare_host.parse::<IpAddr>() {
            Ok(ip) => SocketAddr::new(ip, port),
            Err(_) => tokio::net::lookup_host((bare_host, port))
                .await
                .map_err(|e| SendError::Connect(format!("resolve {bare_host}: {e}")))?
                .next()
                .ok_or_else(|| SendError::Connect(format!("resolve {bare_host}: no address")))?,
        };
        let host_header = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_owned(),
        };
        let target = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };

        let target_err = |e: Box<pingora::Error>| SendError::Target(e.to_string());
        let mut req = RequestHeader::build(http::Method::POST, target.as_bytes(), None)
            .map_err(target_err)?;
        let host_value = HeaderValue::from_str(&host_header)
            .map_err(|_| SendError::Target("bad host".to_owned()))?;
        req.insert_header(http::header::HOST, host_value)
            .map_err(target_err)?;
        for (name, value) in request.headers {
            req.insert_header(name, value).map_err(target_err)?;
        }
        req.insert_header(
            http::header::CONTENT_LENGTH,
            HeaderValue::from(request.body.len()),
        )
        .map_err(target_err)?;

        let mut peer = HttpPeer::new(addr, tls, bare_host.to_owned());
        peer.options.connection_timeout = Some(CONNECT_TIMEOUT);
        peer.options.total_connection_timeout = Some(CONNECT_TIMEOUT);
        peer.options.idle_timeout = Some(POOL_IDLE);
        let connector = self.connector();
        let (mut session, _reused) = connector
            .get_http_session(&peer)
            .await
            .map_err(|e| SendError::Connect(e.to_string()))?;
        let io = |e: Box<pingora::Error>| SendError::Io(e.to_string());
        session
            .write_request_header(Box::new(req))
            .await
            .map_err(io)?;
        session
            .write_request_body(request.body, true)
            .await
            .map_err(io)?;
        session.finish_request_body().await.map_err(io)?;
        session.read_response_header().await.map_err(io)?;
        let (status, retry_after) = match session.response_header() {
            Some(h) => (
                h.status.as_u16(),
                h.headers
                    .get(http::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, std::time::SystemTime::now())),
            ),
            None => return Err(SendError::Io("no response header".to_owned())),
        };
        let mut body = BytesMut::new();
        while let Some(chunk) = session.read_response_body().await.map_err(io)? {
            if body.len() + chunk.len() > MAX_RESPONSE_BODY {
                // Not drained: the connection is dropped, not pooled.
                return Err(SendError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        connector
            .release_http_session(session, &peer, Some(POOL_IDLE))
            .await;
        Ok(WebhookResponse {
            status,
            retry_after,
            body: body.freeze(),
        })
    }
}

#[async_trait]
impl WebhookSender for PingoraSender {
    async fn post(&self, request: WebhookRequest) -> Result<WebhookResponse, SendError> {
        let timeout = request.timeout;
        tokio::time::timeout(timeout, self.exchange(request))
            .await
            .unwrap_or(Err(SendError::Timeout(timeout)))
    }
}
