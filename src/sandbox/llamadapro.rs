//! The LlamadaPro sandbox: an in-memory LlamadaPro (LatAm WhatsApp CRM; TSOA-generated Node
//! API, beta) that enforces the contract its published API reference documents (seed 001,
//! `docs/vendors/README.md`), and, where the reference is silent, behaves like a TSOA + Express
//! server does.
//!
//! # Contract, as enforced
//!
//! - **Auth** (security scheme `ApiKeyAuth`): the API key in the header the routes file
//!   names (`auth: {scheme: header, header: …}`; the name is provisional, so it is read from
//!   the routes given at start, never hard-coded; `scheme: bearer` works too). A missing or
//!   wrong key → 401 with the error body.
//! - **Error body** `{code, error, message, details}`: `code` is the HTTP status, `error` its
//!   reason phrase. Validation failures are TSOA's: 400 `"Validation failed"` with `details`
//!   keyed by field (`{"body.funnelId": {"message": "'funnelId' is required"}}`). The sandbox
//!   is stricter than TSOA's default in one place: a body property the endpoint does not
//!   document is refused (TSOA's `throw-on-extras`), so a gateway bug surfaces.
//! - **No envelope**: answers are the object itself; every success is 200.
//! - **Numbers are doubles**: ids of contacts, conversations, addresses, sessions and funnels
//!   are numbers (written as integers, like Node's JSON); message ids are strings; every
//!   object carries `tenantId`.
//! - **Pagination**: `pageSize` (default 20, max 100) + `pageToken` (opaque; a token from
//!   another list or a forged one → 400) in; `{items, nextPageToken, totalCount}` out, no
//!   `nextPageToken` on the last page. Contacts also take `page` (1-based).
//! - **Phone numbers** of WHATSAPP and PHONE addresses and of every WhatsApp call must be
//!   E.164 (`+` and 7–15 digits), else 400.
//!
//! # Endpoints (routes-file names)
//!
//! | endpoint | behaviour |
//! |---|---|
//! | `contacts.list` | id ascending; `filterBy=field:value;…` (firstName, lastName, email, phone, nationalId, companyPosition — the contact's own fields, so `email` is the deprecated top-level one), `searchBy` (substring of names and addresses), `sortBy=field=asc\|desc` (id, createdAt, updatedAt, firstName, lastName) |
//! | `contacts.search` | `POST {search?, filters?:[{field, operator: eq\|neq\|contains, value, or?}], sort?, size?, pageToken?, includeArchived?, includeTotalCount?}`; fields firstName, lastName, email, phone, nationalId, companyPosition, `addresses.address`, `addresses.channelType` (an address field matches when any address does); `or: true` joins a filter to the one before with OR; `search` needs every word in some name, address, legacy email/phone or nationalId; items in the search shape (ids as strings, `modelType: "Contact"`); `totalCount` only with `includeTotalCount: true` |
//! | `contacts.create` | `{firstName?, lastName?, addresses?:[{channelType: WHATSAPP\|PHONE\|EMAIL, address}], customFields?, nationalId?, companyPosition?, userId?, contactCompanyId?, providerId?, providerName?, metadata?, createdAt?, email?, phone?}` (the last two deprecated: stored as given); answers the contact |
//! | `contacts.get` / `contacts.delete` | by numeric id (not a number → 400, unknown → 404); delete answers the deleted contact |
//! | `contacts.update` | `PUT`, partial: only the fields sent change; `addresses` replaces the whole list; `customFields` merges key by key (`null` removes a key); `null` clears a nullable field; `id`, `tenantId`, `createdAt`, `updatedAt` are accepted and ignored |
//! | `conversations.create` | `{funnelId (required), contactId \| contact{firstName, lastName, phones, emails, nationalId, companyPosition, customFields, userId}, userId?, funnelStatusId?, archivedAt?, createdAt?, customFields?}`: unknown funnel or a status of another funnel → 400; unknown contactId → 404; neither → 400; `contact` is matched to an existing contact by any of its phones or emails (names updated, new addresses added) or created with PHONE/EMAIL addresses; the conversation gets a WHATSAPP channel session on the contact's WhatsApp address (else its phone address) from the funnel's number; answers the conversation with `channelSessions` and `contacts` |
//! | `messages.get` | by string id; unknown → 404 |
//! | `messages.send` | `{fromPhoneNumber, toPhoneNumber, content, type, userId?, fileId?, customFields?}`: `fromPhoneNumber` must be one of the tenant's WhatsApp numbers (a funnel's); `type` one of WhatsApp's; text needs non-empty `content`; media types need the `fileId` of a stored file (seeded, or from `media.upload`); filed under the contact's newest open conversation in that funnel (contact and conversation created when there is none); answers the message, `status: pending` |
//! | `media.upload` | UploadMedia `{fromPhoneNumber (required, a tenant number), fileId?, fileName?, contentType?, content?, tags?}`: with `fileId`, that stored file (unknown → 400); else direct mode, `fileName`, `contentType` and `content` (the file in base64 — the document types it as a string) all required (400 naming the field), over 100 MB → 400; answers `{url, size, fileName, contentType, fileId, mediaId, tags}`. A media message with that `fileId` then carries the attachment with `metadata: {fileName, contentType, size, mediaId}` (the document leaves `metadata` open; this is the sandbox's reading) |
//! | `messages.send_template` | `{fromPhoneNumber, toPhoneNumber, templateName, languageCode, variables?:[{value}] \| components?, userId?, customFields?}`: the template must exist in that language and get exactly its number of variables; `variables` and `components` together → 400; the message content is the rendered template |
//!
//! # Seed data (deterministic; [`seed`] has the constants)
//!
//! - Tenant `tnt_5f2c9a`. Users 11 Camila Rojas, 12 Diego Fuentes.
//! - Funnels: **7** "Ventas", WhatsApp number **+56229145000**, statuses 21 Nuevo, 22
//!   Cotizado, 23 Ganado; 8 "Postventa", +56229145001, statuses 31 Abierto, 32 Resuelto.
//! - Contacts (30, ids 1001–1030): 1001 Valentina Muñoz (WHATSAPP +56912345671, EMAIL
//!   valentina@example.cl, PHONE +56223456789, custom fields source=web, plan=pro),
//!   1002 Mateo González (WHATSAPP +56912345672), 1003 Sofía Rodríguez (EMAIL only),
//!   1004 Benjamín Silva (deprecated top-level email/phone only, no addresses),
//!   1005 Isabella Torres (PHONE +5215512345678), 1006–1030 "Cliente NN" (WHATSAPP
//!   +5691000NNNN, EMAIL clienteNNNN@example.org).
//! - Conversations: **501** Valentina, Ventas, Nuevo, Camila — messages 1 inbound, 2 outbound
//!   (Camila, read), 3 inbound with an image; 502 Mateo, Ventas, Ganado, archived — 4 the
//!   `bienvenida` template (outbound), 5 inbound; 503 Isabella, Postventa, on her phone
//!   number — 6 inbound.
//! - Message ids `66a0c0de` + 16 hex digits of the sequence number. New objects continue
//!   every sequence.
//! - Templates: `bienvenida` (es, en_US; 2 variables), `estado_pedido` (es; 2),
//!   `recordatorio` (es; none). Uploaded files: `file_0001` (image), `file_0002` (PDF).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::response::Response;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use futures::future::BoxFuture;
use http::{HeaderName, StatusCode};
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;

use super::{
    js_iso_string, json_bytes_response, json_response, lock, unix_now, unix_seconds, Credentials,
    Query, Sandbox, SandboxRequest, VendorSimulator, VendorState,
};
use crate::api::operation::Vendor;
use crate::snapshot::routes::{AuthScheme, VendorRoutes};

/// Constants for the seed data, for tests and the demo.
pub mod seed {
    pub const TENANT_ID: &str = "tnt_5f2c9a";

    pub const USER_CAMILA_ID: i64 = 11;
    pub const USER_DIEGO_ID: i64 = 12;

    /// "Ventas": the funnel the demo connection creates conversations in.
    pub const FUNNEL_SALES_ID: i64 = 7;
    /// The Ventas WhatsApp number: the demo connection's `fromPhoneNumber`.
    pub const FUNNEL_SALES_NUMBER: &str = "+56229145000";
    pub const STATUS_NEW_ID: i64 = 21;
    pub const STATUS_QUOTED_ID: i64 = 22;
    pub const STATUS_WON_ID: i64 = 23;
    /// "Postventa".
    pub const FUNNEL_SUPPORT_ID: i64 = 8;
    pub const FUNNEL_SUPPORT_NUMBER: &str = "+56229145001";
    pub const STATUS_OPEN_ID: i64 = 31;
    pub const STATUS_RESOLVED_ID: i64 = 32;

    /// WhatsApp, email and phone addresses; custom fields source=web, plan=pro.
    pub const CONTACT_VALENTINA_ID: i64 = 1001;
    pub const CONTACT_VALENTINA_WHATSAPP: &str = "+56912345671";
    pub const CONTACT_VALENTINA_EMAIL: &str = "valentina@example.cl";
    pub const CONTACT_VALENTINA_PHONE: &str = "+56223456789";
    pub const CONTACT_MATEO_ID: i64 = 1002;
    pub const CONTACT_MATEO_WHATSAPP: &str = "+56912345672";
    /// An email address only: no number to message.
    pub const CONTACT_SOFIA_ID: i64 = 1003;
    /// Only the deprecated top-level email and phone.
    pub const CONTACT_BENJAMIN_ID: i64 = 1004;
    pub const CONTACT_BENJAMIN_EMAIL: &str = "benjamin@example.pe";
    pub const CONTACT_BENJAMIN_PHONE: &str = "+51987654321";
    /// A PHONE address only.
    pub const CONTACT_ISABELLA_ID: i64 = 1005;
    pub const CONTACT_ISABELLA_PHONE: &str = "+5215512345678";
    pub const FIRST_CONTACT_ID: i64 = 1001;
    pub const CONTACT_COUNT: usize = 30;

    /// Valentina, Ventas, open, Camila; messages 1–3.
    pub const CONVERSATION_VALENTINA_ID: i64 = 501;
    /// Mateo, Ventas, archived; messages 4–5.
    pub const CONVERSATION_MATEO_ID: i64 = 502;
    /// Isabella, Postventa, on her phone number; message 6.
    pub const CONVERSATION_ISABELLA_ID: i64 = 503;
    pub const CONVERSATION_COUNT: usize = 3;

    pub const MESSAGE_VALENTINA_FIRST_ID: &str = "66a0c0de0000000000000001";
    /// Camila's reply (outbound, read).
    pub const MESSAGE_CAMILA_REPLY_ID: &str = "66a0c0de0000000000000002";
    /// Valentina's photo of an invoice (inbound, one image attachment).
    pub const MESSAGE_VALENTINA_IMAGE_ID: &str = "66a0c0de0000000000000003";
    /// The `bienvenida` template sent to Mateo.
    pub const MESSAGE_MATEO_TEMPLATE_ID: &str = "66a0c0de0000000000000004";
    pub const MESSAGE_COUNT: usize = 6;

    /// Two variables: the contact's name and the funnel's.
    pub const TEMPLATE_WELCOME: &str = "bienvenida";
    pub const FILE_IMAGE_ID: &str = "file_0001";
    pub const FILE_PDF_ID: &str = "file_0002";
}

/// Milliseconds since the Unix epoch (JavaScript's `Date`).
type Millis = i64;

const DEFAULT_PAGE_SIZE: usize = 20;
const MAX_PAGE_SIZE: usize = 100;
const E164_MIN_DIGITS: usize = 7;
const E164_MAX_DIGITS: usize = 15;

const CHANNEL_TYPES: [&str; 3] = ["WHATSAPP", "PHONE", "EMAIL"];

/// `WhatsAppMessageType`, as published.
const WHATSAPP_TYPES: [&str; 16] = [
    "text",
    "image",
    "audio",
    "video",
    "document",
    "sticker",
    "location",
    "contacts",
    "interactive",
    "reaction",
    "button",
    "order",
    "system",
    "unknown",
    "unsupported",
    "media_placeholder",
];
const MEDIA_TYPES: [&str; 5] = ["image", "audio", "video", "document", "sticker"];

struct User {
    id: i64,
    name: &'static str,
}

const USERS: [User; 2] = [
    User {
        id: seed::USER_CAMILA_ID,
        name: "Camila Rojas",
    },
    User {
        id: seed::USER_DIEGO_ID,
        name: "Diego Fuentes",
    },
];

struct Funnel {
    id: i64,
    name: &'static str,
    /// The funnel's WhatsApp business number.
    number: &'static str,
    /// `funnelAddressId` of its channel sessions.
    address_id: i64,
    /// (id, name); the first is where new conversations start.
    statuses: &'static [(i64, &'static str)],
}

