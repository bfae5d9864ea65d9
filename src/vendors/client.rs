//! The pooled vendor client: pingora's own `Connector` (keep-alive pool, TLS) with the
//! connection's auth scheme injected and the endpoint's timeout around the whole call.
//!
//! The connector is created lazily on first use, inside the service runtime, because pooled
//! connections belong to the reactor that opened them (and daemon mode forks before any
//! service runtime exists).

use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::upstreams::peer::HttpPeer;

use crate::api::operation::Vendor;
use crate::api::{ApiError, ErrorCode};
use crate::config::routes::Endpoint;
use crate::config::Connection;

/// Largest vendor body we read; anything bigger is a broken vendor, not a page of data.
const MAX_VENDOR_BODY: usize = 16 * 1024 * 1024;
/// How long an idle pooled connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(60);
/// How long to wait for a TCP (and TLS) connect, within the endpoint timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
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

/// One vendor call: path placeholders, query string, body.
#[derive(Debug, Clone, Default)]
pub struct VendorCall {
    pub params: Vec<(&'static str, String)>,
    pub query: Vec<(&'static str, String)>,
    pub body: VendorBody,
}

impl VendorCall {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn param(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.params.push((name, value.into()));
        self
    }
    pub fn query(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.query.push((name, value.into()));
        self
    }
    pub fn body(mut self, body: VendorBody) -> Self {
        self.body = body;
        self
    }
}

/// A vendor's answer, any status.
#[derive(Debug, Clone)]
pub struct VendorResponse {
    pub status: u16,
    pub retry_after: Option<u64>,
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
            CallError::Connect(_) | CallError::Io(_) => "connect_error",
            CallError::TooLarge | CallError::Target(_) => "server_error",
        }
    }

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
        // The underlying error text may contain internal addresses: log it, never return it.
        tracing::debug!(vendor = %vendor, error = %self, "vendor call failed");
        ApiError::vendor(code, vendor, detail)
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
    connector: OnceLock<Connector>,
    dns: OnceLock<moka::future::Cache<(String, u16), SocketAddr>>,
}

impl VendorClient {
    pub fn new() -> Self {
        Self::default()
    }

    fn connector(&self) -> &Connector {
        self.connector.get_or_init(|| Connector::new(None))
    }

    async fn resolve(&self, host: &str, port: u16) -> Result<SocketAddr, CallError> {
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
        let base = crate::config::BaseUrl::parse(url).map_err(CallError::Target)?;
        let target = match url::Url::parse(url) {
            Ok(u) => match u.query() {
                Some(q) => format!("{}?{q}", u.path()),
                None => u.path().to_owned(),
            },
            Err(e) => return Err(CallError::Target(e.to_string())),
        };
        let request = async {
            let mut req = RequestHeader::build(http::Method::GET, target.as_bytes(), None)
                .map_err(|e| CallError::Target(e.to_string()))?;
            req.insert_header(http::header::HOST, base.host_header.clone())
                .map_err(|e| CallError::Target(e.to_string()))?;
            req.insert_header(http::header::ACCEPT, "application/json")
                .map_err(|e| CallError::Target(e.to_string()))?;
            self.exchange(&base, req, None).await
        };
        tokio::time::timeout(timeout, request)
            .await
            .unwrap_or(Err(CallError::Timeout(timeout)))
    }

    /// Send one call to `endpoint` of `connection`, within the endpoint's timeout.
    pub async fn send(
        &self,
        connection: &Connection,
        endpoint: &Endpoint,
        call: VendorCall,
        request_id: &str,
    ) -> Result<VendorResponse, CallError> {
        let timeout = endpoint.timeout;
        match tokio::time::timeout(
            timeout,
            self.send_inner(connection, endpoint, call, request_id),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => Err(CallError::Timeout(timeout)),
        }
    }

    async fn send_inner(
        &self,
        connection: &Connection,
        endpoint: &Endpoint,
        call: VendorCall,
        request_id: &str,
    ) -> Result<VendorResponse, CallError> {
        let base = &connection.base_url;
        let path = endpoint
            .path
            .render(|name| {
                call.params
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.clone())
                    .or_else(|| connection.default_string(name))
            })
            .map_err(CallError::Target)?;
        let mut target = format!("{}{}", base.path_prefix, path);
        if !call.query.is_empty() {
            target.push('?');
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in &call.query {
                query.append_pair(k, v);
            }
            target.push_str(&query.finish());
        }

        let (content_type, body) = match call.body {
            VendorBody::None => (None, None),
            VendorBody::Json(b) => (Some("application/json".to_owned()), Some(b)),
            VendorBody::Multipart { boundary, body } => (
                Some(format!("multipart/form-data; boundary={boundary}")),
                Some(body),
            ),
        };

        let mut req = RequestHeader::build(endpoint.method.clone(), target.as_bytes(), None)
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
        if let Ok(v) = http::HeaderValue::from_str(request_id) {
            header(&mut req, http::HeaderName::from_static("x-request-id"), v)?;
        }
        let (auth_name, auth_value) = &connection.auth_header;
        header(&mut req, auth_name.clone(), auth_value.clone())?;
        if let Some(ct) = content_type {
            let v =
                http::HeaderValue::from_str(&ct).map_err(|e| CallError::Target(e.to_string()))?;
            header(&mut req, http::header::CONTENT_TYPE, v)?;
        }
        let body_len = body.as_ref().map_or(0, Vec::len);
        if body.is_some() || endpoint.method != http::Method::GET {
            header(
                &mut req,
                http::header::CONTENT_LENGTH,
                http::HeaderValue::from(body_len),
            )?;
        }

        self.exchange(base, req, body).await
    }

    /// Write one request on a pooled connection and read the whole answer.
    async fn exchange(
        &self,
        base: &crate::config::BaseUrl,
        req: RequestHeader,
        body: Option<Vec<u8>>,
    ) -> Result<VendorResponse, CallError> {
        let addr = self.resolve(&base.host, base.port).await?;
        let mut peer = HttpPeer::new(addr, base.tls, base.host.clone());
        peer.options.connection_timeout = Some(CONNECT_TIMEOUT);
        peer.options.total_connection_timeout = Some(CONNECT_TIMEOUT);
        peer.options.idle_timeout = Some(POOL_IDLE);
        let connector = self.connector();
        let (mut session, _reused) = connector
            .get_http_session(&peer)
            .await
            .map_err(|e| CallError::Connect(e.to_string()))?;
        let io = |e: Box<pingora::Error>| CallError::Io(e.to_string());
        session
            .write_request_header(Box::new(req))
            .await
            .map_err(io)?;
        if let Some(body) = body {
            session
                .write_request_body(Bytes::from(body), true)
                .await
                .map_err(io)?;
        }
        session.finish_request_body().await.map_err(io)?;
        session.read_response_header().await.map_err(io)?;
        let (status, retry_after) = match session.response_header() {
            Some(h) => (
                h.status.as_u16(),
                h.headers
                    .get(http::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok()),
            ),
            None => return Err(CallError::Io("no response header".to_owned())),
        };
        let mut buf = BytesMut::new();
        while let Some(chunk) = session.read_response_body().await.map_err(io)? {
            if buf.len() + chunk.len() > MAX_VENDOR_BODY {
                return Err(CallError::TooLarge);
            }
            buf.extend_from_slice(&chunk);
        }
        connector
            .release_http_session(session, &peer, Some(POOL_IDLE))
            .await;
        Ok(VendorResponse {
            status,
            retry_after,
            body: buf.freeze(),
        })
    }
}
