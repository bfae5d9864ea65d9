//! The ChatCaptain sandbox: an in-memory ChatCaptain (German chatbot + inbox platform) holding
//! one chatbot, enforcing the contract of ChatCaptain's published API reference (NestJS-style
//! DTOs; seed 002) and, where the reference is silent, the choices listed below.
//!
//! # Contract, as enforced
//!
//! - **Auth**: the key header named by the routes file (`auth.header`, `x-chatcaptain-key` as
//!   shipped; other schemes are checked the way the gateway sends them). Keys are per chatbot:
//!   a missing or wrong key, or a good key on a path naming another chatbot, is 403
//!   `{"error":"Insufficient permissions."}` — the reference's answer for a key that lacks the
//!   permission on `chatbots/:chatbotId` (the sandbox holds exactly one chatbot).
//! - **Envelopes**: no wrapper; one named key per answer (`contacts`, `contact`, `results`,
//!   `conversations`, `conversation`, `conversationId`, `messages`, `message`, `deleted`).
//!   Errors are `{"error": "…"}`: 400 "Invalid input data." for any body or query the DTO
//!   validation refuses, 403 as above, 404 `"<Object> not found."` for an unknown id (not in the
//!   reference, which lists 400/403 only). Creates answer 201, everything else 200.
//! - **Bodies** are JSON (`Content-Type: application/json`; anything else reads as `{}` and
//!   fails validation). Unknown properties are refused (`forbidNonWhitelisted`), so a gateway
//!   that sends a wrong field name fails here the way a strict vendor would fail it.
//! - **Timestamps** are `created`/`updated`, ISO 8601 with milliseconds (JavaScript's
//!   `toISOString`).
//!
//! # Endpoints (routes-file names)
//!
//! | endpoint | behaviour |
//! |---|---|
//! | `contacts.list` | `limit` (1–100, default 25; else 400), `pageToken` (ISO date; records created strictly before it; unparsable → 400); newest first; `{contacts}` (no next token: the caller pages on the last `created`) |
//! | `contacts.search` | `query`, `page` (≥1), `pageSize` (1–250) all required (else 400), optional `hiddenHits` (comma-separated ids to leave out); case-insensitive substring of name, email, phoneNumber, whatsappId, webId; newest first; `{results: {facetCounts, found, outOf, page, searchTimeMs, hits: [{document, highlights}]}}` |
//! | `contacts.create` | flat `{language (required), name?, email? (an address), phoneNumber?, whatsappId? (digits), webId?, instagramId?, facebookId?, telegramId?, providerId?, avatar?}` → 201 `{contact}` |
//! | `contacts.get` / `contacts.update` / `contacts.delete` | `{contact}`; PATCH with the create fields, flat or wrapped as `{contact: {…}}` or `{updateContact: {…}}` (the reference shows no body, so every plausible envelope is taken), plus `variables` (object, replaces), `address`, `organizationIds`; `null` clears a field (not `language`) → `{contact}`; DELETE → `{deleted: true}` (the contact's conversations stay) |
//! | `conversations.list` | optional `contactId`, `channelId` filters; newest first; no paging; `{conversations}` |
//! | `conversations.get` / `conversations.update` / `conversations.delete` | `{conversation}`; PATCH `{archived?, name?}`, flat or wrapped as `{conversation: {…}}` or `{updateConversation: {…}}` (the reference shows no body) → `{conversation}`; DELETE (messages too) → `{deleted: true}` |
//! | `conversations.create` | inbox: `{name, channelId (a channel of the chatbot), email?, phone?}`; the contact is found by email or phone (phoneNumber or WhatsApp number) or created (language `de`; on a WhatsApp channel the phone is also its `whatsappId`) → 201 `{conversationId}` |
//! | `messages.list` / `messages.get` | oldest first, no paging; `{messages}` / `{message}`; a message of another conversation is 404 |
//! | `messages.send` | inbox: `{conversationId, text?, attachmentRef?}`, one of text/attachmentRef required; the ref must name an uploaded attachment ([`seed::ATTACHMENT_REF`]) → 201 `{message}` (`sender: agent`, `status: sent`) |
//!
//! # Seed data (deterministic; [`seed`] has the constants)
//!
//! - Chatbot [`seed::CHATBOT_ID`], language `de`; channels `chn_web` (type `web`) and
//!   `chn_whatsapp` (type `whatsapp`).
//! - Contacts (30, `ctc_0001`–`ctc_0030`, created hourly from 2025-01-06T09:00:00.000Z, so
//!   `ctc_0030` is the newest): 1 Anna Schmidt (email, phone, WhatsApp, variables), 2 Jonas
//!   Weber (email, national phone), 3 Lena Fischer (WhatsApp only), 4 Mehmet Yilmaz (email,
//!   web id), 5 Sophie Martin (email, instagram id, language fr), 6–30 "Kunde NN"
//!   `kunde<NN>@example.com`.
//! - Conversations (`cnv_0001`–`cnv_0005`, newest last):
//!   1. Anna, WhatsApp, active: user text, bot text, agent text, user image.
//!   2. Jonas, web, **archived**: user text, bot text, bot template.
//!   3. Lena, WhatsApp, active: user text, agent text.
//!   4. Mehmet, web, **archived**: user text, bot text.
//!   5. Anna, web, active: user text, bot text.
//! - Messages `msg_0001`–`msg_0013` in that order. New objects continue every sequence.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::response::Response;
use futures::future::BoxFuture;
use http::{HeaderValue, StatusCode};
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;

use super::{
    days_from_civil, js_iso_string, json_bytes_response, json_response, lock, unix_now,
    unix_seconds, Credentials, Query, Sandbox, SandboxRequest, VendorSimulator, VendorState,
};
use crate::api::operation::Vendor;
use crate::snapshot::routes::{AuthScheme, VendorRoutes};

/// Constants for the seed data, for tests and the demo.
pub mod seed {
    /// The one chatbot the sandbox (and its key) serves: the connection's `chatbot_id`.
    pub const CHATBOT_ID: &str = "bot_demo_captain";
    /// The chatbot's language, given to contacts the inbox creates.
    pub const LANGUAGE: &str = "de";
    /// The web widget channel: the connection's default `channel_id`.
    pub const CHANNEL_WEB_ID: &str = "chn_web";
    pub const CHANNEL_WHATSAPP_ID: &str = "chn_whatsapp";

    /// Anna Schmidt: email, phone, WhatsApp, variables; two conversations.
    pub const CONTACT_ANNA_ID: &str = "ctc_0001";
    pub const CONTACT_ANNA_EMAIL: &str = "anna.schmidt@example.de";
    /// Anna's phone and WhatsApp number.
    pub const CONTACT_ANNA_PHONE: &str = "+4917612345601";
    /// Jonas Weber: email and a national phone number.
    pub const CONTACT_JONAS_ID: &str = "ctc_0002";
    /// Lena Fischer: a WhatsApp id only.
    pub const CONTACT_LENA_ID: &str = "ctc_0003";
    /// Mehmet Yilmaz: email and a web id.
    pub const CONTACT_MEHMET_ID: &str = "ctc_0004";
    /// Sophie Martin: email, instagram id, language fr.
    pub const CONTACT_SOPHIE_ID: &str = "ctc_0005";
    pub const CONTACT_COUNT: usize = 30;
    /// `created` of `ctc_0001`; each later contact one hour later.
    pub const FIRST_CONTACT_CREATED: &str = "2025-01-06T09:00:00.000Z";

