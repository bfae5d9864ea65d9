//! CAAC adapter: the normalized API over Crescendo Lab's CAAC OpenAPI 2.0.1.
//!
//! CAAC facts this adapter hides from callers (see `routes/caac.yaml` for the calls, all of
//! whose paths are provisional):
//!
//! - **Members, not contacts.** A CAAC *member* is one end customer inside one channel (a LINE
//!   official account, …); every member call needs the channel's integer id and the member's.
//!   Contact IDs therefore carry `[channel_id, member_id]`. A *user* is a staff agent.
//! - **Contacts are found, not listed.** CAAC has no member list or search, only "Get Member By
//!   Channel ID And External ID". `GET /v1/contacts` therefore needs `handle=line:<uid>` (the
//!   only filter in the table); the channel is the connection's `defaults.channel_id`. A vendor
//!   404 there means "no such member": an empty page, not an error. Without `handle` the list is
//!   refused (400); `q`, `email` and `phone` are not in the filter table (400
//!   `unsupported_filter`).
//! - **Creating a contact is creating a LINE member.** "Create or update a channel member"
//!   takes only `channel_member_id` (the LINE UID) and answers `{member_id}`; the adapter then
//!   reads the member back. Anything else in the body (name, emails, …) cannot be stored and is
//!   refused rather than dropped.
//! - **Conversations are implicit**: one per member, keyed like the contact
//!   (`[channel_id, member_id]`). A conversation is read from two calls, the member (its
//!   `processing_state`, channel type, timestamps) and its assignment relationship. Creating one
//!   answers the member's implicit conversation (and sends `text` first when given); it cannot
//!   be created for a new person (`contact: {…}`). There is no conversation list or delete.
//! - **Status**: CAAC's `processing_state` word is passed through as `vendor_status`. The only
//!   state the vendor documents is `resolved` (what Close Conversation sets); other words are
//!   read leniently (`closed`, `pending`/`waiting`/`snoozed`, and anything else counts as open).
//!   The only status change CAAC offers is Close Conversation, so `PATCH {status: resolved}`
//!   works and every other status, `priority` and `tags` answer 501 before any call.
//! - **Agent-side fields come from defaults**: sending and closing need the acting agent's
//!   `user_id`, assigning needs `org_id`, contact lookup and creation the `channel_id`. They
//!   come from the connection's `defaults`, overridable per request with `vendor_fields`.
//! - **Messages**: Create Message from User sends `{type: "text", user_id, text}`. CAAC
//!   documents no other message type's values, no template call (only raw LINE Flex JSON) and
//!   no internal notes, so templates and `private` answer 501; attachments are a 400 (no upload
//!   call gives an `attachment_id`, and no media `type` value is published). Message IDs carry
//!   `[channel_id, member_id, message_id]`; CAAC has no call to read one back or list them.
//! - **Pagination**: CAAC pages its channel, team and user lists (`limit` + `cursor`/`after`,
//!   answering `cursor: {after, before}`), but none of those is a normalized resource, so no
//!   normalized list uses it; the one list (a lookup) never has a next page.
//! - **Errors**: the error body is not published. Any non-2xx is mapped by status; a message is
//!   read from `{"error": {"message"}}`, `{"error": "…"}`, `{"message"}` or `{"detail"}`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use bytes::Bytes;
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::common::attachment;
use super::common::typed_lookup::{owned_text, text, Loose, Str, VendorJson};
use super::common::{
    assignee_id, bad_response, check_status, ep, error_text, filter, int_field, int_key, keys,
    missing_field, non_empty, not_served, op, phone, required_int, Mapper,
};
use super::{Adapter, CallContext, EndpointSpec, OperationSpec, SettingError};
// The upstream client's types.
use super::{VendorBody, VendorCall, VendorResponse};
use crate::api::ids::{KeyGrammar, Kind, ObjectId};
use crate::api::model::{
    vendor_label, Assignee, Attachment, Channel, Contact, ContactCreate, Conversation,
    ConversationCreate, ConversationPatch, ConversationStatus, Direction, Handle, HandleChannel,
    Message, MessageSend, MessageStatus, MessageType, Sender, SenderType,
};
use crate::api::operation::{Operation::*, Vendor};
use crate::api::request::{ContactFilters, OperationRequest, Output, Page};
use crate::api::{ApiError, ErrorCode};

pub struct Caac;

const VENDOR: Vendor = Vendor::Caac;

/// Every CAAC call the routes file may configure.
static ENDPOINTS: &[EndpointSpec] = &[
    ep("contacts.get", &["channel_id", "member_id"]),
    ep("contacts.lookup", &["channel_id", "external_member_id"]),
    ep("contacts.create", &["channel_id"]),
    ep("conversations.assignment", &["channel_id", "member_id"]),
    ep("conversations.close", &["channel_id", "member_id"]),
    ep("conversations.assign", &[]),
    ep("messages.send", &["channel_id", "member_id"]),
];

/// What the adapter serves. Absent, so 501 and left out of capabilities: contacts.update and
/// contacts.delete (no such member calls), conversations.list and conversations.delete
/// (conversations are implicit: each member's has the member's ID; resolve one with PATCH
/// {"status": "resolved"}), messages.list and messages.get (no such calls; messages are only
/// exported as an asynchronous CSV backup).
#[rustfmt::skip]
static OPERATIONS: &[OperationSpec] = &[
    op(ContactsList,        &["contacts.lookup"]).filters(&[filter("handle")]),
    op(ContactsCreate,      &["contacts.create", "contacts.get"]),
    op(ContactsGet,         &["contacts.get"]),
    op(ConversationsCreate, &["contacts.get", "conversations.assignment"]),
    op(ConversationsGet,    &["contacts.get", "conversations.assignment"]),
    op(ConversationsUpdate, &["contacts.get", "conversations.assignment", "conversations.close"]),
    op(MessagesSend,        &["messages.send"]),
];

#[async_trait]
impl Adapter for Caac {
    /// Contacts and conversations are `[channel_id, member_id]`, messages add the message id:
    /// CAAC ids are integers.
    fn key_grammar(&self, kind: Kind) -> &'static [KeyGrammar] {
        use KeyGrammar::PositiveInteger as N;
        match kind {
            Kind::Contact | Kind::Conversation => &[N, N],
            Kind::Message => &[N, N, N],
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
    /// `channel_id`: the channel contacts are looked up and created in; `user_id`: the agent who
    /// sends messages and closes conversations; `org_id`: required by every assignment.
    fn required_defaults(&self) -> &'static [&'static str] {
        &["channel_id", "user_id", "org_id"]
    }
    /// `member_types`: what a member's `type` word means (see [`MemberTypes`]).
    fn check_settings(&self, settings: &BTreeMap<String, Value>) -> Result<(), SettingError> {
        check_settings(settings)
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
                lookup_contacts(ctx, &page, &filters).await
            }
            OperationRequest::ContactsCreate(body) => create_contact(ctx, &body).await,
            OperationRequest::ContactsGet(id) => {
                let keys = member_keys(&id)?;
                let member = fetch(ctx, "contacts.get", keys.call()).await?;
                let types = member_types(ctx)?;
                let contact =
                    translate_contact(&Mapper::new(ctx), &types, keys.channel_id, &member[..])?;
                Ok(Output::Found(contact.into()))
            }
            OperationRequest::ConversationsGet(id) => {
                let keys = member_keys(&id)?;
                let conversation = get_conversation(ctx, keys).await?;
                Ok(Output::Found(conversation.into()))
            }
            OperationRequest::ConversationsCreate(body, contact_id) => {
                create_conversation(ctx, &body, contact_id.as_ref()).await
            }
            OperationRequest::ConversationsUpdate(id, patch) => {
                update_conversation(ctx, &id, &patch).await
            }
            OperationRequest::MessagesSend(conversation_id, body) => {
                send_message(ctx, &conversation_id, &body).await
            }
            _ => Err(not_served(ctx)),
        }
    }
}

// ----- operations: call sequencing only ------------------------------------------------------

/// Make one call and check its answer: the body of a 2xx, for a wire struct to read from.
async fn fetch(
    ctx: &mut CallContext<'_>,
    endpoint: &'static str,
    call: VendorCall,
) -> Result<Bytes, ApiError> {
    let response = ctx.call(endpoint, call).await?;
    checked(&response)?;
    Ok(response.body)
}

/// What a member's `type` means on this connection: the routes file's provisional
/// `settings.member_types` (see [`MemberTypes`]).
fn member_types(ctx: &CallContext<'_>) -> Result<MemberTypes, ApiError> {
    MemberTypes::from_settings(&ctx.connection.routes.settings).map_err(|reason| {
        // The routes file was checked when it was loaded; this only keeps the read total.
        ApiError::internal(format!("routes settings.member_types: {reason}"))
    })
}

async fn lookup_contacts(
    ctx: &mut CallContext<'_>,
    page: &Page,
    filters: &ContactFilters,
) -> Result<Output, ApiError> {
    let handle = lookup_handle(page, filters)?;
    let what = "the channel to look members up in";
    let channel_id = required_int(ctx, &Map::new(), "channel_id", what)?;
    let call = VendorCall::new()
        .param("channel_id", channel_id.to_string())
        .param("external_member_id", handle.value.clone());
    let response = ctx.call("contacts.lookup", call).await?;
    let types = member_types(ctx)?;
    let path = ctx
        .connection
        .routes
        .endpoint("contacts.lookup")
        .map(|e| e.path.source().to_owned())
        .unwrap_or_default();
    lookup_answer(
        &Mapper::new(ctx),
        &types,
        &response,
        Lookup {
            channel_id,
            handle,
            path: &path,
        },
    )
}

/// What a `contacts.lookup` asked for: the member carrying `handle` in channel `channel_id`,
/// at the routes file's `path` (a template, named in errors).
pub(super) struct Lookup<'l> {
    pub(super) channel_id: i64,
    pub(super) handle: &'l Handle,
    pub(super) path: &'l str,
}

/// The answer of `contacts.lookup`: a list of the one member that carries the handle, or
/// none. Also the entry point of `vendors::bench_support`.
///
/// A 404 means "no such member" only when its body says so ([`says_member_not_found`]): the
/// lookup path is provisional, and a wrong path — the likeliest failure — answers 404 too.
/// Any other 404 is `vendor_error` naming the path, so it shows in the error metrics instead
/// of looking like an empty result forever.
pub(super) fn lookup_answer(
    mapper: &Mapper,
    types: &MemberTypes,
    response: &VendorResponse,
    lookup: Lookup<'_>,
) -> Result<Output, ApiError> {
    if response.status == 404 {
        if says_member_not_found(&response.body) {
            return Ok(Output::List {
                data: Vec::new(),
                next: None,
            });
        }
        return Err(ApiError::vendor(
            ErrorCode::VendorError,
            VENDOR,
            format!(
                "caac answered 404 without saying that no member has this id: the                  contacts.lookup path {:?} (provisional, routes/caac.yaml) may be wrong",
                lookup.path
            ),
        )
        .with_vendor_status(404));
    }
    checked(response)?;
    let contact = translate_contact(mapper, types, lookup.channel_id, &response.body[..])?;
    let data = if handle_matches(&contact.handles, lookup.handle) {
        vec![contact.into()]
    } else {
        Vec::new()
    };
    Ok(Output::List { data, next: None })
}

/// Whether a 404 body is CAAC saying that no member has the id asked for. CAAC's error body
/// is not published, so this reads every common shape (as [`error_message`] does) and asks
/// for the one thing a "no such member" answer must say: a `member_not_found` code, or a
/// message that names a member and says it was not found (`member not found`, `Member does
/// not exist`). A 404 with no body, an HTML page, a bare `Not Found` or a channel that is not
/// found is something else: a wrong path or a wrong `channel_id`.
fn says_member_not_found(body: &[u8]) -> bool {
    let code = error_code_word(body);
    if code.as_deref().is_some_and(|c| {
        let c = c.to_ascii_lowercase().replace(['-', ' '], "_");
        c == "member_not_found" || c == "channel_member_not_found"
    }) {
        return true;
    }
    let Some(message) = error_message(body) else {
        return false;
    };
    let message = message.to_ascii_lowercase();
    message.contains("member")
        && (message.contains("not found")
            || message.contains("not exist")
            || message.contains("no such"))
}

