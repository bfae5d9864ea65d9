//! CAAC's "Self Hosted AI Agent" call, and the bridge to the app's own agent.
//!
//! CAAC POSTs `{version: "1.0", conversation_id, org_uuid, prompt, messages[],
//! participants{members[]}}` with `Authorization: Bearer <token configured in CAAC>` (checked
//! by [`super::signing::BearerToken`] first) and needs `{reply_text}` within 45 s;
//! `<HUMAN_HANDOVER>` inside `reply_text` hands the conversation to a human.
//! `conversation_id: 0` is CAAC's health check.
//!
//! The gateway:
//! 1. turns each message from the member (the customer) into a `message.received` event with
//!    gateway IDs — conversation and contact `[channel_id, member_id]`, message
//!    `[channel_id, member_id, message_uuid]` — deduplicated by `message_uuid` (CAAC resends
//!    the history on every call);
//! 2. when the connection configures `agent {url, secret, timeout_ms, on_failure}`, POSTs a
//!    *normalized* [`AgentRequest`] to the app's agent, signed like a delivery (Standard
//!    Webhooks), and maps the app's `{text, handover}` back to `{reply_text}`;
//! 3. on an agent failure or timeout answers `on_failure` (default: hand over to a human).
//!
//! CAAC has no call to read a message back, so the event's `data` is built from the call
//! itself (it is the complete message as CAAC knows it).

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::clock::parse_rfc3339;
use super::model::{validate_webhook_url, EventType};
use super::sender::{WebhookRequest, WebhookSender};
use super::signing::{webhook_headers, SigningSecret};
use crate::api::ids::{Kind, ObjectId};
use crate::api::model::{
    Contact, Direction, Handle, HandleChannel, Message, MessageStatus, MessageType, Sender,
    SenderType,
};
use crate::config_error::ConfigError;

/// The marker CAAC reads in `reply_text`.
pub const HUMAN_HANDOVER: &str = "<HUMAN_HANDOVER>";

/// The call's version this gateway speaks.
pub const VERSION: &str = "1.0";

const VENDOR: &str = "caac";

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AgentMessage {
    #[serde(default)]
    pub message_type: Option<String>,
    pub message_uuid: String,
    #[serde(default)]
    pub sender_id: Option<i64>,
    #[serde(default)]
    pub sender_type: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub timestamp: Option<String>,
}

