//! The Libredesk sandbox: an in-memory Libredesk (open-source helpdesk, Go server) that
//! enforces the real contract — the published OpenAPI document (`docs/vendors/libredesk.openapi.json`)
//! and, where that is silent or wrong, the Go server's handlers and models.
//!
//! # Contract, as enforced
//!
//! - **Auth** (`cmd/middlewares.go`): `Authorization: token <key>:<secret>` or
//!   `Authorization: Basic base64(<key>:<secret>)`, prefixes case-sensitive. A parsable header
//!   with wrong credentials → 401. A missing or unparsable header falls through to session
//!   auth: POST/PUT/DELETE → 403 `PermissionException` "csrf token mismatch", anything else
//!   → 401. The real middleware answers every 401 with `error_type` `GeneralException`.
//! - **Envelopes**: `{"status":"success","data":…}`; errors
//!   `{"status":"error","message":…,"data":null,"error_type":…}` with InputException 400,
//!   GeneralException 401/5xx, PermissionException 403, NotFoundException 404,
//!   ConflictException 409, DataException 422, RateLimitException 429, NetworkException 504.
//!   Every success is 200 (sends and creates included: the document lists 200 only).
//! - **Pagination**: `page` (1-based; <1 → 1), `page_size` (default 30, clamped to 100, the
//!   published maximum of every list); data =
//!   `{results, total, per_page, total_pages, page}`. The sandbox is stricter than the real
//!   server in one place: a non-numeric `page`/`page_size` is a 400 InputException (the real
//!   server silently uses the default), so a gateway bug surfaces.
//! - **IDs**: contacts by integer `id` (non-integer or ≤0 → 400, unknown → 404); conversations
//!   and messages by `uuid`. A string that is not a UUID makes Postgres fail the query, so
//!   the real server answers 500 GeneralException — the sandbox does too; an unknown but
//!   well-formed UUID → 404.
//! - **JSON bodies** must say `Content-Type: application/json`; an undecodable body → 400
//!   InputException, except `messages.send`, whose handler answers a decode failure with
//!   500 + InputException (sic).
//!
//! # Endpoints (routes-file names)
//!
//! | endpoint | behaviour |
//! |---|---|
//! | `contacts.list` | paged, id ascending (or `order_by` created_at/updated_at/first_name/last_name/email, `order` asc/desc); items have exactly the `ContactList` fields (no phone) |
//! | `contacts.search` | `query` ≥ 3 chars else 400; case-insensitive substring of email, first, last or full name, phone; plain array, at most 15, of exactly the `ContactSearchResult` fields `{created_at, first_name, last_name, email}` — no `id` |
//! | `contacts.get` | the full `Contact` shape |
//! | `contacts.update` | PUT `multipart/form-data` only (anything else → 500 GeneralException "Error parsing request", as fasthttp's `MultipartForm()` fails); full replace: `first_name` and `email` required (400), `last_name`, `phone_number`, `phone_number_country_code`, `avatar_url` replaced by what is sent — an omitted (or `"null"`) `avatar_url` deletes the avatar; a `files` part sets a new one; answers the updated contact |
//! | `conversations.list` | `GET …/all` paged (max 100); items have exactly the `ConversationListItem` fields (no contact id, assignee or tags; the contact a `ContactSummary`), `order_by` (`conversations.`-prefixed or bare: last_message_at (default), created_at, updated_at, waiting_since, status_id, priority_id), `order` (default DESC, nulls last), `filters` = JSON array of `{model, field, operator, value}` (or a `{logic, rules}` group) exactly like `dbutil`: model `conversations` with fields `status_id`, `priority_id`, `assigned_team_id`, `assigned_user_id`, `inbox_id`, or model `conversation_statuses` with `id`, `name` — so by status name: `{"model":"conversation_statuses","field":"name","operator":"equals","value":"Open"}` (case-sensitive); operators `equals`, `not equals`, `greater than`, `less than`, `set`, `not set`, `in` (value = JSON array in a string), and `contains`/`ilike`/`not contains` on `name`; `value` is always a JSON *string* (`"1"`). Anything else (e.g. `conversations.status`) → 400 |
//! | `conversations.get` | the full `Conversation` shape, with `contact` and `previous_conversations` |
//! | `conversations.create` | `{inbox_id, contact_email, first_name, last_name, content, initiator, subject, agent_id?, team_id?}` (`subject` and `last_name` required as in the published document, empty allowed); inbox must exist (404) and be an email inbox (400); contact found by e-mail (reused unchanged) or created; status Open; first message outgoing (`agent`) or incoming (`contact`); answers the conversation |
//! | `conversations.update_status` | `{status, snoozed_until?}`; statuses are the seeded names, case-sensitive (else 400); `Snoozed` needs `snoozed_until` as a **Go duration** (`"2h"`, `"1h30m"`), not a timestamp (400); answers `true` |
//! | `conversations.assign_user` / `assign_team` | `{assignee_id:int}` (missing/≤0 → 400, unknown agent/team → 404); assigning a team clears the user assignee; answers `true` |
//! | `conversations.unassign_user` / `unassign_team` | answers `true` |
//! | `conversations.update_priority` | `{priority}`: `Low`, `Medium`, `High` (the document's enum; `Urgent` → 400); answers `true` |
//! | `conversations.update_tags` | `{tags:[…], action?: "set"\|"add"\|"remove"}` (default set = replace); answers `true` |
//! | `messages.list` | paged, **newest first** (`ORDER BY m.created_at DESC` in the Go query); `private=true\|false` and repeated `type=incoming\|outgoing\|activity` filters |
//! | `messages.get` | the `Message` shape; a message of another conversation → 403 "Permission denied" |
//! | `media.upload` | `POST /api/v1/media` `multipart/form-data` with the file in part `files` (no file → 400 "File not found", over 20 MB → 400, not multipart → 500); stores it unattached and answers the `Media` object `{id, uuid, filename, content_type, size, url: <root>/uploads/<uuid>, model_id: null, …}` |
//! | `messages.send` | `{message (required), sender_type ("agent"\|"contact", required: missing → 400 "sender_type required"), private?, attachments?, to?, cc?, bcc?}` (`message` may be empty when `attachments` names media); answers 200 with the message: an agent reply is `type: outgoing, status: pending` (queued; stored as `sent` right after), a private note `outgoing/sent/private`, a contact message `incoming/received`; `attachments` must be uploaded media not yet on a message (else 400 "Attachment N not found"); the message's `attachments` then list them `{name, content_type, uuid, size, content_id, disposition, url}` |
//!
//! Like the real server, changes of status, priority, assignee and tags append an `activity`
//! message (private, `content_type: text`) to the conversation, so message lists show them
//! unless filtered with `type=`.
//!
//! # Seed data (deterministic; [`seed`] has the constants)
//!
//! - Inboxes: **1** "Support" (`email`, support@example.com); 2 "Website chat" (`livechat`,
//!   refused by `conversations.create`).
//! - Agents: **1** Grace Hopper (owner of the sandbox API key: sender of agent messages and
//!   actor of activities), 2 Alan Turing, 3 Katherine Johnson. Teams: 1 Support, 2 Billing.
//! - Statuses: 1 Open, 2 Snoozed, 3 Resolved, 4 Closed. Priorities: 1 Low, 2 Medium, 3 High.
//! - Contacts (35, ids 101–135): 101 Ada Lovelace `ada@example.com` (+GB 2079460101, avatar,
//!   custom attribute plan=enterprise), 102 Charles Babbage `charles@example.com`,
//!   103 Edsger Dijkstra `edsger@example.nl`, 104 Barbara Liskov `barbara@example.com`,
//!   105 Linus Torvalds `linus@example.fi` (no phone), 106 Margaret Hamilton
//!   `margaret@example.com`, 107–135 `"Customer <id>"` `customer<id>@example.org`.
//! - Conversations (uuid `c0000000-0000-4000-8000-00000000000N`, reference `100N`):
//!   1. Ada, **Open**, High, tags billing+vip, Grace + Support, "Invoice #1042 is missing";
//!      messages 1 incoming, 2 outgoing (Grace), 3 private note (Grace), 4 incoming.
//!   2. Charles, **Resolved**, Low, tag shipping, Alan + Support, "Where is my order?";
//!      messages 5 incoming, 6 outgoing (Alan), 7 activity "marked as Resolved".
//!   3. Edsger, **Snoozed** until 2030-01-01, Medium, tag feature-request, team Billing only,
//!      "Feature request: dark mode"; messages 8 incoming, 9 private note (Katherine).
//!   4. Barbara, **Closed**, no priority, unassigned, "Password reset"; messages 10 incoming,
//!      11 outgoing (Grace), 12 incoming.
//!   5. Ada, **Open**, no priority, unassigned, "Question about API access"; messages 13
//!      incoming, 14 outgoing (Alan). Newest conversation: first in the default list order.
//! - Message uuids: `e0000000-0000-4000-8000-0000000000NN` (NN = hex id). New objects continue
//!   both sequences, so created uuids are deterministic too.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::response::Response;
use base64::Engine;
use futures::future::BoxFuture;
use http::{HeaderMap, Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{
    civil_from_days, json_response, lock, unix_now, unix_seconds, Credentials, Query,
    SandboxRequest, VendorSimulator,
};

mod webhooks;
pub use webhooks::SentWebhook;

/// Constants for the seed data, for tests and the demo.
pub mod seed {
    /// The email inbox every created conversation must use.
    pub const INBOX_EMAIL_ID: i64 = 1;
    /// A `livechat` inbox: `conversations.create` refuses it.
    pub const INBOX_LIVECHAT_ID: i64 = 2;

    /// Grace Hopper, owner of the sandbox API key.
    pub const AGENT_GRACE_ID: i64 = 1;
    pub const AGENT_ALAN_ID: i64 = 2;
    pub const AGENT_KATHERINE_ID: i64 = 3;
    pub const TEAM_SUPPORT_ID: i64 = 1;
    pub const TEAM_BILLING_ID: i64 = 2;

    pub const STATUS_OPEN_ID: i64 = 1;
    pub const STATUS_SNOOZED_ID: i64 = 2;
    pub const STATUS_RESOLVED_ID: i64 = 3;
    pub const STATUS_CLOSED_ID: i64 = 4;

    pub const CONTACT_ADA_ID: i64 = 101;
    pub const CONTACT_ADA_EMAIL: &str = "ada@example.com";
    pub const CONTACT_CHARLES_ID: i64 = 102;
    pub const CONTACT_EDSGER_ID: i64 = 103;
    pub const CONTACT_BARBARA_ID: i64 = 104;
    pub const CONTACT_LINUS_ID: i64 = 105;
    pub const CONTACT_MARGARET_ID: i64 = 106;
    pub const FIRST_CONTACT_ID: i64 = 101;
    pub const CONTACT_COUNT: usize = 35;

    /// Ada, Open, High, billing+vip, Grace + Support; 4 messages (one private note).
    pub const CONVERSATION_OPEN_UUID: &str = "c0000000-0000-4000-8000-000000000001";
    /// Charles, Resolved, Low; 3 messages (one activity).
    pub const CONVERSATION_RESOLVED_UUID: &str = "c0000000-0000-4000-8000-000000000002";
    /// Edsger, Snoozed, Medium, team Billing; 2 messages (one private note).
    pub const CONVERSATION_SNOOZED_UUID: &str = "c0000000-0000-4000-8000-000000000003";
    /// Barbara, Closed, no priority, unassigned; 3 messages.
    pub const CONVERSATION_CLOSED_UUID: &str = "c0000000-0000-4000-8000-000000000004";
    /// Ada's second conversation, Open, unassigned; 2 messages; newest conversation.
    pub const CONVERSATION_ADA_SECOND_UUID: &str = "c0000000-0000-4000-8000-000000000005";
    pub const CONVERSATION_COUNT: usize = 5;

    /// Conversation 1: Ada's first (incoming) message.
    pub const MESSAGE_ADA_FIRST_UUID: &str = "e0000000-0000-4000-8000-000000000001";
    /// Conversation 1: Grace's reply (outgoing).
    pub const MESSAGE_GRACE_REPLY_UUID: &str = "e0000000-0000-4000-8000-000000000002";
    /// Conversation 1: Grace's private note.
    pub const MESSAGE_PRIVATE_NOTE_UUID: &str = "e0000000-0000-4000-8000-000000000003";
    /// Conversation 1: Ada's follow-up (incoming): the newest message of conversation 1.
    pub const MESSAGE_ADA_FOLLOWUP_UUID: &str = "e0000000-0000-4000-8000-000000000004";
    /// Conversation 2: the "marked as Resolved" activity.
    pub const MESSAGE_ACTIVITY_UUID: &str = "e0000000-0000-4000-8000-000000000007";
}

/// Microseconds since the Unix epoch.
type Micros = i64;

const DEFAULT_PAGE_SIZE: usize = 30;
/// The published maximum of every paged list (`page_size` "max 100").
const MAX_PAGE_SIZE: usize = 100;
const MAX_CONVERSATIONS_PAGE_SIZE: usize = 100;
const MIN_SEARCH_QUERY_CHARS: usize = 3;
const MAX_SEARCH_RESULTS: usize = 15;
const MAX_FILTER_DEPTH: usize = 2;
const MAX_FILTER_CONDITIONS: usize = 50;

struct Inbox {
    id: i64,
    name: &'static str,
    channel: &'static str,
    mail: &'static str,
    enabled: bool,
}

const INBOXES: [Inbox; 2] = [
    Inbox {
        id: seed::INBOX_EMAIL_ID,
        name: "Support",
        channel: "email",
        mail: "support@example.com",
        enabled: true,
    },
    Inbox {
        id: seed::INBOX_LIVECHAT_ID,
        name: "Website chat",
        channel: "livechat",
        mail: "",
        enabled: true,
    },
];

struct Agent {
    id: i64,
    first_name: &'static str,
    last_name: &'static str,
    email: &'static str,
}

const AGENTS: [Agent; 3] = [
    Agent {
        id: seed::AGENT_GRACE_ID,
        first_name: "Grace",
        last_name: "Hopper",
        email: "grace@example.com",
    },
    Agent {
        id: seed::AGENT_ALAN_ID,
        first_name: "Alan",
        last_name: "Turing",
        email: "alan@example.com",
    },
    Agent {
        id: seed::AGENT_KATHERINE_ID,
        first_name: "Katherine",
        last_name: "Johnson",
        email: "katherine@example.com",
    },
];

/// The agent the sandbox API key belongs to.
const API_USER: i64 = seed::AGENT_GRACE_ID;

const TEAMS: [(i64, &str); 2] = [
    (seed::TEAM_SUPPORT_ID, "Support"),
    (seed::TEAM_BILLING_ID, "Billing"),
];

/// (id, name, category), as seeded by Libredesk's schema.sql.
const STATUSES: [(i64, &str, &str); 4] = [
    (seed::STATUS_OPEN_ID, "Open", "open"),
    (seed::STATUS_SNOOZED_ID, "Snoozed", "waiting"),
    (seed::STATUS_RESOLVED_ID, "Resolved", "resolved"),
    (seed::STATUS_CLOSED_ID, "Closed", "resolved"),
];

const PRIORITIES: [(i64, &str); 3] = [(1, "Low"), (2, "Medium"), (3, "High")];

fn inbox(id: i64) -> Option<&'static Inbox> {
    INBOXES.iter().find(|i| i.id == id)
}