/// The machine-readable code of an error body, when it has one: `{"error": {"code"}}` or
/// `{"code"}` (a string).
fn error_code_word(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Inner<'a> {
        #[serde(borrow)]
        code: Option<Str<'a>>,
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ErrorField<'a> {
        #[serde(borrow)]
        Object(Inner<'a>),
        Other(IgnoredAny),
    }
    #[derive(Deserialize)]
    struct Body<'a> {
        #[serde(borrow)]
        error: Option<ErrorField<'a>>,
        #[serde(borrow)]
        code: Option<Loose<'a>>,
    }
    let body: Body<'_> = serde_json::from_slice(body).ok()?;
    match body.error {
        Some(ErrorField::Object(Inner { code: Some(code) })) => Some(code.as_str().to_owned()),
        _ => body.code.as_ref().and_then(Loose::text).map(str::to_owned),
    }
}

async fn create_contact(
    ctx: &mut CallContext<'_>,
    body: &ContactCreate,
) -> Result<Output, ApiError> {
    let request = member_create_body(body)?;
    let what = "the LINE channel to create the member in";
    let channel_id = required_int(ctx, &body.vendor_fields, "channel_id", what)?;
    let created = fetch(
        ctx,
        "contacts.create",
        VendorCall::new()
            .param("channel_id", channel_id.to_string())
            .body(VendorBody::json(&request)),
    )
    .await?;
    let created: WireCreated = created[..].wire(VENDOR, "created member")?;
    let keys = MemberKeys {
        channel_id,
        member_id: positive(created.member_id)
            .ok_or_else(|| bad_response(VENDOR, "created member has no positive member_id"))?,
    };
    let member = fetch(ctx, "contacts.get", keys.call()).await?;
    let types = member_types(ctx)?;
    let contact = translate_contact(&Mapper::new(ctx), &types, channel_id, &member[..])?;
    Ok(Output::Created(contact.into()))
}

/// The implicit conversation of a member: the member, then its assignment relationship.
async fn get_conversation(
    ctx: &mut CallContext<'_>,
    keys: MemberKeys,
) -> Result<Conversation, ApiError> {
    let member = fetch(ctx, "contacts.get", keys.call()).await?;
    let assignment = fetch(ctx, "conversations.assignment", keys.call()).await?;
    let types = member_types(ctx)?;
    translate_conversation(
        &Mapper::new(ctx),
        &types,
        keys.channel_id,
        &member[..],
        &assignment[..],
    )
}

async fn create_conversation(
    ctx: &mut CallContext<'_>,
    body: &ConversationCreate,
    contact_id: Option<&ObjectId>,
) -> Result<Output, ApiError> {
    // Everything that can be checked without the vendor is checked first.
    let Some(contact_id) = contact_id else {
        return Err(ApiError::invalid(
            "caac conversations belong to an existing member (one implicit conversation each): \
             pass contact_id; create the member first with POST /v1/contacts and a line handle",
        ));
    };
    let keys = member_keys(contact_id)?;
    let text = check_conversation_create(body)?;
    let user_id = match text {
        Some(_) => {
            ctx.require_routes(["messages.send"], "send the first message; leave out text")?;
            Some(user_id(ctx, &body.vendor_fields)?)
        }
        None => None,
    };
    let mut conversation = get_conversation(ctx, keys).await?;
    if let (Some(wanted), Some(actual)) = (body.channel, conversation.channel) {
        if wanted != actual {
            return Err(ApiError::invalid(format!(
                "this member's conversation is on {}, not {}",
                channel_name(actual),
                channel_name(wanted)
            )));
        }
    }
    if let (Some(text), Some(user_id)) = (text, user_id) {
        let request = text_message_body(text, user_id, &body.vendor_fields)?;
        fetch(
            ctx,
            "messages.send",
            keys.call().body(VendorBody::json(&request)),
        )
        .await?;
        conversation = get_conversation(ctx, keys).await?;
    }
    Ok(Output::Created(conversation.into()))
}

async fn update_conversation(
    ctx: &mut CallContext<'_>,
    id: &ObjectId,
    patch: &ConversationPatch,
) -> Result<Output, ApiError> {
    let keys = member_keys(id)?;
    let fields = UpdateFields {
        user_id: int_field("user_id", ctx.vendor_field("user_id", &patch.vendor_fields))?,
        org_id: int_field("org_id", ctx.vendor_field("org_id", &patch.vendor_fields))?,
    };
    let plan = plan_conversation_update(patch, keys, &fields)?;
    let endpoints = plan.iter().map(|c| c.endpoint);
    let reads = ["contacts.get", "conversations.assignment"];
    ctx.require_routes(endpoints.chain(reads), "make this change")?;
    for planned in plan {
        fetch(
            ctx,
            planned.endpoint,
            keys.call().body(VendorBody::json(&planned.body)),
        )
        .await?;
    }
    let conversation = get_conversation(ctx, keys).await?;
    Ok(Output::Found(conversation.into()))
}

async fn send_message(
    ctx: &mut CallContext<'_>,
    conversation_id: &ObjectId,
    body: &MessageSend,
) -> Result<Output, ApiError> {
    let keys = member_keys(conversation_id)?;
    let text = check_message_send(body)?;
    let user_id = user_id(ctx, &body.vendor_fields)?;
    let request = text_message_body(text, user_id, &body.vendor_fields)?;
    let data = fetch(
        ctx,
        "messages.send",
        keys.call().body(VendorBody::json(&request)),
    )
    .await?;
    let message = translate_message(&Mapper::new(ctx), keys, &data[..], Some(user_id))?;
    Ok(Output::Created(message.into()))
}

// ----- IDs and vendor fields -----------------------------------------------------------------

/// The two integers that address a member, and so its implicit conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MemberKeys {
    channel_id: i64,
    member_id: i64,
}

impl MemberKeys {
    fn call(self) -> VendorCall {
        VendorCall::new()
            .param("channel_id", self.channel_id.to_string())
            .param("member_id", self.member_id.to_string())
    }

    fn keys(self) -> Vec<String> {
        vec![self.channel_id.to_string(), self.member_id.to_string()]
    }
}

fn positive(n: i64) -> Option<i64> {
    (n > 0).then_some(n)
}

/// A contact or conversation ID carries `[channel_id, member_id]`; anything else is not one
/// of ours (404, and no vendor call).
fn member_keys(id: &ObjectId) -> Result<MemberKeys, ApiError> {
    let [channel, member] = keys(&Caac, id)?;
    Ok(MemberKeys {
        channel_id: int_key(id, channel)?,
        member_id: int_key(id, member)?,
    })
}

/// The agent who acts: `vendor_fields.user_id`, else the connection's default.
fn user_id(ctx: &CallContext<'_>, vendor_fields: &Map<String, Value>) -> Result<i64, ApiError> {
    let what = "the caac user, a staff agent, who sends and closes";
    required_int(ctx, vendor_fields, "user_id", what)
}

/// The handle a contact lookup needs: CAAC finds members by their channel identity only.
fn lookup_handle<'f>(page: &Page, filters: &'f ContactFilters) -> Result<&'f Handle, ApiError> {
    // The gateway rejects filters missing from OPERATIONS; this guards the adapter anyway.
    if filters.q.is_some() || filters.email.is_some() || filters.phone.is_some() {
        return Err(ApiError::unsupported_filter(
            "caac can only look contacts up by handle (line:<uid>); q, email and phone are not \
             available",
        ));
    }
    let handle = filters.handle.as_ref().ok_or_else(|| {
        ApiError::invalid("caac can only look contacts up: pass handle=line:<uid>")
    })?;
    if matches!(
        handle.channel,
        HandleChannel::Email | HandleChannel::Phone | HandleChannel::Web
    ) {
        return Err(ApiError::invalid(
            "caac looks members up by their channel identity (handle=line:<uid>); email, phone \
             and web handles are not member identities",
        ));
    }
    if handle.value.trim().is_empty() {
        return Err(ApiError::invalid("handle needs a value, e.g. line:U123…"));
    }
    if page.cursor.is_some() {
        return Err(ApiError::invalid(
            "cursor is not a caac cursor: a caac lookup has a single page",
        ));
    }
    Ok(handle)
}

/// Whether a found member carries the handle that was asked for. `other` on either side
/// matches any channel (the member's channel type may be unknown).
fn handle_matches(handles: &[Handle], wanted: &Handle) -> bool {
    handles.iter().any(|h| {
        h.value == wanted.value
            && (h.channel == wanted.channel
                || h.channel == HandleChannel::Other
                || wanted.channel == HandleChannel::Other)
    })
}

// ----- the wire format -----------------------------------------------------------------------
//
// Wire structs are read straight from the vendor's bytes and borrow their text from them
// (`Str`, see `common::typed_lookup`); `raw` is built only when asked for.

/// A member, as Get Member By ID answers it, or as Get Member By Channel ID And External ID
/// does (which adds `channel_id`, names the e-mail and mobile `display_*` and has no
/// timestamps). The profile fields that have no normalized home are passed through as
/// `custom_fields` (see [`WireMember::custom_fields`]).
#[derive(Debug, Deserialize)]
struct WireMember<'a> {
    id: i64,
    /// Documented only as `"type": "string"`: what it means is provisional data
    /// ([`MemberTypes`]), never assumed here.
    #[serde(rename = "type", borrow)]
    kind: Option<Str<'a>>,
    #[serde(borrow)]
    external_member_id: Option<Str<'a>>,
    #[serde(borrow)]
    display_name: Option<Str<'a>>,
    #[serde(borrow)]
    name: Option<Str<'a>>,
    #[serde(borrow)]
    original_name: Option<Str<'a>>,
    #[serde(borrow)]
    email: Option<Str<'a>>,
    #[serde(borrow)]
    display_email: Option<Str<'a>>,
    #[serde(borrow)]
    original_email: Option<Str<'a>>,
    #[serde(borrow)]
    mobile: Option<Str<'a>>,
    #[serde(borrow)]
    display_mobile: Option<Str<'a>>,
    #[serde(borrow)]
    original_mobile: Option<Str<'a>>,
    #[serde(borrow)]
    avatar: Option<Str<'a>>,
    #[serde(borrow)]
    company: Option<Str<'a>>,
    #[serde(borrow)]
    country: Option<Str<'a>>,
    #[serde(borrow)]
    processing_state: Option<Str<'a>>,
    #[serde(borrow)]
    created_at: Option<Str<'a>>,
    #[serde(borrow)]
    updated_at: Option<Str<'a>>,
    #[serde(borrow)]
    last_message_at: Option<Str<'a>>,
    // Profile fields passed through as `custom_fields` (when set), as the vendor wrote them.
    account_manager: Option<Value>,
    birthday: Option<Value>,
    city: Option<Value>,
    connect_id: Option<Value>,
    custom_id: Option<Value>,
    customer_id: Option<Value>,
    engagement_level: Option<Value>,
    gender: Option<Value>,
    location: Option<Value>,
    member_level: Option<Value>,
    note: Option<Value>,
    star_mark: Option<Value>,
    status: Option<Value>,
}

impl WireMember<'_> {
    /// The profile fields that are set (not `null`, not blank text), by their CAAC names
    /// (moved out of the wire struct, not copied).
    fn custom_fields(&mut self) -> Map<String, Value> {
        let country = self.country.as_ref().map(|c| Value::from(c.as_str()));
        let fields = [
            ("account_manager", self.account_manager.take()),
            ("birthday", self.birthday.take()),
            ("city", self.city.take()),
            ("connect_id", self.connect_id.take()),
            ("country", country),
            ("custom_id", self.custom_id.take()),
            ("customer_id", self.customer_id.take()),
            ("engagement_level", self.engagement_level.take()),
            ("gender", self.gender.take()),
            ("location", self.location.take()),
            ("member_level", self.member_level.take()),
            ("note", self.note.take()),
            ("star_mark", self.star_mark.take()),
            ("status", self.status.take()),
        ];
        // A handful of entries: inserted one by one (cheaper than collecting and sorting).
        let mut set = Map::new();
        for (key, field) in fields {
            let Some(field) = field else { continue };
            let is_set = match &field {
                Value::Null => false,
                Value::String(s) => !s.trim().is_empty(),
                _ => true,
            };
            if is_set {
                set.insert(key.to_owned(), field);
            }
        }
        set
    }
}

/// Get Member Assignment Relationship (and the Manual assignment answer).
#[derive(Debug, Deserialize)]
struct WireAssignment<'a> {
    #[serde(borrow)]
    assign_type: Option<Str<'a>>,
    assignment_relationship: Option<WireRelationship>,
}