const FUNNELS: [Funnel; 2] = [
    Funnel {
        id: seed::FUNNEL_SALES_ID,
        name: "Ventas",
        number: seed::FUNNEL_SALES_NUMBER,
        address_id: 71,
        statuses: &[
            (seed::STATUS_NEW_ID, "Nuevo"),
            (seed::STATUS_QUOTED_ID, "Cotizado"),
            (seed::STATUS_WON_ID, "Ganado"),
        ],
    },
    Funnel {
        id: seed::FUNNEL_SUPPORT_ID,
        name: "Postventa",
        number: seed::FUNNEL_SUPPORT_NUMBER,
        address_id: 81,
        statuses: &[
            (seed::STATUS_OPEN_ID, "Abierto"),
            (seed::STATUS_RESOLVED_ID, "Resuelto"),
        ],
    },
];

/// (name, language, text with `{{n}}` placeholders).
const TEMPLATES: [(&str, &str, &str); 4] = [
    (
        seed::TEMPLATE_WELCOME,
        "es",
        "Hola {{1}}, gracias por escribir a {{2}}.",
    ),
    (
        seed::TEMPLATE_WELCOME,
        "en_US",
        "Hi {{1}}, thanks for writing to {{2}}.",
    ),
    ("estado_pedido", "es", "Tu pedido {{1}} está {{2}}."),
    (
        "recordatorio",
        "es",
        "Te recordamos tu cita de mañana. Responde SI para confirmar.",
    ),
];

/// (file id, type, url) of files uploaded to the files service.
const FILES: [(&str, &str, &str); 2] = [
    (
        seed::FILE_IMAGE_ID,
        "image",
        "https://files.llamadapro.example/tnt_5f2c9a/file_0001/cotizacion.jpg",
    ),
    (
        seed::FILE_PDF_ID,
        "document",
        "https://files.llamadapro.example/tnt_5f2c9a/file_0002/propuesta.pdf",
    ),
];

fn user_name(id: i64) -> Option<&'static str> {
    USERS.iter().find(|u| u.id == id).map(|u| u.name)
}

fn funnel(id: i64) -> Option<&'static Funnel> {
    FUNNELS.iter().find(|f| f.id == id)
}

/// Where a new conversation of `funnel` starts.
fn first_status(funnel: &Funnel) -> i64 {
    funnel.statuses.first().map_or(0, |(id, _)| *id)
}

fn funnel_by_number(number: &str) -> Option<&'static Funnel> {
    FUNNELS.iter().find(|f| f.number == number)
}

fn template_placeholders(text: &str) -> usize {
    (1..=10)
        .take_while(|n| text.contains(&format!("{{{{{n}}}}}")))
        .count()
}

// ----- errors --------------------------------------------------------------------------------

/// A LlamadaPro error answer.
#[derive(Debug, Clone, PartialEq)]
struct LpError {
    status: StatusCode,
    message: String,
    details: Map<String, Value>,
}

type LpResult<T> = Result<T, LpError>;

fn fail(status: StatusCode, message: impl Into<String>) -> LpError {
    LpError {
        status,
        message: message.into(),
        details: Map::new(),
    }
}

fn bad_request(message: impl Into<String>) -> LpError {
    fail(StatusCode::BAD_REQUEST, message)
}

fn not_found(message: impl Into<String>) -> LpError {
    fail(StatusCode::NOT_FOUND, message)
}

/// One field's failure, in TSOA's validation report shape.
fn invalid_field(field: &str, message: impl Into<String>, value: Option<&Value>) -> LpError {
    let mut report = Validation::default();
    report.fail(field, message, value);
    LpError {
        details: report.errors,
        ..bad_request("Validation failed")
    }
}

fn error_response(status: StatusCode, message: &str, details: Map<String, Value>) -> Response {
    json_response(
        status,
        &json!({
            "code": status.as_u16(),
            "error": status.canonical_reason().unwrap_or("Error"),
            "message": message,
            "details": details,
        }),
    )
}

impl LpError {
    fn into_response(self) -> Response {
        error_response(self.status, &self.message, self.details)
    }
}

// ----- time ----------------------------------------------------------------------------------

/// A UTC instant, for seed data.
const fn at(year: i64, month: i64, day: i64, hour: i64, minute: i64) -> Millis {
    unix_seconds(year, month, day, hour, minute) * 1000
}

/// An ISO 8601 timestamp as JavaScript's `new Date(…)` reads the usual forms:
/// `YYYY-MM-DDTHH:MM[:SS[.fff]](Z|±HH:MM)`.
fn parse_time(text: &str) -> Option<Millis> {
    let (date, time) = text.split_once('T')?;
    let mut parts = date.split('-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: i64 = parts.next()?.parse().ok()?;
    let day: i64 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let (clock, offset) = if let Some(clock) = time.strip_suffix('Z') {
        (clock, 0)
    } else {
        let at = time.rfind(['+', '-'])?;
        let (clock, zone) = time.split_at(at);
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let (h, m) = zone[1..].split_once(':')?;
        (
            clock,
            sign * (h.parse::<i64>().ok()? * 60 + m.parse::<i64>().ok()?),
        )
    };
    let (hms, fraction) = match clock.split_once('.') {
        Some((hms, f)) => (hms, f),
        None => (clock, ""),
    };
    let mut hms = hms.split(':');
    let hour: i64 = hms.next()?.parse().ok()?;
    let minute: i64 = hms.next()?.parse().ok()?;
    let second: i64 = hms.next().map_or(Some(0), |s| s.parse().ok())?;
    if hour > 23 || minute > 59 || second > 59 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let millis: i64 = format!("{fraction:0<3}")[..3].parse().ok()?;
    Some(at(year, month, day, hour, minute) + second * 1000 + millis - offset * 60_000)
}

fn ts(t: Millis) -> Value {
    Value::String(js_iso_string(t))
}

fn opt_ts(t: Option<Millis>) -> Value {
    t.map(ts).unwrap_or(Value::Null)
}

// ----- small parsers -------------------------------------------------------------------------

/// `+` and 7–15 digits, the first not 0.
fn is_e164(number: &str) -> bool {
    number.strip_prefix('+').is_some_and(|digits| {
        (E164_MIN_DIGITS..=E164_MAX_DIGITS).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0')
    })
}

fn valid_email(email: &str) -> bool {
    match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !email.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

/// A `number <double>` path or query value that names an object: integral and positive.
fn parse_id(raw: Option<&str>, field: &str) -> LpResult<i64> {
    let raw = raw.unwrap_or_default();
    match raw.trim().parse::<f64>() {
        Ok(n) if n.fract() == 0.0 && (1.0..9.0e15).contains(&n) => Ok(n as i64),
        Ok(_) => Err(not_found(format!("No object with id {raw}"))),
        Err(_) => Err(invalid_field(
            field,
            "invalid float number",
            Some(&Value::String(raw.to_owned())),
        )),
    }
}

/// A page size from a query value or body number: default 20, at most 100, at least 1.
fn page_size(value: Option<f64>, field: &str) -> LpResult<usize> {
    match value {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(n) if n >= 1.0 && n.fract() == 0.0 => Ok((n as usize).min(MAX_PAGE_SIZE)),
        Some(n) => Err(invalid_field(
            field,
            "must be a positive integer",
            Some(&json!(n)),
        )),
    }
}

fn query_number(query: &Query, key: &str) -> LpResult<Option<f64>> {
    match query.get(key).map(str::trim) {
        None | Some("") => Ok(None),
        Some(raw) => raw.parse::<f64>().map(Some).map_err(|_| {
            invalid_field(
                &format!("query.{key}"),
                "invalid float number",
                Some(&Value::String(raw.to_owned())),
            )
        }),
    }
}

/// Opaque page tokens: base64url of `<list>:<offset>`. A token names the list it came from.
fn encode_token(list: &str, offset: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("{list}:{offset}"))
}

fn decode_token(list: &str, token: &str, field: &str) -> LpResult<usize> {
    URL_SAFE_NO_PAD
        .decode(token.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| {
            let (name, offset) = text.split_once(':')?;
            (name == list).then_some(())?;
            offset.parse::<usize>().ok()
        })
        .ok_or_else(|| {
            invalid_field(
                field,
                "Invalid pageToken",
                Some(&Value::String(token.to_owned())),
            )
        })
}

/// One page of `items`, in LlamadaPro's list shape.
fn page_of(list: &str, items: Vec<Value>, offset: usize, size: usize, total_count: bool) -> Value {
    let total = items.len();
    let page: Vec<Value> = items.into_iter().skip(offset).take(size).collect();
    let mut body = Map::new();
    body.insert("items".into(), Value::Array(page));
    let next = offset.saturating_add(size);
    if next < total {
        body.insert("nextPageToken".into(), encode_token(list, next).into());
    }
    if total_count {
        body.insert("totalCount".into(), total.into());
    }
    Value::Object(body)
}

// ----- request bodies: TSOA-style validation ---------------------------------------------------

/// What a documented body property may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Text,
    TextOrNull,
    Number,
    NumberOrNull,
    Boolean,
    /// `Dictionary_unknown_`: any JSON object.
    Dictionary,
    Array,
    /// A date-time string.
    DateTime,
    DateTimeOrNull,
    Any,
}

/// A documented property of a request body.
struct Prop {
    name: &'static str,
    shape: Shape,
    required: bool,
}

const fn prop(name: &'static str, shape: Shape) -> Prop {
    Prop {
        name,
        shape,
        required: false,
    }
}

const fn required(name: &'static str, shape: Shape) -> Prop {
    Prop {
        name,
        shape,
        required: true,
    }
}

/// TSOA's validation report: `{"body.field": {message, value}}`.
#[derive(Debug, Default)]
struct Validation {
    errors: Map<String, Value>,
}

impl Validation {
    fn fail(&mut self, field: &str, message: impl Into<String>, value: Option<&Value>) {
        let mut entry = Map::new();
        entry.insert("message".into(), Value::String(message.into()));
        if let Some(value) = value {
            entry.insert("value".into(), value.clone());
        }
        self.errors
            .entry(field.to_owned())
            .or_insert(Value::Object(entry));
    }

    /// `item` as an object, or `None` with `prefix` reported as "invalid object".
    fn object<'v>(&mut self, prefix: &str, item: &'v Value) -> Option<&'v Map<String, Value>> {
        let map = item.as_object();
        if map.is_none() {
            self.fail(prefix, "invalid object", Some(item));
        }
        map
    }

    /// Check `map` against the documented properties (excess ones refused).
    fn check(&mut self, prefix: &str, map: &Map<String, Value>, props: &[Prop]) {
        for prop in props {
            let field = format!("{prefix}.{}", prop.name);
            match map.get(prop.name) {
                None if prop.required => {
                    self.fail(&field, format!("'{}' is required", prop.name), None)
                }
                None => {}
                Some(value) => {
                    if let Some(message) = shape_error(prop.shape, value) {
                        self.fail(&field, message, Some(value));
                    }
                }
            }
        }
        for key in map.keys() {
            if !props.iter().any(|p| p.name == key) {
                self.fail(
                    &format!("{prefix}.{key}"),
                    format!("\"{key}\" is an excess property and therefore is not allowed"),
                    None,
                );
            }
        }
    }

    fn finish(self) -> LpResult<()> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(LpError {
                details: self.errors,
                ..bad_request("Validation failed")
            })
        }
    }
}

fn shape_error(shape: Shape, value: &Value) -> Option<&'static str> {
    let ok = match shape {
        Shape::Text => value.is_string(),
        Shape::TextOrNull => value.is_string() || value.is_null(),
        Shape::Number => value.is_number(),
        Shape::NumberOrNull => value.is_number() || value.is_null(),
        Shape::Boolean => value.is_boolean(),
        Shape::Dictionary => value.is_object(),
        Shape::Array => value.is_array(),
        Shape::DateTime => value.as_str().and_then(parse_time).is_some(),
        Shape::DateTimeOrNull => value.is_null() || value.as_str().and_then(parse_time).is_some(),
        Shape::Any => true,
    };
    if ok {
        return None;
    }
    Some(match shape {
        Shape::Text | Shape::TextOrNull => "invalid string value",
        Shape::Number | Shape::NumberOrNull => "invalid float number",
        Shape::Boolean => "invalid boolean value",
        Shape::Dictionary => "invalid object",
        Shape::Array => "invalid array",
        Shape::DateTime | Shape::DateTimeOrNull => {
            "invalid ISO 8601 datetime format, i.e. YYYY-MM-DDTHH:mm:ss"
        }
        Shape::Any => "invalid value",
    })
}

/// The JSON object body. Express's JSON parser only reads `application/json`; anything else
/// leaves the body empty (and required fields then fail validation). Unparsable JSON → 400.
fn json_body(request: &SandboxRequest) -> LpResult<Map<String, Value>> {
    if !request.says_json() || request.body.is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(&request.body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(invalid_field("body", "invalid object", None)),
        Err(_) => Err(bad_request("Unexpected token in JSON body")),
    }
}

