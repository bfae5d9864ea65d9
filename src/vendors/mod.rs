//! Vendor adapters: one module per vendor, each a table of the vendor calls it knows
//! (checked against `routes/<vendor>.yaml`) plus `execute`, which turns one normalized
//! operation into one or more vendor calls through a [`CallContext`].
//!
//! Translation is pure: every adapter keeps its request building and response mapping in
//! plain functions (unit-tested with fixture bodies); `execute` only sequences calls.

pub mod bench_support;
pub mod caac;
pub mod chatcaptain;
pub mod client;
pub mod libredesk;
pub mod llamadapro;
pub mod redact;
#[cfg(test)]
pub(crate) mod test_support;
pub mod tls;

use async_trait::async_trait;
use bytes::Bytes;
use serde_json::{Map, Value};

use crate::api::ids::{KeyGrammar, Kind, ObjectId};
use crate::api::operation::{Operation, Vendor};
use crate::api::request::{OperationRequest, Output};
use crate::api::{ApiError, ErrorCode};
use crate::config::Connection;
use crate::metrics::Metrics;

pub use client::{VendorBody, VendorCall, VendorClient, VendorResponse};

/// A vendor call an adapter knows how to make, by the name it has in the routes file.
/// `params` are the path placeholders the call needs (all must appear in the path).
#[derive(Debug)]
pub struct EndpointSpec {
    pub name: &'static str,
    pub params: &'static [&'static str],
}

/// A list filter, and the vendor call it needs when that call is not the operation's own.
#[derive(Debug)]
pub struct FilterSpec {
    pub name: &'static str,
    pub needs: Option<&'static str>,
}

/// An operation the adapter can serve when every endpoint in `needs` is configured.
#[derive(Debug)]
pub struct OperationSpec {
    pub operation: Operation,
    pub needs: &'static [&'static str],
    pub filters: &'static [FilterSpec],
}

#[async_trait]
pub trait Adapter: Send + Sync + 'static {
    fn vendor(&self) -> Vendor;

    /// Every vendor call the routes file may configure.
    fn endpoints(&self) -> &'static [EndpointSpec];

    /// The keys an ID of `kind` carries for this vendor, in order. An ID whose keys do not fit
    /// is a 404 before any vendor call (anyone can build an ID).
    fn key_grammar(&self, kind: Kind) -> &'static [KeyGrammar];

    /// The operations this adapter implements and what each one needs.
    fn operations(&self) -> &'static [OperationSpec];

    /// Path placeholders filled from the connection's `defaults` (ChatCaptain `{chatbot_id}`).
    fn connection_params(&self) -> &'static [&'static str] {
        &[]
    }

    /// Connection `defaults` this vendor cannot work without, for config validation.
    fn required_defaults(&self) -> &'static [&'static str] {
        &[]
    }

    /// Serve one operation. Only called for operations the connection's routes support.
    async fn execute(
        &self,
        ctx: &mut CallContext<'_>,
        request: OperationRequest,
    ) -> Result<Output, ApiError>;
}

static LIBREDESK: libredesk::Libredesk = libredesk::Libredesk;
static CAAC: caac::Caac = caac::Caac;
static LLAMADAPRO: llamadapro::LlamadaPro = llamadapro::LlamadaPro;
static CHATCAPTAIN: chatcaptain::ChatCaptain = chatcaptain::ChatCaptain;

/// The adapter for a vendor. Every vendor has one; what it can serve is in its tables.
pub fn adapter_for(vendor: Vendor) -> &'static dyn Adapter {
    match vendor {
        Vendor::Libredesk => &LIBREDESK,
        Vendor::Caac => &CAAC,
        Vendor::LlamadaPro => &LLAMADAPRO,
        Vendor::ChatCaptain => &CHATCAPTAIN,
    }
}

/// Operations a connection's routes support, with their filters: the table the router and
/// `/v1/capabilities` both read.
pub fn supported_operations(
    adapter: &dyn Adapter,
    routes: &crate::config::routes::VendorRoutes,
) -> Vec<(Operation, Vec<&'static str>)> {
    adapter
        .operations()
        .iter()
        .filter(|spec| spec.needs.iter().all(|e| routes.has(e)))
        .map(|spec| {
            let filters = spec
                .filters
                .iter()
                .filter(|f| f.needs.is_none_or(|e| routes.has(e)))
                .map(|f| f.name)
                .collect();
            (spec.operation, filters)
        })
        .collect()
}

