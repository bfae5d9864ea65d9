//! LlamadaPro adapter: the normalized API over LlamadaPro's REST API (`/api/v1`), a
//! TSOA-generated Node API (beta) for a LatAm WhatsApp CRM with "AI employees".
//!
//! What LlamadaPro publishes, and the quirks this adapter hides from callers:
//!
//! - **No envelope.** Answers are the object itself; lists are
//!   `{items, nextPageToken, totalCount}`. Errors are `{code, error, message, details}`:
//!   a non-2xx is mapped by status through `wire::status_error` with `message` (plus the
//!   per-field messages of `details`, TSOA's validation report); a 2xx that is not the
//!   documented object is `vendor_bad_response`.
//! - **Numbers are JSON doubles.** Contact, conversation and address ids are `number
//!   <double>`: an integral double is the id (`42.0` → `"42"`), anything else is a bad
//!   response. The search endpoint answers the same ids as strings (`"42"`). Message ids are
//!   strings.
//! - **Channels live in `addresses`.** A contact has `addresses:[{channelType, address}]`
//!   with `WHATSAPP`, `PHONE` and `EMAIL`; the top-level `email`/`phone` are deprecated (read
//!   as a fallback, never written except to clear a stale copy). EMAIL → `emails`, PHONE →
//!   `phones`, WHATSAPP → `phones` and a `whatsapp` handle, all numbers in E.164.
//! - **Pages by token.** `pageToken` in, `nextPageToken` out; the cursor carries
//!   `{"page_token": …}`.
//! - **Filters go through search.** `POST /contacts/search` takes a full-text `search` (for
//!   `q`) and `filters:[{field, operator, value}]`; `email`, `phone` and a `whatsapp:` handle
//!   are exact matches on `addresses.address` (the vendor's own example), a WhatsApp handle
//!   also on `addresses.channelType`. `GET /contacts?filterBy=email:…` is not used: it
//!   filters the deprecated top-level fields.
//! - **Partial update.** `PUT /contacts/{id}` changes only what it is sent, but `addresses`
//!   is one array: a PATCH of emails, phones or handles reads the contact and sends the
//!   whole merged list.
//! - **Conversations are WhatsApp sessions with no read API.** There is a single create
//!   (`funnelId` required, from the connection's `defaults` or `vendor_fields`) and nothing
//!   to list, read, close or delete. WhatsApp messages are addressed by phone numbers
//!   (`fromPhoneNumber` → `toPhoneNumber`), not by conversation, so a conversation ID
//!   carries the contact's WhatsApp number: it is the composite `[conversationId,
//!   toPhoneNumber]`, taken at creation from the WhatsApp session's address (else the
//!   contact's WhatsApp, else phone address). A message ID is `[messageId, conversationId,
//!   toPhoneNumber]`: the message's conversation is whatever conversation its ID was minted
//!   in. The vendor files a sent message under its current conversation with that number.
//! - **Sending** is free-form (`{fromPhoneNumber, toPhoneNumber, content, type}`, media by a
//!   `fileId`) or a template (`{…, templateName, languageCode,
//!   variables:[{value}]}`). `fromPhoneNumber` is the connection's WhatsApp business number
//!   (`defaults.fromPhoneNumber`, overridable by `vendor_fields`). There are no internal notes.
//!   The one file a WhatsApp message may carry (`attachments[0].data`) is uploaded first with
//!   UploadMedia's direct mode (`{fileName, contentType, content: base64, fromPhoneNumber}` →
//!   `{fileId, …}`), then sent as `{type: image|audio|video|document, fileId, content}`; a
//!   failed upload sends nothing. A file already in LlamadaPro goes by `vendor_fields.fileId`
//!   and `vendor_fields.type`.
//!
//! `vendor_fields` are checked against a short list per operation; an unknown one is a 400,
//! never silently dropped.

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::common::attachment::{self, AttachmentSupport};
use super::common::input::MAX_SAFE_INTEGER;
use super::common::typed_lookup::{object_body, opt_str, owned_text, text, Loose, Str, VendorJson};
use super::common::{
    bad_response, check_status, check_vendor_fields, cursor_text, ep, error_text, filter_via,
    int_field, join_name, keys, message_status, missing_field, no_such, non_empty, not_served,
    object_or_empty, op, owned_non_empty, phone, required_int, split_name, split_names, text_field,
    Mapper,
};
use super::{Adapter, CallContext, EndpointSpec, OperationSpec};
use crate::snapshot::routes::VendorRoutes;
// The upstream client's types.
use super::{VendorBody, VendorCall, VendorResponse};
use crate::api::ids::{keys_match, KeyGrammar, Kind, ObjectId};
use crate::api::model::{
    vendor_label, Assignee, Attachment, AttachmentFile, Channel, Contact, ContactCreate,
    ContactPatch, Conversation, ConversationCreate, ConversationStatus, Direction, Handle,
    HandleChannel, Message, MessageSend, MessageStatus, MessageType, NewContact, Sender,
    SenderType,
};
use crate::api::operation::{Operation::*, Vendor};
use crate::api::request::{ContactFilters, OperationRequest, Output, Page, Resource};
use crate::api::ApiError;

pub struct LlamadaPro;

const VENDOR: Vendor = Vendor::LlamadaPro;

/// `vendor_fields` each operation understands (the request's; connection `defaults` may
/// hold other vendors' keys and are not checked).
const CONTACT_VENDOR_FIELDS: &[&str] = &["nationalId", "companyPosition"];
/// `fromPhoneNumber` is not sent: it is the business number the conversation runs on (the
/// funnel's WhatsApp number), which the conversation ID then carries for every send.
const CONVERSATION_VENDOR_FIELDS: &[&str] =
    &["funnelId", "funnelStatusId", "userId", "fromPhoneNumber"];
const MESSAGE_VENDOR_FIELDS: &[&str] = &[
    "fromPhoneNumber",
    "userId",
    "fileId",
    "type",
    "languageCode",
];

/// Every LlamadaPro call the routes file may configure.
static ENDPOINTS: &[EndpointSpec] = &[
    ep("contacts.list", &[]),
    ep("contacts.search", &[]),
    ep("contacts.create", &[]),
    ep("contacts.get", &["id"]),
    ep("contacts.update", &["id"]),
    ep("contacts.delete", &["id"]),
    ep("conversations.create", &[]),
    ep("messages.get", &["message_id"]),
    ep("messages.send", &[]),
    ep("messages.send_template", &[]),
    ep("media.upload", &[]),
];

/// What the adapter serves, and the calls each operation needs. LlamadaPro publishes no way
/// to list, read, close or delete conversations, nor to list messages (read one with
/// GET /v1/messages/{id}): those operations are absent, so they answer 501 and capabilities
/// leave them out.
#[rustfmt::skip]
static OPERATIONS: &[OperationSpec] = &[
    op(ContactsList,        &["contacts.list"]).filters(&[
        filter_via("q", "contacts.search"),
        filter_via("email", "contacts.search"),
        filter_via("phone", "contacts.search"),
        filter_via("handle", "contacts.search"),
    ]),
    op(ContactsCreate,      &["contacts.create"]),
    op(ContactsGet,         &["contacts.get"]),
    op(ContactsUpdate,      &["contacts.get", "contacts.update"]),
    op(ContactsDelete,      &["contacts.delete"]),
    op(ConversationsCreate, &["conversations.create"]),
    op(MessagesGet,         &["messages.get"]),
    op(MessagesSend,        &["messages.send"]),
];

#[async_trait]
impl Adapter for LlamadaPro {
    /// Contacts and conversations have numeric ids; a conversation also carries the contact's
    /// WhatsApp number and, when known, the business number it runs on; a message its own
    /// (string) id before the conversation's keys.
    fn key_grammar(&self, kind: Kind) -> &'static [KeyGrammar] {
        use KeyGrammar::{Opaque, OptionalE164, PositiveInteger as N, E164};
        match kind {
            Kind::Contact => &[N],
            Kind::Conversation => &[N, E164, OptionalE164],
            Kind::Message => &[Opaque, N, E164, OptionalE164],
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
    /// One file per WhatsApp message, uploaded by UploadMedia's direct mode (the bytes: the
    /// gateway fetches no URL), then sent with the `fileId` it answers.
    fn attachments(&self, routes: &VendorRoutes) -> Option<AttachmentSupport> {
        routes.has("media.upload").then_some(AttachmentSupport {
            sources: &["data"],
            max_count: 1,
        })
    }
    /// A conversation cannot be created without a funnel, nor a WhatsApp message sent without
    /// the business number it leaves from.
    fn required_defaults(&self) -> &'static [&'static str] {
        &["funnelId", "fromPhoneNumber"]
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
                let data = fetch(ctx, "contacts.get", contact_call(key)).await?;
                let contact = translate_contact(&Mapper::new(ctx), &data[..])?;
                Ok(Output::Found(contact.into()))
            }
            OperationRequest::ContactsUpdate(id, patch) => update_contact(ctx, &id, &patch).await,
            OperationRequest::ContactsDelete(id) => {
                let key = contact_key(&id)?;
                let response = ctx.call("contacts.delete", contact_call(key)).await?;
                check_success(&response)?;
                Ok(Output::Deleted)
            }
            OperationRequest::ConversationsCreate(body, contact_id) => {
                create_conversation(ctx, &body, contact_id.as_ref()).await
            }
            OperationRequest::MessagesGet(id) => {
                let (message_id, conversation) = message_keys(&id)?;
                let data = fetch(
                    ctx,
                    "messages.get",
                    VendorCall::new().param("message_id", message_id),
                )
                .await?;
                let message = translate_message(&Mapper::new(ctx), &data[..], &conversation, None)?;
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

/// Make one call and check that the answer is a JSON object: its body, for a wire struct to
/// read from.
async fn fetch(
    ctx: &mut CallContext<'_>,
    endpoint: &'static str,
    call: VendorCall,
) -> Result<Bytes, ApiError> {
    let response = ctx.call(endpoint, call).await?;
    read_object(&response)?;
    Ok(response.body)
}

fn contact_call(id: &str) -> VendorCall {
    VendorCall::new().param("id", id)
}

async fn list_contacts(
    ctx: &mut CallContext<'_>,
    page: &Page,
    filters: &ContactFilters,
) -> Result<Output, ApiError> {
    let token = page_token(page)?;
    let filtered = filters.q.is_some()
        || filters.email.is_some()
        || filters.phone.is_some()
        || filters.handle.is_some();
    let (endpoint, call) = if filtered {
        let body = search_body(filters, page.limit, token.as_deref())?;
        if !ctx.connection.routes.has("contacts.search") {
            return Err(ApiError::unsupported_filter(
                "this connection has no contacts.search route, so contacts cannot be filtered",
            ));
        }
        (
            "contacts.search",
            VendorCall::new().body(VendorBody::json(&body)),
        )
    } else {
        let mut call = VendorCall::new().query("pageSize", page.limit.to_string());
        if let Some(token) = &token {
            call = call.query("pageToken", token.clone());
        }
        ("contacts.list", call)
    };
    let response = ctx.call(endpoint, call).await?;
    contacts_page(&Mapper::new(ctx), &response)
}

/// The answer of `contacts.list` or `contacts.search` as a page of normalized contacts. Also
/// the entry point of `vendors::bench_support`.
pub(super) fn contacts_page(
    mapper: &Mapper,
    response: &VendorResponse,
) -> Result<Output, ApiError> {
    contacts_from(mapper, read_object(response)?)
}

async fn create_contact(
    ctx: &mut CallContext<'_>,
    body: &ContactCreate,
) -> Result<Output, ApiError> {
    let request = contact_create_body(body)?;
    let data = fetch(
        ctx,
        "contacts.create",
        VendorCall::new().body(VendorBody::json(&request)),
    )
    .await?;
    let contact = translate_contact(&Mapper::new(ctx), &data[..])?;
    Ok(Output::Created(contact.into()))
}

async fn update_contact(
    ctx: &mut CallContext<'_>,
    id: &ObjectId,
    patch: &ContactPatch,
) -> Result<Output, ApiError> {
    let key = contact_key(id)?;
    check_contact_patch(patch)?;
    // addresses is one array: changing part of it means sending all of it.
    let current = if touches_addresses(patch) || is_empty_patch(patch) {
        let data = fetch(ctx, "contacts.get", contact_call(key)).await?;
        Some(data)
    } else {
        None
    };
    if is_empty_patch(patch) {
        // Nothing to change: answer the contact as it is.
        let data = current.unwrap_or_default();
        let contact = translate_contact(&Mapper::new(ctx), &data[..])?;
        return Ok(Output::Found(contact.into()));
    }
    let current = current
        .as_ref()
        .map(|c| parse_contact(&c[..]))
        .transpose()?;
    let request = contact_update_body(patch, current.as_ref())?;
    let data = fetch(
        ctx,
        "contacts.update",
        contact_call(key).body(VendorBody::json(&request)),
    )
    .await?;
    let contact = translate_contact(&Mapper::new(ctx), &data[..])?;
    Ok(Output::Found(contact.into()))
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
        CONVERSATION_VENDOR_FIELDS,
        "conversations",
    )?;
    let fields = &body.vendor_fields;
    let fields = ConversationFields {
        funnel_id: required_int(
            ctx,
            fields,
            "funnelId",
            "the funnel the conversation belongs to",
        )?,
        funnel_status_id: int_field("funnelStatusId", ctx.vendor_field("funnelStatusId", fields))?,
        user_id: int_field("userId", fields.get("userId"))?,
    };
    let from = business_number(body.vendor_fields.get("fromPhoneNumber"))?;
    check_conversation_create(body)?;

    // contact_id wins over contact when both are given: it names an existing contact.
    let (target, phone) = match (contact_id, &body.contact) {
        (Some(id), _) => {
            let key = contact_key(id)?;
            ctx.require_routes(
                ["contacts.get"],
                "start a conversation with a contact_id; pass contact: {name, phone}",
            )?;
            // The conversation ID needs the contact's WhatsApp number: learn it first, and
            // refuse before creating anything if there is none.
            let data = fetch(ctx, "contacts.get", contact_call(key)).await?;
            let phone = messaging_number(&parse_contact(&data[..])?).ok_or_else(|| {
                ApiError::invalid(format!(
                    "llamadapro contact {key} has no WhatsApp or phone number in E.164, and \
                     llamadapro conversations run on WhatsApp"
                ))
            })?;
            (ConversationContact::Existing(number_value(key)), phone)
        }
        (None, Some(contact)) => {
            let new = new_conversation_contact(contact)?;
            let phone = new.phones.first().cloned().unwrap_or_default();
            (ConversationContact::New(new), phone)
        }
        (None, None) => {
            return Err(ApiError::invalid(
                "llamadapro needs a contact: pass contact_id, or contact: {name, phone}",
            ))
        }
    };
    let request = conversation_create_body(&fields, target);
    let data = fetch(
        ctx,
        "conversations.create",
        VendorCall::new().body(VendorBody::json(&request)),
    )
    .await?;
    let conversation = translate_conversation(
        &Mapper::new(ctx),
        &data[..],
        Some(phone.as_str()),
        from.as_deref(),
    )?;
    Ok(Output::Created(conversation.into()))
}

/// `vendor_fields.fromPhoneNumber` of a conversation create: an E.164 business number, or
/// none.
fn business_number(value: Option<&Value>) -> Result<Option<String>, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_str()
            .and_then(|n| phone::e164(n, None))
            .map(Some)
            .ok_or_else(|| {
                ApiError::invalid(
                    "vendor_fields.fromPhoneNumber must be an E.164 number such as +56229145000",
                )
            }),
    }
}

