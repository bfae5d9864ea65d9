//! The pooled client: pingora's own `Connector` (HTTP/1, TLS) opening connections, our
//! [`IdlePool`] keeping them between calls, one request to one upstream within a timeout
//! around the whole call.
//!
//! The connector is created lazily on first use, inside the service runtime, because pooled
//! connections belong to the reactor that opened them (and daemon mode forks before any
//! service runtime exists).

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::protocols::http::client::HttpSession;
use pingora::protocols::http::v1::client::HttpSession as HttpSessionV1;
use pingora::upstreams::peer::{HttpPeer, Peer};

use super::pool::IdlePool;
use super::tls::{self as vendor_tls, PoolIdentity, TlsError, TlsSettings};
use super::BaseUrl;
use crate::api::operation::Vendor;
use crate::api::{ApiError, ErrorCode};
use crate::resilience::retry::Replay;

/// Largest vendor body we read; anything bigger is a broken vendor, not a page of data.
const MAX_VENDOR_BODY: usize = 16 * 1024 * 1024;
/// How long an idle pooled connection is kept.
pub(super) const POOL_IDLE: Duration = Duration::from_secs(60);
/// How long to wait for a TCP (and TLS) connect, within the endpoint timeout.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a DNS answer is reused.
const DNS_TTL: Duration = Duration::from_secs(30);

/// A request body for a vendor.
#[derive(Debug, Clone, Default)]
pub enum VendorBody {
    #[default]
    None,
    Json(Vec<u8>),
    /// `multipart/form-data` with the given boundary.
    Multipart {
        boundary: String,
        body: Vec<u8>,
    },
}

impl VendorBody {
    pub fn json(value: &impl serde::Serialize) -> Self {
        VendorBody::Json(serde_json::to_vec(value).unwrap_or_default())
    }

    /// Build a `multipart/form-data` body from text fields.
    pub fn multipart(fields: &[(&str, String)]) -> Self {
        let boundary = format!("switchboard-{:016x}", rand::random::<u64>());
        let mut body = Vec::new();
        for (name, value) in fields {
            body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
            body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            );
            body.extend_from_slice(value.as_bytes());
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        VendorBody::Multipart { boundary, body }
    }
}

/// One request for an upstream, as the caller decides it: the client adds `Host`, `Accept`,
/// `User-Agent`, `Content-Type` and `Content-Length`.
pub struct UpstreamRequest {
    pub method: http::Method,
    /// Path and query as sent: percent-encoded, the base URL's path prefix included.
    pub target: String,
    /// Further headers, in order (the request id, the vendor's auth header).
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    pub body: VendorBody,
}

/// A vendor's answer, any status.
#[derive(Debug, Clone, Default)]
pub struct VendorResponse {
    pub status: u16,
    /// `Retry-After`, as seconds from now (sent as seconds or as an HTTP date).
    pub retry_after: Option<u64>,
    /// `Cache-Control: max-age`, in seconds (the JWKS refresher honours it).
    pub max_age: Option<u64>,
    pub body: Bytes,
}

impl VendorResponse {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Why a vendor call produced no response.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("could not connect: {0}")]
    Connect(String),
    /// The vendor's host refused the TCP connection (nothing listens, or a firewall said no).
    #[error("connection refused: {0}")]
    Refused(String),
    /// No usable TLS session: the certificate check, the handshake, or the vendor's verdict on
    /// our client certificate.
    #[error("TLS: {0}")]
    Tls(TlsError),
    #[error("connection failed during the call: {0}")]
    Io(String),
    #[error("response body larger than {MAX_VENDOR_BODY} bytes")]
    TooLarge,
    #[error("bad request target: {0}")]
    Target(String),
}

