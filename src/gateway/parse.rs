//! Turning an HTTP request into a validated [`OperationRequest`] and the connection that will
//! serve it. Everything here is checked before any vendor is called: a malformed ID, a foreign
//! connection, an unknown field or filter never costs a vendor call.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::api::cursor::CursorScope;
use crate::api::ids::{keys_match, Kind, ObjectId};
use crate::api::model::{ConversationStatus, Handle, HandleChannel};
use crate::api::operation::Operation;
use crate::api::request::{ContactFilters, ConversationFilters, OperationRequest, Page};
use crate::api::ApiError;
use crate::auth::Principal;
use crate::snapshot::{Connection, Snapshot};
use crate::vendors::adapter_for;

const DEFAULT_LIMIT: u32 = 20;
const MAX_LIMIT: u32 = 100;

/// The request's pieces that parsing reads.
pub struct RawRequest<'a> {
    pub op: Operation,
    /// The `{id}` path segment, if the route has one.
    pub path_id: Option<&'a str>,
    pub query: Option<&'a str>,
    /// `X-Connection` header.
    pub connection_header: Option<&'a str>,
    pub body: &'a [u8],
}

/// A request ready for its adapter.
pub struct Parsed {
    pub op: Operation,
    pub connection: Arc<Connection>,
    pub request: OperationRequest,
    pub want_raw: bool,
    /// The filters a list's cursors are bound to ("" for other operations).
    pub filters_key: String,
}

/// Query parameters, each at most once.
pub struct Query(BTreeMap<String, String>);

impl Query {
    pub fn parse(raw: Option<&str>) -> Result<Self, ApiError> {
        let mut map = BTreeMap::new();
        for (k, v) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            if map.insert(k.to_string(), v.to_string()).is_some() {
                return Err(ApiError::invalid(format!(
                    "query parameter `{k}` is given more than once"
                )));
            }
        }
        Ok(Query(map))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Reject any parameter not in `allowed`.
    fn only(&self, allowed: &[&str]) -> Result<(), ApiError> {
        match self.0.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) => Err(ApiError::invalid(format!(
                "unknown query parameter `{k}`; this operation takes: {}",
                if allowed.is_empty() {
                    "none".to_owned()
                } else {
                    allowed.join(", ")
                }
            ))),
            None => Ok(()),
        }
    }
}

/// Filters docs/api.md defines for each list operation (what a vendor supports is a subset).
fn api_filters(op: Operation) -> &'static [&'static str] {
    match op {
        Operation::ContactsList => &["q", "email", "phone", "handle"],
        Operation::ConversationsList => &["status", "contact_id"],
        _ => &[],
    }
}

