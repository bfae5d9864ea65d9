//! The CAAC sandbox: an in-memory CAAC (Crescendo Lab) organization that enforces the contract
//! of the vendor's OpenAPI 2.0.1 document (`docs/vendors/seeds/000_…`, summarised in `docs/vendors/README.md`),
//! on whatever paths `routes/caac.yaml` gives (all of them provisional).
//!
//! # Contract, as enforced
//!
//! - **Auth**: the API key in the header the routes file names (`auth: {scheme: header,
//!   header: apikey}` — read at start, never hard-coded, so a routes edit moves gateway and
//!   sandbox together). Missing or wrong → 401.
//! - **Errors**: CAAC does not publish its error body. The sandbox answers
//!   `{"error": {"code": <word>, "message": <text>}}` with codes `invalid_parameter` 400,
//!   `unauthorized` 401, `forbidden` 403, `not_found` 404, `method_not_allowed` 405,
//!   `payload_too_large` 413, `rate_limit_exceeded` 429 (+ `Retry-After`), `internal_error` 5xx.
//! - **Bodies** are JSON (`Content-Type: application/json`, else 400); ids are integers (a
//!   path id that is not a positive integer → 400); unknown channel or member → 404.
//! - **Successes** are 200 with the documented JSON, except Close Conversation, whose answer
//!   the document does not show: 204 without a body.
//!
//! # Endpoints (routes-file names)
//!
//! | endpoint | vendor call | behaviour |
//! |---|---|---|
//! | `contacts.get` | Get Member By ID | every documented property of that answer |
//! | `contacts.lookup` | Get Member By Channel ID And External ID | that answer's shape (`channel_id`, `display_email`, `display_mobile`, no timestamps); 404 when no member of the channel has the id |
//! | `contacts.create` | Create or update a channel member | `{channel_member_id}` required; LINE channels only (400 otherwise) and a LINE UID (`U` + 32 hex, else 400); an existing member is updated (same id); answers `{member_id}` |
//! | `conversations.assignment` | Get Member Assignment Relationship | `{assign_type, assignment_relationship: {team_id, user_id}}` (`null` ids when unset) |
//! | `conversations.close` | Close Conversation | `{user_id}` required, must be a user of the org (400); processing state → `resolved`; 204 |
//! | `conversations.assign` | Manual assignment | `{assign_type?, assignment_relationship?, channel_id, member_id, org_id}`: the three ids required, `org_id` must be the key's org (400); `assign_type` absent/null/`manual` assigns (a relationship with a known `user_id` and/or `team_id` required, 400), `unassigned` clears, anything else 400; answers the new relationship |
//! | `messages.send` | Create Message from User | `type` and `user_id` required (400), the user must exist (400); `text` (non-empty) required for `type: text`; other types are not simulated (400); answers the stored message in the documented shape |
//!
//! A member's `type` is documented only as `"type": "string"`, so the sandbox treats it as
//! opaque per-member data, never derived from the member's channel: the seed gives each member
//! one (below), a member created through the API has none (the field is left out), and tests
//! set any shape with [`CaacState::set_member_type`] — a channel word (`line`), a word no
//! table lists (`user`, `member`, `customer`), an empty string, or no field at all. What the
//! word means is the gateway's provisional `settings.member_types` in `routes/caac.yaml`; the
//! sandbox never reads it. Processing states used: `new`, `processing`, `pending`, `resolved`.
//!
//! # Seed data (deterministic; [`seed`] has the constants)
//!
//! - Organization 8801. Users (agents): **501** Mei Lin (acts for the demo connection), 502
//!   Kenji Sato, 503 Ploy Chaiyaporn. Teams: 71 Taipei Support, 72 Bangkok Support.
//! - Channels: **1201** "Acme LINE Official Account" (`line`), 1202 "Acme Messenger"
//!   (`facebook`).
//! - Members of channel 1201 (LINE UIDs in [`seed`]; `type` `line`, except Li Ming, who has
//!   no `type`):
//!   1. 30001 Wei-Ting Chen (TW, `0912-345-678`, e-mail), `processing`, manual → Mei + Taipei;
//!      messages: member, Mei, member.
//!   2. 30002 Somchai Prasert (TH, `081-234-5678`), `new`, unassigned; one member message.
//!   3. 30003 Yuki Tanaka (JP, `+81 90-1234-5678`, e-mail), `resolved`, manual → Kenji +
//!      Taipei; messages: member, Kenji.
//!   4. 30004 Nattaya Srisuk (TH, no phone), `pending`, auto → team Bangkok only; one member
//!      message.
//!   5. 30005 Li Ming (TW, nothing but a name, starred), `new`, unassigned; no messages.
//! - Member of channel 1202: 30006 Alex Wong (Messenger PSID, `type` `facebook`),
//!   `processing`, manual → Ploy.
//! - Message ids start at 700001; new members continue at 30007, new messages after the seed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use axum::body::Body;
use axum::response::Response;
use futures::future::BoxFuture;
use http::{HeaderName, StatusCode};
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;

use super::{
    json_bytes_response, json_response, lock, unix_now, Credentials, Sandbox, SandboxRequest,
    VendorSimulator, VendorState,
};
use crate::api::operation::Vendor;

mod agent;
use crate::snapshot::routes::{AuthScheme, VendorRoutes};
pub use agent::AgentAnswer;

/// Constants for the seed data, for tests and the demo.
pub mod seed {
    pub const ORG_ID: i64 = 8801;

    /// Mei Lin: the agent the demo connection sends and closes as (`defaults.user_id`).
    pub const USER_MEI_ID: i64 = 501;
    pub const USER_KENJI_ID: i64 = 502;
    pub const USER_PLOY_ID: i64 = 503;
    pub const TEAM_TAIPEI_ID: i64 = 71;
    pub const TEAM_BANGKOK_ID: i64 = 72;

    /// The LINE official account (`defaults.channel_id`).
    pub const CHANNEL_LINE_ID: i64 = 1201;
    /// A Facebook Messenger channel: member creation is refused there.
    pub const CHANNEL_MESSENGER_ID: i64 = 1202;

