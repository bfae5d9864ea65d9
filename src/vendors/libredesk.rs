//! Libredesk adapter: the normalized API over Libredesk's REST API (`/api/v1`).
//!
//! Libredesk quirks this adapter hides from callers:
//!
//! - **Envelope.** Every answer is `{"status":"success","data":…}`; errors are
//!   `{"status":"error","message":…,"data":null,"error_type":…}` (the published OpenAPI calls
//!   the text `error`; both are read). A 2xx that is not a success envelope is
//!   `vendor_bad_response`; a non-2xx is mapped by status through `wire::status_error` with
//!   the vendor's message.
//! - **Contact update is a multipart full replace.** `PUT /contacts/{id}` takes
//!   `multipart/form-data`, requires `first_name` and `email`, and clears whatever is left out
//!   (an absent `avatar_url` deletes the avatar). A PATCH therefore reads the contact, merges,
//!   and writes every field back. The phone's calling-code field changed name between Libredesk
//!   versions (`phone_number_country_code` in the published document and older servers,
//!   `phone_number_calling_code` in newer ones): both are read, and both are written with the
//!   same value. Libredesk has no company field and no contact custom fields in that form, so
//!   `company` and non-email `handles` are refused and `custom_fields` are left untouched.
//! - **Messages are sent as HTML with `sender_type: "agent"`.** The OpenAPI omits
//!   `sender_type`, but the server refuses a message without it. Plain text is escaped and
//!   wrapped in `<p>…</p>` (newlines become `<br>`); on the way back `text` is derived from the
//!   stored HTML.
//! - **Attachments are uploaded first.** Each file of `attachments` (bytes only: `data`) goes
//!   to `POST /api/v1/media` as the multipart part `files`; the message then carries the
//!   returned media ids (after any ids given in `vendor_fields.attachments`). A failed upload
//!   ends the send before the message call, so no message goes out; files uploaded before it
//!   stay in Libredesk's media store, unattached (Libredesk publishes no media delete).
//! - **Status names are words, not codes.** `Open`, `Snoozed`, `Resolved`, `Closed` map to
//!   open, pending, resolved, closed; a custom status maps through its `status_category` when
//!   the server sends one, else to open, and `vendor_status` always carries the vendor's word.
//!   Snoozing needs `snoozed_until` as a Go duration (`"24h"`, the default;
//!   `vendor_fields.snoozed_until` overrides). Priorities are Low, Medium and High only.
//! - **Search has no paging.** `GET /contacts/search?query=` needs at least three characters
//!   and answers a plain array: the adapter applies `limit` itself and never returns a cursor.
//!   The other lists page by `page`/`page_size`; the cursor carries `{"page": n}`.
//! - **Conversation list filters** are a JSON array of `{model, field, operator, value}` in one
//!   query parameter; status is filtered on the status *name*
//!   (`conversation_statuses.name`), and ordering is `order_by=conversations.last_message_at`.
//! - **No create/delete for contacts** (contacts come into being with conversations) and no
//!   conversation delete: those operations answer 501.

use std::borrow::Cow;

use async_trait::async_trait;
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::common::attachment::{self, AttachmentSupport};
use super::common::typed::{self, lenient_strings, opt_text, parse_body, present, Text};
use super::common::{
    assignee_id, attachment_type, bad_response, check_status, cursor_number, ep, error_text,
    filter, filter_via, int_field, int_key, join_name, keys, message_status, non_empty, not_served,
    op, owned_non_empty, parse_wire, phone, required_int, split_name, split_names, Mapper,
};
use super::{Adapter, CallContext, EndpointSpec, OperationSpec};
use crate::snapshot::routes::VendorRoutes;
// The upstream client's types.
use super::{VendorBody, VendorCall, VendorResponse};
use crate::api::ids::{KeyGrammar, Kind, ObjectId};
use crate::api::model::{
    vendor_label, Assignee, Attachment, Channel, Contact, ContactPatch, Conversation,
    ConversationCreate, ConversationPatch, ConversationStatus, Direction, Handle, HandleChannel,
    Message, MessageSend, MessageType, NewContact, PartialConversation, Priority, Sender,
    SenderType, UnknownFields,
};
use crate::api::operation::{Operation::*, Vendor};
use crate::api::request::{
    ContactFilters, ConversationFilters, OperationRequest, Output, Page, Resource,
};
use crate::api::ApiError;

pub mod webhook;

pub struct Libredesk;

const VENDOR: Vendor = Vendor::Libredesk;

/// How long a conversation stays snoozed when the caller does not say (a Go duration).
const DEFAULT_SNOOZE: &str = "24h";

/// Shortest query `GET /contacts/search` accepts.
const MIN_SEARCH_CHARS: usize = 3;

/// Every Libredesk call the routes file may configure.
static ENDPOINTS: &[EndpointSpec] = &[
    ep("contacts.list", &[]),
    ep("contacts.search", &[]),
    ep("contacts.get", &["id"]),
    ep("contacts.update", &["id"]),
    ep("conversations.list", &[]),
    ep("conversations.get", &["uuid"]),
    ep("conversations.create", &[]),
    ep("conversations.update_status", &["uuid"]),
    ep("conversations.assign_user", &["uuid"]),
    ep("conversations.assign_team", &["uuid"]),
    ep("conversations.unassign_user", &["uuid"]),
    ep("conversations.unassign_team", &["uuid"]),
    ep("conversations.update_priority", &["uuid"]),
    ep("conversations.update_tags", &["uuid"]),
    ep("messages.list", &["uuid"]),
    ep("messages.get", &["uuid", "message_uuid"]),
    ep("messages.send", &["uuid"]),
    ep("media.upload", &[]),
];

/// What the adapter serves, and the calls each operation needs. contacts.create and
/// contacts.delete are absent: Libredesk has no such routes (contacts come from
/// conversations: POST /v1/conversations with contact: {name, email}), nor
/// conversations.delete (close one with PATCH {"status": "closed"}); so they answer 501 and
/// capabilities leave them out.
#[rustfmt::skip]
static OPERATIONS: &[OperationSpec] = &[
    op(ContactsList,        &["contacts.list"]).filters(&[filter_via("q", "contacts.search")]),
    op(ContactsGet,         &["contacts.get"]),
    op(ContactsUpdate,      &["contacts.get", "contacts.update"]),
    op(ConversationsList,   &["conversations.list"]).filters(&[filter("status")]),
    op(ConversationsGet,    &["conversations.get"]),
    op(ConversationsCreate, &["conversations.create"]),
    op(ConversationsUpdate, &["conversations.get", "conversations.update_status"]),
    op(MessagesList,        &["messages.list"]),
    op(MessagesGet,         &["messages.get"]),
    op(MessagesSend,        &["messages.send"]),
];

#[async_trait]
impl Adapter for Libredesk {
    /// Contacts by integer id; conversations by uuid; messages by conversation uuid + uuid.
    fn key_grammar(&self, kind: Kind) -> &'static [KeyGrammar] {
        use KeyGrammar::{PositiveInteger, Uuid};
        match kind {
            Kind::Contact => &[PositiveInteger],
            Kind::Conversation => &[Uuid],
            Kind::Message => &[Uuid, Uuid],
        }
    }
    fn vendor(&self) -> Vendor {
        VENDOR
    }
    fn endpoints(&self) -> &'static [EndpointSpec] {
        ENDPOINTS
    }
    fn operations(&self) -> &'static [OperationSpec] {
        OPERATIONS
    }
    fn required_defaults(&self) -> &'static [&'static str] {
        &["inbox_id"]
    }
    /// Files are uploaded to `POST /api/v1/media` (the bytes: the gateway fetches no URL),
    /// then sent as the message's media ids.
    fn attachments(&self, routes: &VendorRoutes) -> Option<AttachmentSupport> {
        routes.has("media.upload").then_some(AttachmentSupport {
            sources: &["data"],
            max_count: attachment::MAX_ATTACHMENTS,
        })
    }

    /// One arm per operation; each arm only sequences vendor calls; building requests and
    /// mapping answers is done by the pure functions below.
    async fn execute(
        &self,
        ctx: &mut CallContext<'_>,
        request: OperationRequest,
    ) -> Result<Output, ApiError> {
        match request {
            OperationRequest::ContactsList(page, filters) => {
                list_contacts(ctx, &page, &filters).await
            }
            OperationRequest::ContactsGet(id) => {
                let key = contact_key(&id)?;
                let response = ctx.call("contacts.get", contact_call(key)).await?;
                let mapper = Mapper::new(ctx);
                let wire = read_object(&response, "contact")?;
                let contact = contact_from_wire(&mapper, wire, raw_data(&mapper, &response))?;
                Ok(Output::Found(contact.into()))
            }
            OperationRequest::ContactsUpdate(id, patch) => update_contact(ctx, &id, &patch).await,
            OperationRequest::ConversationsList(page, filters) => {
                list_conversations(ctx, &page, &filters).await
            }
            OperationRequest::ConversationsGet(id) => {
                let uuid = conversation_key(&id)?;
                let conversation = get_conversation(ctx, uuid).await?;
                Ok(Output::Found(conversation.into()))
            }
            OperationRequest::ConversationsCreate(body, contact_id) => {
                create_conversation(ctx, &body, contact_id.as_ref()).await
            }
            OperationRequest::ConversationsUpdate(id, patch) => {
                update_conversation(ctx, &id, &patch).await
            }
            OperationRequest::MessagesList(conversation_id, page) => {
                list_messages(ctx, &conversation_id, &page).await
            }
            OperationRequest::MessagesGet(id) => {
                let (conversation_uuid, message_uuid) = message_keys(&id)?;
                let message = get_message(ctx, conversation_uuid, message_uuid).await?;
                Ok(Output::Found(message.into()))
            }
            OperationRequest::MessagesSend(conversation_id, body) => {
                send_message(ctx, &conversation_id, &body).await
            }
            _ => Err(not_served(ctx)),
        }
    }
}

// ----- operations: call sequencing only ------------------------------------------------------

/// Make one call and unwrap the success envelope.
async fn fetch(
    ctx: &mut CallContext<'_>,
    endpoint: &'static str,
    call: VendorCall,
) -> Result<Value, ApiError> {
    let response = ctx.call(endpoint, call).await?;
    read_data(&response)
}

fn contact_call(id: i64) -> VendorCall {
    VendorCall::new().param("id", id.to_string())
}

fn conversation_call(uuid: &str) -> VendorCall {
    VendorCall::new().param("uuid", uuid)
}

fn page_call(page: u64, limit: u32) -> VendorCall {
    VendorCall::new()
        .query("page", page.to_string())
        .query("page_size", limit.to_string())
}

async fn list_contacts(
    ctx: &mut CallContext<'_>,
    page: &Page,
    filters: &ContactFilters,
) -> Result<Output, ApiError> {
    // The gateway rejects filters missing from OPERATIONS; this guards the adapter anyway.
    if filters.email.is_some() || filters.phone.is_some() || filters.handle.is_some() {
        return Err(ApiError::unsupported_filter(
            "libredesk can only search contacts by q (name or email text); email, phone and \
             handle filters are not available",
        ));
    }
    if let Some(q) = &filters.q {
        let query = search_query(q)?;
        if !ctx.connection.routes.has("contacts.search") {
            return Err(ApiError::unsupported_filter(
                "this connection has no contacts.search route, so q is not available",
            ));
        }
        let data = search_contacts(ctx, query, page.limit).await?;
        return Ok(Output::List { data, next: None });
    }
    let number = page_number(page)?;
    let response = ctx
        .call("contacts.list", page_call(number, page.limit))
        .await?;
    contacts_page(&Mapper::new(ctx), &response, number, page.limit)
}

async fn update_contact(
    ctx: &mut CallContext<'_>,
    id: &ObjectId,
    patch: &ContactPatch,
) -> Result<Output, ApiError> {
    let key = contact_key(id)?;
    check_contact_patch(patch)?;
    let current = fetch(ctx, "contacts.get", contact_call(key)).await?;
    let form = merge_contact(&parse_contact(&current)?, patch)?;
    let updated = fetch(ctx, "contacts.update", contact_call(key).body(form.body())).await?;
    // Libredesk answers the re-read contact; an older or odd server may answer less.
    let updated = if updated.get("id").is_some_and(Value::is_i64) {
        updated
    } else {
        fetch(ctx, "contacts.get", contact_call(key)).await?
    };
    let contact = translate_contact(&Mapper::new(ctx), &updated)?;
    Ok(Output::Found(contact.into()))
}

async fn list_conversations(
    ctx: &mut CallContext<'_>,
    page: &Page,
    filters: &ConversationFilters,
) -> Result<Output, ApiError> {
    if filters.contact.is_some() {
        return Err(ApiError::unsupported_filter(
            "libredesk cannot list conversations by contact_id",
        ));
    }
    let number = page_number(page)?;
    let mut call = page_call(number, page.limit)
        .query("order_by", "conversations.last_message_at")
        .query("order", "desc");
    if let Some(status) = filters.status {
        call = call.query("filters", status_filter(status));
    }
    let response = ctx.call("conversations.list", call).await?;
    conversations_page(&Mapper::new(ctx), &response, number, page.limit)
}

async fn get_conversation(
    ctx: &mut CallContext<'_>,
    uuid: &str,
) -> Result<PartialConversation, ApiError> {
    let response = ctx
        .call("conversations.get", conversation_call(uuid))
        .await?;
    let mapper = Mapper::new(ctx);
    let wire = read_object(&response, "conversation")?;
    conversation_from_wire(&mapper, wire, raw_data(&mapper, &response))
}

async fn create_conversation(
    ctx: &mut CallContext<'_>,
    body: &ConversationCreate,
    contact_id: Option<&ObjectId>,
) -> Result<Output, ApiError> {
    // Everything that can be checked without the vendor is checked first.
    let fields = &body.vendor_fields;
    let fields = CreateFields {
        inbox_id: required_int(ctx, fields, "inbox_id", "the id of an email inbox")?,
        agent_id: int_field("agent_id", ctx.vendor_field("agent_id", fields))?,
        team_id: int_field("team_id", ctx.vendor_field("team_id", fields))?,
        attachments: media_ids(fields.get("attachments"))?,
    };
    check_conversation_create(body)?;

    // contact_id wins over contact when both are given: it names an existing contact.
    let identity = match (contact_id, &body.contact) {
        (Some(id), _) => {
            let key = contact_key(id)?;
            ctx.require_routes(
                ["contacts.get"],
                "start a conversation with a contact_id; pass contact: {name, email}",
            )?;
            let data = fetch(ctx, "contacts.get", contact_call(key)).await?;
            identity_from_vendor(&parse_contact(&data)?)?
        }
        (None, Some(contact)) => identity_from_body(contact)?,
        (None, None) => {
            return Err(ApiError::invalid(
                "libredesk needs a contact: pass contact_id, or contact: {name, email}",
            ))
        }
    };
    let request = conversation_create_body(body, &identity, &fields)?;
    let data = fetch(
        ctx,
        "conversations.create",
        VendorCall::new().body(VendorBody::json(&request)),
    )
    .await?;
    let uuid = data
        .get("uuid")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| bad_response(VENDOR, "created conversation has no uuid"))?;
    // Libredesk answers the full conversation; fall back to reading it when it does not.
    let conversation = if data.get("status").is_some() {
        translate_conversation(&Mapper::new(ctx), &data)?
    } else {
        get_conversation(ctx, &uuid).await?
    };
    Ok(Output::Created(conversation.into()))
}

