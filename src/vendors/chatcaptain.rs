//! ChatCaptain adapter: the normalized API over ChatCaptain's REST API (`/v1`).
//!
//! ChatCaptain quirks this adapter hides from callers:
//!
//! - **Everything lives under one chatbot.** Keys are per chatbot and every path carries its id:
//!   the routes file uses the connection placeholder `{chatbot_id}`, filled from the
//!   connection's `defaults.chatbot_id` (a required default).
//! - **No envelope wrapper.** An answer is one object with one named key (`contacts`,
//!   `conversation`, `messages`, `message`, `results`, `deleted`, `conversationId`, …) and an
//!   optional `error: string`. Errors are `{error}` with 403 "Insufficient permissions." (a
//!   wrong or missing key, or a key of another chatbot) and 400 "Invalid input data.". A non-2xx
//!   is mapped by status through `wire::status_error` with the vendor's `error` text. A 2xx
//!   that carries a non-empty `error`, or lacks the expected key, is `vendor_bad_response` —
//!   except when the expected object is absent or `null` and the `error` text says "not found",
//!   which clearly is a not-found and answers 404.
//! - **Update bodies have no published envelope.** The reference shows the contact and
//!   conversation PATCH bodies as empty; whether the fields go at the top level or inside a
//!   wrapper (`{"conversation": {…}}`, the pattern of other ChatCaptain update DTOs such as
//!   `UpdateChatbotRequestDto {updateChatbot}`) is routes-file data: `body_envelope: none |
//!   <key>` on `contacts.update` and `conversations.update`, marked provisional, shipped as
//!   `none` like every body the reference does show. Creates are flat.
//! - **Conversations have no status, only `archived`.** `archived: true` reads as `closed`
//!   (`vendor_status` "archived"), anything else as `open` (`vendor_status` "active"). PATCH
//!   `status: resolved | closed` archives, `open` unarchives (a provisional use of the published
//!   conversation PATCH: ChatCaptain documents no close call); `pending` has no ChatCaptain
//!   equivalent and answers 501, as do `assignee`, `priority` and `tags` (the conversation PATCH
//!   body is not documented beyond that) — always before any vendor call. A conversation read
//!   back after `status: resolved` therefore says `closed`.
//! - **Conversation and message lists are not paged by ChatCaptain.** The adapter fetches the
//!   whole list and serves `limit` items from an offset kept in the cursor (`{"offset": n}`).
//!   The list is re-read for every page, so a conversation created between two page reads can
//!   shift the window by one. The `status` filter is applied here, on the same mapping that
//!   produces `status`, before the window is cut: it is exact. `contact_id` becomes the
//!   vendor's `contactId` query parameter.
//! - **Contacts page by date.** `GET …/contacts?limit&pageToken` answers records created
//!   before `pageToken` (an ISO date), newest first; the cursor is `{"before": "<created of
//!   the last item>"}` and is only handed out after a full page (a `nextPageToken` in the answer
//!   wins when ChatCaptain sends one). Records sharing a `created` instant across a page border
//!   would be skipped: ChatCaptain stamps records with millisecond precision.
//! - **Search pages by number.** `q` uses `GET …/contacts/search?query&page&pageSize`
//!   (1-based pages); its `results` is a search result (`{found, page, hits: [{document}]}`),
//!   and the cursor is `{"page": n}`. email, phone and handle filters have no ChatCaptain
//!   equivalent and answer 400 `unsupported_filter`.
//! - **Contacts.** `name` is one field (first/last are split on the first space; a PATCH of
//!   only `first_name` or `last_name` reads the contact to rebuild the name); one `email`, one
//!   `phoneNumber`; channel identities `whatsappId` (→ handle `whatsapp` and, as `+<digits>`,
//!   a phone), `webId` (→ `web`), `instagramId`/`facebookId`/`telegramId` (→ `other`);
//!   `avatar` ↔ `avatar_url`; `variables` ↔ `custom_fields`; no company. Creating needs a
//!   `language` (`vendor_fields.language` or the connection default). Phones are E.164 when the
//!   stored number is international (`+…` or `00…`); a national number is passed through.
//! - **Creating a conversation** is the inbox call `POST /v1/inbox/{chatbotId}/conversations
//!   {name, channelId, email?, phone?}` → `{conversationId}`; `channelId` is
//!   `vendor_fields.channel_id` or the connection default. A `contact_id` is read first for
//!   its name, email and phone; `text` is then sent as the first agent message; the
//!   conversation is read back. Conversations have no subject.
//! - **Messages** are sent as an agent: `POST /v1/inbox/{chatbotId}/messages {conversationId,
//!   text?, attachmentRef?}` → 201 `{message}`. An attachment must be uploaded to ChatCaptain
//!   first (`vendor_fields.attachment_ref`); there are no private notes and no template sends
//!   (501). `sender` user → contact/inbound, bot → bot/outbound, agent → agent/outbound; the
//!   text is `content.text`.
//!
//! Only the request fields named above are written; field names that ChatCaptain's reference
//! does not spell out (contact and message bodies, `created`/`updated`) follow its documented
//! camelCase DTOs, and the readers also accept `createdAt`/`updatedAt`.

use std::borrow::Cow;
use std::marker::PhantomData;

use async_trait::async_trait;
use serde::de::{self, DeserializeSeed, IgnoredAny, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::common::attachment;
use super::common::typed::{self, opt_text, Text};
use super::common::wire::{self, credentials_rejected};
use super::common::{
    attachment_type, bad_response, check_status, check_vendor_fields, cursor_number, cursor_text,
    ep, error_text, filter, filter_via, join_name, keys, message_status, non_empty, op,
    owned_non_empty, parse_json, parse_wire, phone, required_text, split_name, text_field, Mapper,
};
use super::{Adapter, CallContext, EndpointSpec, OperationSpec};
// The upstream client's types.
use super::{VendorBody, VendorCall, VendorResponse};
use crate::api::ids::{KeyGrammar, Kind, ObjectId};
use crate::api::model::{
    vendor_label, Attachment, Channel, Contact, ContactCreate, ContactPatch, Conversation,
    ConversationCreate, ConversationPatch, ConversationStatus, Direction, Handle, HandleChannel,
    Message, MessageSend, MessageStatus, MessageType, NewContact, Sender, SenderType,
};
use crate::api::operation::{Operation::*, Vendor};
use crate::api::request::{
    ContactFilters, ConversationFilters, OperationRequest, Output, Page, Resource,
};
use crate::api::{ApiError, ErrorCode};

pub struct ChatCaptain;

const VENDOR: Vendor = Vendor::ChatCaptain;

/// `vendor_status` of a conversation that is not archived.
const ACTIVE: &str = "active";
/// `vendor_status` of an archived conversation.
const ARCHIVED: &str = "archived";

/// Every ChatCaptain call the routes file may configure. `{chatbot_id}` is a connection
/// placeholder ([`ChatCaptain::connection_params`]), allowed in every path.
static ENDPOINTS: &[EndpointSpec] = &[
    ep("contacts.list", &[]),
    ep("contacts.search", &[]),
    ep("contacts.create", &[]),
    ep("contacts.get", &["contact_id"]),
    // Whether the PATCH body wraps the fields is not published: the routes file says.
    ep("contacts.update", &["contact_id"]).body_envelope(""),
    ep("contacts.delete", &["contact_id"]),
    ep("conversations.list", &[]),
    ep("conversations.get", &["conversation_id"]),
    ep("conversations.create", &[]),
    ep("conversations.update", &["conversation_id"]).body_envelope(""),
    ep("conversations.delete", &["conversation_id"]),
    ep("messages.list", &["conversation_id"]),
    ep("messages.get", &["conversation_id", "message_id"]),
    ep("messages.send", &[]),
];

/// What the adapter serves, and the calls each operation needs. Every operation of the
/// normalized API has a ChatCaptain call; what ChatCaptain cannot do inside an operation
/// (filters, PATCH fields, private notes) is refused per request.
#[rustfmt::skip]
static OPERATIONS: &[OperationSpec] = &[
    op(ContactsList,        &["contacts.list"]).filters(&[filter_via("q", "contacts.search")]),
    op(ContactsCreate,      &["contacts.create"]),
    op(ContactsGet,         &["contacts.get"]),
    op(ContactsUpdate,      &["contacts.get", "contacts.update"]),
    op(ContactsDelete,      &["contacts.delete"]),
    op(ConversationsList,   &["conversations.list"])
        .filters(&[filter("status"), filter("contact_id")]),
    op(ConversationsCreate, &["conversations.create", "conversations.get"]),
    op(ConversationsGet,    &["conversations.get"]),
    op(ConversationsUpdate, &["conversations.update", "conversations.get"]),
    op(ConversationsDelete, &["conversations.delete"]),
    op(MessagesList,        &["messages.list"]),
    op(MessagesGet,         &["messages.get"]),
    op(MessagesSend,        &["messages.send"]),
];

#[async_trait]
impl Adapter for ChatCaptain {
    /// ChatCaptain ids are strings (Firestore-style); a message also carries its conversation.
    fn key_grammar(&self, kind: Kind) -> &'static [KeyGrammar] {
        use KeyGrammar::Opaque as S;
        match kind {
            Kind::Contact | Kind::Conversation => &[S],
            Kind::Message => &[S, S],
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
    fn connection_params(&self) -> &'static [&'static str] {
        &["chatbot_id"]
    }
    fn required_defaults(&self) -> &'static [&'static str] {
        &["chatbot_id"]
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
            OperationRequest::ContactsCreate(body) => create_contact(ctx, &body).await,
            OperationRequest::ContactsGet(id) => {
                let key = contact_key(&id)?;
                let contact = get_contact(ctx, key).await?;
                Ok(Output::Found(contact.into()))
            }
            OperationRequest::ContactsUpdate(id, patch) => update_contact(ctx, &id, &patch).await,
            OperationRequest::ContactsDelete(id) => {
                let key = contact_key(&id)?;
                let response = ctx.call("contacts.delete", contact_call(key)).await?;
                read_deleted(&response)?;
                Ok(Output::Deleted)
            }
            OperationRequest::ConversationsList(page, filters) => {
                list_conversations(ctx, &page, &filters).await
            }
            OperationRequest::ConversationsCreate(body, contact_id) => {
                create_conversation(ctx, &body, contact_id.as_ref()).await
            }
            OperationRequest::ConversationsGet(id) => {
                let key = conversation_key(&id)?;
                let conversation = get_conversation(ctx, key).await?;
                Ok(Output::Found(conversation.into()))
            }
            OperationRequest::ConversationsUpdate(id, patch) => {
                update_conversation(ctx, &id, &patch).await
            }
            OperationRequest::ConversationsDelete(id) => {
                let key = conversation_key(&id)?;
                let response = ctx
                    .call("conversations.delete", conversation_call(key))
                    .await?;
                read_deleted(&response)?;
                Ok(Output::Deleted)
            }
            OperationRequest::MessagesList(conversation_id, page) => {
                list_messages(ctx, &conversation_id, &page).await
            }
            OperationRequest::MessagesGet(id) => {
                let (conversation, message) = message_keys(&id)?;
                let call = conversation_call(conversation).param("message_id", message);
                let response = ctx.call("messages.get", call).await?;
                let mapper = Mapper::new(ctx);
                let wire = read_typed(&response, "message")?.required(
                    response.status,
                    "message",
                    "an object",
                )?;
                let raw = raw_at(&mapper, &response, "message");
                let message = message_from_wire(&mapper, wire, conversation, raw)?;
                Ok(Output::Found(message.into()))
            }
            OperationRequest::MessagesSend(conversation_id, body) => {
                send_message(ctx, &conversation_id, &body).await
            }
        }
    }
}

// ----- operations: call sequencing only ------------------------------------------------------

fn contact_call(id: &str) -> VendorCall {
    VendorCall::new().param("contact_id", id)
}

fn conversation_call(id: &str) -> VendorCall {
    VendorCall::new().param("conversation_id", id)
}

async fn get_contact(ctx: &mut CallContext<'_>, id: &str) -> Result<Contact, ApiError> {
    let response = ctx.call("contacts.get", contact_call(id)).await?;
    let mapper = Mapper::new(ctx);
    let wire =
        read_typed(&response, "contact")?.required(response.status, "contact", "an object")?;
    contact_from_wire(&mapper, wire, raw_at(&mapper, &response, "contact"))
}

async fn fetch_contact(ctx: &mut CallContext<'_>, id: &str) -> Result<Value, ApiError> {
    let response = ctx.call("contacts.get", contact_call(id)).await?;
    read_field(&response, "contact")
}

async fn list_contacts(
    ctx: &mut CallContext<'_>,
    page: &Page,
    filters: &ContactFilters,
) -> Result<Output, ApiError> {
    // The gateway rejects filters missing from OPERATIONS; this guards the adapter anyway.
    if filters.email.is_some() || filters.phone.is_some() || filters.handle.is_some() {
        return Err(ApiError::unsupported_filter(
            "chatcaptain can only search contacts by q; email, phone and handle filters are not \
             available",
        ));
    }
    if let Some(q) = &filters.q {
        let query = search_query(q)?;
        let number = search_page(page)?;
        ctx.require_routes(["contacts.search"], "search contacts (filter q)")?;
        let call = VendorCall::new()
            .query("query", query)
            .query("page", number.to_string())
            .query("pageSize", page.limit.to_string());
        let response = ctx.call("contacts.search", call).await?;
        let results = read_nullable(&response, "results")?;
        return translate_search(&Mapper::new(ctx), &results, number, page.limit);
    }
    let before = contacts_before(page)?;
    let mut call = VendorCall::new().query("limit", page.limit.to_string());
    if let Some(before) = before {
        call = call.query("pageToken", before);
    }
    let response = ctx.call("contacts.list", call).await?;
    contacts_page(&Mapper::new(ctx), &response, page.limit)
}

/// The answer of `contacts.list` as a page of normalized contacts. Also the entry point of
/// `vendors::bench_support`.
pub(super) fn contacts_page(
    mapper: &Mapper,
    response: &VendorResponse,
    limit: u32,
) -> Result<Output, ApiError> {
    translate_contact_page(mapper, response, limit)
}

async fn create_contact(
    ctx: &mut CallContext<'_>,
    body: &ContactCreate,
) -> Result<Output, ApiError> {
    check_vendor_fields(VENDOR, &body.vendor_fields, &["language"], "contacts")?;
    let what = "a language code such as \"de\", to create a contact";
    let language = required_text(ctx, &body.vendor_fields, "language", what)?;
    let request = contact_create_body(body, &language)?;
    let response = ctx
        .call(
            "contacts.create",
            VendorCall::new().body(VendorBody::json(&request)),
        )
        .await?;
    let answer = read_answer(&response)?;
    check_no_error(&answer, response.status)?;
    let value = match answer.get("contact") {
        Some(contact @ Value::Object(_)) => contact.clone(),
        // An answer that only names the new contact: read it.
        _ => {
            let id = created_id(&answer, response.status, &["contactId", "id"], "contact")?;
            ctx.require_routes(["contacts.get"], "read back the created contact")?;
            fetch_contact(ctx, &id).await?
        }
    };
    let contact = translate_contact(&Mapper::new(ctx), &value)?;
    Ok(Output::Created(contact.into()))
}