impl CallError {
    /// The `outcome` label of `switchboard_vendor_requests_total`.
    pub fn outcome(&self) -> &'static str {
        match self {
            CallError::Timeout(_) => "timeout",
            CallError::Connect(_) | CallError::Refused(_) | CallError::Io(_) => "connect_error",
            CallError::Tls(_) => "tls_error",
            CallError::TooLarge | CallError::Target(_) => "server_error",
        }
    }

    /// Why the call failed, in one bounded word: the `vendor_failure` of the access log and the
    /// `cause` of the warn line (see README, "TLS failures").
    pub fn cause(&self) -> &'static str {
        match self {
            CallError::Timeout(_) => "timeout",
            CallError::Connect(_) => "connect_failed",
            CallError::Refused(_) => "refused",
            CallError::Tls(e) => e.failure.as_str(),
            CallError::Io(_) => "connection_lost",
            CallError::TooLarge => "body_too_large",
            CallError::Target(_) => "bad_target",
        }
    }

    /// Whether the call failed before any session with the vendor existed: the failures an
    /// operator fixes in the network or the connection's `tls` settings. They get a warn line.
    pub fn is_connection_failure(&self) -> bool {
        matches!(
            self,
            CallError::Connect(_) | CallError::Refused(_) | CallError::Tls(_)
        )
    }

    /// A reason fit for a log line: no address, no host name, no credential.
    pub fn safe_reason(&self) -> String {
        match self {
            CallError::Tls(e) => e.reason.clone(),
            CallError::Refused(_) => "the vendor's host refused the connection".to_owned(),
            CallError::Connect(_) => "could not connect to the vendor's host".to_owned(),
            CallError::Timeout(d) => format!("no answer within {} ms", d.as_millis()),
            CallError::Io(_) => "the connection failed during the call".to_owned(),
            CallError::TooLarge => format!("response body over {MAX_VENDOR_BODY} bytes"),
            CallError::Target(_) => "the request cannot be expressed as a vendor call".to_owned(),
        }
    }

    /// The API error this failure answers with, carrying the failure as its cause. No side
    /// effects: the gateway's `logging` phase logs the cause once.
    pub fn into_api_error(self, vendor: Vendor) -> ApiError {
        let (code, detail) = match &self {
            CallError::Timeout(d) => (
                ErrorCode::VendorTimeout,
                format!("{vendor} did not answer within {} ms", d.as_millis()),
            ),
            CallError::Connect(_) => (
                ErrorCode::VendorUnavailable,
                format!("could not connect to {vendor}"),
            ),
            CallError::Refused(_) => (
                ErrorCode::VendorUnavailable,
                format!("could not connect to {vendor}: connection refused (refused)"),
            ),
            CallError::Tls(e) => (
                ErrorCode::VendorUnavailable,
                format!(
                    "could not connect to {vendor}: {} ({})",
                    e.failure.describe(),
                    e.failure.as_str()
                ),
            ),
            CallError::Io(_) => (
                ErrorCode::VendorError,
                format!("{vendor} closed the connection before answering"),
            ),
            CallError::TooLarge => (
                ErrorCode::VendorBadResponse,
                format!("{vendor} sent a response body over {MAX_VENDOR_BODY} bytes"),
            ),
            CallError::Target(_) => (
                ErrorCode::InvalidRequest,
                "the request cannot be expressed as a vendor call".to_owned(),
            ),
        };
        // The call error's own text may name internal addresses: it travels as the cause (for
        // the log), never in the detail.
        ApiError::vendor(code, vendor, detail).with_cause(self)
    }
}

/// The `outcome` label for a vendor's HTTP status.
pub fn outcome_for_status(status: u16) -> &'static str {
    match status {
        200..=399 => "ok",
        429 => "rate_limited",
        400..=499 => "client_error",
        _ => "server_error",
    }
}

/// Shared by every request of a gateway. Cheap to clone? No: hold it in an `Arc`.
#[derive(Default)]
pub struct VendorClient {
    connector: OnceLock<Arc<Connector>>,
    dns: OnceLock<moka::future::Cache<(String, u16), SocketAddr>>,
    /// Diagnoses of failed certificate checks, by peer (see [`vendor_tls::diagnose`]).
    diagnoses: OnceLock<moka::future::Cache<u64, TlsError>>,
    /// Idle keep-alive connections ([`IdlePool`]); pingora's connector only opens new ones.
    idle: IdlePool,
}

