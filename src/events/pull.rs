//! Pull: the bytes of `GET /v1/events` pages and `GET /v1/events/stream` frames.
//!
//! Both are assembled from the stored event bodies as they are (no parse and re-serialize), so
//! a pulled event is byte-for-byte the JSON a subscriber was sent.
//!
//! The stream follows the Server-Sent Events format (WHATWG HTML, "Server-sent events"): each
//! event is `id:` (the event ID, which a reconnecting client sends back as `Last-Event-ID`),
//! `event:` (the type) and `data:` (the envelope); comment lines keep idle connections open.

use super::model::StoredEvent;

/// The media type of the stream.
pub const EVENT_STREAM: &str = "text/event-stream";

/// How long a client waits before reconnecting, sent once at the start of a stream.
pub const RECONNECT_MS: u64 = 3000;

/// `{"data":[…],"next_cursor":…}` from stored bodies.
pub fn page_json(events: &[StoredEvent], next_cursor: Option<&str>) -> String {
    let mut out =
        String::with_capacity(32 + events.iter().map(|e| e.body.len() + 1).sum::<usize>());
    out.push_str("{\"data\":[");
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&e.body);
    }
    out.push_str("],\"next_cursor\":");
    match next_cursor {
        // A cursor is URL-safe base64 in practice; serialize anyway so any string stays JSON.
        Some(c) => out.push_str(&serde_json::Value::from(c).to_string()),
        None => out.push_str("null"),
    }
    out.push('}');
    out
}

/// The first bytes of a stream: the reconnect delay.
pub fn stream_preamble() -> String {
    format!("retry: {RECONNECT_MS}\n\n")
}

/// One event as an SSE frame.
pub fn sse_frame(event: &StoredEvent) -> String {
    let mut out = String::with_capacity(event.body.len() + event.id.len() + 48);
    out.push_str("id: ");
    out.push_str(&event.id);
    out.push_str("\nevent: ");
    out.push_str(event.type_.as_str());
    out.push('\n');
    // Stored bodies are compact JSON (no raw newline); split anyway, as the format requires.
    for line in event.body.split('\n') {
        out.push_str("data: ");
        out.push_str(line.trim_end_matches('\r'));
        out.push('\n');
    }
    out.push('\n');
    out
}

/// A comment frame that keeps proxies from closing an idle stream.
pub fn heartbeat() -> &'static str {
    ": heartbeat\n\n"
}

/// `Last-Event-ID` as sent by a client: trimmed, and only when it has the shape of an event ID
/// (anything else restarts the stream from "now" rather than erroring a reconnect loop).
pub fn last_event_id(header: Option<&str>) -> Option<&str> {
    header
        .map(str::trim)
        .filter(|s| super::model::is_event_id(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::model::EventType;
    use serde_json::{json, Value};

    fn stored(id: &str, body: Value) -> StoredEvent {
        StoredEvent {
            seq: 1,
            id: id.into(),
            tenant: "acme".into(),
            connection: "desk".into(),
            type_: EventType::MessageReceived,
            order_key: None,
            created_at: 0,
            body: body.to_string(),
        }
    }

    #[test]
    fn pages_embed_the_stored_bodies_verbatim() {
        let a = stored(
            "evt_a",
            json!({"id": "evt_a", "data": {"text": "hé \"quoted\""}}),
        );
        let b = stored("evt_b", json!({"id": "evt_b"}));
        let page = page_json(&[a.clone(), b.clone()], Some("cur_1"));
        let parsed: Value = serde_json::from_str(&page).unwrap();
        assert_eq!(
            parsed["data"][0],
            serde_json::from_str::<Value>(&a.body).unwrap()
        );
        assert_eq!(parsed["data"][1]["id"], "evt_b");
        assert_eq!(parsed["next_cursor"], "cur_1");
        assert!(page.contains(&a.body));
        assert_eq!(page_json(&[], None), r#"{"data":[],"next_cursor":null}"#);
    }

    #[test]
    fn frames_follow_the_event_stream_format() {
        let e = stored("evt_a", json!({"id": "evt_a", "type": "message.received"}));
        assert_eq!(
            sse_frame(&e),
            format!("id: evt_a\nevent: message.received\ndata: {}\n\n", e.body)
        );
        let mut multi = e.clone();
        multi.body = "{\n\"a\":1}".into();
        assert_eq!(
            sse_frame(&multi),
            "id: evt_a\nevent: message.received\ndata: {\ndata: \"a\":1}\n\n"
        );
        assert_eq!(stream_preamble(), "retry: 3000\n\n");
        assert!(heartbeat().starts_with(':') && heartbeat().ends_with("\n\n"));
    }

    #[test]
    fn last_event_id_is_taken_only_when_it_looks_like_one() {
        let id = crate::events::model::new_event_id();
        assert_eq!(last_event_id(Some(&format!(" {id} "))), Some(id.as_str()));
        assert_eq!(last_event_id(Some("42")), None);
        assert_eq!(last_event_id(Some("")), None);
        assert_eq!(last_event_id(None), None);
    }
}