async fn update_conversation(
    ctx: &mut CallContext<'_>,
    id: &ObjectId,
    patch: &ConversationPatch,
) -> Result<Output, ApiError> {
    let uuid = conversation_key(id)?;
    let snooze = ctx
        .vendor_field("snoozed_until", &patch.vendor_fields)
        .cloned();
    let plan = plan_conversation_update(patch, snooze.as_ref())?;
    let endpoints = plan.iter().map(|c| c.endpoint);
    ctx.require_routes(endpoints.chain(["conversations.get"]), "make this change")?;
    for planned in plan {
        let mut call = conversation_call(uuid);
        if let Some(body) = &planned.body {
            call = call.body(VendorBody::json(body));
        }
        fetch(ctx, planned.endpoint, call).await?;
    }
    let conversation = get_conversation(ctx, uuid).await?;
    Ok(Output::Found(conversation.into()))
}

async fn list_messages(
    ctx: &mut CallContext<'_>,
    conversation_id: &ObjectId,
    page: &Page,
) -> Result<Output, ApiError> {
    let uuid = conversation_key(conversation_id)?.to_owned();
    let number = page_number(page)?;
    // Messages only: without `type`, Libredesk also lists its `activity` entries (status,
    // assignee, priority and tag changes), which are no messages anyone sent.
    let call = page_call(number, page.limit)
        .param("uuid", uuid.clone())
        .query("type", "incoming")
        .query("type", "outgoing");
    let response = ctx.call("messages.list", call).await?;
    messages_page(&Mapper::new(ctx), &response, &uuid, number, page.limit)
}

async fn get_message(
    ctx: &mut CallContext<'_>,
    conversation_uuid: &str,
    message_uuid: &str,
) -> Result<Message, ApiError> {
    let call = conversation_call(conversation_uuid).param("message_uuid", message_uuid);
    let response = ctx.call("messages.get", call).await?;
    let mapper = Mapper::new(ctx);
    let wire = read_object(&response, "message")?;
    message_from_wire(
        &mapper,
        wire,
        Some(conversation_uuid),
        raw_data(&mapper, &response),
    )
}

/// Most contacts `GET /contacts` is read for to find search results without an id: ten
/// pages of [`RESOLVE_PAGE_SIZE`].
const RESOLVE_MAX_PAGES: u64 = 10;
/// The page size of that scan: the published maximum.
const RESOLVE_PAGE_SIZE: u32 = 100;

/// `q`: `GET /contacts/search?query=` (no paging; `limit` applied here). The published
/// `ContactSearchResult` has no `id` (`{created_at, first_name, last_name, email}`), and a
/// contact nobody can address is no answer, so results without one are found by email in
/// `GET /contacts`, page after page (at most [`RESOLVE_MAX_PAGES`] of
/// [`RESOLVE_PAGE_SIZE`]), and answered as that list item. A result that scan cannot find is
/// `vendor_bad_response` naming it: never a contact without an id, never silently dropped.
async fn search_contacts(
    ctx: &mut CallContext<'_>,
    query: &str,
    limit: u32,
) -> Result<Vec<Resource>, ApiError> {
    let response = ctx
        .call("contacts.search", VendorCall::new().query("query", query))
        .await?;
    let mapper = Mapper::new(ctx);
    let hits = search_hits(&mapper, &response, limit)?;
    let mut wanted: Vec<&str> = hits
        .iter()
        .filter_map(|hit| match hit {
            SearchHit::ByEmail(email) => Some(email.as_str()),
            SearchHit::Found(_) => None,
        })
        .collect();
    let mut found: Vec<(String, Contact)> = Vec::new();
    if !wanted.is_empty() {
        ctx.require_routes(["contacts.list"], "find search results that have no id")?;
        let mut number = 1;
        while !wanted.is_empty() && number <= RESOLVE_MAX_PAGES {
            let response = ctx
                .call("contacts.list", page_call(number, RESOLVE_PAGE_SIZE))
                .await?;
            let Output::List { data, next } =
                contacts_page(&mapper, &response, number, RESOLVE_PAGE_SIZE)?
            else {
                break;
            };
            for resource in data {
                let Resource::Contact(contact) = resource else {
                    continue;
                };
                let email = contact.emails.first().map(|e| e.to_ascii_lowercase());
                if let Some(email) = email.filter(|e| wanted.contains(&e.as_str())) {
                    wanted.retain(|w| *w != email);
                    found.push((email, *contact));
                }
            }
            if next.is_none() {
                break;
            }
            number += 1;
        }
        if let Some(missing) = wanted.first() {
            return Err(bad_response(
                VENDOR,
                format!(
                    "a search result has no id, and its email {missing} is not among the first \
                     {} contacts to find it by",
                    RESOLVE_MAX_PAGES * u64::from(RESOLVE_PAGE_SIZE)
                ),
            ));
        }
    }
    Ok(hits
        .into_iter()
        .filter_map(|hit| match hit {
            SearchHit::Found(contact) => Some(contact.into()),
            SearchHit::ByEmail(email) => found
                .iter()
                .find(|(e, _)| *e == email)
                .map(|(_, c)| Resource::from(c.clone())),
        })
        .collect())
}

async fn send_message(
    ctx: &mut CallContext<'_>,
    conversation_id: &ObjectId,
    body: &MessageSend,
) -> Result<Output, ApiError> {
    let uuid = conversation_key(conversation_id)?;
    let files = attachment::data_only(VENDOR, &body.files, attachment::MAX_ATTACHMENTS)?;
    let mut request = message_send_body(body)?;
    if !files.is_empty() && !ctx.connection.routes.has("media.upload") {
        return Err(attachment::refused(
            VENDOR,
            "this connection's routes have no media.upload call",
        ));
    }
    // Upload first, one file per call; a failed upload stops here and sends no message.
    let mut media = Vec::with_capacity(files.len());
    for (file, bytes) in files {
        let call = VendorCall::new().body(attachment::multipart_file("files", file, bytes, &[]));
        let uploaded = fetch(ctx, "media.upload", call).await?;
        media.push(uploaded_media_id(&uploaded)?);
    }
    if let Some(Value::Array(ids)) = request.get_mut("attachments") {
        ids.extend(media.into_iter().map(Value::from));
    }
    let data = fetch(
        ctx,
        "messages.send",
        conversation_call(uuid).body(VendorBody::json(&request)),
    )
    .await?;
    let message_uuid = data
        .get("uuid")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| bad_response(VENDOR, "sent message has no uuid"))?;
    // Libredesk answers the stored message; read it back if the answer is only a stub.
    let message = if data.get("type").is_some() {
        translate_message(&Mapper::new(ctx), &data, Some(uuid))?
    } else {
        get_message(ctx, uuid, &message_uuid).await?
    };
    Ok(Output::Created(message.into()))
}

/// The media id of a `POST /api/v1/media` answer (`data` is the `Media` object).
fn uploaded_media_id(data: &Value) -> Result<i64, ApiError> {
    data.get("id")
        .and_then(Value::as_i64)
        .filter(|id| *id > 0)
        .ok_or_else(|| bad_response(VENDOR, "uploaded media has no integer id"))
}

// ----- IDs and cursors -----------------------------------------------------------------------

/// A contact ID carries Libredesk's integer id, a conversation ID its uuid, a message ID the
/// conversation's uuid and its own ([`Libredesk::key_grammar`]); anything else is not one of
/// ours (404, and no vendor call).
fn contact_key(id: &ObjectId) -> Result<i64, ApiError> {
    let [key] = keys(&Libredesk, id)?;
    int_key(id, key)
}

fn conversation_key(id: &ObjectId) -> Result<&str, ApiError> {
    let [uuid] = keys(&Libredesk, id)?;
    Ok(uuid)
}

fn message_keys(id: &ObjectId) -> Result<(&str, &str), ApiError> {
    let [conversation, message] = keys(&Libredesk, id)?;
    Ok((conversation, message))
}

/// The page a list request asks for: 1 without a cursor, else the cursor's `{"page": n}`.
fn page_number(page: &Page) -> Result<u64, ApiError> {
    cursor_number(page, "page", 1, "libredesk page")
}

fn search_query(q: &str) -> Result<&str, ApiError> {
    let q = q.trim();
    if q.chars().count() < MIN_SEARCH_CHARS {
        return Err(ApiError::invalid(format!(
            "q needs at least {MIN_SEARCH_CHARS} characters for libredesk"
        )));
    }
    Ok(q)
}

// ----- the wire format -----------------------------------------------------------------------
//
// Wire structs are read straight from the vendor's bytes (`common::typed`): strings borrow
// from the body, fields the translation does not read are skipped unbuilt, and `raw` is
// built as a tree only when the caller asked for it.

/// Every Libredesk answer: `{"status":"success","data":…}` or
/// `{"status":"error","message":…,"data":null,"error_type":…}`; `T` is what `data` holds.
#[derive(Debug, Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
struct Envelope<'a, T> {
    #[serde(borrow, deserialize_with = "typed::text")]
    status: Text<'a>,
    data: Option<T>,
    #[serde(default, borrow, deserialize_with = "opt_text")]
    message: Option<Text<'a>>,
}

/// `data` of a paged list. `results` is `null` when the page is empty (a Go nil slice), and
/// absent only from a broken answer.
#[derive(Debug, Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
struct PageData<T> {
    #[serde(default, deserialize_with = "present")]
    results: Option<Option<Vec<T>>>,
    #[serde(default)]
    total: Option<u64>,
    #[serde(default)]
    per_page: Option<u64>,
    #[serde(default)]
    total_pages: Option<u64>,
}

/// The counts of a page, for the next cursor.
#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    total: Option<u64>,
    per_page: Option<u64>,
    total_pages: Option<u64>,
}

/// A contact: the full `Contact`, a `ContactList` item, or a `ContactSearchResult` (which the
/// published document gives no `id`: see [`search_contacts`]).
#[derive(Debug, Deserialize)]
struct WireContact<'a> {
    #[serde(default)]
    id: Option<i64>,
    #[serde(default, borrow, deserialize_with = "opt_text")]
    first_name: Option<Text<'a>>,
    #[serde(default, borrow, deserialize_with = "opt_text")]
    last_name: Option<Text<'a>>,
    #[serde(default, borrow, deserialize_with = "opt_text")]
    email: Option<Text<'a>>,
    #[serde(default, borrow, deserialize_with = "opt_text")]
    phone_number: Option<Text<'a>>,
    /// Newer servers.
    #[serde(default, borrow, deserialize_with = "opt_text")]
    phone_number_calling_code: Option<Text<'a>>,
    /// The published OpenAPI and older servers.
    #[serde(default, borrow, deserialize_with = "opt_text")]
    phone_number_country_code: Option<Text<'a>>,
    #[serde(default, borrow, deserialize_with = "opt_text")]
    avatar_url: Option<Text<'a>>,
    #[serde(default, deserialize_with = "typed::object_or_empty")]
    custom_attributes: Map<String, Value>,
    #[serde(default, borrow, deserialize_with = "opt_text")]
    created_at: Option<Text<'a>>,
    #[serde(default, borrow, deserialize_with = "opt_text")]
    updated_at: Option<Text<'a>>,
}

impl WireContact<'_> {
    fn calling_code(&self) -> Option<&str> {
        non_empty(self.phone_number_calling_code.as_deref())
            .or_else(|| non_empty(self.phone_number_country_code.as_deref()))
    }
}

/// The contact inside a conversation: full (with `id`) in `GET /conversations/{uuid}`, a
/// `ContactSummary` without `id` in list items.
#[derive(Debug, Deserialize)]
struct WireContactRef {
    #[serde(default, deserialize_with = "present")]
    id: Option<Option<i64>>,
}

/// A conversation: the full `Conversation`, or a `ConversationListItem`, which has no
/// `contact_id`, no assignee ids and no `tags`. `Option<Option<_>>` fields tell "absent" (not
/// known in this view) from `null` (known to be none).
#[derive(Debug, Deserialize)]
struct WireConversation<'a> {
    #[serde(borrow, deserialize_with = "typed::text")]
    uuid: Text<'a>,
    #[serde(default, borrow, deserialize_with = "opt_text")]
    created_at: Option<Text<'a>>,
    #[serde(default, borrow, deserialize_with = "opt_text")]
    updated_at: Option<Text<'a>>,
    #[serde(default, deserialize_with = "present")]
    contact_id: Option<Option<i64>>,
    #[serde(default)]
    contact: Option<WireContactRef>,
    #[serde(default, borrow, deserialize_with = "opt_text")]
    inbox_channel: Option<Text<'a>>,
    #[serde(default, borrow, deserialize_with = "opt_text")]
    status: Option<Text<'a>>,
    /// Newer servers: open | waiting | resolved | closed, also for custom statuses.
    #[serde(default, borrow, deserialize_with = "opt_text")]
    status_category: Option<Text<'a>>,
    #[serde(default, borrow, deserialize_with = "opt_text")]
    priority: Option<Text<'a>>,
    #[serde(default, borrow, deserialize_with = "opt_text")]
    subject: Option<Text<'a>>,
    #[serde(default, deserialize_with = "present")]
    assigned_user_id: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    assigned_team_id: Option<Option<i64>>,
    #[serde(default, borrow, deserialize_with = "lenient_strings")]
    tags: Option<Vec<Text<'a>>>,
    #[serde(default, borrow, deserialize_with = "opt_text")]
    last_message_at: Option<Text<'a>>,
}

#[derive(Debug, Deserialize)]
struct WireMessage<'a> {
    #[serde(borrow, deserialize_with = "typed::text")]
    uuid: Text<'a>,
    #[serde(default, borrow, deserialize_with = "opt_text")]
    conversation_uuid: Option<Text<'a>>,
    #[serde(rename = "type", default, borrow, deserialize_with = "opt_text")]
    kind: Option<Text<'a>>,
    #[serde(default, borrow, deserialize_with = "opt_text")]
    status: Option<Text<'a>>,
    #[serde(default, borrow, deserialize_with = "opt_text")]
    content: Option<Text<'a>>,
    #[serde(default, borrow, deserialize_with = "opt_text")]
    text_content: Option<Text<'a>>,
    #[serde(default, borrow, deserialize_with = "opt_text")]
    content_type: Option<Text<'a>>,
    #[serde(default)]
    private: Option<bool>,
    #[serde(default)]
    sender_id: Option<i64>,
    #[serde(default, borrow, deserialize_with = "opt_text")]
    sender_type: Option<Text<'a>>,
    #[serde(default, borrow)]
    attachments: Option<Vec<WireAttachment<'a>>>,
    #[serde(default, borrow)]
    author: Option<WireAuthor<'a>>,
    #[serde(default, borrow, deserialize_with = "opt_text")]
    created_at: Option<Text<'a>>,
    #[serde(default, borrow, deserialize_with = "opt_text")]
    updated_at: Option<Text<'a>>,
}