async fn send_message(
    ctx: &mut CallContext<'_>,
    conversation_id: &ObjectId,
    body: &MessageSend,
) -> Result<Output, ApiError> {
    let conversation = conversation_keys(conversation_id)?;
    // The business number to send from: the request's, else the one the conversation runs on
    // (so the vendor files the message under it), else the connection's default.
    let from = match (
        body.vendor_fields.get("fromPhoneNumber"),
        &conversation.from,
    ) {
        (None, Some(number)) => Some(Value::String(number.clone())),
        _ => ctx
            .vendor_field("fromPhoneNumber", &body.vendor_fields)
            .cloned(),
    };
    let files = attachment::data_only(VENDOR, &body.files, 1)?;
    let mut planned = plan_message(body, &conversation, from.as_ref())?;
    let endpoint = planned.endpoint();
    match (files.first(), &mut planned) {
        (Some((file, bytes)), PlannedMessage::FreeForm(message, _)) => {
            if !ctx.connection.routes.has("media.upload") {
                return Err(attachment::refused(
                    VENDOR,
                    "this connection's routes have no media.upload call",
                ));
            }
            ctx.require_routes([endpoint], "send this message")?;
            // Upload first; a failed upload ends the send here, so no message goes out.
            let upload = upload_body(file, bytes, &message.from_phone_number);
            let uploaded = fetch(
                ctx,
                "media.upload",
                VendorCall::new().body(VendorBody::json(&upload)),
            )
            .await?;
            message.file_id = Some(uploaded_file_id(&uploaded)?);
        }
        _ => ctx.require_routes([endpoint], "send this message")?,
    }
    let data = fetch(
        ctx,
        endpoint,
        VendorCall::new().body(VendorBody::Json(planned.body())),
    )
    .await?;
    let message = translate_message(
        &Mapper::new(ctx),
        &data[..],
        &conversation,
        Some(planned.message_type()),
    )?;
    Ok(Output::Created(message.into()))
}

// ----- IDs and cursors -----------------------------------------------------------------------

/// A positive integer as LlamadaPro's ids render (no sign, no leading zero, fits a double).
fn is_id_number(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 16
        && key.bytes().all(|b| b.is_ascii_digit())
        && !key.starts_with('0')
        && key.parse::<f64>().is_ok_and(|n| n <= MAX_SAFE_INTEGER)
}

/// A contact ID carries LlamadaPro's numeric id; anything else is not one of ours (404, and
/// no vendor call).
fn contact_key(id: &ObjectId) -> Result<&str, ApiError> {
    let [key] = keys(&LlamadaPro, id)?;
    is_id_number(key).then_some(key).ok_or_else(|| no_such(id))
}

/// What a conversation ID carries: the funnel conversation id, the contact's WhatsApp number
/// (E.164), the `toPhoneNumber` of every message sent in it, and — when known — the business
/// number the conversation runs on, the `fromPhoneNumber` of those messages (LlamadaPro
/// files a send under the conversation of that pair of numbers).
#[derive(Debug, Clone, PartialEq, Eq)]
struct ConversationKeys {
    id: String,
    phone: String,
    from: Option<String>,
}

impl ConversationKeys {
    fn keys(&self) -> Vec<String> {
        let mut keys = vec![self.id.clone(), self.phone.clone()];
        keys.extend(self.from.clone());
        keys
    }
}

/// The conversation keys at the end of `id`, after `skip` keys of its own (its grammar
/// checked the numbers are E.164).
fn conversation_keys_of(id: &ObjectId, skip: usize) -> Result<ConversationKeys, ApiError> {
    if !keys_match(LlamadaPro.key_grammar(id.kind), &id.keys) {
        return Err(no_such(id));
    }
    match &id.keys[skip..] {
        [conversation, phone, from @ ..] if is_id_number(conversation) && from.len() <= 1 => {
            Ok(ConversationKeys {
                id: conversation.clone(),
                phone: phone.clone(),
                from: from.first().cloned(),
            })
        }
        _ => Err(no_such(id)),
    }
}

/// Layout `[conversationId, toPhoneNumber, fromPhoneNumber?]`.
fn conversation_keys(id: &ObjectId) -> Result<ConversationKeys, ApiError> {
    conversation_keys_of(id, 0)
}

/// Layout `[messageId, conversationId, toPhoneNumber, fromPhoneNumber?]`.
fn message_keys(id: &ObjectId) -> Result<(&str, ConversationKeys), ApiError> {
    let conversation = conversation_keys_of(id, 1)?;
    Ok((id.keys[0].as_str(), conversation))
}

/// The page token a list request asks for: none without a cursor, else the cursor's
/// `{"page_token": …}`.
fn page_token(page: &Page) -> Result<Option<String>, ApiError> {
    cursor_text(page, "page_token", "llamadapro page")
}

// ----- the wire format -----------------------------------------------------------------------
//
// Wire structs are read straight from the vendor's bytes and borrow their text from them
// (`Str`, see `common::typed_lookup`); ids are `Loose` (doubles, or strings from search) until
// `Loose::key` reads them. `raw` is built only when asked for.

/// A page: `{items, nextPageToken, totalCount}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WirePage<'a> {
    #[serde(borrow)]
    items: Vec<WireContact<'a>>,
    #[serde(borrow, default)]
    next_page_token: Option<Str<'a>>,
}

/// A contact, from `GET /contacts/{id}`, a list, a create/update answer, or search (whose
/// ids are strings).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireContact<'a> {
    #[serde(borrow, default)]
    id: Loose<'a>,
    #[serde(borrow, default)]
    first_name: Option<Str<'a>>,
    #[serde(borrow, default)]
    last_name: Option<Str<'a>>,
    /// Deprecated: the addresses array is the truth.
    #[serde(borrow, default)]
    email: Option<Str<'a>>,
    /// Deprecated: the addresses array is the truth.
    #[serde(borrow, default)]
    phone: Option<Str<'a>>,
    #[serde(default)]
    custom_fields: Option<Value>,
    #[serde(borrow, default)]
    addresses: Option<Vec<WireAddress<'a>>>,
    #[serde(borrow, default)]
    created_at: Option<Str<'a>>,
    #[serde(borrow, default)]
    updated_at: Option<Str<'a>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireAddress<'a> {
    #[serde(borrow, default)]
    id: Loose<'a>,
    #[serde(borrow, default)]
    channel_type: Option<Str<'a>>,
    #[serde(borrow, default)]
    address: Option<Str<'a>>,
}

/// A conversation as the single create answers it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireConversation<'a> {
    #[serde(borrow, default)]
    id: Loose<'a>,
    #[serde(borrow, default)]
    contact_id: Loose<'a>,
    #[serde(borrow, default)]
    user_id: Loose<'a>,
    #[serde(borrow, default)]
    funnel_status_id: Loose<'a>,
    #[serde(borrow, default)]
    archived_at: Option<Str<'a>>,
    #[serde(borrow, default)]
    created_at: Option<Str<'a>>,
    #[serde(borrow, default)]
    updated_at: Option<Str<'a>>,
    #[serde(borrow, default)]
    channel_sessions: Option<Vec<WireChannelSession<'a>>>,
    #[serde(borrow, default)]
    contacts: Option<Vec<WireContact<'a>>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireChannelSession<'a> {
    #[serde(borrow, default)]
    contact_address_id: Loose<'a>,
    #[serde(borrow, default)]
    channel_type: Option<Str<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireMessage<'a> {
    #[serde(borrow, default)]
    id: Loose<'a>,
    /// The funnel conversation the vendor filed the message under (it routes a send by phone
    /// numbers, so this may not be the conversation the request named).
    #[serde(borrow, default)]
    funnel_conversation_id: Loose<'a>,
    #[serde(borrow, default)]
    contact_id: Loose<'a>,
    #[serde(borrow, default)]
    user_id: Loose<'a>,
    /// Not in the documented answer, but the send calls take it: read when present.
    #[serde(rename = "type", borrow, default)]
    kind: Option<Str<'a>>,
    #[serde(borrow, default)]
    content: Option<Str<'a>>,
    #[serde(borrow, default)]
    status: Option<Str<'a>>,
    #[serde(borrow, default)]
    direction: Option<Str<'a>>,
    #[serde(borrow, default)]
    sender: Option<WireParty<'a>>,
    #[serde(borrow, default)]
    recipient: Option<WireParty<'a>>,
    #[serde(borrow, default)]
    attachments: Option<Vec<WireAttachment<'a>>>,
    #[serde(borrow, default)]
    created_at: Option<Str<'a>>,
    #[serde(borrow, default)]
    updated_at: Option<Str<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireParty<'a> {
    #[serde(borrow, default)]
    provider_id: Option<Str<'a>>,
    /// The party's phone number (WhatsApp: the business's or the contact's).
    #[serde(borrow, default)]
    address: Option<Str<'a>>,
    #[serde(borrow, default)]
    role: Option<Str<'a>>,
    #[serde(borrow, default)]
    display_name: Option<Str<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireAttachment<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Str<'a>>,
    #[serde(borrow, default)]
    url: Option<Str<'a>>,
    #[serde(borrow, default)]
    unsigned_url: Option<Str<'a>>,
    /// Open dictionary; a file uploaded with UploadMedia may be described here (name, size).
    #[serde(default)]
    metadata: Option<Map<String, Value>>,
}

/// The vendor's error text from a non-2xx body (`{code, error, message, details}`): `message`
/// (else `error`), plus the field messages of `details`, TSOA's validation report
/// (`{"body.field": {message, value}}`) on a 400, when it has any.
fn error_message(body: &[u8]) -> Option<String> {
    let text = error_text(body, &["message", "error"])?;
    let details = serde_json::from_slice::<Value>(body).ok();
    let fields = details_summary(details.as_ref().and_then(|d| d.get("details")));
    Some(if fields.is_empty() {
        text
    } else {
        format!("{text} ({fields})")
    })
}

fn details_summary(details: Option<&Value>) -> String {
    let Some(Value::Object(map)) = details else {
        return String::new();
    };
    map.iter()
        .filter_map(|(field, detail)| {
            let message = match detail {
                Value::String(s) => Some(s.as_str()),
                Value::Object(o) => o.get("message").and_then(Value::as_str),
                _ => None,
            };
            message.map(|m| format!("{field}: {m}"))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A non-2xx → the error table.
fn check_success(response: &VendorResponse) -> Result<(), ApiError> {
    check_status(VENDOR, response, error_message)
}

/// Check a vendor answer: non-2xx → the error table; a 2xx must be a JSON object, whose
/// bytes the answer's wire struct then reads.
fn read_object(response: &VendorResponse) -> Result<&[u8], ApiError> {
    check_success(response)?;
    object_body(VENDOR, &response.body)
}

fn parse_contact<'a>(source: impl VendorJson<'a>) -> Result<WireContact<'a>, ApiError> {
    source.wire(VENDOR, "contact")
}

/// An id that must be there.
fn required_key(value: &Loose<'_>, what: &str) -> Result<String, ApiError> {
    value
        .key()
        .ok_or_else(|| bad_response(VENDOR, format!("{what} has no numeric id (got {value})")))
}

/// A numeric key back as the JSON number LlamadaPro expects in bodies.
fn number_value(key: &str) -> Value {
    key.parse::<u64>().map(Value::from).unwrap_or(Value::Null)
}

// ----- vendor → normalized -------------------------------------------------------------------

/// `{items, nextPageToken, totalCount}` of contacts, translated item by item; the next page
/// exists while the vendor hands out a token. `raw` of each item, when asked for, comes from
/// one tree of the whole answer, built only then.
fn contacts_from<'a>(mapper: &Mapper, source: impl VendorJson<'a>) -> Result<Output, ApiError> {
    let page: WirePage<'_> = source.wire(VENDOR, "list")?;
    let mut raw_items = mapper.raw_with(|| source.tree()).and_then(|mut tree| {
        match tree.get_mut("items").map(Value::take) {
            Some(Value::Array(items)) => Some(items.into_iter()),
            _ => None,
        }
    });
    let mut items = Vec::with_capacity(page.items.len());
    for wire in page.items {
        let raw = raw_items.as_mut().and_then(Iterator::next);
        items.push(Resource::from(contact_from_wire(mapper, wire, raw)?));
    }
    let next = text(&page.next_page_token)
        .filter(|_| !items.is_empty())
        .map(|token| json!({ "page_token": token }));
    Ok(Output::List { data: items, next })
}

/// The normalized channels of a contact: EMAIL → emails; PHONE → phones; WHATSAPP → phones
/// and a `whatsapp` handle; an unknown channel → an `other` handle. The deprecated top-level
/// `email`/`phone` count too when the addresses do not already hold them.
#[derive(Debug, Default, PartialEq)]
struct Channels {
    emails: Vec<String>,
    phones: Vec<String>,
    handles: Vec<Handle>,
}

fn push_unique(list: &mut Vec<String>, value: String, same: impl Fn(&str, &str) -> bool) {
    if !list.iter().any(|v| same(v, &value)) {
        list.push(value);
    }
}

fn same_email(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

fn same_text(a: &str, b: &str) -> bool {
    a == b
}

fn channels_of(wire: &WireContact<'_>) -> Channels {
    let mut channels = Channels::default();
    for address in wire.addresses.iter().flatten() {
        let Some(value) = text(&address.address) else {
            continue;
        };
        let kind = opt_str(&address.channel_type).unwrap_or_default();
        if kind.eq_ignore_ascii_case("EMAIL") {
            push_unique(&mut channels.emails, value.to_owned(), same_email);
        } else if kind.eq_ignore_ascii_case("PHONE") {
            push_unique(
                &mut channels.phones,
                phone::normalize(value, None),
                same_text,
            );
        } else if kind.eq_ignore_ascii_case("WHATSAPP") {
            let number = phone::normalize_whatsapp(value);
            push_unique(&mut channels.phones, number.clone(), same_text);
            let handle = Handle {
                channel: HandleChannel::Whatsapp,
                value: number,
            };
            if !channels.handles.contains(&handle) {
                channels.handles.push(handle);
            }
        } else {
            let handle = Handle {
                channel: HandleChannel::Other,
                value: value.to_owned(),
            };
            if !channels.handles.contains(&handle) {
                channels.handles.push(handle);
            }
        }
    }
    if let Some(email) = text(&wire.email) {
        push_unique(&mut channels.emails, email.to_owned(), same_email);
    }
    if let Some(phone) = text(&wire.phone) {
        push_unique(
            &mut channels.phones,
            phone::normalize(phone, None),
            same_text,
        );
    }
    channels
}

/// The number to send a contact WhatsApp messages at: its WhatsApp address, else a phone
/// address (WhatsApp runs on phone numbers), else the deprecated phone — in E.164 or not at
/// all.
fn messaging_number(wire: &WireContact<'_>) -> Option<String> {
    let addresses = wire.addresses.as_deref().unwrap_or_default();
    let of_kind = |kind: &str, whatsapp: bool| {
        addresses
            .iter()
            .filter(|a| opt_str(&a.channel_type).is_some_and(|t| t.eq_ignore_ascii_case(kind)))
            .filter_map(|a| text(&a.address))
            .find_map(|a| {
                if whatsapp {
                    phone::whatsapp_e164(a)
                } else {
                    phone::e164(a, None)
                }
            })
    };
    of_kind("WHATSAPP", true)
        .or_else(|| of_kind("PHONE", false))
        .or_else(|| text(&wire.phone).and_then(|p| phone::e164(p, None)))
}

/// A LlamadaPro contact as a normalized contact.
pub(super) fn translate_contact<'a>(
    mapper: &Mapper,
    source: impl VendorJson<'a>,
) -> Result<Contact, ApiError> {
    let wire = parse_contact(source)?;
    let raw = mapper.raw_with(|| source.tree());
    contact_from_wire(mapper, wire, raw)
}