async fn update_contact(
    ctx: &mut CallContext<'_>,
    id: &ObjectId,
    patch: &ContactPatch,
) -> Result<Output, ApiError> {
    let key = contact_key(id)?.to_owned();
    check_contact_patch(patch)?;
    let language = text_field("language", patch.vendor_fields.get("language"))?;
    let stored = if contact_patch_needs_current(patch) {
        Some(fetch_contact(ctx, &key).await?)
    } else {
        None
    };
    let current = stored.as_ref().map(parse_contact).transpose()?;
    let changes = contact_changes(patch, current.as_ref(), language)?;
    let body = enveloped(ctx, "contacts.update", json!(changes));
    let response = ctx
        .call(
            "contacts.update",
            contact_call(&key).body(VendorBody::json(&body)),
        )
        .await?;
    let answer = read_answer(&response)?;
    check_no_error(&answer, response.status)?;
    let value = match answer.get("contact") {
        Some(contact @ Value::Object(_)) => contact.clone(),
        // A bare acknowledgement: read the contact back.
        _ => fetch_contact(ctx, &key).await?,
    };
    let contact = translate_contact(&Mapper::new(ctx), &value)?;
    Ok(Output::Found(contact.into()))
}

async fn list_conversations(
    ctx: &mut CallContext<'_>,
    page: &Page,
    filters: &ConversationFilters,
) -> Result<Output, ApiError> {
    let offset = offset(page)?;
    let mut call = VendorCall::new();
    if let Some(contact) = &filters.contact {
        call = call.query("contactId", contact_key(contact)?);
    }
    let response = ctx.call("conversations.list", call).await?;
    conversations_window(
        &Mapper::new(ctx),
        &response,
        filters.status,
        offset,
        page.limit,
    )
}

/// The answer of `conversations.list` (the whole list) as the window of `limit` normalized
/// conversations from `offset`, keeping those of `status`. Also the entry point of
/// `vendors::bench_support`.
pub(super) fn conversations_window(
    mapper: &Mapper,
    response: &VendorResponse,
    status: Option<ConversationStatus>,
    offset: usize,
    limit: u32,
) -> Result<Output, ApiError> {
    let answer: Answer<'_, Vec<WireConversation<'_>>> = read_typed(response, "conversations")?;
    let items = answer.required(response.status, "conversations", "a list")?;
    let mut raws = raw_list(mapper, response, "conversations");
    let mut conversations = Vec::with_capacity(items.len());
    for (i, wire) in items.into_iter().enumerate() {
        let conversation = conversation_from_wire(mapper, wire, typed::take_raw(&mut raws, i))?;
        if status.is_none_or(|s| s == conversation.status) {
            conversations.push(conversation.into());
        }
    }
    Ok(window(conversations, offset, limit))
}

async fn get_conversation(ctx: &mut CallContext<'_>, id: &str) -> Result<Conversation, ApiError> {
    let response = ctx.call("conversations.get", conversation_call(id)).await?;
    let mapper = Mapper::new(ctx);
    let wire = read_typed(&response, "conversation")?.required(
        response.status,
        "conversation",
        "an object",
    )?;
    conversation_from_wire(&mapper, wire, raw_at(&mapper, &response, "conversation"))
}

async fn create_conversation(
    ctx: &mut CallContext<'_>,
    body: &ConversationCreate,
    contact_id: Option<&ObjectId>,
) -> Result<Output, ApiError> {
    // Everything that can be checked without the vendor is checked first.
    check_vendor_fields(
        VENDOR,
        &body.vendor_fields,
        &["channel_id"],
        "conversations",
    )?;
    check_conversation_create(body)?;
    let what = "the channel the conversation is started in";
    let channel_id = required_text(ctx, &body.vendor_fields, "channel_id", what)?;
    let text = non_empty(body.text.as_deref()).map(str::to_owned);
    if text.is_some() {
        ctx.require_routes(["messages.send"], "send the conversation's first text")?;
    }
    let identity =
        match (contact_id, &body.contact) {
            (Some(id), _) => {
                let key = contact_key(id)?.to_owned();
                ctx.require_routes(
                    ["contacts.get"],
                    "start a conversation with an existing contact_id",
                )?;
                identity_from_vendor(&parse_contact(&fetch_contact(ctx, &key).await?)?)?
            }
            (None, Some(contact)) => identity_from_body(contact)?,
            (None, None) => return Err(ApiError::invalid(
                "chatcaptain needs a contact: pass contact_id, or contact: {name, email, phone}",
            )),
        };
    let request = conversation_create_body(&identity, &channel_id);
    let response = ctx
        .call(
            "conversations.create",
            VendorCall::new().body(VendorBody::json(&request)),
        )
        .await?;
    let answer = read_answer(&response)?;
    let conversation_id = created_id(
        &answer,
        response.status,
        &["conversationId", "id"],
        "conversation",
    )?;
    if let Some(text) = text {
        let send = message_send_request(&conversation_id, Some(&text), None);
        let response = ctx
            .call(
                "messages.send",
                VendorCall::new().body(VendorBody::json(&send)),
            )
            .await?;
        read_field(&response, "message")?;
    }
    let conversation = get_conversation(ctx, &conversation_id).await?;
    Ok(Output::Created(conversation.into()))
}

async fn update_conversation(
    ctx: &mut CallContext<'_>,
    id: &ObjectId,
    patch: &ConversationPatch,
) -> Result<Output, ApiError> {
    let key = conversation_key(id)?.to_owned();
    let changes = conversation_changes(patch)?;
    let body = enveloped(ctx, "conversations.update", changes);
    let response = ctx
        .call(
            "conversations.update",
            conversation_call(&key).body(VendorBody::json(&body)),
        )
        .await?;
    let answer = read_answer(&response)?;
    check_no_error(&answer, response.status)?;
    let conversation = match answer.get("conversation") {
        Some(value @ Value::Object(_)) => translate_conversation(&Mapper::new(ctx), value)?,
        _ => get_conversation(ctx, &key).await?,
    };
    Ok(Output::Found(conversation.into()))
}

async fn list_messages(
    ctx: &mut CallContext<'_>,
    conversation_id: &ObjectId,
    page: &Page,
) -> Result<Output, ApiError> {
    let key = conversation_key(conversation_id)?.to_owned();
    let offset = offset(page)?;
    let response = ctx.call("messages.list", conversation_call(&key)).await?;
    messages_window(&Mapper::new(ctx), &response, &key, offset, page.limit)
}

/// The answer of `messages.list` for the conversation `key` (the whole list) as the window of
/// `limit` normalized messages from `offset`.
fn messages_window(
    mapper: &Mapper,
    response: &VendorResponse,
    key: &str,
    offset: usize,
    limit: u32,
) -> Result<Output, ApiError> {
    let answer: Answer<'_, Vec<WireMessage<'_>>> = read_typed(response, "messages")?;
    let items = answer.required(response.status, "messages", "a list")?;
    let mut raws = raw_list(mapper, response, "messages");
    let messages = items
        .into_iter()
        .enumerate()
        .map(|(i, wire)| {
            message_from_wire(mapper, wire, key, typed::take_raw(&mut raws, i)).map(Resource::from)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(window(messages, offset, limit))
}

async fn send_message(
    ctx: &mut CallContext<'_>,
    conversation_id: &ObjectId,
    body: &MessageSend,
) -> Result<Output, ApiError> {
    let key = conversation_key(conversation_id)?.to_owned();
    let request = message_send_body(&key, body)?;
    let response = ctx
        .call(
            "messages.send",
            VendorCall::new().body(VendorBody::json(&request)),
        )
        .await?;
    let value = read_field(&response, "message")?;
    let message = translate_message(&Mapper::new(ctx), &value, &key)?;
    Ok(Output::Created(message.into()))
}

/// The body of an update call, in the envelope the connection's routes file sets for it
/// (`body_envelope: none | <key>`; ChatCaptain does not publish one, so it is data, not code).
fn enveloped(ctx: &CallContext<'_>, endpoint: &str, fields: Value) -> Value {
    match ctx
        .connection
        .routes
        .endpoint(endpoint)
        .and_then(|e| e.body_envelope.as_ref())
    {
        Some(envelope) => envelope.wrap(fields),
        None => fields,
    }
}

// ----- IDs and cursors -----------------------------------------------------------------------

/// The string keys of a contact, conversation or message ID ([`ChatCaptain::key_grammar`]);
/// anything else is not one of ours (404, and no vendor call).
fn contact_key(id: &ObjectId) -> Result<&str, ApiError> {
    let [key] = keys(&ChatCaptain, id)?;
    Ok(key)
}

fn conversation_key(id: &ObjectId) -> Result<&str, ApiError> {
    contact_key(id)
}

/// A message is addressed by its conversation id and its own id.
fn message_keys(id: &ObjectId) -> Result<(&str, &str), ApiError> {
    let [conversation, message] = keys(&ChatCaptain, id)?;
    Ok((conversation, message))
}

/// The contacts list's `pageToken`: None without a cursor, else the cursor's `{"before": …}`.
fn contacts_before(page: &Page) -> Result<Option<String>, ApiError> {
    cursor_text(page, "before", "chatcaptain contacts")
}

/// The search page a request asks for: 1 without a cursor, else the cursor's `{"page": n}`.
fn search_page(page: &Page) -> Result<u64, ApiError> {
    cursor_number(page, "page", 1, "chatcaptain search")
}

/// Where a whole-list window starts: 0 without a cursor, else the cursor's `{"offset": n}`.
fn offset(page: &Page) -> Result<usize, ApiError> {
    let offset = cursor_number(page, "offset", 0, "chatcaptain offset")?;
    usize::try_from(offset)
        .map_err(|_| ApiError::invalid("cursor is not a chatcaptain offset cursor"))
}

/// `limit` items from `offset` of a list ChatCaptain answers whole, and the offset of the
/// next window while items remain.
fn window(items: Vec<Resource>, offset: usize, limit: u32) -> Output {
    let total = items.len();
    let limit = limit as usize;
    let data: Vec<Resource> = items.into_iter().skip(offset).take(limit).collect();
    let end = offset.saturating_add(data.len());
    let next = (!data.is_empty() && end < total).then(|| json!({ "offset": end }));
    Output::List { data, next }
}

fn search_query(q: &str) -> Result<&str, ApiError> {
    let q = q.trim();
    if q.is_empty() {
        return Err(ApiError::invalid("q must not be blank"));
    }
    Ok(q)
}

// ----- the wire format -----------------------------------------------------------------------
//
// Wire structs are read straight from the vendor's bytes (`common::typed`): strings borrow
// from the body, fields the translation does not read are skipped unbuilt, and `raw` is
// built as a tree only when the caller asked for it.

/// A ChatCaptain contact. Documented fields (create body) plus the identities of the contact
/// DTO; timestamps are `created`/`updated`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireContact<'a> {
    #[serde(borrow, deserialize_with = "typed::text")]
    id: Text<'a>,
    #[serde(default, borrow, deserialize_with = "opt_text")]
    name: Option<Text<'a>>,
    #[serde(default, borrow, deserialize_with = "opt_text")]
    email: Option<Text<'a>>,
    #[serde(default, borrow, deserialize_with = "opt_text")]
    phone_number: Option<Text<'a>>,
    #[serde(default, borrow, deserialize_with = "opt_text")]
    whatsapp_id: Option<Text<'a>>,
    #[serde(default, borrow, deserialize_with = "opt_text")]
    web_id: Option<Text<'a>>,
    #[serde(default, borrow, deserialize_with = "opt_text")]
    instagram_id: Option<Text<'a>>,
    #[serde(default, borrow, deserialize_with = "opt_text")]
    facebook_id: Option<Text<'a>>,
    #[serde(default, borrow, deserialize_with = "opt_text")]
    telegram_id: Option<Text<'a>>,
    #[serde(default, borrow, deserialize_with = "opt_text")]
    avatar: Option<Text<'a>>,
    #[serde(default, deserialize_with = "typed::object_or_empty")]
    variables: Map<String, Value>,
    #[serde(default, borrow, alias = "createdAt")]
    created: Option<WireTime<'a>>,
    #[serde(default, borrow, alias = "updatedAt")]
    updated: Option<WireTime<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireConversation<'a> {
    #[serde(borrow, deserialize_with = "typed::text")]
    id: Text<'a>,
    #[serde(default, borrow, deserialize_with = "opt_text")]
    contact_id: Option<Text<'a>>,
    #[serde(default, borrow, deserialize_with = "opt_text")]
    channel_type: Option<Text<'a>>,
    #[serde(default)]
    archived: Option<bool>,
    #[serde(default, borrow, alias = "createdAt")]
    created: Option<WireTime<'a>>,
    #[serde(default, borrow, alias = "updatedAt")]
    updated: Option<WireTime<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireMessage<'a> {
    #[serde(borrow, deserialize_with = "typed::text")]
    id: Text<'a>,
    #[serde(default, borrow, deserialize_with = "opt_text")]
    conversation_id: Option<Text<'a>>,
    #[serde(default, borrow, deserialize_with = "opt_text")]
    sender: Option<Text<'a>>,
    #[serde(rename = "type", default, borrow, deserialize_with = "opt_text")]
    kind: Option<Text<'a>>,
    #[serde(default, borrow, deserialize_with = "opt_text")]
    status: Option<Text<'a>>,
    #[serde(default, borrow)]
    content: Option<WireContent<'a>>,
    /// Older or flattened answers carry the text at the top level.
    #[serde(default, borrow, deserialize_with = "opt_text")]
    text: Option<Text<'a>>,
    #[serde(default)]
    outgoing: Option<bool>,
    #[serde(default, borrow, alias = "createdAt")]
    created: Option<WireTime<'a>>,
    #[serde(default, borrow, alias = "updatedAt")]
    updated: Option<WireTime<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireContent<'a> {
    #[serde(default, borrow, deserialize_with = "opt_text")]
    text: Option<Text<'a>>,
    #[serde(default, borrow)]
    file: Option<WireFile<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireFile<'a> {
    #[serde(default, borrow, deserialize_with = "opt_text")]
    url: Option<Text<'a>>,
    #[serde(default, borrow, deserialize_with = "opt_text")]
    name: Option<Text<'a>>,
    #[serde(default, borrow, deserialize_with = "opt_text")]
    mime_type: Option<Text<'a>>,
    #[serde(default)]
    size: Option<u64>,
}

/// A timestamp as ChatCaptain sends it: an ISO string (borrowed), an epoch number, or
/// anything else as a tree (a Firestore `{_seconds, _nanoseconds}` object); [`timestamp`]
/// reads all three.
#[derive(Debug, Clone)]
enum WireTime<'a> {
    Text(Text<'a>),
    Tree(Value),
}

impl<'de: 'a, 'a> Deserialize<'de> for WireTime<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = WireTime<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a timestamp")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(WireTime::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(WireTime::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(WireTime::Text(Cow::Owned(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(WireTime::Tree(Value::from(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(WireTime::Tree(Value::from(v)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(WireTime::Tree(Value::from(v)))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(WireTime::Tree(Value::Bool(v)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(WireTime::Tree(Value::Null))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                Value::deserialize(de::value::MapAccessDeserializer::new(map)).map(WireTime::Tree)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                Value::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(WireTime::Tree)
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// The search answer's `results` (a Typesense-style search result).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireSearchResult {
    #[serde(default)]
    hits: Option<Vec<Value>>,
    found: Option<u64>,
}

/// A ChatCaptain answer, read once from the bytes: its one named key (`contacts`,
/// `conversation`, …) as `T`, its `error`, and `nextPageToken`; any other key is skipped
/// unbuilt. `value` is `None` when the key is absent, `Some(None)` when it is `null`.
struct Answer<'a, T> {
    value: Option<Option<T>>,
    error: Option<String>,
    next_page_token: Option<Text<'a>>,
}