#[derive(Debug, Deserialize)]
struct WireAttachment<'a> {
    #[serde(default, borrow, deserialize_with = "opt_text")]
    name: Option<Text<'a>>,
    /// Media objects name the file `filename`.
    #[serde(default, borrow, deserialize_with = "opt_text")]
    filename: Option<Text<'a>>,
    #[serde(default, borrow, deserialize_with = "opt_text")]
    url: Option<Text<'a>>,
    #[serde(default, borrow, deserialize_with = "opt_text")]
    content_type: Option<Text<'a>>,
    #[serde(default)]
    size: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct WireAuthor<'a> {
    #[serde(default, borrow, deserialize_with = "opt_text")]
    first_name: Option<Text<'a>>,
    #[serde(default, borrow, deserialize_with = "opt_text")]
    last_name: Option<Text<'a>>,
}

/// `data` of `GET /contacts/search`: a plain array (the published document), or a page
/// (newer servers); `null` is no results.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum SearchData<'a> {
    List(#[serde(borrow)] Vec<WireContact<'a>>),
    Page {
        #[serde(borrow)]
        results: Option<Vec<WireContact<'a>>>,
    },
}

/// The vendor's error text from a non-2xx body: the server sends `message`; the published
/// OpenAPI documents `error`.
fn error_message(body: &[u8]) -> Option<String> {
    error_text(body, &["message", "error"])
}

/// Unwrap a vendor answer into `T`, borrowed from the body: non-2xx → the error table; 2xx
/// must be a success envelope whose `data` reads as `T` (`None` when `data` is absent or
/// `null`). `what` names the answer in a `vendor_bad_response`.
fn read_envelope<'a, T: Deserialize<'a>>(
    response: &'a VendorResponse,
    what: &str,
) -> Result<Option<T>, ApiError> {
    check_status(VENDOR, response, error_message)?;
    let envelope: Envelope<'a, T> = match parse_body(VENDOR, what, &response.body) {
        Ok(envelope) => envelope,
        // An error envelope whose `data` is not what a success would carry: say what the
        // envelope says, not that `data` has the wrong shape.
        Err(error) => match parse_body::<Envelope<'_, IgnoredAny>>(VENDOR, what, &response.body) {
            Ok(envelope) if envelope.status != "success" => {
                return Err(not_success(response.status, &envelope))
            }
            _ => return Err(error),
        },
    };
    if envelope.status != "success" {
        return Err(not_success(response.status, &envelope));
    }
    Ok(envelope.data)
}

/// A 2xx whose envelope does not say `success`.
fn not_success<T>(status: u16, envelope: &Envelope<'_, T>) -> ApiError {
    bad_response(
        VENDOR,
        format!(
            "status {status} with envelope status {:?}{}",
            envelope.status,
            envelope
                .message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        ),
    )
}

/// Unwrap a vendor answer into its `data` as a tree: the write paths, which read a field or
/// two of a small answer.
fn read_data(response: &VendorResponse) -> Result<Value, ApiError> {
    Ok(read_envelope::<Value>(response, "answer")?.unwrap_or(Value::Null))
}

/// The one object of an answer (`GET /contacts/{id}`, …), borrowed from the body.
fn read_object<'a, T: Deserialize<'a>>(
    response: &'a VendorResponse,
    what: &str,
) -> Result<T, ApiError> {
    read_envelope(response, what)?.ok_or_else(|| bad_response(VENDOR, format!("{what}: no data")))
}

fn parse_contact(value: &Value) -> Result<WireContact<'_>, ApiError> {
    parse_wire(VENDOR, "contact", value)
}

/// `raw` for one object answer: the tree of its `data`, built only when it is wanted.
fn raw_data(mapper: &Mapper, response: &VendorResponse) -> Option<Value> {
    mapper.raw_with(|| {
        serde_json::from_slice::<Value>(&response.body)
            .ok()
            .and_then(|mut v| v.get_mut("data").map(Value::take))
            .unwrap_or(Value::Null)
    })
}

// ----- vendor → normalized -------------------------------------------------------------------

/// A Go timestamp passed through; Go's zero time means "never".
fn timestamp(s: Option<&str>) -> Option<String> {
    non_empty(s)
        .filter(|t| !t.starts_with("0001-01-01"))
        .map(str::to_owned)
}

/// A page answer `{status, data: {results, total, per_page, total_pages, page}}` (page
/// `requested`), read item by item into `W` and translated by `translate` (with the item's
/// `raw` when the caller asked for it).
fn translate_page<'a, W: Deserialize<'a>>(
    mapper: &Mapper,
    response: &'a VendorResponse,
    what: &str,
    requested: u64,
    limit: u32,
    translate: impl Fn(W, Option<Value>) -> Result<Resource, ApiError>,
) -> Result<Output, ApiError> {
    let page: Option<PageData<W>> = read_envelope(response, what)?;
    let Some((Some(results), totals)) = page.map(|p| {
        let totals = Totals {
            total: p.total,
            per_page: p.per_page,
            total_pages: p.total_pages,
        };
        (p.results, totals)
    }) else {
        return Err(bad_response(VENDOR, "list answer has no data.results"));
    };
    let results = results.unwrap_or_default();
    let mut raws = if mapper.want_raw {
        typed::raw_items(&response.body, |mut v| {
            v.get_mut("data")?.get_mut("results").map(Value::take)
        })
    } else {
        Vec::new()
    };
    let data = results
        .into_iter()
        .enumerate()
        .map(|(i, wire)| translate(wire, typed::take_raw(&mut raws, i)))
        .collect::<Result<Vec<_>, _>>()?;
    let next = next_page(totals, requested, data.len(), limit);
    Ok(Output::List { data, next })
}

/// The answer of `contacts.list` (page `requested`) as a page of normalized contacts. Also
/// the entry point of `vendors::bench_support`.
pub(super) fn contacts_page(
    mapper: &Mapper,
    response: &VendorResponse,
    requested: u64,
    limit: u32,
) -> Result<Output, ApiError> {
    translate_page(
        mapper,
        response,
        "contacts page",
        requested,
        limit,
        |wire, raw| contact_from_wire(mapper, wire, raw).map(Resource::from),
    )
}

/// The answer of `conversations.list` (page `requested`) as a page of normalized
/// conversations, partial where the list item does not carry a field. Also the entry point
/// of `vendors::bench_support`.
pub(super) fn conversations_page(
    mapper: &Mapper,
    response: &VendorResponse,
    requested: u64,
    limit: u32,
) -> Result<Output, ApiError> {
    translate_page(
        mapper,
        response,
        "conversations page",
        requested,
        limit,
        |wire, raw| conversation_from_wire(mapper, wire, raw).map(Resource::from),
    )
}

/// The answer of `messages.list` for the conversation `uuid` as a page of normalized
/// messages.
fn messages_page(
    mapper: &Mapper,
    response: &VendorResponse,
    uuid: &str,
    requested: u64,
    limit: u32,
) -> Result<Output, ApiError> {
    translate_page(
        mapper,
        response,
        "messages page",
        requested,
        limit,
        |wire, raw| message_from_wire(mapper, wire, Some(uuid), raw).map(Resource::from),
    )
}

/// The cursor state of the page after `requested`, or None on the last page.
fn next_page(totals: Totals, requested: u64, returned: usize, limit: u32) -> Option<Value> {
    if returned == 0 {
        return None;
    }
    let more = match (totals.total_pages, totals.total, totals.per_page) {
        (Some(pages), _, _) => requested < pages,
        (None, Some(total), Some(per_page)) if per_page > 0 => requested * per_page < total,
        // No totals at all: a full page may have a successor.
        _ => returned >= limit as usize,
    };
    more.then(|| json!({ "page": requested + 1 }))
}

/// One search result, read: a contact already translated, or the email of one the answer
/// gave no `id` (the published `ContactSearchResult`), to be found in the contact list.
#[derive(Debug)]
// A short-lived list of at most `limit` hits: boxing each contact would buy nothing.
#[allow(clippy::large_enum_variant)]
enum SearchHit {
    Found(Contact),
    ByEmail(String),
}

/// `GET /contacts/search` answers a plain array (newer servers a page); `limit` is applied
/// here. A result without `id` becomes [`SearchHit::ByEmail`]; one with neither `id` nor
/// `email` cannot be a contact the caller can address and is `vendor_bad_response`.
fn search_hits(
    mapper: &Mapper,
    response: &VendorResponse,
    limit: u32,
) -> Result<Vec<SearchHit>, ApiError> {
    let data: Option<SearchData<'_>> = read_envelope(response, "search answer")
        .map_err(|_| bad_response(VENDOR, "search answer is not a list of contacts"))?;
    let items = match data {
        None => Vec::new(),
        Some(SearchData::List(items))
        | Some(SearchData::Page {
            results: Some(items),
        }) => items,
        Some(SearchData::Page { results: None }) => Vec::new(),
    };
    let mut raws = if mapper.want_raw {
        typed::raw_items(&response.body, |mut v| {
            let data = v.get_mut("data")?;
            match data {
                Value::Array(_) => Some(data.take()),
                _ => data.get_mut("results").map(Value::take),
            }
        })
    } else {
        Vec::new()
    };
    items
        .into_iter()
        .take(limit as usize)
        .enumerate()
        .map(|(i, wire)| {
            if wire.id.is_some() {
                return contact_from_wire(mapper, wire, typed::take_raw(&mut raws, i))
                    .map(SearchHit::Found);
            }
            match non_empty(wire.email.as_deref()) {
                Some(email) => Ok(SearchHit::ByEmail(email.to_ascii_lowercase())),
                None => Err(bad_response(
                    VENDOR,
                    "a search result has neither an id nor an email",
                )),
            }
        })
        .collect()
}

/// A Libredesk contact (as a tree) as a normalized contact.
pub(super) fn translate_contact(mapper: &Mapper, value: &Value) -> Result<Contact, ApiError> {
    let wire = parse_contact(value)?;
    contact_from_wire(mapper, wire, mapper.raw(value))
}

/// A Libredesk contact as a normalized contact; `raw` is the vendor object when asked for.
fn contact_from_wire(
    mapper: &Mapper,
    wire: WireContact<'_>,
    raw: Option<Value>,
) -> Result<Contact, ApiError> {
    let id = wire
        .id
        .ok_or_else(|| bad_response(VENDOR, "contact: missing field `id`"))?;
    let first_name = owned_non_empty(wire.first_name.as_deref());
    let last_name = owned_non_empty(wire.last_name.as_deref());
    let name = join_name(first_name.as_deref(), last_name.as_deref());
    let email = owned_non_empty(wire.email.as_deref());
    let phones = non_empty(wire.phone_number.as_deref())
        .map(|number| vec![phone::normalize(number, wire.calling_code())])
        .unwrap_or_default();
    let handles = email
        .iter()
        .map(|e| Handle {
            channel: HandleChannel::Email,
            value: e.clone(),
        })
        .collect();
    let remote_id = id.to_string();
    Ok(Contact {
        id: mapper.id_of(Kind::Contact, &[&remote_id]),
        connection: mapper.connection.clone(),
        vendor: vendor_label(VENDOR),
        remote_id,
        created_at: timestamp(wire.created_at.as_deref()),
        updated_at: timestamp(wire.updated_at.as_deref()),
        name,
        first_name,
        last_name,
        emails: email.into_iter().collect(),
        phones,
        handles,
        company: None,
        avatar_url: owned_non_empty(wire.avatar_url.as_deref()),
        custom_fields: wire.custom_attributes,
        raw,
    })
}

/// A Libredesk conversation (full object or list item, as a tree) as a normalized one.
fn translate_conversation(mapper: &Mapper, value: &Value) -> Result<PartialConversation, ApiError> {
    let wire: WireConversation<'_> = parse_wire(VENDOR, "conversation", value)?;
    conversation_from_wire(mapper, wire, mapper.raw(value))
}

/// A Libredesk conversation as a normalized one. A field the vendor object does not carry
/// (a list item has no `contact_id`, assignee ids or `tags`) is marked unknown, never filled
/// with `null` or `[]`.
fn conversation_from_wire(
    mapper: &Mapper,
    wire: WireConversation<'_>,
    raw: Option<Value>,
) -> Result<PartialConversation, ApiError> {
    if wire.uuid.trim().is_empty() {
        return Err(bad_response(VENDOR, "conversation has an empty uuid"));
    }
    let from_contact = wire.contact.as_ref().and_then(|c| c.id);
    let unknown = UnknownFields {
        contact_id: wire.contact_id.is_none() && from_contact.is_none(),
        assignee: wire.assigned_user_id.is_none() && wire.assigned_team_id.is_none(),
        tags: wire.tags.is_none(),
    };
    let contact_id = wire
        .contact_id
        .flatten()
        .filter(|id| *id > 0)
        .or_else(|| from_contact.flatten().filter(|id| *id > 0))
        .map(|id| mapper.id_of(Kind::Contact, &[&id.to_string()]));
    let vendor_status = owned_non_empty(wire.status.as_deref());
    let user_id = wire.assigned_user_id.flatten().filter(|id| *id > 0);
    let team_id = wire.assigned_team_id.flatten().filter(|id| *id > 0);
    let assignee = (user_id.is_some() || team_id.is_some()).then(|| Assignee {
        user_id: user_id.map(|id| id.to_string()),
        team_id: team_id.map(|id| id.to_string()),
    });
    let tags = wire
        .tags
        .unwrap_or_default()
        .into_iter()
        .map(Cow::into_owned)
        .collect();
    let uuid = wire.uuid.into_owned();
    let conversation = Conversation {
        id: mapper.id_of(Kind::Conversation, &[&uuid]),
        connection: mapper.connection.clone(),
        vendor: vendor_label(VENDOR),
        remote_id: uuid,
        created_at: timestamp(wire.created_at.as_deref()),
        updated_at: timestamp(wire.updated_at.as_deref()),
        contact_id,
        channel: channel_from_inbox(wire.inbox_channel.as_deref()),
        status: status_from_vendor(vendor_status.as_deref(), wire.status_category.as_deref()),
        vendor_status,
        subject: owned_non_empty(wire.subject.as_deref()),
        assignee,
        priority: priority_from_vendor(wire.priority.as_deref()),
        tags,
        last_message_at: timestamp(wire.last_message_at.as_deref()),
        raw,
    };
    Ok(PartialConversation {
        conversation,
        unknown,
    })
}

fn channel_from_inbox(channel: Option<&str>) -> Option<Channel> {
    let channel = non_empty(channel)?;
    let is = |word: &str| channel.eq_ignore_ascii_case(word);
    Some(if is("email") {
        Channel::Email
    } else if is("livechat") || is("web") {
        Channel::Web
    } else if is("whatsapp") {
        Channel::Whatsapp
    } else {
        Channel::Other
    })
}