fn contact_from_wire(
    mapper: &Mapper,
    mut wire: WireContact<'_>,
    raw: Option<Value>,
) -> Result<Contact, ApiError> {
    let remote_id = required_key(&wire.id, "contact")?;
    let first_name = owned_text(&wire.first_name);
    let last_name = owned_text(&wire.last_name);
    let Channels {
        emails,
        phones,
        handles,
    } = channels_of(&wire);
    // Moved out of the wire struct, not copied: it is the caller's data, passed through whole.
    let custom_fields = object_or_empty(wire.custom_fields.take());
    Ok(Contact {
        id: mapper.id_of(Kind::Contact, &[&remote_id]),
        connection: mapper.connection.clone(),
        vendor: vendor_label(VENDOR),
        name: join_name(first_name.as_deref(), last_name.as_deref()),
        remote_id,
        created_at: owned_text(&wire.created_at),
        updated_at: owned_text(&wire.updated_at),
        first_name,
        last_name,
        emails,
        phones,
        handles,
        // contactCompanyId is a reference, not a name; LlamadaPro has no avatar.
        company: None,
        avatar_url: None,
        custom_fields,
        raw,
    })
}

fn channel_from_vendor(kind: &str) -> Channel {
    match kind.to_ascii_uppercase().as_str() {
        "WHATSAPP" => Channel::Whatsapp,
        "EMAIL" => Channel::Email,
        "PHONE" => Channel::Voice,
        _ => Channel::Other,
    }
}

/// A created conversation as a normalized conversation. Its ID needs the contact's WhatsApp
/// number: the number of the WhatsApp session's contact address when the answer has one,
/// else `known` (what the caller's request named), else the contact's own addresses. `from`
/// is the business number the conversation runs on, when the request named one: the ID
/// carries it, so every message sent in the conversation leaves from it.
fn translate_conversation<'a>(
    mapper: &Mapper,
    source: impl VendorJson<'a>,
    known: Option<&str>,
    from: Option<&str>,
) -> Result<Conversation, ApiError> {
    let wire: WireConversation<'_> = source.wire(VENDOR, "conversation")?;
    let remote_id = required_key(&wire.id, "conversation")?;
    let contact_key = wire.contact_id.key();
    let contacts = wire.contacts.as_deref().unwrap_or_default();
    let sessions = wire.channel_sessions.as_deref().unwrap_or_default();
    let whatsapp_session = sessions
        .iter()
        .find(|s| opt_str(&s.channel_type).is_some_and(|t| t.eq_ignore_ascii_case("WHATSAPP")));
    let session_number = whatsapp_session
        .and_then(|s| s.contact_address_id.key())
        .and_then(|address_id| {
            contacts
                .iter()
                .flat_map(|c| c.addresses.iter().flatten())
                .find(|a| a.id.key().as_deref() == Some(address_id.as_str()))
        })
        .and_then(|a| text(&a.address))
        .and_then(phone::whatsapp_e164);
    let own_contact = contacts
        .iter()
        .find(|c| contact_key.is_some() && c.id.key() == contact_key)
        .or(contacts.first());
    let phone = session_number
        .or_else(|| known.and_then(|n| phone::e164(n, None)))
        .or_else(|| own_contact.and_then(messaging_number))
        .ok_or_else(|| {
            bad_response(
                VENDOR,
                format!("conversation {remote_id} has no WhatsApp or phone number"),
            )
        })?;
    let channel = whatsapp_session
        .and_then(|s| opt_str(&s.channel_type))
        .or_else(|| sessions.first().and_then(|s| opt_str(&s.channel_type)))
        .map(channel_from_vendor);
    let archived = text(&wire.archived_at).is_some();
    let keys = ConversationKeys {
        id: remote_id.clone(),
        phone,
        from: from.and_then(|n| phone::e164(n, None)),
    };
    Ok(Conversation {
        id: mapper.id(Kind::Conversation, keys.keys()),
        connection: mapper.connection.clone(),
        vendor: vendor_label(VENDOR),
        remote_id,
        created_at: owned_text(&wire.created_at),
        updated_at: owned_text(&wire.updated_at),
        contact_id: contact_key.map(|k| mapper.id(Kind::Contact, vec![k])),
        channel,
        status: if archived {
            ConversationStatus::Closed
        } else {
            ConversationStatus::Open
        },
        // LlamadaPro's status is a funnel stage, by id.
        vendor_status: wire.funnel_status_id.key(),
        subject: None,
        assignee: wire.user_id.key().map(|user| Assignee {
            user_id: Some(user),
            team_id: None,
        }),
        priority: None,
        tags: Vec::new(),
        last_message_at: None,
        raw: mapper.raw_with(|| source.tree()),
    })
}

/// WhatsApp's message and attachment types, as normalized types.
fn type_from_vendor(kind: &str) -> MessageType {
    match kind.to_ascii_lowercase().as_str() {
        "text" => MessageType::Text,
        "image" | "sticker" => MessageType::Image,
        "audio" | "voice" => MessageType::Audio,
        "video" => MessageType::Video,
        "document" | "file" => MessageType::File,
        "location" => MessageType::Location,
        "template" => MessageType::Template,
        _ => MessageType::Other,
    }
}

/// LlamadaPro's (WhatsApp's) delivery words besides the normalized ones.
const MESSAGE_STATUS_WORDS: &[(&str, MessageStatus)] = &[
    ("queued", MessageStatus::Pending),
    ("accepted", MessageStatus::Pending),
    ("error", MessageStatus::Failed),
    ("undelivered", MessageStatus::Failed),
];

/// Who sent a message. Inbound messages come from the contact. Outbound ones from a user
/// (agent), an AI employee (bot) or the system, by `sender.role`; the role vocabulary is not
/// published beyond `user`, so anything else outbound counts as an agent.
fn sender_of(wire: &WireMessage<'_>, direction: Direction) -> Sender {
    let party = wire.sender.as_ref();
    let name = party.and_then(|p| owned_text(&p.display_name));
    if direction == Direction::Inbound {
        return Sender {
            type_: SenderType::Contact,
            id: wire.contact_id.key(),
            name,
        };
    }
    let role = party
        .and_then(|p| opt_str(&p.role))
        .unwrap_or_default()
        .to_ascii_lowercase();
    let type_ = match role.as_str() {
        "ai_employee" | "ai" | "assistant" | "bot" => SenderType::Bot,
        "system" => SenderType::System,
        _ => SenderType::Agent,
    };
    let id = match type_ {
        SenderType::Agent => wire
            .user_id
            .key()
            .or_else(|| wire.user_id.text().map(str::to_owned)),
        _ => party.and_then(|p| owned_text(&p.provider_id)),
    };
    Sender { type_, id, name }
}

/// The conversation a message belongs to: the one the vendor filed it under
/// (`funnelConversationId`). LlamadaPro routes a send by phone numbers, so that may not be
/// `asked`, the conversation the request named; when it is, the request's keys are kept as
/// they are (the caller's ID). When it is not, the keys come from the answer: the contact's
/// number and the business number are the message's two parties (which is which by
/// `direction`), each falling back to `asked`'s.
fn message_conversation(
    wire: &WireMessage<'_>,
    direction: Direction,
    asked: &ConversationKeys,
) -> ConversationKeys {
    let Some(id) = wire.funnel_conversation_id.key() else {
        return asked.clone();
    };
    if id == asked.id {
        return asked.clone();
    }
    let number = |party: &Option<WireParty<'_>>| {
        party
            .as_ref()
            .and_then(|p| text(&p.address))
            .and_then(phone::whatsapp_e164)
    };
    let (contact, business) = match direction {
        Direction::Inbound => (&wire.sender, &wire.recipient),
        Direction::Outbound => (&wire.recipient, &wire.sender),
    };
    ConversationKeys {
        id,
        phone: number(contact).unwrap_or_else(|| asked.phone.clone()),
        from: number(business).or_else(|| asked.from.clone()),
    }
}

/// A LlamadaPro message as a normalized message, in the conversation the vendor filed it
/// under ([`message_conversation`]; `asked` is the one the request named). `sent_as` is the
/// type the adapter sent it as (the answer does not say).
fn translate_message<'a>(
    mapper: &Mapper,
    source: impl VendorJson<'a>,
    asked: &ConversationKeys,
    sent_as: Option<MessageType>,
) -> Result<Message, ApiError> {
    let wire: WireMessage<'_> = source.wire(VENDOR, "message")?;
    let remote_id = wire
        .id
        .text()
        .map(str::to_owned)
        .ok_or_else(|| bad_response(VENDOR, "message has no string id"))?;
    let from_contact = wire
        .sender
        .as_ref()
        .and_then(|s| opt_str(&s.role))
        .is_some_and(|r| r.eq_ignore_ascii_case("contact"));
    let direction = match opt_str(&wire.direction)
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("inbound") => Direction::Inbound,
        Some("outbound") => Direction::Outbound,
        None if from_contact => Direction::Inbound,
        None => Direction::Outbound,
        Some(other) => {
            return Err(bad_response(
                VENDOR,
                format!("message direction {other:?} is neither inbound nor outbound"),
            ))
        }
    };
    let attachments: Vec<Attachment> = wire
        .attachments
        .iter()
        .flatten()
        .map(|a| Attachment {
            type_: opt_str(&a.kind)
                .map(type_from_vendor)
                .unwrap_or(MessageType::File),
            url: owned_text(&a.url).or_else(|| owned_text(&a.unsigned_url)),
            name: attachment_name(a.metadata.as_ref()),
            size: attachment_size(a.metadata.as_ref()),
        })
        .collect();
    let type_ = sent_as
        .or_else(|| opt_str(&wire.kind).map(type_from_vendor))
        .or_else(|| attachments.first().map(|a| a.type_))
        .unwrap_or(MessageType::Text);
    let conversation = message_conversation(&wire, direction, asked);
    let mut keys = vec![remote_id.clone()];
    keys.extend(conversation.keys());
    Ok(Message {
        id: mapper.id(Kind::Message, keys),
        connection: mapper.connection.clone(),
        vendor: vendor_label(VENDOR),
        remote_id,
        created_at: owned_text(&wire.created_at),
        updated_at: owned_text(&wire.updated_at),
        conversation_id: mapper.id(Kind::Conversation, conversation.keys()),
        direction,
        sender: sender_of(&wire, direction),
        type_,
        text: opt_str(&wire.content)
            .filter(|c| !c.trim().is_empty())
            .map(str::to_owned),
        html: None,
        attachments,
        private: false,
        status: message_status(opt_str(&wire.status), MESSAGE_STATUS_WORDS),
        raw: mapper.raw_with(|| source.tree()),
    })
}

// ----- normalized → vendor -------------------------------------------------------------------

/// One entry of `addresses` in a create or update body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
struct AddressWrite {
    channel_type: String,
    address: String,
}

impl AddressWrite {
    fn new(channel_type: impl Into<String>, address: impl Into<String>) -> Self {
        AddressWrite {
            channel_type: channel_type.into(),
            address: address.into(),
        }
    }
}

fn valid_email(email: &str) -> Option<String> {
    let email = email.trim();
    let (local, domain) = email.split_once('@')?;
    (!local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(char::is_whitespace))
    .then(|| email.to_owned())
}

fn checked_emails(emails: &[String]) -> Result<Vec<String>, ApiError> {
    let mut out = Vec::new();
    for (i, email) in emails.iter().enumerate() {
        let email = valid_email(email)
            .ok_or_else(|| ApiError::invalid(format!("emails[{i}] is not an email address")))?;
        push_unique(&mut out, email, same_email);
    }
    Ok(out)
}

fn checked_phones(phones: &[String]) -> Result<Vec<String>, ApiError> {
    let mut out = Vec::new();
    for (i, phone) in phones.iter().enumerate() {
        let phone = phone::e164(phone, None).ok_or_else(|| {
            ApiError::invalid(format!(
                "phones[{i}] must be an E.164 number such as +56912345678 (llamadapro stores \
                 international numbers)"
            ))
        })?;
        push_unique(&mut out, phone, same_text);
    }
    Ok(out)
}

/// WhatsApp numbers from `handles`: LlamadaPro's only channel identity. Bare digits are read as
/// the international number a WhatsApp id is.
fn checked_whatsapp(handles: &[Handle]) -> Result<Vec<String>, ApiError> {
    let mut out = Vec::new();
    for (i, handle) in handles.iter().enumerate() {
        if handle.channel != HandleChannel::Whatsapp {
            return Err(ApiError::invalid(format!(
                "handles[{i}]: llamadapro contacts have whatsapp handles only (emails and phone \
                 numbers go in emails and phones)"
            )));
        }
        let number = phone::whatsapp_e164(&handle.value).ok_or_else(|| {
            ApiError::invalid(format!(
                "handles[{i}]: a whatsapp handle is the E.164 number, e.g. +56912345678"
            ))
        })?;
        push_unique(&mut out, number, same_text);
    }
    Ok(out)
}

/// Addresses for a new contact: WhatsApp numbers as WHATSAPP, the other phones as PHONE (a
/// number that is also a WhatsApp handle is stored once, as WHATSAPP, which reads back as
/// both), emails as EMAIL.
fn new_addresses(emails: &[String], phones: &[String], whatsapp: &[String]) -> Vec<AddressWrite> {
    whatsapp
        .iter()
        .map(|n| AddressWrite::new("WHATSAPP", n.clone()))
        .chain(
            phones
                .iter()
                .filter(|p| !whatsapp.contains(p))
                .map(|p| AddressWrite::new("PHONE", p.clone())),
        )
        .chain(emails.iter().map(|e| AddressWrite::new("EMAIL", e.clone())))
        .collect()
}

/// The body of `POST /contacts` and `PUT /contacts/{id}`. Absent fields are not sent (the
/// update is partial); `Some(Value::Null)` clears one.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
struct ContactWrite {
    #[serde(skip_serializing_if = "Option::is_none")]
    first_name: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_name: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    addresses: Option<Vec<AddressWrite>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    custom_fields: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    national_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    company_position: Option<String>,
    /// Deprecated; only ever sent as `null`, to clear a copy the new addresses drop.
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<Value>,
    /// Deprecated; only ever sent as `null`, to clear a copy the new addresses drop.
    #[serde(skip_serializing_if = "Option::is_none")]
    phone: Option<Value>,
}

/// A name for the body: trimmed text, or `null` to clear it.
fn name_value(name: String) -> Value {
    if name.is_empty() {
        Value::Null
    } else {
        Value::String(name)
    }
}

fn contact_vendor_fields(
    fields: &Map<String, Value>,
) -> Result<(Option<String>, Option<String>), ApiError> {
    check_vendor_fields(VENDOR, fields, CONTACT_VENDOR_FIELDS, "contacts")?;
    Ok((
        text_field("nationalId", fields.get("nationalId"))?,
        text_field("companyPosition", fields.get("companyPosition"))?,
    ))
}

fn refuse_company_and_avatar(company: Option<&str>, avatar: Option<&str>) -> Result<(), ApiError> {
    if company.is_some() {
        return Err(ApiError::unsupported_operation(
            "llamadapro links contacts to companies by id, not by name: company cannot be set",
        ));
    }
    if avatar.is_some() {
        return Err(ApiError::unsupported_operation(
            "llamadapro contacts have no avatar: avatar_url cannot be set",
        ));
    }
    Ok(())
}

/// The body of `POST /contacts`.
fn contact_create_body(body: &ContactCreate) -> Result<ContactWrite, ApiError> {
    refuse_company_and_avatar(body.company.as_deref(), body.avatar_url.as_deref())?;
    let (national_id, company_position) = contact_vendor_fields(&body.vendor_fields)?;
    let emails = checked_emails(&body.emails)?;
    let phones = checked_phones(&body.phones)?;
    let whatsapp = checked_whatsapp(&body.handles)?;
    let (first, last) = split_names(
        body.name.as_deref(),
        body.first_name.as_deref(),
        body.last_name.as_deref(),
    );
    let addresses = new_addresses(&emails, &phones, &whatsapp);
    Ok(ContactWrite {
        first_name: first.filter(|f| !f.is_empty()).map(Value::String),
        last_name: last.filter(|l| !l.is_empty()).map(Value::String),
        addresses: (!addresses.is_empty()).then_some(addresses),
        custom_fields: (!body.custom_fields.is_empty()).then(|| body.custom_fields.clone()),
        national_id,
        company_position,
        email: None,
        phone: None,
    })
}

