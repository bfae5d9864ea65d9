//! `/v1/passthrough/{connection}/{vendor path…}`: any vendor call on the vendor's allow-list
//! (`passthrough:` in `routes/<vendor>.yaml`), made with the connection's credentials and
//! streamed both ways through pingora's proxy phases.
//!
//! Unlike the translated operations (answered inside `request_filter`, see the module doc of
//! [`super`]), nothing here reads a body: the answer is the vendor's own, so there is nothing
//! to translate and no reason to buffer.
//!
//! ```text
//! request_filter          admit: token → tenant limit (429) → scope `passthrough` → the
//!                         tenant's connection (404)
//!                         → allow-list (403) → declared body size (413) → Plan in the ctx,
//!                         Ok(false): proxy it. A refusal is problem+json, no vendor call.
//! upstream_peer           the connection's peer (DNS cache, TLS settings, pool group)
//! connected_to_upstream   a new TLS session below the connection's min_version is refused
//! upstream_request_filter the app's headers minus everything off the header allow-list
//!                         (Authorization, cookies, hop-by-hop can never be on it), then Host,
//!                         the connection's auth header, X-Request-Id; the vendor URI
//! request_body_filter     counts the streamed body; over max_body_bytes → 413, call aborted
//! response_filter         the vendor's answer minus Set-Cookie and hop-by-hop headers,
//!                         plus X-Request-Id
//! fail_to_proxy           a failure before the answer started → problem+json (vendor_timeout,
//!                         vendor_unavailable, vendor_error, payload_too_large)
//! logging                 switchboard_vendor_requests_total{operation="passthrough"}
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::{HttpPeer, Session};

use super::{Gateway, RequestCtx};
use crate::api::{ApiError, ErrorCode};
use crate::resilience::edge::AttemptOutcome;
use crate::resilience::pause::parse_retry_after;
use crate::resilience::retry::CallFailure;
use crate::resilience::vendor_edge::Ticket;
use crate::snapshot::passthrough::PathRefused;
use crate::snapshot::{Connection, Snapshot};
use crate::state::ConnectionKey;
use crate::upstream::proxy::{check_tls_version, ProxyPeer};
use crate::upstream::{outcome_for_status, CallError};
use crate::vendors::classify_failure;

/// The scope a token needs for any passthrough call.
pub const SCOPE: &str = "passthrough";

/// The operation word of passthrough calls in metrics and the access log.
pub const OPERATION: &str = "passthrough";

const PREFIX: &str = "/v1/passthrough/";

/// Response headers of the vendor's that never reach the app: its cookies (they belong to the
/// gateway's session with the vendor, not the app's) and the hop-by-hop headers of RFC 9110
/// §7.6.1. `Transfer-Encoding` stays: it is the gateway's framing of the streamed body.
const STRIPPED_RESPONSE_HEADERS: &[&str] = &[
    "set-cookie",
    "set-cookie2",
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authentication-info",
    "te",
    "trailer",
    "upgrade",
];

/// A passthrough call admitted by `request_filter`, carried through the proxy phases.
pub struct Plan {
    connection: Arc<Connection>,
    /// The vendor request target: the base URL's prefix, the vendor path, the query.
    target: http::Uri,
    peer: Option<ProxyPeer>,
    body_bytes: u64,
    body_too_large: bool,
    vendor_started: Option<Instant>,
    vendor_status: Option<u16>,
    /// Set when the call failed on the vendor's side, for the vendor metric.
    failure_outcome: Option<&'static str>,
    /// A failure met before pingora had a peer or a session (DNS, the TLS version floor),
    /// answered by `fail_to_proxy`.
    early_failure: Option<CallError>,
    /// The vendor edge's admission (breaker permit), settled in `logging` with the outcome.
    ticket: Option<Ticket>,
    /// How the call ended, for the edge: set by `response_filter` or `fail_to_proxy`.
    edge_outcome: Option<AttemptOutcome>,
}

/// A connection's allowed passthrough calls, for `GET /v1/capabilities`:
/// `[{"method": "GET", "path": "/api/v1/agents"}, …]` (empty: passthrough is off).
pub fn capability(connection: &Connection) -> serde_json::Value {
    connection
        .routes
        .passthrough
        .allow
        .iter()
        .map(|rule| serde_json::json!({"method": rule.method.as_str(), "path": rule.path.source()}))
        .collect()
}