/// Libredesk's status word → the normalized status. Custom statuses follow their category
/// when the server sends one, else count as open.
fn status_from_vendor(name: Option<&str>, category: Option<&str>) -> ConversationStatus {
    let lookup = |words: [(&str, ConversationStatus); 4], s: &str| {
        words
            .into_iter()
            .find(|(w, _)| w.eq_ignore_ascii_case(s))
            .map(|(_, status)| status)
    };
    let by_name = |s: &str| {
        lookup(
            [
                ("open", ConversationStatus::Open),
                ("snoozed", ConversationStatus::Pending),
                ("resolved", ConversationStatus::Resolved),
                ("closed", ConversationStatus::Closed),
            ],
            s,
        )
    };
    let by_category = |s: &str| {
        lookup(
            [
                ("open", ConversationStatus::Open),
                ("waiting", ConversationStatus::Pending),
                ("resolved", ConversationStatus::Resolved),
                ("closed", ConversationStatus::Closed),
            ],
            s,
        )
    };
    name.and_then(by_name)
        .or_else(|| non_empty(category).and_then(by_category))
        .unwrap_or(ConversationStatus::Open)
}

fn status_to_vendor(status: ConversationStatus) -> &'static str {
    match status {
        ConversationStatus::Open => "Open",
        ConversationStatus::Pending => "Snoozed",
        ConversationStatus::Resolved => "Resolved",
        ConversationStatus::Closed => "Closed",
    }
}

fn priority_from_vendor(priority: Option<&str>) -> Option<Priority> {
    let priority = non_empty(priority)?;
    [
        ("low", Priority::Low),
        ("medium", Priority::Medium),
        ("high", Priority::High),
        ("urgent", Priority::Urgent),
    ]
    .into_iter()
    .find(|(w, _)| w.eq_ignore_ascii_case(priority))
    .map(|(_, p)| p)
}

/// A Libredesk message (as a tree) as a normalized message. `conversation_uuid` is the
/// conversation the caller addressed, used when the message itself does not name it.
fn translate_message(
    mapper: &Mapper,
    value: &Value,
    conversation_uuid: Option<&str>,
) -> Result<Message, ApiError> {
    let wire: WireMessage<'_> = parse_wire(VENDOR, "message", value)?;
    message_from_wire(mapper, wire, conversation_uuid, mapper.raw(value))
}

/// A Libredesk message as a normalized message.
fn message_from_wire(
    mapper: &Mapper,
    wire: WireMessage<'_>,
    conversation_uuid: Option<&str>,
    raw: Option<Value>,
) -> Result<Message, ApiError> {
    if wire.uuid.trim().is_empty() {
        return Err(bad_response(VENDOR, "message has an empty uuid"));
    }
    let conversation_uuid = non_empty(wire.conversation_uuid.as_deref())
        .or(non_empty(conversation_uuid))
        .ok_or_else(|| bad_response(VENDOR, "message names no conversation_uuid"))?
        .to_owned();

    let kind = wire.kind.as_deref().map(str::to_ascii_lowercase);
    let from_contact = wire.sender_type.as_deref() == Some("contact");
    let direction = match kind.as_deref() {
        Some("incoming") => Direction::Inbound,
        Some("outgoing") | Some("activity") => Direction::Outbound,
        _ if from_contact => Direction::Inbound,
        _ => Direction::Outbound,
    };
    let sender_type = match (kind.as_deref(), wire.sender_type.as_deref()) {
        (Some("activity"), _) => SenderType::System,
        (_, Some("contact")) => SenderType::Contact,
        (_, Some("agent")) => SenderType::Agent,
        _ if direction == Direction::Inbound => SenderType::Contact,
        _ => SenderType::Agent,
    };
    let sender_name = wire
        .author
        .as_ref()
        .and_then(|a| join_name(a.first_name.as_deref(), a.last_name.as_deref()));

    let content = non_empty(wire.content.as_deref());
    let is_html = wire
        .content_type
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case("html"));
    let html = if is_html {
        content.map(str::to_owned)
    } else {
        None
    };
    let text = if is_html {
        content.map(html_to_text).filter(|t| !t.is_empty())
    } else {
        content.map(str::to_owned)
    }
    .or_else(|| owned_non_empty(wire.text_content.as_deref()));

    let attachments: Vec<Attachment> = wire
        .attachments
        .unwrap_or_default()
        .into_iter()
        .map(|a| Attachment {
            type_: attachment_type(a.content_type.as_deref()),
            url: owned_non_empty(a.url.as_deref()),
            name: owned_non_empty(a.name.as_deref())
                .or_else(|| owned_non_empty(a.filename.as_deref())),
            size: a.size.and_then(|s| u64::try_from(s).ok()),
        })
        .collect();
    let type_ = if text.is_none() && !attachments.is_empty() {
        MessageType::File
    } else {
        MessageType::Text
    };
    let uuid = wire.uuid.into_owned();

    Ok(Message {
        id: mapper.id_of(Kind::Message, &[&conversation_uuid, &uuid]),
        connection: mapper.connection.clone(),
        vendor: vendor_label(VENDOR),
        remote_id: uuid,
        created_at: timestamp(wire.created_at.as_deref()),
        updated_at: timestamp(wire.updated_at.as_deref()),
        conversation_id: mapper.id_of(Kind::Conversation, &[&conversation_uuid]),
        direction,
        sender: Sender {
            type_: sender_type,
            id: wire.sender_id.filter(|id| *id > 0).map(|id| id.to_string()),
            name: sender_name,
        },
        type_,
        text,
        html,
        attachments,
        private: wire.private.unwrap_or(false),
        status: message_status(wire.status.as_deref(), &[]),
        raw,
    })
}

// ----- normalized → vendor -------------------------------------------------------------------

/// The full multipart form `PUT /contacts/{id}` replaces a contact with.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ContactForm {
    first_name: String,
    last_name: String,
    email: String,
    phone_number: String,
    calling_code: String,
    avatar_url: String,
}

impl ContactForm {
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("first_name", self.first_name.clone()),
            ("last_name", self.last_name.clone()),
            ("email", self.email.clone()),
            ("phone_number", self.phone_number.clone()),
            // The field's name differs between Libredesk versions; each reads its own.
            ("phone_number_country_code", self.calling_code.clone()),
            ("phone_number_calling_code", self.calling_code.clone()),
            // Always sent back: an absent avatar_url deletes the avatar.
            ("avatar_url", self.avatar_url.clone()),
        ]
    }

    fn body(&self) -> VendorBody {
        VendorBody::multipart(&self.fields())
    }
}

/// What a contact PATCH asks that Libredesk cannot store, refused before any vendor call.
fn check_contact_patch(patch: &ContactPatch) -> Result<(), ApiError> {
    if non_empty(patch.company.as_deref()).is_some() {
        return Err(ApiError::invalid(
            "libredesk contacts have no company field",
        ));
    }
    if patch.emails.as_ref().is_some_and(|e| e.len() > 1) {
        return Err(ApiError::invalid("libredesk stores one email per contact"));
    }
    if patch.phones.as_ref().is_some_and(|p| p.len() > 1) {
        return Err(ApiError::invalid(
            "libredesk stores one phone number per contact",
        ));
    }
    if let Some(handles) = &patch.handles {
        if handles.iter().any(|h| h.channel != HandleChannel::Email) {
            return Err(ApiError::invalid(
                "libredesk contacts only have an email handle; set emails instead",
            ));
        }
    }
    Ok(())
}

/// Merge a PATCH over the contact as Libredesk has it, into the full replacement form.
fn merge_contact(current: &WireContact, patch: &ContactPatch) -> Result<ContactForm, ApiError> {
    check_contact_patch(patch)?;
    let (first_name, last_name) = split_names(
        patch.name.as_deref(),
        patch.first_name.as_deref(),
        patch.last_name.as_deref(),
    );
    let first_name = first_name
        .unwrap_or_else(|| current.first_name.as_deref().unwrap_or_default().to_owned())
        .trim()
        .to_owned();
    let last_name = last_name
        .unwrap_or_else(|| current.last_name.as_deref().unwrap_or_default().to_owned())
        .trim()
        .to_owned();
    let email = match &patch.emails {
        Some(emails) => emails
            .first()
            .map(|e| e.trim().to_owned())
            .unwrap_or_default(),
        None => current.email.clone().unwrap_or_default().trim().to_owned(),
    };
    let current_code = current.calling_code().unwrap_or_default().to_owned();
    let (calling_code, phone_number) = match &patch.phones {
        Some(phones) => match phones.first().map(|p| p.trim()).filter(|p| !p.is_empty()) {
            Some(phone) => split_phone(phone, &current_code),
            None => (String::new(), String::new()),
        },
        None => (
            current_code,
            current
                .phone_number
                .as_deref()
                .unwrap_or_default()
                .to_owned(),
        ),
    };
    let avatar_url = patch
        .avatar_url
        .clone()
        .or_else(|| current.avatar_url.as_deref().map(str::to_owned))
        .unwrap_or_default();

    if email.is_empty() {
        return Err(ApiError::invalid(
            "libredesk requires an email on every contact; this update would leave it without one",
        ));
    }
    if first_name.is_empty() {
        return Err(ApiError::invalid(
            "libredesk requires a first name on every contact; this update would leave it without one",
        ));
    }
    if let Some(handles) = &patch.handles {
        if handles
            .iter()
            .any(|h| !h.value.trim().eq_ignore_ascii_case(&email))
        {
            return Err(ApiError::invalid(
                "libredesk's only contact handle is its email; handles must match emails[0]",
            ));
        }
    }
    Ok(ContactForm {
        first_name,
        last_name,
        email,
        phone_number,
        calling_code,
        avatar_url,
    })
}

/// A new phone number as Libredesk's (calling code, number) pair. An international number
/// (E.164 as [`phone::e164`] reads it) that starts with the contact's current calling code
/// keeps that code (in the form the server stores it: `"+44"` or `"GB"`); any other
/// international number is sent whole with no calling code; a national number keeps the
/// current code.
fn split_phone(number: &str, current_code: &str) -> (String, String) {
    let Some(international) = phone::e164(number, None) else {
        return (current_code.to_owned(), phone::compact(number));
    };
    let national = phone::calling_code(current_code)
        .and_then(|code| international.strip_prefix('+')?.strip_prefix(code));
    match national {
        Some(national) => (current_code.to_owned(), national.to_owned()),
        None => (String::new(), international),
    }
}

/// The contact a new conversation is addressed to.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Identity {
    email: String,
    first_name: String,
    last_name: String,
}

fn email_local_part(email: &str) -> String {
    email.split('@').next().unwrap_or_default().to_owned()
}

fn identity_from_body(contact: &NewContact) -> Result<Identity, ApiError> {
    let email = non_empty(contact.email.as_deref()).ok_or_else(|| {
        ApiError::invalid("libredesk identifies contacts by email: contact.email is required")
    })?;
    let (first_name, last_name) = match non_empty(contact.name.as_deref()) {
        Some(name) => split_name(name),
        None => (email_local_part(email), String::new()),
    };
    Ok(Identity {
        email: email.to_owned(),
        first_name,
        last_name,
    })
}

fn identity_from_vendor(contact: &WireContact) -> Result<Identity, ApiError> {
    let email = non_empty(contact.email.as_deref()).ok_or_else(|| {
        ApiError::invalid(format!(
            "libredesk contact {} has no email, and libredesk starts conversations by email",
            contact.id.unwrap_or_default()
        ))
    })?;
    Ok(Identity {
        email: email.to_owned(),
        first_name: owned_non_empty(contact.first_name.as_deref())
            .unwrap_or_else(|| email_local_part(email)),
        last_name: owned_non_empty(contact.last_name.as_deref()).unwrap_or_default(),
    })
}

/// Vendor fields of a conversation create, resolved from `vendor_fields` and connection
/// defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CreateFields {
    inbox_id: i64,
    agent_id: Option<i64>,
    team_id: Option<i64>,
    attachments: Vec<i64>,
}

/// `vendor_fields.attachments`: ids of media uploaded to Libredesk beforehand.
fn media_ids(value: Option<&Value>) -> Result<Vec<i64>, ApiError> {
    let bad = || {
        ApiError::invalid(
            "vendor_fields.attachments must be an array of libredesk media ids (integers returned \
             by POST /api/v1/media)",
        )
    };
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_i64().filter(|n| *n > 0).ok_or_else(bad))
            .collect(),
        Some(_) => Err(bad()),
    }
}

/// What a conversation create asks that Libredesk cannot do, refused before any vendor call.
fn check_conversation_create(body: &ConversationCreate) -> Result<(), ApiError> {
    if body.channel.is_some_and(|c| c != Channel::Email) {
        return Err(ApiError::invalid(
            "libredesk starts conversations in an email inbox only; channel must be email or absent",
        ));
    }
    if non_empty(body.text.as_deref()).is_none() {
        return Err(ApiError::invalid(
            "libredesk needs text: a conversation starts with a first message",
        ));
    }
    Ok(())
}

/// The JSON body of `POST /conversations`.
fn conversation_create_body(
    body: &ConversationCreate,
    identity: &Identity,
    fields: &CreateFields,
) -> Result<Value, ApiError> {
    check_conversation_create(body)?;
    let text = non_empty(body.text.as_deref()).unwrap_or_default();
    let mut request = json!({
        "inbox_id": fields.inbox_id,
        "contact_email": identity.email,
        "first_name": identity.first_name,
        "last_name": identity.last_name,
        "subject": body.subject.as_deref().map(str::trim).unwrap_or_default(),
        "content": text_to_html(text),
        "initiator": "agent",
    });
    if let Some(object) = request.as_object_mut() {
        if let Some(agent_id) = fields.agent_id {
            object.insert("agent_id".into(), agent_id.into());
        }
        if let Some(team_id) = fields.team_id {
            object.insert("team_id".into(), team_id.into());
        }
        if !fields.attachments.is_empty() {
            object.insert("attachments".into(), json!(fields.attachments));
        }
    }
    Ok(request)
}

/// One vendor call of a conversation update.
#[derive(Debug, Clone, PartialEq)]
struct PlannedCall {
    endpoint: &'static str,
    body: Option<Value>,
}

impl PlannedCall {
    fn new(endpoint: &'static str, body: Option<Value>) -> Self {
        PlannedCall { endpoint, body }
    }
}