    /// Wei-Ting Chen: `processing`, assigned to Mei + Taipei Support, 3 messages.
    pub const MEMBER_WEITING_ID: i64 = 30001;
    pub const MEMBER_WEITING_UID: &str = "U4af4980629a1b2c3d4e5f60718293a4b";
    /// Somchai Prasert: `new`, unassigned, 1 message.
    pub const MEMBER_SOMCHAI_ID: i64 = 30002;
    pub const MEMBER_SOMCHAI_UID: &str = "U1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f";
    /// Yuki Tanaka: `resolved`, assigned to Kenji + Taipei Support, 2 messages.
    pub const MEMBER_YUKI_ID: i64 = 30003;
    pub const MEMBER_YUKI_UID: &str = "U9f8e7d6c5b4a39281706f5e4d3c2b1a0";
    /// Nattaya Srisuk: `pending`, auto-assigned to team Bangkok Support only, 1 message.
    pub const MEMBER_NATTAYA_ID: i64 = 30004;
    pub const MEMBER_NATTAYA_UID: &str = "U0a1b2c3d4e5f60718293a4b5c6d7e8f9";
    /// Li Ming: `new`, unassigned, no messages, nothing but a name.
    pub const MEMBER_LIMING_ID: i64 = 30005;
    pub const MEMBER_LIMING_UID: &str = "U7e6d5c4b3a29180f7e6d5c4b3a291807";
    /// Alex Wong, in the Messenger channel: `processing`, assigned to Ploy.
    pub const MEMBER_ALEX_ID: i64 = 30006;
    pub const MEMBER_ALEX_PSID: &str = "6143823401928374";

    /// A LINE UID no seeded member has (for creating one).
    pub const UNUSED_LINE_UID: &str = "U5d41402abc4b2a76b9719d911017c592";

    pub const MEMBER_COUNT: usize = 6;
    pub const FIRST_MESSAGE_ID: i64 = 700_001;
    pub const MESSAGE_COUNT: usize = 8;
}

/// 2025-03-10T09:00:00Z: seed times are minutes after it.
const SEED_EPOCH: i64 = 1_741_597_200;

const fn seed_time(minutes: i64) -> i64 {
    SEED_EPOCH + minutes * 60
}

fn format_time(secs: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or_default());
    humantime::format_rfc3339_seconds(at).to_string()
}

fn opt_time(secs: Option<i64>) -> Value {
    secs.map(|s| Value::String(format_time(s)))
        .unwrap_or(Value::Null)
}

struct Channel {
    id: i64,
    /// The channel's own type (List Channels' `type`): member creation is LINE-only. A
    /// member's `type` is not read from it.
    kind: &'static str,
    external_channel_id: &'static str,
}

const CHANNELS: [Channel; 2] = [
    Channel {
        id: seed::CHANNEL_LINE_ID,
        kind: "line",
        external_channel_id: "1656123456",
    },
    Channel {
        id: seed::CHANNEL_MESSENGER_ID,
        kind: "facebook",
        external_channel_id: "104729384756102",
    },
];

const USERS: [(i64, &str); 3] = [
    (seed::USER_MEI_ID, "Mei Lin"),
    (seed::USER_KENJI_ID, "Kenji Sato"),
    (seed::USER_PLOY_ID, "Ploy Chaiyaporn"),
];

const TEAMS: [(i64, &str); 2] = [
    (seed::TEAM_TAIPEI_ID, "Taipei Support"),
    (seed::TEAM_BANGKOK_ID, "Bangkok Support"),
];

fn channel(id: i64) -> Option<&'static Channel> {
    CHANNELS.iter().find(|c| c.id == id)
}

fn user_exists(id: i64) -> bool {
    USERS.iter().any(|(u, _)| *u == id)
}

fn team_exists(id: i64) -> bool {
    TEAMS.iter().any(|(t, _)| *t == id)
}

/// A LINE user id: `U` and 32 lower-case hex digits.
fn is_line_uid(value: &str) -> bool {
    value.len() == 33
        && value.starts_with('U')
        && value[1..]
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

// ----- errors --------------------------------------------------------------------------------

/// A CAAC error answer (the sandbox's chosen shape; CAAC does not publish one).
#[derive(Debug, Clone, PartialEq, Eq)]
struct CaacError {
    status: StatusCode,
    message: String,
}

type CaacResult<T> = Result<T, CaacError>;

fn fail(status: StatusCode, message: impl Into<String>) -> CaacError {
    CaacError {
        status,
        message: message.into(),
    }
}

fn bad_request(message: impl Into<String>) -> CaacError {
    fail(StatusCode::BAD_REQUEST, message)
}

fn not_found(message: impl Into<String>) -> CaacError {
    fail(StatusCode::NOT_FOUND, message)
}

fn error_code(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "invalid_parameter",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        413 => "payload_too_large",
        429 => "rate_limit_exceeded",
        402..=499 => "invalid_request",
        _ => "internal_error",
    }
}

fn error_response(status: StatusCode, message: &str) -> Response {
    json_response(
        status,
        &json!({ "error": { "code": error_code(status), "message": message } }),
    )
}

/// What a handled call answers.
enum Answer {
    Json(Value),
    NoContent,
}

impl Answer {
    fn into_response(self) -> Response {
        match self {
            Answer::Json(body) => json_response(StatusCode::OK, &body),
            Answer::NoContent => {
                let mut response = Response::new(Body::empty());
                *response.status_mut() = StatusCode::NO_CONTENT;
                response
            }
        }
    }
}

// ----- request parsing -----------------------------------------------------------------------

/// A positive integer path parameter.
fn path_id(request: &SandboxRequest, name: &str) -> CaacResult<i64> {
    request
        .param(name)
        .and_then(|raw| raw.parse::<i64>().ok())
        .filter(|id| *id > 0)
        .ok_or_else(|| bad_request(format!("invalid {name}")))
}

/// A JSON object body (`Content-Type: application/json` required).
fn json_body(request: &SandboxRequest) -> CaacResult<Map<String, Value>> {
    let is_json = request
        .content_type()
        .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("application/json"));
    if !is_json {
        return Err(bad_request("request body must be application/json"));
    }
    match serde_json::from_slice::<Value>(&request.body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(bad_request("request body is not a JSON object")),
    }
}

/// An integer field: absent or null → `None`, another type → 400.
fn int(body: &Map<String, Value>, key: &str) -> CaacResult<Option<i64>> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| bad_request(format!("{key} must be an integer"))),
        Some(_) => Err(bad_request(format!("{key} must be an integer"))),
    }
}

fn required_int(body: &Map<String, Value>, key: &str) -> CaacResult<i64> {
    int(body, key)?
        .filter(|n| *n > 0)
        .ok_or_else(|| bad_request(format!("{key} is required")))
}

/// A string field: absent or null → `None`, another type → 400.
fn string<'b>(body: &'b Map<String, Value>, key: &str) -> CaacResult<Option<&'b str>> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(bad_request(format!("{key} must be a string"))),
    }
}

// ----- state ---------------------------------------------------------------------------------

