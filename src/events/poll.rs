//! Vendors without push (ChatCaptain; Libredesk without webhooks): list differences → events.
//!
//! A poller lists normalized objects through the adapter (within the connection's vendor
//! budget), hands them to [`diff`] with what it saw last time, stores the resulting events and
//! then saves the new [`Seen`] in the store's state ([`super::store::EventStore::state_put`],
//! key from [`state_key`]) — in that order, so a crash in between replays the same differences,
//! which the dedup keys absorb. After a restart the poller reads [`Seen`] back and resumes.
//!
//! The first poll of a scope only records a baseline: a new poller does not announce every
//! existing conversation as "created".

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::model::EventType;
use crate::api::ids::Kind;

/// What a poll saw last time in one scope: gateway ID → fingerprint of its normalized JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    /// False until the first poll recorded its baseline.
    pub primed: bool,
    pub objects: BTreeMap<String, String>,
}

impl Seen {
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Read saved state; unreadable state counts as none (the next poll re-primes).
    pub fn from_bytes(bytes: &[u8]) -> Seen {
        serde_json::from_slice(bytes).unwrap_or_default()
    }
}

/// The state key of one poll scope (`conversations`, `messages:<conversation id>`, …).
pub fn state_key(tenant: &str, connection: &str, scope: &str) -> String {
    format!("poll:{tenant}:{connection}:{scope}")
}

/// One object as listed now.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub kind: Kind,
    /// The normalized resource, as GET answers it (without `raw`).
    pub data: Value,
}

/// An event the poll found.
#[derive(Debug, Clone, PartialEq)]
pub struct PolledEvent {
    pub event_type: EventType,
    pub dedup_key: String,
    /// The conversation's gateway ID (for messages and conversations).
    pub order_key: Option<String>,
    pub data: Value,
}

fn fingerprint(data: &Value) -> String {
    let digest = Sha256::digest(data.to_string().as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

fn created_type(kind: Kind, data: &Value) -> EventType {
    match kind {
        Kind::Conversation => EventType::ConversationCreated,
        Kind::Contact => EventType::ContactCreated,
        Kind::Message if data.get("direction").and_then(Value::as_str) == Some("inbound") => {
            EventType::MessageReceived
        }
        Kind::Message => EventType::MessageSent,
    }
}

fn updated_type(kind: Kind) -> EventType {
    match kind {
        Kind::Conversation => EventType::ConversationUpdated,
        Kind::Contact => EventType::ContactUpdated,
        Kind::Message => EventType::MessageUpdated,
    }
}

/// Compare what is listed now with what was seen. Objects absent now are kept in the returned
/// state (a list page is not proof of deletion). Objects without an `id` are skipped.
pub fn diff(seen: &Seen, observed: &[Observed]) -> (Vec<PolledEvent>, Seen) {
    let mut next = seen.clone();
    let mut events = Vec::new();
    for o in observed {
        let Some(id) = o.data.get("id").and_then(Value::as_str) else {
            continue;
        };
        let print = fingerprint(&o.data);
        // A creation is one change per object; an update is identified by the transition, so
        // a resend of the same poll result is absorbed by the store's dedup.
        let change = match seen.objects.get(id) {
            None => Some((created_type(o.kind, &o.data), format!("poll:{id}:created"))),
            Some(old) if *old != print => {
                Some((updated_type(o.kind), format!("poll:{id}:{old}:{print}")))
            }
            Some(_) => None,
        };
        next.objects.insert(id.to_owned(), print);
        let Some((event_type, dedup_key)) = change.filter(|_| seen.primed) else {
            continue;
        };
        let order_key = match o.kind {
            Kind::Conversation => Some(id.to_owned()),
            Kind::Message => o
                .data
                .get("conversation_id")
                .and_then(Value::as_str)
                .map(str::to_owned),
            Kind::Contact => Some(id.to_owned()),
        };
        events.push(PolledEvent {
            event_type,
            dedup_key,
            order_key,
            data: o.data.clone(),
        });
    }
    next.primed = true;
    (events, next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn conv(id: &str, status: &str) -> Observed {
        Observed {
            kind: Kind::Conversation,
            data: json!({"id": id, "status": status}),
        }
    }

    fn message(id: &str, direction: &str) -> Observed {
        Observed {
            kind: Kind::Message,
            data: json!({"id": id, "conversation_id": "cv_1", "direction": direction}),
        }
    }

    #[test]
    fn the_first_poll_is_a_baseline() {
        let (events, seen) = diff(&Seen::default(), &[conv("cv_1", "open")]);
        assert!(events.is_empty());
        assert!(seen.primed);
        assert_eq!(seen.objects.len(), 1);
    }

    #[test]
    fn new_and_changed_objects_become_events_unchanged_ones_do_not() {
        let (_, seen) = diff(
            &Seen::default(),
            &[conv("cv_1", "open"), conv("cv_2", "open")],
        );
        let (events, seen) = diff(
            &seen,
            &[
                conv("cv_1", "resolved"),
                conv("cv_2", "open"),
                conv("cv_3", "open"),
            ],
        );
        let got: Vec<(EventType, &str)> = events
            .iter()
            .map(|e| (e.event_type, e.data["id"].as_str().unwrap()))
            .collect();
        assert_eq!(
            got,
            [
                (EventType::ConversationUpdated, "cv_1"),
                (EventType::ConversationCreated, "cv_3")
            ]
        );
        assert_eq!(events[0].order_key.as_deref(), Some("cv_1"));
        assert!(events[0].dedup_key.starts_with("poll:cv_1:") && events[0].dedup_key.len() > 40);
        assert_eq!(events[1].dedup_key, "poll:cv_3:created");
        // The same list again: nothing new.
        let (again, _) = diff(&seen, &[conv("cv_1", "resolved"), conv("cv_3", "open")]);
        assert!(again.is_empty());
        // An object missing from a page is not forgotten.
        assert!(seen.objects.contains_key("cv_2"));
    }

    #[test]
    fn messages_take_their_direction_and_conversation() {
        let primed = Seen {
            primed: true,
            objects: BTreeMap::new(),
        };
        let (events, _) = diff(
            &primed,
            &[message("m1", "inbound"), message("m2", "outbound")],
        );
        assert_eq!(events[0].event_type, EventType::MessageReceived);
        assert_eq!(events[1].event_type, EventType::MessageSent);
        assert_eq!(events[0].order_key.as_deref(), Some("cv_1"));
        assert_ne!(events[0].dedup_key, events[1].dedup_key);
    }

    #[test]
    fn state_survives_a_round_trip_and_garbage_reprimes() {
        let (_, seen) = diff(&Seen::default(), &[conv("cv_1", "open")]);
        assert_eq!(Seen::from_bytes(&seen.to_bytes()), seen);
        assert_eq!(Seen::from_bytes(b"garbage"), Seen::default());
        assert_eq!(
            state_key("acme", "chat", "conversations"),
            "poll:acme:chat:conversations"
        );
    }
}