fn text<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    map.get(key).and_then(Value::as_str)
}

/// The items of the array property `key`, numbered (none when it is absent or no array).
fn items<'a>(map: &'a Map<String, Value>, key: &str) -> impl Iterator<Item = (usize, &'a Value)> {
    map.get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
}

/// An integral double as an id.
fn number_id(value: Option<&Value>) -> Option<i64> {
    let n = value?.as_f64()?;
    (n.is_finite() && n.fract() == 0.0 && n.abs() < 9.0e15).then_some(n as i64)
}

/// A nullable field of an update: absent → no change, `null` → cleared, else the value.
fn nullable_text(map: &Map<String, Value>, key: &str) -> Option<Option<String>> {
    match map.get(key)? {
        Value::String(s) => Some(Some(s.clone())),
        _ => Some(None),
    }
}

fn nullable_number(map: &Map<String, Value>, key: &str) -> Option<Option<i64>> {
    match map.get(key)? {
        Value::Null => Some(None),
        v => Some(number_id(Some(v))),
    }
}

// ----- state ---------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Address {
    id: i64,
    channel_type: String,
    address: String,
    created_at: Millis,
    updated_at: Millis,
}

#[derive(Debug, Clone, Default)]
struct Contact {
    id: i64,
    created_at: Millis,
    updated_at: Millis,
    first_name: Option<String>,
    last_name: Option<String>,
    /// Deprecated top-level copies, stored as given.
    email: Option<String>,
    phone: Option<String>,
    national_id: Option<String>,
    company_position: Option<String>,
    provider_id: Option<String>,
    provider_name: Option<String>,
    user_id: Option<i64>,
    contact_company_id: Option<i64>,
    metadata: Value,
    custom_fields: Map<String, Value>,
    addresses: Vec<Address>,
    /// Bumped on every change (the search index's `eventSequence`).
    event_sequence: i64,
}

impl Contact {
    fn full_name(&self) -> String {
        [self.first_name.as_deref(), self.last_name.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The address a WhatsApp conversation runs on: WHATSAPP first, else an E.164 PHONE.
    fn messaging_address(&self) -> Option<&Address> {
        self.addresses
            .iter()
            .find(|a| a.channel_type == "WHATSAPP")
            .or_else(|| {
                self.addresses
                    .iter()
                    .find(|a| a.channel_type == "PHONE" && is_e164(&a.address))
            })
    }

    fn has_number(&self, number: &str) -> bool {
        self.addresses
            .iter()
            .any(|a| a.channel_type != "EMAIL" && a.address == number)
    }
}

#[derive(Debug, Clone)]
struct Session {
    id: i64,
    funnel_address_id: i64,
    contact_address_id: i64,
    messaging_conversation_id: String,
    start_time: Millis,
}

#[derive(Debug, Clone)]
struct Conversation {
    id: i64,
    created_at: Millis,
    updated_at: Millis,
    contact_id: i64,
    user_id: Option<i64>,
    funnel_id: i64,
    funnel_status_id: i64,
    archived_at: Option<Millis>,
    session: Option<Session>,
    custom_fields: Map<String, Value>,
}

#[derive(Debug, Clone)]
struct Party {
    address: String,
    role: &'static str,
    display_name: String,
}

#[derive(Debug, Clone)]
struct Message {
    id: String,
    created_at: Millis,
    updated_at: Millis,
    conversation_id: i64,
    session_id: Option<i64>,
    messaging_conversation_id: Option<String>,
    contact_id: i64,
    user_id: Option<String>,
    content: String,
    status: &'static str,
    direction: &'static str,
    sender: Party,
    recipient: Party,
    /// (id, type, url, metadata) of each attachment.
    attachments: Vec<(String, String, String, Value)>,
    custom_fields: Map<String, Value>,
}

/// A file UploadMedia stored (direct-upload mode).
#[derive(Debug, Clone)]
struct Upload {
    file_id: String,
    media_id: String,
    file_name: String,
    content_type: String,
    size: usize,
    url: String,
}

/// The most UploadMedia takes in one file (WhatsApp's largest media, a 100 MB document).
const MAX_UPLOAD_BYTES: usize = 100 * 1024 * 1024;

struct Data {
    contacts: BTreeMap<i64, Contact>,
    conversations: BTreeMap<i64, Conversation>,
    messages: BTreeMap<String, Message>,
    next_contact_id: i64,
    next_address_id: i64,
    next_conversation_id: i64,
    next_session_id: i64,
    next_message: u64,
    next_attachment: u64,
    /// Files UploadMedia stored, by `fileId`.
    uploads: BTreeMap<String, Upload>,
    /// Last timestamp handed out: new objects are strictly ordered.
    clock: Millis,
}

fn message_id(n: u64) -> String {
    format!("66a0c0de{n:016x}")
}

/// How the sandbox reads the API key: the routes file's auth scheme.
#[derive(Debug, Clone)]
enum ApiKeyAuth {
    /// `<header>: <key>`.
    Header(HeaderName),
    /// `Authorization: Bearer <key>`.
    Bearer,
}

impl ApiKeyAuth {
    fn from_routes(scheme: &AuthScheme) -> std::io::Result<Self> {
        match scheme {
            AuthScheme::Header(name) => Ok(ApiKeyAuth::Header(name.clone())),
            AuthScheme::Bearer => Ok(ApiKeyAuth::Bearer),
            other => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "llamadapro sandbox routes: auth scheme {other:?} is not an API key scheme; \
                     use `header` (with the header name) or `bearer`"
                ),
            )),
        }
    }

    fn key<'r>(&self, request: &'r SandboxRequest) -> Option<&'r str> {
        match self {
            ApiKeyAuth::Header(name) => request.headers.get(name)?.to_str().ok(),
            ApiKeyAuth::Bearer => request
                .headers
                .get(http::header::AUTHORIZATION)?
                .to_str()
                .ok()?
                .strip_prefix("Bearer "),
        }
    }
}

/// The LlamadaPro sandbox: the API key it accepts, how it reads it, and its in-memory CRM.
/// Endpoint calls arrive through the shared sandbox server; tests read state through the
/// accessors.
pub struct LlamadaProState {
    credentials: Credentials,
    auth: ApiKeyAuth,
    data: Mutex<Data>,
}

impl std::fmt::Debug for LlamadaProState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlamadaProState")
            .field("credentials", &self.credentials)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

/// Start the LlamadaPro sandbox on `listener`, reading the API key the way `routes` says.
pub(super) fn start(
    listener: TcpListener,
    routes: Arc<VendorRoutes>,
    credentials: Credentials,
) -> std::io::Result<Sandbox> {
    let state = Arc::new(LlamadaProState::new(credentials, &routes)?);
    Sandbox::start(
        listener,
        &routes,
        Vendor::LlamadaPro,
        state.clone(),
        VendorState::LlamadaPro(state),
    )
}

impl LlamadaProState {
    /// A seeded CRM accepting `credentials.api_key`, in the header `routes` names.
    pub fn new(credentials: Credentials, routes: &VendorRoutes) -> std::io::Result<Self> {
        Ok(LlamadaProState {
            credentials,
            auth: ApiKeyAuth::from_routes(&routes.auth)?,
            data: Mutex::new(Data::seeded()),
        })
    }

    /// Throw away every change and go back to the seed data.
    pub fn reset(&self) {
        *lock(&self.data) = Data::seeded();
    }

    /// A contact as `GET /contacts/{id}` answers it.
    pub fn contact(&self, id: i64) -> Option<Value> {
        let data = lock(&self.data);
        data.contacts.get(&id).map(contact_json)
    }

    pub fn contact_count(&self) -> usize {
        lock(&self.data).contacts.len()
    }

    /// A conversation as the create answers it.
    pub fn conversation(&self, id: i64) -> Option<Value> {
        let data = lock(&self.data);
        data.conversations
            .get(&id)
            .map(|c| data.conversation_json(c))
    }

    pub fn conversation_count(&self) -> usize {
        lock(&self.data).conversations.len()
    }

    /// A message as `GET /messages/{id}` answers it.
    pub fn message(&self, id: &str) -> Option<Value> {
        lock(&self.data).messages.get(id).map(message_json)
    }

    pub fn message_count(&self) -> usize {
        lock(&self.data).messages.len()
    }

    /// Every file UploadMedia stored, by `fileId`, as UploadMedia answered it.
    pub fn uploads(&self) -> Vec<Value> {
        lock(&self.data)
            .uploads
            .values()
            .map(|u| upload_json(u, json!({})))
            .collect()
    }

    /// Every message filed under a conversation, oldest first.
    pub fn messages(&self, conversation_id: i64) -> Vec<Value> {
        let data = lock(&self.data);
        let mut messages: Vec<&Message> = data
            .messages
            .values()
            .filter(|m| m.conversation_id == conversation_id)
            .collect();
        messages.sort_by_key(|m| (m.created_at, m.id.clone()));
        messages.into_iter().map(message_json).collect()
    }

    fn authenticate(&self, request: &SandboxRequest) -> LpResult<()> {
        match self.auth.key(request).map(str::trim) {
            Some(key) if !key.is_empty() => {
                if key == self.credentials.api_key {
                    Ok(())
                } else {
                    Err(fail(StatusCode::UNAUTHORIZED, "Invalid API key"))
                }
            }
            _ => Err(fail(StatusCode::UNAUTHORIZED, "Missing API key")),
        }
    }

    fn dispatch(&self, endpoint: &str, request: &SandboxRequest) -> LpResult<Value> {
        let query = Query::parse(request.query.as_deref());
        let mut data = lock(&self.data);
        match endpoint {
            "contacts.list" => data.list_contacts(&query),
            "contacts.search" => data.search_contacts(&json_body(request)?),
            "contacts.create" => data.create_contact(&json_body(request)?),
            "contacts.get" => {
                let id = parse_id(request.param("id"), "path.id")?;
                data.contact(id).map(contact_json)
            }
            "contacts.update" => {
                let id = parse_id(request.param("id"), "path.id")?;
                data.update_contact(id, &json_body(request)?)
            }
            "contacts.delete" => {
                let id = parse_id(request.param("id"), "path.id")?;
                data.delete_contact(id)
            }
            "conversations.create" => data.create_conversation(&json_body(request)?),
            "messages.get" => {
                let id = request.param("message_id").unwrap_or_default();
                data.messages
                    .get(id)
                    .map(message_json)
                    .ok_or_else(|| not_found(format!("Message {id} not found")))
            }
            "messages.send" => data.send_message(&json_body(request)?),
            "messages.send_template" => data.send_template(&json_body(request)?),
            "media.upload" => data.upload_media(&json_body(request)?),
            other => Err(not_found(format!("the sandbox does not simulate {other}"))),
        }
    }
}

impl VendorSimulator for LlamadaProState {
    fn handle(
        self: Arc<Self>,
        endpoint: &'static str,
        request: SandboxRequest,
    ) -> BoxFuture<'static, Response> {
        Box::pin(async move {
            if let Err(error) = self.authenticate(&request) {
                return error.into_response();
            }
            match self.dispatch(endpoint, &request) {
                Ok(body) => json_response(StatusCode::OK, &body),
                Err(error) => error.into_response(),
            }
        })
    }

    fn error(&self, status: StatusCode, message: &str) -> Response {
        error_response(status, message, Map::new())
    }

    /// A list answer cut short.
    fn malformed(&self) -> Response {
        json_bytes_response(StatusCode::OK, r#"{"items":[{"id":1001,"tenantId":"#)
    }
}

// ----- JSON shapes ---------------------------------------------------------------------------

fn address_json(contact_id: i64, a: &Address) -> Value {
    json!({
        "id": a.id,
        "tenantId": seed::TENANT_ID,
        "contactId": contact_id,
        "channelType": a.channel_type,
        "address": a.address,
        "createdAt": ts(a.created_at),
        "updatedAt": ts(a.updated_at),
    })
}

fn contact_json(c: &Contact) -> Value {
    json!({
        "id": c.id,
        "tenantId": seed::TENANT_ID,
        "providerId": c.provider_id,
        "providerName": c.provider_name,
        "nationalId": c.national_id,
        "firstName": c.first_name,
        "lastName": c.last_name,
        "email": c.email,
        "phone": c.phone,
        "userId": c.user_id,
        "contactCompanyId": c.contact_company_id,
        "companyPosition": c.company_position,
        "metadata": c.metadata,
        "createdAt": ts(c.created_at),
        "updatedAt": ts(c.updated_at),
        "customFields": c.custom_fields,
        "addresses": c.addresses.iter().map(|a| address_json(c.id, a)).collect::<Vec<_>>(),
    })
}