impl VendorClient {
    pub fn new() -> Self {
        Self::default()
    }

    fn connector(&self) -> &Arc<Connector> {
        self.connector
            .get_or_init(|| Arc::new(Connector::new(None)))
    }

    /// Close the idle pooled sessions of pool identities that no connection uses any more
    /// (a reload changed a connection's TLS settings, host or port, or removed it). Never
    /// reused either way: the changed settings have another pool group.
    pub fn retire_pools(&self, retired: &BTreeSet<PoolIdentity>) {
        let closed = self.idle.retire(retired);
        tracing::debug!(closed, "closed the pooled sessions of retired connections");
    }

    /// Turn pingora's connect error into a named failure; a failed certificate check is
    /// diagnosed (cached per peer for [`vendor_tls::DIAGNOSIS_TTL`]).
    pub(super) async fn connect_error(
        &self,
        error: &pingora::Error,
        peer: &HttpPeer,
        addr: SocketAddr,
        base: &BaseUrl,
        tls: &TlsSettings,
    ) -> CallError {
        if error.etype() == &pingora::ErrorType::ConnectRefused {
            return CallError::Refused(error.to_string());
        }
        let Some(classified) = vendor_tls::classify_connect(error) else {
            return CallError::Connect(error.to_string());
        };
        if error.etype() != &pingora::ErrorType::InvalidCert {
            return CallError::Tls(classified);
        }
        let diagnoses = self.diagnoses.get_or_init(|| {
            moka::future::Cache::builder()
                .max_capacity(1024)
                .time_to_live(vendor_tls::DIAGNOSIS_TTL)
                .build()
        });
        let diagnosis = diagnoses
            .get_with(
                peer.reuse_hash(),
                vendor_tls::diagnose(addr, base, tls, CONNECT_TIMEOUT),
            )
            .await;
        CallError::Tls(diagnosis)
    }