/// The vendor calls a conversation PATCH needs, in order: assignment (team before user,
/// because assigning a team clears the user), priority, tags, and status last.
fn plan_conversation_update(
    patch: &ConversationPatch,
    snoozed_until: Option<&Value>,
) -> Result<Vec<PlannedCall>, ApiError> {
    if patch.is_empty() {
        return Err(ApiError::invalid(
            "nothing to update: pass status, assignee, priority or tags",
        ));
    }
    let mut plan = Vec::new();
    match &patch.assignee {
        None => {}
        Some(None) => {
            plan.push(PlannedCall::new("conversations.unassign_user", None));
            plan.push(PlannedCall::new("conversations.unassign_team", None));
        }
        Some(Some(assignee)) => {
            if assignee.user_id.is_none() && assignee.team_id.is_none() {
                return Err(ApiError::invalid(
                    "assignee needs user_id or team_id; send assignee: null to unassign",
                ));
            }
            if let Some(team) = &assignee.team_id {
                let id = assignee_id(VENDOR, "team_id", team)?;
                plan.push(PlannedCall::new(
                    "conversations.assign_team",
                    Some(json!({ "assignee_id": id })),
                ));
            }
            if let Some(user) = &assignee.user_id {
                let id = assignee_id(VENDOR, "user_id", user)?;
                plan.push(PlannedCall::new(
                    "conversations.assign_user",
                    Some(json!({ "assignee_id": id })),
                ));
            }
        }
    }
    if let Some(priority) = patch.priority {
        let word = match priority {
            Priority::Low => "Low",
            Priority::Medium => "Medium",
            Priority::High => "High",
            Priority::Urgent => {
                return Err(ApiError::invalid(
                    "libredesk priorities are low, medium and high; it has no urgent",
                ))
            }
        };
        plan.push(PlannedCall::new(
            "conversations.update_priority",
            Some(json!({ "priority": word })),
        ));
    }
    if let Some(tags) = &patch.tags {
        plan.push(PlannedCall::new(
            "conversations.update_tags",
            Some(json!({ "tags": tags })),
        ));
    }
    if let Some(status) = patch.status {
        let mut body = json!({ "status": status_to_vendor(status) });
        if status == ConversationStatus::Pending {
            let until = snooze_duration(snoozed_until)?;
            if let Some(object) = body.as_object_mut() {
                object.insert("snoozed_until".into(), until.into());
            }
        }
        plan.push(PlannedCall::new("conversations.update_status", Some(body)));
    }
    Ok(plan)
}

/// How long to snooze: `vendor_fields.snoozed_until` (a Go duration such as `"3h"` or
/// `"1h30m"`) or the default.
fn snooze_duration(value: Option<&Value>) -> Result<String, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(DEFAULT_SNOOZE.to_owned()),
        Some(Value::String(s)) if is_go_duration(s.trim()) => Ok(s.trim().to_owned()),
        Some(_) => Err(ApiError::invalid(
            "vendor_fields.snoozed_until must be a duration such as \"24h\" or \"1h30m\" \
             (libredesk snoozes for a duration, not until a date)",
        )),
    }
}

/// A positive Go `time.ParseDuration` string: one or more `<number><unit>`.
fn is_go_duration(s: &str) -> bool {
    const UNITS: [&str; 7] = ["ns", "us", "µs", "ms", "s", "m", "h"];
    let mut rest = s;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let number_len = rest
            .char_indices()
            .find(|(_, c)| !(c.is_ascii_digit() || *c == '.'))
            .map_or(rest.len(), |(i, _)| i);
        let (number, tail) = rest.split_at(number_len);
        if number.is_empty() || number.parse::<f64>().is_err() {
            return false;
        }
        // Longest unit first, so "ms" is not read as "m" + "s".
        let Some(unit) = UNITS
            .iter()
            .filter(|u| tail.starts_with(**u))
            .max_by_key(|u| u.len())
        else {
            return false;
        };
        rest = &tail[unit.len()..];
    }
    true
}

/// `filters` for the conversation list: status by its Libredesk name.
fn status_filter(status: ConversationStatus) -> String {
    json!([{
        "model": "conversation_statuses",
        "field": "name",
        "operator": "equals",
        "value": status_to_vendor(status),
    }])
    .to_string()
}

/// The JSON body of `POST /conversations/{uuid}/messages`.
fn message_send_body(body: &MessageSend) -> Result<Value, ApiError> {
    if body.template.is_some() {
        return Err(ApiError::unsupported_operation(
            "libredesk has no message templates",
        ));
    }
    // Media ids uploaded beforehand (`vendor_fields.attachments`) go with the files the
    // gateway uploads from `attachments`.
    let media = media_ids(body.vendor_fields.get("attachments"))?;
    let text = non_empty(body.text.as_deref());
    if text.is_none() && media.is_empty() && body.files.is_empty() {
        return Err(ApiError::invalid("a message needs text or attachments"));
    }
    Ok(json!({
        "message": text.map(text_to_html).unwrap_or_default(),
        "sender_type": "agent",
        "private": body.private,
        "attachments": media,
    }))
}

// ----- text and HTML -------------------------------------------------------------------------

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Plain text as the HTML Libredesk stores: escaped, one paragraph, newlines as `<br>`.
fn text_to_html(text: &str) -> String {
    let escaped = escape_html(text.trim())
        .replace("\r\n", "\n")
        .replace('\r', "\n");
    format!("<p>{}</p>", escaped.replace('\n', "<br>"))
}

/// Tags after which the text reads as a new line or block (they become a space).
fn is_block_tag(name: &str) -> bool {
    matches!(
        name,
        "br" | "p"
            | "div"
            | "li"
            | "ul"
            | "ol"
            | "tr"
            | "td"
            | "th"
            | "table"
            | "thead"
            | "tbody"
            | "h1"
            | "h2"
            | "h3"
            | "h4"
            | "h5"
            | "h6"
            | "blockquote"
            | "pre"
            | "hr"
            | "section"
            | "article"
            | "header"
            | "footer"
            | "dd"
            | "dt"
            | "dl"
    )
}

