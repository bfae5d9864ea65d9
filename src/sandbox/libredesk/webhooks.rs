//! The Libredesk sandbox's webhooks: what the real server sends when its data changes.
//!
//! Like Libredesk (its webhook delivery code and `webhooks.md`): a POST per change with
//! `Content-Type: application/json`, `User-Agent: Libredesk-Webhook/<version>`, body
//! `{event, timestamp, payload}`, signed `sha256=<hex HMAC-SHA256(secret, body)>` in
//! `X-Libredesk-Signature`; one attempt, never retried; sent in order, after the change was
//! answered. Events: `conversation.created`, `conversation.status_changed`,
//! `conversation.assigned`, `conversation.unassigned`, `conversation.tags_changed`,
//! `message.created` (activity notes excluded), with the payloads of the docs.
//!
//! How changes are found: [`Marks`] records the state before a call, and
//! [`Webhooks::emit_since`] compares after it succeeded. A test or the demo plays a customer
//! writing with [`LibredeskState::contact_writes`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::{format_time, lock, LibredeskState, MessageType, NewMessage, SenderType};
use crate::events::sender::{PingoraSender, WebhookRequest, WebhookSender};
use crate::events::signing::{libredesk_signature, LibredeskSecret, LIBREDESK_SIGNATURE};

const USER_AGENT: &str = "Libredesk-Webhook/v0.7.0";

/// What one webhook did (for tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentWebhook {
    pub event: String,
    /// The receiver's status, or `None` when it could not be reached.
    pub status: Option<u16>,
}

struct Outgoing {
    url: url::Url,
    secret: LibredeskSecret,
    event: String,
    body: Bytes,
}

/// The configured webhook, its delivery queue and a log of what was sent.
#[derive(Default)]
pub(super) struct Webhooks {
    target: Mutex<Option<(url::Url, LibredeskSecret)>>,
    queue: Mutex<Option<mpsc::UnboundedSender<Outgoing>>>,
    sent: Arc<Mutex<Vec<SentWebhook>>>,
}

/// A conversation's webhook-relevant state.
#[derive(Debug, Clone, PartialEq)]
struct ConversationMark {
    status_id: i64,
    user: Option<i64>,
    team: Option<i64>,
    tags: Vec<String>,
}

/// The state before a call.
pub(super) struct Marks {
    conversations: BTreeMap<i64, ConversationMark>,
    last_message: i64,
}

impl Marks {
    pub(super) fn take(state: &LibredeskState) -> Option<Marks> {
        lock(&state.webhooks.target).as_ref()?;
        let data = lock(&state.data);
        Some(Marks {
            conversations: data
                .conversations
                .iter()
                .map(|(id, c)| {
                    (
                        *id,
                        ConversationMark {
                            status_id: c.status_id,
                            user: c.assigned_user_id,
                            team: c.assigned_team_id,
                            tags: c.tags.clone(),
                        },
                    )
                })
                .collect(),
            last_message: data.messages.keys().next_back().copied().unwrap_or(0),
        })
    }
}