pub fn parse(
    snapshot: &Snapshot,
    principal: &Principal,
    raw: &RawRequest<'_>,
) -> Result<Parsed, ApiError> {
    let query = Query::parse(raw.query)?;
    let op = raw.op;
    let want_raw = match query.get("include") {
        None => false,
        Some("raw") if principal.has_scope("raw:read") => true,
        Some("raw") => return Err(ApiError::forbidden("include=raw needs scope raw:read")),
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "include={other:?} is not supported; use include=raw"
            )))
        }
    };
    let tenant = &principal.tenant;

    // The parameters each operation takes; anything else is a caller bug worth reporting.
    let mut allowed: Vec<&str> = Vec::new();
    if op.is_read() {
        allowed.push("include");
    }
    match op {
        Operation::ContactsList | Operation::ConversationsList => {
            allowed.extend(["limit", "cursor", "connection"]);
            allowed.extend(api_filters(op));
        }
        Operation::MessagesList => {
            allowed.extend(["limit", "cursor", "connection"]);
            if raw.path_id.is_none() {
                allowed.push("conversation_id");
            }
        }
        Operation::ContactsCreate | Operation::ConversationsCreate => allowed.push("connection"),
        _ => {}
    }
    query.only(&allowed)?;
    let selector = selector(&query, raw.connection_header)?;

    let mut bound_to = String::new();
    let (connection, request) = match op {
        Operation::ContactsGet | Operation::ContactsDelete => {
            let (conn, id) = by_id(snapshot, tenant, Kind::Contact, raw.path_id)?;
            let req = if op == Operation::ContactsGet {
                OperationRequest::ContactsGet(id)
            } else {
                no_body(raw.body)?;
                OperationRequest::ContactsDelete(id)
            };
            (conn, req)
        }
        Operation::ContactsUpdate => {
            let (conn, id) = by_id(snapshot, tenant, Kind::Contact, raw.path_id)?;
            (
                conn,
                OperationRequest::ContactsUpdate(id, json_body(raw.body)?),
            )
        }
        Operation::ConversationsGet | Operation::ConversationsDelete => {
            let (conn, id) = by_id(snapshot, tenant, Kind::Conversation, raw.path_id)?;
            let req = if op == Operation::ConversationsGet {
                OperationRequest::ConversationsGet(id)
            } else {
                no_body(raw.body)?;
                OperationRequest::ConversationsDelete(id)
            };
            (conn, req)
        }
        Operation::ConversationsUpdate => {
            let (conn, id) = by_id(snapshot, tenant, Kind::Conversation, raw.path_id)?;
            let patch: crate::api::model::ConversationPatch = json_body(raw.body)?;
            if patch.is_empty() {
                return Err(ApiError::invalid(
                    "nothing to update: give at least one of status, assignee, priority, tags",
                ));
            }
            (conn, OperationRequest::ConversationsUpdate(id, patch))
        }
        Operation::MessagesGet => {
            let (conn, id) = by_id(snapshot, tenant, Kind::Message, raw.path_id)?;
            (conn, OperationRequest::MessagesGet(id))
        }
        Operation::ContactsCreate => {
            let conn = select(snapshot, tenant, selector)?;
            (conn, OperationRequest::ContactsCreate(json_body(raw.body)?))
        }
        Operation::ConversationsCreate => {
            let body: crate::api::model::ConversationCreate = json_body(raw.body)?;
            match (&body.contact_id, &body.contact) {
                (Some(_), Some(_)) => {
                    return Err(ApiError::invalid(
                        "give either contact_id or contact, not both",
                    ))
                }
                (None, None) => return Err(ApiError::invalid("contact_id or contact is required")),
                _ => {}
            }
            if let Some(contact_id) = &body.contact_id {
                let (conn, id) = by_id(snapshot, tenant, Kind::Contact, Some(contact_id))?;
                same_connection(selector, &conn)?;
                (conn, OperationRequest::ConversationsCreate(body, Some(id)))
            } else {
                let conn = select(snapshot, tenant, selector)?;
                (conn, OperationRequest::ConversationsCreate(body, None))
            }
        }
        Operation::MessagesSend => {
            let mut body: crate::api::model::MessageSend = json_body(raw.body)?;
            body.files = crate::vendors::prepare_attachments(
                &body.attachments,
                snapshot.settings.attachment_max_bytes,
            )?;
            // A file the vendor already holds (`vendor_fields`: ChatCaptain's
            // `attachment_ref`, LlamadaPro's `fileId`) is content too; the adapter checks it.
            if body.text.as_deref().is_none_or(str::is_empty)
                && body.attachments.is_empty()
                && body.template.is_none()
                && body.vendor_fields.is_empty()
            {
                return Err(ApiError::invalid(
                    "a message needs text, attachments or a template",
                ));
            }
            let (conn, id) = by_id(
                snapshot,
                tenant,
                Kind::Conversation,
                Some(&body.conversation_id),
            )?;
            (conn, OperationRequest::MessagesSend(id, body))
        }
        Operation::MessagesList => {
            let conversation = match raw.path_id {
                Some(id) => Some(id),
                None => query.get("conversation_id"),
            }
            .ok_or_else(|| ApiError::invalid("conversation_id is required"))?;
            let (conn, id) = by_id(snapshot, tenant, Kind::Conversation, Some(conversation))?;
            same_connection(selector, &conn)?;
            bound_to = format!("conversation_id={}", id.encode());
            let page = page(snapshot, &conn, op, &query, &bound_to)?;
            (conn, OperationRequest::MessagesList(id, page))
        }
        Operation::ContactsList => {
            let filters = contact_filters(&query)?;
            let conn = select(snapshot, tenant, selector)?;
            check_filters(&conn, op, &query)?;
            bound_to = filters_key(&query, op);
            let page = page(snapshot, &conn, op, &query, &bound_to)?;
            (conn, OperationRequest::ContactsList(page, filters))
        }
        Operation::ConversationsList => {
            let status = match query.get("status") {
                None => None,
                Some(s) => Some(ConversationStatus::parse(s).ok_or_else(|| {
                    ApiError::invalid(format!(
                        "status {s:?} is not one of open, pending, resolved, closed"
                    ))
                })?),
            };
            let (conn, contact) = match query.get("contact_id") {
                Some(raw_id) => {
                    let (conn, id) = by_id(snapshot, tenant, Kind::Contact, Some(raw_id))?;
                    same_connection(selector, &conn)?;
                    (conn, Some(id))
                }
                None => (select(snapshot, tenant, selector)?, None),
            };
            check_filters(&conn, op, &query)?;
            bound_to = filters_key(&query, op);
            let page = page(snapshot, &conn, op, &query, &bound_to)?;
            (
                conn,
                OperationRequest::ConversationsList(page, ConversationFilters { status, contact }),
            )
        }
    };
    if connection.supports(op).is_none() {
        return Err(ApiError::unsupported_operation(format!(
            "{} cannot {op}: see GET /v1/capabilities",
            connection.vendor
        )));
    }
    Ok(Parsed {
        op,
        connection,
        request,
        want_raw,
        filters_key: bound_to,
    })
}

