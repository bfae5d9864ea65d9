//! The normalized resources (docs/api.md "Resources") and the request bodies that create or change
//! them. Output types serialize every documented field, `null` included, so a client sees the
//! same shape whatever the vendor. Input types reject unknown fields.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::operation::Vendor;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HandleChannel {
    Line,
    Whatsapp,
    Web,
    Email,
    Phone,
    Other,
}

impl HandleChannel {
    pub fn parse(s: &str) -> Option<HandleChannel> {
        Some(match s {
            "line" => HandleChannel::Line,
            "whatsapp" => HandleChannel::Whatsapp,
            "web" => HandleChannel::Web,
            "email" => HandleChannel::Email,
            "phone" => HandleChannel::Phone,
            "other" => HandleChannel::Other,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Handle {
    pub channel: HandleChannel,
    pub value: String,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Contact {
    pub id: String,
    pub connection: String,
    pub vendor: &'static str,
    pub remote_id: String,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    pub name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub emails: Vec<String>,
    pub phones: Vec<String>,
    pub handles: Vec<Handle>,
    pub company: Option<String>,
    pub avatar_url: Option<String>,
    pub custom_fields: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Email,
    Line,
    Whatsapp,
    Web,
    Voice,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConversationStatus {
    Open,
    Pending,
    Resolved,
    Closed,
}

impl ConversationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConversationStatus::Open => "open",
            ConversationStatus::Pending => "pending",
            ConversationStatus::Resolved => "resolved",
            ConversationStatus::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<ConversationStatus> {
        Some(match s {
            "open" => ConversationStatus::Open,
            "pending" => ConversationStatus::Pending,
            "resolved" => ConversationStatus::Resolved,
            "closed" => ConversationStatus::Closed,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
    Medium,
    High,
    Urgent,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Assignee {
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub team_id: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Conversation {
    pub id: String,
    pub connection: String,
    pub vendor: &'static str,
    pub remote_id: String,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    pub contact_id: Option<String>,
    pub channel: Option<Channel>,
    pub status: ConversationStatus,
    pub vendor_status: Option<String>,
    pub subject: Option<String>,
    pub assignee: Option<Assignee>,
    pub priority: Option<Priority>,
    pub tags: Vec<String>,
    pub last_message_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw: Option<Value>,
}

/// The conversation fields a vendor's answer does not carry, so the gateway does not know
/// them (Libredesk's conversation list items have no contact id, assignee or tags).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnknownFields {
    pub contact_id: bool,
    pub assignee: bool,
    pub tags: bool,
}

impl UnknownFields {
    pub fn any(self) -> bool {
        self.contact_id || self.assignee || self.tags
    }
}

/// A conversation as a vendor view that lacks some of its fields shows it (docs/api.md,
/// "Partial objects"). The fields it does not know are left out of the JSON and
/// `"partial": true` says so: `null` and `[]` would claim "no contact", "unassigned" and
/// "no tags", which the vendor never said. `GET /v1/conversations/{id}` has them all.
#[derive(Debug, Clone)]
pub struct PartialConversation {
    pub conversation: Conversation,
    pub unknown: UnknownFields,
}

/// The fields of [`Conversation`] in its order, without the unknown ones, then `partial`.
impl Serialize for PartialConversation {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let c = &self.conversation;
        let unknown = self.unknown;
        let mut s = serializer.serialize_struct("Conversation", 17)?;
        s.serialize_field("id", &c.id)?;
        s.serialize_field("connection", &c.connection)?;
        s.serialize_field("vendor", &c.vendor)?;
        s.serialize_field("remote_id", &c.remote_id)?;
        s.serialize_field("created_at", &c.created_at)?;
        s.serialize_field("updated_at", &c.updated_at)?;
        if !unknown.contact_id {
            s.serialize_field("contact_id", &c.contact_id)?;
        }
        s.serialize_field("channel", &c.channel)?;
        s.serialize_field("status", &c.status)?;
        s.serialize_field("vendor_status", &c.vendor_status)?;
        s.serialize_field("subject", &c.subject)?;
        if !unknown.assignee {
            s.serialize_field("assignee", &c.assignee)?;
        }
        s.serialize_field("priority", &c.priority)?;
        if !unknown.tags {
            s.serialize_field("tags", &c.tags)?;
        }
        s.serialize_field("last_message_at", &c.last_message_at)?;
        s.serialize_field("partial", &true)?;
        if let Some(raw) = &c.raw {
            s.serialize_field("raw", raw)?;
        }
        s.end()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Inbound,
    Outbound,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SenderType {
    Contact,
    Agent,
    Bot,
    System,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sender {
    #[serde(rename = "type")]
    pub type_: SenderType,
    pub id: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageType {
    Text,
    Image,
    Audio,
    Video,
    File,
    Template,
    Location,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attachment {
    #[serde(rename = "type")]
    pub type_: MessageType,
    pub url: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub size: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageStatus {
    Pending,
    Sent,
    Delivered,
    Read,
    Failed,
    Received,
}

#[derive(Debug, Clone, Serialize)]
pub struct Message {
    pub id: String,
    pub connection: String,
    pub vendor: &'static str,
    pub remote_id: String,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    pub conversation_id: String,
    pub direction: Direction,
    pub sender: Sender,
    #[serde(rename = "type")]
    pub type_: MessageType,
    pub text: Option<String>,
    pub html: Option<String>,
    pub attachments: Vec<Attachment>,
    pub private: bool,
    pub status: Option<MessageStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw: Option<Value>,
}

/// `vendor` as it appears in every object.
pub fn vendor_label(vendor: Vendor) -> &'static str {
    vendor.as_str()
}

// ----- request bodies -------------------------------------------------------------------

/// Vendor-specific fields a caller may pass through to fill what the normalized body lacks
/// (overrides connection `defaults`).
pub type VendorFields = Map<String, Value>;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactCreate {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub emails: Vec<String>,
    #[serde(default)]
    pub phones: Vec<String>,
    #[serde(default)]
    pub handles: Vec<Handle>,
    #[serde(default)]
    pub company: Option<String>,
    #[serde(default)]
    pub avatar_url: Option<String>,
    #[serde(default)]
    pub custom_fields: Map<String, Value>,
    #[serde(default)]
    pub vendor_fields: VendorFields,
}

/// A partial update: a field that is absent is left as it is.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactPatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub emails: Option<Vec<String>>,
    #[serde(default)]
    pub phones: Option<Vec<String>>,
    #[serde(default)]
    pub handles: Option<Vec<Handle>>,
    #[serde(default)]
    pub company: Option<String>,
    #[serde(default)]
    pub avatar_url: Option<String>,
    #[serde(default)]
    pub custom_fields: Option<Map<String, Value>>,
    #[serde(default)]
    pub vendor_fields: VendorFields,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewContact {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConversationCreate {
    #[serde(default)]
    pub contact_id: Option<String>,
    #[serde(default)]
    pub contact: Option<NewContact>,
    #[serde(default)]
    pub channel: Option<Channel>,
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub vendor_fields: VendorFields,
}

/// `assignee: null` unassigns; an absent `assignee` leaves it alone.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConversationPatch {
    #[serde(default)]
    pub status: Option<ConversationStatus>,
    #[serde(default, deserialize_with = "double_option")]
    pub assignee: Option<Option<Assignee>>,
    #[serde(default)]
    pub priority: Option<Priority>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(default)]
    pub vendor_fields: VendorFields,
}

impl ConversationPatch {
    pub fn is_empty(&self) -> bool {
        self.status.is_none()
            && self.assignee.is_none()
            && self.priority.is_none()
            && self.tags.is_none()
    }
}

fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    pub name: String,
    #[serde(default)]
    pub language: Option<String>,
    #[serde(default)]
    pub variables: Value,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageSend {
    pub conversation_id: String,
    #[serde(default)]
    pub text: Option<String>,
    /// What the caller sent; checked and decoded into [`MessageSend::files`] before any
    /// vendor call (`vendors::prepare_attachments`).
    #[serde(default)]
    pub attachments: Vec<NewAttachment>,
    #[serde(default)]
    pub template: Option<Template>,
    #[serde(default)]
    pub private: bool,
    #[serde(default)]
    pub vendor_fields: VendorFields,
    /// `attachments`, validated and decoded (filled by the gateway while parsing, so an
    /// adapter only ever sees files that passed every check).
    #[serde(skip)]
    pub files: Vec<AttachmentFile>,
}

/// One attachment of `POST /v1/messages`, as the caller sends it: exactly one of `url` (a
/// public `https` address, passed to vendors that fetch it themselves) or `data` (the file's
/// bytes in base64), with the file's `name` and MIME `type`. Distinct from the output
/// [`Attachment`], which describes what a vendor stored.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAttachment {
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub data: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    /// The MIME type, e.g. `image/png`.
    #[serde(default, rename = "type")]
    pub type_: Option<String>,
}

/// A [`NewAttachment`] that passed validation: its name, MIME type (lower case, no
/// parameters), the normalized kind that type maps to, and its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentFile {
    pub name: String,
    pub mime: String,
    pub kind: MessageType,
    pub content: AttachmentContent,
}

/// Where an attachment's bytes are: given inline, or at a URL the vendor fetches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachmentContent {
    Data(Vec<u8>),
    Url(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversation_patch_tells_null_from_absent_assignee() {
        let absent: ConversationPatch = serde_json::from_str(r#"{"status":"open"}"#).unwrap();
        assert_eq!(absent.assignee, None);
        let null: ConversationPatch = serde_json::from_str(r#"{"assignee":null}"#).unwrap();
        assert_eq!(null.assignee, Some(None));
        let set: ConversationPatch =
            serde_json::from_str(r#"{"assignee":{"user_id":"3"}}"#).unwrap();
        assert_eq!(set.assignee.unwrap().unwrap().user_id.as_deref(), Some("3"));
    }

    #[test]
    fn unknown_fields_are_rejected() {
        assert!(serde_json::from_str::<ConversationPatch>(r#"{"colour":"red"}"#).is_err());
        assert!(serde_json::from_str::<ContactPatch>(r#"{"nmae":"x"}"#).is_err());
        assert!(
            serde_json::from_str::<MessageSend>(r#"{"conversation_id":"x","txt":"hi"}"#).is_err()
        );
    }
}