impl Webhooks {
    /// Queue a webhook per change since `before` (nothing when no webhook is configured).
    pub(super) fn emit_since(&self, state: &LibredeskState, before: Option<Marks>) {
        let Some(before) = before else { return };
        let Some((url, secret)) = lock(&self.target).clone() else {
            return;
        };
        let mut hooks: Vec<(&'static str, Value)> = Vec::new();
        {
            let data = lock(&state.data);
            for (id, c) in &data.conversations {
                let Some(old) = before.conversations.get(id) else {
                    hooks.push(("conversation.created", data.conversation_json(c)));
                    continue;
                };
                if old.status_id != c.status_id {
                    hooks.push((
                        "conversation.status_changed",
                        json!({
                            "conversation_uuid": c.uuid,
                            "previous_status": super::status_by_id(old.status_id).0,
                            "new_status": super::status_by_id(c.status_id).0,
                            "snooze_until": c.snoozed_until.map(format_time),
                            "actor_id": super::seed::AGENT_GRACE_ID,
                        }),
                    ));
                }
                if (old.user, old.team) != (c.assigned_user_id, c.assigned_team_id) {
                    if c.assigned_user_id.is_some() && c.assigned_user_id != old.user {
                        hooks.push((
                            "conversation.assigned",
                            json!({"conversation_uuid": c.uuid, "assigned_to": c.assigned_user_id,
                                   "actor_id": super::seed::AGENT_GRACE_ID}),
                        ));
                    } else {
                        hooks.push((
                            "conversation.unassigned",
                            json!({"conversation_uuid": c.uuid, "actor_id": super::seed::AGENT_GRACE_ID}),
                        ));
                    }
                }
                if old.tags != c.tags {
                    hooks.push((
                        "conversation.tags_changed",
                        json!({"conversation_uuid": c.uuid, "previous_tags": old.tags,
                               "new_tags": c.tags, "actor_id": super::seed::AGENT_GRACE_ID}),
                    ));
                }
            }
            for m in data
                .messages
                .range(before.last_message + 1..)
                .map(|(_, m)| m)
            {
                if m.kind != MessageType::Activity {
                    hooks.push(("message.created", data.message_json(m)));
                }
            }
        }
        let Some(queue) = self.queue() else { return };
        for (event, payload) in hooks {
            let body = json!({
                "event": event,
                "timestamp": format_time(super::unix_now(std::time::Duration::from_micros(1))),
                "payload": payload,
            });
            let _ = queue.send(Outgoing {
                url: url.clone(),
                secret: secret.clone(),
                event: event.to_owned(),
                body: Bytes::from(serde_json::to_vec(&body).unwrap_or_default()),
            });
        }
    }

    /// The sender task, started on first use (inside the runtime that serves the sandbox).
    fn queue(&self) -> Option<mpsc::UnboundedSender<Outgoing>> {
        let mut queue = lock(&self.queue);
        if let Some(q) = queue.as_ref() {
            return Some(q.clone());
        }
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let (tx, mut rx) = mpsc::unbounded_channel::<Outgoing>();
        let sent = self.sent.clone();
        runtime.spawn(async move {
            let sender = PingoraSender::new();
            while let Some(out) = rx.recv().await {
                let signature = libredesk_signature(&out.secret, &out.body);
                let headers = [
                    (
                        http::header::CONTENT_TYPE,
                        http::HeaderValue::from_static("application/json"),
                    ),
                    (
                        http::header::USER_AGENT,
                        http::HeaderValue::from_static(USER_AGENT),
                    ),
                ]
                .into_iter()
                .chain(
                    http::HeaderValue::from_str(&signature)
                        .ok()
                        .map(|v| (LIBREDESK_SIGNATURE, v)),
                )
                .collect();
                // One attempt, like Libredesk: a failed delivery is gone.
                let status = sender
                    .post(WebhookRequest {
                        url: out.url,
                        headers,
                        body: out.body,
                        timeout: std::time::Duration::from_secs(10),
                    })
                    .await
                    .ok()
                    .map(|r| r.status);
                lock(&sent).push(SentWebhook {
                    event: out.event,
                    status,
                });
            }
        });
        *queue = Some(tx.clone());
        Some(tx)
    }
}

impl LibredeskState {
    /// Configure the webhook (Admin → Integrations → Webhooks): every change from now on is
    /// POSTed to `url`, signed with `secret`. `None` turns webhooks off.
    pub fn set_webhook(&self, target: Option<(url::Url, &str)>) -> Result<(), &'static str> {
        let target = match target {
            Some((url, secret)) => Some((url, LibredeskSecret::new(secret)?)),
            None => None,
        };
        *lock(&self.webhooks.target) = target;
        Ok(())
    }

    /// Webhooks sent so far, oldest first, with the receiver's answer.
    pub fn webhooks_sent(&self) -> Vec<SentWebhook> {
        lock(&self.webhooks.sent).clone()
    }

    /// Play an agent changing a conversation's status in the Libredesk UI (`status_id`: see
    /// [`super::seed`]): with a webhook configured, announced as `conversation.status_changed`.
    /// `false` for an unknown conversation.
    pub fn agent_sets_status(&self, conversation_uuid: &str, status_id: i64) -> bool {
        let before = Marks::take(self);
        {
            let mut data = lock(&self.data);
            let Ok(id) = data.conversation_id(conversation_uuid) else {
                return false;
            };
            let at = data.tick();
            let Ok(conversation) = data.conversation_mut(id) else {
                return false;
            };
            conversation.status_id = status_id;
            conversation.updated_at = at;
        }
        self.webhooks.emit_since(self, before);
        true
    }

    /// Play the customer of a conversation writing `text` (an incoming email or chat message):
    /// the message is stored and, with a webhook configured, announced as `message.created`.
    /// Answers the new message's uuid, or `None` for an unknown conversation.
    pub fn contact_writes(&self, conversation_uuid: &str, text: &str) -> Option<String> {
        let before = Marks::take(self);
        let uuid = {
            let mut data = lock(&self.data);
            let id = data.conversation_id(conversation_uuid).ok()?;
            let contact = data.conversations.get(&id)?.contact_id;
            let at = data.tick();
            let content = format!("<p>{}</p>", escape_html(text));
            let message = data.add_message(NewMessage {
                conversation_id: id,
                kind: MessageType::Incoming,
                status: "received",
                sender_type: SenderType::Contact,
                sender_id: contact,
                content,
                private: false,
                meta: json!({}),
                at,
            });
            data.messages.get(&message)?.uuid.clone()
        };
        self.webhooks.emit_since(self, before);
        Some(uuid)
    }
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
