//! Vendor adapters: one module per vendor, each a table of the vendor calls it knows
//! (checked against `routes/<vendor>.yaml`) plus `execute`, which turns one normalized
//! operation into one or more vendor calls through a [`CallContext`].
//!
//! Translation is pure: every adapter keeps its request building and response mapping in
//! plain functions (unit-tested with fixture bodies); `execute` only sequences calls.
//! What the adapters share — reading vendor answers into wire structs, `vendor_fields`, ID
//! keys, cursors, names, phone numbers in E.164 — is written once, in `common`; an adapter
//! keeps only its vendor's own vocabulary and quirks.

pub mod bench_support;
pub mod caac;
mod call;
pub mod chatcaptain;
mod common;
pub mod libredesk;
pub mod llamadapro;
#[cfg(test)]
pub(crate) mod test_support;

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::api::ids::{KeyGrammar, Kind};
use crate::api::operation::{Operation, Vendor};
use crate::api::request::{OperationRequest, Output};
use crate::api::{ApiError, ErrorCode};
use crate::metrics::Metrics;
use crate::resilience::edge::AttemptOutcome;
use crate::resilience::retry::{CallFailure, Replay};
use crate::resilience::vendor_edge::VendorEdge;
use crate::snapshot::routes::VendorRoutes;
use crate::snapshot::Connection;
use crate::state::ConnectionKey;
use crate::upstream::{outcome_for_status, CallError, VendorBody, VendorClient, VendorResponse};
pub use call::VendorCall;
pub use common::attachment::{
    prepare as prepare_attachments, AttachmentSupport,
    DEFAULT_MAX_BYTES as DEFAULT_ATTACHMENT_MAX_BYTES,
};

/// A vendor call an adapter knows how to make, by the name it has in the routes file.
/// `params` are the path placeholders the call needs (all must appear in the path).
#[derive(Debug)]
pub struct EndpointSpec {
    pub name: &'static str,
    pub params: &'static [&'static str],
    /// `Some(default)` when the routes file may set this call's `body_envelope` (a vendor
    /// whose documents do not show the body's envelope): the default wrapper key, `""` for
    /// none. `None`: the adapter builds the body itself.
    pub body_envelope: Option<&'static str>,
}

/// A list filter, and the vendor call it needs when that call is not the operation's own.
#[derive(Debug)]
pub struct FilterSpec {
    pub name: &'static str,
    pub needs: Option<&'static str>,
}

/// A routes-file `settings` entry an adapter refuses: its dotted key and why (the config
/// loader reports it as a routes error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    pub key: String,
    pub reason: String,
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

    /// Whether `messages.send` takes `attachments` on a connection with these routes, and
    /// in which form (for `GET /v1/capabilities`). `None`: the vendor cannot, or the routes
    /// lack the calls it needs; a send with attachments is then a 400.
    fn attachments(&self, _routes: &VendorRoutes) -> Option<AttachmentSupport> {
        None
    }

    /// Check the routes file's `settings` (vendor facts kept as data) when it is loaded, so a
    /// bad one is a named config error and the old config keeps serving. By default a vendor
    /// has none, and any key is refused.
    fn check_settings(
        &self,
        settings: &std::collections::BTreeMap<String, Value>,
    ) -> Result<(), SettingError> {
        match settings.keys().next() {
            None => Ok(()),
            Some(key) => Err(SettingError {
                key: format!("settings.{key}"),
                reason: format!("{} has no settings", self.vendor()),
            }),
        }
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
    routes: &VendorRoutes,
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
    /// The vendor edge every call goes through; `None` calls the vendor directly (adapter
    /// unit tests).
    pub edge: Option<&'a VendorEdge>,
}

/// What one attempt's result means to the edge: a vendor 429 (with its `Retry-After`), a
/// 5xx or a failed exchange (maybe retried, counted by the breaker), or a final answer.
pub fn classify_attempt(result: &Result<VendorResponse, CallError>) -> AttemptOutcome {
    match result {
        Ok(r) if r.status == 429 => AttemptOutcome::RateLimited {
            retry_after: r.retry_after.map(Duration::from_secs),
        },
        Ok(r) if r.status >= 500 => AttemptOutcome::Failed(CallFailure::Status(r.status)),
        Ok(_) => AttemptOutcome::Answered,
        Err(e) => classify_failure(e),
    }
}