impl AgentMessage {
    /// From the customer (CAAC's "member").
    pub fn is_inbound(&self) -> bool {
        self.sender_type.as_deref() == Some("member")
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Member {
    pub channel_id: i64,
    pub member_id: i64,
    #[serde(default)]
    pub channel_member_id: Option<String>,
    #[serde(default)]
    pub channel_type: Option<String>,
    #[serde(default)]
    pub external_member_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Participants {
    #[serde(default)]
    pub members: Vec<Member>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
struct WireCall {
    version: String,
    conversation_id: i64,
    #[serde(default)]
    org_uuid: Option<String>,
    #[serde(default)]
    prompt: Option<String>,
    #[serde(default)]
    messages: Vec<AgentMessage>,
    #[serde(default)]
    participants: Participants,
}

/// A conversation turn CAAC asks the agent to answer.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentCall {
    /// CAAC's own conversation number (logs only; gateway IDs use the member).
    pub caac_conversation_id: i64,
    pub org_uuid: Option<String>,
    pub prompt: Option<String>,
    /// The customer: the member who wrote, else the first participant.
    pub member: Member,
    pub messages: Vec<AgentMessage>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ParsedCall {
    /// `conversation_id: 0`: answer at once, store nothing, call no agent.
    HealthCheck,
    Conversation(Box<AgentCall>),
}

/// Why the body cannot be understood (→ 400 `invalid_request`, nothing stored).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("the body is not a CAAC AI-agent request: {0}")]
    Shape(&'static str),
    #[error("version {0:?} is not supported; this gateway speaks {VERSION}")]
    Version(String),
}

/// Understand one authenticated CAAC AI-agent call.
pub fn parse_call(body: &[u8]) -> Result<ParsedCall, CallError> {
    let wire: WireCall = serde_json::from_slice(body).map_err(|_| {
        CallError::Shape("expected {version, conversation_id, messages[], participants{members[]}}")
    })?;
    if wire.version != VERSION {
        return Err(CallError::Version(wire.version.chars().take(16).collect()));
    }
    if wire.conversation_id == 0 {
        return Ok(ParsedCall::HealthCheck);
    }
    let writer = wire
        .messages
        .iter()
        .filter(|m| m.is_inbound())
        .find_map(|m| m.sender_id);
    let member = writer
        .and_then(|id| wire.participants.members.iter().find(|m| m.member_id == id))
        .or_else(|| wire.participants.members.first())
        .cloned()
        .ok_or(CallError::Shape("participants.members is empty"))?;
    if wire.messages.iter().any(|m| m.message_uuid.is_empty()) {
        return Err(CallError::Shape("a message has an empty message_uuid"));
    }
    Ok(ParsedCall::Conversation(Box::new(AgentCall {
        caac_conversation_id: wire.conversation_id,
        org_uuid: wire.org_uuid,
        prompt: wire.prompt,
        member,
        messages: wire.messages,
    })))
}

/// One `message.received` to store.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundMessage {
    pub event_type: EventType,
    pub dedup_key: String,
    /// The conversation's gateway ID (the order key).
    pub conversation_id: String,
    pub message: Value,
}

fn message_type(kind: Option<&str>) -> MessageType {
    match kind {
        Some("text") | None => MessageType::Text,
        Some("image") => MessageType::Image,
        Some("video") => MessageType::Video,
        Some("audio") => MessageType::Audio,
        Some("file") => MessageType::File,
        Some("location") => MessageType::Location,
        Some(_) => MessageType::Other,
    }
}

fn handle_channel(channel_type: Option<&str>) -> HandleChannel {
    match channel_type {
        Some("line") => HandleChannel::Line,
        Some("whatsapp") => HandleChannel::Whatsapp,
        Some("web") | Some("webchat") => HandleChannel::Web,
        _ => HandleChannel::Other,
    }
}

impl AgentCall {
    fn keys(&self) -> Vec<String> {
        vec![
            self.member.channel_id.to_string(),
            self.member.member_id.to_string(),
        ]
    }

    /// The conversation's gateway ID (what `GET /v1/conversations/{id}` takes).
    pub fn conversation_id(&self, tenant: &str, connection: &str) -> String {
        ObjectId::new(Kind::Conversation, tenant, connection, self.keys()).encode()
    }

    pub fn contact_id(&self, tenant: &str, connection: &str) -> String {
        ObjectId::new(Kind::Contact, tenant, connection, self.keys()).encode()
    }

    /// The contact as far as the call tells (name and the rest come from a GET).
    pub fn contact(&self, tenant: &str, connection: &str) -> Contact {
        let handles = self
            .member
            .channel_member_id
            .iter()
            .filter(|v| !v.is_empty())
            .map(|v| Handle {
                channel: handle_channel(self.member.channel_type.as_deref()),
                value: v.clone(),
            })
            .collect();
        Contact {
            id: self.contact_id(tenant, connection),
            connection: connection.to_owned(),
            vendor: VENDOR,
            remote_id: self.member.member_id.to_string(),
            handles,
            ..Contact::default()
        }
    }

    /// Every message of the call, normalized (inbound from the member, outbound otherwise).
    pub fn messages(&self, tenant: &str, connection: &str) -> Vec<Message> {
        let conversation_id = self.conversation_id(tenant, connection);
        let contact_id = self.contact_id(tenant, connection);
        self.messages
            .iter()
            .map(|m| {
                let mut keys = self.keys();
                keys.push(m.message_uuid.clone());
                let inbound = m.is_inbound();
                let created_at = m
                    .timestamp
                    .as_deref()
                    .filter(|t| parse_rfc3339(t).is_some())
                    .map(str::to_owned);
                Message {
                    id: ObjectId::new(Kind::Message, tenant, connection, keys).encode(),
                    connection: connection.to_owned(),
                    vendor: VENDOR,
                    remote_id: m.message_uuid.clone(),
                    created_at: created_at.clone(),
                    updated_at: created_at,
                    conversation_id: conversation_id.clone(),
                    direction: if inbound {
                        Direction::Inbound
                    } else {
                        Direction::Outbound
                    },
                    sender: if inbound {
                        Sender {
                            type_: SenderType::Contact,
                            id: Some(contact_id.clone()),
                            name: None,
                        }
                    } else {
                        Sender {
                            type_: match m.sender_type.as_deref() {
                                Some("bot") | Some("ai") => SenderType::Bot,
                                Some("system") => SenderType::System,
                                _ => SenderType::Agent,
                            },
                            id: m.sender_id.map(|id| id.to_string()),
                            name: None,
                        }
                    },
                    type_: message_type(m.message_type.as_deref()),
                    text: m.text.clone(),
                    html: None,
                    attachments: Vec::new(),
                    private: false,
                    status: Some(if inbound {
                        MessageStatus::Received
                    } else {
                        MessageStatus::Sent
                    }),
                    raw: None,
                }
            })
            .collect()
    }

    /// The events to store: one `message.received` per message from the member.
    pub fn inbound_events(&self, tenant: &str, connection: &str) -> Vec<InboundMessage> {
        let conversation_id = self.conversation_id(tenant, connection);
        self.messages
            .iter()
            .zip(self.messages(tenant, connection))
            .filter(|(wire, _)| wire.is_inbound())
            .map(|(wire, message)| InboundMessage {
                event_type: EventType::MessageReceived,
                dedup_key: format!("caac:message:{}", wire.message_uuid),
                conversation_id: conversation_id.clone(),
                // ok: a Message is plain data; serializing it cannot fail.
                message: serde_json::to_value(&message).unwrap_or(Value::Null),
            })
            .collect()
    }

    /// The normalized request for the app's agent.
    pub fn agent_request(&self, tenant: &str, connection: &str) -> AgentRequest {
        AgentRequest {
            connection: connection.to_owned(),
            vendor: VENDOR,
            conversation_id: self.conversation_id(tenant, connection),
            contact: self.contact(tenant, connection),
            messages: self.messages(tenant, connection),
            prompt: self.prompt.clone(),
        }
    }
}

/// What the app's agent receives (JSON, signed with Standard Webhooks headers).
#[derive(Debug, Clone, Serialize)]
pub struct AgentRequest {
    pub connection: String,
    pub vendor: &'static str,
    pub conversation_id: String,
    pub contact: Contact,
    pub messages: Vec<Message>,
    pub prompt: Option<String>,
}

/// What the app's agent answers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentReply {
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub handover: bool,
}

/// CAAC's `{reply_text}` for the app's reply. A marker the app wrote into `text` counts as a
/// handover and is not repeated.
pub fn caac_reply(reply: &AgentReply) -> Value {
    let text = reply.text.as_deref().unwrap_or_default();
    let handover = reply.handover || text.contains(HUMAN_HANDOVER);
    let clean = text.replace(HUMAN_HANDOVER, "");
    let clean = clean.trim();
    let reply_text = match (clean.is_empty(), handover) {
        (_, false) => clean.to_owned(),
        (true, true) => HUMAN_HANDOVER.to_owned(),
        (false, true) => format!("{clean} {HUMAN_HANDOVER}"),
    };
    json!({ "reply_text": reply_text })
}

/// Read CAAC's `{reply_text}` back: the text without the marker, and whether it hands over
/// (the CAAC sandbox plays CAAC with this).
pub fn read_caac_reply(body: &[u8]) -> Option<(String, bool)> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let text = value.get("reply_text")?.as_str()?;
    Some((
        text.replace(HUMAN_HANDOVER, "").trim().to_owned(),
        text.contains(HUMAN_HANDOVER),
    ))
}

/// What to answer CAAC when the app's agent fails or times out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// Hand the conversation to a human (`<HUMAN_HANDOVER>`).
    #[default]
    Handover,
    /// Answer nothing (`reply_text: ""`); CAAC's own routing decides.
    Silent,
}

