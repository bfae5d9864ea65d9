//! The idempotency step (docs/api.md, "Writes that are safe to repeat"): a `POST` with an
//! `Idempotency-Key` runs at most once per tenant and key for 24 h. It sits after parsing
//! (the connection is known, the body is read) and before the vendor call.
//!
//! - [`App::begin_idempotent`] asks the state store: a new key starts (the request holds an
//!   in-flight lease), a finished one replays its stored answer with
//!   `Idempotent-Replayed: true` and no vendor call, a running one is 409
//!   `idempotency_in_progress`, a different request with the key is 422
//!   `idempotency_key_reused`, and a store that cannot answer is 503
//!   `idempotency_unavailable` (never risk a duplicate).
//! - [`InFlight::finish`] stores the answer (below 500, not 429) or releases the key so the
//!   client may retry. A request dropped before it finishes (the client went away mid-call)
//!   releases the key from a spawned task; a crashed process's lease simply expires.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue};

use super::{App, Reply};
use crate::api::{ApiError, ErrorCode};
use crate::state::idempotency::{lease_for, IDEMPOTENCY_KEY_HEADER, REPLAYED_HEADER};
use crate::state::{
    Begin, IdempotencyKey, Lease, RecordKey, RequestFingerprint, StateError, StateStore,
    StoredAnswer,
};

/// Vendor calls one operation may make in sequence (a read-merge-write update, a lookup
/// before a create): the lease covers this many endpoint timeouts and budget waits.
const MAX_CALLS_PER_OPERATION: u32 = 4;

/// The request's `Idempotency-Key`, if it sent one: 400 `invalid_request` when it is not
/// 1–255 visible ASCII characters, or when it is sent twice.
pub fn idempotency_key(headers: &http::HeaderMap) -> Result<Option<IdempotencyKey>, ApiError> {
    let mut values = headers.get_all(IDEMPOTENCY_KEY_HEADER).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::invalid(
            "send one Idempotency-Key header, not several",
        ));
    }
    IdempotencyKey::parse(first.as_bytes())
        .map(Some)
        .map_err(|e| ApiError::invalid(e.to_string()))
}

/// A started idempotent request: holds the in-flight lease until [`InFlight::finish`].
pub(super) struct InFlight {
    state: Arc<dyn StateStore>,
    lease: Option<Lease>,
}

/// What the idempotency step decided before the vendor call.
pub(super) enum Idempotent {
    /// Run the request, then [`InFlight::finish`].
    Run(InFlight),
    /// The stored answer of the first request: send it, call nothing.
    Replay(Reply),
}

impl App {
    /// Start the request `fingerprint` under `key` for `tenant` (see the module doc).
    /// `operation` is the metric label; `connection` the resolved connection, whose endpoint
    /// timeouts and budget bound the lease.
    pub(super) async fn begin_idempotent(
        &self,
        tenant: &str,
        key: IdempotencyKey,
        fingerprint: &RequestFingerprint,
        operation: &str,
        connection: &crate::snapshot::Connection,
    ) -> Result<Idempotent, ApiError> {
        let state = self.edge.state().clone();
        let record = RecordKey::new(tenant, key);
        let lease = lease_for(longest_run(connection));
        let count = |result: &str| {
            self.metrics
                .resilience
                .idempotency
                .with_label_values(&[operation, result])
                .inc();
        };
        match state.begin(&record, fingerprint, lease).await {
            Ok(Begin::Started(lease)) => {
                count("started");
                Ok(Idempotent::Run(InFlight {
                    state,
                    lease: Some(lease),
                }))
            }
            Ok(Begin::Replay(answer)) => {
                count("replayed");
                Ok(Idempotent::Replay(replayed(answer)))
            }
            Ok(Begin::InFlight { lease_remaining }) => {
                count("in_progress");
                Err(ApiError::new(
                    ErrorCode::IdempotencyInProgress,
                    "the first request with this Idempotency-Key is still running; retry \
                     when it has finished",
                )
                .with_retry_after(Some(retry_seconds(lease_remaining))))
            }
            Ok(Begin::Mismatch) => {
                count("mismatch");
                Err(ApiError::new(
                    ErrorCode::IdempotencyKeyReused,
                    "this Idempotency-Key was used with a different request (method, path, \
                     connection or body); use a new key for a new request",
                ))
            }
            Err(e) => {
                count("unavailable");
                self.metrics
                    .resilience
                    .state_errors
                    .with_label_values(&[state.backend()])
                    .inc();
                Err(unavailable(&e))
            }
        }
    }
}

impl InFlight {
    /// Store `result` for replay, or release the key (5xx, 429). A store error after the
    /// vendor call does not change the answer the client gets: the key is then released
    /// (or its lease lapses), so a retry runs again rather than fail.
    pub(super) async fn finish(mut self, result: &Result<Reply, ApiError>, request_id: &str) {
        let Some(lease) = self.lease.take() else {
            return;
        };
        let answer = match result {
            Ok(reply) => StoredAnswer::new(
                reply.status,
                std::iter::once((
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static(reply.content_type),
                ))
                .chain(reply.headers.iter().cloned()),
                reply.body.clone(),
            ),
            Err(error) => {
                let problem = Reply::problem(error, request_id);
                StoredAnswer::new(
                    problem.status,
                    [(
                        http::header::CONTENT_TYPE,
                        HeaderValue::from_static(problem.content_type),
                    )],
                    problem.body,
                )
            }
        };
        if let Err(e) = self.state.complete(&lease, answer).await {
            tracing::warn!(error = %e, "could not store the idempotent answer; the key is released");
        }
    }
}