/// A search hit: the indexed document, ids as strings.
fn contact_search_json(c: &Contact) -> Value {
    json!({
        "tenantId": seed::TENANT_ID,
        "createdAt": ts(c.created_at),
        "updatedAt": ts(c.updated_at),
        "customFields": c.custom_fields,
        "metadata": c.metadata,
        "addresses": c.addresses.iter().map(|a| address_json(c.id, a)).collect::<Vec<_>>(),
        "providerId": c.provider_id,
        "providerName": c.provider_name,
        "nationalId": c.national_id,
        "firstName": c.first_name,
        "lastName": c.last_name,
        "email": c.email,
        "phone": c.phone,
        "companyPosition": c.company_position,
        "id": c.id.to_string(),
        "modelType": "Contact",
        "archivedAt": null,
        "eventSequence": c.event_sequence,
        "eventTimestamp": ts(c.updated_at),
        "userId": c.user_id.map(|u| u.to_string()),
        "contactCompanyId": c.contact_company_id.map(|u| u.to_string()),
    })
}

fn party_json(p: &Party) -> Value {
    json!({
        "providerId": p.address.trim_start_matches('+'),
        "address": p.address,
        "role": p.role,
        "displayName": p.display_name,
        "metadata": {},
    })
}

fn upload_json(u: &Upload, tags: Value) -> Value {
    json!({
        "url": format!("{}?signature=sandbox", u.url),
        "size": u.size,
        "fileName": u.file_name,
        "contentType": u.content_type,
        "fileId": u.file_id,
        "mediaId": u.media_id,
        "tags": tags,
    })
}

fn message_json(m: &Message) -> Value {
    let attachments: Vec<Value> = m
        .attachments
        .iter()
        .map(|(id, kind, url, metadata)| {
            json!({
                "id": id,
                "type": kind,
                "url": format!("{url}?signature=sandbox"),
                "unsignedUrl": url,
                "metadata": metadata,
                "mediaProcessing": null,
                "isCacheable": true,
            })
        })
        .collect();
    json!({
        "id": m.id,
        "tenantId": seed::TENANT_ID,
        "conversationId": m.messaging_conversation_id,
        "funnelConversationId": m.conversation_id,
        "sessionId": m.session_id,
        "providerId": format!("wamid.{}", m.id),
        "contactId": m.contact_id,
        "userId": m.user_id,
        "content": m.content,
        "status": m.status,
        "direction": m.direction,
        "channel": "whatsapp",
        "sender": party_json(&m.sender),
        "recipient": party_json(&m.recipient),
        "attachments": attachments,
        "createdAt": ts(m.created_at),
        "updatedAt": ts(m.updated_at),
        "metadata": {},
        "errors": [],
        "customFields": m.custom_fields,
        "mediaProcessing": null,
    })
}

// ----- contact search ------------------------------------------------------------------------

