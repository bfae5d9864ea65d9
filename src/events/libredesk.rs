//! Libredesk webhooks → vendor events (pure functions, no I/O).
//!
//! Libredesk POSTs `{event, timestamp, payload}` (one attempt, never retried), signed with
//! `sha256=` (see [`super::signing::verify_libredesk`], checked before this parser runs). This
//! module says what a verified body *means*: which normalized event it becomes, which object
//! `data` must hold, whether the payload is complete enough to translate or the object must be
//! fetched, how to recognize the same change sent twice, and which cache entries it touches.
//!
//! | Libredesk event | event type | `data` | payload complete? |
//! |---|---|---|---|
//! | `conversation.created` | `conversation.created` | the conversation | yes (the server sends what GET answers) |
//! | `conversation.status_changed`, `.assigned`, `.unassigned`, `.tags_changed` | `conversation.updated` | the conversation | only when the payload embeds `conversation` (newer servers); else GET it |
//! | `message.created` | `message.received` (`type: incoming`) or `message.sent` (`outgoing`) | the message | yes |
//! | `message.updated` | `message.updated` | the message | yes |
//! | `webhook.test`, `activity` messages, unknown events | — (acknowledged, nothing stored) | | |
//!
//! Message IDs need the conversation's *uuid*, but the documented message payload carries only
//! the numeric `conversation_id` (the server's code also sends `conversation_uuid`). When the
//! uuid is absent the event says so ([`ConversationKey::Number`]); intake resolves it from the
//! mapping every conversation payload teaches ([`VendorEvent::learned`], kept in the store's
//! state under [`conversation_number_key`]) or, failing that, from the vendor.
//!
//! Dedup: Libredesk sends no delivery ID. A `*.created` event is identified by the object it
//! created (a second "created" for the same uuid is the same change); every other event by the
//! SHA-256 of its raw body, which includes Libredesk's timestamp — two identical bodies are one
//! delivery sent twice.

use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::clock::{parse_rfc3339, Millis};
use super::model::EventType;

/// The conversation a message belongs to, as far as the payload says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConversationKey {
    Uuid(String),
    /// Only Libredesk's numeric id: resolve it to the uuid before minting IDs.
    Number(i64),
}

/// What the event's `data` is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// Gateway ID keys: `[uuid]`.
    Conversation { uuid: String },
    /// Gateway ID keys: `[conversation uuid, message uuid]`.
    Message {
        conversation: ConversationKey,
        uuid: String,
    },
}

impl Subject {
    /// The conversation's uuid, when known.
    pub fn conversation_uuid(&self) -> Option<&str> {
        match self {
            Subject::Conversation { uuid } => Some(uuid),
            Subject::Message {
                conversation: ConversationKey::Uuid(uuid),
                ..
            } => Some(uuid),
            Subject::Message { .. } => None,
        }
    }

    /// Fill in a resolved conversation uuid.
    pub fn resolve(&mut self, conversation_uuid: &str) {
        if let Subject::Message { conversation, .. } = self {
            *conversation = ConversationKey::Uuid(conversation_uuid.to_owned());
        }
    }
}

/// Cache entries an event makes stale (mirrors the gateway's write invalidations).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Touch {
    /// Conversation lists; with keys also that conversation and its message lists.
    Conversation(Option<Vec<String>>),
    /// Contact lookups and lists.
    ContactLists,
    /// A message in this conversation (keys): the conversation, its message lists, the lists.
    MessageIn(ConversationKey),
}

/// One verified Libredesk webhook, understood.
#[derive(Debug, Clone, PartialEq)]
pub struct VendorEvent {
    /// The Libredesk event name (for logs).
    pub vendor_event: String,
    pub event_type: EventType,
    /// Unique per connection for one change.
    pub dedup_key: String,
    pub subject: Subject,
    /// The vendor object to translate into `data`, when the payload is complete. `None`: GET
    /// the subject from the vendor (`conversations.get`).
    pub object: Option<Value>,
    pub touches: Vec<Touch>,
    /// Libredesk's numeric conversation id → uuid, when the payload shows both.
    pub learned: Option<(i64, String)>,
    /// Libredesk's `timestamp`, when readable.
    pub occurred_at: Option<Millis>,
}