    pub(super) async fn resolve(&self, host: &str, port: u16) -> Result<SocketAddr, CallError> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, port));
        }
        let dns = self.dns.get_or_init(|| {
            moka::future::Cache::builder()
                .max_capacity(1024)
                .time_to_live(DNS_TTL)
                .build()
        });
        dns.try_get_with((host.to_owned(), port), async {
            tokio::net::lookup_host((host, port))
                .await
                .map_err(|e| e.to_string())?
                .next()
                .ok_or_else(|| "no address".to_owned())
        })
        .await
        .map_err(|e| CallError::Connect(format!("resolve {host}: {e}")))
    }

    /// GET an absolute URL (JWKS documents) through the same pool, within `timeout`.
    pub async fn fetch_url(
        &self,
        url: &str,
        timeout: Duration,
    ) -> Result<VendorResponse, CallError> {
        let mut parsed = url::Url::parse(url).map_err(|e| CallError::Target(e.to_string()))?;
        let target = match parsed.query() {
            Some(q) => format!("{}?{q}", parsed.path()),
            None => parsed.path().to_owned(),
        };
        // The query string goes into the request target; the base is scheme, host and port.
        parsed.set_query(None);
        parsed.set_fragment(None);
        let base = BaseUrl::parse(parsed.as_str()).map_err(CallError::Target)?;
        let request = async {
            let mut req = RequestHeader::build(http::Method::GET, target.as_bytes(), None)
                .map_err(|e| CallError::Target(e.to_string()))?;
            req.insert_header(http::header::HOST, base.host_header.clone())
                .map_err(|e| CallError::Target(e.to_string()))?;
            req.insert_header(http::header::ACCEPT, "application/json")
                .map_err(|e| CallError::Target(e.to_string()))?;
            self.exchange(&base, &TlsSettings::default(), req, None)
                .await
        };
        tokio::time::timeout(timeout, request)
            .await
            .unwrap_or(Err(CallError::Timeout(timeout)))
    }

    /// Send `request` to the upstream at `base` with `tls`, within `timeout` (resolving,
    /// connecting, writing and reading the whole answer).
    pub async fn send(
        &self,
        base: &BaseUrl,
        tls: &TlsSettings,
        request: UpstreamRequest,
        timeout: Duration,
    ) -> Result<VendorResponse, CallError> {
        match tokio::time::timeout(timeout, self.send_inner(base, tls, request)).await {
            Ok(result) => result,
            Err(_) => Err(CallError::Timeout(timeout)),
        }
    }

    async fn send_inner(
        &self,
        base: &BaseUrl,
        tls: &TlsSettings,
        request: UpstreamRequest,
    ) -> Result<VendorResponse, CallError> {
        let (content_type, body) = match request.body {
            VendorBody::None => (None, None),
            VendorBody::Json(b) => (Some("application/json".to_owned()), Some(b)),
            VendorBody::Multipart { boundary, body } => (
                Some(format!("multipart/form-data; boundary={boundary}")),
                Some(body),
            ),
        };

        let mut req = RequestHeader::build(request.method.clone(), request.target.as_bytes(), None)
            .map_err(|e| CallError::Target(e.to_string()))?;
        let header = |req: &mut RequestHeader, name: http::HeaderName, value: http::HeaderValue| {
            req.insert_header(name, value)
                .map_err(|e| CallError::Target(e.to_string()))
        };
        header(&mut req, http::header::HOST, base.host_header.clone())?;
        header(
            &mut req,
            http::header::ACCEPT,
            http::HeaderValue::from_static("application/json"),
        )?;
        header(
            &mut req,
            http::header::USER_AGENT,
            http::HeaderValue::from_static(concat!("switchboard/", env!("CARGO_PKG_VERSION"))),
        )?;
        for (name, value) in request.headers {
            header(&mut req, name, value)?;
        }
        if let Some(ct) = content_type {
            let v =
                http::HeaderValue::from_str(&ct).map_err(|e| CallError::Target(e.to_string()))?;
            header(&mut req, http::header::CONTENT_TYPE, v)?;
        }
        let body_len = body.as_ref().map_or(0, Vec::len);
        if body.is_some() || request.method != http::Method::GET {
            header(
                &mut req,
                http::header::CONTENT_LENGTH,
                http::HeaderValue::from(body_len),
            )?;
        }

        self.exchange(base, tls, req, body).await
    }

    /// Write one request on a pooled connection and read the whole answer.
    ///
    /// A pooled connection the vendor has closed (its keep-alive timer fired just as the
    /// request was sent: pingora checks a pooled connection before handing it out, but a FIN
    /// can be in flight) fails before any byte of an answer arrives. Such a request is sent
    /// again — on the next pooled connection if there is one, and at most once on a fresh
    /// connection, whose result is final — when it provably never reached the vendor (the
    /// write itself failed), or when it is a read (`GET`, `HEAD`): a `POST` whose bytes were
    /// all written may have been read by the vendor, and is never sent twice
    /// ([`crate::resilience::retry::Replay`]).
    async fn exchange(
        &self,
        base: &BaseUrl,
        tls: &TlsSettings,
        req: RequestHeader,
        body: Option<Vec<u8>>,
    ) -> Result<VendorResponse, CallError> {
        let addr = self.resolve(&base.host, base.port).await?;
        let mut peer = vendor_tls::vendor_peer(addr, base, tls);
        peer.options.connection_timeout = Some(CONNECT_TIMEOUT);
        peer.options.total_connection_timeout = Some(CONNECT_TIMEOUT);
        peer.options.idle_timeout = Some(POOL_IDLE);
        let connector = self.connector();
        let replayable = Replay::for_method(&req.method) == Replay::Safe;
        let body = body.map(Bytes::from);
        let mut req = Some(req);
        let mut stale_skipped = 0;
        let pool_peer = peer.reuse_hash();
        loop {
            let (mut session, reused) = match self.idle.take(pool_peer) {
                Some(stream) => (
                    HttpSession::H1(HttpSessionV1::new_with_options(stream, &peer)),
                    true,
                ),
                None => match connector.get_http_session(&peer).await {
                    Ok(made) => made,
                    Err(e) => return Err(self.connect_error(&e, &peer, addr, base, tls).await),
                },
            };
            if base.tls && !reused {
                let negotiated = session
                    .digest()
                    .and_then(|d| d.ssl_digest.as_ref())
                    .map(|d| d.version.to_string());
                vendor_tls::check_version(negotiated.as_deref(), tls.min_version)
                    .map_err(CallError::Tls)?;
            }
            // Keep a copy only when this attempt may have to be repeated.
            let this = match (&req, reused) {
                (Some(r), true) => r.clone(),
                _ => req
                    .take()
                    .ok_or_else(|| CallError::Io("request already sent".to_owned()))?,
            };
            // On a session made just now, a TLS alert is the vendor's verdict on the handshake
            // (TLS 1.3 sends its answer to our client certificate after our side has finished).
            let fresh_tls = base.tls && !reused;
            match exchange_on(&mut session, this, body.clone(), fresh_tls).await {
                Ok(response) => {
                    if let HttpSession::H1(mut h1) = session {
                        h1.respect_keepalive();
                        if let Some(stream) = h1.reuse().await {
                            self.idle.put(
                                pool_peer,
                                || PoolIdentity::of(base, tls),
                                stream,
                                POOL_IDLE,
                            );
                        }
                    }
                    return Ok(response);
                }
                Err(Attempt::Closed { error, written })
                    if reused && stale_skipped < MAX_STALE_POOLED && (!written || replayable) =>
                {
                    stale_skipped += 1;
                    tracing::debug!(
                        error = %error,
                        "the vendor had closed a pooled connection before answering; \
                         sending the request again"
                    );
                }
                Err(Attempt::Closed { error, .. }) | Err(Attempt::Failed(error)) => {
                    return Err(error)
                }
            }
        }
    }
}