/// Whether the request is a passthrough call (decided by the path alone).
pub fn is_passthrough(session: &Session) -> bool {
    session.req_header().uri.path().starts_with(PREFIX)
}

impl Gateway {
    /// Everything decided before a byte goes to the vendor. `Ok` puts the [`Plan`] in the ctx
    /// (the caller returns `Ok(false)` so pingora proxies); `Err` is answered as problem+json
    /// and no vendor call is made.
    pub(super) async fn admit_passthrough(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        snapshot: &Snapshot,
    ) -> Result<(), ApiError> {
        ctx.operation = OPERATION;
        let principal = self.authenticate(session, snapshot).await?;
        self.admit_request(ctx, snapshot, &principal.tenant).await?;
        if !principal.has_scope(SCOPE) {
            self.app
                .metrics
                .auth_failures
                .with_label_values(&["missing_scope"])
                .inc();
            return Err(ApiError::forbidden(format!(
                "passthrough calls need scope {SCOPE}"
            )));
        }
        let header = session.req_header();
        let rest = header.uri.path().strip_prefix(PREFIX).unwrap_or_default();
        let (name, vendor_path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let connection = snapshot
            .connection(&principal.tenant, name)
            .filter(|_| !name.is_empty())
            .ok_or_else(|| ApiError::not_found("no such connection for this tenant"))?
            .clone();
        ctx.vendor = connection.vendor.as_str();
        ctx.connection = Some(connection.name.clone());
        let rules = &connection.routes.passthrough;
        let method = &header.method;
        match rules.allows(method, vendor_path) {
            Ok(()) => {}
            Err(PathRefused::Ambiguous) => {
                return Err(ApiError::invalid(format!(
                    "{}; send the vendor path as the vendor documents it",
                    PathRefused::Ambiguous
                )))
            }
            Err(PathRefused::NotAllowed) => {
                return Err(ApiError::forbidden(format!(
                    "{method} {} is not on the {} passthrough allow-list; GET /v1/capabilities lists it",
                    shorten(vendor_path),
                    connection.vendor
                )))
            }
        }
        let declared = header
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|len| len > rules.max_body_bytes) {
            return Err(too_large(rules.max_body_bytes));
        }
        let target = match header.uri.query() {
            Some(q) => format!("{}{vendor_path}?{q}", connection.base_url.path_prefix),
            None => format!("{}{vendor_path}", connection.base_url.path_prefix),
        };
        let target = target.parse::<http::Uri>().map_err(|_| {
            ApiError::invalid("the vendor path or query is not a valid request target")
        })?;
        // The same vendor edge as translated calls: pause after a vendor 429, the circuit
        // breaker and the vendor budget; refused with no vendor call. No retries: a streamed
        // body cannot be sent twice.
        let key = ConnectionKey::new(connection.tenant.as_str(), connection.name.as_str());
        let ticket = self
            .app
            .edge
            .admit_once(
                &key,
                connection.vendor,
                &connection.resilience,
                OPERATION,
                rules.timeout,
            )
            .await
            .map_err(|refusal| refusal.into_api_error(connection.vendor, &connection.name))?;
        // A client trickling its body must not hold the call open forever.
        session.set_read_timeout(Some(snapshot.settings.http.body_read_timeout));
        ctx.passthrough = Some(Plan {
            connection,
            target,
            peer: None,
            body_bytes: 0,
            body_too_large: false,
            vendor_started: None,
            vendor_status: None,
            failure_outcome: None,
            early_failure: None,
            ticket: Some(ticket),
            edge_outcome: None,
        });
        Ok(())
    }
}

fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        format!("the request body is larger than the passthrough limit of {limit} bytes"),
    )
}

/// At most 200 characters of client input in an error detail.
fn shorten(s: &str) -> String {
    s.chars().take(200).collect()
}

