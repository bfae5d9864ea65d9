//! The CAAC sandbox plays CAAC's "Self Hosted AI Agent" call: a LINE customer writes, CAAC
//! stores the message and POSTs `{version: "1.0", conversation_id, org_uuid, prompt,
//! messages[], participants{members[]}}` with `Authorization: Bearer <token configured in
//! CAAC>` to the agent URL (the gateway's `/hooks/{tenant}/{connection}`), and reads
//! `{reply_text}` back; `<HUMAN_HANDOVER>` in it hands the conversation to a human (the member
//! becomes `pending`). CAAC gives the agent 45 s.

use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};

use super::{lock, CaacState, StoredMessage};
use crate::events::caac::{read_caac_reply, VERSION};
use crate::events::sender::{PingoraSender, WebhookRequest, WebhookSender};

/// How long CAAC waits for the agent.
pub const AGENT_DEADLINE: Duration = Duration::from_secs(45);

/// What the agent answered, as CAAC read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentAnswer {
    pub status: u16,
    /// `reply_text` without the handover marker.
    pub text: String,
    pub handover: bool,
    /// The uuid of the customer's message in the call.
    pub message_uuid: String,
}

impl CaacState {
    /// A LINE member writes `text`: store it, call the AI agent at `url` with `token`, apply
    /// its answer (the reply is stored as a bot message; a handover sets the member
    /// `pending`). `Err` when the agent could not be reached or answered unreadably.
    pub async fn play_line_message(
        &self,
        url: url::Url,
        token: &str,
        channel_id: i64,
        member_id: i64,
        text: &str,
    ) -> Result<AgentAnswer, String> {
        let (body, message_uuid) = {
            let mut data = lock(&self.data);
            let member = data
                .member(channel_id, member_id)
                .map_err(|_| "no such member".to_owned())?
                .clone();
            let at = data.tick();
            let id = data.next_message_id;
            data.next_message_id += 1;
            let uuid = format!("a1b2c3d4-0000-4000-8000-{id:012x}");
            data.messages.insert(
                id,
                StoredMessage {
                    id,
                    channel_id,
                    member_id,
                    sender_type: "member",
                    text: text.to_owned(),
                    external_id: uuid.clone(),
                    reply_to: None,
                    read: false,
                    created_at: at,
                },
            );
            let messages: Vec<Value> = data
                .messages
                .values()
                .filter(|m| m.channel_id == channel_id && m.member_id == member_id)
                .map(|m| {
                    json!({
                        "message_type": "text",
                        "message_uuid": if m.external_id.is_empty() { format!("caac-msg-{}", m.id) } else { m.external_id.clone() },
                        "sender_id": if m.sender_type == "member" { member_id } else { 0 },
                        "sender_type": m.sender_type,
                        "text": m.text,
                        "timestamp": crate::events::clock::rfc3339(m.created_at * 1000),
                    })
                })
                .collect();
            let body = json!({
                "version": VERSION,
                "conversation_id": member_id,
                "org_uuid": "00000000-0000-4000-8000-000000008801",
                "prompt": "You are the support assistant of this LINE official account.",
                "messages": messages,
                "participants": {"members": [{
                    "channel_id": channel_id,
                    "member_id": member_id,
                    "channel_member_id": member.external_member_id,
                    "channel_type": "line",
                    "external_member_id": member.external_member_id,
                }]},
            });
            (body, uuid)
        };
        let authorization = http::HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| "the token is not a header value".to_owned())?;
        let answer = PingoraSender::new()
            .post(WebhookRequest {
                url,
                headers: vec![
                    (
                        http::header::CONTENT_TYPE,
                        http::HeaderValue::from_static("application/json"),
                    ),
                    (http::header::AUTHORIZATION, authorization),
                ],
                body: Bytes::from(serde_json::to_vec(&body).unwrap_or_default()),
                timeout: AGENT_DEADLINE,
            })
            .await
            .map_err(|e| e.to_string())?;
        let (text, handover) = read_caac_reply(&answer.body)
            .ok_or_else(|| format!("unreadable agent answer (status {})", answer.status))?;
        {
            let mut data = lock(&self.data);
            let at = data.tick();
            if !text.is_empty() {
                let id = data.next_message_id;
                data.next_message_id += 1;
                data.messages.insert(
                    id,
                    StoredMessage {
                        id,
                        channel_id,
                        member_id,
                        sender_type: "user",
                        text: text.clone(),
                        external_id: String::new(),
                        reply_to: None,
                        read: true,
                        created_at: at,
                    },
                );
            }
            if handover {
                if let Some(m) = data
                    .members
                    .values_mut()
                    .find(|m| m.channel_id == channel_id && m.id == member_id)
                {
                    m.processing_state = "pending";
                }
            }
        }
        Ok(AgentAnswer {
            status: answer.status,
            text,
            handover,
            message_uuid,
        })
    }
}