fn touches_addresses(patch: &ContactPatch) -> bool {
    patch.emails.is_some() || patch.phones.is_some() || patch.handles.is_some()
}

fn is_empty_patch(patch: &ContactPatch) -> bool {
    patch.name.is_none()
        && patch.first_name.is_none()
        && patch.last_name.is_none()
        && !touches_addresses(patch)
        && patch.custom_fields.is_none()
        && patch.vendor_fields.is_empty()
}

/// What a contact PATCH asks that LlamadaPro cannot store, refused before any vendor call.
fn check_contact_patch(patch: &ContactPatch) -> Result<(), ApiError> {
    refuse_company_and_avatar(patch.company.as_deref(), patch.avatar_url.as_deref())?;
    contact_vendor_fields(&patch.vendor_fields)?;
    checked_emails(patch.emails.as_deref().unwrap_or_default())?;
    checked_phones(patch.phones.as_deref().unwrap_or_default())?;
    checked_whatsapp(patch.handles.as_deref().unwrap_or_default())?;
    Ok(())
}

/// The contact's addresses after a PATCH of emails, phones or handles, as the full list
/// `PUT` needs (None when the patch leaves them alone):
///
/// - `emails` replaces the EMAIL addresses;
/// - `handles` replaces the WHATSAPP addresses; without it, `phones` keeps only the WhatsApp
///   numbers it still lists (dropping a number from phones drops its WhatsApp address too);
/// - `phones` replaces the PHONE addresses (minus numbers that are WhatsApp addresses);
/// - channels the normalized API has no word for are kept as they are.
fn merged_addresses(
    current: &WireContact,
    patch: &ContactPatch,
) -> Result<Option<Vec<AddressWrite>>, ApiError> {
    if !touches_addresses(patch) {
        return Ok(None);
    }
    let addresses = current.addresses.as_deref().unwrap_or_default();
    let of_kind = |kind: &str| -> Vec<&str> {
        addresses
            .iter()
            .filter(|a| {
                a.channel_type
                    .as_deref()
                    .is_some_and(|t| t.eq_ignore_ascii_case(kind))
            })
            .filter_map(|a| non_empty(a.address.as_deref()))
            .collect()
    };
    let new_phones = patch.phones.as_deref().map(checked_phones).transpose()?;
    let whatsapp: Vec<String> = match &patch.handles {
        Some(handles) => checked_whatsapp(handles)?,
        None => {
            let mut kept = Vec::new();
            for number in of_kind("WHATSAPP") {
                let normalized = phone::normalize_whatsapp(number);
                if new_phones.as_ref().is_none_or(|p| p.contains(&normalized)) {
                    push_unique(&mut kept, normalized, same_text);
                }
            }
            kept
        }
    };
    let phones: Vec<String> = match &new_phones {
        Some(phones) => phones.clone(),
        None => of_kind("PHONE")
            .into_iter()
            .map(|p| {
                // Keep a stored number as stored unless it is already a WhatsApp address.
                let normalized = phone::normalize(p, None);
                if whatsapp.contains(&normalized) {
                    normalized
                } else {
                    p.to_owned()
                }
            })
            .collect(),
    };
    let emails: Vec<String> = match &patch.emails {
        Some(emails) => checked_emails(emails)?,
        None => of_kind("EMAIL").into_iter().map(str::to_owned).collect(),
    };
    let mut list = new_addresses(&emails, &phones, &whatsapp);
    list.extend(addresses.iter().filter_map(|a| {
        let kind = non_empty(a.channel_type.as_deref())?;
        let known = ["WHATSAPP", "PHONE", "EMAIL"]
            .iter()
            .any(|k| k.eq_ignore_ascii_case(kind));
        let value = non_empty(a.address.as_deref())?;
        (!known).then(|| AddressWrite::new(kind, value))
    }));
    Ok(Some(list))
}

/// The body of `PUT /contacts/{id}` (partial). `current` is the contact as LlamadaPro has it,
/// needed when the patch changes addresses.
fn contact_update_body(
    patch: &ContactPatch,
    current: Option<&WireContact>,
) -> Result<ContactWrite, ApiError> {
    check_contact_patch(patch)?;
    let (national_id, company_position) = contact_vendor_fields(&patch.vendor_fields)?;
    let (first, last) = split_names(
        patch.name.as_deref(),
        patch.first_name.as_deref(),
        patch.last_name.as_deref(),
    );
    let addresses = match current {
        Some(current) => merged_addresses(current, patch)?,
        None if touches_addresses(patch) => {
            return Err(ApiError::internal(
                "changing llamadapro addresses needs the current contact",
            ))
        }
        None => None,
    };
    // A deprecated top-level copy the new addresses no longer hold would keep showing up.
    let mut email = None;
    let mut phone = None;
    if let (Some(current), Some(list)) = (current, &addresses) {
        if let Some(old) = non_empty(current.email.as_deref()) {
            if patch.emails.is_some()
                && !list
                    .iter()
                    .any(|a| a.channel_type == "EMAIL" && same_email(&a.address, old))
            {
                email = Some(Value::Null);
            }
        }
        if let Some(old) = non_empty(current.phone.as_deref()) {
            let old = phone::normalize(old, None);
            if (patch.phones.is_some() || patch.handles.is_some())
                && !list
                    .iter()
                    .any(|a| a.channel_type != "EMAIL" && phone::normalize(&a.address, None) == old)
            {
                phone = Some(Value::Null);
            }
        }
    }
    Ok(ContactWrite {
        first_name: first.map(name_value),
        last_name: last.map(name_value),
        addresses,
        custom_fields: patch.custom_fields.clone(),
        national_id,
        company_position,
        email,
        phone,
    })
}

/// Vendor fields of a conversation create, resolved from `vendor_fields` and connection
/// defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ConversationFields {
    funnel_id: i64,
    funnel_status_id: Option<i64>,
    user_id: Option<i64>,
}

/// `contact` of a conversation create: LlamadaPro creates it, or matches an existing contact
/// by its addresses and updates it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
struct ConversationNewContact {
    #[serde(skip_serializing_if = "Option::is_none")]
    first_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_name: Option<String>,
    phones: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    emails: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum ConversationContact {
    Existing(Value),
    New(ConversationNewContact),
}

/// What a conversation create asks that LlamadaPro cannot do, refused before any vendor call.
fn check_conversation_create(body: &ConversationCreate) -> Result<(), ApiError> {
    if body.channel.is_some_and(|c| c != Channel::Whatsapp) {
        return Err(ApiError::invalid(
            "llamadapro conversations run on WhatsApp; channel must be whatsapp or absent",
        ));
    }
    if body.subject.is_some() {
        return Err(ApiError::unsupported_operation(
            "llamadapro conversations have no subject",
        ));
    }
    if body.text.is_some() {
        return Err(ApiError::unsupported_operation(
            "llamadapro creates a conversation without a message; send the first one with \
             POST /v1/messages (outside WhatsApp's 24-hour window it must be a template)",
        ));
    }
    Ok(())
}

/// `contact: {name, email, phone}` as LlamadaPro's contact create params. The phone is
/// required: it is where the conversation's WhatsApp messages go.
fn new_conversation_contact(contact: &NewContact) -> Result<ConversationNewContact, ApiError> {
    let phone = non_empty(contact.phone.as_deref()).ok_or_else(|| {
        ApiError::invalid(
            "llamadapro conversations run on WhatsApp: contact.phone (E.164) is required",
        )
    })?;
    let phone = phone::e164(phone, None).ok_or_else(|| {
        ApiError::invalid("contact.phone must be an E.164 number such as +56912345678")
    })?;
    let email = match non_empty(contact.email.as_deref()) {
        Some(email) => Some(
            valid_email(email)
                .ok_or_else(|| ApiError::invalid("contact.email is not an email address"))?,
        ),
        None => None,
    };
    let (first, last) = match non_empty(contact.name.as_deref()) {
        Some(name) => {
            let (f, l) = split_name(name);
            (Some(f), (!l.is_empty()).then_some(l))
        }
        None => (None, None),
    };
    Ok(ConversationNewContact {
        first_name: first,
        last_name: last,
        phones: vec![phone],
        emails: email.into_iter().collect(),
    })
}

/// The JSON body of the single conversation create.
fn conversation_create_body(fields: &ConversationFields, contact: ConversationContact) -> Value {
    let mut body = Map::new();
    body.insert("funnelId".into(), fields.funnel_id.into());
    if let Some(status) = fields.funnel_status_id {
        body.insert("funnelStatusId".into(), status.into());
    }
    if let Some(user) = fields.user_id {
        body.insert("userId".into(), user.into());
    }
    match contact {
        ConversationContact::Existing(id) => {
            body.insert("contactId".into(), id);
        }
        ConversationContact::New(contact) => {
            body.insert("contact".into(), json!(contact));
        }
    }
    Value::Object(body)
}

/// `POST …/whatsapp/messages`: a free-form message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
struct FreeFormMessage {
    from_phone_number: String,
    to_phone_number: String,
    content: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    file_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct TemplateVariable {
    value: String,
}

/// `POST …/whatsapp/messages/template`: a template message (simple `variables` form).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
struct TemplateMessage {
    from_phone_number: String,
    to_phone_number: String,
    template_name: String,
    language_code: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    variables: Vec<TemplateVariable>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PlannedMessage {
    FreeForm(FreeFormMessage, MessageType),
    Template(TemplateMessage),
}

impl PlannedMessage {
    fn endpoint(&self) -> &'static str {
        match self {
            PlannedMessage::FreeForm(..) => "messages.send",
            PlannedMessage::Template(_) => "messages.send_template",
        }
    }

    fn body(&self) -> Vec<u8> {
        let value = match self {
            PlannedMessage::FreeForm(m, _) => json!(m),
            PlannedMessage::Template(m) => json!(m),
        };
        value.to_string().into_bytes()
    }

    fn message_type(&self) -> MessageType {
        match self {
            PlannedMessage::FreeForm(_, kind) => *kind,
            PlannedMessage::Template(_) => MessageType::Template,
        }
    }
}

/// An attachment's file name from its `metadata`, when the vendor put one there (the
/// document leaves `metadata` open: `fileName`, `filename` and `name` are read).
fn attachment_name(metadata: Option<&Map<String, Value>>) -> Option<String> {
    let metadata = metadata?;
    ["fileName", "filename", "name"]
        .iter()
        .find_map(|k| owned_non_empty(metadata.get(*k).and_then(Value::as_str)))
}

/// An attachment's size in bytes from its `metadata` (`size` or `fileSize`), when present.
fn attachment_size(metadata: Option<&Map<String, Value>>) -> Option<u64> {
    let metadata = metadata?;
    ["size", "fileSize"]
        .iter()
        .find_map(|k| metadata.get(*k).and_then(Value::as_f64))
        .filter(|n| *n >= 0.0 && n.fract() == 0.0 && *n <= MAX_SAFE_INTEGER)
        // ok: a non-negative integral double within 2^53 converts exactly
        .map(|n| n as u64)
}

/// UploadMedia in direct-upload mode: the file's name, MIME type and bytes (base64), for the
/// business number that will send it.
fn upload_body(file: &AttachmentFile, bytes: &[u8], from_phone_number: &str) -> Value {
    json!({
        "fileName": file.name,
        "contentType": file.mime,
        "content": attachment::base64(bytes),
        "fromPhoneNumber": from_phone_number,
    })
}

/// The `fileId` of an UploadMedia answer, which the media message names.
fn uploaded_file_id(data: &[u8]) -> Result<String, ApiError> {
    let data: Value = serde_json::from_slice(data)
        .map_err(|_| bad_response(VENDOR, "UploadMedia answered no JSON object"))?;
    owned_non_empty(data.get("fileId").and_then(Value::as_str))
        .ok_or_else(|| bad_response(VENDOR, "UploadMedia answered no fileId"))
}

/// The WhatsApp type of a media attachment.
fn whatsapp_media_type(kind: MessageType) -> Option<&'static str> {
    match kind {
        MessageType::Image => Some("image"),
        MessageType::Audio => Some("audio"),
        MessageType::Video => Some("video"),
        MessageType::File => Some("document"),
        _ => None,
    }
}

/// Media types a free-form message may name in `vendor_fields.type`.
const MEDIA_TYPES: &[&str] = &["image", "audio", "video", "document", "sticker"];

/// `template.variables`: positional, as `[{value}]`. Scalars and `{value}` objects are read;
/// anything else is refused.
fn template_variables(variables: &Value) -> Result<Vec<TemplateVariable>, ApiError> {
    let bad = || {
        ApiError::invalid(
            "template.variables must be an array of values (llamadapro template variables are \
             positional)",
        )
    };
    let items = match variables {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        _ => return Err(bad()),
    };
    items
        .iter()
        .map(|item| {
            let value = match item {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                Value::Object(o) => match o.get("value") {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Number(n)) => n.to_string(),
                    _ => return Err(bad()),
                },
                _ => return Err(bad()),
            };
            Ok(TemplateVariable { value })
        })
        .collect()
}

/// The vendor call a message send makes: a template, a media message, or text. A media
/// message is either the one file of `attachments` (its `fileId` is filled in after the
/// upload) or a file uploaded to LlamadaPro beforehand (`vendor_fields.fileId` with
/// `vendor_fields.type`).
fn plan_message(
    body: &MessageSend,
    conversation: &ConversationKeys,
    from: Option<&Value>,
) -> Result<PlannedMessage, ApiError> {
    if body.private {
        return Err(ApiError::unsupported_operation(
            "llamadapro has no internal notes: every message goes to the contact on WhatsApp",
        ));
    }
    check_vendor_fields(
        VENDOR,
        &body.vendor_fields,
        MESSAGE_VENDOR_FIELDS,
        "messages",
    )?;
    let from_phone_number = match from {
        None | Some(Value::Null) => {
            let what = "the WhatsApp business number to send from";
            return Err(missing_field(VENDOR, "fromPhoneNumber", what));
        }
        Some(value) => value
            .as_str()
            .and_then(|n| phone::e164(n, None))
            .ok_or_else(|| {
                ApiError::invalid(
                    "vendor_fields.fromPhoneNumber must be an E.164 number such as +56229145000",
                )
            })?,
    };
    let fields = &body.vendor_fields;
    let user_id = text_field("userId", fields.get("userId"))?;
    let file_id = text_field("fileId", fields.get("fileId"))?;
    let media_type = text_field("type", fields.get("type"))?;
    let language = text_field("languageCode", fields.get("languageCode"))?;
    let text = body.text.as_deref().filter(|t| !t.trim().is_empty());

    if let Some(template) = &body.template {
        if text.is_some() || !body.files.is_empty() || file_id.is_some() {
            return Err(ApiError::invalid(
                "a template message carries no text or attachments of its own",
            ));
        }
        let name = non_empty(Some(&template.name))
            .ok_or_else(|| ApiError::invalid("template.name must not be empty"))?;
        let language_code = owned_non_empty(template.language.as_deref())
            .or(language)
            .ok_or_else(|| {
                ApiError::invalid(
                    "llamadapro needs template.language (the template's WhatsApp language code, \
                     e.g. es or en_US)",
                )
            })?;
        return Ok(PlannedMessage::Template(TemplateMessage {
            from_phone_number,
            to_phone_number: conversation.phone.clone(),
            template_name: name.to_owned(),
            language_code,
            variables: template_variables(&template.variables)?,
            user_id,
        }));
    }
    if language.is_some() {
        return Err(ApiError::invalid(
            "vendor_fields.languageCode goes with a template",
        ));
    }

    let media_kind = |default: Option<MessageType>| -> Result<String, ApiError> {
        match (&media_type, default) {
            (Some(t), _) if MEDIA_TYPES.contains(&t.as_str()) => Ok(t.clone()),
            (Some(t), _) => Err(ApiError::invalid(format!(
                "vendor_fields.type {t:?} is not a WhatsApp media type; use one of {}",
                MEDIA_TYPES.join(", ")
            ))),
            (None, Some(kind)) => whatsapp_media_type(kind)
                .map(str::to_owned)
                .ok_or_else(|| ApiError::invalid("attachments[0].type is not a media type")),
            (None, None) => Err(ApiError::invalid(format!(
                "vendor_fields.fileId needs vendor_fields.type: one of {}",
                MEDIA_TYPES.join(", ")
            ))),
        }
    };
    let kind =
        match (body.files.as_slice(), &file_id) {
            ([], None) => {
                if media_type.is_some() {
                    return Err(ApiError::invalid(
                        "vendor_fields.type goes with an attachment",
                    ));
                }
                if text.is_none() {
                    return Err(ApiError::invalid(
                        "a message needs text, an attachment or a template",
                    ));
                }
                "text".to_owned()
            }
            ([], Some(_)) => media_kind(None)?,
            ([file], None) => media_kind(Some(file.kind))?,
            ([_], Some(_)) => return Err(ApiError::invalid(
                "give the file in attachments or an uploaded one in vendor_fields.fileId, not both",
            )),
            _ => {
                return Err(ApiError::invalid(
                    "attachments: a WhatsApp message carries one attachment",
                ))
            }
        };
    let message_type = if kind == "text" {
        MessageType::Text
    } else {
        type_from_vendor(&kind)
    };
    Ok(PlannedMessage::FreeForm(
        FreeFormMessage {
            from_phone_number,
            to_phone_number: conversation.phone.clone(),
            content: text.unwrap_or_default().to_owned(),
            kind,
            file_id,
            user_id,
        },
        message_type,
    ))
}