/// `agent:` of a CAAC connection.
///
/// ```yaml
/// agent:
///   url: https://bot.acme.example/caac
///   secret: ${ACME_AGENT_SECRET}     # whsec_…, verifies our signature at the app
///   timeout_ms: 20000                # at most 40000: CAAC gives up after 45 s
///   on_failure: handover             # or silent
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentFile {
    pub url: String,
    pub secret: String,
    #[serde(default = "default_agent_timeout")]
    pub timeout_ms: u64,
    #[serde(default)]
    pub on_failure: OnFailure,
}

fn default_agent_timeout() -> u64 {
    20_000
}

/// The longest agent timeout: CAAC waits 45 s for the whole call.
pub const MAX_AGENT_TIMEOUT_MS: u64 = 40_000;

#[derive(Debug)]
pub struct AgentSettings {
    pub url: url::Url,
    pub secret: SigningSecret,
    pub timeout: Duration,
    pub on_failure: OnFailure,
}

impl AgentSettings {
    /// Validate `raw` found at `key` (e.g. `tenants.acme.line.agent`) of `file`.
    pub fn try_build(
        file: &Path,
        key: &str,
        raw: &AgentFile,
    ) -> Result<AgentSettings, ConfigError> {
        let err = |k: &str, reason: String| ConfigError {
            file: file.to_path_buf(),
            key: format!("{key}.{k}"),
            reason,
        };
        let url = validate_webhook_url(&raw.url).map_err(|r| err("url", r))?;
        let secret = SigningSecret::parse(&raw.secret).map_err(|r| err("secret", r.to_owned()))?;
        if !(100..=MAX_AGENT_TIMEOUT_MS).contains(&raw.timeout_ms) {
            return Err(err(
                "timeout_ms",
                format!("use 100 to {MAX_AGENT_TIMEOUT_MS} (CAAC waits 45 s for the answer)"),
            ));
        }
        Ok(AgentSettings {
            url,
            secret,
            timeout: Duration::from_millis(raw.timeout_ms),
            on_failure: raw.on_failure,
        })
    }
}