/// Plain text from stored HTML: tags dropped (block tags become spaces), `<script>`,
/// `<style>` and comments skipped, the common entities decoded, whitespace collapsed.
fn html_to_text(html: &str) -> String {
    let mut stripped = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(lt) = rest.find('<') {
        stripped.push_str(&rest[..lt]);
        let tag = &rest[lt..];
        if let Some(comment) = tag.strip_prefix("<!--") {
            rest = comment.find("-->").map_or("", |end| &comment[end + 3..]);
            continue;
        }
        let starts_tag = tag[1..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || matches!(c, '/' | '!' | '?'));
        let Some(gt) = tag.find('>').filter(|_| starts_tag) else {
            // A lone '<' is text ("1 < 2").
            stripped.push('<');
            rest = &tag[1..];
            continue;
        };
        let inner = &tag[1..gt];
        let closing = inner.starts_with('/');
        let name = inner
            .trim_start_matches('/')
            .split(|c: char| c.is_whitespace() || c == '/')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        rest = &tag[gt + 1..];
        if !closing && (name == "script" || name == "style") {
            // Skip the element's content up to its closing tag.
            let close = format!("</{name}");
            rest = match rest.to_ascii_lowercase().find(&close) {
                Some(at) => rest[at..].find('>').map_or("", |gt| &rest[at + gt + 1..]),
                None => "",
            };
            continue;
        }
        if is_block_tag(&name) {
            stripped.push(' ');
        }
    }
    stripped.push_str(rest);
    decode_entities(&stripped)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let candidate = &rest[amp..];
        // ';' is ASCII, so its byte position is a char boundary.
        let decoded = candidate
            .bytes()
            .take(12)
            .position(|b| b == b';')
            .and_then(|semi| entity(&candidate[1..semi]).map(|c| (c, semi)));
        match decoded {
            Some((c, semi)) => {
                out.push(c);
                rest = &candidate[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &candidate[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn entity(name: &str) -> Option<char> {
    match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        "nbsp" => Some('\u{a0}'),
        _ => {
            let number = name.strip_prefix('#')?;
            let code = match number.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => number.parse::<u32>().ok()?,
            };
            char::from_u32(code)
        }
    }
}

#[cfg(test)]
// Tests may panic on a broken fixture; that is their job.
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use serde_json::Map;

    use super::*;
    use crate::api::model::MessageStatus;
    use crate::api::ErrorCode;
    use crate::snapshot::Connection;
    use crate::vendors::test_support::{self, list_json, object_json, response, run, seen, Script};

    const CONTACT: &str = include_str!("../../tests/fixtures/libredesk/contact.json");
    const CONTACTS_LIST: &str = include_str!("../../tests/fixtures/libredesk/contacts_list.json");
    const CONTACTS_SEARCH: &str =
        include_str!("../../tests/fixtures/libredesk/contacts_search.json");
    const CONVERSATION: &str = include_str!("../../tests/fixtures/libredesk/conversation.json");
    const CONVERSATIONS_LIST: &str =
        include_str!("../../tests/fixtures/libredesk/conversations_list.json");
    const MESSAGE: &str = include_str!("../../tests/fixtures/libredesk/message.json");
    const MESSAGES_LIST: &str = include_str!("../../tests/fixtures/libredesk/messages_list.json");
    const ERROR: &str = include_str!("../../tests/fixtures/libredesk/error.json");

    const CONV_UUID: &str = "7d692b95-73dc-4f53-9343-6ed47a3db903";

    fn mapper(want_raw: bool) -> Mapper {
        Mapper {
            tenant: "acme".into(),
            connection: "desk".into(),
            want_raw,
        }
    }

    fn id(kind: Kind, keys: &[&str]) -> String {
        object_id(kind, keys).encode()
    }

    fn object_id(kind: Kind, keys: &[&str]) -> ObjectId {
        ObjectId::new(
            kind,
            "acme",
            "desk",
            keys.iter().map(|k| k.to_string()).collect(),
        )
    }

    fn data(fixture: &str) -> Value {
        serde_json::from_str::<Value>(fixture).unwrap()["data"].clone()
    }

    // ----- envelope and errors ---------------------------------------------------------

    #[test]
    fn success_envelope_yields_data() {
        let data = read_data(&response(200, CONTACT)).unwrap();
        assert_eq!(data["id"], 163);
    }

    #[test]
    fn vendor_errors_map_by_status_with_the_vendor_message() {
        let err = read_data(&response(400, ERROR)).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest);
        assert!(err.detail.contains("Invalid `email`"), "{}", err.detail);
        assert_eq!(err.vendor_status, Some(400));

        // The OpenAPI document's ErrorResponse shape names the text `error`.
        let err = read_data(&response(422, r#"{"error":"bad data","data":{}}"#)).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest);
        assert!(err.detail.contains("bad data"));

        for (status, code) in [
            (401, ErrorCode::VendorAuthFailed),
            (403, ErrorCode::Forbidden),
            (404, ErrorCode::NotFound),
            (409, ErrorCode::InvalidRequest),
            (500, ErrorCode::VendorError),
            (504, ErrorCode::VendorError),
        ] {
            let err = read_data(&response(status, ERROR)).unwrap_err();
            assert_eq!(err.code, code, "status {status}");
            assert_eq!(err.vendor, Some(Vendor::Libredesk));
        }

        let mut limited = response(429, "slow down");
        limited.retry_after = Some(60);
        let err = read_data(&limited).unwrap_err();
        assert_eq!(err.code, ErrorCode::VendorRateLimited);
        assert_eq!(err.retry_after, Some(60));
    }

    #[test]
    fn a_2xx_that_is_not_a_success_envelope_is_a_bad_response() {
        for body in [
            "<html>oops</html>",
            "",
            r#"{"data":1}"#,
            ERROR,
            r#"{"status":"fail","data":null}"#,
        ] {
            let err = read_data(&response(200, body)).unwrap_err();
            assert_eq!(err.code, ErrorCode::VendorBadResponse, "{body}");
        }
        let err = read_data(&response(200, ERROR)).unwrap_err();
        assert!(err.detail.contains("Invalid `email`"));
    }

    // ----- contacts ----------------------------------------------------------------------

    #[test]
    fn contact_maps_every_field() {
        let value = data(CONTACT);
        let c = translate_contact(&mapper(false), &value).unwrap();
        assert_eq!(c.id, id(Kind::Contact, &["163"]));
        assert_eq!(c.remote_id, "163");
        assert_eq!(c.connection, "desk");
        assert_eq!(c.vendor, "libredesk");
        assert_eq!(c.name.as_deref(), Some("Jane Doe"));
        assert_eq!(c.first_name.as_deref(), Some("Jane"));
        assert_eq!(c.last_name.as_deref(), Some("Doe"));
        assert_eq!(c.emails, vec!["jane.doe@example.com"]);
        assert_eq!(c.phones, vec!["+447700900123"]);
        assert_eq!(
            c.handles,
            vec![Handle {
                channel: HandleChannel::Email,
                value: "jane.doe@example.com".into()
            }]
        );
        assert_eq!(c.company, None);
        assert_eq!(c.avatar_url.as_deref(), Some("/uploads/3f1c9a-avatar.png"));
        assert_eq!(c.custom_fields["plan"], "pro");
        assert_eq!(c.custom_fields["seats"], 12);
        assert_eq!(c.created_at.as_deref(), Some("2025-09-14T18:53:01.172243Z"));
        assert_eq!(c.updated_at.as_deref(), Some("2025-09-15T08:12:44.5Z"));
        assert!(c.raw.is_none());

        let with_raw = translate_contact(&mapper(true), &value).unwrap();
        assert_eq!(with_raw.raw, Some(value));
    }

    #[test]
    fn contact_page_maps_items_and_the_next_page() {
        let output = contacts_page(&mapper(false), &response(200, CONTACTS_LIST), 1, 2).unwrap();
        let (items, next) = list_json(output);
        assert_eq!(next, Some(json!({"page": 2})));
        assert_eq!(items.len(), 2);
        assert_eq!(items[0]["name"], "PayPal");
        assert_eq!(items[0]["last_name"], Value::Null);
        assert_eq!(items[0]["phones"], json!([]));
        // A contact with nothing filled in, and Go's zero time.
        assert_eq!(items[1]["name"], Value::Null);
        assert_eq!(items[1]["emails"], json!([]));
        assert_eq!(items[1]["handles"], json!([]));
        assert_eq!(items[1]["created_at"], Value::Null);
        assert_eq!(items[1]["custom_fields"], json!({}));
        assert!(items[1].get("raw").is_none());
    }

    fn envelope(data: Value) -> VendorResponse {
        response(200, &json!({"status": "success", "data": data}).to_string())
    }

    #[test]
    fn search_results_are_cut_to_the_limit() {
        let hits = search_hits(&mapper(false), &response(200, CONTACTS_SEARCH), 2).unwrap();
        assert_eq!(hits.len(), 2);
        let SearchHit::Found(first) = &hits[0] else {
            panic!("a result with an id is a contact: {hits:?}")
        };
        assert_eq!(first.remote_id, "7");
        assert_eq!(first.name.as_deref(), Some("John Doe"));
        // A paged answer (newer servers) and an empty answer are read too.
        let paged = json!({"results": [data(CONTACTS_SEARCH)[2]], "total": 1});
        assert_eq!(
            search_hits(&mapper(false), &envelope(paged), 20)
                .unwrap()
                .len(),
            1
        );
        assert!(search_hits(&mapper(false), &envelope(Value::Null), 20)
            .unwrap()
            .is_empty());
        let err = search_hits(&mapper(false), &envelope(json!("nope")), 20).unwrap_err();
        assert_eq!(err.code, ErrorCode::VendorBadResponse);
    }

    /// The published `ContactSearchResult` is `{created_at, first_name, last_name, email}`:
    /// no id. Such a result is looked up by its email; one with neither cannot be addressed.
    #[test]
    fn search_results_without_an_id_are_found_by_email() {
        let documented = json!([
            {"created_at": "2025-08-28T10:00:00Z", "first_name": "John", "last_name": "Doe",
             "email": "John.Doe@Example.com"},
            {"id": 8, "first_name": "Johnny", "email": "johnny@example.com"},
        ]);
        let hits = search_hits(&mapper(false), &envelope(documented), 20).unwrap();
        assert!(
            matches!(&hits[0], SearchHit::ByEmail(email) if email == "john.doe@example.com"),
            "{hits:?}"
        );
        assert!(matches!(&hits[1], SearchHit::Found(c) if c.remote_id == "8"));
        let err =
            search_hits(&mapper(false), &envelope(json!([{"first_name": "x"}])), 20).unwrap_err();
        assert_eq!(err.code, ErrorCode::VendorBadResponse);
        assert!(
            err.detail.contains("neither an id nor an email"),
            "{}",
            err.detail
        );
    }

    #[test]
    fn phones_become_e164_where_the_calling_code_is_known() {
        // Newer servers name the field phone_number_calling_code.
        let value = json!({"id": 5, "phone_number": "5550100", "phone_number_calling_code": "+1"});
        let c = translate_contact(&mapper(false), &value).unwrap();
        assert_eq!(c.phones, vec!["+15550100"]);
        // The published OpenAPI's ISO country code, and a national trunk 0.
        let value =
            json!({"id": 5, "phone_number": "07700 900123", "phone_number_country_code": "GB"});
        let c = translate_contact(&mapper(false), &value).unwrap();
        assert_eq!(c.phones, vec!["+447700900123"]);
    }

    #[test]
    fn a_contact_without_an_integer_id_is_a_bad_response() {
        for value in [json!({"first_name": "x"}), json!({"id": "12"}), json!("x")] {
            let err = translate_contact(&mapper(false), &value).unwrap_err();
            assert_eq!(err.code, ErrorCode::VendorBadResponse);
        }
    }

    fn current() -> WireContact<'static> {
        // A test may keep its fixture for the whole run.
        let value: &'static Value = Box::leak(Box::new(data(CONTACT)));
        parse_contact(value).unwrap()
    }

    #[test]
    fn contact_patch_merges_over_the_current_contact() {
        // An empty patch writes every current value back, avatar included.
        let form = merge_contact(&current(), &ContactPatch::default()).unwrap();
        assert_eq!(
            form,
            ContactForm {
                first_name: "Jane".into(),
                last_name: "Doe".into(),
                email: "jane.doe@example.com".into(),
                phone_number: "7700 900-123".into(),
                calling_code: "+44".into(),
                avatar_url: "/uploads/3f1c9a-avatar.png".into(),
            }
        );

        let patch = ContactPatch {
            name: Some("Ada King Lovelace".into()),
            emails: Some(vec!["ada@example.com".into()]),
            ..Default::default()
        };
        let form = merge_contact(&current(), &patch).unwrap();
        assert_eq!(form.first_name, "Ada");
        assert_eq!(form.last_name, "King Lovelace");
        assert_eq!(form.email, "ada@example.com");
        assert_eq!(form.avatar_url, "/uploads/3f1c9a-avatar.png");

        // Explicit first/last names win over name.
        let patch = ContactPatch {
            name: Some("Ada Lovelace".into()),
            last_name: Some("Byron".into()),
            ..Default::default()
        };
        let form = merge_contact(&current(), &patch).unwrap();
        assert_eq!(
            (form.first_name.as_str(), form.last_name.as_str()),
            ("Ada", "Byron")
        );

        let patch = ContactPatch {
            avatar_url: Some("https://cdn.example.com/a.png".into()),
            ..Default::default()
        };
        assert_eq!(
            merge_contact(&current(), &patch).unwrap().avatar_url,
            "https://cdn.example.com/a.png"
        );
    }

    #[test]
    fn contact_patch_splits_phones_against_the_current_calling_code() {
        let phones = |p: &[&str]| ContactPatch {
            phones: Some(p.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        };
        let form = merge_contact(&current(), &phones(&["+44 7700 900999"])).unwrap();
        assert_eq!(
            (form.calling_code.as_str(), form.phone_number.as_str()),
            ("+44", "7700900999")
        );
        let form = merge_contact(&current(), &phones(&["+33612345678"])).unwrap();
        assert_eq!(
            (form.calling_code.as_str(), form.phone_number.as_str()),
            ("", "+33612345678")
        );
        let form = merge_contact(&current(), &phones(&["7700 111222"])).unwrap();
        assert_eq!(
            (form.calling_code.as_str(), form.phone_number.as_str()),
            ("+44", "7700111222")
        );
        let form = merge_contact(&current(), &phones(&[])).unwrap();
        assert_eq!(
            (form.calling_code.as_str(), form.phone_number.as_str()),
            ("", "")
        );
        // A server storing ISO country codes keeps its own form.
        let mut iso = current();
        iso.phone_number_country_code = Some("GB".into());
        let form = merge_contact(&iso, &phones(&["+44 7700 900999"])).unwrap();
        assert_eq!(
            (form.calling_code.as_str(), form.phone_number.as_str()),
            ("GB", "7700900999")
        );
    }

    #[test]
    fn contact_patch_refuses_what_libredesk_cannot_store() {
        let cases = [
            ContactPatch {
                emails: Some(vec![]),
                ..Default::default()
            },
            ContactPatch {
                first_name: Some(" ".into()),
                ..Default::default()
            },
            ContactPatch {
                emails: Some(vec!["a@x.io".into(), "b@x.io".into()]),
                ..Default::default()
            },
            ContactPatch {
                phones: Some(vec!["+1".into(), "+2".into()]),
                ..Default::default()
            },
            ContactPatch {
                company: Some("Acme".into()),
                ..Default::default()
            },
            ContactPatch {
                handles: Some(vec![Handle {
                    channel: HandleChannel::Line,
                    value: "U123".into(),
                }]),
                ..Default::default()
            },
            ContactPatch {
                handles: Some(vec![Handle {
                    channel: HandleChannel::Email,
                    value: "other@example.com".into(),
                }]),
                ..Default::default()
            },
        ];
        for patch in cases {
            let err = merge_contact(&current(), &patch).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidRequest, "{patch:?}");
        }
        let err = merge_contact(
            &current(),
            &ContactPatch {
                emails: Some(vec![]),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(err.detail.contains("requires an email"), "{}", err.detail);
        // Echoing the email handle back is fine.
        let echo = ContactPatch {
            handles: Some(vec![Handle {
                channel: HandleChannel::Email,
                value: "Jane.Doe@example.com".into(),
            }]),
            ..Default::default()
        };
        assert!(merge_contact(&current(), &echo).is_ok());
    }

    #[test]
    fn contact_form_sends_every_field_including_the_avatar() {
        let form = merge_contact(&current(), &ContactPatch::default()).unwrap();
        let names: Vec<&str> = form.fields().iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "first_name",
                "last_name",
                "email",
                "phone_number",
                "phone_number_country_code",
                "phone_number_calling_code",
                "avatar_url"
            ]
        );
        let VendorBody::Multipart { boundary, body } = form.body() else {
            panic!("contact update must be multipart");
        };
        let body = String::from_utf8(body).unwrap();
        assert!(body.contains(&format!("--{boundary}\r\n")));
        assert_eq!(
            form_field(&body, "avatar_url").as_deref(),
            Some("/uploads/3f1c9a-avatar.png")
        );
    }

    // ----- conversations -----------------------------------------------------------------

    #[test]
    fn conversation_maps_every_field() {
        let value = data(CONVERSATION);
        let c = translate_conversation(&mapper(true), &value).unwrap();
        assert_eq!(
            c.unknown,
            UnknownFields::default(),
            "the full object says it all"
        );
        let c = c.conversation;
        assert_eq!(c.id, id(Kind::Conversation, &[CONV_UUID]));
        assert_eq!(c.remote_id, CONV_UUID);
        assert_eq!(c.contact_id, Some(id(Kind::Contact, &["163"])));
        assert_eq!(c.channel, Some(Channel::Email));
        assert_eq!(c.status, ConversationStatus::Open);
        assert_eq!(c.vendor_status.as_deref(), Some("Open"));
        assert_eq!(c.priority, Some(Priority::High));
        assert_eq!(
            c.subject.as_deref(),
            Some("[GitHub] A third-party GitHub Application has been added")
        );
        assert_eq!(
            c.assignee,
            Some(Assignee {
                user_id: Some("4".into()),
                team_id: None
            })
        );
        assert_eq!(c.tags, vec!["billing", "vip"]);
        assert_eq!(
            c.last_message_at.as_deref(),
            Some("2025-09-14T18:53:01.172243Z")
        );
        assert_eq!(c.created_at.as_deref(), Some("2025-09-14T18:53:01.172243Z"));
        assert_eq!(c.raw, Some(value));
    }

    #[test]
    fn conversation_list_items_map_statuses_channels_and_priorities() {
        let output =
            conversations_page(&mapper(false), &response(200, CONVERSATIONS_LIST), 1, 20).unwrap();
        let (items, next) = list_json(output);
        assert_eq!(next, None);
        let row = |i: usize, field: &str| items[i][field].clone();
        // List items carry a contact summary without an id, and no assignee ids or tags:
        // those are not known in this view, so they are left out and `partial` says so —
        // never `null` ("no contact", "unassigned") or `[]` ("no tags").
        for field in ["contact_id", "assignee", "tags"] {
            assert!(items[0].get(field).is_none(), "{field}: {}", items[0]);
        }
        assert_eq!(row(0, "partial"), true);
        assert_eq!(row(0, "channel"), "web");
        assert_eq!(row(0, "status"), "pending");
        assert_eq!(row(0, "vendor_status"), "Snoozed");
        assert_eq!(row(0, "priority"), Value::Null);
        assert_eq!(row(1, "channel"), "other");
        assert_eq!(row(1, "status"), "resolved");
        assert_eq!(row(1, "subject"), Value::Null);
        assert_eq!(row(1, "priority"), Value::Null);
        assert_eq!(row(1, "assignee"), json!({"user_id": null, "team_id": "2"}));
        assert_eq!(row(2, "status"), "open");
        assert_eq!(row(2, "vendor_status"), "Awaiting customer");
        assert_eq!(row(2, "priority"), "low");
        assert_eq!(row(2, "last_message_at"), Value::Null);
        assert_eq!(row(3, "status"), "closed");
        assert_eq!(row(3, "priority"), "medium");
    }

    #[test]
    fn custom_statuses_follow_their_category_else_count_as_open() {
        use ConversationStatus::*;
        assert_eq!(status_from_vendor(Some("Snoozed"), None), Pending);
        assert_eq!(status_from_vendor(Some("resolved"), None), Resolved);
        assert_eq!(
            status_from_vendor(Some("On hold"), Some("waiting")),
            Pending
        );
        assert_eq!(status_from_vendor(Some("Done"), Some("closed")), Closed);
        assert_eq!(status_from_vendor(Some("Replied"), None), Open);
        assert_eq!(status_from_vendor(None, None), Open);
        for s in [Open, Pending, Resolved, Closed] {
            assert_eq!(status_from_vendor(Some(status_to_vendor(s)), None), s);
        }
    }

    #[test]
    fn a_conversation_without_a_uuid_is_a_bad_response() {
        for value in [json!({"status": "Open"}), json!({"uuid": ""}), json!([])] {
            let err = translate_conversation(&mapper(false), &value).unwrap_err();
            assert_eq!(err.code, ErrorCode::VendorBadResponse);
        }
        let err =
            conversations_page(&mapper(false), &envelope(json!({"items": []})), 1, 20).unwrap_err();
        assert_eq!(err.code, ErrorCode::VendorBadResponse);
    }

    #[test]
    fn status_filter_uses_the_status_name() {
        let filter: Value =
            serde_json::from_str(&status_filter(ConversationStatus::Pending)).unwrap();
        assert_eq!(
            filter,
            json!([{"model": "conversation_statuses", "field": "name", "operator": "equals", "value": "Snoozed"}])
        );
    }

    fn create(text: Option<&str>) -> ConversationCreate {
        ConversationCreate {
            subject: Some("Order 42".into()),
            text: text.map(str::to_owned),
            ..Default::default()
        }
    }

    fn fields() -> CreateFields {
        CreateFields {
            inbox_id: 3,
            agent_id: None,
            team_id: Some(2),
            attachments: vec![],
        }
    }

    #[test]
    fn conversation_create_body_follows_the_vendor_contract() {
        let identity = identity_from_body(&NewContact {
            name: Some("Ada King Lovelace".into()),
            email: Some("ada@example.com".into()),
            phone: None,
        })
        .unwrap();
        let body = conversation_create_body(&create(Some("Hi <there>\nBye")), &identity, &fields())
            .unwrap();
        assert_eq!(
            body,
            json!({
                "inbox_id": 3,
                "contact_email": "ada@example.com",
                "first_name": "Ada",
                "last_name": "King Lovelace",
                "subject": "Order 42",
                "content": "<p>Hi &lt;there&gt;<br>Bye</p>",
                "initiator": "agent",
                "team_id": 2,
            })
        );
        let no_name = identity_from_body(&NewContact {
            email: Some("bob@example.com".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(no_name.first_name, "bob");
    }

    #[test]
    fn conversation_create_refuses_what_libredesk_cannot_do() {
        let identity = identity_from_body(&NewContact {
            name: Some("Ada".into()),
            email: Some("ada@example.com".into()),
            phone: None,
        })
        .unwrap();
        let err = conversation_create_body(&create(None), &identity, &fields()).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest);
        let mut whatsapp = create(Some("hi"));
        whatsapp.channel = Some(Channel::Whatsapp);
        assert!(conversation_create_body(&whatsapp, &identity, &fields()).is_err());
        let err = identity_from_body(&NewContact {
            name: Some("Ada".into()),
            phone: Some("+15550100".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.detail.contains("contact.email"));
        let no_email = json!({"id": 9, "first_name": "X"});
        let no_email = parse_contact(&no_email).unwrap();
        assert_eq!(
            identity_from_vendor(&no_email).unwrap_err().code,
            ErrorCode::InvalidRequest
        );
        assert_eq!(
            identity_from_vendor(&current()).unwrap(),
            Identity {
                email: "jane.doe@example.com".into(),
                first_name: "Jane".into(),
                last_name: "Doe".into()
            }
        );
    }

    #[test]
    fn integer_vendor_fields_accept_numbers_and_numeric_strings() {
        assert_eq!(int_field("inbox_id", Some(&json!(3))).unwrap(), Some(3));
        assert_eq!(int_field("inbox_id", Some(&json!(" 7 "))).unwrap(), Some(7));
        assert_eq!(int_field("inbox_id", None).unwrap(), None);
        for bad in [json!("x"), json!(0), json!(-1), json!(3.5), json!([3])] {
            let err = int_field("inbox_id", Some(&bad)).unwrap_err();
            assert!(
                err.detail.contains("vendor_fields.inbox_id"),
                "{}",
                err.detail
            );
        }
        assert_eq!(media_ids(Some(&json!([4, 5]))).unwrap(), vec![4, 5]);
        assert!(media_ids(Some(&json!(["a"]))).is_err());
        assert!(media_ids(Some(&json!(4))).is_err());
    }

    fn patch(value: Value) -> ConversationPatch {
        serde_json::from_value(value).unwrap()
    }

    fn endpoints(plan: &[PlannedCall]) -> Vec<&'static str> {
        plan.iter().map(|c| c.endpoint).collect()
    }

    #[test]
    fn conversation_patch_plans_one_call_per_field_status_last() {
        let plan = plan_conversation_update(
            &patch(json!({
                "status": "resolved",
                "assignee": {"user_id": "4", "team_id": "2"},
                "priority": "high",
                "tags": ["vip"]
            })),
            None,
        )
        .unwrap();
        assert_eq!(
            plan,
            vec![
                PlannedCall::new("conversations.assign_team", Some(json!({"assignee_id": 2}))),
                PlannedCall::new("conversations.assign_user", Some(json!({"assignee_id": 4}))),
                PlannedCall::new(
                    "conversations.update_priority",
                    Some(json!({"priority": "High"}))
                ),
                PlannedCall::new("conversations.update_tags", Some(json!({"tags": ["vip"]}))),
                PlannedCall::new(
                    "conversations.update_status",
                    Some(json!({"status": "Resolved"}))
                ),
            ]
        );

        let plan = plan_conversation_update(&patch(json!({"assignee": null})), None).unwrap();
        assert_eq!(
            endpoints(&plan),
            ["conversations.unassign_user", "conversations.unassign_team"]
        );
        assert!(plan.iter().all(|c| c.body.is_none()));

        let plan = plan_conversation_update(&patch(json!({"status": "closed"})), None).unwrap();
        assert_eq!(plan[0].body, Some(json!({"status": "Closed"})));
        let plan = plan_conversation_update(&patch(json!({"status": "open"})), None).unwrap();
        assert_eq!(plan[0].body, Some(json!({"status": "Open"})));
    }

    #[test]
    fn pending_snoozes_for_a_duration() {
        let plan = plan_conversation_update(&patch(json!({"status": "pending"})), None).unwrap();
        assert_eq!(
            plan[0].body,
            Some(json!({"status": "Snoozed", "snoozed_until": "24h"}))
        );
        let plan =
            plan_conversation_update(&patch(json!({"status": "pending"})), Some(&json!("1h30m")))
                .unwrap();
        assert_eq!(
            plan[0].body,
            Some(json!({"status": "Snoozed", "snoozed_until": "1h30m"}))
        );
        for bad in [
            json!("2025-01-01T00:00:00Z"),
            json!("tomorrow"),
            json!(3600),
            json!(""),
        ] {
            let err = plan_conversation_update(&patch(json!({"status": "pending"})), Some(&bad))
                .unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidRequest, "{bad}");
        }
        assert!(is_go_duration("300ms") && is_go_duration("2h45m") && is_go_duration("1.5h"));
        assert!(!is_go_duration("h") && !is_go_duration("5") && !is_go_duration("5d"));
    }

    #[test]
    fn conversation_patch_refuses_what_libredesk_cannot_do() {
        for body in [
            json!({}),
            json!({"vendor_fields": {"x": 1}}),
            json!({"priority": "urgent"}),
            json!({"assignee": {}}),
            json!({"assignee": {"user_id": "sam"}}),
            json!({"assignee": {"team_id": "0"}}),
        ] {
            let err = plan_conversation_update(&patch(body.clone()), None).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidRequest, "{body}");
        }
        let err = plan_conversation_update(&patch(json!({})), None).unwrap_err();
        assert!(err.detail.contains("nothing to update"));
    }

    // ----- messages ----------------------------------------------------------------------

    #[test]
    fn message_maps_every_field() {
        let value = data(MESSAGE);
        let m = translate_message(&mapper(false), &value, None).unwrap();
        let message_uuid = "a1f3c0de-5b7e-4d2a-8c11-9e0f00000901";
        assert_eq!(m.id, id(Kind::Message, &[CONV_UUID, message_uuid]));
        assert_eq!(m.remote_id, message_uuid);
        assert_eq!(m.conversation_id, id(Kind::Conversation, &[CONV_UUID]));
        assert_eq!(m.direction, Direction::Inbound);
        assert_eq!(
            m.sender,
            Sender {
                type_: SenderType::Contact,
                id: Some("163".into()),
                name: Some("Jane Doe".into())
            }
        );
        assert_eq!(m.type_, MessageType::Text);
        assert_eq!(m.html.as_deref(), value["content"].as_str());
        assert_eq!(
            m.text.as_deref(),
            Some(
                "Hey! A third-party GitHub Application was recently authorized & added. \
                 See <details> \"below\" 'now' Thanks"
            )
        );
        assert_eq!(
            m.attachments,
            vec![
                Attachment {
                    type_: MessageType::Image,
                    url: Some("/uploads/550e8400-e29b-41d4-a716-446655440000".into()),
                    name: Some("screenshot.png".into()),
                    size: Some(102400)
                },
                Attachment {
                    type_: MessageType::File,
                    url: Some("/uploads/550e8400-e29b-41d4-a716-446655440001".into()),
                    name: Some("invoice.pdf".into()),
                    size: Some(2048)
                },
            ]
        );
        assert!(!m.private);
        assert_eq!(m.status, Some(MessageStatus::Received));
        assert_eq!(m.created_at.as_deref(), Some("2025-09-14T18:53:01.172243Z"));
        assert!(m.raw.is_none());
    }

    #[test]
    fn message_page_maps_directions_senders_and_types() {
        let output = messages_page(
            &mapper(false),
            &response(200, MESSAGES_LIST),
            CONV_UUID,
            1,
            5,
        )
        .unwrap();
        let (items, next) = list_json(output);
        assert_eq!(next, Some(json!({"page": 2})));
        // Outgoing agent reply, still queued.
        assert_eq!(items[0]["direction"], "outbound");
        assert_eq!(
            items[0]["sender"],
            json!({"type": "agent", "id": "4", "name": "Sam"})
        );
        assert_eq!(items[0]["status"], "pending");
        assert_eq!(items[0]["text"], "Thanks, we are on it.");
        // Activity: outbound from the system.
        assert_eq!(items[1]["direction"], "outbound");
        assert_eq!(items[1]["sender"]["type"], "system");
        assert_eq!(items[1]["html"], Value::Null);
        assert_eq!(items[1]["text"], "Sam assigned this conversation to Sam");
        assert_eq!(items[1]["attachments"], json!([]));
        // Only attachments.
        assert_eq!(items[2]["type"], "file");
        assert_eq!(items[2]["text"], Value::Null);
        assert_eq!(items[2]["html"], Value::Null);
        assert_eq!(items[2]["attachments"][0]["type"], "audio");
        assert_eq!(items[2]["attachments"][1]["type"], "video");
        // Private note.
        assert_eq!(items[3]["private"], true);
        assert_eq!(items[3]["status"], "sent");
        // Plain text content is passed as is, with no html.
        assert_eq!(items[4]["text"], "plain   text\nfrom the widget");
        assert_eq!(items[4]["html"], Value::Null);
        assert_eq!(items[4]["sender"]["name"], Value::Null);
    }

    #[test]
    fn message_conversation_comes_from_the_message_or_the_caller() {
        let value = json!({"uuid": "m1", "type": "outgoing", "content": "hi", "content_type": "text", "status": "queued"});
        let m = translate_message(&mapper(false), &value, Some("c1")).unwrap();
        assert_eq!(m.id, id(Kind::Message, &["c1", "m1"]));
        assert_eq!(m.status, None);
        assert_eq!(m.sender.type_, SenderType::Agent);
        let err = translate_message(&mapper(false), &value, None).unwrap_err();
        assert_eq!(err.code, ErrorCode::VendorBadResponse);
        let err = translate_message(&mapper(false), &json!({"type": "incoming"}), Some("c1"))
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::VendorBadResponse);
    }

    fn send(value: Value) -> MessageSend {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn message_send_body_is_escaped_html_from_an_agent() {
        let body = message_send_body(&send(json!({
            "conversation_id": "x", "text": "5 < 6 & \"ok\"\r\nbye", "private": true
        })))
        .unwrap();
        assert_eq!(
            body,
            json!({
                "message": "<p>5 &lt; 6 &amp; &quot;ok&quot;<br>bye</p>",
                "sender_type": "agent",
                "private": true,
                "attachments": [],
            })
        );
        let body = message_send_body(&send(json!({
            "conversation_id": "x",
            "vendor_fields": {"attachments": [12, 13]}
        })))
        .unwrap();
        assert_eq!(body["attachments"], json!([12, 13]));
        assert_eq!(body["message"], "");
        assert_eq!(body["private"], false);
    }

    #[test]
    fn message_send_refuses_what_libredesk_cannot_do() {
        let err = message_send_body(&send(json!({
            "conversation_id": "x", "template": {"name": "welcome"}
        })))
        .unwrap_err();
        assert_eq!(err.code, ErrorCode::UnsupportedOperation);
        for body in [
            json!({"conversation_id": "x"}),
            json!({"conversation_id": "x", "text": "  "}),
            json!({"conversation_id": "x", "text": "hi", "vendor_fields": {"attachments": "1"}}),
        ] {
            let err = message_send_body(&send(body.clone())).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidRequest, "{body}");
        }
    }

    // ----- text, cursors -----------------------------------------------------------------

    #[test]
    fn html_becomes_plain_text() {
        assert_eq!(
            html_to_text("<p>Hello <b>world</b></p><p>Bye</p>"),
            "Hello world Bye"
        );
        assert_eq!(html_to_text("a<br/>b<BR>c"), "a b c");
        assert_eq!(html_to_text("1 < 2 &amp;&amp; 3 > 2"), "1 < 2 && 3 > 2");
        assert_eq!(
            html_to_text("&#65;&#x42;&unknown; &amp"),
            "AB&unknown; &amp"
        );
        assert_eq!(
            html_to_text("<script>alert('<p>x</p>')</SCRIPT>ok<style>p{}</style>"),
            "ok"
        );
        assert_eq!(html_to_text("a<!-- <p>hidden</p> -->b<!-- open"), "ab");
        assert_eq!(
            html_to_text("caf&eacute; naïve&nbsp;text <unclosed"),
            "caf&eacute; naïve text <unclosed"
        );
        assert_eq!(html_to_text("  \n "), "");
    }

    #[test]
    fn text_becomes_escaped_html() {
        assert_eq!(text_to_html("it's <b>"), "<p>it&#39;s &lt;b&gt;</p>");
        assert_eq!(text_to_html("a\n\nb"), "<p>a<br><br>b</p>");
        assert_eq!(html_to_text(&text_to_html("x & y\nz")), "x & y z");
    }

    #[test]
    fn cursors_carry_the_page_number() {
        let page = |cursor| Page { limit: 20, cursor };
        assert_eq!(page_number(&page(None)).unwrap(), 1);
        assert_eq!(page_number(&page(Some(json!({"page": 4})))).unwrap(), 4);
        for bad in [
            json!({"page": 0}),
            json!({"page": "2"}),
            json!({"after": "x"}),
        ] {
            assert_eq!(
                page_number(&page(Some(bad))).unwrap_err().code,
                ErrorCode::InvalidRequest
            );
        }
        let page_data = |total_pages, total, per_page| Totals {
            total,
            per_page,
            total_pages,
        };
        assert_eq!(next_page(page_data(Some(3), None, None), 3, 5, 5), None);
        assert_eq!(next_page(page_data(Some(3), None, None), 0, 0, 5), None);
        assert_eq!(
            next_page(page_data(None, Some(11), Some(5)), 2, 5, 5),
            Some(json!({"page": 3}))
        );
        assert_eq!(next_page(page_data(None, Some(10), Some(5)), 2, 5, 5), None);
        assert_eq!(
            next_page(page_data(None, None, None), 1, 5, 5),
            Some(json!({"page": 2}))
        );
        assert_eq!(next_page(page_data(None, None, None), 1, 4, 5), None);
        assert_eq!(
            search_query(" ab ").unwrap_err().code,
            ErrorCode::InvalidRequest
        );
        assert_eq!(search_query("añb").unwrap(), "añb");
    }

    // ----- execute, against a scripted Libredesk on loopback -------------------------------

    /// A Libredesk that answers `(method, path)` with a fixed status and body.
    async fn libredesk(replies: &[(&str, &str, u16, &str)]) -> (String, Arc<Script>) {
        let not_found = r#"{"status":"error","message":"Not found","data":null,"error_type":"NotFoundException"}"#;
        test_support::serve(Vendor::Libredesk, not_found, replies.iter().copied()).await
    }

    fn connection(base: &str, without: &[&str]) -> Connection {
        let mut defaults = Map::new();
        defaults.insert("inbox_id".into(), json!(3));
        test_support::connection(
            Vendor::Libredesk,
            "desk",
            base,
            "token k:s",
            defaults,
            without,
        )
    }

    fn form_field(body: &str, name: &str) -> Option<String> {
        let start = format!("name=\"{name}\"\r\n\r\n");
        let at = body.find(&start)? + start.len();
        let end = body[at..].find("\r\n--")?;
        Some(body[at..at + end].to_owned())
    }

    const SUCCESS_TRUE: &str = r#"{"status":"success","data":true}"#;

    #[tokio::test]
    async fn malformed_ids_and_missing_routes_make_no_vendor_call() {
        // Nothing listens here: any call would fail with vendor_unavailable.
        let conn = connection("http://127.0.0.1:9", &["conversations.assign_user"]);
        let cases = [
            OperationRequest::ContactsGet(object_id(Kind::Contact, &["abc"])),
            OperationRequest::ContactsGet(object_id(Kind::Contact, &["1", "2"])),
            OperationRequest::ContactsUpdate(
                object_id(Kind::Contact, &["-4"]),
                ContactPatch::default(),
            ),
            OperationRequest::MessagesGet(object_id(Kind::Message, &["only-one"])),
            OperationRequest::ConversationsGet(object_id(Kind::Conversation, &["a", "b"])),
        ];
        for request in cases {
            let (result, calls) = run(&conn, request).await;
            assert_eq!(result.unwrap_err().code, ErrorCode::NotFound);
            assert_eq!(calls, 0);
        }

        let update = OperationRequest::ConversationsUpdate(
            object_id(Kind::Conversation, &[CONV_UUID]),
            patch(json!({"status": "closed", "assignee": {"user_id": "4"}})),
        );
        let (result, calls) = run(&conn, update).await;
        let err = result.unwrap_err();
        assert_eq!(err.code, ErrorCode::UnsupportedOperation);
        assert!(err.detail.contains("conversations.assign_user"));
        assert_eq!(calls, 0);

        let too_short = OperationRequest::ContactsList(
            Page {
                limit: 20,
                cursor: None,
            },
            ContactFilters {
                q: Some("ab".into()),
                ..Default::default()
            },
        );
        let (result, calls) = run(&conn, too_short).await;
        assert_eq!(
            result.unwrap_err().detail,
            "q needs at least 3 characters for libredesk"
        );
        assert_eq!(calls, 0);

        let email = OperationRequest::ContactsList(
            Page {
                limit: 20,
                cursor: None,
            },
            ContactFilters {
                email: Some("a@b.c".into()),
                ..Default::default()
            },
        );
        assert_eq!(
            run(&conn, email).await.0.unwrap_err().code,
            ErrorCode::UnsupportedFilter
        );

        for request in [
            OperationRequest::ContactsCreate(Default::default()),
            OperationRequest::ContactsDelete(object_id(Kind::Contact, &["1"])),
            OperationRequest::ConversationsDelete(object_id(Kind::Conversation, &[CONV_UUID])),
        ] {
            let (result, calls) = run(&conn, request).await;
            assert_eq!(result.unwrap_err().code, ErrorCode::UnsupportedOperation);
            assert_eq!(calls, 0);
        }
    }

    #[tokio::test]
    async fn contact_get_and_vendor_errors() {
        let (base, _) = libredesk(&[("GET", "/api/v1/contacts/163", 200, CONTACT)]).await;
        let conn = connection(&base, &[]);
        let (result, calls) = run(
            &conn,
            OperationRequest::ContactsGet(object_id(Kind::Contact, &["163"])),
        )
        .await;
        let (kind, contact) = object_json(result.unwrap());
        assert_eq!((kind, calls), ("found", 1));
        assert_eq!(contact["phones"], json!(["+447700900123"]));
        let (result, _) = run(
            &conn,
            OperationRequest::ContactsGet(object_id(Kind::Contact, &["999"])),
        )
        .await;
        assert_eq!(result.unwrap_err().code, ErrorCode::NotFound);
    }

    #[tokio::test]
    async fn contact_update_reads_merges_and_writes_the_whole_contact() {
        let updated = CONTACT.replace("\"Jane\"", "\"Ada\"");
        let (base, script) = libredesk(&[
            ("GET", "/api/v1/contacts/163", 200, CONTACT),
            ("PUT", "/api/v1/contacts/163", 200, updated.as_str()),
        ])
        .await;
        let conn = connection(&base, &[]);
        let request = OperationRequest::ContactsUpdate(
            object_id(Kind::Contact, &["163"]),
            ContactPatch {
                first_name: Some("Ada".into()),
                ..Default::default()
            },
        );
        let (result, calls) = run(&conn, request).await;
        let (kind, contact) = object_json(result.unwrap());
        assert_eq!((kind, calls), ("found", 2));
        assert_eq!(contact["first_name"], "Ada");
        let seen = seen(&script);
        assert_eq!(seen[0].method, "GET");
        let put = &seen[1];
        assert_eq!(put.method, "PUT");
        assert!(put
            .content_type
            .starts_with("multipart/form-data; boundary="));
        assert_eq!(form_field(&put.body, "first_name").as_deref(), Some("Ada"));
        assert_eq!(form_field(&put.body, "last_name").as_deref(), Some("Doe"));
        assert_eq!(
            form_field(&put.body, "email").as_deref(),
            Some("jane.doe@example.com")
        );
        assert_eq!(
            form_field(&put.body, "phone_number").as_deref(),
            Some("7700 900-123")
        );
        assert_eq!(
            form_field(&put.body, "phone_number_country_code").as_deref(),
            Some("+44")
        );
        assert_eq!(
            form_field(&put.body, "avatar_url").as_deref(),
            Some("/uploads/3f1c9a-avatar.png")
        );
    }

    #[tokio::test]
    async fn contact_list_pages_and_search() {
        let (base, script) = libredesk(&[
            ("GET", "/api/v1/contacts", 200, CONTACTS_LIST),
            ("GET", "/api/v1/contacts/search", 200, CONTACTS_SEARCH),
        ])
        .await;
        let conn = connection(&base, &[]);
        let request = OperationRequest::ContactsList(
            Page {
                limit: 2,
                cursor: Some(json!({"page": 1})),
            },
            ContactFilters::default(),
        );
        let (items, next) = list_json(run(&conn, request).await.0.unwrap());
        assert_eq!((items.len(), next), (2, Some(json!({"page": 2}))));
        let request = OperationRequest::ContactsList(
            Page {
                limit: 1,
                cursor: None,
            },
            ContactFilters {
                q: Some(" john ".into()),
                ..Default::default()
            },
        );
        let (items, next) = list_json(run(&conn, request).await.0.unwrap());
        assert_eq!((items.len(), next), (1, None));
        let seen = seen(&script);
        assert_eq!(seen[0].query_param("page").as_deref(), Some("1"));
        assert_eq!(seen[0].query_param("page_size").as_deref(), Some("2"));
        assert_eq!(seen[1].path, "/api/v1/contacts/search");
        assert_eq!(seen[1].query_param("query").as_deref(), Some("john"));
    }

    #[tokio::test]
    async fn conversation_list_sends_order_and_status_filter() {
        let (base, script) =
            libredesk(&[("GET", "/api/v1/conversations/all", 200, CONVERSATIONS_LIST)]).await;
        let conn = connection(&base, &[]);
        let request = OperationRequest::ConversationsList(
            Page {
                limit: 4,
                cursor: None,
            },
            ConversationFilters {
                status: Some(ConversationStatus::Resolved),
                contact: None,
            },
        );
        let (items, next) = list_json(run(&conn, request).await.0.unwrap());
        assert_eq!((items.len(), next), (4, None));
        let seen = seen(&script);
        assert_eq!(
            seen[0].query_param("order_by").as_deref(),
            Some("conversations.last_message_at")
        );
        assert_eq!(seen[0].query_param("order").as_deref(), Some("desc"));
        let filters: Value =
            serde_json::from_str(&seen[0].query_param("filters").unwrap()).unwrap();
        assert_eq!(filters[0]["value"], "Resolved");
    }

    #[tokio::test]
    async fn conversation_update_makes_each_call_then_reads_back() {
        let path = format!("/api/v1/conversations/{CONV_UUID}");
        let routes = [
            ("PUT", format!("{path}/assignee/user/remove")),
            ("PUT", format!("{path}/assignee/team/remove")),
            ("PUT", format!("{path}/priority")),
            ("PUT", format!("{path}/status")),
        ];
        let mut replies: Vec<(&str, &str, u16, &str)> = routes
            .iter()
            .map(|(m, p)| (*m, p.as_str(), 200, SUCCESS_TRUE))
            .collect();
        replies.push(("GET", path.as_str(), 200, CONVERSATION));
        let (base, script) = libredesk(&replies).await;
        let conn = connection(&base, &[]);
        let request = OperationRequest::ConversationsUpdate(
            object_id(Kind::Conversation, &[CONV_UUID]),
            patch(json!({"status": "pending", "assignee": null, "priority": "low"})),
        );
        let (result, calls) = run(&conn, request).await;
        let (kind, conversation) = object_json(result.unwrap());
        assert_eq!((kind, calls), ("found", 5));
        assert_eq!(conversation["remote_id"], CONV_UUID);
        let seen = seen(&script);
        let paths: Vec<&str> = seen.iter().map(|s| s.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                routes[0].1.as_str(),
                &routes[1].1,
                &routes[2].1,
                &routes[3].1,
                &path
            ]
        );
        assert_eq!(seen[2].json(), json!({"priority": "Low"}));
        assert_eq!(
            seen[3].json(),
            json!({"status": "Snoozed", "snoozed_until": "24h"})
        );
        assert_eq!(seen[3].content_type, "application/json");
    }

    #[tokio::test]
    async fn conversation_update_stops_at_the_first_vendor_error() {
        let path = format!("/api/v1/conversations/{CONV_UUID}");
        let status = format!("{path}/status");
        let (base, _) = libredesk(&[("PUT", status.as_str(), 403, r#"{"status":"error","message":"Permission denied","data":null,"error_type":"PermissionException"}"#)]).await;
        let conn = connection(&base, &[]);
        let request = OperationRequest::ConversationsUpdate(
            object_id(Kind::Conversation, &[CONV_UUID]),
            patch(json!({"status": "closed"})),
        );
        let (result, calls) = run(&conn, request).await;
        assert_eq!(result.unwrap_err().code, ErrorCode::Forbidden);
        assert_eq!(calls, 1);
    }

    #[tokio::test]
    async fn conversation_create_looks_up_the_contact_and_uses_defaults() {
        let (base, script) = libredesk(&[
            ("GET", "/api/v1/contacts/163", 200, CONTACT),
            ("POST", "/api/v1/conversations", 200, CONVERSATION),
        ])
        .await;
        let conn = connection(&base, &[]);
        let body = ConversationCreate {
            text: Some("Hello".into()),
            vendor_fields: serde_json::from_value(json!({"agent_id": "4"})).unwrap(),
            ..Default::default()
        };
        let request =
            OperationRequest::ConversationsCreate(body, Some(object_id(Kind::Contact, &["163"])));
        let (result, calls) = run(&conn, request).await;
        let (kind, conversation) = object_json(result.unwrap());
        assert_eq!((kind, calls), ("created", 2));
        assert_eq!(conversation["contact_id"], id(Kind::Contact, &["163"]));
        let post = &seen(&script)[1];
        assert_eq!(
            post.json(),
            json!({
                "inbox_id": 3,
                "contact_email": "jane.doe@example.com",
                "first_name": "Jane",
                "last_name": "Doe",
                "subject": "",
                "content": "<p>Hello</p>",
                "initiator": "agent",
                "agent_id": 4,
            })
        );

        // A bad inbox_id is refused before any call.
        let body = ConversationCreate {
            text: Some("Hello".into()),
            contact: Some(NewContact {
                email: Some("a@b.io".into()),
                ..Default::default()
            }),
            vendor_fields: serde_json::from_value(json!({"inbox_id": "support"})).unwrap(),
            ..Default::default()
        };
        let (result, calls) = run(&conn, OperationRequest::ConversationsCreate(body, None)).await;
        let err = result.unwrap_err();
        assert!(err.detail.contains("vendor_fields.inbox_id"));
        assert_eq!(calls, 0);
    }

    #[tokio::test]
    async fn message_send_and_get() {
        let path = format!("/api/v1/conversations/{CONV_UUID}/messages");
        let outgoing =
            json!({"status": "success", "data": data(MESSAGES_LIST)["results"][0].clone()})
                .to_string();
        let message_path = format!("{path}/a1f3c0de-5b7e-4d2a-8c11-9e0f00000901");
        let (base, script) = libredesk(&[
            ("POST", path.as_str(), 200, outgoing.as_str()),
            ("GET", message_path.as_str(), 200, MESSAGE),
        ])
        .await;
        let conn = connection(&base, &[]);
        let body = send(json!({"conversation_id": "x", "text": "On it", "private": false}));
        let request =
            OperationRequest::MessagesSend(object_id(Kind::Conversation, &[CONV_UUID]), body);
        let (result, calls) = run(&conn, request).await;
        let (kind, message) = object_json(result.unwrap());
        assert_eq!((kind, calls), ("created", 1));
        assert_eq!(message["status"], "pending");
        assert_eq!(
            seen(&script)[0].json(),
            json!({"message": "<p>On it</p>", "sender_type": "agent", "private": false, "attachments": []})
        );

        let request = OperationRequest::MessagesGet(object_id(
            Kind::Message,
            &[CONV_UUID, "a1f3c0de-5b7e-4d2a-8c11-9e0f00000901"],
        ));
        let (kind, message) = object_json(run(&conn, request).await.0.unwrap());
        assert_eq!(kind, "found");
        assert_eq!(message["direction"], "inbound");
    }

    /// Before/after: the sandbox's seeded pages (vendor bytes captured from the sandbox, in
    /// `tests/fixtures/golden/`) translate to exactly the bytes the gateway answered for them
    /// before the adapter read vendor bodies typed (issue 11) — except where issue 12 says that
    /// answer was wrong: conversation list items no longer claim `contact_id: null` and
    /// `tags: []` (the list item carries neither), they leave them out and say `partial: true`.
    mod golden {
        use super::super::*;
        use crate::vendors::test_support::{golden_fixture, golden_mapper, golden_vendor};

        fn mapper(want_raw: bool) -> Mapper {
            golden_mapper("libredesk", want_raw)
        }

        /// The `data` array of a list answer the gateway wrote, as it wrote it.
        fn data_of(body: &str) -> &str {
            let start = body.find("\"data\":").unwrap() + "\"data\":".len();
            let end = body.rfind(",\"next_cursor\"").unwrap();
            &body[start..end]
        }

        fn list(output: Output) -> String {
            match output {
                Output::List { data, .. } => serde_json::to_string(&data).unwrap(),
                other => panic!("not a list: {other:?}"),
            }
        }

        fn assert_list(name: &str, output: Output) {
            let expected = golden_fixture(&format!("{name}.normalized.json"));
            assert_eq!(list(output), data_of(&expected), "{name}");
        }

        #[test]
        fn seeded_lists_translate_as_before() {
            let m = mapper(false);
            let contacts = golden_vendor("ld_contacts_p1");
            assert_list(
                "ld_contacts_p1",
                contacts_page(&m, &contacts, 1, 30).unwrap(),
            );
            assert_list(
                "ld_contacts_p1_raw",
                contacts_page(&mapper(true), &contacts, 1, 30).unwrap(),
            );
            let conversations = golden_vendor("ld_conversations");
            assert_list(
                "ld_conversations",
                conversations_page(&m, &conversations, 1, 20).unwrap(),
            );
            assert_list(
                "ld_conversations_raw",
                conversations_page(&mapper(true), &conversations, 1, 20).unwrap(),
            );
            for (name, uuid) in [
                ("ld_messages1", "c0000000-0000-4000-8000-000000000001"),
                ("ld_messages2", "c0000000-0000-4000-8000-000000000002"),
            ] {
                assert_list(
                    name,
                    messages_page(&m, &golden_vendor(name), uuid, 1, 20).unwrap(),
                );
            }
            let hits = search_hits(&m, &golden_vendor("ld_search"), 20).unwrap();
            let data: Vec<Resource> = hits
                .into_iter()
                .map(|hit| match hit {
                    SearchHit::Found(contact) => Resource::from(contact),
                    SearchHit::ByEmail(email) => panic!("the captured results have ids: {email}"),
                })
                .collect();
            assert_list("ld_search", Output::List { data, next: None });
        }

        #[test]
        fn seeded_objects_translate_as_before() {
            let m = mapper(false);
            let contact = golden_vendor("ld_contact101");
            let contact = contact_from_wire(&m, read_object(&contact, "contact").unwrap(), None);
            assert_eq!(
                serde_json::to_string(&contact.unwrap()).unwrap(),
                golden_fixture("ld_contact101.normalized.json")
            );
            let conversation = golden_vendor("ld_conversation1");
            let wire = read_object(&conversation, "conversation").unwrap();
            let conversation = Resource::from(conversation_from_wire(&m, wire, None).unwrap());
            assert_eq!(
                serde_json::to_string(&conversation).unwrap(),
                golden_fixture("ld_conversation1.normalized.json")
            );
        }
    }
}
