//! Libredesk webhook objects as normalized resources, for events (issue 14).
//!
//! A `conversation.created` webhook carries the conversation as `GET /conversations/{uuid}`
//! answers it, and `message.created`/`message.updated` the message as the messages calls
//! answer it; both go through the adapter's own translation, so an event's `data` is exactly
//! what `GET /v1/conversations/{id}` or `GET /v1/messages/{id}` returns (without `raw`).

use serde_json::Value;

use super::super::common::Mapper;
use super::{translate_conversation, translate_message};
use crate::api::request::Resource;
use crate::api::ApiError;

/// Which object a webhook payload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookObject {
    Conversation,
    Message,
}

/// Translate a webhook payload of `tenant`'s `connection`. A message needs its conversation's
/// uuid when the payload does not carry `conversation_uuid`.
pub fn translate(
    tenant: &str,
    connection: &str,
    object: WebhookObject,
    payload: &Value,
    conversation_uuid: Option<&str>,
) -> Result<Resource, ApiError> {
    let mapper = Mapper {
        tenant: tenant.to_owned(),
        connection: connection.to_owned(),
        want_raw: false,
    };
    match object {
        WebhookObject::Conversation => translate_conversation(&mapper, payload).map(Resource::from),
        WebhookObject::Message => {
            translate_message(&mapper, payload, conversation_uuid).map(Resource::from)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_message_becomes_the_normalized_message_with_gateway_ids() {
        let payload: Value = serde_json::from_slice(include_bytes!(
            "../../../tests/fixtures/libredesk/webhooks/message_created_incoming.json"
        ))
        .unwrap();
        let payload = &payload["payload"];
        let resource = translate(
            "acme",
            "desk",
            WebhookObject::Message,
            payload,
            Some("550e8400-e29b-41d4-a716-446655440000"),
        )
        .unwrap();
        let value = serde_json::to_value(&resource).unwrap();
        assert_eq!(value["direction"], "inbound");
        assert_eq!(value["connection"], "desk");
        let id = value["id"].as_str().unwrap();
        let decoded =
            crate::api::ids::ObjectId::decode(crate::api::ids::Kind::Message, id).unwrap();
        assert_eq!(decoded.tenant, "acme");
        assert_eq!(decoded.keys[0], "550e8400-e29b-41d4-a716-446655440000");
        assert!(value.get("raw").is_none() || value["raw"].is_null());
    }
}