/// How the bridge ended (bounded words for logs and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BridgeOutcome {
    /// The app answered; its reply was passed on.
    Replied,
    /// The app failed (status, timeout, unreadable reply): `on_failure` was answered.
    Failed(&'static str),
}

/// The answer for CAAC when no agent is configured or it failed.
pub fn failure_reply(on_failure: OnFailure) -> Value {
    match on_failure {
        OnFailure::Handover => json!({ "reply_text": HUMAN_HANDOVER }),
        OnFailure::Silent => json!({ "reply_text": "" }),
    }
}

/// The answer to a health check.
pub fn health_reply() -> Value {
    json!({ "reply_text": "" })
}

/// Ask the app's agent, within its timeout, and answer CAAC's `{reply_text}`.
pub async fn bridge(
    sender: &dyn WebhookSender,
    settings: &AgentSettings,
    call: &AgentCall,
    tenant: &str,
    connection: &str,
    now_secs: i64,
) -> (Value, BridgeOutcome) {
    let fail = |why: &'static str| {
        tracing::warn!(
            connection,
            reason = why,
            "AI agent failed; answering CAAC with on_failure"
        );
        (
            failure_reply(settings.on_failure),
            BridgeOutcome::Failed(why),
        )
    };
    let request = call.agent_request(tenant, connection);
    let body = match serde_json::to_vec(&request) {
        Ok(b) => Bytes::from(b),
        Err(_) => return fail("unserializable"),
    };
    let id = format!(
        "agt_{}",
        super::model::new_event_id().trim_start_matches("evt_")
    );
    let mut headers: Vec<(HeaderName, HeaderValue)> = vec![(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    )];
    match webhook_headers(&settings.secret, &id, now_secs, &body) {
        Ok(signed) => headers.extend(signed),
        Err(_) => return fail("unsignable"),
    }
    let answer = sender
        .post(WebhookRequest {
            url: settings.url.clone(),
            headers,
            body,
            timeout: settings.timeout,
        })
        .await;
    match answer {
        Err(super::sender::SendError::Timeout(_)) => fail("timeout"),
        Err(_) => fail("unreachable"),
        Ok(r) if !(200..300).contains(&r.status) => fail("error_status"),
        Ok(r) => match serde_json::from_slice::<AgentReply>(&r.body) {
            Ok(reply) => (caac_reply(&reply), BridgeOutcome::Replied),
            Err(_) => fail("bad_reply"),
        },
    }
}