/// `upstream_peer`: the connection's peer. A failure to resolve the vendor's host fails the
/// call (`fail_to_proxy` answers it).
pub async fn upstream_peer(gateway: &Gateway, plan: &mut Plan) -> pingora::Result<Box<HttpPeer>> {
    let connection = &plan.connection;
    plan.vendor_started = Some(Instant::now());
    match gateway
        .app
        .client
        .proxy_peer(
            &connection.base_url,
            &connection.tls,
            connection.routes.passthrough.timeout,
        )
        .await
    {
        Ok(peer) => {
            let boxed = Box::new(peer.peer.clone());
            plan.peer = Some(peer);
            Ok(boxed)
        }
        Err(e) => {
            plan.failure_outcome = Some(e.outcome());
            plan.early_failure = Some(e);
            Err(pingora::Error::explain(
                pingora::ErrorType::ConnectError,
                "could not resolve the vendor's host",
            )
            .into_up())
        }
    }
}

/// `connected_to_upstream`: a new TLS session below the connection's `min_version` is refused
/// before the request is written.
pub fn check_session(
    plan: &mut Plan,
    reused: bool,
    negotiated: Option<String>,
) -> pingora::Result<()> {
    if reused || !plan.connection.base_url.tls {
        return Ok(());
    }
    check_tls_version(negotiated.as_deref(), &plan.connection.tls).map_err(|e| {
        plan.failure_outcome = Some(e.outcome());
        plan.early_failure = Some(e);
        pingora::Error::explain(
            pingora::ErrorType::InternalError,
            "the vendor's TLS version is below min_version",
        )
    })
}

/// `upstream_request_filter`: only allow-listed headers of the app's survive (and never one
/// that the request's `Connection` header names hop-by-hop); then the gateway's own headers.
pub fn upstream_request(
    plan: &Plan,
    request_id: &str,
    request: &mut RequestHeader,
) -> pingora::Result<()> {
    let rules = &plan.connection.routes.passthrough;
    let named_hop_by_hop: Vec<String> = request
        .headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .collect();
    let chunked = request
        .headers
        .get_all(http::header::TRANSFER_ENCODING)
        .iter()
        .any(|v| v.as_bytes().eq_ignore_ascii_case(b"chunked"));
    let dropped: Vec<http::HeaderName> = request
        .headers
        .keys()
        .filter(|name| {
            let framing = *name == http::header::CONTENT_LENGTH
                || (*name == http::header::TRANSFER_ENCODING && chunked);
            let passed =
                rules.passes_header(name) && !named_hop_by_hop.iter().any(|h| h == name.as_str());
            !(framing || passed)
        })
        .cloned()
        .collect();
    for name in &dropped {
        request.remove_header(name);
    }
    if chunked {
        // Only the framing the gateway itself writes goes on.
        request.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
    }
    let connection = &plan.connection;
    request.set_uri(plan.target.clone());
    request.insert_header(http::header::HOST, connection.base_url.host_header.clone())?;
    let (auth_name, auth_value) = &connection.auth_header;
    request.insert_header(auth_name.clone(), auth_value.clone())?;
    request.insert_header("x-request-id", request_id)?;
    if !request.headers.contains_key(http::header::USER_AGENT) {
        request.insert_header(
            http::header::USER_AGENT,
            concat!("switchboard/", env!("CARGO_PKG_VERSION")),
        )?;
    }
    Ok(())
}

/// `request_body_filter`: the streamed body may not pass the vendor's `max_body_bytes`.
pub fn count_body(plan: &mut Plan, chunk: Option<&bytes::Bytes>) -> pingora::Result<()> {
    plan.body_bytes += chunk.map_or(0, |c| c.len() as u64);
    if plan.body_bytes > plan.connection.routes.passthrough.max_body_bytes {
        plan.body_too_large = true;
        return Err(pingora::Error::explain(
            pingora::ErrorType::HTTPStatus(413),
            "passthrough request body over the limit",
        ));
    }
    Ok(())
}