/// Reads an [`Answer`] whose named key is `key`.
struct AnswerSeed<T> {
    key: &'static str,
    item: PhantomData<T>,
}

/// A key of the answer object, borrowed.
#[derive(Deserialize)]
struct Key<'a>(#[serde(borrow, deserialize_with = "typed::text")] Text<'a>);

impl<'de, T: Deserialize<'de>> DeserializeSeed<'de> for AnswerSeed<T> {
    type Value = Answer<'de, T>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for AnswerSeed<T> {
    type Value = Answer<'de, T>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "an object with `{}`", self.key)
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut answer = Answer {
            value: None,
            error: None,
            next_page_token: None,
        };
        while let Some(Key(key)) = map.next_key()? {
            if key == self.key {
                answer.value = Some(map.next_value::<Option<T>>()?);
            } else if key == "error" {
                // Only a string is an error text (a framework's `{error: {…}}` is not ours).
                answer.error = map.next_value::<Value>()?.as_str().map(str::to_owned);
            } else if key == "nextPageToken" {
                answer.next_page_token = match map.next_value::<WireTime<'de>>()? {
                    WireTime::Text(token) => Some(token),
                    WireTime::Tree(_) => None,
                };
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(answer)
    }
}

impl<T> Answer<'_, T> {
    /// The named value, judged like [`pick`]: a non-empty `error` is a not-found or a broken
    /// contract; an absent key is a broken contract; `null` is `None`.
    fn value(self, status: u16, key: &str) -> Result<Option<T>, ApiError> {
        let error = self.error.as_deref().map(str::trim).unwrap_or_default();
        if !error.is_empty() {
            let missing = !matches!(self.value, Some(Some(_)));
            return Err(success_error(error, missing, status));
        }
        self.value
            .ok_or_else(|| bad_response(VENDOR, format!("answer has no `{key}`")))
    }

    /// The named value, which must not be `null` (`what` it must be, for the error).
    fn required(self, status: u16, key: &str, what: &str) -> Result<T, ApiError> {
        self.value(status, key)?
            .ok_or_else(|| bad_response(VENDOR, format!("`{key}` is not {what}")))
    }
}

/// Read `response` as an [`Answer`] named `key`: non-2xx → the error table; the body must be a
/// JSON object whose `key` (when present) reads as `T`.
fn read_typed<'a, T: Deserialize<'a>>(
    response: &'a VendorResponse,
    key: &'static str,
) -> Result<Answer<'a, T>, ApiError> {
    check_answer_status(response)?;
    let seed = AnswerSeed {
        key,
        item: PhantomData,
    };
    wire::seed_from_body(&response.body, seed)
        .map_err(|e| bad_response(VENDOR, format!("`{key}` answer: {e}")))
}

/// `raw` of the object under `key` of an answer (or of item `index` of that list), built
/// only when it is wanted.
fn raw_at(mapper: &Mapper, response: &VendorResponse, key: &str) -> Option<Value> {
    mapper.raw_with(|| {
        serde_json::from_slice::<Value>(&response.body)
            .ok()
            .and_then(|mut v| v.get_mut(key).map(Value::take))
            .unwrap_or(Value::Null)
    })
}

/// The items under `key` of a list answer, as trees for `raw`; empty unless `raw` is wanted.
fn raw_list(mapper: &Mapper, response: &VendorResponse, key: &str) -> Vec<Value> {
    if mapper.want_raw {
        typed::raw_items(&response.body, |mut v| v.get_mut(key).map(Value::take))
    } else {
        Vec::new()
    }
}

/// The vendor's error text from a non-2xx body: ChatCaptain's `{error}`, or a framework
/// default (`{message, error, statusCode}`), whose `error` is the status phrase ("Not Found")
/// and whose `message` (a string or a list of them) says more.
fn error_message(body: &[u8]) -> Option<String> {
    error_text(body, &["message", "error"])
}

/// A non-2xx → the error table; a 2xx must be a JSON object (not yet judged for `error`).
fn read_answer(response: &VendorResponse) -> Result<Map<String, Value>, ApiError> {
    check_answer_status(response)?;
    parse_json(VENDOR, &response.body)
}

/// The first check on every answer: a 2xx passes; anything else is its row of the error table.
fn check_answer_status(response: &VendorResponse) -> Result<(), ApiError> {
    // ChatCaptain's 403 "Insufficient permissions." is its answer to a wrong or missing key
    // (or a key of another chatbot), on every call: bad credentials, not a refused object.
    if response.status == 403 {
        return Err(credentials_rejected(VENDOR, response));
    }
    check_status(VENDOR, response, error_message)
}

/// The non-empty `error` of a 2xx answer.
fn answer_error(answer: &Map<String, Value>) -> Option<&str> {
    answer
        .get("error")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|e| !e.is_empty())
}

fn has_error(answer: &Map<String, Value>) -> bool {
    answer_error(answer).is_some()
}

/// A 2xx that reports an error: a not-found when it clearly is one and `key` is missing,
/// else a broken contract.
fn error_in_success(answer: &Map<String, Value>, status: u16, key: Option<&str>) -> ApiError {
    let error = answer_error(answer).unwrap_or_default();
    let missing = key.is_none_or(|k| answer.get(k).is_none_or(Value::is_null));
    success_error(error, missing, status)
}

/// A 2xx whose `error` says `error`: a not-found when it clearly is one and the expected object
/// is `missing`, else a broken contract.
fn success_error(error: &str, missing: bool, status: u16) -> ApiError {
    if missing && error.to_ascii_lowercase().contains("not found") {
        return ApiError::vendor(
            ErrorCode::NotFound,
            VENDOR,
            format!("{VENDOR} has no such object"),
        )
        .with_vendor_status(status);
    }
    bad_response(
        VENDOR,
        format!(
            "status {status} with error {:?}",
            error.chars().take(200).collect::<String>()
        ),
    )
}

fn check_no_error(answer: &Map<String, Value>, status: u16) -> Result<(), ApiError> {
    match answer_error(answer) {
        Some(_) => Err(error_in_success(answer, status, None)),
        None => Ok(()),
    }
}

/// The expected key of an answer; `null` allowed.
fn pick(answer: &Map<String, Value>, status: u16, key: &str) -> Result<Value, ApiError> {
    if has_error(answer) {
        return Err(error_in_success(answer, status, Some(key)));
    }
    answer
        .get(key)
        .cloned()
        .ok_or_else(|| bad_response(VENDOR, format!("answer has no `{key}`")))
}

/// One named object (`contact`, `conversation`, `message`) of a 2xx answer.
fn read_field(response: &VendorResponse, key: &str) -> Result<Value, ApiError> {
    let answer = read_answer(response)?;
    match pick(&answer, response.status, key)? {
        value @ Value::Object(_) => Ok(value),
        _ => Err(bad_response(VENDOR, format!("`{key}` is not an object"))),
    }
}

/// A key the vendor documents as nullable (`results`).
fn read_nullable(response: &VendorResponse, key: &str) -> Result<Value, ApiError> {
    let answer = read_answer(response)?;
    pick(&answer, response.status, key)
}

/// `{deleted: true}`.
fn read_deleted(response: &VendorResponse) -> Result<(), ApiError> {
    let answer = read_answer(response)?;
    match pick(&answer, response.status, "deleted")? {
        Value::Bool(true) => Ok(()),
        other => Err(bad_response(
            VENDOR,
            format!("delete answered deleted: {other}"),
        )),
    }
}

/// The id a create answered (`{conversationId}`, `{contactId}`, or a bare `{id}`).
fn created_id(
    answer: &Map<String, Value>,
    status: u16,
    keys: &[&str],
    what: &str,
) -> Result<String, ApiError> {
    check_no_error(answer, status)?;
    keys.iter()
        .find_map(|k| answer.get(*k).and_then(Value::as_str))
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| bad_response(VENDOR, format!("created {what} has no id")))
}

fn parse_contact(value: &Value) -> Result<WireContact<'_>, ApiError> {
    let wire: WireContact<'_> = parse_wire(VENDOR, "contact", value)?;
    if wire.id.trim().is_empty() {
        return Err(bad_response(VENDOR, "contact has an empty id"));
    }
    Ok(wire)
}

// ----- vendor → normalized -------------------------------------------------------------------

/// A ChatCaptain timestamp as RFC 3339: ISO strings pass through; epoch numbers (seconds or
/// milliseconds) and Firestore-style `{_seconds, _nanoseconds}` objects are formatted.
fn timestamp(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => owned_non_empty(Some(s)),
        Value::Number(n) => {
            let n = n.as_i64()?;
            // Anything past 10^11 is milliseconds (seconds would be the year 5138).
            let millis = if n.abs() >= 100_000_000_000 {
                n
            } else {
                n.checked_mul(1000)?
            };
            Some(iso_from_millis(millis))
        }
        Value::Object(o) => {
            let seconds = o
                .get("_seconds")
                .or_else(|| o.get("seconds"))
                .and_then(Value::as_i64)?;
            let nanos = o
                .get("_nanoseconds")
                .or_else(|| o.get("nanoseconds"))
                .and_then(Value::as_i64)
                .unwrap_or(0);
            Some(iso_from_millis(
                seconds.checked_mul(1000)?.checked_add(nanos / 1_000_000)?,
            ))
        }
        _ => None,
    }
}

/// `1736154000000` → `"2025-01-06T09:00:00.000Z"` (JavaScript's `toISOString`).
fn iso_from_millis(millis: i64) -> String {
    let secs = millis.div_euclid(1000);
    let ms = millis.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// A timestamp as read from the bytes ([`WireTime`]), like [`timestamp`].
fn wire_time(value: Option<&WireTime<'_>>) -> Option<String> {
    match value? {
        WireTime::Text(s) => owned_non_empty(Some(s)),
        WireTime::Tree(v) => timestamp(Some(v)),
    }
}

/// A contacts list answer `{contacts: [...], nextPageToken?}` as a page of normalized
/// contacts; the next cursor is the vendor's token, or the `created` of the last contact of a
/// full page.
fn translate_contact_page(
    mapper: &Mapper,
    response: &VendorResponse,
    limit: u32,
) -> Result<Output, ApiError> {
    let answer: Answer<'_, Vec<WireContact<'_>>> = read_typed(response, "contacts")?;
    let token = answer
        .next_page_token
        .as_deref()
        .and_then(|t| owned_non_empty(Some(t)));
    let items = answer.required(response.status, "contacts", "a list")?;
    let last_created = items.last().map(|last| wire_time(last.created.as_ref()));
    let mut raws = raw_list(mapper, response, "contacts");
    let data = items
        .into_iter()
        .enumerate()
        .map(|(i, wire)| {
            contact_from_wire(mapper, wire, typed::take_raw(&mut raws, i)).map(Resource::from)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let next = match token {
        Some(token) => Some(token),
        None if !data.is_empty() && data.len() >= limit as usize => {
            Some(last_created.flatten().ok_or_else(|| {
                bad_response(
                    VENDOR,
                    "a contact of a full page has no created date to page on",
                )
            })?)
        }
        None => None,
    };
    Ok(Output::List {
        data,
        next: next.map(|before| json!({ "before": before })),
    })
}

/// A search answer's `results`: `{found, page, hits: [{document: contact}]}` (`null` = none).
/// The next page exists while `found` says so, or after a full page when it does not.
fn translate_search(
    mapper: &Mapper,
    results: &Value,
    page: u64,
    limit: u32,
) -> Result<Output, ApiError> {
    if results.is_null() {
        return Ok(Output::List {
            data: Vec::new(),
            next: None,
        });
    }
    let wire: WireSearchResult = parse_wire(VENDOR, "search results", results)?;
    let hits = wire.hits.unwrap_or_default();
    let data = hits
        .iter()
        .map(|hit| {
            let document = hit.get("document").unwrap_or(hit);
            translate_contact(mapper, document).map(Resource::from)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let more = match wire.found {
        Some(found) => page.saturating_mul(u64::from(limit)) < found,
        None => data.len() >= limit as usize,
    };
    let next = (more && !data.is_empty()).then(|| json!({ "page": page + 1 }));
    Ok(Output::List { data, next })
}

/// A ChatCaptain contact as a normalized contact.
pub(super) fn translate_contact(mapper: &Mapper, value: &Value) -> Result<Contact, ApiError> {
    let wire = parse_contact(value)?;
    contact_from_wire(mapper, wire, mapper.raw(value))
}

/// A ChatCaptain contact as a normalized contact; `raw` is the vendor object when asked for.
fn contact_from_wire(
    mapper: &Mapper,
    wire: WireContact<'_>,
    raw: Option<Value>,
) -> Result<Contact, ApiError> {
    if wire.id.trim().is_empty() {
        return Err(bad_response(VENDOR, "contact has an empty id"));
    }
    let name = owned_non_empty(wire.name.as_deref());
    let (first_name, last_name) = match &name {
        Some(name) => {
            let (first, last) = split_name(name);
            (Some(first), Some(last).filter(|l| !l.is_empty()))
        }
        None => (None, None),
    };
    let mut phones = Vec::new();
    if let Some(number) = non_empty(wire.phone_number.as_deref()) {
        phones.push(phone::normalize(number, None));
    }
    let whatsapp = non_empty(wire.whatsapp_id.as_deref());
    if let Some(phone) = whatsapp.and_then(phone::whatsapp_e164) {
        if !phones.contains(&phone) {
            phones.push(phone);
        }
    }
    let mut handles = Vec::new();
    let mut handle = |channel, value: Option<&str>| {
        if let Some(value) = non_empty(value) {
            handles.push(Handle {
                channel,
                value: value.to_owned(),
            });
        }
    };
    handle(HandleChannel::Whatsapp, whatsapp);
    handle(HandleChannel::Web, wire.web_id.as_deref());
    handle(HandleChannel::Other, wire.instagram_id.as_deref());
    handle(HandleChannel::Other, wire.facebook_id.as_deref());
    handle(HandleChannel::Other, wire.telegram_id.as_deref());
    let custom_fields = wire.variables;
    let remote_id = wire.id.into_owned();
    Ok(Contact {
        id: mapper.id_of(Kind::Contact, &[&remote_id]),
        connection: mapper.connection.clone(),
        vendor: vendor_label(VENDOR),
        remote_id,
        created_at: wire_time(wire.created.as_ref()),
        updated_at: wire_time(wire.updated.as_ref()),
        name,
        first_name,
        last_name,
        emails: owned_non_empty(wire.email.as_deref()).into_iter().collect(),
        phones,
        handles,
        company: None,
        avatar_url: owned_non_empty(wire.avatar.as_deref()),
        custom_fields,
        raw,
    })
}

/// A ChatCaptain conversation (as a tree) as a normalized conversation.
fn translate_conversation(mapper: &Mapper, value: &Value) -> Result<Conversation, ApiError> {
    let wire: WireConversation<'_> = parse_wire(VENDOR, "conversation", value)?;
    conversation_from_wire(mapper, wire, mapper.raw(value))
}

/// A ChatCaptain conversation as a normalized conversation.
fn conversation_from_wire(
    mapper: &Mapper,
    wire: WireConversation<'_>,
    raw: Option<Value>,
) -> Result<Conversation, ApiError> {
    if wire.id.trim().is_empty() {
        return Err(bad_response(VENDOR, "conversation has an empty id"));
    }
    let archived = wire.archived.unwrap_or(false);
    let remote_id = wire.id.into_owned();
    Ok(Conversation {
        id: mapper.id_of(Kind::Conversation, &[&remote_id]),
        connection: mapper.connection.clone(),
        vendor: vendor_label(VENDOR),
        remote_id,
        created_at: wire_time(wire.created.as_ref()),
        updated_at: wire_time(wire.updated.as_ref()),
        contact_id: non_empty(wire.contact_id.as_deref())
            .map(|id| mapper.id_of(Kind::Contact, &[id])),
        channel: channel_from_type(wire.channel_type.as_deref()),
        status: status_from_archived(archived),
        vendor_status: Some(if archived { ARCHIVED } else { ACTIVE }.to_owned()),
        subject: None,
        assignee: None,
        priority: None,
        tags: Vec::new(),
        last_message_at: None,
        raw,
    })
}

fn status_from_archived(archived: bool) -> ConversationStatus {
    if archived {
        ConversationStatus::Closed
    } else {
        ConversationStatus::Open
    }
}

fn channel_from_type(channel_type: Option<&str>) -> Option<Channel> {
    let channel_type = non_empty(channel_type)?.to_ascii_lowercase();
    Some(match channel_type.as_str() {
        "whatsapp" | "whatsapp_business" | "whatsapp-business" => Channel::Whatsapp,
        "web" | "widget" | "webchat" | "web_widget" | "livechat" => Channel::Web,
        "email" | "mail" => Channel::Email,
        "voice" | "phone" | "telephony" => Channel::Voice,
        "line" => Channel::Line,
        _ => Channel::Other,
    })
}

/// A ChatCaptain message as a normalized message. `conversation` is the conversation the
/// caller addressed, used when the message itself does not name it.
fn translate_message(
    mapper: &Mapper,
    value: &Value,
    conversation: &str,
) -> Result<Message, ApiError> {
    let wire: WireMessage<'_> = parse_wire(VENDOR, "message", value)?;
    message_from_wire(mapper, wire, conversation, mapper.raw(value))
}

/// A ChatCaptain message as a normalized message (see [`translate_message`]).
fn message_from_wire(
    mapper: &Mapper,
    wire: WireMessage<'_>,
    conversation: &str,
    raw: Option<Value>,
) -> Result<Message, ApiError> {
    if wire.id.trim().is_empty() {
        return Err(bad_response(VENDOR, "message has an empty id"));
    }
    let conversation = non_empty(wire.conversation_id.as_deref()).unwrap_or(conversation);
    let sender = wire.sender.as_deref().map(str::to_ascii_lowercase);
    let (direction, sender_type) = match sender.as_deref() {
        Some("user") | Some("contact") => (Direction::Inbound, SenderType::Contact),
        Some("bot") => (Direction::Outbound, SenderType::Bot),
        Some("agent") => (Direction::Outbound, SenderType::Agent),
        // Unknown senders: the `outgoing` flag still tells the direction.
        _ if wire.outgoing == Some(false) => (Direction::Inbound, SenderType::Contact),
        _ => (Direction::Outbound, SenderType::System),
    };
    let content = wire.content.unwrap_or_default();
    let text =
        owned_non_empty(content.text.as_deref()).or_else(|| owned_non_empty(wire.text.as_deref()));
    let attachments: Vec<Attachment> = content
        .file
        .into_iter()
        .map(|f| Attachment {
            type_: attachment_type(f.mime_type.as_deref()),
            url: owned_non_empty(f.url.as_deref()),
            name: owned_non_empty(f.name.as_deref()),
            size: f.size,
        })
        .collect();
    let type_ = match wire.kind.as_deref().map(str::to_ascii_lowercase).as_deref() {
        Some("text") => MessageType::Text,
        Some("file") | Some("attachment") => {
            attachments.first().map_or(MessageType::File, |a| a.type_)
        }
        Some("template") => MessageType::Template,
        Some("image") => MessageType::Image,
        Some("audio") => MessageType::Audio,
        Some("video") => MessageType::Video,
        Some("location") => MessageType::Location,
        None if text.is_some() => MessageType::Text,
        _ => MessageType::Other,
    };
    let remote_id = wire.id.into_owned();
    Ok(Message {
        id: mapper.id_of(Kind::Message, &[conversation, &remote_id]),
        connection: mapper.connection.clone(),
        vendor: vendor_label(VENDOR),
        remote_id,
        created_at: wire_time(wire.created.as_ref()),
        updated_at: wire_time(wire.updated.as_ref()),
        conversation_id: mapper.id_of(Kind::Conversation, &[conversation]),
        direction,
        sender: Sender {
            type_: sender_type,
            id: None,
            name: None,
        },
        type_,
        text,
        html: None,
        attachments,
        private: false,
        status: message_status(wire.status.as_deref(), MESSAGE_STATUS_WORDS),
        raw,
    })
}

/// ChatCaptain's delivery words besides the normalized ones.
const MESSAGE_STATUS_WORDS: &[(&str, MessageStatus)] = &[
    ("queued", MessageStatus::Pending),
    ("sending", MessageStatus::Pending),
    ("seen", MessageStatus::Read),
    ("error", MessageStatus::Failed),
];

// ----- normalized → vendor -------------------------------------------------------------------

/// The one name ChatCaptain stores, from `name` or `first_name` + `last_name`; they must agree
/// when both are given.
fn combined_name(
    name: Option<&str>,
    first: Option<&str>,
    last: Option<&str>,
) -> Result<Option<String>, ApiError> {
    match (non_empty(name), join_name(first, last)) {
        (Some(name), Some(joined)) if name.split_whitespace().ne(joined.split_whitespace()) => {
            Err(ApiError::invalid(
                "chatcaptain stores one name: name must equal first_name + \" \" + last_name when \
                 both are given",
            ))
        }
        (Some(name), _) => Ok(Some(name.to_owned())),
        (None, joined) => Ok(joined),
    }
}

/// At most one value of a list ChatCaptain stores as one field.
fn single<'v>(values: &'v [String], what: &str) -> Result<Option<&'v str>, ApiError> {
    let values: Vec<&str> = values.iter().filter_map(|v| non_empty(Some(v))).collect();
    match values.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one)),
        _ => Err(ApiError::invalid(format!(
            "chatcaptain stores one {what} per contact"
        ))),
    }
}