#[derive(Debug, Deserialize)]
struct WireRelationship {
    team_id: Option<i64>,
    user_id: Option<i64>,
}

/// Create or update a channel member answers `{member_id}`.
#[derive(Debug, Deserialize)]
struct WireCreated {
    member_id: i64,
}

/// A message, as Create Message from User answers it.
#[derive(Debug, Deserialize)]
struct WireMessage<'a> {
    id: i64,
    #[serde(rename = "type", borrow)]
    kind: Option<Str<'a>>,
    #[serde(borrow)]
    sender_type: Option<Str<'a>>,
    #[serde(borrow)]
    text: Option<Str<'a>>,
    read: Option<bool>,
    #[serde(borrow)]
    origin_url: Option<Str<'a>>,
    #[serde(borrow)]
    member_display_name: Option<Str<'a>>,
    #[serde(borrow)]
    metadata: Option<WireMetadata<'a>>,
    #[serde(borrow)]
    created_at: Option<Str<'a>>,
    #[serde(borrow)]
    updated_at: Option<Str<'a>>,
}

#[derive(Debug, Deserialize)]
struct WireMetadata<'a> {
    #[serde(borrow)]
    filename: Option<Str<'a>>,
    filesize_bytes: Option<i64>,
}

/// The vendor's error text from a non-2xx body. Its shape is not published; the common
/// shapes are all read: `{"error": {"message"}}`, `{"error": "…"}`, `{"message"}`, `{"detail"}`.
fn error_message(body: &[u8]) -> Option<String> {
    error_text(body, &["error", "message", "detail"])
}

/// Check a vendor answer: non-2xx → the error table. A 2xx's body is then read by the wire
/// struct of the call (an empty body fits none, so only answers nobody reads may be empty).
fn checked(response: &VendorResponse) -> Result<(), ApiError> {
    check_status(VENDOR, response, error_message)
}

// ----- vendor → normalized -------------------------------------------------------------------

/// What a member's `type` word means, from the routes file's `settings.member_types`: a table
/// of type word (case-insensitive) → normalized channel. The seed documents the field only as
/// `"type": "string"`, so the table is provisional data, not code. The safe default — no
/// table, or a word the table does not list — is that `type` says nothing: the member's
/// channel is then read only from what is confirmed (a LINE UID's shape), else left unknown.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct MemberTypes(Vec<(String, Channel)>);

/// The routes-file key of the table.
const MEMBER_TYPES: &str = "member_types";

impl MemberTypes {
    /// The table in a routes file's `settings` (none: the empty table). A table that is not a
    /// map of words to normalized channel names is refused with the reason.
    pub(crate) fn from_settings(settings: &BTreeMap<String, Value>) -> Result<Self, String> {
        let Some(table) = settings.get(MEMBER_TYPES) else {
            return Ok(MemberTypes::default());
        };
        let table = match table {
            Value::Null => return Ok(MemberTypes::default()),
            Value::Object(table) => table,
            _ => return Err("must be a map of member type words to channels".to_owned()),
        };
        let mut types = Vec::with_capacity(table.len());
        for (word, channel) in table {
            let channel = Channel::deserialize(channel).map_err(|_| {
                format!(
                    "{word}: {channel} is not a channel; use email, line, whatsapp, web, voice \
                     or other"
                )
            })?;
            if word.trim().is_empty() {
                return Err("a member type word must not be empty".to_owned());
            }
            types.push((word.trim().to_ascii_lowercase(), channel));
        }
        Ok(MemberTypes(types))
    }

    /// The channel a member type word means, if the table lists it.
    fn channel(&self, word: Option<&str>) -> Option<Channel> {
        let word = non_empty(word)?;
        self.0
            .iter()
            .find(|(w, _)| w.eq_ignore_ascii_case(word))
            .map(|(_, channel)| *channel)
    }
}

/// Check a routes file's `settings`: CAAC knows `member_types` only.
pub(crate) fn check_settings(settings: &BTreeMap<String, Value>) -> Result<(), SettingError> {
    if let Some(key) = settings.keys().find(|k| *k != MEMBER_TYPES) {
        return Err(SettingError {
            key: format!("settings.{key}"),
            reason: format!("unknown setting for caac; known: {MEMBER_TYPES}"),
        });
    }
    MemberTypes::from_settings(settings)
        .map(|_| ())
        .map_err(|reason| SettingError {
            key: format!("settings.{MEMBER_TYPES}"),
            reason,
        })
}

/// The channel of a member: what the routes file says its `type` means, else LINE when its
/// external id has the shape of a LINE UID (a confirmed LINE fact), else unknown.
fn member_channel(
    types: &MemberTypes,
    kind: Option<&str>,
    external_id: Option<&str>,
) -> Option<Channel> {
    types.channel(kind).or_else(|| {
        external_id
            .filter(|id| is_line_uid(id))
            .map(|_| Channel::Line)
    })
}

fn channel_name(channel: Channel) -> &'static str {
    match channel {
        Channel::Email => "email",
        Channel::Line => "line",
        Channel::Whatsapp => "whatsapp",
        Channel::Web => "web",
        Channel::Voice => "voice",
        Channel::Other => "other",
    }
}

/// A LINE user id: `U` and 32 lower-case hex digits (LINE Messaging API).
fn is_line_uid(value: &str) -> bool {
    value.len() == 33
        && value.starts_with('U')
        && value[1..]
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

/// The member's channel identity as a handle, on the member's channel ([`member_channel`]);
/// `other` when that is unknown.
fn member_handle(types: &MemberTypes, kind: Option<&str>, external_id: &str) -> Handle {
    let channel = match member_channel(types, kind, Some(external_id)) {
        Some(Channel::Line) => HandleChannel::Line,
        Some(Channel::Whatsapp) => HandleChannel::Whatsapp,
        Some(Channel::Web) => HandleChannel::Web,
        Some(Channel::Email) => HandleChannel::Email,
        Some(Channel::Voice) => HandleChannel::Phone,
        Some(Channel::Other) | None => HandleChannel::Other,
    };
    Handle {
        channel,
        value: external_id.to_owned(),
    }
}

/// Distinct non-empty values, first spelling wins (case-insensitive).
fn distinct(values: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for value in values {
        if !out.iter().any(|v| v.eq_ignore_ascii_case(&value)) {
            out.push(value);
        }
    }
    out
}

/// A CAAC member (either shape) as a normalized contact of channel `channel_id`.
pub(super) fn translate_contact<'a>(
    mapper: &Mapper,
    types: &MemberTypes,
    channel_id: i64,
    source: impl VendorJson<'a>,
) -> Result<Contact, ApiError> {
    let mut wire: WireMember<'_> = source.wire(VENDOR, "member")?;
    let member_id =
        positive(wire.id).ok_or_else(|| bad_response(VENDOR, "member id is not positive"))?;
    let custom_fields = wire.custom_fields();
    let name = [&wire.display_name, &wire.name, &wire.original_name]
        .into_iter()
        .find_map(owned_text);
    let emails = distinct(
        [&wire.email, &wire.display_email, &wire.original_email]
            .into_iter()
            .filter_map(owned_text),
    );
    let country = text(&wire.country);
    let phones = distinct(
        [&wire.mobile, &wire.display_mobile, &wire.original_mobile]
            .into_iter()
            .filter_map(text)
            .map(|m| phone::normalize(m, country)),
    );
    let handles = text(&wire.external_member_id)
        .map(|external| vec![member_handle(types, text(&wire.kind), external)])
        .unwrap_or_default();
    // The ID's keys are `[channel_id, member_id]` (as `MemberKeys::keys`), minted from borrowed
    // text: the member id's digits are the contact's `remote_id` as well.
    let remote_id = member_id.to_string();
    let id = mapper.id_of(Kind::Contact, &[&channel_id.to_string(), &remote_id]);
    Ok(Contact {
        id,
        connection: mapper.connection.clone(),
        vendor: vendor_label(VENDOR),
        remote_id,
        created_at: owned_text(&wire.created_at),
        updated_at: owned_text(&wire.updated_at),
        name,
        first_name: None,
        last_name: None,
        emails,
        phones,
        handles,
        company: owned_text(&wire.company),
        avatar_url: owned_text(&wire.avatar),
        custom_fields,
        raw: mapper.raw_with(|| source.tree()),
    })
}

/// CAAC's processing state → the normalized status. Only `resolved` is documented (Close
/// Conversation sets it); the rest is read leniently and unknown words count as open.
fn status_from_processing_state(state: Option<&str>) -> ConversationStatus {
    match non_empty(state).map(str::to_ascii_lowercase).as_deref() {
        Some("resolved") => ConversationStatus::Resolved,
        Some("closed") => ConversationStatus::Closed,
        Some("pending" | "waiting" | "snoozed") => ConversationStatus::Pending,
        _ => ConversationStatus::Open,
    }
}

/// The assignee of an assignment relationship; `unassigned`, or no positive id, is none.
fn assignee_from(assignment: &WireAssignment<'_>) -> Option<Assignee> {
    if text(&assignment.assign_type).is_some_and(|t| t.eq_ignore_ascii_case("unassigned")) {
        return None;
    }
    let relationship = assignment.assignment_relationship.as_ref()?;
    let user_id = relationship.user_id.and_then(positive);
    let team_id = relationship.team_id.and_then(positive);
    (user_id.is_some() || team_id.is_some()).then(|| Assignee {
        user_id: user_id.map(|id| id.to_string()),
        team_id: team_id.map(|id| id.to_string()),
    })
}

/// A member and its assignment relationship as the member's implicit conversation.
fn translate_conversation<'a>(
    mapper: &Mapper,
    types: &MemberTypes,
    channel_id: i64,
    member: impl VendorJson<'a>,
    assignment: impl VendorJson<'a>,
) -> Result<Conversation, ApiError> {
    let wire: WireMember<'_> = member.wire(VENDOR, "member")?;
    let relationship: WireAssignment<'_> = assignment.wire(VENDOR, "assignment relationship")?;
    let member_id =
        positive(wire.id).ok_or_else(|| bad_response(VENDOR, "member id is not positive"))?;
    let keys = MemberKeys {
        channel_id,
        member_id,
    };
    let vendor_status = owned_text(&wire.processing_state);
    Ok(Conversation {
        id: mapper.id(Kind::Conversation, keys.keys()),
        connection: mapper.connection.clone(),
        vendor: vendor_label(VENDOR),
        remote_id: member_id.to_string(),
        created_at: owned_text(&wire.created_at),
        updated_at: owned_text(&wire.updated_at),
        contact_id: Some(mapper.id(Kind::Contact, keys.keys())),
        channel: member_channel(types, text(&wire.kind), text(&wire.external_member_id)),
        status: status_from_processing_state(vendor_status.as_deref()),
        vendor_status,
        subject: None,
        assignee: assignee_from(&relationship),
        priority: None,
        tags: Vec::new(),
        last_message_at: owned_text(&wire.last_message_at),
        raw: mapper
            .raw_with(|| json!({ "member": member.tree(), "assignment": assignment.tree() })),
    })
}

fn message_type(kind: Option<&str>) -> MessageType {
    match non_empty(kind).map(str::to_ascii_lowercase).as_deref() {
        Some("text") | None => MessageType::Text,
        Some("image") => MessageType::Image,
        Some("video") => MessageType::Video,
        Some("audio") => MessageType::Audio,
        Some("file") => MessageType::File,
        Some("location") => MessageType::Location,
        Some(_) => MessageType::Other,
    }
}