/// Everything an adapter may use while serving one operation.
pub struct CallContext<'a> {
    pub connection: &'a Connection,
    pub client: &'a VendorClient,
    pub metrics: &'a Metrics,
    pub operation: Operation,
    pub request_id: &'a str,
    /// Fill `raw` on objects (the caller asked `include=raw` and holds `raw:read`).
    pub want_raw: bool,
    /// Total time spent waiting on the vendor, for the access log.
    pub vendor_time: std::time::Duration,
    /// Vendor calls made, for the access log and tests.
    pub vendor_calls: u32,
}

impl<'a> CallContext<'a> {
    pub fn vendor(&self) -> Vendor {
        self.connection.vendor
    }

    /// Make one vendor call by its routes-file name.
    pub async fn call(
        &mut self,
        endpoint: &str,
        call: VendorCall,
    ) -> Result<VendorResponse, ApiError> {
        let vendor = self.connection.vendor;
        let endpoint = self.connection.routes.endpoint(endpoint).ok_or_else(|| {
            ApiError::unsupported_operation(format!(
                "connection {:?} has no `{endpoint}` route for {vendor}",
                self.connection.name
            ))
        })?;
        let started = std::time::Instant::now();
        let result = self
            .client
            .send(self.connection, endpoint, call, self.request_id)
            .await;
        let elapsed = started.elapsed();
        self.vendor_time += elapsed;
        self.vendor_calls += 1;
        let outcome = match &result {
            Ok(r) => client::outcome_for_status(r.status),
            Err(e) => e.outcome(),
        };
        self.metrics
            .observe_vendor_call(vendor, self.operation, outcome, elapsed);
        if let Err(e) = &result {
            if e.is_connection_failure() {
                // What an operator needs to fix it, and nothing else: no address, no host.
                tracing::warn!(
                    request_id = self.request_id,
                    vendor = vendor.as_str(),
                    connection = %self.connection.name,
                    operation = self.operation.as_str(),
                    outcome,
                    cause = e.cause(),
                    reason = %e.safe_reason(),
                    "vendor connection failed"
                );
            }
        }
        // Every byte of vendor text the adapter reads — error messages, objects, `raw` — has
        // the connection's credentials cut out first: a vendor that echoes the request's
        // credentials can never put them in a response or a log line.
        result
            .map(|mut response| {
                response.body = self.connection.redactor.redact_bytes(response.body);
                response
            })
            .map_err(|e| e.into_api_error(vendor))
    }

    /// A new opaque ID for an object of this connection.
    pub fn id(&self, kind: Kind, keys: Vec<String>) -> String {
        ObjectId::new(kind, &self.connection.tenant, &self.connection.name, keys).encode()
    }

    /// A vendor field: the request's `vendor_fields` win over the connection's `defaults`.
    pub fn vendor_field<'v>(
        &'v self,
        name: &str,
        vendor_fields: &'v Map<String, Value>,
    ) -> Option<&'v Value> {
        vendor_fields
            .get(name)
            .or_else(|| self.connection.defaults.get(name))
    }

    pub fn raw(&self, value: &Value) -> Option<Value> {
        self.want_raw.then(|| value.clone())
    }
}

/// What a translation needs from the call context: who owns the IDs it mints, and whether the
/// caller asked for `raw`. Owned, so adapters never hold the context across a vendor call.
#[derive(Debug, Clone)]
pub(crate) struct Mapper {
    pub(crate) tenant: String,
    pub(crate) connection: String,
    pub(crate) want_raw: bool,
}

impl Mapper {
    pub(crate) fn new(ctx: &CallContext<'_>) -> Self {
        Mapper {
            tenant: ctx.connection.tenant.clone(),
            connection: ctx.connection.name.clone(),
            want_raw: ctx.want_raw,
        }
    }

    /// A new opaque ID of this connection.
    pub(crate) fn id(&self, kind: Kind, keys: Vec<String>) -> String {
        ObjectId::new(kind, &self.tenant, &self.connection, keys).encode()
    }

    /// The untouched vendor object, only when the caller asked for it.
    pub(crate) fn raw(&self, value: &Value) -> Option<Value> {
        self.want_raw.then(|| value.clone())
    }