/// Map-building helper for tests and the sandbox: a CAAC call body.
pub fn call_body(
    conversation_id: i64,
    member: &Member,
    messages: &[(&str, &str)],
    prompt: &str,
) -> Value {
    let mut m = Map::new();
    m.insert("version".into(), VERSION.into());
    m.insert("conversation_id".into(), conversation_id.into());
    m.insert(
        "org_uuid".into(),
        "00000000-0000-0000-0000-000000000000".into(),
    );
    m.insert("prompt".into(), prompt.into());
    m.insert(
        "messages".into(),
        messages
            .iter()
            .map(|(uuid, text)| {
                json!({"message_type": "text", "message_uuid": uuid, "sender_id": member.member_id,
                       "sender_type": "member", "text": text})
            })
            .collect(),
    );
    m.insert(
        "participants".into(),
        json!({"members": [{"channel_id": member.channel_id, "member_id": member.member_id,
            "channel_member_id": member.channel_member_id, "channel_type": member.channel_type,
            "external_member_id": member.external_member_id}]}),
    );
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::sender::PingoraSender;
    use crate::events::signing::verify_standard;
    use axum::extract::State;
    use axum::response::IntoResponse;
    use http::{HeaderMap, StatusCode};
    use std::sync::{Arc, Mutex};

    const REQUEST: &[u8] = include_bytes!("../../tests/fixtures/caac/agent/request.json");
    const HEALTH: &[u8] = include_bytes!("../../tests/fixtures/caac/agent/health_check.json");
    const REPLY: &[u8] = include_bytes!("../../tests/fixtures/caac/agent/reply.json");
    const REPLY_HANDOVER: &[u8] =
        include_bytes!("../../tests/fixtures/caac/agent/reply_handover.json");
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn call() -> AgentCall {
        match parse_call(REQUEST).unwrap() {
            ParsedCall::Conversation(c) => *c,
            other => panic!("{other:?}"),
        }
    }

    fn id(kind: Kind, keys: &[&str]) -> String {
        ObjectId::new(
            kind,
            "acme",
            "line",
            keys.iter().map(|k| k.to_string()).collect(),
        )
        .encode()
    }

    #[test]
    fn the_seed_example_parses_and_a_zero_conversation_is_a_health_check() {
        let c = call();
        assert_eq!(c.caac_conversation_id, 98765);
        assert_eq!(c.member.channel_id, 12345);
        assert_eq!(c.member.member_id, 67890);
        assert_eq!(c.prompt.as_deref(), Some("As a professional customer service representative, please respond to questions in a friendly tone."));
        assert_eq!(parse_call(HEALTH).unwrap(), ParsedCall::HealthCheck);
        assert_eq!(health_reply(), json!({"reply_text": ""}));
    }

    #[test]
    fn bad_calls_are_refused() {
        assert!(matches!(parse_call(b"{}"), Err(CallError::Shape(_))));
        assert!(matches!(parse_call(b"nope"), Err(CallError::Shape(_))));
        let mut v: Value = serde_json::from_slice(REQUEST).unwrap();
        v["version"] = "2.0".into();
        assert_eq!(
            parse_call(&serde_json::to_vec(&v).unwrap()),
            Err(CallError::Version("2.0".into()))
        );
        let mut v: Value = serde_json::from_slice(REQUEST).unwrap();
        v["participants"]["members"] = json!([]);
        assert_eq!(
            parse_call(&serde_json::to_vec(&v).unwrap()),
            Err(CallError::Shape("participants.members is empty"))
        );
        let mut v: Value = serde_json::from_slice(REQUEST).unwrap();
        v["messages"][0]["message_uuid"] = "".into();
        assert!(parse_call(&serde_json::to_vec(&v).unwrap()).is_err());
    }

    #[test]
    fn member_messages_become_message_received_with_gateway_ids() {
        let c = call();
        let events = c.inbound_events("acme", "line");
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(e.event_type, EventType::MessageReceived);
        assert_eq!(
            e.dedup_key,
            "caac:message:550e8400-e29b-41d4-a716-446655440000"
        );
        assert_eq!(
            e.conversation_id,
            id(Kind::Conversation, &["12345", "67890"])
        );
        let m = &e.message;
        assert_eq!(
            m["id"],
            id(
                Kind::Message,
                &["12345", "67890", "550e8400-e29b-41d4-a716-446655440000"]
            )
        );
        assert_eq!(
            m["conversation_id"],
            id(Kind::Conversation, &["12345", "67890"])
        );
        assert_eq!(m["connection"], "line");
        assert_eq!(m["vendor"], "caac");
        assert_eq!(m["remote_id"], "550e8400-e29b-41d4-a716-446655440000");
        assert_eq!(m["direction"], "inbound");
        assert_eq!(
            m["sender"],
            json!({"type": "contact", "id": id(Kind::Contact, &["12345", "67890"]), "name": null})
        );
        assert_eq!(m["type"], "text");
        assert_eq!(m["text"], "I would like to know more about your products");
        assert_eq!(m["status"], "received");
        assert_eq!(m["created_at"], "2025-05-21T05:06:00Z");
        assert_eq!(m["private"], false);
        assert!(m.get("raw").is_none());
    }

    #[test]
    fn the_agent_request_is_normalized() {
        let mut v: Value = serde_json::from_slice(REQUEST).unwrap();
        v["messages"].as_array_mut().unwrap().push(json!({
            "message_type": "text", "message_uuid": "b2", "sender_id": 5, "sender_type": "user", "text": "Hi, Ann here"
        }));
        let ParsedCall::Conversation(c) = parse_call(&serde_json::to_vec(&v).unwrap()).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            c.inbound_events("acme", "line").len(),
            1,
            "only the member's messages are events"
        );
        let r = serde_json::to_value(c.agent_request("acme", "line")).unwrap();
        assert_eq!(
            r["conversation_id"],
            id(Kind::Conversation, &["12345", "67890"])
        );
        assert_eq!(r["contact"]["id"], id(Kind::Contact, &["12345", "67890"]));
        assert_eq!(
            r["contact"]["handles"],
            json!([{"channel": "line", "value": "U1234567890abcdef1234567890abcdef"}])
        );
        assert_eq!(r["messages"][1]["direction"], "outbound");
        assert_eq!(
            r["messages"][1]["sender"],
            json!({"type": "agent", "id": "5", "name": null})
        );
        assert_eq!(r["prompt"], c.prompt.clone().unwrap());
        assert_eq!(r["vendor"], "caac");
    }

    #[test]
    fn replies_map_to_reply_text_with_the_handover_marker() {
        let r = |text: Option<&str>, handover| {
            caac_reply(&AgentReply {
                text: text.map(str::to_owned),
                handover,
            })
        };
        assert_eq!(r(Some("Hello!"), false), json!({"reply_text": "Hello!"}));
        assert_eq!(
            r(Some("One moment."), true),
            json!({"reply_text": "One moment. <HUMAN_HANDOVER>"})
        );
        assert_eq!(r(None, true), json!({"reply_text": "<HUMAN_HANDOVER>"}));
        assert_eq!(r(None, false), json!({"reply_text": ""}));
        assert_eq!(
            r(Some("Bye <HUMAN_HANDOVER>"), false),
            json!({"reply_text": "Bye <HUMAN_HANDOVER>"})
        );
        assert_eq!(
            failure_reply(OnFailure::Handover),
            json!({"reply_text": "<HUMAN_HANDOVER>"})
        );
        assert_eq!(failure_reply(OnFailure::Silent), json!({"reply_text": ""}));
        let (text, handover) = read_caac_reply(REPLY).unwrap();
        assert!(text.starts_with("Hello! Thank you") && !handover);
        assert_eq!(
            read_caac_reply(REPLY_HANDOVER).unwrap(),
            ("Let me connect you with a colleague.".into(), true)
        );
        assert_eq!(read_caac_reply(b"{}"), None);
        assert!(serde_json::from_str::<AgentReply>(r#"{"txt": "typo"}"#).is_err());
    }

    #[test]
    fn agent_settings_are_validated() {
        let file = Path::new("connections.yaml");
        let ok: AgentFile = serde_yaml::from_str(&format!(
            "url: https://bot.example/caac\nsecret: {SECRET}\n"
        ))
        .unwrap();
        let s = AgentSettings::try_build(file, "tenants.acme.line.agent", &ok).unwrap();
        assert_eq!(s.timeout, Duration::from_secs(20));
        assert_eq!(s.on_failure, OnFailure::Handover);
        for (yaml, key) in [
            (
                format!("url: http://bot.example/x\nsecret: {SECRET}"),
                "tenants.acme.line.agent.url",
            ),
            (
                "url: https://bot.example/x\nsecret: plain".to_owned(),
                "tenants.acme.line.agent.secret",
            ),
            (
                format!("url: https://bot.example/x\nsecret: {SECRET}\ntimeout_ms: 45000"),
                "tenants.acme.line.agent.timeout_ms",
            ),
        ] {
            let raw: AgentFile = serde_yaml::from_str(&yaml).unwrap();
            let e = AgentSettings::try_build(file, "tenants.acme.line.agent", &raw).unwrap_err();
            assert_eq!(e.key, key);
            assert!(!e.to_string().contains("MfKQ"));
        }
        assert!(serde_yaml::from_str::<AgentFile>("url: x\nsecret: y\non_failure: panic").is_err());
    }

    // ----- the bridge against a real loopback agent -------------------------------------

    #[derive(Clone)]
    struct App {
        answer: Arc<Mutex<(u16, String)>>,
        hang: bool,
        seen: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
    }

    async fn agent(State(app): State<App>, headers: HeaderMap, body: Bytes) -> impl IntoResponse {
        app.seen.lock().unwrap().push((headers, body));
        if app.hang {
            std::future::pending::<()>().await;
        }
        let (status, body) = app.answer.lock().unwrap().clone();
        (StatusCode::from_u16(status).unwrap(), body)
    }

    async fn start(status: u16, body: &str, hang: bool) -> (AgentSettings, App) {
        let app = App {
            answer: Arc::new(Mutex::new((status, body.to_owned()))),
            hang,
            seen: Arc::default(),
        };
        let router = axum::Router::new()
            .route("/agent", axum::routing::post(agent))
            .with_state(app.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        let raw: AgentFile = serde_yaml::from_str(&format!(
            "url: http://{addr}/agent\nsecret: {SECRET}\ntimeout_ms: 500\n"
        ))
        .unwrap();
        (
            AgentSettings::try_build(Path::new("c.yaml"), "agent", &raw).unwrap(),
            app,
        )
    }

    #[tokio::test]
    async fn the_bridge_passes_the_apps_signed_reply_back() {
        let (settings, app) = start(
            200,
            r#"{"text": "Product A is great.", "handover": false}"#,
            false,
        )
        .await;
        let sender = PingoraSender::new();
        let (reply, outcome) =
            bridge(&sender, &settings, &call(), "acme", "line", 1_750_000_000).await;
        assert_eq!(outcome, BridgeOutcome::Replied);
        assert_eq!(reply, json!({"reply_text": "Product A is great."}));
        let seen = app.seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 1);
        let (headers, body) = &seen[0];
        let secret = SigningSecret::parse(SECRET).unwrap();
        assert_eq!(
            verify_standard(&secret, headers, body, 1_750_000_000, 0),
            Ok(())
        );
        let sent: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(
            sent["conversation_id"],
            id(Kind::Conversation, &["12345", "67890"])
        );

        *app.answer.lock().unwrap() = (
            200,
            r#"{"text": "Let me get a colleague.", "handover": true}"#.into(),
        );
        let (reply, _) = bridge(&sender, &settings, &call(), "acme", "line", 1_750_000_000).await;
        assert_eq!(
            reply,
            json!({"reply_text": "Let me get a colleague. <HUMAN_HANDOVER>"})
        );
    }

    #[tokio::test]
    async fn the_bridge_hands_over_when_the_app_fails() {
        let sender = PingoraSender::new();
        for (status, body, why) in [
            (500, "oops", "error_status"),
            (200, "not json", "bad_reply"),
            (200, r#"{"reply_text":"x"}"#, "bad_reply"),
        ] {
            let (settings, _) = start(status, body, false).await;
            let (reply, outcome) = bridge(&sender, &settings, &call(), "acme", "line", 0).await;
            assert_eq!(outcome, BridgeOutcome::Failed(why), "{status} {body}");
            assert_eq!(reply, json!({"reply_text": "<HUMAN_HANDOVER>"}));
        }
        let (mut settings, _) = start(200, "{}", true).await;
        settings.on_failure = OnFailure::Silent;
        let (reply, outcome) = bridge(&sender, &settings, &call(), "acme", "line", 0).await;
        assert_eq!(outcome, BridgeOutcome::Failed("timeout"));
        assert_eq!(reply, json!({"reply_text": ""}));
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        settings.url = format!("http://{closed}/agent").parse().unwrap();
        let (_, outcome) = bridge(&sender, &settings, &call(), "acme", "line", 0).await;
        assert_eq!(outcome, BridgeOutcome::Failed("unreachable"));
    }

    #[test]
    fn call_body_builds_what_parse_call_reads() {
        let member = Member {
            channel_id: 1201,
            member_id: 30001,
            channel_member_id: Some("Uabc".into()),
            channel_type: Some("line".into()),
            external_member_id: None,
        };
        let body = call_body(7, &member, &[("m-1", "hi"), ("m-2", "anyone?")], "be nice");
        let ParsedCall::Conversation(c) = parse_call(&serde_json::to_vec(&body).unwrap()).unwrap()
        else {
            panic!()
        };
        assert_eq!(c.member, member);
        assert_eq!(c.inbound_events("t", "c").len(), 2);
    }
}