impl VendorEvent {
    /// Whether intake must call the vendor before it can store the event.
    pub fn needs_fetch(&self) -> bool {
        self.object.is_none()
    }
}

/// The result of parsing a verified body.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    Event(Box<VendorEvent>),
    /// Acknowledge with 2xx and store nothing (`reason` is a bounded word for logs).
    Ignored {
        vendor_event: String,
        reason: &'static str,
    },
}

/// Why a verified body cannot be understood (→ 400 `invalid_request`, nothing stored). The
/// text names fields, never echoes values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntakeError {
    #[error("the body is not a JSON object with `event` and `payload`")]
    NotJson,
    #[error("`{event}` payload: `{field}` is missing or has the wrong type")]
    Field { event: String, field: &'static str },
}

/// The state key under which intake remembers a Libredesk conversation's uuid by its number.
pub fn conversation_number_key(tenant: &str, connection: &str, number: i64) -> String {
    format!("libredesk:{tenant}:{connection}:conversation:{number}")
}

#[derive(Deserialize)]
struct Webhook {
    event: String,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    payload: Value,
}

/// Fields read from a conversation object (the rest is translated by the adapter).
#[derive(Deserialize)]
struct WireConversation {
    uuid: String,
    #[serde(default)]
    id: Option<i64>,
}

#[derive(Deserialize)]
struct WireChange {
    conversation_uuid: String,
    #[serde(default)]
    conversation: Option<Value>,
}