/// What a failed vendor call means to the edge (the breaker, retries): shared by translated
/// calls and streamed passthrough calls.
pub fn classify_failure(error: &CallError) -> AttemptOutcome {
    match error {
        CallError::Timeout(_) => AttemptOutcome::Failed(CallFailure::Timeout),
        CallError::Connect(_) | CallError::Refused(_) => {
            AttemptOutcome::Failed(CallFailure::Connect)
        }
        CallError::Tls(_) => AttemptOutcome::Failed(CallFailure::Tls),
        CallError::Io(_) => AttemptOutcome::Failed(CallFailure::Reset),
        // Our own request could not be built, or the vendor's body is absurdly large: the
        // same every time, and no sign of an unhealthy vendor.
        CallError::Target(_) | CallError::TooLarge => AttemptOutcome::Answered,
    }
}

impl<'a> CallContext<'a> {
    pub fn vendor(&self) -> Vendor {
        self.connection.vendor
    }

    /// Make one vendor call by its routes-file name, through the connection's vendor edge
    /// (pause, circuit breaker, vendor budget, retries: [`VendorEdge::run`]) when the
    /// context has one. A call the edge refuses answers its documented error with no vendor
    /// call made.
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
        let connection = self.connection;
        let (client, metrics, operation, request_id) =
            (self.client, self.metrics, self.operation, self.request_id);
        // Attempts run inside the edge's future: they count into these, read after it.
        let spent_nanos = AtomicU64::new(0);
        let attempts = AtomicU32::new(0);
        let attempt = |time_left: Duration| {
            let call = call.clone();
            let (spent_nanos, attempts) = (&spent_nanos, &attempts);
            async move {
                let started = std::time::Instant::now();
                let result = match call::upstream_request(connection, endpoint, call, request_id) {
                    Ok(request) => {
                        client
                            .send(&connection.base_url, &connection.tls, request, time_left)
                            .await
                    }
                    Err(e) => Err(e),
                };
                let elapsed = started.elapsed();
                spent_nanos.fetch_add(
                    u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX),
                    Ordering::Relaxed,
                );
                attempts.fetch_add(1, Ordering::Relaxed);
                let outcome = match &result {
                    Ok(r) => outcome_for_status(r.status),
                    Err(e) => e.outcome(),
                };
                metrics.observe_vendor_call(vendor, operation, outcome, elapsed);
                result
            }
        };
        let result = match self.edge {
            Some(edge) => {
                let key = ConnectionKey::new(connection.tenant.as_str(), connection.name.as_str());
                let (result, _report) = edge
                    .run(
                        &key,
                        vendor,
                        &connection.resilience,
                        operation.as_str(),
                        Replay::for_method(&endpoint.method),
                        endpoint.timeout,
                        attempt,
                        classify_attempt,
                    )
                    .await;
                result.map_err(|refusal| refusal.into_api_error(vendor, &connection.name))
            }
            None => Ok(attempt(endpoint.timeout).await),
        };
        self.vendor_time += Duration::from_nanos(spent_nanos.load(Ordering::Relaxed));
        self.vendor_calls += attempts.load(Ordering::Relaxed);
        // Every byte of vendor text the adapter reads — error messages, objects, `raw` — has
        // the connection's credentials cut out first: a vendor that echoes the request's
        // credentials can never put them in a response or a log line.
        result?
            .map(|mut response| {
                response.body = self.connection.redactor.redact_bytes(response.body);
                response
            })
            .map_err(|e| e.into_api_error(vendor))
    }

    /// Refuse before any vendor call when a step of this operation needs a route the
    /// connection does not configure: all or nothing, never half the calls and then a missing
    /// route. `why` finishes "so <vendor> cannot …".
    pub fn require_routes<'e>(
        &self,
        endpoints: impl IntoIterator<Item = &'e str>,
        why: &str,
    ) -> Result<(), ApiError> {
        match endpoints
            .into_iter()
            .find(|e| !self.connection.routes.has(e))
        {
            Some(missing) => Err(ApiError::unsupported_operation(format!(
                "this connection has no `{missing}` route, so {} cannot {why}",
                self.vendor()
            ))),
            None => Ok(()),
        }
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

#[cfg(test)]
// Tests may panic on a broken fixture; that is their job.
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::common::Mapper;
    use super::*;

    fn mapper() -> Mapper {
        Mapper {
            tenant: "acme".into(),
            connection: "c".into(),
            want_raw: false,
        }
    }

    /// The phones of a contact each vendor stores `number` on, through each adapter's own
    /// contact mapping; with a `country`, only the vendors that store one beside the number
    /// (Libredesk's calling-code field, CAAC's member country).
    fn phones(number: &str, country: Option<&str>) -> Vec<(Vendor, Vec<String>)> {
        let m = mapper();
        let mut out = vec![
            (Vendor::Libredesk, {
                let value =
                    json!({"id": 1, "phone_number": number, "phone_number_country_code": country});
                libredesk::translate_contact(&m, &value).unwrap().phones
            }),
            (Vendor::Caac, {
                let value = json!({"id": 1, "mobile": number, "country": country});
                caac::translate_contact(&m, &caac::MemberTypes::default(), 1201, &value)
                    .unwrap()
                    .phones
            }),
        ];
        if country.is_none() {
            let value =
                json!({"id": 1, "addresses": [{"channelType": "PHONE", "address": number}]});
            let llamadapro = llamadapro::translate_contact(&m, &value).unwrap().phones;
            let value = json!({"id": "c1", "phoneNumber": number});
            let chatcaptain = chatcaptain::translate_contact(&m, &value).unwrap().phones;
            out.push((Vendor::LlamadaPro, llamadapro));
            out.push((Vendor::ChatCaptain, chatcaptain));
        }
        out
    }

    #[test]
    fn one_number_normalizes_the_same_for_every_vendor() {
        // (stored number, country stored beside it, the contact's phone)
        for (number, country, expected) in [
            ("+44 7700 900123", None, "+447700900123"),
            ("0044 7700 900123", None, "+447700900123"),
            ("+44 (0)7700 900123", None, "+447700900123"),
            ("+39 06 1234 5678", None, "+390612345678"),
            ("+39 (0)6 1234 5678", None, "+390612345678"),
            ("0039/06/12345678", None, "+390612345678"),
            ("(+56) 9-1234-5671", None, "+56912345671"),
            ("+1 (415) 555.0100", None, "+14155550100"),
            ("+49 30/1234567", None, "+49301234567"),
            // Not E.164 without a country, or at all: kept as stored.
            ("07700 900123", None, "07700 900123"),
            ("+44 ext 5", None, "+44 ext 5"),
            ("+12345", None, "+12345"),
            // National numbers in the country stored beside them.
            ("07700 900123", Some("GB"), "+447700900123"),
            ("7700 900123", Some("+44"), "+447700900123"),
            ("06 1234 5678", Some("IT"), "+390612345678"),
            ("347 123 4567", Some("39"), "+393471234567"),
            ("030/1234567", Some("DE"), "+49301234567"),
            ("0912-345-678", Some("TW"), "+886912345678"),
            ("0044 7700 900123", Some("IT"), "+447700900123"),
            ("0912-345-678", Some("XX"), "0912-345-678"),
        ] {
            let phones = phones(number, country);
            assert!(phones.len() >= 2);
            for (vendor, phones) in phones {
                assert_eq!(
                    phones,
                    vec![expected],
                    "{vendor}: {number:?} in {country:?}"
                );
            }
        }
    }

    #[test]
    fn one_whatsapp_number_normalizes_the_same_for_every_vendor_with_whatsapp() {
        for (id, expected) in [
            ("4917612345678", "+4917612345678"),
            ("+49 176 1234-5678", "+4917612345678"),
            ("0049 176 12345678", "+4917612345678"),
        ] {
            let value = json!({"id": 1, "addresses": [{"channelType": "WHATSAPP", "address": id}]});
            let llamadapro = llamadapro::translate_contact(&mapper(), &value).unwrap();
            let value = json!({"id": "c1", "whatsappId": id});
            let chatcaptain = chatcaptain::translate_contact(&mapper(), &value).unwrap();
            assert_eq!(llamadapro.phones, vec![expected], "llamadapro: {id:?}");
            assert_eq!(chatcaptain.phones, vec![expected], "chatcaptain: {id:?}");
        }
    }
}