    /// Anna, WhatsApp, active; 4 messages (user, bot, agent, user image).
    pub const CONVERSATION_ANNA_ID: &str = "cnv_0001";
    /// Jonas, web, archived; 3 messages (one bot template).
    pub const CONVERSATION_JONAS_ID: &str = "cnv_0002";
    /// Lena, WhatsApp, active; 2 messages.
    pub const CONVERSATION_LENA_ID: &str = "cnv_0003";
    /// Mehmet, web, archived; 2 messages.
    pub const CONVERSATION_MEHMET_ID: &str = "cnv_0004";
    /// Anna's second, web, active; 2 messages; the newest conversation.
    pub const CONVERSATION_ANNA_WEB_ID: &str = "cnv_0005";
    pub const CONVERSATION_COUNT: usize = 5;
    pub const ARCHIVED_COUNT: usize = 2;

    /// Conversation 1: Anna's first message (user, text).
    pub const MESSAGE_ANNA_FIRST_ID: &str = "msg_0001";
    /// Conversation 1: the bot's answer.
    pub const MESSAGE_BOT_ANSWER_ID: &str = "msg_0002";
    /// Conversation 1: the agent's reply.
    pub const MESSAGE_AGENT_REPLY_ID: &str = "msg_0003";
    /// Conversation 1: Anna's photo (user, file, image/jpeg).
    pub const MESSAGE_ANNA_PHOTO_ID: &str = "msg_0004";
    /// Conversation 2: the bot's satisfaction survey (template).
    pub const MESSAGE_TEMPLATE_ID: &str = "msg_0007";

    /// An uploaded attachment `messages.send` accepts as `attachmentRef`.
    pub const ATTACHMENT_REF: &str = "att_lieferschein_pdf";
}

/// Milliseconds since the Unix epoch.
type Millis = i64;

const DEFAULT_LIMIT: usize = 25;
const MAX_LIMIT: usize = 100;
const MAX_SEARCH_PAGE_SIZE: usize = 250;

const INVALID_INPUT: &str = "Invalid input data.";
const FORBIDDEN: &str = "Insufficient permissions.";

struct Channel {
    id: &'static str,
    kind: &'static str,
}

const CHANNELS: [Channel; 2] = [
    Channel {
        id: seed::CHANNEL_WEB_ID,
        kind: "web",
    },
    Channel {
        id: seed::CHANNEL_WHATSAPP_ID,
        kind: "whatsapp",
    },
];

fn channel(id: &str) -> Option<&'static Channel> {
    CHANNELS.iter().find(|c| c.id == id)
}

/// An attachment uploaded beforehand: (ref, url, name, mimeType, size).
const ATTACHMENTS: [(&str, &str, &str, &str, u64); 1] = [(
    seed::ATTACHMENT_REF,
    "https://files.chatcaptain.example/bot_demo_captain/lieferschein.pdf",
    "lieferschein.pdf",
    "application/pdf",
    18_231,
)];

// ----- errors and answers ------------------------------------------------------------------

/// A ChatCaptain error answer: `{"error": message}` with a status.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CcError {
    status: StatusCode,
    message: String,
}

type CcResult<T> = Result<T, CcError>;

fn fail(status: StatusCode, message: impl Into<String>) -> CcError {
    CcError {
        status,
        message: message.into(),
    }
}

fn invalid() -> CcError {
    fail(StatusCode::BAD_REQUEST, INVALID_INPUT)
}

fn forbidden() -> CcError {
    fail(StatusCode::FORBIDDEN, FORBIDDEN)
}

fn not_found(what: &str) -> CcError {
    fail(StatusCode::NOT_FOUND, format!("{what} not found."))
}

fn error_response(status: StatusCode, message: &str) -> Response {
    json_response(status, &json!({ "error": message }))
}

impl CcError {
    fn into_response(self) -> Response {
        error_response(self.status, &self.message)
    }
}

// ----- time ----------------------------------------------------------------------------------

/// A UTC instant, for seed data.
const fn at(year: i64, month: i64, day: i64, hour: i64, minute: i64) -> Millis {
    unix_seconds(year, month, day, hour, minute) * 1000
}

/// An ISO 8601 date as JavaScript's `new Date(…)` reads it: `YYYY-MM-DD` (UTC midnight), or
/// `YYYY-MM-DDTHH:MM[:SS[.fff]]` with `Z` or `±HH:MM` (no zone = UTC, as the server runs).
fn parse_time(raw: &str) -> Option<Millis> {
    let raw = raw.trim();
    let number = |s: &str| -> Option<i64> {
        (!s.is_empty() && s.chars().all(|c| c.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let (date, rest) = raw.split_at(raw.find('T').unwrap_or(raw.len()));
    let mut parts = date.split('-');
    let (year, month, day) = (
        number(parts.next()?)?,
        number(parts.next()?)?,
        number(parts.next()?)?,
    );
    if parts.next().is_some() || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let mut millis = days_from_civil(year, month, day) * 86_400_000;
    if rest.is_empty() {
        return Some(millis);
    }
    let time = &rest[1..];
    let (clock, offset) = if let Some(clock) = time.strip_suffix('Z') {
        (clock, 0)
    } else if let Some(at) = time.rfind(['+', '-']) {
        let (clock, zone) = time.split_at(at);
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let (h, m) = zone[1..].split_once(':')?;
        (clock, sign * (number(h)? * 60 + number(m)?) * 60_000)
    } else {
        (time, 0)
    };
    let (hms, fraction) = match clock.split_once('.') {
        Some((hms, fraction)) => (hms, Some(fraction)),
        None => (clock, None),
    };
    let mut fields = hms.split(':');
    let hour = number(fields.next()?)?;
    let minute = number(fields.next()?)?;
    let second = fields.next().map(number).unwrap_or(Some(0))?;
    if fields.next().is_some() || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let ms = match fraction {
        Some(f) => {
            let digits = number(f)?;
            let len = u32::try_from(f.len()).ok()?;
            match len {
                1 => digits * 100,
                2 => digits * 10,
                3 => digits,
                _ => digits / 10_i64.checked_pow(len - 3)?,
            }
        }
        None => 0,
    };
    millis += ((hour * 60 + minute) * 60 + second) * 1000 + ms;
    Some(millis - offset)
}

// ----- request parsing -----------------------------------------------------------------------

/// An integer query value within `range` (class-validator `@IsInt @Min @Max` after
/// `@Type(Number)`): absent → `None`, anything else → 400.
fn query_int(
    query: &Query,
    key: &str,
    range: std::ops::RangeInclusive<usize>,
) -> CcResult<Option<usize>> {
    match query.get(key) {
        None => Ok(None),
        Some(raw) => raw
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| range.contains(n))
            .map(Some)
            .ok_or_else(invalid),
    }
}

/// The JSON object body. Anything but `application/json` reads as `{}` (the body parser
/// leaves it alone), which then fails validation like an empty body.
fn json_body(request: &SandboxRequest) -> CcResult<Map<String, Value>> {
    if !request.says_json() || request.body.is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(&request.body).map_err(|_| invalid())? {
        Value::Object(map) => Ok(map),
        _ => Err(invalid()),
    }
}

/// Validation of one DTO: every property known, each of the right type.
struct Dto<'a> {
    map: &'a Map<String, Value>,
}

/// The fields of a PATCH body. ChatCaptain's reference shows no body for its updates, so the
/// sandbox takes every plausible envelope: the fields at the top level, or inside exactly one
/// of `wrappers` (the object's name, `{"conversation": {…}}`, or the `update<Object>` key of
/// ChatCaptain's other update DTOs). A wrapper key beside other keys, or holding anything but
/// an object, is 400 like any body the DTO validation refuses.
fn update_fields<'b>(
    body: &'b Map<String, Value>,
    wrappers: &[&str],
) -> CcResult<&'b Map<String, Value>> {
    match wrappers.iter().find(|w| body.contains_key(**w)) {
        None => Ok(body),
        Some(wrapper) if body.len() == 1 => match body.get(*wrapper) {
            Some(Value::Object(fields)) => Ok(fields),
            _ => Err(invalid()),
        },
        Some(_) => Err(invalid()),
    }
}

