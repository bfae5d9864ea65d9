//! A parsed, validated normalized request, as handed to a vendor adapter, and what the
//! adapter answers. Parsing HTTP into these lives in `gateway::parse`; adapters never see raw
//! HTTP.

use serde::Serialize;
use serde_json::Value;

use super::ids::ObjectId;
use super::model::{
    Contact, ContactCreate, ContactPatch, Conversation, ConversationCreate, ConversationPatch,
    ConversationStatus, Handle, Message, MessageSend, PartialConversation,
};

/// `limit` plus the decoded state of the caller's cursor (None = first page).
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub limit: u32,
    pub cursor: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContactFilters {
    pub q: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub handle: Option<Handle>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConversationFilters {
    pub status: Option<ConversationStatus>,
    pub contact: Option<ObjectId>,
}

#[derive(Debug, Clone)]
pub enum OperationRequest {
    ContactsList(Page, ContactFilters),
    ContactsCreate(ContactCreate),
    ContactsGet(ObjectId),
    ContactsUpdate(ObjectId, ContactPatch),
    ContactsDelete(ObjectId),
    ConversationsList(Page, ConversationFilters),
    /// The body, plus its `contact_id` already decoded and checked against the connection.
    ConversationsCreate(ConversationCreate, Option<ObjectId>),
    ConversationsGet(ObjectId),
    ConversationsUpdate(ObjectId, ConversationPatch),
    ConversationsDelete(ObjectId),
    MessagesList(ObjectId, Page),
    MessagesSend(ObjectId, MessageSend),
    MessagesGet(ObjectId),
}

/// One normalized object.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Resource {
    Contact(Box<Contact>),
    Conversation(Box<Conversation>),
    /// A conversation from a vendor view that lacks some fields ([`PartialConversation`]).
    PartialConversation(Box<PartialConversation>),
    Message(Box<Message>),
}

/// An adapter's translation answers the object; `.into()` boxes it as a resource.
impl From<Contact> for Resource {
    fn from(contact: Contact) -> Self {
        Resource::Contact(Box::new(contact))
    }
}

impl From<Conversation> for Resource {
    fn from(conversation: Conversation) -> Self {
        Resource::Conversation(Box::new(conversation))
    }
}

/// A conversation with nothing unknown is a whole one.
impl From<PartialConversation> for Resource {
    fn from(partial: PartialConversation) -> Self {
        if partial.unknown.any() {
            Resource::PartialConversation(Box::new(partial))
        } else {
            Resource::Conversation(Box::new(partial.conversation))
        }
    }
}

impl From<Message> for Resource {
    fn from(message: Message) -> Self {
        Resource::Message(Box::new(message))
    }
}

/// What an adapter answers.
#[derive(Debug, Clone)]
pub enum Output {
    /// 200 with the object.
    Found(Resource),
    /// 201 with the new object.
    Created(Resource),
    /// 200 with a page; `next` is the vendor state for the next page (None = last page).
    List {
        data: Vec<Resource>,
        next: Option<Value>,
    },
    /// 204.
    Deleted,
}