#[derive(Debug, Clone, Default)]
struct Member {
    id: i64,
    channel_id: i64,
    external_member_id: String,
    display_name: String,
    original_name: String,
    email: String,
    original_email: String,
    mobile: String,
    original_mobile: String,
    avatar: String,
    birthday: String,
    gender: String,
    city: String,
    country: String,
    company: String,
    member_level: String,
    engagement_level: String,
    note: String,
    star_mark: bool,
    /// The member's `type` as the sandbox answers it: opaque data (the vendor's document says
    /// only `"type": "string"`), never derived from the channel. `None` leaves the field out.
    member_type: Option<String>,
    /// The LINE follow status.
    status: &'static str,
    processing_state: &'static str,
    assign_type: &'static str,
    team_id: Option<i64>,
    user_id: Option<i64>,
    created_at: i64,
    updated_at: i64,
    last_message_at: Option<i64>,
    last_member_message_at: Option<i64>,
}

#[derive(Debug, Clone)]
struct StoredMessage {
    id: i64,
    channel_id: i64,
    member_id: i64,
    /// `member` or `user`.
    sender_type: &'static str,
    text: String,
    external_id: String,
    reply_to: Option<i64>,
    read: bool,
    created_at: i64,
}

struct Data {
    members: BTreeMap<i64, Member>,
    messages: BTreeMap<i64, StoredMessage>,
    next_member_id: i64,
    next_message_id: i64,
    /// Last time handed out, so new objects never go back in time.
    clock: i64,
}

/// The CAAC sandbox: the auth header (from the routes file), the key it accepts and its
/// in-memory organization. Tests read state through the accessors.
pub struct CaacState {
    header: HeaderName,
    credentials: Credentials,
    data: Mutex<Data>,
}

impl std::fmt::Debug for CaacState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaacState")
            .field("header", &self.header)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

/// Start the CAAC sandbox on `listener`: the auth header name comes from `routes`.
pub(super) fn start(
    listener: TcpListener,
    routes: &VendorRoutes,
    credentials: Credentials,
) -> std::io::Result<Sandbox> {
    let header = match &routes.auth {
        AuthScheme::Header(name) => name.clone(),
        other => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("caac sandbox routes: auth must be `scheme: header`, not {other:?}"),
            ))
        }
    };
    let state = Arc::new(CaacState::new(header, credentials));
    Sandbox::start(
        listener,
        routes,
        Vendor::Caac,
        state.clone(),
        VendorState::Caac(state),
    )
}

impl CaacState {
    /// A seeded organization accepting `credentials.api_key` in the header `header`.
    pub fn new(header: HeaderName, credentials: Credentials) -> Self {
        CaacState {
            header,
            credentials,
            data: Mutex::new(Data::seeded()),
        }
    }

    /// Throw away every change and go back to the seed data.
    pub fn reset(&self) {
        *lock(&self.data) = Data::seeded();
    }

    /// A member as Get Member By ID answers it.
    pub fn member(&self, channel_id: i64, member_id: i64) -> Option<Value> {
        let data = lock(&self.data);
        data.member(channel_id, member_id).ok().map(member_json)
    }

    /// A member by its external id (LINE UID), as Get Member By ID answers it.
    pub fn member_by_external_id(&self, channel_id: i64, external_id: &str) -> Option<Value> {
        let data = lock(&self.data);
        data.member_by_external_id(channel_id, external_id)
            .map(member_json)
    }

    pub fn member_count(&self) -> usize {
        lock(&self.data).members.len()
    }

    /// A member's processing state (`new`, `processing`, `pending`, `resolved`).
    pub fn processing_state(&self, channel_id: i64, member_id: i64) -> Option<String> {
        let data = lock(&self.data);
        data.member(channel_id, member_id)
            .ok()
            .map(|m| m.processing_state.to_owned())
    }

    /// Set the `type` a member is answered with, in Get Member By ID and Get Member By Channel
    /// ID And External ID: any string (`Some("")` is the empty string), or `None` to leave the
    /// field out. The vendor's document says only `"type": "string"`, so tests use this to
    /// serve each plausible shape. False when the channel has no such member.
    pub fn set_member_type(
        &self,
        channel_id: i64,
        member_id: i64,
        member_type: Option<&str>,
    ) -> bool {
        let mut data = lock(&self.data);
        match data.member_mut(channel_id, member_id) {
            Ok(member) => {
                member.member_type = member_type.map(str::to_owned);
                true
            }
            Err(_) => false,
        }
    }

    /// A member's assignment relationship, as Get Member Assignment Relationship answers it.
    pub fn assignment(&self, channel_id: i64, member_id: i64) -> Option<Value> {
        let data = lock(&self.data);
        data.member(channel_id, member_id).ok().map(assignment_json)
    }

    /// Every message of a member, oldest first, in the Create Message from User answer shape.
    pub fn messages(&self, channel_id: i64, member_id: i64) -> Vec<Value> {
        let data = lock(&self.data);
        data.messages
            .values()
            .filter(|m| m.channel_id == channel_id && m.member_id == member_id)
            .filter_map(|m| data.message_json(m))
            .collect()
    }

    fn authenticate(&self, request: &SandboxRequest) -> CaacResult<()> {
        match request.headers.get(&self.header) {
            None => Err(fail(
                StatusCode::UNAUTHORIZED,
                format!("missing {} header", self.header),
            )),
            Some(key) if key.as_bytes() == self.credentials.api_key.as_bytes() => Ok(()),
            Some(_) => Err(fail(StatusCode::UNAUTHORIZED, "invalid API key")),
        }
    }

    fn dispatch(&self, endpoint: &str, request: &SandboxRequest) -> CaacResult<Answer> {
        let mut data = lock(&self.data);
        match endpoint {
            "contacts.get" => {
                let member = data.member(
                    path_id(request, "channel_id")?,
                    path_id(request, "member_id")?,
                )?;
                Ok(Answer::Json(member_json(member)))
            }
            "contacts.lookup" => {
                let channel_id = path_id(request, "channel_id")?;
                data.channel(channel_id)?;
                let external = request.param("external_member_id").unwrap_or_default();
                data.member_by_external_id(channel_id, external)
                    .map(|m| Answer::Json(lookup_json(m)))
                    .ok_or_else(|| not_found("member not found"))
            }
            "contacts.create" => data.create_member(request).map(Answer::Json),
            "conversations.assignment" => {
                let member = data.member(
                    path_id(request, "channel_id")?,
                    path_id(request, "member_id")?,
                )?;
                Ok(Answer::Json(assignment_json(member)))
            }
            "conversations.close" => data.close(request).map(|()| Answer::NoContent),
            "conversations.assign" => data.assign(request).map(Answer::Json),
            "messages.send" => data.send_message(request).map(Answer::Json),
            other => Err(not_found(format!("the sandbox does not simulate {other}"))),
        }
    }
}