impl<'a> Dto<'a> {
    fn new(map: &'a Map<String, Value>, allowed: &[&str]) -> CcResult<Self> {
        if map.keys().any(|k| !allowed.contains(&k.as_str())) {
            return Err(invalid());
        }
        Ok(Dto { map })
    }

    /// Absent → None; a string → Some; anything else (null included) → 400.
    fn string(&self, key: &str) -> CcResult<Option<String>> {
        match self.map.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(invalid()),
        }
    }

    fn required(&self, key: &str) -> CcResult<String> {
        self.string(key)?
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(invalid)
    }

    /// For PATCH: absent → None, `null` → Some(None), a string → Some(Some).
    fn nullable(&self, key: &str) -> CcResult<Option<Option<String>>> {
        match self.map.get(key) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(Value::String(s)) => Ok(Some(Some(s.clone()))),
            Some(_) => Err(invalid()),
        }
    }

    fn boolean(&self, key: &str) -> CcResult<Option<bool>> {
        match self.map.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(invalid()),
        }
    }
}

/// `@IsEmail`, roughly: one `@`, a dot in the domain, no spaces.
fn valid_email(email: &str) -> bool {
    match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
                && !email.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

/// A WhatsApp id: the international number's digits, without `+`.
fn valid_whatsapp_id(id: &str) -> bool {
    (6..=15).contains(&id.len()) && id.chars().all(|c| c.is_ascii_digit())
}

fn digits(phone: &str) -> String {
    phone.chars().filter(char::is_ascii_digit).collect()
}

// ----- state ---------------------------------------------------------------------------------

#[derive(Debug, Clone, Default)]
struct Contact {
    id: String,
    name: Option<String>,
    language: String,
    email: Option<String>,
    phone_number: Option<String>,
    whatsapp_id: Option<String>,
    web_id: Option<String>,
    instagram_id: Option<String>,
    facebook_id: Option<String>,
    telegram_id: Option<String>,
    provider_id: Option<String>,
    avatar: Option<String>,
    address: Option<Value>,
    organization_ids: Option<Value>,
    variables: Map<String, Value>,
    created: Millis,
    updated: Millis,
}

#[derive(Debug, Clone)]
struct Conversation {
    id: String,
    contact_id: String,
    channel_id: &'static str,
    channel_type: &'static str,
    archived: bool,
    name: String,
    created: Millis,
    updated: Millis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sender {
    User,
    Bot,
    Agent,
}

impl Sender {
    fn as_str(self) -> &'static str {
        match self {
            Sender::User => "user",
            Sender::Bot => "bot",
            Sender::Agent => "agent",
        }
    }
}

#[derive(Debug, Clone)]
enum Content {
    Text(String),
    Template(String),
    /// (url, name, mimeType, size)
    File(String, String, String, u64),
}

#[derive(Debug, Clone)]
struct Message {
    id: String,
    conversation_id: String,
    sender: Sender,
    status: &'static str,
    content: Content,
    created: Millis,
}

struct Data {
    contacts: BTreeMap<String, Contact>,
    conversations: BTreeMap<String, Conversation>,
    /// Oldest first: ids are zero-padded and handed out in order.
    messages: BTreeMap<String, Message>,
    next_contact: u32,
    next_conversation: u32,
    next_message: u32,
    /// Last timestamp handed out: new objects are strictly ordered even within a millisecond.
    clock: Millis,
}

/// The ChatCaptain sandbox: the key it accepts (and the header it reads it from, per the
/// routes file) and its in-memory chatbot. Endpoint calls arrive through the shared sandbox
/// server; tests read state through the accessors.
pub struct ChatCaptainState {
    auth: AuthScheme,
    credentials: Credentials,
    data: Mutex<Data>,
}

impl std::fmt::Debug for ChatCaptainState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatCaptainState")
            .field("auth", &self.auth)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

/// Start the ChatCaptain sandbox on a bound listener (see [`Sandbox::start_vendor`]).
pub(super) fn start(
    listener: TcpListener,
    routes: Arc<VendorRoutes>,
    credentials: Credentials,
) -> std::io::Result<Sandbox> {
    let state = Arc::new(ChatCaptainState::new(&routes, credentials));
    Sandbox::start(
        listener,
        &routes,
        Vendor::ChatCaptain,
        state.clone(),
        VendorState::ChatCaptain(state),
    )
}

impl ChatCaptainState {
    /// A seeded chatbot accepting `credentials` the way `routes.auth` sends them.
    pub fn new(routes: &VendorRoutes, credentials: Credentials) -> Self {
        ChatCaptainState {
            auth: routes.auth.clone(),
            credentials,
            data: Mutex::new(Data::seeded()),
        }
    }

    /// Throw away every change and go back to the seed data.
    pub fn reset(&self) {
        *lock(&self.data) = Data::seeded();
    }

    /// A contact as `GET …/contacts/{id}` answers it (the `contact` part).
    pub fn contact(&self, id: &str) -> Option<Value> {
        lock(&self.data).contacts.get(id).map(contact_json)
    }

    pub fn contact_count(&self) -> usize {
        lock(&self.data).contacts.len()
    }

    /// A conversation as `GET …/conversations/{id}` answers it (the `conversation` part).
    pub fn conversation(&self, id: &str) -> Option<Value> {
        lock(&self.data)
            .conversations
            .get(id)
            .map(conversation_json)
    }

    pub fn conversation_count(&self) -> usize {
        lock(&self.data).conversations.len()
    }

    /// Every message of a conversation, oldest first.
    pub fn messages(&self, conversation_id: &str) -> Vec<Value> {
        lock(&self.data)
            .messages
            .values()
            .filter(|m| m.conversation_id == conversation_id)
            .map(message_json)
            .collect()
    }

    /// Whether the request carries the key the way the routes file says it is sent.
    fn authenticate(&self, request: &SandboxRequest) -> CcResult<()> {
        let key = &self.credentials.api_key;
        let secret = &self.credentials.api_secret;
        let (name, expected) = match &self.auth {
            AuthScheme::Header(name) => (name.clone(), key.clone()),
            AuthScheme::Bearer => (http::header::AUTHORIZATION, format!("Bearer {key}")),
            AuthScheme::Token => (http::header::AUTHORIZATION, format!("token {key}:{secret}")),
            AuthScheme::Basic => {
                use base64::Engine;
                let pair = format!("{key}:{secret}");
                (
                    http::header::AUTHORIZATION,
                    format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD.encode(pair)
                    ),
                )
            }
        };
        let given = request.headers.get(&name).map(HeaderValue::as_bytes);
        if key.is_empty() || given != Some(expected.as_bytes()) {
            return Err(forbidden());
        }
        // Keys are per chatbot: another chatbot's resources are out of this key's reach.
        match request.param("chatbot_id") {
            Some(chatbot) if chatbot != seed::CHATBOT_ID => Err(forbidden()),
            _ => Ok(()),
        }
    }

    fn dispatch(&self, endpoint: &str, request: &SandboxRequest) -> CcResult<(StatusCode, Value)> {
        let query = Query::parse(request.query.as_deref());
        let contact_id = request.param("contact_id").unwrap_or_default();
        let conversation_id = request.param("conversation_id").unwrap_or_default();
        let ok = |value: Value| (StatusCode::OK, value);
        let created = |value: Value| (StatusCode::CREATED, value);
        let mut data = lock(&self.data);
        Ok(match endpoint {
            "contacts.list" => ok(data.list_contacts(&query)?),
            "contacts.search" => ok(data.search_contacts(&query)?),
            "contacts.create" => created(data.create_contact(&json_body(request)?)?),
            "contacts.get" => ok(json!({ "contact": contact_json(data.contact(contact_id)?) })),
            "contacts.update" => ok(data.update_contact(contact_id, &json_body(request)?)?),
            "contacts.delete" => ok(data.delete_contact(contact_id)?),
            "conversations.list" => ok(data.list_conversations(&query)),
            "conversations.get" => ok(json!({
                "conversation": conversation_json(data.conversation(conversation_id)?)
            })),
            "conversations.create" => created(data.create_conversation(&json_body(request)?)?),
            "conversations.update" => {
                ok(data.update_conversation(conversation_id, &json_body(request)?)?)
            }
            "conversations.delete" => ok(data.delete_conversation(conversation_id)?),
            "messages.list" => ok(data.list_messages(conversation_id)?),
            "messages.get" => ok(data.get_message(
                conversation_id,
                request.param("message_id").unwrap_or_default(),
            )?),
            "messages.send" => created(data.send_message(&json_body(request)?)?),
            other => return Err(not_found(&format!("Endpoint {other}"))),
        })
    }
}