/// `X-Connection` or `?connection=`; both given and different is a caller bug.
fn selector<'a>(query: &'a Query, header: Option<&'a str>) -> Result<Option<&'a str>, ApiError> {
    match (header, query.get("connection")) {
        (Some(h), Some(q)) if h != q => Err(ApiError::invalid(
            "X-Connection and ?connection= name different connections",
        )),
        (Some(h), _) => Ok(Some(h)),
        (None, q) => Ok(q),
    }
}

/// The connection a list or create call runs on.
fn select(
    snapshot: &Snapshot,
    tenant: &str,
    selector: Option<&str>,
) -> Result<Arc<Connection>, ApiError> {
    let connections = snapshot
        .tenant_connections(tenant)
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ApiError::forbidden("this tenant has no connections"))?;
    match selector {
        Some(name) => connections.get(name).cloned().ok_or_else(|| {
            ApiError::forbidden(format!("connection {name:?} is not one of this tenant's"))
        }),
        None if connections.len() == 1 => connections
            .values()
            .next()
            .cloned()
            .ok_or_else(|| ApiError::forbidden("this tenant has no connections")),
        None => {
            let names: Vec<&str> = connections.keys().map(String::as_str).collect();
            Err(ApiError::invalid(format!(
                "this tenant has several connections; pick one with X-Connection: {}",
                names.join(" | ")
            )))
        }
    }
}

/// Decode an ID and find its connection: malformed, foreign or unknown → 404, no vendor call.
fn by_id(
    snapshot: &Snapshot,
    tenant: &str,
    kind: Kind,
    raw: Option<&str>,
) -> Result<(Arc<Connection>, ObjectId), ApiError> {
    let not_found = || ApiError::not_found(format!("no such {}", kind.noun()));
    let id = raw
        .and_then(|r| ObjectId::decode(kind, r))
        .ok_or_else(not_found)?;
    if id.tenant != tenant {
        return Err(not_found());
    }
    let conn = snapshot
        .connection(tenant, &id.connection)
        .cloned()
        .ok_or_else(not_found)?;
    // Keys the vendor could not have issued never reach it (`DELETE …/contacts/..`).
    if !keys_match(adapter_for(conn.vendor).key_grammar(kind), &id.keys) {
        return Err(not_found());
    }
    Ok((conn, id))
}

fn same_connection(selector: Option<&str>, conn: &Connection) -> Result<(), ApiError> {
    match selector {
        Some(name) if name != conn.name => Err(ApiError::invalid(format!(
            "the ID belongs to connection {:?}, not {name:?}",
            conn.name
        ))),
        _ => Ok(()),
    }
}

/// Every filter given must be one the connection's vendor can honour: never silently dropped.
fn check_filters(conn: &Connection, op: Operation, query: &Query) -> Result<(), ApiError> {
    let supported = conn.supports(op).unwrap_or(&[]);
    for name in api_filters(op) {
        if query.get(name).is_some() && !supported.contains(name) {
            return Err(ApiError::unsupported_filter(format!(
                "{} cannot filter {op} by `{name}`; supported: {}",
                conn.vendor,
                if supported.is_empty() {
                    "none".to_owned()
                } else {
                    supported.join(", ")
                }
            )));
        }
    }
    Ok(())
}

fn contact_filters(query: &Query) -> Result<ContactFilters, ApiError> {
    let handle = match query.get("handle") {
        None => None,
        Some(raw) => {
            let (channel, value) = raw
                .split_once(':')
                .filter(|(_, v)| !v.is_empty())
                .ok_or_else(|| {
                    ApiError::invalid("handle must look like channel:value, e.g. line:U123")
                })?;
            let channel = HandleChannel::parse(channel).ok_or_else(|| {
                ApiError::invalid(format!(
                    "handle channel {channel:?} is not one of line, whatsapp, web, email, phone, other"
                ))
            })?;
            Some(Handle {
                channel,
                value: value.to_owned(),
            })
        }
    };
    let non_empty = |name: &str| -> Result<Option<String>, ApiError> {
        match query.get(name) {
            Some("") => Err(ApiError::invalid(format!("{name} must not be empty"))),
            other => Ok(other.map(str::to_owned)),
        }
    };
    Ok(ContactFilters {
        q: non_empty("q")?,
        email: non_empty("email")?,
        phone: non_empty("phone")?,
        handle,
    })
}