/// A CAAC message of the member `keys` as a normalized message. `sent_by` is the user the
/// adapter sent it as (CAAC's answer does not name the user).
fn translate_message<'a>(
    mapper: &Mapper,
    keys: MemberKeys,
    source: impl VendorJson<'a>,
    sent_by: Option<i64>,
) -> Result<Message, ApiError> {
    let wire: WireMessage<'_> = source.wire(VENDOR, "message")?;
    let message_id =
        positive(wire.id).ok_or_else(|| bad_response(VENDOR, "message id is not positive"))?;
    let sender_type = match text(&wire.sender_type)
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("member") => SenderType::Contact,
        Some("bot" | "ai" | "ai_agent") => SenderType::Bot,
        Some("system") => SenderType::System,
        _ => SenderType::Agent,
    };
    let direction = if sender_type == SenderType::Contact {
        Direction::Inbound
    } else {
        Direction::Outbound
    };
    let sender = match sender_type {
        SenderType::Contact => Sender {
            type_: sender_type,
            id: Some(keys.member_id.to_string()),
            name: owned_text(&wire.member_display_name),
        },
        _ => Sender {
            type_: sender_type,
            id: sent_by.map(|id| id.to_string()),
            name: None,
        },
    };
    let type_ = message_type(text(&wire.kind));
    let attachments = owned_text(&wire.origin_url)
        .map(|url| {
            vec![Attachment {
                type_: match type_ {
                    MessageType::Image | MessageType::Video | MessageType::Audio => type_,
                    _ => MessageType::File,
                },
                url: Some(url),
                name: wire.metadata.as_ref().and_then(|m| owned_text(&m.filename)),
                size: wire
                    .metadata
                    .as_ref()
                    .and_then(|m| m.filesize_bytes)
                    .and_then(|s| u64::try_from(s).ok()),
            }]
        })
        .unwrap_or_default();
    let status = match (direction, wire.read) {
        (Direction::Inbound, _) => MessageStatus::Received,
        (Direction::Outbound, Some(true)) => MessageStatus::Read,
        (Direction::Outbound, _) => MessageStatus::Sent,
    };
    Ok(Message {
        id: mapper.id(
            Kind::Message,
            vec![
                keys.channel_id.to_string(),
                keys.member_id.to_string(),
                message_id.to_string(),
            ],
        ),
        connection: mapper.connection.clone(),
        vendor: vendor_label(VENDOR),
        remote_id: message_id.to_string(),
        created_at: owned_text(&wire.created_at),
        updated_at: owned_text(&wire.updated_at),
        conversation_id: mapper.id(Kind::Conversation, keys.keys()),
        direction,
        sender,
        type_,
        text: owned_text(&wire.text),
        html: None,
        attachments,
        private: false,
        status: Some(status),
        raw: mapper.raw_with(|| source.tree()),
    })
}

// ----- normalized → vendor -------------------------------------------------------------------

/// The body of Create or update a channel member: the LINE UID, and nothing else CAAC could
/// store — so anything else in the request is refused, never dropped.
fn member_create_body(body: &ContactCreate) -> Result<Value, ApiError> {
    let mut refused: Vec<&str> = Vec::new();
    for (field, value) in [
        ("name", &body.name),
        ("first_name", &body.first_name),
        ("last_name", &body.last_name),
        ("company", &body.company),
        ("avatar_url", &body.avatar_url),
    ] {
        if non_empty(value.as_deref()).is_some() {
            refused.push(field);
        }
    }
    if !body.emails.is_empty() {
        refused.push("emails");
    }
    if !body.phones.is_empty() {
        refused.push("phones");
    }
    if !body.custom_fields.is_empty() {
        refused.push("custom_fields");
    }
    if body
        .handles
        .iter()
        .any(|h| h.channel != HandleChannel::Line)
    {
        refused.push("non-line handles");
    }
    if !refused.is_empty() {
        return Err(ApiError::invalid(format!(
            "caac creates a member from its LINE UID only (the profile comes from LINE) and \
             cannot set {}",
            refused.join(", ")
        )));
    }
    let uid =
        match body.handles.as_slice() {
            [handle] => handle.value.trim(),
            [] => return Err(ApiError::invalid(
                "caac creates members in a LINE channel: pass handles: [{\"channel\": \"line\", \
                 \"value\": \"U…\"}]",
            )),
            _ => return Err(ApiError::invalid("caac members have exactly one LINE UID")),
        };
    if uid.is_empty() || uid.chars().any(char::is_whitespace) {
        return Err(ApiError::invalid(
            "the line handle must be a LINE UID such as U4af4980629…",
        ));
    }
    Ok(json!({ "channel_member_id": uid }))
}

/// What a conversation create asks that CAAC cannot do, refused before any call; answers the
/// first message's text, if any.
fn check_conversation_create(body: &ConversationCreate) -> Result<Option<&str>, ApiError> {
    if non_empty(body.subject.as_deref()).is_some() {
        return Err(ApiError::invalid("caac conversations have no subject"));
    }
    Ok(non_empty(body.text.as_deref()))
}

/// What a message send asks that CAAC cannot do, refused before any call; answers the text.
fn check_message_send(body: &MessageSend) -> Result<&str, ApiError> {
    if body.template.is_some() {
        return Err(ApiError::unsupported_operation(
            "caac documents no message templates (only raw LINE Flex content)",
        ));
    }
    if !body.attachments.is_empty() {
        return Err(attachment::refused(
            VENDOR,
            "CAAC publishes no media upload call to get an attachment_id from, and no media \
             values for a message's type",
        ));
    }
    if body.private {
        return Err(ApiError::unsupported_operation(
            "caac has no internal notes: every message goes to the member",
        ));
    }
    non_empty(body.text.as_deref()).ok_or_else(|| ApiError::invalid("a caac message needs text"))
}

/// The body of Create Message from User: a text message from `user_id`. The documented
/// optional `external_id` (string) and `reply_to` (message id) are taken from `vendor_fields`.
fn text_message_body(
    text: &str,
    user_id: i64,
    vendor_fields: &Map<String, Value>,
) -> Result<Value, ApiError> {
    let mut body = Map::new();
    body.insert("type".into(), "text".into());
    body.insert("user_id".into(), user_id.into());
    body.insert("text".into(), text.into());
    match vendor_fields.get("external_id") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if !s.trim().is_empty() => {
            body.insert("external_id".into(), s.trim().into());
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "vendor_fields.external_id must be a non-empty string",
            ))
        }
    }
    if let Some(reply_to) = int_field("reply_to", vendor_fields.get("reply_to"))? {
        body.insert("reply_to".into(), reply_to.into());
    }
    Ok(Value::Object(body))
}

/// Vendor fields a conversation update may need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct UpdateFields {
    user_id: Option<i64>,
    org_id: Option<i64>,
}

/// One vendor call of a conversation update.
#[derive(Debug, Clone, PartialEq)]
struct PlannedCall {
    endpoint: &'static str,
    body: Value,
}

/// The calls a conversation PATCH needs, in order: assignment, then closing. What CAAC cannot
/// change (priority, tags, any status but resolved) is refused first, before any call.
fn plan_conversation_update(
    patch: &ConversationPatch,
    keys: MemberKeys,
    fields: &UpdateFields,
) -> Result<Vec<PlannedCall>, ApiError> {
    if patch.is_empty() {
        return Err(ApiError::invalid(
            "nothing to update: pass status or assignee",
        ));
    }
    if patch.priority.is_some() {
        return Err(ApiError::unsupported_operation(
            "caac conversations have no priority",
        ));
    }
    if patch.tags.is_some() {
        return Err(ApiError::unsupported_operation(
            "caac has no call to tag a conversation",
        ));
    }
    if let Some(status) = patch.status.filter(|s| *s != ConversationStatus::Resolved) {
        return Err(ApiError::unsupported_operation(format!(
            "caac can only resolve a conversation (Close Conversation); it cannot set status {}",
            status.as_str()
        )));
    }
    let mut plan = Vec::new();
    if let Some(assignee) = &patch.assignee {
        let org_id = fields.org_id.ok_or_else(|| {
            missing_field(VENDOR, "org_id", "the caac organization, needed to assign")
        })?;
        let mut body = Map::new();
        body.insert("channel_id".into(), keys.channel_id.into());
        body.insert("member_id".into(), keys.member_id.into());
        body.insert("org_id".into(), org_id.into());
        match assignee {
            // Manual assignment: `assign_type: unassigned` clears; omitted, it assigns.
            None => {
                body.insert("assign_type".into(), "unassigned".into());
            }
            Some(assignee) => {
                if assignee.user_id.is_none() && assignee.team_id.is_none() {
                    return Err(ApiError::invalid(
                        "assignee needs user_id or team_id; send assignee: null to unassign",
                    ));
                }
                let mut relationship = Map::new();
                if let Some(team) = &assignee.team_id {
                    relationship.insert(
                        "team_id".into(),
                        assignee_id(VENDOR, "team_id", team)?.into(),
                    );
                }
                if let Some(user) = &assignee.user_id {
                    relationship.insert(
                        "user_id".into(),
                        assignee_id(VENDOR, "user_id", user)?.into(),
                    );
                }
                body.insert(
                    "assignment_relationship".into(),
                    Value::Object(relationship),
                );
            }
        }
        plan.push(PlannedCall {
            endpoint: "conversations.assign",
            body: Value::Object(body),
        });
    }
    if patch.status == Some(ConversationStatus::Resolved) {
        let user_id = fields.user_id.ok_or_else(|| {
            missing_field(
                VENDOR,
                "user_id",
                "the caac user, a staff agent, who closes",
            )
        })?;
        plan.push(PlannedCall {
            endpoint: "conversations.close",
            body: json!({ "user_id": user_id }),
        });
    }
    Ok(plan)
}