impl VendorSimulator for CaacState {
    fn handle(
        self: Arc<Self>,
        endpoint: &'static str,
        request: SandboxRequest,
    ) -> BoxFuture<'static, Response> {
        Box::pin(async move {
            let answer = self
                .authenticate(&request)
                .and_then(|()| self.dispatch(endpoint, &request));
            match answer {
                Ok(answer) => answer.into_response(),
                Err(error) => error_response(error.status, &error.message),
            }
        })
    }

    fn error(&self, status: StatusCode, message: &str) -> Response {
        error_response(status, message)
    }

    /// A member object cut short.
    fn malformed(&self) -> Response {
        json_bytes_response(StatusCode::OK, r#"{"id":30001,"display_name":"Wei"#)
    }
}

// ----- JSON shapes -----------------------------------------------------------------------------

/// Get Member By ID: every documented property.
fn member_json(m: &Member) -> Value {
    let external_channel_id = channel(m.channel_id)
        .map(|c| c.external_channel_id)
        .unwrap_or_default();
    let body = json!({
        "account_manager": "",
        "assign_type": m.assign_type,
        "avatar": m.avatar,
        "birthday": m.birthday,
        "city": m.city,
        "company": m.company,
        "connect_id": "",
        "country": m.country,
        "created_at": format_time(m.created_at),
        "custom_id": "",
        "display_name": m.display_name,
        "email": m.email,
        "engagement_level": m.engagement_level,
        "external_channel_id": external_channel_id,
        "external_member_id": m.external_member_id,
        "gender": m.gender,
        "id": m.id,
        "last_member_message_send": opt_time(m.last_member_message_at),
        "last_message_at": opt_time(m.last_message_at),
        "location": "",
        "member_level": m.member_level,
        "mobile": m.mobile,
        "name": m.display_name,
        "note": m.note,
        "original_email": m.original_email,
        "original_mobile": m.original_mobile,
        "original_name": m.original_name,
        "processing_state": m.processing_state,
        "star_mark": m.star_mark,
        "status": m.status,
        "updated_at": format_time(m.updated_at),
    });
    with_member_type(body, m)
}

/// Get Member By Channel ID And External ID: its documented properties (no timestamps).
fn lookup_json(m: &Member) -> Value {
    let body = json!({
        "account_manager": "",
        "assign_type": m.assign_type,
        "avatar": m.avatar,
        "birthday": m.birthday,
        "channel_id": m.channel_id,
        "city": m.city,
        "company": m.company,
        "connect_id": "",
        "country": m.country,
        "customer_id": "",
        "display_email": m.email,
        "display_mobile": m.mobile,
        "display_name": m.display_name,
        "engagement_level": m.engagement_level,
        "external_member_id": m.external_member_id,
        "gender": m.gender,
        "id": m.id,
        "location": "",
        "member_level": m.member_level,
        "name": m.display_name,
        "original_email": m.original_email,
        "original_mobile": m.original_mobile,
        "original_name": m.original_name,
        "processing_state": m.processing_state,
        "star_mark": m.star_mark,
        "status": m.status,
    });
    with_member_type(body, m)
}

/// A member answer with the member's own `type` (see [`Member::member_type`]): the string as
/// stored, or no field.
fn with_member_type(mut body: Value, m: &Member) -> Value {
    if let (Some(kind), Some(fields)) = (&m.member_type, body.as_object_mut()) {
        fields.insert("type".to_owned(), Value::from(kind.as_str()));
    }
    body
}

fn assignment_json(m: &Member) -> Value {
    json!({
        "assign_type": m.assign_type,
        "assignment_relationship": { "team_id": m.team_id, "user_id": m.user_id },
    })
}

// ----- behaviour -------------------------------------------------------------------------------

impl Data {
    fn tick(&mut self) -> i64 {
        self.clock = unix_now(Duration::from_secs(1)).max(self.clock);
        self.clock
    }