#[derive(Deserialize)]
struct WireMessage {
    uuid: String,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    sender_type: Option<String>,
    #[serde(default)]
    conversation_id: Option<i64>,
    #[serde(default)]
    conversation_uuid: Option<String>,
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Understand one verified Libredesk webhook body (the raw bytes that were verified).
pub fn parse_webhook(body: &[u8]) -> Result<Parsed, IntakeError> {
    let hook: Webhook = serde_json::from_slice(body).map_err(|_| IntakeError::NotJson)?;
    let occurred_at = hook.timestamp.as_deref().and_then(parse_rfc3339);
    let event = hook.event;
    let field = |field: &'static str| IntakeError::Field {
        event: event.clone(),
        field,
    };
    let body_key = || format!("{event}:{}", sha256_hex(body));
    let parsed = match event.as_str() {
        "conversation.created" => {
            let c: WireConversation =
                serde_json::from_value(hook.payload.clone()).map_err(|_| field("uuid"))?;
            if c.uuid.is_empty() {
                return Err(field("uuid"));
            }
            VendorEvent {
                vendor_event: event.clone(),
                event_type: EventType::ConversationCreated,
                dedup_key: format!("{event}:{}", c.uuid),
                learned: c.id.map(|n| (n, c.uuid.clone())),
                touches: vec![Touch::Conversation(None), Touch::ContactLists],
                subject: Subject::Conversation { uuid: c.uuid },
                object: Some(hook.payload),
                occurred_at,
            }
        }
        "conversation.status_changed"
        | "conversation.assigned"
        | "conversation.unassigned"
        | "conversation.tags_changed" => {
            let change: WireChange =
                serde_json::from_value(hook.payload).map_err(|_| field("conversation_uuid"))?;
            if change.conversation_uuid.is_empty() {
                return Err(field("conversation_uuid"));
            }
            // Newer servers embed the whole conversation after the change: use it when it is
            // the same conversation, else fetch.
            let embedded = change.conversation.filter(|c| {
                c.get("uuid").and_then(Value::as_str) == Some(change.conversation_uuid.as_str())
            });
            let learned = embedded
                .as_ref()
                .and_then(|c| c.get("id").and_then(Value::as_i64))
                .map(|n| (n, change.conversation_uuid.clone()));
            VendorEvent {
                vendor_event: event.clone(),
                event_type: EventType::ConversationUpdated,
                dedup_key: body_key(),
                touches: vec![Touch::Conversation(Some(vec![change
                    .conversation_uuid
                    .clone()]))],
                subject: Subject::Conversation {
                    uuid: change.conversation_uuid,
                },
                object: embedded,
                learned,
                occurred_at,
            }
        }
        "message.created" | "message.updated" => {
            let m: WireMessage =
                serde_json::from_value(hook.payload.clone()).map_err(|_| field("uuid"))?;
            if m.uuid.is_empty() {
                return Err(field("uuid"));
            }
            let conversation = match (
                m.conversation_uuid.filter(|u| !u.is_empty()),
                m.conversation_id,
            ) {
                (Some(uuid), _) => ConversationKey::Uuid(uuid),
                (None, Some(n)) => ConversationKey::Number(n),
                (None, None) => return Err(field("conversation_id")),
            };
            let learned = match (&conversation, m.conversation_id) {
                (ConversationKey::Uuid(uuid), Some(n)) => Some((n, uuid.clone())),
                _ => None,
            };
            let event_type = if event == "message.updated" {
                EventType::MessageUpdated
            } else {
                match (m.kind.as_deref(), m.sender_type.as_deref()) {
                    (Some("incoming"), _) => EventType::MessageReceived,
                    (Some("outgoing"), _) => EventType::MessageSent,
                    (Some("activity"), _) => {
                        return Ok(Parsed::Ignored {
                            vendor_event: event,
                            reason: "activity_message",
                        })
                    }
                    (_, Some("contact")) => EventType::MessageReceived,
                    _ => EventType::MessageSent,
                }
            };
            let dedup_key = if event == "message.created" {
                format!("{event}:{}", m.uuid)
            } else {
                body_key()
            };
            VendorEvent {
                vendor_event: event,
                event_type,
                dedup_key,
                touches: vec![Touch::MessageIn(conversation.clone())],
                subject: Subject::Message {
                    conversation,
                    uuid: m.uuid,
                },
                object: Some(hook.payload),
                learned,
                occurred_at,
            }
        }
        "webhook.test" => {
            return Ok(Parsed::Ignored {
                vendor_event: event,
                reason: "test",
            })
        }
        _ => {
            return Ok(Parsed::Ignored {
                vendor_event: event,
                reason: "unsupported_event",
            })
        }
    };
    Ok(Parsed::Event(Box::new(parsed)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONVERSATION_CREATED: &[u8] =
        include_bytes!("../../tests/fixtures/libredesk/webhooks/conversation_created.json");
    const STATUS_CHANGED: &[u8] =
        include_bytes!("../../tests/fixtures/libredesk/webhooks/conversation_status_changed.json");
    const STATUS_CHANGED_FULL: &[u8] = include_bytes!(
        "../../tests/fixtures/libredesk/webhooks/conversation_status_changed_with_conversation.json"
    );
    const ASSIGNED: &[u8] =
        include_bytes!("../../tests/fixtures/libredesk/webhooks/conversation_assigned.json");
    const UNASSIGNED: &[u8] =
        include_bytes!("../../tests/fixtures/libredesk/webhooks/conversation_unassigned.json");
    const TAGS_CHANGED: &[u8] =
        include_bytes!("../../tests/fixtures/libredesk/webhooks/conversation_tags_changed.json");
    const MESSAGE_CREATED: &[u8] =
        include_bytes!("../../tests/fixtures/libredesk/webhooks/message_created.json");
    const MESSAGE_INCOMING: &[u8] =
        include_bytes!("../../tests/fixtures/libredesk/webhooks/message_created_incoming.json");
    const MESSAGE_UPDATED: &[u8] =
        include_bytes!("../../tests/fixtures/libredesk/webhooks/message_updated.json");
    const TEST_HOOK: &[u8] =
        include_bytes!("../../tests/fixtures/libredesk/webhooks/webhook_test.json");

    const CONV: &str = "550e8400-e29b-41d4-a716-446655440000";

    fn event(body: &[u8]) -> VendorEvent {
        match parse_webhook(body).unwrap() {
            Parsed::Event(e) => *e,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn conversation_created_is_complete_and_keyed_by_its_uuid() {
        let e = event(CONVERSATION_CREATED);
        assert_eq!(e.event_type, EventType::ConversationCreated);
        assert_eq!(e.subject, Subject::Conversation { uuid: CONV.into() });
        assert!(!e.needs_fetch());
        assert_eq!(
            e.object.as_ref().unwrap()["subject"],
            "Help with account setup"
        );
        assert_eq!(e.dedup_key, format!("conversation.created:{CONV}"));
        assert_eq!(e.learned, Some((123, CONV.into())));
        assert_eq!(e.occurred_at, parse_rfc3339("2025-06-15T10:30:00Z"));
        assert_eq!(
            e.touches,
            vec![Touch::Conversation(None), Touch::ContactLists]
        );
    }

    #[test]
    fn documented_change_payloads_are_partial_and_need_a_fetch() {
        for (body, name) in [
            (STATUS_CHANGED, "conversation.status_changed"),
            (ASSIGNED, "conversation.assigned"),
            (UNASSIGNED, "conversation.unassigned"),
            (TAGS_CHANGED, "conversation.tags_changed"),
        ] {
            let e = event(body);
            assert_eq!(e.vendor_event, name);
            assert_eq!(e.event_type, EventType::ConversationUpdated, "{name}");
            assert_eq!(e.subject, Subject::Conversation { uuid: CONV.into() });
            assert!(e.needs_fetch(), "{name}");
            assert_eq!(
                e.touches,
                vec![Touch::Conversation(Some(vec![CONV.into()]))]
            );
            assert!(
                e.dedup_key.starts_with(&format!("{name}:")),
                "{}",
                e.dedup_key
            );
            assert_eq!(e.learned, None);
        }
    }

    #[test]
    fn a_change_that_embeds_the_conversation_needs_no_fetch() {
        let e = event(STATUS_CHANGED_FULL);
        assert!(!e.needs_fetch());
        assert_eq!(e.object.as_ref().unwrap()["status"], "Snoozed");
        assert_eq!(e.learned, Some((123, CONV.into())));
        // An embedded object of another conversation is not trusted.
        let mut v: Value = serde_json::from_slice(STATUS_CHANGED_FULL).unwrap();
        v["payload"]["conversation"]["uuid"] = "someone-else".into();
        let e = event(&serde_json::to_vec(&v).unwrap());
        assert!(e.needs_fetch());
    }

    #[test]
    fn change_dedup_tells_a_resend_from_a_new_change() {
        let a = event(STATUS_CHANGED);
        assert_eq!(
            event(STATUS_CHANGED).dedup_key,
            a.dedup_key,
            "the same body twice"
        );
        let mut v: Value = serde_json::from_slice(STATUS_CHANGED).unwrap();
        v["timestamp"] = "2025-06-15T10:35:01Z".into();
        assert_ne!(
            event(&serde_json::to_vec(&v).unwrap()).dedup_key,
            a.dedup_key
        );
    }

    #[test]
    fn messages_become_received_or_sent_by_direction() {
        let out = event(MESSAGE_CREATED);
        assert_eq!(out.event_type, EventType::MessageSent);
        assert_eq!(
            out.subject,
            Subject::Message {
                conversation: ConversationKey::Number(123),
                uuid: "123e4567-e89b-12d3-a456-426614174000".into()
            }
        );
        assert_eq!(
            out.subject.conversation_uuid(),
            None,
            "docs payload: number only"
        );
        assert_eq!(out.learned, None);
        assert_eq!(
            out.dedup_key,
            "message.created:123e4567-e89b-12d3-a456-426614174000"
        );
        assert!(!out.needs_fetch());
        assert_eq!(
            out.touches,
            vec![Touch::MessageIn(ConversationKey::Number(123))]
        );

        let inbound = event(MESSAGE_INCOMING);
        assert_eq!(inbound.event_type, EventType::MessageReceived);
        assert_eq!(inbound.subject.conversation_uuid(), Some(CONV));
        assert_eq!(inbound.learned, Some((123, CONV.into())));
        assert_eq!(
            inbound.object.as_ref().unwrap()["text_content"],
            "My invoice is wrong"
        );

        let mut resolved = out.subject.clone();
        resolved.resolve(CONV);
        assert_eq!(resolved.conversation_uuid(), Some(CONV));
    }

    #[test]
    fn message_updates_dedup_by_body_and_activity_is_ignored() {
        let e = event(MESSAGE_UPDATED);
        assert_eq!(e.event_type, EventType::MessageUpdated);
        assert!(e.dedup_key.starts_with("message.updated:"));
        assert_ne!(e.dedup_key, event(MESSAGE_CREATED).dedup_key);

        let mut v: Value = serde_json::from_slice(MESSAGE_CREATED).unwrap();
        v["payload"]["type"] = "activity".into();
        assert_eq!(
            parse_webhook(&serde_json::to_vec(&v).unwrap()).unwrap(),
            Parsed::Ignored {
                vendor_event: "message.created".into(),
                reason: "activity_message"
            }
        );
        // No `type`: the sender decides.
        v["payload"].as_object_mut().unwrap().remove("type");
        v["payload"]["sender_type"] = "contact".into();
        assert_eq!(
            event(&serde_json::to_vec(&v).unwrap()).event_type,
            EventType::MessageReceived
        );
    }

    #[test]
    fn test_and_unknown_events_are_acknowledged_without_storing() {
        assert_eq!(
            parse_webhook(TEST_HOOK).unwrap(),
            Parsed::Ignored {
                vendor_event: "webhook.test".into(),
                reason: "test"
            }
        );
        assert!(matches!(
            parse_webhook(br#"{"event":"contact.merged","timestamp":"x","payload":{}}"#).unwrap(),
            Parsed::Ignored {
                reason: "unsupported_event",
                ..
            }
        ));
    }

    #[test]
    fn malformed_bodies_are_refused_with_the_field_named() {
        assert_eq!(parse_webhook(b"not json"), Err(IntakeError::NotJson));
        assert_eq!(parse_webhook(b"[1,2]"), Err(IntakeError::NotJson));
        assert_eq!(
            parse_webhook(br#"{"payload":{}}"#),
            Err(IntakeError::NotJson)
        );
        for (body, field) in [
            (
                &br#"{"event":"conversation.created","payload":{"id":1}}"#[..],
                "uuid",
            ),
            (
                br#"{"event":"conversation.created","payload":{"uuid":""}}"#,
                "uuid",
            ),
            (
                br#"{"event":"conversation.assigned","payload":{"assigned_to":3}}"#,
                "conversation_uuid",
            ),
            (
                br#"{"event":"conversation.assigned","payload":{"conversation_uuid":7}}"#,
                "conversation_uuid",
            ),
            (
                br#"{"event":"message.created","payload":{"conversation_id":1}}"#,
                "uuid",
            ),
            (
                br#"{"event":"message.created","payload":{"uuid":"m"}}"#,
                "conversation_id",
            ),
            (br#"{"event":"message.updated"}"#, "uuid"),
        ] {
            match parse_webhook(body) {
                Err(IntakeError::Field { field: f, .. }) => {
                    assert_eq!(f, field, "{}", String::from_utf8_lossy(body))
                }
                other => panic!("{}: {other:?}", String::from_utf8_lossy(body)),
            }
        }
        let e =
            parse_webhook(br#"{"event":"message.created","payload":{"uuid":"m"}}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "`message.created` payload: `conversation_id` is missing or has the wrong type"
        );
    }

    #[test]
    fn number_mapping_keys_are_scoped_to_the_connection() {
        assert_eq!(
            conversation_number_key("acme", "desk", 123),
            "libredesk:acme:desk:conversation:123"
        );
    }
}