/// `response_filter`: the vendor's answer as it is, minus its cookies and hop-by-hop headers.
pub fn downstream_response(
    plan: &mut Plan,
    ctx_status: &mut u16,
    ctx_code: &mut &'static str,
    request_id: &str,
    limit_headers: &[(http::HeaderName, http::HeaderValue)],
    response: &mut ResponseHeader,
) -> pingora::Result<()> {
    let named: Vec<String> = response
        .headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| {
            // Never let a vendor's `Connection` header strip the gateway's own framing.
            !t.is_empty()
                && t != http::header::CONTENT_LENGTH.as_str()
                && t != http::header::TRANSFER_ENCODING.as_str()
        })
        .collect();
    for name in STRIPPED_RESPONSE_HEADERS
        .iter()
        .copied()
        .chain(named.iter().map(String::as_str))
    {
        response.remove_header(name);
    }
    response.insert_header("x-request-id", request_id)?;
    // A limited tenant's `RateLimit-Policy` / `RateLimit`, as on every other answer.
    for (name, value) in limit_headers {
        response.insert_header(name.clone(), value.clone())?;
    }
    let status = response.status.as_u16();
    plan.edge_outcome = Some(match status {
        429 => AttemptOutcome::RateLimited {
            retry_after: response
                .headers
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, SystemTime::now())),
        },
        500..=599 => AttemptOutcome::Failed(CallFailure::Status(status)),
        _ => AttemptOutcome::Answered,
    });
    plan.vendor_status = Some(status);
    *ctx_status = status;
    *ctx_code = code_for_status(status);
    Ok(())
}

/// The `code` label of a relayed vendor answer: `ok`, or the normalized word for the
/// vendor's failure (its status and body reach the app untouched either way).
fn code_for_status(status: u16) -> &'static str {
    match status {
        429 => ErrorCode::VendorRateLimited.as_str(),
        500..=599 => ErrorCode::VendorError.as_str(),
        _ => "ok",
    }
}

/// `fail_to_proxy`: the error a failed passthrough call answers with, when the vendor's answer
/// has not started (after that, the connection is cut: the status is on the wire already).
pub async fn failure(
    gateway: &Gateway,
    plan: &mut Plan,
    error: &pingora::Error,
) -> Option<ApiError> {
    if plan.body_too_large {
        return Some(too_large(plan.connection.routes.passthrough.max_body_bytes));
    }
    let connection = plan.connection.clone();
    if let Some(call) = plan.early_failure.take() {
        plan.edge_outcome = Some(classify_failure(&call));
        return Some(call.into_api_error(connection.vendor));
    }
    if let Some(peer) = &plan.peer {
        if let Some(call) = gateway
            .app
            .client
            .proxy_failure(error, peer, &connection.base_url, &connection.tls)
            .await
        {
            plan.failure_outcome = Some(call.outcome());
            plan.edge_outcome = Some(classify_failure(&call));
            return Some(call.into_api_error(connection.vendor));
        }
    }
    match error.etype() {
        pingora::ErrorType::ReadTimedout => Some(ApiError::new(
            ErrorCode::RequestTimeout,
            "the request body stopped arriving",
        )),
        _ => None,
    }
}

/// `logging`: the vendor call, counted under operation `passthrough`.
pub fn observe(gateway: &Gateway, plan: &Plan, vendor: &'static str) {
    let Some(started) = plan.vendor_started else {
        return;
    };
    let outcome = match (plan.vendor_status, plan.failure_outcome) {
        (Some(status), _) => outcome_for_status(status),
        (None, Some(outcome)) => outcome,
        // The call was cut by the gateway (body limit) or the client.
        (None, None) => return,
    };
    let elapsed: Duration = started.elapsed();
    let metrics = &gateway.app.metrics;
    metrics
        .vendor_requests
        .with_label_values(&[vendor, OPERATION, outcome])
        .inc();
    metrics
        .vendor_duration
        .with_label_values(&[vendor, OPERATION])
        .observe(elapsed.as_secs_f64());
}

/// `logging`: tell the vendor edge how the call ended (the breaker counts it; a vendor 429
/// pauses the connection). A call cut before any outcome (the client went away) settles
/// nothing: its permit is dropped, which frees a half-open probe slot.
pub async fn settle(gateway: &Gateway, plan: &mut Plan) {
    if let (Some(ticket), Some(outcome)) = (plan.ticket.take(), plan.edge_outcome.take()) {
        gateway.app.edge.finish(ticket, outcome).await;
    }
}

/// The vendor time and call count for the access log.
pub fn vendor_time(plan: &Plan) -> (Duration, u32) {
    match plan.vendor_started {
        Some(started) => (started.elapsed(), 1),
        None => (Duration::ZERO, 0),
    }
}