fn agent(id: i64) -> Option<&'static Agent> {
    AGENTS.iter().find(|a| a.id == id)
}

fn agent_name(id: i64) -> String {
    agent(id)
        .map(|a| format!("{} {}", a.first_name, a.last_name))
        .unwrap_or_else(|| "System".to_owned())
}

fn team_name(id: i64) -> Option<&'static str> {
    TEAMS.iter().find(|(t, _)| *t == id).map(|(_, n)| *n)
}

fn status_by_id(id: i64) -> (&'static str, &'static str) {
    STATUSES
        .iter()
        .find(|(s, _, _)| *s == id)
        .map(|(_, n, c)| (*n, *c))
        .unwrap_or(("Open", "open"))
}

fn priority_name(id: i64) -> Option<&'static str> {
    PRIORITIES.iter().find(|(p, _)| *p == id).map(|(_, n)| *n)
}

// ----- errors and envelopes ----------------------------------------------------------------

/// A Libredesk error answer: the status picks the `error_type`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LdError {
    status: StatusCode,
    message: String,
    /// Overrides the status's usual `error_type` (decode errors are InputError even when a
    /// handler answers them 500).
    error_type: Option<&'static str>,
}

type LdResult<T> = Result<T, LdError>;

fn fail(status: StatusCode, message: impl Into<String>) -> LdError {
    LdError {
        status,
        message: message.into(),
        error_type: None,
    }
}

/// A request body the handler could not decode: always an InputError, at `status`.
fn decode_failure(status: StatusCode) -> LdError {
    LdError {
        error_type: Some("InputException"),
        ..fail(status, "Error parsing request")
    }
}

fn bad_request(message: impl Into<String>) -> LdError {
    fail(StatusCode::BAD_REQUEST, message)
}

fn not_found(message: impl Into<String>) -> LdError {
    fail(StatusCode::NOT_FOUND, message)
}

fn parsing_error() -> LdError {
    decode_failure(StatusCode::BAD_REQUEST)
}

/// `envelope.*Error` names as fastglue writes them, by status.
fn error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "InputException",
        403 => "PermissionException",
        404 => "NotFoundException",
        409 => "ConflictException",
        422 => "DataException",
        429 => "RateLimitException",
        504 => "NetworkException",
        // The auth middleware answers 401 as GeneralError, whatever the cause.
        401 => "GeneralException",
        402..=499 => "InputException",
        _ => "GeneralException",
    }
}

fn error_response(status: StatusCode, message: &str) -> Response {
    typed_error_response(status, message, error_type(status))
}

fn typed_error_response(status: StatusCode, message: &str, error_type: &str) -> Response {
    json_response(
        status,
        &json!({
            "status": "error",
            "message": message,
            "data": null,
            "error_type": error_type,
        }),
    )
}

fn success(data: Value) -> Response {
    json_response(
        StatusCode::OK,
        &json!({ "status": "success", "data": data }),
    )
}

impl LdError {
    fn into_response(self) -> Response {
        let kind = self.error_type.unwrap_or_else(|| error_type(self.status));
        typed_error_response(self.status, &self.message, kind)
    }
}

// ----- time ----------------------------------------------------------------------------------

/// A UTC instant, for seed data.
const fn at(year: i64, month: i64, day: i64, hour: i64, minute: i64) -> Micros {
    unix_seconds(year, month, day, hour, minute) * 1_000_000
}

/// RFC 3339 in UTC with trailing fractional zeros trimmed, as Go marshals a `time.Time`.
fn format_time(t: Micros) -> String {
    let secs = t.div_euclid(1_000_000);
    let micros = t.rem_euclid(1_000_000);
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    let mut out = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    );
    if micros != 0 {
        let fraction = format!("{micros:06}");
        out.push('.');
        out.push_str(fraction.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

fn ts(t: Micros) -> Value {
    Value::String(format_time(t))
}

fn opt_ts(t: Option<Micros>) -> Value {
    t.map(ts).unwrap_or(Value::Null)
}

/// Go's `time.ParseDuration`, in microseconds (`snoozed_until` is a duration, e.g. "1h30m").
fn parse_go_duration(input: &str) -> Option<Micros> {
    let (negative, mut rest) = match input.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, input.strip_prefix('+').unwrap_or(input)),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut nanos = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..number_len];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return None;
        }
        let value: f64 = number.parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        nanos += value * scale;
        rest = &rest[unit_len..];
    }
    // Go refuses anything beyond ~292 years.
    if nanos.is_nan() || nanos > 9.2e18 {
        return None;
    }
    let micros = (nanos / 1e3) as i64;
    Some(if negative { -micros } else { micros })
}

// ----- small parsers ---------------------------------------------------------------------------

/// A requested page: `page` is 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Page {
    page: usize,
    size: usize,
}

impl Page {
    fn from_query(query: &Query, max_size: usize) -> LdResult<Page> {
        let page = parse_page_number(query.get("page"), "page")?
            .unwrap_or(1)
            .max(1);
        let size = parse_page_number(query.get("page_size"), "page_size")?
            .filter(|s| *s >= 1)
            .unwrap_or(DEFAULT_PAGE_SIZE as i64);
        Ok(Page {
            page: usize::try_from(page).unwrap_or(usize::MAX),
            size: usize::try_from(size).unwrap_or(usize::MAX).min(max_size),
        })
    }

    /// Slice one page out of `items` and wrap it in Libredesk's page envelope.
    fn envelope(&self, items: Vec<Value>) -> Value {
        let total = items.len();
        let offset = (self.page - 1).saturating_mul(self.size);
        let results: Vec<Value> = items.into_iter().skip(offset).take(self.size).collect();
        json!({
            "results": results,
            "total": total,
            "per_page": self.size,
            "total_pages": total.div_ceil(self.size),
            "page": self.page,
        })
    }
}

fn parse_page_number(raw: Option<&str>, name: &str) -> LdResult<Option<i64>> {
    match raw.map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => text
            .parse::<i64>()
            .map(Some)
            .map_err(|_| bad_request(format!("Invalid `{name}`"))),
    }
}

/// A positive integer path id, as `strconv.Atoi` + `id <= 0` check.
fn parse_contact_id(raw: Option<&str>) -> LdResult<i64> {
    raw.and_then(|r| r.parse::<i64>().ok())
        .filter(|id| *id > 0)
        .ok_or_else(|| bad_request("Invalid `id`"))
}

/// A UUID as Postgres accepts it (hyphenated or 32 hex digits), lower-cased and hyphenated.
fn normalize_uuid(raw: &str) -> Option<String> {
    let hex: String = if raw.len() == 36 {
        let bytes = raw.as_bytes();
        if [8, 13, 18, 23].iter().any(|i| bytes[*i] != b'-') {
            return None;
        }
        raw.chars().filter(|c| *c != '-').collect()
    } else {
        raw.to_owned()
    };
    if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let hex = hex.to_ascii_lowercase();
    Some(format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    ))
}

/// `net/mail`-like check: one address, `local@domain`, no spaces.
fn valid_email(email: &str) -> bool {
    match email.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !email
                    .chars()
                    .any(|c| c.is_whitespace() || c == '<' || c == '>' || c == ',')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        }
        None => false,
    }
}

/// Plain text of an HTML message body (`text_content`).
fn html_to_text(html: &str) -> String {
    let mut text = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => {
                in_tag = true;
                text.push(' ');
            }
            '>' if in_tag => in_tag = false,
            _ if !in_tag => text.push(c),
            _ => {}
        }
    }
    let text = text
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn preview(text: &str) -> String {
    text.chars().take(100).collect()
}

/// The parsable credentials of an `Authorization` header, as fastglue's `ParseAuthHeader`
/// (schemes `Basic ` and `token `, case-sensitive, split at the first `:`).
fn parse_authorization(headers: &HeaderMap) -> Option<(String, String)> {
    let header = headers.get(http::header::AUTHORIZATION)?.as_bytes();
    let pair = if let Some(rest) = header.strip_prefix(b"Basic ") {
        base64::engine::general_purpose::STANDARD
            .decode(trim_spaces(rest))
            .ok()?
    } else if let Some(rest) = header.strip_prefix(b"token ") {
        trim_spaces(rest).to_vec()
    } else {
        return None;
    };
    let text = String::from_utf8_lossy(&pair);
    let (key, secret) = text.split_once(':')?;
    Some((key.to_owned(), secret.to_owned()))
}

fn trim_spaces(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != b' ').unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| *b != b' ')
        .map_or(start, |e| e + 1);
    &bytes[start..end.max(start)]
}

// ----- JSON request bodies -------------------------------------------------------------------

/// A JSON object body. Decoding needs `Content-Type: application/json` (fastglue otherwise
/// decodes form arguments, which leaves every field empty); `decode_status` is what the
/// handler answers when decoding fails.
fn json_object(
    request: &SandboxRequest,
    decode_status: StatusCode,
) -> LdResult<Map<String, Value>> {
    let decode_error = || decode_failure(decode_status);
    if !request.says_json() {
        return Err(decode_error());
    }
    match serde_json::from_slice::<Value>(&request.body).map_err(|_| decode_error())? {
        Value::Object(map) => Ok(map),
        Value::Null => Ok(Map::new()),
        _ => Err(decode_error()),
    }
}

/// Typed field access with Go `encoding/json` semantics: absent or `null` → `None`, a value
/// of the wrong type → the decode error.
struct Fields<'a> {
    map: &'a Map<String, Value>,
    decode_status: StatusCode,
}

impl Fields<'_> {
    fn error(&self) -> LdError {
        decode_failure(self.decode_status)
    }

    fn string(&self, key: &str) -> LdResult<Option<String>> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.error()),
        }
    }

    fn int(&self, key: &str) -> LdResult<Option<i64>> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| self.error()),
            Some(_) => Err(self.error()),
        }
    }

    fn boolean(&self, key: &str) -> LdResult<Option<bool>> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(self.error()),
        }
    }

    fn strings(&self, key: &str) -> LdResult<Option<Vec<String>>> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_owned).ok_or_else(|| self.error()))
                .collect::<LdResult<Vec<_>>>()
                .map(Some),
            Some(_) => Err(self.error()),
        }
    }

    fn ints(&self, key: &str) -> LdResult<Option<Vec<i64>>> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_i64().ok_or_else(|| self.error()))
                .collect::<LdResult<Vec<_>>>()
                .map(Some),
            Some(_) => Err(self.error()),
        }
    }
}

// ----- multipart (contacts.update) -------------------------------------------------------------

#[derive(Debug, Default)]
struct Form {
    /// First value of each text field, like Go's `form.Value[name][0]`.
    values: HashMap<String, String>,
    has_files: bool,
    /// The file parts named `files`, like Go's `form.File["files"]`.
    files: Vec<FilePart>,
}

/// One uploaded file part: its file name, declared type and bytes.
#[derive(Debug)]
struct FilePart {
    filename: String,
    content_type: String,
    bytes: Bytes,
}

impl Form {
    fn value(&self, name: &str) -> &str {
        self.values
            .get(name)
            .map(String::as_str)
            .unwrap_or_default()
    }
}