/// The `whatsappId` of a WhatsApp handle: the international number's digits, no `+`.
fn whatsapp_id(value: &str) -> Result<String, ApiError> {
    phone::whatsapp_e164(value)
        .map(|phone| phone.trim_start_matches('+').to_owned())
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "a whatsapp handle is the international number's digits (e.g. 4917612345678), \
                 not {value:?}"
            ))
        })
}

/// The channel identities of a handles list that ChatCaptain can store directly.
#[derive(Debug, Default, PartialEq, Eq)]
struct HandleIds {
    whatsapp_id: Option<String>,
    web_id: Option<String>,
    /// `other` handles: echoes of the contact's instagram/facebook/telegram ids.
    others: Vec<String>,
}

fn handle_ids(handles: &[Handle]) -> Result<HandleIds, ApiError> {
    let mut ids = HandleIds::default();
    for handle in handles {
        let value = non_empty(Some(&handle.value))
            .ok_or_else(|| ApiError::invalid("a handle needs a value"))?;
        let slot = match handle.channel {
            HandleChannel::Whatsapp => {
                let id = whatsapp_id(value)?;
                (&mut ids.whatsapp_id, id, "whatsapp")
            }
            HandleChannel::Web => (&mut ids.web_id, value.to_owned(), "web"),
            HandleChannel::Other => {
                ids.others.push(value.to_owned());
                continue;
            }
            HandleChannel::Line | HandleChannel::Email | HandleChannel::Phone => {
                return Err(ApiError::invalid(
                    "chatcaptain contacts have whatsapp and web handles (and other: their \
                     instagram, facebook and telegram ids); put emails and phones in emails and \
                     phones",
                ))
            }
        };
        let (field, id, channel) = slot;
        if field.as_ref().is_some_and(|existing| *existing != id) {
            return Err(ApiError::invalid(format!(
                "chatcaptain stores one {channel} handle per contact"
            )));
        }
        *field = Some(id);
    }
    Ok(ids)
}

/// The flat JSON body of `POST …/contacts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
struct ContactCreateBody {
    language: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    phone_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    whatsapp_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    web_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    avatar: Option<String>,
}

fn contact_create_body(
    body: &ContactCreate,
    language: &str,
) -> Result<ContactCreateBody, ApiError> {
    if non_empty(body.company.as_deref()).is_some() {
        return Err(ApiError::invalid(
            "chatcaptain contacts have no company field",
        ));
    }
    if !body.custom_fields.is_empty() {
        return Err(ApiError::invalid(
            "chatcaptain takes contact variables only on update: create the contact, then PATCH \
             custom_fields",
        ));
    }
    let ids = handle_ids(&body.handles)?;
    if !ids.others.is_empty() {
        return Err(ApiError::invalid(
            "chatcaptain cannot set instagram, facebook or telegram ids (other handles) through \
             the API",
        ));
    }
    let email = single(&body.emails, "email")?.map(str::to_owned);
    let phone = single(&body.phones, "phone number")?.map(|p| phone::normalize(p, None));
    let name = combined_name(
        body.name.as_deref(),
        body.first_name.as_deref(),
        body.last_name.as_deref(),
    )?;
    if name.is_none()
        && email.is_none()
        && phone.is_none()
        && ids.whatsapp_id.is_none()
        && ids.web_id.is_none()
    {
        return Err(ApiError::invalid(
            "a contact needs a name, an email, a phone or a handle",
        ));
    }
    Ok(ContactCreateBody {
        language: language.to_owned(),
        name,
        email,
        phone_number: phone,
        whatsapp_id: ids.whatsapp_id,
        web_id: ids.web_id,
        avatar: owned_non_empty(body.avatar_url.as_deref()),
    })
}

/// What a contact PATCH asks that ChatCaptain cannot store, refused before any vendor call.
fn check_contact_patch(patch: &ContactPatch) -> Result<(), ApiError> {
    check_vendor_fields(VENDOR, &patch.vendor_fields, &["language"], "contacts")?;
    if non_empty(patch.company.as_deref()).is_some() {
        return Err(ApiError::invalid(
            "chatcaptain contacts have no company field",
        ));
    }
    if let Some(emails) = &patch.emails {
        single(emails, "email")?;
    }
    if let Some(handles) = &patch.handles {
        handle_ids(handles)?;
    }
    if patch.name.is_some() {
        combined_name(
            patch.name.as_deref(),
            patch.first_name.as_deref(),
            patch.last_name.as_deref(),
        )?;
    }
    let nothing = patch.name.is_none()
        && patch.first_name.is_none()
        && patch.last_name.is_none()
        && patch.emails.is_none()
        && patch.phones.is_none()
        && patch.handles.is_none()
        && patch.avatar_url.is_none()
        && patch.custom_fields.is_none()
        && patch.vendor_fields.is_empty();
    if nothing {
        return Err(ApiError::invalid(
            "nothing to update: pass name, emails, phones, handles, avatar_url, custom_fields or \
             vendor_fields.language",
        ));
    }
    Ok(())
}

/// Whether merging the PATCH needs the contact as ChatCaptain has it: a half name, `other`
/// handles to match against its instagram/facebook/telegram ids, or several phones of which
/// some may be its WhatsApp number.
fn contact_patch_needs_current(patch: &ContactPatch) -> bool {
    let half_name =
        patch.name.is_none() && (patch.first_name.is_some() || patch.last_name.is_some());
    let other_handles = patch
        .handles
        .as_ref()
        .is_some_and(|h| h.iter().any(|h| h.channel == HandleChannel::Other));
    let several_phones = patch.phones.as_ref().is_some_and(|p| p.len() > 1);
    half_name || other_handles || several_phones
}

/// A changed field: absent = unchanged, `null` = cleared.
type Change = Option<Option<String>>;

/// `contact` of the PATCH body: only what the caller changes.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
struct ContactChanges {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Change,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Change,
    #[serde(skip_serializing_if = "Option::is_none")]
    phone_number: Change,
    #[serde(skip_serializing_if = "Option::is_none")]
    whatsapp_id: Change,
    #[serde(skip_serializing_if = "Option::is_none")]
    web_id: Change,
    #[serde(skip_serializing_if = "Option::is_none")]
    instagram_id: Change,
    #[serde(skip_serializing_if = "Option::is_none")]
    facebook_id: Change,
    #[serde(skip_serializing_if = "Option::is_none")]
    telegram_id: Change,
    #[serde(skip_serializing_if = "Option::is_none")]
    avatar: Change,
    #[serde(skip_serializing_if = "Option::is_none")]
    variables: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    language: Option<String>,
}

/// The PATCH as ChatCaptain's partial update. `current` is the contact as stored, when
/// [`contact_patch_needs_current`] asked for it.
fn contact_changes(
    patch: &ContactPatch,
    current: Option<&WireContact>,
    language: Option<String>,
) -> Result<ContactChanges, ApiError> {
    check_contact_patch(patch)?;
    let mut changes = ContactChanges {
        language,
        variables: patch.custom_fields.clone(),
        ..Default::default()
    };

    // Name: one field. A half name is completed from the stored name.
    if patch.name.is_some() {
        let name = combined_name(
            patch.name.as_deref(),
            patch.first_name.as_deref(),
            patch.last_name.as_deref(),
        )?;
        changes.name = Some(name);
    } else if patch.first_name.is_some() || patch.last_name.is_some() {
        let (first, last) = current
            .and_then(|c| non_empty(c.name.as_deref()))
            .map(split_name)
            .unwrap_or_default();
        let first = patch.first_name.as_deref().unwrap_or(&first);
        let last = patch.last_name.as_deref().unwrap_or(&last);
        changes.name = Some(combined_name(None, Some(first), Some(last))?);
    }

    if let Some(emails) = &patch.emails {
        changes.email = Some(single(emails, "email")?.map(str::to_owned));
    }

    // Handles replace every channel identity the contact has.
    let mut new_whatsapp = None;
    if let Some(handles) = &patch.handles {
        let ids = handle_ids(handles)?;
        let keep = |stored: Option<&str>| -> Change {
            Some(
                non_empty(stored)
                    .filter(|s| ids.others.iter().any(|o| o == s))
                    .map(str::to_owned),
            )
        };
        let instagram = current.and_then(|c| c.instagram_id.as_deref());
        let facebook = current.and_then(|c| c.facebook_id.as_deref());
        let telegram = current.and_then(|c| c.telegram_id.as_deref());
        let unknown = ids
            .others
            .iter()
            .find(|o| ![instagram, facebook, telegram].contains(&Some(o.as_str())));
        if let Some(unknown) = unknown {
            return Err(ApiError::invalid(format!(
                "chatcaptain cannot add the other handle {unknown:?}: instagram, facebook and \
                 telegram ids come from those channels; only the contact's own may be sent back"
            )));
        }
        changes.instagram_id = keep(instagram);
        changes.facebook_id = keep(facebook);
        changes.telegram_id = keep(telegram);
        new_whatsapp = Some(ids.whatsapp_id.clone());
        changes.whatsapp_id = Some(ids.whatsapp_id);
        changes.web_id = Some(ids.web_id);
    }

    // Phones: one phoneNumber; the WhatsApp number reads back as a phone too, so echoing it is
    // not a second number.
    if let Some(phones) = &patch.phones {
        let whatsapp = match &new_whatsapp {
            Some(id) => id.clone(),
            None => current.and_then(|c| owned_non_empty(c.whatsapp_id.as_deref())),
        }
        .and_then(|id| phone::whatsapp_e164(&id));
        let mut numbers: Vec<String> = Vec::new();
        for phone in phones.iter().filter_map(|p| non_empty(Some(p))) {
            let phone = phone::normalize(phone, None);
            if !numbers.contains(&phone) {
                numbers.push(phone);
            }
        }
        if numbers.len() > 1 {
            numbers.retain(|p| Some(p) != whatsapp.as_ref());
        }
        changes.phone_number = Some(
            single(&numbers, "phone number (besides its whatsapp number)")?.map(str::to_owned),
        );
    }

    if let Some(avatar) = &patch.avatar_url {
        changes.avatar = Some(owned_non_empty(Some(avatar)));
    }
    Ok(changes)
}