/// The body of `POST /contacts/search` for the list filters: `q` as the full-text `search`,
/// the rest as exact `addresses.address` matches.
fn search_body(
    filters: &ContactFilters,
    limit: u32,
    page_token: Option<&str>,
) -> Result<Value, ApiError> {
    let mut conditions = Vec::new();
    let address =
        |value: String| json!({"field": "addresses.address", "operator": "eq", "value": value});
    if let Some(email) = non_empty(filters.email.as_deref()) {
        conditions.push(address(email.to_owned()));
    }
    if let Some(phone) = non_empty(filters.phone.as_deref()) {
        conditions.push(address(phone::normalize(phone, None)));
    }
    if let Some(handle) = &filters.handle {
        if handle.channel != HandleChannel::Whatsapp {
            return Err(ApiError::unsupported_filter(
                "llamadapro contacts have whatsapp handles only; look up emails and phone \
                 numbers with the email and phone filters",
            ));
        }
        conditions.push(address(phone::normalize_whatsapp(&handle.value)));
        conditions
            .push(json!({"field": "addresses.channelType", "operator": "eq", "value": "WHATSAPP"}));
    }
    let mut body = Map::new();
    if let Some(q) = non_empty(filters.q.as_deref()) {
        body.insert("search".into(), q.into());
    }
    if !conditions.is_empty() {
        body.insert("filters".into(), Value::Array(conditions));
    }
    body.insert("size".into(), limit.into());
    if let Some(token) = page_token {
        body.insert("pageToken".into(), token.into());
    }
    Ok(Value::Object(body))
}