impl Drop for InFlight {
    /// Dropped before [`InFlight::finish`] (the request's future was cancelled): release the
    /// key now rather than block retries for the whole lease.
    fn drop(&mut self) {
        let Some(lease) = self.lease.take() else {
            return;
        };
        let state = self.state.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = state.release(&lease).await {
                    tracing::debug!(error = %e, "could not release an abandoned idempotency key");
                }
            });
        }
    }
}

/// The longest an operation on `connection` can run: a few sequential calls, each within
/// its endpoint timeout (retries and backoff included) after at most its budget wait.
fn longest_run(connection: &crate::snapshot::Connection) -> Duration {
    let longest_call = connection
        .routes
        .endpoints
        .values()
        .map(|e| e.timeout)
        .max()
        .unwrap_or(Duration::from_secs(30));
    let budget_wait = connection
        .resilience
        .vendor_budget
        .as_ref()
        .map_or(Duration::ZERO, |b| b.max_wait());
    (longest_call + budget_wait) * MAX_CALLS_PER_OPERATION
}

fn retry_seconds(d: Duration) -> u64 {
    crate::state::limit::header_seconds(d)
}

fn unavailable(e: &StateError) -> ApiError {
    ApiError::new(
        ErrorCode::IdempotencyUnavailable,
        "the idempotency store cannot answer, so a request with an Idempotency-Key is not \
         sent (it could run twice); retry shortly",
    )
    .with_retry_after(Some(1))
    .with_cause(e.clone())
}

/// The stored answer as a reply, marked `Idempotent-Replayed: true`.
fn replayed(answer: StoredAnswer) -> Reply {
    let content_type = answer
        .headers
        .iter()
        .find(|(name, _)| name == http::header::CONTENT_TYPE)
        .map_or("application/json", |(_, v)| {
            if v.as_bytes() == b"application/problem+json" {
                "application/problem+json"
            } else {
                "application/json"
            }
        });
    let mut headers: Vec<(HeaderName, HeaderValue)> = answer
        .headers
        .into_iter()
        .filter(|(name, _)| name != http::header::CONTENT_TYPE)
        .collect();
    headers.push((
        HeaderName::from_static(REPLAYED_HEADER),
        HeaderValue::from_static("true"),
    ));
    Reply {
        status: answer.status,
        content_type,
        body: answer.body,
        headers,
    }
}

/// The idempotency step of one request: `None` unless it is a `POST` with an
/// `Idempotency-Key` (then [`App::begin_idempotent`] decides).
pub(super) async fn begin(
    app: &App,
    request: &http::request::Parts,
    tenant: &str,
    connection: &crate::snapshot::Connection,
    operation: &str,
    body: &Bytes,
) -> Result<Option<Idempotent>, ApiError> {
    if request.method != http::Method::POST {
        return Ok(None);
    }
    let Some(key) = idempotency_key(&request.headers)? else {
        return Ok(None);
    };
    let fingerprint = RequestFingerprint::new("POST", request.uri.path(), &connection.name, body);
    app.begin_idempotent(tenant, key, &fingerprint, operation, connection)
        .await
        .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_header_is_parsed_once_and_checked() {
        let mut headers = http::HeaderMap::new();
        assert!(idempotency_key(&headers).unwrap().is_none());
        headers.insert(IDEMPOTENCY_KEY_HEADER, HeaderValue::from_static("order-1"));
        assert_eq!(
            idempotency_key(&headers).unwrap().unwrap().as_str(),
            "order-1"
        );
        headers.append(IDEMPOTENCY_KEY_HEADER, HeaderValue::from_static("order-2"));
        assert_eq!(
            idempotency_key(&headers).unwrap_err().code,
            ErrorCode::InvalidRequest
        );
        let mut headers = http::HeaderMap::new();
        headers.insert(
            IDEMPOTENCY_KEY_HEADER,
            HeaderValue::from_static("two words"),
        );
        assert_eq!(
            idempotency_key(&headers).unwrap_err().code,
            ErrorCode::InvalidRequest
        );
    }

    #[test]
    fn a_replay_keeps_status_body_and_type_and_says_so() {
        let reply = replayed(StoredAnswer::new(
            422,
            [(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/problem+json"),
            )],
            Bytes::from_static(b"{\"code\":\"invalid_request\"}"),
        ));
        assert_eq!(reply.status, 422);
        assert_eq!(reply.content_type, "application/problem+json");
        assert_eq!(&reply.body[..], b"{\"code\":\"invalid_request\"}");
        assert_eq!(
            reply.headers,
            [(
                HeaderName::from_static("idempotent-replayed"),
                HeaderValue::from_static("true")
            )]
        );
    }
}