#[cfg(all(test, feature = "sandbox"))]
// Tests may panic on a broken fixture; that is their job.
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::api::model::{ContactPatch, NewContact};
    use crate::api::request::ConversationFilters;
    use crate::api::ErrorCode;
    use crate::sandbox::caac::seed;
    use crate::sandbox::{Credentials, Sandbox};
    use crate::snapshot::Connection;
    use crate::vendors::common::parse_wire;
    use crate::vendors::test_support::{self, list_json, object_json, response, run};

    const MEMBER: &str = include_str!("../../tests/fixtures/caac/member.json");
    const MEMBER_BY_EXTERNAL_ID: &str =
        include_str!("../../tests/fixtures/caac/member_by_external_id.json");
    const ASSIGNMENT: &str = include_str!("../../tests/fixtures/caac/assignment.json");
    const MEMBER_CREATED: &str = include_str!("../../tests/fixtures/caac/member_created.json");
    const MESSAGE: &str = include_str!("../../tests/fixtures/caac/message.json");
    const ERROR: &str = include_str!("../../tests/fixtures/caac/error.json");
    const SEED_EXAMPLES: &str = include_str!("../../tests/fixtures/caac/seed_examples.json");

    const UID: &str = "U8c1e0f5a9d2b4c6e8f0a1b3c5d7e9f21";
    const CHANNEL: i64 = 12345;
    const KEYS: MemberKeys = MemberKeys {
        channel_id: CHANNEL,
        member_id: 67890,
    };

    fn fixture(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    /// The member types the shipped routes file sets.
    fn types() -> MemberTypes {
        let routes = crate::vendors::test_support::compiled_routes(Vendor::Caac);
        MemberTypes::from_settings(&routes.settings).unwrap()
    }

    fn mapper(want_raw: bool) -> Mapper {
        Mapper {
            tenant: "acme".into(),
            connection: "caac".into(),
            want_raw,
        }
    }

    fn object_id(kind: Kind, keys: &[&str]) -> ObjectId {
        ObjectId::new(
            kind,
            "acme",
            "caac",
            keys.iter().map(|k| k.to_string()).collect(),
        )
    }

    fn id(kind: Kind, keys: &[&str]) -> String {
        object_id(kind, keys).encode()
    }

    fn patch(value: Value) -> ConversationPatch {
        serde_json::from_value(value).unwrap()
    }

    fn send(value: Value) -> MessageSend {
        serde_json::from_value(value).unwrap()
    }

    fn create(value: Value) -> ContactCreate {
        serde_json::from_value(value).unwrap()
    }

    const FIELDS: UpdateFields = UpdateFields {
        user_id: Some(501),
        org_id: Some(8801),
    };

    // ----- answers and errors --------------------------------------------------------------

    #[test]
    fn answers_are_json_and_errors_map_by_status_with_the_vendor_message() {
        checked(&response(200, MEMBER)).unwrap();
        checked(&response(204, "")).unwrap();

        let err = checked(&response(400, ERROR)).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest);
        assert!(err.detail.contains("not a LINE user ID"), "{}", err.detail);
        assert_eq!(err.vendor_status, Some(400));
        // The error shape is unpublished: the common alternatives are read too.
        for body in [
            r#"{"error":"bad user_id"}"#,
            r#"{"message":"bad user_id"}"#,
            r#"{"detail":"bad user_id"}"#,
        ] {
            let err = checked(&response(422, body)).unwrap_err();
            assert!(err.detail.contains("bad user_id"), "{body}");
        }
        assert!(checked(&response(400, "<html>"))
            .unwrap_err()
            .detail
            .contains("no reason given"));

        for (status, code) in [
            (401, ErrorCode::VendorAuthFailed),
            (403, ErrorCode::Forbidden),
            (404, ErrorCode::NotFound),
            (500, ErrorCode::VendorError),
            (503, ErrorCode::VendorError),
            (418, ErrorCode::VendorError),
        ] {
            let err = checked(&response(status, ERROR)).unwrap_err();
            assert_eq!(err.code, code, "status {status}");
            assert_eq!(err.vendor, Some(Vendor::Caac));
        }
        let mut limited = response(429, "");
        limited.retry_after = Some(30);
        let err = checked(&limited).unwrap_err();
        assert_eq!(
            (err.code, err.retry_after),
            (ErrorCode::VendorRateLimited, Some(30))
        );
        let truncated = br#"{"id":30001,"display_name":"Wei"#.as_slice();
        let err = translate_contact(&mapper(false), &types(), 1, truncated).unwrap_err();
        assert_eq!(err.code, ErrorCode::VendorBadResponse);
    }

    #[test]
    fn the_documented_examples_fit_the_wire_types_and_the_bodies_we_build() {
        let examples = fixture(SEED_EXAMPLES);
        for key in [
            "get_member_by_id",
            "get_member_by_channel_id_and_external_id",
        ] {
            parse_wire::<WireMember>(VENDOR, key, &examples[key]).unwrap();
        }
        for key in [
            "get_member_assignment_relationship",
            "manual_assignment_response",
        ] {
            parse_wire::<WireAssignment>(VENDOR, key, &examples[key]).unwrap();
        }
        parse_wire::<WireCreated>(VENDOR, "created", &examples["create_member_response"]).unwrap();
        parse_wire::<WireMessage>(
            VENDOR,
            "message",
            &examples["create_message_from_user_response"],
        )
        .unwrap();
        // The placeholder id 0 is no member a translation could address.
        let err = translate_contact(
            &mapper(false),
            &types(),
            CHANNEL,
            &examples["get_member_by_id"],
        )
        .unwrap_err();
        assert_eq!(err.code, ErrorCode::VendorBadResponse);

        // Every body the adapter builds uses only documented request properties.
        let documented = |example: &str, body: &Value| {
            let allowed = examples[example].as_object().unwrap();
            for (key, value) in body.as_object().unwrap() {
                assert!(allowed.contains_key(key), "{example}: undocumented {key}");
                if let (Value::Object(inner), Some(Value::Object(doc))) = (value, allowed.get(key))
                {
                    for k in inner.keys() {
                        assert!(doc.contains_key(k), "{example}: undocumented {key}.{k}");
                    }
                }
            }
        };
        let member = member_create_body(&create(
            json!({"handles": [{"channel": "line", "value": UID}]}),
        ))
        .unwrap();
        documented("create_member_request", &member);
        let vendor_fields = json!({"external_id": "x-1", "reply_to": 7});
        let message = text_message_body("hi", 501, vendor_fields.as_object().unwrap()).unwrap();
        documented("create_message_from_user_request", &message);
        let both = json!({"status": "resolved", "assignee": {"user_id": "1", "team_id": "2"}});
        let plan = plan_conversation_update(&patch(both), KEYS, &FIELDS).unwrap();
        documented("manual_assignment_request", &plan[0].body);
        documented("close_conversation_request", &plan[1].body);
        let unassign =
            plan_conversation_update(&patch(json!({"assignee": null})), KEYS, &FIELDS).unwrap();
        documented("manual_assignment_request", &unassign[0].body);
    }

    // ----- contacts --------------------------------------------------------------------------

    #[test]
    fn member_maps_every_field() {
        let value = fixture(MEMBER);
        let c = translate_contact(&mapper(false), &types(), CHANNEL, &value).unwrap();
        assert_eq!(c.id, id(Kind::Contact, &["12345", "67890"]));
        assert_eq!(c.remote_id, "67890");
        assert_eq!((c.connection.as_str(), c.vendor), ("caac", "caac"));
        assert_eq!(c.name.as_deref(), Some("Hsu Ya-Ting"));
        assert_eq!((c.first_name, c.last_name), (None, None));
        // The profile e-mail and the LINE one differ only in case: one address.
        assert_eq!(c.emails, vec!["yating.hsu@example.com.tw"]);
        // A national TW number and the same number in international form: one E.164 phone.
        assert_eq!(c.phones, vec!["+886933123456"]);
        assert_eq!(
            c.handles,
            vec![Handle {
                channel: HandleChannel::Line,
                value: UID.into()
            }]
        );
        assert_eq!(c.company.as_deref(), Some("Sun Moon Bakery"));
        assert_eq!(
            c.avatar_url.as_deref(),
            Some("https://profile.line-scdn.net/0hAbCdEfGhIj/avatar.jpg")
        );
        assert_eq!(
            Value::Object(c.custom_fields),
            json!({
                "account_manager": "Mei Lin",
                "birthday": "1990-07-21",
                "city": "Taichung",
                "country": "TW",
                "custom_id": "CRM-88213",
                "engagement_level": "high",
                "gender": "female",
                "member_level": "VIP",
                "note": "Wholesale customer",
                "star_mark": true,
                "status": "follow",
            })
        );
        assert_eq!(c.created_at.as_deref(), Some("2024-11-02T03:15:20Z"));
        assert_eq!(c.updated_at.as_deref(), Some("2025-05-21T05:08:42Z"));
        assert!(c.raw.is_none());
        let with_raw = translate_contact(&mapper(true), &types(), CHANNEL, &value).unwrap();
        assert_eq!(with_raw.raw, Some(value));
    }

    #[test]
    fn looked_up_member_maps_its_own_shape() {
        let c = translate_contact(
            &mapper(false),
            &types(),
            CHANNEL,
            &fixture(MEMBER_BY_EXTERNAL_ID),
        )
        .unwrap();
        assert_eq!(c.id, id(Kind::Contact, &["12345", "67891"]));
        // No display name: the LINE profile name.
        assert_eq!(c.name.as_deref(), Some("Somsak K."));
        assert_eq!(c.emails, vec!["Somsak.K@example.co.th"]);
        assert_eq!(c.phones, vec!["+66812345678"]);
        assert_eq!(c.handles[0].channel, HandleChannel::Line);
        assert_eq!((c.created_at, c.updated_at), (None, None));
        assert_eq!((c.company, c.avatar_url), (None, None));
        assert_eq!(
            Value::Object(c.custom_fields),
            json!({"city": "Bangkok", "country": "Thailand", "customer_id": "C-0042", "star_mark": false, "status": "follow"})
        );
    }

    #[test]
    fn handles_follow_the_member_types_table_or_the_line_uid_shape() {
        let shipped = types();
        let none = MemberTypes::default();
        let handle = |types: &MemberTypes, kind: Option<&str>, value: &str| {
            member_handle(types, kind, value).channel
        };
        assert_eq!(
            handle(&shipped, Some("LINE"), "anything"),
            HandleChannel::Line
        );
        assert_eq!(
            handle(&shipped, Some("whatsapp"), "886912345678"),
            HandleChannel::Whatsapp
        );
        assert_eq!(
            handle(&shipped, Some("facebook"), "6143823401928374"),
            HandleChannel::Other
        );
        assert_eq!(handle(&shipped, None, UID), HandleChannel::Line);
        assert_eq!(handle(&shipped, Some(" "), UID), HandleChannel::Line);
        assert_eq!(
            handle(&shipped, None, "6143823401928374"),
            HandleChannel::Other
        );
        // Without a table, `type` means nothing: only a LINE UID's shape says LINE.
        assert_eq!(
            handle(&none, Some("line"), "anything"),
            HandleChannel::Other
        );
        assert_eq!(handle(&none, Some("whatsapp"), UID), HandleChannel::Line);
        assert!(!is_line_uid("U8C1E0F5A9D2B4C6E8F0A1B3C5D7E9F21"));
        assert!(!is_line_uid("U8c1e0f5a9d2b4c6e"));
        let member = json!({"id": 5, "external_member_id": ""});
        let c = translate_contact(&mapper(false), &types(), 1, &member).unwrap();
        assert!(c.handles.is_empty() && c.emails.is_empty() && c.phones.is_empty());
        assert_eq!(c.name, None);
    }

    /// Issue 12 #6: the seed says only `"type": "string"`. Every plausible shape of the field
    /// — a channel word, a word with some other meaning, blank, `null`, absent — reads safely:
    /// the channel comes from the routes file's table when it lists the word, else from a LINE
    /// UID's shape, else it is unknown; a word is never taken for a channel by itself.
    #[test]
    fn member_type_means_a_channel_only_through_the_routes_table() {
        let shipped = types();
        let none = MemberTypes::default();
        let assignment = fixture(ASSIGNMENT);
        let psid = "6143823401928374";
        let conversation = |types: &MemberTypes, kind: Option<Value>, external: &str| {
            let mut member = json!({"id": 7, "external_member_id": external});
            if let Some(kind) = kind {
                member["type"] = kind;
            }
            let c = translate_conversation(&mapper(false), types, 1, &member, &assignment).unwrap();
            let contact = translate_contact(&mapper(false), types, 1, &member).unwrap();
            (c.channel, contact.handles[0].channel)
        };
        let line = (Some(Channel::Line), HandleChannel::Line);
        let unknown = (None, HandleChannel::Other);
        for (types, kind, external, want) in [
            // A channel word the table lists.
            (&shipped, Some(json!("line")), psid, line),
            (&shipped, Some(json!("LINE")), UID, line),
            (
                &shipped,
                Some(json!("facebook")),
                psid,
                (Some(Channel::Other), HandleChannel::Other),
            ),
            // A word of some other meaning (the seed's own example is "string").
            (&shipped, Some(json!("string")), psid, unknown),
            (&shipped, Some(json!("member")), UID, line),
            (&shipped, Some(json!("customer")), psid, unknown),
            // Blank, null, absent.
            (&shipped, Some(json!("")), psid, unknown),
            (&shipped, Some(Value::Null), UID, line),
            (&shipped, None, psid, unknown),
            // No table: the safe default, whatever the word.
            (&none, Some(json!("line")), psid, unknown),
            (&none, Some(json!("whatsapp")), UID, line),
            (&none, None, UID, line),
        ] {
            assert_eq!(
                conversation(types, kind.clone(), external),
                want,
                "{kind:?} {external}"
            );
        }
        // The seed documents a string: any other type is a bad response.
        let err = translate_contact(&mapper(false), &shipped, 1, &json!({"id": 7, "type": 3}))
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::VendorBadResponse);
    }

    #[test]
    fn member_types_are_checked_when_the_routes_file_loads() {
        let settings =
            |value: Value| -> BTreeMap<String, Value> { serde_json::from_value(value).unwrap() };
        assert_eq!(
            MemberTypes::from_settings(&settings(json!({}))).unwrap(),
            MemberTypes::default()
        );
        let table = MemberTypes::from_settings(&settings(
            json!({"member_types": {" Line ": "line", "ig": "other"}}),
        ))
        .unwrap();
        assert_eq!(table.channel(Some("LINE")), Some(Channel::Line));
        assert_eq!(table.channel(Some("ig")), Some(Channel::Other));
        assert_eq!(table.channel(Some("sms")), None);
        check_settings(&settings(json!({"member_types": null}))).unwrap();
        for (value, key, reason) in [
            (
                json!({"member_types": ["line"]}),
                "settings.member_types",
                "must be a map",
            ),
            (
                json!({"member_types": {"line": "telegram"}}),
                "settings.member_types",
                "line: \"telegram\" is not a channel",
            ),
            (
                json!({"member_types": {" ": "line"}}),
                "settings.member_types",
                "must not be empty",
            ),
            (
                json!({"member_type": {}}),
                "settings.member_type",
                "unknown setting for caac",
            ),
        ] {
            let err = check_settings(&settings(value.clone())).unwrap_err();
            assert_eq!(err.key, key, "{value}");
            assert!(err.reason.contains(reason), "{value}: {}", err.reason);
        }
    }

    /// Issue 12 #1: the lookup path is provisional, so a 404 is "no such member" only when
    /// CAAC's body says so; any other 404 (a wrong path, a wrong channel) is `vendor_error`
    /// naming the path.
    #[test]
    fn a_lookup_404_is_empty_only_when_caac_says_no_member_has_the_id() {
        let handle = Handle {
            channel: HandleChannel::Line,
            value: UID.into(),
        };
        let path = "/openapi/v1/channels/{channel_id}/members/external/{external_member_id}";
        let answer = |status: u16, body: &str| {
            let lookup = Lookup {
                channel_id: CHANNEL,
                handle: &handle,
                path,
            };
            lookup_answer(&mapper(false), &types(), &response(status, body), lookup)
        };
        for body in [
            r#"{"error": {"code": "not_found", "message": "member not found"}}"#,
            r#"{"error": {"code": "member_not_found", "message": "no record"}}"#,
            r#"{"code": "MEMBER_NOT_FOUND"}"#,
            r#"{"error": "Member does not exist"}"#,
            r#"{"message": "channel member not found"}"#,
            r#"{"detail": "No such member in channel 12345"}"#,
        ] {
            let (data, next) = list_json(answer(404, body).unwrap());
            assert!(data.is_empty() && next.is_none(), "{body}");
        }
        for body in [
            "",
            "404 page not found",
            "<html><body>Not Found</body></html>",
            r#"{"detail": "Not Found"}"#,
            r#"{"error": {"code": "not_found", "message": "Not found"}}"#,
            r#"{"error": {"code": "not_found", "message": "channel not found"}}"#,
            r#"{"code": 404, "message": "route not found"}"#,
        ] {
            let err = answer(404, body).unwrap_err();
            assert_eq!(err.code, ErrorCode::VendorError, "{body}");
            assert_eq!(err.vendor_status, Some(404));
            assert!(err.detail.contains(path), "{}", err.detail);
        }
        // A member that is found is a page of that member; other statuses map as usual.
        let (data, _) = list_json(answer(200, MEMBER).unwrap());
        assert_eq!(data.len(), 1);
        assert_eq!(answer(500, ERROR).unwrap_err().code, ErrorCode::VendorError);
        let err = answer(200, r#"{"id": 67890, "display_name": 3}"#).unwrap_err();
        assert_eq!(err.code, ErrorCode::VendorBadResponse);
    }

    #[test]
    fn a_member_without_a_positive_integer_id_is_a_bad_response() {
        for value in [
            json!({"display_name": "x"}),
            json!({"id": "12"}),
            json!({"id": -1}),
            json!([]),
        ] {
            let err = translate_contact(&mapper(false), &types(), 1, &value).unwrap_err();
            assert_eq!(err.code, ErrorCode::VendorBadResponse, "{value}");
        }
    }

    #[test]
    fn member_create_sends_the_line_uid_and_refuses_everything_else() {
        let body = create(json!({"handles": [{"channel": "line", "value": format!(" {UID} ")}]}));
        assert_eq!(
            member_create_body(&body).unwrap(),
            json!({"channel_member_id": UID})
        );
        for (value, hint) in [
            (
                json!({"name": "Ya-Ting", "handles": [{"channel": "line", "value": UID}]}),
                "cannot set name",
            ),
            (
                json!({"emails": ["a@b.tw"], "phones": ["+886"], "handles": [{"channel": "line", "value": UID}]}),
                "cannot set emails, phones",
            ),
            (
                json!({"custom_fields": {"x": 1}, "company": "C", "handles": [{"channel": "line", "value": UID}]}),
                "cannot set company, custom_fields",
            ),
            (
                json!({"handles": [{"channel": "whatsapp", "value": "886912345678"}]}),
                "non-line handles",
            ),
            (json!({}), "handles: [{\"channel\": \"line\""),
            (
                json!({"handles": [{"channel": "line", "value": UID}, {"channel": "line", "value": "U2"}]}),
                "exactly one LINE UID",
            ),
            (
                json!({"handles": [{"channel": "line", "value": " "}]}),
                "must be a LINE UID",
            ),
        ] {
            let err = member_create_body(&create(value.clone())).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidRequest, "{value}");
            assert!(err.detail.contains(hint), "{value}: {}", err.detail);
        }
        // Whitespace-only optional fields are not input.
        let blank = create(json!({"name": " ", "handles": [{"channel": "line", "value": UID}]}));
        assert!(member_create_body(&blank).is_ok());
    }

    #[test]
    fn created_member_answer_is_read() {
        let created: WireCreated = parse_wire(VENDOR, "created", &fixture(MEMBER_CREATED)).unwrap();
        assert_eq!(created.member_id, 67892);
        assert!(parse_wire::<WireCreated>(VENDOR, "created", &json!({"id": 1})).is_err());
    }

    #[test]
    fn lookups_need_a_channel_identity_handle() {
        let page = |cursor| Page { limit: 20, cursor };
        let filters = |handle: Option<(&str, &str)>| ContactFilters {
            handle: handle.map(|(c, v)| Handle {
                channel: HandleChannel::parse(c).unwrap(),
                value: v.into(),
            }),
            ..Default::default()
        };
        let ok = filters(Some(("line", UID)));
        assert_eq!(lookup_handle(&page(None), &ok).unwrap().value, UID);
        let err = lookup_handle(&page(None), &filters(None)).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest);
        assert_eq!(
            err.detail,
            "caac can only look contacts up: pass handle=line:<uid>"
        );
        for channel in ["email", "phone", "web"] {
            let err = lookup_handle(&page(None), &filters(Some((channel, "x")))).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidRequest, "{channel}");
        }
        assert!(lookup_handle(&page(None), &filters(Some(("line", " ")))).is_err());
        assert!(lookup_handle(&page(Some(json!({"after": "x"}))), &ok).is_err());
        let q = ContactFilters {
            q: Some("ya".into()),
            ..ok.clone()
        };
        assert_eq!(
            lookup_handle(&page(None), &q).unwrap_err().code,
            ErrorCode::UnsupportedFilter
        );

        let line = |v: &str| Handle {
            channel: HandleChannel::Line,
            value: v.into(),
        };
        let other = Handle {
            channel: HandleChannel::Other,
            value: UID.into(),
        };
        assert!(handle_matches(&[line(UID)], &line(UID)));
        assert!(!handle_matches(&[line(UID)], &line("U0")));
        assert!(handle_matches(std::slice::from_ref(&other), &line(UID)));
        assert!(handle_matches(&[line(UID)], &other));
        let whatsapp = Handle {
            channel: HandleChannel::Whatsapp,
            value: UID.into(),
        };
        assert!(!handle_matches(&[line(UID)], &whatsapp));
    }

    // ----- conversations ---------------------------------------------------------------------

    #[test]
    fn member_and_assignment_map_to_the_implicit_conversation() {
        let member = fixture(MEMBER);
        let assignment = fixture(ASSIGNMENT);
        let c =
            translate_conversation(&mapper(true), &types(), CHANNEL, &member, &assignment).unwrap();
        assert_eq!(c.id, id(Kind::Conversation, &["12345", "67890"]));
        assert_eq!(c.remote_id, "67890");
        assert_eq!(c.contact_id, Some(id(Kind::Contact, &["12345", "67890"])));
        assert_eq!(c.channel, Some(Channel::Line));
        assert_eq!(c.status, ConversationStatus::Open);
        assert_eq!(c.vendor_status.as_deref(), Some("processing"));
        assert_eq!(
            c.assignee,
            Some(Assignee {
                user_id: Some("501".into()),
                team_id: Some("71".into())
            })
        );
        assert_eq!((c.subject, c.priority), (None, None));
        assert!(c.tags.is_empty());
        assert_eq!(c.created_at.as_deref(), Some("2024-11-02T03:15:20Z"));
        assert_eq!(c.updated_at.as_deref(), Some("2025-05-21T05:08:42Z"));
        assert_eq!(c.last_message_at.as_deref(), Some("2025-05-21T05:08:42Z"));
        assert_eq!(
            c.raw,
            Some(json!({"member": member, "assignment": assignment}))
        );
        // The looked-up shape has no timestamps; a channel word the routes table maps to
        // `other` (no normalized channel of its own).
        let mut other = fixture(MEMBER_BY_EXTERNAL_ID);
        other["type"] = json!("facebook");
        let c =
            translate_conversation(&mapper(false), &types(), CHANNEL, &other, &assignment).unwrap();
        assert_eq!(c.channel, Some(Channel::Other));
        assert_eq!((c.created_at, c.last_message_at), (None, None));
        assert!(c.raw.is_none());
    }

    #[test]
    fn assignments_without_an_assignee_are_none() {
        let assignee = |value: Value| assignee_from(&(&value).wire(VENDOR, "a").unwrap());
        assert_eq!(
            assignee(
                json!({"assign_type": "unassigned", "assignment_relationship": {"team_id": 3, "user_id": 4}})
            ),
            None
        );
        assert_eq!(
            assignee(
                json!({"assign_type": "manual", "assignment_relationship": {"team_id": 0, "user_id": 0}})
            ),
            None
        );
        assert_eq!(assignee(json!({"assign_type": "manual"})), None);
        assert_eq!(assignee(json!({})), None);
        assert_eq!(
            assignee(
                json!({"assign_type": "auto", "assignment_relationship": {"team_id": 72, "user_id": null}})
            ),
            Some(Assignee {
                user_id: None,
                team_id: Some("72".into())
            })
        );
        let err = translate_conversation(
            &mapper(false),
            &types(),
            1,
            &fixture(MEMBER),
            &json!({"assignment_relationship": {"user_id": "4"}}),
        )
        .unwrap_err();
        assert_eq!(err.code, ErrorCode::VendorBadResponse);
    }

    #[test]
    fn processing_states_map_to_statuses() {
        for (state, status) in [
            (Some("resolved"), ConversationStatus::Resolved),
            (Some("RESOLVED"), ConversationStatus::Resolved),
            (Some("closed"), ConversationStatus::Closed),
            (Some("pending"), ConversationStatus::Pending),
            (Some("waiting"), ConversationStatus::Pending),
            (Some("new"), ConversationStatus::Open),
            (Some("processing"), ConversationStatus::Open),
            (Some("something-else"), ConversationStatus::Open),
            (None, ConversationStatus::Open),
        ] {
            assert_eq!(status_from_processing_state(state), status, "{state:?}");
        }
    }

    #[test]
    fn conversation_patch_plans_assignment_then_close() {
        let plan = plan_conversation_update(
            &patch(
                json!({"status": "resolved", "assignee": {"user_id": "502", "team_id": " 71 "}}),
            ),
            KEYS,
            &FIELDS,
        )
        .unwrap();
        assert_eq!(
            plan,
            vec![
                PlannedCall {
                    endpoint: "conversations.assign",
                    body: json!({
                        "channel_id": 12345, "member_id": 67890, "org_id": 8801,
                        "assignment_relationship": {"team_id": 71, "user_id": 502},
                    }),
                },
                PlannedCall {
                    endpoint: "conversations.close",
                    body: json!({"user_id": 501}),
                },
            ]
        );
        let plan =
            plan_conversation_update(&patch(json!({"assignee": null})), KEYS, &FIELDS).unwrap();
        assert_eq!(
            plan[0].body,
            json!({"channel_id": 12345, "member_id": 67890, "org_id": 8801, "assign_type": "unassigned"})
        );
        let plan = plan_conversation_update(
            &patch(json!({"assignee": {"team_id": "72"}})),
            KEYS,
            &FIELDS,
        )
        .unwrap();
        assert_eq!(
            plan[0].body["assignment_relationship"],
            json!({"team_id": 72})
        );
    }

    #[test]
    fn conversation_patch_refuses_what_caac_cannot_change_before_anything_else() {
        for body in [
            json!({"priority": "high"}),
            json!({"tags": ["vip"]}),
            json!({"status": "open"}),
            json!({"status": "pending"}),
            json!({"status": "closed"}),
            // Refused even alongside a change CAAC could make.
            json!({"status": "resolved", "tags": []}),
        ] {
            let err = plan_conversation_update(&patch(body.clone()), KEYS, &FIELDS).unwrap_err();
            assert_eq!(err.code, ErrorCode::UnsupportedOperation, "{body}");
        }
        let nothing = UpdateFields {
            user_id: None,
            org_id: None,
        };
        // Unsupported wins over a missing vendor field.
        let err = plan_conversation_update(&patch(json!({"priority": "low"})), KEYS, &nothing)
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::UnsupportedOperation);
        for (body, field) in [
            (json!({"status": "resolved"}), "vendor_fields.user_id"),
            (json!({"assignee": null}), "vendor_fields.org_id"),
        ] {
            let err = plan_conversation_update(&patch(body), KEYS, &nothing).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidRequest);
            assert!(err.detail.contains(field), "{}", err.detail);
        }
        for body in [
            json!({}),
            json!({"assignee": {}}),
            json!({"assignee": {"user_id": "mei"}}),
            json!({"assignee": {"team_id": "0"}}),
        ] {
            let err = plan_conversation_update(&patch(body.clone()), KEYS, &FIELDS).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidRequest, "{body}");
        }
    }

    #[test]
    fn conversation_create_refuses_a_subject() {
        let body = |v: Value| serde_json::from_value::<ConversationCreate>(v).unwrap();
        assert_eq!(
            check_conversation_create(&body(json!({"text": " hi "}))).unwrap(),
            Some("hi")
        );
        assert_eq!(check_conversation_create(&body(json!({}))).unwrap(), None);
        let err = check_conversation_create(&body(json!({"subject": "Refund"}))).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest);
    }

    // ----- messages --------------------------------------------------------------------------

    #[test]
    fn sent_message_maps_every_field() {
        let value = fixture(MESSAGE);
        let m = translate_message(&mapper(false), KEYS, &value, Some(501)).unwrap();
        assert_eq!(m.id, id(Kind::Message, &["12345", "67890", "900123"]));
        assert_eq!(m.remote_id, "900123");
        assert_eq!(
            m.conversation_id,
            id(Kind::Conversation, &["12345", "67890"])
        );
        assert_eq!(m.direction, Direction::Outbound);
        assert_eq!(
            m.sender,
            Sender {
                type_: SenderType::Agent,
                id: Some("501".into()),
                name: None
            }
        );
        assert_eq!(m.type_, MessageType::Text);
        assert_eq!(
            m.text.as_deref(),
            Some("Your parcel left our warehouse this morning.")
        );
        assert_eq!(m.html, None);
        assert!(m.attachments.is_empty());
        assert!(!m.private);
        assert_eq!(m.status, Some(MessageStatus::Sent));
        assert_eq!(m.created_at.as_deref(), Some("2025-05-21T05:10:00Z"));
        assert_eq!(m.updated_at.as_deref(), Some("2025-05-21T05:10:00Z"));
        assert!(m.raw.is_none());
        let m = translate_message(&mapper(true), KEYS, &value, None).unwrap();
        assert_eq!((m.sender.id, m.raw), (None, Some(value)));
    }

    #[test]
    fn member_messages_media_and_read_receipts() {
        let image = json!({
            "id": 900124, "type": "image", "sender_type": "member", "text": "",
            "origin_url": "https://obs.line-scdn.net/abc/original.jpg",
            "member_display_name": "Hsu Ya-Ting",
            "metadata": {"filename": "receipt.jpg", "filesize_bytes": 48213},
        });
        let m = translate_message(&mapper(false), KEYS, &image, None).unwrap();
        assert_eq!(m.direction, Direction::Inbound);
        assert_eq!(
            m.sender,
            Sender {
                type_: SenderType::Contact,
                id: Some("67890".into()),
                name: Some("Hsu Ya-Ting".into())
            }
        );
        assert_eq!(
            (m.type_, m.text, m.status),
            (MessageType::Image, None, Some(MessageStatus::Received))
        );
        assert_eq!(
            m.attachments,
            vec![Attachment {
                type_: MessageType::Image,
                url: Some("https://obs.line-scdn.net/abc/original.jpg".into()),
                name: Some("receipt.jpg".into()),
                size: Some(48213)
            }]
        );
        let sticker = json!({"id": 5, "type": "sticker", "sender_type": "bot", "read": true, "origin_url": "https://x/s.png"});
        let m = translate_message(&mapper(false), KEYS, &sticker, None).unwrap();
        assert_eq!(m.type_, MessageType::Other);
        assert_eq!(m.sender.type_, SenderType::Bot);
        assert_eq!(m.status, Some(MessageStatus::Read));
        assert_eq!(m.attachments[0].type_, MessageType::File);
        for kind in ["video", "audio", "file", "location"] {
            let m = translate_message(&mapper(false), KEYS, &json!({"id": 6, "type": kind}), None)
                .unwrap();
            assert_eq!(serde_json::to_value(m.type_).unwrap(), kind);
        }
        let system = json!({"id": 7, "sender_type": "system"});
        assert_eq!(
            translate_message(&mapper(false), KEYS, &system, None)
                .unwrap()
                .sender
                .type_,
            SenderType::System
        );
        for bad in [
            json!({"text": "x"}),
            json!({"id": 0}),
            json!({"id": 1, "read": "yes"}),
        ] {
            let err = translate_message(&mapper(false), KEYS, &bad, None).unwrap_err();
            assert_eq!(err.code, ErrorCode::VendorBadResponse, "{bad}");
        }
    }

    #[test]
    fn message_bodies_are_text_from_the_agent() {
        let none = Map::new();
        assert_eq!(
            text_message_body("On it", 501, &none).unwrap(),
            json!({"type": "text", "user_id": 501, "text": "On it"})
        );
        let extras = json!({"external_id": " ord-7 ", "reply_to": "700004", "user_id": 9});
        assert_eq!(
            text_message_body("On it", 501, extras.as_object().unwrap()).unwrap(),
            json!({"type": "text", "user_id": 501, "text": "On it", "external_id": "ord-7", "reply_to": 700004})
        );
        for bad in [
            json!({"external_id": 5}),
            json!({"external_id": ""}),
            json!({"reply_to": "x"}),
        ] {
            let err = text_message_body("hi", 1, bad.as_object().unwrap()).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidRequest, "{bad}");
        }
        assert_eq!(
            check_message_send(&send(json!({"conversation_id": "x", "text": " hi "}))).unwrap(),
            "hi"
        );
        for body in [
            json!({"conversation_id": "x", "template": {"name": "welcome"}}),
            json!({"conversation_id": "x", "text": "hi", "private": true}),
        ] {
            let err = check_message_send(&send(body.clone())).unwrap_err();
            assert_eq!(err.code, ErrorCode::UnsupportedOperation, "{body}");
        }
        // Attachments are a bad request for CAAC (400), not a missing operation.
        let err = check_message_send(&send(json!({
            "conversation_id": "x", "text": "hi",
            "attachments": [{"url": "https://cdn.example.com/a.png", "name": "a.png", "type": "image/png"}]
        })))
        .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest);
        assert!(
            err.detail
                .starts_with("attachments: caac cannot send attachments"),
            "{}",
            err.detail
        );
        let err =
            check_message_send(&send(json!({"conversation_id": "x", "text": " "}))).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest);
    }

    #[test]
    fn ids_and_vendor_fields_are_positive_integers() {
        assert_eq!(
            member_keys(&object_id(Kind::Contact, &["1201", "30001"])).unwrap(),
            MemberKeys {
                channel_id: 1201,
                member_id: 30001
            }
        );
        for keys in [
            &["1201"][..],
            &["1201", "30001", "7"],
            &["x", "30001"],
            &["1201", "0"],
            &["-1", "3"],
            &["1201", "3.0"],
        ] {
            let err = member_keys(&object_id(Kind::Conversation, keys)).unwrap_err();
            assert_eq!(err.code, ErrorCode::NotFound, "{keys:?}");
        }
        assert_eq!(int_field("user_id", Some(&json!(501))).unwrap(), Some(501));
        assert_eq!(
            int_field("user_id", Some(&json!(" 501 "))).unwrap(),
            Some(501)
        );
        assert_eq!(int_field("user_id", None).unwrap(), None);
        assert_eq!(int_field("user_id", Some(&Value::Null)).unwrap(), None);
        for bad in [json!(0), json!("mei"), json!(1.5), json!([1])] {
            let err = int_field("user_id", Some(&bad)).unwrap_err();
            assert!(err.detail.contains("vendor_fields.user_id"), "{bad}");
        }
    }

    // ----- execute, against the CAAC sandbox on loopback ----------------------------------

    async fn sandbox() -> Sandbox {
        Sandbox::start_vendor(
            Vendor::Caac,
            Arc::new(crate::sandbox::caac::tests::routes()),
            Credentials::new("caac-key", ""),
        )
        .await
        .unwrap()
    }

    fn connection(base: &str, key: &'static str, without: &[&str]) -> Connection {
        // Defaults as `${ENV}` interpolation leaves them: numbers or numeric strings.
        let defaults =
            json!({"channel_id": seed::CHANNEL_LINE_ID, "user_id": "501", "org_id": seed::ORG_ID});
        let defaults = defaults.as_object().unwrap().clone();
        test_support::connection(Vendor::Caac, "caac", base, key, defaults, without)
    }

    fn member_id(member: i64) -> ObjectId {
        object_id(
            Kind::Contact,
            &[&seed::CHANNEL_LINE_ID.to_string(), &member.to_string()],
        )
    }

    fn conversation_id(member: i64) -> ObjectId {
        object_id(
            Kind::Conversation,
            &[&seed::CHANNEL_LINE_ID.to_string(), &member.to_string()],
        )
    }

    fn lookup(channel: &str, value: &str) -> OperationRequest {
        OperationRequest::ContactsList(
            Page {
                limit: 20,
                cursor: None,
            },
            ContactFilters {
                handle: Some(Handle {
                    channel: HandleChannel::parse(channel).unwrap(),
                    value: value.into(),
                }),
                ..Default::default()
            },
        )
    }

    #[tokio::test]
    async fn malformed_ids_and_refused_input_make_no_vendor_call() {
        // Nothing listens here: any call would fail with vendor_unavailable.
        let conn = connection("http://127.0.0.1:9", "caac-key", &[]);
        let page = || Page {
            limit: 20,
            cursor: None,
        };
        let not_found = [
            OperationRequest::ContactsGet(object_id(Kind::Contact, &["abc", "1"])),
            OperationRequest::ContactsGet(object_id(Kind::Contact, &["30001"])),
            OperationRequest::ConversationsGet(object_id(Kind::Conversation, &["1", "2", "3"])),
            OperationRequest::ConversationsUpdate(
                object_id(Kind::Conversation, &["0", "1"]),
                patch(json!({"status": "resolved"})),
            ),
            OperationRequest::MessagesSend(
                object_id(Kind::Conversation, &["1201"]),
                send(json!({"conversation_id": "x", "text": "hi"})),
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
                    conversation_id(30001),
                    patch(json!({"status": "resolved", "priority": "high"})),
                ),
                ErrorCode::UnsupportedOperation,
            ),
            (
                OperationRequest::MessagesSend(
                    conversation_id(30001),
                    send(json!({"conversation_id": "x", "template": {"name": "welcome"}})),
                ),
                ErrorCode::UnsupportedOperation,
            ),
            (
                OperationRequest::ConversationsCreate(
                    ConversationCreate {
                        contact: Some(NewContact {
                            name: Some("New".into()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                    None,
                ),
                ErrorCode::InvalidRequest,
            ),
            (
                OperationRequest::ContactsList(page(), ContactFilters::default()),
                ErrorCode::InvalidRequest,
            ),
            (
                OperationRequest::ContactsCreate(create(json!({"name": "Ya-Ting"}))),
                ErrorCode::InvalidRequest,
            ),
            (
                OperationRequest::ContactsUpdate(member_id(30001), ContactPatch::default()),
                ErrorCode::UnsupportedOperation,
            ),
            (
                OperationRequest::ContactsDelete(member_id(30001)),
                ErrorCode::UnsupportedOperation,
            ),
            (
                OperationRequest::ConversationsList(page(), ConversationFilters::default()),
                ErrorCode::UnsupportedOperation,
            ),
            (
                OperationRequest::ConversationsDelete(conversation_id(30001)),
                ErrorCode::UnsupportedOperation,
            ),
            (
                OperationRequest::MessagesList(conversation_id(30001), page()),
                ErrorCode::UnsupportedOperation,
            ),
            (
                OperationRequest::MessagesGet(object_id(Kind::Message, &["1201", "30001", "7"])),
                ErrorCode::UnsupportedOperation,
            ),
        ];
        for (request, code) in refused {
            let label = format!("{request:?}");
            let (result, calls) = run(&conn, request).await;
            assert_eq!(result.unwrap_err().code, code, "{label}");
            assert_eq!(calls, 0, "{label}");
        }

        // A change whose route the connection lacks is refused whole, before any call.
        let conn = connection(
            "http://127.0.0.1:9",
            "caac-key",
            &["conversations.assign", "messages.send"],
        );
        let (result, calls) = run(
            &conn,
            OperationRequest::ConversationsUpdate(
                conversation_id(30001),
                patch(json!({"status": "resolved", "assignee": null})),
            ),
        )
        .await;
        let err = result.unwrap_err();
        assert_eq!(err.code, ErrorCode::UnsupportedOperation);
        assert!(
            err.detail.contains("conversations.assign"),
            "{}",
            err.detail
        );
        assert_eq!(calls, 0);
        let body = ConversationCreate {
            text: Some("hello".into()),
            ..Default::default()
        };
        let (result, calls) = run(
            &conn,
            OperationRequest::ConversationsCreate(body, Some(member_id(30005))),
        )
        .await;
        assert_eq!(result.unwrap_err().code, ErrorCode::UnsupportedOperation);
        assert_eq!(calls, 0);
    }

    #[tokio::test]
    async fn contacts_get_look_up_and_create() {
        let sandbox = sandbox().await;
        let conn = connection(&sandbox.base_url(), "caac-key", &[]);
        let (result, calls) = run(
            &conn,
            OperationRequest::ContactsGet(member_id(seed::MEMBER_WEITING_ID)),
        )
        .await;
        let (kind, contact) = object_json(result.unwrap());
        assert_eq!((kind, calls), ("found", 1));
        assert_eq!(contact["phones"], json!(["+886912345678"]));
        assert_eq!(
            contact["handles"],
            json!([{"channel": "line", "value": seed::MEMBER_WEITING_UID}])
        );

        let (result, calls) = run(&conn, lookup("line", seed::MEMBER_YUKI_UID)).await;
        let (items, next) = list_json(result.unwrap());
        assert_eq!((items.len(), next, calls), (1, None, 1));
        assert_eq!(items[0]["id"], member_id(seed::MEMBER_YUKI_ID).encode());
        assert_eq!(items[0]["phones"], json!(["+819012345678"]));
        // Unknown to CAAC (a vendor 404), or a member of another channel type: no match.
        for (channel, value) in [
            ("line", seed::UNUSED_LINE_UID),
            ("whatsapp", seed::MEMBER_YUKI_UID),
        ] {
            let (items, next) = list_json(run(&conn, lookup(channel, value)).await.0.unwrap());
            assert_eq!((items.len(), next), (0, None), "{channel}:{value}");
        }

        let body =
            create(json!({"handles": [{"channel": "line", "value": seed::UNUSED_LINE_UID}]}));
        let (result, calls) = run(&conn, OperationRequest::ContactsCreate(body)).await;
        let (kind, contact) = object_json(result.unwrap());
        assert_eq!((kind, calls), ("created", 2));
        assert_eq!(contact["remote_id"], "30007");
        assert_eq!(contact["handles"][0]["value"], seed::UNUSED_LINE_UID);
        let state = sandbox.caac().unwrap();
        assert_eq!(state.member_count(), seed::MEMBER_COUNT + 1);

        // The vendor's 400 comes back with its message; its 404 is ours.
        let body = create(json!({
            "handles": [{"channel": "line", "value": seed::UNUSED_LINE_UID}],
            "vendor_fields": {"channel_id": seed::CHANNEL_MESSENGER_ID},
        }));
        let err = run(&conn, OperationRequest::ContactsCreate(body))
            .await
            .0
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest);
        assert!(err.detail.contains("only LINE channels"), "{}", err.detail);
        let err = run(&conn, OperationRequest::ContactsGet(member_id(99999)))
            .await
            .0
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::NotFound);

        let wrong = connection(&sandbox.base_url(), "wrong-key", &[]);
        let err = run(
            &wrong,
            OperationRequest::ContactsGet(member_id(seed::MEMBER_WEITING_ID)),
        )
        .await
        .0
        .unwrap_err();
        assert_eq!(
            (err.code, err.vendor_status),
            (ErrorCode::VendorAuthFailed, Some(401))
        );
    }

    #[tokio::test]
    async fn conversations_read_change_start_and_send() {
        let sandbox = sandbox().await;
        let state = sandbox.caac().unwrap();
        let conn = connection(&sandbox.base_url(), "caac-key", &[]);
        let get = |member| OperationRequest::ConversationsGet(conversation_id(member));

        let (result, calls) = run(&conn, get(seed::MEMBER_WEITING_ID)).await;
        let (_, c) = object_json(result.unwrap());
        assert_eq!(calls, 2);
        assert_eq!(
            (
                c["status"].as_str(),
                c["vendor_status"].as_str(),
                c["channel"].as_str()
            ),
            (Some("open"), Some("processing"), Some("line"))
        );
        assert_eq!(c["assignee"], json!({"user_id": "501", "team_id": "71"}));
        assert_eq!(c["contact_id"], member_id(seed::MEMBER_WEITING_ID).encode());
        let (_, c) = object_json(run(&conn, get(seed::MEMBER_NATTAYA_ID)).await.0.unwrap());
        assert_eq!(c["status"], "pending");
        assert_eq!(c["assignee"], json!({"user_id": null, "team_id": "72"}));
        let (_, c) = object_json(run(&conn, get(seed::MEMBER_YUKI_ID)).await.0.unwrap());
        assert_eq!(c["status"], "resolved");

        let somchai = conversation_id(seed::MEMBER_SOMCHAI_ID);
        let request = OperationRequest::ConversationsUpdate(
            somchai.clone(),
            patch(json!({"status": "resolved", "assignee": {"user_id": "502"}})),
        );
        let (result, calls) = run(&conn, request).await;
        let (kind, c) = object_json(result.unwrap());
        assert_eq!((kind, calls), ("found", 4));
        assert_eq!(c["status"], "resolved");
        assert_eq!(c["assignee"], json!({"user_id": "502", "team_id": null}));
        let calls: Vec<_> = sandbox
            .calls()
            .iter()
            .rev()
            .take(4)
            .filter_map(|c| c.endpoint.clone())
            .collect();
        assert_eq!(
            calls,
            [
                "conversations.assignment",
                "contacts.get",
                "conversations.close",
                "conversations.assign"
            ]
        );
        let (_, c) = object_json(
            run(
                &conn,
                OperationRequest::ConversationsUpdate(somchai, patch(json!({"assignee": null}))),
            )
            .await
            .0
            .unwrap(),
        );
        assert_eq!(c["assignee"], Value::Null);
        assert_eq!(
            state
                .assignment(seed::CHANNEL_LINE_ID, seed::MEMBER_SOMCHAI_ID)
                .unwrap()["assign_type"],
            "unassigned"
        );

        // Starting a conversation answers the member's, after sending the first message.
        let body = ConversationCreate {
            text: Some("Welcome to Acme!".into()),
            channel: Some(Channel::Line),
            ..Default::default()
        };
        let (result, calls) = run(
            &conn,
            OperationRequest::ConversationsCreate(body, Some(member_id(seed::MEMBER_LIMING_ID))),
        )
        .await;
        let (kind, c) = object_json(result.unwrap());
        assert_eq!((kind, calls), ("created", 5));
        assert!(c["last_message_at"].is_string(), "{c}");
        let messages = state.messages(seed::CHANNEL_LINE_ID, seed::MEMBER_LIMING_ID);
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0]["text"], "Welcome to Acme!");
        let body = ConversationCreate {
            channel: Some(Channel::Whatsapp),
            ..Default::default()
        };
        let (result, calls) = run(
            &conn,
            OperationRequest::ConversationsCreate(body, Some(member_id(seed::MEMBER_LIMING_ID))),
        )
        .await;
        assert_eq!(result.unwrap_err().code, ErrorCode::InvalidRequest);
        assert_eq!(calls, 2);

        let body = send(json!({"conversation_id": "x", "text": "Your parcel is on its way."}));
        let (result, calls) = run(
            &conn,
            OperationRequest::MessagesSend(conversation_id(seed::MEMBER_WEITING_ID), body),
        )
        .await;
        let (kind, m) = object_json(result.unwrap());
        assert_eq!((kind, calls), ("created", 1));
        let message_id = seed::FIRST_MESSAGE_ID + seed::MESSAGE_COUNT as i64 + 1;
        assert_eq!(
            m["id"],
            id(Kind::Message, &["1201", "30001", &message_id.to_string()])
        );
        assert_eq!(
            m["sender"],
            json!({"type": "agent", "id": "501", "name": null})
        );
        assert_eq!(
            (m["direction"].as_str(), m["status"].as_str()),
            (Some("outbound"), Some("sent"))
        );
    }

    /// Golden translations: CAAC answers and the normalized objects this adapter made of them, as
    /// the gateway writes them, byte for byte (`tests/fixtures/golden/caac_*.normalized.json`,
    /// recorded before the lookup path was tuned for issue 11). A change in the output of any
    /// field, order or phone number fails here.
    #[allow(clippy::panic)] // clippy counts `cfg(all(test, …))` as production code
    mod golden {
        use super::super::*;
        use crate::api::model::HandleChannel;
        use crate::vendors::test_support::{
            assert_golden, compiled_routes, golden_mapper, repo_file, response,
        };

        fn mapper(want_raw: bool) -> Mapper {
            golden_mapper("caac", want_raw)
        }

        /// The member types the shipped routes file sets.
        fn shipped_types() -> MemberTypes {
            MemberTypes::from_settings(&compiled_routes(Vendor::Caac).settings).unwrap()
        }

        /// Every member of the bench body looked up by its own LINE uid, one lookup answer each:
        /// the lists they answer, in order.
        fn lookups(types: &MemberTypes, want_raw: bool) -> String {
            let members: Vec<Value> =
                serde_json::from_str(&repo_file("bench/bodies/caac/members.json")).unwrap();
            let mut all = Vec::new();
            for member in &members {
                let handle = Handle {
                    channel: HandleChannel::Line,
                    value: member["external_member_id"].as_str().unwrap().to_owned(),
                };
                let answer = response(200, &serde_json::to_string(member).unwrap());
                let lookup = Lookup {
                    channel_id: 1201,
                    handle: &handle,
                    path: "/openapi/v1/channels/{channel_id}/members/external/{external_member_id}",
                };
                match lookup_answer(&mapper(want_raw), types, &answer, lookup).unwrap() {
                    Output::List { data, next } => all.push(format!(
                        r#"{{"data":{},"next":{}}}"#,
                        serde_json::to_string(&data).unwrap(),
                        serde_json::to_string(&next).unwrap()
                    )),
                    other => panic!("not a list: {other:?}"),
                }
            }
            format!("[{}]", all.join(","))
        }

        #[test]
        fn lookups_translate_as_recorded() {
            assert_golden(
                "caac_lookups_bench",
                lookups(&MemberTypes::default(), false),
            );
            assert_golden(
                "caac_lookups_bench_raw",
                lookups(&MemberTypes::default(), true),
            );
            assert_golden("caac_lookups_bench_types", lookups(&shipped_types(), false));
        }

        #[test]
        fn members_translate_as_recorded() {
            for (name, path) in [
                ("caac_member", "tests/fixtures/caac/member.json"),
                (
                    "caac_member_by_external_id",
                    "tests/fixtures/caac/member_by_external_id.json",
                ),
            ] {
                let body = repo_file(path);
                for (types, suffix) in [(MemberTypes::default(), ""), (shipped_types(), "_types")] {
                    let c =
                        translate_contact(&mapper(false), &types, 1201, body.as_bytes()).unwrap();
                    assert_golden(
                        &format!("{name}{suffix}"),
                        serde_json::to_string(&c).unwrap(),
                    );
                }
                let c = translate_contact(&mapper(true), &shipped_types(), 1201, body.as_bytes())
                    .unwrap();
                assert_golden(&format!("{name}_raw"), serde_json::to_string(&c).unwrap());
            }
            let member = repo_file("tests/fixtures/caac/member.json");
            let assignment = repo_file("tests/fixtures/caac/assignment.json");
            let c = translate_conversation(
                &mapper(false),
                &shipped_types(),
                1201,
                member.as_bytes(),
                assignment.as_bytes(),
            )
            .unwrap();
            assert_golden("caac_conversation", serde_json::to_string(&c).unwrap());
            let keys = MemberKeys {
                channel_id: 1201,
                member_id: 67890,
            };
            let message = repo_file("tests/fixtures/caac/message.json");
            let m = translate_message(&mapper(false), keys, message.as_bytes(), Some(501)).unwrap();
            assert_golden("caac_message", serde_json::to_string(&m).unwrap());
        }
    }
}