impl VendorSimulator for ChatCaptainState {
    fn handle(
        self: Arc<Self>,
        endpoint: &'static str,
        request: SandboxRequest,
    ) -> BoxFuture<'static, Response> {
        Box::pin(async move {
            let result = self
                .authenticate(&request)
                .and_then(|()| self.dispatch(endpoint, &request));
            match result {
                Ok((status, body)) => json_response(status, &body),
                Err(error) => error.into_response(),
            }
        })
    }

    fn error(&self, status: StatusCode, message: &str) -> Response {
        error_response(status, message)
    }

    /// A 200 cut short inside a conversations list.
    fn malformed(&self) -> Response {
        json_bytes_response(StatusCode::OK, r#"{"conversations":[{"id":"#)
    }
}

// ----- JSON shapes -----------------------------------------------------------------------------

fn opt(value: &Option<String>) -> Value {
    value.clone().map(Value::String).unwrap_or(Value::Null)
}

fn contact_json(c: &Contact) -> Value {
    let mut out = json!({
        "id": c.id,
        "name": opt(&c.name),
        "language": c.language,
        "email": opt(&c.email),
        "phoneNumber": opt(&c.phone_number),
        "whatsappId": opt(&c.whatsapp_id),
        "webId": opt(&c.web_id),
        "instagramId": opt(&c.instagram_id),
        "facebookId": opt(&c.facebook_id),
        "telegramId": opt(&c.telegram_id),
        "providerId": opt(&c.provider_id),
        "avatar": opt(&c.avatar),
        "variables": c.variables,
        "created": js_iso_string(c.created),
        "updated": js_iso_string(c.updated),
    });
    if let Some(object) = out.as_object_mut() {
        if let Some(address) = &c.address {
            object.insert("address".into(), address.clone());
        }
        if let Some(ids) = &c.organization_ids {
            object.insert("organizationIds".into(), ids.clone());
        }
    }
    out
}

fn conversation_json(c: &Conversation) -> Value {
    json!({
        "id": c.id,
        "contactId": c.contact_id,
        "channelId": c.channel_id,
        "channelType": c.channel_type,
        "archived": c.archived,
        "name": c.name,
        "created": js_iso_string(c.created),
        "updated": js_iso_string(c.updated),
    })
}

fn message_json(m: &Message) -> Value {
    let (kind, content) = match &m.content {
        Content::Text(text) => ("text", json!({ "text": text })),
        Content::Template(text) => ("template", json!({ "text": text })),
        Content::File(url, name, mime, size) => (
            "file",
            json!({ "file": { "url": url, "name": name, "mimeType": mime, "size": size } }),
        ),
    };
    json!({
        "id": m.id,
        "conversationId": m.conversation_id,
        "sender": m.sender.as_str(),
        "type": kind,
        "status": m.status,
        "content": content,
        "outgoing": m.sender != Sender::User,
        "created": js_iso_string(m.created),
    })
}

// ----- the chatbot's data --------------------------------------------------------------------

/// Contact fields a create takes (and a PATCH, plus the PATCH-only ones).
const CONTACT_CREATE_FIELDS: [&str; 11] = [
    "language",
    "name",
    "email",
    "phoneNumber",
    "whatsappId",
    "webId",
    "instagramId",
    "facebookId",
    "telegramId",
    "providerId",
    "avatar",
];

impl Data {
    fn tick(&mut self) -> Millis {
        self.clock = unix_now(Duration::from_millis(1)).max(self.clock + 1);
        self.clock
    }

    fn contact(&self, id: &str) -> CcResult<&Contact> {
        self.contacts.get(id).ok_or_else(|| not_found("Contact"))
    }

    fn conversation(&self, id: &str) -> CcResult<&Conversation> {
        self.conversations
            .get(id)
            .ok_or_else(|| not_found("Conversation"))
    }

