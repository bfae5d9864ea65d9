//! Libredesk adapter (placeholder until the adapter lands).
use async_trait::async_trait;

use super::{Adapter, CallContext, EndpointSpec, FilterSpec, OperationSpec};
use crate::api::operation::{Operation, Vendor};
use crate::api::request::{OperationRequest, Output};
use crate::api::ApiError;

pub struct Libredesk;

const fn ep(name: &'static str, params: &'static [&'static str]) -> EndpointSpec {
    EndpointSpec { name, params }
}

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
];

/// What the adapter serves, and the calls each operation needs. contacts.create and
/// contacts.delete are absent: Libredesk has no such routes (contacts come from
/// conversations), so they answer 501 and capabilities leave them out.
static OPERATIONS: &[OperationSpec] = &[
    OperationSpec {
        operation: Operation::ContactsList,
        needs: &["contacts.list"],
        filters: &[FilterSpec { name: "q", needs: Some("contacts.search") }],
    },
    OperationSpec { operation: Operation::ContactsGet, needs: &["contacts.get"], filters: &[] },
    OperationSpec {
        operation: Operation::ContactsUpdate,
        needs: &["contacts.get", "contacts.update"],
        filters: &[],
    },
    OperationSpec {
        operation: Operation::ConversationsList,
        needs: &["conversations.list"],
        filters: &[FilterSpec { name: "status", needs: None }],
    },
    OperationSpec { operation: Operation::ConversationsGet, needs: &["conversations.get"], filters: &[] },
    OperationSpec {
        operation: Operation::ConversationsCreate,
        needs: &["conversations.create"],
        filters: &[],
    },
    OperationSpec {
        operation: Operation::ConversationsUpdate,
        needs: &["conversations.get", "conversations.update_status"],
        filters: &[],
    },
    OperationSpec { operation: Operation::MessagesList, needs: &["messages.list"], filters: &[] },
    OperationSpec { operation: Operation::MessagesGet, needs: &["messages.get"], filters: &[] },
    OperationSpec { operation: Operation::MessagesSend, needs: &["messages.send"], filters: &[] },
];

#[async_trait]
impl Adapter for Libredesk {
    fn vendor(&self) -> Vendor {
        Vendor::Libredesk
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
    async fn execute(&self, _ctx: &mut CallContext<'_>, _r: OperationRequest) -> Result<Output, ApiError> {
        Err(ApiError::unsupported_operation("not yet"))
    }
}