/// The values a search field has on a contact (address fields: one per address).
fn field_values(c: &Contact, field: &str) -> Option<Vec<String>> {
    let one = |v: &Option<String>| v.iter().cloned().collect::<Vec<_>>();
    Some(match field {
        "id" => vec![c.id.to_string()],
        "firstName" => one(&c.first_name),
        "lastName" => one(&c.last_name),
        "email" => one(&c.email),
        "phone" => one(&c.phone),
        "nationalId" => one(&c.national_id),
        "companyPosition" => one(&c.company_position),
        "addresses.address" => c.addresses.iter().map(|a| a.address.clone()).collect(),
        "addresses.channelType" => c.addresses.iter().map(|a| a.channel_type.clone()).collect(),
        _ => return None,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    Eq,
    Neq,
    Contains,
}

struct SearchFilter {
    field: String,
    operator: Operator,
    value: String,
    or: bool,
}

impl SearchFilter {
    fn matches(&self, c: &Contact) -> bool {
        let values = field_values(c, &self.field).unwrap_or_default();
        let wanted = self.value.to_lowercase();
        match self.operator {
            Operator::Eq => values.iter().any(|v| v.to_lowercase() == wanted),
            Operator::Neq => !values.iter().any(|v| v.to_lowercase() == wanted),
            Operator::Contains => values.iter().any(|v| v.to_lowercase().contains(&wanted)),
        }
    }
}

/// Filters joined left to right: AND, or OR for a filter with `or: true`.
fn matches_all(filters: &[SearchFilter], c: &Contact) -> bool {
    filters.iter().fold(true, |acc, f| {
        if f.or {
            acc || f.matches(c)
        } else {
            acc && f.matches(c)
        }
    })
}

/// Every word of `search` appears in one of the contact's texts.
fn matches_text(c: &Contact, search: &str) -> bool {
    let mut texts: Vec<String> = vec![c.full_name()];
    texts.extend(c.email.iter().cloned());
    texts.extend(c.phone.iter().cloned());
    texts.extend(c.national_id.iter().cloned());
    texts.extend(c.addresses.iter().map(|a| a.address.clone()));
    let texts: Vec<String> = texts.iter().map(|t| t.to_lowercase()).collect();
    search
        .split_whitespace()
        .all(|word| texts.iter().any(|t| t.contains(&word.to_lowercase())))
}

/// Sort contacts by a field (`id`, `createdAt`, `updatedAt`, `firstName`, `lastName`).
fn sort_contacts(list: &mut [&Contact], field: &str, descending: bool) -> bool {
    let key = |c: &Contact| -> (String, i64) {
        match field {
            "firstName" => (
                c.first_name.clone().unwrap_or_default().to_lowercase(),
                c.id,
            ),
            "lastName" => (c.last_name.clone().unwrap_or_default().to_lowercase(), c.id),
            "createdAt" => (format!("{:020}", c.created_at), c.id),
            "updatedAt" => (format!("{:020}", c.updated_at), c.id),
            _ => (String::new(), c.id),
        }
    };
    if !["id", "firstName", "lastName", "createdAt", "updatedAt"].contains(&field) {
        return false;
    }
    list.sort_by_key(|c| key(c));
    if descending {
        list.reverse();
    }
    true
}

// ----- operations ------------------------------------------------------------------------------

const CONTACT_WRITE_PROPS: [Prop; 15] = [
    prop("userId", Shape::NumberOrNull),
    prop("customFields", Shape::Dictionary),
    prop("providerId", Shape::TextOrNull),
    prop("providerName", Shape::TextOrNull),
    prop("nationalId", Shape::TextOrNull),
    prop("firstName", Shape::TextOrNull),
    prop("lastName", Shape::TextOrNull),
    prop("email", Shape::TextOrNull),
    prop("phone", Shape::TextOrNull),
    prop("contactCompanyId", Shape::NumberOrNull),
    prop("companyPosition", Shape::TextOrNull),
    prop("metadata", Shape::Any),
    prop("createdAt", Shape::DateTime),
    prop("addresses", Shape::Array),
    // Update only (checked separately for create).
    prop("updatedAt", Shape::DateTime),
];

impl Data {
    fn tick(&mut self) -> Millis {
        self.clock = unix_now(Duration::from_millis(1)).max(self.clock + 1);
        self.clock
    }

    fn contact(&self, id: i64) -> LpResult<&Contact> {
        self.contacts
            .get(&id)
            .ok_or_else(|| not_found(format!("Contact {id} not found")))
    }

    fn contact_by_number(&self, number: &str) -> Option<i64> {
        self.contacts
            .values()
            .find(|c| c.has_number(number) || c.phone.as_deref() == Some(number))
            .map(|c| c.id)
    }

    fn new_address(&mut self, channel_type: &str, address: &str, at: Millis) -> Address {
        let id = self.next_address_id;
        self.next_address_id += 1;
        Address {
            id,
            channel_type: channel_type.to_owned(),
            address: address.to_owned(),
            created_at: at,
            updated_at: at,
        }
    }

    /// Validate `addresses` (TSOA shape, channel enum, E.164 numbers, email form).
    fn check_addresses(report: &mut Validation, value: Option<&Value>) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let Some(Value::Array(items)) = value else {
            return out;
        };
        for (i, item) in items.iter().enumerate() {
            let prefix = format!("body.addresses[{i}]");
            let Some(map) = report.object(&prefix, item) else {
                continue;
            };
            report.check(
                &prefix,
                map,
                &[
                    required("channelType", Shape::Text),
                    required("address", Shape::Text),
                ],
            );
            let (Some(kind), Some(address)) = (text(map, "channelType"), text(map, "address"))
            else {
                continue;
            };
            if !CHANNEL_TYPES.contains(&kind) {
                report.fail(
                    &format!("{prefix}.channelType"),
                    format!(
                        "should be one of the following; {}",
                        CHANNEL_TYPES
                            .iter()
                            .map(|c| format!("'{c}'"))
                            .collect::<Vec<_>>()
                            .join(",")
                    ),
                    map.get("channelType"),
                );
                continue;
            }
            let ok = match kind {
                "EMAIL" => valid_email(address),
                _ => is_e164(address),
            };
            if !ok {
                report.fail(
                    &format!("{prefix}.address"),
                    if kind == "EMAIL" {
                        "must be a valid email address"
                    } else {
                        "must be in E.164 format (e.g. +14155552671)"
                    },
                    map.get("address"),
                );
                continue;
            }
            out.push((kind.to_owned(), address.to_owned()));
        }
        out
    }

    fn list_contacts(&self, query: &Query) -> LpResult<Value> {
        let size = page_size(query_number(query, "pageSize")?, "query.pageSize")?;
        let offset = match (query.get("pageToken"), query_number(query, "page")?) {
            (Some(token), _) if !token.is_empty() => {
                decode_token("contacts", token, "query.pageToken")?
            }
            (_, Some(page)) if page >= 1.0 => (page as usize - 1).saturating_mul(size),
            _ => 0,
        };
        let mut list: Vec<&Contact> = self.contacts.values().collect();
        if let Some(filter_by) = query.get("filterBy").filter(|f| !f.is_empty()) {
            for clause in filter_by.split(';').filter(|c| !c.is_empty()) {
                let (field, value) = clause.split_once(':').ok_or_else(|| {
                    invalid_field(
                        "query.filterBy",
                        "expected field:value pairs separated by ';'",
                        Some(&Value::String(filter_by.to_owned())),
                    )
                })?;
                if ![
                    "firstName",
                    "lastName",
                    "email",
                    "phone",
                    "nationalId",
                    "companyPosition",
                ]
                .contains(&field)
                {
                    return Err(invalid_field(
                        "query.filterBy",
                        format!("cannot filter by {field}"),
                        Some(&Value::String(filter_by.to_owned())),
                    ));
                }
                list.retain(|c| {
                    field_values(c, field)
                        .unwrap_or_default()
                        .iter()
                        .any(|v| v.eq_ignore_ascii_case(value))
                });
            }
        }
        if let Some(search) = query.get("searchBy").filter(|s| !s.trim().is_empty()) {
            list.retain(|c| matches_text(c, search));
        }
        if let Some(sort) = query.get("sortBy").filter(|s| !s.is_empty()) {
            let (field, direction) = sort.split_once('=').unwrap_or((sort, "asc"));
            let descending = match direction {
                "asc" => false,
                "desc" => true,
                _ => {
                    return Err(invalid_field(
                        "query.sortBy",
                        "direction must be asc or desc",
                        Some(&Value::String(sort.to_owned())),
                    ))
                }
            };
            if !sort_contacts(&mut list, field, descending) {
                return Err(invalid_field(
                    "query.sortBy",
                    format!("cannot sort by {field}"),
                    Some(&Value::String(sort.to_owned())),
                ));
            }
        }
        let items: Vec<Value> = list.into_iter().map(contact_json).collect();
        if offset > items.len() {
            return Err(invalid_field(
                "query.pageToken",
                "Invalid pageToken",
                query
                    .get("pageToken")
                    .map(|t| Value::String(t.to_owned()))
                    .as_ref(),
            ));
        }
        Ok(page_of("contacts", items, offset, size, true))
    }

    fn search_contacts(&self, body: &Map<String, Value>) -> LpResult<Value> {
        let mut report = Validation::default();
        report.check(
            "body",
            body,
            &[
                prop("search", Shape::Text),
                prop("filters", Shape::Array),
                prop("sort", Shape::Array),
                prop("size", Shape::Number),
                prop("pageToken", Shape::Text),
                prop("includeArchived", Shape::Boolean),
                prop("includeTotalCount", Shape::Boolean),
            ],
        );
        let mut filters = Vec::new();
        for (i, item) in items(body, "filters") {
            let prefix = format!("body.filters[{i}]");
            let Some(map) = report.object(&prefix, item) else {
                continue;
            };
            report.check(
                &prefix,
                map,
                &[
                    required("field", Shape::Text),
                    required("operator", Shape::Text),
                    required("value", Shape::Text),
                    prop("or", Shape::Boolean),
                ],
            );
            let (Some(field), Some(operator), Some(value)) = (
                text(map, "field"),
                text(map, "operator"),
                text(map, "value"),
            ) else {
                continue;
            };
            if field_values(&Contact::default(), field).is_none() {
                report.fail(
                    &format!("{prefix}.field"),
                    format!("unknown search field {field}"),
                    map.get("field"),
                );
                continue;
            }
            let operator = match operator {
                "eq" => Operator::Eq,
                "neq" => Operator::Neq,
                "contains" => Operator::Contains,
                _ => {
                    report.fail(
                        &format!("{prefix}.operator"),
                        "should be one of the following; 'eq','neq','contains'",
                        map.get("operator"),
                    );
                    continue;
                }
            };
            filters.push(SearchFilter {
                field: field.to_owned(),
                operator,
                value: value.to_owned(),
                or: map.get("or").and_then(Value::as_bool).unwrap_or(false),
            });
        }
        let mut sorts = Vec::new();
        for (i, item) in items(body, "sort") {
            let prefix = format!("body.sort[{i}]");
            let Some(map) = report.object(&prefix, item) else {
                continue;
            };
            report.check(
                &prefix,
                map,
                &[
                    required("field", Shape::Text),
                    prop("direction", Shape::Text),
                ],
            );
            if let Some(field) = text(map, "field") {
                let descending = text(map, "direction") == Some("desc");
                sorts.push((field.to_owned(), descending));
            }
        }
        report.finish()?;
        let size = page_size(body.get("size").and_then(Value::as_f64), "body.size")?;
        let offset = match text(body, "pageToken").filter(|t| !t.is_empty()) {
            Some(token) => decode_token("search", token, "body.pageToken")?,
            None => 0,
        };
        let search = text(body, "search").unwrap_or_default();
        let mut list: Vec<&Contact> = self
            .contacts
            .values()
            .filter(|c| matches_text(c, search) && matches_all(&filters, c))
            .collect();
        for (field, descending) in sorts.iter().rev() {
            if !sort_contacts(&mut list, field, *descending) {
                return Err(invalid_field(
                    "body.sort",
                    format!("cannot sort by {field}"),
                    None,
                ));
            }
        }
        let items: Vec<Value> = list.into_iter().map(contact_search_json).collect();
        if offset > items.len() {
            return Err(invalid_field("body.pageToken", "Invalid pageToken", None));
        }
        let total = body
            .get("includeTotalCount")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        Ok(page_of("search", items, offset, size, total))
    }

    fn create_contact(&mut self, body: &Map<String, Value>) -> LpResult<Value> {
        let mut report = Validation::default();
        let props: Vec<Prop> = CONTACT_WRITE_PROPS
            .into_iter()
            .filter(|p| p.name != "updatedAt")
            .collect();
        report.check("body", body, &props);
        let addresses = Self::check_addresses(&mut report, body.get("addresses"));
        report.finish()?;
        let now = self.tick();
        let created = body
            .get("createdAt")
            .and_then(Value::as_str)
            .and_then(parse_time)
            .unwrap_or(now);
        let id = self.next_contact_id;
        self.next_contact_id += 1;
        let addresses = addresses
            .iter()
            .map(|(kind, address)| self.new_address(kind, address, now))
            .collect();
        let contact = Contact {
            id,
            created_at: created,
            updated_at: now,
            first_name: text(body, "firstName").map(str::to_owned),
            last_name: text(body, "lastName").map(str::to_owned),
            email: text(body, "email").map(str::to_owned),
            phone: text(body, "phone").map(str::to_owned),
            national_id: text(body, "nationalId").map(str::to_owned),
            company_position: text(body, "companyPosition").map(str::to_owned),
            provider_id: text(body, "providerId").map(str::to_owned),
            provider_name: text(body, "providerName").map(str::to_owned),
            user_id: number_id(body.get("userId")),
            contact_company_id: number_id(body.get("contactCompanyId")),
            metadata: body.get("metadata").cloned().unwrap_or(Value::Null),
            custom_fields: body
                .get("customFields")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
            addresses,
            event_sequence: 1,
        };
        let answer = contact_json(&contact);
        self.contacts.insert(id, contact);
        Ok(answer)
    }

    fn update_contact(&mut self, id: i64, body: &Map<String, Value>) -> LpResult<Value> {
        self.contact(id)?;
        let mut report = Validation::default();
        let mut props: Vec<Prop> = CONTACT_WRITE_PROPS.into_iter().collect();
        props.push(prop("id", Shape::Number));
        props.push(prop("tenantId", Shape::Text));
        report.check("body", body, &props);
        let addresses = body
            .contains_key("addresses")
            .then(|| Self::check_addresses(&mut report, body.get("addresses")));
        report.finish()?;
        let now = self.tick();
        let new_addresses: Option<Vec<Address>> = addresses.map(|list| {
            list.iter()
                .map(|(kind, address)| self.new_address(kind, address, now))
                .collect()
        });
        let contact = self
            .contacts
            .get_mut(&id)
            .ok_or_else(|| not_found(format!("Contact {id} not found")))?;
        for (key, slot) in [
            ("firstName", &mut contact.first_name),
            ("lastName", &mut contact.last_name),
            ("email", &mut contact.email),
            ("phone", &mut contact.phone),
            ("nationalId", &mut contact.national_id),
            ("companyPosition", &mut contact.company_position),
            ("providerId", &mut contact.provider_id),
            ("providerName", &mut contact.provider_name),
        ] {
            if let Some(value) = nullable_text(body, key) {
                *slot = value;
            }
        }
        if let Some(user) = nullable_number(body, "userId") {
            contact.user_id = user;
        }
        if let Some(company) = nullable_number(body, "contactCompanyId") {
            contact.contact_company_id = company;
        }
        if let Some(metadata) = body.get("metadata") {
            contact.metadata = metadata.clone();
        }
        if let Some(Value::Object(fields)) = body.get("customFields") {
            for (key, value) in fields {
                if value.is_null() {
                    contact.custom_fields.remove(key);
                } else {
                    contact.custom_fields.insert(key.clone(), value.clone());
                }
            }
        }
        if let Some(mut list) = new_addresses {
            // An address that stays keeps its id and creation time.
            for address in &mut list {
                if let Some(old) = contact.addresses.iter().find(|a| {
                    a.channel_type == address.channel_type && a.address == address.address
                }) {
                    address.id = old.id;
                    address.created_at = old.created_at;
                }
            }
            contact.addresses = list;
        }
        contact.updated_at = now;
        contact.event_sequence += 1;
        Ok(contact_json(contact))
    }

    fn delete_contact(&mut self, id: i64) -> LpResult<Value> {
        let contact = self
            .contacts
            .remove(&id)
            .ok_or_else(|| not_found(format!("Contact {id} not found")))?;
        Ok(contact_json(&contact))
    }

    fn conversation_json(&self, c: &Conversation) -> Value {
        let contact = self.contacts.get(&c.contact_id);
        let sessions: Vec<Value> = c
            .session
            .iter()
            .map(|s| {
                json!({
                    "id": s.id,
                    "tenantId": seed::TENANT_ID,
                    "funnelConversationId": c.id,
                    "funnelAddressId": s.funnel_address_id,
                    "contactAddressId": s.contact_address_id,
                    "archivedAt": opt_ts(c.archived_at),
                    "startTime": ts(s.start_time),
                    "endTime": opt_ts(c.archived_at),
                    "channelType": "WHATSAPP",
                    "messagingConversationId": s.messaging_conversation_id,
                    "createdAt": ts(s.start_time),
                    "updatedAt": ts(c.updated_at),
                })
            })
            .collect();
        json!({
            "id": c.id,
            "tenantId": seed::TENANT_ID,
            "contactId": c.contact_id,
            "userId": c.user_id,
            "funnelId": c.funnel_id,
            "funnelStatusId": c.funnel_status_id,
            "archivedAt": opt_ts(c.archived_at),
            "createdAt": ts(c.created_at),
            "updatedAt": ts(c.updated_at),
            "channelSessions": sessions,
            "contacts": contact.map(contact_json).into_iter().collect::<Vec<_>>(),
            "customFields": c.custom_fields,
        })
    }

    /// A new conversation for `contact_id` in `funnel`, with a WhatsApp session on the
    /// contact's WhatsApp (else phone) address when it has one.
    fn add_conversation(
        &mut self,
        funnel: &Funnel,
        contact_id: i64,
        status: i64,
        user_id: Option<i64>,
        at: Millis,
    ) -> i64 {
        let id = self.next_conversation_id;
        self.next_conversation_id += 1;
        let address = self
            .contacts
            .get(&contact_id)
            .and_then(|c| c.messaging_address())
            .map(|a| a.id);
        let session = address.map(|address_id| {
            let session_id = self.next_session_id;
            self.next_session_id += 1;
            Session {
                id: session_id,
                funnel_address_id: funnel.address_id,
                contact_address_id: address_id,
                messaging_conversation_id: format!("wa-conv-{id:04}"),
                start_time: at,
            }
        });
        self.conversations.insert(
            id,
            Conversation {
                id,
                created_at: at,
                updated_at: at,
                contact_id,
                user_id,
                funnel_id: funnel.id,
                funnel_status_id: status,
                archived_at: None,
                session,
                custom_fields: Map::new(),
            },
        );
        id
    }

    fn create_conversation(&mut self, body: &Map<String, Value>) -> LpResult<Value> {
        let mut report = Validation::default();
        report.check(
            "body",
            body,
            &[
                prop("createdAt", Shape::DateTime),
                prop("userId", Shape::NumberOrNull),
                required("funnelId", Shape::Number),
                prop("funnelStatusId", Shape::NumberOrNull),
                prop("archivedAt", Shape::DateTimeOrNull),
                prop("customFields", Shape::Dictionary),
                prop("contactId", Shape::Number),
                prop("contact", Shape::Dictionary),
            ],
        );
        let mut new_contact = None;
        if let Some(Value::Object(contact)) = body.get("contact") {
            report.check(
                "body.contact",
                contact,
                &[
                    prop("firstName", Shape::Text),
                    prop("lastName", Shape::Text),
                    prop("phones", Shape::Array),
                    prop("emails", Shape::Array),
                    prop("nationalId", Shape::Text),
                    prop("companyPosition", Shape::Text),
                    prop("customFields", Shape::Dictionary),
                    prop("userId", Shape::Number),
                ],
            );
            let mut addresses = Vec::new();
            for (kind, key) in [("PHONE", "phones"), ("EMAIL", "emails")] {
                for (i, item) in items(contact, key) {
                    let field = format!("body.contact.{key}[{i}]");
                    match item.as_str() {
                        Some(value) if kind == "PHONE" && !is_e164(value) => report.fail(
                            &field,
                            "must be in E.164 format (e.g. +14155552671)",
                            Some(item),
                        ),
                        Some(value) if kind == "EMAIL" && !valid_email(value) => {
                            report.fail(&field, "must be a valid email address", Some(item))
                        }
                        Some(value) => addresses.push((kind, value.to_owned())),
                        None => report.fail(&field, "invalid string value", Some(item)),
                    }
                }
            }
            new_contact = Some((contact.clone(), addresses));
        }
        report.finish()?;

        let funnel_id = number_id(body.get("funnelId")).unwrap_or_default();
        let funnel = funnel(funnel_id).ok_or_else(|| {
            invalid_field(
                "body.funnelId",
                format!("Funnel {funnel_id} does not exist"),
                body.get("funnelId"),
            )
        })?;
        let status = match number_id(body.get("funnelStatusId")) {
            None => first_status(funnel),
            Some(s) if funnel.statuses.iter().any(|(id, _)| *id == s) => s,
            Some(s) => {
                return Err(invalid_field(
                    "body.funnelStatusId",
                    format!("Status {s} is not a status of funnel {}", funnel.id),
                    body.get("funnelStatusId"),
                ))
            }
        };
        let user_id = number_id(body.get("userId"));
        if let Some(user) = user_id {
            if user_name(user).is_none() {
                return Err(invalid_field(
                    "body.userId",
                    format!("User {user} does not exist"),
                    body.get("userId"),
                ));
            }
        }
        let now = self.tick();
        let contact_id = match (number_id(body.get("contactId")), new_contact) {
            (Some(id), _) => self.contact(id)?.id,
            (None, Some((params, addresses))) => {
                self.upsert_conversation_contact(&params, &addresses, now)
            }
            (None, None) => {
                return Err(bad_request(
                    "Either contactId or contact information must be provided",
                ))
            }
        };
        let created = body
            .get("createdAt")
            .and_then(Value::as_str)
            .and_then(parse_time)
            .unwrap_or(now);
        let id = self.add_conversation(funnel, contact_id, status, user_id, created);
        if let Some(conversation) = self.conversations.get_mut(&id) {
            conversation.archived_at = body
                .get("archivedAt")
                .and_then(Value::as_str)
                .and_then(parse_time);
            if let Some(Value::Object(fields)) = body.get("customFields") {
                conversation.custom_fields = fields.clone();
            }
        }
        self.conversations
            .get(&id)
            .map(|c| self.conversation_json(c))
            .ok_or_else(|| fail(StatusCode::INTERNAL_SERVER_ERROR, "conversation vanished"))
    }

    /// `contact` of a conversation create: matched by any of its phones or emails (then its
    /// names are updated and new addresses added), else created.
    fn upsert_conversation_contact(
        &mut self,
        params: &Map<String, Value>,
        addresses: &[(&str, String)],
        now: Millis,
    ) -> i64 {
        let matched = self
            .contacts
            .values()
            .find(|c| {
                addresses.iter().any(|(kind, value)| match *kind {
                    "EMAIL" => c.addresses.iter().any(|a| {
                        a.channel_type == "EMAIL" && a.address.eq_ignore_ascii_case(value)
                    }),
                    _ => c.has_number(value),
                })
            })
            .map(|c| c.id);
        let id = match matched {
            Some(id) => id,
            None => {
                let id = self.next_contact_id;
                self.next_contact_id += 1;
                self.contacts.insert(
                    id,
                    Contact {
                        id,
                        created_at: now,
                        updated_at: now,
                        custom_fields: Map::new(),
                        event_sequence: 0,
                        ..Contact::default()
                    },
                );
                id
            }
        };
        let fresh: Vec<Address> = addresses
            .iter()
            .filter(|(kind, value)| {
                self.contacts.get(&id).is_some_and(|c| {
                    let known =
                        c.addresses.iter().any(|a| {
                            a.channel_type == *kind && a.address.eq_ignore_ascii_case(value)
                        }) || (*kind == "PHONE" && c.has_number(value));
                    !known
                })
            })
            .map(|(kind, value)| (*kind, value.clone()))
            .collect::<Vec<_>>()
            .into_iter()
            .map(|(kind, value)| self.new_address(kind, &value, now))
            .collect();
        if let Some(contact) = self.contacts.get_mut(&id) {
            for (key, slot) in [
                ("firstName", &mut contact.first_name),
                ("lastName", &mut contact.last_name),
                ("nationalId", &mut contact.national_id),
                ("companyPosition", &mut contact.company_position),
            ] {
                if let Some(value) = text(params, key) {
                    *slot = Some(value.to_owned());
                }
            }
            if let Some(user) = number_id(params.get("userId")) {
                contact.user_id = Some(user);
            }
            if let Some(Value::Object(fields)) = params.get("customFields") {
                for (key, value) in fields {
                    contact.custom_fields.insert(key.clone(), value.clone());
                }
            }
            contact.addresses.extend(fresh);
            contact.updated_at = now;
            contact.event_sequence += 1;
        }
        id
    }

    /// `fromPhoneNumber` and `toPhoneNumber` of a WhatsApp call: both E.164, the first a
    /// number of one of the tenant's funnels.
    fn check_numbers(report: &mut Validation, body: &Map<String, Value>) {
        for key in ["fromPhoneNumber", "toPhoneNumber"] {
            if let Some(number) = text(body, key) {
                if !is_e164(number) {
                    report.fail(
                        &format!("body.{key}"),
                        "must be in E.164 format (e.g. +14155552671)",
                        body.get(key),
                    );
                } else if key == "fromPhoneNumber" && funnel_by_number(number).is_none() {
                    report.fail(
                        "body.fromPhoneNumber",
                        format!("{number} is not a WhatsApp number of this account"),
                        body.get(key),
                    );
                }
            }
        }
    }

    /// Where a message to `to` from the funnel owning `from` is filed: the contact with that
    /// number (created with a WHATSAPP address if there is none) and its newest open
    /// conversation in that funnel (created if there is none).
    fn file_message(&mut self, from: &str, to: &str, now: Millis) -> (i64, i64) {
        let contact_id = match self.contact_by_number(to) {
            Some(id) => id,
            None => {
                let id = self.next_contact_id;
                self.next_contact_id += 1;
                let address = self.new_address("WHATSAPP", to, now);
                self.contacts.insert(
                    id,
                    Contact {
                        id,
                        created_at: now,
                        updated_at: now,
                        addresses: vec![address],
                        event_sequence: 1,
                        ..Contact::default()
                    },
                );
                id
            }
        };
        let Some(funnel) = funnel_by_number(from) else {
            return (contact_id, 0);
        };
        let open = self
            .conversations
            .values()
            .filter(|c| {
                c.contact_id == contact_id && c.funnel_id == funnel.id && c.archived_at.is_none()
            })
            .map(|c| c.id)
            .max();
        let conversation_id = match open {
            Some(id) => id,
            None => self.add_conversation(funnel, contact_id, first_status(funnel), None, now),
        };
        (contact_id, conversation_id)
    }

    fn add_outbound(
        &mut self,
        body: &Map<String, Value>,
        content: String,
        attachments: Vec<(String, String, String, Value)>,
    ) -> Value {
        let now = self.tick();
        let from = text(body, "fromPhoneNumber").unwrap_or_default().to_owned();
        let to = text(body, "toPhoneNumber").unwrap_or_default().to_owned();
        let (contact_id, conversation_id) = self.file_message(&from, &to, now);
        let session = self
            .conversations
            .get(&conversation_id)
            .and_then(|c| c.session.clone());
        let user_id = text(body, "userId").map(str::to_owned);
        let sender_name = user_id
            .as_deref()
            .and_then(|u| u.parse::<i64>().ok())
            .and_then(user_name)
            .or_else(|| funnel_by_number(&from).map(|f| f.name))
            .unwrap_or("LlamadaPro");
        let recipient_name = self
            .contacts
            .get(&contact_id)
            .map(Contact::full_name)
            .unwrap_or_default();
        self.next_message += 1;
        let id = message_id(self.next_message);
        let message = Message {
            id: id.clone(),
            created_at: now,
            updated_at: now,
            conversation_id,
            session_id: session.as_ref().map(|s| s.id),
            messaging_conversation_id: session.map(|s| s.messaging_conversation_id),
            contact_id,
            user_id,
            content,
            status: "pending",
            direction: "outbound",
            sender: Party {
                address: from,
                role: "user",
                display_name: sender_name.to_owned(),
            },
            recipient: Party {
                address: to,
                role: "contact",
                display_name: recipient_name,
            },
            attachments,
            custom_fields: body
                .get("customFields")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
        };
        let answer = message_json(&message);
        if let Some(conversation) = self.conversations.get_mut(&conversation_id) {
            conversation.updated_at = now;
        }
        self.messages.insert(id, message);
        answer
    }

    fn send_message(&mut self, body: &Map<String, Value>) -> LpResult<Value> {
        let mut report = Validation::default();
        report.check(
            "body",
            body,
            &[
                required("fromPhoneNumber", Shape::Text),
                required("toPhoneNumber", Shape::Text),
                prop("userId", Shape::Text),
                required("content", Shape::Text),
                required("type", Shape::Text),
                prop("customFields", Shape::Dictionary),
                prop("fileId", Shape::Text),
            ],
        );
        Self::check_numbers(&mut report, body);
        let kind = text(body, "type").unwrap_or_default();
        if body.contains_key("type") && !WHATSAPP_TYPES.contains(&kind) {
            report.fail(
                "body.type",
                format!(
                    "should be one of the following; {}",
                    WHATSAPP_TYPES
                        .iter()
                        .map(|t| format!("'{t}'"))
                        .collect::<Vec<_>>()
                        .join(",")
                ),
                body.get("type"),
            );
        }
        report.finish()?;
        let content = text(body, "content").unwrap_or_default();
        let file = text(body, "fileId");
        let attachments = if MEDIA_TYPES.contains(&kind) {
            let file_id = file.ok_or_else(|| {
                invalid_field(
                    "body.fileId",
                    format!("a {kind} message needs the fileId of an uploaded file"),
                    None,
                )
            })?;
            let (url, metadata) = self.file(file_id).ok_or_else(|| {
                invalid_field(
                    "body.fileId",
                    format!("File {file_id} not found"),
                    body.get("fileId"),
                )
            })?;
            self.next_attachment += 1;
            vec![(
                format!("att_{:04}", self.next_attachment),
                kind.to_owned(),
                url,
                metadata,
            )]
        } else if kind == "text" {
            if content.trim().is_empty() {
                return Err(invalid_field(
                    "body.content",
                    "a text message needs content",
                    body.get("content"),
                ));
            }
            if file.is_some() {
                return Err(invalid_field(
                    "body.fileId",
                    "a text message takes no fileId",
                    body.get("fileId"),
                ));
            }
            Vec::new()
        } else {
            return Err(invalid_field(
                "body.type",
                format!("sending {kind} messages is not supported by this endpoint"),
                body.get("type"),
            ));
        };
        Ok(self.add_outbound(body, content.to_owned(), attachments))
    }

    /// A file of the files service (seeded) or one UploadMedia stored: its url and the
    /// metadata a message attachment carries for it.
    fn file(&self, file_id: &str) -> Option<(String, Value)> {
        if let Some(upload) = self.uploads.get(file_id) {
            return Some((
                upload.url.clone(),
                json!({
                    "fileName": upload.file_name,
                    "contentType": upload.content_type,
                    "size": upload.size,
                    "mediaId": upload.media_id,
                }),
            ));
        }
        FILES
            .iter()
            .find(|(id, _, _)| *id == file_id)
            .map(|(_, _, url)| ((*url).to_owned(), json!({})))
    }

    /// UploadMedia: `{fromPhoneNumber, fileId?, fileName?, contentType?, content?, tags?}`.
    /// File ID mode (`fileId` of a stored file) or direct mode (`fileName`, `contentType`
    /// and `content`, the file in base64, all required); answers `{url, size, fileName,
    /// contentType, fileId, mediaId, tags}`.
    fn upload_media(&mut self, body: &Map<String, Value>) -> LpResult<Value> {
        let mut report = Validation::default();
        report.check(
            "body",
            body,
            &[
                required("fromPhoneNumber", Shape::Text),
                prop("fileName", Shape::Text),
                prop("contentType", Shape::Text),
                prop("fileId", Shape::Text),
                prop("content", Shape::Text),
                prop("tags", Shape::Dictionary),
            ],
        );
        Self::check_numbers(&mut report, body);
        report.finish()?;
        let tags = body.get("tags").cloned().unwrap_or_else(|| json!({}));
        if let Some(file_id) = text(body, "fileId") {
            let upload = self.uploads.get(file_id).cloned().ok_or_else(|| {
                invalid_field(
                    "body.fileId",
                    format!("File {file_id} not found"),
                    body.get("fileId"),
                )
            })?;
            return Ok(upload_json(&upload, tags));
        }
        let mut missing = Validation::default();
        for key in ["fileName", "contentType", "content"] {
            if text(body, key).is_none_or(|v| v.trim().is_empty()) {
                missing.fail(
                    &format!("body.{key}"),
                    "is required in direct-upload mode (or give fileId)",
                    body.get(key),
                );
            }
        }
        missing.finish()?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text(body, "content").unwrap_or_default())
            .map_err(|_| invalid_field("body.content", "must be the file in base64", None))?;
        if bytes.len() > MAX_UPLOAD_BYTES {
            return Err(invalid_field("body.content", "the file is too large", None));
        }
        self.next_attachment += 1;
        let file_id = format!("file_up_{:04}", self.next_attachment);
        let file_name = text(body, "fileName").unwrap_or_default().to_owned();
        let upload = Upload {
            url: format!(
                "https://files.llamadapro.example/{}/{file_id}/{file_name}",
                seed::TENANT_ID
            ),
            media_id: format!("wamedia_{:04}", self.next_attachment),
            file_id: file_id.clone(),
            file_name,
            content_type: text(body, "contentType").unwrap_or_default().to_owned(),
            size: bytes.len(),
        };
        let answer = upload_json(&upload, tags);
        self.uploads.insert(file_id, upload);
        Ok(answer)
    }

    fn send_template(&mut self, body: &Map<String, Value>) -> LpResult<Value> {
        let mut report = Validation::default();
        report.check(
            "body",
            body,
            &[
                required("fromPhoneNumber", Shape::Text),
                required("toPhoneNumber", Shape::Text),
                prop("userId", Shape::Text),
                required("templateName", Shape::Text),
                required("languageCode", Shape::Text),
                prop("variables", Shape::Array),
                prop("components", Shape::Array),
                prop("customFields", Shape::Dictionary),
            ],
        );
        Self::check_numbers(&mut report, body);
        let mut variables = Vec::new();
        for (i, item) in items(body, "variables") {
            let prefix = format!("body.variables[{i}]");
            if let Some(map) = report.object(&prefix, item) {
                report.check(&prefix, map, &[required("value", Shape::Text)]);
                variables.push(text(map, "value").unwrap_or_default().to_owned());
            }
        }
        report.finish()?;
        if body.contains_key("variables") && body.contains_key("components") {
            return Err(bad_request(
                "You must use either 'variables' or 'components', but not both",
            ));
        }
        let name = text(body, "templateName").unwrap_or_default();
        let language = text(body, "languageCode").unwrap_or_default();
        let (_, _, template) = TEMPLATES
            .iter()
            .find(|(n, l, _)| *n == name && *l == language)
            .ok_or_else(|| {
                invalid_field(
                    "body.templateName",
                    format!("Template {name} ({language}) not found"),
                    body.get("templateName"),
                )
            })?;
        let wanted = template_placeholders(template);
        if !body.contains_key("components") && variables.len() != wanted {
            return Err(invalid_field(
                "body.variables",
                format!(
                    "template {name} takes {wanted} variables, got {}",
                    variables.len()
                ),
                body.get("variables"),
            ));
        }
        let content = variables
            .iter()
            .enumerate()
            .fold((*template).to_owned(), |text, (i, value)| {
                text.replace(&format!("{{{{{}}}}}", i + 1), value)
            });
        Ok(self.add_outbound(body, content, Vec::new()))
    }

    // ----- seed data -------------------------------------------------------------------------

    fn seeded() -> Data {
        let mut data = Data {
            contacts: BTreeMap::new(),
            conversations: BTreeMap::new(),
            messages: BTreeMap::new(),
            next_contact_id: seed::FIRST_CONTACT_ID,
            next_address_id: 5001,
            next_conversation_id: seed::CONVERSATION_VALENTINA_ID,
            next_session_id: 9001,
            next_message: 0,
            next_attachment: 0,
            uploads: BTreeMap::new(),
            clock: 0,
        };
        let start = at(2025, 3, 1, 12, 0);
        type Named = (
            &'static str,
            &'static str,
            &'static [(&'static str, &'static str)],
        );
        let named: [Named; 5] = [
            (
                "Valentina",
                "Muñoz",
                &[
                    ("WHATSAPP", seed::CONTACT_VALENTINA_WHATSAPP),
                    ("EMAIL", seed::CONTACT_VALENTINA_EMAIL),
                    ("PHONE", seed::CONTACT_VALENTINA_PHONE),
                ],
            ),
            (
                "Mateo",
                "González",
                &[("WHATSAPP", seed::CONTACT_MATEO_WHATSAPP)],
            ),
            ("Sofía", "Rodríguez", &[("EMAIL", "sofia@example.com.mx")]),
            ("Benjamín", "Silva", &[]),
            (
                "Isabella",
                "Torres",
                &[("PHONE", seed::CONTACT_ISABELLA_PHONE)],
            ),
        ];
        for i in 0..seed::CONTACT_COUNT {
            let id = seed::FIRST_CONTACT_ID + i as i64;
            let created = start + i as i64 * 5 * 60_000;
            let (first, last, addresses): (String, String, Vec<(&str, String)>) = match named.get(i)
            {
                Some((first, last, addresses)) => (
                    (*first).to_owned(),
                    (*last).to_owned(),
                    addresses
                        .iter()
                        .map(|(k, a)| (*k, (*a).to_owned()))
                        .collect(),
                ),
                None => (
                    "Cliente".to_owned(),
                    format!("{:02}", id - 1000),
                    vec![
                        ("WHATSAPP", format!("+5691000{id:04}")),
                        ("EMAIL", format!("cliente{id}@example.org")),
                    ],
                ),
            };
            let addresses = addresses
                .iter()
                .map(|(kind, address)| data.new_address(kind, address, created))
                .collect();
            data.contacts.insert(
                id,
                Contact {
                    id,
                    created_at: created,
                    updated_at: created,
                    first_name: Some(first),
                    last_name: Some(last),
                    addresses,
                    event_sequence: 1,
                    ..Contact::default()
                },
            );
        }
        data.next_contact_id = seed::FIRST_CONTACT_ID + seed::CONTACT_COUNT as i64;
        if let Some(valentina) = data.contacts.get_mut(&seed::CONTACT_VALENTINA_ID) {
            valentina.national_id = Some("12.345.678-5".into());
            valentina.company_position = Some("Jefa de Compras".into());
            valentina.user_id = Some(seed::USER_CAMILA_ID);
            valentina
                .custom_fields
                .insert("source".into(), "web".into());
            valentina.custom_fields.insert("plan".into(), "pro".into());
            valentina.updated_at = at(2025, 3, 2, 9, 30);
        }
        if let Some(sofia) = data.contacts.get_mut(&seed::CONTACT_SOFIA_ID) {
            sofia
                .custom_fields
                .insert("source".into(), "referral".into());
        }
        if let Some(benjamin) = data.contacts.get_mut(&seed::CONTACT_BENJAMIN_ID) {
            benjamin.email = Some(seed::CONTACT_BENJAMIN_EMAIL.into());
            benjamin.phone = Some(seed::CONTACT_BENJAMIN_PHONE.into());
            benjamin.provider_id = Some("hubspot".into());
            benjamin.provider_name = Some("HubSpot".into());
            benjamin.metadata = json!({"imported": true});
        }

        // (contact, funnel, status, user, archived, created)
        let conversations = [
            (
                seed::CONTACT_VALENTINA_ID,
                seed::FUNNEL_SALES_ID,
                seed::STATUS_NEW_ID,
                Some(seed::USER_CAMILA_ID),
                None,
                at(2025, 3, 3, 10, 0),
            ),
            (
                seed::CONTACT_MATEO_ID,
                seed::FUNNEL_SALES_ID,
                seed::STATUS_WON_ID,
                Some(seed::USER_DIEGO_ID),
                Some(at(2025, 3, 5, 18, 0)),
                at(2025, 3, 4, 9, 0),
            ),
            (
                seed::CONTACT_ISABELLA_ID,
                seed::FUNNEL_SUPPORT_ID,
                seed::STATUS_OPEN_ID,
                None,
                None,
                at(2025, 3, 6, 15, 30),
            ),
        ];
        for (contact, funnel_id, status, user, archived, created) in conversations {
            if let Some(funnel) = funnel(funnel_id) {
                let id = data.add_conversation(funnel, contact, status, user, created);
                if let Some(c) = data.conversations.get_mut(&id) {
                    c.archived_at = archived;
                    c.updated_at = archived.unwrap_or(created);
                }
            }
        }

        // (conversation, inbound?, user, content, status, attachment, minutes after start)
        type Seeded = (
            i64,
            bool,
            Option<i64>,
            &'static str,
            &'static str,
            Option<&'static str>,
            i64,
        );
        let messages: [Seeded; 6] = [
            (
                seed::CONVERSATION_VALENTINA_ID,
                true,
                None,
                "Hola, quiero información del plan Pro",
                "received",
                None,
                1,
            ),
            (
                seed::CONVERSATION_VALENTINA_ID,
                false,
                Some(seed::USER_CAMILA_ID),
                "¡Hola Valentina! El plan Pro incluye 5 agentes y WhatsApp ilimitado.",
                "read",
                None,
                3,
            ),
            (
                seed::CONVERSATION_VALENTINA_ID,
                true,
                None,
                "Les mando la foto de la factura",
                "received",
                Some(seed::FILE_IMAGE_ID),
                5,
            ),
            (
                seed::CONVERSATION_MATEO_ID,
                false,
                Some(seed::USER_DIEGO_ID),
                "Hola Mateo, gracias por escribir a Ventas.",
                "delivered",
                None,
                0,
            ),
            (
                seed::CONVERSATION_MATEO_ID,
                true,
                None,
                "Gracias, ya compré el plan",
                "received",
                None,
                30,
            ),
            (
                seed::CONVERSATION_ISABELLA_ID,
                true,
                None,
                "Necesito ayuda con mi pedido 7781",
                "received",
                None,
                2,
            ),
        ];
        for (conversation_id, inbound, user, content, status, file, minutes) in messages {
            let Some(conversation) = data.conversations.get(&conversation_id).cloned() else {
                continue;
            };
            let Some(contact) = data.contacts.get(&conversation.contact_id).cloned() else {
                continue;
            };
            let Some(funnel) = funnel(conversation.funnel_id) else {
                continue;
            };
            let number = contact
                .messaging_address()
                .map(|a| a.address.clone())
                .unwrap_or_default();
            let business = Party {
                address: funnel.number.to_owned(),
                role: "user",
                display_name: user.and_then(user_name).unwrap_or(funnel.name).to_owned(),
            };
            let customer = Party {
                address: number,
                role: "contact",
                display_name: contact.full_name(),
            };
            let (sender, recipient) = if inbound {
                (customer, business)
            } else {
                (business, customer)
            };
            let attachments = file
                .and_then(|f| FILES.iter().find(|(id, _, _)| *id == f))
                .map(|(_, kind, url)| {
                    data.next_attachment += 1;
                    vec![(
                        format!("att_{:04}", data.next_attachment),
                        (*kind).to_owned(),
                        (*url).to_owned(),
                        json!({}),
                    )]
                })
                .unwrap_or_default();
            let when = conversation.created_at + minutes * 60_000;
            data.next_message += 1;
            let id = message_id(data.next_message);
            data.messages.insert(
                id.clone(),
                Message {
                    id,
                    created_at: when,
                    updated_at: when,
                    conversation_id,
                    session_id: conversation.session.as_ref().map(|s| s.id),
                    messaging_conversation_id: conversation
                        .session
                        .as_ref()
                        .map(|s| s.messaging_conversation_id.clone()),
                    contact_id: contact.id,
                    user_id: user.map(|u| u.to_string()),
                    content: content.to_owned(),
                    status,
                    direction: if inbound { "inbound" } else { "outbound" },
                    sender,
                    recipient,
                    attachments,
                    custom_fields: Map::new(),
                },
            );
        }
        data
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use http::HeaderValue;

    /// The repository's routes/llamadapro.yaml, compiled.
    pub(crate) fn routes() -> VendorRoutes {
        crate::sandbox::tests::repo_routes("llamadapro", |text| text)
    }

    fn state() -> LlamadaProState {
        LlamadaProState::new(Credentials::new("lp-key", ""), &routes()).unwrap()
    }

    fn request(
        headers: &[(String, String)],
        params: &[(&str, &str)],
        query: Option<&str>,
        body: Option<Value>,
    ) -> SandboxRequest {
        let mut map = http::HeaderMap::new();
        for (k, v) in headers {
            map.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        if body.is_some() {
            map.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        SandboxRequest {
            method: if body.is_some() {
                http::Method::POST
            } else {
                http::Method::GET
            },
            headers: map,
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            query: query.map(str::to_owned),
            body: body
                .map(|b| axum::body::Bytes::from(b.to_string()))
                .unwrap_or_default(),
        }
    }

    /// Run one call through the simulator; answers the status and JSON body.
    async fn call(
        state: &Arc<LlamadaProState>,
        endpoint: &'static str,
        request: SandboxRequest,
    ) -> (u16, Value) {
        let response = state.clone().handle(endpoint, request).await;
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    /// The API key header as the routes file names it (the name is provisional).
    fn key(value: &str) -> Vec<(String, String)> {
        match routes().auth {
            AuthScheme::Header(name) => vec![(name.as_str().to_owned(), value.to_owned())],
            other => panic!("llamadapro routes use {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_missing_or_wrong_key_is_a_401_with_the_error_body() {
        let state = Arc::new(state());
        let (status, body) = call(&state, "contacts.list", request(&[], &[], None, None)).await;
        assert_eq!(status, 401);
        assert_eq!(
            body,
            json!({"code": 401, "error": "Unauthorized", "message": "Missing API key", "details": {}})
        );
        let (status, body) = call(
            &state,
            "contacts.list",
            request(&key("nope"), &[], None, None),
        )
        .await;
        assert_eq!(
            (status, body["message"].clone()),
            (401, json!("Invalid API key"))
        );
        // The key in another header does not count.
        let (status, _) = call(
            &state,
            "contacts.list",
            request(
                &[("authorization".to_owned(), "Bearer lp-key".to_owned())],
                &[],
                None,
                None,
            ),
        )
        .await;
        assert_eq!(status, 401);
        let (status, body) = call(
            &state,
            "contacts.list",
            request(&key("lp-key"), &[], None, None),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(body["totalCount"], seed::CONTACT_COUNT);
    }

    #[tokio::test]
    async fn the_auth_header_name_comes_from_the_routes_file() {
        let mut routes = routes();
        routes.auth = AuthScheme::Header(HeaderName::from_static("x-renamed-in-test"));
        let state =
            Arc::new(LlamadaProState::new(Credentials::new("lp-key", ""), &routes).unwrap());
        let (status, _) = call(
            &state,
            "contacts.list",
            request(&key("lp-key"), &[], None, None),
        )
        .await;
        assert_eq!(status, 401);
        let (status, _) = call(
            &state,
            "contacts.list",
            request(
                &[("x-renamed-in-test".to_owned(), "lp-key".to_owned())],
                &[],
                None,
                None,
            ),
        )
        .await;
        assert_eq!(status, 200);
        routes.auth = AuthScheme::Token;
        assert!(LlamadaProState::new(Credentials::new("k", "s"), &routes).is_err());
    }

    #[tokio::test]
    async fn conversation_create_requires_a_funnel_and_a_contact() {
        let state = Arc::new(state());
        let (status, body) = call(
            &state,
            "conversations.create",
            request(&key("lp-key"), &[], None, Some(json!({"contactId": 1001}))),
        )
        .await;
        assert_eq!(status, 400);
        assert_eq!(body["message"], "Validation failed");
        assert_eq!(
            body["details"]["body.funnelId"]["message"],
            "'funnelId' is required"
        );
        let (status, body) = call(
            &state,
            "conversations.create",
            request(&key("lp-key"), &[], None, Some(json!({"funnelId": 7}))),
        )
        .await;
        assert_eq!(status, 400);
        assert_eq!(
            body["message"],
            "Either contactId or contact information must be provided"
        );
        let (status, body) = call(
            &state,
            "conversations.create",
            request(
                &key("lp-key"),
                &[],
                None,
                Some(json!({"funnelId": 99, "contactId": 1001})),
            ),
        )
        .await;
        assert_eq!(status, 400);
        assert!(body["details"]["body.funnelId"].is_object());
        let (status, body) = call(
            &state,
            "conversations.create",
            request(
                &key("lp-key"),
                &[],
                None,
                Some(json!({"funnelId": 7, "contact": {"firstName": "Ana", "phones": ["0912"]}})),
            ),
        )
        .await;
        assert_eq!(status, 400);
        assert!(body["details"]["body.contact.phones[0]"].is_object());
        let (status, body) = call(
            &state,
            "conversations.create",
            request(
                &key("lp-key"),
                &[],
                None,
                Some(json!({"funnelId": 7, "contactId": 1001})),
            ),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(body["channelSessions"][0]["channelType"], "WHATSAPP");
        assert_eq!(body["channelSessions"][0]["contactAddressId"], 5001);
        assert_eq!(body["contacts"][0]["id"], 1001);
        assert_eq!(body["tenantId"], seed::TENANT_ID);
    }

    #[tokio::test]
    async fn whatsapp_sends_enforce_e164_known_numbers_and_templates() {
        let state = Arc::new(state());
        let send = |body: Value| request(&key("lp-key"), &[], None, Some(body));
        let (status, body) = call(
            &state,
            "messages.send",
            send(json!({"fromPhoneNumber": seed::FUNNEL_SALES_NUMBER, "toPhoneNumber": "0912345671", "content": "hi", "type": "text"})),
        )
        .await;
        assert_eq!(status, 400);
        assert!(body["details"]["body.toPhoneNumber"].is_object());
        let (status, body) = call(
            &state,
            "messages.send",
            send(json!({"fromPhoneNumber": "+15550000000", "toPhoneNumber": "+56912345671", "content": "hi", "type": "text"})),
        )
        .await;
        assert_eq!(status, 400);
        assert!(body["details"]["body.fromPhoneNumber"].is_object());
        let (status, body) = call(
            &state,
            "messages.send",
            send(json!({"fromPhoneNumber": seed::FUNNEL_SALES_NUMBER, "toPhoneNumber": "+56912345671", "content": "", "type": "image"})),
        )
        .await;
        assert_eq!(status, 400);
        assert!(body["details"]["body.fileId"].is_object());
        let (status, body) = call(
            &state,
            "messages.send",
            send(json!({"fromPhoneNumber": seed::FUNNEL_SALES_NUMBER, "toPhoneNumber": "+56912345671", "content": "hola", "type": "text", "colour": "red"})),
        )
        .await;
        assert_eq!(status, 400);
        assert!(body["details"]["body.colour"].is_object());
        let (status, body) = call(
            &state,
            "messages.send",
            send(json!({"fromPhoneNumber": seed::FUNNEL_SALES_NUMBER, "toPhoneNumber": "+56912345671", "content": "hola", "type": "text"})),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(
            body["funnelConversationId"],
            seed::CONVERSATION_VALENTINA_ID
        );
        assert_eq!(body["direction"], "outbound");
        assert_eq!(body["status"], "pending");
        let (status, body) = call(
            &state,
            "messages.send_template",
            send(json!({"fromPhoneNumber": seed::FUNNEL_SALES_NUMBER, "toPhoneNumber": "+56912345671", "templateName": "bienvenida", "languageCode": "es", "variables": [{"value": "Vale"}]})),
        )
        .await;
        assert_eq!(status, 400);
        assert!(body["details"]["body.variables"].is_object());
        let (status, body) = call(
            &state,
            "messages.send_template",
            send(json!({"fromPhoneNumber": seed::FUNNEL_SALES_NUMBER, "toPhoneNumber": "+56912345671", "templateName": "bienvenida", "languageCode": "es", "variables": [{"value": "Vale"}, {"value": "Ventas"}]})),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(body["content"], "Hola Vale, gracias por escribir a Ventas.");
    }

    #[tokio::test]
    async fn contacts_page_by_token_and_refuse_forged_tokens() {
        let state = Arc::new(state());
        let (status, page1) = call(
            &state,
            "contacts.list",
            request(&key("lp-key"), &[], Some("pageSize=10"), None),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(page1["items"].as_array().unwrap().len(), 10);
        assert_eq!(page1["totalCount"], 30);
        let token = page1["nextPageToken"].as_str().unwrap();
        let (_, page3) = call(
            &state,
            "contacts.list",
            request(&key("lp-key"), &[], Some("pageSize=10&page=3"), None),
        )
        .await;
        assert!(page3.get("nextPageToken").is_none());
        let (_, page2) = call(
            &state,
            "contacts.list",
            request(
                &key("lp-key"),
                &[],
                Some(&format!("pageSize=10&pageToken={token}")),
                None,
            ),
        )
        .await;
        assert_eq!(page2["items"][0]["id"], 1011);
        let search_token = encode_token("search", 10);
        let (status, body) = call(
            &state,
            "contacts.list",
            request(
                &key("lp-key"),
                &[],
                Some(&format!("pageToken={search_token}")),
                None,
            ),
        )
        .await;
        assert_eq!(status, 400);
        assert!(body["details"]["query.pageToken"].is_object());
        let (status, _) = call(
            &state,
            "contacts.list",
            request(&key("lp-key"), &[], Some("pageSize=ten"), None),
        )
        .await;
        assert_eq!(status, 400);
    }

    #[tokio::test]
    async fn search_matches_addresses_and_text() {
        let state = Arc::new(state());
        let search = |body: Value| request(&key("lp-key"), &[], None, Some(body));
        let (status, body) = call(
            &state,
            "contacts.search",
            search(json!({"filters": [
                {"field": "addresses.address", "operator": "eq", "value": seed::CONTACT_VALENTINA_WHATSAPP},
                {"field": "addresses.channelType", "operator": "eq", "value": "WHATSAPP"}
            ]})),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(body["items"].as_array().unwrap().len(), 1);
        assert_eq!(body["items"][0]["id"], "1001");
        assert_eq!(body["items"][0]["modelType"], "Contact");
        assert!(body.get("totalCount").is_none());
        let (_, body) = call(
            &state,
            "contacts.search",
            search(json!({"search": "muñoz valentina", "includeTotalCount": true})),
        )
        .await;
        assert_eq!(body["totalCount"], 1);
        let (status, _) = call(
            &state,
            "contacts.search",
            search(json!({"filters": [{"field": "addresses.address", "operator": "like", "value": "x"}]})),
        )
        .await;
        assert_eq!(status, 400);
    }

    #[tokio::test]
    async fn contact_update_is_partial_and_replaces_addresses() {
        let state = Arc::new(state());
        let update = |body: Value| request(&key("lp-key"), &[("id", "1001")], None, Some(body));
        let (status, body) = call(
            &state,
            "contacts.update",
            update(
                json!({"lastName": "Muñoz Soto", "customFields": {"plan": null, "tier": "gold"}}),
            ),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(body["firstName"], "Valentina");
        assert_eq!(body["lastName"], "Muñoz Soto");
        assert_eq!(
            body["customFields"],
            json!({"source": "web", "tier": "gold"})
        );
        assert_eq!(body["addresses"].as_array().unwrap().len(), 3);
        let (status, body) = call(
            &state,
            "contacts.update",
            update(json!({"addresses": [{"channelType": "WHATSAPP", "address": seed::CONTACT_VALENTINA_WHATSAPP}]})),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(body["addresses"].as_array().unwrap().len(), 1);
        assert_eq!(
            body["addresses"][0]["id"], 5001,
            "a kept address keeps its id"
        );
        let (status, _) = call(
            &state,
            "contacts.update",
            update(json!({"addresses": [{"channelType": "FAX", "address": "+56911111111"}]})),
        )
        .await;
        assert_eq!(status, 400);
        let (status, body) = call(
            &state,
            "contacts.get",
            request(&key("lp-key"), &[("id", "9999")], None, None),
        )
        .await;
        assert_eq!((status, body["code"].clone()), (404, json!(404)));
    }

    #[test]
    fn times_format_like_javascript() {
        assert_eq!(
            js_iso_string(at(2025, 3, 3, 10, 0)),
            "2025-03-03T10:00:00.000Z"
        );
        assert_eq!(
            js_iso_string(at(2024, 2, 29, 23, 59) + 1_250),
            "2024-02-29T23:59:01.250Z"
        );
        assert_eq!(
            parse_time("2025-03-03T10:00:00.000Z"),
            Some(at(2025, 3, 3, 10, 0))
        );
        assert_eq!(
            parse_time("2019-08-24T14:15:22Z"),
            Some(at(2019, 8, 24, 14, 15) + 22_000)
        );
        assert_eq!(
            parse_time("2025-03-03T07:00:00-03:00"),
            Some(at(2025, 3, 3, 10, 0))
        );
        for bad in ["", "2025-03-03", "2025-13-01T00:00:00Z", "yesterday"] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
        assert!(is_e164("+56912345671") && !is_e164("56912345671") && !is_e164("+0123456"));
    }

    #[test]
    fn seed_is_deterministic_and_consistent() {
        let state = state();
        assert_eq!(state.contact_count(), seed::CONTACT_COUNT);
        assert_eq!(state.conversation_count(), seed::CONVERSATION_COUNT);
        assert_eq!(state.message_count(), seed::MESSAGE_COUNT);
        let valentina = state.contact(seed::CONTACT_VALENTINA_ID).unwrap();
        assert_eq!(
            valentina["addresses"][0]["address"],
            seed::CONTACT_VALENTINA_WHATSAPP
        );
        assert_eq!(valentina["addresses"][0]["id"], 5001);
        let conversation = state.conversation(seed::CONVERSATION_VALENTINA_ID).unwrap();
        assert_eq!(conversation["channelSessions"][0]["contactAddressId"], 5001);
        let messages = state.messages(seed::CONVERSATION_VALENTINA_ID);
        assert_eq!(messages.len(), 3);
        assert_eq!(messages[0]["id"], seed::MESSAGE_VALENTINA_FIRST_ID);
        assert_eq!(messages[1]["id"], seed::MESSAGE_CAMILA_REPLY_ID);
        let image = state.message(seed::MESSAGE_VALENTINA_IMAGE_ID).unwrap();
        assert_eq!(image["attachments"][0]["type"], "image");
        assert_eq!(image["sender"]["address"], seed::CONTACT_VALENTINA_WHATSAPP);
        let template = state.message(seed::MESSAGE_MATEO_TEMPLATE_ID).unwrap();
        assert_eq!(template["direction"], "outbound");
        assert!(state.conversation(seed::CONVERSATION_MATEO_ID).unwrap()["archivedAt"].is_string());
        let isabella = state.conversation(seed::CONVERSATION_ISABELLA_ID).unwrap();
        assert_eq!(
            isabella["contacts"][0]["addresses"][0]["address"],
            seed::CONTACT_ISABELLA_PHONE
        );
        let benjamin = state.contact(seed::CONTACT_BENJAMIN_ID).unwrap();
        assert_eq!(benjamin["addresses"], json!([]));
        assert_eq!(benjamin["email"], seed::CONTACT_BENJAMIN_EMAIL);
        let again = LlamadaProState::new(Credentials::new("k", ""), &routes()).unwrap();
        assert_eq!(
            state.conversation(seed::CONVERSATION_MATEO_ID),
            again.conversation(seed::CONVERSATION_MATEO_ID)
        );
    }
}