/// The contact a new conversation is started with.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Identity {
    name: String,
    email: Option<String>,
    phone: Option<String>,
}

fn identity_from_body(contact: &NewContact) -> Result<Identity, ApiError> {
    let email = owned_non_empty(contact.email.as_deref());
    let phone = non_empty(contact.phone.as_deref()).map(|p| phone::normalize(p, None));
    let name = owned_non_empty(contact.name.as_deref())
        .or_else(|| email.clone())
        .or_else(|| phone.clone())
        .ok_or_else(|| ApiError::invalid("chatcaptain needs the contact's name, email or phone"))?;
    Ok(Identity { name, email, phone })
}

fn identity_from_vendor(contact: &WireContact) -> Result<Identity, ApiError> {
    let email = owned_non_empty(contact.email.as_deref());
    let phone = non_empty(contact.phone_number.as_deref())
        .map(|p| phone::normalize(p, None))
        .or_else(|| non_empty(contact.whatsapp_id.as_deref()).and_then(phone::whatsapp_e164));
    let name = owned_non_empty(contact.name.as_deref())
        .or_else(|| email.clone())
        .or_else(|| phone.clone())
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "chatcaptain contact {} has no name, email or phone to start a conversation with",
                contact.id
            ))
        })?;
    Ok(Identity { name, email, phone })
}

/// What a conversation create asks that ChatCaptain cannot do, refused before any vendor call.
fn check_conversation_create(body: &ConversationCreate) -> Result<(), ApiError> {
    if body.channel.is_some() {
        return Err(ApiError::invalid(
            "chatcaptain starts conversations in a channel named by id: pass \
             vendor_fields.channel_id instead of channel",
        ));
    }
    if non_empty(body.subject.as_deref()).is_some() {
        return Err(ApiError::invalid(
            "chatcaptain conversations have no subject",
        ));
    }
    Ok(())
}

/// The JSON body of `POST /v1/inbox/{chatbotId}/conversations`.
fn conversation_create_body(identity: &Identity, channel_id: &str) -> Value {
    let mut body = json!({ "name": identity.name, "channelId": channel_id });
    if let Some(object) = body.as_object_mut() {
        if let Some(email) = &identity.email {
            object.insert("email".into(), email.clone().into());
        }
        if let Some(phone) = &identity.phone {
            object.insert("phone".into(), phone.clone().into());
        }
    }
    body
}

/// `conversation` of the PATCH body. Only `status` has a ChatCaptain equivalent.
fn conversation_changes(patch: &ConversationPatch) -> Result<Value, ApiError> {
    if patch.is_empty() {
        return Err(ApiError::invalid("nothing to update: pass status"));
    }
    check_vendor_fields(VENDOR, &patch.vendor_fields, &[], "conversations")?;
    for (given, field) in [
        (patch.assignee.is_some(), "assignee"),
        (patch.priority.is_some(), "priority"),
        (patch.tags.is_some(), "tags"),
    ] {
        if given {
            return Err(ApiError::unsupported_operation(format!(
                "chatcaptain conversations cannot change {field} through the API; only status \
                 (open, resolved, closed) can be set"
            )));
        }
    }
    let archived = match patch.status {
        Some(ConversationStatus::Open) => false,
        Some(ConversationStatus::Resolved | ConversationStatus::Closed) => true,
        Some(ConversationStatus::Pending) => {
            return Err(ApiError::unsupported_operation(
                "chatcaptain conversations are active or archived; there is no pending",
            ))
        }
        None => return Err(ApiError::invalid("nothing to update: pass status")),
    };
    Ok(json!({ "archived": archived }))
}

/// The JSON body of `POST /v1/inbox/{chatbotId}/messages`.
fn message_send_request(
    conversation_id: &str,
    text: Option<&str>,
    attachment_ref: Option<&str>,
) -> Value {
    let mut body = json!({ "conversationId": conversation_id });
    if let Some(object) = body.as_object_mut() {
        if let Some(text) = text {
            object.insert("text".into(), text.into());
        }
        if let Some(reference) = attachment_ref {
            object.insert("attachmentRef".into(), reference.into());
        }
    }
    body
}

fn message_send_body(conversation_id: &str, body: &MessageSend) -> Result<Value, ApiError> {
    if body.private {
        return Err(ApiError::unsupported_operation(
            "chatcaptain has no private notes: an agent message is sent to the contact",
        ));
    }
    if body.template.is_some() {
        return Err(ApiError::unsupported_operation(
            "chatcaptain's agent inbox cannot send templates",
        ));
    }
    check_vendor_fields(VENDOR, &body.vendor_fields, &["attachment_ref"], "messages")?;
    let reference = text_field("attachment_ref", body.vendor_fields.get("attachment_ref"))?;
    if !body.attachments.is_empty() {
        return Err(attachment::refused(
            VENDOR,
            "ChatCaptain publishes no upload call; send a file already uploaded to ChatCaptain \
             by its reference in vendor_fields.attachment_ref",
        ));
    }
    let text = non_empty(body.text.as_deref());
    if text.is_none() && reference.is_none() {
        return Err(ApiError::invalid("a message needs text or an attachment"));
    }
    Ok(message_send_request(
        conversation_id,
        text,
        reference.as_deref(),
    ))
}