/// Parse a `multipart/form-data` body. Any failure (not multipart, no boundary, broken
/// body) is what fasthttp's `MultipartForm()` error becomes in the handler: a 500.
async fn read_form(request: &SandboxRequest) -> LdResult<Form> {
    let parse_error = || fail(StatusCode::INTERNAL_SERVER_ERROR, "Error parsing request");
    let boundary = multer::parse_boundary(request.content_type().unwrap_or_default())
        .map_err(|_| parse_error())?;
    let body: Bytes = request.body.clone();
    let stream = futures::stream::once(async move { Ok::<Bytes, Infallible>(body) });
    let mut multipart = multer::Multipart::new(stream, boundary);
    let mut form = Form::default();
    while let Some(field) = multipart.next_field().await.map_err(|_| parse_error())? {
        let name = field.name().unwrap_or_default().to_owned();
        let file_name = field.file_name().map(str::to_owned);
        let content_type = field.content_type().map(|m| m.essence_str().to_owned());
        let is_file = file_name.is_some() || name == "files";
        let bytes = field.bytes().await.map_err(|_| parse_error())?;
        if is_file {
            form.has_files = true;
            if let (Some(filename), "files") = (file_name, name.as_str()) {
                form.files.push(FilePart {
                    filename,
                    content_type: content_type
                        .unwrap_or_else(|| "application/octet-stream".to_owned()),
                    bytes,
                });
            }
        } else {
            form.values
                .entry(name)
                .or_insert_with(|| String::from_utf8_lossy(&bytes).into_owned());
        }
    }
    Ok(form)
}

// ----- conversation list filters -------------------------------------------------------------

/// One node of a `filters` value, as `dbutil.FilterNode` decodes it (`value` is a string).
#[derive(Debug, Deserialize)]
struct FilterNode {
    #[serde(default)]
    logic: String,
    #[serde(default)]
    rules: Vec<FilterNode>,
    #[serde(default)]
    model: String,
    #[serde(default)]
    field: String,
    #[serde(default)]
    operator: String,
    #[serde(default)]
    value: String,
}

impl FilterNode {
    fn is_group(&self) -> bool {
        !self.logic.is_empty() || !self.rules.is_empty()
    }

    fn is_empty(&self) -> bool {
        !self.is_group() && self.field.is_empty()
    }

    fn conditions(&self) -> usize {
        if self.is_group() {
            self.rules.iter().map(FilterNode::conditions).sum()
        } else {
            usize::from(!self.is_empty())
        }
    }
}

/// The columns a conversations list may filter on, as `dbutil.AllowedFields` for it:
/// `conversations` → `status_id`, `priority_id`, `assigned_team_id`, `assigned_user_id`,
/// `inbox_id` (`conversationsListAllowedFilterFields`); `conversation_statuses` → `id`,
/// `name` (`conversationStatusesFilterFields`, the joined status row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConversationField {
    Status,
    Priority,
    AssignedTeam,
    AssignedUser,
    Inbox,
    StatusName,
}

const FILTER_FIELDS: &str = "conversations.{status_id, priority_id, assigned_team_id, \
     assigned_user_id, inbox_id}, conversation_statuses.{id, name}";

impl ConversationField {
    fn parse(model: &str, field: &str) -> Option<Self> {
        Some(match (model, field) {
            ("conversations", "status_id") | ("conversation_statuses", "id") => {
                ConversationField::Status
            }
            ("conversations", "priority_id") => ConversationField::Priority,
            ("conversations", "assigned_team_id") => ConversationField::AssignedTeam,
            ("conversations", "assigned_user_id") => ConversationField::AssignedUser,
            ("conversations", "inbox_id") => ConversationField::Inbox,
            ("conversation_statuses", "name") => ConversationField::StatusName,
            _ => return None,
        })
    }

    fn is_text(self) -> bool {
        self == ConversationField::StatusName
    }

    fn value(self, conversation: &Conversation) -> Option<Scalar> {
        let int = match self {
            ConversationField::Status => Some(conversation.status_id),
            ConversationField::Priority => conversation.priority_id,
            ConversationField::AssignedTeam => conversation.assigned_team_id,
            ConversationField::AssignedUser => conversation.assigned_user_id,
            ConversationField::Inbox => Some(conversation.inbox_id),
            ConversationField::StatusName => {
                return Some(Scalar::Text(
                    status_by_id(conversation.status_id).0.to_owned(),
                ))
            }
        };
        int.map(Scalar::Int)
    }
}

