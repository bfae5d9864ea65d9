//! The closed vocabularies every layer shares: operations and vendors.
//!
//! These strings appear in capabilities, metric labels, logs and routes files, so they are
//! defined once here and parsed strictly.

use std::fmt;

/// One row of the normalized API's operation table (docs/api.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    ContactsList,
    ContactsCreate,
    ContactsGet,
    ContactsUpdate,
    ContactsDelete,
    ConversationsList,
    ConversationsCreate,
    ConversationsGet,
    ConversationsUpdate,
    ConversationsDelete,
    MessagesList,
    MessagesSend,
    MessagesGet,
}

impl Operation {
    pub const ALL: [Operation; 13] = [
        Operation::ContactsList,
        Operation::ContactsCreate,
        Operation::ContactsGet,
        Operation::ContactsUpdate,
        Operation::ContactsDelete,
        Operation::ConversationsList,
        Operation::ConversationsCreate,
        Operation::ConversationsGet,
        Operation::ConversationsUpdate,
        Operation::ConversationsDelete,
        Operation::MessagesList,
        Operation::MessagesSend,
        Operation::MessagesGet,
    ];

    /// The operation id used in capabilities, metrics, logs and routes files.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::ContactsList => "contacts.list",
            Operation::ContactsCreate => "contacts.create",
            Operation::ContactsGet => "contacts.get",
            Operation::ContactsUpdate => "contacts.update",
            Operation::ContactsDelete => "contacts.delete",
            Operation::ConversationsList => "conversations.list",
            Operation::ConversationsCreate => "conversations.create",
            Operation::ConversationsGet => "conversations.get",
            Operation::ConversationsUpdate => "conversations.update",
            Operation::ConversationsDelete => "conversations.delete",
            Operation::MessagesList => "messages.list",
            Operation::MessagesSend => "messages.send",
            Operation::MessagesGet => "messages.get",
        }
    }

    pub fn parse(s: &str) -> Option<Operation> {
        Operation::ALL.into_iter().find(|op| op.as_str() == s)
    }

    /// The scope a token needs to call this operation.
    pub fn scope(self) -> &'static str {
        match self {
            Operation::ContactsList | Operation::ContactsGet => "contacts:read",
            Operation::ContactsCreate | Operation::ContactsUpdate | Operation::ContactsDelete => {
                "contacts:write"
            }
            Operation::ConversationsList | Operation::ConversationsGet => "conversations:read",
            Operation::ConversationsCreate
            | Operation::ConversationsUpdate
            | Operation::ConversationsDelete => "conversations:write",
            Operation::MessagesList | Operation::MessagesGet => "messages:read",
            Operation::MessagesSend => "messages:write",
        }
    }

    /// Creates, updates and sends carry a JSON object body; nothing else takes a body.
    pub fn takes_body(self) -> bool {
        matches!(
            self,
            Operation::ContactsCreate
                | Operation::ContactsUpdate
                | Operation::ConversationsCreate
                | Operation::ConversationsUpdate
                | Operation::MessagesSend
        )
    }

    /// Reads never change vendor state; only they may be cached or retried.
    pub fn is_read(self) -> bool {
        matches!(
            self,
            Operation::ContactsList
                | Operation::ContactsGet
                | Operation::ConversationsList
                | Operation::ConversationsGet
                | Operation::MessagesList
                | Operation::MessagesGet
        )
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The four vendors switchboard speaks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Vendor {
    Caac,
    LlamadaPro,
    ChatCaptain,
    Libredesk,
}

impl Vendor {
    pub const ALL: [Vendor; 4] = [
        Vendor::Caac,
        Vendor::LlamadaPro,
        Vendor::ChatCaptain,
        Vendor::Libredesk,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Vendor::Caac => "caac",
            Vendor::LlamadaPro => "llamadapro",
            Vendor::ChatCaptain => "chatcaptain",
            Vendor::Libredesk => "libredesk",
        }
    }

    pub fn parse(s: &str) -> Option<Vendor> {
        Vendor::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

impl fmt::Display for Vendor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_ids_round_trip() {
        for op in Operation::ALL {
            assert_eq!(Operation::parse(op.as_str()), Some(op));
        }
        assert_eq!(Operation::parse("contacts.frobnicate"), None);
    }

    #[test]
    fn vendor_names_round_trip() {
        for v in Vendor::ALL {
            assert_eq!(Vendor::parse(v.as_str()), Some(v));
        }
        assert_eq!(Vendor::parse("zendesk"), None);
    }
}