#[cfg(test)]
// Tests may panic on a broken fixture; that is their job.
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::api::model::{Assignee, Priority, Template};
    use crate::snapshot::Connection;
    use crate::vendors::test_support::{self, list_json, object_json, response, run, seen, Script};

    const CONTACT: &str = include_str!("../../tests/fixtures/chatcaptain/contact.json");
    const CONTACTS_LIST: &str = include_str!("../../tests/fixtures/chatcaptain/contacts_list.json");
    const CONTACTS_SEARCH: &str =
        include_str!("../../tests/fixtures/chatcaptain/contacts_search.json");
    const CONVERSATION: &str = include_str!("../../tests/fixtures/chatcaptain/conversation.json");
    const CONVERSATIONS_LIST: &str =
        include_str!("../../tests/fixtures/chatcaptain/conversations_list.json");
    const CONVERSATION_CREATED: &str =
        include_str!("../../tests/fixtures/chatcaptain/conversation_created.json");
    const MESSAGE: &str = include_str!("../../tests/fixtures/chatcaptain/message.json");
    const MESSAGES_LIST: &str = include_str!("../../tests/fixtures/chatcaptain/messages_list.json");
    const MESSAGE_SENT: &str = include_str!("../../tests/fixtures/chatcaptain/message_sent.json");
    const DELETED: &str = include_str!("../../tests/fixtures/chatcaptain/deleted.json");
    const ERROR_FORBIDDEN: &str =
        include_str!("../../tests/fixtures/chatcaptain/error_forbidden.json");
    const ERROR_INVALID: &str = include_str!("../../tests/fixtures/chatcaptain/error_invalid.json");

    const CONTACT_ID: &str = "Qe1RkU3xTT8dWnY0pZ7c";
    const CONV_ID: &str = "N1HSdvJSxAZmmcyVz5HW";
    const BOT: &str = "bot_abc123xyz";

    fn mapper(want_raw: bool) -> Mapper {
        Mapper {
            tenant: "acme".into(),
            connection: "captain".into(),
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
            "captain",
            keys.iter().map(|k| k.to_string()).collect(),
        )
    }

    fn field(fixture: &str, key: &str) -> Value {
        serde_json::from_str::<Value>(fixture).unwrap()[key].clone()
    }

    fn answer(fixture: &str) -> Map<String, Value> {
        serde_json::from_str(fixture).unwrap()
    }

    fn page(limit: u32, cursor: Option<Value>) -> Page {
        Page { limit, cursor }
    }

    /// The number of items of the named list of an answer, read from the bytes.
    fn typed_list(response: &VendorResponse, key: &'static str) -> Result<usize, ApiError> {
        let answer: Answer<'_, Vec<IgnoredAny>> = read_typed(response, key)?;
        Ok(answer.required(response.status, key, "a list")?.len())
    }

    /// The named object of an answer, read from the bytes into its wire struct.
    fn typed_object(response: &VendorResponse, key: &'static str) -> Result<(), ApiError> {
        let status = response.status;
        match key {
            "contact" => read_typed::<WireContact<'_>>(response, key)?
                .required(status, key, "an object")
                .map(drop),
            "conversation" => read_typed::<WireConversation<'_>>(response, key)?
                .required(status, key, "an object")
                .map(drop),
            _ => read_typed::<WireMessage<'_>>(response, key)?
                .required(status, key, "an object")
                .map(drop),
        }
    }

    // ----- envelope and errors ---------------------------------------------------------

    #[test]
    fn named_keys_are_read_from_the_answer() {
        let contact = read_field(&response(200, CONTACT), "contact").unwrap();
        assert_eq!(contact["id"], CONTACT_ID);
        assert_eq!(
            typed_list(&response(200, CONVERSATIONS_LIST), "conversations").unwrap(),
            5
        );
        read_deleted(&response(200, DELETED)).unwrap();
        assert_eq!(
            read_nullable(&response(200, r#"{"results": null}"#), "results").unwrap(),
            Value::Null
        );
        // An empty error string is no error.
        read_field(
            &response(200, r#"{"message": {"id": "m"}, "error": "  "}"#),
            "message",
        )
        .unwrap();
    }

    #[test]
    fn vendor_errors_map_by_status_with_the_vendor_text() {
        let err = read_answer(&response(400, ERROR_INVALID)).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest);
        assert!(err.detail.contains("Invalid input data."), "{}", err.detail);
        assert_eq!(err.vendor_status, Some(400));

        let err = read_answer(&response(403, ERROR_FORBIDDEN)).unwrap_err();
        assert_eq!(err.code, ErrorCode::VendorAuthFailed);
        assert_eq!(err.vendor, Some(Vendor::ChatCaptain));

        // A framework-shaped 400 names the problem in `message` (string or list).
        let err = read_answer(&response(
            400,
            r#"{"statusCode":400,"message":["language must be a string"],"error":"Bad Request"}"#,
        ))
        .unwrap_err();
        assert!(
            err.detail.contains("language must be a string"),
            "{}",
            err.detail
        );

        for (status, code) in [
            (401, ErrorCode::VendorAuthFailed),
            (404, ErrorCode::NotFound),
            (409, ErrorCode::InvalidRequest),
            (500, ErrorCode::VendorError),
            (503, ErrorCode::VendorError),
        ] {
            let err = read_answer(&response(status, ERROR_FORBIDDEN)).unwrap_err();
            assert_eq!(err.code, code, "status {status}");
        }
        let mut limited = response(429, "slow down");
        limited.retry_after = Some(30);
        let err = read_answer(&limited).unwrap_err();
        assert_eq!(err.code, ErrorCode::VendorRateLimited);
        assert_eq!(err.retry_after, Some(30));
    }

    #[test]
    fn a_2xx_that_breaks_the_contract_is_a_bad_response() {
        for (body, key) in [
            ("<html>oops</html>", "contact"),
            ("", "contact"),
            ("[]", "contacts"),
            (r#"{"contacts": {}}"#, "contacts"),
            (r#"{"conversation": "x"}"#, "conversation"),
            (r#"{"deleted": false}"#, "deleted"),
            (r#"{"something": 1}"#, "message"),
            // Data and an error at once: the answer cannot be trusted.
            (
                r#"{"contact": {"id": "a"}, "error": "partial failure"}"#,
                "contact",
            ),
            (r#"{"error": "Insufficient permissions."}"#, "contact"),
        ] {
            let response = response(200, body);
            let err = match key {
                "contacts" => typed_list(&response, "contacts").map(|_| ()).unwrap_err(),
                "deleted" => read_deleted(&response).unwrap_err(),
                _ => {
                    let typed = typed_object(&response, key).unwrap_err();
                    assert_eq!(typed.code, ErrorCode::VendorBadResponse, "{body} (typed)");
                    read_field(&response, key).map(|_| ()).unwrap_err()
                }
            };
            assert_eq!(err.code, ErrorCode::VendorBadResponse, "{body}");
        }
        let err = read_field(&response(200, r#"{"error": "boom"}"#), "contact").unwrap_err();
        assert!(err.detail.contains("boom"), "{}", err.detail);
    }

    #[test]
    fn a_2xx_not_found_error_is_a_not_found() {
        for body in [
            r#"{"conversation": null, "error": "Conversation not found."}"#,
            r#"{"error": "Not found"}"#,
        ] {
            let err = read_field(&response(200, body), "conversation").unwrap_err();
            assert_eq!(err.code, ErrorCode::NotFound, "{body}");
            assert_eq!(err.vendor_status, Some(200));
        }
    }

    // ----- contacts ----------------------------------------------------------------------

    #[test]
    fn contact_maps_every_field() {
        let value = field(CONTACT, "contact");
        let c = translate_contact(&mapper(false), &value).unwrap();
        assert_eq!(c.id, id(Kind::Contact, &[CONTACT_ID]));
        assert_eq!(c.remote_id, CONTACT_ID);
        assert_eq!(c.connection, "captain");
        assert_eq!(c.vendor, "chatcaptain");
        assert_eq!(c.name.as_deref(), Some("Max Mustermann"));
        assert_eq!(c.first_name.as_deref(), Some("Max"));
        assert_eq!(c.last_name.as_deref(), Some("Mustermann"));
        assert_eq!(c.emails, vec!["max.mustermann@example.com"]);
        // phoneNumber in E.164, then the WhatsApp number.
        assert_eq!(c.phones, vec!["+4917612345678", "+49123456789"]);
        let handle = |channel, value: &str| Handle {
            channel,
            value: value.into(),
        };
        assert_eq!(
            c.handles,
            vec![
                handle(HandleChannel::Whatsapp, "49123456789"),
                handle(HandleChannel::Web, "web_abc123xyz"),
                handle(HandleChannel::Other, "17841400123456789"),
                handle(HandleChannel::Other, "10158123456789012"),
                handle(HandleChannel::Other, "123456789"),
            ]
        );
        assert_eq!(c.company, None);
        assert_eq!(
            c.avatar_url.as_deref(),
            Some("https://example.com/avatar.png")
        );
        assert_eq!(
            Value::Object(c.custom_fields.clone()),
            json!({"customer_id": "12345", "vip": true})
        );
        assert_eq!(c.created_at.as_deref(), Some("2025-01-06T09:00:00.000Z"));
        assert_eq!(c.updated_at.as_deref(), Some("2025-02-01T12:30:00.000Z"));
        assert!(c.raw.is_none());
        let with_raw = translate_contact(&mapper(true), &value).unwrap();
        assert_eq!(with_raw.raw, Some(value));
    }

    #[test]
    fn contact_page_pages_on_the_last_created_date() {
        let (items, next) = list_json(
            translate_contact_page(&mapper(false), &response(200, CONTACTS_LIST), 2).unwrap(),
        );
        assert_eq!(items.len(), 2);
        assert_eq!(items[0]["name"], "Lena");
        assert_eq!(items[0]["last_name"], Value::Null);
        assert_eq!(items[0]["phones"], json!(["+4915112345603"]));
        assert_eq!(items[0]["emails"], json!([]));
        // A national number has no known country: kept as stored. Epoch millis are formatted.
        assert_eq!(items[1]["phones"], json!(["030 1234567"]));
        assert_eq!(items[1]["name"], Value::Null);
        assert_eq!(items[1]["created_at"], "2025-01-06T10:00:00.000Z");
        assert_eq!(next, Some(json!({"before": "2025-01-06T10:00:00.000Z"})));

        // Not a full page: the last one.
        let (_, next) = list_json(
            translate_contact_page(&mapper(false), &response(200, CONTACTS_LIST), 3).unwrap(),
        );
        assert_eq!(next, None);
        // ChatCaptain's own token wins.
        let mut with_token = answer(CONTACTS_LIST);
        with_token.insert("nextPageToken".into(), json!("2025-01-01T00:00:00.000Z"));
        let with_token = response(200, &serde_json::to_string(&with_token).unwrap());
        let (_, next) = list_json(translate_contact_page(&mapper(false), &with_token, 50).unwrap());
        assert_eq!(next, Some(json!({"before": "2025-01-01T00:00:00.000Z"})));
        // A full page without dates cannot be paged on.
        let undated = response(200, r#"{"contacts": [{"id": "a"}]}"#);
        let err = translate_contact_page(&mapper(false), &undated, 1).unwrap_err();
        assert_eq!(err.code, ErrorCode::VendorBadResponse);
    }

    #[test]
    fn search_results_page_by_number() {
        let results = field(CONTACTS_SEARCH, "results");
        let (items, next) = list_json(translate_search(&mapper(false), &results, 1, 2).unwrap());
        assert_eq!(items.len(), 2);
        assert_eq!(items[0]["remote_id"], "ctc_0001");
        assert_eq!(items[0]["phones"], json!(["+4917612345601"]));
        // found = 3 > 1 * 2.
        assert_eq!(next, Some(json!({"page": 2})));
        let (_, next) = list_json(translate_search(&mapper(false), &results, 2, 2).unwrap());
        assert_eq!(next, None);
        // No results at all, and hits that are contacts themselves.
        let (items, next) =
            list_json(translate_search(&mapper(false), &Value::Null, 1, 20).unwrap());
        assert_eq!((items.len(), next), (0, None));
        let bare = json!({"hits": [{"id": "x", "name": "X"}]});
        let (items, next) = list_json(translate_search(&mapper(false), &bare, 1, 1).unwrap());
        assert_eq!((items.len(), next), (1, Some(json!({"page": 2}))));
        let err = translate_search(&mapper(false), &json!({"hits": [{"name": "no id"}]}), 1, 5)
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::VendorBadResponse);
    }

    #[test]
    fn a_contact_without_a_string_id_is_a_bad_response() {
        for value in [
            json!({"name": "x"}),
            json!({"id": 12}),
            json!({"id": " "}),
            json!("x"),
        ] {
            let err = translate_contact(&mapper(false), &value).unwrap_err();
            assert_eq!(err.code, ErrorCode::VendorBadResponse, "{value}");
        }
    }

    #[test]
    fn timestamps_normalize() {
        assert_eq!(
            timestamp(Some(&json!(1_736_154_000_000_i64))).as_deref(),
            Some("2025-01-06T09:00:00.000Z")
        );
        assert_eq!(
            timestamp(Some(&json!(1_736_154_000))).as_deref(),
            Some("2025-01-06T09:00:00.000Z")
        );
        assert_eq!(
            timestamp(Some(
                &json!({"_seconds": 1_736_154_000, "_nanoseconds": 250_000_000})
            ))
            .as_deref(),
            Some("2025-01-06T09:00:00.250Z")
        );
        assert_eq!(timestamp(Some(&json!(" "))), None);
        assert_eq!(timestamp(Some(&json!(true))), None);
        assert_eq!(iso_from_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_from_millis(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    fn create(value: Value) -> ContactCreate {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn contact_create_body_is_flat_with_the_language() {
        let body = contact_create_body(
            &create(json!({
                "first_name": "Max",
                "last_name": "Mustermann",
                "emails": ["max.mustermann@example.com"],
                "phones": ["+49 176 1234-5678"],
                "handles": [
                    {"channel": "whatsapp", "value": "+49 123 456789"},
                    {"channel": "web", "value": "web_abc123xyz"}
                ],
                "avatar_url": "https://example.com/avatar.png"
            })),
            "de",
        )
        .unwrap();
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            json!({
                "language": "de",
                "name": "Max Mustermann",
                "email": "max.mustermann@example.com",
                "phoneNumber": "+4917612345678",
                "whatsappId": "49123456789",
                "webId": "web_abc123xyz",
                "avatar": "https://example.com/avatar.png"
            })
        );
        // Only what is given is sent.
        let body = contact_create_body(&create(json!({"name": "Lena"})), "en").unwrap();
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            json!({"language": "en", "name": "Lena"})
        );
    }

    #[test]
    fn contact_create_refuses_what_chatcaptain_cannot_store() {
        for value in [
            json!({"name": "A", "company": "Acme"}),
            json!({"name": "A", "custom_fields": {"a": 1}}),
            json!({"name": "A", "emails": ["a@x.io", "b@x.io"]}),
            json!({"name": "A", "phones": ["+491", "+492"]}),
            json!({"name": "A", "handles": [{"channel": "line", "value": "U1"}]}),
            json!({"name": "A", "handles": [{"channel": "other", "value": "1784"}]}),
            json!({"name": "A", "handles": [{"channel": "whatsapp", "value": "not a number"}]}),
            json!({"name": "A", "handles": [
                {"channel": "whatsapp", "value": "491"}, {"channel": "whatsapp", "value": "492"}
            ]}),
            json!({"name": "Ada Lovelace", "first_name": "Grace"}),
            json!({}),
        ] {
            let err = contact_create_body(&create(value.clone()), "de").unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidRequest, "{value}");
        }
    }

    fn contact_patch(value: Value) -> ContactPatch {
        serde_json::from_value(value).unwrap()
    }

    fn stored() -> WireContact<'static> {
        // A test may keep its fixture for the whole run.
        let value: &'static Value = Box::leak(Box::new(field(CONTACT, "contact")));
        parse_contact(value).unwrap()
    }

    #[test]
    fn contact_changes_send_only_what_changes() {
        let changes = |value: Value| {
            let patch = contact_patch(value);
            let current = contact_patch_needs_current(&patch).then(stored);
            let language = text_field("language", patch.vendor_fields.get("language")).unwrap();
            serde_json::to_value(contact_changes(&patch, current.as_ref(), language).unwrap())
                .unwrap()
        };
        assert_eq!(
            changes(json!({"name": "Maximilian Example", "emails": ["m@example.com"]})),
            json!({"name": "Maximilian Example", "email": "m@example.com"})
        );
        // A half name is completed from the stored one.
        assert_eq!(
            changes(json!({"last_name": "Muster"})),
            json!({"name": "Max Muster"})
        );
        // Clearing is null.
        assert_eq!(
            changes(json!({"emails": [], "phones": [], "avatar_url": ""})),
            json!({"email": null, "phoneNumber": null, "avatar": null})
        );
        assert_eq!(
            changes(
                json!({"custom_fields": {"customer_id": "9"}, "vendor_fields": {"language": "en"}})
            ),
            json!({"variables": {"customer_id": "9"}, "language": "en"})
        );
        // Handles replace every identity; the contact's own other ids may be sent back.
        assert_eq!(
            changes(json!({"handles": [
                {"channel": "whatsapp", "value": "4915199999999"},
                {"channel": "other", "value": "123456789"}
            ]})),
            json!({
                "whatsappId": "4915199999999",
                "webId": null,
                "instagramId": null,
                "facebookId": null,
                "telegramId": "123456789"
            })
        );
        // The stored WhatsApp number echoed among the phones is not a second number.
        assert_eq!(
            changes(json!({"phones": ["+49 30 123456", "+49123456789"]})),
            json!({"phoneNumber": "+4930123456"})
        );
    }

    #[test]
    fn contact_patch_refuses_what_chatcaptain_cannot_store() {
        for value in [
            json!({}),
            json!({"company": "Acme"}),
            json!({"emails": ["a@x.io", "b@x.io"]}),
            json!({"handles": [{"channel": "email", "value": "a@x.io"}]}),
            json!({"vendor_fields": {"langauge": "de"}}),
            json!({"name": "Ada Lovelace", "first_name": "Grace"}),
        ] {
            let patch = contact_patch(value.clone());
            let err = check_contact_patch(&patch).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidRequest, "{value}");
        }
        let current = stored();
        for value in [
            json!({"phones": ["+4930123456", "+4940123456"]}),
            json!({"handles": [{"channel": "other", "value": "unknown-id"}]}),
        ] {
            let patch = contact_patch(value.clone());
            assert!(contact_patch_needs_current(&patch), "{value}");
            let err = contact_changes(&patch, Some(&current), None).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidRequest, "{value}");
        }
        assert!(!contact_patch_needs_current(&contact_patch(
            json!({"name": "X", "phones": ["+1"]})
        )));
    }

    // ----- conversations -----------------------------------------------------------------

    #[test]
    fn conversation_maps_every_field() {
        let value = field(CONVERSATION, "conversation");
        let c = translate_conversation(&mapper(true), &value).unwrap();
        assert_eq!(c.id, id(Kind::Conversation, &[CONV_ID]));
        assert_eq!(c.remote_id, CONV_ID);
        assert_eq!(c.contact_id, Some(id(Kind::Contact, &[CONTACT_ID])));
        assert_eq!(c.channel, Some(Channel::Whatsapp));
        assert_eq!(c.status, ConversationStatus::Open);
        assert_eq!(c.vendor_status.as_deref(), Some("active"));
        assert_eq!(c.subject, None);
        assert_eq!(c.assignee, None);
        assert_eq!(c.priority, None);
        assert!(c.tags.is_empty());
        assert_eq!(c.created_at.as_deref(), Some("2025-03-10T08:15:00.000Z"));
        assert_eq!(c.updated_at.as_deref(), Some("2025-03-10T09:02:41.512Z"));
        assert_eq!(c.raw, Some(value));
    }

    #[test]
    fn conversation_list_maps_archived_and_channels() {
        let items = field(CONVERSATIONS_LIST, "conversations");
        let mapped: Vec<Conversation> = items
            .as_array()
            .unwrap()
            .iter()
            .map(|v| translate_conversation(&mapper(false), v).unwrap())
            .collect();
        let statuses: Vec<_> = mapped
            .iter()
            .map(|c| (c.status, c.vendor_status.clone().unwrap(), c.channel))
            .collect();
        assert_eq!(
            statuses,
            vec![
                (
                    ConversationStatus::Open,
                    "active".into(),
                    Some(Channel::Web)
                ),
                (
                    ConversationStatus::Closed,
                    "archived".into(),
                    Some(Channel::Web)
                ),
                (
                    ConversationStatus::Open,
                    "active".into(),
                    Some(Channel::Whatsapp)
                ),
                (
                    ConversationStatus::Closed,
                    "archived".into(),
                    Some(Channel::Other)
                ),
                (ConversationStatus::Open, "active".into(), None),
            ]
        );
        assert_eq!(mapped[3].contact_id, None);
        assert_eq!(mapped[4].created_at, None);
        let err = translate_conversation(&mapper(false), &json!({"id": ""})).unwrap_err();
        assert_eq!(err.code, ErrorCode::VendorBadResponse);
        let err = translate_conversation(&mapper(false), &json!({"id": "a", "archived": "yes"}))
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::VendorBadResponse);
    }

    #[test]
    fn windows_cut_whole_lists_with_an_offset_cursor() {
        let items = |n: usize| -> Vec<Resource> {
            (0..n)
                .map(|i| {
                    let value = json!({"id": format!("c{i}")});
                    Resource::Conversation(Box::new(
                        translate_conversation(&mapper(false), &value).unwrap(),
                    ))
                })
                .collect()
        };
        let (data, next) = list_json(window(items(5), 0, 2));
        assert_eq!((data.len(), next), (2, Some(json!({"offset": 2}))));
        assert_eq!(data[0]["remote_id"], "c0");
        let (data, next) = list_json(window(items(5), 4, 2));
        assert_eq!((data.len(), next), (1, None));
        assert_eq!(data[0]["remote_id"], "c4");
        let (data, next) = list_json(window(items(4), 2, 2));
        assert_eq!((data.len(), next), (2, None));
        let (data, next) = list_json(window(items(2), 9, 2));
        assert_eq!((data.len(), next), (0, None));

        assert_eq!(offset(&page(5, None)).unwrap(), 0);
        assert_eq!(offset(&page(5, Some(json!({"offset": 7})))).unwrap(), 7);
        assert_eq!(search_page(&page(5, Some(json!({"page": 3})))).unwrap(), 3);
        assert_eq!(
            contacts_before(&page(
                5,
                Some(json!({"before": "2025-01-01T00:00:00.000Z"}))
            ))
            .unwrap()
            .as_deref(),
            Some("2025-01-01T00:00:00.000Z")
        );
        for bad in [
            json!({"page": 2}),
            json!({"offset": -1}),
            json!({"offset": "2"}),
        ] {
            assert_eq!(
                offset(&page(5, Some(bad))).unwrap_err().code,
                ErrorCode::InvalidRequest
            );
        }
        for bad in [json!({"page": 0}), json!({"offset": 1})] {
            assert!(search_page(&page(5, Some(bad))).is_err());
        }
        for bad in [
            json!({"before": ""}),
            json!({"page": 2}),
            json!({"before": 5}),
        ] {
            assert!(contacts_before(&page(5, Some(bad))).is_err());
        }
        assert!(search_query("  ").is_err());
        assert_eq!(search_query(" anna ").unwrap(), "anna");
    }

    fn conversation_patch(value: Value) -> ConversationPatch {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn conversation_status_becomes_archived() {
        for (status, archived) in [("open", false), ("resolved", true), ("closed", true)] {
            assert_eq!(
                conversation_changes(&conversation_patch(json!({ "status": status }))).unwrap(),
                json!({ "archived": archived }),
                "{status}"
            );
        }
    }

    #[test]
    fn conversation_patch_refuses_what_chatcaptain_cannot_change() {
        for value in [
            json!({"status": "pending"}),
            json!({"status": "closed", "priority": "high"}),
            json!({"tags": ["vip"]}),
            json!({"assignee": null}),
            json!({"assignee": {"user_id": "3"}}),
        ] {
            let err = conversation_changes(&conversation_patch(value.clone())).unwrap_err();
            assert_eq!(err.code, ErrorCode::UnsupportedOperation, "{value}");
        }
        for value in [
            json!({}),
            json!({"status": "closed", "vendor_fields": {"archived": true}}),
        ] {
            let err = conversation_changes(&conversation_patch(value.clone())).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidRequest, "{value}");
        }
        // The model types are the ones the gateway hands over.
        let patch = ConversationPatch {
            assignee: Some(Some(Assignee::default())),
            priority: Some(Priority::Low),
            ..Default::default()
        };
        assert!(conversation_changes(&patch).is_err());
    }

    #[test]
    fn conversation_create_body_follows_the_inbox_contract() {
        let identity = identity_from_body(&NewContact {
            name: Some("John Doe".into()),
            email: Some("john.doe@example.com".into()),
            phone: Some("+49 176 12345678".into()),
        })
        .unwrap();
        assert_eq!(
            conversation_create_body(&identity, "sTjncRDMuTdv65ex4I05"),
            json!({
                "name": "John Doe",
                "channelId": "sTjncRDMuTdv65ex4I05",
                "email": "john.doe@example.com",
                "phone": "+4917612345678"
            })
        );
        // No name: the email names the contact.
        let identity = identity_from_body(&NewContact {
            email: Some("jane@example.com".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            conversation_create_body(&identity, "c"),
            json!({"name": "jane@example.com", "channelId": "c", "email": "jane@example.com"})
        );
        assert!(identity_from_body(&NewContact::default()).is_err());
        // An existing contact: its name, email and phone (or WhatsApp number).
        let identity = identity_from_vendor(&stored()).unwrap();
        assert_eq!(
            identity,
            Identity {
                name: "Max Mustermann".into(),
                email: Some("max.mustermann@example.com".into()),
                phone: Some("+4917612345678".into()),
            }
        );
        let whatsapp_only = json!({"id": "w", "whatsappId": "4915112345603"});
        let whatsapp_only = parse_contact(&whatsapp_only).unwrap();
        assert_eq!(
            identity_from_vendor(&whatsapp_only).unwrap().name,
            "+4915112345603"
        );
        assert!(identity_from_vendor(&parse_contact(&json!({"id": "e"})).unwrap()).is_err());
    }

    #[test]
    fn conversation_create_refuses_what_chatcaptain_cannot_do() {
        for value in [
            json!({"contact": {"name": "A"}, "channel": "web"}),
            json!({"contact": {"name": "A"}, "subject": "Hello"}),
        ] {
            let body: ConversationCreate = serde_json::from_value(value.clone()).unwrap();
            let err = check_conversation_create(&body).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidRequest, "{value}");
        }
    }

    // ----- messages ----------------------------------------------------------------------

    #[test]
    fn message_maps_every_field() {
        let value = field(MESSAGE, "message");
        let m = translate_message(&mapper(true), &value, "ignored").unwrap();
        assert_eq!(m.id, id(Kind::Message, &["cnv_0001", "msg_0003"]));
        assert_eq!(m.remote_id, "msg_0003");
        assert_eq!(m.conversation_id, id(Kind::Conversation, &["cnv_0001"]));
        assert_eq!(m.direction, Direction::Outbound);
        assert_eq!(
            m.sender,
            Sender {
                type_: SenderType::Agent,
                id: None,
                name: None
            }
        );
        assert_eq!(m.type_, MessageType::Text);
        assert_eq!(
            m.text.as_deref(),
            Some("Hallo Anna, Ihr Paket ist unterwegs.")
        );
        assert_eq!(m.html, None);
        assert!(m.attachments.is_empty());
        assert!(!m.private);
        assert_eq!(m.status, Some(MessageStatus::Read));
        assert_eq!(m.created_at.as_deref(), Some("2025-03-10T08:20:00.000Z"));
        assert_eq!(m.updated_at.as_deref(), Some("2025-03-10T08:21:13.000Z"));
        assert_eq!(m.raw, Some(value));
    }

    #[test]
    fn message_list_maps_senders_types_and_files() {
        let items = field(MESSAGES_LIST, "messages");
        let mapped: Vec<Message> = items
            .as_array()
            .unwrap()
            .iter()
            .map(|v| translate_message(&mapper(false), v, "cnv_0001").unwrap())
            .collect();
        let rows: Vec<_> = mapped
            .iter()
            .map(|m| (m.direction, m.sender.type_, m.type_, m.status))
            .collect();
        assert_eq!(
            rows,
            vec![
                (
                    Direction::Inbound,
                    SenderType::Contact,
                    MessageType::Text,
                    Some(MessageStatus::Received)
                ),
                (
                    Direction::Outbound,
                    SenderType::Bot,
                    MessageType::Text,
                    Some(MessageStatus::Delivered)
                ),
                (
                    Direction::Outbound,
                    SenderType::Agent,
                    MessageType::Text,
                    Some(MessageStatus::Read)
                ),
                (
                    Direction::Inbound,
                    SenderType::Contact,
                    MessageType::Image,
                    Some(MessageStatus::Received)
                ),
                (
                    Direction::Outbound,
                    SenderType::Bot,
                    MessageType::Template,
                    Some(MessageStatus::Sent)
                ),
            ]
        );
        assert_eq!(mapped[3].text, None);
        assert_eq!(
            mapped[3].attachments,
            vec![Attachment {
                type_: MessageType::Image,
                url: Some("https://files.example.com/cnv_0001/foto.jpg".into()),
                name: Some("foto.jpg".into()),
                size: Some(48213),
            }]
        );
        assert_eq!(
            mapped[4].text.as_deref(),
            Some("Wie zufrieden waren Sie mit uns?")
        );
    }

    #[test]
    fn message_conversation_comes_from_the_message_or_the_caller() {
        let sent = field(MESSAGE_SENT, "message");
        let m = translate_message(&mapper(false), &sent, CONV_ID).unwrap();
        assert_eq!(m.conversation_id, id(Kind::Conversation, &[CONV_ID]));
        assert_eq!(m.id, id(Kind::Message, &[CONV_ID, "z5AV6Eu3aBBdbu4sdjEa"]));
        assert_eq!(m.status, Some(MessageStatus::Sent));
        // Unknown senders: `outgoing` tells the direction; a top-level text is read too.
        let odd = json!({"id": "x", "sender": "system", "outgoing": false, "text": "hi"});
        let m = translate_message(&mapper(false), &odd, "c").unwrap();
        assert_eq!(
            (m.direction, m.sender.type_),
            (Direction::Inbound, SenderType::Contact)
        );
        assert_eq!(
            (m.type_, m.text.as_deref()),
            (MessageType::Text, Some("hi"))
        );
        let odd = json!({"id": "y", "type": "sticker", "status": "weird"});
        let m = translate_message(&mapper(false), &odd, "c").unwrap();
        assert_eq!(
            (m.direction, m.sender.type_, m.type_, m.status),
            (
                Direction::Outbound,
                SenderType::System,
                MessageType::Other,
                None
            )
        );
        for bad in [
            json!({"id": ""}),
            json!({"sender": "user"}),
            json!({"id": "z", "content": "text"}),
        ] {
            assert_eq!(
                translate_message(&mapper(false), &bad, "c")
                    .unwrap_err()
                    .code,
                ErrorCode::VendorBadResponse
            );
        }
    }

    fn send(value: Value) -> MessageSend {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn message_send_body_follows_the_inbox_contract() {
        assert_eq!(
            message_send_body(
                CONV_ID,
                &send(json!({"conversation_id": "x", "text": " Hello "}))
            )
            .unwrap(),
            json!({"conversationId": CONV_ID, "text": "Hello"})
        );
        assert_eq!(
            message_send_body(
                CONV_ID,
                &send(json!({
                    "conversation_id": "x",
                    "vendor_fields": {"attachment_ref": "z5AV6Eu3aBBdbu4sdjEa"}
                }))
            )
            .unwrap(),
            json!({"conversationId": CONV_ID, "attachmentRef": "z5AV6Eu3aBBdbu4sdjEa"})
        );
    }

    #[test]
    fn message_send_refuses_what_chatcaptain_cannot_do() {
        let cases = [
            (
                json!({"conversation_id": "x", "text": "note", "private": true}),
                ErrorCode::UnsupportedOperation,
            ),
            (json!({"conversation_id": "x"}), ErrorCode::InvalidRequest),
            (
                json!({"conversation_id": "x", "text": "  "}),
                ErrorCode::InvalidRequest,
            ),
            (
                json!({"conversation_id": "x", "attachments": [{"data": "aGk=", "name": "a.pdf", "type": "application/pdf"}]}),
                ErrorCode::InvalidRequest,
            ),
            (
                json!({
                    "conversation_id": "x",
                    "attachments": [{"data": "aGk=", "name": "a.pdf", "type": "application/pdf"}],
                    "vendor_fields": {"attachment_ref": "r"}
                }),
                ErrorCode::InvalidRequest,
            ),
            (
                json!({"conversation_id": "x", "text": "a", "vendor_fields": {"attachmentRef": "r"}}),
                ErrorCode::InvalidRequest,
            ),
            (
                json!({"conversation_id": "x", "vendor_fields": {"attachment_ref": ["r"]}}),
                ErrorCode::InvalidRequest,
            ),
        ];
        for (value, code) in cases {
            let err = message_send_body(CONV_ID, &send(value.clone())).unwrap_err();
            assert_eq!(err.code, code, "{value}");
        }
        let mut template = send(json!({"conversation_id": "x"}));
        template.template = Some(Template {
            name: "welcome".into(),
            language: None,
            variables: Value::Null,
        });
        assert_eq!(
            message_send_body(CONV_ID, &template).unwrap_err().code,
            ErrorCode::UnsupportedOperation
        );
    }

    #[test]
    fn ids_need_their_exact_keys() {
        assert_eq!(contact_key(&object_id(Kind::Contact, &["a"])).unwrap(), "a");
        assert!(contact_key(&object_id(Kind::Contact, &["a", "b"])).is_err());
        assert!(conversation_key(&object_id(Kind::Conversation, &[" "])).is_err());
        assert_eq!(
            message_keys(&object_id(Kind::Message, &["c", "m"])).unwrap(),
            ("c", "m")
        );
        assert!(message_keys(&object_id(Kind::Message, &["m"])).is_err());
        assert!(message_keys(&object_id(Kind::Message, &["c", "m", "x"])).is_err());
    }

    // ----- execute, against a scripted ChatCaptain on loopback ------------------------------

    /// A ChatCaptain that answers `(method, path)` with a fixed status and body.
    async fn chatcaptain(replies: &[(&str, &str, u16, &str)]) -> (String, Arc<Script>) {
        let not_found = r#"{"error":"Not found."}"#;
        test_support::serve(Vendor::ChatCaptain, not_found, replies.iter().copied()).await
    }

    fn connection(base: &str, without: &[&str]) -> Connection {
        let mut defaults = Map::new();
        defaults.insert("chatbot_id".into(), json!(BOT));
        defaults.insert("channel_id".into(), json!("chn_web"));
        defaults.insert("language".into(), json!("de"));
        test_support::connection(
            Vendor::ChatCaptain,
            "captain",
            base,
            "cc-key",
            defaults,
            without,
        )
    }

    fn bot_path(rest: &str) -> String {
        format!("/v1/chatbots/{BOT}{rest}")
    }

    #[tokio::test]
    async fn malformed_ids_and_refused_input_make_no_vendor_call() {
        // Nothing listens here: any call would fail with vendor_unavailable.
        let conn = connection("http://127.0.0.1:9", &["messages.send"]);
        let not_found = [
            OperationRequest::ContactsGet(object_id(Kind::Contact, &["a", "b"])),
            OperationRequest::ContactsDelete(object_id(Kind::Contact, &[" "])),
            OperationRequest::ConversationsGet(object_id(Kind::Conversation, &["a", "b"])),
            OperationRequest::MessagesGet(object_id(Kind::Message, &["only-one"])),
            OperationRequest::MessagesList(
                object_id(Kind::Conversation, &["a", "b"]),
                page(20, None),
            ),
        ];
        for request in not_found {
            let (result, calls) = run(&conn, request).await;
            assert_eq!(result.unwrap_err().code, ErrorCode::NotFound);
            assert_eq!(calls, 0);
        }
        let refused = [
            (
                OperationRequest::ConversationsUpdate(
                    object_id(Kind::Conversation, &[CONV_ID]),
                    conversation_patch(json!({"status": "pending"})),
                ),
                ErrorCode::UnsupportedOperation,
            ),
            (
                OperationRequest::ConversationsUpdate(
                    object_id(Kind::Conversation, &[CONV_ID]),
                    conversation_patch(json!({"status": "closed", "tags": ["a"]})),
                ),
                ErrorCode::UnsupportedOperation,
            ),
            (
                OperationRequest::MessagesSend(
                    object_id(Kind::Conversation, &[CONV_ID]),
                    send(json!({"conversation_id": "x", "text": "n", "private": true})),
                ),
                ErrorCode::UnsupportedOperation,
            ),
            (
                // text needs messages.send, which this connection lacks.
                OperationRequest::ConversationsCreate(
                    serde_json::from_value(json!({"contact": {"name": "A"}, "text": "Hi"}))
                        .unwrap(),
                    None,
                ),
                ErrorCode::UnsupportedOperation,
            ),
            (
                OperationRequest::ContactsList(
                    page(20, None),
                    ContactFilters {
                        email: Some("a@b.c".into()),
                        ..Default::default()
                    },
                ),
                ErrorCode::UnsupportedFilter,
            ),
            (
                OperationRequest::ContactsList(
                    page(20, Some(json!({"page": 2}))),
                    ContactFilters::default(),
                ),
                ErrorCode::InvalidRequest,
            ),
            (
                OperationRequest::ContactsCreate(create(json!({"name": "A", "company": "C"}))),
                ErrorCode::InvalidRequest,
            ),
            (
                OperationRequest::ConversationsList(
                    page(20, None),
                    ConversationFilters {
                        status: None,
                        contact: Some(object_id(Kind::Contact, &["a", "b"])),
                    },
                ),
                ErrorCode::NotFound,
            ),
        ];
        for (request, code) in refused {
            let (result, calls) = run(&conn, request).await;
            assert_eq!(result.unwrap_err().code, code);
            assert_eq!(calls, 0);
        }
    }

    #[tokio::test]
    async fn contact_calls_carry_the_chatbot_and_the_key() {
        let contact_path = bot_path(&format!("/contacts/{CONTACT_ID}"));
        let (base, script) = chatcaptain(&[
            ("GET", contact_path.as_str(), 200, CONTACT),
            ("DELETE", contact_path.as_str(), 200, DELETED),
        ])
        .await;
        let conn = connection(&base, &[]);
        let (result, calls) = run(
            &conn,
            OperationRequest::ContactsGet(object_id(Kind::Contact, &[CONTACT_ID])),
        )
        .await;
        let (kind, contact) = object_json(result.unwrap());
        assert_eq!((kind, calls), ("found", 1));
        assert_eq!(contact["name"], "Max Mustermann");
        let (result, _) = run(
            &conn,
            OperationRequest::ContactsDelete(object_id(Kind::Contact, &[CONTACT_ID])),
        )
        .await;
        assert!(matches!(result.unwrap(), Output::Deleted));
        let (result, _) = run(
            &conn,
            OperationRequest::ContactsGet(object_id(Kind::Contact, &["missing"])),
        )
        .await;
        assert_eq!(result.unwrap_err().code, ErrorCode::NotFound);
        let seen = seen(&script);
        assert_eq!(seen[0].path, contact_path);
        assert_eq!(seen[0].key, "cc-key");
        assert_eq!(seen[1].method, "DELETE");
    }

    #[tokio::test]
    async fn contact_list_pages_by_date_and_search_by_number() {
        let (base, script) = chatcaptain(&[
            ("GET", bot_path("/contacts").as_str(), 200, CONTACTS_LIST),
            (
                "GET",
                bot_path("/contacts/search").as_str(),
                200,
                CONTACTS_SEARCH,
            ),
        ])
        .await;
        let conn = connection(&base, &[]);
        let request = OperationRequest::ContactsList(
            page(2, Some(json!({"before": "2025-01-07T00:00:00.000Z"}))),
            ContactFilters::default(),
        );
        let (items, next) = list_json(run(&conn, request).await.0.unwrap());
        assert_eq!(items.len(), 2);
        assert_eq!(next, Some(json!({"before": "2025-01-06T10:00:00.000Z"})));
        let request = OperationRequest::ContactsList(
            page(2, Some(json!({"page": 2}))),
            ContactFilters {
                q: Some(" anna ".into()),
                ..Default::default()
            },
        );
        let (items, next) = list_json(run(&conn, request).await.0.unwrap());
        assert_eq!((items.len(), next), (2, None));
        let seen = seen(&script);
        assert_eq!(seen[0].query_param("limit").as_deref(), Some("2"));
        assert_eq!(
            seen[0].query_param("pageToken").as_deref(),
            Some("2025-01-07T00:00:00.000Z")
        );
        assert_eq!(seen[1].path, bot_path("/contacts/search"));
        assert_eq!(seen[1].query_param("query").as_deref(), Some("anna"));
        assert_eq!(seen[1].query_param("page").as_deref(), Some("2"));
        assert_eq!(seen[1].query_param("pageSize").as_deref(), Some("2"));
    }

    #[tokio::test]
    async fn contact_create_uses_the_language_default_and_update_wraps_the_changes() {
        let contact_path = bot_path(&format!("/contacts/{CONTACT_ID}"));
        let updated = CONTACT.replace("Max Mustermann", "Max Muster");
        let (base, script) = chatcaptain(&[
            ("POST", bot_path("/contacts").as_str(), 201, CONTACT),
            ("GET", contact_path.as_str(), 200, CONTACT),
            ("PATCH", contact_path.as_str(), 200, updated.as_str()),
        ])
        .await;
        let conn = connection(&base, &[]);
        let (result, calls) = run(
            &conn,
            OperationRequest::ContactsCreate(create(json!({"name": "Max Mustermann"}))),
        )
        .await;
        let (kind, contact) = object_json(result.unwrap());
        assert_eq!((kind, calls), ("created", 1));
        assert_eq!(contact["remote_id"], CONTACT_ID);
        // vendor_fields win over the default.
        let (result, _) = run(
            &conn,
            OperationRequest::ContactsCreate(create(
                json!({"name": "Jo", "vendor_fields": {"language": "en"}}),
            )),
        )
        .await;
        result.unwrap();
        // A half name reads the contact first.
        let (result, calls) = run(
            &conn,
            OperationRequest::ContactsUpdate(
                object_id(Kind::Contact, &[CONTACT_ID]),
                contact_patch(json!({"last_name": "Muster"})),
            ),
        )
        .await;
        let (kind, contact) = object_json(result.unwrap());
        assert_eq!((kind, calls), ("found", 2));
        assert_eq!(contact["name"], "Max Muster");
        let seen = seen(&script);
        assert_eq!(
            seen[0].json(),
            json!({"language": "de", "name": "Max Mustermann"})
        );
        assert_eq!(seen[1].json(), json!({"language": "en", "name": "Jo"}));
        assert_eq!(seen[2].method, "GET");
        assert_eq!(seen[3].method, "PATCH");
        // The shipped routes file sends the fields flat (`body_envelope: none`).
        assert_eq!(seen[3].json(), json!({"name": "Max Muster"}));

        // No language anywhere: refused before any call.
        let mut bare = connection(&base, &[]);
        bare.defaults.remove("language");
        let (result, calls) = run(
            &bare,
            OperationRequest::ContactsCreate(create(json!({"name": "A"}))),
        )
        .await;
        let err = result.unwrap_err();
        assert!(
            err.detail.contains("vendor_fields.language"),
            "{}",
            err.detail
        );
        assert_eq!(calls, 0);
    }

    #[tokio::test]
    async fn conversation_list_filters_by_contact_and_status_then_windows() {
        let (base, script) = chatcaptain(&[(
            "GET",
            bot_path("/conversations").as_str(),
            200,
            CONVERSATIONS_LIST,
        )])
        .await;
        let conn = connection(&base, &[]);
        let request = OperationRequest::ConversationsList(
            page(1, None),
            ConversationFilters {
                status: Some(ConversationStatus::Open),
                contact: Some(object_id(Kind::Contact, &["ctc_0001"])),
            },
        );
        let (items, next) = list_json(run(&conn, request).await.0.unwrap());
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["remote_id"], "cnv_0005");
        assert_eq!(next, Some(json!({"offset": 1})));
        let request = OperationRequest::ConversationsList(
            page(2, Some(json!({"offset": 1}))),
            ConversationFilters {
                status: Some(ConversationStatus::Open),
                contact: None,
            },
        );
        let (items, next) = list_json(run(&conn, request).await.0.unwrap());
        let ids: Vec<_> = items.iter().map(|c| c["remote_id"].clone()).collect();
        assert_eq!(ids, vec![json!("cnv_0003"), json!("cnv_0001")]);
        assert_eq!(next, None);
        for status in [ConversationStatus::Pending, ConversationStatus::Resolved] {
            let request = OperationRequest::ConversationsList(
                page(20, None),
                ConversationFilters {
                    status: Some(status),
                    contact: None,
                },
            );
            let (items, _) = list_json(run(&conn, request).await.0.unwrap());
            assert!(items.is_empty(), "{status:?}");
        }
        let seen = seen(&script);
        assert_eq!(
            seen[0].query_param("contactId").as_deref(),
            Some("ctc_0001")
        );
        assert_eq!(seen[1].query, "");
    }

    #[tokio::test]
    async fn conversation_create_reads_the_contact_starts_sends_and_reads_back() {
        let contact_path = bot_path(&format!("/contacts/{CONTACT_ID}"));
        let conversation_path = bot_path(&format!("/conversations/{CONV_ID}"));
        let inbox_conversations = format!("/v1/inbox/{BOT}/conversations");
        let inbox_messages = format!("/v1/inbox/{BOT}/messages");
        let (base, script) = chatcaptain(&[
            ("GET", contact_path.as_str(), 200, CONTACT),
            (
                "POST",
                inbox_conversations.as_str(),
                201,
                CONVERSATION_CREATED,
            ),
            ("POST", inbox_messages.as_str(), 201, MESSAGE_SENT),
            ("GET", conversation_path.as_str(), 200, CONVERSATION),
        ])
        .await;
        let conn = connection(&base, &[]);
        let body: ConversationCreate = serde_json::from_value(json!({
            "contact_id": "ignored: decoded by the gateway",
            "text": "Guten Tag!",
            "vendor_fields": {"channel_id": "sTjncRDMuTdv65ex4I05"}
        }))
        .unwrap();
        let request = OperationRequest::ConversationsCreate(
            body,
            Some(object_id(Kind::Contact, &[CONTACT_ID])),
        );
        let (result, calls) = run(&conn, request).await;
        let (kind, conversation) = object_json(result.unwrap());
        assert_eq!((kind, calls), ("created", 4));
        assert_eq!(conversation["remote_id"], CONV_ID);
        let seen = seen(&script);
        let paths: Vec<&str> = seen.iter().map(|s| s.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                contact_path.as_str(),
                &inbox_conversations,
                &inbox_messages,
                &conversation_path
            ]
        );
        assert_eq!(
            seen[1].json(),
            json!({
                "name": "Max Mustermann",
                "channelId": "sTjncRDMuTdv65ex4I05",
                "email": "max.mustermann@example.com",
                "phone": "+4917612345678"
            })
        );
        assert_eq!(
            seen[2].json(),
            json!({"conversationId": CONV_ID, "text": "Guten Tag!"})
        );
    }

    #[tokio::test]
    async fn conversation_update_archives_and_delete_answers_deleted() {
        let conversation_path = bot_path(&format!("/conversations/{CONV_ID}"));
        let archived = CONVERSATION.replace("\"archived\": false", "\"archived\": true");
        let (base, script) = chatcaptain(&[
            ("PATCH", conversation_path.as_str(), 200, archived.as_str()),
            ("DELETE", conversation_path.as_str(), 200, DELETED),
        ])
        .await;
        let conn = connection(&base, &[]);
        let (result, calls) = run(
            &conn,
            OperationRequest::ConversationsUpdate(
                object_id(Kind::Conversation, &[CONV_ID]),
                conversation_patch(json!({"status": "resolved"})),
            ),
        )
        .await;
        let (kind, conversation) = object_json(result.unwrap());
        assert_eq!((kind, calls), ("found", 1));
        assert_eq!(conversation["status"], "closed");
        assert_eq!(conversation["vendor_status"], "archived");
        assert_eq!(seen(&script)[0].json(), json!({"archived": true}));
        let (result, _) = run(
            &conn,
            OperationRequest::ConversationsDelete(object_id(Kind::Conversation, &[CONV_ID])),
        )
        .await;
        assert!(matches!(result.unwrap(), Output::Deleted));
    }

    /// The update bodies' envelope is routes-file data (`body_envelope`), not code: each
    /// plausible shape is sent exactly as the connection's routes say.
    #[tokio::test]
    async fn update_bodies_follow_the_routes_files_envelope() {
        let conversation_path = bot_path(&format!("/conversations/{CONV_ID}"));
        let contact_path = bot_path(&format!("/contacts/{CONTACT_ID}"));
        for (envelope, conversation_body, contact_body) in [
            (
                "none",
                json!({"archived": true}),
                json!({"email": "neu@example.de"}),
            ),
            (
                "conversation",
                json!({"conversation": {"archived": true}}),
                json!({"conversation": {"email": "neu@example.de"}}),
            ),
            (
                "updateConversation",
                json!({"updateConversation": {"archived": true}}),
                json!({"updateConversation": {"email": "neu@example.de"}}),
            ),
        ] {
            let (base, script) = chatcaptain(&[
                ("PATCH", conversation_path.as_str(), 200, CONVERSATION),
                ("PATCH", contact_path.as_str(), 200, CONTACT),
            ])
            .await;
            let mut conn = connection(&base, &[]);
            let mut file = test_support::routes_file(Vendor::ChatCaptain);
            for name in ["conversations.update", "contacts.update"] {
                let endpoint = file.operations.get_mut(name).unwrap();
                endpoint.body_envelope = Some(envelope.to_owned());
            }
            conn.routes = Arc::new(crate::config::routes::compile(&file).unwrap());
            let (result, _) = run(
                &conn,
                OperationRequest::ConversationsUpdate(
                    object_id(Kind::Conversation, &[CONV_ID]),
                    conversation_patch(json!({"status": "closed"})),
                ),
            )
            .await;
            result.unwrap();
            let (result, _) = run(
                &conn,
                OperationRequest::ContactsUpdate(
                    object_id(Kind::Contact, &[CONTACT_ID]),
                    contact_patch(json!({"emails": ["neu@example.de"]})),
                ),
            )
            .await;
            result.unwrap();
            let seen = seen(&script);
            assert_eq!(seen[0].json(), conversation_body, "{envelope}");
            assert_eq!(seen[1].json(), contact_body, "{envelope}");
        }
    }

    #[tokio::test]
    async fn messages_list_window_get_and_send() {
        let messages_path = bot_path("/conversations/cnv_0001/messages");
        let message_path = format!("{messages_path}/msg_0003");
        let inbox_messages = format!("/v1/inbox/{BOT}/messages");
        let (base, script) = chatcaptain(&[
            ("GET", messages_path.as_str(), 200, MESSAGES_LIST),
            ("GET", message_path.as_str(), 200, MESSAGE),
            ("POST", inbox_messages.as_str(), 201, MESSAGE_SENT),
        ])
        .await;
        let conn = connection(&base, &[]);
        let conversation = object_id(Kind::Conversation, &["cnv_0001"]);
        let (items, next) = list_json(
            run(
                &conn,
                OperationRequest::MessagesList(conversation.clone(), page(3, None)),
            )
            .await
            .0
            .unwrap(),
        );
        assert_eq!((items.len(), next.clone()), (3, Some(json!({"offset": 3}))));
        let (items, next) = list_json(
            run(
                &conn,
                OperationRequest::MessagesList(conversation.clone(), page(3, next)),
            )
            .await
            .0
            .unwrap(),
        );
        assert_eq!((items.len(), next), (2, None));
        assert_eq!(items[0]["remote_id"], "msg_0004");

        let (result, _) = run(
            &conn,
            OperationRequest::MessagesGet(object_id(Kind::Message, &["cnv_0001", "msg_0003"])),
        )
        .await;
        let (kind, message) = object_json(result.unwrap());
        assert_eq!(kind, "found");
        assert_eq!(message["sender"]["type"], "agent");

        let (result, calls) = run(
            &conn,
            OperationRequest::MessagesSend(
                conversation,
                send(json!({"conversation_id": "x", "text": "Hello, I have a question."})),
            ),
        )
        .await;
        let (kind, message) = object_json(result.unwrap());
        assert_eq!((kind, calls), ("created", 1));
        assert_eq!(message["direction"], "outbound");
        assert_eq!(
            message["conversation_id"],
            id(Kind::Conversation, &["cnv_0001"])
        );
        assert_eq!(
            seen(&script)[3].json(),
            json!({"conversationId": "cnv_0001", "text": "Hello, I have a question."})
        );
    }

    /// Before/after: the sandbox's seeded pages (vendor bytes captured from the sandbox, in
    /// `tests/fixtures/golden/`) translate to exactly the bytes the gateway answered for them
    /// before the adapter read vendor bodies typed (issue 11): same fields, same order, same
    /// values, `raw` included.
    mod golden {
        use super::super::*;
        use crate::vendors::test_support::{golden_fixture, golden_mapper, golden_vendor};

        fn mapper(want_raw: bool) -> Mapper {
            golden_mapper("chatcaptain", want_raw)
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
            assert_list(
                "cc_contacts",
                translate_contact_page(&m, &golden_vendor("cc_contacts"), 30).unwrap(),
            );
            assert_list(
                "cc_conversations",
                conversations_window(&m, &golden_vendor("cc_conversations"), None, 0, 20).unwrap(),
            );
            assert_list(
                "cc_conversations_raw",
                conversations_window(
                    &mapper(true),
                    &golden_vendor("cc_conversations"),
                    None,
                    0,
                    20,
                )
                .unwrap(),
            );
            for (name, conversation) in [("cc_messages1", "cnv_0001"), ("cc_messages2", "cnv_0002")]
            {
                assert_list(
                    name,
                    messages_window(&m, &golden_vendor(name), conversation, 0, 20).unwrap(),
                );
            }
            let search = golden_vendor("cc_search");
            let results = read_nullable(&search, "results").unwrap();
            assert_list("cc_search", translate_search(&m, &results, 1, 20).unwrap());
        }

        #[test]
        fn seeded_objects_translate_as_before() {
            let m = mapper(false);
            let contact = golden_vendor("cc_contact1");
            let wire = read_typed(&contact, "contact")
                .unwrap()
                .required(200, "contact", "an object")
                .unwrap();
            let contact = contact_from_wire(&m, wire, None).unwrap();
            assert_eq!(
                serde_json::to_string(&contact).unwrap(),
                golden_fixture("cc_contact1.normalized.json")
            );
            let conversation = golden_vendor("cc_conversation1");
            let wire = read_typed(&conversation, "conversation")
                .unwrap()
                .required(200, "conversation", "an object")
                .unwrap();
            let conversation = conversation_from_wire(&m, wire, None).unwrap();
            assert_eq!(
                serde_json::to_string(&conversation).unwrap(),
                golden_fixture("cc_conversation1.normalized.json")
            );
        }
    }
}