/// A filter operand, typed by the column it is compared with.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Scalar {
    Int(i64),
    Text(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Condition {
    Equals(Scalar),
    NotEquals(Scalar),
    GreaterThan(Scalar),
    LessThan(Scalar),
    Set,
    NotSet,
    In(Vec<Scalar>),
    /// `contains` / `ilike`: case-insensitive substring (text columns only).
    Contains(String),
    NotContains(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Filter {
    All(Vec<Filter>),
    Any(Vec<Filter>),
    Leaf(ConversationField, Condition),
}

impl Filter {
    /// SQL semantics: a comparison with NULL is never true; `=` on text is case-sensitive.
    fn matches(&self, conversation: &Conversation) -> bool {
        match self {
            Filter::All(rules) => rules.iter().all(|r| r.matches(conversation)),
            Filter::Any(rules) => rules.iter().any(|r| r.matches(conversation)),
            Filter::Leaf(field, condition) => {
                let value = field.value(conversation);
                let text = || match &value {
                    Some(Scalar::Text(t)) => Some(t.to_lowercase()),
                    _ => None,
                };
                match condition {
                    Condition::Set => value.is_some(),
                    Condition::NotSet => value.is_none(),
                    Condition::Equals(x) => value.as_ref() == Some(x),
                    Condition::NotEquals(x) => value.as_ref().is_some_and(|v| v != x),
                    Condition::GreaterThan(x) => value.as_ref().is_some_and(|v| v > x),
                    Condition::LessThan(x) => value.as_ref().is_some_and(|v| v < x),
                    Condition::In(xs) => value.as_ref().is_some_and(|v| xs.contains(v)),
                    Condition::Contains(needle) => text().is_some_and(|t| t.contains(needle)),
                    Condition::NotContains(needle) => text().is_some_and(|t| !t.contains(needle)),
                }
            }
        }
    }
}

/// Parse `filters` like `dbutil.parseFilters` + `buildNode`: a flat array of leaves (AND-ed)
/// or a `{logic, rules}` group; unknown models, fields and operators are errors.
fn parse_filters(raw: Option<&str>) -> LdResult<Option<Filter>> {
    let trimmed = raw.unwrap_or_default().trim();
    if trimmed.is_empty() || trimmed == "[]" || trimmed == "null" {
        return Ok(None);
    }
    let invalid = |e: serde_json::Error| bad_request(format!("invalid filters JSON: {e}"));
    let root = match trimmed.as_bytes().first() {
        Some(b'[') => FilterNode {
            logic: "AND".to_owned(),
            rules: serde_json::from_str(trimmed).map_err(invalid)?,
            model: String::new(),
            field: String::new(),
            operator: String::new(),
            value: String::new(),
        },
        Some(b'{') => serde_json::from_str(trimmed).map_err(invalid)?,
        _ => {
            return Err(bad_request(
                "invalid filters JSON: expected array or object",
            ))
        }
    };
    if root.conditions() > MAX_FILTER_CONDITIONS {
        return Err(bad_request(format!(
            "filter has too many conditions (max {MAX_FILTER_CONDITIONS})"
        )));
    }
    build_filter(&root, 0)
}

fn build_filter(node: &FilterNode, depth: usize) -> LdResult<Option<Filter>> {
    if depth > MAX_FILTER_DEPTH {
        return Err(bad_request("filter nesting too deep"));
    }
    if node.is_empty() {
        return Ok(None);
    }
    if !node.is_group() {
        return build_leaf(node).map(Some);
    }
    let logic = node.logic.trim().to_ascii_uppercase();
    let mut rules = Vec::new();
    for child in &node.rules {
        if let Some(rule) = build_filter(child, depth + 1)? {
            rules.push(rule);
        }
    }
    if rules.is_empty() {
        return Ok(None);
    }
    match logic.as_str() {
        "" | "AND" => Ok(Some(Filter::All(rules))),
        "OR" => Ok(Some(Filter::Any(rules))),
        _ => Err(bad_request(format!("invalid filter logic: {}", node.logic))),
    }
}

fn build_leaf(node: &FilterNode) -> LdResult<Filter> {
    if !matches!(
        node.model.as_str(),
        "conversations" | "conversation_statuses"
    ) {
        return Err(bad_request(format!("invalid model: {}", node.model)));
    }
    let field = ConversationField::parse(&node.model, &node.field).ok_or_else(|| {
        bad_request(format!(
            "invalid field: {} for model: {} (allowed: {FILTER_FIELDS})",
            node.field, node.model
        ))
    })?;
    // Postgres casts the text parameter to the column type: not a number → query error.
    let scalar = |v: &str| -> LdResult<Scalar> {
        if field.is_text() {
            Ok(Scalar::Text(v.to_owned()))
        } else {
            v.trim().parse::<i64>().map(Scalar::Int).map_err(|_| {
                bad_request(format!(
                    "invalid value {v:?} for {}.{}",
                    node.model, node.field
                ))
            })
        }
    };
    let value = node.value.as_str();
    let operator = node.operator.as_str();
    let needs_value = matches!(
        operator,
        "equals"
            | "not equals"
            | "not equal"
            | "greater than"
            | "less than"
            | "in"
            | "contains"
            | "ilike"
            | "not contains"
    );
    if needs_value && value.trim().is_empty() {
        return Err(bad_request(format!(
            "operator {operator:?} requires a value"
        )));
    }
    let condition = match operator {
        "equals" => Condition::Equals(scalar(value)?),
        "not equals" | "not equal" => Condition::NotEquals(scalar(value)?),
        "greater than" => Condition::GreaterThan(scalar(value)?),
        "less than" => Condition::LessThan(scalar(value)?),
        "set" => Condition::Set,
        "not set" => Condition::NotSet,
        "in" => {
            let values: Vec<String> = serde_json::from_str(value)
                .map_err(|e| bad_request(format!("invalid array format for 'in' operator: {e}")))?;
            if values.is_empty() {
                return Err(bad_request("operator \"in\" requires at least one value"));
            }
            Condition::In(values.iter().map(|v| scalar(v)).collect::<LdResult<_>>()?)
        }
        "contains" | "ilike" | "not contains" if field.is_text() => {
            let needle = value.to_lowercase();
            if operator == "not contains" {
                Condition::NotContains(needle)
            } else {
                Condition::Contains(needle)
            }
        }
        "contains" | "ilike" | "not contains" => {
            return Err(bad_request(format!(
                "operator {operator:?} needs a text column, {}.{} is an integer",
                node.model, node.field
            )))
        }
        other => return Err(bad_request(format!("invalid operator: {other}"))),
    };
    Ok(Filter::Leaf(field, condition))
}

// ----- state -----------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Contact {
    id: i64,
    created_at: Micros,
    updated_at: Micros,
    first_name: String,
    last_name: String,
    email: Option<String>,
    phone_number: Option<String>,
    phone_number_country_code: Option<String>,
    avatar_url: Option<String>,
    custom_attributes: Value,
}

#[derive(Debug, Clone)]
struct Conversation {
    id: i64,
    uuid: String,
    created_at: Micros,
    updated_at: Micros,
    contact_id: i64,
    inbox_id: i64,
    reference_number: String,
    status_id: i64,
    priority_id: Option<i64>,
    assigned_user_id: Option<i64>,
    assigned_team_id: Option<i64>,
    subject: String,
    tags: Vec<String>,
    closed_at: Option<Micros>,
    resolved_at: Option<Micros>,
    snoozed_until: Option<Micros>,
    first_reply_at: Option<Micros>,
    last_reply_at: Option<Micros>,
    waiting_since: Option<Micros>,
    last_message: Option<String>,
    last_message_at: Option<Micros>,
    last_message_sender: Option<SenderType>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MessageType {
    Incoming,
    Outgoing,
    Activity,
}

impl MessageType {
    fn as_str(self) -> &'static str {
        match self {
            MessageType::Incoming => "incoming",
            MessageType::Outgoing => "outgoing",
            MessageType::Activity => "activity",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SenderType {
    Agent,
    Contact,
}

impl SenderType {
    fn as_str(self) -> &'static str {
        match self {
            SenderType::Agent => "agent",
            SenderType::Contact => "contact",
        }
    }
}

#[derive(Debug, Clone)]
struct Message {
    id: i64,
    uuid: String,
    created_at: Micros,
    updated_at: Micros,
    conversation_id: i64,
    kind: MessageType,
    status: &'static str,
    content: String,
    content_type: &'static str,
    private: bool,
    sender_id: i64,
    sender_type: SenderType,
    meta: Value,
}

/// An uploaded file (`POST /api/v1/media`): the `Media` shape of the OpenAPI document.
struct Media {
    id: i64,
    uuid: String,
    created_at: Micros,
    filename: String,
    content_type: String,
    size: usize,
    /// Where the file is served (the server's root URL + `/uploads/<uuid>`).
    url: String,
    /// The message that carries it (`model_type: messages`, `model_id`), once sent.
    message_id: Option<i64>,
}

/// A `Media` object as `POST /api/v1/media` answers it.
fn media_json(m: &Media) -> Value {
    json!({
        "id": m.id,
        "created_at": ts(m.created_at),
        "updated_at": ts(m.created_at),
        "uuid": m.uuid,
        "store": "fs",
        "filename": m.filename,
        "content_type": m.content_type,
        "content_id": "",
        "model_id": m.message_id,
        "model_type": m.message_id.map(|_| "messages"),
        "disposition": "attachment",
        "size": m.size,
        "meta": {},
        "url": m.url,
    })
}

fn media_uuid(id: i64) -> String {
    format!("f0000000-0000-4000-8000-{id:012x}")
}

/// The most one upload may carry (the server's default `app.max_file_upload_size`, 20 MB).
const MAX_UPLOAD_BYTES: usize = 20 * 1024 * 1024;

/// What a new message is; [`Data::add_message`] fills in ids and conversation bookkeeping.
struct NewMessage {
    conversation_id: i64,
    kind: MessageType,
    status: &'static str,
    sender_type: SenderType,
    sender_id: i64,
    content: String,
    private: bool,
    meta: Value,
    at: Micros,
}

struct Data {
    contacts: BTreeMap<i64, Contact>,
    conversations: BTreeMap<i64, Conversation>,
    messages: BTreeMap<i64, Message>,
    /// Uploaded media by id; `message_id` is set once a message carries it.
    media: BTreeMap<i64, Media>,
    next_contact_id: i64,
    next_conversation_id: i64,
    next_message_id: i64,
    next_reference: i64,
    /// Last timestamp handed out: new objects are strictly ordered even within a microsecond.
    clock: Micros,
}

fn conversation_uuid(id: i64) -> String {
    format!("c0000000-0000-4000-8000-{id:012x}")
}

fn message_uuid(id: i64) -> String {
    format!("e0000000-0000-4000-8000-{id:012x}")
}

/// The Libredesk sandbox: credentials it accepts and its in-memory helpdesk. Endpoint calls
/// arrive through the shared sandbox server; tests read state through the accessors.
pub struct LibredeskState {
    credentials: Credentials,
    data: Mutex<Data>,
    webhooks: webhooks::Webhooks,
}

impl std::fmt::Debug for LibredeskState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LibredeskState")
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

impl LibredeskState {
    /// A seeded helpdesk accepting `credentials`.
    pub fn new(credentials: Credentials) -> Self {
        LibredeskState {
            credentials,
            data: Mutex::new(Data::seeded()),
            webhooks: Default::default(),
        }
    }

    /// Throw away every change and go back to the seed data.
    pub fn reset(&self) {
        *lock(&self.data) = Data::seeded();
    }

    /// A contact as `GET /contacts/{id}` answers it (the `data` part).
    pub fn contact(&self, id: i64) -> Option<Value> {
        let data = lock(&self.data);
        data.contacts.get(&id).map(|c| data.contact_json(c))
    }

    pub fn contact_count(&self) -> usize {
        lock(&self.data).contacts.len()
    }

    /// A conversation as `GET /conversations/{uuid}` answers it (the `data` part).
    pub fn conversation(&self, uuid: &str) -> Option<Value> {
        let data = lock(&self.data);
        let id = data.conversation_id(uuid).ok()?;
        data.conversations
            .get(&id)
            .map(|c| data.conversation_json(c))
    }

    /// The status name (`"Open"`, `"Resolved"`, …) of a conversation.
    pub fn conversation_status(&self, uuid: &str) -> Option<String> {
        let data = lock(&self.data);
        let id = data.conversation_id(uuid).ok()?;
        data.conversations
            .get(&id)
            .map(|c| status_by_id(c.status_id).0.to_owned())
    }

    pub fn conversation_count(&self) -> usize {
        lock(&self.data).conversations.len()
    }

    /// A message as `GET /conversations/{cuuid}/messages/{uuid}` answers it.
    pub fn message(&self, uuid: &str) -> Option<Value> {
        let data = lock(&self.data);
        let id = data.message_id(uuid).ok()?;
        data.messages.get(&id).map(|m| data.message_json(m))
    }

    /// Every uploaded media object (`POST /api/v1/media`), oldest first, as that call answers
    /// it now (`model_id` set once a message carries it).
    pub fn media(&self) -> Vec<Value> {
        lock(&self.data).media.values().map(media_json).collect()
    }

    /// Every message of a conversation (activities included), oldest first.
    pub fn messages(&self, conversation_uuid: &str) -> Vec<Value> {
        let data = lock(&self.data);
        let Ok(id) = data.conversation_id(conversation_uuid) else {
            return Vec::new();
        };
        data.messages
            .values()
            .filter(|m| m.conversation_id == id)
            .map(|m| data.message_json(m))
            .collect()
    }

    fn authenticate(&self, request: &SandboxRequest) -> LdResult<()> {
        match parse_authorization(&request.headers) {
            Some((key, secret)) if !key.is_empty() && !secret.is_empty() => {
                if key == self.credentials.api_key && secret == self.credentials.api_secret {
                    Ok(())
                } else {
                    Err(fail(StatusCode::UNAUTHORIZED, "Invalid API credentials"))
                }
            }
            // No usable API key: the real server tries session auth, which checks CSRF first
            // on state-changing methods.
            _ if matches!(request.method, Method::POST | Method::PUT | Method::DELETE) => {
                Err(fail(StatusCode::FORBIDDEN, "csrf token mismatch"))
            }
            _ => Err(fail(StatusCode::UNAUTHORIZED, "Invalid or expired session")),
        }
    }

    fn dispatch(
        &self,
        endpoint: &str,
        request: &SandboxRequest,
        form: Option<LdResult<Form>>,
    ) -> LdResult<Value> {
        let query = Query::parse(request.query.as_deref());
        let uuid = request.param("uuid").unwrap_or_default();
        let mut data = lock(&self.data);
        match endpoint {
            "contacts.list" => data.list_contacts(&query),
            "contacts.search" => data.search_contacts(&query),
            "contacts.get" => data.get_contact(request.param("id")),
            "contacts.update" => data.update_contact(request.param("id"), form),
            "conversations.list" => data.list_conversations(&query),
            "conversations.get" => data.get_conversation(uuid),
            "conversations.create" => data.create_conversation(request),
            "conversations.update_status" => data.update_status(uuid, request),
            "conversations.assign_user" => data.assign_user(uuid, request),
            "conversations.assign_team" => data.assign_team(uuid, request),
            "conversations.unassign_user" => data.unassign(uuid, Assignee::User),
            "conversations.unassign_team" => data.unassign(uuid, Assignee::Team),
            "conversations.update_priority" => data.update_priority(uuid, request),
            "conversations.update_tags" => data.update_tags(uuid, request),
            "messages.list" => data.list_messages(uuid, &query),
            "messages.get" => data.get_message(uuid, request.param("message_uuid")),
            "messages.send" => data.send_message(uuid, request),
            "media.upload" => data.upload_media(request, form),
            "agents.list" => Ok(agents_json()),
            "teams.list" => Ok(teams_json()),
            other => Err(not_found(format!("the sandbox does not simulate {other}"))),
        }
    }
}

impl VendorSimulator for LibredeskState {
    fn handle(
        self: Arc<Self>,
        endpoint: &'static str,
        request: SandboxRequest,
    ) -> BoxFuture<'static, Response> {
        Box::pin(async move {
            if let Err(error) = self.authenticate(&request) {
                return error.into_response();
            }
            // Multipart parsing is async; do it before taking the state lock.
            let form = if matches!(endpoint, "contacts.update" | "media.upload") {
                Some(read_form(&request).await)
            } else {
                None
            };
            let before = webhooks::Marks::take(&self);
            match self.dispatch(endpoint, &request, form) {
                Ok(data) => {
                    self.webhooks.emit_since(&self, before);
                    success(data)
                }
                Err(error) => error.into_response(),
            }
        })
    }

    fn error(&self, status: StatusCode, message: &str) -> Response {
        error_response(status, message)
    }

    /// Calls no adapter makes, for passthrough (`routes/libredesk.yaml`, `passthrough:`).
    fn passthrough_endpoints(&self) -> &'static [(&'static str, Method, &'static str)] {
        &[
            ("agents.list", Method::GET, "/api/v1/agents"),
            ("teams.list", Method::GET, "/api/v1/teams"),
        ]
    }
}

/// `GET /api/v1/agents`: the seeded agents (AgentListResponse).
fn agents_json() -> Value {
    Value::Array(
        AGENTS
            .iter()
            .map(|a| {
                json!({
                    "id": a.id,
                    "first_name": a.first_name,
                    "last_name": a.last_name,
                    "email": a.email,
                    "enabled": true,
                    "type": "agent",
                })
            })
            .collect(),
    )
}

/// `GET /api/v1/teams`: the seeded teams (TeamListResponse).
fn teams_json() -> Value {
    Value::Array(
        TEAMS
            .iter()
            .map(|(id, name)| json!({"id": id, "name": name}))
            .collect(),
    )
}

#[derive(Debug, Clone, Copy)]
enum Assignee {
    User,
    Team,
}

impl Data {
    fn tick(&mut self) -> Micros {
        self.clock = unix_now(Duration::from_micros(1)).max(self.clock + 1);
        self.clock
    }

    // ----- lookups ---------------------------------------------------------------------------

    fn conversation_id(&self, raw_uuid: &str) -> LdResult<i64> {
        let uuid = normalize_uuid(raw_uuid).ok_or_else(|| {
            fail(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Error fetching conversation",
            )
        })?;
        self.conversations
            .values()
            .find(|c| c.uuid == uuid)
            .map(|c| c.id)
            .ok_or_else(|| not_found("Conversation not found"))
    }

    fn message_id(&self, raw_uuid: &str) -> LdResult<i64> {
        let uuid = normalize_uuid(raw_uuid)
            .ok_or_else(|| fail(StatusCode::INTERNAL_SERVER_ERROR, "Error fetching message"))?;
        self.messages
            .values()
            .find(|m| m.uuid == uuid)
            .map(|m| m.id)
            .ok_or_else(|| not_found("Message not found"))
    }

    fn contact_id_by_email(&self, email: &str) -> Option<i64> {
        self.contacts
            .values()
            .find(|c| {
                c.email
                    .as_deref()
                    .is_some_and(|e| e.eq_ignore_ascii_case(email.trim()))
            })
            .map(|c| c.id)
    }

    fn conversation_mut(&mut self, id: i64) -> LdResult<&mut Conversation> {
        self.conversations
            .get_mut(&id)
            .ok_or_else(|| not_found("Conversation not found"))
    }

    // ----- JSON shapes -----------------------------------------------------------------------

    /// The `Contact` schema (every property of the document) plus the Go model's extras.
    fn contact_json(&self, c: &Contact) -> Value {
        json!({
            "id": c.id,
            "created_at": ts(c.created_at),
            "updated_at": ts(c.updated_at),
            "first_name": c.first_name,
            "last_name": c.last_name,
            "email": c.email,
            "type": "contact",
            "availability_status": "offline",
            "avatar_url": c.avatar_url,
            "phone_number": c.phone_number,
            "phone_number_country_code": c.phone_number_country_code,
            "country": null,
            "custom_attributes": c.custom_attributes,
            "meta": {},
            "enabled": true,
            "last_active_at": null,
            "last_login_at": null,
            "roles": null,
            "permissions": null,
            "teams": [],
            "external_user_id": null,
            "organization_id": null,
            "organization_name": null,
            "api_key": null,
            "api_key_last_used_at": null,
            "totp_enabled": false,
        })
    }

    /// `ContactList` items, exactly the published schema's fields: no phone, no custom
    /// attributes.
    fn contact_list_json(c: &Contact) -> Value {
        json!({
            "id": c.id,
            "type": "contact",
            "first_name": c.first_name,
            "last_name": c.last_name,
            "email": c.email,
            "enabled": true,
            "avatar_url": c.avatar_url,
            "created_at": ts(c.created_at),
            "updated_at": ts(c.updated_at),
        })
    }

    /// `ContactSearchResult` items, exactly the published schema's fields — no `id`.
    fn contact_search_json(c: &Contact) -> Value {
        json!({
            "created_at": ts(c.created_at),
            "first_name": c.first_name,
            "last_name": c.last_name,
            "email": c.email,
        })
    }

    /// The `Conversation` schema (every property of the document) plus `snoozed_until` and
    /// `status_category` from the Go model.
    fn conversation_json(&self, c: &Conversation) -> Value {
        let inbox = inbox(c.inbox_id);
        let (status, category) = status_by_id(c.status_id);
        let contact = self
            .contacts
            .get(&c.contact_id)
            .map(|contact| self.contact_json(contact))
            .unwrap_or(Value::Null);
        let mut previous: Vec<&Conversation> = self
            .conversations
            .values()
            .filter(|o| o.contact_id == c.contact_id && o.id != c.id)
            .collect();
        previous.sort_by_key(|o| std::cmp::Reverse((o.created_at, o.id)));
        let previous: Vec<Value> = previous
            .into_iter()
            .take(10)
            .map(|o| {
                let contact = self.contacts.get(&o.contact_id);
                json!({
                    "id": o.id,
                    "created_at": ts(o.created_at),
                    "updated_at": ts(o.updated_at),
                    "uuid": o.uuid,
                    "subject": o.subject,
                    "contact": {
                        "first_name": contact.map(|x| x.first_name.as_str()),
                        "last_name": contact.map(|x| x.last_name.as_str()),
                        "avatar_url": contact.and_then(|x| x.avatar_url.as_deref()),
                    },
                    "last_message": o.last_message,
                    "last_message_at": opt_ts(o.last_message_at),
                })
            })
            .collect();
        json!({
            "id": c.id,
            "created_at": ts(c.created_at),
            "updated_at": ts(c.updated_at),
            "uuid": c.uuid,
            "contact_id": c.contact_id,
            "inbox_id": c.inbox_id,
            "closed_at": opt_ts(c.closed_at),
            "resolved_at": opt_ts(c.resolved_at),
            "reference_number": c.reference_number,
            "priority": c.priority_id.and_then(priority_name),
            "priority_id": c.priority_id,
            "status": status,
            "status_category": category,
            "status_id": c.status_id,
            "first_reply_at": opt_ts(c.first_reply_at),
            "last_reply_at": opt_ts(c.last_reply_at),
            "assigned_user_id": c.assigned_user_id,
            "assigned_team_id": c.assigned_team_id,
            "assignee_last_seen_at": null,
            "waiting_since": opt_ts(c.waiting_since),
            "snoozed_until": opt_ts(c.snoozed_until),
            "subject": c.subject,
            "inbox_mail": inbox.map(|i| i.mail),
            "inbox_name": inbox.map(|i| i.name),
            "inbox_channel": inbox.map(|i| i.channel),
            "tags": c.tags,
            "meta": {},
            "custom_attributes": {},
            "last_message_at": opt_ts(c.last_message_at),
            "last_message": c.last_message,
            "last_message_sender": c.last_message_sender.map(SenderType::as_str),
            "contact": contact,
            "sla_policy_id": null,
            "sla_policy_name": null,
            "applied_sla_id": null,
            "first_response_deadline_at": null,
            "resolution_deadline_at": null,
            "next_response_deadline_at": null,
            "next_response_met_at": null,
            "previous_conversations": previous,
        })
    }

    /// `ConversationListItem`, exactly the published schema's fields: no contact id, no
    /// assignee, no tags, no inbox id, and a `ContactSummary` contact (no id, email or phone).
    fn conversation_list_json(&self, c: &Conversation) -> Value {
        let inbox = inbox(c.inbox_id);
        let contact = self.contacts.get(&c.contact_id);
        json!({
            "id": c.id,
            "created_at": ts(c.created_at),
            "updated_at": ts(c.updated_at),
            "uuid": c.uuid,
            "waiting_since": opt_ts(c.waiting_since),
            "assignee_last_seen_at": null,
            "contact": {
                "created_at": contact.map(|x| ts(x.created_at)),
                "updated_at": contact.map(|x| ts(x.updated_at)),
                "first_name": contact.map(|x| x.first_name.as_str()),
                "last_name": contact.map(|x| x.last_name.as_str()),
                "avatar_url": contact.and_then(|x| x.avatar_url.as_deref()),
            },
            "inbox_channel": inbox.map(|i| i.channel),
            "inbox_name": inbox.map(|i| i.name),
            "sla_policy_id": null,
            "first_reply_at": opt_ts(c.first_reply_at),
            "last_reply_at": opt_ts(c.last_reply_at),
            "resolved_at": opt_ts(c.resolved_at),
            "subject": c.subject,
            "last_message": c.last_message,
            "last_message_at": opt_ts(c.last_message_at),
            "last_message_sender": c.last_message_sender.map(SenderType::as_str),
            "next_sla_deadline_at": null,
            "priority_id": c.priority_id,
            "unread_message_count": 0,
            "status": status_by_id(c.status_id).0,
            "priority": c.priority_id.and_then(priority_name),
            "first_response_deadline_at": null,
            "resolution_deadline_at": null,
            "applied_sla_id": null,
            "next_response_deadline_at": null,
            "next_response_met_at": null,
        })
    }

    /// The `Message` schema (every property of the document) plus the Go model's `author`.
    fn message_json(&self, m: &Message) -> Value {
        let conversation_uuid = self
            .conversations
            .get(&m.conversation_id)
            .map(|c| c.uuid.clone())
            .unwrap_or_default();
        let author = match m.sender_type {
            SenderType::Agent => agent(m.sender_id).map(|a| {
                json!({
                    "id": a.id,
                    "first_name": a.first_name,
                    "last_name": a.last_name,
                    "email": a.email,
                    "avatar_url": null,
                    "availability_status": "online",
                    "type": "agent",
                    "last_active_at": null,
                })
            }),
            SenderType::Contact => self.contacts.get(&m.sender_id).map(|c| {
                json!({
                    "id": c.id,
                    "first_name": c.first_name,
                    "last_name": c.last_name,
                    "email": c.email,
                    "avatar_url": c.avatar_url,
                    "availability_status": "offline",
                    "type": "contact",
                    "last_active_at": null,
                })
            }),
        };
        json!({
            "id": m.id,
            "created_at": ts(m.created_at),
            "updated_at": ts(m.updated_at),
            "uuid": m.uuid,
            "type": m.kind.as_str(),
            "status": m.status,
            "conversation_id": m.conversation_id,
            "conversation_uuid": conversation_uuid,
            "content": m.content,
            "text_content": html_to_text(&m.content),
            "content_type": m.content_type,
            "private": m.private,
            "sender_id": m.sender_id,
            "sender_type": m.sender_type.as_str(),
            "meta": m.meta,
            "attachments": self.message_attachments(m.id),
            "author": author,
        })
    }

    // ----- writes shared by seeds and handlers -----------------------------------------------

    fn add_contact(&mut self, first_name: &str, last_name: &str, email: &str, at: Micros) -> i64 {
        let id = self.next_contact_id;
        self.next_contact_id += 1;
        self.contacts.insert(
            id,
            Contact {
                id,
                created_at: at,
                updated_at: at,
                first_name: first_name.to_owned(),
                last_name: last_name.to_owned(),
                email: Some(email.to_owned()),
                phone_number: None,
                phone_number_country_code: None,
                avatar_url: None,
                custom_attributes: json!({}),
            },
        );
        id
    }

    fn add_conversation(
        &mut self,
        contact_id: i64,
        inbox_id: i64,
        subject: &str,
        at: Micros,
    ) -> i64 {
        let id = self.next_conversation_id;
        self.next_conversation_id += 1;
        let reference_number = self.next_reference.to_string();
        self.next_reference += 1;
        self.conversations.insert(
            id,
            Conversation {
                id,
                uuid: conversation_uuid(id),
                created_at: at,
                updated_at: at,
                contact_id,
                inbox_id,
                reference_number,
                status_id: seed::STATUS_OPEN_ID,
                priority_id: None,
                assigned_user_id: None,
                assigned_team_id: None,
                subject: subject.to_owned(),
                tags: Vec::new(),
                closed_at: None,
                resolved_at: None,
                snoozed_until: None,
                first_reply_at: None,
                last_reply_at: None,
                waiting_since: None,
                last_message: None,
                last_message_at: None,
                last_message_sender: None,
            },
        );
        id
    }

    /// Store a message and keep the conversation's bookkeeping (last message, reply times,
    /// waiting-since) the way the Go server does.
    fn add_message(&mut self, new: NewMessage) -> i64 {
        let id = self.next_message_id;
        self.next_message_id += 1;
        let content_type = if new.kind == MessageType::Activity {
            "text"
        } else {
            "html"
        };
        let text = html_to_text(&new.content);
        if let Some(conversation) = self.conversations.get_mut(&new.conversation_id) {
            conversation.updated_at = new.at;
            if new.kind != MessageType::Activity && !new.private {
                conversation.last_message = Some(preview(&text));
                conversation.last_message_at = Some(new.at);
                conversation.last_message_sender = Some(new.sender_type);
            }
            match (new.kind, new.private) {
                (MessageType::Incoming, _) => {
                    conversation.waiting_since.get_or_insert(new.at);
                }
                (MessageType::Outgoing, false) => {
                    conversation.first_reply_at.get_or_insert(new.at);
                    conversation.last_reply_at = Some(new.at);
                    conversation.waiting_since = None;
                }
                _ => {}
            }
        }
        self.messages.insert(
            id,
            Message {
                id,
                uuid: message_uuid(id),
                created_at: new.at,
                updated_at: new.at,
                conversation_id: new.conversation_id,
                kind: new.kind,
                status: new.status,
                content: new.content,
                content_type,
                private: new.private,
                sender_id: new.sender_id,
                sender_type: new.sender_type,
                meta: new.meta,
            },
        );
        id
    }

    /// The `activity` message the Go server records for a change made by `actor`.
    fn add_activity(&mut self, conversation_id: i64, actor: i64, content: String, at: Micros) {
        self.add_message(NewMessage {
            conversation_id,
            kind: MessageType::Activity,
            status: "sent",
            sender_type: SenderType::Agent,
            sender_id: actor,
            content,
            private: true,
            meta: json!({}),
            at,
        });
    }

    fn email_meta(
        &self,
        conversation_id: i64,
        incoming: bool,
        to: Vec<String>,
        cc: Vec<String>,
        bcc: Vec<String>,
    ) -> Value {
        let conversation = self.conversations.get(&conversation_id);
        let inbox_mail = conversation
            .and_then(|c| inbox(c.inbox_id))
            .map(|i| i.mail.to_owned())
            .unwrap_or_default();
        let contact_email = conversation
            .and_then(|c| self.contacts.get(&c.contact_id))
            .and_then(|c| c.email.clone())
            .unwrap_or_default();
        let subject = conversation.map(|c| c.subject.clone()).unwrap_or_default();
        if incoming {
            json!({ "from": [contact_email], "to": [inbox_mail], "cc": [], "bcc": [], "subject": subject })
        } else {
            let to = if to.is_empty() {
                vec![contact_email]
            } else {
                to
            };
            json!({ "from": [inbox_mail], "to": to, "cc": cc, "bcc": bcc, "subject": format!("Re: {subject}") })
        }
    }

    // ----- contacts ----------------------------------------------------------------------------

    fn list_contacts(&self, query: &Query) -> LdResult<Value> {
        let page = Page::from_query(query, MAX_PAGE_SIZE)?;
        let mut contacts: Vec<&Contact> = self.contacts.values().collect();
        if let Some(order_by) = query.get("order_by").filter(|o| !o.is_empty()) {
            let field = order_by.strip_prefix("users.").unwrap_or(order_by);
            let descending = match query
                .get("order")
                .unwrap_or_default()
                .to_ascii_uppercase()
                .as_str()
            {
                "" | "ASC" => false,
                "DESC" => true,
                other => return Err(bad_request(format!("invalid order direction: {other}"))),
            };
            let key = |c: &Contact| -> (String, Micros) {
                match field {
                    "first_name" => (c.first_name.to_lowercase(), 0),
                    "last_name" => (c.last_name.to_lowercase(), 0),
                    "email" => (c.email.clone().unwrap_or_default().to_lowercase(), 0),
                    "updated_at" => (String::new(), c.updated_at),
                    _ => (String::new(), c.created_at),
                }
            };
            if !matches!(
                field,
                "created_at" | "updated_at" | "first_name" | "last_name" | "email"
            ) {
                return Err(bad_request(format!("invalid OrderBy field: {order_by}")));
            }
            contacts.sort_by(|a, b| {
                let ordering = key(a).cmp(&key(b)).then(a.id.cmp(&b.id));
                if descending {
                    ordering.reverse()
                } else {
                    ordering
                }
            });
        }
        Ok(page.envelope(contacts.into_iter().map(Self::contact_list_json).collect()))
    }

    fn search_contacts(&self, query: &Query) -> LdResult<Value> {
        let needle = query.get("query").unwrap_or_default().trim().to_lowercase();
        if needle.chars().count() < MIN_SEARCH_QUERY_CHARS {
            return Err(bad_request(format!(
                "Search query must be at least {MIN_SEARCH_QUERY_CHARS} characters"
            )));
        }
        let results: Vec<Value> = self
            .contacts
            .values()
            .filter(|c| {
                let hit = |haystack: &str| haystack.to_lowercase().contains(&needle);
                hit(&format!("{} {}", c.first_name, c.last_name))
                    || c.email.as_deref().is_some_and(hit)
                    || c.phone_number.as_deref().is_some_and(hit)
            })
            .take(MAX_SEARCH_RESULTS)
            .map(Self::contact_search_json)
            .collect();
        Ok(Value::Array(results))
    }

    fn get_contact(&self, raw_id: Option<&str>) -> LdResult<Value> {
        let id = parse_contact_id(raw_id)?;
        self.contacts
            .get(&id)
            .map(|c| self.contact_json(c))
            .ok_or_else(|| not_found("Contact not found"))
    }

    /// Full replace from a multipart form, validated in the order of `handleUpdateContact`.
    fn update_contact(
        &mut self,
        raw_id: Option<&str>,
        form: Option<LdResult<Form>>,
    ) -> LdResult<Value> {
        let id = parse_contact_id(raw_id)?;
        if !self.contacts.contains_key(&id) {
            return Err(not_found("Contact not found"));
        }
        let form = form.unwrap_or_else(|| {
            Err(fail(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Error parsing request",
            ))
        })?;
        let value = |name: &str| -> String {
            let v = form.value(name);
            if v == "null" {
                String::new()
            } else {
                v.to_owned()
            }
        };
        let first_name = form.value("first_name").to_owned();
        let last_name = form.value("last_name").to_owned();
        let email = form.value("email").trim().to_owned();
        let phone_number = value("phone_number");
        let country_code = value("phone_number_country_code");
        let avatar_url = value("avatar_url");
        if email.is_empty() {
            return Err(bad_request("`email` is empty"));
        }
        if !valid_email(&email) {
            return Err(bad_request("Invalid `email`"));
        }
        if first_name.is_empty() {
            return Err(bad_request("`first_name` is empty"));
        }
        if self
            .contact_id_by_email(&email)
            .is_some_and(|other| other != id)
        {
            return Err(bad_request("A contact with this email already exists"));
        }
        let now = self.tick();
        let non_empty = |s: String| if s.is_empty() { None } else { Some(s) };
        let contact = self
            .contacts
            .get_mut(&id)
            .ok_or_else(|| not_found("Contact not found"))?;
        contact.first_name = first_name;
        contact.last_name = last_name;
        contact.email = Some(email);
        contact.phone_number = non_empty(phone_number);
        contact.phone_number_country_code = non_empty(country_code);
        // Omitted (or "null") avatar_url deletes the avatar, exactly like the real server.
        contact.avatar_url = non_empty(avatar_url);
        if form.has_files {
            contact.avatar_url = Some(format!("/uploads/avatar-{id}.png"));
        }
        contact.updated_at = now;
        let contact = contact.clone();
        Ok(self.contact_json(&contact))
    }

    // ----- conversations -----------------------------------------------------------------------

    fn list_conversations(&self, query: &Query) -> LdResult<Value> {
        let page = Page::from_query(query, MAX_CONVERSATIONS_PAGE_SIZE)?;
        let filter = parse_filters(query.get("filters"))?;
        let order_by = query
            .get("order_by")
            .filter(|o| !o.is_empty())
            .unwrap_or("conversations.last_message_at");
        let field = order_by.strip_prefix("conversations.").unwrap_or(order_by);
        let key: fn(&Conversation) -> Option<Micros> = match field {
            "last_message_at" => |c: &Conversation| c.last_message_at,
            "created_at" => |c: &Conversation| Some(c.created_at),
            "updated_at" => |c: &Conversation| Some(c.updated_at),
            "waiting_since" => |c: &Conversation| c.waiting_since,
            "status_id" => |c: &Conversation| Some(c.status_id),
            "priority_id" => |c: &Conversation| c.priority_id,
            _ => return Err(bad_request(format!("invalid OrderBy field: {order_by}"))),
        };
        let descending = match query
            .get("order")
            .unwrap_or_default()
            .to_ascii_uppercase()
            .as_str()
        {
            "" | "DESC" => true,
            "ASC" => false,
            other => return Err(bad_request(format!("invalid order direction: {other}"))),
        };
        let mut conversations: Vec<&Conversation> = self
            .conversations
            .values()
            .filter(|c| filter.as_ref().is_none_or(|f| f.matches(c)))
            .collect();
        // NULLS LAST in both directions; ties by id in the same direction.
        conversations.sort_by(|a, b| match (key(a), key(b)) {
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (x, y) => {
                let ordering = x.cmp(&y).then(a.id.cmp(&b.id));
                if descending {
                    ordering.reverse()
                } else {
                    ordering
                }
            }
        });
        Ok(page.envelope(
            conversations
                .into_iter()
                .map(|c| self.conversation_list_json(c))
                .collect(),
        ))
    }

    fn get_conversation(&self, uuid: &str) -> LdResult<Value> {
        let id = self.conversation_id(uuid)?;
        self.conversations
            .get(&id)
            .map(|c| self.conversation_json(c))
            .ok_or_else(|| not_found("Conversation not found"))
    }

    /// `handleCreateConversation`: validate, resolve the contact, create the conversation,
    /// assign (team first), then the first message.
    fn create_conversation(&mut self, request: &SandboxRequest) -> LdResult<Value> {
        let body = json_object(request, StatusCode::BAD_REQUEST)?;
        let fields = Fields {
            map: &body,
            decode_status: StatusCode::BAD_REQUEST,
        };
        let inbox_id = fields.int("inbox_id")?.unwrap_or(0);
        let agent_id = fields.int("agent_id")?.unwrap_or(0);
        let team_id = fields.int("team_id")?.unwrap_or(0);
        let email = fields
            .string("contact_email")?
            .unwrap_or_default()
            .trim()
            .to_lowercase();
        let first_name = fields.string("first_name")?.unwrap_or_default();
        let last_name = fields.string("last_name")?.unwrap_or_default();
        let subject = fields.string("subject")?.unwrap_or_default();
        let content = fields.string("content")?.unwrap_or_default();
        let initiator = fields.string("initiator")?.unwrap_or_default();
        let attachments = fields.ints("attachments")?.unwrap_or_default();
        if inbox_id <= 0 {
            return Err(bad_request("`inbox_id` is required"));
        }
        if content.is_empty() {
            return Err(bad_request("`content` is required"));
        }
        if email.is_empty() {
            return Err(bad_request("`contact_email` is required"));
        }
        if first_name.is_empty() {
            return Err(bad_request("`first_name` is required"));
        }
        // The published CreateConversationRequest requires both (an empty string will do).
        for key in ["subject", "last_name"] {
            if !body.contains_key(key) {
                return Err(bad_request(format!("`{key}` is required")));
            }
        }
        if !valid_email(&email) {
            return Err(bad_request("Invalid email address"));
        }
        let initiator = match initiator.as_str() {
            "agent" => SenderType::Agent,
            "contact" => SenderType::Contact,
            _ => return Err(bad_request("`initiator` must be \"agent\" or \"contact\"")),
        };
        let inbox = inbox(inbox_id).ok_or_else(|| not_found("Inbox not found"))?;
        if !inbox.enabled {
            return Err(bad_request("Inbox is disabled"));
        }
        if inbox.channel != "email" {
            return Err(bad_request(
                "Conversations can only be created in email inboxes",
            ));
        }
        if let Some(attachment) = attachments.first() {
            return Err(bad_request(format!("Attachment {attachment} not found")));
        }

        let now = self.tick();
        // An existing contact (matched by e-mail) is reused as it is.
        let contact_id = match self.contact_id_by_email(&email) {
            Some(id) => id,
            None => self.add_contact(&first_name, &last_name, &email, now),
        };
        let conversation_id = self.add_conversation(contact_id, inbox_id, &subject, now);
        // Team first: it clears the user assignee. Unknown ids are ignored, as the real
        // handler ignores these errors.
        if team_name(team_id).is_some() {
            self.set_team(conversation_id, team_id)?;
        }
        if agent(agent_id).is_some() {
            self.set_user(conversation_id, agent_id)?;
        }
        let at = self.tick();
        let message = match initiator {
            SenderType::Agent => NewMessage {
                conversation_id,
                kind: MessageType::Outgoing,
                status: "sent",
                sender_type: SenderType::Agent,
                sender_id: API_USER,
                content,
                private: false,
                meta: self.email_meta(conversation_id, false, vec![email], Vec::new(), Vec::new()),
                at,
            },
            SenderType::Contact => NewMessage {
                conversation_id,
                kind: MessageType::Incoming,
                status: "received",
                sender_type: SenderType::Contact,
                sender_id: contact_id,
                content,
                private: false,
                meta: self.email_meta(conversation_id, true, Vec::new(), Vec::new(), Vec::new()),
                at,
            },
        };
        self.add_message(message);
        let conversation = self
            .conversations
            .get(&conversation_id)
            .ok_or_else(|| not_found("Conversation not found"))?;
        Ok(self.conversation_json(conversation))
    }

    fn update_status(&mut self, uuid: &str, request: &SandboxRequest) -> LdResult<Value> {
        let body = json_object(request, StatusCode::BAD_REQUEST)?;
        let fields = Fields {
            map: &body,
            decode_status: StatusCode::BAD_REQUEST,
        };
        let status = fields.string("status")?.unwrap_or_default();
        let snoozed_until = fields.string("snoozed_until")?.unwrap_or_default();
        if status.is_empty() {
            return Err(bad_request("`status` is empty"));
        }
        let snooze = if status == "Snoozed" {
            if snoozed_until.is_empty() {
                return Err(bad_request("`snoozed_until` is empty"));
            }
            Some(parse_go_duration(&snoozed_until).ok_or_else(|| {
                bad_request(
                    "Bad request: `snoozed_until` must be a duration such as \"2h\" or \"1h30m\"",
                )
            })?)
        } else {
            None
        };
        let id = self.conversation_id(uuid)?;
        let (status_id, name, _) = *STATUSES
            .iter()
            .find(|(_, name, _)| *name == status)
            .ok_or_else(|| {
                bad_request(format!(
                    "Invalid status {status:?}; known: Open, Snoozed, Resolved, Closed"
                ))
            })?;
        let now = self.tick();
        let conversation = self.conversation_mut(id)?;
        conversation.status_id = status_id;
        conversation.updated_at = now;
        conversation.snoozed_until = snooze.map(|d| now.saturating_add(d));
        match status_id {
            seed::STATUS_RESOLVED_ID => conversation.resolved_at = Some(now),
            seed::STATUS_CLOSED_ID => conversation.closed_at = Some(now),
            _ => {}
        }
        let content = format!("{} marked the conversation as {name}", agent_name(API_USER));
        self.add_activity(id, API_USER, content, now);
        Ok(Value::Bool(true))
    }

    /// `assignee_id` from the body: required and positive (the real server would try to
    /// assign id 0 and fail on the foreign key).
    fn assignee_id(request: &SandboxRequest) -> LdResult<i64> {
        let body = json_object(request, StatusCode::BAD_REQUEST)?;
        let fields = Fields {
            map: &body,
            decode_status: StatusCode::BAD_REQUEST,
        };
        fields
            .int("assignee_id")?
            .filter(|id| *id > 0)
            .ok_or_else(|| bad_request("`assignee_id` is required"))
    }

    fn set_user(&mut self, conversation_id: i64, user_id: i64) -> LdResult<()> {
        let now = self.tick();
        let conversation = self.conversation_mut(conversation_id)?;
        if conversation.assigned_user_id == Some(user_id) {
            return Ok(());
        }
        conversation.assigned_user_id = Some(user_id);
        conversation.updated_at = now;
        let content = if user_id == API_USER {
            format!("{} self-assigned this conversation", agent_name(API_USER))
        } else {
            format!(
                "Assigned to {} by {}",
                agent_name(user_id),
                agent_name(API_USER)
            )
        };
        self.add_activity(conversation_id, API_USER, content, now);
        Ok(())
    }

    /// Assigning a team clears the user assignee (see `handleCreateConversation`).
    fn set_team(&mut self, conversation_id: i64, team_id: i64) -> LdResult<()> {
        let now = self.tick();
        let conversation = self.conversation_mut(conversation_id)?;
        if conversation.assigned_team_id == Some(team_id) {
            return Ok(());
        }
        conversation.assigned_team_id = Some(team_id);
        conversation.assigned_user_id = None;
        conversation.updated_at = now;
        let content = format!(
            "Assigned to {} team by {}",
            team_name(team_id).unwrap_or("unknown"),
            agent_name(API_USER)
        );
        self.add_activity(conversation_id, API_USER, content, now);
        Ok(())
    }

    fn assign_user(&mut self, uuid: &str, request: &SandboxRequest) -> LdResult<Value> {
        let user_id = Self::assignee_id(request)?;
        let id = self.conversation_id(uuid)?;
        if agent(user_id).is_none() {
            return Err(not_found("Agent not found"));
        }
        self.set_user(id, user_id)?;
        Ok(Value::Bool(true))
    }

    fn assign_team(&mut self, uuid: &str, request: &SandboxRequest) -> LdResult<Value> {
        let team_id = Self::assignee_id(request)?;
        if team_name(team_id).is_none() {
            return Err(not_found("Team not found"));
        }
        let id = self.conversation_id(uuid)?;
        self.set_team(id, team_id)?;
        Ok(Value::Bool(true))
    }

    fn unassign(&mut self, uuid: &str, which: Assignee) -> LdResult<Value> {
        let id = self.conversation_id(uuid)?;
        let now = self.tick();
        let conversation = self.conversation_mut(id)?;
        let slot = match which {
            Assignee::User => &mut conversation.assigned_user_id,
            Assignee::Team => &mut conversation.assigned_team_id,
        };
        if slot.take().is_some() {
            conversation.updated_at = now;
            let what = match which {
                Assignee::User => "user",
                Assignee::Team => "team",
            };
            let content = format!("{} removed the {what} assignee", agent_name(API_USER));
            self.add_activity(id, API_USER, content, now);
        }
        Ok(Value::Bool(true))
    }

    fn update_priority(&mut self, uuid: &str, request: &SandboxRequest) -> LdResult<Value> {
        let body = json_object(request, StatusCode::BAD_REQUEST)?;
        let fields = Fields {
            map: &body,
            decode_status: StatusCode::BAD_REQUEST,
        };
        let priority = fields.string("priority")?.unwrap_or_default();
        if priority.is_empty() {
            return Err(bad_request("`priority` is empty"));
        }
        let id = self.conversation_id(uuid)?;
        let (priority_id, name) = *PRIORITIES
            .iter()
            .find(|(_, name)| *name == priority)
            .ok_or_else(|| {
                bad_request(format!(
                    "Invalid priority {priority:?}; known: Low, Medium, High"
                ))
            })?;
        let now = self.tick();
        let conversation = self.conversation_mut(id)?;
        conversation.priority_id = Some(priority_id);
        conversation.updated_at = now;
        let content = format!("{} set priority to {name}", agent_name(API_USER));
        self.add_activity(id, API_USER, content, now);
        Ok(Value::Bool(true))
    }

    fn update_tags(&mut self, uuid: &str, request: &SandboxRequest) -> LdResult<Value> {
        let body = json_object(request, StatusCode::BAD_REQUEST)?;
        let fields = Fields {
            map: &body,
            decode_status: StatusCode::BAD_REQUEST,
        };
        let tags = fields.strings("tags")?.unwrap_or_default();
        let action = fields.string("action")?.unwrap_or_default();
        if !matches!(action.as_str(), "" | "set" | "add" | "remove") {
            return Err(parsing_error());
        }
        let id = self.conversation_id(uuid)?;
        let now = self.tick();
        let conversation = self.conversation_mut(id)?;
        let before = conversation.tags.clone();
        let mut after: Vec<String> = match action.as_str() {
            "add" => before.iter().cloned().chain(tags).collect(),
            "remove" => before
                .iter()
                .filter(|t| !tags.contains(t))
                .cloned()
                .collect(),
            _ => tags,
        };
        let mut seen = Vec::new();
        after.retain(|t| {
            let keep = !t.is_empty() && !seen.contains(t);
            if keep {
                seen.push(t.clone());
            }
            keep
        });
        let added: Vec<String> = after
            .iter()
            .filter(|t| !before.contains(t))
            .cloned()
            .collect();
        conversation.tags = after;
        conversation.updated_at = now;
        for tag in added {
            let content = format!("{} added tag {tag}", agent_name(API_USER));
            self.add_activity(id, API_USER, content, now);
        }
        Ok(Value::Bool(true))
    }

    // ----- messages ----------------------------------------------------------------------------

    fn list_messages(&self, uuid: &str, query: &Query) -> LdResult<Value> {
        let id = self.conversation_id(uuid)?;
        let page = Page::from_query(query, MAX_PAGE_SIZE)?;
        // fasthttp's GetBool: 1, t, true, y, yes.
        let private = query
            .get("private")
            .map(|v| matches!(v, "1" | "t" | "true" | "y" | "yes"));
        let types = query.all("type");
        if let Some(bad) = types
            .iter()
            .find(|t| !matches!(**t, "incoming" | "outgoing" | "activity"))
        {
            return Err(bad_request(format!("Invalid `type` {bad:?}")));
        }
        let mut messages: Vec<&Message> = self
            .messages
            .values()
            .filter(|m| m.conversation_id == id)
            .filter(|m| private.is_none_or(|p| m.private == p))
            .filter(|m| types.is_empty() || types.contains(&m.kind.as_str()))
            .collect();
        // Newest first, like `ORDER BY m.created_at DESC`.
        messages.sort_by_key(|m| std::cmp::Reverse((m.created_at, m.id)));
        Ok(page.envelope(messages.into_iter().map(|m| self.message_json(m)).collect()))
    }

    fn get_message(&self, uuid: &str, message_uuid: Option<&str>) -> LdResult<Value> {
        let conversation_id = self.conversation_id(uuid)?;
        let message_id = self.message_id(message_uuid.unwrap_or_default())?;
        let message = self
            .messages
            .get(&message_id)
            .ok_or_else(|| not_found("Message not found"))?;
        if message.conversation_id != conversation_id {
            return Err(fail(StatusCode::FORBIDDEN, "Permission denied"));
        }
        Ok(self.message_json(message))
    }

    /// `handleMediaUpload`: the first file of the multipart part `files` (none → 400 "File not
    /// found"; over [`MAX_UPLOAD_BYTES`] → 400) is stored and answered as a `Media` object,
    /// not yet attached to anything. A body that is not multipart is the 500 of
    /// [`read_form`].
    fn upload_media(
        &mut self,
        request: &SandboxRequest,
        form: Option<LdResult<Form>>,
    ) -> LdResult<Value> {
        let form = form.unwrap_or_else(|| {
            Err(fail(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Error parsing request",
            ))
        })?;
        let Some(file) = form.files.into_iter().next() else {
            return Err(bad_request("File not found"));
        };
        if file.bytes.len() > MAX_UPLOAD_BYTES {
            return Err(bad_request("File size exceeds the maximum allowed size"));
        }
        let id = self.media.keys().next_back().map_or(1, |last| last + 1);
        let uuid = media_uuid(id);
        // The server's root URL: the address the request came to.
        let root = request
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(|host| format!("http://{host}"))
            .unwrap_or_default();
        let media = Media {
            id,
            url: format!("{root}/uploads/{uuid}"),
            uuid,
            created_at: self.tick(),
            filename: file.filename,
            content_type: file.content_type,
            size: file.bytes.len(),
            message_id: None,
        };
        let answer = media_json(&media);
        self.media.insert(id, media);
        Ok(answer)
    }

    /// The media a message carries, in the shape of a message's `attachments`.
    fn message_attachments(&self, message_id: i64) -> Value {
        self.media
            .values()
            .filter(|m| m.message_id == Some(message_id))
            .map(|m| {
                json!({
                    "name": m.filename,
                    "content_type": m.content_type,
                    "uuid": m.uuid,
                    "size": m.size,
                    "content_id": "",
                    "disposition": "attachment",
                    "url": m.url,
                })
            })
            .collect()
    }

    /// `handleSendMessage`. A decode failure is answered 500 + InputException, as the Go
    /// handler does.
    fn send_message(&mut self, uuid: &str, request: &SandboxRequest) -> LdResult<Value> {
        let conversation_id = self.conversation_id(uuid)?;
        let body = json_object(request, StatusCode::INTERNAL_SERVER_ERROR)?;
        let fields = Fields {
            map: &body,
            decode_status: StatusCode::INTERNAL_SERVER_ERROR,
        };
        let content = fields.string("message")?.unwrap_or_default();
        let sender_type = fields.string("sender_type")?.unwrap_or_default();
        let private = fields.boolean("private")?.unwrap_or(false);
        let attachments = fields.ints("attachments")?.unwrap_or_default();
        let to = fields.strings("to")?.unwrap_or_default();
        let cc = fields.strings("cc")?.unwrap_or_default();
        let bcc = fields.strings("bcc")?.unwrap_or_default();
        let sender_type = match sender_type.as_str() {
            "" => return Err(bad_request("sender_type required")),
            "agent" => SenderType::Agent,
            "contact" => SenderType::Contact,
            other => {
                return Err(bad_request(format!(
                    "Invalid sender_type {other:?}; use \"agent\" or \"contact\""
                )))
            }
        };
        if sender_type == SenderType::Contact && private {
            return Err(bad_request("Contacts cannot send private messages"));
        }
        if content.trim().is_empty() && attachments.is_empty() {
            return Err(bad_request("`message` is required"));
        }
        if let Some(attachment) = attachments
            .iter()
            .find(|id| self.media.get(id).is_none_or(|m| m.message_id.is_some()))
        {
            return Err(bad_request(format!("Attachment {attachment} not found")));
        }
        let contact_id = self
            .conversations
            .get(&conversation_id)
            .map(|c| c.contact_id)
            .ok_or_else(|| not_found("Conversation not found"))?;
        let at = self.tick();
        let (new, reply_status) = match (sender_type, private) {
            (SenderType::Contact, _) => (
                NewMessage {
                    conversation_id,
                    kind: MessageType::Incoming,
                    status: "received",
                    sender_type,
                    sender_id: contact_id,
                    content,
                    private: false,
                    meta: self.email_meta(
                        conversation_id,
                        true,
                        Vec::new(),
                        Vec::new(),
                        Vec::new(),
                    ),
                    at,
                },
                None,
            ),
            (SenderType::Agent, true) => (
                NewMessage {
                    conversation_id,
                    kind: MessageType::Outgoing,
                    status: "sent",
                    sender_type,
                    sender_id: API_USER,
                    content,
                    private: true,
                    meta: json!({}),
                    at,
                },
                None,
            ),
            // A reply is queued: the answer says `pending`; the sandbox "delivers" it at
            // once, so later reads say `sent`.
            (SenderType::Agent, false) => (
                NewMessage {
                    conversation_id,
                    kind: MessageType::Outgoing,
                    status: "sent",
                    sender_type,
                    sender_id: API_USER,
                    content,
                    private: false,
                    meta: self.email_meta(conversation_id, false, to, cc, bcc),
                    at,
                },
                Some("pending"),
            ),
        };
        let message_id = self.add_message(new);
        for id in &attachments {
            if let Some(media) = self.media.get_mut(id) {
                media.message_id = Some(message_id);
            }
        }
        let message = self
            .messages
            .get(&message_id)
            .ok_or_else(|| not_found("Message not found"))?;
        let mut answer = self.message_json(message);
        if let (Some(status), Some(object)) = (reply_status, answer.as_object_mut()) {
            object.insert("status".to_owned(), Value::from(status));
        }
        Ok(answer)
    }

    // ----- seed data ---------------------------------------------------------------------------

    fn seeded() -> Data {
        let mut data = Data {
            contacts: BTreeMap::new(),
            conversations: BTreeMap::new(),
            messages: BTreeMap::new(),
            media: BTreeMap::new(),
            next_contact_id: seed::FIRST_CONTACT_ID,
            next_conversation_id: 1,
            next_message_id: 1,
            next_reference: 1001,
            clock: 0,
        };
        let contacts_start = at(2025, 3, 1, 8, 0);
        // (first name, last name, email, (phone, country code))
        type NamedContact = (
            &'static str,
            &'static str,
            &'static str,
            Option<(&'static str, &'static str)>,
        );
        let named: [NamedContact; 6] = [
            (
                "Ada",
                "Lovelace",
                seed::CONTACT_ADA_EMAIL,
                Some(("2079460101", "GB")),
            ),
            (
                "Charles",
                "Babbage",
                "charles@example.com",
                Some(("2079460102", "GB")),
            ),
            (
                "Edsger",
                "Dijkstra",
                "edsger@example.nl",
                Some(("201234567", "NL")),
            ),
            (
                "Barbara",
                "Liskov",
                "barbara@example.com",
                Some(("6175550104", "US")),
            ),
            ("Linus", "Torvalds", "linus@example.fi", None),
            (
                "Margaret",
                "Hamilton",
                "margaret@example.com",
                Some(("6175550106", "US")),
            ),
        ];
        for (i, (first, last, email, phone)) in named.into_iter().enumerate() {
            let created = contacts_start + i64::try_from(i).unwrap_or(0) * 3_600_000_000;
            let id = data.add_contact(first, last, email, created);
            if let Some(contact) = data.contacts.get_mut(&id) {
                contact.phone_number = phone.map(|(number, _)| number.to_owned());
                contact.phone_number_country_code = phone.map(|(_, country)| country.to_owned());
            }
        }
        while data.contacts.len() < seed::CONTACT_COUNT {
            let id = data.next_contact_id;
            let created = contacts_start + (id - seed::FIRST_CONTACT_ID) * 3_600_000_000;
            data.add_contact(
                "Customer",
                &id.to_string(),
                &format!("customer{id}@example.org"),
                created,
            );
        }
        if let Some(ada) = data.contacts.get_mut(&seed::CONTACT_ADA_ID) {
            ada.avatar_url = Some("https://avatars.example.com/ada.png".to_owned());
            ada.custom_attributes = json!({ "plan": "enterprise" });
        }

        struct SeedConversation {
            contact: i64,
            subject: &'static str,
            start: Micros,
            status: i64,
            priority: Option<i64>,
            tags: &'static [&'static str],
            user: Option<i64>,
            team: Option<i64>,
            /// (minutes after start, type, sender id (agent or contact), private, content)
            messages: &'static [(i64, MessageType, i64, bool, &'static str)],
        }
        // Constants, not locals: the message tables below must be promoted to 'static.
        const GRACE: i64 = seed::AGENT_GRACE_ID;
        const ALAN: i64 = seed::AGENT_ALAN_ID;
        const KATHERINE: i64 = seed::AGENT_KATHERINE_ID;
        let conversations = [
            SeedConversation {
                contact: seed::CONTACT_ADA_ID,
                subject: "Invoice #1042 is missing",
                start: at(2025, 3, 10, 9, 0),
                status: seed::STATUS_OPEN_ID,
                priority: Some(3),
                tags: &["billing", "vip"],
                user: Some(GRACE),
                team: Some(seed::TEAM_SUPPORT_ID),
                messages: &[
                    (
                        0,
                        MessageType::Incoming,
                        seed::CONTACT_ADA_ID,
                        false,
                        "<p>Hi, I can't find invoice #1042 in my account. Could you resend it?</p>",
                    ),
                    (
                        20,
                        MessageType::Outgoing,
                        GRACE,
                        false,
                        "<p>Hi Ada, I've re-sent invoice #1042 to ada@example.com.</p>",
                    ),
                    (
                        21,
                        MessageType::Outgoing,
                        GRACE,
                        true,
                        "<p>Enterprise plan: check the billing export before answering.</p>",
                    ),
                    (
                        65,
                        MessageType::Incoming,
                        seed::CONTACT_ADA_ID,
                        false,
                        "<p>Thanks! It arrived, but the VAT number is wrong.</p>",
                    ),
                ],
            },
            SeedConversation {
                contact: seed::CONTACT_CHARLES_ID,
                subject: "Where is my order?",
                start: at(2025, 3, 11, 9, 0),
                status: seed::STATUS_RESOLVED_ID,
                priority: Some(1),
                tags: &["shipping"],
                user: Some(ALAN),
                team: Some(seed::TEAM_SUPPORT_ID),
                messages: &[
                    (
                        0,
                        MessageType::Incoming,
                        seed::CONTACT_CHARLES_ID,
                        false,
                        "<p>My order #5521 hasn't arrived yet.</p>",
                    ),
                    (
                        30,
                        MessageType::Outgoing,
                        ALAN,
                        false,
                        "<p>It ships tomorrow; tracking follows by email.</p>",
                    ),
                    (
                        360,
                        MessageType::Activity,
                        ALAN,
                        true,
                        "Alan Turing marked the conversation as Resolved",
                    ),
                ],
            },
            SeedConversation {
                contact: seed::CONTACT_EDSGER_ID,
                subject: "Feature request: dark mode",
                start: at(2025, 3, 12, 9, 0),
                status: seed::STATUS_SNOOZED_ID,
                priority: Some(2),
                tags: &["feature-request"],
                user: None,
                team: Some(seed::TEAM_BILLING_ID),
                messages: &[
                    (
                        0,
                        MessageType::Incoming,
                        seed::CONTACT_EDSGER_ID,
                        false,
                        "<p>Please add a dark mode to the dashboard.</p>",
                    ),
                    (
                        45,
                        MessageType::Outgoing,
                        KATHERINE,
                        true,
                        "<p>Tracked as FR-77; snoozed until the roadmap review.</p>",
                    ),
                ],
            },
            SeedConversation {
                contact: seed::CONTACT_BARBARA_ID,
                subject: "Password reset",
                start: at(2025, 3, 13, 9, 0),
                status: seed::STATUS_CLOSED_ID,
                priority: None,
                tags: &[],
                user: None,
                team: None,
                messages: &[
                    (
                        0,
                        MessageType::Incoming,
                        seed::CONTACT_BARBARA_ID,
                        false,
                        "<p>I can't log in after the password reset.</p>",
                    ),
                    (
                        15,
                        MessageType::Outgoing,
                        GRACE,
                        false,
                        "<p>I've sent a new reset link; it is valid for 24 hours.</p>",
                    ),
                    (
                        40,
                        MessageType::Incoming,
                        seed::CONTACT_BARBARA_ID,
                        false,
                        "<p>That worked, thank you!</p>",
                    ),
                ],
            },
            SeedConversation {
                contact: seed::CONTACT_ADA_ID,
                subject: "Question about API access",
                start: at(2025, 3, 14, 9, 0),
                status: seed::STATUS_OPEN_ID,
                priority: None,
                tags: &[],
                user: None,
                team: None,
                messages: &[
                    (
                        0,
                        MessageType::Incoming,
                        seed::CONTACT_ADA_ID,
                        false,
                        "<p>How do I create an API key for our integration?</p>",
                    ),
                    (
                        50,
                        MessageType::Outgoing,
                        ALAN,
                        false,
                        "<p>Go to Settings &rarr; API keys; admins can generate one per agent.</p>",
                    ),
                ],
            },
        ];
        for spec in conversations {
            let id =
                data.add_conversation(spec.contact, seed::INBOX_EMAIL_ID, spec.subject, spec.start);
            let mut last = spec.start;
            for (minutes, kind, sender, private, content) in spec.messages {
                let at = spec.start + minutes * 60_000_000;
                last = at;
                let (status, sender_type) = match kind {
                    MessageType::Incoming => ("received", SenderType::Contact),
                    _ => ("sent", SenderType::Agent),
                };
                let meta = match (kind, private) {
                    (MessageType::Incoming, _) => {
                        data.email_meta(id, true, Vec::new(), Vec::new(), Vec::new())
                    }
                    (MessageType::Outgoing, false) => {
                        data.email_meta(id, false, Vec::new(), Vec::new(), Vec::new())
                    }
                    _ => json!({}),
                };
                data.add_message(NewMessage {
                    conversation_id: id,
                    kind: *kind,
                    status,
                    sender_type,
                    sender_id: *sender,
                    content: (*content).to_owned(),
                    private: *private,
                    meta,
                    at,
                });
            }
            if let Some(conversation) = data.conversations.get_mut(&id) {
                conversation.status_id = spec.status;
                conversation.priority_id = spec.priority;
                conversation.tags = spec.tags.iter().map(|t| (*t).to_owned()).collect();
                conversation.assigned_user_id = spec.user;
                conversation.assigned_team_id = spec.team;
                conversation.updated_at = last;
                match spec.status {
                    seed::STATUS_RESOLVED_ID => conversation.resolved_at = Some(last),
                    seed::STATUS_CLOSED_ID => conversation.closed_at = Some(last),
                    seed::STATUS_SNOOZED_ID => {
                        conversation.snoozed_until = Some(at(2030, 1, 1, 0, 0))
                    }
                    _ => {}
                }
            }
        }
        data
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::sandbox::days_from_civil;
    use crate::snapshot::routes::VendorRoutes;
    use http::HeaderValue;

    /// The repository's routes/libredesk.yaml, compiled.
    pub(crate) fn routes() -> VendorRoutes {
        crate::sandbox::tests::repo_routes("libredesk", |text| text)
    }

    #[test]
    fn times_format_like_go() {
        assert_eq!(format_time(at(2025, 3, 10, 9, 0)), "2025-03-10T09:00:00Z");
        assert_eq!(
            format_time(at(2024, 2, 29, 23, 59) + 120_500),
            "2024-02-29T23:59:00.1205Z"
        );
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        for days in [-1000, 0, 11_016, 11_017, 20_000, 60_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn go_durations_parse() {
        assert_eq!(parse_go_duration("2h"), Some(7_200_000_000));
        assert_eq!(parse_go_duration("1h30m"), Some(5_400_000_000));
        assert_eq!(parse_go_duration("1.5h"), Some(5_400_000_000));
        assert_eq!(parse_go_duration("300ms"), Some(300_000));
        assert_eq!(parse_go_duration("0"), Some(0));
        assert_eq!(parse_go_duration("-1m"), Some(-60_000_000));
        for bad in [
            "",
            "2",
            "h",
            "2d",
            "2030-01-01T00:00:00Z",
            "1..5h",
            "+",
            "10000000h",
        ] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn authorization_parses_like_fastglue() {
        let mut headers = HeaderMap::new();
        let mut set = |v: &str| {
            headers.insert(
                http::header::AUTHORIZATION,
                HeaderValue::from_str(v).unwrap(),
            );
            parse_authorization(&headers)
        };
        assert_eq!(set("token k:s"), Some(("k".into(), "s".into())));
        assert_eq!(set("token  k:s:x "), Some(("k".into(), "s:x".into())));
        assert_eq!(set("Basic azpz"), Some(("k".into(), "s".into())));
        assert_eq!(set("Token k:s"), None);
        assert_eq!(set("basic azpz"), None);
        assert_eq!(set("Basic !!!"), None);
        assert_eq!(set("token ks"), None);
        assert_eq!(set("Bearer k"), None);
    }

    #[test]
    fn filters_follow_dbutil() {
        let f = parse_filters(Some(
            r#"[{"model":"conversations","field":"status_id","operator":"equals","value":"1"}]"#,
        ))
        .unwrap();
        assert_eq!(
            f,
            Some(Filter::All(vec![Filter::Leaf(
                ConversationField::Status,
                Condition::Equals(Scalar::Int(1))
            )]))
        );
        let f = parse_filters(Some(
            r#"{"logic":"OR","rules":[{"model":"conversations","field":"assigned_user_id","operator":"not set"},{"model":"conversations","field":"priority_id","operator":"in","value":"[\"2\",\"3\"]"}]}"#,
        ))
        .unwrap();
        assert!(matches!(f, Some(Filter::Any(ref rules)) if rules.len() == 2));
        let f = parse_filters(Some(
            r#"[{"model":"conversation_statuses","field":"name","operator":"equals","value":"Open"}]"#,
        ))
        .unwrap();
        assert_eq!(
            f,
            Some(Filter::All(vec![Filter::Leaf(
                ConversationField::StatusName,
                Condition::Equals(Scalar::Text("Open".into()))
            )]))
        );
        assert_eq!(parse_filters(Some("[]")).unwrap(), None);
        assert_eq!(parse_filters(None).unwrap(), None);
        for bad in [
            "not json",
            "[{",
            r#"[{"model":"conversations","field":"status","operator":"equals","value":"Open"}]"#,
            r#"[{"model":"conversations","field":"status_id","operator":"equals","value":1}]"#,
            r#"[{"model":"contacts","field":"status_id","operator":"equals","value":"1"}]"#,
            r#"[{"model":"conversations","field":"status_id","operator":"like","value":"1"}]"#,
            r#"[{"model":"conversations","field":"status_id","operator":"equals","value":""}]"#,
            r#"[{"model":"conversations","field":"status_id","operator":"equals","value":"Open"}]"#,
            r#"[{"model":"conversations","field":"status_id","operator":"contains","value":"1"}]"#,
            r#"[{"model":"conversation_statuses","field":"category","operator":"equals","value":"open"}]"#,
            "42",
        ] {
            let error = parse_filters(Some(bad)).unwrap_err();
            assert_eq!(error.status, StatusCode::BAD_REQUEST, "{bad}");
        }
    }

    #[test]
    fn pages_clamp_and_reject_garbage() {
        let page = |q: &str, max| Page::from_query(&Query::parse(Some(q)), max);
        assert_eq!(page("", 500).unwrap(), Page { page: 1, size: 30 });
        assert_eq!(
            page("page=0&page_size=-3", 500).unwrap(),
            Page { page: 1, size: 30 }
        );
        assert_eq!(
            page("page=2&page_size=1000", 500).unwrap(),
            Page { page: 2, size: 500 }
        );
        assert_eq!(
            page("page_size=1000", 100).unwrap(),
            Page { page: 1, size: 100 }
        );
        assert!(page("page=abc", 500).is_err());
        assert!(page("page_size=1.5", 500).is_err());
        let envelope = Page { page: 2, size: 2 }.envelope((0..5).map(Value::from).collect());
        assert_eq!(
            envelope,
            json!({"results":[2,3],"total":5,"per_page":2,"total_pages":3,"page":2})
        );
    }

    #[test]
    fn small_parsers() {
        assert_eq!(
            normalize_uuid("C0000000-0000-4000-8000-000000000001").as_deref(),
            Some(seed::CONVERSATION_OPEN_UUID)
        );
        assert_eq!(
            normalize_uuid("c0000000000040008000000000000001").as_deref(),
            Some(seed::CONVERSATION_OPEN_UUID)
        );
        assert_eq!(normalize_uuid("not-a-uuid"), None);
        assert_eq!(normalize_uuid("c0000000-0000-4000-8000-00000000000g"), None);
        assert_eq!(normalize_uuid("c0000000_0000_4000_8000_000000000001"), None);
        assert_eq!(
            html_to_text("<p>Hi&nbsp;<b>Ada</b> &amp; co</p>"),
            "Hi Ada & co"
        );
        assert!(valid_email("a@b.example"));
        assert!(!valid_email("a b@c.example") && !valid_email("@x") && !valid_email("x@"));
        assert_eq!(parse_contact_id(Some("101")), Ok(101));
        assert!(parse_contact_id(Some("0")).is_err() && parse_contact_id(Some("x")).is_err());
    }

    #[test]
    fn seed_is_deterministic_and_consistent() {
        let state = LibredeskState::new(Credentials::new("k", "s"));
        assert_eq!(state.contact_count(), seed::CONTACT_COUNT);
        assert_eq!(state.conversation_count(), seed::CONVERSATION_COUNT);
        assert_eq!(
            state
                .conversation_status(seed::CONVERSATION_SNOOZED_UUID)
                .as_deref(),
            Some("Snoozed")
        );
        let conversation = state.conversation(seed::CONVERSATION_OPEN_UUID).unwrap();
        assert_eq!(
            conversation["last_message"],
            "Thanks! It arrived, but the VAT number is wrong."
        );
        assert_eq!(conversation["tags"], json!(["billing", "vip"]));
        assert_eq!(conversation["priority"], "High");
        let messages = state.messages(seed::CONVERSATION_OPEN_UUID);
        assert_eq!(messages.len(), 4);
        assert_eq!(messages[0]["uuid"], seed::MESSAGE_ADA_FIRST_UUID);
        assert_eq!(messages[2]["uuid"], seed::MESSAGE_PRIVATE_NOTE_UUID);
        assert_eq!(messages[2]["private"], true);
        assert_eq!(
            state.message(seed::MESSAGE_ACTIVITY_UUID).unwrap()["type"],
            "activity"
        );
        let again = LibredeskState::new(Credentials::new("k", "s"));
        assert_eq!(
            state.conversation(seed::CONVERSATION_CLOSED_UUID),
            again.conversation(seed::CONVERSATION_CLOSED_UUID)
        );
        assert_eq!(
            state.contact(seed::CONTACT_ADA_ID).unwrap()["email"],
            seed::CONTACT_ADA_EMAIL
        );
    }
}