    /// Like [`Mapper::raw`], building the value only when it is wanted.
    pub(crate) fn raw_with(&self, value: impl FnOnce() -> Value) -> Option<Value> {
        self.want_raw.then(value)
    }
}

/// A string with content: trimmed, and `None` when empty.
pub(crate) fn non_empty(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

pub(crate) fn owned_non_empty(s: Option<&str>) -> Option<String> {
    non_empty(s).map(str::to_owned)
}

/// The vendor said the connection's credentials are bad: `vendor_auth_failed` (502).
pub fn credentials_rejected(vendor: Vendor, response: &VendorResponse) -> ApiError {
    ApiError::vendor(
        ErrorCode::VendorAuthFailed,
        vendor,
        format!("{vendor} rejected the connection's credentials"),
    )
    .with_vendor_status(response.status)
}

/// The default mapping of a vendor's non-2xx answer to the error table (docs/api.md).
/// `message` is the vendor's own error text, passed through for 4xx input errors and 403s
/// (it is already redacted: see [`CallContext::call`]).
///
/// A 401 means bad credentials. A 403 does not: the credentials are valid but the vendor
/// account may not do this (Libredesk answers 403 for a key that may not see one
/// conversation), so it is `forbidden` here and becomes `not_found` for a read by ID
/// ([`forbidden_for`]). A vendor whose 403 *is* its bad-credentials answer (ChatCaptain)
/// maps it with [`credentials_rejected`] itself.
pub fn status_error(vendor: Vendor, response: &VendorResponse, message: Option<&str>) -> ApiError {
    let status = response.status;
    let (code, detail) = match status {
        401 => return credentials_rejected(vendor, response),
        403 => (
            ErrorCode::Forbidden,
            format!(
                "{vendor} does not allow this connection's account to do this: {}",
                truncate(message.unwrap_or("no reason given"), 200)
            ),
        ),
        404 => (ErrorCode::NotFound, format!("{vendor} has no such object")),
        429 => (
            ErrorCode::VendorRateLimited,
            format!("{vendor} is rate limiting this connection"),
        ),
        400 | 409 | 422 => (
            ErrorCode::InvalidRequest,
            format!(
                "{vendor} rejected the request: {}",
                truncate(message.unwrap_or("no reason given"), 200)
            ),
        ),
        s if s >= 500 => (
            ErrorCode::VendorError,
            format!("{vendor} failed with status {s}"),
        ),
        s => (
            ErrorCode::VendorError,
            format!("{vendor} answered with unexpected status {s}"),
        ),
    };
    ApiError::vendor(code, vendor, detail)
        .with_vendor_status(status)
        .with_retry_after(if status == 429 {
            response.retry_after
        } else {
            None
        })
}

/// What a vendor's 403 means for `op`: reading an object by ID that the account may not see
/// is indistinguishable, for the caller, from reading one that does not exist (404, like a
/// foreign ID); any other refused operation stays `forbidden` (403).
pub fn forbidden_for(op: Operation, error: ApiError) -> ApiError {
    let by_id_read = matches!(
        op,
        Operation::ContactsGet
            | Operation::ConversationsGet
            | Operation::MessagesGet
            | Operation::MessagesList
    );
    match error.vendor {
        Some(vendor)
            if by_id_read
                && error.code == ErrorCode::Forbidden
                && error.vendor_status == Some(403) =>
        {
            let mut not_found = ApiError::vendor(
                ErrorCode::NotFound,
                vendor,
                format!("{vendor} has no such object that this connection may see"),
            );
            not_found.vendor_status = error.vendor_status;
            not_found
        }
        _ => error,
    }
}

/// The vendor answered 2xx, but not with what its contract promises.
pub fn bad_response(vendor: Vendor, what: impl std::fmt::Display) -> ApiError {
    ApiError::vendor(
        ErrorCode::VendorBadResponse,
        vendor,
        format!("{vendor} sent a response that does not match its contract: {what}"),
    )
}

/// Parse a JSON body, or fail with `vendor_bad_response`.
pub fn parse_json<T: serde::de::DeserializeOwned>(
    vendor: Vendor,
    body: &Bytes,
) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| bad_response(vendor, e))
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
