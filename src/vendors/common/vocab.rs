//! Words and names every mapping shares, in both directions: text with content, a person's
//! name split and joined, message delivery words, attachment kinds by MIME type.

use serde_json::{Map, Value};

use crate::api::model::{MessageStatus, MessageType};

/// A string with content: trimmed, and `None` when empty.
pub(crate) fn non_empty(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

pub(crate) fn owned_non_empty(s: Option<&str>) -> Option<String> {
    non_empty(s).map(str::to_owned)
}

/// A JSON object field as a map (`custom_fields` from the vendor's variables or attributes);
/// anything that is not an object is no fields at all.
pub(crate) fn object_or_empty(value: Option<Value>) -> Map<String, Value> {
    match value {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

/// One name as first and last: `"Ada King Lovelace"` → (`"Ada"`, `"King Lovelace"`).
pub(crate) fn split_name(name: &str) -> (String, String) {
    let name = name.trim();
    match name.split_once(char::is_whitespace) {
        Some((first, rest)) => (first.to_owned(), rest.trim().to_owned()),
        None => (name.to_owned(), String::new()),
    }
}

/// First and last name from a request's `name`, `first_name` and `last_name`: the explicit
/// ones win (trimmed), `name` fills the rest. `None` where the request says nothing.
pub(crate) fn split_names(
    name: Option<&str>,
    first: Option<&str>,
    last: Option<&str>,
) -> (Option<String>, Option<String>) {
    let (name_first, name_last) = match name.map(split_name) {
        Some((f, l)) => (Some(f), Some(l)),
        None => (None, None),
    };
    (
        first.map(|f| f.trim().to_owned()).or(name_first),
        last.map(|l| l.trim().to_owned()).or(name_last),
    )
}

/// First and last name as one (`None` when neither has content).
pub(crate) fn join_name(first: Option<&str>, last: Option<&str>) -> Option<String> {
    match (non_empty(first), non_empty(last)) {
        (Some(first), Some(last)) => {
            let mut name = String::with_capacity(first.len() + 1 + last.len());
            name.push_str(first);
            name.push(' ');
            name.push_str(last);
            Some(name)
        }
        (Some(one), None) | (None, Some(one)) => Some(one.to_owned()),
        (None, None) => None,
    }
}

/// A vendor's delivery word as the normalized message status, case-insensitive: the
/// normalized words themselves (`pending`, `sent`, `delivered`, `read`, `failed`,
/// `received`), then the vendor's own `synonyms`; `None` for any other word (a vendor's
/// vocabulary stays its own: a word one vendor uses means nothing from another).
pub(crate) fn message_status(
    status: Option<&str>,
    synonyms: &[(&str, MessageStatus)],
) -> Option<MessageStatus> {
    let word = non_empty(status)?;
    [
        ("pending", MessageStatus::Pending),
        ("sent", MessageStatus::Sent),
        ("delivered", MessageStatus::Delivered),
        ("read", MessageStatus::Read),
        ("failed", MessageStatus::Failed),
        ("received", MessageStatus::Received),
    ]
    .iter()
    .chain(synonyms)
    .find(|(w, _)| w.eq_ignore_ascii_case(word))
    .map(|(_, status)| *status)
}

/// An attachment's kind from its MIME type: image, audio and video by their top-level type,
/// anything else (or nothing) a file.
pub(crate) fn attachment_type(mime_type: Option<&str>) -> MessageType {
    let mime_type = mime_type.unwrap_or_default().trim().to_ascii_lowercase();
    if mime_type.starts_with("image/") {
        MessageType::Image
    } else if mime_type.starts_with("audio/") {
        MessageType::Audio
    } else if mime_type.starts_with("video/") {
        MessageType::Video
    } else {
        MessageType::File
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn names_split_on_the_first_space_and_join_what_has_content() {
        assert_eq!(split_name("Ada"), ("Ada".into(), "".into()));
        assert_eq!(
            split_name("  Ada  King Lovelace "),
            ("Ada".into(), "King Lovelace".into())
        );
        assert_eq!(
            split_names(Some("Ana María López"), None, Some(" Byron ")),
            (Some("Ana".into()), Some("Byron".into()))
        );
        assert_eq!(split_names(None, None, None), (None, None));
        assert_eq!(
            join_name(Some(" Ada "), Some("Lovelace")).as_deref(),
            Some("Ada Lovelace")
        );
        assert_eq!(
            join_name(None, Some("Lovelace")).as_deref(),
            Some("Lovelace")
        );
        assert_eq!(join_name(Some(" "), None), None);
    }

    #[test]
    fn delivery_words_are_the_normalized_ones_or_the_vendors_synonyms() {
        for (word, status) in [
            ("pending", MessageStatus::Pending),
            ("Sent", MessageStatus::Sent),
            ("DELIVERED", MessageStatus::Delivered),
            (" read ", MessageStatus::Read),
            ("failed", MessageStatus::Failed),
            ("received", MessageStatus::Received),
        ] {
            assert_eq!(message_status(Some(word), &[]), Some(status), "{word}");
        }
        let synonyms = [("seen", MessageStatus::Read)];
        assert_eq!(
            message_status(Some("Seen"), &synonyms),
            Some(MessageStatus::Read)
        );
        assert_eq!(message_status(Some("seen"), &[]), None);
        assert_eq!(message_status(Some(" "), &synonyms), None);
        assert_eq!(message_status(None, &synonyms), None);
    }

    #[test]
    fn attachments_are_typed_by_mime_type() {
        assert_eq!(attachment_type(Some("image/png")), MessageType::Image);
        assert_eq!(attachment_type(Some(" Audio/ogg")), MessageType::Audio);
        assert_eq!(attachment_type(Some("video/mp4")), MessageType::Video);
        assert_eq!(attachment_type(Some("application/pdf")), MessageType::File);
        assert_eq!(attachment_type(None), MessageType::File);
    }

    #[test]
    fn only_an_object_holds_fields() {
        assert_eq!(object_or_empty(Some(json!({"a": 1})))["a"], 1);
        assert!(object_or_empty(Some(json!([1]))).is_empty());
        assert!(object_or_empty(None).is_empty());
    }
}