#[cfg(test)]
// Tests may panic on a broken fixture; that is their job.
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::api::ErrorCode;
    use crate::config::routes::RoutesFile;
    use crate::snapshot::Connection;
    use crate::vendors::test_support::{self, list_json, object_json, response, run, seen, Script};

    const CONTACT: &str = include_str!("../../tests/fixtures/llamadapro/contact.json");
    const CONTACTS_LIST: &str = include_str!("../../tests/fixtures/llamadapro/contacts_list.json");
    const CONTACTS_SEARCH: &str =
        include_str!("../../tests/fixtures/llamadapro/contacts_search.json");
    const CONTACT_SEED_EXAMPLE: &str =
        include_str!("../../tests/fixtures/llamadapro/contact_seed_example.json");
    const CONVERSATION: &str = include_str!("../../tests/fixtures/llamadapro/conversation.json");
    const MESSAGE: &str = include_str!("../../tests/fixtures/llamadapro/message.json");
    const MESSAGE_SENT: &str = include_str!("../../tests/fixtures/llamadapro/message_sent.json");
    const ERROR: &str = include_str!("../../tests/fixtures/llamadapro/error.json");
    const ERROR_UNAUTHORIZED: &str =
        include_str!("../../tests/fixtures/llamadapro/error_unauthorized.json");

    const PHONE: &str = "+56912345671";
    const FROM: &str = "+56229145000";

    fn mapper(want_raw: bool) -> Mapper {
        Mapper {
            tenant: "acme".into(),
            connection: "crm".into(),
            want_raw,
        }
    }

    fn object_id(kind: Kind, keys: &[&str]) -> ObjectId {
        ObjectId::new(
            kind,
            "acme",
            "crm",
            keys.iter().map(|k| k.to_string()).collect(),
        )
    }

    fn id(kind: Kind, keys: &[&str]) -> String {
        object_id(kind, keys).encode()
    }

    fn fixture(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    fn conversation_501() -> ConversationKeys {
        ConversationKeys {
            id: "501".into(),
            phone: PHONE.into(),
            from: None,
        }
    }

    fn whatsapp(value: &str) -> Handle {
        Handle {
            channel: HandleChannel::Whatsapp,
            value: value.into(),
        }
    }

    // ----- answers and errors ------------------------------------------------------------------

    #[test]
    fn vendor_errors_map_by_status_with_the_vendor_message_and_details() {
        let err = read_object(&response(400, ERROR)).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest);
        assert_eq!(err.vendor_status, Some(400));
        assert!(
            err.detail
                .contains("Validation failed (body.toPhoneNumber: must be in E.164 format"),
            "{}",
            err.detail
        );
        let err = read_object(&response(401, ERROR_UNAUTHORIZED)).unwrap_err();
        assert_eq!(err.code, ErrorCode::VendorAuthFailed);
        assert!(
            !err.detail.contains("Invalid API key"),
            "auth text stays out"
        );
        // `error` stands in when `message` is missing.
        let err =
            read_object(&response(422, r#"{"code":422,"error":"Unprocessable"}"#)).unwrap_err();
        assert!(err.detail.contains("Unprocessable"));
        for (status, code) in [
            (403, ErrorCode::Forbidden),
            (404, ErrorCode::NotFound),
            (409, ErrorCode::InvalidRequest),
            (500, ErrorCode::VendorError),
            (503, ErrorCode::VendorError),
        ] {
            let err = read_object(&response(status, ERROR)).unwrap_err();
            assert_eq!(err.code, code, "status {status}");
            assert_eq!(err.vendor, Some(Vendor::LlamadaPro));
        }
        let mut limited = response(429, "slow down");
        limited.retry_after = Some(30);
        let err = read_object(&limited).unwrap_err();
        assert_eq!(err.code, ErrorCode::VendorRateLimited);
        assert_eq!(err.retry_after, Some(30));
        assert!(check_success(&response(204, "")).is_ok());
    }

    #[test]
    fn a_2xx_that_is_not_an_object_is_a_bad_response() {
        for body in ["<html>", "", "[]", "\"ok\"", "null"] {
            let err = read_object(&response(200, body)).unwrap_err();
            assert_eq!(err.code, ErrorCode::VendorBadResponse, "{body}");
        }
        let err = contacts_from(&mapper(false), &json!({"nextPageToken": "x"})).unwrap_err();
        assert_eq!(err.code, ErrorCode::VendorBadResponse);
    }

    /// Issue 11: the typed reading straight from the bytes still turns every malformed answer
    /// into `vendor_bad_response` — truncated JSON, wrong types, missing required parts.
    #[test]
    fn malformed_answers_read_from_the_bytes_are_bad_responses() {
        let page = |body: &str| contacts_page(&mapper(false), &response(200, body));
        for body in [
            // truncated
            r#"{"items":[{"id":"#,
            r#"{"items":[{"id":1001,"firstName":"Vale"}"#,
            // wrong types
            r#"{"items":{"id":1001}}"#,
            r#"{"items":[{"id":1001,"firstName":7}]}"#,
            r#"{"items":[{"id":1001,"addresses":"+56912345671"}]}"#,
            r#"{"items":[{"id":1001,"addresses":[{"channelType":"PHONE","address":56912345671}]}]}"#,
            r#"{"items":[],"nextPageToken":3}"#,
            // missing or unusable ids, a missing items
            r#"{"items":[{"firstName":"Vale"}]}"#,
            r#"{"items":[{"id":10.5}]}"#,
            r#"{"items":[{"id":true}]}"#,
            r#"{"nextPageToken":"x"}"#,
        ] {
            let err = page(body).unwrap_err();
            assert_eq!(err.code, ErrorCode::VendorBadResponse, "{body}");
            assert_eq!(err.vendor, Some(Vendor::LlamadaPro));
        }
        let contact = |body: &'static str| translate_contact(&mapper(false), body.as_bytes());
        for body in [r#"{"id":1001,"lastName":["x"]}"#, r#"{"id":1001"#, "{}"] {
            assert_eq!(
                contact(body).unwrap_err().code,
                ErrorCode::VendorBadResponse,
                "{body}"
            );
        }
        let message = |body: &'static str| {
            translate_message(&mapper(false), body.as_bytes(), &conversation_501(), None)
        };
        for body in [
            r#"{"id":"m1","content":3}"#,
            r#"{"id":"m1","sender":"me"}"#,
            r#"{"id":7}"#,
            r#"{"content":"hola"}"#,
            r#"{"id":"m1","direction":"sideways"}"#,
            r#"{"id":"m1""#,
        ] {
            assert_eq!(
                message(body).unwrap_err().code,
                ErrorCode::VendorBadResponse,
                "{body}"
            );
        }
        let conversation = |body: &'static str| {
            translate_conversation(&mapper(false), body.as_bytes(), Some(PHONE), None)
        };
        for body in [
            r#"{"contactId":1001}"#,
            r#"{"id":501,"channelSessions":{}}"#,
            r#"{"id":501,"contacts":[{"id":1001,"firstName":false}]}"#,
        ] {
            assert_eq!(
                conversation(body).unwrap_err().code,
                ErrorCode::VendorBadResponse,
                "{body}"
            );
        }
    }

    fn number_key(value: &Value) -> Option<String> {
        Loose::deserialize(value).unwrap().key()
    }

    #[test]
    fn ids_are_integral_doubles() {
        assert_eq!(number_key(&json!(42)).as_deref(), Some("42"));
        assert_eq!(number_key(&json!(42.0)).as_deref(), Some("42"));
        assert_eq!(number_key(&json!("42")).as_deref(), Some("42"));
        assert_eq!(number_key(&json!(" 7.0 ")).as_deref(), Some("7"));
        assert_eq!(
            number_key(&json!(9_007_199_254_740_991_u64)).as_deref(),
            Some("9007199254740991")
        );
        for bad in [
            json!(0.1),
            json!(0),
            json!(-3),
            json!(1e20),
            json!("abc"),
            json!(null),
            json!(true),
        ] {
            assert_eq!(number_key(&bad), None, "{bad}");
        }
        assert_eq!(number_value("1001"), json!(1001));
    }

    // ----- contacts ------------------------------------------------------------------------------

    #[test]
    fn contact_maps_every_field() {
        let value = fixture(CONTACT);
        let c = translate_contact(&mapper(false), &value).unwrap();
        assert_eq!(c.id, id(Kind::Contact, &["1001"]));
        assert_eq!(c.remote_id, "1001");
        assert_eq!((c.connection.as_str(), c.vendor), ("crm", "llamadapro"));
        assert_eq!(c.name.as_deref(), Some("Valentina Muñoz"));
        assert_eq!(c.first_name.as_deref(), Some("Valentina"));
        assert_eq!(c.last_name.as_deref(), Some("Muñoz"));
        // The deprecated top-level email repeats an address: listed once.
        assert_eq!(c.emails, vec!["valentina@example.cl"]);
        assert_eq!(c.phones, vec![PHONE, "+56223456789"]);
        assert_eq!(c.handles, vec![whatsapp(PHONE)]);
        assert_eq!(c.company, None);
        assert_eq!(c.avatar_url, None);
        assert_eq!(c.custom_fields["source"], "web");
        assert_eq!(c.custom_fields["plan"], "pro");
        assert_eq!(c.created_at.as_deref(), Some("2025-03-01T12:00:00.000Z"));
        assert_eq!(c.updated_at.as_deref(), Some("2025-03-02T09:30:00.000Z"));
        assert!(c.raw.is_none());
        let with_raw = translate_contact(&mapper(true), &value).unwrap();
        assert_eq!(with_raw.raw, Some(value));
    }

    #[test]
    fn contact_page_maps_items_legacy_fields_and_the_next_token() {
        let output = contacts_from(&mapper(false), &fixture(CONTACTS_LIST)).unwrap();
        let (items, next) = list_json(output);
        assert_eq!(next, Some(json!({"page_token": "Y29udGFjdHM6Mw"})));
        assert_eq!(items.len(), 3);
        // A bare-digits WhatsApp id is the international number; the PHONE copy is the same.
        assert_eq!(items[0]["phones"], json!(["+56912345672"]));
        assert_eq!(
            items[0]["handles"],
            json!([{"channel": "whatsapp", "value": "+56912345672"}])
        );
        assert_eq!(items[0]["custom_fields"], json!({}));
        // Only the deprecated fields: still the contact's email and phone.
        assert_eq!(items[1]["emails"], json!(["benjamin@example.pe"]));
        assert_eq!(items[1]["phones"], json!(["+51987654321"]));
        assert_eq!(items[1]["name"], "Benjamín");
        assert_eq!(items[1]["custom_fields"], json!({}));
        // A double id, nothing else.
        assert_eq!(items[2]["remote_id"], "1030");
        assert_eq!(items[2]["name"], Value::Null);
        assert_eq!(items[2]["handles"], json!([]));
        assert_eq!(items[2]["updated_at"], Value::Null);

        // No token, or an empty page: the last page.
        let last = json!({"items": [], "nextPageToken": "more", "totalCount": 0});
        assert_eq!(
            list_json(contacts_from(&mapper(false), &last).unwrap()).1,
            None
        );
        let last = json!({"items": [fixture(CONTACT)], "nextPageToken": ""});
        let (_, next) = list_json(contacts_from(&mapper(false), &last).unwrap());
        assert_eq!(next, None);
    }

    #[test]
    fn search_hits_carry_string_ids() {
        let output = contacts_from(&mapper(false), &fixture(CONTACTS_SEARCH)).unwrap();
        let (items, next) = list_json(output);
        assert_eq!(next, None);
        assert_eq!(items[0]["id"], id(Kind::Contact, &["1001"]));
        assert_eq!(
            items[0]["handles"],
            json!([{"channel": "whatsapp", "value": PHONE}])
        );
    }

    #[test]
    fn the_seed_documents_placeholder_ids_which_are_not_ids() {
        // The published example has `"id": 0.1`: not an integral double, so not a contact.
        let err = translate_contact(&mapper(false), &fixture(CONTACT_SEED_EXAMPLE)).unwrap_err();
        assert_eq!(err.code, ErrorCode::VendorBadResponse);
        let mut example = fixture(CONTACT_SEED_EXAMPLE);
        example["id"] = json!(3.0);
        let c = translate_contact(&mapper(false), &example).unwrap();
        assert_eq!(c.remote_id, "3");
        // "string" is not a number: kept as stored (once, though the deprecated phone repeats
        // it); unknown channels become `other` handles.
        assert_eq!(c.phones, vec!["string"]);
        assert_eq!(c.emails, vec!["string"]);
        example["addresses"][0]["channelType"] = json!("INSTAGRAM");
        let c = translate_contact(&mapper(false), &example).unwrap();
        assert_eq!(
            c.handles,
            vec![Handle {
                channel: HandleChannel::Other,
                value: "string".into()
            }]
        );
    }

    fn create(value: Value) -> ContactCreate {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn contact_create_body_uses_addresses() {
        let body = contact_create_body(&create(json!({
            "name": "Ana María López",
            "emails": ["ana@example.cl", "ANA@example.cl"],
            "phones": ["+56 9 8765 4321", "+56223334444"],
            "handles": [{"channel": "whatsapp", "value": "56987654321"}],
            "custom_fields": {"source": "web"},
            "vendor_fields": {"nationalId": "9.876.543-2"},
        })))
        .unwrap();
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            json!({
                "firstName": "Ana",
                "lastName": "María López",
                "addresses": [
                    {"channelType": "WHATSAPP", "address": "+56987654321"},
                    {"channelType": "PHONE", "address": "+56223334444"},
                    {"channelType": "EMAIL", "address": "ana@example.cl"},
                ],
                "customFields": {"source": "web"},
                "nationalId": "9.876.543-2",
            })
        );
        // Explicit names win; nothing else is sent when nothing else is given.
        let body = contact_create_body(&create(json!({"name": "Ana López", "last_name": "Soto"})))
            .unwrap();
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            json!({"firstName": "Ana", "lastName": "Soto"})
        );
    }

    #[test]
    fn contact_create_refuses_what_llamadapro_cannot_store() {
        for (value, code) in [
            (json!({"company": "Acme"}), ErrorCode::UnsupportedOperation),
            (
                json!({"avatar_url": "https://x/a.png"}),
                ErrorCode::UnsupportedOperation,
            ),
            (
                json!({"handles": [{"channel": "line", "value": "U123"}]}),
                ErrorCode::InvalidRequest,
            ),
            (
                json!({"handles": [{"channel": "whatsapp", "value": "hello"}]}),
                ErrorCode::InvalidRequest,
            ),
            (json!({"phones": ["0912345678"]}), ErrorCode::InvalidRequest),
            (
                json!({"emails": ["not-an-email"]}),
                ErrorCode::InvalidRequest,
            ),
            (
                json!({"vendor_fields": {"funnelId": 7}}),
                ErrorCode::InvalidRequest,
            ),
            (
                json!({"vendor_fields": {"nationalId": ["x"]}}),
                ErrorCode::InvalidRequest,
            ),
        ] {
            let err = contact_create_body(&create(value.clone())).unwrap_err();
            assert_eq!(err.code, code, "{value}");
        }
    }

    fn patch(value: Value) -> ContactPatch {
        serde_json::from_value(value).unwrap()
    }

    fn current() -> WireContact<'static> {
        parse_contact(CONTACT.as_bytes()).unwrap()
    }

    fn update(value: Value, current: Option<&WireContact<'_>>) -> Value {
        serde_json::to_value(contact_update_body(&patch(value), current).unwrap()).unwrap()
    }

    #[test]
    fn contact_update_sends_only_what_changes() {
        assert_eq!(
            update(
                json!({"name": "Vale Muñoz", "custom_fields": {"plan": null}}),
                None
            ),
            json!({"firstName": "Vale", "lastName": "Muñoz", "customFields": {"plan": null}})
        );
        assert_eq!(
            update(json!({"last_name": ""}), None),
            json!({"lastName": null})
        );
        assert_eq!(
            update(
                json!({"vendor_fields": {"companyPosition": "Gerente"}}),
                None
            ),
            json!({"companyPosition": "Gerente"})
        );
        assert!(is_empty_patch(&patch(json!({}))));
        assert!(!is_empty_patch(&patch(
            json!({"vendor_fields": {"nationalId": "1"}})
        )));
    }

    #[test]
    fn contact_update_merges_addresses_over_the_current_contact() {
        let current = current();
        // emails: the EMAIL addresses change; WhatsApp and phone stay (as stored); the
        // deprecated email copy is cleared because the new list drops it.
        assert_eq!(
            update(json!({"emails": ["vale@example.cl"]}), Some(&current)),
            json!({
                "addresses": [
                    {"channelType": "WHATSAPP", "address": PHONE},
                    {"channelType": "PHONE", "address": "+56 2 2345 6789"},
                    {"channelType": "EMAIL", "address": "vale@example.cl"},
                ],
                "email": null,
            })
        );
        // Keeping the email keeps the deprecated copy alone.
        assert_eq!(
            update(json!({"emails": ["Valentina@example.cl"]}), Some(&current)).get("email"),
            None
        );
        // phones without the WhatsApp number drops its WHATSAPP address too.
        assert_eq!(
            update(json!({"phones": ["+56223456789"]}), Some(&current))["addresses"],
            json!([
                {"channelType": "PHONE", "address": "+56223456789"},
                {"channelType": "EMAIL", "address": "valentina@example.cl"},
            ])
        );
        // phones that keep it keep it as WHATSAPP.
        assert_eq!(
            update(json!({"phones": [PHONE, "+56911112222"]}), Some(&current))["addresses"],
            json!([
                {"channelType": "WHATSAPP", "address": PHONE},
                {"channelType": "PHONE", "address": "+56911112222"},
                {"channelType": "EMAIL", "address": "valentina@example.cl"},
            ])
        );
        // handles replace the WhatsApp numbers; a number that was PHONE becomes WHATSAPP.
        assert_eq!(
            update(
                json!({"handles": [{"channel": "whatsapp", "value": "+56223456789"}]}),
                Some(&current)
            )["addresses"],
            json!([
                {"channelType": "WHATSAPP", "address": "+56223456789"},
                {"channelType": "EMAIL", "address": "valentina@example.cl"},
            ])
        );
        // The deprecated phone is cleared when the new numbers drop it.
        let mut legacy = current;
        legacy.phone = Some("+51 987 654 321".into());
        assert_eq!(
            update(json!({"phones": []}), Some(&legacy))["phone"],
            Value::Null
        );
        assert!(update(json!({"phones": ["+51987654321"]}), Some(&legacy))
            .get("phone")
            .is_none());
        // Channels the normalized API has no word for are kept.
        let mut other = parse_contact(CONTACT.as_bytes()).unwrap();
        other.addresses = Some(vec![WireAddress {
            id: Loose::Number(1.0),
            channel_type: Some(Str("INSTAGRAM".into())),
            address: Some(Str("@vale".into())),
        }]);
        assert_eq!(
            update(json!({"emails": []}), Some(&other))["addresses"],
            json!([{"channelType": "INSTAGRAM", "address": "@vale"}])
        );
    }

    #[test]
    fn contact_patch_refuses_before_any_call() {
        for (value, code) in [
            (json!({"company": "Acme"}), ErrorCode::UnsupportedOperation),
            (json!({"avatar_url": "x"}), ErrorCode::UnsupportedOperation),
            (json!({"phones": ["12"]}), ErrorCode::InvalidRequest),
            (
                json!({"handles": [{"channel": "email", "value": "a@b.cl"}]}),
                ErrorCode::InvalidRequest,
            ),
            (
                json!({"vendor_fields": {"x": 1}}),
                ErrorCode::InvalidRequest,
            ),
        ] {
            let err = check_contact_patch(&patch(value.clone())).unwrap_err();
            assert_eq!(err.code, code, "{value}");
        }
    }

    // ----- conversations ---------------------------------------------------------------------

    #[test]
    fn conversation_maps_every_field_and_carries_the_whatsapp_number() {
        let value = fixture(CONVERSATION);
        let c = translate_conversation(&mapper(true), &value, None, None).unwrap();
        assert_eq!(c.id, id(Kind::Conversation, &["501", PHONE]));
        assert_eq!(c.remote_id, "501");
        assert_eq!(c.contact_id, Some(id(Kind::Contact, &["1001"])));
        assert_eq!(c.channel, Some(Channel::Whatsapp));
        assert_eq!(c.status, ConversationStatus::Open);
        assert_eq!(c.vendor_status.as_deref(), Some("21"));
        assert_eq!(
            c.assignee,
            Some(Assignee {
                user_id: Some("11".into()),
                team_id: None
            })
        );
        assert_eq!((c.subject, c.priority, c.tags.len()), (None, None, 0));
        assert_eq!(c.created_at.as_deref(), Some("2025-03-03T10:00:00.000Z"));
        assert_eq!(c.raw, Some(value.clone()));

        // The session's address wins over what the caller named.
        let c = translate_conversation(&mapper(false), &value, Some("+56900000000"), None).unwrap();
        assert_eq!(c.id, id(Kind::Conversation, &["501", PHONE]));
        // No session: the caller's number, else the contact's WhatsApp, else its phone.
        let mut bare = value.clone();
        bare["channelSessions"] = json!([]);
        bare["archivedAt"] = json!("2025-03-05T18:00:00.000Z");
        bare["userId"] = Value::Null;
        let c = translate_conversation(&mapper(false), &bare, Some("+56900000000"), None).unwrap();
        assert_eq!(c.id, id(Kind::Conversation, &["501", "+56900000000"]));
        assert_eq!(
            (c.status, c.channel, c.assignee),
            (ConversationStatus::Closed, None, None)
        );
        let c = translate_conversation(&mapper(false), &bare, None, None).unwrap();
        assert_eq!(c.id, id(Kind::Conversation, &["501", PHONE]));
        bare["contacts"][0]["addresses"] = json!([]);
        let err = translate_conversation(&mapper(false), &bare, None, None).unwrap_err();
        assert_eq!(err.code, ErrorCode::VendorBadResponse);
        let err = translate_conversation(&mapper(false), &json!({"id": "x"}), Some(PHONE), None)
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::VendorBadResponse);
    }

    fn conversation_create(value: Value) -> ConversationCreate {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn conversation_create_body_follows_the_vendor_contract() {
        let fields = ConversationFields {
            funnel_id: 7,
            funnel_status_id: Some(22),
            user_id: None,
        };
        assert_eq!(
            conversation_create_body(&fields, ConversationContact::Existing(json!(1001))),
            json!({"funnelId": 7, "funnelStatusId": 22, "contactId": 1001})
        );
        let contact = new_conversation_contact(&NewContact {
            name: Some("Ana María López".into()),
            email: Some("ana@example.cl".into()),
            phone: Some("+56 9 8765 4321".into()),
        })
        .unwrap();
        let fields = ConversationFields {
            funnel_id: 7,
            funnel_status_id: None,
            user_id: Some(11),
        };
        assert_eq!(
            conversation_create_body(&fields, ConversationContact::New(contact)),
            json!({
                "funnelId": 7,
                "userId": 11,
                "contact": {
                    "firstName": "Ana",
                    "lastName": "María López",
                    "phones": ["+56987654321"],
                    "emails": ["ana@example.cl"],
                },
            })
        );
        let only_phone = new_conversation_contact(&NewContact {
            phone: Some(PHONE.into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(json!(only_phone), json!({"phones": [PHONE]}));
    }

    #[test]
    fn conversation_create_refuses_what_llamadapro_cannot_do() {
        for (value, code) in [
            (json!({"channel": "email"}), ErrorCode::InvalidRequest),
            (json!({"subject": "Hola"}), ErrorCode::UnsupportedOperation),
            (json!({"text": "Hola"}), ErrorCode::UnsupportedOperation),
        ] {
            let err = check_conversation_create(&conversation_create(value.clone())).unwrap_err();
            assert_eq!(err.code, code, "{value}");
        }
        assert!(
            check_conversation_create(&conversation_create(json!({"channel": "whatsapp"}))).is_ok()
        );
        for contact in [
            NewContact {
                name: Some("Ana".into()),
                ..Default::default()
            },
            NewContact {
                phone: Some("0987654321".into()),
                ..Default::default()
            },
            NewContact {
                phone: Some(PHONE.into()),
                email: Some("nope".into()),
                ..Default::default()
            },
        ] {
            let err = new_conversation_contact(&contact).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidRequest, "{contact:?}");
        }
        assert_eq!(int_field("funnelId", Some(&json!("7"))).unwrap(), Some(7));
        assert_eq!(int_field("funnelId", Some(&json!(7.0))).unwrap(), Some(7));
        assert_eq!(int_field("funnelId", None).unwrap(), None);
        let err = int_field("funnelId", Some(&json!("ventas"))).unwrap_err();
        assert!(err.detail.contains("vendor_fields.funnelId"));
    }

    // ----- messages ---------------------------------------------------------------------------

    #[test]
    fn message_maps_every_field() {
        let value = fixture(MESSAGE);
        let m = translate_message(&mapper(true), &value, &conversation_501(), None).unwrap();
        assert_eq!(
            m.id,
            id(Kind::Message, &["66a0c0de0000000000000003", "501", PHONE])
        );
        assert_eq!(m.remote_id, "66a0c0de0000000000000003");
        assert_eq!(m.conversation_id, id(Kind::Conversation, &["501", PHONE]));
        assert_eq!(m.direction, Direction::Inbound);
        assert_eq!(
            m.sender,
            Sender {
                type_: SenderType::Contact,
                id: Some("1001".into()),
                name: Some("Valentina Muñoz".into()),
            }
        );
        assert_eq!(m.type_, MessageType::Image);
        assert_eq!(m.text.as_deref(), Some("Les mando la foto de la factura"));
        assert_eq!(m.html, None);
        assert_eq!(
            m.attachments,
            vec![Attachment {
                type_: MessageType::Image,
                url: Some("https://files.example.com/signed/att_0003.jpg?sig=abc".into()),
                name: None,
                size: None,
            }]
        );
        assert!(!m.private);
        assert_eq!(m.status, Some(MessageStatus::Received));
        assert_eq!(m.created_at.as_deref(), Some("2025-03-03T10:05:00.000Z"));
        assert_eq!(m.raw, Some(value));
    }

    /// Issue 12 #2: LlamadaPro routes a send by phone numbers and says where it filed the
    /// message (`funnelConversationId`): a message belongs to that conversation, whatever the
    /// request named. When it is the one named, the caller's keys stay as they are.
    #[test]
    fn a_message_belongs_to_the_conversation_the_vendor_filed_it_under() {
        let sent = fixture(MESSAGE_SENT);
        // The vendor filed it under 501, the conversation asked for: the caller's keys.
        let asked = ConversationKeys {
            from: Some("+56229145000".into()),
            ..conversation_501()
        };
        let m = translate_message(&mapper(false), &sent, &asked, None).unwrap();
        assert_eq!(
            m.conversation_id,
            id(Kind::Conversation, &["501", PHONE, "+56229145000"])
        );
        let m = translate_message(&mapper(false), &sent, &conversation_501(), None).unwrap();
        assert_eq!(m.conversation_id, id(Kind::Conversation, &["501", PHONE]));
        // Asked for 777, filed under 501: the vendor's conversation, with the contact's number
        // (the recipient of an outbound message) and the business number it left from.
        let other = ConversationKeys {
            id: "777".into(),
            phone: "+56900000000".into(),
            from: None,
        };
        let m = translate_message(&mapper(false), &sent, &other, None).unwrap();
        assert_eq!(
            m.conversation_id,
            id(Kind::Conversation, &["501", PHONE, "+56229145000"])
        );
        assert_eq!(
            m.id,
            id(
                Kind::Message,
                &["66a0c0de0000000000000010", "501", PHONE, "+56229145000"]
            )
        );
        // An inbound message: the contact sent it, the business received it.
        let mut inbound = fixture(MESSAGE);
        inbound["funnelConversationId"] = json!(503.0);
        inbound["sender"]["address"] = json!("5215512345678");
        inbound["recipient"] = json!({"address": "+56229145001", "role": "user"});
        let m = translate_message(&mapper(false), &inbound, &other, None).unwrap();
        assert_eq!(
            m.conversation_id,
            id(
                Kind::Conversation,
                &["503", "+5215512345678", "+56229145001"]
            )
        );
        // No parties in the answer: the asked conversation's numbers fill in.
        let bare = json!({"id": "m9", "funnelConversationId": 503, "direction": "outbound"});
        let m = translate_message(&mapper(false), &bare, &other, None).unwrap();
        assert_eq!(
            m.conversation_id,
            id(Kind::Conversation, &["503", "+56900000000"])
        );
        // No funnelConversationId: the asked conversation.
        let bare = json!({"id": "m9", "direction": "outbound"});
        let m = translate_message(&mapper(false), &bare, &other, None).unwrap();
        assert_eq!(
            m.conversation_id,
            id(Kind::Conversation, &["777", "+56900000000"])
        );
    }

    #[test]
    fn conversation_ids_carry_the_business_number_when_it_is_known() {
        let keys = conversation_keys(&object_id(
            Kind::Conversation,
            &["501", PHONE, "+56229145001"],
        ))
        .unwrap();
        assert_eq!(keys.from.as_deref(), Some("+56229145001"));
        assert_eq!(
            conversation_keys(&object_id(Kind::Conversation, &["501", PHONE]))
                .unwrap()
                .from,
            None
        );
        let message_id = object_id(Kind::Message, &["m1", "501", PHONE, "+56229145001"]);
        let (message, keys) = message_keys(&message_id).unwrap();
        assert_eq!(
            (message, keys.from.as_deref()),
            ("m1", Some("+56229145001"))
        );
        for bad in [
            vec!["501", PHONE, "x"],
            vec!["501", PHONE, "+56229145001", "+56229145002"],
            vec!["501"],
        ] {
            assert!(conversation_keys(&object_id(Kind::Conversation, &bad)).is_err());
        }
        // A conversation created with a business number carries it.
        let c = translate_conversation(
            &mapper(false),
            &fixture(CONVERSATION),
            None,
            Some("+56 2 2914 5001"),
        )
        .unwrap();
        assert_eq!(
            c.id,
            id(Kind::Conversation, &["501", PHONE, "+56229145001"])
        );
        assert_eq!(
            business_number(Some(&json!("12"))).unwrap_err().code,
            ErrorCode::InvalidRequest
        );
    }

    #[test]
    fn sent_messages_come_from_an_agent_and_keep_the_type_they_were_sent_as() {
        let value = fixture(MESSAGE_SENT);
        let m = translate_message(&mapper(false), &value, &conversation_501(), None).unwrap();
        assert_eq!(m.direction, Direction::Outbound);
        assert_eq!(
            m.sender,
            Sender {
                type_: SenderType::Agent,
                id: Some("11".into()),
                name: Some("Camila Rojas".into()),
            }
        );
        assert_eq!(
            (m.type_, m.status),
            (MessageType::Text, Some(MessageStatus::Pending))
        );
        let m = translate_message(
            &mapper(false),
            &value,
            &conversation_501(),
            Some(MessageType::Template),
        )
        .unwrap();
        assert_eq!(m.type_, MessageType::Template);
        let mut bot = value.clone();
        bot["sender"]["role"] = json!("ai_employee");
        bot["sender"]["providerId"] = json!("emp_7");
        let m = translate_message(&mapper(false), &bot, &conversation_501(), None).unwrap();
        assert_eq!(
            (m.sender.type_, m.sender.id.as_deref()),
            (SenderType::Bot, Some("emp_7"))
        );
        let mut odd = value;
        odd["direction"] = json!("sideways");
        let err = translate_message(&mapper(false), &odd, &conversation_501(), None).unwrap_err();
        assert_eq!(err.code, ErrorCode::VendorBadResponse);
        let err = translate_message(&mapper(false), &json!({"id": 5}), &conversation_501(), None)
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::VendorBadResponse);
    }

    fn send(value: Value) -> MessageSend {
        let mut value = value;
        value["conversation_id"] = json!("x");
        let mut body: MessageSend = serde_json::from_value(value).unwrap();
        body.files = attachment::prepare(&body.attachments, 1 << 20).unwrap();
        body
    }

    fn plan(value: Value) -> Result<PlannedMessage, ApiError> {
        plan_message(&send(value), &conversation_501(), Some(&json!(FROM)))
    }

    #[test]
    fn message_send_bodies_follow_the_vendor_contract() {
        let text = plan(json!({"text": "Hola Vale"})).unwrap();
        assert_eq!(text.endpoint(), "messages.send");
        assert_eq!(text.message_type(), MessageType::Text);
        assert_eq!(
            serde_json::from_slice::<Value>(&text.body()).unwrap(),
            json!({"fromPhoneNumber": FROM, "toPhoneNumber": PHONE, "content": "Hola Vale", "type": "text"})
        );
        let media = plan(json!({
            "text": "La cotización",
            "vendor_fields": {"fileId": "file_0002", "type": "document", "userId": 11},
        }))
        .unwrap();
        assert_eq!(media.message_type(), MessageType::File);
        assert_eq!(
            serde_json::from_slice::<Value>(&media.body()).unwrap(),
            json!({"fromPhoneNumber": FROM, "toPhoneNumber": PHONE, "content": "La cotización", "type": "document", "fileId": "file_0002", "userId": "11"})
        );
        let sticker = plan(json!({
            "vendor_fields": {"fileId": "f1", "type": "sticker"},
        }))
        .unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&sticker.body()).unwrap()["type"],
            "sticker"
        );
        // A file of `attachments`: typed by its MIME type; its fileId comes from the upload.
        let pdf = plan(json!({
            "attachments": [{"data": "JVBERi0=", "name": "cotizacion.pdf", "type": "application/pdf"}],
        }))
        .unwrap();
        assert_eq!(pdf.message_type(), MessageType::File);
        assert_eq!(
            serde_json::from_slice::<Value>(&pdf.body()).unwrap(),
            json!({"fromPhoneNumber": FROM, "toPhoneNumber": PHONE, "content": "", "type": "document"})
        );
        let photo = plan(json!({
            "attachments": [{"data": "aGk=", "name": "a.jpg", "type": "image/jpeg"}],
        }))
        .unwrap();
        assert_eq!(photo.message_type(), MessageType::Image);
        let files = send(json!({
            "attachments": [{"data": "aGk=", "name": "a.jpg", "type": "image/jpeg"}],
        }))
        .files;
        assert_eq!(
            upload_body(&files[0], b"hi", FROM),
            json!({"fileName": "a.jpg", "contentType": "image/jpeg", "content": "aGk=", "fromPhoneNumber": FROM})
        );
        assert_eq!(
            uploaded_file_id(br#"{"fileId": "file_9", "mediaId": "m"}"#).unwrap(),
            "file_9"
        );
        assert_eq!(
            uploaded_file_id(br#"{"mediaId": "m"}"#).unwrap_err().code,
            ErrorCode::VendorBadResponse
        );
        let template = plan(json!({
            "template": {"name": "bienvenida", "language": "es", "variables": ["Vale", {"value": "Ventas"}, 3]},
        }))
        .unwrap();
        assert_eq!(template.endpoint(), "messages.send_template");
        assert_eq!(template.message_type(), MessageType::Template);
        assert_eq!(
            serde_json::from_slice::<Value>(&template.body()).unwrap(),
            json!({
                "fromPhoneNumber": FROM,
                "toPhoneNumber": PHONE,
                "templateName": "bienvenida",
                "languageCode": "es",
                "variables": [{"value": "Vale"}, {"value": "Ventas"}, {"value": "3"}],
            })
        );
        let by_field = plan(json!({
            "template": {"name": "recordatorio"},
            "vendor_fields": {"languageCode": "es"},
        }))
        .unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&by_field.body()).unwrap(),
            json!({"fromPhoneNumber": FROM, "toPhoneNumber": PHONE, "templateName": "recordatorio", "languageCode": "es"})
        );
    }

    #[test]
    fn message_send_refuses_what_llamadapro_cannot_do() {
        for (value, code) in [
            (
                json!({"text": "x", "private": true}),
                ErrorCode::UnsupportedOperation,
            ),
            (json!({}), ErrorCode::InvalidRequest),
            (json!({"text": "  "}), ErrorCode::InvalidRequest),
            (
                json!({"text": "x", "template": {"name": "t", "language": "es"}}),
                ErrorCode::InvalidRequest,
            ),
            (
                json!({"template": {"name": "t"}}),
                ErrorCode::InvalidRequest,
            ),
            (
                json!({"template": {"name": "t", "language": "es", "variables": {"1": "x"}}}),
                ErrorCode::InvalidRequest,
            ),
            (
                json!({"attachments": [
                    {"data": "aGk=", "name": "a.png", "type": "image/png"},
                    {"data": "aGk=", "name": "b.png", "type": "image/png"},
                ]}),
                ErrorCode::InvalidRequest,
            ),
            (
                json!({"attachments": [{"data": "aGk=", "name": "a.png", "type": "image/png"}], "vendor_fields": {"fileId": "f"}}),
                ErrorCode::InvalidRequest,
            ),
            (
                json!({"attachments": [{"data": "aGk=", "name": "a.png", "type": "image/png"}], "vendor_fields": {"type": "gif"}}),
                ErrorCode::InvalidRequest,
            ),
            (
                json!({"vendor_fields": {"fileId": "f"}}),
                ErrorCode::InvalidRequest,
            ),
            (
                json!({"text": "x", "vendor_fields": {"fileId": "f"}}),
                ErrorCode::InvalidRequest,
            ),
            (
                json!({"text": "x", "vendor_fields": {"type": "image"}}),
                ErrorCode::InvalidRequest,
            ),
            (
                json!({"text": "x", "vendor_fields": {"languageCode": "es"}}),
                ErrorCode::InvalidRequest,
            ),
            (
                json!({"text": "x", "vendor_fields": {"funnelId": 7}}),
                ErrorCode::InvalidRequest,
            ),
        ] {
            let err = plan(value.clone()).unwrap_err();
            assert_eq!(err.code, code, "{value}");
        }
        let err = plan_message(&send(json!({"text": "x"})), &conversation_501(), None).unwrap_err();
        assert!(
            err.detail.contains("vendor_fields.fromPhoneNumber"),
            "{}",
            err.detail
        );
        let err = plan_message(
            &send(json!({"text": "x"})),
            &conversation_501(),
            Some(&json!("229145000")),
        )
        .unwrap_err();
        assert!(err.detail.contains("E.164"), "{}", err.detail);
    }

    // ----- lists, filters, IDs ---------------------------------------------------------------

    #[test]
    fn filters_become_a_search_body() {
        let filters = ContactFilters {
            q: Some(" vale ".into()),
            email: Some("valentina@example.cl".into()),
            phone: Some("+56 2 2345 6789".into()),
            handle: Some(whatsapp("56912345671")),
        };
        assert_eq!(
            search_body(&filters, 10, Some("tok")).unwrap(),
            json!({
                "search": "vale",
                "filters": [
                    {"field": "addresses.address", "operator": "eq", "value": "valentina@example.cl"},
                    {"field": "addresses.address", "operator": "eq", "value": "+56223456789"},
                    {"field": "addresses.address", "operator": "eq", "value": PHONE},
                    {"field": "addresses.channelType", "operator": "eq", "value": "WHATSAPP"},
                ],
                "size": 10,
                "pageToken": "tok",
            })
        );
        let line = ContactFilters {
            handle: Some(Handle {
                channel: HandleChannel::Line,
                value: "U1".into(),
            }),
            ..Default::default()
        };
        assert_eq!(
            search_body(&line, 10, None).unwrap_err().code,
            ErrorCode::UnsupportedFilter
        );
    }

    #[test]
    fn ids_and_cursors_are_strict() {
        assert_eq!(
            contact_key(&object_id(Kind::Contact, &["1001"])).unwrap(),
            "1001"
        );
        for keys in [
            &["abc"][..],
            &["0"],
            &["01"],
            &["-1"],
            &["1.5"],
            &["1", "2"],
            &["99999999999999999"],
        ] {
            let err = contact_key(&object_id(Kind::Contact, keys)).unwrap_err();
            assert_eq!(err.code, ErrorCode::NotFound, "{keys:?}");
        }
        assert_eq!(
            conversation_keys(&object_id(Kind::Conversation, &["501", PHONE])).unwrap(),
            conversation_501()
        );
        for keys in [
            &["501"][..],
            &["501", "56912345671"],
            &["x", PHONE],
            &["501", PHONE, "x"],
        ] {
            let err = conversation_keys(&object_id(Kind::Conversation, keys)).unwrap_err();
            assert_eq!(err.code, ErrorCode::NotFound, "{keys:?}");
        }
        let message_id = object_id(Kind::Message, &["m1", "501", PHONE]);
        let (message, conversation) = message_keys(&message_id).unwrap();
        assert_eq!((message, conversation), ("m1", conversation_501()));
        assert!(message_keys(&object_id(Kind::Message, &["m1"])).is_err());
        let page = |cursor: Option<Value>| Page { limit: 5, cursor };
        assert_eq!(page_token(&page(None)).unwrap(), None);
        assert_eq!(
            page_token(&page(Some(json!({"page_token": "abc"}))))
                .unwrap()
                .as_deref(),
            Some("abc")
        );
        for bad in [
            json!({"page": 2}),
            json!({"page_token": ""}),
            json!({"page_token": 3}),
        ] {
            assert_eq!(
                page_token(&page(Some(bad))).unwrap_err().code,
                ErrorCode::InvalidRequest
            );
        }
    }

    // ----- execute, against a scripted LlamadaPro on loopback -------------------------------

    /// The method and path of `endpoint` in the routes file, its placeholder set to `param`
    /// (paths are provisional: the tests follow the routes file).
    fn route(endpoint: &str, param: &str) -> (String, String) {
        let routes = test_support::compiled_routes(Vendor::LlamadaPro);
        let endpoint = routes.endpoint(endpoint).unwrap();
        (
            endpoint.method.to_string(),
            endpoint.path.render(|_| Some(param.to_owned())).unwrap(),
        )
    }

    /// A LlamadaPro that answers `(method, path)` with a fixed status and body.
    async fn llamadapro(replies: &[((String, String), u16, &str)]) -> (String, Arc<Script>) {
        let not_found = r#"{"code":404,"error":"Not Found","message":"Not found","details":{}}"#;
        let replies = replies
            .iter()
            .map(|((m, p), s, b)| (m.clone(), p.clone(), *s, *b));
        test_support::serve(Vendor::LlamadaPro, not_found, replies).await
    }

    fn connection(base: &str, without: &[&str]) -> Connection {
        let mut defaults = Map::new();
        defaults.insert("funnelId".into(), json!(7));
        defaults.insert("fromPhoneNumber".into(), json!(FROM));
        test_support::connection(Vendor::LlamadaPro, "crm", base, "k", defaults, without)
    }

    fn list(limit: u32, cursor: Option<Value>, filters: ContactFilters) -> OperationRequest {
        OperationRequest::ContactsList(Page { limit, cursor }, filters)
    }

    #[test]
    fn the_tables_tell_the_truth() {
        let routes = crate::config::routes::compile(
            &serde_yaml::from_str(include_str!("../../routes/llamadapro.yaml")).unwrap(),
        )
        .unwrap();
        let supported = super::super::supported_operations(&LlamadaPro, &routes);
        let ops: Vec<&str> = supported.iter().map(|(op, _)| op.as_str()).collect();
        assert_eq!(
            ops,
            [
                "contacts.list",
                "contacts.create",
                "contacts.get",
                "contacts.update",
                "contacts.delete",
                "conversations.create",
                "messages.get",
                "messages.send"
            ]
        );
        assert_eq!(supported[0].1, ["q", "email", "phone", "handle"]);
        // Without the search route, contacts cannot be filtered.
        let mut file: RoutesFile =
            serde_yaml::from_str(include_str!("../../routes/llamadapro.yaml")).unwrap();
        file.operations.remove("contacts.search");
        let routes = crate::config::routes::compile(&file).unwrap();
        let supported = super::super::supported_operations(&LlamadaPro, &routes);
        assert!(supported[0].1.is_empty());
        assert!(matches!(
            routes.auth,
            crate::snapshot::routes::AuthScheme::Header(_)
        ));
    }

    #[tokio::test]
    async fn malformed_ids_and_unsupported_operations_make_no_vendor_call() {
        // Nothing listens here: any call would fail with vendor_unavailable.
        let conn = connection(
            "http://127.0.0.1:9",
            &["messages.send_template", "contacts.search"],
        );
        let cases = [
            OperationRequest::ContactsGet(object_id(Kind::Contact, &["abc"])),
            OperationRequest::ContactsDelete(object_id(Kind::Contact, &["1", "2"])),
            OperationRequest::ContactsUpdate(object_id(Kind::Contact, &["0"]), patch(json!({}))),
            OperationRequest::MessagesGet(object_id(Kind::Message, &["only-one"])),
            OperationRequest::MessagesSend(
                object_id(Kind::Conversation, &["501"]),
                send(json!({"text": "x"})),
            ),
        ];
        for request in cases {
            let (result, calls) = run(&conn, request).await;
            assert_eq!(result.unwrap_err().code, ErrorCode::NotFound);
            assert_eq!(calls, 0);
        }
        let conversation = object_id(Kind::Conversation, &["501", PHONE]);
        let unsupported = [
            OperationRequest::ConversationsGet(conversation.clone()),
            OperationRequest::ConversationsDelete(conversation.clone()),
            OperationRequest::ConversationsUpdate(conversation.clone(), Default::default()),
            OperationRequest::ConversationsList(
                Page {
                    limit: 5,
                    cursor: None,
                },
                Default::default(),
            ),
            OperationRequest::MessagesList(
                conversation.clone(),
                Page {
                    limit: 5,
                    cursor: None,
                },
            ),
            // The template route is not configured on this connection.
            OperationRequest::MessagesSend(
                conversation.clone(),
                send(json!({"template": {"name": "t", "language": "es"}})),
            ),
            OperationRequest::ContactsUpdate(
                object_id(Kind::Contact, &["1001"]),
                patch(json!({"company": "Acme"})),
            ),
            OperationRequest::ConversationsCreate(
                conversation_create(json!({"contact": {"phone": PHONE}, "subject": "x"})),
                None,
            ),
        ];
        for request in unsupported {
            let (result, calls) = run(&conn, request).await;
            assert_eq!(result.unwrap_err().code, ErrorCode::UnsupportedOperation);
            assert_eq!(calls, 0);
        }
        let (result, calls) = run(
            &conn,
            list(
                5,
                None,
                ContactFilters {
                    q: Some("vale".into()),
                    ..Default::default()
                },
            ),
        )
        .await;
        assert_eq!(
            (result.unwrap_err().code, calls),
            (ErrorCode::UnsupportedFilter, 0)
        );
        let (result, calls) = run(
            &conn,
            OperationRequest::ConversationsCreate(
                conversation_create(
                    json!({"contact": {"phone": PHONE}, "vendor_fields": {"funnelId": null}}),
                ),
                None,
            ),
        )
        .await;
        // A null vendor field means "none": it does not fall back to the connection default.
        let err = result.unwrap_err();
        assert_eq!((err.code, calls), (ErrorCode::InvalidRequest, 0));
        assert!(
            err.detail.contains("vendor_fields.funnelId"),
            "{}",
            err.detail
        );
    }

    #[tokio::test]
    async fn contact_get_delete_and_vendor_errors() {
        let (base, script) = llamadapro(&[
            (route("contacts.get", "1001"), 200, CONTACT),
            (route("contacts.delete", "1001"), 200, CONTACT),
            (route("contacts.get", "1002"), 401, ERROR_UNAUTHORIZED),
        ])
        .await;
        let conn = connection(&base, &[]);
        let (result, calls) = run(
            &conn,
            OperationRequest::ContactsGet(object_id(Kind::Contact, &["1001"])),
        )
        .await;
        let (kind, contact) = object_json(result.unwrap());
        assert_eq!((kind, calls), ("found", 1));
        assert_eq!(
            contact["handles"],
            json!([{"channel": "whatsapp", "value": PHONE}])
        );
        assert_eq!(seen(&script)[0].key, "k");
        let (result, _) = run(
            &conn,
            OperationRequest::ContactsDelete(object_id(Kind::Contact, &["1001"])),
        )
        .await;
        assert!(matches!(result.unwrap(), Output::Deleted));
        let (result, _) = run(
            &conn,
            OperationRequest::ContactsGet(object_id(Kind::Contact, &["1002"])),
        )
        .await;
        assert_eq!(result.unwrap_err().code, ErrorCode::VendorAuthFailed);
        let (result, _) = run(
            &conn,
            OperationRequest::ContactsGet(object_id(Kind::Contact, &["999"])),
        )
        .await;
        assert_eq!(result.unwrap_err().code, ErrorCode::NotFound);
    }

    #[tokio::test]
    async fn contact_list_pages_by_token_and_filters_through_search() {
        let (base, script) = llamadapro(&[
            (route("contacts.list", ""), 200, CONTACTS_LIST),
            (route("contacts.search", ""), 200, CONTACTS_SEARCH),
        ])
        .await;
        let conn = connection(&base, &[]);
        let (items, next) = list_json(
            run(
                &conn,
                list(3, Some(json!({"page_token": "abc"})), Default::default()),
            )
            .await
            .0
            .unwrap(),
        );
        assert_eq!(
            (items.len(), next),
            (3, Some(json!({"page_token": "Y29udGFjdHM6Mw"})))
        );
        let filters = ContactFilters {
            handle: Some(whatsapp(PHONE)),
            ..Default::default()
        };
        let (items, next) = list_json(run(&conn, list(5, None, filters)).await.0.unwrap());
        assert_eq!((items.len(), next), (1, None));
        let seen = seen(&script);
        assert_eq!(seen[0].query_param("pageSize").as_deref(), Some("3"));
        assert_eq!(seen[0].query_param("pageToken").as_deref(), Some("abc"));
        assert_eq!(seen[1].path, route("contacts.search", "").1);
        assert_eq!(seen[1].json()["size"], 5);
        assert_eq!(seen[1].json()["filters"][0]["value"], PHONE);
    }

    #[tokio::test]
    async fn contact_create_and_update() {
        let (base, script) = llamadapro(&[
            (route("contacts.create", ""), 200, CONTACT),
            (route("contacts.get", "1001"), 200, CONTACT),
            (route("contacts.update", "1001"), 200, CONTACT),
        ])
        .await;
        let conn = connection(&base, &[]);
        let (result, calls) = run(
            &conn,
            OperationRequest::ContactsCreate(create(json!({"name": "Valentina Muñoz", "handles": [{"channel": "whatsapp", "value": PHONE}]}))),
        )
        .await;
        assert_eq!((object_json(result.unwrap()).0, calls), ("created", 1));
        // A name change needs no read; an email change reads and sends every address.
        let (result, calls) = run(
            &conn,
            OperationRequest::ContactsUpdate(
                object_id(Kind::Contact, &["1001"]),
                patch(json!({"first_name": "Vale"})),
            ),
        )
        .await;
        assert_eq!((object_json(result.unwrap()).0, calls), ("found", 1));
        let (result, calls) = run(
            &conn,
            OperationRequest::ContactsUpdate(
                object_id(Kind::Contact, &["1001"]),
                patch(json!({"emails": []})),
            ),
        )
        .await;
        assert_eq!((object_json(result.unwrap()).0, calls), ("found", 2));
        // An empty patch only reads.
        let (result, calls) = run(
            &conn,
            OperationRequest::ContactsUpdate(object_id(Kind::Contact, &["1001"]), patch(json!({}))),
        )
        .await;
        assert_eq!((object_json(result.unwrap()).0, calls), ("found", 1));
        let seen = seen(&script);
        let methods: Vec<&str> = seen.iter().map(|s| s.method.as_str()).collect();
        let method = |endpoint| route(endpoint, "1").0;
        assert_eq!(
            methods,
            [
                method("contacts.create"),
                method("contacts.update"),
                method("contacts.get"),
                method("contacts.update"),
                method("contacts.get"),
            ]
        );
        assert_eq!(
            seen[0].json(),
            json!({"firstName": "Valentina", "lastName": "Muñoz", "addresses": [{"channelType": "WHATSAPP", "address": PHONE}]})
        );
        assert_eq!(seen[1].json(), json!({"firstName": "Vale"}));
        assert_eq!(
            seen[3].json(),
            json!({
                "addresses": [
                    {"channelType": "WHATSAPP", "address": PHONE},
                    {"channelType": "PHONE", "address": "+56 2 2345 6789"},
                ],
                "email": null,
            })
        );
    }

    #[tokio::test]
    async fn conversation_create_learns_the_number_then_creates() {
        let no_phone = json!({"id": 1003, "firstName": "Sofía", "addresses": [{"id": 9, "channelType": "EMAIL", "address": "sofia@example.com.mx"}]}).to_string();
        let (base, script) = llamadapro(&[
            (route("contacts.get", "1001"), 200, CONTACT),
            (route("contacts.get", "1003"), 200, no_phone.as_str()),
            (route("conversations.create", ""), 200, CONVERSATION),
        ])
        .await;
        let conn = connection(&base, &[]);
        let (result, calls) = run(
            &conn,
            OperationRequest::ConversationsCreate(
                conversation_create(json!({"vendor_fields": {"funnelStatusId": "22"}})),
                Some(object_id(Kind::Contact, &["1001"])),
            ),
        )
        .await;
        let (kind, conversation) = object_json(result.unwrap());
        assert_eq!((kind, calls), ("created", 2));
        assert_eq!(conversation["id"], id(Kind::Conversation, &["501", PHONE]));
        assert_eq!(
            seen(&script)[1].json(),
            json!({"funnelId": 7, "funnelStatusId": 22, "contactId": 1001})
        );
        // A contact with no number is refused before anything is created.
        let (result, calls) = run(
            &conn,
            OperationRequest::ConversationsCreate(
                conversation_create(json!({})),
                Some(object_id(Kind::Contact, &["1003"])),
            ),
        )
        .await;
        assert_eq!(
            (result.unwrap_err().code, calls),
            (ErrorCode::InvalidRequest, 1)
        );
        // A new contact: vendor_fields override the connection's funnel.
        let (result, calls) = run(
            &conn,
            OperationRequest::ConversationsCreate(
                conversation_create(json!({"contact": {"name": "Ana", "phone": "+56987654321"}, "vendor_fields": {"funnelId": 8}})),
                None,
            ),
        )
        .await;
        assert_eq!((object_json(result.unwrap()).0, calls), ("created", 1));
        assert_eq!(
            seen(&script).last().unwrap().json(),
            json!({"funnelId": 8, "contact": {"firstName": "Ana", "phones": ["+56987654321"]}})
        );
    }

    #[tokio::test]
    async fn message_send_and_get() {
        let (base, script) = llamadapro(&[
            (route("messages.send", ""), 200, MESSAGE_SENT),
            (route("messages.send_template", ""), 200, MESSAGE_SENT),
            (
                route("messages.get", "66a0c0de0000000000000003"),
                200,
                MESSAGE,
            ),
        ])
        .await;
        let conn = connection(&base, &[]);
        let conversation = object_id(Kind::Conversation, &["501", PHONE]);
        let (result, calls) = run(
            &conn,
            OperationRequest::MessagesSend(conversation.clone(), send(json!({"text": "Hola"}))),
        )
        .await;
        let (kind, message) = object_json(result.unwrap());
        assert_eq!((kind, calls), ("created", 1));
        assert_eq!(message["conversation_id"], conversation.encode());
        assert_eq!(message["status"], "pending");
        assert_eq!(
            seen(&script)[0].json(),
            json!({"fromPhoneNumber": FROM, "toPhoneNumber": PHONE, "content": "Hola", "type": "text"})
        );
        // Issue 12 #2: a conversation that carries its business number sends from it, not
        // from the connection's default; the request's vendor_fields still win.
        let postventa = object_id(Kind::Conversation, &["501", PHONE, "+56229145001"]);
        let (result, _) = run(
            &conn,
            OperationRequest::MessagesSend(postventa.clone(), send(json!({"text": "Hola"}))),
        )
        .await;
        result.unwrap();
        assert_eq!(seen(&script)[1].json()["fromPhoneNumber"], "+56229145001");
        let (result, _) = run(
            &conn,
            OperationRequest::MessagesSend(
                postventa,
                send(json!({"text": "Hola", "vendor_fields": {"fromPhoneNumber": "+56229145002"}})),
            ),
        )
        .await;
        result.unwrap();
        assert_eq!(seen(&script)[2].json()["fromPhoneNumber"], "+56229145002");
        // vendor_fields win over the connection's fromPhoneNumber.        // vendor_fields win over the connection's fromPhoneNumber.
        let (result, _) = run(
            &conn,
            OperationRequest::MessagesSend(
                conversation.clone(),
                send(json!({"template": {"name": "bienvenida", "language": "es", "variables": ["Vale", "Ventas"]}, "vendor_fields": {"fromPhoneNumber": "+56229145001"}})),
            ),
        )
        .await;
        assert_eq!(object_json(result.unwrap()).1["type"], "template");
        let template = &seen(&script)[3];
        assert_eq!(template.path, route("messages.send_template", "").1);
        assert_eq!(template.json()["fromPhoneNumber"], "+56229145001");
        let (result, _) = run(
            &conn,
            OperationRequest::MessagesGet(object_id(
                Kind::Message,
                &["66a0c0de0000000000000003", "501", PHONE],
            )),
        )
        .await;
        let (kind, message) = object_json(result.unwrap());
        assert_eq!(kind, "found");
        assert_eq!(message["direction"], "inbound");
        assert_eq!(message["conversation_id"], conversation.encode());
    }

    /// Golden translations: vendor answers and the normalized objects this adapter made of them,
    /// as the gateway writes them, byte for byte (`tests/fixtures/golden/lp_*.normalized.json`,
    /// recorded before the list path was tuned for issue 11). A change in the output of any
    /// field, order or phone number fails here.
    mod golden {
        use super::super::*;
        use crate::vendors::test_support::{assert_golden, golden_mapper, repo_file, response};

        fn mapper(want_raw: bool) -> Mapper {
            golden_mapper("llamadapro", want_raw)
        }

        fn list(output: Output) -> String {
            match output {
                Output::List { data, next } => format!(
                    r#"{{"data":{},"next":{}}}"#,
                    serde_json::to_string(&data).unwrap(),
                    serde_json::to_string(&next).unwrap()
                ),
                other => panic!("not a list: {other:?}"),
            }
        }

        #[test]
        fn contact_pages_translate_as_recorded() {
            for (name, path) in [
                (
                    "lp_contacts_bench",
                    "bench/bodies/llamadapro/contacts_page.json",
                ),
                (
                    "lp_contacts_list",
                    "tests/fixtures/llamadapro/contacts_list.json",
                ),
                (
                    "lp_contacts_search",
                    "tests/fixtures/llamadapro/contacts_search.json",
                ),
            ] {
                let answer = response(200, &repo_file(path));
                assert_golden(name, list(contacts_page(&mapper(false), &answer).unwrap()));
                assert_golden(
                    &format!("{name}_raw"),
                    list(contacts_page(&mapper(true), &answer).unwrap()),
                );
            }
        }

        #[test]
        fn single_objects_translate_as_recorded() {
            let contact = repo_file("tests/fixtures/llamadapro/contact.json");
            let c = translate_contact(&mapper(false), contact.as_bytes()).unwrap();
            assert_golden("lp_contact", serde_json::to_string(&c).unwrap());
            let conversation = repo_file("tests/fixtures/llamadapro/conversation.json");
            let c = translate_conversation(&mapper(false), conversation.as_bytes(), None, None)
                .unwrap();
            assert_golden("lp_conversation", serde_json::to_string(&c).unwrap());
            let asked = ConversationKeys {
                id: "501".into(),
                phone: "+56912345671".into(),
                from: None,
            };
            let message = repo_file("tests/fixtures/llamadapro/message.json");
            let m = translate_message(&mapper(false), message.as_bytes(), &asked, None).unwrap();
            assert_golden("lp_message", serde_json::to_string(&m).unwrap());
        }
    }
}