    /// Contacts, newest first.
    fn contacts_newest_first(&self) -> Vec<&Contact> {
        let mut contacts: Vec<&Contact> = self.contacts.values().collect();
        contacts.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| b.id.cmp(&a.id)));
        contacts
    }

    fn list_contacts(&self, query: &Query) -> CcResult<Value> {
        let limit = query_int(query, "limit", 1..=MAX_LIMIT)?.unwrap_or(DEFAULT_LIMIT);
        let before = match query.get("pageToken").filter(|t| !t.is_empty()) {
            Some(token) => Some(parse_time(token).ok_or_else(invalid)?),
            None => None,
        };
        let contacts: Vec<Value> = self
            .contacts_newest_first()
            .into_iter()
            .filter(|c| before.is_none_or(|b| c.created < b))
            .take(limit)
            .map(contact_json)
            .collect();
        Ok(json!({ "contacts": contacts }))
    }

    fn search_contacts(&self, query: &Query) -> CcResult<Value> {
        let term = query
            .get("query")
            .map(str::trim)
            .filter(|q| !q.is_empty())
            .ok_or_else(invalid)?
            .to_lowercase();
        let page = query_int(query, "page", 1..=usize::MAX)?.ok_or_else(invalid)?;
        let size = query_int(query, "pageSize", 1..=MAX_SEARCH_PAGE_SIZE)?.ok_or_else(invalid)?;
        let hidden: Vec<&str> = query
            .get("hiddenHits")
            .map(|h| h.split(',').map(str::trim).collect())
            .unwrap_or_default();
        let matches = |c: &Contact| {
            [
                &c.name,
                &c.email,
                &c.phone_number,
                &c.whatsapp_id,
                &c.web_id,
            ]
            .into_iter()
            .flatten()
            .any(|v| v.to_lowercase().contains(&term))
        };
        let found: Vec<&Contact> = self
            .contacts_newest_first()
            .into_iter()
            .filter(|c| !hidden.contains(&c.id.as_str()) && matches(c))
            .collect();
        let hits: Vec<Value> = found
            .iter()
            .skip((page - 1).saturating_mul(size))
            .take(size)
            .map(|c| json!({ "document": contact_json(c), "highlights": [] }))
            .collect();
        Ok(json!({
            "results": {
                "facetCounts": [],
                "found": found.len(),
                "outOf": self.contacts.len(),
                "page": page,
                "searchTimeMs": 1,
                "hits": hits,
            }
        }))
    }

    fn new_contact_id(&mut self) -> String {
        self.next_contact += 1;
        format!("ctc_{:04}", self.next_contact)
    }

    fn create_contact(&mut self, body: &Map<String, Value>) -> CcResult<Value> {
        let dto = Dto::new(body, &CONTACT_CREATE_FIELDS)?;
        let language = dto.required("language")?;
        let email = dto.string("email")?;
        if email.as_deref().is_some_and(|e| !valid_email(e)) {
            return Err(invalid());
        }
        let whatsapp_id = dto.string("whatsappId")?;
        if whatsapp_id
            .as_deref()
            .is_some_and(|w| !valid_whatsapp_id(w))
        {
            return Err(invalid());
        }
        let now = self.tick();
        let contact = Contact {
            id: self.new_contact_id(),
            name: dto.string("name")?,
            language,
            email,
            phone_number: dto.string("phoneNumber")?,
            whatsapp_id,
            web_id: dto.string("webId")?,
            instagram_id: dto.string("instagramId")?,
            facebook_id: dto.string("facebookId")?,
            telegram_id: dto.string("telegramId")?,
            provider_id: dto.string("providerId")?,
            avatar: dto.string("avatar")?,
            created: now,
            updated: now,
            ..Default::default()
        };
        let answer = json!({ "contact": contact_json(&contact) });
        self.contacts.insert(contact.id.clone(), contact);
        Ok(answer)
    }

    fn update_contact(&mut self, id: &str, body: &Map<String, Value>) -> CcResult<Value> {
        let fields = update_fields(body, &["contact", "updateContact"])?;
        let mut allowed = CONTACT_CREATE_FIELDS.to_vec();
        allowed.extend(["variables", "address", "organizationIds"]);
        let dto = Dto::new(fields, &allowed)?;
        // Validate everything before changing anything.
        let email = dto.nullable("email")?;
        if let Some(Some(e)) = &email {
            if !valid_email(e) {
                return Err(invalid());
            }
        }
        let whatsapp_id = dto.nullable("whatsappId")?;
        if let Some(Some(w)) = &whatsapp_id {
            if !valid_whatsapp_id(w) {
                return Err(invalid());
            }
        }
        let language = match dto.nullable("language")? {
            Some(None) => return Err(invalid()),
            Some(Some(l)) if l.trim().is_empty() => return Err(invalid()),
            other => other.flatten(),
        };
        let variables = match fields.get("variables") {
            None => None,
            Some(Value::Object(map)) => Some(map.clone()),
            Some(_) => return Err(invalid()),
        };
        let address = match fields.get("address") {
            None => None,
            Some(v @ (Value::Object(_) | Value::Null)) => Some(v.clone()),
            Some(_) => return Err(invalid()),
        };
        let organization_ids = match fields.get("organizationIds") {
            None => None,
            Some(Value::Array(ids)) if ids.iter().all(Value::is_string) => {
                Some(Value::Array(ids.clone()))
            }
            Some(_) => return Err(invalid()),
        };
        let strings = [
            ("name", dto.nullable("name")?),
            ("phoneNumber", dto.nullable("phoneNumber")?),
            ("webId", dto.nullable("webId")?),
            ("instagramId", dto.nullable("instagramId")?),
            ("facebookId", dto.nullable("facebookId")?),
            ("telegramId", dto.nullable("telegramId")?),
            ("providerId", dto.nullable("providerId")?),
            ("avatar", dto.nullable("avatar")?),
            ("email", email),
            ("whatsappId", whatsapp_id),
        ];
        self.contact(id)?;
        let now = self.tick();
        let contact = self
            .contacts
            .get_mut(id)
            .ok_or_else(|| not_found("Contact"))?;
        for (key, change) in strings {
            let Some(value) = change else { continue };
            let slot = match key {
                "name" => &mut contact.name,
                "phoneNumber" => &mut contact.phone_number,
                "webId" => &mut contact.web_id,
                "instagramId" => &mut contact.instagram_id,
                "facebookId" => &mut contact.facebook_id,
                "telegramId" => &mut contact.telegram_id,
                "providerId" => &mut contact.provider_id,
                "avatar" => &mut contact.avatar,
                "email" => &mut contact.email,
                _ => &mut contact.whatsapp_id,
            };
            *slot = value;
        }
        if let Some(language) = language {
            contact.language = language;
        }
        if let Some(variables) = variables {
            contact.variables = variables;
        }
        if let Some(address) = address {
            contact.address = (!address.is_null()).then_some(address);
        }
        if let Some(ids) = organization_ids {
            contact.organization_ids = Some(ids);
        }
        contact.updated = now;
        Ok(json!({ "contact": contact_json(contact) }))
    }

    fn delete_contact(&mut self, id: &str) -> CcResult<Value> {
        self.contacts
            .remove(id)
            .ok_or_else(|| not_found("Contact"))?;
        Ok(json!({ "deleted": true }))
    }

    fn list_conversations(&self, query: &Query) -> Value {
        let contact = query.get("contactId").filter(|c| !c.is_empty());
        let channel = query.get("channelId").filter(|c| !c.is_empty());
        let mut conversations: Vec<&Conversation> = self
            .conversations
            .values()
            .filter(|c| contact.is_none_or(|id| c.contact_id == id))
            .filter(|c| channel.is_none_or(|id| c.channel_id == id))
            .collect();
        conversations.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| b.id.cmp(&a.id)));
        let conversations: Vec<Value> = conversations.into_iter().map(conversation_json).collect();
        json!({ "conversations": conversations })
    }

    /// The inbox call: find or create the contact, start an active conversation.
    fn create_conversation(&mut self, body: &Map<String, Value>) -> CcResult<Value> {
        let dto = Dto::new(body, &["name", "channelId", "email", "phone"])?;
        let name = dto.required("name")?;
        let channel = channel(&dto.required("channelId")?).ok_or_else(invalid)?;
        let email = dto.string("email")?.filter(|e| !e.trim().is_empty());
        if email.as_deref().is_some_and(|e| !valid_email(e)) {
            return Err(invalid());
        }
        let phone = dto.string("phone")?.filter(|p| !p.trim().is_empty());
        let phone_digits = phone.as_deref().map(digits).filter(|d| !d.is_empty());
        let existing = self.contacts.values().find(|c| {
            let by_email = email.as_deref().is_some_and(|e| {
                c.email
                    .as_deref()
                    .is_some_and(|ce| ce.eq_ignore_ascii_case(e))
            });
            let by_phone = phone_digits.as_deref().is_some_and(|d| {
                c.phone_number.as_deref().map(digits).as_deref() == Some(d)
                    || c.whatsapp_id.as_deref() == Some(d)
            });
            by_email || by_phone
        });
        let existing = existing.map(|c| c.id.clone());
        let now = self.tick();
        let contact_id = match existing {
            Some(id) => id,
            None => {
                let whatsapp_id =
                    phone_digits.filter(|d| channel.kind == "whatsapp" && valid_whatsapp_id(d));
                let contact = Contact {
                    id: self.new_contact_id(),
                    name: Some(name.clone()),
                    language: seed::LANGUAGE.to_owned(),
                    email,
                    phone_number: phone,
                    whatsapp_id,
                    created: now,
                    updated: now,
                    ..Default::default()
                };
                let id = contact.id.clone();
                self.contacts.insert(id.clone(), contact);
                id
            }
        };
        self.next_conversation += 1;
        let conversation = Conversation {
            id: format!("cnv_{:04}", self.next_conversation),
            contact_id,
            channel_id: channel.id,
            channel_type: channel.kind,
            archived: false,
            name,
            created: now,
            updated: now,
        };
        let id = conversation.id.clone();
        self.conversations.insert(id.clone(), conversation);
        Ok(json!({ "conversationId": id }))
    }

    fn update_conversation(&mut self, id: &str, body: &Map<String, Value>) -> CcResult<Value> {
        let fields = update_fields(body, &["conversation", "updateConversation"])?;
        let dto = Dto::new(fields, &["archived", "name"])?;
        let archived = dto.boolean("archived")?;
        let name = dto.string("name")?;
        self.conversation(id)?;
        let now = self.tick();
        let conversation = self
            .conversations
            .get_mut(id)
            .ok_or_else(|| not_found("Conversation"))?;
        if let Some(archived) = archived {
            conversation.archived = archived;
        }
        if let Some(name) = name {
            conversation.name = name;
        }
        conversation.updated = now;
        Ok(json!({ "conversation": conversation_json(conversation) }))
    }

    fn delete_conversation(&mut self, id: &str) -> CcResult<Value> {
        self.conversations
            .remove(id)
            .ok_or_else(|| not_found("Conversation"))?;
        self.messages.retain(|_, m| m.conversation_id != id);
        Ok(json!({ "deleted": true }))
    }

    fn list_messages(&self, conversation_id: &str) -> CcResult<Value> {
        self.conversation(conversation_id)?;
        let messages: Vec<Value> = self
            .messages
            .values()
            .filter(|m| m.conversation_id == conversation_id)
            .map(message_json)
            .collect();
        Ok(json!({ "messages": messages }))
    }

    fn get_message(&self, conversation_id: &str, message_id: &str) -> CcResult<Value> {
        self.conversation(conversation_id)?;
        self.messages
            .get(message_id)
            .filter(|m| m.conversation_id == conversation_id)
            .map(|m| json!({ "message": message_json(m) }))
            .ok_or_else(|| not_found("Message"))
    }

    /// The inbox call: an agent message, text or an uploaded attachment.
    fn send_message(&mut self, body: &Map<String, Value>) -> CcResult<Value> {
        let dto = Dto::new(body, &["conversationId", "text", "attachmentRef"])?;
        let conversation_id = dto.required("conversationId")?;
        let text = dto.string("text")?.filter(|t| !t.trim().is_empty());
        let reference = dto
            .string("attachmentRef")?
            .filter(|r| !r.trim().is_empty());
        let content = match (text, reference) {
            (_, Some(reference)) => {
                let (_, url, name, mime, size) = ATTACHMENTS
                    .iter()
                    .find(|a| a.0 == reference)
                    .ok_or_else(invalid)?;
                Content::File(
                    (*url).to_owned(),
                    (*name).to_owned(),
                    (*mime).to_owned(),
                    *size,
                )
            }
            (Some(text), None) => Content::Text(text),
            (None, None) => return Err(invalid()),
        };
        self.conversation(&conversation_id)?;
        let now = self.tick();
        let message = self.push_message(&conversation_id, Sender::Agent, "sent", content, now);
        if let Some(conversation) = self.conversations.get_mut(&conversation_id) {
            conversation.updated = now;
        }
        Ok(json!({ "message": message_json(&message) }))
    }

    fn push_message(
        &mut self,
        conversation_id: &str,
        sender: Sender,
        status: &'static str,
        content: Content,
        created: Millis,
    ) -> Message {
        self.next_message += 1;
        let message = Message {
            id: format!("msg_{:04}", self.next_message),
            conversation_id: conversation_id.to_owned(),
            sender,
            status,
            content,
            created,
        };
        self.messages.insert(message.id.clone(), message.clone());
        message
    }

    // ----- seed ------------------------------------------------------------------------------

    fn seeded() -> Data {
        let mut data = Data {
            contacts: BTreeMap::new(),
            conversations: BTreeMap::new(),
            messages: BTreeMap::new(),
            next_contact: 0,
            next_conversation: 0,
            next_message: 0,
            clock: 0,
        };
        let first = at(2025, 1, 6, 9, 0);
        let hour = 3_600_000;
        /// (name, language, email, phoneNumber, whatsappId) of the named seed contacts.
        type Named = (
            &'static str,
            &'static str,
            Option<&'static str>,
            Option<&'static str>,
            Option<&'static str>,
        );
        let named: [Named; 5] = [
            (
                "Anna Schmidt",
                "de",
                Some(seed::CONTACT_ANNA_EMAIL),
                Some(seed::CONTACT_ANNA_PHONE),
                Some("4917612345601"),
            ),
            (
                "Jonas Weber",
                "de",
                Some("jonas.weber@example.de"),
                Some("030 1234567"),
                None,
            ),
            ("Lena Fischer", "de", None, None, Some("4915112345603")),
            (
                "Mehmet Yilmaz",
                "de",
                Some("mehmet@example.com"),
                None,
                None,
            ),
            (
                "Sophie Martin",
                "fr",
                Some("sophie.martin@example.fr"),
                None,
                None,
            ),
        ];
        for n in 1..=seed::CONTACT_COUNT {
            let created = first + hour * i64::try_from(n - 1).unwrap_or(0);
            let mut contact = Contact {
                id: data.new_contact_id(),
                language: seed::LANGUAGE.to_owned(),
                created,
                updated: created,
                ..Default::default()
            };
            match named.get(n - 1) {
                Some((name, language, email, phone, whatsapp)) => {
                    contact.name = Some((*name).to_owned());
                    contact.language = (*language).to_owned();
                    contact.email = email.map(str::to_owned);
                    contact.phone_number = phone.map(str::to_owned);
                    contact.whatsapp_id = whatsapp.map(str::to_owned);
                }
                None => {
                    contact.name = Some(format!("Kunde {n:02}"));
                    contact.email = Some(format!("kunde{n:02}@example.com"));
                }
            }
            data.contacts.insert(contact.id.clone(), contact);
        }
        if let Some(anna) = data.contacts.get_mut(seed::CONTACT_ANNA_ID) {
            anna.avatar = Some("https://files.chatcaptain.example/avatars/anna.png".into());
            anna.variables = json!({"kundennummer": "K-4711", "newsletter": true})
                .as_object()
                .cloned()
                .unwrap_or_default();
            anna.updated = at(2025, 3, 10, 8, 0);
        }
        if let Some(mehmet) = data.contacts.get_mut(seed::CONTACT_MEHMET_ID) {
            mehmet.web_id = Some("web_7f3a9c".into());
        }
        if let Some(sophie) = data.contacts.get_mut(seed::CONTACT_SOPHIE_ID) {
            sophie.instagram_id = Some("17841400123456789".into());
        }

        use Content::{File, Template, Text};
        use Sender::{Agent, Bot, User};
        let text = |s: &str| Text(s.to_owned());
        type Seeded = (Sender, &'static str, Content);
        let conversations: [(&str, &str, bool, &str, Vec<Seeded>); 5] = [
            (
                seed::CONTACT_ANNA_ID,
                seed::CHANNEL_WHATSAPP_ID,
                false,
                "Anna Schmidt",
                vec![
                    (
                        User,
                        "received",
                        text("Hallo, wo ist meine Bestellung 4711?"),
                    ),
                    (Bot, "delivered", text("Einen Moment, ich sehe nach.")),
                    (
                        Agent,
                        "read",
                        text("Hallo Anna, Ihr Paket ist unterwegs und kommt morgen an."),
                    ),
                    (
                        User,
                        "received",
                        File(
                            "https://files.chatcaptain.example/bot_demo_captain/paket.jpg".into(),
                            "paket.jpg".into(),
                            "image/jpeg".into(),
                            48_213,
                        ),
                    ),
                ],
            ),
            (
                seed::CONTACT_JONAS_ID,
                seed::CHANNEL_WEB_ID,
                true,
                "Jonas Weber",
                vec![
                    (User, "received", text("Wie lange habe ich Rückgaberecht?")),
                    (
                        Bot,
                        "read",
                        text("Sie können Artikel 30 Tage lang zurückgeben."),
                    ),
                    (
                        Bot,
                        "read",
                        Template("Wie zufrieden waren Sie mit unserem Service?".into()),
                    ),
                ],
            ),
            (
                seed::CONTACT_LENA_ID,
                seed::CHANNEL_WHATSAPP_ID,
                false,
                "Lena Fischer",
                vec![
                    (
                        User,
                        "received",
                        text("Kann ich meine Adresse noch ändern?"),
                    ),
                    (
                        Agent,
                        "delivered",
                        text("Ja, schicken Sie mir bitte die neue Adresse."),
                    ),
                ],
            ),
            (
                seed::CONTACT_MEHMET_ID,
                seed::CHANNEL_WEB_ID,
                true,
                "Mehmet Yilmaz",
                vec![
                    (User, "received", text("Do you ship to Turkey?")),
                    (
                        Bot,
                        "read",
                        text("Yes, we ship to Turkey within 5 working days."),
                    ),
                ],
            ),
            (
                seed::CONTACT_ANNA_ID,
                seed::CHANNEL_WEB_ID,
                false,
                "Anna Schmidt",
                vec![
                    (User, "received", text("Gibt es den Rucksack auch in Blau?")),
                    (Bot, "sent", text("Ja, in Blau und in Grün.")),
                ],
            ),
        ];
        for (n, (contact_id, channel_id, archived, name, messages)) in
            conversations.into_iter().enumerate()
        {
            let start = at(2025, 3, 10, 8, 15) + i64::try_from(n).unwrap_or(0) * 86_400_000;
            let channel = channel(channel_id).unwrap_or(&CHANNELS[0]);
            data.next_conversation += 1;
            let id = format!("cnv_{:04}", data.next_conversation);
            let mut last = start;
            for (i, (sender, status, content)) in messages.into_iter().enumerate() {
                last = start + i64::try_from(i).unwrap_or(0) * 5 * 60_000;
                data.push_message(&id, sender, status, content, last);
            }
            data.conversations.insert(
                id.clone(),
                Conversation {
                    id,
                    contact_id: contact_id.to_owned(),
                    channel_id: channel.id,
                    channel_type: channel.kind,
                    archived,
                    name: name.to_owned(),
                    created: start,
                    updated: last,
                },
            );
        }
        data
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const KEY: &str = "cc-sandbox-key";

    /// The repository's routes/chatcaptain.yaml, compiled, with `edit` applied to the text.
    pub(crate) fn routes_with(edit: impl Fn(String) -> String) -> VendorRoutes {
        crate::sandbox::tests::repo_routes("chatcaptain", edit)
    }

    fn fresh() -> Arc<ChatCaptainState> {
        Arc::new(ChatCaptainState::new(
            &routes_with(|t| t),
            Credentials::new(KEY, ""),
        ))
    }

    struct Call {
        header: Option<(&'static str, &'static str)>,
        chatbot: &'static str,
        params: Vec<(&'static str, String)>,
        query: Option<String>,
        body: Option<Value>,
    }

    impl Call {
        fn new() -> Self {
            Call {
                header: Some(("x-chatcaptain-key", KEY)),
                chatbot: seed::CHATBOT_ID,
                params: Vec::new(),
                query: None,
                body: None,
            }
        }
        fn query(mut self, q: &str) -> Self {
            self.query = Some(q.to_owned());
            self
        }
        fn body(mut self, body: Value) -> Self {
            self.body = Some(body);
            self
        }
        fn param(mut self, name: &'static str, value: &str) -> Self {
            self.params.push((name, value.to_owned()));
            self
        }
    }

    async fn call(
        state: &Arc<ChatCaptainState>,
        endpoint: &'static str,
        call: Call,
    ) -> (StatusCode, Value) {
        let mut headers = http::HeaderMap::new();
        if let Some((name, value)) = call.header {
            headers.insert(name, HeaderValue::from_static(value));
        }
        if call.body.is_some() {
            headers.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        let mut params = vec![("chatbot_id".to_owned(), call.chatbot.to_owned())];
        params.extend(call.params.into_iter().map(|(k, v)| (k.to_owned(), v)));
        let request = SandboxRequest {
            method: http::Method::GET,
            headers,
            params,
            query: call.query,
            body: call
                .body
                .map(|b| axum::body::Bytes::from(b.to_string()))
                .unwrap_or_default(),
        };
        let response = state.clone().handle(endpoint, request).await;
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn a_wrong_missing_or_foreign_key_is_insufficient_permissions() {
        let state = fresh();
        for bad in [
            Call {
                header: None,
                ..Call::new()
            },
            Call {
                header: Some(("x-chatcaptain-key", "wrong")),
                ..Call::new()
            },
            Call {
                header: Some(("x-api-key", KEY)),
                ..Call::new()
            },
            Call {
                chatbot: "bot_someone_else",
                ..Call::new()
            },
        ] {
            let (status, body) = call(&state, "contacts.list", bad).await;
            assert_eq!(status, StatusCode::FORBIDDEN);
            assert_eq!(body, json!({"error": "Insufficient permissions."}));
        }
        let (status, body) = call(&state, "contacts.list", Call::new()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["contacts"].as_array().unwrap().len(), DEFAULT_LIMIT);
    }

    #[tokio::test]
    async fn the_key_header_follows_the_routes_file() {
        let routes = routes_with(|t| t.replace("header: x-chatcaptain-key", "header: x-other-key"));
        let state = Arc::new(ChatCaptainState::new(&routes, Credentials::new(KEY, "")));
        let (status, _) = call(&state, "contacts.list", Call::new()).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let moved = Call {
            header: Some(("x-other-key", KEY)),
            ..Call::new()
        };
        let (status, _) = call(&state, "contacts.list", moved).await;
        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test]
    async fn required_fields_and_body_shapes_are_enforced() {
        let state = fresh();
        let cases = [
            (
                "contacts.create",
                Call::new().body(json!({"name": "No language"})),
            ),
            (
                "contacts.create",
                Call::new().body(json!({"language": "de", "phone": "+491"})),
            ),
            (
                "contacts.create",
                Call::new().body(json!({"language": "de", "email": "not-an-email"})),
            ),
            (
                "contacts.update",
                Call::new()
                    .param("contact_id", seed::CONTACT_ANNA_ID)
                    .body(json!({"contact": {"name": "wrapped"}, "name": "and flat"})),
            ),
            (
                "conversations.update",
                Call::new()
                    .param("conversation_id", seed::CONVERSATION_ANNA_ID)
                    .body(json!({"conversation": true})),
            ),
            (
                "conversations.update",
                Call::new()
                    .param("conversation_id", seed::CONVERSATION_ANNA_ID)
                    .body(json!({"data": {"archived": true}})),
            ),
            (
                "conversations.create",
                Call::new().body(json!({"name": "A", "channelId": "chn_nowhere"})),
            ),
            (
                "messages.send",
                Call::new().body(json!({"conversationId": seed::CONVERSATION_ANNA_ID})),
            ),
            (
                "messages.send",
                Call::new().body(json!({"conversationId": "cnv_0001", "attachmentRef": "nope"})),
            ),
            ("contacts.search", Call::new().query("query=anna")),
            ("contacts.list", Call::new().query("limit=0")),
            ("contacts.list", Call::new().query("pageToken=yesterday")),
        ];
        for (endpoint, request) in cases {
            let (status, body) = call(&state, endpoint, request).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{endpoint}: {body}");
            assert_eq!(body, json!({"error": "Invalid input data."}));
        }
        let (status, body) = call(
            &state,
            "conversations.get",
            Call::new().param("conversation_id", "cnv_9999"),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body, json!({"error": "Conversation not found."}));
        // Nothing above changed the seed.
        assert_eq!(state.contact_count(), seed::CONTACT_COUNT);
        assert_eq!(state.messages(seed::CONVERSATION_ANNA_ID).len(), 4);
    }

    /// ChatCaptain's reference shows no body for its updates: every plausible envelope is
    /// taken — flat, wrapped in the object's name, wrapped in `update<Object>`.
    #[tokio::test]
    async fn updates_take_every_plausible_body_envelope() {
        let state = fresh();
        for (archived, body) in [
            (true, json!({"archived": true})),
            (false, json!({"conversation": {"archived": false}})),
            (true, json!({"updateConversation": {"archived": true}})),
        ] {
            let (status, answer) = call(
                &state,
                "conversations.update",
                Call::new()
                    .param("conversation_id", seed::CONVERSATION_ANNA_ID)
                    .body(body.clone()),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{body}: {answer}");
            assert_eq!(answer["conversation"]["archived"], archived, "{body}");
            let stored = state.conversation(seed::CONVERSATION_ANNA_ID).unwrap();
            assert_eq!(stored["archived"], archived, "{body}");
        }
        for (name, body) in [
            ("Flat", json!({"name": "Flat"})),
            ("Wrapped", json!({"contact": {"name": "Wrapped"}})),
            ("Dto", json!({"updateContact": {"name": "Dto"}})),
        ] {
            let (status, answer) = call(
                &state,
                "contacts.update",
                Call::new()
                    .param("contact_id", seed::CONTACT_ANNA_ID)
                    .body(body.clone()),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{body}: {answer}");
            assert_eq!(answer["contact"]["name"], name, "{body}");
        }
    }

    #[tokio::test]
    async fn contacts_page_by_created_date_newest_first() {
        let state = fresh();
        let mut seen = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..4 {
            let query = match &token {
                Some(t) => format!("limit=10&pageToken={t}"),
                None => "limit=10".to_owned(),
            };
            let (status, body) = call(&state, "contacts.list", Call::new().query(&query)).await;
            assert_eq!(status, StatusCode::OK);
            let page = body["contacts"].as_array().unwrap().clone();
            if page.is_empty() {
                break;
            }
            token = page
                .last()
                .map(|c| c["created"].as_str().unwrap().to_owned());
            seen.extend(
                page.into_iter()
                    .map(|c| c["id"].as_str().unwrap().to_owned()),
            );
        }
        assert_eq!(seen.len(), seed::CONTACT_COUNT);
        assert_eq!(seen[0], "ctc_0030");
        assert_eq!(seen.last().map(String::as_str), Some(seed::CONTACT_ANNA_ID));
        let contact = state.contact(seed::CONTACT_ANNA_ID).unwrap();
        assert_eq!(contact["created"], seed::FIRST_CONTACT_CREATED);
    }

    #[tokio::test]
    async fn search_pages_by_number() {
        let state = fresh();
        let (status, body) = call(
            &state,
            "contacts.search",
            Call::new().query("query=KUNDE&page=2&pageSize=10"),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let results = &body["results"];
        assert_eq!(results["found"], 25);
        assert_eq!(results["page"], 2);
        assert_eq!(results["hits"].as_array().unwrap().len(), 10);
        assert_eq!(results["hits"][0]["document"]["id"], "ctc_0020");
    }

    #[tokio::test]
    async fn writes_change_state_and_answer_201_for_creates() {
        let state = fresh();
        let (status, body) = call(
            &state,
            "conversations.create",
            Call::new().body(json!({
                "name": "Anna Schmidt",
                "channelId": seed::CHANNEL_WEB_ID,
                "email": "ANNA.SCHMIDT@example.de"
            })),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
        let id = body["conversationId"].as_str().unwrap().to_owned();
        assert_eq!(id, "cnv_0006");
        assert_eq!(
            state.conversation(&id).unwrap()["contactId"],
            seed::CONTACT_ANNA_ID,
            "the contact is found by email"
        );
        let (status, body) = call(
            &state,
            "messages.send",
            Call::new().body(json!({"conversationId": id, "attachmentRef": seed::ATTACHMENT_REF})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(body["message"]["sender"], "agent");
        assert_eq!(
            body["message"]["content"]["file"]["mimeType"],
            "application/pdf"
        );
        let (status, body) = call(
            &state,
            "conversations.update",
            Call::new()
                .param("conversation_id", &id)
                .body(json!({"conversation": {"archived": true}})),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["conversation"]["archived"], true);
        let (status, body) = call(
            &state,
            "contacts.update",
            Call::new()
                .param("contact_id", seed::CONTACT_ANNA_ID)
                .body(json!({"contact": {"email": null, "variables": {"a": 1}}})),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["contact"]["email"], Value::Null);
        assert_eq!(body["contact"]["variables"], json!({"a": 1}));
        let (status, body) = call(
            &state,
            "conversations.delete",
            Call::new().param("conversation_id", &id),
        )
        .await;
        assert_eq!((status, body), (StatusCode::OK, json!({"deleted": true})));
        assert!(state.messages(&id).is_empty());
        state.reset();
        assert_eq!(state.conversation_count(), seed::CONVERSATION_COUNT);
    }

    #[test]
    fn times_format_and_parse_like_javascript() {
        assert_eq!(
            js_iso_string(at(2025, 1, 6, 9, 0)),
            seed::FIRST_CONTACT_CREATED
        );
        assert_eq!(
            js_iso_string(at(2024, 2, 29, 23, 59) + 7),
            "2024-02-29T23:59:00.007Z"
        );
        assert_eq!(
            parse_time(seed::FIRST_CONTACT_CREATED),
            Some(at(2025, 1, 6, 9, 0))
        );
        assert_eq!(parse_time("2025-01-06"), Some(at(2025, 1, 6, 0, 0)));
        assert_eq!(
            parse_time("2025-01-06T10:00:00+01:00"),
            Some(at(2025, 1, 6, 9, 0))
        );
        assert_eq!(parse_time("2025-01-06T09:00Z"), Some(at(2025, 1, 6, 9, 0)));
        assert_eq!(
            parse_time("2025-01-06T09:00:00.5Z"),
            Some(at(2025, 1, 6, 9, 0) + 500)
        );
        assert_eq!(
            parse_time("2025-01-06T09:00:00.123456Z"),
            Some(at(2025, 1, 6, 9, 0) + 123)
        );
        for bad in [
            "",
            "yesterday",
            "2025-13-01",
            "2025-01-06T25:00:00Z",
            "2025-01-06T09",
            "1736154000000",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn seed_is_deterministic_and_consistent() {
        let state = fresh();
        assert_eq!(state.contact_count(), seed::CONTACT_COUNT);
        assert_eq!(state.conversation_count(), seed::CONVERSATION_COUNT);
        let archived = (1..=seed::CONVERSATION_COUNT)
            .filter(|n| state.conversation(&format!("cnv_{n:04}")).unwrap()["archived"] == true)
            .count();
        assert_eq!(archived, seed::ARCHIVED_COUNT);
        let messages = state.messages(seed::CONVERSATION_ANNA_ID);
        assert_eq!(messages.len(), 4);
        assert_eq!(messages[0]["id"], seed::MESSAGE_ANNA_FIRST_ID);
        assert_eq!(messages[1]["id"], seed::MESSAGE_BOT_ANSWER_ID);
        assert_eq!(messages[2]["id"], seed::MESSAGE_AGENT_REPLY_ID);
        assert_eq!(messages[3]["id"], seed::MESSAGE_ANNA_PHOTO_ID);
        let senders: Vec<_> = messages.iter().map(|m| m["sender"].clone()).collect();
        assert_eq!(
            senders,
            vec![json!("user"), json!("bot"), json!("agent"), json!("user")]
        );
        assert_eq!(
            state.messages(seed::CONVERSATION_JONAS_ID)[2]["id"],
            seed::MESSAGE_TEMPLATE_ID
        );
        assert_eq!(
            state.messages(seed::CONVERSATION_JONAS_ID)[2]["type"],
            "template"
        );
        let anna = state.contact(seed::CONTACT_ANNA_ID).unwrap();
        assert_eq!(anna["email"], seed::CONTACT_ANNA_EMAIL);
        assert_eq!(anna["phoneNumber"], seed::CONTACT_ANNA_PHONE);
        let again = fresh();
        assert_eq!(
            state.conversation(seed::CONVERSATION_MEHMET_ID),
            again.conversation(seed::CONVERSATION_MEHMET_ID)
        );
    }
}