    fn channel(&self, id: i64) -> CaacResult<&'static Channel> {
        channel(id).ok_or_else(|| not_found("channel not found"))
    }

    fn member(&self, channel_id: i64, member_id: i64) -> CaacResult<&Member> {
        self.channel(channel_id)?;
        self.members
            .get(&member_id)
            .filter(|m| m.channel_id == channel_id)
            .ok_or_else(|| not_found("member not found"))
    }

    fn member_mut(&mut self, channel_id: i64, member_id: i64) -> CaacResult<&mut Member> {
        self.channel(channel_id)?;
        self.members
            .get_mut(&member_id)
            .filter(|m| m.channel_id == channel_id)
            .ok_or_else(|| not_found("member not found"))
    }

    fn member_by_external_id(&self, channel_id: i64, external_id: &str) -> Option<&Member> {
        self.members
            .values()
            .find(|m| m.channel_id == channel_id && m.external_member_id == external_id)
    }

    /// Create or update a channel member: LINE channels only, keyed by the LINE UID.
    fn create_member(&mut self, request: &SandboxRequest) -> CaacResult<Value> {
        let channel_id = path_id(request, "channel_id")?;
        let channel = self.channel(channel_id)?;
        if channel.kind != "line" {
            return Err(bad_request("only LINE channels support creating members"));
        }
        let body = json_body(request)?;
        let uid = string(&body, "channel_member_id")?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| bad_request("channel_member_id is required"))?;
        if !is_line_uid(uid) {
            return Err(bad_request("channel_member_id is not a LINE user ID"));
        }
        let now = self.tick();
        if let Some(existing) = self.member_by_external_id(channel_id, uid).map(|m| m.id) {
            if let Some(member) = self.members.get_mut(&existing) {
                member.updated_at = now;
            }
            return Ok(json!({ "member_id": existing }));
        }
        let id = self.next_member_id;
        self.next_member_id += 1;
        self.members.insert(
            id,
            Member {
                id,
                channel_id,
                external_member_id: uid.to_owned(),
                // CAAC's answer for a member made through the API is not published: no `type`.
                member_type: None,
                status: "follow",
                processing_state: "new",
                assign_type: "unassigned",
                created_at: now,
                updated_at: now,
                ..Member::default()
            },
        );
        Ok(json!({ "member_id": id }))
    }

    fn close(&mut self, request: &SandboxRequest) -> CaacResult<()> {
        let channel_id = path_id(request, "channel_id")?;
        let member_id = path_id(request, "member_id")?;
        self.member(channel_id, member_id)?;
        let body = json_body(request)?;
        let user_id = required_int(&body, "user_id")?;
        if !user_exists(user_id) {
            return Err(bad_request(format!("user {user_id} not found")));
        }
        let now = self.tick();
        let member = self.member_mut(channel_id, member_id)?;
        member.processing_state = "resolved";
        member.updated_at = now;
        Ok(())
    }

    /// Manual assignment: assign to a user and/or team, or `assign_type: unassigned`.
    fn assign(&mut self, request: &SandboxRequest) -> CaacResult<Value> {
        let body = json_body(request)?;
        let channel_id = required_int(&body, "channel_id")?;
        let member_id = required_int(&body, "member_id")?;
        let org_id = required_int(&body, "org_id")?;
        if org_id != seed::ORG_ID {
            return Err(bad_request(
                "org_id does not match the API key's organization",
            ));
        }
        self.member(channel_id, member_id)?;
        let (assign_type, team_id, user_id) = match string(&body, "assign_type")? {
            Some("unassigned") => ("unassigned", None, None),
            None | Some("manual") => {
                let relationship = match body.get("assignment_relationship") {
                    Some(Value::Object(r)) => r,
                    _ => return Err(bad_request("assignment_relationship is required to assign")),
                };
                let team_id = int(relationship, "team_id")?.filter(|t| *t > 0);
                let user_id = int(relationship, "user_id")?.filter(|u| *u > 0);
                if team_id.is_none() && user_id.is_none() {
                    return Err(bad_request(
                        "assignment_relationship needs user_id or team_id",
                    ));
                }
                if let Some(team) = team_id.filter(|t| !team_exists(*t)) {
                    return Err(bad_request(format!("team {team} not found")));
                }
                if let Some(user) = user_id.filter(|u| !user_exists(*u)) {
                    return Err(bad_request(format!("user {user} not found")));
                }
                ("manual", team_id, user_id)
            }
            Some(_) => return Err(bad_request("assign_type should be unassigned or null")),
        };
        let now = self.tick();
        let member = self.member_mut(channel_id, member_id)?;
        member.assign_type = assign_type;
        member.team_id = team_id;
        member.user_id = user_id;
        member.updated_at = now;
        Ok(assignment_json(member))
    }

    /// Create Message from User: a text message from an agent to the member.
    fn send_message(&mut self, request: &SandboxRequest) -> CaacResult<Value> {
        let channel_id = path_id(request, "channel_id")?;
        let member_id = path_id(request, "member_id")?;
        self.member(channel_id, member_id)?;
        let body = json_body(request)?;
        let kind = string(&body, "type")?
            .filter(|t| !t.is_empty())
            .ok_or_else(|| bad_request("type is required"))?;
        let user_id = required_int(&body, "user_id")?;
        if !user_exists(user_id) {
            return Err(bad_request(format!("user {user_id} not found")));
        }
        if kind != "text" {
            return Err(bad_request(format!(
                "message type {kind:?} is not simulated by the sandbox (only text)"
            )));
        }
        let text = string(&body, "text")?
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| bad_request("text is required for a text message"))?
            .to_owned();
        let external_id = string(&body, "external_id")?.unwrap_or_default().to_owned();
        let reply_to = int(&body, "reply_to")?;
        let now = self.tick();
        let id = self.add_message(StoredMessage {
            id: 0,
            channel_id,
            member_id,
            sender_type: "user",
            text,
            external_id,
            reply_to,
            read: false,
            created_at: now,
        });
        self.messages
            .get(&id)
            .and_then(|m| self.message_json(m))
            .ok_or_else(|| fail(StatusCode::INTERNAL_SERVER_ERROR, "message not stored"))
    }

    /// Store a message (its id is assigned here) and bump the member's timestamps.
    fn add_message(&mut self, mut message: StoredMessage) -> i64 {
        let id = self.next_message_id;
        self.next_message_id += 1;
        message.id = id;
        if let Some(member) = self.members.get_mut(&message.member_id) {
            member.last_message_at = Some(message.created_at);
            if message.sender_type == "member" {
                member.last_member_message_at = Some(message.created_at);
            }
            member.updated_at = member.updated_at.max(message.created_at);
        }
        self.messages.insert(id, message);
        id
    }

    /// The Create Message from User answer: every documented property.
    fn message_json(&self, m: &StoredMessage) -> Option<Value> {
        let member = self.members.get(&m.member_id)?;
        let external_channel_id = channel(m.channel_id)
            .map(|c| c.external_channel_id)
            .unwrap_or_default();
        Some(json!({
            "created_at": format_time(m.created_at),
            "deleted_at": null,
            "external_channel_id": external_channel_id,
            "external_id": m.external_id,
            "external_member_id": member.external_member_id,
            "id": m.id,
            "line_flex_content": "",
            "member_avatar": member.avatar,
            "member_display_name": member.display_name,
            "metadata": null,
            "origin_url": "",
            "preview_url": "",
            "quotable": true,
            "read": m.read,
            "reply_to": m.reply_to.map(|r| r.to_string()).unwrap_or_default(),
            "sender_type": m.sender_type,
            "text": m.text,
            "type": "text",
            "updated_at": format_time(m.created_at),
        }))
    }

    fn seeded() -> Data {
        let mut data = Data {
            members: BTreeMap::new(),
            messages: BTreeMap::new(),
            next_member_id: seed::MEMBER_WEITING_ID,
            next_message_id: seed::FIRST_MESSAGE_ID,
            clock: 0,
        };
        let person = |id: i64, uid: &str, name: &str, country: &str, created: i64| Member {
            id,
            channel_id: seed::CHANNEL_LINE_ID,
            external_member_id: uid.to_owned(),
            display_name: name.to_owned(),
            original_name: name.to_owned(),
            avatar: format!("https://profile.line-scdn.net/sandbox/{id}.jpg"),
            country: country.to_owned(),
            member_type: Some("line".to_owned()),
            status: "follow",
            processing_state: "new",
            assign_type: "unassigned",
            created_at: seed_time(created),
            updated_at: seed_time(created),
            ..Member::default()
        };
        let members = [
            Member {
                email: "weiting.chen@example.com.tw".into(),
                original_email: "weiting.chen@example.com.tw".into(),
                mobile: "0912-345-678".into(),
                gender: "female".into(),
                birthday: "1992-04-18".into(),
                city: "Taipei".into(),
                company: "Formosa Tea Co.".into(),
                member_level: "gold".into(),
                engagement_level: "high".into(),
                note: "Prefers Mandarin".into(),
                processing_state: "processing",
                assign_type: "manual",
                team_id: Some(seed::TEAM_TAIPEI_ID),
                user_id: Some(seed::USER_MEI_ID),
                ..person(
                    seed::MEMBER_WEITING_ID,
                    seed::MEMBER_WEITING_UID,
                    "Wei-Ting Chen",
                    "TW",
                    0,
                )
            },
            Member {
                mobile: "081-234-5678".into(),
                original_mobile: "081-234-5678".into(),
                city: "Chiang Mai".into(),
                ..person(
                    seed::MEMBER_SOMCHAI_ID,
                    seed::MEMBER_SOMCHAI_UID,
                    "Somchai Prasert",
                    "TH",
                    30,
                )
            },
            Member {
                email: "yuki.tanaka@example.jp".into(),
                mobile: "+81 90-1234-5678".into(),
                gender: "male".into(),
                city: "Osaka".into(),
                processing_state: "resolved",
                assign_type: "manual",
                team_id: Some(seed::TEAM_TAIPEI_ID),
                user_id: Some(seed::USER_KENJI_ID),
                ..person(
                    seed::MEMBER_YUKI_ID,
                    seed::MEMBER_YUKI_UID,
                    "Yuki Tanaka",
                    "JP",
                    60,
                )
            },
            Member {
                original_email: "nattaya.s@example.co.th".into(),
                processing_state: "pending",
                assign_type: "auto",
                team_id: Some(seed::TEAM_BANGKOK_ID),
                ..person(
                    seed::MEMBER_NATTAYA_ID,
                    seed::MEMBER_NATTAYA_UID,
                    "Nattaya Srisuk",
                    "TH",
                    90,
                )
            },
            Member {
                avatar: String::new(),
                star_mark: true,
                member_type: None,
                ..person(
                    seed::MEMBER_LIMING_ID,
                    seed::MEMBER_LIMING_UID,
                    "Li Ming",
                    "TW",
                    120,
                )
            },
            Member {
                channel_id: seed::CHANNEL_MESSENGER_ID,
                avatar: String::new(),
                member_type: Some("facebook".to_owned()),
                status: "",
                processing_state: "processing",
                assign_type: "manual",
                user_id: Some(seed::USER_PLOY_ID),
                ..person(
                    seed::MEMBER_ALEX_ID,
                    seed::MEMBER_ALEX_PSID,
                    "Alex Wong",
                    "HK",
                    150,
                )
            },
        ];
        for member in members {
            data.next_member_id = data.next_member_id.max(member.id + 1);
            data.members.insert(member.id, member);
        }
        // (member, sender, text, minutes after the seed epoch)
        let messages: [(i64, &'static str, &str, i64); seed::MESSAGE_COUNT] = [
            (
                seed::MEMBER_WEITING_ID,
                "member",
                "Hi, my order #A1029 has not arrived yet.",
                200,
            ),
            (
                seed::MEMBER_WEITING_ID,
                "user",
                "Sorry about that! Let me check the shipment for you.",
                205,
            ),
            (
                seed::MEMBER_WEITING_ID,
                "member",
                "Thank you, I will wait.",
                207,
            ),
            (
                seed::MEMBER_SOMCHAI_ID,
                "member",
                "Do you ship to Chiang Mai?",
                230,
            ),
            (
                seed::MEMBER_YUKI_ID,
                "member",
                "How do I change my delivery address?",
                260,
            ),
            (
                seed::MEMBER_YUKI_ID,
                "user",
                "You can change it under My Account > Addresses.",
                270,
            ),
            (
                seed::MEMBER_NATTAYA_ID,
                "member",
                "Is the rainy-season sale still on?",
                300,
            ),
            (seed::MEMBER_ALEX_ID, "member", "Hello from Messenger!", 330),
        ];
        for (member_id, sender_type, text, minutes) in messages {
            let channel_id = data
                .members
                .get(&member_id)
                .map(|m| m.channel_id)
                .unwrap_or_default();
            data.add_message(StoredMessage {
                id: 0,
                channel_id,
                member_id,
                sender_type,
                text: text.to_owned(),
                external_id: String::new(),
                reply_to: None,
                read: sender_type == "user",
                created_at: seed_time(minutes),
            });
        }
        data
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use http::HeaderValue;

    /// The repository's routes/caac.yaml, compiled.
    pub(crate) fn routes() -> VendorRoutes {
        crate::sandbox::tests::repo_routes("caac", |text| text)
    }

    fn state() -> Arc<CaacState> {
        Arc::new(CaacState::new(
            HeaderName::from_static("apikey"),
            Credentials::new("caac-key", ""),
        ))
    }

    fn request(
        params: &[(&str, String)],
        key: Option<&str>,
        body: Option<Value>,
    ) -> SandboxRequest {
        let mut headers = http::HeaderMap::new();
        if let Some(key) = key {
            headers.insert("apikey", HeaderValue::from_str(key).unwrap());
        }
        if body.is_some() {
            headers.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        SandboxRequest {
            method: http::Method::GET,
            headers,
            params: params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
            query: None,
            body: body
                .map(|b| axum::body::Bytes::from(b.to_string()))
                .unwrap_or_default(),
        }
    }

    fn member_params(member: i64) -> Vec<(&'static str, String)> {
        vec![
            ("channel_id", seed::CHANNEL_LINE_ID.to_string()),
            ("member_id", member.to_string()),
        ]
    }

    async fn call(
        state: &Arc<CaacState>,
        endpoint: &'static str,
        req: SandboxRequest,
    ) -> (u16, Value) {
        let response = state.clone().handle(endpoint, req).await;
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        (status, body)
    }

    #[tokio::test]
    async fn wrong_or_missing_api_key_is_a_401_in_the_error_shape() {
        let state = state();
        let params = member_params(seed::MEMBER_WEITING_ID);
        let (status, body) = call(&state, "contacts.get", request(&params, None, None)).await;
        assert_eq!(status, 401);
        assert_eq!(body["error"]["code"], "unauthorized");
        assert_eq!(body["error"]["message"], "missing apikey header");
        let (status, body) =
            call(&state, "contacts.get", request(&params, Some("nope"), None)).await;
        assert_eq!(status, 401);
        assert_eq!(body["error"]["message"], "invalid API key");
        let (status, body) = call(
            &state,
            "contacts.get",
            request(&params, Some("caac-key"), None),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(body["external_member_id"], seed::MEMBER_WEITING_UID);
        assert_eq!(body["type"], "line");
    }

    #[tokio::test]
    async fn required_fields_are_enforced() {
        let state = state();
        let key = Some("caac-key");
        let params = member_params(seed::MEMBER_WEITING_ID);
        // Create Message from User: type and user_id are required, the user must exist.
        for (body, message) in [
            (json!({"user_id": 501, "text": "hi"}), "type is required"),
            (json!({"type": "text", "text": "hi"}), "user_id is required"),
            (
                json!({"type": "text", "user_id": 9, "text": "hi"}),
                "user 9 not found",
            ),
            (
                json!({"type": "text", "user_id": 501}),
                "text is required for a text message",
            ),
            (
                json!({"type": "text", "user_id": "501", "text": "hi"}),
                "user_id must be an integer",
            ),
        ] {
            let (status, answer) =
                call(&state, "messages.send", request(&params, key, Some(body))).await;
            assert_eq!(
                (status, answer["error"]["message"].as_str()),
                (400, Some(message))
            );
            assert_eq!(answer["error"]["code"], "invalid_parameter");
        }
        // Close Conversation needs user_id.
        let (status, _) = call(
            &state,
            "conversations.close",
            request(&params, key, Some(json!({}))),
        )
        .await;
        assert_eq!(status, 400);
        // Member creation: LINE channels only, a LINE UID required.
        let line = vec![("channel_id", seed::CHANNEL_LINE_ID.to_string())];
        let messenger = vec![("channel_id", seed::CHANNEL_MESSENGER_ID.to_string())];
        let uid = json!({"channel_member_id": seed::UNUSED_LINE_UID});
        let (status, _) = call(
            &state,
            "contacts.create",
            request(&messenger, key, Some(uid.clone())),
        )
        .await;
        assert_eq!(status, 400);
        for bad in [json!({}), json!({"channel_member_id": "not-a-uid"})] {
            let (status, _) = call(&state, "contacts.create", request(&line, key, Some(bad))).await;
            assert_eq!(status, 400);
        }
        // A body without Content-Type: application/json is refused.
        let mut no_type = request(&line, key, Some(uid.clone()));
        no_type.headers.remove(http::header::CONTENT_TYPE);
        assert_eq!(call(&state, "contacts.create", no_type).await.0, 400);
        // Manual assignment: the org must be the key's.
        let assign = json!({"channel_id": seed::CHANNEL_LINE_ID, "member_id": seed::MEMBER_SOMCHAI_ID, "org_id": 1, "assignment_relationship": {"user_id": 502}});
        let (status, answer) = call(
            &state,
            "conversations.assign",
            request(&[], key, Some(assign)),
        )
        .await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(state.member_count(), seed::MEMBER_COUNT);
    }

    #[tokio::test]
    async fn members_are_created_once_per_line_uid_and_conversations_change() {
        let state = state();
        let key = Some("caac-key");
        let line = vec![("channel_id", seed::CHANNEL_LINE_ID.to_string())];
        let uid = json!({"channel_member_id": seed::UNUSED_LINE_UID});
        let (status, first) = call(
            &state,
            "contacts.create",
            request(&line, key, Some(uid.clone())),
        )
        .await;
        assert_eq!(status, 200);
        let (_, again) = call(&state, "contacts.create", request(&line, key, Some(uid))).await;
        assert_eq!(first, again);
        assert_eq!(first["member_id"], 30007);
        assert_eq!(state.member_count(), seed::MEMBER_COUNT + 1);

        let params = member_params(seed::MEMBER_SOMCHAI_ID);
        let (status, body) = call(
            &state,
            "conversations.close",
            request(&params, key, Some(json!({"user_id": 501}))),
        )
        .await;
        assert_eq!((status, body), (204, Value::Null));
        assert_eq!(
            state
                .processing_state(seed::CHANNEL_LINE_ID, seed::MEMBER_SOMCHAI_ID)
                .as_deref(),
            Some("resolved")
        );
        let assign = json!({"channel_id": seed::CHANNEL_LINE_ID, "member_id": seed::MEMBER_SOMCHAI_ID, "org_id": seed::ORG_ID, "assignment_relationship": {"user_id": 502}});
        let (status, body) = call(
            &state,
            "conversations.assign",
            request(&[], key, Some(assign)),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(
            body,
            json!({"assign_type": "manual", "assignment_relationship": {"team_id": null, "user_id": 502}})
        );
        let unassign = json!({"channel_id": seed::CHANNEL_LINE_ID, "member_id": seed::MEMBER_SOMCHAI_ID, "org_id": seed::ORG_ID, "assign_type": "unassigned"});
        let (_, body) = call(
            &state,
            "conversations.assign",
            request(&[], key, Some(unassign)),
        )
        .await;
        assert_eq!(body["assign_type"], "unassigned");

        let (status, message) = call(
            &state,
            "messages.send",
            request(
                &params,
                key,
                Some(json!({"type": "text", "user_id": 501, "text": " On its way ", "reply_to": 700004})),
            ),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(
            message["id"],
            seed::FIRST_MESSAGE_ID + seed::MESSAGE_COUNT as i64
        );
        assert_eq!(message["text"], "On its way");
        assert_eq!(message["sender_type"], "user");
        assert_eq!(message["reply_to"], "700004");
        assert_eq!(message["external_member_id"], seed::MEMBER_SOMCHAI_UID);
        assert_eq!(
            state
                .messages(seed::CHANNEL_LINE_ID, seed::MEMBER_SOMCHAI_ID)
                .len(),
            2
        );
    }

    #[tokio::test]
    async fn unknown_channels_members_and_bad_ids() {
        let state = state();
        let key = Some("caac-key");
        let lookup = |channel: i64, uid: &str| {
            vec![
                ("channel_id", channel.to_string()),
                ("external_member_id", uid.to_owned()),
            ]
        };
        let (status, body) = call(
            &state,
            "contacts.lookup",
            request(
                &lookup(seed::CHANNEL_LINE_ID, seed::MEMBER_YUKI_UID),
                key,
                None,
            ),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(body["channel_id"], seed::CHANNEL_LINE_ID);
        assert_eq!(body["display_email"], "yuki.tanaka@example.jp");
        assert!(body.get("created_at").is_none());
        for (params, status) in [
            (lookup(seed::CHANNEL_LINE_ID, seed::UNUSED_LINE_UID), 404),
            (lookup(9, seed::MEMBER_YUKI_UID), 404),
            // Alex is a member of the Messenger channel, not of the LINE one.
            (lookup(seed::CHANNEL_LINE_ID, seed::MEMBER_ALEX_PSID), 404),
        ] {
            assert_eq!(
                call(&state, "contacts.lookup", request(&params, key, None))
                    .await
                    .0,
                status
            );
        }
        let wrong_channel = vec![
            ("channel_id", seed::CHANNEL_MESSENGER_ID.to_string()),
            ("member_id", seed::MEMBER_WEITING_ID.to_string()),
        ];
        let (status, body) = call(&state, "contacts.get", request(&wrong_channel, key, None)).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (404, Some("not_found"))
        );
        let bad = vec![
            ("channel_id", "x".to_owned()),
            ("member_id", "1".to_owned()),
        ];
        assert_eq!(
            call(&state, "contacts.get", request(&bad, key, None))
                .await
                .0,
            400
        );
    }

    #[tokio::test]
    async fn the_auth_header_name_comes_from_the_routes_file() {
        let mut routes = routes();
        routes.auth = AuthScheme::Header(HeaderName::from_static("x-caac-key"));
        let sandbox =
            Sandbox::start_vendor(Vendor::Caac, Arc::new(routes), Credentials::new("k1", ""))
                .await
                .unwrap();
        let url = format!(
            "{}/openapi/v1/channels/{}/members/{}",
            sandbox.base_url(),
            seed::CHANNEL_LINE_ID,
            seed::MEMBER_WEITING_ID
        );
        let client = reqwest::Client::new();
        let with = |name: &'static str| client.get(&url).header(name, "k1").send();
        assert_eq!(with("apikey").await.unwrap().status(), 401);
        assert_eq!(with("x-caac-key").await.unwrap().status(), 200);
        assert_eq!(sandbox.calls_to("contacts.get"), 2);
        assert!(sandbox.caac().is_some());

        let mut bearer = tests::routes();
        bearer.auth = AuthScheme::Bearer;
        let refused =
            Sandbox::start_vendor(Vendor::Caac, Arc::new(bearer), Credentials::new("k1", "")).await;
        assert!(refused.is_err());
    }

    /// A member's `type` is the member's own opaque string, in every plausible shape, in both
    /// member answers — never the channel's type.
    #[tokio::test]
    async fn member_type_is_opaque_member_data_in_every_shape() {
        let state = state();
        let key = Some("caac-key");
        let get = member_params(seed::MEMBER_NATTAYA_ID);
        let lookup = vec![
            ("channel_id", seed::CHANNEL_LINE_ID.to_string()),
            ("external_member_id", seed::MEMBER_NATTAYA_UID.to_owned()),
        ];
        // Seeded: `line`; Li Ming has none.
        let (_, body) = call(&state, "contacts.get", request(&get, key, None)).await;
        assert_eq!(body["type"], "line");
        let liming = member_params(seed::MEMBER_LIMING_ID);
        let (status, body) = call(&state, "contacts.get", request(&liming, key, None)).await;
        assert_eq!(status, 200);
        assert!(body.get("type").is_none(), "{body}");
        for shape in [
            Some("user"),
            Some("member"),
            Some("customer"),
            Some(""),
            None,
        ] {
            assert!(state.set_member_type(seed::CHANNEL_LINE_ID, seed::MEMBER_NATTAYA_ID, shape));
            for (endpoint, params) in [("contacts.get", &get), ("contacts.lookup", &lookup)] {
                let (status, body) = call(&state, endpoint, request(params, key, None)).await;
                assert_eq!(status, 200, "{endpoint}");
                assert_eq!(
                    body.get("type").and_then(Value::as_str),
                    shape,
                    "{endpoint}: {body}"
                );
                assert_eq!(body["id"], seed::MEMBER_NATTAYA_ID);
            }
        }
        // A channel word on a member of another channel is served as set, not corrected.
        assert!(state.set_member_type(
            seed::CHANNEL_MESSENGER_ID,
            seed::MEMBER_ALEX_ID,
            Some("line")
        ));
        assert_eq!(
            state
                .member(seed::CHANNEL_MESSENGER_ID, seed::MEMBER_ALEX_ID)
                .unwrap()["type"],
            "line"
        );
        // Only an existing member of that channel can be set.
        assert!(!state.set_member_type(seed::CHANNEL_LINE_ID, seed::MEMBER_ALEX_ID, Some("x")));
        assert!(!state.set_member_type(9, seed::MEMBER_ALEX_ID, Some("x")));
        // A member created through the API has no `type`, whatever its channel is.
        let line = vec![("channel_id", seed::CHANNEL_LINE_ID.to_string())];
        let uid = json!({"channel_member_id": seed::UNUSED_LINE_UID});
        let (status, created) =
            call(&state, "contacts.create", request(&line, key, Some(uid))).await;
        assert_eq!(status, 200);
        let id = created["member_id"].as_i64().unwrap();
        let member = state.member(seed::CHANNEL_LINE_ID, id).unwrap();
        assert!(member.get("type").is_none(), "{member}");
        // A reset brings the seeded types back.
        state.reset();
        assert_eq!(
            state
                .member(seed::CHANNEL_LINE_ID, seed::MEMBER_NATTAYA_ID)
                .unwrap()["type"],
            "line"
        );
        assert_eq!(
            state
                .member(seed::CHANNEL_MESSENGER_ID, seed::MEMBER_ALEX_ID)
                .unwrap()["type"],
            "facebook"
        );
    }

    #[test]
    fn seed_is_deterministic_and_consistent() {
        let state = state();
        assert_eq!(state.member_count(), seed::MEMBER_COUNT);
        for uid in [
            seed::MEMBER_WEITING_UID,
            seed::MEMBER_SOMCHAI_UID,
            seed::MEMBER_YUKI_UID,
            seed::MEMBER_NATTAYA_UID,
            seed::MEMBER_LIMING_UID,
            seed::UNUSED_LINE_UID,
        ] {
            assert!(is_line_uid(uid), "{uid}");
        }
        let weiting = state
            .member_by_external_id(seed::CHANNEL_LINE_ID, seed::MEMBER_WEITING_UID)
            .unwrap();
        assert_eq!(weiting["id"], seed::MEMBER_WEITING_ID);
        assert_eq!(weiting["processing_state"], "processing");
        assert_eq!(weiting["created_at"], "2025-03-10T09:00:00Z");
        assert_eq!(weiting["last_message_at"], "2025-03-10T12:27:00Z");
        assert_eq!(
            state.assignment(seed::CHANNEL_LINE_ID, seed::MEMBER_NATTAYA_ID),
            Some(
                json!({"assign_type": "auto", "assignment_relationship": {"team_id": 72, "user_id": null}})
            )
        );
        let messages = state.messages(seed::CHANNEL_LINE_ID, seed::MEMBER_WEITING_ID);
        assert_eq!(messages.len(), 3);
        assert_eq!(messages[0]["id"], seed::FIRST_MESSAGE_ID);
        assert_eq!(messages[1]["sender_type"], "user");
        let total: usize = [30001, 30002, 30003, 30004, 30005]
            .iter()
            .map(|m| state.messages(seed::CHANNEL_LINE_ID, *m).len())
            .sum::<usize>()
            + state
                .messages(seed::CHANNEL_MESSENGER_ID, seed::MEMBER_ALEX_ID)
                .len();
        assert_eq!(total, seed::MESSAGE_COUNT);
        assert_eq!(
            state
                .member(seed::CHANNEL_MESSENGER_ID, seed::MEMBER_ALEX_ID)
                .unwrap()["type"],
            "facebook"
        );
        let again = CaacState::new(HeaderName::from_static("apikey"), Credentials::new("x", ""));
        assert_eq!(
            state.member(seed::CHANNEL_LINE_ID, seed::MEMBER_YUKI_ID),
            again.member(seed::CHANNEL_LINE_ID, seed::MEMBER_YUKI_ID)
        );
    }
}