/// The filters, canonically ordered, that a cursor is bound to.
fn filters_key(query: &Query, op: Operation) -> String {
    let mut key = String::new();
    for name in api_filters(op) {
        if let Some(v) = query.get(name) {
            key.push_str(name);
            key.push('=');
            key.push_str(v);
            key.push('&');
        }
    }
    key
}

fn page(
    snapshot: &Snapshot,
    conn: &Connection,
    op: Operation,
    query: &Query,
    filters: &str,
) -> Result<Page, ApiError> {
    let limit = match query.get("limit") {
        None => DEFAULT_LIMIT,
        Some(raw) => raw
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or_else(|| {
                ApiError::invalid(format!("limit must be an integer from 1 to {MAX_LIMIT}"))
            })?,
    };
    let cursor = match query.get("cursor") {
        None => None,
        Some(raw) => Some(
            snapshot
                .cursors
                .decode(&cursor_scope(conn, op, filters), raw)?,
        ),
    };
    Ok(Page { limit, cursor })
}

/// What a list's cursors are bound to.
pub fn cursor_scope<'a>(conn: &'a Connection, op: Operation, filters: &'a str) -> CursorScope<'a> {
    CursorScope {
        tenant: &conn.tenant,
        connection: &conn.name,
        operation: op.as_str(),
        filters,
    }
}

fn json_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    // Every body of the API is a JSON object. Checked before serde sees it: a derived
    // struct also accepts an array and maps it by position (`["closed"]` as a patch).
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        None => return Err(ApiError::invalid("a JSON body is required")),
        Some(b'{') => {}
        Some(_) => return Err(ApiError::invalid("the JSON body must be an object")),
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            ApiError::invalid(format!("invalid JSON body: {inner}"))
        } else {
            ApiError::invalid(format!("invalid JSON body at `{path}`: {inner}"))
        }
    })?;
    de.end()
        .map_err(|e| ApiError::invalid(format!("invalid JSON body: {e}")))?;
    Ok(value)
}

fn no_body(body: &[u8]) -> Result<(), ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        Ok(())
    } else {
        Err(ApiError::invalid("this operation takes no body"))
    }
}

/// Whether a `Content-Type` names JSON: `application/json` or any `*/*+json` type (RFC 6839),
/// case-insensitive, with parameters allowed — but a `charset` other than UTF-8 is not JSON
/// (RFC 8259 §8.1).
pub fn is_json_media_type(content_type: &str) -> bool {
    let mut parts = content_type.split(';');
    let essence = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    let json = match essence.split_once('/') {
        Some((kind, subtype)) => {
            !kind.is_empty()
                && !kind.contains(char::is_whitespace)
                && (essence == "application/json"
                    || subtype
                        .strip_suffix("+json")
                        .is_some_and(|s| !s.is_empty() && !s.contains(char::is_whitespace)))
        }
        None => false,
    };
    json && parts.all(|param| match param.split_once('=') {
        Some((name, value)) if name.trim().eq_ignore_ascii_case("charset") => {
            let value = value.trim().trim_matches('"');
            value.eq_ignore_ascii_case("utf-8") || value.eq_ignore_ascii_case("utf8")
        }
        _ => true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_media_types() {
        for ok in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            "application/json;charset=\"UTF-8\"",
            "application/merge-patch+json",
            "application/vnd.api+json",
            "application/problem+json; charset=utf-8",
        ] {
            assert!(is_json_media_type(ok), "{ok}");
        }
        for bad in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonx",
            "application/+json",
            "json",
            "",
            "application/json; charset=latin1",
            "text/json+xml",
        ] {
            assert!(!is_json_media_type(bad), "{bad}");
        }
    }

    #[test]
    fn a_body_must_be_a_json_object() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Patch {
            status: Option<String>,
        }
        assert!(json_body::<Patch>(br#" {"status": "closed"}"#).is_ok());
        for bad in [
            &b"[]"[..],
            b"[\"closed\"]",
            b"\"closed\"",
            b"1",
            b"null",
            b"true",
        ] {
            let err = json_body::<Patch>(bad).unwrap_err();
            assert_eq!(err.code, crate::api::ErrorCode::InvalidRequest);
            assert!(err.detail.contains("object"), "{}", err.detail);
        }
        assert!(json_body::<Patch>(b"  ")
            .unwrap_err()
            .detail
            .contains("required"));
    }
}