/// How many closed pooled connections one call may skip before it must use a fresh one.
const MAX_STALE_POOLED: u32 = 8;

/// How one attempt on one connection failed.
enum Attempt {
    /// The connection failed before any byte of an answer arrived. `written`: the whole
    /// request had been written (the vendor may have read it).
    Closed {
        error: CallError,
        written: bool,
    },
    Failed(CallError),
}

/// Whether a read of the response header failed because the peer had closed the connection,
/// with nothing of an answer read (pingora marks such errors retryable on reused connections
/// and says how many bytes it had read).
fn closed_before_answer(e: &pingora::Error) -> bool {
    matches!(
        e.etype(),
        pingora::ErrorType::ConnectionClosed | pingora::ErrorType::ReadError
    ) && e.retry == pingora::RetryType::ReusedOnly
        && e.context.as_ref().is_none_or(|c| {
            !c.as_str().contains("bytes already read")
                || c.as_str().ends_with("bytes already read: 0")
        })
}

/// Write one request on `session` and read the whole answer.
async fn exchange_on(
    session: &mut pingora::protocols::http::client::HttpSession,
    req: RequestHeader,
    body: Option<Bytes>,
    fresh_tls: bool,
) -> Result<VendorResponse, Attempt> {
    let io = |e: Box<pingora::Error>| match vendor_tls::classify_io(&e) {
        Some(tls_error) if fresh_tls => CallError::Tls(tls_error),
        _ => CallError::Io(e.to_string()),
    };
    // A write that fails means the vendor had closed the connection: it read nothing whole.
    let unwritten = |e: Box<pingora::Error>| Attempt::Closed {
        error: io(e),
        written: false,
    };
    session
        .write_request_header(Box::new(req))
        .await
        .map_err(unwritten)?;
    if let Some(body) = body {
        session
            .write_request_body(body, true)
            .await
            .map_err(unwritten)?;
    }
    session.finish_request_body().await.map_err(unwritten)?;
    session.read_response_header().await.map_err(|e| {
        if closed_before_answer(&e) {
            Attempt::Closed {
                error: io(e),
                written: true,
            }
        } else {
            Attempt::Failed(io(e))
        }
    })?;
    let (status, retry_after, max_age) = match session.response_header() {
        Some(h) => (
            h.status.as_u16(),
            h.headers
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, std::time::SystemTime::now())),
            h.headers
                .get_all(http::header::CACHE_CONTROL)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(parse_max_age),
        ),
        None => {
            return Err(Attempt::Failed(CallError::Io(
                "no response header".to_owned(),
            )))
        }
    };
    let mut buf = BytesMut::new();
    while let Some(chunk) = session
        .read_response_body()
        .await
        .map_err(|e| Attempt::Failed(io(e)))?
    {
        if buf.len() + chunk.len() > MAX_VENDOR_BODY {
            return Err(Attempt::Failed(CallError::TooLarge));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(VendorResponse {
        status,
        retry_after,
        max_age,
        body: buf.freeze(),
    })
}

/// `Retry-After` (RFC 9110 §10.2.3) as whole seconds from `now`, sent either as
/// delay-seconds or as an HTTP date ([`crate::resilience::pause::parse_retry_after`]); a date
/// in the past means "now" (0), anything unparsable is ignored. Rounded up: waiting a fraction
/// of a second less than asked is still too early.
fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<u64> {
    let wait = crate::resilience::pause::parse_retry_after(value, now)?;
    Some(
        wait.as_secs()
            .saturating_add(u64::from(wait.subsec_nanos() > 0)),
    )
}

/// The `max-age` directive of one `Cache-Control` value (`no-store`/`no-cache` mean 0).
fn parse_max_age(value: &str) -> Option<u64> {
    value.split(',').map(str::trim).find_map(|directive| {
        let (name, arg) = directive.split_once('=').unwrap_or((directive, ""));
        let name = name.trim();
        if name.eq_ignore_ascii_case("max-age") {
            arg.trim().trim_matches('"').parse::<u64>().ok()
        } else if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
            Some(0)
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{SystemTime, UNIX_EPOCH};

    #[test]
    fn retry_after_as_seconds_or_http_date() {
        let now = UNIX_EPOCH + Duration::from_secs(1_445_412_480); // Wed, 21 Oct 2015 07:28:00 GMT
        assert_eq!(parse_retry_after("120", now), Some(120));
        assert_eq!(parse_retry_after(" 7 ", now), Some(7));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:29:30 GMT", now),
            Some(90)
        );
        // the obsolete forms an HTTP/1.1 recipient must accept
        assert_eq!(
            parse_retry_after("Wednesday, 21-Oct-15 07:29:30 GMT", now),
            Some(90)
        );
        assert_eq!(parse_retry_after("Wed Oct 21 07:29:30 2015", now), Some(90));
        // a date in the past: retry now
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(0)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
        let _ = SystemTime::now();
    }

    #[test]
    fn max_age_from_cache_control() {
        assert_eq!(parse_max_age("public, max-age=3600"), Some(3600));
        assert_eq!(parse_max_age("MAX-AGE=\"60\", must-revalidate"), Some(60));
        assert_eq!(parse_max_age("no-store"), Some(0));
        assert_eq!(parse_max_age("public"), None);
        assert_eq!(parse_max_age("max-age=soon"), None);
    }

    #[test]
    fn an_api_error_keeps_the_call_error_as_its_cause_and_its_detail_names_no_address() {
        let error = CallError::Refused("connect to 10.1.2.3:443 refused".to_owned())
            .into_api_error(Vendor::Libredesk);
        assert_eq!(error.code, ErrorCode::VendorUnavailable);
        assert!(!error.detail.contains("10.1.2.3"), "{}", error.detail);
        assert!(std::error::Error::source(&error).is_some());
        let call = error
            .cause
            .as_deref()
            .and_then(|cause| cause.downcast_ref::<CallError>())
            .expect("the call error is the cause");
        assert_eq!(call.cause(), "refused");
        assert!(call.to_string().contains("10.1.2.3"));
    }
}
